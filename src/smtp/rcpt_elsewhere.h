/*
 * rcpt_elsewhere: RCPT for addresses whose mailbox is on another server, that
 * we accept and pass on (E1 relay domains, E2 backup MX, E7 peer servers).
 * cmd_rcpt (commands.c) asks rcpt_elsewhere() whether an address that is not
 * a local account is one of those; if so the relay rules see it as ours
 * ("local, account" column: a destination we serve, docs/relay.md), and once
 * they allow it rcpt_elsewhere_accept() verifies it as the tables say, replies
 * and adds the recipient, possibly after waiting (SS_WAIT) for a probe on the
 * event loop (src/verify/).  docs/relay-domains.md and docs/peers.md.
 */
#ifndef TSUBAME_RCPT_ELSEWHERE_H
#define TSUBAME_RCPT_ELSEWHERE_H

#include "conf/config.h"
#include "conf/selfaddr.h"
#include "deliver/hosts.h"
#include "local/peers.h"
#include "local/relaydomains.h"
#include "local/resolve.h"
#include "util/buf.h"

struct event_base;
struct session;
struct rcpt_params;
struct verifier;

/* The tables smtpd consults for these recipients, loaded and replaced together with the others. */
struct elsewhere_tables {
	struct relay_domain_table relay_domains;
	struct peer_table peers;
	struct hosts_table hosts;   /* a relay domain's host name to an address, as the deliver process does */
	struct selfaddr self;       /* a peer with one of our addresses is skipped */
};

/* Errors "file:line: message\n"; returns their count. */
int elsewhere_load(struct elsewhere_tables *t, const struct config *c, struct buf *errors);
void elsewhere_free(struct elsewhere_tables *t);

/* The probe engine for smtpd, and its settings on a reload. */
struct verifier *elsewhere_verifier_new(struct event_base *base, const struct config *c);
void elsewhere_verifier_configure(struct verifier *v, const struct config *c);

/*
 * 1 when to is served elsewhere: rr RESOLVE_NOT_LOCAL and a relay domain, or
 * RESOLVE_UNKNOWN_USER in a local domain with peers (unless the session comes
 * from one of those peers, or is a peer's probe: the loop guard).
 */
int rcpt_elsewhere(struct session *s, const struct mailaddr *to, enum resolve_result rr);

/* Verify, reply (250, or 550/450/451 with the reason) and add the recipient; may wait in SS_WAIT. */
void rcpt_elsewhere_accept(struct session *s, const struct mailaddr *to, const char *text, const struct rcpt_params *rp);

/* The session is going away: drop a verification in flight, no reply. */
void rcpt_elsewhere_cancel(struct session *s);

#endif
