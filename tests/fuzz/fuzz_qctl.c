/*
 * fuzz_qctl: the queue manager's control protocol parsers (src/queue/qctl_proto.c)
 * on arbitrary bytes (every verb: flush, retry, hold, release, link) — as a request (what any local client may send to the
 * queue process) and as an answer (what tsubamectl reads back).  Whatever
 * parses must be well-formed, and writing it back must give a line that
 * parses to the same thing.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "queue/qctl_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct qctl_request r, again;
	char why[128] = "", line[QCTL_LINE_MAX + 1];

	if (qctl_request_parse(in, size, &r, why, sizeof(why)) == 0) {
		if (r.cmd < QCTL_FLUSH || r.cmd > QCTL_CMD_LAST)
			__builtin_trap();
		/* link takes exactly one of up, down, status; nothing else carries a link op */
		if ((r.cmd == QCTL_LINK) != (r.link >= QCTL_LINK_UP && r.link <= QCTL_LINK_STATUS))
			__builtin_trap();
		if (r.cmd == QCTL_LINK && (r.all || r.qid[0] || r.domain[0]))
			__builtin_trap();
		if (r.cmd == QCTL_FLUSH && r.domain[0] && !qctl_domain_valid(r.domain, strlen(r.domain)))
			__builtin_trap();
		if (r.cmd != QCTL_FLUSH && r.cmd != QCTL_LINK && !r.all && !qid_valid(r.qid))
			__builtin_trap();
		if (r.all && (r.cmd == QCTL_FLUSH || r.cmd == QCTL_RETRY || r.qid[0]))
			__builtin_trap();
		int n = qctl_request_format(&r, line, sizeof(line));
		if (n <= 0 || qctl_request_parse(line, (size_t)n, &again, why, sizeof(why)) != 0 ||
		    memcmp(&r, &again, sizeof(r)) != 0)
			__builtin_trap();
	} else if (why[0] == '\0') {
		__builtin_trap(); /* every refusal says why */
	}

	struct qctl_reply a, b;
	char out[QCTL_REPLY_MAX + 1];
	if (qctl_reply_parse(in, size, &a) == 0) {
		int n = qctl_reply_format(&a, out, sizeof(out));
		if (n <= 0 || qctl_reply_parse(out, (size_t)n, &b) != 0 || memcmp(&a, &b, sizeof(a)) != 0)
			__builtin_trap();
	}
	return 0;
}
