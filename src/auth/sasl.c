/*
 * sasl: the server side of SMTP AUTH (RFC 4954) for PLAIN (RFC 4616), LOGIN and
 * CRAM-MD5 (RFC 2195), the CRAM-MD5 secrets table, and strict base64.
 *
 * SECURITY: everything the client sends is hostile.  Lines are bounded
 * (SASL_LINE_MAX) before decoding, decoded bytes go to fixed stack arrays that
 * are wiped (OPENSSL_cleanse) on every path, never to a growable buffer whose
 * realloc would leave copies of a password in freed memory.  Every way to fail
 * a credential check (no such account, wrong password, no CRAM-MD5 opt-in, no
 * secret) returns the same SASL_FAIL after doing comparable work, so the reply
 * and, roughly, the time reveal nothing about which accounts exist or opted in.
 * Digests are compared with CRYPTO_memcmp.  Crypto is OpenSSL's: RAND_bytes for
 * the challenge, HMAC-MD5 for the digest, EVP_EncodeBlock/EVP_DecodeBlock.
 * It trusts the lookup callback and the account and secrets tables it is given.
 */
#include "auth/sasl.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "local/tablefile.h"
#include "util/log.h"
#include "util/xalloc.h"

/* A decoded client line: SASL_LINE_MAX base64 characters carry 3/4 as many bytes. */
#define SASL_DECODED_MAX (SASL_LINE_MAX / 4 * 3)
/* RFC 4616 asks servers to take at least 255 octets per field; we take a little more. */
#define SASL_PASSWORD_MAX 1024
/* An HMAC-MD5 digest as the client sends it: 32 hex digits. */
#define CRAM_HEX_LEN 32

static const char *const mech_names[] = {
	[SASL_NONE] = "NONE",
	[SASL_PLAIN] = "PLAIN",
	[SASL_LOGIN] = "LOGIN",
	[SASL_CRAM_MD5] = "CRAM-MD5",
};

/* ---- mechanism names ---------------------------------------------------- */

enum sasl_mech sasl_mech_by_name(const char *name)
{
	for (int m = SASL_PLAIN; m <= SASL_CRAM_MD5; m++)
		if (strcasecmp(name, mech_names[m]) == 0)
			return (enum sasl_mech)m;
	return SASL_NONE;
}

const char *sasl_mech_name(enum sasl_mech m)
{
	if ((int)m < SASL_NONE || m > SASL_CRAM_MD5)
		return mech_names[SASL_NONE];
	return mech_names[m];
}

/*
 * "NO" alone switches AUTH off (the manual's method switch); otherwise every word
 * must name a mechanism.  An empty list is an error rather than a silent "off":
 * turning authentication off should be written down as NO.
 */
int sasl_parse_methods(const char *s, unsigned *mask)
{
	char word[32];
	unsigned m = 0;
	size_t nwords = 0;
	int saw_no = 0;

	while (*s) {
		while (*s == ' ' || *s == '\t' || *s == ',')
			s++;
		if (*s == '\0')
			break;
		size_t n = 0;
		while (s[n] && s[n] != ' ' && s[n] != '\t' && s[n] != ',')
			n++;
		if (n >= sizeof(word))
			return -1;
		memcpy(word, s, n);
		word[n] = '\0';
		s += n;
		nwords++;
		if (strcasecmp(word, "NO") == 0) {
			saw_no = 1;
			continue;
		}
		enum sasl_mech mech = sasl_mech_by_name(word);
		if (mech == SASL_NONE)
			return -1;
		m |= 1u << mech;
	}
	if (nwords == 0 || (saw_no && nwords != 1))
		return -1;
	*mask = m;
	return 0;
}

/* ---- base64 ------------------------------------------------------------- */

static int b64_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/*
 * Check s[0..len) is canonical padded base64 and return the decoded length in
 * *outlen.  EVP_DecodeBlock alone is too lenient for us (it skips leading and
 * trailing whitespace) and counts the padding as zero bytes, so we validate here
 * and subtract the padding ourselves.
 */
static int b64_check(const char *s, size_t len, size_t *outlen)
{
	size_t pad = 0;

	if (len % 4 != 0)
		return -1;
	if (len > 0 && s[len - 1] == '=')
		pad = (len > 1 && s[len - 2] == '=') ? 2 : 1;
	for (size_t i = 0; i < len - pad; i++)
		if (!b64_char((unsigned char)s[i]))
			return -1;
	*outlen = len / 4 * 3 - pad;
	return 0;
}

