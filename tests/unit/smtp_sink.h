/*
 * smtp_sink.h: start and read tests/unit/smtp_sink.py (a scripted SMTP server
 * on 127.0.0.1, one process per test) from the cmocka tests of the SMTP client
 * and the connection cache.  Header-only (static functions): each test is one
 * translation unit.  Include after <cmocka.h>.
 */
#ifndef TSUBAME_TEST_SMTP_SINK_H
#define TSUBAME_TEST_SMTP_SINK_H

#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/buf.h"

#define SINK "tests/unit/smtp_sink.py"

struct sink {
	pid_t pid;
	int port;
	char dir[64];
};

static inline void sink_start(struct sink *s, const char *modes)
{
	snprintf(s->dir, sizeof(s->dir), "/tmp/smtp-sink-XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	int p[2];
	assert_int_equal(pipe(p), 0);
	s->pid = fork();
	assert_true(s->pid >= 0);
	if (s->pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execl("/usr/bin/python3", "python3", SINK, "0", modes, s->dir, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	/* "ready PORT" within 5 s */
	char line[64] = "";
	size_t n = 0;
	struct pollfd pfd = {p[0], POLLIN, 0};
	for (int waited = 0; waited < 5000 && !strchr(line, '\n');) {
		int r = poll(&pfd, 1, 100);
		waited += 100;
		if (r > 0) {
			ssize_t k = read(p[0], line + n, sizeof(line) - 1 - n);
			if (k <= 0)
				break;
			n += (size_t)k;
			line[n] = '\0';
		}
	}
	close(p[0]);
	s->port = 0;
	sscanf(line, "ready %d", &s->port);
	if (s->port <= 0) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
		fail_msg("the sink did not start (%s)", line);
	}
}

static inline void sink_stop(struct sink *s)
{
	kill(s->pid, SIGTERM);
	waitpid(s->pid, NULL, 0);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", s->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", s->dir);
}

/* A file of the sink's folder as a string (NULL when absent); caller frees. */
static inline char *sink_file(const struct sink *s, const char *name, size_t *len)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", s->dir, name);
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct buf b;
	buf_init(&b, 16 << 20);
	char tmp[8192];
	size_t k;
	while ((k = fread(tmp, 1, sizeof(tmp), f)) > 0)
		assert_int_equal(buf_append(&b, tmp, k), 0);
	fclose(f);
	if (len)
		*len = b.len;
	if (!b.data)
		return calloc(1, 1);
	return buf_steal(&b);
}

static inline int transcript_has(const struct sink *s, const char *needle)
{
	char *t = sink_file(s, "transcript.txt", NULL);
	int r = t && strstr(t, needle) != NULL;
	free(t);
	return r;
}

/* How many times needle occurs in the transcript (e.g. "S: 220 sink.test": connections). */
static inline int transcript_count(const struct sink *s, const char *needle)
{
	char *t = sink_file(s, "transcript.txt", NULL);
	int n = 0;
	for (const char *p = t; p && (p = strstr(p, needle)) != NULL; p++)
		n++;
	free(t);
	return n;
}

#endif
