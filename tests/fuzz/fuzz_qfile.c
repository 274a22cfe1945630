/*
 * fuzz_qfile: libFuzzer target for the queue file parser (src/queue/qfile.c).
 *
 * Any input: qfile_parse_mem must not crash, leak or read out of bounds.
 * When it parses, the envelope is written again (header, the same content,
 * end record) and parsed again: the second envelope must equal the first,
 * with the same data_len and content, and the recipients' state offsets must
 * point at their state letters.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/qfile.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int streq(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

static void check_same(const struct qenvelope *a, const struct qenvelope *b)
{
	if (strcmp(a->qid, b->qid) != 0 || a->arrival != b->arrival || !streq(a->sender, b->sender) ||
	    !streq(a->client_addr, b->client_addr) || !streq(a->client_name, b->client_name) ||
	    !streq(a->helo, b->helo) || !streq(a->proto, b->proto) || a->body != b->body ||
	    a->smtputf8 != b->smtputf8 || a->nrcpt != b->nrcpt || a->data_len != b->data_len)
		abort();
	for (size_t i = 0; i < a->nrcpt; i++) {
		const struct qrcpt *x = &a->rcpt[i], *y = &b->rcpt[i];
		if (x->state != y->state || x->attempts != y->attempts || x->next_try != y->next_try ||
		    !streq(x->orig, y->orig) || !streq(x->dest, y->dest) || !streq(x->present, y->present))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qenvelope e, f;
	char why[256];
	const char *p = (const char *)data;

	if (qfile_parse_mem(p, size, &e, why, sizeof(why)) != 0) {
		if (why[0] == '\0')
			abort(); /* a rejection always says why */
		return 0;
	}
	if (e.data_off < 0 || e.data_len < 0 || (size_t)(e.data_off + e.data_len) + qfile_trailer_len() != size)
		abort();
	for (size_t i = 0; i < e.nrcpt; i++)
		if (e.rcpt[i].state_off <= 0 || (size_t)e.rcpt[i].state_off >= (size_t)e.data_off ||
		    p[e.rcpt[i].state_off] != e.rcpt[i].state)
			abort();
	if (e.nrcpt == 0)
		abort();

	struct buf out;
	buf_init(&out, size * 4 + 4096);
	if (qfile_write_header(&out, &e) != 0 ||
	    buf_append(&out, p + e.data_off, (size_t)e.data_len) != 0 ||
	    qfile_write_trailer(&out, e.data_len) != 0)
		abort();
	if (qfile_parse_mem(out.data, out.len, &f, why, sizeof(why)) != 0)
		abort();
	check_same(&e, &f);
	if (memcmp(out.data + f.data_off, p + e.data_off, (size_t)e.data_len) != 0)
		abort();
	/* Canonical format: every record is rewritten byte for byte (order aside). */
	if (f.data_off != e.data_off)
		abort();
	qenvelope_free(&f);
	qenvelope_free(&e);
	buf_free(&out);
	return 0;
}
