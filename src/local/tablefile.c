/*
 * tablefile: bounded line reading, loading and atomic rewrite for the table files.
 * It trusts nothing in the files it reads: lines are bounded, NULs are reported.
 */
#include "local/tablefile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fsutil.h"
#include "util/xalloc.h"

enum table_line tablefile_getline(FILE *fp, char *line, size_t sz, int *lineno)
{
	size_t n = 0;
	int c, toolong = 0, nul = 0;

	while ((c = getc(fp)) != EOF) {
		if (c == '\n')
			break;
		if (c == '\0')
			nul = 1;
		if (n + 1 < sz)
			line[n++] = (char)c;
		else
			toolong = 1;
	}
	if (c == EOF && n == 0 && !toolong && !nul)
		return TABLE_LINE_EOF;
	(*lineno)++;
	/* The manual's files come from Windows tools: a CR before LF is not data. */
	if (n > 0 && line[n - 1] == '\r')
		n--;
	line[n] = '\0';
	if (toolong)
		return TABLE_LINE_TOO_LONG;
	return nul ? TABLE_LINE_NUL : TABLE_LINE_OK;
}

void tablefile_err(struct table_lines *tl, const char *fmt, ...)
{
	va_list ap;

	buf_appendf(tl->errors, "%s:%d: ", tl->file, tl->line);
	va_start(ap, fmt);
	buf_vappendf(tl->errors, fmt, ap);
	va_end(ap);
	buf_putc(tl->errors, '\n');
	tl->nerr++;
}

int tablefile_parse(FILE *fp, const char *name, struct buf *errors, table_line_fn line_fn, void *ctx)
{
	char line[TABLE_LINE_MAX];
	struct table_lines tl = { .file = name, .errors = errors };
	enum table_line r;

	while ((r = tablefile_getline(fp, line, sizeof(line), &tl.line)) != TABLE_LINE_EOF) {
		if (r == TABLE_LINE_TOO_LONG)
			tablefile_err(&tl, "%s", "line too long");
		else if (r == TABLE_LINE_NUL)
			tablefile_err(&tl, "%s", "NUL byte in line");
		else
			line_fn(&tl, line, ctx);
	}
	explicit_bzero(line, sizeof(line));
	if (ferror(fp)) {
		buf_appendf(errors, "%s: read error\n", name);
		tl.nerr++;
	}
	return tl.nerr;
}

int tablefile_load(const char *path, struct buf *errors, table_line_fn line_fn, void *ctx)
{
	FILE *fp = fopen(path, "re");

	if (fp == NULL) {
		if (errno == ENOENT)
			return 0;
		buf_appendf(errors, "%s: %s\n", path, strerror(errno));
		return 1;
	}
	int n = tablefile_parse(fp, path, errors, line_fn, ctx);
	fclose(fp);
	return n;
}

void *tablefile_grow(void *v, size_t n, size_t size)
{
	if (n == 0)
		return xreallocarray(v, 8, size);
	if (n < 8 || (n & (n - 1)) != 0)
		return v;
	return xreallocarray(v, n * 2, size);
}

size_t tablefile_split_ws(char *s, char **fields, size_t max)
{
	size_t n = 0;
	char *p = s;

	while (*p && n < max) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		fields[n++] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		if (*p)
			*p++ = '\0';
	}
	return n;
}

int tablefile_save(const char *path, int secret, table_writer_fn write_fn, const void *ctx)
{
	char *pathcopy = xstrdup(path);
	char *dir = xstrdup(dirname(pathcopy));
	char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	FILE *fp = NULL;
	int fd = -1, saved = 0, r = -1;

	struct stat old;
	int have_old = stat(path, &old) == 0;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, secret ? 0600 : 0640);
	if (fd < 0)
		goto out;
	/*
	 * Keep the owner and mode the administrator gave the old file, so a daemon user
	 * that could read it still can.  Changing the owner needs root: failure is fine.
	 */
	if (have_old) {
		if (fchown(fd, old.st_uid, old.st_gid) < 0 && fchown(fd, (uid_t)-1, old.st_gid) < 0) {
			/* not ours to give away: keep our own */
		}
		if (fchmod(fd, old.st_mode & 07777) < 0)
			goto out;
	}
	fp = fdopen(fd, "w");
	if (fp == NULL)
		goto out;
	fd = -1;
	if (write_fn(fp, ctx) < 0 || fflush(fp) != 0 || ferror(fp))
		goto out;
	/* Durability before visibility: the data is on disk before the name points at it. */
	if (fsync(fileno(fp)) < 0)
		goto out;
	if (fclose(fp) != 0) {
		fp = NULL;
		goto out;
	}
	fp = NULL;
	if (rename(tmp, path) < 0)
		goto out;
	if (fsync_dir(dir) < 0)
		goto out_renamed;
	r = 0;
	goto out_renamed;
out:
	saved = errno;
	if (fp)
		fclose(fp);
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	errno = saved;
out_renamed:
	saved = errno;
	free(tmp);
	free(dir);
	free(pathcopy);
	errno = saved;
	return r;
}
