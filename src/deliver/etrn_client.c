/*
 * etrn_client: one ETRN session as a libevent state machine (see
 * etrn_client.h).
 *
 *   CONNECT -> GREETING -> EHLO [-> STARTTLS -> HANDSHAKE -> EHLO] -> ETRN x n -> QUIT
 *
 * One timer covers whatever we wait for (a reply, the handshake).  A session
 * ends through finish(), which only records the result and wakes ev_done:
 * the callback and the free happen from that event, never from inside a
 * bufferevent callback.
 */
#include "deliver/etrn_client.h"

#include <errno.h>
#include <stdarg.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deliver/smtp_client.h"
#include "tls/tls_client.h"
#include "util/log.h"
#include "util/xalloc.h"

enum state { ST_CONNECT = 0, ST_GREETING, ST_EHLO, ST_STARTTLS, ST_HANDSHAKE, ST_ETRN, ST_QUIT, ST_DONE };

static const char *const state_names[] = { "connect", "greeting", "EHLO reply", "STARTTLS reply", "TLS handshake",
	"ETRN reply", "QUIT reply", "done" };

struct etrn_session {
	struct event_base *base;
	struct etrn_session_params p;
	char *helo, *host;
	char **args;
	size_t nargs;
	etrn_session_cb cb;
	void *cbarg;
	struct etrn_session_result res;
	enum state state;
	size_t addr;              /* index of the address being tried */
	size_t next_arg;          /* the ETRN whose reply we wait for */
	int no_tls;               /* opportunistic TLS failed on this address: plaintext now */
	int tls_up;
	unsigned ehlo;            /* keywords of the last EHLO reply */
	struct smtp_connect *connect;
	struct bufferevent *bev;
	struct etrn_reply reply;
	struct event *timer;
	struct event *ev_done;
};

static void start_connect(struct etrn_session *s);

static void close_conn(struct etrn_session *s)
{
	if (s->connect) {
		smtp_connect_cancel(s->connect);
		s->connect = NULL;
	}
	if (s->bev) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	evtimer_del(s->timer);
}

/* The end: record why (fmt NULL: nothing went wrong) and call back from the loop. */
static void finish(struct etrn_session *s, int permanent, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void finish(struct etrn_session *s, int permanent, const char *fmt, ...)
{
	if (s->state == ST_DONE)
		return;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(s->res.detail, sizeof(s->res.detail), fmt, ap);
		va_end(ap);
		s->res.permanent = permanent;
	}
	s->state = ST_DONE;
	close_conn(s);
	event_active(s->ev_done, 0, 0);
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
	struct etrn_session *s = arg;
	s->cb(s->cbarg, &s->res);
	etrn_session_free(s);
}

static void arm(struct etrn_session *s, unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(s->timer, &tv);
}

static void set_peer(struct etrn_session *s)
{
	const struct etrn_target *t = &s->p.addrs[s->addr];
	snprintf(s->res.peer, sizeof(s->res.peer), "%s[%s]:%u", s->host, t->ip, s->p.port);
}

static void send_line(struct etrn_session *s, enum state next, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void send_line(struct etrn_session *s, enum state next, const char *fmt, ...)
{
	char line[ETRN_ARG_MAX + 16];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2) {
		finish(s, 1, "command too long");
		return;
	}
	log_debug("event=etrn_send peer=%s line=%s", lq(s->res.peer), lq(line));
	evbuffer_add_printf(bufferevent_get_output(s->bev), "%s\r\n", line);
	s->state = next;
	etrn_reply_init(&s->reply);
	arm(s, s->p.reply_ms);
}

static void send_ehlo(struct etrn_session *s)
{
	send_line(s, ST_EHLO, "EHLO %s", s->helo);
}

/* The next ETRN, or QUIT when every argument has its answer. */
static void send_next(struct etrn_session *s)
{
	if (s->next_arg < s->nargs)
		send_line(s, ST_ETRN, "ETRN %s", s->args[s->next_arg]);
	else
		send_line(s, ST_QUIT, "QUIT");
}

