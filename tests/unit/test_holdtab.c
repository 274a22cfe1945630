/*
 * Unit tests for src/policy/holdtab.c: the hold table (E3) — its format, every
 * parse error with file:line, lookups (exact, *.name, @name, longest wins),
 * who may release an entry (allow=, etrn_clients, accounts), the ETRN argument
 * parser (RFC 1985 section 5, table-driven) and which entries and recipients a
 * node selects, and the "is this route us?" check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/config.h"
#include "policy/holdtab.h"

static int parse(struct hold_table *t, const char *text, struct buf *errors)
{
	static char *const defaults[] = { "192.0.2.0/24", "ops@isp.test" };
	return hold_parse(t, text, strlen(text), "hold", defaults, 2, errors);
}

/* ---- errors, table-driven --------------------------------------------------------------- */

struct bad {
	const char *text;
	const char *error;  /* the whole expected error output */
	size_t loaded;
};

static const struct bad BAD[] = {
	{ "bad..test\n", "hold:1: invalid domain \"bad..test\" (want name, *.name or @name)\n", 0 },
	{ "-x.test\n", "hold:1: invalid domain \"-x.test\" (want name, *.name or @name)\n", 0 },
	{ "192.0.2.1\n", "hold:1: invalid domain \"192.0.2.1\" (want name, *.name or @name)\n", 0 },
	{ "@\n", "hold:1: invalid domain \"@\" (want name, *.name or @name)\n", 0 },
	{ "*.\n", "hold:1: invalid domain \"*.\" (want name, *.name or @name)\n", 0 },
	{ "x.test allow\n", "hold:1: \"allow\": settings are key=value (allow=, route=, queue=)\n", 0 },
	{ "x.test colour=blue\n", "hold:1: unknown setting \"colour\" (allow=, route=, queue=)\n", 0 },
	{ "x.test allow=\n", "hold:1: empty allow= list\n", 0 },
	{ "x.test allow=1.2.3.4,\n", "hold:1: empty item in allow= list\n", 0 },
	{ "x.test allow=not-an-ip\n",
	  "hold:1: \"not-an-ip\" is not an IP pattern (192.0.2.7, 10.*.*.*, 192.0.2.0/24, 2001:db8::/32), an account "
	  "(user@domain) or *\n", 0 },
	{ "x.test allow=10.0.0.0/33\n",
	  "hold:1: \"10.0.0.0/33\" is not an IP pattern (192.0.2.7, 10.*.*.*, 192.0.2.0/24, 2001:db8::/32), an account "
	  "(user@domain) or *\n", 0 },
	{ "x.test allow=@x.test\n", "hold:1: bad account \"@x.test\" (user@domain)\n", 0 },
	{ "x.test allow=a@\n", "hold:1: bad account \"a@\" (user@domain)\n", 0 },
	{ "x.test allow=1.2.3.4 allow=*\n", "hold:1: allow= given twice\n", 0 },
	{ "x.test route=\n", "hold:1: bad route \"\" (want HOST[:PORT])\n", 0 },
	{ "x.test route=h.test:0\n", "hold:1: bad port in route \"h.test:0\" (1-65535)\n", 0 },
	{ "x.test route=h.test:65536\n", "hold:1: bad port in route \"h.test:65536\" (1-65535)\n", 0 },
	{ "x.test route=h.test:025\n", "hold:1: bad port in route \"h.test:025\" (1-65535)\n", 0 },
	{ "x.test route=h.test:\n", "hold:1: bad port in route \"h.test:\" (1-65535)\n", 0 },
	{ "x.test route=2001:db8::1\n", "hold:1: an IPv6 route is written in brackets: \"[2001:db8::1]\"\n", 0 },
	{ "x.test route=[2001:db8::1\n", "hold:1: bad route \"[2001:db8::1\" (want HOST[:PORT] or [IPv6][:PORT])\n", 0 },
	{ "x.test route=[1.2.3.4]:25\n", "hold:1: bad IPv6 address in route \"[1.2.3.4]:25\"\n", 0 },
	{ "x.test route=bad_host!:25\n", "hold:1: bad host in route \"bad_host!:25\"\n", 0 },
	{ "x.test route=a.test route=b.test\n", "hold:1: route= given twice\n", 0 },
	{ "x.test queue=a/b\n", "hold:1: bad queue name \"a/b\" (1-64 letters, digits, '.', '_', '-')\n", 0 },
	{ "x.test queue=\n", "hold:1: bad queue name \"\" (1-64 letters, digits, '.', '_', '-')\n", 0 },
	{ "x.test queue=a queue=b\n", "hold:1: queue= given twice\n", 0 },
	{ "x.test a=1 b=2 c=3 d=4\n", "hold:1: too many fields: a domain and at most allow=, route= and queue=\n", 0 },
	{ "x.test\nX.TEST.\n", "hold:2: \"X.TEST.\" overlaps the entry on line 1\n", 1 },
	{ "@x.test\n*.x.test\n", "hold:2: \"*.x.test\" overlaps the entry on line 1\n", 1 },
	{ "@x.test\nx.test\n", "hold:2: \"x.test\" overlaps the entry on line 1\n", 1 },
	{ "x.test\n*.x.test\ny.test allow=bogus\nz.test\n",
	  "hold:3: \"bogus\" is not an IP pattern (192.0.2.7, 10.*.*.*, 192.0.2.0/24, 2001:db8::/32), an account "
	  "(user@domain) or *\n", 3 },
};

