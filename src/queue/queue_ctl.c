/*
 * queue_ctl: tsubamectl's flush, retry, hold and release, carried out inside
 * the queue process on its own loop (see queue_ctl.h for SECURITY, qctl_proto.h
 * for the protocol, docs/queue.md "Administration" for what an administrator
 * sees).
 *
 * Owns: the control socket and its connections; the hold/ transitions.  The
 * messages themselves stay queue.c's: we only change recipients' next_try in
 * memory, move messages between the ready and waiting lists, and forget the
 * ones we move to hold/ — through queue.h's queue_* functions.
 *
 * Hold (invariant 2 still holds: a crash may repeat a delivery, never lose
 * one): a message with no delivery in flight gets its recipient states
 * written and fdatasynced, is renamed active/<node> -> hold/, both folders are
 * fsynced, and only then is it forgotten and the hold reported.  A message
 * with deliveries in flight is only marked (hold_wanted): the results of its
 * round are applied as usual (bounces are committed first), and finish_round()
 * then moves it here (queue_ctl_hold_settle); a clean stop moves it too.  A
 * crash before that loses the request, not the message: it is delivered.
 * Release renames hold/ -> active/<node> (a claim: with several nodes one
 * rename wins), fsyncs, parses the file again and admits it with every
 * pending recipient due now.  hold/ is never scanned at start, so held
 * messages are not scheduled, retried, expired or bounced until released.
 */
#include "queue/queue_ctl.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "queue/held.h"
#include "queue/link.h"
#include "queue/qctl_proto.h"
#include "queue/queue.h"
#include "util/log.h"
#include "util/unixsock.h"
#include "util/xalloc.h"

struct qctl_conn {
	TAILQ_ENTRY(qctl_conn) entry;
	struct queue_ctl *ctl;
	struct bufferevent *bev;
	struct event *ev_end;     /* lifetime limit, and the deferred free */
	long uid;
	int answered;
};

struct queue_ctl {
	struct queue *q;
	struct evconnlistener *lev;
	int dirfd;                /* work_dir/run */
	char *path;               /* for logs */
	TAILQ_HEAD(, qctl_conn) conns;
	size_t nconns;
};

/* ---- the commands -------------------------------------------------------- */

static int is_pending(const struct qrcpt *r)
{
	return r->state == RCPT_LOCAL || r->state == RCPT_REMOTE;
}

/*
 * A pending recipient whose destination domain is domain (NULL: any); ASCII
 * case-insensitive.  Recipients of held domains wait for their ETRN: flush
 * DOMAIN releases them through held_flush(), nothing else here touches them.
 */
static int rcpt_matches(const struct queue *q, const struct qrcpt *r, const char *domain)
{
	if (!is_pending(r) || held_rcpt(q, r))
		return 0;
	if (!domain)
		return 1;
	const char *at = strrchr(r->dest, '@');
	const char *d = at ? at + 1 : "";
	size_t n = strlen(d);
	if (n > 1 && d[n - 1] == '.')
		n--;
	return n == strlen(domain) && strncasecmp(d, domain, n) == 0;
}

static long long count_matching(const struct queue *q, const struct qenvelope *e, const char *domain)
{
	long long n = 0;
	for (size_t i = 0; i < e->nrcpt; i++)
		n += rcpt_matches(q, &e->rcpt[i], domain);
	return n;
}

static void due_now(const struct queue *q, struct qenvelope *e, const char *domain, long long now)
{
	for (size_t i = 0; i < e->nrcpt; i++)
		if (rcpt_matches(q, &e->rcpt[i], domain) && e->rcpt[i].next_try > now)
			e->rcpt[i].next_try = now;
}

/*
 * Make the matching recipients of m due now and wake it if it sleeps on its
 * retry timer.  One with deliveries in flight is left on its list: its next
 * finish_round() finds the recipients due and makes it ready.  Count returned.
 */
