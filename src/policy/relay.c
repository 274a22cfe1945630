/*
 * relay: the relay rules file (R4, the manual's effect.dat) — parsing it, matching
 * a client and envelope sender against it, and mapping the match to one cell of
 * the manual's tables I–V (seed 003 "中継の制限"); docs/relay.md has the tables.
 *
 * Trust: the rules file is written by the administrator but parsed as hostile
 * input (it is fuzzed: tests/fuzz/fuzz_relay.c): bounded file size, line length and
 * rule count, and every pattern is validated so that a typo is an error with
 * file:line instead of a rule that silently never matches.  The query comes from
 * smtpd, which has already parsed the addresses and classified sender and
 * recipient (relay_sender_class / relay_rcpt_class below do that the one way both
 * smtpd and tsubamectl use); relay_decide itself only looks the cell up.
 */
#include "policy/relay.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "local/domains.h"
#include "local/resolve.h"
#include "local/tablefile.h"
#include "util/xalloc.h"

/* Bounds: an effect.dat is a few dozen lines; these only stop a runaway file. */
#define RELAY_FILE_MAX (4u << 20)
#define RELAY_RULES_MAX 100000
#define RELAY_PATTERN_MAX 320 /* an address: 64-octet local part (quoted forms longer), '@', 255-octet domain */
#define RELAY_BLOCK_RETRIES 50

/*
 * The manual's tables as data, [sender class][recipient class], 1 = ○.  Rows and
 * columns are in enum order: local with account, local without account, external.
 * Table V for a matching client is table I; III is all ×.
 */
static const unsigned char TABLE_I[3][3] = { { 1, 0, 1 }, { 0, 0, 0 }, { 1, 0, 0 } };
static const unsigned char TABLE_II[3][3] = { { 1, 0, 1 }, { 1, 0, 1 }, { 1, 0, 1 } };
static const unsigned char TABLE_III[3][3] = { { 0, 0, 0 }, { 0, 0, 0 }, { 0, 0, 0 } };
static const unsigned char TABLE_IV[3][3] = { { 1, 0, 0 }, { 0, 0, 0 }, { 1, 0, 0 } };
static const unsigned char TABLE_V_OTHER[3][3] = { { 0, 0, 0 }, { 0, 0, 0 }, { 1, 0, 0 } };

static const struct {
	const char *name;
	enum relay_pattern kind;
} SPECIALS[] = {
	{ "#blank", RELAY_PAT_BLANK },
	{ "#<>", RELAY_PAT_NULL },
	{ "#number", RELAY_PAT_NUMBER },
	{ "#nodomain", RELAY_PAT_NODOMAIN },
	{ "#host", RELAY_PAT_HOST },
};

static const struct {
	const char *name;
	enum relay_action action;
} ACTIONS[] = {
	{ "true", RELAY_TRUE },
	{ "false", RELAY_FALSE },
	{ "default", RELAY_DEFAULT },
	{ "norelay", RELAY_NORELAY },
	{ "norelay,0", RELAY_NORELAY0 },
	{ "norelay,2", RELAY_NORELAY2 },
	{ "only", RELAY_ONLY },
};

const char *relay_action_name(enum relay_action a)
{
	for (size_t i = 0; i < sizeof(ACTIONS) / sizeof(ACTIONS[0]); i++)
		if (ACTIONS[i].action == a)
			return ACTIONS[i].name;
	return "?";
}

/* ---- IP patterns ---------------------------------------------------------- */

/*
 * One IPv4 octet: 1–3 decimal digits up to 255, or (when wild is not NULL) a lone
 * '*'.  "1*" and "*1" are errors: the manual only knows whole-octet wildcards.
 */
static int parse_octet(const char *s, size_t n, unsigned char *out, unsigned char *wild)
{
	if (n == 1 && s[0] == '*' && wild) {
		*out = 0;
		*wild = 1;
		return 0;
	}
	if (n == 0 || n > 3)
		return -1;
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 255)
		return -1;
	*out = (unsigned char)v;
	return 0;
}

