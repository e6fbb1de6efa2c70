/* seal.h - one direction of a sealed link: every frame is one AEAD under a
 * key of its own direction, with a nonce made of a per-direction prefix and
 * a 64-bit counter that starts at 0 and grows by one per frame, and the
 * frame's 4-byte length header as associated data.
 *
 * Two AEADs (libsodium), chosen in the handshake: AES-256-GCM when both
 * ends have AES-NI (3-4 times cheaper on such machines: nonce = 4 bytes of
 * the prefix || counter), else XChaCha20-Poly1305 (nonce = 16 bytes of the
 * prefix || counter). Both have a 16-byte tag.
 *
 * The counter is never sent: both ends count. A frame that was altered,
 * replayed, dropped or reordered fails to open (its tag was made for
 * another counter or other bytes), and the link is closed. Keys and
 * prefixes come from the handshake (proto/handshake.h); a struct seal
 * holds them until seal_wipe().
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
	SEAL_XCHACHA20POLY1305 = 1, /* "xchacha20poly1305" */
	SEAL_AES256GCM = 2,         /* "aes256gcm" (needs AES-NI on both ends) */
};
/* The name on the wire, and back (SEAL_NONE for an unknown name). */
const char *seal_aead_name(enum seal_aead a);
enum seal_aead seal_aead_by_name(const char *name, size_t len);
/* Whether this machine can use it (AES-256-GCM: hardware AES). */
bool seal_aead_available(enum seal_aead a);

struct seal {
	crypto_aead_aes256gcm_state gcm; /* the expanded AES key (AES-256-GCM) */
	uint8_t key[SEAL_KEY_LEN];
	uint8_t prefix[SEAL_PREFIX_LEN];
	uint64_t counter; /* of the next frame */
	enum seal_aead aead;
	bool on;
};

void seal_init(struct seal *s, enum seal_aead aead, const uint8_t key[SEAL_KEY_LEN],
	       const uint8_t prefix[SEAL_PREFIX_LEN]);
void seal_wipe(struct seal *s);

/* Seals in place. frame points at the 4-byte header, followed by plen
 * bytes of plaintext and SEAL_TAG_LEN bytes of room for the tag; the header
 * is written (plen + SEAL_TAG_LEN) and authenticated. Returns 0, or
 * -EOVERFLOW when the counter is spent (2^64 frames). */
int seal_frame(struct seal *s, uint8_t *frame, size_t plen);

/* Opens in place: hdr is the frame's 4-byte header, payload its len bytes
 * (ciphertext and tag). On success *plen is the plaintext length (the
 * plaintext starts at payload) and the counter advances; -EBADMSG when the
 * frame does not authenticate (tampered, replayed, reordered, dropped) or
 * is shorter than a tag. */
int seal_open(struct seal *s, const uint8_t *hdr, uint8_t *payload, size_t len, size_t *plen);

#endif
