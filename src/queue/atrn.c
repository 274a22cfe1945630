/*
 * atrn: the queue's part of ATRN (see atrn.h; RFC 2645 section 4.2.3).
 *
 * The decision, in order (smtpd words the replies, smtp/cmd_atrn.c):
 *   - the queue is stopping, or no deliver process: 451;
 *   - "ATRN d1,d2": every listed domain must be held (hold_lookup) by an entry
 *     the account may collect, else 450 and nothing is sent;
 *     "ATRN" alone: every held recipient whose entry the account may collect;
 *     none such entry at all: 450;
 *   - no waiting recipient selected: 453 (the connection is not reversed);
 *   - otherwise 250: IPC_D_ATRN_OPEN with the connection, one IPC_D_DELIVER
 *     (flag DELIVER_REQ_ATRN) per message and domain, then IPC_D_ATRN_END, all
 *     to one deliver process, which runs them in order on one SMTP client.
 *
 * Bookkeeping: an ATRN request counts like any remote request (worker load,
 * remote_inflight, the destination's slot, the message's inflight), so
 * IPC_D_RESULT / IPC_D_DONE need nothing special: delivered recipients are
 * done, 5xx bounce, 4xx and a lost connection leave them held for the next
 * ETRN or ATRN (remote_retry never gives up on a held domain).  The sent
 * recipients are marked HELD_INFLIGHT so an ETRN meanwhile does not send them
 * twice; the end of the message's round clears the mark.
 */
#include "queue/atrn.h"

#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "policy/atrn_args.h"
#include "policy/holdtab.h"
#include "queue/dest.h"
#include "queue/held.h"
#include "queue/queue.h"
#include "util/log.h"
#include "util/xalloc.h"

#define ATRN_RCPTS_PER_REQUEST 200
/*
 * Messages x domains handed over by one ATRN; the rest waits for the next.  Each
 * request holds a descriptor of its queue file in the deliver process until the
 * customer (who sets the pace) has taken it: the cap bounds what one session can
 * pin.
 */
#define ATRN_MAX_REQUESTS 500

struct pick {
	struct queue *q;
	const struct atrn_domains *doms;  /* n == 0: every domain the account may collect */
	const char *auth;
};

static const char *domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at ? at + 1 : "";
}

/* Does this ATRN take recipient r? */
static int takes(const struct pick *pk, const struct qrcpt *r)
{
	if (r->state != RCPT_REMOTE || !pk->q->tables)
		return 0;
	const struct hold_table *t = &pk->q->tables->hold;
	const char *d = domain_of(r->dest);
	const struct hold_entry *e = hold_lookup(t, d);
	if (!e || !hold_may_collect(t, e, pk->auth))
		return 0;
	return pk->doms->n == 0 || atrn_domains_has(pk->doms, d);
}

/* Recipient i of m goes out with this ATRN. */
static int takes_now(const struct pick *pk, const struct qmsg *m, size_t i)
{
	return takes(pk, &m->env.rcpt[i]) && (!m->released || m->released[i] == 0);
}

/* A deferred/ file (any node may claim those) with a recipient we take. */
static void claim_one(void *arg, const char *qid)
{
	struct pick *pk = arg;
	struct qenvelope env;
	char why[256];
	memset(&env, 0, sizeof(env));
	int fd = spool_open_file(&pk->q->spool, SPOOL_DEFERRED, qid, O_RDWR);
	if (fd < 0)
		return;
	int want = 0;
	if (qfile_parse(fd, &env, why, sizeof(why)) == 0)
		for (size_t i = 0; i < env.nrcpt && !want; i++)
			want = takes(pk, &env.rcpt[i]);
	if (!want || spool_claim(&pk->q->spool, qid) < 0) {
		qenvelope_free(&env);
		close(fd);
		return;
	}
	queue_admit(pk->q, qid, fd, &env);
}

static void answer(struct queue *q, uint64_t session, enum atrn_status st, long long count, const char *reason)
{
	struct buf p;
	buf_init(&p, 1024);
	ipc_put_u64(&p, session);
	ipc_put_u32(&p, (uint32_t)st);
	ipc_put_u64(&p, (uint64_t)(count < 0 ? 0 : count));
	ipc_put_str(&p, reason ? reason : "");
	ipc_send(&q->smtpd, IPC_Q_ATRN_RESULT, &p, -1);
	buf_free(&p);
}

static struct deliver_worker *pick_worker(struct queue *q)
{
	struct deliver_worker *best = NULL;
	for (size_t i = 0; i < q->nworkers; i++) {
		struct deliver_worker *w = &q->workers[i];
		if (w->alive && (!best || w->remote_load < best->remote_load))
			best = w;
	}
	return best;
}

