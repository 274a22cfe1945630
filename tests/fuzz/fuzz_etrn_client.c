/*
 * fuzz_etrn_client: the ETRN client's parsers (src/deliver/etrn_proto.c) on arbitrary
 * bytes — as the lines of a server's replies (what any server may send to
 * tsubamectl etrn or to the daemon's pull requests), as an ETRN argument and as
 * a server address.  A reply that completes has a code 200-599 and text that
 * is printable ASCII only; an argument that passes is something the command
 * line may carry (no space, no control byte, within ETRN_ARG_MAX).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/etrn_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_text(const char *t)
{
	for (; *t; t++)
		if ((unsigned char)*t < 0x20 || (unsigned char)*t >= 0x7f)
			__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct etrn_reply r;
	etrn_reply_init(&r);
	size_t start = 0;
	for (size_t i = 0; i <= size; i++) {
		if (i < size && in[i] != '\n')
			continue;
		int k = etrn_reply_feed(&r, in + start, i - start);
		if (k == 1) {
			if (r.code < 200 || r.code > 599 || !r.complete || r.nlines == 0 || r.nlines > ETRN_REPLY_LINES_MAX)
				__builtin_trap();
			check_text(r.text);
			(void)etrn_outcome_name(etrn_outcome_of(r.code));
			check_text(etrn_code_meaning(r.code));
		}
		if (k != 0)
			etrn_reply_init(&r);
		start = i + 1;
	}

	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	char why[128];
	if (etrn_arg_check(s, why, sizeof(why)) >= 0) {
		size_t n = strlen(s);
		if (n == 0 || n > ETRN_ARG_MAX)
			__builtin_trap();
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] == 0x7f)
				__builtin_trap();
	}
	char host[ETRN_HOST_MAX];
	unsigned port;
	int given;
	if (etrn_server_parse(s, host, sizeof(host), &port, &given, why, sizeof(why)) == 0) {
		if (port < 1 || port > 65535 || host[0] == '\0' || strchr(host, ' '))
			__builtin_trap();
	}
	char clean[64];
	etrn_clean_text(clean, sizeof(clean), in, size);
	check_text(clean);
	free(s);
	return 0;
}
