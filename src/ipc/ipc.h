/*
 * ipc: typed messages between the daemon's processes, over SOCK_SEQPACKET
 * socketpairs, with an optional file descriptor passed alongside (SCM_RIGHTS).
 *
 * Each datagram is one message: {u32 type, u32 length} then the payload built with
 * ipc_put_*.  A reader takes fields with ipc_get_* and must finish with ipc_end(),
 * which fails unless every byte was consumed and no read ran past the end (as
 * OpenSMTPD's mproc does): a peer that sends garbage is detected, never trusted.
 * Sends never block: a message the socket cannot take now is queued and flushed
 * when it becomes writable.
 */
#ifndef TSUBAME_IPC_H
#define TSUBAME_IPC_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

struct event_base;
struct event;

#define IPC_MAX_MESSAGE (60 * 1024)

enum ipc_type {
	/* smtpd -> queue */
	IPC_Q_CREATE = 1,    /* u64 session: a new incoming file please */
	IPC_Q_COMMIT,        /* u64 session, str qid: make it durable */
	IPC_Q_ABORT,         /* str qid: drop the incoming file */
	/* queue -> smtpd */
	IPC_Q_CREATE_OK,     /* u64 session, str qid, + fd */
	IPC_Q_CREATE_FAIL,   /* u64 session */
	IPC_Q_COMMIT_OK,     /* u64 session, str qid */
	IPC_Q_COMMIT_FAIL,   /* u64 session, str qid, str why */
	/* queue -> deliver */
	IPC_D_DELIVER,       /* str qid, u64 off, u64 len, str sender, u32 flags (DELIVER_REQ_*), str domain,
	                        str envid, u32 ret, str auth account,
	                        u32 n, n x (u32 idx, str dest, str present, str orig, u32 notify, str orcpt), + fd */
	/* deliver -> queue */
	IPC_D_RESULT,        /* str qid, u32 idx, u32 status (enum deliver_status), u32 retry class, str enh, str text,
	                        str remote MTA ("" for local), u32 reply code, u32 DSN passed on to the peer */
	IPC_D_DONE,          /* str qid, u32 remote, str domain (the request's; "" for local ones) */
	/* smtpd -> queue, and the answer (E3, queue/held.c) */
	IPC_Q_ETRN,          /* u64 session, u32 node kind (enum hold_node_kind), str name, str client ip, str auth id */
	IPC_Q_ETRN_RESULT,   /* u64 session, u32 status (enum etrn_status), u64 messages, str reason */
	/* queue -> deliver: a pull request (E4, src/queue/link.c -> src/deliver/etrn_job.c) */
	IPC_D_ETRN,          /* u32 id, str server host[:port], u32 tls (enum etrn_tls), u32 n, n x str argument */
	/* deliver -> queue */
	IPC_D_ETRN_RESULT,   /* u32 id, u32 ran, u32 permanent, str detail, str peer, u32 offered, u32 tls,
	                        u32 n, n x (u32 reply code (0 = none), str reply text) */
	/* smtpd -> queue, and the answer (E6 ATRN, RFC 2645; smtp/cmd_atrn.c, queue/atrn.c) */
	IPC_Q_ATRN,          /* u64 session, str client ip, str auth id, u32 n, n x str domain, + fd (the splice's end) */
	IPC_Q_ATRN_RESULT,   /* u64 session, u32 status (enum atrn_status), u64 messages, str reason */
	/* queue -> deliver: the reversed connection (deliver/atrn_relay.c) */
	IPC_D_ATRN_OPEN,     /* u32 atrn id, str log tag, + fd: the connection to the customer, already reversed */
	IPC_D_ATRN_END,      /* u32 atrn id: no more messages; QUIT when the last one is done */
};

/* What the queue answers an ATRN (IPC_Q_ATRN_RESULT); smtpd words the replies. */
enum atrn_status {
	ATRN_STATUS_OK = 0,     /* 250 OK now reversing the connection */
	ATRN_STATUS_NOMAIL,     /* 453 You have no mail */
	ATRN_STATUS_REFUSED,    /* 450 ATRN request refused: a domain not held, or not this account's */
	ATRN_STATUS_UNABLE      /* 451 Unable to process ATRN request now */
};

enum deliver_status { DELIVER_OK = 0, DELIVER_TEMPFAIL = 1, DELIVER_PERMFAIL = 2 };

/* IPC_D_DELIVER flags */
#define DELIVER_REQ_REMOTE 0x1    /* recipients of one remote domain: SMTP, not Maildir */
#define DELIVER_REQ_8BIT 0x2      /* BODY=8BITMIME */
#define DELIVER_REQ_SMTPUTF8 0x4
#define DELIVER_REQ_ATRN 0x8      /* E6: over the ATRN connection whose u32 id follows the recipients */

struct ipc_msg {
	uint32_t type;
	const unsigned char *p;
	size_t len;
	size_t pos;
	int fd;      /* received descriptor or -1; the handler owns it */
	int bad;
};

struct ipc_channel;
typedef void (*ipc_msg_fn)(struct ipc_channel *ch, struct ipc_msg *m, void *arg);
typedef void (*ipc_close_fn)(struct ipc_channel *ch, void *arg);

struct ipc_out;

struct ipc_channel {
	int fd;
	const char *peer;            /* for logs */
	struct event *ev_read;
	struct event *ev_write;
	struct ipc_out *out_head, *out_tail;
	size_t out_count;
	ipc_msg_fn on_msg;
	ipc_close_fn on_close;
	void (*on_batch_end)(struct ipc_channel *ch, void *arg); /* after a read pass: group commit hook */
	void *arg;
	int closed;
};

void ipc_channel_init(struct ipc_channel *ch, struct event_base *base, int fd, const char *peer,
    ipc_msg_fn on_msg, ipc_close_fn on_close, void *arg);
void ipc_channel_close(struct ipc_channel *ch);
/* Queue a message (payload may be NULL); fd >= 0 is passed and stays owned by the caller. */
void ipc_send(struct ipc_channel *ch, uint32_t type, const struct buf *payload, int fd);

void ipc_put_u32(struct buf *b, uint32_t v);
void ipc_put_u64(struct buf *b, uint64_t v);
void ipc_put_str(struct buf *b, const char *s);

uint32_t ipc_get_u32(struct ipc_msg *m);
uint64_t ipc_get_u64(struct ipc_msg *m);
/* Points into the message (NUL-terminated, valid during the handler); "" when bad. */
const char *ipc_get_str(struct ipc_msg *m);
/* 0 when the whole message was consumed exactly; -1 otherwise (and logs it). */
int ipc_end(struct ipc_msg *m);

#endif
