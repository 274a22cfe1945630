/*
 * queue: the queue manager process — the only process that creates, commits,
 * moves and removes queue files.  Its context and the pieces bounce.c shares.
 *
 * SECURITY: runs as the unprivileged mail user.  Trusts smtpd only to have written
 * the file whose descriptor it was given: every file is parsed and validated
 * before it is committed.  Trusts deliver's results (same privilege level).
 */
#ifndef TSUBAME_QUEUE_H
#define TSUBAME_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "conf/config.h"
#include "ipc/ipc.h"
#include "local/resolve.h"
#include "queue/dest.h"
#include "queue/qfile.h"
#include "queue/spool.h"

struct event_base;
struct event;
struct queue;

struct qmsg {
	TAILQ_ENTRY(qmsg) entry;       /* in q->ready or q->waiting */
	struct qmsg *hnext;            /* next in its q->index bucket */
	struct queue *q;
	char qid[QID_MAX];
	int fd;                        /* open while deliveries are in flight */
	struct qenvelope env;
	unsigned inflight;             /* deliver requests without IPC_D_DONE */
	int on_ready;                  /* in q->ready */
	int dirty;                     /* recipient states changed in memory */
	struct event *timer;           /* next retry */
	int hold_wanted;               /* tsubamectl queue hold while deliveries were in flight (queue_ctl.c) */
	/* per-recipient outcome of the current round */
	unsigned char *perm;           /* 1 = permanent failure this round */
	unsigned char *success;        /* DSN success to report this round: 's' delivered, 'r' relayed */
	char **diag;                   /* last reply text per recipient */
	char **enh;
	char **mta;                    /* the peer that gave it ("" for local delivery) */
	int *code;                     /* its SMTP reply code, 0 when none */
	struct dest_wait_list parked;  /* destinations whose slots this message waits for (D1) */
	int woken;                     /* a freed slot was given to it: it goes before newer mail */
	unsigned char *released;       /* E3: per recipient, HELD_RELEASED / HELD_INFLIGHT (held.c) */
};

struct incoming {
	TAILQ_ENTRY(incoming) entry;
	char qid[QID_MAX];
	int fd;
	uint64_t session;
};

struct commit {
	uint64_t session;
	struct qmsg *m;
};

struct deliver_worker {
	struct ipc_channel ch;
	struct queue *q;
	unsigned load;          /* local requests in flight */
	unsigned remote_load;   /* remote requests in flight */
	int alive;
	char name[24];
};

struct queue {
	struct event_base *base;
	struct config *cfg;
	struct local_tables *tables;
	struct spool spool;
	struct ipc_channel smtpd;
	struct deliver_worker *workers;
	size_t nworkers;
	TAILQ_HEAD(, qmsg) ready;      /* has due local recipients, waiting for a delivery slot */
	TAILQ_HEAD(, qmsg) waiting;    /* in flight or sleeping until a retry */
	TAILQ_HEAD(, incoming) incoming;
	struct commit *commits;        /* committed this pass, waiting for the directory fsync */
	size_t ncommits, cap_commits;
	unsigned inflight;
	unsigned remote_inflight;
	uint32_t atrn_next;            /* E6: the last ATRN connection id given to deliver (atrn.c) */
	struct dest_table dests;       /* per-destination in-flight counts and waiting messages (D1) */
	unsigned max_inflight;
	size_t nmessages;
	struct qmsg **index;           /* by qid: every result from deliver looks its message up */
	size_t nindex;                 /* buckets (a power of two, grown with nmessages) */
	int stopping;
	struct event *ev_sighup, *ev_sigterm, *ev_sigint;
	struct queue_ctl *ctl;         /* the control socket (queue_ctl.c) */
	struct link *link;             /* dial-up link state and pull requests (link.c) */
};

int queue_main(struct config *cfg, int smtpd_fd, const int *deliver_fds, size_t ndeliver);

/* Take a committed message under management (parsed envelope, fd open); schedules its deliveries. */
void queue_admit(struct queue *q, const char *qid, int fd, struct qenvelope *env);

/*
 * For queue_ctl.c (tsubamectl queue flush/retry/hold/release), which works on
 * the same lists: find a message under management; put it on the ready list
 * (its retry timer is the caller's business); hand ready messages to workers;
 * write its recipient states in place and fdatasync (0 or -1); forget it
 * (closes its file, frees it; the file stays where it is).
 */
struct qmsg *queue_find_msg(struct queue *q, const char *qid);
/* Every message under management, in an array the caller frees (the lists change while it works). */
struct qmsg **queue_all_msgs(struct queue *q, size_t *n);
void queue_make_ready(struct queue *q, struct qmsg *m);
void queue_dispatch(struct queue *q);
int queue_persist(struct qmsg *m);
void queue_forget(struct queue *q, struct qmsg *m);

/*
 * bounce.c: delivery status notifications (RFC 3464, RFC 3461).
 *
 * bounce_queue: the failure notice for the recipients marked perm in m, as
 * their NOTIFY asks, plus the administrator's copy (bounce_admin_copy); a
 * message from <> that fails goes to the administrator once.  0 when everything
 * that must be sent is durably queued (the caller may then mark the recipients),
 * -1 to try again later.
 */
int bounce_queue(struct queue *q, struct qmsg *m, int expired);
/* The one delay warning for the recipients in sel (Action: delayed).  0 or -1. */
int delay_queue(struct queue *q, struct qmsg *m, const unsigned char *sel);
/* Success notices for m->success (Action: delivered / relayed).  0 or -1. */
int success_queue(struct queue *q, struct qmsg *m);

#endif
