/*
 * etrn_job: IPC_D_ETRN in, IPC_D_ETRN_RESULT out (see etrn_job.h).
 *
 * A job: parse the request, find addresses (literal, hosts table, DNS A, then
 * AAAA), run the session, answer.  A request that cannot even be parsed is
 * dropped with a log line (the queue manager's retry timer covers it); one
 * whose server has no address is answered like any failed session.
 */
#include "deliver/etrn_job.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/etrn_client.h"
#include "deliver/hosts.h"
#include "dns/dns.h"
#include "tls/tls_client.h"
#include "util/log.h"
#include "util/xalloc.h"

struct job {
	struct job *next, *prev;
	struct etrn_jobs *owner;
	uint32_t id;
	struct ipc_channel *ch;
	char server[ETRN_HOST_MAX + 16];
	struct etrn_session_params p;
	char host[ETRN_HOST_MAX];
	char helo[256];
	int port_given;
	char **args;
	size_t nargs;
	struct dns *dns;
	int aaaa_asked;
	int dying;                /* being freed: dns_free() calls back with a failure, ignored */
	struct etrn_session *session;
	SSL_CTX *ssl_ctx;
};

struct etrn_jobs {
	struct event_base *base;
	struct job *jobs;
};

struct etrn_jobs *etrn_jobs_new(struct event_base *base)
{
	struct etrn_jobs *j = xcalloc(1, sizeof(*j));
	j->base = base;
	return j;
}

static void job_free(struct job *jb)
{
	struct etrn_jobs *o = jb->owner;
	if (jb->prev)
		jb->prev->next = jb->next;
	else
		o->jobs = jb->next;
	if (jb->next)
		jb->next->prev = jb->prev;
	jb->dying = 1;
	if (jb->session)
		etrn_session_free(jb->session);
	if (jb->dns)
		dns_free(jb->dns);
	if (jb->ssl_ctx)
		tls_client_context_free(jb->ssl_ctx);
	for (size_t i = 0; i < jb->nargs; i++)
		free(jb->args[i]);
	free(jb->args);
	free(jb);
}

void etrn_jobs_free(struct etrn_jobs *j)
{
	if (!j)
		return;
	while (j->jobs)
		job_free(j->jobs);
	free(j);
}

/* The answer to the queue manager; r NULL: a failure before any session (why says which). */
static void answer(struct job *jb, const struct etrn_session_result *r, int permanent, const char *why)
{
	struct buf p;
	buf_init(&p, IPC_MAX_MESSAGE);
	ipc_put_u32(&p, jb->id);
	ipc_put_u32(&p, r ? (uint32_t)r->ran : 0);
	ipc_put_u32(&p, r ? (uint32_t)r->permanent : (uint32_t)permanent);
	ipc_put_str(&p, r ? r->detail : why);
	ipc_put_str(&p, r ? r->peer : jb->server);
	ipc_put_u32(&p, r ? (uint32_t)r->offered : 0);
	ipc_put_u32(&p, r ? (uint32_t)r->tls : 0);
	ipc_put_u32(&p, (uint32_t)jb->nargs);
	for (size_t i = 0; i < jb->nargs; i++) {
		ipc_put_u32(&p, r ? (uint32_t)r->answers[i].code : 0);
		ipc_put_str(&p, r ? r->answers[i].text : "");
	}
	ipc_send(jb->ch, IPC_D_ETRN_RESULT, &p, -1);
	buf_free(&p);
}

static void on_session(void *arg, const struct etrn_session_result *r)
{
	struct job *jb = arg;
	jb->session = NULL; /* it frees itself after this callback */
	answer(jb, r, 0, NULL);
	job_free(jb);
}

static void run_session(struct job *jb)
{
	if (jb->p.tls != ETRN_TLS_NONE) {
		struct buf errors;
		buf_init(&errors, 4096);
		jb->ssl_ctx = tls_client_context(NULL, &errors);
		if (!jb->ssl_ctx)
			log_warnx("event=etrn_tls_unavailable errors=%s", lq(buf_cstr(&errors)));
		buf_free(&errors);
		jb->p.ssl_ctx = jb->ssl_ctx;
	}
	jb->session = etrn_session_start(jb->owner->base, &jb->p, jb->args, jb->nargs, on_session, jb);
}

static int add_addr(struct job *jb, int family, const char *ip, unsigned short port)
{
	if (jb->p.naddrs >= ETRN_ADDRS_MAX)
		return -1;
	struct etrn_target *t = &jb->p.addrs[jb->p.naddrs];
	memset(t, 0, sizeof(*t));
	unsigned use = jb->port_given || port == 0 ? jb->p.port : port;
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&t->sa;
		if (inet_pton(AF_INET, ip, &sin->sin_addr) != 1)
			return -1;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((unsigned short)use);
		t->salen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&t->sa;
		if (inet_pton(AF_INET6, ip, &sin6->sin6_addr) != 1)
			return -1;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((unsigned short)use);
		t->salen = sizeof(*sin6);
	}
	snprintf(t->ip, sizeof(t->ip), "%s", ip);
	if (!jb->port_given && port)
		jb->p.port = port; /* the hosts table named the port: use it in logs too */
	jb->p.naddrs++;
	return 0;
}

