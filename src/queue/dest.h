/*
 * dest: the queue manager's per-destination accounting (SPEC D1 "per-
 * destination limits"; Postfix's qmgr keeps the same per-destination
 * concurrency and a FIFO of the mail that waits for it).
 *
 * A destination is a recipient domain, compared ignoring ASCII case.  The
 * table holds a destination only while it has remote deliveries in flight or
 * messages waiting for one of its slots, so it never holds more than
 * delivery_concurrency destinations with deliveries plus those waiting.
 *
 * Waiting: a message whose recipients for a full destination cannot go now is
 * parked on it (dest_park) instead of being looked at again and again; when
 * a slot frees, the scheduler takes the oldest parked messages (dest_pop)
 * and gives them the first chance at it.  A message may be parked on several
 * destinations; its parking records are on its own list (struct qmsg.parked)
 * so that freeing the message can drop them all (dest_unpark_all).
 *
 * Trust: only the queue process uses it; domains come from validated queue
 * files and from deliver's IPC_D_DONE (same privilege).
 */
#ifndef TSUBAME_DEST_H
#define TSUBAME_DEST_H

#include <stddef.h>
#include <sys/queue.h>

struct qmsg;
struct dest;

/* One message waiting at one destination. */
struct dest_wait {
	TAILQ_ENTRY(dest_wait) by_dest;   /* in dest.waiters, oldest first */
	LIST_ENTRY(dest_wait) by_msg;     /* in the message's own list */
	struct dest *d;
	struct qmsg *m;
};

TAILQ_HEAD(dest_waiters, dest_wait);
LIST_HEAD(dest_wait_list, dest_wait);

struct dest {
	TAILQ_ENTRY(dest) entry;
	char *domain;                     /* lower case */
	unsigned inflight;                /* remote requests sent and not yet done */
	struct dest_waiters waiters;
};

TAILQ_HEAD(dest_list, dest);

struct dest_table {
	struct dest_list all;
	size_t n;
};

void dest_table_init(struct dest_table *t);
/* At exit: every destination and parking record (the messages are not touched). */
void dest_table_free(struct dest_table *t);

/* The destination for domain, or NULL when it has nothing in flight and nobody waiting. */
struct dest *dest_find(struct dest_table *t, const char *domain);
/* One more request in flight to domain. */
void dest_acquire(struct dest_table *t, const char *domain);
/* One request to domain is done (IPC_D_DONE); an unknown domain is ignored. */
void dest_release(struct dest_table *t, const char *domain);

/* Park m on d (once: a second call does nothing); front: ahead of the others (it was first already). */
void dest_park(struct dest_table *t, struct dest *d, struct qmsg *m, struct dest_wait_list *parked, int front);
/* Is the message whose records are parked waiting at domain? */
int dest_is_parked(const struct dest_wait_list *parked, const char *domain);
/* The oldest message parked on d, unparked; NULL when none.  d may be freed by it (when idle). */
struct qmsg *dest_pop(struct dest_table *t, struct dest *d);
/* The message is going away: drop its parking records. */
void dest_unpark_all(struct dest_table *t, struct dest_wait_list *parked);

#endif
