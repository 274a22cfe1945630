/*
 * smtpd: the SMTP receive process — its context, its sessions and the functions
 * the command handlers share.
 *
 * SECURITY: runs unprivileged (the master binds the listeners and drops
 * privileges before this code runs).  Trusts nothing from the network; trusts
 * the queue process only for the descriptor it hands over.  All state lives in
 * struct smtpd and struct session: no globals.
 */
#ifndef TSUBAME_SMTPD_H
#define TSUBAME_SMTPD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "conf/config.h"
#include "ipc/ipc.h"
#include "auth/sasl.h"
#include "local/resolve.h"
#include "policy/relay.h"
#include "queue/qid.h"
#include "smtp/command.h"
#include "smtp/dot.h"
#include "util/buf.h"

struct event_base;
struct event;
struct bufferevent;
struct session;
struct dns;
struct dnsbl_check;
struct elsewhere_tables;
struct verifier;
struct rcpt_wait;
struct atrn_splice;
typedef struct ssl_ctx_st SSL_CTX;

/* Recent AUTH failures of one client address (R3: "limited per client address"). */
struct auth_failures {
	char ip[64];
	unsigned count;
	long long since;
};
#define AUTH_FAILURE_SLOTS 1024

struct listener {
	int fd;
	struct event *ev;
	struct smtpd *sd;
	struct listen_addr addr;
	int submission;           /* AUTH required before MAIL */
	int odmr;                 /* E6: odmr_listen, AUTH and ATRN only (cmd_atrn.c) */
};

struct smtpd {
	struct event_base *base;
	struct config *cfg;
	struct local_tables *tables;
	struct relay_rules *relay;
	struct secret_table *secrets;
	char *received_template;      /* template text */
	SSL_CTX *tls;                 /* NULL when TLS is not configured */
	struct dns *dns;              /* NULL when no DNSBL is configured */
	struct elsewhere_tables *elsewhere; /* E1/E2/E7: relay domains, peers (rcpt_elsewhere.h) */
	struct verifier *verifier;    /* recipient probes for them (src/verify/) */
	struct auth_failures auth_fail[AUTH_FAILURE_SLOTS];
	struct ipc_channel queue;
	struct listener *listeners;
	size_t nlisteners;
	TAILQ_HEAD(, session) sessions;
	size_t nsessions;
	struct session **index;       /* by id: every queue reply looks its session up */
	size_t nindex;                /* buckets, a power of two grown with nsessions */
	uint64_t next_id;
	int stopping;
	struct event *ev_stop_deadline;
	struct event *ev_sighup, *ev_sigterm, *ev_sigint;
};

enum session_state {
	SS_COMMAND = 0,  /* reading command lines */
	SS_DATA,         /* reading DATA content through the dot machine */
	SS_BDAT,         /* reading a BDAT chunk */
	SS_WAIT,         /* waiting for the queue, DNS or an AUTH delay; input stays buffered */
	SS_AUTH,         /* reading SASL responses */
	SS_CLOSING       /* final reply queued; close when written */
};

struct txn_rcpt {
	char *orig;
	char *dest;
	char *present;
	char state;      /* RCPT_LOCAL or RCPT_REMOTE */
	unsigned notify; /* RFC 3461 NOTIFY bits */
	char *orcpt;     /* RFC 3461 ORCPT, "" when not given */
};

struct txn {
	struct mailaddr from;
	enum sender_class sclass;
	struct mail_params mp;
	struct txn_rcpt *rcpt;
	size_t nrcpt;
	size_t cap_rcpt;
	unsigned rcpt_attempts;       /* accepted or not: counts toward max_recipients */
	char qid[QID_MAX];
	int qfd;                      /* queue file, -1 until the queue sends it */
	off_t written;                /* bytes of the file written so far */
	off_t data_start;             /* file offset where content begins */
	struct buf wbuf;              /* pending file writes */
	struct dot_reader dot;
	struct header_scan hs;
	uint64_t content_len;         /* content bytes (excluding the Received: header we add) */
	long domain_size_limit;       /* L1: largest max_message_size= among the recipients' domains; 0 = one has none */
	uint64_t bdat_left;           /* bytes of the current BDAT chunk still to read */
	uint64_t bdat_chunk;
	int bdat_last;
	int bdat_started;
	int too_big;
	int write_failed;
	int pending_create;           /* waiting for IPC_Q_CREATE_OK: what to do then */
};

