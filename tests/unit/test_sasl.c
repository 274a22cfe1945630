/*
 * Unit tests for src/auth/sasl.c: the PLAIN, LOGIN and CRAM-MD5 exchanges
 * (table-driven, with the RFC 2195 example vector), cancel and malformed input,
 * strict base64, the method list, and the secrets table (load errors, set,
 * replace, delete, file mode).
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/hmac.h>

#include "auth/sasl.h"

/* ---- fixtures: a tiny account table and its lookup ------------------------ */

struct fixture {
	struct account acc[3];
	struct secret_table secrets;
	struct buf out;
	char dir[64];
};

/* "user@domain", or "user" in the first domain (example.test), case-insensitive. */
static const struct account *lookup(void *ctx, const char *authcid)
{
	struct fixture *f = ctx;
	const char *at = strrchr(authcid, '@');
	size_t llen = at ? (size_t)(at - authcid) : strlen(authcid);
	const char *domain = at ? at + 1 : "example.test";

	for (size_t i = 0; i < 3; i++)
		if (strlen(f->acc[i].name) == llen && strncasecmp(f->acc[i].name, authcid, llen) == 0 &&
		    strcasecmp(f->acc[i].domain, domain) == 0)
			return &f->acc[i];
	return NULL;
}

static int setup(void **state)
{
	static const struct {
		const char *name, *password;
		int apop;
	} users[3] = { { "tim", "pw-tim", 1 }, { "bob", "pw-bob", 0 }, { "carol", "pw-carol", 1 } };
	struct fixture *f = calloc(1, sizeof(*f));

	for (size_t i = 0; i < 3; i++) {
		f->acc[i].name = (char *)users[i].name;
		f->acc[i].domain = (char *)"example.test";
		f->acc[i].password = password_hash(users[i].password);
		assert_non_null(f->acc[i].password);
		f->acc[i].apop = users[i].apop;
	}
	/* tim opted in and has a secret; bob has a secret but no opt-in; carol opted in without a secret. */
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_sasl.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/secrets", f->dir);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("# test secrets\nTim@Example.Test\ttanstaaftanstaaf\nbob@example.test\tbobsecret\n", fp);
	fclose(fp);
	struct buf errors;
	buf_init(&errors, 4096);
	assert_int_equal(secrets_load(&f->secrets, path, &errors), 0);
	buf_free(&errors);
	buf_init(&f->out, 64 * 1024);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	for (size_t i = 0; i < 3; i++)
		free(f->acc[i].password);
	secrets_free(&f->secrets);
	buf_free(&f->out);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* base64 of n raw bytes as a C string the caller frees. */
static char *b64(const void *p, size_t n)
{
	struct buf b;
	buf_init(&b, 64 * 1024);
	assert_int_equal(b64_encode(p, n, &b), 0);
	return buf_steal(&b);
}

/* The decoded text of the last challenge. */
static char *challenge_text(const struct buf *out)
{
	struct buf b;
	buf_init(&b, 64 * 1024);
	assert_int_equal(b64_decode(buf_cstr(out), &b), 0);
	return buf_steal(&b);
}

/* ---- method list and names ------------------------------------------------- */

static void test_parse_methods(void **state)
{
	static const struct {
		const char *text;
		int rc;
		unsigned mask;
	} cases[] = {
		{ "NO", 0, 0 },
		{ "no", 0, 0 },
		{ "  No ", 0, 0 },
		{ "PLAIN", 0, 1u << SASL_PLAIN },
		{ "PLAIN LOGIN CRAM-MD5", 0, 1u << SASL_PLAIN | 1u << SASL_LOGIN | 1u << SASL_CRAM_MD5 },
		{ "cram-md5,login", 0, 1u << SASL_LOGIN | 1u << SASL_CRAM_MD5 },
		{ "plain, login\tPLAIN", 0, 1u << SASL_PLAIN | 1u << SASL_LOGIN },
		{ "PLAIN DIGEST-MD5", -1, 0 },
		{ "NO PLAIN", -1, 0 },
		{ "", -1, 0 },
		{ " , ", -1, 0 },
		{ "CRAM", -1, 0 },
		{ "PLAINPLAINPLAINPLAINPLAINPLAINPLAINPLAIN", -1, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned mask = 0xdead;
		int rc = sasl_parse_methods(cases[i].text, &mask);
		if (rc != cases[i].rc || (rc == 0 && mask != cases[i].mask))
			fail_msg("\"%s\": rc %d mask %#x", cases[i].text, rc, mask);
	}
	assert_int_equal(sasl_mech_by_name("cram-md5"), SASL_CRAM_MD5);
	assert_int_equal(sasl_mech_by_name("Login"), SASL_LOGIN);
	assert_int_equal(sasl_mech_by_name("GSSAPI"), SASL_NONE);
	assert_string_equal(sasl_mech_name(SASL_PLAIN), "PLAIN");
	assert_string_equal(sasl_mech_name(SASL_CRAM_MD5), "CRAM-MD5");
}

/* ---- base64 ----------------------------------------------------------------- */

static void test_b64_vectors(void **state)
{
	/* RFC 4648 10 test vectors. */
	static const char *const vec[][2] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		struct buf e, d;
		buf_init(&e, 1024);
		buf_init(&d, 1024);
		assert_int_equal(b64_encode(vec[i][0], strlen(vec[i][0]), &e), 0);
		assert_string_equal(buf_cstr(&e), vec[i][1]);
		assert_int_equal(b64_decode(vec[i][1], &d), 0);
		assert_int_equal(d.len, strlen(vec[i][0]));
		assert_memory_equal(buf_cstr(&d), vec[i][0], d.len);
		buf_free(&e);
		buf_free(&d);
	}
}

static void test_b64_round_trip(void **state)
{
	unsigned char raw[10000];

	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = (unsigned char)(i * 131 + (i >> 7));
	/* Every padding case, and sizes that cross the internal chunk boundaries. */
	static const size_t sizes[] = { 0, 1, 2, 3, 4, 5, 254, 255, 256, 3071, 3072, 3073, 3074, 6144, 9999, 10000 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct buf e, d;
		buf_init(&e, 1 << 20);
		buf_init(&d, 1 << 20);
		assert_int_equal(b64_encode(raw, sizes[i], &e), 0);
		assert_int_equal(e.len, (sizes[i] + 2) / 3 * 4);
		assert_int_equal(b64_decode(buf_cstr(&e), &d), 0);
		assert_int_equal(d.len, sizes[i]);
		if (sizes[i])
			assert_memory_equal(d.data, raw, sizes[i]);
		buf_free(&e);
		buf_free(&d);
	}
}

static void test_b64_invalid(void **state)
{
	static const char *const bad[] = {
		"Zg", "Zg=", "Z===", "====", "Zm9v YmFy", " Zm9v", "Zm9v ", "Zm9v\n", "Zm9v\r\n", "Zg==Zg==",
		"Zm9*", "=Zg=", "Zm=v", "Zm9v-_", "Zm9\x80", "*",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct buf d;
		buf_init(&d, 1024);
		assert_int_equal(buf_puts(&d, "kept"), 0);
		if (b64_decode(bad[i], &d) != -1)
			fail_msg("\"%s\" decoded", bad[i]);
		assert_string_equal(buf_cstr(&d), "kept");
		buf_free(&d);
	}
	/* The buffer maximum is a failure with the buffer unchanged. */
	struct buf small;
	buf_init(&small, 4);
	assert_int_equal(b64_decode("Zm9vYmFy", &small), -1);
	assert_int_equal(small.len, 0);
	assert_int_equal(b64_encode("foobar", 6, &small), -1);
	assert_int_equal(small.len, 0);
	buf_free(&small);
}

/* ---- PLAIN -------------------------------------------------------------------- */

struct plain_case {
	const char *msg;
	size_t len;           /* the message has NULs: explicit length */
	enum sasl_step want;
	const char *authcid;  /* on success */
};

#define M(s) s, sizeof(s) - 1

static const struct plain_case plain_cases[] = {
	{ M("\0tim\0pw-tim"), SASL_SUCCESS, "tim@example.test" },
	{ M("\0TIM@Example.TEST\0pw-tim"), SASL_SUCCESS, "tim@example.test" },
	{ M("tim\0tim\0pw-tim"), SASL_SUCCESS, "tim@example.test" },
	{ M("tim@example.test\0tim\0pw-tim"), SASL_SUCCESS, "tim@example.test" },
	{ M("\0bob@example.test\0pw-bob"), SASL_SUCCESS, "bob@example.test" },
	{ M("bob\0tim\0pw-tim"), SASL_FAIL, NULL },        /* authzid differs */
	{ M("tim@other.test\0tim\0pw-tim"), SASL_FAIL, NULL },
	{ M("\0tim\0pw-bob"), SASL_FAIL, NULL },           /* wrong password */
	{ M("\0tim\0PW-TIM"), SASL_FAIL, NULL },
	{ M("\0nobody\0pw-tim"), SASL_FAIL, NULL },        /* no such account */
	{ M("\0\0pw-tim"), SASL_FAIL, NULL },              /* empty authcid */
	{ M("\0tim\0"), SASL_FAIL, NULL },                 /* empty password */
	{ M(""), SASL_MALFORMED, NULL },                   /* empty message */
	{ M("tim pw-tim"), SASL_MALFORMED, NULL },         /* no NULs */
	{ M("\0timpw-tim"), SASL_MALFORMED, NULL },        /* one NUL */
	{ M("\0tim\0pw\0tim"), SASL_MALFORMED, NULL },     /* NUL in the password */
};

static void test_plain(void **state)
{
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(plain_cases) / sizeof(plain_cases[0]); i++) {
		const struct plain_case *c = &plain_cases[i];
		char *line = c->len ? b64(c->msg, c->len) : strdup("=");
		for (int initial = 0; initial < 2; initial++) {
			struct sasl s;
			enum sasl_step r;
			if (initial) {
				r = sasl_start(&s, SASL_PLAIN, line, "mx.example.test", lookup, f, &f->secrets, &f->out);
			} else {
				r = sasl_start(&s, SASL_PLAIN, NULL, "mx.example.test", lookup, f, &f->secrets, &f->out);
				assert_int_equal(r, SASL_CONTINUE);
				assert_string_equal(buf_cstr(&f->out), ""); /* "334 " with an empty challenge */
				r = sasl_step(&s, line, lookup, f, &f->secrets, &f->out);
			}
			if (r != c->want)
				fail_msg("case %zu (%s initial response): got %d, want %d", i, initial ? "with" : "without", r,
				    c->want);
			if (c->want == SASL_FAIL) {
				/* The attempted name and mechanism stay for the session's log line. */
				assert_int_equal(s.mech, SASL_PLAIN);
				assert_memory_equal(s.user, c->msg + strlen(c->msg) + 1, strlen(c->msg + strlen(c->msg) + 1) + 1);
				assert_string_equal(s.authcid, "");
				assert_null(s.account);
				assert_int_equal(sasl_step(&s, line, lookup, f, &f->secrets, &f->out), SASL_MALFORMED);
			}
			if (c->want == SASL_SUCCESS) {
				assert_string_equal(s.authcid, c->authcid);
				assert_non_null(s.account);
				/* The exchange is over: more input is a protocol error. */
				assert_int_equal(sasl_step(&s, line, lookup, f, &f->secrets, &f->out), SASL_MALFORMED);
			}
			sasl_clear(&s);
		}
		free(line);
	}
}

