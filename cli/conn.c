/* conn.c - see conn.h. */
#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jsonutil.h"
#include "linebuf.h"
#include "spawnproc.h"
#include "util.h"

extern char **environ;

/* A private orchestrator gets this long to exit after its stdin closed (it
 * stops its executors, which give MCP servers 2 s after SIGTERM), then this
 * long after SIGTERM. */
#define CONN_EXIT_GRACE_MS 5000
#define CONN_TERM_GRACE_MS 3000

struct pending {
	struct pending *next;
	int64_t id;
	conn_reply_cb cb;
	void *arg;
};

struct conn {
	int rfd, wfd;  /* one socket twice, or the child's stdout and stdin */
	pid_t pid;     /* the private orchestrator, or 0 */
	struct linebuf lb;
	int64_t next_id;
	struct pending *pending;
	conn_notify_cb notify_cb;
	void *notify_arg;
	char *error;   /* set once the connection is over */
	int dead;      /* -errno once the connection is over */
};

/* ---- signals ------------------------------------------------------------ */

static const int conn_sigs[] = { SIGINT, SIGTERM, SIGHUP };
static volatile sig_atomic_t conn_last_signal;
static sigset_t conn_orig_mask;
static struct sigaction conn_orig_act[ARRAY_SIZE(conn_sigs)], conn_orig_pipe;
static bool conn_signals_caught;

static void conn_signal_handler(int signo)
{
	conn_last_signal = signo;
}

void conn_catch_signals(void)
{
	struct sigaction sa = { .sa_handler = conn_signal_handler }; /* no SA_RESTART */
	struct sigaction ign = { .sa_handler = SIG_IGN };
	sigset_t block;

	sigemptyset(&block);
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < ARRAY_SIZE(conn_sigs); i++) {
		sigaddset(&block, conn_sigs[i]);
		sigaction(conn_sigs[i], &sa, &conn_orig_act[i]);
	}
	sigaction(SIGPIPE, &ign, &conn_orig_pipe);
	sigprocmask(SIG_BLOCK, &block, &conn_orig_mask);
	conn_signals_caught = true;
}

void conn_restore_signals(void)
{
	if (!conn_signals_caught)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(conn_sigs); i++)
		sigaction(conn_sigs[i], &conn_orig_act[i], NULL);
	sigaction(SIGPIPE, &conn_orig_pipe, NULL);
	sigprocmask(SIG_SETMASK, &conn_orig_mask, NULL);
	conn_signals_caught = false;
}

int conn_take_signal(void)
{
	int s = conn_last_signal;

	conn_last_signal = 0;
	return s;
}

/* Waits for fd to become readable. 1 readable (or hung up), 0 timeout,
 * -EINTR on a signal, -errno. */
static int wait_readable(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	struct timespec ts = { .tv_sec = timeout_ms / 1000,
			       .tv_nsec = (long)(timeout_ms % 1000) * 1000000L };
	int r;

	if (conn_last_signal)
		return -EINTR; /* not taken yet: it keeps ending waits until it is */
	r = ppoll(&p, 1, timeout_ms < 0 ? NULL : &ts, conn_signals_caught ? &conn_orig_mask : NULL);
	if (r < 0)
		return -errno;
	return r > 0 ? 1 : 0;
}

/* ---- opening and closing ------------------------------------------------ */

static struct conn *conn_alloc(int rfd, int wfd, pid_t pid)
{
	struct conn *c = xcalloc(1, sizeof(*c));

	c->rfd = rfd;
	c->wfd = wfd;
	c->pid = pid;
	c->next_id = 1;
	linebuf_init(&c->lb, CONN_MAX_LINE);
	return c;
}

int conn_open_unix(const char *path, struct conn **out, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		snprintf(err, errlen, "cannot connect to the orchestrator at %s: %s", path,
			 strerror(e));
		return -e;
	}
	*out = conn_alloc(fd, fd, 0);
	TAKE_FD(fd);
	return 0;
}

