/*
 * conncache: idle SMTP client connections kept open after a transaction, so
 * that the next message to the same peer skips the TCP and TLS handshakes,
 * EHLO and AUTH (SPEC D1 "connection reuse"; Postfix's scache and
 * smtp_connection_cache_*, done inside the one deliver process).
 *
 * A connection is keyed by everything that made it what it is: the peer's
 * address and port, and the client parameters that shaped the session (TLS
 * mode and context, certificate verification and, when verifying, the name
 * verified; our HELO name; the AUTH identity and mechanisms).  Only a job
 * whose route asks for the same gets it.  Timeouts and the log tag are not
 * part of the key: the taker's own apply.
 *
 * Bounds: at most max_idle idle connections (the oldest is closed to make
 * room), each idle at most idle_ms (then QUIT), at most max_txns
 * transactions per connection (conncache_put refuses a spent one).  A peer
 * that closes an idle connection, or says anything on it (a 421), is noticed
 * at once (the client keeps reading while idle) and the entry is dropped.
 *
 * Ownership: conncache_put takes the client over (its callbacks now point
 * here, its params at the cache's own copy); conncache_take hands it to the
 * caller, rebound to the caller's params and callbacks, with RSET before its
 * next MAIL.  A taken connection that turns out dead fails its transaction
 * before MAIL is accepted (smtp_txn.mail_accepted = 0): the caller then opens
 * a fresh one (remote.c) and does not count it as a delivery failure.
 *
 * SECURITY: nothing here reads the network; it only decides which of our own
 * sessions may carry which message.  The key includes the AUTH identity so a
 * session authenticated as one account never carries another's mail.
 */
#ifndef TSUBAME_CONNCACHE_H
#define TSUBAME_CONNCACHE_H

#include <stddef.h>

#include "deliver/smtp_client.h"

struct event_base;
struct conncache;

/* How long a QUIT of an idle connection may take before the socket is just closed. */
#define CONNCACHE_QUIT_MS 2000

struct conncache *conncache_new(struct event_base *base);
/* max_idle 0 turns caching off (and closes what is idle); applies to the next put. */
void conncache_set_limits(struct conncache *cc, size_t max_idle, unsigned idle_ms, unsigned max_txns);
/* At exit: every connection closed at once, without QUIT or callbacks. */
void conncache_free(struct conncache *cc);

/*
 * Park c, idle after a successful transaction, under ip, port and params p
 * (copied).  1: the cache owns c now; 0: not kept (caching off, c not idle,
 * or c has carried max_txns transactions): the caller still owns c.  Meant
 * to be called from c's txn_cb.
 */
int conncache_put(struct conncache *cc, struct smtp_client *c, const char *ip, unsigned port,
    const struct smtp_client_params *p);

/*
 * The most recently parked idle connection to ip:port whose key matches p, now
 * the caller's: rebound to p (which must outlive it), txn_cb, close_cb and
 * arg, RSET before its next MAIL.  NULL when there is none.
 */
struct smtp_client *conncache_take(struct conncache *cc, const char *ip, unsigned port,
    const struct smtp_client_params *p, smtp_txn_cb txn_cb, smtp_close_cb close_cb, void *arg);

/* Idle connections now; connections saying QUIT now; connections handed out so far (tests, status). */
size_t conncache_idle(const struct conncache *cc);
size_t conncache_closing(const struct conncache *cc);
unsigned long conncache_hits(const struct conncache *cc);

/*
 * Shutdown: QUIT every idle connection and keep no more.  Returns how many are
 * still closing; drained(arg) runs from the event loop once that reaches 0
 * (not when it is 0 already).
 */
size_t conncache_close_all(struct conncache *cc, void (*drained)(void *arg), void *arg);

#endif
