/*
 * accounts: the accounts table (L2): parsing, a hash index for lookups, atomic
 * save, the manual's import/export format and password hashing.
 * It trusts neither the table file nor import input: every column is checked.
 * Passwords are handled by libxcrypt; this file only picks the method and
 * compares the results without data-dependent timing.
 */
#include "local/accounts.h"

#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "local/tablefile.h"
#include "util/xalloc.h"

#define ACCOUNT_NAME_MAX 64 /* RFC 5321 4.5.3.1.1 */
#define ACCOUNT_COLUMNS 8

/* ---- index: open addressing over positions in t->v, keyed by lower(name@domain) ---- */

struct index {
	size_t *slot; /* position + 1; 0 = empty */
	size_t cap;   /* power of two, at least twice the entries */
};

static uint64_t key_hash(const char *local, const char *domain)
{
	uint64_t h = 14695981039346656037ULL; /* FNV-1a */
	for (const char *p = local; *p; p++)
		h = (h ^ (unsigned char)tolower((unsigned char)*p)) * 1099511628211ULL;
	h = (h ^ '@') * 1099511628211ULL;
	for (const char *p = domain; *p; p++)
		h = (h ^ (unsigned char)tolower((unsigned char)*p)) * 1099511628211ULL;
	return h;
}

static int same(const struct account *a, const char *local, const char *domain)
{
	return strcasecmp(a->name, local) == 0 && strcasecmp(a->domain, domain) == 0;
}

static void index_insert(struct index *ix, const struct account_table *t, size_t pos)
{
	size_t mask = ix->cap - 1;
	size_t i = (size_t)key_hash(t->v[pos].name, t->v[pos].domain) & mask;
	while (ix->slot[i] != 0)
		i = (i + 1) & mask;
	ix->slot[i] = pos + 1;
}

static void index_rebuild(struct account_table *t)
{
	struct index *ix = t->index;
	size_t cap = 64;

	if (ix == NULL)
		ix = t->index = xcalloc(1, sizeof(*ix));
	while (cap < t->n * 2 + 2)
		cap *= 2;
	free(ix->slot);
	ix->slot = xcalloc(cap, sizeof(*ix->slot));
	ix->cap = cap;
	for (size_t i = 0; i < t->n; i++)
		index_insert(ix, t, i);
}

/* Index the entry just appended at t->n - 1, growing when half full. */
static void index_added(struct account_table *t)
{
	struct index *ix = t->index;
	if (ix == NULL || t->n * 2 > ix->cap)
		index_rebuild(t);
	else
		index_insert(ix, t, t->n - 1);
}

static size_t find_pos(const struct account_table *t, const char *local, const char *domain)
{
	const struct index *ix = t->index;

	if (ix == NULL) {
		for (size_t i = 0; i < t->n; i++)
			if (same(&t->v[i], local, domain))
				return i;
		return (size_t)-1;
	}
	size_t mask = ix->cap - 1;
	for (size_t i = (size_t)key_hash(local, domain) & mask; ix->slot[i] != 0; i = (i + 1) & mask)
		if (same(&t->v[ix->slot[i] - 1], local, domain))
			return ix->slot[i] - 1;
	return (size_t)-1;
}

const struct account *accounts_find(const struct account_table *t, const char *local, const char *domain)
{
	size_t pos = find_pos(t, local, domain);
	return pos == (size_t)-1 ? NULL : &t->v[pos];
}

/* ---- table ---- */

static void account_free(struct account *a)
{
	free(a->name);
	if (a->password) {
		explicit_bzero(a->password, strlen(a->password));
		free(a->password);
	}
	free(a->full_name);
	free(a->domain);
	free(a->home);
	memset(a, 0, sizeof(*a));
}

void accounts_free(struct account_table *t)
{
	struct index *ix = t->index;

	for (size_t i = 0; i < t->n; i++)
		account_free(&t->v[i]);
	free(t->v);
	if (ix)
		free(ix->slot);
	free(ix);
	t->v = NULL;
	t->n = 0;
	t->index = NULL;
}

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

