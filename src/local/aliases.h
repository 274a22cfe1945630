/*
 * aliases: address aliases with the manual's semantics (L4, seed 003 "エイリアス設定").
 *
 * File format, one alias per line, '#' comments, fields separated by white space:
 *   info@abc.co.jp     abc-info@abc.co.jp
 *   info@def.co.jp     info@abc.co.jp,1
 *   *@def.co.jp        *@abc.co.jp,1
 * Both sides need a domain.  '*' is a wildcard in the local part only; a '*' in the
 * real address is replaced by the text the wildcard matched.  ",1" rewrites the
 * envelope recipient to the real address, ",0" keeps the alias name; without a
 * flag the default rule applies: same domain keep, other domain rewrite.
 * Several lines for one alias deliver to every target.
 * Precedence: an exact alias, then an existing account, then wildcard aliases (the
 * most specific pattern, i.e. the longest literal text, first); so a catch-all
 * "*@domain" never steals mail from a real account.  Targets that are aliases
 * themselves are expanded again, to a depth of 10; loops are reported as errors,
 * except a target naming the address being expanded itself ("a -> a, b": keep a
 * copy), which is delivered there without further expansion.  When wildcard
 * patterns tie on specificity the first in the file wins.  The rewrite rule is
 * applied at every hop: "present" starts as the address given and is replaced by a
 * hop's target only when that hop rewrites.  Results are deduplicated by dest.
 * The work per address is bounded (1024 expansions: "alias expansion too large").
 */
#ifndef TSUBAME_ALIASES_H
#define TSUBAME_ALIASES_H

#include <stddef.h>
#include <stdio.h>

#include "util/buf.h"

#define ALIAS_MAX_RESULTS 64

struct alias {
	char *pattern;  /* "local@domain" with an optional '*' in the local part, lower case */
	char *target;   /* real address, may contain '*' */
	int rewrite;    /* -1 default rule, 0 keep, 1 rewrite */
	int line;
};

struct alias_table {
	struct alias *v;
	size_t n;
};

struct alias_result {
	char dest[512];    /* where the mail goes: a local account or an external address */
	char present[512]; /* the envelope recipient shown to that destination */
};

/* A missing file is an empty table.  Errors "file:line: message\n"; returns their count. */
int aliases_load(struct alias_table *t, const char *path, struct buf *errors);
/* The same from an open stream; name is used in the messages (tests, fuzzing). */
int aliases_parse(struct alias_table *t, FILE *fp, const char *name, struct buf *errors);
void aliases_free(struct alias_table *t);

/* Does an account exist?  Supplied by the caller so this module stays table-agnostic. */
typedef int (*account_exists_fn)(void *ctx, const char *local, const char *domain);

/*
 * Resolve addr ("local@domain", domain already canonical) to its final destinations.
 * Returns the number of results written to out (0 when no alias applies: the
 * address stands for itself), or -1 on a loop or too many results (*why set).
 */
int aliases_resolve(const struct alias_table *t, const char *addr, account_exists_fn exists, void *ctx,
    struct alias_result *out, size_t max, const char **why);

#endif
