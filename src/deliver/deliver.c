/*
 * deliver: the delivery process main loop (see deliver.h for its SECURITY
 * paragraph).  Each IPC_D_DELIVER names a queue file (passed as a descriptor)
 * and up to a few hundred local recipients; every recipient gets an
 * IPC_D_RESULT, then the request gets IPC_D_DONE.  A result of DELIVER_OK is
 * only sent after the Maildir file and its directory entry were fsynced.
 *
 * Group commit: every request that arrived in one read pass is delivered first
 * (each copy written, fsynced and renamed into new/), then each Maildir's new/
 * is fsynced once for all of them, and only then do the results go out.  Under
 * load that halves the synchronous writes per message.
 */
#include "deliver/deliver.h"

#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "deliver/atrn_relay.h"
#include "deliver/etrn_job.h"
#include "deliver/remote.h"
#include "local/reload.h"
#include "queue/qfile.h"
#include "queue/qid.h"
#include "util/fsutil.h"
#include "util/log.h"
#include "util/signals.h"
#include "util/xtext.h"
#include "util/xalloc.h"

/* A reply held back until the directory fsyncs of this pass are done. */
struct pending {
	int done;                 /* 1: IPC_D_DONE for qid; 0: a recipient's result */
	char qid[QID_MAX];
	uint32_t idx;
	struct local_result r;
	char *dest, *present;
};

struct deliver {
	struct event_base *base;
	struct config *cfg;
	struct local_tables *tables;
	struct ipc_channel queue;
	struct event *ev_sighup, *ev_sigterm, *ev_sigint;
	struct pending *pending;
	size_t npending, cap_pending;
	struct remote *remote;        /* NULL when it could not start: remote requests are deferred */
	unsigned long long stamp;     /* tables_stamp() of the tables in use */
	int stopping;                 /* closing the cached connections; no new remote jobs */
	struct etrn_jobs *etrn;       /* pull requests in progress (E4) */
	struct atrn_relay *atrn;      /* reversed ATRN connections (E6) */
};

/*
 * A fingerprint of the configuration and table files.  smtpd accepts a
 * recipient against its tables; if ours are older (a reload signal still on
 * its way), delivery would call the new user unknown and bounce mail that was
 * rightly accepted.  So before a "user unknown" is believed, the files are
 * checked and reloaded when they changed (off the hot path: only on a miss).
 */
static unsigned long long tables_stamp(const struct config *c)
{
	const char *files[] = { c->domains_file, c->accounts_file, c->aliases_file };
	unsigned long long h = 0;
	struct stat st;
	for (size_t i = 0; i < 4; i++) {
		char *p = i == 0 ? xstrdup(c->path) : config_path(c, files[i - 1]);
		if (stat(p, &st) == 0)
			h = h * 1000003u + (unsigned long long)st.st_mtim.tv_sec * 1000000000u +
			    (unsigned long long)st.st_mtim.tv_nsec + (unsigned long long)st.st_ino + (unsigned long long)st.st_size;
		free(p);
	}
	return h;
}

/* 1 when the tables were reloaded because their files changed. */
static int refresh_tables(struct deliver *d)
{
	unsigned long long now = tables_stamp(d->cfg);
	if (now == d->stamp)
		return 0;
	int ok = local_reload(&d->cfg, &d->tables) == 0;
	if (ok)
		log_info("event=reloaded reason=tables_changed");
	d->stamp = tables_stamp(d->cfg);
	return ok;
}

static struct pending *add_pending(struct deliver *d, const char *qid)
{
	if (d->npending == d->cap_pending) {
		d->cap_pending = d->cap_pending ? d->cap_pending * 2 : 64;
		d->pending = xreallocarray(d->pending, d->cap_pending, sizeof(*d->pending));
	}
	struct pending *p = &d->pending[d->npending++];
	memset(p, 0, sizeof(*p));
	snprintf(p->qid, sizeof(p->qid), "%s", qid);
	return p;
}