/* ---- LOGIN --------------------------------------------------------------------- */

static void test_login(void **state)
{
	struct fixture *f = *state;
	struct sasl s;
	char *user = b64("Tim@example.test", 16), *pw = b64("pw-tim", 6), *bad = b64("pw-bob", 6);
	char *text;

	assert_int_equal(sasl_start(&s, SASL_LOGIN, NULL, "mx", lookup, f, &f->secrets, &f->out), SASL_CONTINUE);
	assert_string_equal(buf_cstr(&f->out), "VXNlcm5hbWU6");
	assert_int_equal(sasl_step(&s, user, lookup, f, &f->secrets, &f->out), SASL_CONTINUE);
	assert_string_equal(buf_cstr(&f->out), "UGFzc3dvcmQ6");
	assert_int_equal(sasl_step(&s, pw, lookup, f, &f->secrets, &f->out), SASL_SUCCESS);
	assert_string_equal(s.authcid, "tim@example.test");

	/* The username as an initial response skips the first 334. */
	assert_int_equal(sasl_start(&s, SASL_LOGIN, user, "mx", lookup, f, &f->secrets, &f->out), SASL_CONTINUE);
	text = challenge_text(&f->out);
	assert_string_equal(text, "Password:");
	free(text);
	assert_int_equal(sasl_step(&s, bad, lookup, f, &f->secrets, &f->out), SASL_FAIL);
	assert_string_equal(s.user, "Tim@example.test");
	assert_int_equal(s.mech, SASL_LOGIN);

	/* An unknown user is asked for a password like anyone else, then fails the same way. */
	char *nobody = b64("nobody", 6);
	assert_int_equal(sasl_start(&s, SASL_LOGIN, NULL, "mx", lookup, f, &f->secrets, &f->out), SASL_CONTINUE);
	assert_int_equal(sasl_step(&s, nobody, lookup, f, &f->secrets, &f->out), SASL_CONTINUE);
	assert_int_equal(sasl_step(&s, pw, lookup, f, &f->secrets, &f->out), SASL_FAIL);
	free(nobody);

	/* Empty password ("=" or an empty line). */
	assert_int_equal(sasl_start(&s, SASL_LOGIN, user, "mx", lookup, f, &f->secrets, &f->out), SASL_CONTINUE);
	assert_int_equal(sasl_step(&s, "", lookup, f, &f->secrets, &f->out), SASL_FAIL);

	/* A NUL in the username is bad framing. */
	char *nul = b64("ti\0m", 4);
	assert_int_equal(sasl_start(&s, SASL_LOGIN, NULL, "mx", lookup, f, &f->secrets, &f->out), SASL_CONTINUE);
	assert_int_equal(sasl_step(&s, nul, lookup, f, &f->secrets, &f->out), SASL_MALFORMED);
	free(nul);
	free(user);
	free(pw);
	free(bad);
	sasl_clear(&s);
}

