/*
 * fuzz_probe_reply: what a probed server says, on arbitrary bytes: every line
 * (split at LF, a CR before it dropped, as the probe reads them) goes through
 * the reply reader, and also through the forced-route parser and the
 * host[:port] parser (strings that end up in dest and in the tables).
 * Invariants: a complete reply has a code 200-599 and NUL-terminated texts; a
 * forced route that parses formats back to itself.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/nexthop.h"
#include "local/relaydomains.h"
#include "verify/probe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct probe_reply r;
	memset(&r, 0, sizeof(r));
	const char *p = (const char *)data, *end = p + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		int done = 0;
		if (probe_reply_line(&r, p, len, 1, &done) < 0) {
			memset(&r, 0, sizeof(r));   /* the probe gives up on the server; start afresh */
		} else if (done) {
			if (r.code < 200 || r.code > 599 || !memchr(r.enh, '\0', sizeof(r.enh)) ||
			    !memchr(r.first, '\0', sizeof(r.first)))
				__builtin_trap();
		}
		char *line = malloc(len + 1);
		memcpy(line, p, len);
		line[len] = '\0';
		char ip[46], host[256], out[600];
		unsigned port;
		if (nexthop_parse(line, ip, sizeof(ip), NULL, &port) == 0) {
			if (nexthop_format(out, sizeof(out), "a@b", ip, port) < 0 || strcmp(out + 4, line) != 0)
				__builtin_trap();
		}
		const char *why;
		(void)relay_parse_hostport(line, host, sizeof(host), &port, 0, &why);
		(void)relay_parse_hostport(line, ip, sizeof(ip), &port, 1, &why);
		free(line);
		if (!nl)
			break;
		p = nl + 1;
	}
	return 0;
}
