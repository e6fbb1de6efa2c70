/* frame.h - tandem's framing on a byte stream, and the growable byte buffer
 * the link and the handshake build frames in.
 *
 * A frame is a 4-byte big-endian length L followed by L bytes of payload:
 * one msgpack envelope (proto.h), or, on a sealed link, that envelope
 * sealed (proto/seal.h: L includes the 16-byte tag). A reader checks L
 * against its bound before it allocates or waits for anything: an
 * oversized declaration closes the link at once. L = 0 is malformed.
 */
#ifndef TANDEM_PROTO_FRAME_H
#define TANDEM_PROTO_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define FRAME_HDR 4u

/* A growable byte buffer (xrealloc: allocation failure aborts; callers bound
 * what they append). Zero-initialise; fbuf_free releases. */
struct fbuf {
	uint8_t *p;
	size_t len, cap;
};
void fbuf_reserve(struct fbuf *b, size_t extra);
void fbuf_append(struct fbuf *b, const void *data, size_t n);
void fbuf_free(struct fbuf *b);
/* proto_write_fn: appends to the struct fbuf ctx; always 0. */
int fbuf_write(void *ctx, const void *data, size_t len);

static inline void frame_put_len(uint8_t *hdr, uint32_t n)
{
	hdr[0] = (uint8_t)(n >> 24);
	hdr[1] = (uint8_t)(n >> 16);
	hdr[2] = (uint8_t)(n >> 8);
	hdr[3] = (uint8_t)n;
}

static inline uint32_t frame_get_len(const uint8_t *hdr)
{
	return (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
}

/* Looks for one frame at the start of buf[0..len). Returns
 *   0        a whole frame: its payload in *payload and *plen, FRAME_HDR + *plen
 *            bytes used;
 *   -EAGAIN  not all there yet; *need is the number of bytes this frame
 *            occupies once complete (FRAME_HDR when the header is partial),
 *            so the caller can size its buffer;
 *   -E2BIG   the declared length is over max (nothing else was looked at);
 *   -EBADMSG a zero length.
 * Output parameters are written only as stated. */
int frame_parse(const uint8_t *buf, size_t len, size_t max, const uint8_t **payload, size_t *plen,
		size_t *need);

#endif
