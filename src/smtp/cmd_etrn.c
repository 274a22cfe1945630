/*
 * cmd_etrn: the ETRN command (RFC 1985, SPEC E3): a dial-up customer's
 * server asks us to start delivering the mail we hold for it.  The mail
 * goes out on a new connection to the customer's own host (the hold table's
 * route, its hosts table entry or MX — never back to us), not down this
 * session: that is what makes ETRN safe where TURN is not (seed 001; TURN is
 * refused in commands.c).
 *
 * Quick checks here (RFC 1985 section 5 syntax, sequence, a per-session
 * limit), then the queue decides (IPC_Q_ETRN; queue/held.c) while the
 * session waits in SS_WAIT, bounded by command_timeout like every other wait
 * on the queue.  Replies (docs/smtp-replies.md, docs/etrn.md):
 *   250 2.0.0 OK, queuing for node <x> started            (a domain not held: a flush, etrn_clients)
 *   251 2.0.0 OK, no messages waiting for node <x>
 *   252 2.0.0 OK, pending messages for node <x> started    (released earlier, on their way)
 *   253 2.0.0 OK, <n> pending messages for node <x> started
 *   458 4.3.0 Unable to queue messages for node <x>        (not held here; queue stopping; too many ETRNs)
 *   458 4.4.6 Unable to queue messages for node <x>: its route points at this server
 *   459 4.7.1 Node <x> not allowed: <reason>
 *   500 5.5.2 Syntax Error                                 (no argument)
 *   501 5.5.4 Syntax Error in Parameters
 *   503 5.5.1 Error: MAIL transaction in progress
 * Every 4xx/5xx counts toward max_errors, so a client probing names is cut off.
 *
 * SECURITY: the argument is network input, parsed by hold_node_parse() to the
 * RFC's three forms only; the queue parses it again.  Who may release what is
 * the queue's decision, from the client address and the authenticated
 * account, never from anything the client claims (HELO, the node name).
 */
#include <stdio.h>
#include <string.h>

#include "policy/holdtab.h"
#include "smtp/smtpd.h"
#include "util/log.h"

/* ETRN commands one session may send (each one is a scan of the queue). */
#define ETRN_MAX_PER_SESSION 16

static void node_text(const struct hold_node *n, char *out, size_t outsz)
{
	snprintf(out, outsz, "%s%s", n->kind == HOLD_NODE_SUBDOMAINS ? "@" : n->kind == HOLD_NODE_QUEUE ? "#" : "",
	    n->name);
}

static void log_etrn(const struct session *s, const char *node, int code, const char *detail)
{
	log_info("session=%llu event=etrn client=%s auth=%s node=%s reply=%d%s%s", (unsigned long long)s->id,
	    s->client_addr, s->auth_id ? lq(s->auth_id) : "-", lq(node), code, detail ? " detail=" : "",
	    detail ? lq(detail) : "");
}

void cmd_etrn(struct session *s, const char *args)
{
	struct hold_node n;
	char text[HOLD_NAME_MAX + 2];
	if (s->txn) {
		/* RFC 1985 starts queues, not transactions: one thing at a time (as Postfix). */
		session_reply(s, 503, "5.5.1", "Error: MAIL transaction in progress");
		return;
	}
	int code = hold_node_parse(args, &n);
	if (code != 0) {
		log_etrn(s, args, code, "syntax");
		if (code == 500)
			session_reply(s, 500, "5.5.2", "Syntax Error");
		else
			session_reply(s, 501, "5.5.4", "Syntax Error in Parameters");
		return;
	}
	node_text(&n, text, sizeof(text));
	if (s->counts[VERB_ETRN] > ETRN_MAX_PER_SESSION) {
		log_etrn(s, text, 458, "too many ETRN commands in this session");
		session_reply(s, 458, "4.3.0", "Unable to queue messages for node %s: too many ETRN commands", text);
		return;
	}
	struct buf p;
	buf_init(&p, 1024);
	ipc_put_u64(&p, s->id);
	ipc_put_u32(&p, (uint32_t)n.kind);
	ipc_put_str(&p, n.name);
	ipc_put_str(&p, s->client_addr);
	ipc_put_str(&p, s->auth_id ? s->auth_id : "");
	ipc_send(&s->sd->queue, IPC_Q_ETRN, &p, -1);
	buf_free(&p);
	snprintf(s->etrn_node, sizeof(s->etrn_node), "%s", text);
	s->state = SS_WAIT;
}

void etrn_queue_answered(struct smtpd *sd, uint64_t id, struct ipc_msg *m)
{
	uint32_t status = ipc_get_u32(m);
	uint64_t count = ipc_get_u64(m);
	const char *reason = ipc_get_str(m);
	if (ipc_end(m) < 0)
		return;
	struct session *s = session_find(sd, id);
	if (!s || s->state != SS_WAIT || !s->etrn_node[0])
		return;   /* gone, or timed out already */
	const char *x = s->etrn_node;
	s->state = SS_COMMAND;
	int code;
	switch ((enum etrn_status)status) {
	case ETRN_QUEUED:
		code = 250;
		session_reply(s, 250, "2.0.0", "OK, queuing for node %s started", x);
		break;
	case ETRN_NOTHING:
		code = 251;
		session_reply(s, 251, "2.0.0", "OK, no messages waiting for node %s", x);
		break;
	case ETRN_PENDING:
		code = 252;
		session_reply(s, 252, "2.0.0", "OK, pending messages for node %s started", x);
		break;
	case ETRN_RELEASED:
		code = 253;
		session_reply(s, 253, "2.0.0", "OK, %llu pending messages for node %s started", (unsigned long long)count, x);
		break;
	case ETRN_LOOP:
		code = 458;
		session_reply(s, 458, "4.4.6", "Unable to queue messages for node %s: %s", x, reason);
		break;
	case ETRN_DENIED:
		code = 459;
		session_reply(s, 459, "4.7.1", "Node %s not allowed: %s", x, reason[0] ? reason : "not allowed");
		break;
	case ETRN_UNABLE:
	default:
		code = 458;
		if (reason[0])
			session_reply(s, 458, "4.3.0", "Unable to queue messages for node %s: %s", x, reason);
		else
			session_reply(s, 458, "4.3.0", "Unable to queue messages for node %s", x);
		break;
	}
	log_etrn(s, x, code, reason[0] ? reason : NULL);
	s->etrn_node[0] = '\0';
	session_resume(s);
}
