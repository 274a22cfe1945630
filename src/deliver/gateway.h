/*
 * gateway: the per-domain SMTP gateway table (D4; seed 003 "SMTPゲートウェイ",
 * its "テーブル編集" file), kept in the manual's format so an existing table can
 * be brought over unchanged:
 *
 *     domain-pattern,gateway,port[*]
 *
 * one entry per line, tried in file order ("昇順に処理されます"); the first
 * pattern that matches the recipient domain decides.
 *   - A line whose first character is "'" or a blank (space, TAB or the
 *     ideographic space U+3000) is a comment (注1); an empty line is ignored.
 *   - domain-pattern: letters, digits, '-', '_', '.' and '*' (注2).  '*' matches
 *     any run of characters, the empty run and dots included; the rest must be
 *     equal ignoring ASCII case, and the pattern must cover the whole domain
 *     ("*.a.jp" matches "x.a.jp" and "x.y.a.jp", not "a.jp").  One trailing dot
 *     is ignored on both sides.
 *   - gateway: a host name, an IPv4 address, or an IPv6 address written
 *     "[2001:db8::1]" (bare "2001:db8::1" is accepted too); kept as text.
 *   - port: 1-65535, empty or absent = 25; a '*' right after it (465*) asks for
 *     implicit TLS (注3); "*" with no number is an error.
 * Spaces and TABs around a field are ignored.  A UTF-8 BOM on the first line is
 * skipped.  Errors are "file:line: message" lines; a bad line is not loaded.
 * docs/routing.md has the examples from the manual.
 */
#ifndef TSUBAME_GATEWAY_H
#define TSUBAME_GATEWAY_H

#include <stddef.h>

#include "util/buf.h"

#define GATEWAY_DEFAULT_PORT 25

enum gateway_host_kind { GATEWAY_HOST_NAME = 0, GATEWAY_HOST_IPV4, GATEWAY_HOST_IPV6 };

struct gateway_entry {
	char *pattern;                /* lower case, no trailing dot */
	char *host;                   /* lower case; an IPv6 address without its brackets */
	enum gateway_host_kind kind;
	unsigned port;
	int implicit_tls;             /* the port was written "NNN*" */
	int line;                     /* where it was read */
};

struct gateway_table {
	struct gateway_entry *v;
	size_t n;
};

/*
 * Load the table at path.  A missing file is an empty table (no per-domain
 * gateways); a file that cannot be read is one error.  Errors are appended to
 * errors (may be NULL) as "path:line: message\n"; returns their count.  The
 * good lines are loaded even when others are bad (the caller decides whether
 * an error is fatal, as `tsubamed -n` does).
 */
int gateway_load(struct gateway_table *t, const char *path, struct buf *errors);
/* The same from memory (tests, the fuzzer); name appears in error messages. */
int gateway_parse(struct gateway_table *t, const char *text, size_t len, const char *name, struct buf *errors);
void gateway_free(struct gateway_table *t);

/*
 * The first entry whose pattern matches domain (ASCII case ignored, one
 * trailing dot ignored), or NULL.  The entry lives as long as the table.
 */
const struct gateway_entry *gateway_lookup(const struct gateway_table *t, const char *domain);

/* '*'-wildcard match of the whole of s against pat, ASCII case ignored (exported for tests). */
int gateway_match(const char *pat, const char *s);

#endif
