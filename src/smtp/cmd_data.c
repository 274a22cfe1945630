/*
 * cmd_data: DATA and BDAT — reading the content into the queue file the queue
 * process handed over, and the commit that must happen before "250 queued".
 *
 * Order of the end-of-message checks (each one rejects the whole message):
 * size, write errors, bare LF (reject mode), mail loop, From: = auth user, the
 * recipients' domain size limits.  Only then is the end
 * record written and IPC_Q_COMMIT sent; the 250 is sent when the queue answers
 * IPC_Q_COMMIT_OK, i.e. after the file and its directory entry are on disk
 * (invariant 1).  If the connection drops while a commit is in flight the
 * message may still be committed without a 250: a duplicate, never a loss.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "queue/qfile.h"
#include "smtp/smtpd.h"
#include "util/log.h"
#include "util/xalloc.h"

#define WRITE_CHUNK (64 * 1024)

void cmd_data(struct session *s, const char *args);
void cmd_bdat(struct session *s, const char *args);

static void flush_writes(struct txn *t, int force)
{
	if (t->write_failed || t->qfd < 0 || t->wbuf.len == 0 || (!force && t->wbuf.len < WRITE_CHUNK))
		return;
	const char *p = t->wbuf.data;
	size_t left = t->wbuf.len;
	while (left) {
		ssize_t w = write(t->qfd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			log_warn("qid=%s event=queue_write_failed", t->qid);
			t->write_failed = 1;
			break;
		}
		p += w;
		left -= (size_t)w;
		t->written += w;
	}
	buf_reset(&t->wbuf);
}

static void content(struct session *s, const char *p, size_t n)
{
	struct txn *t = s->txn;
	long max = s->sd->cfg->max_message_size;
	header_scan_feed(&t->hs, p, n);
	t->content_len += n;
	if (max > 0 && t->content_len > (uint64_t)max)
		t->too_big = 1;
	/* L1: past every recipient domain's max_message_size nothing could be delivered: stop storing it. */
	if (t->domain_size_limit > 0 && t->content_len > (uint64_t)t->domain_size_limit)
		t->too_big = 1;
	if (t->too_big || t->write_failed)
		return;
	if (buf_append(&t->wbuf, p, n) < 0) {
		flush_writes(t, 1);
		if (buf_append(&t->wbuf, p, n) < 0)
			t->write_failed = 1;
	}
	flush_writes(t, 0);
}

static void need_queue_file(struct session *s, enum smtp_verb why)
{
	struct buf p;
	buf_init(&p, 64);
	ipc_put_u64(&p, s->id);
	ipc_send(&s->sd->queue, IPC_Q_CREATE, &p, -1);
	buf_free(&p);
	s->txn->pending_create = (int)why;
	s->state = SS_WAIT;
}

static int txn_ready(struct session *s)
{
	if (!s->txn) {
		session_reply(s, 503, "5.5.1", "Error: need MAIL command");
		return 0;
	}
	if (s->txn->nrcpt == 0) {
		session_reply(s, 503, "5.5.1", "Error: need RCPT command");
		return 0;
	}
	return 1;
}

void cmd_data(struct session *s, const char *args)
{
	if (*args) {
		session_reply(s, 501, "5.5.4", "Syntax: DATA");
		return;
	}
	if (!txn_ready(s))
		return;
	if (s->txn->bdat_started) {
		session_reply(s, 503, "5.5.1", "Error: DATA after BDAT");
		return;
	}
	need_queue_file(s, VERB_DATA);
}

/* Discard the bytes of a refused BDAT chunk so the session stays in sync (RFC 3030 2). */
static void bdat_discard(struct session *s, uint64_t size)
{
	s->discard = size;
}

