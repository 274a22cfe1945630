/*
 * probe: one VRFY / RCPT probe over one SMTP connection (probe.h says what it
 * asks and how each reply is read).
 *
 * Trust: everything the server sends is untrusted: reply lines are bounded
 * before they are complete, must start with three digits, and a multi-line
 * reply must keep its code; anything else ends the probe as PROBE_FAIL.  The
 * address we send was parsed by smtpd; it is refused here if it holds CR or LF.
 *
 * States: CONNECT -> GREETING -> EHLO [-> HELO] -> VRFY [-> MAIL -> RCPT]
 * (or MAIL -> RCPT) -> QUIT.  One timer covers the whole probe; after the
 * answer the connection says QUIT and lingers at most PROBE_QUIT_MS for the
 * bytes to leave, owned by nobody but itself.
 */
#include "verify/probe.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "deliver/smtp_client.h"
#include "util/xalloc.h"

#define PROBE_QUIT_MS 1000

enum pstate { P_CONNECT = 0, P_GREETING, P_EHLO, P_HELO, P_VRFY, P_MAIL, P_RCPT, P_QUIT };

struct probe {
	struct event_base *base;
	probe_cb cb;
	void *arg;
	char *helo, *addr;
	enum probe_method method;
	enum pstate state;
	struct smtp_connect *connect;
	struct bufferevent *bev;
	struct event *timer;
	int dsn;                   /* the server offered DSN in its EHLO reply */
	int smtputf8;              /* ... and SMTPUTF8 */
	int utf8;                  /* the address is not ASCII (RFC 6531) */
	int answered;              /* the callback ran: only QUIT is left */
	int bad;                   /* refused at start: answered from the loop */
	struct probe_reply r;       /* the reply being read */
};

static const char *state_name(enum pstate s)
{
	switch (s) {
	case P_CONNECT: return "connect";
	case P_GREETING: return "greeting";
	case P_EHLO: return "ehlo";
	case P_HELO: return "helo";
	case P_VRFY: return "vrfy";
	case P_MAIL: return "mail";
	case P_RCPT: return "rcpt";
	case P_QUIT: return "quit";
	}
	return "?";
}

const char *probe_result_name(enum probe_result r)
{
	switch (r) {
	case PROBE_OK: return "found";
	case PROBE_UNKNOWN: return "unknown";
	case PROBE_TEMP: return "tempfail";
	case PROBE_FAIL: return "unreachable";
	}
	return "?";
}

static void destroy(struct probe *p)
{
	if (p->connect)
		smtp_connect_cancel(p->connect);
	if (p->bev)
		bufferevent_free(p->bev);
	if (p->timer)
		event_free(p->timer);
	free(p->helo);
	free(p->addr);
	free(p);
}

static void on_quit_written(struct bufferevent *bev, void *arg)
{
	struct probe *p = arg;
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		destroy(p);
}

static void on_quit_event(struct bufferevent *bev, short what, void *arg)
{
	destroy(arg);
}

static void on_quit_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	evbuffer_drain(in, evbuffer_get_length(in));
}

/*
 * The answer is known: report it, then QUIT and linger briefly.  p stays valid
 * until the event loop runs again (the callers up the stack still look at it):
 * it is freed from the timer, or when the QUIT has been written.
 */
static void answer(struct probe *p, enum probe_result r, const char *why)
{
	struct probe_answer a;
	memset(&a, 0, sizeof(a));
	a.result = r;
	a.how = state_name(p->state);
	if (why) {
		snprintf(a.text, sizeof(a.text), "%s", why);
	} else {
		a.code = p->r.code;
		snprintf(a.enh, sizeof(a.enh), "%s", p->r.enh);
		snprintf(a.text, sizeof(a.text), "%s", p->r.first);
	}
	p->answered = 1;
	p->cb(p->arg, &a);
	evtimer_del(p->timer);
	if (!p->bev || why) {
		/* Nothing to say goodbye on (or a session not worth it): free from the loop. */
		if (p->bev) {
			bufferevent_disable(p->bev, EV_READ | EV_WRITE);
			bufferevent_setcb(p->bev, NULL, NULL, NULL, NULL);
		}
		struct timeval zero = { 0, 0 };
		evtimer_add(p->timer, &zero);
		return;
	}
	p->state = P_QUIT;
	struct timeval tv = { PROBE_QUIT_MS / 1000, (PROBE_QUIT_MS % 1000) * 1000 };
	evtimer_add(p->timer, &tv);
	bufferevent_setcb(p->bev, on_quit_read, on_quit_written, on_quit_event, p);
	bufferevent_write(p->bev, "QUIT\r\n", 6);
}

