/* landlock.h - the Landlock LSM through its raw system calls (glibc has no
 * wrappers; Debian 12's linux headers stop at ABI 2, so the definitions up
 * to ABI 7 are our own).
 *
 * Parent side (may allocate, may fail with a message): probe the ABI,
 * create a ruleset that handles every filesystem right the ABI knows (and,
 * from ABI 6, scopes abstract unix sockets and signals to the domain), add
 * rules by descriptor. Child side (async-signal-safe, between fork and
 * exec): landlock_restrict() sets no_new_privs and enforces the ruleset on
 * the calling thread, inherited by everything it executes or forks.
 * No logging.
 */
#ifndef TANDEM_LANDLOCK_H
#define TANDEM_LANDLOCK_H

#include <stdint.h>

/* Filesystem rights (bits of the kernel ABI). */
#define LL_FS_EXECUTE (1ull << 0)
#define LL_FS_WRITE_FILE (1ull << 1)
#define LL_FS_READ_FILE (1ull << 2)
#define LL_FS_READ_DIR (1ull << 3)
#define LL_FS_REMOVE_DIR (1ull << 4)
#define LL_FS_REMOVE_FILE (1ull << 5)
#define LL_FS_MAKE_CHAR (1ull << 6)
#define LL_FS_MAKE_DIR (1ull << 7)
#define LL_FS_MAKE_REG (1ull << 8)
#define LL_FS_MAKE_SOCK (1ull << 9)
#define LL_FS_MAKE_FIFO (1ull << 10)
#define LL_FS_MAKE_BLOCK (1ull << 11)
#define LL_FS_MAKE_SYM (1ull << 12)
#define LL_FS_REFER (1ull << 13)    /* ABI 2 */
#define LL_FS_TRUNCATE (1ull << 14) /* ABI 3 */
#define LL_FS_IOCTL_DEV (1ull << 15) /* ABI 5 */

/* What tandem grants, as sets (clipped to the ABI by the functions below). */
#define LL_READ (LL_FS_READ_FILE | LL_FS_READ_DIR)
#define LL_READ_EXEC (LL_READ | LL_FS_EXECUTE)
#define LL_READ_WRITE                                                                     \
	(LL_READ | LL_FS_WRITE_FILE | LL_FS_REMOVE_DIR | LL_FS_REMOVE_FILE | LL_FS_MAKE_DIR | \
	 LL_FS_MAKE_REG | LL_FS_MAKE_SOCK | LL_FS_MAKE_FIFO | LL_FS_MAKE_SYM | LL_FS_REFER |    \
	 LL_FS_TRUNCATE)
/* A device node such as /dev/null: read, write, truncate (O_TRUNC), ioctl. */
#define LL_DEVICE (LL_FS_READ_FILE | LL_FS_WRITE_FILE | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV)

/* The highest Landlock ABI of this kernel (>= 1), or -errno: -ENOSYS (no
 * Landlock), -EOPNOTSUPP (built in but disabled). */
int landlock_abi(void);

/* Scopes (ABI 6): no connection to an abstract unix socket, no signal, to
 * anything outside the domain. */
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ull << 0)
#define LL_SCOPE_SIGNAL (1ull << 1)

/* A new ruleset fd (CLOEXEC) handling every right of `abi` and, from ABI 6,
 * both scopes; or -errno. */
int landlock_ruleset(int abi);
/* The same with the scopes chosen (dropped below ABI 6). */
int landlock_ruleset_scoped(int abi, uint64_t scopes);

/* Allows `access` beneath the file or directory fd (any open fd, O_PATH
 * is enough). Rights a file cannot carry (directory rights on a regular
 * file) and rights the ABI lacks are dropped. 0 or -errno. */
int landlock_allow_fd(int ruleset, int abi, int fd, uint64_t access);

/* The same for a path (symlinks followed: the rule lands on the target).
 * -ENOENT for a path that does not exist (callers skip optional ones). */
int landlock_allow_path(int ruleset, int abi, const char *path, uint64_t access);

/* Child side, async-signal-safe: PR_SET_NO_NEW_PRIVS, then enforce. 0 or a
 * positive errno. */
int landlock_restrict(int ruleset);

/* Child side, async-signal-safe: a rule added without allocating (for
 * /proc/self, which only the child can name). 0 or a positive errno. */
int landlock_allow_fd_raw(int ruleset, int abi, int fd, uint64_t access, int is_dir);

#endif
