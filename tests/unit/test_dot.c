/*
 * test_dot: the DATA end-of-text machine and the header scanner (smtp/dot.c).
 *
 * Every table row is checked fed in one piece, byte by byte and in random splits,
 * and against ref_decode(), a deliberately naive decoder written from the rules
 * (line start = beginning or after raw CR LF), so the state machine and the
 * specification must agree on every smuggling sequence.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/dot.h"
#include "util/buf.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define WHOLE ((size_t)-1)

struct dot_case {
	const char *in;
	size_t len;        /* 0: strlen(in) */
	int normalize;
	const char *out;
	size_t outlen;     /* 0: strlen(out) */
	size_t consumed;   /* WHOLE: all of the input */
	int done;
	size_t bare_lf;
};

static const struct dot_case dot_cases[] = {
	/* plain termination */
	{ ".\r\n", 0, 0, "", 0, 3, 1, 0 },
	{ "hello\r\n.\r\n", 0, 0, "hello\r\n", 0, WHOLE, 1, 0 },
	{ "a\r\nb\r\n.\r\n", 0, 0, "a\r\nb\r\n", 0, WHOLE, 1, 0 },
	{ "\r\n.\r\n", 0, 0, "\r\n", 0, WHOLE, 1, 0 },
	{ "\r\n\r\n.\r\n", 0, 0, "\r\n\r\n", 0, WHOLE, 1, 0 },
	{ "a\r\r\n.\r\n", 0, 0, "a\r\r\n", 0, WHOLE, 1, 0 },
	{ "a\n\r\n.\r\n", 0, 0, "a\n\r\n", 0, WHOLE, 1, 1 },
	/* pipelined bytes after the terminator stay unconsumed */
	{ "x\r\n.\r\nQUIT\r\n", 0, 0, "x\r\n", 0, 6, 1, 0 },
	{ ".\r\nMAIL FROM:<>\r\n", 0, 0, "", 0, 3, 1, 0 },
	{ "x\r\n.\r\n.\r\n", 0, 0, "x\r\n", 0, 6, 1, 0 },
	/* transparency (RFC 5321 4.5.2) */
	{ "..\r\n.\r\n", 0, 0, ".\r\n", 0, WHOLE, 1, 0 },
	{ "...\r\n.\r\n", 0, 0, "..\r\n", 0, WHOLE, 1, 0 },
	{ ".a\r\n.\r\n", 0, 0, "a\r\n", 0, WHOLE, 1, 0 },
	{ "a\r\n.b\r\n.\r\n", 0, 0, "a\r\nb\r\n", 0, WHOLE, 1, 0 },
	{ "a\r\n..\r\n.\r\n", 0, 0, "a\r\n.\r\n", 0, WHOLE, 1, 0 },
	{ "a.\r\n.\r\n", 0, 0, "a.\r\n", 0, WHOLE, 1, 0 },
	{ " .\r\n.\r\n", 0, 0, " .\r\n", 0, WHOLE, 1, 0 },
	/* smuggling sequences: none of them ends the data */
	{ "a\n.\n", 0, 0, "a\n.\n", 0, WHOLE, 0, 2 },
	{ "a\n.\n", 0, 1, "a\r\n.\r\n", 0, WHOLE, 0, 2 },
	{ "a\n.\r\n", 0, 0, "a\n.\r\n", 0, WHOLE, 0, 1 },
	{ "a\n.\r\n", 0, 1, "a\r\n.\r\n", 0, WHOLE, 0, 1 },
	{ "a\r.\r", 0, 0, "a\r.\r", 0, WHOLE, 0, 0 },
	{ "a\r.\r\n", 0, 0, "a\r.\r\n", 0, WHOLE, 0, 0 },
	{ "a\r\n.\r", 0, 0, "a\r\n", 0, WHOLE, 0, 0 },
	{ "a\r\n.\n", 0, 0, "a\r\n\n", 0, WHOLE, 0, 1 },
	{ "a\r\n.\n", 0, 1, "a\r\n\r\n", 0, WHOLE, 0, 1 },
	{ "\n.\n", 0, 0, "\n.\n", 0, WHOLE, 0, 2 },
	{ "\n.\r\n", 0, 0, "\n.\r\n", 0, WHOLE, 0, 1 },
	{ "\r.\r", 0, 0, "\r.\r", 0, WHOLE, 0, 0 },
	{ ".\n", 0, 0, "\n", 0, WHOLE, 0, 1 },
	{ ".\r", 0, 0, "", 0, WHOLE, 0, 0 },
	{ ".", 0, 0, "", 0, WHOLE, 0, 0 },
	{ "a\r\n.", 0, 0, "a\r\n", 0, WHOLE, 0, 0 },
	{ "a\r\n..", 0, 0, "a\r\n.", 0, WHOLE, 0, 0 },
	{ "a\r\n.\r\r\n", 0, 0, "a\r\n\r\r\n", 0, WHOLE, 0, 0 },
	/* ... and the real terminator after each of them still works */
	{ "a\n.\nb\r\n.\r\n", 0, 0, "a\n.\nb\r\n", 0, WHOLE, 1, 2 },
	{ "a\n.\r\n.\r\n", 0, 0, "a\n.\r\n", 0, WHOLE, 1, 1 },
	{ "a\n.\r\n.\r\n", 0, 1, "a\r\n.\r\n", 0, WHOLE, 1, 1 },
	{ "a\r.\r\n.\r\n", 0, 0, "a\r.\r\n", 0, WHOLE, 1, 0 },
	{ "a\r\n.\rb\r\n.\r\n", 0, 0, "a\r\n\rb\r\n", 0, WHOLE, 1, 0 },
	{ "a\r\n.\nb\r\n.\r\n", 0, 0, "a\r\n\nb\r\n", 0, WHOLE, 1, 1 },
	{ ".\r\r\n.\r\n", 0, 0, "\r\r\n", 0, WHOLE, 1, 0 },
	{ "a\r\n.\r.\r\n.\r\n", 0, 0, "a\r\n\r.\r\n", 0, WHOLE, 1, 0 },
	/* the classic smuggling payload: one message, never two */
	{ "Subject: x\r\n\r\nbody\n.\nMAIL FROM:<evil@x>\r\nRCPT TO:<v@y>\r\nDATA\r\nsmuggled\r\n.\r\nQUIT\r\n", 0, 0,
	  "Subject: x\r\n\r\nbody\n.\nMAIL FROM:<evil@x>\r\nRCPT TO:<v@y>\r\nDATA\r\nsmuggled\r\n", 0, 75, 1, 2 },
	/* normalize mode */
	{ "a\nb\r\n.\r\n", 0, 1, "a\r\nb\r\n", 0, WHOLE, 1, 1 },
	{ "a\n\n\r\n.\r\n", 0, 1, "a\r\n\r\n\r\n", 0, WHOLE, 1, 2 },
	{ "a\r\n\n.\r\n.\r\n", 0, 1, "a\r\n\r\n.\r\n", 0, WHOLE, 1, 1 },
	/* binary content, NULs */
	{ "a\0b\r\n.\r\n", 8, 0, "a\0b\r\n", 5, WHOLE, 1, 0 },
	{ "\0.\r\n.\r\n", 7, 0, "\0.\r\n", 4, WHOLE, 1, 0 },
	{ "\xff\xfe\r\n.\r\n", 0, 0, "\xff\xfe\r\n", 0, WHOLE, 1, 0 },
};

