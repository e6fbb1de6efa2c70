/* test_handshake.c - the link handshake (proto/handshake.c), both roles
 * talking to each other in memory: every chunking of the byte stream,
 * matching keys, and every way it must fail (wrong or missing secret, a
 * replayed recorded handshake, a tampered byte anywhere, a swapped X25519
 * key, a stripped AEAD, protocol-1 peers, busy). The golden file pins the
 * bytes of a deterministic handshake and of sealed frames after it. */
#include "handshake.h"
#include "testmain.h"
#include "util.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define GOLDEN_PATH "golden/link.txt"

static const uint8_t key_a[32] = { 'a' }, key_b[32] = { 'b' };
static uint64_t rnd_counter[2];

/* Deterministic randomness, one stream per role: a new handshake object
 * of that role draws the same nonces and keys again (golden bytes, and
 * replays that differ only where a test changes them). */
static void fixed_fill(int role, void *buf, size_t n)
{
	uint8_t seed[9];

	seed[0] = (uint8_t)role;
	memcpy(seed + 1, &rnd_counter[role], 8);
	rnd_counter[role]++;
	crypto_generichash(buf, n <= 64 ? n : 64, seed, sizeof(seed), NULL, 0);
	if (n > 64)
		memset((uint8_t *)buf + 64, 0x5a, n - 64);
}

static void fixed_random_o(void *buf, size_t n) { fixed_fill(0, buf, n); }
static void fixed_random_e(void *buf, size_t n) { fixed_fill(1, buf, n); }

struct side {
	struct hs *h;
	struct fbuf in;  /* received, not yet used */
	struct fbuf log; /* everything it sent */
};

static const struct proto_hello_reply *exec_info(void)
{
	static struct proto_str caps[] = { { "mcp-stdio", 9 }, { "http-relay", 10 } };
	static struct proto_hello_reply r;

	memset(&r, 0, sizeof(r));
	r.executor_id = proto_str_c("exec-1");
	r.executor_version = proto_str_c("0.1.0");
	r.capabilities.items = caps;
	r.capabilities.n = 2;
	r.max_frame = PROTO_MAX_FRAME;
	r.max_processes = 7;
	r.session = (struct proto_str){ "0123456789abcdef", PROTO_SESSION_ID_LEN };
	r.present = PROTO_ALL_hello_reply;
	return &r;
}

/* Delivers what `from` queued (chunk bytes at a time) and lets `to` answer. */
static void deliver(struct side *from_out_owner, struct fbuf *out, struct side *to, size_t chunk,
		    struct fbuf *reply)
{
	for (size_t off = 0; off < out->len;) {
		size_t n = MIN(chunk, out->len - off), used;

		fbuf_append(&to->in, out->p + off, n);
		off += n;
		used = hs_input(to->h, to->in.p, to->in.len, reply);
		memmove(to->in.p, to->in.p + used, to->in.len - used);
		to->in.len -= used;
	}
	(void)from_out_owner;
	out->len = 0;
}

struct run {
	struct side o, e;
	const uint8_t *okey, *ekey;
	bool seal, fixed;
	size_t chunk;
	const enum seal_aead *oaeads, *eaeads;
};

static void run(struct run *r)
{
	struct hs_params op = { .role = HS_ORCHESTRATOR, .key = r->okey,
				.orchestrator_id = "orch-1", .environment_id = "env-1",
				.aeads = r->oaeads };
	struct hs_params ep = { .role = HS_EXECUTOR, .key = r->ekey, .seal = r->seal,
				.aeads = r->eaeads };
	struct fbuf o2e = { 0 }, e2o = { 0 };

	if (r->fixed) {
		op.random = fixed_random_o;
		ep.random = fixed_random_e;
		rnd_counter[0] = rnd_counter[1] = 0;
	}
	r->o.h = hs_new(&op);
	r->e.h = hs_new(&ep);
	hs_start(r->o.h, &o2e);
	for (int round = 0; round < 8; round++) {
		fbuf_append(&r->o.log, o2e.p, o2e.len);
		deliver(&r->o, &o2e, &r->e, r->chunk ? r->chunk : 1u << 20, &e2o);
		if (hs_state(r->e.h) == HS_PROVED)
			hs_accept(r->e.h, exec_info(), &e2o);
		fbuf_append(&r->e.log, e2o.p, e2o.len);
		deliver(&r->e, &e2o, &r->o, r->chunk ? r->chunk : 1u << 20, &o2e);
		if (hs_state(r->o.h) != HS_RUNNING && !o2e.len)
			break;
	}
	fbuf_free(&o2e);
	fbuf_free(&e2o);
}

