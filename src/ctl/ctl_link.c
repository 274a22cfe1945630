/*
 * ctl_link: `tsubamectl link up | down | status | wait [SECONDS]` — the
 * dial-up link (E5) as the running queue manager keeps it (src/queue/link.c),
 * through its control socket (qctl_proto.h: "link up|down|status").
 *
 *   up      the link is up: push the queued remote mail, send the pull
 *           requests (ETRN), hold the line open for link_hold_open
 *   down    the link is down: remote mail waits in the queue
 *   status  the state, what arrived since the link came up, the pull requests
 *   wait    return when the hold-open window is over (or the link went down),
 *           then print the status: what a dial-up script runs before it hangs up
 *
 * Exit status: 0 done; 1 refused (dialup = no) or failed, or wait timed out;
 * 2 usage; 3 the queue manager is not running (status then prints the state
 * recorded in <work_dir>/run/link).
 *
 * SECURITY: as ctl_queue_control.c: root or the mail user; the answer is
 * parsed strictly and only its numbers are printed.
 */
#include "ctl/ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "queue/link.h"
#include "queue/qctl_proto.h"
#include "util/xalloc.h"

static void usage(void)
{
	fprintf(stderr, "usage: tsubamectl link up|down|status\n"
			"       tsubamectl link wait [SECONDS]\n");
}

static long long get(const struct qctl_reply *a, enum qctl_counter k)
{
	return a->count[k] < 0 ? 0 : a->count[k];
}

static const char *when(long long t, char *buf, size_t n)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (t <= 0 || !localtime_r(&tt, &tm) || strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, n, "?");
	return buf;
}

static const char *plural(long long n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

static void print_status(const struct ctl *c, const struct qctl_reply *a)
{
	char buf[64];
	if (!get(a, QCTL_DIALUP)) {
		printf("dial-up: off (dialup = no): remote deliveries do not wait for a link\n");
		return;
	}
	printf("dial-up: on\n");
	if (get(a, QCTL_SINCE) > 0)
		printf("link: %s since %s (by %s)\n", get(a, QCTL_UP) ? "up" : "down", when(get(a, QCTL_SINCE), buf, sizeof(buf)),
		    link_by_name((enum link_by)get(a, QCTL_BY)));
	else
		printf("link: %s (never changed)\n", get(a, QCTL_UP) ? "up" : "down");
	long long w = get(a, QCTL_WAITING);
	printf("remote recipients queued: %lld\n", w);
	long long r = get(a, QCTL_RECEIVED), d = get(a, QCTL_DELIVERED), s = get(a, QCTL_SENT);
	printf("since the link came up: received %lld %s, delivered %lld %s locally, sent %lld %s\n", r,
	    plural(r, "message", "messages"), d, plural(d, "recipient", "recipients"), s,
	    plural(s, "recipient", "recipients"));
	if (get(a, QCTL_WINDOW) > 0)
		printf("line held open: %lld s more\n", get(a, QCTL_WINDOW));
	if (c->cfg.etrn_server[0])
		printf("pull requests to %s: %lld accepted, %lld failed, %lld pending\n", c->cfg.etrn_server,
		    get(a, QCTL_ETRN_OK), get(a, QCTL_ETRN_FAILED), get(a, QCTL_ETRN_PENDING));
	if (a->count[QCTL_CHECK] >= 0)
		printf("link check: %s\n", a->count[QCTL_CHECK] ? "up" : "down");
}

/* The state the queue manager left in run/link, for status while it is not running. */
static void print_recorded(const struct ctl *c)
{
	char *p = xasprintf("%s/%s/%s", c->cfg.work_dir, QCTL_DIR, LINK_STATE_FILE);
	char buf[80], tbuf[64];
	struct link_state st;
	int fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf)) : -1;
	if (fd >= 0)
		close(fd);
	if (fd < 0 && errno == ENOENT)
		printf("recorded link state: down (no %s)\n", p);
	else if (n < 0 || link_state_parse(buf, (size_t)n, &st) < 0)
		printf("recorded link state: unreadable (%s): taken as down\n", p);
	else
		printf("recorded link state: %s since %s (by %s)\n", st.up ? "up" : "down", when(st.since, tbuf, sizeof(tbuf)),
		    link_by_name(st.by));
	free(p);
}

