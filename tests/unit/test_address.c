/*
 * test_address: table-driven tests of RFC 5321 path parsing (smtp/address.c).
 * Each row is one input, the flags, and either the expected unquoted local part,
 * domain and formatted form, or the expected failure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/address.h"

#define N ADDR_ALLOW_NULL
#define U ADDR_ALLOW_UTF8
#define P ADDR_ALLOW_POSTMASTER
#define B ADDR_ALLOW_NO_BRACKETS

struct ok_case {
	const char *in;
	unsigned flags;
	const char *local;
	const char *domain;
	const char *formatted;
	size_t consumed; /* 0: strlen(in) */
	int literal;
	int utf8;
};

static const struct ok_case ok_cases[] = {
	{ "<user@example.com>", 0, "user", "example.com", "user@example.com", 0, 0, 0 },
	{ "<User.Name+tag@Example.COM>", 0, "User.Name+tag", "Example.COM", "User.Name+tag@Example.COM", 0, 0, 0 },
	{ "<a@b>", 0, "a", "b", "a@b", 0, 0, 0 },
	{ "<!#$%&'*+-/=?^_`{|}~@x.org>", 0, "!#$%&'*+-/=?^_`{|}~", "x.org", "!#$%&'*+-/=?^_`{|}~@x.org", 0, 0, 0 },
	{ "<a%b@local>", 0, "a%b", "local", "a%b@local", 0, 0, 0 },
	{ "<a!b@local>", 0, "a!b", "local", "a!b@local", 0, 0, 0 },
	{ "<\"a@b\"@local>", 0, "a@b", "local", "\"a@b\"@local", 0, 0, 0 },
	{ "<\"john doe\"@example.com>", 0, "john doe", "example.com", "\"john doe\"@example.com", 0, 0, 0 },
	{ "<\"abc\"@example.com>", 0, "abc", "example.com", "abc@example.com", 0, 0, 0 },
	{ "<\"a\\\"b\"@x>", 0, "a\"b", "x", "\"a\\\"b\"@x", 0, 0, 0 },
	{ "<\"a\\\\b\"@x>", 0, "a\\b", "x", "\"a\\\\b\"@x", 0, 0, 0 },
	{ "<\"\\a\"@x>", 0, "a", "x", "a@x", 0, 0, 0 },
	{ "<\"a..b\"@x>", 0, "a..b", "x", "\"a..b\"@x", 0, 0, 0 },
	{ "<\".a\"@x>", 0, ".a", "x", "\".a\"@x", 0, 0, 0 },
	{ "<u@[192.0.2.1]>", 0, "u", "[192.0.2.1]", "u@[192.0.2.1]", 0, 1, 0 },
	{ "<u@[IPv6:2001:db8::1]>", 0, "u", "[IPv6:2001:db8::1]", "u@[IPv6:2001:db8::1]", 0, 1, 0 },
	{ "<u@[ipv6:::1]>", 0, "u", "[ipv6:::1]", "u@[ipv6:::1]", 0, 1, 0 },
	{ "<u@[IPv6:::ffff:192.0.2.1]>", 0, "u", "[IPv6:::ffff:192.0.2.1]", "u@[IPv6:::ffff:192.0.2.1]", 0, 1, 0 },
	{ "<@a,@b:user@c>", 0, "user", "c", "user@c", 0, 0, 0 },
	{ "<@relay.example:user@c.example>", 0, "user", "c.example", "user@c.example", 0, 0, 0 },
	{ "<@[192.0.2.1],@b.example:u@c>", 0, "u", "c", "u@c", 0, 0, 0 },
	{ "<Postmaster>", P, "Postmaster", "", "Postmaster", 0, 0, 0 },
	{ "<postMASTER>", P, "postMASTER", "", "postMASTER", 0, 0, 0 },
	{ "<postmaster@example.com>", 0, "postmaster", "example.com", "postmaster@example.com", 0, 0, 0 },
	{ "<a-b.c-d@x-y.z0>", 0, "a-b.c-d", "x-y.z0", "a-b.c-d@x-y.z0", 0, 0, 0 },
	{ "<u@1.2.3.4>", 0, "u", "1.2.3.4", "u@1.2.3.4", 0, 0, 0 },
	{ "<u@x> SIZE=10", 0, "u", "x", "u@x", 5, 0, 0 },
	{ "user@example.com", B, "user", "example.com", "user@example.com", 0, 0, 0 },
	{ "user@example.com SIZE=1", B, "user", "example.com", "user@example.com", 16, 0, 0 },
	{ "<user@example.com>", B, "user", "example.com", "user@example.com", 0, 0, 0 },
	{ "\"a b\"@x", B, "a b", "x", "\"a b\"@x", 0, 0, 0 },
	/* SMTPUTF8 */
	{ "<\xc3\xa9t\xc3\xa9@exemple.fr>", U, "\xc3\xa9t\xc3\xa9", "exemple.fr", "\xc3\xa9t\xc3\xa9@exemple.fr", 0, 0, 1 },
	{ "<user@\xe4\xbe\x8b\xe3\x81\x88.jp>", U, "user", "\xe4\xbe\x8b\xe3\x81\x88.jp", "user@\xe4\xbe\x8b\xe3\x81\x88.jp", 0, 0, 1 },
	{ "<\"\xf0\x9f\x98\x80 x\"@y>", U, "\xf0\x9f\x98\x80 x", "y", "\"\xf0\x9f\x98\x80 x\"@y", 0, 0, 1 },
	{ "<\xf4\x8f\xbf\xbf@y>", U, "\xf4\x8f\xbf\xbf", "y", "\xf4\x8f\xbf\xbf@y", 0, 0, 1 },
	{ "<\xc2\xa0@y>", U, "\xc2\xa0", "y", "\xc2\xa0@y", 0, 0, 1 },
};

