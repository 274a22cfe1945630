/*
 * remote: one message to one remote domain (see remote.h).
 *
 * A job walks the route plan: for each step it resolves the hosts (MX of the
 * domain or of the smart host, or a fixed host through the hosts table or an
 * A lookup), then tries them in order with the SMTP client.  After every
 * attempt each undecided recipient's outcome goes through route_next(), which
 * encodes the manual's 5xx options: try the next host, the next step, bounce,
 * or defer.  When nothing is left to try, the undecided ones are deferred with
 * the retry class of the last failure.
 *
 * Routing generations: the settings and tables a job routes with (struct
 * routing: its own copy of the configuration, the gateway and hosts tables)
 * are read at start and again on SIGHUP (remote_reload).  A job takes a
 * reference to the generation current when it starts and keeps it to the end,
 * whatever reloads happen meanwhile: its plan points into that generation's
 * tables, and its MX lookups use that generation's hosts table.  A reload
 * that finds any error keeps the current generation.
 *
 * Connection reuse (D1): after a transaction with at least one recipient
 * accepted, the connection is parked in the connection cache (conncache.c)
 * instead of being closed; a later job whose next host is the same address,
 * port and session parameters takes it, says RSET and sends its message.  If
 * that connection turns out dead before MAIL is accepted, the job opens a
 * fresh one to the same host: a stale cached connection is never counted as a
 * delivery failure.
 */
#include "deliver/remote.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf/selfaddr.h"
#include "deliver/conncache.h"
#include "deliver/gateway.h"
#include "deliver/hold_route.h"
#include "deliver/hosts.h"
#include "deliver/route.h"
#include "deliver/smarthost_auth.h"
#include "deliver/smtp_client.h"
#include "dns/dns.h"
#include "dns/mx.h"
#include "local/relaydomains.h"
#include "queue/qid.h"
#include "tls/tls_client.h"
#include "util/log.h"
#include "util/xalloc.h"

#define JOB_ADDRS_MAX 32

struct target {
	char host[256];
	char ip[46];
	int family;
	unsigned port;
};

/* One generation of the routing settings and tables (see the top comment). */
struct routing {
	unsigned refs;                 /* the remote's "current" + one per job */
	struct config cfg;             /* our own copy, so a reload elsewhere never pulls it away */
	struct hosts_table hosts;
	struct gateway_table gateways;
	struct smarthost_auth_table creds; /* per-account smart-host AUTH (loaded when enabled) */
	struct hold_table hold;        /* E3: held domains' routes (hold_route.h) */
	struct relay_domain_table relay_domains; /* E1/E2: where a relay domain's mail goes */
	struct route_config rc;        /* points into gateways, relay_domains and the two hosts below */
	char *smarthost_host, *forward_host;
};

struct job {
	struct job *next, *prev;
	struct remote *r;
	struct routing *rt;            /* the generation this job routes with (a reference) */
	char qid[QID_MAX];
	int fd;
	off_t off, len;
	char *sender;
	char *dsn_params;              /* message-level DSN parameters (RET, ENVID), or NULL */
	char *auth_account;            /* who submitted it, "" when nobody authenticated */
	unsigned flags;
	char *domain;
	struct remote_rcpt *rcpts;
	size_t n;
	remote_done_cb cb;
	void *arg;
	struct route_plan plan;
	size_t step;
	struct route_tally tally;
	struct target targets[JOB_ADDRS_MAX];
	size_t ntargets, cur;
	enum retry_class last_cls;
	char last_enh[16];
	char last_text[512];
	int plain_retry;               /* opportunistic TLS failed: this host again without TLS */
	int reused;                    /* the current attempt runs on a cached connection */
	int fresh_only;                /* a cached connection to this host failed: connect anew */
	int retry_fresh;               /* set in on_txn: after the close, this host again, fresh */
	struct smtp_connect *connect;
	struct smtp_client *client;
	struct smtp_client_params params;
	char tag[320];
	struct smtp_rcpt *srcpts;      /* the recipients of the transaction in progress */
	size_t *srcpt_of;              /* srcpts[i] is rcpts[srcpt_of[i]] */
	size_t nsrcpts;
	struct smtp_txn txn;
	int want_next_host, want_next_step;
	int waiting;                   /* 1 while a resolver callback is outstanding */
	const struct hold_entry *held; /* E3: the domain is held; its release goes to the customer only */
};

struct remote {
	struct event_base *base;
	struct routing *rt;            /* the current generation: new jobs take it */
	struct dns *dns;
	struct mx *mx;
	SSL_CTX *tls;
	struct conncache *cache;
	struct selfaddr self;          /* E2: an MX host with one of these addresses is us */
	struct job *jobs;
	size_t njobs;
	int closing;
};