static void send_result_full(struct deliver *d, const char *qid, uint32_t idx, uint32_t status, uint32_t cls,
    const char *enh, const char *text, const char *mta, int code, int dsn_passed)
{
	struct buf p;
	buf_init(&p, 4096);
	ipc_put_str(&p, qid);
	ipc_put_u32(&p, idx);
	ipc_put_u32(&p, status);
	ipc_put_u32(&p, cls);
	ipc_put_str(&p, enh);
	ipc_put_str(&p, text);
	ipc_put_str(&p, mta);
	ipc_put_u32(&p, (uint32_t)code);
	ipc_put_u32(&p, (uint32_t)dsn_passed);
	ipc_send(&d->queue, IPC_D_RESULT, &p, -1);
	buf_free(&p);
}

static void send_result_raw(struct deliver *d, const char *qid, uint32_t idx, uint32_t status, uint32_t cls,
    const char *enh, const char *text)
{
	send_result_full(d, qid, idx, status, cls, enh, text, "", 0, 0);
}

static void send_result(struct deliver *d, const char *qid, uint32_t idx, const struct local_result *r)
{
	send_result_raw(d, qid, idx, (uint32_t)r->status, 0, r->enh, r->text);
}

/* domain: the request's, echoed so the queue can free that destination's slot (D1). */
static void send_done(struct deliver *d, const char *qid, int remote, const char *domain)
{
	struct buf b;
	buf_init(&b, 512);
	ipc_put_str(&b, qid);
	ipc_put_u32(&b, (uint32_t)remote);
	ipc_put_str(&b, domain);
	ipc_send(&d->queue, IPC_D_DONE, &b, -1);
	buf_free(&b);
}

/* A remote job is over: every recipient has its result and retry class. */
static void remote_done(void *arg, const char *qid, const char *domain, struct remote_rcpt *r, size_t n)
{
	struct deliver *d = arg;
	for (size_t i = 0; i < n; i++) {
		/* conn=new|reused: whether the deciding session came from the connection cache (D1). */
		log_to(LOG_DELIVERY, "qid=%s event=%s to=<%s> relay=%s dsn=%s status=%s conn=%s detail=%s", qid,
		    r[i].status == DELIVER_OK ? "delivered" : r[i].status == DELIVER_TEMPFAIL ? "deferred" : "failed",
		    lq(r[i].addr), lq(r[i].relay), r[i].enh,
		    r[i].status == DELIVER_OK ? "sent" : r[i].status == DELIVER_TEMPFAIL ? "deferred" : "bounced",
		    r[i].conn ? r[i].conn : "none", lq(r[i].text));
		if (r[i].status == DELIVER_OK)
			log_to(LOG_SEND, "qid=%s event=sent to=<%s> relay=%s dsn=%s", qid, lq(r[i].addr), lq(r[i].relay), r[i].enh);
		send_result_full(d, qid, r[i].idx, (uint32_t)r[i].status, (uint32_t)r[i].cls, r[i].enh, r[i].text,
		    strcmp(r[i].relay, "none") ? r[i].relay : "", r[i].code, r[i].dsn_passed);
	}
	send_done(d, qid, 1, domain);
}

/* RFC 3461 parameters passed on to a peer that offers DSN: RET and ENVID of the message. */
static void dsn_msg_params(uint32_t ret, const char *envid, char *out, size_t n)
{
	char x[3 * DSN_ENVID_MAX + 1];
	size_t k = 0;
	out[0] = '\0';
	if (ret == DSN_RET_FULL || ret == DSN_RET_HDRS)
		k += (size_t)snprintf(out, n, "RET=%s", ret == DSN_RET_FULL ? "FULL" : "HDRS");
	if (envid[0] && k < n && xtext_encode(envid, x, sizeof(x)) == 0)
		snprintf(out + k, n - k, "%sENVID=%s", k ? " " : "", x);
}

/*
 * NOTIFY and ORCPT of one recipient, or NULL.  When an alias changed the
 * address and the sender gave no ORCPT, the address the sender used is passed
 * on as ORCPT (RFC 3461 4.2: so the final DSN names what the sender wrote).
 */
