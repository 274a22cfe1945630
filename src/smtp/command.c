/*
 * command: split an SMTP command line into verb and arguments, and parse the
 * arguments of MAIL, RCPT, BDAT and HELO/EHLO into typed values.
 *
 * Owns: the verb table, the ESMTP parameter grammar (RFC 5321 4.1.2), the SIZE
 * (RFC 1870), BODY (RFC 6152, RFC 3030) and SMTPUTF8 (RFC 6531) parameters, and the
 * exact reply (code, enhanced code, text) for every syntax error, so the session
 * only relays it.  Trusts nothing in the line; the line reader has already removed
 * CRLF and bounded its length.  All reply texts are static strings.
 */
#include "smtp/command.h"

#include <string.h>
#include "util/xtext.h"

static const char *const verb_names[VERB_COUNT] = {
	[VERB_UNKNOWN] = "UNKNOWN",
	[VERB_HELO] = "HELO", [VERB_EHLO] = "EHLO", [VERB_MAIL] = "MAIL",
	[VERB_RCPT] = "RCPT", [VERB_DATA] = "DATA", [VERB_BDAT] = "BDAT",
	[VERB_RSET] = "RSET", [VERB_NOOP] = "NOOP", [VERB_QUIT] = "QUIT",
	[VERB_VRFY] = "VRFY", [VERB_EXPN] = "EXPN", [VERB_HELP] = "HELP",
	[VERB_STARTTLS] = "STARTTLS", [VERB_AUTH] = "AUTH", [VERB_TURN] = "TURN",
	[VERB_ETRN] = "ETRN", [VERB_ATRN] = "ATRN",
};

static int lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

static int is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int is_alnum(int c)
{
	return is_digit(c) || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* ASCII case-insensitive comparison of n bytes (no locale: "I" is never dotless). */
static int ci_eq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return 0;
	return 1;
}

/* a[0..n) equals the NUL-terminated word b, ignoring ASCII case. */
static int ci_word(const char *a, size_t n, const char *b)
{
	return strlen(b) == n && ci_eq(a, b, n);
}

static int fail(struct smtp_err *err, int code, const char *enh, const char *text)
{
	err->code = code;
	err->enh = enh;
	err->text = text;
	return -1;
}

/*
 * RFC 5321 4.1.1: "commands are a four-letter verb (or STARTTLS) followed by a
 * space and arguments"; verbs are case-insensitive (2.4).  The verb is the text up
 * to the first SP; anything else glued to it ("MAIL:FROM", "QUIT\t") makes an
 * unknown verb rather than a guess.
 */
void command_split(const char *line, struct smtp_command *out)
{
	size_t n = strcspn(line, " ");

	out->verb = VERB_UNKNOWN;
	for (int v = VERB_UNKNOWN + 1; v < VERB_COUNT; v++) {
		if (ci_word(line, n, verb_names[v])) {
			out->verb = (enum smtp_verb)v;
			break;
		}
	}
	out->args = line[n] == ' ' ? line + n + 1 : line + n;
}

const char *verb_name(enum smtp_verb v)
{
	if ((int)v < 0 || v >= VERB_COUNT)
		return verb_names[VERB_UNKNOWN];
	return verb_names[v];
}

/*
 * Parse an unsigned decimal of 1 to 20 digits (RFC 1870 size-value, RFC 3030
 * chunk-size) ending at a non-digit.  Returns the digits consumed (0: none), sets
 * *ovf when the value does not fit in 64 bits.
 */
static size_t parse_u64(const char *s, uint64_t *v, int *ovf)
{
	size_t i = 0;

	*v = 0;
	*ovf = 0;
	while (is_digit((unsigned char)s[i])) {
		unsigned d = (unsigned)(s[i] - '0');
		if (*v > (UINT64_MAX - d) / 10)
			*ovf = 1;
		else
			*v = *v * 10 + d;
		i++;
		if (i > 20)
			*ovf = 1;
	}
	return i;
}

