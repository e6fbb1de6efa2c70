/* spawner_proc.c - the spawner process: answers the orchestrator's
 * requests (spawner_answer_<request>), starts and reaps the executors, and
 * cleans up when the orchestrator is gone. See spawner.h.
 *
 * The dispatch table below is the policy: which request is taken, and
 * whether only before the seal. A request that is not in it, comes after
 * the seal when it may not, or is malformed in any way means the
 * orchestrator is not itself: the spawner stops everything it started and
 * exits. */
#include "spawner_int.h"
#include "spawner.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "secret.h"
#include "spawnproc.h"
#include "util.h"

#define STOP_GRACE_MAX_MS 60000u
#define CHILD_FD_MAX 255

struct kid {
	pid_t pid;
	struct loop_timer *kill_timer;
};

struct allowed {
	char *name; /* as the orchestrator names it */
	char *path; /* canonical, resolved at ALLOW */
};

struct removal {
	char *path;
	dev_t dev;
	ino_t ino;
	bool dir;
};

static struct {
	struct loop *loop;
	int fd;
	struct loop_io *io;
	bool sealed, closing;
	int code;
	struct allowed allow[SPW_ALLOW_MAX];
	size_t n_allow;
	struct removal rm[SPW_REMOVE_MAX];
	size_t n_rm;
	struct kid kids[SPW_CHILDREN_MAX];
	size_t n_kids;
	struct loop_timer *close_timer;
	uint8_t *buf;
	char *path_env[2]; /* "PATH=..." kept from the environment, for ALLOW */
} sp;

static void begin_closing(int code);

/* ---- answers ----------------------------------------------------------- */

static void answer(uint32_t id, int32_t result, const char *why)
{
	struct spw_out o = { 0 };

	spw_begin(&o, SPW_ANSWER, id);
	spw_put_i32(&o, result);
	spw_put_str(&o, why ? why : "");
	if (sp.fd >= 0 && spw_send(sp.fd, &o, NULL, 0) < 0)
		begin_closing(1);
	spw_out_free(&o);
}

static int spawner_answer_allow(struct spw_in *in, uint32_t id, const int *fds, size_t n_fds)
{
	const char *name = spw_get_str(in);
	char why[512];
	char *path;
	int r;

	if (!spw_done(in) || n_fds || !name || !*name)
		return -EPROTO;
	if (sp.n_allow == SPW_ALLOW_MAX) {
		answer(id, -ENOSPC, "too many programs");
		return 0;
	}
	r = spawnproc_find(name, (const char *const *)sp.path_env, &path);
	if (r < 0) {
		snprintf(why, sizeof(why), "cannot find '%s': %s", name,
			 r == -EACCES ? "not executable" : "no such program");
		answer(id, r, why);
		return 0;
	}
	sp.allow[sp.n_allow++] = (struct allowed){ xstrdup(name), path };
	log_debug("may start '%s' (%s)", name, path);
	answer(id, 0, NULL);
	return 0;
}

static int spawner_answer_remove_at_exit(struct spw_in *in, uint32_t id, const int *fds,
					 size_t n_fds)
{
	const char *path = spw_get_str(in);
	struct stat st;

	/* a relative path names the same file: the spawner never changes its
	 * working directory (its children do, after the fork) */
	if (!spw_done(in) || n_fds || !path || !*path)
		return -EPROTO;
	if (sp.n_rm == SPW_REMOVE_MAX) {
		answer(id, -ENOSPC, "too many paths");
		return 0;
	}
	if (lstat(path, &st) < 0 || !(S_ISSOCK(st.st_mode) || S_ISDIR(st.st_mode))) {
		answer(id, -EINVAL, "not a socket or a directory");
		return 0;
	}
	sp.rm[sp.n_rm++] = (struct removal){ xstrdup(path), st.st_dev, st.st_ino,
					     S_ISDIR(st.st_mode) };
	answer(id, 0, NULL);
	return 0;
}

static int spawner_answer_seal(struct spw_in *in, uint32_t id, const int *fds, size_t n_fds)
{
	if (!spw_done(in) || n_fds)
		return -EPROTO;
	sp.sealed = true;
	answer(id, 0, NULL);
	return 0;
}

