/*
 * Unit tests for src/deliver/route.c.  Golden tables written from seed 002
 * (delivery modes, smart host, the three 5xx options) and seed 003 (the gateway
 * table, forward-all) as docs/routing.md reads them, not from the code:
 *   - route_plan for every mode x local/remote domain x gateway hit/miss x
 *     forward-all on/off;
 *   - the smart host as a domain or a host, AUTH and TLS flags, configuration errors;
 *   - route_next for every outcome class x the 5xx options x step position.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "deliver/route.h"

static struct gateway_table gw;

static int setup(void **state)
{
	static const char text[] = "' test table\n*.gw.example,gw.internal,465*\n";
	return gateway_parse(&gw, text, strlen(text), "gw", NULL) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	gateway_free(&gw);
	return 0;
}

static const char *on5xx_name(enum route_on5xx o)
{
	return o == ROUTE_5XX_BOUNCE ? "bounce" : o == ROUTE_5XX_NEXT ? "next" : "defer";
}

/* One line per plan: "local", "error: ...", or steps joined by " | ". */
static void show(const struct route_plan *p, int rc, char *out, size_t sz)
{
	size_t len = 0;

	if (rc != 0) {
		snprintf(out, sz, "error: %s", p->error);
		return;
	}
	if (p->local) {
		snprintf(out, sz, "local%s", p->n ? " WITH STEPS" : "");
		return;
	}
	out[0] = '\0';
	for (size_t i = 0; i < p->n; i++) {
		const struct route_step *s = &p->step[i];
		len += (size_t)snprintf(out + len, sz - len, "%s%s %s %s:%u%s%s%s%s 5xx=%s", i ? " | " : "",
		    route_source_name(s->source), route_kind_name(s->kind), s->host, s->port, s->implicit_tls ? " tls" : "",
		    s->require_starttls ? " starttls" : "", s->auth ? " auth" : "", s->abort_on_rcpt_5xx ? " abort" : "",
		    on5xx_name(s->on_5xx));
	}
}

static void base_config(struct route_config *c, enum route_mode mode, int forward_all)
{
	route_config_defaults(c);
	c->mode = mode;
	c->smarthost = (struct route_relay){ .host = "smart.isp.example", .port = 587, .auth = 1 };
	c->gateways = &gw;
	c->forward_all = forward_all;
	c->forward_to = (struct route_relay){ .host = "fwd.example" };
}

/* ---- route_plan: the full matrix ---------------------------------------------------------------- */

#define SH "smarthost host smart.isp.example:587 starttls auth 5xx=bounce"
#define GW "gateway host gw.internal:465 tls 5xx=bounce"
#define FWD "forward-all host fwd.example:25 5xx=bounce"

struct plan_row {
	enum route_mode mode;
	int local, gw_hit, fwd;
	const char *expect;
};

static const struct plan_row PLAN[] = {
	/* direct */
	{ ROUTE_MODE_DIRECT, 0, 0, 0, "direct mx remote.example:25 5xx=bounce" },
	{ ROUTE_MODE_DIRECT, 0, 0, 1, FWD },
	{ ROUTE_MODE_DIRECT, 0, 1, 0, GW },
	{ ROUTE_MODE_DIRECT, 0, 1, 1, GW },
	{ ROUTE_MODE_DIRECT, 1, 0, 0, "local" },
	{ ROUTE_MODE_DIRECT, 1, 0, 1, FWD },
	{ ROUTE_MODE_DIRECT, 1, 1, 0, "local" },
	{ ROUTE_MODE_DIRECT, 1, 1, 1, GW },
	/* all via the smart host */
	{ ROUTE_MODE_SMARTHOST, 0, 0, 0, SH },
	{ ROUTE_MODE_SMARTHOST, 0, 0, 1, FWD },
	{ ROUTE_MODE_SMARTHOST, 0, 1, 0, GW },
	{ ROUTE_MODE_SMARTHOST, 0, 1, 1, GW },
	{ ROUTE_MODE_SMARTHOST, 1, 0, 0, "local" },
	{ ROUTE_MODE_SMARTHOST, 1, 0, 1, FWD },
	{ ROUTE_MODE_SMARTHOST, 1, 1, 0, "local" },
	{ ROUTE_MODE_SMARTHOST, 1, 1, 1, GW },
	/* direct, then the smart host */
	{ ROUTE_MODE_DIRECT_THEN_SMARTHOST, 0, 0, 0, "direct mx remote.example:25 5xx=bounce | " SH },
	{ ROUTE_MODE_DIRECT_THEN_SMARTHOST, 0, 0, 1, FWD },
	{ ROUTE_MODE_DIRECT_THEN_SMARTHOST, 0, 1, 0, GW },
	{ ROUTE_MODE_DIRECT_THEN_SMARTHOST, 0, 1, 1, GW },
	{ ROUTE_MODE_DIRECT_THEN_SMARTHOST, 1, 0, 0, "local" },
	{ ROUTE_MODE_DIRECT_THEN_SMARTHOST, 1, 0, 1, FWD },
	{ ROUTE_MODE_DIRECT_THEN_SMARTHOST, 1, 1, 0, "local" },
	{ ROUTE_MODE_DIRECT_THEN_SMARTHOST, 1, 1, 1, GW },
};

