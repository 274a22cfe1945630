/*
 * Unit tests for src/queue/dest.c: the queue's per-destination in-flight
 * counts and waiting lists (D1 per-destination limits).  Pure logic: the
 * messages are opaque pointers here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "queue/dest.h"

/* Stand-ins for messages: dest.c never looks inside one. */
static char msgs[4];
#define M(i) ((struct qmsg *)&msgs[i])

static void test_counts_and_case(void **state)
{
	struct dest_table t;
	dest_table_init(&t);
	assert_null(dest_find(&t, "a.test"));
	dest_acquire(&t, "A.Test");
	dest_acquire(&t, "a.test");
	struct dest *d = dest_find(&t, "a.TEST");
	assert_non_null(d);
	assert_string_equal(d->domain, "a.test");
	assert_int_equal(d->inflight, 2);
	assert_int_equal(t.n, 1);
	dest_release(&t, "a.test");
	assert_int_equal(d->inflight, 1);
	dest_release(&t, "unknown.test");   /* ignored */
	dest_release(&t, "A.TEST");
	assert_null(dest_find(&t, "a.test"));   /* idle: gone */
	assert_int_equal(t.n, 0);
	dest_release(&t, "a.test");             /* no underflow, no resurrection */
	assert_null(dest_find(&t, "a.test"));
	dest_table_free(&t);
}

static void test_park_pop_order(void **state)
{
	struct dest_table t;
	struct dest_wait_list p0, p1, p2;
	LIST_INIT(&p0);
	LIST_INIT(&p1);
	LIST_INIT(&p2);
	dest_table_init(&t);
	dest_acquire(&t, "a.test");
	struct dest *d = dest_find(&t, "a.test");
	dest_park(&t, d, M(0), &p0, 0);
	dest_park(&t, d, M(1), &p1, 0);
	dest_park(&t, d, M(0), &p0, 0);   /* once only */
	dest_park(&t, d, M(2), &p2, 1);   /* woken before: back at the front */
	assert_true(dest_is_parked(&p0, "A.test"));
	assert_false(dest_is_parked(&p0, "b.test"));
	assert_ptr_equal(dest_pop(&t, d), M(2));
	assert_ptr_equal(dest_pop(&t, d), M(0));
	assert_false(dest_is_parked(&p0, "a.test"));
	assert_true(LIST_EMPTY(&p0));
	/* still in flight: stays while waiters or deliveries remain */
	assert_ptr_equal(dest_pop(&t, d), M(1));
	assert_non_null(dest_find(&t, "a.test"));
	assert_null(dest_pop(&t, d));
	dest_release(&t, "a.test");
	assert_null(dest_find(&t, "a.test"));
	dest_table_free(&t);
}

static void test_unpark_all(void **state)
{
	struct dest_table t;
	struct dest_wait_list p0, p1;
	LIST_INIT(&p0);
	LIST_INIT(&p1);
	dest_table_init(&t);
	dest_acquire(&t, "a.test");
	dest_acquire(&t, "b.test");
	struct dest *a = dest_find(&t, "a.test"), *b = dest_find(&t, "b.test");
	dest_park(&t, a, M(0), &p0, 0);
	dest_park(&t, b, M(0), &p0, 0);
	dest_park(&t, b, M(1), &p1, 0);
	dest_release(&t, "a.test");   /* a: nothing in flight, M(0) waits: kept */
	assert_ptr_equal(dest_find(&t, "a.test"), a);
	dest_unpark_all(&t, &p0);     /* M(0) goes away */
	assert_true(LIST_EMPTY(&p0));
	assert_null(dest_find(&t, "a.test"));
	assert_ptr_equal(dest_pop(&t, b), M(1));
	assert_non_null(dest_find(&t, "b.test"));
	/* the table goes at exit with whatever is left */
	dest_park(&t, b, M(1), &p1, 0);
	dest_table_free(&t);
	assert_int_equal(t.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts_and_case),
		cmocka_unit_test(test_park_pop_order),
		cmocka_unit_test(test_unpark_all),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
