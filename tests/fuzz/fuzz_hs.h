/* fuzz_hs.h - shared by the handshake fuzz targets (one per step).
 *
 * A deterministic handshake between the two roles is recorded once
 * (randomness fixed per role, so a new handshake object draws the same
 * nonces and keys again). A target then replays the recorded bytes up to
 * its step and feeds the fuzzer's input as the peer's next bytes: every
 * step is reached without the fuzzer having to guess a proof. Checks: a
 * failure always has a reason and a kind; what a side sends stays bounded;
 * the executor never reaches PROVED with bytes that differ from a real
 * orchestrator's at the proof, and never decides twice.
 */
#ifndef TANDEM_FUZZ_HS_H
#define TANDEM_FUZZ_HS_H

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handshake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t fz_ctr[2];
static const uint8_t fz_key[32] = { 'k', 'e', 'y' };

static void fz_fill(int role, void *buf, size_t n)
{
	uint8_t seed[9];

	seed[0] = (uint8_t)role;
	memcpy(seed + 1, &fz_ctr[role], 8);
	fz_ctr[role]++;
	crypto_generichash(buf, n <= 64 ? n : 64, seed, sizeof(seed), NULL, 0);
}

static void fz_rnd_o(void *buf, size_t n) { fz_fill(0, buf, n); }
static void fz_rnd_e(void *buf, size_t n) { fz_fill(1, buf, n); }

static void fz_expect(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_hs: %s\n", what);
		abort();
	}
}

static struct hs *fz_orch(void)
{
	struct hs_params p = { .role = HS_ORCHESTRATOR, .key = fz_key, .orchestrator_id = "o",
			       .environment_id = "e", .random = fz_rnd_o };

	fz_ctr[0] = 0;
	return hs_new(&p);
}

static struct hs *fz_exec(void)
{
	struct hs_params p = { .role = HS_EXECUTOR, .key = fz_key, .seal = true,
			       .random = fz_rnd_e };

	fz_ctr[1] = 0;
	return hs_new(&p);
}

static const struct proto_hello_reply *fz_info(void)
{
	static struct proto_hello_reply r;

	r.executor_id = proto_str_c("x");
	r.session = (struct proto_str){ "0123456789abcdef", PROTO_SESSION_ID_LEN };
	PROTO_MARK(&r, hello_reply, session);
	return &r;
}

/* The recorded streams: o2e[0] = the orchestrator's SP header, o2e[1] =
 * marker + HELLO + AUTH; e2o[0] = SP header + CHALLENGE, e2o[1] = HELLO
 * reply + AUTH reply. */
static struct fbuf fz_o2e[2], fz_e2o[2];

static void fz_record(void)
{
	struct hs *o, *e;

	if (fz_o2e[0].len)
		return;
	if (sodium_init() < 0)
		abort();
	o = fz_orch();
	e = fz_exec();
	hs_start(o, &fz_o2e[0]);
	hs_input(e, fz_o2e[0].p, fz_o2e[0].len, &fz_e2o[0]);
	hs_input(o, fz_e2o[0].p, fz_e2o[0].len, &fz_o2e[1]);
	hs_input(e, fz_o2e[1].p, fz_o2e[1].len, &fz_e2o[1]);
	fz_expect(hs_state(e) == HS_PROVED, "the recorded handshake does not prove");
	hs_accept(e, fz_info(), &fz_e2o[1]);
	hs_input(o, fz_e2o[1].p, fz_e2o[1].len, &fz_o2e[1]);
	fz_expect(hs_state(o) == HS_DONE, "the recorded handshake does not complete");
	hs_free(o);
	hs_free(e);
}

static void fz_check_end(struct hs *h, const struct fbuf *out)
{
	if (hs_state(h) == HS_FAILED) {
		fz_expect(hs_error(h)[0] != '\0', "failed without a reason");
		fz_expect(hs_fail_kind(h) != HS_FAIL_NONE, "failed without a kind");
	}
	fz_expect(out->len < 64 * 1024, "a handshake answer is unbounded");
}

/* Feeds data to h in a few chunks (split points from the data itself). */
static void fz_feed(struct hs *h, const uint8_t *data, size_t size, struct fbuf *out)
{
	struct fbuf in = { 0 };
	size_t off = 0;

	while (off < size) {
		size_t n = 1 + (data[off] % 97), used;

		n = n < size - off ? n : size - off;
		fbuf_append(&in, data + off, n);
		off += n;
		used = hs_input(h, in.p, in.len, out);
		fz_expect(used <= in.len, "used more than it was given");
		memmove(in.p, in.p + used, in.len - used);
		in.len -= used;
		if (hs_state(h) != HS_RUNNING)
			break;
	}
	fbuf_free(&in);
}

#endif
