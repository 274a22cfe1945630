/*
 * atrn_relay: transactions over reversed ATRN connections (see atrn_relay.h).
 */
#include "deliver/atrn_relay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deliver/smtp_client.h"
#include "util/log.h"
#include "util/xalloc.h"

struct atrn_txn {
	struct atrn_txn *next;
	char qid[64];
	char *domain, *sender, *dsn_params;
	int fd;
	off_t off, len;
	unsigned flags;
	struct remote_rcpt *rcpts;
	size_t n;
	struct smtp_rcpt *srcpts;
	struct smtp_txn txn;
	remote_done_cb cb;
	void *arg;
};

struct atrn_conn {
	struct atrn_conn *next;
	struct atrn_relay *ar;
	uint32_t id;
	struct smtp_client *client;   /* NULL once closed */
	struct smtp_client_params params;
	char tag[300];
	char helo[256];                /* our name, copied: a reload frees the configuration it came from */
	struct atrn_txn *head, *tail;
	struct atrn_txn *cur;          /* submitted to the client */
	int ended;                     /* IPC_D_ATRN_END came */
	int closed;
	unsigned done, delivered;
};

struct atrn_relay {
	struct event_base *base;
	struct atrn_conn *conns;
	size_t nconns;
};

struct atrn_relay *atrn_relay_new(struct event_base *base)
{
	struct atrn_relay *ar = xcalloc(1, sizeof(*ar));
	ar->base = base;
	return ar;
}

static void txn_free(struct atrn_txn *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->rcpts[i].addr);
		free(t->rcpts[i].dsn_params);
	}
	free(t->rcpts);
	free(t->srcpts);
	free(t->domain);
	free(t->sender);
	free(t->dsn_params);
	if (t->fd >= 0)
		close(t->fd);
	free(t);
}

static void set(struct remote_rcpt *x, enum deliver_status st, enum retry_class cls, const char *enh, const char *text,
    const char *relay, int code)
{
	x->status = st;
	x->cls = cls;
	snprintf(x->enh, sizeof(x->enh), "%s", enh && enh[0] ? enh : st == DELIVER_OK ? "2.0.0" :
	    st == DELIVER_PERMFAIL ? "5.0.0" : "4.0.0");
	snprintf(x->text, sizeof(x->text), "%s", text);
	snprintf(x->relay, sizeof(x->relay), "%s", relay);
	x->code = code;
	x->conn = "atrn";
	x->final = 1;
}

/* Every recipient of t deferred (the connection is gone or never was), then the callback. */
static void fail_txn(struct atrn_conn *c, struct atrn_txn *t, const char *why)
{
	for (size_t i = 0; i < t->n; i++)
		set(&t->rcpts[i], DELIVER_TEMPFAIL, RETRY_LINE, "4.4.2", why, c ? c->tag : "atrn", 0);
	t->cb(t->arg, t->qid, t->domain, t->rcpts, t->n);
	txn_free(t);
}

