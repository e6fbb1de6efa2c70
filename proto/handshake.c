/* handshake.c - see handshake.h and PROTOCOL.md ("Handshake"). */
#include "handshake.h"

#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util.h"
#include "valid.h"

#define SP_PAIR1 0x0011u
#define SP_HOP_LEN 4u
#define SP_MAX_MSG (PROTO_MAX_HANDSHAKE_FRAME + SP_HOP_LEN)
#define TRANSCRIPT_MAX (8u * (PROTO_MAX_HANDSHAKE_FRAME + 16u))
#define ORCH_HELLO_ID 1u
#define ORCH_AUTH_ID 2u

static const char LABEL_T[] = "tandem link 2";
static const char LABEL_PO[] = "tandem link 2 proof o";
static const char LABEL_PE[] = "tandem link 2 proof e";
static const char LABEL_K[] = "tandem link 2 keys";
static const char KDF_CTX[crypto_kdf_CONTEXTBYTES] = { 't', 'd', 'm', 'l', 'i', 'n', 'k', '2' };

enum step {
	/* executor */
	E_SP_HEADER,  /* the orchestrator's SP header */
	E_NEXT,       /* marker (v2) or an SP message (a v1 orchestrator's HELLO) */
	E_HELLO,
	E_AUTH,
	/* orchestrator */
	O_SP_HEADER,
	O_CHALLENGE,  /* one SP message */
	O_HELLO_REPLY,
	O_AUTH_REPLY,
	/* both */
	S_END,
};

struct hs {
	struct hs_params p;
	uint8_t key[HS_KEY_LEN];
	bool has_key;
	enum step step;
	enum hs_state state;
	enum hs_fail fail;
	char error[256];
	struct fbuf transcript;
	uint8_t nonce[PROTO_NONCE_LEN];
	bool seal;
	uint8_t kx_pk[crypto_kx_PUBLICKEYBYTES], kx_sk[crypto_kx_SECRETKEYBYTES];
	uint8_t peer_pk[crypto_kx_PUBLICKEYBYTES];
	uint32_t hello_id, auth_id; /* executor: ids to answer */
	enum seal_aead aeads[4];    /* ours, preferred first, SEAL_NONE-terminated */
	struct hs_result res;
};

const char *hs_fail_name(enum hs_fail f)
{
	switch (f) {
	case HS_FAIL_NONE: return "none";
	case HS_FAIL_PROTOCOL: return "protocol";
	case HS_FAIL_VERSION: return "version";
	case HS_FAIL_PROOF: return "bad proof";
	case HS_FAIL_CONFIG: return "no token";
	case HS_FAIL_BUSY: return "busy";
	default: return "refused";
	}
}

const char *hs_fail_label(enum hs_fail f)
{
	switch (f) {
	case HS_FAIL_PROTOCOL: return "malformed";
	case HS_FAIL_VERSION: return "version";
	case HS_FAIL_PROOF: return "bad_proof";
	case HS_FAIL_BUSY: return "busy";
	default: return "other";
	}
}

static void rnd(struct hs *h, void *buf, size_t n)
{
	if (h->p.random)
		h->p.random(buf, n);
	else
		randombytes_buf(buf, n);
}

