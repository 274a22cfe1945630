/*
 * smtp_client: one SMTP client connection as a libevent state machine (see
 * smtp_client.h for the API and what it trusts).
 *
 * States follow the conversation: [implicit TLS handshake] -> greeting ->
 * EHLO (or HELO) -> [STARTTLS -> handshake -> EHLO] -> [AUTH] -> ready ->
 * { [RSET] -> MAIL/RCPT/DATA -> content -> end of data -> ready }* -> QUIT.
 * One timer covers every wait; it is armed with the RFC 5321 4.5.3.2 value of
 * the reply we wait for, and re-armed on every write progress while the
 * content streams.  User callbacks run from a separate event, never from a
 * bufferevent callback or an API call, so callers may do anything in them.
 */
#include "deliver/smtp_client.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth/sasl.h"
#include "tls/tls_client.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/xalloc.h"

enum state {
	ST_HANDSHAKE_IMPLICIT,
	ST_GREETING,
	ST_EHLO,
	ST_HELO,
	ST_STARTTLS,
	ST_HANDSHAKE,
	ST_AUTH,
	ST_READY,
	ST_RSET,
	ST_TXN,        /* waiting for MAIL / RCPT / DATA replies */
	ST_BODY,       /* streaming the content */
	ST_DATA_END,   /* waiting for the reply to the final dot */
	ST_QUIT,
	ST_CLOSED
};

static const char *const state_names[] = {
	"TLS handshake", "greeting", "EHLO", "HELO", "STARTTLS", "STARTTLS handshake", "AUTH", "idle",
	"RSET", "MAIL/RCPT/DATA", "message content", "end of data", "QUIT", "closed",
};

#define BODY_CHUNK 16384          /* one pread */
#define BODY_HIGH (4 * BODY_CHUNK) /* never buffer more content than this */

struct smtp_client {
	struct event_base *base;
	struct bufferevent *bev;
	struct event *timer;
	struct event *notify;
	const struct smtp_client_params *p;
	smtp_txn_cb txn_cb;
	smtp_close_cb close_cb;
	void *arg;
	enum state state;
	unsigned ext;
	off_t size_max;           /* SIZE n (0: none announced) */
	unsigned auth_offered;    /* SMTP_AUTH_* */
	enum sasl_mech auth_mech;
	int auth_stage;
	int tls_active;
	int want_quit;
	int need_rset;
	unsigned ntxns;           /* transactions submitted on this connection */
	/* the reply being read */
	struct buf lines;         /* text of each line, '\n'-separated */
	int rcode;
	int rlines;
	/* the transaction */
	struct smtp_txn *txn;
	int txn_started;
	int txn_done;             /* finished, txn_cb pending */
	unsigned char *accepted;  /* per recipient: RCPT got 2xx */
	size_t naccepted;
	size_t nreplies;
	int mail_failed;
	struct smtp_reply mail_reply;
	int discard;              /* DATA got 354 with nobody accepted: only the dot was sent */
	off_t pos, end;
	int bol;                  /* next content byte starts a line */
	char last[2];             /* the last two content bytes sent */
	/* closing */
	enum smtp_status close_status;
	enum smtp_failure close_why;
	struct smtp_reply close_reply;
	int in_cb, free_pending, close_notified;
};

static void on_read(struct bufferevent *bev, void *arg);
static void on_write(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);
static void start_txn(struct smtp_client *c);
static void become_ready(struct smtp_client *c);

const char *smtp_failure_name(enum smtp_failure f)
{
	static const char *const n[] = {"none", "reply", "timeout", "connect", "lost", "protocol", "tls",
	    "tls-required", "auth", "size", "smtputf8", "local", "aborted"};
	return (unsigned)f < sizeof(n) / sizeof(n[0]) ? n[f] : "?";
}

void smtp_client_params_defaults(struct smtp_client_params *p)
{
	memset(p, 0, sizeof(*p));
	p->helo = "localhost";
	p->tag = "";
	p->connect_ms = 30 * 1000;
	p->greeting_ms = 5 * 60 * 1000;
	p->mail_ms = 5 * 60 * 1000;
	p->rcpt_ms = 5 * 60 * 1000;
	p->data_init_ms = 2 * 60 * 1000;
	p->data_block_ms = 3 * 60 * 1000;
	p->data_end_ms = 10 * 60 * 1000;
}

static enum smtp_status status_of(int code)
{
	if (code >= 200 && code < 300)
		return SMTP_OK;
	if (code >= 500 && code < 600)
		return SMTP_PERM;
	return SMTP_TEMP;
}

