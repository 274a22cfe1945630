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

#define DNS_MAX_MX 16

/* One MX record (RFC 1035 3.3.9); host is "" for the root name "." (RFC 7505 null MX). */
struct dns_mx {
	unsigned short pref;
	char host[256];
};

/*
 * Results: A records as dotted quads (at most 8); TXT strings joined per record;
 * AAAA records as text in addrs6 (at most 8); MX records in answer order (at most
 * DNS_MAX_MX).  ttl is the smallest TTL of the answer records used (A, AAAA, MX
 * answers only; 0 otherwise).  A and AAAA answers follow a CNAME chain that the
 * server includes in the answer (c-ares does that).
 */
struct dns_answer {
	enum dns_status status;
	char addrs[8][16];
	size_t naddrs;
	char txt[4][512];
	size_t ntxt;
	char addrs6[8][46];
	size_t naddrs6;
	struct dns_mx mx[DNS_MAX_MX];
	size_t nmx;
	unsigned long ttl;
};

typedef void (*dns_cb)(void *arg, const struct dns_answer *a);
/* Query A or TXT (type 1 or 16) for name; cb is always called exactly once (also on dns_free). */
/*
 * Timing: cb never runs inside dns_query() itself, always later from the event
 * loop (or from dns_free(), with DNS_TEMPFAIL).  A cb may call dns_query() and
 * dns_free(); a dns_free() from inside a cb takes effect when that cb returns.
 */
void dns_query(struct dns *d, const char *name, int type, dns_cb cb, void *arg);
/*
 * The same with the mail-routing types as well: A, TXT, MX or AAAA (1, 16, 15, 28).
 * dns_query() keeps refusing MX and AAAA (DNS_TEMPFAIL), as it always has.
 */
void dns_query_ext(struct dns *d, const char *name, int type, dns_cb cb, void *arg);

#endif
