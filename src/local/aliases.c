/*
 * aliases: load the aliases table and resolve an address through it (L4), with
 * the manual's precedence, wildcards and rewrite rule (see aliases.h).
 * The file is the administrator's; addresses given to aliases_resolve come from
 * the network and are only compared and copied, with bounded buffers.
 */
#include "local/aliases.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "local/domains.h"
#include "local/tablefile.h"
#include "util/xalloc.h"

#define ALIAS_MAX_DEPTH 10
#define ADDR_MAX 512 /* sizeof(struct alias_result.dest) */
/* Diamonds in the alias graph (a->b,c; b->d; c->d ...) multiply the work; bound it. */
#define ALIAS_MAX_EXPANSIONS 1024

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

void aliases_free(struct alias_table *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].pattern);
		free(t->v[i].target);
	}
	free(t->v);
	t->v = NULL;
	t->n = 0;
}

/*
 * Check one side of an alias line: "local@domain", a domain being required (the
 * manual's "×" examples), '*' allowed once and only in the local part.
 */
static int check_address(struct table_lines *lc, const char *what, char *addr)
{
	char *at = strrchr(addr, '@');

	if (at == NULL || at[1] == '\0') {
		tablefile_err(lc, "%s \"%s\" has no domain", what, addr);
		return -1;
	}
	if (at == addr) {
		tablefile_err(lc, "%s \"%s\" has no local part", what, addr);
		return -1;
	}
	if (memchr(addr, '@', (size_t)(at - addr)) != NULL) {
		tablefile_err(lc, "%s \"%s\" has more than one '@'", what, addr);
		return -1;
	}
	if (strchr(at + 1, '*') != NULL) {
		tablefile_err(lc, "%s \"%s\": '*' is allowed in the local part only", what, addr);
		return -1;
	}
	lower(at + 1);
	if (!domain_name_valid(at + 1)) {
		tablefile_err(lc, "%s \"%s\" has an invalid domain", what, addr);
		return -1;
	}
	char *star = strchr(addr, '*');
	if (star && strchr(star + 1, '*') != NULL) {
		tablefile_err(lc, "%s \"%s\" has more than one '*'", what, addr);
		return -1;
	}
	if (at - addr >= ADDR_MAX / 2 || strlen(addr) >= ADDR_MAX) {
		tablefile_err(lc, "%s \"%.40s...\" is too long", what, addr);
		return -1;
	}
	return 0;
}

static void parse_line(struct table_lines *lc, char *line, void *ctx)
{
	struct alias_table *t = ctx;
	char *f[3];
	size_t nf = tablefile_split_ws(line, f, 3);
	int rewrite = -1;

	if (nf == 0 || f[0][0] == '#')
		return;
	if (nf != 2) {
		tablefile_err(lc, "expected \"alias target[,0|,1]\", got %zu field%s", nf, nf == 1 ? "" : "s");
		return;
	}
	char *comma = strchr(f[1], ',');
	if (comma) {
		if ((comma[1] != '0' && comma[1] != '1') || comma[2] != '\0') {
			tablefile_err(lc, "bad rewrite flag \"%s\" (expected ,0 or ,1)", comma);
			return;
		}
		rewrite = comma[1] - '0';
		*comma = '\0';
	}
	if (check_address(lc, "alias", f[0]) < 0 || check_address(lc, "target", f[1]) < 0)
		return;
	if (strchr(f[1], '*') && !strchr(f[0], '*')) {
		tablefile_err(lc, "target \"%s\" has a '*' but alias \"%s\" has none", f[1], f[0]);
		return;
	}
	lower(f[0]);
	t->v = tablefile_grow(t->v, t->n, sizeof(*t->v));
	t->v[t->n++] = (struct alias){ .pattern = xstrdup(f[0]), .target = xstrdup(f[1]),
		.rewrite = rewrite, .line = lc->line };
}

int aliases_parse(struct alias_table *t, FILE *fp, const char *name, struct buf *errors)
{
	return tablefile_parse(fp, name, errors, parse_line, t);
}

int aliases_load(struct alias_table *t, const char *path, struct buf *errors)
{
	return tablefile_load(path, errors, parse_line, t);
}

/* ---- resolution ---- */

struct resolver {
	const struct alias_table *t;
	account_exists_fn exists;
	void *ctx;
	struct alias_result *out;
	size_t max, n;
	const char *path[ALIAS_MAX_DEPTH + 2]; /* addresses being expanded, for loop detection */
	const char *why;
	unsigned expansions;
};

static const char *domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at ? at + 1 : "";
}

/*
 * Does pattern match addr?  On a match of a wildcard pattern, the text the '*'
 * stands for is addr[*cap_off, *cap_off + *cap_len).
 */
static int pattern_match(const char *pattern, const char *addr, size_t *cap_off, size_t *cap_len)
{
	const char *star = strchr(pattern, '*');

	if (star == NULL)
		return strcasecmp(pattern, addr) == 0;
	const char *pat_at = strrchr(pattern, '@'), *addr_at = strrchr(addr, '@');
	if (addr_at == NULL || strcasecmp(pat_at + 1, addr_at + 1) != 0)
		return 0;
	size_t prefix = (size_t)(star - pattern), suffix = (size_t)(pat_at - star - 1);
	size_t local = (size_t)(addr_at - addr);
	if (local < prefix + suffix)
		return 0;
	if (strncasecmp(pattern, addr, prefix) != 0 ||
	    strncasecmp(star + 1, addr + local - suffix, suffix) != 0)
		return 0;
	*cap_off = prefix;
	*cap_len = local - prefix - suffix;
	return 1;
}

