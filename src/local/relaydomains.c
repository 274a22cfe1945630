/*
 * relaydomains: parse and look up the relay domains table and its recipients
 * lists (relaydomains.h has the format).
 *
 * Trust: the files are the administrator's but parsed as untrusted input
 * (bounded lines through tablefile, every field checked, "file:line: message"
 * errors, a bad line left out); lookups take domains and local parts from the
 * network and only compare them.
 */
#include "local/relaydomains.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "local/domains.h"
#include "local/tablefile.h"
#include "util/dnsname.h"
#include "util/xalloc.h"

#define RELAY_FIELDS_MAX 8
#define RELAY_RCPTS_MAX 1000000
#define RELAY_LOCAL_MAX 64      /* RFC 5321 4.5.3.1.1 */

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* Host names as in the hosts table: RFC 1035 labels, plus '_' (real hosts files carry it). */
static int host_name_valid(const char *s)
{
	return dnsname_valid(s, strlen(s), DNSNAME_UNDERSCORE);
}

int relay_parse_hostport(const char *s, char *host, size_t hsz, unsigned *port, int only_ip, const char **why)
{
	char h[256];
	const char *p = NULL;
	size_t hlen;
	unsigned char bin[16];
	int bracket = s[0] == '[';

	*port = 25;
	if (bracket) {
		const char *end = strchr(s, ']');
		if (!end) {
			*why = "missing ']'";
			return -1;
		}
		hlen = (size_t)(end - s - 1);
		if (end[1] == ':')
			p = end + 2;
		else if (end[1] != '\0') {
			*why = "junk after ']'";
			return -1;
		}
		s++;
	} else {
		const char *c = strchr(s, ':');
		if (c && !strchr(c + 1, ':')) {
			hlen = (size_t)(c - s);
			p = c + 1;
		} else {
			hlen = strlen(s);
		}
	}
	if (hlen == 0 || hlen >= sizeof(h)) {
		*why = "bad host";
		return -1;
	}
	memcpy(h, s, hlen);
	h[hlen] = '\0';
	if (inet_pton(AF_INET, h, bin) == 1) {
		if (bracket) {
			*why = "brackets are for IPv6 addresses";
			return -1;
		}
		inet_ntop(AF_INET, bin, h, sizeof(h));
	} else if (inet_pton(AF_INET6, h, bin) == 1) {
		inet_ntop(AF_INET6, bin, h, sizeof(h));
	} else if (bracket || only_ip) {
		*why = only_ip ? "not an IP address" : "bad IPv6 address";
		return -1;
	} else {
		size_t n = strlen(h);
		if (n > 1 && h[n - 1] == '.')
			h[n - 1] = '\0';
		if (!host_name_valid(h)) {
			*why = "bad host name";
			return -1;
		}
		lower(h);
	}
	if (p) {
		char *e;
		if (*p < '1' || *p > '9') {
			*why = "bad port";
			return -1;
		}
		errno = 0;
		long v = strtol(p, &e, 10);
		if (errno || *e || v < 1 || v > 65535) {
			*why = "bad port (1-65535)";
			return -1;
		}
		*port = (unsigned)v;
	}
	if (strlen(h) >= hsz) {
		*why = "host too long";
		return -1;
	}
	snprintf(host, hsz, "%s", h);
	return 0;
}

static void entry_free(struct relay_domain *d)
{
	free(d->name);
	free(d->host);
	free(d->recipients_file);
	for (size_t i = 0; i < d->nrcpts; i++)
		free(d->rcpts[i]);
	free(d->rcpts);
	memset(d, 0, sizeof(*d));
}

void relaydomains_free(struct relay_domain_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		entry_free(&t->v[i]);
	free(t->v);
	t->v = NULL;
	t->n = 0;
}

static const struct relay_domain *find_form(const struct relay_domain_table *t, const char *name, int sub)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].subdomains == sub && strcmp(t->v[i].name, name) == 0)
			return &t->v[i];
	return NULL;
}

const struct relay_domain *relaydomains_find(const struct relay_domain_table *t, const char *domain)
{
	char name[256];
	size_t n;
	const struct relay_domain *best = NULL;

	if (!t || !domain || (n = strlen(domain)) == 0 || n >= sizeof(name))
		return NULL;
	memcpy(name, domain, n + 1);
	if (n > 1 && name[n - 1] == '.')
		name[--n] = '\0';
	lower(name);
	const struct relay_domain *exact = find_form(t, name, 0);
	if (exact)
		return exact;
	/* ".suffix": the longest one that ends at a label boundary, the name itself excluded. */
	for (size_t i = 0; i < t->n; i++) {
		const struct relay_domain *d = &t->v[i];
		size_t k = strlen(d->name);
		if (!d->subdomains || k >= n || name[n - k - 1] != '.' || strcmp(name + n - k, d->name) != 0)
			continue;
		if (!best || k > strlen(best->name))
			best = d;
	}
	return best;
}

