/*
 * holdtab: the hold table — domains whose mail we keep for a dial-up customer
 * until the customer asks for it with ETRN (SPEC E3; RFC 1985; seeds 000 and
 * 004 "dial-up", seed 001 "pull requests").  docs/etrn.md is the how-to,
 * docs/tables.md the format.
 *
 * File format: one held domain per line, then optional key=value settings in
 * any order, each at most once; '#' starts a comment (anywhere on a line):
 *
 *   dialup.test     allow=127.0.0.1,192.0.2.0/24,joe@dialup.test  route=192.0.2.10:25  queue=dialup
 *   @corp.test      allow=10.*.*.*   queue=corp
 *   *.shop.test     allow=*
 *
 * The domain column:
 *   name       exactly that domain;
 *   *.name     every domain below name, never name itself (as in the hosts table);
 *   @name      name and every domain below it (RFC 1985's "@" option).
 * A domain held by an exact entry takes it; otherwise the entry with the
 * longest name that covers it.  One name may appear once as covering itself
 * and once as covering its subdomains ("name" plus "*.name" = "@name").
 *
 * Settings:
 *   allow=LIST   who may release the entry's mail with ETRN, comma-separated:
 *                an IP pattern as in the relay rules (192.0.2.7, 10.*.*.*,
 *                192.0.2.0/24, 2001:db8::/32), an account user@domain (the
 *                session authenticated as it), or * (any client).  Without
 *                allow= the configuration's etrn_clients list decides.
 *   route=HOST[:PORT]   where released mail goes: a host name, an IPv4
 *                address or [IPv6], port 1-65535 (default 25).  Without it:
 *                the domain's own route (gateway table, hosts table, MX),
 *                never the smart host.
 *   queue=NAME   a queue name for "ETRN #NAME" (letters, digits, '.', '_', '-';
 *                at most 64; case is ignored); several entries may share one.
 *
 * Trust: the file is the administrator's but is parsed as untrusted input
 * (bounded lines through tablefile, errors "file:line: message"); lookups take
 * names from the network (RCPT domains, ETRN arguments) and only compare them.
 * Also here: the ETRN argument parser (RFC 1985 section 5), shared by smtpd and
 * the tests, and the "is this route us?" check used before releasing mail.
 */
#ifndef TSUBAME_HOLDTAB_H
#define TSUBAME_HOLDTAB_H

#include <stddef.h>

#include "policy/relay.h"
#include "util/buf.h"

struct config;

#define HOLD_NAME_MAX 253      /* a domain, RFC 1035 2.3.4, without the trailing dot */
#define HOLD_QUEUE_MAX 64      /* a queue name */

/* Who may release: the allow= list of an entry, or etrn_clients. */
struct hold_access {
	int any;                   /* "*" */
	struct relay_rules ips;    /* IP patterns only, parsed by the relay rules' parser */
	char **accounts;           /* lower case user@domain */
	size_t naccounts;
};

struct hold_entry {
	char *name;                /* lower case, no "*." / "@", no trailing dot */
	int self;                  /* covers name itself */
	int below;                 /* covers every domain below name */
	char *queue;               /* lower case queue= name, NULL when none */
	char *route_host;          /* route= host (IPv6 without brackets), NULL when none */
	unsigned route_port;       /* 25 unless given */
	int has_allow;             /* allow= given (else etrn_clients applies) */
	struct hold_access allow;
	int line;
};

struct hold_table {
	struct hold_entry *v;
	size_t n;
	struct hold_access defaults;   /* etrn_clients */
};

/*
 * Load the table at path; defaults is the etrn_clients list (may be NULL or
 * empty: nobody).  A missing file is an empty table.  Errors are appended as
 * "file:line: message\n" (etrn_clients errors as "etrn_clients: ..."); returns
 * their count.  Good lines are loaded even when others are bad.
 */
int hold_load(struct hold_table *t, const char *path, char *const *defaults, size_t ndefaults, struct buf *errors);
/* The same from memory (tests, the fuzzer); name appears in error messages. */
int hold_parse(struct hold_table *t, const char *text, size_t len, const char *name, char *const *defaults,
    size_t ndefaults, struct buf *errors);
