/*
 * dns: asynchronous DNS through c-ares, driven by the process's libevent loop.
 *
 * Never a hand-rolled resolver: c-ares does the protocol; this file only maps
 * its sockets and timeouts onto libevent events.  Servers come from the
 * configuration ("IP" or "IP:port", up to 3, R5/D3) or from /etc/resolv.conf.
 */
#ifndef TSUBAME_DNS_H
#define TSUBAME_DNS_H

#include <stddef.h>

struct event_base;
struct dns;

#define DNS_MAX_SERVERS 3

/* servers: NULL or an array of "IP" / "IP:port" / "[IPv6]:port"; timeout in ms per try. NULL on failure. */
struct dns *dns_new(struct event_base *base, char *const *servers, size_t nservers, int timeout_ms);
void dns_free(struct dns *d);

enum dns_status { DNS_OK = 0, DNS_NXDOMAIN, DNS_NODATA, DNS_TEMPFAIL };

/* Results: A records as dotted quads (at most 8); TXT strings joined per record. */
struct dns_answer {
	enum dns_status status;
	char addrs[8][16];
	size_t naddrs;
	char txt[4][512];
	size_t ntxt;
};

typedef void (*dns_cb)(void *arg, const struct dns_answer *a);
/* Query A or TXT (type 1 or 16) for name; cb is always called exactly once (also on dns_free). */
/*
 * Timing: cb never runs inside dns_query() itself, always later from the event
 * loop (or from dns_free(), with DNS_TEMPFAIL).  A cb may call dns_query() and
 * dns_free(); a dns_free() from inside a cb takes effect when that cb returns.
 */
void dns_query(struct dns *d, const char *name, int type, dns_cb cb, void *arg);

#endif
