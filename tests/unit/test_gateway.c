/*
 * Unit tests for src/deliver/gateway.c: the per-domain gateway table of seed 003
 * ("SMTPゲートウェイ", "テーブル編集"): the manual's own examples, comments (注1),
 * wildcards (注2), implicit TLS (注3), first match in file order, IPv6 gateways,
 * and every parse error with its file:line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "deliver/gateway.h"

static int parse(struct gateway_table *t, const char *text, struct buf *errors)
{
	return gateway_parse(t, text, strlen(text), "gw", errors);
}

/* ---- parse errors, table-driven ------------------------------------------------------------ */

struct bad {
	const char *text;
	const char *error; /* the whole expected error output */
	size_t loaded;
};

static const struct bad BAD[] = {
	{ "a.jp,gw.jp,0\n", "gw:1: bad port (1-65535, optionally followed by '*')\n", 0 },
	{ "a.jp,gw.jp,65536\n", "gw:1: bad port (1-65535, optionally followed by '*')\n", 0 },
	{ "a.jp,gw.jp,25x\n", "gw:1: bad port (1-65535, optionally followed by '*')\n", 0 },
	{ "a.jp,gw.jp,-25\n", "gw:1: bad port (1-65535, optionally followed by '*')\n", 0 },
	{ "a.jp,gw.jp,000025\n", "gw:1: bad port (1-65535, optionally followed by '*')\n", 0 },
	{ "a.jp,gw.jp,*\n", "gw:1: implicit TLS '*' needs a port number (e.g. 465*)\n", 0 },
	{ "a.jp,gw.jp,46*5\n", "gw:1: bad port (1-65535, optionally followed by '*')\n", 0 },
	{ "a.jp\n", "gw:1: missing gateway (an entry is domain-pattern,gateway,port[*])\n", 0 },
	{ "a.jp,\n", "gw:1: missing gateway (an entry is domain-pattern,gateway,port[*])\n", 0 },
	{ "a.jp, ,25\n", "gw:1: missing gateway (an entry is domain-pattern,gateway,port[*])\n", 0 },
	{ ",gw.jp,25\n", "gw:1: empty domain pattern\n", 0 },
	{ "a.jp,gw.jp,25,x\n", "gw:1: extra field \"x\" (an entry is domain-pattern,gateway,port[*])\n", 0 },
	{ "a.jp,gw.jp,25,\n", "gw:1: extra field \"\" (an entry is domain-pattern,gateway,port[*])\n", 0 },
	{ "a..jp,gw.jp\n", "gw:1: empty label in domain pattern\n", 0 },
	{ ".a.jp,gw.jp\n", "gw:1: empty label in domain pattern\n", 0 },
	{ "a jp,gw.jp\n", "gw:1: bad character in domain pattern (letters, digits, '-', '_', '.', '*')\n", 0 },
	{ "#a.jp,gw.jp\n", "gw:1: bad character in domain pattern (letters, digits, '-', '_', '.', '*')\n", 0 },
	{ "a.jp,gw..jp\n", "gw:1: empty label in gateway name\n", 0 },
	{ "a.jp,gw jp\n", "gw:1: bad character in gateway (a host name, an IPv4 address or [IPv6])\n", 0 },
	{ "a.jp,192.168.0.256\n", "gw:1: bad IPv4 address in gateway\n", 0 },
	{ "a.jp,[192.168.0.4]\n", "gw:1: bad IPv6 address in gateway\n", 0 },
	{ "a.jp,[2001:db8::1\n", "gw:1: IPv6 gateway must be written [address]\n", 0 },
	{ "a.jp,2001:db8:::1\n", "gw:1: bad IPv6 address in gateway\n", 0 },
	/* Line numbers count comments and empty lines; the good lines around a bad one load. */
	{ "'comment\n\na.jp,gw.jp\n b.jp,gw.jp\nc.jp,gw.jp,99999\nd.jp,gw.jp\n",
	    "gw:5: bad port (1-65535, optionally followed by '*')\n", 2 },
	{ "a.jp,gw.jp,x\r\nb.jp\r\nc.jp,gw.jp\r\n",
	    "gw:1: bad port (1-65535, optionally followed by '*')\ngw:2: missing gateway (an entry is domain-pattern,gateway,port[*])\n",
	    1 },
};

static void test_errors(void **state)
{
	for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
		struct gateway_table t;
		struct buf errors;
		int expect = 0;
		buf_init(&errors, 4096);
		for (const char *s = BAD[i].error; *s; s++)
			expect += *s == '\n';
		int n = parse(&t, BAD[i].text, &errors);
		if (strcmp(buf_cstr(&errors), BAD[i].error) != 0 || n != expect || t.n != BAD[i].loaded)
			fail_msg("case %zu: %s -> n=%d loaded=%zu errors:\n%s", i, BAD[i].text, n, t.n, buf_cstr(&errors));
		gateway_free(&t);
		buf_free(&errors);
	}
}

