/*
 * atrn (queue side): ATRN, On-Demand Mail Relay (SPEC E6, RFC 2645;
 * docs/atrn.md).  smtpd asks with IPC_Q_ATRN after a customer authenticated
 * on odmr_listen; we decide which held recipients it collects, answer, and
 * hand them to one deliver process as transactions over the connection smtpd
 * passed us (one end of a socketpair smtpd splices into the customer's TCP
 * connection, TLS or not).
 *
 * SECURITY: the request's domains are parsed again (atrn_args.c), never
 * trusted from smtpd; who may collect what is hold_may_collect(): only an
 * account named in the entry's allow= (else etrn_clients), never "*" or an
 * IP pattern, since the mail goes to whoever asked.
 */
#ifndef TSUBAME_QUEUE_ATRN_H
#define TSUBAME_QUEUE_ATRN_H

struct queue;
struct ipc_msg;

/* IPC_Q_ATRN from smtpd; im->fd (the connection) is ours to pass on or close. */
void atrn_request(struct queue *q, struct ipc_msg *im);

#endif
