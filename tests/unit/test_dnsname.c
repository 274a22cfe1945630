/* Unit tests for util/dnsname.c: the one RFC 1035 name check the tables share. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "util/dnsname.h"

static int ok(const char *s, unsigned flags) { return dnsname_valid(s, strlen(s), flags); }

static void test_names(void **state)
{
	(void)state;
	assert_true(ok("example.test", 0));
	assert_true(ok("a", 0));
	assert_true(ok("x-1.y2.Z", 0));
	assert_false(ok("", 0));
	assert_false(ok(".example", 0));
	assert_false(ok("example.", 0));          /* the trailing dot is the caller's to strip */
	assert_false(ok("a..b", 0));
	assert_false(ok("-a.b", 0));
	assert_false(ok("a-.b", 0));
	assert_false(ok("a b", 0));
	assert_false(ok("my_host.test", 0));
	assert_true(ok("my_host.test", DNSNAME_UNDERSCORE));
	assert_false(ok("\xc3\xa9.test", DNSNAME_UNDERSCORE));
	/* a label of 63 is fine, 64 is not; 253 bytes in all */
	char name[300];
	memset(name, 'a', 63);
	strcpy(name + 63, ".test");
	assert_true(ok(name, 0));
	memset(name, 'a', 64);
	strcpy(name + 64, ".test");
	assert_false(ok(name, 0));
	for (size_t i = 0; i < 253; i++)
		name[i] = i % 2 ? '.' : 'a';
	name[253] = '\0';
	assert_true(ok(name, 0));
	name[253] = '.';
	name[254] = 'a';
	name[255] = '\0';
	assert_false(ok(name, 0));
	/* n bytes of a longer line */
	assert_true(dnsname_valid("abc def", 3, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = { cmocka_unit_test(test_names) };
	return cmocka_run_group_tests(tests, NULL, NULL);
}
