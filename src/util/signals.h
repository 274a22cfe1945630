/*
 * signals: the lifecycle signals (SIGHUP reload, SIGTERM/SIGINT stop) of the
 * child processes.  The master blocks them before a child starts; the child
 * unblocks them once its event loop has handlers for them, so a reload or stop
 * sent during start-up waits instead of being lost or killing the process.
 */
#ifndef TSUBAME_SIGNALS_H
#define TSUBAME_SIGNALS_H

void signals_block_lifecycle(void);
void signals_unblock_lifecycle(void);

#endif
