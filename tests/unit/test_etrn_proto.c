/*
 * test_etrn_proto: the ETRN client's pure pieces (src/deliver/etrn_proto.c):
 * tables of arguments, server addresses and reply transcripts, the meaning of
 * every RFC 1985 reply code, and the configuration check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/etrn_proto.h"

struct arg_case {
	const char *arg;
	int kind; /* -1: refused */
};

static const struct arg_case args[] = {
	{ "site.test", ETRN_ARG_DOMAIN },
	{ "x", ETRN_ARG_DOMAIN },
	{ "Mail.Site-1.test", ETRN_ARG_DOMAIN },
	{ "b\xc3\xbc" "cher.example", ETRN_ARG_DOMAIN },
	{ "[192.0.2.1]", ETRN_ARG_DOMAIN },
	{ "@site.test", ETRN_ARG_SUBDOMAINS },
	{ "#site", ETRN_ARG_QUEUE },
	{ "#queue-1_x.y@z", ETRN_ARG_QUEUE },
	{ "#!", ETRN_ARG_QUEUE },
	{ "", -1 },
	{ "#", -1 },
	{ "@", -1 },
	{ "@@site.test", -1 },
	{ "@#q", -1 },
	{ "site.test.", -1 },
	{ ".site.test", -1 },
	{ "site..test", -1 },
	{ "-site.test", -1 },
	{ "site test", -1 },
	{ "site.test\r", -1 },
	{ "site.test\r\nQUIT", -1 },
	{ "#a b", -1 },
	{ "#a\tb", -1 },
	{ "#\x7f", -1 },
	{ "#caf\xc3\xa9", -1 },
	{ "a_b.test", -1 },
	{ "\xff.test", -1 },
};

static void test_args(void **state)
{
	(void)state;
	char why[128];
	for (size_t i = 0; i < sizeof(args) / sizeof(args[0]); i++) {
		why[0] = '\0';
		int k = etrn_arg_check(args[i].arg, why, sizeof(why));
		if (k != args[i].kind)
			fail_msg("'%s': %d, expected %d (%s)", args[i].arg, k, args[i].kind, why);
		if (k < 0 && !why[0])
			fail_msg("'%s' refused without a reason", args[i].arg);
	}
	/* the length limit: "ETRN " + argument + CRLF fits RFC 5321's 512-byte command line */
	char q[ETRN_ARG_MAX + 2];
	memset(q, 'q', sizeof(q));
	q[0] = '#';
	q[ETRN_ARG_MAX] = '\0';
	assert_int_equal(etrn_arg_check(q, why, sizeof(why)), ETRN_ARG_QUEUE);
	q[ETRN_ARG_MAX] = 'q';
	q[ETRN_ARG_MAX + 1] = '\0';
	assert_int_equal(etrn_arg_check(q, why, sizeof(why)), -1);
	assert_string_equal(why, "argument too long");
	assert_true(5 + ETRN_ARG_MAX + 2 <= 512);
}

struct server_case {
	const char *text;
	const char *host; /* NULL: refused */
	unsigned port;
	int given;
};

static const struct server_case servers[] = {
	{ "isp.example", "isp.example", 25, 0 },
	{ "isp.example:2525", "isp.example", 2525, 1 },
	{ "127.0.0.2:25", "127.0.0.2", 25, 1 },
	{ "192.0.2.1", "192.0.2.1", 25, 0 },
	{ "[2001:db8::1]:587", "2001:db8::1", 587, 1 },
	{ "[2001:db8::1]", "2001:db8::1", 25, 0 },
	{ "2001:db8::1", "2001:db8::1", 25, 0 },
	{ "isp.example:0", NULL, 0, 0 },
	{ "isp.example:65536", NULL, 0, 0 },
	{ "isp.example:", NULL, 0, 0 },
	{ "isp.example:25x", NULL, 0, 0 },
	{ "isp.example:+25", NULL, 0, 0 },
	{ "isp.example:25*", NULL, 0, 0 },
	{ "", NULL, 0, 0 },
	{ ":25", NULL, 0, 0 },
	{ "[2001:db8::1]x", NULL, 0, 0 },
	{ "[2001:db8::1", NULL, 0, 0 },
	{ "[isp.example]:25", NULL, 0, 0 },
	{ "isp example", NULL, 0, 0 },
	{ "isp_example", NULL, 0, 0 },
};

