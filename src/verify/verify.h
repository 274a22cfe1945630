/*
 * verify: recipient verification for smtpd (E1 relay domains with
 * verify=probe, E7 peer lookups): "does host:port take this address?",
 * answered from the cache or by a probe (probe.h), without ever blocking the
 * event loop.
 *
 * - Cache (vcache.h): answers live verify_positive_ttl (found),
 *   verify_negative_ttl (5xx) or verify_tempfail_ttl (4xx, unreachable); a
 *   host that could not be reached is also remembered as down for
 *   verify_tempfail_ttl, so every address waiting on it fails fast.
 * - Coalescing: a question already being asked (same host, port, method and
 *   address) is not asked twice; the new request waits for that probe.
 * - Concurrency: at most verify_concurrency probes at once; the others queue
 *   (at most 20 per slot; beyond that a request fails at once).
 * - Deadline: every request is answered within verify_timeout (queueing, DNS
 *   and the probe included): PROBE_FAIL "timed out" when nothing came.
 * - Names: a host that is not an IP address is looked up (A records, the
 *   first address) with the verifier's own resolver.
 *
 * Callback: exactly once per request, from the event loop, never inside
 * verify_ask(); never after verify_cancel().  A request is freed after its
 * callback.  verifier_free() drops requests still pending without callbacks:
 * cancel them first.
 */
#ifndef TSUBAME_VERIFY_H
#define TSUBAME_VERIFY_H

#include <stddef.h>

#include "verify/probe.h"

struct event_base;
struct verifier;
struct verify_req;

struct verify_config {
	const char *helo;             /* our name in EHLO (copied) */
	unsigned timeout_ms;
	unsigned concurrency;
	size_t cache_size;
	long positive_ttl_ms, negative_ttl_ms, tempfail_ttl_ms;
	char *const *dns_servers;     /* as dns_new(); NULL = /etc/resolv.conf */
	size_t ndns_servers;
	int dns_timeout_ms;
};

/* cached: 1 when the answer came from the cache (no probe). */
typedef void (*verify_cb)(void *arg, const struct probe_answer *a, int cached);

struct verifier *verifier_new(struct event_base *base, const struct verify_config *c);
/* New settings (a reload): limits, lifetimes, name; the cache is emptied (the tables may have changed). */
void verifier_configure(struct verifier *v, const struct verify_config *c);
void verifier_free(struct verifier *v);

/* Ask whether host:port takes addr.  host: an IP address or a name.  Never NULL. */
struct verify_req *verify_ask(struct verifier *v, const char *host, unsigned port, enum probe_method m,
    const char *addr, verify_cb cb, void *arg);
void verify_cancel(struct verify_req *r);

/* Statistics for tests and logs. */
unsigned long verifier_probes(const struct verifier *v);   /* probes started */
size_t verifier_cache_size(const struct verifier *v);

#endif
