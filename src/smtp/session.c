/*
 * session: one SMTP connection — reading input, writing replies, timeouts and the
 * per-command checklist before a handler runs.
 *
 * Input handling follows invariant 3: a command line ends only at CRLF.  A line
 * longer than max_line_length is discarded as it arrives (never buffered whole)
 * and answered once its CRLF is seen, so the session stays in sync (Postfix
 * SMTP_GET_FLAG_SKIP, Redis networking.c).  While the session waits for the
 * queue, input stays buffered in the bufferevent (bounded by its watermark).
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <netinet/in.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "local/vhost.h"
#include "policy/dnsbl.h"
#include "queue/qfile.h"
#include "smtp/rcpt_elsewhere.h"
#include "smtp/smtpd.h"
#include "tls/tls.h"
#include "util/log.h"
#include "util/xalloc.h"

/* Input held while a session waits (queue round trip, pipelined BDAT): bounded. */
#define INPUT_HIGH_WATERMARK (256 * 1024)

static void process_input(struct session *s);

static size_t id_hash(uint64_t id)
{
	return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 32);
}

/* Sessions by id, for the queue's replies: O(1) with thousands of sessions open. */
static void index_add(struct smtpd *sd, struct session *s)
{
	if (sd->nsessions + 1 > sd->nindex) {
		size_t n = sd->nindex ? sd->nindex * 2 : 256;
		struct session **v = xcalloc(n, sizeof(*v));
		for (size_t b = 0; b < sd->nindex; b++)
			for (struct session *x = sd->index[b], *next; x; x = next) {
				next = x->hnext;
				size_t k = id_hash(x->id) & (n - 1);
				x->hnext = v[k];
				v[k] = x;
			}
		free(sd->index);
		sd->index = v;
		sd->nindex = n;
	}
	size_t k = id_hash(s->id) & (sd->nindex - 1);
	s->hnext = sd->index[k];
	sd->index[k] = s;
}

static void index_del(struct smtpd *sd, struct session *s)
{
	if (!sd->nindex)
		return;
	for (struct session **pp = &sd->index[id_hash(s->id) & (sd->nindex - 1)]; *pp; pp = &(*pp)->hnext)
		if (*pp == s) {
			*pp = s->hnext;
			return;
		}
}

struct session *session_find(struct smtpd *sd, uint64_t id)
{
	if (!sd->nindex)
		return NULL;
	for (struct session *s = sd->index[id_hash(id) & (sd->nindex - 1)]; s; s = s->hnext)
		if (s->id == id)
			return s;
	return NULL;
}

static void set_timeout(struct session *s, long seconds)
{
	struct timeval tv = { seconds, 0 };
	bufferevent_set_timeouts(s->bev, &tv, &tv);
}

void session_txn_free(struct session *s)
{
	struct txn *t = s->txn;
	if (!t)
		return;
	for (size_t i = 0; i < t->nrcpt; i++) {
		free(t->rcpt[i].orig);
		free(t->rcpt[i].dest);
		free(t->rcpt[i].present);
		free(t->rcpt[i].orcpt);
	}
	free(t->rcpt);
	if (t->qfd >= 0) {
		close(t->qfd);
		if (t->qid[0]) {
			struct buf p;
			buf_init(&p, 256);
			ipc_put_str(&p, t->qid);
			ipc_send(&s->sd->queue, IPC_Q_ABORT, &p, -1);
			buf_free(&p);
		}
	}
	buf_free(&t->wbuf);
	free(t);
	s->txn = NULL;
}

void session_destroy(struct session *s)
{
	struct smtpd *sd = s->sd;
	struct buf counts;
	buf_init(&counts, 1024);
	unsigned total = 0;
	for (int v = 1; v < VERB_COUNT; v++)
		if (s->counts[v]) {
			buf_appendf(&counts, " %s=%u", verb_name((enum smtp_verb)v), s->counts[v]);
			total += s->counts[v];
		}
	if (s->counts[VERB_UNKNOWN])
		buf_appendf(&counts, " unknown=%u", s->counts[VERB_UNKNOWN]);
	log_to(LOG_CONNECT, "event=disconnect session=%llu client=%s messages=%u errors=%u commands=%u%s",
	    (unsigned long long)s->id, s->client_addr, s->messages, s->errors,
	    total + s->counts[VERB_UNKNOWN], buf_cstr(&counts));
	buf_free(&counts);
	rcpt_elsewhere_cancel(s);
	atrn_session_free(s);
	session_txn_free(s);
	TAILQ_REMOVE(&sd->sessions, s, entry);
	index_del(sd, s);
	sd->nsessions--;
	if (s->dnsbl)
		dnsbl_cancel(s->dnsbl);
	if (s->auth_timer)
		event_free(s->auth_timer);
	if (s->ev_destroy)
		event_free(s->ev_destroy);
	bufferevent_free(s->bev);
	free(s->helo);
	free(s->auth_id);
	free(s);
	if (sd->stopping && sd->nsessions == 0)
		event_base_loopexit(sd->base, NULL);
}

