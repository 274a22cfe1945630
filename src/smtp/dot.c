/*
 * dot: the DATA end-of-text state machine and the header-section scanner.
 *
 * Owns: recognising the end of DATA (RFC 5321 4.1.1.4: "the mail data is
 * terminated by a line containing only a period, that is, the character sequence
 * "<CRLF>.<CRLF>""), undoing transparency (RFC 5321 4.5.2: "If the first character
 * is a period and there are other characters on the line, the first character is
 * deleted"), and the bare-LF policy.  Trusts nothing: input is raw client bytes in
 * arbitrary pieces.
 *
 * SECURITY (invariant 3, SMTP smuggling): only CR LF "." CR LF ends the data.  A
 * line start is the position after CR LF, or the very beginning (the DATA
 * command's own CRLF).  A bare LF or bare CR is content and never starts a line,
 * even in normalize mode where a bare LF is written out as CRLF.  If any other
 * sequence ended the data here while a downstream MTA disagreed, a client could
 * hide a second message inside the first.  Consequence for delivery: content may
 * hold a line "." (from "\n.\r\n" after normalizing), so every SMTP client must
 * dot-stuff on the way out, as RFC 5321 4.5.2 requires anyway.
 *
 * The machine keeps all state in struct dot_reader, so output is identical for
 * any split of the input (even between CR and LF, or just after the dot).
 */
#include "smtp/dot.h"

#include <string.h>

enum dot_state {
	DS_BOL = 0, /* at a line start: just after CRLF, or at the beginning */
	DS_TEXT,    /* inside a line; previous byte was not CR */
	DS_CR,      /* previous byte was a CR (already emitted) */
	DS_DOT,     /* "." at a line start, held back (never emitted) */
	DS_DOT_CR   /* "." CR at a line start, both held back */
};

void dot_init(struct dot_reader *d, int normalize_bare_lf)
{
	memset(d, 0, sizeof(*d));
	d->state = DS_BOL;
	d->normalize_bare_lf = normalize_bare_lf;
}

/*
 * Append to out, or as much as fits: once out is full the content is truncated
 * at exactly its maximum (whatever the chunking) and nothing more is written.
 */
static void emit(struct dot_reader *d, struct buf *out, const char *p, size_t n)
{
	if (d->overflow || n == 0)
		return;
	size_t room = out->len < out->max ? out->max - out->len : 0;
	if (n > room) {
		d->overflow = 1;
		n = room;
	}
	if (n > 0 && buf_append(out, p, n) < 0)
		d->overflow = 1;
}

/* A LF not preceded by CR: content, counted, CRLF on output when normalizing. */
static void bare_lf(struct dot_reader *d, struct buf *out)
{
	d->bare_lf++;
	if (d->normalize_bare_lf)
		emit(d, out, "\r\n", 2);
	else
		emit(d, out, "\n", 1);
	d->state = DS_TEXT;
}

size_t dot_feed(struct dot_reader *d, const char *in, size_t len, struct buf *out)
{
	size_t i = 0;

	if (d->done)
		return 0;
	while (i < len) {
		char c = in[i];

		switch (d->state) {
		case DS_BOL:
		case DS_TEXT:
			if (c == '.' && d->state == DS_BOL) {
				/* Held: either transparency (dropped) or the terminator. */
				d->state = DS_DOT;
				i++;
				continue;
			}
			if (c != '\r' && c != '\n') {
				/* Fast path: copy the run of ordinary bytes at once. */
				size_t j = i + 1;
				while (j < len && in[j] != '\r' && in[j] != '\n')
					j++;
				emit(d, out, in + i, j - i);
				d->state = DS_TEXT;
				i = j;
				continue;
			}
			if (c == '\r') {
				emit(d, out, "\r", 1);
				d->state = DS_CR;
			} else
				bare_lf(d, out);
			i++;
			continue;
		case DS_CR:
			if (c == '\n') {
				emit(d, out, "\n", 1);
				d->state = DS_BOL;
			} else if (c == '\r') {
				emit(d, out, "\r", 1); /* the previous CR was bare */
			} else {
				emit(d, out, &in[i], 1);
				d->state = DS_TEXT;
			}
			i++;
			continue;
		case DS_DOT:
			if (c == '\r') {
				d->state = DS_DOT_CR;
				i++;
				continue;
			}
			/* "." not followed by CRLF: the dot was transparency, drop it. */
			if (c == '\n')
				bare_lf(d, out);
			else {
				emit(d, out, &in[i], 1);
				d->state = DS_TEXT;
			}
			i++;
			continue;
		case DS_DOT_CR:
			if (c == '\n') {
				/* CRLF "." CRLF: the end; bytes after it belong to the next command. */
				d->done = 1;
				d->state = DS_BOL;
				return i + 1;
			}
			/*
			 * ". CR x": the held CR was not the start of CRLF after a lone dot;
			 * release it (the dot stays dropped) and treat x as the byte after
			 * a CR, without consuming it here.
			 */
			emit(d, out, "\r", 1);
			d->state = DS_CR;
			continue;
		default:
			/* Corrupted state: fail safe by treating it as mid-line content. */
			d->state = DS_TEXT;
			continue;
		}
	}
	return len;
}

/* header_scan states */
enum hs_state {
	HS_MATCH = 0, /* the line so far is a prefix of "received" */
	HS_AFTER,     /* "received" seen, waiting for optional WSP then ':' */
	HS_OTHER      /* anything else until the line ends */
};

void header_scan_init(struct header_scan *h)
{
	memset(h, 0, sizeof(*h));
	h->state = HS_MATCH;
	h->in_headers = 1;
}

/*
 * RFC 5322 2.2 / 3.6.7: a Received: field is "Received:" at the start of a line
 * (names are case-insensitive); RFC 5322 4.5.x obsolete syntax allows WSP before
 * the colon, which we count too (over-counting only makes loop detection stricter).
 * RFC 5322 2.1: the header section ends at the first empty line.  Lines end at
 * CRLF only (same rule as the dot machine); a bare LF is content and is counted.
 */
void header_scan_feed(struct header_scan *h, const char *p, size_t len)
{
	static const char name[] = "received";

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\n') {
			if (h->prev_cr) {
				if (h->col == 1)
					h->in_headers = 0; /* the line was only CR LF */
				h->col = 0;
				h->state = HS_MATCH;
				h->prev_cr = 0;
				continue;
			}
			h->bare_lf++;
		}
		h->prev_cr = (c == '\r');
		if (h->in_headers) {
			if (h->state == HS_MATCH) {
				int lc = (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
				if (h->col < sizeof(name) - 1 && lc == name[h->col]) {
					if (h->col == sizeof(name) - 2)
						h->state = HS_AFTER;
				} else
					h->state = HS_OTHER;
			} else if (h->state == HS_AFTER) {
				if (c == ':') {
					h->received++;
					h->state = HS_OTHER;
				} else if (c != ' ' && c != '\t')
					h->state = HS_OTHER;
			}
		}
		if (h->col < (size_t)-1)
			h->col++;
	}
}
