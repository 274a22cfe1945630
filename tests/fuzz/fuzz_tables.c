/*
 * fuzz_tables: the domains, accounts and aliases table parsers on arbitrary bytes.
 * Each input is parsed as all three table types (from memory, via fmemopen); the
 * first byte also picks an address to resolve through any aliases that loaded,
 * so the wildcard matcher and the chain expansion see fuzzed patterns too, and
 * a local address to look the domains up by (virtual hosts: ip=, hostname=).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "local/accounts.h"
#include "local/aliases.h"
#include "local/domains.h"
#include "local/vhost.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *open_mem(const uint8_t *data, size_t size)
{
	/* fmemopen refuses a zero-length buffer in some libcs; an empty input is an empty table. */
	return size ? fmemopen((void *)data, size, "r") : NULL;
}

static int exists(void *ctx, const char *local, const char *domain)
{
	const struct account_table *t = ctx;
	/* Alternate answers too, so both precedence branches are taken. */
	return accounts_find(t, local, domain) != NULL || (strlen(local) & 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const addrs[] = { "info@abc.co.jp", "a@x.test", "x-y-z@def.co.jp", "Taro@ABC.CO.JP", "@", "*@*" };
	struct domain_table d = { 0 };
	struct account_table a = { 0 };
	struct alias_table al = { 0 };
	struct buf errors;
	FILE *fp;

	buf_init(&errors, 64 * 1024);
	if ((fp = open_mem(data, size)) != NULL) {
		domains_parse(&d, fp, "domains", &errors);
		fclose(fp);
	}
	if ((fp = open_mem(data, size)) != NULL) {
		accounts_parse(&a, fp, "accounts", &errors);
		fclose(fp);
	}
	/* Import hashes plain passwords: far too slow for fuzzing, so only lines already hashed get there. */
	if ((fp = open_mem(data, size)) != NULL) {
		aliases_parse(&al, fp, "aliases", &errors);
		fclose(fp);
	}
	static const char *const locals[] = { "127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.3", "garbage" };
	const char *local = locals[size ? data[size - 1] % (sizeof(locals) / sizeof(locals[0])) : 0];
	for (size_t i = 0; i < d.n; i++) {
		(void)domains_find(&d, d.v[i].name);
		if (!vhost_domain_served(&d, d.v[i].name, d.v[i].nips ? d.v[i].ips[0] : local))
			__builtin_trap(); /* a domain is always served on its own first address */
	}
	const struct domain *vd = vhost_default_domain(&d, local);
	if (vd && !vhost_serves(vd, local))
		__builtin_trap();
	(void)vhost_hostname(&d, local, "fallback.test");
	struct alias_result out[ALIAS_MAX_RESULTS];
	const char *why;
	const char *addr = addrs[size ? data[0] % (sizeof(addrs) / sizeof(addrs[0])) : 0];
	(void)aliases_resolve(&al, addr, exists, &a, out, ALIAS_MAX_RESULTS, &why);
	for (size_t i = 0; i < al.n && i < 16; i++) {
		/* Resolve each pattern with '*' replaced: every loaded alias applies to something. */
		char probe[512];
		snprintf(probe, sizeof(probe), "%s", al.v[i].pattern);
		for (char *p = probe; *p; p++)
			if (*p == '*')
				*p = 'q';
		int n = aliases_resolve(&al, probe, exists, &a, out, ALIAS_MAX_RESULTS, &why);
		if (n > ALIAS_MAX_RESULTS)
			__builtin_trap();
		for (int k = 0; k < n; k++)
			if (memchr(out[k].dest, '\0', sizeof(out[k].dest)) == NULL)
				__builtin_trap();
	}
	aliases_free(&al);
	accounts_free(&a);
	domains_free(&d);
	buf_free(&errors);
	return 0;
}