/* "host[:port][*]" → host, port, implicit TLS.  IPv6 in brackets. */
static int parse_relay(const char *text, char **host, unsigned *port, int *implicit)
{
	*host = NULL;
	*port = 25;
	*implicit = 0;
	if (!text || !*text)
		return 0;
	char *s = xstrdup(text);
	size_t n = strlen(s);
	if (n && s[n - 1] == '*') {
		*implicit = 1;
		s[--n] = '\0';
	}
	char *colon = NULL;
	if (s[0] == '[') {
		char *close = strchr(s, ']');
		if (!close) {
			free(s);
			return -1;
		}
		*close = '\0';
		colon = close[1] == ':' ? close + 1 : NULL;
		memmove(s, s + 1, strlen(s + 1) + 1);
	} else {
		colon = strrchr(s, ':');
		if (colon && strchr(s, ':') != colon)
			colon = NULL; /* a bare IPv6 address */
	}
	if (colon) {
		*colon = '\0';
		char *end;
		long p = strtol(colon + 1, &end, 10);
		if (*end || p < 1 || p > 65535) {
			free(s);
			return -1;
		}
		*port = (unsigned)p;
	} else if (*implicit) {
		*port = 465;
	}
	*host = s;
	return 0;
}

static void routing_unref(struct routing *rt)
{
	if (!rt || --rt->refs > 0)
		return;
	hosts_free(&rt->hosts);
	gateway_free(&rt->gateways);
	smarthost_auth_free(&rt->creds);
	hold_free(&rt->hold);
	relaydomains_free(&rt->relay_domains);
	free(rt->smarthost_host);
	free(rt->forward_host);
	config_free(&rt->cfg);
	free(rt);
}

/* The configuration at path and the tables it names; NULL with every problem in errors (file:line). */
static struct routing *routing_load(const char *path, struct buf *errors)
{
	struct routing *rt = xcalloc(1, sizeof(*rt));
	rt->refs = 1;
	if (config_load(&rt->cfg, path, errors) != 0) {
		routing_unref(rt);
		return NULL;
	}
	const struct config *cfg = &rt->cfg;
	int bad = 0;
	char *hp = config_path(cfg, cfg->hosts_file);
	char *gp = config_path(cfg, cfg->gateway_file);
	bad += hosts_load(&rt->hosts, hp, errors);
	bad += gateway_load(&rt->gateways, gp, errors);
	char *rp = config_path(cfg, cfg->relay_domains_file);
	bad += relaydomains_load(&rt->relay_domains, rp, cfg->config_dir, 0, errors);
	free(rp);
	free(hp);
	free(gp);
	if (cfg->smarthost_auth_per_account) {
		char *ap = config_path(cfg, cfg->smarthost_auth_file);
		bad += smarthost_auth_load(&rt->creds, ap, errors);
		free(ap);
	}
	char *holdp = config_path(cfg, cfg->hold_file);
	bad += hold_load(&rt->hold, holdp, cfg->etrn_clients.v, cfg->etrn_clients.n, errors);
	free(holdp);
	route_config_defaults(&rt->rc);
	rt->rc.mode = (enum route_mode)cfg->delivery_mode;
	rt->rc.gateways = &rt->gateways;
	rt->rc.relay_domains = &rt->relay_domains;
	rt->rc.forward_all = cfg->forward_all;
	rt->rc.abort_on_rcpt_5xx = cfg->abort_on_rcpt_5xx;
	rt->rc.bounce_on_mx_5xx = cfg->bounce_on_mx_5xx;
	rt->rc.bounce_on_smarthost_5xx = cfg->bounce_on_smarthost_5xx;
	if (parse_relay(cfg->smarthost, &rt->smarthost_host, &rt->rc.smarthost.port, &rt->rc.smarthost.implicit_tls) < 0) {
		buf_appendf(errors, "%s: smarthost '%s' is not host[:port][*]\n", cfg->path, cfg->smarthost);
		bad++;
	}
	rt->rc.smarthost.host = rt->smarthost_host;
	rt->rc.smarthost.as_domain = cfg->smarthost_is_domain;
	rt->rc.smarthost.auth = cfg->smarthost_auth_user[0] != '\0' || (cfg->smarthost_auth_per_account && rt->creds.n > 0);
	if (parse_relay(cfg->forward_gateway, &rt->forward_host, &rt->rc.forward_to.port,
	    &rt->rc.forward_to.implicit_tls) < 0) {
		buf_appendf(errors, "%s: forward_gateway '%s' is not host[:port][*]\n", cfg->path, cfg->forward_gateway);
		bad++;
	}
	rt->rc.forward_to.host = rt->forward_host;
	if (bad) {
		routing_unref(rt);
		return NULL;
	}
	return rt;
}

int remote_check(const char *path, struct buf *errors)
{
	struct routing *rt = routing_load(path, errors);
	if (!rt)
		return 1;
	routing_unref(rt);
	return 0;
}

static void cache_limits(struct remote *r)
{
	const struct config *c = &r->rt->cfg;
	conncache_set_limits(r->cache, (size_t)c->smtp_connection_cache_size, (unsigned)c->smtp_connection_cache_time * 1000,
	    (unsigned)c->smtp_connection_reuse_limit);
}

