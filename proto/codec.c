/* codec.c - encoder and decoder for every message, driven by the tables that
 * messages.h generates. See proto.h for the frame layout. */
#include "proto.h"

#include <errno.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "mpread.h"
#include "util.h"

/* Field tables: one per body and reply, each ending in a zero sentinel so an
 * empty list is still a valid array. */
#define FD(S, tag, type, fname, req) { tag, PT_##type, req, offsetof(S, fname), #fname },
#define PROTO_X_TABLES(id, NAME, name, kind, dir, st)                          \
	static const struct proto_field name##_body_fields[] = {               \
		PROTO_BODY_##name(FD, struct proto_##name##_body){ 0, 0, 0, 0, NULL } \
	};                                                                     \
	static const struct proto_field name##_reply_fields[] = {              \
		PROTO_REPLY_##name(FD, struct proto_##name##_reply){ 0, 0, 0, 0, NULL } \
	};
PROTO_MESSAGES(PROTO_X_TABLES)
#undef PROTO_X_TABLES
#undef FD

static const struct proto_msgdef msgdefs[] = {
#define PROTO_X_DEF(id, NAME, name, kind, dir, st)                             \
	{ id,                                                                  \
	  #NAME,                                                               \
	  PROTO_##kind,                                                        \
	  PROTO_##dir,                                                         \
	  PROTO_##st,                                                          \
	  name##_body_fields,                                                  \
	  ARRAY_SIZE(name##_body_fields) - 1,                                  \
	  offsetof(struct proto_##name##_body, present),                       \
	  name##_reply_fields,                                                 \
	  ARRAY_SIZE(name##_reply_fields) - 1,                                 \
	  offsetof(struct proto_##name##_reply, present) },
	PROTO_MESSAGES(PROTO_X_DEF)
#undef PROTO_X_DEF
};

const struct proto_msgdef *proto_msgdef(uint16_t type)
{
	for (size_t i = 0; i < ARRAY_SIZE(msgdefs); i++)
		if (msgdefs[i].type == type)
			return &msgdefs[i];
	return NULL;
}

const struct proto_msgdef *proto_msgdef_at(size_t i)
{
	return i < ARRAY_SIZE(msgdefs) ? &msgdefs[i] : NULL;
}

size_t proto_msgdef_count(void) { return ARRAY_SIZE(msgdefs); }

const char *proto_status_name(int32_t status)
{
	static const char *const names[] = { "ok",    "bad_request", "unsupported",
					     "denied", "not_found",   "limit",
					     "spawn", "io",          "internal",
					     "busy" };

	if (status >= 0 && (size_t)status < ARRAY_SIZE(names))
		return names[status];
	return "unknown";
}

char *proto_str_dup(struct proto_str s) { return xstrndup(s.ptr ? s.ptr : "", s.len); }

bool proto_str_eq(struct proto_str s, const char *c)
{
	size_t n = strlen(c);

	return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}

/* ---- encoding ---------------------------------------------------------- */

struct sink {
	proto_write_fn w;
	void *ctx;
};

static int sink_write(void *data, const char *buf, size_t len)
{
	struct sink *s = data;

	return s->w(s->ctx, buf, len);
}

static int pack_blob(msgpack_packer *pk, bool bin, struct proto_str s, uint32_t max)
{
	int r;

	if (s.len > max || (s.len && !s.ptr))
		return -EINVAL;
	r = bin ? msgpack_pack_bin(pk, s.len) : msgpack_pack_str(pk, s.len);
	if (r == 0 && s.len)
		r = bin ? msgpack_pack_bin_body(pk, s.ptr, s.len) : msgpack_pack_str_body(pk, s.ptr, s.len);
	return r;
}

static int pack_value(msgpack_packer *pk, const struct proto_field *f, const char *base)
{
	const void *v = base + f->offset;
	int r = 0;

	switch (f->type) {
	case PT_u32: return msgpack_pack_uint32(pk, *(const uint32_t *)v);
	case PT_u64: return msgpack_pack_uint64(pk, *(const uint64_t *)v);
	case PT_i64: return msgpack_pack_int64(pk, *(const int64_t *)v);
	case PT_bool: return *(const bool *)v ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
	case PT_str: return pack_blob(pk, false, *(const struct proto_str *)v, PROTO_MAX_STR);
	case PT_bin: return pack_blob(pk, true, *(const struct proto_str *)v, PROTO_MAX_BIN);
	case PT_strlist: {
		const struct proto_strlist *l = v;

		if (l->n > PROTO_MAX_LIST)
			return -EINVAL;
		r = msgpack_pack_array(pk, l->n);
		for (uint32_t i = 0; r == 0 && i < l->n; i++)
			r = pack_blob(pk, false, l->items[i], PROTO_MAX_STR);
		return r;
	}
	case PT_strmap: {
		const struct proto_strmap *m = v;

		if (m->n > PROTO_MAX_MAP)
			return -EINVAL;
		r = msgpack_pack_map(pk, m->n);
		for (uint32_t i = 0; r == 0 && i < m->n; i++) {
			r = pack_blob(pk, false, m->keys[i], PROTO_MAX_STR);
			if (r == 0)
				r = pack_blob(pk, false, m->vals[i], PROTO_MAX_STR);
		}
		return r;
	}
	case PT_u64list: {
		const struct proto_u64list *l = v;

		if (l->n > PROTO_MAX_LIST)
			return -EINVAL;
		r = msgpack_pack_array(pk, l->n);
		for (uint32_t i = 0; r == 0 && i < l->n; i++)
			r = msgpack_pack_uint64(pk, l->items[i]);
		return r;
	}
	default: return -EINVAL;
	}
}

static bool field_wanted(const struct proto_field *f, uint64_t present)
{
	return f->required || ((present >> (f->tag - 1)) & 1u);
}

static int pack_body(msgpack_packer *pk, const struct proto_field *fields, uint32_t n,
		     const void *body, size_t present_off)
{
	const char *base = body;
	uint64_t present;
	uint32_t count = 0;
	int r;

	memcpy(&present, base + present_off, sizeof(present));
	for (uint32_t i = 0; i < n; i++)
		count += field_wanted(&fields[i], present);
	r = msgpack_pack_map(pk, count);
	for (uint32_t i = 0; r == 0 && i < n; i++) {
		if (!field_wanted(&fields[i], present))
			continue;
		r = msgpack_pack_uint8(pk, fields[i].tag);
		if (r == 0)
			r = pack_value(pk, &fields[i], base);
	}
	return r;
}

static int pack_env(msgpack_packer *pk, uint8_t version, uint16_t type, uint8_t kind, uint32_t id,
		    int32_t status)
{
	int r = msgpack_pack_array(pk, 6);

	if (r == 0)
		r = msgpack_pack_uint8(pk, version);
	if (r == 0)
		r = msgpack_pack_uint16(pk, type);
	if (r == 0)
		r = msgpack_pack_uint8(pk, kind);
	if (r == 0)
		r = msgpack_pack_uint32(pk, id);
	if (r == 0)
		r = msgpack_pack_int32(pk, status);
	return r;
}

int proto_encode(proto_write_fn w, void *ctx, uint16_t type, uint8_t kind, uint32_t id,
		 const void *body)
{
	return proto_encode_version(w, ctx, PROTO_VERSION, type, kind, id, body);
}

int proto_encode_version(proto_write_fn w, void *ctx, uint8_t version, uint16_t type,
			 uint8_t kind, uint32_t id, const void *body)
{
	const struct proto_msgdef *d = proto_msgdef(type);
	struct sink s = { w, ctx };
	msgpack_packer pk;
	int r;

	if (!d || !body)
		return -EINVAL;
	if (kind == PROTO_REPLY ? d->kind != PROTO_REQUEST : kind != d->kind)
		return -EINVAL;
	msgpack_packer_init(&pk, &s, sink_write);
	r = pack_env(&pk, version, type, kind, id, 0);
	if (r == 0 && kind == PROTO_REPLY)
		r = pack_body(&pk, d->reply_fields, d->n_reply, body, d->reply_present);
	else if (r == 0)
		r = pack_body(&pk, d->body_fields, d->n_body, body, d->body_present);
	return r > 0 ? -EIO : r;
}

int proto_encode_error(proto_write_fn w, void *ctx, uint16_t type, uint32_t id, int32_t status,
		       const char *message)
{
	return proto_encode_error_version(w, ctx, PROTO_VERSION, type, id, status, message);
}

int proto_encode_error_version(proto_write_fn w, void *ctx, uint8_t version, uint16_t type,
			       uint32_t id, int32_t status, const char *message)
{
	struct sink s = { w, ctx };
	msgpack_packer pk;
	struct proto_str m = proto_str_c(message ? message : "");
	int r;

	if (status == 0)
		return -EINVAL;
	if (m.len > PROTO_MAX_STR)
		m.len = PROTO_MAX_STR;
	msgpack_packer_init(&pk, &s, sink_write);
	r = pack_env(&pk, version, type, PROTO_REPLY, id, status);
	if (r == 0)
		r = msgpack_pack_map(&pk, 1);
	if (r == 0)
		r = msgpack_pack_uint8(&pk, 1);
	if (r == 0)
		r = pack_blob(&pk, false, m, PROTO_MAX_STR);
	return r > 0 ? -EIO : r;
}

/* ---- decoding ---------------------------------------------------------- */

struct dec {
	struct mpr r;
	struct proto_msg *m;
	char *err;
	size_t errlen;
	bool compat; /* PROTO_VERSION_SP accepted too */
};

static int fail(struct dec *d, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct dec *d, int code, const char *fmt, ...)
{
	va_list ap;

	if (d->err && d->errlen) {
		va_start(ap, fmt);
		vsnprintf(d->err, d->errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

static const char *mpr_why(int r)
{
	switch (r) {
	case -ENODATA: return "truncated";
	case -E2BIG: return "over the limit";
	default: return "wrong type";
	}
}

static void *dec_alloc(struct dec *d, size_t n, size_t size)
{
	void *p;

	if (d->m->n_allocs >= ARRAY_SIZE(d->m->allocs))
		return NULL;
	p = xcalloc(n, size);
	d->m->allocs[d->m->n_allocs++] = p;
	return p;
}

static int dec_str(struct mpr *r, bool bin, uint32_t max, struct proto_str *s)
{
	return bin ? mpr_bin(r, max, &s->ptr, &s->len) : mpr_str(r, max, &s->ptr, &s->len);
}

static int dec_value(struct dec *d, const struct proto_field *f, char *base)
{
	void *v = base + f->offset;
	uint64_t u;
	uint32_t n;
	int r;

	switch (f->type) {
	case PT_u32:
		r = mpr_uint(&d->r, &u);
		if (r == 0 && u > UINT32_MAX)
			r = -E2BIG;
		if (r == 0)
			*(uint32_t *)v = (uint32_t)u;
		return r;
	case PT_u64: return mpr_uint(&d->r, v);
	case PT_i64: return mpr_int(&d->r, v);
	case PT_bool: return mpr_bool(&d->r, v);
	case PT_str: return dec_str(&d->r, false, PROTO_MAX_STR, v);
	case PT_bin: return dec_str(&d->r, true, PROTO_MAX_BIN, v);
	case PT_strlist: {
		struct proto_strlist *l = v;

		r = mpr_array(&d->r, PROTO_MAX_LIST, &n);
		if (r < 0 || n == 0)
			return r;
		l->items = dec_alloc(d, n, sizeof(*l->items));
		if (!l->items)
			return -E2BIG;
		for (l->n = 0; l->n < n; l->n++) {
			r = dec_str(&d->r, false, PROTO_MAX_STR, &l->items[l->n]);
			if (r < 0)
				return r;
		}
		return 0;
	}
	case PT_strmap: {
		struct proto_strmap *m = v;

		r = mpr_map(&d->r, PROTO_MAX_MAP, &n);
		if (r < 0 || n == 0)
			return r;
		m->keys = dec_alloc(d, 2 * (size_t)n, sizeof(*m->keys));
		if (!m->keys)
			return -E2BIG;
		m->vals = m->keys + n;
		for (m->n = 0; m->n < n; m->n++) {
			r = dec_str(&d->r, false, PROTO_MAX_STR, &m->keys[m->n]);
			if (r == 0)
				r = dec_str(&d->r, false, PROTO_MAX_STR, &m->vals[m->n]);
			if (r < 0)
				return r;
		}
		return 0;
	}
	case PT_u64list: {
		struct proto_u64list *l = v;

		r = mpr_array(&d->r, PROTO_MAX_LIST, &n);
		if (r < 0 || n == 0)
			return r;
		l->items = dec_alloc(d, n, sizeof(*l->items));
		if (!l->items)
			return -E2BIG;
		for (l->n = 0; l->n < n; l->n++) {
			r = mpr_uint(&d->r, &l->items[l->n]);
			if (r < 0)
				return r;
		}
		return 0;
	}
	default: return -EBADMSG;
	}
}

static const struct proto_field *find_field(const struct proto_field *fields, uint32_t n,
					    uint64_t tag)
{
	for (uint32_t i = 0; i < n; i++)
		if (fields[i].tag == tag)
			return &fields[i];
	return NULL;
}

static int dec_body(struct dec *d, const struct proto_field *fields, uint32_t nf,
		    size_t present_off, const char *what)
{
	char *base = (char *)&d->m->u;
	uint64_t present = 0, tag;
	uint32_t n;
	int r;

	r = mpr_map(&d->r, PROTO_MAX_FIELDS, &n);
	if (r < 0)
		return fail(d, r == -E2BIG ? -E2BIG : -EBADMSG, "%s body: %s map", what, mpr_why(r));
	for (uint32_t i = 0; i < n; i++) {
		const struct proto_field *f;

		r = mpr_uint(&d->r, &tag);
		if (r < 0 || tag == 0 || tag > 64)
			return fail(d, -EBADMSG, "%s body: key %u is not a field tag", what, i);
		f = find_field(fields, nf, tag);
		if (!f) { /* a newer peer's optional field */
			r = mpr_skip(&d->r, PROTO_MAX_SKIP_DEPTH);
			if (r < 0)
				return fail(d, -EBADMSG, "%s body: unknown tag %llu: %s", what,
					    (unsigned long long)tag, mpr_why(r));
			continue;
		}
		if ((present >> (tag - 1)) & 1u)
			return fail(d, -EBADMSG, "%s: field '%s' appears twice", what, f->name);
		r = dec_value(d, f, base);
		if (r < 0)
			return fail(d, r == -E2BIG ? -E2BIG : -EBADMSG, "%s: field '%s' (tag %u): %s",
				    what, f->name, f->tag, mpr_why(r));
		present |= (uint64_t)1 << (tag - 1);
	}
	for (uint32_t i = 0; i < nf; i++)
		if (fields[i].required && !((present >> (fields[i].tag - 1)) & 1u))
			return fail(d, -EBADMSG, "%s: missing required field '%s'", what,
				    fields[i].name);
	memcpy(base + present_off, &present, sizeof(present));
	return 0;
}

static int dec_error_body(struct dec *d)
{
	uint64_t tag;
	uint32_t n;
	int r = mpr_map(&d->r, PROTO_MAX_FIELDS, &n);

	for (uint32_t i = 0; r == 0 && i < n; i++) {
		r = mpr_uint(&d->r, &tag);
		if (r == 0 && tag == 1)
			r = mpr_str(&d->r, PROTO_MAX_STR, &d->m->err_message.ptr,
				    &d->m->err_message.len);
		else if (r == 0)
			r = mpr_skip(&d->r, PROTO_MAX_SKIP_DEPTH);
	}
	return r < 0 ? fail(d, -EBADMSG, "error reply body: %s", mpr_why(r)) : 0;
}

static int dec_env(struct dec *d)
{
	struct proto_env *e = &d->m->env;
	uint64_t u;
	int64_t s;
	uint32_t n;
	int r;

	r = mpr_array(&d->r, 16, &n);
	if (r < 0 || n != 6)
		return fail(d, -EBADMSG, "envelope: expected an array of 6, %s",
			    r < 0 ? mpr_why(r) : "wrong length");
	if (mpr_uint(&d->r, &u) < 0 || u > 255)
		return fail(d, -EBADMSG, "envelope: bad version");
	e->version = (uint8_t)u;
	if (u != PROTO_VERSION && !(d->compat && u == PROTO_VERSION_SP))
		return fail(d, -EPROTONOSUPPORT, "envelope: unsupported protocol version %llu",
			    (unsigned long long)u);
	if (mpr_uint(&d->r, &u) < 0 || u > UINT16_MAX)
		return fail(d, -EBADMSG, "envelope: bad message type");
	e->type = (uint16_t)u;
	d->m->def = proto_msgdef(e->type);
	if (!d->m->def)
		return fail(d, -EPROTONOSUPPORT, "envelope: unknown message type 0x%x", e->type);
	if (mpr_uint(&d->r, &u) < 0 || u > PROTO_EVENT)
		return fail(d, -EBADMSG, "envelope: bad kind");
	e->kind = (uint8_t)u;
	if (d->m->def->kind == PROTO_EVENT ? e->kind != PROTO_EVENT : e->kind == PROTO_EVENT)
		return fail(d, -EBADMSG, "envelope: %s cannot have kind %u", d->m->def->name, e->kind);
	if (mpr_uint(&d->r, &u) < 0 || u > UINT32_MAX)
		return fail(d, -EBADMSG, "envelope: bad id");
	e->id = (uint32_t)u;
	if (mpr_int(&d->r, &s) < 0 || s < INT32_MIN || s > INT32_MAX)
		return fail(d, -EBADMSG, "envelope: bad status");
	e->status = (int32_t)s;
	if (e->status != 0 && e->kind != PROTO_REPLY)
		return fail(d, -EBADMSG, "envelope: status on a non-reply");
	return 0;
}

static int decode(const void *buf, size_t len, struct proto_msg *m, char *err, size_t errlen,
		  bool compat)
{
	struct dec d = { .m = m, .err = err, .errlen = errlen, .compat = compat };
	const struct proto_msgdef *def;
	int r;

	memset(m, 0, sizeof(*m));
	if (len > PROTO_MAX_FRAME)
		return fail(&d, -E2BIG, "frame of %zu bytes exceeds %u", len, PROTO_MAX_FRAME);
	mpr_init(&d.r, buf, len);
	r = dec_env(&d);
	if (r < 0)
		goto bad;
	def = m->def;
	if (m->env.kind == PROTO_REPLY && m->env.status != 0)
		r = dec_error_body(&d);
	else if (m->env.kind == PROTO_REPLY)
		r = dec_body(&d, def->reply_fields, def->n_reply, def->reply_present, def->name);
	else
		r = dec_body(&d, def->body_fields, def->n_body, def->body_present, def->name);
	if (r == 0 && mpr_left(&d.r) != 0)
		r = fail(&d, -EBADMSG, "%zu trailing bytes after the frame", mpr_left(&d.r));
	if (r == 0)
		return 0;
bad:
	proto_msg_release(m);
	memset(m, 0, sizeof(*m));
	return r;
}

int proto_decode(const void *buf, size_t len, struct proto_msg *m, char *err, size_t errlen)
{
	return decode(buf, len, m, err, errlen, false);
}

int proto_decode_compat(const void *buf, size_t len, struct proto_msg *m, char *err,
			size_t errlen)
{
	return decode(buf, len, m, err, errlen, true);
}

void proto_msg_release(struct proto_msg *m)
{
	if (!m)
		return;
	for (uint32_t i = 0; i < m->n_allocs; i++)
		free(m->allocs[i]);
	m->n_allocs = 0;
}
