/*
 * test_spool: queue folders and transitions (src/queue/spool.c) in a mkdtemp
 * work dir, two nodes sharing it; qid shape and uniqueness (src/queue/qid.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "queue/qid.h"
#include "queue/spool.h"
#include "util/xalloc.h"

struct fixture {
	char dir[64];
	struct spool a; /* node "mx1" */
	struct spool b; /* node "mx2" */
};

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int setup(void **state)
{
	struct fixture *f = xcalloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/test_spool.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	if (spool_open(&f->a, f->dir, "mx1", 1) < 0 || spool_open(&f->b, f->dir, "mx2", 1) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	spool_close(&f->a);
	spool_close(&f->b);
	nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* 1 when <work>/queue/<rel> exists. */
static int exists(struct fixture *f, const char *rel, const char *qid)
{
	char p[512];
	struct stat st;
	snprintf(p, sizeof(p), "%s/queue/%s/%s", f->dir, rel, qid);
	return stat(p, &st) == 0;
}

static void put(int fd, const char *s)
{
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* create + write + commit + sync on spool s; returns the qid in out. */
static void committed(struct spool *s, char out[QID_MAX])
{
	int fd;
	assert_int_equal(spool_create(s, out, &fd), 0);
	put(fd, "content");
	assert_int_equal(spool_commit(s, out, fd), 0);
	assert_int_equal(spool_sync(s), 0);
	close(fd);
}

static void test_open_modes(void **state)
{
	struct fixture *f = *state;
	const char *dirs[] = { "", "incoming", "active", "active/mx1", "active/mx2", "deferred", "corrupt", "hold" };
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		char p[512];
		struct stat st;
		snprintf(p, sizeof(p), "%s/queue/%s", f->dir, dirs[i]);
		assert_int_equal(stat(p, &st), 0);
		assert_true(S_ISDIR(st.st_mode));
		assert_int_equal(st.st_mode & 0777, 0700);
	}
	/* Without create, a missing folder is an error; an existing spool opens. */
	struct spool s;
	assert_int_equal(spool_open(&s, f->dir, "mx9", 0), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_open(&s, "/nonexistent/x", "mx1", 0), -1);
	assert_int_equal(spool_open(&s, f->dir, "mx1", 0), 0);
	spool_close(&s);
	/* Node names are file names: letters and digits only. */
	const char *bad[] = { "", "../x", "a.b", "a/b", "0123456789abcdef" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(spool_open(&s, f->dir, bad[i], 1), -1);
		assert_int_equal(errno, EINVAL);
	}
}

static void test_create_commit(void **state)
{
	struct fixture *f = *state;
	char qid[QID_MAX];
	int fd;
	assert_int_equal(spool_create(&f->a, qid, &fd), 0);
	assert_true(qid_valid(qid));
	assert_string_equal(qid_node(qid), "mx1");
	assert_true(exists(f, "incoming", qid));
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	put(fd, "hello");
	assert_int_equal(spool_commit(&f->a, qid, fd), 0);
	assert_int_equal(spool_sync(&f->a), 0);
	assert_false(exists(f, "incoming", qid));
	assert_true(exists(f, "active/mx1", qid));
	/* The fd still refers to the committed file. */
	int rfd = spool_open_file(&f->a, SPOOL_ACTIVE, qid, O_RDONLY);
	assert_true(rfd >= 0);
	char b[8] = "";
	assert_int_equal(read(rfd, b, sizeof(b)), 5);
	assert_memory_equal(b, "hello", 5);
	close(rfd);
	/* A second commit of the same qid: nothing left in incoming. */
	assert_int_equal(spool_commit(&f->a, qid, fd), -1);
	assert_int_equal(errno, ENOENT);
	close(fd);

	/* Abort removes a never-committed file. */
	assert_int_equal(spool_create(&f->a, qid, &fd), 0);
	close(fd);
	assert_int_equal(spool_abort(&f->a, qid), 0);
	assert_false(exists(f, "incoming", qid));
	assert_int_equal(spool_abort(&f->a, qid), -1);
	assert_int_equal(errno, ENOENT);
}

static void test_defer_claim(void **state)
{
	struct fixture *f = *state;
	char qid[QID_MAX];
	committed(&f->a, qid);
	assert_int_equal(spool_defer(&f->a, qid), 0);
	assert_int_equal(spool_sync_dir(&f->a, SPOOL_DEFERRED), 0);
	assert_true(exists(f, "deferred", qid));
	assert_false(exists(f, "active/mx1", qid));
	/* mx2 claims it; then both claims fail with ENOENT. */
	assert_int_equal(spool_claim(&f->b, qid), 0);
	assert_true(exists(f, "active/mx2", qid));
	errno = 0;
	assert_int_equal(spool_claim(&f->a, qid), -1);
	assert_int_equal(errno, ENOENT);
	assert_false(exists(f, "active/mx1", qid));
	/* Back to deferred, claimed again by mx1. */
	assert_int_equal(spool_defer(&f->b, qid), 0);
	assert_int_equal(spool_claim(&f->a, qid), 0);
	errno = 0;
	assert_int_equal(spool_claim(&f->a, qid), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_claim(&f->b, qid), -1);
	assert_int_equal(errno, ENOENT);
	/* Defer of something not ours. */
	assert_int_equal(spool_defer(&f->b, qid), -1);
	assert_int_equal(errno, ENOENT);
	/* Remove. */
	assert_int_equal(spool_remove(&f->a, qid), 0);
	assert_false(exists(f, "active/mx1", qid));
	assert_int_equal(spool_remove(&f->a, qid), -1);
}

static void test_quarantine(void **state)
{
	struct fixture *f = *state;
	char q1[QID_MAX], q2[QID_MAX], q3[QID_MAX];
	int fd;
	committed(&f->a, q1);
	committed(&f->a, q2);
	assert_int_equal(spool_defer(&f->a, q2), 0);
	assert_int_equal(spool_create(&f->a, q3, &fd), 0);
	close(fd);
	assert_int_equal(spool_quarantine(&f->a, SPOOL_ACTIVE, q1), 0);
	assert_int_equal(spool_quarantine(&f->a, SPOOL_DEFERRED, q2), 0);
	assert_int_equal(spool_quarantine(&f->a, SPOOL_INCOMING, q3), 0);
	assert_true(exists(f, "corrupt", q1) && exists(f, "corrupt", q2) && exists(f, "corrupt", q3));
	assert_false(exists(f, "active/mx1", q1) || exists(f, "deferred", q2) || exists(f, "incoming", q3));
	assert_int_equal(spool_quarantine(&f->a, SPOOL_CORRUPT, q1), -1);
	assert_int_equal(spool_quarantine(&f->a, SPOOL_ACTIVE, q1), -1);
	assert_int_equal(errno, ENOENT);
}

static void test_bad_names(void **state)
{
	struct fixture *f = *state;
	const char *bad[] = { "../../etc/passwd", "", ".", "..", "0G6BQ4V5K0P3H2JX", "0G6BQ4V5K0P3H2JX./", "x" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		assert_int_equal(spool_open_file(&f->a, SPOOL_ACTIVE, bad[i], O_RDONLY), -1);
		assert_int_equal(errno, EINVAL);
		assert_int_equal(spool_remove(&f->a, bad[i]), -1);
		assert_int_equal(spool_claim(&f->a, bad[i]), -1);
		assert_int_equal(spool_defer(&f->a, bad[i]), -1);
		assert_int_equal(spool_quarantine(&f->a, SPOOL_ACTIVE, bad[i]), -1);
		assert_int_equal(spool_abort(&f->a, bad[i]), -1);
		assert_int_equal(errno, EINVAL);
	}
}

struct collect {
	char **v;
	size_t n;
};

static void collect_cb(void *arg, const char *name)
{
	struct collect *c = arg;
	c->v = xreallocarray(c->v, c->n + 1, sizeof(*c->v));
	c->v[c->n++] = xstrdup(name);
}

static void collect_free(struct collect *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->v[i]);
	free(c->v);
	c->v = NULL;
	c->n = 0;
}

static void test_list(void **state)
{
	struct fixture *f = *state;
	enum { N = 50 };
	char q[N][QID_MAX];
	for (int i = 0; i < N; i++)
		committed(i % 3 ? &f->a : &f->b, q[i]);
	for (int i = 0; i < N; i++)
		if (qid_node(q[i])[2] == '2')
			assert_int_equal(spool_defer(&f->b, q[i]), 0);
		else if (i % 2)
			assert_int_equal(spool_defer(&f->a, q[i]), 0);
	/* Junk that is not a qid is not listed. */
	char p[512];
	snprintf(p, sizeof(p), "%s/queue/deferred/.nfs0001", f->dir);
	close(open(p, O_CREAT | O_WRONLY, 0600));
	snprintf(p, sizeof(p), "%s/queue/deferred/README", f->dir);
	close(open(p, O_CREAT | O_WRONLY, 0600));

	struct collect act = { 0 }, def = { 0 };
	int na = spool_list(&f->a, SPOOL_ACTIVE, collect_cb, &act);
	int nd = spool_list(&f->a, SPOOL_DEFERRED, collect_cb, &def);
	assert_int_equal(na, (int)act.n);
	assert_int_equal(nd, (int)def.n);
	assert_int_equal(na + nd, N);
	/* Sorted by name = by time of creation, across nodes too. */
	size_t ia = 0, id = 0;
	for (int i = 0; i < N; i++) {
		if (ia < act.n && strcmp(act.v[ia], q[i]) == 0)
			ia++;
		else if (id < def.n && strcmp(def.v[id], q[i]) == 0)
			id++;
		else
			fail_msg("qid %d (%s) out of order or missing", i, q[i]);
	}
	collect_free(&act);
	collect_free(&def);

	/* Node folders, and listing another node's folder. */
	struct collect nodes = { 0 };
	assert_int_equal(spool_list_nodes(&f->a, collect_cb, &nodes), 2);
	assert_string_equal(nodes.v[0], "mx1");
	assert_string_equal(nodes.v[1], "mx2");
	collect_free(&nodes);
	int dfd = spool_open_node_dir(&f->a, "mx2");
	assert_true(dfd >= 0);
	assert_int_equal(spool_list_dirfd(dfd, collect_cb, &act), 0);
	close(dfd);
	assert_int_equal(spool_open_node_dir(&f->a, ".."), -1);
	assert_int_equal(spool_list(&f->a, SPOOL_INCOMING, collect_cb, &act), 0);
	assert_int_equal(spool_list(&f->a, SPOOL_CORRUPT, collect_cb, &act), 0);
	assert_string_equal(spool_dir_name(SPOOL_DEFERRED), "deferred");
}

static void age(struct fixture *f, const char *qid, long seconds)
{
	char p[512];
	struct timespec ts[2];
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec -= seconds;
	ts[1] = ts[0];
	snprintf(p, sizeof(p), "%s/queue/incoming/%s", f->dir, qid);
	assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
}

static void test_recover(void **state)
{
	struct fixture *f = *state;
	char mine1[QID_MAX], mine2[QID_MAX], fresh[QID_MAX], old[QID_MAX], done[QID_MAX];
	int fd;
	assert_int_equal(spool_create(&f->a, mine1, &fd), 0);
	close(fd);
	assert_int_equal(spool_create(&f->a, mine2, &fd), 0);
	close(fd);
	assert_int_equal(spool_create(&f->b, fresh, &fd), 0);
	close(fd);
	assert_int_equal(spool_create(&f->b, old, &fd), 0);
	close(fd);
	committed(&f->a, done);
	age(f, old, 7200);

	/* stale < 0: only this node's files. */
	assert_int_equal(spool_recover_incoming(&f->a, -1), 0);
	assert_false(exists(f, "incoming", mine1) || exists(f, "incoming", mine2));
	assert_true(exists(f, "incoming", fresh) && exists(f, "incoming", old));
	assert_true(exists(f, "active/mx1", done));
	/* With a stale limit: the other node's old file goes, its fresh one stays. */
	assert_int_equal(spool_recover_incoming(&f->a, 3600), 0);
	assert_true(exists(f, "incoming", fresh));
	assert_false(exists(f, "incoming", old));
	assert_true(exists(f, "active/mx1", done));
	/* mx2 restarting removes its own. */
	assert_int_equal(spool_recover_incoming(&f->b, 3600), 0);
	assert_false(exists(f, "incoming", fresh));
	struct collect c = { 0 };
	assert_int_equal(spool_list(&f->a, SPOOL_INCOMING, collect_cb, &c), 0);
}

/* Spent files are reused: same inode, a new name, old bytes until overwritten. */
static void test_recycling(void **state)
{
	struct fixture *f = *state;
	char qid[QID_MAX], qid2[QID_MAX];
	int fd;
	assert_int_equal(spool_enable_recycling(&f->a, 2), 0);
	assert_int_equal(spool_create(&f->a, qid, &fd), 0);
	put(fd, "first message");
	struct stat st1, st2;
	assert_int_equal(fstat(fd, &st1), 0);
	assert_int_equal(spool_commit(&f->a, qid, fd), 0);
	close(fd);
	assert_int_equal(spool_remove(&f->a, qid), 0);
	assert_false(exists(f, "active/mx1", qid));
	assert_int_equal(f->a.nfree, 1);

	assert_int_equal(spool_create(&f->a, qid2, &fd), 0);
	assert_string_not_equal(qid, qid2);
	assert_int_equal(f->a.nfree, 0);
	assert_int_equal(fstat(fd, &st2), 0);
	assert_int_equal(st1.st_ino, st2.st_ino);
	assert_true(exists(f, "incoming", qid2));
	/* Writers start at offset 0 and truncate to their length. */
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 0);
	put(fd, "2nd");
	assert_int_equal(ftruncate(fd, 3), 0);
	char b[16] = "";
	assert_int_equal(pread(fd, b, sizeof(b), 0), 3);
	assert_memory_equal(b, "2nd", 3);
	/* An aborted file goes back to the pool. */
	close(fd);
	assert_int_equal(spool_abort(&f->a, qid2), 0);
	assert_int_equal(f->a.nfree, 1);

	/* The pool is bounded: beyond max, spent files are unlinked. */
	char q[4][QID_MAX];
	int fds[4];
	for (int i = 0; i < 4; i++) {
		assert_int_equal(spool_create(&f->a, q[i], &fds[i]), 0);
		close(fds[i]);
	}
	for (int i = 0; i < 4; i++)
		assert_int_equal(spool_abort(&f->a, q[i]), 0);
	assert_int_equal(f->a.nfree, 2);

	/* A restart finds the pool again. */
	spool_close(&f->a);
	assert_int_equal(spool_open(&f->a, f->dir, "mx1", 0), 0);
	assert_int_equal(spool_enable_recycling(&f->a, 8), 0);
	assert_int_equal(f->a.nfree, 2);
}

