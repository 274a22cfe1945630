/*
 * test_dnsbl: the pure parts of policy/dnsbl.c, table-driven: RFC 5782 query
 * names (IPv4, IPv6 nibbles, IPv4-mapped IPv6, input that cannot be listed) and
 * the exempt-address matcher (plain addresses, '*' octets, CIDR at its edges).
 * The lookups themselves run against a real DNS server in test_dns.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "policy/dnsbl.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct qname_case {
	const char *ip;
	const char *zone;
	const char *want;  /* NULL: must be refused */
};

static const struct qname_case qname_cases[] = {
	{ "127.0.0.2", "bl.example", "2.0.0.127.bl.example" },
	{ "192.0.2.99", "zen.example.org", "99.2.0.192.zen.example.org" },
	{ "1.2.3.4", "bl.example.", "4.3.2.1.bl.example" },           /* trailing dot dropped */
	{ "255.255.255.255", "x", "255.255.255.255.x" },
	{ "0.0.0.0", "x", "0.0.0.0.x" },
	/* RFC 5782 2.4 example */
	{ "2001:db8:1:2:3:4:567:89ab", "ugly.example.com",
	  "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com" },
	{ "::1", "bl", "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.bl" },
	{ "2001:DB8::2", "bl", "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl" },
	/* IPv4-mapped IPv6 is the IPv4 client */
	{ "::ffff:192.0.2.1", "bl.example", "1.2.0.192.bl.example" },
	{ "::FFFF:c000:0201", "bl.example", "1.2.0.192.bl.example" },
	/* cannot be listed */
	{ "", "bl.example", NULL },
	{ "1.2.3", "bl.example", NULL },
	{ "1.2.3.4.5", "bl.example", NULL },
	{ "256.1.1.1", "bl.example", NULL },
	{ "01.2.3.4", "bl.example", NULL },
	{ " 1.2.3.4", "bl.example", NULL },
	{ "1.2.3.4 ", "bl.example", NULL },
	{ "example.com", "bl.example", NULL },
	{ "fe80::1%eth0", "bl.example", NULL },
	{ "[::1]", "bl.example", NULL },
	{ "1.2.3.4/32", "bl.example", NULL },
	{ "1.2.3.4", "", NULL },
	{ "1.2.3.4", ".", NULL },
	{ "1.2.3.4", ".bl.example", NULL },
};

static void test_query_names(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(qname_cases); i++) {
		const struct qname_case *c = &qname_cases[i];
		char out[300];
		memset(out, 'X', sizeof(out));
		int r = dnsbl_query_name(c->ip, c->zone, out, sizeof(out));
		if (c->want == NULL) {
			if (r != -1)
				fail_msg("case %zu (%s in %s): accepted as %s", i, c->ip, c->zone, out);
		} else {
			if (r != 0)
				fail_msg("case %zu (%s in %s): refused", i, c->ip, c->zone);
			assert_string_equal(out, c->want);
		}
	}
}

static void test_query_name_bounds(void **state)
{
	char out[64], zone[300];

	(void)state;
	/* exactly fits: "4.3.2.1.bl" is 10 characters + NUL */
	assert_int_equal(dnsbl_query_name("1.2.3.4", "bl", out, 11), 0);
	assert_string_equal(out, "4.3.2.1.bl");
	assert_int_equal(dnsbl_query_name("1.2.3.4", "bl", out, 10), -1);
	assert_int_equal(dnsbl_query_name("1.2.3.4", "bl", out, 0), -1);
	assert_int_equal(dnsbl_query_name(NULL, "bl", out, sizeof(out)), -1);
	assert_int_equal(dnsbl_query_name("1.2.3.4", NULL, out, sizeof(out)), -1);
	/* an IPv6 name does not fit in 64 bytes */
	assert_int_equal(dnsbl_query_name("::1", "bl", out, sizeof(out)), -1);
	/* RFC 1035: more than 253 characters is not a name */
	memset(zone, 'a', sizeof(zone));
	zone[253 - 8] = '\0'; /* "4.3.2.1." + 245 = 253 */
	char big[300];
	assert_int_equal(dnsbl_query_name("1.2.3.4", zone, big, sizeof(big)), 0);
	assert_int_equal(strlen(big), 253);
	zone[253 - 8] = 'a';
	zone[254 - 8] = '\0';
	assert_int_equal(dnsbl_query_name("1.2.3.4", zone, big, sizeof(big)), -1);
}

struct exempt_case {
	const char *pattern;
	const char *ip;
	int want;
};