static char *dsn_rcpt_params(uint32_t notify, const char *orcpt, const char *orig, const char *present)
{
	static const char *names[] = { "SUCCESS", "FAILURE", "DELAY" };
	char out[64 + 3 * DSN_ORCPT_MAX + 16 + DSN_ORCPT_MAX];
	size_t k = 0;
	out[0] = '\0';
	if (notify == DSN_NOTIFY_NEVER) {
		k += (size_t)snprintf(out, sizeof(out), "NOTIFY=NEVER");
	} else if (notify) {
		k += (size_t)snprintf(out, sizeof(out), "NOTIFY=");
		for (int b = 0, first = 1; b < 3; b++)
			if (notify & (1u << b)) {
				k += (size_t)snprintf(out + k, sizeof(out) - k, "%s%s", first ? "" : ",", names[b]);
				first = 0;
			}
	}
	char value[DSN_ORCPT_MAX + 16];
	if (orcpt[0])
		snprintf(value, sizeof(value), "%s", orcpt);
	else if (strcmp(orig, present) != 0 && strlen(orig) < DSN_ORCPT_MAX - 8)
		snprintf(value, sizeof(value), "rfc822;%s", orig);
	else
		value[0] = '\0';
	/* ORCPT's type stays as it is; its address part is xtext. */
	const char *semi = strchr(value, ';');
	char x[3 * DSN_ORCPT_MAX + 1];
	if (semi && xtext_encode(semi + 1, x, sizeof(x)) == 0 && strlen(x) + (size_t)(semi - value) < DSN_ORCPT_MAX)
		snprintf(out + k, sizeof(out) - k, "%sORCPT=%.*s;%s", k ? " " : "", (int)(semi - value), value, x);
	return out[0] ? xstrdup(out) : NULL;
}

static void on_queue_msg(struct ipc_channel *ch, struct ipc_msg *m, void *arg)
{
	struct deliver *d = arg;
	if (m->type == IPC_D_ATRN_OPEN) {
		uint32_t id = ipc_get_u32(m);
		const char *tag = ipc_get_str(m);
		if (ipc_end(m) < 0 || m->fd < 0 || d->stopping) {
			if (m->fd >= 0)
				close(m->fd);
			return;
		}
		atrn_relay_open(d->atrn, d->cfg, id, tag, m->fd);
		return;
	}
	if (m->type == IPC_D_ATRN_END && m->fd < 0) {
		uint32_t id = ipc_get_u32(m);
		if (ipc_end(m) == 0)
			atrn_relay_end(d->atrn, id);
		return;
	}
	if (m->type == IPC_D_ETRN && m->fd < 0) {
		if (!d->stopping)
			etrn_jobs_request(d->etrn, d->cfg, m, &d->queue);
		return;
	}
	if (m->type != IPC_D_DELIVER) {
		log_warnx("event=ipc_unexpected type=%u peer=queue", m->type);
		if (m->fd >= 0)
			close(m->fd);
		return;
	}
	const char *qid = ipc_get_str(m);
	off_t off = (off_t)ipc_get_u64(m);
	off_t len = (off_t)ipc_get_u64(m);
	const char *sender = ipc_get_str(m);
	uint32_t flags = ipc_get_u32(m);
	const char *domain = ipc_get_str(m);
	const char *envid = ipc_get_str(m);
	uint32_t ret = ipc_get_u32(m);
	const char *auth = ipc_get_str(m);
	uint32_t n = ipc_get_u32(m);
	struct item { uint32_t idx; const char *dest, *present, *orig, *orcpt; uint32_t notify; } *items =
	    xcalloc(n ? n : 1, sizeof(*items));
	for (uint32_t i = 0; i < n && !m->bad; i++) {
		items[i].idx = ipc_get_u32(m);
		items[i].dest = ipc_get_str(m);
		items[i].present = ipc_get_str(m);
		items[i].orig = ipc_get_str(m);
		items[i].notify = ipc_get_u32(m);
		items[i].orcpt = ipc_get_str(m);
	}
	uint32_t atrn_id = (flags & DELIVER_REQ_ATRN) ? ipc_get_u32(m) : 0;   /* E6: after the recipients */
	if (ipc_end(m) < 0 || m->fd < 0) {
		if (m->fd >= 0)
			close(m->fd);
		free(items);
		return;
	}
	if (flags & DELIVER_REQ_REMOTE) {
		if (d->stopping || (!d->remote && !(flags & DELIVER_REQ_ATRN))) {
			for (uint32_t i = 0; i < n; i++)
				send_result_raw(d, qid, items[i].idx, DELIVER_TEMPFAIL, RETRY_NOANSWER, "4.3.5",
				    d->stopping ? "shutting down" : "remote delivery unavailable (see the deliver log)");
			send_done(d, qid, 1, domain);
			close(m->fd);
			free(items);
			return;
		}
		struct remote_rcpt *rr = xcalloc(n ? n : 1, sizeof(*rr));
		for (uint32_t i = 0; i < n; i++) {
			rr[i].idx = items[i].idx;
			/* the envelope recipient we present to the next hop (the manual's rewrite rule) */
			rr[i].addr = xstrdup(items[i].present);
			rr[i].dsn_params = dsn_rcpt_params(items[i].notify, items[i].orcpt, items[i].orig, items[i].present);
		}
		char mparams[3 * DSN_ENVID_MAX + 32];
		dsn_msg_params(ret, envid, mparams, sizeof(mparams));
		struct remote_msg msg = {
			.sender = sender,
			.dsn_params = mparams,
			.auth_account = auth,
			.flags = (flags & DELIVER_REQ_8BIT ? REMOTE_FLAG_8BIT : 0) |
			    (flags & DELIVER_REQ_SMTPUTF8 ? REMOTE_FLAG_SMTPUTF8 : 0),
		};
		if (flags & DELIVER_REQ_ATRN)
			atrn_relay_deliver(d->atrn, atrn_id, qid, m->fd, off, len, &msg, domain, rr, n, remote_done, d);
		else
			remote_deliver(d->remote, qid, m->fd, off, len, &msg, domain, rr, n, remote_done, d);
		free(items);
		return;
	}
	unsigned received = count_received(m->fd, off, len);
	for (uint32_t i = 0; i < n; i++) {
		struct pending *p = add_pending(d, qid);
		p->idx = items[i].idx;
		p->dest = xstrdup(items[i].dest);
		p->present = xstrdup(items[i].present);
		local_deliver(d->cfg, d->tables, m->fd, off, len, sender, items[i].dest, items[i].present, received, 1,
		    &p->r);
		if (p->r.status == DELIVER_PERMFAIL && !strcmp(p->r.enh, "5.1.1") && refresh_tables(d))
			local_deliver(d->cfg, d->tables, m->fd, off, len, sender, items[i].dest, items[i].present, received,
			    1, &p->r);
	}
	close(m->fd);
	free(items);
	add_pending(d, qid)->done = 1;
}