static void destroy_later(evutil_socket_t fd, short what, void *arg)
{
	session_destroy(arg);
}

/*
 * Free the session from the event loop, never from inside the call chain that
 * decided to close: the command handler, the bufferevent or the evbuffer that
 * called us still holds pointers to what session_destroy() frees.
 */
static void schedule_destroy(struct session *s)
{
	if (!s->ev_destroy)
		s->ev_destroy = evtimer_new(s->sd->base, destroy_later, s);
	if (!evtimer_pending(s->ev_destroy, NULL)) {
		struct timeval now = { 0, 0 };
		evtimer_add(s->ev_destroy, &now);
	}
}

/* After STARTTLS the TLS filter hands its records to the plain bufferevent below it: wait for that one too. */
static void underlying_drained(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct session *s = arg;
	if (evbuffer_get_length(buf) == 0)
		schedule_destroy(s);
}

/* Destroy a closing session once every byte of its last reply has left. */
static void finish_close(struct session *s)
{
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) != 0)
		return;
	SSL *ssl = s->tls ? bufferevent_openssl_get_ssl(s->bev) : NULL;
	if (ssl && !s->waiting_underlying && SSL_is_init_finished(ssl))
		SSL_shutdown(ssl); /* close_notify after the last reply; the peer needs no answer */
	struct bufferevent *u = bufferevent_get_underlying(s->bev);
	if (u && evbuffer_get_length(bufferevent_get_output(u)) > 0) {
		if (!s->waiting_underlying) {
			s->waiting_underlying = 1;
			evbuffer_add_cb(bufferevent_get_output(u), underlying_drained, s);
		}
		return;
	}
	schedule_destroy(s);
}

static void write_done(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	if (s->state == SS_CLOSING)
		finish_close(s);
}

void session_close_after_reply(struct session *s)
{
	s->state = SS_CLOSING;
	bufferevent_disable(s->bev, EV_READ);
	finish_close(s);
}

static void reply_raw(struct session *s, int code, const char *enh, const char *text, int last)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	evbuffer_add_printf(out, "%d%c%s%s%s\r\n", code, last ? ' ' : '-', enh ? enh : "", enh ? " " : "", text);
	if (s->sd->cfg->debug)
		log_debug("session=%llu event=reply text=%s", (unsigned long long)s->id, lq(text));
}

void session_reply(struct session *s, int code, const char *enh, const char *fmt, ...)
{
	char text[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (s->state == SS_CLOSING)
		return;
	reply_raw(s, code, enh, text, 1);
	if (code >= 400) {
		s->errors++;
		if (code != 421 && s->errors >= (unsigned)s->sd->cfg->max_errors) {
			log_info("session=%llu event=too_many_errors client=%s errors=%u",
			    (unsigned long long)s->id, s->client_addr, s->errors);
			char t2[300];
			snprintf(t2, sizeof(t2), "%s Error: too many errors", s->hostname);
			reply_raw(s, 421, "4.7.0", t2, 1);
			session_close_after_reply(s);
		}
	}
	if (code == 421)
		session_close_after_reply(s);
}

void session_reply_lines(struct session *s, int code, const char *enh, const char *text)
{
	const char *p = text;
	if (s->state == SS_CLOSING)
		return;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char line[1024];
		snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) - 1 ? n : sizeof(line) - 1), p);
		reply_raw(s, code, enh, line, nl == NULL || nl[1] == '\0');
		if (!nl)
			break;
		p = nl + 1;
	}
}

/* A whole command line is in the input buffer up to eol; check and dispatch it. */
/* RFC 4954 4: a SASL response line may be up to 12288 octets. */
static size_t line_limit(const struct session *s)
{
	size_t max = (size_t)s->sd->cfg->max_line_length;
	return s->state == SS_AUTH && max < 12288 ? 12288 : max;
}

