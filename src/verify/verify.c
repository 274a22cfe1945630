/*
 * verify: cache, coalescing, concurrency and deadlines around probes
 * (verify.h).  Trust: addresses come from SMTP clients (parsed by smtpd);
 * they are only used as cache keys and handed to probe.c, which refuses
 * CR/LF.  DNS answers and probe replies are the network's: bounded by their
 * own modules.
 *
 * A job is one question (host, port, method, address) being answered: it is
 * queued, then resolving the host name (when it is one), then probing.  Its
 * requests wait on it; a request whose deadline passes leaves the job, which
 * goes on (its answer still fills the cache).  Jobs are freed when their
 * probe (or resolution) ends; requests when their callback has run.
 */
#include "verify/verify.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "dns/dns.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "verify/vcache.h"

#define QUEUE_PER_SLOT 20

enum jstate { J_QUEUED = 0, J_RESOLVING, J_PROBING };

struct vjob;

struct verify_req {
	struct verifier *v;
	struct vjob *job;              /* NULL once answered or when answered from the cache */
	struct verify_req *prev, *next; /* the job's waiters */
	verify_cb cb;
	void *arg;
	struct event *timer;           /* the deadline, or the deferred delivery of a ready answer */
	struct probe_answer a;         /* ready answer (deferred delivery) */
	int cached;
	int ready;                     /* a holds the answer: the timer delivers it */
};

struct vjob {
	struct verifier *v;
	struct vjob *prev, *next;      /* all jobs */
	struct vjob *qnext;            /* the waiting queue */
	enum jstate state;
	char *key;
	char *host;
	unsigned port;
	enum probe_method method;
	char *addr;
	struct probe *probe;
	int dns_pending;               /* a DNS answer will still come: the job must live until then */
	int dead;                      /* finished while DNS was pending: free on the answer */
	int no_dns;                    /* a name and no resolver: the answer says so */
	struct verify_req *waiters;
	long started_ms;
};

struct verifier {
	struct event_base *base;
	struct verify_config c;
	char *helo;
	char **dns_servers;
	size_t ndns;
	struct dns *dns;               /* created on the first name to resolve */
	struct vcache *cache;
	struct vjob *jobs;
	struct vjob *qhead, *qtail;
	size_t queued;
	unsigned running;              /* jobs resolving or probing */
	unsigned long probes;
	int closing;
};

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void start_job(struct vjob *j);

/* ---- requests ---------------------------------------------------------------------- */

static void req_unlink(struct verify_req *r)
{
	struct vjob *j = r->job;
	if (!j)
		return;
	if (r->prev)
		r->prev->next = r->next;
	else
		j->waiters = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
	r->job = NULL;
}

static void req_free(struct verify_req *r)
{
	req_unlink(r);
	if (r->timer)
		event_free(r->timer);
	free(r);
}

/* Hand r its answer now (from a loop callback) and free it. */
static void req_answer(struct verify_req *r, const struct probe_answer *a, int cached)
{
	verify_cb cb = r->cb;
	void *arg = r->arg;
	struct probe_answer copy = *a;
	req_free(r);
	cb(arg, &copy, cached);
}

static void on_req_timer(evutil_socket_t fd, short what, void *arg)
{
	struct verify_req *r = arg;
	if (r->ready) {
		req_answer(r, &r->a, r->cached);
		return;
	}
	/* The deadline: leave the job (it goes on and fills the cache) and answer "could not ask". */
	struct probe_answer a;
	memset(&a, 0, sizeof(a));
	a.result = PROBE_FAIL;
	a.how = "wait";
	snprintf(a.text, sizeof(a.text), "no answer within %u ms", r->v->c.timeout_ms);
	req_answer(r, &a, 0);
}

/* Answer r from the loop (never inside verify_ask). */
static void req_defer(struct verify_req *r, const struct probe_answer *a, int cached)
{
	r->a = *a;
	r->cached = cached;
	r->ready = 1;
	struct timeval zero = { 0, 0 };
	evtimer_add(r->timer, &zero);
}

/* ---- jobs ---------------------------------------------------------------------------- */

static void job_free(struct vjob *j)
{
	struct verifier *v = j->v;
	if (j->prev)
		j->prev->next = j->next;
	else if (v->jobs == j)
		v->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	j->prev = j->next = NULL;
	while (j->waiters)
		req_free(j->waiters);
	if (j->probe)
		probe_cancel(j->probe);
	free(j->key);
	free(j->host);
	free(j->addr);
	free(j);
}

static struct vjob *job_find(struct verifier *v, const char *key)
{
	for (struct vjob *j = v->jobs; j; j = j->next)
		if (strcmp(j->key, key) == 0)
			return j;
	return NULL;
}

