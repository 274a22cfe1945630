/*
 * queue: the queue manager process (see queue.h for its SECURITY paragraph).
 *
 * Commit path (invariant 1): IPC_Q_COMMIT -> parse and validate the file ->
 * fdatasync + rename into active/<node> -> (end of the IPC read pass) one fsync
 * of active/<node> for every commit of that pass -> IPC_Q_COMMIT_OK, and only
 * then does smtpd send 250.  Delivery path (invariant 2): a recipient is marked
 * done only after deliver reports the Maildir file fsynced; a message leaves the
 * queue only when no recipient waits (bounces are committed before the failed
 * recipients are marked).  A crash in between repeats work; it never skips it.
 */
#include "queue/queue.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "local/reload.h"
#include "deliver/remote.h"
#include "queue/atrn.h"
#include "queue/held.h"
#include "queue/link.h"
#include "queue/queue_ctl.h"
#include "util/log.h"
#include "util/signals.h"
#include "util/xalloc.h"

#define RCPTS_PER_REQUEST 200
#define INFLIGHT_PER_WORKER 32

static void dispatch(struct queue *q);
static void finish_round(struct queue *q, struct qmsg *m);
static const char *domain_of(const char *addr);

static struct incoming *find_incoming(struct queue *q, const char *qid)
{
	struct incoming *in;
	TAILQ_FOREACH(in, &q->incoming, entry)
		if (!strcmp(in->qid, qid))
			return in;
	return NULL;
}

/* FNV-1a: qids are random enough; this only spreads them over the buckets. */
static size_t qid_hash(const char *qid)
{
	uint32_t h = 2166136261u;
	for (; *qid; qid++)
		h = (h ^ (unsigned char)*qid) * 16777619u;
	return h;
}

static void index_add(struct queue *q, struct qmsg *m)
{
	if (q->nmessages + 1 > q->nindex) {
		/* grow at load 1 and rehash: O(1) amortised, lookups stay short */
		size_t n = q->nindex ? q->nindex * 2 : 256;
		struct qmsg **v = xcalloc(n, sizeof(*v));
		for (size_t b = 0; b < q->nindex; b++)
			for (struct qmsg *x = q->index[b], *next; x; x = next) {
				next = x->hnext;
				size_t k = qid_hash(x->qid) & (n - 1);
				x->hnext = v[k];
				v[k] = x;
			}
		free(q->index);
		q->index = v;
		q->nindex = n;
	}
	size_t k = qid_hash(m->qid) & (q->nindex - 1);
	m->hnext = q->index[k];
	q->index[k] = m;
}

static void index_del(struct queue *q, struct qmsg *m)
{
	if (!q->nindex)
		return;
	for (struct qmsg **pp = &q->index[qid_hash(m->qid) & (q->nindex - 1)]; *pp; pp = &(*pp)->hnext)
		if (*pp == m) {
			*pp = m->hnext;
			return;
		}
}

static struct qmsg *find_msg(struct queue *q, const char *qid)
{
	if (!q->nindex)
		return NULL;
	for (struct qmsg *m = q->index[qid_hash(qid) & (q->nindex - 1)]; m; m = m->hnext)
		if (!strcmp(m->qid, qid))
			return m;
	return NULL;
}

static void drop_incoming(struct queue *q, struct incoming *in, int unlink_file)
{
	if (unlink_file)
		spool_abort(&q->spool, in->qid);
	close(in->fd);
	TAILQ_REMOVE(&q->incoming, in, entry);
	free(in);
}

static void reply(struct queue *q, uint32_t type, uint64_t session, const char *qid, const char *why, int fd)
{
	struct buf p;
	buf_init(&p, 4096);
	ipc_put_u64(&p, session);
	if (qid)
		ipc_put_str(&p, qid);
	if (why)
		ipc_put_str(&p, why);
	ipc_send(&q->smtpd, type, &p, fd);
	buf_free(&p);
}

static void msg_free(struct queue *q, struct qmsg *m)
{
	dest_unpark_all(&q->dests, &m->parked);
	index_del(q, m);
	if (m->on_ready)
		TAILQ_REMOVE(&q->ready, m, entry);
	else
		TAILQ_REMOVE(&q->waiting, m, entry);
	if (m->timer)
		event_free(m->timer);
	if (m->fd >= 0)
		close(m->fd);
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		free(m->diag[i]);
		free(m->enh[i]);
		free(m->mta[i]);
	}
	free(m->diag);
	free(m->enh);
	free(m->mta);
	free(m->code);
	free(m->perm);
	free(m->success);
	free(m->released);
	qenvelope_free(&m->env);
	free(m);
	q->nmessages--;
}

