/* box.c - see box.h. */
#include "box.h"

#include "executor.h"
#include "log.h"
#include "landlock.h"
#include "mcpcfg.h"
#include "pathfd.h"
#include "sandbox.h"
#include "spawnproc.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define BOX_MAX_DEPTH 128 /* directory levels removed below a private dir */

struct boxes {
	int abi;		/* Landlock ABI, or -errno */
	int netns_err;		/* 0: network namespaces possible; 1: not probed yet */
	char *priv_base;	/* the private directories' parent (0700) */
	int priv_base_fd;
	char *pids_base;	/* a pids cgroup of ours, or NULL */
	uint64_t seq;
};

struct box {
	struct boxes *g;
	struct sandbox *sb;
	char *describe;
	char *priv_name, *priv_path;
	int priv_fd;
	char *pids_dir;
	int pids_procs_fd;
	int extra_fds[2 * MCPCFG_SANDBOX_PATHS_MAX];
	size_t n_read, n_write;
	unsigned long namespaces;
	bool landlocked;
};

/* ---- executor-wide ---- */

static void rm_tree_at(int parent, const char *name, int depth);
static void cgroup_remove(const char *dir);
static void remove_stale(const char *dir, const char *prefix, bool cgroup);

static int probe_clone(unsigned long flags)
{
	pid_t pid = (pid_t)syscall(SYS_clone, (unsigned long)SIGCHLD | flags, NULL, NULL, NULL,
				   NULL);

	if (pid < 0)
		return -errno;
	if (pid == 0)
		_exit(0);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return 0;
}

/* Writes text to dir/file (a cgroup control file). */
static int write_ctl(const char *dir, const char *file, const char *text)
{
	_cleanup_free_ char *p = xasprintf("%s/%s", dir, file);
	int fd = open(p, O_WRONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, text, strlen(text)) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* The mount point of the cgroup hierarchy with fstype `type` whose super
 * options hold `opt` (NULL: any). */
static char *cgroup_mount(const char *type, const char *opt)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096], *found = NULL;

	while (f && !found && fgets(line, sizeof(line), f)) {
		char mnt[PATH_MAX], fstype[64], super[1024];
		const char *dash = strstr(line, " - ");

		if (!dash || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1 ||
		    sscanf(dash + 3, "%63s %*s %1023s", fstype, super) != 2)
			continue;
		if (strcmp(fstype, type) == 0 && (!opt || strstr(super, opt)))
			found = xstrdup(mnt);
	}
	if (f)
		fclose(f);
	return found;
}

/* Our path in the hierarchy whose /proc/self/cgroup line has `ctl` as its
 * controller list ("pids", or "" for v2). */
static char *cgroup_self(const char *ctl)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	char line[4096], *found = NULL;

	while (f && !found && fgets(line, sizeof(line), f)) {
		char *a = strchr(line, ':'), *b = a ? strchr(a + 1, ':') : NULL;

		if (!b)
			continue;
		*b = '\0';
		line[strcspn(line, "\n")] = '\0';
		b[1 + strcspn(b + 1, "\n")] = '\0';
		if (strcmp(a + 1, ctl) == 0)
			found = xstrdup(b + 1);
	}
	if (f)
		fclose(f);
	return found;
}

static char *make_pids_base(const char *mnt, const char *self)
{
	_cleanup_free_ char *parent = xasprintf("%s%s", mnt, strcmp(self, "/") ? self : "");
	char *base = xasprintf("%s/tandem-exec.%d", parent, (int)getpid());

	remove_stale(parent, "tandem-exec.", true);

	if (mkdir(base, 0755) == 0 || errno == EEXIST)
		return base;
	free(base);
	return NULL;
}

