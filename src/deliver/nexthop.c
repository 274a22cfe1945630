/*
 * nexthop: forced routes in the dest field (see nexthop.h for the format and
 * why).  Trust: a route is only ever written by smtpd (a peer found by a
 * probe) and read back from a queue file the queue manager validated; it is
 * still parsed strictly (a canonical address, a port in range, nothing else).
 */
#include "deliver/nexthop.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* The canonical text of an IPv4 or IPv6 address; 0 or -1. */
static int canonical(const char *ip, char *out, size_t outsz, int *family)
{
	unsigned char bin[16];
	int af = strchr(ip, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(af, ip, bin) != 1 || inet_ntop(af, bin, out, (socklen_t)outsz) == NULL)
		return -1;
	if (family)
		*family = af;
	return 0;
}

int nexthop_format(char *out, size_t outsz, const char *addr, const char *ip, unsigned port)
{
	char text[46];
	if (port < 1 || port > 65535 || canonical(ip, text, sizeof(text), NULL) < 0)
		return -1;
	int n = snprintf(out, outsz, "%s@[%s]:%u", addr, text, port);
	return n < 0 || (size_t)n >= outsz ? -1 : 0;
}

int nexthop_parse(const char *route, char *ip, size_t ipsz, int *family, unsigned *port)
{
	char host[64], text[46];
	if (route[0] != '[')
		return -1;
	const char *close = strchr(route, ']');
	if (!close || close[1] != ':' || (size_t)(close - route - 1) >= sizeof(host))
		return -1;
	memcpy(host, route + 1, (size_t)(close - route - 1));
	host[close - route - 1] = '\0';
	const char *p = close + 2;
	if (*p < '1' || *p > '9' || strlen(p) > 5)
		return -1;
	char *end;
	long v = strtol(p, &end, 10);
	if (*end != '\0' || v < 1 || v > 65535)
		return -1;
	/* Only the canonical form: what nexthop_format writes, nothing looser. */
	if (canonical(host, text, sizeof(text), family) < 0 || strcmp(text, host) != 0 || strlen(text) >= ipsz)
		return -1;
	snprintf(ip, ipsz, "%s", text);
	*port = (unsigned)v;
	return 0;
}
