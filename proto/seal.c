/* seal.c - see seal.h. */
#include "seal.h"

#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sodium.h>
#include <string.h>

#include "frame.h"

#define CHACHA_NONCE_LEN 12u /* RFC 8439 */

/* Fetched once and kept for the process's life: a fetch looks the
 * algorithm up in the provider (and may load openssl.cnf the first time),
 * which a confined daemon cannot do later, and which costs more than the
 * sealing of a small frame. */
static EVP_CIPHER *chacha;
static pthread_once_t chacha_once = PTHREAD_ONCE_INIT;

static void chacha_fetch(void)
{
	chacha = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
}

int seal_global_init(void)
{
	pthread_once(&chacha_once, chacha_fetch);
	return chacha ? 0 : -ENOSYS;
}

const char *seal_aead_name(enum seal_aead a)
{
	switch (a) {
	case SEAL_XCHACHA20POLY1305: return "xchacha20poly1305";
	case SEAL_AES256GCM: return "aes256gcm";
	case SEAL_CHACHA20POLY1305: return "chacha20poly1305";
	default: return "none";
	}
}

enum seal_aead seal_aead_by_name(const char *name, size_t len)
{
	if (len == 17 && memcmp(name, "xchacha20poly1305", 17) == 0)
		return SEAL_XCHACHA20POLY1305;
	if (len == 9 && memcmp(name, "aes256gcm", 9) == 0)
		return SEAL_AES256GCM;
	if (len == 16 && memcmp(name, "chacha20poly1305", 16) == 0)
		return SEAL_CHACHA20POLY1305;
	return SEAL_NONE;
}

bool seal_aead_available(enum seal_aead a)
{
	switch (a) {
	case SEAL_XCHACHA20POLY1305: return true;
	case SEAL_AES256GCM: return sodium_init() >= 0 && crypto_aead_aes256gcm_is_available();
	case SEAL_CHACHA20POLY1305: return seal_global_init() == 0;
	default: return false;
	}
}

/* A keyed ChaCha20-Poly1305 context; the nonce and direction are set per
 * frame. */
static int chacha_ctx(struct seal *s, const uint8_t *key)
{
	if (seal_global_init() < 0)
		return -ENOSYS;
	s->ctx = EVP_CIPHER_CTX_new();
	if (!s->ctx)
		return -ENOMEM;
	if (EVP_CipherInit_ex(s->ctx, chacha, NULL, key, NULL, 1) != 1) {
		EVP_CIPHER_CTX_free(s->ctx);
		s->ctx = NULL;
		return -ENOMEM;
	}
	return 0;
}

int seal_init(struct seal *s, enum seal_aead aead, const uint8_t key[SEAL_KEY_LEN],
	      const uint8_t prefix[SEAL_PREFIX_LEN])
{
	int r = 0;

	memcpy(s->key, key, SEAL_KEY_LEN);
	memcpy(s->prefix, prefix, SEAL_PREFIX_LEN);
	s->counter = 0;
	s->aead = aead;
	s->ctx = NULL;
	s->broken = false;
	if (aead == SEAL_AES256GCM)
		crypto_aead_aes256gcm_beforenm(&s->gcm, key);
	else if (aead == SEAL_CHACHA20POLY1305)
		r = chacha_ctx(s, key);
	else if (aead != SEAL_XCHACHA20POLY1305)
		r = -EINVAL;
	/* On even when broken: a caller that ignores the error gets a link
	 * that fails, never one in clear. */
	s->on = true;
	s->broken = r < 0;
	return r;
}

void seal_wipe(struct seal *s)
{
	if (s->ctx)
		EVP_CIPHER_CTX_free(s->ctx); /* cleanses its key schedule */
	sodium_memzero(s, sizeof(*s));
}

/* prefix bytes then the counter, little-endian, filling the AEAD's nonce. */
static void make_nonce(const struct seal *s, uint8_t *n, size_t nlen)
{
	memcpy(n, s->prefix, nlen - 8);
	for (unsigned i = 0; i < 8; i++)
		n[nlen - 8 + i] = (uint8_t)(s->counter >> (8 * i));
}

/* One ChaCha20-Poly1305 pass in place over len bytes at p, nonce from the
 * counter, ad as associated data: enc writes the tag, else checks it. */
int seal_chacha_raw(struct seal *s, bool enc, const uint8_t *ad, size_t adlen, uint8_t *p,
		    size_t len, uint8_t tag[SEAL_TAG_LEN])
{
	uint8_t nonce[CHACHA_NONCE_LEN];
	int n;

	if (s->aead != SEAL_CHACHA20POLY1305 || s->broken || !s->ctx)
		return -EINVAL;
	make_nonce(s, nonce, sizeof(nonce));
	if (len > INT_MAX || adlen > INT_MAX ||
	    EVP_CipherInit_ex(s->ctx, NULL, NULL, NULL, nonce, enc) != 1 ||
	    (adlen && EVP_CipherUpdate(s->ctx, NULL, &n, ad, (int)adlen) != 1) ||
	    (len && EVP_CipherUpdate(s->ctx, p, &n, p, (int)len) != 1))
		return -EBADMSG;
	if (!enc && EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_AEAD_SET_TAG, SEAL_TAG_LEN, tag) != 1)
		return -EBADMSG;
	if (EVP_CipherFinal_ex(s->ctx, p + len, &n) != 1)
		return -EBADMSG;
	if (enc && EVP_CIPHER_CTX_ctrl(s->ctx, EVP_CTRL_AEAD_GET_TAG, SEAL_TAG_LEN, tag) != 1)
		return -EBADMSG;
	return 0;
}

int seal_frame(struct seal *s, uint8_t *frame, size_t plen)
{
	uint8_t nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES];
	unsigned long long clen;

	if (s->counter == UINT64_MAX)
		return -EOVERFLOW;
	if (s->broken)
		return -EIO;
	frame_put_len(frame, (uint32_t)(plen + SEAL_TAG_LEN));
	if (s->aead == SEAL_CHACHA20POLY1305) {
		if (seal_chacha_raw(s, true, frame, FRAME_HDR, frame + FRAME_HDR, plen,
				    frame + FRAME_HDR + plen) < 0) {
			sodium_memzero(frame + FRAME_HDR, plen + SEAL_TAG_LEN);
			return -EIO;
		}
	} else if (s->aead == SEAL_AES256GCM) {
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

	if (len < SEAL_TAG_LEN || s->counter == UINT64_MAX || s->broken)
		return -EBADMSG;
	if (s->aead == SEAL_CHACHA20POLY1305) {
		/* OpenSSL decrypts before it checks the tag: a frame that
		 * fails leaves nothing of what it decrypted to. */
		if (seal_chacha_raw(s, false, hdr, FRAME_HDR, payload, len - SEAL_TAG_LEN,
				    payload + len - SEAL_TAG_LEN) < 0) {
			sodium_memzero(payload, len);
			return -EBADMSG;
		}
		mlen = len - SEAL_TAG_LEN;
	} else if (s->aead == SEAL_AES256GCM) {
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
