/*
 * test_dns: dns/dns.c and dnsbl_check() end to end against a real DNS server
 * on loopback (tests/unit/dns_server.py, python3-dnslib), through a real
 * libevent loop: answer mapping, listings with and without TXT, the zone order,
 * time-outs against a silent server, cancel, and dns_free() with queries in
 * flight.  Every wait is bounded by a timer; the server exits by itself after
 * 60 s even if this process dies.  Run from the repository root.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "loopback.h"
#include <event2/event.h>

#include "dns/dns.h"
#include "policy/dnsbl.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SERVER "tests/unit/dns_server.py"

struct env {
	pid_t pid;
	int port;
	char server[32];    /* "127.0.0.1:PORT" */
	struct event_base *base;
};

/* ---- helpers ---------------------------------------------------------------------- */


struct qwait {
	int calls;
	int in_query;       /* set while dns_query() runs: the callback must not see it */
	int reentered;
	struct dns_answer a;
	struct dns *free_me;
};

static void on_dns(void *arg, const struct dns_answer *a)
{
	struct qwait *w = arg;

	w->calls++;
	if (w->in_query)
		w->reentered = 1;
	w->a = *a;
	if (w->free_me != NULL) {
		struct dns *d = w->free_me;
		w->free_me = NULL;
		dns_free(d);
	}
}

static void query(struct env *e, struct dns *d, const char *name, int type, struct qwait *w)
{
	memset(w, 0, sizeof(*w));
	w->in_query = 1;
	dns_query(d, name, type, on_dns, w);
	w->in_query = 0;
	run_until(e->base, &w->calls, 1, 8000);
	assert_int_equal(w->calls, 1);
	assert_int_equal(w->reentered, 0);
}

struct bwait {
	int calls;
	struct dnsbl_result r;
};

static void on_bl(void *arg, const struct dnsbl_result *r)
{
	struct bwait *w = arg;
	w->calls++;
	w->r = *r;
}

/* One dnsbl_check through a fresh resolver; returns the elapsed ms. */
static long check(struct env *e, const char *server, int timeout_ms, char *const *zones, size_t n, const char *ip,
    struct bwait *w)
{
	char *servers[1] = { (char *)server };
	struct dns *d = dns_new(e->base, servers, 1, timeout_ms);
	long start = now_ms(), elapsed;

	assert_non_null(d);
	memset(w, 0, sizeof(*w));
	struct dnsbl_check *c = dnsbl_check(d, zones, n, ip, on_bl, w);
	assert_non_null(c);
	assert_int_equal(w->calls, 0);
	run_until(e->base, &w->calls, 1, 10000);
	elapsed = now_ms() - start;
	assert_int_equal(w->calls, 1);
	dns_free(d);
	assert_int_equal(w->calls, 1);
	return elapsed;
}

/* ---- the server --------------------------------------------------------------------- */

static int group_setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));
	char portstr[16];

	if (e == NULL)
		return -1;
	e->port = free_port();
	if (e->port < 0)
		return -1;
	snprintf(portstr, sizeof(portstr), "%d", e->port);
	snprintf(e->server, sizeof(e->server), "127.0.0.1:%d", e->port);
	e->base = event_base_new();
	e->pid = fork();
	if (e->pid < 0)
		return -1;
	if (e->pid == 0) {
		execl("/usr/bin/python3", "python3", SERVER, portstr, (char *)NULL);
		_exit(127);
	}
	*state = e;

	/* Wait until it answers: ask through dns.c itself, at most 10 s. */
	long deadline = now_ms() + 10000;
	char *servers[1] = { e->server };
	while (now_ms() < deadline) {
		struct qwait w;
		struct dns *d = dns_new(e->base, servers, 1, 200);
		memset(&w, 0, sizeof(w));
		dns_query(d, "data.test", 1, on_dns, &w);
		run_until(e->base, &w.calls, 1, 2000);
		dns_free(d);
		if (w.calls == 1 && w.a.status == DNS_OK)
			return 0;
		if (waitpid(e->pid, NULL, WNOHANG) == e->pid) {
			fprintf(stderr, "test_dns: %s exited early (python3-dnslib missing?)\n", SERVER);
			e->pid = 0;
			return -1;
		}
		usleep(100 * 1000);
	}
	fprintf(stderr, "test_dns: %s never answered\n", SERVER);
	return -1;
}

static int group_teardown(void **state)
{
	struct env *e = *state;

	if (e == NULL)
		return 0;
	if (e->pid > 0) {
		kill(e->pid, SIGTERM);
		waitpid(e->pid, NULL, 0);
	}
	event_base_free(e->base);
	free(e);
	return 0;
}

