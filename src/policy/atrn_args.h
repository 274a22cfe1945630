/*
 * atrn_args: the argument of ATRN (RFC 2645 section 4.2.3, E6), shared by
 * smtpd (which answers it), the queue (which parses it again rather than
 * trust smtpd) and the customer side (which builds it).
 *
 *   atrn = "ATRN" [SP domain *("," domain)] CRLF
 *
 * No argument: every domain the authenticated account may collect.  Each
 * domain is a dotted name of letters, digits and hyphens (labels of 1-63
 * characters, at most 255 in all, one trailing dot ignored), kept in lower
 * case; a repeated domain counts once.  Spaces after a comma are tolerated
 * (some clients write "a.example, b.example"); nothing else is.
 *
 * SECURITY: the input is network text; the parser only copies bounded,
 * checked names into fixed arrays.
 */
#ifndef TSUBAME_ATRN_ARGS_H
#define TSUBAME_ATRN_ARGS_H

#include <stddef.h>

#define ATRN_DOMAINS_MAX 32
#define ATRN_DOMAIN_MAX 255

struct atrn_domains {
	size_t n;
	char v[ATRN_DOMAINS_MAX][ATRN_DOMAIN_MAX + 1];
};

/* 0, or 501 (syntax, or more than ATRN_DOMAINS_MAX domains); out is filled on 0. */
int atrn_parse_domains(const char *args, struct atrn_domains *out);
/* 1 when domain (case and one trailing dot ignored) is one of d's (an empty d selects nothing here). */
int atrn_domains_has(const struct atrn_domains *d, const char *domain);

#endif