static void fail(struct hs *h, enum hs_fail kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fail(struct hs *h, enum hs_fail kind, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(h->error, sizeof(h->error), fmt, ap);
	va_end(ap);
	h->fail = kind;
	h->state = HS_FAILED;
	h->step = S_END;
}

/* ---- the opening's SP pieces ---------------------------------------------- */

void hs_sp_header(uint8_t out[HS_SP_HEADER_LEN])
{
	static const uint8_t hdr[HS_SP_HEADER_LEN] = { 0, 'S', 'P', 0, SP_PAIR1 >> 8, SP_PAIR1 & 0xff,
						       0, 0 };

	memcpy(out, hdr, sizeof(hdr));
}

void hs_marker(uint8_t out[HS_MARKER_LEN])
{
	static const uint8_t m[HS_MARKER_LEN] = { 0, 'T', 'D', 'M', 0, PROTO_VERSION, 0, 0 };

	memcpy(out, m, sizeof(m));
}

/* ---- the dial-in preface (PROTOCOL.md, "Executors that dial out") ---- */

static const uint8_t dialin_magic[4] = { 0, 'T', 'D', 'I' };

size_t hs_dialin_preface(uint8_t out[HS_DIALIN_MAX], const char *environment_id)
{
	size_t n = strlen(environment_id);

	if (!valid_env_id(environment_id))
		return 0;
	memcpy(out, dialin_magic, sizeof(dialin_magic));
	out[4] = PROTO_VERSION;
	out[5] = 0;
	out[6] = (uint8_t)(n >> 8);
	out[7] = (uint8_t)n;
	memcpy(out + 8, environment_id, n);
	return 8 + n;
}

int hs_dialin_parse(const uint8_t *buf, size_t len, char id[HS_ID_MAX + 1], size_t *used)
{
	size_t n;

	/* Judged byte by byte: a peer that is not a dialling executor is told
	 * so at its first wrong byte, not after it sent eight. */
	for (size_t i = 0; i < MIN(len, sizeof(dialin_magic)); i++)
		if (buf[i] != dialin_magic[i])
			return -EBADMSG;
	if (len >= 5 && buf[4] != PROTO_VERSION)
		return -EPROTO;
	if (len < 8)
		return -EAGAIN;
	n = (size_t)buf[6] << 8 | buf[7];
	if (n == 0 || n > HS_DIALIN_MAX - 8 || buf[5] != 0)
		return -EBADMSG;
	if (len < 8 + n)
		return -EAGAIN;
	memcpy(id, buf + 8, n);
	id[n] = '\0';
	if (strlen(id) != n || !valid_env_id(id))
		return -EBADMSG;
	*used = 8 + n;
	return 0;
}

void hs_sp_message(struct fbuf *out, bool ipc, const uint8_t *payload, size_t len)
{
	uint8_t hdr[1 + 8 + SP_HOP_LEN];
	uint64_t n = len + SP_HOP_LEN;
	size_t o = 0;

	if (ipc)
		hdr[o++] = 1;
	for (int i = 7; i >= 0; i--)
		hdr[o++] = (uint8_t)(n >> (8 * i));
	/* pair1's hop count, as nng sends it (0, incremented once on send) */
	hdr[o++] = 0;
	hdr[o++] = 0;
	hdr[o++] = 0;
	hdr[o++] = 1;
	fbuf_append(out, hdr, o);
	fbuf_append(out, payload, len);
}

int hs_sp_parse(const uint8_t *buf, size_t len, bool ipc, size_t max, const uint8_t **payload,
		size_t *plen, size_t *used)
{
	size_t head = (ipc ? 1u : 0u) + 8u;
	uint64_t n = 0;

	if (len < head)
		return -EAGAIN;
	if (ipc && buf[0] != 1)
		return -EBADMSG;
	for (size_t i = head - 8; i < head; i++)
		n = n << 8 | buf[i];
	if (n > max)
		return -E2BIG;
	if (n < SP_HOP_LEN)
		return -EBADMSG;
	if (len - head < n)
		return -EAGAIN;
	*payload = buf + head + SP_HOP_LEN;
	*plen = (size_t)n - SP_HOP_LEN;
	*used = head + (size_t)n;
	return 0;
}

/* ---- transcript, proofs, keys -------------------------------------------- */

static void transcript_add(struct hs *h, const void *data, size_t len)
{
	/* Bounded by the handshake's frame count and size limits. */
	if (h->transcript.len + len <= TRANSCRIPT_MAX)
		fbuf_append(&h->transcript, data, len);
}

static void transcript_hash(const struct hs *h, uint8_t out[32])
{
	crypto_generichash(out, 32, h->transcript.p, h->transcript.len, NULL, 0);
}

static void keyed(const struct hs *h, const char *label, const uint8_t *a, size_t alen,
		  const uint8_t th[32], uint8_t out[32])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, h->key, HS_KEY_LEN, 32);
	crypto_generichash_update(&st, (const uint8_t *)label, strlen(label) + 1);
	if (alen)
		crypto_generichash_update(&st, a, alen);
	crypto_generichash_update(&st, th, 32);
	crypto_generichash_final(&st, out, 32);
	sodium_memzero(&st, sizeof(st));
}

/* MAC(K, label || id || H(transcript)): id is the AUTH frame's own id
 * (the one part of the frame carrying the proof that the transcript does
 * not hold; the rest is checked to be canonical). */
static void proof(const struct hs *h, const char *label, uint32_t id, uint8_t out[PROTO_PROOF_LEN])
{
	uint8_t th[32], idb[4] = { (uint8_t)(id >> 24), (uint8_t)(id >> 16), (uint8_t)(id >> 8),
				   (uint8_t)id };

	transcript_hash(h, th);
	keyed(h, label, idb, sizeof(idb), th, out);
}

static bool proof_ok(const struct hs *h, const char *label, uint32_t id, struct proto_str got)
{
	uint8_t want[PROTO_PROOF_LEN];
	bool ok;

	if (got.len != PROTO_PROOF_LEN)
		return false;
	proof(h, label, id, want);
	ok = crypto_verify_32(want, (const uint8_t *)got.ptr) == 0;
	sodium_memzero(want, sizeof(want));
	return ok;
}

/* Both sides arrange crypto_kx's output the same way: the orchestrator's
 * (client's) tx half first. */
static int derive_keys(struct hs *h)
{
	uint8_t a[crypto_kx_SESSIONKEYBYTES], b[crypto_kx_SESSIONKEYBYTES], kx[64], th[32],
		prk[32], k[4][SEAL_KEY_LEN];
	bool orch = h->p.role == HS_ORCHESTRATOR;
	int r;

	if (orch) /* a = rx (e2o), b = tx (o2e) */
		r = crypto_kx_client_session_keys(a, b, h->kx_pk, h->kx_sk, h->peer_pk);
	else /* a = rx (o2e), b = tx (e2o) */
		r = crypto_kx_server_session_keys(a, b, h->kx_pk, h->kx_sk, h->peer_pk);
	if (r != 0)
		return -EBADMSG;
	memcpy(kx, orch ? b : a, 32);      /* o2e half */
	memcpy(kx + 32, orch ? a : b, 32); /* e2o half */
	transcript_hash(h, th);
	keyed(h, LABEL_K, kx, sizeof(kx), th, prk);
	for (unsigned i = 0; i < 4; i++)
		crypto_kdf_derive_from_key(k[i], i < 2 ? SEAL_KEY_LEN : SEAL_PREFIX_LEN, i + 1,
					   KDF_CTX, prk);
	/* k[0] o2e key, k[1] e2o key, k[2] o2e prefix, k[3] e2o prefix */
	memcpy(h->res.tx_key, k[orch ? 0 : 1], SEAL_KEY_LEN);
	memcpy(h->res.rx_key, k[orch ? 1 : 0], SEAL_KEY_LEN);
	memcpy(h->res.tx_prefix, k[orch ? 2 : 3], SEAL_PREFIX_LEN);
	memcpy(h->res.rx_prefix, k[orch ? 3 : 2], SEAL_PREFIX_LEN);
	h->res.sealed = true;
	sodium_memzero(a, sizeof(a));
	sodium_memzero(b, sizeof(b));
	sodium_memzero(kx, sizeof(kx));
	sodium_memzero(prk, sizeof(prk));
	sodium_memzero(k, sizeof(k));
	sodium_memzero(h->kx_sk, sizeof(h->kx_sk));
	return 0;
}