/* ---- CRAM-MD5 -------------------------------------------------------------------- */

static const char rfc2195_challenge[] = "<1896.697170952@postoffice.reston.mci.net>";

static char *cram_reply(const char *user, const char *key, const char *challenge)
{
	unsigned char md[16];
	unsigned mdlen = 0;
	char text[512];

	assert_non_null(HMAC(EVP_md5(), key, (int)strlen(key), (const unsigned char *)challenge, strlen(challenge), md,
	    &mdlen));
	int n = snprintf(text, sizeof(text), "%s ", user);
	for (unsigned i = 0; i < mdlen; i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n, "%02x", md[i]);
	return b64(text, strlen(text));
}

static void test_cram_rfc2195(void **state)
{
	struct fixture *f = *state;
	struct sasl s;
	static const char *const responses[] = {
		"tim b913a602c7eda7a495b4e6e7334d3890",
		"tim B913A602C7EDA7A495B4E6E7334D3890",
		"tim@example.test b913a602c7eda7a495b4e6e7334d3890",
	};

	for (size_t i = 0; i < sizeof(responses) / sizeof(responses[0]); i++) {
		assert_int_equal(sasl_start_cram_with_challenge(&s, rfc2195_challenge, &f->out), SASL_CONTINUE);
		/* RFC 2195 2: the challenge as the server sends it, base64-encoded. */
		assert_string_equal(buf_cstr(&f->out), "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+");
		char *line = b64(responses[i], strlen(responses[i]));
		assert_int_equal(sasl_step(&s, line, lookup, f, &f->secrets, &f->out), SASL_SUCCESS);
		assert_string_equal(s.authcid, "tim@example.test");
		free(line);
	}
	/* RFC 2195's own base64 of the response. */
	assert_int_equal(sasl_start_cram_with_challenge(&s, rfc2195_challenge, &f->out), SASL_CONTINUE);
	assert_int_equal(sasl_step(&s, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw", lookup, f, &f->secrets,
	    &f->out), SASL_SUCCESS);
	sasl_clear(&s);
}

