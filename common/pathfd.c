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

#define WALK_MAX_LINKS 40 /* like the kernel's MAXSYMLINKS */

/* The fallback walk: one component at a time with O_NOFOLLOW, a stack of
 * the directories passed (so ".." can go back, never above the start), and
 * symlinks read with readlinkat() and spliced into the rest of the path
 * (an absolute one leaves the start: refused). What openat2
 * RESOLVE_BENEATH does, in user space, without any path resolved twice. */
struct walk {
	int stack[PATH_MAX / 2];
	size_t depth;	       /* stack[0] is the start (a dup) */
	char rest[2 * PATH_MAX];
	int links;
	bool follow; /* false: any symlink is -ELOOP */
};

static void walk_free(struct walk *w)
{
	for (size_t i = 0; i < w->depth; i++)
		close(w->stack[i]);
}

/* Takes the next component of w->rest into comp; false at the end. */
static bool next_component(struct walk *w, char *comp, size_t len)
{
	char *p = w->rest, *end;
	size_t n;

	while (*p == '/')
		p++;
	if (!*p)
		return false;
	end = strchrnul(p, '/');
	n = MIN((size_t)(end - p), len - 1);
	memcpy(comp, p, n);
	comp[n] = '\0';
	memmove(w->rest, end, strlen(end) + 1);
	return true;
}

static bool at_end(const struct walk *w)
{
	return w->rest[strspn(w->rest, "/")] == '\0';
}

/* comp is a symlink below dirfd: put its target in front of the rest. */
static int splice_link(struct walk *w, int dirfd, const char *comp)
{
	char target[PATH_MAX];
	ssize_t n = readlinkat(dirfd, comp, target, sizeof(target) - 1);
	size_t rl = strlen(w->rest);

	if (!w->follow)
		return -ELOOP;
	if (n < 0)
		return -errno;
	target[n] = '\0';
	if (++w->links > WALK_MAX_LINKS)
		return -ELOOP;
	if (target[0] == '/')
		return -EXDEV;
	if ((size_t)n + 1 + rl + 1 > sizeof(w->rest))
		return -ENAMETOOLONG;
	memmove(w->rest + n + 1, w->rest, rl + 1);
	memcpy(w->rest, target, (size_t)n);
	w->rest[n] = '/';
	return 0;
}

/* One step: 1 to go on, a descriptor (>= 0 via *out) when done, -errno. */
static int walk_step(struct walk *w, int flags, int *out)
{
	int cur = w->stack[w->depth - 1], fd;
	char comp[NAME_MAX + 1];
	struct stat st;
	bool last;

	if (!next_component(w, comp, sizeof(comp))) {
		fd = openat(cur, ".", flags | O_CLOEXEC);
		*out = fd < 0 ? -errno : fd;
		return 0;
	}
	if (!strcmp(comp, "."))
		return 1;
	if (!strcmp(comp, "..")) {
		if (w->depth == 1)
			return -EXDEV;
		close(w->stack[--w->depth]);
		return 1;
	}
	last = at_end(w);
	fd = openat(cur, comp, (last && !(flags & O_PATH) ? flags : O_PATH) | O_NOFOLLOW |
				       O_CLOEXEC);
	if (fd < 0 && errno != ELOOP)
		return -errno;
	if (fd < 0 || (fstat(fd, &st) == 0 && S_ISLNK(st.st_mode))) {
		int r;

		safe_close(fd);
		r = splice_link(w, cur, comp);
		return r < 0 ? r : 1;
	}
	if (last && (flags & O_PATH) && (flags & O_DIRECTORY) && !S_ISDIR(st.st_mode)) {
		close(fd);
		return -ENOTDIR;
	}
	if (last) {
		*out = fd;
		return 0;
	}
	if (!S_ISDIR(st.st_mode)) {
		close(fd);
		return -ENOTDIR;
	}
	if (w->depth == ARRAY_SIZE(w->stack)) {
		close(fd);
		return -ENAMETOOLONG;
	}
	w->stack[w->depth++] = fd;
	return 1;
}

static int walk(int dirfd, const char *path, int flags, bool follow)
{
	struct walk *w = xcalloc(1, sizeof(*w));
	int r, out = -1;

	if (strlen(path) >= PATH_MAX) {
		free(w);
		return -ENAMETOOLONG;
	}
	strcpy(w->rest, path);
	w->follow = follow;
	w->stack[0] = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	if (w->stack[0] < 0) {
		free(w);
		return -errno;
	}
	w->depth = 1;
	while ((r = walk_step(w, flags, &out)) == 1)
		;
	walk_free(w);
	free(w);
	return r < 0 ? r : out;
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
	return walk(dirfd, rel, flags, true);
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
	r = walk(root, abs + 1, flags, false);
	close(root);
	return r;
}