/* Is a local or remote recipient due now?  *next: the earliest later retry (0 = none). */
static int due_pending(const struct qmsg *m, long long now, long long *next)
{
	int due = 0;
	int held = link_holds_remote(m->q);
	*next = 0;
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		const struct qrcpt *r = &m->env.rcpt[i];
		if (r->state != RCPT_LOCAL && r->state != RCPT_REMOTE)
			continue;
		if (r->state == RCPT_REMOTE && held)
			continue;   /* E5: it waits for the link, not for a time (link.c wakes it) */
		if (held_waiting(m, i)) {
			held_wake(m, i, next);   /* E3: it waits for an ETRN, or for hold_lifetime */
			continue;
		}
		if (r->state == RCPT_REMOTE && !LIST_EMPTY(&m->parked) && dest_is_parked(&m->parked, domain_of(r->dest)))
			continue;   /* D1: it waits for a slot at its destination, not for a time */
		if (r->next_try <= now)
			due = 1;
		else if (*next == 0 || r->next_try < *next)
			*next = r->next_try;
	}
	return due;
}

static void make_ready(struct queue *q, struct qmsg *m)
{
	if (m->on_ready)
		return;
	TAILQ_REMOVE(&q->waiting, m, entry);
	TAILQ_INSERT_TAIL(&q->ready, m, entry);
	m->on_ready = 1;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct qmsg *m = arg;
	make_ready(m->q, m);
	dispatch(m->q);
}

void queue_admit(struct queue *q, const char *qid, int fd, struct qenvelope *env)
{
	struct qmsg *m = xcalloc(1, sizeof(*m));
	m->q = q;
	snprintf(m->qid, sizeof(m->qid), "%s", qid);
	m->fd = fd;
	m->env = *env;
	memset(env, 0, sizeof(*env));
	size_t n = m->env.nrcpt ? m->env.nrcpt : 1;
	m->perm = xcalloc(n, 1);
	m->success = xcalloc(n, 1);
	m->diag = xcalloc(n, sizeof(char *));
	m->enh = xcalloc(n, sizeof(char *));
	m->mta = xcalloc(n, sizeof(char *));
	m->code = xcalloc(n, sizeof(int));
	m->released = xcalloc(n, 1);
	m->timer = evtimer_new(q->base, on_retry, m);
	TAILQ_INSERT_TAIL(&q->waiting, m, entry);
	index_add(q, m);
	q->nmessages++;
	/* A message with nothing to do locally goes back to its folder as it is. */
	finish_round(q, m);
}

static unsigned domain_hash(const char *s)
{
	unsigned h = 2166136261u;   /* FNV-1a, ASCII case folded */
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		h = (h ^ (c >= 'A' && c <= 'Z' ? c + 32u : c)) * 16777619u;
	}
	return h;
}

static struct deliver_worker *pick_worker(struct queue *q, int remote, const char *domain)
{
	/* Remote deliveries wait on the network, not the disk: their own limit (the manual's threads). */
	if (remote && q->remote_inflight >= (unsigned)q->cfg->delivery_concurrency)
		return NULL;
	unsigned cap = remote ? (unsigned)q->cfg->delivery_concurrency : INFLIGHT_PER_WORKER;
	if (remote && domain && q->nworkers > 1) {
		/*
		 * D1 connection reuse: a domain's mail goes to one deliver process (by
		 * a hash of the domain), where its cached connections are, as long as
		 * that process has no more than its share of the remote deliveries.
		 */
		unsigned share = (cap + (unsigned)q->nworkers - 1) / (unsigned)q->nworkers;
		struct deliver_worker *w = &q->workers[domain_hash(domain) % q->nworkers];
		if (w->alive && w->remote_load < share)
			return w;
	}
	struct deliver_worker *best = NULL;
	for (size_t i = 0; i < q->nworkers; i++) {
		struct deliver_worker *w = &q->workers[i];
		unsigned load = remote ? w->remote_load : w->load;
		if (w->alive && load < cap && (!best || load < (remote ? best->remote_load : best->load)))
			best = w;
	}
	return best;
}

static const char *domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at ? at + 1 : "";
}

