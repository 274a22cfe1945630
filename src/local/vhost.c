/* vhost: local domains by local address, and the -n cross checks for them (see vhost.h). */
#include "local/vhost.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "local/maildir.h"
#include "util/xalloc.h"

int vhost_serves(const struct domain *d, const char *local_addr)
{
	char norm[INET6_ADDRSTRLEN];

	if (d->nips == 0)
		return 1;
	if (domain_addr_normalize(local_addr, norm, sizeof(norm)) < 0)
		return 0;
	for (size_t i = 0; i < d->nips; i++)
		if (strcmp(d->ips[i], norm) == 0)
			return 1;
	return 0;
}

int vhost_domain_served(const struct domain_table *t, const char *name, const char *local_addr)
{
	const struct domain *d = domains_find(t, name);
	return d == NULL || vhost_serves(d, local_addr);
}

const struct domain *vhost_default_domain(const struct domain_table *t, const char *local_addr)
{
	const struct domain *shared = NULL;

	for (size_t i = 0; i < t->n; i++) {
		const struct domain *d = &t->v[i];
		if (d->nips == 0) {
			if (!shared)
				shared = d;
		} else if (vhost_serves(d, local_addr)) {
			return d;
		}
	}
	return shared;
}

const char *vhost_hostname(const struct domain_table *t, const char *local_addr, const char *fallback)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct domain *d = &t->v[i];
		if (d->hostname && d->nips && vhost_serves(d, local_addr))
			return d->hostname;
	}
	return fallback;
}

/* Does a listener of the configuration accept connections to addr (normalized)? */
static int listened(const struct config *c, const char *addr)
{
	char norm[INET6_ADDRSTRLEN];
	int v6 = strchr(addr, ':') != NULL;

	for (int sub = 0; sub < 2; sub++) {
		const struct listen_addr *l = sub ? c->submission_listen : c->listen;
		size_t n = sub ? c->nsubmission_listen : c->nlisten;
		for (size_t i = 0; i < n; i++) {
			if (strcmp(l[i].host, "*") == 0) {
				/* Every address of the families ip_mode binds. */
				if ((v6 && c->ip_mode != IP_MODE_V4) || (!v6 && c->ip_mode != IP_MODE_V6))
					return 1;
				continue;
			}
			if (domain_addr_normalize(l[i].host, norm, sizeof(norm)) == 0 && strcmp(norm, addr) == 0)
				return 1;
		}
	}
	return 0;
}

static int hidden(const struct config *c, const char *addr)
{
	char norm[INET6_ADDRSTRLEN];

	for (size_t i = 0; i < c->hidden_ips.n; i++)
		if (domain_addr_normalize(c->hidden_ips.v[i], norm, sizeof(norm)) == 0 && strcmp(norm, addr) == 0)
			return 1;
	return 0;
}

struct mailbox_of {
	char *path;
	const struct account *a;
};

static int by_path(const void *x, const void *y)
{
	const struct mailbox_of *a = x, *b = y;
	int r = strcmp(a->path, b->path);
	return r ? r : (a->a->line > b->a->line) - (a->a->line < b->a->line);
}

/*
 * Two accounts whose mailbox_path gives one Maildir would read each other's
 * mail: what seed 004 warns of when virtual hosts share one top directory.
 * Typical cause: mailbox_path without %DOMAIN%, and demo@ in two domains.
 */
static int shared_maildirs(const struct config *c, const struct account_table *t, const char *ap, struct buf *errors)
{
	struct mailbox_of *m = xcalloc(t->n + 1, sizeof(*m));
	size_t k = 0;
	int n = 0;
	char path[4096];

	for (size_t i = 0; i < t->n; i++)
		if (mailbox_path_expand(c->mailbox_path, &t->v[i], path, sizeof(path)) == 0) {
			m[k].path = xstrdup(path);
			m[k++].a = &t->v[i];
		}
	qsort(m, k, sizeof(*m), by_path);
	for (size_t i = 1; i < k; i++)
		if (strcmp(m[i].path, m[i - 1].path) == 0) {
			buf_appendf(errors, "%s:%d: %s@%s would share the Maildir %s with %s@%s (line %d): put %%DOMAIN%% in "
			    "mailbox_path\n", ap, m[i].a->line, m[i].a->name, m[i].a->domain, m[i].path, m[i - 1].a->name,
			    m[i - 1].a->domain, m[i - 1].a->line);
			n++;
		}
	for (size_t i = 0; i < k; i++)
		free(m[i].path);
	free(m);
	return n;
}

int vhost_check(const struct config *c, const struct local_tables *t, struct buf *errors)
{
	int n = 0;
	char *dp = config_path(c, c->domains_file);
	char *ap = config_path(c, c->accounts_file);
	char *lp = config_path(c, c->aliases_file);

	for (size_t i = 0; i < t->domains.n; i++) {
		const struct domain *d = &t->domains.v[i];
		for (size_t j = 0; j < d->nips; j++) {
			if (hidden(c, d->ips[j])) {
				buf_appendf(errors, "%s:%d: ip=%s of %s is in hidden_ips: that address never answers\n", dp,
				    d->line, d->ips[j], d->name);
				n++;
			} else if (!listened(c, d->ips[j])) {
				buf_appendf(errors, "%s:%d: ip=%s of %s: no listen or submission_listen entry binds it\n", dp,
				    d->line, d->ips[j], d->name);
				n++;
			}
		}
	}
	for (size_t i = 0; i < t->aliases.n; i++) {
		const struct alias *a = &t->aliases.v[i];
		const char *at = strrchr(a->pattern, '@');
		const struct domain *d = at ? domains_find(&t->domains, at + 1) : NULL;
		if (d && strcasecmp(d->name, at + 1) != 0) {
			buf_appendf(errors, "%s:%d: %s is a host alias of %s: write the alias as %.*s@%s\n", lp, a->line,
			    at + 1, d->name, (int)(at - a->pattern), a->pattern, d->name);
			n++;
		}
	}
	for (size_t i = 0; i < t->accounts.n; i++) {
		const struct account *a = &t->accounts.v[i];
		const struct domain *d = domains_find(&t->domains, a->domain);
		if (d == NULL) {
			buf_appendf(errors, "%s:%d: account %s: domain %s is not in the domains table\n", ap, a->line, a->name,
			    a->domain);
			n++;
		} else if (strcasecmp(d->name, a->domain) != 0) {
			buf_appendf(errors, "%s:%d: account %s: %s is a host alias of %s: write the domain as %s\n", ap,
			    a->line, a->name, a->domain, d->name, d->name);
			n++;
		}
	}
	n += shared_maildirs(c, &t->accounts, ap, errors);
	free(dp);
	free(ap);
	free(lp);
	return n;
}
