/* Unit tests for src/local/aliases.c: the manual's examples, precedence, wildcards, chains, load errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>

#include "local/aliases.h"

/* Accounts that exist in these tests, as "local@domain". */
static const char *const existing[] = {
	"abc-info@abc.co.jp", "def-info@def.co.jp", "info@abc.co.jp", "taro@abc.co.jp",
	"abc-postmaster@abc.co.jp", "hanako@abc.co.jp", NULL,
};

static int exists(void *ctx, const char *local, const char *domain)
{
	const char *const *list = ctx;
	char addr[600];
	snprintf(addr, sizeof(addr), "%s@%s", local, domain);
	for (size_t i = 0; list[i]; i++)
		if (strcasecmp(list[i], addr) == 0)
			return 1;
	return 0;
}

static int load_text(struct alias_table *t, const char *text, struct buf *errors)
{
	FILE *fp = fmemopen((void *)text, strlen(text), "r");
	assert_non_null(fp);
	int n = aliases_parse(t, fp, "aliases", errors);
	fclose(fp);
	return n;
}

struct rcase {
	const char *table;
	const char *addr;
	int n;                 /* expected count, -1 = error */
	const char *dest[4];
	const char *present[4];
	const char *why;
};

static const struct rcase cases[] = {
	/* Manual: info@abc.co.jp -> abc-info@abc.co.jp: same domain, recipient kept. */
	{ "info@abc.co.jp abc-info@abc.co.jp\ninfo@def.co.jp def-info@def.co.jp\n", "info@abc.co.jp", 1,
	  { "abc-info@abc.co.jp" }, { "info@abc.co.jp" }, NULL },
	{ "info@abc.co.jp abc-info@abc.co.jp\ninfo@def.co.jp def-info@def.co.jp\n", "info@def.co.jp", 1,
	  { "def-info@def.co.jp" }, { "info@def.co.jp" }, NULL },
	/* Example 1: ",1" forces the rewrite within one domain. */
	{ "info@def.co.jp def-info@def.co.jp,1\n", "info@def.co.jp", 1,
	  { "def-info@def.co.jp" }, { "def-info@def.co.jp" }, NULL },
	/* Example 2: ",1" to another domain. */
	{ "info@def.co.jp info@abc.co.jp,1\n", "info@def.co.jp", 1,
	  { "info@abc.co.jp" }, { "info@abc.co.jp" }, NULL },
	/* Example 3: ",0" keeps the alias name even across domains. */
	{ "info@def.co.jp info@abc.co.jp,0\n", "info@def.co.jp", 1,
	  { "info@abc.co.jp" }, { "info@def.co.jp" }, NULL },
	/* Default rule, other domain: rewrite. */
	{ "info@def.co.jp info@abc.co.jp\n", "info@def.co.jp", 1,
	  { "info@abc.co.jp" }, { "info@abc.co.jp" }, NULL },
	/* Wildcard example: *@def.co.jp -> *@abc.co.jp,1. */
	{ "*@def.co.jp *@abc.co.jp,1\n", "taro@def.co.jp", 1,
	  { "taro@abc.co.jp" }, { "taro@abc.co.jp" }, NULL },
	{ "*@def.co.jp *@abc.co.jp,1\n", "Taro@DEF.co.jp", 1,
	  { "Taro@abc.co.jp" }, { "Taro@abc.co.jp" }, NULL },
	/* Catch-all: unknown users go to abc-postmaster, kept as addressed (same domain). */
	{ "*@abc.co.jp abc-postmaster@abc.co.jp\n", "nobody@abc.co.jp", 1,
	  { "abc-postmaster@abc.co.jp" }, { "nobody@abc.co.jp" }, NULL },
	/* ... but an existing account keeps its own mail. */
	{ "*@abc.co.jp abc-postmaster@abc.co.jp\n", "taro@abc.co.jp", 0, { NULL }, { NULL }, NULL },
	{ "*@abc.co.jp abc-postmaster@abc.co.jp\n", "abc-postmaster@abc.co.jp", 0, { NULL }, { NULL }, NULL },
	/* An exact alias beats an existing account. */
	{ "taro@abc.co.jp hanako@abc.co.jp\n", "taro@abc.co.jp", 1,
	  { "hanako@abc.co.jp" }, { "taro@abc.co.jp" }, NULL },
	/* Case-insensitive patterns. */
	{ "INFO@ABC.CO.JP abc-info@abc.co.jp\n", "Info@abc.co.jp", 1,
	  { "abc-info@abc.co.jp" }, { "Info@abc.co.jp" }, NULL },
	/* Most specific wildcard wins over the catch-all. */
	{ "*@abc.co.jp abc-postmaster@abc.co.jp\nsales-*@abc.co.jp hanako@abc.co.jp\n", "sales-east@abc.co.jp", 1,
	  { "hanako@abc.co.jp" }, { "sales-east@abc.co.jp" }, NULL },
	/* Prefix and suffix around '*', substituted into the target. */
	{ "list-*-bounces@abc.co.jp *@lists.example.org\n", "list-dev-bounces@abc.co.jp", 1,
	  { "dev@lists.example.org" }, { "dev@lists.example.org" }, NULL },
	{ "list-*-bounces@abc.co.jp *@lists.example.org\n", "list-bounces@abc.co.jp", 0, { NULL }, { NULL }, NULL },
	/* Several lines: every target, deduplicated. */
	{ "team@abc.co.jp taro@abc.co.jp\nteam@abc.co.jp hanako@abc.co.jp\nteam@abc.co.jp TARO@abc.co.jp\n",
	  "team@abc.co.jp", 2, { "taro@abc.co.jp", "hanako@abc.co.jp" }, { "team@abc.co.jp", "team@abc.co.jp" }, NULL },
	/* Chains: the wildcard hop rewrites, then the catch-all keeps what it got. */
	{ "*@def.co.jp *@abc.co.jp,1\n*@abc.co.jp abc-postmaster@abc.co.jp\n", "ghost@def.co.jp", 1,
	  { "abc-postmaster@abc.co.jp" }, { "ghost@abc.co.jp" }, NULL },
	{ "*@def.co.jp *@abc.co.jp,1\n*@abc.co.jp abc-postmaster@abc.co.jp\n", "taro@def.co.jp", 1,
	  { "taro@abc.co.jp" }, { "taro@abc.co.jp" }, NULL },
	/* Chain with keep (,0) at both hops: the original stays. */
	{ "a@x.test b@y.test,0\nb@y.test c@z.test,0\n", "a@x.test", 1, { "c@z.test" }, { "a@x.test" }, NULL },
	/* Chain: rewrite then default same-domain keep. */
	{ "a@x.test b@y.test\nb@y.test c@y.test\n", "a@x.test", 1, { "c@y.test" }, { "b@y.test" }, NULL },
	/* Self-reference keeps a copy. */
	{ "taro@abc.co.jp taro@abc.co.jp\ntaro@abc.co.jp backup@example.org\n", "taro@abc.co.jp", 2,
	  { "taro@abc.co.jp", "backup@example.org" }, { "taro@abc.co.jp", "backup@example.org" }, NULL },
	/* Catch-all to a missing account does not loop on itself. */
	{ "*@q.test pm@q.test\n", "pm@q.test", 1, { "pm@q.test" }, { "pm@q.test" }, NULL },
	/* Loops. */
	{ "a@x.test b@x.test\nb@x.test a@x.test\n", "a@x.test", -1, { NULL }, { NULL }, "alias loop" },
	{ "*@x.test *@y.test\n*@y.test *@x.test\n", "u@x.test", -1, { NULL }, { NULL }, "alias loop" },
	/* Depth: a chain of 11 hops is too deep, 10 is fine. */
	{ "a0@x.test a1@x.test\na1@x.test a2@x.test\na2@x.test a3@x.test\na3@x.test a4@x.test\n"
	  "a4@x.test a5@x.test\na5@x.test a6@x.test\na6@x.test a7@x.test\na7@x.test a8@x.test\n"
	  "a8@x.test a9@x.test\na9@x.test a10@x.test\n", "a0@x.test", 1, { "a10@x.test" }, { "a0@x.test" }, NULL },
	{ "a0@x.test a1@x.test\na1@x.test a2@x.test\na2@x.test a3@x.test\na3@x.test a4@x.test\n"
	  "a4@x.test a5@x.test\na5@x.test a6@x.test\na6@x.test a7@x.test\na7@x.test a8@x.test\n"
	  "a8@x.test a9@x.test\na9@x.test a10@x.test\na10@x.test a11@x.test\n", "a0@x.test", -1, { NULL }, { NULL },
	  "alias nesting deeper than 10" },
	/* No alias at all. */
	{ "info@abc.co.jp abc-info@abc.co.jp\n", "other@abc.co.jp", 0, { NULL }, { NULL }, NULL },
	{ "", "info@abc.co.jp", 0, { NULL }, { NULL }, NULL },
};

