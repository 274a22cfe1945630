/*
 * dns: asynchronous DNS through c-ares, driven by the process's libevent loop.
 *
 * Owns one c-ares channel per struct dns and the libevent events that stand in
 * for c-ares' own select() loop: c-ares tells us which sockets it wants watched
 * (ARES_OPT_SOCK_STATE_CB) and we add, change or drop one persistent event per
 * socket; one timer follows ares_timeout() and is re-armed after every step, so
 * retries and time-outs happen without anyone polling.  c-ares does the whole
 * protocol (ids, retries, TCP fallback, parsing); this file only maps sockets,
 * time and answers.
 *
 * Trust: answers come from the network and are untrusted; they are parsed by
 * c-ares and copied into fixed-size fields here, truncated when too long.
 *
 * Callback timing (why there is a deferred list): c-ares may call a query's
 * callback from inside ares_query() itself (no servers, socket errors).  A caller
 * that is still setting up its own state would then be re-entered, so such
 * results are parked and delivered from a libevent callback instead: a dns_cb
 * never runs inside dns_query().  Likewise dns_free() called from inside a dns_cb
 * is deferred until c-ares has returned, because ares_destroy() must not run
 * inside ares_process_fd().
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>
#include <ares_dns.h>
#include <event2/event.h>

#include "dns/dns.h"
#include "util/log.h"
#include "util/xalloc.h"

struct dns_sock {
	struct dns *d;
	ares_socket_t fd;
	struct event *ev;
	struct dns_sock *next;
};

struct dns_q {
	struct dns *d;
	dns_cb cb;
	void *arg;
	int type;
	struct dns_answer ans;
	struct dns_q *next;        /* on the deferred list */
};

struct dns {
	struct event_base *base;
	ares_channel ch;
	struct dns_sock *socks;
	struct event *timer;       /* follows ares_timeout() */
	struct event *deferred_ev; /* delivers results parked in deferred */
	struct dns_q *deferred, *deferred_tail;
	int sync_depth;            /* > 0 while inside ares_query() */
	int depth;                 /* > 0 while c-ares or a deferred delivery is running */
	int free_pending;          /* dns_free() was called at depth > 0 */
	int destroying;
};

static void dns_destroy(struct dns *d);

/* ---- answers ---------------------------------------------------------------- */

static void fill_a(struct dns_answer *a, const unsigned char *abuf, int alen)
{
	struct ares_addrttl at[8];
	int n = 8;
	int r = ares_parse_a_reply(abuf, alen, NULL, at, &n);

	if (r == ARES_ENODATA || (r == ARES_SUCCESS && n <= 0)) {
		a->status = DNS_NODATA;
		return;
	}
	if (r != ARES_SUCCESS) {
		/* A reply c-ares cannot parse is a server problem, not an answer. */
		a->status = DNS_TEMPFAIL;
		return;
	}
	for (int i = 0; i < n && a->naddrs < 8; i++) {
		if (inet_ntop(AF_INET, &at[i].ipaddr, a->addrs[a->naddrs], sizeof(a->addrs[0])) != NULL) {
			unsigned long ttl = at[i].ttl > 0 ? (unsigned long)at[i].ttl : 0;
			if (a->naddrs == 0 || ttl < a->ttl)
				a->ttl = ttl;
			a->naddrs++;
		}
	}
	a->status = a->naddrs > 0 ? DNS_OK : DNS_NODATA;
}