void cmd_bdat(struct session *s, const char *args)
{
	uint64_t size;
	int last;
	struct smtp_err err;
	if (cmd_parse_bdat(args, &size, &last, &err) < 0) {
		/* Without a valid size we cannot know where the chunk ends: close (Postfix does the same). */
		session_reply(s, err.code, err.enh, "%s", err.text);
		session_close_after_reply(s);
		return;
	}
	if (!s->txn || s->txn->nrcpt == 0) {
		session_reply(s, 503, "5.5.1", s->txn ? "Error: need RCPT command" : "Error: need MAIL command");
		bdat_discard(s, size);
		return;
	}
	struct txn *t = s->txn;
	t->bdat_left = size;
	t->bdat_chunk = size;
	t->bdat_last = last;
	if (!t->bdat_started) {
		t->bdat_started = 1;
		header_scan_init(&t->hs);
		need_queue_file(s, VERB_BDAT);
		return;
	}
	s->state = SS_BDAT;
}

/* RFC 3848 / RFC 6531 "with" protocol names: S = TLS, A = authenticated. */
static const char *protocol(const struct session *s)
{
	static const char *const names[2][2][2][2] = {
		/* [utf8][esmtp][tls][auth] */
		{ { { "SMTP", "SMTPA" }, { "SMTPS", "SMTPSA" } }, { { "ESMTP", "ESMTPA" }, { "ESMTPS", "ESMTPSA" } } },
		{ { { "UTF8SMTP", "UTF8SMTPA" }, { "UTF8SMTPS", "UTF8SMTPSA" } },
		  { { "UTF8SMTP", "UTF8SMTPA" }, { "UTF8SMTPS", "UTF8SMTPSA" } } },
	};
	int utf8 = s->txn && s->txn->mp.smtputf8;
	return names[utf8][s->esmtp != 0][s->tls != 0][s->auth_id != NULL];
}

/* R3 sender trust "auth id = envelope = From:": the From: header must name the user too. */
static int from_header_matches(struct session *s)
{
	struct txn *t = s->txn;
	char head[64 * 1024];
	ssize_t n = pread(t->qfd, head, sizeof(head), t->data_start);
	char addr[ADDR_TEXT_MAX];
	if (n <= 0 || header_from_address(head, (size_t)n, addr, sizeof(addr)) < 0)
		return 0;
	return session_is_auth_user(s, addr);
}

void data_queue_created(struct session *s, const char *qid, int fd)
{
	struct txn *t = s->txn;
	if (!t || s->state != SS_WAIT) {
		close(fd);
		return;
	}
	snprintf(t->qid, sizeof(t->qid), "%s", qid);
	t->qfd = fd;

	/* Envelope first (recipients are all known before DATA/BDAT), then our Received: header. */
	struct qenvelope e;
	char from[ADDR_TEXT_MAX];
	memset(&e, 0, sizeof(e));
	snprintf(e.qid, sizeof(e.qid), "%s", qid);
	e.arrival = (long long)time(NULL);
	addr_format(&t->from, from, sizeof(from));
	e.sender = from;
	e.client_addr = s->client_addr;
	e.client_name = "unknown";
	e.helo = s->helo;
	e.proto = (char *)protocol(s);
	e.body = t->mp.body == BODY_8BITMIME ? 1 : 0;
	e.smtputf8 = t->mp.smtputf8;
	e.ret = t->mp.ret;
	e.envid = t->mp.envid;
	e.auth = s->auth_id;
	e.nrcpt = t->nrcpt;
	e.rcpt = xcalloc(t->nrcpt, sizeof(*e.rcpt));
	for (size_t i = 0; i < t->nrcpt; i++) {
		e.rcpt[i].state = t->rcpt[i].state;
		e.rcpt[i].orig = t->rcpt[i].orig;
		e.rcpt[i].dest = t->rcpt[i].dest;
		e.rcpt[i].present = t->rcpt[i].present;
		e.rcpt[i].notify = t->rcpt[i].notify;
		e.rcpt[i].orcpt = t->rcpt[i].orcpt;
	}
	struct buf head;
	buf_init(&head, 64 * 1024 * 1024);
	int bad = qfile_write_header(&head, &e) < 0;
	free(e.rcpt);
	if (bad) {
		/* An envelope the queue could not parse back: refuse now rather than after the content. */
		log_warnx("session=%llu qid=%s event=envelope_unwritable", (unsigned long long)s->id, qid);
		buf_free(&head);
		uint64_t left = t->pending_create == VERB_BDAT ? t->bdat_left : 0;
		s->state = SS_COMMAND;
		session_txn_free(s);
		session_reply(s, 451, "4.3.0", "Error: queue file write error");
		s->discard = left;
		session_resume(s);
		return;
	}
	t->data_start = (off_t)head.len;
	received_render(&head, s->sd->received_template, s, qid, protocol(s));
	if (buf_append(&t->wbuf, head.data, head.len) < 0)
		t->write_failed = 1;
	buf_free(&head);
	flush_writes(t, 0);

	if (t->pending_create == VERB_DATA) {
		/* RFC 2920: the client must wait for 354; bytes already here were sent too early. */
		if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0) {
			log_info("session=%llu qid=%s event=pipelining_violation client=%s command=DATA",
			    (unsigned long long)s->id, qid, s->client_addr);
			s->state = SS_COMMAND;
			session_txn_free(s);
			session_reply(s, 554, "5.5.0", "Error: SMTP protocol synchronization");
			session_close_after_reply(s);
			return;
		}
		dot_init(&t->dot, s->sd->cfg->bare_newline == BARE_NEWLINE_NORMALIZE);
		header_scan_init(&t->hs);
		s->state = SS_DATA;
		session_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
	} else {
		s->state = SS_BDAT;
	}
	session_resume(s);
}

