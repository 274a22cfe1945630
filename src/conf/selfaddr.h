/*
 * selfaddr: the addresses that are this host, for "is this MX / peer us?"
 * (E2 backup MX: an MX host with one of them is us; E7: a peer with one of
 * them is skipped).  They are: every address of listen and submission_listen;
 * for a "*" listener every address of the host's interfaces (getifaddrs);
 * and self_addresses (addresses that reach us from outside: NAT, a load
 * balancer; Postfix's proxy_interfaces).  Canonical text, no duplicates.
 */
#ifndef TSUBAME_SELFADDR_H
#define TSUBAME_SELFADDR_H

#include <stddef.h>

#include "conf/config.h"

struct selfaddr {
	char **v;
	size_t n;
};

void selfaddr_collect(const struct config *c, struct selfaddr *out);
void selfaddr_free(struct selfaddr *s);
/* 1 when ip (any textual form, IPv4-mapped IPv6 too) is ours. */
int selfaddr_has(const struct selfaddr *s, const char *ip);

#endif