static void take_line(struct session *s, struct evbuffer *in, size_t len, size_t eol_len)
{
	size_t max = line_limit(s);
	if (s->skipping || len + eol_len > max) {
		evbuffer_drain(in, len + eol_len);
		s->skipping = 0;
		log_info("session=%llu event=line_too_long client=%s", (unsigned long long)s->id, s->client_addr);
		session_reply(s, 500, "5.5.2", "Error: line too long");
		return;
	}
	char *line = xmalloc(len + 1);
	evbuffer_remove(in, line, len);
	evbuffer_drain(in, eol_len);
	line[len] = '\0';
	/* Invariant 3: bare CR or LF is never a line end, and NUL never belongs in a command. */
	if (memchr(line, '\0', len) || memchr(line, '\r', len) || memchr(line, '\n', len)) {
		log_info("session=%llu event=bad_command_character client=%s", (unsigned long long)s->id, s->client_addr);
		session_reply(s, 500, "5.5.2", "Error: bad character in command");
		free(line);
		return;
	}
	if (s->state == SS_AUTH) {
		auth_continue(s, line);
		OPENSSL_cleanse(line, len);
		free(line);
		return;
	}
	if (s->sd->cfg->debug)
		log_debug("session=%llu event=command line=%s", (unsigned long long)s->id,
		    lq(strncasecmp(line, "AUTH ", 5) ? line : "AUTH ..."));
	commands_dispatch(s, line, len);
	free(line);
}

static void process_commands(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	/* Stop as soon as a refused BDAT chunk must be skipped: those bytes are not commands. */
	while ((s->state == SS_COMMAND || s->state == SS_AUTH) && s->discard == 0) {
		size_t max = line_limit(s);
		size_t eol_len = 0;
		struct evbuffer_ptr e = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF_STRICT);
		if (e.pos < 0) {
			size_t have = evbuffer_get_length(in);
			if (have > max) {
				/* Over-long line: drop what we have, but keep a trailing CR that may pair with the next LF. */
				unsigned char last = 0;
				struct evbuffer_ptr lp;
				evbuffer_ptr_set(in, &lp, have - 1, EVBUFFER_PTR_SET);
				evbuffer_copyout_from(in, &lp, &last, 1);
				evbuffer_drain(in, last == '\r' ? have - 1 : have);
				s->skipping = 1;
			}
			return;
		}
		take_line(s, in, (size_t)e.pos, eol_len);
	}
}

static void process_input(struct session *s)
{
	/* Each handler may change state; loop until nothing more can be done now. */
	for (;;) {
		enum session_state before = s->state;
		struct evbuffer *in = bufferevent_get_input(s->bev);
		if (s->discard > 0 && s->state == SS_COMMAND) {
			size_t have_now = evbuffer_get_length(in);
			size_t n = have_now < s->discard ? have_now : (size_t)s->discard;
			evbuffer_drain(in, n);
			s->discard -= n;
			if (s->discard > 0)
				return;
		}
		size_t have = evbuffer_get_length(in);
		switch (s->state) {
		case SS_COMMAND:
		case SS_AUTH: process_commands(s); break;
		case SS_DATA: data_feed(s); break;
		case SS_BDAT: bdat_feed(s); break;
		case SS_WAIT:
		case SS_CLOSING:
			return;
		}
		if (s->state == SS_CLOSING)
			return;
		if (s->state == before && evbuffer_get_length(bufferevent_get_input(s->bev)) == have)
			return;
	}
}

void session_resume(struct session *s)
{
	if (s->state == SS_CLOSING)
		return;
	set_timeout(s, s->state == SS_DATA || s->state == SS_BDAT ? s->sd->cfg->data_timeout : s->sd->cfg->command_timeout);
	process_input(s);
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	process_input(s);
}