static void set_reply(struct smtp_reply *r, int code, const char *enhanced, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_reply(struct smtp_reply *r, int code, const char *enhanced, const char *fmt, ...)
{
	va_list ap;
	r->code = code;
	snprintf(r->enhanced, sizeof(r->enhanced), "%s", enhanced);
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}

/* ---- timers and notification ------------------------------------------------ */

static void arm(struct smtp_client *c, unsigned ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	evtimer_add(c->timer, &tv);
}

static void destroy(struct smtp_client *c)
{
	if (c->bev)
		bufferevent_free(c->bev);
	event_free(c->timer);
	event_free(c->notify);
	buf_free(&c->lines);
	free(c->accepted);
	free(c);
}

static void notify_later(struct smtp_client *c)
{
	event_active(c->notify, 0, 0);
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;
	c->in_cb = 1;
	if (c->txn_done && !c->free_pending) {
		struct smtp_txn *t = c->txn;
		c->txn = NULL;
		c->txn_done = 0;
		c->txn_started = 0;
		c->txn_cb(c, t, c->arg);
	}
	if (c->state == ST_CLOSED && !c->txn && !c->free_pending && !c->close_notified) {
		c->close_notified = 1;
		c->close_cb(c, c->close_status, c->close_why, &c->close_reply, c->arg);
	}
	c->in_cb = 0;
	if (c->free_pending || c->close_notified) {
		destroy(c);
		return;
	}
	if (c->state == ST_READY && c->txn && !c->txn_started)
		start_txn(c);
	else if (c->state == ST_READY && !c->txn && c->want_quit)
		become_ready(c);
}

/* ---- ending ------------------------------------------------------------------ */

/* Every recipient still undecided gets r; the transaction is reported. */
static void fail_undecided(struct smtp_client *c, enum smtp_status st, enum smtp_failure why,
    const struct smtp_reply *r)
{
	struct smtp_txn *t = c->txn;
	for (size_t i = 0; i < t->nrcpt; i++) {
		struct smtp_rcpt *rc = &t->rcpts[i];
		if (rc->why == SMTP_FAIL_NONE && rc->status != SMTP_OK) {
			rc->status = st;
			rc->why = why;
			rc->reply = *r;
		}
	}
	t->status = st;
	t->why = why;
	t->reply = *r;
	t->accepted = 0;
	for (size_t i = 0; i < t->nrcpt; i++)
		t->accepted += t->rcpts[i].status == SMTP_OK;
	if (t->accepted)
		t->status = SMTP_OK;
	c->txn_done = 1;
}

static void close_conn(struct smtp_client *c, enum smtp_status st, enum smtp_failure why,
    const struct smtp_reply *r)
{
	if (c->state == ST_CLOSED)
		return;
	/* An idle (cached) connection that the peer closes is no delivery failure: the cache logs it. */
	int idle = c->state == ST_READY && !c->txn;
	c->state = ST_CLOSED;
	evtimer_del(c->timer);
	if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	c->close_status = st;
	c->close_why = why;
	c->close_reply = *r;
	if (c->txn && !c->txn_done)
		fail_undecided(c, st == SMTP_OK ? SMTP_TEMP : st, why == SMTP_FAIL_NONE ? SMTP_FAIL_LOST : why, r);
	if (st != SMTP_OK && !idle)
		log_info("smtp client %s: %s (%s) %d %s %s", c->p->tag, st == SMTP_PERM ? "failed" : "deferred",
		    smtp_failure_name(why), r->code, r->enhanced, r->text);
	notify_later(c);
}

static void fail(struct smtp_client *c, enum smtp_status st, enum smtp_failure why, int code, const char *enh,
    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void fail(struct smtp_client *c, enum smtp_status st, enum smtp_failure why, int code, const char *enh,
    const char *fmt, ...)
{
	struct smtp_reply r;
	va_list ap;
	r.code = code;
	snprintf(r.enhanced, sizeof(r.enhanced), "%s", enh);
	va_start(ap, fmt);
	vsnprintf(r.text, sizeof(r.text), fmt, ap);
	va_end(ap);
	close_conn(c, st, why, &r);
}

static void send_line(struct smtp_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void send_line(struct smtp_client *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(c->bev), fmt, ap);
	va_end(ap);
	evbuffer_add(bufferevent_get_output(c->bev), "\r\n", 2);
}

/* ---- replies ----------------------------------------------------------------- */

/* The reply as recorded: code, enhanced code (RFC 3463) and the text of all lines. */
static void make_reply(struct smtp_client *c, struct smtp_reply *r)
{
	const char *s = buf_cstr(&c->lines);
	r->code = c->rcode;
	r->enhanced[0] = '\0';
	/* RFC 3463 2: class "." subject "." detail, class matching the reply's first digit. */
	const char *q = s;
	if (q[0] == '0' + c->rcode / 100 && q[1] == '.') {
		size_t i = 2, d1 = 0, d2 = 0;
		while (q[i] >= '0' && q[i] <= '9' && d1 < 4)
			i++, d1++;
		if (d1 >= 1 && d1 <= 3 && q[i] == '.') {
			i++;
			while (q[i] >= '0' && q[i] <= '9' && d2 < 4)
				i++, d2++;
			if (d2 >= 1 && d2 <= 3 && (q[i] == ' ' || q[i] == '\n' || q[i] == '\0')) {
				memcpy(r->enhanced, q, i);
				r->enhanced[i] = '\0';
				q += i;
				while (*q == ' ')
					q++;
			}
		}
	}
	size_t n = 0;
	for (; *q && n + 1 < sizeof(r->text); q++)
		r->text[n++] = *q == '\n' ? ' ' : *q;
	while (n > 0 && r->text[n - 1] == ' ')
		n--;
	r->text[n] = '\0';
}

static void protocol_error(struct smtp_client *c, const char *what)
{
	fail(c, SMTP_TEMP, SMTP_FAIL_PROTOCOL, 0, "4.5.0", "protocol error in %s: %s", state_names[c->state], what);
}

/* ---- session setup -------------------------------------------------------------- */

static void send_ehlo(struct smtp_client *c)
{
	c->ext = 0;
	c->size_max = 0;
	c->auth_offered = 0;
	c->state = ST_EHLO;
	send_line(c, "EHLO %s", c->p->helo);
	arm(c, c->p->greeting_ms);
}

static void parse_ehlo(struct smtp_client *c)
{
	const char *s = buf_cstr(&c->lines);
	const char *nl = strchr(s, '\n');   /* the first line is the peer's name */
	c->ext = SMTP_EXT_ESMTP;
	while (nl) {
		const char *line = nl + 1;
		nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) : strlen(line);
		char kw[64];
		size_t k = 0;
		while (k < len && line[k] != ' ' && line[k] != '=' && k + 1 < sizeof(kw)) {
			kw[k] = line[k];
			k++;
		}
		kw[k] = '\0';
		const char *rest = line + k;
		size_t rlen = len - k;
		if (!strcasecmp(kw, "PIPELINING"))
			c->ext |= SMTP_EXT_PIPELINING;
		else if (!strcasecmp(kw, "8BITMIME"))
			c->ext |= SMTP_EXT_8BITMIME;
		else if (!strcasecmp(kw, "SMTPUTF8"))
			c->ext |= SMTP_EXT_SMTPUTF8;
		else if (!strcasecmp(kw, "STARTTLS"))
			c->ext |= SMTP_EXT_STARTTLS;
		else if (!strcasecmp(kw, "DSN"))
			c->ext |= SMTP_EXT_DSN;
		else if (!strcasecmp(kw, "CHUNKING"))
			c->ext |= SMTP_EXT_CHUNKING;
		else if (!strcasecmp(kw, "SIZE")) {
			/* RFC 1870: "SIZE" [SP number]; 0 or absent = no fixed limit. */
			c->ext |= SMTP_EXT_SIZE;
			long long v = 0;
			for (size_t i = 1; i < rlen && rest[i] >= '0' && rest[i] <= '9' && v < (1LL << 50); i++)
				v = v * 10 + (rest[i] - '0');
			c->size_max = (off_t)v;
		} else if (!strcasecmp(kw, "AUTH")) {
			/* "AUTH PLAIN LOGIN", or the old "AUTH=PLAIN LOGIN" form */
			c->ext |= SMTP_EXT_AUTH;
			size_t i = 0;
			while (i < rlen) {
				while (i < rlen && (rest[i] == ' ' || rest[i] == '='))
					i++;
				size_t b = i;
				while (i < rlen && rest[i] != ' ')
					i++;
				char m[32];
				if (i - b > 0 && i - b < sizeof(m)) {
					memcpy(m, rest + b, i - b);
					m[i - b] = '\0';
					if (!strcasecmp(m, "PLAIN"))
						c->auth_offered |= SMTP_AUTH_PLAIN;
					else if (!strcasecmp(m, "LOGIN"))
						c->auth_offered |= SMTP_AUTH_LOGIN;
					else if (!strcasecmp(m, "CRAM-MD5"))
						c->auth_offered |= SMTP_AUTH_CRAM_MD5;
				}
			}
		}
	}
}

/* implicit: fd is the connected socket (c->bev is NULL); otherwise STARTTLS over c->bev. */
static void start_tls(struct smtp_client *c, int implicit, int fd)
{
	SSL *ssl = c->p->ssl_ctx ? tls_client_session(c->p->ssl_ctx, c->p->tls_servername, c->p->tls_verify) : NULL;
	if (!ssl) {
		if (implicit)
			close(fd);
		fail(c, SMTP_TEMP, SMTP_FAIL_TLS, 0, "4.7.5", "TLS required: no client TLS context");
		return;
	}
	struct bufferevent *tb;
	if (implicit) {
		tb = bufferevent_openssl_socket_new(c->base, fd, ssl, BUFFEREVENT_SSL_CONNECTING,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (!tb)
			close(fd);
	} else {
		/*
		 * RFC 3207 4.2 / the STARTTLS injection class of bugs: anything the
		 * peer sent after its 220 and before the handshake is discarded.
		 */
		struct evbuffer *in = bufferevent_get_input(c->bev);
		evbuffer_drain(in, evbuffer_get_length(in));
		tb = bufferevent_openssl_filter_new(c->base, c->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	}
	c->bev = tb;
	if (!tb) {
		SSL_free(ssl);
		fail(c, SMTP_TEMP, SMTP_FAIL_TLS, 0, "4.7.5", "TLS required: cannot set up TLS");
		return;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	bufferevent_setcb(tb, on_read, on_write, on_event, c);
	bufferevent_enable(tb, EV_READ | EV_WRITE);
	c->state = implicit ? ST_HANDSHAKE_IMPLICIT : ST_HANDSHAKE;
	arm(c, c->p->greeting_ms);
}

static void auth_send(struct smtp_client *c, const char *initial_cmd, const void *data, size_t n)
{
	struct buf b;
	buf_init(&b, 8192);
	if (n && b64_encode(data, n, &b) < 0) {
		buf_free(&b);
		fail(c, SMTP_TEMP, SMTP_FAIL_AUTH, 0, "4.7.0", "AUTH credentials too long");
		return;
	}
	if (initial_cmd)
		send_line(c, "%s%s%s", initial_cmd, n ? " " : "", buf_cstr(&b));
	else
		send_line(c, "%s", buf_cstr(&b));
	buf_free(&b);
	arm(c, c->p->greeting_ms);
}

static void start_auth(struct smtp_client *c)
{
	unsigned allowed = c->p->auth_mechs ? c->p->auth_mechs : SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN | SMTP_AUTH_CRAM_MD5;
	unsigned both = allowed & c->auth_offered;
	c->state = ST_AUTH;
	c->auth_stage = 0;
	/*
	 * Credentials mean the route needs AUTH (a smart host): sending without it
	 * would turn into "relay denied" 5xx and bounce the mail, so no common
	 * mechanism is a temporary failure.
	 */
	if (both & SMTP_AUTH_CRAM_MD5) {
		c->auth_mech = SASL_CRAM_MD5;
		send_line(c, "AUTH CRAM-MD5");
		arm(c, c->p->greeting_ms);
	} else if (both & SMTP_AUTH_PLAIN) {
		/* RFC 4616 2: message = [authzid] UTF8NUL authcid UTF8NUL passwd */
		size_t ul = strlen(c->p->auth_user), pl = strlen(c->p->auth_pass);
		if (ul > 1024 || pl > 1024) {
			fail(c, SMTP_TEMP, SMTP_FAIL_AUTH, 0, "4.7.0", "AUTH credentials too long");
			return;
		}
		char msg[2 + 2048];
		msg[0] = '\0';
		memcpy(msg + 1, c->p->auth_user, ul);
		msg[1 + ul] = '\0';
		memcpy(msg + 2 + ul, c->p->auth_pass, pl);
		c->auth_mech = SASL_PLAIN;
		auth_send(c, "AUTH PLAIN", msg, 2 + ul + pl);
		OPENSSL_cleanse(msg, sizeof(msg));
	} else if (both & SMTP_AUTH_LOGIN) {
		c->auth_mech = SASL_LOGIN;
		send_line(c, "AUTH LOGIN");
		arm(c, c->p->greeting_ms);
	} else {
		fail(c, SMTP_TEMP, SMTP_FAIL_AUTH, 0, "4.7.0", "AUTH required but no usable mechanism offered");
	}
}

/* A 334 during AUTH: the next step of the mechanism. */
static void auth_continue(struct smtp_client *c)
{
	const char *chal = buf_cstr(&c->lines);
	c->auth_stage++;
	if (c->auth_mech == SASL_LOGIN && c->auth_stage <= 2) {
		const char *v = c->auth_stage == 1 ? c->p->auth_user : c->p->auth_pass;
		auth_send(c, NULL, v, strlen(v));
	} else if (c->auth_mech == SASL_PLAIN && c->auth_stage == 1) {
		/* A server that wants the response after an empty challenge (RFC 4954 4). */
		size_t ul = strlen(c->p->auth_user), pl = strlen(c->p->auth_pass);
		char msg[2 + 2048];
		if (ul > 1024 || pl > 1024) {
			fail(c, SMTP_TEMP, SMTP_FAIL_AUTH, 0, "4.7.0", "AUTH credentials too long");
			return;
		}
		msg[0] = '\0';
		memcpy(msg + 1, c->p->auth_user, ul);
		msg[1 + ul] = '\0';
		memcpy(msg + 2 + ul, c->p->auth_pass, pl);
		auth_send(c, NULL, msg, 2 + ul + pl);
		OPENSSL_cleanse(msg, sizeof(msg));
	} else if (c->auth_mech == SASL_CRAM_MD5 && c->auth_stage == 1) {
		/* RFC 2195 2: response = user SP hex(HMAC-MD5(secret, challenge)) */
		struct buf dec;
		buf_init(&dec, 4096);
		if (b64_decode(chal, &dec) < 0) {
			buf_free(&dec);
			send_line(c, "*");
			arm(c, c->p->greeting_ms);
			return;
		}
		unsigned char mac[EVP_MAX_MD_SIZE];
		unsigned maclen = 0;
		HMAC(EVP_md5(), c->p->auth_pass, (int)strlen(c->p->auth_pass), (const unsigned char *)dec.data, dec.len,
		    mac, &maclen);
		buf_free(&dec);
		struct buf resp;
		buf_init(&resp, 2048);
		buf_puts(&resp, c->p->auth_user);
		buf_putc(&resp, ' ');
		for (unsigned i = 0; i < maclen; i++)
			buf_appendf(&resp, "%02x", mac[i]);
		auth_send(c, NULL, resp.data, resp.len);
		buf_free(&resp);
	} else {
		send_line(c, "*");   /* RFC 4954 4: cancel an exchange we do not understand */
		arm(c, c->p->greeting_ms);
	}
}

/* EHLO/HELO done (and TLS when wanted): STARTTLS, AUTH or ready. */
static void after_hello(struct smtp_client *c)
{
	enum smtp_tls_mode m = c->p->tls;
	if (!c->tls_active && (m == SMTP_TLS_OPPORTUNISTIC || m == SMTP_TLS_MANDATORY)) {
		if ((c->ext & SMTP_EXT_STARTTLS) && c->p->ssl_ctx) {
			c->state = ST_STARTTLS;
			send_line(c, "STARTTLS");
			arm(c, c->p->greeting_ms);
			return;
		}
		if (m == SMTP_TLS_MANDATORY) {
			fail(c, SMTP_TEMP, SMTP_FAIL_TLS_REQUIRED, 0, "4.7.10", "TLS required but STARTTLS not offered");
			return;
		}
	}
	if (c->p->auth_user && c->p->auth_pass && c->auth_mech == SASL_NONE) {
		start_auth(c);
		return;
	}
	become_ready(c);
}

static void become_ready(struct smtp_client *c)
{
	c->state = ST_READY;
	evtimer_del(c->timer);
	if (c->txn && !c->txn_started && !c->txn_done) {
		start_txn(c);
	} else if (!c->txn && c->want_quit) {
		c->state = ST_QUIT;
		send_line(c, "QUIT");
		arm(c, c->p->greeting_ms);
	}
}

/* ---- the transaction ------------------------------------------------------------- */

static int has_ctl(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

static void finish_txn(struct smtp_client *c, const struct smtp_reply *decisive, enum smtp_failure why)
{
	struct smtp_txn *t = c->txn;
	size_t ok = 0, perm = 0;
	for (size_t i = 0; i < t->nrcpt; i++) {
		ok += t->rcpts[i].status == SMTP_OK;
		perm += t->rcpts[i].status == SMTP_PERM;
	}
	t->accepted = ok;
	t->status = ok ? SMTP_OK : perm == t->nrcpt ? SMTP_PERM : SMTP_TEMP;
	t->why = ok ? SMTP_FAIL_NONE : why;
	t->reply = *decisive;
	c->txn_done = 1;
	c->state = ST_READY;
	evtimer_del(c->timer);
	notify_later(c);
}

/* A failure decided before anything was sent (SIZE, SMTPUTF8, bad input). */
static void refuse_txn(struct smtp_client *c, enum smtp_status st, enum smtp_failure why, const char *enh,
    const char *text)
{
	struct smtp_reply r;
	set_reply(&r, 0, enh, "%s", text);
	for (size_t i = 0; i < c->txn->nrcpt; i++) {
		c->txn->rcpts[i].status = st;
		c->txn->rcpts[i].why = why;
		c->txn->rcpts[i].reply = r;
	}
	finish_txn(c, &r, why);
}

static void send_mail(struct smtp_client *c)
{
	struct smtp_txn *t = c->txn;
	off_t size = t->size ? t->size : t->length;
	char params[128] = "";
	size_t n = 0;
	if (c->ext & SMTP_EXT_SIZE)
		n += (size_t)snprintf(params + n, sizeof(params) - n, " SIZE=%lld", (long long)size);
	if ((t->flags & SMTP_TXN_8BITMIME) && (c->ext & SMTP_EXT_8BITMIME))
		n += (size_t)snprintf(params + n, sizeof(params) - n, " BODY=8BITMIME");
	if (t->flags & SMTP_TXN_SMTPUTF8)
		snprintf(params + n, sizeof(params) - n, " SMTPUTF8");
	int dsn = (c->ext & SMTP_EXT_DSN) && t->dsn_params && t->dsn_params[0];
	send_line(c, "MAIL FROM:<%s>%s%s%s", t->sender, params, dsn ? " " : "", dsn ? t->dsn_params : "");
}

static void send_rcpt(struct smtp_client *c, size_t i)
{
	const struct smtp_rcpt *r = &c->txn->rcpts[i];
	int dsn = (c->ext & SMTP_EXT_DSN) && r->dsn_params && r->dsn_params[0];
	send_line(c, "RCPT TO:<%s>%s%s", r->addr, dsn ? " " : "", dsn ? r->dsn_params : "");
}

static void start_txn(struct smtp_client *c)
{
	struct smtp_txn *t = c->txn;
	c->txn_started = 1;
	if (c->need_rset) {
		c->state = ST_RSET;
		send_line(c, "RSET");
		arm(c, c->p->greeting_ms);
		return;
	}
	for (size_t i = 0; i < t->nrcpt; i++) {
		t->rcpts[i].status = SMTP_TEMP;
		t->rcpts[i].why = SMTP_FAIL_NONE;
		set_reply(&t->rcpts[i].reply, 0, "", "not attempted");
	}
	free(c->accepted);
	c->accepted = xcalloc(t->nrcpt ? t->nrcpt : 1, 1);
	c->naccepted = 0;
	c->nreplies = 0;
	c->mail_failed = 0;
	c->discard = 0;
	c->state = ST_TXN;
	int bad = !t->sender || has_ctl(t->sender) || has_ctl(t->dsn_params) || t->nrcpt == 0 || t->length < 0;
	for (size_t i = 0; i < t->nrcpt && !bad; i++)
		bad = !t->rcpts[i].addr || has_ctl(t->rcpts[i].addr) || has_ctl(t->rcpts[i].dsn_params);
	if (bad) {
		refuse_txn(c, SMTP_PERM, SMTP_FAIL_LOCAL, "5.5.2", "invalid envelope");
		return;
	}
	/* RFC 6531 3.4: without SMTPUTF8 at the peer such a message cannot be sent: 5.6.7. */
	if ((t->flags & SMTP_TXN_SMTPUTF8) && !(c->ext & SMTP_EXT_SMTPUTF8)) {
		refuse_txn(c, SMTP_PERM, SMTP_FAIL_SMTPUTF8, "5.6.7", "SMTPUTF8 required but not offered by the peer");
		return;
	}
	/* RFC 1870 6: do not send a message the peer announced it will refuse. */
	off_t size = t->size ? t->size : t->length;
	if ((c->ext & SMTP_EXT_SIZE) && c->size_max > 0 && size > c->size_max) {
		char text[128];
		snprintf(text, sizeof(text), "message size %lld exceeds the peer's limit %lld", (long long)size,
		    (long long)c->size_max);
		refuse_txn(c, SMTP_PERM, SMTP_FAIL_SIZE, "5.3.4", text);
		return;
	}
	send_mail(c);
	if (c->ext & SMTP_EXT_PIPELINING) {
		/* RFC 2920 3.1: MAIL, RCPT... and DATA (the last of the group) in one write. */
		for (size_t i = 0; i < t->nrcpt; i++)
			send_rcpt(c, i);
		if (!(t->flags & SMTP_TXN_ABORT_ON_RCPT_5XX))
			send_line(c, "DATA");
	}
	arm(c, c->p->mail_ms);
}

static void fill_body(struct smtp_client *c);

static void start_body(struct smtp_client *c)
{
	struct smtp_txn *t = c->txn;
	c->state = ST_BODY;
	c->pos = t->offset;
	c->end = t->offset + t->length;
	c->bol = 1;
	c->last[0] = '\r';
	c->last[1] = '\n';
	bufferevent_setwatermark(c->bev, EV_WRITE, BODY_CHUNK, 0);
	arm(c, c->p->data_block_ms);
	fill_body(c);
}

/*
 * Add content to the output until BODY_HIGH is buffered.  RFC 5321 4.5.2:
 * "Before sending a line of mail text, the SMTP client checks the first
 * character of the line.  If it is a period, one additional period is
 * inserted at the beginning of the line."
 */
static void fill_body(struct smtp_client *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	char chunk[BODY_CHUNK];
	while (c->pos < c->end && evbuffer_get_length(out) < BODY_HIGH) {
		size_t want = c->end - c->pos < (off_t)sizeof(chunk) ? (size_t)(c->end - c->pos) : sizeof(chunk);
		ssize_t n = pread(c->txn->fd, chunk, want, c->pos);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* Never send the final dot after a short read: that would deliver a truncated message. */
			fail(c, SMTP_TEMP, SMTP_FAIL_LOCAL, 0, "4.3.0", "cannot read the message content: %s",
			    n < 0 ? strerror(errno) : "unexpected end of file");
			return;
		}
		size_t from = 0;
		for (size_t i = 0; i < (size_t)n; i++) {
			if (c->bol && chunk[i] == '.') {
				evbuffer_add(out, chunk + from, i - from);
				evbuffer_add(out, ".", 1);
				from = i;
			}
			c->bol = chunk[i] == '\n';
		}
		evbuffer_add(out, chunk + from, (size_t)n - from);
		if (n >= 2) {
			c->last[0] = chunk[n - 2];
			c->last[1] = chunk[n - 1];
		} else {
			c->last[0] = c->last[1];
			c->last[1] = chunk[0];
		}
		c->pos += n;
	}
	if (c->pos >= c->end) {
		/* The content ends with CRLF, then the terminating "." line. */
		if (c->last[0] != '\r' || c->last[1] != '\n')
			evbuffer_add(out, "\r\n", 2);
		evbuffer_add(out, ".\r\n", 3);
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
		c->state = ST_DATA_END;
		arm(c, c->p->data_end_ms);
	}
}

static void rcpt_result(struct smtp_rcpt *r, const struct smtp_reply *rep)
{
	r->status = status_of(rep->code);
	r->why = r->status == SMTP_OK ? SMTP_FAIL_NONE : SMTP_FAIL_REPLY;
	r->reply = *rep;
}

static int any_rcpt_5xx(const struct smtp_txn *t)
{
	for (size_t i = 0; i < t->nrcpt; i++)
		if (t->rcpts[i].status == SMTP_PERM)
			return 1;
	return 0;
}

static void txn_reply(struct smtp_client *c, const struct smtp_reply *rep)
{
	struct smtp_txn *t = c->txn;
	size_t r = c->nreplies++;
	int pipelined = (c->ext & SMTP_EXT_PIPELINING) != 0;
	/* With abort-on-5xx, DATA follows the RCPT replies instead of travelling with them. */
	int data_pipelined = pipelined && !(t->flags & SMTP_TXN_ABORT_ON_RCPT_5XX);
	int ok = rep->code >= 200 && rep->code < 300;
	if (r == 0) {
		t->mail_accepted = ok;
		if (!ok) {
			c->mail_failed = 1;
			c->mail_reply = *rep;
			c->need_rset = 1;
			for (size_t i = 0; i < t->nrcpt; i++)
				rcpt_result(&t->rcpts[i], rep);
			if (!pipelined) {
				finish_txn(c, rep, SMTP_FAIL_REPLY);
				return;
			}
		} else if (!pipelined) {
			send_rcpt(c, 0);
		}
		arm(c, c->p->rcpt_ms);
	} else if (r <= t->nrcpt) {
		size_t i = r - 1;
		if (!c->mail_failed) {
			if (ok) {
				c->accepted[i] = 1;
				c->naccepted++;
			} else {
				rcpt_result(&t->rcpts[i], rep);
			}
		}
		if (!pipelined && i + 1 < t->nrcpt) {
			send_rcpt(c, i + 1);
			arm(c, c->p->rcpt_ms);
		} else if (!data_pipelined && i + 1 < t->nrcpt) {
			arm(c, c->p->rcpt_ms); /* the other RCPT replies are on their way */
		} else if (!data_pipelined && c->naccepted == 0) {
			c->need_rset = 1;
			finish_txn(c, c->mail_failed ? &c->mail_reply : &t->rcpts[0].reply, SMTP_FAIL_REPLY);
			return;
		} else if (!data_pipelined && !c->mail_failed && (t->flags & SMTP_TXN_ABORT_ON_RCPT_5XX) &&
		    c->naccepted < t->nrcpt && any_rcpt_5xx(t)) {
			struct smtp_reply ab = { 451, "4.3.0", "" };
			snprintf(ab.text, sizeof(ab.text), "not sent: another recipient was refused (abort on RCPT 5xx)");
			for (size_t k = 0; k < t->nrcpt; k++)
				if (c->accepted[k]) {
					rcpt_result(&t->rcpts[k], &ab);
					t->rcpts[k].why = SMTP_FAIL_ABORTED;
					c->accepted[k] = 0;
				}
			c->naccepted = 0;
			c->need_rset = 1;
			finish_txn(c, &ab, SMTP_FAIL_ABORTED);
			return;
		} else {
			if (!data_pipelined)
				send_line(c, "DATA");
			arm(c, i + 1 < t->nrcpt ? c->p->rcpt_ms : c->p->data_init_ms);
		}
	} else {
		if (rep->code == 354) {
			if (c->naccepted == 0 || c->mail_failed) {
				/* RFC 2920 3.1: DATA accepted with no valid recipient: end it at once. */
				c->discard = 1;
				c->need_rset = 1;
				c->state = ST_DATA_END;
				send_line(c, ".");
				arm(c, c->p->data_end_ms);
				return;
			}
			start_body(c);
			return;
		}
		c->need_rset = 1;
		if (c->mail_failed) {
			finish_txn(c, &c->mail_reply, SMTP_FAIL_REPLY);
			return;
		}
		if (c->naccepted == 0) {
			finish_txn(c, &t->rcpts[0].reply, SMTP_FAIL_REPLY);
			return;
		}
		for (size_t i = 0; i < t->nrcpt; i++)
			if (c->accepted[i])
				rcpt_result(&t->rcpts[i], rep);
		finish_txn(c, rep, SMTP_FAIL_REPLY);
	}
}

static void data_end_reply(struct smtp_client *c, const struct smtp_reply *rep)
{
	struct smtp_txn *t = c->txn;
	if (c->discard) {
		finish_txn(c, c->mail_failed ? &c->mail_reply : &t->rcpts[0].reply, SMTP_FAIL_REPLY);
		return;
	}
	for (size_t i = 0; i < t->nrcpt; i++)
		if (c->accepted[i])
			rcpt_result(&t->rcpts[i], rep);
	if (rep->code < 200 || rep->code >= 300)
		c->need_rset = 1;
	finish_txn(c, rep, SMTP_FAIL_REPLY);
}

/* ---- the reply dispatcher ----------------------------------------------------------- */

static void handle_reply(struct smtp_client *c)
{
	struct smtp_reply rep;
	int code = c->rcode;
	make_reply(c, &rep);
	enum smtp_status st = status_of(code);
	switch (c->state) {
	case ST_GREETING:
		if (code == 220) {
			send_ehlo(c);
			return;
		}
		/* RFC 5321 3.1: 554 instead of 220 means no service here. */
		close_conn(c, st == SMTP_OK ? SMTP_TEMP : st, SMTP_FAIL_REPLY, &rep);
		return;
	case ST_EHLO:
		if (code == 250) {
			parse_ehlo(c);
			after_hello(c);
			return;
		}
		/* RFC 5321 3.2: an old server refuses EHLO; try HELO. */
		if (code == 500 || code == 502 || code == 504 || code == 550) {
			c->state = ST_HELO;
			send_line(c, "HELO %s", c->p->helo);
			arm(c, c->p->greeting_ms);
			return;
		}
		close_conn(c, st == SMTP_OK ? SMTP_TEMP : st, SMTP_FAIL_REPLY, &rep);
		return;
	case ST_HELO:
		if (code == 250) {
			c->ext = 0;
			after_hello(c);
			return;
		}
		close_conn(c, st == SMTP_OK ? SMTP_TEMP : st, SMTP_FAIL_REPLY, &rep);
		return;
	case ST_STARTTLS:
		if (code == 220) {
			start_tls(c, 0, -1);
			return;
		}
		if (c->p->tls == SMTP_TLS_MANDATORY) {
			struct smtp_reply r2 = rep;
			snprintf(r2.text, sizeof(r2.text), "TLS required: STARTTLS refused: %.400s", rep.text);
			close_conn(c, SMTP_TEMP, SMTP_FAIL_TLS_REQUIRED, &r2);
			return;
		}
		c->ext &= ~(unsigned)SMTP_EXT_STARTTLS;
		after_hello(c);
		return;
	case ST_AUTH:
		if (code == 334) {
			auth_continue(c);
			return;
		}
		if (code == 235) {
			become_ready(c);
			return;
		}
		/* RFC 4954 6: 535 = credentials invalid (permanent); 454 = temporary. */
		close_conn(c, st == SMTP_OK ? SMTP_TEMP : st, SMTP_FAIL_AUTH, &rep);
		return;
	case ST_RSET:
		if (st != SMTP_OK) {
			close_conn(c, st, SMTP_FAIL_REPLY, &rep);
			return;
		}
		c->need_rset = 0;
		start_txn(c);
		return;
	case ST_TXN:
		txn_reply(c, &rep);
		return;
	case ST_BODY:
	case ST_DATA_END: {
		int early = c->state == ST_BODY;
		data_end_reply(c, &rep);
		/* A reply before our final dot: the session is out of step; end it. */
		if (early)
			fail(c, SMTP_TEMP, SMTP_FAIL_PROTOCOL, 0, "4.5.0", "reply before the end of the content");
		return;
	}
	case ST_QUIT:
		close_conn(c, SMTP_OK, SMTP_FAIL_NONE, &rep);
		return;
	case ST_READY:
		/* Unsolicited (e.g. 421 before closing): the connection is finished. */
		close_conn(c, SMTP_TEMP, SMTP_FAIL_REPLY, &rep);
		return;
	default: {
		protocol_error(c, "unexpected reply");
		return;
	}
	}
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	while (c->bev == bev && c->state != ST_CLOSED) {
		struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_CRLF);
		if (eol.pos < 0) {
			if (evbuffer_get_length(in) > SMTP_REPLY_LINE_MAX)
				protocol_error(c, "reply line too long");
			return;
		}
		if ((size_t)eol.pos > SMTP_REPLY_LINE_MAX) {
			protocol_error(c, "reply line too long");
			return;
		}
		size_t len;
		char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
		if (!line)
			return;
		/* RFC 5321 4.2: Reply-code SP/"-" [textstring]; every line of a reply has the same code. */
		int code = -1;
		if (len >= 3 && line[0] >= '2' && line[0] <= '5' && line[1] >= '0' && line[1] <= '9' && line[2] >= '0' &&
		    line[2] <= '9' && (len == 3 || line[3] == ' ' || line[3] == '-'))
			code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
		if (code < 0 || (c->rlines > 0 && code != c->rcode) || c->rlines >= SMTP_REPLY_LINES_MAX ||
		    c->state == ST_HANDSHAKE || c->state == ST_HANDSHAKE_IMPLICIT) {
			free(line);
			protocol_error(c, code < 0 ? "malformed reply" : "inconsistent reply");
			return;
		}
		if (c->rlines > 0)
			buf_putc(&c->lines, '\n');
		buf_append(&c->lines, len > 4 ? line + 4 : "", len > 4 ? len - 4 : 0);
		c->rcode = code;
		c->rlines++;
		int last = len == 3 || line[3] == ' ';
		free(line);
		if (last) {
			handle_reply(c);
			buf_reset(&c->lines);
			c->rlines = 0;
		}
	}
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct smtp_client *c = arg;
	if (c->state == ST_BODY) {
		arm(c, c->p->data_block_ms);   /* progress: the data block timer starts again */
		fill_body(c);
	}
}

static void ssl_errors(struct bufferevent *bev, char *out, size_t outsz)
{
	unsigned long e;
	size_t n = 0;
	out[0] = '\0';
	while ((e = bufferevent_get_openssl_error(bev)) != 0 && n + 2 < outsz) {
		char t[200];
		if (ERR_GET_LIB(e) == 0)
			continue;   /* libevent's own entries carry no text */
		ERR_error_string_n(e, t, sizeof(t));
		n += (size_t)snprintf(out + n, outsz - n, "%s%s", n ? "; " : "", t);
	}
	if (!out[0])
		snprintf(out, outsz, "%s", errno ? strerror(errno) : "connection closed");
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_client *c = arg;
	if (what & BEV_EVENT_CONNECTED) {
		if (c->state == ST_HANDSHAKE_IMPLICIT || c->state == ST_HANDSHAKE) {
			int implicit = c->state == ST_HANDSHAKE_IMPLICIT;
			c->tls_active = 1;
			if (implicit) {
				c->state = ST_GREETING;
				arm(c, c->p->greeting_ms);
			} else {
				/* RFC 3207 4.2: forget what we knew and say EHLO again. */
				send_ehlo(c);
			}
		}
		return;
	}
	if (c->state == ST_HANDSHAKE || c->state == ST_HANDSHAKE_IMPLICIT) {
		char why[400];
		ssl_errors(bev, why, sizeof(why));
		fail(c, SMTP_TEMP, SMTP_FAIL_TLS, 0, "4.7.5", "TLS required: handshake failed: %s", why);
		return;
	}
	if (c->state == ST_QUIT) {
		close_conn(c, SMTP_OK, SMTP_FAIL_NONE, &(struct smtp_reply){0, "", "closed"});
		return;
	}
	if (what & BEV_EVENT_EOF) {
		fail(c, SMTP_TEMP, SMTP_FAIL_LOST, 0, "4.4.2", "connection closed by the peer in %s",
		    state_names[c->state]);
		return;
	}
	char why[400];
	if (c->tls_active)
		ssl_errors(bev, why, sizeof(why));
	else
		snprintf(why, sizeof(why), "%s", strerror(errno ? errno : ECONNRESET));
	fail(c, SMTP_TEMP, SMTP_FAIL_LOST, 0, "4.4.2", "connection lost in %s: %s", state_names[c->state], why);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *c = arg;
	if (c->state == ST_BODY)
		fail(c, SMTP_TEMP, SMTP_FAIL_TIMEOUT, 0, "4.4.2", "timeout sending the message content");
	else if (c->state == ST_QUIT)
		close_conn(c, SMTP_OK, SMTP_FAIL_NONE, &(struct smtp_reply){0, "", "closed (no reply to QUIT)"});
	else
		fail(c, SMTP_TEMP, SMTP_FAIL_TIMEOUT, 0, "4.4.2", "timeout waiting for the reply to %s",
		    state_names[c->state]);
}

/* ---- API ----------------------------------------------------------------------------- */

struct smtp_client *smtp_client_new(struct event_base *base, int fd, const struct smtp_client_params *params,
    smtp_txn_cb txn_cb, smtp_close_cb close_cb, void *arg)
{
	struct smtp_client *c = xcalloc(1, sizeof(*c));
	c->base = base;
	c->p = params;
	c->txn_cb = txn_cb;
	c->close_cb = close_cb;
	c->arg = arg;
	buf_init(&c->lines, (size_t)SMTP_REPLY_LINE_MAX * SMTP_REPLY_LINES_MAX + SMTP_REPLY_LINES_MAX);
	c->timer = evtimer_new(base, on_timeout, c);
	c->notify = event_new(base, -1, 0, on_notify, c);
	evutil_make_socket_nonblocking(fd);
	if (params->tls == SMTP_TLS_IMPLICIT) {
		start_tls(c, 1, fd);
		return c;
	}
	c->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!c->bev) {
		close(fd);
		fail(c, SMTP_TEMP, SMTP_FAIL_LOCAL, 0, "4.3.0", "cannot create a bufferevent");
		return c;
	}
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->state = ST_GREETING;
	arm(c, params->greeting_ms);
	return c;
}

int smtp_client_send(struct smtp_client *c, struct smtp_txn *t)
{
	if (c->txn || c->want_quit || c->state == ST_CLOSED)
		return -1;
	c->txn = t;
	c->txn_started = 0;
	c->txn_done = 0;
	c->ntxns++;
	t->status = SMTP_TEMP;
	t->why = SMTP_FAIL_NONE;
	t->accepted = 0;
	t->mail_accepted = 0;
	set_reply(&t->reply, 0, "", "not attempted");
	for (size_t i = 0; i < t->nrcpt; i++) {
		t->rcpts[i].status = SMTP_TEMP;
		t->rcpts[i].why = SMTP_FAIL_NONE;
		set_reply(&t->rcpts[i].reply, 0, "", "not attempted");
	}
	/* Started from the loop (on_notify), never from inside this call. */
	if (c->state == ST_READY && !c->in_cb)
		notify_later(c);
	return 0;
}

void smtp_client_quit(struct smtp_client *c)
{
	if (c->want_quit || c->state == ST_CLOSED)
		return;
	c->want_quit = 1;
	if (c->state == ST_READY && !c->txn)
		become_ready(c);
}

void smtp_client_free(struct smtp_client *c)
{
	if (c->in_cb) {
		c->free_pending = 1;
		return;
	}
	destroy(c);
}

int smtp_client_idle(const struct smtp_client *c)
{
	return c->state == ST_READY && !c->txn && !c->txn_done && !c->want_quit && !c->free_pending;
}

void smtp_client_rebind(struct smtp_client *c, const struct smtp_client_params *params, smtp_txn_cb txn_cb,
    smtp_close_cb close_cb, void *arg, int rset)
{
	c->p = params;
	c->txn_cb = txn_cb;
	c->close_cb = close_cb;
	c->arg = arg;
	if (rset)
		c->need_rset = 1;
}

unsigned smtp_client_transactions(const struct smtp_client *c)
{
	return c->ntxns;
}

unsigned smtp_client_extensions(const struct smtp_client *c)
{
	return c->ext;
}

int smtp_client_tls_active(const struct smtp_client *c)
{
	return c->tls_active;
}

const char *smtp_client_auth_mech(const struct smtp_client *c)
{
	return c->auth_mech == SASL_NONE ? "" : sasl_mech_name(c->auth_mech);
}

/* ---- connecting ------------------------------------------------------------------------ */

struct smtp_connect {
	struct event *ev;
	int fd;
	int err;
	smtp_connect_cb cb;
	void *arg;
};

static void on_connect(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_connect *k = arg;
	int err = k->err;
	if (!err && (what & EV_TIMEOUT)) {
		err = ETIMEDOUT;
	} else if (!err && k->fd >= 0) {
		socklen_t len = sizeof(err);
		if (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
	}
	int out = k->fd;
	if (err && out >= 0) {
		close(out);
		out = -1;
	}
	smtp_connect_cb cb = k->cb;
	void *cbarg = k->arg;
	event_free(k->ev);
	free(k);
	cb(out, err, cbarg);
}

struct smtp_connect *smtp_client_connect(struct event_base *base, const struct sockaddr *sa, socklen_t salen,
    unsigned timeout_ms, smtp_connect_cb cb, void *arg)
{
	struct smtp_connect *k = xcalloc(1, sizeof(*k));
	k->cb = cb;
	k->arg = arg;
	k->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (k->fd < 0) {
		k->err = errno;
	} else if (connect(k->fd, sa, salen) < 0 && errno != EINPROGRESS) {
		k->err = errno;
		close(k->fd);
		k->fd = -1;
	}
	if (k->fd < 0) {
		k->ev = event_new(base, -1, 0, on_connect, k);
		event_active(k->ev, 0, 0);
		return k;
	}
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	k->ev = event_new(base, k->fd, EV_WRITE, on_connect, k);
	event_add(k->ev, &tv);
	return k;
}

void smtp_connect_cancel(struct smtp_connect *k)
{
	if (k->fd >= 0)
		close(k->fd);
	event_free(k->ev);
	free(k);
}
