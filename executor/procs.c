/* procs.c - the executor's live stdio MCP processes.
 *
 * Each process has a handle the executor picks (never reused while the
 * executor runs), so a reconnecting orchestrator can re-attach to it. While
 * no authenticated peer holds a process ("detached"), its stdout lines are
 * kept up to EXEC_DETACHED_BUFFER bytes for the re-attach, and its own
 * grace timer, armed when it was detached, stops it if it was not
 * re-attached by then (a process detached by a later drop gets the whole
 * grace period from that drop).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "box.h"
#include "child.h"
#include "contain.h"
#include "mcpcfg.h"
#include "pathfd.h"
#include "plugin.h"
#include "spawnproc.h"
#include "executor.h"
#include "log.h"
#include "loop.h"
#include "util.h"
#include "valid.h"

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
	struct loop_timer *grace_timer; /* while detached */
	struct held_line *held, **held_tail;
	size_t held_bytes;
	uint32_t held_dropped;
	double stderr_tokens;
	uint64_t stderr_refill_ms;
	uint32_t stderr_dropped;
	char *fail_reason; /* set when the executor killed it on purpose */
	struct box *box;
	char *denied;      /* a boxed server's first stderr line that reads like a refusal */
	uint8_t identity[PROTO_ID_LEN]; /* MCP_START's, reported while detached */
	char *note;			/* MCP_NOTE's, given back by MCP_ATTACH */
	size_t note_len;
};

/* The environment a server gets on top of a cleared one (README, "tandem-executor"). */
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
	free(p->note);
	loop_timer_cancel(p->grace_timer);
	held_clear(p);
	child_free(p->child);
	box_free(p->box); /* after the process: its private directory and cgroup go */
	free(p->denied);
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

