/*
 * test_mx: dns/mx.c end to end against a real DNS server on loopback
 * (tests/unit/mx_dns_server.py, python3-dnslib) through a real libevent loop:
 * preference order and the shuffle among equal preferences, implicit MX on and
 * off, null MX, NXDOMAIN, SERVFAIL, CNAME targets, the backup-MX rule by name and
 * by address, the cache (hits without a query, TTL expiry, cache time, off,
 * eviction) and the hosts table in front of DNS.  The server writes how often it
 * was asked for each name before it answers, so "no query" is checked exactly.
 * Every wait is bounded by a timer; the server exits by itself after 60 s.
 * Run from the repository root.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "loopback.h"
#include <event2/event.h>

#include "deliver/hosts.h"
#include "dns/dns.h"
#include "dns/mx.h"

#define SERVER "tests/unit/mx_dns_server.py"

struct env {
	pid_t pid;
	int port;
	char server[32];
	char counts[64];
	struct event_base *base;
	struct dns *dns;
};

/* ---- helpers ---------------------------------------------------------------------- */


struct mwait {
	int calls;
	int in_resolve;
	int reentered;
	struct mx_result r;
	struct mx *free_me;
};

static void on_mx(void *arg, const struct mx_result *r)
{
	struct mwait *w = arg;

	w->calls++;
	if (w->in_resolve)
		w->reentered = 1;
	w->r = *r;
	if (w->free_me != NULL) {
		struct mx *m = w->free_me;
		w->free_me = NULL;
		mx_free(m);
	}
}

static struct mwait *resolve(struct env *e, struct mx *m, const char *domain)
{
	static struct mwait w;

	memset(&w, 0, sizeof(w));
	w.in_resolve = 1;
	mx_resolve(m, domain, on_mx, &w);
	w.in_resolve = 0;
	run_until(e->base, &w.calls, 1, 8000);
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.reentered, 0);
	return &w;
}

/* How often the server was asked for name/type (the file is written before each answer). */
static int count(struct env *e, const char *name, const char *type)
{
	char line[512], n[300], t[16];
	int c, total = 0;
	FILE *fp = fopen(e->counts, "r");

	assert_non_null(fp);
	while (fgets(line, sizeof(line), fp) != NULL)
		if (sscanf(line, "%299s %15s %d", n, t, &c) == 3 && strcmp(n, name) == 0 && strcmp(t, type) == 0)
			total += c;
	fclose(fp);
	return total;
}

static struct mx *new_mx(struct env *e, long cache_time, void (*tweak)(struct mx_config *))
{
	struct mx_config c;

	mx_config_defaults(&c);
	c.cache_time = cache_time;
	c.seed = 42;
	if (tweak != NULL)
		tweak(&c);
	return mx_new(e->base, e->dns, &c);
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
	snprintf(e->counts, sizeof(e->counts), "/tmp/tsubame-test-mx.%d", (int)getpid());
	unlink(e->counts);
	e->base = event_base_new();
	e->pid = fork();
	if (e->pid < 0)
		return -1;
	if (e->pid == 0) {
		execl("/usr/bin/python3", "python3", SERVER, portstr, e->counts, (char *)NULL);
		_exit(127);
	}
	*state = e;
	char *servers[1] = { e->server };
	e->dns = dns_new(e->base, servers, 1, 1000);
	if (e->dns == NULL)
		return -1;

	/* Wait until it answers (at most 10 s): an MX query through mx.c with the cache off. */
	long deadline = now_ms() + 10000;
	while (now_ms() < deadline) {
		struct mx *m = new_mx(e, 0, NULL);
		struct mwait w;
		memset(&w, 0, sizeof(w));
		mx_resolve(m, "multi.test", on_mx, &w);
		run_until(e->base, &w.calls, 1, 3000);
		mx_free(m);
		if (w.calls == 1 && w.r.status == MX_OK)
			return 0;
		if (waitpid(e->pid, NULL, WNOHANG) == e->pid) {
			fprintf(stderr, "test_mx: %s exited early (python3-dnslib missing?)\n", SERVER);
			e->pid = 0;
			return -1;
		}
		usleep(100 * 1000);
	}
	fprintf(stderr, "test_mx: %s never answered\n", SERVER);
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
	/* Let detached requests of the last test see their answers before the resolver goes. */
	run_until(e->base, NULL, 0, 50);
	dns_free(e->dns);
	event_base_free(e->base);
	unlink(e->counts);
	free(e);
	return 0;
}

