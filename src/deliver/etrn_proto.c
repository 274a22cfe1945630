/*
 * etrn_proto: ETRN client protocol helpers (see etrn_proto.h).  Pure
 * functions: every byte is checked before it is copied, and every copy is
 * bounded by the field it goes to.
 */
#include "deliver/etrn_proto.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "queue/qctl_proto.h"

static void set_why(char *why, size_t whylen, const char *text)
{
	if (why && whylen)
		snprintf(why, whylen, "%s", text);
}

int etrn_arg_check(const char *arg, char *why, size_t whylen)
{
	size_t len = strlen(arg);
	if (len == 0) {
		set_why(why, whylen, "empty argument");
		return -1;
	}
	if (len > ETRN_ARG_MAX) {
		set_why(why, whylen, "argument too long");
		return -1;
	}
	if (arg[0] == '#') {
		/* RFC 1985 3: a queue name is the server's business; we only keep the command line clean. */
		if (len == 1) {
			set_why(why, whylen, "queue name missing after '#'");
			return -1;
		}
		for (size_t i = 1; i < len; i++)
			if ((unsigned char)arg[i] <= 0x20 || (unsigned char)arg[i] >= 0x7f) {
				set_why(why, whylen, "a queue name is printable ASCII without spaces");
				return -1;
			}
		return ETRN_ARG_QUEUE;
	}
	int sub = arg[0] == '@';
	const char *d = arg + sub;
	if (!qctl_domain_valid(d, strlen(d))) {
		set_why(why, whylen, sub ? "not a domain name after '@'" : "not a domain name (or @domain, #queue)");
		return -1;
	}
	return sub ? ETRN_ARG_SUBDOMAINS : ETRN_ARG_DOMAIN;
}

static int host_valid(const char *h)
{
	unsigned char buf[sizeof(struct in6_addr)];
	if (inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1)
		return 1;
	return h[0] != '[' && qctl_domain_valid(h, strlen(h));
}

int etrn_server_parse(const char *text, char *host, size_t hostlen, unsigned *port, int *port_given, char *why,
    size_t whylen)
{
	char tmp[ETRN_HOST_MAX + 16];
	const char *portp = NULL;
	size_t n = strlen(text);
	*port = 25;
	*port_given = 0;
	if (n == 0 || n >= sizeof(tmp)) {
		set_why(why, whylen, n ? "too long" : "empty");
		return -1;
	}
	memcpy(tmp, text, n + 1);
	char *h = tmp;
	if (tmp[0] == '[') {
		char *close = strchr(tmp, ']');
		if (!close || (close[1] != '\0' && close[1] != ':')) {
			set_why(why, whylen, "want [IPv6]:PORT");
			return -1;
		}
		*close = '\0';
		h = tmp + 1;
		unsigned char a6[sizeof(struct in6_addr)];
		if (inet_pton(AF_INET6, h, a6) != 1) {
			set_why(why, whylen, "only an IPv6 address goes in brackets");
			return -1;
		}
		if (close[1] == ':')
			portp = close + 2;
	} else {
		char *colon = strrchr(tmp, ':');
		if (colon && strchr(tmp, ':') == colon) {   /* exactly one ':': host:port */
			*colon = '\0';
			portp = colon + 1;
		}
	}
	if (portp) {
		char *end;
		long p = strtol(portp, &end, 10);
		if (*portp < '0' || *portp > '9' || *end || p < 1 || p > 65535) {
			set_why(why, whylen, "bad port");
			return -1;
		}
		*port = (unsigned)p;
		*port_given = 1;
	}
	if (!host_valid(h) || strlen(h) >= hostlen) {
		set_why(why, whylen, "not a host name or address");
		return -1;
	}
	snprintf(host, hostlen, "%s", h);
	return 0;
}

