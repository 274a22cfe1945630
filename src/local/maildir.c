/*
 * maildir: Maildir delivery (L3), the mailbox path template and usage for quotas.
 * It trusts the queue file's content only as bytes to copy, and the path template
 * only after expansion has been checked (absolute, no "..", no NUL).  A message is
 * delivered only once it is fsynced and its name is in new/ with new/ fsynced.
 */
#include "local/maildir.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "util/fsutil.h"

#define CHUNK (64 * 1024)
#define MAILDIR_PATH_MAX 4096
#define UNIQUE_MAX 256

/* ---- path template ---- */

static int put(char *out, size_t outsz, size_t *n, const char *s, size_t len)
{
	if (len >= outsz - *n)
		return -1;
	memcpy(out + *n, s, len);
	*n += len;
	out[*n] = '\0';
	return 0;
}

int mailbox_path_expand(const char *tmpl, const struct account *a, char *out, size_t outsz)
{
	static const char *const tokens[] = { "%USERNAME%", "%DOMAIN%", "%HOME%" };
	size_t n = 0;

	if (outsz == 0)
		return -1;
	out[0] = '\0';
	for (const char *p = tmpl; *p;) {
		size_t k;
		for (k = 0; k < 3; k++)
			if (strncmp(p, tokens[k], strlen(tokens[k])) == 0)
				break;
		if (k == 3) {
			if (put(out, outsz, &n, p, 1) < 0)
				return -1;
			p++;
			continue;
		}
		const char *v = k == 0 ? a->name : k == 1 ? a->domain : a->home;
		if (v == NULL)
			v = "";
		/* An empty value would give every such account the same mailbox. */
		if (v[0] == '\0')
			return -1;
		/* A name or domain is one path component: a '/' in it would escape the layout. */
		if (k < 2 && (strchr(v, '/') != NULL || strcmp(v, ".") == 0 || strcmp(v, "..") == 0))
			return -1;
		if (put(out, outsz, &n, v, strlen(v)) < 0)
			return -1;
		p += strlen(tokens[k]);
	}
	/* Refuse anything that could climb out of the intended tree. */
	if (out[0] != '/' || strstr(out, "/../") != NULL || (n >= 3 && strcmp(out + n - 3, "/..") == 0))
		return -1;
	return 0;
}

/* ---- usage ---- */

