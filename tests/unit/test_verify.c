/*
 * Unit tests for src/verify/: the cache (lifetimes, LRU bound, flush), the
 * probe against tests/unit/smtp_sink.py (VRFY found / unknown / temporary,
 * the RCPT fallback with ENVID=tsubame.probe, HELO fallback, refused and
 * hanging servers, bad input, cancel), and the verifier (cache hits,
 * coalescing, the concurrency queue, hosts remembered as down, deadlines,
 * names without a resolver).  Every wait is bounded (run_until).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "loopback.h"
#include "smtp_sink.h"
#include "verify/probe.h"
#include "verify/vcache.h"
#include "verify/verify.h"

/* ---- vcache ------------------------------------------------------------------------- */

static struct probe_answer ans(enum probe_result r, int code)
{
	struct probe_answer a;
	memset(&a, 0, sizeof(a));
	a.result = r;
	a.code = code;
	a.how = "rcpt";
	snprintf(a.text, sizeof(a.text), "code %d", code);
	return a;
}

static void test_vcache(void **state)
{
	struct vcache *c = vcache_new(3);
	struct probe_answer a = ans(PROBE_OK, 250), b = ans(PROBE_UNKNOWN, 550), out;
	vcache_put(c, "k1", &a, 1000, 0);
	vcache_put(c, "k2", &b, 10, 0);
	assert_int_equal(vcache_size(c), 2);
	assert_int_equal(vcache_get(c, "k1", 999, &out), 1);
	assert_int_equal(out.result, PROBE_OK);
	assert_int_equal(out.code, 250);
	assert_string_equal(out.text, "code 250");
	assert_int_equal(vcache_get(c, "k2", 10, &out), 0);      /* expired: dropped */
	assert_int_equal(vcache_size(c), 1);
	assert_int_equal(vcache_get(c, "k1", 1000, &out), 0);
	/* LRU: k3 used last, k4 new, k5 pushes out the least recently used */
	vcache_put(c, "k3", &a, 100, 0);
	vcache_put(c, "k4", &a, 100, 0);
	vcache_put(c, "k6", &a, 100, 0);
	assert_int_equal(vcache_get(c, "k3", 1, &out), 1);
	vcache_put(c, "k5", &b, 100, 0);
	assert_int_equal(vcache_size(c), 3);
	assert_int_equal(vcache_get(c, "k4", 1, &out), 0);
	assert_int_equal(vcache_get(c, "k3", 1, &out), 1);
	assert_int_equal(vcache_get(c, "k5", 1, &out), 1);
	assert_int_equal(out.result, PROBE_UNKNOWN);
	/* replace, and ttl 0 removes */
	vcache_put(c, "k5", &a, 100, 0);
	assert_int_equal(vcache_get(c, "k5", 1, &out), 1);
	assert_int_equal(out.result, PROBE_OK);
	vcache_put(c, "k5", &a, 0, 0);
	assert_int_equal(vcache_get(c, "k5", 1, &out), 0);
	/* shrinking drops the oldest; growing rehashes and keeps everything */
	vcache_set_max(c, 1);
	assert_int_equal(vcache_size(c), 1);
	vcache_set_max(c, 5000);
	for (int i = 0; i < 4000; i++) {
		char k[32];
		snprintf(k, sizeof(k), "many%d", i);
		vcache_put(c, k, &a, 100, 0);
	}
	assert_int_equal(vcache_size(c), 4001);
	assert_int_equal(vcache_get(c, "many1234", 1, &out), 1);
	vcache_flush(c);
	assert_int_equal(vcache_size(c), 0);
	/* max 0: nothing is kept */
	vcache_set_max(c, 0);
	vcache_put(c, "k", &a, 100, 0);
	assert_int_equal(vcache_size(c), 0);
	vcache_free(c);
}

/* ---- the reply reader ------------------------------------------------------------------ */