static void log_tls_error(struct session *s)
{
	unsigned long e;
	char text[256] = "";
	while ((e = bufferevent_get_openssl_error(s->bev)) != 0)
		ERR_error_string_n(e, text, sizeof(text));
	log_info("session=%llu event=tls_failed client=%s error=%s", (unsigned long long)s->id, s->client_addr,
	    lq(text[0] ? text : "connection closed during handshake"));
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;
	if (what & BEV_EVENT_CONNECTED) {
		/* The TLS handshake finished (STARTTLS or implicit TLS). */
		SSL *ssl = bufferevent_openssl_get_ssl(bev);
		if (ssl) {
			tls_describe(ssl, s->tls_info, sizeof(s->tls_info));
			log_info("session=%llu event=tls client=%s tls=%s sni=%s", (unsigned long long)s->id, s->client_addr,
			    lq(s->tls_info), lq(tls_servername(ssl)));
		}
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (s->state == SS_CLOSING || (what & BEV_EVENT_WRITING)) {
			session_destroy(s);
			return;
		}
		if (s->state == SS_WAIT && s->auth_timer && evtimer_pending(s->auth_timer, NULL)) {
			/* A failed AUTH's delay (at most a minute) is ours, not the client's silence. */
			bufferevent_enable(bev, EV_READ);
			return;
		}
		if (s->state == SS_WAIT) {
			/*
			 * The client waits for us and the queue has not answered for a whole
			 * timeout: every wait is bounded (invariant 5).  A commit still in flight
			 * may land without its 250: a duplicate when the client retries, never a loss.
			 */
			log_warnx("session=%llu event=queue_timeout client=%s", (unsigned long long)s->id, s->client_addr);
			session_reply(s, 421, "4.3.0", "%s Error: queue not responding", s->hostname);
			return;
		}
		log_info("session=%llu event=timeout client=%s state=%d", (unsigned long long)s->id, s->client_addr, s->state);
		session_reply(s, 421, "4.4.2", "%s Error: timeout exceeded", s->hostname);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (s->tls && !s->tls_info[0])
			log_tls_error(s);
		if (s->txn && s->state != SS_COMMAND)
			log_info("session=%llu event=lost_connection client=%s state=%d", (unsigned long long)s->id,
			    s->client_addr, s->state);
		if (s->state == SS_WAIT && s->txn && s->txn->qid[0] && s->txn->qfd < 0) {
			/* commit in flight: let the reply be dropped when it comes */
		}
		session_destroy(s);
	}
}

void session_restore_callbacks(struct session *s)
{
	bufferevent_setcb(s->bev, on_read, write_done, on_event, s);
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
	bufferevent_setwatermark(s->bev, EV_READ, 0, INPUT_HIGH_WATERMARK);
	set_timeout(s, s->sd->cfg->command_timeout);
}