static void test_resolve_cases(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct rcase *c = &cases[i];
		struct alias_table t = { 0 };
		struct buf errors;
		struct alias_result out[ALIAS_MAX_RESULTS];
		const char *why = "unset";

		buf_init(&errors, 4096);
		if (load_text(&t, c->table, &errors) != 0)
			fail_msg("case %zu: load: %s", i, buf_cstr(&errors));
		int n = aliases_resolve(&t, c->addr, exists, (void *)existing, out, ALIAS_MAX_RESULTS, &why);
		if (n != c->n)
			fail_msg("case %zu (%s): got %d results (%s), want %d", i, c->addr, n, why ? why : "", c->n);
		if (n < 0) {
			assert_non_null(why);
			assert_string_equal(why, c->why);
		}
		for (int k = 0; k < n; k++) {
			if (strcmp(out[k].dest, c->dest[k]) != 0 || strcmp(out[k].present, c->present[k]) != 0)
				fail_msg("case %zu (%s) result %d: got %s/%s, want %s/%s", i, c->addr, k, out[k].dest,
				    out[k].present, c->dest[k], c->present[k]);
		}
		aliases_free(&t);
		buf_free(&errors);
	}
}

static void test_too_many_results(void **state)
{
	struct alias_table t = { 0 };
	struct buf errors, text;
	struct alias_result out[4];
	const char *why;

	buf_init(&errors, 4096);
	buf_init(&text, 4096);
	for (int i = 0; i < 5; i++)
		buf_appendf(&text, "all@x.test u%d@x.test\n", i);
	assert_int_equal(load_text(&t, buf_cstr(&text), &errors), 0);
	assert_int_equal(aliases_resolve(&t, "all@x.test", exists, (void *)existing, out, 4, &why), -1);
	assert_string_equal(why, "too many alias results");
	struct alias_result big[5];
	assert_int_equal(aliases_resolve(&t, "all@x.test", exists, (void *)existing, big, 5, &why), 5);
	aliases_free(&t);
	buf_free(&errors);
	buf_free(&text);
}

