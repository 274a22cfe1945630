/*
 * peers: the peer servers table (E7; seed 004 "對等服務器": one domain's users
 * spread over several servers).  A RCPT for an unknown user of a local domain
 * that has peers is looked up on the peers; the first that knows the user gets
 * the mail (docs/peers.md).
 *
 * File format (docs/tables.md), one local domain per line, '#' starts a comment:
 *   domain  address[:port]  [address[:port] ...]  [probe=vrfy|rcpt]
 *   itch.example  192.0.2.1 192.0.2.2 192.0.2.3
 *   lab.example   10.0.0.7:2525 [2001:db8::7]:2525  probe=rcpt
 * Peers are IP addresses, as in the manual's Peer List: a session from one of
 * them never starts a lookup (loop guard), and that needs addresses to
 * compare.  Addresses of this host are skipped, so every server of a group
 * can share one file.  probe: vrfy (default) asks VRFY and falls back to a
 * RCPT probe when VRFY is not answered (252, 502...); rcpt goes straight to
 * MAIL FROM:<> / RCPT TO.  Domain names are compared ignoring case.
 */
#ifndef TSUBAME_PEERS_H
#define TSUBAME_PEERS_H

#include <stddef.h>
#include <stdio.h>

#include "util/buf.h"

#define PEERS_MAX 16

enum peer_probe { PEER_PROBE_VRFY = 0, PEER_PROBE_RCPT };

struct peer_addr {
	char ip[46];            /* canonical text */
	unsigned port;          /* 25 unless written */
};

struct peer_entry {
	char *domain;           /* lower case */
	struct peer_addr peers[PEERS_MAX];
	size_t npeers;
	enum peer_probe probe;
	int line;
};

struct peer_table {
	struct peer_entry *v;
	size_t n;
};

/* A missing file is an empty table.  Errors "file:line: message\n"; returns their count. */
int peers_load(struct peer_table *t, const char *path, struct buf *errors);
/* The same from an open stream; name is used in the messages (tests, fuzzing). */
int peers_parse(struct peer_table *t, FILE *fp, const char *name, struct buf *errors);
void peers_free(struct peer_table *t);
/* The line for domain (a trailing '.' ignored), or NULL.  t may be NULL. */
const struct peer_entry *peers_find(const struct peer_table *t, const char *domain);
/* 1 when ip (any textual form) is one of e's peers, whatever the port. */
int peers_is_peer(const struct peer_entry *e, const char *ip);

#endif
