/* sandbox.c - see sandbox.h. */
#include "sandbox.h"

#include "landlock.h"
#include "spawnproc.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>

/* Programs and their libraries. */
static const char *const system_exec[] = { "/usr", "/bin", "/sbin", "/lib", "/lib32",
					   "/lib64", "/libx32" };

/* What runtimes read from /etc (the loader, time zones, CA store, name
 * resolution, users, MIME types, interpreters' own config) and no more:
 * all of /etc would hand a server /etc/shadow when the executor runs as
 * root, and ssh host keys. */
static const char *const system_read[] = {
	"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/ld.so.preload",
	"/etc/localtime", "/etc/timezone", "/etc/ssl", "/etc/ca-certificates",
	"/etc/ca-certificates.conf", "/etc/pki", "/etc/crypto-policies", "/etc/resolv.conf",
	"/etc/hosts", "/etc/host.conf", "/etc/nsswitch.conf", "/etc/gai.conf", "/etc/passwd",
	"/etc/group", "/etc/services", "/etc/protocols", "/etc/mime.types", "/etc/os-release",
	"/etc/debian_version", "/etc/alternatives", "/etc/locale.alias", "/etc/locale.conf",
	"/etc/default/locale", "/etc/nodejs", "/etc/npmrc", "/etc/python3",
	"/etc/python3.11", "/etc/gitconfig", "/etc/magic", "/etc/xdg",
	/* what runtimes ask the kernel through files */
	"/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/proc/loadavg", "/proc/uptime",
	"/proc/version", "/proc/filesystems", "/proc/sys/kernel", "/proc/sys/vm/overcommit_memory",
	"/sys/devices/system/cpu", "/sys/fs/cgroup",
};

static const char *const system_devices[] = { "/dev/null", "/dev/zero", "/dev/full",
					      "/dev/random", "/dev/urandom" };

enum step {
	STEP_CGROUP = 1,
	STEP_SUBREAPER,
	STEP_RLIMIT,
	STEP_PROC_SELF,
	STEP_LANDLOCK,
};

struct sandbox {
	struct sandbox_spec spec; /* descriptors borrowed */
	int ruleset;		  /* -1: no Landlock */
	struct spawnproc_hook hook;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int allow_list(struct sandbox *b, const char *const *paths, size_t n, uint64_t access,
		      char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		int r = landlock_allow_path(b->ruleset, b->spec.landlock_abi, paths[i], access);

		if (r < 0 && r != -ENOENT && r != -EACCES) {
			seterr(err, errlen, "cannot allow '%s' in the sandbox: %s", paths[i],
			       strerror(-r));
			return r;
		}
	}
	return 0;
}

static int allow_fds(struct sandbox *b, const int *fds, size_t n, uint64_t access, char *err,
		     size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		int r = fds[i] < 0 ? 0 : landlock_allow_fd(b->ruleset, b->spec.landlock_abi,
							   fds[i], access);

		if (r < 0) {
			seterr(err, errlen, "cannot add a sandbox rule: %s", strerror(-r));
			return r;
		}
	}
	return 0;
}

static int build_rules(struct sandbox *b, char *err, size_t errlen)
{
	const struct sandbox_spec *s = &b->spec;
	int r;

	b->ruleset = landlock_ruleset(s->landlock_abi);
	if (b->ruleset < 0) {
		r = b->ruleset;
		seterr(err, errlen, "cannot create a Landlock ruleset: %s", strerror(-r));
		return r;
	}
	if ((r = allow_list(b, system_exec, ARRAY_SIZE(system_exec), LL_READ_EXEC, err, errlen)) <
		    0 ||
	    (r = allow_list(b, system_read, ARRAY_SIZE(system_read), LL_READ, err, errlen)) < 0 ||
	    (r = allow_list(b, system_devices, ARRAY_SIZE(system_devices), LL_DEVICE, err,
			    errlen)) < 0 ||
	    (r = allow_fds(b, &s->root_fd, 1, LL_READ_EXEC, err, errlen)) < 0 ||
	    (r = allow_fds(b, &s->private_fd, 1, LL_READ_WRITE, err, errlen)) <
		    0 ||
	    (r = allow_fds(b, s->read_fds, s->n_read, LL_READ_EXEC, err, errlen)) < 0 ||
	    (r = allow_fds(b, s->write_fds, s->n_write, LL_READ_WRITE, err, errlen)) < 0)
		return r;
	if (s->program) {
		r = landlock_allow_path(b->ruleset, s->landlock_abi, s->program, LL_READ_EXEC);
		if (r < 0) {
			seterr(err, errlen, "cannot allow '%s' in the sandbox: %s", s->program,
			       strerror(-r));
			return r;
		}
	}
	return 0;
}

/* ---- the child ---- */