static void run_free(struct run *r)
{
	hs_free(r->o.h);
	hs_free(r->e.h);
	fbuf_free(&r->o.in);
	fbuf_free(&r->e.in);
	fbuf_free(&r->o.log);
	fbuf_free(&r->e.log);
}

START_TEST(test_every_chunking)
{
	static const size_t chunks[] = { 1, 2, 3, 7, 64, 0 };

	for (size_t i = 0; i < ARRAY_SIZE(chunks); i++) {
		for (int sealed = 0; sealed < 2; sealed++) {
			struct run r = { .okey = key_a, .ekey = key_a, .seal = sealed,
					 .chunk = chunks[i] };
			const struct hs_result *o, *e;

			run(&r);
			ck_assert_msg(hs_state(r.o.h) == HS_DONE, "orch: %s", hs_error(r.o.h));
			ck_assert_msg(hs_state(r.e.h) == HS_DONE, "exec: %s", hs_error(r.e.h));
			o = hs_result(r.o.h);
			e = hs_result(r.e.h);
			ck_assert(o->sealed == (bool)sealed && e->sealed == (bool)sealed);
			if (sealed) {
				ck_assert_int_eq(memcmp(o->tx_key, e->rx_key, SEAL_KEY_LEN), 0);
				ck_assert_int_eq(memcmp(o->rx_key, e->tx_key, SEAL_KEY_LEN), 0);
				ck_assert_int_ne(memcmp(o->tx_key, o->rx_key, SEAL_KEY_LEN), 0);
				ck_assert_int_eq(memcmp(o->tx_prefix, e->rx_prefix, SEAL_PREFIX_LEN), 0);
				ck_assert_int_eq(o->aead, e->aead);
				ck_assert_int_ne(o->aead, SEAL_NONE);
			}
			ck_assert_str_eq(e->orchestrator_id, "orch-1");
			ck_assert_str_eq(e->environment_id, "env-1");
			ck_assert_str_eq(o->executor_id, "exec-1");
			ck_assert(o->http_relay);
			ck_assert_uint_eq(o->max_processes, 7);
			run_free(&r);
		}
	}
}
END_TEST

START_TEST(test_no_secret_on_either_side)
{
	struct run r = { .seal = true }; /* no key: never sealed */

	run(&r);
	ck_assert_int_eq(hs_state(r.o.h), HS_DONE);
	ck_assert_int_eq(hs_state(r.e.h), HS_DONE);
	ck_assert(!hs_result(r.o.h)->sealed);
	run_free(&r);
}
END_TEST

START_TEST(test_wrong_or_missing_secret)
{
	struct run w = { .okey = key_b, .ekey = key_a, .seal = true };
	struct run n = { .okey = NULL, .ekey = key_a };
	struct run x = { .okey = key_a, .ekey = NULL };

	run(&w);
	ck_assert_int_eq(hs_state(w.e.h), HS_FAILED);
	ck_assert_int_eq(hs_fail_kind(w.e.h), HS_FAIL_PROOF);
	ck_assert_str_eq(hs_error(w.e.h), "wrong proof of the secret");
	ck_assert_int_eq(hs_fail_kind(w.o.h), HS_FAIL_PROOF); /* told: denied */
	ck_assert_ptr_nonnull(strstr(hs_error(w.o.h), "denied"));
	run_free(&w);
	/* The orchestrator has no token: it says so and sends no HELLO. */
	run(&n);
	ck_assert_int_eq(hs_fail_kind(n.o.h), HS_FAIL_CONFIG);
	ck_assert_int_eq(hs_state(n.e.h), HS_RUNNING);
	run_free(&n);
	/* The executor has none: it cannot prove one back. */
	run(&x);
	ck_assert_int_eq(hs_state(x.e.h), HS_DONE);
	ck_assert_int_eq(hs_fail_kind(x.o.h), HS_FAIL_PROOF);
	ck_assert_str_eq(hs_error(x.o.h), "the executor failed to prove the secret");
	run_free(&x);
}
END_TEST