/* v1 pids hierarchy (hybrid layouts), else v2 with the pids controller. */
static char *pids_base(void)
{
	_cleanup_free_ char *mnt = cgroup_mount("cgroup", "pids"), *self = cgroup_self("pids");
	_cleanup_free_ char *mnt2 = NULL, *self2 = NULL, *parent = NULL;
	char *base;

	if (mnt && self && (base = make_pids_base(mnt, self)))
		return base;
	mnt2 = cgroup_mount("cgroup2", NULL);
	self2 = cgroup_self("");
	if (!mnt2 || !self2 || !(base = make_pids_base(mnt2, self2)))
		return NULL;
	parent = xasprintf("%s%s", mnt2, strcmp(self2, "/") ? self2 : "");
	/* Controllers flow down through subtree_control; our own cgroup can
	 * only enable one when it holds no process (or is the root). */
	(void)write_ctl(parent, "cgroup.subtree_control", "+pids");
	if (write_ctl(base, "cgroup.subtree_control", "+pids") == 0)
		return base;
	rmdir(base);
	free(base);
	return NULL;
}

/* pid from "<prefix><pid>[.<anything>]"; 0 when the name is not ours. */
static pid_t stale_pid(const char *name, const char *prefix)
{
	size_t n = strlen(prefix);
	char *end;
	long pid;

	if (strncmp(name, prefix, n) != 0)
		return 0;
	pid = strtol(name + n, &end, 10);
	if (pid <= 0 || end == name + n || (*end && *end != '.'))
		return 0;
	return (pid_t)pid;
}

/* An executor killed by SIGKILL leaves its private directories and its
 * pids cgroups behind: the next start in the same place removes those of
 * executors that are gone (and of our own user, for the directories). */
static void remove_stale(const char *dir, const char *prefix, bool cgroup)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		pid_t pid = stale_pid(e->d_name, prefix);
		struct stat st;

		if (!pid || pid == getpid() || kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
			continue;
		if (cgroup) {
			_cleanup_free_ char *base = xasprintf("%s/%s", dir, e->d_name);
			DIR *c = opendir(base);
			struct dirent *ce;

			while (c && (ce = readdir(c))) {
				if (ce->d_name[0] == 's' && ce->d_type == DT_DIR) {
					_cleanup_free_ char *sub = xasprintf("%s/%s", base, ce->d_name);

					cgroup_remove(sub);
				}
			}
			if (c)
				closedir(c);
			cgroup_remove(base);
		} else {
			rm_tree_at(dirfd(d), e->d_name, 0);
		}
	}
	if (d)
		closedir(d);
}

