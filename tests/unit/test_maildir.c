/* Unit tests for src/local/maildir.c: exact bytes delivered, CRLF across chunks, usage, path templates. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "local/maildir.h"
#include "util/buf.h"

struct fixture {
	char dir[64];
	char qpath[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/tsubame-maildir-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->qpath, sizeof(f->qpath), "%s/queuefile", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	int r = system(cmd);
	free(f);
	return r == 0 ? 0 : -1;
}

/* A queue file: some envelope bytes, then the content at the returned offset. */
static int write_queue(const char *path, const char *content, size_t len, off_t *off)
{
	static const char prefix[] = "envelope: not part of the message\n";
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, prefix, sizeof(prefix) - 1), (ssize_t)(sizeof(prefix) - 1));
	size_t done = 0;
	while (done < len) {
		ssize_t w = write(fd, content + done, len - done);
		assert_true(w > 0);
		done += (size_t)w;
	}
	assert_int_equal(write(fd, "TRAILER", 7), 7);
	*off = (off_t)(sizeof(prefix) - 1);
	return fd;
}

/* The one file in dir/new; its name in name, its content returned (malloc'd). */
static char *read_single(const char *maildir, char *name, size_t namesz, size_t *len)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/new", maildir);
	DIR *d = opendir(path);
	assert_non_null(d);
	struct dirent *e;
	int count = 0;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(name, namesz, "%s", e->d_name);
		count++;
	}
	closedir(d);
	assert_int_equal(count, 1);
	snprintf(path, sizeof(path), "%s/new/%s", maildir, name);
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	struct stat st;
	assert_int_equal(fstat(fileno(fp), &st), 0);
	char *buf = malloc((size_t)st.st_size + 1);
	assert_int_equal(fread(buf, 1, (size_t)st.st_size, fp), (size_t)st.st_size);
	fclose(fp);
	buf[st.st_size] = '\0';
	*len = (size_t)st.st_size;
	return buf;
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	size_t n = 0;
	struct dirent *e;
	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

struct dcase {
	const char *content;
	const char *stored;
};

static const struct dcase dcases[] = {
	{ "Subject: hi\r\n\r\nbody\r\n", "Subject: hi\n\nbody\n" },
	{ "", "" },
	{ "a\rb\r\n", "a\rb\n" },          /* bare CR kept */
	{ "a\n\r\n", "a\n\n" },            /* bare LF kept as is */
	{ "ends with CR\r", "ends with CR\r" },
	{ "\r\r\n\r\n", "\r\n\n" },
};

static void test_deliver_small(void **state)
{
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(dcases) / sizeof(dcases[0]); i++) {
		char maildir[256], name[256], want[512];
		off_t off;
		size_t len;
		snprintf(maildir, sizeof(maildir), "%s/case%zu/deep/Maildir", f->dir, i);
		int qfd = write_queue(f->qpath, dcases[i].content, strlen(dcases[i].content), &off);
		struct maildir_delivery d = { .maildir = maildir, .return_path = i == 1 ? "" : "sender@example.org",
			.delivered_to = "taro@abc.co.jp", .hostname = "mx1.example:2/x", .data_fd = qfd,
			.data_off = off, .data_len = (off_t)strlen(dcases[i].content) };
		char why[256];
		int temp = -1;
		if (maildir_deliver(&d, why, sizeof(why), &temp) != 0)
			fail_msg("case %zu: %s", i, why);
		close(qfd);
		char *got = read_single(maildir, name, sizeof(name), &len);
		snprintf(want, sizeof(want), "Return-Path: <%s>\nDelivered-To: taro@abc.co.jp\n%s",
		    d.return_path, dcases[i].stored);
		assert_int_equal(len, strlen(want));
		assert_memory_equal(got, want, len);
		free(got);
		/* The name carries the size and a host without '/' or ':'. */
		char sz[32];
		snprintf(sz, sizeof(sz), ",S=%zu", len);
		assert_non_null(strstr(name, sz));
		assert_non_null(strstr(name, ".mx1.example\\0722\\057x,S="));
		assert_null(strchr(name, ':'));
		/* tmp/ is empty, cur/ exists, everything is private. */
		char p[1024];
		struct stat st;
		snprintf(p, sizeof(p), "%s/tmp", maildir);
		assert_int_equal(count_entries(p), 0);
		snprintf(p, sizeof(p), "%s/cur", maildir);
		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0700);
		snprintf(p, sizeof(p), "%s/case%zu/deep", f->dir, i);
		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0700);
		snprintf(p, sizeof(p), "%s/new/%s", maildir, name);
		assert_int_equal(stat(p, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);

		long long bytes, msgs;
		assert_int_equal(maildir_usage(maildir, &bytes, &msgs), 0);
		assert_int_equal(bytes, (long long)len);
		assert_int_equal(msgs, 1);
	}
}

