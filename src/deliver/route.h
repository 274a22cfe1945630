/*
 * route: the routing decision for one recipient domain (D4, E1; seed 002
 * "配信", seed 003 "SMTPゲートウェイ" and "全受信メールをSMTPゲートウェイへ転送"),
 * as pure logic: no DNS, no sockets, no clock.  The delivery engine asks
 * route_plan() where a domain's mail goes (an ordered list of steps) and, after
 * each attempt, route_next() what to do with the outcome.  docs/routing.md has
 * the tables of modes x outcomes and every reading of the manuals made here.
 *
 * Lifetime: the host names in a plan point into the route_config and its
 * gateway table; a plan is valid while both are.
 */
#ifndef TSUBAME_ROUTE_H
#define TSUBAME_ROUTE_H

#include <stddef.h>

#include "deliver/gateway.h"

struct relay_domain_table;

/* Seed 002 "メッセージの配信方法". */
enum route_mode {
	ROUTE_MODE_DIRECT = 0,         /* all outbound mail straight to the recipient's MX */
	ROUTE_MODE_SMARTHOST,          /* all outbound mail to the default smart host */
	ROUTE_MODE_DIRECT_THEN_SMARTHOST /* direct first; the smart host when direct fails */
};

/* A relay host: the smart host, or the "SMTP gateway" that forward-all uses. */
struct route_relay {
	const char *host;        /* NULL or "" = not configured */
	unsigned port;           /* 0 = 25 */
	int implicit_tls;        /* TLS from the first byte (port 465 style) */
	int require_starttls;    /* refuse to go on without STARTTLS */
	int as_domain;           /* "スマートホストをドメイン名とみなし": MX lookup of host */
	int auth;                /* SMTP AUTH to it (credentials global or per account) */
};

struct route_config {
	enum route_mode mode;
	struct route_relay smarthost;
	const struct gateway_table *gateways;  /* may be NULL: no per-domain gateways */
	int forward_all;                       /* "全受信メールをSMTPゲートウェイへ転送" */
	struct route_relay forward_to;         /* its gateway; host unset = the smart host */
	const struct relay_domain_table *relay_domains; /* E1/E2, may be NULL */
	/* Seed 002's three 5xx options. */
	int abort_on_rcpt_5xx;                 /* default 0 (the manual) */
	int bounce_on_mx_5xx;                  /* default 1 (the manual) */
	int bounce_on_smarthost_5xx;           /* default 1 (ours: the manual gives none) */
};

/* The manual's defaults: direct, no smart host, no gateways, options 0 / 1 / 1. */
void route_config_defaults(struct route_config *c);

enum route_kind {
	ROUTE_MX = 0,         /* MX lookup of the recipient domain (A/AAAA fallback per D3) */
	ROUTE_MX_SMARTHOST,   /* MX lookup of the smart host taken as a domain */
	ROUTE_HOST            /* a fixed host (name or address) and port */
};

/* Which setting produced a step: for logs and the delivery detail log. */
enum route_source {
	ROUTE_SRC_DIRECT = 0, ROUTE_SRC_GATEWAY, ROUTE_SRC_FORWARD_ALL, ROUTE_SRC_SMARTHOST,
	ROUTE_SRC_RELAY_DOMAIN,   /* E1: the host of the domain's relaydomains line */
	ROUTE_SRC_PEER            /* E7: a forced route to the peer that has the user (nexthop.h) */
};

/* What a 5xx from this step's hosts means. */
enum route_on5xx {
	ROUTE_5XX_BOUNCE = 0, /* bounce the recipient at once */
	ROUTE_5XX_NEXT,       /* try the step's next host, then the next step; bounce when all refused */
	ROUTE_5XX_DEFER       /* keep it in the retry queue (bounced when it expires) */
};

struct route_step {
	enum route_kind kind;
	enum route_source source;
	const char *host;     /* ROUTE_MX: the recipient domain; otherwise the smart host / gateway */
	unsigned port;        /* 25 unless configured */
	int implicit_tls;
	int require_starttls; /* STARTTLS mandatory: no plaintext fallback */
	int auth;             /* SMTP AUTH needed */
	int abort_on_rcpt_5xx; /* a RCPT 5xx abandons the whole transaction */
	enum route_on5xx on_5xx;
	const struct gateway_entry *gateway; /* the table entry for ROUTE_SRC_GATEWAY */
};

#define ROUTE_STEPS_MAX 2

struct route_plan {
	int local;            /* deliver to the local mailboxes: no steps */
	size_t n;
	struct route_step step[ROUTE_STEPS_MAX];
	const char *error;    /* why route_plan failed (a configuration error) */
	char nexthop[46];     /* a forced route's address (step[0].host points here: do not copy a plan) */
};

/*
 * Where mail for domain goes.  Before everything else: a forced route
 * ("[IP]:PORT", nexthop.h) is that host only; after a local domain, a relay
 * domain (E1/E2) goes to its line's host, else to its MX hosts (mx.c skips us
 * and every MX not better than us): never to the smart host, the forward-all
 * gateway or a gateway table line.  is_local: the domain is one of ours (local
 * accounts, L1).  Returns 0, or -1 with plan->error set when the configuration
 * cannot route it (smart host mode without a smart host, forward-all without a
 * gateway, an empty domain): the caller defers and logs; `tsubamed -n` should
 * reject such configurations before that.
 */
int route_plan(const struct route_config *c, const char *domain, int is_local, struct route_plan *plan);

/* The result of one attempt at one host of a step, for one recipient. */
enum route_outcome {
	ROUTE_OUT_TEMP = 0,   /* 4xx at any stage, or the session broke after the greeting */
	ROUTE_OUT_CONN,       /* no address, connection refused / timed out, TLS failed, no greeting */
	ROUTE_OUT_NO_ROUTE,   /* DNS says the name does not exist / has no address (or no MX with bounce-at-once) */
	ROUTE_OUT_NULL_MX,    /* RFC 7505 null MX: the domain accepts no mail */
	ROUTE_OUT_PERM_RCPT,  /* 5xx to this recipient's RCPT TO */
	ROUTE_OUT_PERM_DATA   /* 5xx at the greeting, EHLO/HELO, MAIL, DATA or after the final dot */
};

enum route_action {
	ROUTE_NEXT_HOST = 0,  /* try the step's next host (next MX / next address) */
	ROUTE_NEXT_STEP,      /* go on with plan->step[step + 1] */
	ROUTE_BOUNCE,         /* permanent failure: bounce this recipient now */
	ROUTE_DEFER           /* temporary: back to the retry queue */
};

/* What a delivery pass has seen so far; zero it at the start of each pass. */
struct route_tally {
	int temp;             /* some host gave a temporary failure (4xx) */
	int perm;             /* some host gave a 5xx */
};

struct route_verdict {
	enum route_action action;
	/*
	 * abort_on_rcpt_5xx hit: send no DATA in this transaction; the other
	 * recipients of the transaction are deferred (not bounced) and go again
	 * at the next retry.
	 */
	int abort_transaction;
};

/*
 * What to do after outcome oc at one host of plan->step[step].  more_hosts: the
 * step has another host not yet tried (an MX step's next MX or address; 0 for a
 * fixed host with one address).  Updates the tally.
 */
struct route_verdict route_next(const struct route_plan *plan, size_t step, int more_hosts, enum route_outcome oc,
    struct route_tally *tally);

const char *route_kind_name(enum route_kind k);
const char *route_source_name(enum route_source s);
const char *route_action_name(enum route_action a);

#endif
