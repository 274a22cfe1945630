/*
 * command: split an SMTP command line and parse the arguments of each command.
 *
 * The line given here has already had its CRLF removed and has been checked for
 * length and bare CR/LF by the session's line reader.  Parsers return 0, or -1 with
 * the exact reply to send in *err (code, enhanced status, text): they decide the
 * wording so that the session stays a thin dispatcher.
 */
#ifndef TSUBAME_COMMAND_H
#define TSUBAME_COMMAND_H

#include <stddef.h>
#include <stdint.h>

#include "queue/qfile.h"
#include "smtp/address.h"

enum smtp_verb {
	VERB_UNKNOWN = 0,
	VERB_HELO, VERB_EHLO, VERB_MAIL, VERB_RCPT, VERB_DATA, VERB_BDAT, VERB_RSET,
	VERB_NOOP, VERB_QUIT, VERB_VRFY, VERB_EXPN, VERB_HELP, VERB_STARTTLS, VERB_AUTH,
	VERB_TURN, VERB_ETRN, VERB_ATRN,
	VERB_COUNT
};

struct smtp_err {
	int code;          /* 3-digit reply code */
	const char *enh;   /* "5.5.2" */
	const char *text;  /* reply text, static */
};

struct smtp_command {
	enum smtp_verb verb;
	const char *args;  /* points into the line: text after the verb and one space; "" when none */
};

/* Identify the verb (case-insensitive) and locate the arguments. */
void command_split(const char *line, struct smtp_command *out);
const char *verb_name(enum smtp_verb v);

enum body_type { BODY_NONE = 0, BODY_7BIT, BODY_8BITMIME, BODY_BINARYMIME };

struct mail_params {
	uint64_t size;      /* SIZE=, 0 when absent */
	int has_size;
	enum body_type body;
	int smtputf8;
	int ret;            /* RFC 3461 RET=: DSN_RET_FULL / DSN_RET_HDRS, 0 when absent */
	char envid[DSN_ENVID_MAX + 1]; /* RFC 3461 ENVID=, xtext-decoded; "" when absent */
};

/* RCPT parameters (RFC 3461 4.1, 4.2). */
struct rcpt_params {
	unsigned notify;    /* DSN_NOTIFY_* bits, 0 when absent */
	char orcpt[DSN_ORCPT_MAX + 1]; /* "addr-type;address", xtext-decoded; "" when absent */
};

/*
 * "FROM:<path> [params]".  RFC 5321 4.1.1.2 / RFC 1870 / RFC 6152 / RFC 6531 /
 * RFC 3461 (RET, ENVID).
 * Errors: 501 5.5.4 syntax, 553 5.1.7 bad sender address, 555 5.5.4 unknown or bad
 * parameter.  flags: ADDR_* flags the session allows (UTF-8 is switched on by the
 * SMTPUTF8 parameter itself).
 */
int cmd_parse_mail(const char *args, unsigned flags, struct mailaddr *from,
    struct mail_params *mp, struct smtp_err *err);

/*
 * "TO:<path> [params]" with the DSN parameters NOTIFY and ORCPT.  Errors: 501
 * 5.5.4 syntax, 553 5.1.3 bad recipient, 555 5.5.4 unknown parameter.
 */
int cmd_parse_rcpt(const char *args, unsigned flags, struct mailaddr *to, struct rcpt_params *rp,
    struct smtp_err *err);

/* "chunk-size [LAST]" (RFC 3030).  Errors: 501 5.5.4. */
int cmd_parse_bdat(const char *args, uint64_t *size, int *last, struct smtp_err *err);

/*
 * HELO/EHLO argument: a domain or address literal.  Copies it to out (at most
 * outsz-1 bytes).  Errors: 501 5.5.4 when empty or not a plausible host name.
 */
int cmd_parse_helo(const char *args, char *out, size_t outsz, struct smtp_err *err);

#endif