struct remote *remote_new(struct event_base *base, const struct config *cfg, struct buf *errors)
{
	/* Routing settings and tables are our own copy: reread on SIGHUP (remote_reload). */
	struct routing *rt = routing_load(cfg->path, errors);
	if (!rt)
		return NULL;
	struct remote *r = xcalloc(1, sizeof(*r));
	r->base = base;
	r->rt = rt;
	cfg = &rt->cfg;
	int bad = 0;
	r->dns = dns_new(base, cfg->dns_servers.v, cfg->dns_servers.n, (int)cfg->dns_timeout * 1000);
	if (!r->dns) {
		buf_appendf(errors, "%s: dns_servers: cannot start the resolver\n", cfg->path);
		bad++;
	}
	if (r->dns) {
		struct mx_config mc;
		mx_config_defaults(&mc);
		mc.cache_time = cfg->mx_cache_time;
		mc.no_mx_bounce = cfg->bounce_when_no_mx;
		const char *self[1] = { cfg->hostname };
		mc.self_names = self;
		mc.nself_names = 1;
		/* E2: our listen addresses (every interface's for '*') and self_addresses: an MX there is us. */
		selfaddr_collect(cfg, &r->self);
		mc.self_addrs = (const char *const *)r->self.v;
		mc.nself_addrs = r->self.n;
		mc.hosts = &rt->hosts;
		r->mx = mx_new(base, r->dns, &mc);
	}
	r->tls = tls_client_context(NULL, errors);
	if (!r->tls)
		log_warnx("event=tls_client_unavailable: outgoing STARTTLS off");
	r->cache = conncache_new(base);
	cache_limits(r);
	if (bad) {
		remote_free(r);
		return NULL;
	}
	return r;
}

int remote_reload(struct remote *r)
{
	struct buf errors;
	buf_init(&errors, 64 * 1024);
	struct routing *rt = routing_load(r->rt->cfg.path, &errors);
	if (!rt) {
		log_warnx("event=reload_failed what=routing action=kept_old errors=%s", lq(buf_cstr(&errors)));
		buf_free(&errors);
		return -1;
	}
	buf_free(&errors);
	/* Jobs in flight keep their reference to the old generation; it goes with the last of them. */
	routing_unref(r->rt);
	r->rt = rt;
	/*
	 * The MX cache holds answers in which the old hosts table replaced
	 * exchangers' addresses: forget them all (a reload is also the
	 * administrator's way to say "look again").
	 */
	if (r->mx)
		mx_set_hosts(r->mx, &rt->hosts);
	cache_limits(r);
	log_info("event=routing_reloaded gateways=%zu hosts=%zu mode=%d", rt->gateways.n, rt->hosts.n,
	    rt->cfg.delivery_mode);
	return 0;
}

static void job_free(struct job *j)
{
	struct remote *r = j->r;
	if (j->prev)
		j->prev->next = j->next;
	else
		r->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	r->njobs--;
	if (j->connect)
		smtp_connect_cancel(j->connect);
	if (j->client)
		smtp_client_free(j->client);
	if (j->fd >= 0)
		close(j->fd);
	for (size_t i = 0; i < j->n; i++) {
		free(j->rcpts[i].addr);
		free(j->rcpts[i].dsn_params);
	}
	free(j->rcpts);
	free(j->srcpts);
	free(j->srcpt_of);
	free(j->sender);
	free(j->dsn_params);
	free(j->auth_account);
	free(j->domain);
	routing_unref(j->rt);
	free(j);
}

size_t remote_stop(struct remote *r, void (*drained)(void *arg), void *arg)
{
	if (!r)
		return 0;
	if (!r->closing) {
		r->closing = 1;
		/*
		 * The resolvers first: they call back every job still waiting for an
		 * answer (which sees closing and returns), so no callback can reach a
		 * job freed below.  mx before dns (mx.h).
		 */
		if (r->mx)
			mx_free(r->mx);
		r->mx = NULL;
		if (r->dns)
			dns_free(r->dns);
		r->dns = NULL;
		/* Deliveries in flight are dropped: the queue repeats them (a duplicate, never a loss). */
		while (r->jobs)
			job_free(r->jobs);
	}
	return conncache_close_all(r->cache, drained, arg);
}

void remote_free(struct remote *r)
{
	if (!r)
		return;
	remote_stop(r, NULL, NULL);
	conncache_free(r->cache);
	if (r->tls)
		tls_client_context_free(r->tls);
	routing_unref(r->rt);
	selfaddr_free(&r->self);
	free(r);
}

size_t remote_active(const struct remote *r) { return r ? r->njobs : 0; }

