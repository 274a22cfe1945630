/*
 * holdtab: parsing and lookups of the hold table, the ETRN argument parser and
 * the "is this route us?" check (holdtab.h has the format and the rules).
 *
 * Trust: the table is parsed as untrusted input, every field checked, errors
 * "file:line: message"; IP patterns go through the relay rules' own parser so
 * that both tables read addresses the same way.  ETRN arguments come from the
 * network: hold_node_parse() accepts only the RFC 1985 forms, byte by byte.
 */
#include "policy/holdtab.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "conf/config.h"
#include "local/tablefile.h"
#include "util/dnsname.h"
#include "util/xalloc.h"

static int is_alnum(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static void lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s + ('a' - 'A'));
}

/*
 * RFC 1035 2.3.1 labels (letters, digits, '-', not at either end of a label)
 * plus '_', as the hosts table reads them; n bytes, at most HOLD_NAME_MAX.
 */
static int name_valid(const char *s, size_t n)
{
	return dnsname_valid(s, n, DNSNAME_UNDERSCORE);
}

static int queue_name_valid(const char *s, size_t n)
{
	if (n == 0 || n > HOLD_QUEUE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_alnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
			return 0;
	return 1;
}

/* name equals d, or d ends with "." + name (ASCII case ignored; both without a trailing dot). */
static int at_or_below(const char *d, size_t dl, const char *name, int self, int below)
{
	size_t nl = strlen(name);
	if (self && dl == nl && strncasecmp(d, name, nl) == 0)
		return 1;
	return below && dl > nl && d[dl - nl - 1] == '.' && strncasecmp(d + dl - nl, name, nl) == 0;
}

/* ---- access lists ------------------------------------------------------- */

static void access_free(struct hold_access *a)
{
	relay_free(&a->ips);
	for (size_t i = 0; i < a->naccounts; i++)
		free(a->accounts[i]);
	free(a->accounts);
	memset(a, 0, sizeof(*a));
}

/* One allow= item: "*", user@domain, or an IP pattern.  0, or -1 with a reason in why. */
static int access_add(struct hold_access *a, const char *item, char *why, size_t whylen)
{
	if (strcmp(item, "*") == 0) {
		a->any = 1;
		return 0;
	}
	const char *at = strrchr(item, '@');
	if (at) {
		size_t ll = (size_t)(at - item);
		int ok = ll > 0 && ll <= 64 && name_valid(at + 1, strlen(at + 1));
		for (size_t i = 0; ok && i < ll; i++)
			ok = (unsigned char)item[i] > 0x20 && (unsigned char)item[i] < 0x7f && item[i] != '@';
		if (!ok) {
			snprintf(why, whylen, "bad account \"%s\" (user@domain)", item);
			return -1;
		}
		char *acct = xstrdup(item);
		lower(acct);
		a->accounts = xreallocarray(a->accounts, a->naccounts + 1, sizeof(*a->accounts));
		a->accounts[a->naccounts++] = acct;
		return 0;
	}
	/* The relay rules' parser reads the pattern: the same forms, the same checks. */
	struct relay_rules one = { NULL, 0 };
	struct buf ignored;
	buf_init(&ignored, 1024);
	int bad = relay_parse(&one, item, strlen(item), "allow", &ignored);
	buf_free(&ignored);
	if (bad || one.n != 1 || one.v[0].kind != RELAY_PAT_IP || one.v[0].action != RELAY_TRUE) {
		relay_free(&one);
		snprintf(why, whylen, "\"%s\" is not an IP pattern (192.0.2.7, 10.*.*.*, 192.0.2.0/24, 2001:db8::/32), "
		    "an account (user@domain) or *", item);
		return -1;
	}
	a->ips.v = xreallocarray(a->ips.v, a->ips.n + 1, sizeof(*a->ips.v));
	a->ips.v[a->ips.n++] = one.v[0];   /* the rule's text moves with it */
	free(one.v);
	return 0;
}

/* A comma-separated allow= list (no spaces inside).  0, or -1 with why. */
static int access_parse(struct hold_access *a, const char *list, char *why, size_t whylen)
{
	const char *p = list;
	if (*p == '\0') {
		snprintf(why, whylen, "empty allow= list");
		return -1;
	}
	for (;;) {
		size_t n = strcspn(p, ",");
		char item[300];
		if (n == 0 || n >= sizeof(item)) {
			snprintf(why, whylen, n == 0 ? "empty item in allow= list" : "allow= item too long");
			return -1;
		}
		memcpy(item, p, n);
		item[n] = '\0';
		if (access_add(a, item, why, whylen) < 0)
			return -1;
		if (p[n] == '\0')
			return 0;
		p += n + 1;
	}
}

int hold_access_allows(const struct hold_access *a, const char *client_ip, const char *auth_id)
{
	if (a->any)
		return 1;
	if (auth_id && *auth_id)
		for (size_t i = 0; i < a->naccounts; i++)
			if (strcasecmp(a->accounts[i], auth_id) == 0)
				return 1;
	return client_ip && a->ips.n && relay_match(&a->ips, client_ip, "", 1) != NULL;
}

int hold_may_release(const struct hold_table *t, const struct hold_entry *e, const char *client_ip,
    const char *auth_id)
{
	return hold_access_allows(e->has_allow ? &e->allow : &t->defaults, client_ip, auth_id);
}

int hold_may_collect(const struct hold_table *t, const struct hold_entry *e, const char *auth_id)
{
	const struct hold_access *a = e->has_allow ? &e->allow : &t->defaults;
	if (!auth_id || !*auth_id)
		return 0;
	for (size_t i = 0; i < a->naccounts; i++)
		if (strcasecmp(a->accounts[i], auth_id) == 0)
			return 1;
	return 0;
}

/* ---- route= ------------------------------------------------------------- */

/* "host", "host:port", "192.0.2.1:2525", "[2001:db8::1]:25".  0, or -1 with why. */
static int route_parse(const char *v, char **host, unsigned *port, char *why, size_t whylen)
{
	char h[HOLD_NAME_MAX + 1];
	const char *p = NULL;
	size_t hl;
	unsigned char bin[16];
	*port = 25;
	if (v[0] == '[') {
		const char *end = strchr(v, ']');
		if (!end || (end[1] != '\0' && end[1] != ':')) {
			snprintf(why, whylen, "bad route \"%s\" (want HOST[:PORT] or [IPv6][:PORT])", v);
			return -1;
		}
		hl = (size_t)(end - v - 1);
		if (hl == 0 || hl >= sizeof(h)) {
			snprintf(why, whylen, "bad IPv6 address in route \"%s\"", v);
			return -1;
		}
		memcpy(h, v + 1, hl);
		h[hl] = '\0';
		if (inet_pton(AF_INET6, h, bin) != 1) {
			snprintf(why, whylen, "bad IPv6 address in route \"%s\"", v);
			return -1;
		}
		if (end[1] == ':')
			p = end + 2;
	} else {
		const char *c = strchr(v, ':');
		if (c && strchr(c + 1, ':')) {
			snprintf(why, whylen, "an IPv6 route is written in brackets: \"[%s]\"", v);
			return -1;
		}
		hl = c ? (size_t)(c - v) : strlen(v);
		if (hl == 0 || hl >= sizeof(h)) {
			snprintf(why, whylen, "bad route \"%s\" (want HOST[:PORT])", v);
			return -1;
		}
		memcpy(h, v, hl);
		h[hl] = '\0';
		if (hl > 1 && h[hl - 1] == '.')
			h[--hl] = '\0';
		if (inet_pton(AF_INET, h, bin) != 1 && !name_valid(h, hl)) {
			snprintf(why, whylen, "bad host in route \"%s\"", v);
			return -1;
		}
		if (c)
			p = c + 1;
	}
	if (p) {
		unsigned long n = 0;
		size_t i = 0;
		for (; p[i] >= '0' && p[i] <= '9' && i < 6; i++)
			n = n * 10 + (unsigned long)(p[i] - '0');
		if (i == 0 || p[i] != '\0' || n < 1 || n > 65535 || p[0] == '0') {
			snprintf(why, whylen, "bad port in route \"%s\" (1-65535)", v);
			return -1;
		}
		*port = (unsigned)n;
	}
	lower(h);
	*host = xstrdup(h);
	return 0;
}

/* ---- the table ---------------------------------------------------------- */

static void entry_free(struct hold_entry *e)
{
	free(e->name);
	free(e->queue);
	free(e->route_host);
	access_free(&e->allow);
}

/* An entry already covering name itself (self) or its subdomains (below). */
static const struct hold_entry *find_cover(const struct hold_table *t, const char *name, int self, int below)
{
	for (size_t i = 0; i < t->n; i++) {
		const struct hold_entry *e = &t->v[i];
		if (strcmp(e->name, name) == 0 && ((self && e->self) || (below && e->below)))
			return e;
	}
	return NULL;
}

static void parse_line(struct table_lines *tl, char *line, void *ctx)
{
	struct hold_table *t = ctx;
	char *hash = strchr(line, '#');
	char *f[8];
	char why[512];
	if (hash)
		*hash = '\0';
	size_t n = tablefile_split_ws(line, f, 8);
	if (n == 0)
		return;
	if (n > 4) {
		tablefile_err(tl, "too many fields: a domain and at most allow=, route= and queue=");
		return;
	}
	struct hold_entry e;
	memset(&e, 0, sizeof(e));
	e.line = tl->line;
	e.route_port = 25;
	char shown[TABLE_LINE_MAX];
	snprintf(shown, sizeof(shown), "%s", f[0]);   /* as written, for the messages */
	char *name = f[0];
	if (name[0] == '@') {
		e.self = e.below = 1;
		name++;
	} else if (strncmp(name, "*.", 2) == 0) {
		e.below = 1;
		name += 2;
	} else {
		e.self = 1;
	}
	size_t nl = strlen(name);
	if (nl > 1 && name[nl - 1] == '.')
		name[--nl] = '\0';
	unsigned char bin[16];
	if (!name_valid(name, nl) || inet_pton(AF_INET, name, bin) == 1) {
		tablefile_err(tl, "invalid domain \"%s\" (want name, *.name or @name)", shown);
		return;
	}
	lower(name);
	for (size_t i = 1; i < n; i++) {
		char *eq = strchr(f[i], '=');
		if (!eq) {
			tablefile_err(tl, "\"%s\": settings are key=value (allow=, route=, queue=)", f[i]);
			goto bad;
		}
		*eq = '\0';
		const char *key = f[i], *val = eq + 1;
		if (strcmp(key, "allow") == 0) {
			if (e.has_allow) {
				tablefile_err(tl, "allow= given twice");
				goto bad;
			}
			e.has_allow = 1;
			if (access_parse(&e.allow, val, why, sizeof(why)) < 0) {
				tablefile_err(tl, "%s", why);
				goto bad;
			}
		} else if (strcmp(key, "route") == 0) {
			if (e.route_host) {
				tablefile_err(tl, "route= given twice");
				goto bad;
			}
			if (route_parse(val, &e.route_host, &e.route_port, why, sizeof(why)) < 0) {
				tablefile_err(tl, "%s", why);
				goto bad;
			}
		} else if (strcmp(key, "queue") == 0) {
			if (e.queue) {
				tablefile_err(tl, "queue= given twice");
				goto bad;
			}
			if (!queue_name_valid(val, strlen(val))) {
				tablefile_err(tl, "bad queue name \"%s\" (1-%d letters, digits, '.', '_', '-')", val, HOLD_QUEUE_MAX);
				goto bad;
			}
			e.queue = xstrdup(val);
			lower(e.queue);
		} else {
			tablefile_err(tl, "unknown setting \"%s\" (allow=, route=, queue=)", key);
			goto bad;
		}
	}
	const struct hold_entry *dup = find_cover(t, name, e.self, e.below);
	if (dup) {
		tablefile_err(tl, "\"%s\" overlaps the entry on line %d", shown, dup->line);
		goto bad;
	}
	e.name = xstrdup(name);
	t->v = tablefile_grow(t->v, t->n, sizeof(*t->v));
	t->v[t->n++] = e;
	return;
bad:
	entry_free(&e);
}

/* etrn_clients: the same items as allow=, one per list element. */
static int load_defaults(struct hold_table *t, char *const *v, size_t n, struct buf *errors)
{
	int bad = 0;
	char why[512];
	for (size_t i = 0; i < n; i++)
		if (access_add(&t->defaults, v[i], why, sizeof(why)) < 0) {
			buf_appendf(errors, "etrn_clients: %s\n", why);
			bad++;
		}
	return bad;
}

int hold_load(struct hold_table *t, const char *path, char *const *defaults, size_t ndefaults, struct buf *errors)
{
	memset(t, 0, sizeof(*t));
	int bad = load_defaults(t, defaults, ndefaults, errors);
	return bad + tablefile_load(path, errors, parse_line, t);
}

int hold_parse(struct hold_table *t, const char *text, size_t len, const char *name, char *const *defaults,
    size_t ndefaults, struct buf *errors)
{
	memset(t, 0, sizeof(*t));
	int bad = load_defaults(t, defaults, ndefaults, errors);
	if (len == 0)
		return bad;
	FILE *fp = fmemopen((void *)text, len, "r");
	if (!fp) {
		buf_appendf(errors, "%s: cannot read\n", name);
		return bad + 1;
	}
	bad += tablefile_parse(fp, name, errors, parse_line, t);
	fclose(fp);
	return bad;
}

void hold_free(struct hold_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		entry_free(&t->v[i]);
	free(t->v);
	access_free(&t->defaults);
	memset(t, 0, sizeof(*t));
}

const struct hold_entry *hold_lookup(const struct hold_table *t, const char *domain)
{
	if (!t || t->n == 0 || !domain)
		return NULL;
	size_t dl = strlen(domain);
	if (dl > 1 && domain[dl - 1] == '.')
		dl--;
	if (dl == 0 || dl > HOLD_NAME_MAX)
		return NULL;
	const struct hold_entry *best = NULL;
	for (size_t i = 0; i < t->n; i++) {
		const struct hold_entry *e = &t->v[i];
		if (at_or_below(domain, dl, e->name, e->self, 0))
			return e;   /* an entry for the domain itself wins */
		if (at_or_below(domain, dl, e->name, 0, e->below) && (!best || strlen(e->name) > strlen(best->name)))
			best = e;
	}
	return best;
}

const struct hold_entry *hold_lookup_addr(const struct hold_table *t, const char *addr)
{
	const char *at = addr ? strrchr(addr, '@') : NULL;
	return at ? hold_lookup(t, at + 1) : NULL;
}

/* ---- ETRN nodes --------------------------------------------------------- */

int hold_node_parse(const char *args, struct hold_node *n)
{
	memset(n, 0, sizeof(*n));
	if (args == NULL || args[0] == '\0')
		return 500;
	size_t len = strlen(args);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)args[i] <= 0x20 || (unsigned char)args[i] >= 0x7f)
			return 501;   /* spaces (a second word), controls, non-ASCII */
	const char *s = args;
	n->kind = HOLD_NODE_DOMAIN;
	if (*s == '@') {
		n->kind = HOLD_NODE_SUBDOMAINS;
		s++;
	} else if (*s == '#') {
		n->kind = HOLD_NODE_QUEUE;
		s++;
	}
	len = strlen(s);
	if (n->kind == HOLD_NODE_QUEUE) {
		if (!queue_name_valid(s, len))
			return 501;
	} else {
		if (len > 1 && s[len - 1] == '.')
			len--;
		unsigned char bin[16];
		char tmp[HOLD_NAME_MAX + 1];
		/* A fully qualified name (RFC 1985 5.3: "ETRN localname" is a 501), not an address. */
		if (!name_valid(s, len) || memchr(s, '.', len) == NULL)
			return 501;
		memcpy(tmp, s, len);
		tmp[len] = '\0';
		if (inet_pton(AF_INET, tmp, bin) == 1)
			return 501;
	}
	memcpy(n->name, s, len);
	n->name[len] = '\0';
	lower(n->name);
	return 0;
}

