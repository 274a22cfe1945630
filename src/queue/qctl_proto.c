/*
 * qctl_proto: the control protocol's strict parsers and writers (see
 * qctl_proto.h for the grammar).  Owns no state; trusts no input: every byte
 * is checked before it is copied, and every copy is bounded by the field it
 * goes to.
 */
#include "queue/qctl_proto.h"

#include <stdio.h>
#include <string.h>

static const char *const cmd_names[] = { NULL, "flush", "retry", "hold", "release", "link" };

static const char *const link_ops[] = { NULL, "up", "down", "status" };

static const char *const counter_names[QCTL_NCOUNTERS] = { "messages", "recipients", "held", "pending", "already",
	"released", "cancelled", "dialup", "up", "since", "by", "window", "received", "delivered", "sent", "waiting",
	"etrn_ok", "etrn_failed", "etrn_pending", "check" };

const char *qctl_cmd_name(enum qctl_cmd c)
{
	return c >= QCTL_FLUSH && c <= QCTL_CMD_LAST ? cmd_names[c] : "?";
}

const char *qctl_link_op_name(enum qctl_link_op o)
{
	return o >= QCTL_LINK_UP && o <= QCTL_LINK_STATUS ? link_ops[o] : "?";
}

const char *qctl_counter_name(enum qctl_counter c)
{
	return (unsigned)c < QCTL_NCOUNTERS ? counter_names[c] : "?";
}

static void set_why(char *why, size_t whylen, const char *text)
{
	if (why && whylen)
		snprintf(why, whylen, "%s", text);
}

static int is_ldh(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629 section 4), or 0. */
static size_t utf8_len(const unsigned char *p, size_t left)
{
	unsigned char c = p[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f; /* no surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (left < n)
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

/*
 * RFC 5321 4.1.2: Domain = sub-domain *("." sub-domain), sub-domain = Let-dig
 * [Ldh-str]; RFC 6531 3.3 adds U-labels (UTF-8).  Or an address-literal
 * "[...]" (RFC 5321 4.1.3), checked here only for its character set.
 */
int qctl_domain_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	if (len == 0 || len > QCTL_DOMAIN_MAX)
		return 0;
	if (p[0] == '[') {
		if (len < 3 || p[len - 1] != ']')
			return 0;
		for (size_t i = 1; i + 1 < len; i++) {
			unsigned char c = p[i];
			if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == ':' ||
			    c == '.'))
				return 0;
		}
		return 1;
	}
	size_t label = 0;
	for (size_t i = 0; i < len;) {
		if (p[i] == '.') {
			/* no empty label, none that ends in '-' */
			if (label == 0 || p[i - 1] == '-')
				return 0;
			label = 0;
			i++;
			continue;
		}
		size_t n = 1;
		if (p[i] >= 0x80) {
			n = utf8_len(p + i, len - i);
			if (n == 0)
				return 0;
		} else if (!is_ldh(p[i]) || (label == 0 && p[i] == '-')) {
			return 0;
		}
		label += n;
		if (label > 63)
			return 0;
		i += n;
	}
	return label > 0 && p[len - 1] != '-';
}

int qctl_request_parse(const char *line, size_t len, struct qctl_request *r, char *why, size_t whylen)
{
	memset(r, 0, sizeof(*r));
	if (len == 0 || line[len - 1] != '\n') {
		set_why(why, whylen, "request does not end in LF");
		return -1;
	}
	if (len > QCTL_LINE_MAX) {
		set_why(why, whylen, "request too long");
		return -1;
	}
	len--; /* the LF */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];
		if (c < 0x20 || c == 0x7f) {
			set_why(why, whylen, c == '\n' ? "more than one line" : "control character in request");
			return -1;
		}
	}
	/* verb [SP arg] */
	const char *sp = memchr(line, ' ', len);
	size_t vlen = sp ? (size_t)(sp - line) : len;
	const char *arg = sp ? sp + 1 : NULL;
	size_t alen = sp ? len - vlen - 1 : 0;
	int cmd = 0;
	for (int c = QCTL_FLUSH; c <= QCTL_CMD_LAST; c++)
		if (strlen(cmd_names[c]) == vlen && memcmp(line, cmd_names[c], vlen) == 0)
			cmd = c;
	if (cmd == 0) {
		set_why(why, whylen, "unknown command");
		return -1;
	}
	r->cmd = (enum qctl_cmd)cmd;
	if (arg && (alen == 0 || memchr(arg, ' ', alen) != NULL)) {
		set_why(why, whylen, "one argument expected, separated by one space");
		return -1;
	}
	if (cmd == QCTL_FLUSH) {
		if (!arg)
			return 0;
		size_t dlen = alen;
		if (dlen > 1 && arg[dlen - 1] == '.' && arg[0] != '[')
			dlen--; /* an absolute name "example.com." is the same domain */
		if (!qctl_domain_valid(arg, dlen)) {
			set_why(why, whylen, "not a domain name");
			return -1;
		}
		memcpy(r->domain, arg, dlen);
		r->domain[dlen] = '\0';
		return 0;
	}
	if (cmd == QCTL_LINK) {
		for (int o = QCTL_LINK_UP; o <= QCTL_LINK_STATUS; o++)
			if (arg && strlen(link_ops[o]) == alen && memcmp(arg, link_ops[o], alen) == 0) {
				r->link = (enum qctl_link_op)o;
				return 0;
			}
		set_why(why, whylen, arg ? "link takes up, down or status" : "up, down or status missing");
		return -1;
	}
	if (!arg) {
		set_why(why, whylen, cmd == QCTL_RETRY ? "queue id missing" : "queue id or ALL missing");
		return -1;
	}
	if (cmd != QCTL_RETRY && alen == 3 && memcmp(arg, "ALL", 3) == 0) {
		r->all = 1;
		return 0;
	}
	if (alen >= QID_MAX) {
		set_why(why, whylen, "not a queue id");
		return -1;
	}
	memcpy(r->qid, arg, alen);
	r->qid[alen] = '\0';
	if (!qid_valid(r->qid)) {
		r->qid[0] = '\0';
		set_why(why, whylen, "not a queue id");
		return -1;
	}
	return 0;
}

