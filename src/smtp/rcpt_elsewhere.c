/*
 * rcpt_elsewhere: relay domains and peer servers at RCPT time (see
 * rcpt_elsewhere.h; the replies are listed in docs/smtp-replies.md).
 *
 * Relay domain (E1, E2), by the line's verify=:
 *   none   250, the address goes to the delivery engine as it is;
 *   list   250 when the recipients file has it, else 550 5.1.1;
 *   probe  ask the line's host (MAIL FROM:<> / RCPT TO): 250; 550 5.1.1 on a
 *          5xx; 450 4.1.1 on a 4xx; 451 4.4.1 when it cannot be asked.
 * Peers (E7): an unknown user of a local domain with peers is asked of every
 * peer at once (VRFY, or RCPT when VRFY is not answered, per the line's
 * probe=); the first that has it wins and the recipient is queued with a
 * forced route to that peer (deliver/nexthop.h); none has it: 550 5.1.1; none
 * has it but one could not be asked: 451 4.4.1 (never a 550 for a user who may
 * be on a peer that is down: the sender retries).
 *
 * Loop guard (a peer asking us must never make us ask it back): a session from
 * a peer's address, or a transaction whose MAIL carried ENVID=tsubame.probe
 * (our own probes say it), is answered from the local tables only.  Our VRFY
 * always is (commands.c).
 *
 * Trust: the address was parsed by cmd_parse_rcpt; probe answers are the
 * network's and only mapped to our own replies (their text goes to the log,
 * never to the client).  While a session waits (SS_WAIT) its input stays
 * buffered; every wait ends within verify_timeout, before the session's own
 * command_timeout.
 */
#include "smtp/rcpt_elsewhere.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "deliver/nexthop.h"
#include "smtp/smtpd.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "verify/verify.h"

struct rcpt_wait;

struct wait_target {
	struct rcpt_wait *w;
	char host[256];            /* an address, or a name the verifier resolves */
	unsigned port;
	struct verify_req *req;    /* NULL once answered */
	int done, cached;
	struct probe_answer a;
};

struct rcpt_wait {
	struct session *s;
	char text[ADDR_TEXT_MAX];  /* the recipient as the client wrote it */
	struct rcpt_params rp;
	int peers;                 /* 1: a peer lookup; 0: a relay domain's probe */
	char domain[256];
	struct wait_target t[PEERS_MAX];
	size_t n, pending;
	long started_ms;
};

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

int elsewhere_load(struct elsewhere_tables *t, const struct config *c, struct buf *errors)
{
	memset(t, 0, sizeof(*t));
	char *rp = config_path(c, c->relay_domains_file);
	char *pp = config_path(c, c->peers_file);
	char *hp = config_path(c, c->hosts_file);
	int n = relaydomains_load(&t->relay_domains, rp, c->config_dir, 1, errors);
	n += peers_load(&t->peers, pp, errors);
	n += hosts_load(&t->hosts, hp, errors);
	free(rp);
	free(pp);
	free(hp);
	selfaddr_collect(c, &t->self);
	return n;
}

void elsewhere_free(struct elsewhere_tables *t)
{
	relaydomains_free(&t->relay_domains);
	peers_free(&t->peers);
	hosts_free(&t->hosts);
	selfaddr_free(&t->self);
}

static void verify_config_of(const struct config *c, struct verify_config *vc)
{
	memset(vc, 0, sizeof(*vc));
	vc->helo = c->hostname;
	/* A waiting session must hear from us before its own command_timeout ends it (session.c). */
	long t = c->verify_timeout < c->command_timeout ? c->verify_timeout : c->command_timeout - 1;
	vc->timeout_ms = (unsigned)(t > 0 ? t : 1) * 1000u;
	vc->concurrency = (unsigned)c->verify_concurrency;
	vc->cache_size = (size_t)c->verify_cache_size;
	vc->positive_ttl_ms = c->verify_positive_ttl * 1000L;
	vc->negative_ttl_ms = c->verify_negative_ttl * 1000L;
	vc->tempfail_ttl_ms = c->verify_tempfail_ttl * 1000L;
	vc->dns_servers = c->dns_servers.n ? c->dns_servers.v : NULL;
	vc->ndns_servers = c->dns_servers.n;
	vc->dns_timeout_ms = (int)c->dns_timeout * 1000;
}

struct verifier *elsewhere_verifier_new(struct event_base *base, const struct config *c)
{
	struct verify_config vc;
	verify_config_of(c, &vc);
	return verifier_new(base, &vc);
}

void elsewhere_verifier_configure(struct verifier *v, const struct config *c)
{
	struct verify_config vc;
	verify_config_of(c, &vc);
	verifier_configure(v, &vc);
}

/* The peers line of to's domain (its canonical name, or the name as written). */
static const struct peer_entry *peer_entry_for(const struct session *s, const struct mailaddr *to)
{
	const struct elsewhere_tables *t = s->sd->elsewhere;
	if (!t || t->peers.n == 0 || to->domain[0] == '\0')
		return NULL;
	const struct domain *d = domains_find(&s->sd->tables->domains, to->domain);
	const struct peer_entry *pe = d ? peers_find(&t->peers, d->name) : NULL;
	return pe ? pe : peers_find(&t->peers, to->domain);
}

