/*
 * gateway: parsing the per-domain SMTP gateway table (seed 003 "SMTPゲートウェイ")
 * and looking a recipient domain up in it; the format is in gateway.h.
 *
 * Trust: the table is written by the administrator but parsed as hostile input
 * (tests/fuzz/fuzz_gateway.c): lines are bounded by the shared table reader, the
 * number of entries is bounded, and every field is validated so that a typo is a
 * "file:line: message" instead of an entry that silently never matches or sends
 * mail somewhere unexpected.  Matching is iterative (no recursion, no
 * exponential backtracking whatever the pattern).
 */
#include "deliver/gateway.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "local/tablefile.h"
#include "util/xalloc.h"

/* A gateway table is a few dozen lines; this only stops a runaway file. */
#define GATEWAY_ENTRIES_MAX 100000
#define GATEWAY_NAME_MAX 253   /* RFC 1035 2.3.4: a name's text form without the final dot */
#define GATEWAY_LABEL_MAX 63

struct parse_ctx {
	struct gateway_table *t;
};

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Trim spaces and TABs from both ends in place. */
static char *trim(char *s)
{
	while (is_blank(*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && is_blank(s[n - 1]))
		s[--n] = '\0';
	return s;
}

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

static int name_char(char c)
{
	return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.';
}

/* Pattern: name characters and '*', no empty label; one trailing dot dropped. */
static const char *check_pattern(char *p)
{
	size_t n = strlen(p);

	if (n > 1 && p[n - 1] == '.')
		p[--n] = '\0';
	if (n == 0)
		return "empty domain pattern";
	if (n > GATEWAY_NAME_MAX)
		return "domain pattern longer than 253 characters";
	for (size_t i = 0; i < n; i++) {
		if (!name_char(p[i]) && p[i] != '*')
			return "bad character in domain pattern (letters, digits, '-', '_', '.', '*')";
		if (p[i] == '.' && (i == 0 || p[i - 1] == '.'))
			return "empty label in domain pattern";
	}
	if (p[n - 1] == '.')
		return "empty label in domain pattern";
	lower(p);
	return NULL;
}

static const char *check_hostname(char *h)
{
	size_t n = strlen(h), label = 0;

	if (n > 1 && h[n - 1] == '.')
		h[--n] = '\0';
	if (n > GATEWAY_NAME_MAX)
		return "gateway name longer than 253 characters";
	for (size_t i = 0; i < n; i++) {
		if (!name_char(h[i]))
			return "bad character in gateway (a host name, an IPv4 address or [IPv6])";
		if (h[i] == '.') {
			if (label == 0)
				return "empty label in gateway name";
			label = 0;
		} else if (++label > GATEWAY_LABEL_MAX) {
			return "label longer than 63 characters in gateway name";
		}
	}
	if (label == 0)
		return "empty label in gateway name";
	lower(h);
	return NULL;
}

/* Fills e->host and e->kind; h may be changed in place. */
static const char *check_gateway(char *h, struct gateway_entry *e)
{
	unsigned char addr[16];

	if (h[0] == '[') {
		size_t n = strlen(h);
		if (n < 3 || h[n - 1] != ']')
			return "IPv6 gateway must be written [address]";
		h[n - 1] = '\0';
		h++;
		if (inet_pton(AF_INET6, h, addr) != 1)
			return "bad IPv6 address in gateway";
		e->kind = GATEWAY_HOST_IPV6;
	} else if (strchr(h, ':') != NULL) {
		if (inet_pton(AF_INET6, h, addr) != 1)
			return "bad IPv6 address in gateway";
		e->kind = GATEWAY_HOST_IPV6;
	} else if (inet_pton(AF_INET, h, addr) == 1) {
		e->kind = GATEWAY_HOST_IPV4;
	} else if (strspn(h, "0123456789.") == strlen(h)) {
		/* All digits and dots but not an address: a typo, not a host name (RFC 1123 2.1). */
		return "bad IPv4 address in gateway";
	} else {
		const char *err = check_hostname(h);
		if (err)
			return err;
		e->kind = GATEWAY_HOST_NAME;
	}
	lower(h);
	e->host = xstrdup(h);
	return NULL;
}

static const char *check_port(char *p, struct gateway_entry *e)
{
	size_t n = strlen(p);

	e->port = GATEWAY_DEFAULT_PORT;
	e->implicit_tls = 0;
	if (n > 0 && p[n - 1] == '*') {
		e->implicit_tls = 1;
		p[--n] = '\0';
		p = trim(p);
		n = strlen(p);
		if (n == 0)
			return "implicit TLS '*' needs a port number (e.g. 465*)";
	}
	if (n == 0)
		return NULL;
	if (n > 5 || strspn(p, "0123456789") != n)
		return "bad port (1-65535, optionally followed by '*')";
	unsigned long v = strtoul(p, NULL, 10);
	if (v < 1 || v > 65535)
		return "bad port (1-65535, optionally followed by '*')";
	e->port = (unsigned)v;
	return NULL;
}

static void parse_line(struct table_lines *tl, char *line, void *arg)
{
	struct parse_ctx *ctx = arg;
	struct gateway_table *t = ctx->t;
	struct gateway_entry e = { .line = tl->line };
	char *f[3];
	size_t nf = 0;
	const char *err;

	/* Files saved by Windows editors (the manual's home) may start with a UTF-8 BOM. */
	if (tl->line == 1 && memcmp(line, "\xef\xbb\xbf", 3) == 0)
		line += 3;
	/* 注1: a quote or a blank at the start of a line makes it a comment. */
	if (line[0] == '\0' || line[0] == '\'' || is_blank(line[0]) || memcmp(line, "\xe3\x80\x80", 3) == 0)
		return;
	for (char *s = line;;) {
		char *comma = strchr(s, ',');
		if (nf == 3) {
			tablefile_err(tl, "extra field \"%s\" (an entry is domain-pattern,gateway,port[*])", trim(s));
			return;
		}
		if (comma)
			*comma = '\0';
		f[nf++] = trim(s);
		if (comma == NULL)
			break;
		s = comma + 1;
	}
	if ((err = check_pattern(f[0])) != NULL) {
		tablefile_err(tl, "%s", err);
		return;
	}
	if (nf < 2 || f[1][0] == '\0') {
		tablefile_err(tl, "%s", "missing gateway (an entry is domain-pattern,gateway,port[*])");
		return;
	}
	if ((err = check_port(nf == 3 ? f[2] : (char[]){ "" }, &e)) != NULL) {
		tablefile_err(tl, "%s", err);
		return;
	}
	if (t->n >= GATEWAY_ENTRIES_MAX) {
		tablefile_err(tl, "more than %d entries", GATEWAY_ENTRIES_MAX);
		return;
	}
	if ((err = check_gateway(f[1], &e)) != NULL) {
		tablefile_err(tl, "%s", err);
		return;
	}
	e.pattern = xstrdup(f[0]);
	t->v = tablefile_grow(t->v, t->n, sizeof(*t->v));
	t->v[t->n++] = e;
}

int gateway_parse(struct gateway_table *t, const char *text, size_t len, const char *name, struct buf *errors)
{
	struct parse_ctx ctx = { .t = t };
	struct buf sink;
	int n;

	memset(t, 0, sizeof(*t));
	if (len == 0)
		return 0; /* fmemopen refuses an empty buffer on older glibc */
	FILE *fp = fmemopen((void *)(uintptr_t)text, len, "r");
	if (fp == NULL) {
		if (errors)
			buf_appendf(errors, "%s: cannot read table\n", name);
		return 1;
	}
	buf_init(&sink, 0);
	n = tablefile_parse(fp, name, errors ? errors : &sink, parse_line, &ctx);
	buf_free(&sink);
	fclose(fp);
	return n;
}

int gateway_load(struct gateway_table *t, const char *path, struct buf *errors)
{
	struct parse_ctx ctx = { .t = t };
	struct buf sink;
	int n;

	memset(t, 0, sizeof(*t));
	buf_init(&sink, 0);
	n = tablefile_load(path, errors ? errors : &sink, parse_line, &ctx);
	buf_free(&sink);
	return n;
}

void gateway_free(struct gateway_table *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->v[i].pattern);
		free(t->v[i].host);
	}
	free(t->v);
	memset(t, 0, sizeof(*t));
}

