/*
 * test_qctl_proto: the queue manager's control protocol (src/queue/qctl_proto.c):
 * a table of requests that parse (and write back the same), a table of requests
 * that must be refused with their reason, domain names, and the answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue/qctl_proto.h"
#include "util/unixsock.h"

#define QID "01K0YAD7MWDARQQ1.mx1"

struct good {
	const char *line;
	enum qctl_cmd cmd;
	int all;
	const char *qid;
	const char *domain;
	const char *canonical; /* what format writes back; NULL = line */
};

static const struct good goods[] = {
	{ "flush\n", QCTL_FLUSH, 0, "", "", NULL },
	{ "flush example.com\n", QCTL_FLUSH, 0, "", "example.com", NULL },
	{ "flush Example.COM.\n", QCTL_FLUSH, 0, "", "Example.COM", "flush Example.COM\n" },
	{ "flush x\n", QCTL_FLUSH, 0, "", "x", NULL },
	{ "flush a-b.c0\n", QCTL_FLUSH, 0, "", "a-b.c0", NULL },
	{ "flush [192.0.2.1]\n", QCTL_FLUSH, 0, "", "[192.0.2.1]", NULL },
	{ "flush [IPv6:2001:db8::1]\n", QCTL_FLUSH, 0, "", "[IPv6:2001:db8::1]", NULL },
	{ "flush b\xc3\xbc" "cher.example\n", QCTL_FLUSH, 0, "", "b\xc3\xbc" "cher.example", NULL },
	{ "flush \xe6\x97\xa5\xe6\x9c\xac.jp\n", QCTL_FLUSH, 0, "", "\xe6\x97\xa5\xe6\x9c\xac.jp", NULL },
	{ "retry " QID "\n", QCTL_RETRY, 0, QID, "", NULL },
	{ "hold " QID "\n", QCTL_HOLD, 0, QID, "", NULL },
	{ "hold ALL\n", QCTL_HOLD, 1, "", "", NULL },
	{ "release " QID "\n", QCTL_RELEASE, 0, QID, "", NULL },
	{ "release ALL\n", QCTL_RELEASE, 1, "", "", NULL },
	{ "link up\n", QCTL_LINK, 0, "", "", NULL },
	{ "link down\n", QCTL_LINK, 0, "", "", NULL },
	{ "link status\n", QCTL_LINK, 0, "", "", NULL },
};

struct bad {
	const char *line;
	size_t len; /* 0 = strlen(line) */
	const char *why;
};

