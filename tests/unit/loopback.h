/*
 * loopback: helpers shared by the unit tests that run a real server on
 * 127.0.0.1 (DNS with dnslib) and drive the code under test in an event loop:
 * a free port for UDP and TCP, and a bounded "run the loop until" wait.
 * Header-only (static functions): each test is one translation unit.
 */
#ifndef TSUBAME_TEST_LOOPBACK_H
#define TSUBAME_TEST_LOOPBACK_H

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static inline long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* A loopback socket bound to want_port (0: any); the port through *port; -1 when taken. */
static inline int bound_socket(int type, int want_port, int *port)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, type, 0);

	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)want_port);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		close(fd);
		return -1;
	}
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	*port = ntohs(sin.sin_port);
	return fd;
}

/* A port free for both UDP and TCP right now (the server binds it a moment later); -1 when none. */
static inline int free_port(void)
{
	for (int tries = 0; tries < 50; tries++) {
		int port, p2;
		int u = bound_socket(SOCK_DGRAM, 0, &port);
		int t = bound_socket(SOCK_STREAM, port, &p2);
		close(u);
		if (t >= 0) {
			close(t);
			return port;
		}
	}
	return -1;
}

static inline void loopback_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	*(int *)arg = 1;
}

/* Run the loop until *calls >= want (calls NULL: until max_ms) or max_ms passed; the elapsed ms. */
static inline long run_until(struct event_base *base, const int *calls, int want, int max_ms)
{
	int expired = 0;
	struct timeval tv = { max_ms / 1000, (max_ms % 1000) * 1000 };
	struct event *t = evtimer_new(base, loopback_deadline, &expired);
	long start = now_ms();

	evtimer_add(t, &tv);
	while ((calls == NULL || *calls < want) && !expired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
	return now_ms() - start;
}

#endif
