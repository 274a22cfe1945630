/*
 * peers: parse and look up the peer servers table (peers.h has the format).
 *
 * Trust: the file is the administrator's but parsed as untrusted input
 * (bounded lines through tablefile, every field checked, "file:line: message"
 * errors, a bad line left out); lookups compare names and addresses from the
 * network, nothing more.
 */
#include "local/peers.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "local/domains.h"
#include "local/relaydomains.h"
#include "local/tablefile.h"
#include "util/xalloc.h"

void peers_free(struct peer_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].domain);
	free(t->v);
	t->v = NULL;
	t->n = 0;
}

const struct peer_entry *peers_find(const struct peer_table *t, const char *domain)
{
	char name[256];
	size_t n;
	if (!t || !domain || (n = strlen(domain)) == 0 || n >= sizeof(name))
		return NULL;
	memcpy(name, domain, n + 1);
	if (n > 1 && name[n - 1] == '.')
		name[n - 1] = '\0';
	for (size_t i = 0; i < t->n; i++)
		if (strcasecmp(t->v[i].domain, name) == 0)
			return &t->v[i];
	return NULL;
}

int peers_is_peer(const struct peer_entry *e, const char *ip)
{
	unsigned char bin[16];
	char text[46];
	const char *p = ip;
	if (!e || !ip)
		return 0;
	if (strncasecmp(p, "::ffff:", 7) == 0 && strchr(p + 7, '.'))
		p += 7;   /* an IPv4 client on a dual-stack listener */
	int af = strchr(p, ':') ? AF_INET6 : AF_INET;
	if (inet_pton(af, p, bin) != 1 || !inet_ntop(af, bin, text, sizeof(text)))
		return 0;
	for (size_t i = 0; i < e->npeers; i++)
		if (strcmp(e->peers[i].ip, text) == 0)
			return 1;
	return 0;
}

static void parse_line(struct table_lines *tl, char *line, void *ctx)
{
	struct peer_table *t = ctx;
	char *f[PEERS_MAX + 3];
	struct peer_entry e;
	int have_probe = 0;
	const char *why;

	for (char *p = line; *p; p++)
		if (*p == '#' && (p == line || p[-1] == ' ' || p[-1] == '\t')) {
			*p = '\0';
			break;
		}
	size_t nf = tablefile_split_ws(line, f, PEERS_MAX + 3);
	if (nf == 0)
		return;
	if (nf > PEERS_MAX + 2) {
		tablefile_err(tl, "more than %d peers", PEERS_MAX);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.line = tl->line;
	char *name = f[0];
	if (!domain_name_canon(name)) {
		tablefile_err(tl, "invalid domain \"%s\"", f[0]);
		return;
	}
	for (size_t i = 1; i < nf; i++) {
		if (strncmp(f[i], "probe=", 6) == 0) {
			const char *v = f[i] + 6;
			if (have_probe) {
				tablefile_err(tl, "probe= given twice");
				return;
			}
			have_probe = 1;
			if (strcmp(v, "vrfy") == 0)
				e.probe = PEER_PROBE_VRFY;
			else if (strcmp(v, "rcpt") == 0)
				e.probe = PEER_PROBE_RCPT;
			else {
				tablefile_err(tl, "probe=%s: want vrfy or rcpt", v);
				return;
			}
			continue;
		}
		if (strchr(f[i], '=')) {
			tablefile_err(tl, "unknown key in \"%s\" (want probe=)", f[i]);
			return;
		}
		if (e.npeers >= PEERS_MAX) {
			tablefile_err(tl, "more than %d peers", PEERS_MAX);
			return;
		}
		struct peer_addr *a = &e.peers[e.npeers];
		if (relay_parse_hostport(f[i], a->ip, sizeof(a->ip), &a->port, 1, &why) < 0) {
			tablefile_err(tl, "%s \"%s\" (a peer is an IP address, as in the manual's Peer List)", why, f[i]);
			return;
		}
		if (strncmp(a->ip, "::ffff:", 7) == 0 && strchr(a->ip + 7, '.'))
			memmove(a->ip, a->ip + 7, strlen(a->ip + 7) + 1);   /* IPv4-mapped: the IPv4 peer it is */
		for (size_t k = 0; k < e.npeers; k++)
			if (strcmp(e.peers[k].ip, a->ip) == 0 && e.peers[k].port == a->port) {
				tablefile_err(tl, "peer \"%s\" listed twice", f[i]);
				return;
			}
		e.npeers++;
	}
	if (e.npeers == 0) {
		tablefile_err(tl, "no peer for \"%s\"", name);
		return;
	}
	const struct peer_entry *dup = peers_find(t, name);
	if (dup) {
		tablefile_err(tl, "duplicate domain \"%s\" (first on line %d)", name, dup->line);
		return;
	}
	e.domain = xstrdup(name);
	t->v = tablefile_grow(t->v, t->n, sizeof(*t->v));
	t->v[t->n++] = e;
}

int peers_parse(struct peer_table *t, FILE *fp, const char *name, struct buf *errors)
{
	return tablefile_parse(fp, name, errors, parse_line, t);
}

int peers_load(struct peer_table *t, const char *path, struct buf *errors)
{
	memset(t, 0, sizeof(*t));
	return tablefile_load(path, errors, parse_line, t);
}