/*
 * Naive decoder from the rules, over the whole input.  Returns the consumed
 * length; *done set when the terminator was found.  A "." or ".\r" at a line
 * start at the very end of the input is held back (it may become the end).
 */
static size_t ref_decode(const char *in, size_t len, int normalize, struct buf *out,
    int *done, size_t *bare)
{
	*done = 0;
	*bare = 0;
	for (size_t p = 0; p < len; p++) {
		int bol = p == 0 || (p >= 2 && in[p - 2] == '\r' && in[p - 1] == '\n');
		if (bol && in[p] == '.') {
			if (p + 2 < len && in[p + 1] == '\r' && in[p + 2] == '\n') {
				*done = 1;
				return p + 3;
			}
			if (p + 1 == len || (p + 2 == len && in[p + 1] == '\r'))
				return len;
			continue; /* transparency: drop the dot */
		}
		if (in[p] == '\n' && (p == 0 || in[p - 1] != '\r')) {
			(*bare)++;
			buf_append(out, normalize ? "\r\n" : "\n", normalize ? 2 : 1);
			continue;
		}
		buf_append(out, &in[p], 1);
	}
	return len;
}

/* Simple deterministic PRNG so that failures reproduce. */
static uint32_t rnd(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/*
 * Feed in pieces: splits[] lists piece sizes (cycled), or NULL for random sizes
 * of 1..maxpiece from seed.  Stops as dot_feed stops.
 */
static size_t feed_split(struct dot_reader *d, const char *in, size_t len, struct buf *out,
    size_t piece, uint32_t seed)
{
	size_t off = 0;

	while (off < len && !d->done) {
		size_t n = piece ? piece : 1 + rnd(&seed) % 7;
		if (n > len - off)
			n = len - off;
		size_t used = dot_feed(d, in + off, n, out);
		assert_true(used <= n);
		if (used < n)
			assert_true(d->done);
		off += used;
	}
	return off;
}

static void check_case(const struct dot_case *t, size_t idx)
{
	size_t len = t->len ? t->len : strlen(t->in);
	size_t outlen = t->outlen ? t->outlen : strlen(t->out);
	size_t want_consumed = t->consumed == WHOLE ? len : t->consumed;
	struct buf ref;
	int rdone;
	size_t rbare;

	buf_init(&ref, 1 << 20);
	size_t rc = ref_decode(t->in, len, t->normalize, &ref, &rdone, &rbare);
	if (ref.len != outlen || (ref.len && memcmp(ref.data, t->out, outlen) != 0))
		print_error("case %zu: reference decoder disagrees with the table\n", idx);
	assert_int_equal(ref.len, outlen);
	assert_int_equal(rc, want_consumed);
	assert_int_equal(rdone, t->done);
	assert_int_equal(rbare, t->bare_lf);

	/* piece size 0 = whole, 1 = byte by byte, 2, 3, then random splits */
	for (int mode = 0; mode < 4 + 50; mode++) {
		struct dot_reader d;
		struct buf out;
		size_t used;

		dot_init(&d, t->normalize);
		buf_init(&out, 1 << 20);
		if (mode == 0)
			used = dot_feed(&d, t->in, len, &out);
		else if (mode < 4)
			used = feed_split(&d, t->in, len, &out, (size_t)mode, 0);
		else
			used = feed_split(&d, t->in, len, &out, 0, (uint32_t)(mode * 2654435761u + idx + 1));
		if (out.len != outlen || (outlen && memcmp(out.data, t->out, outlen) != 0) ||
		    used != want_consumed)
			print_error("case %zu mode %d: got %zu bytes, consumed %zu\n", idx, mode,
			    out.len, used);
		assert_int_equal(out.len, outlen);
		if (outlen)
			assert_memory_equal(out.data, t->out, outlen);
		assert_int_equal(used, want_consumed);
		assert_int_equal(d.done, t->done);
		assert_int_equal(d.bare_lf, t->bare_lf);
		assert_int_equal(d.overflow, 0);
		/* once done, nothing more is consumed */
		if (d.done)
			assert_int_equal(dot_feed(&d, "x", 1, &out), 0);
		buf_free(&out);
	}
	buf_free(&ref);
}

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(dot_cases); i++)
		check_case(&dot_cases[i], i);
}