/* Feeds the executor a fresh opening, then `bytes` as the orchestrator's
 * part (everything after its SP header); returns the executor's state. */
static struct hs *exec_fed(const uint8_t *key, const uint8_t *bytes, size_t len, struct fbuf *out)
{
	struct hs_params ep = { .role = HS_EXECUTOR, .key = key, .seal = true };
	struct hs *e = hs_new(&ep);
	uint8_t sp[HS_SP_HEADER_LEN];

	hs_sp_header(sp);
	hs_input(e, sp, sizeof(sp), out);
	hs_input(e, bytes, len, out);
	return e;
}

START_TEST(test_replayed_handshake_fails)
{
	struct run r = { .okey = key_a, .ekey = key_a, .seal = true };
	struct fbuf out = { 0 };
	struct hs *e;

	run(&r);
	ck_assert_int_eq(hs_state(r.o.h), HS_DONE);
	/* Record what the orchestrator sent after its SP header, replay it
	 * to a new connection (new CHALLENGE nonce): the proof no longer fits. */
	e = exec_fed(key_a, r.o.log.p + HS_SP_HEADER_LEN, r.o.log.len - HS_SP_HEADER_LEN, &out);
	ck_assert_int_eq(hs_state(e), HS_FAILED);
	ck_assert_int_eq(hs_fail_kind(e), HS_FAIL_PROOF);
	hs_free(e);
	fbuf_free(&out);
	run_free(&r);
}
END_TEST

/* Every byte the orchestrator sends after the opening, flipped: the
 * executor never accepts it (a decode error or a failed proof). */
START_TEST(test_tampered_byte_anywhere)
{
	struct run r = { .okey = key_a, .ekey = key_a, .seal = true, .fixed = true };
	struct fbuf good = { 0 };

	run(&r);
	ck_assert_int_eq(hs_state(r.o.h), HS_DONE);
	fbuf_append(&good, r.o.log.p + HS_SP_HEADER_LEN, r.o.log.len - HS_SP_HEADER_LEN);
	for (size_t i = 0; i <= good.len; i++) {
		struct fbuf out = { 0 };
		struct hs *e;

		if (i < good.len)
			good.p[i] ^= 0x20;
		rnd_counter[1] = 0; /* the executor draws the same nonce as in the run */
		{
			struct hs_params ep = { .role = HS_EXECUTOR, .key = key_a, .seal = true,
						.random = fixed_random_e };
			uint8_t sp[HS_SP_HEADER_LEN];

			e = hs_new(&ep);
			hs_sp_header(sp);
			hs_input(e, sp, sizeof(sp), &out);
			hs_input(e, good.p, good.len, &out);
		}
		if (i == good.len) /* untampered: the same bytes prove (the test is not vacuous) */
			ck_assert_msg(hs_state(e) == HS_PROVED, "%s", hs_error(e));
		else
			ck_assert_msg(hs_state(e) != HS_PROVED && hs_state(e) != HS_DONE,
				      "byte %zu of the orchestrator's handshake tampered, still proved",
				      i);
		if (i < good.len)
			good.p[i] ^= 0x20;
		hs_free(e);
		fbuf_free(&out);
	}
	fbuf_free(&good);
	run_free(&r);
}
END_TEST

/* ---- a man in the middle, rewriting frames in transit ---- */

/* Re-encodes the framed message at buf[off] with `edit` applied. */
static void rewrite_frame(struct fbuf *buf, size_t off, void (*edit)(struct proto_msg *m))
{
	struct fbuf out = { 0 }, fr = { 0 };
	struct proto_msg m;
	char err[200];
	uint32_t n = frame_get_len(buf->p + off);

	ck_assert_int_eq(proto_decode(buf->p + off + FRAME_HDR, n, &m, err, sizeof(err)), 0);
	edit(&m);
	fr.len = FRAME_HDR;
	ck_assert_int_eq(proto_encode(fbuf_write, &fr, m.env.type, m.env.kind, m.env.id,
				      m.env.kind == PROTO_REPLY ? (void *)&m.u.hello_reply
								: (void *)&m.u.hello),
			 0);
	frame_put_len(fr.p, (uint32_t)(fr.len - FRAME_HDR));
	fbuf_append(&out, buf->p, off);
	fbuf_append(&out, fr.p, fr.len);
	fbuf_append(&out, buf->p + off + FRAME_HDR + n, buf->len - off - FRAME_HDR - n);
	proto_msg_release(&m);
	fbuf_free(buf);
	fbuf_free(&fr);
	*buf = out;
}