static void test_servers(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(servers) / sizeof(servers[0]); i++) {
		const struct server_case *c = &servers[i];
		char host[ETRN_HOST_MAX], why[128] = "";
		unsigned port = 0;
		int given = -1;
		int r = etrn_server_parse(c->text, host, sizeof(host), &port, &given, why, sizeof(why));
		if (!c->host) {
			if (r != -1)
				fail_msg("accepted '%s'", c->text);
			assert_true(why[0] != '\0');
			continue;
		}
		if (r != 0)
			fail_msg("refused '%s': %s", c->text, why);
		assert_string_equal(host, c->host);
		assert_int_equal(port, c->port);
		assert_int_equal(given, c->given);
	}
}

struct reply_case {
	const char *lines;   /* '|' separates lines */
	int rc;              /* of the last line fed: 1 complete, -1 refused */
	int code;
	const char *text;
	unsigned ehlo;
};

static const struct reply_case replies[] = {
	{ "250 Queuing started", 1, 250, "Queuing started", 0 },
	{ "251 OK, no messages waiting for node site.test\r", 1, 251, "OK, no messages waiting for node site.test", 0 },
	{ "253 OK, 14 pending messages for node site.test started", 1, 253,
	  "OK, 14 pending messages for node site.test started", 0 },
	{ "250", 1, 250, "", 0 },
	{ "250 ", 1, 250, "", 0 },
	{ "250-isp.example|250-PIPELINING|250-etrn|250 STARTTLS", 1, 250, "isp.example",
	  ETRN_EHLO_ETRN | ETRN_EHLO_STARTTLS },
	{ "250-isp.example|250-ETRNX|250-XETRN|250 SIZE 1000", 1, 250, "isp.example", 0 },
	{ "250-isp.example|250 ETRN extra", 1, 250, "isp.example", ETRN_EHLO_ETRN },
	{ "220 caf\xc3\xa9 \x1b[2J ready", 1, 220, "caf?? ?[2J ready", 0 },
	{ "250-a|251 b", -1, 0, NULL, 0 },
	{ "250x", -1, 0, NULL, 0 },
	{ "25", -1, 0, NULL, 0 },
	{ "", -1, 0, NULL, 0 },
	{ "abc def", -1, 0, NULL, 0 },
	{ "150 preliminary", -1, 0, NULL, 0 },
	{ "650 six", -1, 0, NULL, 0 },
	{ "260 bad second digit", -1, 0, NULL, 0 },
	{ " 250 ok", -1, 0, NULL, 0 },
};

