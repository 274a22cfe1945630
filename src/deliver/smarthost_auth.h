/*
 * smarthost_auth: the per-account smart-host credentials table (D4, seed 002
 * "アカウントごとの認証を許可"): mail submitted by an account that has an entry
 * authenticates to the smart host with that entry's user and password; other
 * mail uses the global smarthost_auth_user.
 *
 *   # account            smart-host user       password (the rest of the line)
 *   demo@example.test    demo.isp-login        s3cret phrase
 *
 * Fields are separated by spaces or TABs; the password is everything after the
 * user (it may contain spaces, not leading ones).  '#' starts a comment line.
 * The passwords are in clear because they are sent: keep the file 0640.
 */
#ifndef TSUBAME_SMARTHOST_AUTH_H
#define TSUBAME_SMARTHOST_AUTH_H

#include <stddef.h>
#include <stdio.h>

#include "util/buf.h"

struct smarthost_cred {
	char *account;   /* lower case */
	char *user;
	char *password;
	int line;
};

struct smarthost_auth_table {
	struct smarthost_cred *v;
	size_t n;
};

/* Parse / load (a missing file is an empty table).  Returns the number of errors ("file:line: ..."). */
int smarthost_auth_parse(struct smarthost_auth_table *t, FILE *fp, const char *name, struct buf *errors);
int smarthost_auth_load(struct smarthost_auth_table *t, const char *path, struct buf *errors);
/* The entry of account (case-insensitive), or NULL. */
const struct smarthost_cred *smarthost_auth_find(const struct smarthost_auth_table *t, const char *account);
/* Frees and wipes the passwords. */
void smarthost_auth_free(struct smarthost_auth_table *t);

#endif
