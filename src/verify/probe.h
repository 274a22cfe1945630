/*
 * probe: ask another SMTP server whether it takes one address, without
 * sending mail (E1 recipient verification, E7 peer lookups).  One probe is one
 * connection, driven by the caller's libevent loop:
 *
 *   connect, 220 greeting, EHLO (HELO when EHLO is refused), then
 *   PROBE_VRFY:  VRFY <addr>: 250/251 found; 550/551/553 unknown; 4xx temporary;
 *                anything else (252 "cannot VRFY", 502 "not implemented", ...)
 *                goes on as PROBE_RCPT on the same connection;
 *   PROBE_RCPT:  MAIL FROM:<> [ENVID=PROBE_ENVID], RCPT TO:<addr>: 2xx found,
 *                5xx unknown, 4xx temporary;
 *   then QUIT.  No DATA is ever sent; the reply that decided is reported.
 *
 * A non-ASCII address (RFC 6531) skips VRFY and goes with MAIL ... SMTPUTF8;
 * a server without SMTPUTF8 cannot take it: PROBE_UNKNOWN, as delivery would fail.
 *
 * ENVID=tsubame.probe is sent when the server offers DSN: a Tsubame server
 * receiving it never starts lookups of its own for that transaction, so two
 * peers can never probe each other in a circle (docs/peers.md, loop guard).
 *
 * Anything that is not a verdict on the address (no connection, a time-out, a
 * 4xx/5xx greeting, EHLO or MAIL refused, a malformed reply) is PROBE_FAIL:
 * the server could not be asked.  The whole probe has one deadline.  Replies
 * are bounded (PROBE_LINE_MAX per line, PROBE_LINES_MAX lines): a server that
 * passes a bound is a PROBE_FAIL.  No TLS: probes are for servers we route to
 * on a trusted network, and carry no secret.
 *
 * Callback: exactly once, from the event loop, never inside probe_start();
 * not at all after probe_cancel().  After the callback the probe says QUIT and
 * frees itself; the caller must forget it.
 */
#ifndef TSUBAME_PROBE_H
#define TSUBAME_PROBE_H

#include <stddef.h>
#include <sys/socket.h>

struct event_base;
struct probe;

#define PROBE_LINE_MAX 2048
#define PROBE_LINES_MAX 64
#define PROBE_ENVID "tsubame.probe"

enum probe_method { PROBE_VRFY = 0, PROBE_RCPT };

enum probe_result {
	PROBE_OK = 0,     /* the server takes the address */
	PROBE_UNKNOWN,    /* it refused the address with 5xx */
	PROBE_TEMP,       /* it answered 4xx about the address */
	PROBE_FAIL        /* it could not be asked: down, time-out, refused the session */
};

struct probe_answer {
	enum probe_result result;
	int code;              /* the deciding reply, 0 when none (connection, time-out) */
	char enh[16];          /* its enhanced status code, "" when none */
	char text[256];        /* its text (first line, cut), or our reason */
	const char *how;       /* "vrfy", "rcpt", or the stage that failed ("connect", "greeting", ...) */
};

struct probe_params {
	const struct sockaddr *sa;  /* the server */
	socklen_t salen;
	const char *helo;           /* our name */
	const char *addr;           /* the address asked about, without <> */
	enum probe_method method;
	unsigned timeout_ms;        /* the whole probe */
};

typedef void (*probe_cb)(void *arg, const struct probe_answer *a);

/* Start a probe; the params' strings are copied.  Never NULL. */
struct probe *probe_start(struct event_base *base, const struct probe_params *p, probe_cb cb, void *arg);
/* Stop it without a callback (the answer is no longer wanted). */
void probe_cancel(struct probe *p);

const char *probe_result_name(enum probe_result r);

/*
 * The reply reader (exposed for tests and the fuzzer).  Feed it one line
 * without its CRLF: "CCC-text" continues a reply, "CCC text" or "CCC" ends it
 * (*done = 1; code, enh and first describe it, and the next line starts a new
 * reply).  -1 for a line that is not a reply line, a continuation with another
 * code, a NUL, a line over PROBE_LINE_MAX or a reply over PROBE_LINES_MAX
 * lines.  ehlo: notice the DSN and SMTPUTF8 keywords.  Start from a zeroed struct.
 */
struct probe_reply {
	int code;
	int nlines;            /* lines of the reply so far */
	char enh[16];          /* RFC 3463 code of the first line, "" when none */
	char first[256];       /* the first line's text after the codes (cut) */
	int dsn;               /* the EHLO reply offered DSN */
	int smtputf8;          /* ... and SMTPUTF8 */
};
int probe_reply_line(struct probe_reply *r, const char *line, size_t len, int ehlo, int *done);

#endif
