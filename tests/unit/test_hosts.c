/* Unit tests for src/deliver/hosts.c: the format, errors with file:line, exact and subdomain lookups. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "deliver/hosts.h"

static int parse_text(struct hosts_table *t, const char *text, struct buf *errors)
{
	FILE *fp = fmemopen((void *)text, strlen(text), "r");
	assert_non_null(fp);
	int n = hosts_parse(t, fp, "hosts", errors);
	fclose(fp);
	return n;
}

static void test_parse_and_lookup(void **state)
{
	const char *text =
		"# delivery hosts (seed 004)\n"
		"\n"
		"Widgets.TEST   192.0.2.10 192.0.2.11:2525   # two addresses\r\n"
		"mail.isp.test. [2001:db8::25]:587 2001:DB8::26\n"
		"  my_imail_machine 156.21.50.240\n"
		".corp.test 10.1.2.3\n"
		"*.deep.corp.test 10.9.9.9\n"
		"corp.test 10.0.0.1\n";
	struct hosts_table t = { 0 };
	struct buf errors;
	const struct hosts_entry *e;

	buf_init(&errors, 4096);
	assert_int_equal(parse_text(&t, text, &errors), 0);
	assert_int_equal(t.n, 6);

	e = hosts_lookup(&t, "widgets.test");
	assert_non_null(e);
	assert_int_equal(e->line, 3);
	assert_int_equal(e->naddrs, 2);
	assert_int_equal(e->addrs[0].family, AF_INET);
	assert_string_equal(e->addrs[0].ip, "192.0.2.10");
	assert_int_equal(e->addrs[0].port, 0);
	assert_int_equal(e->addrs[1].port, 2525);
	assert_ptr_equal(hosts_lookup(&t, "WIDGETS.Test."), e);

	e = hosts_lookup(&t, "Mail.ISP.test");
	assert_non_null(e);
	assert_int_equal(e->addrs[0].family, AF_INET6);
	assert_string_equal(e->addrs[0].ip, "2001:db8::25");
	assert_int_equal(e->addrs[0].port, 587);
	assert_string_equal(e->addrs[1].ip, "2001:db8::26"); /* canonical text */
	assert_int_equal(e->addrs[1].port, 0);
	assert_non_null(hosts_lookup(&t, "my_imail_machine"));

	/* Exact names only match themselves. */
	assert_null(hosts_lookup(&t, "www.widgets.test"));
	assert_null(hosts_lookup(&t, "isp.test"));
	assert_null(hosts_lookup(&t, "other.test"));
	assert_null(hosts_lookup(&t, ""));
	assert_null(hosts_lookup(&t, "."));
	assert_null(hosts_lookup(NULL, "widgets.test"));

	/* ".corp.test" covers subdomains, not corp.test itself (that is its own line). */
	e = hosts_lookup(&t, "a.corp.test");
	assert_non_null(e);
	assert_int_equal(e->subdomains, 1);
	assert_string_equal(e->addrs[0].ip, "10.1.2.3");
	assert_string_equal(hosts_lookup(&t, "x.y.CORP.test")->addrs[0].ip, "10.1.2.3");
	assert_string_equal(hosts_lookup(&t, "corp.test")->addrs[0].ip, "10.0.0.1");
	assert_null(hosts_lookup(&t, "xcorp.test"));
	/* "*.name" is the same as ".name"; the longest suffix wins. */
	assert_string_equal(hosts_lookup(&t, "a.deep.corp.test")->addrs[0].ip, "10.9.9.9");
	assert_string_equal(hosts_lookup(&t, "deep.corp.test")->addrs[0].ip, "10.1.2.3");
	hosts_free(&t);
	assert_int_equal(t.n, 0);
	buf_free(&errors);
}

static void test_subdomain_only(void **state)
{
	struct hosts_table t = { 0 };
	struct buf errors;

	buf_init(&errors, 4096);
	assert_int_equal(parse_text(&t, ".example.test 192.0.2.1\n", &errors), 0);
	assert_null(hosts_lookup(&t, "example.test"));
	assert_non_null(hosts_lookup(&t, "mx.example.test"));
	hosts_free(&t);
	buf_free(&errors);
}

struct ecase {
	const char *line;
	const char *error;
};