void hold_free(struct hold_table *t);

/* The entry that holds domain (case and one trailing dot ignored), or NULL.  t may be NULL. */
const struct hold_entry *hold_lookup(const struct hold_table *t, const char *domain);
/* The entry holding the domain of address addr ("local@domain"), or NULL. */
const struct hold_entry *hold_lookup_addr(const struct hold_table *t, const char *addr);

/*
 * May a client at client_ip, authenticated as auth_id (NULL or "" when not),
 * release entry e?  Its allow= list, else the table's defaults.
 */
int hold_may_release(const struct hold_table *t, const struct hold_entry *e, const char *client_ip,
    const char *auth_id);
/*
 * E6 ATRN (docs/atrn.md): may the account auth_id collect entry e's mail over
 * its own connection?  Only an account named in the entry's allow= (else in
 * etrn_clients): never "*" nor an IP pattern, since the mail goes to whoever
 * asks, not to the entry's route.
 */
int hold_may_collect(const struct hold_table *t, const struct hold_entry *e, const char *auth_id);
/* The same for the defaults (etrn_clients) alone: ETRN of a domain that is not held. */
int hold_access_allows(const struct hold_access *a, const char *client_ip, const char *auth_id);

/* ---- ETRN nodes (RFC 1985 section 5) --------------------------------------- */

enum hold_node_kind {
	HOLD_NODE_DOMAIN = 1,      /* "ETRN example.test": that domain */
	HOLD_NODE_SUBDOMAINS,      /* "ETRN @example.test": the domain and every domain below it */
	HOLD_NODE_QUEUE            /* "ETRN #name": the entries with queue=name */
};

struct hold_node {
	enum hold_node_kind kind;
	char name[HOLD_NAME_MAX + 1];  /* lower case, no option character, no trailing dot */
};

/*
 * Parse the argument of ETRN (the text after "ETRN ").  RFC 1985 5:
 *   etrn = "ETRN" SP [ option-character ] node-name; option-character "@" / "#".
 * Returns 0, or the reply code: 500 when the argument is missing (the RFC's
 * example answers a bare ETRN "500 Syntax Error"), 501 when it is not a
 * dotted domain name (an unqualified "localname" too, as the RFC's example),
 * not a queue name, has more than one word, spaces, or anything else.
 */
int hold_node_parse(const char *args, struct hold_node *n);

/* Does the node select domain (a recipient domain, case and trailing dot ignored)?  Not for QUEUE nodes. */
int hold_node_covers(const struct hold_node *n, const char *domain);
/*
 * Is entry e (of table t) concerned by the node: it holds the node's domain,
 * or (@) a domain below it, or (#) has the node's queue name?
 */
int hold_node_concerns(const struct hold_table *t, const struct hold_node *n, const struct hold_entry *e);
/* Does a recipient domain held by entry e belong to the node's release? */
int hold_node_selects(const struct hold_node *n, const struct hold_entry *e, const char *domain);

/* ---- "never to ourselves" ------------------------------------------------- */

/*
 * Is host (a name or an address, may be NULL) with address ip (may be NULL or
 * "") at port this server?  Yes when port is one of our listening ports
 * (listen, submission_listen) and the name is our hostname, or ip is the
 * listener's address, or any address of this machine for a '*' listener
 * (loopback 127.0.0.0/8 and ::1 included).
 */
int hold_is_self(const struct config *cfg, const char *host, const char *ip, unsigned port);

/* ---- what the queue answers an ETRN (IPC_Q_ETRN_RESULT) -------------------- */

enum etrn_status {
	ETRN_QUEUED = 0,   /* 250: the waiting mail of a domain that is not held goes now (etrn_clients) */
	ETRN_NOTHING,      /* 251: no messages waiting */
	ETRN_PENDING,      /* 252: nothing new to release; earlier released mail is on its way */
	ETRN_RELEASED,     /* 253: count messages released now */
	ETRN_UNABLE,       /* 458 4.3.0: not held here (and not a flush the client may ask for), or the queue cannot */
	ETRN_LOOP,         /* 458 4.4.6: its route= points at this server */
	ETRN_DENIED        /* 459 4.7.1: held, but this client may not release it */
};

#endif
