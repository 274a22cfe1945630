/*
 * conncache: the deliver process's idle SMTP connections (see conncache.h for
 * the key, the bounds and who owns what).
 *
 * Two lists: idle (oldest first; taken newest first, the one least likely to
 * have been closed by the peer's own idle timer) and closing (QUIT sent,
 * waiting for the reply or the close).  An entry owns a copy of the client
 * parameters, strings included, because the job that made the connection is
 * gone by the time it is reused or closed.
 */
#include "deliver/conncache.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include "util/log.h"
#include "util/xalloc.h"

struct entry {
	TAILQ_ENTRY(entry) link;
	struct conncache *cc;
	struct smtp_client *c;
	char ip[46];
	unsigned port;
	struct smtp_client_params p;   /* the key; the client's params while it is here */
	char *helo, *tag, *servername, *user, *pass;
	struct event *timer;
	int closing;
};

TAILQ_HEAD(entry_list, entry);

struct conncache {
	struct event_base *base;
	struct entry_list idle, closing;
	size_t nidle, nclosing;
	size_t max_idle;
	unsigned idle_ms;
	unsigned max_txns;
	unsigned long hits;
	int stopping;
	void (*drained)(void *arg);
	void *drained_arg;
};

static int same(const char *a, const char *b)
{
	return !strcmp(a ? a : "", b ? b : "");
}