static void test_long_line_and_nul(void **state)
{
	char text[5000 + 32];
	struct gateway_table t;
	struct buf errors;

	memset(text, 'a', 5000);
	strcpy(text + 5000, ",gw.jp\nb.jp,gw.jp\n");
	buf_init(&errors, 4096);
	assert_int_equal(parse(&t, text, &errors), 1);
	assert_string_equal(buf_cstr(&errors), "gw:1: line too long\n");
	assert_int_equal(t.n, 1);
	assert_int_equal(t.v[0].line, 2);
	gateway_free(&t);
	buf_reset(&errors);
	assert_int_equal(gateway_parse(&t, "a.jp,g\0w.jp\nb.jp,gw.jp\n", 23, "gw", &errors), 1);
	assert_string_equal(buf_cstr(&errors), "gw:1: NUL byte in line\n");
	assert_int_equal(t.n, 1);
	gateway_free(&t);
	buf_free(&errors);
}

/* ---- good lines ------------------------------------------------------------------------------ */

static void test_fields(void **state)
{
	static const char text[] =
	    "\xef\xbb\xbf" "XXXXXX.CO.JP.,MailGateway.XXXXXX.co.jp.,465*\n" /* 例2, BOM, case, trailing dots */
	    "a.jp,192.168.0.4\n"                        /* port omitted: 25 */
	    "b.jp,192.168.0.5,\n"                       /* port empty: 25 */
	    "c.jp , [2001:DB8::25] , 587 \n"            /* blanks around fields, bracketed IPv6 */
	    "d.jp,2001:db8::26,2525\t*\n"               /* bare IPv6; blank before the '*' */
	    "'e.jp,commented.jp,25\n"                    /* 注1: quote */
	    " f.jp,commented.jp,25\n"                    /* 注1: blank */
	    "\tg.jp,commented.jp,25\n"
	    "\xe3\x80\x80h.jp,commented.jp,25\n"         /* ideographic space */
	    "\n"
	    "*,fallback_gw.example,25\n";
	struct gateway_table t;
	struct buf errors;

	buf_init(&errors, 4096);
	assert_int_equal(parse(&t, text, &errors), 0);
	assert_string_equal(buf_cstr(&errors), "");
	assert_int_equal(t.n, 6);
	assert_string_equal(t.v[0].pattern, "xxxxxx.co.jp");
	assert_string_equal(t.v[0].host, "mailgateway.xxxxxx.co.jp");
	assert_int_equal(t.v[0].kind, GATEWAY_HOST_NAME);
	assert_int_equal(t.v[0].port, 465);
	assert_true(t.v[0].implicit_tls);
	assert_int_equal(t.v[0].line, 1);
	assert_string_equal(t.v[1].host, "192.168.0.4");
	assert_int_equal(t.v[1].kind, GATEWAY_HOST_IPV4);
	assert_int_equal(t.v[1].port, 25);
	assert_false(t.v[1].implicit_tls);
	assert_int_equal(t.v[2].port, 25);
	assert_string_equal(t.v[3].pattern, "c.jp");
	assert_string_equal(t.v[3].host, "2001:db8::25");
	assert_int_equal(t.v[3].kind, GATEWAY_HOST_IPV6);
	assert_int_equal(t.v[3].port, 587);
	assert_string_equal(t.v[4].host, "2001:db8::26");
	assert_int_equal(t.v[4].port, 2525);
	assert_true(t.v[4].implicit_tls);
	assert_int_equal(t.v[4].line, 5);
	/* The commented lines are not entries: the catch-all answers for them. */
	assert_string_equal(gateway_lookup(&t, "e.jp")->host, "fallback_gw.example");
	assert_int_equal(gateway_lookup(&t, "e.jp")->line, 11);
	gateway_free(&t);
	buf_free(&errors);
}

/* ---- matching and lookup ----------------------------------------------------------------- */

struct m {
	const char *pat, *s;
	int match;
};

