/*
 * domains: parse, look up and rewrite the local domains table (L1).
 * The file is written by the administrator or tsubamectl; every line is checked
 * and reported as "file:line: message", and a bad line is left out of the table.
 */
#include "local/domains.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "local/tablefile.h"
#include "util/dnsname.h"
#include "util/xalloc.h"

#define DOMAIN_NAME_MAX 253 /* RFC 1035 2.3.4, without the trailing dot */
#define DOMAIN_MAX_FIELDS 16
#define DOMAIN_MAX_ALIASES 64
#define DOMAIN_MAX_IPS 16

int domain_name_valid(const char *name)
{
	return dnsname_valid(name, strlen(name), 0);
}

int domain_name_canon(char *name)
{
	size_t n = strlen(name);
	if (n > 1 && name[n - 1] == '.')
		name[--n] = '\0';
	for (char *c = name; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	return domain_name_valid(name);
}

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* A non-negative number; sizes may carry k, m or g as in the main configuration. */
int domain_parse_number(const char *s, int size, long *out)
{
	char *end;
	long mul = 1;

	if (!isdigit((unsigned char)s[0]))
		return -1;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	if (size && *end && end[1] == '\0') {
		switch (tolower((unsigned char)*end)) {
		case 'k': mul = 1024L; end++; break;
		case 'm': mul = 1024L * 1024; end++; break;
		case 'g': mul = 1024L * 1024 * 1024; end++; break;
		default: break;
		}
	}
	if (*end != '\0' || v > (unsigned long long)(LONG_MAX / mul))
		return -1;
	*out = (long)v * mul;
	return 0;
}

void domain_free(struct domain *d)
{
	free(d->name);
	for (size_t i = 0; i < d->naliases; i++)
		free(d->aliases[i]);
	free(d->aliases);
	for (size_t i = 0; i < d->nips; i++)
		free(d->ips[i]);
	free(d->ips);
	free(d->hostname);
	memset(d, 0, sizeof(*d));
}

int domain_addr_normalize(const char *addr, char *out, size_t outsz)
{
	unsigned char bin[sizeof(struct in6_addr)];

	if (inet_pton(AF_INET, addr, bin) == 1)
		return inet_ntop(AF_INET, bin, out, (socklen_t)outsz) ? 0 : -1;
	if (inet_pton(AF_INET6, addr, bin) != 1)
		return -1;
	/* A connection to an IPv4 address on a dual-stack socket shows it as ::ffff:a.b.c.d. */
	if (IN6_IS_ADDR_V4MAPPED((struct in6_addr *)bin))
		return inet_ntop(AF_INET, bin + 12, out, (socklen_t)outsz) ? 0 : -1;
	return inet_ntop(AF_INET6, bin, out, (socklen_t)outsz) ? 0 : -1;
}

int domain_parse_ips(struct domain *d, const char *list, char *err, size_t errsz)
{
	const char *p = list;

	if (*list == '\0') {
		snprintf(err, errsz, "empty ip= value");
		return -1;
	}
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char one[INET6_ADDRSTRLEN + 8], norm[INET6_ADDRSTRLEN];
		if (len == 0) {
			snprintf(err, errsz, "empty address in ip=%s", list);
			return -1;
		}
		if (len < sizeof(one)) {
			memcpy(one, p, len);
			one[len] = '\0';
		}
		if (len >= sizeof(one) || domain_addr_normalize(one, norm, sizeof(norm)) < 0) {
			snprintf(err, errsz, "invalid address \"%.*s\" in ip= (numeric IPv4 or IPv6 only)", (int)(len > 64 ? 64 : len), p);
			return -1;
		}
		for (size_t i = 0; i < d->nips; i++)
			if (strcmp(d->ips[i], norm) == 0) {
				snprintf(err, errsz, "address %s given twice in ip=", norm);
				return -1;
			}
		if (d->nips >= DOMAIN_MAX_IPS) {
			snprintf(err, errsz, "too many addresses in ip= (at most %d)", DOMAIN_MAX_IPS);
			return -1;
		}
		d->ips = xreallocarray(d->ips, d->nips + 1, sizeof(*d->ips));
		d->ips[d->nips++] = xstrdup(norm);
		if (!comma)
			return 0;
		p = comma + 1;
	}
}

