/* procs.c - the executor's live stdio MCP processes.
 *
 * Each process has a handle the executor picks (never reused while the
 * executor runs), so a reconnecting orchestrator can re-attach to it. While
 * no authenticated peer holds a process ("detached"), its stdout lines are
 * kept up to EXEC_DETACHED_BUFFER bytes for the re-attach, and a grace timer
 * stops whatever was not re-attached when it expires.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "child.h"
#include "executor.h"
#include "log.h"
#include "loop.h"
#include "util.h"

struct held_line {
	struct held_line *next;
	size_t len;
	char data[];
};

struct proc {
	struct proc *next;
	struct executor *ex;
	uint64_t handle;
	char *name;
	struct child *child;
	bool detached;
	struct held_line *held, **held_tail;
	size_t held_bytes;
	uint32_t held_dropped;
	double stderr_tokens;
	uint64_t stderr_refill_ms;
	uint32_t stderr_dropped;
	char *fail_reason; /* set when the executor killed it on purpose */
};

/* The environment a server gets on top of a cleared one (DESIGN-NOTES §3). */
static const char *const default_env[] = { "HOME", "LOGNAME", "PATH", "SHELL", "USER",
					   "LANG", "LC_ALL", "TERM", "TMPDIR", "TZ" };

static struct proc *proc_find(struct executor *ex, uint64_t handle)
{
	for (struct proc *p = ex->procs; p; p = p->next)
		if (p->handle == handle)
			return p;
	return NULL;
}

