/*
 * sasl: the server side of SMTP AUTH mechanisms PLAIN (RFC 4616), LOGIN and
 * CRAM-MD5 (RFC 2195) as a small state machine, independent of the session.
 *
 * The session feeds it the initial response and each client line (base64 text,
 * "*" to cancel); it answers with the next 334 challenge or a final result.
 * Passwords are checked against the account's crypt(3) hash; CRAM-MD5 needs a
 * plaintext-equivalent secret, which only accounts that opted in (APOP flag)
 * keep, in the secrets table.  Uses OpenSSL for base64 and HMAC-MD5.
 */
#ifndef TSUBAME_SASL_H
#define TSUBAME_SASL_H

#include <stddef.h>

#include "local/accounts.h"
#include "util/buf.h"

enum sasl_mech { SASL_NONE = 0, SASL_PLAIN, SASL_LOGIN, SASL_CRAM_MD5 };

/* Parse "PLAIN LOGIN CRAM-MD5" (any order/case) or "NO"; bit mask of 1 << mech.  -1 on an unknown word. */
int sasl_parse_methods(const char *s, unsigned *mask);
enum sasl_mech sasl_mech_by_name(const char *name);
const char *sasl_mech_name(enum sasl_mech m);

/* CRAM-MD5 secrets table: "user@domain<TAB>secret" lines, '#' comments; missing file = empty. */
struct secret_table {
	char **addr;
	char **secret;
	size_t n;
};
int secrets_load(struct secret_table *t, const char *path, struct buf *errors);
void secrets_free(struct secret_table *t);
const char *secrets_find(const struct secret_table *t, const char *addr);
/* 1 when s can be stored as a secret: non-empty, no control characters (TAB would break the line). */
int secret_valid(const char *s);
/* Set or replace one secret and save atomically (mode 0640). 0 or -1. */
int secrets_set(const char *path, const char *addr, const char *secret);
/*
 * Remove one secret and save atomically.  0, or -1 with errno (ENOENT: no such
 * address; EINVAL: the file has bad lines, which a rewrite would drop).
 * secrets_set fails with EINVAL for the same reason, or for an address without
 * '@' or a secret that is empty or holds control characters.  Neither takes a
 * lock: tsubamectl holds its table lock around them.
 */
int secrets_del(const char *path, const char *addr);

/* Lookup the account for an authentication id ("user@domain", or "user" in the first domain). */
typedef const struct account *(*sasl_lookup_fn)(void *ctx, const char *authcid);

enum sasl_step {
	SASL_CONTINUE = 0,   /* send "334 <challenge>" (challenge already base64) */
	SASL_SUCCESS,        /* 235 2.7.0 */
	SASL_FAIL,           /* 535 5.7.8 */
	SASL_MALFORMED,      /* 501 5.5.2 (bad base64, bad framing) */
	SASL_CANCELLED       /* 501 5.0.0 */
};

struct sasl {
	enum sasl_mech mech;
	int stage;
	char challenge[256];   /* CRAM-MD5 challenge sent (plain text) */
	char user[320];        /* LOGIN username collected */
	char authcid[320];     /* the authenticated id on success: "user@domain" canonical */
	const struct account *account;
};

/*
 * Start (with the optional initial response, NULL when absent, "=" for empty).
 * hostname goes into the CRAM-MD5 challenge.  out receives the base64 challenge
 * for SASL_CONTINUE.
 */
enum sasl_step sasl_start(struct sasl *s, enum sasl_mech mech, const char *initial, const char *hostname,
    sasl_lookup_fn lookup, void *ctx, const struct secret_table *secrets, struct buf *out);
/* Feed one client line (without CRLF). */
enum sasl_step sasl_step(struct sasl *s, const char *line, sasl_lookup_fn lookup, void *ctx,
    const struct secret_table *secrets, struct buf *out);

/*
 * Longest client line (initial response or continuation) in base64 characters:
 * 12 KB, i.e. 9 KB decoded.  Longer lines are SASL_MALFORMED.  The session's line
 * reader should allow "AUTH CRAM-MD5 " plus this much.
 */
#define SASL_LINE_MAX 12288

/*
 * After SASL_FAIL, s->mech and s->user (the attempted name: client text, cut to
 * fit, may be empty) stay for the log line; the exchange itself is over.
 *
 * Forget an exchange (wipes the state); call after SUCCESS/FAIL when the session
 * no longer needs s->authcid, or when the connection ends mid-exchange.
 * s->account points into the caller's account table: it is only valid until that
 * table is reloaded, so copy what you need at SASL_SUCCESS.
 */
void sasl_clear(struct sasl *s);

/*
 * TEST ONLY: start CRAM-MD5 with a fixed challenge (plain text, e.g. RFC 2195's
 * "<1896.697170952@postoffice.reston.mci.net>") instead of a random one.
 * Never call it from a session: a predictable challenge allows replay.
 */
enum sasl_step sasl_start_cram_with_challenge(struct sasl *s, const char *challenge, struct buf *out);

/*
 * Base64 helpers (OpenSSL EVP, RFC 4648 alphabet with padding): they append to
 * out.  b64_decode accepts only a multiple of 4 characters of the alphabet with
 * at most two '=' at the very end (no whitespace); 0, or -1 on invalid input or
 * when out's maximum would be passed (out is then unchanged).
 */
int b64_encode(const void *p, size_t n, struct buf *out);
int b64_decode(const char *s, struct buf *out);

#endif
