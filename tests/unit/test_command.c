/*
 * test_command: table-driven tests of command splitting and of the MAIL, RCPT,
 * BDAT and HELO argument parsers (smtp/command.c), including every reply code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/command.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct split_case {
	const char *line;
	enum smtp_verb verb;
	const char *args;
};

static const struct split_case split_cases[] = {
	{ "HELO example.com", VERB_HELO, "example.com" },
	{ "ehlo example.com", VERB_EHLO, "example.com" },
	{ "MAIL FROM:<a@b>", VERB_MAIL, "FROM:<a@b>" },
	{ "mAiL FROM:<a@b>", VERB_MAIL, "FROM:<a@b>" },
	{ "RCPT TO:<a@b>", VERB_RCPT, "TO:<a@b>" },
	{ "DATA", VERB_DATA, "" },
	{ "DATA ", VERB_DATA, "" },
	{ "BDAT 10 LAST", VERB_BDAT, "10 LAST" },
	{ "RSET", VERB_RSET, "" },
	{ "NOOP hello", VERB_NOOP, "hello" },
	{ "QUIT", VERB_QUIT, "" },
	{ "VRFY x", VERB_VRFY, "x" },
	{ "EXPN x", VERB_EXPN, "x" },
	{ "HELP", VERB_HELP, "" },
	{ "STARTTLS", VERB_STARTTLS, "" },
	{ "starttls", VERB_STARTTLS, "" },
	{ "AUTH PLAIN", VERB_AUTH, "PLAIN" },
	{ "TURN", VERB_TURN, "" },
	{ "ETRN x", VERB_ETRN, "x" },
	{ "ATRN", VERB_ATRN, "" },
	{ "MAIL  FROM:<>", VERB_MAIL, " FROM:<>" },
	{ "", VERB_UNKNOWN, "" },
	{ " MAIL FROM:<>", VERB_UNKNOWN, "MAIL FROM:<>" },
	{ "MAILFROM:<>", VERB_UNKNOWN, "" },
	{ "MAIL:FROM", VERB_UNKNOWN, "" },
	{ "MAI", VERB_UNKNOWN, "" },
	{ "QUITX", VERB_UNKNOWN, "" },
	{ "QUIT\t", VERB_UNKNOWN, "" },
	{ "GET / HTTP/1.0", VERB_UNKNOWN, "/ HTTP/1.0" },
	{ "UNKNOWN", VERB_UNKNOWN, "" },
};

static void test_split(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(split_cases); i++) {
		struct smtp_command c;
		command_split(split_cases[i].line, &c);
		if (c.verb != split_cases[i].verb)
			print_error("case %zu '%s'\n", i, split_cases[i].line);
		assert_int_equal(c.verb, split_cases[i].verb);
		assert_string_equal(c.args, split_cases[i].args);
	}
}

static void test_verb_name(void **state)
{
	(void)state;
	assert_string_equal(verb_name(VERB_MAIL), "MAIL");
	assert_string_equal(verb_name(VERB_STARTTLS), "STARTTLS");
	assert_string_equal(verb_name(VERB_UNKNOWN), "UNKNOWN");
	assert_string_equal(verb_name(VERB_COUNT), "UNKNOWN");
	assert_string_equal(verb_name((enum smtp_verb)-1), "UNKNOWN");
	/* every verb name splits back to itself */
	for (int v = VERB_UNKNOWN + 1; v < VERB_COUNT; v++) {
		struct smtp_command c;
		command_split(verb_name((enum smtp_verb)v), &c);
		assert_int_equal(c.verb, v);
	}
}

struct mail_case {
	const char *args;
	unsigned flags;
	int code;         /* 0: success */
	const char *enh;
	const char *text; /* NULL: not checked */
	const char *addr; /* formatted, on success */
	uint64_t size;
	int has_size;
	enum body_type body;
	int smtputf8;
};

