/*
 * atrn_relay: the provider's SMTP client on a reversed ATRN connection (SPEC
 * E6, RFC 2645 section 4.3; docs/atrn.md).
 *
 * The queue opens one with IPC_D_ATRN_OPEN (the connection: one end of the
 * socketpair smtpd splices into the customer's session after "250 OK now
 * reversing the connection"), then sends the held messages as IPC_D_DELIVER
 * requests with DELIVER_REQ_ATRN and the connection's id, then IPC_D_ATRN_END.
 * Here one smtp_client waits for the customer's 220, says EHLO and runs the
 * transactions one after the other, in the order they came; after the end and
 * the last transaction it says QUIT.  No DNS, no connect, no connection cache,
 * no TLS of our own (smtpd holds the session's TLS, if any) and no AUTH: the
 * customer authenticated before ATRN.
 *
 * Results go to the callback like a remote job's: 2xx delivered, 5xx failed
 * (bounce), anything else deferred — held mail then waits for the next ETRN or
 * ATRN.  A request for a connection already lost is deferred at once.
 *
 * SECURITY: the peer is the customer's server, untrusted like any SMTP
 * server; smtp_client bounds everything it reads.
 */
#ifndef TSUBAME_ATRN_RELAY_H
#define TSUBAME_ATRN_RELAY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "conf/config.h"
#include "deliver/remote.h"

struct event_base;
struct atrn_relay;

struct atrn_relay *atrn_relay_new(struct event_base *base);
/* Drop every connection at once (shutdown: the queue keeps the mail held). */
void atrn_relay_free(struct atrn_relay *ar);
/* IPC_D_ATRN_OPEN: take over fd; what it needs of cfg (the current one) is copied. */
void atrn_relay_open(struct atrn_relay *ar, const struct config *cfg, uint32_t id, const char *tag, int fd);
/* IPC_D_ATRN_END */
void atrn_relay_end(struct atrn_relay *ar, uint32_t id);
/* An IPC_D_DELIVER with DELIVER_REQ_ATRN: ownership as remote_deliver(). */
void atrn_relay_deliver(struct atrn_relay *ar, uint32_t id, const char *qid, int fd, off_t off, off_t len,
    const struct remote_msg *msg, const char *domain, struct remote_rcpt *rcpts, size_t n, remote_done_cb cb,
    void *arg);
/* Connections open (for shutdown logs). */
size_t atrn_relay_active(const struct atrn_relay *ar);

#endif
