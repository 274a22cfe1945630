/*
 * bounce: delivery status notifications (RFC 3464) — failures, the delay
 * warning and success reports (RFC 3461 NOTIFY) — and the administrator's
 * copies (seed 003: "send error mail to the administrator too").
 *
 * A notice is a new queue file from <>, written and committed (fdatasync,
 * rename, directory fsync) before the caller marks the recipients it reports:
 * invariant 2.  Loop protection: notices come from <>, so their own failure
 * never produces a notice to a sender; a failed message from <> goes to the
 * administrator once, flagged notice_admin, and a flagged message that fails
 * is dropped with a log line.  That is the manual's guard against error mail
 * bouncing between the server and its administrator, made structural.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "queue/queue.h"
#include "util/log.h"
#include "util/xalloc.h"

#define HEADER_MAX (64 * 1024)
#define NOTICE_MAX (256 * 1024 * 1024)
#define BODY_LINES_BYTES (256 * 1024) /* at most this much body after the headers for bounce_notice_lines */

enum notice_kind { N_FAILED, N_DELAYED, N_SUCCESS };
enum returned { RETURN_HEADERS, RETURN_LINES, RETURN_FULL };

struct notice {
	enum notice_kind kind;
	int expired;
	int to_admin;                /* addressed to the administrator (flagged notice_admin) */
	int undeliverable;           /* to_admin: a failed message from <> (not a copy) */
	const unsigned char *sel;    /* the recipients reported */
	enum returned ret;
};