static void test_plan_matrix(void **state)
{
	for (size_t i = 0; i < sizeof(PLAN) / sizeof(PLAN[0]); i++) {
		const struct plan_row *r = &PLAN[i];
		struct route_config c;
		struct route_plan p;
		char got[512];
		/* The local domains here are both local and listed/not listed in the table. */
		const char *domain = r->local ? (r->gw_hit ? "mail.gw.example" : "local.example")
		                               : (r->gw_hit ? "a.GW.example" : "remote.example");
		base_config(&c, r->mode, r->fwd);
		int rc = route_plan(&c, domain, r->local, &p);
		show(&p, rc, got, sizeof(got));
		if (strcmp(got, r->expect) != 0)
			fail_msg("row %zu (mode %d local %d gw %d fwd %d):\n got  %s\n want %s", i, r->mode, r->local, r->gw_hit,
			    r->fwd, got, r->expect);
		if (r->gw_hit && strcmp(r->expect, GW) == 0)
			assert_ptr_equal(p.step[0].gateway, &gw.v[0]);
	}
}

/* ---- route_plan: options, smart host forms, errors -------------------------------------------- */

struct opt_row {
	enum route_mode mode;
	int fwd, mx5xx, sh5xx, abort, as_domain, implicit_tls, auth, fwd_to_set, sh_set;
	const char *domain;
	const char *expect;
};

