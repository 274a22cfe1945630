/*
 * qid: queue ids (see qid.h for the shape).
 *
 * Owns: the id generator.  Trusts: nothing; qid_valid() is what every spool
 * operation uses before a name from outside (tsubamectl, a directory listing)
 * becomes a path component.
 *
 * The time part is microseconds since the epoch in 12 Crockford base32 digits
 * (60 bits: good until far past the year 30000).  Crockford's alphabet is in
 * ASCII order, so sorting qids by name sorts them by time, across nodes too.
 * Within one process the time part strictly increases even when the clock
 * steps back or two ids are asked for in the same microsecond: the last value
 * is process-wide state on purpose (one generator per process).  The 4 random
 * digits (20 bits from getrandom) separate processes of one node; the node name
 * separates nodes; O_EXCL at creation catches whatever is left.
 */
#include "queue/qid.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "util/log.h"

static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

#define QID_TIME_DIGITS 12
#define QID_RAND_DIGITS 4
#define QID_HEAD (QID_TIME_DIGITS + QID_RAND_DIGITS)
#define QID_NODE_MAX 15

static unsigned long long last_us;

static int is_b32(char c)
{
	return c != '\0' && strchr(b32, c) != NULL;
}

static int is_alnum(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static unsigned random20(void)
{
	unsigned char r[4];
	size_t got = 0;
	while (got < sizeof(r)) {
		ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fatal("getrandom");
		}
		got += (size_t)n;
	}
	return ((unsigned)r[0] | (unsigned)r[1] << 8 | (unsigned)r[2] << 16) & 0xfffff;
}

void qid_new(char out[QID_MAX], const char *node)
{
	size_t nlen = strlen(node);
	if (nlen == 0 || nlen > QID_NODE_MAX)
		panic("qid_new: bad node name length %zu", nlen);
	for (size_t i = 0; i < nlen; i++)
		if (!is_alnum(node[i]))
			panic("qid_new: bad node name");

	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	unsigned long long us = (unsigned long long)ts.tv_sec * 1000000ULL +
				(unsigned long long)ts.tv_nsec / 1000ULL;
	/* Monotonic within the process, whatever the clock does. */
	if (us <= last_us)
		us = last_us + 1;
	last_us = us;

	for (int i = QID_TIME_DIGITS - 1; i >= 0; i--) {
		out[i] = b32[us & 31];
		us >>= 5;
	}
	unsigned r = random20();
	for (int i = QID_HEAD - 1; i >= QID_TIME_DIGITS; i--) {
		out[i] = b32[r & 31];
		r >>= 5;
	}
	out[QID_HEAD] = '.';
	memcpy(out + QID_HEAD + 1, node, nlen + 1);
}

int qid_valid(const char *s)
{
	if (s == NULL)
		return 0;
	for (int i = 0; i < QID_HEAD; i++)
		if (!is_b32(s[i]))
			return 0;
	if (s[QID_HEAD] != '.')
		return 0;
	const char *n = s + QID_HEAD + 1;
	size_t len = 0;
	for (; n[len]; len++)
		if (!is_alnum(n[len]) || len >= QID_NODE_MAX)
			return 0;
	return len > 0;
}

const char *qid_node(const char *s)
{
	return qid_valid(s) ? s + QID_HEAD + 1 : NULL;
}
