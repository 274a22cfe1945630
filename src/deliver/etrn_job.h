/*
 * etrn_job: the deliver process's side of a pull request (E4).  The queue
 * manager decides when (src/queue/link.c) and sends IPC_D_ETRN; we find the
 * server's addresses (an address as written, else the hosts table, else DNS
 * A then AAAA), run one ETRN session (etrn_client.c) and answer with
 * IPC_D_ETRN_RESULT: every argument's reply, or why the session ended early.
 *
 * SECURITY: runs in the unprivileged deliver process, which already talks to
 * the network; the request comes from the queue manager (same privilege
 * level) and is still parsed strictly (ipc_end, etrn_arg_check on every
 * argument).  What the server answers is cleaned by etrn_proto.c before it is
 * passed on.
 */
#ifndef TSUBAME_ETRN_JOB_H
#define TSUBAME_ETRN_JOB_H

#include "conf/config.h"
#include "ipc/ipc.h"

struct event_base;
struct etrn_jobs;

struct etrn_jobs *etrn_jobs_new(struct event_base *base);
/* Drops the sessions still running: no result is sent for them (the queue retries while the link is up). */
void etrn_jobs_free(struct etrn_jobs *j);
/* Handle one IPC_D_ETRN (m->fd must be -1 or closed by the caller); the answer goes to ch. */
void etrn_jobs_request(struct etrn_jobs *j, const struct config *cfg, struct ipc_msg *m, struct ipc_channel *ch);

#endif