static const struct opt_row OPT[] = {
	/* bounce_on_mx_5xx off: a 5xx moves on (next MX, then the smart host). */
	{ ROUTE_MODE_DIRECT, 0, 0, 1, 0, 0, 0, 1, 1, 1, "r.example", "direct mx r.example:25 5xx=next" },
	{ ROUTE_MODE_DIRECT_THEN_SMARTHOST, 0, 0, 0, 0, 0, 0, 1, 1, 1, "r.example",
	    "direct mx r.example:25 5xx=next | smarthost host smart.isp.example:587 starttls auth 5xx=defer" },
	/* bounce_on_smarthost_5xx off: relays (smart host, gateways, forward-all) keep the mail. */
	{ ROUTE_MODE_SMARTHOST, 0, 1, 0, 0, 0, 0, 1, 1, 1, "r.example",
	    "smarthost host smart.isp.example:587 starttls auth 5xx=defer" },
	{ ROUTE_MODE_DIRECT, 0, 1, 0, 0, 0, 0, 1, 1, 1, "x.gw.example", "gateway host gw.internal:465 tls 5xx=defer" },
	{ ROUTE_MODE_DIRECT, 1, 1, 0, 0, 0, 0, 1, 1, 1, "r.example", "forward-all host fwd.example:25 5xx=defer" },
	/* abort on RCPT 5xx reaches every step. */
	{ ROUTE_MODE_DIRECT_THEN_SMARTHOST, 0, 1, 1, 1, 0, 0, 1, 1, 1, "r.example",
	    "direct mx r.example:25 abort 5xx=bounce | smarthost host smart.isp.example:587 starttls auth abort 5xx=bounce" },
	{ ROUTE_MODE_DIRECT, 0, 1, 1, 1, 0, 0, 1, 1, 1, "x.gw.example", "gateway host gw.internal:465 tls abort 5xx=bounce" },
	/* The smart host as a domain: an MX lookup of its name. */
	{ ROUTE_MODE_SMARTHOST, 0, 1, 1, 0, 1, 0, 1, 1, 1, "r.example",
	    "smarthost smarthost-mx smart.isp.example:587 starttls auth 5xx=bounce" },
	/* Implicit TLS: no STARTTLS demand (TLS from the first byte); no AUTH: opportunistic STARTTLS. */
	{ ROUTE_MODE_SMARTHOST, 0, 1, 1, 0, 0, 1, 1, 1, 1, "r.example",
	    "smarthost host smart.isp.example:587 tls auth 5xx=bounce" },
	{ ROUTE_MODE_SMARTHOST, 0, 1, 1, 0, 0, 0, 0, 1, 1, "r.example", "smarthost host smart.isp.example:587 5xx=bounce" },
	/* Forward-all without its own gateway uses the smart host (E-Post's one "SMTP gateway" field). */
	{ ROUTE_MODE_DIRECT, 1, 1, 1, 0, 0, 0, 1, 0, 1, "r.example",
	    "forward-all host smart.isp.example:587 starttls auth 5xx=bounce" },
	{ ROUTE_MODE_DIRECT, 1, 1, 1, 0, 1, 0, 1, 0, 1, "r.example",
	    "forward-all smarthost-mx smart.isp.example:587 starttls auth 5xx=bounce" },
	/* Configuration errors. */
	{ ROUTE_MODE_DIRECT, 1, 1, 1, 0, 0, 0, 1, 0, 0, "r.example",
	    "error: forward-all is on but no gateway (or smart host) is set" },
	{ ROUTE_MODE_SMARTHOST, 0, 1, 1, 0, 0, 0, 1, 1, 0, "r.example", "error: smart host mode but no smart host is set" },
	{ ROUTE_MODE_DIRECT_THEN_SMARTHOST, 0, 1, 1, 0, 0, 0, 1, 1, 0, "r.example",
	    "error: direct-then-smart-host mode but no smart host is set" },
	{ ROUTE_MODE_DIRECT, 0, 1, 1, 0, 0, 0, 1, 1, 1, "", "error: empty recipient domain" },
	{ (enum route_mode)7, 0, 1, 1, 0, 0, 0, 1, 1, 1, "r.example", "error: unknown delivery mode" },
	/* A smart host that is not needed is not checked: direct mode without one is fine. */
	{ ROUTE_MODE_DIRECT, 0, 1, 1, 0, 0, 0, 1, 1, 0, "r.example", "direct mx r.example:25 5xx=bounce" },
	/* The gateway table still applies when no smart host is set. */
	{ ROUTE_MODE_SMARTHOST, 0, 1, 1, 0, 0, 0, 1, 1, 0, "x.gw.example.", "gateway host gw.internal:465 tls 5xx=bounce" },
};

static void test_plan_options(void **state)
{
	for (size_t i = 0; i < sizeof(OPT) / sizeof(OPT[0]); i++) {
		const struct opt_row *r = &OPT[i];
		struct route_config c;
		struct route_plan p;
		char got[512];
		base_config(&c, r->mode, r->fwd);
		c.bounce_on_mx_5xx = r->mx5xx;
		c.bounce_on_smarthost_5xx = r->sh5xx;
		c.abort_on_rcpt_5xx = r->abort;
		c.smarthost.as_domain = r->as_domain;
		c.smarthost.implicit_tls = r->implicit_tls;
		c.smarthost.auth = r->auth;
		if (!r->fwd_to_set)
			c.forward_to.host = NULL;
		if (!r->sh_set)
			c.smarthost.host = i % 2 ? "" : NULL;
		int rc = route_plan(&c, r->domain, 0, &p);
		show(&p, rc, got, sizeof(got));
		if (strcmp(got, r->expect) != 0)
			fail_msg("row %zu:\n got  %s\n want %s", i, got, r->expect);
	}
}

