/* test_proto.c - the wire codec: round trips, golden bytes, hostile frames. */
#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdio.h>
#include <string.h>

#include "proto.h"
#include "testmain.h"
#include "util.h"

#define GOLDEN_PATH "golden/proto.txt"

static int sbuf_write(void *ctx, const void *data, size_t len)
{
	return msgpack_sbuffer_write(ctx, data, len);
}

/* Deterministic sample values derived from the tag, so every field of every
 * message is exercised with a non-default value. */
static struct proto_str sample_items[2] = { { "alpha", 5 }, { "", 0 } };
static struct proto_str sample_keys[2] = { { "HOME", 4 }, { "K\xc3\xa9", 3 } };
static struct proto_str sample_vals[2] = { { "/root", 5 }, { "v", 1 } };
static uint64_t sample_u64s[3] = { 0, 1, UINT64_MAX };
static const char sample_bin[4] = { 0, 1, '\n', (char)0xff };

static void fill_sample(const struct proto_field *fields, uint32_t n, void *body,
			uint32_t present_off)
{
	uint64_t present = 0;

	for (uint32_t i = 0; i < n; i++) {
		const struct proto_field *f = &fields[i];
		char *v = (char *)body + f->offset;

		switch (f->type) {
		case PT_u32: *(uint32_t *)(void *)v = 1000u * f->tag + 7; break;
		case PT_u64: *(uint64_t *)(void *)v = ((uint64_t)1 << 40) + f->tag; break;
		case PT_i64: *(int64_t *)(void *)v = -(int64_t)f->tag * 1000; break;
		case PT_bool: *(bool *)v = f->tag % 2; break;
		case PT_str: *(struct proto_str *)(void *)v = proto_str_c(f->name); break;
		case PT_bin: {
			struct proto_str b = { sample_bin, sizeof(sample_bin) };
			*(struct proto_str *)(void *)v = b;
			break;
		}
		case PT_strlist: {
			struct proto_strlist l = { sample_items, 2 };
			*(struct proto_strlist *)(void *)v = l;
			break;
		}
		case PT_strmap: {
			struct proto_strmap m = { sample_keys, sample_vals, 2 };
			*(struct proto_strmap *)(void *)v = m;
			break;
		}
		case PT_u64list: {
			struct proto_u64list l = { sample_u64s, 3 };
			*(struct proto_u64list *)(void *)v = l;
			break;
		}
		}
		present |= (uint64_t)1 << (f->tag - 1);
	}
	memcpy((char *)body + present_off, &present, sizeof(present));
}