int hold_node_covers(const struct hold_node *n, const char *domain)
{
	if (n->kind == HOLD_NODE_QUEUE || !domain)
		return 0;
	size_t dl = strlen(domain);
	if (dl > 1 && domain[dl - 1] == '.')
		dl--;
	return at_or_below(domain, dl, n->name, 1, n->kind == HOLD_NODE_SUBDOMAINS);
}

int hold_node_concerns(const struct hold_table *t, const struct hold_node *n, const struct hold_entry *e)
{
	switch (n->kind) {
	case HOLD_NODE_QUEUE:
		return e->queue && strcmp(e->queue, n->name) == 0;
	case HOLD_NODE_DOMAIN:
		return hold_lookup(t, n->name) == e;
	case HOLD_NODE_SUBDOMAINS:
		/* the entry holding the name itself, and every entry for names below it */
		return hold_lookup(t, n->name) == e || at_or_below(e->name, strlen(e->name), n->name, 1, 1);
	}
	return 0;
}

int hold_node_selects(const struct hold_node *n, const struct hold_entry *e, const char *domain)
{
	if (n->kind == HOLD_NODE_QUEUE)
		return e->queue && strcmp(e->queue, n->name) == 0;
	return hold_node_covers(n, domain);
}

/* ---- is it us? ------------------------------------------------------------ */