/* Decode already checked base64 into out[outsz]; the caller made sure it fits. */
static int b64_decode_raw(const char *s, size_t len, unsigned char *out, size_t outsz, size_t *outlen)
{
	size_t want;

	if (b64_check(s, len, &want) < 0 || want > outsz)
		return -1;
	/* Whole quartets, so EVP_DecodeBlock never sees a chunk with padding in the middle. */
	size_t done = 0;
	while (len > 0) {
		size_t chunk = len > 4096 ? 4096 : len;
		unsigned char tmp[3072];
		int n = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)chunk);
		if (n < 0 || (size_t)n != chunk / 4 * 3) {
			OPENSSL_cleanse(tmp, sizeof(tmp));
			return -1;
		}
		size_t real = (size_t)n;
		if (chunk == len) /* the last chunk carries the padding */
			real = want - done;
		memcpy(out + done, tmp, real);
		OPENSSL_cleanse(tmp, sizeof(tmp));
		done += real;
		s += chunk;
		len -= chunk;
	}
	*outlen = done;
	return 0;
}

int b64_encode(const void *p, size_t n, struct buf *out)
{
	const unsigned char *in = p;

	if (n > (SIZE_MAX - 2) / 4 * 3 || out->len + (n + 2) / 3 * 4 > out->max)
		return -1;
	/* Chunks of a multiple of 3 bytes encode without padding, so they concatenate. */
	while (n > 0) {
		unsigned char tmp[4097];
		size_t chunk = n > 3072 ? 3072 : n;
		int m = EVP_EncodeBlock(tmp, in, (int)chunk);
		if (m < 0 || buf_append(out, tmp, (size_t)m) < 0)
			return -1;
		in += chunk;
		n -= chunk;
	}
	if (out->data == NULL) /* n == 0: still hand back a valid empty string */
		return buf_append(out, "", 0);
	return 0;
}

int b64_decode(const char *s, struct buf *out)
{
	size_t len = strlen(s), want;

	if (b64_check(s, len, &want) < 0 || out->len + want > out->max)
		return -1;
	while (len > 0) {
		unsigned char tmp[3072];
		size_t chunk = len > 4096 ? 4096 : len, got;
		if (b64_decode_raw(s, chunk, tmp, sizeof(tmp), &got) < 0 || buf_append(out, tmp, got) < 0) {
			OPENSSL_cleanse(tmp, sizeof(tmp));
			return -1;
		}
		OPENSSL_cleanse(tmp, sizeof(tmp));
		s += chunk;
		len -= chunk;
	}
	if (out->data == NULL)
		return buf_append(out, "", 0);
	return 0;
}

/* ---- the exchange ------------------------------------------------------- */

void sasl_clear(struct sasl *s)
{
	OPENSSL_cleanse(s, sizeof(*s));
	s->mech = SASL_NONE;
	s->account = NULL;
}

/*
 * Decode one client line into a stack array.  RFC 4954 4: "=" as an initial
 * response means an empty one; we take it (and an empty line) as empty anywhere.
 */
static enum sasl_step decode_line(const char *line, unsigned char *out, size_t outsz, size_t *outlen)
{
	size_t len = strnlen(line, SASL_LINE_MAX + 1);

	if (len > SASL_LINE_MAX)
		return SASL_MALFORMED;
	if (len == 0 || (len == 1 && line[0] == '=')) {
		*outlen = 0;
		return SASL_CONTINUE;
	}
	if (b64_decode_raw(line, len, out, outsz, outlen) < 0)
		return SASL_MALFORMED;
	return SASL_CONTINUE;
}

/*
 * A failed exchange is over, but the session logs who tried with which mechanism:
 * keep mech and the attempted name in s->user (client text, bounded; NULL keeps
 * what LOGIN collected).  Nothing secret lives in struct sasl.
 */
static enum sasl_step fail(struct sasl *s, const char *user)
{
	char tried[sizeof(s->user)];
	enum sasl_mech mech = s->mech;
	const char *from = user ? user : s->user;
	size_t n = strnlen(from, sizeof(tried) - 1);

	memcpy(tried, from, n);
	tried[n] = '\0';
	sasl_clear(s);
	s->mech = mech;
	s->stage = -1;
	memcpy(s->user, tried, n + 1);
	return SASL_FAIL;
}