int conn_open_spawn(char *const argv[], struct conn **out, char *err, size_t errlen)
{
	int in[2] = { -1, -1 }, outp[2] = { -1, -1 }, r;
	struct spawnproc_fd fds[] = { { -1, 0 }, { -1, 1 }, { 2, 2 } };
	struct spawnproc_opts o = {
		.command = argv[0],
		.argv = (const char *const *)argv,
		.fds = fds,
		.n_fds = ARRAY_SIZE(fds),
		/* Its own process group: terminal Ctrl-C is ours to handle. */
		.flags = SPAWNPROC_SEARCH_PATH | SPAWNPROC_NEW_PGROUP,
		.sigmask = conn_signals_caught ? &conn_orig_mask : NULL,
	};
	char why[512];
	pid_t pid;

	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(outp, O_CLOEXEC) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot start %s: %s", argv[0], strerror(-r));
		goto out;
	}
	fds[0].fd = in[0];
	fds[1].fd = outp[1];
	/* A failed exec is reported here, synchronously (spawnproc.h). */
	r = spawnproc_start(&o, &pid, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "cannot start %s: %s", argv[0],
			 r == -ENOENT || r == -EACCES ? strerror(-r) : why);
		goto out;
	}
	*out = conn_alloc(outp[0], in[1], pid);
	in[1] = outp[0] = -1;
out:
	safe_close(in[0]);
	safe_close(in[1]);
	safe_close(outp[0]);
	safe_close(outp[1]);
	return r;
}

/* Reaps pid within ms milliseconds. 1 reaped (*status set), 0 still running. */
static int reap(pid_t pid, int ms, int *status)
{
	const struct timespec tick = { .tv_nsec = 10 * 1000000L };

	for (int waited = 0;; waited += 10) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid || (r < 0 && errno == ECHILD))
			return 1;
		if (waited >= ms)
			return 0;
		nanosleep(&tick, NULL);
	}
}

static void stop_private(struct conn *c)
{
	int status;

	c->wfd = safe_close(c->wfd); /* stdio EOF: the daemon stops cleanly */
	if (!reap(c->pid, CONN_EXIT_GRACE_MS, &status)) {
		kill(c->pid, SIGTERM);
		if (!reap(c->pid, CONN_TERM_GRACE_MS, &status)) {
			kill(-c->pid, SIGKILL);
			kill(c->pid, SIGKILL);
			reap(c->pid, 1000000, &status);
		}
	}
	c->pid = 0;
}

struct conn *conn_close(struct conn *c)
{
	if (!c)
		return NULL;
	while (c->pending) {
		struct pending *p = c->pending;

		c->pending = p->next;
		if (p->cb)
			p->cb(NULL, NULL, p->arg);
		free(p);
	}
	if (c->pid > 0)
		stop_private(c);
	if (c->wfd != c->rfd)
		safe_close(c->wfd);
	safe_close(c->rfd);
	linebuf_free(&c->lb);
	free(c->error);
	free(c);
	return NULL;
}

/* ---- the end of a connection -------------------------------------------- */

static int conn_fail(struct conn *c, int r, const char *why)
{
	int status;

	if (c->dead)
		return c->dead;
	c->dead = r;
	/* A private orchestrator that went away usually said why on stderr; its
	 * exit status completes the story. */
	if (c->pid > 0 && reap(c->pid, 2000, &status)) {
		c->pid = 0;
		if (WIFEXITED(status))
			c->error = xasprintf("the orchestrator exited with status %d",
					     WEXITSTATUS(status));
		else if (WIFSIGNALED(status))
			c->error = xasprintf("the orchestrator was killed by signal %d",
					     WTERMSIG(status));
	}
	if (!c->error)
		c->error = xstrdup(why);
	return r;
}

const char *conn_error(const struct conn *c)
{
	return c->error;
}

int conn_is_private(const struct conn *c)
{
	return c->pid > 0;
}

/* ---- writing ------------------------------------------------------------ */

static int conn_send(struct conn *c, json_t *msg)
{
	char *s = jsonu_dumps(msg);
	size_t n;
	int r;

	json_decref(msg);
	if (!s)
		return -EINVAL;
	if (c->dead) {
		free(s);
		return c->dead;
	}
	n = strlen(s);
	s[n] = '\n'; /* replaces the NUL: the length is known */
	r = write_all(c->wfd, s, n + 1);
	free(s);
	if (r < 0) {
		char why[128];

		snprintf(why, sizeof(why), "cannot write to the orchestrator: %s", strerror(-r));
		return conn_fail(c, r, why);
	}
	return 0;
}

int64_t conn_request(struct conn *c, const char *method, json_t *params, conn_reply_cb cb,
		     void *arg)
{
	int64_t id = c->next_id++;
	json_t *msg = json_pack("{s:I, s:s}", "id", (json_int_t)id, "method", method);
	struct pending *p;
	int r;

	if (params)
		json_object_set_new(msg, "params", params);
	r = conn_send(c, msg);
	if (r < 0)
		return r;
	p = xcalloc(1, sizeof(*p));
	p->id = id;
	p->cb = cb;
	p->arg = arg;
	p->next = c->pending;
	c->pending = p;
	return id;
}