/* The distinct domains of m's recipients that this ATRN takes, in order; their count. */
static size_t msg_domains(const struct pick *pk, const struct qmsg *m, const char **out, size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < m->env.nrcpt; i++) {
		if (!takes_now(pk, m, i))
			continue;
		const char *d = domain_of(m->env.rcpt[i].dest);
		size_t k;
		for (k = 0; k < n; k++)
			if (!strcasecmp(out[k], d))
				break;
		if (k == n && n < max)
			out[n++] = d;
	}
	return n;
}

/* One IPC_D_DELIVER of m's recipients in domain over ATRN connection id. */
static void send_one(struct queue *q, struct deliver_worker *w, struct qmsg *m, const char *domain,
    const struct pick *pk, uint32_t id)
{
	uint32_t flags = DELIVER_REQ_REMOTE | DELIVER_REQ_ATRN | (m->env.body == 1 ? DELIVER_REQ_8BIT : 0) |
	    (m->env.smtputf8 ? DELIVER_REQ_SMTPUTF8 : 0);
	char dom[ATRN_DOMAIN_MAX + 1];
	size_t dl = strnlen(domain, ATRN_DOMAIN_MAX);   /* a copy: domain points into the envelope */
	memcpy(dom, domain, dl);
	dom[dl] = '\0';
	struct buf p;
	buf_init(&p, IPC_MAX_MESSAGE);
	ipc_put_str(&p, m->qid);
	ipc_put_u64(&p, (uint64_t)m->env.data_off);
	ipc_put_u64(&p, (uint64_t)m->env.data_len);
	ipc_put_str(&p, m->env.sender);
	ipc_put_u32(&p, flags);
	ipc_put_str(&p, dom);
	ipc_put_str(&p, m->env.envid ? m->env.envid : "");
	ipc_put_u32(&p, (uint32_t)m->env.ret);
	ipc_put_str(&p, m->env.auth ? m->env.auth : "");
	size_t count_at = p.len;
	ipc_put_u32(&p, 0);
	uint32_t n = 0;
	for (size_t i = 0; i < m->env.nrcpt && n < ATRN_RCPTS_PER_REQUEST; i++) {
		struct qrcpt *r = &m->env.rcpt[i];
		if (!takes_now(pk, m, i) || strcasecmp(domain_of(r->dest), dom) != 0)
			continue;
		if (p.len + strlen(r->dest) + strlen(r->present) + strlen(r->orig) + strlen(r->orcpt) + 80 > IPC_MAX_MESSAGE)
			break;
		ipc_put_u32(&p, (uint32_t)i);
		ipc_put_str(&p, r->dest);
		ipc_put_str(&p, r->present);
		ipc_put_str(&p, r->orig);
		ipc_put_u32(&p, r->notify);
		ipc_put_str(&p, r->orcpt);
		m->released[i] = HELD_INFLIGHT;   /* an ETRN meanwhile leaves it alone; the round's end clears it */
		n++;
	}
	ipc_put_u32(&p, id);
	if (n > 0) {
		memcpy(p.data + count_at, &n, 4);
		ipc_send(&w->ch, IPC_D_DELIVER, &p, m->fd);
		w->remote_load++;
		q->remote_inflight++;
		dest_acquire(&q->dests, dom);
		m->inflight++;
		q->inflight++;
		log_info("qid=%s event=atrn_send atrn=%u domain=%s rcpts=%u", m->qid, id, lq(dom), n);
	}
	buf_free(&p);
}

