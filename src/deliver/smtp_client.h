/*
 * smtp_client: the SMTP client engine of the deliver process, one libevent
 * state machine per connection (RFC 5321, ESMTP extensions of SPEC D6).
 *
 * The caller does DNS and connects (smtp_client_connect() helps), then hands
 * the connected socket to smtp_client_new().  The engine reads the greeting,
 * says EHLO (HELO when the peer refuses EHLO), runs STARTTLS according to the
 * route's TLS mode, authenticates when credentials are given, and then runs the
 * transactions the caller submits one at a time with smtp_client_send():
 * MAIL, every RCPT and DATA, pipelined when the peer offers PIPELINING
 * (RFC 2920), the content streamed from a file descriptor with dot-stuffing and
 * a bounded buffer.  Each recipient gets the reply that decided its fate.
 *
 * Trust: everything the peer sends is untrusted; reply lines are bounded
 * (SMTP_REPLY_LINE_MAX, SMTP_REPLY_LINES_MAX) and a peer that passes a bound
 * loses the connection (a temporary failure).  No call blocks; every wait has
 * a timer (RFC 5321 4.5.3.2 client timeouts, configurable).
 *
 * Callbacks: txn_cb once per submitted transaction, close_cb exactly once when
 * the connection is over (after QUIT, on a loss, a timeout, a TLS or AUTH
 * failure).  Both run from the event loop, never from inside an API call; after
 * close_cb returns the client is freed and must not be used.
 */
#ifndef TSUBAME_SMTP_CLIENT_H
#define TSUBAME_SMTP_CLIENT_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

struct event_base;
typedef struct ssl_ctx_st SSL_CTX;

#define SMTP_REPLY_LINE_MAX 2048   /* longer reply lines end the connection (RFC 5321 4.5.3.1.5: 512) */
#define SMTP_REPLY_LINES_MAX 64    /* lines of one multi-line reply */
#define SMTP_REPLY_TEXT_MAX 512    /* kept per recipient (the rest is cut) */

enum smtp_tls_mode {
	SMTP_TLS_NONE = 0,
	/*
	 * STARTTLS when offered, plaintext when not offered or refused.  A failed
	 * handshake leaves the connection unusable: it ends with SMTP_FAIL_TLS and
	 * the caller may reconnect with SMTP_TLS_NONE (what Postfix does).
	 */
	SMTP_TLS_OPPORTUNISTIC,
	SMTP_TLS_MANDATORY,      /* STARTTLS or a temporary failure "TLS required" */
	SMTP_TLS_IMPLICIT        /* TLS from the first byte (port 465, routes written "port*") */
};

/* AUTH mechanisms allowed (bit mask): the same bits as src/auth/sasl.h (1 << SASL_*). */
#define SMTP_AUTH_PLAIN (1u << 1)
#define SMTP_AUTH_LOGIN (1u << 2)
#define SMTP_AUTH_CRAM_MD5 (1u << 3)

struct smtp_client_params {
	const char *helo;          /* our name for EHLO/HELO */
	const char *tag;           /* log tag, e.g. "mx1.example.net[192.0.2.1]:25" */
	/* RFC 5321 4.5.3.2 timeouts in milliseconds (defaults in brackets). */
	unsigned connect_ms;       /* smtp_client_connect (30 s) */
	unsigned greeting_ms;      /* initial 220 (5 min); also EHLO, STARTTLS, AUTH, RSET, QUIT */
	unsigned mail_ms;          /* MAIL (5 min) */
	unsigned rcpt_ms;          /* RCPT (5 min) */
	unsigned data_init_ms;     /* DATA initiation (2 min) */
	unsigned data_block_ms;    /* no progress writing the content (3 min) */
	unsigned data_end_ms;      /* DATA termination (10 min) */
	enum smtp_tls_mode tls;
	SSL_CTX *ssl_ctx;          /* needed unless tls is SMTP_TLS_NONE */
	const char *tls_servername;/* SNI and the name checked when tls_verify is set */
	int tls_verify;            /* 1: a certificate that does not verify is a TLS failure */
	const char *auth_user;     /* NULL: no AUTH */
	const char *auth_pass;
	unsigned auth_mechs;       /* SMTP_AUTH_* allowed; 0 = all three */
};