/* The exact pattern for addr if any, else the most specific matching wildcard; NULL when none. */
static const char *best_pattern(const struct resolver *r, const char *addr, int *wild)
{
	const char *best = NULL;
	size_t best_len = 0, off, len;

	for (size_t i = 0; i < r->t->n; i++) {
		const char *p = r->t->v[i].pattern;
		if (strchr(p, '*') == NULL && strcasecmp(p, addr) == 0) {
			*wild = 0;
			return p;
		}
	}
	for (size_t i = 0; i < r->t->n; i++) {
		const char *p = r->t->v[i].pattern;
		/* Specificity = literal text; strict '>' keeps the first of equals. */
		if (strchr(p, '*') && pattern_match(p, addr, &off, &len) && (best == NULL || strlen(p) > best_len)) {
			best = p;
			best_len = strlen(p);
		}
	}
	*wild = 1;
	return best;
}

static int add_result(struct resolver *r, const char *dest, const char *present)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcasecmp(r->out[i].dest, dest) == 0)
			return 0;
	if (r->n >= r->max) {
		r->why = "too many alias results";
		return -1;
	}
	if (strlen(dest) >= sizeof(r->out->dest) || strlen(present) >= sizeof(r->out->present)) {
		r->why = "alias result too long";
		return -1;
	}
	strcpy(r->out[r->n].dest, dest);
	strcpy(r->out[r->n].present, present);
	r->n++;
	return 0;
}

static int account_exists(const struct resolver *r, const char *addr)
{
	char local[ADDR_MAX];
	const char *at = strrchr(addr, '@');

	if (r->exists == NULL || at == NULL || (size_t)(at - addr) >= sizeof(local))
		return 0;
	memcpy(local, addr, (size_t)(at - addr));
	local[at - addr] = '\0';
	return r->exists(r->ctx, local, at + 1) == 1;
}

/* Which alias applies to addr: an exact alias, else none when an account exists, else a wildcard. */
static const char *applicable(const struct resolver *r, const char *addr)
{
	int wild;
	const char *p = best_pattern(r, addr, &wild);

	if (p && wild && account_exists(r, addr))
		return NULL;
	return p;
}

static int expand(struct resolver *r, const char *addr, const char *present, int depth)
{
	if (++r->expansions > ALIAS_MAX_EXPANSIONS) {
		r->why = "alias expansion too large";
		return -1;
	}
	const char *pattern = applicable(r, addr);

	if (pattern == NULL)
		return add_result(r, addr, present);
	r->path[depth] = addr;
	for (size_t i = 0; i < r->t->n; i++) {
		const struct alias *a = &r->t->v[i];
		size_t off = 0, len = 0;
		char target[ADDR_MAX];

		if (strcmp(a->pattern, pattern) != 0)
			continue;
		pattern_match(pattern, addr, &off, &len);
		/* A '*' in the target takes the text the pattern's '*' matched. */
		const char *star = strchr(a->target, '*');
		int n;
		if (star)
			n = snprintf(target, sizeof(target), "%.*s%.*s%s", (int)(star - a->target), a->target,
			    (int)len, addr + off, star + 1);
		else
			n = snprintf(target, sizeof(target), "%s", a->target);
		if (n < 0 || (size_t)n >= sizeof(target)) {
			r->why = "alias target too long";
			return -1;
		}
		/* The manual's rule: ",1" rewrite, ",0" keep; default: same domain keep, other rewrite. */
		int rewrite = a->rewrite >= 0 ? a->rewrite : strcasecmp(domain_of(addr), domain_of(target)) != 0;
		const char *next_present = rewrite ? target : present;
		if (strcasecmp(target, addr) == 0) {
			if (add_result(r, target, next_present) < 0)
				return -1;
			continue;
		}
		for (int d = 0; d <= depth; d++) {
			if (strcasecmp(r->path[d], target) == 0) {
				r->why = "alias loop";
				return -1;
			}
		}
		if (applicable(r, target) != NULL && depth + 1 >= ALIAS_MAX_DEPTH) {
			r->why = "alias nesting deeper than 10";
			return -1;
		}
		if (expand(r, target, next_present, depth + 1) < 0)
			return -1;
	}
	return 0;
}

int aliases_resolve(const struct alias_table *t, const char *addr, account_exists_fn exists, void *ctx,
    struct alias_result *out, size_t max, const char **why)
{
	struct resolver r = { .t = t, .exists = exists, .ctx = ctx, .out = out, .max = max };

	*why = NULL;
	if (applicable(&r, addr) == NULL)
		return 0;
	if (strlen(addr) >= ADDR_MAX) {
		*why = "address too long";
		return -1;
	}
	if (expand(&r, addr, addr, 0) < 0) {
		*why = r.why;
		return -1;
	}
	return (int)r.n;
}
