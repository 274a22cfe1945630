/*
 * ctl_relay: `tsubamectl relay check|block` (R4, O2).
 *
 * check answers what smtpd would answer for one recipient, so it must see what
 * smtpd sees: the same table files, loaded the same way (any error makes the
 * daemon refuse to load them, so it makes check fail too), the same sender and
 * recipient classification (relay_sender_class, local_resolve), and the sender in
 * the formatted form smtpd matches rules against.  Trusts the administrator's
 * arguments no more than a client's: the IP and addresses are parsed and checked.
 */
#include "ctl/ctl_relay.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl_tables.h"
#include "local/peers.h"
#include "local/relaydomains.h"
#include "local/resolve.h"
#include "policy/relay.h"
#include "smtp/address.h"
#include "util/xalloc.h"

static const char USAGE_CHECK[] = "relay check IP SENDER RECIPIENT [--auth]   (SENDER \"\" or \"<>\" = the null sender)";
static const char USAGE_BLOCK[] = "relay block IP";
static const char USAGE_ALL[] = "relay check IP SENDER RECIPIENT [--auth] | relay block IP";

static const char *const SENDER_CLASS_NAMES[] = { "local with account", "local without account", "external" };
static const char *const RCPT_CLASS_NAMES[] = { "local with account", "local without account", "external" };

/* "<a@b>" -> "a@b" into out; -1 when it does not fit. */
static int strip_brackets(const char *s, char *out, size_t sz)
{
	size_t n = strlen(s);
	if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
		s++;
		n -= 2;
	}
	if (n >= sz)
		return -1;
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

static int ip_valid(const char *ip)
{
	unsigned char a[16];
	return inet_pton(AF_INET, ip, a) == 1 || inet_pton(AF_INET6, ip, a) == 1;
}

/* Print every problem the loaders found; returns n. */
static int report_errors(struct buf *errors, int n)
{
	if (n)
		fputs(buf_cstr(errors), stderr);
	return n;
}