/* Fill in the defaults (every timeout per RFC 5321, no TLS, no AUTH). */
void smtp_client_params_defaults(struct smtp_client_params *p);

enum smtp_status {
	SMTP_OK = 0,    /* delivered (2xx) */
	SMTP_TEMP,      /* try again later: 4xx, timeouts, losses, TLS trouble */
	SMTP_PERM       /* give up: 5xx */
};

/* Why a transaction or a connection failed. */
enum smtp_failure {
	SMTP_FAIL_NONE = 0,
	SMTP_FAIL_REPLY,         /* the peer said no (the reply says how) */
	SMTP_FAIL_TIMEOUT,       /* no reply or no progress in time (the reason names the state) */
	SMTP_FAIL_CONNECT,       /* refused, unreachable, connect timeout */
	SMTP_FAIL_LOST,          /* reset or closed by the peer */
	SMTP_FAIL_PROTOCOL,      /* malformed or over-long replies */
	SMTP_FAIL_TLS,           /* handshake or verification failure */
	SMTP_FAIL_TLS_REQUIRED,  /* mandatory STARTTLS not offered */
	SMTP_FAIL_AUTH,          /* AUTH refused (535 = permanent) or no usable mechanism */
	SMTP_FAIL_SIZE,          /* larger than the peer's SIZE (5.3.4), nothing sent */
	SMTP_FAIL_SMTPUTF8,      /* SMTPUTF8 needed, not offered (5.6.7) */
	SMTP_FAIL_LOCAL,         /* reading the content failed */
	SMTP_FAIL_ABORTED        /* not sent: another recipient got 5xx and the txn asked to abort (seed 002) */
};
const char *smtp_failure_name(enum smtp_failure f);

struct smtp_reply {
	int code;                          /* 0 when no reply decided it (timeouts, losses) */
	char enhanced[16];                 /* "5.1.1", or "" */
	char text[SMTP_REPLY_TEXT_MAX];    /* first line's text after the code(s), or our reason */
};

struct smtp_rcpt {
	const char *addr;          /* caller's, without <> */
	const char *dsn_params;    /* "NOTIFY=... ORCPT=...", sent only when the peer offers DSN; or NULL */
	/* results */
	enum smtp_status status;
	enum smtp_failure why;
	struct smtp_reply reply;
};

/*
 * SMTP_TXN_8BITMIME: the body has 8-bit bytes; BODY=8BITMIME when offered.  A
 * peer without 8BITMIME gets the content as is (Postfix's default; RFC 6152's
 * alternative, a downgrade to quoted-printable, is not done here).
 */
#define SMTP_TXN_8BITMIME 0x1
#define SMTP_TXN_SMTPUTF8 0x2   /* needs SMTPUTF8 (RFC 6531) */
/*
 * Seed 002 "abort on a RCPT 5xx": DATA waits for every RCPT reply (it is not
 * pipelined) and, when any RCPT got 5xx, the transaction is abandoned: the
 * accepted recipients end with SMTP_TEMP / SMTP_FAIL_ABORTED and get no copy.
 */
#define SMTP_TXN_ABORT_ON_RCPT_5XX 0x4

struct smtp_txn {
	const char *sender;        /* "" for the null reverse-path */
	const char *dsn_params;    /* "RET=HDRS ENVID=x", sent only when the peer offers DSN; or NULL */
	struct smtp_rcpt *rcpts;   /* caller's array, results written in place */
	size_t nrcpt;
	int fd;                    /* content: CRLF lines, read with pread(), never loaded whole */
	off_t offset;
	off_t length;
	off_t size;                /* declared size for SIZE= (0: use length) */
	unsigned flags;            /* SMTP_TXN_* */
	/* results: status is SMTP_OK when at least one recipient was accepted and DATA ended with 2xx. */
	enum smtp_status status;
	enum smtp_failure why;
	struct smtp_reply reply;   /* the reply (or reason) that ended the transaction */
	size_t accepted;           /* recipients delivered */
	int mail_accepted;         /* MAIL FROM got 2xx: the peer took part (a reused connection that
	                              fails before that was stale, not a refusal) */
};

