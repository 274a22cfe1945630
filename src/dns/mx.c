/*
 * mx: MX resolution with preference order, implicit MX, null MX, the backup-MX
 * rule, the hosts table and the MX cache (mx.h says what and in which order).
 *
 * Trust: domains come from envelopes and MX answers from the network; names are
 * bounded (fixed arrays, checked copies), lower-cased before any comparison, and
 * nothing here is passed to anything but c-ares.
 *
 * One resolution is one struct mx_req: the MX query, then A and AAAA for each
 * exchanger in parallel; pending counts the queries in flight and the result is
 * built when it reaches 0.  mx_free() detaches the requests (req->m = NULL) and
 * calls their callbacks with MX_TEMPFAIL; a detached request lives on only until
 * its last DNS answer (dns_free() delivers one to every query) frees it.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <event2/event.h>

#include "deliver/hosts.h"
#include "dns/dns.h"
#include "dns/mx.h"
#include "util/log.h"
#include "util/xalloc.h"

struct mx_cache_entry {
	char domain[256];
	struct mx_result *res;
	long expires_ms;
	unsigned long used;        /* LRU stamp */
};

struct work {
	char name[256];
	int pref;
	char v4[8][16];
	size_t n4;
	char v6[8][46];
	size_t n6;
	const struct hosts_entry *he;  /* the hosts table overrides DNS for this exchanger */
};

struct mx_req {
	struct mx *m;                  /* NULL once mx_free() detached it */
	mx_cb cb;
	void *arg;
	char domain[256];
	struct event *ev;              /* deferred delivery (hosts, cache, bad names) */
	int pending;                   /* DNS queries in flight */
	int tempfail;                  /* some lookup failed temporarily */
	int implicit;
	int self_pref;                 /* our preference, -1 if we are not an MX */
	unsigned long ttl;
	int have_ttl;
	struct work w[MX_MAX_HOSTS];
	size_t nw;
	struct mx_result res;
	struct mx_req *prev, *next;
	const struct hosts_table *hosts; /* the caller's table, for the whole request */
	int use_cache;                 /* hosts is the mx's own table: the cache applies */
};

struct aq {                        /* one address query */
	struct mx_req *r;
	size_t i;
	int type;
};

struct mx {
	struct event_base *base;
	struct dns *dns;
	struct mx_config c;
	char **self_names;
	char **self_addrs;             /* canonical text */
	size_t nself_names, nself_addrs;
	unsigned long long rng;
	struct mx_cache_entry *cache;
	size_t ncache;
	unsigned long stamp, hits;
	struct mx_req *reqs;
};

