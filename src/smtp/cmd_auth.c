/*
 * cmd_auth: SMTP AUTH (RFC 4954) on top of the sasl state machine.
 *
 * Offered only under TLS unless auth_plaintext is set.  A failure is answered
 * after auth_failure_delay seconds (the session waits, reading nothing), counted
 * per session (auth_max_failures, then 421) and per client address
 * (auth_max_failures_per_ip within auth_failure_window, then 454 without even
 * checking): password guessing gets slow and then stops.
 */
#include <event2/event.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "local/vhost.h"
#include "smtp/smtpd.h"
#include "util/log.h"
#include "util/xalloc.h"

int auth_offered(const struct session *s)
{
	const struct config *c = s->sd->cfg;
	return c->auth_methods != 0 && (s->tls || c->auth_plaintext);
}

static struct auth_failures *ip_slot(struct smtpd *sd, const char *ip, int create)
{
	struct auth_failures *oldest = &sd->auth_fail[0];
	long long now = (long long)time(NULL);
	for (size_t i = 0; i < AUTH_FAILURE_SLOTS; i++) {
		struct auth_failures *f = &sd->auth_fail[i];
		if (f->ip[0] && !strcmp(f->ip, ip)) {
			if (now - f->since > sd->cfg->auth_failure_window) {
				f->count = 0;
				f->since = now;
			}
			return f;
		}
		if (f->since < oldest->since)
			oldest = f;
	}
	if (!create)
		return NULL;
	snprintf(oldest->ip, sizeof(oldest->ip), "%s", ip);
	oldest->count = 0;
	oldest->since = now;
	return oldest;
}

static const struct account *lookup(void *ctx, const char *authcid)
{
	struct session *s = ctx;
	const struct local_tables *t = s->sd->tables;
	if (strchr(authcid, '@'))
		return local_account(t, authcid);
	/*
	 * L1 (seed 004): a bare user name is a user of the virtual host the client
	 * connected to — the domain bound to this local address, else the first
	 * domain without ip=.  Users of other domains log in as user@domain.
	 */
	const struct domain *d = vhost_default_domain(&t->domains, s->local_addr);
	return d ? accounts_find(&t->accounts, authcid, d->name) : NULL;
}

static void delayed_failure(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;
	s->state = SS_COMMAND;
	session_reply(s, 535, "5.7.8", "Error: authentication failed");
	if (s->auth_close) {
		session_reply(s, 421, "4.7.0", "%s Error: too many authentication failures", s->hostname);
		return;
	}
	session_resume(s);
}

static void failed(struct session *s)
{
	struct smtpd *sd = s->sd;
	struct auth_failures *f = ip_slot(sd, s->client_addr, 1);
	f->count++;
	s->auth_failures++;
	log_info("session=%llu event=auth_failed client=%s method=%s user=%s failures=%u ip_failures=%u",
	    (unsigned long long)s->id, s->client_addr, sasl_mech_name(s->sasl.mech),
	    lq(s->sasl.user[0] ? s->sasl.user : "-"), s->auth_failures, f->count);
	s->auth_close = s->auth_failures >= (unsigned)sd->cfg->auth_max_failures;
	memset(&s->sasl, 0, sizeof(s->sasl));
	if (!s->auth_timer)
		s->auth_timer = evtimer_new(sd->base, delayed_failure, s);
	struct timeval tv = { sd->cfg->auth_failure_delay, 0 };
	s->state = SS_WAIT;
	evtimer_add(s->auth_timer, &tv);
}

static void step_result(struct session *s, enum sasl_step st, struct buf *out)
{
	switch (st) {
	case SASL_CONTINUE:
		s->state = SS_AUTH;
		session_reply(s, 334, NULL, "%s", buf_cstr(out));
		return;
	case SASL_SUCCESS:
		s->state = SS_COMMAND;
		s->auth_id = xstrdup(s->sasl.authcid);
		log_info("session=%llu event=auth client=%s method=%s user=%s", (unsigned long long)s->id, s->client_addr,
		    sasl_mech_name(s->sasl.mech), lq(s->auth_id));
		memset(&s->sasl, 0, sizeof(s->sasl));
		session_reply(s, 235, "2.7.0", "Authentication successful");
		return;
	case SASL_FAIL:
		failed(s);
		return;
	case SASL_MALFORMED:
		s->state = SS_COMMAND;
		memset(&s->sasl, 0, sizeof(s->sasl));
		session_reply(s, 501, "5.5.2", "Error: cannot decode response");
		return;
	case SASL_CANCELLED:
		s->state = SS_COMMAND;
		memset(&s->sasl, 0, sizeof(s->sasl));
		session_reply(s, 501, "5.7.0", "Error: authentication cancelled");
		return;
	}
}

void cmd_auth(struct session *s, const char *args)
{
	struct smtpd *sd = s->sd;
	const struct config *c = sd->cfg;
	if (c->auth_methods == 0 || !s->esmtp) {
		session_reply(s, 503, "5.5.1", "Error: authentication not enabled");
		return;
	}
	if (s->auth_id) {
		session_reply(s, 503, "5.5.1", "Error: already authenticated");
		return;
	}
	if (s->txn) {
		session_reply(s, 503, "5.5.1", "Error: MAIL transaction in progress");
		return;
	}
	if (!auth_offered(s)) {
		session_reply(s, 538, "5.7.11", "Encryption required for requested authentication mechanism");
		return;
	}
	struct auth_failures *f = ip_slot(sd, s->client_addr, 0);
	if (f && f->count >= (unsigned)c->auth_max_failures_per_ip) {
		log_info("session=%llu event=auth_throttled client=%s ip_failures=%u", (unsigned long long)s->id,
		    s->client_addr, f->count);
		session_reply(s, 454, "4.7.0", "Temporary authentication failure: too many failures from your address");
		return;
	}
	char mech[32];
	const char *sp = strchr(args, ' ');
	size_t n = sp ? (size_t)(sp - args) : strlen(args);
	if (n == 0 || n >= sizeof(mech)) {
		session_reply(s, 501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
		return;
	}
	memcpy(mech, args, n);
	mech[n] = '\0';
	enum sasl_mech m = sasl_mech_by_name(mech);
	if (m == SASL_NONE || !(c->auth_methods & (1u << m))) {
		session_reply(s, 504, "5.5.4", "Unrecognized authentication type");
		return;
	}
	const char *initial = sp ? sp + 1 : NULL;
	struct buf out;
	buf_init(&out, 4096);
	memset(&s->sasl, 0, sizeof(s->sasl));
	enum sasl_step st = sasl_start(&s->sasl, m, initial, s->hostname, lookup, s, sd->secrets, &out);
	step_result(s, st, &out);
	buf_free(&out);
}

void auth_continue(struct session *s, const char *line)
{
	struct buf out;
	buf_init(&out, 4096);
	enum sasl_step st = sasl_step(&s->sasl, line, lookup, s, s->sd->secrets, &out);
	step_result(s, st, &out);
	buf_free(&out);
}
