/*
 * fuzz_etrn: the ETRN argument parser (RFC 1985 section 5, hold_node_parse)
 * on arbitrary bytes.  Whatever it accepts must be canonical: a lower-case
 * name of 1-253 printable bytes without spaces, that parses again to the same
 * node when written back with its option character, and that covers itself.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "policy/holdtab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char arg[1024];
	struct hold_node n, again;

	if (size >= sizeof(arg))
		size = sizeof(arg) - 1;
	memcpy(arg, data, size);
	arg[size] = '\0';   /* the session hands over a NUL-terminated line without NULs */
	int code = hold_node_parse(arg, &n);
	if (code != 0) {
		if (code != 500 && code != 501)
			__builtin_trap();
		if (code == 500 && arg[0] != '\0')
			__builtin_trap();
		return 0;
	}
	size_t len = strlen(n.name);
	if (len == 0 || len > HOLD_NAME_MAX)
		__builtin_trap();
	for (size_t i = 0; i < len; i++)
		if (n.name[i] <= ' ' || n.name[i] > '~' || (n.name[i] >= 'A' && n.name[i] <= 'Z'))
			__builtin_trap();
	char back[HOLD_NAME_MAX + 3];
	snprintf(back, sizeof(back), "%s%s", n.kind == HOLD_NODE_SUBDOMAINS ? "@" : n.kind == HOLD_NODE_QUEUE ? "#" : "",
	    n.name);
	if (hold_node_parse(back, &again) != 0 || again.kind != n.kind || strcmp(again.name, n.name) != 0)
		__builtin_trap();
	if (n.kind != HOLD_NODE_QUEUE && !hold_node_covers(&n, n.name))
		__builtin_trap();
	return 0;
}