static void fill_aaaa(struct dns_answer *a, const unsigned char *abuf, int alen)
{
	struct ares_addr6ttl at[8];
	int n = 8;
	int r = ares_parse_aaaa_reply(abuf, alen, NULL, at, &n);

	if (r == ARES_ENODATA || (r == ARES_SUCCESS && n <= 0)) {
		a->status = DNS_NODATA;
		return;
	}
	if (r != ARES_SUCCESS) {
		a->status = DNS_TEMPFAIL;
		return;
	}
	for (int i = 0; i < n && a->naddrs6 < 8; i++) {
		if (inet_ntop(AF_INET6, &at[i].ip6addr, a->addrs6[a->naddrs6], sizeof(a->addrs6[0])) != NULL) {
			unsigned long ttl = at[i].ttl > 0 ? (unsigned long)at[i].ttl : 0;
			if (a->naddrs6 == 0 || ttl < a->ttl)
				a->ttl = ttl;
			a->naddrs6++;
		}
	}
	a->status = a->naddrs6 > 0 ? DNS_OK : DNS_NODATA;
}

/*
 * The smallest TTL among the answer records of type rtype, or -1 when the packet
 * cannot be walked.  c-ares' MX parser does not report TTLs; names are skipped with
 * ares_expand_name() so compression pointers are c-ares' business, not ours.
 */
static long answer_min_ttl(const unsigned char *abuf, int alen, int rtype)
{
	const unsigned char *p = abuf + HFIXEDSZ, *end = abuf + alen;
	long min = -1, len;
	char *name;

	if (alen < HFIXEDSZ)
		return -1;
	unsigned qd = DNS_HEADER_QDCOUNT(abuf), an = DNS_HEADER_ANCOUNT(abuf);
	for (unsigned i = 0; i < qd; i++) {
		if (ares_expand_name(p, abuf, alen, &name, &len) != ARES_SUCCESS)
			return -1;
		ares_free_string(name);
		if (len < 0 || end - p < len + QFIXEDSZ)
			return -1;
		p += len + QFIXEDSZ;
	}
	for (unsigned i = 0; i < an; i++) {
		if (ares_expand_name(p, abuf, alen, &name, &len) != ARES_SUCCESS)
			return -1;
		ares_free_string(name);
		if (len < 0 || end - p < len + RRFIXEDSZ)
			return -1;
		p += len;
		int type = DNS_RR_TYPE(p);
		unsigned long ttl = (unsigned long)DNS_RR_TTL(p) & 0x7fffffffUL; /* RFC 2181 8: top bit set means 0 */
		unsigned rdlen = DNS_RR_LEN(p);
		if ((unsigned long)(end - p) < RRFIXEDSZ + (unsigned long)rdlen)
			return -1;
		p += RRFIXEDSZ + rdlen;
		if (type == rtype && (min < 0 || (long)ttl < min))
			min = (long)ttl;
	}
	return min;
}

static void fill_mx(struct dns_answer *a, const unsigned char *abuf, int alen)
{
	struct ares_mx_reply *mx = NULL;
	int r = ares_parse_mx_reply(abuf, alen, &mx);

	if (r == ARES_ENODATA) {
		a->status = DNS_NODATA;
		return;
	}
	if (r != ARES_SUCCESS) {
		a->status = DNS_TEMPFAIL;
		return;
	}
	for (struct ares_mx_reply *m = mx; m != NULL && a->nmx < DNS_MAX_MX; m = m->next) {
		size_t len = strlen(m->host);
		/* Longer than a domain name can be: not an answer we can use. */
		if (len >= sizeof(a->mx[0].host))
			continue;
		memcpy(a->mx[a->nmx].host, m->host, len + 1);
		a->mx[a->nmx].pref = m->priority;
		a->nmx++;
	}
	ares_free_data(mx);
	long ttl = answer_min_ttl(abuf, alen, ns_t_mx);
	a->ttl = ttl > 0 ? (unsigned long)ttl : 0;
	a->status = a->nmx > 0 ? DNS_OK : DNS_NODATA;
}

