/*
 * relaydomains: the relay domains table (E1 gateway in front of another
 * server, E2 backup MX; seed 004 "ゲートウェイ", "バックアップ").  A relay
 * domain has no accounts here: we accept its mail from anyone, like a local
 * domain, and pass it to the domain's own server.
 *
 * File format (docs/tables.md), one domain per line, '#' starts a comment:
 *   domain [host[:port]] [verify=none|list|probe] [recipients=FILE]
 *   corp.example     10.0.0.5            verify=probe     # Exchange behind us
 *   branch.example   mail.branch.lan:2525 recipients=branch-users
 *   customer.example                                      # backup MX: its MX, minus us
 *   .hosted.example  10.0.0.9                             # every subdomain
 * "domain" matches that name; ".domain" (or "*.domain") every name below it,
 * never the name itself; an exact line wins over a subdomain line, the longest
 * subdomain line over shorter ones.  Names are compared ignoring case.
 *
 * host: a name, an IPv4 address or an [IPv6] address, with an optional port
 * (25); absent = the domain's MX hosts (the hosts table first, then DNS),
 * skipping ourselves and every MX not better than us (the backup-MX rule).
 *
 * verify: none (default without recipients=) accepts every local part;
 * list (the default with recipients=) accepts the addresses in FILE only
 * (550 5.1.1 for the others); probe asks host, at RCPT time, with
 * MAIL FROM:<> / RCPT TO:<address> (src/verify/), and needs a host.
 * FILE: one address per line ("local@domain", or a bare local part meaning
 * local@ this line's domain), '#' lines are comments; relative to the folder
 * of the main configuration file.  Compared ignoring case.
 */
#ifndef TSUBAME_RELAYDOMAINS_H
#define TSUBAME_RELAYDOMAINS_H

#include <stddef.h>
#include <stdio.h>

#include "util/buf.h"

enum relay_verify { RELAY_VERIFY_NONE = 0, RELAY_VERIFY_LIST, RELAY_VERIFY_PROBE };

struct relay_domain {
	char *name;              /* lower case, without the leading "." / "*." */
	int subdomains;          /* 1: written ".name" or "*.name" */
	char *host;              /* NULL: MX; else a name (lower case) or an address (no brackets) */
	unsigned port;           /* 25 unless written */
	enum relay_verify verify;
	char *recipients_file;   /* as written, NULL when none */
	char **rcpts;            /* verify=list: sorted "local@domain", lower case */
	size_t nrcpts;
	int line;
};

struct relay_domain_table {
	struct relay_domain *v;
	size_t n;
};

/*
 * Load the table at path and the recipients files it names (relative to dir;
 * lists = 0 skips them: the deliver process only routes).  A missing table is
 * an empty one; a missing recipients file is an error.  Errors
 * "file:line: message\n"; returns their count.
 */
int relaydomains_load(struct relay_domain_table *t, const char *path, const char *dir, int lists, struct buf *errors);
/* The table alone from an open stream (no recipients files); name is used in the messages. */
int relaydomains_parse(struct relay_domain_table *t, FILE *fp, const char *name, struct buf *errors);
/* One recipients list from an open stream into d (fuzzer, tests); returns the error count. */
int relaydomains_parse_list(struct relay_domain *d, FILE *fp, const char *name, struct buf *errors);
void relaydomains_free(struct relay_domain_table *t);

/* The line for domain (a trailing '.' ignored), or NULL.  t may be NULL. */
const struct relay_domain *relaydomains_find(const struct relay_domain_table *t, const char *domain);

/* verify=list: 1 when local@domain is in d's list. */
int relaydomain_has_rcpt(const struct relay_domain *d, const char *local, const char *domain);

const char *relay_verify_name(enum relay_verify v);

/*
 * "host", "host:port", "192.0.2.1[:port]", "[2001:db8::1][:port]" or a bare
 * IPv6 address (no port).  host gets a lower-case name or the canonical
 * address text without brackets (hsz >= 256 for names, 46 for only_ip);
 * *port 25 when not written.
 * only_ip: names are refused.  0, or -1 with *why.  (The peers table uses it too.)
 */
int relay_parse_hostport(const char *s, char *host, size_t hsz, unsigned *port, int only_ip, const char **why);

#endif
