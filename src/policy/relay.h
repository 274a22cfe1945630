/*
 * relay: the relay rules file (R4, the manual's effect.dat) and the decision it
 * makes for one recipient — tables I–V of seed 003 "中継の制限", cell for cell.
 *
 * File format: one rule per line, "PATTERN [ACTION]" separated by one or more
 * spaces (the manual: <SP>, TAB not allowed; we accept TAB too and say so in
 * docs), '#' at the start of a line that is not one of the specials is a comment,
 * blank lines ignored.
 *   PATTERN  IPv4 with '*' octets (10.*.*.*, 192.168.1.*), CIDR (192.168.1.0/28,
 *            also IPv6 CIDR / plain IPv6), a plain IPv4 address; a sender domain
 *            (abc.co.jp, matching the envelope sender's domain, case-insensitive);
 *            a sender address (abc@abc.co.jp); the specials #blank #<> #number
 *            #nodomain #host.
 *   ACTION   true (the default when omitted) | false | default | norelay |
 *            norelay,0 | norelay,2 | only
 * Rules are tried in order; the first that matches decides.  "only" ends the
 * list: lines after it are ignored; a client/sender it does not match gets the
 * "only, not listed" table (V, second half) instead of table I.
 */
#ifndef TSUBAME_RELAY_H
#define TSUBAME_RELAY_H

#include <stddef.h>

#include "util/buf.h"

enum relay_action {
	RELAY_TRUE = 0, RELAY_FALSE, RELAY_DEFAULT, RELAY_NORELAY, RELAY_NORELAY0, RELAY_NORELAY2, RELAY_ONLY
};

enum relay_pattern {
	RELAY_PAT_IP = 0,      /* IPv4 wildcard, IPv4/IPv6 address or CIDR */
	RELAY_PAT_DOMAIN,      /* sender domain */
	RELAY_PAT_ADDRESS,     /* sender address */
	RELAY_PAT_BLANK,       /* #blank */
	RELAY_PAT_NULL,        /* #<> */
	RELAY_PAT_NUMBER,      /* #number: sender domain is an IP (literal or dotted digits) */
	RELAY_PAT_NODOMAIN,    /* #nodomain: sender without '@domain' */
	RELAY_PAT_HOST         /* #host: sender domain is a bare host name (no dot) */
};

struct relay_rule {
	enum relay_pattern kind;
	enum relay_action action;
	char *text;            /* the pattern as written */
	int line;
	/* private match data */
	unsigned char addr[16];
	int family;            /* 4 or 6 for IP patterns */
	int prefix;            /* CIDR prefix length */
	unsigned char wild[4]; /* IPv4 octets that are '*' */
};

struct relay_rules {
	struct relay_rule *v;
	size_t n;
};

/* A missing file is an empty rule list (table I for everyone).  Errors "file:line: msg\n"; returns their count. */
int relay_load(struct relay_rules *r, const char *path, struct buf *errors);
/* Same from memory (fuzzer, tests); name is used in error messages. */
int relay_parse(struct relay_rules *r, const char *text, size_t len, const char *name, struct buf *errors);
void relay_free(struct relay_rules *r);

enum sender_class { SENDER_LOCAL_ACCOUNT = 0, SENDER_LOCAL_NO_ACCOUNT, SENDER_EXTERNAL };
enum rcpt_class { RCPT_CLASS_LOCAL_ACCOUNT = 0, RCPT_CLASS_LOCAL_NO_ACCOUNT, RCPT_CLASS_EXTERNAL };

struct relay_query {
	const char *client_ip;      /* numeric, IPv4 or IPv6 (IPv4-mapped IPv6 is treated as IPv4) */
	const char *sender;         /* envelope sender "local@domain", "" for <> */
	int sender_null;            /* MAIL FROM:<> */
	enum sender_class sclass;
	enum rcpt_class rclass;
	int authenticated;          /* SMTP AUTH succeeded in this session */
};

struct relay_decision {
	int allow;                  /* 1 = accept this recipient */
	const struct relay_rule *rule; /* the rule that decided, NULL = built-in default (table I) */
	const char *table;          /* "I", "II", "III", "IV", "V", "V-other" */
	int auth_waived;            /* norelay,2 matched: the security level's AUTH demand does not apply */
	const char *reason;         /* short English reason when !allow, for logs and replies */
};

/*
 * Decide one recipient.  Authentication (R3 note ※1): an authenticated session may
 * relay unless the deciding rule is false, norelay,0 or norelay,2; a local
 * recipient without an account is never accepted.
 */
void relay_decide(const struct relay_rules *r, const struct relay_query *q, struct relay_decision *d);

/*
 * Classification for relay_query, the one way smtpd and `tsubamectl relay check`
 * both use.  Sender: <>, a domain that is not local, or an address literal =
 * external; a local domain (or host alias, compared exactly) = local with
 * account when accounts_find knows the local part (an alias is not an account),
 * else local without account.  Recipient (local_resolve): not local = external,
 * unknown user = local without account, an account or an alias = local with
 * account (alias expansion errors are the caller's to report, 451).
 */
struct local_tables;
struct mailaddr;
enum sender_class relay_sender_class(const struct local_tables *t, const struct mailaddr *from);
enum rcpt_class relay_rcpt_class(const struct local_tables *t, const struct mailaddr *rcpt);

/* The first rule matching client ip / sender (for MAIL-time checks); NULL when none. */
const struct relay_rule *relay_match(const struct relay_rules *r, const char *client_ip, const char *sender,
    int sender_null);

/*
 * For a later filter (F1 units digit): add "IP false" as the FIRST line of the
 * file (so it wins over everything, including lines after an "only"), atomically
 * (temporary file, fsync, rename).  0, or -1 with errno.
 */
int relay_block_ip(const char *path, const char *ip);

const char *relay_action_name(enum relay_action a);

#endif