/* ---- START ------------------------------------------------------------- */

struct start {
	const char *program, *cwd;
	unsigned flags;
	const char **argv, **envp;
	struct spawnproc_fd map[SPW_FDS_MAX];
	size_t n_map;
};

static const char **read_strs(struct spw_in *in, bool drop_loader)
{
	uint32_t n = spw_get_u32(in), k = 0;
	const char **v;

	if (in->bad || n > SPW_STRS_MAX) {
		in->bad = true;
		return NULL;
	}
	v = xcalloc((size_t)n + 1, sizeof(*v));
	for (uint32_t i = 0; i < n; i++) {
		const char *s = spw_get_str(in);

		/* The loader reads these before the program runs: a way to run
		 * code of the orchestrator's choosing outside its sandbox. */
		if (s && !(drop_loader && strncmp(s, "LD_", 3) == 0))
			v[k++] = s;
	}
	return v;
}

static int read_start(struct spw_in *in, struct start *s, const int *fds, size_t n_fds)
{
	const unsigned ok = SPAWNPROC_NEW_PGROUP | SPAWNPROC_NEW_SESSION | SPAWNPROC_PDEATHSIG;
	size_t passed = 0;
	uint32_t n;

	s->program = spw_get_str(in);
	s->cwd = spw_get_str(in);
	s->flags = spw_get_u32(in);
	s->argv = read_strs(in, false);
	s->envp = read_strs(in, true);
	n = spw_get_u32(in);
	if (in->bad || n > SPW_FDS_MAX || (s->flags & ~ok) || !s->argv || !s->argv[0])
		return -EPROTO;
	for (uint32_t i = 0; i < n; i++) {
		int child = spw_get_i32(in), src = spw_get_i32(in);

		if (child < 0 || child > CHILD_FD_MAX ||
		    (src != SPW_FD_PASSED && src != SPW_FD_DEVNULL) ||
		    (src == SPW_FD_PASSED && passed == n_fds))
			return -EPROTO;
		s->map[s->n_map++] = (struct spawnproc_fd){
			src == SPW_FD_DEVNULL ? SPAWNPROC_DEVNULL : fds[passed++], child
		};
	}
	return spw_done(in) && passed == n_fds ? 0 : -EPROTO;
}

static const char *allowed_path(const char *name)
{
	for (size_t i = 0; i < sp.n_allow; i++)
		if (strcmp(sp.allow[i].name, name) == 0)
			return sp.allow[i].path;
	return NULL;
}

static void kid_exited_cb(struct loop_child *w, pid_t pid, int wstatus, void *arg);

static void start(const struct start *s, uint32_t id)
{
	const char *path = allowed_path(s->program);
	struct spawnproc_opts o = {
		.command = path,
		.argv = s->argv,
		.envp = s->envp,
		.fds = s->map,
		.n_fds = s->n_map,
		.cwd = *s->cwd ? s->cwd : NULL,
		.flags = s->flags,
	};
	char why[512];
	pid_t pid;
	int r;

	if (!path) {
		snprintf(why, sizeof(why), "'%s' is not a program this orchestrator may start "
			 "(only those environments.toml named at start-up, and found then)",
			 s->program);
		answer(id, -EPERM, why);
		return;
	}
	if (sp.n_kids == SPW_CHILDREN_MAX) {
		answer(id, -EAGAIN, "too many processes");
		return;
	}
	r = spawnproc_start(&o, &pid, why, sizeof(why));
	if (r < 0) {
		answer(id, r, why);
		return;
	}
	if (!loop_child_add(sp.loop, pid, kid_exited_cb, NULL)) {
		/* cannot happen short of a full table: do not leave it unwatched */
		kill(pid, SIGKILL);
		answer(id, -errno, "cannot watch the process");
		return;
	}
	sp.kids[sp.n_kids++] = (struct kid){ .pid = pid };
	log_debug("started %s as pid %d", path, (int)pid);
	answer(id, pid, NULL);
}

static int spawner_answer_start(struct spw_in *in, uint32_t id, const int *fds, size_t n_fds)
{
	struct start s = { 0 };
	int r = read_start(in, &s, fds, n_fds);

	if (r == 0)
		start(&s, id);
	free(s.argv);
	free(s.envp);
	return r;
}