static uint8_t attacker_pk[32], attacker_sk[32];

static void swap_hello_kx(struct proto_msg *m)
{
	m->u.hello.kx.ptr = (const char *)attacker_pk;
}

static void swap_reply_kx(struct proto_msg *m)
{
	m->u.hello_reply.kx.ptr = (const char *)attacker_pk;
}

/* The CHALLENGE (an SP message after the SP header) offering XChaCha only. */
static void strip_aeads(struct fbuf *buf)
{
	static struct proto_str xc = { "xchacha20poly1305", 17 };
	const uint8_t *payload;
	size_t plen, used;
	struct fbuf enc = { 0 }, out = { 0 };
	struct proto_msg m;
	char err[200];

	ck_assert_int_eq(hs_sp_parse(buf->p + HS_SP_HEADER_LEN, buf->len - HS_SP_HEADER_LEN, false,
				     4096, &payload, &plen, &used), 0);
	ck_assert_int_eq(proto_decode_compat(payload, plen, &m, err, sizeof(err)), 0);
	ck_assert_uint_ge(m.u.challenge.aeads.n, 1);
	m.u.challenge.aeads.items = &xc;
	m.u.challenge.aeads.n = 1;
	proto_encode_version(fbuf_write, &enc, PROTO_VERSION_SP, PROTO_CHALLENGE, PROTO_EVENT, 0,
			     &m.u.challenge);
	fbuf_append(&out, buf->p, HS_SP_HEADER_LEN);
	hs_sp_message(&out, false, enc.p, enc.len);
	proto_msg_release(&m);
	fbuf_free(&enc);
	fbuf_free(buf);
	*buf = out;
}

enum mitm { MITM_HELLO_KX, MITM_REPLY_KX, MITM_STRIP_AEAD };

/* One handshake with the attack applied; returns which side noticed. */
static void mitm_run(enum mitm what, struct hs **o, struct hs **e)
{
	static const enum seal_aead all[] = { SEAL_AES256GCM, SEAL_CHACHA20POLY1305,
					      SEAL_XCHACHA20POLY1305, SEAL_NONE };
	struct hs_params op = { .role = HS_ORCHESTRATOR, .key = key_a, .aeads = all };
	struct hs_params ep = { .role = HS_EXECUTOR, .key = key_a, .seal = true, .aeads = all };
	struct fbuf o2e = { 0 }, e2o = { 0 };

	crypto_kx_keypair(attacker_pk, attacker_sk);
	*o = hs_new(&op);
	*e = hs_new(&ep);
	hs_start(*o, &o2e);
	hs_input(*e, o2e.p, o2e.len, &e2o);
	o2e.len = 0;
	if (what == MITM_STRIP_AEAD)
		strip_aeads(&e2o);
	hs_input(*o, e2o.p, e2o.len, &o2e);
	e2o.len = 0;
	if (what == MITM_HELLO_KX)
		rewrite_frame(&o2e, HS_MARKER_LEN, swap_hello_kx);
	hs_input(*e, o2e.p, o2e.len, &e2o);
	if (hs_state(*e) == HS_PROVED) {
		hs_accept(*e, exec_info(), &e2o);
		if (what == MITM_REPLY_KX)
			rewrite_frame(&e2o, 0, swap_reply_kx);
		hs_input(*o, e2o.p, e2o.len, &o2e);
	}
	fbuf_free(&o2e);
	fbuf_free(&e2o);
}

START_TEST(test_man_in_the_middle)
{
	struct hs *o, *e;

	/* Its own X25519 key in HELLO: the executor's proof check fails. */
	mitm_run(MITM_HELLO_KX, &o, &e);
	ck_assert_int_eq(hs_fail_kind(e), HS_FAIL_PROOF);
	hs_free(o);
	hs_free(e);
	/* Its own key in the HELLO reply: the orchestrator's check fails. */
	mitm_run(MITM_REPLY_KX, &o, &e);
	ck_assert_int_eq(hs_state(e), HS_DONE);
	ck_assert_int_eq(hs_fail_kind(o), HS_FAIL_PROOF);
	hs_free(o);
	hs_free(e);
	/* A downgrade of the AEAD list (to xchacha20poly1305 alone, from
	 * aes256gcm or chacha20poly1305): caught by the executor. */
	mitm_run(MITM_STRIP_AEAD, &o, &e);
	ck_assert_int_eq(hs_fail_kind(e), HS_FAIL_PROOF);
	hs_free(o);
	hs_free(e);
}
END_TEST