static void set_result(struct remote_rcpt *x, enum deliver_status st, enum retry_class cls, const char *enh,
    const char *text, const char *relay)
{
	x->status = st;
	x->cls = cls;
	x->final = 1;
	x->code = 0;
	x->dsn_passed = 0;
	x->conn = NULL;   /* on_txn names the session when one decided */
	snprintf(x->enh, sizeof(x->enh), "%s", enh && *enh ? enh : (st == DELIVER_OK ? "2.0.0" :
	    st == DELIVER_TEMPFAIL ? "4.4.1" : "5.0.0"));
	snprintf(x->text, sizeof(x->text), "%s", text ? text : "");
	snprintf(x->relay, sizeof(x->relay), "%s", relay ? relay : "none");
}

/* Everything decided or nothing left to try: report and free. */
static void job_finish(struct job *j)
{
	for (size_t i = 0; i < j->n; i++)
		if (!j->rcpts[i].final)
			set_result(&j->rcpts[i], DELIVER_TEMPFAIL, j->last_cls ? j->last_cls : RETRY_NOANSWER,
			    j->last_enh[0] ? j->last_enh : "4.4.1", j->last_text[0] ? j->last_text : "no route tried",
			    j->tag[0] ? j->tag : "none");
	j->cb(j->arg, j->qid, j->domain, j->rcpts, j->n);
	job_free(j);
}

static size_t undecided(const struct job *j)
{
	size_t k = 0;
	for (size_t i = 0; i < j->n; i++)
		k += !j->rcpts[i].final;
	return k;
}

static void next_step(struct job *j);
static void try_target(struct job *j);

/* Apply one outcome to every undecided recipient (a host- or step-level failure). */
static void apply_all(struct job *j, enum route_outcome oc, enum retry_class cls, const char *enh, const char *text)
{
	j->want_next_host = j->want_next_step = 0;
	j->last_cls = cls;
	snprintf(j->last_enh, sizeof(j->last_enh), "%s", enh ? enh : "");
	snprintf(j->last_text, sizeof(j->last_text), "%s", text ? text : "");
	int more = j->cur + 1 < j->ntargets;
	for (size_t i = 0; i < j->n; i++) {
		if (j->rcpts[i].final)
			continue;
		struct route_verdict v = route_next(&j->plan, j->step, more, oc, &j->tally);
		if (v.action == ROUTE_BOUNCE)
			set_result(&j->rcpts[i], DELIVER_PERMFAIL, RETRY_NONE, enh, text, j->tag);
		else if (v.action == ROUTE_DEFER)
			set_result(&j->rcpts[i], DELIVER_TEMPFAIL, cls, enh, text, j->tag);
		else if (v.action == ROUTE_NEXT_HOST)
			j->want_next_host = 1;
		else
			j->want_next_step = 1;
	}
}

/* After an attempt: on to the next host, the next step, or done. */
static void advance(struct job *j)
{
	if (j->r->closing)
		return;
	if (undecided(j) == 0)
		return job_finish(j);
	if (j->want_next_host && j->cur + 1 < j->ntargets) {
		j->cur++;
		j->plain_retry = 0;
		j->fresh_only = 0;
		return try_target(j);
	}
	if (j->want_next_step || j->want_next_host) {
		j->step++;
		return next_step(j);
	}
	job_finish(j);
}

static enum route_outcome outcome_of(enum smtp_status st, enum smtp_failure why, int rcpt_level)
{
	if (st == SMTP_PERM)
		return rcpt_level ? ROUTE_OUT_PERM_RCPT : ROUTE_OUT_PERM_DATA;
	if (why == SMTP_FAIL_CONNECT || why == SMTP_FAIL_TLS || why == SMTP_FAIL_TLS_REQUIRED)
		return ROUTE_OUT_CONN;
	return ROUTE_OUT_TEMP;
}

static enum retry_class class_of(enum smtp_failure why, int code)
{
	if (why == SMTP_FAIL_CONNECT)
		return RETRY_NOANSWER;
	if (why == SMTP_FAIL_REPLY && code >= 400)
		return RETRY_REFUSED;
	return RETRY_LINE;
}

/*
 * The detail of a deferral for a refused AUTH.  Its status becomes 4.7.0 (we
 * retry: the credentials are ours to fix), so the peer's own reply, "535 5.7.8
 * ..." or "454 4.7.0 ...", would otherwise be lost: it goes into the text.
 */
static const char *auth_detail(char *out, size_t n, const struct smtp_reply *rep)
{
	if (rep->code)   /* the peer's text is cut to fit: "%.400s" keeps -Wformat-truncation (CI=true) quiet */
		snprintf(out, n, "AUTH refused: %d%s%.15s %.400s", rep->code, rep->enhanced[0] ? " " : "", rep->enhanced,
		    rep->text);
	else
		snprintf(out, n, "%s", rep->text[0] ? rep->text : "AUTH failed");
	return out;
}

/* This attempt's transaction is over: forget its per-recipient arrays. */
static void txn_reset(struct job *j)
{
	free(j->srcpts);
	free(j->srcpt_of);
	j->srcpts = NULL;
	j->srcpt_of = NULL;
	j->nsrcpts = 0;
}

