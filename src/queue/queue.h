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
	struct queue *q;
	char qid[QID_MAX];
	int fd;                        /* open while deliveries are in flight */
	struct qenvelope env;
	unsigned inflight;             /* deliver requests without IPC_D_DONE */
	int on_ready;                  /* in q->ready */
	int dirty;                     /* recipient states changed in memory */
	struct event *timer;           /* next retry */
	/* per-recipient outcome of the current round */
	unsigned char *perm;           /* 1 = permanent failure this round */
	char **diag;                   /* failure text per recipient */
	char **enh;
	struct dest_wait_list parked;  /* destinations whose slots this message waits for (D1) */
	int woken;                     /* a freed slot was given to it: it goes before newer mail */
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
	struct dest_table dests;       /* per-destination in-flight counts and waiting messages (D1) */
	unsigned max_inflight;
	size_t nmessages;
	int stopping;
	struct event *ev_sighup, *ev_sigterm, *ev_sigint;
};

int queue_main(struct config *cfg, int smtpd_fd, const int *deliver_fds, size_t ndeliver);

/* Take a committed message under management (parsed envelope, fd open); schedules its deliveries. */
void queue_admit(struct queue *q, const char *qid, int fd, struct qenvelope *env);

/* bounce.c: queue a delivery status notification for the recipients marked perm in m. 0 or -1. */
int bounce_queue(struct queue *q, struct qmsg *m, int expired);

#endif
