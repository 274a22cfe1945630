/*
 * resolve: what an envelope recipient means here — the one place that combines
 * domains, host aliases, aliases and accounts.  smtpd asks it at RCPT time,
 * the queue manager for bounce recipients, deliver for the account behind a
 * destination.  The tables are loaded per process and replaced whole on reload.
 */
#ifndef TSUBAME_RESOLVE_H
#define TSUBAME_RESOLVE_H

#include <stddef.h>

#include "conf/config.h"
#include "local/accounts.h"
#include "local/aliases.h"
#include "local/domains.h"
#include "policy/holdtab.h"
#include "smtp/address.h"

struct local_tables {
	struct domain_table domains;
	struct account_table accounts;
	struct alias_table aliases;
	struct hold_table hold;        /* E3: held domains (policy/holdtab.h) */
};

/* Load the tables named by the configuration; errors as file:line; returns their count. */
int local_tables_load(struct local_tables *t, const struct config *c, struct buf *errors);
void local_tables_free(struct local_tables *t);

enum resolve_result {
	RESOLVE_OK = 0,        /* out[] holds the destinations */
	RESOLVE_NOT_LOCAL,     /* the domain is not ours: relaying */
	RESOLVE_UNKNOWN_USER,  /* local domain, no account and no alias */
	RESOLVE_ERROR          /* alias loop or too many destinations; *why says which */
};

struct resolved {
	char dest[512];      /* canonical destination address */
	char present[512];   /* envelope recipient to show */
	const struct account *account; /* NULL for a remote destination */
	const struct domain *domain;   /* the account's domain, NULL for remote */
};

/*
 * Resolve rcpt.  A bare <Postmaster> means postmaster@ the first local domain.
 * Host-alias domains are mapped to their canonical domain first.  A destination
 * in a local domain must be an account (else RESOLVE_UNKNOWN_USER).
 */
enum resolve_result local_resolve(const struct local_tables *t, const struct mailaddr *rcpt,
    struct resolved *out, size_t max, size_t *n, const char **why);

/* The account behind a canonical local address, or NULL. */
const struct account *local_account(const struct local_tables *t, const char *addr);

/* Quota limit for an account: its own, else its domain's, else the global (0 = none). */
long local_quota(const struct config *c, const struct local_tables *t, const struct account *a);

#endif