void data_queue_create_failed(struct session *s)
{
	if (!s->txn || s->state != SS_WAIT)
		return;
	s->state = SS_COMMAND;
	if (s->txn->pending_create == VERB_BDAT) {
		/* The chunk still has to be read: discard it. */
		uint64_t left = s->txn->bdat_left;
		session_txn_free(s);
		session_reply(s, 451, "4.3.0", "Error: queue file write error");
		bdat_discard(s, left);
	} else {
		session_txn_free(s);
		session_reply(s, 451, "4.3.0", "Error: queue file write error");
	}
	session_resume(s);
}

static void reject(struct session *s, int code, const char *enh, const char *text, const char *reason)
{
	log_info("session=%llu qid=%s event=reject reason=%s client=%s size=%llu", (unsigned long long)s->id,
	    s->txn->qid, reason, s->client_addr, (unsigned long long)s->txn->content_len);
	session_txn_free(s);
	s->state = SS_COMMAND;
	session_reply(s, code, enh, "%s", text);
}

/* The content is complete: check it, seal the file, ask the queue to commit. */
static void finish_message(struct session *s)
{
	struct txn *t = s->txn;
	const struct config *cfg = s->sd->cfg;
	size_t bare = t->dot.bare_lf + t->hs.bare_lf;
	if (t->too_big)
		return reject(s, 552, "5.3.4", "Message size exceeds fixed limit", "size");
	if (cfg->bare_newline == BARE_NEWLINE_REJECT && bare > 0)
		return reject(s, 550, "5.5.2", "Error: bare <LF> received", "bare_lf");
	/* The hop count includes the Received: header we add, as delivery counts it (Postfix hopcount_limit). */
	if (t->hs.received + 1 > (unsigned)cfg->max_received_headers)
		return reject(s, 554, "5.4.6", "Too many Received: headers (mail loop)", "loop");
	flush_writes(t, 1);
	if (s->auth_id && cfg->sender_trust == TRUST_ENVELOPE_FROM && !t->write_failed && !from_header_matches(s))
		return reject(s, 550, "5.7.1", "From: header does not match the authenticated user", "from_mismatch");
	off_t data_len = t->written - t->data_start;
	/*
	 * L1 max_message_size per domain, measured as delivery measures it (our Received:
	 * header included).  Over every recipient's limit: refuse the whole message now,
	 * rather than accept it and bounce it.  Over some recipients' limits only: accept;
	 * delivery bounces those copies (5.3.4) and delivers the rest.
	 */
	if (t->domain_size_limit > 0 && data_len > t->domain_size_limit)
		return reject(s, 552, "5.3.4", "Message size exceeds fixed limit", "domain_size");
	struct buf tr;
	buf_init(&tr, 128);
	if (qfile_write_trailer(&tr, data_len) < 0 || (!t->write_failed && buf_append(&t->wbuf, tr.data, tr.len) < 0))
		t->write_failed = 1;
	buf_free(&tr);
	flush_writes(t, 1);
	/* A recycled queue file may be longer than this message: cut it to what we wrote. */
	if (!t->write_failed && ftruncate(t->qfd, t->written) < 0) {
		log_warn("qid=%s event=queue_truncate_failed", t->qid);
		t->write_failed = 1;
	}
	if (t->write_failed)
		return reject(s, 451, "4.3.0", "Error: queue file write error", "write_error");
	/* The queue keeps its own descriptor; ours is done. */
	close(t->qfd);
	t->qfd = -1;
	struct buf p;
	buf_init(&p, 256);
	ipc_put_u64(&p, s->id);
	ipc_put_str(&p, t->qid);
	ipc_send(&s->sd->queue, IPC_Q_COMMIT, &p, -1);
	buf_free(&p);
	s->state = SS_WAIT;
}