static void test_cram_failures(void **state)
{
	struct fixture *f = *state;
	struct sasl s;
	struct {
		const char *user, *key;
		enum sasl_step want;
	} cases[] = {
		{ "tim", "tanstaaftanstaaf", SASL_SUCCESS },
		{ "tim", "wrong", SASL_FAIL },
		{ "bob", "bobsecret", SASL_FAIL },          /* secret kept, but no opt-in */
		{ "carol", "anything", SASL_FAIL },         /* opted in, no secret */
		{ "carol", "tsubame-no-cram-md5-secret", SASL_FAIL }, /* not even the internal dummy key */
		{ "nobody", "tanstaaftanstaaf", SASL_FAIL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(sasl_start_cram_with_challenge(&s, rfc2195_challenge, &f->out), SASL_CONTINUE);
		char *line = cram_reply(cases[i].user, cases[i].key, rfc2195_challenge);
		enum sasl_step r = sasl_step(&s, line, lookup, f, &f->secrets, &f->out);
		if (r != cases[i].want)
			fail_msg("%s/%s: got %d", cases[i].user, cases[i].key, r);
		if (r == SASL_FAIL) {
			assert_string_equal(s.user, cases[i].user);
			assert_int_equal(s.mech, SASL_CRAM_MD5);
		}
		free(line);
	}
	/* Without a secrets table nobody can use CRAM-MD5. */
	assert_int_equal(sasl_start_cram_with_challenge(&s, rfc2195_challenge, &f->out), SASL_CONTINUE);
	char *line = cram_reply("tim", "tanstaaftanstaaf", rfc2195_challenge);
	assert_int_equal(sasl_step(&s, line, lookup, f, NULL, &f->out), SASL_FAIL);
	free(line);

	/* Framing: "user SP 32 hex digits". */
	static const char *const malformed[] = {
		"tim", "tim b913a602c7eda7a495b4e6e7334d389", "timb913a602c7eda7a495b4e6e7334d3890",
		" b913a602c7eda7a495b4e6e7334d3890", "tim b913a602c7eda7a495b4e6e7334d389g",
		"tim b913a602c7eda7a495b4e6e7334d3890 ",
	};
	for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
		assert_int_equal(sasl_start_cram_with_challenge(&s, rfc2195_challenge, &f->out), SASL_CONTINUE);
		char *l = b64(malformed[i], strlen(malformed[i]));
		if (sasl_step(&s, l, lookup, f, &f->secrets, &f->out) != SASL_MALFORMED)
			fail_msg("\"%s\" accepted", malformed[i]);
		free(l);
	}
	/* CRAM-MD5 has no initial response. */
	assert_int_equal(sasl_start(&s, SASL_CRAM_MD5, "dGlt", "mx", lookup, f, &f->secrets, &f->out), SASL_MALFORMED);
	sasl_clear(&s);
}

