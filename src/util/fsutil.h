/*
 * fsutil: small file-system steps that durability depends on.
 * A new name or a rename survives a crash only once its directory is fsynced;
 * this is the one place that does that by path (Maildir delivery, table rewrites).
 */
#ifndef TSUBAME_FSUTIL_H
#define TSUBAME_FSUTIL_H

/* fsync the directory at path; 0, or -1 with errno (close never changes it). */
int fsync_dir(const char *path);

#endif