/* End of a read pass: make the new/ entries durable, once per Maildir, then answer. */
static void on_batch_end(struct ipc_channel *ch, void *arg)
{
	struct deliver *d = arg;
	for (size_t i = 0; i < d->npending; i++) {
		struct pending *p = &d->pending[i];
		if (p->done || p->r.status != DELIVER_OK || !p->r.mailbox[0])
			continue;
		int seen = 0;
		for (size_t k = 0; k < i && !seen; k++)
			seen = !d->pending[k].done && d->pending[k].r.status == DELIVER_OK &&
			    !strcmp(d->pending[k].r.mailbox, p->r.mailbox);
		if (seen)
			continue;
		char dir[sizeof(p->r.mailbox) + 8];
		snprintf(dir, sizeof(dir), "%s/new", p->r.mailbox);
		if (fsync_dir(dir) == 0)
			continue;
		/* Not known durable: report a temporary failure (a retry may duplicate, never lose). */
		log_warn("event=maildir_sync_failed dir=%s", dir);
		for (size_t k = i; k < d->npending; k++) {
			struct pending *q = &d->pending[k];
			if (!q->done && q->r.status == DELIVER_OK && !strcmp(q->r.mailbox, p->r.mailbox)) {
				q->r.status = DELIVER_TEMPFAIL;
				snprintf(q->r.enh, sizeof(q->r.enh), "4.3.0");
				snprintf(q->r.text, sizeof(q->r.text), "cannot sync %s", dir);
			}
		}
	}
	for (size_t i = 0; i < d->npending; i++) {
		struct pending *p = &d->pending[i];
		if (p->done) {
			send_done(d, p->qid, 0, "");
			continue;
		}
		const struct local_result *r = &p->r;
		log_to(LOG_DELIVERY, "qid=%s event=%s to=<%s> present=<%s> relay=local dsn=%s status=%s detail=%s", p->qid,
		    r->status == DELIVER_OK ? "delivered" : r->status == DELIVER_TEMPFAIL ? "deferred" : "failed",
		    lq(p->dest), lq(p->present), r->enh,
		    r->status == DELIVER_OK ? "sent" : r->status == DELIVER_TEMPFAIL ? "deferred" : "bounced", lq(r->text));
		if (r->status == DELIVER_OK)
			log_to(LOG_SEND, "qid=%s event=sent to=<%s> relay=local mailbox=%s", p->qid, lq(p->dest), lq(r->mailbox));
		send_result(d, p->qid, p->idx, r);
		free(p->dest);
		free(p->present);
	}
	d->npending = 0;
}