/*
 * Extension keywords we know of but do not implement, so that the reply names
 * the option without building a string (reply texts are static).
 */
static const char *unsupported_text(const char *kw, size_t n)
{
	static const struct {
		const char *kw;
		const char *text;
	} known[] = {
		{ "RET", "Unsupported option: RET" },
		{ "ENVID", "Unsupported option: ENVID" },
		{ "NOTIFY", "Unsupported option: NOTIFY" },
		{ "ORCPT", "Unsupported option: ORCPT" },
		{ "AUTH", "Unsupported option: AUTH" },
		{ "MT-PRIORITY", "Unsupported option: MT-PRIORITY" },
		{ "REQUIRETLS", "Unsupported option: REQUIRETLS" },
		{ "HOLDFOR", "Unsupported option: HOLDFOR" },
		{ "HOLDUNTIL", "Unsupported option: HOLDUNTIL" },
		{ "BY", "Unsupported option: BY" },
		{ "DELIVERBY", "Unsupported option: DELIVERBY" },
		{ "SMTPUTF8", "Unsupported option: SMTPUTF8" },
		{ "SIZE", "Unsupported option: SIZE" },
		{ "BODY", "Unsupported option: BODY" },
	};

	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (ci_word(kw, n, known[i].kw))
			return known[i].text;
	return "Unsupported option";
}

/*
 * One ESMTP parameter, RFC 5321 4.1.2:
 *   esmtp-param   = esmtp-keyword ["=" esmtp-value]
 *   esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
 *   esmtp-value   = 1*(%d33-60 / %d62-126)   ; RFC 6531 3.3 adds UTF8-non-ascii
 * Returns the length of the parameter (up to SP or end), or 0 on a syntax error.
 */
struct param {
	const char *kw;
	size_t kwlen;
	const char *val; /* NULL when there is no "=" */
	size_t vallen;
};

static size_t split_param(const char *s, struct param *p)
{
	size_t i = 0;

	if (!is_alnum((unsigned char)s[0]))
		return 0;
	while (is_alnum((unsigned char)s[i]) || s[i] == '-')
		i++;
	p->kw = s;
	p->kwlen = i;
	p->val = NULL;
	p->vallen = 0;
	if (s[i] == '=') {
		size_t v = ++i;
		while (s[i] != '\0' && s[i] != ' ') {
			unsigned char c = (unsigned char)s[i];
			if (c < 33 || c == '=' || c == 127)
				return 0;
			i++;
		}
		if (i == v)
			return 0;
		p->val = s + v;
		p->vallen = i - v;
	}
	if (s[i] != '\0' && s[i] != ' ')
		return 0;
	return i;
}

static const char *skip_sp(const char *s)
{
	while (*s == ' ')
		s++;
	return s;
}

/*
 * MAIL parameters.  Each may appear once (RFC 5321 4.1.2 does not allow
 * repetition; RFC 1870 and RFC 6152 define a single value each).
 */
