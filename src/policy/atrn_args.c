/*
 * atrn_args: the ATRN argument parser (see atrn_args.h for the grammar).
 */
#include "policy/atrn_args.h"

#include <string.h>
#include <strings.h>

static int is_ldh(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

/* One domain of [p, p+len): 0 and the lower-cased name in out, or -1. */
static int parse_domain(const char *p, size_t len, char *out)
{
	if (len > 0 && p[len - 1] == '.')
		len--;   /* one trailing dot: the root */
	if (len == 0 || len > ATRN_DOMAIN_MAX)
		return -1;
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '.') {
			if (label == 0 || p[i - 1] == '-')
				return -1;
			label = 0;
		} else if (is_ldh(c)) {
			if (label == 0 && c == '-')
				return -1;
			if (++label > 63)
				return -1;
		} else {
			return -1;
		}
		out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	if (label == 0 || p[len - 1] == '-')
		return -1;
	out[len] = '\0';
	return 0;
}

int atrn_domains_has(const struct atrn_domains *d, const char *domain)
{
	size_t len = strlen(domain);
	if (len > 0 && domain[len - 1] == '.')
		len--;
	for (size_t i = 0; i < d->n; i++)
		if (strlen(d->v[i]) == len && strncasecmp(d->v[i], domain, len) == 0)
			return 1;
	return 0;
}

int atrn_parse_domains(const char *args, struct atrn_domains *out)
{
	out->n = 0;
	const char *p = args;
	if (*p == '\0')
		return 0;   /* "ATRN" alone: every domain the account may collect */
	for (;;) {
		const char *end = p;
		while (*end && *end != ',')
			end++;
		char name[ATRN_DOMAIN_MAX + 1];
		if (parse_domain(p, (size_t)(end - p), name) < 0)
			return 501;
		if (!atrn_domains_has(out, name)) {
			if (out->n >= ATRN_DOMAINS_MAX)
				return 501;
			memcpy(out->v[out->n++], name, strlen(name) + 1);
		}
		if (*end == '\0')
			return 0;
		p = end + 1;
		while (*p == ' ')
			p++;   /* tolerated after a comma */
	}
}
