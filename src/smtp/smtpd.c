/*
 * smtpd: the receive process — accepts connections on the listeners the master
 * bound, runs every session in one libevent loop, and talks to the queue.
 *
 * SECURITY: runs as the unprivileged mail user; parses all network input; holds
 * no spool directory rights of its own beyond writing the one file descriptor
 * the queue passes for each message.  A SIGHUP re-reads the configuration and
 * tables (a bad file keeps the old ones); SIGTERM stops accepting, says 421 to
 * idle sessions and lets open transactions finish for shutdown_timeout seconds.
 */
#include "smtp/smtpd_main.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dns/dns.h"
#include "local/reload.h"
#include "smtp/rcpt_elsewhere.h"
#include "smtp/smtpd.h"
#include "tls/tls.h"
#include "util/log.h"
#include "util/signals.h"
#include "util/xalloc.h"
#include "verify/verify.h"

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;
	/* Accept a bounded batch per wakeup so one busy listener cannot starve the rest. */
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int c = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (c < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED && errno != EINTR)
				log_warn("event=accept_failed listen=%s", l->addr.text);
			return;
		}
		session_start(l->sd, c, (struct sockaddr *)&ss, len, l);
	}
}

static void on_queue_msg(struct ipc_channel *ch, struct ipc_msg *m, void *arg)
{
	struct smtpd *sd = arg;
	uint64_t id = ipc_get_u64(m);
	struct session *s;
	switch (m->type) {
	case IPC_Q_CREATE_OK: {
		const char *qid = ipc_get_str(m);
		if (ipc_end(m) < 0 || m->fd < 0) {
			if (m->fd >= 0)
				close(m->fd);
			if ((s = session_find(sd, id)))
				data_queue_create_failed(s);
			return;
		}
		s = session_find(sd, id);
		if (!s) {
			struct buf p;
			buf_init(&p, 256);
			ipc_put_str(&p, qid);
			ipc_send(&sd->queue, IPC_Q_ABORT, &p, -1);
			buf_free(&p);
			close(m->fd);
			return;
		}
		data_queue_created(s, qid, m->fd);
		return;
	}
	case IPC_Q_CREATE_FAIL:
		if (ipc_end(m) == 0 && (s = session_find(sd, id)))
			data_queue_create_failed(s);
		return;
	case IPC_Q_COMMIT_OK:
	case IPC_Q_COMMIT_FAIL: {
		const char *qid = ipc_get_str(m);
		const char *why = m->type == IPC_Q_COMMIT_FAIL ? ipc_get_str(m) : "";
		if (ipc_end(m) < 0)
			return;
		s = session_find(sd, id);
		if (!s) {
			if (m->type == IPC_Q_COMMIT_OK)
				log_info("qid=%s event=committed_without_reply reason=client_gone", qid);
			return;
		}
		data_queue_committed(s, m->type == IPC_Q_COMMIT_OK, why);
		return;
	}
	case IPC_Q_ETRN_RESULT:
		etrn_queue_answered(sd, id, m);
		break;
	case IPC_Q_ATRN_RESULT:
		atrn_queue_answered(sd, id, m);
		return;
	default:
		log_warnx("event=ipc_unexpected type=%u peer=queue", m->type);
		if (m->fd >= 0)
			close(m->fd);
	}
}

static void on_queue_close(struct ipc_channel *ch, void *arg)
{
	struct smtpd *sd = arg;
	/* Without the queue nothing can be acknowledged: stop; the master restarts us. */
	log_warnx("event=queue_lost action=exit");
	event_base_loopexit(sd->base, NULL);
}

/* Everything a session consults, loaded together so a reload is all or nothing. */
struct loaded {
	struct local_tables *tables;
	struct relay_rules *relay;
	struct secret_table *secrets;
	char *tmpl;
	struct elsewhere_tables *elsewhere;
};

static void loaded_free(struct loaded *l)
{
	if (l->tables) {
		local_tables_free(l->tables);
		free(l->tables);
	}
	if (l->relay) {
		relay_free(l->relay);
		free(l->relay);
	}
	if (l->secrets) {
		secrets_free(l->secrets);
		free(l->secrets);
	}
	free(l->tmpl);
	if (l->elsewhere) {
		elsewhere_free(l->elsewhere);
		free(l->elsewhere);
	}
	memset(l, 0, sizeof(*l));
}

