/*
 * linkcheck: run the administrator's link_check_command without blocking the
 * queue manager's loop (E5: "a configured command that tells whether the
 * link is up").
 *
 * The command runs as `/bin/sh -c COMMAND` in a process of its own
 * (posix_spawn: its own process group, every signal at its default and
 * unblocked, stdin and output on /dev/null, no descriptor of ours beyond
 * those three).  We look at it with waitpid(WNOHANG) on a short timer until
 * it exits or its time is up; then its whole process group gets SIGKILL.
 *
 * SECURITY: the command comes from the main configuration file, which only
 * root writes; it runs with the queue manager's privileges (the mail user),
 * never root.  Its output is not read at all.
 */
#ifndef TSUBAME_LINKCHECK_H
#define TSUBAME_LINKCHECK_H

struct event_base;
struct linkcheck;

enum linkcheck_result {
	LINKCHECK_DOWN = 0,     /* exited with a status other than 0 */
	LINKCHECK_UP = 1,       /* exited with status 0 */
	LINKCHECK_NONE = -1     /* no answer: could not start, killed by a signal, or timed out */
};

/* result; detail: "exit 3", "timeout", "signal 9", "spawn failed: ..." (valid during the call). */
typedef void (*linkcheck_cb)(void *arg, enum linkcheck_result result, const char *detail);

struct linkcheck *linkcheck_new(struct event_base *base, linkcheck_cb cb, void *arg);
/* Start command unless one is running (then -1).  cb follows from the loop, never from inside this call. */
int linkcheck_run(struct linkcheck *c, const char *command, unsigned timeout_s);
int linkcheck_running(const struct linkcheck *c);
/* Kills and reaps a command still running (no callback). */
void linkcheck_free(struct linkcheck *c);

#endif
