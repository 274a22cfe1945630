/*
 * commands: the command table and the handlers of every command but DATA/BDAT.
 *
 * The table says, per verb, whether HELO/EHLO must come first and whether the
 * command must end a pipelined group (RFC 2920 3.1).  Before a handler runs,
 * commands_dispatch() applies the fixed checklist in Postfix's order: the line
 * reader already enforced length and bare CR/LF; here come the lookup, the
 * pipelining sync check, the hello requirement, then the handler.  Handlers
 * reply exactly once (or hand the session to the queue, which replies later).
 */
#include <ctype.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "local/maildir.h"
#include "local/vhost.h"
#include "queue/qfile.h"
#include "smtp/rcpt_elsewhere.h"
#include "smtp/smtpd.h"
#include "util/log.h"
#include "util/xalloc.h"

typedef void (*cmd_fn)(struct session *s, const char *args);

enum cmd_flags {
	CMD_NEEDS_HELLO = 1,
	CMD_LAST_IN_GROUP = 2,    /* RFC 2920: nothing may follow it before its reply */
	CMD_LAST_IN_GROUP_TLS = 4 /* STARTTLS: what follows is discarded, not refused (cmd_starttls.c) */
};

struct cmd {
	enum smtp_verb verb;
	unsigned flags;
	cmd_fn fn;
};

static void cmd_helo(struct session *s, const char *args);
static void cmd_ehlo(struct session *s, const char *args);
static void cmd_mail(struct session *s, const char *args);
static void cmd_rcpt(struct session *s, const char *args);
static void cmd_rset(struct session *s, const char *args);
static void cmd_noop(struct session *s, const char *args);
static void cmd_quit(struct session *s, const char *args);
static void cmd_vrfy(struct session *s, const char *args);
static void cmd_expn(struct session *s, const char *args);
static void cmd_help(struct session *s, const char *args);
static void cmd_turn(struct session *s, const char *args);
static enum sender_class classify_sender(struct session *s, const struct mailaddr *from);
static int sender_allowed(struct session *s, const struct mailaddr *from, const char *sender, enum sender_class sclass);
void cmd_data(struct session *s, const char *args);
void cmd_bdat(struct session *s, const char *args);

static const struct cmd table[] = {
	{ VERB_HELO, CMD_LAST_IN_GROUP, cmd_helo },
	{ VERB_EHLO, CMD_LAST_IN_GROUP, cmd_ehlo },
	{ VERB_MAIL, CMD_NEEDS_HELLO, cmd_mail },
	{ VERB_RCPT, CMD_NEEDS_HELLO, cmd_rcpt },
	{ VERB_DATA, CMD_NEEDS_HELLO, cmd_data },   /* its sync check happens when 354 is due */
	{ VERB_BDAT, CMD_NEEDS_HELLO, cmd_bdat },
	{ VERB_RSET, 0, cmd_rset },
	{ VERB_NOOP, 0, cmd_noop },
	{ VERB_QUIT, 0, cmd_quit },
	{ VERB_VRFY, 0, cmd_vrfy },
	{ VERB_EXPN, 0, cmd_expn },
	{ VERB_HELP, 0, cmd_help },
	{ VERB_TURN, 0, cmd_turn },
	{ VERB_STARTTLS, CMD_LAST_IN_GROUP_TLS, cmd_starttls },
	{ VERB_AUTH, CMD_NEEDS_HELLO, cmd_auth },
	{ VERB_ETRN, CMD_NEEDS_HELLO, cmd_etrn },   /* cmd_etrn.c */
	{ VERB_ATRN, CMD_NEEDS_HELLO, cmd_atrn },   /* cmd_atrn.c (E6, odmr_listen only) */
};