static const struct m MATCH[] = {
	{ "a.jp", "a.jp", 1 },
	{ "a.jp", "A.JP", 1 },
	{ "a.jp", "b.a.jp", 0 },
	{ "a.jp", "a.jpx", 0 },
	{ "*.xxxx01.co.jp", "a.xxxx01.co.jp", 1 },
	{ "*.xxxx01.co.jp", "a.b.xxxx01.co.jp", 1 }, /* '*' crosses dots */
	{ "*.xxxx01.co.jp", "xxxx01.co.jp", 0 },     /* the dot is literal */
	{ "*.xxxx01.co.jp", "axxxx01.co.jp", 0 },
	{ "01*.xxxx.co.jp", "01.xxxx.co.jp", 1 },    /* '*' matches the empty run */
	{ "01*.xxxx.co.jp", "01abc.xxxx.co.jp", 1 },
	{ "01*.xxxx.co.jp", "01a.b.xxxx.co.jp", 1 },
	{ "01*.xxxx.co.jp", "001.xxxx.co.jp", 0 },
	{ "*", "anything.example", 1 },
	{ "*", "", 1 },
	{ "**", "x", 1 },
	{ "a*b*c", "abc", 1 },
	{ "a*b*c", "aXbYbZc", 1 },
	{ "a*b*c", "aXbYcZ", 0 },
	{ "*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0 },
	{ "mail*", "mail", 1 },
	{ "*.jp", ".jp", 1 },
};

static void test_match(void **state)
{
	for (size_t i = 0; i < sizeof(MATCH) / sizeof(MATCH[0]); i++)
		if (gateway_match(MATCH[i].pat, MATCH[i].s) != MATCH[i].match)
			fail_msg("case %zu: \"%s\" vs \"%s\" should %s", i, MATCH[i].pat, MATCH[i].s,
			    MATCH[i].match ? "match" : "not match");
}

static void test_lookup_order(void **state)
{
	/* 例1 (both forms) plus an exact entry after a wildcard that covers it: first match wins. */
	static const char text[] =
	    "*.xxxx01.co.jp,mailgateway01.xxxx.co.jp,25\n"
	    "*.xxxx02.co.jp,mailgateway02.xxxx.co.jp,25\n"
	    "01*.xxxx.co.jp,mailgateway01.xxxx.co.jp,25\n"
	    "02*.xxxx.co.jp,mailgateway02.xxxx.co.jp,25\n"
	    "*.example.jp,first.example,25\n"
	    "www.example.jp,second.example,26\n"
	    "example.jp,third.example,465*\n";
	static const struct {
		const char *domain;
		int line; /* 0 = no entry */
	} Q[] = {
		{ "sub.xxxx01.co.jp", 1 }, { "SUB.XXXX02.CO.JP", 2 }, { "sub.xxxx02.co.jp.", 2 },
		{ "01host.xxxx.co.jp", 3 }, { "02.xxxx.co.jp", 4 }, { "03.xxxx.co.jp", 0 },
		{ "www.example.jp", 5 }, { "example.jp", 7 }, { "example.jp.", 7 }, { "other.jp", 0 },
		{ "", 0 }, { ".", 0 },
	};
	struct gateway_table t;

	assert_int_equal(parse(&t, text, NULL), 0);
	for (size_t i = 0; i < sizeof(Q) / sizeof(Q[0]); i++) {
		const struct gateway_entry *e = gateway_lookup(&t, Q[i].domain);
		if ((e ? e->line : 0) != Q[i].line)
			fail_msg("%s: line %d, expected %d", Q[i].domain, e ? e->line : 0, Q[i].line);
	}
	assert_null(gateway_lookup(NULL, "a.jp"));
	assert_null(gateway_lookup(&t, NULL));
	gateway_free(&t);
	/* An empty table. */
	assert_int_equal(gateway_parse(&t, "", 0, "gw", NULL), 0);
	assert_int_equal(t.n, 0);
	assert_null(gateway_lookup(&t, "a.jp"));
	gateway_free(&t);
}

static void test_load(void **state)
{
	char dir[] = "/tmp/test_gateway.XXXXXX", path[64];
	struct gateway_table t;
	struct buf errors;
	FILE *fp;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/gateway", dir);
	buf_init(&errors, 4096);
	/* A missing file is an empty table, not an error. */
	assert_int_equal(gateway_load(&t, path, &errors), 0);
	assert_int_equal(t.n, 0);
	gateway_free(&t);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("' the manual's example 2\nxxxxxx.co.jp,mailgateway.xxxxxx.co.jp,465*\nbad.jp,gw.jp,70000\n", fp);
	fclose(fp);
	assert_int_equal(gateway_load(&t, path, &errors), 1);
	char expect[128];
	snprintf(expect, sizeof(expect), "%s:3: bad port (1-65535, optionally followed by '*')\n", path);
	assert_string_equal(buf_cstr(&errors), expect);
	assert_int_equal(t.n, 1);
	assert_int_equal(gateway_lookup(&t, "xxxxxx.co.jp")->port, 465);
	gateway_free(&t);
	/* A directory cannot be read as a table: one error. */
	buf_reset(&errors);
	assert_int_equal(gateway_load(&t, dir, &errors), 1);
	assert_int_equal(t.n, 0);
	gateway_free(&t);
	unlink(path);
	rmdir(dir);
	buf_free(&errors);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_long_line_and_nul),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_lookup_order),
		cmocka_unit_test(test_load),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