/* One handshake with these AEAD lists: both ends agree on `want`, and a
 * frame sealed by each side with its keys opens on the other. */
static void choose(const enum seal_aead *oaeads, const enum seal_aead *eaeads,
		   enum seal_aead want)
{
	struct run s = { .okey = key_a, .ekey = key_a, .seal = true, .oaeads = oaeads,
			 .eaeads = eaeads };
	const struct hs_result *o, *e;
	struct seal otx, orx, etx, erx;
	uint8_t f[FRAME_HDR + 32 + SEAL_TAG_LEN];
	size_t plen;

	run(&s);
	ck_assert_msg(hs_state(s.o.h) == HS_DONE, "orch: %s", hs_error(s.o.h));
	ck_assert_msg(hs_state(s.e.h) == HS_DONE, "exec: %s", hs_error(s.e.h));
	o = hs_result(s.o.h);
	e = hs_result(s.e.h);
	ck_assert_str_eq(seal_aead_name(o->aead), seal_aead_name(want));
	ck_assert_str_eq(seal_aead_name(e->aead), seal_aead_name(want));
	ck_assert_int_eq(seal_init(&otx, o->aead, o->tx_key, o->tx_prefix), 0);
	ck_assert_int_eq(seal_init(&orx, o->aead, o->rx_key, o->rx_prefix), 0);
	ck_assert_int_eq(seal_init(&etx, e->aead, e->tx_key, e->tx_prefix), 0);
	ck_assert_int_eq(seal_init(&erx, e->aead, e->rx_key, e->rx_prefix), 0);
	memset(f + FRAME_HDR, 'o', 32);
	ck_assert_int_eq(seal_frame(&otx, f, 32), 0);
	ck_assert_int_eq(seal_open(&erx, f, f + FRAME_HDR, frame_get_len(f), &plen), 0);
	ck_assert_uint_eq(plen, 32);
	ck_assert_int_eq(seal_frame(&etx, f, 32), 0);
	ck_assert_int_eq(seal_open(&orx, f, f + FRAME_HDR, frame_get_len(f), &plen), 0);
	seal_wipe(&otx);
	seal_wipe(&orx);
	seal_wipe(&etx);
	seal_wipe(&erx);
	run_free(&s);
}

START_TEST(test_aead_choice)
{
	static const enum seal_aead all[] = { SEAL_AES256GCM, SEAL_CHACHA20POLY1305,
					      SEAL_XCHACHA20POLY1305, SEAL_NONE };
	static const enum seal_aead no_aes[] = { SEAL_CHACHA20POLY1305, SEAL_XCHACHA20POLY1305,
						 SEAL_NONE };
	static const enum seal_aead xc[] = { SEAL_XCHACHA20POLY1305, SEAL_NONE };
	static const enum seal_aead aes_xc[] = { SEAL_AES256GCM, SEAL_XCHACHA20POLY1305,
						 SEAL_NONE };
	bool aes = seal_aead_available(SEAL_AES256GCM);

	ck_assert(seal_aead_available(SEAL_CHACHA20POLY1305));
	/* Two ends without AES-NI (ARM, or old x86): ChaCha20-Poly1305. */
	choose(no_aes, no_aes, SEAL_CHACHA20POLY1305);
	/* One end without: still ChaCha20-Poly1305, whichever end it is. */
	choose(no_aes, all, SEAL_CHACHA20POLY1305);
	choose(all, no_aes, SEAL_CHACHA20POLY1305);
	/* A peer that offers only XChaCha (an older build) still links. */
	choose(xc, all, SEAL_XCHACHA20POLY1305);
	choose(all, xc, SEAL_XCHACHA20POLY1305);
	choose(no_aes, xc, SEAL_XCHACHA20POLY1305);
	/* An older build with AES-NI (aes256gcm, xchacha20poly1305) and a
	 * newer one without it. */
	choose(aes_xc, no_aes, SEAL_XCHACHA20POLY1305);
	choose(no_aes, aes_xc, SEAL_XCHACHA20POLY1305);
	/* Both ends with AES-NI: AES-256-GCM stays first. */
	if (aes) {
		choose(all, all, SEAL_AES256GCM);
		choose(aes_xc, all, SEAL_AES256GCM);
	}
	/* Defaults (NULL lists): what this machine can do, in that order; the
	 * executor's order decides, ChaCha before XChaCha. */
	choose(NULL, NULL, aes ? SEAL_AES256GCM : SEAL_CHACHA20POLY1305);
	choose(no_aes, NULL, SEAL_CHACHA20POLY1305);
	choose(xc, NULL, SEAL_XCHACHA20POLY1305);
}
END_TEST