/* One IPC_D_DELIVER: the due recipients of m in `state` (for remote ones, of one domain). */
static int send_batch(struct queue *q, struct qmsg *m, long long now, char state, const char *domain,
    unsigned char *sent)
{
	int remote = state == RCPT_REMOTE;
	if (remote) {
		/* D1: a destination at its limit, or with older mail waiting, parks the message there. */
		struct dest *d = dest_find(&q->dests, domain);
		if (d && (d->inflight >= (unsigned)q->cfg->destination_concurrency ||
		    (!TAILQ_EMPTY(&d->waiters) && !m->woken))) {
			dest_park(&q->dests, d, m, &m->parked, m->woken);
			for (size_t i = 0; i < m->env.nrcpt; i++)
				if (m->env.rcpt[i].state == RCPT_REMOTE && !strcasecmp(domain_of(m->env.rcpt[i].dest), domain))
					sent[i] = 1;   /* they wait with the message */
			return 0;
		}
	}
	struct deliver_worker *w = pick_worker(q, remote, domain);
	if (!w)
		return -1;
	uint32_t flags = (remote ? DELIVER_REQ_REMOTE : 0) | (m->env.body == 1 ? DELIVER_REQ_8BIT : 0) |
	    (m->env.smtputf8 ? DELIVER_REQ_SMTPUTF8 : 0);
	struct buf p;
	buf_init(&p, IPC_MAX_MESSAGE);
	ipc_put_str(&p, m->qid);
	ipc_put_u64(&p, (uint64_t)m->env.data_off);
	ipc_put_u64(&p, (uint64_t)m->env.data_len);
	ipc_put_str(&p, m->env.sender);
	ipc_put_u32(&p, flags);
	ipc_put_str(&p, domain ? domain : "");
	ipc_put_str(&p, m->env.envid ? m->env.envid : "");
	ipc_put_u32(&p, (uint32_t)m->env.ret);
	ipc_put_str(&p, m->env.auth ? m->env.auth : "");
	size_t count_at = p.len;
	ipc_put_u32(&p, 0);
	uint32_t n = 0;
	for (size_t i = 0; i < m->env.nrcpt && n < RCPTS_PER_REQUEST; i++) {
		struct qrcpt *r = &m->env.rcpt[i];
		if (sent[i] || r->state != state || r->next_try > now || held_waiting(m, i))
			continue;
		if (remote && strcasecmp(domain_of(r->dest), domain) != 0)
			continue;
		if (p.len + strlen(r->dest) + strlen(r->present) + strlen(r->orig) + strlen(r->orcpt) + 64 > IPC_MAX_MESSAGE)
			break;
		ipc_put_u32(&p, (uint32_t)i);
		ipc_put_str(&p, r->dest);
		ipc_put_str(&p, r->present);
		ipc_put_str(&p, r->orig);
		ipc_put_u32(&p, r->notify);
		ipc_put_str(&p, r->orcpt);
		sent[i] = 1;
		held_sent(m, i);
		n++;
	}
	if (n > 0) {
		memcpy(p.data + count_at, &n, 4);
		ipc_send(&w->ch, IPC_D_DELIVER, &p, m->fd);
		if (remote) {
			w->remote_load++;
			q->remote_inflight++;
			dest_acquire(&q->dests, domain);
		} else {
			w->load++;
		}
		m->inflight++;
		q->inflight++;
	}
	buf_free(&p);
	return 0;
}

/*
 * Send every due recipient: local ones in batches, remote ones one request per
 * destination domain (D1: the recipients of one destination in one
 * transaction).  -1 when nothing could be sent for lack of a free worker.
 */
static int send_requests(struct queue *q, struct qmsg *m, long long now)
{
	unsigned char *sent = xcalloc(m->env.nrcpt ? m->env.nrcpt : 1, 1);
	int blocked = 0;
	int held = link_holds_remote(q);
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		struct qrcpt *r = &m->env.rcpt[i];
		if (sent[i] || (r->state != RCPT_LOCAL && r->state != RCPT_REMOTE) || r->next_try > now ||
		    held_waiting(m, i))
			continue;
		if (r->state == RCPT_REMOTE && held)
			continue;   /* E5: dial-up and the link is down */
		if (send_batch(q, m, now, r->state, r->state == RCPT_REMOTE ? domain_of(r->dest) : NULL, sent) < 0)
			blocked = 1;
	}
	free(sent);
	return blocked && m->inflight == 0 ? -1 : 0;
}

/*
 * D1: the slots free at destinations with parked messages go to those
 * messages, oldest first, at the front of the ready list (in that order), so
 * that newer mail for the same destination does not overtake them.  A message
 * with deliveries still in flight is only unparked: the end of its round
 * makes it ready.
 */
static void wake_parked(struct queue *q)
{
	unsigned limit = (unsigned)q->cfg->destination_concurrency;
	struct qmsg *after = NULL;
	struct dest *d, *next;
	for (d = TAILQ_FIRST(&q->dests.all); d; d = next) {
		next = TAILQ_NEXT(d, entry);
		size_t n = 0;
		struct dest_wait *w;
		TAILQ_FOREACH(w, &d->waiters, by_dest)
			if (d->inflight + n < limit)
				n++;
		while (n-- > 0) {
			struct qmsg *m = dest_pop(&q->dests, d);   /* the last one may free d */
			m->woken = 1;
			if (m->inflight > 0)
				continue;
			evtimer_del(m->timer);
			if (m->on_ready)
				TAILQ_REMOVE(&q->ready, m, entry);
			else
				TAILQ_REMOVE(&q->waiting, m, entry);
			if (after)
				TAILQ_INSERT_AFTER(&q->ready, after, m, entry);
			else
				TAILQ_INSERT_HEAD(&q->ready, m, entry);
			m->on_ready = 1;
			after = m;
		}
	}
}

/*
 * Hand due recipients to free workers.  Each ready message is looked at once
 * per call: one that finds no free worker of the kind it needs (local or
 * remote) goes back to the end of the list, and the next D_DONE calls us again.
 * One whose destination is full is parked there (D1) until a slot frees.
 */
