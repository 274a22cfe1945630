/*
 * remote: delivery of one message to the recipients of one remote domain —
 * routing (route.c), MX or host resolution (mx.c, hosts.c), the SMTP client
 * (smtp_client.c) and the seed 002 decisions on every failure.
 *
 * SECURITY: runs in the unprivileged deliver process; every byte from DNS and
 * from peers is handled by the modules above, which bound and check it.  The
 * queue file comes as a descriptor and is only read.
 */
#ifndef TSUBAME_REMOTE_H
#define TSUBAME_REMOTE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf/config.h"
#include "ipc/ipc.h"
#include "util/buf.h"

struct event_base;
struct remote;

/* Why a temporary failure happened: the manual's three retry classes (D2). */
enum retry_class {
	RETRY_NONE = 0,
	RETRY_REFUSED,   /* the peer answered 4xx: counted retries (retry_refused_count) */
	RETRY_LINE,      /* the session broke or timed out: retry_line_period */
	RETRY_NOANSWER   /* no host answered, DNS failed: retry_noanswer_period */
};

#define REMOTE_FLAG_8BIT 0x1
#define REMOTE_FLAG_SMTPUTF8 0x2

struct remote_rcpt {
	uint32_t idx;
	char *addr;
	char *dsn_params;  /* "NOTIFY=... ORCPT=..." for peers that offer DSN, or NULL (owned) */
	/* results */
	enum deliver_status status;
	enum retry_class cls;
	char enh[16];
	char text[512];
	char relay[300];   /* host[ip]:port that decided, or "none" */
	int code;          /* the peer's reply code that decided, 0 when none */
	int dsn_passed;    /* delivered to a peer that offers DSN: it reports success itself */
	const char *conn;  /* the session that decided: "new", "reused" (connection cache), NULL: none */
	int final;         /* decided for this attempt */
};

/* domain: as given to remote_deliver. */
typedef void (*remote_done_cb)(void *arg, const char *qid, const char *domain, struct remote_rcpt *rcpts, size_t n);

/*
 * tsubamed -n: load the routing settings and tables (gateways, hosts, per-account
 * smart-host AUTH) of the configuration at path.  0, or 1 with the problems in
 * errors (file:line).
 */
int remote_check(const char *path, struct buf *errors);

/*
 * NULL with reasons in errors when the configuration at cfg->path, the gateway
 * or hosts table, or the resolver cannot be loaded.  The remote keeps its own
 * copy of the configuration and the tables (see remote_reload).
 */
struct remote *remote_new(struct event_base *base, const struct config *cfg, struct buf *errors);
void remote_free(struct remote *r);

/* The message-level facts of a delivery besides its content. */
struct remote_msg {
	const char *sender;
	const char *dsn_params;   /* "RET=... ENVID=..." for peers that offer DSN, or "" */
	const char *auth_account; /* the account that submitted it (per-account smart-host AUTH), or "" */
	unsigned flags;           /* REMOTE_FLAG_* */
};

/*
 * SIGHUP: read the configuration and the gateway and hosts tables again.  New
 * jobs use them; jobs in flight finish with the ones they started with.  The
 * MX cache is emptied.  -1 (logged as event=reload_failed with file:line):
 * something did not parse, the current ones stay.
 */
int remote_reload(struct remote *r);

/*
 * Shutdown: drop every job (the queue repeats them) and QUIT the idle cached
 * connections.  Returns how many connections are still closing; drained(arg)
 * runs once that reaches 0 (not when it is 0 already).  remote_free after.
 */
size_t remote_stop(struct remote *r, void (*drained)(void *arg), void *arg);

/*
 * Deliver fd's content [off, off+len) from msg->sender to rcpts (all in domain).
 * Takes ownership of fd and of rcpts (freed after cb).  cb runs once, from the
 * event loop, with every recipient decided (DELIVER_OK, TEMPFAIL with a class,
 * or PERMFAIL).
 */
void remote_deliver(struct remote *r, const char *qid, int fd, off_t off, off_t len, const struct remote_msg *msg,
    const char *domain, struct remote_rcpt *rcpts, size_t n, remote_done_cb cb, void *arg);

/* Jobs still running (for shutdown). */
size_t remote_active(const struct remote *r);

#endif
