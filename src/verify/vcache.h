/*
 * vcache: the recipient verification cache: probe answers by key, each with
 * its own lifetime, at most `max` entries (the least recently used goes first
 * when full).  A hash table with chaining and an LRU list: lookups and
 * insertions are O(1).  Time is the caller's (milliseconds, any monotonic
 * clock), so tests control it.
 */
#ifndef TSUBAME_VCACHE_H
#define TSUBAME_VCACHE_H

#include <stddef.h>

#include "verify/probe.h"

struct vcache;

struct vcache *vcache_new(size_t max);
void vcache_free(struct vcache *c);
/* Remember a under key until now_ms + ttl_ms (ttl_ms <= 0 or max 0: nothing is kept; an old entry goes). */
void vcache_put(struct vcache *c, const char *key, const struct probe_answer *a, long ttl_ms, long now_ms);
/* 1 and *out when key has a live entry; an expired one is dropped. */
int vcache_get(struct vcache *c, const char *key, long now_ms, struct probe_answer *out);
void vcache_flush(struct vcache *c);
/* A new bound (a reload); the oldest entries go when it shrank. */
void vcache_set_max(struct vcache *c, size_t max);
size_t vcache_size(const struct vcache *c);

#endif
