/*
 * Unit tests for src/policy/relay.c: the manual's tables I–V cell for cell (a
 * golden table below, written from seed 003 "中継の制限", not from the code), the
 * patterns and specials, first-match order, "only" ending the list, parse errors
 * with file:line, relay_block_ip, and the sender/recipient classification.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "local/resolve.h"
#include "policy/relay.h"

static int parse(struct relay_rules *r, const char *text, struct buf *errors)
{
	return relay_parse(r, text, strlen(text), "relay", errors);
}

/* ---- the golden table ---------------------------------------------------------------------- */

/*
 * Cells are written as the manual prints them: three rows (sender: local with
 * account, local without account, external), each three columns (recipient in the
 * same order), 'o' = ○ accepted, 'x' = × refused.  "auth" is the same session after
 * SMTP AUTH succeeded: it may send to local accounts and relay with any sender class,
 * unless the deciding rule is false, norelay,0 or norelay,2.  "PAT" in the rules is replaced by each pattern variant, so
 * the same table is checked for IP wildcards, CIDR, IPv6, IPv4-mapped clients and
 * sender-domain rules.
 */
struct golden {
	const char *rules;
	int listed;        /* the client / sender matches PAT */
	const char *table;
	int rule_line;     /* 0 = built-in default */
	const char *noauth;
	const char *auth;
	int waived;
};

static const struct golden GOLDEN[] = {
	/* I: no file */
	{ "", 1, "I", 0, "oxo xxx oxx", "oxo oxo oxo", 0 },
	{ "", 0, "I", 0, "oxo xxx oxx", "oxo oxo oxo", 0 },
	/* I: PAT default */
	{ "PAT default\n", 1, "I", 1, "oxo xxx oxx", "oxo oxo oxo", 0 },
	{ "PAT default\n", 0, "I", 0, "oxo xxx oxx", "oxo oxo oxo", 0 },
	/* II: PAT (true) — omitted and explicit */
	{ "PAT\n", 1, "II", 1, "oxo oxo oxo", "oxo oxo oxo", 0 },
	{ "PAT\n", 0, "I", 0, "oxo xxx oxx", "oxo oxo oxo", 0 },
	{ "PAT true\n", 1, "II", 1, "oxo oxo oxo", "oxo oxo oxo", 0 },
	{ "PAT true\n", 0, "I", 0, "oxo xxx oxx", "oxo oxo oxo", 0 },
	/* III: PAT false — authentication does not help */
	{ "PAT false\n", 1, "III", 1, "xxx xxx xxx", "xxx xxx xxx", 0 },
	{ "PAT false\n", 0, "I", 0, "oxo xxx oxx", "oxo oxo oxo", 0 },
	/* IV: PAT norelay — ※1: authenticated sessions may relay */
	{ "PAT norelay\n", 1, "IV", 1, "oxx xxx oxx", "oxo oxo oxo", 0 },
	{ "PAT norelay\n", 0, "I", 0, "oxo xxx oxx", "oxo oxo oxo", 0 },
	/* IV: norelay,0 — authenticated sessions refused too */
	{ "PAT norelay,0\n", 1, "IV", 1, "oxx xxx oxx", "oxx xxx oxx", 0 },
	{ "PAT norelay,0\n", 0, "I", 0, "oxo xxx oxx", "oxo oxo oxo", 0 },
	/* IV: norelay,2 — the rule over AUTH, and AUTH is not demanded */
	{ "PAT norelay,2\n", 1, "IV", 1, "oxx xxx oxx", "oxx xxx oxx", 1 },
	{ "PAT norelay,2\n", 0, "I", 0, "oxo xxx oxx", "oxo oxo oxo", 0 },
	/* V: PAT only — listed: table I; everybody else: the second half of V */
	{ "PAT only\n", 1, "V", 1, "oxo xxx oxx", "oxo oxo oxo", 0 },
	{ "PAT only\n", 0, "V-other", 1, "xxx xxx oxx", "oxo oxo oxo", 0 },
	/* a rule after "only" is ignored (the manual: "only" is valid only as the last entry) */
	{ "PAT only\nPAT false\n", 1, "V", 1, "oxo xxx oxx", "oxo oxo oxo", 0 },
	{ "PAT only\n0.0.0.0/0 true\n::/0 true\n#blank true\n", 0, "V-other", 1, "xxx xxx oxx", "oxo oxo oxo", 0 },
	/* the rule decides only when it is first to match */
	{ "# header\n\nPAT norelay\nPAT false\n", 1, "IV", 3, "oxx xxx oxx", "oxo oxo oxo", 0 },
};

/* Pattern variants: a pattern, and a client/sender that matches it and one that does not. */
struct variant {
	const char *pattern;
	const char *ip_in, *sender_in;
	const char *ip_out, *sender_out;
};