static void kx_keypair(struct hs *h)
{
	uint8_t seed[crypto_kx_SEEDBYTES];

	rnd(h, seed, sizeof(seed));
	crypto_kx_seed_keypair(h->kx_pk, h->kx_sk, seed);
	sodium_memzero(seed, sizeof(seed));
}

/* ---- building frames ------------------------------------------------------ */

/* Encodes one framed message (version 2), adds it to out and the transcript. */
static void put_frame(struct hs *h, struct fbuf *out, uint16_t type, uint8_t kind, uint32_t id,
		      const void *body)
{
	struct fbuf f = { 0 };

	fbuf_reserve(&f, 256);
	f.len = FRAME_HDR;
	if (proto_encode(fbuf_write, &f, type, kind, id, body) < 0)
		abort(); /* our own bodies are always within the limits */
	frame_put_len(f.p, (uint32_t)(f.len - FRAME_HDR));
	transcript_add(h, f.p, f.len);
	fbuf_append(out, f.p, f.len);
	fbuf_free(&f);
}

/* An error reply: to the peer, not part of any transcript. */
static void put_error(struct fbuf *out, uint8_t version, bool sp_ipc, uint16_t type, uint32_t id,
		      int32_t status, const char *msg)
{
	struct fbuf f = { 0 };

	if (version == PROTO_VERSION_SP) {
		proto_encode_error_version(fbuf_write, &f, version, type, id, status, msg);
		hs_sp_message(out, sp_ipc, f.p, f.len);
	} else {
		f.len = FRAME_HDR;
		fbuf_reserve(&f, 256);
		proto_encode_error(fbuf_write, &f, type, id, status, msg);
		frame_put_len(f.p, (uint32_t)(f.len - FRAME_HDR));
		fbuf_append(out, f.p, f.len);
	}
	fbuf_free(&f);
}

static void copy_str(char *dst, struct proto_str s)
{
	size_t n = MIN(s.len, HS_ID_MAX);

	memcpy(dst, s.ptr ? s.ptr : "", n);
	dst[n] = '\0';
	for (size_t i = 0; i < n; i++) /* ids reach logs: no control bytes */
		if ((unsigned char)dst[i] < 0x20 || dst[i] == 0x7f)
			dst[i] = '?';
}

/* Decodes one framed handshake message (strict version 2). */
static int decode_frame(struct hs *h, const uint8_t *payload, size_t plen, struct proto_msg *m)
{
	char err[200];

	if (proto_decode(payload, plen, m, err, sizeof(err)) < 0) {
		fail(h, HS_FAIL_PROTOCOL, "malformed frame: %s", err);
		return -EBADMSG;
	}
	return 0;
}

/* The frame carrying a proof is outside the transcript it proves: accept
 * only the one encoding our encoder makes of it, so that nothing in it can
 * change without the proof failing. */
static bool canonical(const uint8_t *payload, size_t plen, const struct proto_msg *m)
{
	struct fbuf f = { 0 };
	bool same;

	if (proto_encode(fbuf_write, &f, m->env.type, m->env.kind, m->env.id, &m->u) < 0) {
		fbuf_free(&f);
		return false;
	}
	same = f.len == plen && memcmp(f.p, payload, plen) == 0;
	fbuf_free(&f);
	return same;
}

/* ---- executor ------------------------------------------------------------- */

static void exec_send_opening(struct hs *h, const uint8_t *their_header, struct fbuf *out)
{
	struct proto_challenge_body c = {
		.version_min = PROTO_VERSION_MIN,
		.version_max = PROTO_VERSION,
		.auth_required = h->has_key,
		.seal = h->seal,
	};
	struct fbuf payload = { 0 }, opening = { 0 };
	uint8_t hdr[HS_SP_HEADER_LEN];
	struct proto_str names[4];

	rnd(h, h->nonce, sizeof(h->nonce));
	c.nonce.ptr = (const char *)h->nonce;
	c.nonce.len = PROTO_NONCE_LEN;
	PROTO_MARK(&c, challenge_body, seal);
	if (h->seal) {
		for (unsigned i = 0; h->aeads[i] != SEAL_NONE; i++)
			names[c.aeads.n++] = proto_str_c(seal_aead_name(h->aeads[i]));
		c.aeads.items = names;
		PROTO_MARK(&c, challenge_body, aeads);
	}
	proto_encode_version(fbuf_write, &payload, PROTO_VERSION_SP, PROTO_CHALLENGE, PROTO_EVENT,
			     0, &c);
	hs_sp_header(hdr);
	fbuf_append(&opening, hdr, sizeof(hdr));
	hs_sp_message(&opening, h->p.sp_ipc, payload.p, payload.len);
	transcript_add(h, their_header, HS_SP_HEADER_LEN);
	transcript_add(h, opening.p, opening.len);
	fbuf_append(out, opening.p, opening.len);
	fbuf_free(&payload);
	fbuf_free(&opening);
}