static void dispatch(struct queue *q)
{
	long long now = (long long)time(NULL);
	size_t budget = 0;
	struct qmsg *it;
	wake_parked(q);
	TAILQ_FOREACH(it, &q->ready, entry)
		budget++;
	while (budget-- > 0 && !TAILQ_EMPTY(&q->ready)) {
		if (!pick_worker(q, 0, NULL) && !pick_worker(q, 1, NULL))
			break;
		struct qmsg *m = TAILQ_FIRST(&q->ready);
		TAILQ_REMOVE(&q->ready, m, entry);
		m->on_ready = 0;
		TAILQ_INSERT_TAIL(&q->waiting, m, entry);
		evtimer_del(m->timer);   /* a parked message may still have its fallback timer */
		if (m->fd < 0) {
			m->fd = spool_open_file(&q->spool, SPOOL_ACTIVE, m->qid, O_RDWR);
			if (m->fd < 0) {
				log_warn("qid=%s event=reopen_failed", m->qid);
				msg_free(q, m);
				continue;
			}
		}
		memset(m->perm, 0, m->env.nrcpt);
		if (send_requests(q, m, now) < 0) {
			make_ready(q, m); /* no worker for it now (a woken message keeps its turn) */
			continue;
		}
		m->woken = 0;
		if (m->inflight == 0)
			finish_round(q, m);
	}
}

/* Write every recipient's state in place and make it durable. */
static int persist(struct qmsg *m)
{
	if (!m->dirty)
		return 0;
	for (size_t i = 0; i < m->env.nrcpt; i++)
		if (qfile_set_rcpt(m->fd, &m->env.rcpt[i]) < 0) {
			log_warn("qid=%s event=state_write_failed", m->qid);
			return -1;
		}
	if (fdatasync(m->fd) < 0) {
		log_warn("qid=%s event=state_sync_failed", m->qid);
		return -1;
	}
	m->dirty = 0;
	return 0;
}

/* When the delay warning falls due, or 0 when there is none to send. */
static long long warning_due_at(const struct queue *q, const struct qmsg *m)
{
	if (m->env.warned || q->cfg->delay_warning_time <= 0 || m->env.sender[0] == '\0')
		return 0;
	return m->env.arrival + q->cfg->delay_warning_time;
}

/*
 * D5 / RFC 3461: the success reports of this round, then the one delay warning
 * once the message has waited delay_warning_time.  A lost success report is
 * logged (the delivery itself stands); a delay warning that cannot be queued
 * is tried again next round.
 */
static void notices(struct queue *q, struct qmsg *m, long long now)
{
	size_t n = m->env.nrcpt;
	if (memchr(m->success, 's', n) || memchr(m->success, 'r', n)) {
		if (success_queue(q, m) < 0)
			log_warnx("qid=%s event=notice_failed kind=success", m->qid);
		memset(m->success, 0, n);
	}
	long long warn_at = warning_due_at(q, m);
	if (warn_at == 0 || now < warn_at)
		return;
	unsigned char *pending = xcalloc(n ? n : 1, 1);
	int any = 0;
	for (size_t i = 0; i < n; i++)
		if ((m->env.rcpt[i].state == RCPT_LOCAL || m->env.rcpt[i].state == RCPT_REMOTE) && !held_domain(m, i))
			pending[i] = any = 1;   /* E3: held mail waits by design: no delay warning for it */
	if (any && delay_queue(q, m, pending) == 0) {
		if (qfile_set_warned(m->fd, &m->env) < 0)
			log_warn("qid=%s event=state_write_failed what=warned", m->qid);
		m->env.warned = 1; /* in memory at least: one warning per run even if the file refused */
		m->dirty = 1;
	}
	free(pending);
}

