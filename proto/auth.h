/* auth.h - the link's mutual proof of a shared secret.
 *
 * On every new connection the executor sends CHALLENGE{nonce_e}. The
 * orchestrator answers HELLO{nonce_o, proof_o} and the executor's reply
 * carries proof_e, so each side proves the secret to the other, bound to
 * both fresh nonces (a recorded HELLO is useless on a later connection):
 *
 *   key     = BLAKE2b-256(secret)                       (secret_key())
 *   proof_o = BLAKE2b-256-keyed(key, "tandem/1 orchestrator" || nonce_e || nonce_o)
 *   proof_e = BLAKE2b-256-keyed(key, "tandem/1 executor"     || nonce_o || nonce_e)
 *
 * Proofs are compared in constant time.
 */
#ifndef TANDEM_PROTO_AUTH_H
#define TANDEM_PROTO_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

enum auth_role { AUTH_ORCHESTRATOR, AUTH_EXECUTOR };

/* proof = MAC(key, label(role) || first || second); nonces are PROTO_NONCE_LEN. */
void auth_proof(const uint8_t key[32], enum auth_role role, const uint8_t *first,
		const uint8_t *second, uint8_t out[PROTO_PROOF_LEN]);
/* Constant-time check of a received proof of `len` bytes. */
bool auth_verify(const uint8_t key[32], enum auth_role role, const uint8_t *first,
		 const uint8_t *second, const void *proof, size_t len);
void auth_nonce(uint8_t out[PROTO_NONCE_LEN]);
/* n random bytes (any length), from the same CSPRNG. */
void auth_nonce_n(uint8_t *out, size_t n);

#endif