static int load_all(struct config *cfg, struct loaded *l, const char *path)
{
	struct buf errors;
	buf_init(&errors, 64 * 1024);
	memset(l, 0, sizeof(*l));
	l->tables = xcalloc(1, sizeof(*l->tables));
	l->relay = xcalloc(1, sizeof(*l->relay));
	l->secrets = xcalloc(1, sizeof(*l->secrets));
	int n = local_load(cfg, path, l->tables, &errors);
	if (n == 0) {
		char *rp = config_path(cfg, cfg->relay_rules_file);
		char *sp = config_path(cfg, cfg->secrets_file);
		n += relay_load(l->relay, rp, &errors);
		n += secrets_load(l->secrets, sp, &errors);
		free(rp);
		free(sp);
		l->elsewhere = xcalloc(1, sizeof(*l->elsewhere));
		n += elsewhere_load(l->elsewhere, cfg, &errors);
	}
	char **tmpl = &l->tmpl;
	if (n == 0) {
		char *tp = cfg->received_template[0] ? config_path(cfg, cfg->received_template) : NULL;
		*tmpl = received_load_template(tp, &errors);
		free(tp);
		if (!*tmpl)
			n++;
	}
	if (n)
		log_warnx("event=reload_failed errors=%s", lq(buf_cstr(&errors)));
	buf_free(&errors);
	if (n)
		loaded_free(l);
	return n;
}

static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
	struct smtpd *sd = arg;
	struct config *cfg = xcalloc(1, sizeof(*cfg));
	struct loaded l;
	if (load_all(cfg, &l, sd->cfg->path) != 0) {
		config_free(cfg);
		free(cfg);
		return;
	}
	/* TLS settings and listeners need a restart; tables, rules and limits take effect now. */
	struct loaded old = { sd->tables, sd->relay, sd->secrets, sd->received_template, sd->elsewhere };
	loaded_free(&old);
	config_free(sd->cfg);
	free(sd->cfg);
	sd->cfg = cfg;
	sd->tables = l.tables;
	sd->relay = l.relay;
	sd->secrets = l.secrets;
	sd->received_template = l.tmpl;
	sd->elsewhere = l.elsewhere;
	/* Probe results may describe tables that just changed: forget them (and take the new limits). */
	elsewhere_verifier_configure(sd->verifier, cfg);
	if (cfg->dnsbl.n && !sd->dns) {
		/* Block lists switched on by this reload; dns_servers changes need a restart. */
		sd->dns = dns_new(sd->base, cfg->dns_servers.v, cfg->dns_servers.n, (int)cfg->dns_timeout * 1000);
		if (!sd->dns)
			log_warnx("event=dnsbl_unavailable reason=dns_init");
	}
	log_info("event=reloaded accounts=%zu domains=%zu aliases=%zu relay_rules=%zu", l.tables->accounts.n,
	    l.tables->domains.n, l.tables->aliases.n, l.relay->n);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct smtpd *sd = arg;
	log_info("event=shutdown_deadline sessions=%zu", sd->nsessions);
	while (!TAILQ_EMPTY(&sd->sessions))
		session_destroy(TAILQ_FIRST(&sd->sessions));
	event_base_loopexit(sd->base, NULL);
}

static void on_sigterm(evutil_socket_t sig, short what, void *arg)
{
	struct smtpd *sd = arg;
	if (sd->stopping)
		return;
	sd->stopping = 1;
	log_info("event=stopping sessions=%zu", sd->nsessions);
	for (size_t i = 0; i < sd->nlisteners; i++) {
		event_del(sd->listeners[i].ev);
		close(sd->listeners[i].fd);
		sd->listeners[i].fd = -1;
	}
	session_shutdown_idle(sd);
	if (sd->nsessions == 0) {
		event_base_loopexit(sd->base, NULL);
		return;
	}
	struct timeval tv = { sd->cfg->shutdown_timeout, 0 };
	sd->ev_stop_deadline = evtimer_new(sd->base, on_deadline, sd);
	evtimer_add(sd->ev_stop_deadline, &tv);
}