/* Every request of this round answered (or none sent): settle the message. */
static void finish_round(struct queue *q, struct qmsg *m)
{
	long long now = (long long)time(NULL);
	int any_perm = 0;
	held_round_end(m);
	for (size_t i = 0; i < m->env.nrcpt; i++)
		if (m->perm[i])
			any_perm = 1;
	if (any_perm) {
		/* Invariant 2: the bounce is durably queued before the recipients are marked bounced. */
		if (bounce_queue(q, m, 0) == 0) {
			for (size_t i = 0; i < m->env.nrcpt; i++)
				if (m->perm[i]) {
					m->env.rcpt[i].state = RCPT_BOUNCED;
					m->perm[i] = 0;
					m->dirty = 1;
				}
		} else {
			/* Try again later: the recipients stay pending. */
			for (size_t i = 0; i < m->env.nrcpt; i++)
				if (m->perm[i]) {
					m->env.rcpt[i].next_try = now + q->cfg->retry_interval;
					m->perm[i] = 0;
					m->dirty = 1;
				}
		}
	}
	/* tsubamectl queue hold arrived during this round: its results are in, now it goes to hold/. */
	if (m->hold_wanted && !qenvelope_finished(&m->env) && queue_ctl_hold_settle(q, m) == 0)
		return;
	/*
	 * Expire recipients that have waited too long.  One that is due now (a flush,
	 * a release from hold, a restart) gets its attempt first.
	 */
	int expired = 0;
	int held = link_holds_remote(q);
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		struct qrcpt *r = &m->env.rcpt[i];
		if (r->state == RCPT_REMOTE && held)
			continue;   /* E5: no expiry while it cannot be tried; it gets its attempt at link up */
		int pending = r->state == RCPT_LOCAL || r->state == RCPT_REMOTE;
		/* E3: a held domain's recipient expires at hold_lifetime, tried or not (held.c). */
		if (pending && (held_domain(m, i) ? held_expired(m, i, now) : r->attempts > 0 && r->next_try > now &&
		    now - m->env.arrival > q->cfg->queue_lifetime)) {
			m->perm[i] = 1;
			free(m->enh[i]);
			m->enh[i] = xstrdup("4.4.7");
			expired = 1;
		}
	}
	if (expired && bounce_queue(q, m, 1) == 0)
		for (size_t i = 0; i < m->env.nrcpt; i++)
			if (m->perm[i]) {
				m->env.rcpt[i].state = RCPT_EXPIRED;
				m->perm[i] = 0;
				m->dirty = 1;
			}

	notices(q, m, now);

	if (qenvelope_finished(&m->env)) {
		/* Nothing left: the message leaves the queue (a lost unlink only repeats deliveries). */
		if (spool_remove(&q->spool, m->qid) < 0 && errno != ENOENT)
			log_warn("qid=%s event=remove_failed", m->qid);
		log_info("qid=%s event=removed", m->qid);
		msg_free(q, m);
		return;
	}
	long long next;
	if (due_pending(m, now, &next)) {
		/* e.g. a worker was missing: try again now */
		make_ready(q, m);
		return;
	}
	int persisted = persist(m) == 0;
	long long warn_at = warning_due_at(q, m);
	if (next == 0 && persisted && held) {
		/* E5: only the link is awaited: no retry timer (link.c wakes it), at most the delay warning's. */
		close(m->fd);
		m->fd = -1;
		if (warn_at > now) {
			struct timeval wtv = { (time_t)(warn_at - now), 0 };
			evtimer_add(m->timer, &wtv);
		}
		return;
	}
	if (!persisted || next <= now)
		next = now + q->cfg->retry_interval;
	if (warn_at > now && warn_at < next)
		next = warn_at;
	close(m->fd);
	m->fd = -1;
	struct timeval tv = { (time_t)(next - now), 0 };
	evtimer_add(m->timer, &tv);
}

/*
 * D2: a temporary remote failure.  The manual's three classes: a peer that
 * refuses (4xx) is retried retry_refused_count times; broken or timed-out
 * sessions for retry_line_period; unreachable hosts for retry_noanswer_period.
 * Then the recipient bounces.
 */
static void remote_retry(struct queue *q, struct qmsg *m, uint32_t idx, uint32_t cls, const char *text)
{
	struct qrcpt *r = &m->env.rcpt[idx];
	const struct config *c = q->cfg;
	long long now = (long long)time(NULL);
	r->attempts++;
	m->dirty = 1;
	const char *why = NULL;
	if (cls == RETRY_REFUSED && r->attempts > (unsigned)c->retry_refused_count)
		why = "refused too often";
	else if (cls == RETRY_LINE && now - m->env.arrival >= c->retry_line_period)
		why = "connection errors for too long";
	else if (cls != RETRY_REFUSED && cls != RETRY_LINE && now - m->env.arrival >= c->retry_noanswer_period)
		why = "no host answered for too long";
	if (held_domain(m, idx))
		why = NULL;   /* E3: a held recipient waits for the next ETRN, until hold_lifetime */
	if (why) {
		/* RFC 3464: a failed recipient carries a permanent status, even after temporary errors. */
		if (m->enh[idx] && m->enh[idx][0] == '4')
			m->enh[idx][0] = '5';
		free(m->diag[idx]);
		m->diag[idx] = xasprintf("%s (%s, %u attempts)", text, why, r->attempts);
		m->perm[idx] = 1;
		return;
	}
	r->next_try = now + (c->retry_without_waiting ? 1 : c->retry_interval);
}

