/* pathfd.h - open paths so that a check and its use see the same file.
 *
 * A path checked with realpath() and opened afterwards can be swapped in
 * between (a directory exchanged for a symlink with renameat2
 * RENAME_EXCHANGE). These open relative to a directory descriptor and let
 * the kernel refuse escapes during the one resolution that also opens:
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) (Linux 5.6), or where
 * openat2 is missing (ENOSYS; valgrind does not know it) a component-by-
 * component O_NOFOLLOW walk that reads each symlink itself and follows it
 * only while it stays below the start. Read through the descriptor you got,
 * never through the path again. Every descriptor is O_CLOEXEC. No logging.
 */
#ifndef TANDEM_PATHFD_H
#define TANDEM_PATHFD_H

#include <stdbool.h>

/* Opens rel (relative; "." or "" is dirfd itself) below dirfd with open(2)
 * flags (O_CLOEXEC is added). Symlinks are followed only while they stay
 * below dirfd. Returns the fd, or -EXDEV when the path leaves dirfd (an
 * absolute symlink, ".." above it), -ELOOP (too many links), -ENOENT, ...
 * as from openat2. */
int pathfd_open_beneath(int dirfd, const char *rel, int flags);

/* Opens the absolute path abs following no symlink in any component (the
 * path should be canonical already). Returns the fd or -errno (-ELOOP when a
 * component is a symlink now). */
int pathfd_open_nosymlinks(const char *abs, int flags);

/* Tests only: false makes both behave as on a kernel without openat2. */
void pathfd_use_openat2(bool use);

#endif