/* Dotted quad, exactly four octets (inet_aton's "10.1" shorthands are not IP patterns here). */
static int parse_v4(const char *s, size_t len, unsigned char addr[4], unsigned char wild[4])
{
	size_t start = 0;
	int octet = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != '.')
			continue;
		if (octet == 4 || parse_octet(s + start, i - start, &addr[octet], wild ? &wild[octet] : NULL) < 0)
			return -1;
		octet++;
		start = i + 1;
	}
	return octet == 4 ? 0 : -1;
}

/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is an IPv4 client, for rules and clients alike. */
static int is_v4_mapped(const unsigned char a[16])
{
	static const unsigned char prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	return memcmp(a, prefix, sizeof(prefix)) == 0;
}

/*
 * Fill r's address fields from an IP pattern: a.b.c.d with '*' octets, a.b.c.d/N,
 * an IPv6 address, IPv6/N.  0, or -1 with *why.
 */
static int parse_ip_pattern(const char *s, struct relay_rule *r, const char **why)
{
	size_t len = strlen(s);
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : len;
	int has_colon = memchr(s, ':', alen) != NULL;
	char tmp[INET6_ADDRSTRLEN + 1];

	memset(r->addr, 0, sizeof(r->addr));
	memset(r->wild, 0, sizeof(r->wild));
	if (has_colon) {
		if (alen >= sizeof(tmp)) {
			*why = "bad IPv6 address";
			return -1;
		}
		memcpy(tmp, s, alen);
		tmp[alen] = '\0';
		if (inet_pton(AF_INET6, tmp, r->addr) != 1) {
			*why = "bad IPv6 address";
			return -1;
		}
		r->family = 6;
		r->prefix = 128;
	} else {
		/* Wildcards and CIDR do not mix: "10.*.0.0/16" has no single meaning. */
		if (parse_v4(s, alen, r->addr, slash ? NULL : r->wild) < 0) {
			*why = slash ? "bad IPv4 network (four octets 0-255 before the '/')"
				     : "bad IPv4 pattern (four octets, each 0-255 or a lone '*')";
			return -1;
		}
		r->family = 4;
		r->prefix = 32;
	}
	if (slash) {
		const char *p = slash + 1;
		size_t n = strlen(p);
		int max = r->family == 4 ? 32 : 128, v = 0;
		if (n == 0 || n > 3) {
			*why = "bad CIDR prefix length";
			return -1;
		}
		for (size_t i = 0; i < n; i++) {
			if (!isdigit((unsigned char)p[i])) {
				*why = "bad CIDR prefix length";
				return -1;
			}
			v = v * 10 + (p[i] - '0');
		}
		if (v > max) {
			*why = r->family == 4 ? "CIDR prefix length out of range (0-32)" : "CIDR prefix length out of range (0-128)";
			return -1;
		}
		r->prefix = v;
	}
	if (r->family == 6 && is_v4_mapped(r->addr) && r->prefix >= 96) {
		memmove(r->addr, r->addr + 12, 4);
		memset(r->addr + 4, 0, 12);
		r->family = 4;
		r->prefix -= 96;
	}
	return 0;
}

/* The client address as 4 or 16 bytes; 0 when it is not a numeric address (then no IP rule matches). */
static int parse_client(const char *ip, unsigned char out[16])
{
	char tmp[INET6_ADDRSTRLEN + 1];
	size_t n;

	if (ip == NULL)
		return 0;
	/* A link-local client may come with its zone ("fe80::1%eth0"): the zone is not part of the address. */
	n = strcspn(ip, "%");
	if (n == 0 || n >= sizeof(tmp))
		return 0;
	memcpy(tmp, ip, n);
	tmp[n] = '\0';
	if (inet_pton(AF_INET, tmp, out) == 1)
		return 4;
	if (inet_pton(AF_INET6, tmp, out) != 1)
		return 0;
	if (is_v4_mapped(out)) {
		memmove(out, out + 12, 4);
		return 4;
	}
	return 6;
}