static int mail_params(const char *s, struct mail_params *mp, struct smtp_err *err)
{
	for (s = skip_sp(s); *s != '\0'; s = skip_sp(s)) {
		struct param p;
		size_t n = split_param(s, &p);

		if (n == 0)
			return fail(err, 501, "5.5.4", "Syntax error in MAIL parameters");
		if (ci_word(p.kw, p.kwlen, "SIZE")) {
			/* RFC 1870 6: size-param ::= "SIZE=" size-value; 1*20DIGIT */
			uint64_t v;
			int ovf;
			if (mp->has_size)
				return fail(err, 501, "5.5.4", "Duplicate SIZE parameter");
			if (p.val == NULL || parse_u64(p.val, &v, &ovf) != p.vallen)
				return fail(err, 501, "5.5.4", "Syntax error in SIZE parameter");
			if (ovf)
				return fail(err, 552, "5.3.4",
				    "Message size exceeds fixed maximum message size");
			mp->size = v;
			mp->has_size = 1;
		} else if (ci_word(p.kw, p.kwlen, "BODY")) {
			/* RFC 6152 2 / RFC 3030 3: BODY=7BIT / 8BITMIME / BINARYMIME */
			if (mp->body != BODY_NONE)
				return fail(err, 501, "5.5.4", "Duplicate BODY parameter");
			if (p.val == NULL)
				return fail(err, 501, "5.5.4", "Syntax error in BODY parameter");
			if (ci_word(p.val, p.vallen, "7BIT"))
				mp->body = BODY_7BIT;
			else if (ci_word(p.val, p.vallen, "8BITMIME"))
				mp->body = BODY_8BITMIME;
			else if (ci_word(p.val, p.vallen, "BINARYMIME"))
				mp->body = BODY_BINARYMIME;
			else
				return fail(err, 501, "5.5.4", "Unsupported BODY type");
		} else if (ci_word(p.kw, p.kwlen, "RET")) {
			/* RFC 3461 4.3: ret-value = "FULL" / "HDRS" */
			if (mp->ret)
				return fail(err, 501, "5.5.4", "Duplicate RET parameter");
			if (p.val != NULL && ci_word(p.val, p.vallen, "FULL"))
				mp->ret = DSN_RET_FULL;
			else if (p.val != NULL && ci_word(p.val, p.vallen, "HDRS"))
				mp->ret = DSN_RET_HDRS;
			else
				return fail(err, 501, "5.5.4", "Bad RET parameter syntax");
		} else if (ci_word(p.kw, p.kwlen, "ENVID")) {
			/* RFC 3461 4.4: xtext, at most 100 characters */
			if (mp->envid[0])
				return fail(err, 501, "5.5.4", "Duplicate ENVID parameter");
			if (p.val == NULL || p.vallen > DSN_ENVID_MAX ||
			    xtext_decode(p.val, p.vallen, mp->envid, sizeof(mp->envid)) <= 0)
				return fail(err, 501, "5.5.4", "Bad ENVID parameter syntax");
		} else if (ci_word(p.kw, p.kwlen, "SMTPUTF8")) {
			/* RFC 6531 3.4: the SMTPUTF8 parameter has no value */
			if (mp->smtputf8)
				return fail(err, 501, "5.5.4", "Duplicate SMTPUTF8 parameter");
			if (p.val != NULL)
				return fail(err, 501, "5.5.4", "SMTPUTF8 takes no value");
			mp->smtputf8 = 1;
		} else {
			return fail(err, 555, "5.5.4", unsupported_text(p.kw, p.kwlen));
		}
		s += n;
	}
	return 0;
}

/* RFC 3461 4.1: "NEVER" alone, or a list of SUCCESS, FAILURE, DELAY (each once). */
static int parse_notify(const char *v, size_t n, unsigned *out)
{
	unsigned bits = 0;
	size_t i = 0;
	while (i < n) {
		size_t j = i;
		while (j < n && v[j] != ',')
			j++;
		unsigned b = ci_word(v + i, j - i, "SUCCESS") ? DSN_NOTIFY_SUCCESS :
		    ci_word(v + i, j - i, "FAILURE")          ? DSN_NOTIFY_FAILURE :
		    ci_word(v + i, j - i, "DELAY")            ? DSN_NOTIFY_DELAY :
		    ci_word(v + i, j - i, "NEVER")            ? DSN_NOTIFY_NEVER : 0;
		if (b == 0 || (bits & b))
			return -1;
		bits |= b;
		if (j == n)
			break;
		i = j + 1;
		if (i == n)
			return -1; /* a trailing comma */
	}
	if (bits == 0 || ((bits & DSN_NOTIFY_NEVER) && bits != DSN_NOTIFY_NEVER))
		return -1;
	*out = bits;
	return 0;
}