const struct domain *domains_hostname_clash(const struct domain_table *t, const struct domain *d)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct domain *o = &t->v[i];
		if (o == d || strcasecmp(o->name, d->name) == 0 || !o->hostname || !d->hostname)
			continue;
		for (size_t j = 0; j < o->nips; j++)
			for (size_t k = 0; k < d->nips; k++)
				if (strcmp(o->ips[j], d->ips[k]) == 0 && strcasecmp(o->hostname, d->hostname) != 0)
					return o;
	}
	return NULL;
}

void domains_free(struct domain_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		domain_free(&t->v[i]);
	free(t->v);
	t->v = NULL;
	t->n = 0;
}

const struct domain *domains_find(const struct domain_table *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct domain *d = &t->v[i];
		if (strcasecmp(d->name, name) == 0)
			return d;
		for (size_t j = 0; j < d->naliases; j++)
			if (strcasecmp(d->aliases[j], name) == 0)
				return d;
	}
	return NULL;
}

/* Is name already used as a domain or host alias? */
static int name_taken(const struct domain_table *t, const char *name)
{
	return domains_find(t, name) != NULL;
}

static void append(struct domain_table *t, struct domain *d)
{
	t->v = tablefile_grow(t->v, t->n, sizeof(*t->v));
	t->v[t->n++] = *d;
}

static int parse_aliases(struct table_lines *lc, const struct domain_table *t, struct domain *d, char *list)
{
	char *save = NULL;

	if (*list == '\0') {
		tablefile_err(lc, "%s", "empty aliases= value");
		return -1;
	}
	if (list[strlen(list) - 1] == ',' || list[0] == ',' || strstr(list, ",,")) {
		tablefile_err(lc, "empty name in aliases=%s", list);
		return -1;
	}
	for (char *a = strtok_r(list, ",", &save); a; a = strtok_r(NULL, ",", &save)) {
		lower(a);
		if (!domain_name_valid(a)) {
			tablefile_err(lc, "invalid host alias \"%s\"", a);
			return -1;
		}
		int dup = strcmp(a, d->name) == 0 || name_taken(t, a);
		for (size_t i = 0; i < d->naliases && !dup; i++)
			dup = strcmp(d->aliases[i], a) == 0;
		if (dup) {
			tablefile_err(lc, "duplicate domain or host alias \"%s\"", a);
			return -1;
		}
		if (d->naliases >= DOMAIN_MAX_ALIASES) {
			tablefile_err(lc, "%s", "too many host aliases");
			return -1;
		}
		d->aliases = xreallocarray(d->aliases, d->naliases + 1, sizeof(*d->aliases));
		d->aliases[d->naliases++] = xstrdup(a);
	}
	return 0;
}

