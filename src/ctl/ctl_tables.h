/*
 * ctl_tables: what the table commands of tsubamectl (account, domain, secret,
 * relay) share: loading the domains and accounts tables named by the
 * configuration, a lock so that two administrators' commands never lose each
 * other's changes, saving, finishing a change with a reload, and the
 * subcommand dispatch and option parsing of each family.
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
/* Close the tables; when rc is 0 (a change was saved) ask the daemon to reload.  Returns rc. */
int ctl_tables_done(struct ctl *c, struct ctl_tables *t, int rc);
/* Split "user@domain" into its parts (bounded copies); -1 when malformed. */
int ctl_split_address(const char *addr, char *local, size_t lsz, char *domain, size_t dsz);
/* The account "user@domain" names, the domain possibly a host alias; NULL after printing why. */
struct account *ctl_find_account(struct ctl_tables *t, const char *addr);
/* Save one table; 0, or -1 after printing why. */
int ctl_save_domains(struct ctl_tables *t);
int ctl_save_accounts(struct ctl_tables *t);

/* Print "tsubamectl: " and the message on stderr; returns 1 (the failure exit status). */
int ctl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print the usage line on stderr; returns 2. */
int ctl_usage(const char *usage);

/* Before a subcommand's getopt: glibc's full re-initialisation, as each subcommand parses anew. */
void ctl_reset_getopt(void);

struct ctl_cmd {
	const char *name;
	int (*run)(struct ctl *c, int argc, char **argv); /* argv[0] is the subcommand */
};

/*
 * Run the subcommand argv names; argv may start with the family name or not.
 * Without a known subcommand: usage_all, exit status 2.
 */
int ctl_dispatch(struct ctl *c, const char *family, const struct ctl_cmd *cmds, size_t ncmds,
    const char *usage_all, int argc, char **argv);

#endif
