/*
 * hold_route: the route of a held domain's released mail (hold_route.h).
 * Trust: the entry and the tables are the administrator's, already validated;
 * the domain comes from a queued envelope and is only compared.
 */
#include "deliver/hold_route.h"

#include <string.h>

void hold_route_plan(const struct route_config *c, const struct hold_entry *e, const char *domain,
    struct route_plan *plan)
{
	const struct gateway_entry *g = gateway_lookup(c->gateways, domain);
	struct route_step *s = &plan->step[0];

	memset(plan, 0, sizeof(*plan));
	plan->n = 1;
	s->abort_on_rcpt_5xx = c->abort_on_rcpt_5xx;
	if (e->route_host) {
		/* The customer's own host: its 5xx is final; a name that does not resolve defers (a relay's rules). */
		s->kind = ROUTE_HOST;
		s->source = ROUTE_SRC_GATEWAY;
		s->host = e->route_host;
		s->port = e->route_port;
		s->on_5xx = ROUTE_5XX_BOUNCE;
		return;
	}
	if (g) {
		s->kind = ROUTE_HOST;
		s->source = ROUTE_SRC_GATEWAY;
		s->host = g->host;
		s->port = g->port;
		s->implicit_tls = g->implicit_tls;
		s->on_5xx = c->bounce_on_smarthost_5xx ? ROUTE_5XX_BOUNCE : ROUTE_5XX_DEFER;
		s->gateway = g;
		return;
	}
	s->kind = ROUTE_MX;
	s->source = ROUTE_SRC_DIRECT;
	s->host = domain;
	s->port = 25;
	s->on_5xx = c->bounce_on_mx_5xx ? ROUTE_5XX_BOUNCE : ROUTE_5XX_NEXT;
}
