/*
 * fuzz_relay: the relay rules parser (the manual's effect.dat) on arbitrary bytes,
 * then relay_decide for a fixed set of clients, senders and classes, checking the
 * invariants no rules file may break: a local recipient without an account is
 * never accepted, "false" never accepts, a refusal always has a reason, and the
 * deciding rule is one of the parsed rules.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "policy/relay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const ips[] = { "192.168.0.10", "10.1.2.3", "0.0.0.0", "::ffff:192.168.1.5", "2001:db8::25",
		"fe80::1%eth0", "not-an-ip", "" };
	static const char *const senders[] = { "", "abc@abc.co.jp", "x@ABC.CO.JP.", "user", "a@[192.0.2.1]",
		"a@localhost", "a@12345", "\"q@x\"@abc.co.jp" };
	struct relay_rules r;
	struct buf errors;

	buf_init(&errors, 64 * 1024);
	relay_parse(&r, (const char *)data, size, "relay", &errors);
	for (size_t i = 0; i < r.n; i++)
		if (r.v[i].text == NULL || r.v[i].line < 1 || (r.v[i].action == RELAY_ONLY && i + 1 != r.n))
			__builtin_trap(); /* "only" must end the list */
	for (size_t ip = 0; ip < sizeof(ips) / sizeof(ips[0]); ip++) {
		for (size_t s = 0; s < sizeof(senders) / sizeof(senders[0]); s++) {
			const struct relay_rule *m = relay_match(&r, ips[ip], senders[s], senders[s][0] == '\0');
			if (m && (m < r.v || m >= r.v + r.n))
				__builtin_trap();
			for (int k = 0; k < 18; k++) {
				struct relay_query q = {
					.client_ip = ips[ip],
					.sender = senders[s],
					.sender_null = senders[s][0] == '\0',
					.sclass = (enum sender_class)(k % 3),
					.rclass = (enum rcpt_class)(k / 3 % 3),
					.authenticated = k >= 9,
				};
				struct relay_decision d;
				relay_decide(&r, &q, &d);
				if (d.table == NULL || (!d.allow && d.reason == NULL))
					__builtin_trap();
				if (d.allow && (q.rclass == RCPT_CLASS_LOCAL_NO_ACCOUNT || strcmp(d.table, "III") == 0))
					__builtin_trap();
				if (d.rule && (d.rule < r.v || d.rule >= r.v + r.n))
					__builtin_trap();
				if (d.auth_waived && (d.rule == NULL || d.rule->action != RELAY_NORELAY2))
					__builtin_trap();
			}
		}
	}
	relay_free(&r);
	buf_free(&errors);
	return 0;
}