static long long schedule_now(struct queue *q, struct qmsg *m, const char *domain, long long now)
{
	long long n = count_matching(q, &m->env, domain);
	if (n == 0)
		return 0;
	due_now(q, &m->env, domain, now);
	if (m->inflight == 0 && !m->on_ready) {
		evtimer_del(m->timer);
		queue_make_ready(q, m);
	}
	return n;
}

/* Is qid in folder d?  (Existence only: the file is not opened.) */
static int in_folder(struct queue *q, enum spool_dir d, const char *qid)
{
	int dfd = spool_dirfd(&q->spool, d);
	return dfd >= 0 && faccessat(dfd, qid, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Parse a file just claimed into active/<node> and admit it with its matching recipients due now. */
static void admit_due(struct queue *q, const char *qid, int fd, struct qenvelope *env, const char *domain,
    long long *rcpts)
{
	long long now = (long long)time(NULL);
	*rcpts = count_matching(q, env, domain);
	due_now(q, env, domain, now);
	queue_admit(q, qid, fd, env);
}

/* Open and parse active/<node>/qid; an unreadable file goes to corrupt/.  fd or -1. */
static int open_parsed(struct queue *q, const char *qid, struct qenvelope *env)
{
	char why[256];
	memset(env, 0, sizeof(*env));
	int fd = spool_open_file(&q->spool, SPOOL_ACTIVE, qid, O_RDWR);
	if (fd < 0) {
		log_warn("qid=%s event=ctl_open_failed", qid);
		return -1;
	}
	if (qfile_parse(fd, env, why, sizeof(why)) < 0) {
		log_warnx("qid=%s event=quarantined reason=%s", qid, lq(why));
		qenvelope_free(env);
		close(fd);
		spool_quarantine(&q->spool, SPOOL_ACTIVE, qid);
		return -1;
	}
	return fd;
}

struct claim_ctx {
	struct queue *q;
	const char *domain;
	long long messages, rcpts;
};

/*
 * A deferred/ file (any node may claim those): claimed into active/<node> and
 * admitted when it has a matching pending recipient, else left alone.
 */
static void claim_deferred(void *arg, const char *qid)
{
	struct claim_ctx *cc = arg;
	struct queue *q = cc->q;
	struct qenvelope env;
	char why[256];
	memset(&env, 0, sizeof(env));
	int fd = spool_open_file(&q->spool, SPOOL_DEFERRED, qid, O_RDWR);
	if (fd < 0)
		return; /* claimed by another node meanwhile */
	if (qfile_parse(fd, &env, why, sizeof(why)) < 0 || count_matching(q, &env, cc->domain) == 0 ||
	    spool_claim(&q->spool, qid) < 0) {
		qenvelope_free(&env);
		close(fd);
		return;
	}
	long long n;
	admit_due(q, qid, fd, &env, cc->domain, &n);
	cc->messages++;
	cc->rcpts += n;
}

static void reply_error(struct qctl_reply *rep, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reply_error(struct qctl_reply *rep, const char *code, const char *fmt, ...)
{
	va_list ap;
	rep->ok = 0;
	snprintf(rep->code, sizeof(rep->code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(rep->text, sizeof(rep->text), fmt, ap);
	va_end(ap);
}

static void cmd_flush(struct queue_ctl *c, const char *domain, long uid, struct qctl_reply *rep)
{
	struct queue *q = c->q;
	long long now = (long long)time(NULL);
	struct claim_ctx cc = { q, domain, 0, 0 };
	/* deferred/ first: what we claim is admitted and then scheduled with the rest. */
	spool_list(&q->spool, SPOOL_DEFERRED, claim_deferred, &cc);
	size_t n;
	struct qmsg **v = queue_all_msgs(q, &n);
	long long messages = 0, rcpts = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i]->hold_wanted)
			continue;
		long long k = schedule_now(q, v[i], domain, now);
		if (k > 0) {
			messages++;
			rcpts += k;
		}
	}
	free(v);
	/* flush DOMAIN is also the administrator's ETRN for a held domain (docs/etrn.md). */
	if (domain)
		held_flush(q, domain, &messages, &rcpts);
	queue_dispatch(q);
	rep->count[QCTL_MESSAGES] = messages;
	rep->count[QCTL_RECIPIENTS] = rcpts;
	log_info("event=flush by=tsubamectl uid=%ld domain=%s messages=%lld rcpts=%lld claimed=%lld", uid,
	    domain ? lq(domain) : "*", messages, rcpts, cc.messages);
}

static void cmd_retry(struct queue_ctl *c, const char *qid, long uid, struct qctl_reply *rep)
{
	struct queue *q = c->q;
	struct qmsg *m = queue_find_msg(q, qid);
	long long rcpts = 0;
	if (m && m->hold_wanted) {
		reply_error(rep, "held", "%s is being put on hold (deliveries in flight); release it first", qid);
		return;
	}
	if (m) {
		rcpts = schedule_now(q, m, NULL, (long long)time(NULL));
	} else if (in_folder(q, SPOOL_DEFERRED, qid)) {
		struct claim_ctx cc = { q, NULL, 0, 0 };
		claim_deferred(&cc, qid);
		if (cc.messages == 0) {
			reply_error(rep, "unknown", "%s: no such message in the queue of node %s", qid, q->spool.node);
			return;
		}
		rcpts = cc.rcpts;
	} else if (in_folder(q, SPOOL_HOLD, qid)) {
		reply_error(rep, "held", "%s is on hold; release it first", qid);
		return;
	} else {
		reply_error(rep, "unknown", "%s: no such message in the queue of node %s", qid, q->spool.node);
		return;
	}
	queue_dispatch(q);
	rep->count[QCTL_MESSAGES] = 1;
	rep->count[QCTL_RECIPIENTS] = rcpts;
	log_info("qid=%s event=retry by=tsubamectl uid=%ld rcpts=%lld", qid, uid, rcpts);
}

/* fsync hold/ and the folders files left: the hold (or release) is durable only then. */
static int sync_dirs(struct queue *q, int active, int deferred)
{
	int rc = 0;
	if (spool_sync_dir(&q->spool, SPOOL_HOLD) < 0)
		rc = -1;
	if (active && spool_sync(&q->spool) < 0)
		rc = -1;
	if (deferred && spool_sync_dir(&q->spool, SPOOL_DEFERRED) < 0)
		rc = -1;
	if (rc < 0)
		log_warn("event=hold_sync_failed");
	return rc;
}

/* m has nothing in flight: write its states, rename it into hold/.  0, or -1 with m untouched. */
static int hold_move(struct queue *q, struct qmsg *m)
{
	if (m->dirty) {
		if (m->fd < 0)
			m->fd = spool_open_file(&q->spool, SPOOL_ACTIVE, m->qid, O_RDWR);
		if (m->fd < 0 || queue_persist(m) < 0) {
			log_warn("qid=%s event=hold_failed reason=state_write", m->qid);
			return -1;
		}
	}
	if (spool_hold(&q->spool, SPOOL_ACTIVE, m->qid) < 0) {
		log_warn("qid=%s event=hold_failed reason=rename", m->qid);
		return -1;
	}
	return 0;
}

int queue_ctl_hold_settle(struct queue *q, struct qmsg *m)
{
	m->hold_wanted = 0;
	if (hold_move(q, m) < 0)
		return -1;
	int synced = sync_dirs(q, 1, 0) == 0;
	log_info("qid=%s event=hold by=tsubamectl after=deliveries%s", m->qid, synced ? "" : " sync=failed");
	queue_forget(q, m);
	return 0;
}

struct hold_ctx {
	struct queue *q;
	long uid;
	long long held;
	int failed;
};

static void hold_deferred(void *arg, const char *qid)
{
	struct hold_ctx *hc = arg;
	if (spool_hold(&hc->q->spool, SPOOL_DEFERRED, qid) == 0) {
		hc->held++;
		log_info("qid=%s event=hold by=tsubamectl uid=%ld from=deferred", qid, hc->uid);
	} else if (errno != ENOENT) {
		log_warn("qid=%s event=hold_failed reason=rename", qid);
		hc->failed = 1;
	}
}

static void cmd_hold(struct queue_ctl *c, const struct qctl_request *rq, long uid, struct qctl_reply *rep)
{
	struct queue *q = c->q;
	long long held = 0, pending = 0, already = 0;
	int failed = 0, from_active = 0, from_deferred = 0;
	size_t n = 0;
	struct qmsg **v;
	if (rq->all) {
		v = queue_all_msgs(q, &n);
	} else {
		v = xcalloc(1, sizeof(*v));
		if ((v[0] = queue_find_msg(q, rq->qid)) != NULL)
			n = 1;
	}
	/* Rename every message that can go now; one fsync of each folder for all of them. */
	for (size_t i = 0; i < n; i++) {
		struct qmsg *m = v[i];
		if (m->hold_wanted) {
			pending++;
			v[i] = NULL;
		} else if (m->inflight > 0) {
			m->hold_wanted = 1;
			pending++;
			log_info("qid=%s event=hold_pending by=tsubamectl uid=%ld reason=deliveries_in_flight", m->qid, uid);
			v[i] = NULL;
		} else if (hold_move(q, m) < 0) {
			failed = 1;
			v[i] = NULL;
		} else {
			from_active = 1;
		}
	}
	struct hold_ctx hc = { q, uid, 0, 0 };
	if (rq->all)
		spool_list(&q->spool, SPOOL_DEFERRED, hold_deferred, &hc);
	else if (n == 0 && in_folder(q, SPOOL_DEFERRED, rq->qid))
		hold_deferred(&hc, rq->qid);
	from_deferred = hc.held > 0;
	int synced = (from_active || from_deferred) ? sync_dirs(q, from_active, from_deferred) == 0 : 1;
	for (size_t i = 0; i < n; i++) {
		if (!v[i])
			continue;
		log_info("qid=%s event=hold by=tsubamectl uid=%ld%s", v[i]->qid, uid, synced ? "" : " sync=failed");
		queue_forget(q, v[i]);
		held++;
	}
	free(v);
	held += hc.held;
	failed |= hc.failed;
	if (!rq->all && held == 0 && pending == 0 && !failed) {
		if (in_folder(q, SPOOL_HOLD, rq->qid)) {
			already = 1;
		} else {
			reply_error(rep, "unknown", "%s: no such message in the queue of node %s", rq->qid, q->spool.node);
			return;
		}
	}
	if (failed || !synced) {
		reply_error(rep, "failed", "%s (see the main log)",
		    !synced ? "moved to hold/ but the folder sync failed: a crash may undo it" : "could not put on hold");
		return;
	}
	rep->count[QCTL_HELD] = held;
	rep->count[QCTL_PENDING] = pending;
	rep->count[QCTL_ALREADY] = already;
	if (rq->all)
		log_info("event=hold_all by=tsubamectl uid=%ld held=%lld pending=%lld", uid, held, pending);
}

struct release_ctx {
	char **qids;
	size_t n;
};

static void collect_qid(void *arg, const char *qid)
{
	struct release_ctx *rc = arg;
	rc->qids = xreallocarray(rc->qids, rc->n + 1, sizeof(*rc->qids));
	rc->qids[rc->n++] = xstrdup(qid);
}

static void cmd_release(struct queue_ctl *c, const struct qctl_request *rq, long uid, struct qctl_reply *rep)
{
	struct queue *q = c->q;
	long long cancelled = 0, released = 0, rcpts = 0;
	size_t n = 0;
	struct qmsg **v;
	/* A hold still waiting for deliveries in flight is simply called off. */
	if (rq->all) {
		v = queue_all_msgs(q, &n);
	} else {
		v = xcalloc(1, sizeof(*v));
		if ((v[0] = queue_find_msg(q, rq->qid)) != NULL)
			n = 1;
	}
	for (size_t i = 0; i < n; i++)
		if (v[i]->hold_wanted) {
			v[i]->hold_wanted = 0;
			cancelled++;
			log_info("qid=%s event=hold_cancelled by=tsubamectl uid=%ld", v[i]->qid, uid);
		}
	free(v);
	if (!rq->all && n == 1 && cancelled == 0) {
		reply_error(rep, "not-held", "%s is not on hold", rq->qid);
		return;
	}
	struct release_ctx rc = { NULL, 0 };
	if (rq->all)
		spool_list(&q->spool, SPOOL_HOLD, collect_qid, &rc);
	else if (n == 0)
		collect_qid(&rc, rq->qid);
	/* Rename them all, one fsync of each folder, then admit them. */
	int failed = 0;
	size_t moved = 0;
	for (size_t i = 0; i < rc.n; i++) {
		if (spool_release(&q->spool, rc.qids[i]) == 0) {
			rc.qids[moved++] = rc.qids[i];
			continue;
		}
		if (errno != ENOENT) {
			log_warn("qid=%s event=release_failed", rc.qids[i]);
			failed = 1;
		} else if (!rq->all) {
			int elsewhere = in_folder(q, SPOOL_DEFERRED, rq->qid) || in_folder(q, SPOOL_ACTIVE, rq->qid);
			reply_error(rep, elsewhere ? "not-held" : "unknown", elsewhere ? "%s is not on hold" :
			    "%s: no such message on hold", rq->qid);
			free(rc.qids[i]);
			free(rc.qids);
			return;
		}
		free(rc.qids[i]);
	}
	int synced = moved == 0 || sync_dirs(q, 1, 0) == 0;
	for (size_t i = 0; i < moved; i++) {
		struct qenvelope env;
		int fd = open_parsed(q, rc.qids[i], &env);
		if (fd >= 0) {
			long long k;
			admit_due(q, rc.qids[i], fd, &env, NULL, &k);
			rcpts += k;
			released++;
			log_info("qid=%s event=release by=tsubamectl uid=%ld rcpts=%lld", rc.qids[i], uid, k);
		} else {
			failed = 1;
		}
		free(rc.qids[i]);
	}
	free(rc.qids);
	queue_dispatch(q);
	if (rq->all)
		log_info("event=release_all by=tsubamectl uid=%ld released=%lld cancelled=%lld", uid, released, cancelled);
	if (failed || !synced) {
		reply_error(rep, "failed", "released %lld message(s), %s (see the main log)", released,
		    !synced ? "but the folder sync failed" : "some could not be released");
		return;
	}
	rep->count[QCTL_RELEASED] = released;
	rep->count[QCTL_CANCELLED] = cancelled;
	rep->count[QCTL_MESSAGES] = released;
	rep->count[QCTL_RECIPIENTS] = rcpts;
}

static void execute(struct queue_ctl *c, const struct qctl_request *rq, long uid, struct qctl_reply *rep)
{
	switch (rq->cmd) {
	case QCTL_FLUSH:
		cmd_flush(c, rq->domain[0] ? rq->domain : NULL, uid, rep);
		return;
	case QCTL_RETRY:
		cmd_retry(c, rq->qid, uid, rep);
		return;
	case QCTL_HOLD:
		cmd_hold(c, rq, uid, rep);
		return;
	case QCTL_RELEASE:
		cmd_release(c, rq, uid, rep);
		return;
	case QCTL_LINK:
		link_control(c->q, rq, uid, rep);
		return;
	}
	reply_error(rep, "bad-request", "unknown command");
}

/* ---- connections ------------------------------------------------------- */

static void conn_free(struct qctl_conn *k)
{
	struct queue_ctl *c = k->ctl;
	TAILQ_REMOVE(&c->conns, k, entry);
	c->nconns--;
	event_free(k->ev_end);
	bufferevent_free(k->bev);
	free(k);
}

static void on_end(evutil_socket_t fd, short what, void *arg)
{
	struct qctl_conn *k = arg;
	if (!k->answered)
		log_warnx("event=control_timeout uid=%ld", k->uid);
	conn_free(k);
}

/* Free from the loop, never from inside the bufferevent's own callbacks. */
static void conn_close_later(struct qctl_conn *k)
{
	struct timeval zero = { 0, 0 };
	evtimer_add(k->ev_end, &zero);
}

static void on_event(struct bufferevent *bev, short what, void *arg);

static void on_written(struct bufferevent *bev, void *arg)
{
	conn_close_later(arg);
}

static void answer(struct qctl_conn *k, const struct qctl_reply *rep)
{
	char out[QCTL_REPLY_MAX + 1];
	int n = qctl_reply_format(rep, out, sizeof(out));
	if (n < 0)
		n = snprintf(out, sizeof(out), "error failed answer too long\n");
	k->answered = 1;
	bufferevent_disable(k->bev, EV_READ);
	bufferevent_setcb(k->bev, NULL, on_written, on_event, k);
	bufferevent_enable(k->bev, EV_WRITE);
	bufferevent_write(k->bev, out, (size_t)n);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct qctl_conn *k = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t have = evbuffer_get_length(in);
	struct evbuffer_ptr lf = evbuffer_search(in, "\n", 1, NULL);
	struct qctl_reply rep;
	qctl_reply_init(&rep);
	if (k->answered)
		return;
	if (lf.pos < 0) {
		/* Limits are checked on partial input: no LF within QCTL_LINE_MAX bytes is an error now. */
		if (have >= QCTL_LINE_MAX) {
			reply_error(&rep, "bad-request", "request too long");
			log_warnx("event=control_bad_request uid=%ld reason=too_long", k->uid);
			answer(k, &rep);
		}
		return;
	}
	size_t len = (size_t)lf.pos + 1;
	char line[QCTL_LINE_MAX];
	struct qctl_request rq;
	char why[128];
	if (len > QCTL_LINE_MAX) {
		reply_error(&rep, "bad-request", "request too long");
	} else if (have > len) {
		reply_error(&rep, "bad-request", "one request per connection");
	} else {
		evbuffer_remove(in, line, len);
		if (qctl_request_parse(line, len, &rq, why, sizeof(why)) < 0)
			reply_error(&rep, "bad-request", "%s", why);
		else if (k->ctl->q->stopping)
			reply_error(&rep, "stopping", "the queue manager is stopping");
		else
			execute(k->ctl, &rq, k->uid, &rep);
	}
	if (!rep.ok && !strcmp(rep.code, "bad-request"))
		log_warnx("event=control_bad_request uid=%ld reason=%s", k->uid, lq(rep.text));
	answer(k, &rep);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct qctl_conn *k = arg;
	/* EOF before a whole request, or an error: nothing to answer. */
	bufferevent_disable(bev, EV_READ | EV_WRITE);
	conn_close_later(k);
}

/* An answer to a connection we do not serve: best effort, never blocking. */
static void refuse(evutil_socket_t fd, const char *line)
{
	ssize_t w = send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)w;
	close(fd);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct queue_ctl *c = arg;
	struct ucred cr;
	socklen_t crlen = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0 || (cr.uid != 0 && cr.uid != geteuid())) {
		log_warnx("event=control_refused reason=uid uid=%ld", crlen == sizeof(cr) ? (long)cr.uid : -1L);
		refuse(fd, "error denied only root and the mail user may control the queue\n");
		return;
	}
	if (c->nconns >= QCTL_MAX_CONNS) {
		log_warnx("event=control_refused reason=busy uid=%ld limit=%d", (long)cr.uid, QCTL_MAX_CONNS);
		refuse(fd, "error busy too many control connections; try again\n");
		return;
	}
	struct bufferevent *bev = bufferevent_socket_new(c->q->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		close(fd);
		return;
	}
	struct qctl_conn *k = xcalloc(1, sizeof(*k));
	k->ctl = c;
	k->bev = bev;
	k->uid = (long)cr.uid;
	k->ev_end = evtimer_new(c->q->base, on_end, k);
	TAILQ_INSERT_TAIL(&c->conns, k, entry);
	c->nconns++;
	/* The whole exchange, not just each read, is bounded in time (no slow drip). */
	struct timeval tv = { QCTL_TIMEOUT, 0 };
	evtimer_add(k->ev_end, &tv);
	bufferevent_setcb(bev, on_read, NULL, on_event, k);
	bufferevent_setwatermark(bev, EV_READ, 0, QCTL_LINE_MAX + 1);
	bufferevent_enable(bev, EV_READ);
}