/* The reference conversion: drop the CR of every CRLF, keep everything else. */
static void crlf_to_lf(const char *in, size_t len, struct buf *out)
{
	for (size_t k = 0; k < len; k++)
		if (!(in[k] == '\r' && k + 1 < len && in[k + 1] == '\n'))
			buf_putc(out, in[k]);
}

/* A message larger than a 64 KiB chunk, with CRs placed on the chunk boundaries. */
static void test_deliver_large(void **state)
{
	struct fixture *f = *state;
	enum { LEN = 300 * 1024 + 7 };
	char *in = malloc(LEN), maildir[256], name[256];
	struct buf want;
	off_t off;
	size_t len;

	/* Lines of varying length, CRLF terminated, some with a bare CR. */
	for (size_t k = 0, col = 0, line = 0; k < LEN; k++, col++) {
		size_t linelen = 10 + (line * 37) % 200;
		if (col == linelen) {
			in[k] = '\r';
		} else if (col == linelen + 1) {
			in[k] = '\n';
			col = (size_t)-1;
			line++;
		} else {
			in[k] = line % 5 == 0 && col == 3 ? '\r' : (char)('a' + (k % 26));
		}
	}
	/* Chunk boundaries are 65536 bytes apart from the content start. */
	in[65535] = '\r';  in[65536] = '\n';                      /* CRLF split by the boundary */
	in[131071] = '\r'; in[131072] = 'y';                      /* bare CR at a chunk end */
	in[196607] = '\r'; in[196608] = '\r'; in[196609] = '\n'; /* CR, then CRLF in the next chunk */
	in[262143] = 'z';   in[262144] = '\n';                     /* bare LF at a chunk start */
	in[LEN - 1] = '\r';                                        /* ends in a lone CR */

	buf_init(&want, 1 << 22);
	buf_puts(&want, "Return-Path: <>\nDelivered-To: big@abc.co.jp\n");
	crlf_to_lf(in, LEN, &want);
	snprintf(maildir, sizeof(maildir), "%s/big/Maildir", f->dir);
	int qfd = write_queue(f->qpath, in, LEN, &off);
	struct maildir_delivery d = { .maildir = maildir, .return_path = "", .delivered_to = "big@abc.co.jp",
		.hostname = "mx", .data_fd = qfd, .data_off = off, .data_len = LEN };
	char why[256];
	int temp;
	if (maildir_deliver(&d, why, sizeof(why), &temp) != 0)
		fail_msg("%s", why);
	close(qfd);
	char *got = read_single(maildir, name, sizeof(name), &len);
	assert_int_equal(len, want.len);
	assert_memory_equal(got, want.data, len);
	char sz[32];
	snprintf(sz, sizeof(sz), ",S=%zu", len);
	assert_non_null(strstr(name, sz));
	free(got);
	free(in);
	buf_free(&want);
}