static void test_defaults(void **state)
{
	struct route_config c;
	struct route_plan p;

	route_config_defaults(&c);
	assert_int_equal(c.mode, ROUTE_MODE_DIRECT);
	assert_int_equal(c.abort_on_rcpt_5xx, 0);
	assert_int_equal(c.bounce_on_mx_5xx, 1);
	assert_int_equal(c.bounce_on_smarthost_5xx, 1);
	assert_null(c.gateways);
	assert_int_equal(route_plan(&c, "example.org", 0, &p), 0);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.step[0].kind, ROUTE_MX);
	assert_string_equal(p.step[0].host, "example.org");
	assert_int_equal(route_plan(&c, NULL, 0, &p), -1);
}

/* ---- route_next: outcomes x 5xx options x step position ------------------------------------------ */

enum { T_ = 1 }; /* tally.temp before the attempt */

struct next_row {
	enum route_mode mode;
	int mx5xx, sh5xx, abort;
	size_t step;
	int more_hosts, temp_before;
	enum route_outcome oc;
	enum route_action action;
	int abort_tx;
};

#define D ROUTE_MODE_DIRECT
#define S ROUTE_MODE_SMARTHOST
#define DS ROUTE_MODE_DIRECT_THEN_SMARTHOST

static const struct next_row NEXT[] = {
	/* direct: temporary and connection failures try the other MX hosts, then wait */
	{ D, 1, 1, 0, 0, 1, 0, ROUTE_OUT_TEMP, ROUTE_NEXT_HOST, 0 },
	{ D, 1, 1, 0, 0, 0, 0, ROUTE_OUT_TEMP, ROUTE_DEFER, 0 },
	{ D, 1, 1, 0, 0, 1, 0, ROUTE_OUT_CONN, ROUTE_NEXT_HOST, 0 },
	{ D, 1, 1, 0, 0, 0, 0, ROUTE_OUT_CONN, ROUTE_DEFER, 0 },
	{ D, 1, 1, 0, 0, 0, 0, ROUTE_OUT_NO_ROUTE, ROUTE_BOUNCE, 0 },
	{ D, 1, 1, 0, 0, 0, T_, ROUTE_OUT_NO_ROUTE, ROUTE_DEFER, 0 },
	{ D, 1, 1, 0, 0, 1, 0, ROUTE_OUT_NULL_MX, ROUTE_BOUNCE, 0 },
	/* direct, bounce on a 5xx from any MX (the default) */
	{ D, 1, 1, 0, 0, 1, 0, ROUTE_OUT_PERM_RCPT, ROUTE_BOUNCE, 0 },
	{ D, 1, 1, 0, 0, 1, 0, ROUTE_OUT_PERM_DATA, ROUTE_BOUNCE, 0 },
	{ D, 1, 1, 0, 0, 1, T_, ROUTE_OUT_PERM_DATA, ROUTE_BOUNCE, 0 },
	/* direct, option off: the next MX; all refused = bounce; one said 4xx = wait */
	{ D, 0, 1, 0, 0, 1, 0, ROUTE_OUT_PERM_RCPT, ROUTE_NEXT_HOST, 0 },
	{ D, 0, 1, 0, 0, 1, 0, ROUTE_OUT_PERM_DATA, ROUTE_NEXT_HOST, 0 },
	{ D, 0, 1, 0, 0, 0, 0, ROUTE_OUT_PERM_RCPT, ROUTE_BOUNCE, 0 },
	{ D, 0, 1, 0, 0, 0, T_, ROUTE_OUT_PERM_DATA, ROUTE_DEFER, 0 },
	/* abort on RCPT 5xx: only a RCPT 5xx abandons the transaction */
	{ D, 1, 1, 1, 0, 1, 0, ROUTE_OUT_PERM_RCPT, ROUTE_BOUNCE, 1 },
	{ D, 0, 1, 1, 0, 1, 0, ROUTE_OUT_PERM_RCPT, ROUTE_NEXT_HOST, 1 },
	{ D, 1, 1, 1, 0, 1, 0, ROUTE_OUT_PERM_DATA, ROUTE_BOUNCE, 0 },
	{ D, 1, 1, 1, 0, 1, 0, ROUTE_OUT_TEMP, ROUTE_NEXT_HOST, 0 },
	/* direct then smart host: step 0 falls through to the smart host */
	{ DS, 1, 1, 0, 0, 0, 0, ROUTE_OUT_TEMP, ROUTE_NEXT_STEP, 0 },
	{ DS, 1, 1, 0, 0, 1, 0, ROUTE_OUT_TEMP, ROUTE_NEXT_HOST, 0 },
	{ DS, 1, 1, 0, 0, 0, 0, ROUTE_OUT_CONN, ROUTE_NEXT_STEP, 0 },
	{ DS, 1, 1, 0, 0, 0, 0, ROUTE_OUT_NO_ROUTE, ROUTE_NEXT_STEP, 0 },
	{ DS, 1, 1, 0, 0, 0, 0, ROUTE_OUT_NULL_MX, ROUTE_BOUNCE, 0 },
	{ DS, 1, 1, 0, 0, 1, 0, ROUTE_OUT_PERM_RCPT, ROUTE_BOUNCE, 0 },
	{ DS, 1, 1, 1, 0, 0, 0, ROUTE_OUT_PERM_RCPT, ROUTE_BOUNCE, 1 },
	{ DS, 0, 1, 0, 0, 1, 0, ROUTE_OUT_PERM_RCPT, ROUTE_NEXT_HOST, 0 },
	{ DS, 0, 1, 0, 0, 0, 0, ROUTE_OUT_PERM_RCPT, ROUTE_NEXT_STEP, 0 },
	{ DS, 0, 1, 0, 0, 0, T_, ROUTE_OUT_PERM_DATA, ROUTE_NEXT_STEP, 0 },
	/* ... and the smart host step is the last word */
	{ DS, 1, 1, 0, 1, 0, 0, ROUTE_OUT_TEMP, ROUTE_DEFER, 0 },
	{ DS, 1, 1, 0, 1, 1, 0, ROUTE_OUT_CONN, ROUTE_NEXT_HOST, 0 },
	{ DS, 1, 1, 0, 1, 0, 0, ROUTE_OUT_CONN, ROUTE_DEFER, 0 },
	{ DS, 1, 1, 0, 1, 0, 0, ROUTE_OUT_NO_ROUTE, ROUTE_DEFER, 0 },
	{ DS, 1, 1, 0, 1, 0, 0, ROUTE_OUT_PERM_RCPT, ROUTE_BOUNCE, 0 },
	{ DS, 1, 1, 0, 1, 1, 0, ROUTE_OUT_PERM_DATA, ROUTE_BOUNCE, 0 },
	{ DS, 1, 0, 0, 1, 0, 0, ROUTE_OUT_PERM_RCPT, ROUTE_DEFER, 0 },
	{ DS, 1, 0, 0, 1, 1, 0, ROUTE_OUT_PERM_DATA, ROUTE_DEFER, 0 },
	{ DS, 1, 0, 1, 1, 0, 0, ROUTE_OUT_PERM_RCPT, ROUTE_DEFER, 1 },
	{ DS, 0, 0, 0, 1, 0, 0, ROUTE_OUT_PERM_RCPT, ROUTE_DEFER, 0 },
	/* all via the smart host */
	{ S, 1, 1, 0, 0, 0, 0, ROUTE_OUT_PERM_DATA, ROUTE_BOUNCE, 0 },
	{ S, 0, 1, 0, 0, 0, 0, ROUTE_OUT_PERM_RCPT, ROUTE_BOUNCE, 0 },
	{ S, 1, 0, 0, 0, 0, 0, ROUTE_OUT_PERM_DATA, ROUTE_DEFER, 0 },
	{ S, 1, 1, 0, 0, 0, 0, ROUTE_OUT_CONN, ROUTE_DEFER, 0 },
	{ S, 1, 1, 0, 0, 0, 0, ROUTE_OUT_NO_ROUTE, ROUTE_DEFER, 0 },
	{ S, 1, 1, 0, 0, 0, 0, ROUTE_OUT_NULL_MX, ROUTE_BOUNCE, 0 },
	/* a step that does not exist: keep the mail */
	{ D, 1, 1, 0, 1, 0, 0, ROUTE_OUT_PERM_RCPT, ROUTE_DEFER, 0 },
};

