/*
 * etrn_client: one ETRN session (RFC 1985) on a libevent loop — the daemon's
 * pull request (E4, seed 001 "Pull 要求").  Connects to the first address that
 * answers, reads the greeting, says EHLO, runs STARTTLS as the TLS mode asks,
 * checks that ETRN is offered (RFC 1985 4: the client looks for the keyword in
 * the EHLO reply before it uses the command), sends one ETRN per argument and
 * waits for each reply (not pipelined: RFC 2920 does not list ETRN among the
 * commands that may be), then QUIT.
 *
 * Never blocks; every wait has a timer.  Everything the server sends is
 * untrusted: lines are bounded (ETRN_LINE_MAX, checked on partial input too)
 * and replies go through etrn_reply_feed().  No AUTH: ETRN's security is that
 * the server connects back to the host the DNS names for the domain (the
 * Lotus Domino manual's note), not who asks.
 *
 * The callback runs once, from the event loop (never from inside
 * etrn_session_start), with every argument's answer; the session frees itself
 * after the callback returns.  etrn_session_free() before that drops it
 * without a callback (shutdown).
 */
#ifndef TSUBAME_ETRN_CLIENT_H
#define TSUBAME_ETRN_CLIENT_H

#include <stddef.h>
#include <sys/socket.h>

#include "deliver/etrn_proto.h"

struct event_base;
typedef struct ssl_ctx_st SSL_CTX;

/* The same order as the etrn_tls (and smtp_tls) configuration choices. */
enum etrn_tls { ETRN_TLS_NONE = 0, ETRN_TLS_OPPORTUNISTIC, ETRN_TLS_MANDATORY };

#define ETRN_ADDRS_MAX 8

struct etrn_target {
	struct sockaddr_storage sa;
	socklen_t salen;
	char ip[46];
};

struct etrn_session_params {
	const char *helo;          /* our name for EHLO */
	const char *host;          /* the server's name as configured (SNI, logs) */
	unsigned port;
	struct etrn_target addrs[ETRN_ADDRS_MAX];   /* tried in order until one connects */
	size_t naddrs;
	unsigned connect_ms;
	unsigned reply_ms;         /* for each reply, and for the TLS handshake */
	enum etrn_tls tls;
	SSL_CTX *ssl_ctx;          /* NULL: no TLS (opportunistic goes plaintext, mandatory fails) */
};

struct etrn_answer {
	int code;                  /* 0: never answered (the session ended before) */
	char text[ETRN_TEXT_MAX];  /* the reply's first line, cleaned */
};

struct etrn_session_result {
	int ran;                   /* 1: the session got as far as sending ETRN */
	int permanent;             /* an early end that a retry will not cure (ETRN not offered, 5xx, TLS required) */
	char detail[ETRN_TEXT_MAX];/* why it ended before every argument was answered; "" otherwise */
	char peer[ETRN_HOST_MAX + 64]; /* host[ip]:port of the session, or host:port when nothing answered */
	int offered;               /* the EHLO reply listed ETRN */
	int tls;                   /* the ETRNs went over TLS */
	size_t nargs;
	struct etrn_answer *answers; /* nargs entries, in argument order */
};

typedef void (*etrn_session_cb)(void *arg, const struct etrn_session_result *r);

/*
 * Start a session; p (and the strings it points to) and args are copied.  At
 * least one address and one argument.  Never NULL.
 */
struct etrn_session *etrn_session_start(struct event_base *base, const struct etrn_session_params *p,
    char *const *args, size_t nargs, etrn_session_cb cb, void *arg);
/* Drop a session that has not called back yet: no callback, sockets closed. */
void etrn_session_free(struct etrn_session *s);

#endif
