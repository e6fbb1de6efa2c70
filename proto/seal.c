/* seal.c - see seal.h. */
#include "seal.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "frame.h"

void seal_init(struct seal *s, const uint8_t key[SEAL_KEY_LEN],
	       const uint8_t prefix[SEAL_PREFIX_LEN])
{
	memcpy(s->key, key, SEAL_KEY_LEN);
	memcpy(s->prefix, prefix, SEAL_PREFIX_LEN);
	s->counter = 0;
	s->on = true;
}

void seal_wipe(struct seal *s)
{
	sodium_memzero(s, sizeof(*s));
}

static void make_nonce(const struct seal *s, uint8_t n[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES])
{
	memcpy(n, s->prefix, SEAL_PREFIX_LEN);
	for (unsigned i = 0; i < 8; i++)
		n[SEAL_PREFIX_LEN + i] = (uint8_t)(s->counter >> (8 * i));
}

int seal_frame(struct seal *s, uint8_t *frame, size_t plen)
{
	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	unsigned long long clen;

	if (s->counter == UINT64_MAX)
		return -EOVERFLOW;
	frame_put_len(frame, (uint32_t)(plen + SEAL_TAG_LEN));
	make_nonce(s, nonce);
	crypto_aead_xchacha20poly1305_ietf_encrypt(frame + FRAME_HDR, &clen, frame + FRAME_HDR,
						   plen, frame, FRAME_HDR, NULL, nonce, s->key);
	s->counter++;
	return 0;
}

int seal_open(struct seal *s, const uint8_t *hdr, uint8_t *payload, size_t len, size_t *plen)
{
	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	unsigned long long mlen;

	if (len < SEAL_TAG_LEN || s->counter == UINT64_MAX)
		return -EBADMSG;
	make_nonce(s, nonce);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(payload, &mlen, NULL, payload, len, hdr,
						       FRAME_HDR, nonce, s->key) != 0)
		return -EBADMSG;
	s->counter++;
	*plen = (size_t)mlen;
	return 0;
}