static void test_cram_random_challenge(void **state)
{
	struct fixture *f = *state;
	struct sasl s;
	char first[256];

	assert_int_equal(sasl_start(&s, SASL_CRAM_MD5, NULL, "mx.example.test", lookup, f, &f->secrets, &f->out),
	    SASL_CONTINUE);
	char *challenge = challenge_text(&f->out);
	unsigned long long rnd;
	long long ts;
	char host[64];
	assert_int_equal(sscanf(challenge, "<%llu.%lld@%63[^>]>", &rnd, &ts, host), 3);
	assert_string_equal(host, "mx.example.test");
	assert_int_equal(challenge[strlen(challenge) - 1], '>');
	snprintf(first, sizeof(first), "%s", challenge);
	char *line = cram_reply("tim", "tanstaaftanstaaf", challenge);
	assert_int_equal(sasl_step(&s, line, lookup, f, &f->secrets, &f->out), SASL_SUCCESS);
	free(line);
	free(challenge);

	/* A second challenge differs, so the first response cannot be replayed. */
	assert_int_equal(sasl_start(&s, SASL_CRAM_MD5, NULL, "mx.example.test", lookup, f, &f->secrets, &f->out),
	    SASL_CONTINUE);
	challenge = challenge_text(&f->out);
	assert_string_not_equal(challenge, first);
	line = cram_reply("tim", "tanstaaftanstaaf", first);
	assert_int_equal(sasl_step(&s, line, lookup, f, &f->secrets, &f->out), SASL_FAIL);
	free(line);
	free(challenge);

	/* A hostname too long for the challenge buffer is cut, the '>' stays. */
	char longhost[400];
	memset(longhost, 'h', sizeof(longhost) - 1);
	longhost[sizeof(longhost) - 1] = '\0';
	assert_int_equal(sasl_start(&s, SASL_CRAM_MD5, NULL, longhost, lookup, f, &f->secrets, &f->out), SASL_CONTINUE);
	challenge = challenge_text(&f->out);
	assert_true(strlen(challenge) < sizeof(s.challenge));
	assert_int_equal(challenge[strlen(challenge) - 1], '>');
	free(challenge);
	sasl_clear(&s);
}