static void test_deliver_failures(void **state)
{
	struct fixture *f = *state;
	char maildir[256], why[256];
	int temp;
	off_t off;
	int qfd = write_queue(f->qpath, "x\r\n", 3, &off);
	struct maildir_delivery d = { .return_path = "a@b", .delivered_to = "c@d", .hostname = "h",
		.data_fd = qfd, .data_off = off, .data_len = 3 };

	d.maildir = "relative/Maildir";
	assert_int_equal(maildir_deliver(&d, why, sizeof(why), &temp), -1);
	assert_int_equal(temp, 0);
	assert_non_null(strstr(why, "not absolute"));

	/* Header injection through an envelope address is refused. */
	snprintf(maildir, sizeof(maildir), "%s/inj/Maildir", f->dir);
	d.maildir = maildir;
	d.delivered_to = "c@d\nX-Evil: 1";
	assert_int_equal(maildir_deliver(&d, why, sizeof(why), &temp), -1);
	assert_int_equal(temp, 0);
	d.delivered_to = "c@d";

	/* A file where a directory should be: temporary (an administrator fixes it). */
	char blocker[256];
	snprintf(blocker, sizeof(blocker), "%s/file", f->dir);
	close(open(blocker, O_WRONLY | O_CREAT, 0600));
	snprintf(maildir, sizeof(maildir), "%s/file/Maildir", f->dir);
	assert_int_equal(maildir_deliver(&d, why, sizeof(why), &temp), -1);
	assert_int_equal(temp, 1);
	assert_non_null(strstr(why, "Not a directory"));

	/* Content past the end of the queue file: temporary, and nothing is left in tmp/. */
	snprintf(maildir, sizeof(maildir), "%s/short/Maildir", f->dir);
	d.maildir = maildir;
	d.data_len = 100;
	assert_int_equal(maildir_deliver(&d, why, sizeof(why), &temp), -1);
	assert_int_equal(temp, 1);
	assert_non_null(strstr(why, "shorter"));
	char p[300];
	snprintf(p, sizeof(p), "%s/tmp", maildir);
	assert_int_equal(count_entries(p), 0);
	snprintf(p, sizeof(p), "%s/new", maildir);
	assert_int_equal(count_entries(p), 0);

	/* Unwritable Maildir (when not root): temporary. */
	if (geteuid() != 0) {
		snprintf(p, sizeof(p), "%s/tmp", maildir);
		assert_int_equal(chmod(p, 0500), 0);
		d.data_len = 3;
		assert_int_equal(maildir_deliver(&d, why, sizeof(why), &temp), -1);
		assert_int_equal(temp, 1);
		assert_non_null(strstr(why, "Permission denied"));
		chmod(p, 0700);
	}
	close(qfd);
}

static void test_many_unique(void **state)
{
	struct fixture *f = *state;
	char maildir[256], why[256];
	int temp;
	off_t off;
	int qfd = write_queue(f->qpath, "x\r\n", 3, &off);
	snprintf(maildir, sizeof(maildir), "%s/many/Maildir", f->dir);
	struct maildir_delivery d = { .maildir = maildir, .return_path = "a@b", .delivered_to = "c@d",
		.hostname = "h", .data_fd = qfd, .data_off = off, .data_len = 3 };
	for (int i = 0; i < 50; i++)
		assert_int_equal(maildir_deliver(&d, why, sizeof(why), &temp), 0);
	close(qfd);
	char p[300];
	snprintf(p, sizeof(p), "%s/new", maildir);
	assert_int_equal(count_entries(p), 50);
	long long bytes, msgs;
	assert_int_equal(maildir_usage(maildir, &bytes, &msgs), 0);
	assert_int_equal(msgs, 50);
	assert_int_equal(bytes, 50LL * (long long)strlen("Return-Path: <a@b>\nDelivered-To: c@d\nx\n"));
}