static void hold_line(struct proc *p, const char *line, size_t len)
{
	struct held_line *h;

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

static void proc_line_cb(struct child *c, const char *line, size_t len, void *arg)
{
	struct proc *p = arg;

	if (!p->detached)
		send_line(p, line, len);
	else
		hold_line(p, line, len);
}

void procs_hold(struct executor *ex, uint64_t handle, const char *line, size_t len)
{
	struct proc *p = proc_find(ex, handle);

	if (p && p->detached)
		hold_line(p, line, len);
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

/* What a runtime prints when the kernel refused it something. */
static bool reads_like_denial(const char *line, size_t len)
{
	static const char *const words[] = { "Permission denied", "EACCES",
					     "Operation not permitted", "EPERM" };

	for (size_t i = 0; i < ARRAY_SIZE(words); i++)
		if (memmem(line, len, words[i], strlen(words[i])))
			return true;
	return false;
}

static void proc_stderr_cb(struct child *c, const char *line, size_t len, void *arg)
{
	struct proc *p = arg;
	struct proto_mcp_stderr_body ev = { .handle = p->handle };

	if (p->box && box_landlocked(p->box) && !p->denied && reads_like_denial(line, len))
		p->denied = xstrndup(line, MIN(len, 300u));

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
	if (!p->fail_reason && p->denied && !(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0))
		p->fail_reason = xasprintf("%s; the sandbox may have refused it something: '%s' "
					   "(grant paths with sandbox.read / sandbox.write)",
					   reason, p->denied);
	ev.reason = proto_str_c(p->fail_reason ? p->fail_reason : reason);
	if (!p->detached)
		listener_send(ex, PROTO_MCP_EXITED, PROTO_EVENT, 0, &ev);
	proc_unlink(ex, p);
	proc_free(p);
	contain_sweep(ex); /* what the server left behind, in track mode */
}

static void proc_expired_cb(struct child *c, uint64_t call_id, void *arg)
{
	struct proc *p = arg;

	(void)c;
	procs_report_expired(p->ex, p->handle, call_id,
			     "its deadline passed while it waited for the server to read its "
			     "stdin");
}

static const struct child_ops proc_ops = {
	.line_cb = proc_line_cb,
	.stderr_cb = proc_stderr_cb,
	.expired_cb = proc_expired_cb,
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
	return valid_env_name_n(s.ptr, s.len); /* the shell form: no '=', no NUL */
}

/* Cleared environment + defaults + env_vars resolved here + literal env. */
static char **build_env(const struct proto_mcp_start_body *b, char *err, size_t errlen)
{
	/* + 2: HOME and TMPDIR of a sandboxed server (env_box_home) */
	size_t cap = ARRAY_SIZE(default_env) + b->env_vars.n + b->env.n + 3, n = 0;
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

/* Where a server runs: its plugin root (MCP_START's root, else the root this
 * executor resolved that holds cwd; none for a config.toml server) and its
 * cwd, opened below the root in one resolution (issue 13 #3: a cwd swapped
 * for a symlink before a restart must not start the server outside its
 * root). The child fchdir()s to cwd_fd. */
struct place {
	char *root;   /* NULL: not a plugin server */
	int rootfd;   /* O_PATH, opened without following symlinks */
	char *cwd;
	int cwd_fd;
};

static void place_free(struct place *pl)
{
	free(pl->root);
	free(pl->cwd);
	safe_close(pl->rootfd);
	safe_close(pl->cwd_fd);
}

static bool root_allowed(const struct executor *ex, const char *root)
{
	if (ex->opts.n_root_allow == 0)
		return true;
	for (size_t i = 0; i < ex->opts.n_root_allow; i++)
		if (mcpcfg_path_within(ex->opts.root_allow[i], root))
			return true;
	return false;
}

static int place_in_root(struct executor *ex, struct place *pl, int32_t *status, char *err,
			 size_t errlen)
{
	const char *rel = pl->cwd + strlen(pl->root);

	*status = PROTO_E_DENIED;
	if (!root_allowed(ex, pl->root)) {
		snprintf(err, errlen, "plugin root '%s' is outside the allowed roots", pl->root);
		return -EACCES;
	}
	if (!mcpcfg_path_within(pl->root, pl->cwd)) {
		snprintf(err, errlen, "cwd '%s' is outside the plugin root '%s'", pl->cwd, pl->root);
		return -EACCES;
	}
	pl->rootfd = pathfd_open_nosymlinks(pl->root, O_PATH | O_DIRECTORY);
	if (pl->rootfd < 0) {
		snprintf(err, errlen, "plugin root '%s' cannot be opened without following a symlink: %s",
			 pl->root, strerror(-pl->rootfd));
		return pl->rootfd;
	}
	pl->cwd_fd = pathfd_open_beneath(pl->rootfd, *rel == '/' ? rel + 1 : rel,
					 O_PATH | O_DIRECTORY);
	if (pl->cwd_fd == -EXDEV || pl->cwd_fd == -ELOOP) {
		snprintf(err, errlen, "cwd '%s' no longer resolves inside the plugin root '%s'",
			 pl->cwd, pl->root);
		return -EACCES;
	}
	if (pl->cwd_fd < 0) {
		*status = PROTO_E_SPAWN;
		snprintf(err, errlen, "cannot change directory to '%s': %s", pl->cwd,
			 strerror(-pl->cwd_fd));
		return pl->cwd_fd;
	}
	return 0;
}

static int place(struct executor *ex, const struct proto_mcp_start_body *b, struct place *pl,
		 int32_t *status, char *err, size_t errlen)
{
	const char *known;

	pl->rootfd = pl->cwd_fd = -1;
	pl->cwd = b->cwd.len ? proto_str_dup(b->cwd) : get_current_dir_name();
	if (!pl->cwd)
		pl->cwd = xstrdup("/");
	if (b->root.len) {
		pl->root = proto_str_dup(b->root);
		if (pl->root[0] != '/') {
			snprintf(err, errlen, "root '%s' is not an absolute path", pl->root);
			return -EINVAL;
		}
	} else if ((known = plugin_known_root(pl->cwd))) {
		pl->root = xstrdup(known);
	}
	if (pl->root)
		return place_in_root(ex, pl, status, err, errlen);
	pl->cwd_fd = open(pl->cwd, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (pl->cwd_fd < 0) {
		*status = PROTO_E_SPAWN;
		snprintf(err, errlen, "cannot change directory to '%s': %s", pl->cwd,
			 strerror(errno));
		return -errno;
	}
	return 0;
}

/* The oldest detached process (started first) is stopped now. */
static void stop_oldest_detached(struct executor *ex)
{
	struct proc *old = NULL;

	for (struct proc *p = ex->procs; p; p = p->next)
		if (p->detached && p->grace_timer)
			old = p; /* the list is newest first */
	if (!old)
		return;
	loop_timer_cancel(old->grace_timer);
	old->grace_timer = NULL;
	log_info("%s[%llu]: detached, stopped early to make room under the process cap",
		 old->name, (unsigned long long)old->handle);
	child_stop(old->child);
}

static int check_start(struct executor *ex, const struct proto_mcp_start_body *b, int32_t *status,
		       char *err, size_t errlen)
{
	*status = PROTO_E_BAD_REQUEST;
	/* Detached servers count apart: kept for a re-attach, they do not
	 * block what the orchestrator starts now (each is bounded by its grace
	 * period, and was under the cap when it was attached). All together
	 * stay under twice the cap: past it the oldest detached one is stopped
	 * to make room (an orchestrator that keeps reconnecting cannot pile
	 * them up), and this start waits for it (the orchestrator retries). */
	if (ex->n_procs >= 2u * ex->opts.max_procs && ex->n_procs - ex->n_detached <
							  ex->opts.max_procs) {
		stop_oldest_detached(ex);
		*status = PROTO_E_LIMIT;
		snprintf(err, errlen, "process cap of %u reached on executor '%s' with servers kept "
				      "from an earlier link: the oldest is being stopped",
			 ex->opts.max_procs, ex->opts.id);
		return -EMFILE;
	}
	if (ex->n_procs - ex->n_detached >= ex->opts.max_procs) {
		*status = PROTO_E_LIMIT;
		snprintf(err, errlen, "process cap of %u reached on executor '%s'",
			 ex->opts.max_procs, ex->opts.id);
		return -EMFILE;
	}
	if (b->command.len == 0 || !clean_str(b->command) || !clean_str(b->cwd) ||
	    !clean_str(b->server_name) || !clean_str(b->root)) {
		snprintf(err, errlen, "command, cwd, root and server_name must be non-empty text");
		return -EINVAL;
	}
	return 0;
}

static struct proc *proc_new(struct executor *ex, const struct proto_mcp_start_body *b)
{
	struct proc *p = xcalloc(1, sizeof(*p));

	p->ex = ex;
	p->name = proto_str_dup(b->server_name);
	if (b->identity.len == PROTO_ID_LEN)
		memcpy(p->identity, b->identity.ptr, PROTO_ID_LEN);
	p->held_tail = &p->held;
	p->stderr_tokens = EXEC_STDERR_BURST;
	p->stderr_refill_ms = loop_now_ms(ex->loop);
	return p;
}

/* True when the server's config sets variable `name` itself. */
static bool config_sets(const struct proto_mcp_start_body *b, const char *name)
{
	for (uint32_t i = 0; i < b->env.n; i++)
		if (proto_str_eq(b->env.keys[i], name))
			return true;
	for (uint32_t i = 0; i < b->env_vars.n; i++)
		if (proto_str_eq(b->env_vars.items[i], name))
			return true;
	return false;
}

/* A boxed server's HOME and TMPDIR are its private directory. */
static void env_box_home(char **envp, const struct proto_mcp_start_body *b, const char *dir)
{
	static const char *const vars[] = { "HOME", "TMPDIR" };
	size_t n = 0;

	while (envp[n])
		n++;
	for (size_t i = 0; i < ARRAY_SIZE(vars); i++)
		if (!config_sets(b, vars[i]))
			env_set(envp, &n, vars[i], strlen(vars[i]), dir, strlen(dir));
}

/* The box policy: MCP_START's sandbox field, else what this executor read
 * in the server's plugin files. New reference or NULL. */
static json_t *box_policy(const struct proto_mcp_start_body *b, const struct place *pl,
			  bool *given)
{
	_cleanup_free_ char *name = proto_str_dup(b->server_name);
	json_t *known;

	*given = b->sandbox.len > 0;
	if (*given) {
		json_t *keys = json_loadb(b->sandbox.ptr, b->sandbox.len, 0, NULL);

		if (json_is_object(keys))
			return keys;
		json_decref(keys);
		return json_object(); /* unreadable: the defaults, never "off" */
	}
	known = pl->root ? plugin_known_server(pl->root, name) : NULL;
	return known ? json_incref(known) : NULL;
}

static int make_box(struct executor *ex, const struct proto_mcp_start_body *b,
		    const struct place *pl, char **argv, char **envp, struct box **out,
		    int32_t *status, char *err, size_t errlen)
{
	struct box_req req = {
		.name = NULL,
		.root = pl->root,
		.root_fd = pl->rootfd,
		.cwd_fd = pl->cwd_fd,
		.command = argv[0],
		.envp = (const char *const *)envp,
	};
	_cleanup_free_ char *name = proto_str_dup(b->server_name);
	int r;

	req.name = name;
	req.policy = box_policy(b, pl, &req.policy_given);
	r = box_new(ex, &req, out, status, err, errlen);
	json_decref(req.policy);
	if (r == 0 && box_home(*out))
		env_box_home(envp, b, box_home(*out));
	return r;
}

int procs_start(struct executor *ex, const struct proto_mcp_start_body *b, uint64_t *handle,
		uint32_t *pid, const char **sandbox, int32_t *status, char *err, size_t errlen)
{
	struct place pl = { .rootfd = -1, .cwd_fd = -1 };
	char **argv = NULL, **envp = NULL;
	struct child_spec spec = { 0 };
	struct box *box = NULL;
	struct proc *p;
	int r = check_start(ex, b, status, err, errlen);

	if (r < 0)
		return r;
	r = -EINVAL;
	argv = build_argv(b, err, errlen);
	envp = argv ? build_env(b, err, errlen) : NULL;
	if (!envp)
		goto out;
	r = place(ex, b, &pl, status, err, errlen);
	if (r == 0)
		r = make_box(ex, b, &pl, argv, envp, &box, status, err, errlen);
	if (r < 0)
		goto out;
	spec.command = argv[0];
	spec.argv = (const char *const *)argv;
	spec.envp = (const char *const *)envp;
	spec.cwd = pl.cwd;
	spec.cwd_fd = pl.cwd_fd;
	spec.max_line = EXEC_MAX_LINE;
	spec.max_stdin_queue = EXEC_STDIN_QUEUE;
	/* contain.h: a namespace of its own, or a subreaper whose tree we walk */
	spec.namespaces = (ex->pidns ? CLONE_NEWPID : 0) | box_namespaces(box);
	spec.init = ex->pidns;
	spec.kill_tree = !ex->pidns;
	spec.hook = box_hook(box);

	p = proc_new(ex, b);
	p->box = TAKE_PTR(box);
	r = child_start(ex->loop, &spec, &proc_ops, p, &p->child, err, errlen);
	if (r < 0) {
		*status = PROTO_E_SPAWN;
		if (r == -EACCES && box_landlocked(p->box))
			snprintf(err + strlen(err), errlen - strlen(err),
				 " (the sandbox lets a server execute only its program, its plugin "
				 "root and the system directories)");
		proc_free(p);
		goto out;
	}
	p->handle = ++ex->next_handle;
	p->next = ex->procs;
	ex->procs = p;
	ex->n_procs++;
	*handle = p->handle;
	*pid = (uint32_t)child_pid(p->child);
	*sandbox = box_describe(p->box);
	log_info("%s[%llu]: started '%s' as pid %u%s%s; sandbox: %s", p->name,
		 (unsigned long long)p->handle, argv[0], *pid, pl.root ? " in plugin root " : "",
		 pl.root ? pl.root : "", *sandbox);
	r = 0;
out:
	box_free(box);
	place_free(&pl);
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

int procs_send(struct executor *ex, uint64_t handle, const void *data, size_t len,
	       uint64_t call_id, uint64_t deadline_ms)
{
	struct proc *p = proc_find(ex, handle);

	if (!p || p->detached)
		return -ENOENT;
	return child_send_call(p->child, data, len, call_id, deadline_ms);
}

void procs_report_expired(struct executor *ex, uint64_t handle, uint64_t call_id,
			  const char *why)
{
	struct proto_mcp_expired_body ev = { .handle = handle, .call_id = call_id };
	struct proc *p = proc_find(ex, handle);

	log_info("process %llu: request %llu not delivered: %s", (unsigned long long)handle,
		 (unsigned long long)call_id, why);
	if (p && p->detached)
		return; /* its orchestrator is gone: nobody knows that call */
	ev.reason = proto_str_c(why);
	ev.present = PROTO_ALL_mcp_expired_body;
	listener_send(ex, PROTO_MCP_EXPIRED, PROTO_EVENT, 0, &ev);
}

bool procs_withdraw(struct executor *ex, uint64_t handle, uint64_t call_id)
{
	struct proc *p = proc_find(ex, handle);

	return p && !p->detached && child_withdraw(p->child, call_id);
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

int procs_note(struct executor *ex, uint64_t handle, const void *note, size_t len)
{
	struct proc *p = proc_find(ex, handle);

	if (!p || p->detached)
		return -ENOENT;
	if (len > PROTO_MAX_NOTE)
		return -EMSGSIZE;
	free(p->note);
	p->note = len ? xstrndup(note, len) : NULL;
	p->note_len = len;
	return 0;
}

int procs_attach(struct executor *ex, uint64_t handle, uint32_t *pid, uint32_t *dropped,
		 struct proto_str *note)
{
	struct proc *p = proc_find(ex, handle);

	if (!p || !p->detached)
		return -ENOENT;
	p->detached = false;
	ex->n_detached--;
	loop_timer_cancel(p->grace_timer);
	p->grace_timer = NULL;
	*pid = (uint32_t)child_pid(p->child);
	*dropped = p->held_dropped;
	note->ptr = p->note;
	note->len = (uint32_t)p->note_len;
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
}

static void grace_cb(struct loop_timer *t, void *arg)
{
	struct proc *p = arg;

	(void)t;
	p->grace_timer = NULL;
	log_info("%s[%llu]: not re-attached within %us, stopping", p->name,
		 (unsigned long long)p->handle, p->ex->opts.grace_sec);
	child_stop(p->child);
}

void procs_detach_all(struct executor *ex)
{
	unsigned n = 0;

	for (struct proc *p = ex->procs; p; p = p->next) {
		if (p->detached)
			continue;
		p->detached = true;
		ex->n_detached++;
		n++;
		p->grace_timer = loop_timer_add(ex->loop, (uint64_t)ex->opts.grace_sec * 1000u,
						grace_cb, p);
	}
	if (n)
		log_info("link lost: keeping %u process(es) for %us", n, ex->opts.grace_sec);
}

size_t procs_detached(struct executor *ex, uint64_t **handles, uint8_t **ids, bool *more)
{
	size_t n = 0, max = MIN(ex->n_detached, PROTO_MAX_LIVE);

	*handles = xcalloc(max ? max : 1, sizeof(**handles));
	*ids = xcalloc(max ? max : 1, PROTO_ID_LEN);
	*more = false;
	/* the list is newest first: past the bound, the oldest are left out
	 * (the HELLO reply must fit PROTO_MAX_HANDSHAKE_FRAME); *more tells
	 * the orchestrator to ask for the others by identity */
	for (struct proc *p = ex->procs; p; p = p->next) {
		if (!p->detached || !p->grace_timer) /* not one stopping already */
			continue;
		if (n == max) {
			*more = true;
			break;
		}
		(*handles)[n] = p->handle;
		memcpy(*ids + n * PROTO_ID_LEN, p->identity, PROTO_ID_LEN);
		n++;
	}
	return n;
}

int procs_find_detached(struct executor *ex, const uint8_t id[PROTO_ID_LEN], uint64_t *handle)
{
	for (struct proc *p = ex->procs; p; p = p->next) {
		if (p->detached && p->grace_timer && !memcmp(p->identity, id, PROTO_ID_LEN)) {
			*handle = p->handle;
			return 0;
		}
	}
	return -ENOENT;
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
}