/* ---- preference order, addresses, shuffle -------------------------------------------- */

static void test_preference_order(void **state)
{
	struct env *e = *state;
	struct mx *m = new_mx(e, 0, NULL);
	struct mwait *w = resolve(e, m, "Multi.TEST.");

	assert_int_equal(w->r.status, MX_OK);
	assert_int_equal(w->r.source, MX_SRC_DNS);
	assert_int_equal(w->r.implicit, 0);
	assert_int_equal(w->r.nhosts, 3);
	assert_string_equal(w->r.hosts[0].name, "a.multi.test");
	assert_int_equal(w->r.hosts[0].pref, 10);
	assert_int_equal(w->r.hosts[0].naddrs, 2);
	/* IPv4 first by default. */
	assert_int_equal(w->r.hosts[0].addrs[0].family, AF_INET);
	assert_string_equal(w->r.hosts[0].addrs[0].ip, "127.0.1.1");
	assert_int_equal(w->r.hosts[0].addrs[0].port, 0);
	assert_int_equal(w->r.hosts[0].addrs[1].family, AF_INET6);
	assert_string_equal(w->r.hosts[0].addrs[1].ip, "2001:db8::1:1");
	assert_int_equal(w->r.hosts[1].pref, 20);
	assert_int_equal(w->r.hosts[2].pref, 20);
	assert_true((strcmp(w->r.hosts[1].name, "b.multi.test") == 0 && strcmp(w->r.hosts[2].name, "c.multi.test") == 0)
	    || (strcmp(w->r.hosts[1].name, "c.multi.test") == 0 && strcmp(w->r.hosts[2].name, "b.multi.test") == 0));
	assert_int_equal(mx_status_permanent(MX_OK), 0);
	mx_free(m);
}

static void v6first(struct mx_config *c)
{
	c->ipv6_first = 1;
}

static void test_ipv6_first(void **state)
{
	struct env *e = *state;
	struct mx *m = new_mx(e, 0, v6first);
	struct mwait *w = resolve(e, m, "multi.test");

	assert_int_equal(w->r.status, MX_OK);
	assert_int_equal(w->r.hosts[0].addrs[0].family, AF_INET6);
	assert_string_equal(w->r.hosts[0].addrs[0].ip, "2001:db8::1:1");
	assert_string_equal(w->r.hosts[0].addrs[1].ip, "127.0.1.1");
	mx_free(m);
}

static void one_host(struct mx_config *c)
{
	c->max_hosts = 1;
}

static void test_max_hosts(void **state)
{
	struct env *e = *state;
	struct mx *m = new_mx(e, 0, one_host);
	struct mwait *w = resolve(e, m, "multi.test");

	assert_int_equal(w->r.status, MX_OK);
	assert_int_equal(w->r.nhosts, 1);
	assert_string_equal(w->r.hosts[0].name, "a.multi.test");
	mx_free(m);
}

/* The first of the two preference-20 hosts, as a bit string over n resolutions. */
static void orders(struct env *e, struct mx *m, int n, char *out)
{
	for (int i = 0; i < n; i++) {
		struct mwait *w = resolve(e, m, "multi.test");
		assert_int_equal(w->r.status, MX_OK);
		assert_int_equal(w->r.nhosts, 3);
		assert_string_equal(w->r.hosts[0].name, "a.multi.test");
		out[i] = w->r.hosts[1].name[0];
	}
	out[n] = '\0';
}

