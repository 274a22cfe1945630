/*
 * nexthop: a recipient that must go to one given host, carried in the queue
 * file's dest field (E7 peer servers: the peer that has the user; see
 * docs/peers.md).
 *
 *   dest  = ADDRESS "@" ROUTE
 *   ROUTE = "[" IP "]:" PORT          IP is IPv4 or IPv6 text, PORT 1-65535
 *   alice@itch.test@[192.0.2.2]:25    alice@itch.test via 192.0.2.2 port 25
 *
 * Why in dest: the queue manager groups remote recipients by what follows the
 * last '@' of dest (queue.c domain_of), so the recipients forced to one host
 * share a transaction, a destination-concurrency slot and a deliver process,
 * and the deliver process receives the ROUTE as the request's "domain", which
 * route_plan() recognises.  The queue file format, the queue manager and the
 * IPC messages stay as they are; present (what RCPT TO says) is the address.
 *
 * A route is never mistaken for a domain: a domain has no ':' except inside an
 * address literal, and an address literal ends with ']', never with ":PORT".
 * So no envelope recipient can name a route.
 */
#ifndef TSUBAME_NEXTHOP_H
#define TSUBAME_NEXTHOP_H

#include <stddef.h>

/* dest for addr forced to ip:port.  0, or -1 when ip is not an address or out is too small. */
int nexthop_format(char *out, size_t outsz, const char *addr, const char *ip, unsigned port);

/*
 * 0 when route (the text after the last '@' of a dest) is a forced route: ip
 * gets the canonical address text (ipsz >= 46), *family AF_INET or AF_INET6,
 * *port the port.  -1 for anything else (an ordinary domain).  family may be NULL.
 */
int nexthop_parse(const char *route, char *ip, size_t ipsz, int *family, unsigned *port);

#endif
