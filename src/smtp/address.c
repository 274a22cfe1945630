/*
 * address: RFC 5321 4.1.2 Path / Mailbox syntax, with the RFC 6531 SMTPUTF8
 * extensions, producing the internal (unquoted) form of struct mailaddr.
 *
 * Owns: the grammar of reverse-path / forward-path, local parts (dot-atom and
 * quoted-string), domains (LDH labels, U-labels, address literals), the octet
 * limits of RFC 5321 4.5.3.1, and the re-quoting used when an address is written
 * back out.  Trusts nothing: every byte is raw client text; the parser is driven by
 * the grammar with an explicit length, so embedded NULs, control bytes and
 * truncated input are rejected instead of being read past.
 *
 * What this file deliberately does NOT interpret: "%" (percent hack), "!" (bang
 * paths) and a quoted "@" are ordinary local-part characters; they name no route
 * here and simply fail to match an account later (RFC 5321 3.6.1: relaying is the
 * policy layer's decision, never the parser's).
 */
#include "smtp/address.h"

#include <arpa/inet.h>
#include <string.h>

/* A read cursor over untrusted input of known length. */
struct cur {
	const unsigned char *s;
	size_t len;
	size_t pos;
};

static int peek(const struct cur *c)
{
	return c->pos < c->len ? c->s[c->pos] : -1;
}

static int is_alpha(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int is_ctl(int c)
{
	return (c >= 0 && c < 0x20) || c == 0x7f;
}

/*
 * RFC 5322 3.2.3: atext = ALPHA / DIGIT / "!" / "#" / "$" / "%" / "&" / "'" /
 * "*" / "+" / "-" / "/" / "=" / "?" / "^" / "_" / "`" / "{" / "|" / "}" / "~"
 */
static int is_atext(int c)
{
	if (is_alpha(c) || is_digit(c))
		return 1;
	switch (c) {
	case '!': case '#': case '$': case '%': case '&': case '\'': case '*':
	case '+': case '-': case '/': case '=': case '?': case '^': case '_':
	case '`': case '{': case '|': case '}': case '~':
		return 1;
	default:
		return 0;
	}
}

static int lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/*
 * Length of one well-formed non-ASCII UTF-8 sequence at p (RFC 3629 section 4,
 * the UTF8-2/3/4 productions RFC 6531 3.3 uses as UTF8-non-ascii), or 0.  The
 * exact second-byte ranges exclude overlong forms (C0, C1, E0 80-9F, F0 80-8F),
 * UTF-16 surrogates (ED A0-BF) and code points above U+10FFFF (F4 90+, F5-FF).
 * C1 controls (U+0080-U+009F, C2 80-9F) are refused too: they are control
 * characters in any address.
 */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	unsigned char lo = 0x80, hi = 0xbf;
	size_t need;

	if (c >= 0xc2 && c <= 0xdf)
		need = 2;
	else if (c == 0xe0) {
		need = 3;
		lo = 0xa0;
	} else if (c == 0xed) {
		need = 3;
		hi = 0x9f;
	} else if (c >= 0xe1 && c <= 0xef)
		need = 3;
	else if (c == 0xf0) {
		need = 4;
		lo = 0x90;
	} else if (c >= 0xf1 && c <= 0xf3)
		need = 4;
	else if (c == 0xf4) {
		need = 4;
		hi = 0x8f;
	} else
		return 0;
	if (n < need || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < need; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	if (c == 0xc2 && p[1] < 0xa0)
		return 0;
	return need;
}

int addr_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		if (p[i] < 0x80) {
			if (is_ctl(p[i]))
				return 0;
			i++;
			continue;
		}
		size_t k = utf8_seq(p + i, len - i);
		if (k == 0)
			return 0;
		i += k;
	}
	return 1;
}

/*
 * RFC 5321 4.1.3: IPv4-address-literal = Snum 3("." Snum);
 * IPv6-address-literal = "IPv6:" IPv6-addr.  inet_pton() is stricter than a
 * hand-written scanner could be trusted to be (glibc refuses leading zeros and
 * out-of-range octets).  General-address-literal (a registered tag) has no tags
 * in use, so it is refused.
 */
