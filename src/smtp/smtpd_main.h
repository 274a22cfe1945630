/* smtpd_main: entry point of the receive process, called by the master after fork. */
#ifndef TSUBAME_SMTPD_MAIN_H
#define TSUBAME_SMTPD_MAIN_H

#include <stddef.h>

#include "conf/config.h"

/* Runs until stopped; returns the exit status.  Takes ownership of the descriptors. */
int smtpd_main(struct config *cfg, int queue_fd, const int *listen_fds, const struct listen_addr *addrs,
    size_t nlisten);

#endif
