/*
 * fuzz_smarthost_auth: the per-account smart-host credentials parser on
 * arbitrary bytes; every loaded entry must be found again and be sane.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "deliver/smarthost_auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smarthost_auth_table t = { 0 };
	struct buf errors;
	FILE *fp;

	buf_init(&errors, 64 * 1024);
	if (size > 0 && (fp = fmemopen((void *)data, size, "r")) != NULL) {
		smarthost_auth_parse(&t, fp, "smarthost_auth", &errors);
		fclose(fp);
	}
	for (size_t i = 0; i < t.n; i++) {
		const struct smarthost_cred *c = &t.v[i];
		if (!strchr(c->account, '@') || !c->user[0] || !c->password[0] || smarthost_auth_find(&t, c->account) != c)
			__builtin_trap();
		for (const char *p = c->password; *p; p++)
			if ((unsigned char)*p < 0x20)
				__builtin_trap();
	}
	(void)smarthost_auth_find(&t, "demo@example.test");
	smarthost_auth_free(&t);
	buf_free(&errors);
	return 0;
}