static void parse_line(struct table_lines *lc, char *line, void *ctx)
{
	struct domain_table *t = ctx;
	char *f[DOMAIN_MAX_FIELDS + 1];
	size_t nf = tablefile_split_ws(line, f, DOMAIN_MAX_FIELDS + 1);
	struct domain d = { .line = lc->line };
	int seen_aliases = 0;

	if (nf == 0 || f[0][0] == '#')
		return;
	if (nf > DOMAIN_MAX_FIELDS) {
		tablefile_err(lc, "%s", "too many fields");
		return;
	}
	lower(f[0]);
	if (!domain_name_valid(f[0])) {
		tablefile_err(lc, "invalid domain name \"%s\"", f[0]);
		return;
	}
	if (name_taken(t, f[0])) {
		tablefile_err(lc, "duplicate domain or host alias \"%s\"", f[0]);
		return;
	}
	d.name = xstrdup(f[0]);
	for (size_t i = 1; i < nf; i++) {
		char *eq = strchr(f[i], '=');
		if (eq == NULL) {
			tablefile_err(lc, "expected key=value, got \"%s\"", f[i]);
			goto fail;
		}
		*eq = '\0';
		const char *key = f[i];
		char *val = eq + 1;
		long *num = NULL;
		int size = 0;
		if (strcmp(key, "aliases") == 0) {
			if (seen_aliases++) {
				tablefile_err(lc, "%s", "aliases= given twice");
				goto fail;
			}
			if (parse_aliases(lc, t, &d, val) < 0)
				goto fail;
			continue;
		} else if (strcmp(key, "ip") == 0) {
			char why[160];
			if (d.nips) {
				tablefile_err(lc, "%s", "ip= given twice");
				goto fail;
			}
			if (domain_parse_ips(&d, val, why, sizeof(why)) < 0) {
				tablefile_err(lc, "%s", why);
				goto fail;
			}
			continue;
		} else if (strcmp(key, "hostname") == 0) {
			if (d.hostname) {
				tablefile_err(lc, "%s", "hostname= given twice");
				goto fail;
			}
			lower(val);
			if (!domain_name_valid(val)) {
				tablefile_err(lc, "invalid hostname \"%s\"", val);
				goto fail;
			}
			d.hostname = xstrdup(val);
			continue;
		} else if (strcmp(key, "max_accounts") == 0) {
			num = &d.max_accounts;
		} else if (strcmp(key, "mailbox_limit") == 0) {
			num = &d.mailbox_limit;
			size = 1;
		} else if (strcmp(key, "max_messages") == 0) {
			num = &d.max_messages;
		} else if (strcmp(key, "max_message_size") == 0) {
			num = &d.max_message_size;
			size = 1;
		} else {
			tablefile_err(lc, "unknown key \"%s\"", key);
			goto fail;
		}
		if (domain_parse_number(val, size, num) < 0) {
			tablefile_err(lc, "bad number for %s: \"%s\"", key, val);
			goto fail;
		}
	}
	if (d.hostname && d.nips == 0) {
		/* The greeting is chosen by the address the client connected to: without one the name has no use. */
		tablefile_err(lc, "hostname=%s needs ip=: it is the greeting on the domain's own addresses", d.hostname);
		goto fail;
	}
	const struct domain *clash = domains_hostname_clash(t, &d);
	if (clash) {
		tablefile_err(lc, "hostname=%s: an address in ip= already greets as %s (%s, line %d)", d.hostname,
		    clash->hostname, clash->name, clash->line);
		goto fail;
	}
	append(t, &d);
	return;
fail:
	domain_free(&d);
}

int domains_parse(struct domain_table *t, FILE *fp, const char *name, struct buf *errors)
{
	return tablefile_parse(fp, name, errors, parse_line, t);
}

int domains_load(struct domain_table *t, const char *path, struct buf *errors)
{
	return tablefile_load(path, errors, parse_line, t);
}

static int write_domains(FILE *fp, const void *ctx)
{
	const struct domain_table *t = ctx;

	fprintf(fp, "# Local domains (L1); see docs/tables.md.  Rewritten by tsubamectl.\n");
	for (size_t i = 0; i < t->n; i++) {
		const struct domain *d = &t->v[i];
		fputs(d->name, fp);
		for (size_t j = 0; j < d->naliases; j++)
			fprintf(fp, "%s%s", j ? "," : " aliases=", d->aliases[j]);
		if (d->max_accounts)
			fprintf(fp, " max_accounts=%ld", d->max_accounts);
		if (d->mailbox_limit)
			fprintf(fp, " mailbox_limit=%ld", d->mailbox_limit);
		if (d->max_messages)
			fprintf(fp, " max_messages=%ld", d->max_messages);
		if (d->max_message_size)
			fprintf(fp, " max_message_size=%ld", d->max_message_size);
		for (size_t j = 0; j < d->nips; j++)
			fprintf(fp, "%s%s", j ? "," : " ip=", d->ips[j]);
		if (d->hostname)
			fprintf(fp, " hostname=%s", d->hostname);
		fputc('\n', fp);
	}
	return ferror(fp) ? -1 : 0;
}