static const struct mail_case mail_cases[] = {
	{ "FROM:<a@b.example>", 0, 0, NULL, NULL, "a@b.example", 0, 0, BODY_NONE, 0 },
	{ "from:<a@b.example>", 0, 0, NULL, NULL, "a@b.example", 0, 0, BODY_NONE, 0 },
	{ "FROM: <a@b.example>", 0, 0, NULL, NULL, "a@b.example", 0, 0, BODY_NONE, 0 },
	{ "FROM:   <a@b.example>  ", 0, 0, NULL, NULL, "a@b.example", 0, 0, BODY_NONE, 0 },
	{ " FROM:<a@b.example>", 0, 0, NULL, NULL, "a@b.example", 0, 0, BODY_NONE, 0 },
	{ "FROM:<>", 0, 0, NULL, NULL, "", 0, 0, BODY_NONE, 0 },
	{ "FROM:<> SIZE=0", 0, 0, NULL, NULL, "", 0, 1, BODY_NONE, 0 },
	{ "FROM:<a@b> SIZE=12345", 0, 0, NULL, NULL, "a@b", 12345, 1, BODY_NONE, 0 },
	{ "FROM:<a@b> size=18446744073709551615", 0, 0, NULL, NULL, "a@b", UINT64_MAX, 1, BODY_NONE, 0 },
	{ "FROM:<a@b> BODY=8BITMIME", 0, 0, NULL, NULL, "a@b", 0, 0, BODY_8BITMIME, 0 },
	{ "FROM:<a@b> BODY=7bit", 0, 0, NULL, NULL, "a@b", 0, 0, BODY_7BIT, 0 },
	{ "FROM:<a@b> BODY=BINARYMIME", 0, 0, NULL, NULL, "a@b", 0, 0, BODY_BINARYMIME, 0 },
	{ "FROM:<a@b> SMTPUTF8", 0, 0, NULL, NULL, "a@b", 0, 0, BODY_NONE, 1 },
	{ "FROM:<a@b> SIZE=10 BODY=8BITMIME SMTPUTF8", 0, 0, NULL, NULL, "a@b", 10, 1, BODY_8BITMIME, 1 },
	{ "FROM:<a@b>  SIZE=10  smtputf8 ", 0, 0, NULL, NULL, "a@b", 10, 1, BODY_NONE, 1 },
	{ "FROM:<\xc3\xa9@b> SMTPUTF8", 0, 0, NULL, NULL, "\xc3\xa9@b", 0, 0, BODY_NONE, 1 },
	{ "FROM:<a@\xc3\xa9.fr> SMTPUTF8", 0, 0, NULL, NULL, "a@\xc3\xa9.fr", 0, 0, BODY_NONE, 1 },
	{ "FROM:<@x,@y:a@b>", 0, 0, NULL, NULL, "a@b", 0, 0, BODY_NONE, 0 },
	{ "FROM:a@b", ADDR_ALLOW_NO_BRACKETS, 0, NULL, NULL, "a@b", 0, 0, BODY_NONE, 0 },
	{ "FROM:a@b SIZE=5", ADDR_ALLOW_NO_BRACKETS, 0, NULL, NULL, "a@b", 5, 1, BODY_NONE, 0 },
	/* 501 syntax */
	{ "", 0, 501, "5.5.4", "Syntax: MAIL FROM:<address>", NULL, 0, 0, 0, 0 },
	{ "FROM", 0, 501, "5.5.4", "Syntax: MAIL FROM:<address>", NULL, 0, 0, 0, 0 },
	{ "FROM:", 0, 501, "5.5.4", "Syntax: MAIL FROM:<address>", NULL, 0, 0, 0, 0 },
	{ "FROM:   ", 0, 501, "5.5.4", "Syntax: MAIL FROM:<address>", NULL, 0, 0, 0, 0 },
	{ "FROM <a@b>", 0, 501, "5.5.4", "Syntax: MAIL FROM:<address>", NULL, 0, 0, 0, 0 },
	{ "TO:<a@b>", 0, 501, "5.5.4", "Syntax: MAIL FROM:<address>", NULL, 0, 0, 0, 0 },
	{ "FRO:<a@b>", 0, 501, "5.5.4", "Syntax: MAIL FROM:<address>", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b>SIZE=1", 0, 501, "5.5.4", "Syntax: MAIL FROM:<address>", NULL, 0, 0, 0, 0 },
	{ "FROM:<>x", 0, 501, "5.5.4", NULL, NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> SIZE", 0, 501, "5.5.4", "Syntax error in SIZE parameter", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> SIZE=", 0, 501, "5.5.4", "Syntax error in MAIL parameters", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> SIZE=-1", 0, 501, "5.5.4", "Syntax error in SIZE parameter", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> SIZE=+1", 0, 501, "5.5.4", "Syntax error in SIZE parameter", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> SIZE=1k", 0, 501, "5.5.4", "Syntax error in SIZE parameter", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> SIZE=1 SIZE=2", 0, 501, "5.5.4", "Duplicate SIZE parameter", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> BODY=8BITMIME body=7BIT", 0, 501, "5.5.4", "Duplicate BODY parameter", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> SMTPUTF8 SMTPUTF8", 0, 501, "5.5.4", "Duplicate SMTPUTF8 parameter", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> BODY", 0, 501, "5.5.4", "Syntax error in BODY parameter", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> BODY=9BIT", 0, 501, "5.5.4", "Unsupported BODY type", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> SMTPUTF8=yes", 0, 501, "5.5.4", "SMTPUTF8 takes no value", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> =x", 0, 501, "5.5.4", "Syntax error in MAIL parameters", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> -X=1", 0, 501, "5.5.4", "Syntax error in MAIL parameters", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> X_Y=1", 0, 501, "5.5.4", "Syntax error in MAIL parameters", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> X=a=b", 0, 501, "5.5.4", "Syntax error in MAIL parameters", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> X=\x01", 0, 501, "5.5.4", "Syntax error in MAIL parameters", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> SIZE=10\t", 0, 501, "5.5.4", NULL, NULL, 0, 0, 0, 0 },
	/* 552 */
	{ "FROM:<a@b> SIZE=18446744073709551616", 0, 552, "5.3.4", "Message size exceeds fixed maximum message size", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> SIZE=99999999999999999999999", 0, 552, "5.3.4", NULL, NULL, 0, 0, 0, 0 },
	/* 555 */
	{ "FROM:<a@b> RET=FULL", 0, 0, NULL, NULL, "a@b", 0, 0, 0, 0 },
	{ "FROM:<a@b> ENVID=x", 0, 0, NULL, NULL, "a@b", 0, 0, 0, 0 },
	{ "FROM:<a@b> RET=ALL", 0, 501, "5.5.4", "Bad RET parameter syntax", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> RET", 0, 501, "5.5.4", "Bad RET parameter syntax", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> RET=HDRS RET=FULL", 0, 501, "5.5.4", "Duplicate RET parameter", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> ENVID=a+2", 0, 501, "5.5.4", "Bad ENVID parameter syntax", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> ENVID=a+0A", 0, 501, "5.5.4", "Bad ENVID parameter syntax", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> ENVID=a+2b", 0, 501, "5.5.4", "Bad ENVID parameter syntax", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> ENVID=a+C3+A9", 0, 501, "5.5.4", "Bad ENVID parameter syntax", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> ENVID", 0, 501, "5.5.4", "Bad ENVID parameter syntax", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> ENVID=x ENVID=y", 0, 501, "5.5.4", "Duplicate ENVID parameter", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> AUTH=<>", 0, 555, "5.5.4", "Unsupported option: AUTH", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> FOO", 0, 555, "5.5.4", "Unsupported option", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> X-FOO=bar", 0, 555, "5.5.4", "Unsupported option", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b> SIZE=1 FOO", 0, 555, "5.5.4", "Unsupported option", NULL, 0, 0, 0, 0 },
	/* 553 5.1.7 */
	{ "FROM:<a@b", 0, 553, "5.1.7", "Missing '>' after address", NULL, 0, 0, 0, 0 },
	{ "FROM:a@b", 0, 553, "5.1.7", "Address must be enclosed in <>", NULL, 0, 0, 0, 0 },
	{ "FROM:<a>", 0, 553, "5.1.7", "Address has no domain", NULL, 0, 0, 0, 0 },
	{ "FROM:<Postmaster>", 0, 553, "5.1.7", "Address has no domain", NULL, 0, 0, 0, 0 },
	{ "FROM:<Postmaster>", ADDR_ALLOW_POSTMASTER, 553, "5.1.7", "Address has no domain", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@b.>", 0, 553, "5.1.7", "Domain ends with a dot", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@[1.2.3.999]>", 0, 553, "5.1.7", "Invalid IPv4 address literal", NULL, 0, 0, 0, 0 },
	{ "FROM:<a b@c>", 0, 553, "5.1.7", "Space in address", NULL, 0, 0, 0, 0 },
	{ "FROM:<\xc3@b> SMTPUTF8", 0, 553, "5.1.7", "Invalid UTF-8 in local part", NULL, 0, 0, 0, 0 },
	/* 553 5.6.7: non-ASCII without SMTPUTF8 */
	{ "FROM:<\xc3\xa9@b>", 0, 553, "5.6.7", "Non-ASCII sender address requires SMTPUTF8", NULL, 0, 0, 0, 0 },
	{ "FROM:<a@\xc3\xa9.fr> SIZE=1", 0, 553, "5.6.7", NULL, NULL, 0, 0, 0, 0 },
};

static void test_mail(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(mail_cases); i++) {
		const struct mail_case *t = &mail_cases[i];
		struct mailaddr a;
		struct mail_params mp;
		struct smtp_err err = { 0, NULL, NULL };
		int r = cmd_parse_mail(t->args, t->flags, &a, &mp, &err);
		if ((t->code == 0) != (r == 0) || (r != 0 && err.code != t->code))
			print_error("case %zu '%s': r=%d %d %s %s\n", i, t->args, r, err.code,
			    err.enh ? err.enh : "-", err.text ? err.text : "-");
		if (t->code == 0) {
			char out[ADDR_TEXT_MAX];
			assert_int_equal(r, 0);
			addr_format(&a, out, sizeof(out));
			assert_string_equal(out, t->addr);
			assert_int_equal(mp.size, t->size);
			assert_int_equal(mp.has_size, t->has_size);
			assert_int_equal(mp.body, t->body);
			assert_int_equal(mp.smtputf8, t->smtputf8);
			assert_int_equal(a.is_null, t->addr[0] == '\0');
		} else {
			assert_int_equal(r, -1);
			assert_int_equal(err.code, t->code);
			assert_string_equal(err.enh, t->enh);
			assert_non_null(err.text);
			if (t->text != NULL)
				assert_string_equal(err.text, t->text);
		}
	}
}

/* RFC 3461: the values as the queue file will keep them. */
static void test_dsn_params(void **state)
{
	(void)state;
	struct mailaddr a;
	struct mail_params mp;
	struct rcpt_params rp;
	struct smtp_err err;
	assert_int_equal(cmd_parse_mail("FROM:<a@b> RET=hdrs ENVID=QQ+2B314+3D2", 0, &a, &mp, &err), 0);
	assert_int_equal(mp.ret, DSN_RET_HDRS);
	assert_string_equal(mp.envid, "QQ+314=2");
	assert_int_equal(cmd_parse_mail("FROM:<a@b> ret=Full", 0, &a, &mp, &err), 0);
	assert_int_equal(mp.ret, DSN_RET_FULL);
	assert_string_equal(mp.envid, "");

	char envid[DSN_ENVID_MAX + 40];
	memset(envid, 'x', sizeof(envid));
	memcpy(envid, "FROM:<a@b> ENVID=", 17);
	envid[17 + DSN_ENVID_MAX] = '\0';
	assert_int_equal(cmd_parse_mail(envid, 0, &a, &mp, &err), 0);
	assert_int_equal(strlen(mp.envid), DSN_ENVID_MAX);
	envid[17 + DSN_ENVID_MAX] = 'x';
	envid[18 + DSN_ENVID_MAX] = '\0';
	assert_int_equal(cmd_parse_mail(envid, 0, &a, &mp, &err), -1);
	assert_int_equal(err.code, 501);

	assert_int_equal(cmd_parse_rcpt("TO:<a@b> NOTIFY=delay,Failure ORCPT=rfc822;x+2By@z", 0, &a, &rp, &err), 0);
	assert_int_equal(rp.notify, DSN_NOTIFY_DELAY | DSN_NOTIFY_FAILURE);
	assert_string_equal(rp.orcpt, "rfc822;x+y@z");
	assert_int_equal(cmd_parse_rcpt("TO:<a@b> NOTIFY=SUCCESS,FAILURE,DELAY", 0, &a, &rp, &err), 0);
	assert_int_equal(rp.notify, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY);
	assert_string_equal(rp.orcpt, "");
	assert_int_equal(cmd_parse_rcpt("TO:<a@b> NOTIFY=NEVER", 0, &a, &rp, &err), 0);
	assert_int_equal(rp.notify, DSN_NOTIFY_NEVER);
	assert_int_equal(cmd_parse_rcpt("TO:<a@b>", 0, &a, &rp, &err), 0);
	assert_int_equal(rp.notify, 0);
}

struct rcpt_case {
	const char *args;
	unsigned flags;
	int code;
	const char *enh;
	const char *text;
	const char *addr;
};

static const struct rcpt_case rcpt_cases[] = {
	{ "TO:<a@b.example>", 0, 0, NULL, NULL, "a@b.example" },
	{ "to: <a@b.example>", 0, 0, NULL, NULL, "a@b.example" },
	{ "TO:<a@b.example> ", 0, 0, NULL, NULL, "a@b.example" },
	{ "TO:<Postmaster>", 0, 0, NULL, NULL, "Postmaster" },
	{ "TO:<POSTMASTER>", 0, 0, NULL, NULL, "POSTMASTER" },
	{ "TO:<@relay:a@b>", 0, 0, NULL, NULL, "a@b" },
	{ "TO:<\"x y\"@b>", 0, 0, NULL, NULL, "\"x y\"@b" },
	{ "TO:<\xc3\xa9@b>", ADDR_ALLOW_UTF8, 0, NULL, NULL, "\xc3\xa9@b" },
	{ "TO:a@b", ADDR_ALLOW_NO_BRACKETS, 0, NULL, NULL, "a@b" },
	{ "", 0, 501, "5.5.4", "Syntax: RCPT TO:<address>", NULL },
	{ "TO", 0, 501, "5.5.4", "Syntax: RCPT TO:<address>", NULL },
	{ "TO:", 0, 501, "5.5.4", "Syntax: RCPT TO:<address>", NULL },
	{ "FROM:<a@b>", 0, 501, "5.5.4", "Syntax: RCPT TO:<address>", NULL },
	{ "TO:<a@b>x", 0, 501, "5.5.4", "Syntax: RCPT TO:<address>", NULL },
	{ "TO:<a@b> =1", 0, 501, "5.5.4", "Syntax error in RCPT parameters", NULL },
	{ "TO:<>", 0, 553, "5.1.3", "Null address not allowed here", NULL },
	{ "TO:<>", ADDR_ALLOW_NULL, 553, "5.1.3", "Null address not allowed here", NULL },
	{ "TO:<a>", 0, 553, "5.1.3", "Address has no domain", NULL },
	{ "TO:<a@b@c>", 0, 553, "5.1.3", "Too many '@' in address", NULL },
	{ "TO:<a@-b>", 0, 553, "5.1.3", "Domain label starts with a hyphen", NULL },
	{ "TO:<a@b", 0, 553, "5.1.3", "Missing '>' after address", NULL },
	{ "TO:<\xc3\xa9@b>", 0, 553, "5.6.7", "Non-ASCII recipient address requires SMTPUTF8", NULL },
	{ "TO:<\xff@b>", ADDR_ALLOW_UTF8, 553, "5.1.3", "Invalid UTF-8 in local part", NULL },
	{ "TO:<a@b> NOTIFY=NEVER", 0, 0, NULL, NULL, "a@b" },
	{ "TO:<a@b> ORCPT=rfc822;a@b", 0, 0, NULL, NULL, "a@b" },
	{ "TO:<a@b> NOTIFY=NEVER,SUCCESS", 0, 501, "5.5.4", "Bad NOTIFY parameter syntax", NULL },
	{ "TO:<a@b> NOTIFY=SUCCESS,SUCCESS", 0, 501, "5.5.4", "Bad NOTIFY parameter syntax", NULL },
	{ "TO:<a@b> NOTIFY=SUCCESS,", 0, 501, "5.5.4", "Bad NOTIFY parameter syntax", NULL },
	{ "TO:<a@b> NOTIFY=,DELAY", 0, 501, "5.5.4", "Bad NOTIFY parameter syntax", NULL },
	{ "TO:<a@b> NOTIFY=SOMETIMES", 0, 501, "5.5.4", "Bad NOTIFY parameter syntax", NULL },
	{ "TO:<a@b> NOTIFY", 0, 501, "5.5.4", "Bad NOTIFY parameter syntax", NULL },
	{ "TO:<a@b> NOTIFY=DELAY NOTIFY=DELAY", 0, 501, "5.5.4", "Duplicate NOTIFY parameter", NULL },
	{ "TO:<a@b> ORCPT=a@b", 0, 501, "5.5.4", "Bad ORCPT parameter syntax", NULL },
	{ "TO:<a@b> ORCPT=;a@b", 0, 501, "5.5.4", "Bad ORCPT parameter syntax", NULL },
	{ "TO:<a@b> ORCPT=rfc822;", 0, 501, "5.5.4", "Bad ORCPT parameter syntax", NULL },
	{ "TO:<a@b> ORCPT=rfc822;a+00b", 0, 501, "5.5.4", "Bad ORCPT parameter syntax", NULL },
	{ "TO:<a@b> ORCPT=rfc822;a ORCPT=rfc822;b", 0, 501, "5.5.4", "Duplicate ORCPT parameter", NULL },
	{ "TO:<a@b> RET=FULL", 0, 555, "5.5.4", "Unsupported option: RET", NULL },
	{ "TO:<a@b> FOO", 0, 555, "5.5.4", "Unsupported option", NULL },
};

static void test_rcpt(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(rcpt_cases); i++) {
		const struct rcpt_case *t = &rcpt_cases[i];
		struct mailaddr a;
		struct smtp_err err = { 0, NULL, NULL };
		struct rcpt_params rp;
		int r = cmd_parse_rcpt(t->args, t->flags, &a, &rp, &err);
		if ((t->code == 0) != (r == 0) || (r != 0 && err.code != t->code))
			print_error("case %zu '%s': r=%d %d %s\n", i, t->args, r, err.code,
			    err.text ? err.text : "-");
		if (t->code == 0) {
			char out[ADDR_TEXT_MAX];
			assert_int_equal(r, 0);
			addr_format(&a, out, sizeof(out));
			assert_string_equal(out, t->addr);
		} else {
			assert_int_equal(r, -1);
			assert_int_equal(err.code, t->code);
			assert_string_equal(err.enh, t->enh);
			assert_string_equal(err.text, t->text);
		}
	}
}

struct bdat_case {
	const char *args;
	int ok;
	uint64_t size;
	int last;
};

static const struct bdat_case bdat_cases[] = {
	{ "0", 1, 0, 0 },
	{ "100", 1, 100, 0 },
	{ "100 LAST", 1, 100, 1 },
	{ "100 last", 1, 100, 1 },
	{ "0 LAST", 1, 0, 1 },
	{ "100 LAST ", 1, 100, 1 },
	{ "100  LAST", 1, 100, 1 },
	{ "100 ", 1, 100, 0 },
	{ "00000000000000000001", 1, 1, 0 },
	{ "18446744073709551615", 1, UINT64_MAX, 0 },
	{ "18446744073709551616", 0, 0, 0 },
	{ "000000000000000000001", 0, 0, 0 },
	{ "", 0, 0, 0 },
	{ " 100", 0, 0, 0 },
	{ "+100", 0, 0, 0 },
	{ "-1", 0, 0, 0 },
	{ "0x10", 0, 0, 0 },
	{ "10k", 0, 0, 0 },
	{ "100 LASTX", 0, 0, 0 },
	{ "100 LAS", 0, 0, 0 },
	{ "100 LAST x", 0, 0, 0 },
	{ "100 FIRST", 0, 0, 0 },
	{ "100\tLAST", 0, 0, 0 },
	{ "LAST", 0, 0, 0 },
};

static void test_bdat(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bdat_cases); i++) {
		const struct bdat_case *t = &bdat_cases[i];
		uint64_t size = 7;
		int last = 7;
		struct smtp_err err = { 0, NULL, NULL };
		int r = cmd_parse_bdat(t->args, &size, &last, &err);
		if ((r == 0) != t->ok)
			print_error("case %zu '%s'\n", i, t->args);
		if (t->ok) {
			assert_int_equal(r, 0);
			assert_int_equal(size, t->size);
			assert_int_equal(last, t->last);
		} else {
			assert_int_equal(r, -1);
			assert_int_equal(err.code, 501);
			assert_string_equal(err.enh, "5.5.4");
			assert_string_equal(err.text, "Syntax: BDAT chunk-size [LAST]");
		}
	}
}