static bool sp_header_ok(const uint8_t *b)
{
	return b[0] == 0 && b[1] == 'S' && b[2] == 'P' && b[3] == 0 && b[6] == 0 && b[7] == 0;
}

static size_t exec_sp_header(struct hs *h, const uint8_t *d, size_t len, struct fbuf *out)
{
	if (len < HS_SP_HEADER_LEN)
		return 0;
	if (!sp_header_ok(d)) {
		fail(h, HS_FAIL_PROTOCOL, "not a tandem link peer (no SP header)");
		return 0;
	}
	if ((d[4] << 8 | d[5]) != SP_PAIR1) {
		fail(h, HS_FAIL_PROTOCOL, "not a tandem link peer (SP protocol 0x%04x)",
		     d[4] << 8 | d[5]);
		return 0;
	}
	exec_send_opening(h, d, out);
	h->step = E_NEXT;
	return HS_SP_HEADER_LEN;
}

/* A protocol-1 orchestrator answered our CHALLENGE with its HELLO in an SP
 * message: tell it, in its own framing, why it cannot go on. */
static size_t exec_v1_hello(struct hs *h, const uint8_t *d, size_t len, struct fbuf *out)
{
	const uint8_t *payload;
	size_t plen, used;
	struct proto_msg m;
	char err[200];
	int r = hs_sp_parse(d, len, h->p.sp_ipc, SP_MAX_MSG, &payload, &plen, &used);

	if (r == -EAGAIN)
		return 0;
	if (r < 0 || proto_decode_compat(payload, plen, &m, err, sizeof(err)) < 0) {
		fail(h, HS_FAIL_PROTOCOL, "not a tandem link peer (bad bytes after the opening)");
		return 0;
	}
	if (m.env.type == PROTO_HELLO && m.env.kind == PROTO_REQUEST)
		put_error(out, PROTO_VERSION_SP, h->p.sp_ipc, PROTO_HELLO, m.env.id,
			  PROTO_E_UNSUPPORTED,
			  "this executor speaks link protocol " PROTO_VERSION_STR " (nng streams, "
			  "sealed frames, resumable sessions); the orchestrator speaks protocol 1: "
			  "upgrade it");
	proto_msg_release(&m);
	fail(h, HS_FAIL_VERSION,
	     "the orchestrator speaks link protocol 1 (nng SP pair1); this executor speaks %u: "
	     "upgrade the orchestrator", PROTO_VERSION);
	return used;
}

static size_t exec_next(struct hs *h, const uint8_t *d, size_t len, struct fbuf *out)
{
	if (len < HS_MARKER_LEN)
		return 0;
	if (d[0] == 0 && d[1] == 'T' && d[2] == 'D' && d[3] == 'M') {
		unsigned v = (unsigned)(d[4] << 8 | d[5]);

		if (v != PROTO_VERSION) {
			fail(h, HS_FAIL_VERSION, "the orchestrator speaks link protocol %u; this "
						 "executor speaks %u: upgrade the %s", v, PROTO_VERSION,
			     v < PROTO_VERSION ? "orchestrator" : "executor");
			return 0;
		}
		transcript_add(h, d, HS_MARKER_LEN);
		h->step = E_HELLO;
		return HS_MARKER_LEN;
	}
	if ((h->p.sp_ipc && d[0] == 1) || (!h->p.sp_ipc && !d[0] && !d[1] && !d[2] && !d[3]))
		return exec_v1_hello(h, d, len, out);
	fail(h, HS_FAIL_PROTOCOL, "not a tandem link peer (bad bytes after the opening)");
	return 0;
}

static bool ours(const struct hs *h, enum seal_aead a)
{
	for (unsigned i = 0; a != SEAL_NONE && h->aeads[i] != SEAL_NONE; i++)
		if (h->aeads[i] == a)
			return true;
	return false;
}

static bool versions_overlap(uint32_t lo, uint32_t hi)
{
	return lo <= PROTO_VERSION && hi >= PROTO_VERSION_MIN && lo <= hi;
}