struct smtp_client;

typedef void (*smtp_txn_cb)(struct smtp_client *c, struct smtp_txn *t, void *arg);
/* status SMTP_OK after our QUIT; otherwise why and reason (also in reply) say what happened. */
typedef void (*smtp_close_cb)(struct smtp_client *c, enum smtp_status status, enum smtp_failure why,
    const struct smtp_reply *reply, void *arg);

/*
 * Take over a connected socket fd (closed when the client is done) and start
 * the session.  params and its strings must outlive the client.  Never NULL.
 */
struct smtp_client *smtp_client_new(struct event_base *base, int fd, const struct smtp_client_params *params,
    smtp_txn_cb txn_cb, smtp_close_cb close_cb, void *arg);

/*
 * Submit a transaction: may be called right after smtp_client_new (it waits for
 * the greeting, TLS and AUTH) or from txn_cb for the next message on the same
 * connection (RSET is sent first when the previous one failed midway).  t must
 * stay valid until its txn_cb.  -1 when a transaction is already running or the
 * connection is closing.  If the connection is lost before t finishes, txn_cb
 * reports every undecided recipient as failed with the loss, then close_cb runs.
 */
int smtp_client_send(struct smtp_client *c, struct smtp_txn *t);

/* Say QUIT (when idle) and close; close_cb follows.  Also fine from txn_cb. */
void smtp_client_quit(struct smtp_client *c);

/* Abort at once without any callback (the caller is shutting down). */
void smtp_client_free(struct smtp_client *c);

/*
 * Connection reuse (conncache.c).  smtp_client_idle: 1 when the session is
 * up, between transactions, not quitting: it may be parked or given another
 * message.  smtp_client_rebind: hand the connection to a new owner, with its
 * own params (which must outlive the client, as for smtp_client_new) and
 * callbacks; rset: say RSET before the next MAIL (RFC 5321 4.1.1.5), which
 * also proves the connection still works before anything else is sent.
 * Only for an idle client; fine from inside its txn_cb (that is where a
 * connection gets parked): the callbacks that follow go to the new owner.
 * smtp_client_transactions: how many were submitted on this connection.
 */
int smtp_client_idle(const struct smtp_client *c);
void smtp_client_rebind(struct smtp_client *c, const struct smtp_client_params *params, smtp_txn_cb txn_cb,
    smtp_close_cb close_cb, void *arg, int rset);
unsigned smtp_client_transactions(const struct smtp_client *c);

/* What the peer's EHLO offered, for logs and tests (valid after the first txn_cb or close_cb). */
#define SMTP_EXT_PIPELINING 0x01
#define SMTP_EXT_SIZE 0x02
#define SMTP_EXT_8BITMIME 0x04
#define SMTP_EXT_SMTPUTF8 0x08
#define SMTP_EXT_STARTTLS 0x10
#define SMTP_EXT_AUTH 0x20
#define SMTP_EXT_DSN 0x40
#define SMTP_EXT_CHUNKING 0x80
#define SMTP_EXT_ESMTP 0x100    /* EHLO was accepted (not HELO) */
unsigned smtp_client_extensions(const struct smtp_client *c);
/* 1 when the session runs over TLS. */
int smtp_client_tls_active(const struct smtp_client *c);
/* The AUTH mechanism used, "" when none. */
const char *smtp_client_auth_mech(const struct smtp_client *c);

/* ---- connecting ---------------------------------------------------------- */

struct smtp_connect;
/* fd >= 0 connected (now the callee's), or fd -1 with err (ECONNREFUSED, ETIMEDOUT, ...). */
typedef void (*smtp_connect_cb)(int fd, int err, void *arg);
/*
 * Non-blocking connect with a timeout; cb runs once from the event loop (even
 * for an immediate failure).  The handle is freed after cb; smtp_connect_cancel
 * before that closes the socket without a callback.
 */
struct smtp_connect *smtp_client_connect(struct event_base *base, const struct sockaddr *sa, socklen_t salen,
    unsigned timeout_ms, smtp_connect_cb cb, void *arg);
void smtp_connect_cancel(struct smtp_connect *k);

#endif
