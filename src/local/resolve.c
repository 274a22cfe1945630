/* resolve: envelope recipient -> local accounts / remote destinations (see resolve.h). */
#include "local/resolve.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "util/xalloc.h"

int local_tables_load(struct local_tables *t, const struct config *c, struct buf *errors)
{
	memset(t, 0, sizeof(*t));
	char *dp = config_path(c, c->domains_file);
	char *ap = config_path(c, c->accounts_file);
	char *lp = config_path(c, c->aliases_file);
	int n = domains_load(&t->domains, dp, errors);
	n += accounts_load(&t->accounts, ap, errors);
	n += aliases_load(&t->aliases, lp, errors);
	char *hp = config_path(c, c->hold_file);
	n += hold_load(&t->hold, hp, c->etrn_clients.v, c->etrn_clients.n, errors);
	free(hp);
	free(dp);
	free(ap);
	free(lp);
	return n;
}

void local_tables_free(struct local_tables *t)
{
	domains_free(&t->domains);
	accounts_free(&t->accounts);
	aliases_free(&t->aliases);
	hold_free(&t->hold);
}

static int split(const char *addr, char *local, size_t lsz, char *domain, size_t dsz)
{
	const char *at = strrchr(addr, '@');
	if (!at || (size_t)(at - addr) >= lsz || strlen(at + 1) >= dsz)
		return -1;
	memcpy(local, addr, (size_t)(at - addr));
	local[at - addr] = '\0';
	snprintf(domain, dsz, "%s", at + 1);
	return 0;
}

static int exists_cb(void *ctx, const char *local, const char *domain)
{
	const struct local_tables *t = ctx;
	return accounts_find(&t->accounts, local, domain) != NULL;
}

const struct account *local_account(const struct local_tables *t, const char *addr)
{
	char local[256], domain[256];
	if (split(addr, local, sizeof(local), domain, sizeof(domain)) < 0)
		return NULL;
	const struct domain *d = domains_find(&t->domains, domain);
	if (!d)
		return NULL;
	return accounts_find(&t->accounts, local, d->name);
}

/* Fill one destination; RESOLVE_OK, or UNKNOWN_USER for a local domain without the account. */
static enum resolve_result classify(const struct local_tables *t, const char *dest, const char *present,
    struct resolved *r)
{
	char local[256], domain[256];
	if (split(dest, local, sizeof(local), domain, sizeof(domain)) < 0)
		return RESOLVE_UNKNOWN_USER;
	const struct domain *d = domains_find(&t->domains, domain);
	if (d) {
		r->account = accounts_find(&t->accounts, local, d->name);
		if (!r->account)
			return RESOLVE_UNKNOWN_USER;
		r->domain = d;
		snprintf(r->dest, sizeof(r->dest), "%s@%s", r->account->name, d->name);
	} else {
		r->account = NULL;
		r->domain = NULL;
		snprintf(r->dest, sizeof(r->dest), "%s", dest);
	}
	snprintf(r->present, sizeof(r->present), "%s", present);
	return RESOLVE_OK;
}

enum resolve_result local_resolve(const struct local_tables *t, const struct mailaddr *rcpt,
    struct resolved *out, size_t max, size_t *n, const char **why)
{
	char addr[600];
	const struct domain *d;
	*n = 0;
	*why = NULL;
	if (rcpt->domain[0] == '\0') {
		if (t->domains.n == 0)
			return RESOLVE_UNKNOWN_USER;
		d = &t->domains.v[0];
	} else {
		d = domains_find(&t->domains, rcpt->domain);
		if (!d)
			return RESOLVE_NOT_LOCAL;
	}
	snprintf(addr, sizeof(addr), "%s@%s", rcpt->local, d->name);
	/* Alias patterns and account lookups are case-insensitive; present the name as the client wrote it. */
	struct alias_result ar[ALIAS_MAX_RESULTS];
	int k = aliases_resolve(&t->aliases, addr, exists_cb, (void *)t, ar, ALIAS_MAX_RESULTS, why);
	if (k < 0)
		return RESOLVE_ERROR;
	if (k == 0) {
		if (max == 0)
			return RESOLVE_ERROR;
		enum resolve_result r = classify(t, addr, addr, &out[0]);
		if (r == RESOLVE_OK)
			*n = 1;
		return r;
	}
	for (int i = 0; i < k; i++) {
		if (*n >= max) {
			*why = "too many alias destinations";
			return RESOLVE_ERROR;
		}
		enum resolve_result r = classify(t, ar[i].dest, ar[i].present, &out[*n]);
		if (r != RESOLVE_OK)
			return r;
		(*n)++;
	}
	return RESOLVE_OK;
}

long local_quota(const struct config *c, const struct local_tables *t, const struct account *a)
{
	if (a->mailbox_limit > 0)
		return a->mailbox_limit;
	const struct domain *d = domains_find(&t->domains, a->domain);
	if (d && d->mailbox_limit > 0)
		return d->mailbox_limit;
	return c->mailbox_size_limit;
}