static int set_limit(int resource, unsigned long long v)
{
	struct rlimit rl = { .rlim_cur = (rlim_t)v, .rlim_max = (rlim_t)v };

	return v && setrlimit(resource, &rl) < 0 ? errno : 0;
}

/* A procfs of the PID namespace we are in, on /proc of a mount namespace
 * of our own (made private first, so nothing propagates back). unshare()
 * here rather than CLONE_NEWNS at clone time: the copy then carries over
 * the working directory already set from a descriptor of the parent's
 * namespace (an fchdir after the clone would sit in the old one). */
static int mount_private_proc(void)
{
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
		return errno;
	return 0;
}

static int hook_run(void *arg, int *step)
{
	struct sandbox *b = arg;
	const struct sandbox_spec *s = &b->spec;
	int r, fd;

	*step = STEP_CGROUP;
	if (s->pids_procs_fd >= 0 && write(s->pids_procs_fd, "0", 1) != 1)
		return errno;
	*step = STEP_SUBREAPER;
	if (s->subreaper && prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return errno;
	*step = STEP_RLIMIT;
	if ((r = set_limit(RLIMIT_NOFILE, s->max_open_files)) ||
	    (r = set_limit(RLIMIT_NPROC, s->max_processes)) ||
	    (r = set_limit(RLIMIT_AS, s->max_address_space)))
		return r;
	if (b->ruleset < 0)
		return 0;
	*step = STEP_PROC_SELF;
	if (s->private_proc && (r = mount_private_proc()) != 0)
		return r;
	/* A private /proc shows the box's own processes only: all of it may be
	 * read. Otherwise only this process's entry (its children cannot read
	 * theirs: a rule names one inode). */
	fd = open(s->private_proc ? "/proc" : "/proc/self", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	r = landlock_allow_fd_raw(b->ruleset, s->landlock_abi, fd, LL_READ, 1);
	close(fd);
	if (r)
		return r;
	*step = STEP_LANDLOCK;
	return landlock_restrict(b->ruleset);
}

static const char *hook_describe(int step, void *arg)
{
	(void)arg;
	switch (step) {
	case STEP_CGROUP: return "join the server's pids cgroup";
	case STEP_SUBREAPER: return "make the server a child subreaper";
	case STEP_RLIMIT: return "set the sandbox's resource limits";
	case STEP_PROC_SELF: return "give the sandbox its /proc";
	case STEP_LANDLOCK: return "enforce the Landlock sandbox";
	default: return NULL;
	}
}

/* ---- lifecycle ---- */

int sandbox_new(const struct sandbox_spec *spec, struct sandbox **out, char *err, size_t errlen)
{
	struct sandbox *b = xcalloc(1, sizeof(*b));
	int r;

	b->spec = *spec;
	b->ruleset = -1;
	b->hook = (struct spawnproc_hook){ hook_run, hook_describe, b };
	if (spec->landlock_abi > 0 && (r = build_rules(b, err, errlen)) < 0) {
		sandbox_free(b);
		return r;
	}
	*out = b;
	return 0;
}

const struct spawnproc_hook *sandbox_hook(struct sandbox *b) { return &b->hook; }

struct sandbox *sandbox_free(struct sandbox *b)
{
	if (!b)
		return NULL;
	safe_close(b->ruleset);
	free(b);
	return NULL;
}

/* ---- this process ---- */

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
	__has_feature(leak_sanitizer)
#define SANITIZER_BUILD 1
#endif
#endif
#ifndef SANITIZER_BUILD
#define SANITIZER_BUILD 0
#endif

static char self_desc[160] = "off";

const char *sandbox_self_describe(void) { return self_desc; }
bool sandbox_sanitizer_build(void) { return SANITIZER_BUILD; }

/* What a network daemon never calls (see sandbox.h); EPERM. */
static const char *const refused_calls[] = {
	"process_vm_readv", "process_vm_writev", "pidfd_getfd", "mount", "umount", "umount2",
	"pivot_root", "chroot", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount",
	"fspick", "mount_setattr", "unshare", "setns", "kexec_load", "kexec_file_load",
	"reboot", "init_module", "finit_module", "delete_module", "bpf", "perf_event_open",
	"userfaultfd", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "settimeofday",
	"clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname", "iopl",
	"ioperm", "syslog", "vhangup", "keyctl", "add_key", "request_key", "name_to_handle_at",
	"open_by_handle_at", "lookup_dcookie", "uselib", "nfsservctl",
};

/* ... and, outside sanitizer builds, what starts a process or inspects one. */
static const char *const refused_unless_sanitizer[] = {
	"ptrace", "execve", "execveat", "fork", "vfork",
};

static int refuse(scmp_filter_ctx f, const char *name, int err, unsigned n,
		  const struct scmp_arg_cmp *cmp)
{
	int nr = seccomp_syscall_resolve_name(name);

	if (nr == __NR_SCMP_ERROR)
		return 0; /* not a call of this architecture */
	return seccomp_rule_add_array(f, SCMP_ACT_ERRNO(err), nr, n, cmp);
}

static int refuse_clone(scmp_filter_ctx f)
{
	static const unsigned long ns[] = { CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC,
					    CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET,
					    CLONE_NEWCGROUP };
	struct scmp_arg_cmp c;
	int r = 0;

	for (size_t i = 0; i < ARRAY_SIZE(ns) && r == 0; i++) {
		c = SCMP_A0(SCMP_CMP_MASKED_EQ, ns[i], ns[i]);
		r = refuse(f, "clone", EPERM, 1, &c);
	}
	if (r == 0 && !SANITIZER_BUILD) { /* a process, not a thread */
		c = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0);
		r = refuse(f, "clone", EPERM, 1, &c);
	}
	/* Its flags are in memory the filter cannot read: make the C
	 * library fall back to clone. */
	return r ? r : refuse(f, "clone3", ENOSYS, 0, NULL);
}

static int seccomp_filter(char *err, size_t errlen)
{
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_ALLOW);
	/* spelled out: SCMP_A0() leaves datum_b to the initializer, which
	 * clang's -Wmissing-field-initializers refuses (the fuzz build) */
	struct scmp_arg_cmp query = { .arg = 0, .op = SCMP_CMP_NE, .datum_a = 0xffffffffu,
				      .datum_b = 0 };
	int r = f ? 0 : -ENOMEM;

	if (r == 0)
		r = seccomp_attr_set(f, SCMP_FLTATR_CTL_TSYNC, 1);
	/* a binary tree over the system call numbers: every allowed call (the
	 * daemon's reads, writes, epoll) passes in a few comparisons */
	if (r == 0)
		(void)seccomp_attr_set(f, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	for (size_t i = 0; i < ARRAY_SIZE(refused_calls) && r == 0; i++)
		r = refuse(f, refused_calls[i], EPERM, 0, NULL);
	for (size_t i = 0; i < ARRAY_SIZE(refused_unless_sanitizer) && r == 0; i++)
		if (!SANITIZER_BUILD)
			r = refuse(f, refused_unless_sanitizer[i], EPERM, 0, NULL);
	if (r == 0)
		r = refuse(f, "personality", EPERM, 1, &query);
	if (r == 0)
		r = refuse_clone(f);
	if (r == 0)
		r = seccomp_load(f);
	if (r < 0)
		seterr(err, errlen, "cannot install the seccomp filter: %s", strerror(-r));
	seccomp_release(f);
	return r;
}

/* Threads of this process, or -errno. */
static int thread_count(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static int self_rules(const struct sandbox_self_spec *s, int abi, int *ruleset, char *err,
		      size_t errlen)
{
	int rs = landlock_ruleset_scoped(abi, s->scope_signals ? LL_SCOPE_SIGNAL : 0);

	if (rs < 0) {
		seterr(err, errlen, "cannot create a Landlock ruleset: %s", strerror(-rs));
		return rs;
	}
	for (size_t i = 0; i < s->n_paths; i++) {
		int r = landlock_allow_path(rs, abi, s->paths[i].path, s->paths[i].access);

		if (r < 0 && r != -ENOENT && r != -EACCES) {
			seterr(err, errlen, "cannot allow '%s': %s", s->paths[i].path,
			       strerror(-r));
			close(rs);
			return r;
		}
	}
	*ruleset = rs;
	return 0;
}

int sandbox_confine_self(const struct sandbox_self_spec *s, char *desc, size_t desclen,
			 char *err, size_t errlen)
{
	int abi = landlock_abi(), threads = thread_count(), rs = -1, r;
	char ll[64];

	if (threads > 1) {
		seterr(err, errlen, "the process already runs %d threads, which Landlock would not "
				    "confine", threads);
		return -EBUSY;
	}
	if (s->require && abi <= 0) {
		seterr(err, errlen, "no Landlock in this kernel (%s)", strerror(-abi));
		return -EOPNOTSUPP;
	}
	if (abi > 0 && (r = self_rules(s, abi, &rs, err, errlen)) < 0)
		return r;
	if (rs >= 0 && (r = landlock_restrict(rs)) != 0) {
		close(rs);
		seterr(err, errlen, "cannot enforce the Landlock rules: %s", strerror(r));
		return -r;
	}
	safe_close(rs);
	r = s->seccomp ? seccomp_filter(err, errlen) : 0;
	if (r < 0 && s->require)
		return r;
	if (abi > 0)
		snprintf(ll, sizeof(ll), "landlock ABI %d", abi);
	else
		snprintf(ll, sizeof(ll), "no Landlock (%s)", strerror(-abi));
	snprintf(self_desc, sizeof(self_desc), "%s%s", ll,
		 !s->seccomp ? "" : r < 0 ? "; the seccomp filter failed" : ", seccomp");
	snprintf(desc, desclen, "%s", self_desc);
	return 0;
}