/* Every level fans out to the same 8 names: 8^10 paths, but only 8 results; the work is bounded. */
static void test_expansion_bounded(void **state)
{
	struct alias_table t = { 0 };
	struct buf errors, text;
	struct alias_result out[ALIAS_MAX_RESULTS];
	const char *why;

	buf_init(&errors, 4096);
	buf_init(&text, 1 << 20);
	for (int level = 0; level < 9; level++)
		for (int i = 0; i < 8; i++)
			for (int j = 0; j < 8; j++)
				buf_appendf(&text, "l%d-%d@x.test l%d-%d@x.test\n", level, i, level + 1, j);
	buf_puts(&text, "start@x.test l0-0@x.test\n");
	assert_int_equal(load_text(&t, buf_cstr(&text), &errors), 0);
	assert_int_equal(aliases_resolve(&t, "start@x.test", exists, (void *)existing, out, ALIAS_MAX_RESULTS, &why), -1);
	assert_string_equal(why, "alias expansion too large");
	/* Two levels of the same fan-out are fine. */
	assert_int_equal(aliases_resolve(&t, "l7-0@x.test", exists, (void *)existing, out, ALIAS_MAX_RESULTS, &why), 8);
	assert_string_equal(out[0].dest, "l9-0@x.test");
	aliases_free(&t);
	buf_free(&errors);
	buf_free(&text);
}

struct lcase {
	const char *line;
	const char *error; /* substring of the message, NULL = valid */
};

