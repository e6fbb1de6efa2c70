/* landlock.c - see landlock.h. */
#include "landlock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif

#define LL_CREATE_RULESET_VERSION (1u << 0)
#define LL_RULE_PATH_BENEATH 1

/* The kernel reads only the fields the size covers: older ABIs get the
 * shorter struct. */
struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net; /* ABI 4 */
	uint64_t scoped;	     /* ABI 6 */
};

struct ll_path_beneath {
	uint64_t allowed_access;
	int32_t parent_fd;
} __attribute__((packed));

/* Rights a rule on a non-directory may carry. */
#define LL_FILE_RIGHTS \
	(LL_FS_EXECUTE | LL_FS_WRITE_FILE | LL_FS_READ_FILE | LL_FS_TRUNCATE | LL_FS_IOCTL_DEV)

static uint64_t abi_rights(int abi)
{
	uint64_t r = (1ull << 13) - 1; /* ABI 1: bits 0-12 */

	if (abi >= 2)
		r |= LL_FS_REFER;
	if (abi >= 3)
		r |= LL_FS_TRUNCATE;
	if (abi >= 5)
		r |= LL_FS_IOCTL_DEV;
	return r;
}

int landlock_abi(void)
{
	long v = syscall(SYS_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);

	return v < 0 ? -errno : (int)v;
}

int landlock_ruleset(int abi)
{
	return landlock_ruleset_scoped(abi, LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL);
}

int landlock_ruleset_scoped(int abi, uint64_t scopes)
{
	struct ll_ruleset_attr a = { .handled_access_fs = abi_rights(abi) };
	size_t size = sizeof(a.handled_access_fs);
	long fd;

	if (abi >= 6 && scopes) {
		a.scoped = scopes;
		size = sizeof(a);
	}
	fd = syscall(SYS_landlock_create_ruleset, &a, size, 0u);
	return fd < 0 ? -errno : (int)fd;
}

int landlock_allow_fd_raw(int ruleset, int abi, int fd, uint64_t access, int is_dir)
{
	struct ll_path_beneath pb = { .parent_fd = fd };

	pb.allowed_access = access & abi_rights(abi) & (is_dir ? ~0ull : LL_FILE_RIGHTS);
	if (!pb.allowed_access)
		return 0;
	if (syscall(SYS_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &pb, 0u) < 0)
		return errno;
	return 0;
}

int landlock_allow_fd(int ruleset, int abi, int fd, uint64_t access)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	return -landlock_allow_fd_raw(ruleset, abi, fd, access, S_ISDIR(st.st_mode));
}

int landlock_allow_path(int ruleset, int abi, const char *path, uint64_t access)
{
	int fd = open(path, O_PATH | O_CLOEXEC), r;

	if (fd < 0)
		return -errno;
	r = landlock_allow_fd(ruleset, abi, fd, access);
	close(fd);
	return r;
}

int landlock_restrict(int ruleset)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return errno;
	if (syscall(SYS_landlock_restrict_self, ruleset, 0u) < 0)
		return errno;
	return 0;
}
