/* log: key=value event lines to the main and per-purpose log files (see log.h). */
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static struct {
	char process[32];
	int fd[LOG_STREAM_COUNT];
	int to_stderr;
	int debug;
	int warned[LOG_STREAM_COUNT];
} L = { "tsubame", { 2, -1, -1, -1, -1, -1 }, 0, 0, { 0 } };

void log_init(const char *process)
{
	log_set_process(process);
}

void log_set_process(const char *process)
{
	snprintf(L.process, sizeof(L.process), "%s", process);
}

void log_set_fd(enum log_stream s, int fd) { L.fd[s] = fd; L.warned[s] = 0; }
int log_get_fd(enum log_stream s) { return L.fd[s]; }
void log_set_stderr(int on) { L.to_stderr = on; }
void log_set_debug(int on) { L.debug = on; }

static const char *stream_name(enum log_stream s)
{
	static const char *names[] = { "main", "receive", "connect", "delivery", "send", "failure" };
	return names[s];
}

static void emit_mask(unsigned mask, const char *level, const char *fmt, va_list ap, const char *suffix);

static void emit(enum log_stream s, const char *level, const char *fmt, va_list ap, const char *suffix)
{
	emit_mask(1u << s, level, fmt, ap, suffix);
}

/* One line to every stream in mask, and to LOG_MAIN once. */
static void emit_mask(unsigned mask, const char *level, const char *fmt, va_list ap, const char *suffix)
{
	char line[4096];
	struct timeval tv;
	struct tm tm;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld]: %s ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    (long)tv.tv_usec / 1000, L.process, (long)getpid(), level);
	if (n < 0)
		return;
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (m < 0)
		return;
	size_t len = (size_t)n + (size_t)m;
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	if (suffix) {
		int k = snprintf(line + len, sizeof(line) - len, "%s", suffix);
		if (k > 0)
			len += (size_t)k;
		if (len > sizeof(line) - 2)
			len = sizeof(line) - 2;
	}
	for (size_t i = (size_t)n; i < len; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[len++] = '\n';

	mask |= 1u << LOG_MAIN;
	for (int t = 0; t < LOG_STREAM_COUNT; t++) {
		if (!(mask & (1u << t)) || L.fd[t] < 0)
			continue;
		if (write(L.fd[t], line, len) != (ssize_t)len && !L.warned[t]) {
			L.warned[t] = 1;
			char w[160];
			int k = snprintf(w, sizeof(w), "%s[%ld]: warning event=log_write_failed log=%s error=\"%s\"\n",
			    L.process, (long)getpid(), stream_name((enum log_stream)t), strerror(errno));
			if (k > 0 && write(2, w, (size_t)k) < 0) {
				/* nowhere left to report */
			}
		}
	}
	if (L.to_stderr && L.fd[LOG_MAIN] != 2 && mask == (1u << LOG_MAIN))
		(void)!write(2, line, len);
}

#define EMIT(stream, level, suffix) do { \
	va_list ap; va_start(ap, fmt); emit(stream, level, fmt, ap, suffix); va_end(ap); } while (0)

void log_debug(const char *fmt, ...) { if (L.debug) EMIT(LOG_MAIN, "debug", NULL); }
void log_info(const char *fmt, ...) { EMIT(LOG_MAIN, "info", NULL); }
void log_warnx(const char *fmt, ...) { EMIT(LOG_MAIN, "warning", NULL); }

void log_warn(const char *fmt, ...)
{
	char suffix[160];
	snprintf(suffix, sizeof(suffix), " error=\"%s\"", strerror(errno));
	EMIT(LOG_MAIN, "warning", suffix);
}

void log_to(enum log_stream s, const char *fmt, ...) { EMIT(s, "info", NULL); }

void log_to_mask(unsigned mask, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit_mask(mask, "info", fmt, ap, NULL);
	va_end(ap);
}

void fatal(const char *fmt, ...)
{
	char suffix[160];
	snprintf(suffix, sizeof(suffix), " error=\"%s\"", strerror(errno));
	EMIT(LOG_MAIN, "fatal", suffix);
	if (L.fd[LOG_MAIN] != 2) { L.fd[LOG_MAIN] = 2; EMIT(LOG_MAIN, "fatal", suffix); }
	exit(1);
}

void fatalx(const char *fmt, ...)
{
	EMIT(LOG_MAIN, "fatal", NULL);
	if (L.fd[LOG_MAIN] != 2) { L.fd[LOG_MAIN] = 2; EMIT(LOG_MAIN, "fatal", NULL); }
	exit(1);
}

void panic(const char *fmt, ...)
{
	EMIT(LOG_MAIN, "panic", NULL);
	abort();
}

const char *lq(const char *s)
{
	static char slots[8][448];
	static unsigned next;
	char *out = slots[next++ % 8];
	size_t o = 0, cap = sizeof(slots[0]);

	if (s == NULL)
		return "-";
	int plain = s[0] != '\0';
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= ' ' || c == '"' || c == '\\' || c == '=' || c >= 0x7f) { plain = 0; break; }
	}
	if (plain && strlen(s) < cap - 4)
		return s;
	out[o++] = '"';
	for (const char *p = s; *p && o < cap - 8; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"' || c == '\\') {
			out[o++] = '\\'; out[o++] = (char)c;
		} else if (c < ' ' || c == 0x7f) {
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	if (*s && o >= cap - 8) { out[o++] = '.'; out[o++] = '.'; out[o++] = '.'; }
	out[o++] = '"';
	out[o] = '\0';
	return out;
}