static int literal_check(const unsigned char *d, size_t n, const char **why)
{
	char tmp[64];
	unsigned char addr[16];

	if (n < 3 || d[0] != '[' || d[n - 1] != ']') {
		*why = "Malformed address literal";
		return -1;
	}
	d++;
	n -= 2;
	if (n >= 5 && lower(d[0]) == 'i' && lower(d[1]) == 'p' && lower(d[2]) == 'v' &&
	    d[3] == '6' && d[4] == ':') {
		d += 5;
		n -= 5;
		if (n == 0 || n >= sizeof(tmp) || memchr(d, '\0', n) != NULL)
			goto bad6;
		memcpy(tmp, d, n);
		tmp[n] = '\0';
		if (inet_pton(AF_INET6, tmp, addr) != 1)
			goto bad6;
		return 0;
	}
	if (n == 0 || n >= sizeof(tmp) || memchr(d, '\0', n) != NULL)
		goto bad4;
	memcpy(tmp, d, n);
	tmp[n] = '\0';
	if (memchr(tmp, ':', n) != NULL) {
		*why = "Unsupported address literal";
		return -1;
	}
	if (inet_pton(AF_INET, tmp, addr) != 1)
		goto bad4;
	return 0;
bad4:
	*why = "Invalid IPv4 address literal";
	return -1;
bad6:
	*why = "Invalid IPv6 address literal";
	return -1;
}

/*
 * RFC 5321 4.1.2: Domain = sub-domain *("." sub-domain);
 * sub-domain = Let-dig [Ldh-str]; Ldh-str = *( ALPHA / DIGIT / "-" ) Let-dig.
 * RFC 6531 3.3: sub-domain =/ U-label (only when SMTPUTF8 was given).
 * RFC 1035 2.3.4: labels of 63 octets or less; RFC 5321 4.5.3.1.2: 255 octets.
 * So: no empty label (hence no leading, trailing or doubled dot), no hyphen at
 * either end of a label, nothing but LDH (or well-formed UTF-8) inside.
 */
static int domain_check(const unsigned char *d, size_t n, unsigned flags, int *literal,
    int *utf8, const char **why)
{
	size_t label = 0;

	*literal = 0;
	if (n == 0) {
		*why = "Address has no domain";
		return -1;
	}
	if (n > ADDR_DOMAIN_MAX) {
		*why = "Domain longer than 255 octets";
		return -1;
	}
	if (d[0] == '[') {
		*literal = 1;
		return literal_check(d, n, why);
	}
	for (size_t i = 0; i < n;) {
		unsigned char c = d[i];
		size_t k = 1;

		if (c == '.') {
			if (label == 0) {
				*why = "Empty label in domain";
				return -1;
			}
			if (d[i - 1] == '-') {
				*why = "Domain label ends with a hyphen";
				return -1;
			}
			label = 0;
			i++;
			continue;
		}
		if (c >= 0x80) {
			if (!(flags & ADDR_ALLOW_UTF8)) {
				*why = "Non-ASCII domain requires SMTPUTF8";
				return -1;
			}
			k = utf8_seq(d + i, n - i);
			if (k == 0) {
				*why = "Invalid UTF-8 in domain";
				return -1;
			}
			*utf8 = 1;
		} else if (c == '-') {
			if (label == 0) {
				*why = "Domain label starts with a hyphen";
				return -1;
			}
		} else if (!is_alpha(c) && !is_digit(c)) {
			*why = is_ctl(c) ? "Control character in domain" : "Invalid character in domain";
			return -1;
		}
		label += k;
		i += k;
		if (label > 63) {
			*why = "Domain label longer than 63 octets";
			return -1;
		}
	}
	if (label == 0) {
		*why = "Domain ends with a dot";
		return -1;
	}
	if (d[n - 1] == '-') {
		*why = "Domain label ends with a hyphen";
		return -1;
	}
	return 0;
}