static enum sasl_step reply_challenge(struct sasl *s, const char *plain, struct buf *out)
{
	buf_reset(out);
	if (b64_encode(plain, strlen(plain), out) < 0)
		return fail(s, "");
	return SASL_CONTINUE;
}

/* Record the canonical id; SASL_FAIL when it does not fit (it always should). */
static enum sasl_step succeed(struct sasl *s, const struct account *a)
{
	int n = snprintf(s->authcid, sizeof(s->authcid), "%s@%s", a->name, a->domain);

	if (n < 0 || (size_t)n >= sizeof(s->authcid))
		return fail(s, a->name);
	s->account = a;
	s->stage = -1; /* finished: a further sasl_step is a protocol error */
	return SASL_SUCCESS;
}

/*
 * Check authcid/password against the account's crypt(3) hash.  An unknown
 * account still costs one hash computation, so the time of a reply does not
 * tell an attacker which names exist.
 */
static const struct account *check_password(const char *authcid, const char *password, sasl_lookup_fn lookup,
    void *ctx)
{
	const struct account *a = authcid[0] ? lookup(ctx, authcid) : NULL;

	if (a == NULL || a->password == NULL) {
		char *dummy = password_hash(password);
		free(dummy);
		return NULL;
	}
	return password_check(a->password, password) ? a : NULL;
}

/*
 * RFC 4616 2: message = [authzid] UTF8NUL authcid UTF8NUL passwd.  Exactly two
 * NULs (passwd may not contain one); anything else is bad framing.  We act only
 * as the authcid: a non-empty authzid must name the same account.
 */
static enum sasl_step plain_response(struct sasl *s, const char *line, sasl_lookup_fn lookup, void *ctx)
{
	unsigned char msg[SASL_DECODED_MAX + 1];
	size_t len;
	enum sasl_step r = decode_line(line, msg, sizeof(msg) - 1, &len);

	if (r != SASL_CONTINUE)
		goto out;
	msg[len] = '\0';
	const unsigned char *nul1 = memchr(msg, '\0', len);
	const unsigned char *nul2 = nul1 ? memchr(nul1 + 1, '\0', len - (size_t)(nul1 + 1 - msg)) : NULL;
	if (nul2 == NULL || memchr(nul2 + 1, '\0', len - (size_t)(nul2 + 1 - msg)) != NULL) {
		r = SASL_MALFORMED;
		goto out;
	}
	const char *authzid = (const char *)msg;
	const char *authcid = (const char *)nul1 + 1;
	const char *password = (const char *)nul2 + 1;
	if (authcid[0] == '\0' || strlen(authcid) >= sizeof(s->authcid) || password[0] == '\0' ||
	    strlen(password) > SASL_PASSWORD_MAX) {
		r = fail(s, authcid);
		goto out;
	}
	const struct account *a = check_password(authcid, password, lookup, ctx);
	if (a == NULL) {
		r = fail(s, authcid);
		goto out;
	}
	r = succeed(s, a);
	if (r == SASL_SUCCESS && authzid[0] != '\0' && strcasecmp(authzid, authcid) != 0 &&
	    strcasecmp(authzid, s->authcid) != 0)
		r = fail(s, authcid);
out:
	OPENSSL_cleanse(msg, sizeof(msg));
	if (r == SASL_MALFORMED)
		sasl_clear(s);
	return r;
}

/* LOGIN: the username, then the password, each in answer to its own 334. */
static enum sasl_step login_response(struct sasl *s, const char *line, sasl_lookup_fn lookup, void *ctx,
    struct buf *out)
{
	unsigned char msg[SASL_DECODED_MAX + 1];
	size_t len;
	enum sasl_step r = decode_line(line, msg, sizeof(msg) - 1, &len);

	if (r != SASL_CONTINUE)
		goto out;
	msg[len] = '\0';
	if (memchr(msg, '\0', len) != NULL) {
		r = SASL_MALFORMED;
		goto out;
	}
	if (s->stage == 0) {
		if (len >= sizeof(s->user)) {
			r = fail(s, (const char *)msg);
			goto out;
		}
		memcpy(s->user, msg, len + 1);
		s->stage = 1;
		r = reply_challenge(s, "Password:", out);
		goto out;
	}
	if (s->user[0] == '\0' || len == 0 || len > SASL_PASSWORD_MAX) {
		r = fail(s, NULL);
		goto out;
	}
	const struct account *a = check_password(s->user, (const char *)msg, lookup, ctx);
	r = a ? succeed(s, a) : fail(s, NULL);
out:
	OPENSSL_cleanse(msg, sizeof(msg));
	if (r == SASL_MALFORMED)
		sasl_clear(s);
	return r;
}