static const struct variant VARIANTS[] = {
	{ "192.168.0.*", "192.168.0.10", "taro@abc.co.jp", "10.1.2.3", "taro@abc.co.jp" },
	{ "192.168.0.0/24", "192.168.0.255", "x@example.org", "192.168.1.0", "x@example.org" },
	{ "192.168.0.*", "::ffff:192.168.0.10", "", "::ffff:192.168.1.10", "" },
	{ "2001:db8::/32", "2001:db8:0:1::25", "taro@abc.co.jp", "2001:db9::25", "taro@abc.co.jp" },
	{ "abc.co.jp", "10.1.2.3", "taro@ABC.co.jp", "10.1.2.3", "taro@def.co.jp" },
	{ "taro@abc.co.jp", "192.168.0.10", "Taro@abc.co.jp", "192.168.0.10", "jiro@abc.co.jp" },
};

static char *subst(const char *rules, const char *pattern)
{
	size_t n = strlen(rules) + 8 * strlen(pattern) + 1;
	char *out = malloc(n), *o = out;
	assert_non_null(out);
	for (const char *p = rules; *p;) {
		if (strncmp(p, "PAT", 3) == 0) {
			o += sprintf(o, "%s", pattern);
			p += 3;
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	return out;
}

static void test_golden_cells(void **state)
{
	size_t cells = 0;
	for (size_t v = 0; v < sizeof(VARIANTS) / sizeof(VARIANTS[0]); v++) {
		const struct variant *var = &VARIANTS[v];
		for (size_t g = 0; g < sizeof(GOLDEN) / sizeof(GOLDEN[0]); g++) {
			const struct golden *gc = &GOLDEN[g];
			char *text = subst(gc->rules, var->pattern);
			struct relay_rules r;
			struct buf errors;
			buf_init(&errors, 4096);
			if (parse(&r, text, &errors) != 0)
				fail_msg("rules %s: %s", text, buf_cstr(&errors));
			for (int auth = 0; auth <= 1; auth++) {
				const char *want_cells = auth ? gc->auth : gc->noauth;
				for (int s = 0; s < 3; s++) {
					for (int c = 0; c < 3; c++) {
						struct relay_query q = {
							.client_ip = gc->listed ? var->ip_in : var->ip_out,
							.sender = gc->listed ? var->sender_in : var->sender_out,
							.sclass = (enum sender_class)s,
							.rclass = (enum rcpt_class)c,
							.authenticated = auth,
						};
						q.sender_null = q.sender[0] == '\0';
						struct relay_decision d;
						relay_decide(&r, &q, &d);
						int want = want_cells[s * 4 + c] == 'o';
						if (d.allow != want || strcmp(d.table, gc->table) != 0 ||
						    (d.rule ? d.rule->line : 0) != gc->rule_line || d.auth_waived != gc->waived ||
						    (d.allow ? d.reason != NULL : d.reason == NULL))
							fail_msg("pattern %s rules \"%s\" %s auth=%d sender=%d rcpt=%d: got %s table %s "
								 "line %d waived %d, want %s table %s line %d waived %d",
							    var->pattern, gc->rules, gc->listed ? "listed" : "unlisted", auth, s, c,
							    d.allow ? "o" : "x", d.table, d.rule ? d.rule->line : 0, d.auth_waived,
							    want ? "o" : "x", gc->table, gc->rule_line, gc->waived);
						cells++;
					}
				}
			}
			relay_free(&r);
			buf_free(&errors);
			free(text);
		}
	}
	print_message("relay golden cells checked: %zu\n", cells);
	assert_int_equal(cells, 6 * 21 * 2 * 9);
}

/* The reasons a refusal carries (they reach the log and the 550 text). */
static void test_reasons(void **state)
{
	static const struct {
		const char *rules;
		const char *ip;
		int s, c, auth;
		const char *reason;
	} cases[] = {
		{ "", "10.0.0.1", SENDER_EXTERNAL, RCPT_CLASS_EXTERNAL, 0, "relaying denied" },
		{ "", "10.0.0.1", SENDER_EXTERNAL, RCPT_CLASS_LOCAL_NO_ACCOUNT, 0, "unknown local user" },
		{ "", "10.0.0.1", SENDER_EXTERNAL, RCPT_CLASS_LOCAL_NO_ACCOUNT, 1, "unknown local user" },
		{ "", "10.0.0.1", SENDER_LOCAL_NO_ACCOUNT, RCPT_CLASS_LOCAL_ACCOUNT, 0, "local sender without account" },
		{ "10.0.0.1 norelay,0", "10.0.0.1", SENDER_LOCAL_NO_ACCOUNT, RCPT_CLASS_LOCAL_ACCOUNT, 1,
		    "local sender without account" },
		{ "10.0.0.1 false", "10.0.0.1", SENDER_LOCAL_ACCOUNT, RCPT_CLASS_LOCAL_ACCOUNT, 1, "access denied by rule" },
		{ "10.0.0.1 false", "10.0.0.1", SENDER_EXTERNAL, RCPT_CLASS_LOCAL_NO_ACCOUNT, 0, "access denied by rule" },
		{ "10.0.0.1 norelay", "10.0.0.1", SENDER_LOCAL_ACCOUNT, RCPT_CLASS_EXTERNAL, 0, "relaying denied" },
		{ "10.0.0.1 norelay,0", "10.0.0.1", SENDER_LOCAL_ACCOUNT, RCPT_CLASS_EXTERNAL, 1, "relaying denied" },
		{ "0.0.0.0 only", "10.0.0.1", SENDER_LOCAL_ACCOUNT, RCPT_CLASS_LOCAL_ACCOUNT, 0,
		    "local sender not allowed from this client" },
		{ "0.0.0.0 only", "10.0.0.1", SENDER_LOCAL_ACCOUNT, RCPT_CLASS_EXTERNAL, 0, "relaying denied" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct relay_rules r;
		assert_int_equal(parse(&r, cases[i].rules, NULL), 0);
		struct relay_query q = { .client_ip = cases[i].ip, .sender = "a@b.example", .sclass = cases[i].s,
			.rclass = cases[i].c, .authenticated = cases[i].auth };
		struct relay_decision d;
		relay_decide(&r, &q, &d);
		assert_int_equal(d.allow, 0);
		assert_string_equal(d.reason, cases[i].reason);
		relay_free(&r);
	}
}

/* ---- patterns ------------------------------------------------------------------------------------ */

static int ip_listed(const char *pattern, const char *ip)
{
	struct relay_rules r;
	struct buf errors;
	char text[256];
	buf_init(&errors, 1024);
	snprintf(text, sizeof(text), "%s false\n", pattern);
	if (parse(&r, text, &errors) != 0)
		fail_msg("%s: %s", pattern, buf_cstr(&errors));
	const struct relay_rule *m = relay_match(&r, ip, "x@example.org", 0);
	int hit = m != NULL;
	relay_free(&r);
	buf_free(&errors);
	return hit;
}

static void test_ip_patterns(void **state)
{
	static const struct {
		const char *pattern, *ip;
		int match;
	} cases[] = {
		/* the manual's examples I a)–e) */
		{ "10.*.*.*", "10.255.0.1", 1 },
		{ "10.*.*.*", "11.0.0.1", 0 },
		{ "192.168.*.*", "192.168.200.3", 1 },
		{ "192.168.*.*", "192.169.0.1", 0 },
		{ "192.168.1.*", "192.168.1.255", 1 },
		{ "192.168.1.*", "192.168.2.1", 0 },
		{ "192.168.1.0/28", "192.168.1.0", 1 },
		{ "192.168.1.0/28", "192.168.1.15", 1 },
		{ "192.168.1.0/28", "192.168.1.16", 0 },
		{ "192.168.1.0/28", "192.168.0.1", 0 },
		/* a wildcard anywhere, a whole octet */
		{ "10.*.5.*", "10.1.5.3", 1 },
		{ "10.*.5.*", "10.1.6.3", 0 },
		{ "*.*.*.*", "203.0.113.9", 1 },
		{ "*.*.*.*", "2001:db8::1", 0 },
		/* CIDR /0 /8 /28 /32, host bits ignored */
		{ "0.0.0.0/0", "203.0.113.9", 1 },
		{ "0.0.0.0/0", "2001:db8::1", 0 },
		{ "10.0.0.0/8", "10.200.3.4", 1 },
		{ "10.0.0.0/8", "11.0.0.0", 0 },
		{ "192.168.1.5/32", "192.168.1.5", 1 },
		{ "192.168.1.5/32", "192.168.1.4", 0 },
		{ "192.168.1.7/28", "192.168.1.0", 1 },
		{ "192.168.1.7/28", "192.168.1.16", 0 },
		/* plain addresses; 0.0.0.0 is valid and matches no real client */
		{ "192.0.2.1", "192.0.2.1", 1 },
		{ "192.0.2.1", "192.0.2.10", 0 },
		{ "0.0.0.0", "10.0.0.1", 0 },
		/* IPv6 */
		{ "2001:db8::/32", "2001:db8:1::1", 1 },
		{ "2001:db8::/32", "2001:db9::", 0 },
		{ "2001:db8::/32", "192.168.1.1", 0 },
		{ "2001:db8:8000::/33", "2001:db8:8000::1", 1 },
		{ "2001:db8:8000::/33", "2001:db8:7fff::1", 0 },
		{ "2001:DB8::1", "2001:db8::1", 1 },
		{ "2001:db8::1", "2001:db8::2", 0 },
		{ "2001:db8::1/128", "2001:db8::1", 1 },
		{ "::/0", "2001:db8::1", 1 },
		{ "::/0", "10.0.0.1", 0 },
		{ "fe80::/10", "fe80::1%eth0", 1 },
		/* IPv4-mapped IPv6 is IPv4, in clients and in patterns */
		{ "10.0.0.1", "::ffff:10.0.0.1", 1 },
		{ "10.*.*.*", "::FFFF:10.9.9.9", 1 },
		{ "::/0", "::ffff:10.0.0.1", 0 },
		{ "::ffff:10.0.0.0/104", "10.1.1.1", 1 },
		{ "::ffff:10.0.0.0/104", "11.1.1.1", 0 },
		{ "::ffff:10.0.0.7", "10.0.0.7", 1 },
		/* a client that is not a numeric address matches no IP rule */
		{ "0.0.0.0/0", "garbage", 0 },
		{ "0.0.0.0/0", "", 0 },
		{ "::/0", "::1%", 1 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (ip_listed(cases[i].pattern, cases[i].ip) != cases[i].match)
			fail_msg("%s vs %s: want %d", cases[i].pattern, cases[i].ip, cases[i].match);
	struct relay_rules r;
	assert_int_equal(parse(&r, "0.0.0.0/0 false\n", NULL), 0);
	assert_null(relay_match(&r, NULL, "x@example.org", 0));
	relay_free(&r);
}

static void test_sender_patterns(void **state)
{
	static const struct {
		const char *pattern, *sender;
		int null, match;
	} cases[] = {
		/* #blank and #<> are both the null reverse-path, MAIL FROM:<> */
		{ "#blank", "", 1, 1 },
		{ "#blank", "a@example.org", 0, 0 },
		{ "#<>", "", 1, 1 },
		{ "#<>", "a@example.org", 0, 0 },
		{ "#BLANK", "", 1, 1 },
		{ "#blank", "", 0, 1 }, /* "" is <> even when the flag was not set */
		/* #number: the domain is an address literal or digits and dots */
		{ "#number", "a@[192.0.2.1]", 0, 1 },
		{ "#number", "a@[IPv6:2001:db8::1]", 0, 1 },
		{ "#number", "a@192.0.2.1", 0, 1 },
		{ "#number", "a@192.0.2.1.", 0, 1 },
		{ "#number", "a@12345", 0, 1 },
		{ "#number", "a@1a.example", 0, 0 },
		{ "#number", "a", 0, 0 },
		{ "#number", "", 1, 0 },
		/* #nodomain: no '@domain' */
		{ "#nodomain", "postmaster", 0, 1 },
		{ "#nodomain", "a@", 0, 1 },
		{ "#nodomain", "a@example.org", 0, 0 },
		{ "#nodomain", "", 1, 0 },
		/* #host: a domain without a dot */
		{ "#host", "a@localhost", 0, 1 },
		{ "#host", "a@localhost.", 0, 1 },
		{ "#host", "a@example.org", 0, 0 },
		{ "#host", "a@[192.0.2.1]", 0, 0 },
		{ "#host", "a", 0, 0 },
		{ "#host", "", 1, 0 },
		/* sender domain: exact, case-insensitive, one trailing dot ignored, no subdomains */
		{ "abc.co.jp", "x@abc.co.jp", 0, 1 },
		{ "abc.co.jp", "x@ABC.CO.JP", 0, 1 },
		{ "abc.co.jp", "x@abc.co.jp.", 0, 1 },
		{ "abc.co.jp", "x@mail.abc.co.jp", 0, 0 },
		{ "abc.co.jp", "x@abc.co.jp.evil.example", 0, 0 },
		{ "abc.co.jp", "x@xabc.co.jp", 0, 0 },
		{ "abc.co.jp", "abc.co.jp", 0, 0 },
		{ "abc.co.jp", "", 1, 0 },
		{ "abc.co.jp", "\"x@y\"@abc.co.jp", 0, 1 },
		/* sender address: whole address, case-insensitive */
		{ "abc@abc.co.jp", "abc@abc.co.jp", 0, 1 },
		{ "abc@abc.co.jp", "ABC@Abc.Co.Jp", 0, 1 },
		{ "abc@abc.co.jp", "abc@abc.co.jp.", 0, 1 },
		{ "abc@abc.co.jp", "xabc@abc.co.jp", 0, 0 },
		{ "abc@abc.co.jp", "abc@abc.co.jp.x", 0, 0 },
		{ "abc@abc.co.jp", "abc", 0, 0 },
		{ "abc@abc.co.jp", "", 1, 0 },
		/* sender rules never match a client address, IP rules never a sender */
		{ "192.0.2.1", "a@[192.0.2.1]", 0, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct relay_rules r;
		struct buf errors;
		char text[256];
		buf_init(&errors, 1024);
		snprintf(text, sizeof(text), "%s false\n", cases[i].pattern);
		if (parse(&r, text, &errors) != 0)
			fail_msg("%s: %s", cases[i].pattern, buf_cstr(&errors));
		int hit = relay_match(&r, "203.0.113.1", cases[i].sender, cases[i].null) != NULL;
		if (hit != cases[i].match)
			fail_msg("%s vs <%s>%s: want %d", cases[i].pattern, cases[i].sender, cases[i].null ? " (null)" : "",
			    cases[i].match);
		relay_free(&r);
		buf_free(&errors);
	}
}

static void test_parse_forms(void **state)
{
	struct relay_rules r;
	struct buf errors;
	buf_init(&errors, 4096);
	const char *text = "\xef\xbb\xbf# effect.dat\r\n"
			   "\n"
			   "   # indented comment\n"
			   "#this is a comment too\n"
			   "10.*.*.*\n"
			   "192.168.1.0/28\tfalse\r\n"
			   "  abc.co.jp   DEFAULT  \n"
			   "abc@abc.co.jp norelay,0\n"
			   "#blank norelay,2\n"
			   "#<> false\n"
			   "#number false\n"
			   "#nodomain false\n"
			   "#host false\n"
			   "0.0.0.0 only\n"
			   "this line is ignored after only\n";
	assert_int_equal(parse(&r, text, &errors), 0);
	assert_string_equal(buf_cstr(&errors), "");
	assert_int_equal(r.n, 10);
	static const struct {
		enum relay_pattern kind;
		enum relay_action action;
		int line;
		const char *text;
	} want[] = {
		{ RELAY_PAT_IP, RELAY_TRUE, 5, "10.*.*.*" },
		{ RELAY_PAT_IP, RELAY_FALSE, 6, "192.168.1.0/28" },
		{ RELAY_PAT_DOMAIN, RELAY_DEFAULT, 7, "abc.co.jp" },
		{ RELAY_PAT_ADDRESS, RELAY_NORELAY0, 8, "abc@abc.co.jp" },
		{ RELAY_PAT_BLANK, RELAY_NORELAY2, 9, "#blank" },
		{ RELAY_PAT_NULL, RELAY_FALSE, 10, "#<>" },
		{ RELAY_PAT_NUMBER, RELAY_FALSE, 11, "#number" },
		{ RELAY_PAT_NODOMAIN, RELAY_FALSE, 12, "#nodomain" },
		{ RELAY_PAT_HOST, RELAY_FALSE, 13, "#host" },
		{ RELAY_PAT_IP, RELAY_ONLY, 14, "0.0.0.0" },
	};
	for (size_t i = 0; i < r.n; i++) {
		assert_int_equal(r.v[i].kind, want[i].kind);
		assert_int_equal(r.v[i].action, want[i].action);
		assert_int_equal(r.v[i].line, want[i].line);
		assert_string_equal(r.v[i].text, want[i].text);
	}
	relay_free(&r);
	buf_free(&errors);

	assert_string_equal(relay_action_name(RELAY_TRUE), "true");
	assert_string_equal(relay_action_name(RELAY_NORELAY0), "norelay,0");
	assert_string_equal(relay_action_name(RELAY_NORELAY2), "norelay,2");
	assert_string_equal(relay_action_name(RELAY_ONLY), "only");
	assert_string_equal(relay_action_name(RELAY_DEFAULT), "default");
}

static void test_parse_errors(void **state)
{
	static const struct {
		const char *text;
		const char *error; /* the expected start of the message */
	} cases[] = {
		{ "10.0.0.1 maybe\n", "relay:1: unknown action \"maybe\"" },
		{ "10.0.0.1 norelay,1\n", "relay:1: unknown action \"norelay,1\"" },
		{ "10.0.0.1 norelay, 0\n", "relay:1: extra field \"0\"" },
		{ "abc.co.jp false extra\n", "relay:1: extra field \"extra\"" },
		{ "10.0.0.0/33\n", "relay:1: CIDR prefix length out of range (0-32): \"10.0.0.0/33\"" },
		{ "2001:db8::/129 false\n", "relay:1: CIDR prefix length out of range (0-128)" },
		{ "10.0.0.0/\n", "relay:1: bad CIDR prefix length" },
		{ "10.0.0.0/-1\n", "relay:1: bad CIDR prefix length" },
		{ "10.0.0.0/8a\n", "relay:1: bad CIDR prefix length" },
		{ "10.0.0.0/0008\n", "relay:1: bad CIDR prefix length" },
		{ "256.1.1.1\n", "relay:1: bad IPv4 pattern" },
		{ "10.1*.0.1\n", "relay:1: bad IPv4 pattern" },
		{ "10.*1.0.1\n", "relay:1: bad IPv4 pattern" },
		{ "10.**.0.1\n", "relay:1: bad IPv4 pattern" },
		{ "10.*.*\n", "relay:1: bad IPv4 pattern" },
		{ "10.0.0.0.1\n", "relay:1: bad IPv4 pattern" },
		{ "1234.0.0.1\n", "relay:1: bad IPv4 pattern" },
		{ "..* norelay\n", "relay:1: bad IPv4 pattern" },
		{ "*\n", "relay:1: bad IPv4 pattern" },
		{ "10.*.0.0/16\n", "relay:1: bad IPv4 network" },
		{ "300.0.0.0/8\n", "relay:1: bad IPv4 network" },
		{ "gggg::1\n", "relay:1: bad IPv6 address" },
		{ "2001:db8::*\n", "relay:1: bad IPv6 address" },
		{ "*.abc.co.jp\n", "relay:1: pattern is neither" },
		{ "abc_def.co.jp\n", "relay:1: pattern is neither" },
		{ "-abc.co.jp\n", "relay:1: pattern is neither" },
		{ "abc@\n", "relay:1: bad sender address pattern" },
		{ "@abc.co.jp\n", "relay:1: bad sender address pattern" },
		{ "abc@abc_co.jp\n", "relay:1: bad sender address pattern" },
		{ "# comment\n\n10.0.0.1\n999.0.0.1 false\n", "relay:4: bad IPv4 pattern" },
		{ "10.0.0.1\r\n\r\nbogus! false\r\n", "relay:3: pattern is neither" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct relay_rules r;
		struct buf errors;
		buf_init(&errors, 4096);
		int n = parse(&r, cases[i].text, &errors);
		if (n != 1 || strncmp(buf_cstr(&errors), cases[i].error, strlen(cases[i].error)) != 0)
			fail_msg("\"%s\": %d errors: %s (want %s)", cases[i].text, n, buf_cstr(&errors), cases[i].error);
		relay_free(&r);
		buf_free(&errors);
	}

	/* A bad line is skipped, the good ones stay, and every error is counted. */
	struct relay_rules r;
	struct buf errors;
	buf_init(&errors, 4096);
	assert_int_equal(parse(&r, "10.0.0.1 false\nbad line here\n10.0.0.2 bad\n10.0.0.3\n", &errors), 2);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.v[1].line, 4);
	assert_non_null(strstr(buf_cstr(&errors), "relay:2: extra field"));
	assert_non_null(strstr(buf_cstr(&errors), "relay:3: unknown action"));
	relay_free(&r);

	/* Over-long lines and NUL bytes are errors, not truncated rules. */
	buf_reset(&errors);
	size_t big = 5000;
	char *text = malloc(big + 32);
	assert_non_null(text);
	memset(text, 'a', big);
	memcpy(text + big, "\n1.2.3.4\n", 9);
	assert_int_equal(relay_parse(&r, text, big + 9, "relay", &errors), 1);
	assert_int_equal(r.n, 1);
	assert_non_null(strstr(buf_cstr(&errors), "relay:1: line too long"));
	relay_free(&r);
	free(text);
	buf_reset(&errors);
	assert_int_equal(relay_parse(&r, "1.2.3.4\0 false\n", 15, "relay", &errors), 1);
	assert_non_null(strstr(buf_cstr(&errors), "relay:1: NUL byte"));
	relay_free(&r);

	/* Errors after "only" are not reported: those lines are not read at all. */
	buf_reset(&errors);
	assert_int_equal(parse(&r, "10.0.0.1 only\n999.0.0.1 maybe\nbogus!!!\n", &errors), 0);
	assert_int_equal(r.n, 1);
	relay_free(&r);
	buf_free(&errors);
}

static void test_first_match(void **state)
{
	struct relay_rules r;
	struct relay_decision d;
	struct relay_query q = { .sender = "x@abc.co.jp", .sclass = SENDER_EXTERNAL, .rclass = RCPT_CLASS_EXTERNAL };

	assert_int_equal(parse(&r, "10.0.0.1 false\n10.0.0.0/8 true\nabc.co.jp false\n", NULL), 0);
	q.client_ip = "10.0.0.1";
	relay_decide(&r, &q, &d);
	assert_string_equal(d.table, "III");
	assert_int_equal(d.rule->line, 1);
	q.client_ip = "10.0.0.2";
	relay_decide(&r, &q, &d);
	assert_string_equal(d.table, "II");
	assert_int_equal(d.rule->line, 2);
	assert_int_equal(d.allow, 1);
	q.client_ip = "192.0.2.1"; /* the sender rule is next */
	relay_decide(&r, &q, &d);
	assert_string_equal(d.table, "III");
	assert_int_equal(d.rule->line, 3);
	relay_free(&r);

	/* A sender rule before an IP rule wins for that sender. */
	assert_int_equal(parse(&r, "abc.co.jp false\n10.0.0.1 true\n", NULL), 0);
	q.client_ip = "10.0.0.1";
	relay_decide(&r, &q, &d);
	assert_string_equal(d.table, "III");
	q.sender = "y@def.co.jp";
	relay_decide(&r, &q, &d);
	assert_string_equal(d.table, "II");
	relay_free(&r);

	/* The manual's example I f): only the /28 relays; "0.0.0.0 only" closes the list for everyone else. */
	assert_int_equal(parse(&r, "192.168.1.0/28 default\n0.0.0.0 only\n", NULL), 0);
	q.client_ip = "192.168.1.3";
	q.sclass = SENDER_LOCAL_ACCOUNT;
	relay_decide(&r, &q, &d);
	assert_string_equal(d.table, "I");
	assert_int_equal(d.allow, 1);
	assert_int_equal(d.rule->line, 1);
	q.client_ip = "192.168.1.30";
	relay_decide(&r, &q, &d);
	assert_string_equal(d.table, "V-other");
	assert_int_equal(d.allow, 0);
	assert_int_equal(d.rule->line, 2);
	assert_null(relay_match(&r, "192.168.1.30", "x@abc.co.jp", 0));
	relay_free(&r);

	/* Example I g), written as Tsubame needs it: the /28 gets table I, everyone else table IV. */
	assert_int_equal(parse(&r, "192.168.1.0/28 default\n*.*.*.* norelay\n::/0 norelay\n", NULL), 0);
	q.client_ip = "203.0.113.5";
	relay_decide(&r, &q, &d);
	assert_string_equal(d.table, "IV");
	assert_int_equal(d.allow, 0);
	q.client_ip = "2001:db8::5";
	relay_decide(&r, &q, &d);
	assert_string_equal(d.table, "IV");
	q.rclass = RCPT_CLASS_LOCAL_ACCOUNT;
	relay_decide(&r, &q, &d);
	assert_int_equal(d.allow, 1);
	relay_free(&r);

	/* Example II e): only this sender may relay; for others table V's second half. */
	assert_int_equal(parse(&r, "abc@abc.co.jp only\n", NULL), 0);
	q.client_ip = "192.0.2.1";
	q.sender = "abc@abc.co.jp";
	q.rclass = RCPT_CLASS_EXTERNAL;
	relay_decide(&r, &q, &d);
	assert_string_equal(d.table, "V");
	assert_int_equal(d.allow, 1);
	q.sender = "def@abc.co.jp";
	relay_decide(&r, &q, &d);
	assert_string_equal(d.table, "V-other");
	assert_int_equal(d.allow, 0);
	relay_free(&r);

	/* Out-of-range classes (a caller bug) are refused. */
	assert_int_equal(parse(&r, "", NULL), 0);
	q.sclass = (enum sender_class)7;
	relay_decide(&r, &q, &d);
	assert_int_equal(d.allow, 0);
	relay_free(&r);
}

/* ---- files --------------------------------------------------------------------------------------- */

static char *tmpdir_make(void)
{
	char tmpl[] = "/tmp/test_relay.XXXXXX";
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	return strdup(d);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	assert_int_equal(chmod(path, mode), 0);
}

static char *read_text(const char *path)
{
	static char buf[8192];
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

static int dir_entries(const char *dir)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "ls -A %s | wc -l", dir);
	FILE *p = popen(cmd, "r");
	int n = -1;
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

static void test_load_and_block(void **state)
{
	char *dir = tmpdir_make();
	char path[512];
	struct relay_rules r;
	struct buf errors;
	struct relay_decision d;
	struct relay_query q = { .client_ip = "192.168.0.7", .sender = "x@example.org", .sclass = SENDER_LOCAL_ACCOUNT,
		.rclass = RCPT_CLASS_LOCAL_ACCOUNT };

	buf_init(&errors, 4096);
	snprintf(path, sizeof(path), "%s/relay", dir);

	/* A missing file is an empty list: table I. */
	assert_int_equal(relay_load(&r, path, &errors), 0);
	assert_int_equal(r.n, 0);
	relay_free(&r);

	write_file(path, "192.168.0.* true\n10.0.0.1 only\n", 0604);
	assert_int_equal(relay_load(&r, path, &errors), 0);
	relay_decide(&r, &q, &d);
	assert_string_equal(d.table, "II");
	relay_free(&r);

	assert_int_equal(relay_block_ip(path, "192.168.0.7"), 0);
	assert_string_equal(read_text(path), "192.168.0.7 false\n192.168.0.* true\n10.0.0.1 only\n");
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0604);
	assert_int_equal(dir_entries(dir), 1); /* no temporary file left behind */
	assert_int_equal(relay_load(&r, path, &errors), 0);
	relay_decide(&r, &q, &d);
	assert_string_equal(d.table, "III");
	assert_int_equal(d.rule->line, 1);
	assert_int_equal(d.allow, 0);
	relay_free(&r);

	/* It wins even for a client only reachable past the "only" line. */
	assert_int_equal(relay_block_ip(path, "2001:db8::66"), 0);
	assert_int_equal(relay_block_ip(path, "192.168.0.7"), 0); /* already in the leading block: unchanged */
	assert_string_equal(read_text(path), "2001:db8::66 false\n192.168.0.7 false\n192.168.0.* true\n10.0.0.1 only\n");
	assert_int_equal(relay_load(&r, path, &errors), 0);
	q.client_ip = "2001:db8::66";
	relay_decide(&r, &q, &d);
	assert_string_equal(d.table, "III");
	relay_free(&r);

	/* Invalid addresses are refused before anything is written. */
	static const char *const bad[] = { "1.2.3.999", "abc.co.jp", "a@abc.co.jp", "1.2.3.4\nfoo", "1.2.3.4 true",
		"", "#blank", "1.2.3.4/40", "..*" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		assert_int_equal(relay_block_ip(path, bad[i]), -1);
		assert_int_equal(errno, EINVAL);
	}
	assert_int_equal(relay_block_ip(path, NULL), -1);
	assert_string_equal(read_text(path), "2001:db8::66 false\n192.168.0.7 false\n192.168.0.* true\n10.0.0.1 only\n");

	/* A file without a final newline keeps its last line intact. */
	write_file(path, "10.0.0.0/8 true", 0640);
	assert_int_equal(relay_block_ip(path, "10.0.0.9"), 0);
	assert_string_equal(read_text(path), "10.0.0.9 false\n10.0.0.0/8 true");

	/* Blocking with no file creates it. */
	unlink(path);
	assert_int_equal(relay_block_ip(path, "198.51.100.0/24"), 0);
	assert_string_equal(read_text(path), "198.51.100.0/24 false\n");
	assert_int_equal(relay_load(&r, path, &errors), 0);
	assert_int_equal(r.n, 1);
	relay_free(&r);

	/* Unreadable or non-regular files are errors, not an empty list. */
	buf_reset(&errors);
	assert_int_equal(relay_load(&r, dir, &errors), 1);
	assert_non_null(strstr(buf_cstr(&errors), dir));
	relay_free(&r);

	unlink(path);
	rmdir(dir);
	free(dir);
	buf_free(&errors);
}

/* ---- classification ---------------------------------------------------------------------------- */

#define FAKE_HASH "$6$saltsalt$0123456789abcdefABCDEF"

static void test_classify(void **state)
{
	struct local_tables t;
	struct buf errors;
	FILE *fp;
	memset(&t, 0, sizeof(t));
	buf_init(&errors, 4096);
	const char *domains = "abc.co.jp aliases=mail.abc.co.jp\n";
	const char *accounts = "taro\t" FAKE_HASH "\tTaro\tabc.co.jp\t\t1\t0\t0\n";
	const char *aliases = "info@abc.co.jp taro@abc.co.jp\n";
	fp = fmemopen((void *)domains, strlen(domains), "r");
	assert_int_equal(domains_parse(&t.domains, fp, "domains", &errors), 0);
	fclose(fp);
	fp = fmemopen((void *)accounts, strlen(accounts), "r");
	assert_int_equal(accounts_parse(&t.accounts, fp, "accounts", &errors), 0);
	fclose(fp);
	fp = fmemopen((void *)aliases, strlen(aliases), "r");
	assert_int_equal(aliases_parse(&t.aliases, fp, "aliases", &errors), 0);
	fclose(fp);

	static const struct {
		const char *addr;
		int null;
		enum sender_class s;
		enum rcpt_class c;
	} cases[] = {
		{ "taro@abc.co.jp", 0, SENDER_LOCAL_ACCOUNT, RCPT_CLASS_LOCAL_ACCOUNT },
		{ "TARO@ABC.CO.JP", 0, SENDER_LOCAL_ACCOUNT, RCPT_CLASS_LOCAL_ACCOUNT },
		{ "taro@mail.abc.co.jp", 0, SENDER_LOCAL_ACCOUNT, RCPT_CLASS_LOCAL_ACCOUNT },
		{ "taro@abc.co.jp.", 0, SENDER_EXTERNAL, RCPT_CLASS_EXTERNAL },
		{ "info@abc.co.jp", 0, SENDER_LOCAL_NO_ACCOUNT, RCPT_CLASS_LOCAL_ACCOUNT },
		{ "jiro@abc.co.jp", 0, SENDER_LOCAL_NO_ACCOUNT, RCPT_CLASS_LOCAL_NO_ACCOUNT },
		{ "taro@example.org", 0, SENDER_EXTERNAL, RCPT_CLASS_EXTERNAL },
		{ "taro@[192.0.2.1]", 0, SENDER_EXTERNAL, RCPT_CLASS_EXTERNAL },
		{ "", 1, SENDER_EXTERNAL, RCPT_CLASS_LOCAL_NO_ACCOUNT },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mailaddr a;
		memset(&a, 0, sizeof(a));
		if (cases[i].null) {
			a.is_null = 1;
		} else {
			const char *at = strrchr(cases[i].addr, '@');
			snprintf(a.local, sizeof(a.local), "%.*s", (int)(at - cases[i].addr), cases[i].addr);
			snprintf(a.domain, sizeof(a.domain), "%s", at + 1);
			a.domain_is_literal = at[1] == '[';
		}
		if (relay_sender_class(&t, &a) != cases[i].s)
			fail_msg("sender %s: got %d", cases[i].addr, relay_sender_class(&t, &a));
		if (!cases[i].null && relay_rcpt_class(&t, &a) != cases[i].c)
			fail_msg("rcpt %s: got %d", cases[i].addr, relay_rcpt_class(&t, &a));
	}
	local_tables_free(&t);
	buf_free(&errors);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden_cells),
		cmocka_unit_test(test_reasons),
		cmocka_unit_test(test_ip_patterns),
		cmocka_unit_test(test_sender_patterns),
		cmocka_unit_test(test_parse_forms),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_first_match),
		cmocka_unit_test(test_load_and_block),
		cmocka_unit_test(test_classify),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