int domains_save(const struct domain_table *t, const char *path)
{
	return tablefile_save(path, 0, write_domains, t);
}

/* The domain of t holding name as its name or a host alias, other than the one at skip; NULL when free. */
static const struct domain *owner(const struct domain_table *t, const char *name, size_t skip)
{
	for (size_t i = 0; i < t->n; i++) {
		if (i == skip)
			continue;
		if (strcasecmp(t->v[i].name, name) == 0)
			return &t->v[i];
		for (size_t j = 0; j < t->v[i].naliases; j++)
			if (strcasecmp(t->v[i].aliases[j], name) == 0)
				return &t->v[i];
	}
	return NULL;
}

/* What parse_line checks, for a domain built by a program; skip = the entry it replaces, or (size_t)-1. */
static int valid_for(const struct domain_table *t, const struct domain *d, size_t skip)
{
	char norm[INET6_ADDRSTRLEN];

	if (!domain_name_valid(d->name) || owner(t, d->name, skip))
		return 0;
	for (size_t i = 0; i < d->naliases; i++) {
		if (!domain_name_valid(d->aliases[i]) || owner(t, d->aliases[i], skip) ||
		    strcasecmp(d->aliases[i], d->name) == 0)
			return 0;
		for (size_t j = 0; j < i; j++)
			if (strcasecmp(d->aliases[i], d->aliases[j]) == 0)
				return 0;
	}
	for (size_t i = 0; i < d->nips; i++) {
		if (domain_addr_normalize(d->ips[i], norm, sizeof(norm)) < 0 || strcmp(norm, d->ips[i]) != 0)
			return 0;
		for (size_t j = 0; j < i; j++)
			if (strcmp(d->ips[i], d->ips[j]) == 0)
				return 0;
	}
	if (d->hostname && (!domain_name_valid(d->hostname) || d->nips == 0))
		return 0;
	/* The entry being replaced has d's name: domains_hostname_clash() passes over it. */
	return domains_hostname_clash(t, d) == NULL;
}

static struct domain copy_domain(const struct domain *d)
{
	struct domain c = *d;
	c.name = xstrdup(d->name);
	lower(c.name);
	c.aliases = d->naliases ? xcalloc(d->naliases, sizeof(*c.aliases)) : NULL;
	for (size_t i = 0; i < d->naliases; i++) {
		c.aliases[i] = xstrdup(d->aliases[i]);
		lower(c.aliases[i]);
	}
	c.ips = d->nips ? xcalloc(d->nips, sizeof(*c.ips)) : NULL;
	for (size_t i = 0; i < d->nips; i++)
		c.ips[i] = xstrdup(d->ips[i]);
	if (d->hostname) {
		c.hostname = xstrdup(d->hostname);
		lower(c.hostname);
	}
	return c;
}

int domains_add(struct domain_table *t, const struct domain *d)
{
	if (!valid_for(t, d, (size_t)-1))
		return -1;
	struct domain c = copy_domain(d);
	append(t, &c);
	return 0;
}

int domains_update(struct domain_table *t, const struct domain *d)
{
	size_t at = (size_t)-1;
	for (size_t i = 0; i < t->n && at == (size_t)-1; i++)
		if (strcasecmp(t->v[i].name, d->name) == 0)
			at = i;
	if (at == (size_t)-1 || !valid_for(t, d, at))
		return -1;
	/* Copy before freeing: d may point into the entry it replaces. */
	struct domain c = copy_domain(d);
	c.line = t->v[at].line;
	domain_free(&t->v[at]);
	t->v[at] = c;
	return 0;
}

int domains_remove(struct domain_table *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++) {
		if (strcasecmp(t->v[i].name, name) != 0)
			continue;
		domain_free(&t->v[i]);
		memmove(&t->v[i], &t->v[i + 1], (t->n - i - 1) * sizeof(*t->v));
		t->n--;
		return 0;
	}
	return -1;
}
