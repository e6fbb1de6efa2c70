/* handshake.h - the link's handshake, both roles, as a pure state machine:
 * bytes in, bytes out, no I/O, no clock, no logging (PROTOCOL.md,
 * "Handshake", is the specification; this is its one implementation).
 *
 *   orchestrator                                  executor
 *   SP pair1 header (8 bytes)  ------------------>
 *                 <------------------  SP pair1 header, CHALLENGE in one SP
 *                                      message (envelope version 1)
 *   marker "\0TDM" v3, HELLO, AUTH{proof_o} ---->     (framed, version 3)
 *                 <------------------  HELLO reply, AUTH reply{proof_e}
 *   ... sealed frames both ways (when CHALLENGE said seal) ...
 *
 * The opening speaks just enough nng SP pair1 that a protocol-1 peer reads
 * our version and says so (and we say so): a v1 orchestrator gets an error
 * reply to its HELLO, a v1 executor gets a HELLO offering only version 2.
 *
 * Proofs and keys are bound to a transcript of the exact bytes exchanged:
 *   proof_o = BLAKE2b-256(key K, "tandem link 2 proof o" || H(T1))
 *   proof_e = BLAKE2b-256(key K, "tandem link 2 proof e" || H(T2))
 *   PRK     = BLAKE2b-256(key K, "tandem link 2 keys" || X25519 kx || H(T3))
 * with K = BLAKE2b-256(secret), T1 = opening..AUTH, T2 = T1 + HELLO reply,
 * T3 = T2 + AUTH reply; the direction keys and nonce prefixes come from PRK
 * by crypto_kdf (BLAKE2b). The executor checks proof_o before it does any
 * X25519 work, so a flood without the secret costs it one MAC each.
 *
 * Ownership: struct hs owns its transcript, ephemeral keys and results and
 * wipes them in hs_free. Strings in hs_result are copies.
 */
#ifndef TANDEM_PROTO_HANDSHAKE_H
#define TANDEM_PROTO_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "frame.h"
#include "proto.h"
#include "seal.h"

#define HS_SP_HEADER_LEN 8u
#define HS_MARKER_LEN 8u
#define HS_KEY_LEN 32u

enum hs_role { HS_ORCHESTRATOR, HS_EXECUTOR };

enum hs_state {
	HS_RUNNING,
	HS_PROVED, /* executor: the orchestrator proved the secret; hs_accept or hs_refuse */
	HS_DONE,
	HS_FAILED,
};

/* Why a handshake failed: the dialler reports it, the executor penalises
 * HS_FAIL_PROOF. */
enum hs_fail {
	HS_FAIL_NONE = 0,
	HS_FAIL_PROTOCOL, /* malformed, out of order, or not a tandem peer */
	HS_FAIL_VERSION,  /* no common protocol version (e.g. a protocol-1 peer) */
	HS_FAIL_PROOF,    /* a proof was missing or wrong, on either side */
	HS_FAIL_CONFIG,   /* the executor wants a token and we have none */
	HS_FAIL_BUSY,     /* the executor serves another orchestrator */
	HS_FAIL_REFUSED,  /* another refusal by the executor */
};
const char *hs_fail_name(enum hs_fail f); /* "protocol", "version", "bad proof", ... */
/* The reason label of tandem_link_handshake_refusals_total (metrics_tandem.h). */
const char *hs_fail_label(enum hs_fail f);

struct hs_params {
	enum hs_role role;
	const uint8_t *key; /* HS_KEY_LEN bytes (secret_key()), or NULL: no secret */
	bool sp_ipc;        /* the opening's SP framing: ipc style (a type byte) */
	bool seal;          /* executor: seal this link after the proof (needs key) */
	/* orchestrator: sent in HELLO; not copied, keep them until DONE/FAILED */
	const char *orchestrator_id;
	const char *environment_id;
	/* orchestrator: the session to resume (PROTO_SESSION_ID_LEN bytes, not
	 * copied) or NULL for a fresh one; the last sequence number received
	 * in it; the monotonic clock sent as HELLO clock_ms */
	const uint8_t *resume_session;
	uint64_t resume_ack;
	uint64_t clock_ms;
	/* Randomness for nonces and X25519 seeds; NULL: randombytes_buf. Tests
	 * fix it to pin the bytes (golden files). */
	void (*random)(void *buf, size_t n);
	/* AEADs this side can seal with, preferred first, ending in SEAL_NONE
	 * (at most 3 are kept); NULL: every one this machine can use, in the
	 * order aes256gcm (only with AES-NI), chacha20poly1305,
	 * xchacha20poly1305. */
	const enum seal_aead *aeads;
};

#define HS_ID_MAX 128u