void commands_dispatch(struct session *s, char *line, size_t len)
{
	struct smtp_command c;
	command_split(line, &c);
	s->counts[c.verb]++;
	const struct cmd *k = NULL;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (table[i].verb == c.verb)
			k = &table[i];
	if (s->blocked && c.verb != VERB_QUIT) {
		/* RFC 5321 3.1: after a 554 greeting only QUIT is served. */
		session_reply(s, 503, "5.5.1", "Error: no valid session, please QUIT");
		return;
	}
	if (!k) {
		session_reply(s, 500, "5.5.2", "Error: command not recognized");
		return;
	}
	if ((k->flags & CMD_LAST_IN_GROUP) && !(k->flags & CMD_LAST_IN_GROUP_TLS) &&
	    evbuffer_get_length(bufferevent_get_input(s->bev)) > 0) {
		log_info("session=%llu event=pipelining_violation client=%s command=%s", (unsigned long long)s->id,
		    s->client_addr, verb_name(c.verb));
		session_reply(s, 554, "5.5.0", "Error: SMTP protocol synchronization");
		session_close_after_reply(s);
		return;
	}
	if (s->sd->stopping && !s->txn && c.verb != VERB_QUIT) {
		/* Shutting down: transactions already open may finish, nothing new starts. */
		session_reply(s, 421, "4.3.2", "%s Service shutting down", s->hostname);
		return;
	}
	if (s->odmr && c.verb != VERB_EHLO && c.verb != VERB_HELO && c.verb != VERB_AUTH && c.verb != VERB_STARTTLS &&
	    c.verb != VERB_ATRN && c.verb != VERB_QUIT && c.verb != VERB_RSET && c.verb != VERB_NOOP &&
	    c.verb != VERB_HELP) {
		/* RFC 2645 4: the ODMR port serves AUTH and ATRN, not mail submission or relay. */
		session_reply(s, 502, "5.5.1", "Error: only AUTH and ATRN are served on the ODMR port");
		return;
	}
	if ((k->flags & CMD_NEEDS_HELLO) && !s->helo) {
		session_reply(s, 503, "5.5.1", "Error: send HELO/EHLO first");
		return;
	}
	k->fn(s, c.args);
}

static void hello(struct session *s, const char *args, int esmtp)
{
	char name[256];
	struct smtp_err err;
	if (cmd_parse_helo(args, name, sizeof(name), &err) < 0) {
		session_reply(s, err.code, err.enh, "%s", err.text);
		return;
	}
	session_txn_free(s);
	free(s->helo);
	s->helo = xstrdup(name);
	s->esmtp = esmtp;
	const struct config *cfg = s->sd->cfg;
	if (!esmtp) {
		session_reply(s, 250, NULL, "%s", s->hostname);
		return;
	}
	struct buf r;
	buf_init(&r, 4096);
	if (s->odmr) {
		/* RFC 2645 4.2.2: the ODMR port offers AUTH and ATRN (STARTTLS first unless auth_plaintext). */
		buf_appendf(&r, "%s\n", s->hostname);
		if (s->sd->tls && !s->tls)
			buf_puts(&r, "STARTTLS\n");
		if (auth_offered(s)) {
			buf_puts(&r, "AUTH");
			for (enum sasl_mech m = SASL_PLAIN; m <= SASL_CRAM_MD5; m++)
				if (cfg->auth_methods & (1u << m))
					buf_appendf(&r, " %s", sasl_mech_name(m));
			buf_puts(&r, "\n");
		}
		buf_puts(&r, "ATRN\nENHANCEDSTATUSCODES");
		session_reply_lines(s, 250, NULL, buf_cstr(&r));
		buf_free(&r);
		return;
	}
	buf_appendf(&r, "%s\nPIPELINING\n", s->hostname);
	if (cfg->max_message_size > 0)
		buf_appendf(&r, "SIZE %ld\n", cfg->max_message_size);
	else
		buf_puts(&r, "SIZE\n");
	if (cfg->vrfy_expn)
		buf_puts(&r, "VRFY\n");
	if (s->sd->tls && !s->tls)
		buf_puts(&r, "STARTTLS\n");
	if (auth_offered(s)) {
		buf_puts(&r, "AUTH");
		for (enum sasl_mech m = SASL_PLAIN; m <= SASL_CRAM_MD5; m++)
			if (cfg->auth_methods & (1u << m))
				buf_appendf(&r, " %s", sasl_mech_name(m));
		buf_puts(&r, "\n");
	}
	buf_puts(&r, "ETRN\nENHANCEDSTATUSCODES\n8BITMIME\nDSN\nSMTPUTF8\nCHUNKING");
	session_reply_lines(s, 250, NULL, buf_cstr(&r));
	buf_free(&r);
}

static void cmd_helo(struct session *s, const char *args) { hello(s, args, 0); }
static void cmd_ehlo(struct session *s, const char *args) { hello(s, args, 1); }

