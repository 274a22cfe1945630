/*
 * dot: the DATA end-of-text machine (RFC 5321 4.1.1.4, 4.5.2) and a scanner for the
 * header section of the message content.
 *
 * Invariant 3: only CRLF "." CRLF ends the data.  A bare LF or bare CR is never a
 * line end for dot detection: "\n.\n", "\n.\r\n", "\r.\r", "\r\n.\r" are content.
 * Line starts are only the position after CRLF (and the very beginning).  A line
 * starting with "." that is not the terminator has its first dot removed
 * (transparency).  In normalize mode a bare LF is emitted as CRLF; otherwise it is
 * kept and counted so the caller can reject the message.
 */
#ifndef TSUBAME_DOT_H
#define TSUBAME_DOT_H

#include <stddef.h>

#include "util/buf.h"

struct dot_reader {
	int state;           /* private */
	int normalize_bare_lf;
	size_t bare_lf;      /* bare LFs seen (LF not preceded by CR) */
	int overflow;        /* an append to out failed: content was truncated */
	int done;            /* CRLF.CRLF seen */
};

void dot_init(struct dot_reader *d, int normalize_bare_lf);

/*
 * Consume bytes of DATA input.  Appends the decoded content to out (CRLF line
 * ends; the final content ends with the CRLF that preceded "."; the terminator
 * itself is never emitted).  Returns the number of input bytes consumed: all of
 * them, or fewer when the terminator was found (d->done is then 1 and the bytes
 * after ".\r\n" are left for the command reader: pipelined commands).  When out
 * refuses an append (its max), sets d->overflow and keeps consuming.
 */
size_t dot_feed(struct dot_reader *d, const char *in, size_t len, struct buf *out);

/*
 * Header scan over decoded content (CRLF lines), fed in arbitrary pieces.
 * Counts Received: header fields in the header section (which ends at the first
 * empty line) and bare LFs anywhere (for BDAT content, which has no dot machine).
 */
struct header_scan {
	int state;            /* private */
	size_t col;           /* private: bytes seen of the current line */
	char prefix[10];      /* private: the start of the current line */
	int in_headers;       /* still in the header section */
	unsigned received;    /* Received: fields seen in the header section */
	size_t bare_lf;
	int prev_cr;          /* private */
};

void header_scan_init(struct header_scan *h);
void header_scan_feed(struct header_scan *h, const char *p, size_t len);

#endif