static void proc_unlink(struct executor *ex, struct proc *p)
{
	for (struct proc **pp = &ex->procs; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	ex->n_procs--;
	if (p->detached)
		ex->n_detached--;
}

static void held_clear(struct proc *p)
{
	while (p->held) {
		struct held_line *h = p->held;

		p->held = h->next;
		free(h);
	}
	p->held_tail = &p->held;
	p->held_bytes = 0;
}

static void proc_free(struct proc *p)
{
	held_clear(p);
	child_free(p->child);
	free(p->fail_reason);
	free(p->name);
	free(p);
}

static void send_line(struct proc *p, const char *line, size_t len)
{
	struct proto_mcp_output_body ev = { .handle = p->handle };

	ev.data.ptr = line;
	ev.data.len = (uint32_t)len;
	if (listener_send(p->ex, PROTO_MCP_OUTPUT, PROTO_EVENT, 0, &ev) < 0)
		log_warn("%s[%llu]: output line of %zu bytes lost", p->name,
			 (unsigned long long)p->handle, len);
}

static void proc_line_cb(struct child *c, const char *line, size_t len, void *arg)
{
	struct proc *p = arg;
	struct held_line *h;

	if (!p->detached) {
		send_line(p, line, len);
		return;
	}
	if (p->held_bytes + len > EXEC_DETACHED_BUFFER) {
		p->held_dropped++;
		return;
	}
	h = xmalloc(sizeof(*h) + len);
	h->next = NULL;
	h->len = len;
	memcpy(h->data, line, len);
	*p->held_tail = h;
	p->held_tail = &h->next;
	p->held_bytes += len;
}

/* Token bucket: stderr can be chatty (npm, node warnings); the link and the
 * log must not drown in it. */
static bool stderr_allowed(struct proc *p)
{
	uint64_t now = loop_now_ms(p->ex->loop);

	p->stderr_tokens += (double)(now - p->stderr_refill_ms) * EXEC_STDERR_RATE / 1000.0;
	if (p->stderr_tokens > EXEC_STDERR_BURST)
		p->stderr_tokens = EXEC_STDERR_BURST;
	p->stderr_refill_ms = now;
	if (p->stderr_tokens < 1.0)
		return false;
	p->stderr_tokens -= 1.0;
	return true;
}

static void proc_stderr_cb(struct child *c, const char *line, size_t len, void *arg)
{
	struct proc *p = arg;
	struct proto_mcp_stderr_body ev = { .handle = p->handle };

	if (!stderr_allowed(p)) {
		p->stderr_dropped++;
		return;
	}
	log_info("%s[%llu] stderr: %.*s", p->name, (unsigned long long)p->handle,
		 (int)MIN(len, 512u), line);
	if (p->detached)
		return;
	ev.line.ptr = line;
	ev.line.len = (uint32_t)len;
	ev.dropped = p->stderr_dropped;
	PROTO_MARK(&ev, mcp_stderr_body, dropped);
	if (listener_send(p->ex, PROTO_MCP_STDERR, PROTO_EVENT, 0, &ev) == 0)
		p->stderr_dropped = 0;
}

static void proc_exit_cb(struct child *c, int wstatus, const char *reason, void *arg)
{
	struct proc *p = arg;
	struct executor *ex = p->ex;
	struct proto_mcp_exited_body ev = { .handle = p->handle, .exit_code = -1 };

	log_info("%s[%llu] pid %d: %s", p->name, (unsigned long long)p->handle, (int)child_pid(c),
		 reason);
	if (WIFEXITED(wstatus))
		ev.exit_code = WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		ev.signal = (uint32_t)WTERMSIG(wstatus);
	PROTO_MARK(&ev, mcp_exited_body, exit_code);
	PROTO_MARK(&ev, mcp_exited_body, signal);
	ev.reason = proto_str_c(p->fail_reason ? p->fail_reason : reason);
	if (!p->detached)
		listener_send(ex, PROTO_MCP_EXITED, PROTO_EVENT, 0, &ev);
	proc_unlink(ex, p);
	proc_free(p);
	if (ex->n_detached == 0 && ex->grace_timer) {
		loop_timer_cancel(ex->grace_timer);
		ex->grace_timer = NULL;
	}
}

static const struct child_ops proc_ops = {
	.line_cb = proc_line_cb,
	.stderr_cb = proc_stderr_cb,
	.exit_cb = proc_exit_cb,
};

static bool clean_str(struct proto_str s)
{
	return s.len == 0 || memchr(s.ptr, '\0', s.len) == NULL; /* an absent field is NULL */
}

/* Sets NAME=value in env (replacing an earlier NAME). */
static void env_set(char **env, size_t *n, const char *name, size_t nlen, const char *val,
		    size_t vlen)
{
	char *kv = xmalloc(nlen + vlen + 2);

	memcpy(kv, name, nlen);
	kv[nlen] = '=';
	memcpy(kv + nlen + 1, val, vlen);
	kv[nlen + 1 + vlen] = '\0';
	for (size_t i = 0; i < *n; i++) {
		if (strncmp(env[i], kv, nlen + 1) == 0) {
			free(env[i]);
			env[i] = kv;
			return;
		}
	}
	env[(*n)++] = kv;
}

static bool env_name_ok(struct proto_str s)
{
	return s.len > 0 && clean_str(s) && !memchr(s.ptr, '=', s.len);
}

/* Cleared environment + defaults + env_vars resolved here + literal env. */
static char **build_env(const struct proto_mcp_start_body *b, char *err, size_t errlen)
{
	size_t cap = ARRAY_SIZE(default_env) + b->env_vars.n + b->env.n + 1, n = 0;
	char **env = xcalloc(cap, sizeof(*env));

	for (size_t i = 0; i < ARRAY_SIZE(default_env); i++) {
		const char *v = getenv(default_env[i]);

		if (v)
			env_set(env, &n, default_env[i], strlen(default_env[i]), v, strlen(v));
	}
	for (uint32_t i = 0; i < b->env_vars.n; i++) {
		_cleanup_free_ char *name = proto_str_dup(b->env_vars.items[i]);
		const char *v;

		if (!env_name_ok(b->env_vars.items[i])) {
			snprintf(err, errlen, "env_vars[%u]: invalid variable name", i);
			goto bad;
		}
		v = getenv(name);
		if (v) /* an unset variable is simply not passed, as in Codex */
			env_set(env, &n, name, strlen(name), v, strlen(v));
	}
	for (uint32_t i = 0; i < b->env.n; i++) {
		if (!env_name_ok(b->env.keys[i]) || !clean_str(b->env.vals[i])) {
			snprintf(err, errlen, "env: invalid entry %u", i);
			goto bad;
		}
		env_set(env, &n, b->env.keys[i].ptr, b->env.keys[i].len, b->env.vals[i].ptr,
			b->env.vals[i].len);
	}
	return env;
bad:
	for (size_t i = 0; i < n; i++)
		free(env[i]);
	free(env);
	return NULL;
}

static char **build_argv(const struct proto_mcp_start_body *b, char *err, size_t errlen)
{
	char **argv = xcalloc((size_t)b->args.n + 2, sizeof(*argv));

	argv[0] = proto_str_dup(b->command);
	for (uint32_t i = 0; i < b->args.n; i++) {
		if (!clean_str(b->args.items[i])) {
			snprintf(err, errlen, "args[%u] contains a NUL byte", i);
			strv_free(argv);
			return NULL;
		}
		argv[i + 1] = proto_str_dup(b->args.items[i]);
	}
	return argv;
}

int procs_start(struct executor *ex, const struct proto_mcp_start_body *b, uint64_t *handle,
		uint32_t *pid, int32_t *status, char *err, size_t errlen)
{
	_cleanup_free_ char *cwd = NULL;
	char **argv = NULL, **envp = NULL;
	struct child_spec spec = { 0 };
	struct proc *p;
	int r = -EINVAL;

	*status = PROTO_E_BAD_REQUEST;
	if (ex->n_procs >= ex->opts.max_procs) {
		*status = PROTO_E_LIMIT;
		snprintf(err, errlen, "process cap of %u reached on executor '%s'",
			 ex->opts.max_procs, ex->opts.id);
		return -EMFILE;
	}
	if (b->command.len == 0 || !clean_str(b->command) || !clean_str(b->cwd) ||
	    !clean_str(b->server_name)) {
		snprintf(err, errlen, "command, cwd and server_name must be non-empty text");
		return -EINVAL;
	}
	argv = build_argv(b, err, errlen);
	envp = argv ? build_env(b, err, errlen) : NULL;
	if (!envp)
		goto out;
	cwd = b->cwd.len ? proto_str_dup(b->cwd) : get_current_dir_name();
	spec.command = argv[0];
	spec.argv = (const char *const *)argv;
	spec.envp = (const char *const *)envp;
	spec.cwd = cwd ? cwd : "/";
	spec.max_line = EXEC_MAX_LINE;
	spec.max_stdin_queue = EXEC_STDIN_QUEUE;

	p = xcalloc(1, sizeof(*p));
	p->ex = ex;
	p->name = proto_str_dup(b->server_name);
	p->held_tail = &p->held;
	p->stderr_tokens = EXEC_STDERR_BURST;
	p->stderr_refill_ms = loop_now_ms(ex->loop);
	r = child_start(ex->loop, &spec, &proc_ops, p, &p->child, err, errlen);
	if (r < 0) {
		*status = PROTO_E_SPAWN;
		proc_free(p);
		goto out;
	}
	p->handle = ++ex->next_handle;
	p->next = ex->procs;
	ex->procs = p;
	ex->n_procs++;
	*handle = p->handle;
	*pid = (uint32_t)child_pid(p->child);
	log_info("%s[%llu]: started '%s' as pid %u", p->name, (unsigned long long)p->handle,
		 argv[0], *pid);
	r = 0;
out:
	strv_free(argv);
	strv_free(envp);
	return r;
}

int procs_stop(struct executor *ex, uint64_t handle)
{
	struct proc *p = proc_find(ex, handle);

	if (!p || p->detached)
		return -ENOENT;
	child_stop(p->child);
	return 0;
}

int procs_send(struct executor *ex, uint64_t handle, const void *data, size_t len)
{
	struct proc *p = proc_find(ex, handle);

	if (!p || p->detached)
		return -ENOENT;
	return child_send(p->child, data, len);
}

void procs_fail(struct executor *ex, uint64_t handle, const char *why)
{
	struct proc *p = proc_find(ex, handle);

	if (!p || p->fail_reason)
		return;
	log_warn("%s[%llu]: %s; killing it", p->name, (unsigned long long)handle, why);
	p->fail_reason = xstrdup(why);
	child_kill(p->child);
}

int procs_attach(struct executor *ex, uint64_t handle, uint32_t *pid, uint32_t *dropped)
{
	struct proc *p = proc_find(ex, handle);

	if (!p || !p->detached)
		return -ENOENT;
	p->detached = false;
	ex->n_detached--;
	*pid = (uint32_t)child_pid(p->child);
	*dropped = p->held_dropped;
	return 0;
}

/* Called after the attach reply, so the orchestrator knows the handle
 * before the held output arrives. */
void procs_flush_held(struct executor *ex, uint64_t handle)
{
	struct proc *p = proc_find(ex, handle);

	if (!p)
		return;
	for (struct held_line *h = p->held; h; h = h->next)
		send_line(p, h->data, h->len);
	held_clear(p);
	p->held_dropped = 0;
	if (ex->n_detached == 0 && ex->grace_timer) {
		loop_timer_cancel(ex->grace_timer);
		ex->grace_timer = NULL;
	}
}

static void grace_cb(struct loop_timer *t, void *arg)
{
	struct executor *ex = arg;

	ex->grace_timer = NULL;
	for (struct proc *p = ex->procs; p; p = p->next) {
		if (p->detached) {
			log_info("%s[%llu]: not re-attached within %us, stopping", p->name,
				 (unsigned long long)p->handle, ex->opts.grace_sec);
			child_stop(p->child);
		}
	}
}

void procs_detach_all(struct executor *ex)
{
	for (struct proc *p = ex->procs; p; p = p->next) {
		if (!p->detached) {
			p->detached = true;
			ex->n_detached++;
		}
	}
	if (ex->n_detached && !ex->grace_timer) {
		log_info("link lost: keeping %u process(es) for %us", ex->n_detached,
			 ex->opts.grace_sec);
		ex->grace_timer = loop_timer_add(ex->loop, (uint64_t)ex->opts.grace_sec * 1000u,
						 grace_cb, ex);
	}
}

size_t procs_detached_handles(struct executor *ex, uint64_t **out)
{
	size_t n = 0;

	*out = xcalloc(ex->n_detached ? ex->n_detached : 1, sizeof(**out));
	for (struct proc *p = ex->procs; p && n < ex->n_detached; p = p->next)
		if (p->detached)
			(*out)[n++] = p->handle;
	return n;
}

void procs_kill_all(struct executor *ex)
{
	while (ex->procs) {
		struct proc *p = ex->procs;

		ex->procs = p->next;
		proc_free(p); /* child_free kills and reaps the group synchronously */
	}
	ex->n_procs = 0;
	ex->n_detached = 0;
	if (ex->grace_timer) {
		loop_timer_cancel(ex->grace_timer);
		ex->grace_timer = NULL;
	}
}
