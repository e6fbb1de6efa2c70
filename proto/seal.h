/* seal.h - one direction of a sealed link: every frame is one AEAD under a
 * key of its own direction, with a nonce made of a per-direction prefix and
 * a 64-bit counter that starts at 0 and grows by one per frame, and the
 * frame's 4-byte length header as associated data.
 *
 * Three AEADs, chosen in the handshake (PROTOCOL.md, "Sealing"), all with a
 * 16-byte tag:
 *   aes256gcm          AES-256-GCM (libsodium; both ends need AES-NI):
 *                      nonce = 4 bytes of the prefix || counter
 *   chacha20poly1305   ChaCha20-Poly1305, RFC 8439 (OpenSSL libcrypto: 3x
 *                      cheaper on small frames than libsodium 1.0.18's
 *                      ChaCha, and NEON on ARMv8): same 12-byte nonce
 *   xchacha20poly1305  XChaCha20-Poly1305 (libsodium), the compatibility
 *                      suite for peers that offer only it:
 *                      nonce = 16 bytes of the prefix || counter
 *
 * The counter is never sent: both ends count. A frame that was altered,
 * replayed, dropped or reordered fails to open (its tag was made for
 * another counter or other bytes), and the link is closed. Keys and
 * prefixes come from the handshake (proto/handshake.h); a struct seal
 * holds them (and, for chacha20poly1305, an OpenSSL cipher context) until
 * seal_wipe().
 *
 * seal_global_init() fetches OpenSSL's cipher once per process; a daemon
 * that confines itself calls it before (the fetch may read openssl.cnf).
 * Later calls, and seal_aead_available(), reuse that fetch.
 */
#ifndef TANDEM_PROTO_SEAL_H
#define TANDEM_PROTO_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sodium.h>

#define SEAL_KEY_LEN 32u
#define SEAL_PREFIX_LEN 16u
#define SEAL_TAG_LEN 16u

enum seal_aead {
	SEAL_NONE = 0,
	SEAL_XCHACHA20POLY1305 = 1, /* "xchacha20poly1305" (compatibility) */
	SEAL_AES256GCM = 2,         /* "aes256gcm" (needs AES-NI on both ends) */
	SEAL_CHACHA20POLY1305 = 3,  /* "chacha20poly1305" (OpenSSL) */
};
/* The name on the wire, and back (SEAL_NONE for an unknown name). */
const char *seal_aead_name(enum seal_aead a);
enum seal_aead seal_aead_by_name(const char *name, size_t len);
/* Whether this machine can use it (AES-256-GCM: hardware AES;
 * ChaCha20-Poly1305: OpenSSL's cipher was fetched). */
bool seal_aead_available(enum seal_aead a);

/* Fetches OpenSSL's ChaCha20-Poly1305 (once; thread-safe). 0, or -ENOSYS
 * when libcrypto has none (then the handshake does not offer it). */
int seal_global_init(void);

struct evp_cipher_ctx_st; /* OpenSSL's EVP_CIPHER_CTX */

struct seal {
	crypto_aead_aes256gcm_state gcm; /* the expanded AES key (AES-256-GCM) */
	struct evp_cipher_ctx_st *ctx;   /* keyed context (ChaCha20-Poly1305) */
	uint8_t key[SEAL_KEY_LEN];
	uint8_t prefix[SEAL_PREFIX_LEN];
	uint64_t counter; /* of the next frame */
	enum seal_aead aead;
	bool on;
	bool broken; /* seal_init failed: nothing seals or opens */
};

/* 0, or -ENOMEM / -ENOSYS when the cipher context cannot be made: the seal
 * is then on but broken (seal_frame and seal_open fail), so a caller that
 * goes on anyway never sends plain text. */
int seal_init(struct seal *s, enum seal_aead aead, const uint8_t key[SEAL_KEY_LEN],
	      const uint8_t prefix[SEAL_PREFIX_LEN]);
void seal_wipe(struct seal *s); /* frees the context; wipes everything */

/* Seals in place. frame points at the 4-byte header, followed by plen
 * bytes of plaintext and SEAL_TAG_LEN bytes of room for the tag; the header
 * is written (plen + SEAL_TAG_LEN) and authenticated. Returns 0, or
 * -EOVERFLOW when the counter is spent (2^64 frames), -EIO when the seal
 * is broken or the cipher fails. */
int seal_frame(struct seal *s, uint8_t *frame, size_t plen);

/* Opens in place: hdr is the frame's 4-byte header, payload its len bytes
 * (ciphertext and tag). On success *plen is the plaintext length (the
 * plaintext starts at payload) and the counter advances; -EBADMSG when the
 * frame does not authenticate (tampered, replayed, reordered, dropped) or
 * is shorter than a tag (or the seal is broken). A frame that fails leaves
 * no unauthenticated plaintext in payload. */
int seal_open(struct seal *s, const uint8_t *hdr, uint8_t *payload, size_t len, size_t *plen);

/* The ChaCha20-Poly1305 pass of seal_frame (enc) and seal_open (!enc) with
 * any associated data, in place over len bytes at p, with the nonce of the
 * current counter (not advanced): enc writes tag, !enc checks it. 0,
 * -EINVAL (another AEAD, or broken), -EBADMSG. Public for the known-answer
 * test (RFC 8439 has 12 bytes of associated data, frames 4). */
int seal_chacha_raw(struct seal *s, bool enc, const uint8_t *ad, size_t adlen, uint8_t *p,
		    size_t len, uint8_t tag[SEAL_TAG_LEN]);

#endif
