/* frame.c - see frame.h. */
#include "frame.h"

#include <errno.h>
#include <string.h>

#include "util.h"

void fbuf_reserve(struct fbuf *b, size_t extra)
{
	size_t want = b->len + extra, ncap;

	if (want <= b->cap)
		return;
	ncap = b->cap ? b->cap : 256;
	while (ncap < want)
		ncap *= 2;
	b->p = xrealloc(b->p, ncap);
	b->cap = ncap;
}

void fbuf_append(struct fbuf *b, const void *data, size_t n)
{
	if (!n)
		return;
	fbuf_reserve(b, n);
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

void fbuf_free(struct fbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

int fbuf_write(void *ctx, const void *data, size_t len)
{
	fbuf_append(ctx, data, len);
	return 0;
}

int frame_parse(const uint8_t *buf, size_t len, size_t max, const uint8_t **payload, size_t *plen,
		size_t *need)
{
	uint32_t n;

	if (len < FRAME_HDR) {
		*need = FRAME_HDR;
		return -EAGAIN;
	}
	n = frame_get_len(buf);
	if (n > max)
		return -E2BIG;
	if (n == 0)
		return -EBADMSG;
	if (len - FRAME_HDR < n) {
		*need = FRAME_HDR + (size_t)n;
		return -EAGAIN;
	}
	*payload = buf + FRAME_HDR;
	*plen = n;
	return 0;
}
