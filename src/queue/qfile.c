/*
 * qfile: writer and strict parser of the queue file format, version 1 (qfile.h).
 *
 * Owns: the byte layout of a queue file.  Trusts: nothing it reads.  A queue
 * file may be torn by a crash, damaged on disk, or planted by someone with
 * access to the spool, so the parser checks every record, every number against
 * overflow, every line against QFILE_LINE_MAX and the header against
 * QFILE_HEADER_MAX before allocating for it, and it never reads the message
 * content: only the header section and the 18-byte end record, with pread.
 *
 * Why the end record and the size check: the file is written front to back
 * and only then fsync'ed and renamed (spool.c).  A file cut anywhere — inside
 * the header, the content, or the end record — either lacks the "data: " line
 * or has a size that disagrees with the length in its end record, so
 * "parsed" implies "complete" (Postfix rec_type.h has the same idea with its
 * REC_TYPE_END record).
 */
#include "queue/qfile.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/xalloc.h"

#define TRAILER_LEN 18 /* "\nend " + 12 digits + "\n" */
#define DATA_LINE "data: \n"
#define READ_CHUNK 65536

static const char hexdig[] = "0123456789ABCDEF";

/* Bytes that never appear raw in a value: controls, space, '%', DEL (TAB is a control). */
static int needs_enc(unsigned char c)
{
	return c <= 0x20 || c == '%' || c == 0x7f;
}

static void why_set(char *why, size_t whysz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void why_set(char *why, size_t whysz, const char *fmt, ...)
{
	if (why == NULL || whysz == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whysz, fmt, ap);
	va_end(ap);
}

/* ---- writer ------------------------------------------------------------ */

static int put_enc(struct buf *out, const char *s)
{
	if (s == NULL)
		return 0;
	const char *run = s;
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (!needs_enc(c))
			continue;
		char esc[3] = { '%', hexdig[c >> 4], hexdig[c & 15] };
		if (buf_append(out, run, (size_t)(p - run)) < 0 || buf_append(out, esc, 3) < 0)
			return -1;
		run = p + 1;
	}
	return buf_puts(out, run);
}

static int put_field(struct buf *out, const char *key, const char *value)
{
	if (buf_puts(out, key) < 0 || buf_puts(out, ": ") < 0 || put_enc(out, value) < 0)
		return -1;
	return buf_putc(out, '\n');
}

static const char *body_names[] = { "7bit", "8bitmime", "binarymime" };

static const char *ret_names[] = { "", "full", "hdrs" };

/* NEVER stands alone; otherwise any set of SUCCESS, FAILURE, DELAY (RFC 3461 4.1). */
static int notify_ok(unsigned n)
{
	return n <= (DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY) || n == DSN_NOTIFY_NEVER;
}

static int state_ok(char c)
{
	return c == RCPT_LOCAL || c == RCPT_REMOTE || c == RCPT_DONE || c == RCPT_BOUNCED ||
	       c == RCPT_EXPIRED;
}

