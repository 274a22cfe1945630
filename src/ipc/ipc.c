/*
 * ipc: message channels between processes (see ipc.h).
 * SECURITY: a message is parsed only through the bounds-checked getters; a
 * short, long or malformed message marks the reader bad and ipc_end() rejects it.
 */
#include "ipc/ipc.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/log.h"
#include "util/xalloc.h"

struct ipc_out {
	struct ipc_out *next;
	size_t len;
	int fd;
	unsigned char data[];
};

static int send_one(struct ipc_channel *ch, struct ipc_out *o)
{
	struct msghdr mh;
	struct iovec iov = { o->data, o->len };
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;

	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (o->fd >= 0) {
		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &o->fd, sizeof(int));
	}
	ssize_t n = sendmsg(ch->fd, &mh, MSG_NOSIGNAL);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS ? 0 : -1;
	return 1;
}

static void flush_out(struct ipc_channel *ch)
{
	while (ch->out_head) {
		struct ipc_out *o = ch->out_head;
		int r = send_one(ch, o);
		if (r == 0) {
			event_add(ch->ev_write, NULL);
			return;
		}
		if (r < 0) {
			log_warn("event=ipc_send_failed peer=%s", ch->peer);
			ipc_channel_close(ch);
			return;
		}
		ch->out_head = o->next;
		if (!ch->out_head)
			ch->out_tail = NULL;
		ch->out_count--;
		if (o->fd >= 0)
			close(o->fd);
		free(o);
	}
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	flush_out(arg);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct ipc_channel *ch = arg;
	static unsigned char data[IPC_MAX_MESSAGE + 16];

	/* Drain everything available: many sessions' commits arrive in one pass (group commit). */
	for (int rounds = 0; rounds < 1024 && !ch->closed; rounds++) {
		struct msghdr mh;
		struct iovec iov = { data, sizeof(data) };
		union {
			struct cmsghdr align;
			char buf[CMSG_SPACE(sizeof(int) * 4)];
		} cm;
		memset(&mh, 0, sizeof(mh));
		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cm.buf;
		mh.msg_controllen = sizeof(cm.buf);
		ssize_t n = recvmsg(ch->fd, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
				if (ch->on_batch_end)
					ch->on_batch_end(ch, ch->arg);
				return;
			}
			log_warn("event=ipc_recv_failed peer=%s", ch->peer);
		}
		if (n <= 0) {
			ipc_channel_close(ch);
			if (ch->on_close)
				ch->on_close(ch, ch->arg);
			return;
		}
		int rfd = -1, extra = 0;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < nfd; i++) {
				int f;
				memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				if (rfd < 0)
					rfd = f;
				else {
					close(f);
					extra = 1;
				}
			}
		}
		if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || extra || n < 8) {
			log_warnx("event=ipc_bad_message peer=%s size=%zd", ch->peer, n);
			if (rfd >= 0)
				close(rfd);
			continue;
		}
		uint32_t type, len;
		memcpy(&type, data, 4);
		memcpy(&len, data + 4, 4);
		if (len != (size_t)n - 8) {
			log_warnx("event=ipc_bad_length peer=%s type=%u", ch->peer, type);
			if (rfd >= 0)
				close(rfd);
			continue;
		}
		struct ipc_msg m = { type, data + 8, len, 0, rfd, 0 };
		ch->on_msg(ch, &m, ch->arg);
	}
	if (!ch->closed && ch->on_batch_end)
		ch->on_batch_end(ch, ch->arg);
}

void ipc_channel_init(struct ipc_channel *ch, struct event_base *base, int fd, const char *peer,
    ipc_msg_fn on_msg, ipc_close_fn on_close, void *arg)
{
	memset(ch, 0, sizeof(*ch));
	ch->fd = fd;
	ch->peer = peer;
	ch->on_msg = on_msg;
	ch->on_close = on_close;
	ch->arg = arg;
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	ch->ev_read = event_new(base, fd, EV_READ | EV_PERSIST, on_read, ch);
	ch->ev_write = event_new(base, fd, EV_WRITE, on_write, ch);
	event_add(ch->ev_read, NULL);
}

void ipc_channel_close(struct ipc_channel *ch)
{
	if (ch->closed)
		return;
	ch->closed = 1;
	event_free(ch->ev_read);
	event_free(ch->ev_write);
	while (ch->out_head) {
		struct ipc_out *o = ch->out_head;
		ch->out_head = o->next;
		if (o->fd >= 0)
			close(o->fd);
		free(o);
	}
	ch->out_tail = NULL;
	close(ch->fd);
	ch->fd = -1;
}

void ipc_send(struct ipc_channel *ch, uint32_t type, const struct buf *payload, int fd)
{
	if (ch->closed)
		return;
	size_t plen = payload ? payload->len : 0;
	if (plen > IPC_MAX_MESSAGE)
		panic("ipc message type %u too large: %zu", type, plen);
	struct ipc_out *o = xmalloc(sizeof(*o) + 8 + plen);
	uint32_t len = (uint32_t)plen;
	memcpy(o->data, &type, 4);
	memcpy(o->data + 4, &len, 4);
	if (plen)
		memcpy(o->data + 8, payload->data, plen);
	o->len = 8 + plen;
	o->next = NULL;
	o->fd = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 3) : -1;
	if (fd >= 0 && o->fd < 0)
		fatal("event=ipc_dup_failed");
	if (ch->out_tail)
		ch->out_tail->next = o;
	else
		ch->out_head = o;
	ch->out_tail = o;
	ch->out_count++;
	if (ch->out_count == 1)
		flush_out(ch);
}

void ipc_put_u32(struct buf *b, uint32_t v)
{
	if (buf_append(b, &v, 4) < 0)
		panic("ipc payload overflow");
}

void ipc_put_u64(struct buf *b, uint64_t v)
{
	if (buf_append(b, &v, 8) < 0)
		panic("ipc payload overflow");
}

void ipc_put_str(struct buf *b, const char *s)
{
	size_t n = strlen(s);
	ipc_put_u32(b, (uint32_t)n);
	if (buf_append(b, s, n + 1) < 0)
		panic("ipc payload overflow");
}

static const unsigned char *take(struct ipc_msg *m, size_t n)
{
	if (m->bad || n > m->len - m->pos) {
		m->bad = 1;
		return NULL;
	}
	const unsigned char *p = m->p + m->pos;
	m->pos += n;
	return p;
}

uint32_t ipc_get_u32(struct ipc_msg *m)
{
	uint32_t v = 0;
	const unsigned char *p = take(m, 4);
	if (p)
		memcpy(&v, p, 4);
	return v;
}

uint64_t ipc_get_u64(struct ipc_msg *m)
{
	uint64_t v = 0;
	const unsigned char *p = take(m, 8);
	if (p)
		memcpy(&v, p, 8);
	return v;
}

const char *ipc_get_str(struct ipc_msg *m)
{
	uint32_t n = ipc_get_u32(m);
	if (m->bad || n >= m->len)
		goto bad;
	const unsigned char *p = take(m, (size_t)n + 1);
	if (!p || p[n] != '\0' || memchr(p, '\0', n))
		goto bad;
	return (const char *)p;
bad:
	m->bad = 1;
	return "";
}

int ipc_end(struct ipc_msg *m)
{
	if (m->bad || m->pos != m->len) {
		log_warnx("event=ipc_malformed type=%u len=%zu pos=%zu", m->type, m->len, m->pos);
		return -1;
	}
	return 0;
}