static void test_errors(void **state)
{
	for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
		struct hold_table t;
		struct buf errors;
		buf_init(&errors, 4096);
		int n = parse(&t, BAD[i].text, &errors);
		if (strcmp(buf_cstr(&errors), BAD[i].error) != 0 || t.n != BAD[i].loaded || n < 1)
			fail_msg("case %zu %s: got %d error(s), %zu loaded:\n%s\nwant:\n%s", i, BAD[i].text, n, t.n,
			    buf_cstr(&errors), BAD[i].error);
		hold_free(&t);
		buf_free(&errors);
	}
}

static void test_bad_defaults(void **state)
{
	static char *const defaults[] = { "127.0.0.1", "nonsense", "*" };
	struct hold_table t;
	struct buf errors;
	buf_init(&errors, 4096);
	assert_int_equal(hold_parse(&t, "", 0, "hold", defaults, 3, &errors), 1);
	assert_non_null(strstr(buf_cstr(&errors), "etrn_clients: \"nonsense\" is not an IP pattern"));
	assert_true(t.defaults.any);
	hold_free(&t);
	buf_free(&errors);
}

/* ---- the format and lookups ----------------------------------------------------------- */

static const char TABLE[] =
	"# held domains\n"
	"\n"
	"Dialup.TEST.   allow=127.0.0.1,10.*.*.*,Joe@Dialup.test  route=192.0.2.10:2525  queue=DialUp   # comment\n"
	"@corp.test     allow=2001:db8::/32,192.0.2.0/28 route=[2001:db8::25]\n"
	"*.shop.test    allow=*   route=mail.shop.test\n"
	"a.corp.test    queue=dialup\n"
	"*.deep.corp.test\n"
	"\tindent.test\troute=h.test:25\n";

static void test_fields(void **state)
{
	struct hold_table t;
	struct buf errors;
	buf_init(&errors, 4096);
	assert_int_equal(parse(&t, TABLE, &errors), 0);
	assert_string_equal(buf_cstr(&errors), "");
	assert_int_equal(t.n, 6);

	const struct hold_entry *e = hold_lookup(&t, "dialup.test");
	assert_non_null(e);
	assert_int_equal(e->line, 3);
	assert_string_equal(e->name, "dialup.test");
	assert_true(e->self);
	assert_false(e->below);
	assert_string_equal(e->queue, "dialup");
	assert_string_equal(e->route_host, "192.0.2.10");
	assert_int_equal(e->route_port, 2525);
	assert_true(e->has_allow);
	assert_int_equal(e->allow.ips.n, 2);
	assert_int_equal(e->allow.naccounts, 1);
	assert_string_equal(e->allow.accounts[0], "joe@dialup.test");

	e = hold_lookup(&t, "corp.test");
	assert_non_null(e);
	assert_true(e->self && e->below);
	assert_string_equal(e->route_host, "2001:db8::25");
	assert_int_equal(e->route_port, 25);
	assert_null(e->queue);

	e = hold_lookup(&t, "x.shop.test");
	assert_non_null(e);
	assert_true(e->allow.any);
	assert_string_equal(e->route_host, "mail.shop.test");
	assert_null(hold_lookup(&t, "shop.test"));   /* *.name never covers name itself */

	e = hold_lookup(&t, "indent.test");
	assert_non_null(e);
	assert_false(e->has_allow);
	assert_int_equal(e->line, 8);
	hold_free(&t);
	buf_free(&errors);
}