/* v in width decimal digits with leading zeros (v fits: callers clamp). */
static void put_digits(char *p, int width, unsigned long long v)
{
	for (int i = width - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
}

/* "S AAAA NNNNNNNNNNNN": the in-place region of a rcpt record. */
static void fixed_fields(char out[QFILE_RCPT_FIXED_LEN + 1], const struct qrcpt *r)
{
	unsigned att = r->attempts > QFILE_ATTEMPTS_MAX ? QFILE_ATTEMPTS_MAX : r->attempts;
	long long nt = r->next_try < 0 ? 0 : r->next_try > QFILE_TIME_MAX ? QFILE_TIME_MAX : r->next_try;
	out[0] = r->state;
	out[1] = ' ';
	put_digits(out + 2, 4, att);
	out[6] = ' ';
	put_digits(out + 7, 12, (unsigned long long)nt);
	out[QFILE_RCPT_FIXED_LEN] = '\0';
}

/* "\nend NNNNNNNNNNNN\n" for 0 <= data_len <= QFILE_TIME_MAX. */
static void trailer(char out[TRAILER_LEN + 1], long long data_len)
{
	memcpy(out, "\nend ", 5);
	put_digits(out + 5, 12, (unsigned long long)data_len);
	out[17] = '\n';
	out[TRAILER_LEN] = '\0';
}

int qfile_write_header(struct buf *out, struct qenvelope *e)
{
	size_t start = out->len;
	char fixed[QFILE_RCPT_FIXED_LEN + 1];
	char num[32];

	if (!qid_valid(e->qid) || e->nrcpt == 0 || e->nrcpt > QFILE_RCPT_MAX || e->body < 0 ||
	    e->body > 2 || (e->smtputf8 != 0 && e->smtputf8 != 1) || (e->warned != 0 && e->warned != 1) ||
	    e->ret < 0 || e->ret > DSN_RET_HDRS || (e->notice_admin != 0 && e->notice_admin != 1))
		return -1;
	for (size_t i = 0; i < e->nrcpt; i++)
		if (!state_ok(e->rcpt[i].state) || !notify_ok(e->rcpt[i].notify))
			return -1;

	snprintf(num, sizeof(num), "%lld", e->arrival);
	if (buf_puts(out, QFILE_MAGIC) < 0 || put_field(out, "qid", e->qid) < 0 ||
	    put_field(out, "arrival", num) < 0 || put_field(out, "sender", e->sender) < 0 ||
	    put_field(out, "client-addr", e->client_addr) < 0 ||
	    put_field(out, "client-name", e->client_name) < 0 || put_field(out, "helo", e->helo) < 0 ||
	    put_field(out, "proto", e->proto) < 0 || put_field(out, "body", body_names[e->body]) < 0 ||
	    put_field(out, "smtputf8", e->smtputf8 ? "1" : "0") < 0 || buf_puts(out, "warned: ") < 0)
		goto fail;
	e->warned_off = (off_t)out->len;
	if (buf_puts(out, e->warned ? "1\n" : "0\n") < 0)
		goto fail;
	/* Optional records are written only when set, so a parsed file reproduces itself. */
	if ((e->ret && put_field(out, "ret", ret_names[e->ret]) < 0) ||
	    (e->envid && e->envid[0] && put_field(out, "envid", e->envid) < 0) ||
	    (e->auth && e->auth[0] && put_field(out, "auth", e->auth) < 0) ||
	    (e->notice_admin && put_field(out, "notice", "admin") < 0))
		goto fail;
	for (size_t i = 0; i < e->nrcpt; i++) {
		struct qrcpt *r = &e->rcpt[i];
		if (buf_puts(out, "rcpt: ") < 0)
			goto fail;
		r->state_off = (off_t)out->len;
		fixed_fields(fixed, r);
		if (buf_puts(out, fixed) < 0 || buf_putc(out, ' ') < 0 || put_enc(out, r->orig) < 0 ||
		    buf_putc(out, '\t') < 0 || put_enc(out, r->dest) < 0 || buf_putc(out, '\t') < 0 ||
		    put_enc(out, r->present) < 0 || buf_putc(out, '\t') < 0 || buf_putc(out, (char)('0' + r->notify)) < 0 ||
		    buf_putc(out, '\t') < 0 || put_enc(out, r->orcpt) < 0 || buf_putc(out, '\n') < 0)
			goto fail;
	}
	if (buf_puts(out, DATA_LINE) < 0)
		goto fail;
	/* The parser's limits, so that what we write is always readable. */
	for (size_t p = start; p < out->len;) {
		const char *nl = memchr(out->data + p, '\n', out->len - p);
		if ((size_t)(nl - (out->data + p)) + 1 > QFILE_LINE_MAX)
			goto fail;
		p = (size_t)(nl - out->data) + 1;
	}
	if (out->len - start > QFILE_HEADER_MAX)
		goto fail;
	e->data_off = (off_t)out->len;
	return 0;
fail:
	out->len = start;
	if (out->data)
		out->data[start] = '\0';
	return -1;
}

int qfile_write_trailer(struct buf *out, off_t data_len)
{
	char t[TRAILER_LEN + 1];
	if (data_len < 0 || data_len > QFILE_TIME_MAX)
		return -1;
	trailer(t, (long long)data_len);
	return buf_append(out, t, TRAILER_LEN);
}

size_t qfile_trailer_len(void)
{
	return TRAILER_LEN;
}

/* ---- parser ------------------------------------------------------------ */

/*
 * Decode a value of n bytes.  Canonical only: raw bytes must not need encoding,
 * %XX must be upper-case hex of a byte that does, and never %00 (values are C
 * strings).  Returns a new string or NULL.
 */
static char *decode(const char *p, size_t n)
{
	char *s = xmalloc(n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '%') {
			if (n - i < 3)
				goto bad;
			const char *h = strchr(hexdig, p[i + 1]), *l = strchr(hexdig, p[i + 2]);
			if (p[i + 1] == '\0' || p[i + 2] == '\0' || h == NULL || l == NULL)
				goto bad;
			unsigned char d = (unsigned char)((h - hexdig) << 4 | (l - hexdig));
			if (d == 0 || !needs_enc(d))
				goto bad;
			s[o++] = (char)d;
			i += 2;
		} else if (needs_enc(c)) {
			goto bad;
		} else {
			s[o++] = (char)c;
		}
	}
	s[o] = '\0';
	return s;
bad:
	free(s);
	return NULL;
}