static void test_reply_reader(void **state)
{
	static const struct {
		const char *lines;   /* '|' separates lines */
		int ok, done, code, dsn;
		const char *enh, *first;
	} cases[] = {
		{ "250 2.1.5 Ok", 1, 1, 250, 0, "2.1.5", "Ok" },
		{ "550 5.1.1 <a@b>: no such user", 1, 1, 550, 0, "5.1.1", "<a@b>: no such user" },
		{ "250", 1, 1, 250, 0, "", "" },
		{ "252 Cannot VRFY", 1, 1, 252, 0, "", "Cannot VRFY" },
		{ "550 4.1.1 class differs", 1, 1, 550, 0, "", "4.1.1 class differs" },
		{ "250-sink.test|250-PIPELINING|250-DSN|250 8BITMIME", 1, 1, 250, 1, "", "sink.test" },
		{ "250-sink.test|250-DSNX|250 SIZE", 1, 1, 250, 0, "", "sink.test" },
		{ "250-sink.test|250 dsn", 1, 1, 250, 1, "", "sink.test" },
		{ "250-sink.test|250-SMTPUTF8|250 DSN", 1, 1, 250, 1, "", "sink.test" },
		{ "250-first", 1, 0, 250, 0, "", "first" },
		{ "250-a|251 b", 0, 0, 0, 0, NULL, NULL },      /* the code changed */
		{ "25", 0, 0, 0, 0, NULL, NULL },
		{ "2500 x", 0, 0, 0, 0, NULL, NULL },
		{ "abc ok", 0, 0, 0, 0, NULL, NULL },
		{ "150 not a reply class", 0, 0, 0, 0, NULL, NULL },
		{ "650 nor this", 0, 0, 0, 0, NULL, NULL },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct probe_reply r;
		memset(&r, 0, sizeof(r));
		char buf[512];
		snprintf(buf, sizeof(buf), "%s", cases[i].lines);
		int ok = 1, done = 0;
		for (char *save = NULL, *l = strtok_r(buf, "|", &save); l && ok; l = strtok_r(NULL, "|", &save))
			ok = probe_reply_line(&r, l, strlen(l), 1, &done) == 0;
		if (ok != cases[i].ok)
			fail_msg("\"%s\": ok %d, want %d", cases[i].lines, ok, cases[i].ok);
		if (!ok)
			continue;
		assert_int_equal(done, cases[i].done);
		assert_int_equal(r.code, cases[i].code);
		assert_int_equal(r.dsn, cases[i].dsn);
		assert_string_equal(r.enh, cases[i].enh);
		assert_string_equal(r.first, cases[i].first);
	}
	{
		struct probe_reply u;
		int d;
		memset(&u, 0, sizeof(u));
		assert_int_equal(probe_reply_line(&u, "250-x", 5, 1, &d), 0);
		assert_int_equal(probe_reply_line(&u, "250 SMTPUTF8", 12, 1, &d), 0);
		assert_int_equal(u.smtputf8, 1);
		assert_int_equal(u.dsn, 0);
	}
	/* bounds: a NUL, an over-long line, too many lines */
	struct probe_reply r;
	int done;
	memset(&r, 0, sizeof(r));
	assert_int_equal(probe_reply_line(&r, "250 a\0b", 7, 0, &done), -1);
	char *big = malloc(PROBE_LINE_MAX + 2);
	memset(big, 'x', PROBE_LINE_MAX + 1);
	memcpy(big, "250 ", 4);
	assert_int_equal(probe_reply_line(&r, big, PROBE_LINE_MAX + 1, 0, &done), -1);
	free(big);
	memset(&r, 0, sizeof(r));
	int rc = 0;
	for (int i = 0; i <= PROBE_LINES_MAX && rc == 0; i++)
		rc = probe_reply_line(&r, "250-more", 8, 0, &done);
	assert_int_equal(rc, -1);
}

/* ---- probe --------------------------------------------------------------------------- */

struct got {
	int calls;
	struct probe_answer a;
	int cached;
};

static void on_probe(void *arg, const struct probe_answer *a)
{
	struct got *g = arg;
	g->calls++;
	g->a = *a;
}

static void on_verify(void *arg, const struct probe_answer *a, int cached)
{
	struct got *g = arg;
	g->calls++;
	g->a = *a;
	g->cached = cached;
}

static struct sockaddr_in sin_of(int port)
{
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sin;
}

static struct got probe_once(struct event_base *base, int port, const char *addr, enum probe_method m, unsigned ms)
{
	struct sockaddr_in sin = sin_of(port);
	struct probe_params pp = { (struct sockaddr *)&sin, sizeof(sin), "probe.test", addr, m, ms };
	struct got g;
	memset(&g, 0, sizeof(g));
	probe_start(base, &pp, on_probe, &g);
	run_until(base, &g.calls, 1, 10000);
	assert_int_equal(g.calls, 1);
	/* let the QUIT go out and the probe free itself */
	run_until(base, NULL, 0, 50);
	return g;
}