static struct account copy_account(const struct account *a)
{
	struct account c = *a;
	c.name = xstrdup(a->name);
	c.password = xstrdup(a->password ? a->password : "");
	c.full_name = xstrdup(a->full_name ? a->full_name : "");
	c.domain = xstrdup(a->domain);
	lower(c.domain);
	c.home = xstrdup(a->home ? a->home : "");
	return c;
}

/* Takes ownership of *a. */
static void append(struct account_table *t, struct account *a)
{
	t->v = tablefile_grow(t->v, t->n, sizeof(*t->v));
	t->v[t->n++] = *a;
	index_added(t);
}

int accounts_add(struct account_table *t, const struct account *a)
{
	if (find_pos(t, a->name, a->domain) != (size_t)-1)
		return -1;
	struct account c = copy_account(a);
	append(t, &c);
	return 0;
}

int accounts_remove(struct account_table *t, const char *local, const char *domain)
{
	size_t pos = find_pos(t, local, domain);

	if (pos == (size_t)-1)
		return -1;
	account_free(&t->v[pos]);
	memmove(&t->v[pos], &t->v[pos + 1], (t->n - pos - 1) * sizeof(*t->v));
	t->n--;
	/* Positions moved: rebuilding is O(n), fine for an administrator's command. */
	index_rebuild(t);
	return 0;
}

size_t accounts_count_in_domain(const struct account_table *t, const char *domain)
{
	size_t n = 0;
	for (size_t i = 0; i < t->n; i++)
		if (strcasecmp(t->v[i].domain, domain) == 0)
			n++;
	return n;
}

/* ---- syntax ---- */

/* RFC 5322 3.2.3 atext, minus '/' which would make a path component. */
static int atext(unsigned char c)
{
	return isalnum(c) || (c != '/' && strchr("!#$%&'*+-=?^_`{|}~", c) != NULL && c != '\0');
}

int account_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > ACCOUNT_NAME_MAX || name[0] == '#')
		return 0;
	/* dot-atom-text = 1*atext *("." 1*atext) */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '.') {
			if (i == 0 || i == len - 1 || name[i + 1] == '.')
				return 0;
		} else if (!atext(c)) {
			return 0;
		}
	}
	return 1;
}

static int parse_flag(const char *s, int *out)
{
	if ((s[0] != '0' && s[0] != '1') || s[1] != '\0')
		return -1;
	*out = s[0] - '0';
	return 0;
}

static int parse_limit(const char *s, long *out)
{
	char *end;

	if (s[0] == '\0') {
		*out = 0;
		return 0;
	}
	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > LONG_MAX)
		return -1;
	*out = (long)v;
	return 0;
}

/*
 * Split a line of the manual's format and check every column except the
 * password and the domain's existence.  a's strings point into line.
 */
static int parse_columns(struct table_lines *lc, char *line, struct account *a)
{
	char *col[ACCOUNT_COLUMNS + 1];
	size_t n = 0;
	char *p = line;

	for (;;) {
		if (n == ACCOUNT_COLUMNS + 1)
			break;
		col[n++] = p;
		p = strchr(p, '\t');
		if (p == NULL)
			break;
		*p++ = '\0';
	}
	/* The mailbox limit came late to the format: 7 columns mean "no limit". */
	if (n < ACCOUNT_COLUMNS - 1 || n > ACCOUNT_COLUMNS) {
		tablefile_err(lc, "expected %d TAB-separated columns, got %s%zu", ACCOUNT_COLUMNS,
		    n > ACCOUNT_COLUMNS ? "more than " : "", n > ACCOUNT_COLUMNS ? n - 1 : n);
		return -1;
	}
	memset(a, 0, sizeof(*a));
	a->name = col[0];
	a->password = col[1];
	a->full_name = col[2];
	a->domain = col[3];
	a->home = col[4];
	a->line = lc->line;
	lower(a->domain);
	if (!account_name_valid(a->name)) {
		tablefile_err(lc, "invalid account name \"%s\"", a->name);
		return -1;
	}
	if (!domain_name_valid(a->domain)) {
		tablefile_err(lc, "invalid domain name \"%s\"", a->domain);
		return -1;
	}
	if (parse_flag(col[5], &a->smtp_auth) < 0) {
		tablefile_err(lc, "SMTP-auth flag must be 0 or 1, got \"%s\"", col[5]);
		return -1;
	}
	if (parse_flag(col[6], &a->apop) < 0) {
		tablefile_err(lc, "APOP flag must be 0 or 1, got \"%s\"", col[6]);
		return -1;
	}
	if (n == ACCOUNT_COLUMNS && parse_limit(col[7], &a->mailbox_limit) < 0) {
		tablefile_err(lc, "mailbox limit must be a non-negative number of bytes, got \"%s\"", col[7]);
		return -1;
	}
	return 0;
}