static void on_deliver_msg(struct ipc_channel *ch, struct ipc_msg *im, void *arg)
{
	struct deliver_worker *w = arg;
	struct queue *q = w->q;
	if (im->fd >= 0)
		close(im->fd);
	if (im->type == IPC_D_ETRN_RESULT) {
		link_etrn_result(q, im);
		return;
	}
	const char *qid = ipc_get_str(im);
	if (im->type == IPC_D_RESULT) {
		uint32_t idx = ipc_get_u32(im);
		uint32_t status = ipc_get_u32(im);
		uint32_t cls = ipc_get_u32(im);
		const char *enh = ipc_get_str(im);
		const char *text = ipc_get_str(im);
		const char *mta = ipc_get_str(im);
		uint32_t code = ipc_get_u32(im);
		uint32_t dsn_passed = ipc_get_u32(im);
		if (ipc_end(im) < 0)
			return;
		struct qmsg *m = find_msg(q, qid);
		if (!m || idx >= m->env.nrcpt)
			return;
		struct qrcpt *r = &m->env.rcpt[idx];
		free(m->diag[idx]);
		free(m->enh[idx]);
		free(m->mta[idx]);
		m->diag[idx] = xstrdup(text);
		m->enh[idx] = xstrdup(enh);
		m->mta[idx] = xstrdup(mta);
		m->code[idx] = code < 1000 ? (int)code : 0;
		if (status == DELIVER_OK) {
			link_note_delivered(q, r->state == RCPT_REMOTE);
			/* RFC 3461 6.2.6: a peer that took NOTIFY with it reports success itself. */
			if ((r->notify & DSN_NOTIFY_SUCCESS) && !dsn_passed)
				m->success[idx] = r->state == RCPT_REMOTE ? 'r' : 's';
			r->state = RCPT_DONE;
			m->dirty = 1;
		} else if (status == DELIVER_PERMFAIL) {
			m->perm[idx] = 1;
		} else if (r->state == RCPT_REMOTE) {
			remote_retry(q, m, idx, cls, text);
		} else {
			long long delay = q->cfg->retry_interval;
			for (unsigned k = 0; k < r->attempts && delay < 3600; k++)
				delay *= 2;
			if (delay > 3600)
				delay = 3600;
			r->attempts++;
			r->next_try = (long long)time(NULL) + delay;
			m->dirty = 1;
		}
		return;
	}
	if (im->type == IPC_D_DONE) {
		uint32_t remote = ipc_get_u32(im);
		const char *domain = ipc_get_str(im);
		if (ipc_end(im) < 0)
			return;
		if (remote) {
			if (w->remote_load)
				w->remote_load--;
			if (q->remote_inflight)
				q->remote_inflight--;
			dest_release(&q->dests, domain);   /* dispatch() below gives the slot to who waits */
		} else if (w->load) {
			w->load--;
		}
		if (q->inflight)
			q->inflight--;
		struct qmsg *m = find_msg(q, qid);
		if (m && m->inflight && --m->inflight == 0)
			finish_round(q, m);
		dispatch(q);
		if (remote && q->remote_inflight == 0)
			link_remote_idle(q);   /* E4: the push is over, the pull may go */
		return;
	}
	log_warnx("event=ipc_unexpected type=%u peer=%s", im->type, w->name);
}

static void on_deliver_close(struct ipc_channel *ch, void *arg)
{
	struct deliver_worker *w = arg;
	w->alive = 0;
	log_warnx("event=deliver_lost worker=%s action=exit", w->name);
	/* Requests in flight are lost with it: exit so the master restarts everything cleanly. */
	event_base_loopexit(w->q->base, NULL);
}

static void on_smtpd_msg(struct ipc_channel *ch, struct ipc_msg *im, void *arg)
{
	struct queue *q = arg;
	if (im->type == IPC_Q_ATRN) {
		atrn_request(q, im);   /* E6: it passes the connection on, or closes it */
		return;
	}
	if (im->fd >= 0)
		close(im->fd);
	switch (im->type) {
	case IPC_Q_CREATE: {
		uint64_t session = ipc_get_u64(im);
		if (ipc_end(im) < 0)
			return;
		struct incoming *in = xcalloc(1, sizeof(*in));
		if (q->stopping || spool_create(&q->spool, in->qid, &in->fd) < 0) {
			if (!q->stopping)
				log_warn("event=queue_create_failed");
			free(in);
			reply(q, IPC_Q_CREATE_FAIL, session, NULL, NULL, -1);
			return;
		}
		in->session = session;
		TAILQ_INSERT_TAIL(&q->incoming, in, entry);
		reply(q, IPC_Q_CREATE_OK, session, in->qid, NULL, in->fd);
		return;
	}
	case IPC_Q_ABORT: {
		const char *qid = ipc_get_str(im);
		if (ipc_end(im) < 0)
			return;
		struct incoming *in = find_incoming(q, qid);
		if (in)
			drop_incoming(q, in, 1);
		return;
	}
	case IPC_Q_ETRN:
		held_etrn(q, im);
		return;
	case IPC_Q_COMMIT: {
		uint64_t session = ipc_get_u64(im);
		const char *qid = ipc_get_str(im);
		if (ipc_end(im) < 0)
			return;
		struct incoming *in = find_incoming(q, qid);
		if (!in) {
			reply(q, IPC_Q_COMMIT_FAIL, session, qid, "unknown queue file", -1);
			return;
		}
		struct qenvelope env;
		char why[256];
		memset(&env, 0, sizeof(env));
		if (qfile_parse(in->fd, &env, why, sizeof(why)) < 0 || strcmp(env.qid, qid) != 0) {
			log_warnx("qid=%s event=commit_refused reason=%s", qid, lq(why));
			qenvelope_free(&env);
			drop_incoming(q, in, 1);
			reply(q, IPC_Q_COMMIT_FAIL, session, qid, "invalid queue file", -1);
			return;
		}
		if (spool_commit(&q->spool, qid, in->fd) < 0) {
			log_warn("qid=%s event=commit_failed", qid);
			qenvelope_free(&env);
			drop_incoming(q, in, 1);
			reply(q, IPC_Q_COMMIT_FAIL, session, qid, "commit failed", -1);
			return;
		}
		int fd = in->fd;
		in->fd = -1;
		TAILQ_REMOVE(&q->incoming, in, entry);
		free(in);
		/* Admitted now, but deliveries wait for the directory fsync at the end of this pass. */
		struct qmsg *m = xcalloc(1, sizeof(*m));
		m->q = q;
		snprintf(m->qid, sizeof(m->qid), "%s", qid);
		m->fd = fd;
		m->env = env;
		if (q->ncommits == q->cap_commits) {
			q->cap_commits = q->cap_commits ? q->cap_commits * 2 : 64;
			q->commits = xreallocarray(q->commits, q->cap_commits, sizeof(*q->commits));
		}
		q->commits[q->ncommits].session = session;
		q->commits[q->ncommits].m = m;
		q->ncommits++;
		return;
	}
	default:
		log_warnx("event=ipc_unexpected type=%u peer=smtpd", im->type);
	}
}

