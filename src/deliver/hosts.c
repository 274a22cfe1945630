/*
 * hosts: parsing and lookup of the delivery hosts table (hosts.h has the format).
 *
 * Trust: the file is written by the administrator but parsed as untrusted input
 * (bounded lines through tablefile, every field checked, errors as
 * "file:line: message"); lookups take names that came from the network (MX
 * answers, recipient domains) and only compare them.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "deliver/hosts.h"
#include "local/tablefile.h"
#include "util/dnsname.h"
#include "util/xalloc.h"

#define HOSTS_NAME_MAX 253

/*
 * RFC 1035 2.3.1 labels (letters, digits, '-'), plus '_', which real hosts files
 * carry (seed 004 writes "my_imail_machine").  At most 253 characters.
 */
static int name_valid(const char *s)
{
	return dnsname_valid(s, strlen(s), DNSNAME_UNDERSCORE);
}

/* "1.2.3.4", "1.2.3.4:25", "2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:25". 0 or -1 with *why. */
static int parse_addr(const char *s, struct hosts_addr *a, const char **why)
{
	char host[64];
	const char *port = NULL;
	size_t hlen;
	unsigned char bin[16];
	int bracket = s[0] == '[';

	memset(a, 0, sizeof(*a));
	if (bracket) {
		const char *end = strchr(s, ']');
		if (end == NULL) {
			*why = "missing ']'";
			return -1;
		}
		hlen = (size_t)(end - s - 1);
		if (end[1] == ':')
			port = end + 2;
		else if (end[1] != '\0') {
			*why = "junk after ']'";
			return -1;
		}
		s++;
	} else {
		const char *c = strchr(s, ':');
		if (c != NULL && strchr(c + 1, ':') == NULL) {
			hlen = (size_t)(c - s);
			port = c + 1;
		} else {
			hlen = strlen(s);
		}
	}
	if (hlen == 0 || hlen >= sizeof(host)) {
		*why = "bad address";
		return -1;
	}
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (inet_pton(AF_INET, host, bin) == 1) {
		a->family = AF_INET;
		if (bracket) {
			*why = "brackets are for IPv6 addresses";
			return -1;
		}
	} else if (inet_pton(AF_INET6, host, bin) == 1) {
		a->family = AF_INET6;
	} else {
		*why = "bad address";
		return -1;
	}
	if (inet_ntop(a->family, bin, a->ip, sizeof(a->ip)) == NULL) {
		*why = "bad address";
		return -1;
	}
	if (port != NULL) {
		char *e;
		long v;
		if (*port < '0' || *port > '9') {
			*why = "bad port";
			return -1;
		}
		errno = 0;
		v = strtol(port, &e, 10);
		if (errno != 0 || *e != '\0' || v < 1 || v > 65535) {
			*why = "bad port (1-65535)";
			return -1;
		}
		a->port = (unsigned short)v;
	}
	return 0;
}

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

static const struct hosts_entry *find_form(const struct hosts_table *t, const char *name, int subdomains)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].subdomains == subdomains && strcmp(t->v[i].name, name) == 0)
			return &t->v[i];
	return NULL;
}

static void parse_line(struct table_lines *tl, char *line, void *ctx)
{
	static const char sep[] = " \t";
	struct hosts_table *t = ctx;
	struct hosts_entry e;
	char *save = NULL, *hash = strchr(line, '#');
	char *name, *tok;
	const char *why;

	if (hash != NULL)
		*hash = '\0';
	if ((name = strtok_r(line, sep, &save)) == NULL)
		return;
	memset(&e, 0, sizeof(e));
	e.line = tl->line;
	if (strncmp(name, "*.", 2) == 0) {
		e.subdomains = 1;
		name += 2;
	} else if (name[0] == '.') {
		e.subdomains = 1;
		name++;
	}
	size_t nlen = strlen(name);
	if (nlen > 1 && name[nlen - 1] == '.')
		name[nlen - 1] = '\0';
	/* An address where the name belongs: an /etc/hosts habit ("address name"). */
	unsigned char bin[16];
	if (inet_pton(AF_INET, name, bin) == 1 || strchr(name, ':') != NULL || name[0] == '[') {
		tablefile_err(tl, "the name comes first: \"name address[:port] ...\", not \"%s ...\"", name);
		return;
	}
	if (!name_valid(name)) {
		tablefile_err(tl, "invalid name \"%s\"", name);
		return;
	}
	while ((tok = strtok_r(NULL, sep, &save)) != NULL) {
		if (e.naddrs >= HOSTS_MAX_ADDRS) {
			tablefile_err(tl, "more than %d addresses", HOSTS_MAX_ADDRS);
			return;
		}
		if (parse_addr(tok, &e.addrs[e.naddrs], &why) != 0) {
			tablefile_err(tl, "%s \"%s\"", why, tok);
			return;
		}
		e.naddrs++;
	}
	if (e.naddrs == 0) {
		tablefile_err(tl, "no address for \"%s\"", name);
		return;
	}
	lower(name);
	const struct hosts_entry *dup = find_form(t, name, e.subdomains);
	if (dup != NULL) {
		tablefile_err(tl, "duplicate entry \"%s%s\" (first on line %d)", e.subdomains ? "." : "", name, dup->line);
		return;
	}
	e.name = xstrdup(name);
	t->v = xreallocarray(t->v, t->n + 1, sizeof(*t->v));
	t->v[t->n++] = e;
}

int hosts_parse(struct hosts_table *t, FILE *fp, const char *name, struct buf *errors)
{
	return tablefile_parse(fp, name, errors, parse_line, t);
}

int hosts_load(struct hosts_table *t, const char *path, struct buf *errors)
{
	return tablefile_load(path, errors, parse_line, t);
}

void hosts_free(struct hosts_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].name);
	free(t->v);
	t->v = NULL;
	t->n = 0;
}

const struct hosts_entry *hosts_lookup(const struct hosts_table *t, const char *name)
{
	char key[HOSTS_NAME_MAX + 2];
	size_t len;
	const struct hosts_entry *best = NULL;

	if (t == NULL || t->n == 0 || name == NULL)
		return NULL;
	len = strlen(name);
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > HOSTS_NAME_MAX)
		return NULL;
	memcpy(key, name, len);
	key[len] = '\0';
	lower(key);
	const struct hosts_entry *exact = find_form(t, key, 0);
	if (exact != NULL)
		return exact;
	/* ".suffix": the longest suffix that ends at a label boundary, the name itself excluded. */
	for (size_t i = 0; i < t->n; i++) {
		const struct hosts_entry *e = &t->v[i];
		size_t el = strlen(e->name);
		if (!e->subdomains || el >= len || key[len - el - 1] != '.' || strcmp(key + len - el, e->name) != 0)
			continue;
		if (best == NULL || el > strlen(best->name))
			best = e;
	}
	return best;
}