/* Lower-case hex of md[n] into hex (2n + 1 bytes). */
static void to_hex(const unsigned char *md, size_t n, char *hex)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[2 * n] = '\0';
}

/*
 * RFC 2195 2: the response is "user SP digest", digest = 32 lower-case hex digits
 * of HMAC-MD5(secret, challenge).  The account must have opted in (apop flag) and
 * keep a secret; otherwise we compare against a dummy key and fail the same way.
 */
static enum sasl_step cram_response(struct sasl *s, const char *line, sasl_lookup_fn lookup, void *ctx,
    const struct secret_table *secrets)
{
	unsigned char msg[SASL_DECODED_MAX + 1];
	unsigned char md[EVP_MAX_MD_SIZE];
	char want[2 * EVP_MAX_MD_SIZE + 1], got[CRAM_HEX_LEN + 1];
	unsigned mdlen = 0;
	size_t len;
	enum sasl_step r = decode_line(line, msg, sizeof(msg) - 1, &len);

	if (r != SASL_CONTINUE)
		goto out;
	msg[len] = '\0';
	const unsigned char *sp = len > CRAM_HEX_LEN ? msg + len - CRAM_HEX_LEN - 1 : NULL;
	if (sp == NULL || *sp != ' ' || sp == msg || memchr(msg, '\0', len) != NULL) {
		r = SASL_MALFORMED;
		goto out;
	}
	for (size_t i = 0; i < CRAM_HEX_LEN; i++) {
		unsigned char c = sp[1 + i];
		if (!isxdigit(c)) {
			r = SASL_MALFORMED;
			goto out;
		}
		got[i] = (char)tolower(c);
	}
	got[CRAM_HEX_LEN] = '\0';
	msg[sp - msg] = '\0';
	const char *user = (const char *)msg;

	const struct account *a = strlen(user) < sizeof(s->authcid) ? lookup(ctx, user) : NULL;
	const char *secret = NULL;
	char canon[sizeof(s->authcid)];
	if (a != NULL && a->apop && secrets != NULL &&
	    snprintf(canon, sizeof(canon), "%s@%s", a->name, a->domain) < (int)sizeof(canon))
		secret = secrets_find(secrets, canon);
	/* The same work with a key nobody holds: no timing hint about the opt-in. */
	static const char dummy_key[] = "tsubame-no-cram-md5-secret";
	const char *key = secret ? secret : dummy_key;
	if (HMAC(EVP_md5(), key, (int)strlen(key), (const unsigned char *)s->challenge, strlen(s->challenge), md,
	        &mdlen) == NULL || mdlen * 2 != CRAM_HEX_LEN) {
		log_warnx("sasl: HMAC-MD5 unavailable (FIPS mode?): CRAM-MD5 cannot succeed");
		r = fail(s, user);
		goto out;
	}
	to_hex(md, mdlen, want);
	if (CRYPTO_memcmp(want, got, CRAM_HEX_LEN) != 0 || secret == NULL)
		r = fail(s, user);
	else
		r = succeed(s, a);
out:
	OPENSSL_cleanse(msg, sizeof(msg));
	OPENSSL_cleanse(md, sizeof(md));
	OPENSSL_cleanse(want, sizeof(want));
	if (r == SASL_MALFORMED)
		sasl_clear(s);
	return r;
}

enum sasl_step sasl_start_cram_with_challenge(struct sasl *s, const char *challenge, struct buf *out)
{
	sasl_clear(s);
	if (strlen(challenge) >= sizeof(s->challenge))
		return SASL_FAIL;
	s->mech = SASL_CRAM_MD5;
	s->stage = 0;
	memcpy(s->challenge, challenge, strlen(challenge) + 1);
	return reply_challenge(s, s->challenge, out);
}

/*
 * RFC 2195 2: the challenge is a msg-id, "<random.timestamp@hostname>"; the
 * random part (RAND_bytes) makes it unpredictable, so a sniffed response cannot
 * be replayed.  A hostname too long for the buffer is cut: only uniqueness matters.
 */