int conn_notify(struct conn *c, const char *method, json_t *params)
{
	json_t *msg = json_pack("{s:s}", "method", method);

	if (params)
		json_object_set_new(msg, "params", params);
	return conn_send(c, msg);
}

static struct pending *take_pending(struct conn *c, int64_t id)
{
	for (struct pending **pp = &c->pending; *pp; pp = &(*pp)->next) {
		if ((*pp)->id == id) {
			struct pending *p = *pp;

			*pp = p->next;
			return p;
		}
	}
	return NULL;
}

void conn_forget(struct conn *c, int64_t id)
{
	free(take_pending(c, id));
}

size_t conn_pending(const struct conn *c)
{
	size_t n = 0;

	for (const struct pending *p = c->pending; p; p = p->next)
		n += p->cb != NULL;
	return n;
}

/* ---- reading ------------------------------------------------------------ */

static void dispatch_reply(struct conn *c, json_t *msg)
{
	json_t *id = json_object_get(msg, "id");
	json_t *error = json_object_get(msg, "error");
	struct pending *p;

	if (!json_is_integer(id))
		return; /* not one of ours: we only send integer ids */
	p = take_pending(c, json_integer_value(id));
	if (!p)
		return;
	if (p->cb) {
		if (error && !json_is_null(error)) {
			p->cb(NULL, error, p->arg);
		} else {
			json_t *result = json_object_get(msg, "result");

			p->cb(result ? result : json_null(), NULL, p->arg);
		}
	}
	free(p);
}

static int handle_line(struct conn *c, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *msg;
	const char *method;

	if (len == 0)
		return 0;
	msg = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(msg)) {
		json_decref(msg);
		return conn_fail(c, -EPROTO, "the orchestrator sent a line that is not a JSON object");
	}
	method = json_string_value(json_object_get(msg, "method"));
	if (method) {
		/* We answer no server->client requests; they carry an id. */
		if (!json_object_get(msg, "id") && c->notify_cb)
			c->notify_cb(method, json_object_get(msg, "params"), c->notify_arg);
	} else {
		dispatch_reply(c, msg);
	}
	json_decref(msg);
	return 0;
}

/* Handles every complete buffered line. Returns how many, or -errno. */
static int drain_lines(struct conn *c)
{
	const char *line;
	size_t len;
	int n = 0, r;

	while (!c->dead && (r = linebuf_next(&c->lb, &line, &len)) != 0) {
		if (r < 0)
			return conn_fail(c, r, "the orchestrator sent a line that is too long");
		r = handle_line(c, line, len);
		if (r < 0)
			return r;
		n++;
	}
	return c->dead ? c->dead : n;
}

int conn_pump(struct conn *c, int timeout_ms)
{
	ssize_t n;
	int r;

	r = drain_lines(c);
	if (r != 0)
		return r < 0 ? r : 0;
	r = wait_readable(c->rfd, timeout_ms);
	if (r <= 0)
		return r;
	n = linebuf_read(&c->lb, c->rfd);
	if (n == -EAGAIN || n == -EINTR)
		return 0;
	if (n == 0)
		return conn_fail(c, -ECONNRESET, "the orchestrator closed the connection");
	if (n < 0) {
		char why[128];

		snprintf(why, sizeof(why), "cannot read from the orchestrator: %s",
			 strerror((int)-n));
		return conn_fail(c, (int)n, why);
	}
	r = drain_lines(c);
	return r < 0 ? r : 0;
}

struct sync_wait {
	bool done;
	json_t *result, *error;
};

static void sync_cb(json_t *result, json_t *error, void *arg)
{
	struct sync_wait *w = arg;

	w->done = true;
	w->result = json_incref(result);
	w->error = json_incref(error);
}

int conn_call(struct conn *c, const char *method, json_t *params, json_t **result,
	      json_t **error)
{
	struct sync_wait w = { 0 };
	int64_t id = conn_request(c, method, params, sync_cb, &w);
	int r = 0;

	if (id < 0)
		return (int)id;
	while (!w.done) {
		r = conn_pump(c, -1);
		if (r < 0) {
			conn_forget(c, id); /* w lives on this stack frame */
			return r;
		}
	}
	if (!w.result && !w.error)
		return c->dead ? c->dead : -ECONNRESET;
	*result = w.result;
	*error = w.error;
	return 0;
}

void conn_set_notify(struct conn *c, conn_notify_cb cb, void *arg)
{
	c->notify_cb = cb;
	c->notify_arg = arg;
}