static void exec_hello(struct hs *h, const struct proto_msg *m, struct fbuf *out)
{
	const struct proto_hello_body *b = &m->u.hello;

	if (!versions_overlap(b->version_min, b->version_max)) {
		put_error(out, PROTO_VERSION, false, PROTO_HELLO, m->env.id, PROTO_E_UNSUPPORTED,
			  "executor speaks protocol " PROTO_VERSION_STR
			  ", the orchestrator offers another range");
		fail(h, HS_FAIL_VERSION, "no common protocol version (orchestrator offers %u..%u)",
		     b->version_min, b->version_max);
		return;
	}
	if (b->nonce.len != PROTO_NONCE_LEN) {
		fail(h, HS_FAIL_PROTOCOL, "HELLO nonce has the wrong length");
		return;
	}
	if (h->seal && b->kx.len != crypto_kx_PUBLICKEYBYTES) {
		fail(h, HS_FAIL_PROTOCOL, "HELLO has no X25519 key on a link that is sealed");
		return;
	}
	if (h->seal) {
		enum seal_aead a = seal_aead_by_name(b->aead.ptr, b->aead.len);

		if (!ours(h, a)) {
			fail(h, HS_FAIL_PROTOCOL, "HELLO picks an AEAD this executor did not offer");
			return;
		}
		h->res.aead = a;
	}
	if (h->seal)
		memcpy(h->peer_pk, b->kx.ptr, sizeof(h->peer_pk));
	if (PROTO_HAS_FIELD(b, hello_body, session)) {
		if (b->session.len != PROTO_SESSION_ID_LEN) {
			fail(h, HS_FAIL_PROTOCOL, "HELLO session id has the wrong length");
			return;
		}
		memcpy(h->res.session, b->session.ptr, PROTO_SESSION_ID_LEN);
		h->res.resume = true;
		h->res.resume_ack = b->resume_ack;
	}
	h->res.clock_ms = b->clock_ms;
	copy_str(h->res.orchestrator_id, b->orchestrator_id);
	copy_str(h->res.environment_id, b->environment_id);
	h->hello_id = m->env.id;
	h->step = E_AUTH;
}

static void exec_auth(struct hs *h, const struct proto_msg *m, struct fbuf *out)
{
	const struct proto_auth_body *b = &m->u.auth;

	/* T1 ends before AUTH: the proof cannot cover itself. */
	if (h->has_key && !proof_ok(h, LABEL_PO, m->env.id, b->proof)) {
		put_error(out, PROTO_VERSION, false, PROTO_AUTH, m->env.id, PROTO_E_DENIED,
			  "authentication failed");
		fail(h, HS_FAIL_PROOF, "%s", b->proof.len ? "wrong proof of the secret"
							  : "no proof of the secret");
		return;
	}
	h->auth_id = m->env.id;
	h->state = HS_PROVED;
	h->step = S_END;
}

/* One framed message in E_HELLO or E_AUTH. */
static size_t exec_frame(struct hs *h, const uint8_t *d, size_t len, struct fbuf *out)
{
	const uint8_t *payload;
	size_t plen, need;
	uint16_t want = h->step == E_HELLO ? PROTO_HELLO : PROTO_AUTH;
	struct proto_msg m;
	int r = frame_parse(d, len, PROTO_MAX_HANDSHAKE_FRAME, &payload, &plen, &need);

	if (r == -EAGAIN)
		return 0;
	if (r < 0) {
		fail(h, HS_FAIL_PROTOCOL, "handshake frame %s", r == -E2BIG
			? "declares a length over the handshake limit" : "of length 0");
		return 0;
	}
	if (decode_frame(h, payload, plen, &m) < 0)
		return 0;
	if (m.env.type != want || m.env.kind != PROTO_REQUEST) {
		fail(h, HS_FAIL_PROTOCOL, "%s %s is not allowed before authentication",
		     m.def->name, m.env.kind == PROTO_REPLY ? "reply" : "message");
		proto_msg_release(&m);
		return 0;
	}
	if (want == PROTO_AUTH && !canonical(payload, plen, &m)) {
		fail(h, HS_FAIL_PROTOCOL, "AUTH is not canonically encoded");
	} else if (want == PROTO_AUTH) {
		exec_auth(h, &m, out);
		transcript_add(h, d, FRAME_HDR + plen);
	} else {
		transcript_add(h, d, FRAME_HDR + plen);
		exec_hello(h, &m, out);
	}
	proto_msg_release(&m);
	return FRAME_HDR + plen;
}

void hs_accept(struct hs *h, const struct proto_hello_reply *info, struct fbuf *out)
{
	struct proto_hello_reply r = *info;
	struct proto_auth_reply a = { 0 };
	uint8_t pe[PROTO_PROOF_LEN];

	if (h->state != HS_PROVED)
		return;
	if (r.session.len != PROTO_SESSION_ID_LEN) {
		fail(h, HS_FAIL_PROTOCOL, "no session id to give the orchestrator");
		return;
	}
	r.version = PROTO_VERSION;
	if (h->seal) {
		kx_keypair(h);
		r.kx.ptr = (const char *)h->kx_pk;
		r.kx.len = sizeof(h->kx_pk);
		PROTO_MARK(&r, hello_reply, kx);
	}
	put_frame(h, out, PROTO_HELLO, PROTO_REPLY, h->hello_id, &r);
	if (h->has_key) {
		proof(h, LABEL_PE, h->auth_id, pe);
		a.proof.ptr = (const char *)pe;
		a.proof.len = sizeof(pe);
		PROTO_MARK(&a, auth_reply, proof);
	}
	put_frame(h, out, PROTO_AUTH, PROTO_REPLY, h->auth_id, &a);
	sodium_memzero(pe, sizeof(pe));
	if (h->seal && derive_keys(h) < 0) {
		out->len = 0; /* nothing to a peer whose key is bad */
		fail(h, HS_FAIL_PROTOCOL, "the orchestrator's X25519 key is unusable");
		return;
	}
	h->state = HS_DONE;
}