struct bad_case {
	const char *in;
	unsigned flags;
	const char *why; /* expected reason, NULL: any */
};

static const struct bad_case bad_cases[] = {
	{ "", 0, "Empty address" },
	{ "<>", 0, "Null address not allowed here" },
	{ "<>", P | U, "Null address not allowed here" },
	{ "user@example.com", 0, "Address must be enclosed in <>" },
	{ "<user@example.com", 0, "Missing '>' after address" },
	{ "<user>", 0, "Address has no domain" },
	{ "<user@>", 0, "Address has no domain" },
	{ "<@example.com>", 0, "Invalid source route" },
	{ "<Postmaster>", 0, "Address has no domain" },
	{ "<\"Postmaster\">", P, "Address has no domain" },
	{ "<postmaster.x>", P, "Address has no domain" },
	{ "<a@b@c>", 0, "Too many '@' in address" },
	{ "<a@@b>", 0, "Address has no domain" },
	{ "<@b>", 0, NULL },
	{ "<a b@c>", 0, "Space in address" },
	{ "<a@b c>", 0, "Space in address" },
	{ "< a@b>", 0, NULL },
	{ "<a@b >", 0, "Space in address" },
	{ "<a\tb@c>", 0, "Space in address" },
	{ "<a\x01@c>", 0, "Control character in address" },
	{ "<a@c\x7f>", 0, "Control character in address" },
	{ "<.a@b>", 0, "Misplaced dot in local part" },
	{ "<a.@b>", 0, "Misplaced dot in local part" },
	{ "<a..b@c>", 0, "Misplaced dot in local part" },
	{ "<a\"b\"@c>", 0, "Invalid character in address" },
	{ "<\"\"@c>", 0, "Empty local part" },
	{ "<\"abc@c>", 0, "Unterminated quoted local part" },
	{ "<\"a\\", 0, "Unterminated quoted local part" },
	{ "<\"a\x01\"@c>", 0, "Control character in address" },
	{ "<\"a\\\x01\"@c>", 0, "Invalid quoted-pair in local part" },
	{ "<a@b.>", 0, "Domain ends with a dot" },
	{ "<a@.b>", 0, "Empty label in domain" },
	{ "<a@b..c>", 0, "Empty label in domain" },
	{ "<a@-b.c>", 0, "Domain label starts with a hyphen" },
	{ "<a@b-.c>", 0, "Domain label ends with a hyphen" },
	{ "<a@b.c->", 0, "Domain label ends with a hyphen" },
	{ "<a@b_c.d>", 0, "Invalid character in domain" },
	{ "<a@b!c>", 0, "Invalid character in address" },
	{ "<a@[192.0.2.256]>", 0, "Invalid IPv4 address literal" },
	{ "<a@[192.0.2]>", 0, "Invalid IPv4 address literal" },
	{ "<a@[192.0.2.01]>", 0, "Invalid IPv4 address literal" },
	{ "<a@[]>", 0, "Malformed address literal" },
	{ "<a@[IPv6:]>", 0, "Invalid IPv6 address literal" },
	{ "<a@[IPv6:2001:db8::g]>", 0, "Invalid IPv6 address literal" },
	{ "<a@[IPv6:1:2:3:4:5:6:7:8:9]>", 0, "Invalid IPv6 address literal" },
	{ "<a@[2001:db8::1]>", 0, "Unsupported address literal" },
	{ "<a@[x:y]>", 0, "Unsupported address literal" },
	{ "<a@[192.0.2.1>", 0, "Unterminated address literal" },
	{ "<a@[192.0.2.1]x>", 0, "Invalid character in address" },
	{ "<a@[1 2]>", 0, "Invalid character in address literal" },
	{ "<@a,b:u@c>", 0, "Invalid source route" },
	{ "<@a;u@c>", 0, "Invalid source route" },
	{ "<@a,@-b:u@c>", 0, "Domain label starts with a hyphen" },
	/* UTF-8 without the flag, and invalid UTF-8 with it */
	{ "<\xc3\xa9@x>", 0, "Non-ASCII local part requires SMTPUTF8" },
	{ "<\"\xc3\xa9\"@x>", 0, "Non-ASCII local part requires SMTPUTF8" },
	{ "<a@\xc3\xa9.fr>", 0, "Non-ASCII domain requires SMTPUTF8" },
	{ "<\xc3@x>", U, "Invalid UTF-8 in local part" },
	{ "<\xc0\xaf@x>", U, "Invalid UTF-8 in local part" },        /* overlong '/' */
	{ "<\xe0\x80\xaf@x>", U, "Invalid UTF-8 in local part" },    /* overlong */
	{ "<\xf0\x80\x80\xaf@x>", U, "Invalid UTF-8 in local part" }, /* overlong */
	{ "<\xed\xa0\x80@x>", U, "Invalid UTF-8 in local part" },    /* surrogate */
	{ "<\xf4\x90\x80\x80@x>", U, "Invalid UTF-8 in local part" }, /* > U+10FFFF */
	{ "<\xff@x>", U, "Invalid UTF-8 in local part" },
	{ "<\xc2\x85@x>", U, "Invalid UTF-8 in local part" },        /* C1 NEL */
	{ "<\xa9@x>", U, "Invalid UTF-8 in local part" },            /* lone continuation */
	{ "<a@\xc3.fr>", U, "Invalid UTF-8 in domain" },
	{ "<a@x\xe4\xbe>", U, "Invalid UTF-8 in domain" },
	{ "<\"\xc3\"@x>", U, "Invalid UTF-8 in local part" },
};