static enum sasl_step cram_start(struct sasl *s, const char *hostname, struct buf *out)
{
	uint64_t rnd;
	char challenge[sizeof(s->challenge)];

	if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1) {
		log_warnx("sasl: RAND_bytes failed: no CRAM-MD5 challenge");
		return fail(s, "");
	}
	int prefix = snprintf(challenge, sizeof(challenge), "<%" PRIu64 ".%lld@", rnd, (long long)time(NULL));
	if (prefix < 0 || (size_t)prefix + 2 >= sizeof(challenge))
		return fail(s, "");
	int room = (int)(sizeof(challenge) - (size_t)prefix - 2);
	snprintf(challenge + prefix, sizeof(challenge) - (size_t)prefix, "%.*s>", room,
	    hostname && *hostname ? hostname : "localhost");
	return sasl_start_cram_with_challenge(s, challenge, out);
}

enum sasl_step sasl_start(struct sasl *s, enum sasl_mech mech, const char *initial, const char *hostname,
    sasl_lookup_fn lookup, void *ctx, const struct secret_table *secrets, struct buf *out)
{
	sasl_clear(s);
	buf_reset(out);
	s->mech = mech;
	s->stage = 0;
	switch (mech) {
	case SASL_PLAIN:
		/* RFC 4616 2: an empty challenge, then the message. */
		if (initial == NULL)
			return reply_challenge(s, "", out);
		return plain_response(s, initial, lookup, ctx);
	case SASL_LOGIN:
		/* Clients may send the username as an initial response (RFC 4954 style). */
		if (initial == NULL)
			return reply_challenge(s, "Username:", out);
		return login_response(s, initial, lookup, ctx, out);
	case SASL_CRAM_MD5:
		/* The server speaks first: an initial response is a protocol error. */
		if (initial != NULL) {
			sasl_clear(s);
			return SASL_MALFORMED;
		}
		return cram_start(s, hostname, out);
	case SASL_NONE:
		break;
	}
	sasl_clear(s);
	return SASL_MALFORMED;
}

enum sasl_step sasl_step(struct sasl *s, const char *line, sasl_lookup_fn lookup, void *ctx,
    const struct secret_table *secrets, struct buf *out)
{
	buf_reset(out);
	/* RFC 4954 4: "If the client wishes to cancel ... it issues a line with a single '*'." */
	if (strcmp(line, "*") == 0) {
		sasl_clear(s);
		return SASL_CANCELLED;
	}
	if (s->stage < 0) {
		sasl_clear(s);
		return SASL_MALFORMED;
	}
	switch (s->mech) {
	case SASL_PLAIN:
		return plain_response(s, line, lookup, ctx);
	case SASL_LOGIN:
		return login_response(s, line, lookup, ctx, out);
	case SASL_CRAM_MD5:
		return cram_response(s, line, lookup, ctx, secrets);
	case SASL_NONE:
		break;
	}
	sasl_clear(s);
	return SASL_MALFORMED;
}

/* ---- the secrets table -------------------------------------------------- */

/* An address as the table keeps it: "local@domain", no spaces or control characters. */
static int addr_ok(const char *a)
{
	const char *at = strrchr(a, '@');

	if (at == NULL || at == a || at[1] == '\0' || strlen(a) >= 320)
		return 0;
	for (; *a; a++)
		if ((unsigned char)*a <= 0x20 || *a == 0x7f)
			return 0;
	return 1;
}