struct session {
	TAILQ_ENTRY(session) entry;
	struct session *hnext;        /* next in its sd->index bucket */
	struct smtpd *sd;
	uint64_t id;
	int fd;
	struct bufferevent *bev;
	char client_addr[64];
	char client_port[8];
	char local_addr[64];
	char local_port[8];
	char hostname[256];           /* greeting/EHLO name: hostname= of the virtual host on local_addr, else the global */
	char *helo;                   /* NULL until HELO/EHLO */
	int esmtp;
	enum session_state state;
	struct txn *txn;              /* NULL outside a transaction */
	unsigned errors;
	int skipping;                 /* discarding the rest of an over-long line */
	uint64_t discard;             /* bytes of a refused BDAT chunk still to skip */
	int quit_after_reply;
	unsigned counts[VERB_COUNT];
	unsigned messages;
	int submission;               /* accepted on a submission listener */
	int tls;                      /* TLS active (STARTTLS done or implicit) */
	int implicit_tls;
	char tls_info[160];           /* protocol and cipher, for logs and Received: */
	char *auth_id;                /* authenticated user@domain, NULL when not */
	unsigned auth_failures;
	struct sasl sasl;
	struct event *auth_timer;     /* delays a failed AUTH's reply */
	int auth_close;               /* close after the delayed 535 */
	struct dnsbl_check *dnsbl;    /* greeting waits for it */
	struct rcpt_wait *rcpt_wait;  /* a RCPT waits for a recipient probe (rcpt_elsewhere.c) */
	int blocked;                  /* DNSBL listed: only QUIT is served */
	int waiting_underlying;       /* closing: waiting for the plain layer under TLS to drain */
	struct event *ev_destroy;     /* deferred free (schedule_destroy) */
	char etrn_node[260];          /* ETRN waiting for the queue: the node as answered; "" otherwise */
	int odmr;                     /* E6: accepted on an odmr_listen listener */
	struct atrn_splice *atrn;     /* E6: ATRN waiting for the queue or reversed (cmd_atrn.c); NULL otherwise */
};


/* session.c */
void session_start(struct smtpd *sd, int fd, const struct sockaddr *sa, socklen_t salen, const struct listener *l);
void session_reply(struct session *s, int code, const char *enh, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* A multi-line reply: lines separated by '\n' in text; the code/enh prefix on each. */
void session_reply_lines(struct session *s, int code, const char *enh, const char *text);
void session_close_after_reply(struct session *s);
void session_resume(struct session *s);
void session_txn_free(struct session *s);
struct session *session_find(struct smtpd *sd, uint64_t id);
void session_shutdown_idle(struct smtpd *sd);
void session_destroy(struct session *s);

/* commands.c: dispatch one complete command line */
void commands_dispatch(struct session *s, char *line, size_t len);
/* commands.c: 1 when addr names the authenticated user (host aliases count as the domain) */
int session_is_auth_user(const struct session *s, const char *addr);
/* commands.c: add an accepted recipient to the transaction (once per destination) */
void smtpd_add_rcpt(struct txn *t, const char *orig, const struct resolved *r, const struct rcpt_params *rp,
    int forward_all);
/* cmd_auth.c */
void cmd_auth(struct session *s, const char *args);
void auth_continue(struct session *s, const char *line);
int auth_offered(const struct session *s);
/* cmd_etrn.c: ETRN (RFC 1985) and the queue's answer (IPC_Q_ETRN_RESULT, after the session id) */
void cmd_etrn(struct session *s, const char *args);
void etrn_queue_answered(struct smtpd *sd, uint64_t id, struct ipc_msg *m);
/* cmd_atrn.c: ATRN (RFC 2645) on odmr_listen, the queue's answer (IPC_Q_ATRN_RESULT), the splice */
void cmd_atrn(struct session *s, const char *args);
void atrn_queue_answered(struct smtpd *sd, uint64_t id, struct ipc_msg *m);
void atrn_session_free(struct session *s);
/* cmd_starttls.c */
void cmd_starttls(struct session *s, const char *args);
/* session.c: the session's own bufferevent callbacks again (after the ATRN splice) */
void session_restore_callbacks(struct session *s);
/* session.c: replace the session's bufferevent (STARTTLS) */
void session_set_bev(struct session *s, struct bufferevent *bev);
/* header.c: the address of the From: header in a header section; 0 or -1 */
int header_from_address(const char *p, size_t len, char *out, size_t outsz);

/* cmd_data.c: DATA / BDAT content and the commit */
void data_feed(struct session *s);
void bdat_feed(struct session *s);
void data_queue_created(struct session *s, const char *qid, int fd);
void data_queue_create_failed(struct session *s);
void data_queue_committed(struct session *s, int ok, const char *why);

/* received.c */
char *received_load_template(const char *path, struct buf *errors);
void received_render(struct buf *out, const char *tmpl, const struct session *s, const char *qid,
    const char *protocol);

#endif