static bool str_eq(struct proto_str a, struct proto_str b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static void assert_fields_equal(const struct proto_field *fields, uint32_t n, const void *a,
				const void *b)
{
	for (uint32_t i = 0; i < n; i++) {
		const struct proto_field *f = &fields[i];
		const char *x = (const char *)a + f->offset, *y = (const char *)b + f->offset;

		switch (f->type) {
		case PT_u32: ck_assert_uint_eq(*(const uint32_t *)(const void *)x, *(const uint32_t *)(const void *)y); break;
		case PT_u64: ck_assert_uint_eq(*(const uint64_t *)(const void *)x, *(const uint64_t *)(const void *)y); break;
		case PT_i64: ck_assert_int_eq(*(const int64_t *)(const void *)x, *(const int64_t *)(const void *)y); break;
		case PT_bool: ck_assert_int_eq(*(const bool *)x, *(const bool *)y); break;
		case PT_str:
		case PT_bin:
			ck_assert_msg(str_eq(*(const struct proto_str *)(const void *)x,
					     *(const struct proto_str *)(const void *)y),
				      "field %s differs", f->name);
			break;
		case PT_strlist: {
			const struct proto_strlist *l = (const void *)x, *m = (const void *)y;
			ck_assert_uint_eq(l->n, m->n);
			for (uint32_t j = 0; j < l->n; j++)
				ck_assert(str_eq(l->items[j], m->items[j]));
			break;
		}
		case PT_strmap: {
			const struct proto_strmap *l = (const void *)x, *m = (const void *)y;
			ck_assert_uint_eq(l->n, m->n);
			for (uint32_t j = 0; j < l->n; j++) {
				ck_assert(str_eq(l->keys[j], m->keys[j]));
				ck_assert(str_eq(l->vals[j], m->vals[j]));
			}
			break;
		}
		case PT_u64list: {
			const struct proto_u64list *l = (const void *)x, *m = (const void *)y;
			ck_assert_uint_eq(l->n, m->n);
			for (uint32_t j = 0; j < l->n; j++)
				ck_assert_uint_eq(l->items[j], m->items[j]);
			break;
		}
		}
	}
}

/* Encodes the sample of message i (as request/event, or as reply) into sb. */
static void encode_sample(size_t i, bool reply, msgpack_sbuffer *sb, void *body)
{
	const struct proto_msgdef *d = proto_msgdef_at(i);
	uint8_t kind = reply ? PROTO_REPLY : d->kind;

	memset(body, 0, 4096);
	if (reply)
		fill_sample(d->reply_fields, d->n_reply, body, d->reply_present);
	else
		fill_sample(d->body_fields, d->n_body, body, d->body_present);
	ck_assert_int_eq(proto_encode(sbuf_write, sb, d->type, kind, 42 + (uint32_t)i, body), 0);
}

static size_t n_frames(void)
{
	size_t n = 0;

	for (size_t i = 0; i < proto_msgdef_count(); i++)
		n += proto_msgdef_at(i)->kind == PROTO_REQUEST ? 2 : 1;
	return n;
}

/* Frame k of the sample set: each message, then its reply if it has one. */
static void sample_frame(size_t k, msgpack_sbuffer *sb, char label[64], void *body)
{
	for (size_t i = 0; i < proto_msgdef_count(); i++) {
		const struct proto_msgdef *d = proto_msgdef_at(i);

		if (k == 0) {
			snprintf(label, 64, "%s", d->name);
			encode_sample(i, false, sb, body);
			return;
		}
		k--;
		if (d->kind == PROTO_REQUEST) {
			if (k == 0) {
				snprintf(label, 64, "%s.reply", d->name);
				encode_sample(i, true, sb, body);
				return;
			}
			k--;
		}
	}
	ck_abort_msg("no frame %zu", k);
}

START_TEST(test_roundtrip_every_message)
{
	char label[64], err[256];
	_Alignas(8) char body[4096];

	for (size_t k = 0; k < n_frames(); k++) {
		msgpack_sbuffer sb, sb2;
		struct proto_msg m;
		const struct proto_msgdef *d;
		bool reply;

		msgpack_sbuffer_init(&sb);
		sample_frame(k, &sb, label, body);
		ck_assert_msg(proto_decode(sb.data, sb.size, &m, err, sizeof(err)) == 0, "%s: %s",
			      label, err);
		d = m.def;
		reply = m.env.kind == PROTO_REPLY;
		ck_assert_uint_eq(m.env.version, PROTO_VERSION);
		ck_assert_int_eq(m.env.status, 0);
		if (reply)
			assert_fields_equal(d->reply_fields, d->n_reply, body, &m.u);
		else
			assert_fields_equal(d->body_fields, d->n_body, body, &m.u);
		/* Re-encoding the decoded message gives the same bytes. */
		msgpack_sbuffer_init(&sb2);
		ck_assert_int_eq(proto_encode(sbuf_write, &sb2, m.env.type, m.env.kind, m.env.id, &m.u), 0);
		ck_assert_uint_eq(sb.size, sb2.size);
		ck_assert(memcmp(sb.data, sb2.data, sb.size) == 0);
		proto_msg_release(&m);
		msgpack_sbuffer_destroy(&sb);
		msgpack_sbuffer_destroy(&sb2);
	}
}
END_TEST

static void hex(const char *data, size_t len, char *out)
{
	for (size_t i = 0; i < len; i++)
		sprintf(out + 2 * i, "%02x", (unsigned char)data[i]);
	out[2 * len] = '\0';
}

/* The committed golden file pins the bytes of every sample frame. Set
 * TANDEM_UPDATE_GOLDEN=1 to rewrite it after an intended wire change (and
 * bump PROTO_VERSION if the change is not a compatible addition). */
START_TEST(test_golden_bytes)
{
	_Alignas(8) char body[4096];
	char label[64], line[8192], hexbuf[8192];
	bool update = getenv("TANDEM_UPDATE_GOLDEN") != NULL;
	FILE *f = fopen(GOLDEN_PATH, update ? "w" : "r");
	size_t k;

	ck_assert_msg(f != NULL, "cannot open %s (run from tests/unit)", GOLDEN_PATH);
	for (k = 0; k < n_frames(); k++) {
		msgpack_sbuffer sb;
		char want[8400];

		msgpack_sbuffer_init(&sb);
		sample_frame(k, &sb, label, body);
		ck_assert(sb.size * 2 < sizeof(hexbuf));
		hex(sb.data, sb.size, hexbuf);
		snprintf(want, sizeof(want), "%s %s\n", label, hexbuf);
		if (update) {
			fputs(want, f);
		} else {
			ck_assert_msg(fgets(line, sizeof(line), f) != NULL, "golden file ends before %s",
				      label);
			ck_assert_msg(strcmp(line, want) == 0, "wire bytes changed for %s:\n got  %s want %s",
				      label, want, line);
		}
		msgpack_sbuffer_destroy(&sb);
	}
	if (!update)
		ck_assert_msg(fgets(line, sizeof(line), f) == NULL, "golden file has extra frames");
	fclose(f);
}
END_TEST

START_TEST(test_every_truncation_rejected)
{
	_Alignas(8) char body[4096];
	char label[64], err[256];

	for (size_t k = 0; k < n_frames(); k++) {
		msgpack_sbuffer sb;

		msgpack_sbuffer_init(&sb);
		sample_frame(k, &sb, label, body);
		for (size_t len = 0; len < sb.size; len++) {
			struct proto_msg m;
			char *copy = xmalloc(len ? len : 1); /* exact size: ASan sees overreads */

			memcpy(copy, sb.data, len);
			err[0] = '\0';
			ck_assert_msg(proto_decode(copy, len, &m, err, sizeof(err)) < 0,
				      "%s truncated to %zu accepted", label, len);
			ck_assert_msg(err[0] != '\0', "no reason for %s/%zu", label, len);
			free(copy);
		}
		msgpack_sbuffer_destroy(&sb);
	}
}
END_TEST

/* Hand-built frames ------------------------------------------------------ */

struct frame {
	msgpack_sbuffer sb;
	msgpack_packer pk;
};

static void frame_begin(struct frame *f, uint64_t version, uint64_t type, uint64_t kind,
			uint32_t nbody)
{
	msgpack_sbuffer_init(&f->sb);
	msgpack_packer_init(&f->pk, &f->sb, msgpack_sbuffer_write);
	msgpack_pack_array(&f->pk, 6);
	msgpack_pack_uint64(&f->pk, version);
	msgpack_pack_uint64(&f->pk, type);
	msgpack_pack_uint64(&f->pk, kind);
	msgpack_pack_uint32(&f->pk, 9);
	msgpack_pack_int32(&f->pk, 0);
	msgpack_pack_map(&f->pk, nbody);
}

static int frame_decode(struct frame *f, char *err, size_t errlen)
{
	struct proto_msg m;
	int r = proto_decode(f->sb.data, f->sb.size, &m, err, errlen);

	if (r == 0)
		proto_msg_release(&m);
	msgpack_sbuffer_destroy(&f->sb);
	return r;
}

START_TEST(test_unknown_version_and_type)
{
	struct frame f;
	char err[256];

	frame_begin(&f, 4, PROTO_PING, PROTO_REQUEST, 0);
	ck_assert_int_eq(frame_decode(&f, err, sizeof(err)), -EPROTONOSUPPORT);
	ck_assert_ptr_nonnull(strstr(err, "version 4"));
	/* Protocol 1's envelope only through proto_decode_compat (the opening). */
	frame_begin(&f, PROTO_VERSION_SP, PROTO_PING, PROTO_REQUEST, 0);
	ck_assert_int_eq(frame_decode(&f, err, sizeof(err)), -EPROTONOSUPPORT);
	ck_assert_ptr_nonnull(strstr(err, "version 1"));
	{
		struct proto_msg m;

		frame_begin(&f, PROTO_VERSION_SP, PROTO_PING, PROTO_REQUEST, 0);
		ck_assert_int_eq(proto_decode_compat(f.sb.data, f.sb.size, &m, err, sizeof(err)), 0);
		ck_assert_uint_eq(m.env.version, PROTO_VERSION_SP);
		proto_msg_release(&m);
		msgpack_sbuffer_destroy(&f.sb);
	}

	frame_begin(&f, PROTO_VERSION, 0x99, PROTO_REQUEST, 0);
	ck_assert_int_eq(frame_decode(&f, err, sizeof(err)), -EPROTONOSUPPORT);
	ck_assert_ptr_nonnull(strstr(err, "unknown message type 0x99"));
}
END_TEST

START_TEST(test_wrong_types_rejected)
{
	struct frame f;
	char err[256];

	/* handle given as a string */
	frame_begin(&f, PROTO_VERSION, PROTO_MCP_STOP, PROTO_REQUEST, 1);
	msgpack_pack_uint8(&f.pk, 1);
	msgpack_pack_str_with_body(&f.pk, "12", 2);
	ck_assert_int_eq(frame_decode(&f, err, sizeof(err)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "field 'handle'"));
	ck_assert_ptr_nonnull(strstr(err, "wrong type"));

	/* negative number for an unsigned field */
	frame_begin(&f, PROTO_VERSION, PROTO_MCP_STOP, PROTO_REQUEST, 1);
	msgpack_pack_uint8(&f.pk, 1);
	msgpack_pack_int8(&f.pk, -1);
	ck_assert_int_eq(frame_decode(&f, err, sizeof(err)), -EBADMSG);

	/* u32 field over 32 bits */
	frame_begin(&f, PROTO_VERSION, PROTO_HELLO, PROTO_REQUEST, 2);
	msgpack_pack_uint8(&f.pk, 1);
	msgpack_pack_uint64(&f.pk, (uint64_t)1 << 33);
	msgpack_pack_uint8(&f.pk, 4);
	msgpack_pack_bin_with_body(&f.pk, "n", 1);
	ck_assert_int_lt(frame_decode(&f, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(err, "version_min"));

	/* a str where bin is required */
	frame_begin(&f, PROTO_VERSION, PROTO_MCP_SEND, PROTO_EVENT, 2);
	msgpack_pack_uint8(&f.pk, 1);
	msgpack_pack_uint8(&f.pk, 1);
	msgpack_pack_uint8(&f.pk, 2);
	msgpack_pack_str_with_body(&f.pk, "{}", 2);
	ck_assert_int_eq(frame_decode(&f, err, sizeof(err)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "field 'data'"));

	/* the envelope is not an array */
	{
		const char bad[] = { (char)0x81, 0x01, 0x02 };
		struct proto_msg m;

		ck_assert_int_eq(proto_decode(bad, sizeof(bad), &m, err, sizeof(err)), -EBADMSG);
		ck_assert_ptr_nonnull(strstr(err, "envelope"));
	}
}
END_TEST

START_TEST(test_required_duplicate_trailing)
{
	struct frame f;
	char err[256];

	frame_begin(&f, PROTO_VERSION, PROTO_MCP_STOP, PROTO_REQUEST, 0);
	ck_assert_int_eq(frame_decode(&f, err, sizeof(err)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "missing required field 'handle'"));

	frame_begin(&f, PROTO_VERSION, PROTO_MCP_STOP, PROTO_REQUEST, 2);
	msgpack_pack_uint8(&f.pk, 1);
	msgpack_pack_uint8(&f.pk, 5);
	msgpack_pack_uint8(&f.pk, 1);
	msgpack_pack_uint8(&f.pk, 6);
	ck_assert_int_eq(frame_decode(&f, err, sizeof(err)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "twice"));

	frame_begin(&f, PROTO_VERSION, PROTO_MCP_STOP, PROTO_REQUEST, 1);
	msgpack_pack_uint8(&f.pk, 1);
	msgpack_pack_uint8(&f.pk, 5);
	msgpack_pack_nil(&f.pk);
	ck_assert_int_eq(frame_decode(&f, err, sizeof(err)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "trailing"));

	/* an event type sent as a request */
	frame_begin(&f, PROTO_VERSION, PROTO_MCP_OUTPUT, PROTO_REQUEST, 0);
	ck_assert_int_eq(frame_decode(&f, err, sizeof(err)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "cannot have kind"));
}
END_TEST

START_TEST(test_oversized_rejected_before_allocation)
{
	struct frame f;
	char err[256];
	struct proto_msg m;

	/* A strlist claiming 2^32-1 entries in a tiny frame. */
	frame_begin(&f, PROTO_VERSION, PROTO_MCP_START, PROTO_REQUEST, 3);
	msgpack_pack_uint8(&f.pk, 1);
	msgpack_pack_str_with_body(&f.pk, "s", 1);
	msgpack_pack_uint8(&f.pk, 2);
	msgpack_pack_str_with_body(&f.pk, "c", 1);
	msgpack_pack_uint8(&f.pk, 3);
	{
		const char hdr[] = { (char)0xdd, (char)0xff, (char)0xff, (char)0xff, (char)0xff };
		msgpack_sbuffer_write(&f.sb, hdr, sizeof(hdr));
	}
	ck_assert_int_eq(frame_decode(&f, err, sizeof(err)), -E2BIG);
	ck_assert_ptr_nonnull(strstr(err, "field 'args'"));

	/* A list within the count limit but longer than the bytes left. */
	frame_begin(&f, PROTO_VERSION, PROTO_MCP_START, PROTO_REQUEST, 3);
	msgpack_pack_uint8(&f.pk, 1);
	msgpack_pack_str_with_body(&f.pk, "s", 1);
	msgpack_pack_uint8(&f.pk, 2);
	msgpack_pack_str_with_body(&f.pk, "c", 1);
	msgpack_pack_uint8(&f.pk, 3);
	msgpack_pack_array(&f.pk, 4000);
	ck_assert_int_eq(frame_decode(&f, err, sizeof(err)), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(err, "truncated"));

	/* A str field longer than PROTO_MAX_STR. */
	frame_begin(&f, PROTO_VERSION, PROTO_MCP_STOP, PROTO_REQUEST, 1);
	msgpack_pack_uint8(&f.pk, 1);
	msgpack_pack_uint8(&f.pk, 1);
	{
		struct frame g;
		char *big = xcalloc(1, PROTO_MAX_STR + 1);

		frame_begin(&g, PROTO_VERSION, PROTO_ROOT_RESOLVE, PROTO_REQUEST, 3);
		msgpack_pack_uint8(&g.pk, 1);
		msgpack_pack_str_with_body(&g.pk, big, PROTO_MAX_STR + 1);
		msgpack_pack_uint8(&g.pk, 2);
		msgpack_pack_str_with_body(&g.pk, "/", 1);
		msgpack_pack_uint8(&g.pk, 3);
		msgpack_pack_str_with_body(&g.pk, "e", 1);
		ck_assert_int_eq(frame_decode(&g, err, sizeof(err)), -E2BIG);
		ck_assert_ptr_nonnull(strstr(err, "root_id"));
		free(big);
	}
	msgpack_sbuffer_destroy(&f.sb);

	/* A whole frame over the frame limit. */
	{
		char *huge = xcalloc(1, (size_t)PROTO_MAX_FRAME + 1);

		ck_assert_int_eq(proto_decode(huge, (size_t)PROTO_MAX_FRAME + 1, &m, err, sizeof(err)),
				 -E2BIG);
		free(huge);
	}
	/* Deeply nested unknown value. */
	frame_begin(&f, PROTO_VERSION, PROTO_PING, PROTO_REQUEST, 1);
	msgpack_pack_uint8(&f.pk, 9);
	for (int i = 0; i < 100; i++)
		msgpack_pack_array(&f.pk, 1);
	msgpack_pack_nil(&f.pk);
	ck_assert_int_eq(frame_decode(&f, err, sizeof(err)), -EBADMSG);
}
END_TEST

START_TEST(test_unknown_tag_skipped)
{
	struct frame f;
	struct proto_msg m;
	char err[256];

	frame_begin(&f, PROTO_VERSION, PROTO_MCP_STOP, PROTO_REQUEST, 2);
	msgpack_pack_uint8(&f.pk, 30);
	msgpack_pack_map(&f.pk, 1);
	msgpack_pack_str_with_body(&f.pk, "future", 6);
	msgpack_pack_array(&f.pk, 2);
	msgpack_pack_true(&f.pk);
	msgpack_pack_float(&f.pk, 1.5f);
	msgpack_pack_uint8(&f.pk, 1);
	msgpack_pack_uint64(&f.pk, 77);
	ck_assert_int_eq(proto_decode(f.sb.data, f.sb.size, &m, err, sizeof(err)), 0);
	ck_assert_uint_eq(m.u.mcp_stop.handle, 77);
	ck_assert(PROTO_HAS_FIELD(&m.u.mcp_stop, mcp_stop_body, handle));
	proto_msg_release(&m);
	msgpack_sbuffer_destroy(&f.sb);
}
END_TEST

START_TEST(test_error_reply)
{
	msgpack_sbuffer sb;
	struct proto_msg m;
	char err[256];

	msgpack_sbuffer_init(&sb);
	ck_assert_int_eq(proto_encode_error(sbuf_write, &sb, PROTO_MCP_START, 7, PROTO_E_LIMIT,
					    "process cap of 64 reached"),
			 0);
	ck_assert_int_eq(proto_decode(sb.data, sb.size, &m, err, sizeof(err)), 0);
	ck_assert_uint_eq(m.env.kind, PROTO_REPLY);
	ck_assert_uint_eq(m.env.id, 7);
	ck_assert_int_eq(m.env.status, PROTO_E_LIMIT);
	ck_assert(proto_str_eq(m.err_message, "process cap of 64 reached"));
	ck_assert_str_eq(proto_status_name(m.env.status), "limit");
	proto_msg_release(&m);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

START_TEST(test_encode_refuses_bad_input)
{
	msgpack_sbuffer sb;
	struct proto_mcp_stop_body stop = { .handle = 1 };
	struct proto_str many[1];
	struct proto_mcp_start_body start = { 0 };

	msgpack_sbuffer_init(&sb);
	ck_assert_int_eq(proto_encode(sbuf_write, &sb, 0x99, PROTO_REQUEST, 1, &stop), -EINVAL);
	ck_assert_int_eq(proto_encode(sbuf_write, &sb, PROTO_MCP_OUTPUT, PROTO_REPLY, 1, &stop), -EINVAL);
	ck_assert_int_eq(proto_encode(sbuf_write, &sb, PROTO_MCP_STOP, PROTO_EVENT, 1, &stop), -EINVAL);
	many[0] = proto_str_c("x");
	start.server_name = proto_str_c("s");
	start.command = proto_str_c("c");
	start.args.items = many;
	start.args.n = PROTO_MAX_LIST + 1;
	PROTO_MARK(&start, mcp_start_body, args);
	ck_assert_int_eq(proto_encode(sbuf_write, &sb, PROTO_MCP_START, PROTO_REQUEST, 1, &start), -EINVAL);
	msgpack_sbuffer_destroy(&sb);
}
END_TEST

static const struct {
	uint16_t type;
	uint64_t body, reply;
} all_masks[] = {
#define MASK_ROW(id, NAME, name, kind, dir, st)                                                   \
	{ id, PROTO_ALL_##name##_body, PROTO_ALL_##name##_reply },
	PROTO_MESSAGES(MASK_ROW)
#undef MASK_ROW
};

START_TEST(test_table_is_consistent)
{
	/* Generated tag constants agree with the table (spot checks; the
	 * masks below are checked for every message). */
	ck_assert_int_eq(PROTO_TAG_hello_reply_kx, 9);
	ck_assert_int_eq(PROTO_TAG_http_request_body_env_headers, 9);
	ck_assert_uint_eq(ARRAY_SIZE(all_masks), proto_msgdef_count());
	/* Ids unique, tags unique and within 1..64 in every field list. */
	for (size_t i = 0; i < proto_msgdef_count(); i++) {
		const struct proto_msgdef *d = proto_msgdef_at(i);

		ck_assert_ptr_eq(proto_msgdef(d->type), d);
		ck_assert_msg(all_masks[i].type == d->type, "mask table out of order");
		for (int side = 0; side < 2; side++) {
			const struct proto_field *fs = side ? d->reply_fields : d->body_fields;
			uint32_t n = side ? d->n_reply : d->n_body;
			uint64_t seen = 0;

			for (uint32_t j = 0; j < n; j++) {
				ck_assert(fs[j].tag >= 1 && fs[j].tag <= 64);
				ck_assert_msg(!((seen >> (fs[j].tag - 1)) & 1), "%s: tag %u twice",
					      d->name, fs[j].tag);
				seen |= (uint64_t)1 << (fs[j].tag - 1);
			}
			/* The generated PROTO_ALL_ masks name exactly these tags. */
			ck_assert_msg(seen == (side ? all_masks[i].reply : all_masks[i].body),
				      "%s: PROTO_ALL_ mask differs from the field list", d->name);
		}
		if (d->kind == PROTO_EVENT)
			ck_assert_uint_eq(d->n_reply, 0);
	}
}
END_TEST

static Suite *proto_suite(void)
{
	Suite *s = suite_create("proto");
	TCase *tc = tcase_create("codec");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_table_is_consistent);
	tcase_add_test(tc, test_roundtrip_every_message);
	tcase_add_test(tc, test_golden_bytes);
	tcase_add_test(tc, test_every_truncation_rejected);
	tcase_add_test(tc, test_unknown_version_and_type);
	tcase_add_test(tc, test_wrong_types_rejected);
	tcase_add_test(tc, test_required_duplicate_trailing);
	tcase_add_test(tc, test_oversized_rejected_before_allocation);
	tcase_add_test(tc, test_unknown_tag_skipped);
	tcase_add_test(tc, test_error_reply);
	tcase_add_test(tc, test_encode_refuses_bad_input);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(proto_suite)
