/*
 * dnsbl: DNS block lists (R5, the manual's ORDB setting).  For a client IPv4
 * a.b.c.d and a list zone Z, query d.c.b.a.Z (A); a 127.0.0.x answer lists the
 * client, and the TXT record of the same name is the reason shown in the
 * 554 5.7.1 reply.  IPv6 clients use the RFC 5782 nibble form.  Exempt
 * addresses (patterns as in the relay rules: wildcards and CIDR) are never
 * looked up.  A lookup that fails or times out does not block mail.
 */
#ifndef TSUBAME_DNSBL_H
#define TSUBAME_DNSBL_H

#include <stddef.h>

#include "dns/dns.h"

/* Lists beyond this many are ignored (with a warning); the configuration should refuse them. */
#define DNSBL_MAX_ZONES 16

struct dnsbl_result {
	int listed;
	char zone[256];     /* the list that listed it */
	char reason[512];   /* its TXT, or a generic text */
};

typedef void (*dnsbl_cb)(void *arg, const struct dnsbl_result *r);

/* Build the query name for ip in zone; 0, or -1 for an address that cannot be listed. */
int dnsbl_query_name(const char *ip, const char *zone, char *out, size_t outsz);
/* 1 when ip matches one of the exempt patterns. */
int dnsbl_exempt(char *const *patterns, size_t n, const char *ip);
/*
 * Check ip against every zone in parallel; cb once with the first listing
 * (in zone order) or with listed = 0 when none lists it.  Returns a handle
 * for dnsbl_cancel (the callback is then not called), NULL when cb was already called.
 */
struct dnsbl_check;
struct dnsbl_check *dnsbl_check(struct dns *d, char *const *zones, size_t nzones, const char *ip, dnsbl_cb cb,
    void *arg);
/*
 * Timing and lifetime: cb runs from the event loop (or during dns_free(), which
 * ends every lookup as a temporary failure: not listed); only an address that
 * cannot be listed or an empty zone list calls it before dnsbl_check() returns
 * (and then NULL is returned).  The handle is valid until cb has been called or
 * dnsbl_cancel() has been called, whichever comes first: forget it in cb.  After
 * dnsbl_cancel() cb is never called; queries still in flight free the state
 * when they finish, so d must outlive them (dns_free() finishes them at once).
 * A listing is an A answer in 127.0.0.0/8 other than 127.255.255.x (RFC 5782
 * 2.3; the latter are list error codes); the reason is printable ASCII only.
 */
void dnsbl_cancel(struct dnsbl_check *c);

#endif