static void cmd_mail(struct session *s, const char *args)
{
	struct mailaddr from;
	struct mail_params mp;
	struct smtp_err err;
	if (s->txn) {
		session_reply(s, 503, "5.5.1", "Error: nested MAIL command");
		return;
	}
	if (cmd_parse_mail(args, 0, &from, &mp, &err) < 0) {
		session_reply(s, err.code, err.enh, "%s", err.text);
		return;
	}
	if (mp.body == BODY_BINARYMIME) {
		session_reply(s, 555, "5.5.4", "Unsupported option: BODY=BINARYMIME");
		return;
	}
	long max = s->sd->cfg->max_message_size;
	if (max > 0 && mp.has_size && mp.size > (uint64_t)max) {
		session_reply(s, 552, "5.3.4", "Message size exceeds fixed limit");
		return;
	}
	char sender[ADDR_TEXT_MAX];
	addr_format(&from, sender, sizeof(sender));
	enum sender_class sclass = classify_sender(s, &from);
	if (!sender_allowed(s, &from, sender, sclass))
		return;
	struct txn *t = xcalloc(1, sizeof(*t));
	t->sclass = sclass;
	t->from = from;
	t->mp = mp;
	t->qfd = -1;
	buf_init(&t->wbuf, 1 << 20);
	s->txn = t;
	session_reply(s, 250, "2.1.0", "Ok");
}

static enum sender_class classify_sender(struct session *s, const struct mailaddr *from)
{
	if (from->is_null || from->domain[0] == '\0')
		return SENDER_EXTERNAL;
	const struct domain *d = domains_find(&s->sd->tables->domains, from->domain);
	if (!d)
		return SENDER_EXTERNAL;
	return accounts_find(&s->sd->tables->accounts, from->local, d->name) ? SENDER_LOCAL_ACCOUNT :
	    SENDER_LOCAL_NO_ACCOUNT;
}

/*
 * Is addr the authenticated user?  A host alias names the same domain (L1), so
 * demo@mail.example.test is the user who logged in as demo@example.test.
 */
int session_is_auth_user(const struct session *s, const char *addr)
{
	if (!s->auth_id)
		return 0;
	if (strcasecmp(addr, s->auth_id) == 0)
		return 1;
	const struct account *a = local_account(s->sd->tables, addr);
	char canon[ADDR_TEXT_MAX];
	if (!a || snprintf(canon, sizeof(canon), "%s@%s", a->name, a->domain) >= (int)sizeof(canon))
		return 0;
	return strcasecmp(canon, s->auth_id) == 0;
}

/*
 * R3 at MAIL time: the submission listener and the security levels decide whether
 * this client must authenticate first; an authenticated user's sender is checked
 * against the sender-trust mode.  Replies itself and returns 0 when refusing.
 */
static int sender_allowed(struct session *s, const struct mailaddr *from, const char *sender, enum sender_class sclass)
{
	const struct config *c = s->sd->cfg;
	if (s->auth_id) {
		if (c->sender_trust != TRUST_AUTH_ID && !session_is_auth_user(s, sender)) {
			log_info("session=%llu event=reject reason=sender_not_owned client=%s from=<%s> user=%s",
			    (unsigned long long)s->id, s->client_addr, lq(sender), lq(s->auth_id));
			session_reply(s, 553, "5.7.1", "<%s>: Sender address rejected: not owned by user %s", sender, s->auth_id);
			return 0;
		}
		return 1;
	}
	int demand = s->submission;
	if (!demand && c->auth_methods != 0) {
		const struct relay_rule *r = relay_match(s->sd->relay, s->client_addr, from->is_null ? "" : sender,
		    from->is_null);
		int waived = r && r->action == RELAY_NORELAY2;
		if (!waived && c->security_level == 2)
			demand = 1;
		if (!waived && c->security_level == 3 && sclass == SENDER_LOCAL_ACCOUNT) {
			const struct account *a = local_account(s->sd->tables, sender);
			demand = a && a->smtp_auth;
		}
	}
	if (!demand)
		return 1;
	log_info("session=%llu event=reject reason=auth_required client=%s from=<%s> level=%d submission=%d",
	    (unsigned long long)s->id, s->client_addr, lq(sender), c->security_level, s->submission);
	if (!auth_offered(s) && c->auth_methods != 0 && s->sd->tls)
		session_reply(s, 530, "5.7.0", "Must issue a STARTTLS command first");
	else
		session_reply(s, 530, "5.7.0", "Authentication required");
	return 0;
}