/* Cut the line at the first field that starts with '#' (a comment). */
static void strip_comment(char *line)
{
	for (char *p = line; *p; p++)
		if (*p == '#' && (p == line || p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			return;
		}
}

static void parse_line(struct table_lines *tl, char *line, void *ctx)
{
	struct relay_domain_table *t = ctx;
	char *f[RELAY_FIELDS_MAX + 1];
	struct relay_domain d;
	int have_verify = 0;
	const char *why;

	strip_comment(line);
	size_t nf = tablefile_split_ws(line, f, RELAY_FIELDS_MAX + 1);
	if (nf == 0)
		return;
	if (nf > RELAY_FIELDS_MAX) {
		tablefile_err(tl, "too many fields");
		return;
	}
	memset(&d, 0, sizeof(d));
	d.line = tl->line;
	d.port = 25;
	char *name = f[0];
	if (strncmp(name, "*.", 2) == 0) {
		d.subdomains = 1;
		name += 2;
	} else if (name[0] == '.') {
		d.subdomains = 1;
		name++;
	}
	if (!domain_name_canon(name)) {
		tablefile_err(tl, "invalid domain \"%s\"", f[0]);
		return;
	}
	for (size_t i = 1; i < nf; i++) {
		char *eq = strchr(f[i], '=');
		if (!eq) {
			char host[256];
			if (d.host) {
				tablefile_err(tl, "more than one host (\"%s\")", f[i]);
				goto bad;
			}
			if (relay_parse_hostport(f[i], host, sizeof(host), &d.port, 0, &why) < 0) {
				tablefile_err(tl, "%s \"%s\"", why, f[i]);
				goto bad;
			}
			d.host = xstrdup(host);
			continue;
		}
		*eq = '\0';
		const char *key = f[i], *val = eq + 1;
		if (strcmp(key, "verify") == 0) {
			if (have_verify) {
				tablefile_err(tl, "verify= given twice");
				goto bad;
			}
			have_verify = 1;
			if (strcmp(val, "none") == 0)
				d.verify = RELAY_VERIFY_NONE;
			else if (strcmp(val, "list") == 0)
				d.verify = RELAY_VERIFY_LIST;
			else if (strcmp(val, "probe") == 0)
				d.verify = RELAY_VERIFY_PROBE;
			else {
				tablefile_err(tl, "verify=%s: want none, list or probe", val);
				goto bad;
			}
		} else if (strcmp(key, "recipients") == 0) {
			if (d.recipients_file || *val == '\0') {
				tablefile_err(tl, "%s", *val ? "recipients= given twice" : "empty recipients= value");
				goto bad;
			}
			d.recipients_file = xstrdup(val);
		} else {
			tablefile_err(tl, "unknown key \"%s\" (want verify= or recipients=)", key);
			goto bad;
		}
	}
	if (d.recipients_file && !have_verify)
		d.verify = RELAY_VERIFY_LIST;
	if (d.verify == RELAY_VERIFY_LIST && !d.recipients_file) {
		tablefile_err(tl, "verify=list needs recipients=FILE");
		goto bad;
	}
	if (d.verify != RELAY_VERIFY_LIST && d.recipients_file) {
		tablefile_err(tl, "recipients= is only for verify=list");
		goto bad;
	}
	if (d.verify == RELAY_VERIFY_PROBE && !d.host) {
		/* The MX of a backup-MX domain is down exactly when we are needed: no probing it. */
		tablefile_err(tl, "verify=probe needs a host to ask");
		goto bad;
	}
	const struct relay_domain *dup = find_form(t, name, d.subdomains);
	if (dup) {
		tablefile_err(tl, "duplicate entry \"%s%s\" (first on line %d)", d.subdomains ? "." : "", name, dup->line);
		goto bad;
	}
	d.name = xstrdup(name);
	t->v = tablefile_grow(t->v, t->n, sizeof(*t->v));
	t->v[t->n++] = d;
	return;
bad:
	entry_free(&d);
}

int relaydomains_parse(struct relay_domain_table *t, FILE *fp, const char *name, struct buf *errors)
{
	return tablefile_parse(fp, name, errors, parse_line, t);
}

/* ---- recipients lists ---------------------------------------------------------------- */

struct list_ctx {
	struct relay_domain *d;
};

static void list_line(struct table_lines *tl, char *line, void *ctx)
{
	struct relay_domain *d = ((struct list_ctx *)ctx)->d;
	char *f[2];

	/* '#' only at the start of a field: a local part may contain '#' (RFC 5322 atext). */
	strip_comment(line);
	size_t nf = tablefile_split_ws(line, f, 2);
	if (nf == 0)
		return;
	if (nf > 1) {
		tablefile_err(tl, "one address per line");
		return;
	}
	char *a = f[0];
	if (a[0] == '<' && a[strlen(a) - 1] == '>' && strlen(a) > 2) {
		a[strlen(a) - 1] = '\0';
		a++;
	}
	char *at = strrchr(a, '@');
	char addr[600];
	if (at) {
		*at = '\0';
		char *dom = at + 1;
		size_t n = strlen(dom);
		if (n > 1 && dom[n - 1] == '.')
			dom[n - 1] = '\0';
		if (!domain_name_valid(dom)) {
			tablefile_err(tl, "invalid domain in \"%s@%s\"", a, dom);
			return;
		}
		snprintf(addr, sizeof(addr), "%s@%s", a, dom);
	} else {
		if (d->subdomains) {
			tablefile_err(tl, "\"%s\": write the domain too (the table's line covers subdomains)", a);
			return;
		}
		snprintf(addr, sizeof(addr), "%s@%s", a, d->name);
	}
	size_t llen = at ? (size_t)(at - a) : strlen(a);
	if (llen == 0 || llen > RELAY_LOCAL_MAX) {
		tablefile_err(tl, "bad local part in \"%s\"", f[0]);
		return;
	}
	if (d->nrcpts >= RELAY_RCPTS_MAX) {
		tablefile_err(tl, "more than %d addresses", RELAY_RCPTS_MAX);
		return;
	}
	lower(addr);
	d->rcpts = tablefile_grow(d->rcpts, d->nrcpts, sizeof(*d->rcpts));
	d->rcpts[d->nrcpts++] = xstrdup(addr);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void sort_list(struct relay_domain *d)
{
	if (d->nrcpts > 1)
		qsort(d->rcpts, d->nrcpts, sizeof(*d->rcpts), cmp_str);
}

int relaydomains_parse_list(struct relay_domain *d, FILE *fp, const char *name, struct buf *errors)
{
	struct list_ctx c = { d };
	int n = tablefile_parse(fp, name, errors, list_line, &c);
	sort_list(d);
	return n;
}

int relaydomain_has_rcpt(const struct relay_domain *d, const char *local, const char *domain)
{
	char key[600];
	int n = snprintf(key, sizeof(key), "%s@%s", local, domain);
	if (n < 0 || (size_t)n >= sizeof(key) || d->nrcpts == 0)
		return 0;
	if (n > 1 && key[n - 1] == '.')
		key[n - 1] = '\0';
	lower(key);
	const char *k = key;
	return bsearch(&k, d->rcpts, d->nrcpts, sizeof(*d->rcpts), cmp_str) != NULL;
}

int relaydomains_load(struct relay_domain_table *t, const char *path, const char *dir, int lists, struct buf *errors)
{
	memset(t, 0, sizeof(*t));
	int n = tablefile_load(path, errors, parse_line, t);
	for (size_t i = 0; lists && i < t->n; i++) {
		struct relay_domain *d = &t->v[i];
		if (!d->recipients_file)
			continue;
		char *p = d->recipients_file[0] == '/' || !dir ? xstrdup(d->recipients_file) :
		    xasprintf("%s/%s", dir, d->recipients_file);
		FILE *fp = fopen(p, "r");
		if (!fp) {
			buf_appendf(errors, "%s:%d: recipients file %s: %s\n", path, d->line, p, strerror(errno));
			n++;
		} else {
			struct list_ctx c = { d };
			n += tablefile_parse(fp, p, errors, list_line, &c);
			fclose(fp);
			sort_list(d);
		}
		free(p);
	}
	return n;
}

const char *relay_verify_name(enum relay_verify v)
{
	switch (v) {
	case RELAY_VERIFY_NONE: return "none";
	case RELAY_VERIFY_LIST: return "list";
	case RELAY_VERIFY_PROBE: return "probe";
	}
	return "?";
}