static void test_usage(void **state)
{
	struct fixture *f = *state;
	char maildir[256], p[1024];
	long long bytes = -1, msgs = -1;

	snprintf(maildir, sizeof(maildir), "%s/usage", f->dir);
	/* A missing Maildir is empty. */
	assert_int_equal(maildir_usage(maildir, &bytes, &msgs), 0);
	assert_int_equal(bytes, 0);
	assert_int_equal(msgs, 0);
	snprintf(p, sizeof(p), "mkdir -p %s/new %s/cur %s/tmp", maildir, maildir, maildir);
	assert_int_equal(system(p), 0);
	struct {
		const char *name;
		const char *content;
	} files[] = {
		{ "new/1.M1P1Q1.h,S=1000", "short" },        /* the name wins: 1000 */
		{ "cur/2.M1P1Q1.h,S=250:2,S", "x" },         /* flags after the size: 250 */
		{ "cur/3.M1P1Q1.h:2,", "twelve bytes" },     /* no size: stat, 12 */
		{ "cur/4.M1P1Q1.h,S=zz", "abc" },            /* bad size: stat, 3 */
		{ "tmp/5.M1P1Q1.h,S=99999", "not counted" }, /* tmp/ is not the mailbox */
		{ "new/.hidden", "not counted" },
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", maildir, files[i].name);
		FILE *fp = fopen(p, "w");
		assert_non_null(fp);
		fputs(files[i].content, fp);
		fclose(fp);
	}
	assert_int_equal(maildir_usage(maildir, &bytes, &msgs), 0);
	assert_int_equal(bytes, 1000 + 250 + 12 + 3);
	assert_int_equal(msgs, 4);
}

static void read_file(const char *path, char *out, size_t n)
{
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	size_t k = fread(out, 1, n - 1, fp);
	out[k] = '\0';
	fclose(fp);
}

/* Maildir++ maildirsize: created by the quota check, appended by deliveries, recounted when stale. */
static void test_quota_usage_maildirsize(void **state)
{
	struct fixture *f = *state;
	char maildir[256], why[256], file[300], text[6000];
	int temp;
	off_t off;
	int qfd = write_queue(f->qpath, "x\r\n", 3, &off);
	snprintf(maildir, sizeof(maildir), "%s/q/Maildir", f->dir);
	snprintf(file, sizeof(file), "%s/maildirsize", maildir);
	struct maildir_delivery d = { .maildir = maildir, .return_path = "a@b", .delivered_to = "c@d",
		.hostname = "h", .data_fd = qfd, .data_off = off, .data_len = 3 };
	const long long one = (long long)strlen("Return-Path: <a@b>\nDelivered-To: c@d\nx\n");
	long long bytes, msgs;
	/* no file yet: deliveries do not create it */
	for (int i = 0; i < 3; i++)
		assert_int_equal(maildir_deliver(&d, why, sizeof(why), &temp), 0);
	assert_int_equal(access(file, F_OK), -1);
	/* the first check counts and writes it */
	assert_int_equal(maildir_quota_usage(maildir, 100000, 50, &bytes, &msgs), 0);
	assert_int_equal(msgs, 3);
	assert_int_equal(bytes, 3 * one);
	read_file(file, text, sizeof(text));
	char want[100];
	snprintf(want, sizeof(want), "100000S,50C\n%lld 3\n", 3 * one);
	assert_string_equal(text, want);
	/* a delivery appends a line; the next check reads the file, not the folders */
	assert_int_equal(maildir_deliver(&d, why, sizeof(why), &temp), 0);
	assert_int_equal(maildir_quota_usage(maildir, 100000, 50, &bytes, &msgs), 0);
	assert_int_equal(msgs, 4);
	assert_int_equal(bytes, 4 * one);
	/* a deletion the file does not know of is seen only at a recount: a torn line forces one */
	char p[400];
	snprintf(p, sizeof(p), "rm -f %s/new/*", maildir);
	assert_int_equal(system(p), 0);
	assert_int_equal(maildir_quota_usage(maildir, 100000, 50, &bytes, &msgs), 0);
	assert_int_equal(msgs, 4); /* still the file's word */
	FILE *fp = fopen(file, "a");
	fputs("12", fp);
	fclose(fp);
	assert_int_equal(maildir_quota_usage(maildir, 100000, 50, &bytes, &msgs), 0);
	assert_int_equal(msgs, 0);
	assert_int_equal(bytes, 0);
	/* another quota, a file over 5120 bytes: recounted too */
	assert_int_equal(maildir_deliver(&d, why, sizeof(why), &temp), 0);
	assert_int_equal(maildir_quota_usage(maildir, 0, 7, &bytes, &msgs), 0);
	assert_int_equal(msgs, 1);
	read_file(file, text, sizeof(text));
	assert_true(strncmp(text, "7C\n", 3) == 0);
	fp = fopen(file, "a");
	for (int i = 0; i < 1100; i++) /* 5,500 bytes */
		fputs("10 1\n", fp);
	fclose(fp);
	assert_int_equal(maildir_quota_usage(maildir, 0, 7, &bytes, &msgs), 0);
	assert_int_equal(msgs, 1);
	close(qfd);
}

