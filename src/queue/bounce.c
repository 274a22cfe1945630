/*
 * bounce: delivery status notifications (RFC 3464) for failed recipients.
 *
 * A bounce is a new queue file from <> to the original sender, written and
 * committed (fdatasync, rename, directory fsync) before the caller marks the
 * failed recipients as bounced: invariant 2.  Never a bounce to <>: such
 * failures are logged and dropped (there is nobody to tell).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "queue/queue.h"
#include "util/log.h"
#include "util/xalloc.h"

#define HEADER_MAX (64 * 1024)

static void rfc5322_date(char *out, size_t n, time_t t)
{
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(out, n, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

/* The original header section (up to HEADER_MAX), CRLF lines. */
static void original_headers(int fd, const struct qenvelope *e, struct buf *out)
{
	size_t want = e->data_len < HEADER_MAX ? (size_t)e->data_len : HEADER_MAX;
	char *p = xmalloc(want + 1);
	ssize_t n = pread(fd, p, want, e->data_off);
	if (n > 0) {
		p[n] = '\0';
		char *end = strstr(p, "\r\n\r\n");
		size_t len = end ? (size_t)(end - p) + 2 : (size_t)n;
		buf_append(out, p, len);
		if (len && p[len - 1] != '\n')
			buf_puts(out, "\r\n");
	}
	free(p);
}