static void on_drained(void *arg)
{
	struct deliver *d = arg;
	event_base_loopexit(d->base, NULL);
}

/*
 * Stop: local requests are handled whole inside one callback, so none is cut
 * short.  Remote jobs in flight are dropped (the queue repeats them: a
 * duplicate, never a loss); the idle cached connections get their QUIT, for
 * at most a second.
 */
static void stop(struct deliver *d)
{
	if (d->stopping)
		return;
	d->stopping = 1;
	if (remote_stop(d->remote, on_drained, d) == 0) {
		event_base_loopexit(d->base, NULL);
		return;
	}
	struct timeval tv = {1, 0};
	event_base_loopexit(d->base, &tv);
}

static void on_queue_close(struct ipc_channel *ch, void *arg)
{
	stop(arg);
}

static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
	struct deliver *d = arg;

	local_reload(&d->cfg, &d->tables);
	d->stamp = tables_stamp(d->cfg);
	/* The routing settings and tables (gateway, hosts): a remote part that could not start gets another try. */
	if (d->remote) {
		remote_reload(d->remote);
	} else if (!d->stopping) {
		struct buf errors;
		buf_init(&errors, 16 * 1024);
		d->remote = remote_new(d->base, d->cfg, &errors);
		if (d->remote)
			log_info("event=remote_delivery_available");
		else
			log_warnx("event=remote_delivery_unavailable errors=%s", lq(buf_cstr(&errors)));
		buf_free(&errors);
	}
}

static void on_sigterm(evutil_socket_t sig, short what, void *arg)
{
	stop(arg);
}

int deliver_main(struct config *cfg, int queue_fd, int index)
{
	struct deliver d;
	char name[32];
	memset(&d, 0, sizeof(d));
	snprintf(name, sizeof(name), "deliver%d", index);
	log_set_process(name);
	signal(SIGPIPE, SIG_IGN);
	d.cfg = cfg;
	d.tables = local_start(cfg);
	d.stamp = tables_stamp(cfg);
	d.base = event_base_new();
	if (!d.base)
		fatalx("event=start_failed reason=event_base");
	struct buf errors;
	buf_init(&errors, 16 * 1024);
	d.remote = remote_new(d.base, d.cfg, &errors);
	if (!d.remote)
		log_warnx("event=remote_delivery_unavailable errors=%s", lq(buf_cstr(&errors)));
	buf_free(&errors);
	d.etrn = etrn_jobs_new(d.base);
	d.atrn = atrn_relay_new(d.base);
	ipc_channel_init(&d.queue, d.base, queue_fd, "queue", on_queue_msg, on_queue_close, &d);
	d.queue.on_batch_end = on_batch_end;
	d.ev_sighup = evsignal_new(d.base, SIGHUP, on_sighup, &d);
	d.ev_sigterm = evsignal_new(d.base, SIGTERM, on_sigterm, &d);
	d.ev_sigint = evsignal_new(d.base, SIGINT, on_sigterm, &d);
	event_add(d.ev_sighup, NULL);
	event_add(d.ev_sigterm, NULL);
	event_add(d.ev_sigint, NULL);
	signals_unblock_lifecycle();
	event_base_dispatch(d.base);
	atrn_relay_free(d.atrn);
	remote_free(d.remote);
	etrn_jobs_free(d.etrn);
	ipc_channel_close(&d.queue);
	event_free(d.ev_sighup);
	event_free(d.ev_sigterm);
	event_free(d.ev_sigint);
	event_base_free(d.base);
	for (size_t i = 0; i < d.npending; i++) {
		free(d.pending[i].dest);
		free(d.pending[i].present);
	}
	free(d.pending);
	local_release(d.cfg, cfg, d.tables);
	return 0;
}
