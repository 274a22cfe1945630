/*
 * queue_ctl: the queue manager's control socket — how tsubamectl's
 * `queue flush|retry|hold|release` reach the running queue process, the only
 * process that moves queue files (protocol: qctl_proto.h).
 *
 * SECURITY: the socket is <work_dir>/run/queue.ctl, made by the queue process
 * after the privilege drop, mode 0600 in a 0750 folder of the mail user; a peer
 * whose SO_PEERCRED uid is neither root nor ours is refused anyway.  Requests
 * are parsed strictly (qctl_request_parse); at most QCTL_MAX_CONNS connections
 * at a time, each closed after one answer or QCTL_TIMEOUT seconds.  Nothing
 * here blocks the loop except the fsyncs that make a hold or release durable,
 * the same kind of work the queue does for every commit.
 */
#ifndef TSUBAME_QUEUE_CTL_H
#define TSUBAME_QUEUE_CTL_H

struct queue;
struct qmsg;

#define QCTL_MAX_CONNS 8
#define QCTL_TIMEOUT 10 /* seconds for a whole request/answer exchange */

/* Listen on the control socket (after recovery).  Without it the queue still runs; it logs why. */
void queue_ctl_start(struct queue *q);
/* At exit: moves messages whose hold waited for their deliveries to hold/, closes and unlinks the socket. */
void queue_ctl_stop(struct queue *q);
/*
 * From finish_round(), for a message with hold_wanted whose deliveries have all
 * returned and whose results are applied: write its states, move it to hold/,
 * fsync, forget it.  0 when m is held (and freed); -1 when it could not be
 * moved (logged; m is untouched, hold_wanted cleared, and is scheduled as usual).
 */
int queue_ctl_hold_settle(struct queue *q, struct qmsg *m);

#endif