int qctl_request_format(const struct qctl_request *r, char *out, size_t outlen)
{
	const char *arg = r->cmd == QCTL_FLUSH ? r->domain : r->cmd == QCTL_LINK ? qctl_link_op_name(r->link) :
	    r->all ? "ALL" : r->qid;
	int n = snprintf(out, outlen, "%s%s%s\n", qctl_cmd_name(r->cmd), arg[0] ? " " : "", arg);
	return n < 0 || (size_t)n >= outlen ? -1 : n;
}

void qctl_reply_init(struct qctl_reply *r)
{
	memset(r, 0, sizeof(*r));
	r->ok = 1;
	for (int i = 0; i < QCTL_NCOUNTERS; i++)
		r->count[i] = -1;
}

int qctl_reply_format(const struct qctl_reply *r, char *out, size_t outlen)
{
	size_t n = 0;
	int w;
	if (outlen < 8)
		return -1;
	if (!r->ok) {
		/* CODE as given if it is a token, TEXT with anything unprintable as '?', cut to fit. */
		char code[sizeof(r->code)];
		size_t k = 0;
		for (; r->code[k] && k + 1 < sizeof(code); k++)
			code[k] = (r->code[k] >= 'a' && r->code[k] <= 'z') || r->code[k] == '-' ? r->code[k] : '-';
		code[k] = '\0';
		w = snprintf(out, outlen, "error %s ", k ? code : "failed");
		if (w < 0 || (size_t)w >= outlen)
			return -1;
		n = (size_t)w;
		for (const char *t = r->text; *t && n + 2 < outlen; t++)
			out[n++] = (*t >= 0x20 && *t < 0x7f) ? *t : '?';
		if (!r->text[0] && n + 2 < outlen)
			out[n++] = '-';
		out[n++] = '\n';
		out[n] = '\0';
		return (int)n;
	}
	w = snprintf(out, outlen, "ok");
	n = (size_t)w;
	for (int i = 0; i < QCTL_NCOUNTERS; i++) {
		if (r->count[i] < 0)
			continue;
		w = snprintf(out + n, outlen - n, " %s=%lld", counter_names[i],
		    r->count[i] > QCTL_COUNT_MAX ? QCTL_COUNT_MAX : r->count[i]);
		if (w < 0 || (size_t)w >= outlen - n)
			return -1;
		n += (size_t)w;
	}
	if (n + 2 > outlen)
		return -1;
	out[n++] = '\n';
	out[n] = '\0';
	return (int)n;
}

/* A decimal 0..QCTL_COUNT_MAX without leading zeros; -1 when it is not one. */
static long long parse_count(const char *s, size_t len)
{
	if (len == 0 || len > 12 || (len > 1 && s[0] == '0'))
		return -1;
	long long v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int qctl_reply_parse(const char *buf, size_t len, struct qctl_reply *r)
{
	qctl_reply_init(r);
	if (len < 3 || len > QCTL_REPLY_MAX || buf[len - 1] != '\n')
		return -1;
	len--;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] >= 0x7f)
			return -1;
	if (len >= 6 && memcmp(buf, "error ", 6) == 0) {
		r->ok = 0;
		const char *code = buf + 6;
		const char *sp = memchr(code, ' ', len - 6);
		if (!sp || sp == code || (size_t)(sp - code) >= sizeof(r->code) || sp + 1 == buf + len)
			return -1;
		for (const char *c = code; c < sp; c++)
			if (!((*c >= 'a' && *c <= 'z') || *c == '-'))
				return -1;
		memcpy(r->code, code, (size_t)(sp - code));
		r->code[sp - code] = '\0';
		size_t tlen = (size_t)(buf + len - (sp + 1));
		memcpy(r->text, sp + 1, tlen); /* tlen < QCTL_REPLY_MAX = sizeof(r->text) */
		r->text[tlen] = '\0';
		return 0;
	}
	if (len < 2 || memcmp(buf, "ok", 2) != 0)
		return -1;
	size_t i = 2;
	while (i < len) {
		if (buf[i] != ' ' || i + 1 >= len)
			return -1;
		i++;
		const char *key = buf + i;
		const char *end = memchr(key, ' ', len - i);
		size_t flen = end ? (size_t)(end - key) : len - i;
		const char *eq = memchr(key, '=', flen);
		if (!eq)
			return -1;
		size_t klen = (size_t)(eq - key);
		int which = -1;
		for (int c = 0; c < QCTL_NCOUNTERS; c++)
			if (strlen(counter_names[c]) == klen && memcmp(key, counter_names[c], klen) == 0)
				which = c;
		if (which < 0 || r->count[which] >= 0)
			return -1; /* unknown or repeated */
		long long v = parse_count(eq + 1, flen - klen - 1);
		if (v < 0)
			return -1;
		r->count[which] = v;
		i += flen;
	}
	return 0;
}