static void addr_text(const struct sockaddr *sa, socklen_t len, char *host, size_t hsz, char *port, size_t psz)
{
	if (getnameinfo(sa, len, host, (socklen_t)hsz, port, (socklen_t)psz, NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(host, hsz, "unknown");
		snprintf(port, psz, "0");
	}
	/* Show IPv4-mapped IPv6 peers as plain IPv4. */
	if (!strncmp(host, "::ffff:", 7) && strchr(host + 7, '.'))
		memmove(host, host + 7, strlen(host + 7) + 1);
}

static int is_hidden(const struct smtpd *sd, const char *local)
{
	for (size_t i = 0; i < sd->cfg->hidden_ips.n; i++)
		if (!strcmp(sd->cfg->hidden_ips.v[i], local))
			return 1;
	return 0;
}

void session_set_bev(struct session *s, struct bufferevent *bev)
{
	s->bev = bev;
	bufferevent_setcb(s->bev, on_read, write_done, on_event, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, INPUT_HIGH_WATERMARK);
	set_timeout(s, s->sd->cfg->command_timeout);
	bufferevent_enable(s->bev, EV_READ);
}

static void greet(struct session *s)
{
	session_reply(s, 220, NULL, "%s ESMTP Tsubame", s->hostname);
	s->state = SS_COMMAND;
	bufferevent_enable(s->bev, EV_READ);
}

static void on_dnsbl(void *arg, const struct dnsbl_result *r)
{
	struct session *s = arg;
	s->dnsbl = NULL;
	if (!r->listed) {
		greet(s);
		session_resume(s);
		return;
	}
	/* RFC 5321 3.1: a 554 greeting, then only QUIT is served (503 to the rest). */
	log_info("session=%llu event=reject reason=dnsbl client=%s zone=%s text=%s", (unsigned long long)s->id,
	    s->client_addr, r->zone, lq(r->reason));
	s->blocked = 1;
	s->state = SS_COMMAND;
	session_reply(s, 554, "5.7.1", "Service unavailable; client [%s] blocked using %s; %s", s->client_addr, r->zone,
	    r->reason);
	bufferevent_enable(s->bev, EV_READ);
	session_resume(s);
}

void session_start(struct smtpd *sd, int fd, const struct sockaddr *sa, socklen_t salen, const struct listener *l)
{
	struct sockaddr_storage local;
	socklen_t llen = sizeof(local);
	char lhost[64], lport[8];

	if (getsockname(fd, (struct sockaddr *)&local, &llen) < 0) {
		close(fd);
		return;
	}
	addr_text((struct sockaddr *)&local, llen, lhost, sizeof(lhost), lport, sizeof(lport));
	if (is_hidden(sd, lhost)) {
		/* R1: cluster real addresses never answer, not even with an error. */
		close(fd);
		return;
	}
	struct session *s = xcalloc(1, sizeof(*s));
	s->sd = sd;
	s->id = ++sd->next_id;
	s->fd = fd;
	snprintf(s->local_addr, sizeof(s->local_addr), "%s", lhost);
	snprintf(s->local_port, sizeof(s->local_port), "%s", lport);
	/* L1: a virtual host with its own address greets with its own name (docs/virtual-hosts.md). */
	snprintf(s->hostname, sizeof(s->hostname), "%s", vhost_hostname(&sd->tables->domains, lhost, sd->cfg->hostname));
	addr_text(sa, salen, s->client_addr, sizeof(s->client_addr), s->client_port, sizeof(s->client_port));
	s->submission = l->submission;
	s->odmr = l->odmr;
	if (l->addr.implicit_tls && sd->tls) {
		/* R1: a port written with '*' speaks TLS from the first byte (465). */
		SSL *ssl = tls_session_new(sd->tls);
		s->bev = ssl ? bufferevent_openssl_socket_new(sd->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
		    BEV_OPT_CLOSE_ON_FREE) : NULL;
		if (s->bev) {
			bufferevent_openssl_set_allow_dirty_shutdown(s->bev, 1);
			s->tls = s->implicit_tls = 1;
		} else if (ssl) {
			SSL_free(ssl);
		}
	} else {
		s->bev = bufferevent_socket_new(sd->base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	if (!s->bev) {
		close(fd);
		free(s);
		return;
	}
	TAILQ_INSERT_TAIL(&sd->sessions, s, entry);
	index_add(sd, s);
	sd->nsessions++;
	bufferevent_setcb(s->bev, on_read, write_done, on_event, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, INPUT_HIGH_WATERMARK);
	set_timeout(s, sd->cfg->command_timeout);
	log_to(LOG_CONNECT, "event=connect session=%llu client=%s port=%s local=%s:%s tls=%s submission=%s",
	    (unsigned long long)s->id, s->client_addr, s->client_port, s->local_addr, s->local_port,
	    s->implicit_tls ? "implicit" : "no", s->odmr ? "odmr" : s->submission ? "yes" : "no");

	if (sd->stopping) {
		session_reply(s, 421, "4.3.2", "%s Service shutting down", s->hostname);
		return;
	}
	if (sd->cfg->max_sessions > 0 && sd->nsessions > (size_t)sd->cfg->max_sessions) {
		log_info("session=%llu event=too_many_sessions client=%s limit=%ld", (unsigned long long)s->id,
		    s->client_addr, sd->cfg->max_sessions);
		session_reply(s, 421, "4.7.0", "%s Error: too many connections", s->hostname);
		return;
	}
	const struct config *cfg = sd->cfg;
	if (sd->dns && cfg->dnsbl.n && !dnsbl_exempt(cfg->dnsbl_exempt.v, cfg->dnsbl_exempt.n, s->client_addr)) {
		/* The greeting waits for the block lists (bounded by dns_timeout). */
		s->state = SS_WAIT;
		s->dnsbl = dnsbl_check(sd->dns, cfg->dnsbl.v, cfg->dnsbl.n, s->client_addr, on_dnsbl, s);
		return;
	}
	greet(s);
}

void session_shutdown_idle(struct smtpd *sd)
{
	struct session *s, *next;
	for (s = TAILQ_FIRST(&sd->sessions); s; s = next) {
		next = TAILQ_NEXT(s, entry);
		if (s->state == SS_COMMAND && !s->txn)
			session_reply(s, 421, "4.3.2", "%s Service shutting down", s->hostname);
		else if (s->state == SS_CLOSING)
			continue;
	}
}