/* ---- dns.c ---------------------------------------------------------------------------- */

static void test_server_strings(void **state)
{
	struct env *e = *state;
	static const char *const good[] = { "127.0.0.1", "127.0.0.1:5353", "[::1]:53", "::1", "[127.0.0.1]:53",
		"2001:db8::1" };
	static const char *const bad[] = { "", "localhost", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
		"127.0.0.1:53x", "[::1", "[::1]x", "[::1]:", "1.2.3.4:-1", "1.2.3.4:+53", "300.0.0.1" };

	for (size_t i = 0; i < ARRAY_LEN(good); i++) {
		char *s[1] = { (char *)good[i] };
		struct dns *d = dns_new(e->base, s, 1, 1000);
		if (d == NULL)
			fail_msg("refused %s", good[i]);
		dns_free(d);
	}
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		char *s[1] = { (char *)bad[i] };
		if (dns_new(e->base, s, 1, 1000) != NULL)
			fail_msg("accepted %s", bad[i]);
	}
	char *three[] = { "127.0.0.1", "127.0.0.2:54", "[::1]:55" };
	char *four[] = { "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4" };
	struct dns *d = dns_new(e->base, three, 3, 1000);
	assert_non_null(d);
	dns_free(d);
	assert_null(dns_new(e->base, four, 4, 1000));
	/* no servers: /etc/resolv.conf (or c-ares' default) */
	d = dns_new(e->base, NULL, 0, 1000);
	assert_non_null(d);
	dns_free(d);
	dns_free(NULL);
}

static void test_answers(void **state)
{
	struct env *e = *state;
	char *servers[1] = { e->server };
	struct dns *d = dns_new(e->base, servers, 1, 1000);
	struct qwait w;

	assert_non_null(d);
	query(e, d, "data.test", 1, &w);
	assert_int_equal(w.a.status, DNS_OK);
	assert_int_equal(w.a.naddrs, 2);
	assert_string_equal(w.a.addrs[0], "192.0.2.1");
	assert_string_equal(w.a.addrs[1], "192.0.2.2");

	query(e, d, "data.test", 16, &w);
	assert_int_equal(w.a.status, DNS_OK);
	assert_int_equal(w.a.ntxt, 2);
	assert_string_equal(w.a.txt[0], "part1part2");  /* strings of one record joined */
	assert_string_equal(w.a.txt[1], "other");

	query(e, d, "nothing.bl.test", 1, &w);
	assert_int_equal(w.a.status, DNS_NXDOMAIN);
	query(e, d, "4.0.0.127.bl.test", 16, &w);
	assert_int_equal(w.a.status, DNS_NODATA);
	query(e, d, "x.fail.test", 1, &w);
	assert_int_equal(w.a.status, DNS_TEMPFAIL);
	query(e, d, "data.test", 28, &w);              /* only A and TXT are supported */
	assert_int_equal(w.a.status, DNS_TEMPFAIL);
	dns_free(d);
}

static void test_timeout(void **state)
{
	struct env *e = *state;
	int port;
	int hole = bound_socket(SOCK_DGRAM, 0, &port);   /* bound, never read: a silent server */
	char server[32];
	struct qwait w;

	snprintf(server, sizeof(server), "127.0.0.1:%d", port);
	char *servers[1] = { server };
	struct dns *d = dns_new(e->base, servers, 1, 300);
	assert_non_null(d);
	memset(&w, 0, sizeof(w));
	dns_query(d, "data.test", 1, on_dns, &w);
	long ms = run_until(e->base, &w.calls, 1, 8000);
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.a.status, DNS_TEMPFAIL);
	/* two tries: 300 ms, then c-ares doubles it for the second round */
	if (ms < 250 || ms > 3000)
		fail_msg("time-out after %ld ms", ms);
	dns_free(d);
	close(hole);
}

static void test_free_with_queries_in_flight(void **state)
{
	struct env *e = *state;
	char *servers[1] = { e->server };
	struct dns *d = dns_new(e->base, servers, 1, 5000);
	struct qwait a, b;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	dns_query(d, "x.slow.test", 1, on_dns, &a);
	dns_query(d, "y.slow.test", 16, on_dns, &b);
	event_base_loop(e->base, EVLOOP_NONBLOCK);
	assert_int_equal(a.calls + b.calls, 0);
	dns_free(d);
	assert_int_equal(a.calls, 1);
	assert_int_equal(b.calls, 1);
	assert_int_equal(a.a.status, DNS_TEMPFAIL);
	assert_int_equal(b.a.status, DNS_TEMPFAIL);
}