/* Start queued jobs while there is room. */
static void run_queue(struct verifier *v)
{
	while (!v->closing && v->qhead && v->running < v->c.concurrency) {
		struct vjob *j = v->qhead;
		v->qhead = j->qnext;
		if (!v->qhead)
			v->qtail = NULL;
		j->qnext = NULL;
		v->queued--;
		start_job(j);
	}
}

static char *down_key(const struct vjob *j)
{
	return xasprintf("down|%s|%u", j->host, j->port);
}

static long ttl_for(const struct verifier *v, enum probe_result r)
{
	switch (r) {
	case PROBE_OK: return v->c.positive_ttl_ms;
	case PROBE_UNKNOWN: return v->c.negative_ttl_ms;
	case PROBE_TEMP:
	case PROBE_FAIL: return v->c.tempfail_ttl_ms;
	}
	return 0;
}

/* The job's answer: log it, remember it, tell every waiter, free the job, start the next. */
static void job_done(struct vjob *j, const struct probe_answer *a)
{
	struct verifier *v = j->v;
	long now = now_ms();
	j->probe = NULL;
	v->running--;
	/* Out of the job list first: a waiter's callback that asks again must not join a finished job. */
	if (j->prev)
		j->prev->next = j->next;
	else if (v->jobs == j)
		v->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	j->prev = j->next = NULL;
	log_info("event=verify_probe host=%s port=%u method=%s to=<%s> result=%s reply=%d stage=%s ms=%ld detail=%s",
	    j->host, j->port, j->method == PROBE_VRFY ? "vrfy" : "rcpt", lq(j->addr), probe_result_name(a->result),
	    a->code, a->how ? a->how : "-", now - j->started_ms, lq(a->text));
	vcache_put(v->cache, j->key, a, ttl_for(v, a->result), now);
	if (a->result == PROBE_FAIL) {
		char *dk = down_key(j);
		vcache_put(v->cache, dk, a, v->c.tempfail_ttl_ms, now);
		free(dk);
	}
	while (j->waiters)
		req_answer(j->waiters, a, 0);
	if (j->dns_pending)
		j->dead = 1;   /* cannot happen today (a job probes only after its answer), kept safe */
	else
		job_free(j);
	run_queue(v);
}

static void on_probe(void *arg, const struct probe_answer *a)
{
	struct vjob *j = arg;
	if (j->no_dns) {
		struct probe_answer b = *a;
		b.how = "dns";
		snprintf(b.text, sizeof(b.text), "%s: no resolver", j->host);
		job_done(j, &b);
		return;
	}
	job_done(j, a);
}

static void probe_ip(struct vjob *j, const char *ip)
{
	struct verifier *v = j->v;
	struct sockaddr_storage ss;
	socklen_t len;
	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)j->port);
		inet_pton(AF_INET6, ip, &s6->sin6_addr);
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)j->port);
		inet_pton(AF_INET, ip, &s4->sin_addr);
		len = sizeof(*s4);
	}
	struct probe_params pp = {
		.sa = (struct sockaddr *)&ss,
		.salen = len,
		.helo = v->helo,
		.addr = j->addr,
		.method = j->method,
		.timeout_ms = v->c.timeout_ms,
	};
	j->state = J_PROBING;
	v->probes++;
	j->probe = probe_start(v->base, &pp, on_probe, j);
}

static void on_dns(void *arg, const struct dns_answer *da)
{
	struct vjob *j = arg;
	j->dns_pending = 0;
	if (j->dead || j->v->closing) {
		if (!j->v->closing)
			job_free(j);
		return;
	}
	if (da->status != DNS_OK || da->naddrs == 0) {
		struct probe_answer a;
		memset(&a, 0, sizeof(a));
		a.result = PROBE_FAIL;
		a.how = "dns";
		snprintf(a.text, sizeof(a.text), "%s: %s", j->host,
		    da->status == DNS_TEMPFAIL ? "DNS lookup failed" : "no address");
		job_done(j, &a);
		return;
	}
	probe_ip(j, da->addrs[0]);
}

static void start_job(struct vjob *j)
{
	struct verifier *v = j->v;
	unsigned char bin[16];
	v->running++;
	j->started_ms = now_ms();
	if (inet_pton(AF_INET, j->host, bin) == 1 || inet_pton(AF_INET6, j->host, bin) == 1) {
		probe_ip(j, j->host);
		return;
	}
	if (!v->dns)
		v->dns = dns_new(v->base, v->dns_servers, v->ndns, v->c.dns_timeout_ms > 0 ? v->c.dns_timeout_ms : 5000);
	if (!v->dns) {
		/* No resolver: a probe that cannot start answers PROBE_FAIL from the loop, like any failure. */
		j->no_dns = 1;
		j->state = J_PROBING;
		v->probes++;
		j->probe = probe_start(v->base, &(struct probe_params){ .addr = "" }, on_probe, j);
		return;
	}
	j->state = J_RESOLVING;
	j->dns_pending = 1;
	dns_query(v->dns, j->host, ns_t_a, on_dns, j);
}