static int skip_line(const char *line)
{
	return line[0] == '\0' || line[0] == '#';
}

static void parse_line(struct table_lines *lc, char *line, void *ctx)
{
	struct account_table *t = ctx;
	struct account a;

	if (skip_line(line) || parse_columns(lc, line, &a) < 0)
		return;
	if (!password_is_hash(a.password)) {
		tablefile_err(lc, "password of %s@%s is not a crypt hash (plain passwords go through "
		    "tsubamectl account import)", a.name, a.domain);
		return;
	}
	size_t pos = find_pos(t, a.name, a.domain);
	if (pos != (size_t)-1) {
		tablefile_err(lc, "duplicate account %s@%s (first on line %d)", a.name, a.domain, t->v[pos].line);
		return;
	}
	struct account c = copy_account(&a);
	append(t, &c);
}

int accounts_parse(struct account_table *t, FILE *fp, const char *name, struct buf *errors)
{
	int n = tablefile_parse(fp, name, errors, parse_line, t);

	if (t->index == NULL)
		index_rebuild(t);
	return n;
}

int accounts_load(struct account_table *t, const char *path, struct buf *errors)
{
	/* A missing file is an empty table, and an empty table is indexed too. */
	int n = tablefile_load(path, errors, parse_line, t);

	if (t->index == NULL)
		index_rebuild(t);
	return n;
}

int accounts_import(struct account_table *t, const struct domain_table *domains, FILE *fp,
    const char *name, struct buf *errors)
{
	size_t imported;
	return accounts_import_counted(t, domains, fp, name, errors, &imported);
}

struct import_ctx {
	struct account_table *t;
	const struct domain_table *domains;
	size_t *count; /* accounts per domain, by position in domains->v */
	size_t *imported;
};

static void import_line(struct table_lines *lc, char *line, void *ctx)
{
	struct import_ctx *ic = ctx;
	struct account a;

	if (skip_line(line) || parse_columns(lc, line, &a) < 0)
		return;
	const struct domain *d = domains_find(ic->domains, a.domain);
	if (d == NULL) {
		tablefile_err(lc, "domain \"%s\" does not exist", a.domain);
		return;
	}
	a.domain = d->name; /* a host alias stands for its domain */
	size_t di = (size_t)(d - ic->domains->v);
	size_t pos = find_pos(ic->t, a.name, a.domain);
	if (pos == (size_t)-1 && d->max_accounts > 0 && ic->count[di] >= (size_t)d->max_accounts) {
		tablefile_err(lc, "domain %s is full (max_accounts=%ld)", d->name, d->max_accounts);
		return;
	}
	char *hash = NULL;
	if (a.password[0] == '\0') {
		tablefile_err(lc, "empty password for %s@%s", a.name, a.domain);
		return;
	}
	if (!password_is_hash(a.password)) {
		hash = password_hash(a.password);
		if (hash == NULL) {
			tablefile_err(lc, "cannot hash the password for %s@%s", a.name, a.domain);
			return;
		}
		a.password = hash;
	}
	struct account c = copy_account(&a);
	free(hash);
	if (pos != (size_t)-1) {
		/* Existing accounts are replaced in place: the file keeps its order. */
		c.line = ic->t->v[pos].line;
		account_free(&ic->t->v[pos]);
		ic->t->v[pos] = c;
	} else {
		append(ic->t, &c);
		ic->count[di]++;
	}
	(*ic->imported)++;
}

