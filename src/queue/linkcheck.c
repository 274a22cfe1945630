/*
 * linkcheck: link_check_command, spawned and watched from the event loop (see
 * linkcheck.h).  The watch is a timer that starts at 20 ms and doubles up to
 * 250 ms: a quick command answers almost at once, a slow one costs a few
 * wake-ups per second, and no SIGCHLD handler is shared with anyone.
 */
#include "queue/linkcheck.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "util/xalloc.h"

extern char **environ;

struct linkcheck {
	struct event_base *base;
	linkcheck_cb cb;
	void *arg;
	pid_t pid;                /* 0: none running */
	struct timespec deadline;
	unsigned poll_ms;
	struct event *ev_poll;
	struct event *ev_fail;    /* a spawn failure, reported from the loop */
	char fail_detail[160];
};

static int past(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

static void arm(struct linkcheck *c)
{
	struct timeval tv = { 0, (suseconds_t)c->poll_ms * 1000 };
	evtimer_add(c->ev_poll, &tv);
	c->poll_ms = c->poll_ms * 2 > 250 ? 250 : c->poll_ms * 2;
}

static void kill_group(pid_t pid)
{
	/* The command leads its own group: the shell and whatever it started go together. */
	if (kill(-pid, SIGKILL) < 0)
		kill(pid, SIGKILL);
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
	struct linkcheck *c = arg;
	int status;
	pid_t r = waitpid(c->pid, &status, WNOHANG);
	if (r == 0) {
		if (!past(&c->deadline)) {
			arm(c);
			return;
		}
		kill_group(c->pid);
		while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
			;
		c->pid = 0;
		c->cb(c->arg, LINKCHECK_NONE, "timeout");
		return;
	}
	pid_t pid = c->pid;
	c->pid = 0;
	if (r < 0) {
		snprintf(c->fail_detail, sizeof(c->fail_detail), "waitpid %ld: %s", (long)pid, strerror(errno));
		c->cb(c->arg, LINKCHECK_NONE, c->fail_detail);
		return;
	}
	char detail[64];
	if (WIFEXITED(status)) {
		snprintf(detail, sizeof(detail), "exit %d", WEXITSTATUS(status));
		c->cb(c->arg, WEXITSTATUS(status) == 0 ? LINKCHECK_UP : LINKCHECK_DOWN, detail);
	} else {
		snprintf(detail, sizeof(detail), "signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
		c->cb(c->arg, LINKCHECK_NONE, detail);
	}
}

static void on_fail(evutil_socket_t fd, short what, void *arg)
{
	struct linkcheck *c = arg;
	c->cb(c->arg, LINKCHECK_NONE, c->fail_detail);
}

struct linkcheck *linkcheck_new(struct event_base *base, linkcheck_cb cb, void *arg)
{
	struct linkcheck *c = xcalloc(1, sizeof(*c));
	c->base = base;
	c->cb = cb;
	c->arg = arg;
	c->ev_poll = evtimer_new(base, on_poll, c);
	c->ev_fail = event_new(base, -1, 0, on_fail, c);
	return c;
}

int linkcheck_running(const struct linkcheck *c)
{
	return c->pid > 0;
}

int linkcheck_run(struct linkcheck *c, const char *command, unsigned timeout_s)
{
	if (c->pid > 0)
		return -1;
	posix_spawnattr_t at;
	posix_spawn_file_actions_t fa;
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_init(&at);
	posix_spawn_file_actions_init(&fa);
	/* Its own group (so a timeout kills everything it started), default signals, nothing blocked. */
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	char *argv[] = { "sh", "-c", (char *)command, NULL };
	pid_t pid;
	int err = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (err != 0) {
		snprintf(c->fail_detail, sizeof(c->fail_detail), "spawn failed: %s", strerror(err));
		event_active(c->ev_fail, 0, 0);
		return 0;
	}
	c->pid = pid;
	clock_gettime(CLOCK_MONOTONIC, &c->deadline);
	c->deadline.tv_sec += timeout_s;
	c->poll_ms = 20;
	arm(c);
	return 0;
}

void linkcheck_free(struct linkcheck *c)
{
	if (!c)
		return;
	if (c->pid > 0) {
		int status;
		kill_group(c->pid);
		while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	event_free(c->ev_poll);
	event_free(c->ev_fail);
	free(c);
}