void atrn_request(struct queue *q, struct ipc_msg *im)
{
	int fd = im->fd;
	im->fd = -1;
	uint64_t session = ipc_get_u64(im);
	const char *ip = ipc_get_str(im);
	const char *auth = ipc_get_str(im);
	uint32_t n = ipc_get_u32(im);
	struct atrn_domains *doms = xcalloc(1, sizeof(*doms));
	char joined[1024] = "";
	int bad = n > ATRN_DOMAINS_MAX;
	for (uint32_t i = 0; i < n && !bad && !im->bad; i++) {
		const char *d = ipc_get_str(im);
		size_t k = strlen(joined);
		snprintf(joined + k, sizeof(joined) - k, "%s%s", k ? "," : "", d);
	}
	if (ipc_end(im) < 0 || bad || fd < 0) {
		log_warnx("event=ipc_bad_atrn peer=smtpd");
		if (fd >= 0)
			close(fd);
		free(doms);
		return;
	}
	const char *reason = "";
	char why[600];
	enum atrn_status st = ATRN_STATUS_OK;
	/* smtpd parsed the list; we parse it again rather than trust the other process. */
	if (atrn_parse_domains(joined, doms) != 0 || doms->n != n || !auth[0]) {
		st = ATRN_STATUS_UNABLE;
		reason = "bad request";
	} else if (q->stopping || !pick_worker(q) || !q->tables) {
		st = ATRN_STATUS_UNABLE;
		reason = q->stopping ? "the queue manager is stopping" : "no delivery process";
	} else {
		const struct hold_table *t = &q->tables->hold;
		if (doms->n) {
			for (size_t i = 0; i < doms->n && st == ATRN_STATUS_OK; i++) {
				const struct hold_entry *e = hold_lookup(t, doms->v[i]);
				if (!e) {
					st = ATRN_STATUS_REFUSED;
					snprintf(why, sizeof(why), "%s is not held here", doms->v[i]);
					reason = why;
				} else if (!hold_may_collect(t, e, auth)) {
					st = ATRN_STATUS_REFUSED;
					snprintf(why, sizeof(why), "%s may not collect %s", auth, doms->v[i]);
					reason = why;
				}
			}
		} else {
			size_t k = 0;
			for (size_t i = 0; i < t->n; i++)
				k += hold_may_collect(t, &t->v[i], auth) != 0;
			if (k == 0) {
				st = ATRN_STATUS_REFUSED;
				snprintf(why, sizeof(why), "%s may not collect any domain", auth);
				reason = why;
			}
		}
	}
	long long messages = 0, requests = 0;
	if (st == ATRN_STATUS_OK) {
		struct pick pk = { q, doms, auth };
		spool_list(&q->spool, SPOOL_DEFERRED, claim_one, &pk);
		size_t nm;
		struct qmsg **v = queue_all_msgs(q, &nm);
		/* First count (nothing is sent unless something waits: 453 keeps the connection as it is). */
		for (size_t i = 0; i < nm; i++) {
			const char *ds[ATRN_DOMAINS_MAX];
			if (!v[i]->hold_wanted && msg_domains(&pk, v[i], ds, ATRN_DOMAINS_MAX) > 0)
				messages++;
		}
		if (messages == 0) {
			st = ATRN_STATUS_NOMAIL;
		} else {
			struct deliver_worker *w = pick_worker(q);
			uint32_t id = ++q->atrn_next;
			answer(q, session, ATRN_STATUS_OK, messages, "");
			struct buf p;
			buf_init(&p, 512);
			ipc_put_u32(&p, id);
			char tag[300];
			snprintf(tag, sizeof(tag), "atrn:%s[%s]", auth, ip);
			ipc_put_str(&p, tag);
			ipc_send(&w->ch, IPC_D_ATRN_OPEN, &p, fd);
			buf_free(&p);
			for (size_t i = 0; i < nm && requests < ATRN_MAX_REQUESTS; i++) {
				struct qmsg *m = v[i];
				const char *ds[ATRN_DOMAINS_MAX];
				size_t k = m->hold_wanted ? 0 : msg_domains(&pk, m, ds, ATRN_DOMAINS_MAX);
				if (k == 0)
					continue;
				if (m->fd < 0) {
					m->fd = spool_open_file(&q->spool, SPOOL_ACTIVE, m->qid, O_RDWR);
					if (m->fd < 0) {
						log_warn("qid=%s event=reopen_failed", m->qid);
						continue;
					}
				}
				char copy[ATRN_DOMAINS_MAX][ATRN_DOMAIN_MAX + 1];
				for (size_t j = 0; j < k; j++) {
					size_t dl = strnlen(ds[j], ATRN_DOMAIN_MAX);
					memcpy(copy[j], ds[j], dl);
					copy[j][dl] = '\0';
				}
				for (size_t j = 0; j < k; j++) {
					send_one(q, w, m, copy[j], &pk, id);
					requests++;
				}
			}
			buf_init(&p, 64);
			ipc_put_u32(&p, id);
			ipc_send(&w->ch, IPC_D_ATRN_END, &p, -1);
			buf_free(&p);
		}
		free(v);
	}
	log_info("event=atrn client=%s auth=%s domains=%s result=%s messages=%lld requests=%lld%s%s", lq(ip), lq(auth),
	    doms->n ? lq(joined) : "*", st == ATRN_STATUS_OK ? "reversed" : st == ATRN_STATUS_NOMAIL ? "no_mail" :
	    st == ATRN_STATUS_REFUSED ? "refused" : "unable", messages, requests, reason[0] ? " detail=" : "",
	    reason[0] ? lq(reason) : "");
	if (st != ATRN_STATUS_OK)
		answer(q, session, st, 0, reason);
	close(fd);
	free(doms);
}
