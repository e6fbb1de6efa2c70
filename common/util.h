/* util.h - allocation and cleanup helpers shared by every module.
 *
 * Allocation failure is fatal (xmalloc and friends abort with a message):
 * tandem's limits bound every allocation driven by a peer, so running out of
 * memory means the machine is in trouble, not that a peer misbehaved.
 *
 * Cleanup: `_cleanup_(freep) char *s = ...;` frees at scope exit;
 * `TAKE_PTR(s)` hands ownership out and leaves NULL behind.
 */
#ifndef TANDEM_UTIL_H
#define TANDEM_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#define TAKE_PTR(p)                                                            \
	__extension__({                                                                     \
		__typeof__(p) _tp = (p);                                       \
		(p) = NULL;                                                    \
		_tp;                                                           \
	})
#define TAKE_FD(fd)                                                            \
	__extension__({                                                                     \
		int _tf = (fd);                                                \
		(fd) = -1;                                                     \
		_tf;                                                           \
	})

#define container_of(ptr, type, member)                                        \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n); /* exactly n bytes (not strndup: no NUL scan) */
/* printf into a fresh string. */
/* Frees a NULL-terminated array of malloc'd strings and the array; NULL ok. */
void strv_free(char **v);
/* The value of one hex digit, or -1. */
int hexval(char c);

char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline void freep(void *p) { free(*(void **)p); }
static inline void closep(int *fd)
{
	if (*fd >= 0)
		close(*fd);
}
#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)

/* Closes fd if >= 0 and returns -1, for `fd = safe_close(fd);`. */
int safe_close(int fd);

/* Wipes memory in a way the compiler may not drop (libsodium). */
void secure_wipe(void *p, size_t n);

/* Monotonic clock in nanoseconds / milliseconds. */
uint64_t now_ns(void);
static inline uint64_t now_ms(void) { return now_ns() / 1000000u; }

/* Writes all of buf, retrying on EINTR. Returns 0 or -errno. */
int write_all(int fd, const void *buf, size_t len);

/* Sets O_NONBLOCK (and keeps FD_CLOEXEC). Returns 0 or -errno. */
int fd_set_nonblock(int fd);

/* A random (version 4) UUID in its 36-character text form, NUL-terminated:
 * thread, turn and item ids. */
#define UUID_STR_SIZE 37u
void uuid_v4(char out[UUID_STR_SIZE]);

#endif