void hs_refuse(struct hs *h, int32_t status, const char *msg, struct fbuf *out)
{
	if (h->state != HS_PROVED)
		return;
	put_error(out, PROTO_VERSION, false, PROTO_AUTH, h->auth_id, status, msg);
	fail(h, status == PROTO_E_BUSY ? HS_FAIL_BUSY : HS_FAIL_REFUSED, "refused: %s", msg);
}

/* ---- orchestrator --------------------------------------------------------- */

static size_t orch_sp_header(struct hs *h, const uint8_t *d, size_t len)
{
	if (len < HS_SP_HEADER_LEN)
		return 0;
	if (!sp_header_ok(d) || (d[4] << 8 | d[5]) != SP_PAIR1) {
		fail(h, HS_FAIL_PROTOCOL, "not a tandem executor (bad opening bytes)");
		return 0;
	}
	transcript_add(h, d, HS_SP_HEADER_LEN);
	h->step = O_CHALLENGE;
	return HS_SP_HEADER_LEN;
}

/* A protocol-1 executor challenged us: offer it only version 2 (in its own
 * envelope), so that it logs the mismatch too. */
static void orch_v1_hello(struct hs *h, struct fbuf *out)
{
	struct proto_hello_body b = { .version_min = PROTO_VERSION_MIN,
				      .version_max = PROTO_VERSION };
	struct fbuf f = { 0 };

	rnd(h, h->nonce, sizeof(h->nonce));
	b.nonce.ptr = (const char *)h->nonce;
	b.nonce.len = PROTO_NONCE_LEN;
	b.orchestrator_id = proto_str_c(h->p.orchestrator_id);
	PROTO_MARK(&b, hello_body, orchestrator_id);
	proto_encode_version(fbuf_write, &f, PROTO_VERSION_SP, PROTO_HELLO, PROTO_REQUEST, 1, &b);
	hs_sp_message(out, h->p.sp_ipc, f.p, f.len);
	fbuf_free(&f);
	fail(h, HS_FAIL_VERSION, "the executor speaks link protocol 1 (nng SP pair1); this "
				 "orchestrator speaks %u: upgrade the executor", PROTO_VERSION);
}

static void orch_send_hello(struct hs *h, struct fbuf *out)
{
	struct proto_hello_body b = { .version_min = PROTO_VERSION_MIN,
				      .version_max = PROTO_VERSION };
	struct proto_auth_body a = { 0 };
	uint8_t marker[HS_MARKER_LEN], po[PROTO_PROOF_LEN];

	hs_marker(marker);
	transcript_add(h, marker, sizeof(marker));
	fbuf_append(out, marker, sizeof(marker));
	rnd(h, h->nonce, sizeof(h->nonce));
	b.nonce.ptr = (const char *)h->nonce;
	b.nonce.len = PROTO_NONCE_LEN;
	b.orchestrator_id = proto_str_c(h->p.orchestrator_id ? h->p.orchestrator_id : "");
	b.environment_id = proto_str_c(h->p.environment_id ? h->p.environment_id : "");
	PROTO_MARK(&b, hello_body, orchestrator_id);
	PROTO_MARK(&b, hello_body, environment_id);
	if (h->seal) {
		kx_keypair(h);
		b.kx.ptr = (const char *)h->kx_pk;
		b.kx.len = sizeof(h->kx_pk);
		b.aead = proto_str_c(seal_aead_name(h->res.aead));
		PROTO_MARK(&b, hello_body, kx);
		PROTO_MARK(&b, hello_body, aead);
	}
	if (h->p.resume_session) {
		b.session.ptr = (const char *)h->p.resume_session;
		b.session.len = PROTO_SESSION_ID_LEN;
		b.resume_ack = h->p.resume_ack;
		PROTO_MARK(&b, hello_body, session);
		PROTO_MARK(&b, hello_body, resume_ack);
	}
	b.clock_ms = h->p.clock_ms;
	PROTO_MARK(&b, hello_body, clock_ms);
	put_frame(h, out, PROTO_HELLO, PROTO_REQUEST, ORCH_HELLO_ID, &b);
	if (h->has_key) {
		proof(h, LABEL_PO, ORCH_AUTH_ID, po);
		a.proof.ptr = (const char *)po;
		a.proof.len = sizeof(po);
		PROTO_MARK(&a, auth_body, proof);
	}
	put_frame(h, out, PROTO_AUTH, PROTO_REQUEST, ORCH_AUTH_ID, &a);
	sodium_memzero(po, sizeof(po));
	h->step = O_HELLO_REPLY;
}