static void test_probe_vrfy(void **state)
{
	struct event_base *base = event_base_new();
	struct sink s;
	sink_start(&s, "vrfy");
	struct got g = probe_once(base, s.port, "ann@corp.test", PROBE_VRFY, 5000);
	assert_int_equal(g.a.result, PROBE_OK);
	assert_int_equal(g.a.code, 250);
	assert_string_equal(g.a.enh, "2.1.5");
	assert_string_equal(g.a.how, "vrfy");
	g = probe_once(base, s.port, "perm@corp.test", PROBE_VRFY, 5000);
	assert_int_equal(g.a.result, PROBE_UNKNOWN);
	assert_int_equal(g.a.code, 550);
	assert_string_equal(g.a.enh, "5.1.1");
	assert_string_equal(g.a.text, "no such user");
	g = probe_once(base, s.port, "temp@corp.test", PROBE_VRFY, 5000);
	assert_int_equal(g.a.result, PROBE_TEMP);
	assert_int_equal(g.a.code, 450);
	assert_true(transcript_has(&s, "C: VRFY <ann@corp.test>"));
	assert_false(transcript_has(&s, "C: MAIL"));
	assert_true(transcript_has(&s, "C: QUIT"));
	sink_stop(&s);
	event_base_free(base);
}

static void test_probe_rcpt_fallback(void **state)
{
	struct event_base *base = event_base_new();
	struct sink s;
	sink_start(&s, "accept");    /* VRFY: 502 */
	struct got g = probe_once(base, s.port, "ann@corp.test", PROBE_VRFY, 5000);
	assert_int_equal(g.a.result, PROBE_OK);
	assert_string_equal(g.a.how, "rcpt");
	g = probe_once(base, s.port, "perm@corp.test", PROBE_RCPT, 5000);
	assert_int_equal(g.a.result, PROBE_UNKNOWN);
	assert_int_equal(g.a.code, 550);
	g = probe_once(base, s.port, "temp@corp.test", PROBE_RCPT, 5000);
	assert_int_equal(g.a.result, PROBE_TEMP);
	/* the loop-guard marker, because the sink offers DSN; never DATA */
	assert_true(transcript_has(&s, "C: MAIL FROM:<> ENVID=tsubame.probe"));
	assert_true(transcript_has(&s, "C: RCPT TO:<ann@corp.test>"));
	assert_false(transcript_has(&s, "C: DATA"));
	assert_int_equal(transcript_count(&s, "C: VRFY"), 1);
	sink_stop(&s);

	/* 252 "cannot VRFY" falls back too; a server without EHLO gets HELO and no ENVID */
	sink_start(&s, "vrfy252,heloonly");
	g = probe_once(base, s.port, "bob@corp.test", PROBE_VRFY, 5000);
	assert_int_equal(g.a.result, PROBE_OK);
	assert_string_equal(g.a.how, "rcpt");
	assert_true(transcript_has(&s, "C: HELO probe.test"));
	assert_true(transcript_has(&s, "C: MAIL FROM:<>\n"));
	sink_stop(&s);

	/* a non-ASCII address at a server without SMTPUTF8: it cannot take it (no VRFY, no RCPT sent) */
	sink_start(&s, "vrfy");
	g = probe_once(base, s.port, "j\xc3\xb6rg@corp.test", PROBE_VRFY, 5000);
	assert_int_equal(g.a.result, PROBE_UNKNOWN);
	assert_non_null(strstr(g.a.text, "SMTPUTF8"));
	assert_false(transcript_has(&s, "C: VRFY"));
	assert_false(transcript_has(&s, "C: RCPT"));
	sink_stop(&s);
	event_base_free(base);
}