/* ---- STOP and exits ---------------------------------------------------- */

static struct kid *find_kid(pid_t pid)
{
	for (size_t i = 0; i < sp.n_kids; i++)
		if (sp.kids[i].pid == pid)
			return &sp.kids[i];
	return NULL;
}

static void kill_cb(struct loop_timer *t, void *arg)
{
	struct kid *k = find_kid((pid_t)(intptr_t)arg);

	if (!k)
		return;
	k->kill_timer = NULL;
	kill(k->pid, SIGKILL);
}

/* SIGTERM now, SIGKILL after grace. The pid is ours and not reaped yet
 * (reaping happens only after kid_exited_cb), so it names this process. */
static void stop_kid(struct kid *k, unsigned grace_ms)
{
	kill(k->pid, SIGTERM);
	loop_timer_cancel(k->kill_timer);
	k->kill_timer = loop_timer_add(sp.loop, grace_ms, kill_cb, (void *)(intptr_t)k->pid);
}

static int spawner_answer_stop(struct spw_in *in, uint32_t id, const int *fds, size_t n_fds)
{
	pid_t pid = (pid_t)spw_get_u32(in);
	uint32_t grace = spw_get_u32(in);
	struct kid *k;

	if (!spw_done(in) || n_fds)
		return -EPROTO;
	k = find_kid(pid);
	if (k) /* else it exited already: its EXITED is on the way */
		stop_kid(k, MIN(grace, STOP_GRACE_MAX_MS));
	return 0;
}

/* The executors' socket directory: a directory per executor, each with its
 * socket (what env_spawn.c makes there); nothing deeper, no symlink
 * followed. */
static void remove_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		int sub;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		    unlinkat(dirfd(d), e->d_name, 0) == 0)
			continue;
		sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0) {
			unlinkat(sub, "link", 0);
			close(sub);
		}
		unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
	}
	if (d)
		closedir(d);
	rmdir(path);
}

/* Removes what was registered, if it is still the same file, and ends. */
static void finish(void)
{
	for (size_t i = 0; i < sp.n_rm; i++) {
		struct stat st;

		if (lstat(sp.rm[i].path, &st) < 0 || st.st_dev != sp.rm[i].dev ||
		    st.st_ino != sp.rm[i].ino)
			continue; /* gone, or someone else's now */
		if (sp.rm[i].dir)
			remove_dir(sp.rm[i].path);
		else
			unlink(sp.rm[i].path);
	}
	loop_stop(sp.loop);
}

static void kid_exited_cb(struct loop_child *w, pid_t pid, int wstatus, void *arg)
{
	struct kid *k = find_kid(pid);
	struct spw_out o = { 0 };

	if (!k)
		return;
	loop_timer_cancel(k->kill_timer);
	*k = sp.kids[--sp.n_kids];
	if (sp.closing) {
		if (sp.n_kids == 0)
			finish();
		return;
	}
	spw_begin(&o, SPW_EXITED, 0);
	spw_put_u32(&o, (uint32_t)pid);
	spw_put_i32(&o, wstatus);
	if (spw_send(sp.fd, &o, NULL, 0) < 0)
		begin_closing(1);
	spw_out_free(&o);
}

/* ---- the connection ---------------------------------------------------- */

/* SIGTERM was not enough: SIGKILL, and end after one more grace period
 * whatever is left (a process stuck in the kernel is not waited for). */
static void close_timeout_cb(struct loop_timer *t, void *arg)
{
	if (arg) {
		sp.close_timer = NULL;
		finish();
		return;
	}
	for (size_t i = 0; i < sp.n_kids; i++)
		kill(sp.kids[i].pid, SIGKILL);
	sp.close_timer = loop_timer_add(sp.loop, SPAWNER_STOP_GRACE_MS, close_timeout_cb,
					(void *)1);
}