static void rfc5322_date(char *out, size_t n, time_t t)
{
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(out, n, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

static void admin_address(const struct config *cfg, char *out, size_t n)
{
	if (cfg->postmaster_address[0])
		snprintf(out, n, "%s", cfg->postmaster_address);
	else
		snprintf(out, n, "postmaster@%s", cfg->hostname);
}

/* Up to want bytes of the content from its start; NULL when nothing could be read. */
static char *read_content(int fd, const struct qenvelope *e, size_t want, size_t *got)
{
	if ((off_t)want > e->data_len)
		want = (size_t)e->data_len;
	char *p = xmalloc(want + 1);
	size_t n = 0;
	while (n < want) {
		ssize_t r = pread(fd, p + n, want - n, e->data_off + (off_t)n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	p[n] = '\0';
	*got = n;
	return p;
}

/* Length of the header section (through its empty line when there is one). */
static size_t header_len(const char *p, size_t n)
{
	if (n >= 2 && p[0] == '\r' && p[1] == '\n')
		return 2;
	const char *end = n >= 4 ? memmem(p, n, "\r\n\r\n", 4) : NULL;
	return end ? (size_t)(end - p) + 4 : n;
}

static void ensure_crlf(struct buf *out)
{
	if (out->len >= 2 && out->data[out->len - 1] == '\n')
		return;
	buf_puts(out, "\r\n");
}

/*
 * The third part: the original message as the sender asked (RET=FULL: all of
 * it up to bounce_size_limit; RET=HDRS: the headers; no RET: the headers and
 * bounce_notice_lines body lines).
 */
static void append_original(const struct config *cfg, int fd, const struct qenvelope *e, enum returned how,
    const char *boundary, struct buf *out)
{
	if (how == RETURN_FULL && e->data_len > cfg->bounce_size_limit)
		how = RETURN_HEADERS;
	if (how == RETURN_LINES && cfg->bounce_notice_lines == 0)
		how = RETURN_HEADERS;
	size_t want = how == RETURN_FULL ? (size_t)e->data_len : how == RETURN_LINES ? HEADER_MAX + BODY_LINES_BYTES :
	    HEADER_MAX;
	size_t n;
	char *p = read_content(fd, e, want, &n);
	size_t hl = header_len(p, n);
	size_t len = hl;
	if (how == RETURN_FULL) {
		len = n;
	} else if (how == RETURN_LINES) {
		long lines = 0;
		while (len < n && lines < cfg->bounce_notice_lines) {
			const char *nl = memchr(p + len, '\n', n - len);
			len = nl ? (size_t)(nl - p) + 1 : n;
			lines++;
		}
	}
	if (how == RETURN_HEADERS) {
		buf_appendf(out, "--%s\r\nContent-Description: Undelivered Message Headers\r\n"
		    "Content-Type: text/rfc822-headers\r\n\r\n", boundary);
		/* without the empty line that ends the header section */
		size_t keep = hl >= 4 && memcmp(p + hl - 4, "\r\n\r\n", 4) == 0 ? hl - 2 : hl;
		buf_append(out, p, keep);
	} else {
		buf_appendf(out, "--%s\r\nContent-Description: %s\r\nContent-Type: message/rfc822\r\n\r\n", boundary,
		    len < (size_t)e->data_len ? "Undelivered Message (truncated)" : "Undelivered Message");
		buf_append(out, p, len);
	}
	ensure_crlf(out);
	free(p);
}

/* The peer's host name from a relay tag "host[ip]:port". */
static void mta_name(const char *tag, char *out, size_t n)
{
	size_t k = strcspn(tag, "[:");
	if (k >= n)
		k = n - 1;
	memcpy(out, tag, k);
	out[k] = '\0';
}

static const char *action_of(const struct notice *nt, const struct qmsg *m, size_t i)
{
	if (nt->kind == N_DELAYED)
		return "delayed";
	if (nt->kind == N_SUCCESS)
		return m->success[i] == 'r' ? "relayed" : "delivered";
	return "failed";
}

/* RFC 3464 2.3.4: the class must match the action; a failure after temporary errors (4.4.7 expired) keeps its detail as 5.x.y. */
static const char *status_of(const struct notice *nt, const struct qmsg *m, size_t i, char *out, size_t n)
{
	const char *enh = m->enh[i] && m->enh[i][0] ? m->enh[i] : NULL;
	char want = nt->kind == N_DELAYED ? '4' : nt->kind == N_SUCCESS ? '2' : '5';
	if (!enh || (enh[0] != '2' && enh[0] != '4' && enh[0] != '5') || enh[1] != '.')
		snprintf(out, n, "%c.0.0", want);
	else
		snprintf(out, n, "%c%s", want, enh + 1);
	return out;
}

/* The per-recipient fields of message/delivery-status (RFC 3464 2.3). */
static void recipient_fields(const struct notice *nt, const struct qmsg *m, size_t i, struct buf *out)
{
	const struct qrcpt *r = &m->env.rcpt[i];
	buf_appendf(out, "\r\nFinal-Recipient: rfc822; %s\r\n", r->present);
	if (r->orcpt && r->orcpt[0])
		buf_appendf(out, "Original-Recipient: %s\r\n", r->orcpt);
	else if (strcmp(r->orig, r->present) != 0)
		buf_appendf(out, "Original-Recipient: rfc822; %s\r\n", r->orig);
	char status[32];
	buf_appendf(out, "Action: %s\r\nStatus: %s\r\n", action_of(nt, m, i), status_of(nt, m, i, status, sizeof(status)));
	if (m->mta[i] && m->mta[i][0]) {
		char host[256];
		mta_name(m->mta[i], host, sizeof(host));
		if (host[0])
			buf_appendf(out, "Remote-MTA: dns; %s\r\n", host);
	}
	const char *diag = m->diag[i] && m->diag[i][0] ? m->diag[i] : NULL;
	if (nt->kind == N_FAILED && !diag)
		diag = nt->expired ? "message expired in the queue" : "delivery failed";
	if (diag && m->code[i] > 0)
		buf_appendf(out, "Diagnostic-Code: smtp; %d %s %s\r\n", m->code[i], m->enh[i] ? m->enh[i] : "", diag);
	else if (diag)
		buf_appendf(out, "Diagnostic-Code: X-Tsubame; %s\r\n", diag);
}

static void human_part(const struct config *cfg, const struct notice *nt, const struct qmsg *m, const char *admin,
    struct buf *out)
{
	const struct qenvelope *e = &m->env;
	buf_appendf(out, "This is the mail system at host %s.\r\n\r\n", cfg->hostname);
	switch (nt->kind) {
	case N_DELAYED:
		buf_appendf(out, "####################################################################\r\n"
		    "# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\r\n"
		    "####################################################################\r\n\r\n"
		    "Your message could not be delivered for %ld hour(s).\r\n"
		    "It will be retried until it is %ld day(s) old.\r\n\r\n",
		    cfg->delay_warning_time / 3600, cfg->queue_lifetime / 86400);
		break;
	case N_SUCCESS:
		buf_puts(out, "Your message was successfully delivered to the destination(s)\r\n"
		    "listed below.  If the message was delivered to a mailbox you will\r\n"
		    "receive no further notifications.  Otherwise you may still receive\r\n"
		    "notifications of mail delivery errors from other systems.\r\n\r\n");
		break;
	default:
		if (nt->to_admin && nt->undeliverable)
			buf_puts(out, "A message with the null sender (a delivery notification) could not\r\n"
			    "be delivered.  It is reported to you, the administrator, once.\r\n\r\n");
		else if (nt->to_admin)
			buf_appendf(out, "This is the administrator's copy of a bounce sent to <%s>.\r\n\r\n", e->sender);
		else
			buf_appendf(out, "I'm sorry to have to inform you that your message could not\r\n"
			    "be delivered to one or more recipients.\r\n\r\n"
			    "For further assistance, please send mail to %s.\r\n\r\n", admin);
	}
	for (size_t i = 0; i < e->nrcpt; i++) {
		if (!nt->sel[i])
			continue;
		const char *text = m->diag[i] && m->diag[i][0] ? m->diag[i] :
		    nt->kind == N_FAILED ? (nt->expired ? "message expired in the queue" : "delivery failed") :
		    nt->kind == N_SUCCESS ? action_of(nt, m, i) : "temporary failure";
		buf_appendf(out, "<%s>: %s\r\n", e->rcpt[i].present, text);
	}
}

static const char *subject_of(const struct notice *nt)
{
	if (nt->kind == N_DELAYED)
		return "Delayed Mail (still being retried)";
	if (nt->kind == N_SUCCESS)
		return "Successful Mail Delivery Report";
	if (nt->to_admin)
		return nt->undeliverable ? "Undeliverable notification returned to the administrator" :
		    "Postmaster Copy: Undelivered Mail";
	return nt->expired ? "Undelivered Mail Returned to Sender (expired)" : "Undelivered Mail Returned to Sender";
}

/* The notice's content (CRLF lines) for the envelope recipient `to`. */
static void compose(struct queue *q, struct qmsg *m, const struct notice *nt, const char *to, const char *bqid,
    struct buf *out)
{
	const struct config *cfg = q->cfg;
	const struct qenvelope *e = &m->env;
	char date[64], arrival[64], boundary[80], admin[512];
	time_t now = time(NULL);
	rfc5322_date(date, sizeof(date), now);
	rfc5322_date(arrival, sizeof(arrival), (time_t)e->arrival);
	snprintf(boundary, sizeof(boundary), "%s/%s", bqid, cfg->hostname);
	admin_address(cfg, admin, sizeof(admin));

	buf_appendf(out, "Received: by %s (Tsubame) id %s; %s\r\n", cfg->hostname, bqid, date);
	buf_appendf(out, "From: MAILER-DAEMON@%s (Mail Delivery System)\r\n", cfg->hostname);
	buf_appendf(out, "To: <%s>\r\n", to);
	buf_appendf(out, "Subject: %s\r\n", subject_of(nt));
	buf_appendf(out, "Date: %s\r\nMessage-ID: <%s@%s>\r\nAuto-Submitted: auto-replied\r\n", date, bqid, cfg->hostname);
	buf_appendf(out, "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n"
	    "\tboundary=\"%s\"\r\n\r\nThis is a MIME-encapsulated message.\r\n\r\n", boundary);
	buf_appendf(out, "--%s\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
	    boundary);
	human_part(cfg, nt, m, admin, out);
	buf_appendf(out, "\r\n--%s\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n",
	    boundary);
	buf_appendf(out, "Reporting-MTA: dns; %s\r\n", cfg->hostname);
	if (e->envid && e->envid[0])
		buf_appendf(out, "Original-Envelope-Id: %s\r\n", e->envid);
	buf_appendf(out, "X-Tsubame-Queue-ID: %s\r\n", m->qid);
	if (e->sender[0])
		buf_appendf(out, "X-Tsubame-Sender: rfc822; %s\r\n", e->sender);
	buf_appendf(out, "Arrival-Date: %s\r\n", arrival);
	for (size_t i = 0; i < e->nrcpt; i++) {
		if (!nt->sel[i])
			continue;
		recipient_fields(nt, m, i, out);
		if (nt->kind == N_DELAYED) {
			char until[64];
			rfc5322_date(until, sizeof(until), (time_t)(e->arrival + cfg->queue_lifetime));
			buf_appendf(out, "Will-Retry-Until: %s\r\n", until);
		}
	}
	buf_puts(out, "\r\n");
	append_original(cfg, m->fd, e, nt->ret, boundary, out);
	buf_appendf(out, "\r\n--%s--\r\n", boundary);
}

static int write_all(int fd, const char *p, size_t left)
{
	while (left) {
		ssize_t w = write(fd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		left -= (size_t)w;
	}
	return 0;
}

/*
 * Queue one notice to `to`, resolved like any recipient.  0 queued, 1 dropped
 * (nobody to tell: logged), -1 failed (try again later).
 */
static int send_notice(struct queue *q, struct qmsg *m, const struct notice *nt, const char *to)
{
	const struct config *cfg = q->cfg;
	const struct qenvelope *e = &m->env;
	struct mailaddr addr;
	const char *why;
	struct resolved res[ALIAS_MAX_RESULTS];
	size_t nres = 0;
	int remote_only = 0;
	if (addr_parse(to, ADDR_ALLOW_UTF8, &addr, &why) < 0) {
		log_warnx("qid=%s event=notice_dropped reason=bad_address to=%s", m->qid, lq(to));
		return 1;
	}
	switch (local_resolve(q->tables, &addr, res, ALIAS_MAX_RESULTS, &nres, &why)) {
	case RESOLVE_OK:
		break;
	case RESOLVE_NOT_LOCAL:
		remote_only = 1;
		break;
	default:
		log_warnx("qid=%s event=notice_dropped reason=unknown_address to=%s", m->qid, lq(to));
		return 1;
	}

	char bqid[QID_MAX];
	int fd;
	if (spool_create(&q->spool, bqid, &fd) < 0) {
		log_warn("qid=%s event=notice_create_failed", m->qid);
		return -1;
	}
	struct qenvelope b;
	memset(&b, 0, sizeof(b));
	snprintf(b.qid, sizeof(b.qid), "%s", bqid);
	b.arrival = (long long)time(NULL);
	b.sender = "";
	b.client_addr = "127.0.0.1";
	b.client_name = "localhost";
	b.helo = cfg->hostname;
	b.proto = "local";
	/* The returned content may carry 8-bit text; UTF-8 addresses need SMTPUTF8 downstream. */
	b.body = nt->ret != RETURN_HEADERS && e->body == 1 ? 1 : 0;
	b.smtputf8 = e->smtputf8;
	b.notice_admin = nt->to_admin;
	b.nrcpt = remote_only ? 1 : nres;
	b.rcpt = xcalloc(b.nrcpt, sizeof(*b.rcpt));
	for (size_t i = 0; i < b.nrcpt; i++) {
		b.rcpt[i].state = remote_only || !res[i].account || cfg->forward_all ? RCPT_REMOTE : RCPT_LOCAL;
		b.rcpt[i].orig = (char *)to;
		b.rcpt[i].dest = remote_only ? (char *)to : res[i].dest;
		b.rcpt[i].present = remote_only ? (char *)to : res[i].present;
		/* RFC 3461 6.2: a notice asks for no notices of its own. */
		b.rcpt[i].notify = DSN_NOTIFY_NEVER;
	}
	struct buf out;
	buf_init(&out, NOTICE_MAX);
	if (qfile_write_header(&out, &b) < 0) {
		log_warnx("qid=%s event=notice_envelope_unwritable", m->qid);
		free(b.rcpt);
		buf_free(&out);
		close(fd);
		spool_abort(&q->spool, bqid);
		return -1;
	}
	free(b.rcpt);
	size_t data_start = out.len;
	compose(q, m, nt, to, bqid, &out);
	int ok = qfile_write_trailer(&out, (off_t)(out.len - data_start)) == 0 && write_all(fd, out.data, out.len) == 0;
	size_t total = out.len;
	buf_free(&out);
	if (ok && ftruncate(fd, (off_t)total) < 0)
		ok = 0; /* a recycled file may be longer */
	struct qenvelope parsed;
	char reason[256];
	memset(&parsed, 0, sizeof(parsed));
	if (!ok || qfile_parse(fd, &parsed, reason, sizeof(reason)) < 0 || spool_commit(&q->spool, bqid, fd) < 0 ||
	    spool_sync(&q->spool) < 0) {
		log_warn("qid=%s event=notice_write_failed notice=%s", m->qid, bqid);
		qenvelope_free(&parsed);
		close(fd);
		spool_abort(&q->spool, bqid);
		return -1;
	}
	static const char *kinds[] = { "failure", "delay", "success" };
	log_info("qid=%s event=notice kind=%s%s to=<%s> notice=%s", m->qid, kinds[nt->kind],
	    nt->to_admin ? (nt->undeliverable ? "_undeliverable" : "_copy") : "", lq(to), bqid);
	queue_admit(q, bqid, fd, &parsed);
	return 0;
}

static enum returned returned_for(const struct qenvelope *e)
{
	return e->ret == DSN_RET_FULL ? RETURN_FULL : e->ret == DSN_RET_HDRS ? RETURN_HEADERS : RETURN_LINES;
}

int bounce_queue(struct queue *q, struct qmsg *m, int expired)
{
	const struct qenvelope *e = &m->env;
	size_t n = e->nrcpt;
	char admin[512];
	admin_address(q->cfg, admin, sizeof(admin));
	for (size_t i = 0; i < n; i++)
		if (m->perm[i])
			log_to_mask((1u << LOG_FAILURE) | (1u << LOG_DELIVERY), "qid=%s event=bounced to=<%s> dsn=%s reason=%s",
			    m->qid, lq(e->rcpt[i].dest), m->enh[i] ? m->enh[i] : "5.0.0",
			    lq(m->diag[i] ? m->diag[i] : "expired"));

	if (e->sender[0] == '\0') {
		if (e->notice_admin) {
			for (size_t i = 0; i < n; i++)
				if (m->perm[i])
					log_to(LOG_FAILURE, "qid=%s event=notice_dropped reason=admin_notice_failed to=<%s>", m->qid,
					    lq(e->rcpt[i].dest));
			return 0;
		}
		/* A notification that cannot be delivered: the administrator hears of it once. */
		struct notice nt = { N_FAILED, expired, 1, 1, m->perm, RETURN_HEADERS };
		return send_notice(q, m, &nt, admin) < 0 ? -1 : 0;
	}

	unsigned char *sel = xcalloc(n ? n : 1, 1);
	int any = 0;
	for (size_t i = 0; i < n; i++) {
		if (!m->perm[i])
			continue;
		unsigned nf = e->rcpt[i].notify;
		if (nf == 0 || (nf & DSN_NOTIFY_FAILURE)) {
			sel[i] = 1;
			any = 1;
		} else {
			log_info("qid=%s event=notice_suppressed kind=failure to=<%s> notify=%u", m->qid, lq(e->rcpt[i].dest), nf);
		}
	}
	int rc = 0;
	if (any) {
		struct notice nt = { N_FAILED, expired, 0, 0, sel, returned_for(e) };
		rc = send_notice(q, m, &nt, e->sender) < 0 ? -1 : 0;
	}
	/* The copy is a courtesy: its failure is logged, it does not hold up the bounce. */
	if (rc == 0 && q->cfg->bounce_admin_copy && !e->notice_admin && strcasecmp(e->sender, admin) != 0) {
		struct notice nt = { N_FAILED, expired, 1, 0, m->perm, RETURN_HEADERS };
		send_notice(q, m, &nt, admin);
	}
	free(sel);
	return rc;
}

int delay_queue(struct queue *q, struct qmsg *m, const unsigned char *sel)
{
	const struct qenvelope *e = &m->env;
	if (e->sender[0] == '\0')
		return 0;
	unsigned char *want = xcalloc(e->nrcpt ? e->nrcpt : 1, 1);
	int any = 0;
	for (size_t i = 0; i < e->nrcpt; i++) {
		unsigned nf = e->rcpt[i].notify;
		if (sel[i] && (nf == 0 || (nf & DSN_NOTIFY_DELAY))) {
			want[i] = 1;
			any = 1;
		}
	}
	int rc = 0;
	if (any) {
		struct notice nt = { N_DELAYED, 0, 0, 0, want, RETURN_HEADERS };
		rc = send_notice(q, m, &nt, e->sender) < 0 ? -1 : 0;
	}
	free(want);
	return rc;
}

int success_queue(struct queue *q, struct qmsg *m)
{
	const struct qenvelope *e = &m->env;
	if (e->sender[0] == '\0')
		return 0;
	struct notice nt = { N_SUCCESS, 0, 0, 0, m->success, RETURN_HEADERS };
	return send_notice(q, m, &nt, e->sender) < 0 ? -1 : 0;
}
