/* secret.h - a shared secret held in locked, guarded libsodium memory.
 *
 * Used for the orchestrator<->executor link secret (spawned mode: handed
 * through an inherited pipe; standalone: a token file or environment
 * variable). The secret never appears in argv or logs; it is wiped when
 * freed. Only its BLAKE2b-256 digest is used as a MAC key (secret_key()).
 */
#ifndef TANDEM_SECRET_H
#define TANDEM_SECRET_H

#include <stddef.h>
#include <stdint.h>

#define SECRET_MAX 16384u /* a JWT access token with many claims fits */
#define SECRET_KEY_LEN 32u

struct secret;

/* Reads the secret from fd until EOF (at most SECRET_MAX bytes), trims
 * trailing whitespace, closes nothing. Returns 0, -EINVAL for an empty
 * secret, -E2BIG when longer than SECRET_MAX, or -errno. */
int secret_from_fd(int fd, struct secret **out);
/* Reads a token file; refuses (-EPERM) a file readable by group or others. */
int secret_from_file(const char *path, struct secret **out);
/* Takes the value of an environment variable, then removes the variable
 * from this process's environment so children do not inherit it. */
int secret_from_env(const char *name, struct secret **out);
/* Copies len bytes (a token given in a request). */
int secret_from_buf(const char *buf, size_t len, struct secret **out);
/* Generates a random secret of `len` bytes (hex-encoded, for pipes). */
int secret_generate(size_t len, struct secret **out);

const uint8_t *secret_key(const struct secret *s); /* SECRET_KEY_LEN bytes */
const char *secret_data(const struct secret *s);   /* NUL-terminated */
size_t secret_len(const struct secret *s);
struct secret *secret_free(struct secret *s);      /* wipes; NULL ok */

#endif
