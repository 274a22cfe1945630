/*
 * fuzz_atrn: the ATRN argument parser (RFC 2645 4.2.3, atrn_parse_domains) on
 * arbitrary bytes.  Whatever it accepts must be canonical: at most
 * ATRN_DOMAINS_MAX distinct lower-case LDH names, and joining them with commas
 * must parse again to the same list.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "policy/atrn_args.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char arg[16384];
	static struct atrn_domains d, again;
	if (size >= sizeof(arg))
		size = sizeof(arg) - 1;
	memcpy(arg, data, size);
	arg[size] = '\0';
	int code = atrn_parse_domains(arg, &d);
	if (code != 0) {
		if (code != 501)
			__builtin_trap();
		return 0;
	}
	if (d.n > ATRN_DOMAINS_MAX || (d.n == 0 && arg[0] != '\0'))
		__builtin_trap();
	static char back[ATRN_DOMAINS_MAX * (ATRN_DOMAIN_MAX + 1) + 1];
	size_t k = 0;
	for (size_t i = 0; i < d.n; i++) {
		size_t len = strlen(d.v[i]);
		if (len == 0 || len > ATRN_DOMAIN_MAX)
			__builtin_trap();
		for (size_t j = 0; j < len; j++) {
			char c = d.v[i][j];
			if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
				__builtin_trap();
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(d.v[i], d.v[j]))
				__builtin_trap();
		if (i)
			back[k++] = ',';
		memcpy(back + k, d.v[i], len);
		k += len;
	}
	back[k] = '\0';
	if (atrn_parse_domains(back, &again) != 0 || again.n != d.n)
		__builtin_trap();
	for (size_t i = 0; i < d.n; i++)
		if (strcmp(d.v[i], again.v[i]) != 0)
			__builtin_trap();
	return 0;
}
