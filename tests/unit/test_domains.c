/* Unit tests for src/local/domains.c: parsing, errors with file:line, lookups, save round trip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "local/domains.h"

static int parse_text(struct domain_table *t, const char *text, struct buf *errors)
{
	FILE *fp = fmemopen((void *)text, strlen(text), "r");
	assert_non_null(fp);
	int n = domains_parse(t, fp, "domains", errors);
	fclose(fp);
	return n;
}

static void test_parse_and_find(void **state)
{
	const char *text =
		"# local domains\n"
		"\n"
		"Example.TEST aliases=mail.example.test,Example.ORG max_accounts=10 mailbox_limit=5m\r\n"
		"abc.co.jp max_messages=100 max_message_size=2048\n"
		"  def.co.jp   \n";
	struct domain_table t = { 0 };
	struct buf errors;

	buf_init(&errors, 4096);
	assert_int_equal(parse_text(&t, text, &errors), 0);
	assert_int_equal(t.n, 3);
	assert_string_equal(t.v[0].name, "example.test");
	assert_int_equal(t.v[0].naliases, 2);
	assert_string_equal(t.v[0].aliases[1], "example.org");
	assert_int_equal(t.v[0].max_accounts, 10);
	assert_int_equal(t.v[0].mailbox_limit, 5L * 1024 * 1024);
	assert_int_equal(t.v[0].line, 3);
	assert_int_equal(t.v[1].max_messages, 100);
	assert_int_equal(t.v[1].max_message_size, 2048);
	assert_int_equal(t.v[2].max_accounts, 0);

	assert_ptr_equal(domains_find(&t, "example.test"), &t.v[0]);
	assert_ptr_equal(domains_find(&t, "MAIL.Example.Test"), &t.v[0]);
	assert_ptr_equal(domains_find(&t, "example.org"), &t.v[0]);
	assert_ptr_equal(domains_find(&t, "DEF.CO.JP"), &t.v[2]);
	assert_null(domains_find(&t, "example"));
	assert_null(domains_find(&t, "other.test"));
	domains_free(&t);
	buf_free(&errors);
}

struct ecase {
	const char *line;
	const char *error;
};

static const struct ecase errors_cases[] = {
	{ "x.test colour=blue", "unknown key \"colour\"" },
	{ "x.test max_accounts=ten", "bad number for max_accounts" },
	{ "x.test max_accounts=-1", "bad number for max_accounts" },
	{ "x.test max_accounts=10k", "bad number for max_accounts" },
	{ "x.test mailbox_limit=99999999999999999999", "bad number for mailbox_limit" },
	{ "x.test max_messages=", "bad number" },
	{ "x.test max_accounts", "expected key=value" },
	{ "example.test", "duplicate domain or host alias \"example.test\"" },
	{ "EXAMPLE.test", "duplicate domain" },
	{ "mail.example.test", "duplicate domain" },
	{ "x.test aliases=mail.example.test", "duplicate domain or host alias \"mail.example.test\"" },
	{ "x.test aliases=example.test", "duplicate" },
	{ "x.test aliases=x.test", "duplicate" },
	{ "x.test aliases=a.test,a.test", "duplicate" },
	{ "x.test aliases=a.test aliases=b.test", "given twice" },
	{ "x.test aliases=", "empty aliases=" },
	{ "x.test aliases=a.test,,b.test", "empty name" },
	{ "x.test aliases=bad_name", "invalid host alias" },
	{ "-x.test", "invalid domain name" },
	{ "x-.test", "invalid domain name" },
	{ "x..test", "invalid domain name" },
	{ "x.test.", "invalid domain name" },
	{ "under_score.test", "invalid domain name" },
	{ "user@x.test", "invalid domain name" },
	{ "a.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test", "invalid domain name" },
};

static void test_errors(void **state)
{
	for (size_t i = 0; i < sizeof(errors_cases) / sizeof(errors_cases[0]); i++) {
		struct domain_table t = { 0 };
		struct buf errors;
		char text[512];

		buf_init(&errors, 4096);
		snprintf(text, sizeof(text), "example.test aliases=mail.example.test\n%s\nlast.test\n",
		    errors_cases[i].line);
		int n = parse_text(&t, text, &errors);
		if (n != 1 || t.n != 2)
			fail_msg("case %zu (%s): %d errors, %zu domains: %s", i, errors_cases[i].line, n, t.n,
			    buf_cstr(&errors));
		if (strncmp(buf_cstr(&errors), "domains:2: ", 11) != 0 || !strstr(buf_cstr(&errors), errors_cases[i].error))
			fail_msg("case %zu: message %s lacks %s", i, buf_cstr(&errors), errors_cases[i].error);
		assert_string_equal(t.v[1].name, "last.test");
		domains_free(&t);
		buf_free(&errors);
	}
}

static void test_long_line(void **state)
{
	struct domain_table t = { 0 };
	struct buf errors, text;

	buf_init(&errors, 4096);
	buf_init(&text, 1 << 20);
	buf_puts(&text, "a.test aliases=");
	for (int i = 0; i < 1000; i++)
		buf_appendf(&text, "h%d.test,", i);
	buf_puts(&text, "z.test\nb.test\n");
	assert_int_equal(parse_text(&t, buf_cstr(&text), &errors), 1);
	assert_non_null(strstr(buf_cstr(&errors), "domains:1: line too long"));
	assert_int_equal(t.n, 1);
	assert_string_equal(t.v[0].name, "b.test");
	domains_free(&t);
	buf_free(&errors);
	buf_free(&text);
}

static void test_add_remove_save(void **state)
{
	char dir[] = "/tmp/tsubame-domains-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256];
	snprintf(path, sizeof(path), "%s/domains", dir);

	struct domain_table t = { 0 };
	struct buf errors;
	buf_init(&errors, 4096);
	/* A missing file is an empty table. */
	assert_int_equal(domains_load(&t, path, &errors), 0);
	assert_int_equal(t.n, 0);

	char *al[] = { "Mail.Example.Test", "example.net" };
	struct domain d = { .name = "Example.Test", .aliases = al, .naliases = 2, .max_accounts = 3,
		.mailbox_limit = 1000, .max_messages = 5, .max_message_size = 700 };
	assert_int_equal(domains_add(&t, &d), 0);
	assert_int_equal(domains_add(&t, &d), -1); /* exists */
	struct domain clash = { .name = "example.net" };
	assert_int_equal(domains_add(&t, &clash), -1); /* a host alias already */
	struct domain bad = { .name = "bad name" };
	assert_int_equal(domains_add(&t, &bad), -1);
	char *self[] = { "other.test" };
	struct domain selfal = { .name = "other.test", .aliases = self, .naliases = 1 };
	assert_int_equal(domains_add(&t, &selfal), -1);
	struct domain other = { .name = "other.test" };
	assert_int_equal(domains_add(&t, &other), 0);
	assert_string_equal(t.v[0].name, "example.test");
	assert_string_equal(t.v[0].aliases[0], "mail.example.test");

	assert_int_equal(domains_save(&t, path), 0);
	struct domain_table u = { 0 };
	assert_int_equal(domains_load(&u, path, &errors), 0);
	assert_int_equal(u.n, 2);
	assert_string_equal(u.v[0].name, "example.test");
	assert_int_equal(u.v[0].naliases, 2);
	assert_string_equal(u.v[0].aliases[1], "example.net");
	assert_int_equal(u.v[0].max_accounts, 3);
	assert_int_equal(u.v[0].mailbox_limit, 1000);
	assert_int_equal(u.v[0].max_messages, 5);
	assert_int_equal(u.v[0].max_message_size, 700);
	assert_string_equal(u.v[1].name, "other.test");
	domains_free(&u);

	/* The save keeps the mode the administrator chose. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(domains_remove(&t, "EXAMPLE.test"), 0);
	assert_int_equal(domains_remove(&t, "example.test"), -1);
	assert_int_equal(domains_save(&t, path), 0);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_int_equal(domains_load(&u, path, &errors), 0);
	assert_int_equal(u.n, 1);
	assert_null(domains_find(&u, "mail.example.test"));
	domains_free(&u);
	domains_free(&t);
	buf_free(&errors);

	/* No temporary file is left behind. */
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "test $(ls -A %s | wc -l) -eq 1", dir);
	assert_int_equal(system(cmd), 0);
	unlink(path);
	rmdir(dir);
}

static void test_name_valid(void **state)
{
	assert_true(domain_name_valid("localhost"));
	assert_true(domain_name_valid("a-b.c0.jp"));
	assert_true(domain_name_valid("123.test"));
	assert_false(domain_name_valid(""));
	assert_false(domain_name_valid("."));
	assert_false(domain_name_valid("a b.test"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_and_find),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_add_remove_save),
		cmocka_unit_test(test_name_valid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