static void on_dns(void *arg, const struct dns_answer *a)
{
	struct job *jb = arg;
	if (jb->dying)
		return;
	if (a->status == DNS_OK) {
		for (size_t i = 0; i < a->naddrs; i++)
			add_addr(jb, AF_INET, a->addrs[i], 0);
		for (size_t i = 0; i < a->naddrs6; i++)
			add_addr(jb, AF_INET6, a->addrs6[i], 0);
	}
	if (jb->p.naddrs == 0 && !jb->aaaa_asked && (a->status == DNS_OK || a->status == DNS_NODATA)) {
		jb->aaaa_asked = 1;
		dns_query_ext(jb->dns, jb->host, 28, on_dns, jb);
		return;
	}
	/* We are inside the resolver's callback: it is freed when the job is (dns_free defers itself). */
	if (jb->p.naddrs == 0) {
		answer(jb, NULL, a->status == DNS_NXDOMAIN,
		    a->status == DNS_NXDOMAIN ? "the server's name does not exist (DNS)" :
		    a->status == DNS_TEMPFAIL ? "DNS lookup of the server failed" : "the server's name has no address");
		job_free(jb);
		return;
	}
	run_session(jb);
}

void etrn_jobs_request(struct etrn_jobs *j, const struct config *cfg, struct ipc_msg *m, struct ipc_channel *ch)
{
	struct job *jb = xcalloc(1, sizeof(*jb));
	jb->owner = j;
	jb->ch = ch;
	jb->id = ipc_get_u32(m);
	snprintf(jb->server, sizeof(jb->server), "%s", ipc_get_str(m));
	uint32_t tls = ipc_get_u32(m);
	uint32_t n = ipc_get_u32(m);
	if (n > 1000)
		m->bad = 1;
	jb->args = xcalloc(n && !m->bad ? n : 1, sizeof(char *));
	int bad_arg = 0;
	for (uint32_t i = 0; i < n && !m->bad; i++) {
		const char *a = ipc_get_str(m);
		if (etrn_arg_check(a, NULL, 0) < 0)
			bad_arg = 1;
		jb->args[jb->nargs++] = xstrdup(a);
	}
	if (ipc_end(m) < 0 || bad_arg || tls > ETRN_TLS_MANDATORY) {
		log_warnx("event=etrn_bad_request id=%u", jb->id);
		jb->owner = NULL;
		for (size_t i = 0; i < jb->nargs; i++)
			free(jb->args[i]);
		free(jb->args);
		free(jb);
		return;
	}
	jb->next = j->jobs;
	if (j->jobs)
		j->jobs->prev = jb;
	j->jobs = jb;

	snprintf(jb->helo, sizeof(jb->helo), "%s", cfg->hostname);
	jb->p.helo = jb->helo;
	jb->p.host = jb->host;
	jb->p.tls = (enum etrn_tls)tls;
	jb->p.connect_ms = (unsigned)cfg->smtp_connect_timeout * 1000;
	jb->p.reply_ms = (unsigned)cfg->smtp_timeout * 1000;
	char why[128];
	unsigned port;
	if (etrn_server_parse(jb->server, jb->host, sizeof(jb->host), &port, &jb->port_given, why, sizeof(why)) < 0) {
		answer(jb, NULL, 1, why);
		job_free(jb);
		return;
	}
	jb->p.port = port;
	/* An address as written; then the hosts table (it overrides DNS, as for mail); then DNS. */
	unsigned char tmp[sizeof(struct in6_addr)];
	if (inet_pton(AF_INET, jb->host, tmp) == 1 || inet_pton(AF_INET6, jb->host, tmp) == 1) {
		add_addr(jb, strchr(jb->host, ':') ? AF_INET6 : AF_INET, jb->host, 0);
		run_session(jb);
		return;
	}
	struct hosts_table ht = { NULL, 0 };
	struct buf errors;
	buf_init(&errors, 4096);
	char *hp = config_path(cfg, cfg->hosts_file);
	if (hosts_load(&ht, hp, &errors) != 0)
		log_warnx("event=etrn_hosts_unreadable errors=%s", lq(buf_cstr(&errors)));
	free(hp);
	buf_free(&errors);
	const struct hosts_entry *he = hosts_lookup(&ht, jb->host);
	if (he)
		for (size_t i = 0; i < he->naddrs; i++)
			add_addr(jb, he->addrs[i].family, he->addrs[i].ip, he->addrs[i].port);
	hosts_free(&ht);
	if (jb->p.naddrs > 0) {
		run_session(jb);
		return;
	}
	jb->dns = dns_new(j->base, cfg->dns_servers.v, cfg->dns_servers.n, (int)cfg->dns_timeout * 1000);
	if (!jb->dns) {
		answer(jb, NULL, 0, "cannot start the resolver");
		job_free(jb);
		return;
	}
	dns_query(jb->dns, jb->host, 1, on_dns, jb);
}
