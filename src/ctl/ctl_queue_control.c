/*
 * ctl_queue_control: `tsubamectl queue flush [DOMAIN] | retry QID |
 * hold QID|ALL | release QID|ALL` — requests to the running queue manager
 * over its control socket <work_dir>/run/queue.ctl (qctl_proto.h).
 *
 * The queue process is the only one that moves queue files and the only one
 * that knows which messages sleep on a retry timer, so these commands never
 * touch the spool themselves: they send one request line and print the
 * answer.  The arguments are checked with the same parser the queue manager
 * uses, before anything is sent.
 *
 * Exit status: 0 done; 1 refused or failed (unknown qid, not held, ...);
 * 2 usage (a malformed domain or qid is a usage error); 3 the queue manager
 * is not running.
 *
 * SECURITY: runs as root or the mail user (the socket is 0600, the daemon also
 * checks the peer's uid).  The answer is parsed strictly and only its own
 * checked fields are printed.
 */
#include "ctl/ctl.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "queue/qctl_proto.h"
#include "util/unixsock.h"
#include "util/xalloc.h"

#define ANSWER_TIMEOUT_MS 30000

static void usage(void)
{
	fprintf(stderr, "usage: tsubamectl queue flush [DOMAIN]\n"
			"       tsubamectl queue retry QID\n"
			"       tsubamectl queue hold QID|ALL\n"
			"       tsubamectl queue release QID|ALL\n");
}