/* RFC 1035 3.3.14: one TXT record is one or more character-strings; we join them per record. */
static void fill_txt(struct dns_answer *a, const unsigned char *abuf, int alen)
{
	struct ares_txt_ext *txt = NULL;
	int r = ares_parse_txt_reply_ext(abuf, alen, &txt);

	if (r == ARES_ENODATA) {
		a->status = DNS_NODATA;
		return;
	}
	if (r != ARES_SUCCESS) {
		a->status = DNS_TEMPFAIL;
		return;
	}
	size_t cur = (size_t)-1, used = 0;
	for (struct ares_txt_ext *t = txt; t != NULL; t = t->next) {
		if (t->record_start || cur == (size_t)-1) {
			if (a->ntxt >= 4)
				break;
			cur = a->ntxt++;
			used = 0;
			a->txt[cur][0] = '\0';
		}
		size_t room = sizeof(a->txt[0]) - 1 - used;
		size_t len = t->length < room ? t->length : room;
		memcpy(a->txt[cur] + used, t->txt, len);
		used += len;
		a->txt[cur][used] = '\0';
	}
	ares_free_data(txt);
	a->status = a->ntxt > 0 ? DNS_OK : DNS_NODATA;
}

static void fill_answer(struct dns_q *q, int status, const unsigned char *abuf, int alen)
{
	struct dns_answer *a = &q->ans;

	memset(a, 0, sizeof(*a));
	switch (status) {
	case ARES_SUCCESS:
		if (q->type == ns_t_a)
			fill_a(a, abuf, alen);
		else if (q->type == ns_t_aaaa)
			fill_aaaa(a, abuf, alen);
		else if (q->type == ns_t_mx)
			fill_mx(a, abuf, alen);
		else
			fill_txt(a, abuf, alen);
		break;
	case ARES_ENOTFOUND:
		a->status = DNS_NXDOMAIN;
		break;
	case ARES_ENODATA:
		a->status = DNS_NODATA;
		break;
	default:
		/* time-out, refused, server failure, destruction, bad name: try again later */
		a->status = DNS_TEMPFAIL;
		break;
	}
}

/* ---- delivery ---------------------------------------------------------------- */

static void deliver(struct dns_q *q)
{
	q->cb(q->arg, &q->ans);
	free(q);
}

static void defer(struct dns *d, struct dns_q *q)
{
	q->next = NULL;
	if (d->deferred_tail != NULL)
		d->deferred_tail->next = q;
	else
		d->deferred = q;
	d->deferred_tail = q;
	if (!d->destroying)
		event_active(d->deferred_ev, EV_TIMEOUT, 1);
}

static void flush_deferred(struct dns *d)
{
	/* Detach first: callbacks may park new results, which wait for the next pass. */
	struct dns_q *q = d->deferred;

	d->deferred = d->deferred_tail = NULL;
	while (q != NULL) {
		struct dns_q *next = q->next;
		deliver(q);
		q = next;
	}
}

static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_q *q = arg;

	(void)timeouts;
	fill_answer(q, status, abuf, alen);
	if (q->d->sync_depth > 0)
		defer(q->d, q);
	else
		deliver(q);
}

/* ---- the event loop glue ------------------------------------------------------ */

static void rearm(struct dns *d)
{
	struct timeval tv, *tp;

	if (d->destroying)
		return;
	tp = ares_timeout(d->ch, NULL, &tv);
	if (tp != NULL)
		evtimer_add(d->timer, tp);
	else
		evtimer_del(d->timer);
}

/* After every step: honour a dns_free() made from a callback, else follow c-ares' next deadline. */
static void after_step(struct dns *d)
{
	if (d->depth == 0 && d->free_pending) {
		dns_destroy(d);
		return;
	}
	rearm(d);
}

static void step(struct dns *d, ares_socket_t rfd, ares_socket_t wfd)
{
	d->depth++;
	ares_process_fd(d->ch, rfd, wfd);
	d->depth--;
	after_step(d);
}

