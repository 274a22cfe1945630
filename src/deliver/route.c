/*
 * route: where one recipient domain's mail goes (route_plan) and what an
 * attempt's outcome means (route_next), from seed 002 (MDaemon "配信": the
 * three delivery modes, the smart host, the three 5xx options) and seed 003
 * (E-Post "SMTPゲートウェイ", its per-domain table and "全受信メールを
 * SMTPゲートウェイへ転送").  Pure logic: the caller does DNS and SMTP.
 *
 * Precedence, most specific first (docs/routing.md says why):
 *   0. a forced route "[IP]:PORT" (E7, a peer that has the user): that host only;
 *   1. a local domain, forward-all off: the local mailboxes (no steps);
 *   1b. a relay domain (E1, E2): its host, else its MX (never a relay);
 *   2. a gateway table hit: that gateway only;
 *   3. forward-all on (local and remote domains alike): its gateway only;
 *   4. the delivery mode: direct MX / smart host / direct MX then smart host.
 *
 * Trust: the configuration is the administrator's and already validated; the
 * domain comes from a queued envelope (parsed by smtpd) and is only compared.
 */
#include "deliver/route.h"

#include <string.h>

#include "deliver/nexthop.h"
#include "local/relaydomains.h"

void route_config_defaults(struct route_config *c)
{
	memset(c, 0, sizeof(*c));
	c->mode = ROUTE_MODE_DIRECT;
	c->abort_on_rcpt_5xx = 0;       /* seed 002: "デフォルトで無効" */
	c->bounce_on_mx_5xx = 1;        /* seed 002: "デフォルトで有効" */
	c->bounce_on_smarthost_5xx = 1; /* RFC 5321 4.2.1: a 5yz is not to be repeated as is */
}

static int relay_set(const struct route_relay *r)
{
	return r->host != NULL && r->host[0] != '\0';
}

/* The 5xx option for relays (smart host, table gateways, forward-all gateway). */
static enum route_on5xx relay_on5xx(const struct route_config *c)
{
	return c->bounce_on_smarthost_5xx ? ROUTE_5XX_BOUNCE : ROUTE_5XX_DEFER;
}

static void add_relay(const struct route_config *c, const struct route_relay *r, enum route_source src,
    struct route_plan *p)
{
	struct route_step *s = &p->step[p->n++];

	memset(s, 0, sizeof(*s));
	s->kind = r->as_domain ? ROUTE_MX_SMARTHOST : ROUTE_HOST;
	s->source = src;
	s->host = r->host;
	s->port = r->port ? r->port : 25;
	s->implicit_tls = r->implicit_tls;
	/* Credentials never go over plaintext: AUTH without implicit TLS needs STARTTLS. */
	s->require_starttls = !r->implicit_tls && (r->require_starttls || r->auth);
	s->auth = r->auth;
	s->abort_on_rcpt_5xx = c->abort_on_rcpt_5xx;
	s->on_5xx = relay_on5xx(c);
}

static void add_direct(const struct route_config *c, const char *domain, struct route_plan *p)
{
	struct route_step *s = &p->step[p->n++];

	memset(s, 0, sizeof(*s));
	s->kind = ROUTE_MX;
	s->source = ROUTE_SRC_DIRECT;
	s->host = domain;
	s->port = 25;
	s->abort_on_rcpt_5xx = c->abort_on_rcpt_5xx;
	/* Seed 002: off = a 5xx from one MX moves on (next MX, then the smart host if any). */
	s->on_5xx = c->bounce_on_mx_5xx ? ROUTE_5XX_BOUNCE : ROUTE_5XX_NEXT;
}

static int fail(struct route_plan *p, const char *why)
{
	p->n = 0;
	p->local = 0;
	p->error = why;
	return -1;
}