static void orch_challenge(struct hs *h, const struct proto_msg *m, struct fbuf *out)
{
	const struct proto_challenge_body *c = &m->u.challenge;

	if (m->env.type != PROTO_CHALLENGE || m->env.kind != PROTO_EVENT ||
	    c->nonce.len != PROTO_NONCE_LEN) {
		fail(h, HS_FAIL_PROTOCOL, "the executor's opening is not a CHALLENGE");
		return;
	}
	if (c->version_max < 2) {
		orch_v1_hello(h, out);
		return;
	}
	if (!versions_overlap(c->version_min, c->version_max)) {
		uint8_t marker[HS_MARKER_LEN];

		/* A protocol-2 executor reads the marker's version and logs
		 * the mismatch too. */
		hs_marker(marker);
		fbuf_append(out, marker, sizeof(marker));
		fail(h, HS_FAIL_VERSION, "no common protocol version (the executor speaks %u..%u, "
					 "this orchestrator %u..%u): upgrade the %s", c->version_min,
		     c->version_max, PROTO_VERSION_MIN, PROTO_VERSION,
		     c->version_max < PROTO_VERSION_MIN ? "executor" : "orchestrator");
		return;
	}
	if (c->auth_required && !h->has_key) {
		fail(h, HS_FAIL_CONFIG, "the executor requires a token and none is configured");
		return;
	}
	if (c->seal && !h->has_key) {
		fail(h, HS_FAIL_PROTOCOL, "the executor seals the link but asks for no token");
		return;
	}
	/* The executor's first AEAD that we can use too. */
	for (uint32_t i = 0; c->seal && i < c->aeads.n && !h->res.aead; i++) {
		enum seal_aead a = seal_aead_by_name(c->aeads.items[i].ptr, c->aeads.items[i].len);

		if (ours(h, a))
			h->res.aead = a;
	}
	if (c->seal && !h->res.aead) {
		fail(h, HS_FAIL_PROTOCOL, "no AEAD in common with the executor");
		return;
	}
	h->seal = c->seal;
	orch_send_hello(h, out);
}

static size_t orch_challenge_msg(struct hs *h, const uint8_t *d, size_t len, struct fbuf *out)
{
	const uint8_t *payload;
	size_t plen, used;
	struct proto_msg m;
	char err[200];
	int r = hs_sp_parse(d, len, h->p.sp_ipc, SP_MAX_MSG, &payload, &plen, &used);

	if (r == -EAGAIN)
		return 0;
	if (r < 0) {
		fail(h, HS_FAIL_PROTOCOL, "not a tandem executor (bad opening message)");
		return 0;
	}
	if (proto_decode_compat(payload, plen, &m, err, sizeof(err)) < 0) {
		fail(h, HS_FAIL_PROTOCOL, "the executor's CHALLENGE: %s", err);
		return 0;
	}
	transcript_add(h, d, used);
	orch_challenge(h, &m, out);
	proto_msg_release(&m);
	return used;
}

/* An error reply from the executor during the handshake: its reason. */
static void orch_refused(struct hs *h, const struct proto_msg *m)
{
	enum hs_fail kind;

	switch (m->env.status) {
	case PROTO_E_UNSUPPORTED: kind = HS_FAIL_VERSION; break;
	case PROTO_E_DENIED: kind = HS_FAIL_PROOF; break;
	case PROTO_E_BUSY: kind = HS_FAIL_BUSY; break;
	default: kind = HS_FAIL_REFUSED; break;
	}
	fail(h, kind, "refused by the executor (%s): %.*s", proto_status_name(m->env.status),
	     (int)MIN(m->err_message.len, 160u), m->err_message.ptr ? m->err_message.ptr : "");
}

static void orch_hello_reply(struct hs *h, const struct proto_msg *m)
{
	const struct proto_hello_reply *r = &m->u.hello_reply;

	if (r->version != PROTO_VERSION) {
		fail(h, HS_FAIL_VERSION, "the executor chose protocol %u", r->version);
		return;
	}
	if (h->seal) {
		if (r->kx.len != crypto_kx_PUBLICKEYBYTES) {
			fail(h, HS_FAIL_PROTOCOL, "the HELLO reply has no X25519 key");
			return;
		}
		memcpy(h->peer_pk, r->kx.ptr, sizeof(h->peer_pk));
	}
	if (r->session.len != PROTO_SESSION_ID_LEN) {
		fail(h, HS_FAIL_PROTOCOL, "the HELLO reply's session id has the wrong length");
		return;
	}
	if (r->resumed && (!h->p.resume_session ||
			   memcmp(r->session.ptr, h->p.resume_session, PROTO_SESSION_ID_LEN))) {
		fail(h, HS_FAIL_PROTOCOL, "the executor resumed a session we did not ask for");
		return;
	}
	memcpy(h->res.session, r->session.ptr, PROTO_SESSION_ID_LEN);
	h->res.resume = r->resumed;
	h->res.resume_ack = r->resume_ack;
	copy_str(h->res.resume_refused, r->resume_refused);
	copy_str(h->res.executor_id, r->executor_id);
	copy_str(h->res.executor_version, r->executor_version);
	h->res.max_frame = r->max_frame;
	h->res.max_processes = r->max_processes;
	for (uint32_t i = 0; i < r->capabilities.n; i++)
		if (proto_str_eq(r->capabilities.items[i], "http-relay"))
			h->res.http_relay = true;
	h->res.n_live = MIN(r->live_handles.n, (uint32_t)ARRAY_SIZE(h->res.live_handles));
	h->res.live_more = r->live_more || r->live_handles.n > h->res.n_live;
	for (uint32_t i = 0; i < h->res.n_live; i++) {
		h->res.live_handles[i] = r->live_handles.items[i];
		/* identities only when there is one per handle */
		if (r->live_ids.len == (size_t)r->live_handles.n * PROTO_ID_LEN)
			memcpy(h->res.live_ids[i], (const uint8_t *)r->live_ids.ptr + i * PROTO_ID_LEN,
			       PROTO_ID_LEN);
	}
	h->step = O_AUTH_REPLY;
}

static void orch_auth_reply(struct hs *h, const struct proto_msg *m)
{
	/* T2 ends with the HELLO reply. */
	if (h->has_key && !proof_ok(h, LABEL_PE, ORCH_AUTH_ID, m->u.auth_reply.proof)) {
		fail(h, HS_FAIL_PROOF, "the executor failed to prove the secret");
		return;
	}
	h->step = S_END;
	h->state = HS_DONE;
}