static void on_sock(evutil_socket_t fd, short what, void *arg)
{
	/* s may be freed inside ares_process_fd (the socket closed): read d first. */
	struct dns_sock *s = arg;
	struct dns *d = s->d;

	step(d, (what & EV_READ) ? (ares_socket_t)fd : ARES_SOCKET_BAD,
	    (what & EV_WRITE) ? (ares_socket_t)fd : ARES_SOCKET_BAD);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	step(arg, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
}

static void on_deferred(evutil_socket_t fd, short what, void *arg)
{
	struct dns *d = arg;

	(void)fd;
	(void)what;
	d->depth++;
	flush_deferred(d);
	d->depth--;
	after_step(d);
}

static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct dns *d = data;
	struct dns_sock **pp = &d->socks, *s;

	while (*pp != NULL && (*pp)->fd != fd)
		pp = &(*pp)->next;
	s = *pp;
	if (!readable && !writable) {
		if (s != NULL) {
			*pp = s->next;
			if (s->ev != NULL)
				event_free(s->ev);
			free(s);
		}
		return;
	}
	if (s == NULL) {
		s = xcalloc(1, sizeof(*s));
		s->d = d;
		s->fd = fd;
		s->next = d->socks;
		d->socks = s;
	} else if (s->ev != NULL) {
		event_free(s->ev);
	}
	s->ev = event_new(d->base, fd, (short)((readable ? EV_READ : 0) | (writable ? EV_WRITE : 0) | EV_PERSIST),
	    on_sock, s);
	if (s->ev == NULL || event_add(s->ev, NULL) != 0)
		log_warnx("event=dns_error detail=\"cannot watch a resolver socket\"");
}

/* ---- servers ------------------------------------------------------------------ */

/* "IP", "IP:port", "[IPv6]:port", or a bare IPv6 address; port defaults to 53. */
static int parse_server(const char *s, struct ares_addr_port_node *n)
{
	char host[64];
	const char *port = NULL;
	size_t hlen;

	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (end == NULL)
			return -1;
		hlen = (size_t)(end - s - 1);
		if (end[1] == ':')
			port = end + 2;
		else if (end[1] != '\0')
			return -1;
		s++;
	} else {
		const char *c = strchr(s, ':');
		if (c != NULL && strchr(c + 1, ':') == NULL) {
			hlen = (size_t)(c - s);
			port = c + 1;
		} else {
			hlen = strlen(s);
		}
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return -1;
	memcpy(host, s, hlen);
	host[hlen] = '\0';

	int p = 53;
	if (port != NULL) {
		char *e;
		if (*port < '0' || *port > '9')
			return -1;
		errno = 0;
		long v = strtol(port, &e, 10);
		if (errno != 0 || *e != '\0' || v < 1 || v > 65535)
			return -1;
		p = (int)v;
	}
	memset(n, 0, sizeof(*n));
	if (inet_pton(AF_INET, host, &n->addr.addr4) == 1)
		n->family = AF_INET;
	else if (inet_pton(AF_INET6, host, &n->addr.addr6) == 1)
		n->family = AF_INET6;
	else
		return -1;
	n->udp_port = n->tcp_port = p;
	return 0;
}

/* ---- public ------------------------------------------------------------------- */

struct dns *dns_new(struct event_base *base, char *const *servers, size_t nservers, int timeout_ms)
{
	struct ares_addr_port_node nodes[DNS_MAX_SERVERS];
	struct ares_options o;
	struct dns *d;
	int r;

	if (servers == NULL)
		nservers = 0;
	if (nservers > DNS_MAX_SERVERS) {
		log_warnx("event=dns_error detail=\"more than %d DNS servers\"", DNS_MAX_SERVERS);
		return NULL;
	}
	for (size_t i = 0; i < nservers; i++) {
		if (parse_server(servers[i], &nodes[i]) != 0) {
			log_warnx("event=dns_error detail=\"bad DNS server address\" server=%s", lq(servers[i]));
			return NULL;
		}
		nodes[i].next = i + 1 < nservers ? &nodes[i + 1] : NULL;
	}

