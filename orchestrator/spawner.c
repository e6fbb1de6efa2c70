/* spawner.c - the orchestrator's side of the spawner: forking it, the
 * requests (spawner_<request> sends, spawner_proc.c's spawner_answer_<request>
 * handles), and the exits it reports. See spawner.h. */
#include "spawner.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "spawner_int.h"
#include "spawnproc.h"
#include "util.h"

struct watch {
	pid_t pid;
	spawner_exit_cb cb;
	void *arg;
};

struct exited {
	pid_t pid;
	int wstatus;
};

static struct {
	int fd;		/* our end of the socketpair; -1: none */
	pid_t pid;	/* the spawner; 0: none (or reaped) */
	uint32_t next_id;
	struct loop *loop;
	struct loop_io *io;
	struct loop_child *self_watch;
	struct loop_timer *flush_timer;
	struct watch *w;
	size_t n_w, cap_w;
	/* exits that came while we waited for an answer, delivered from the loop */
	struct exited q[SPW_CHILDREN_MAX];
	size_t n_q;
	uint8_t *buf;	/* SPW_MSG_MAX */
} spw = { .fd = -1 };

pid_t spawner_pid(void) { return spw.pid; }

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int spawner_fork(char *err, size_t errlen)
{
	int sv[2];
	pid_t pid;

	if (spw.fd >= 0)
		return -EALREADY;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		set_err(err, errlen, "cannot make the spawner's socket: %s", strerror(errno));
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		set_err(err, errlen, "cannot fork the spawner: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return -errno;
	}
	if (pid == 0) {
		close(sv[0]);
		spawner_proc_main(sv[1]);
	}
	close(sv[1]);
	spw.fd = sv[0];
	spw.pid = pid;
	spw.buf = xmalloc(SPW_MSG_MAX);
	return 0;
}

/* ---- exits ------------------------------------------------------------- */

static void deliver(pid_t pid, int wstatus)
{
	for (size_t i = 0; i < spw.n_w; i++) {
		struct watch w = spw.w[i];

		if (w.pid != pid)
			continue;
		spw.w[i] = spw.w[--spw.n_w];
		w.cb(pid, wstatus, w.arg);
		return;
	}
}

static void flush_cb(struct loop_timer *t, void *arg)
{
	spw.flush_timer = NULL;
	while (spw.n_q) {
		struct exited x = spw.q[0];

		memmove(spw.q, spw.q + 1, --spw.n_q * sizeof(spw.q[0]));
		deliver(x.pid, x.wstatus);
	}
}

static void queue_exit(pid_t pid, int wstatus)
{
	if (spw.n_q < SPW_CHILDREN_MAX)
		spw.q[spw.n_q++] = (struct exited){ pid, wstatus };
	if (spw.loop && !spw.flush_timer)
		spw.flush_timer = loop_timer_add(spw.loop, 0, flush_cb, NULL);
}

/* The spawner broke off (died, or sent what it never sends). */
static void lost(const char *why)
{
	if (spw.fd < 0)
		return;
	log_error("the spawner %s: spawned environments cannot be restarted", why);
	loop_io_del(spw.io);
	spw.io = NULL;
	spw.fd = safe_close(spw.fd);
}

/* Reads one message; an EXITED is queued. Returns the length of an ANSWER
 * (in spw.buf), 0 after an EXITED, or -errno (-EAGAIN: nothing there). */
static long read_one(bool dontwait, uint32_t *id)
{
	int fds[SPW_FDS_MAX];
	size_t n_fds;
	struct spw_in in;
	uint32_t type;
	long r = spw_recv(spw.fd, spw.buf, fds, &n_fds, dontwait);

	for (size_t i = 0; i < n_fds; i++)
		close(fds[i]); /* the spawner sends none */
	if (r == -EAGAIN)
		return r;
	if (r <= 0) {
		lost(r == 0 ? "closed its socket" : "cannot be read from");
		return r == 0 ? -EPIPE : r;
	}
	spw_in_init(&in, spw.buf, (size_t)r, &type, id);
	if (type == SPW_EXITED) {
		pid_t pid = (pid_t)spw_get_u32(&in);
		int ws = spw_get_i32(&in);

		if (!spw_done(&in) || n_fds) {
			lost("sent a malformed message");
			return -EPROTO;
		}
		queue_exit(pid, ws);
		return 0;
	}
	if (type != SPW_ANSWER || n_fds) {
		lost("sent a message it never sends");
		return -EPROTO;
	}
	return r;
}