static void test_next_matrix(void **state)
{
	for (size_t i = 0; i < sizeof(NEXT) / sizeof(NEXT[0]); i++) {
		const struct next_row *r = &NEXT[i];
		struct route_config c;
		struct route_plan p;
		struct route_tally t = { .temp = r->temp_before };
		base_config(&c, r->mode, 0);
		c.bounce_on_mx_5xx = r->mx5xx;
		c.bounce_on_smarthost_5xx = r->sh5xx;
		c.abort_on_rcpt_5xx = r->abort;
		assert_int_equal(route_plan(&c, "remote.example", 0, &p), 0);
		struct route_verdict v = route_next(&p, r->step, r->more_hosts, r->oc, &t);
		if (v.action != r->action || v.abort_transaction != r->abort_tx)
			fail_msg("row %zu: %s abort=%d, expected %s abort=%d", i, route_action_name(v.action), v.abort_transaction,
			    route_action_name(r->action), r->abort_tx);
		if (r->step < p.n && r->oc == ROUTE_OUT_TEMP)
			assert_int_equal(t.temp, 1);
		if (r->step < p.n && (r->oc == ROUTE_OUT_PERM_RCPT || r->oc == ROUTE_OUT_PERM_DATA))
			assert_int_equal(t.perm, 1);
	}
}

