/*
 * spool: the queue folders and the transitions between them (spool.h,
 * docs/queue.md for the state table).
 *
 * Owns: every path under work_dir/queue.  Trusts: nothing from outside; every
 * qid that reaches a path is checked with qid_valid() first (only [0-9A-Za-z.],
 * fixed shape), so a name from tsubamectl or a directory listing can never
 * walk out of its folder.  All operations are relative to directory fds
 * opened once (openat/renameat/unlinkat), so a rename of work_dir under a
 * running daemon cannot redirect them.
 *
 * Order matters in spool_commit(): the data must be on disk (fdatasync)
 * before the name appears in active/, or a crash could leave a committed name
 * on an empty or partial file.  The new directory entry becomes durable with
 * spool_sync() (fsync of active/<node>), which the caller does once per event
 * loop pass for all the commits of that pass (group commit), and only then
 * sends the 250 replies.
 */
#include "queue/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util/log.h"
#include "util/xalloc.h"

static const char *dir_names[] = { "incoming", "active", "deferred", "corrupt", "hold" };

static int node_valid(const char *node)
{
	size_t n = strlen(node);
	if (n == 0 || n >= sizeof(((struct spool *)0)->node))
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = node[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
			return 0;
	}
	return 1;
}

static int open_dir(int at, const char *name, int create)
{
	if (create && mkdirat(at, name, 0700) < 0 && errno != EEXIST)
		return -1;
	return openat(at, name, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int spool_open(struct spool *s, const char *work_dir, const char *node, int create)
{
	int rootfd = -1, activefd = -1, err;

	memset(s, 0, sizeof(*s));
	s->dfd_incoming = s->dfd_active = s->dfd_deferred = s->dfd_corrupt = s->dfd_hold = s->dfd_free = -1;
	if (!node_valid(node)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(s->node, node, strlen(node) + 1);
	s->root = xasprintf("%s/queue", work_dir);

	if (create && mkdir(s->root, 0700) < 0 && errno != EEXIST)
		goto fail;
	if ((rootfd = open(s->root, O_DIRECTORY | O_RDONLY | O_CLOEXEC)) < 0)
		goto fail;
	if ((s->dfd_incoming = open_dir(rootfd, "incoming", create)) < 0 ||
	    (activefd = open_dir(rootfd, "active", create)) < 0 ||
	    (s->dfd_active = open_dir(activefd, node, create)) < 0 ||
	    (s->dfd_deferred = open_dir(rootfd, "deferred", create)) < 0 ||
	    (s->dfd_corrupt = open_dir(rootfd, "corrupt", create)) < 0)
		goto fail;
	/* hold/ came later than the others: a reader (create = 0) of an older spool does without it. */
	if ((s->dfd_hold = open_dir(rootfd, "hold", create)) < 0 && (create || errno != ENOENT))
		goto fail;
	/* New entries in queue/ and queue/active/ must survive a crash too. */
	if (create && (fsync(activefd) < 0 || fsync(rootfd) < 0))
		goto fail;
	close(activefd);
	close(rootfd);
	return 0;
fail:
	err = errno;
	close_fd(&activefd);
	close_fd(&rootfd);
	spool_close(s);
	errno = err;
	return -1;
}

void spool_close(struct spool *s)
{
	close_fd(&s->dfd_incoming);
	close_fd(&s->dfd_active);
	close_fd(&s->dfd_deferred);
	close_fd(&s->dfd_corrupt);
	close_fd(&s->dfd_hold);
	close_fd(&s->dfd_free);
	for (size_t i = 0; i < s->nfree; i++)
		free(s->free_names[i]);
	free(s->free_names);
	s->free_names = NULL;
	s->nfree = s->max_free = 0;
	free(s->root);
	s->root = NULL;
}

int spool_enable_recycling(struct spool *s, size_t max)
{
	int rootfd = open(s->root, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (rootfd < 0)
		return -1;
	int freefd = open_dir(rootfd, "free", 1);
	close(rootfd);
	if (freefd < 0)
		return -1;
	s->dfd_free = open_dir(freefd, s->node, 1);
	close(freefd);
	if (s->dfd_free < 0)
		return -1;
	s->max_free = max;
	s->free_names = xcalloc(max ? max : 1, sizeof(char *));
	int dfd = dup(s->dfd_free);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return -1;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (s->nfree < max)
			s->free_names[s->nfree++] = xstrdup(de->d_name);
		else
			unlinkat(s->dfd_free, de->d_name, 0);
		unsigned long seq = strtoul(de->d_name + 1, NULL, 10);
		if (seq >= s->free_seq)
			s->free_seq = seq + 1;
	}
	closedir(d);
	return 0;
}

/* Retire a spent file: into the free pool while it has room, else unlink. */
static int retire(struct spool *s, int from, const char *qid)
{
	if (s->dfd_free >= 0 && s->nfree < s->max_free) {
		char name[32];
		snprintf(name, sizeof(name), "r%lu", s->free_seq++);
		if (renameat(from, qid, s->dfd_free, name) == 0) {
			s->free_names[s->nfree++] = xstrdup(name);
			return 0;
		}
		if (errno == ENOENT)
			return -1;
	}
	return unlinkat(from, qid, 0);
}

int spool_dirfd(const struct spool *s, enum spool_dir d)
{
	switch (d) {
	case SPOOL_INCOMING:
		return s->dfd_incoming;
	case SPOOL_ACTIVE:
		return s->dfd_active;
	case SPOOL_DEFERRED:
		return s->dfd_deferred;
	case SPOOL_CORRUPT:
		return s->dfd_corrupt;
	case SPOOL_HOLD:
		return s->dfd_hold;
	}
	return -1;
}

const char *spool_dir_name(enum spool_dir d)
{
	return (unsigned)d < sizeof(dir_names) / sizeof(dir_names[0]) ? dir_names[d] : "?";
}

static int check_qid(const char *qid)
{
	if (!qid_valid(qid)) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

int spool_create(struct spool *s, char qid[QID_MAX], int *fd)
{
	while (s->nfree > 0) {
		char *name = s->free_names[--s->nfree];
		qid_new(qid, s->node);
		int ok = renameat(s->dfd_free, name, s->dfd_incoming, qid) == 0;
		free(name);
		if (!ok)
			continue;
		int f = openat(s->dfd_incoming, qid, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (f >= 0) {
			*fd = f;
			return 0;
		}
		unlinkat(s->dfd_incoming, qid, 0);
	}
	/* O_EXCL makes a collision an error, never a shared file; a new id is the cure. */
	for (int tries = 0; tries < 8; tries++) {
		qid_new(qid, s->node);
		int f = openat(s->dfd_incoming, qid, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (f >= 0) {
			*fd = f;
			return 0;
		}
		if (errno != EEXIST)
			return -1;
	}
	return -1;
}

int spool_commit(struct spool *s, const char *qid, int fd)
{
	if (check_qid(qid) < 0)
		return -1;
	/* Data and size on disk before the name says "committed". */
	if (fdatasync(fd) < 0)
		return -1;
	return renameat(s->dfd_incoming, qid, s->dfd_active, qid);
}

int spool_sync(struct spool *s)
{
	return fsync(s->dfd_active);
}

int spool_sync_dir(struct spool *s, enum spool_dir d)
{
	int dfd = spool_dirfd(s, d);
	if (dfd < 0) {
		errno = EBADF;
		return -1;
	}
	return fsync(dfd);
}

int spool_abort(struct spool *s, const char *qid)
{
	if (check_qid(qid) < 0)
		return -1;
	return retire(s, s->dfd_incoming, qid);
}

int spool_defer(struct spool *s, const char *qid)
{
	if (check_qid(qid) < 0)
		return -1;
	return renameat(s->dfd_active, qid, s->dfd_deferred, qid);
}

int spool_claim(struct spool *s, const char *qid)
{
	if (check_qid(qid) < 0)
		return -1;
	/*
	 * Only one rename wins; the losers get ENOENT.  NFS caveat: if the reply
	 * to a RENAME that succeeded is lost and the retransmission is answered
	 * ENOENT, we report a loss although the file is in active/<node>: it is
	 * delayed, not lost, since the next scan of active/<node> (at start)
	 * delivers it.  We do not "fix" that with a stat, which would make a
	 * claim of a qid we already own look like a win.
	 */
	return renameat(s->dfd_deferred, qid, s->dfd_active, qid);
}

int spool_remove(struct spool *s, const char *qid)
{
	if (check_qid(qid) < 0)
		return -1;
	return retire(s, s->dfd_active, qid);
}

int spool_hold(struct spool *s, enum spool_dir from, const char *qid)
{
	if (check_qid(qid) < 0)
		return -1;
	if ((from != SPOOL_ACTIVE && from != SPOOL_DEFERRED) || s->dfd_hold < 0) {
		errno = EINVAL;
		return -1;
	}
	return renameat(spool_dirfd(s, from), qid, s->dfd_hold, qid);
}

int spool_release(struct spool *s, const char *qid)
{
	if (check_qid(qid) < 0)
		return -1;
	if (s->dfd_hold < 0) {
		errno = ENOENT;
		return -1;
	}
	/* Like a claim: if two nodes release the same message, one rename wins and the other gets ENOENT. */
	return renameat(s->dfd_hold, qid, s->dfd_active, qid);
}

int spool_quarantine(struct spool *s, enum spool_dir from, const char *qid)
{
	if (check_qid(qid) < 0)
		return -1;
	int dfd = spool_dirfd(s, from);
	if (dfd < 0 || from == SPOOL_CORRUPT) {
		errno = EINVAL;
		return -1;
	}
	return renameat(dfd, qid, s->dfd_corrupt, qid);
}

int spool_open_file(struct spool *s, enum spool_dir d, const char *qid, int flags)
{
	if (check_qid(qid) < 0)
		return -1;
	int dfd = spool_dirfd(s, d);
	if (dfd < 0) {
		errno = EBADF;
		return -1;
	}
	return openat(dfd, qid, flags | O_CLOEXEC | O_NOFOLLOW);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names in dfd, sorted; with qids_only, only names that are qids. */
static int read_names(int dfd, int qids_only, char ***out, size_t *count)
{
	int fd = openat(dfd, ".", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		int err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	char **v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (qids_only && !qid_valid(de->d_name))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			v = xreallocarray(v, cap, sizeof(*v));
		}
		v[n++] = xstrdup(de->d_name);
		errno = 0;
	}
	int err = errno;
	closedir(d);
	if (err != 0) {
		for (size_t i = 0; i < n; i++)
			free(v[i]);
		free(v);
		errno = err;
		return -1;
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_str);
	*out = v;
	*count = n;
	return 0;
}

static int list_fd(int dfd, int qids_only, void (*cb)(void *arg, const char *name), void *arg)
{
	char **v;
	size_t n;
	if (read_names(dfd, qids_only, &v, &n) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		cb(arg, v[i]);
		free(v[i]);
	}
	free(v);
	return n > (size_t)0x7fffffff ? 0x7fffffff : (int)n;
}

int spool_list(struct spool *s, enum spool_dir d, void (*cb)(void *arg, const char *qid), void *arg)
{
	int dfd = spool_dirfd(s, d);
	if (dfd < 0) {
		errno = EBADF;
		return -1;
	}
	return list_fd(dfd, 1, cb, arg);
}

int spool_list_dirfd(int dfd, void (*cb)(void *arg, const char *qid), void *arg)
{
	return list_fd(dfd, 1, cb, arg);
}

struct node_filter {
	void (*cb)(void *arg, const char *node);
	void *arg;
};

static void node_cb(void *arg, const char *name)
{
	struct node_filter *f = arg;
	if (node_valid(name))
		f->cb(f->arg, name);
}

int spool_list_nodes(struct spool *s, void (*cb)(void *arg, const char *node), void *arg)
{
	int fd = openat(s->dfd_active, "..", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct node_filter f = { cb, arg };
	int r = list_fd(fd, 0, node_cb, &f);
	int err = errno;
	close(fd);
	errno = err;
	return r;
}

int spool_open_node_dir(struct spool *s, const char *node)
{
	if (!node_valid(node)) {
		errno = EINVAL;
		return -1;
	}
	int fd = openat(s->dfd_active, "..", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = openat(fd, node, O_DIRECTORY | O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	int err = errno;
	close(fd);
	errno = err;
	return r;
}

int spool_recover_incoming(struct spool *s, long stale_seconds)
{
	char **v;
	size_t n;
	int rc = 0;
	time_t now = time(NULL);

	if (read_names(s->dfd_incoming, 1, &v, &n) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const char *qid = v[i];
		int mine = strcmp(qid_node(qid), s->node) == 0;
		if (!mine) {
			struct stat st;
			if (stale_seconds < 0)
				goto next;
			if (fstatat(s->dfd_incoming, qid, &st, AT_SYMLINK_NOFOLLOW) < 0) {
				if (errno != ENOENT)
					rc = -1;
				goto next;
			}
			/* Another node may still be receiving it: only when stale. */
			if (now - st.st_mtime < stale_seconds)
				goto next;
		}
		if (unlinkat(s->dfd_incoming, qid, 0) < 0) {
			if (errno != ENOENT) {
				log_warn("spool: unlink incoming/%s", qid);
				rc = -1;
			}
		} else {
			log_info("event=recover-incoming qid=%s reason=%s", qid, mine ? "never-acknowledged" : "stale");
		}
	next:
		free(v[i]);
	}
	free(v);
	return rc;
}