static void test_equal_preference_shuffle(void **state)
{
	struct env *e = *state;
	char s1[33], s2[33], s3[33];
	struct mx *m1 = new_mx(e, 0, NULL), *m2 = new_mx(e, 0, NULL);

	orders(e, m1, 32, s1);
	orders(e, m2, 32, s2);
	/* Seedable: the same seed gives the same order; both orders occur (P(not) = 2^-31). */
	assert_string_equal(s1, s2);
	assert_non_null(strchr(s1, 'b'));
	assert_non_null(strchr(s1, 'c'));
	mx_free(m1);
	mx_free(m2);

	/* Cache hits are re-shuffled too. */
	struct mx *m3 = new_mx(e, 864000, NULL);
	orders(e, m3, 32, s3);
	assert_int_equal(mx_cache_hits(m3), 31);
	assert_non_null(strchr(s3, 'b'));
	assert_non_null(strchr(s3, 'c'));
	mx_free(m3);
}

/* ---- no MX, null MX, errors ------------------------------------------------------------ */

static void no_mx_bounce(struct mx_config *c)
{
	c->no_mx_bounce = 1;
}

static void test_implicit_mx(void **state)
{
	struct env *e = *state;
	struct mx *m = new_mx(e, 0, NULL);
	struct mwait *w = resolve(e, m, "amx.test");

	assert_int_equal(w->r.status, MX_OK);
	assert_int_equal(w->r.implicit, 1);
	assert_int_equal(w->r.nhosts, 1);
	assert_string_equal(w->r.hosts[0].name, "amx.test");
	assert_int_equal(w->r.hosts[0].pref, 0);
	assert_int_equal(w->r.hosts[0].naddrs, 2);
	assert_string_equal(w->r.hosts[0].addrs[0].ip, "127.0.2.1");
	assert_string_equal(w->r.hosts[0].addrs[1].ip, "2001:db8::21");
	mx_free(m);

	/* Fallback off: bounce at once, and no address query at all. */
	int a_before = count(e, "amx.test", "A");
	m = new_mx(e, 0, no_mx_bounce);
	w = resolve(e, m, "amx.test");
	assert_int_equal(w->r.status, MX_NOMX);
	assert_int_equal(w->r.nhosts, 0);
	assert_true(mx_status_permanent(MX_NOMX));
	assert_int_equal(count(e, "amx.test", "A"), a_before);
	mx_free(m);

	/* No MX and no address either. */
	m = new_mx(e, 0, NULL);
	w = resolve(e, m, "empty.test");
	assert_int_equal(w->r.status, MX_NOHOST);
	assert_string_equal(mx_status_code(MX_NOHOST), "5.4.4");
	mx_free(m);
}

static void test_null_mx(void **state)
{
	struct env *e = *state;
	struct mx *m = new_mx(e, 864000, NULL);
	struct mwait *w = resolve(e, m, "null.test");

	assert_int_equal(w->r.status, MX_NULLMX);
	assert_int_equal(w->r.nhosts, 0);
	assert_string_equal(mx_status_code(MX_NULLMX), "5.1.10");
	assert_true(mx_status_permanent(MX_NULLMX));
	/* No fallback to an address lookup of the domain. */
	assert_int_equal(count(e, "null.test", "A"), 0);
	assert_int_equal(count(e, "null.test", "AAAA"), 0);
	mx_free(m);
}

static void test_nxdomain_and_failures(void **state)
{
	struct env *e = *state;
	struct mx *m = new_mx(e, 864000, NULL);
	struct mwait *w = resolve(e, m, "nowhere.test");

	assert_int_equal(w->r.status, MX_NXDOMAIN);
	assert_string_equal(mx_status_code(MX_NXDOMAIN), "5.1.2");
	assert_true(mx_status_permanent(MX_NXDOMAIN));

	w = resolve(e, m, "fail.test");
	assert_int_equal(w->r.status, MX_TEMPFAIL);
	assert_false(mx_status_permanent(MX_TEMPFAIL));
	assert_string_equal(mx_status_code(MX_TEMPFAIL), "4.4.3");

	/* One exchanger gone, the other's server failing: try again later, not a bounce. */
	w = resolve(e, m, "deadmx.test");
	assert_int_equal(w->r.status, MX_TEMPFAIL);

	/* Names that cannot be domains never reach DNS. */
	w = resolve(e, m, "");
	assert_int_equal(w->r.status, MX_NXDOMAIN);
	w = resolve(e, m, ".");
	assert_int_equal(w->r.status, MX_NXDOMAIN);
	/* Failures are never cached. */
	assert_int_equal(mx_cache_size(m), 0);
	mx_free(m);
}

