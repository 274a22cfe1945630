/* unixsock: UNIX socket addresses for paths of any length (see unixsock.h). */
#include "util/unixsock.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int unixsock_addr(const char *dir, const char *name, struct sockaddr_un *sa, socklen_t *salen, int *dfd)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	*dfd = -1;
	int n = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof(sa->sun_path)) {
		int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return -1;
		n = snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d/%s", fd, name);
		if (n < 0 || (size_t)n >= sizeof(sa->sun_path)) {
			close(fd);
			errno = ENAMETOOLONG;
			return -1;
		}
		*dfd = fd;
	}
	*salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
	return 0;
}