static void readable_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	uint32_t id;
	long r;

	while ((r = read_one(true, &id)) >= 0)
		if (r > 0)
			log_warn("the spawner answered request %u, which nobody waits for", id);
}

/* ---- requests ---------------------------------------------------------- */

/* Sends o (with fds) and waits for its answer: 0 or the START pid in
 * *result, or the spawner's -errno and reason. */
static int request(struct spw_out *o, uint32_t id, const int *fds, size_t n_fds, int *result,
		   char *err, size_t errlen)
{
	uint64_t deadline = now_ms() + SPW_ANSWER_MS;
	struct spw_in in;
	uint32_t type, got;
	long n;
	int r;

	if (spw.fd < 0) {
		set_err(err, errlen, "the spawner is not running");
		return -ENOTCONN;
	}
	r = spw_send(spw.fd, o, fds, n_fds);
	if (r < 0) {
		set_err(err, errlen, "cannot reach the spawner: %s", strerror(-r));
		return r;
	}
	for (;;) {
		struct pollfd p = { .fd = spw.fd, .events = POLLIN };
		uint64_t now = now_ms();

		if (now >= deadline || poll(&p, 1, (int)(deadline - now)) == 0) {
			lost("did not answer in time");
			set_err(err, errlen, "the spawner did not answer");
			return -ETIMEDOUT;
		}
		n = read_one(false, &got);
		if (n < 0 && n != -EAGAIN) {
			set_err(err, errlen, "the spawner is gone");
			return (int)n;
		}
		if (n > 0 && got == id)
			break;
	}
	spw_in_init(&in, spw.buf, (size_t)n, &type, &got);
	*result = spw_get_i32(&in);
	if (*result < 0) {
		const char *why = spw_get_str(&in);

		set_err(err, errlen, "%s", why ? why : strerror(-*result));
		return *result;
	}
	return 0;
}

static int simple(enum spw_type type, const char *arg, char *err, size_t errlen)
{
	struct spw_out o = { 0 };
	int result, r;

	spw_begin(&o, type, ++spw.next_id);
	if (arg)
		spw_put_str(&o, arg);
	r = request(&o, spw.next_id, NULL, 0, &result, err, errlen);
	spw_out_free(&o);
	return r;
}

int spawner_allow(const char *program, char *err, size_t errlen)
{
	return simple(SPW_ALLOW, program, err, errlen);
}

int spawner_remove_at_exit(const char *path, char *err, size_t errlen)
{
	return simple(SPW_REMOVE_AT_EXIT, path, err, errlen);
}

int spawner_seal(char *err, size_t errlen) { return simple(SPW_SEAL, NULL, err, errlen); }