static void on_close(struct smtp_client *c, enum smtp_status status, enum smtp_failure why,
    const struct smtp_reply *reply, void *arg)
{
	struct job *j = arg;
	j->client = NULL;
	if (j->r->closing)
		return;
	if (j->retry_fresh) {
		/* The cached connection was stale: the same host again, over a new connection. */
		j->retry_fresh = 0;
		txn_reset(j);
		return try_target(j);
	}
	if (j->nsrcpts == 0 && undecided(j) > 0 && !j->want_next_host && !j->want_next_step) {
		/* The session ended before a transaction result: greeting, TLS, AUTH, loss. */
		enum route_outcome oc = outcome_of(status, why, 0);
		enum retry_class cls = class_of(why, reply ? reply->code : 0);
		const char *enh = reply ? reply->enhanced : "";
		const char *text = reply && reply->text[0] ? reply->text : smtp_failure_name(why);
		char detail[SMTP_REPLY_TEXT_MAX];
		if (why == SMTP_FAIL_AUTH) {
			/* Our credentials are wrong: an administrator's fix, not the sender's fault: defer. */
			oc = ROUTE_OUT_TEMP;
			cls = RETRY_LINE;
			enh = "4.7.0";
			if (reply)
				text = auth_detail(detail, sizeof(detail), reply);
		}
		apply_all(j, oc, cls, enh, text);
	}
	txn_reset(j);
	advance(j);
}

static void on_txn(struct smtp_client *c, struct smtp_txn *t, void *arg)
{
	struct job *j = arg;
	if (j->reused && !t->mail_accepted && t->why != SMTP_FAIL_SIZE && t->why != SMTP_FAIL_SMTPUTF8 &&
	    t->why != SMTP_FAIL_LOCAL) {
		/*
		 * A cached connection that fails before the peer accepted MAIL (RSET
		 * unanswered, 421, reset) proves only that it had gone stale: these
		 * results are not the recipients'.  Close it and connect afresh.
		 */
		log_info("qid=%s event=reuse_failed relay=%s reply=%d detail=%s action=reconnect", j->qid, lq(j->tag),
		    t->reply.code, lq(t->reply.text));
		j->retry_fresh = 1;
		j->fresh_only = 1;
		smtp_client_quit(c);
		return;
	}
	if (t->why == SMTP_FAIL_TLS && !t->mail_accepted && j->params.tls == SMTP_TLS_OPPORTUNISTIC && !j->plain_retry) {
		/* Opportunistic TLS whose handshake fails: this host again in plaintext (as Postfix does). */
		log_info("qid=%s event=tls_failed relay=%s detail=%s action=plaintext_retry", j->qid, lq(j->tag),
		    lq(t->reply.text));
		j->plain_retry = 1;
		j->retry_fresh = 1;
		j->fresh_only = 1;
		smtp_client_quit(c);
		return;
	}
	j->want_next_host = j->want_next_step = 0;
	int more = j->cur + 1 < j->ntargets;
	const char *conn = j->reused ? "reused" : "new";
	for (size_t i = 0; i < j->nsrcpts; i++) {
		struct smtp_rcpt *sr = &j->srcpts[i];
		struct remote_rcpt *x = &j->rcpts[j->srcpt_of[i]];
		if (sr->status == SMTP_OK && t->status == SMTP_OK) {
			set_result(x, DELIVER_OK, RETRY_NONE, sr->reply.enhanced[0] ? sr->reply.enhanced : "2.0.0",
			    t->reply.text, j->tag);
			x->code = t->reply.code;
			x->dsn_passed = (smtp_client_extensions(c) & SMTP_EXT_DSN) != 0;
			continue;
		}
		if (sr->why == SMTP_FAIL_ABORTED) {
			/* seed 002: another recipient's 5xx abandoned the message; this one waits for the retry. */
			set_result(x, DELIVER_TEMPFAIL, RETRY_REFUSED, sr->reply.enhanced, sr->reply.text, j->tag);
			continue;
		}
		/* The recipient's own RCPT reply if it failed there, else the transaction's. */
		int rcpt_level = sr->status != SMTP_OK;
		const struct smtp_reply *rep = rcpt_level ? &sr->reply : &t->reply;
		enum smtp_status st = rcpt_level ? sr->status : t->status;
		enum smtp_failure why = rcpt_level ? sr->why : t->why;
		if (why == SMTP_FAIL_AUTH) {
			/* Our credentials are wrong: an administrator's fix, not the sender's fault: defer. */
			char detail[SMTP_REPLY_TEXT_MAX];
			set_result(x, DELIVER_TEMPFAIL, RETRY_LINE, "4.7.0", auth_detail(detail, sizeof(detail), rep), j->tag);
			continue;
		}
		enum route_outcome oc = outcome_of(st, why, rcpt_level);
		enum retry_class cls = class_of(why, rep->code);
		j->last_cls = cls;
		snprintf(j->last_enh, sizeof(j->last_enh), "%s", rep->enhanced);
		snprintf(j->last_text, sizeof(j->last_text), "%s", rep->text);
		struct route_verdict v = route_next(&j->plan, j->step, more, oc, &j->tally);
		if (v.action == ROUTE_BOUNCE || v.action == ROUTE_DEFER) {
			set_result(x, v.action == ROUTE_BOUNCE ? DELIVER_PERMFAIL : DELIVER_TEMPFAIL,
			    v.action == ROUTE_BOUNCE ? RETRY_NONE : cls, rep->enhanced, rep->text, j->tag);
			x->code = rep->code;
		} else if (v.action == ROUTE_NEXT_HOST)
			j->want_next_host = 1;
		else
			j->want_next_step = 1;
	}
	/* Every recipient of this transaction was undecided before it: those decided now were decided here. */
	for (size_t i = 0; i < j->nsrcpts; i++)
		if (j->rcpts[j->srcpt_of[i]].final)
			j->rcpts[j->srcpt_of[i]].conn = conn;
	const struct target *tg = &j->targets[j->cur];
	if (t->status == SMTP_OK && conncache_put(j->r->cache, c, tg->ip, tg->port, &j->params)) {
		/* D1: the session stays open for the next message to this peer; this attempt is over. */
		j->client = NULL;
		txn_reset(j);
		return advance(j);
	}
	smtp_client_quit(c);
}

