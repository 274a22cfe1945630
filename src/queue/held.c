/*
 * held: held recipients in the scheduler, their expiry, and their release by
 * ETRN or flush (see held.h for the rules and SECURITY notes, docs/etrn.md for
 * what an administrator sees).
 *
 * Owns: the release marks (struct qmsg.released) and the ETRN decision in the
 * queue process.  The messages stay queue.c's: releasing only changes a
 * recipient's next_try and mark in memory and moves its message to the ready
 * list through queue.h's functions; the file is not rewritten.
 *
 * ETRN decision (RFC 1985 codes; smtpd words them, cmd_etrn.c):
 *   - entries concerned by the node (holdtab.c hold_node_concerns) — none:
 *     a #queue nobody has is 458; a domain is flushed like `tsubamectl queue
 *     flush` when etrn_clients lets the client (250, or 251 when nothing
 *     waits), else 458 (we do not hold mail for it);
 *   - concerned, but no entry lets this client (allow=, else etrn_clients): 459;
 *   - every entry it may release routes (route=) to this server: 458 4.4.6;
 *   - otherwise its selected held recipients are released: 253 with the number
 *     of messages released now, else 252 when earlier released mail is still
 *     on its way, else 251.
 */
#include "queue/held.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "policy/holdtab.h"
#include "queue/queue.h"
#include "util/log.h"
#include "util/xalloc.h"

static const struct hold_table *table(const struct queue *q)
{
	return q->tables ? &q->tables->hold : NULL;
}

static const char *domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at ? at + 1 : "";
}

/* The entry holding recipient r, or NULL (local recipients are never held). */
static const struct hold_entry *entry_of(const struct queue *q, const struct qrcpt *r)
{
	if (r->state != RCPT_REMOTE)
		return NULL;
	return hold_lookup(table(q), domain_of(r->dest));
}

int held_rcpt(const struct queue *q, const struct qrcpt *r)
{
	return entry_of(q, r) != NULL;
}

int held_domain(const struct qmsg *m, size_t i)
{
	return i < m->env.nrcpt && entry_of(m->q, &m->env.rcpt[i]) != NULL;
}

int held_waiting(const struct qmsg *m, size_t i)
{
	if (m->released && m->released[i] == HELD_RELEASED)
		return 0;
	return held_domain(m, i);
}

static long long expires_at(const struct qmsg *m)
{
	return m->env.arrival + m->q->cfg->hold_lifetime + 1;
}

void held_wake(const struct qmsg *m, size_t i, long long *next)
{
	long long t = expires_at(m);
	if (*next == 0 || t < *next)
		*next = t;
}

int held_expired(struct qmsg *m, size_t i, long long now)
{
	const struct qrcpt *r = &m->env.rcpt[i];
	if (!held_waiting(m, i) || now < expires_at(m))
		return 0;
	long life = m->q->cfg->hold_lifetime;
	free(m->diag[i]);
	if (life % 86400 == 0)
		m->diag[i] = xasprintf("held for %s and not released by ETRN within %ld days", domain_of(r->dest), life / 86400);
	else
		m->diag[i] = xasprintf("held for %s and not released by ETRN within %ld hours", domain_of(r->dest),
		    (life + 3599) / 3600);
	return 1;
}

void held_sent(struct qmsg *m, size_t i)
{
	if (m->released && m->released[i] == HELD_RELEASED)
		m->released[i] = HELD_INFLIGHT;
}

void held_round_end(struct qmsg *m)
{
	if (!m->released)
		return;
	for (size_t i = 0; i < m->env.nrcpt; i++)
		if (m->released[i] == HELD_INFLIGHT)
			m->released[i] = 0;
}

/* ---- release ---------------------------------------------------------------- */

struct release {
	const struct hold_node *node;
	const char *ip, *auth;      /* the ETRN client; NULL: the administrator (flush) */
	int concerned, allowed, looping;
	long long messages, rcpts, pending;
};

/* Route= this server: releasing it would send the mail back to us. */
static int entry_loops(const struct queue *q, const struct hold_entry *e)
{
	return e->route_host && hold_is_self(q->cfg, e->route_host, NULL, e->route_port);
}

static int entry_allowed(const struct queue *q, const struct release *rl, const struct hold_entry *e)
{
	return !rl->ip || hold_may_release(table(q), e, rl->ip, rl->auth);
}

/* Does this release take recipient r (held by e)? */
static int selects(const struct queue *q, const struct release *rl, const struct qrcpt *r, const struct hold_entry **ep)
{
	const struct hold_entry *e = entry_of(q, r);
	*ep = e;
	return e && hold_node_selects(rl->node, e, domain_of(r->dest)) && entry_allowed(q, rl, e) && !entry_loops(q, e);
}