static void test_cname_target(void **state)
{
	struct env *e = *state;
	struct mx *m = new_mx(e, 0, NULL);
	struct mwait *w = resolve(e, m, "cname.test");

	assert_int_equal(w->r.status, MX_OK);
	assert_int_equal(w->r.nhosts, 1);
	assert_string_equal(w->r.hosts[0].name, "alias.cname.test");
	assert_int_equal(w->r.hosts[0].naddrs, 1);
	assert_string_equal(w->r.hosts[0].addrs[0].ip, "127.0.3.1");
	mx_free(m);
}

/* ---- backup MX (E2) ---------------------------------------------------------------------- */

static const char *const self_names[] = { "MX.OurHost.test." };
static const char *const self_addrs[] = { "127.0.9.9", "2001:db8::99" };

static void as_us(struct mx_config *c)
{
	c->self_names = self_names;
	c->nself_names = 1;
	c->self_addrs = self_addrs;
	c->nself_addrs = 2;
}

static void test_backup_mx(void **state)
{
	struct env *e = *state;
	struct mx *m = new_mx(e, 0, as_us);
	struct mwait *w;

	/* We are preference 20: 20 and 30 are dropped (not even looked up), 10 remains. */
	w = resolve(e, m, "backup.test");
	assert_int_equal(w->r.status, MX_OK);
	assert_int_equal(w->r.nhosts, 1);
	assert_string_equal(w->r.hosts[0].name, "primary.backup.test");
	assert_int_equal(count(e, "other.backup.test", "A"), 0);

	/* We are the best MX: an error of its own, not a delivery to ourselves. */
	w = resolve(e, m, "selfbest.test");
	assert_int_equal(w->r.status, MX_SELF);
	assert_int_equal(w->r.nhosts, 0);
	assert_string_equal(mx_status_code(MX_SELF), "5.4.6");
	assert_true(mx_status_permanent(MX_SELF));

	/* Recognised by address too (q.selfaddr.test has our 127.0.9.9). */
	w = resolve(e, m, "selfaddr.test");
	assert_int_equal(w->r.status, MX_OK);
	assert_int_equal(w->r.nhosts, 1);
	assert_string_equal(w->r.hosts[0].name, "p.selfaddr.test");
	mx_free(m);

	/* Without our names every MX is a candidate. */
	m = new_mx(e, 0, NULL);
	w = resolve(e, m, "backup.test");
	assert_int_equal(w->r.status, MX_OK);
	assert_int_equal(w->r.nhosts, 3);
	assert_string_equal(w->r.hosts[1].name, "mx.ourhost.test");
	mx_free(m);
}

/* ---- the cache ------------------------------------------------------------------------- */

static void test_cache_hit_without_query(void **state)
{
	struct env *e = *state;
	struct mx *m = new_mx(e, 864000, NULL);
	struct mwait *w = resolve(e, m, "cname.test");

	assert_int_equal(w->r.status, MX_OK);
	assert_int_equal(w->r.source, MX_SRC_DNS);
	assert_int_equal(mx_cache_size(m), 1);
	int mxq = count(e, "cname.test", "MX"), aq = count(e, "alias.cname.test", "A");
	w = resolve(e, m, "CNAME.test");
	assert_int_equal(w->r.status, MX_OK);
	assert_int_equal(w->r.source, MX_SRC_CACHE);
	assert_string_equal(w->r.hosts[0].addrs[0].ip, "127.0.3.1");
	assert_int_equal(mx_cache_hits(m), 1);
	assert_int_equal(count(e, "cname.test", "MX"), mxq);
	assert_int_equal(count(e, "alias.cname.test", "A"), aq);

	mx_cache_flush(m);
	w = resolve(e, m, "cname.test");
	assert_int_equal(w->r.source, MX_SRC_DNS);
	assert_int_equal(count(e, "cname.test", "MX"), mxq + 1);
	mx_free(m);
}