static void test_lookup(void **state)
{
	struct hold_table t;
	struct buf errors;
	buf_init(&errors, 4096);
	assert_int_equal(parse(&t, TABLE, &errors), 0);
	static const struct {
		const char *domain;
		int line; /* 0 = not held */
	} cases[] = {
		{ "dialup.test", 3 },
		{ "DIALUP.Test.", 3 },
		{ "x.dialup.test", 0 },        /* an exact entry covers no subdomain */
		{ "corp.test", 4 },
		{ "b.corp.test", 4 },
		{ "a.corp.test", 6 },          /* exact wins over @corp.test */
		{ "x.a.corp.test", 4 },
		{ "deep.corp.test", 4 },       /* *.deep.corp.test does not cover deep.corp.test */
		{ "x.deep.corp.test", 7 },     /* the longest covering entry wins */
		{ "y.x.deep.corp.test", 7 },
		{ "xcorp.test", 0 },           /* a label boundary, not a suffix */
		{ "test", 0 },
		{ "", 0 },
		{ ".", 0 },
		{ "shop.test", 0 },
		{ "a.b.shop.test", 5 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct hold_entry *e = hold_lookup(&t, cases[i].domain);
		if ((e ? e->line : 0) != cases[i].line)
			fail_msg("%s: line %d, want %d", cases[i].domain, e ? e->line : 0, cases[i].line);
	}
	assert_int_equal(hold_lookup_addr(&t, "u@b.corp.test")->line, 4);
	assert_null(hold_lookup_addr(&t, "no-at-sign"));
	assert_null(hold_lookup(NULL, "dialup.test"));
	hold_free(&t);
	buf_free(&errors);
}

static void test_access(void **state)
{
	struct hold_table t;
	struct buf errors;
	buf_init(&errors, 4096);
	assert_int_equal(parse(&t, TABLE, &errors), 0);
	const struct hold_entry *dial = hold_lookup(&t, "dialup.test");
	const struct hold_entry *corp = hold_lookup(&t, "corp.test");
	const struct hold_entry *shop = hold_lookup(&t, "a.shop.test");
	const struct hold_entry *plain = hold_lookup(&t, "indent.test");   /* no allow=: the defaults */

	assert_true(hold_may_release(&t, dial, "127.0.0.1", NULL));
	assert_true(hold_may_release(&t, dial, "::ffff:127.0.0.1", ""));
	assert_true(hold_may_release(&t, dial, "10.200.3.4", NULL));
	assert_false(hold_may_release(&t, dial, "11.0.0.1", NULL));
	assert_true(hold_may_release(&t, dial, "11.0.0.1", "JOE@dialup.TEST"));
	assert_false(hold_may_release(&t, dial, "11.0.0.1", "joe@other.test"));
	assert_false(hold_may_release(&t, dial, "not an address", NULL));

	assert_true(hold_may_release(&t, corp, "2001:db8::77", NULL));
	assert_true(hold_may_release(&t, corp, "192.0.2.15", NULL));
	assert_false(hold_may_release(&t, corp, "192.0.2.16", NULL));

	assert_true(hold_may_release(&t, shop, "203.0.113.1", NULL));

	/* the defaults ("192.0.2.0/24", "ops@isp.test") */
	assert_true(hold_may_release(&t, plain, "192.0.2.200", NULL));
	assert_false(hold_may_release(&t, plain, "127.0.0.1", NULL));
	assert_true(hold_may_release(&t, plain, "127.0.0.1", "ops@isp.test"));
	assert_true(hold_access_allows(&t.defaults, "192.0.2.1", NULL));
	hold_free(&t);
	buf_free(&errors);

	/* No defaults: an entry without allow= may be released by nobody. */
	assert_int_equal(hold_parse(&t, "x.test\n", 7, "hold", NULL, 0, &errors), 0);
	assert_false(hold_may_release(&t, hold_lookup(&t, "x.test"), "127.0.0.1", "a@b.test"));
	hold_free(&t);
}

/* ---- ETRN arguments, table-driven ------------------------------------------------------- */

static const struct {
	const char *arg;
	int code;
	enum hold_node_kind kind;
	const char *name;
} NODES[] = {
	{ "dialup.test", 0, HOLD_NODE_DOMAIN, "dialup.test" },
	{ "Dialup.TEST.", 0, HOLD_NODE_DOMAIN, "dialup.test" },
	{ "@corp.test", 0, HOLD_NODE_SUBDOMAINS, "corp.test" },
	{ "#DialUp", 0, HOLD_NODE_QUEUE, "dialup" },
	{ "#a.b_c-d", 0, HOLD_NODE_QUEUE, "a.b_c-d" },
	{ "my_host.test", 0, HOLD_NODE_DOMAIN, "my_host.test" },
	{ "", 500, 0, NULL },
	{ NULL, 500, 0, NULL },
	{ "localname", 501, 0, NULL },          /* RFC 1985 5.3's own example */
	{ "@localname", 501, 0, NULL },
	{ "a b.test", 501, 0, NULL },
	{ " a.test", 501, 0, NULL },
	{ "a.test ", 501, 0, NULL },
	{ "a.test\t", 501, 0, NULL },
	{ "@", 501, 0, NULL },
	{ "#", 501, 0, NULL },
	{ "@@a.test", 501, 0, NULL },
	{ "@#a", 501, 0, NULL },
	{ "#@a", 501, 0, NULL },
	{ "#a/b", 501, 0, NULL },
	{ "#a b", 501, 0, NULL },
	{ "[192.0.2.1]", 501, 0, NULL },
	{ "192.0.2.1", 501, 0, NULL },
	{ "a..test", 501, 0, NULL },
	{ ".a.test", 501, 0, NULL },
	{ "a.test..", 501, 0, NULL },
	{ "-a.test", 501, 0, NULL },
	{ "a-.test", 501, 0, NULL },
	{ "u@a.test", 501, 0, NULL },
	{ "d\xc3\xa9.test", 501, 0, NULL },
	{ "a\x01.test", 501, 0, NULL },
	{ "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.test", 501, 0, NULL },  /* a 64-byte label */
	{ "#qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", 501, 0, NULL },     /* 65 */
};

static void test_node_parse(void **state)
{
	for (size_t i = 0; i < sizeof(NODES) / sizeof(NODES[0]); i++) {
		struct hold_node n;
		int code = hold_node_parse(NODES[i].arg, &n);
		if (code != NODES[i].code)
			fail_msg("ETRN %s: %d, want %d", NODES[i].arg ? NODES[i].arg : "(null)", code, NODES[i].code);
		if (code == 0 && (n.kind != NODES[i].kind || strcmp(n.name, NODES[i].name) != 0))
			fail_msg("ETRN %s: kind %d name %s", NODES[i].arg, n.kind, n.name);
	}
	/* 253 bytes is the longest name, 254 is too long */
	char name[300];
	memset(name, 'a', sizeof(name));
	for (size_t i = 63; i < sizeof(name); i += 64)
		name[i] = '.';
	name[253] = '\0';
	struct hold_node n;
	assert_int_equal(hold_node_parse(name, &n), 0);
	name[253] = 'a';
	name[254] = '\0';
	assert_int_equal(hold_node_parse(name, &n), 501);
}

static void test_node_selection(void **state)
{
	struct hold_table t;
	struct buf errors;
	struct hold_node n;
	buf_init(&errors, 4096);
	assert_int_equal(parse(&t, TABLE, &errors), 0);
	const struct hold_entry *dial = hold_lookup(&t, "dialup.test");
	const struct hold_entry *corp = hold_lookup(&t, "corp.test");
	const struct hold_entry *acorp = hold_lookup(&t, "a.corp.test");
	const struct hold_entry *deep = hold_lookup(&t, "x.deep.corp.test");

	assert_int_equal(hold_node_parse("corp.test", &n), 0);
	assert_true(hold_node_concerns(&t, &n, corp));
	assert_false(hold_node_concerns(&t, &n, acorp));
	assert_true(hold_node_selects(&n, corp, "corp.test"));
	assert_false(hold_node_selects(&n, corp, "b.corp.test"));

	assert_int_equal(hold_node_parse("b.corp.test", &n), 0);
	assert_true(hold_node_concerns(&t, &n, corp));     /* corp.test's @ entry holds b.corp.test */
	assert_false(hold_node_concerns(&t, &n, dial));

	assert_int_equal(hold_node_parse("@corp.test", &n), 0);
	assert_true(hold_node_concerns(&t, &n, corp));
	assert_true(hold_node_concerns(&t, &n, acorp));
	assert_true(hold_node_concerns(&t, &n, deep));
	assert_false(hold_node_concerns(&t, &n, dial));
	assert_true(hold_node_selects(&n, corp, "x.y.corp.test"));
	assert_true(hold_node_selects(&n, acorp, "a.corp.test"));
	assert_false(hold_node_selects(&n, corp, "corp.test.example"));
	assert_true(hold_node_covers(&n, "CORP.test."));
	assert_false(hold_node_covers(&n, "xcorp.test"));

	assert_int_equal(hold_node_parse("@deep.corp.test", &n), 0);
	assert_true(hold_node_concerns(&t, &n, corp));     /* it holds deep.corp.test itself */
	assert_true(hold_node_concerns(&t, &n, deep));
	assert_false(hold_node_concerns(&t, &n, acorp));

	assert_int_equal(hold_node_parse("#DIALUP", &n), 0);
	assert_true(hold_node_concerns(&t, &n, dial));
	assert_true(hold_node_concerns(&t, &n, acorp));
	assert_false(hold_node_concerns(&t, &n, corp));
	assert_true(hold_node_selects(&n, acorp, "a.corp.test"));
	assert_false(hold_node_selects(&n, corp, "a.corp.test"));
	assert_false(hold_node_covers(&n, "dialup.test"));
	hold_free(&t);
	buf_free(&errors);
}

/* ---- never to ourselves ----------------------------------------------------------------- */

static void test_is_self(void **state)
{
	struct config c;
	struct buf errors;
	char path[] = "/tmp/test_holdtab_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *conf = "hostname = mx.isp.test\n"
			   "work_dir = /tmp\n"
			   "listen = 127.0.0.1:2525 [::1]:2525 *:25\n"
			   "submission_listen = 192.0.2.1:587\n";
	assert_int_equal(write(fd, conf, strlen(conf)), (ssize_t)strlen(conf));
	close(fd);
	buf_init(&errors, 4096);
	assert_int_equal(config_load(&c, path, &errors), 0);
	unlink(path);

	assert_true(hold_is_self(&c, "127.0.0.1", NULL, 2525));
	assert_true(hold_is_self(&c, "h.test", "127.0.0.1", 2525));
	assert_false(hold_is_self(&c, "127.0.0.2", NULL, 2525));      /* listen names one address */
	assert_false(hold_is_self(&c, "127.0.0.1", NULL, 2526));      /* another port: another server */
	assert_true(hold_is_self(&c, "::1", NULL, 2525));
	assert_true(hold_is_self(&c, "h.test", "::ffff:127.0.0.1", 2525));
	assert_true(hold_is_self(&c, "MX.isp.test.", "203.0.113.9", 25));   /* our name, a listening port */
	assert_true(hold_is_self(&c, "127.0.0.9", NULL, 25));         /* '*': any loopback address */
	assert_false(hold_is_self(&c, "203.0.113.9", NULL, 25));      /* not an address of this machine */
	assert_true(hold_is_self(&c, "192.0.2.1", NULL, 587));
	assert_false(hold_is_self(&c, "customer.test", NULL, 2525));
	assert_false(hold_is_self(&c, NULL, NULL, 25));
	config_free(&c);
	buf_free(&errors);
}

static void test_load(void **state)
{
	struct hold_table t;
	struct buf errors;
	char dir[] = "/tmp/test_holdtab_dir_XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/hold", dir);
	buf_init(&errors, 4096);
	/* missing: empty */
	assert_int_equal(hold_load(&t, path, NULL, 0, &errors), 0);
	assert_int_equal(t.n, 0);
	hold_free(&t);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("a.test allow=*\n\nb.test route=\n", fp);
	fclose(fp);
	assert_int_equal(hold_load(&t, path, NULL, 0, &errors), 1);
	char want[256];
	snprintf(want, sizeof(want), "%s:3: bad route \"\" (want HOST[:PORT])\n", path);
	assert_string_equal(buf_cstr(&errors), want);
	assert_int_equal(t.n, 1);
	hold_free(&t);
	unlink(path);
	rmdir(dir);
	buf_free(&errors);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_bad_defaults),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_access),
		cmocka_unit_test(test_node_parse),
		cmocka_unit_test(test_node_selection),
		cmocka_unit_test(test_is_self),
		cmocka_unit_test(test_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