static int ip_matches(const struct relay_rule *r, const unsigned char *a, int family)
{
	int full = r->prefix / 8, rest = r->prefix % 8;

	if (family != r->family)
		return 0;
	/* Whole bytes, then the partial byte; host bits written in the pattern are ignored. */
	for (int i = 0; i < full; i++) {
		if (family == 4 && r->wild[i])
			continue; /* a '*' octet (wildcards only come with prefix 32) */
		if (a[i] != r->addr[i])
			return 0;
	}
	if (rest) {
		unsigned char mask = (unsigned char)(0xff << (8 - rest));
		if ((a[full] & mask) != (r->addr[full] & mask))
			return 0;
	}
	return 1;
}

/* ---- sender patterns ------------------------------------------------------ */

/*
 * The sender's domain without one trailing dot ("abc.co.jp." is the same domain,
 * and must not slip past "abc.co.jp false"); *len its length.  NULL when the
 * sender has no '@'.  The last '@' starts the domain: a quoted local part may hold '@'.
 */
static const char *sender_domain(const char *sender, size_t *len)
{
	const char *at = strrchr(sender, '@');
	if (at == NULL)
		return NULL;
	*len = strlen(at + 1);
	if (*len > 0 && at[*len] == '.')
		(*len)--;
	return at + 1;
}

static int domain_is_number(const char *d, size_t n)
{
	if (n == 0)
		return 0;
	if (d[0] == '[')
		return 1; /* an address literal, [192.0.2.1] or [IPv6:...] */
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)d[i]) && d[i] != '.')
			return 0;
	return 1;
}

/* Case-insensitive equality of a pattern part with s[0..n). */
static int part_equal(const char *pattern, const char *s, size_t n)
{
	return strlen(pattern) == n && strncasecmp(pattern, s, n) == 0;
}

static int sender_matches(const struct relay_rule *r, const char *sender, int null)
{
	size_t dlen = 0;
	const char *dom;

	switch (r->kind) {
	case RELAY_PAT_BLANK:
	case RELAY_PAT_NULL:
		return null;
	case RELAY_PAT_IP:
		return 0;
	default:
		break;
	}
	if (null)
		return 0;
	dom = sender_domain(sender, &dlen);
	switch (r->kind) {
	case RELAY_PAT_NODOMAIN:
		return dom == NULL || dlen == 0;
	case RELAY_PAT_NUMBER:
		return dom != NULL && domain_is_number(dom, dlen);
	case RELAY_PAT_HOST:
		return dom != NULL && dlen > 0 && dom[0] != '[' && memchr(dom, '.', dlen) == NULL;
	case RELAY_PAT_DOMAIN:
		return dom != NULL && part_equal(r->text, dom, dlen);
	case RELAY_PAT_ADDRESS: {
		/* Local parts compare case-insensitively too: a "false" rule must not be dodged by case. */
		const char *pat_at = strrchr(r->text, '@');
		if (dom == NULL || pat_at == NULL)
			return 0;
		size_t pat_local = (size_t)(pat_at - r->text), local = (size_t)(dom - 1 - sender);
		return pat_local == local && strncasecmp(r->text, sender, local) == 0 && part_equal(pat_at + 1, dom, dlen);
	}
	default:
		return 0;
	}
}

/* ---- parsing ---------------------------------------------------------------- */