static void test_probe_failures(void **state)
{
	struct event_base *base = event_base_new();
	int port = free_port();   /* nothing listens there */
	struct got g = probe_once(base, port, "ann@corp.test", PROBE_VRFY, 5000);
	assert_int_equal(g.a.result, PROBE_FAIL);
	assert_string_equal(g.a.how, "connect");
	assert_int_equal(g.a.code, 0);

	struct sink s;
	sink_start(&s, "hangehlo");
	long t0 = now_ms();
	g = probe_once(base, s.port, "ann@corp.test", PROBE_VRFY, 400);
	assert_int_equal(g.a.result, PROBE_FAIL);
	assert_non_null(strstr(g.a.text, "timed out during ehlo"));
	assert_true(now_ms() - t0 < 3000);
	/* cancelled before the answer (the server hangs): no callback, nothing leaks */
	struct sockaddr_in sin = sin_of(s.port);
	struct probe_params pp = { (struct sockaddr *)&sin, sizeof(sin), "probe.test", "ann@corp.test", PROBE_VRFY, 5000 };
	struct got c;
	memset(&c, 0, sizeof(c));
	struct probe *p = probe_start(base, &pp, on_probe, &c);
	run_until(base, NULL, 0, 20);
	probe_cancel(p);
	run_until(base, NULL, 0, 200);
	assert_int_equal(c.calls, 0);
	sink_stop(&s);

	/* an address that would break the command line is never sent */
	sink_start(&s, "vrfy");
	g = probe_once(base, s.port, "ann@corp.test\r\nDATA", PROBE_VRFY, 5000);
	assert_int_equal(g.a.result, PROBE_FAIL);
	assert_false(transcript_has(&s, "DATA"));
	sink_stop(&s);
	event_base_free(base);
}

/* ---- verifier ------------------------------------------------------------------------ */

static struct verify_config vconf(unsigned concurrency, unsigned timeout_ms)
{
	static char *dead_dns[] = { "127.0.0.1:9" };
	struct verify_config c;
	memset(&c, 0, sizeof(c));
	c.helo = "verify.test";
	c.timeout_ms = timeout_ms;
	c.concurrency = concurrency;
	c.cache_size = 100;
	c.positive_ttl_ms = 60000;
	c.negative_ttl_ms = 60000;
	c.tempfail_ttl_ms = 60000;
	c.dns_servers = dead_dns;
	c.ndns_servers = 1;
	c.dns_timeout_ms = 500;
	return c;
}

static void test_verifier_cache_and_coalescing(void **state)
{
	struct event_base *base = event_base_new();
	struct sink s;
	sink_start(&s, "vrfy");
	struct verify_config c = vconf(4, 5000);
	struct verifier *v = verifier_new(base, &c);
	struct got g1, g2, g3;
	memset(&g1, 0, sizeof(g1));
	memset(&g2, 0, sizeof(g2));
	memset(&g3, 0, sizeof(g3));
	/* the same question twice at once: one probe, two answers */
	verify_ask(v, "127.0.0.1", (unsigned)s.port, PROBE_VRFY, "perm@corp.test", on_verify, &g1);
	verify_ask(v, "127.0.0.1", (unsigned)s.port, PROBE_VRFY, "PERM@corp.test", on_verify, &g2);
	assert_int_equal(g1.calls + g2.calls, 0);   /* never inside verify_ask */
	int total = 0;
	while (g1.calls + g2.calls < 2 && total < 100) {
		run_until(base, NULL, 0, 50);
		total++;
	}
	assert_int_equal(g1.calls, 1);
	assert_int_equal(g2.calls, 1);
	assert_int_equal(g1.a.result, PROBE_UNKNOWN);
	assert_int_equal(g2.a.result, PROBE_UNKNOWN);
	assert_int_equal(verifier_probes(v), 1);
	/* later: from the cache */
	verify_ask(v, "127.0.0.1", (unsigned)s.port, PROBE_VRFY, "perm@corp.test", on_verify, &g3);
	assert_int_equal(g3.calls, 0);
	run_until(base, &g3.calls, 1, 2000);
	assert_int_equal(g3.calls, 1);
	assert_int_equal(g3.cached, 1);
	assert_int_equal(g3.a.code, 550);
	assert_int_equal(verifier_probes(v), 1);
	/* another method is another question; a reload forgets everything */
	memset(&g3, 0, sizeof(g3));
	verify_ask(v, "127.0.0.1", (unsigned)s.port, PROBE_RCPT, "perm@corp.test", on_verify, &g3);
	run_until(base, &g3.calls, 1, 5000);
	assert_int_equal(g3.cached, 0);
	assert_int_equal(verifier_probes(v), 2);
	verifier_configure(v, &c);
	assert_int_equal(verifier_cache_size(v), 0);
	run_until(base, NULL, 0, 100);
	verifier_free(v);
	sink_stop(&s);
	event_base_free(base);
}

