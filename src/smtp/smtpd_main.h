/* smtpd_main: entry point of the receive process, called by the master after fork. */
#ifndef TSUBAME_SMTPD_MAIN_H
#define TSUBAME_SMTPD_MAIN_H

#include <stddef.h>

#include "conf/config.h"

typedef struct ssl_ctx_st SSL_CTX;

/*
 * Runs until stopped; returns the exit status.  Takes ownership of the
 * descriptors.  tls is the server context the master loaded while it could
 * still read the private key (NULL: no TLS).
 */
int smtpd_main(struct config *cfg, int queue_fd, const int *listen_fds, const struct listen_addr *addrs,
    const int *submission, size_t nlisten, SSL_CTX *tls);

#endif
