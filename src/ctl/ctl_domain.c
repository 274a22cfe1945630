/*
 * ctl_domain: `tsubamectl domain add|set|del|list` (L1, O2).
 * Names and limits are checked here before domains_add/domains_update see them,
 * so the administrator gets a reason, not just "failed".  set changes a domain in
 * place (the manual's "change domain") without touching its accounts.  list
 * prints one line per domain in the table file's key=value form plus the number
 * of accounts.
 */
#include "ctl/ctl.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctl/ctl_tables.h"
#include "local/accounts.h"
#include "local/domains.h"
#include "util/xalloc.h"

#define MAX_HOST_ALIASES 64

static const char USAGE_ADD[] = "domain add NAME [-a HOSTALIAS]... [--max-accounts N] [--mailbox-limit BYTES] "
				"[--max-messages N] [--max-message-size BYTES] [--ip ADDR[,ADDR...]] [--hostname NAME]";
static const char USAGE_SET[] = "domain set NAME [-a HOSTALIAS]... [-d HOSTALIAS]... [--max-accounts N] "
				"[--mailbox-limit BYTES] [--max-messages N] [--max-message-size BYTES] "
				"[--ip ADDR[,ADDR...]|--ip ''] [--hostname NAME|--hostname '']";
static const char USAGE_DEL[] = "domain del NAME [-f]";
static const char USAGE_LIST[] = "domain list";
static const char USAGE_ALL[] = "domain add|set|del|list ...";

/* What the command line asks for; NULL / -1 = not given (set keeps the current value). */
struct domain_opts {
	char *add_aliases[MAX_HOST_ALIASES];
	size_t nadd;
	char *del_aliases[MAX_HOST_ALIASES];
	size_t ndel;
	long max_accounts, mailbox_limit, max_messages, max_message_size;
	const char *ip;
	const char *hostname;
};