static void test_verifier_queue_down_deadline(void **state)
{
	struct event_base *base = event_base_new();
	struct sink s;
	sink_start(&s, "vrfy");
	struct verify_config c = vconf(1, 5000);
	struct verifier *v = verifier_new(base, &c);
	/* concurrency 1: three questions, one at a time, all answered */
	struct got g[3];
	memset(g, 0, sizeof(g));
	const char *who[3] = { "a@corp.test", "perm@corp.test", "temp@corp.test" };
	for (int i = 0; i < 3; i++)
		verify_ask(v, "127.0.0.1", (unsigned)s.port, PROBE_VRFY, who[i], on_verify, &g[i]);
	for (int n = 0; n < 200 && g[0].calls + g[1].calls + g[2].calls < 3; n++)
		run_until(base, NULL, 0, 50);
	assert_int_equal(g[0].a.result, PROBE_OK);
	assert_int_equal(g[1].a.result, PROBE_UNKNOWN);
	assert_int_equal(g[2].a.result, PROBE_TEMP);
	assert_int_equal(verifier_probes(v), 3);

	/* a host that refuses connections is remembered as down: the next address fails from the cache */
	int dead = free_port();
	struct got d1, d2;
	memset(&d1, 0, sizeof(d1));
	memset(&d2, 0, sizeof(d2));
	verify_ask(v, "127.0.0.1", (unsigned)dead, PROBE_VRFY, "x@corp.test", on_verify, &d1);
	run_until(base, &d1.calls, 1, 5000);
	assert_int_equal(d1.a.result, PROBE_FAIL);
	unsigned long before = verifier_probes(v);
	verify_ask(v, "127.0.0.1", (unsigned)dead, PROBE_VRFY, "y@corp.test", on_verify, &d2);
	run_until(base, &d2.calls, 1, 5000);
	assert_int_equal(d2.a.result, PROBE_FAIL);
	assert_int_equal(d2.cached, 1);
	assert_int_equal(verifier_probes(v), before);

	/* a name with no resolver that answers: a failure, not a hang */
	struct got n1;
	memset(&n1, 0, sizeof(n1));
	verify_ask(v, "inner.corp.test", 25, PROBE_RCPT, "x@corp.test", on_verify, &n1);
	run_until(base, &n1.calls, 1, 8000);
	assert_int_equal(n1.calls, 1);
	assert_int_equal(n1.a.result, PROBE_FAIL);
	assert_string_equal(n1.a.how, "dns");

	/* cancelled: never called back */
	struct got x;
	memset(&x, 0, sizeof(x));
	struct verify_req *r = verify_ask(v, "127.0.0.1", (unsigned)s.port, PROBE_VRFY, "late@corp.test", on_verify, &x);
	verify_cancel(r);
	run_until(base, NULL, 0, 300);
	assert_int_equal(x.calls, 0);
	verifier_free(v);
	sink_stop(&s);

	/* the deadline: a server that never answers EHLO */
	sink_start(&s, "hangehlo");
	c = vconf(2, 300);
	v = verifier_new(base, &c);
	struct got h;
	memset(&h, 0, sizeof(h));
	long t0 = now_ms();
	verify_ask(v, "127.0.0.1", (unsigned)s.port, PROBE_VRFY, "a@corp.test", on_verify, &h);
	run_until(base, &h.calls, 1, 5000);
	assert_int_equal(h.calls, 1);
	assert_int_equal(h.a.result, PROBE_FAIL);
	assert_true(now_ms() - t0 < 2000);
	run_until(base, NULL, 0, 500);
	verifier_free(v);
	sink_stop(&s);
	event_base_free(base);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vcache),
		cmocka_unit_test(test_reply_reader),
		cmocka_unit_test(test_probe_vrfy),
		cmocka_unit_test(test_probe_rcpt_fallback),
		cmocka_unit_test(test_probe_failures),
		cmocka_unit_test(test_verifier_cache_and_coalescing),
		cmocka_unit_test(test_verifier_queue_down_deadline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