int addr_domain_valid(const char *domain, unsigned flags)
{
	const char *why;
	int literal, utf8 = 0;

	return domain_check((const unsigned char *)domain, strlen(domain), flags, &literal,
	    &utf8, &why) == 0;
}

int addr_domain_equal(const char *a, const char *b)
{
	while (*a && *b && lower((unsigned char)*a) == lower((unsigned char)*b)) {
		a++;
		b++;
	}
	return *a == '\0' && *b == '\0';
}

static const char *unexpected(int c)
{
	if (c == ' ' || c == '\t')
		return "Space in address";
	if (c == '@')
		return "Too many '@' in address";
	if (c < 0 || c == '>')
		return "Address has no domain";
	if (is_ctl(c))
		return "Control character in address";
	return "Invalid character in address";
}

/*
 * Scan a domain (or an address literal) at the cursor and check it.  The scan
 * stops at the first byte that cannot be part of a domain; the caller decides
 * whether that byte is an acceptable terminator.  '_' is scanned so that
 * domain_check can name the problem.
 */
static int parse_domain(struct cur *c, unsigned flags, char *dom, int *literal, int *utf8,
    const char **why)
{
	size_t start = c->pos;

	if (peek(c) == '[') {
		/* RFC 5321 4.1.3: dcontent = %d33-90 / %d94-126 */
		c->pos++;
		for (;;) {
			int ch = peek(c);
			if (ch == ']') {
				c->pos++;
				break;
			}
			if (ch < 0 || ch == '>') {
				*why = "Unterminated address literal";
				return -1;
			}
			if (ch < 33 || ch > 126 || ch == '[' || ch == '\\') {
				*why = "Invalid character in address literal";
				return -1;
			}
			c->pos++;
			if (c->pos - start > ADDR_DOMAIN_MAX) {
				*why = "Domain longer than 255 octets";
				return -1;
			}
		}
	} else {
		for (;;) {
			int ch = peek(c);
			if (ch < 0 || !(is_alpha(ch) || is_digit(ch) || ch == '-' || ch == '.' ||
			    ch == '_' || ch >= 0x80))
				break;
			c->pos++;
			if (c->pos - start > ADDR_DOMAIN_MAX) {
				*why = "Domain longer than 255 octets";
				return -1;
			}
		}
	}
	size_t n = c->pos - start;
	if (n == 0) {
		*why = unexpected(peek(c));
		if (peek(c) == '@')
			*why = "Address has no domain";
		return -1;
	}
	if (domain_check(c->s + start, n, flags, literal, utf8, why) < 0)
		return -1;
	memcpy(dom, c->s + start, n);
	dom[n] = '\0';
	return 0;
}

/*
 * RFC 5321 4.1.2: Local-part = Dot-string / Quoted-string
 *   Dot-string = Atom *("." Atom)
 *   Quoted-string = DQUOTE *QcontentSMTP DQUOTE
 *   QcontentSMTP = qtextSMTP / quoted-pairSMTP
 *   quoted-pairSMTP = %d92 %d32-126
 *   qtextSMTP = %d32-33 / %d35-91 / %d93-126
 * RFC 6531 3.3: atext =/ UTF8-non-ascii; qtextSMTP =/ UTF8-non-ascii.
 * RFC 5321 4.5.3.1.1: the local part is at most 64 octets, counted as written.
 * The output is the unquoted form (quotes and quoted-pair backslashes removed).
 */
