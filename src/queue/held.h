/*
 * held: the queue manager's side of held domains and ETRN (SPEC E3, RFC 1985;
 * docs/etrn.md).  Not to be confused with hold/ (tsubamectl queue hold), which
 * parks whole messages for the administrator: here single recipients wait,
 * in active/<node> like any other, for their customer's ETRN.
 *
 * A remote recipient (state R) whose domain is in the hold table
 * (policy/holdtab.h, loaded with the local tables and reread on SIGHUP) is
 * "held":
 *   - the scheduler never hands it to deliver until it is released;
 *   - it does not expire at queue_lifetime nor bounce after the retry periods
 *     (retry_refused_count, retry_line_period, retry_noanswer_period), but at
 *     hold_lifetime after arrival, attempted or not;
 *   - it is left out of delay warnings: waiting is the service its owner ordered.
 * A release (an ETRN the entry allows, or `tsubamectl queue flush DOMAIN`)
 * marks it in memory and makes it due now: it goes out once.  Whatever that
 * attempt gives — delivered, bounced by a 5xx, or deferred — a recipient still
 * pending afterwards waits for the next release.  Release marks are not
 * written to the queue file: after a restart everything held waits again (the
 * customer asks again; nothing is lost or sent twice for it).
 *
 * Trust: ETRN requests come from smtpd over IPC; the node is parsed again
 * here (hold_node_parse) and the client address and account are only compared.
 */
#ifndef TSUBAME_HELD_H
#define TSUBAME_HELD_H

#include <stddef.h>

struct queue;
struct qmsg;
struct ipc_msg;

/* Marks in struct qmsg.released, one byte per recipient. */
#define HELD_RELEASED 1   /* released: due now, goes out at the next dispatch */
#define HELD_INFLIGHT 2   /* released and handed to deliver in this round */

struct qrcpt;

/* Recipient r is remote and its domain is held (released or not). */
int held_rcpt(const struct queue *q, const struct qrcpt *r);
/* Recipient i of m is remote and its domain is held (released or not). */
int held_domain(const struct qmsg *m, size_t i);
/* Recipient i waits for a release: its domain is held and it is not released now. */
int held_waiting(const struct qmsg *m, size_t i);
/* For the retry timer: *next becomes the earlier of itself (0 = none) and the moment recipient i expires. */
void held_wake(const struct qmsg *m, size_t i, long long *next);
/* A held recipient expires now (hold_lifetime after arrival, not released); sets its diagnostic text. */
int held_expired(struct qmsg *m, size_t i, long long now);
/* Recipient i was put into a deliver request: its release is used. */
void held_sent(struct qmsg *m, size_t i);
/* Every request of m's round is answered: released recipients that went out wait again. */
void held_round_end(struct qmsg *m);

/*
 * tsubamectl queue flush DOMAIN: release the held recipients of DOMAIN (exactly
 * that domain, as flush matches) as an ETRN by the administrator would; the
 * counts are added to *messages and *rcpts.  An entry whose route= is this
 * server is left held (logged).
 */
void held_flush(struct queue *q, const char *domain, long long *messages, long long *rcpts);

/* IPC_Q_ETRN from smtpd: decide, release, answer IPC_Q_ETRN_RESULT. */
void held_etrn(struct queue *q, struct ipc_msg *im);

#endif