struct helo_case {
	const char *args;
	const char *out; /* NULL: rejected with 501 5.5.4 */
};

static const struct helo_case helo_cases[] = {
	{ "mail.example.com", "mail.example.com" },
	{ "MAIL.EXAMPLE.COM", "MAIL.EXAMPLE.COM" },
	{ "mail.example.com.", "mail.example.com." },
	{ "my_pc.local", "my_pc.local" },
	{ "localhost", "localhost" },
	{ "192.0.2.1", "192.0.2.1" },
	{ "[192.0.2.1]", "[192.0.2.1]" },
	{ "[IPv6:2001:db8::1]", "[IPv6:2001:db8::1]" },
	{ " mail.example.com", "mail.example.com" },
	{ "mail.example.com  ", "mail.example.com" },
	{ "b\xc3\xbc\x63her.de", "b\xc3\xbc\x63her.de" },
	{ "", NULL },
	{ "   ", NULL },
	{ "a b", NULL },
	{ "mail.example.com extra", NULL },
	{ "a\tb", NULL },
	{ "a\x01", NULL },
	{ "a\x7f", NULL },
	{ "<a>", NULL },
	{ "a@b", NULL },
	{ "[192.0.2.300]", NULL },
	{ "[192.0.2.1", NULL },
	{ "[foo]", NULL },
	{ "\xff\xfe", NULL },
};

