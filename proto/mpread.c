/* mpread.c - see mpread.h. Format facts: the msgpack specification. */
#include "mpread.h"

#include <errno.h>
#include <string.h>

static int need(const struct mpr *r, size_t n) { return mpr_left(r) >= n ? 0 : -ENODATA; }

static uint64_t be(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Reads a big-endian unsigned of n bytes after the tag byte. */
static int take_be(struct mpr *r, unsigned n, uint64_t *out)
{
	if (need(r, 1 + n) < 0)
		return -ENODATA;
	*out = be(r->p + 1, n);
	r->p += 1 + n;
	return 0;
}

int mpr_int(struct mpr *r, int64_t *out)
{
	uint64_t u;
	uint8_t t;
	int ret;

	if (need(r, 1) < 0)
		return -ENODATA;
	t = r->p[0];
	if (t <= 0x7f || t >= 0xe0) {
		*out = (int8_t)t;
		r->p++;
		return 0;
	}
	switch (t) {
	case 0xcc: case 0xcd: case 0xce: case 0xcf:
		ret = take_be(r, 1u << (t - 0xcc), &u);
		if (ret < 0)
			return ret;
		if (u > INT64_MAX)
			return -EBADMSG;
		*out = (int64_t)u;
		return 0;
	case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
		unsigned n = 1u << (t - 0xd0);

		ret = take_be(r, n, &u);
		if (ret < 0)
			return ret;
		if (n < 8 && (u >> (n * 8 - 1)))
			u |= ~(uint64_t)0 << (n * 8); /* sign-extend */
		memcpy(out, &u, sizeof(*out));
		return 0;
	}
	default:
		return -EBADMSG;
	}
}

int mpr_uint(struct mpr *r, uint64_t *out)
{
	struct mpr save = *r;
	uint64_t u;
	uint8_t t;
	int64_t i;
	int ret;

	if (need(r, 1) < 0)
		return -ENODATA;
	t = r->p[0];
	if (t >= 0xcc && t <= 0xcf) {
		ret = take_be(r, 1u << (t - 0xcc), &u);
		if (ret == 0)
			*out = u;
		return ret;
	}
	ret = mpr_int(r, &i);
	if (ret < 0)
		return ret;
	if (i < 0) {
		*r = save;
		return -EBADMSG;
	}
	*out = (uint64_t)i;
	return 0;
}

int mpr_bool(struct mpr *r, bool *out)
{
	if (need(r, 1) < 0)
		return -ENODATA;
	if (r->p[0] != 0xc2 && r->p[0] != 0xc3)
		return -EBADMSG;
	*out = r->p[0] == 0xc3;
	r->p++;
	return 0;
}

/* Length-prefixed payload: header of hlen bytes (after the tag), then len. */
static int take_blob(struct mpr *r, unsigned hlen, uint64_t len_fixed, uint32_t max,
		     const char **ptr, uint32_t *len)
{
	uint64_t n = len_fixed;

	if (hlen) {
		if (need(r, 1 + hlen) < 0)
			return -ENODATA;
		n = be(r->p + 1, hlen);
	}
	if (n > max)
		return -E2BIG;
	if (need(r, 1 + hlen + n) < 0)
		return -ENODATA;
	*ptr = (const char *)r->p + 1 + hlen;
	*len = (uint32_t)n;
	r->p += 1 + hlen + n;
	return 0;
}

int mpr_str(struct mpr *r, uint32_t max, const char **ptr, uint32_t *len)
{
	uint8_t t;

	if (need(r, 1) < 0)
		return -ENODATA;
	t = r->p[0];
	if (t >= 0xa0 && t <= 0xbf)
		return take_blob(r, 0, t & 0x1f, max, ptr, len);
	if (t >= 0xd9 && t <= 0xdb)
		return take_blob(r, 1u << (t - 0xd9), 0, max, ptr, len);
	return -EBADMSG;
}

int mpr_bin(struct mpr *r, uint32_t max, const char **ptr, uint32_t *len)
{
	uint8_t t;

	if (need(r, 1) < 0)
		return -ENODATA;
	t = r->p[0];
	if (t >= 0xc4 && t <= 0xc6)
		return take_blob(r, 1u << (t - 0xc4), 0, max, ptr, len);
	return -EBADMSG;
}