static void test_cache_off(void **state)
{
	struct env *e = *state;
	struct mx *m = new_mx(e, 0, NULL);
	int before = count(e, "cname.test", "MX");

	resolve(e, m, "cname.test");
	struct mwait *w = resolve(e, m, "cname.test");
	assert_int_equal(w->r.source, MX_SRC_DNS);
	assert_int_equal(mx_cache_hits(m), 0);
	assert_int_equal(mx_cache_size(m), 0);
	assert_int_equal(count(e, "cname.test", "MX"), before + 2);
	mx_free(m);
}

static void ignore_ttl(struct mx_config *c)
{
	c->cache_ignore_ttl = 1;
}

static void test_cache_expiry(void **state)
{
	struct env *e = *state;
	/* m1 follows the 2 s TTL; m2 ignores TTLs; m3 has a 1 s cache time against a 300 s TTL. */
	struct mx *m1 = new_mx(e, 864000, NULL), *m2 = new_mx(e, 864000, ignore_ttl), *m3 = new_mx(e, 1, NULL);

	assert_int_equal(resolve(e, m1, "ttl.test")->r.status, MX_OK);
	assert_int_equal(resolve(e, m2, "ttl.test")->r.status, MX_OK);
	assert_int_equal(resolve(e, m3, "multi.test")->r.status, MX_OK);
	assert_int_equal(resolve(e, m1, "ttl.test")->r.source, MX_SRC_CACHE);
	assert_int_equal(resolve(e, m3, "multi.test")->r.source, MX_SRC_CACHE);

	run_until(e->base, NULL, 0, 2300);

	int q = count(e, "ttl.test", "MX"), qm = count(e, "multi.test", "MX");
	assert_int_equal(resolve(e, m2, "ttl.test")->r.source, MX_SRC_CACHE);
	assert_int_equal(count(e, "ttl.test", "MX"), q);
	assert_int_equal(resolve(e, m1, "ttl.test")->r.source, MX_SRC_DNS);
	assert_int_equal(count(e, "ttl.test", "MX"), q + 1);
	assert_int_equal(resolve(e, m3, "multi.test")->r.source, MX_SRC_DNS);
	assert_int_equal(count(e, "multi.test", "MX"), qm + 1);
	mx_free(m1);
	mx_free(m2);
	mx_free(m3);
}

static void small_cache(struct mx_config *c)
{
	c->cache_max = 2;
}

static void test_cache_eviction(void **state)
{
	struct env *e = *state;
	struct mx *m = new_mx(e, 864000, small_cache);

	resolve(e, m, "multi.test");
	resolve(e, m, "amx.test");
	assert_int_equal(resolve(e, m, "multi.test")->r.source, MX_SRC_CACHE); /* amx.test is now the oldest */
	resolve(e, m, "cname.test");
	assert_int_equal(mx_cache_size(m), 2);
	assert_int_equal(resolve(e, m, "multi.test")->r.source, MX_SRC_CACHE);
	assert_int_equal(resolve(e, m, "amx.test")->r.source, MX_SRC_DNS);
	assert_int_equal(mx_cache_size(m), 2);
	mx_free(m);
}

/* ---- the hosts table --------------------------------------------------------------------- */

static struct hosts_table hosts;

static void with_hosts(struct mx_config *c)
{
	c->hosts = &hosts;
}