static void test_ok(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
		const struct ok_case *t = &ok_cases[i];
		struct mailaddr a;
		size_t used = 99;
		const char *why = NULL;
		char fmt[ADDR_TEXT_MAX];
		int r = addr_parse_path(t->in, strlen(t->in), t->flags, &a, &used, &why);
		if (r != 0)
			print_error("case %zu '%s': %s\n", i, t->in, why);
		assert_int_equal(r, 0);
		assert_string_equal(a.local, t->local);
		assert_string_equal(a.domain, t->domain);
		assert_int_equal(used, t->consumed ? t->consumed : strlen(t->in));
		assert_int_equal(a.domain_is_literal, t->literal);
		assert_int_equal(a.utf8, t->utf8);
		assert_int_equal(a.is_null, 0);
		addr_format(&a, fmt, sizeof(fmt));
		assert_string_equal(fmt, t->formatted);
	}
}

static void test_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *t = &bad_cases[i];
		struct mailaddr a;
		size_t used = 99;
		const char *why = NULL;
		int r = addr_parse_path(t->in, strlen(t->in), t->flags, &a, &used, &why);
		if (r != -1)
			print_error("case %zu '%s' parsed\n", i, t->in);
		assert_int_equal(r, -1);
		assert_non_null(why);
		if (t->why != NULL && strcmp(why, t->why) != 0)
			print_error("case %zu '%s': got '%s'\n", i, t->in, why);
		if (t->why != NULL)
			assert_string_equal(why, t->why);
		assert_int_equal(used, 0);
		assert_string_equal(a.local, "");
	}
}

static void test_null(void **state)
{
	struct mailaddr a;
	size_t used;
	const char *why;
	char fmt[16];

	(void)state;
	assert_int_equal(addr_parse_path("<> SIZE=1", 9, N, &a, &used, &why), 0);
	assert_int_equal(a.is_null, 1);
	assert_int_equal(used, 2);
	assert_string_equal(a.local, "");
	assert_string_equal(a.domain, "");
	addr_format(&a, fmt, sizeof(fmt));
	assert_string_equal(fmt, "");
	assert_int_equal(addr_parse("", N, &a, &why), 0);
	assert_int_equal(a.is_null, 1);
	assert_int_equal(addr_parse("", 0, &a, &why), -1);
}