static void perr(struct buf *errors, const char *name, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void perr(struct buf *errors, const char *name, int line, const char *fmt, ...)
{
	va_list ap;

	if (errors == NULL)
		return;
	buf_appendf(errors, "%s:%d: ", name, line);
	va_start(ap, fmt);
	buf_vappendf(errors, fmt, ap);
	va_end(ap);
	buf_putc(errors, '\n');
}

static int local_part_ok(const char *s, size_t n)
{
	if (n == 0 || n > 2 * ADDR_LOCAL_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
			return 0;
	return 1;
}

/* Classify and validate one pattern; 0, or -1 with *why. */
static int parse_pattern(const char *s, struct relay_rule *r, const char **why)
{
	size_t len = strlen(s);

	if (len > RELAY_PATTERN_MAX) {
		*why = "pattern too long";
		return -1;
	}
	if (s[0] == '#') {
		for (size_t i = 0; i < sizeof(SPECIALS) / sizeof(SPECIALS[0]); i++)
			if (strcasecmp(s, SPECIALS[i].name) == 0) {
				r->kind = SPECIALS[i].kind;
				return 0;
			}
		*why = "unknown special pattern";
		return -1;
	}
	const char *at = strrchr(s, '@');
	if (at) {
		if (!local_part_ok(s, (size_t)(at - s)) || !domain_name_valid(at + 1)) {
			*why = "bad sender address pattern (local@domain)";
			return -1;
		}
		r->kind = RELAY_PAT_ADDRESS;
		return 0;
	}
	/* Only digits, dots and '*' (or ':' or '/'): meant as an IP pattern, and must be a valid one. */
	if (strchr(s, ':') || strchr(s, '/') || strspn(s, "0123456789.*") == len) {
		r->kind = RELAY_PAT_IP;
		return parse_ip_pattern(s, r, why);
	}
	if (domain_name_valid(s)) {
		r->kind = RELAY_PAT_DOMAIN;
		return 0;
	}
	*why = "pattern is neither an IP pattern, a domain, an address nor a special";
	return -1;
}

static int parse_action(const char *s, enum relay_action *a)
{
	for (size_t i = 0; i < sizeof(ACTIONS) / sizeof(ACTIONS[0]); i++)
		if (strcasecmp(s, ACTIONS[i].name) == 0) {
			*a = ACTIONS[i].action;
			return 0;
		}
	return -1;
}

/* 1 when the line is a comment: '#' first, and not one of the specials. */
static int is_comment(const char *field)
{
	if (field[0] != '#')
		return 0;
	for (size_t i = 0; i < sizeof(SPECIALS) / sizeof(SPECIALS[0]); i++)
		if (strcasecmp(field, SPECIALS[i].name) == 0)
			return 0;
	return 1;
}

/* Parse one line (NUL-terminated, no newline).  1 = an "only" rule was added, 0 otherwise; errors counted in *nerr. */
static int parse_line(struct relay_rules *r, char *line, const char *name, int lineno, struct buf *errors, int *nerr)
{
	char *f[3];
	size_t n = tablefile_split_ws(line, f, 3);
	struct relay_rule rule;
	const char *why = NULL;

	if (n == 0 || is_comment(f[0]))
		return 0;
	if (n > 2) {
		perr(errors, name, lineno, "extra field \"%s\" (a rule is PATTERN [ACTION])", f[2]);
		(*nerr)++;
		return 0;
	}
	memset(&rule, 0, sizeof(rule));
	rule.line = lineno;
	rule.action = RELAY_TRUE; /* the manual: a pattern alone allows, as "true" */
	if (n == 2 && parse_action(f[1], &rule.action) < 0) {
		perr(errors, name, lineno,
		    "unknown action \"%s\" (true, false, default, norelay, norelay,0, norelay,2 or only)", f[1]);
		(*nerr)++;
		return 0;
	}
	if (parse_pattern(f[0], &rule, &why) < 0) {
		perr(errors, name, lineno, "%s: \"%s\"", why, f[0]);
		(*nerr)++;
		return 0;
	}
	if (r->n >= RELAY_RULES_MAX) {
		perr(errors, name, lineno, "%s", "too many rules");
		(*nerr)++;
		return 0;
	}
	rule.text = xstrdup(f[0]);
	r->v = tablefile_grow(r->v, r->n, sizeof(*r->v));
	r->v[r->n++] = rule;
	return rule.action == RELAY_ONLY;
}

int relay_parse(struct relay_rules *r, const char *text, size_t len, const char *name, struct buf *errors)
{
	char line[TABLE_LINE_MAX];
	size_t pos = 0;
	int lineno = 0, nerr = 0;

	memset(r, 0, sizeof(*r));
	/* Files saved by Windows editors (the manual's home) may start with a UTF-8 BOM. */
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		pos = 3;
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) : len, n = end - pos;
		lineno++;
		if (n > 0 && text[end - 1] == '\r')
			n--;
		if (n >= sizeof(line)) {
			perr(errors, name, lineno, "%s", "line too long");
			nerr++;
		} else if (memchr(text + pos, '\0', n) != NULL) {
			perr(errors, name, lineno, "%s", "NUL byte in line");
			nerr++;
		} else {
			memcpy(line, text + pos, n);
			line[n] = '\0';
			/* The manual: "only" is valid only as the last entry; everything after it is ignored. */
			if (parse_line(r, line, name, lineno, errors, &nerr))
				break;
		}
		pos = end + 1;
	}
	return nerr;
}

