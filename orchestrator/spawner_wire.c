/* spawner_wire.c - the spawner's messages: building, reading, sending with
 * descriptors. See spawner_int.h. */
#include "spawner_int.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

static void put(struct spw_out *o, const void *p, size_t n)
{
	if (o->len + n > o->cap) {
		o->cap = MAX(o->cap * 2, o->len + n + 256);
		o->p = xrealloc(o->p, o->cap);
	}
	memcpy(o->p + o->len, p, n);
	o->len += n;
}

void spw_begin(struct spw_out *o, enum spw_type type, uint32_t id)
{
	o->len = 0;
	spw_put_u32(o, (uint32_t)type);
	spw_put_u32(o, id);
}

void spw_put_u32(struct spw_out *o, uint32_t v) { put(o, &v, sizeof(v)); }
void spw_put_i32(struct spw_out *o, int32_t v) { put(o, &v, sizeof(v)); }

void spw_put_str(struct spw_out *o, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	spw_put_u32(o, (uint32_t)MIN(n, (size_t)SPW_MSG_MAX)); /* over it: spw_send refuses */
	put(o, s ? s : "", n);
	put(o, "", 1);
}

void spw_out_free(struct spw_out *o)
{
	free(o->p);
	*o = (struct spw_out){ 0 };
}

static bool get(struct spw_in *in, void *p, size_t n)
{
	if (in->bad || in->len - in->off < n) {
		in->bad = true;
		memset(p, 0, n);
		return false;
	}
	memcpy(p, in->p + in->off, n);
	in->off += n;
	return true;
}

uint32_t spw_get_u32(struct spw_in *in)
{
	uint32_t v;

	get(in, &v, sizeof(v));
	return v;
}

int32_t spw_get_i32(struct spw_in *in)
{
	int32_t v;

	get(in, &v, sizeof(v));
	return v;
}

const char *spw_get_str(struct spw_in *in)
{
	uint32_t n = spw_get_u32(in);
	const char *s;

	if (in->bad || in->len - in->off < (size_t)n + 1) {
		in->bad = true;
		return NULL;
	}
	s = (const char *)in->p + in->off;
	if (s[n] != '\0' || memchr(s, '\0', n)) {
		in->bad = true;
		return NULL;
	}
	in->off += (size_t)n + 1;
	return s;
}

bool spw_done(const struct spw_in *in) { return !in->bad && in->off == in->len; }

void spw_in_init(struct spw_in *in, const uint8_t *buf, size_t len, uint32_t *type,
		 uint32_t *id)
{
	*in = (struct spw_in){ .p = buf, .len = len };
	*type = spw_get_u32(in);
	*id = spw_get_u32(in);
}

int spw_send(int sock, const struct spw_out *o, const int *fds, size_t n)
{
	char ctl[CMSG_SPACE(sizeof(int) * SPW_FDS_MAX)] = { 0 };
	struct iovec iov = { .iov_base = o->p, .iov_len = o->len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;
	ssize_t r;

	if (o->len > SPW_MSG_MAX || n > SPW_FDS_MAX)
		return -EMSGSIZE;
	if (n) {
		mh.msg_control = ctl;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * n);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	}
	do
		r = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return (size_t)r == o->len ? 0 : -EIO;
}

/* Takes the descriptors of every SCM_RIGHTS header: up to SPW_FDS_MAX
 * into fds, the rest closed. Returns false when some were dropped. */
static bool take_fds(struct msghdr *mh, int *fds, size_t *n_fds)
{
	bool ok = true;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (*n_fds < SPW_FDS_MAX) {
				fds[(*n_fds)++] = fd;
			} else {
				close(fd);
				ok = false;
			}
		}
	}
	return ok;
}

long spw_recv(int sock, uint8_t *buf, int *fds, size_t *n_fds, bool dontwait)
{
	/* Room for more than SPW_FDS_MAX: a peer sending too many is told
	 * apart from one sending the right number. */
	char ctl[CMSG_SPACE(sizeof(int) * (SPW_FDS_MAX + 4))];
	struct iovec iov = { .iov_base = buf, .iov_len = SPW_MSG_MAX };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
			     .msg_controllen = sizeof(ctl) };
	int flags = MSG_CMSG_CLOEXEC | MSG_TRUNC | (dontwait ? MSG_DONTWAIT : 0);
	ssize_t r;

	*n_fds = 0;
	do
		r = recvmsg(sock, &mh, flags);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (!take_fds(&mh, fds, n_fds) || (mh.msg_flags & MSG_CTRUNC))
		return -EBADMSG;
	if ((size_t)r > SPW_MSG_MAX || (mh.msg_flags & MSG_TRUNC))
		return -EMSGSIZE;
	return (long)r;
}