/* RFC 3461 4.2: orcpt-parameter = "ORCPT=" addr-type ";" xtext; addr-type is an atom. */
static int parse_orcpt(const char *v, size_t n, char *out, size_t outsz)
{
	size_t t = 0;
	while (t < n && (is_alnum((unsigned char)v[t]) || v[t] == '-'))
		t++;
	if (t == 0 || t >= n || v[t] != ';' || n > DSN_ORCPT_MAX || t + 1 >= outsz)
		return -1;
	memcpy(out, v, t + 1);
	if (xtext_decode(v + t + 1, n - t - 1, out + t + 1, outsz - t - 1) <= 0)
		return -1;
	return 0;
}

static int rcpt_params(const char *s, struct rcpt_params *rp, struct smtp_err *err)
{
	for (s = skip_sp(s); *s != '\0'; s = skip_sp(s)) {
		struct param p;
		size_t n = split_param(s, &p);
		if (n == 0)
			return fail(err, 501, "5.5.4", "Syntax error in RCPT parameters");
		if (ci_word(p.kw, p.kwlen, "NOTIFY")) {
			if (rp->notify)
				return fail(err, 501, "5.5.4", "Duplicate NOTIFY parameter");
			if (p.val == NULL || parse_notify(p.val, p.vallen, &rp->notify) < 0)
				return fail(err, 501, "5.5.4", "Bad NOTIFY parameter syntax");
		} else if (ci_word(p.kw, p.kwlen, "ORCPT")) {
			if (rp->orcpt[0])
				return fail(err, 501, "5.5.4", "Duplicate ORCPT parameter");
			if (p.val == NULL || parse_orcpt(p.val, p.vallen, rp->orcpt, sizeof(rp->orcpt)) < 0)
				return fail(err, 501, "5.5.4", "Bad ORCPT parameter syntax");
		} else {
			return fail(err, 555, "5.5.4", unsupported_text(p.kw, p.kwlen));
		}
		s += n;
	}
	return 0;
}

/*
 * Shared front of MAIL and RCPT: "<KEYWORD>:" (case-insensitive) then the path.
 * RFC 5321 4.1.1.2 has no space after the colon, but many clients send one and
 * Postfix accepts it, so spaces there are tolerated.  The path is first parsed
 * with UTF-8 allowed so that a non-ASCII address can get its own code (RFC 6531
 * 3.7.4.1 suggests X.6.7) after the parameters had a chance to say SMTPUTF8.
 */
static int parse_path_arg(const char **argsp, const char *kw, unsigned flags,
    struct mailaddr *a, const char **why)
{
	const char *s = skip_sp(*argsp);
	size_t kwlen = strlen(kw), used;

	if (!ci_eq(s, kw, kwlen) || strlen(s) < kwlen)
		return -2;
	s = skip_sp(s + kwlen);
	if (*s == '\0')
		return -2;
	if (addr_parse_path(s, strlen(s), flags | ADDR_ALLOW_UTF8, a, &used, why) < 0)
		return -1;
	s += used;
	if (*s != '\0' && *s != ' ')
		return -2;
	*argsp = s;
	return 0;
}

int cmd_parse_mail(const char *args, unsigned flags, struct mailaddr *from,
    struct mail_params *mp, struct smtp_err *err)
{
	const char *why = "Bad sender address syntax";
	int r;

	memset(mp, 0, sizeof(*mp));
	/* RFC 5321 4.5.1: the bare Postmaster form is for recipients only. */
	flags &= ~(unsigned)ADDR_ALLOW_POSTMASTER;
	r = parse_path_arg(&args, "FROM:", flags | ADDR_ALLOW_NULL, from, &why);
	if (r == -2)
		return fail(err, 501, "5.5.4", "Syntax: MAIL FROM:<address>");
	if (r == -1)
		return fail(err, 553, "5.1.7", why);
	if (mail_params(args, mp, err) < 0)
		return -1;
	/* RFC 6531 3.4: non-ASCII in the reverse-path only with SMTPUTF8 */
	if (from->utf8 && !mp->smtputf8 && !(flags & ADDR_ALLOW_UTF8))
		return fail(err, 553, "5.6.7", "Non-ASCII sender address requires SMTPUTF8");
	return 0;
}