/* RCPT-time quota (R5): 552 5.2.2 when the mailbox is full or the declared size would overflow it. */
static int over_quota(struct session *s, const struct resolved *r)
{
	const struct local_tables *tb = s->sd->tables;
	long limit = local_quota(s->sd->cfg, tb, r->account);
	long max_msgs = r->domain ? r->domain->max_messages : 0;
	if (limit <= 0 && max_msgs <= 0)
		return 0;
	char path[4096];
	if (mailbox_path_expand(s->sd->cfg->mailbox_path, r->account, path, sizeof(path)) < 0)
		return 0;
	long long bytes = 0, msgs = 0;
	if (maildir_quota_usage(path, limit, max_msgs, &bytes, &msgs) < 0)
		return 0;
	uint64_t incoming = s->txn->mp.has_size ? s->txn->mp.size : 0;
	if (limit > 0 && (bytes >= limit || (uint64_t)bytes + incoming > (uint64_t)limit))
		return 1;
	if (max_msgs > 0 && msgs >= max_msgs)
		return 1;
	return 0;
}

void smtpd_add_rcpt(struct txn *t, const char *orig, const struct resolved *r, const struct rcpt_params *rp,
    int forward_all)
{
	/* Local destinations are canonical; a remote local part may be case-sensitive (RFC 5321 2.4). */
	for (size_t i = 0; i < t->nrcpt; i++)
		if (!strcmp(t->rcpt[i].dest, r->dest))
			return;
	if (t->nrcpt == t->cap_rcpt) {
		t->cap_rcpt = t->cap_rcpt ? t->cap_rcpt * 2 : 4;
		t->rcpt = xreallocarray(t->rcpt, t->cap_rcpt, sizeof(*t->rcpt));
	}
	/* L1: the message may be as large as the most generous recipient domain allows (0 = no domain limit). */
	long lim = r->domain ? r->domain->max_message_size : 0;
	if (t->nrcpt == 0 || lim == 0 || (t->domain_size_limit != 0 && lim > t->domain_size_limit))
		t->domain_size_limit = lim;
	struct txn_rcpt *x = &t->rcpt[t->nrcpt++];
	x->orig = xstrdup(orig);
	x->dest = xstrdup(r->dest);
	x->present = xstrdup(r->present);
	/* forward_all (seed 003): our own domains' mail is not stored here but sent to the gateway. */
	x->state = r->account && !forward_all ? RCPT_LOCAL : RCPT_REMOTE;
	/* Every address an alias expands to carries the sender's DSN request (RFC 3461 6.2.7). */
	x->notify = rp->notify;
	x->orcpt = xstrdup(rp->orcpt);
}

