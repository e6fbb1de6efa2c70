/* pathfd.c - see pathfd.h. */
#include "pathfd.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

/* Cleared when the kernel (or a test) says there is no openat2. */
static atomic_bool have_openat2 = true;

void pathfd_use_openat2(bool use) { atomic_store(&have_openat2, use); }

static int sys_openat2(int dirfd, const char *path, int flags, unsigned long long resolve)
{
	struct open_how how = { .flags = (unsigned long long)(flags | O_CLOEXEC),
				.resolve = resolve };
	long fd;

	do
		fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : (int)fd;
}

/* One component with O_NOFOLLOW; a symlink (the O_PATH case opens the
 * link itself) is refused. */
static int open_component(int dirfd, const char *name, int flags)
{
	struct stat st;
	int fd;

	if (strcmp(name, "..") == 0)
		return -EXDEV;
	/* O_PATH|O_NOFOLLOW opens a symlink itself (O_DIRECTORY would say
	 * ENOTDIR): fstat tells which it was. */
	do
		fd = openat(dirfd, name,
			    ((flags & O_PATH) ? flags & ~O_DIRECTORY : flags) | O_NOFOLLOW | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return errno == ELOOP ? -ELOOP : -errno;
	if ((flags & O_PATH) && fstat(fd, &st) == 0 &&
	    (S_ISLNK(st.st_mode) || ((flags & O_DIRECTORY) && !S_ISDIR(st.st_mode)))) {
		close(fd);
		return S_ISLNK(st.st_mode) ? -ELOOP : -ENOTDIR;
	}
	return fd;
}

/* The fallback: every directory on the way is opened O_PATH|O_NOFOLLOW. */
static int walk(int dirfd, const char *path, int flags)
{
	char buf[PATH_MAX], *save = NULL, *comp, *next;
	int cur, r;

	if (strlen(path) >= sizeof(buf))
		return -ENAMETOOLONG;
	strcpy(buf, path);
	cur = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	if (cur < 0)
		return -errno;
	comp = strtok_r(buf, "/", &save);
	while (comp && strcmp(comp, ".") == 0)
		comp = strtok_r(NULL, "/", &save);
	if (!comp) { /* the directory itself */
		r = openat(cur, ".", flags | O_CLOEXEC);
		r = r < 0 ? -errno : r;
		close(cur);
		return r;
	}
	for (;;) {
		next = strtok_r(NULL, "/", &save);
		while (next && strcmp(next, ".") == 0)
			next = strtok_r(NULL, "/", &save);
		r = open_component(cur, comp, next ? O_PATH | O_DIRECTORY : flags);
		close(cur);
		if (r < 0 || !next)
			return r;
		cur = r;
		comp = next;
	}
}

int pathfd_open_beneath(int dirfd, const char *rel, int flags)
{
	int r;

	if (!rel || !*rel)
		rel = ".";
	if (rel[0] == '/')
		return -EXDEV;
	if (atomic_load(&have_openat2)) {
		r = sys_openat2(dirfd, rel, flags, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS);
		if (r != -ENOSYS)
			return r;
		atomic_store(&have_openat2, false);
	}
	return walk(dirfd, rel, flags);
}

int pathfd_open_nosymlinks(const char *abs, int flags)
{
	int root, r;

	if (!abs || abs[0] != '/')
		return -EINVAL;
	if (atomic_load(&have_openat2)) {
		r = sys_openat2(AT_FDCWD, abs, flags, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
		if (r != -ENOSYS)
			return r;
		atomic_store(&have_openat2, false);
	}
	root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return -errno;
	r = walk(root, abs + 1, flags);
	close(root);
	return r;
}
