/*
 * ctl_queue: `tsubamectl queue list|show|delete` (O2); flush, retry, hold and
 * release go to the running queue manager (ctl_queue_control.c).
 *
 * Owns: the administrator's view of the spool.  Trusts: the configuration
 * (work_dir); nothing in the spool.  Queue files are parsed with the same
 * strict parser as the queue manager, names from the command line must be
 * qids (qid_valid) before they become paths, and every value printed is
 * escaped like in the queue file (bytes <= 0x20, '%', DEL as %XX) so a hostile
 * address cannot put control sequences on the administrator's terminal.  Only
 * message content (`show --body`, the header section) is printed raw, as
 * postcat does.
 *
 * It never creates folders (the daemon's user owns them) and only reads,
 * except `delete`, which unlinks.  Deleting a message that a running queue
 * manager is delivering does not stop that delivery attempt.
 *
 * SECURITY: runs as the administrator; opens files only below
 * work_dir/queue, with O_NOFOLLOW.
 */
#include "ctl/ctl.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "queue/qfile.h"
#include "queue/qid.h"
#include "queue/spool.h"
#include "util/xalloc.h"

struct folder {
	char name[32]; /* "active/mx1", "deferred", "corrupt", "hold" */
	int dfd;
};

struct folders {
	struct folder *v;
	size_t n;
};

static void usage(void)
{
	fprintf(stderr, "usage: tsubamectl queue list\n"
			"       tsubamectl queue show QID [--body]\n"
			"       tsubamectl queue delete QID...\n"
			"       tsubamectl queue flush [DOMAIN]      deliver what waits (for DOMAIN) now\n"
			"       tsubamectl queue retry QID           deliver one message now\n"
			"       tsubamectl queue hold QID|ALL        stop delivering it, until released\n"
			"       tsubamectl queue release QID|ALL     end a hold, deliver now\n");
}

static void add_folder(struct folders *fs, const char *name, int dfd)
{
	fs->v = xreallocarray(fs->v, fs->n + 1, sizeof(*fs->v));
	snprintf(fs->v[fs->n].name, sizeof(fs->v[fs->n].name), "%s", name);
	fs->v[fs->n].dfd = dfd;
	fs->n++;
}

static int node_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 15)
		return 0;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
			return 0;
	return 1;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Every folder that holds committed messages: active/<node> for each node,
 * deferred, corrupt, hold.  A queue that does not exist yet is an empty queue
 * (returns 0 with no folders); other errors -1.
 */