/* The session parameters for the current target: how we talk to it, and the connection cache key. */
static void setup_params(struct job *j)
{
	const struct target *t = &j->targets[j->cur];
	const struct route_step *s = &j->plan.step[j->step];
	const struct config *cfg = &j->rt->cfg;
	smtp_client_params_defaults(&j->params);
	j->params.helo = cfg->hostname;
	j->params.tag = j->tag;
	unsigned ms = (unsigned)cfg->smtp_timeout * 1000;
	j->params.greeting_ms = j->params.mail_ms = j->params.rcpt_ms = ms;
	j->params.data_init_ms = ms * 2 / 5 ? ms * 2 / 5 : 1000;
	j->params.data_block_ms = ms * 3 / 5 ? ms * 3 / 5 : 1000;
	j->params.data_end_ms = ms * 2;
	j->params.ssl_ctx = j->r->tls;
	j->params.tls_servername = t->host;
	if (s->implicit_tls)
		j->params.tls = SMTP_TLS_IMPLICIT;
	else if (!j->r->tls || j->plain_retry || cfg->smtp_tls == 0)
		j->params.tls = s->require_starttls && j->r->tls ? SMTP_TLS_MANDATORY : SMTP_TLS_NONE;
	else if (cfg->smtp_tls == 2 || s->require_starttls)
		j->params.tls = SMTP_TLS_MANDATORY;
	else
		j->params.tls = SMTP_TLS_OPPORTUNISTIC;
	if (s->auth) {
		/* seed 002: the submitting account's own login when it has one, else the global one. */
		const struct smarthost_cred *c = smarthost_auth_find(&j->rt->creds, j->auth_account);
		if (c) {
			j->params.auth_user = c->user;
			j->params.auth_pass = c->password;
		} else if (cfg->smarthost_auth_user[0]) {
			j->params.auth_user = cfg->smarthost_auth_user;
			j->params.auth_pass = cfg->smarthost_auth_password;
		}
	}
}

/* Run this attempt's transaction on c (new or from the cache): the recipients still undecided. */
static void start_attempt(struct job *j, struct smtp_client *c)
{
	const struct route_step *s = &j->plan.step[j->step];
	size_t k = undecided(j);
	j->srcpts = xcalloc(k ? k : 1, sizeof(*j->srcpts));
	j->srcpt_of = xcalloc(k ? k : 1, sizeof(*j->srcpt_of));
	j->nsrcpts = 0;
	for (size_t i = 0; i < j->n; i++)
		if (!j->rcpts[i].final) {
			j->srcpts[j->nsrcpts].addr = j->rcpts[i].addr;
			j->srcpts[j->nsrcpts].dsn_params = j->rcpts[i].dsn_params;
			j->srcpt_of[j->nsrcpts++] = i;
		}
	memset(&j->txn, 0, sizeof(j->txn));
	j->txn.sender = j->sender;
	j->txn.dsn_params = j->dsn_params;
	j->txn.rcpts = j->srcpts;
	j->txn.nrcpt = j->nsrcpts;
	j->txn.fd = j->fd;
	j->txn.offset = j->off;
	j->txn.length = j->len;
	j->txn.flags = (j->flags & REMOTE_FLAG_8BIT ? SMTP_TXN_8BITMIME : 0) |
	    (j->flags & REMOTE_FLAG_SMTPUTF8 ? SMTP_TXN_SMTPUTF8 : 0) |
	    (s->abort_on_rcpt_5xx ? SMTP_TXN_ABORT_ON_RCPT_5XX : 0);
	j->client = c;
	if (smtp_client_send(j->client, &j->txn) < 0) {
		apply_all(j, ROUTE_OUT_TEMP, RETRY_LINE, "4.3.0", "cannot start the transaction");
		smtp_client_quit(j->client);
	}
}

