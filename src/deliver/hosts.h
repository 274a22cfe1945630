/*
 * hosts: the delivery hosts table, which overrides DNS for a domain or a host
 * (SPEC D3, E1, E2; seed 004: a domain whose MX points at the ISP, or at
 * ourselves as backup MX, is sent to the address written here instead, so mail
 * never bounces between us and the ISP).
 *
 * File format (docs/tables.md), one entry per line, '#' starts a comment:
 *   name  address[:port]  [address[:port] ...]
 *   widgets.test     192.0.2.10 192.0.2.11:2525
 *   mail.isp.test    [2001:db8::25]:587  2001:db8::26
 *   .corp.test       10.1.2.3
 * The name comes first (unlike /etc/hosts).  An IPv6 address with a port is
 * written in brackets; without a port, brackets are optional.  Port 0 in an
 * address means "the default" (25).  Names are compared case-insensitively and
 * a trailing '.' is ignored.
 *
 * Matching: "name" matches exactly that name.  ".name" (or its synonym
 * "*.name") matches every name below it, never name itself: write both lines
 * to cover both.  An exact entry wins over a subdomain entry; among subdomain
 * entries the longest (most specific) wins.  A name may appear once per form.
 * Addresses are tried in the order written.
 */
#ifndef TSUBAME_HOSTS_H
#define TSUBAME_HOSTS_H

#include <stddef.h>
#include <stdio.h>

#include "util/buf.h"

#define HOSTS_MAX_ADDRS 8

struct hosts_addr {
	int family;            /* AF_INET or AF_INET6 */
	char ip[46];           /* canonical text form */
	unsigned short port;   /* 0 = default */
};

struct hosts_entry {
	char *name;            /* lower case, without the leading "." / "*." */
	int subdomains;        /* 1: written ".name" or "*.name" */
	struct hosts_addr addrs[HOSTS_MAX_ADDRS];
	size_t naddrs;
	int line;
};

struct hosts_table {
	struct hosts_entry *v;
	size_t n;
};

/* A missing file is an empty table.  Errors "file:line: message\n"; returns their count. */
int hosts_load(struct hosts_table *t, const char *path, struct buf *errors);
/* The same from an open stream; name is used in the messages (tests, fuzzing). */
int hosts_parse(struct hosts_table *t, FILE *fp, const char *name, struct buf *errors);
void hosts_free(struct hosts_table *t);
/* The entry for name (a domain or a host), or NULL: DNS decides. t may be NULL. */
const struct hosts_entry *hosts_lookup(const struct hosts_table *t, const char *name);

#endif
