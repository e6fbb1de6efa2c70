/* wqueue.c - see wqueue.h.
 *
 * A ring buffer rather than a list of chunks: one allocation, no per-message
 * header, at most two iovecs per writev, and no compaction ever (a queue
 * near its bound would otherwise move nearly max_bytes for every small
 * write). It grows by doubling up to max_bytes, and a large ring is released
 * once drained so an idle peer does not pin a burst's worth of memory.
 */
#include "wqueue.h"

#include "util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define WQUEUE_MIN_CAP 4096u
#define WQUEUE_KEEP_CAP 65536u /* rings above this are freed when drained */

void wqueue_init(struct wqueue *q, size_t max_bytes)
{
	*q = (struct wqueue){ .max_bytes = max_bytes };
}

void wqueue_free(struct wqueue *q)
{
	if (!q)
		return;
	free(q->buf);
	q->buf = NULL;
	q->cap = q->head = q->len = 0;
}

size_t wqueue_pending(const struct wqueue *q) { return q->len; }

/* Fills iov with the queued bytes in order; returns how many iovecs. */
static int ring_iov(const struct wqueue *q, struct iovec iov[2])
{
	size_t first = MIN(q->len, q->cap - q->head);

	iov[0] = (struct iovec){ q->buf + q->head, first };
	if (first == q->len)
		return 1;
	iov[1] = (struct iovec){ q->buf, q->len - first };
	return 2;
}

/* Reallocates to hold at least `need` bytes, unwrapping the contents. */
static void ring_grow(struct wqueue *q, size_t need)
{
	size_t cap = MAX(q->cap > SIZE_MAX / 2 ? SIZE_MAX : q->cap * 2, WQUEUE_MIN_CAP);
	struct iovec iov[2];
	char *nb;
	int n;

	cap = MAX(MIN(cap, q->max_bytes), need);
	nb = xmalloc(cap);
	if (q->len > 0) {
		n = ring_iov(q, iov);
		memcpy(nb, iov[0].iov_base, iov[0].iov_len);
		if (n == 2)
			memcpy(nb + iov[0].iov_len, iov[1].iov_base, iov[1].iov_len);
	}
	free(q->buf);
	q->buf = nb;
	q->cap = cap;
	q->head = 0;
}

static void ring_copy_in(struct wqueue *q, const char *p, size_t n)
{
	size_t tail = q->head + q->len;
	size_t first;

	if (n == 0)
		return;
	if (tail >= q->cap)
		tail -= q->cap;
	first = MIN(n, q->cap - tail);
	memcpy(q->buf + tail, p, first);
	memcpy(q->buf, p + first, n - first);
	q->len += n;
}

static void ring_consume(struct wqueue *q, size_t n)
{
	q->len -= n;
	q->head += n;
	if (q->head >= q->cap)
		q->head -= q->cap;
	if (q->len > 0)
		return;
	q->head = 0;
	if (q->cap > WQUEUE_KEEP_CAP)
		wqueue_free(q);
}

static bool fits(const struct wqueue *q, size_t alen, size_t blen)
{
	return alen <= q->max_bytes && blen <= q->max_bytes - alen &&
	       q->len <= q->max_bytes - alen - blen;
}

int wqueue_push2(struct wqueue *q, const void *a, size_t alen, const void *b, size_t blen)
{
	if (!fits(q, alen, blen))
		return -ENOBUFS;
	if (q->len + alen + blen > q->cap)
		ring_grow(q, q->len + alen + blen);
	ring_copy_in(q, a, alen);
	ring_copy_in(q, b, blen);
	return 0;
}

int wqueue_push(struct wqueue *q, const void *data, size_t len)
{
	return wqueue_push2(q, data, len, NULL, 0);
}

/* One writev; returns bytes written (0 for EAGAIN) or -errno. */
static ssize_t writev_once(int fd, const struct iovec *iov, int n)
{
	ssize_t w;

	do
		w = writev(fd, iov, n);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
	return w;
}

/* A single writev per call: a short write means the fd is full, and with
 * level-triggered epoll the caller hears LOOP_WRITE as soon as it is not,
 * so a second attempt would almost always just cost an EAGAIN. */
int wqueue_flush(struct wqueue *q, int fd)
{
	struct iovec iov[2];
	ssize_t w;

	if (q->len == 0)
		return 0;
	w = writev_once(fd, iov, ring_iov(q, iov));
	if (w < 0)
		return (int)w;
	ring_consume(q, (size_t)w);
	return q->len > 0;
}

static int write_or_queue(struct wqueue *q, int fd, const void *a, size_t alen, const void *b,
			  size_t blen, bool hold)
{
	struct iovec iov[2] = { { (void *)a, alen }, { (void *)b, blen } };
	size_t w;
	ssize_t r;

	if (!fits(q, alen, blen))
		return -ENOBUFS;
	if (q->len > 0) {
		/* The fd was full a moment ago: queue behind the rest. */
		wqueue_push2(q, a, alen, b, blen);
		return 1;
	}
	if (alen + blen == 0)
		return 0;
	r = writev_once(fd, iov, blen ? 2 : 1);
	if (r < 0)
		return (int)r;
	w = (size_t)r;
	if (w == alen + blen)
		return 0;
	if (w == 0 && hold)
		return 2;
	if (w < alen)
		wqueue_push2(q, (const char *)a + w, alen - w, b, blen);
	else
		wqueue_push(q, (const char *)b + (w - alen), blen - (w - alen));
	return 1;
}

int wqueue_write(struct wqueue *q, int fd, const void *a, size_t alen, const void *b, size_t blen)
{
	return write_or_queue(q, fd, a, alen, b, blen, false);
}

int wqueue_write_begun(struct wqueue *q, int fd, const void *a, size_t alen, const void *b,
		       size_t blen)
{
	return write_or_queue(q, fd, a, alen, b, blen, true);
}
