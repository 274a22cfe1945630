/*
 * qfile: the queue file format (version 1): one self-delimiting file per message.
 *
 *   TSUBAME-QUEUE 1\n
 *   qid: <qid>\n
 *   arrival: <unix seconds>\n
 *   sender: <address, empty for <>>\n
 *   client-addr: ...\n  client-name: ...\n  helo: ...\n  proto: ESMTP\n
 *   body: 7bit|8bitmime|binarymime\n   smtputf8: 0|1\n
 *   warned: 0|1\n                      (the delay-warning time was handled; updated in place)
 *   [ret: full|hdrs\n] [envid: <id>\n] [auth: <account>\n] [notice: admin\n]   (optional)
 *   rcpt: <S> <attempts:4 digits> <next try:12 digits> <orig>\t<dest>\t<present>\t<notify>\t<orcpt>\n
 *         (repeated; notify is one digit, the DSN_NOTIFY_* bits; orcpt may be empty)
 *   data: \n
 *   <message content, CRLF lines, exactly data-len bytes>
 *   \nend <data-len, 12 digits>\n
 * Values are percent-encoded for bytes <= 0x20 (except inside the rcpt line's
 * fixed fields), '%', 0x7f, so every record is one line.  The state letter, the
 * attempt counter and the next-try time of a recipient have fixed width so that
 * the queue manager updates them in place (one pwrite) — no rewrite of the file.
 * A file without its end record, or whose length disagrees with it, is invalid:
 * a torn write is always detected.  Unknown keys in the header are errors (the
 * version number is the upgrade path).
 */
#ifndef TSUBAME_QFILE_H
#define TSUBAME_QFILE_H

#include <stddef.h>
#include <sys/types.h>

#include "queue/qid.h"
#include "util/buf.h"

#define QFILE_MAGIC "TSUBAME-QUEUE 1\n"

/* RFC 3461 per-recipient NOTIFY (bits) and per-message RET. */
#define DSN_NOTIFY_SUCCESS 0x1
#define DSN_NOTIFY_FAILURE 0x2
#define DSN_NOTIFY_DELAY 0x4
#define DSN_NOTIFY_NEVER 0x8
#define DSN_RET_FULL 1
#define DSN_RET_HDRS 2
#define DSN_ENVID_MAX 100   /* RFC 3461 4.4: at most 100 characters */
#define DSN_ORCPT_MAX 500   /* RFC 3461 4.2: at most 500 characters */

/* Limits the parser enforces (and the writer respects). */
#define QFILE_HEADER_MAX (64u * 1024 * 1024) /* magic through "data: \n" */
#define QFILE_LINE_MAX (64u * 1024)          /* one header record, '\n' included */
#define QFILE_RCPT_MAX 100000
#define QFILE_ATTEMPTS_MAX 9999
#define QFILE_TIME_MAX 999999999999LL        /* 12 digits: next_try, data_len */
/* Width of the in-place region "S AAAA NNNNNNNNNNNN" at state_off. */
#define QFILE_RCPT_FIXED_LEN 19

enum rcpt_state {
	RCPT_LOCAL = 'L',    /* waiting for local delivery */
	RCPT_REMOTE = 'R',   /* waiting for the delivery engine (remote) */
	RCPT_DONE = 'D',     /* delivered */
	RCPT_BOUNCED = 'B',  /* failed; the bounce is durably queued */
	RCPT_EXPIRED = 'X'   /* given up; bounce queued */
};

struct qrcpt {
	char state;
	unsigned attempts;
	long long next_try;  /* unix seconds, 0 = now */
	char *orig;          /* as given in RCPT TO */
	char *dest;          /* where it goes (after aliases) */
	char *present;       /* envelope recipient to present (manual's rewrite rule) */
	unsigned notify;     /* DSN_NOTIFY_* bits; 0 = not given (failures and delays are reported) */
	char *orcpt;         /* RFC 3461 ORCPT "type;address", "" when not given */
	off_t state_off;     /* file offset of the state letter (set by the parser / writer) */
};

struct qenvelope {
	char qid[QID_MAX];
	long long arrival;
	char *sender;
	char *client_addr;
	char *client_name;
	char *helo;
	char *proto;
	int body;            /* 0 7bit, 1 8bitmime, 2 binarymime */
	int smtputf8;
	int warned;          /* the delay-warning time was handled: a warning went to those whose NOTIFY allows (D5: once) */
	off_t warned_off;    /* file offset of the warned digit (set by the parser / writer) */
	int ret;             /* DSN_RET_*, 0 = not given */
	char *envid;         /* RFC 3461 ENVID, NULL or "" when not given */
	char *auth;          /* the account that submitted it (AUTH), NULL or "" when none */
	int notice_admin;    /* a notice to the administrator: if it fails, it is dropped (loop guard) */
	struct qrcpt *rcpt;
	size_t nrcpt;
	off_t data_off;      /* where the content starts */
	off_t data_len;
};

/*
 * Header records through "data: \n", appended to out.  Sets each rcpt's state_off
 * and e->data_off as offsets in out, so out must start empty (at the file start)
 * for them to be file offsets.  attempts and next_try are clamped to their field
 * widths.  Returns 0, or -1 (out unchanged) when the envelope cannot be written
 * as a file the parser accepts: no recipient or more than QFILE_RCPT_MAX, bad
 * qid, state letter, body or smtputf8, header over QFILE_HEADER_MAX, a record
 * over QFILE_LINE_MAX, or out's own maximum reached.  NULL strings count as "".
 */
int qfile_write_header(struct buf *out, struct qenvelope *e);
/* The end record for data_len bytes of content.  0, or -1 (out unchanged). */
int qfile_write_trailer(struct buf *out, off_t data_len);
/* Length of the end record (for size checks). */
size_t qfile_trailer_len(void);

/*
 * Read and validate a whole queue file from fd (pread, offset-independent).
 * 0 on success; -1 with a reason in why (invalid / torn / unknown version).
 */
int qfile_parse(int fd, struct qenvelope *e, char *why, size_t whysz);
/* Same, from memory (used by the fuzzer and tests). */
int qfile_parse_mem(const char *p, size_t len, struct qenvelope *e, char *why, size_t whysz);
void qenvelope_free(struct qenvelope *e);

/* Update one recipient in place (state, attempts, next_try) with one pwrite. 0 or -1. */
int qfile_set_rcpt(int fd, const struct qrcpt *r);
/* Record in place that the delay warning went out (e->warned = 1).  0 or -1. */
int qfile_set_warned(int fd, struct qenvelope *e);

/*
 * The parser is strict and canonical: keys may come in any order but each
 * exactly once (rcpt 1..QFILE_RCPT_MAX times, in file order), numbers have no
 * leading zeros or '+', and a value may contain neither a byte that needs
 * encoding nor an unneeded %XX (hex upper case), so writing a parsed envelope
 * reproduces the records byte for byte (key order aside).
 */

/* 1 when no recipient is in state L or R. */
int qenvelope_finished(const struct qenvelope *e);

#endif