static void sendf(struct probe *p, const char *fmt, const char *arg)
{
	struct evbuffer *out = bufferevent_get_output(p->bev);
	evbuffer_add_printf(out, fmt, arg);
}

static void send_mail(struct probe *p)
{
	p->state = P_MAIL;
	if (p->utf8 && !p->smtputf8) {
		/* RFC 6531 3.2: it cannot take this address at all; the delivery would fail with 5.6.7 too. */
		answer(p, PROBE_UNKNOWN, "the server does not offer SMTPUTF8 for a non-ASCII address");
		return;
	}
	struct evbuffer *out = bufferevent_get_output(p->bev);
	evbuffer_add_printf(out, "MAIL FROM:<>%s%s\r\n", p->dsn ? " ENVID=" PROBE_ENVID : "",
	    p->utf8 ? " SMTPUTF8" : "");
}

/* After the greeting and EHLO/HELO: the question itself. */
static void ask(struct probe *p)
{
	/* A non-ASCII address is asked with RCPT only (VRFY would need its own SMTPUTF8 argument). */
	if (p->method == PROBE_VRFY && !p->utf8) {
		p->state = P_VRFY;
		sendf(p, "VRFY <%s>\r\n", p->addr);
	} else {
		send_mail(p);
	}
}

/* One complete reply (code, first line, enhanced code) in the current state. */
static void on_reply(struct probe *p)
{
	int c = p->r.code, cls = c / 100;
	switch (p->state) {
	case P_GREETING:
		if (cls != 2)
			return answer(p, PROBE_FAIL, "greeting refused");
		p->state = P_EHLO;
		sendf(p, "EHLO %s\r\n", p->helo);
		return;
	case P_EHLO:
		if (cls == 2) {
			p->dsn = p->r.dsn;
			p->smtputf8 = p->r.smtputf8;
			return ask(p);
		}
		if (cls == 5) {
			p->state = P_HELO;
			sendf(p, "HELO %s\r\n", p->helo);
			return;
		}
		return answer(p, PROBE_FAIL, "EHLO refused");
	case P_HELO:
		if (cls != 2)
			return answer(p, PROBE_FAIL, "HELO refused");
		return ask(p);
	case P_VRFY:
		/* RFC 5321 3.5.3: 250/251 the address is good; 252 "cannot verify"; 550/551/553 no such mailbox. */
		if (c == 250 || c == 251)
			return answer(p, PROBE_OK, NULL);
		if (c == 550 || c == 551 || c == 553)
			return answer(p, PROBE_UNKNOWN, NULL);
		if (cls == 4)
			return answer(p, c == 421 ? PROBE_FAIL : PROBE_TEMP, NULL);
		/* VRFY off or not implemented: a RCPT probe on the same session. */
		return send_mail(p);
	case P_MAIL:
		if (cls != 2)
			return answer(p, PROBE_FAIL, "MAIL FROM:<> refused");
		p->state = P_RCPT;
		sendf(p, "RCPT TO:<%s>\r\n", p->addr);
		return;
	case P_RCPT:
		if (cls == 2)
			return answer(p, PROBE_OK, NULL);
		if (cls == 5)
			return answer(p, PROBE_UNKNOWN, NULL);
		return answer(p, c == 421 ? PROBE_FAIL : PROBE_TEMP, NULL);
	case P_CONNECT:
	case P_QUIT:
		return;
	}
}