int relay_load(struct relay_rules *r, const char *path, struct buf *errors)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;

	memset(r, 0, sizeof(*r));
	if (fd < 0) {
		if (errno == ENOENT)
			return 0; /* no file: table I for everyone, as the manual's "未定義" */
		if (errors)
			buf_appendf(errors, "%s: cannot open: %s\n", path, strerror(errno));
		return 1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (unsigned long long)st.st_size > RELAY_FILE_MAX) {
		if (errors)
			buf_appendf(errors, "%s: not a regular file of at most %u bytes\n", path, RELAY_FILE_MAX);
		close(fd);
		return 1;
	}
	/* Read to the end, bounded: the file may grow between fstat and read. */
	size_t cap = (size_t)st.st_size + 1, len = 0;
	char *text = xmalloc(cap);
	for (;;) {
		if (len == cap) {
			if (cap > RELAY_FILE_MAX)
				break;
			cap *= 2;
			text = xrealloc(text, cap);
		}
		ssize_t k = read(fd, text + len, cap - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			if (errors)
				buf_appendf(errors, "%s: read: %s\n", path, strerror(errno));
			free(text);
			close(fd);
			return 1;
		}
		if (k == 0)
			break;
		len += (size_t)k;
	}
	close(fd);
	if (len > RELAY_FILE_MAX) {
		if (errors)
			buf_appendf(errors, "%s: larger than %u bytes\n", path, RELAY_FILE_MAX);
		free(text);
		return 1;
	}
	int n = relay_parse(r, text, len, path, errors);
	free(text);
	return n;
}

void relay_free(struct relay_rules *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->v[i].text);
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

/* ---- matching and deciding ------------------------------------------------------ */

/*
 * The first rule that matches; *vother = 1 when the list ended at an "only" that
 * did not match (its rule is then returned through *only).
 */
static const struct relay_rule *find(const struct relay_rules *r, const char *client_ip, const char *sender,
    int sender_null, const struct relay_rule **only)
{
	unsigned char a[16];
	int family = parse_client(client_ip, a);
	int null = sender_null || sender == NULL || sender[0] == '\0';

	*only = NULL;
	for (size_t i = 0; i < r->n; i++) {
		const struct relay_rule *rule = &r->v[i];
		int m = rule->kind == RELAY_PAT_IP ? family != 0 && ip_matches(rule, a, family)
						   : sender_matches(rule, null ? "" : sender, null);
		if (m)
			return rule;
		if (rule->action == RELAY_ONLY) {
			*only = rule;
			return NULL;
		}
	}
	return NULL;
}

const struct relay_rule *relay_match(const struct relay_rules *r, const char *client_ip, const char *sender,
    int sender_null)
{
	const struct relay_rule *only;
	return find(r, client_ip, sender, sender_null, &only);
}

