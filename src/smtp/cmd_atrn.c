/*
 * cmd_atrn: ATRN, On-Demand Mail Relay (SPEC E6, RFC 2645), the provider's
 * side: a customer without a fixed address connects to odmr_listen (port
 * 366), authenticates, says ATRN, and receives the mail we hold for its
 * domains over the same TCP connection, the roles reversed: after our 250 it
 * is the SMTP server and we are its client.  docs/atrn.md has the how-to.
 *
 * Quick checks here (RFC 2645 4.2.3), then the queue decides (IPC_Q_ATRN,
 * queue/atrn.c) while the session waits in SS_WAIT:
 *   502 5.5.1 Error: ATRN is served on the ODMR port only   (any other listener)
 *   530 5.7.0 Authentication required                       (before AUTH)
 *   501 5.5.4 Syntax error in parameters                    (atrn_args.c)
 *   250 2.0.0 OK now reversing the connection
 *   453 4.2.0 You have no mail                              (the connection stays as it is)
 *   450 4.7.1 ATRN request refused: <why>                   (not held here, not this account's)
 *   451 4.3.0 Unable to process ATRN request now
 *
 * The reversal: the TLS session (if any) lives in this process, so the raw
 * socket cannot be handed to the deliver process.  Instead a socketpair: one
 * end goes to the queue with IPC_Q_ATRN (and on to deliver, whose SMTP client
 * speaks over it), the other stays here and after the 250 we splice bytes
 * both ways between it and the session's bufferevent (plain or TLS), with
 * bounded buffers (ATRN_SPLICE_BUFFER each way, reading stops while the other
 * side is that far behind), an idle timeout (data_timeout) and an overall
 * limit (ATRN_SPLICE_MAX_SECONDS).  When either side closes, what the other
 * still has to receive is written, then both close.
 *
 * SECURITY: after the 250 we parse nothing the customer sends: the bytes go
 * to deliver's smtp_client, which bounds and checks them as from any server.
 * Who may collect which domain is the queue's decision, from the
 * authenticated account only (hold_may_collect).
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "policy/atrn_args.h"
#include "smtp/smtpd.h"
#include "util/log.h"
#include "util/xalloc.h"

#define ATRN_SPLICE_BUFFER (256 * 1024)
#define ATRN_SPLICE_MAX_SECONDS (4 * 3600)

struct atrn_splice {
	int fd;                       /* our socketpair end */
	struct bufferevent *pb;       /* on fd, once reversed */
	int reversed;
	int client_eof, pair_eof;
	int finishing;
	struct event *deadline;
	unsigned long long up, down;  /* bytes customer -> deliver, deliver -> customer */
	long long started;
	char domains[1024];
};

void atrn_session_free(struct session *s)
{
	struct atrn_splice *a = s->atrn;
	if (!a)
		return;
	s->atrn = NULL;
	if (a->pb)
		bufferevent_free(a->pb);   /* closes fd */
	else if (a->fd >= 0)
		close(a->fd);
	if (a->deadline)
		event_free(a->deadline);
	free(a);
}

static void log_atrn(const struct session *s, const char *domains, int code, const char *detail)
{
	log_info("session=%llu event=atrn client=%s auth=%s domains=%s reply=%d%s%s", (unsigned long long)s->id,
	    s->client_addr, s->auth_id ? lq(s->auth_id) : "-", domains[0] ? lq(domains) : "*", code,
	    detail ? " detail=" : "", detail ? lq(detail) : "");
}