static size_t count(const char *const *v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

static int check_opts(const struct spawnproc_opts *o, char *err, size_t errlen)
{
	const unsigned ok = SPAWNPROC_NEW_PGROUP | SPAWNPROC_NEW_SESSION | SPAWNPROC_PDEATHSIG |
			    SPAWNPROC_SEARCH_PATH;

	if (!o->command || !o->argv || !o->argv[0] || !o->envp || o->n_fds > SPW_FDS_MAX ||
	    o->cwd_fd > 0 || o->namespaces || o->sigmask || o->hook || o->report_fd ||
	    (o->flags & ~ok) || count(o->argv) > SPW_STRS_MAX || count(o->envp) > SPW_STRS_MAX) {
		set_err(err, errlen, "a start request the spawner does not take");
		return -EINVAL;
	}
	return 0;
}

static void put_start(struct spw_out *m, const struct spawnproc_opts *o, int *fds, size_t *n)
{
	spw_begin(m, SPW_START, ++spw.next_id);
	spw_put_str(m, o->command);
	spw_put_str(m, o->cwd ? o->cwd : "");
	spw_put_u32(m, o->flags & ~(unsigned)SPAWNPROC_SEARCH_PATH); /* resolved at ALLOW */
	spw_put_u32(m, (uint32_t)count(o->argv));
	for (size_t i = 0; o->argv[i]; i++)
		spw_put_str(m, o->argv[i]);
	spw_put_u32(m, (uint32_t)count(o->envp));
	for (size_t i = 0; o->envp[i]; i++)
		spw_put_str(m, o->envp[i]);
	spw_put_u32(m, (uint32_t)o->n_fds);
	*n = 0;
	for (size_t i = 0; i < o->n_fds; i++) {
		bool null = o->fds[i].fd == SPAWNPROC_DEVNULL;

		spw_put_i32(m, o->fds[i].child_fd);
		spw_put_i32(m, null ? SPW_FD_DEVNULL : SPW_FD_PASSED);
		if (!null)
			fds[(*n)++] = o->fds[i].fd;
	}
}

int spawner_start(const struct spawnproc_opts *o, spawner_exit_cb cb, void *arg, pid_t *pid,
		  char *err, size_t errlen)
{
	struct spw_out m = { 0 };
	int fds[SPW_FDS_MAX], result, r;
	size_t n;

	if ((r = check_opts(o, err, errlen)) < 0)
		return r;
	put_start(&m, o, fds, &n);
	r = request(&m, spw.next_id, fds, n, &result, err, errlen);
	spw_out_free(&m);
	if (r < 0)
		return r;
	if (spw.n_w == spw.cap_w) {
		spw.cap_w = spw.cap_w ? 2 * spw.cap_w : 8;
		spw.w = xrealloc(spw.w, spw.cap_w * sizeof(*spw.w));
	}
	spw.w[spw.n_w++] = (struct watch){ (pid_t)result, cb, arg };
	*pid = (pid_t)result;
	return 0;
}

void spawner_stop(pid_t pid, unsigned grace_ms)
{
	struct spw_out m = { 0 };

	for (size_t i = 0; i < spw.n_w; i++)
		if (spw.w[i].pid == pid)
			spw.w[i--] = spw.w[--spw.n_w];
	if (spw.fd < 0 || pid <= 0)
		return;
	spw_begin(&m, SPW_STOP, 0);
	spw_put_u32(&m, (uint32_t)pid);
	spw_put_u32(&m, grace_ms);
	if (spw_send(spw.fd, &m, NULL, 0) < 0)
		lost("cannot be written to");
	spw_out_free(&m);
}

/* ---- the spawner itself -------------------------------------------------- */

static void spawner_died_cb(struct loop_child *w, pid_t pid, int wstatus, void *arg)
{
	char why[96];

	spw.self_watch = NULL;
	spw.pid = 0;
	if (WIFSIGNALED(wstatus))
		snprintf(why, sizeof(why), "was killed by signal %d", WTERMSIG(wstatus));
	else
		snprintf(why, sizeof(why), "exited with status %d", WEXITSTATUS(wstatus));
	if (spw.fd < 0)
		log_debug("the spawner %s", why);
	lost(why);
}

int spawner_attach(struct loop *l)
{
	spw.loop = l;
	if (spw.fd < 0)
		return -ENOTCONN;
	spw.io = loop_io_add(l, spw.fd, LOOP_READ, readable_cb, NULL);
	spw.self_watch = loop_child_add(l, spw.pid, spawner_died_cb, NULL);
	if (!spw.io || !spw.self_watch)
		return -errno;
	if (spw.n_q)
		spw.flush_timer = loop_timer_add(l, 0, flush_cb, NULL);
	return 0;
}

void spawner_shutdown(unsigned wait_ms)
{
	uint64_t deadline = now_ms() + wait_ms;
	siginfo_t si;

	loop_io_del(spw.io);
	spw.io = NULL;
	loop_timer_cancel(spw.flush_timer);
	spw.flush_timer = NULL;
	loop_child_del(spw.self_watch); /* we reap it below */
	spw.self_watch = NULL;
	spw.fd = safe_close(spw.fd); /* EOF: the spawner stops what it started */
	while (spw.pid > 0) {
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)spw.pid, &si, WEXITED | WNOHANG) < 0 || si.si_pid) {
			spw.pid = 0;
			break;
		}
		if (now_ms() >= deadline) {
			log_warn("the spawner (pid %d) has not finished stopping the executors; "
				 "leaving it to do so", (int)spw.pid);
			break;
		}
		usleep(5 * 1000);
	}
	free(spw.w);
	free(spw.buf);
	spw.w = NULL;
	spw.buf = NULL;
	spw.n_w = spw.cap_w = spw.n_q = 0;
}