int smtpd_main(struct config *cfg, int queue_fd, const int *listen_fds, const struct listen_addr *addrs,
    const int *submission, size_t nlisten, SSL_CTX *tls)
{
	struct smtpd sd;
	memset(&sd, 0, sizeof(sd));
	log_set_process("smtpd");
	signal(SIGPIPE, SIG_IGN);
	sd.cfg = cfg;
	struct loaded ld;
	if (load_all(cfg, &ld, NULL) != 0)
		fatalx("event=start_failed reason=tables");
	sd.tables = ld.tables;
	sd.relay = ld.relay;
	sd.secrets = ld.secrets;
	sd.received_template = ld.tmpl;
	sd.elsewhere = ld.elsewhere;
	TAILQ_INIT(&sd.sessions);
	sd.base = event_base_new();
	if (!sd.base)
		fatalx("event=start_failed reason=event_base");
	sd.tls = tls;
	sd.verifier = elsewhere_verifier_new(sd.base, cfg);
	if (cfg->dnsbl.n) {
		sd.dns = dns_new(sd.base, cfg->dns_servers.v, cfg->dns_servers.n, (int)cfg->dns_timeout * 1000);
		if (!sd.dns)
			fatalx("event=start_failed reason=dns");
	}
	ipc_channel_init(&sd.queue, sd.base, queue_fd, "queue", on_queue_msg, on_queue_close, &sd);
	sd.listeners = xcalloc(nlisten ? nlisten : 1, sizeof(*sd.listeners));
	sd.nlisteners = nlisten;
	for (size_t i = 0; i < nlisten; i++) {
		struct listener *l = &sd.listeners[i];
		l->fd = listen_fds[i];
		l->sd = &sd;
		l->addr = addrs[i];
		l->submission = submission[i] == LISTEN_KIND_SUBMISSION;
		l->odmr = submission[i] == LISTEN_KIND_ODMR;
		fcntl(l->fd, F_SETFL, fcntl(l->fd, F_GETFL) | O_NONBLOCK);
		l->ev = event_new(sd.base, l->fd, EV_READ | EV_PERSIST, on_accept, l);
		event_add(l->ev, NULL);
	}
	sd.ev_sighup = evsignal_new(sd.base, SIGHUP, on_sighup, &sd);
	sd.ev_sigterm = evsignal_new(sd.base, SIGTERM, on_sigterm, &sd);
	sd.ev_sigint = evsignal_new(sd.base, SIGINT, on_sigterm, &sd);
	event_add(sd.ev_sighup, NULL);
	event_add(sd.ev_sigterm, NULL);
	event_add(sd.ev_sigint, NULL);
	signals_unblock_lifecycle();
	log_info("event=started listeners=%zu", nlisten);
	event_base_dispatch(sd.base);
	log_info("event=stopped");
	while (!TAILQ_EMPTY(&sd.sessions))
		session_destroy(TAILQ_FIRST(&sd.sessions));
	for (size_t i = 0; i < sd.nlisteners; i++) {
		event_free(sd.listeners[i].ev);
		if (sd.listeners[i].fd >= 0)
			close(sd.listeners[i].fd);
	}
	free(sd.listeners);
	free(sd.index);
	ipc_channel_close(&sd.queue);
	if (sd.ev_stop_deadline)
		event_free(sd.ev_stop_deadline);
	event_free(sd.ev_sighup);
	event_free(sd.ev_sigterm);
	event_free(sd.ev_sigint);
	if (sd.dns)
		dns_free(sd.dns);
	verifier_free(sd.verifier);   /* after the sessions: they cancelled their requests */
	event_base_free(sd.base);
	struct loaded fin = { sd.tables, sd.relay, sd.secrets, sd.received_template, sd.elsewhere };
	loaded_free(&fin);
	/* the TLS context belongs to the master */
	/* cfg may have been replaced by a reload: the master's copy is separate. */
	if (sd.cfg != cfg) {
		config_free(sd.cfg);
		free(sd.cfg);
	}
	return 0;
}