/* ---- cancel, malformed, bounds ------------------------------------------------------ */

static void test_cancel_and_malformed(void **state)
{
	struct fixture *f = *state;
	struct sasl s;
	static const enum sasl_mech mechs[] = { SASL_PLAIN, SASL_LOGIN, SASL_CRAM_MD5 };

	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(sasl_start(&s, mechs[i], NULL, "mx", lookup, f, &f->secrets, &f->out), SASL_CONTINUE);
		assert_int_equal(sasl_step(&s, "*", lookup, f, &f->secrets, &f->out), SASL_CANCELLED);
		assert_int_equal(s.mech, SASL_NONE);
		static const char *const bad[] = { "dGlt!", "dGl", "dGlt dGlt", "====" };
		for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
			assert_int_equal(sasl_start(&s, mechs[i], NULL, "mx", lookup, f, &f->secrets, &f->out), SASL_CONTINUE);
			if (sasl_step(&s, bad[j], lookup, f, &f->secrets, &f->out) != SASL_MALFORMED)
				fail_msg("mech %d: \"%s\" not malformed", mechs[i], bad[j]);
		}
	}
	/* LOGIN cancelled at the password prompt. */
	assert_int_equal(sasl_start(&s, SASL_LOGIN, "dGlt", "mx", lookup, f, &f->secrets, &f->out), SASL_CONTINUE);
	assert_int_equal(sasl_step(&s, "*", lookup, f, &f->secrets, &f->out), SASL_CANCELLED);
	/* Bad base64 as an initial response. */
	assert_int_equal(sasl_start(&s, SASL_PLAIN, "AHRpbQBwdy10aW0", "mx", lookup, f, &f->secrets, &f->out),
	    SASL_MALFORMED);
	/* A step with no exchange in progress. */
	sasl_clear(&s);
	assert_int_equal(sasl_step(&s, "dGlt", lookup, f, &f->secrets, &f->out), SASL_MALFORMED);
	assert_int_equal(sasl_start(&s, SASL_NONE, NULL, "mx", lookup, f, &f->secrets, &f->out), SASL_MALFORMED);
}