static void test_replies(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
		const struct reply_case *c = &replies[i];
		struct etrn_reply r;
		etrn_reply_init(&r);
		char *copy = strdup(c->lines);
		int rc = 0;
		/* strtok_r would skip an empty line: split by hand */
		char *p = copy;
		for (;;) {
			char *bar = strchr(p, '|');
			if (bar)
				*bar = '\0';
			rc = etrn_reply_feed(&r, p, strlen(p));
			if (!bar || rc != 0)
				break;
			p = bar + 1;
		}
		free(copy);
		if (rc != c->rc)
			fail_msg("'%s': %d, expected %d", c->lines, rc, c->rc);
		if (rc != 1)
			continue;
		assert_int_equal(r.code, c->code);
		assert_string_equal(r.text, c->text);
		assert_int_equal(r.ehlo, c->ehlo);
		assert_true(r.complete);
		/* a complete reply takes no more lines */
		assert_int_equal(etrn_reply_feed(&r, "250 more", 8), -1);
	}
	/* more than ETRN_REPLY_LINES_MAX lines, and an over-long line */
	struct etrn_reply r;
	etrn_reply_init(&r);
	for (int i = 0; i < ETRN_REPLY_LINES_MAX; i++)
		assert_int_equal(etrn_reply_feed(&r, "250-x", 5), 0);
	assert_int_equal(etrn_reply_feed(&r, "250 x", 5), -1);
	char *big = malloc(ETRN_LINE_MAX + 2);
	memset(big, 'x', ETRN_LINE_MAX + 1);
	memcpy(big, "250 ", 4);
	etrn_reply_init(&r);
	assert_int_equal(etrn_reply_feed(&r, big, ETRN_LINE_MAX + 1), -1);
	etrn_reply_init(&r);
	assert_int_equal(etrn_reply_feed(&r, big, ETRN_LINE_MAX), 1);
	assert_int_equal(strlen(r.text), ETRN_TEXT_MAX - 1); /* cut, never overrun */
	free(big);
}

static void test_outcomes(void **state)
{
	(void)state;
	/* RFC 1985 section 5.1, every code, and the ones around them */
	static const struct { int code; enum etrn_outcome o; } t[] = {
		{ 250, ETRN_ACCEPTED }, { 251, ETRN_ACCEPTED }, { 252, ETRN_ACCEPTED }, { 253, ETRN_ACCEPTED },
		{ 458, ETRN_TEMP }, { 421, ETRN_TEMP }, { 450, ETRN_TEMP }, { 459, ETRN_REFUSED },
		{ 500, ETRN_FAILED }, { 501, ETRN_FAILED }, { 502, ETRN_FAILED }, { 554, ETRN_FAILED },
		{ 0, ETRN_FAILED },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		assert_int_equal(etrn_outcome_of(t[i].code), t[i].o);
	assert_string_equal(etrn_code_meaning(251), "no messages waiting for the node");
	assert_string_equal(etrn_code_meaning(458), "unable to queue messages for the node");
	assert_string_equal(etrn_code_meaning(459), "node not allowed");
	assert_string_equal(etrn_code_meaning(501), "syntax error in parameters");
	assert_string_equal(etrn_code_meaning(299), "accepted");
	assert_string_equal(etrn_outcome_name(ETRN_REFUSED), "refused");
	char out[8];
	etrn_clean_text(out, sizeof(out), "a\x01" "bcdefghij", 11);
	assert_string_equal(out, "a?bcdef");
}

static void test_config(void **state)
{
	(void)state;
	struct config c;
	struct buf errors;
	config_defaults(&c);
	buf_init(&errors, 4096);
	assert_int_equal(etrn_config_check(&c, "t.conf", &errors), 0);
	free(c.etrn_server);
	c.etrn_server = strdup("isp.example:25x");
	c.etrn_domains.v = calloc(2, sizeof(char *));
	c.etrn_domains.v[0] = strdup("site.test");
	c.etrn_domains.v[1] = strdup("bad domain");
	c.etrn_domains.n = 2;
	assert_int_equal(etrn_config_check(&c, "t.conf", &errors), 2);
	assert_non_null(strstr(buf_cstr(&errors), "t.conf: etrn_server 'isp.example:25x' is not host[:port]"));
	assert_non_null(strstr(buf_cstr(&errors), "t.conf: etrn_domains: 'bad domain':"));
	free(c.etrn_server);
	c.etrn_server = strdup("");
	free(c.etrn_domains.v[1]);
	c.etrn_domains.n = 1;
	buf_reset(&errors);
	assert_int_equal(etrn_config_check(&c, "t.conf", &errors), 1);
	assert_non_null(strstr(buf_cstr(&errors), "etrn_server is empty"));
	buf_free(&errors);
	config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_args),
		cmocka_unit_test(test_servers),
		cmocka_unit_test(test_replies),
		cmocka_unit_test(test_outcomes),
		cmocka_unit_test(test_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