START_TEST(test_busy_refusal)
{
	struct hs_params op = { .role = HS_ORCHESTRATOR, .key = key_a };
	struct hs_params ep = { .role = HS_EXECUTOR, .key = key_a, .seal = true };
	struct fbuf o2e = { 0 }, e2o = { 0 };
	struct hs *o = hs_new(&op), *e = hs_new(&ep);

	hs_start(o, &o2e);
	hs_input(e, o2e.p, o2e.len, &e2o);
	o2e.len = 0;
	hs_input(o, e2o.p, e2o.len, &o2e);
	e2o.len = 0;
	hs_input(e, o2e.p, o2e.len, &e2o);
	ck_assert_int_eq(hs_state(e), HS_PROVED);
	hs_refuse(e, PROTO_E_BUSY, "another orchestrator is attached", &e2o);
	ck_assert_int_eq(hs_fail_kind(e), HS_FAIL_BUSY);
	hs_input(o, e2o.p, e2o.len, &o2e);
	ck_assert_int_eq(hs_state(o), HS_FAILED);
	ck_assert_int_eq(hs_fail_kind(o), HS_FAIL_BUSY);
	ck_assert_ptr_nonnull(strstr(hs_error(o), "another orchestrator is attached"));
	hs_free(o);
	hs_free(e);
	fbuf_free(&o2e);
	fbuf_free(&e2o);
}
END_TEST

/* A protocol-1 orchestrator (nng SP pair1): its HELLO in an SP message
 * gets an error reply in its own framing, and the executor says why. */
START_TEST(test_v1_orchestrator)
{
	for (int ipc = 0; ipc < 2; ipc++) {
		struct hs_params ep = { .role = HS_EXECUTOR, .key = key_a, .sp_ipc = ipc };
		struct proto_hello_body h = { .version_min = 1, .version_max = 1 };
		struct fbuf msg = { 0 }, sp = { 0 }, out = { 0 };
		struct hs *e = hs_new(&ep);
		uint8_t hdr[HS_SP_HEADER_LEN], nonce[32] = { 1 };
		const uint8_t *payload;
		size_t plen, used, o;
		struct proto_msg m;
		char err[200];

		hs_sp_header(hdr);
		hs_input(e, hdr, sizeof(hdr), &out);
		ck_assert_uint_gt(out.len, HS_SP_HEADER_LEN); /* its SP header and CHALLENGE */
		o = out.len;
		h.nonce.ptr = (const char *)nonce;
		h.nonce.len = 32;
		ck_assert_int_eq(proto_encode_version(fbuf_write, &msg, PROTO_VERSION_SP, PROTO_HELLO,
						      PROTO_REQUEST, 9, &h), 0);
		hs_sp_message(&sp, ipc, msg.p, msg.len);
		hs_input(e, sp.p, sp.len, &out);
		ck_assert_int_eq(hs_state(e), HS_FAILED);
		ck_assert_int_eq(hs_fail_kind(e), HS_FAIL_VERSION);
		ck_assert_ptr_nonnull(strstr(hs_error(e), "protocol 1"));
		ck_assert_int_eq(hs_sp_parse(out.p + o, out.len - o, ipc, 4096, &payload, &plen, &used),
				 0);
		ck_assert_int_eq(proto_decode_compat(payload, plen, &m, err, sizeof(err)), 0);
		ck_assert_uint_eq(m.env.version, PROTO_VERSION_SP);
		ck_assert_uint_eq(m.env.id, 9);
		ck_assert_int_eq(m.env.status, PROTO_E_UNSUPPORTED);
		ck_assert_ptr_nonnull(memmem(m.err_message.ptr, m.err_message.len, "protocol 3", 10));
		proto_msg_release(&m);
		hs_free(e);
		fbuf_free(&msg);
		fbuf_free(&sp);
		fbuf_free(&out);
	}
}
END_TEST

