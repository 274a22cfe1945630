/*
 * vcache: bounded cache of probe answers (vcache.h).  Keys come from the
 * network (addresses) but are only hashed and compared.  The answer's `how`
 * points to a static string (probe.c's state names), so copying it is safe.
 */
#include "verify/vcache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/xalloc.h"

struct ventry {
	struct ventry *hnext;               /* hash chain */
	struct ventry *lprev, *lnext;       /* LRU list, most recent first */
	char *key;
	struct probe_answer a;
	long expires_ms;
};

struct vcache {
	struct ventry **bucket;
	size_t nbuckets;
	size_t n, max;
	struct ventry *head, *tail;
};

static uint64_t hash(const char *s)
{
	uint64_t h = 14695981039346656037ULL;   /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static void lru_unlink(struct vcache *c, struct ventry *e)
{
	if (e->lprev)
		e->lprev->lnext = e->lnext;
	else
		c->head = e->lnext;
	if (e->lnext)
		e->lnext->lprev = e->lprev;
	else
		c->tail = e->lprev;
	e->lprev = e->lnext = NULL;
}

static void lru_front(struct vcache *c, struct ventry *e)
{
	e->lnext = c->head;
	e->lprev = NULL;
	if (c->head)
		c->head->lprev = e;
	c->head = e;
	if (!c->tail)
		c->tail = e;
}

static struct ventry **slot(struct vcache *c, const char *key)
{
	struct ventry **pp = &c->bucket[hash(key) % c->nbuckets];
	while (*pp && strcmp((*pp)->key, key) != 0)
		pp = &(*pp)->hnext;
	return pp;
}

static void drop(struct vcache *c, struct ventry *e)
{
	struct ventry **pp = slot(c, e->key);
	*pp = e->hnext;
	lru_unlink(c, e);
	free(e->key);
	free(e);
	c->n--;
}

/* Buckets for max entries: the next power of two at or above max (at least 16), capped. */
static size_t buckets_for(size_t max)
{
	size_t b = 16;
	while (b < max && b < ((size_t)1 << 22))
		b <<= 1;
	return b;
}

struct vcache *vcache_new(size_t max)
{
	struct vcache *c = xcalloc(1, sizeof(*c));
	c->max = max;
	c->nbuckets = buckets_for(max);
	c->bucket = xcalloc(c->nbuckets, sizeof(*c->bucket));
	return c;
}

void vcache_flush(struct vcache *c)
{
	while (c->head)
		drop(c, c->head);
}

void vcache_free(struct vcache *c)
{
	if (!c)
		return;
	vcache_flush(c);
	free(c->bucket);
	free(c);
}

void vcache_set_max(struct vcache *c, size_t max)
{
	c->max = max;
	while (c->n > max)
		drop(c, c->tail);
	if (buckets_for(max) > c->nbuckets) {
		/* Rehash into more buckets. */
		size_t nb = buckets_for(max);
		struct ventry **b = xcalloc(nb, sizeof(*b));
		for (struct ventry *e = c->head; e; e = e->lnext) {
			size_t i = hash(e->key) % nb;
			e->hnext = b[i];
			b[i] = e;
		}
		free(c->bucket);
		c->bucket = b;
		c->nbuckets = nb;
	}
}

void vcache_put(struct vcache *c, const char *key, const struct probe_answer *a, long ttl_ms, long now_ms)
{
	struct ventry **pp = slot(c, key);
	if (*pp)
		drop(c, *pp);
	if (ttl_ms <= 0 || c->max == 0)
		return;
	while (c->n >= c->max)
		drop(c, c->tail);
	struct ventry *e = xcalloc(1, sizeof(*e));
	e->key = xstrdup(key);
	e->a = *a;
	e->expires_ms = now_ms + ttl_ms;
	pp = slot(c, key);
	*pp = e;
	lru_front(c, e);
	c->n++;
}

int vcache_get(struct vcache *c, const char *key, long now_ms, struct probe_answer *out)
{
	struct ventry *e = *slot(c, key);
	if (!e)
		return 0;
	if (now_ms >= e->expires_ms) {
		drop(c, e);
		return 0;
	}
	lru_unlink(c, e);
	lru_front(c, e);
	*out = e->a;
	return 1;
}

size_t vcache_size(const struct vcache *c)
{
	return c->n;
}
