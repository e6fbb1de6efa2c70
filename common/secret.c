/* secret.c - see secret.h. */
#include "secret.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

struct secret {
	uint8_t key[SECRET_KEY_LEN];
	size_t len;
	char data[]; /* NUL-terminated */
};

static int secret_make(const char *buf, size_t len, struct secret **out)
{
	struct secret *s;

	while (len > 0 && isspace((unsigned char)buf[len - 1]))
		len--;
	if (len == 0)
		return -EINVAL;
	if (sodium_init() < 0)
		return -EIO;
	/* sodium_malloc puts the block against a guard page: the address is
	 * aligned only when the size is a multiple of the alignment. */
	s = sodium_malloc((sizeof(*s) + len + 1 + 15) & ~(size_t)15);
	if (!s)
		return -ENOMEM;
	memcpy(s->data, buf, len);
	s->data[len] = '\0';
	s->len = len;
	crypto_generichash(s->key, sizeof(s->key), (const uint8_t *)buf, len, NULL, 0);
	*out = s;
	return 0;
}

int secret_from_fd(int fd, struct secret **out)
{
	char *buf;
	size_t len = 0;
	int r;

	if (sodium_init() < 0)
		return -EIO;
	buf = sodium_malloc(SECRET_MAX + 1);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read(fd, buf + len, SECRET_MAX + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > SECRET_MAX) {
			r = -E2BIG;
			goto out;
		}
	}
	r = secret_make(buf, len, out);
out:
	sodium_free(buf); /* wipes */
	return r;
}

int secret_from_file(const char *path, struct secret **out)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		return -EPERM;
	return secret_from_fd(fd, out);
}

int secret_from_env(const char *name, struct secret **out)
{
	char *v;
	int r;

	if (secret_env_held(name)) {
		v = (char *)secret_getenv(name);
		return secret_make(v, strlen(v), out);
	}
	v = getenv(name);
	if (!v)
		return -ENOENT;
	r = secret_make(v, strlen(v), out);
	secure_wipe(v, strlen(v));
	unsetenv(name);
	return r;
}

int secret_from_buf(const char *buf, size_t len, struct secret **out)
{
	return len > SECRET_MAX ? -E2BIG : secret_make(buf, len, out);
}

int secret_generate(size_t len, struct secret **out)
{
	uint8_t raw[64];
	char hex[2 * sizeof(raw) + 1];
	int r;

	if (len == 0 || len > sizeof(raw))
		return -EINVAL;
	if (sodium_init() < 0)
		return -EIO;
	randombytes_buf(raw, len);
	sodium_bin2hex(hex, sizeof(hex), raw, len);
	r = secret_make(hex, 2 * len, out);
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(hex, sizeof(hex));
	return r;
}

const uint8_t *secret_key(const struct secret *s) { return s->key; }
const char *secret_data(const struct secret *s) { return s->data; }
size_t secret_len(const struct secret *s) { return s->len; }

struct secret *secret_free(struct secret *s)
{
	if (s)
		sodium_free(s); /* zeroes the whole allocation */
	return NULL;
}

/* ---- held environment variables ---------------------------------------- */

static struct {
	char *name[SECRET_ENV_MAX];
	struct secret *val[SECRET_ENV_MAX];
	size_t n;
} held;

static ssize_t held_index(const char *name)
{
	for (size_t i = 0; i < held.n; i++)
		if (strcmp(held.name[i], name) == 0)
			return (ssize_t)i;
	return -1;
}

bool secret_env_held(const char *name) { return name && held_index(name) >= 0; }

int secret_env_hold(const char *name)
{
	struct secret *s = NULL;
	char *v;
	int r;

	if (!name || !*name || strchr(name, '='))
		return -EINVAL;
	if (held_index(name) >= 0)
		return 0;
	v = getenv(name);
	if (!v)
		return -ENOENT;
	if (held.n == SECRET_ENV_MAX)
		return -ENOSPC;
	r = *v ? secret_make(v, strlen(v), &s) : -ENOENT;
	/* Where the value lay: the initial environment block (what
	 * /proc/<pid>/environ reads) or a setenv() copy. */
	secure_wipe(v, strlen(v));
	unsetenv(name);
	if (r < 0)
		return r == -EINVAL ? -ENOENT : r; /* only whitespace: nothing to hold */
	held.name[held.n] = xstrdup(name);
	held.val[held.n++] = s;
	return 0;
}

const char *secret_getenv(const char *name)
{
	ssize_t i = name ? held_index(name) : -1;

	return i >= 0 ? held.val[i]->data : getenv(name);
}

size_t secret_env_count(void) { return held.n; }
const char *secret_env_name(size_t i) { return i < held.n ? held.name[i] : NULL; }

void secret_env_release_all(void)
{
	for (size_t i = 0; i < held.n; i++) {
		free(held.name[i]);
		held.val[i] = secret_free(held.val[i]);
	}
	held.n = 0;
}