void cmd_atrn(struct session *s, const char *args)
{
	if (!s->odmr) {
		/* RFC 2645 1: ATRN belongs to the ODMR port, after AUTH; never on port 25. */
		session_reply(s, 502, "5.5.1", "Error: ATRN is served on the ODMR port only");
		return;
	}
	if (!s->auth_id) {
		log_atrn(s, args, 530, "not authenticated");
		session_reply(s, 530, "5.7.0", "Authentication required");
		return;
	}
	if (s->atrn) {
		session_reply(s, 503, "5.5.1", "Error: ATRN already given");
		return;
	}
	struct atrn_domains *d = xcalloc(1, sizeof(*d));
	if (atrn_parse_domains(args, d) != 0) {
		log_atrn(s, args, 501, "syntax");
		session_reply(s, 501, "5.5.4", "Syntax error in parameters");
		free(d);
		return;
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		log_warn("session=%llu event=atrn_socketpair_failed", (unsigned long long)s->id);
		session_reply(s, 451, "4.3.0", "Unable to process ATRN request now");
		free(d);
		return;
	}
	struct atrn_splice *a = xcalloc(1, sizeof(*a));
	a->fd = sv[0];
	for (size_t i = 0; i < d->n; i++) {
		size_t k = strlen(a->domains);
		snprintf(a->domains + k, sizeof(a->domains) - k, "%s%s", i ? "," : "", d->v[i]);
	}
	s->atrn = a;
	struct buf p;
	buf_init(&p, 16384);
	ipc_put_u64(&p, s->id);
	ipc_put_str(&p, s->client_addr);
	ipc_put_str(&p, s->auth_id);
	ipc_put_u32(&p, (uint32_t)d->n);
	for (size_t i = 0; i < d->n; i++)
		ipc_put_str(&p, d->v[i]);
	ipc_send(&s->sd->queue, IPC_Q_ATRN, &p, sv[1]);   /* ipc_send passes a copy */
	close(sv[1]);
	buf_free(&p);
	free(d);
	s->state = SS_WAIT;
}

/* ---- the splice ------------------------------------------------------------- */

static void splice_finish(struct session *s)
{
	struct atrn_splice *a = s->atrn;
	if (a->finishing)
		return;
	a->finishing = 1;
	log_info("session=%llu event=atrn_done client=%s auth=%s up=%llu down=%llu seconds=%lld",
	    (unsigned long long)s->id, s->client_addr, s->auth_id ? lq(s->auth_id) : "-", a->up, a->down,
	    (long long)time(NULL) - a->started);
	bufferevent_free(a->pb);
	a->pb = NULL;
	a->fd = -1;
	/* The session's own callbacks again: flush what is left (TLS close_notify included) and close. */
	session_restore_callbacks(s);
	session_close_after_reply(s);
}

/* Copy src's input to dst's output; stop reading src while dst is far behind. */
static size_t pump(struct bufferevent *src, struct bufferevent *dst)
{
	struct evbuffer *in = bufferevent_get_input(src), *out = bufferevent_get_output(dst);
	size_t n = evbuffer_get_length(in);
	evbuffer_add_buffer(out, in);
	if (evbuffer_get_length(out) >= ATRN_SPLICE_BUFFER)
		bufferevent_disable(src, EV_READ);
	return n;
}

/* One side closed: finish once the other side got everything that was for it. */
static void maybe_finish(struct session *s)
{
	struct atrn_splice *a = s->atrn;
	if (a->client_eof && evbuffer_get_length(bufferevent_get_output(a->pb)) == 0)
		splice_finish(s);
	else if (a->pair_eof && evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		splice_finish(s);
}

static void client_read(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	s->atrn->up += pump(s->bev, s->atrn->pb);
}

static void pair_read(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	s->atrn->down += pump(s->atrn->pb, s->bev);
}

static void client_written(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	if (!s->atrn->pair_eof)
		bufferevent_enable(s->atrn->pb, EV_READ);
	maybe_finish(s);
}

static void pair_written(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	if (!s->atrn->client_eof)
		bufferevent_enable(s->bev, EV_READ);
	maybe_finish(s);
}

static void side_event(struct session *s, short what, int client)
{
	struct atrn_splice *a = s->atrn;
	if (what & BEV_EVENT_TIMEOUT) {
		log_info("session=%llu event=atrn_timeout client=%s side=%s", (unsigned long long)s->id, s->client_addr,
		    client ? "customer" : "deliver");
		splice_finish(s);
		return;
	}
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	if (client) {
		a->client_eof = 1;
		bufferevent_disable(s->bev, EV_READ);
		/* the customer is gone: nothing more can reach it */
		evbuffer_drain(bufferevent_get_output(s->bev), evbuffer_get_length(bufferevent_get_output(s->bev)));
		if (what & BEV_EVENT_ERROR) {
			splice_finish(s);
			return;
		}
	} else {
		a->pair_eof = 1;
		bufferevent_disable(a->pb, EV_READ);
	}
	maybe_finish(s);
}

static void client_event(struct bufferevent *bev, short what, void *arg) { side_event(arg, what, 1); }
static void pair_event(struct bufferevent *bev, short what, void *arg) { side_event(arg, what, 0); }

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	log_info("session=%llu event=atrn_timeout client=%s side=overall", (unsigned long long)s->id, s->client_addr);
	splice_finish(s);
}