static const struct bad bads[] = {
	{ "", 0, "request does not end in LF" },
	{ "flush", 0, "request does not end in LF" },
	{ "flush\r\n", 0, "control character in request" },
	{ "flush\nflush\n", 0, "more than one line" },
	{ "flush\0\n", 7, "control character in request" },
	{ "flush a\x7f\n", 0, "control character in request" },
	{ "flush\ta\n", 0, "control character in request" },
	{ "FLUSH\n", 0, "unknown command" },
	{ "Flush\n", 0, "unknown command" },
	{ " flush\n", 0, "unknown command" },
	{ "flushx\n", 0, "unknown command" },
	{ "\n", 0, "unknown command" },
	{ "delete " QID "\n", 0, "unknown command" },
	{ "flush \n", 0, "one argument expected, separated by one space" },
	{ "flush  a.test\n", 0, "one argument expected, separated by one space" },
	{ "flush a.test \n", 0, "one argument expected, separated by one space" },
	{ "flush a.test b.test\n", 0, "one argument expected, separated by one space" },
	{ "hold ALL " QID "\n", 0, "one argument expected, separated by one space" },
	{ "flush a..b\n", 0, "not a domain name" },
	{ "flush .a\n", 0, "not a domain name" },
	{ "flush .\n", 0, "not a domain name" },
	{ "flush a..\n", 0, "not a domain name" },
	{ "flush -a.test\n", 0, "not a domain name" },
	{ "flush a-.test\n", 0, "not a domain name" },
	{ "flush a.test-\n", 0, "not a domain name" },
	{ "flush a_b.test\n", 0, "not a domain name" },
	{ "flush a/b\n", 0, "not a domain name" },
	{ "flush a@b.test\n", 0, "not a domain name" },
	{ "flush []\n", 0, "not a domain name" },
	{ "flush [1.2.3.4\n", 0, "not a domain name" },
	{ "flush [1.2.3.4]x\n", 0, "not a domain name" },
	{ "flush [1.2.3.4/8]\n", 0, "not a domain name" },
	{ "flush \xff.test\n", 0, "not a domain name" },          /* not UTF-8 */
	{ "flush \xc0\xaf.test\n", 0, "not a domain name" },      /* overlong */
	{ "flush \xed\xa0\x80.test\n", 0, "not a domain name" },  /* surrogate */
	{ "flush \xc3.test\n", 0, "not a domain name" },          /* cut */
	{ "flush \xf4\x90\x80\x80.test\n", 0, "not a domain name" }, /* > U+10FFFF */
	{ "retry\n", 0, "queue id missing" },
	{ "hold\n", 0, "queue id or ALL missing" },
	{ "release\n", 0, "queue id or ALL missing" },
	{ "retry ALL\n", 0, "not a queue id" },
	{ "hold all\n", 0, "not a queue id" },
	{ "hold All\n", 0, "not a queue id" },
	{ "hold x\n", 0, "not a queue id" },
	{ "hold 01K0YAD7MWDARQQ1.\n", 0, "not a queue id" },
	{ "hold 01K0YAD7MWDARQQ1.mx1/x\n", 0, "not a queue id" },
	{ "hold ../01K0YAD7MWDARQQ1.mx1\n", 0, "not a queue id" },
	{ "release 01K0YAD7MWDARQQ1.abcdefghijklmnopqrstuvwxyz0123456789\n", 0, "not a queue id" },
	{ "hold \xc3\xa9\n", 0, "not a queue id" },
	{ "link\n", 0, "up, down or status missing" },
	{ "link UP\n", 0, "link takes up, down or status" },
	{ "link upp\n", 0, "link takes up, down or status" },
	{ "link u\n", 0, "link takes up, down or status" },
	{ "link ALL\n", 0, "link takes up, down or status" },
	{ "link example.com\n", 0, "link takes up, down or status" },
	{ "link up now\n", 0, "one argument expected, separated by one space" },
	{ "link  up\n", 0, "one argument expected, separated by one space" },
	{ "link up \n", 0, "one argument expected, separated by one space" },
	{ "link up\r\n", 0, "control character in request" },
	{ "Link up\n", 0, "unknown command" },
	{ "links up\n", 0, "unknown command" },
};

static void test_good_requests(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		const struct good *g = &goods[i];
		struct qctl_request r, again;
		char why[128] = "", out[QCTL_LINE_MAX + 1];
		if (qctl_request_parse(g->line, strlen(g->line), &r, why, sizeof(why)) != 0)
			fail_msg("refused %s: %s", g->line, why);
		assert_int_equal(r.cmd, g->cmd);
		assert_int_equal(r.all, g->all);
		if (g->cmd == QCTL_LINK) {
			/* "link OP\n": the op parsed is the one written */
			const char *op = qctl_link_op_name(r.link);
			assert_int_equal(strncmp(g->line + 5, op, strlen(op)), 0);
			assert_int_equal(g->line[5 + strlen(op)], '\n');
		} else {
			assert_int_equal(r.link, 0);
		}
		assert_string_equal(r.qid, g->qid);
		assert_string_equal(r.domain, g->domain);
		int n = qctl_request_format(&r, out, sizeof(out));
		assert_int_equal(n, (int)strlen(out));
		assert_string_equal(out, g->canonical ? g->canonical : g->line);
		assert_int_equal(qctl_request_parse(out, (size_t)n, &again, why, sizeof(why)), 0);
		assert_memory_equal(&r, &again, sizeof(r));
		/* too small an output buffer is an error, never a cut line */
		assert_int_equal(qctl_request_format(&r, out, (size_t)n), -1);
	}
}