/* Mark the selected recipients of m released and wake it.  1 when something was released. */
static int release_msg(struct queue *q, struct release *rl, struct qmsg *m, long long now)
{
	long long k = 0, already = 0;
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		const struct hold_entry *e;
		if (!selects(q, rl, &m->env.rcpt[i], &e))
			continue;
		if (m->released[i]) {
			already++;
			continue;
		}
		m->released[i] = HELD_RELEASED;
		m->env.rcpt[i].next_try = now;
		k++;
	}
	if (already)
		rl->pending++;
	if (k == 0)
		return 0;
	rl->rcpts += k;
	rl->messages++;
	/* One with deliveries in flight finds the recipients due at the end of its round. */
	if (m->inflight == 0 && !m->on_ready) {
		evtimer_del(m->timer);
		queue_make_ready(q, m);
	}
	log_info("qid=%s event=held_release node=%s rcpts=%lld by=%s", m->qid, lq(rl->node->name), k,
	    rl->ip ? "etrn" : "tsubamectl");
	return 1;
}

struct claim {
	struct queue *q;
	struct release *rl;
	char **qids;
	size_t n;
};

/* A deferred/ file (any node may claim those) with a recipient this release takes. */
static void claim_one(void *arg, const char *qid)
{
	struct claim *c = arg;
	struct qenvelope env;
	char why[256];
	memset(&env, 0, sizeof(env));
	int fd = spool_open_file(&c->q->spool, SPOOL_DEFERRED, qid, O_RDWR);
	if (fd < 0)
		return;
	int want = 0;
	if (qfile_parse(fd, &env, why, sizeof(why)) == 0)
		for (size_t i = 0; i < env.nrcpt && !want; i++) {
			const struct hold_entry *e;
			want = (env.rcpt[i].state == RCPT_REMOTE) && selects(c->q, c->rl, &env.rcpt[i], &e);
		}
	if (!want || spool_claim(&c->q->spool, qid) < 0) {
		qenvelope_free(&env);
		close(fd);
		return;
	}
	queue_admit(c->q, qid, fd, &env);
	c->qids = xreallocarray(c->qids, c->n + 1, sizeof(*c->qids));
	c->qids[c->n++] = xstrdup(qid);
}

static void release_run(struct queue *q, struct release *rl)
{
	long long now = (long long)time(NULL);
	struct claim c = { q, rl, NULL, 0 };
	spool_list(&q->spool, SPOOL_DEFERRED, claim_one, &c);
	for (size_t i = 0; i < c.n; i++)
		free(c.qids[i]);
	free(c.qids);
	size_t n;
	struct qmsg **v = queue_all_msgs(q, &n);
	for (size_t i = 0; i < n; i++)
		if (!v[i]->hold_wanted)
			release_msg(q, rl, v[i], now);
	free(v);
	queue_dispatch(q);
}

/* Which entries the node concerns, which of them the client may release, which of those route to us. */
static void survey(const struct queue *q, struct release *rl)
{
	const struct hold_table *t = table(q);
	for (size_t i = 0; t && i < t->n; i++) {
		const struct hold_entry *e = &t->v[i];
		if (!hold_node_concerns(t, rl->node, e))
			continue;
		rl->concerned++;
		if (!entry_allowed(q, rl, e))
			continue;
		rl->allowed++;
		if (entry_loops(q, e)) {
			rl->looping++;
			log_warnx("event=held_route_loop entry=%s line=%d route=%s:%u detail=\"route= is this server: not released\"",
			    lq(e->name), e->line, lq(e->route_host), e->route_port);
		}
	}
}

void held_flush(struct queue *q, const char *domain, long long *messages, long long *rcpts)
{
	struct hold_node node;
	char arg[HOLD_NAME_MAX + 2];
	snprintf(arg, sizeof(arg), "%s", domain);
	/* flush takes any domain qctl_domain_valid accepts; only the ETRN forms can be held */
	if (hold_node_parse(arg, &node) != 0 || node.kind != HOLD_NODE_DOMAIN)
		return;
	struct release rl;
	memset(&rl, 0, sizeof(rl));
	rl.node = &node;
	survey(q, &rl);
	if (rl.allowed == 0 || rl.allowed == rl.looping)
		return;
	release_run(q, &rl);
	*messages += rl.messages;
	*rcpts += rl.rcpts;
}

/* ---- the non-held case: ETRN as a flush (etrn_clients) ------------------------- */

/* Make the waiting recipients of m covered by the node (and not held) due now.  Their count. */
static long long flush_msg(struct queue *q, const struct hold_node *node, struct qmsg *m, long long now)
{
	long long k = 0;
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		struct qrcpt *r = &m->env.rcpt[i];
		if ((r->state != RCPT_REMOTE && r->state != RCPT_LOCAL) || held_domain(m, i) ||
		    !hold_node_covers(node, domain_of(r->dest)))
			continue;
		if (r->next_try > now)
			r->next_try = now;
		k++;
	}
	if (k && m->inflight == 0 && !m->on_ready) {
		evtimer_del(m->timer);
		queue_make_ready(q, m);
	}
	return k;
}

