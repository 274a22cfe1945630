/*
 * ctl_domain: `tsubamectl domain add|del|list` (L1, O2).
 * Names and limits are checked here before domains_add sees them, so the
 * administrator gets a reason, not just "failed".  list prints one line per
 * domain in the table file's key=value form plus the number of accounts.
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
				"[--max-messages N] [--max-message-size BYTES]";
static const char USAGE_DEL[] = "domain del NAME [-f]";
static const char USAGE_LIST[] = "domain list";
static const char USAGE_ALL[] = "domain add|del|list ...";

static int domain_add(struct ctl *c, int argc, char **argv)
{
	enum { O_MAX_ACCOUNTS = 256, O_MAILBOX_LIMIT, O_MAX_MESSAGES, O_MAX_MESSAGE_SIZE };
	static const struct option longopts[] = {
		{ "alias", required_argument, NULL, 'a' },
		{ "max-accounts", required_argument, NULL, O_MAX_ACCOUNTS },
		{ "mailbox-limit", required_argument, NULL, O_MAILBOX_LIMIT },
		{ "max-messages", required_argument, NULL, O_MAX_MESSAGES },
		{ "max-message-size", required_argument, NULL, O_MAX_MESSAGE_SIZE },
		{ NULL, 0, NULL, 0 },
	};
	char *aliases[MAX_HOST_ALIASES];
	struct domain d = { .aliases = aliases };
	int opt;

	ctl_reset_getopt();
	while ((opt = getopt_long(argc, argv, "a:", longopts, NULL)) != -1) {
		long *num = NULL;
		int size = 0;
		switch (opt) {
		case 'a':
			if (d.naliases == MAX_HOST_ALIASES)
				return ctl_fail("at most %d host aliases", MAX_HOST_ALIASES);
			aliases[d.naliases++] = optarg;
			continue;
		case O_MAX_ACCOUNTS: num = &d.max_accounts; break;
		case O_MAILBOX_LIMIT: num = &d.mailbox_limit; size = 1; break;
		case O_MAX_MESSAGES: num = &d.max_messages; break;
		case O_MAX_MESSAGE_SIZE: num = &d.max_message_size; size = 1; break;
		default: return ctl_usage(USAGE_ADD);
		}
		if (domain_parse_number(optarg, size, num) < 0) {
			ctl_fail("bad number \"%s\" (a non-negative integer%s)", optarg, size ? ", k/m/g allowed" : "");
			return ctl_usage(USAGE_ADD);
		}
	}
	if (argc - optind != 1)
		return ctl_usage(USAGE_ADD);
	d.name = argv[optind];
	if (!domain_name_valid(d.name))
		return ctl_fail("invalid domain name \"%s\"", d.name);
	for (size_t i = 0; i < d.naliases; i++) {
		if (!domain_name_valid(aliases[i]))
			return ctl_fail("invalid host alias \"%s\"", aliases[i]);
		if (strcasecmp(aliases[i], d.name) == 0)
			return ctl_fail("host alias \"%s\" is the domain itself", aliases[i]);
		for (size_t j = 0; j < i; j++)
			if (strcasecmp(aliases[i], aliases[j]) == 0)
				return ctl_fail("host alias \"%s\" given twice", aliases[i]);
	}

	struct ctl_tables t;
	if (ctl_tables_open(c, &t, CTL_WRITE) < 0)
		return 1;
	int rc = 1;
	const struct domain *old = domains_find(&t.domains, d.name);
	if (old) {
		if (strcasecmp(old->name, d.name) == 0)
			ctl_fail("domain %s exists", old->name);
		else
			ctl_fail("%s is a host alias of %s", d.name, old->name);
		goto out;
	}
	for (size_t i = 0; i < d.naliases; i++) {
		if ((old = domains_find(&t.domains, aliases[i])) != NULL) {
			ctl_fail("host alias %s already belongs to %s", aliases[i], old->name);
			goto out;
		}
	}
	if (domains_add(&t.domains, &d) < 0) {
		ctl_fail("cannot add domain %s", d.name);
		goto out;
	}
	if (ctl_save_domains(&t) < 0)
		goto out;
	printf("added domain %s\n", t.domains.v[t.domains.n - 1].name);
	rc = 0;
out:
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
		printf(" max_accounts=%ld mailbox_limit=%ld max_messages=%ld max_message_size=%ld accounts=%zu\n",
		    d->max_accounts, d->mailbox_limit, d->max_messages, d->max_message_size,
		    accounts_count_in_domain(&t.accounts, d->name));
	}
	ctl_tables_close(&t);
	return 0;
}

int ctl_domain(struct ctl *c, int argc, char **argv)
{
	static const struct ctl_cmd cmds[] = {
		{ "add", domain_add }, { "del", domain_del }, { "list", domain_list },
	};

	return ctl_dispatch(c, "domain", cmds, sizeof(cmds) / sizeof(cmds[0]), USAGE_ALL, argc, argv);
}