struct hs_result {
	bool sealed;
	enum seal_aead aead;
	uint8_t tx_key[SEAL_KEY_LEN], tx_prefix[SEAL_PREFIX_LEN];
	uint8_t rx_key[SEAL_KEY_LEN], rx_prefix[SEAL_PREFIX_LEN];
	/* Sessions (protocol 3). Executor, from HELLO: resume says a session
	 * was asked for (session, and resume_ack the orchestrator's last
	 * received sequence number); clock_ms its clock. Orchestrator, from the
	 * HELLO reply: session in effect, resume = it was resumed (resume_ack:
	 * the executor's last received), or why not (resume_refused). */
	uint8_t session[PROTO_SESSION_ID_LEN];
	bool resume;
	uint64_t resume_ack;
	uint64_t clock_ms;
	char resume_refused[HS_ID_MAX * 2 + 1];
	/* executor: from HELLO */
	char orchestrator_id[HS_ID_MAX + 1], environment_id[HS_ID_MAX + 1];
	/* orchestrator: from the HELLO reply */
	char executor_id[HS_ID_MAX + 1], executor_version[HS_ID_MAX + 1];
	uint32_t max_frame, max_processes;
	bool http_relay;
	/* detached servers (MCP_ATTACH): handles and identities, at most
	 * PROTO_MAX_LIVE; live_ids[i] is all zero when the executor gave none */
	uint64_t live_handles[PROTO_MAX_LIVE];
	uint8_t live_ids[PROTO_MAX_LIVE][PROTO_ID_LEN];
	uint32_t n_live;
	bool live_more; /* it keeps more than these: MCP_ATTACH by identity */
};

struct hs;

struct hs *hs_new(const struct hs_params *p);
struct hs *hs_free(struct hs *h); /* wipes; NULL ok; returns NULL */

/* Appends what this side sends before reading anything (orchestrator: its
 * SP header; executor: nothing, it answers the orchestrator's header). */
void hs_start(struct hs *h, struct fbuf *out);
/* Feeds received bytes (all that are buffered). Returns how many were used:
 * the rest is kept by the caller and fed again with more (or, once DONE,
 * belongs to the framed reader). Appends bytes to send to out. In FAILED,
 * out may hold an error reply for the peer: send it before closing. */
size_t hs_input(struct hs *h, const uint8_t *data, size_t len, struct fbuf *out);

enum hs_state hs_state(const struct hs *h);
enum hs_fail hs_fail_kind(const struct hs *h);
const char *hs_error(const struct hs *h); /* why it failed, for logs and status */
/* Valid in PROVED (executor: the HELLO fields) and DONE (everything). */
const struct hs_result *hs_result(const struct hs *h);

/* Executor, in PROVED: answer with HELLO reply and AUTH reply. info gives
 * executor_id, executor_version, capabilities, max_frame, max_processes
 * (version and kx are filled here). Then DONE (or FAILED for a bad X25519
 * key from the peer). */
void hs_accept(struct hs *h, const struct proto_hello_reply *info, struct fbuf *out);
/* Executor, in PROVED: refuse with an error reply to AUTH (status and a
 * message for the orchestrator). Then FAILED (HS_FAIL_BUSY for busy). */
void hs_refuse(struct hs *h, int32_t status, const char *msg, struct fbuf *out);

/* Executors that dial out: before the opening, the executor that made the
 * connection names the environment it is (its token file's name on the
 * orchestrator), so that the orchestrator knows which secret the handshake
 * proves; the opening and the handshake then run as on a connection the
 * orchestrator made (it speaks first):
 *   00 54 44 49 ("\0TDI")  02 (version)  00  [u16 BE n]  [n bytes: id]
 * with the id 1-64 of [A-Za-z0-9_-]. hs_dialin_preface writes it (0: bad
 * id); hs_dialin_parse reads it: 0 (id, used), -EAGAIN (need more),
 * -EPROTO (another version), -EBADMSG (not a preface). The id is only a
 * claim: the proofs that follow are made with that environment's secret. */
#define HS_DIALIN_MAX (8u + 64u)
size_t hs_dialin_preface(uint8_t out[HS_DIALIN_MAX], const char *environment_id);
int hs_dialin_parse(const uint8_t *buf, size_t len, char id[HS_ID_MAX + 1], size_t *used);

/* The opening's pieces, for tests and fuzzers that speak it by hand. */
void hs_sp_header(uint8_t out[HS_SP_HEADER_LEN]);
void hs_marker(uint8_t out[HS_MARKER_LEN]);
/* Frames payload as one SP pair1 message (ipc: type byte 1 first). */
void hs_sp_message(struct fbuf *out, bool ipc, const uint8_t *payload, size_t len);
/* Parses one SP pair1 message at buf: 0 (payload, used), -EAGAIN (need
 * more), -E2BIG (over max), -EBADMSG. */
int hs_sp_parse(const uint8_t *buf, size_t len, bool ipc, size_t max, const uint8_t **payload,
		size_t *plen, size_t *used);

#endif
