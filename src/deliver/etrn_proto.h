/*
 * etrn_proto: the client side of ETRN (RFC 1985, "Remote Message Queue
 * Starting") as pure functions, shared by `tsubamectl etrn` (ctl_etrn.c,
 * blocking) and the daemon's pull requests (etrn_client.c, on a deliver
 * process's event loop): which arguments may be sent, how the server's reply
 * lines add up to one reply, what its EHLO reply offers, and what each ETRN
 * reply code means.
 *
 * No I/O and no state beyond the caller's structs.  Trusts nothing the server
 * sends: lines are bounded by the caller (ETRN_LINE_MAX), a reply by
 * ETRN_REPLY_LINES_MAX lines, and the text kept of it has every unprintable
 * byte replaced, so it can be printed on a terminal or written to a log as is.
 * tests/unit/test_etrn_proto.c, tests/fuzz/fuzz_etrn.c.
 */
#ifndef TSUBAME_ETRN_PROTO_H
#define TSUBAME_ETRN_PROTO_H

#include <stddef.h>

#include "conf/config.h"
#include "util/buf.h"

#define ETRN_ARG_MAX 500           /* "ETRN " + argument + CRLF within RFC 5321's 512-byte command line */
#define ETRN_LINE_MAX 2048         /* a reply line without its CRLF; a longer one ends the session */
#define ETRN_REPLY_LINES_MAX 64    /* lines of one (multi-line) reply */
#define ETRN_TEXT_MAX 512          /* text kept of a reply: its first line, cut */
#define ETRN_HOST_MAX 256

/*
 * RFC 1985 section 3: "ETRN" SP [ "@" / "#" ] node.  A plain domain asks for
 * that host's mail; "@domain" for the domain and its subdomains; "#queue" for a
 * queue the server names itself (not a domain).  Domains are checked as the
 * queue control protocol checks them (qctl_domain_valid: LDH or UTF-8 labels,
 * no trailing dot, or an address literal); a queue name is 1 or more printable
 * ASCII bytes without spaces.
 */
enum etrn_arg_kind { ETRN_ARG_DOMAIN = 0, ETRN_ARG_SUBDOMAINS, ETRN_ARG_QUEUE };
/* The kind of arg, or -1 with a reason in why. */
int etrn_arg_check(const char *arg, char *why, size_t whylen);

/*
 * "host[:port]" as etrn_server and tsubamectl etrn take it: a host name, an
 * IPv4 address, or an IPv6 address (in brackets when a port follows); port 25
 * when none is given.  0, or -1 with a reason in why.
 */
int etrn_server_parse(const char *text, char *host, size_t hostlen, unsigned *port, int *port_given, char *why,
    size_t whylen);

/* EHLO keywords we look for (in the lines after the first). */
#define ETRN_EHLO_ETRN 0x1
#define ETRN_EHLO_STARTTLS 0x2

struct etrn_reply {
	int code;                  /* 0 until the first line */
	int complete;              /* the last line ("CCC " or "CCC") was seen */
	size_t nlines;
	char text[ETRN_TEXT_MAX];  /* the first line's text after "CCC " / "CCC-", unprintable bytes as '?' */
	unsigned ehlo;             /* ETRN_EHLO_* keywords named by lines 2.. (meaningful for EHLO only) */
};

void etrn_reply_init(struct etrn_reply *r);
/*
 * One reply line, without its line end (a trailing CR is ignored).  1 when the
 * reply is complete, 0 when more lines follow, -1 when the line is not a
 * reply line (no 3-digit code 2xx-5xx, a code that changes between lines,
 * neither ' ' nor '-' after the code, too many lines, longer than ETRN_LINE_MAX).
 * After 1 or -1, init again before the next reply.
 */
int etrn_reply_feed(struct etrn_reply *r, const char *line, size_t len);

/*
 * RFC 1985 section 5: 250, 251, 252, 253 (and any 2xx) accepted; 459 "node
 * not allowed" refused (the server's policy: not retried); 458 "unable to
 * queue" and every other 4xx temporary (retried); 500, 501 and every other
 * 5xx failed (the server does not do ETRN, or not like this).
 */
enum etrn_outcome { ETRN_ACCEPTED = 0, ETRN_TEMP, ETRN_REFUSED, ETRN_FAILED };
enum etrn_outcome etrn_outcome_of(int code);
const char *etrn_outcome_name(enum etrn_outcome o);
/* RFC 1985's meaning of an ETRN reply code, or a generic one. */
const char *etrn_code_meaning(int code);

/* Strip and clean: copy src[0..len) into dst (size n), unprintable bytes as '?', always NUL-terminated. */
void etrn_clean_text(char *dst, size_t n, const char *src, size_t len);

/*
 * The configuration's pull-request settings (etrn_server, etrn_domains): every
 * problem appended to errors as "file: message\n"; their count.  Called by
 * config_load.
 */
int etrn_config_check(const struct config *c, const char *path, struct buf *errors);

#endif
