/* secret.h - a shared secret held in locked, guarded libsodium memory.
 *
 * Used for the orchestrator<->executor link secret (spawned mode: handed
 * through an inherited pipe; standalone: a token file or environment
 * variable). The secret never appears in argv or logs; it is wiped when
 * freed. Only its BLAKE2b-256 digest is used as a MAC key (secret_key()).
 */
#ifndef TANDEM_SECRET_H
#define TANDEM_SECRET_H

#include <stdbool.h>
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
 * from this process's environment so children do not inherit it. A
 * variable held with secret_env_hold() is copied from the held value (and
 * stays held), so several users can take the same one. */
int secret_from_env(const char *name, struct secret **out);
/* Copies len bytes (a token given in a request). */
int secret_from_buf(const char *buf, size_t len, struct secret **out);
/* Generates a random secret of `len` bytes (hex-encoded, for pipes). */
int secret_generate(size_t len, struct secret **out);

/* ---- held environment variables ----
 *
 * A daemon moves the secrets it reads from its environment (API keys, the
 * token store key, link tokens) into guarded memory at start-up, before it
 * starts threads or children: the value is copied into sodium_malloc memory,
 * overwritten with NULs where it lay (the environment block that
 * /proc/<pid>/environ shows, and that a fork() copies) and the variable is
 * removed, so no child, no /proc reader and no later getenv() sees it. The
 * process reads it back with secret_getenv(). Loop thread (or before any
 * thread) only: the table is a file static. */
#define SECRET_ENV_MAX 64u /* variables held at once */

/* Holds variable `name`. 0, -ENOENT when it is not set (or empty: an empty
 * value is removed and not held), -EINVAL for a bad name, -ENOSPC past
 * SECRET_ENV_MAX, -errno. Holding a held name again is a no-op. */
int secret_env_hold(const char *name);
/* True when `name` is held (whatever its value). */
bool secret_env_held(const char *name);
/* The held value of `name`, else getenv(name): what the daemon itself uses
 * wherever it would call getenv() for a credential. Borrowed: valid until
 * secret_env_release_all() (held) or the next change of the environment. */
const char *secret_getenv(const char *name);
/* Names held, in the order they were held (for logs: never the values). */
size_t secret_env_count(void);
const char *secret_env_name(size_t i);
/* Wipes and frees every held value (a forked helper that needs none; the
 * daemon at exit). */
void secret_env_release_all(void);

const uint8_t *secret_key(const struct secret *s); /* SECRET_KEY_LEN bytes */
const char *secret_data(const struct secret *s);   /* NUL-terminated */
size_t secret_len(const struct secret *s);
struct secret *secret_free(struct secret *s);      /* wipes; NULL ok */

#endif
