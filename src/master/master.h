/*
 * master: the root process — configuration, work folders, logs, listeners,
 * and the supervision of the smtpd, queue and deliver processes.
 *
 * SECURITY: the only process that keeps root (when started as root).  It parses
 * no network input.  It binds the listeners and opens the log files before it
 * forks, and every child drops to the configured user before running any code
 * that touches mail.
 */
#ifndef TSUBAME_MASTER_H
#define TSUBAME_MASTER_H

#include "conf/config.h"

/* Check the configuration and every table it names; errors to stderr as file:line.  Returns problem count. */
int master_check(struct config *cfg, const char *path);
/* Run the daemon in the foreground until SIGTERM; returns the exit status. */
int master_run(struct config *cfg);

#endif