/* Container header; `per` = minimum bytes per counted entry. */
static int take_count(struct mpr *r, uint8_t fix_lo, uint8_t fix_hi, uint8_t t16, uint32_t max,
		      unsigned per, uint32_t *n)
{
	uint64_t c;
	unsigned hlen;
	uint8_t t;

	if (need(r, 1) < 0)
		return -ENODATA;
	t = r->p[0];
	if (t >= fix_lo && t <= fix_hi) {
		c = t & 0x0f;
		hlen = 0;
	} else if (t == t16 || t == t16 + 1) {
		hlen = t == t16 ? 2 : 4;
		if (need(r, 1 + hlen) < 0)
			return -ENODATA;
		c = be(r->p + 1, hlen);
	} else {
		return -EBADMSG;
	}
	if (c > max)
		return -E2BIG;
	if (c * per > mpr_left(r) - 1 - hlen)
		return -ENODATA;
	r->p += 1 + hlen;
	*n = (uint32_t)c;
	return 0;
}

int mpr_array(struct mpr *r, uint32_t max, uint32_t *n)
{
	return take_count(r, 0x90, 0x9f, 0xdc, max, 1, n);
}

int mpr_map(struct mpr *r, uint32_t max, uint32_t *n)
{
	return take_count(r, 0x80, 0x8f, 0xde, max, 2, n);
}

/* Bytes of fixed-size payload after the tag for scalar types; -1 if the
 * tag is not a fixed-size scalar. */
static int scalar_len(uint8_t t)
{
	if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3)
		return 0;
	switch (t) {
	case 0xcc: case 0xd0: return 1;
	case 0xcd: case 0xd1: return 2;
	case 0xca: case 0xce: case 0xd2: return 4;
	case 0xcb: case 0xcf: case 0xd3: return 8;
	case 0xd4: return 2;  /* fixext 1: type + 1 */
	case 0xd5: return 3;
	case 0xd6: return 5;
	case 0xd7: return 9;
	case 0xd8: return 17;
	default: return -1;
	}
}

int mpr_skip(struct mpr *r, unsigned depth)
{
	const char *ptr;
	uint32_t len, n;
	uint8_t t;
	int sl, ret;

	if (need(r, 1) < 0)
		return -ENODATA;
	t = r->p[0];
	sl = scalar_len(t);
	if (sl >= 0) {
		if (need(r, 1 + (size_t)sl) < 0)
			return -ENODATA;
		r->p += 1 + sl;
		return 0;
	}
	if ((t >= 0xa0 && t <= 0xbf) || (t >= 0xd9 && t <= 0xdb))
		return mpr_str(r, UINT32_MAX, &ptr, &len);
	if (t >= 0xc4 && t <= 0xc6)
		return mpr_bin(r, UINT32_MAX, &ptr, &len);
	if (t >= 0xc7 && t <= 0xc9) { /* ext 8/16/32: len, type, data */
		unsigned hlen = 1u << (t - 0xc7);
		uint64_t l;

		if (need(r, 1 + hlen) < 0)
			return -ENODATA;
		l = be(r->p + 1, hlen);
		if (need(r, 1 + hlen + 1 + l) < 0)
			return -ENODATA;
		r->p += 1 + hlen + 1 + l;
		return 0;
	}
	if (depth == 0)
		return -E2BIG;
	if ((t >= 0x90 && t <= 0x9f) || t == 0xdc || t == 0xdd) {
		ret = mpr_array(r, UINT32_MAX, &n);
		for (uint32_t i = 0; ret == 0 && i < n; i++)
			ret = mpr_skip(r, depth - 1);
		return ret;
	}
	if ((t >= 0x80 && t <= 0x8f) || t == 0xde || t == 0xdf) {
		ret = mpr_map(r, UINT32_MAX, &n);
		for (uint32_t i = 0; ret == 0 && i < 2 * n; i++)
			ret = mpr_skip(r, depth - 1);
		return ret;
	}
	return -EBADMSG; /* 0xc1 is never used */
}
