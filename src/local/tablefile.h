/*
 * tablefile: what the table files (domains, accounts, aliases, secrets) share:
 * a bounded line reader, the one loader that reports every bad line as
 * "file:line: message", and the atomic rewrite used by tsubamectl.
 *
 * A rewrite never leaves a half-written table behind: the new content goes to a
 * temporary file in the same directory, is fsynced, renamed over the old name,
 * and the directory is fsynced so the rename itself survives a crash.
 */
#ifndef TSUBAME_TABLEFILE_H
#define TSUBAME_TABLEFILE_H

#include <stddef.h>
#include <stdio.h>

#include "util/buf.h"

/* Longest table line we accept, newline included; longer lines are errors. */
#define TABLE_LINE_MAX 4096

enum table_line {
	TABLE_LINE_OK = 0,
	TABLE_LINE_EOF,
	TABLE_LINE_TOO_LONG, /* the rest of the line was skipped; line holds nothing useful */
	TABLE_LINE_NUL       /* the line contained a NUL byte */
};

/*
 * Read one line into line[sz] without its "\n" or "\r\n"; *lineno is incremented
 * for every physical line read.
 */
enum table_line tablefile_getline(FILE *fp, char *line, size_t sz, int *lineno);

/* The line being parsed, and where its errors go. */
struct table_lines {
	const char *file;
	int line;
	struct buf *errors;
	int nerr;
};

/* Append "file:line: message\n" to tl->errors and count it. */
void tablefile_err(struct table_lines *tl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse one good line (NUL-terminated, no newline; may be changed in place). */
typedef void (*table_line_fn)(struct table_lines *tl, char *line, void *ctx);

/*
 * Read fp to the end, giving every line to line_fn; a line too long or with a NUL
 * byte is an error "name:line: ...", a read error "name: read error".  The line
 * buffer is wiped before returning (tables hold passwords and secrets).
 * Returns the number of errors.
 */
int tablefile_parse(FILE *fp, const char *name, struct buf *errors, table_line_fn line_fn, void *ctx);

/*
 * tablefile_parse on the file at path.  A missing file is an empty table (0);
 * a file that cannot be opened is one error "path: reason".
 */
int tablefile_load(const char *path, struct buf *errors, table_line_fn line_fn, void *ctx);

/* Writes the whole content to fp; returns 0, or -1 on an error (errno set). */
typedef int (*table_writer_fn)(FILE *fp, const void *ctx);

/*
 * Atomic rewrite of path.  A new file gets mode 0640 (0600 when secret); an existing
 * file's mode and (when permitted) owner are kept.  0, or -1 with errno.
 */
int tablefile_save(const char *path, int secret, table_writer_fn write_fn, const void *ctx);

/* Split s in place at runs of spaces and TABs; returns the field count, at most max (ask for one more to detect extra fields). */
size_t tablefile_split_ws(char *s, char **fields, size_t max);

/*
 * Make room for element n of the array v (n elements in use): the capacity grows
 * geometrically and is implied by n (the next power of two, at least 8), so the
 * table structs need no capacity field.  A table must only grow through this.
 */
void *tablefile_grow(void *v, size_t n, size_t size);

#endif