int cmd_parse_rcpt(const char *args, unsigned flags, struct mailaddr *to, struct rcpt_params *rp,
    struct smtp_err *err)
{
	memset(rp, 0, sizeof(*rp));
	const char *why = "Bad recipient address syntax";
	int r;

	/* RFC 5321 4.1.1.3: Forward-path = Path; never "<>", whatever the caller allows. */
	flags &= ~(unsigned)ADDR_ALLOW_NULL;
	r = parse_path_arg(&args, "TO:", flags | ADDR_ALLOW_POSTMASTER, to, &why);
	if (r == -2)
		return fail(err, 501, "5.5.4", "Syntax: RCPT TO:<address>");
	if (r == -1)
		return fail(err, 553, "5.1.3", why);
	if (rcpt_params(args, rp, err) < 0)
		return -1;
	if (to->utf8 && !(flags & ADDR_ALLOW_UTF8))
		return fail(err, 553, "5.6.7", "Non-ASCII recipient address requires SMTPUTF8");
	return 0;
}

/*
 * RFC 3030 2: bdat-cmd ::= "BDAT" SP chunk-size [ SP end-marker ] CR LF
 *   chunk-size ::= 1*DIGIT; end-marker ::= "LAST"
 * We bound chunk-size to 20 digits and 64 bits.
 */
int cmd_parse_bdat(const char *args, uint64_t *size, int *last, struct smtp_err *err)
{
	int ovf;
	size_t n = parse_u64(args, size, &ovf);

	*last = 0;
	if (n == 0 || ovf)
		return fail(err, 501, "5.5.4", "Syntax: BDAT chunk-size [LAST]");
	args += n;
	if (*args == ' ') {
		args = skip_sp(args);
		if (ci_eq(args, "LAST", 4) && strlen(args) >= 4) {
			*last = 1;
			args = skip_sp(args + 4);
		}
	}
	if (*args != '\0')
		return fail(err, 501, "5.5.4", "Syntax: BDAT chunk-size [LAST]");
	return 0;
}

/*
 * RFC 5321 4.1.1.1: ehlo = "EHLO" SP ( Domain / address-literal ) CRLF.
 * Names seen in the wild break the Domain grammar (underscores, trailing dots,
 * bare IP addresses), and RFC 5321 4.1.4 forbids refusing a message over a bad
 * HELO, so we only refuse what cannot be a host name at all: nothing, several
 * words, control characters, punctuation outside a literal, too long.  An address
 * literal must be a real one.  U-labels pass (RFC 6531 allows them after EHLO).
 */
int cmd_parse_helo(const char *args, char *out, size_t outsz, struct smtp_err *err)
{
	const char *s = skip_sp(args);
	size_t n = strcspn(s, " ");

	if (n == 0)
		return fail(err, 501, "5.5.4", "Syntax: HELO hostname");
	if (*skip_sp(s + n) != '\0')
		return fail(err, 501, "5.5.4", "Invalid HELO name: one argument expected");
	if (n > ADDR_DOMAIN_MAX || n >= outsz)
		return fail(err, 501, "5.5.4", "Invalid HELO name: too long");
	if (!addr_utf8_valid(s, n))
		return fail(err, 501, "5.5.4", "Invalid HELO name: bad characters");
	if (s[0] == '[') {
		char lit[ADDR_DOMAIN_MAX + 1];
		memcpy(lit, s, n);
		lit[n] = '\0';
		if (!addr_domain_valid(lit, 0))
			return fail(err, 501, "5.5.4", "Invalid HELO name: bad address literal");
	} else {
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)s[i];
			if (!(is_alnum(c) || c == '-' || c == '.' || c == '_' || c >= 0x80))
				return fail(err, 501, "5.5.4", "Invalid HELO name: bad characters");
		}
	}
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}
