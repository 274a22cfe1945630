/*
 * test_qfile: the queue file format (src/queue/qfile.c): round trips, every
 * truncation, damaged trailers and sizes, bad headers (table-driven), in-place
 * recipient updates.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "queue/qfile.h"
#include "util/buf.h"
#include "util/xalloc.h"

#define QID "0G6BQ4V5K0P3H2JX.mx1"
#define CONTENT "Subject: hi\r\n\r\nbody line\r\n"

static struct qrcpt R(char st, const char *orig, const char *dest, const char *present)
{
	struct qrcpt r = { 0 };
	r.state = st;
	r.orig = (char *)orig;
	r.dest = (char *)dest;
	r.present = (char *)present;
	return r;
}

static void env_init(struct qenvelope *e, struct qrcpt *rc, size_t n, const char *sender)
{
	memset(e, 0, sizeof(*e));
	strcpy(e->qid, QID);
	e->arrival = 1767225600;
	e->sender = (char *)sender;
	e->client_addr = (char *)"192.0.2.7";
	e->client_name = (char *)"client.example";
	e->helo = (char *)"[192.0.2.7]";
	e->proto = (char *)"ESMTPS";
	e->body = 1;
	e->smtputf8 = 0;
	e->rcpt = rc;
	e->nrcpt = n;
}

/* A whole file: header + content + trailer. */
static void build(struct buf *out, struct qenvelope *e, const char *content, size_t clen)
{
	buf_init(out, (size_t)1 << 30);
	assert_int_equal(qfile_write_header(out, e), 0);
	assert_int_equal(buf_append(out, content, clen), 0);
	assert_int_equal(qfile_write_trailer(out, (off_t)clen), 0);
}

