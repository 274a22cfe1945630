/*
 * link: the dial-up link, its queue runs, pull requests and hold-open window
 * (see link.h for what happens when; docs/dialup.md for the administrator's
 * view).
 *
 * Owns: struct link (hung on q->link), the run/link file, the timers (queue
 * timer, link check, window end, pull retry) and the link check process.  The
 * messages stay queue.c's: a queue run only sets next_try of remote
 * recipients in memory and moves messages to the ready list, through the
 * queue_* functions of queue.h, as tsubamectl queue flush does.
 */
#include "queue/link.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "deliver/etrn_proto.h"
#include "queue/linkcheck.h"
#include "queue/queue.h"
#include "util/log.h"
#include "util/xalloc.h"

struct link {
	struct queue *q;
	struct link_state st;
	int dirfd;                 /* work_dir/run, or -1 (then the state is not kept across restarts) */
	int was_dialup;            /* dialup as of the last start or reload */
	/* what arrived since the link came up, until the window closed (or the link went down) */
	int counting;
	long long window_end;      /* 0: no window open */
	long long received, delivered, sent;
	struct event *ev_window;
	struct event *ev_timer;    /* queue_timer */
	/* link_check_command */
	struct linkcheck *check;
	struct event *ev_check;
	int check_last;            /* enum linkcheck_result of the last answer; LINKCHECK_NONE: none yet */
	/* link_up_command: run at every link-up (e.g. tsubamectl atrn, E6) */
	struct linkcheck *upcmd;
	/* pull requests of the current link-up */
	uint32_t pull_id;          /* of the session in flight (results of older ones are only logged) */
	int pull_inflight;
	int pull_tries;
	char **pull;               /* arguments waiting to be sent (first time or again) */
	size_t npull;
	char **asked;              /* the arguments of the session in flight, in order */
	size_t nasked;
	long long etrn_ok, etrn_failed;
	struct event *ev_pull;
	int pull_after_push;       /* the pull request waits for our push to finish (link_remote_idle) */
};

static const char *const by_names[] = { "start", "tsubamectl", "command" };

const char *link_by_name(enum link_by by)
{
	return (unsigned)by <= LINK_BY_CHECK ? by_names[by] : "?";
}

/* ---- the state file ------------------------------------------------------ */

int link_state_parse(const char *buf, size_t len, struct link_state *st)
{
	memset(st, 0, sizeof(*st));
	if (len == 0 || len > 64 || buf[len - 1] != '\n' || memchr(buf, '\n', len) != buf + len - 1)
		return -1;
	char line[65];
	memcpy(line, buf, len - 1);
	line[len - 1] = '\0';
	char *sp1 = strchr(line, ' ');
	char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || strchr(sp2 + 1, ' '))
		return -1;
	*sp1 = *sp2 = '\0';
	if (!strcmp(line, "up"))
		st->up = 1;
	else if (strcmp(line, "down") != 0)
		return -1;
	const char *t = sp1 + 1;
	size_t tl = strlen(t);
	if (tl == 0 || tl > 12 || (tl > 1 && t[0] == '0'))
		return -1;
	for (size_t i = 0; i < tl; i++)
		if (t[i] < '0' || t[i] > '9')
			return -1;
	st->since = strtoll(t, NULL, 10);
	for (int b = LINK_BY_START; b <= LINK_BY_CHECK; b++)
		if (!strcmp(sp2 + 1, by_names[b])) {
			st->by = (enum link_by)b;
			return 0;
		}
	return -1;
}

int link_state_format(const struct link_state *st, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "%s %lld %s\n", st->up ? "up" : "down", st->since < 0 ? 0 : st->since,
	    link_by_name(st->by));
	return n < 0 || (size_t)n >= outlen ? -1 : n;
}

static void state_read(struct link *l)
{
	char buf[80];
	memset(&l->st, 0, sizeof(l->st));
	if (l->dirfd < 0)
		return;
	int fd = openat(l->dirfd, LINK_STATE_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno != ENOENT)
			log_warn("event=link_state_unreadable");
		return;
	}
	ssize_t n = read(fd, buf, sizeof(buf));
	close(fd);
	if (n < 0 || link_state_parse(buf, (size_t)n, &l->st) < 0) {
		log_warnx("event=link_state_unreadable reason=format action=down");
		memset(&l->st, 0, sizeof(l->st));
	}
}