static void make_priv_base(struct executor *ex, struct boxes *g)
{
	const char *dir = ex->opts.sandbox_dir ? ex->opts.sandbox_dir : getenv("TMPDIR");
	char *tmpl;

	if (!dir || !*dir)
		dir = "/tmp";
	remove_stale(dir, "tandem-executor.", false);
	tmpl = xasprintf("%s/tandem-executor.%d.XXXXXX", dir, (int)getpid());

	if (!mkdtemp(tmpl)) {
		log_error("cannot create the servers' private directories under %s: %s", dir,
			  strerror(errno));
		free(tmpl);
		return;
	}
	g->priv_base = tmpl;
	g->priv_base_fd = open(tmpl, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

void box_init(struct executor *ex)
{
	struct boxes *g = xcalloc(1, sizeof(*g));

	g->priv_base_fd = -1;
	g->abi = landlock_abi();
	g->netns_err = 1; /* probed when a server first asks for network = false */
	g->pids_base = pids_base();
	make_priv_base(ex, g);
	ex->boxes = g;
	if (g->abi > 0)
		log_info("sandbox: Landlock ABI %d; private directories in %s; process limit by %s",
			 g->abi, g->priv_base ? g->priv_base : "(none)",
			 g->pids_base ? g->pids_base : "nothing (no pids cgroup of ours)");
	else
		log_warn("sandbox: no Landlock in this kernel (%s): MCP servers %s",
			 strerror(-g->abi),
			 ex->opts.require_sandbox ? "will be refused (--require-sandbox)"
						  : "run unsandboxed");
}

/* Removes name below dirfd, depth first, following no symlink. */
static void rm_tree_at(int parent, const char *name, int depth)
{
	int fd;
	DIR *d;
	struct dirent *e;

	if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
		return;
	if (depth > BOX_MAX_DEPTH)
		return;
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		safe_close(fd);
		return;
	}
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			rm_tree_at(dirfd(d), e->d_name, depth + 1);
	closedir(d);
	unlinkat(parent, name, AT_REMOVEDIR);
}

/* Kills whatever is left in a cgroup, then removes it (a few tries). */
static void cgroup_remove(const char *dir)
{
	for (int i = 0; i < 50; i++) {
		_cleanup_free_ char *procs = xasprintf("%s/cgroup.procs", dir);
		FILE *f;
		int pid;

		if (rmdir(dir) == 0 || errno == ENOENT)
			return;
		f = fopen(procs, "re");
		while (f && fscanf(f, "%d", &pid) == 1)
			kill(pid, SIGKILL);
		if (f)
			fclose(f);
		usleep(2000);
	}
}

void box_fini(struct executor *ex)
{
	struct boxes *g = ex->boxes;

	if (!g)
		return;
	if (g->priv_base) {
		rm_tree_at(AT_FDCWD, g->priv_base, 0);
		free(g->priv_base);
	}
	safe_close(g->priv_base_fd);
	if (g->pids_base) {
		cgroup_remove(g->pids_base);
		free(g->pids_base);
	}
	free(g);
	ex->boxes = NULL;
}

/* ---- one server ---- */

static bool sandbox_allowed(const struct executor *ex, const char *path)
{
	for (size_t i = 0; i < ex->opts.n_sandbox_allow; i++)
		if (mcpcfg_path_within(ex->opts.sandbox_allow[i], path))
			return true;
	return false;
}

/* Opens one sandbox.read/write path: below the root's descriptor when it
 * lies inside the root (mcpcfg resolved relative ones there), else only
 * under an --sandbox-allow directory, following no symlink. */
static int open_grant(struct executor *ex, const struct box_req *req, const char *key,
		      const char *path, char *err, size_t errlen)
{
	char real[PATH_MAX];
	int fd;

	if (req->root && mcpcfg_path_within(req->root, path)) {
		const char *rel = path + strlen(req->root);

		fd = pathfd_open_beneath(req->root_fd, *rel == '/' ? rel + 1 : rel, O_PATH);
	} else if (!realpath(path, real)) {
		snprintf(err, errlen, "sandbox.%s path '%s': %s", key, path, strerror(errno));
		return -ENOENT;
	} else if (!sandbox_allowed(ex, real)) {
		snprintf(err, errlen,
			 "sandbox.%s path '%s' is outside the plugin root and not under an "
			 "executor --sandbox-allow directory", key, path);
		return -EACCES;
	} else {
		fd = pathfd_open_nosymlinks(real, O_PATH);
	}
	if (fd < 0)
		snprintf(err, errlen, "sandbox.%s path '%s' cannot be opened inside the allowed "
				      "directories: %s", key, path, strerror(-fd));
	return fd;
}

static int open_grants(struct executor *ex, const struct box_req *req, struct box *b,
		       json_t *sandbox, char *err, size_t errlen)
{
	const char *const keys[] = { "read", "write" };

	for (size_t k = 0; k < 2; k++) {
		json_t *list = json_object_get(sandbox, keys[k]), *e;
		size_t i;

		json_array_foreach(list, i, e) {
			int fd;

			if (!json_is_string(e) || b->n_read + b->n_write >= ARRAY_SIZE(b->extra_fds)) {
				snprintf(err, errlen, "sandbox.%s: bad entry %zu", keys[k], i);
				return -EINVAL;
			}
			fd = open_grant(ex, req, keys[k], json_string_value(e), err, errlen);
			if (fd < 0)
				return fd;
			/* reads first, writes after: one array, two counts */
			b->extra_fds[b->n_read + b->n_write] = fd;
			*(k ? &b->n_write : &b->n_read) += 1;
		}
	}
	return 0;
}

static int make_private(struct boxes *g, const char *name, struct box *b, char *err,
			size_t errlen)
{
	if (g->priv_base_fd < 0) {
		snprintf(err, errlen, "no directory for the servers' private directories");
		return -ENOENT;
	}
	b->priv_name = xasprintf("s%llu-%s", (unsigned long long)++g->seq, name);
	if (mkdirat(g->priv_base_fd, b->priv_name, 0700) < 0) {
		snprintf(err, errlen, "cannot create the private directory %s/%s: %s",
			 g->priv_base, b->priv_name, strerror(errno));
		return -errno;
	}
	b->priv_path = xasprintf("%s/%s", g->priv_base, b->priv_name);
	b->priv_fd = pathfd_open_beneath(g->priv_base_fd, b->priv_name, O_PATH | O_DIRECTORY);
	return b->priv_fd < 0 ? b->priv_fd : 0;
}

static void make_pids(struct boxes *g, struct box *b, unsigned long max)
{
	char num[32];

	if (!g->pids_base)
		return;
	b->pids_dir = xasprintf("%s/s%llu", g->pids_base, (unsigned long long)g->seq);
	snprintf(num, sizeof(num), "%lu", max);
	if (mkdir(b->pids_dir, 0755) < 0 || write_ctl(b->pids_dir, "pids.max", num) < 0) {
		rmdir(b->pids_dir);
		b->pids_dir = (free(b->pids_dir), NULL);
		return;
	}
	{
		_cleanup_free_ char *procs = xasprintf("%s/cgroup.procs", b->pids_dir);

		b->pids_procs_fd = open(procs, O_WRONLY | O_CLOEXEC);
	}
}

static unsigned long limit_of(json_t *sandbox, const char *key, unsigned long dflt)
{
	json_t *v = json_object_get(sandbox, key);

	return json_is_integer(v) ? (unsigned long)json_integer_value(v) : dflt;
}

/* Why a server runs without Landlock, or NULL when it gets it. */
static const char *why_off(struct executor *ex, const struct box_req *req, json_t *sandbox,
			   char *buf, size_t len)
{
	if (json_is_true(json_object_get(sandbox, "off")))
		return "off: sandbox = \"off\" in its config";
	if (!req->root && !sandbox)
		return "off: not a plugin server (a sandbox table in its config boxes it)";
	if (ex->boxes->abi <= 0) {
		snprintf(buf, len, "off: this kernel has no Landlock (%s)",
			 strerror(-ex->boxes->abi));
		return buf;
	}
	return NULL;
}

static int box_network(struct executor *ex, const struct box_req *req, struct box *b,
		       int32_t *status, char *err, size_t errlen)
{
	json_t *net = json_object_get(req->policy, "network");

	if (!net || json_is_true(net))
		return 0;
	/* Creating a network namespace costs milliseconds: only when needed. */
	if (ex->boxes->netns_err > 0)
		ex->boxes->netns_err = probe_clone(CLONE_NEWNET);
	if (ex->boxes->netns_err < 0) {
		*status = PROTO_E_DENIED;
		snprintf(err, errlen,
			 "network = false needs a network namespace of its own, which this "
			 "executor cannot create (%s); not starting it",
			 strerror(-ex->boxes->netns_err));
		return -EPERM;
	}
	b->namespaces |= CLONE_NEWNET;
	return 0;
}

static int box_landlock(struct executor *ex, const struct box_req *req, struct box *b,
			json_t *sandbox, char *err, size_t errlen)
{
	struct boxes *g = ex->boxes;
	_cleanup_free_ char *program = NULL;
	struct sandbox_spec s = {
		.landlock_abi = g->abi,
		.root_fd = req->root_fd >= 0 ? req->root_fd : req->cwd_fd,
		.max_open_files = limit_of(sandbox, "max_open_files", BOX_DEFAULT_OPEN_FILES),
		.max_address_space =
			(unsigned long long)limit_of(sandbox, "max_memory_mb", BOX_DEFAULT_MEMORY_MB)
			<< 20,
		.pids_procs_fd = -1,
		.subreaper = !ex->pidns,
		/* its own /proc, showing its own processes (contain.h: pidns) */
		.private_proc = ex->pidns,
	};
	unsigned long nproc = limit_of(sandbox, "max_processes", BOX_DEFAULT_PROCESSES);
	int r;

	if ((r = open_grants(ex, req, b, sandbox, err, errlen)) < 0 ||
	    (r = make_private(g, req->name, b, err, errlen)) < 0)
		return r;
	make_pids(g, b, nproc);
	(void)spawnproc_find(req->command, req->envp, &program);
	s.program = program;
	s.private_fd = b->priv_fd;
	s.read_fds = b->extra_fds;
	s.n_read = b->n_read;
	s.write_fds = b->extra_fds + b->n_read;
	s.n_write = b->n_write;
	s.pids_procs_fd = b->pids_procs_fd;
	r = sandbox_new(&s, &b->sb, err, errlen);
	if (r < 0)
		return r;
	b->landlocked = true;
	b->describe = xasprintf("landlock ABI %d, private directory, %s%s", g->abi,
				b->pids_dir ? "process limit" : "no process limit",
				b->namespaces & CLONE_NEWNET ? ", no network" : "");
	return 0;
}

int box_new(struct executor *ex, const struct box_req *req, struct box **out, int32_t *status,
	    char *err, size_t errlen)
{
	struct box *b = xcalloc(1, sizeof(*b));
	json_t *sandbox = json_object_get(req->policy, "sandbox");
	const char *off;
	char buf[256];
	int r;

	b->g = ex->boxes;
	b->priv_fd = b->pids_procs_fd = -1;
	*status = PROTO_E_DENIED;
	if ((r = box_network(ex, req, b, status, err, errlen)) < 0)
		goto fail;
	off = why_off(ex, req, sandbox, buf, sizeof(buf));
	if (off && ex->opts.require_sandbox && !json_object_get(sandbox, "off")) {
		snprintf(err, errlen, "this executor requires a sandbox (--require-sandbox) and "
				      "cannot give one: %s", off + 5);
		r = -EPERM;
		goto fail;
	}
	if (off) {
		struct sandbox_spec s = { .pids_procs_fd = -1, .subreaper = !ex->pidns };

		b->describe = xstrdup(off);
		r = sandbox_new(&s, &b->sb, err, errlen); /* containment only */
	} else {
		r = box_landlock(ex, req, b, sandbox, err, errlen);
	}
	if (r < 0)
		goto fail;
	*out = b;
	return 0;
fail:
	box_free(b);
	return r;
}

const struct spawnproc_hook *box_hook(struct box *b) { return sandbox_hook(b->sb); }
unsigned long box_namespaces(const struct box *b) { return b->namespaces; }
const char *box_home(const struct box *b) { return b->priv_path; }
bool box_landlocked(const struct box *b) { return b->landlocked; }
const char *box_describe(const struct box *b) { return b->describe; }

void box_free(struct box *b)
{
	if (!b)
		return;
	sandbox_free(b->sb);
	for (size_t i = 0; i < b->n_read + b->n_write; i++)
		safe_close(b->extra_fds[i]);
	safe_close(b->priv_fd);
	if (b->priv_name && b->g->priv_base_fd >= 0)
		rm_tree_at(b->g->priv_base_fd, b->priv_name, 0);
	safe_close(b->pids_procs_fd);
	if (b->pids_dir)
		cgroup_remove(b->pids_dir);
	free(b->pids_dir);
	free(b->priv_name);
	free(b->priv_path);
	free(b->describe);
	free(b);
}
