/*
 * xalloc: allocation that never returns NULL.
 * Running out of memory in a mail daemon is not recoverable in a useful way; these
 * functions log and exit instead, so callers never carry NULL checks for allocations.
 */
#ifndef TSUBAME_XALLOC_H
#define TSUBAME_XALLOC_H

#include <stddef.h>
#include <stdlib.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
void *xreallocarray(void *p, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
