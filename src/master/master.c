/*
 * master: start-up, supervision, reload and stop (see master.h for SECURITY).
 *
 * Stop order matters for invariant 1: smtpd stops first (no new acknowledgements,
 * open transactions may finish), then the queue and deliver processes.  Anything
 * already acknowledged is on disk, so even a hard kill loses nothing.  When a
 * child dies unexpectedly the whole process set is restarted (the channels
 * between them are pairwise, so a lone restart could not re-join them); queue
 * recovery at start redelivers whatever was in flight.
 */
#include "master/master.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "deliver/deliver.h"
#include "deliver/remote.h"
#include "local/resolve.h"
#include "local/vhost.h"
#include "queue/qctl_proto.h"
#include "queue/queue.h"
#include "queue/spool.h"
#include "smtp/rcpt_elsewhere.h"
#include "smtp/smtpd.h"
#include "smtp/smtpd_main.h"
#include "tls/tls.h"
#include "util/signals.h"
#include "util/log.h"
#include "util/xalloc.h"

#define MAX_LISTENERS 64
#define MAX_CHILDREN 70

struct child {
	pid_t pid;
	char name[16];
};

struct master {
	struct config *cfg;
	struct event_base *base;
	int privileged;
	uid_t uid;
	gid_t gid;
	int listen_fds[MAX_LISTENERS];
	struct listen_addr listen_addrs[MAX_LISTENERS];
	int listen_submission[MAX_LISTENERS];
	size_t nlisten;
	struct child children[MAX_CHILDREN];
	size_t nchildren;
	int stopping;
	int restarting;
	time_t restarts[5];
	size_t nrestarts;
	char *pidfile;
	struct event *ev_restart;
	int exit_status;
	SSL_CTX *tls;     /* loaded as root: the key file may be readable by root only */
};

