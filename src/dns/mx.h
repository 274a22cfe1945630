/*
 * mx: a destination domain to an ordered list of hosts with addresses (SPEC D3,
 * E2; RFC 5321 5.1, RFC 7505), on top of dns.c, with the MX cache and the hosts
 * table in front of DNS.
 *
 * Order of business for mx_resolve(domain):
 *   1. the hosts table (deliver/hosts.h): a hit is the answer, no DNS query;
 *   2. the MX cache: a live entry is the answer (equal preferences re-shuffled);
 *   3. DNS: MX, sorted by preference, random order among equal preferences;
 *      a single MX "." is a null MX (RFC 7505: MX_NULLMX, 5.1.10); no MX records
 *      means the domain itself with preference 0 (RFC 5321 5.1 implicit MX)
 *      unless no_mx_bounce is set (MX_NOMX); NXDOMAIN is MX_NXDOMAIN (5.1.2);
 *      SERVFAIL, time-outs and unparsable answers are MX_TEMPFAIL.
 *   4. the backup-MX rule (E2): an MX that is us (by name or address) has
 *      preference P; every MX with preference >= P is dropped; when nothing better
 *      than us is left the result is MX_SELF (5.4.6), never a loop;
 *   5. A and AAAA for at most max_hosts exchangers (each may be overridden by the
 *      hosts table), IPv4 addresses first unless ipv6_first; CNAME chains are the
 *      resolver's business (c-ares follows the chain in the answer).
 * Exchangers without any address are left out; when none is left the result is
 * MX_TEMPFAIL if any lookup failed temporarily, else MX_NOHOST (5.4.4).
 *
 * Cache: only complete MX_OK results from DNS are cached, keyed by the lower-case
 * domain.  An entry lives min(cache_time, smallest TTL of the records used)
 * seconds, or cache_time when cache_ignore_ttl; cache_time 0 turns caching off.
 * At most cache_max entries: a full cache evicts an expired entry, else the least
 * recently used one.  Lookup is a linear scan (fine for the default size).
 *
 * Callback timing (as dns.h): cb runs exactly once, never inside mx_resolve(),
 * always from the event loop, or from mx_free() with MX_TEMPFAIL.  A cb may call
 * mx_resolve() and mx_free().  The struct dns must outlive the struct mx (free
 * the mx first, then the dns).
 */
#ifndef TSUBAME_MX_H
#define TSUBAME_MX_H

#include <stddef.h>

struct event_base;
struct dns;
struct hosts_table;
struct mx;

#define MX_MAX_HOSTS 10   /* exchangers looked up and returned, at most */
#define MX_HOST_ADDRS 8   /* addresses per exchanger, IPv4 and IPv6 together */

enum mx_status {
	MX_OK = 0,
	MX_TEMPFAIL,  /* 4.4.3: server failure, time-out; try again later */
	MX_NXDOMAIN,  /* 5.1.2: the domain does not exist */
	MX_NULLMX,    /* 5.1.10: the domain accepts no mail (RFC 7505) */
	MX_NOMX,      /* 5.1.2: no MX and no_mx_bounce is set */
	MX_NOHOST,    /* 5.4.4: no exchanger (or the domain itself) has an address */
	MX_SELF       /* 5.4.6: we are the best MX: a routing error, never a loop */
};

enum mx_source { MX_SRC_DNS = 0, MX_SRC_CACHE, MX_SRC_HOSTS };

struct mx_addr {
	int family;            /* AF_INET or AF_INET6 */
	char ip[46];
	unsigned short port;   /* 0 = default (25); only the hosts table sets one */
};

struct mx_host {
	char name[256];        /* exchanger (or the domain: implicit MX, hosts table) */
	int pref;
	struct mx_addr addrs[MX_HOST_ADDRS];
	size_t naddrs;
};

struct mx_result {
	enum mx_status status;
	enum mx_source source;
	int implicit;          /* 1: no MX records, the domain itself (RFC 5321 5.1) */
	struct mx_host hosts[MX_MAX_HOSTS];
	size_t nhosts;         /* > 0 only with MX_OK */
};

struct mx_config {
	long cache_time;               /* seconds; default 864000; 0 = no cache */
	int cache_ignore_ttl;          /* 1: entries live cache_time whatever the TTL */
	size_t cache_max;              /* entries; default 1024 */
	int no_mx_bounce;              /* 1: no MX records is MX_NOMX, not an A/AAAA fallback */
	int ipv6_first;                /* 1: AAAA addresses before A addresses */
	size_t max_hosts;              /* exchangers looked up; default and at most MX_MAX_HOSTS */
	const char *const *self_names; /* our own host names (backup-MX rule) */
	size_t nself_names;
	const char *const *self_addrs; /* our own addresses, IPv4 or IPv6 text */
	size_t nself_addrs;
	const struct hosts_table *hosts; /* borrowed, may be NULL; must outlive the mx */
	unsigned long seed;            /* shuffle seed for tests; 0 = random */
};

typedef void (*mx_cb)(void *arg, const struct mx_result *r);

void mx_config_defaults(struct mx_config *c);
/* c is copied (the hosts table is borrowed); a bad self address is ignored with a warning. */
struct mx *mx_new(struct event_base *base, struct dns *dns, const struct mx_config *c);
void mx_free(struct mx *m);
void mx_resolve(struct mx *m, const char *domain, mx_cb cb, void *arg);
/*
 * The same with the caller's hosts table instead of the configured one (the
 * deliver process's jobs keep the table they started with across a reload).
 * The table must outlive the request.  The cache is used only when hosts is
 * the mx's own table (mx_set_hosts): answers shaped by another table are
 * neither taken from it nor stored in it.
 */
void mx_resolve_hosts(struct mx *m, const char *domain, const struct hosts_table *hosts, mx_cb cb, void *arg);
/* A new hosts table (a reload): future mx_resolve() calls use it; the cache is emptied. */
void mx_set_hosts(struct mx *m, const struct hosts_table *hosts);

/* Cache statistics and control (tests, tsubamectl). */
unsigned long mx_cache_hits(const struct mx *m);
size_t mx_cache_size(const struct mx *m);
void mx_cache_flush(struct mx *m);

/* "5.1.10" etc. (enhanced status code, RFC 3463) and a short text. */
const char *mx_status_code(enum mx_status s);
const char *mx_status_text(enum mx_status s);
/* 1 when retrying cannot help (bounce now). */
int mx_status_permanent(enum mx_status s);

#endif
