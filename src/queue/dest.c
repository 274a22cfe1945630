/*
 * dest: per-destination in-flight counts and waiting lists (see dest.h).
 * Lookups are a linear scan: the table only holds destinations that are busy,
 * at most delivery_concurrency of them with deliveries in flight.
 */
#include "queue/dest.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/xalloc.h"

void dest_table_init(struct dest_table *t)
{
	TAILQ_INIT(&t->all);
	t->n = 0;
}

static void dest_drop(struct dest_table *t, struct dest *d)
{
	TAILQ_REMOVE(&t->all, d, entry);
	t->n--;
	free(d->domain);
	free(d);
}

/* Gone once it has nothing in flight and nobody waiting. */
static void dest_maybe_drop(struct dest_table *t, struct dest *d)
{
	if (d->inflight == 0 && TAILQ_EMPTY(&d->waiters))
		dest_drop(t, d);
}

void dest_table_free(struct dest_table *t)
{
	struct dest *d;
	while ((d = TAILQ_FIRST(&t->all))) {
		struct dest_wait *w;
		while ((w = TAILQ_FIRST(&d->waiters))) {
			TAILQ_REMOVE(&d->waiters, w, by_dest);
			LIST_REMOVE(w, by_msg);
			free(w);
		}
		dest_drop(t, d);
	}
}

struct dest *dest_find(struct dest_table *t, const char *domain)
{
	struct dest *d;
	TAILQ_FOREACH(d, &t->all, entry)
		if (!strcasecmp(d->domain, domain))
			return d;
	return NULL;
}

void dest_acquire(struct dest_table *t, const char *domain)
{
	struct dest *d = dest_find(t, domain);
	if (!d) {
		d = xcalloc(1, sizeof(*d));
		d->domain = xstrdup(domain);
		for (char *p = d->domain; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		TAILQ_INIT(&d->waiters);
		TAILQ_INSERT_TAIL(&t->all, d, entry);
		t->n++;
	}
	d->inflight++;
}

void dest_release(struct dest_table *t, const char *domain)
{
	struct dest *d = dest_find(t, domain);
	if (!d || d->inflight == 0)
		return;
	d->inflight--;
	dest_maybe_drop(t, d);
}

void dest_park(struct dest_table *t, struct dest *d, struct qmsg *m, struct dest_wait_list *parked, int front)
{
	struct dest_wait *w;
	LIST_FOREACH(w, parked, by_msg)
		if (w->d == d)
			return;
	w = xcalloc(1, sizeof(*w));
	w->d = d;
	w->m = m;
	if (front)
		TAILQ_INSERT_HEAD(&d->waiters, w, by_dest);
	else
		TAILQ_INSERT_TAIL(&d->waiters, w, by_dest);
	LIST_INSERT_HEAD(parked, w, by_msg);
}

int dest_is_parked(const struct dest_wait_list *parked, const char *domain)
{
	const struct dest_wait *w;
	LIST_FOREACH(w, parked, by_msg)
		if (!strcasecmp(w->d->domain, domain))
			return 1;
	return 0;
}

struct qmsg *dest_pop(struct dest_table *t, struct dest *d)
{
	struct dest_wait *w = TAILQ_FIRST(&d->waiters);
	if (!w)
		return NULL;
	struct qmsg *m = w->m;
	TAILQ_REMOVE(&d->waiters, w, by_dest);
	LIST_REMOVE(w, by_msg);
	free(w);
	dest_maybe_drop(t, d);
	return m;
}

void dest_unpark_all(struct dest_table *t, struct dest_wait_list *parked)
{
	struct dest_wait *w;
	while ((w = LIST_FIRST(parked))) {
		struct dest *d = w->d;
		TAILQ_REMOVE(&d->waiters, w, by_dest);
		LIST_REMOVE(w, by_msg);
		free(w);
		dest_maybe_drop(t, d);
	}
}