static void test_hosts_override(void **state)
{
	struct env *e = *state;
	const char *text =
		"hosted.test 127.0.0.5:2525 [::1]:26\n"
		"multi.test 127.0.0.8\n"
		"mx.exch.test 127.0.0.7\n"
		".sub.test 127.0.0.6\n";
	struct buf errors;
	FILE *fp = fmemopen((void *)text, strlen(text), "r");

	buf_init(&errors, 4096);
	assert_int_equal(hosts_parse(&hosts, fp, "hosts", &errors), 0);
	fclose(fp);

	struct mx *m = new_mx(e, 864000, with_hosts);
	struct mwait *w = resolve(e, m, "HOSTED.test");
	assert_int_equal(w->r.status, MX_OK);
	assert_int_equal(w->r.source, MX_SRC_HOSTS);
	assert_int_equal(w->r.nhosts, 1);
	assert_int_equal(w->r.hosts[0].naddrs, 2);
	assert_string_equal(w->r.hosts[0].addrs[0].ip, "127.0.0.5");
	assert_int_equal(w->r.hosts[0].addrs[0].port, 2525);
	assert_int_equal(w->r.hosts[0].addrs[1].family, AF_INET6);
	assert_string_equal(w->r.hosts[0].addrs[1].ip, "::1");
	assert_int_equal(w->r.hosts[0].addrs[1].port, 26);
	assert_int_equal(count(e, "hosted.test", "MX"), 0);

	/* The table wins over DNS for a domain that has MX records: no query at all. */
	int before = count(e, "multi.test", "MX");
	w = resolve(e, m, "multi.test");
	assert_int_equal(w->r.source, MX_SRC_HOSTS);
	assert_string_equal(w->r.hosts[0].addrs[0].ip, "127.0.0.8");
	assert_int_equal(count(e, "multi.test", "MX"), before);

	/* Subdomain entry. */
	w = resolve(e, m, "a.sub.test");
	assert_int_equal(w->r.source, MX_SRC_HOSTS);
	assert_string_equal(w->r.hosts[0].addrs[0].ip, "127.0.0.6");
	assert_int_equal(count(e, "a.sub.test", "MX"), 0);

	/* An exchanger in the table: the MX comes from DNS, its address from the table. */
	w = resolve(e, m, "exch.test");
	assert_int_equal(w->r.status, MX_OK);
	assert_int_equal(w->r.source, MX_SRC_DNS);
	assert_string_equal(w->r.hosts[0].name, "mx.exch.test");
	assert_string_equal(w->r.hosts[0].addrs[0].ip, "127.0.0.7");
	assert_int_equal(w->r.hosts[0].naddrs, 1);
	assert_int_equal(count(e, "mx.exch.test", "A"), 0);
	assert_int_equal(count(e, "mx.exch.test", "AAAA"), 0);
	assert_int_equal(mx_cache_hits(m), 0);
	mx_free(m);
	hosts_free(&hosts);
	buf_free(&errors);
}

/* ---- lifetime ------------------------------------------------------------------------------- */

static void test_free_with_pending(void **state)
{
	struct env *e = *state;
	struct mx *m = new_mx(e, 0, NULL);
	struct mwait w1, w2;

	memset(&w1, 0, sizeof(w1));
	memset(&w2, 0, sizeof(w2));
	mx_resolve(m, "multi.test", on_mx, &w1);
	mx_resolve(m, "amx.test", on_mx, &w2);
	mx_free(m);
	assert_int_equal(w1.calls, 1);
	assert_int_equal(w2.calls, 1);
	assert_int_equal(w1.r.status, MX_TEMPFAIL);
	/* The DNS answers still arrive and free the detached requests; no second callback. */
	run_until(e->base, NULL, 0, 300);
	assert_int_equal(w1.calls, 1);
	assert_int_equal(w2.calls, 1);

	/* mx_free() from inside a callback, with another resolution in flight. */
	m = new_mx(e, 0, NULL);
	memset(&w1, 0, sizeof(w1));
	memset(&w2, 0, sizeof(w2));
	w1.free_me = m;
	mx_resolve(m, "null.test", on_mx, &w1);
	mx_resolve(m, "multi.test", on_mx, &w2);
	run_until(e->base, &w1.calls, 1, 8000);
	assert_int_equal(w1.calls, 1);
	assert_int_equal(w1.r.status, MX_NULLMX);
	run_until(e->base, NULL, 0, 300);
	assert_int_equal(w2.calls, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_preference_order),
		cmocka_unit_test(test_ipv6_first),
		cmocka_unit_test(test_max_hosts),
		cmocka_unit_test(test_equal_preference_shuffle),
		cmocka_unit_test(test_implicit_mx),
		cmocka_unit_test(test_null_mx),
		cmocka_unit_test(test_nxdomain_and_failures),
		cmocka_unit_test(test_cname_target),
		cmocka_unit_test(test_backup_mx),
		cmocka_unit_test(test_cache_hit_without_query),
		cmocka_unit_test(test_cache_off),
		cmocka_unit_test(test_cache_expiry),
		cmocka_unit_test(test_cache_eviction),
		cmocka_unit_test(test_hosts_override),
		cmocka_unit_test(test_free_with_pending),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