/* The orchestrator is gone (or broke the protocol): stop everything. */
static void begin_closing(int code)
{
	if (sp.closing)
		return;
	sp.closing = true;
	sp.code = code;
	loop_io_del(sp.io);
	sp.io = NULL;
	sp.fd = safe_close(sp.fd);
	for (size_t i = 0; i < sp.n_kids; i++) {
		loop_timer_cancel(sp.kids[i].kill_timer);
		sp.kids[i].kill_timer = NULL;
		kill(sp.kids[i].pid, SIGTERM);
	}
	if (sp.n_kids == 0) {
		finish();
		return;
	}
	sp.close_timer = loop_timer_add(sp.loop, SPAWNER_STOP_GRACE_MS, close_timeout_cb, NULL);
}

typedef int (*answer_fn)(struct spw_in *in, uint32_t id, const int *fds, size_t n_fds);

static const struct {
	enum spw_type type;
	bool setup_only;
	answer_fn fn;
} table[] = {
	{ SPW_ALLOW, true, spawner_answer_allow },
	{ SPW_REMOVE_AT_EXIT, true, spawner_answer_remove_at_exit },
	{ SPW_SEAL, true, spawner_answer_seal },
	{ SPW_START, false, spawner_answer_start },
	{ SPW_STOP, false, spawner_answer_stop },
};

static int dispatch(size_t len, const int *fds, size_t n_fds)
{
	struct spw_in in;
	uint32_t type, id;

	spw_in_init(&in, sp.buf, len, &type, &id);
	for (size_t i = 0; i < ARRAY_SIZE(table); i++) {
		if (table[i].type != type)
			continue;
		if (table[i].setup_only && sp.sealed)
			return -EPERM;
		return table[i].fn(&in, id, fds, n_fds);
	}
	return -EPROTO;
}

static void readable_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	int fds[SPW_FDS_MAX];
	size_t n_fds;
	long n;
	int r;

	while (!sp.closing) {
		n = spw_recv(sp.fd, sp.buf, fds, &n_fds, true);
		r = n > 0 ? dispatch((size_t)n, fds, n_fds) : 0;
		for (size_t i = 0; i < n_fds; i++)
			close(fds[i]);
		if (n == -EAGAIN)
			return;
		if (n == 0) { /* the orchestrator is gone */
			begin_closing(0);
			return;
		}
		if (n < 0 || r < 0) {
			log_error("the orchestrator broke the spawner's protocol (%s): stopping "
				  "everything", r == -EPERM ? "a setup request after the seal"
							    : "a malformed or unknown request");
			begin_closing(1);
			return;
		}
	}
}

/* ---- the process ------------------------------------------------------- */

extern char **environ;

/* The environment it was forked with (the orchestrator's start-up block,
 * which /proc/PID/environ shows) is wiped and cleared: it needs only PATH,
 * to find the programs it is allowed. */
static void drop_environment(void)
{
	const char *path = getenv("PATH");

	sp.path_env[0] = xasprintf("PATH=%s", path ? path : SPAWNPROC_DEFAULT_PATH);
	for (char **e = environ; e && *e; e++)
		secure_wipe(*e, strlen(*e));
	clearenv();
}

/* What the spawner keeps of the orchestrator: its socket, stderr (logs),
 * and nothing secret. */
static void become_spawner(int sock)
{
	enum log_level lvl = log_get_level();
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	secret_env_release_all();
	drop_environment();
	prctl(PR_SET_NAME, "tandem-spawner");
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	if (null >= 0) { /* stdout may be the client API, stdin its requests */
		dup2(null, 0);
		dup2(null, 1);
		close(null);
	}
	if (sock > 3)
		syscall(SYS_close_range, 3u, (unsigned)sock - 1, 0u);
	syscall(SYS_close_range, (unsigned)sock + 1, ~0u, 0u);
	log_init("tandem-spawner", lvl);
	log_set_level(lvl);
}

_Noreturn void spawner_proc_main(int sock)
{
	become_spawner(sock);
	sp.fd = sock;
	sp.buf = xmalloc(SPW_MSG_MAX);
	sp.loop = loop_new();
	if (!sp.loop || !(sp.io = loop_io_add(sp.loop, sock, LOOP_READ, readable_cb, NULL)))
		_exit(1);
	loop_run(sp.loop);
	_exit(sp.code);
}