int accounts_import_counted(struct account_table *t, const struct domain_table *domains, FILE *fp,
    const char *name, struct buf *errors, size_t *imported)
{
	/* Accounts per domain, counted once: a 100k-line import must not rescan the table per line. */
	struct import_ctx ic = { .t = t, .domains = domains, .count = xcalloc(domains->n + 1, sizeof(size_t)),
		.imported = imported };

	*imported = 0;
	for (size_t i = 0; i < t->n; i++) {
		const struct domain *d = domains_find(domains, t->v[i].domain);
		if (d)
			ic.count[d - domains->v]++;
	}
	int n = tablefile_parse(fp, name, errors, import_line, &ic);
	free(ic.count);
	return n;
}

static void write_account(FILE *fp, const struct account *a)
{
	fprintf(fp, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%ld\n", a->name, a->password, a->full_name, a->domain,
	    a->home, a->smtp_auth, a->apop, a->mailbox_limit);
}

void accounts_export(const struct account_table *t, FILE *fp)
{
	for (size_t i = 0; i < t->n; i++)
		write_account(fp, &t->v[i]);
}

static int write_accounts(FILE *fp, const void *ctx)
{
	accounts_export(ctx, fp);
	return ferror(fp) ? -1 : 0;
}

int accounts_save(const struct account_table *t, const char *path)
{
	return tablefile_save(path, 1, write_accounts, t);
}

/* ---- passwords ---- */

int password_is_hash(const char *s)
{
	static const char *const prefixes[] = { "$y$", "$gy$", "$7$", "$6$", "$5$", "$2b$", "$2y$", "$2a$", NULL };
	size_t i, plen = 0;

	for (i = 0; prefixes[i]; i++) {
		plen = strlen(prefixes[i]);
		if (strncmp(s, prefixes[i], plen) == 0)
			break;
	}
	if (prefixes[i] == NULL)
		return 0;
	/* crypt(3) output is printable ASCII without white space; a column never holds TAB. */
	size_t n = 0;
	for (const char *p = s + plen; *p; p++, n++)
		if (!isgraph((unsigned char)*p))
			return 0;
	return n >= 8;
}

static char *hash_with(const char *prefix, const char *plain)
{
	char *salt = crypt_gensalt_ra(prefix, 0, NULL, 0);
	void *data = NULL;
	int size = 0;
	char *r = NULL;

	if (salt == NULL)
		return NULL;
	const char *h = crypt_ra(plain, salt, &data, &size);
	if (h != NULL && h[0] != '*')
		r = xstrdup(h);
	if (data) {
		explicit_bzero(data, (size_t)size);
		free(data);
	}
	free(salt);
	return r;
}

char *password_hash(const char *plain)
{
	char *h = hash_with("$y$", plain);
	/* Some libxcrypt builds leave yescrypt out; SHA-512 crypt is everywhere. */
	return h ? h : hash_with("$6$", plain);
}

int password_check(const char *hash, const char *plain)
{
	void *data = NULL;
	int size = 0;
	int ok = 0;

	if (!password_is_hash(hash))
		return 0;
	const char *h = crypt_ra(plain, hash, &data, &size);
	if (h != NULL && h[0] != '*') {
		/* Compare every byte regardless of where the first difference is. */
		size_t hl = strlen(hash), rl = strlen(h);
		unsigned diff = (unsigned)(hl != rl);
		for (size_t i = 0; i < hl; i++)
			diff |= (unsigned char)hash[i] ^ (unsigned char)(i < rl ? h[i] : 0);
		ok = diff == 0;
	}
	if (data) {
		explicit_bzero(data, (size_t)size);
		free(data);
	}
	return ok;
}
