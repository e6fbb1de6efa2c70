/* linebuf.c - see linebuf.h.
 *
 * Cost model: every byte is searched for '\n' once (`scan` remembers where
 * the last search stopped), and moved only when the consumed prefix is at
 * least as large as what is moved, or once more when the buffer is at its
 * limit. Reads normally land at the front again because the indices reset
 * whenever everything has been handed out.
 */
#include "linebuf.h"

#include "util.h"

#include <errno.h>
#include <stdint.h>

#define LINEBUF_INITIAL 16384u

void linebuf_init(struct linebuf *lb, size_t max_line)
{
	*lb = (struct linebuf){ .max_line = max_line };
	/* Room for the longest line, its '\n', and one more read. */
	if (max_line > SIZE_MAX / 2)
		lb->limit = SIZE_MAX / 2;
	else
		lb->limit = max_line + 1 + LINEBUF_CHUNK;
}

void linebuf_free(struct linebuf *lb)
{
	if (!lb)
		return;
	free(lb->buf);
	lb->buf = NULL;
	lb->cap = lb->start = lb->end = lb->scan = 0;
}

/* Moves the unconsumed bytes to the front of a buffer of `cap` bytes,
 * reallocating when cap changes. Copies only the pending bytes. */
static void relocate(struct linebuf *lb, size_t cap)
{
	size_t pending = lb->end - lb->start;

	if (cap != lb->cap) {
		char *nb = xmalloc(cap);

		if (pending)
			memcpy(nb, lb->buf + lb->start, pending);
		free(lb->buf);
		lb->buf = nb;
		lb->cap = cap;
	} else if (lb->start > 0) {
		memmove(lb->buf, lb->buf + lb->start, pending);
	}
	lb->scan -= lb->start;
	lb->start = 0;
	lb->end = pending;
}

/* Makes the free tail worth a read(2): at least a quarter of the buffer. */
static void make_room(struct linebuf *lb)
{
	size_t tail = lb->cap - lb->end;
	size_t pending = lb->end - lb->start;

	if (tail > 0 && tail >= lb->cap / 4)
		return;
	if (lb->start > 0 && lb->start >= pending)
		relocate(lb, lb->cap); /* cheap: moves no more than was consumed */
	else if (lb->cap < lb->limit)
		relocate(lb, lb->cap ? MIN(lb->cap * 2, lb->limit) : MIN(LINEBUF_INITIAL, lb->limit));
	else if (lb->start > 0)
		relocate(lb, lb->cap);
}

ssize_t linebuf_read(struct linebuf *lb, int fd)
{
	ssize_t n;

	if (lb->start == lb->end)
		lb->start = lb->end = lb->scan = 0;
	make_room(lb);
	if (lb->cap == lb->end)
		return -ENOBUFS;
	do
		n = read(fd, lb->buf + lb->end, lb->cap - lb->end);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	lb->end += (size_t)n;
	return n;
}

int linebuf_next(struct linebuf *lb, const char **line, size_t *len)
{
	const char *nl;
	size_t n;

	if (lb->scan == lb->end)
		return lb->end - lb->start > lb->max_line ? -E2BIG : 0;
	nl = memchr(lb->buf + lb->scan, '\n', lb->end - lb->scan);
	if (!nl) {
		lb->scan = lb->end;
		return lb->end - lb->start > lb->max_line ? -E2BIG : 0;
	}
	n = (size_t)(nl - (lb->buf + lb->start));
	if (n > lb->max_line) {
		lb->scan = (size_t)(nl - lb->buf); /* keep finding the same '\n' */
		return -E2BIG;
	}
	*line = lb->buf + lb->start;
	*len = n;
	lb->start = lb->scan = (size_t)(nl - lb->buf) + 1;
	/* Everything handed out: the next read starts at the front again. The
	 * bytes stay in place, so *line remains valid until the next call. */
	if (lb->start == lb->end)
		lb->start = lb->end = lb->scan = 0;
	return 1;
}

size_t linebuf_pending(const struct linebuf *lb) { return lb->end - lb->start; }
