/*
 * deliver: the delivery process.  Today it delivers to local Maildirs; the SMTP
 * client of the delivery engine joins it here later.
 *
 * SECURITY: runs as the unprivileged mail user that owns the mail store.  Reads
 * the queue file through the descriptor the queue passes (it never opens the
 * spool itself) and trusts the queue's request; resolves accounts itself from
 * its own copy of the tables.
 */
#ifndef TSUBAME_DELIVER_H
#define TSUBAME_DELIVER_H

#include <stddef.h>
#include <sys/types.h>

#include "conf/config.h"
#include "ipc/ipc.h"
#include "local/resolve.h"

int deliver_main(struct config *cfg, int queue_fd, int index);

struct local_result {
	enum deliver_status status;
	char enh[8];
	char text[1536];
	char mailbox[1024];
};

/*
 * Deliver one local recipient (local.c).  received is the number of Received:
 * headers in the message (counted once per request by the caller).  With
 * defer_dir_sync, a DELIVER_OK still needs an fsync of r->mailbox/new before
 * it may be reported (the caller groups them).
 */
void local_deliver(const struct config *cfg, const struct local_tables *t, int fd, off_t off, off_t len,
    const char *sender, const char *dest, const char *present, unsigned received, int defer_dir_sync,
    struct local_result *r);

/* Count Received: header fields of the message at [off, off+len) in fd. */
unsigned count_received(int fd, off_t off, off_t len);

#endif
