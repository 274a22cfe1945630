/*
 * reload: the configuration and local tables a process (smtpd, queue, deliver)
 * works from, loaded at start and replaced whole on SIGHUP.  A reload that finds
 * any error keeps the old ones and logs why: a typo never empties a table.
 * Each process has its own copy of the configuration (the master forked it).
 */
#ifndef TSUBAME_RELOAD_H
#define TSUBAME_RELOAD_H

#include "conf/config.h"
#include "local/resolve.h"
#include "util/buf.h"

/*
 * The configuration at path (skipped when path is NULL: cfg is loaded already),
 * then the local tables it names; the tables are not read when the configuration
 * has errors.  Errors go to errors as file:line; returns their count.
 */
int local_load(struct config *cfg, const char *path, struct local_tables *t, struct buf *errors);

/* At process start: the tables cfg names, newly allocated; fatal (event=start_failed) on any error. */
struct local_tables *local_start(const struct config *cfg);

/*
 * On SIGHUP: load (*cfg)->path and its tables anew.  0: the old configuration
 * and tables were freed and replaced.  -1: they stay, and the errors were logged
 * as event=reload_failed.
 */
int local_reload(struct config **cfg, struct local_tables **tables);

/* At exit: free the tables, and cfg when a reload replaced the caller's initial one. */
void local_release(struct config *cfg, const struct config *initial, struct local_tables *tables);

#endif