static void cmd_rcpt(struct session *s, const char *args)
{
	struct mailaddr to;
	struct rcpt_params rp;
	struct smtp_err err;
	char text[ADDR_TEXT_MAX];
	if (!s->txn) {
		session_reply(s, 503, "5.5.1", "Error: need MAIL command");
		return;
	}
	if (s->txn->rcpt_attempts >= (unsigned)s->sd->cfg->max_recipients) {
		session_reply(s, 452, "4.5.3", "Error: too many recipients");
		return;
	}
	s->txn->rcpt_attempts++;
	unsigned flags = s->txn->mp.smtputf8 ? ADDR_ALLOW_UTF8 : 0;
	if (cmd_parse_rcpt(args, flags, &to, &rp, &err) < 0) {
		session_reply(s, err.code, err.enh, "%s", err.text);
		return;
	}
	addr_format(&to, text, sizeof(text));
	const struct domain_table *domains = &s->sd->tables->domains;
	const struct domain *vd = to.domain[0] ? NULL : vhost_default_domain(domains, s->local_addr);
	if (vd) /* a bare <Postmaster>: the postmaster of the virtual host the client reached (L1) */
		snprintf(to.domain, sizeof(to.domain), "%s", vd->name);
	struct resolved res[ALIAS_MAX_RESULTS];
	size_t n = 0;
	const char *why = NULL;
	enum resolve_result rr = local_resolve(s->sd->tables, &to, res, ALIAS_MAX_RESULTS, &n, &why);
	if (rr == RESOLVE_ERROR) {
		log_warnx("session=%llu event=alias_error to=%s why=%s", (unsigned long long)s->id, lq(text), lq(why));
		session_reply(s, 451, "4.3.0", "<%s>: Error: alias expansion failed", text);
		return;
	}
	/* L1: a domain bound to other local addresses (ip=) is not local on this one: only relay clients pass. */
	int bound_elsewhere = rr != RESOLVE_NOT_LOCAL && !vhost_domain_served(domains, to.domain, s->local_addr);
	/* E1/E2/E7: a relay domain, or a user on a peer server, is a destination we serve (rcpt_elsewhere.c). */
	int elsewhere = !bound_elsewhere && (rr == RESOLVE_NOT_LOCAL || rr == RESOLVE_UNKNOWN_USER) &&
	    rcpt_elsewhere(s, &to, rr);
	int unknown = rr == RESOLVE_UNKNOWN_USER && !elsewhere;
	/* R4: the relay rules decide every recipient (tables I-V of the manual). */
	char from[ADDR_TEXT_MAX];
	addr_format(&s->txn->from, from, sizeof(from));
	struct relay_query q = {
		.client_ip = s->client_addr,
		.sender = from,
		.sender_null = s->txn->from.is_null,
		.sclass = s->txn->sclass,
		.rclass = bound_elsewhere ? RCPT_CLASS_EXTERNAL : rr == RESOLVE_OK || elsewhere ? RCPT_CLASS_LOCAL_ACCOUNT :
		    rr == RESOLVE_UNKNOWN_USER ? RCPT_CLASS_LOCAL_NO_ACCOUNT :
		    /* E3: a held domain is ours to accept, like our own mailboxes (docs/etrn.md) */
		    hold_lookup(&s->sd->tables->hold, to.domain) ? RCPT_CLASS_LOCAL_ACCOUNT : RCPT_CLASS_EXTERNAL,
		.authenticated = s->auth_id != NULL,
	};
	struct relay_decision d;
	relay_decide(s->sd->relay, &q, &d);
	if (!d.allow || unknown) {
		int not_here = bound_elsewhere && !d.allow;
		log_info("session=%llu event=reject reason=%s client=%s from=<%s> to=<%s> table=%s rule=%d auth=%s",
		    (unsigned long long)s->id, not_here ? "not_served_here" : unknown ? "unknown_user" :
		    "relay", s->client_addr, lq(from), lq(text), d.table, d.rule ? d.rule->line : 0,
		    s->auth_id ? lq(s->auth_id) : "-");
		if (not_here)
			session_reply(s, 550, "5.7.1", "<%s>: Recipient address rejected: domain not served on this address",
			    text);
		else if (unknown)
			session_reply(s, 550, "5.1.1", "<%s>: Recipient address rejected: User unknown", text);
		else if (rr == RESOLVE_NOT_LOCAL)
			session_reply(s, 550, "5.7.1", "<%s>: Relaying denied", text);
		else
			session_reply(s, 550, "5.7.1", "<%s>: Access denied", text);
		return;
	}
	if (elsewhere) {
		rcpt_elsewhere_accept(s, &to, text, &rp);
		return;
	}
	if (rr == RESOLVE_NOT_LOCAL) {
		/* Relaying allowed: the address goes to the delivery engine as it is. */
		n = 1;
		memset(&res[0], 0, sizeof(res[0]));
		snprintf(res[0].dest, sizeof(res[0].dest), "%s", text);
		snprintf(res[0].present, sizeof(res[0].present), "%s", text);
		log_info("session=%llu event=relay client=%s from=<%s> to=<%s> table=%s rule=%d auth=%s",
		    (unsigned long long)s->id, s->client_addr, lq(from), lq(text), d.table, d.rule ? d.rule->line : 0,
		    s->auth_id ? lq(s->auth_id) : "-");
	}
	for (size_t i = 0; i < n; i++)
		if (res[i].domain && res[i].domain->max_message_size > 0 && s->txn->mp.has_size &&
		    s->txn->mp.size > (uint64_t)res[i].domain->max_message_size) {
			session_reply(s, 552, "5.3.4", "<%s>: Message size exceeds fixed limit", text);
			return;
		}
	for (size_t i = 0; i < n; i++)
		if (res[i].account && over_quota(s, &res[i])) {
			log_info("session=%llu event=reject reason=quota client=%s to=%s", (unsigned long long)s->id,
			    s->client_addr, lq(text));
			session_reply(s, 552, "5.2.2", "<%s>: Mailbox full", text);
			return;
		}
	for (size_t i = 0; i < n; i++)
		smtpd_add_rcpt(s->txn, text, &res[i], &rp, s->sd->cfg->forward_all);
	session_reply(s, 250, "2.1.5", "Ok");
}