static void test_free_from_callback(void **state)
{
	struct env *e = *state;
	char *servers[1] = { e->server };
	struct dns *d = dns_new(e->base, servers, 1, 5000);
	struct qwait fast, slow;

	memset(&fast, 0, sizeof(fast));
	memset(&slow, 0, sizeof(slow));
	fast.free_me = d;
	dns_query(d, "x.slow.test", 1, on_dns, &slow);
	dns_query(d, "data.test", 1, on_dns, &fast);
	run_until(e->base, &fast.calls, 1, 8000);
	assert_int_equal(fast.calls, 1);
	assert_int_equal(fast.a.status, DNS_OK);
	/* the free took effect when the callback returned: the slow query ended with it */
	assert_int_equal(slow.calls, 1);
	assert_int_equal(slow.a.status, DNS_TEMPFAIL);
}

/* ---- dnsbl_check ------------------------------------------------------------------------ */

static void test_listed_with_reason(void **state)
{
	struct env *e = *state;
	char *zones[] = { "bl.test" };
	struct bwait w;

	check(e, e->server, 1000, zones, 1, "127.0.0.2", &w);
	assert_int_equal(w.r.listed, 1);
	assert_string_equal(w.r.zone, "bl.test");
	assert_string_equal(w.r.reason, "listed for testing");

	check(e, e->server, 1000, zones, 1, "2001:db8::2", &w);
	assert_int_equal(w.r.listed, 1);
	assert_string_equal(w.r.reason, "v6 listed");

	check(e, e->server, 1000, zones, 1, "::ffff:127.0.0.2", &w);
	assert_int_equal(w.r.listed, 1);
	assert_string_equal(w.r.reason, "listed for testing");
}

static void test_listed_without_txt(void **state)
{
	struct env *e = *state;
	char *zones[] = { "bl.test" };
	struct bwait w;

	check(e, e->server, 1000, zones, 1, "127.0.0.4", &w);
	assert_int_equal(w.r.listed, 1);
	assert_string_equal(w.r.zone, "bl.test");
	assert_string_equal(w.r.reason, "listed by bl.test");
}

static void test_reason_cannot_inject(void **state)
{
	struct env *e = *state;
	char *zones[] = { "bl.test" };
	struct bwait w;

	check(e, e->server, 1000, zones, 1, "127.0.0.3", &w);
	assert_int_equal(w.r.listed, 1);
	assert_string_equal(w.r.reason, "bad??250 injected");
}

static void test_not_listed(void **state)
{
	struct env *e = *state;
	char *zones[] = { "bl.test", "bl2.test" };
	static const char *const ips[] = {
		"127.0.0.1",   /* NXDOMAIN everywhere */
		"127.0.0.5",   /* A 10.0.0.5: not in 127/8 */
		"127.0.0.6",   /* A 127.255.255.254: a list error code */
		"2001:db8::3",
	};
	struct bwait w;

	for (size_t i = 0; i < ARRAY_LEN(ips); i++) {
		check(e, e->server, 1000, zones, 2, ips[i], &w);
		if (w.r.listed)
			fail_msg("%s listed by %s", ips[i], w.r.zone);
	}
	check(e, e->server, 1000, zones, 1, "127.0.0.7", &w); /* only bl2.test lists it */
	assert_int_equal(w.r.listed, 0);
}

static void test_zone_order(void **state)
{
	struct env *e = *state;
	char *one_two[] = { "bl.test", "bl2.test" };
	char *two_one[] = { "bl2.test", "bl.test" };
	char *fail_two[] = { "fail.test", "bl2.test" };
	char *slow_two[] = { "slow.test", "bl2.test" };
	struct bwait w;

	check(e, e->server, 1000, one_two, 2, "127.0.0.2", &w);
	assert_string_equal(w.r.zone, "bl.test");
	assert_string_equal(w.r.reason, "listed for testing");
	check(e, e->server, 1000, two_one, 2, "127.0.0.2", &w);
	assert_string_equal(w.r.zone, "bl2.test");
	assert_string_equal(w.r.reason, "second list");
	check(e, e->server, 1000, one_two, 2, "127.0.0.7", &w);
	assert_int_equal(w.r.listed, 1);
	assert_string_equal(w.r.zone, "bl2.test");
	assert_string_equal(w.r.reason, "only in second");
	/* a failing list before it counts as "no" */
	check(e, e->server, 1000, fail_two, 2, "127.0.0.7", &w);
	assert_int_equal(w.r.listed, 1);
	assert_string_equal(w.r.zone, "bl2.test");
	/* a silent list before it is waited for (its time-out), then counts as "no" */
	long ms = check(e, e->server, 200, slow_two, 2, "127.0.0.7", &w);
	assert_int_equal(w.r.listed, 1);
	assert_string_equal(w.r.zone, "bl2.test");
	if (ms < 150)
		fail_msg("answered after %ld ms without waiting for the first list", ms);
}