/* A protocol-1 executor: its CHALLENGE offers 1..1; the orchestrator
 * answers with a HELLO offering only 2, in the executor's framing. */
START_TEST(test_v1_executor)
{
	struct hs_params op = { .role = HS_ORCHESTRATOR, .key = key_a, .orchestrator_id = "o" };
	struct proto_challenge_body c = { .version_min = 1, .version_max = 1, .auth_required = 1 };
	struct fbuf msg = { 0 }, in = { 0 }, out = { 0 };
	struct hs *o = hs_new(&op);
	uint8_t hdr[HS_SP_HEADER_LEN], nonce[32] = { 2 };
	const uint8_t *payload;
	size_t plen, used;
	struct proto_msg m;
	char err[200];

	hs_start(o, &out);
	out.len = 0;
	c.nonce.ptr = (const char *)nonce;
	c.nonce.len = 32;
	proto_encode_version(fbuf_write, &msg, PROTO_VERSION_SP, PROTO_CHALLENGE, PROTO_EVENT, 0,
			     &c);
	hs_sp_header(hdr);
	fbuf_append(&in, hdr, sizeof(hdr));
	hs_sp_message(&in, false, msg.p, msg.len);
	hs_input(o, in.p, in.len, &out);
	ck_assert_int_eq(hs_fail_kind(o), HS_FAIL_VERSION);
	ck_assert_ptr_nonnull(strstr(hs_error(o), "link protocol 1"));
	ck_assert_int_eq(hs_sp_parse(out.p, out.len, false, 4096, &payload, &plen, &used), 0);
	ck_assert_int_eq(proto_decode_compat(payload, plen, &m, err, sizeof(err)), 0);
	ck_assert_uint_eq(m.env.type, PROTO_HELLO);
	ck_assert_uint_eq(m.u.hello.version_min, PROTO_VERSION_MIN);
	ck_assert_uint_eq(m.u.hello.version_max, PROTO_VERSION);
	proto_msg_release(&m);
	hs_free(o);
	fbuf_free(&msg);
	fbuf_free(&in);
	fbuf_free(&out);
}
END_TEST