static const struct exempt_case exempt_cases[] = {
	/* plain addresses */
	{ "192.0.2.1", "192.0.2.1", 1 },
	{ "192.0.2.1", "192.0.2.10", 0 },
	{ "192.0.2.1", "::ffff:192.0.2.1", 1 },
	{ "::ffff:192.0.2.1", "192.0.2.1", 1 },
	{ "2001:db8::1", "2001:DB8:0:0::1", 1 },
	{ "2001:db8::1", "2001:db8::2", 0 },
	{ "::1", "127.0.0.1", 0 },
	/* '*' octets */
	{ "10.*.*.*", "10.1.2.3", 1 },
	{ "10.*.*.*", "10.255.255.255", 1 },
	{ "10.*.*.*", "11.0.0.0", 0 },
	{ "10.*.*.*", "::ffff:10.9.9.9", 1 },
	{ "192.168.1.*", "192.168.1.77", 1 },
	{ "192.168.1.*", "192.168.2.77", 0 },
	{ "*.*.*.*", "8.8.8.8", 1 },
	{ "*.*.*.*", "2001:db8::1", 0 },
	{ "*.168.*.1", "10.168.3.1", 1 },
	{ "*.168.*.1", "10.168.3.2", 0 },
	{ "10.*", "10.1.2.3", 0 },          /* four parts, or nothing */
	{ "10.*.*.*.*", "10.1.2.3", 0 },
	{ "10.*.*.", "10.1.2.3", 0 },
	{ "1000.*.*.*", "100.1.2.3", 0 },
	{ "10.**.*.*", "10.1.2.3", 0 },
	/* CIDR v4 edges */
	{ "0.0.0.0/0", "203.0.113.9", 1 },
	{ "0.0.0.0/0", "2001:db8::1", 0 },
	{ "10.0.0.0/8", "10.255.255.255", 1 },
	{ "10.0.0.0/8", "11.0.0.0", 0 },
	{ "10.0.0.0/8", "9.255.255.255", 0 },
	{ "192.168.1.0/24", "192.168.1.0", 1 },
	{ "192.168.1.0/24", "192.168.1.255", 1 },
	{ "192.168.1.0/24", "192.168.0.255", 0 },
	{ "192.168.1.0/24", "192.168.2.0", 0 },
	{ "192.168.1.0/28", "192.168.1.15", 1 },
	{ "192.168.1.0/28", "192.168.1.16", 0 },
	{ "192.168.1.5/32", "192.168.1.5", 1 },
	{ "192.168.1.5/32", "192.168.1.4", 0 },
	{ "192.168.1.77/24", "192.168.1.1", 1 },    /* host bits in the pattern are ignored */
	{ "10.0.0.0/8", "::ffff:10.1.1.1", 1 },
	{ "::ffff:10.0.0.0/104", "10.1.1.1", 1 },
	{ "::ffff:10.0.0.0/104", "11.1.1.1", 0 },
	{ "10.0.0.0/33", "10.0.0.1", 0 },
	{ "10.0.0.0/", "10.0.0.1", 0 },
	{ "10.0.0.0/-1", "10.0.0.1", 0 },
	{ "10.0.0.0/8x", "10.0.0.1", 0 },
	{ "/8", "10.0.0.1", 0 },
	{ "10.0.0/8", "10.0.0.1", 0 },
	/* CIDR v6 */
	{ "2001:db8::/32", "2001:db8:ffff::1", 1 },
	{ "2001:db8::/32", "2001:db9::1", 0 },
	{ "2001:db8::/32", "10.0.0.1", 0 },
	{ "::/0", "2001:db8::1", 1 },
	{ "::/0", "10.0.0.1", 0 },
	{ "2001:db8::/127", "2001:db8::1", 1 },
	{ "2001:db8::/127", "2001:db8::2", 0 },
	{ "2001:db8::5/128", "2001:db8::5", 1 },
	{ "2001:db8::5/128", "2001:db8::4", 0 },
	{ "2001:db8::/129", "2001:db8::", 0 },
	{ "fe80::/10", "febf::1", 1 },
	{ "fe80::/10", "fec0::1", 0 },
	/* nonsense never matches */
	{ "", "10.0.0.1", 0 },
	{ "example.com", "10.0.0.1", 0 },
	{ "10.0.0.1", "not-an-ip", 0 },
	{ "*.*.*.*", "", 0 },
};

static void test_exempt_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(exempt_cases); i++) {
		const struct exempt_case *c = &exempt_cases[i];
		char *pats[1] = { (char *)c->pattern };
		int got = dnsbl_exempt(pats, 1, c->ip);
		if (got != c->want)
			fail_msg("case %zu: pattern %s ip %s: got %d want %d", i, c->pattern, c->ip, got, c->want);
	}
}

static void test_exempt_list(void **state)
{
	char *pats[] = { "bogus", "10.*.*.*", "2001:db8::/32", "192.0.2.7" };

	(void)state;
	assert_int_equal(dnsbl_exempt(pats, ARRAY_LEN(pats), "10.1.1.1"), 1);
	assert_int_equal(dnsbl_exempt(pats, ARRAY_LEN(pats), "2001:db8::9"), 1);
	assert_int_equal(dnsbl_exempt(pats, ARRAY_LEN(pats), "192.0.2.7"), 1);
	assert_int_equal(dnsbl_exempt(pats, ARRAY_LEN(pats), "192.0.2.8"), 0);
	assert_int_equal(dnsbl_exempt(pats, 0, "10.1.1.1"), 0);
	assert_int_equal(dnsbl_exempt(NULL, 0, "10.1.1.1"), 0);
	assert_int_equal(dnsbl_exempt(pats, ARRAY_LEN(pats), NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_query_names),
		cmocka_unit_test(test_query_name_bounds),
		cmocka_unit_test(test_exempt_table),
		cmocka_unit_test(test_exempt_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