static int usage_dir(const char *maildir, const char *sub, long long *bytes, long long *messages)
{
	char path[MAILDIR_PATH_MAX];
	struct dirent *e;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", maildir, sub) >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	DIR *dir = opendir(path);
	if (dir == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((errno = 0, e = readdir(dir)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		/* Maildir++: ",S=<size>" in the name saves a stat per message. */
		const char *s = strstr(e->d_name, ",S=");
		char *end;
		long long size = -1;
		if (s) {
			size = strtoll(s + 3, &end, 10);
			if (end == s + 3 || (*end != '\0' && *end != ',' && *end != ':') || size < 0)
				size = -1;
		}
		if (size < 0) {
			struct stat st;
			if (fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
				if (errno == ENOENT) /* moved by a reader meanwhile */
					continue;
				goto fail;
			}
			if (!S_ISREG(st.st_mode))
				continue;
			size = (long long)st.st_size;
		}
		*bytes += size;
		(*messages)++;
	}
	if (errno != 0)
		goto fail;
	closedir(dir);
	return 0;
fail:;
	int saved = errno;
	closedir(dir);
	errno = saved;
	return -1;
}

int maildir_usage(const char *maildir, long long *bytes, long long *messages)
{
	*bytes = 0;
	*messages = 0;
	if (usage_dir(maildir, "new", bytes, messages) < 0 || usage_dir(maildir, "cur", bytes, messages) < 0)
		return -1;
	return 0;
}

/*
 * Maildir++ maildirsize: the first line is the quota ("<bytes>S,<count>C"),
 * every further line "<bytes> <count>" a change; the usage is their sum.  We
 * append one line per delivery, and recount the folders (and rewrite the file
 * atomically) when it is missing, unreadable, larger than MAILDIRSIZE_MAX, not
 * about our quota, or untouched for MAILDIRSIZE_AGE: a mail reader that
 * deletes without updating it makes the sum drift up, never for longer than
 * that.  So a RCPT-time check reads one small file instead of every name in
 * new/ and cur/.
 */
#define MAILDIRSIZE_MAX 5120
#define MAILDIRSIZE_AGE (15 * 60)

static void quota_line(char *out, size_t n, long limit_bytes, long limit_msgs)
{
	if (limit_bytes > 0 && limit_msgs > 0)
		snprintf(out, n, "%ldS,%ldC", limit_bytes, limit_msgs);
	else if (limit_msgs > 0)
		snprintf(out, n, "%ldC", limit_msgs);
	else
		snprintf(out, n, "%ldS", limit_bytes > 0 ? limit_bytes : 0);
}

/* The sums of a fresh, well-formed maildirsize for this quota; -1 when it must be recounted. */
static int maildirsize_read(const char *file, const char *quota, long long *bytes, long long *messages)
{
	int fd = open(file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	char buf[MAILDIRSIZE_MAX + 1];
	ssize_t n = -1;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= MAILDIRSIZE_MAX &&
	    time(NULL) - st.st_mtime < MAILDIRSIZE_AGE)
		n = read(fd, buf, MAILDIRSIZE_MAX);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *nl = strchr(buf, '\n');
	if (!nl || (size_t)(nl - buf) != strlen(quota) || memcmp(buf, quota, strlen(quota)) != 0)
		return -1;
	long long b = 0, c = 0;
	for (char *p = nl + 1; *p;) {
		char *end;
		long long lb = strtoll(p, &end, 10);
		if (end == p || *end != ' ')
			return -1;
		p = end + 1;
		long long lc = strtoll(p, &end, 10);
		if (end == p || *end != '\n')
			return -1; /* a torn last line: recount */
		if ((lb > 0 && b > LLONG_MAX - lb) || (lc > 0 && c > LLONG_MAX - lc))
			return -1;
		b += lb;
		c += lc;
		p = end + 1;
	}
	*bytes = b < 0 ? 0 : b;
	*messages = c < 0 ? 0 : c;
	return 0;
}

int maildir_quota_usage(const char *maildir, long limit_bytes, long limit_msgs, long long *bytes, long long *messages)
{
	char file[MAILDIR_PATH_MAX], tmp[MAILDIR_PATH_MAX], quota[64];
	quota_line(quota, sizeof(quota), limit_bytes, limit_msgs);
	if ((size_t)snprintf(file, sizeof(file), "%s/maildirsize", maildir) >= sizeof(file) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/tmp/maildirsize.%ld", maildir, (long)getpid()) >= sizeof(tmp))
		return maildir_usage(maildir, bytes, messages);
	if (maildirsize_read(file, quota, bytes, messages) == 0)
		return 0;
	if (maildir_usage(maildir, bytes, messages) < 0)
		return -1;
	/* Rewrite it: best effort (a missing Maildir, a read-only one: the count stands anyway). */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return 0;
	char text[160];
	int len = snprintf(text, sizeof(text), "%s\n%lld %lld\n", quota, *bytes, *messages);
	int ok = write(fd, text, (size_t)len) == len;
	close(fd);
	if (!ok || rename(tmp, file) < 0)
		unlink(tmp);
	return 0;
}

/* One delivery more in maildirsize, if the mailbox keeps one (never created here: the quota check does). */
static void maildirsize_add(const char *maildir, long long size)
{
	char file[MAILDIR_PATH_MAX], line[64];
	if ((size_t)snprintf(file, sizeof(file), "%s/maildirsize", maildir) >= sizeof(file))
		return;
	int fd = open(file, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	int len = snprintf(line, sizeof(line), "%lld 1\n", size);
	if (write(fd, line, (size_t)len) != len) {
		/* a short append leaves a torn line: the next reader recounts */
	}
	close(fd);
}

/* ---- delivery ---- */

struct failure {
	char *why;
	size_t whysz;
	int *temporary;
};

static int fail(const struct failure *f, int temporary, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(const struct failure *f, int temporary, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(f->why, f->whysz, fmt, ap);
	va_end(ap);
	*f->temporary = temporary;
	return -1;
}

/*
 * Everything the system reports is temporary: a full disk, an I/O error, a quota,
 * wrong permissions or a missing mount are all fixed by an administrator, and a
 * retry must not lose the message meanwhile.
 */
static int sysfail(const struct failure *f, const char *op, const char *path)
{
	return fail(f, 1, "%s %s: %s", op, path, strerror(errno));
}

/* mkdir -p with mode 0700; a new directory's parent is fsynced so the name survives a crash. */
static int mkdirs(const char *path, const struct failure *f)
{
	char p[MAILDIR_PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(p))
		return fail(f, 0, "mailbox path too long");
	memcpy(p, path, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		if (p[i - 1] == '/')
			continue;
		char c = p[i];
		p[i] = '\0';
		if (mkdir(p, 0700) == 0) {
			char *slash = strrchr(p, '/');
			char save = slash[1];
			slash[1] = '\0';
			int r = fsync_dir(p);
			slash[1] = save;
			if (r < 0)
				return sysfail(f, "fsync parent of", p);
		} else if (errno != EEXIST) {
			return sysfail(f, "mkdir", p);
		} else {
			struct stat st;
			if (stat(p, &st) < 0)
				return sysfail(f, "stat", p);
			if (!S_ISDIR(st.st_mode)) {
				errno = ENOTDIR;
				return sysfail(f, "mkdir", p);
			}
		}
		p[i] = c;
	}
	return 0;
}

static int make_maildir(const char *maildir, const struct failure *f)
{
	static const char *const subs[] = { "tmp", "new", "cur" };
	char dir[MAILDIR_PATH_MAX];

	if (mkdirs(maildir, f) < 0)
		return -1;
	for (size_t i = 0; i < 3; i++) {
		snprintf(dir, sizeof(dir), "%s/%s", maildir, subs[i]);
		if (mkdirs(dir, f) < 0)
			return -1;
	}
	return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Copy [off, off+len) of the queue file to fd with CRLF -> LF.  A CR that ends a
 * chunk is held back until the next byte shows whether it starts a CRLF.
 * *written is the number of bytes stored.
 */
static int copy_content(const struct maildir_delivery *d, int fd, const char *tmp, long long *written,
    const struct failure *f)
{
	char *in = malloc(CHUNK), *out = malloc(CHUNK + 1);
	off_t pos = d->data_off, end = d->data_off + d->data_len;
	int held_cr = 0, r = -1;

	if (in == NULL || out == NULL) {
		fail(f, 1, "out of memory");
		goto done;
	}
	while (pos < end) {
		size_t want = (size_t)(end - pos < CHUNK ? end - pos : CHUNK);
		ssize_t got = pread(d->data_fd, in, want, pos);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			sysfail(f, "read", "queue file");
			goto done;
		}
		if (got == 0) {
			fail(f, 1, "queue file shorter than its recorded content");
			goto done;
		}
		size_t o = 0;
		for (ssize_t i = 0; i < got; i++) {
			char c = in[i];
			if (held_cr) {
				held_cr = 0;
				if (c != '\n')
					out[o++] = '\r'; /* a bare CR is kept */
			}
			if (c == '\r')
				held_cr = 1;
			else
				out[o++] = c;
		}
		if (write_all(fd, out, o) < 0) {
			sysfail(f, "write", tmp);
			goto done;
		}
		*written += (long long)o;
		pos += got;
	}
	if (held_cr) {
		if (write_all(fd, "\r", 1) < 0) {
			sysfail(f, "write", tmp);
			goto done;
		}
		(*written)++;
	}
	r = 0;
done:
	free(in);
	free(out);
	return r;
}

/*
 * "<sec>.M<usec>P<pid>Q<n>.<host>": the counter makes names unique within this
 * process, pid across processes, host across machines sharing the store.  The
 * counter is process-wide state on purpose: uniqueness is a property of the process.
 */
static void unique_name(const char *hostname, char *out, size_t outsz)
{
	static atomic_ulong counter;
	struct timeval tv;
	char host[128];
	size_t n = 0;

	gettimeofday(&tv, NULL);
	/* Maildir: '/' and ':' cannot appear in a name; write them as octal escapes. */
	for (const char *p = hostname && *hostname ? hostname : "localhost"; *p && n + 5 < sizeof(host); p++) {
		if (*p == '/')
			n += (size_t)snprintf(host + n, sizeof(host) - n, "\\057");
		else if (*p == ':')
			n += (size_t)snprintf(host + n, sizeof(host) - n, "\\072");
		else
			host[n++] = *p;
	}
	host[n] = '\0';
	snprintf(out, outsz, "%lld.M%ldP%ldQ%lu.%s", (long long)tv.tv_sec, (long)tv.tv_usec, (long)getpid(),
	    (unsigned long)atomic_fetch_add(&counter, 1) + 1, host);
}

/* Move tmp to dst, never replacing an existing message: rename without overwrite, else link + unlink. */
static int publish(const char *tmp, const char *dst)
{
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	if (link(tmp, dst) < 0)
		return -1;
	unlink(tmp);
	return 0;
}

static int has_crlf(const char *s)
{
	return strchr(s, '\r') != NULL || strchr(s, '\n') != NULL;
}

int maildir_deliver(const struct maildir_delivery *d, char *why, size_t whysz, int *temporary)
{
	const struct failure f = { why, whysz, temporary };
	char dir[MAILDIR_PATH_MAX], tmp[MAILDIR_PATH_MAX + UNIQUE_MAX], dst[MAILDIR_PATH_MAX + UNIQUE_MAX + 32];
	char unique[UNIQUE_MAX];
	int fd = -1;
	long long written = 0;

	why[0] = '\0';
	*temporary = 0;
	if (d->maildir == NULL || d->maildir[0] != '/')
		return fail(&f, 0, "mailbox path is not absolute: %s", d->maildir ? d->maildir : "(none)");
	if (strlen(d->maildir) + 8 >= MAILDIR_PATH_MAX)
		return fail(&f, 0, "mailbox path too long");
	if (has_crlf(d->return_path) || has_crlf(d->delivered_to))
		return fail(&f, 0, "line break in an envelope address");
	if (d->data_off < 0 || d->data_len < 0)
		return fail(&f, 0, "bad content range");

	/* tmp/: a name nobody else uses; O_EXCL makes a clash an error we retry past. */
	int created = 0;
	for (int attempt = 0;; attempt++) {
		unique_name(d->hostname, unique, sizeof(unique));
		snprintf(tmp, sizeof(tmp), "%s/tmp/%s", d->maildir, unique);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd >= 0)
			break;
		/* The first delivery to a mailbox creates it; later ones skip the mkdir calls. */
		if (errno == ENOENT && !created) {
			if (make_maildir(d->maildir, &f) < 0)
				return -1;
			created = 1;
			continue;
		}
		if (errno != EEXIST || attempt == 9)
			return sysfail(&f, "create", tmp);
	}

	char head[2 * 1024 + 64];
	int hn = snprintf(head, sizeof(head), "Return-Path: <%s>\nDelivered-To: %s\n", d->return_path,
	    d->delivered_to);
	if (hn < 0 || (size_t)hn >= sizeof(head)) {
		fail(&f, 0, "envelope address too long");
		goto failed;
	}
	if (write_all(fd, head, (size_t)hn) < 0) {
		sysfail(&f, "write", tmp);
		goto failed;
	}
	written = hn;
	if (copy_content(d, fd, tmp, &written, &f) < 0)
		goto failed;
	/* Invariant 2: the bytes are on disk before the name appears in new/. */
	if (fsync(fd) < 0) {
		sysfail(&f, "fsync", tmp);
		goto failed;
	}
	if (close(fd) < 0) {
		fd = -1;
		sysfail(&f, "close", tmp);
		goto failed;
	}
	fd = -1;

	snprintf(dst, sizeof(dst), "%s/new/%s,S=%lld", d->maildir, unique, written);
	int r = publish(tmp, dst);
	if (r < 0 && errno == ENOENT) {
		/* A Maildir with tmp/ but no new/: complete it and try once more. */
		if (make_maildir(d->maildir, &f) < 0)
			goto failed;
		r = publish(tmp, dst);
	}
	if (r < 0) {
		sysfail(&f, "rename to", dst);
		goto failed;
	}
	maildirsize_add(d->maildir, written);
	if (d->defer_dir_sync)
		return 0;
	snprintf(dir, sizeof(dir), "%s/new", d->maildir);
	if (fsync_dir(dir) < 0) {
		/* The message is in new/ but maybe not durably: a retry may duplicate, never lose. */
		int saved = errno;
		unlink(dst);
		fsync_dir(dir);
		errno = saved;
		return sysfail(&f, "fsync", dir);
	}
	return 0;
failed:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return -1;
}