struct pcase {
	const char *tmpl;
	const char *name, *domain, *home;
	const char *want; /* NULL = refused */
};

static const struct pcase pcases[] = {
	{ "/var/mail/%DOMAIN%/%USERNAME%/Maildir", "taro", "abc.co.jp", "", "/var/mail/abc.co.jp/taro/Maildir" },
	{ "%HOME%/Maildir", "taro", "abc.co.jp", "/home/taro", "/home/taro/Maildir" },
	{ "%HOME%/Maildir", "taro", "abc.co.jp", "", NULL },                 /* not absolute */
	{ "/m/%USERNAME%%DOMAIN%", "a", "b.c", "", "/m/ab.c" },
	{ "/m/%username%", "a", "b.c", "", "/m/%username%" },                /* case-sensitive tokens */
	{ "/m/%USERNAME", "a", "b.c", "", "/m/%USERNAME" },
	{ "/m/%USERNAME%/../etc", "a", "b.c", "", NULL },
	{ "%HOME%/Maildir", "a", "b.c", "/home/../etc", NULL },
	{ "/m/%HOME%", "a", "b.c", "/..", NULL },
	{ "/m/%USERNAME%", "a/b", "b.c", "", NULL },                         /* '/' in a name */
	{ "/m/%USERNAME%", "..", "b.c", "", NULL },
	{ "/m/%DOMAIN%/x", "a", "", "", NULL },
	{ "/m/..x/%USERNAME%", "a", "b.c", "", "/m/..x/a" },
};

static void test_path_expand(void **state)
{
	for (size_t i = 0; i < sizeof(pcases) / sizeof(pcases[0]); i++) {
		const struct pcase *c = &pcases[i];
		struct account a = { .name = (char *)c->name, .domain = (char *)c->domain, .home = (char *)c->home };
		char out[256];
		int r = mailbox_path_expand(c->tmpl, &a, out, sizeof(out));
		if (c->want == NULL) {
			if (r != -1)
				fail_msg("case %zu: %s accepted as %s", i, c->tmpl, out);
		} else {
			if (r != 0 || strcmp(out, c->want) != 0)
				fail_msg("case %zu: %s -> %d %s, want %s", i, c->tmpl, r, out, c->want);
		}
	}
	/* Too long for the output buffer. */
	struct account a = { .name = "taro", .domain = "abc.co.jp", .home = "" };
	char small[16];
	assert_int_equal(mailbox_path_expand("/var/mail/%DOMAIN%/%USERNAME%", &a, small, sizeof(small)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_deliver_small, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deliver_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deliver_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_unique, setup, teardown),
		cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_quota_usage_maildirsize, setup, teardown),
		cmocka_unit_test(test_path_expand),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
