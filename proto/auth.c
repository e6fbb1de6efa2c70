/* auth.c - see auth.h. */
#include "auth.h"

#include <sodium.h>
#include <string.h>

static const char *const labels[] = {
	[AUTH_ORCHESTRATOR] = "tandem/1 orchestrator",
	[AUTH_EXECUTOR] = "tandem/1 executor",
};

void auth_proof(const uint8_t key[32], enum auth_role role, const uint8_t *first,
		const uint8_t *second, uint8_t out[PROTO_PROOF_LEN])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, key, 32, PROTO_PROOF_LEN);
	crypto_generichash_update(&st, (const uint8_t *)labels[role], strlen(labels[role]) + 1);
	crypto_generichash_update(&st, first, PROTO_NONCE_LEN);
	crypto_generichash_update(&st, second, PROTO_NONCE_LEN);
	crypto_generichash_final(&st, out, PROTO_PROOF_LEN);
	sodium_memzero(&st, sizeof(st));
}

bool auth_verify(const uint8_t key[32], enum auth_role role, const uint8_t *first,
		 const uint8_t *second, const void *proof, size_t len)
{
	uint8_t want[PROTO_PROOF_LEN];
	bool ok;

	if (len != PROTO_PROOF_LEN)
		return false;
	auth_proof(key, role, first, second, want);
	ok = crypto_verify_32(want, proof) == 0;
	sodium_memzero(want, sizeof(want));
	return ok;
}

void auth_nonce(uint8_t out[PROTO_NONCE_LEN]) { randombytes_buf(out, PROTO_NONCE_LEN); }

void auth_nonce_n(uint8_t *out, size_t n) { randombytes_buf(out, n); }