static int open_folders(const struct ctl *c, struct folders *fs)
{
	char *root = xasprintf("%s/queue", c->cfg.work_dir);
	int rfd = open(root, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	fs->v = NULL;
	fs->n = 0;
	if (rfd < 0) {
		int err = errno;
		if (err == ENOENT) {
			free(root);
			return 0;
		}
		fprintf(stderr, "tsubamectl: %s: %s\n", root, strerror(err));
		free(root);
		return -1;
	}
	int afd = openat(rfd, "active", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (afd >= 0) {
		DIR *d = fdopendir(afd);
		if (d == NULL) {
			close(afd);
		} else {
			char **names = NULL;
			size_t n = 0;
			struct dirent *de;
			while ((de = readdir(d)) != NULL) {
				if (!node_name_ok(de->d_name))
					continue;
				names = xreallocarray(names, n + 1, sizeof(*names));
				names[n++] = xstrdup(de->d_name);
			}
			if (n > 1)
				qsort(names, n, sizeof(*names), cmp_str);
			for (size_t i = 0; i < n; i++) {
				int nfd = openat(dirfd(d), names[i], O_DIRECTORY | O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
				if (nfd >= 0) {
					char label[32];
					snprintf(label, sizeof(label), "active/%s", names[i]);
					add_folder(fs, label, nfd);
				}
				free(names[i]);
			}
			free(names);
			closedir(d);
		}
	}
	static const char *plain[] = { "deferred", "corrupt", "hold" };
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		int fd = openat(rfd, plain[i], O_DIRECTORY | O_RDONLY | O_CLOEXEC);
		if (fd >= 0)
			add_folder(fs, plain[i], fd);
	}
	close(rfd);
	free(root);
	return 0;
}

static void close_folders(struct folders *fs)
{
	for (size_t i = 0; i < fs->n; i++)
		close(fs->v[i].dfd);
	free(fs->v);
	fs->v = NULL;
	fs->n = 0;
}

/* The value as in the queue file: bytes <= 0x20, '%' and DEL as %XX. */
static void put_esc(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		if (*p <= 0x20 || *p == '%' || *p == 0x7f)
			fprintf(f, "%%%02X", *p);
		else
			putc(*p, f);
	}
}

static void put_time(FILE *f, long long t)
{
	struct tm tm;
	time_t tt = (time_t)t;
	char b[64];
	if ((long long)tt == t && gmtime_r(&tt, &tm) != NULL && tm.tm_year < 8000 &&
	    strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
		fputs(b, f);
	else
		fprintf(f, "%lld", t);
}

static const char *state_text(char st)
{
	switch (st) {
	case RCPT_LOCAL:
		return "waiting for local delivery";
	case RCPT_REMOTE:
		return "waiting for remote delivery";
	case RCPT_DONE:
		return "delivered";
	case RCPT_BOUNCED:
		return "bounced";
	case RCPT_EXPIRED:
		return "expired";
	}
	return "?";
}

static const char *body_text(int body)
{
	return body == 0 ? "7bit" : body == 1 ? "8bitmime" : "binarymime";
}

/* ---- list --------------------------------------------------------------- */

struct entry {
	char qid[QID_MAX];
	size_t folder;
};

struct entries {
	struct entry *v;
	size_t n;
	size_t folder;
};

static void entry_cb(void *arg, const char *qid)
{
	struct entries *es = arg;
	es->v = xreallocarray(es->v, es->n + 1, sizeof(*es->v));
	snprintf(es->v[es->n].qid, QID_MAX, "%s", qid);
	es->v[es->n].folder = es->folder;
	es->n++;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	int r = strcmp(x->qid, y->qid);
	return r ? r : (x->folder > y->folder) - (x->folder < y->folder);
}

static int queue_list(const struct ctl *c)
{
	struct folders fs;
	struct entries es = { NULL, 0, 0 };
	size_t shown = 0;
	if (open_folders(c, &fs) < 0)
		return 1;
	for (size_t i = 0; i < fs.n; i++) {
		es.folder = i;
		if (spool_list_dirfd(fs.v[i].dfd, entry_cb, &es) < 0)
			fprintf(stderr, "tsubamectl: queue/%s: %s\n", fs.v[i].name, strerror(errno));
	}
	/* qids are time ordered: one list, oldest first, whatever the folder. */
	if (es.n > 1)
		qsort(es.v, es.n, sizeof(*es.v), cmp_entry);
	for (size_t i = 0; i < es.n; i++) {
		const struct folder *fo = &fs.v[es.v[i].folder];
		int fd = openat(fo->dfd, es.v[i].qid, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue; /* delivered or moved since the listing */
		struct stat st;
		struct qenvelope e;
		char why[200];
		if (fstat(fd, &st) < 0) {
			close(fd);
			continue;
		}
		shown++;
		if (qfile_parse(fd, &e, why, sizeof(why)) < 0) {
			/* why is our own text (qfile.c), never file content. */
			printf("%s %s %lld - (unreadable: %s)\n", es.v[i].qid, fo->name, (long long)st.st_size, why);
			close(fd);
			continue;
		}
		printf("%s %s %lld ", es.v[i].qid, fo->name, (long long)e.data_len);
		put_time(stdout, e.arrival);
		printf(" <");
		put_esc(stdout, e.sender);
		putchar('>');
		for (size_t r = 0; r < e.nrcpt; r++) {
			putchar(' ');
			put_esc(stdout, e.rcpt[r].dest);
			printf("(%c)", e.rcpt[r].state);
		}
		putchar('\n');
		qenvelope_free(&e);
		close(fd);
	}
	printf("%zu message%s\n", shown, shown == 1 ? "" : "s");
	free(es.v);
	close_folders(&fs);
	return 0;
}

/* ---- show / delete ------------------------------------------------------ */

/* Index of the folder holding qid, or -1. */
static int find(const struct folders *fs, const char *qid)
{
	for (size_t i = 0; i < fs->n; i++)
		if (faccessat(fs->v[i].dfd, qid, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
			return (int)i;
	return -1;
}

/* Content from data_off; with whole = 0 only up to and including the first empty line. */
static int print_content(int fd, const struct qenvelope *e, int whole)
{
	char b[65536];
	off_t off = e->data_off, end = e->data_off + e->data_len;
	unsigned last = 0; /* the last bytes seen, to find CRLF CRLF (or LF LF) */
	while (off < end) {
		size_t want = sizeof(b);
		if ((off_t)want > end - off)
			want = (size_t)(end - off);
		ssize_t n = pread(fd, b, want, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		size_t out = (size_t)n;
		if (!whole) {
			for (size_t i = 0; i < (size_t)n; i++) {
				last = (last << 8) | (unsigned char)b[i];
				if (last == 0x0d0a0d0a || (last & 0xffff) == 0x0a0a) {
					out = i + 1;
					fwrite(b, 1, out, stdout);
					return 0;
				}
			}
		}
		fwrite(b, 1, out, stdout);
		off += n;
	}
	return 0;
}

static int queue_show(const struct ctl *c, const char *qid, int body)
{
	struct folders fs;
	int rc = 1;
	if (!qid_valid(qid)) {
		fprintf(stderr, "tsubamectl: queue show: '%s' is not a queue id\n", qid);
		return 1;
	}
	if (open_folders(c, &fs) < 0)
		return 1;
	int i = find(&fs, qid);
	if (i < 0) {
		fprintf(stderr, "tsubamectl: queue show: %s: not found\n", qid);
		close_folders(&fs);
		return 1;
	}
	int fd = openat(fs.v[i].dfd, qid, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	struct qenvelope e;
	char why[200];
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "tsubamectl: queue show: %s: %s\n", qid, strerror(errno));
		goto done;
	}
	printf("qid: %s\nfolder: %s\nfile-size: %lld\n", qid, fs.v[i].name, (long long)st.st_size);
	if (qfile_parse(fd, &e, why, sizeof(why)) < 0) {
		printf("unreadable: %s\n", why);
		goto done;
	}
	printf("arrival: %lld (", e.arrival);
	put_time(stdout, e.arrival);
	printf(")\nsender: <");
	put_esc(stdout, e.sender);
	printf(">\nclient-addr: ");
	put_esc(stdout, e.client_addr);
	printf("\nclient-name: ");
	put_esc(stdout, e.client_name);
	printf("\nhelo: ");
	put_esc(stdout, e.helo);
	printf("\nproto: ");
	put_esc(stdout, e.proto);
	printf("\nbody: %s\nsmtputf8: %s\ncontent-size: %lld\n", body_text(e.body), e.smtputf8 ? "yes" : "no",
	       (long long)e.data_len);
	if (e.auth && e.auth[0]) {
		printf("auth: ");
		put_esc(stdout, e.auth);
		printf("\n");
	}
	if (e.ret)
		printf("dsn-ret: %s\n", e.ret == DSN_RET_FULL ? "FULL" : "HDRS");
	if (e.envid && e.envid[0]) {
		printf("dsn-envid: ");
		put_esc(stdout, e.envid);
		printf("\n");
	}
	printf("delay-warning: %s\n%srecipients: %zu\n", e.warned ? "done" : "not yet",
	       e.notice_admin ? "notice: to the administrator (dropped if it fails)\n" : "", e.nrcpt);
	for (size_t r = 0; r < e.nrcpt; r++) {
		const struct qrcpt *q = &e.rcpt[r];
		printf("  rcpt %zu: state=%c (%s) attempts=%u next-try=", r + 1, q->state, state_text(q->state),
		       q->attempts);
		if (q->next_try == 0)
			printf("now");
		else
			put_time(stdout, q->next_try);
		printf("\n    orig=<");
		put_esc(stdout, q->orig);
		printf("> dest=<");
		put_esc(stdout, q->dest);
		printf("> present=<");
		put_esc(stdout, q->present);
		printf(">\n");
		if (q->notify) {
			printf("    notify=");
			if (q->notify == DSN_NOTIFY_NEVER)
				printf("NEVER");
			else
				printf("%s%s%s%s%s", q->notify & DSN_NOTIFY_SUCCESS ? "SUCCESS" : "",
				       (q->notify & DSN_NOTIFY_SUCCESS) && (q->notify & 6) ? "," : "",
				       q->notify & DSN_NOTIFY_FAILURE ? "FAILURE" : "",
				       (q->notify & DSN_NOTIFY_FAILURE) && (q->notify & DSN_NOTIFY_DELAY) ? "," : "",
				       q->notify & DSN_NOTIFY_DELAY ? "DELAY" : "");
			printf("\n");
		}
		if (q->orcpt && q->orcpt[0]) {
			printf("    orcpt=");
			put_esc(stdout, q->orcpt);
			printf("\n");
		}
	}
	printf(body ? "--- message ---\n" : "--- message header ---\n");
	fflush(stdout);
	if (print_content(fd, &e, body) < 0) {
		fprintf(stderr, "tsubamectl: queue show: %s: read error\n", qid);
		qenvelope_free(&e);
		goto done;
	}
	qenvelope_free(&e);
	rc = 0;
done:
	if (fd >= 0)
		close(fd);
	close_folders(&fs);
	return rc;
}

static int queue_delete(const struct ctl *c, int argc, char **argv)
{
	struct folders fs;
	int rc = 0;
	if (open_folders(c, &fs) < 0)
		return 1;
	for (int a = 0; a < argc; a++) {
		const char *qid = argv[a];
		if (!qid_valid(qid)) {
			fprintf(stderr, "tsubamectl: queue delete: '%s' is not a queue id\n", qid);
			rc = 1;
			continue;
		}
		int i = find(&fs, qid);
		if (i < 0) {
			fprintf(stderr, "tsubamectl: queue delete: %s: not found\n", qid);
			rc = 1;
			continue;
		}
		if (unlinkat(fs.v[i].dfd, qid, 0) < 0) {
			fprintf(stderr, "tsubamectl: queue delete: %s: %s\n", qid, strerror(errno));
			rc = 1;
			continue;
		}
		fsync(fs.v[i].dfd);
		printf("deleted %s from %s\n", qid, fs.v[i].name);
	}
	close_folders(&fs);
	return rc;
}

int ctl_queue(struct ctl *c, int argc, char **argv)
{
	/* Accept argv with or without the family name in front. */
	if (argc > 0 && strcmp(argv[0], "queue") == 0) {
		argc--;
		argv++;
	}
	if (argc < 1) {
		usage();
		return 2;
	}
	const char *cmd = argv[0];
	if (strcmp(cmd, "list") == 0) {
		if (argc != 1) {
			usage();
			return 2;
		}
		return queue_list(c);
	}
	if (strcmp(cmd, "show") == 0) {
		const char *qid = NULL;
		int body = 0;
		for (int i = 1; i < argc; i++) {
			if (strcmp(argv[i], "--body") == 0 && !body)
				body = 1;
			else if (argv[i][0] != '-' && qid == NULL)
				qid = argv[i];
			else {
				usage();
				return 2;
			}
		}
		if (qid == NULL) {
			usage();
			return 2;
		}
		return queue_show(c, qid, body);
	}
	if (!strcmp(cmd, "flush") || !strcmp(cmd, "retry") || !strcmp(cmd, "hold") || !strcmp(cmd, "release"))
		return ctl_queue_control(c, argc, argv);
	if (strcmp(cmd, "delete") == 0) {
		if (argc < 2) {
			usage();
			return 2;
		}
		return queue_delete(c, argc - 1, argv + 1);
	}
	usage();
	return 2;
}