void data_queue_committed(struct session *s, int ok, const char *why)
{
	struct txn *t = s->txn;
	if (!t || s->state != SS_WAIT)
		return;
	s->state = SS_COMMAND;
	if (!ok) {
		log_warnx("session=%llu qid=%s event=commit_failed why=%s", (unsigned long long)s->id, t->qid, lq(why));
		t->qid[0] = '\0'; /* the queue already removed it */
		session_txn_free(s);
		session_reply(s, 451, "4.3.0", "Error: queue file write error");
		session_resume(s);
		return;
	}
	char from[ADDR_TEXT_MAX];
	addr_format(&t->from, from, sizeof(from));
	struct buf rc;
	buf_init(&rc, 1 << 20);
	for (size_t i = 0; i < t->nrcpt; i++)
		buf_appendf(&rc, "%s%s", i ? "," : "", t->rcpt[i].orig);
	log_to(LOG_RECEIVE, "qid=%s event=received session=%llu client=%s helo=%s from=<%s> size=%llu nrcpt=%zu to=%s proto=%s tls=%s auth=%s",
	    t->qid, (unsigned long long)s->id, s->client_addr, lq(s->helo), lq(from),
	    (unsigned long long)t->content_len, t->nrcpt, lq(buf_cstr(&rc)), protocol(s),
	    s->tls_info[0] ? lq(s->tls_info) : "-", s->auth_id ? lq(s->auth_id) : "-");
	buf_free(&rc);
	s->messages++;
	char qid[QID_MAX];
	snprintf(qid, sizeof(qid), "%s", t->qid);
	t->qid[0] = '\0'; /* committed: nothing to abort */
	session_txn_free(s);
	session_reply(s, 250, "2.0.0", "Ok: queued as %s", qid);
	session_resume(s);
}

void data_feed(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct txn *t = s->txn;
	struct buf out;
	buf_init(&out, 64 * 1024);
	while (s->state == SS_DATA && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, 16 * 1024, NULL, &v, 1) < 1)
			break;
		size_t len = v.iov_len > 16 * 1024 ? 16 * 1024 : v.iov_len;
		buf_reset(&out);
		size_t used = dot_feed(&t->dot, v.iov_base, len, &out);
		if (out.len)
			content(s, out.data, out.len);
		evbuffer_drain(in, used);
		if (t->dot.done)
			finish_message(s);
	}
	buf_free(&out);
}

void bdat_feed(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct txn *t = s->txn;
	while (s->state == SS_BDAT && t->bdat_left > 0 && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			break;
		size_t n = v.iov_len < t->bdat_left ? v.iov_len : (size_t)t->bdat_left;
		content(s, v.iov_base, n);
		evbuffer_drain(in, n);
		t->bdat_left -= n;
	}
	if (s->state != SS_BDAT || t->bdat_left > 0)
		return;
	if (t->bdat_last) {
		finish_message(s);
		return;
	}
	s->state = SS_COMMAND;
	session_reply(s, 250, "2.0.0", "Ok: %llu octets received", (unsigned long long)t->bdat_chunk);
}