/* Canonical decimal: "0" or "-"?[1-9][0-9]*, within long long. */
static int parse_ll(const char *p, size_t n, long long *out)
{
	int neg = 0;
	if (n > 0 && p[0] == '-') {
		neg = 1;
		p++;
		n--;
	}
	if (n == 0 || n > 19 || (p[0] == '0' && (n > 1 || neg)))
		return -1;
	unsigned long long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		unsigned d = (unsigned)(p[i] - '0');
		if (v > (ULLONG_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (neg) {
		if (v > (unsigned long long)LLONG_MAX + 1)
			return -1;
		*out = v == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)v;
	} else {
		if (v > (unsigned long long)LLONG_MAX)
			return -1;
		*out = (long long)v;
	}
	return 0;
}

/* Fixed-width digits (leading zeros are the format here). */
static int parse_fixed(const char *p, size_t n, long long *out)
{
	long long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	*out = v;
	return 0;
}

static int parse_rcpt(const char *v, size_t n, off_t line_off, struct qenvelope *e, size_t *cap)
{
	long long att, nt;
	/* "S AAAA NNNNNNNNNNNN orig\tdest\tpresent\tN\torcpt" */
	if (n < QFILE_RCPT_FIXED_LEN + 1 || !state_ok(v[0]) || v[1] != ' ' || v[6] != ' ' ||
	    v[QFILE_RCPT_FIXED_LEN] != ' ' || parse_fixed(v + 2, 4, &att) < 0 ||
	    parse_fixed(v + 7, 12, &nt) < 0)
		return -1;
	const char *f = v + QFILE_RCPT_FIXED_LEN + 1, *end = v + n;
	const char *t1 = memchr(f, '\t', (size_t)(end - f));
	if (t1 == NULL)
		return -1;
	const char *t2 = memchr(t1 + 1, '\t', (size_t)(end - t1 - 1));
	if (t2 == NULL)
		return -1;
	const char *t3 = memchr(t2 + 1, '\t', (size_t)(end - t2 - 1));
	/* the notify digit, then the last field */
	if (t3 == NULL || end - t3 < 3 || t3[1] < '0' || t3[1] > '8' || t3[2] != '\t' ||
	    !notify_ok((unsigned)(t3[1] - '0')) || memchr(t3 + 3, '\t', (size_t)(end - t3 - 3)) != NULL)
		return -1;
	char *orig = decode(f, (size_t)(t1 - f));
	char *dest = decode(t1 + 1, (size_t)(t2 - t1 - 1));
	char *present = decode(t2 + 1, (size_t)(t3 - t2 - 1));
	char *orcpt = decode(t3 + 3, (size_t)(end - t3 - 3));
	if (orig == NULL || dest == NULL || present == NULL || orcpt == NULL) {
		free(orig);
		free(dest);
		free(present);
		free(orcpt);
		return -1;
	}
	if (e->nrcpt == *cap) {
		*cap = *cap ? *cap * 2 : 4;
		e->rcpt = xreallocarray(e->rcpt, *cap, sizeof(*e->rcpt));
	}
	struct qrcpt *r = &e->rcpt[e->nrcpt++];
	r->state = v[0];
	r->attempts = (unsigned)att;
	r->next_try = nt;
	r->orig = orig;
	r->dest = dest;
	r->present = present;
	r->notify = (unsigned)(t3[1] - '0');
	r->orcpt = orcpt;
	r->state_off = line_off + 6; /* strlen("rcpt: ") */
	return 0;
}

enum key {
	K_QID, K_ARRIVAL, K_SENDER, K_CLIENT_ADDR, K_CLIENT_NAME, K_HELO, K_PROTO, K_BODY,
	K_SMTPUTF8, K_WARNED, K_RCPT, K_DATA,
	K_OPTIONAL, /* the keys after this one may be absent */
	K_RET = K_OPTIONAL, K_ENVID, K_AUTH, K_NOTICE, K_COUNT
};
static const char *key_names[K_COUNT] = {
	"qid", "arrival", "sender", "client-addr", "client-name", "helo", "proto", "body",
	"smtputf8", "warned", "rcpt", "data", "ret", "envid", "auth", "notice"
};

/*
 * Find the end of the header section: the line "data: \n".  Scans complete
 * lines from *scan (kept between calls, so a growing buffer is scanned once).
 * 1 found (*hlen set), 0 need more bytes, -1 a line or the header is too long.
 */
static int find_header_end(const char *p, size_t len, size_t *scan, size_t *hlen)
{
	size_t pos = *scan;
	for (;;) {
		size_t avail = len - pos;
		size_t look = avail < QFILE_LINE_MAX ? avail : QFILE_LINE_MAX;
		const char *nl = memchr(p + pos, '\n', look);
		if (nl == NULL) {
			*scan = pos;
			if (avail >= QFILE_LINE_MAX || pos + avail >= QFILE_HEADER_MAX)
				return -1;
			return 0;
		}
		size_t next = (size_t)(nl - p) + 1;
		if (next > QFILE_HEADER_MAX)
			return -1;
		if (next - pos == sizeof(DATA_LINE) - 1 && memcmp(p + pos, DATA_LINE, next - pos) == 0) {
			*hlen = next;
			*scan = next;
			return 1;
		}
		pos = next;
	}
}

/* Magic check on what is there so far: 0 ok / need more, -1 with why. */
static int check_magic(const char *p, size_t len, char *why, size_t whysz)
{
	static const char fam[] = "TSUBAME-QUEUE ";
	size_t ml = sizeof(QFILE_MAGIC) - 1;
	size_t n = len < ml ? len : ml;
	if (memcmp(p, QFILE_MAGIC, n) == 0)
		return 0;
	size_t fl = sizeof(fam) - 1;
	if (len > fl && memcmp(p, fam, fl) == 0)
		why_set(why, whysz, "unknown version");
	else
		why_set(why, whysz, "invalid: not a queue file (bad magic)");
	return -1;
}

/* Parse the complete header section p[0..hlen), which ends with "data: \n". */
static int parse_header(const char *p, size_t hlen, struct qenvelope *e, char *why, size_t whysz)
{
	int seen[K_COUNT] = { 0 };
	size_t cap = 0;
	size_t pos = sizeof(QFILE_MAGIC) - 1;

	if (hlen < pos || memcmp(p, QFILE_MAGIC, pos) != 0) {
		why_set(why, whysz, "invalid: bad magic");
		return -1;
	}
	while (pos < hlen) {
		const char *line = p + pos;
		const char *nl = memchr(line, '\n', hlen - pos);
		/* nl exists: the section ends with "data: \n". */
		const char *colon = memchr(line, ':', (size_t)(nl - line));
		if (colon == NULL || colon + 1 >= nl || colon[1] != ' ') {
			why_set(why, whysz, "invalid: malformed record at offset %zu", pos);
			return -1;
		}
		size_t kl = (size_t)(colon - line);
		int k;
		for (k = 0; k < K_COUNT; k++)
			if (strlen(key_names[k]) == kl && memcmp(line, key_names[k], kl) == 0)
				break;
		if (k == K_COUNT) {
			why_set(why, whysz, "invalid: unknown key at offset %zu", pos);
			return -1;
		}
		if (k != K_RCPT && seen[k]) {
			why_set(why, whysz, "invalid: duplicate key '%s'", key_names[k]);
			return -1;
		}
		seen[k]++;
		const char *v = colon + 2;
		size_t vl = (size_t)(nl - v);
		char *s = NULL;
		long long num;
		switch (k) {
		case K_QID:
			s = decode(v, vl);
			if (s == NULL || !qid_valid(s) || strlen(s) >= QID_MAX) {
				free(s);
				goto bad_value;
			}
			memcpy(e->qid, s, strlen(s) + 1);
			free(s);
			break;
		case K_ARRIVAL:
			if (parse_ll(v, vl, &num) < 0)
				goto bad_value;
			e->arrival = num;
			break;
		case K_SENDER:
		case K_CLIENT_ADDR:
		case K_CLIENT_NAME:
		case K_HELO:
		case K_PROTO:
			if ((s = decode(v, vl)) == NULL)
				goto bad_value;
			*(k == K_SENDER        ? &e->sender
			  : k == K_CLIENT_ADDR ? &e->client_addr
			  : k == K_CLIENT_NAME ? &e->client_name
			  : k == K_HELO        ? &e->helo
					       : &e->proto) = s;
			break;
		case K_BODY:
			e->body = -1;
			for (int b = 0; b < 3; b++)
				if (strlen(body_names[b]) == vl && memcmp(v, body_names[b], vl) == 0)
					e->body = b;
			if (e->body < 0)
				goto bad_value;
			break;
		case K_SMTPUTF8:
			if (vl != 1 || (v[0] != '0' && v[0] != '1'))
				goto bad_value;
			e->smtputf8 = v[0] - '0';
			break;
		case K_WARNED:
			if (vl != 1 || (v[0] != '0' && v[0] != '1'))
				goto bad_value;
			e->warned = v[0] - '0';
			e->warned_off = (off_t)(v - p);
			break;
		case K_RET:
			e->ret = 0;
			for (int b = 1; b <= DSN_RET_HDRS; b++)
				if (strlen(ret_names[b]) == vl && memcmp(v, ret_names[b], vl) == 0)
					e->ret = b;
			if (e->ret == 0)
				goto bad_value;
			break;
		case K_ENVID:
		case K_AUTH:
			/* present only when set: an empty value is not canonical */
			if (vl == 0 || (s = decode(v, vl)) == NULL)
				goto bad_value;
			*(k == K_ENVID ? &e->envid : &e->auth) = s;
			break;
		case K_NOTICE:
			if (vl != 5 || memcmp(v, "admin", 5) != 0)
				goto bad_value;
			e->notice_admin = 1;
			break;
		case K_RCPT:
			if (seen[K_RCPT] > QFILE_RCPT_MAX) {
				why_set(why, whysz, "invalid: more than %d recipients", QFILE_RCPT_MAX);
				return -1;
			}
			if (parse_rcpt(v, vl, (off_t)pos, e, &cap) < 0)
				goto bad_value;
			break;
		case K_DATA:
			if (vl != 0 || (size_t)(nl - p) + 1 != hlen)
				goto bad_value;
			break;
		}
		pos = (size_t)(nl - p) + 1;
		continue;
	bad_value:
		why_set(why, whysz, "invalid: bad value for '%s' at offset %zu", key_names[k], pos);
		return -1;
	}
	for (int k = 0; k < K_OPTIONAL; k++)
		if (!seen[k]) {
			why_set(why, whysz, "invalid: missing key '%s'", key_names[k]);
			return -1;
		}
	e->data_off = (off_t)hlen;
	return 0;
}

/* The end record at data_off + data_len, where data_len follows from the file size. */
static int check_trailer(const char *t, off_t size, struct qenvelope *e, char *why, size_t whysz)
{
	char want[TRAILER_LEN + 1];
	off_t dl = size - e->data_off - TRAILER_LEN;
	if (dl < 0 || dl > QFILE_TIME_MAX) {
		why_set(why, whysz, "invalid: content too long");
		return -1;
	}
	trailer(want, (long long)dl);
	if (memcmp(t, want, TRAILER_LEN) != 0) {
		why_set(why, whysz, "torn: no end record for %lld bytes of content", (long long)dl);
		return -1;
	}
	e->data_len = dl;
	return 0;
}

int qfile_parse_mem(const char *p, size_t len, struct qenvelope *e, char *why, size_t whysz)
{
	size_t scan = 0, hlen = 0;
	memset(e, 0, sizeof(*e));
	if (check_magic(p, len, why, whysz) < 0)
		return -1;
	int r = find_header_end(p, len, &scan, &hlen);
	if (r <= 0) {
		why_set(why, whysz, r == 0 ? "torn: no data record" : "invalid: header record too long");
		return -1;
	}
	if (parse_header(p, hlen, e, why, whysz) < 0)
		goto fail;
	if (len - hlen < TRAILER_LEN) {
		why_set(why, whysz, "torn: file ends before its end record");
		goto fail;
	}
	if (check_trailer(p + len - TRAILER_LEN, (off_t)len, e, why, whysz) < 0)
		goto fail;
	return 0;
fail:
	qenvelope_free(e);
	return -1;
}

static int pread_full(int fd, void *p, size_t n, off_t off)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, (char *)p + got, n - got, off + (off_t)got);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (int)(got == n ? 0 : 1);
}