static int relay_check(struct ctl *c, int argc, char **argv)
{
	const char *args[3];
	int nargs = 0, auth = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--auth") == 0)
			auth = 1;
		else if (nargs < 3)
			args[nargs++] = argv[i];
		else
			return ctl_usage(USAGE_CHECK);
	}
	if (nargs != 3)
		return ctl_usage(USAGE_CHECK);
	const char *ip = args[0];
	if (!ip_valid(ip)) {
		ctl_fail("invalid IP address \"%s\"", ip);
		return 2;
	}

	/* The sender, parsed as MAIL FROM would be; a bare name is kept so #nodomain can be tried. */
	struct mailaddr from;
	char text[ADDR_TEXT_MAX], sender[ADDR_TEXT_MAX];
	const char *why = NULL;
	memset(&from, 0, sizeof(from));
	if (strip_brackets(args[1], text, sizeof(text)) < 0) {
		ctl_fail("sender too long");
		return 2;
	}
	if (text[0] == '\0') {
		from.is_null = 1;
		sender[0] = '\0';
	} else if (strchr(text, '@')) {
		if (addr_parse(text, ADDR_ALLOW_UTF8, &from, &why) < 0) {
			ctl_fail("invalid sender \"%s\": %s", args[1], why);
			return 2;
		}
		addr_format(&from, sender, sizeof(sender));
	} else {
		if (strlen(text) >= sizeof(from.local)) {
			ctl_fail("sender too long");
			return 2;
		}
		memcpy(from.local, text, strlen(text) + 1); /* length checked above */
		snprintf(sender, sizeof(sender), "%s", text);
	}

	struct mailaddr to;
	char rcpt[ADDR_TEXT_MAX];
	if (strip_brackets(args[2], text, sizeof(text)) < 0 ||
	    addr_parse(text, ADDR_ALLOW_UTF8 | ADDR_ALLOW_POSTMASTER, &to, &why) < 0 || to.is_null) {
		ctl_fail("invalid recipient \"%s\": %s", args[2], why ? why : "too long or empty");
		return 2;
	}
	addr_format(&to, rcpt, sizeof(rcpt));

	struct local_tables t;
	struct relay_rules r;
	struct relay_domain_table rdt;
	struct peer_table pt;
	struct buf errors;
	char *path = config_path(&c->cfg, c->cfg.relay_rules_file);
	char *rdp = config_path(&c->cfg, c->cfg.relay_domains_file);
	char *pp = config_path(&c->cfg, c->cfg.peers_file);
	buf_init(&errors, 1 << 20);
	int n = local_tables_load(&t, &c->cfg, &errors);
	n += relay_load(&r, path, &errors);
	n += relaydomains_load(&rdt, rdp, c->cfg.config_dir, 0, &errors);
	n += peers_load(&pt, pp, &errors);
	free(path);
	free(rdp);
	free(pp);
	if (report_errors(&errors, n)) {
		ctl_fail("%d error%s in the tables: the daemon would not load them", n, n == 1 ? "" : "s");
		local_tables_free(&t);
		relay_free(&r);
		relaydomains_free(&rdt);
		peers_free(&pt);
		buf_free(&errors);
		return 1;
	}
	buf_free(&errors);

	struct resolved *res = xcalloc(ALIAS_MAX_RESULTS, sizeof(*res));
	size_t nres = 0;
	enum resolve_result rr = local_resolve(&t, &to, res, ALIAS_MAX_RESULTS, &nres, &why);
	free(res);
	int rc = 1;
	if (rr == RESOLVE_ERROR) {
		/* smtpd answers 451 before the relay rules are asked. */
		printf("reject: alias expansion failed (%s): the daemon answers 451 4.3.0\n", why ? why : "?");
		goto out;
	}
	/* E1/E7 as smtpd sees them (rcpt_elsewhere.c): a relay domain, or a local domain with peers. */
	const struct relay_domain *rd = rr == RESOLVE_NOT_LOCAL && !to.domain_is_literal ?
	    relaydomains_find(&rdt, to.domain) : NULL;
	const struct domain *ld = rr == RESOLVE_UNKNOWN_USER ? domains_find(&t.domains, to.domain) : NULL;
	const struct peer_entry *pe = ld ? peers_find(&pt, ld->name) : NULL;
	if (pe && peers_is_peer(pe, ip))
		pe = NULL;   /* the loop guard: a peer's own sessions get no lookups */
	struct relay_query q = {
		.client_ip = ip,
		.sender = sender,
		.sender_null = from.is_null,
		.sclass = relay_sender_class(&t, &from),
		.rclass = rr == RESOLVE_OK || rd || pe ? RCPT_CLASS_LOCAL_ACCOUNT :
		    rr == RESOLVE_UNKNOWN_USER ? RCPT_CLASS_LOCAL_NO_ACCOUNT : RCPT_CLASS_EXTERNAL,
		.authenticated = auth,
	};
	struct relay_decision d;
	relay_decide(&r, &q, &d);
	if (d.allow)
		printf("accept\n");
	else
		printf("reject: %s\n", d.reason);
	printf("table: %s\n", d.table);
	if (d.rule)
		printf("rule: %s:%d: %s %s\n", c->cfg.relay_rules_file, d.rule->line, d.rule->text,
		    relay_action_name(d.rule->action));
	else
		printf("rule: built-in default (table I)\n");
	printf("client: %s\n", ip);
	printf("sender: <%s> (%s)\n", sender, SENDER_CLASS_NAMES[q.sclass]);
	printf("recipient: <%s> (%s)\n", rcpt, RCPT_CLASS_NAMES[q.rclass]);
	if (rd)
		printf("relay domain: %s%s, verify=%s (the address itself is checked at RCPT time)\n",
		    rd->subdomains ? "." : "", rd->name, relay_verify_name(rd->verify));
	if (pe)
		printf("peers: %s has peers: accepted only if a peer has the user (asked at RCPT time)\n", pe->domain);
	printf("authenticated: %s\n", auth ? "yes" : "no");
	if (d.auth_waived)
		printf("auth waived: yes (norelay,2: the security level does not demand AUTH from this client)\n");
	rc = d.allow ? 0 : 1;
out:
	local_tables_free(&t);
	relay_free(&r);
	relaydomains_free(&rdt);
	peers_free(&pt);
	return rc;
}

static int relay_block(struct ctl *c, int argc, char **argv)
{
	if (argc != 2)
		return ctl_usage(USAGE_BLOCK);
	const char *ip = argv[1];
	char *path = config_path(&c->cfg, c->cfg.relay_rules_file);
	int rc = 1;
	if (relay_block_ip(path, ip) < 0) {
		if (errno == EINVAL)
			ctl_fail("invalid IP address or network \"%s\"", ip);
		else
			ctl_fail("cannot update %s: %s", path, strerror(errno));
		goto out;
	}
	printf("blocked %s (first rule of %s)\n", ip, path);
	/* The new line is in, but a file with other errors is still refused by the daemon: say so. */
	struct relay_rules r;
	struct buf errors;
	buf_init(&errors, 1 << 20);
	int n = relay_load(&r, path, &errors);
	if (n) {
		fputs(buf_cstr(&errors), stderr);
		fprintf(stderr, "tsubamectl: warning: %s has %d error%s: the daemon keeps its old rules until they are fixed\n",
		    path, n, n == 1 ? "" : "s");
	}
	relay_free(&r);
	buf_free(&errors);
	rc = 0;
	ctl_reload(c);
out:
	free(path);
	return rc;
}

int ctl_relay(struct ctl *c, int argc, char **argv)
{
	static const struct ctl_cmd cmds[] = {
		{ "check", relay_check }, { "block", relay_block },
	};

	return ctl_dispatch(c, "relay", cmds, sizeof(cmds) / sizeof(cmds[0]), USAGE_ALL, argc, argv);
}
