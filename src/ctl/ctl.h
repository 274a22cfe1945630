/*
 * ctl: tsubamectl, the administrator's command line (O2).
 *
 * Each subcommand family lives in its own file and gets the loaded configuration.
 * Exit status: 0 success, 1 failure (message on stderr), 2 usage error, 3 the
 * daemon (its queue manager) is not running, for commands that need it.
 * Commands that change tables rewrite them atomically and then ask a running
 * daemon to reload (SIGHUP to the pid in work_dir/tsubamed.pid), if one runs.
 */
#ifndef TSUBAME_CTL_H
#define TSUBAME_CTL_H

#include "conf/config.h"

struct ctl {
	struct config cfg;
	const char *config_path;
	int reload_wanted;   /* set by ctl_reload(); the signal is sent when the command is done */
};

int ctl_queue(struct ctl *c, int argc, char **argv);    /* queue list|show|delete|flush|retry|hold|release */
/* queue flush|retry|hold|release (argv[0] is the verb): asks the running queue manager; exit 3 when it is not running. */
int ctl_queue_control(struct ctl *c, int argc, char **argv);
/* One request line to the queue manager's control socket, its answer in out: length, -1 (message printed), -3 not running. */
int ctl_queue_exchange(const struct ctl *c, const char *line, char *out, size_t outlen);
/* link up|down|status|wait [SECONDS] (ctl_link.c): the dial-up link (E5). */
int ctl_link(struct ctl *c, int argc, char **argv);
/* etrn [options] HOST[:PORT] ARG... (ctl_etrn.c): ask a mail server for our queued mail (E4, RFC 1985). */
int ctl_etrn(struct ctl *c, int argc, char **argv);
/* atrn [options] HOST[:PORT] [DOMAIN...] (ctl_etrn.c): collect our held mail over ATRN (E6, RFC 2645). */
int ctl_atrn(struct ctl *c, int argc, char **argv);
int ctl_account(struct ctl *c, int argc, char **argv);  /* account add|del|passwd|list|show|import|export */
int ctl_domain(struct ctl *c, int argc, char **argv);   /* domain add|set|del|list */
/*
 * Ask a running daemon to reload once this command has finished (after table
 * files got their owner and mode).  Always returns 0.
 */
int ctl_reload(struct ctl *c);

#endif