static void test_bad_requests(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		const struct bad *b = &bads[i];
		struct qctl_request r;
		char why[128] = "";
		size_t len = b->len ? b->len : strlen(b->line);
		if (qctl_request_parse(b->line, len, &r, why, sizeof(why)) != -1)
			fail_msg("accepted %s", b->line);
		if (strcmp(why, b->why) != 0)
			fail_msg("%s: reason '%s', expected '%s'", b->line, why, b->why);
		assert_string_equal(r.qid, "");
	}
}

static void test_lengths(void **state)
{
	(void)state;
	char line[QCTL_LINE_MAX + 64], why[128];
	struct qctl_request r;
	/* labels: 63 bytes yes, 64 no; names: 253 bytes yes, 254 no */
	char label[80];
	memset(label, 'a', 63);
	label[63] = '\0';
	snprintf(line, sizeof(line), "flush %s.test\n", label);
	assert_int_equal(qctl_request_parse(line, strlen(line), &r, why, sizeof(why)), 0);
	snprintf(line, sizeof(line), "flush %sa.test\n", label);
	assert_int_equal(qctl_request_parse(line, strlen(line), &r, why, sizeof(why)), -1);
	char name[4 * 80 + 4];   /* the label buffer is 80 bytes: room for four and the dots */
	/* 4 x 63 + 3 dots = 255; cut to 253 and 254 */
	snprintf(name, sizeof(name), "%s.%s.%s.%s", label, label, label, label);
	name[253] = '\0';
	assert_true(qctl_domain_valid(name, 253));
	snprintf(line, sizeof(line), "flush %s\n", name);
	assert_int_equal(qctl_request_parse(line, strlen(line), &r, why, sizeof(why)), 0);
	assert_int_equal(strlen(r.domain), 253);
	snprintf(line, sizeof(line), "flush %s.\n", name); /* the trailing dot does not count */
	assert_int_equal(qctl_request_parse(line, strlen(line), &r, why, sizeof(why)), 0);
	name[253] = 'a';
	name[254] = '\0';
	assert_false(qctl_domain_valid(name, 254));
	/* a whole request: QCTL_LINE_MAX bytes with its LF at most */
	memset(line, 'a', sizeof(line));
	memcpy(line, "flush ", 6);
	line[QCTL_LINE_MAX] = '\n';
	assert_int_equal(qctl_request_parse(line, QCTL_LINE_MAX + 1, &r, why, sizeof(why)), -1);
	assert_string_equal(why, "request too long");
	assert_false(qctl_domain_valid("", 0));
	assert_false(qctl_domain_valid("a.b", 0));
	assert_true(qctl_domain_valid("a.b", 3));
	assert_false(qctl_domain_valid("a.b", 2)); /* "a." */
}

struct reply_case {
	const char *text;
	int ok; /* -1: refused */
	const char *code;
	const char *msg;
	long long messages, recipients, held;
};