int route_plan(const struct route_config *c, const char *domain, int is_local, struct route_plan *p)
{
	const struct gateway_entry *g;

	memset(p, 0, sizeof(*p));
	if (domain == NULL || domain[0] == '\0')
		return fail(p, "empty recipient domain");
	/* 0. E7: the peer that has the user, and nothing else (a peer's 5xx is that user's answer). */
	unsigned port;
	if (nexthop_parse(domain, p->nexthop, sizeof(p->nexthop), NULL, &port) == 0) {
		struct route_step *s = &p->step[p->n++];
		s->kind = ROUTE_HOST;
		s->source = ROUTE_SRC_PEER;
		s->host = p->nexthop;
		s->port = port;
		s->abort_on_rcpt_5xx = c->abort_on_rcpt_5xx;
		s->on_5xx = ROUTE_5XX_BOUNCE;
		return 0;
	}
	/* 1. Our own domain stays here unless forward-all sends it on (seed 003: "内部ドメインへ宛てのメールを…転送"). */
	if (is_local && !c->forward_all) {
		p->local = 1;
		return 0;
	}
	/*
	 * 1b. E1/E2: a relay domain is served by its own server, found from its
	 * line or its MX (minus us; the hosts table first).  Not the smart host,
	 * forward-all or the gateway table: a relay would send it straight back to
	 * the domain's MX, and that may be us (a catch-all "*" gateway line would
	 * do that to every backup-MX domain).
	 */
	const struct relay_domain *rd = relaydomains_find(c->relay_domains, domain);
	if (rd != NULL && rd->host != NULL) {
		struct route_step *s = &p->step[p->n++];
		s->kind = ROUTE_HOST;
		s->source = ROUTE_SRC_RELAY_DOMAIN;
		s->host = rd->host;
		s->port = rd->port;
		s->abort_on_rcpt_5xx = c->abort_on_rcpt_5xx;
		/* The domain's own server: its 5xx means what an MX's means. */
		s->on_5xx = c->bounce_on_mx_5xx ? ROUTE_5XX_BOUNCE : ROUTE_5XX_NEXT;
		return 0;
	}
	if (rd != NULL) {
		add_direct(c, domain, p);
		return 0;
	}
	/* 2. The per-domain table: the most specific word about a domain. */
	if ((g = gateway_lookup(c->gateways, domain)) != NULL) {
		struct route_step *s = &p->step[p->n++];
		s->kind = ROUTE_HOST;
		s->source = ROUTE_SRC_GATEWAY;
		s->host = g->host;
		s->port = g->port;
		s->implicit_tls = g->implicit_tls;
		s->abort_on_rcpt_5xx = c->abort_on_rcpt_5xx;
		s->on_5xx = relay_on5xx(c);
		s->gateway = g;
		return 0;
	}
	/* 3. Forward-all: "指定時には「SMTPゲートウェイ」に転送先のマシンアドレスを必ず指定してください". */
	if (c->forward_all) {
		if (relay_set(&c->forward_to))
			add_relay(c, &c->forward_to, ROUTE_SRC_FORWARD_ALL, p);
		else if (relay_set(&c->smarthost))
			add_relay(c, &c->smarthost, ROUTE_SRC_FORWARD_ALL, p);
		else
			return fail(p, "forward-all is on but no gateway (or smart host) is set");
		return 0;
	}
	/* 4. The delivery mode (seed 002 "メッセージの配信方法"). */
	switch (c->mode) {
	case ROUTE_MODE_DIRECT:
		add_direct(c, domain, p);
		return 0;
	case ROUTE_MODE_SMARTHOST:
		if (!relay_set(&c->smarthost))
			return fail(p, "smart host mode but no smart host is set");
		add_relay(c, &c->smarthost, ROUTE_SRC_SMARTHOST, p);
		return 0;
	case ROUTE_MODE_DIRECT_THEN_SMARTHOST:
		if (!relay_set(&c->smarthost))
			return fail(p, "direct-then-smart-host mode but no smart host is set");
		add_direct(c, domain, p);
		add_relay(c, &c->smarthost, ROUTE_SRC_SMARTHOST, p);
		return 0;
	}
	return fail(p, "unknown delivery mode");
}

