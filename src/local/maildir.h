/*
 * maildir: Maildir delivery (L3) and mailbox usage for quotas.
 *
 * A delivery writes tmp/<unique>, fsyncs it, renames it into new/ and fsyncs new/:
 * only then is it reported as delivered (invariant 2).  Unique names follow the
 * Maildir convention "<sec>.M<usec>P<pid>Q<n>.<host>,S=<size>" so that Dovecot and
 * quota code read the size without stat().  Content is stored with LF line ends
 * (CRLF from the queue file becomes LF; bare CR is kept), as Unix MTAs do.
 */
#ifndef TSUBAME_MAILDIR_H
#define TSUBAME_MAILDIR_H

#include <stddef.h>
#include <sys/types.h>

#include "local/accounts.h"

/*
 * Expand %USERNAME% %DOMAIN% %HOME% (case-sensitive tokens).  0, or -1 when too long
 * or unsafe: not absolute, "/../" or a final "/..", an empty value for a token used,
 * or a '/' (or a name "." or "..") in the account name or domain.
 */
int mailbox_path_expand(const char *tmpl, const struct account *a, char *out, size_t outsz);

/* Usage over new/ and cur/ by listing them; a missing Maildir is empty.  0 or -1 (errno). */
int maildir_usage(const char *maildir, long long *bytes, long long *messages);
/*
 * The same for a quota check, through the Maildir++ maildirsize file (one small
 * read; recounted with maildir_usage and rewritten when stale or absent).  The
 * limits are written as its quota line.  0 or -1 (errno).
 */
int maildir_quota_usage(const char *maildir, long limit_bytes, long limit_msgs, long long *bytes, long long *messages);

struct maildir_delivery {
	const char *maildir;      /* created (with tmp/ new/ cur/, mode 0700) when missing */
	const char *return_path;  /* envelope sender, "" for <> */
	const char *delivered_to; /* envelope recipient */
	const char *hostname;
	int data_fd;              /* queue file */
	off_t data_off;           /* message content: CRLF lines */
	off_t data_len;
	int defer_dir_sync;       /* leave the fsync of new/ to the caller (group commit); see below */
};

/*
 * Deliver one copy.  0 on success (fsynced into new/).  -1 on failure with a reason
 * in why; *temporary says whether a retry may succeed (disk full, I/O error) or not.
 */
int maildir_deliver(const struct maildir_delivery *d, char *why, size_t whysz, int *temporary);

/*
 * With defer_dir_sync set, maildir_deliver() stops after the rename into new/:
 * the copy is complete and fsynced but its name is not yet durable.  The caller
 * must then fsync "<maildir>/new" (fsync_dir) before it reports the delivery,
 * once for any number of deliveries into that folder.
 */

#endif