static size_t orch_frame(struct hs *h, const uint8_t *d, size_t len)
{
	const uint8_t *payload;
	size_t plen, need;
	uint16_t want = h->step == O_HELLO_REPLY ? PROTO_HELLO : PROTO_AUTH;
	struct proto_msg m;
	int r = frame_parse(d, len, PROTO_MAX_HANDSHAKE_FRAME, &payload, &plen, &need);

	if (r == -EAGAIN)
		return 0;
	if (r < 0) {
		fail(h, HS_FAIL_PROTOCOL, "the executor's handshake frame is malformed");
		return 0;
	}
	if (decode_frame(h, payload, plen, &m) < 0)
		return 0;
	if (m.env.kind == PROTO_REPLY && m.env.status != 0 &&
	    (m.env.type == PROTO_HELLO || m.env.type == PROTO_AUTH)) {
		orch_refused(h, &m);
	} else if (m.env.kind != PROTO_REPLY || m.env.type != want ||
		   m.env.id != (want == PROTO_HELLO ? ORCH_HELLO_ID : ORCH_AUTH_ID)) {
		fail(h, HS_FAIL_PROTOCOL, "unexpected %s from the executor during the handshake",
		     m.def->name);
	} else if (want == PROTO_AUTH && !canonical(payload, plen, &m)) {
		fail(h, HS_FAIL_PROTOCOL, "the AUTH reply is not canonically encoded");
	} else if (want == PROTO_HELLO) {
		transcript_add(h, d, FRAME_HDR + plen);
		orch_hello_reply(h, &m);
	} else {
		orch_auth_reply(h, &m);
		if (h->state == HS_DONE) {
			transcript_add(h, d, FRAME_HDR + plen);
			if (h->seal && derive_keys(h) < 0)
				fail(h, HS_FAIL_PROTOCOL, "the executor's X25519 key is unusable");
		}
	}
	proto_msg_release(&m);
	return FRAME_HDR + plen;
}

/* ---- common --------------------------------------------------------------- */

struct hs *hs_new(const struct hs_params *p)
{
	/* Preferred first: AES-256-GCM where both ends have AES-NI; else
	 * ChaCha20-Poly1305 (OpenSSL); XChaCha20-Poly1305 last, for peers that
	 * offer only it. */
	static const enum seal_aead pref[] = { SEAL_AES256GCM, SEAL_CHACHA20POLY1305,
					       SEAL_XCHACHA20POLY1305 };
	struct hs *h = xcalloc(1, sizeof(*h));

	h->p = *p;
	if (p->key) {
		memcpy(h->key, p->key, HS_KEY_LEN);
		h->has_key = true;
	}
	h->seal = p->role == HS_EXECUTOR && p->seal && h->has_key;
	for (unsigned i = 0, n = 0; n + 1 < ARRAY_SIZE(h->aeads); i++) {
		enum seal_aead a = p->aeads ? p->aeads[i] : i < ARRAY_SIZE(pref) ? pref[i] : SEAL_NONE;

		if (a == SEAL_NONE)
			break;
		if (seal_aead_available(a))
			h->aeads[n++] = a;
	}
	h->step = p->role == HS_EXECUTOR ? E_SP_HEADER : O_SP_HEADER;
	transcript_add(h, LABEL_T, sizeof(LABEL_T));
	return h;
}

struct hs *hs_free(struct hs *h)
{
	if (!h)
		return NULL;
	if (h->transcript.p)
		sodium_memzero(h->transcript.p, h->transcript.cap);
	fbuf_free(&h->transcript);
	sodium_memzero(h, sizeof(*h));
	free(h);
	return NULL;
}

void hs_start(struct hs *h, struct fbuf *out)
{
	uint8_t hdr[HS_SP_HEADER_LEN];

	if (h->p.role != HS_ORCHESTRATOR)
		return;
	hs_sp_header(hdr);
	transcript_add(h, hdr, sizeof(hdr));
	fbuf_append(out, hdr, sizeof(hdr));
}

static size_t step_once(struct hs *h, const uint8_t *d, size_t len, struct fbuf *out)
{
	switch (h->step) {
	case E_SP_HEADER: return exec_sp_header(h, d, len, out);
	case E_NEXT: return exec_next(h, d, len, out);
	case E_HELLO:
	case E_AUTH: return exec_frame(h, d, len, out);
	case O_SP_HEADER: return orch_sp_header(h, d, len);
	case O_CHALLENGE: return orch_challenge_msg(h, d, len, out);
	case O_HELLO_REPLY:
	case O_AUTH_REPLY: return orch_frame(h, d, len);
	default: return 0;
	}
}

size_t hs_input(struct hs *h, const uint8_t *data, size_t len, struct fbuf *out)
{
	size_t used = 0;

	while (h->state == HS_RUNNING && used < len) {
		size_t n = step_once(h, data + used, len - used, out);

		if (n == 0)
			break;
		used += n;
	}
	return used;
}

enum hs_state hs_state(const struct hs *h) { return h->state; }
enum hs_fail hs_fail_kind(const struct hs *h) { return h->fail; }
const char *hs_error(const struct hs *h) { return h->error; }
const struct hs_result *hs_result(const struct hs *h) { return &h->res; }