	/*
	 * c-ares keeps process-wide library state behind ares_library_init(), with its
	 * own reference count.  Each struct dns takes one reference here and drops it in
	 * dns_free(), so we need no global flag of our own and the pairing is balanced
	 * however many resolvers a process makes.  Our processes are single-threaded,
	 * which that counter requires.
	 */
	if ((r = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
		log_warnx("event=dns_error detail=\"ares_library_init: %s\"", ares_strerror(r));
		return NULL;
	}

	d = xcalloc(1, sizeof(*d));
	d->base = base;
	memset(&o, 0, sizeof(o));
	/* Block-list and MX names are absolute: never append search domains; never read /etc/hosts. */
	o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
	o.timeout = timeout_ms > 0 ? timeout_ms : 5000;
	o.tries = 2;
	o.lookups = (char *)"b";
	o.sock_state_cb = sock_state;
	o.sock_state_cb_data = d;
	r = ares_init_options(&d->ch, &o,
	    ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS | ARES_OPT_SOCK_STATE_CB);
	if (r != ARES_SUCCESS) {
		log_warnx("event=dns_error detail=\"ares_init_options: %s\"", ares_strerror(r));
		free(d);
		ares_library_cleanup();
		return NULL;
	}
	if (nservers > 0 && (r = ares_set_servers_ports(d->ch, nodes)) != ARES_SUCCESS) {
		log_warnx("event=dns_error detail=\"ares_set_servers_ports: %s\"", ares_strerror(r));
		ares_destroy(d->ch);
		free(d);
		ares_library_cleanup();
		return NULL;
	}
	d->timer = evtimer_new(base, on_timer, d);
	d->deferred_ev = event_new(base, -1, 0, on_deferred, d);
	if (d->timer == NULL || d->deferred_ev == NULL) {
		log_warnx("event=dns_error detail=\"cannot create resolver events\"");
		dns_destroy(d);
		return NULL;
	}
	return d;
}

static void dns_destroy(struct dns *d)
{
	d->destroying = 1;
	d->depth++;
	/* Every pending query's callback runs now with ARES_EDESTRUCTION (DNS_TEMPFAIL), once. */
	ares_destroy(d->ch);
	/* Then results parked earlier, and any a callback produced by querying again. */
	while (d->deferred != NULL)
		flush_deferred(d);
	d->depth--;
	while (d->socks != NULL) {
		struct dns_sock *s = d->socks;
		d->socks = s->next;
		if (s->ev != NULL)
			event_free(s->ev);
		free(s);
	}
	if (d->timer != NULL)
		event_free(d->timer);
	if (d->deferred_ev != NULL)
		event_free(d->deferred_ev);
	free(d);
	ares_library_cleanup();
}

void dns_free(struct dns *d)
{
	if (d == NULL || d->destroying)
		return;
	if (d->depth > 0) {
		/* Inside a callback that c-ares is running: finish when it returns. */
		d->free_pending = 1;
		return;
	}
	dns_destroy(d);
}

/* Send one query; types outside the caller's set fail with DNS_TEMPFAIL, from the loop. */
static void query(struct dns *d, const char *name, int type, int ok, dns_cb cb, void *arg)
{
	struct dns_q *q = xcalloc(1, sizeof(*q));

	q->d = d;
	q->cb = cb;
	q->arg = arg;
	q->type = type;
	if (d->destroying || d->free_pending || !ok) {
		q->ans.status = DNS_TEMPFAIL;
		defer(d, q);
		return;
	}
	d->sync_depth++;
	ares_query(d->ch, name, ns_c_in, type, on_answer, q);
	d->sync_depth--;
	rearm(d);
}

void dns_query(struct dns *d, const char *name, int type, dns_cb cb, void *arg)
{
	query(d, name, type, type == ns_t_a || type == ns_t_txt, cb, arg);
}

void dns_query_ext(struct dns *d, const char *name, int type, dns_cb cb, void *arg)
{
	query(d, name, type, type == ns_t_a || type == ns_t_txt || type == ns_t_mx || type == ns_t_aaaa, cb, arg);
}