void etrn_clean_text(char *dst, size_t n, const char *src, size_t len)
{
	size_t k = 0;
	if (n == 0)
		return;
	for (size_t i = 0; i < len && k + 1 < n; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[k++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[k] = '\0';
}

void etrn_reply_init(struct etrn_reply *r)
{
	memset(r, 0, sizeof(*r));
}

/* Does the EHLO line text start with keyword kw (case-insensitive, then end or space)? */
static int keyword_is(const char *t, size_t tlen, const char *kw)
{
	size_t k = strlen(kw);
	return tlen >= k && strncasecmp(t, kw, k) == 0 && (tlen == k || t[k] == ' ');
}

int etrn_reply_feed(struct etrn_reply *r, const char *line, size_t len)
{
	if (r->complete)
		return -1;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len > ETRN_LINE_MAX || len < 3 || r->nlines >= ETRN_REPLY_LINES_MAX)
		return -1;
	/* RFC 5321 4.2: Reply-code = %x32-35 %x30-35 %x30-39, then SP or "-" (or nothing: "CCC"). */
	if (line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' || line[2] < '0' || line[2] > '9')
		return -1;
	int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->nlines > 0 && code != r->code)
		return -1;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return -1;
	int last = len == 3 || line[3] == ' ';
	const char *t = len > 4 ? line + 4 : line + len;
	size_t tlen = len > 4 ? len - 4 : 0;
	if (r->nlines == 0) {
		r->code = code;
		etrn_clean_text(r->text, sizeof(r->text), t, tlen);
	} else if (keyword_is(t, tlen, "ETRN")) {
		r->ehlo |= ETRN_EHLO_ETRN;
	} else if (keyword_is(t, tlen, "STARTTLS")) {
		r->ehlo |= ETRN_EHLO_STARTTLS;
	}
	r->nlines++;
	if (last)
		r->complete = 1;
	return last;
}

enum etrn_outcome etrn_outcome_of(int code)
{
	if (code >= 200 && code < 300)
		return ETRN_ACCEPTED;
	if (code == 459)
		return ETRN_REFUSED;
	if (code >= 400 && code < 500)
		return ETRN_TEMP;
	return ETRN_FAILED;
}

const char *etrn_outcome_name(enum etrn_outcome o)
{
	switch (o) {
	case ETRN_ACCEPTED: return "accepted";
	case ETRN_TEMP: return "temporary";
	case ETRN_REFUSED: return "refused";
	case ETRN_FAILED: return "failed";
	}
	return "?";
}

const char *etrn_code_meaning(int code)
{
	/* RFC 1985 section 5.1. */
	switch (code) {
	case 250: return "queuing for the node started";
	case 251: return "no messages waiting for the node";
	case 252: return "pending messages for the node started";
	case 253: return "pending messages for the node started";
	case 421: return "service not available, closing";
	case 458: return "unable to queue messages for the node";
	case 459: return "node not allowed";
	case 500: return "syntax error (ETRN not recognized)";
	case 501: return "syntax error in parameters";
	case 502: return "command not implemented";
	}
	if (code >= 200 && code < 300)
		return "accepted";
	if (code >= 400 && code < 500)
		return "temporary failure";
	return "failed";
}

int etrn_config_check(const struct config *c, const char *path, struct buf *errors)
{
	int problems = 0;
	char why[128], host[ETRN_HOST_MAX];
	unsigned port;
	int given;
	if (c->etrn_server[0] && etrn_server_parse(c->etrn_server, host, sizeof(host), &port, &given, why, sizeof(why)) < 0) {
		buf_appendf(errors, "%s: etrn_server '%s' is not host[:port] (%s)\n", path, c->etrn_server, why);
		problems++;
	}
	for (size_t i = 0; i < c->etrn_domains.n; i++)
		if (etrn_arg_check(c->etrn_domains.v[i], why, sizeof(why)) < 0) {
			buf_appendf(errors, "%s: etrn_domains: '%s': %s\n", path, c->etrn_domains.v[i], why);
			problems++;
		}
	if (c->etrn_domains.n > 0 && !c->etrn_server[0]) {
		buf_appendf(errors, "%s: etrn_domains is set but etrn_server is empty: where should the ETRN go?\n", path);
		problems++;
	}
	if (c->etrn_domains.n > 100) {
		buf_appendf(errors, "%s: etrn_domains: at most 100 entries\n", path);
		problems++;
	}
	return problems;
}