int bounce_queue(struct queue *q, struct qmsg *m, int expired)
{
	const struct config *cfg = q->cfg;
	const struct qenvelope *e = &m->env;
	if (e->sender[0] == '\0') {
		for (size_t i = 0; i < e->nrcpt; i++)
			if (m->perm[i])
				log_to(LOG_FAILURE, "qid=%s event=bounce_dropped reason=null_sender to=<%s> dsn=%s", m->qid,
				    lq(e->rcpt[i].dest), m->enh[i] ? m->enh[i] : "5.0.0");
		return 0;
	}
	/* Where does the bounce go?  The sender is resolved like any recipient. */
	struct mailaddr sender;
	const char *why;
	struct resolved res[ALIAS_MAX_RESULTS];
	size_t nres = 0;
	int remote_only = 0;
	if (addr_parse(e->sender, ADDR_ALLOW_UTF8, &sender, &why) < 0) {
		log_warnx("qid=%s event=bounce_dropped reason=bad_sender sender=%s", m->qid, lq(e->sender));
		return 0;
	}
	switch (local_resolve(q->tables, &sender, res, ALIAS_MAX_RESULTS, &nres, &why)) {
	case RESOLVE_OK:
		break;
	case RESOLVE_NOT_LOCAL:
		remote_only = 1;
		break;
	default:
		log_warnx("qid=%s event=bounce_dropped reason=sender_unknown sender=%s", m->qid, lq(e->sender));
		return 0;
	}

	char bqid[QID_MAX];
	int fd;
	if (spool_create(&q->spool, bqid, &fd) < 0) {
		log_warn("qid=%s event=bounce_create_failed", m->qid);
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
	b.nrcpt = remote_only ? 1 : nres;
	b.rcpt = xcalloc(b.nrcpt, sizeof(*b.rcpt));
	for (size_t i = 0; i < b.nrcpt; i++) {
		b.rcpt[i].state = remote_only || !res[i].account ? RCPT_REMOTE : RCPT_LOCAL;
		b.rcpt[i].orig = e->sender;
		b.rcpt[i].dest = remote_only ? e->sender : res[i].dest;
		b.rcpt[i].present = remote_only ? e->sender : res[i].present;
	}
	struct buf out;
	buf_init(&out, 256 * 1024 * 1024);
	if (qfile_write_header(&out, &b) < 0) {
		log_warnx("qid=%s event=bounce_envelope_unwritable", m->qid);
		free(b.rcpt);
		buf_free(&out);
		close(fd);
		spool_abort(&q->spool, bqid);
		return -1;
	}
	size_t data_start = out.len;

	char date[64], arrival[64], boundary[80];
	rfc5322_date(date, sizeof(date), time(NULL));
	rfc5322_date(arrival, sizeof(arrival), (time_t)e->arrival);
	snprintf(boundary, sizeof(boundary), "%s/%s", m->qid, cfg->hostname);
	const char *postmaster = cfg->postmaster_address[0] ? cfg->postmaster_address : NULL;
	buf_appendf(&out, "Received: by %s (Tsubame) id %s; %s\r\n", cfg->hostname, bqid, date);
	buf_appendf(&out, "From: MAILER-DAEMON@%s (Mail Delivery System)\r\n", cfg->hostname);
	buf_appendf(&out, "To: <%s>\r\n", e->sender);
	buf_appendf(&out, "Subject: %s\r\n", expired ? "Undelivered Mail Returned to Sender (expired)" :
	    "Undelivered Mail Returned to Sender");
	buf_appendf(&out, "Date: %s\r\nMessage-ID: <%s@%s>\r\nAuto-Submitted: auto-replied\r\n", date, bqid, cfg->hostname);
	buf_appendf(&out, "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n"
	    "\tboundary=\"%s\"\r\n\r\nThis is a MIME-encapsulated message.\r\n\r\n", boundary);
	buf_appendf(&out, "--%s\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
	    boundary);
	buf_appendf(&out, "This is the mail system at host %s.\r\n\r\n"
	    "I'm sorry to have to inform you that your message could not\r\n"
	    "be delivered to one or more recipients.\r\n\r\n"
	    "For further assistance, please send mail to %s%s.\r\n\r\n",
	    cfg->hostname, postmaster ? postmaster : "postmaster@", postmaster ? "" : cfg->hostname);
	for (size_t i = 0; i < e->nrcpt; i++)
		if (m->perm[i])
			buf_appendf(&out, "<%s>: %s\r\n", e->rcpt[i].present,
			    m->diag[i] ? m->diag[i] : (expired ? "message expired in the queue" : "delivery failed"));
	buf_appendf(&out, "\r\n--%s\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\n",
	    boundary);
	buf_appendf(&out, "Reporting-MTA: dns; %s\r\nX-Tsubame-Queue-ID: %s\r\nArrival-Date: %s\r\n", cfg->hostname,
	    m->qid, arrival);
	for (size_t i = 0; i < e->nrcpt; i++) {
		if (!m->perm[i])
			continue;
		const char *status = m->enh[i] && m->enh[i][0] ? m->enh[i] : "5.0.0";
		buf_appendf(&out, "\r\nFinal-Recipient: rfc822; %s\r\nOriginal-Recipient: rfc822; %s\r\n"
		    "Action: failed\r\nStatus: %s\r\nDiagnostic-Code: X-Tsubame; %s\r\n",
		    e->rcpt[i].present, e->rcpt[i].orig, status, m->diag[i] ? m->diag[i] : "expired");
	}
	buf_appendf(&out, "\r\n--%s\r\nContent-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n",
	    boundary);
	original_headers(m->fd, e, &out);
	buf_appendf(&out, "\r\n--%s--\r\n", boundary);
	int ok = qfile_write_trailer(&out, (off_t)(out.len - data_start)) == 0;
	free(b.rcpt);

	const char *p = out.data;
	size_t left = out.len;
	while (ok && left) {
		ssize_t w = write(fd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			ok = 0;
		else {
			p += w;
			left -= (size_t)w;
		}
	}
	size_t total = out.len;
	buf_free(&out);
	if (ok && ftruncate(fd, (off_t)total) < 0)
		ok = 0; /* a recycled file may be longer */
	struct qenvelope parsed;
	char reason[256];
	memset(&parsed, 0, sizeof(parsed));
	if (!ok || qfile_parse(fd, &parsed, reason, sizeof(reason)) < 0 || spool_commit(&q->spool, bqid, fd) < 0 ||
	    spool_sync(&q->spool) < 0) {
		log_warn("qid=%s event=bounce_write_failed bounce=%s", m->qid, bqid);
		qenvelope_free(&parsed);
		close(fd);
		spool_abort(&q->spool, bqid);
		return -1;
	}
	for (size_t i = 0; i < e->nrcpt; i++)
		if (m->perm[i])
			log_to_mask((1u << LOG_FAILURE) | (1u << LOG_DELIVERY),
			    "qid=%s event=bounced to=<%s> dsn=%s bounce=%s reason=%s", m->qid,
			    lq(e->rcpt[i].dest), m->enh[i] ? m->enh[i] : "5.0.0", bqid, lq(m->diag[i] ? m->diag[i] : "expired"));
	queue_admit(q, bqid, fd, &parsed);
	return 0;
}
