/*
 * fuzz_relaydomains: the relay domains table parser and the recipients list
 * parser on arbitrary bytes, then lookups of every loaded name (exact and as a
 * subdomain) and of a few fixed names, and list lookups, so the matchers see
 * fuzzed entries too.  Invariants: every loaded entry is found by its own
 * name, verify=probe always has a host, a list always has a file.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "local/relaydomains.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "a.test", "x.a.test", "A.TEST.", ".", "", "corp.test", "*.test" };
	struct relay_domain_table t = { 0 };
	struct relay_domain list = { 0 };
	struct buf errors;
	FILE *fp;

	buf_init(&errors, 64 * 1024);
	/* fmemopen refuses a zero-length buffer in some libcs; an empty input is an empty table. */
	if (size > 0 && (fp = fmemopen((void *)data, size, "r")) != NULL) {
		relaydomains_parse(&t, fp, "relaydomains", &errors);
		fclose(fp);
	}
	list.name = "corp.test";
	if (size > 0 && (fp = fmemopen((void *)data, size, "r")) != NULL) {
		relaydomains_parse_list(&list, fp, "users", &errors);
		fclose(fp);
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		(void)relaydomains_find(&t, names[i]);
		(void)relaydomain_has_rcpt(&list, "ann", names[i]);
	}
	for (size_t i = 0; i < list.nrcpts; i++) {
		char local[700];
		snprintf(local, sizeof(local), "%s", list.rcpts[i]);
		char *at = strrchr(local, '@');
		if (!at)
			__builtin_trap();
		*at = '\0';
		if (!relaydomain_has_rcpt(&list, local, at + 1))
			__builtin_trap();   /* every loaded address is found */
	}
	for (size_t i = 0; i < t.n; i++) {
		const struct relay_domain *e = &t.v[i];
		char probe[300];
		snprintf(probe, sizeof(probe), "x.%s", e->name);
		if (relaydomains_find(&t, e->subdomains ? probe : e->name) == NULL)
			__builtin_trap();
		if (e->verify == RELAY_VERIFY_PROBE && e->host == NULL)
			__builtin_trap();
		if ((e->verify == RELAY_VERIFY_LIST) != (e->recipients_file != NULL))
			__builtin_trap();
		if (e->port < 1 || e->port > 65535)
			__builtin_trap();
	}
	for (size_t i = 0; i < list.nrcpts; i++)
		free(list.rcpts[i]);
	free(list.rcpts);
	relaydomains_free(&t);
	buf_free(&errors);
	return 0;
}