/* A whole pass, as the delivery engine would drive it: gateway steps follow the smart host's 5xx option. */
static void test_next_gateway_and_walk(void **state)
{
	struct route_config c;
	struct route_plan p;
	struct route_tally t = { 0 };

	base_config(&c, DS, 0);
	c.bounce_on_smarthost_5xx = 0;
	assert_int_equal(route_plan(&c, "x.gw.example", 0, &p), 0);
	assert_int_equal(route_next(&p, 0, 0, ROUTE_OUT_PERM_RCPT, &t).action, ROUTE_DEFER);
	assert_int_equal(route_next(&p, 0, 0, ROUTE_OUT_CONN, &t).action, ROUTE_DEFER);
	assert_int_equal(route_next(&p, 0, 0, ROUTE_OUT_NO_ROUTE, &t).action, ROUTE_DEFER);

	/* Direct then smart host, 5xx from MX off: MX1 refuses, MX2 says 4xx, the smart host refuses. */
	c.bounce_on_mx_5xx = 0;
	c.bounce_on_smarthost_5xx = 1;
	memset(&t, 0, sizeof(t));
	assert_int_equal(route_plan(&c, "remote.example", 0, &p), 0);
	assert_int_equal(route_next(&p, 0, 1, ROUTE_OUT_PERM_RCPT, &t).action, ROUTE_NEXT_HOST);
	assert_int_equal(route_next(&p, 0, 0, ROUTE_OUT_TEMP, &t).action, ROUTE_NEXT_STEP);
	assert_int_equal(route_next(&p, 1, 0, ROUTE_OUT_PERM_DATA, &t).action, ROUTE_BOUNCE);
	assert_true(t.temp && t.perm);
	assert_int_equal(route_next(NULL, 0, 0, ROUTE_OUT_PERM_DATA, &t).action, ROUTE_DEFER);
	assert_int_equal(route_next(&p, 0, 0, ROUTE_OUT_PERM_DATA, NULL).action, ROUTE_DEFER);
	assert_string_equal(route_action_name((enum route_action)99), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan_matrix),
		cmocka_unit_test(test_plan_options),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_next_matrix),
		cmocka_unit_test(test_next_gateway_and_walk),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
