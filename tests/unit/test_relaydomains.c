/*
 * Unit tests for the E1/E2/E7 tables and routes: src/local/relaydomains.c (the
 * relay domains table, recipients lists, host[:port]), src/local/peers.c, the
 * forced routes of src/deliver/nexthop.c, and route_plan's precedence for
 * relay domains and forced routes (docs/relay-domains.md, docs/peers.md).
 * Table-driven: each bad line must give exactly its "file:line: message".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "deliver/nexthop.h"
#include "deliver/route.h"
#include "local/peers.h"
#include "local/relaydomains.h"
#include "smtp/command.h"

static int parse_rd(struct relay_domain_table *t, const char *text, struct buf *errors)
{
	FILE *fp = fmemopen((void *)text, strlen(text), "r");
	assert_non_null(fp);
	memset(t, 0, sizeof(*t));
	int n = relaydomains_parse(t, fp, "relaydomains", errors);
	fclose(fp);
	return n;
}

static int parse_peers(struct peer_table *t, const char *text, struct buf *errors)
{
	FILE *fp = fmemopen((void *)text, strlen(text), "r");
	assert_non_null(fp);
	memset(t, 0, sizeof(*t));
	int n = peers_parse(t, fp, "peers", errors);
	fclose(fp);
	return n;
}

static void test_relaydomains_format(void **state)
{
	const char *text =
		"# E1/E2\n"
		"\n"
		"Corp.Example.   10.0.0.5  verify=probe   # Exchange\r\n"
		"branch.example  mail.Branch.LAN:2525 recipients=branch-users\n"
		"customer.example\n"
		".hosted.example [2001:db8::9]:587\n"
		"*.deep.hosted.example 2001:db8::10 verify=none\n"
		"listed.example recipients=l verify=list\n";
	struct relay_domain_table t;
	struct buf errors;
	buf_init(&errors, 4096);
	assert_int_equal(parse_rd(&t, text, &errors), 0);
	assert_int_equal(t.n, 6);

	const struct relay_domain *d = relaydomains_find(&t, "corp.example");
	assert_non_null(d);
	assert_int_equal(d->line, 3);
	assert_string_equal(d->host, "10.0.0.5");
	assert_int_equal(d->port, 25);
	assert_int_equal(d->verify, RELAY_VERIFY_PROBE);
	assert_ptr_equal(relaydomains_find(&t, "CORP.example."), d);
	assert_null(relaydomains_find(&t, "www.corp.example"));

	d = relaydomains_find(&t, "branch.example");
	assert_string_equal(d->host, "mail.branch.lan");
	assert_int_equal(d->port, 2525);
	assert_int_equal(d->verify, RELAY_VERIFY_LIST);   /* implied by recipients= */
	assert_string_equal(d->recipients_file, "branch-users");

	d = relaydomains_find(&t, "customer.example");
	assert_null(d->host);                              /* its MX */
	assert_int_equal(d->verify, RELAY_VERIFY_NONE);

	/* ".name": subdomains only; the longest suffix wins */
	assert_null(relaydomains_find(&t, "hosted.example"));
	d = relaydomains_find(&t, "a.hosted.example");
	assert_non_null(d);
	assert_int_equal(d->subdomains, 1);
	assert_string_equal(d->host, "2001:db8::9");
	assert_int_equal(d->port, 587);
	assert_string_equal(relaydomains_find(&t, "x.deep.hosted.example")->host, "2001:db8::10");
	assert_string_equal(relaydomains_find(&t, "deep.hosted.example")->host, "2001:db8::9");
	assert_null(relaydomains_find(&t, "xhosted.example"));
	assert_null(relaydomains_find(&t, ""));
	assert_null(relaydomains_find(NULL, "corp.example"));
	relaydomains_free(&t);
	buf_free(&errors);
}

