/* proto.h - the orchestrator <-> executor wire protocol: limits, envelope,
 * message structs (generated from messages.h) and the codec.
 *
 * Framing on the stream (length prefix, sealing) is proto/frame.h and
 * proto/seal.h; the handshake is proto/handshake.h. A frame's payload is one
 * msgpack array:
 *     [version u8, type u16, kind u8, id u32, status i32, body map]
 * kind is REQUEST, REPLY or EVENT. A reply carries the id of its request and
 * the request's type. status 0 = success and body holds the reply fields;
 * status != 0 = error, body is {1: message}. Body maps use small integer
 * keys (field tags, messages.h) so unknown tags can be skipped.
 *
 * Decoding never trusts a count: every string, binary, list and map length
 * is checked against the limits below and against the bytes left in the
 * frame before anything is allocated. Decoded strings and binaries are views
 * into the frame buffer (zero copy): keep the buffer while using them.
 */
#ifndef TANDEM_PROTO_H
#define TANDEM_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "messages.h"

/* 3: resumable sessions (session id, sequence numbers and acks, replay),
 * MCP_SEND deadlines, MCP_CANCEL, MCP_EXPIRED. A protocol-2 peer is told
 * the version and refused. */
#define PROTO_VERSION 3u
#define PROTO_VERSION_STR "3"
#define PROTO_VERSION_MIN 3u
#define PROTO_SESSION_ID_LEN 16u
/* Envelope version of protocol 1 (nng SP pair1). Version 2 still opens with
 * one frame in it, so that a version-1 peer reads far enough to report the
 * mismatch (PROTOCOL.md, "Opening"); proto_decode_compat() accepts it. */
#define PROTO_VERSION_SP 1u

/* Limits, enforced before allocation. */
#define PROTO_MAX_FRAME (32u * 1024u * 1024u) /* one frame's msgpack payload */
#define PROTO_MAX_HANDSHAKE_FRAME 4096u       /* any frame before the proof */
#define PROTO_MAX_STR (64u * 1024u)           /* one str field */
#define PROTO_MAX_BIN PROTO_MAX_FRAME         /* one bin field */
#define PROTO_MAX_LIST 4096u                  /* strlist / u64list entries */
#define PROTO_MAX_MAP 4096u                   /* strmap entries */
#define PROTO_MAX_FIELDS 64u                  /* keys in one body map */
#define PROTO_MAX_SKIP_DEPTH 8u               /* nesting of skipped unknown values */
#define PROTO_ID_LEN 16u                      /* a server's identity (MCP_START) */
#define PROTO_MAX_LIVE 64u                    /* detached servers in a HELLO reply */
#define PROTO_MAX_NOTE (16u * 1024u)          /* one MCP_NOTE */
#define PROTO_NONCE_LEN 32u
#define PROTO_PROOF_LEN 32u

enum proto_kind { PROTO_REQUEST = 0, PROTO_REPLY = 1, PROTO_EVENT = 2 };
enum proto_dir { PROTO_O2E = 1, PROTO_E2O = 2, PROTO_BOTH = 3 }; /* bits */
enum proto_state { PROTO_PREAUTH = 1, PROTO_AUTHED = 2 };

/* Error codes carried in the envelope status of a failed reply. */
enum proto_status {
	PROTO_OK = 0,
	PROTO_E_BAD_REQUEST = 1,   /* malformed or invalid fields */
	PROTO_E_UNSUPPORTED = 2,   /* unknown message or version */
	PROTO_E_DENIED = 3,        /* auth or policy refused it */
	PROTO_E_NOT_FOUND = 4,     /* unknown handle, missing root */
	PROTO_E_LIMIT = 5,         /* a configured cap was reached */
	PROTO_E_SPAWN = 6,         /* the process could not be started */
	PROTO_E_IO = 7,            /* a file could not be read */
	PROTO_E_INTERNAL = 8,
	PROTO_E_BUSY = 9,          /* another orchestrator holds the executor */
};
const char *proto_status_name(int32_t status);

enum proto_type {
#define PROTO_X_ENUM(id, NAME, name, kind, dir, st) PROTO_##NAME = id,
	PROTO_MESSAGES(PROTO_X_ENUM)
#undef PROTO_X_ENUM
};