/* Group commit: one directory fsync for every message committed in this read pass, then the replies. */
static void on_smtpd_batch_end(struct ipc_channel *ch, void *arg)
{
	struct queue *q = arg;
	if (q->ncommits == 0)
		return;
	int ok = spool_sync(&q->spool) == 0;
	if (!ok)
		log_warn("event=queue_dir_sync_failed messages=%zu", q->ncommits);
	else
		link_note_received(q, q->ncommits);
	for (size_t i = 0; i < q->ncommits; i++) {
		struct qmsg *m = q->commits[i].m;
		if (ok) {
			reply(q, IPC_Q_COMMIT_OK, q->commits[i].session, m->qid, NULL, -1);
			log_info("qid=%s event=committed from=<%s> nrcpt=%zu size=%lld", m->qid, lq(m->env.sender),
			    m->env.nrcpt, (long long)m->env.data_len);
		} else {
			/* Not known durable: refuse; the file stays and may be delivered (a duplicate, never a loss). */
			reply(q, IPC_Q_COMMIT_FAIL, q->commits[i].session, m->qid, "directory sync failed", -1);
		}
		struct qenvelope env = m->env;
		int fd = m->fd;
		char qid[QID_MAX];
		snprintf(qid, sizeof(qid), "%s", m->qid);
		free(m);
		queue_admit(q, qid, fd, &env);
	}
	q->ncommits = 0;
	dispatch(q);
}

static void on_smtpd_close(struct ipc_channel *ch, void *arg)
{
	struct queue *q = arg;
	/* smtpd exits first at shutdown; outside a shutdown the master restarts us all. */
	struct incoming *in;
	while ((in = TAILQ_FIRST(&q->incoming)))
		drop_incoming(q, in, 1);
	/* At shutdown smtpd exits first, by design; otherwise the master restarts us all. */
	log_info("event=smtpd_closed");
}

static void recover_one(void *arg, const char *qid)
{
	struct queue *q = arg;
	int fd = spool_open_file(&q->spool, SPOOL_ACTIVE, qid, O_RDWR);
	if (fd < 0) {
		log_warn("qid=%s event=recover_open_failed", qid);
		return;
	}
	struct qenvelope env;
	char why[256];
	memset(&env, 0, sizeof(env));
	if (qfile_parse(fd, &env, why, sizeof(why)) < 0) {
		log_warnx("qid=%s event=quarantined reason=%s", qid, lq(why));
		qenvelope_free(&env);
		close(fd);
		spool_quarantine(&q->spool, SPOOL_ACTIVE, qid);
		return;
	}
	log_info("qid=%s event=recovered nrcpt=%zu", qid, env.nrcpt);
	queue_admit(q, qid, fd, &env);
}

static void claim_one(void *arg, const char *qid)
{
	struct queue *q = arg;
	if (spool_claim(&q->spool, qid) == 0)
		recover_one(q, qid);
}

static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
	struct queue *q = arg;

	if (local_reload(&q->cfg, &q->tables) == 0) {
		log_info("event=reloaded");
		link_reload(q);
	}
}

static void on_sigterm(evutil_socket_t sig, short what, void *arg)
{
	struct queue *q = arg;
	/* The master stops smtpd first; anything committed is on disk. In-flight deliveries repeat at start. */
	q->stopping = 1;
	log_info("event=stopping messages=%zu inflight=%u", q->nmessages, q->inflight);
	event_base_loopexit(q->base, NULL);
}