/* Would a session made with a have been made the same way with b? */
static int key_equal(const struct smtp_client_params *a, const struct smtp_client_params *b)
{
	if (a->tls != b->tls || a->ssl_ctx != b->ssl_ctx || a->tls_verify != b->tls_verify ||
	    a->auth_mechs != b->auth_mechs)
		return 0;
	/* Without verification the name only went into SNI: it does not make sessions different. */
	if (a->tls_verify && strcasecmp(a->tls_servername ? a->tls_servername : "",
	    b->tls_servername ? b->tls_servername : "") != 0)
		return 0;
	return same(a->helo, b->helo) && same(a->auth_user, b->auth_user) && same(a->auth_pass, b->auth_pass);
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static void entry_free(struct entry *e)
{
	if (e->timer)
		event_free(e->timer);
	free(e->helo);
	free(e->tag);
	free(e->servername);
	if (e->pass) {
		/* not a secret kept longer than the configuration keeps it, but no copy lingers either */
		memset(e->pass, 0, strlen(e->pass));
		free(e->pass);
	}
	free(e->user);
	free(e);
}

static void on_txn(struct smtp_client *c, struct smtp_txn *t, void *arg)
{
	/* A parked connection carries no transaction: nothing can arrive here. */
}

static void on_close(struct smtp_client *c, enum smtp_status st, enum smtp_failure why, const struct smtp_reply *rep,
    void *arg)
{
	struct entry *e = arg;
	struct conncache *cc = e->cc;
	if (e->closing) {
		TAILQ_REMOVE(&cc->closing, e, link);
		cc->nclosing--;
	} else {
		/* The peer closed it (or said 421) while it was idle. */
		TAILQ_REMOVE(&cc->idle, e, link);
		cc->nidle--;
		log_info("event=conn_cache_drop relay=%s reason=%s", lq(e->tag), lq(rep && rep->text[0] ? rep->text :
		    smtp_failure_name(why)));
	}
	entry_free(e);   /* the client frees itself after this callback */
	if (cc->stopping && cc->nclosing == 0 && cc->drained)
		cc->drained(cc->drained_arg);
}

/* Idle -> closing: QUIT, and the entry goes when the client reports the close. */
static void start_close(struct entry *e)
{
	struct conncache *cc = e->cc;
	TAILQ_REMOVE(&cc->idle, e, link);
	cc->nidle--;
	evtimer_del(e->timer);
	e->closing = 1;
	TAILQ_INSERT_TAIL(&cc->closing, e, link);
	cc->nclosing++;
	smtp_client_quit(e->c);
}

static void on_expire(evutil_socket_t fd, short what, void *arg)
{
	start_close(arg);
}

struct conncache *conncache_new(struct event_base *base)
{
	struct conncache *cc = xcalloc(1, sizeof(*cc));
	cc->base = base;
	TAILQ_INIT(&cc->idle);
	TAILQ_INIT(&cc->closing);
	cc->max_idle = 32;
	cc->idle_ms = 5000;
	cc->max_txns = 100;
	return cc;
}

void conncache_set_limits(struct conncache *cc, size_t max_idle, unsigned idle_ms, unsigned max_txns)
{
	cc->max_idle = max_idle;
	cc->idle_ms = idle_ms ? idle_ms : 1;
	cc->max_txns = max_txns ? max_txns : 1;
	while (cc->nidle > cc->max_idle)
		start_close(TAILQ_FIRST(&cc->idle));
}

void conncache_free(struct conncache *cc)
{
	if (!cc)
		return;
	struct entry *e;
	while ((e = TAILQ_FIRST(&cc->idle))) {
		TAILQ_REMOVE(&cc->idle, e, link);
		smtp_client_free(e->c);
		entry_free(e);
	}
	while ((e = TAILQ_FIRST(&cc->closing))) {
		TAILQ_REMOVE(&cc->closing, e, link);
		smtp_client_free(e->c);
		entry_free(e);
	}
	free(cc);
}

int conncache_put(struct conncache *cc, struct smtp_client *c, const char *ip, unsigned port,
    const struct smtp_client_params *p)
{
	if (cc->stopping || cc->max_idle == 0 || !smtp_client_idle(c) || smtp_client_transactions(c) >= cc->max_txns ||
	    strlen(ip) >= sizeof(((struct entry *)0)->ip))
		return 0;
	if (cc->nidle >= cc->max_idle)
		start_close(TAILQ_FIRST(&cc->idle));   /* the oldest makes room */
	struct entry *e = xcalloc(1, sizeof(*e));
	e->cc = cc;
	e->c = c;
	memcpy(e->ip, ip, strlen(ip) + 1);
	e->port = port;
	e->p = *p;
	e->p.helo = e->helo = dup_or_null(p->helo);
	e->p.tag = e->tag = xstrdup(p->tag ? p->tag : "");
	e->p.tls_servername = e->servername = dup_or_null(p->tls_servername);
	e->p.auth_user = e->user = dup_or_null(p->auth_user);
	e->p.auth_pass = e->pass = dup_or_null(p->auth_pass);
	/* While parked only QUIT can be waited for: no point keeping a socket minutes for its 221. */
	if (e->p.greeting_ms == 0 || e->p.greeting_ms > CONNCACHE_QUIT_MS)
		e->p.greeting_ms = CONNCACHE_QUIT_MS;
	e->timer = evtimer_new(cc->base, on_expire, e);
	struct timeval tv = {cc->idle_ms / 1000, (cc->idle_ms % 1000) * 1000};
	evtimer_add(e->timer, &tv);
	smtp_client_rebind(c, &e->p, on_txn, on_close, e, 0);
	TAILQ_INSERT_TAIL(&cc->idle, e, link);
	cc->nidle++;
	return 1;
}

struct smtp_client *conncache_take(struct conncache *cc, const char *ip, unsigned port,
    const struct smtp_client_params *p, smtp_txn_cb txn_cb, smtp_close_cb close_cb, void *arg)
{
	struct entry *e;
	TAILQ_FOREACH_REVERSE(e, &cc->idle, entry_list, link) {
		if (e->port != port || strcmp(e->ip, ip) != 0 || !key_equal(&e->p, p))
			continue;
		if (!smtp_client_idle(e->c))
			continue;   /* its close is on the way: on_close will drop it */
		struct smtp_client *c = e->c;
		TAILQ_REMOVE(&cc->idle, e, link);
		cc->nidle--;
		smtp_client_rebind(c, p, txn_cb, close_cb, arg, 1);
		entry_free(e);
		cc->hits++;
		return c;
	}
	return NULL;
}

size_t conncache_idle(const struct conncache *cc)
{
	return cc->nidle;
}

size_t conncache_closing(const struct conncache *cc)
{
	return cc->nclosing;
}

unsigned long conncache_hits(const struct conncache *cc)
{
	return cc->hits;
}

size_t conncache_close_all(struct conncache *cc, void (*drained)(void *arg), void *arg)
{
	cc->stopping = 1;
	cc->drained = drained;
	cc->drained_arg = arg;
	while (!TAILQ_EMPTY(&cc->idle))
		start_close(TAILQ_FIRST(&cc->idle));
	return cc->nclosing;
}