static const struct reply_case replies[] = {
	{ "ok\n", 1, "", "", -1, -1, -1 },
	{ "ok messages=2 recipients=5\n", 1, "", "", 2, 5, -1 },
	{ "ok recipients=0 messages=0\n", 1, "", "", 0, 0, -1 },
	{ "ok held=999999999999\n", 1, "", "", -1, -1, 999999999999LL },
	{ "error unknown " QID ": no such message\n", 0, "unknown", QID ": no such message", -1, -1, -1 },
	{ "error not-held x\n", 0, "not-held", "x", -1, -1, -1 },
	{ "ok held=1000000000000\n", -1, NULL, NULL, 0, 0, 0 },
	{ "ok messages=01\n", -1, NULL, NULL, 0, 0, 0 },
	{ "ok messages=-1\n", -1, NULL, NULL, 0, 0, 0 },
	{ "ok messages=\n", -1, NULL, NULL, 0, 0, 0 },
	{ "ok messages=1 messages=1\n", -1, NULL, NULL, 0, 0, 0 },
	{ "ok bogus=1\n", -1, NULL, NULL, 0, 0, 0 },
	{ "ok messages\n", -1, NULL, NULL, 0, 0, 0 },
	{ "ok  messages=1\n", -1, NULL, NULL, 0, 0, 0 },
	{ "ok messages=1 \n", -1, NULL, NULL, 0, 0, 0 },
	{ "ok \n", -1, NULL, NULL, 0, 0, 0 },
	{ "okay\n", -1, NULL, NULL, 0, 0, 0 },
	{ "ok\r\n", -1, NULL, NULL, 0, 0, 0 },
	{ "ok", -1, NULL, NULL, 0, 0, 0 },
	{ "ok\nok\n", -1, NULL, NULL, 0, 0, 0 },
	{ "error unknown\n", -1, NULL, NULL, 0, 0, 0 },
	{ "error unknown \n", -1, NULL, NULL, 0, 0, 0 },
	{ "error Unknown x\n", -1, NULL, NULL, 0, 0, 0 },
	{ "error  x\n", -1, NULL, NULL, 0, 0, 0 },
	{ "error unknown \x1b[2J\n", -1, NULL, NULL, 0, 0, 0 },
	{ "error unknown caf\xc3\xa9\n", -1, NULL, NULL, 0, 0, 0 },
	{ "error abcdefghijklmnopqrstuvwxyzabcdef x\n", -1, NULL, NULL, 0, 0, 0 },
	{ "", -1, NULL, NULL, 0, 0, 0 },
};

static void test_replies(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
		const struct reply_case *c = &replies[i];
		struct qctl_reply r, again;
		int rc = qctl_reply_parse(c->text, strlen(c->text), &r);
		if (c->ok < 0) {
			if (rc != -1)
				fail_msg("accepted answer %s", c->text);
			continue;
		}
		if (rc != 0)
			fail_msg("refused answer %s", c->text);
		assert_int_equal(r.ok, c->ok);
		assert_string_equal(r.code, c->code);
		assert_string_equal(r.text, c->msg);
		assert_int_equal(r.count[QCTL_MESSAGES], c->messages);
		assert_int_equal(r.count[QCTL_RECIPIENTS], c->recipients);
		assert_int_equal(r.count[QCTL_HELD], c->held);
		char out[QCTL_REPLY_MAX + 1];
		int n = qctl_reply_format(&r, out, sizeof(out));
		assert_true(n > 0);
		assert_int_equal(qctl_reply_parse(out, (size_t)n, &again), 0);
		assert_memory_equal(&r, &again, sizeof(r));
	}
	/* what the server writes is always readable: odd codes and texts are cleaned, long ones cut */
	struct qctl_reply r, back;
	qctl_reply_init(&r);
	r.ok = 0;
	snprintf(r.code, sizeof(r.code), "Bad_Code");
	memset(r.text, 'x', sizeof(r.text) - 1);
	r.text[5] = '\n';
	r.text[6] = '\x1b';
	char out[QCTL_REPLY_MAX + 1];
	int n = qctl_reply_format(&r, out, sizeof(out));
	assert_true(n > 0 && n <= QCTL_REPLY_MAX);
	assert_int_equal(qctl_reply_parse(out, (size_t)n, &back), 0);
	assert_string_equal(back.code, "-ad--ode");
	assert_memory_equal(back.text, "xxxxx??xx", 9);
	r.text[0] = '\0';
	n = qctl_reply_format(&r, out, sizeof(out));
	assert_int_equal(qctl_reply_parse(out, (size_t)n, &back), 0);
	assert_string_equal(back.text, "-");
	qctl_reply_init(&r);
	for (int i = 0; i < QCTL_NCOUNTERS; i++)
		r.count[i] = i;
	n = qctl_reply_format(&r, out, sizeof(out));
	assert_string_equal(out, "ok messages=0 recipients=1 held=2 pending=3 already=4 released=5 cancelled=6 dialup=7 "
	    "up=8 since=9 by=10 window=11 received=12 delivered=13 sent=14 waiting=15 etrn_ok=16 etrn_failed=17 "
	    "etrn_pending=18 check=19\n");
	assert_int_equal(qctl_reply_parse(out, (size_t)n, &back), 0);
	assert_memory_equal(&r, &back, sizeof(r));
	assert_int_equal(qctl_reply_format(&r, out, 20), -1);
}