static struct atrn_conn *find(struct atrn_relay *ar, uint32_t id)
{
	for (struct atrn_conn *c = ar->conns; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

static void conn_free(struct atrn_conn *c)
{
	struct atrn_relay *ar = c->ar;
	for (struct atrn_conn **p = &ar->conns; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			break;
		}
	ar->nconns--;
	log_info("event=atrn_end atrn=%u relay=%s transactions=%u delivered=%u", c->id, lq(c->tag), c->done,
	    c->delivered);
	free(c);
}

static void start_next(struct atrn_conn *c)
{
	while (!c->cur && c->head) {
		struct atrn_txn *t = c->head;
		c->head = t->next;
		if (!c->head)
			c->tail = NULL;
		if (!c->client) {
			fail_txn(c, t, "ATRN connection closed");
			continue;
		}
		t->srcpts = xcalloc(t->n ? t->n : 1, sizeof(*t->srcpts));
		for (size_t i = 0; i < t->n; i++) {
			t->srcpts[i].addr = t->rcpts[i].addr;
			t->srcpts[i].dsn_params = t->rcpts[i].dsn_params;
		}
		memset(&t->txn, 0, sizeof(t->txn));
		t->txn.sender = t->sender;
		t->txn.dsn_params = t->dsn_params[0] ? t->dsn_params : NULL;
		t->txn.rcpts = t->srcpts;
		t->txn.nrcpt = t->n;
		t->txn.fd = t->fd;
		t->txn.offset = t->off;
		t->txn.length = t->len;
		t->txn.flags = (t->flags & REMOTE_FLAG_8BIT ? SMTP_TXN_8BITMIME : 0) |
		    (t->flags & REMOTE_FLAG_SMTPUTF8 ? SMTP_TXN_SMTPUTF8 : 0);
		c->cur = t;
		if (smtp_client_send(c->client, &t->txn) < 0) {
			c->cur = NULL;
			fail_txn(c, t, "cannot start the transaction on the ATRN connection");
		}
	}
	if (!c->cur && !c->head && c->ended) {
		if (c->client)
			smtp_client_quit(c->client);   /* on_close frees the connection */
		else
			conn_free(c);
	}
}

static void on_txn(struct smtp_client *cl, struct smtp_txn *st, void *arg)
{
	struct atrn_conn *c = arg;
	struct atrn_txn *t = c->cur;
	c->cur = NULL;
	if (!t)
		return;
	for (size_t i = 0; i < t->n; i++) {
		struct smtp_rcpt *sr = &t->srcpts[i];
		struct remote_rcpt *x = &t->rcpts[i];
		if (sr->status == SMTP_OK && st->status == SMTP_OK) {
			set(x, DELIVER_OK, RETRY_NONE, sr->reply.enhanced, st->reply.text, c->tag, st->reply.code);
			x->dsn_passed = (smtp_client_extensions(cl) & SMTP_EXT_DSN) != 0;
			c->delivered++;
			continue;
		}
		int rcpt_level = sr->status != SMTP_OK;
		const struct smtp_reply *rep = rcpt_level ? &sr->reply : &st->reply;
		enum smtp_status s = rcpt_level ? sr->status : st->status;
		if (s == SMTP_PERM && sr->why != SMTP_FAIL_ABORTED)
			set(x, DELIVER_PERMFAIL, RETRY_NONE, rep->enhanced, rep->text, c->tag, rep->code);
		else
			set(x, DELIVER_TEMPFAIL, rep->code >= 400 && rep->code < 500 ? RETRY_REFUSED : RETRY_LINE,
			    rep->enhanced, rep->text[0] ? rep->text : smtp_failure_name(rcpt_level ? sr->why : st->why), c->tag,
			    rep->code);
	}
	c->done++;
	t->cb(t->arg, t->qid, t->domain, t->rcpts, t->n);
	txn_free(t);
	start_next(c);
}

static void on_close(struct smtp_client *cl, enum smtp_status status, enum smtp_failure why,
    const struct smtp_reply *reply, void *arg)
{
	struct atrn_conn *c = arg;
	c->client = NULL;
	c->closed = 1;
	if (status != SMTP_OK)
		log_info("event=atrn_closed atrn=%u relay=%s why=%s detail=%s", c->id, lq(c->tag), smtp_failure_name(why),
		    lq(reply && reply->text[0] ? reply->text : "-"));
	if (c->cur) {
		/* smtp_client reported it already if it was running; never leave it unanswered */
		struct atrn_txn *t = c->cur;
		c->cur = NULL;
		fail_txn(c, t, "ATRN connection lost");
	}
	while (c->head) {
		struct atrn_txn *t = c->head;
		c->head = t->next;
		fail_txn(c, t, "ATRN connection lost");
	}
	c->tail = NULL;
	if (c->ended)
		conn_free(c);
}

void atrn_relay_open(struct atrn_relay *ar, const struct config *cfg, uint32_t id, const char *tag, int fd)
{
	if (find(ar, id)) {
		log_warnx("event=atrn_duplicate atrn=%u", id);
		close(fd);
		return;
	}
	struct atrn_conn *c = xcalloc(1, sizeof(*c));
	c->ar = ar;
	c->id = id;
	snprintf(c->tag, sizeof(c->tag), "%s", tag);
	smtp_client_params_defaults(&c->params);
	snprintf(c->helo, sizeof(c->helo), "%s", cfg->hostname);
	c->params.helo = c->helo;
	c->params.tag = c->tag;
	unsigned ms = (unsigned)cfg->smtp_timeout * 1000;
	c->params.greeting_ms = c->params.mail_ms = c->params.rcpt_ms = ms;
	c->params.data_init_ms = ms * 2 / 5 ? ms * 2 / 5 : 1000;
	c->params.data_block_ms = ms * 3 / 5 ? ms * 3 / 5 : 1000;
	c->params.data_end_ms = ms * 2;
	c->params.tls = SMTP_TLS_NONE;   /* the customer's TLS, if any, is smtpd's session */
	c->next = ar->conns;
	ar->conns = c;
	ar->nconns++;
	log_info("event=atrn_open atrn=%u relay=%s", id, lq(c->tag));
	c->client = smtp_client_new(ar->base, fd, &c->params, on_txn, on_close, c);
}

void atrn_relay_end(struct atrn_relay *ar, uint32_t id)
{
	struct atrn_conn *c = find(ar, id);
	if (!c || c->ended)
		return;
	c->ended = 1;
	if (c->closed && !c->cur && !c->head)
		conn_free(c);
	else
		start_next(c);
}

void atrn_relay_deliver(struct atrn_relay *ar, uint32_t id, const char *qid, int fd, off_t off, off_t len,
    const struct remote_msg *msg, const char *domain, struct remote_rcpt *rcpts, size_t n, remote_done_cb cb,
    void *arg)
{
	struct atrn_txn *t = xcalloc(1, sizeof(*t));
	snprintf(t->qid, sizeof(t->qid), "%s", qid);
	t->domain = xstrdup(domain);
	t->sender = xstrdup(msg->sender);
	t->dsn_params = xstrdup(msg->dsn_params ? msg->dsn_params : "");
	t->fd = fd;
	t->off = off;
	t->len = len;
	t->flags = msg->flags;
	t->rcpts = rcpts;
	t->n = n;
	t->cb = cb;
	t->arg = arg;
	struct atrn_conn *c = find(ar, id);
	if (!c || c->ended) {
		fail_txn(c, t, "no such ATRN connection");
		return;
	}
	if (c->tail)
		c->tail->next = t;
	else
		c->head = t;
	c->tail = t;
	start_next(c);
}

size_t atrn_relay_active(const struct atrn_relay *ar) { return ar ? ar->nconns : 0; }

void atrn_relay_free(struct atrn_relay *ar)
{
	if (!ar)
		return;
	while (ar->conns) {
		struct atrn_conn *c = ar->conns;
		ar->conns = c->next;
		if (c->client)
			smtp_client_free(c->client);
		if (c->cur)
			txn_free(c->cur);
		while (c->head) {
			struct atrn_txn *t = c->head;
			c->head = t->next;
			txn_free(t);
		}
		free(c);
	}
	free(ar);
}