static void on_connect(int fd, int err, void *arg)
{
	struct job *j = arg;
	j->connect = NULL;
	if (j->r->closing) {
		if (fd >= 0)
			close(fd);
		return;
	}
	const struct target *t = &j->targets[j->cur];
	if (fd < 0) {
		char text[300];
		snprintf(text, sizeof(text), "connect to %s[%s]:%u: %s", t->host, t->ip, t->port, strerror(err));
		apply_all(j, ROUTE_OUT_CONN, RETRY_NOANSWER, "4.4.1", text);
		return advance(j);
	}
	start_attempt(j, smtp_client_new(j->r->base, fd, &j->params, on_txn, on_close, j));
}

static void try_target(struct job *j)
{
	struct target *t = &j->targets[j->cur];
	snprintf(j->tag, sizeof(j->tag), "%s[%s]:%u", t->host, t->ip, t->port);
	setup_params(j);
	j->reused = 0;
	if (!j->fresh_only) {
		struct smtp_client *c = conncache_take(j->r->cache, t->ip, t->port, &j->params, on_txn, on_close, j);
		if (c) {
			j->reused = 1;
			return start_attempt(j, c);
		}
	}
	struct sockaddr_storage ss;
	socklen_t len;
	memset(&ss, 0, sizeof(ss));
	if (t->family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)t->port);
		inet_pton(AF_INET6, t->ip, &s6->sin6_addr);
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)t->port);
		inet_pton(AF_INET, t->ip, &s4->sin_addr);
		len = sizeof(*s4);
	}
	j->connect = smtp_client_connect(j->r->base, (struct sockaddr *)&ss, len,
	    (unsigned)j->rt->cfg.smtp_connect_timeout * 1000, on_connect, j);
}

static void add_target(struct job *j, const char *host, const char *ip, int family, unsigned port)
{
	if (j->ntargets >= JOB_ADDRS_MAX)
		return;
	struct target *t = &j->targets[j->ntargets++];
	snprintf(t->host, sizeof(t->host), "%s", host);
	snprintf(t->ip, sizeof(t->ip), "%s", ip);
	t->family = family;
	t->port = port;
}

/*
 * E3: released mail of a held domain never comes back to us (RFC 1985: a new
 * session to the customer).  Targets that are this server are dropped; with
 * none left the recipients are deferred — they wait for the next ETRN.
 */
static int drop_self(struct job *j)
{
	size_t k = 0, n = j->ntargets;
	for (size_t i = 0; i < n; i++)
		if (!hold_is_self(&j->rt->cfg, j->targets[i].host, j->targets[i].ip, j->targets[i].port))
			j->targets[k++] = j->targets[i];
	j->ntargets = k;
	if (n == 0 || k > 0)
		return 0;
	char text[1024];
	snprintf(text, sizeof(text), "held domain %s: its route points at this server (%s[%s]:%u); give it route= in the "
	    "hold table or a hosts table entry", j->domain, j->targets[0].host, j->targets[0].ip, j->targets[0].port);
	log_warnx("qid=%s event=held_route_loop domain=%s detail=%s", j->qid, lq(j->domain), lq(text));
	snprintf(j->tag, sizeof(j->tag), "%s", j->domain);
	apply_all(j, ROUTE_OUT_CONN, RETRY_NOANSWER, "4.4.6", text);
	return -1;
}

static void targets_ready(struct job *j)
{
	if (j->held && drop_self(j) < 0)
		return advance(j);
	if (j->ntargets == 0) {
		apply_all(j, ROUTE_OUT_NO_ROUTE, RETRY_NOANSWER, "5.4.4", "no address for the route");
		return advance(j);
	}
	j->cur = 0;
	j->plain_retry = 0;
	j->fresh_only = 0;
	try_target(j);
}

static void on_mx(void *arg, const struct mx_result *res)
{
	struct job *j = arg;
	j->waiting = 0;
	if (j->r->closing)
		return;
	const struct route_step *s = &j->plan.step[j->step];
	if (res->status != MX_OK) {
		enum route_outcome oc = res->status == MX_NULLMX ? ROUTE_OUT_NULL_MX :
		    mx_status_permanent(res->status) ? ROUTE_OUT_NO_ROUTE : ROUTE_OUT_CONN;
		char text[300];
		snprintf(text, sizeof(text), "%s: %s", s->kind == ROUTE_MX ? j->domain : s->host, mx_status_text(res->status));
		char enh[16];
		snprintf(enh, sizeof(enh), "%s", mx_status_code(res->status));
		if (j->held && res->status != MX_NULLMX) {
			/* E3: a held domain's route problem is the administrator's to fix: its mail waits (hold_lifetime). */
			oc = ROUTE_OUT_CONN;
			enh[0] = '4';
			if (res->status == MX_SELF)
				snprintf(text, sizeof(text), "held domain %s: its MX is this server; give it route= in the hold "
				    "table or a hosts table entry", j->domain);
		}
		snprintf(j->tag, sizeof(j->tag), "%s", s->kind == ROUTE_MX ? j->domain : s->host);
		apply_all(j, oc, RETRY_NOANSWER, enh, text);
		return advance(j);
	}
	unsigned port = s->kind == ROUTE_MX ? (unsigned)j->rt->cfg.delivery_port : s->port;
	for (size_t h = 0; h < res->nhosts; h++)
		for (size_t a = 0; a < res->hosts[h].naddrs; a++) {
			const struct mx_addr *ad = &res->hosts[h].addrs[a];
			add_target(j, res->hosts[h].name, ad->ip, ad->family, ad->port ? ad->port : port);
		}
	targets_ready(j);
}