/* Nothing more to try in this step: the next step, or the end of the pass. */
static enum route_action step_exhausted(const struct route_plan *p, size_t step, enum route_action at_end)
{
	if (step + 1 < p->n)
		return ROUTE_NEXT_STEP;
	return at_end;
}

struct route_verdict route_next(const struct route_plan *p, size_t step, int more_hosts, enum route_outcome oc,
    struct route_tally *t)
{
	struct route_verdict v = { ROUTE_DEFER, 0 };
	const struct route_step *s;

	if (p == NULL || step >= p->n || t == NULL)
		return v; /* nothing to go by: keep the mail */
	s = &p->step[step];
	switch (oc) {
	case ROUTE_OUT_TEMP:
	case ROUTE_OUT_CONN:
		/* RFC 5321 5.1: try the other hosts; seed 002: direct failures go to the smart host. */
		if (oc == ROUTE_OUT_TEMP)
			t->temp = 1;
		v.action = more_hosts ? ROUTE_NEXT_HOST : step_exhausted(p, step, ROUTE_DEFER);
		break;
	case ROUTE_OUT_NO_ROUTE:
		/* Seed 002: "実際のIPアドレスに解決することのできないホスト宛のメール" go to the smart host. */
		if (s->source != ROUTE_SRC_DIRECT)
			v.action = step_exhausted(p, step, ROUTE_DEFER); /* a relay that does not resolve is our misconfiguration, not the recipient's fault */
		else
			v.action = step_exhausted(p, step, t->temp ? ROUTE_DEFER : ROUTE_BOUNCE);
		break;
	case ROUTE_OUT_NULL_MX:
		/* RFC 7505 3: the domain accepts no mail; no other route will change that. */
		v.action = ROUTE_BOUNCE;
		break;
	case ROUTE_OUT_PERM_RCPT:
	case ROUTE_OUT_PERM_DATA:
		t->perm = 1;
		v.abort_transaction = oc == ROUTE_OUT_PERM_RCPT && s->abort_on_rcpt_5xx;
		switch (s->on_5xx) {
		case ROUTE_5XX_BOUNCE:
			v.action = ROUTE_BOUNCE;
			break;
		case ROUTE_5XX_DEFER:
			v.action = ROUTE_DEFER;
			break;
		case ROUTE_5XX_NEXT:
			/* Seed 002: no bounce while at least one host answered 4xx. */
			v.action = more_hosts ? ROUTE_NEXT_HOST : step_exhausted(p, step, t->temp ? ROUTE_DEFER : ROUTE_BOUNCE);
			break;
		}
		break;
	}
	return v;
}

const char *route_kind_name(enum route_kind k)
{
	switch (k) {
	case ROUTE_MX: return "mx";
	case ROUTE_MX_SMARTHOST: return "smarthost-mx";
	case ROUTE_HOST: return "host";
	}
	return "?";
}

const char *route_source_name(enum route_source s)
{
	switch (s) {
	case ROUTE_SRC_DIRECT: return "direct";
	case ROUTE_SRC_GATEWAY: return "gateway";
	case ROUTE_SRC_FORWARD_ALL: return "forward-all";
	case ROUTE_SRC_SMARTHOST: return "smarthost";
	case ROUTE_SRC_RELAY_DOMAIN: return "relay-domain";
	case ROUTE_SRC_PEER: return "peer";
	}
	return "?";
}

const char *route_action_name(enum route_action a)
{
	switch (a) {
	case ROUTE_NEXT_HOST: return "next-host";
	case ROUTE_NEXT_STEP: return "next-step";
	case ROUTE_BOUNCE: return "bounce";
	case ROUTE_DEFER: return "defer";
	}
	return "?";
}
