/*
 * fuzz_dot: libFuzzer target for the DATA end-of-text machine and the header
 * scanner (smtp/dot.c).  The first bytes of the input choose piece sizes; the
 * whole input is then fed once in one piece and once in those pieces, in both
 * bare-LF modes, and the results must be identical (invariant 3 must not depend
 * on how TCP segments the stream).  The scanner is checked the same way.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/dot.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define OUT_MAX (256 * 1024)

static size_t feed_pieces(struct dot_reader *d, const char *in, size_t len, struct buf *out,
    const uint8_t *sizes, size_t nsizes)
{
	size_t off = 0, k = 0;

	while (off < len && !d->done) {
		size_t n = nsizes ? (size_t)(sizes[k++ % nsizes] % 16) + 1 : 1;
		if (n > len - off)
			n = len - off;
		size_t used = dot_feed(d, in + off, n, out);
		if (used > n || (used < n && !d->done))
			abort();
		off += used;
	}
	return off;
}

static void check_scan(const char *p, size_t len, const uint8_t *sizes, size_t nsizes)
{
	struct header_scan a, b;
	size_t off = 0, k = 0;

	header_scan_init(&a);
	header_scan_init(&b);
	header_scan_feed(&a, p, len);
	while (off < len) {
		size_t n = nsizes ? (size_t)(sizes[k++ % nsizes] % 16) + 1 : 1;
		if (n > len - off)
			n = len - off;
		header_scan_feed(&b, p + off, n);
		off += n;
	}
	if (a.received != b.received || a.in_headers != b.in_headers || a.bare_lf != b.bare_lf)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t nsizes = size ? data[0] % 8 : 0;

	if (nsizes + 1 > size)
		nsizes = 0;
	const uint8_t *sizes = data + 1;
	const char *in = (const char *)data + (size ? 1 + nsizes : 0);
	size_t len = size ? size - 1 - nsizes : 0;
	/* a small maximum sometimes, to exercise overflow */
	size_t max = (size && (data[0] & 0x80)) ? len / 2 : OUT_MAX;

	for (int normalize = 0; normalize < 2; normalize++) {
		struct dot_reader d1, d2;
		struct buf o1, o2;

		dot_init(&d1, normalize);
		dot_init(&d2, normalize);
		buf_init(&o1, max);
		buf_init(&o2, max);
		size_t c1 = dot_feed(&d1, in, len, &o1);
		size_t c2 = feed_pieces(&d2, in, len, &o2, sizes, nsizes);
		if (c1 > len || c1 != c2 || d1.done != d2.done || d1.bare_lf != d2.bare_lf ||
		    d1.overflow != d2.overflow || o1.len != o2.len ||
		    (o1.len && memcmp(o1.data, o2.data, o1.len) != 0))
			abort();
		if (!d1.done && c1 != len)
			abort();
		if (o1.len > max)
			abort();
		/* Output never grows more than 2x (bare LF -> CRLF). */
		if (o1.len > 2 * c1)
			abort();
		/* A finished reader consumes nothing more. */
		if (d1.done && dot_feed(&d1, in, len, &o1) != 0)
			abort();
		if (o1.len)
			check_scan(o1.data, o1.len, sizes, nsizes);
		buf_free(&o1);
		buf_free(&o2);
	}
	check_scan(in, len, sizes, nsizes);
	return 0;
}