/* ---- public -------------------------------------------------------------------------- */

static void set_config(struct verifier *v, const struct verify_config *c)
{
	v->c = *c;
	if (v->c.concurrency == 0)
		v->c.concurrency = 1;
	if (v->c.timeout_ms == 0)
		v->c.timeout_ms = 30000;
	free(v->helo);
	v->helo = xstrdup(c->helo && c->helo[0] ? c->helo : "localhost");
	v->c.helo = v->helo;
}

struct verifier *verifier_new(struct event_base *base, const struct verify_config *c)
{
	struct verifier *v = xcalloc(1, sizeof(*v));
	v->base = base;
	set_config(v, c);
	v->ndns = c->ndns_servers;
	v->dns_servers = xcalloc(v->ndns + 1, sizeof(char *));
	for (size_t i = 0; i < v->ndns; i++)
		v->dns_servers[i] = xstrdup(c->dns_servers[i]);
	v->c.dns_servers = NULL;
	v->cache = vcache_new(c->cache_size);
	return v;
}

void verifier_configure(struct verifier *v, const struct verify_config *c)
{
	/* DNS servers keep what the verifier started with (a restart changes them, as for DNSBL). */
	set_config(v, c);
	v->c.dns_servers = NULL;
	vcache_flush(v->cache);
	vcache_set_max(v->cache, c->cache_size);
	run_queue(v);
}

void verifier_free(struct verifier *v)
{
	if (!v)
		return;
	v->closing = 1;
	/* DNS first: it answers every query still out (on_dns sees closing), then no job is referenced. */
	if (v->dns)
		dns_free(v->dns);
	while (v->jobs)
		job_free(v->jobs);
	vcache_free(v->cache);
	for (size_t i = 0; i < v->ndns; i++)
		free(v->dns_servers[i]);
	free(v->dns_servers);
	free(v->helo);
	free(v);
}

struct verify_req *verify_ask(struct verifier *v, const char *host, unsigned port, enum probe_method m,
    const char *addr, verify_cb cb, void *arg)
{
	struct verify_req *r = xcalloc(1, sizeof(*r));
	struct probe_answer a;
	r->v = v;
	r->cb = cb;
	r->arg = arg;
	r->timer = evtimer_new(v->base, on_req_timer, r);

	char lower[600];
	snprintf(lower, sizeof(lower), "%s", addr);
	for (char *p = lower; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	char *key = xasprintf("%s|%s|%u|%s", m == PROBE_VRFY ? "vrfy" : "rcpt", host, port, lower);
	char *dk = xasprintf("down|%s|%u", host, port);
	long now = now_ms();
	int hit = vcache_get(v->cache, key, now, &a) || vcache_get(v->cache, dk, now, &a);
	free(dk);
	if (hit) {
		free(key);
		req_defer(r, &a, 1);
		return r;
	}
	struct vjob *j = job_find(v, key);
	if (!j) {
		if (v->running >= v->c.concurrency && v->queued >= (size_t)v->c.concurrency * QUEUE_PER_SLOT) {
			free(key);
			memset(&a, 0, sizeof(a));
			a.result = PROBE_FAIL;
			a.how = "queue";
			snprintf(a.text, sizeof(a.text), "too many verifications waiting");
			req_defer(r, &a, 0);
			return r;
		}
		j = xcalloc(1, sizeof(*j));
		j->v = v;
		j->key = key;
		key = NULL;
		j->host = xstrdup(host);
		j->port = port;
		j->method = m;
		j->addr = xstrdup(addr);
		j->next = v->jobs;
		if (v->jobs)
			v->jobs->prev = j;
		v->jobs = j;
		if (v->qtail)
			v->qtail->qnext = j;
		else
			v->qhead = j;
		v->qtail = j;
		v->queued++;
	}
	free(key);
	r->job = j;
	r->next = j->waiters;
	if (j->waiters)
		j->waiters->prev = r;
	j->waiters = r;
	struct timeval tv = { v->c.timeout_ms / 1000, (v->c.timeout_ms % 1000) * 1000 };
	evtimer_add(r->timer, &tv);
	/* Started from the loop's next pass at the earliest: run_queue never calls back inside us. */
	run_queue(v);
	return r;
}

void verify_cancel(struct verify_req *r)
{
	if (r)
		req_free(r);
}

unsigned long verifier_probes(const struct verifier *v)
{
	return v->probes;
}

size_t verifier_cache_size(const struct verifier *v)
{
	return vcache_size(v->cache);
}