/* The address in 4 or 16 bytes (IPv4-mapped IPv6 as IPv4); its family size, 0 when not an address. */
static size_t addr_bytes(const char *ip, unsigned char out[16])
{
	if (!ip || !*ip)
		return 0;
	if (inet_pton(AF_INET, ip, out) == 1)
		return 4;
	if (inet_pton(AF_INET6, ip, out) != 1)
		return 0;
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	if (memcmp(out, mapped, 12) == 0) {
		memmove(out, out + 12, 4);
		return 4;
	}
	return 16;
}

/* An address of this machine: loopback, or one of its interfaces' addresses. */
static int local_address(const unsigned char *a, size_t n)
{
	static const unsigned char v6lo[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
	if ((n == 4 && a[0] == 127) || (n == 16 && memcmp(a, v6lo, 16) == 0))
		return 1;
	if (n == 4 && a[0] == 0 && a[1] == 0 && a[2] == 0 && a[3] == 0)
		return 1;   /* 0.0.0.0 reaches this machine */
	struct ifaddrs *ifs, *i;
	int hit = 0;
	if (getifaddrs(&ifs) < 0)
		return 0;
	for (i = ifs; i && !hit; i = i->ifa_next) {
		if (!i->ifa_addr)
			continue;
		if (i->ifa_addr->sa_family == AF_INET && n == 4)
			hit = memcmp(&((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr, a, 4) == 0;
		else if (i->ifa_addr->sa_family == AF_INET6 && n == 16)
			hit = memcmp(&((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr, a, 16) == 0;
	}
	freeifaddrs(ifs);
	return hit;
}

static int listener_is(const struct config *cfg, const struct listen_addr *l, const char *host, const char *ip,
    unsigned port)
{
	if ((unsigned)atoi(l->port) != port)
		return 0;
	if (host && cfg->hostname && *cfg->hostname) {
		size_t hl = strlen(host);
		if (hl > 1 && host[hl - 1] == '.')
			hl--;
		if (hl == strlen(cfg->hostname) && strncasecmp(host, cfg->hostname, hl) == 0)
			return 1;
	}
	unsigned char a[16], b[16];
	size_t an = addr_bytes(ip, a);
	if (an == 0)
		an = addr_bytes(host, a);   /* route=192.0.2.1:25 names no separate address */
	if (an == 0)
		return 0;
	if (strcmp(l->host, "*") == 0)
		return local_address(a, an);
	size_t bn = addr_bytes(l->host, b);
	return bn == an && memcmp(a, b, an) == 0;
}

int hold_is_self(const struct config *cfg, const char *host, const char *ip, unsigned port)
{
	for (size_t i = 0; i < cfg->nlisten; i++)
		if (listener_is(cfg, &cfg->listen[i], host, ip, port))
			return 1;
	for (size_t i = 0; i < cfg->nsubmission_listen; i++)
		if (listener_is(cfg, &cfg->submission_listen[i], host, ip, port))
			return 1;
	return 0;
}