int secret_valid(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

static void secrets_add(struct secret_table *t, const char *addr, const char *secret)
{
	t->addr = tablefile_grow(t->addr, t->n, sizeof(*t->addr));
	t->secret = tablefile_grow(t->secret, t->n, sizeof(*t->secret));
	t->addr[t->n] = xstrdup(addr);
	lower(t->addr[t->n]);
	t->secret[t->n] = xstrdup(secret);
	t->n++;
}

/* One line of the secrets table: "user@domain<TAB>secret". */
static void secrets_line(struct table_lines *tl, char *line, void *ctx)
{
	struct secret_table *t = ctx;
	const char *p = line;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0' || *p == '#')
		return;
	char *tab = strchr(line, '\t');
	if (tab == NULL) {
		tablefile_err(tl, "%s", "expected \"user@domain<TAB>secret\"");
		return;
	}
	*tab = '\0';
	const char *secret = tab + 1;
	if (!addr_ok(line)) {
		tablefile_err(tl, "%s", "invalid address (want user@domain)");
		return;
	}
	if (!secret_valid(secret)) {
		tablefile_err(tl, "%s", "empty secret or control characters in it");
		return;
	}
	if (secrets_find(t, line) != NULL) {
		tablefile_err(tl, "%s", "duplicate address");
		return;
	}
	secrets_add(t, line, secret);
}

int secrets_load(struct secret_table *t, const char *path, struct buf *errors)
{
	memset(t, 0, sizeof(*t));
	return tablefile_load(path, errors, secrets_line, t);
}

void secrets_free(struct secret_table *t)
{
	for (size_t i = 0; i < t->n; i++) {
		free(t->addr[i]);
		OPENSSL_cleanse(t->secret[i], strlen(t->secret[i]));
		free(t->secret[i]);
	}
	free(t->addr);
	free(t->secret);
	memset(t, 0, sizeof(*t));
}

const char *secrets_find(const struct secret_table *t, const char *addr)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcasecmp(t->addr[i], addr) == 0)
			return t->secret[i];
	return NULL;
}

static int write_secrets(FILE *fp, const void *ctx)
{
	const struct secret_table *t = ctx;

	if (fputs("# CRAM-MD5 secrets: user@domain<TAB>secret (tsubamectl secret set|del)\n", fp) < 0)
		return -1;
	for (size_t i = 0; i < t->n; i++)
		if (fprintf(fp, "%s\t%s\n", t->addr[i], t->secret[i]) < 0)
			return -1;
	return 0;
}

/*
 * Rewrite through tablefile_save (temp file in the same directory, fsync, rename,
 * fsync of the directory; owner and group of an existing file kept).  A
 * plaintext-equivalent secret must not be world-readable, so an existing file
 * is first narrowed to at most 0640, which the new file then inherits.
 */
static int save_secrets(const char *path, const struct secret_table *t)
{
	struct stat st;

	if (stat(path, &st) == 0 && (st.st_mode & 07777 & ~(mode_t)0640) != 0 &&
	    chmod(path, st.st_mode & 0640) < 0)
		return -1;
	return tablefile_save(path, 0, write_secrets, t);
}

/* Load for a rewrite: bad lines would be dropped by it, so they make it fail. */
static int load_for_change(struct secret_table *t, const char *path)
{
	struct buf errors;

	buf_init(&errors, 4096);
	int nerr = secrets_load(t, path, &errors);
	buf_free(&errors);
	if (nerr > 0) {
		secrets_free(t);
		errno = EINVAL;
		return -1;
	}
	return 0;
}

int secrets_set(const char *path, const char *addr, const char *secret)
{
	struct secret_table t;

	if (!addr_ok(addr) || !secret_valid(secret)) {
		errno = EINVAL;
		return -1;
	}
	if (load_for_change(&t, path) < 0)
		return -1;
	size_t i;
	for (i = 0; i < t.n; i++)
		if (strcasecmp(t.addr[i], addr) == 0)
			break;
	if (i < t.n) {
		OPENSSL_cleanse(t.secret[i], strlen(t.secret[i]));
		free(t.secret[i]);
		t.secret[i] = xstrdup(secret);
	} else {
		secrets_add(&t, addr, secret);
	}
	int r = save_secrets(path, &t);
	int saved = errno;
	secrets_free(&t);
	errno = saved;
	return r;
}

int secrets_del(const char *path, const char *addr)
{
	struct secret_table t;

	if (load_for_change(&t, path) < 0)
		return -1;
	size_t i;
	for (i = 0; i < t.n; i++)
		if (strcasecmp(t.addr[i], addr) == 0)
			break;
	if (i == t.n) {
		secrets_free(&t);
		errno = ENOENT;
		return -1;
	}
	free(t.addr[i]);
	OPENSSL_cleanse(t.secret[i], strlen(t.secret[i]));
	free(t.secret[i]);
	memmove(&t.addr[i], &t.addr[i + 1], (t.n - i - 1) * sizeof(*t.addr));
	memmove(&t.secret[i], &t.secret[i + 1], (t.n - i - 1) * sizeof(*t.secret));
	t.n--;
	int r = save_secrets(path, &t);
	int saved = errno;
	secrets_free(&t);
	errno = saved;
	return r;
}