START_TEST(test_not_a_tandem_peer)
{
	static const struct {
		const char *bytes;
		size_t len;
		const char *why;
	} cases[] = {
		{ "GET / HTTP/1.1\r\n", 16, "no SP header" },
		{ "\0SP\0\0\x10\0\0", 8, "SP protocol 0x0010" },
		{ "\0SP\0\0\x11\0\0\x01\x02\x03\x04\x05\x06\x07\x08", 16, "bad bytes" },
		{ "\0SP\0\0\x11\0\0\0TDM\0\x04\0\0", 16, "link protocol 4" },
		{ "\0SP\0\0\x11\0\0\0TDM\0\x02\0\0", 16, "upgrade the orchestrator" },
		/* a handshake frame declaring more than the handshake limit */
		{ "\0SP\0\0\x11\0\0\0TDM\0\x03\0\0\x00\x10\x00\x01", 20, "handshake limit" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct hs_params ep = { .role = HS_EXECUTOR, .key = key_a };
		struct fbuf out = { 0 };
		struct hs *e = hs_new(&ep);

		hs_input(e, (const uint8_t *)cases[i].bytes, cases[i].len, &out);
		ck_assert_msg(hs_state(e) == HS_FAILED, "case %zu accepted", i);
		ck_assert_msg(strstr(hs_error(e), cases[i].why), "case %zu: %s", i, hs_error(e));
		hs_free(e);
		fbuf_free(&out);
	}
}
END_TEST

static void hexline(FILE *f, const char *label, const uint8_t *p, size_t n)
{
	fprintf(f, "%s ", label);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", p[i]);
	fputc('\n', f);
}

/* The bytes of a deterministic sealed handshake (both directions) and of
 * one sealed PING each way after it, for each AEAD. */
START_TEST(test_golden_bytes)
{
	/* AES-256-GCM last: a machine without AES-NI checks the file up to it */
	static const enum seal_aead only[3][2] = { { SEAL_XCHACHA20POLY1305, SEAL_NONE },
						   { SEAL_CHACHA20POLY1305, SEAL_NONE },
						   { SEAL_AES256GCM, SEAL_NONE } };
	bool update = getenv("TANDEM_UPDATE_GOLDEN") != NULL;
	char *got = NULL, *want = NULL;
	size_t gotlen = 0, wantlen = 0;
	FILE *f = open_memstream(&got, &gotlen), *g;

	for (size_t a = 0; a < ARRAY_SIZE(only); a++) {
		struct run r = { .okey = key_a, .ekey = key_a, .seal = true, .fixed = true,
				 .oaeads = only[a], .eaeads = only[a] };
		struct proto_ping_body ping = { .stamp = 42, .present = PROTO_ALL_ping_body };
		struct seal otx, etx;
		const struct hs_result *o, *e;
		struct fbuf fr = { 0 };

		if (!seal_aead_available(only[a][0]))
			continue; /* no AES-NI here: only the XChaCha part is checked */
		run(&r);
		ck_assert_int_eq(hs_state(r.o.h), HS_DONE);
		o = hs_result(r.o.h);
		e = hs_result(r.e.h);
		fprintf(f, "# %s\n", seal_aead_name(only[a][0]));
		hexline(f, "o2e.handshake", r.o.log.p, r.o.log.len);
		hexline(f, "e2o.handshake", r.e.log.p, r.e.log.len);
		seal_init(&otx, o->aead, o->tx_key, o->tx_prefix);
		seal_init(&etx, e->aead, e->tx_key, e->tx_prefix);
		fr.len = FRAME_HDR;
		proto_encode(fbuf_write, &fr, PROTO_PING, PROTO_REQUEST, 1, &ping);
		fbuf_reserve(&fr, SEAL_TAG_LEN);
		ck_assert_int_eq(seal_frame(&otx, fr.p, fr.len - FRAME_HDR), 0);
		hexline(f, "o2e.sealed.PING", fr.p, fr.len + SEAL_TAG_LEN);
		fr.len = FRAME_HDR;
		proto_encode(fbuf_write, &fr, PROTO_PING, PROTO_REPLY, 1, &ping);
		fbuf_reserve(&fr, SEAL_TAG_LEN);
		ck_assert_int_eq(seal_frame(&etx, fr.p, fr.len - FRAME_HDR), 0);
		hexline(f, "e2o.sealed.PING.reply", fr.p, fr.len + SEAL_TAG_LEN);
		seal_wipe(&otx);
		seal_wipe(&etx);
		fbuf_free(&fr);
		run_free(&r);
	}
	fclose(f);
	if (update) {
		g = fopen(GOLDEN_PATH, "w");
		ck_assert_ptr_nonnull(g);
		fwrite(got, 1, gotlen, g);
		fclose(g);
	} else {
		g = fopen(GOLDEN_PATH, "r");
		ck_assert_msg(g != NULL, "cannot open %s (run from tests/unit)", GOLDEN_PATH);
		f = open_memstream(&want, &wantlen);
		for (int ch; (ch = fgetc(g)) != EOF;)
			fputc(ch, f);
		fclose(f);
		fclose(g);
		if (!seal_aead_available(SEAL_AES256GCM) && strstr(want, "# aes256gcm"))
			wantlen = (size_t)(strstr(want, "# aes256gcm") - want);
		ck_assert_msg(gotlen == wantlen && memcmp(got, want, gotlen) == 0,
			      "the handshake or sealed frames changed on the wire:\n got:\n%s", got);
		free(want);
	}
	free(got);
}
END_TEST

static Suite *handshake_suite(void)
{
	Suite *s = suite_create("handshake");
	TCase *tc = tcase_create("handshake");

	if (sodium_init() < 0)
		abort();
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_every_chunking);
	tcase_add_test(tc, test_no_secret_on_either_side);
	tcase_add_test(tc, test_wrong_or_missing_secret);
	tcase_add_test(tc, test_replayed_handshake_fails);
	tcase_add_test(tc, test_tampered_byte_anywhere);
	tcase_add_test(tc, test_man_in_the_middle);
	tcase_add_test(tc, test_aead_choice);
	tcase_add_test(tc, test_busy_refusal);
	tcase_add_test(tc, test_v1_orchestrator);
	tcase_add_test(tc, test_v1_executor);
	tcase_add_test(tc, test_not_a_tandem_peer);
	tcase_add_test(tc, test_golden_bytes);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(handshake_suite)