static long long ms_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Send line, read the whole answer into out (NUL-terminated).  Length, -1 (message printed), or -3: not running. */
static int exchange(const struct ctl *c, const char *line, char *out, size_t outlen)
{
	char *dir = xasprintf("%s/%s", c->cfg.work_dir, QCTL_DIR);
	char *path = xasprintf("%s/%s", dir, QCTL_SOCKET);
	struct sockaddr_un sa;
	socklen_t salen;
	int via = -1, fd = -1, rc = -1;
	size_t got = 0;

	if (unixsock_addr(dir, QCTL_SOCKET, &sa, &salen, &via) < 0) {
		if (errno == ENOENT) {
			fprintf(stderr, "tsubamectl: queue manager not running (no socket at %s)\n", path);
			rc = -3;
		} else {
			fprintf(stderr, "tsubamectl: %s: %s\n", dir, strerror(errno));
		}
		goto done;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "tsubamectl: socket: %s\n", strerror(errno));
		goto done;
	}
	if (connect(fd, (struct sockaddr *)&sa, salen) < 0) {
		int err = errno;
		if (err == ENOENT || err == ENOTDIR) {
			fprintf(stderr, "tsubamectl: queue manager not running (no socket at %s)\n", path);
			rc = -3;
		} else if (err == ECONNREFUSED) {
			fprintf(stderr, "tsubamectl: queue manager not running (nothing listens on %s)\n", path);
			rc = -3;
		} else if (err == EACCES || err == EPERM) {
			fprintf(stderr, "tsubamectl: %s: permission denied (run as root or the mail user)\n", path);
		} else {
			fprintf(stderr, "tsubamectl: %s: %s\n", path, strerror(err));
		}
		goto done;
	}
	size_t len = strlen(line);
	int send_err = 0;
	if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len) {
		/* A manager that refuses us (busy, denied) closes at once: its answer may still be there. */
		send_err = errno ? errno : EIO;
		if (send_err != EPIPE && send_err != ECONNRESET) {
			fprintf(stderr, "tsubamectl: %s: cannot send the request: %s\n", path, strerror(send_err));
			goto done;
		}
	}
	long long deadline = ms_now() + ANSWER_TIMEOUT_MS;
	for (;;) {
		long long left = deadline - ms_now();
		struct pollfd pfd = { fd, POLLIN, 0 };
		if (left <= 0) {
			fprintf(stderr, "tsubamectl: the queue manager did not answer within %d s\n", ANSWER_TIMEOUT_MS / 1000);
			goto done;
		}
		int r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue; /* the deadline decides */
		ssize_t n = read(fd, out + got, outlen - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		/* Linux resets a UNIX stream closed with input unread: after an answer (or a refusal) it is the end. */
		if (n < 0 && errno == ECONNRESET && (got > 0 || send_err))
			n = 0;
		if (n < 0) {
			fprintf(stderr, "tsubamectl: %s: %s\n", path, strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got >= outlen - 1) {
			fprintf(stderr, "tsubamectl: the queue manager's answer is too long\n");
			goto done;
		}
	}
	if (got == 0 && send_err) {
		fprintf(stderr, "tsubamectl: %s: cannot send the request: %s\n", path, strerror(send_err));
		goto done;
	}
	out[got] = '\0';
	rc = (int)got;
done:
	if (fd >= 0)
		close(fd);
	if (via >= 0)
		close(via);
	free(path);
	free(dir);
	return rc;
}

static const char *plural(long long n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

static void print_result(const struct qctl_request *rq, const struct qctl_reply *a)
{
	long long msgs = a->count[QCTL_MESSAGES] < 0 ? 0 : a->count[QCTL_MESSAGES];
	long long rcpts = a->count[QCTL_RECIPIENTS] < 0 ? 0 : a->count[QCTL_RECIPIENTS];
	long long held = a->count[QCTL_HELD] < 0 ? 0 : a->count[QCTL_HELD];
	long long pending = a->count[QCTL_PENDING] < 0 ? 0 : a->count[QCTL_PENDING];
	long long released = a->count[QCTL_RELEASED] < 0 ? 0 : a->count[QCTL_RELEASED];
	long long cancelled = a->count[QCTL_CANCELLED] < 0 ? 0 : a->count[QCTL_CANCELLED];
	switch (rq->cmd) {
	case QCTL_FLUSH:
		printf("flush%s%s: %lld %s, %lld %s scheduled for delivery now\n", rq->domain[0] ? " " : "", rq->domain,
		    msgs, plural(msgs, "message", "messages"), rcpts, plural(rcpts, "recipient", "recipients"));
		return;
	case QCTL_RETRY:
		printf("retry %s: %lld %s scheduled for delivery now\n", rq->qid, rcpts,
		    plural(rcpts, "recipient", "recipients"));
		return;
	case QCTL_HOLD:
		if (!rq->all) {
			if (held)
				printf("%s: held\n", rq->qid);
			else if (pending)
				printf("%s: hold pending: a delivery is in progress; held when it returns\n", rq->qid);
			else
				printf("%s: already held\n", rq->qid);
		} else {
			printf("hold: %lld %s held", held, plural(held, "message", "messages"));
			if (pending)
				printf(", %lld held when %s deliveries in progress return", pending, plural(pending, "its", "their"));
			printf("\n");
		}
		return;
	case QCTL_RELEASE:
		if (!rq->all) {
			if (released)
				printf("%s: released, %lld %s scheduled for delivery now\n", rq->qid, rcpts,
				    plural(rcpts, "recipient", "recipients"));
			else
				printf("%s: pending hold cancelled\n", rq->qid);
		} else {
			printf("release: %lld %s released, %lld %s scheduled for delivery now", released,
			    plural(released, "message", "messages"), rcpts, plural(rcpts, "recipient", "recipients"));
			if (cancelled)
				printf("; %lld pending %s cancelled", cancelled, plural(cancelled, "hold", "holds"));
			printf("\n");
		}
		return;
	case QCTL_LINK: /* tsubamectl link (ctl_link.c) */
		return;
	}
}

int ctl_queue_control(struct ctl *c, int argc, char **argv)
{
	/* argv[0] is the verb; at most one argument. */
	if (argc < 1 || argc > 2) {
		usage();
		return 2;
	}
	const char *verb = argv[0];
	const char *arg = argc == 2 ? argv[1] : NULL;
	char line[QCTL_LINE_MAX + 2];
	int n = snprintf(line, sizeof(line), "%s%s%s\n", verb, arg ? " " : "", arg ? arg : "");
	struct qctl_request rq;
	char why[128];
	if (n < 0 || (size_t)n >= sizeof(line)) {
		fprintf(stderr, "tsubamectl: queue %s: argument too long\n", verb);
		return 2;
	}
	if (qctl_request_parse(line, (size_t)n, &rq, why, sizeof(why)) < 0) {
		if (arg && (!strcmp(why, "not a queue id") || !strcmp(why, "not a domain name")))
			fprintf(stderr, "tsubamectl: queue %s: '%s' is %s\n", verb, arg, why);
		else
			fprintf(stderr, "tsubamectl: queue %s: %s\n", verb, why);
		usage();
		return 2;
	}
	/* What goes out is what was parsed, written back canonically. */
	if (qctl_request_format(&rq, line, sizeof(line)) < 0)
		return 2;
	char out[QCTL_REPLY_MAX + 1];
	int got = exchange(c, line, out, sizeof(out));
	if (got == -3)
		return 3;
	if (got < 0)
		return 1;
	struct qctl_reply a;
	if (qctl_reply_parse(out, (size_t)got, &a) < 0) {
		fprintf(stderr, "tsubamectl: queue %s: unreadable answer from the queue manager\n", verb);
		return 1;
	}
	if (!a.ok) {
		fprintf(stderr, "tsubamectl: queue %s: %s\n", verb, a.text);
		return 1;
	}
	print_result(&rq, &a);
	return 0;
}

/* For the other commands that talk to the queue manager (ctl_link.c). */
int ctl_queue_exchange(const struct ctl *c, const char *line, char *out, size_t outlen)
{
	return exchange(c, line, out, outlen);
}
