/*
 * qid: queue ids, unique across the nodes that share one spool.
 *
 * A qid is time-ordered and names its node: "<12 base32 time µs><4 base32 random>.<node>",
 * e.g. "0G6BQ4V5K0P3H2JX.mx1".  Never derived from inode numbers (NFS), unique
 * without any lock: the random part and the node name separate writers, and the
 * file is created with O_EXCL anyway.  Only [0-9A-Za-z.] appear, so a qid is a
 * safe file name.
 */
#ifndef TSUBAME_QID_H
#define TSUBAME_QID_H

#include <stddef.h>

#define QID_MAX 40 /* including NUL */

void qid_new(char out[QID_MAX], const char *node);
/* 1 when s has the shape of a qid (safe as a file name). */
int qid_valid(const char *s);
/* Node part of a qid (pointer into s), or NULL. */
const char *qid_node(const char *s);

#endif