/* A link status answer as the queue manager writes it, and what tsubamectl reads back. */
static void test_link_status_reply(void **state)
{
	(void)state;
	const char *text = "ok dialup=1 up=1 since=1767225600 by=1 window=1190 received=3 delivered=3 sent=5 waiting=0 "
	    "etrn_ok=2 etrn_failed=0 etrn_pending=0 check=1\n";
	struct qctl_reply r;
	assert_int_equal(qctl_reply_parse(text, strlen(text), &r), 0);
	assert_int_equal(r.count[QCTL_SINCE], 1767225600LL);
	assert_int_equal(r.count[QCTL_WINDOW], 1190);
	assert_int_equal(r.count[QCTL_SENT], 5);
	assert_int_equal(r.count[QCTL_CHECK], 1);
	assert_int_equal(r.count[QCTL_MESSAGES], -1);
	char out[QCTL_REPLY_MAX + 1];
	assert_int_equal(qctl_reply_format(&r, out, sizeof(out)), (int)strlen(text));
	assert_string_equal(out, text);
	const char *dialup_off = "error dialup-off dial-up operation is off (dialup = no)\n";
	assert_int_equal(qctl_reply_parse(dialup_off, strlen(dialup_off), &r), 0);
	assert_int_equal(r.ok, 0);
	assert_string_equal(r.code, "dialup-off");
	assert_string_equal(qctl_cmd_name(QCTL_LINK), "link");
	assert_string_equal(qctl_link_op_name(QCTL_LINK_STATUS), "status");
	assert_string_equal(qctl_link_op_name(0), "?");
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* The control socket of a deep work_dir: longer than sun_path, reached through /proc/self/fd. */
static void test_long_socket_path(void **state)
{
	(void)state;
	char base[64] = "/tmp/test_qctl.XXXXXX";
	assert_non_null(mkdtemp(base));
	char dir[400];
	snprintf(dir, sizeof(dir), "%s/%0120d/run", base, 0);
	char parent[400];
	snprintf(parent, sizeof(parent), "%s/%0120d", base, 0);
	assert_int_equal(mkdir(parent, 0700), 0);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_true(strlen(dir) + 1 + strlen(QCTL_SOCKET) >= sizeof(((struct sockaddr_un *)0)->sun_path));

	struct sockaddr_un sa;
	socklen_t len;
	int via;
	assert_int_equal(unixsock_addr(dir, QCTL_SOCKET, &sa, &len, &via), 0);
	assert_true(via >= 0);
	int srv = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(srv, (struct sockaddr *)&sa, len), 0);
	close(via);
	assert_int_equal(listen(srv, 1), 0);
	char path[512];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", dir, QCTL_SOCKET);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));

	assert_int_equal(unixsock_addr(dir, QCTL_SOCKET, &sa, &len, &via), 0);
	int cli = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(connect(cli, (struct sockaddr *)&sa, len), 0);
	close(via);
	close(cli);
	close(srv);

	/* a short path goes as it is; a missing deep folder is ENOENT (tsubamectl: "not running") */
	assert_int_equal(unixsock_addr("/tmp", "x.ctl", &sa, &len, &via), 0);
	assert_int_equal(via, -1);
	assert_string_equal(sa.sun_path, "/tmp/x.ctl");
	snprintf(path, sizeof(path), "%s/missing", dir);
	assert_int_equal(unixsock_addr(path, QCTL_SOCKET, &sa, &len, &via), -1);
	assert_int_equal(errno, ENOENT);
	nftw(base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_requests),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_link_status_reply),
		cmocka_unit_test(test_long_socket_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
