/*
 * fuzz_hosts: the delivery hosts table parser on arbitrary bytes, then a lookup
 * of every loaded name (exact and as a subdomain) and of a few fixed names, so
 * the matcher sees fuzzed entries too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "deliver/hosts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "a.test", "x.a.test", "A.TEST.", ".", "", "corp.test", "*.test" };
	struct hosts_table t = { 0 };
	struct buf errors;
	FILE *fp;

	buf_init(&errors, 64 * 1024);
	/* fmemopen refuses a zero-length buffer in some libcs; an empty input is an empty table. */
	if (size > 0 && (fp = fmemopen((void *)data, size, "r")) != NULL) {
		hosts_parse(&t, fp, "hosts", &errors);
		fclose(fp);
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		(void)hosts_lookup(&t, names[i]);
	for (size_t i = 0; i < t.n; i++) {
		const struct hosts_entry *e = &t.v[i];
		char probe[300];
		if (e->naddrs == 0 || e->naddrs > HOSTS_MAX_ADDRS)
			__builtin_trap();
		snprintf(probe, sizeof(probe), "x.%s", e->name);
		const struct hosts_entry *hit = hosts_lookup(&t, e->subdomains ? probe : e->name);
		if (hit == NULL)
			__builtin_trap();   /* every loaded entry applies to something */
		for (size_t k = 0; k < e->naddrs; k++)
			if (memchr(e->addrs[k].ip, '\0', sizeof(e->addrs[k].ip)) == NULL)
				__builtin_trap();
	}
	hosts_free(&t);
	buf_free(&errors);
	return 0;
}