static void test_embedded_nul(void **state)
{
	struct mailaddr a;
	size_t used;
	const char *why;

	(void)state;
	assert_int_equal(addr_parse_path("<a\0b@c>", 7, 0, &a, &used, &why), -1);
	assert_string_equal(why, "Control character in address");
	assert_int_equal(addr_parse_path("<a@c\0>", 6, 0, &a, &used, &why), -1);
	assert_int_equal(addr_parse_path("<\"a\0\"@c>", 8, 0, &a, &used, &why), -1);
	assert_int_equal(addr_parse_path("<a@[1.2.3.4\0]>", 14, 0, &a, &used, &why), -1);
	/* the length bounds the parse: "<a@b>" cut short */
	assert_int_equal(addr_parse_path("<a@b>", 4, 0, &a, &used, &why), -1);
	assert_int_equal(addr_parse_path("<a@b>", 1, 0, &a, &used, &why), -1);
}

static void fill(char *p, char c, size_t n)
{
	memset(p, c, n);
}

static void test_lengths(void **state)
{
	char in[1200];
	struct mailaddr a;
	size_t used;
	const char *why;
	size_t n;

	(void)state;
	/* local part: 64 octets ok, 65 not */
	in[0] = '<';
	fill(in + 1, 'l', 64);
	memcpy(in + 65, "@x>", 4);
	assert_int_equal(addr_parse_path(in, strlen(in), 0, &a, &used, &why), 0);
	assert_int_equal(strlen(a.local), 64);
	fill(in + 1, 'l', 65);
	memcpy(in + 66, "@x>", 4);
	assert_int_equal(addr_parse_path(in, strlen(in), 0, &a, &used, &why), -1);
	assert_string_equal(why, "Local part longer than 64 octets");

	/* quoted: 64 octets including the quotes */
	in[1] = '"';
	fill(in + 2, 'q', 62);
	memcpy(in + 64, "\"@x>", 5);
	assert_int_equal(addr_parse_path(in, strlen(in), 0, &a, &used, &why), 0);
	assert_int_equal(strlen(a.local), 62);
	fill(in + 2, 'q', 63);
	memcpy(in + 65, "\"@x>", 5);
	assert_int_equal(addr_parse_path(in, strlen(in), 0, &a, &used, &why), -1);
	assert_string_equal(why, "Local part longer than 64 octets");

	/* a label of 63 ok, 64 not */
	n = (size_t)snprintf(in, sizeof(in), "<u@%.*s.com>", 63,
	    "ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc");
	assert_int_equal(addr_parse_path(in, n, 0, &a, &used, &why), 0);
	n = (size_t)snprintf(in, sizeof(in), "<u@%.*s.com>", 64,
	    "ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc");
	assert_int_equal(addr_parse_path(in, n, 0, &a, &used, &why), -1);
	assert_string_equal(why, "Domain label longer than 63 octets");

	/* domain 255 ok (addr_parse has no path limit), 256 not */
	char dom[300];
	for (size_t i = 0; i < 255; i++)
		dom[i] = (i % 2) ? '.' : 'd';
	dom[255] = '\0'; /* "d.d. ... d" of 255 octets */
	assert_int_equal(addr_domain_valid(dom, 0), 1);
	n = (size_t)snprintf(in, sizeof(in), "u@%s", dom);
	assert_int_equal(addr_parse(in, 0, &a, &why), 0);
	assert_int_equal(strlen(a.domain), 255);
	dom[255] = '.';
	dom[256] = 'd';
	dom[257] = '\0';
	assert_int_equal(addr_domain_valid(dom, 0), 0);
	n = (size_t)snprintf(in, sizeof(in), "u@%s", dom);
	assert_int_equal(addr_parse(in, 0, &a, &why), -1);
	assert_string_equal(why, "Domain longer than 255 octets");

	/* path: 256 octets with brackets ok, 257 not */
	in[0] = '<';
	fill(in + 1, 'l', 64);
	in[65] = '@';
	for (size_t i = 0; i < 189; i++)
		in[66 + i] = (i % 2) ? '.' : 'd';
	memcpy(in + 255, ">", 2);
	assert_int_equal(strlen(in), 256);
	assert_int_equal(addr_parse_path(in, 256, 0, &a, &used, &why), 0);
	assert_int_equal(used, 256);
	in[254] = 'd';
	in[255] = 'd';
	memcpy(in + 256, ">", 2);
	assert_int_equal(addr_parse_path(in, 257, 0, &a, &used, &why), -1);
	assert_string_equal(why, "Address longer than 256 octets");

	/* a long source route still counts toward the path limit */
	n = (size_t)snprintf(in, sizeof(in), "<@%s,@%s:u@x>", "a.example", dom);
	assert_int_equal(addr_parse_path(in, n, 0, &a, &used, &why), -1);

	/* a very long route of short hops: bounded by the path limit */
	size_t o = 0;
	in[o++] = '<';
	while (o < 1000) {
		memcpy(in + o, "@a,", 3);
		o += 3;
	}
	memcpy(in + o - 1, ":u@x>", 6);
	assert_int_equal(addr_parse_path(in, strlen(in), 0, &a, &used, &why), -1);
	assert_string_equal(why, "Address longer than 256 octets");
}