static int parse_local(struct cur *c, unsigned flags, struct mailaddr *out, int *quoted,
    const char **why)
{
	size_t start = c->pos, o = 0;

	*quoted = 0;
	if (peek(c) == '"') {
		*quoted = 1;
		c->pos++;
		for (;;) {
			int ch = peek(c);
			size_t k = 1;

			if (ch < 0) {
				*why = "Unterminated quoted local part";
				return -1;
			}
			if (ch == '"') {
				c->pos++;
				break;
			}
			if (ch == '\\') {
				if (c->pos + 1 >= c->len) {
					*why = "Unterminated quoted local part";
					return -1;
				}
				int e = c->s[c->pos + 1];
				if (e < 32 || e > 126) {
					*why = "Invalid quoted-pair in local part";
					return -1;
				}
				c->pos++;
				ch = e;
			} else if (ch >= 0x80) {
				if (!(flags & ADDR_ALLOW_UTF8)) {
					*why = "Non-ASCII local part requires SMTPUTF8";
					return -1;
				}
				k = utf8_seq(c->s + c->pos, c->len - c->pos);
				if (k == 0) {
					*why = "Invalid UTF-8 in local part";
					return -1;
				}
				out->utf8 = 1;
			} else if (is_ctl(ch)) {
				*why = "Control character in address";
				return -1;
			}
			/* +1: the closing quote still has to fit in 64 octets */
			if (c->pos + k + 1 - start > ADDR_LOCAL_MAX) {
				*why = "Local part longer than 64 octets";
				return -1;
			}
			memcpy(out->local + o, c->s + c->pos, k);
			o += k;
			c->pos += k;
		}
		if (o == 0) {
			*why = "Empty local part";
			return -1;
		}
	} else {
		for (;;) {
			int ch = peek(c);
			size_t k = 1;

			if (ch == '.') {
				if (o == 0 || out->local[o - 1] == '.') {
					*why = "Misplaced dot in local part";
					return -1;
				}
			} else if (ch >= 0x80) {
				if (!(flags & ADDR_ALLOW_UTF8)) {
					*why = "Non-ASCII local part requires SMTPUTF8";
					return -1;
				}
				k = utf8_seq(c->s + c->pos, c->len - c->pos);
				if (k == 0) {
					*why = "Invalid UTF-8 in local part";
					return -1;
				}
				out->utf8 = 1;
			} else if (ch < 0 || !is_atext(ch))
				break;
			if (c->pos + k - start > ADDR_LOCAL_MAX) {
				*why = "Local part longer than 64 octets";
				return -1;
			}
			memcpy(out->local + o, c->s + c->pos, k);
			o += k;
			c->pos += k;
		}
		if (o == 0) {
			int ch = peek(c);
			*why = (ch == '@' || ch == '>' || ch < 0) ? "Empty local part" : unexpected(ch);
			return -1;
		}
		if (out->local[o - 1] == '.') {
			*why = "Misplaced dot in local part";
			return -1;
		}
	}
	out->local[o] = '\0';
	return 0;
}

/* Mailbox = Local-part "@" ( Domain / address-literal ), or a bare Postmaster. */
static int parse_mailbox(struct cur *c, unsigned flags, struct mailaddr *out, const char **why)
{
	int quoted;

	if (parse_local(c, flags, out, &quoted, why) < 0)
		return -1;
	if (peek(c) != '@') {
		/*
		 * RFC 5321 4.5.1: "<Postmaster>" (no domain, any case) must be accepted
		 * as a recipient.  Only the unquoted form: a quoted one is not the
		 * reserved name.
		 */
		if ((flags & ADDR_ALLOW_POSTMASTER) && !quoted &&
		    addr_domain_equal(out->local, "postmaster")) {
			out->domain[0] = '\0';
			return 0;
		}
		*why = unexpected(peek(c));
		return -1;
	}
	c->pos++;
	return parse_domain(c, flags, out->domain, &out->domain_is_literal, &out->utf8, why);
}

/*
 * RFC 5321 4.1.2: A-d-l = At-domain *( "," At-domain ); At-domain = "@" Domain.
 * RFC 5321 4.1.1.3 / appendix C: servers MUST accept and SHOULD ignore source
 * routes, so the domains are checked for syntax and then dropped.
 */
static int skip_route(struct cur *c, unsigned flags, const char **why)
{
	char dom[ADDR_DOMAIN_MAX + 1];
	int literal, utf8 = 0;

	while (peek(c) == '@') {
		c->pos++;
		if (parse_domain(c, flags, dom, &literal, &utf8, why) < 0)
			return -1;
		if (peek(c) == ':') {
			c->pos++;
			return 0;
		}
		if (peek(c) != ',') {
			*why = "Invalid source route";
			return -1;
		}
		c->pos++;
		if (peek(c) != '@') {
			*why = "Invalid source route";
			return -1;
		}
	}
	return 0;
}