/* Random inputs over the bytes that matter, against the reference decoder. */
static void test_random_differential(void **state)
{
	static const char alpha[] = { '\r', '\n', '.', 'a', '\r', '\n', '.' };
	uint32_t seed = 12345;
	char in[64];

	(void)state;
	for (int iter = 0; iter < 20000; iter++) {
		size_t len = 1 + rnd(&seed) % sizeof(in);
		int normalize = (int)(rnd(&seed) & 1);
		for (size_t i = 0; i < len; i++)
			in[i] = alpha[rnd(&seed) % sizeof(alpha)];

		struct buf ref, one, split;
		int rdone;
		size_t rbare;
		buf_init(&ref, 4096);
		buf_init(&one, 4096);
		buf_init(&split, 4096);
		size_t rc = ref_decode(in, len, normalize, &ref, &rdone, &rbare);

		struct dot_reader d1, d2;
		dot_init(&d1, normalize);
		dot_init(&d2, normalize);
		size_t c1 = dot_feed(&d1, in, len, &one);
		size_t c2 = feed_split(&d2, in, len, &split, 0, seed);

		assert_int_equal(c1, rc);
		assert_int_equal(c2, rc);
		assert_int_equal(d1.done, rdone);
		assert_int_equal(d2.done, rdone);
		assert_int_equal(d1.bare_lf, rbare);
		assert_int_equal(d2.bare_lf, rbare);
		assert_int_equal(one.len, ref.len);
		assert_int_equal(split.len, ref.len);
		if (ref.len) {
			assert_memory_equal(one.data, ref.data, ref.len);
			assert_memory_equal(split.data, ref.data, ref.len);
		}
		buf_free(&ref);
		buf_free(&one);
		buf_free(&split);
	}
}