/* ---- start and stop ------------------------------------------------------ */

void queue_ctl_start(struct queue *q)
{
	struct queue_ctl *c = xcalloc(1, sizeof(*c));
	c->q = q;
	c->dirfd = -1;
	TAILQ_INIT(&c->conns);
	q->ctl = c;
	char *dir = xasprintf("%s/%s", q->cfg->work_dir, QCTL_DIR);
	c->path = xasprintf("%s/%s", dir, QCTL_SOCKET);
	struct sockaddr_un sa;
	socklen_t salen;
	int fd = -1, via = -1;
	struct stat st;
	c->dirfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (c->dirfd < 0)
		goto fail;
	/* A socket left by an earlier run goes (the pid file keeps a second daemon off this work_dir); anything else stays. */
	if (fstatat(c->dirfd, QCTL_SOCKET, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			errno = EEXIST;
			goto fail;
		}
		if (unlinkat(c->dirfd, QCTL_SOCKET, 0) < 0)
			goto fail;
	}
	if (unixsock_addr(dir, QCTL_SOCKET, &sa, &salen, &via) < 0)
		goto fail;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	mode_t old = umask(0177); /* born 0600: no moment where others could connect */
	int r = bind(fd, (struct sockaddr *)&sa, salen);
	umask(old);
	if (via >= 0)
		close(via);
	via = -1;
	if (r < 0 || listen(fd, 16) < 0)
		goto fail;
	c->lev = evconnlistener_new(q->base, on_accept, c, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (!c->lev)
		goto fail;
	log_info("event=control_listening path=%s", lq(c->path));
	free(dir);
	return;
fail:
	log_warn("event=control_unavailable path=%s", lq(c->path));
	if (via >= 0)
		close(via);
	if (fd >= 0)
		close(fd);
	free(dir);
}

void queue_ctl_stop(struct queue *q)
{
	struct queue_ctl *c = q->ctl;
	if (!c)
		return;
	/*
	 * Holds still waiting for their deliveries: those deliveries are abandoned
	 * by this stop anyway (they repeat after a restart), so the hold is made
	 * durable now rather than lost.
	 */
	size_t n;
	struct qmsg **v = queue_all_msgs(q, &n);
	int moved = 0;
	for (size_t i = 0; i < n; i++) {
		if (!v[i]->hold_wanted || hold_move(q, v[i]) < 0) {
			v[i] = NULL;
			continue;
		}
		moved = 1;
	}
	int synced = moved ? sync_dirs(q, 1, 0) == 0 : 1;
	for (size_t i = 0; i < n; i++)
		if (v[i]) {
			log_info("qid=%s event=hold by=tsubamectl after=stop%s", v[i]->qid, synced ? "" : " sync=failed");
			queue_forget(q, v[i]);
		}
	free(v);
	struct qctl_conn *k;
	while ((k = TAILQ_FIRST(&c->conns)) != NULL)
		conn_free(k);
	if (c->lev) {
		evconnlistener_free(c->lev);
		unlinkat(c->dirfd, QCTL_SOCKET, 0);
	}
	if (c->dirfd >= 0)
		close(c->dirfd);
	free(c->path);
	free(c);
	q->ctl = NULL;
}
