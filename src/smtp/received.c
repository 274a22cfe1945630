/*
 * received: the Received: header we prepend, from an editable template (the
 * manual's header.dat).  Variables are ${name}; an unknown variable is a
 * configuration error reported by `tsubamed -n` with its line.  Template lines
 * are joined with CRLF; continuation lines must start with white space.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "smtp/smtpd.h"
#include "util/xalloc.h"

static const char *default_template =
    "Received: from ${helo} (${client_name} [${client_addr}])${tls}${auth}\n"
    "\tby ${hostname} (Tsubame) with ${protocol} id ${qid}${for};\n"
    "\t${date}\n";

static const char *const vars[] = {
	"helo", "client_name", "client_addr", "client_port", "local_addr", "hostname", "protocol", "qid", "for",
	"date", "tls", "auth", NULL
};

static int known(const char *name, size_t n)
{
	for (int i = 0; vars[i]; i++)
		if (strlen(vars[i]) == n && !memcmp(vars[i], name, n))
			return 1;
	return 0;
}

char *received_load_template(const char *path, struct buf *errors)
{
	if (!path || !*path)
		return xstrdup(default_template);
	FILE *fp = fopen(path, "r");
	if (!fp) {
		buf_appendf(errors, "%s: cannot open: %s\n", path, strerror(errno));
		return NULL;
	}
	struct buf t;
	buf_init(&t, 16 * 1024);
	char line[2048];
	int lineno = 0, bad = 0;
	while (fgets(line, sizeof(line), fp)) {
		lineno++;
		size_t n = strcspn(line, "\r\n");
		line[n] = '\0';
		if (n == 0)
			continue;
		if (lineno == 1 && strncasecmp(line, "Received:", 9)) {
			buf_appendf(errors, "%s:%d: the template must start with \"Received:\"\n", path, lineno);
			bad = 1;
		} else if (lineno > 1 && line[0] != ' ' && line[0] != '\t') {
			buf_appendf(errors, "%s:%d: continuation lines must start with a space or tab\n", path, lineno);
			bad = 1;
		}
		for (const char *p = line; (p = strstr(p, "${")); p += 2) {
			const char *e = strchr(p, '}');
			if (!e || !known(p + 2, (size_t)(e - p - 2))) {
				buf_appendf(errors, "%s:%d: unknown variable %.*s\n", path, lineno,
				    e ? (int)(e - p + 1) : (int)strlen(p), p);
				bad = 1;
			}
		}
		if (buf_appendf(&t, "%s\n", line) < 0) {
			buf_appendf(errors, "%s:%d: template too long\n", path, lineno);
			bad = 1;
			break;
		}
	}
	fclose(fp);
	if (t.len == 0) {
		buf_appendf(errors, "%s: empty template\n", path);
		bad = 1;
	}
	if (bad) {
		buf_free(&t);
		return NULL;
	}
	return buf_steal(&t);
}

/* Client-supplied text goes into a header: keep it printable and single-line. */
static void put_clean(struct buf *out, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		buf_putc(out, c < 0x20 || c == 0x7f ? '?' : (char)c);
	}
}

void received_render(struct buf *out, const char *tmpl, const struct session *s, const char *qid,
    const char *protocol)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	for (const char *p = tmpl; *p; p++) {
		if (*p == '\n') {
			buf_puts(out, "\r\n");
			continue;
		}
		if (p[0] != '$' || p[1] != '{') {
			buf_putc(out, *p);
			continue;
		}
		const char *e = strchr(p, '}');
		if (!e) {
			buf_putc(out, *p);
			continue;
		}
		size_t n = (size_t)(e - p - 2);
		const char *v = p + 2;
#define IS(name) (n == strlen(name) && !memcmp(v, name, n))
		if (IS("helo")) put_clean(out, s->helo ? s->helo : "unknown");
		else if (IS("client_name")) buf_puts(out, "unknown");
		else if (IS("client_addr")) buf_puts(out, s->client_addr);
		else if (IS("client_port")) buf_puts(out, s->client_port);
		else if (IS("local_addr")) buf_puts(out, s->local_addr);
		else if (IS("hostname")) buf_puts(out, s->hostname);
		else if (IS("protocol")) buf_puts(out, protocol);
		else if (IS("qid")) buf_puts(out, qid);
		else if (IS("date")) buf_puts(out, date);
		else if (IS("for")) {
			/* RFC 5321 4.4: "for" only when there is exactly one recipient, to avoid disclosing the others. */
			if (s->txn && s->txn->nrcpt == 1) {
				buf_puts(out, "\r\n\tfor <");
				put_clean(out, s->txn->rcpt[0].orig);
				buf_puts(out, ">");
			}
		}
		else if (IS("tls")) {
			if (s->tls_info[0])
				buf_appendf(out, "\r\n\t(using %s)", s->tls_info);
		} else if (IS("auth")) {
			/* Naming the user is a privacy choice: only with auth_received = yes. */
			if (s->auth_id && s->sd->cfg->auth_received)
				buf_appendf(out, "\r\n\t(Authenticated sender: %s)", s->auth_id);
		}
#undef IS
		p = e;
	}
}
