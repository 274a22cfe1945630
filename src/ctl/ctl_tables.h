/*
 * ctl_tables: what the account and domain commands of tsubamectl share: loading
 * the domains and accounts tables named by the configuration, a lock so that two
 * administrators' commands never lose each other's changes, and saving.
 */
#ifndef TSUBAME_CTL_TABLES_H
#define TSUBAME_CTL_TABLES_H

#include "ctl/ctl.h"
#include "local/accounts.h"
#include "local/domains.h"

struct ctl_tables {
	struct domain_table domains;
	struct account_table accounts;
	char *domains_path;
	char *accounts_path;
	int lock_fd; /* -1 when not locked */
};

enum ctl_open_mode {
	CTL_READ,  /* table errors are printed as warnings; the good lines are used */
	CTL_WRITE  /* locked; any table error is fatal, since saving would drop the bad lines */
};

/* 0, or -1 after printing why on stderr. */
int ctl_tables_open(struct ctl *c, struct ctl_tables *t, enum ctl_open_mode mode);
void ctl_tables_close(struct ctl_tables *t);
/* Save one table; 0, or -1 after printing why. */
int ctl_save_domains(struct ctl_tables *t);
int ctl_save_accounts(struct ctl_tables *t);

/* Print "tsubamectl: " and the message on stderr; returns 1 (the failure exit status). */
int ctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print the usage line on stderr; returns 2. */
int ctl_usage(const char *usage);

#endif