static void test_overflow(void **state)
{
	static const char msg[] = "hello world\r\n..more\r\n.\r\nQUIT\r\n";
	size_t len = sizeof(msg) - 1;

	(void)state;
	for (size_t piece = 0; piece < 5; piece++) {
		struct dot_reader d;
		struct buf out;
		dot_init(&d, 0);
		buf_init(&out, 5);
		size_t used = piece ? feed_split(&d, msg, len, &out, piece, 0)
		                    : dot_feed(&d, msg, len, &out);
		assert_int_equal(used, len - strlen("QUIT\r\n"));
		assert_int_equal(d.done, 1);
		assert_int_equal(d.overflow, 1);
		/* truncated at exactly the maximum, whatever the chunking */
		assert_int_equal(out.len, 5);
		assert_memory_equal(out.data, "hello", 5);
		buf_free(&out);
	}
	/* exactly fitting content is no overflow */
	struct dot_reader d;
	struct buf out;
	dot_init(&d, 0);
	buf_init(&out, 7);
	assert_int_equal(dot_feed(&d, "hello\r\n.\r\n", 10, &out), 10);
	assert_int_equal(d.overflow, 0);
	assert_int_equal(out.len, 7);
	buf_free(&out);
	/* a full buffer before the first byte */
	dot_init(&d, 1);
	buf_init(&out, 0);
	assert_int_equal(dot_feed(&d, "a\nb\r\n.\r\n", 8, &out), 8);
	assert_int_equal(d.overflow, 1);
	assert_int_equal(d.bare_lf, 1);
	assert_int_equal(out.len, 0);
	buf_free(&out);
}

static void test_large(void **state)
{
	/* 1 MiB of lines, some starting with '.', fed in 4000-byte reads */
	struct buf in, out, want;
	struct dot_reader d;

	(void)state;
	buf_init(&in, 4 << 20);
	buf_init(&want, 4 << 20);
	buf_init(&out, 4 << 20);
	for (int i = 0; in.len < (1 << 20); i++) {
		if (i % 7 == 0) {
			buf_appendf(&in, "..line %d\r\n", i);
			buf_appendf(&want, ".line %d\r\n", i);
		} else {
			buf_appendf(&in, "line %d with some text\r\n", i);
			buf_appendf(&want, "line %d with some text\r\n", i);
		}
	}
	buf_puts(&in, ".\r\n");
	dot_init(&d, 0);
	assert_int_equal(feed_split(&d, in.data, in.len, &out, 4000, 0), in.len);
	assert_int_equal(d.done, 1);
	assert_int_equal(out.len, want.len);
	assert_memory_equal(out.data, want.data, want.len);
	buf_free(&in);
	buf_free(&out);
	buf_free(&want);
}

