/*
 * local: delivery of one message copy to one local account's Maildir (L3), with
 * the checks that must be repeated at delivery time: the account still exists,
 * the quota (R5, "checked at RCPT and again at delivery") and the hop count
 * (a loop found here is bounced 5.4.6).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "deliver/deliver.h"
#include "local/maildir.h"
#include "smtp/dot.h"
#include "util/log.h"

unsigned count_received(int fd, off_t off, off_t len)
{
	struct header_scan hs;
	char chunk[16 * 1024];
	off_t pos = 0;
	header_scan_init(&hs);
	/* The header section is bounded in practice; stop after 1 MiB regardless. */
	while (pos < len && hs.in_headers && pos < 1024 * 1024) {
		size_t want = (size_t)(len - pos) < sizeof(chunk) ? (size_t)(len - pos) : sizeof(chunk);
		ssize_t n = pread(fd, chunk, want, off + pos);
		if (n <= 0)
			break;
		header_scan_feed(&hs, chunk, (size_t)n);
		pos += n;
	}
	return hs.received;
}

static void result(struct local_result *r, enum deliver_status st, const char *enh, const char *fmt, const char *arg)
{
	r->status = st;
	snprintf(r->enh, sizeof(r->enh), "%s", enh);
	snprintf(r->text, sizeof(r->text), fmt, arg);
}

void local_deliver(const struct config *cfg, const struct local_tables *t, int fd, off_t off, off_t len,
    const char *sender, const char *dest, const char *present, unsigned received, int defer_dir_sync,
    struct local_result *r)
{
	memset(r, 0, sizeof(*r));
	if (received > (unsigned)cfg->max_received_headers) {
		result(r, DELIVER_PERMFAIL, "5.4.6", "mail forwarding loop for %s", dest);
		return;
	}
	const struct account *a = local_account(t, dest);
	if (!a) {
		result(r, DELIVER_PERMFAIL, "5.1.1", "user unknown: %s", dest);
		return;
	}
	if (mailbox_path_expand(cfg->mailbox_path, a, r->mailbox, sizeof(r->mailbox)) < 0) {
		result(r, DELIVER_TEMPFAIL, "4.3.5", "bad mailbox path for %s", dest);
		return;
	}
	long limit = local_quota(cfg, t, a);
	const struct domain *d = domains_find(&t->domains, a->domain);
	if (d && d->max_message_size > 0 && len > d->max_message_size) {
		result(r, DELIVER_PERMFAIL, "5.3.4", "message too large for the domain of %s", dest);
		return;
	}
	long max_msgs = d ? d->max_messages : 0;
	if (limit > 0 || max_msgs > 0) {
		long long bytes = 0, msgs = 0;
		if (maildir_quota_usage(r->mailbox, limit, max_msgs, &bytes, &msgs) == 0 &&
		    ((limit > 0 && bytes + (long long)len > limit) || (max_msgs > 0 && msgs >= max_msgs))) {
			result(r, DELIVER_PERMFAIL, "5.2.2", "mailbox full: %s", dest);
			return;
		}
	}
	struct maildir_delivery md = {
		.maildir = r->mailbox,
		.return_path = sender,
		.delivered_to = present,
		.hostname = cfg->hostname,
		.data_fd = fd,
		.data_off = off,
		.data_len = len,
		.defer_dir_sync = defer_dir_sync,
	};
	char why[400];
	int temporary = 1;
	if (maildir_deliver(&md, why, sizeof(why), &temporary) < 0) {
		result(r, temporary ? DELIVER_TEMPFAIL : DELIVER_PERMFAIL, temporary ? "4.3.0" : "5.3.0", "%s", why);
		return;
	}
	result(r, DELIVER_OK, "2.0.0", "delivered to maildir %s", r->mailbox);
}