int queue_main(struct config *cfg, int smtpd_fd, const int *deliver_fds, size_t ndeliver)
{
	struct queue q;
	memset(&q, 0, sizeof(q));
	log_set_process("queue");
	signal(SIGPIPE, SIG_IGN);
	q.cfg = cfg;
	q.tables = local_start(cfg);
	if (spool_open(&q.spool, cfg->work_dir, cfg->node_id, 1) < 0)
		fatal("event=start_failed reason=spool work_dir=%s", cfg->work_dir);
	if (spool_enable_recycling(&q.spool, 1024) < 0)
		log_warn("event=recycling_disabled");
	TAILQ_INIT(&q.ready);
	TAILQ_INIT(&q.waiting);
	TAILQ_INIT(&q.incoming);
	dest_table_init(&q.dests);
	q.base = event_base_new();
	if (!q.base)
		fatalx("event=start_failed reason=event_base");
	ipc_channel_init(&q.smtpd, q.base, smtpd_fd, "smtpd", on_smtpd_msg, on_smtpd_close, &q);
	q.smtpd.on_batch_end = on_smtpd_batch_end;
	q.workers = xcalloc(ndeliver ? ndeliver : 1, sizeof(*q.workers));
	q.nworkers = ndeliver;
	for (size_t i = 0; i < ndeliver; i++) {
		struct deliver_worker *w = &q.workers[i];
		w->q = &q;
		w->alive = 1;
		snprintf(w->name, sizeof(w->name), "deliver%u", (unsigned)i);
		ipc_channel_init(&w->ch, q.base, deliver_fds[i], w->name, on_deliver_msg, on_deliver_close, w);
	}
	q.ev_sighup = evsignal_new(q.base, SIGHUP, on_sighup, &q);
	q.ev_sigterm = evsignal_new(q.base, SIGTERM, on_sigterm, &q);
	q.ev_sigint = evsignal_new(q.base, SIGINT, on_sigterm, &q);
	event_add(q.ev_sighup, NULL);
	event_add(q.ev_sigterm, NULL);
	event_add(q.ev_sigint, NULL);
	signals_unblock_lifecycle();

	/* The dial-up link first: recovered mail for remote hosts may have to wait for it. */
	link_start(&q);
	/* Recovery: unacknowledged files go; committed ones are delivered. */
	spool_recover_incoming(&q.spool, 3600);
	spool_list(&q.spool, SPOOL_ACTIVE, recover_one, &q);
	/* Messages waiting in deferred/ (any node's) are claimed by rename: only one node wins each. */
	spool_list(&q.spool, SPOOL_DEFERRED, claim_one, &q);
	dispatch(&q);
	queue_ctl_start(&q);
	log_info("event=started messages=%zu workers=%zu", q.nmessages, ndeliver);

	event_base_dispatch(q.base);

	queue_ctl_stop(&q);
	link_stop(&q);

	struct incoming *in;
	while ((in = TAILQ_FIRST(&q.incoming)))
		drop_incoming(&q, in, 1);
	while (!TAILQ_EMPTY(&q.ready))
		msg_free(&q, TAILQ_FIRST(&q.ready));
	while (!TAILQ_EMPTY(&q.waiting))
		msg_free(&q, TAILQ_FIRST(&q.waiting));
	dest_table_free(&q.dests);
	for (size_t i = 0; i < q.ncommits; i++) {
		qenvelope_free(&q.commits[i].m->env);
		close(q.commits[i].m->fd);
		free(q.commits[i].m);
	}
	free(q.commits);
	free(q.index);
	ipc_channel_close(&q.smtpd);
	for (size_t i = 0; i < ndeliver; i++)
		ipc_channel_close(&q.workers[i].ch);
	free(q.workers);
	event_free(q.ev_sighup);
	event_free(q.ev_sigterm);
	event_free(q.ev_sigint);
	event_base_free(q.base);
	spool_close(&q.spool);
	local_release(q.cfg, cfg, q.tables);
	log_info("event=stopped");
	return 0;
}

/* ---- for queue_ctl.c ---------------------------------------------------- */

struct qmsg *queue_find_msg(struct queue *q, const char *qid) { return find_msg(q, qid); }

struct qmsg **queue_all_msgs(struct queue *q, size_t *n)
{
	struct qmsg **v = xcalloc(q->nmessages + 1, sizeof(*v));
	size_t k = 0;
	struct qmsg *m;
	TAILQ_FOREACH(m, &q->ready, entry)
		if (k < q->nmessages)
			v[k++] = m;
	TAILQ_FOREACH(m, &q->waiting, entry)
		if (k < q->nmessages)
			v[k++] = m;
	*n = k;
	return v;
}

void queue_make_ready(struct queue *q, struct qmsg *m) { make_ready(q, m); }

void queue_dispatch(struct queue *q) { dispatch(q); }

int queue_persist(struct qmsg *m) { return persist(m); }

void queue_forget(struct queue *q, struct qmsg *m) { msg_free(q, m); }