static long long flush_node(struct queue *q, const struct hold_node *node)
{
	long long now = (long long)time(NULL), messages = 0, rcpts = 0;
	size_t n;
	struct qmsg **v = queue_all_msgs(q, &n);
	for (size_t i = 0; i < n; i++) {
		if (v[i]->hold_wanted)
			continue;
		long long k = flush_msg(q, node, v[i], now);
		if (k) {
			messages++;
			rcpts += k;
		}
	}
	free(v);
	queue_dispatch(q);
	log_info("event=flush by=etrn node=%s%s messages=%lld rcpts=%lld", node->kind == HOLD_NODE_SUBDOMAINS ? "@" : "",
	    lq(node->name), messages, rcpts);
	return messages;
}

/* ---- IPC_Q_ETRN ---------------------------------------------------------------- */

static void answer(struct queue *q, uint64_t session, enum etrn_status st, long long count, const char *reason)
{
	struct buf p;
	buf_init(&p, 1024);
	ipc_put_u64(&p, session);
	ipc_put_u32(&p, (uint32_t)st);
	ipc_put_u64(&p, (uint64_t)(count < 0 ? 0 : count));
	ipc_put_str(&p, reason ? reason : "");
	ipc_send(&q->smtpd, IPC_Q_ETRN_RESULT, &p, -1);
	buf_free(&p);
}

static const char *status_name(enum etrn_status st)
{
	switch (st) {
	case ETRN_QUEUED: return "queued";
	case ETRN_NOTHING: return "nothing";
	case ETRN_PENDING: return "pending";
	case ETRN_RELEASED: return "released";
	case ETRN_UNABLE: return "unable";
	case ETRN_LOOP: return "loop";
	case ETRN_DENIED: return "denied";
	}
	return "?";
}

void held_etrn(struct queue *q, struct ipc_msg *im)
{
	uint64_t session = ipc_get_u64(im);
	uint32_t kind = ipc_get_u32(im);
	const char *name = ipc_get_str(im);
	const char *ip = ipc_get_str(im);
	const char *auth = ipc_get_str(im);
	if (ipc_end(im) < 0)
		return;
	/* smtpd parsed it; we parse it again rather than trust the other process. */
	struct hold_node node;
	char arg[HOLD_NAME_MAX + 3];
	const char *opt = kind == HOLD_NODE_SUBDOMAINS ? "@" : kind == HOLD_NODE_QUEUE ? "#" : "";
	snprintf(arg, sizeof(arg), "%s%s", opt, name);
	if ((kind != HOLD_NODE_DOMAIN && kind != HOLD_NODE_SUBDOMAINS && kind != HOLD_NODE_QUEUE) ||
	    hold_node_parse(arg, &node) != 0 || node.kind != (enum hold_node_kind)kind) {
		log_warnx("event=ipc_bad_etrn peer=smtpd");
		answer(q, session, ETRN_UNABLE, 0, "bad request");
		return;
	}
	struct release rl;
	memset(&rl, 0, sizeof(rl));
	rl.node = &node;
	rl.ip = ip;
	rl.auth = auth;
	enum etrn_status st;
	long long count = 0;
	const char *reason = "";
	char why[300];
	if (q->stopping) {
		st = ETRN_UNABLE;
		reason = "the queue manager is stopping";
	} else {
		survey(q, &rl);
		if (rl.concerned == 0) {
			if (node.kind != HOLD_NODE_QUEUE && hold_access_allows(&table(q)->defaults, ip, auth)) {
				count = flush_node(q, &node);
				st = count > 0 ? ETRN_QUEUED : ETRN_NOTHING;
			} else {
				st = ETRN_UNABLE;
			}
		} else if (rl.allowed == 0) {
			st = ETRN_DENIED;
			snprintf(why, sizeof(why), "client %s%s%s may not release it", ip, *auth ? " authenticated as " : "",
			    auth);
			reason = why;
		} else if (rl.looping == rl.allowed) {
			st = ETRN_LOOP;
			reason = "its route points at this server";
		} else {
			release_run(q, &rl);
			count = rl.messages;
			st = rl.messages > 0 ? ETRN_RELEASED : rl.pending > 0 ? ETRN_PENDING : ETRN_NOTHING;
		}
	}
	log_info("event=etrn client=%s auth=%s node=%s%s result=%s messages=%lld rcpts=%lld pending=%lld", lq(ip),
	    *auth ? lq(auth) : "-", opt, lq(node.name), status_name(st), count, rl.rcpts, rl.pending);
	answer(q, session, st, count, reason);
}