/* Peers of pe that are not this host. */
static size_t usable_peers(const struct elsewhere_tables *t, const struct peer_entry *pe)
{
	size_t k = 0;
	for (size_t i = 0; i < pe->npeers; i++)
		k += !selfaddr_has(&t->self, pe->peers[i].ip);
	return k;
}

int rcpt_elsewhere(struct session *s, const struct mailaddr *to, enum resolve_result rr)
{
	const struct elsewhere_tables *t = s->sd->elsewhere;
	if (!t)
		return 0;
	if (rr == RESOLVE_NOT_LOCAL)
		return !to->domain_is_literal && relaydomains_find(&t->relay_domains, to->domain) != NULL;
	if (rr != RESOLVE_UNKNOWN_USER)
		return 0;
	const struct peer_entry *pe = peer_entry_for(s, to);
	if (!pe || usable_peers(t, pe) == 0)
		return 0;
	const char *why = NULL;
	if (peers_is_peer(pe, s->client_addr))
		why = "client_is_peer";
	else if (s->txn && strcmp(s->txn->mp.envid, PROBE_ENVID) == 0)
		why = "peer_probe";
	if (why) {
		/* The loop guard: a peer asks us about what it does not have; we answer for ourselves only. */
		log_info("session=%llu event=peer_lookup_skipped reason=%s client=%s to=<%s@%s>", (unsigned long long)s->id,
		    why, s->client_addr, lq(to->local), lq(to->domain));
		return 0;
	}
	return 1;
}

/* Add the recipient (forced to ip:port when ip is set) and say 250. */
static void accept_rcpt(struct session *s, const char *text, const struct rcpt_params *rp, const char *ip,
    unsigned port)
{
	struct resolved r;
	memset(&r, 0, sizeof(r));
	if (ip) {
		if (nexthop_format(r.dest, sizeof(r.dest), text, ip, port) < 0) {
			session_reply(s, 451, "4.3.0", "<%s>: Error: cannot route to the peer", text);
			return;
		}
	} else {
		snprintf(r.dest, sizeof(r.dest), "%s", text);
	}
	snprintf(r.present, sizeof(r.present), "%s", text);
	smtpd_add_rcpt(s->txn, text, &r, rp, 0); /* a relay domain or a peer: never our mailbox */
	session_reply(s, 250, "2.1.5", "Ok");
}

static void log_result(const struct rcpt_wait *w, const char *result, const struct wait_target *via)
{
	const struct session *s = w->s;
	char v[300] = "-";
	if (via)
		snprintf(v, sizeof(v), "%s:%u", via->host, via->port);
	log_info("session=%llu event=%s client=%s to=<%s> domain=%s result=%s via=%s reply=%d cached=%d asked=%zu ms=%ld",
	    (unsigned long long)s->id, w->peers ? "peer_lookup" : "relay_verify", s->client_addr, lq(w->text), w->domain,
	    result, v, via ? via->a.code : 0, via ? via->cached : 0, w->n, now_ms() - w->started_ms);
}

static void wait_free(struct rcpt_wait *w)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->t[i].req)
			verify_cancel(w->t[i].req);
	free(w);
}

/* Every answer is in, or a peer has the user: reply, then let the session read on. */
static void finish(struct rcpt_wait *w, const struct wait_target *winner)
{
	struct session *s = w->s;
	s->rcpt_wait = NULL;
	if (s->state == SS_CLOSING || !s->txn) {
		/* The session ended its wait on its own (a time-out said 421): nobody to answer. */
		wait_free(w);
		return;
	}
	s->state = SS_COMMAND;
	int fail = 0, temp = 0;
	const struct wait_target *tfail = NULL, *ttemp = NULL;
	for (size_t i = 0; i < w->n; i++) {
		if (!w->t[i].done)
			continue;
		if (w->t[i].a.result == PROBE_FAIL && !tfail)
			tfail = &w->t[i], fail = 1;
		if (w->t[i].a.result == PROBE_TEMP && !ttemp)
			ttemp = &w->t[i], temp = 1;
	}
	if (!w->peers && w->n == 1 && w->t[0].a.result == PROBE_OK)
		winner = &w->t[0];
	if (winner) {
		log_result(w, "found", winner);
		/* A peer's host is its address (peers.h): the forced route names it. */
		accept_rcpt(s, w->text, &w->rp, w->peers ? winner->host : NULL, winner->port);
	} else if (fail) {
		log_result(w, "unreachable", tfail);
		session_reply(s, 451, "4.4.1", "<%s>: Recipient address rejected: unverified address: %s cannot be asked now; "
		    "try again later", w->text, w->peers ? "a server that may have this user" : "the domain's server");
	} else if (temp) {
		log_result(w, "tempfail", ttemp);
		session_reply(s, 450, "4.1.1", "<%s>: Recipient address rejected: unverified address: %s answered %d; "
		    "try again later", w->text, w->peers ? "a peer server" : "the domain's server", ttemp->a.code);
	} else {
		log_result(w, "unknown", w->n ? &w->t[0] : NULL);
		session_reply(s, 550, "5.1.1", "<%s>: Recipient address rejected: User unknown%s", w->text,
		    w->peers ? " on every peer server" : " at the domain's server");
	}
	wait_free(w);
	session_resume(s);
}