/* Parse the options shared by add and set; 0, or the exit status after a message. */
static int parse_opts(int argc, char **argv, int set, const char *usage, struct domain_opts *o)
{
	enum { O_MAX_ACCOUNTS = 256, O_MAILBOX_LIMIT, O_MAX_MESSAGES, O_MAX_MESSAGE_SIZE, O_IP, O_HOSTNAME };
	static const struct option longopts[] = {
		{ "alias", required_argument, NULL, 'a' },
		{ "del-alias", required_argument, NULL, 'd' },
		{ "max-accounts", required_argument, NULL, O_MAX_ACCOUNTS },
		{ "mailbox-limit", required_argument, NULL, O_MAILBOX_LIMIT },
		{ "max-messages", required_argument, NULL, O_MAX_MESSAGES },
		{ "max-message-size", required_argument, NULL, O_MAX_MESSAGE_SIZE },
		{ "ip", required_argument, NULL, O_IP },
		{ "hostname", required_argument, NULL, O_HOSTNAME },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	memset(o, 0, sizeof(*o));
	o->max_accounts = o->mailbox_limit = o->max_messages = o->max_message_size = -1;
	ctl_reset_getopt();
	while ((opt = getopt_long(argc, argv, set ? "a:d:" : "a:", longopts, NULL)) != -1) {
		long *num = NULL;
		int size = 0;
		switch (opt) {
		case 'a':
			if (o->nadd == MAX_HOST_ALIASES)
				return ctl_fail("at most %d host aliases", MAX_HOST_ALIASES);
			o->add_aliases[o->nadd++] = optarg;
			continue;
		case 'd':
			if (!set)
				return ctl_usage(usage);
			if (o->ndel == MAX_HOST_ALIASES)
				return ctl_fail("at most %d host aliases", MAX_HOST_ALIASES);
			o->del_aliases[o->ndel++] = optarg;
			continue;
		case O_IP:
			if (!set && optarg[0] == '\0')
				return ctl_usage(usage);
			o->ip = optarg;
			continue;
		case O_HOSTNAME:
			if (!set && optarg[0] == '\0')
				return ctl_usage(usage);
			o->hostname = optarg;
			continue;
		case O_MAX_ACCOUNTS: num = &o->max_accounts; break;
		case O_MAILBOX_LIMIT: num = &o->mailbox_limit; size = 1; break;
		case O_MAX_MESSAGES: num = &o->max_messages; break;
		case O_MAX_MESSAGE_SIZE: num = &o->max_message_size; size = 1; break;
		default: return ctl_usage(usage);
		}
		if (domain_parse_number(optarg, size, num) < 0) {
			ctl_fail("bad number \"%s\" (a non-negative integer%s)", optarg, size ? ", k/m/g allowed" : "");
			return ctl_usage(usage);
		}
	}
	if (argc - optind != 1)
		return ctl_usage(usage);
	for (size_t i = 0; i < o->nadd; i++) {
		if (!domain_name_valid(o->add_aliases[i]))
			return ctl_fail("invalid host alias \"%s\"", o->add_aliases[i]);
		if (strcasecmp(o->add_aliases[i], argv[optind]) == 0)
			return ctl_fail("host alias \"%s\" is the domain itself", o->add_aliases[i]);
		for (size_t j = 0; j < i; j++)
			if (strcasecmp(o->add_aliases[i], o->add_aliases[j]) == 0)
				return ctl_fail("host alias \"%s\" given twice", o->add_aliases[i]);
	}
	if (o->hostname && o->hostname[0] && !domain_name_valid(o->hostname))
		return ctl_fail("invalid hostname \"%s\"", o->hostname);
	return 0;
}

/*
 * Apply the options to d (a copy of the current entry, or a new one): numbers and
 * ip/hostname replace, aliases are added and removed.  The arrays d points to are
 * owned by the caller's scratch space (aliases[], the parsed ips in *ipd).
 */
static int apply_opts(const struct domain_opts *o, struct domain *d, char **aliases, struct domain *ipd)
{
	if (o->max_accounts >= 0)
		d->max_accounts = o->max_accounts;
	if (o->mailbox_limit >= 0)
		d->mailbox_limit = o->mailbox_limit;
	if (o->max_messages >= 0)
		d->max_messages = o->max_messages;
	if (o->max_message_size >= 0)
		d->max_message_size = o->max_message_size;
	size_t n = 0;
	for (size_t i = 0; i < d->naliases; i++) {
		int drop = 0;
		for (size_t j = 0; j < o->ndel; j++)
			drop |= strcasecmp(d->aliases[i], o->del_aliases[j]) == 0;
		if (!drop)
			aliases[n++] = d->aliases[i];
	}
	for (size_t j = 0; j < o->ndel; j++) {
		int found = 0;
		for (size_t i = 0; i < d->naliases; i++)
			found |= strcasecmp(d->aliases[i], o->del_aliases[j]) == 0;
		if (!found)
			return ctl_fail("%s is not a host alias of %s", o->del_aliases[j], d->name);
	}
	for (size_t i = 0; i < o->nadd; i++) {
		for (size_t j = 0; j < n; j++)
			if (strcasecmp(aliases[j], o->add_aliases[i]) == 0)
				return ctl_fail("%s is already a host alias of %s", o->add_aliases[i], d->name);
		if (n == MAX_HOST_ALIASES)
			return ctl_fail("at most %d host aliases", MAX_HOST_ALIASES);
		aliases[n++] = o->add_aliases[i];
	}
	d->aliases = aliases;
	d->naliases = n;
	if (o->ip) {
		char why[160];
		d->ips = NULL;
		d->nips = 0;
		if (o->ip[0] && domain_parse_ips(ipd, o->ip, why, sizeof(why)) < 0)
			return ctl_fail("%s", why);
		d->ips = ipd->ips;
		d->nips = ipd->nips;
	}
	if (o->hostname)
		d->hostname = o->hostname[0] ? (char *)o->hostname : NULL;
	if (d->hostname && d->nips == 0)
		return ctl_fail("--hostname needs --ip: it is the greeting on the domain's own addresses");
	return 0;
}

/* Explain why domains_add/domains_update would refuse d; 1 after a message, 0 when nothing clashes. */
static int explain_clash(const struct domain_table *t, const struct domain *d, int is_new)
{
	const struct domain *old;
	if (is_new && (old = domains_find(t, d->name)) != NULL) {
		if (strcasecmp(old->name, d->name) == 0)
			ctl_fail("domain %s exists", old->name);
		else
			ctl_fail("%s is a host alias of %s", d->name, old->name);
		return 1;
	}
	for (size_t i = 0; i < d->naliases; i++) {
		old = domains_find(t, d->aliases[i]);
		if (old && strcasecmp(old->name, d->name) != 0) {
			ctl_fail("host alias %s already belongs to %s", d->aliases[i], old->name);
			return 1;
		}
	}
	if ((old = domains_hostname_clash(t, d)) != NULL) {
		ctl_fail("hostname %s: %s shares an address with it and greets as %s", d->hostname, old->name, old->hostname);
		return 1;
	}
	return 0;
}

static int domain_add(struct ctl *c, int argc, char **argv)
{
	struct domain_opts o;
	char *aliases[MAX_HOST_ALIASES];
	struct domain ipd = { 0 }, d = { 0 };
	int rc = parse_opts(argc, argv, 0, USAGE_ADD, &o);

	if (rc)
		return rc;
	d.name = argv[optind];
	if (!domain_name_valid(d.name))
		return ctl_fail("invalid domain name \"%s\"", d.name);
	if (apply_opts(&o, &d, aliases, &ipd)) {
		domain_free(&ipd);
		return 1;
	}
	struct ctl_tables t;
	if (ctl_tables_open(c, &t, CTL_WRITE) < 0) {
		domain_free(&ipd);
		return 1;
	}
	rc = 1;
	if (explain_clash(&t.domains, &d, 1))
		goto out;
	if (domains_add(&t.domains, &d) < 0) {
		ctl_fail("cannot add domain %s", d.name);
		goto out;
	}
	if (ctl_save_domains(&t) < 0)
		goto out;
	printf("added domain %s\n", t.domains.v[t.domains.n - 1].name);
	rc = 0;
out:
	domain_free(&ipd);
	return ctl_tables_done(c, &t, rc);
}

/* domain set: change a domain's settings in place (the manual's "ドメイン変更"), accounts untouched. */
static int domain_set(struct ctl *c, int argc, char **argv)
{
	struct domain_opts o;
	char *aliases[MAX_HOST_ALIASES];
	struct domain ipd = { 0 };
	int rc = parse_opts(argc, argv, 1, USAGE_SET, &o);

	if (rc)
		return rc;
	const char *name = argv[optind];
	struct ctl_tables t;
	if (ctl_tables_open(c, &t, CTL_WRITE) < 0)
		return 1;
	rc = 1;
	const struct domain *cur = domains_find(&t.domains, name);
	if (cur == NULL) {
		ctl_fail("no such domain: %s", name);
		goto out;
	}
	if (strcasecmp(cur->name, name) != 0) {
		ctl_fail("%s is a host alias of %s, not a domain", name, cur->name);
		goto out;
	}
	struct domain d = *cur;
	if (apply_opts(&o, &d, aliases, &ipd) || explain_clash(&t.domains, &d, 0))
		goto out;
	if (domains_update(&t.domains, &d) < 0) {
		ctl_fail("cannot change domain %s", name);
		goto out;
	}
	if (ctl_save_domains(&t) < 0)
		goto out;
	cur = domains_find(&t.domains, name);
	size_t n = accounts_count_in_domain(&t.accounts, cur->name);
	printf("changed domain %s\n", cur->name);
	if (cur->max_accounts > 0 && n > (size_t)cur->max_accounts)
		printf("note: %s has %zu accounts, more than max_accounts=%ld: no new ones can be added\n", cur->name, n,
		    cur->max_accounts);
	rc = 0;
out:
	domain_free(&ipd);
	return ctl_tables_done(c, &t, rc);
}

static int domain_del(struct ctl *c, int argc, char **argv)
{
	int force = 0, opt;

	ctl_reset_getopt();
	while ((opt = getopt(argc, argv, "f")) != -1) {
		if (opt != 'f')
			return ctl_usage(USAGE_DEL);
		force = 1;
	}
	if (argc - optind != 1)
		return ctl_usage(USAGE_DEL);
	const char *name = argv[optind];

	struct ctl_tables t;
	if (ctl_tables_open(c, &t, CTL_WRITE) < 0)
		return 1;
	int rc = 1;
	const struct domain *d = domains_find(&t.domains, name);
	if (d == NULL) {
		ctl_fail("no such domain: %s", name);
		goto out;
	}
	if (strcasecmp(d->name, name) != 0) {
		ctl_fail("%s is a host alias of %s, not a domain", name, d->name);
		goto out;
	}
	char *canon = xstrdup(d->name);
	size_t n = accounts_count_in_domain(&t.accounts, canon);
	if (n > 0 && !force) {
		ctl_fail("domain %s has %zu account%s: delete them first, or use -f to delete them with it", canon, n,
		    n == 1 ? "" : "s");
		free(canon);
		goto out;
	}
	if (n > 0) {
		/* Accounts first: a crash in between leaves a domain without accounts, never the reverse. */
		for (size_t i = t.accounts.n; i-- > 0;) {
			if (strcmp(t.accounts.v[i].domain, canon) != 0)
				continue;
			char *local = xstrdup(t.accounts.v[i].name);
			accounts_remove(&t.accounts, local, canon);
			free(local);
		}
		if (ctl_save_accounts(&t) < 0) {
			free(canon);
			goto out;
		}
	}
	domains_remove(&t.domains, canon);
	if (ctl_save_domains(&t) == 0) {
		printf("deleted domain %s", canon);
		if (n > 0)
			printf(" and its %zu account%s (mailboxes were left in place)", n, n == 1 ? "" : "s");
		printf("\n");
		rc = 0;
	}
	free(canon);
out:
	return ctl_tables_done(c, &t, rc);
}

static int domain_list(struct ctl *c, int argc, char **argv)
{
	if (argc != 1)
		return ctl_usage(USAGE_LIST);
	struct ctl_tables t;
	if (ctl_tables_open(c, &t, CTL_READ) < 0)
		return 1;
	for (size_t i = 0; i < t.domains.n; i++) {
		const struct domain *d = &t.domains.v[i];
		printf("%s aliases=", d->name);
		for (size_t j = 0; j < d->naliases; j++)
			printf("%s%s", j ? "," : "", d->aliases[j]);
		printf(" max_accounts=%ld mailbox_limit=%ld max_messages=%ld max_message_size=%ld", d->max_accounts,
		    d->mailbox_limit, d->max_messages, d->max_message_size);
		for (size_t j = 0; j < d->nips; j++)
			printf("%s%s", j ? "," : " ip=", d->ips[j]);
		if (d->hostname)
			printf(" hostname=%s", d->hostname);
		printf(" accounts=%zu\n", accounts_count_in_domain(&t.accounts, d->name));
	}
	ctl_tables_close(&t);
	return 0;
}

int ctl_domain(struct ctl *c, int argc, char **argv)
{
	static const struct ctl_cmd cmds[] = {
		{ "add", domain_add }, { "set", domain_set }, { "del", domain_del }, { "list", domain_list },
	};

	return ctl_dispatch(c, "domain", cmds, sizeof(cmds) / sizeof(cmds[0]), USAGE_ALL, argc, argv);
}
