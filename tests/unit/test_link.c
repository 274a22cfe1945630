/*
 * test_link: the pure parts of the dial-up link (src/queue/link.c): the
 * run/link state file's format, written and read back, and a table of files
 * that must be refused (anything that is not exactly one canonical line reads
 * as "down" in the queue manager).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "queue/link.h"

static void test_link_state(void **state)
{
	(void)state;
	struct link_state st, back;
	char out[80];
	assert_int_equal(link_state_parse("up 1767225600 tsubamectl\n", 25, &st), 0);
	assert_int_equal(st.up, 1);
	assert_int_equal(st.since, 1767225600LL);
	assert_int_equal(st.by, LINK_BY_CTL);
	int n = link_state_format(&st, out, sizeof(out));
	assert_string_equal(out, "up 1767225600 tsubamectl\n");
	assert_int_equal(link_state_parse(out, (size_t)n, &back), 0);
	assert_memory_equal(&st, &back, sizeof(st));
	assert_int_equal(link_state_parse("down 0 start\n", 13, &st), 0);
	assert_int_equal(st.up, 0);
	assert_int_equal(link_state_parse("down 17 command\n", 16, &st), 0);
	assert_int_equal(st.by, LINK_BY_CHECK);
	static const char *bad[] = { "", "up\n", "up 1 tsubamectl", "UP 1 tsubamectl\n", "up 01 start\n",
		"up -1 start\n", "up 1 start \n", "up  1 start\n", "up 1 start\nup 1 start\n", "up 1 nobody\n",
		"up 1234567890123 start\n", "up 1x start\n", "up 1 start\r\n" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (link_state_parse(bad[i], strlen(bad[i]), &st) != -1)
			fail_msg("accepted link state '%s'", bad[i]);
	assert_int_equal(link_state_format(&back, out, 10), -1);
}

static void test_by_names(void **state)
{
	(void)state;
	assert_string_equal(link_by_name(LINK_BY_START), "start");
	assert_string_equal(link_by_name(LINK_BY_CTL), "tsubamectl");
	assert_string_equal(link_by_name(LINK_BY_CHECK), "command");
	assert_string_equal(link_by_name((enum link_by)7), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_link_state),
		cmocka_unit_test(test_by_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