static void test_line_bounds(void **state)
{
	struct fixture *f = *state;
	struct sasl s;
	char *line = malloc(SASL_LINE_MAX + 5);

	/* SASL_LINE_MAX characters of "QUFB" ("AAA"): accepted as base64, the name is just too long. */
	for (size_t i = 0; i < SASL_LINE_MAX + 4; i += 4)
		memcpy(line + i, "QUFB", 4);
	line[SASL_LINE_MAX] = '\0';
	assert_int_equal(sasl_start(&s, SASL_LOGIN, line, "mx", lookup, f, &f->secrets, &f->out), SASL_FAIL);
	line[SASL_LINE_MAX] = 'Q';
	line[SASL_LINE_MAX + 4] = '\0';
	assert_int_equal(sasl_start(&s, SASL_LOGIN, line, "mx", lookup, f, &f->secrets, &f->out), SASL_MALFORMED);
	assert_int_equal(sasl_start(&s, SASL_PLAIN, NULL, "mx", lookup, f, &f->secrets, &f->out), SASL_CONTINUE);
	assert_int_equal(sasl_step(&s, line, lookup, f, &f->secrets, &f->out), SASL_MALFORMED);
	free(line);

	/* A 2 KB password is refused before hashing. */
	char msg[2100];
	memset(msg, 'p', sizeof(msg));
	memcpy(msg, "\0tim\0", 5);
	char *l = b64(msg, sizeof(msg));
	assert_int_equal(sasl_start(&s, SASL_PLAIN, l, "mx", lookup, f, &f->secrets, &f->out), SASL_FAIL);
	free(l);
	sasl_clear(&s);
}

/* ---- secrets table ------------------------------------------------------------------- */