static void read_error(int r, char *why, size_t whysz)
{
	if (r < 0)
		why_set(why, whysz, "read: %s", strerror(errno));
	else
		why_set(why, whysz, "torn: file shrank while reading");
}

int qfile_parse(int fd, struct qenvelope *e, char *why, size_t whysz)
{
	struct stat st;
	struct buf h;
	size_t scan = 0, hlen = 0;
	char t[TRAILER_LEN];
	int rc = -1;

	memset(e, 0, sizeof(*e));
	buf_init(&h, QFILE_HEADER_MAX + READ_CHUNK);
	if (fstat(fd, &st) < 0) {
		why_set(why, whysz, "fstat: %s", strerror(errno));
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		why_set(why, whysz, "invalid: not a regular file");
		goto done;
	}
	/* Read the header in pieces until the "data: " line; never the content. */
	for (;;) {
		off_t off = (off_t)h.len;
		if (off >= st.st_size) {
			why_set(why, whysz, "torn: no data record");
			goto done;
		}
		size_t n = READ_CHUNK;
		if ((off_t)n > st.st_size - off)
			n = (size_t)(st.st_size - off);
		char chunk[READ_CHUNK];
		int r = pread_full(fd, chunk, n, off);
		if (r != 0) {
			read_error(r, why, whysz);
			goto done;
		}
		if (buf_append(&h, chunk, n) < 0) {
			why_set(why, whysz, "invalid: header too large");
			goto done;
		}
		if (check_magic(h.data, h.len, why, whysz) < 0)
			goto done;
		r = find_header_end(h.data, h.len, &scan, &hlen);
		if (r < 0) {
			why_set(why, whysz, "invalid: header record too long");
			goto done;
		}
		if (r == 1)
			break;
	}
	if (parse_header(h.data, hlen, e, why, whysz) < 0)
		goto done;
	if (st.st_size - (off_t)hlen < TRAILER_LEN) {
		why_set(why, whysz, "torn: file ends before its end record");
		goto done;
	}
	int r = pread_full(fd, t, TRAILER_LEN, st.st_size - TRAILER_LEN);
	if (r != 0) {
		read_error(r, why, whysz);
		goto done;
	}
	if (check_trailer(t, st.st_size, e, why, whysz) < 0)
		goto done;
	rc = 0;
done:
	buf_free(&h);
	if (rc < 0)
		qenvelope_free(e);
	return rc;
}