/* Field value types. */
struct proto_str {
	const char *ptr; /* not NUL-terminated */
	uint32_t len;
};
struct proto_strlist {
	struct proto_str *items;
	uint32_t n;
};
struct proto_strmap {
	struct proto_str *keys;
	struct proto_str *vals;
	uint32_t n;
};
struct proto_u64list {
	uint64_t *items;
	uint32_t n;
};

#define PROTO_CTYPE_u32 uint32_t
#define PROTO_CTYPE_u64 uint64_t
#define PROTO_CTYPE_i64 int64_t
#define PROTO_CTYPE_bool bool
#define PROTO_CTYPE_str struct proto_str
#define PROTO_CTYPE_bin struct proto_str
#define PROTO_CTYPE_strlist struct proto_strlist
#define PROTO_CTYPE_strmap struct proto_strmap
#define PROTO_CTYPE_u64list struct proto_u64list

/* struct proto_<name>_body / proto_<name>_reply. `present` has bit (tag-1)
 * set for each field that was decoded (or should be encoded: the encoder
 * writes a field when its bit is set, or always when it is required). */
#define PROTO_X_FIELD(S, tag, type, fname, req) PROTO_CTYPE_##type fname;
#define PROTO_X_STRUCTS(id, NAME, name, kind, dir, st)                         \
	struct proto_##name##_body {                                           \
		PROTO_BODY_##name(PROTO_X_FIELD, _) uint64_t present;             \
	};                                                                     \
	struct proto_##name##_reply {                                          \
		PROTO_REPLY_##name(PROTO_X_FIELD, _) uint64_t present;            \
	};
PROTO_MESSAGES(PROTO_X_STRUCTS)
#undef PROTO_X_STRUCTS
#undef PROTO_X_FIELD

#define PROTO_HAS(s, tag) (((s)->present >> ((tag)-1)) & 1u)
#define PROTO_SET(s, tag) ((s)->present |= (uint64_t)1 << ((tag)-1))

/* Tag constants, one per field: PROTO_TAG_<msg>_body_<field> and
 * PROTO_TAG_<msg>_reply_<field>; PROTO_ALL_<msg>_body/_reply has every
 * field's bit. Code names fields, never numbers:
 *     PROTO_MARK(&r, hello_reply, proof);        r.present gets proof's bit
 *     if (PROTO_HAS_FIELD(b, http_response_body, status)) ...
 * The first argument must point to the struct the second one names (a
 * mismatch is a compile error: comparing distinct pointer types). */
#define PROTO_X_TAG(S, tag, type, fname, req) PROTO_TAG_##S##_##fname = tag,
#define PROTO_X_BIT(S, tag, type, fname, req) | ((uint64_t)1 << ((tag)-1))
#define PROTO_X_TAGS(id, NAME, name, kind, dir, st)                            \
	enum {                                                                 \
		PROTO_BODY_##name(PROTO_X_TAG, name##_body)                    \
		PROTO_REPLY_##name(PROTO_X_TAG, name##_reply)                  \
		PROTO_ALL_##name##_body = 0 PROTO_BODY_##name(PROTO_X_BIT, _), \
		PROTO_ALL_##name##_reply = 0 PROTO_REPLY_##name(PROTO_X_BIT, _), \
	};
PROTO_MESSAGES(PROTO_X_TAGS)
#undef PROTO_X_TAGS
#undef PROTO_X_BIT
#undef PROTO_X_TAG