static int streq(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

static void assert_same(const struct qenvelope *a, const struct qenvelope *b)
{
	assert_string_equal(a->qid, b->qid);
	assert_true(a->arrival == b->arrival);
	assert_true(streq(a->sender, b->sender));
	assert_true(streq(a->client_addr, b->client_addr));
	assert_true(streq(a->client_name, b->client_name));
	assert_true(streq(a->helo, b->helo));
	assert_true(streq(a->proto, b->proto));
	assert_int_equal(a->body, b->body);
	assert_int_equal(a->smtputf8, b->smtputf8);
	assert_int_equal(a->warned, b->warned);
	assert_true(a->warned_off == b->warned_off);
	assert_int_equal(a->ret, b->ret);
	assert_true(streq(a->envid, b->envid));
	assert_true(streq(a->auth, b->auth));
	assert_int_equal(a->notice_admin, b->notice_admin);
	assert_int_equal(a->nrcpt, b->nrcpt);
	for (size_t i = 0; i < a->nrcpt; i++) {
		assert_int_equal(a->rcpt[i].state, b->rcpt[i].state);
		assert_int_equal(a->rcpt[i].attempts, b->rcpt[i].attempts);
		assert_true(a->rcpt[i].next_try == b->rcpt[i].next_try);
		assert_true(streq(a->rcpt[i].orig, b->rcpt[i].orig));
		assert_true(streq(a->rcpt[i].dest, b->rcpt[i].dest));
		assert_true(streq(a->rcpt[i].present, b->rcpt[i].present));
		assert_int_equal(a->rcpt[i].notify, b->rcpt[i].notify);
		assert_true(streq(a->rcpt[i].orcpt, b->rcpt[i].orcpt));
		assert_true(a->rcpt[i].state_off == b->rcpt[i].state_off);
	}
}

static int tmpfile_with(const char *p, size_t n)
{
	char path[] = "/tmp/test_qfile.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	size_t off = 0;
	while (off < n) {
		ssize_t w = write(fd, p + off, n - off);
		assert_true(w > 0);
		off += (size_t)w;
	}
	return fd;
}

/* Parse both from memory and from a file; both must agree. */
static int parse_both(const char *p, size_t n, struct qenvelope *out, char *why, size_t whysz)
{
	struct qenvelope e2;
	char why2[200];
	int r1 = qfile_parse_mem(p, n, out, why, whysz);
	int fd = tmpfile_with(p, n);
	int r2 = qfile_parse(fd, &e2, why2, sizeof(why2));
	close(fd);
	assert_int_equal(r1, r2);
	if (r1 == 0) {
		assert_same(out, &e2);
		assert_true(out->data_off == e2.data_off && out->data_len == e2.data_len);
		qenvelope_free(&e2);
	}
	return r1;
}

/* ---- round trips ------------------------------------------------------- */

struct rt_case {
	const char *name;
	const char *sender;
	struct qrcpt rc[3];
	size_t n;
	long long arrival;
};

static void test_round_trip(void **state)
{
	(void)state;
	struct qrcpt odd = R('R', "a b@example.com", "\"x\ty\"@example.org", "100%@example.net");
	odd.attempts = 17;
	odd.next_try = 1767229200;
	const struct rt_case cases[] = {
		{ "plain", "alice@example.com", { R('L', "bob@example.jp", "bob@example.jp", "bob@example.jp") }, 1, 1767225600 },
		{ "null sender", "", { R('R', "x@y", "x@y", "x@y") }, 1, 0 },
		{ "odd addresses", "%41%%\x01\x7f@ex", { odd, R('D', "ユーザー@例え.jp", "u@xn--r8jz45g.jp", "") }, 2, 1 },
		{ "negative arrival", "s@x", { R('B', "a", "b", "c"), R('X', "d", "e", "f"), R('L', "", "", "") }, 3, -5 },
		{ "controls", "\r\n\t \x1f", { R('R', " \t", "%%", "\x7f") }, 1, 9223372036854775807LL },
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct qenvelope e, p;
		struct qrcpt rc[3];
		struct buf f;
		char why[200];
		memcpy(rc, cases[c].rc, sizeof(rc));
		env_init(&e, rc, cases[c].n, cases[c].sender);
		e.arrival = cases[c].arrival;
		e.smtputf8 = (int)(c & 1);
		e.body = (int)(c % 3);
		build(&f, &e, CONTENT, strlen(CONTENT));
		/* One record per line: no raw control bytes or spaces inside values. */
		for (size_t i = 0; i < (size_t)e.data_off; i++) {
			unsigned char ch = (unsigned char)f.data[i];
			assert_true(ch != '\r' && ch != '\x7f' && (ch >= 0x20 || ch == '\n' || ch == '\t'));
		}
		if (parse_both(f.data, f.len, &p, why, sizeof(why)) != 0)
			fail_msg("%s: %s", cases[c].name, why);
		assert_same(&e, &p);
		assert_true(p.data_off == e.data_off);
		assert_true(p.data_len == (off_t)strlen(CONTENT));
		assert_memory_equal(f.data + p.data_off, CONTENT, strlen(CONTENT));
		for (size_t i = 0; i < p.nrcpt; i++)
			assert_int_equal(f.data[p.rcpt[i].state_off], p.rcpt[i].state);
		/* Canonical: writing the parsed envelope gives the same bytes. */
		struct buf g;
		build(&g, &p, CONTENT, strlen(CONTENT));
		assert_int_equal(g.len, f.len);
		assert_memory_equal(g.data, f.data, f.len);
		buf_free(&g);
		qenvelope_free(&p);
		buf_free(&f);
	}
}

static void test_writer_refuses(void **state)
{
	(void)state;
	struct qrcpt rc[1] = { R('L', "a", "a", "a") };
	struct qenvelope e;
	struct buf b;
	buf_init(&b, 1 << 20);

	env_init(&e, rc, 0, "s");
	assert_int_equal(qfile_write_header(&b, &e), -1);
	env_init(&e, rc, 1, "s");
	strcpy(e.qid, "../etc/passwd");
	assert_int_equal(qfile_write_header(&b, &e), -1);
	env_init(&e, rc, 1, "s");
	e.body = 3;
	assert_int_equal(qfile_write_header(&b, &e), -1);
	env_init(&e, rc, 1, "s");
	e.smtputf8 = 2;
	assert_int_equal(qfile_write_header(&b, &e), -1);
	rc[0].state = 'Q';
	env_init(&e, rc, 1, "s");
	assert_int_equal(qfile_write_header(&b, &e), -1);
	rc[0].state = 'L';
	/* out's maximum: fails and leaves out unchanged. */
	struct buf small;
	buf_init(&small, 40);
	buf_puts(&small, "x");
	assert_int_equal(qfile_write_header(&small, &e), -1);
	assert_int_equal(small.len, 1);
	assert_string_equal(small.data, "x");
	buf_free(&small);
	/* A record over QFILE_LINE_MAX. */
	char *big = xmalloc(QFILE_LINE_MAX + 1);
	memset(big, 'a', QFILE_LINE_MAX);
	big[QFILE_LINE_MAX] = '\0';
	env_init(&e, rc, 1, big);
	assert_int_equal(qfile_write_header(&b, &e), -1);
	assert_int_equal(b.len, 0);
	free(big);
	/* Trailer limits. */
	assert_int_equal(qfile_write_trailer(&b, -1), -1);
	assert_int_equal(qfile_write_trailer(&b, QFILE_TIME_MAX + 1), -1);
	assert_int_equal(qfile_write_trailer(&b, QFILE_TIME_MAX), 0);
	assert_int_equal(b.len, qfile_trailer_len());
	buf_free(&b);
	/* Clamping of the fixed fields. */
	rc[0].attempts = 123456;
	rc[0].next_try = -7;
	env_init(&e, rc, 1, "s");
	struct buf f;
	struct qenvelope p;
	char why[200];
	build(&f, &e, "", 0);
	assert_int_equal(qfile_parse_mem(f.data, f.len, &p, why, sizeof(why)), 0);
	assert_int_equal(p.rcpt[0].attempts, QFILE_ATTEMPTS_MAX);
	assert_true(p.rcpt[0].next_try == 0);
	assert_true(p.data_len == 0);
	qenvelope_free(&p);
	buf_free(&f);
}

/* ---- damage ------------------------------------------------------------ */

static void test_every_truncation(void **state)
{
	(void)state;
	struct qrcpt rc[2] = { R('L', "a@x", "a@x", "a@x"), R('R', "b@y", "b@y", "b@y") };
	struct qenvelope e, p;
	struct buf f;
	char why[200];
	env_init(&e, rc, 2, "s@x");
	build(&f, &e, CONTENT, strlen(CONTENT));
	int fd = tmpfile_with(f.data, f.len);
	for (size_t n = 0; n < f.len; n++) {
		if (qfile_parse_mem(f.data, n, &p, why, sizeof(why)) == 0)
			fail_msg("truncation to %zu bytes accepted (mem)", n);
		assert_true(why[0] != '\0');
		assert_int_equal(ftruncate(fd, (off_t)n), 0);
		if (qfile_parse(fd, &p, why, sizeof(why)) == 0)
			fail_msg("truncation to %zu bytes accepted (fd)", n);
		/* A failed parse leaves nothing to free. */
		assert_null(p.rcpt);
		assert_null(p.sender);
	}
	close(fd);
	assert_int_equal(parse_both(f.data, f.len, &p, why, sizeof(why)), 0);
	qenvelope_free(&p);
	buf_free(&f);
}

static void test_trailer_and_size(void **state)
{
	(void)state;
	struct qrcpt rc[1] = { R('L', "a@x", "a@x", "a@x") };
	struct qenvelope e, p;
	struct buf f;
	char why[200];
	env_init(&e, rc, 1, "s@x");
	build(&f, &e, CONTENT, strlen(CONTENT));
	size_t t = f.len - qfile_trailer_len();

	/* Any single changed byte in the end record. */
	for (size_t i = t; i < f.len; i++) {
		char *c = xmalloc(f.len);
		memcpy(c, f.data, f.len);
		c[i] ^= 0x01;
		if (parse_both(c, f.len, &p, why, sizeof(why)) == 0)
			fail_msg("trailer byte %zu flipped accepted", i - t);
		free(c);
	}
	/* One byte more or less of content with the same end record. */
	struct buf g;
	buf_init(&g, 1 << 20);
	buf_append(&g, f.data, t);
	buf_putc(&g, 'x');
	buf_append(&g, f.data + t, f.len - t);
	assert_int_equal(parse_both(g.data, g.len, &p, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "torn"));
	buf_reset(&g);
	buf_append(&g, f.data, t - 1);
	buf_append(&g, f.data + t, f.len - t);
	assert_int_equal(parse_both(g.data, g.len, &p, why, sizeof(why)), -1);
	/* Garbage after the end record. */
	buf_reset(&g);
	buf_append(&g, f.data, f.len);
	buf_puts(&g, "\n");
	assert_int_equal(parse_both(g.data, g.len, &p, why, sizeof(why)), -1);
	/* Two files back to back. */
	buf_reset(&g);
	buf_append(&g, f.data, f.len);
	buf_append(&g, f.data, f.len);
	assert_int_equal(parse_both(g.data, g.len, &p, why, sizeof(why)), -1);
	/* The end record alone repeated inside the content is just content. */
	buf_free(&g);
	struct buf h;
	buf_init(&h, 1 << 20);
	buf_puts(&h, "a\r\n");
	qfile_write_trailer(&h, 3);
	buf_puts(&h, "b\r\n");
	struct qenvelope e2;
	env_init(&e2, rc, 1, "s@x");
	build(&g, &e2, h.data, h.len);
	assert_int_equal(parse_both(g.data, g.len, &p, why, sizeof(why)), 0);
	assert_true(p.data_len == (off_t)h.len);
	qenvelope_free(&p);
	buf_free(&h);
	buf_free(&g);
	buf_free(&f);
}

static void test_magic(void **state)
{
	(void)state;
	struct qrcpt rc[1] = { R('L', "a@x", "a@x", "a@x") };
	struct qenvelope e, p;
	struct buf f;
	char why[200];
	env_init(&e, rc, 1, "s@x");
	build(&f, &e, CONTENT, strlen(CONTENT));
	size_t ml = strlen(QFILE_MAGIC);
	for (size_t i = 0; i < ml; i++) {
		for (int bit = 0; bit < 8; bit++) {
			f.data[i] ^= (char)(1 << bit);
			if (parse_both(f.data, f.len, &p, why, sizeof(why)) == 0)
				fail_msg("magic byte %zu bit %d flipped accepted", i, bit);
			f.data[i] ^= (char)(1 << bit);
		}
	}
	f.data[ml - 2] = '2';
	assert_int_equal(parse_both(f.data, f.len, &p, why, sizeof(why)), -1);
	assert_string_equal(why, "unknown version");
	buf_free(&f);
}

/* Header sections, each followed by CONTENT and a correct end record. */
struct hdr_case {
	const char *name;
	const char *hdr;
	int ok;
};

#define H_QID "qid: " QID "\n"
#define H_REST "arrival: 1767225600\nsender: s@x\nclient-addr: 192.0.2.7\nclient-name: c\nhelo: h\nproto: ESMTP\nbody: 7bit\nsmtputf8: 0\nwarned: 0\n"
#define H_RCPT "rcpt: L 0000 000000000000 a@x\ta@x\ta@x\t0\t\n"
#define H_DATA "data: \n"
#define MAGIC QFILE_MAGIC

static const struct hdr_case hdr_cases[] = {
	{ "valid", MAGIC H_QID H_REST H_RCPT H_DATA, 1 },
	{ "any key order", MAGIC H_RCPT H_REST H_QID H_RCPT H_DATA, 1 },
	{ "empty values", MAGIC H_QID "arrival: 0\nsender: \nclient-addr: \nclient-name: \nhelo: \nproto: \nbody: binarymime\nsmtputf8: 1\nwarned: 0\n" "rcpt: X 9999 999999999999 \t\t\t0\t\n" H_DATA, 1 },
	{ "encoded", MAGIC H_QID H_REST "rcpt: R 0001 000000000005 a%20b%25%09\t%7F\t\xe3\x81\x82\t0\t\n" H_DATA, 1 },
	{ "duplicate qid", MAGIC H_QID H_QID H_REST H_RCPT H_DATA, 0 },
	{ "duplicate sender", MAGIC H_QID H_REST "sender: t@x\n" H_RCPT H_DATA, 0 },
	{ "duplicate data", MAGIC H_QID H_REST H_RCPT H_DATA H_DATA, 0 },
	{ "missing qid", MAGIC H_REST H_RCPT H_DATA, 0 },
	{ "missing helo", MAGIC H_QID "arrival: 1\nsender: s\nclient-addr: a\nclient-name: c\nproto: p\nbody: 7bit\nsmtputf8: 0\nwarned: 0\n" H_RCPT H_DATA, 0 },
	{ "no rcpt", MAGIC H_QID H_REST H_DATA, 0 },
	{ "no data", MAGIC H_QID H_REST H_RCPT, 0 },
	{ "unknown key", MAGIC H_QID H_REST "x-extra: 1\n" H_RCPT H_DATA, 0 },
	{ "key case", MAGIC "QID: " QID "\n" H_REST H_RCPT H_DATA, 0 },
	{ "no space after colon", MAGIC "qid:" QID "\n" H_REST H_RCPT H_DATA, 0 },
	{ "no colon", MAGIC H_QID H_REST "garbage\n" H_RCPT H_DATA, 0 },
	{ "empty line", MAGIC H_QID H_REST "\n" H_RCPT H_DATA, 0 },
	{ "CR in line", MAGIC H_QID H_REST "helo: a\rb\n" H_RCPT H_DATA, 0 },
	{ "bad qid", MAGIC "qid: ../../etc/passwd\n" H_REST H_RCPT H_DATA, 0 },
	{ "qid with space", MAGIC "qid: " QID " \n" H_REST H_RCPT H_DATA, 0 },
	{ "arrival leading zero", MAGIC H_QID "arrival: 01\nsender: s\nclient-addr: a\nclient-name: c\nhelo: h\nproto: p\nbody: 7bit\nsmtputf8: 0\nwarned: 0\n" H_RCPT H_DATA, 0 },
	{ "arrival overflow", MAGIC H_QID "arrival: 9223372036854775808\nsender: s\nclient-addr: a\nclient-name: c\nhelo: h\nproto: p\nbody: 7bit\nsmtputf8: 0\nwarned: 0\n" H_RCPT H_DATA, 0 },
	{ "arrival minus zero", MAGIC H_QID "arrival: -0\nsender: s\nclient-addr: a\nclient-name: c\nhelo: h\nproto: p\nbody: 7bit\nsmtputf8: 0\nwarned: 0\n" H_RCPT H_DATA, 0 },
	{ "arrival plus", MAGIC H_QID "arrival: +1\nsender: s\nclient-addr: a\nclient-name: c\nhelo: h\nproto: p\nbody: 7bit\nsmtputf8: 0\nwarned: 0\n" H_RCPT H_DATA, 0 },
	{ "arrival empty", MAGIC H_QID "arrival: \nsender: s\nclient-addr: a\nclient-name: c\nhelo: h\nproto: p\nbody: 7bit\nsmtputf8: 0\nwarned: 0\n" H_RCPT H_DATA, 0 },
	{ "arrival min", MAGIC H_QID "arrival: -9223372036854775808\nsender: s\nclient-addr: a\nclient-name: c\nhelo: h\nproto: p\nbody: 7bit\nsmtputf8: 0\nwarned: 0\n" H_RCPT H_DATA, 1 },
	{ "body unknown", MAGIC H_QID "arrival: 1\nsender: s\nclient-addr: a\nclient-name: c\nhelo: h\nproto: p\nbody: 8BITMIME\nsmtputf8: 0\nwarned: 0\n" H_RCPT H_DATA, 0 },
	{ "smtputf8 2", MAGIC H_QID "arrival: 1\nsender: s\nclient-addr: a\nclient-name: c\nhelo: h\nproto: p\nbody: 7bit\nsmtputf8: 2\nwarned: 0\n" H_RCPT H_DATA, 0 },
	{ "ret full", MAGIC H_QID H_REST "ret: full\n" H_RCPT H_DATA, 1 },
	{ "ret unknown", MAGIC H_QID H_REST "ret: all\n" H_RCPT H_DATA, 0 },
	{ "envid empty", MAGIC H_QID H_REST "envid: \n" H_RCPT H_DATA, 0 },
	{ "auth empty", MAGIC H_QID H_REST "auth: \n" H_RCPT H_DATA, 0 },
	{ "notice other", MAGIC H_QID H_REST "notice: user\n" H_RCPT H_DATA, 0 },
	{ "warned 2", MAGIC H_QID "arrival: 1\nsender: s\nclient-addr: a\nclient-name: c\nhelo: h\nproto: p\nbody: 7bit\nsmtputf8: 0\nwarned: 2\n" H_RCPT H_DATA, 0 },
	{ "warned missing", MAGIC H_QID "arrival: 1\nsender: s\nclient-addr: a\nclient-name: c\nhelo: h\nproto: p\nbody: 7bit\nsmtputf8: 0\n" H_RCPT H_DATA, 0 },
	{ "notify 8", MAGIC H_QID H_REST "rcpt: L 0000 000000000000 a\ta\ta\t8\trfc822;a\n" H_DATA, 1 },
	{ "notify 9", MAGIC H_QID H_REST "rcpt: L 0000 000000000000 a\ta\ta\t9\t\n" H_DATA, 0 },
	{ "notify two digits", MAGIC H_QID H_REST "rcpt: L 0000 000000000000 a\ta\ta\t12\t\n" H_DATA, 0 },
	{ "notify missing", MAGIC H_QID H_REST "rcpt: L 0000 000000000000 a\ta\ta\t\t\n" H_DATA, 0 },
	{ "rcpt six fields", MAGIC H_QID H_REST "rcpt: L 0000 000000000000 a\ta\ta\t0\ta\ta\n" H_DATA, 0 },
	{ "rcpt bad state", MAGIC H_QID H_REST "rcpt: Q 0000 000000000000 a\ta\ta\t0\t\n" H_DATA, 0 },
	{ "rcpt short attempts", MAGIC H_QID H_REST "rcpt: L 000 000000000000 a\ta\ta\t0\t\n" H_DATA, 0 },
	{ "rcpt letter in time", MAGIC H_QID H_REST "rcpt: L 0000 00000000000x a\ta\ta\t0\t\n" H_DATA, 0 },
	{ "rcpt two fields", MAGIC H_QID H_REST "rcpt: L 0000 000000000000 a\ta\n" H_DATA, 0 },
	{ "rcpt four fields", MAGIC H_QID H_REST "rcpt: L 0000 000000000000 a\ta\ta\ta\n" H_DATA, 0 },
	{ "rcpt no fields", MAGIC H_QID H_REST "rcpt: L 0000 000000000000\n" H_DATA, 0 },
	{ "rcpt raw space", MAGIC H_QID H_REST "rcpt: L 0000 000000000000 a b\ta\ta\t0\t\n" H_DATA, 0 },
	{ "needless %41", MAGIC H_QID H_REST "rcpt: L 0000 000000000000 %41\ta\ta\t0\t\n" H_DATA, 0 },
	{ "lower-case hex", MAGIC H_QID H_REST "rcpt: L 0000 000000000000 %7f\ta\ta\t0\t\n" H_DATA, 0 },
	{ "%00", MAGIC H_QID H_REST "rcpt: L 0000 000000000000 a%00\ta\ta\t0\t\n" H_DATA, 0 },
	{ "short escape", MAGIC H_QID H_REST "rcpt: L 0000 000000000000 a%2\ta\ta\t0\t\n" H_DATA, 0 },
	{ "DEL raw", MAGIC H_QID H_REST "rcpt: L 0000 000000000000 a\x7f\ta\ta\t0\t\n" H_DATA, 0 },
	{ "data with value", MAGIC H_QID H_REST H_RCPT "data: x\n", 0 },
	{ "data without space", MAGIC H_QID H_REST H_RCPT "data:\n", 0 },
	{ "magic only", MAGIC H_DATA, 0 },
	{ "old magic", "TSUBAME-QUEUE 0\n" H_QID H_REST H_RCPT H_DATA, 0 },
	{ "CRLF magic", "TSUBAME-QUEUE 1\r\n" H_QID H_REST H_RCPT H_DATA, 0 },
};

static void test_header_table(void **state)
{
	(void)state;
	for (size_t c = 0; c < sizeof(hdr_cases) / sizeof(hdr_cases[0]); c++) {
		struct buf f;
		struct qenvelope p;
		char why[200] = "";
		buf_init(&f, 1 << 20);
		buf_puts(&f, hdr_cases[c].hdr);
		buf_puts(&f, CONTENT);
		qfile_write_trailer(&f, (off_t)strlen(CONTENT));
		int r = parse_both(f.data, f.len, &p, why, sizeof(why));
		if ((r == 0) != hdr_cases[c].ok)
			fail_msg("case '%s': parse %s (%s)", hdr_cases[c].name, r == 0 ? "accepted" : "rejected", why);
		if (r == 0) {
			assert_true(p.data_off == (off_t)strlen(hdr_cases[c].hdr));
			assert_memory_equal(f.data + p.data_off, CONTENT, strlen(CONTENT));
			qenvelope_free(&p);
		} else {
			assert_true(why[0] != '\0');
		}
		buf_free(&f);
	}
}

/* RFC 3461 fields and the notice flags survive the round trip; the warned digit is updated in place. */
static void test_dsn_fields(void **state)
{
	(void)state;
	struct qrcpt rc[3] = { R('L', "a@x", "a@x", "a@x"), R('R', "b@z", "b@z", "b@z"), R('R', "c@z", "c@z", "c@z") };
	rc[0].notify = DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY;
	rc[0].orcpt = (char *)"rfc822;Boss Name@x";
	rc[1].notify = DSN_NOTIFY_NEVER;
	struct qenvelope e, p;
	env_init(&e, rc, 3, "");
	e.ret = DSN_RET_HDRS;
	e.envid = (char *)"QQ314159";
	e.auth = (char *)"demo@example.test";
	e.notice_admin = 1;
	struct buf f;
	char why[200];
	build(&f, &e, CONTENT, strlen(CONTENT));
	assert_non_null(strstr(f.data, "\nret: hdrs\nenvid: QQ314159\nauth: demo@example.test\nnotice: admin\n"));
	assert_non_null(strstr(f.data, "\ta@x\t5\trfc822;Boss%20Name@x\n"));
	int fd = tmpfile_with(f.data, f.len);
	assert_int_equal(qfile_parse(fd, &p, why, sizeof(why)), 0);
	assert_same(&e, &p);
	assert_int_equal(p.warned, 0);
	assert_int_equal(qfile_set_warned(fd, &p), 0);
	assert_int_equal(p.warned, 1);
	struct qenvelope again;
	assert_int_equal(qfile_parse(fd, &again, why, sizeof(why)), 0);
	assert_int_equal(again.warned, 1);
	assert_string_equal(again.envid, "QQ314159");
	qenvelope_free(&again);
	qenvelope_free(&p);
	close(fd);
	buf_free(&f);

	/* The writer refuses what the parser would refuse. */
	env_init(&e, rc, 3, "s@x");
	rc[2].notify = DSN_NOTIFY_NEVER | DSN_NOTIFY_FAILURE;
	buf_init(&f, 1 << 20);
	assert_int_equal(qfile_write_header(&f, &e), -1);
	rc[2].notify = 0;
	e.ret = 3;
	assert_int_equal(qfile_write_header(&f, &e), -1);
	buf_free(&f);
}

static void test_encoded_values(void **state)
{
	(void)state;
	struct buf f;
	struct qenvelope p;
	char why[200];
	buf_init(&f, 1 << 20);
	buf_puts(&f, MAGIC H_QID H_REST "rcpt: R 0001 000000000005 a%20b%25%09\t%7F\t\xe3\x81\x82\t0\t\n" H_DATA);
	qfile_write_trailer(&f, 0);
	assert_int_equal(qfile_parse_mem(f.data, f.len, &p, why, sizeof(why)), 0);
	assert_string_equal(p.rcpt[0].orig, "a b%\t");
	assert_string_equal(p.rcpt[0].dest, "\x7f");
	assert_string_equal(p.rcpt[0].present, "\xe3\x81\x82");
	assert_int_equal(p.rcpt[0].attempts, 1);
	assert_true(p.rcpt[0].next_try == 5);
	assert_true(p.data_len == 0);
	qenvelope_free(&p);
	buf_free(&f);
}

static void test_limits(void **state)
{
	(void)state;
	struct buf f;
	struct qenvelope p;
	char why[200];
	buf_init(&f, (size_t)1 << 30);
	/* A header line longer than QFILE_LINE_MAX. */
	buf_puts(&f, MAGIC H_QID "helo: ");
	for (size_t i = 0; i < QFILE_LINE_MAX; i++)
		buf_putc(&f, 'h');
	buf_puts(&f, "\n" H_RCPT H_DATA);
	qfile_write_trailer(&f, 0);
	assert_int_equal(parse_both(f.data, f.len, &p, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "too long"));

	/* QFILE_RCPT_MAX recipients are fine, one more is not. */
	buf_reset(&f);
	buf_puts(&f, MAGIC H_QID H_REST);
	for (int i = 0; i < QFILE_RCPT_MAX; i++)
		buf_puts(&f, H_RCPT);
	size_t at = f.len;
	buf_puts(&f, H_DATA);
	qfile_write_trailer(&f, 0);
	assert_int_equal(parse_both(f.data, f.len, &p, why, sizeof(why)), 0);
	assert_int_equal(p.nrcpt, QFILE_RCPT_MAX);
	assert_true(p.rcpt[QFILE_RCPT_MAX - 1].state_off == (off_t)(at - strlen(H_RCPT) + 6));
	qenvelope_free(&p);
	f.len = at;
	buf_puts(&f, H_RCPT H_DATA);
	qfile_write_trailer(&f, 0);
	assert_int_equal(parse_both(f.data, f.len, &p, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "recipients"));
	buf_free(&f);

	/* A header of more than QFILE_HEADER_MAX bytes (lines of legal length). */
	buf_init(&f, (size_t)1 << 30);
	buf_puts(&f, MAGIC H_QID H_REST);
	struct buf line;
	buf_init(&line, QFILE_LINE_MAX);
	buf_puts(&line, "rcpt: L 0000 000000000000 ");
	while (line.len < QFILE_LINE_MAX - 10)
		buf_putc(&line, 'a');
	buf_puts(&line, "\ta\ta\t0\t\n");
	while (f.len <= QFILE_HEADER_MAX)
		buf_append(&f, line.data, line.len);
	buf_puts(&f, H_DATA);
	qfile_write_trailer(&f, 0);
	assert_int_equal(parse_both(f.data, f.len, &p, why, sizeof(why)), -1);
	buf_free(&line);
	buf_free(&f);
}

static void test_large_from_fd(void **state)
{
	(void)state;
	/* Header larger than one read chunk and content of 3 MiB. */
	enum { N = 3000 };
	struct qrcpt *rc = xcalloc(N, sizeof(*rc));
	char (*names)[32] = xcalloc(N, sizeof(*names));
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "user%d@example.com", i);
		rc[i] = R(i % 2 ? 'L' : 'R', names[i], names[i], names[i]);
	}
	struct qenvelope e, p;
	env_init(&e, rc, N, "s@x");
	size_t clen = (size_t)3 << 20;
	char *content = xmalloc(clen);
	for (size_t i = 0; i < clen; i++)
		content[i] = (i % 80 == 78) ? '\r' : (i % 80 == 79) ? '\n' : 'a';
	struct buf f;
	char why[200];
	build(&f, &e, content, clen);
	assert_true(e.data_off > 65536);
	assert_int_equal(parse_both(f.data, f.len, &p, why, sizeof(why)), 0);
	assert_same(&e, &p);
	assert_true(p.data_len == (off_t)clen);
	qenvelope_free(&p);
	buf_free(&f);
	free(content);
	free(names);
	free(rc);
}

