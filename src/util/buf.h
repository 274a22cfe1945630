/*
 * buf: the one growable byte buffer of the project, with a hard maximum.
 *
 * Every buffer is created with a maximum size that is really enforced: an append
 * that would pass it fails as a whole and leaves the buffer unchanged, so callers
 * turn "too big" into a protocol reply instead of an allocation spiral.
 * Lifetime trap: data may move on every append; never keep a pointer into a buf
 * across an append.  data is always NUL-terminated (not counted in len), so
 * buf_cstr() is free, but the content itself may contain NULs.
 */
#ifndef TSUBAME_BUF_H
#define TSUBAME_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;  /* NULL until the first append */
	size_t len;
	size_t cap;
	size_t max;  /* hard limit on len */
};

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
/* 0 on success, -1 if the result would exceed max (buffer unchanged). */
int buf_append(struct buf *b, const void *p, size_t n);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_appendf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vappendf(struct buf *b, const char *fmt, va_list ap);
/* Drop the first n bytes. */
void buf_consume(struct buf *b, size_t n);
const char *buf_cstr(const struct buf *b);
/* Hand the allocation to the caller (NUL-terminated); the buf is reset. */
char *buf_steal(struct buf *b);

#endif
