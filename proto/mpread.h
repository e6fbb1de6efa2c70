/* mpread.h - a bounded, allocation-free msgpack pull reader.
 *
 * Why not msgpack-c's unpacker: it allocates `count * sizeof(msgpack_object)`
 * from an array or map header before reading any element, so a 5-byte frame
 * can demand gigabytes. This reader checks every declared length against a
 * caller limit and against the bytes left before the caller allocates
 * anything, and returns strings and binaries as views into the buffer.
 * Encoding still uses msgpack-c's packer.
 *
 * Errors: -ENODATA truncated, -EBADMSG wrong type or invalid encoding,
 * -E2BIG a length or count over its limit.
 */
#ifndef TANDEM_MPREAD_H
#define TANDEM_MPREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mpr {
	const uint8_t *p;
	const uint8_t *end;
};

static inline void mpr_init(struct mpr *r, const void *buf, size_t len)
{
	r->p = buf;
	r->end = r->p + len;
}
static inline size_t mpr_left(const struct mpr *r) { return (size_t)(r->end - r->p); }

int mpr_uint(struct mpr *r, uint64_t *out);  /* any non-negative integer */
int mpr_int(struct mpr *r, int64_t *out);    /* any integer fitting int64 */
int mpr_bool(struct mpr *r, bool *out);
/* str family only; *len <= max. */
int mpr_str(struct mpr *r, uint32_t max, const char **ptr, uint32_t *len);
/* bin family only; *len <= max. */
int mpr_bin(struct mpr *r, uint32_t max, const char **ptr, uint32_t *len);
/* Header only; *n <= max and *n <= bytes left (each element takes >= 1). */
int mpr_array(struct mpr *r, uint32_t max, uint32_t *n);
int mpr_map(struct mpr *r, uint32_t max, uint32_t *n);
/* Skips one value of any type, nesting at most `depth` levels. */
int mpr_skip(struct mpr *r, unsigned depth);

#endif