static const struct lcase load_cases[] = {
	{ "info@abc.co.jp abc-info@abc.co.jp", NULL },
	{ "# comment", NULL },
	{ "   ", NULL },
	{ "info@abc.co.jp\tabc-info@abc.co.jp,1", NULL },
	{ "*@def.co.jp *@abc.co.jp,0", NULL },
	{ "x-*@def.co.jp abc@abc.co.jp", NULL },
	/* The manual's "×" examples: a domain on both sides. */
	{ "info abc-info", "has no domain" },
	{ "info abc-info@abc.co.jp", "alias \"info\" has no domain" },
	{ "info@abc.co.jp abc-info", "target \"abc-info\" has no domain" },
	{ "info@ abc-info@abc.co.jp", "has no domain" },
	{ "@abc.co.jp x@abc.co.jp", "has no local part" },
	{ "info@*.co.jp x@abc.co.jp", "local part only" },
	{ "*@def.co.jp *@*.co.jp", "local part only" },
	{ "info@abc.co.jp x@abc.co.jp,2", "bad rewrite flag" },
	{ "info@abc.co.jp x@abc.co.jp,", "bad rewrite flag" },
	{ "info@abc.co.jp x@abc.co.jp,10", "bad rewrite flag" },
	{ "*a*@abc.co.jp x@abc.co.jp", "more than one '*'" },
	{ "*@abc.co.jp **@abc.co.jp", "more than one '*'" },
	{ "info@abc.co.jp *@abc.co.jp", "has a '*' but alias" },
	{ "info@abc.co.jp", "expected" },
	{ "info@abc.co.jp a@abc.co.jp b@abc.co.jp", "expected" },
	{ "info@abc..jp a@abc.co.jp", "invalid domain" },
	{ "a@b@abc.co.jp a@abc.co.jp", "more than one '@'" },
};

static void test_load_errors(void **state)
{
	for (size_t i = 0; i < sizeof(load_cases) / sizeof(load_cases[0]); i++) {
		const struct lcase *c = &load_cases[i];
		struct alias_table t = { 0 };
		struct buf errors;
		char text[512];

		buf_init(&errors, 4096);
		snprintf(text, sizeof(text), "# first line\n%s\n", c->line);
		int n = load_text(&t, text, &errors);
		if (c->error == NULL) {
			if (n != 0)
				fail_msg("case %zu: unexpected error %s", i, buf_cstr(&errors));
		} else {
			if (n != 1 || t.n != 0)
				fail_msg("case %zu (%s): %d errors, %zu aliases", i, c->line, n, t.n);
			if (strncmp(buf_cstr(&errors), "aliases:2: ", 11) != 0 || !strstr(buf_cstr(&errors), c->error))
				fail_msg("case %zu: message %s lacks %s", i, buf_cstr(&errors), c->error);
		}
		aliases_free(&t);
		buf_free(&errors);
	}
}

static void test_load_file(void **state)
{
	char path[] = "/tmp/tsubame-aliases-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *text = "Info@ABC.co.jp abc-info@abc.co.jp\r\n*@def.co.jp *@abc.co.jp,1\n";
	assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
	close(fd);

	struct alias_table t = { 0 };
	struct buf errors;
	buf_init(&errors, 4096);
	assert_int_equal(aliases_load(&t, path, &errors), 0);
	assert_int_equal(t.n, 2);
	assert_string_equal(t.v[0].pattern, "info@abc.co.jp");
	assert_int_equal(t.v[0].rewrite, -1);
	assert_int_equal(t.v[1].rewrite, 1);
	assert_string_equal(t.v[1].target, "*@abc.co.jp");
	assert_int_equal(t.v[1].line, 2);
	aliases_free(&t);
	unlink(path);
	/* A missing file is an empty table. */
	assert_int_equal(aliases_load(&t, path, &errors), 0);
	assert_int_equal(t.n, 0);
	buf_free(&errors);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resolve_cases),
		cmocka_unit_test(test_too_many_results),
		cmocka_unit_test(test_expansion_bounded),
		cmocka_unit_test(test_load_errors),
		cmocka_unit_test(test_load_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