static void write_file(const char *path, const char *text, size_t len)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(text, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static void test_secrets_load(void **state)
{
	struct fixture *f = *state;
	char path[128];
	struct secret_table t;
	struct buf errors;

	snprintf(path, sizeof(path), "%s/load", f->dir);
	buf_init(&errors, 64 * 1024);
	/* A missing file is an empty table. */
	assert_int_equal(secrets_load(&t, path, &errors), 0);
	assert_int_equal(t.n, 0);
	assert_null(secrets_find(&t, "tim@example.test"));
	secrets_free(&t);

	static const char good[] = "# comment\n\n   \n\t# indented comment\nA@B.test\tsec ret with spaces\r\n"
	    "c@d.test\tx\n";
	write_file(path, good, sizeof(good) - 1);
	assert_int_equal(secrets_load(&t, path, &errors), 0);
	assert_int_equal(t.n, 2);
	assert_string_equal(t.addr[0], "a@b.test");
	assert_string_equal(secrets_find(&t, "a@B.TEST"), "sec ret with spaces");
	assert_string_equal(secrets_find(&t, "c@d.test"), "x");
	assert_null(secrets_find(&t, "c@d"));
	secrets_free(&t);

	static const struct {
		const char *text;
		size_t len;
		const char *error;
	} bad[] = {
		{ M("a@b.test secret\n"), ":1: expected \"user@domain<TAB>secret\"" },
		{ M("# x\nab.test\tsecret\n"), ":2: invalid address" },
		{ M("@b.test\tsecret\n"), ":1: invalid address" },
		{ M("a@\tsecret\n"), ":1: invalid address" },
		{ M("a b@c.test\tsecret\n"), ":1: invalid address" },
		{ M("a@b.test\t\n"), ":1: empty secret" },
		{ M("a@b.test\tsec\tret\n"), ":1: empty secret or control characters" },
		{ M("a@b.test\tsec\x01ret\n"), ":1: empty secret or control characters" },
		{ M("a@b.test\tx\nA@B.TEST\ty\n"), ":2: duplicate address" },
		{ M("a@b.test\tx\0y\n"), ":1: NUL byte" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		buf_reset(&errors);
		write_file(path, bad[i].text, bad[i].len);
		assert_int_equal(secrets_load(&t, path, &errors), 1);
		if (strstr(buf_cstr(&errors), bad[i].error) == NULL || strncmp(buf_cstr(&errors), path, strlen(path)) != 0)
			fail_msg("case %zu: \"%s\" lacks \"%s\"", i, buf_cstr(&errors), bad[i].error);
		secrets_free(&t);
	}
	/* An over-long line is one error; the lines after it still load. */
	size_t n = 5000;
	char *big = malloc(n + 32);
	memset(big, 'x', n);
	memcpy(big + n, "\nq@r.test\tok\n", 13);
	buf_reset(&errors);
	write_file(path, big, n + 13);
	assert_int_equal(secrets_load(&t, path, &errors), 1);
	assert_non_null(strstr(buf_cstr(&errors), ":1: line too long"));
	assert_string_equal(secrets_find(&t, "q@r.test"), "ok");
	secrets_free(&t);
	free(big);
	buf_free(&errors);
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void test_secrets_set(void **state)
{
	struct fixture *f = *state;
	char sub[128], path[160];
	struct secret_table t;
	struct buf errors;
	struct stat st;

	snprintf(sub, sizeof(sub), "%s/set", f->dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(path, sizeof(path), "%s/secrets", sub);
	buf_init(&errors, 4096);

	assert_int_equal(secrets_set(path, "Tim@Example.Test", "one"), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(secrets_set(path, "bob@example.test", "two"), 0);
	assert_int_equal(secrets_set(path, "TIM@example.test", "three"), 0); /* replaces */
	assert_int_equal(secrets_load(&t, path, &errors), 0);
	assert_int_equal(t.n, 2);
	assert_string_equal(secrets_find(&t, "tim@example.test"), "three");
	assert_string_equal(secrets_find(&t, "bob@example.test"), "two");
	secrets_free(&t);
	assert_int_equal(count_entries(sub), 1); /* no temporary file left */

	/* Invalid arguments. */
	errno = 0;
	assert_int_equal(secrets_set(path, "nodomain", "x"), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(secrets_set(path, "a@b.test", ""), -1);
	assert_int_equal(secrets_set(path, "a@b.test", "tab\there"), -1);

	/* Delete. */
	assert_int_equal(secrets_del(path, "BOB@example.test"), 0);
	errno = 0;
	assert_int_equal(secrets_del(path, "bob@example.test"), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(secrets_load(&t, path, &errors), 0);
	assert_int_equal(t.n, 1);
	assert_null(secrets_find(&t, "bob@example.test"));
	secrets_free(&t);

	/* A world-readable file is narrowed to 0640 by the next rewrite. */
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(secrets_set(path, "c@d.test", "x"), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);

	/* A file with a bad line is not rewritten (the rewrite would lose it). */
	static const char broken[] = "a@b.test\tok\nbroken line\n";
	write_file(path, broken, sizeof(broken) - 1);
	errno = 0;
	assert_int_equal(secrets_set(path, "c@d.test", "x"), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(secrets_del(path, "a@b.test"), -1);
	assert_int_equal(errno, EINVAL);
	FILE *fp = fopen(path, "r");
	char content[128] = { 0 };
	assert_int_equal(fread(content, 1, sizeof(content) - 1, fp), sizeof(broken) - 1);
	fclose(fp);
	assert_string_equal(content, broken);
	buf_free(&errors);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_methods),
		cmocka_unit_test(test_b64_vectors),
		cmocka_unit_test(test_b64_round_trip),
		cmocka_unit_test(test_b64_invalid),
		cmocka_unit_test_setup_teardown(test_plain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_login, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cram_rfc2195, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cram_failures, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cram_random_challenge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_and_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_line_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secrets_load, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secrets_set, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