void relay_decide(const struct relay_rules *r, const struct relay_query *q, struct relay_decision *d)
{
	const struct relay_rule *only = NULL;
	const struct relay_rule *m = find(r, q->client_ip, q->sender, q->sender_null, &only);
	const unsigned char (*t)[3] = TABLE_I;
	int s = q->sclass, c = q->rclass;
	/* Which tables an authenticated session overrides in the external column (note ※1). */
	int auth_relays = 1, vother = 0;

	memset(d, 0, sizeof(*d));
	d->table = "I";
	if (m) {
		d->rule = m;
		switch (m->action) {
		case RELAY_DEFAULT: break;
		case RELAY_TRUE: t = TABLE_II; d->table = "II"; break;
		case RELAY_FALSE: t = TABLE_III; d->table = "III"; auth_relays = 0; break;
		case RELAY_NORELAY: t = TABLE_IV; d->table = "IV"; break;
		case RELAY_NORELAY0: t = TABLE_IV; d->table = "IV"; auth_relays = 0; break;
		case RELAY_NORELAY2:
			/* "SMTP認証より優先条件": the rule, not AUTH, decides, and the level's AUTH demand is waived. */
			t = TABLE_IV;
			d->table = "IV";
			auth_relays = 0;
			d->auth_waived = 1;
			break;
		case RELAY_ONLY: d->table = "V"; break; /* a listed client gets table I */
		}
	} else if (only) {
		d->rule = only;
		t = TABLE_V_OTHER;
		d->table = "V-other";
		vother = 1;
	}
	if ((unsigned)s > SENDER_EXTERNAL || (unsigned)c > RCPT_CLASS_EXTERNAL) {
		d->allow = 0; /* a caller bug; refusing is the safe answer */
		d->reason = "relaying denied";
		return;
	}
	d->allow = t[s][c];
	if (q->authenticated && auth_relays && c != RCPT_CLASS_LOCAL_NO_ACCOUNT) {
		/*
		 * They proved who they are (note ※1): relaying is theirs, and so is mail to
		 * local accounts whatever envelope sender they use (sender_trust governs that).
		 */
		d->allow = 1;
	}
	if (c == RCPT_CLASS_LOCAL_NO_ACCOUNT)
		d->allow = 0; /* every table: × — there is nobody to deliver to */
	if (d->allow)
		return;
	if (t == TABLE_III)
		d->reason = "access denied by rule";
	else if (c == RCPT_CLASS_LOCAL_NO_ACCOUNT)
		d->reason = "unknown local user";
	else if (s == SENDER_LOCAL_NO_ACCOUNT)
		d->reason = "local sender without account";
	else if (vother && c == RCPT_CLASS_LOCAL_ACCOUNT)
		d->reason = "local sender not allowed from this client";
	else
		d->reason = "relaying denied";
}

/* ---- classification (shared by smtpd and tsubamectl) ------------------------------ */

enum sender_class relay_sender_class(const struct local_tables *t, const struct mailaddr *from)
{
	/*
	 * The domain exactly as given: "taro@abc.co.jp." is not made local here, since
	 * the security level's AUTH demand looks the account up the same exact way and
	 * must not be dodged by a trailing dot.
	 */
	if (from->is_null || from->domain[0] == '\0' || from->domain_is_literal)
		return SENDER_EXTERNAL;
	const struct domain *d = domains_find(&t->domains, from->domain);
	if (d == NULL)
		return SENDER_EXTERNAL;
	return accounts_find(&t->accounts, from->local, d->name) ? SENDER_LOCAL_ACCOUNT : SENDER_LOCAL_NO_ACCOUNT;
}

