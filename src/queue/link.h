/*
 * link: dial-up operation (E5) and pull requests (E4) inside the queue
 * manager — the state of the link to the ISP, what happens when it changes,
 * and the "connection" the Lotus Domino manual describes: when the link comes
 * up, push our outbound mail, send ETRN for our domains and queues, and hold
 * the line open for a while, reporting what arrived.  docs/dialup.md.
 *
 * Link state: up or down, with when and by whom it last changed, kept in
 * <work_dir>/run/link ("up 1767225600 tsubamectl\n", written to a temporary
 * name, fsynced, renamed, the folder fsynced) so a restart keeps it.  No
 * file = down.  It changes by `tsubamectl link up|down` (the control socket,
 * queue_ctl.c) or when link_check_command's answer changes (linkcheck.c):
 * the latest of those events wins.  With dialup = no the link plays no part:
 * link up|down are refused, deliveries never wait.
 *
 * With dialup = yes and the link down, remote recipients are not dispatched
 * (queue.c asks link_holds_remote()): no attempt is made, so nothing is
 * counted, expired or bounced for it; a message that waits only for the link
 * sleeps without a retry timer.  Local recipients are delivered as always.
 *
 * Link up: (1) every remote recipient waiting is made due now and the
 * deferred/ files with one are claimed (a queue run: the push); (2) the pull
 * requests — one ETRN session to etrn_server for every entry of etrn_domains,
 * run by a deliver process (IPC_D_ETRN, src/deliver/etrn_job.c); arguments
 * answered with a temporary failure, or not answered, are sent again every
 * retry_interval while the link stays up, three sessions at most; (3) the
 * hold-open window of link_hold_open seconds starts: messages received,
 * recipients delivered locally and recipients sent out are counted until it
 * ends (or the link goes down), then logged (event=link_window_closed) and
 * shown by `tsubamectl link status`; (4) while up, a queue run every
 * queue_timer seconds.
 *
 * SECURITY: runs in the queue process (the mail user).  What it trusts:
 * the control socket's peers were checked by queue_ctl.c; the run/link file
 * is ours and still parsed strictly (anything else reads as down); the ETRN
 * results come from a deliver process and are checked with ipc_end().
 */
#ifndef TSUBAME_LINK_H
#define TSUBAME_LINK_H

#include <stddef.h>

#include "ipc/ipc.h"
#include "queue/qctl_proto.h"

struct queue;

#define LINK_STATE_FILE "link"      /* in work_dir/run */
#define LINK_PULL_TRIES 3           /* ETRN sessions per link-up for arguments that failed temporarily */
#define LINK_PULL_PUSH_WAIT 60      /* seconds the pull request waits for the push to finish */

enum link_by { LINK_BY_START = 0, LINK_BY_CTL, LINK_BY_CHECK };

struct link_state {
	int up;
	long long since;      /* unix time of the change; 0 = never */
	enum link_by by;
};

/* "up 1767225600 tsubamectl\n" and back.  parse: 0 or -1; format: length or -1. */
int link_state_parse(const char *buf, size_t len, struct link_state *st);
int link_state_format(const struct link_state *st, char *out, size_t outlen);
const char *link_by_name(enum link_by by);

/* Before recovery (so recovered mail already waits for the link); timers start on the loop. */
void link_start(struct queue *q);
void link_stop(struct queue *q);
/* After a SIGHUP swapped q->cfg: timers follow the new settings; dialup turned off frees the waiting mail. */
void link_reload(struct queue *q);

/* 1 when remote recipients must wait: dialup = yes and the link is down. */
int link_holds_remote(const struct queue *q);

/* Counting for the hold-open window: messages committed; one recipient delivered (remote: sent out). */
void link_note_received(struct queue *q, size_t messages);
void link_note_delivered(struct queue *q, int remote);

/* IPC_D_ETRN_RESULT from a deliver process. */
void link_etrn_result(struct queue *q, struct ipc_msg *im);

/* tsubamectl link up|down|status (queue_ctl.c). */
void link_control(struct queue *q, const struct qctl_request *rq, long uid, struct qctl_reply *rep);

/* queue.c: no remote delivery is in flight any more (the push is over: the pull may start). */
void link_remote_idle(struct queue *q);

#endif
