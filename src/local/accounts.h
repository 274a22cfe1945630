/*
 * accounts: mail accounts (L2) and their passwords.
 *
 * File format = the manual's import/export format, one account per line, TAB separated:
 *   account<TAB>password<TAB>full name<TAB>domain<TAB>home<TAB>smtp-auth flag<TAB>apop flag<TAB>mailbox limit
 * In the accounts file the password column holds a crypt(3) hash (yescrypt "$y$",
 * or SHA-512 "$6$").  On import a plain password is hashed; a value that already is
 * a supported hash is kept, so export -> import round-trips.  Flags are 0/1.
 * Lookups are case-insensitive on account and domain.  `postmaster` is an account
 * like any other: it exists only when created.  Lines starting with '#' and empty
 * lines are ignored; a line may have 7 columns (no mailbox limit = 0).  A save
 * rewrites the file atomically (comments are not kept).
 */
#ifndef TSUBAME_ACCOUNTS_H
#define TSUBAME_ACCOUNTS_H

#include <stddef.h>
#include <stdio.h>

#include "local/domains.h"
#include "util/buf.h"

struct account {
	char *name;        /* local part, as created */
	char *password;    /* crypt(3) hash */
	char *full_name;
	char *domain;      /* canonical local domain, lower case */
	char *home;        /* for %HOME% in mailbox_path; may be "" */
	int smtp_auth;     /* SMTP-auth flag (R3 level 3) */
	int apop;          /* APOP / CRAM-MD5 opt-in flag */
	long mailbox_limit;/* bytes, 0 = domain or global default */
	int line;
};

struct account_table {
	struct account *v;
	size_t n;
	void *index;       /* private lookup index */
};

/* A missing file is an empty table.  Errors "file:line: message\n"; returns their count. */
int accounts_load(struct account_table *t, const char *path, struct buf *errors);
/* The same from an open stream; name is used in the messages (tests, fuzzing). */
int accounts_parse(struct account_table *t, FILE *fp, const char *name, struct buf *errors);
void accounts_free(struct account_table *t);
const struct account *accounts_find(const struct account_table *t, const char *local, const char *domain);
int accounts_save(const struct account_table *t, const char *path);
/* Add a copy of a (password field must already be a hash); -1 when it exists. */
int accounts_add(struct account_table *t, const struct account *a);
int accounts_remove(struct account_table *t, const char *local, const char *domain);
size_t accounts_count_in_domain(const struct account_table *t, const char *domain);
/*
 * 1 when name is a valid account name: an RFC 5322 dot-atom local part of at most
 * 64 bytes, without '/' (it becomes a path component) and not starting with '#'.
 */
int account_name_valid(const char *name);

/* Hash a plain password with yescrypt (SHA-512 crypt when yescrypt is unavailable); caller frees. NULL on failure. */
char *password_hash(const char *plain);
/* 1 when plain matches the stored hash (constant-time compare). */
int password_check(const char *hash, const char *plain);
/* 1 when s looks like a hash this module accepts ($y$, $6$, $5$, $2b$ ...). */
int password_is_hash(const char *s);

/*
 * Import lines of the manual's format from fp.  Domains must exist in domains and
 * per-domain max_accounts is enforced.  Existing accounts are replaced.
 * Errors "name:line: message\n"; returns their count (lines with errors are skipped).
 */
int accounts_import(struct account_table *t, const struct domain_table *domains, FILE *fp,
    const char *name, struct buf *errors);
/* The same, also counting the accounts added or replaced in *imported. */
int accounts_import_counted(struct account_table *t, const struct domain_table *domains, FILE *fp,
    const char *name, struct buf *errors, size_t *imported);
void accounts_export(const struct account_table *t, FILE *fp);

#endif