/* Durable: a crash after the answer keeps the new state. */
static int state_write(struct link *l)
{
	char buf[80];
	int n = link_state_format(&l->st, buf, sizeof(buf));
	if (l->dirfd < 0 || n < 0)
		return -1;
	int fd = openat(l->dirfd, LINK_STATE_FILE ".tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
	if (fd < 0)
		goto fail;
	if (write(fd, buf, (size_t)n) != n || fsync(fd) < 0) {
		close(fd);
		goto fail;
	}
	close(fd);
	if (renameat(l->dirfd, LINK_STATE_FILE ".tmp", l->dirfd, LINK_STATE_FILE) < 0 || fsync(l->dirfd) < 0)
		goto fail;
	return 0;
fail:
	log_warn("event=link_state_write_failed");
	return -1;
}

/* ---- the queue ----------------------------------------------------------- */

static long long now_s(void)
{
	return (long long)time(NULL);
}

int link_holds_remote(const struct queue *q)
{
	return q->cfg->dialup && q->link && !q->link->st.up;
}

static size_t remote_pending(const struct qenvelope *e)
{
	size_t n = 0;
	for (size_t i = 0; i < e->nrcpt; i++)
		n += e->rcpt[i].state == RCPT_REMOTE;
	return n;
}

static long long count_waiting(struct queue *q)
{
	long long n = 0;
	struct qmsg *m;
	TAILQ_FOREACH(m, &q->ready, entry)
		n += (long long)remote_pending(&m->env);
	TAILQ_FOREACH(m, &q->waiting, entry)
		n += (long long)remote_pending(&m->env);
	return n;
}

struct run_ctx {
	struct queue *q;
	long long messages, rcpts, claimed;
};

/* A deferred/ file (any node's) with a remote recipient waiting: claimed and admitted, due now. */
static void claim_remote(void *arg, const char *qid)
{
	struct run_ctx *rc = arg;
	struct queue *q = rc->q;
	struct qenvelope env;
	char why[256];
	memset(&env, 0, sizeof(env));
	int fd = spool_open_file(&q->spool, SPOOL_DEFERRED, qid, O_RDWR);
	if (fd < 0)
		return;
	if (qfile_parse(fd, &env, why, sizeof(why)) < 0 || remote_pending(&env) == 0 || spool_claim(&q->spool, qid) < 0) {
		qenvelope_free(&env);
		close(fd);
		return;
	}
	long long now = now_s();
	for (size_t i = 0; i < env.nrcpt; i++)
		if (env.rcpt[i].state == RCPT_REMOTE && env.rcpt[i].next_try > now)
			env.rcpt[i].next_try = now;
	rc->claimed++;
	queue_admit(q, qid, fd, &env); /* counted below with the others */
}

/*
 * The push (a queue run): every remote recipient waiting is due now; messages
 * asleep on a timer are woken.  One with deliveries in flight is left alone:
 * its next finish_round() finds its recipients due.  In memory only, like
 * tsubamectl queue flush.
 */
static void queue_run(struct link *l, const char *why, long long *messages, long long *rcpts)
{
	struct queue *q = l->q;
	struct run_ctx rc = { q, 0, 0, 0 };
	spool_list(&q->spool, SPOOL_DEFERRED, claim_remote, &rc);
	long long now = now_s();
	struct qmsg **v = xcalloc(q->nmessages + 1, sizeof(*v));
	size_t n = 0;
	struct qmsg *m;
	TAILQ_FOREACH(m, &q->ready, entry)
		if (n < q->nmessages)
			v[n++] = m;
	TAILQ_FOREACH(m, &q->waiting, entry)
		if (n < q->nmessages)
			v[n++] = m;
	for (size_t i = 0; i < n; i++) {
		m = v[i];
		size_t k = m->hold_wanted ? 0 : remote_pending(&m->env);
		if (k == 0)
			continue;
		for (size_t r = 0; r < m->env.nrcpt; r++)
			if (m->env.rcpt[r].state == RCPT_REMOTE && m->env.rcpt[r].next_try > now)
				m->env.rcpt[r].next_try = now;
		rc.messages++;
		rc.rcpts += (long long)k;
		if (m->inflight == 0 && !m->on_ready) {
			evtimer_del(m->timer);
			queue_make_ready(q, m);
		}
	}
	free(v);
	queue_dispatch(q);
	if (rc.messages || strcmp(why, "timer") != 0)
		log_info("event=queue_run reason=%s messages=%lld rcpts=%lld claimed=%lld", why, rc.messages, rc.rcpts,
		    rc.claimed);
	if (messages)
		*messages = rc.messages;
	if (rcpts)
		*rcpts = rc.rcpts;
}

/* ---- timers -------------------------------------------------------------- */

static void arm_timer(struct event *ev, long seconds)
{
	struct timeval tv = { (time_t)seconds, 0 };
	evtimer_add(ev, &tv);
}

static void arm_queue_timer(struct link *l)
{
	const struct config *c = l->q->cfg;
	evtimer_del(l->ev_timer);
	if (c->dialup && l->st.up && c->queue_timer > 0)
		arm_timer(l->ev_timer, c->queue_timer);
}

static void on_queue_timer(evutil_socket_t fd, short what, void *arg)
{
	struct link *l = arg;
	if (l->q->cfg->dialup && l->st.up)
		queue_run(l, "timer", NULL, NULL);
	arm_queue_timer(l);
}

/* The report of what arrived since the link came up. */
static void window_close(struct link *l, const char *reason)
{
	if (!l->counting)
		return;
	l->counting = 0;
	l->window_end = 0;
	evtimer_del(l->ev_window);
	log_info("event=link_window_closed reason=%s received=%lld delivered=%lld sent=%lld waiting=%lld etrn_ok=%lld "
	    "etrn_failed=%lld", reason, l->received, l->delivered, l->sent, count_waiting(l->q), l->etrn_ok,
	    l->etrn_failed);
}

static void on_window(evutil_socket_t fd, short what, void *arg)
{
	window_close(arg, "time");
}

void link_note_received(struct queue *q, size_t messages)
{
	if (q->link && q->link->counting)
		q->link->received += (long long)messages;
}

void link_note_delivered(struct queue *q, int remote)
{
	if (q->link && q->link->counting) {
		if (remote)
			q->link->sent++;
		else
			q->link->delivered++;
	}
}

/* ---- pull requests ------------------------------------------------------- */

static void free_args(char ***v, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		free((*v)[i]);
	free(*v);
	*v = NULL;
	*n = 0;
}

/* Nothing more to send or retry; a session in flight is forgotten (its answers are only logged). */
static void pull_clear(struct link *l)
{
	free_args(&l->pull, &l->npull);
	free_args(&l->asked, &l->nasked);
	l->pull_inflight = 0;
	l->pull_after_push = 0;
	evtimer_del(l->ev_pull);
}

static void pull_send(struct link *l)
{
	struct queue *q = l->q;
	const struct config *c = q->cfg;
	if (l->pull_inflight || l->npull == 0 || !l->st.up)
		return;
	struct deliver_worker *w = NULL;
	for (size_t i = 0; i < q->nworkers && !w; i++)
		if (q->workers[i].alive)
			w = &q->workers[i];
	if (!w || !c->etrn_server[0]) {
		arm_timer(l->ev_pull, c->retry_interval);
		return;
	}
	l->pull_id++;
	l->pull_tries++;
	l->pull_inflight = 1;
	l->asked = l->pull;
	l->nasked = l->npull;
	l->pull = NULL;
	l->npull = 0;
	struct buf p;
	buf_init(&p, IPC_MAX_MESSAGE);
	ipc_put_u32(&p, l->pull_id);
	ipc_put_str(&p, c->etrn_server);
	ipc_put_u32(&p, (uint32_t)c->etrn_tls);
	ipc_put_u32(&p, (uint32_t)l->nasked);
	for (size_t i = 0; i < l->nasked; i++)
		ipc_put_str(&p, l->asked[i]);
	ipc_send(&w->ch, IPC_D_ETRN, &p, -1);
	buf_free(&p);
	log_info("event=etrn_start server=%s args=%zu try=%d/%d worker=%s", lq(c->etrn_server), l->nasked, l->pull_tries,
	    LINK_PULL_TRIES, w->name);
}

static void on_pull_retry(evutil_socket_t fd, short what, void *arg)
{
	struct link *l = arg;
	if (l->pull_after_push)
		log_info("event=etrn_push_wait_over waiting=%u", l->q->remote_inflight);
	l->pull_after_push = 0;
	pull_send(l);
}

/*
 * E6: a dynamic-IP site collects its mail with ATRN when the link comes up:
 * link_up_command (typically "tsubamectl -c CONF atrn ISP site.test") runs once
 * per link-up, as the mail user, bounded by link_up_command_timeout.  Also the
 * manual's "run a program after connecting" for anything else.
 */
static void on_upcmd_result(void *arg, enum linkcheck_result r, const char *detail)
{
	(void)arg;
	log_info("event=link_up_command result=%s detail=%s", r == LINKCHECK_UP ? "ok" : r == LINKCHECK_DOWN ? "failed" :
	    "no_answer", lq(detail));
}

static void upcmd_start(struct link *l)
{
	const struct config *c = l->q->cfg;
	if (!c->link_up_command[0])
		return;
	if (linkcheck_run(l->upcmd, c->link_up_command, (unsigned)c->link_up_command_timeout) < 0)
		log_warnx("event=link_up_command result=skipped detail=\"still running from the last link-up\"");
	else
		log_info("event=link_up_command_start");
}

void link_remote_idle(struct queue *q)
{
	struct link *l = q->link;
	if (!l || !l->pull_after_push)
		return;
	l->pull_after_push = 0;
	evtimer_del(l->ev_pull);
	pull_send(l);
}

static void pull_start(struct link *l)
{
	const struct config *c = l->q->cfg;
	pull_clear(l);
	l->pull_tries = 0;
	l->etrn_ok = l->etrn_failed = 0;
	if (!c->etrn_server[0] || c->etrn_domains.n == 0)
		return;
	l->pull = xcalloc(c->etrn_domains.n, sizeof(char *));
	for (size_t i = 0; i < c->etrn_domains.n; i++)
		l->pull[l->npull++] = xstrdup(c->etrn_domains.v[i]);
	/*
	 * Seed 001's order: push, then pull.  Asking while the ISP is still taking
	 * our push lets both meet in its queue manager: Postfix picked the flushed
	 * message up with the pushed mail's scan, without the flush's override of
	 * defer_transports, and held it again.  So the ETRN waits until no remote
	 * delivery is in flight, at most LINK_PULL_PUSH_WAIT seconds.
	 */
	if (l->q->remote_inflight > 0) {
		l->pull_after_push = 1;
		arm_timer(l->ev_pull, LINK_PULL_PUSH_WAIT);
		return;
	}
	pull_send(l);
}

void link_etrn_result(struct queue *q, struct ipc_msg *im)
{
	struct link *l = q->link;
	uint32_t id = ipc_get_u32(im);
	uint32_t ran = ipc_get_u32(im);
	uint32_t permanent = ipc_get_u32(im);
	const char *detail = ipc_get_str(im);
	const char *peer = ipc_get_str(im);
	uint32_t offered = ipc_get_u32(im);
	uint32_t tls = ipc_get_u32(im);
	uint32_t n = ipc_get_u32(im);
	if (n > 1000)
		im->bad = 1;
	int *codes = xcalloc(n && !im->bad ? n : 1, sizeof(int));
	const char **texts = xcalloc(n && !im->bad ? n : 1, sizeof(char *));
	for (uint32_t i = 0; i < n && !im->bad; i++) {
		codes[i] = (int)ipc_get_u32(im);
		texts[i] = ipc_get_str(im);
	}
	if (ipc_end(im) < 0 || !l)
		goto done;
	if (id != l->pull_id || !l->pull_inflight || n != l->nasked) {
		/* the link went down or up again meanwhile: a new round counts for itself */
		log_info("event=etrn_result_stale id=%u peer=%s args=%u", id, lq(peer), n);
		goto done;
	}
	l->pull_inflight = 0;
	if (!ran || detail[0])
		log_warnx("event=etrn_session peer=%s ran=%u offered=%u tls=%u permanent=%u detail=%s", lq(peer), ran, offered,
		    tls, permanent, lq(detail));
	/* What failed temporarily (or got no answer) goes back on the list for the next try. */
	for (uint32_t i = 0; i < n; i++) {
		char *arg = l->asked[i];
		l->asked[i] = NULL;
		enum etrn_outcome o = codes[i] ? etrn_outcome_of(codes[i]) : ETRN_TEMP;
		if (codes[i])
			log_info("event=etrn peer=%s arg=%s code=%d outcome=%s meaning=%s tls=%u text=%s", lq(peer), lq(arg),
			    codes[i], etrn_outcome_name(o), lq(etrn_code_meaning(codes[i])), tls, lq(texts[i]));
		if (o == ETRN_ACCEPTED) {
			l->etrn_ok++;
			free(arg);
		} else if (o == ETRN_TEMP && !permanent) {
			l->pull = xreallocarray(l->pull, l->npull + 1, sizeof(char *));
			l->pull[l->npull++] = arg;
		} else {
			l->etrn_failed++;
			free(arg);
		}
	}
	free_args(&l->asked, &l->nasked);
	if (l->npull == 0) {
		if (permanent)
			log_warnx("event=etrn_given_up args=%u tries=%d reason=permanent", n, l->pull_tries);
		goto done;
	}
	if (!l->st.up || l->pull_tries >= LINK_PULL_TRIES) {
		log_warnx("event=etrn_given_up args=%zu tries=%d reason=%s", l->npull, l->pull_tries,
		    !l->st.up ? "link_down" : "tries");
		l->etrn_failed += (long long)l->npull;
		free_args(&l->pull, &l->npull);
		goto done;
	}
	arm_timer(l->ev_pull, q->cfg->retry_interval);
done:
	free(codes);
	free(texts);
}

/* ---- changes of the link ------------------------------------------------- */

/* Up (again) or down.  pushed (may be NULL): messages and recipients the push scheduled (up only). */
static void set_link(struct link *l, int up, enum link_by by, long uid, long long pushed[2])
{
	struct queue *q = l->q;
	const struct config *c = q->cfg;
	l->st.up = up;
	l->st.since = now_s();
	l->st.by = by;
	state_write(l);
	if (by == LINK_BY_CTL)
		log_info("event=link_%s by=tsubamectl uid=%ld", up ? "up" : "down", uid);
	else
		log_info("event=link_%s by=%s", up ? "up" : "down", link_by_name(by));
	if (!up) {
		window_close(l, "link_down");
		evtimer_del(l->ev_timer);
		pull_clear(l);
		log_info("event=link_waiting rcpts=%lld", count_waiting(q));
		return;
	}
	/* A new connection: a new count, and a new window. */
	window_close(l, "link_up_again");
	l->counting = 1;
	l->received = l->delivered = l->sent = 0;
	if (c->link_hold_open > 0) {
		l->window_end = now_s() + c->link_hold_open;
		arm_timer(l->ev_window, c->link_hold_open);
	}
	/* Seed 001: push what we have for the ISP, then ask it for what it holds for us. */
	queue_run(l, "link_up", pushed ? &pushed[0] : NULL, pushed ? &pushed[1] : NULL);
	pull_start(l);
	upcmd_start(l);
	arm_queue_timer(l);
}

static void check_schedule(struct link *l, long seconds)
{
	evtimer_del(l->ev_check);
	if (l->q->cfg->dialup && l->q->cfg->link_check_command[0])
		arm_timer(l->ev_check, seconds);
}

static void on_check_result(void *arg, enum linkcheck_result r, const char *detail)
{
	struct link *l = arg;
	const struct config *c = l->q->cfg;
	if (r == LINKCHECK_NONE) {
		log_warnx("event=link_check_failed detail=%s action=unchanged", lq(detail));
	} else {
		log_debug("event=link_check result=%s detail=%s", r == LINKCHECK_UP ? "up" : "down", lq(detail));
		/* Only a change of the command's answer changes the link: a tsubamectl link down holds until then. */
		int changed = l->check_last != (int)r;
		l->check_last = (int)r;
		if (changed && c->dialup && l->st.up != (r == LINKCHECK_UP))
			set_link(l, r == LINKCHECK_UP, LINK_BY_CHECK, -1, NULL);
	}
	check_schedule(l, c->link_check_interval);
}

static void on_check(evutil_socket_t fd, short what, void *arg)
{
	struct link *l = arg;
	const struct config *c = l->q->cfg;
	if (!c->dialup || !c->link_check_command[0] || l->q->stopping)
		return;
	if (linkcheck_run(l->check, c->link_check_command, (unsigned)c->link_check_timeout) < 0)
		check_schedule(l, c->link_check_interval);
}

/* ---- start, stop, reload ------------------------------------------------- */

void link_start(struct queue *q)
{
	struct link *l = xcalloc(1, sizeof(*l));
	l->q = q;
	l->check_last = LINKCHECK_NONE;
	char *dir = xasprintf("%s/%s", q->cfg->work_dir, QCTL_DIR);
	l->dirfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (l->dirfd < 0)
		log_warn("event=link_state_unavailable path=%s", lq(dir));
	free(dir);
	state_read(l);
	l->was_dialup = q->cfg->dialup;
	l->ev_window = evtimer_new(q->base, on_window, l);
	l->ev_timer = evtimer_new(q->base, on_queue_timer, l);
	l->ev_check = evtimer_new(q->base, on_check, l);
	l->ev_pull = evtimer_new(q->base, on_pull_retry, l);
	l->check = linkcheck_new(q->base, on_check_result, l);
	l->upcmd = linkcheck_new(q->base, on_upcmd_result, l);
	q->link = l;
	if (q->cfg->dialup) {
		log_info("event=link_state dialup=yes up=%d since=%lld by=%s", l->st.up, l->st.since, link_by_name(l->st.by));
		arm_queue_timer(l);
		check_schedule(l, 0);
	}
}

void link_reload(struct queue *q)
{
	struct link *l = q->link;
	if (!l)
		return;
	const struct config *c = q->cfg;
	int was = l->was_dialup;
	l->was_dialup = c->dialup;
	arm_queue_timer(l);
	if (!linkcheck_running(l->check))
		check_schedule(l, 0);
	if (was && !c->dialup && !l->st.up) {
		/* The mail that waited for the link waits no more. */
		log_info("event=link_gate_off reason=dialup_off");
		queue_run(l, "dialup_off", NULL, NULL);
	} else if (!was && c->dialup) {
		log_info("event=link_state dialup=yes up=%d since=%lld by=%s", l->st.up, l->st.since, link_by_name(l->st.by));
	}
}

void link_stop(struct queue *q)
{
	struct link *l = q->link;
	if (!l)
		return;
	q->link = NULL;
	linkcheck_free(l->check);
	linkcheck_free(l->upcmd);
	pull_clear(l);
	event_free(l->ev_window);
	event_free(l->ev_timer);
	event_free(l->ev_check);
	event_free(l->ev_pull);
	if (l->dirfd >= 0)
		close(l->dirfd);
	free(l);
}

/* ---- tsubamectl link ----------------------------------------------------- */

static void status(struct link *l, struct qctl_reply *rep)
{
	const struct config *c = l->q->cfg;
	long long now = now_s();
	rep->count[QCTL_DIALUP] = c->dialup;
	rep->count[QCTL_UP] = c->dialup ? l->st.up : 1;
	rep->count[QCTL_SINCE] = l->st.since;
	rep->count[QCTL_BY] = l->st.by;
	rep->count[QCTL_WINDOW] = l->counting && l->window_end > now ? l->window_end - now : 0;
	rep->count[QCTL_RECEIVED] = l->received;
	rep->count[QCTL_DELIVERED] = l->delivered;
	rep->count[QCTL_SENT] = l->sent;
	rep->count[QCTL_WAITING] = count_waiting(l->q);
	rep->count[QCTL_ETRN_OK] = l->etrn_ok;
	rep->count[QCTL_ETRN_FAILED] = l->etrn_failed;
	rep->count[QCTL_ETRN_PENDING] = (long long)(l->npull + l->nasked);
	if (c->link_check_command[0] && l->check_last != LINKCHECK_NONE)
		rep->count[QCTL_CHECK] = l->check_last;
}

void link_control(struct queue *q, const struct qctl_request *rq, long uid, struct qctl_reply *rep)
{
	struct link *l = q->link;
	if (!l) {
		rep->ok = 0;
		snprintf(rep->code, sizeof(rep->code), "failed");
		snprintf(rep->text, sizeof(rep->text), "link state unavailable");
		return;
	}
	if (rq->link == QCTL_LINK_STATUS) {
		status(l, rep);
		return;
	}
	if (!q->cfg->dialup) {
		rep->ok = 0;
		snprintf(rep->code, sizeof(rep->code), "dialup-off");
		snprintf(rep->text, sizeof(rep->text), "dial-up operation is off (dialup = no): deliveries do not wait "
		    "for a link");
		return;
	}
	int up = rq->link == QCTL_LINK_UP;
	int already = l->st.up == up;
	long long pushed[2] = { 0, 0 };
	if (!already || up)
		set_link(l, up, LINK_BY_CTL, uid, pushed); /* link up again: push and pull again, as a new connection */
	rep->count[QCTL_UP] = up;
	rep->count[QCTL_ALREADY] = already;
	rep->count[QCTL_WAITING] = count_waiting(q);
	if (up) {
		rep->count[QCTL_MESSAGES] = pushed[0];
		rep->count[QCTL_RECIPIENTS] = pushed[1];
		rep->count[QCTL_ETRN_PENDING] = (long long)(l->npull + l->nasked);
		rep->count[QCTL_WINDOW] = q->cfg->link_hold_open;
	}
}
