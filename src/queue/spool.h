/*
 * spool: the queue folders under work_dir/queue and every transition between them.
 *
 *   incoming/<qid>        being received; never acknowledged; removed at recovery
 *   active/<node>/<qid>   committed and owned by <node>'s queue manager
 *   deferred/<qid>        committed, waiting (remote recipients, retries); any node may claim
 *   corrupt/<qid>         unreadable; kept for the administrator, never deleted
 *   hold/<qid>            put on hold by the administrator (tsubamectl queue hold):
 *                         never scheduled, never expired, until released
 * Transitions are rename(2), which is atomic on local file systems and on NFS:
 * a claim is "rename deferred/<qid> to active/<me>/<qid>" and only one node wins.
 * No flock.  The commit point (invariant 1) is: fsync(file), rename incoming ->
 * active/<node>, fsync(active/<node>) — spool_commit() does the first two and
 * spool_sync() the directory fsync once for a whole group of commits.
 * docs/queue.md describes the states and what recovery does in each.
 */
#ifndef TSUBAME_SPOOL_H
#define TSUBAME_SPOOL_H

#include <stddef.h>

#include "queue/qid.h"

struct spool {
	char *root;          /* work_dir/queue */
	char node[16];
	int dfd_incoming;
	int dfd_active;      /* active/<node> */
	int dfd_deferred;
	int dfd_corrupt;
	int dfd_hold;        /* -1 when opened without create on a spool that has no hold/ yet */
	/* recycling (spool_enable_recycling): spent files kept for reuse, queue/free/<node> */
	int dfd_free;
	char **free_names;
	size_t nfree, max_free;
	unsigned long free_seq;
};

enum spool_dir { SPOOL_INCOMING, SPOOL_ACTIVE, SPOOL_DEFERRED, SPOOL_CORRUPT, SPOOL_HOLD };

/* Open (and with create, make: mode 0700) the folders.  0 or -1 with errno. */
int spool_open(struct spool *s, const char *work_dir, const char *node, int create);
void spool_close(struct spool *s);

/*
 * Keep up to max spent queue files in queue/free/<node> and hand them out again
 * instead of creating new ones: creating and deleting a file per message costs
 * the file system an inode allocation and release each time (the dominant
 * kernel cost of a busy queue on ext4).  Only the one process that owns this
 * node's queue may enable it.  A recycled file keeps its old bytes until they
 * are overwritten: writers must ftruncate() to their final length, and the
 * parser rejects any file whose length disagrees with its end record anyway.
 */
int spool_enable_recycling(struct spool *s, size_t max);

/* New file incoming/<qid> (a recycled one when available, else O_CREAT|O_EXCL, mode 0600).  0 or -1. */
int spool_create(struct spool *s, char qid[QID_MAX], int *fd);
/* fdatasync(fd) then rename incoming/<qid> -> active/<node>/<qid>.  0 or -1. */
int spool_commit(struct spool *s, const char *qid, int fd);
/* fsync active/<node>: makes every commit since the last call durable.  0 or -1. */
int spool_sync(struct spool *s);
/* Remove a never-committed file. */
int spool_abort(struct spool *s, const char *qid);
/* active -> deferred (keeps the message, releases the claim). */
int spool_defer(struct spool *s, const char *qid);
/* deferred -> active/<node>: 0 when we won the claim, -1 with errno ENOENT when another node did. */
int spool_claim(struct spool *s, const char *qid);
/* Delivery finished: unlink active/<node>/<qid>. */
int spool_remove(struct spool *s, const char *qid);
/*
 * Administrative hold: active/<node> or deferred/ -> hold/.  Like every
 * transition a single rename; the caller fsyncs hold/ and the source folder
 * (spool_sync_dir) before it reports the hold as done.  0 or -1 with errno.
 */
int spool_hold(struct spool *s, enum spool_dir from, const char *qid);
/* hold/ -> active/<node>: 0, or -1 with errno ENOENT when it is not (or no longer) held. */
int spool_release(struct spool *s, const char *qid);
/* Move an unreadable file from a folder to corrupt/. */
int spool_quarantine(struct spool *s, enum spool_dir from, const char *qid);
/* Open a queue file read-write. -1 with errno. */
int spool_open_file(struct spool *s, enum spool_dir d, const char *qid, int flags);

/* Call cb for every qid in a folder (sorted, oldest first).  Returns count or -1. */
int spool_list(struct spool *s, enum spool_dir d, void (*cb)(void *arg, const char *qid), void *arg);

/* fsync one folder (e.g. deferred/ after a group of spool_defer()).  0 or -1. */
int spool_sync_dir(struct spool *s, enum spool_dir d);
/* The directory fd of a folder (owned by s), or -1. */
int spool_dirfd(const struct spool *s, enum spool_dir d);
/* "incoming", "active", "deferred", "corrupt", "hold". */
const char *spool_dir_name(enum spool_dir d);
/* Every node folder under active/ (sorted), for tsubamectl and takeover (O4).  Count or -1. */
int spool_list_nodes(struct spool *s, void (*cb)(void *arg, const char *node), void *arg);
/* Open active/<node> (O_DIRECTORY); the caller closes it.  -1 with errno. */
int spool_open_node_dir(struct spool *s, const char *node);
/* Like spool_list() for any directory fd (e.g. from spool_open_node_dir()). */
int spool_list_dirfd(int dfd, void (*cb)(void *arg, const char *qid), void *arg);

/*
 * Start-up recovery for this node: unlink this node's incoming/ files (never
 * acknowledged) and those of any node older than stale_seconds (by mtime: a
 * receive in progress keeps writing); stale_seconds < 0 leaves other nodes'
 * files alone.  Call it before this node accepts mail.  Returns 0 or -1.
 */
int spool_recover_incoming(struct spool *s, long stale_seconds);

#endif