enum rcpt_class relay_rcpt_class(const struct local_tables *t, const struct mailaddr *rcpt)
{
	struct resolved *res = xcalloc(ALIAS_MAX_RESULTS, sizeof(*res));
	size_t n = 0;
	const char *why;
	enum resolve_result rr = local_resolve(t, rcpt, res, ALIAS_MAX_RESULTS, &n, &why);
	free(res);
	switch (rr) {
	case RESOLVE_NOT_LOCAL:
		/* E3: a held domain is ours to accept, like our own mailboxes (docs/etrn.md). */
		return hold_lookup(&t->hold, rcpt->domain) ? RCPT_CLASS_LOCAL_ACCOUNT : RCPT_CLASS_EXTERNAL;
	case RESOLVE_UNKNOWN_USER: return RCPT_CLASS_LOCAL_NO_ACCOUNT;
	default: return RCPT_CLASS_LOCAL_ACCOUNT; /* an account or an alias; alias errors are the caller's (451) */
	}
}

/* ---- relay_block_ip ----------------------------------------------------------------------- */

struct block_ctx {
	const char *ip;
	const char *old;
	size_t len;
};

static int write_block(FILE *fp, const void *ctx)
{
	const struct block_ctx *b = ctx;
	if (fprintf(fp, "%s false\n", b->ip) < 0)
		return -1;
	if (b->len && fwrite(b->old, 1, b->len, fp) != b->len)
		return -1;
	return 0;
}

/* Read all of fd, at most RELAY_FILE_MAX bytes; NULL with errno. */
static char *read_all(int fd, size_t *len)
{
	size_t cap = 4096;
	char *p = xmalloc(cap);
	*len = 0;
	for (;;) {
		if (*len == cap) {
			if (cap > RELAY_FILE_MAX) {
				free(p);
				errno = EFBIG;
				return NULL;
			}
			cap *= 2;
			p = xrealloc(p, cap);
		}
		ssize_t k = read(fd, p + *len, cap - *len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			int e = errno;
			free(p);
			errno = e;
			return NULL;
		}
		if (k == 0)
			return p;
		*len += (size_t)k;
	}
}

/* 1 when the leading block of "IP false" rules already holds this pattern (its order there does not matter). */
static int already_blocked(const char *text, size_t len, const char *ip)
{
	struct relay_rules r;
	int found = 0;
	relay_parse(&r, text, len, "relay", NULL);
	for (size_t i = 0; i < r.n && r.v[i].kind == RELAY_PAT_IP && r.v[i].action == RELAY_FALSE; i++)
		if (strcasecmp(r.v[i].text, ip) == 0)
			found = 1;
	relay_free(&r);
	return found;
}

int relay_block_ip(const char *path, const char *ip)
{
	struct relay_rule probe;
	const char *why;

	if (ip == NULL || ip[0] == '\0' || strlen(ip) > RELAY_PATTERN_MAX || ip[strcspn(ip, " \t\r\n#")] != '\0' ||
	    strchr(ip, '@') || parse_pattern(ip, &probe, &why) < 0 || probe.kind != RELAY_PAT_IP) {
		errno = EINVAL;
		return -1;
	}
	/*
	 * Two blockers at once must not lose each other's line: lock the file, and
	 * since the save renames a new inode into place, make sure the locked inode is
	 * still the one the name points at (else lock the new one).
	 */
	for (int tries = 0; tries < RELAY_BLOCK_RETRIES; tries++) {
		int fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0640);
		struct stat a, b;
		if (fd < 0)
			return -1;
		if (flock(fd, LOCK_EX) < 0 || fstat(fd, &a) < 0) {
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		if (stat(path, &b) < 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino) {
			close(fd);
			continue;
		}
		size_t len;
		char *old = read_all(fd, &len);
		int rc = -1;
		if (old) {
			struct block_ctx ctx = { ip, old, len };
			rc = already_blocked(old, len, ip) ? 0 : tablefile_save(path, 0, write_block, &ctx);
		}
		int e = errno;
		free(old);
		close(fd); /* releases the lock, after the rename */
		errno = e;
		return rc;
	}
	errno = EAGAIN;
	return -1;
}