static void test_addr_parse(void **state)
{
	struct mailaddr a;
	const char *why;

	(void)state;
	assert_int_equal(addr_parse("user@example.com", 0, &a, &why), 0);
	assert_string_equal(a.local, "user");
	assert_int_equal(addr_parse("\"x y\"@example.com", 0, &a, &why), 0);
	assert_string_equal(a.local, "x y");
	assert_int_equal(addr_parse("<user@example.com>", 0, &a, &why), -1);
	assert_int_equal(addr_parse("user@example.com ", 0, &a, &why), -1);
	assert_int_equal(addr_parse("user", 0, &a, &why), -1);
	assert_int_equal(addr_parse("postmaster", P, &a, &why), 0);
	assert_int_equal(addr_parse("@a:user@b", 0, &a, &why), -1);
}

static void test_domain_helpers(void **state)
{
	(void)state;
	assert_int_equal(addr_domain_valid("example.com", 0), 1);
	assert_int_equal(addr_domain_valid("[127.0.0.1]", 0), 1);
	assert_int_equal(addr_domain_valid("[IPv6:::1]", 0), 1);
	assert_int_equal(addr_domain_valid("", 0), 0);
	assert_int_equal(addr_domain_valid("a..b", 0), 0);
	assert_int_equal(addr_domain_valid("a_b", 0), 0);
	assert_int_equal(addr_domain_valid("b\xc3\xbc\x63her.de", 0), 0);
	assert_int_equal(addr_domain_valid("b\xc3\xbc\x63her.de", U), 1);
	assert_int_equal(addr_domain_equal("Example.COM", "example.com"), 1);
	assert_int_equal(addr_domain_equal("example.com", "example.co"), 0);
	assert_int_equal(addr_domain_equal("", ""), 1);
	assert_int_equal(addr_utf8_valid("abc \xc3\xa9", 6), 1);
	assert_int_equal(addr_utf8_valid("a\tb", 3), 0);
	assert_int_equal(addr_utf8_valid("a\0b", 3), 0);
	assert_int_equal(addr_utf8_valid("\xe2\x82", 2), 0);
	assert_int_equal(addr_utf8_valid("\xe2\x82\xac", 3), 1);
}

static void test_format_truncates(void **state)
{
	struct mailaddr a;
	const char *why;
	char small[6];

	(void)state;
	assert_int_equal(addr_parse("user@example.com", 0, &a, &why), 0);
	addr_format(&a, small, sizeof(small));
	assert_string_equal(small, "user@");
	addr_format(&a, small, 1);
	assert_string_equal(small, "");
	/* every byte of the quoted form round-trips through the parser */
	assert_int_equal(addr_parse("\"a\\\"b\\\\c d@e\"@x", 0, &a, &why), 0);
	assert_string_equal(a.local, "a\"b\\c d@e");
	char out[ADDR_TEXT_MAX];
	addr_format(&a, out, sizeof(out));
	struct mailaddr b;
	assert_int_equal(addr_parse(out, 0, &b, &why), 0);
	assert_string_equal(b.local, a.local);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ok),
		cmocka_unit_test(test_bad),
		cmocka_unit_test(test_null),
		cmocka_unit_test(test_embedded_nul),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_addr_parse),
		cmocka_unit_test(test_domain_helpers),
		cmocka_unit_test(test_format_truncates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