/*
 * Whole-string glob with '*' only, ASCII case ignored: the classic greedy walk
 * that remembers the last '*' and retries from one character further on a
 * mismatch.  O(len(pat) * len(s)) at worst, no recursion.
 */
static int match_n(const char *pat, const char *s, size_t sn)
{
	const char *star = NULL;
	size_t i = 0, mark = 0;

	while (i < sn) {
		if (*pat == '*') {
			star = pat++;
			mark = i;
		} else if (*pat != '\0' && tolower((unsigned char)*pat) == tolower((unsigned char)s[i])) {
			pat++;
			i++;
		} else if (star != NULL) {
			pat = star + 1;
			i = ++mark;
		} else {
			return 0;
		}
	}
	while (*pat == '*')
		pat++;
	return *pat == '\0';
}

int gateway_match(const char *pat, const char *s)
{
	return match_n(pat, s, strlen(s));
}

const struct gateway_entry *gateway_lookup(const struct gateway_table *t, const char *domain)
{
	size_t n;

	if (t == NULL || domain == NULL)
		return NULL;
	n = strlen(domain);
	if (n > 1 && domain[n - 1] == '.')
		n--; /* "example.jp." is example.jp */
	if (n == 0)
		return NULL;
	for (size_t i = 0; i < t->n; i++)
		if (match_n(t->v[i].pattern, domain, n))
			return &t->v[i];
	return NULL;
}
