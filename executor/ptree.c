/* ptree.c - see ptree.h. */
#include "ptree.h"

#include "util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>

struct pp {
	pid_t pid, ppid;
};

struct pvec {
	pid_t *v;
	size_t n, cap;
};

static void pvec_push(struct pvec *p, pid_t pid)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 64;
		p->v = xrealloc(p->v, p->cap * sizeof(*p->v));
	}
	p->v[p->n++] = pid;
}

/* The parent pid from /proc/<pid>/stat (after the last ')': comm may hold
 * anything). */
static int read_ppid(int dirfd, const char *name, pid_t *ppid)
{
	char path[300], buf[512], *rp;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/stat", name);
	fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	rp = strrchr(buf, ')');
	if (!rp || sscanf(rp + 1, " %*c %d", ppid) != 1)
		return -EIO;
	return 0;
}

static int snapshot(struct pp **out, size_t *n_out)
{
	DIR *d = opendir("/proc");
	struct pp *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		pid_t ppid;

		if (!isdigit((unsigned char)e->d_name[0]) ||
		    read_ppid(dirfd(d), e->d_name, &ppid) < 0)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 256;
			v = xrealloc(v, cap * sizeof(*v));
		}
		v[n++] = (struct pp){ (pid_t)atoi(e->d_name), ppid };
	}
	closedir(d);
	*out = v;
	*n_out = n;
	return 0;
}

int ptree_signal(pid_t root, int sig)
{
	struct pvec todo = { 0 };
	struct pp *t = NULL;
	size_t n = 0;
	int r = snapshot(&t, &n), count = 0;

	if (r < 0)
		return r;
	pvec_push(&todo, root);
	/* Breadth first over the snapshot; a pid is visited once because
	 * parent links form a tree. */
	for (size_t i = 0; i < todo.n; i++) {
		for (size_t j = 0; j < n; j++) {
			if (t[j].ppid != todo.v[i] || t[j].pid == root)
				continue;
			if (kill(t[j].pid, sig) == 0)
				count++;
			pvec_push(&todo, t[j].pid);
		}
	}
	free(todo.v);
	free(t);
	return count;
}

static void parse_children(const char *buf, struct pvec *out)
{
	const char *p = buf;

	while (*p) {
		char *end;
		long v = strtol(p, &end, 10);

		if (end == p)
			break;
		if (v > 0)
			pvec_push(out, (pid_t)v);
		p = end;
	}
}

/* The whole of a small /proc file, NUL-terminated (caller frees). */
static char *read_small(int dirfd, const char *path)
{
	size_t len = 0, cap = 4096;
	char *buf;
	int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	buf = xmalloc(cap);
	for (;;) {
		ssize_t n;

		if (cap - len < 2)
			buf = xrealloc(buf, cap *= 2);
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	return buf;
}

int ptree_children(pid_t pid, pid_t **out)
{
	struct pvec kids = { 0 };
	char path[300];
	struct dirent *e;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		char *buf;

		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "%s/children", e->d_name);
		buf = read_small(dirfd(d), path);
		if (buf)
			parse_children(buf, &kids);
		free(buf);
	}
	closedir(d);
	*out = kids.v ? kids.v : xcalloc(1, sizeof(pid_t));
	return (int)kids.n;
}