static void test_set_rcpt(void **state)
{
	(void)state;
	struct qrcpt rc[3] = { R('L', "a@x", "a@x", "a@x"), R('R', "b y@z", "b@z", "b@z"), R('R', "c@z", "c@z", "c@z") };
	struct qenvelope e, p;
	struct buf f;
	char why[200];
	env_init(&e, rc, 3, "s@x");
	build(&f, &e, CONTENT, strlen(CONTENT));
	int fd = tmpfile_with(f.data, f.len);
	assert_int_equal(qfile_parse(fd, &p, why, sizeof(why)), 0);
	assert_false(qenvelope_finished(&p));

	const struct {
		size_t i;
		char st;
		unsigned att;
		long long nt;
	} steps[] = {
		{ 0, RCPT_DONE, 1, 0 },
		{ 1, RCPT_REMOTE, 1, 1767229200 },
		{ 1, RCPT_REMOTE, 9999, 999999999999LL },
		{ 2, RCPT_BOUNCED, 3, 0 },
		{ 1, RCPT_EXPIRED, 12, 42 },
	};
	for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
		struct qrcpt *r = &p.rcpt[steps[s].i];
		r->state = steps[s].st;
		r->attempts = steps[s].att;
		r->next_try = steps[s].nt;
		assert_int_equal(qfile_set_rcpt(fd, r), 0);
		struct qenvelope q;
		assert_int_equal(qfile_parse(fd, &q, why, sizeof(why)), 0);
		assert_same(&p, &q);
		assert_int_equal(qenvelope_finished(&q), s == 4);
		qenvelope_free(&q);
	}
	off_t size = lseek(fd, 0, SEEK_END);
	assert_true(size == (off_t)f.len);
	/* Refused: unknown state, no offset. */
	struct qrcpt bad = p.rcpt[0];
	bad.state = 'Z';
	assert_int_equal(qfile_set_rcpt(fd, &bad), -1);
	assert_int_equal(errno, EINVAL);
	bad.state = 'D';
	bad.state_off = 0;
	assert_int_equal(qfile_set_rcpt(fd, &bad), -1);
	close(fd);
	qenvelope_free(&p);
	buf_free(&f);
}

static void test_finished(void **state)
{
	(void)state;
	const struct {
		const char *states;
		int finished;
	} cases[] = { { "D", 1 }, { "DBX", 1 }, { "L", 0 }, { "DR", 0 }, { "XXXXL", 0 }, { "B", 1 } };
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct qrcpt rc[8];
		size_t n = strlen(cases[c].states);
		for (size_t i = 0; i < n; i++)
			rc[i] = R(cases[c].states[i], "a", "a", "a");
		struct qenvelope e;
		env_init(&e, rc, n, "");
		assert_int_equal(qenvelope_finished(&e), cases[c].finished);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_writer_refuses),
		cmocka_unit_test(test_every_truncation),
		cmocka_unit_test(test_trailer_and_size),
		cmocka_unit_test(test_magic),
		cmocka_unit_test(test_header_table),
		cmocka_unit_test(test_encoded_values),
		cmocka_unit_test(test_dsn_fields),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_large_from_fd),
		cmocka_unit_test(test_set_rcpt),
		cmocka_unit_test(test_finished),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
