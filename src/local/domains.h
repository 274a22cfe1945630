/*
 * domains: the local domains table (L1).
 *
 * File format (docs/tables.md), one domain per line, '#' comments:
 *   example.test  aliases=mail.example.test,example.org  max_accounts=0 mailbox_limit=0 max_messages=0 max_message_size=0
 * Only the name is required; limits default to 0 = unlimited.  A host alias is
 * another name for the same domain (mail sent to user@mail.example.test is
 * delivered to user@example.test).  Names are compared case-insensitively.
 * Size values (mailbox_limit, max_message_size) accept k, m, g suffixes.
 * A save rewrites the file from the table: comments are not kept.
 *
 * Virtual hosts (seed 004, "virtual host with its own IP address"):
 *   branch.test  ip=192.0.2.10,192.0.2.11  hostname=mx.branch.test
 * ip= binds the domain to local addresses: smtpd serves it only on connections
 * made to one of them (src/local/vhost.c).  hostname= is the greeting and EHLO
 * name on those addresses; it needs ip=, and two domains on one address may not
 * name it differently.  A domain without ip= is served on every address.
 */
#ifndef TSUBAME_DOMAINS_H
#define TSUBAME_DOMAINS_H

#include <stddef.h>
#include <stdio.h>

#include "util/buf.h"

struct domain {
	char *name;            /* canonical name, lower case */
	char **aliases;        /* host aliases, lower case */
	size_t naliases;
	long max_accounts;     /* 0 = unlimited */
	long mailbox_limit;    /* per-account default quota in bytes, 0 = use the global */
	long max_messages;     /* per-mailbox message count limit, 0 = unlimited */
	long max_message_size; /* per-message limit for this domain, 0 = global only */
	char **ips;            /* local addresses the domain is bound to, numeric and normalized; none = all */
	size_t nips;
	char *hostname;        /* greeting/EHLO name on those addresses, lower case; NULL = the global one */
	int line;
};

struct domain_table {
	struct domain *v;
	size_t n;
};

/* A missing file is an empty table.  Errors "file:line: message\n"; returns their count. */
int domains_load(struct domain_table *t, const char *path, struct buf *errors);
/* The same from an open stream; name is used in the messages (tests, fuzzing). */
int domains_parse(struct domain_table *t, FILE *fp, const char *name, struct buf *errors);
void domains_free(struct domain_table *t);
/* Match a name or a host alias; NULL when not local. */
const struct domain *domains_find(const struct domain_table *t, const char *name);
/* Atomic rewrite of the file (temporary file, fsync, rename). 0 or -1 with errno. */
int domains_save(const struct domain_table *t, const char *path);
/* Add (copying d) or remove by name; 0, or -1 when it exists / does not exist. */
int domains_add(struct domain_table *t, const struct domain *d);
int domains_remove(struct domain_table *t, const char *name);
/*
 * Replace the domain named d->name with a copy of d (same place in the file);
 * 0, or -1 when there is no such domain or d would clash with another entry.
 * domains_add and domains_update check what the parser checks.
 */
int domains_update(struct domain_table *t, const struct domain *d);
/*
 * Parse an ip= value (comma-separated numeric IPv4/IPv6 addresses) into d->ips,
 * normalized as inet_ntop prints them (IPv4-mapped IPv6 becomes IPv4).  0, or -1
 * with a reason in err (d->ips then holds what was parsed before the error).
 */
int domain_parse_ips(struct domain *d, const char *list, char *err, size_t errsz);
/* Normalize one numeric address the same way into out; 0 or -1 when it is not one. */
int domain_addr_normalize(const char *addr, char *out, size_t outsz);
/*
 * The domain of t (other than d itself) that gives one of d's addresses another
 * hostname= than d does, or NULL: one address greets with one name.
 */
const struct domain *domains_hostname_clash(const struct domain_table *t, const struct domain *d);
/* Free what a domain owns (name, aliases, ips, hostname) and zero it. */
void domain_free(struct domain *d);
/* A non-negative number; with sizes, a k, m or g suffix multiplies by 1024^n.  0 or -1. */
int domain_parse_number(const char *s, int size, long *out);
/* 1 when name is a syntactically valid host name (RFC 1035 labels, letters digits '-'). */
int domain_name_valid(const char *name);
/* A table's domain column in place: one trailing dot dropped, lower case; then domain_name_valid. */
int domain_name_canon(char *name);

#endif
