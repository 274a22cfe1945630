/*
 * test_atrn_args: the ATRN argument parser (src/policy/atrn_args.c, RFC 2645
 * section 4.2.3): a table of arguments and what they become.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "policy/atrn_args.h"

struct args_case {
	const char *arg;
	int code;
	const char *joined;   /* the domains, comma-separated, when code is 0 */
};

static const struct args_case cases[] = {
	{ "", 0, "" },
	{ "site.test", 0, "site.test" },
	{ "Site.TEST", 0, "site.test" },
	{ "site.test.", 0, "site.test" },
	{ "a.test,b.test", 0, "a.test,b.test" },
	{ "a.test, b.test", 0, "a.test,b.test" },
	{ "a.test,A.test", 0, "a.test" },
	{ "x", 0, "x" },
	{ "mail-1.site.test", 0, "mail-1.site.test" },
	{ ",a.test", 501, NULL },
	{ "a.test,", 501, NULL },
	{ "a.test,,b.test", 501, NULL },
	{ " a.test", 501, NULL },
	{ "a.test b.test", 501, NULL },
	{ "a..test", 501, NULL },
	{ ".a.test", 501, NULL },
	{ "-a.test", 501, NULL },
	{ "a-.test", 501, NULL },
	{ "a_b.test", 501, NULL },
	{ "[192.0.2.1]", 501, NULL },
	{ "@site.test", 501, NULL },
	{ "#queue", 501, NULL },
	{ "b\xc3\xbc" "cher.test", 501, NULL },
	{ ".", 501, NULL },
};

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct atrn_domains d;
		int code = atrn_parse_domains(cases[i].arg, &d);
		if (code != cases[i].code)
			fail_msg("'%s': %d, expected %d", cases[i].arg, code, cases[i].code);
		if (code != 0)
			continue;
		char joined[1024] = "";
		for (size_t k = 0; k < d.n; k++) {
			strcat(joined, k ? "," : "");
			strcat(joined, d.v[k]);
		}
		if (strcmp(joined, cases[i].joined) != 0)
			fail_msg("'%s': '%s', expected '%s'", cases[i].arg, joined, cases[i].joined);
	}
}

static void test_limits(void **state)
{
	(void)state;
	char arg[8192] = "";
	struct atrn_domains d;
	for (int i = 0; i < ATRN_DOMAINS_MAX; i++)
		snprintf(arg + strlen(arg), sizeof(arg) - strlen(arg), "%sd%d.test", i ? "," : "", i);
	assert_int_equal(atrn_parse_domains(arg, &d), 0);
	assert_int_equal(d.n, ATRN_DOMAINS_MAX);
	strcat(arg, ",one-more.test");
	assert_int_equal(atrn_parse_domains(arg, &d), 501);
	/* a 63-character label is fine, 64 is not */
	char label[80];
	memset(label, 'a', 63);
	strcpy(label + 63, ".test");
	assert_int_equal(atrn_parse_domains(label, &d), 0);
	memset(label, 'a', 64);
	strcpy(label + 64, ".test");
	assert_int_equal(atrn_parse_domains(label, &d), 501);
	/* 255 characters in all */
	char longname[300];
	size_t k = 0;
	while (k + 10 < 256) {
		memcpy(longname + k, "abcdefghi.", 10);
		k += 10;
	}
	memcpy(longname + k, "abcde", 5);   /* 255 */
	longname[k + 5] = '\0';
	assert_int_equal(strlen(longname), 255);
	assert_int_equal(atrn_parse_domains(longname, &d), 0);
	strcat(longname, "f");
	assert_int_equal(atrn_parse_domains(longname, &d), 501);
}

static void test_has(void **state)
{
	(void)state;
	struct atrn_domains d;
	assert_int_equal(atrn_parse_domains("a.test,b.test", &d), 0);
	assert_true(atrn_domains_has(&d, "A.Test"));
	assert_true(atrn_domains_has(&d, "b.test."));
	assert_false(atrn_domains_has(&d, "c.test"));
	assert_false(atrn_domains_has(&d, "x.a.test"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_has),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
