/*
 * log: one line per event, key=value, to the main log and the per-purpose logs (O1).
 *
 * Messages are written with one write() on an O_APPEND descriptor, so lines from the
 * master, smtpd, queue and deliver processes never interleave.  Format:
 *   2026-11-23T14:30:00.123Z smtpd[1234]: info event=connect client=127.0.0.1 ...
 * Callers write the "key=value ..." part and quote untrusted values with lq().
 * The state here (descriptors, process name) is process-wide on purpose: every
 * process has exactly one logging identity and it is set once at start.
 */
#ifndef TSUBAME_LOG_H
#define TSUBAME_LOG_H

#include <stdarg.h>

enum log_stream {
	LOG_MAIN = 0,   /* everything; also mirrored to stderr when log_set_stderr(1) */
	LOG_RECEIVE,    /* one line per accepted message */
	LOG_CONNECT,    /* one line per connection open / close */
	LOG_DELIVERY,   /* one line per delivery attempt (the manual's delivery detail log) */
	LOG_SEND,       /* one line per recipient delivered (the manual's send log) */
	LOG_FAILURE,    /* one line per recipient given up on, and every bounce (the failure log) */
	LOG_STREAM_COUNT
};

void log_init(const char *process);
void log_set_process(const char *process);
/* Descriptor for a stream; -1 disables it.  LOG_MAIN defaults to stderr. */
void log_set_fd(enum log_stream s, int fd);
int log_get_fd(enum log_stream s);
void log_set_stderr(int on);
void log_set_debug(int on);

void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* log_warn appends the errno text; log_warnx does not. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A line to a secondary stream (receive, connect, delivery, send, failure log), also copied to LOG_MAIN. */
void log_to(enum log_stream s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* fatal: an operational error we cannot continue from; panic: a broken invariant. */
/* The same line to several streams (a mask of 1 << LOG_*), and to LOG_MAIN once. */
void log_to_mask(unsigned mask, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

_Noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Quote a value for key=value output: returned as is when it is a plain token,
 * otherwise in double quotes with \" \\ and control bytes escaped, truncated to
 * about 400 bytes.  The result lives in one of 8 rotating static slots, so up to
 * 8 lq() calls may appear in one log statement.
 */
const char *lq(const char *s);

#endif