int master_check(struct config *cfg, const char *path)
{
	struct buf errors;
	buf_init(&errors, 1 << 20);
	struct local_tables t;
	int n = local_tables_load(&t, cfg, &errors);
	n += vhost_check(cfg, &t, &errors);
	local_tables_free(&t);
	if (cfg->received_template[0]) {
		char *tp = config_path(cfg, cfg->received_template);
		char *tmpl = received_load_template(tp, &errors);
		if (!tmpl)
			n++;
		free(tmpl);
		free(tp);
	}
	struct relay_rules rr;
	char *rp = config_path(cfg, cfg->relay_rules_file);
	n += relay_load(&rr, rp, &errors);
	relay_free(&rr);
	free(rp);
	struct elsewhere_tables et;
	n += elsewhere_load(&et, cfg, &errors);
	elsewhere_free(&et);
	struct secret_table st;
	char *sp = config_path(cfg, cfg->secrets_file);
	n += secrets_load(&st, sp, &errors);
	secrets_free(&st);
	free(sp);
	n += remote_check(cfg->path, &errors);
	if (cfg->tls_cert_file[0]) {
		SSL_CTX *ctx = tls_server_context(cfg, &errors);
		if (!ctx)
			n++;
		tls_context_free(ctx);
	}
	if (getuid() == 0 && !getpwnam(cfg->user)) {
		buf_appendf(&errors, "%s: user '%s' does not exist\n", path, cfg->user);
		n++;
	}
	if (errors.len)
		fputs(buf_cstr(&errors), stderr);
	buf_free(&errors);
	return n;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

static void give(struct master *ms, const char *path)
{
	if (ms->privileged && chown(path, ms->uid, ms->gid) < 0)
		log_warn("event=chown_failed path=%s", path);
}

static void prepare_dirs(struct master *ms)
{
	struct config *cfg = ms->cfg;
	if (mkdir_p(cfg->work_dir, 0755) < 0)
		fatal("event=start_failed reason=work_dir path=%s", cfg->work_dir);
	struct spool sp;
	if (spool_open(&sp, cfg->work_dir, cfg->node_id, 1) < 0)
		fatal("event=start_failed reason=spool path=%s", cfg->work_dir);
	spool_close(&sp);
	const char *sub[] = { "queue", "queue/incoming", "queue/active", "queue/deferred", "queue/corrupt", "queue/hold",
		NULL };
	for (int i = 0; sub[i]; i++) {
		char *p = xasprintf("%s/%s", cfg->work_dir, sub[i]);
		give(ms, p);
		free(p);
	}
	char *p = xasprintf("%s/queue/active/%s", cfg->work_dir, cfg->node_id);
	give(ms, p);
	free(p);
	/* run/: the queue manager's control socket (queue_ctl.c), made after it dropped privileges. */
	p = xasprintf("%s/%s", cfg->work_dir, QCTL_DIR);
	if (mkdir(p, 0750) < 0 && errno != EEXIST)
		fatal("event=start_failed reason=run_dir path=%s", p);
	give(ms, p);
	free(p);
	/* The fixed part of the mailbox path template belongs to the mail user. */
	char *pct = strchr(cfg->mailbox_path, '%');
	if (pct && pct > cfg->mailbox_path) {
		char *prefix = xstrndup(cfg->mailbox_path, (size_t)(pct - cfg->mailbox_path));
		char *slash = strrchr(prefix, '/');
		if (slash && slash != prefix) {
			*slash = '\0';
			if (mkdir_p(prefix, 0755) == 0)
				give(ms, prefix);
			else
				log_warn("event=mailbox_dir_failed path=%s", prefix);
		}
		free(prefix);
	}
}

static void open_logs(struct master *ms)
{
	struct config *cfg = ms->cfg;
	char *dir = xasprintf("%s/log/%s", cfg->work_dir, cfg->hostname);
	if (mkdir_p(dir, 0750) < 0)
		fatal("event=start_failed reason=log_dir path=%s", dir);
	static const char *names[LOG_STREAM_COUNT] = { "main.log", "receive.log", "connect.log", "delivery.log",
		"send.log", "failure.log" };
	for (int i = 0; i < LOG_STREAM_COUNT; i++) {
		char *p = xasprintf("%s/%s", dir, names[i]);
		int fd = open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
		if (fd < 0) {
			fprintf(stderr, "tsubamed: warning: cannot open log %s: %s\n", p, strerror(errno));
		} else {
			log_set_fd((enum log_stream)i, fd);
		}
		free(p);
	}
	free(dir);
	log_set_stderr(1);
}

static void write_pidfile(struct master *ms)
{
	ms->pidfile = xasprintf("%s/tsubamed.pid", ms->cfg->work_dir);
	FILE *fp = fopen(ms->pidfile, "r");
	if (fp) {
		long pid = 0;
		if (fscanf(fp, "%ld", &pid) == 1 && pid > 0 && pid != getpid() && kill((pid_t)pid, 0) == 0)
			fatalx("event=start_failed reason=already_running pid=%ld pidfile=%s", pid, ms->pidfile);
		fclose(fp);
	}
	fp = fopen(ms->pidfile, "w");
	if (!fp)
		fatal("event=start_failed reason=pidfile path=%s", ms->pidfile);
	fprintf(fp, "%ld\n", (long)getpid());
	fclose(fp);
}

static int bind_one(struct master *ms, const struct listen_addr *la, const char *host, int v6only, int submission)
{
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	int r = getaddrinfo(host, la->port, &hints, &res);
	if (r != 0) {
		log_warnx("event=bind_failed listen=%s reason=%s", la->text, lq(gai_strerror(r)));
		return -1;
	}
	int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0) {
		freeaddrinfo(res);
		log_warn("event=bind_failed listen=%s", la->text);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (res->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
		log_warn("event=bind_failed listen=%s", la->text);
		close(fd);
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	if (ms->nlisten >= MAX_LISTENERS)
		fatalx("event=start_failed reason=too_many_listeners");
	ms->listen_fds[ms->nlisten] = fd;
	ms->listen_addrs[ms->nlisten] = *la;
	ms->listen_submission[ms->nlisten] = submission;
	ms->nlisten++;
	log_info("event=listening listen=%s submission=%s tls=%s", la->text,
	    submission == LISTEN_KIND_ODMR ? "odmr" : submission ? "yes" : "no",
	    la->implicit_tls ? "implicit" : "starttls");
	return 0;
}

static void bind_listeners(struct master *ms)
{
	struct config *cfg = ms->cfg;
	for (int sub = 0; sub < 3; sub++) {   /* LISTEN_KIND_* */
		const struct listen_addr *list = sub == LISTEN_KIND_ODMR ? cfg->odmr_listen : sub ? cfg->submission_listen :
		    cfg->listen;
		size_t n = sub == LISTEN_KIND_ODMR ? cfg->nodmr_listen : sub ? cfg->nsubmission_listen : cfg->nlisten;
		for (size_t i = 0; i < n; i++) {
			const struct listen_addr *la = &list[i];
			int r = 0;
			if (!strcmp(la->host, "*")) {
				if (cfg->ip_mode != IP_MODE_V6)
					r |= bind_one(ms, la, "0.0.0.0", 1, sub);
				if (cfg->ip_mode != IP_MODE_V4)
					r |= bind_one(ms, la, "::", 1, sub);
			} else {
				int is6 = strchr(la->host, ':') != NULL;
				if ((is6 && cfg->ip_mode == IP_MODE_V4) || (!is6 && cfg->ip_mode == IP_MODE_V6)) {
					log_warnx("event=listener_skipped listen=%s reason=ip_mode", la->text);
					continue;
				}
				r = bind_one(ms, la, la->host, 1, sub);
			}
			if (r < 0)
				fatalx("event=start_failed reason=bind listen=%s", la->text);
		}
	}
	if (ms->nlisten == 0)
		fatalx("event=start_failed reason=no_listeners");
}

static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	rlim_t want = 65536;
	rlim_t hard = rl.rlim_max;
	if (rl.rlim_max < want && getuid() == 0)
		rl.rlim_max = want;
	rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
		return;
	/* Without CAP_SYS_RESOURCE only the existing hard limit is reachable. */
	rl.rlim_max = hard;
	rl.rlim_cur = hard < want ? hard : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warn("event=rlimit_failed");
}

static void drop_privileges(struct master *ms)
{
	if (!ms->privileged)
		return;
	if (setgroups(1, &ms->gid) < 0 || setgid(ms->gid) < 0 || setuid(ms->uid) < 0)
		fatal("event=drop_privileges_failed user=%s", ms->cfg->user);
	if (setuid(0) == 0)
		fatalx("event=drop_privileges_failed user=%s reason=still_root", ms->cfg->user);
}

/* libevent's own diagnostics go to our log; after fork a child's base replaces the
 * master's as the signal owner, which libevent reports as a warning we expect. */
static void libevent_log(int severity, const char *msg)
{
	if (strstr(msg, "signals already added"))
		return;
	if (severity >= EVENT_LOG_WARN)
		log_warnx("event=libevent msg=%s", lq(msg));
	else
		log_debug("event=libevent msg=%s", lq(msg));
}

static void child_signals_default(void)
{
	signal(SIGCHLD, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* Held until the child's loop handles them: an early reload is neither lost nor fatal. */
	signals_block_lifecycle();
}

static pid_t spawn(struct master *ms, const char *name, int (*run)(struct master *, void *), void *arg,
    const int *keep, size_t nkeep)
{
	pid_t pid = fork();
	if (pid < 0)
		fatal("event=fork_failed child=%s", name);
	if (pid == 0) {
		child_signals_default();
		/* Close what this child must not hold (other channels, listeners for non-smtpd). */
		for (int fd = 3; fd < 1024; fd++) {
			int k = 0;
			for (size_t i = 0; i < nkeep; i++)
				if (keep[i] == fd)
					k = 1;
			for (int s = 0; s < LOG_STREAM_COUNT; s++)
				if (log_get_fd((enum log_stream)s) == fd)
					k = 1;
			if (!k)
				close(fd);
		}
		drop_privileges(ms);
		_exit(run(ms, arg));
	}
	if (ms->nchildren < MAX_CHILDREN) {
		ms->children[ms->nchildren].pid = pid;
		snprintf(ms->children[ms->nchildren].name, sizeof(ms->children[0].name), "%s", name);
		ms->nchildren++;
	}
	log_info("event=child_started child=%s pid=%ld", name, (long)pid);
	return pid;
}

struct spawn_args {
	int fd;
	int *fds;
	size_t n;
	int index;
};

static int run_smtpd(struct master *ms, void *arg)
{
	struct spawn_args *a = arg;
	return smtpd_main(ms->cfg, a->fd, ms->listen_fds, ms->listen_addrs, ms->listen_submission, ms->nlisten, ms->tls);
}

static int run_queue(struct master *ms, void *arg)
{
	struct spawn_args *a = arg;
	return queue_main(ms->cfg, a->fd, a->fds, a->n);
}

static int run_deliver(struct master *ms, void *arg)
{
	struct spawn_args *a = arg;
	return deliver_main(ms->cfg, a->fd, a->index);
}

static void start_children(struct master *ms)
{
	int sq[2];
	size_t nd = (size_t)ms->cfg->deliver_processes;
	int qd[64][2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sq) < 0)
		fatal("event=socketpair_failed");
	for (size_t i = 0; i < nd; i++)
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, qd[i]) < 0)
			fatal("event=socketpair_failed");
	/* Larger socket buffers let a burst of commits travel in one pass (group commit). */
	int sz = 4 * 1024 * 1024;
	setsockopt(sq[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(sq[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	setsockopt(sq[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(sq[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));

	int dfds[64];
	for (size_t i = 0; i < nd; i++)
		dfds[i] = qd[i][0];

	int keep_q[66];
	size_t nk = 0;
	keep_q[nk++] = sq[1];
	for (size_t i = 0; i < nd; i++)
		keep_q[nk++] = qd[i][0];
	struct spawn_args qa = { sq[1], dfds, nd, 0 };
	spawn(ms, "queue", run_queue, &qa, keep_q, nk);

	for (size_t i = 0; i < nd; i++) {
		char name[16];
		snprintf(name, sizeof(name), "deliver%u", (unsigned)(i % 100));
		struct spawn_args da = { qd[i][1], NULL, 0, (int)i };
		int keep = qd[i][1];
		spawn(ms, name, run_deliver, &da, &keep, 1);
	}

	int keep_s[MAX_LISTENERS + 1];
	size_t ns = 0;
	keep_s[ns++] = sq[0];
	for (size_t i = 0; i < ms->nlisten; i++)
		keep_s[ns++] = ms->listen_fds[i];
	struct spawn_args sa = { sq[0], NULL, 0, 0 };
	spawn(ms, "smtpd", run_smtpd, &sa, keep_s, ns);

	close(sq[0]);
	close(sq[1]);
	for (size_t i = 0; i < nd; i++) {
		close(qd[i][0]);
		close(qd[i][1]);
	}
}

static struct child *find_child(struct master *ms, const char *name)
{
	for (size_t i = 0; i < ms->nchildren; i++)
		if (!strcmp(ms->children[i].name, name))
			return &ms->children[i];
	return NULL;
}

static void signal_all(struct master *ms, int sig)
{
	for (size_t i = 0; i < ms->nchildren; i++)
		kill(ms->children[i].pid, sig);
}

static void on_restart(evutil_socket_t fd, short what, void *arg)
{
	struct master *ms = arg;
	ms->restarting = 0;
	log_info("event=restarting_children");
	start_children(ms);
}

static void on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	struct master *ms = arg;
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		size_t i;
		for (i = 0; i < ms->nchildren; i++)
			if (ms->children[i].pid == pid)
				break;
		if (i == ms->nchildren)
			continue;
		char name[16];
		snprintf(name, sizeof(name), "%s", ms->children[i].name);
		ms->children[i] = ms->children[--ms->nchildren];
		if (WIFSIGNALED(status))
			log_info("event=child_exited child=%s pid=%ld signal=%d", name, (long)pid, WTERMSIG(status));
		else
			log_info("event=child_exited child=%s pid=%ld status=%d", name, (long)pid, WEXITSTATUS(status));
		if (ms->stopping) {
			/* smtpd gone: nothing new can be acknowledged; stop the queue, then the deliver processes. */
			if (!strcmp(name, "smtpd")) {
				struct child *q = find_child(ms, "queue");
				if (q)
					kill(q->pid, SIGTERM);
				else
					signal_all(ms, SIGTERM);
			} else if (!strcmp(name, "queue")) {
				signal_all(ms, SIGTERM);
			}
			if (ms->nchildren == 0)
				event_base_loopexit(ms->base, NULL);
			continue;
		}
		if (!ms->restarting) {
			log_warnx("event=child_died child=%s action=restart_all", name);
			ms->restarting = 1;
			signal_all(ms, SIGTERM);
		}
		if (ms->nchildren == 0) {
			time_t now = time(NULL);
			if (ms->nrestarts == 5 && now - ms->restarts[0] < 60) {
				log_warnx("event=giving_up reason=restart_loop");
				ms->exit_status = 1;
				event_base_loopexit(ms->base, NULL);
				return;
			}
			if (ms->nrestarts == 5) {
				memmove(ms->restarts, ms->restarts + 1, 4 * sizeof(time_t));
				ms->nrestarts = 4;
			}
			ms->restarts[ms->nrestarts++] = now;
			struct timeval tv = { 1, 0 };
			evtimer_add(ms->ev_restart, &tv);
		}
	}
}

static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
	struct master *ms = arg;
	struct config cfg;
	struct buf errors;
	buf_init(&errors, 1 << 20);
	int n = config_load(&cfg, ms->cfg->path, &errors);
	if (n == 0) {
		struct local_tables t;
		n = local_tables_load(&t, &cfg, &errors);
		local_tables_free(&t);
	}
	if (n) {
		log_warnx("event=reload_refused errors=%s", lq(buf_cstr(&errors)));
	} else {
		log_info("event=reload");
		signal_all(ms, SIGHUP);
	}
	config_free(&cfg);
	buf_free(&errors);
}

static void on_sigterm(evutil_socket_t sig, short what, void *arg)
{
	struct master *ms = arg;
	if (ms->stopping)
		return;
	ms->stopping = 1;
	log_info("event=stopping");
	evtimer_del(ms->ev_restart);
	struct child *s = find_child(ms, "smtpd");
	if (s)
		kill(s->pid, SIGTERM);
	else
		signal_all(ms, SIGTERM);
	if (ms->nchildren == 0)
		event_base_loopexit(ms->base, NULL);
}

int master_run(struct config *cfg)
{
	struct master ms;
	memset(&ms, 0, sizeof(ms));
	ms.cfg = cfg;
	log_set_process("master");
	log_set_debug(cfg->debug);
	if (getuid() == 0) {
		struct passwd *pw = getpwnam(cfg->user);
		if (!pw)
			fatalx("event=start_failed reason=no_such_user user=%s", cfg->user);
		ms.privileged = 1;
		ms.uid = pw->pw_uid;
		ms.gid = pw->pw_gid;
	}
	umask(022);
	raise_fd_limit();
	open_logs(&ms);
	prepare_dirs(&ms);
	write_pidfile(&ms);
	bind_listeners(&ms);
	if (cfg->tls_cert_file[0]) {
		struct buf errors;
		buf_init(&errors, 16 * 1024);
		ms.tls = tls_server_context(cfg, &errors);
		if (!ms.tls)
			fatalx("event=start_failed reason=tls errors=%s", lq(buf_cstr(&errors)));
		buf_free(&errors);
	}
	signal(SIGPIPE, SIG_IGN);

	event_set_log_callback(libevent_log);
	ms.base = event_base_new();
	if (!ms.base)
		fatalx("event=start_failed reason=event_base");
	struct event *e_chld = evsignal_new(ms.base, SIGCHLD, on_sigchld, &ms);
	struct event *e_hup = evsignal_new(ms.base, SIGHUP, on_sighup, &ms);
	struct event *e_term = evsignal_new(ms.base, SIGTERM, on_sigterm, &ms);
	struct event *e_int = evsignal_new(ms.base, SIGINT, on_sigterm, &ms);
	ms.ev_restart = evtimer_new(ms.base, on_restart, &ms);
	event_add(e_chld, NULL);
	event_add(e_hup, NULL);
	event_add(e_term, NULL);
	event_add(e_int, NULL);

	start_children(&ms);
	log_info("event=started hostname=%s node=%s work_dir=%s listeners=%zu user=%s", cfg->hostname, cfg->node_id,
	    cfg->work_dir, ms.nlisten, ms.privileged ? cfg->user : "(unchanged)");
	event_base_dispatch(ms.base);

	for (size_t i = 0; i < ms.nlisten; i++)
		close(ms.listen_fds[i]);
	unlink(ms.pidfile);
	free(ms.pidfile);
	event_free(e_chld);
	event_free(e_hup);
	event_free(e_term);
	event_free(e_int);
	event_free(ms.ev_restart);
	event_base_free(ms.base);
	tls_context_free(ms.tls);
	log_info("event=stopped status=%d", ms.exit_status);
	return ms.exit_status;
}
