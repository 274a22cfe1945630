/*
 * unixsock: the address of a UNIX socket in a folder, whatever the folder's
 * length.  sun_path holds 108 bytes; a longer path is reached through the
 * folder's descriptor as /proc/self/fd/N/NAME (Linux), so a deep work_dir
 * still works.
 */
#ifndef TSUBAME_UNIXSOCK_H
#define TSUBAME_UNIXSOCK_H

#include <sys/socket.h>
#include <sys/un.h>

/*
 * Fill sa (and *salen) for dir/name.  *dfd is -1, or a descriptor of dir the
 * address goes through: keep it open until bind()/connect() returned, then
 * close it.  0, or -1 with errno (ENAMETOOLONG, or what open(dir) said).
 */
int unixsock_addr(const char *dir, const char *name, struct sockaddr_un *sa, socklen_t *salen, int *dfd);

#endif
