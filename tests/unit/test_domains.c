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
	/* virtual hosts: ip= and hostname= */
	{ "x.test ip=", "empty ip= value" },
	{ "x.test ip=127.0.0.2,", "empty address in ip=" },
	{ "x.test ip=,127.0.0.2", "empty address in ip=" },
	{ "x.test ip=localhost", "invalid address \"localhost\" in ip=" },
	{ "x.test ip=127.0.0.256", "invalid address" },
	{ "x.test ip=10.0.0.0/8", "invalid address" },
	{ "x.test ip=[::1]", "invalid address" },
	{ "x.test ip=127.0.0.2,127.0.0.2", "address 127.0.0.2 given twice" },
	{ "x.test ip=::1,0:0:0:0:0:0:0:1", "address ::1 given twice" },
	{ "x.test ip=::ffff:127.0.0.2,127.0.0.2", "address 127.0.0.2 given twice" },
	{ "x.test ip=127.0.0.2 ip=127.0.0.3", "ip= given twice" },
	{ "x.test ip=1.1.1.1,1.1.1.2,1.1.1.3,1.1.1.4,1.1.1.5,1.1.1.6,1.1.1.7,1.1.1.8,1.1.1.9,1.1.1.10,1.1.1.11,"
	  "1.1.1.12,1.1.1.13,1.1.1.14,1.1.1.15,1.1.1.16,1.1.1.17", "too many addresses" },
	{ "x.test hostname=mx.x.test", "hostname=mx.x.test needs ip=" },
	{ "x.test ip=127.0.0.2 hostname=bad_name", "invalid hostname" },
	{ "x.test ip=127.0.0.2 hostname=", "invalid hostname" },
	{ "x.test ip=127.0.0.2 hostname=a.test hostname=b.test", "hostname= given twice" },
	{ "x.test ip=192.0.2.1,127.0.0.9 hostname=mx.x.test", "already greets as mx.example.test (example.test, line 1)" },
};

static void test_errors(void **state)
{
	for (size_t i = 0; i < sizeof(errors_cases) / sizeof(errors_cases[0]); i++) {
		struct domain_table t = { 0 };
		struct buf errors;
		char text[1024];

		buf_init(&errors, 4096);
		snprintf(text, sizeof(text),
		    "example.test aliases=mail.example.test ip=127.0.0.9 hostname=mx.example.test\n%s\nlast.test\n",
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

static void test_virtual_hosts(void **state)
{
	const char *text =
		"a.test ip=127.0.0.2,::FFFF:192.0.2.7,2001:DB8:0:0::1 hostname=MX.A.Test\n"
		"b.test ip=127.0.0.2\n"                          /* same address, no name of its own: fine */
		"c.test ip=127.0.0.2 hostname=mx.a.test\n"       /* same address, same name: fine */
		"d.test ip=127.0.0.3 hostname=mx.a.test\n";      /* one name on several addresses: fine */
	struct domain_table t = { 0 };
	struct buf errors;

	buf_init(&errors, 4096);
	assert_int_equal(parse_text(&t, text, &errors), 0);
	assert_int_equal(t.n, 4);
	assert_int_equal(t.v[0].nips, 3);
	assert_string_equal(t.v[0].ips[0], "127.0.0.2");
	assert_string_equal(t.v[0].ips[1], "192.0.2.7");    /* IPv4-mapped is IPv4 */
	assert_string_equal(t.v[0].ips[2], "2001:db8::1");  /* as inet_ntop prints it */
	assert_string_equal(t.v[0].hostname, "mx.a.test");
	assert_null(t.v[1].hostname);

	/* Save and load again: the same values. */
	char dir[] = "/tmp/tsubame-domains-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256];
	snprintf(path, sizeof(path), "%s/domains", dir);
	assert_int_equal(domains_save(&t, path), 0);
	struct domain_table u = { 0 };
	assert_int_equal(domains_load(&u, path, &errors), 0);
	assert_int_equal(u.n, 4);
	assert_int_equal(u.v[0].nips, 3);
	assert_string_equal(u.v[0].ips[2], "2001:db8::1");
	assert_string_equal(u.v[0].hostname, "mx.a.test");
	assert_int_equal(u.v[3].nips, 1);

	/* domains_add / domains_update check what the parser checks. */
	char *ips[] = { "127.0.0.3" }, *bad_ips[] = { "127.0.0.03" };
	struct domain clash = { .name = "e.test", .ips = ips, .nips = 1, .hostname = "mx.e.test" };
	assert_int_equal(domains_add(&u, &clash), -1);       /* .3 greets as mx.a.test */
	struct domain noip = { .name = "e.test", .hostname = "mx.e.test" };
	assert_int_equal(domains_add(&u, &noip), -1);
	struct domain badip = { .name = "e.test", .ips = bad_ips, .nips = 1 };
	assert_int_equal(domains_add(&u, &badip), -1);      /* not normalized */
	clash.hostname = "MX.A.TEST";
	assert_int_equal(domains_add(&u, &clash), 0);
	assert_string_equal(u.v[4].hostname, "mx.a.test");

	struct domain d = u.v[3];                            /* d.test: move it to .4 and rename its greeting */
	char *ips4[] = { "127.0.0.4" };
	d.ips = ips4;
	d.hostname = "mx.d.test";
	d.max_accounts = 7;
	assert_int_equal(domains_update(&u, &d), 0);
	assert_string_equal(u.v[3].name, "d.test");
	assert_string_equal(u.v[3].ips[0], "127.0.0.4");
	assert_string_equal(u.v[3].hostname, "mx.d.test");
	assert_int_equal(u.v[3].max_accounts, 7);
	assert_int_equal(u.v[3].line, 5); /* the saved file starts with a comment line */
	struct domain e = u.v[4];                            /* e.test on .3 may now greet as it likes */
	e.hostname = "mx.e.test";
	assert_int_equal(domains_update(&u, &e), 0);
	struct domain a = u.v[0];
	char *al[] = { "mail.b.test" };
	struct domain b2 = u.v[1];
	b2.aliases = al;
	b2.naliases = 1;
	assert_int_equal(domains_update(&u, &b2), 0);
	a.aliases = al;                                      /* a host alias of b.test already */
	a.naliases = 1;
	assert_int_equal(domains_update(&u, &a), -1);
	struct domain none = { .name = "zzz.test" };
	assert_int_equal(domains_update(&u, &none), -1);
	/* Updating an entry with itself (its own strings) is safe. */
	struct domain self = u.v[0];
	assert_int_equal(domains_update(&u, &self), 0);
	assert_string_equal(u.v[0].ips[1], "192.0.2.7");

	char norm[64];
	assert_int_equal(domain_addr_normalize("::ffff:10.1.2.3", norm, sizeof(norm)), 0);
	assert_string_equal(norm, "10.1.2.3");
	assert_int_equal(domain_addr_normalize("10.1.2", norm, sizeof(norm)), -1);

	domains_free(&u);
	domains_free(&t);
	buf_free(&errors);
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
		cmocka_unit_test(test_virtual_hosts),
		cmocka_unit_test(test_name_valid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