static void test_qid_valid(void **state)
{
	(void)state;
	const struct {
		const char *s;
		int ok;
	} cases[] = {
		{ "0G6BQ4V5K0P3H2JX.mx1", 1 },
		{ "0G6BQ4V5K0P3H2JX.a", 1 },
		{ "0G6BQ4V5K0P3H2JX.abcdefghijklmno", 1 },
		{ "0G6BQ4V5K0P3H2JX.abcdefghijklmnop", 0 },
		{ "0G6BQ4V5K0P3H2JX.", 0 },
		{ "0G6BQ4V5K0P3H2JX", 0 },
		{ "0G6BQ4V5K0P3H2J.mx1", 0 },
		{ "0G6BQ4V5K0P3H2JXY.mx1", 0 },
		{ "0g6bq4v5k0p3h2jx.mx1", 0 },
		{ "0G6BQ4V5K0P3H2JI.mx1", 0 },  /* I, L, O, U are not Crockford digits */
		{ "0G6BQ4V5K0P3H2JX.mx-1", 0 },
		{ "0G6BQ4V5K0P3H2JX.mx/1", 0 },
		{ "0G6BQ4V5K0P3H2JX.m.x", 0 },
		{ "0G6BQ4V5K0P3H2JX..", 0 },
		{ "", 0 },
		{ "../../../../etc/passwd", 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (qid_valid(cases[i].s) != cases[i].ok)
			fail_msg("qid_valid(\"%s\") != %d", cases[i].s, cases[i].ok);
		if (cases[i].ok)
			assert_non_null(qid_node(cases[i].s));
		else
			assert_null(qid_node(cases[i].s));
	}
	assert_false(qid_valid(NULL));
	assert_string_equal(qid_node("0G6BQ4V5K0P3H2JX.mx1"), "mx1");
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_qid_unique(void **state)
{
	(void)state;
	enum { N = 100000 };
	char **v = xcalloc(2 * N, sizeof(*v));
	char q[QID_MAX], prev[QID_MAX] = "";
	for (int i = 0; i < 2 * N; i++) {
		qid_new(q, i % 2 ? "mx1" : "node2");
		assert_true(qid_valid(q));
		assert_true(strlen(q) < QID_MAX);
		/* Strictly increasing time part within one process. */
		assert_true(strncmp(prev, q, 12) < 0);
		memcpy(prev, q, sizeof(q));
		v[i] = xstrdup(q);
	}
	qsort(v, 2 * N, sizeof(*v), cmp_str);
	for (int i = 1; i < 2 * N; i++)
		if (strcmp(v[i - 1], v[i]) == 0)
			fail_msg("duplicate qid %s", v[i]);
	/* Even ignoring the node name, the 16-character heads are unique. */
	for (int i = 1; i < 2 * N; i++)
		assert_true(strncmp(v[i - 1], v[i], 16) != 0);
	for (int i = 0; i < 2 * N; i++)
		free(v[i]);
	free(v);
	/* The time part is the current time in microseconds. */
	qid_new(q, "x");
	long long us = 0;
	const char *alpha = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
	for (int i = 0; i < 12; i++)
		us = us * 32 + (strchr(alpha, q[i]) - alpha);
	long long now = (long long)time(NULL);
	assert_true(us / 1000000 >= now - 5 && us / 1000000 <= now + 5);
}

/* Administrative hold: active or deferred -> hold/ -> active/<node> of whichever node releases it. */
static void test_hold_release(void **state)
{
	struct fixture *f = *state;
	char q1[QID_MAX], q2[QID_MAX];
	committed(&f->a, q1);
	committed(&f->a, q2);
	assert_int_equal(spool_hold(&f->a, SPOOL_ACTIVE, q1), 0);
	assert_int_equal(spool_sync_dir(&f->a, SPOOL_HOLD), 0);
	assert_false(exists(f, "active/mx1", q1));
	assert_true(exists(f, "hold", q1));
	assert_int_equal(spool_defer(&f->a, q2), 0);
	assert_int_equal(spool_hold(&f->b, SPOOL_DEFERRED, q2), 0);
	assert_true(exists(f, "hold", q2));
	/* Only from active/ or deferred/; a second hold finds nothing. */
	assert_int_equal(spool_hold(&f->a, SPOOL_CORRUPT, q1), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(spool_hold(&f->a, SPOOL_ACTIVE, q1), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_hold(&f->a, SPOOL_ACTIVE, "../x"), -1);
	assert_int_equal(errno, EINVAL);
	/* Release is a claim: one node wins. */
	assert_int_equal(spool_release(&f->b, q1), 0);
	assert_true(exists(f, "active/mx2", q1));
	assert_int_equal(spool_release(&f->a, q1), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_release(&f->a, q2), 0);
	assert_true(exists(f, "active/mx1", q2));
	assert_false(exists(f, "hold", q2));
	assert_string_equal(spool_dir_name(SPOOL_HOLD), "hold");
	/* A reader of a spool made before hold/ existed does without it. */
	char p[512];
	snprintf(p, sizeof(p), "%s/queue/hold", f->dir);
	assert_int_equal(rmdir(p), 0);
	struct spool s;
	assert_int_equal(spool_open(&s, f->dir, "mx1", 0), 0);
	assert_int_equal(spool_dirfd(&s, SPOOL_HOLD), -1);
	assert_int_equal(spool_release(&s, q2), -1);
	assert_int_equal(errno, ENOENT);
	spool_close(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_defer_claim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quarantine, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hold_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recycling, setup, teardown),
		cmocka_unit_test(test_qid_valid),
		cmocka_unit_test(test_qid_unique),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
