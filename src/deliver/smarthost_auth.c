/*
 * smarthost_auth: parser and lookup of the per-account smart-host credentials
 * (see smarthost_auth.h).  Trusts: nothing in the file; every line is bounded
 * by the table reader and checked here.
 */
#include "deliver/smarthost_auth.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "local/tablefile.h"
#include "util/xalloc.h"

#define FIELD_MAX 255

static int printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

static void parse_line(struct table_lines *tl, char *line, void *ctx)
{
	struct smarthost_auth_table *t = ctx;
	char *p = line;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0' || *p == '#')
		return;
	char *account = p;
	p += strcspn(p, " \t");
	if (*p == '\0') {
		tablefile_err(tl, "expected 'account user password'");
		return;
	}
	*p++ = '\0';
	while (*p == ' ' || *p == '\t')
		p++;
	char *user = p;
	p += strcspn(p, " \t");
	if (*p == '\0') {
		tablefile_err(tl, "no password for \"%s\"", account);
		return;
	}
	*p++ = '\0';
	while (*p == ' ' || *p == '\t')
		p++;
	char *password = p;
	size_t pl = strlen(password);
	while (pl && (password[pl - 1] == ' ' || password[pl - 1] == '\t'))
		password[--pl] = '\0';
	if (!strchr(account, '@') || account[0] == '@') {
		tablefile_err(tl, "account \"%s\" is not user@domain", account);
		return;
	}
	if (pl == 0 || strlen(account) > FIELD_MAX || strlen(user) > FIELD_MAX || pl > FIELD_MAX || !printable(password)) {
		tablefile_err(tl, "bad field for \"%s\" (empty, longer than %d bytes, or control characters)", account,
		    FIELD_MAX);
		return;
	}
	for (char *c = account; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	const struct smarthost_cred *dup = smarthost_auth_find(t, account);
	if (dup) {
		tablefile_err(tl, "duplicate account \"%s\" (first on line %d)", account, dup->line);
		return;
	}
	t->v = tablefile_grow(t->v, t->n, sizeof(*t->v));
	struct smarthost_cred *e = &t->v[t->n++];
	e->account = xstrdup(account);
	e->user = xstrdup(user);
	e->password = xstrdup(password);
	e->line = tl->line;
}

int smarthost_auth_parse(struct smarthost_auth_table *t, FILE *fp, const char *name, struct buf *errors)
{
	return tablefile_parse(fp, name, errors, parse_line, t);
}

int smarthost_auth_load(struct smarthost_auth_table *t, const char *path, struct buf *errors)
{
	return tablefile_load(path, errors, parse_line, t);
}

const struct smarthost_cred *smarthost_auth_find(const struct smarthost_auth_table *t, const char *account)
{
	if (!account || !*account)
		return NULL;
	for (size_t i = 0; i < t->n; i++)
		if (!strcasecmp(t->v[i].account, account))
			return &t->v[i];
	return NULL;
}

void smarthost_auth_free(struct smarthost_auth_table *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].account);
		free(t->v[i].user);
		if (t->v[i].password) {
			explicit_bzero(t->v[i].password, strlen(t->v[i].password));
			free(t->v[i].password);
		}
	}
	free(t->v);
	t->v = NULL;
	t->n = 0;
}