/* ---- small helpers ----------------------------------------------------------- */

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Lower case, no trailing '.'; 0, or -1 when empty or too long for a domain name. */
static int norm_name(char *dst, size_t sz, const char *src)
{
	size_t len = strlen(src);

	if (len > 0 && src[len - 1] == '.')
		len--;
	if (len == 0 || len >= sz || len > 253)
		return -1;
	for (size_t i = 0; i < len; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[len] = '\0';
	return 0;
}

/* splitmix64: a small seedable generator; the order among equal preferences only needs to spread load. */
static unsigned long long rnd(struct mx *m)
{
	unsigned long long z = (m->rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int cmp_mx(const void *a, const void *b)
{
	const struct dns_mx *x = a, *y = b;
	return (int)x->pref - (int)y->pref;
}

/* RFC 5321 5.1: "If there are multiple destinations with the same preference ... randomize". */
static void shuffle_mx(struct mx *m, struct dns_mx *v, size_t n)
{
	for (size_t s = 0, e; s < n; s = e) {
		for (e = s + 1; e < n && v[e].pref == v[s].pref; e++)
			;
		for (size_t i = e - 1; i > s; i--) {
			size_t j = s + (size_t)(rnd(m) % (i - s + 1));
			struct dns_mx t = v[i];
			v[i] = v[j];
			v[j] = t;
		}
	}
}

static void shuffle_hosts(struct mx *m, struct mx_host *v, size_t n)
{
	for (size_t s = 0, e; s < n; s = e) {
		for (e = s + 1; e < n && v[e].pref == v[s].pref; e++)
			;
		for (size_t i = e - 1; i > s; i--) {
			size_t j = s + (size_t)(rnd(m) % (i - s + 1));
			struct mx_host t = v[i];
			v[i] = v[j];
			v[j] = t;
		}
	}
}

static int is_self_name(const struct mx *m, const char *name)
{
	for (size_t i = 0; i < m->nself_names; i++)
		if (strcmp(m->self_names[i], name) == 0)
			return 1;
	return 0;
}

static int is_self_addr(const struct mx *m, const char *ip)
{
	for (size_t i = 0; i < m->nself_addrs; i++)
		if (strcmp(m->self_addrs[i], ip) == 0)
			return 1;
	return 0;
}

static void add_addr(struct mx_host *h, int family, const char *ip, unsigned short port)
{
	if (h->naddrs >= MX_HOST_ADDRS)
		return;
	struct mx_addr *a = &h->addrs[h->naddrs++];
	a->family = family;
	snprintf(a->ip, sizeof(a->ip), "%s", ip);
	a->port = port;
}

static void from_hosts_entry(struct mx_host *h, const struct hosts_entry *he)
{
	for (size_t i = 0; i < he->naddrs; i++)
		add_addr(h, he->addrs[i].family, he->addrs[i].ip, he->addrs[i].port);
}

/* ---- the cache ----------------------------------------------------------------- */

static struct mx_cache_entry *cache_find(struct mx *m, const char *domain)
{
	long now = now_ms();

	for (size_t i = 0; i < m->ncache; i++) {
		struct mx_cache_entry *e = &m->cache[i];
		if (strcmp(e->domain, domain) != 0)
			continue;
		if (now >= e->expires_ms) {
			free(e->res);
			m->cache[i] = m->cache[--m->ncache];
			return NULL;
		}
		e->used = ++m->stamp;
		return e;
	}
	return NULL;
}

static void cache_put(struct mx *m, const char *domain, const struct mx_result *res, unsigned long ttl)
{
	long life = m->c.cache_time;
	long now = now_ms();
	struct mx_cache_entry *e = NULL;

	if (life <= 0 || m->c.cache_max == 0)
		return;
	if (!m->c.cache_ignore_ttl && (unsigned long)life > ttl)
		life = (long)ttl;
	if (life <= 0)
		return;
	for (size_t i = 0; i < m->ncache && e == NULL; i++)
		if (strcmp(m->cache[i].domain, domain) == 0)
			e = &m->cache[i];
	if (e == NULL && m->ncache < m->c.cache_max) {
		e = &m->cache[m->ncache++];
		e->res = NULL;
	}
	if (e == NULL) {
		/* Full: an expired entry, else the least recently used. */
		e = &m->cache[0];
		for (size_t i = 0; i < m->ncache; i++) {
			if (now >= m->cache[i].expires_ms) {
				e = &m->cache[i];
				break;
			}
			if (m->cache[i].used < e->used)
				e = &m->cache[i];
		}
	}
	free(e->res);
	snprintf(e->domain, sizeof(e->domain), "%s", domain);
	e->res = xmalloc(sizeof(*e->res));
	*e->res = *res;
	e->expires_ms = now + life * 1000L;
	e->used = ++m->stamp;
}

/* ---- finishing ------------------------------------------------------------------- */

static void unlink_req(struct mx_req *r)
{
	struct mx *m = r->m;

	if (r->prev != NULL)
		r->prev->next = r->next;
	else if (m != NULL && m->reqs == r)
		m->reqs = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
}

static void free_req(struct mx_req *r)
{
	if (r->ev != NULL)
		event_free(r->ev);
	free(r);
}

/* Hand the result over; r is gone afterwards, and so may be m (a cb may call mx_free). */
static void complete(struct mx_req *r)
{
	mx_cb cb = r->cb;
	void *arg = r->arg;
	struct mx_result *res = xmalloc(sizeof(*res));

	*res = r->res;
	unlink_req(r);
	r->m = NULL;
	free_req(r);
	cb(arg, res);
	free(res);
}

static void note_ttl(struct mx_req *r, unsigned long ttl)
{
	if (!r->have_ttl || ttl < r->ttl)
		r->ttl = ttl;
	r->have_ttl = 1;
}

/* Every lookup is in: apply the backup-MX rule by address, order addresses, decide. */
static void finish(struct mx_req *r)
{
	struct mx *m = r->m;
	struct mx_result *res = &r->res;

	/* E2: an exchanger whose address is ours is us, at its preference. */
	for (size_t i = 0; i < r->nw; i++) {
		const struct work *w = &r->w[i];
		int self = 0;
		if (w->he != NULL)
			continue;   /* the administrator's own word: not second-guessed */
		for (size_t k = 0; k < w->n4 && !self; k++)
			self = is_self_addr(m, w->v4[k]);
		for (size_t k = 0; k < w->n6 && !self; k++)
			self = is_self_addr(m, w->v6[k]);
		if (self && (r->self_pref < 0 || w->pref < r->self_pref))
			r->self_pref = w->pref;
	}
	memset(res, 0, sizeof(*res));
	res->source = MX_SRC_DNS;
	res->implicit = r->implicit;
	for (size_t i = 0; i < r->nw && res->nhosts < MX_MAX_HOSTS; i++) {
		const struct work *w = &r->w[i];
		if (r->self_pref >= 0 && w->pref >= r->self_pref)
			continue;
		struct mx_host *h = &res->hosts[res->nhosts];
		memset(h, 0, sizeof(*h));
		snprintf(h->name, sizeof(h->name), "%s", w->name);
		h->pref = w->pref;
		if (w->he != NULL) {
			from_hosts_entry(h, w->he);
		} else if (m->c.ipv6_first) {
			for (size_t k = 0; k < w->n6; k++)
				add_addr(h, AF_INET6, w->v6[k], 0);
			for (size_t k = 0; k < w->n4; k++)
				add_addr(h, AF_INET, w->v4[k], 0);
		} else {
			for (size_t k = 0; k < w->n4; k++)
				add_addr(h, AF_INET, w->v4[k], 0);
			for (size_t k = 0; k < w->n6; k++)
				add_addr(h, AF_INET6, w->v6[k], 0);
		}
		if (h->naddrs > 0)
			res->nhosts++;
	}
	if (res->nhosts > 0)
		res->status = MX_OK;
	else if (r->self_pref >= 0)
		res->status = MX_SELF;
	else if (r->tempfail)
		res->status = MX_TEMPFAIL;
	else
		res->status = MX_NOHOST;
	if (res->status == MX_OK && !r->tempfail && r->use_cache)
		cache_put(m, r->domain, res, r->have_ttl ? r->ttl : 0);
	if (res->status == MX_SELF)
		log_warnx("event=mx_loop domain=%s detail=\"the best MX is this host\"", r->domain);
	complete(r);
}

/* An answer for a detached request only counts down; the last one frees it. */
static int detached(struct mx_req *r)
{
	if (r->m != NULL)
		return 0;
	if (r->pending == 0)
		free_req(r);
	return 1;
}

static void on_addr(void *arg, const struct dns_answer *a)
{
	struct aq *q = arg;
	struct mx_req *r = q->r;
	struct work *w = &r->w[q->i];

	r->pending--;
	if (detached(r)) {
		free(q);
		return;
	}
	if (a->status == DNS_TEMPFAIL)
		r->tempfail = 1;
	if (a->status == DNS_OK) {
		if (q->type == ns_t_a) {
			for (size_t k = 0; k < a->naddrs && w->n4 < 8; k++)
				memcpy(w->v4[w->n4++], a->addrs[k], sizeof(w->v4[0]));
		} else {
			for (size_t k = 0; k < a->naddrs6 && w->n6 < 8; k++)
				memcpy(w->v6[w->n6++], a->addrs6[k], sizeof(w->v6[0]));
		}
		note_ttl(r, a->ttl);
	}
	free(q);
	if (r->pending == 0)
		finish(r);
}

static void query_addr(struct mx_req *r, size_t i, int type)
{
	struct aq *q = xmalloc(sizeof(*q));

	q->r = r;
	q->i = i;
	q->type = type;
	r->pending++;
	dns_query_ext(r->m->dns, r->w[i].name, type, on_addr, q);
}

/* The exchangers are known (sorted, shuffled): prune by name, bound, look up addresses. */
static void lookup_exchangers(struct mx_req *r, struct dns_mx *v, size_t n)
{
	struct mx *m = r->m;

	for (size_t i = 0; i < n; i++) {
		char name[256];
		if (norm_name(name, sizeof(name), v[i].host) == 0 && is_self_name(m, name)
		    && (r->self_pref < 0 || v[i].pref < r->self_pref))
			r->self_pref = v[i].pref;
	}
	r->nw = 0;
	for (size_t i = 0; i < n && r->nw < m->c.max_hosts; i++) {
		struct work *w = &r->w[r->nw];
		if (r->self_pref >= 0 && v[i].pref >= r->self_pref)
			continue;
		memset(w, 0, sizeof(*w));
		if (norm_name(w->name, sizeof(w->name), v[i].host) != 0)
			continue;   /* "." among real MX records: unusable (RFC 7505 4.3) */
		w->pref = v[i].pref;
		w->he = hosts_lookup(r->hosts, w->name);
		r->nw++;
	}
	/* Every query is counted before any is sent: dns_query() never calls back inside itself. */
	for (size_t i = 0; i < r->nw; i++) {
		if (r->w[i].he != NULL)
			continue;
		query_addr(r, i, ns_t_a);
		query_addr(r, i, ns_t_aaaa);
	}
	if (r->pending == 0)
		finish(r);
}

static void fail(struct mx_req *r, enum mx_status st)
{
	memset(&r->res, 0, sizeof(r->res));
	r->res.status = st;
	complete(r);
}

static void on_mx(void *arg, const struct dns_answer *a)
{
	struct mx_req *r = arg;
	struct dns_mx v[DNS_MAX_MX];
	size_t n;

	r->pending--;
	if (detached(r))
		return;
	switch (a->status) {
	case DNS_NXDOMAIN:
		fail(r, MX_NXDOMAIN);
		return;
	case DNS_TEMPFAIL:
		fail(r, MX_TEMPFAIL);
		return;
	case DNS_NODATA:
		/* RFC 5321 5.1: no MX records: the domain itself is the implicit MX, preference 0. */
		if (r->m->c.no_mx_bounce) {
			fail(r, MX_NOMX);
			return;
		}
		r->implicit = 1;
		memset(&v[0], 0, sizeof(v[0]));
		snprintf(v[0].host, sizeof(v[0].host), "%s", r->domain);
		lookup_exchangers(r, v, 1);
		return;
	case DNS_OK:
		break;
	}
	/* RFC 7505 3: a null MX is a single MX record whose exchange is "." (the root). */
	if (a->nmx == 1 && a->mx[0].host[0] == '\0') {
		fail(r, MX_NULLMX);
		return;
	}
	n = a->nmx;
	memcpy(v, a->mx, n * sizeof(v[0]));
	note_ttl(r, a->ttl);
	qsort(v, n, sizeof(v[0]), cmp_mx);
	shuffle_mx(r->m, v, n);
	lookup_exchangers(r, v, n);
}

static void on_deferred(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	complete(arg);
}

/* ---- public ---------------------------------------------------------------------- */

void mx_config_defaults(struct mx_config *c)
{
	memset(c, 0, sizeof(*c));
	c->cache_time = 864000;
	c->cache_max = 1024;
	c->max_hosts = MX_MAX_HOSTS;
}

struct mx *mx_new(struct event_base *base, struct dns *dns, const struct mx_config *c)
{
	struct mx *m = xcalloc(1, sizeof(*m));

	m->base = base;
	m->dns = dns;
	m->c = *c;
	if (m->c.max_hosts == 0 || m->c.max_hosts > MX_MAX_HOSTS)
		m->c.max_hosts = MX_MAX_HOSTS;
	if (m->c.cache_time < 0)
		m->c.cache_time = 0;
	m->cache = xreallocarray(NULL, m->c.cache_max ? m->c.cache_max : 1, sizeof(*m->cache));
	m->self_names = xreallocarray(NULL, c->nself_names + 1, sizeof(char *));
	for (size_t i = 0; i < c->nself_names; i++) {
		char name[256];
		if (norm_name(name, sizeof(name), c->self_names[i]) == 0)
			m->self_names[m->nself_names++] = xstrdup(name);
	}
	m->self_addrs = xreallocarray(NULL, c->nself_addrs + 1, sizeof(char *));
	for (size_t i = 0; i < c->nself_addrs; i++) {
		unsigned char bin[16];
		char text[46];
		int af = strchr(c->self_addrs[i], ':') != NULL ? AF_INET6 : AF_INET;
		if (inet_pton(af, c->self_addrs[i], bin) != 1 || inet_ntop(af, bin, text, sizeof(text)) == NULL) {
			log_warnx("event=mx_error detail=\"bad own address\" address=%s", lq(c->self_addrs[i]));
			continue;
		}
		m->self_addrs[m->nself_addrs++] = xstrdup(text);
	}
	if (c->seed != 0) {
		m->rng = c->seed;
	} else if (getrandom(&m->rng, sizeof(m->rng), GRND_NONBLOCK) != (ssize_t)sizeof(m->rng)) {
		m->rng = (unsigned long long)time(NULL) ^ (unsigned long long)(uintptr_t)m;
	}
	return m;
}

void mx_free(struct mx *m)
{
	if (m == NULL)
		return;
	/* Detach every request first, so a callback that resolves again cannot find them. */
	while (m->reqs != NULL) {
		struct mx_req *r = m->reqs;
		mx_cb cb = r->cb;
		void *arg = r->arg;
		struct mx_result res;

		unlink_req(r);
		r->m = NULL;
		if (r->ev != NULL) {
			event_free(r->ev);
			r->ev = NULL;
		}
		if (r->pending == 0)
			free(r);
		memset(&res, 0, sizeof(res));
		res.status = MX_TEMPFAIL;
		cb(arg, &res);
	}
	mx_cache_flush(m);
	free(m->cache);
	for (size_t i = 0; i < m->nself_names; i++)
		free(m->self_names[i]);
	for (size_t i = 0; i < m->nself_addrs; i++)
		free(m->self_addrs[i]);
	free(m->self_names);
	free(m->self_addrs);
	free(m);
}

void mx_resolve(struct mx *m, const char *domain, mx_cb cb, void *arg)
{
	mx_resolve_hosts(m, domain, m->c.hosts, cb, arg);
}

void mx_resolve_hosts(struct mx *m, const char *domain, const struct hosts_table *hosts, mx_cb cb, void *arg)
{
	struct mx_req *r = xcalloc(1, sizeof(*r));
	const struct hosts_entry *he;
	struct mx_cache_entry *ce;

	r->m = m;
	r->cb = cb;
	r->arg = arg;
	r->self_pref = -1;
	r->hosts = hosts;
	/* Cached answers were built with the mx's own table: another table neither reads nor fills them. */
	r->use_cache = hosts == m->c.hosts;
	r->next = m->reqs;
	if (m->reqs != NULL)
		m->reqs->prev = r;
	m->reqs = r;

	if (norm_name(r->domain, sizeof(r->domain), domain) != 0) {
		r->res.status = MX_NXDOMAIN;
	} else if ((he = hosts_lookup(r->hosts, r->domain)) != NULL) {
		/* Seed 004: the hosts table overrides DNS for this domain; no query at all. */
		r->res.source = MX_SRC_HOSTS;
		r->res.nhosts = 1;
		snprintf(r->res.hosts[0].name, sizeof(r->res.hosts[0].name), "%s", r->domain);
		from_hosts_entry(&r->res.hosts[0], he);
	} else if (r->use_cache && (ce = cache_find(m, r->domain)) != NULL) {
		m->hits++;
		r->res = *ce->res;
		r->res.source = MX_SRC_CACHE;
		shuffle_hosts(m, r->res.hosts, r->res.nhosts);
	} else {
		r->pending++;
		dns_query_ext(m->dns, r->domain, ns_t_mx, on_mx, r);
		return;
	}
	/* Never call back inside mx_resolve(): deliver from the loop. */
	struct timeval zero = { 0, 0 };
	r->ev = evtimer_new(m->base, on_deferred, r);
	evtimer_add(r->ev, &zero);
}

unsigned long mx_cache_hits(const struct mx *m)
{
	return m->hits;
}

size_t mx_cache_size(const struct mx *m)
{
	return m->ncache;
}

void mx_set_hosts(struct mx *m, const struct hosts_table *hosts)
{
	m->c.hosts = hosts;
	mx_cache_flush(m);
}

void mx_cache_flush(struct mx *m)
{
	for (size_t i = 0; i < m->ncache; i++)
		free(m->cache[i].res);
	m->ncache = 0;
}

const char *mx_status_code(enum mx_status s)
{
	switch (s) {
	case MX_OK: return "2.0.0";
	case MX_TEMPFAIL: return "4.4.3";
	case MX_NXDOMAIN: return "5.1.2";
	case MX_NULLMX: return "5.1.10";
	case MX_NOMX: return "5.1.2";
	case MX_NOHOST: return "5.4.4";
	case MX_SELF: return "5.4.6";
	}
	return "4.4.3";
}

const char *mx_status_text(enum mx_status s)
{
	switch (s) {
	case MX_OK: return "resolved";
	case MX_TEMPFAIL: return "DNS lookup failed temporarily";
	case MX_NXDOMAIN: return "domain not found";
	case MX_NULLMX: return "domain does not accept mail (null MX)";
	case MX_NOMX: return "domain has no MX record";
	case MX_NOHOST: return "no mail exchanger has an address";
	case MX_SELF: return "mail for this domain loops back to myself (best MX is this host)";
	}
	return "DNS lookup failed temporarily";
}

int mx_status_permanent(enum mx_status s)
{
	return s != MX_OK && s != MX_TEMPFAIL;
}
