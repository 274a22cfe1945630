/*
 * fuzz_holdtab: the hold table parser (E3) on arbitrary bytes, then lookups of
 * every loaded name (itself and a subdomain) and of fixed names, release
 * checks for a few clients, and every ETRN node form against every entry, so
 * the matchers see fuzzed entries too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "policy/holdtab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *const defaults[] = { "192.0.2.0/24", "ops@isp.test" };
	static const char *const names[] = { "dialup.test", "x.dialup.test", "A.TEST.", ".", "", "corp.test", "*.test" };
	static const char *const ips[] = { "127.0.0.1", "::1", "192.0.2.9", "10.1.2.3", "2001:db8::1", "x" };
	struct hold_table t;
	struct buf errors;

	buf_init(&errors, 64 * 1024);
	hold_parse(&t, (const char *)data, size, "hold", defaults, 2, &errors);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		(void)hold_lookup(&t, names[i]);
	for (size_t i = 0; i < t.n; i++) {
		const struct hold_entry *e = &t.v[i];
		char probe[300];
		if (!e->self && !e->below)
			__builtin_trap();
		if (strlen(e->name) == 0 || strlen(e->name) > HOLD_NAME_MAX)
			__builtin_trap();
		snprintf(probe, sizeof(probe), "x.%s", e->name);
		if (hold_lookup(&t, e->self ? e->name : probe) == NULL)
			__builtin_trap();   /* every loaded entry holds something */
		if (e->route_host && (e->route_port < 1 || e->route_port > 65535))
			__builtin_trap();
		for (size_t k = 0; k < sizeof(ips) / sizeof(ips[0]); k++) {
			(void)hold_may_release(&t, e, ips[k], NULL);
			(void)hold_may_release(&t, e, ips[k], "ops@isp.test");
		}
		/* the three ETRN forms for the entry's own name and queue */
		const char *forms[3] = { "", "@", "#" };
		for (int f = 0; f < 3; f++) {
			struct hold_node n;
			snprintf(probe, sizeof(probe), "%s%s", forms[f], f == 2 ? (e->queue ? e->queue : "q") : e->name);
			if (hold_node_parse(probe, &n) != 0)
				continue;
			(void)hold_node_concerns(&t, &n, e);
			(void)hold_node_selects(&n, e, e->name);
		}
	}
	hold_free(&t);
	buf_free(&errors);
	return 0;
}