int addr_parse_path(const char *s, size_t len, unsigned flags, struct mailaddr *out,
    size_t *consumed, const char **why)
{
	struct cur c = { (const unsigned char *)s, len, 0 };
	int bracketed;

	memset(out, 0, sizeof(*out));
	*consumed = 0;
	if (len == 0) {
		*why = "Empty address";
		return -1;
	}
	bracketed = (c.s[0] == '<');
	if (!bracketed && !(flags & ADDR_ALLOW_NO_BRACKETS)) {
		*why = "Address must be enclosed in <>";
		return -1;
	}
	if (bracketed) {
		c.pos = 1;
		/* RFC 5321 4.1.1.2: Reverse-path = Path / "<>" */
		if (peek(&c) == '>') {
			if (!(flags & ADDR_ALLOW_NULL)) {
				*why = "Null address not allowed here";
				return -1;
			}
			out->is_null = 1;
			*consumed = 2;
			return 0;
		}
		if (skip_route(&c, flags, why) < 0)
			goto fail;
	}
	if (parse_mailbox(&c, flags, out, why) < 0)
		goto fail;
	if (bracketed) {
		if (peek(&c) != '>') {
			*why = unexpected(peek(&c));
			if (peek(&c) < 0)
				*why = "Missing '>' after address";
			goto fail;
		}
		c.pos++;
	} else if (peek(&c) >= 0 && peek(&c) != ' ') {
		*why = unexpected(peek(&c));
		goto fail;
	}
	/* RFC 5321 4.5.3.1.3: a path is at most 256 octets including the brackets. */
	if (c.pos + (bracketed ? 0 : 2) > ADDR_PATH_MAX) {
		*why = "Address longer than 256 octets";
		goto fail;
	}
	*consumed = c.pos;
	return 0;
fail:
	memset(out, 0, sizeof(*out));
	return -1;
}

int addr_parse(const char *s, unsigned flags, struct mailaddr *out, const char **why)
{
	struct cur c = { (const unsigned char *)s, strlen(s), 0 };

	memset(out, 0, sizeof(*out));
	if (c.len == 0) {
		if (flags & ADDR_ALLOW_NULL) {
			out->is_null = 1;
			return 0;
		}
		*why = "Empty address";
		return -1;
	}
	if (parse_mailbox(&c, flags, out, why) < 0)
		goto fail;
	if (c.pos != c.len) {
		*why = unexpected(peek(&c));
		goto fail;
	}
	return 0;
fail:
	memset(out, 0, sizeof(*out));
	return -1;
}

/* A local part that can be written without quotes: RFC 5321 Dot-string. */
static int is_dot_string(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);

	if (n == 0 || p[0] == '.' || p[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '.') {
			if (p[i + 1] == '.')
				return 0;
		} else if (p[i] < 0x80 && !is_atext(p[i]))
			return 0;
		/* non-ASCII bytes were validated as UTF-8 by the parser */
	}
	return 1;
}

struct wr {
	char *p;
	size_t sz;
	size_t n;
};

static void put(struct wr *w, char ch)
{
	if (w->n + 1 < w->sz)
		w->p[w->n++] = ch;
}

void addr_format(const struct mailaddr *a, char *out, size_t outsz)
{
	struct wr w = { out, outsz, 0 };

	if (outsz == 0)
		return;
	if (!a->is_null) {
		if (is_dot_string(a->local)) {
			for (const char *p = a->local; *p; p++)
				put(&w, *p);
		} else {
			/* RFC 5321 4.1.2: quoted-pairSMTP for '"' and '\' inside quotes */
			put(&w, '"');
			for (const char *p = a->local; *p; p++) {
				if (*p == '"' || *p == '\\')
					put(&w, '\\');
				put(&w, *p);
			}
			put(&w, '"');
		}
		if (a->domain[0] != '\0') {
			put(&w, '@');
			for (const char *p = a->domain; *p; p++)
				put(&w, *p);
		}
	}
	out[w.n] = '\0';
}