static void test_helo(void **state)
{
	char out[256];
	struct smtp_err err;

	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(helo_cases); i++) {
		const struct helo_case *t = &helo_cases[i];
		int r = cmd_parse_helo(t->args, out, sizeof(out), &err);
		if ((r == 0) != (t->out != NULL))
			print_error("case %zu '%s'\n", i, t->args);
		if (t->out) {
			assert_int_equal(r, 0);
			assert_string_equal(out, t->out);
		} else {
			assert_int_equal(r, -1);
			assert_int_equal(err.code, 501);
			assert_string_equal(err.enh, "5.5.4");
		}
	}

	/* 255 octets ok, 256 not; and never more than outsz-1 */
	char name[300];
	memset(name, 'h', 255);
	name[255] = '\0';
	assert_int_equal(cmd_parse_helo(name, out, sizeof(out), &err), 0);
	assert_int_equal(strlen(out), 255);
	name[255] = 'h';
	name[256] = '\0';
	assert_int_equal(cmd_parse_helo(name, out, sizeof(out), &err), -1);
	assert_string_equal(err.text, "Invalid HELO name: too long");
	char small[8];
	assert_int_equal(cmd_parse_helo("abcdefg", small, sizeof(small), &err), 0);
	assert_int_equal(cmd_parse_helo("abcdefgh", small, sizeof(small), &err), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_verb_name),
		cmocka_unit_test(test_mail),
		cmocka_unit_test(test_rcpt),
		cmocka_unit_test(test_dsn_params),
		cmocka_unit_test(test_bdat),
		cmocka_unit_test(test_helo),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
