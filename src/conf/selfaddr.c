/*
 * selfaddr: collect this host's own addresses from the configuration and the
 * interfaces (selfaddr.h).  Trust: the configuration is validated; interface
 * addresses come from the kernel.
 */
#include "conf/selfaddr.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "util/xalloc.h"

/* Canonical text of ip (IPv4-mapped IPv6 as IPv4); 0 or -1. */
static int canon(const char *ip, char *out, size_t outsz)
{
	unsigned char bin[16];
	if (strncasecmp(ip, "::ffff:", 7) == 0 && strchr(ip + 7, '.'))
		ip += 7;
	int af = strchr(ip, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(af, ip, bin) != 1 || !inet_ntop(af, bin, out, (socklen_t)outsz))
		return -1;
	return 0;
}

static void add(struct selfaddr *s, const char *ip)
{
	char text[46];
	if (canon(ip, text, sizeof(text)) < 0 || selfaddr_has(s, text))
		return;
	s->v = xreallocarray(s->v, s->n + 1, sizeof(*s->v));
	s->v[s->n++] = xstrdup(text);
}

static void add_interfaces(struct selfaddr *s)
{
	struct ifaddrs *ifa, *i;
	if (getifaddrs(&ifa) < 0)
		return;
	for (i = ifa; i; i = i->ifa_next) {
		char text[46];
		if (!i->ifa_addr)
			continue;
		if (i->ifa_addr->sa_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, text, sizeof(text));
		else if (i->ifa_addr->sa_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, text, sizeof(text));
		else
			continue;
		add(s, text);
	}
	freeifaddrs(ifa);
}

void selfaddr_collect(const struct config *c, struct selfaddr *out)
{
	int wildcard = 0;
	memset(out, 0, sizeof(*out));
	for (int k = 0; k < 2; k++) {
		const struct listen_addr *v = k ? c->submission_listen : c->listen;
		size_t n = k ? c->nsubmission_listen : c->nlisten;
		for (size_t i = 0; i < n; i++) {
			if (strcmp(v[i].host, "*") == 0 || strcmp(v[i].host, "0.0.0.0") == 0 || strcmp(v[i].host, "::") == 0)
				wildcard = 1;
			else
				add(out, v[i].host);
		}
	}
	if (wildcard)
		add_interfaces(out);
	for (size_t i = 0; i < c->self_addresses.n; i++)
		add(out, c->self_addresses.v[i]);
}

void selfaddr_free(struct selfaddr *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

int selfaddr_has(const struct selfaddr *s, const char *ip)
{
	char text[46];
	if (!s || !ip || canon(ip, text, sizeof(text)) < 0)
		return 0;
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i], text) == 0)
			return 1;
	return 0;
}