static void test_errors(void **state)
{
	static const struct ecase cases[] = {
		{ "example.test\n", "hosts:1: no address for \"example.test\"\n" },
		{ "192.0.2.1 example.test\n", "hosts:1: the name comes first: \"name address[:port] ...\", not \"192.0.2.1 ...\"\n" },
		{ "bad..name 192.0.2.1\n", "hosts:1: invalid name \"bad..name\"\n" },
		{ "-bad.test 192.0.2.1\n", "hosts:1: invalid name \"-bad.test\"\n" },
		{ "a.test 192.0.2.300\n", "hosts:1: bad address \"192.0.2.300\"\n" },
		{ "a.test mail.example.test\n", "hosts:1: bad address \"mail.example.test\"\n" },
		{ "a.test 192.0.2.1:0\n", "hosts:1: bad port (1-65535) \"192.0.2.1:0\"\n" },
		{ "a.test 192.0.2.1:65536\n", "hosts:1: bad port (1-65535) \"192.0.2.1:65536\"\n" },
		{ "a.test 192.0.2.1:25x\n", "hosts:1: bad port (1-65535) \"192.0.2.1:25x\"\n" },
		{ "a.test 192.0.2.1:\n", "hosts:1: bad port \"192.0.2.1:\"\n" },
		{ "a.test [2001:db8::1\n", "hosts:1: missing ']' \"[2001:db8::1\"\n" },
		{ "a.test [2001:db8::1]x\n", "hosts:1: junk after ']' \"[2001:db8::1]x\"\n" },
		{ "a.test [192.0.2.1]:25\n", "hosts:1: brackets are for IPv6 addresses \"[192.0.2.1]:25\"\n" },
		{ "a.test 1.1.1.1 1.1.1.2 1.1.1.3 1.1.1.4 1.1.1.5 1.1.1.6 1.1.1.7 1.1.1.8 1.1.1.9\n",
		  "hosts:1: more than 8 addresses\n" },
		{ ". 192.0.2.1\n", "hosts:1: invalid name \"\"\n" },
		{ "*. 192.0.2.1\n", "hosts:1: invalid name \"\"\n" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hosts_table t = { 0 };
		struct buf errors;
		buf_init(&errors, 4096);
		assert_int_equal(parse_text(&t, cases[i].line, &errors), 1);
		assert_string_equal(buf_cstr(&errors), cases[i].error);
		assert_int_equal(t.n, 0);
		hosts_free(&t);
		buf_free(&errors);
	}
}

static void test_line_numbers_and_duplicates(void **state)
{
	const char *text =
		"# comment\n"
		"a.test 192.0.2.1\n"
		"\n"
		"A.TEST. 192.0.2.2\n"
		".a.test 192.0.2.3\n"
		"*.a.test 192.0.2.4\n"
		"b.test nonsense\n"
		"c.test 192.0.2.5\n";
	struct hosts_table t = { 0 };
	struct buf errors;

	buf_init(&errors, 4096);
	assert_int_equal(parse_text(&t, text, &errors), 3);
	assert_string_equal(buf_cstr(&errors),
	    "hosts:4: duplicate entry \"a.test\" (first on line 2)\n"
	    "hosts:6: duplicate entry \".a.test\" (first on line 5)\n"
	    "hosts:7: bad address \"nonsense\"\n");
	/* Good lines still load. */
	assert_int_equal(t.n, 3);
	assert_string_equal(hosts_lookup(&t, "a.test")->addrs[0].ip, "192.0.2.1");
	assert_string_equal(hosts_lookup(&t, "x.a.test")->addrs[0].ip, "192.0.2.3");
	assert_non_null(hosts_lookup(&t, "c.test"));
	hosts_free(&t);
	buf_free(&errors);
}

static void test_load_file(void **state)
{
	char path[] = "/tmp/tsubame-test-hosts.XXXXXX";
	int fd = mkstemp(path);
	struct hosts_table t = { 0 };
	struct buf errors;
	const char *text = "ok.test 192.0.2.1\nbroken\n";

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	buf_init(&errors, 4096);
	assert_int_equal(hosts_load(&t, path, &errors), 1);
	char want[128];
	snprintf(want, sizeof(want), "%s:2: no address for \"broken\"\n", path);
	assert_string_equal(buf_cstr(&errors), want);
	assert_non_null(hosts_lookup(&t, "ok.test"));
	hosts_free(&t);
	unlink(path);

	/* A missing file is an empty table. */
	buf_reset(&errors);
	assert_int_equal(hosts_load(&t, path, &errors), 0);
	assert_int_equal(t.n, 0);
	buf_free(&errors);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_and_lookup),
		cmocka_unit_test(test_subdomain_only),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_line_numbers_and_duplicates),
		cmocka_unit_test(test_load_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