static void on_host_a(void *arg, const struct dns_answer *a)
{
	struct job *j = arg;
	j->waiting = 0;
	if (j->r->closing)
		return;
	const struct route_step *s = &j->plan.step[j->step];
	if (a->status != DNS_OK) {
		enum route_outcome oc = a->status == DNS_TEMPFAIL ? ROUTE_OUT_CONN : ROUTE_OUT_NO_ROUTE;
		char text[300];
		snprintf(text, sizeof(text), "%s: host not found", s->host);
		snprintf(j->tag, sizeof(j->tag), "%s", s->host);
		apply_all(j, oc, RETRY_NOANSWER, "4.4.3", text);
		return advance(j);
	}
	for (size_t i = 0; i < a->naddrs; i++)
		add_target(j, s->host, a->addrs[i], AF_INET, s->port);
	targets_ready(j);
}

static void next_step(struct job *j)
{
	if (j->step >= j->plan.n)
		return job_finish(j);
	const struct route_step *s = &j->plan.step[j->step];
	j->ntargets = 0;
	j->cur = 0;
	if (s->kind == ROUTE_MX || s->kind == ROUTE_MX_SMARTHOST) {
		j->waiting = 1;
		mx_resolve_hosts(j->r->mx, s->kind == ROUTE_MX ? j->domain : s->host, &j->rt->hosts, on_mx, j);
		return;
	}
	/* A fixed host: an address, the hosts table, or its A record. */
	unsigned char buf[16];
	const char *h = s->host;
	if (inet_pton(AF_INET, h, buf) == 1) {
		add_target(j, h, h, AF_INET, s->port);
		return targets_ready(j);
	}
	if (inet_pton(AF_INET6, h, buf) == 1) {
		add_target(j, h, h, AF_INET6, s->port);
		return targets_ready(j);
	}
	const struct hosts_entry *e = hosts_lookup(&j->rt->hosts, h);
	if (e) {
		for (size_t i = 0; i < e->naddrs; i++)
			add_target(j, h, e->addrs[i].ip, e->addrs[i].family, e->addrs[i].port ? e->addrs[i].port : s->port);
		return targets_ready(j);
	}
	j->waiting = 1;
	dns_query_ext(j->r->dns, h, 1, on_host_a, j);
}

void remote_deliver(struct remote *r, const char *qid, int fd, off_t off, off_t len, const struct remote_msg *msg,
    const char *domain, struct remote_rcpt *rcpts, size_t n, remote_done_cb cb, void *arg)
{
	struct job *j = xcalloc(1, sizeof(*j));
	j->r = r;
	snprintf(j->qid, sizeof(j->qid), "%s", qid);
	j->fd = fd;
	j->off = off;
	j->len = len;
	j->sender = xstrdup(msg->sender);
	j->dsn_params = msg->dsn_params && msg->dsn_params[0] ? xstrdup(msg->dsn_params) : NULL;
	j->auth_account = xstrdup(msg->auth_account ? msg->auth_account : "");
	j->flags = msg->flags;
	j->domain = xstrdup(domain);
	j->rcpts = rcpts;
	j->n = n;
	j->cb = cb;
	j->arg = arg;
	j->rt = r->rt;
	j->rt->refs++;
	j->next = r->jobs;
	if (r->jobs)
		r->jobs->prev = j;
	r->jobs = j;
	r->njobs++;
	if ((j->held = hold_lookup(&j->rt->hold, domain)) != NULL)
		hold_route_plan(&j->rt->rc, j->held, domain, &j->plan);   /* E3: the customer's host only */
	else if (route_plan(&j->rt->rc, domain, 0, &j->plan) < 0 || j->plan.n == 0) {
		snprintf(j->last_text, sizeof(j->last_text), "routing: %s", j->plan.error ? j->plan.error : "no route");
		j->last_cls = RETRY_NOANSWER;
		snprintf(j->last_enh, sizeof(j->last_enh), "4.3.5");
	}
	j->step = j->plan.error ? j->plan.n : 0;
	next_step(j);
}