static void cmd_rset(struct session *s, const char *args)
{
	session_txn_free(s);
	session_reply(s, 250, "2.0.0", "Ok");
}

static void cmd_noop(struct session *s, const char *args) { session_reply(s, 250, "2.0.0", "Ok"); }

static void cmd_quit(struct session *s, const char *args)
{
	session_reply(s, 221, "2.0.0", "Bye");
	session_close_after_reply(s);
}

static int lookup_arg(struct session *s, const char *args, struct mailaddr *a)
{
	const char *why;
	size_t used;
	while (*args == ' ')
		args++;
	if (*args == '<')
		return addr_parse_path(args, strlen(args), ADDR_ALLOW_UTF8, a, &used, &why);
	if (strchr(args, '@'))
		return addr_parse(args, ADDR_ALLOW_UTF8, a, &why);
	/* A bare user name: a user of the virtual host on this local address (L1, vhost.h). */
	const struct domain *d = vhost_default_domain(&s->sd->tables->domains, s->local_addr);
	if (*args == '\0' || d == NULL || strlen(args) >= sizeof(a->local))
		return -1;
	memset(a, 0, sizeof(*a));
	snprintf(a->local, sizeof(a->local), "%s", args);
	snprintf(a->domain, sizeof(a->domain), "%s", d->name);
	return 0;
}

static void vrfy_expn(struct session *s, const char *args, int expand)
{
	struct mailaddr a;
	char text[ADDR_TEXT_MAX];
	if (!s->sd->cfg->vrfy_expn) {
		session_reply(s, 252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery");
		return;
	}
	if (lookup_arg(s, args, &a) < 0) {
		session_reply(s, 501, "5.5.4", "Syntax: %s address", expand ? "EXPN" : "VRFY");
		return;
	}
	addr_format(&a, text, sizeof(text));
	if (!vhost_domain_served(&s->sd->tables->domains, a.domain, s->local_addr)) {
		session_reply(s, 550, "5.7.1", "<%s>: Recipient address rejected: domain not served on this address", text);
		return;
	}
	struct resolved res[ALIAS_MAX_RESULTS];
	size_t n = 0;
	const char *why;
	switch (local_resolve(s->sd->tables, &a, res, ALIAS_MAX_RESULTS, &n, &why)) {
	case RESOLVE_NOT_LOCAL:
		session_reply(s, 550, "5.7.1", "<%s>: Relaying denied", text);
		return;
	case RESOLVE_UNKNOWN_USER:
	case RESOLVE_ERROR:
		session_reply(s, 550, "5.1.1", "<%s>: User unknown", text);
		return;
	case RESOLVE_OK:
		break;
	}
	if (!expand) {
		session_reply(s, 250, "2.1.5", "<%s>", text);
		return;
	}
	struct buf r;
	buf_init(&r, 64 * 1024);
	for (size_t i = 0; i < n; i++)
		buf_appendf(&r, "<%s>\n", res[i].dest);
	session_reply_lines(s, 250, "2.1.5", buf_cstr(&r));
	buf_free(&r);
}

static void cmd_vrfy(struct session *s, const char *args) { vrfy_expn(s, args, 0); }
static void cmd_expn(struct session *s, const char *args) { vrfy_expn(s, args, 1); }

static void cmd_help(struct session *s, const char *args)
{
	session_reply(s, 214, "2.0.0", "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY EXPN HELP ETRN");
}

static void cmd_turn(struct session *s, const char *args)
{
	/*
	 * R2: TURN (RFC 821) would hand the mail waiting for whatever domain the
	 * client claims to this very connection, with nothing to check the claim:
	 * refused, always (RFC 1985 section 1, RFC 2645 section 1, seed 001).  ETRN
	 * releases held mail safely: to the customer's own host, on a new connection.
	 */
	session_reply(s, 502, "5.7.0", "Error: TURN is not supported: it would hand mail to an unverified client; use ETRN");
}