static void on_read(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

static void start_tls(struct etrn_session *s)
{
	SSL *ssl = tls_client_session(s->p.ssl_ctx, s->host, 0);
	if (!ssl) {
		finish(s, 0, "cannot set up TLS");
		return;
	}
	/* RFC 3207 4.2: whatever the server sent after its 220 and before the handshake is not believed. */
	struct evbuffer *in = bufferevent_get_input(s->bev);
	evbuffer_drain(in, evbuffer_get_length(in));
	struct bufferevent *tb = bufferevent_openssl_filter_new(s->base, s->bev, ssl, BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!tb) {
		SSL_free(ssl);
		finish(s, 0, "cannot set up TLS");
		return;
	}
	s->bev = tb;
	bufferevent_openssl_set_allow_dirty_shutdown(tb, 1);
	bufferevent_setcb(tb, on_read, NULL, on_event, s);
	bufferevent_enable(tb, EV_READ | EV_WRITE);
	s->state = ST_HANDSHAKE;
	arm(s, s->p.reply_ms);
}

/* After EHLO: TLS first if wanted and possible, then the ETRNs if ETRN is offered. */
static void after_ehlo(struct etrn_session *s)
{
	int want_tls = s->p.tls != ETRN_TLS_NONE && !s->no_tls && !s->tls_up;
	if (want_tls && (s->ehlo & ETRN_EHLO_STARTTLS) && s->p.ssl_ctx) {
		send_line(s, ST_STARTTLS, "STARTTLS");
		return;
	}
	if (s->p.tls == ETRN_TLS_MANDATORY && !s->tls_up) {
		finish(s, 1, (s->ehlo & ETRN_EHLO_STARTTLS) ? "TLS required (etrn_tls = mandatory) but no client TLS context" :
		    "TLS required (etrn_tls = mandatory) but STARTTLS is not offered");
		return;
	}
	s->res.offered = (s->ehlo & ETRN_EHLO_ETRN) != 0;
	if (!s->res.offered) {
		/* RFC 1985 4: ETRN is used only with a server that says it has it. */
		finish(s, 1, "ETRN is not offered by the server (not in its EHLO reply)");
		return;
	}
	s->res.ran = 1;
	s->res.tls = s->tls_up;
	send_next(s);
}

static void on_reply(struct etrn_session *s)
{
	const struct etrn_reply *r = &s->reply;
	evtimer_del(s->timer);
	switch (s->state) {
	case ST_GREETING:
		if (r->code != 220) {
			finish(s, r->code >= 500, "greeting %d %s", r->code, r->text);
			return;
		}
		send_ehlo(s);
		return;
	case ST_EHLO:
		if (r->code != 250) {
			/* No HELO fallback: without EHLO we cannot know whether ETRN is there. */
			finish(s, r->code >= 500, "EHLO refused: %d %s", r->code, r->text);
			return;
		}
		s->ehlo = r->ehlo;
		after_ehlo(s);
		return;
	case ST_STARTTLS:
		if (r->code == 220) {
			start_tls(s);
			return;
		}
		if (s->p.tls == ETRN_TLS_MANDATORY) {
			finish(s, r->code >= 500, "STARTTLS refused: %d %s", r->code, r->text);
			return;
		}
		s->no_tls = 1; /* opportunistic: on in plaintext, with what the first EHLO offered */
		after_ehlo(s);
		return;
	case ST_ETRN: {
		struct etrn_answer *a = &s->res.answers[s->next_arg];
		a->code = r->code;
		snprintf(a->text, sizeof(a->text), "%s", r->text);
		s->next_arg++;
		if (r->code == 421) {
			finish(s, 0, "the server is closing the connection: 421 %s", r->text);
			return;
		}
		send_next(s);
		return;
	}
	case ST_QUIT:
		finish(s, 0, NULL);
		return;
	default:
		finish(s, 0, "unexpected reply %d in state %s", r->code, state_names[s->state]);
		return;
	}
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct etrn_session *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	while (s->state != ST_DONE) {
		size_t n;
		char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
		if (!line) {
			/* Limits are checked on partial input as well. */
			if (evbuffer_get_length(in) > ETRN_LINE_MAX)
				finish(s, 0, "reply line longer than %d bytes", ETRN_LINE_MAX);
			return;
		}
		if (s->state == ST_CONNECT || s->state == ST_HANDSHAKE) {
			free(line);
			finish(s, 0, "data from the server out of turn");
			return;
		}
		int r = etrn_reply_feed(&s->reply, line, n);
		free(line);
		if (r < 0) {
			finish(s, 0, "malformed reply while waiting for the %s", state_names[s->state]);
			return;
		}
		if (r == 1)
			on_reply(s);
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct etrn_session *s = arg;
	if ((what & BEV_EVENT_CONNECTED) && s->state == ST_HANDSHAKE) {
		evtimer_del(s->timer);
		s->tls_up = 1;
		send_ehlo(s);
		return;
	}
	if (s->state == ST_QUIT) {
		finish(s, 0, NULL); /* closed after our QUIT: fine */
		return;
	}
	if (s->state == ST_HANDSHAKE && s->p.tls == ETRN_TLS_OPPORTUNISTIC) {
		/* As for mail: a failed opportunistic handshake is tried again in plaintext, same address. */
		log_info("event=etrn_tls_failed peer=%s action=plaintext", lq(s->res.peer));
		close_conn(s);
		s->no_tls = 1;
		start_connect(s);
		return;
	}
	finish(s, 0, "%s while waiting for the %s", s->state == ST_HANDSHAKE ? "TLS handshake failed" :
	    (what & BEV_EVENT_EOF) ? "connection closed by the server" : "connection lost", state_names[s->state]);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct etrn_session *s = arg;
	finish(s, 0, "timeout waiting for the %s", state_names[s->state]);
}

static void on_connected(int fd, int err, void *arg)
{
	struct etrn_session *s = arg;
	s->connect = NULL;
	if (fd < 0) {
		log_info("event=etrn_connect_failed peer=%s error=%s", lq(s->res.peer), lq(strerror(err)));
		if (s->addr + 1 < s->p.naddrs) {
			s->addr++;
			s->no_tls = 0;
			start_connect(s);
			return;
		}
		finish(s, 0, "cannot connect: %s", strerror(err));
		return;
	}
	s->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!s->bev) {
		close(fd);
		finish(s, 0, "out of memory");
		return;
	}
	bufferevent_setcb(s->bev, on_read, NULL, on_event, s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	s->state = ST_GREETING;
	s->tls_up = 0;
	etrn_reply_init(&s->reply);
	arm(s, s->p.reply_ms);
}

static void start_connect(struct etrn_session *s)
{
	const struct etrn_target *t = &s->p.addrs[s->addr];
	set_peer(s);
	s->state = ST_CONNECT;
	s->next_arg = 0;
	s->connect = smtp_client_connect(s->base, (const struct sockaddr *)&t->sa, t->salen, s->p.connect_ms,
	    on_connected, s);
}

struct etrn_session *etrn_session_start(struct event_base *base, const struct etrn_session_params *p,
    char *const *args, size_t nargs, etrn_session_cb cb, void *arg)
{
	struct etrn_session *s = xcalloc(1, sizeof(*s));
	s->base = base;
	s->p = *p;
	s->helo = xstrdup(p->helo);
	s->host = xstrdup(p->host);
	s->p.helo = s->helo;
	s->p.host = s->host;
	s->nargs = nargs;
	s->args = xcalloc(nargs ? nargs : 1, sizeof(char *));
	for (size_t i = 0; i < nargs; i++)
		s->args[i] = xstrdup(args[i]);
	s->cb = cb;
	s->cbarg = arg;
	s->res.nargs = nargs;
	s->res.answers = xcalloc(nargs ? nargs : 1, sizeof(*s->res.answers));
	s->timer = evtimer_new(base, on_timeout, s);
	s->ev_done = event_new(base, -1, 0, on_done, s);
	snprintf(s->res.peer, sizeof(s->res.peer), "%s:%u", s->host, s->p.port);
	if (s->p.naddrs == 0 || nargs == 0) {
		finish(s, 1, s->p.naddrs == 0 ? "no address for the server" : "nothing to ask for");
		return s;
	}
	start_connect(s);
	return s;
}

void etrn_session_free(struct etrn_session *s)
{
	if (!s)
		return;
	close_conn(s);
	event_free(s->timer);
	event_free(s->ev_done);
	for (size_t i = 0; i < s->nargs; i++)
		free(s->args[i]);
	free(s->args);
	free(s->res.answers);
	free(s->helo);
	free(s->host);
	free(s);
}