int probe_reply_line(struct probe_reply *r, const char *line, size_t len, int ehlo, int *done)
{
	*done = 0;
	if (len < 3 || len > PROBE_LINE_MAX || memchr(line, '\0', len) || line[0] < '2' || line[0] > '5' ||
	    line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9')
		return -1;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return -1;
	int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->nlines == 0) {
		r->code = code;
		r->enh[0] = '\0';
		r->dsn = 0;
		r->smtputf8 = 0;
		const char *t = len > 4 ? line + 4 : line + len;
		size_t rest = len > 4 ? len - 4 : 0;
		/* RFC 3463: class.subject.detail, the class the same digit as the reply's. */
		size_t k = 0;
		while (k < rest && ((t[k] >= '0' && t[k] <= '9') || t[k] == '.'))
			k++;
		if (k > 4 && k < sizeof(r->enh) && t[0] == line[0] && t[1] == '.') {
			memcpy(r->enh, t, k);
			r->enh[k] = '\0';
			t += k;
			rest -= k;
			while (rest > 0 && *t == ' ')
				t++, rest--;
		}
		snprintf(r->first, sizeof(r->first), "%.*s", (int)(rest < sizeof(r->first) ? rest : sizeof(r->first) - 1), t);
	} else if (code != r->code) {
		return -1;
	}
	if (++r->nlines > PROBE_LINES_MAX)
		return -1;
	/* RFC 3461 4: the DSN keyword in the EHLO reply. */
	if (ehlo && len >= 7 && strncasecmp(line + 4, "DSN", 3) == 0 && (len == 7 || line[7] == ' '))
		r->dsn = 1;
	if (ehlo && len >= 12 && strncasecmp(line + 4, "SMTPUTF8", 8) == 0 && (len == 12 || line[12] == ' '))
		r->smtputf8 = 1;
	if (len == 3 || line[3] == ' ') {
		*done = 1;
		r->nlines = 0;
	}
	return 0;
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct probe *p = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	while (!p->answered) {
		size_t n;
		char *line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF);
		if (!line) {
			if (evbuffer_get_length(in) > PROBE_LINE_MAX)
				answer(p, PROBE_FAIL, "reply line too long");
			return;
		}
		int done;
		int bad = probe_reply_line(&p->r, line, n, p->state == P_EHLO, &done) < 0;
		free(line);
		if (bad) {
			answer(p, PROBE_FAIL, "malformed reply");
			return;
		}
		if (done)
			on_reply(p);
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct probe *p = arg;
	char why[64];
	snprintf(why, sizeof(why), "connection %s during %s", what & BEV_EVENT_EOF ? "closed" : "lost",
	    state_name(p->state));
	answer(p, PROBE_FAIL, why);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct probe *p = arg;
	if (p->answered) {
		destroy(p);   /* the QUIT linger is over, or nothing was left to say */
		return;
	}
	if (p->bad) {
		answer(p, PROBE_FAIL, "bad address to probe");
		return;
	}
	char why[64];
	snprintf(why, sizeof(why), "timed out during %s", state_name(p->state));
	answer(p, PROBE_FAIL, why);
}

static void on_connect(int fd, int err, void *arg)
{
	struct probe *p = arg;
	p->connect = NULL;
	if (fd < 0) {
		char why[128];
		snprintf(why, sizeof(why), "connect: %s", strerror(err));
		answer(p, PROBE_FAIL, why);
		return;
	}
	p->bev = bufferevent_socket_new(p->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!p->bev) {
		close(fd);
		answer(p, PROBE_FAIL, "out of memory");
		return;
	}
	p->state = P_GREETING;
	bufferevent_setcb(p->bev, on_read, NULL, on_event, p);
	bufferevent_setwatermark(p->bev, EV_READ, 0, PROBE_LINE_MAX * 4);
	bufferevent_enable(p->bev, EV_READ | EV_WRITE);
}

struct probe *probe_start(struct event_base *base, const struct probe_params *pp, probe_cb cb, void *arg)
{
	struct probe *p = xcalloc(1, sizeof(*p));
	p->base = base;
	p->cb = cb;
	p->arg = arg;
	p->helo = xstrdup(pp->helo && pp->helo[0] ? pp->helo : "localhost");
	p->addr = xstrdup(pp->addr ? pp->addr : "");
	p->method = pp->method;
	for (const unsigned char *c = (const unsigned char *)p->addr; *c; c++)
		if (*c >= 0x80)
			p->utf8 = 1;
	p->timer = evtimer_new(base, on_timer, p);
	if (strpbrk(p->addr, "\r\n") || strpbrk(p->helo, "\r\n") || p->addr[0] == '\0') {
		/* Never inside probe_start: the answer comes from the loop. */
		struct timeval zero = { 0, 0 };
		p->bad = 1;
		evtimer_add(p->timer, &zero);
		return p;
	}
	unsigned ms = pp->timeout_ms ? pp->timeout_ms : 30000;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	evtimer_add(p->timer, &tv);
	p->connect = smtp_client_connect(base, pp->sa, pp->salen, ms, on_connect, p);
	return p;
}

void probe_cancel(struct probe *p)
{
	if (p && !p->answered)
		destroy(p);
}