/* One "link OP" exchange.  0 with the answer in a, or an exit status. */
static int ask(struct ctl *c, enum qctl_link_op op, struct qctl_reply *a)
{
	struct qctl_request rq;
	memset(&rq, 0, sizeof(rq));
	rq.cmd = QCTL_LINK;
	rq.link = op;
	char line[64], out[QCTL_REPLY_MAX + 1];
	if (qctl_request_format(&rq, line, sizeof(line)) < 0)
		return 2;
	int got = ctl_queue_exchange(c, line, out, sizeof(out));
	if (got == -3)
		return 3;
	if (got < 0)
		return 1;
	if (qctl_reply_parse(out, (size_t)got, a) < 0) {
		fprintf(stderr, "tsubamectl: link %s: unreadable answer from the queue manager\n", qctl_link_op_name(op));
		return 1;
	}
	if (!a->ok) {
		fprintf(stderr, "tsubamectl: link %s: %s\n", qctl_link_op_name(op), a->text);
		return 1;
	}
	return 0;
}

static int link_wait(struct ctl *c, const char *arg)
{
	long limit = -1;
	if (arg) {
		char *end;
		limit = strtol(arg, &end, 10);
		if (*arg < '0' || *arg > '9' || *end || limit < 0 || limit > 7 * 86400) {
			fprintf(stderr, "tsubamectl: link wait: '%s' is not a number of seconds\n", arg);
			usage();
			return 2;
		}
	}
	struct qctl_reply a;
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		int rc = ask(c, QCTL_LINK_STATUS, &a);
		if (rc)
			return rc;
		if (!get(&a, QCTL_DIALUP)) {
			fprintf(stderr, "tsubamectl: link wait: dial-up operation is off (dialup = no)\n");
			return 1;
		}
		long long left = get(&a, QCTL_WINDOW);
		if (left == 0 || !get(&a, QCTL_UP))
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long elapsed = (long)(now.tv_sec - start.tv_sec);
		if (limit >= 0 && elapsed >= limit) {
			print_status(c, &a);
			fprintf(stderr, "tsubamectl: link wait: the line is still held open after %ld s\n", limit);
			return 1;
		}
		/* Poll once a second: the window's end is logged by the queue manager to the second. */
		struct timespec ts = { 1, 0 };
		if (left < 1)
			ts = (struct timespec){ 0, 200 * 1000000L };
		nanosleep(&ts, NULL);
	}
	print_status(c, &a);
	return 0;
}

int ctl_link(struct ctl *c, int argc, char **argv)
{
	if (argc < 1) {
		usage();
		return 2;
	}
	const char *verb = argv[0];
	if (!strcmp(verb, "wait")) {
		if (argc > 2) {
			usage();
			return 2;
		}
		return link_wait(c, argc == 2 ? argv[1] : NULL);
	}
	enum qctl_link_op op = !strcmp(verb, "up") ? QCTL_LINK_UP : !strcmp(verb, "down") ? QCTL_LINK_DOWN :
	    !strcmp(verb, "status") ? QCTL_LINK_STATUS : 0;
	if (op == 0 || argc != 1) {
		usage();
		return 2;
	}
	struct qctl_reply a;
	int rc = ask(c, op, &a);
	if (rc == 3 && op == QCTL_LINK_STATUS)
		print_recorded(c);
	if (rc)
		return rc;
	long long already = get(&a, QCTL_ALREADY);
	switch (op) {
	case QCTL_LINK_UP: {
		long long m = get(&a, QCTL_MESSAGES), r = get(&a, QCTL_RECIPIENTS), p = get(&a, QCTL_ETRN_PENDING);
		printf("link up%s: %lld %s (%lld remote %s) pushed", already ? " (it was up: a new connection)" : "", m,
		    plural(m, "message", "messages"), r, plural(r, "recipient", "recipients"));
		if (p)
			printf("; %lld pull %s (ETRN) sent to %s", p, plural(p, "request", "requests"), c->cfg.etrn_server);
		if (get(&a, QCTL_WINDOW))
			printf("; line held open %lld s (tsubamectl link wait)", get(&a, QCTL_WINDOW));
		printf("\n");
		return 0;
	}
	case QCTL_LINK_DOWN: {
		long long w = get(&a, QCTL_WAITING);
		printf("link %s: %lld remote %s wait for the link\n", already ? "was already down" : "down", w,
		    plural(w, "recipient", "recipients"));
		return 0;
	}
	case QCTL_LINK_STATUS:
		print_status(c, &a);
		return 0;
	}
	return 0;
}