static int start_splice(struct session *s)
{
	struct atrn_splice *a = s->atrn;
	struct smtpd *sd = s->sd;
	evutil_make_socket_nonblocking(a->fd);
	a->pb = bufferevent_socket_new(sd->base, a->fd, BEV_OPT_CLOSE_ON_FREE);
	if (!a->pb)
		return -1;
	a->reversed = 1;
	a->started = (long long)time(NULL);
	struct timeval idle = { sd->cfg->data_timeout > 0 ? sd->cfg->data_timeout : 600, 0 };
	struct timeval all = { ATRN_SPLICE_MAX_SECONDS, 0 };
	bufferevent_set_timeouts(s->bev, &idle, NULL);
	bufferevent_set_timeouts(a->pb, &idle, NULL);
	bufferevent_setwatermark(s->bev, EV_READ, 0, ATRN_SPLICE_BUFFER);
	bufferevent_setwatermark(a->pb, EV_READ, 0, ATRN_SPLICE_BUFFER);
	/* write callbacks when the output is empty again: resume the other side's reading */
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
	bufferevent_setwatermark(a->pb, EV_WRITE, 0, 0);
	bufferevent_setcb(s->bev, client_read, client_written, client_event, s);
	bufferevent_setcb(a->pb, pair_read, pair_written, pair_event, s);
	a->deadline = evtimer_new(sd->base, on_deadline, s);
	evtimer_add(a->deadline, &all);
	bufferevent_enable(a->pb, EV_READ | EV_WRITE);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	/* Bytes the customer sent right after ATRN (its 220, pipelined) go first. */
	if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0)
		client_read(s->bev, s);
	return 0;
}

void atrn_queue_answered(struct smtpd *sd, uint64_t id, struct ipc_msg *m)
{
	uint32_t status = ipc_get_u32(m);
	uint64_t count = ipc_get_u64(m);
	const char *reason = ipc_get_str(m);
	if (ipc_end(m) < 0)
		return;
	struct session *s = session_find(sd, id);
	if (!s || s->state != SS_WAIT || !s->atrn || s->atrn->reversed)
		return;   /* gone (its socketpair end closed with it: deliver defers the mail), or timed out */
	char domains[sizeof(s->atrn->domains)];
	snprintf(domains, sizeof(domains), "%s", s->atrn->domains);
	if (status == ATRN_STATUS_OK) {
		session_reply(s, 250, "2.0.0", "OK now reversing the connection");
		log_atrn(s, domains, 250, NULL);
		log_info("session=%llu event=atrn_reversed client=%s auth=%s messages=%llu", (unsigned long long)s->id,
		    s->client_addr, lq(s->auth_id), (unsigned long long)count);
		if (start_splice(s) < 0) {
			atrn_session_free(s);
			session_close_after_reply(s);
		}
		return;
	}
	atrn_session_free(s);
	s->state = SS_COMMAND;
	int code;
	switch ((enum atrn_status)status) {
	case ATRN_STATUS_NOMAIL:
		code = 453;
		session_reply(s, 453, "4.2.0", "You have no mail");
		break;
	case ATRN_STATUS_REFUSED:
		code = 450;
		session_reply(s, 450, "4.7.1", "ATRN request refused%s%s", reason[0] ? ": " : "", reason);
		break;
	case ATRN_STATUS_UNABLE:
	default:
		code = 451;
		session_reply(s, 451, "4.3.0", "Unable to process ATRN request now");
		break;
	}
	log_atrn(s, domains, code, reason[0] ? reason : NULL);
	session_resume(s);
}
