/*
 * fuzz_gateway: the gateway table parser (seed 003 "SMTPゲートウェイ") on
 * arbitrary bytes, then lookups and route plans for a fixed set of domains,
 * checking what no table may break: every entry is well formed (a pattern, a
 * host, a port 1-65535, a line number in order), a lookup returns an entry of
 * the table that really matches and no earlier entry matches, and a gateway
 * route is one fixed-host step.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "deliver/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const domains[] = { "example.jp", "A.XXXX01.CO.JP", "01host.xxxx.co.jp", "example.jp.", "x",
		"", ".", "[192.0.2.1]", "a-b_c.example", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.jp" };
	struct gateway_table t;
	struct buf errors;

	buf_init(&errors, 64 * 1024);
	gateway_parse(&t, (const char *)data, size, "gw", &errors);
	for (size_t i = 0; i < t.n; i++) {
		const struct gateway_entry *e = &t.v[i];
		if (e->pattern == NULL || e->pattern[0] == '\0' || e->host == NULL || e->host[0] == '\0' || e->port < 1 ||
		    e->port > 65535 || e->line < 1 || (i > 0 && e->line <= t.v[i - 1].line))
			__builtin_trap();
	}
	for (size_t d = 0; d < sizeof(domains) / sizeof(domains[0]); d++) {
		const struct gateway_entry *e = gateway_lookup(&t, domains[d]);
		if (e != NULL) {
			if (e < t.v || e >= t.v + t.n)
				__builtin_trap();
			for (const struct gateway_entry *p = t.v; p < e; p++)
				if (gateway_lookup(&(struct gateway_table){ .v = (struct gateway_entry *)p, .n = 1 }, domains[d]))
					__builtin_trap(); /* first match in file order */
		}
		for (int k = 0; k < 8; k++) {
			struct route_config c;
			struct route_plan p;
			route_config_defaults(&c);
			c.mode = (enum route_mode)(k % 3);
			c.smarthost.host = "smart.example";
			c.gateways = &t;
			c.forward_all = k >= 6;
			int rc = route_plan(&c, domains[d], k & 1, &p);
			if (rc == 0 && e != NULL && !p.local &&
			    (p.n != 1 || p.step[0].source != ROUTE_SRC_GATEWAY || p.step[0].gateway != e))
				__builtin_trap();
			if (rc == 0 && (p.n > ROUTE_STEPS_MAX || (p.local && p.n != 0) || (!p.local && p.n == 0)))
				__builtin_trap();
			if (rc != 0 && (domains[d][0] != '\0' || p.error == NULL))
				__builtin_trap();
		}
	}
	gateway_free(&t);
	buf_free(&errors);
	return 0;
}