static void test_relaydomains_errors(void **state)
{
	static const struct { const char *line, *error; } cases[] = {
		{ "bad_domain!.test", "invalid domain" },
		{ "a.test 10.0.0.1 10.0.0.2", "more than one host" },
		{ "a.test 10.0.0.1:0", "bad port" },
		{ "a.test 10.0.0.1:70000", "bad port (1-65535)" },
		{ "a.test [10.0.0.1]", "brackets are for IPv6 addresses" },
		{ "a.test [2001:db8::1", "missing ']'" },
		{ "a.test -bad-.host", "bad host name" },
		{ "a.test verify=maybe", "verify=maybe: want none, list or probe" },
		{ "a.test verify=probe", "verify=probe needs a host to ask" },
		{ "a.test verify=list", "verify=list needs recipients=FILE" },
		{ "a.test 10.0.0.1 verify=probe recipients=x", "recipients= is only for verify=list" },
		{ "a.test recipients=", "empty recipients= value" },
		{ "a.test colour=blue", "unknown key \"colour\"" },
		{ "a.test verify=none verify=none", "verify= given twice" },
		{ "a.test 1 2 3 4 5 6 7 8", "too many fields" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct relay_domain_table t;
		struct buf errors;
		char text[256], want[256];
		buf_init(&errors, 4096);
		snprintf(text, sizeof(text), "ok.test\n%s\n", cases[i].line);
		assert_int_equal(parse_rd(&t, text, &errors), 1);
		assert_int_equal(t.n, 1);   /* the good line stays */
		snprintf(want, sizeof(want), "relaydomains:2: %s", cases[i].error);
		if (!strstr(buf_cstr(&errors), want))
			fail_msg("line \"%s\": got \"%s\", want \"%s\"", cases[i].line, buf_cstr(&errors), want);
		relaydomains_free(&t);
		buf_free(&errors);
	}
	/* duplicates, per form */
	struct relay_domain_table t;
	struct buf errors;
	buf_init(&errors, 4096);
	assert_int_equal(parse_rd(&t, "a.test\n.a.test\nA.TEST 10.0.0.1\n", &errors), 1);
	assert_non_null(strstr(buf_cstr(&errors), "relaydomains:3: duplicate entry \"a.test\" (first on line 1)"));
	relaydomains_free(&t);
	buf_free(&errors);
}

static void test_recipients_list(void **state)
{
	struct relay_domain_table t;
	struct buf errors;
	buf_init(&errors, 4096);
	assert_int_equal(parse_rd(&t, "corp.test recipients=users\n.sub.test recipients=s\n", &errors), 0);
	struct relay_domain *d = &t.v[0];
	const char *list = "# users\nann\nBen@Corp.Test\n<cat@corp.test>\nd#x@corp.test\nother@else.test\n\n"
	    "two words\n@corp.test\nbad@dom..ain\n";
	FILE *fp = fmemopen((void *)list, strlen(list), "r");
	assert_int_equal(relaydomains_parse_list(d, fp, "users", &errors), 3);
	fclose(fp);
	assert_non_null(strstr(buf_cstr(&errors), "users:8: one address per line"));
	assert_non_null(strstr(buf_cstr(&errors), "users:9: bad local part"));
	assert_non_null(strstr(buf_cstr(&errors), "users:10: invalid domain"));
	assert_int_equal(d->nrcpts, 5);
	assert_true(relaydomain_has_rcpt(d, "ann", "corp.test"));
	assert_true(relaydomain_has_rcpt(d, "ANN", "CORP.TEST."));
	assert_true(relaydomain_has_rcpt(d, "ben", "corp.test"));
	assert_true(relaydomain_has_rcpt(d, "cat", "corp.test"));
	assert_true(relaydomain_has_rcpt(d, "d#x", "corp.test"));   /* '#' inside a local part is not a comment */
	assert_true(relaydomain_has_rcpt(d, "other", "else.test"));
	assert_false(relaydomain_has_rcpt(d, "dan", "corp.test"));
	assert_false(relaydomain_has_rcpt(d, "ann", "else.test"));
	/* a bare local part under a subdomain line says nothing about which domain */
	buf_reset(&errors);
	fp = fmemopen((void *)"x\n", 2, "r");
	assert_int_equal(relaydomains_parse_list(&t.v[1], fp, "s", &errors), 1);
	fclose(fp);
	assert_non_null(strstr(buf_cstr(&errors), "s:1: \"x\": write the domain too"));
	relaydomains_free(&t);
	buf_free(&errors);
}

static void test_load_with_lists(void **state)
{
	char dir[] = "/tmp/rdtest-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256], lpath[256];
	snprintf(path, sizeof(path), "%s/relaydomains", dir);
	snprintf(lpath, sizeof(lpath), "%s/users", dir);
	FILE *f = fopen(path, "w");
	fputs("corp.test 10.0.0.5 recipients=users\nmissing.test 10.0.0.6 recipients=nothere\n", f);
	fclose(f);
	f = fopen(lpath, "w");
	fputs("ann\n", f);
	fclose(f);
	struct relay_domain_table t;
	struct buf errors;
	buf_init(&errors, 4096);
	assert_int_equal(relaydomains_load(&t, path, dir, 1, &errors), 1);
	assert_non_null(strstr(buf_cstr(&errors), "relaydomains:2: recipients file"));
	assert_true(relaydomain_has_rcpt(relaydomains_find(&t, "corp.test"), "ann", "corp.test"));
	relaydomains_free(&t);
	/* the deliver process does not read the lists */
	buf_reset(&errors);
	assert_int_equal(relaydomains_load(&t, path, dir, 0, &errors), 0);
	assert_int_equal(relaydomains_find(&t, "corp.test")->nrcpts, 0);
	relaydomains_free(&t);
	/* a missing table is an empty one */
	snprintf(path, sizeof(path), "%s/none", dir);
	assert_int_equal(relaydomains_load(&t, path, dir, 1, &errors), 0);
	assert_int_equal(t.n, 0);
	relaydomains_free(&t);
	buf_free(&errors);
	unlink(lpath);
	snprintf(path, sizeof(path), "%s/relaydomains", dir);
	unlink(path);
	rmdir(dir);
}

static void test_hostport(void **state)
{
	static const struct { const char *in, *host; unsigned port; int only_ip; } good[] = {
		{ "10.0.0.1", "10.0.0.1", 25, 1 },
		{ "10.0.0.1:2525", "10.0.0.1", 2525, 1 },
		{ "2001:DB8::1", "2001:db8::1", 25, 1 },
		{ "[2001:db8::1]:587", "2001:db8::1", 587, 1 },
		{ "Mail.Example.", "mail.example", 25, 0 },
		{ "my_host:26", "my_host", 26, 0 },
	};
	static const struct { const char *in; int only_ip; } bad[] = {
		{ "mail.example", 1 }, { "", 0 }, { ":25", 0 }, { "10.0.0.1:", 0 }, { "10.0.0.1:+5", 0 },
		{ "[x]:25", 0 }, { "[2001:db8::1]x", 0 }, { "a..b", 0 }, { "10.0.0.1:025x", 0 },
	};
	char host[256];
	unsigned port;
	const char *why;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(relay_parse_hostport(good[i].in, host, sizeof(host), &port, good[i].only_ip, &why), 0);
		assert_string_equal(host, good[i].host);
		assert_int_equal(port, good[i].port);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (relay_parse_hostport(bad[i].in, host, sizeof(host), &port, bad[i].only_ip, &why) == 0)
			fail_msg("\"%s\" accepted as %s:%u", bad[i].in, host, port);
}

static void test_peers_table(void **state)
{
	const char *text =
		"# seed 004's example, one file for all three\n"
		"itch.example 1.1.1.1 2.2.2.2 3.3.3.3\n"
		"Lab.Example. 10.0.0.7:2525 [2001:db8::7]:2525 probe=rcpt\n"
		"mapped.example [::ffff:192.0.2.5]:26\n";
	struct peer_table t;
	struct buf errors;
	buf_init(&errors, 4096);
	assert_int_equal(parse_peers(&t, text, &errors), 0);
	assert_int_equal(t.n, 3);
	/* an IPv4-mapped IPv6 peer is the IPv4 peer it names */
	assert_string_equal(peers_find(&t, "mapped.example")->peers[0].ip, "192.0.2.5");
	assert_true(peers_is_peer(peers_find(&t, "mapped.example"), "192.0.2.5"));
	const struct peer_entry *e = peers_find(&t, "ITCH.example");
	assert_non_null(e);
	assert_int_equal(e->npeers, 3);
	assert_int_equal(e->probe, PEER_PROBE_VRFY);
	assert_string_equal(e->peers[2].ip, "3.3.3.3");
	assert_int_equal(e->peers[2].port, 25);
	assert_true(peers_is_peer(e, "2.2.2.2"));
	assert_true(peers_is_peer(e, "::ffff:2.2.2.2"));   /* a dual-stack listener's view */
	assert_false(peers_is_peer(e, "4.4.4.4"));
	assert_false(peers_is_peer(e, "not an ip"));
	e = peers_find(&t, "lab.example.");
	assert_int_equal(e->probe, PEER_PROBE_RCPT);
	assert_string_equal(e->peers[1].ip, "2001:db8::7");
	assert_int_equal(e->peers[1].port, 2525);
	assert_true(peers_is_peer(e, "2001:DB8:0::7"));
	assert_null(peers_find(&t, "other.example"));
	assert_null(peers_find(NULL, "itch.example"));
	peers_free(&t);

	static const struct { const char *line, *error; } cases[] = {
		{ "a.test", "no peer for \"a.test\"" },
		{ "a.test mail.a.test", "not an IP address \"mail.a.test\"" },
		{ "a.test 1.1.1.1 1.1.1.1", "peer \"1.1.1.1\" listed twice" },
		{ "a.test 1.1.1.1 probe=ask", "probe=ask: want vrfy or rcpt" },
		{ "a.test 1.1.1.1 weight=2", "unknown key in \"weight=2\"" },
		{ "-a.test 1.1.1.1", "invalid domain" },
		{ "ok.test 9.9.9.9", "duplicate domain \"ok.test\" (first on line 1)" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char in[256], want[256];
		buf_reset(&errors);
		snprintf(in, sizeof(in), "ok.test 1.2.3.4\n%s\n", cases[i].line);
		assert_int_equal(parse_peers(&t, in, &errors), 1);
		assert_int_equal(t.n, 1);
		snprintf(want, sizeof(want), "peers:2: %s", cases[i].error);
		if (!strstr(buf_cstr(&errors), want))
			fail_msg("line \"%s\": got \"%s\", want \"%s\"", cases[i].line, buf_cstr(&errors), want);
		peers_free(&t);
	}
	buf_free(&errors);
}

static void test_nexthop(void **state)
{
	char out[600], ip[46];
	unsigned port;
	int family;
	assert_int_equal(nexthop_format(out, sizeof(out), "alice@itch.test", "127.0.0.43", 2525), 0);
	assert_string_equal(out, "alice@itch.test@[127.0.0.43]:2525");
	assert_int_equal(nexthop_parse(strrchr(out, '@') + 1, ip, sizeof(ip), &family, &port), 0);
	assert_string_equal(ip, "127.0.0.43");
	assert_int_equal(port, 2525);
	assert_int_equal(family, AF_INET);
	assert_int_equal(nexthop_format(out, sizeof(out), "b@x", "2001:DB8::1", 25), 0);
	assert_string_equal(out, "b@x@[2001:db8::1]:25");
	assert_int_equal(nexthop_parse("[2001:db8::1]:25", ip, sizeof(ip), &family, &port), 0);
	assert_int_equal(family, AF_INET6);
	assert_int_equal(nexthop_format(out, sizeof(out), "b@x", "mail.example", 25), -1);
	assert_int_equal(nexthop_format(out, sizeof(out), "b@x", "10.0.0.1", 0), -1);
	assert_int_equal(nexthop_format(out, 10, "b@x", "10.0.0.1", 25), -1);
	/* ordinary domains, address literals and anything loose are not routes */
	static const char *not_routes[] = {
		"itch.test", "[127.0.0.1]", "[IPv6:2001:db8::1]", "[127.0.0.1]:", "[127.0.0.1]:0", "[127.0.0.1]:65536",
		"[127.0.0.1]:025", "[127.0.0.1]:25x", "[2001:DB8::1]:25", "[127.000.0.1]:25", "127.0.0.1:25",
		"[mail.example]:25", "[]:25", "",
	};
	for (size_t i = 0; i < sizeof(not_routes) / sizeof(not_routes[0]); i++)
		if (nexthop_parse(not_routes[i], ip, sizeof(ip), NULL, &port) == 0)
			fail_msg("\"%s\" taken for a route", not_routes[i]);
}

static void test_rcpt_cannot_name_a_route(void **state)
{
	/* An envelope recipient can never end in ":PORT": nothing from SMTP looks like a forced route. */
	struct mailaddr a;
	struct rcpt_params rp;
	struct smtp_err err;
	assert_int_equal(cmd_parse_rcpt("TO:<a@[127.0.0.1]:25>", 0, &a, &rp, &err), -1);
	assert_int_equal(cmd_parse_rcpt("TO:<a@b@[127.0.0.1]:25>", 0, &a, &rp, &err), -1);
	assert_int_equal(cmd_parse_rcpt("TO:<\"a@[127.0.0.1]:25\"@b.test>", 0, &a, &rp, &err), 0);
	assert_string_equal(a.domain, "b.test");
}

static void show_plan(const struct route_plan *p, int rc, char *out, size_t sz)
{
	if (rc != 0) {
		snprintf(out, sz, "error: %s", p->error);
		return;
	}
	if (p->local) {
		snprintf(out, sz, "local");
		return;
	}
	size_t len = 0;
	out[0] = '\0';
	for (size_t i = 0; i < p->n; i++)
		len += (size_t)snprintf(out + len, sz - len, "%s%s %s %s:%u 5xx=%d", i ? " | " : "",
		    route_source_name(p->step[i].source), route_kind_name(p->step[i].kind), p->step[i].host, p->step[i].port,
		    (int)p->step[i].on_5xx);
}

static void test_route_plan(void **state)
{
	struct relay_domain_table rd;
	struct gateway_table gw;
	struct buf errors;
	buf_init(&errors, 4096);
	assert_int_equal(parse_rd(&rd, "corp.test 10.0.0.5:2525\ncustomer.test\ngwd.test\n", &errors), 0);
	static const char gtext[] = "gwd.test,10.9.9.9,26\n*,catchall.gw,25\n";
	assert_int_equal(gateway_parse(&gw, gtext, strlen(gtext), "gw", NULL), 0);
	struct route_config c;
	route_config_defaults(&c);
	c.mode = ROUTE_MODE_SMARTHOST;
	c.smarthost.host = "smart.isp";
	c.smarthost.port = 587;
	c.gateways = &gw;
	c.relay_domains = &rd;
	static const struct { const char *domain; int local; const char *want; } cases[] = {
		/* a relay domain's host: not the catch-all gateway, not the smart host */
		{ "corp.test", 0, "relay-domain host 10.0.0.5:2525 5xx=0" },
		/* no host: its MX (which skips us), not the smart host */
		{ "customer.test", 0, "direct mx customer.test:25 5xx=0" },
		/* no host and a gateway line: still its MX (a relay could hand it back to us) */
		{ "gwd.test", 0, "direct mx gwd.test:25 5xx=0" },
		/* anything else as before */
		{ "other.test", 0, "gateway host catchall.gw:25 5xx=0" },
		{ "corp.test", 1, "local" },
		/* a forced route beats everything, local or not */
		{ "[127.0.0.43]:2525", 0, "peer host 127.0.0.43:2525 5xx=0" },
		{ "[2001:db8::1]:25", 1, "peer host 2001:db8::1:25 5xx=0" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct route_plan p;
		char got[512];
		int rc = route_plan(&c, cases[i].domain, cases[i].local, &p);
		show_plan(&p, rc, got, sizeof(got));
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("%s (local %d): got \"%s\", want \"%s\"", cases[i].domain, cases[i].local, got, cases[i].want);
	}
	/* a peer's refusal is the user's answer; a peer that is down or unresolvable: defer */
	struct route_plan p;
	struct route_tally tally = { 0 };
	assert_int_equal(route_plan(&c, "[127.0.0.43]:2525", 0, &p), 0);
	assert_int_equal(route_next(&p, 0, 0, ROUTE_OUT_PERM_RCPT, &tally).action, ROUTE_BOUNCE);
	assert_int_equal(route_next(&p, 0, 0, ROUTE_OUT_CONN, &tally).action, ROUTE_DEFER);
	assert_int_equal(route_next(&p, 0, 0, ROUTE_OUT_NO_ROUTE, &tally).action, ROUTE_DEFER);
	/* the relay domain's host off the option: try on, bounce only when every host refused */
	c.bounce_on_mx_5xx = 0;
	assert_int_equal(route_plan(&c, "corp.test", 0, &p), 0);
	assert_int_equal(p.step[0].on_5xx, ROUTE_5XX_NEXT);
	relaydomains_free(&rd);
	gateway_free(&gw);
	buf_free(&errors);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_relaydomains_format),
		cmocka_unit_test(test_relaydomains_errors),
		cmocka_unit_test(test_recipients_list),
		cmocka_unit_test(test_load_with_lists),
		cmocka_unit_test(test_hostport),
		cmocka_unit_test(test_peers_table),
		cmocka_unit_test(test_nexthop),
		cmocka_unit_test(test_rcpt_cannot_name_a_route),
		cmocka_unit_test(test_route_plan),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