struct hs_case {
	const char *in;
	unsigned received;
	int in_headers;
	size_t bare_lf;
};

static const struct hs_case hs_cases[] = {
	{ "", 0, 1, 0 },
	{ "Received: a\r\nReceived: b\r\nSubject: x\r\n\r\nReceived: c\r\n", 2, 0, 0 },
	{ "received:x\r\nRECEIVED :y\r\nReCeIvEd\t: z\r\n", 3, 1, 0 },
	{ "Received:", 1, 1, 0 },
	{ "X-Received: a\r\n", 0, 1, 0 },
	{ " Received: folded\r\n", 0, 1, 0 },
	{ "Subject: a\r\n Received: folded\r\n", 0, 1, 0 },
	{ "\r\nReceived: a\r\n", 0, 0, 0 },
	{ "Received\r\n: x\r\n", 0, 1, 0 },
	{ "Receive: x\r\n", 0, 1, 0 },
	{ "Receivedd: x\r\n", 0, 1, 0 },
	{ "Received x: y\r\n", 0, 1, 0 },
	{ "Subject: a\nReceived: b\r\n", 0, 1, 1 },
	{ "Received: a\r\n \r\nReceived: b\r\n\r\n", 2, 0, 0 },
	{ "a: b\r\r\nReceived: x\r\n", 1, 1, 0 },
	{ "\r\r\nReceived: x\r\n", 1, 1, 0 },
	{ "a\nb\n", 0, 1, 2 },
	{ "\r\r\n\n", 0, 1, 1 },
	{ "\n\r\nReceived: x\r\n", 1, 1, 1 },
	{ "A: b\r\n\r\nbody\nmore\n", 0, 0, 2 },
};

static void test_header_scan(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(hs_cases); i++) {
		const struct hs_case *t = &hs_cases[i];
		size_t len = strlen(t->in);
		for (size_t piece = 0; piece < 5; piece++) {
			struct header_scan h;
			header_scan_init(&h);
			if (piece == 0)
				header_scan_feed(&h, t->in, len);
			else
				for (size_t off = 0; off < len; off += piece)
					header_scan_feed(&h, t->in + off, len - off < piece ? len - off : piece);
			if (h.received != t->received || h.in_headers != t->in_headers ||
			    h.bare_lf != t->bare_lf)
				print_error("case %zu piece %zu: %u %d %zu\n", i, piece, h.received,
				    h.in_headers, h.bare_lf);
			assert_int_equal(h.received, t->received);
			assert_int_equal(h.in_headers, t->in_headers);
			assert_int_equal(h.bare_lf, t->bare_lf);
		}
	}
}

/* The scanner over the dot machine's output: the usual pipeline in the session. */
static void test_dot_then_scan(void **state)
{
	static const char msg[] =
	    "Received: from a\r\n\tby b\r\nReceived: from c\r\nSubject: hi\r\n\r\n"
	    "Received: not a header\r\n..\r\n.\r\n";
	struct dot_reader d;
	struct header_scan h;
	struct buf out;

	(void)state;
	dot_init(&d, 0);
	buf_init(&out, 1024);
	header_scan_init(&h);
	for (size_t i = 0; i < sizeof(msg) - 1 && !d.done; i++) {
		size_t before = out.len;
		dot_feed(&d, &msg[i], 1, &out);
		header_scan_feed(&h, out.data + before, out.len - before);
	}
	assert_int_equal(d.done, 1);
	assert_int_equal(h.received, 2);
	assert_int_equal(h.in_headers, 0);
	buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_random_differential),
		cmocka_unit_test(test_overflow),
		cmocka_unit_test(test_large),
		cmocka_unit_test(test_header_scan),
		cmocka_unit_test(test_dot_then_scan),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