void qenvelope_free(struct qenvelope *e)
{
	for (size_t i = 0; i < e->nrcpt; i++) {
		free(e->rcpt[i].orig);
		free(e->rcpt[i].dest);
		free(e->rcpt[i].present);
		free(e->rcpt[i].orcpt);
	}
	free(e->envid);
	free(e->auth);
	free(e->rcpt);
	free(e->sender);
	free(e->client_addr);
	free(e->client_name);
	free(e->helo);
	free(e->proto);
	memset(e, 0, sizeof(*e));
}

int qfile_set_rcpt(int fd, const struct qrcpt *r)
{
	char fixed[QFILE_RCPT_FIXED_LEN + 1];
	if (!state_ok(r->state) || r->state_off <= 0) {
		errno = EINVAL;
		return -1;
	}
	fixed_fields(fixed, r);
	size_t done = 0;
	while (done < QFILE_RCPT_FIXED_LEN) {
		ssize_t n = pwrite(fd, fixed + done, QFILE_RCPT_FIXED_LEN - done, r->state_off + (off_t)done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		done += (size_t)n;
	}
	return 0;
}

int qfile_set_warned(int fd, struct qenvelope *e)
{
	if (e->warned_off <= 0) {
		errno = EINVAL;
		return -1;
	}
	for (;;) {
		ssize_t n = pwrite(fd, "1", 1, e->warned_off);
		if (n == 1)
			break;
		if (n < 0 && errno == EINTR)
			continue;
		return -1;
	}
	e->warned = 1;
	return 0;
}

int qenvelope_finished(const struct qenvelope *e)
{
	for (size_t i = 0; i < e->nrcpt; i++)
		if (e->rcpt[i].state == RCPT_LOCAL || e->rcpt[i].state == RCPT_REMOTE)
			return 0;
	return 1;
}
