/*
 * fuzz_peers: the peer servers table parser on arbitrary bytes, then lookups
 * and the loop guard's address comparison for every loaded peer.
 * Invariants: every loaded domain is found; every peer is recognised by its
 * own address; ports are in range.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "local/peers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const ips[] = { "1.1.1.1", "::ffff:1.1.1.1", "2001:db8::1", "x", "", "::" };
	struct peer_table t = { 0 };
	struct buf errors;
	FILE *fp;

	buf_init(&errors, 64 * 1024);
	if (size > 0 && (fp = fmemopen((void *)data, size, "r")) != NULL) {
		peers_parse(&t, fp, "peers", &errors);
		fclose(fp);
	}
	(void)peers_find(&t, "itch.test");
	for (size_t i = 0; i < t.n; i++) {
		const struct peer_entry *e = &t.v[i];
		if (peers_find(&t, e->domain) != e || e->npeers == 0 || e->npeers > PEERS_MAX)
			__builtin_trap();
		for (size_t k = 0; k < e->npeers; k++) {
			if (!peers_is_peer(e, e->peers[k].ip) || e->peers[k].port < 1 || e->peers[k].port > 65535)
				__builtin_trap();
		}
		for (size_t k = 0; k < sizeof(ips) / sizeof(ips[0]); k++)
			(void)peers_is_peer(e, ips[k]);
	}
	peers_free(&t);
	buf_free(&errors);
	return 0;
}