static void on_answer(void *arg, const struct probe_answer *a, int cached)
{
	struct wait_target *t = arg;
	struct rcpt_wait *w = t->w;
	t->req = NULL;
	t->done = 1;
	t->cached = cached;
	t->a = *a;
	w->pending--;
	if (w->peers && a->result == PROBE_OK)
		return finish(w, t);   /* the first peer that has the user: the others are cancelled */
	if (w->pending == 0)
		finish(w, NULL);
}

static void start_wait(struct session *s, struct rcpt_wait *w, enum probe_method m)
{
	if (w->n == 0) {
		/* Nobody to ask (cannot happen: rcpt_elsewhere() saw a peer that is not us): never wait for nothing. */
		session_reply(s, 550, "5.1.1", "<%s>: Recipient address rejected: User unknown", w->text);
		free(w);
		return;
	}
	w->s = s;
	w->started_ms = now_ms();
	w->pending = w->n;
	s->rcpt_wait = w;
	s->state = SS_WAIT;
	for (size_t i = 0; i < w->n; i++) {
		w->t[i].w = w;
		w->t[i].req = verify_ask(s->sd->verifier, w->t[i].host, w->t[i].port, m, w->text, on_answer, &w->t[i]);
	}
}

void rcpt_elsewhere_accept(struct session *s, const struct mailaddr *to, const char *text, const struct rcpt_params *rp)
{
	const struct elsewhere_tables *t = s->sd->elsewhere;
	const struct relay_domain *rd = to->domain_is_literal ? NULL : relaydomains_find(&t->relay_domains, to->domain);
	const struct peer_entry *pe = rd ? NULL : peer_entry_for(s, to);
	struct rcpt_wait *w;

	if (rd && rd->verify == RELAY_VERIFY_NONE) {
		log_info("session=%llu event=relay_domain client=%s to=<%s> domain=%s verify=none", (unsigned long long)s->id,
		    s->client_addr, lq(text), rd->name);
		return accept_rcpt(s, text, rp, NULL, 0);
	}
	if (rd && rd->verify == RELAY_VERIFY_LIST) {
		if (relaydomain_has_rcpt(rd, to->local, to->domain)) {
			log_info("session=%llu event=relay_domain client=%s to=<%s> domain=%s verify=list", (unsigned long long)s->id,
			    s->client_addr, lq(text), rd->name);
			return accept_rcpt(s, text, rp, NULL, 0);
		}
		log_info("session=%llu event=reject reason=unknown_user client=%s to=<%s> domain=%s verify=list",
		    (unsigned long long)s->id, s->client_addr, lq(text), rd->name);
		session_reply(s, 550, "5.1.1", "<%s>: Recipient address rejected: User unknown in relay recipient table", text);
		return;
	}
	if (!rd && !pe) {
		/* The tables changed between rcpt_elsewhere() and now: cannot happen inside one command. */
		session_reply(s, 451, "4.3.0", "<%s>: Error: recipient lookup failed", text);
		return;
	}
	w = xcalloc(1, sizeof(*w));
	snprintf(w->text, sizeof(w->text), "%s", text);
	w->rp = *rp;
	if (rd) {
		/* verify=probe: the line's host, through the hosts table as the deliver process would route it. */
		snprintf(w->domain, sizeof(w->domain), "%s", rd->name);
		const struct hosts_entry *he = hosts_lookup(&t->hosts, rd->host);
		snprintf(w->t[0].host, sizeof(w->t[0].host), "%s", he ? he->addrs[0].ip : rd->host);
		w->t[0].port = he && he->addrs[0].port ? he->addrs[0].port : rd->port;
		w->n = 1;
		return start_wait(s, w, PROBE_RCPT);
	}
	w->peers = 1;
	snprintf(w->domain, sizeof(w->domain), "%s", pe->domain);
	for (size_t i = 0; i < pe->npeers; i++) {
		if (selfaddr_has(&t->self, pe->peers[i].ip))
			continue;   /* one file for the whole group: this host is on it too */
		snprintf(w->t[w->n].host, sizeof(w->t[w->n].host), "%s", pe->peers[i].ip);
		w->t[w->n].port = pe->peers[i].port;
		w->n++;
	}
	start_wait(s, w, pe->probe == PEER_PROBE_RCPT ? PROBE_RCPT : PROBE_VRFY);
}

void rcpt_elsewhere_cancel(struct session *s)
{
	if (!s->rcpt_wait)
		return;
	wait_free(s->rcpt_wait);
	s->rcpt_wait = NULL;
}