static void test_server_down(void **state)
{
	struct env *e = *state;
	char *zones[] = { "bl.test", "bl2.test" };
	char server[32];
	struct bwait w;
	int port;

	/* nobody on the port: refused */
	close(bound_socket(SOCK_DGRAM, 0, &port));
	snprintf(server, sizeof(server), "127.0.0.1:%d", port);
	long ms = check(e, server, 1000, zones, 2, "127.0.0.2", &w);
	assert_int_equal(w.r.listed, 0);
	if (ms > 3500)
		fail_msg("refused server took %ld ms", ms);

	/* a silent server: both tries time out (1 s, then 2 s), then "not listed" */
	int hole = bound_socket(SOCK_DGRAM, 0, &port);
	snprintf(server, sizeof(server), "127.0.0.1:%d", port);
	ms = check(e, server, 1000, zones, 2, "127.0.0.2", &w);
	assert_int_equal(w.r.listed, 0);
	if (ms < 900 || ms > 4500)
		fail_msg("silent server: answer after %ld ms", ms);
	close(hole);
}

static void test_cancel(void **state)
{
	struct env *e = *state;
	char *servers[1] = { e->server };
	char *zones[] = { "bl.test", "bl2.test" };
	char *slow[] = { "slow.test" };
	struct bwait w, other;
	struct dns *d = dns_new(e->base, servers, 1, 1000);

	/* cancelled at once: the answers still arrive (A, never TXT) and go nowhere */
	memset(&w, 0, sizeof(w));
	struct dnsbl_check *c = dnsbl_check(d, zones, 2, "127.0.0.2", on_bl, &w);
	assert_non_null(c);
	dnsbl_cancel(c);
	/* a second check on the same resolver finishing proves the first had its answers */
	memset(&other, 0, sizeof(other));
	assert_non_null(dnsbl_check(d, zones, 2, "127.0.0.4", on_bl, &other));
	run_until(e->base, &other.calls, 1, 8000);
	assert_int_equal(other.calls, 1);
	run_until(e->base, &w.calls, 1, 300);
	assert_int_equal(w.calls, 0);

	/* cancelled while waiting for a silent list, then the resolver freed */
	memset(&w, 0, sizeof(w));
	c = dnsbl_check(d, slow, 1, "127.0.0.2", on_bl, &w);
	assert_non_null(c);
	run_until(e->base, &w.calls, 1, 100);
	dnsbl_cancel(c);
	dns_free(d);
	assert_int_equal(w.calls, 0);
}

static void test_free_ends_check(void **state)
{
	struct env *e = *state;
	char *servers[1] = { e->server };
	char *zones[] = { "slow.test", "bl.test" };
	struct bwait w;
	struct dns *d = dns_new(e->base, servers, 1, 5000);

	memset(&w, 0, sizeof(w));
	assert_non_null(dnsbl_check(d, zones, 2, "127.0.0.2", on_bl, &w));
	run_until(e->base, &w.calls, 1, 300);  /* bl.test answers; slow.test does not */
	assert_int_equal(w.calls, 0);
	dns_free(d);
	/* slow.test ended as a temporary failure ("no"), so bl.test's listing decides */
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.r.listed, 1);
	assert_string_equal(w.r.zone, "bl.test");
}

static void test_nothing_to_ask(void **state)
{
	struct env *e = *state;
	char *servers[1] = { e->server };
	char *zones[] = { "bl.test" };
	struct bwait w;
	struct dns *d = dns_new(e->base, servers, 1, 1000);

	memset(&w, 0, sizeof(w));
	assert_null(dnsbl_check(d, zones, 1, "not-an-address", on_bl, &w));
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.r.listed, 0);
	memset(&w, 0, sizeof(w));
	assert_null(dnsbl_check(d, zones, 0, "127.0.0.2", on_bl, &w));
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.r.listed, 0);
	dns_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_server_strings),
		cmocka_unit_test(test_answers),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_free_with_queries_in_flight),
		cmocka_unit_test(test_free_from_callback),
		cmocka_unit_test(test_listed_with_reason),
		cmocka_unit_test(test_listed_without_txt),
		cmocka_unit_test(test_reason_cannot_inject),
		cmocka_unit_test(test_not_listed),
		cmocka_unit_test(test_zone_order),
		cmocka_unit_test(test_server_down),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_free_ends_check),
		cmocka_unit_test(test_nothing_to_ask),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