#define PROTO_CHECK_PART(s, part) ((void)sizeof((s) == (const struct proto_##part *)0))
#define PROTO_MARK(s, part, field)                                             \
	(PROTO_CHECK_PART(s, part), PROTO_SET(s, PROTO_TAG_##part##_##field))
#define PROTO_HAS_FIELD(s, part, field)                                        \
	(PROTO_CHECK_PART(s, part), PROTO_HAS(s, PROTO_TAG_##part##_##field))

/* A field's description, from the table. */
enum proto_ftype {
	PT_u32,
	PT_u64,
	PT_i64,
	PT_bool,
	PT_str,
	PT_bin,
	PT_strlist,
	PT_strmap,
	PT_u64list,
};
struct proto_field {
	uint8_t tag;
	uint8_t type;     /* enum proto_ftype */
	uint8_t required;
	uint32_t offset;  /* within the body / reply struct */
	const char *name;
};

/* A message's description, from the table. */
struct proto_msgdef {
	uint16_t type;
	const char *name;  /* "MCP_START" */
	uint8_t kind;      /* PROTO_REQUEST or PROTO_EVENT */
	uint8_t dir;       /* PROTO_O2E or PROTO_E2O */
	uint8_t state;     /* PROTO_PREAUTH or PROTO_AUTHED */
	const struct proto_field *body_fields;
	uint32_t n_body;
	uint32_t body_present; /* offsetof(body, present) */
	const struct proto_field *reply_fields;
	uint32_t n_reply;
	uint32_t reply_present;
};
/* NULL for an unknown type. */
const struct proto_msgdef *proto_msgdef(uint16_t type);
/* Iteration over the table, for docs and tests. */
const struct proto_msgdef *proto_msgdef_at(size_t i);
size_t proto_msgdef_count(void);

/* Envelope of a decoded frame. */
struct proto_env {
	uint8_t version;
	uint16_t type;
	uint8_t kind;
	uint32_t id;
	int32_t status;
};

/* A decoded frame. The body union member matching (type, kind) is valid;
 * for an error reply only err_message is. Lists are allocated (bounded by
 * the limits); release with proto_msg_release(). */
struct proto_msg {
	struct proto_env env;
	const struct proto_msgdef *def;
	struct proto_str err_message;
	union {
#define PROTO_X_UNION(id, NAME, name, kind, dir, st)                           \
	struct proto_##name##_body name;                                       \
	struct proto_##name##_reply name##_reply;
		PROTO_MESSAGES(PROTO_X_UNION)
#undef PROTO_X_UNION
	} u;
	void *allocs[8]; /* lists owned by this message */
	uint32_t n_allocs;
};

/* Decodes one frame. Returns 0, or -EBADMSG / -EPROTONOSUPPORT / -E2BIG with
 * a reason in err (e.g. "field 'handle' (tag 1) of MCP_STOP: expected
 * unsigned integer"). On failure nothing needs releasing. */
int proto_decode(const void *buf, size_t len, struct proto_msg *m, char *err, size_t errlen);
/* The same, also accepting envelope version PROTO_VERSION_SP (m->env.version
 * says which); only the handshake's opening uses it. */
int proto_decode_compat(const void *buf, size_t len, struct proto_msg *m, char *err,
			size_t errlen);
void proto_msg_release(struct proto_msg *m);

/* Output sink for the encoder: appends len bytes; returns 0 or -errno. */
typedef int (*proto_write_fn)(void *ctx, const void *data, size_t len);

/* Encodes a request or event (kind from the table) or, with
 * kind = PROTO_REPLY, a success reply; body points to the matching
 * proto_<name>_body / _reply struct. Returns 0, -EINVAL (unknown type,
 * missing required field, over a limit), or the sink's error. */
int proto_encode(proto_write_fn w, void *ctx, uint16_t type, uint8_t kind, uint32_t id,
		 const void *body);
/* proto_encode with an explicit envelope version (PROTO_VERSION_SP for the
 * handshake's opening). */
int proto_encode_version(proto_write_fn w, void *ctx, uint8_t version, uint16_t type,
			 uint8_t kind, uint32_t id, const void *body);
/* Encodes an error reply to a request of `type`. */
int proto_encode_error(proto_write_fn w, void *ctx, uint16_t type, uint32_t id, int32_t status,
		       const char *message);
int proto_encode_error_version(proto_write_fn w, void *ctx, uint8_t version, uint16_t type,
			       uint32_t id, int32_t status, const char *message);

/* Helpers for building bodies. */
static inline struct proto_str proto_str_c(const char *s);
/* Copies a view into a new NUL-terminated string (caller frees). */
char *proto_str_dup(struct proto_str s);
bool proto_str_eq(struct proto_str s, const char *c);

#include <string.h>
static inline struct proto_str proto_str_c(const char *s)
{
	struct proto_str r = { s, s ? (uint32_t)strlen(s) : 0 };
	return r;
}

#endif
