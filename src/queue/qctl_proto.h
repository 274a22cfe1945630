/*
 * qctl_proto: the queue manager's control protocol, spoken over the UNIX
 * socket <work_dir>/run/queue.ctl between tsubamectl (client) and the queue
 * process (server, queue_ctl.c).  Both sides use this one parser.
 *
 * One request per connection, one line, LF-terminated, at most QCTL_LINE_MAX
 * bytes including the LF; tokens separated by exactly one space:
 *
 *   flush [DOMAIN]        every pending recipient (of DOMAIN) is due now
 *   retry QID             the pending recipients of one message are due now
 *   hold QID | hold ALL   stop scheduling; the file moves to queue/hold/
 *   release QID | ALL     back from queue/hold/, due now
 *   link up|down|status   dial-up link state (src/queue/link.c, docs/dialup.md)
 *
 * Verbs are lower case, "ALL" upper case (as postsuper wants it: a typo never
 * means everything).  QID must have the shape of a qid (qid_valid), DOMAIN
 * that of a domain (qctl_domain_valid).  Anything else — CR, NUL, control
 * bytes, a second line, extra or missing arguments, double spaces — is an
 * error, never a guess.
 *
 * The answer is one line too, at most QCTL_REPLY_MAX bytes:
 *
 *   ok [KEY=NUMBER]...     KEY one of the counters of struct qctl_reply
 *   error CODE TEXT        CODE [a-z-]+, TEXT printable ASCII
 *
 * Trusts nothing: the server parses what any local client sends, the client
 * parses what the socket answers.  tests/unit/test_qctl_proto.c,
 * tests/fuzz/fuzz_qctl.c.
 */
#ifndef TSUBAME_QCTL_PROTO_H
#define TSUBAME_QCTL_PROTO_H

#include <stddef.h>

#include "queue/qid.h"

#define QCTL_DIR "run"              /* under work_dir; made by the master, owned by the mail user */
#define QCTL_SOCKET "queue.ctl"     /* in QCTL_DIR */
#define QCTL_LINE_MAX 512           /* a request, LF included */
#define QCTL_REPLY_MAX 1024         /* an answer, LF included */
#define QCTL_DOMAIN_MAX 253         /* RFC 1035 2.3.4, without the trailing dot */
#define QCTL_COUNT_MAX 999999999999LL

enum qctl_cmd { QCTL_FLUSH = 1, QCTL_RETRY, QCTL_HOLD, QCTL_RELEASE, QCTL_LINK };
#define QCTL_CMD_LAST QCTL_LINK

/* link's argument */
enum qctl_link_op { QCTL_LINK_UP = 1, QCTL_LINK_DOWN, QCTL_LINK_STATUS };

struct qctl_request {
	enum qctl_cmd cmd;
	int all;                              /* hold ALL / release ALL */
	char qid[QID_MAX];                    /* retry, hold, release (not ALL) */
	char domain[QCTL_DOMAIN_MAX + 1];     /* flush: "" = every domain; no trailing dot */
	enum qctl_link_op link;               /* link: up, down or status (0 for other commands) */
};

/* The answer's counters; -1 = not in the answer. */
enum qctl_counter {
	QCTL_MESSAGES,    /* messages scheduled now (flush, retry, release) */
	QCTL_RECIPIENTS,  /* recipients scheduled now */
	QCTL_HELD,        /* messages moved to hold/ */
	QCTL_PENDING,     /* holds that wait for deliveries in flight */
	QCTL_ALREADY,     /* already held */
	QCTL_RELEASED,    /* messages moved out of hold/ */
	QCTL_CANCELLED,   /* pending holds cancelled by release */
	/* link (src/queue/link.c) */
	QCTL_DIALUP,      /* 1: dialup = yes */
	QCTL_UP,          /* 1: the link is up */
	QCTL_SINCE,       /* unix time of the last change (0: never changed) */
	QCTL_BY,          /* who changed it last: enum link_by */
	QCTL_WINDOW,      /* seconds left of the hold-open window (0: none open) */
	QCTL_RECEIVED,    /* messages received during the (last) window */
	QCTL_DELIVERED,   /* recipients delivered to local mailboxes during it */
	QCTL_SENT,        /* remote recipients sent during it */
	QCTL_WAITING,     /* remote recipients waiting in the queue now */
	QCTL_ETRN_OK,     /* pull requests (ETRN arguments) accepted since the link came up */
	QCTL_ETRN_FAILED, /* ... refused or given up on */
	QCTL_ETRN_PENDING,/* ... still to be sent or retried */
	QCTL_CHECK,       /* link_check_command's last answer: 1 up, 0 down (absent: none yet) */
	QCTL_NCOUNTERS
};

struct qctl_reply {
	int ok;
	char code[32];                        /* error: the code */
	char text[QCTL_REPLY_MAX];            /* error: the text */
	long long count[QCTL_NCOUNTERS];
};

/* Parse one request line (len bytes, the LF included).  0, or -1 with a reason in why. */
int qctl_request_parse(const char *line, size_t len, struct qctl_request *r, char *why, size_t whylen);
/* The request as a line (LF included, NUL-terminated); its length, or -1 when out is too small. */
int qctl_request_format(const struct qctl_request *r, char *out, size_t outlen);
/* A domain name as flush accepts it: LDH or UTF-8 labels of 1-63 bytes, or an address literal. */
int qctl_domain_valid(const char *s, size_t len);
const char *qctl_cmd_name(enum qctl_cmd c);
const char *qctl_link_op_name(enum qctl_link_op o);

const char *qctl_counter_name(enum qctl_counter c);
/* Parse an answer (the whole of what was read, LF included).  0 or -1. */
int qctl_reply_parse(const char *buf, size_t len, struct qctl_reply *r);
/* "ok" + the counters that are >= 0, or "error CODE TEXT" (TEXT cleaned and cut to fit). */
int qctl_reply_format(const struct qctl_reply *r, char *out, size_t outlen);
/* An empty reply: ok = 1, every counter -1. */
void qctl_reply_init(struct qctl_reply *r);

#endif
