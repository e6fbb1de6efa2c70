/* seal.c - see seal.h. */
#include "seal.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "frame.h"

const char *seal_aead_name(enum seal_aead a)
{
	switch (a) {
	case SEAL_XCHACHA20POLY1305: return "xchacha20poly1305";
	case SEAL_AES256GCM: return "aes256gcm";
	default: return "none";
	}
}

enum seal_aead seal_aead_by_name(const char *name, size_t len)
{
	if (len == 17 && memcmp(name, "xchacha20poly1305", 17) == 0)
		return SEAL_XCHACHA20POLY1305;
	if (len == 9 && memcmp(name, "aes256gcm", 9) == 0)
		return SEAL_AES256GCM;
	return SEAL_NONE;
}

bool seal_aead_available(enum seal_aead a)
{
	if (a == SEAL_XCHACHA20POLY1305)
		return true;
	return a == SEAL_AES256GCM && sodium_init() >= 0 && crypto_aead_aes256gcm_is_available();
}

void seal_init(struct seal *s, enum seal_aead aead, const uint8_t key[SEAL_KEY_LEN],
	       const uint8_t prefix[SEAL_PREFIX_LEN])
{
	memcpy(s->key, key, SEAL_KEY_LEN);
	memcpy(s->prefix, prefix, SEAL_PREFIX_LEN);
	s->counter = 0;
	s->aead = aead;
	if (aead == SEAL_AES256GCM)
		crypto_aead_aes256gcm_beforenm(&s->gcm, key);
	s->on = true;
}

void seal_wipe(struct seal *s)
{
	sodium_memzero(s, sizeof(*s));
}

/* prefix bytes then the counter, little-endian, filling the AEAD's nonce. */
static void make_nonce(const struct seal *s, uint8_t *n, size_t nlen)
{
	memcpy(n, s->prefix, nlen - 8);
	for (unsigned i = 0; i < 8; i++)
		n[nlen - 8 + i] = (uint8_t)(s->counter >> (8 * i));
}

int seal_frame(struct seal *s, uint8_t *frame, size_t plen)
{
	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	unsigned long long clen;

	if (s->counter == UINT64_MAX)
		return -EOVERFLOW;
	frame_put_len(frame, (uint32_t)(plen + SEAL_TAG_LEN));
	if (s->aead == SEAL_AES256GCM) {
		make_nonce(s, nonce, crypto_aead_aes256gcm_NPUBBYTES);
		crypto_aead_aes256gcm_encrypt_afternm(frame + FRAME_HDR, &clen, frame + FRAME_HDR,
						      plen, frame, FRAME_HDR, NULL, nonce, &s->gcm);
	} else {
		make_nonce(s, nonce, sizeof(nonce));
		crypto_aead_xchacha20poly1305_ietf_encrypt(frame + FRAME_HDR, &clen,
							   frame + FRAME_HDR, plen, frame, FRAME_HDR,
							   NULL, nonce, s->key);
	}
	s->counter++;
	return 0;
}

int seal_open(struct seal *s, const uint8_t *hdr, uint8_t *payload, size_t len, size_t *plen)
{
	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	unsigned long long mlen;

	if (len < SEAL_TAG_LEN || s->counter == UINT64_MAX)
		return -EBADMSG;
	if (s->aead == SEAL_AES256GCM) {
		make_nonce(s, nonce, crypto_aead_aes256gcm_NPUBBYTES);
		if (crypto_aead_aes256gcm_decrypt_afternm(payload, &mlen, NULL, payload, len, hdr,
							  FRAME_HDR, nonce, &s->gcm) != 0)
			return -EBADMSG;
	} else {
		make_nonce(s, nonce, sizeof(nonce));
		if (crypto_aead_xchacha20poly1305_ietf_decrypt(payload, &mlen, NULL, payload, len,
							       hdr, FRAME_HDR, nonce, s->key) != 0)
			return -EBADMSG;
	}
	s->counter++;
	*plen = (size_t)mlen;
	return 0;
}
