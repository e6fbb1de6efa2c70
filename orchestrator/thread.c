/* thread.c - see thread.h. */
#include "thread.h"
#include "thread_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "env.h"
#include "envs.h"
#include "jsonutil.h"
#include "log.h"
#include "mcpcfg.h"
#include "notify.h"
#include "proto.h"
#include "srv.h"
#include "util.h"
#include "view.h"

enum troot_state { TR_IDLE = 0, TR_RESOLVING, TR_OK, TR_FAILED };

struct troot {
	struct thread *t;
	char *id;
	char *env_id;
	char *path;
	enum troot_state st;
	json_t *servers;  /* validated normalized configs */
	json_t *invalid;
	char *error;
	struct env *req_env;
	uint32_t req;
};

static struct thread global_thread = { .global = true };
static struct {
	uint64_t rediscoveries, builds; /* every thread's, for debug/counters */
} threads;

static void thread_check(struct thread *t);
static void rebuild_if_changed(struct thread *t);
static void srv_changed_cb(struct srv *s, void *arg);

/* ---- roots ------------------------------------------------------------- */

static void roots_free(struct troot *roots, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		free(roots[i].id);
		free(roots[i].env_id);
		free(roots[i].path);
		free(roots[i].error);
		json_decref(roots[i].servers);
		json_decref(roots[i].invalid);
	}
	free(roots);
}

void thread_roots_set(struct thread *t, const struct thread_root_spec *roots, size_t n)
{
	t->n_roots = (uint32_t)n;
	t->roots = n ? xcalloc(n, sizeof(*t->roots)) : NULL;
	for (size_t i = 0; i < n; i++) {
		t->roots[i].t = t;
		t->roots[i].id = xstrdup(roots[i].id);
		t->roots[i].env_id = xstrdup(roots[i].env_id);
		t->roots[i].path = xstrdup(roots[i].path);
	}
}

size_t thread_n_roots(const struct thread *t) { return t->n_roots; }

const char *thread_root_at(const struct thread *t, size_t i, const char **env_id,
			   const char **path)
{
	*env_id = t->roots[i].env_id;
	*path = t->roots[i].path;
	return t->roots[i].id;
}

/* The runtime's servers, the roots and their requests in flight. */
void thread_runtime_free(struct thread *t)
{
	for (uint32_t i = 0; i < t->n_rt; i++) {
		srv_unwatch(t->rt[i], srv_changed_cb, t);
		srv_release(t->rt[i]);
	}
	free(t->rt);
	t->rt = NULL;
	t->n_rt = 0;
	for (uint32_t i = 0; i < t->n_roots; i++)
		if (t->roots[i].req && t->roots[i].req_env)
			env_request_forget(t->roots[i].req_env, t->roots[i].req);
	roots_free(t->roots, t->n_roots);
	t->roots = NULL;
	t->n_roots = 0;
	free(t->waiters);
	t->waiters = NULL;
	t->n_waiters = t->cap_waiters = 0;
}

void thread_global_reset(void)
{
	thread_runtime_free(&global_thread);
	free(global_thread.watchers); /* its watchers let go before the stop */
	memset(&global_thread, 0, sizeof(global_thread));
	global_thread.global = true;
}

struct thread *thread_global(void) { return &global_thread; }
uint64_t thread_rediscoveries(const struct thread *t) { return t->rediscoveries; }
uint64_t thread_builds(const struct thread *t) { return t->builds; }
uint64_t threads_rediscoveries(void) { return threads.rediscoveries; }
uint64_t threads_builds(void) { return threads.builds; }

/* ---- root resolution ---------------------------------------------------- */

/* The executor is untrusted: keep only well-formed server entries, bound to
 * the root's environment whatever the executor said. */
static json_t *accept_servers(struct troot *r, json_t *arr, struct proto_str root)
{
	json_t *out = json_array(), *s;
	size_t i;

	json_array_foreach(arr, i, s) {
		const char *name = json_string_value(json_object_get(s, "name"));
		const char *tr = json_string_value(json_object_get(s, "transport"));

		if (!json_is_object(s) || !name || !mcpcfg_name_valid(name) || !tr ||
		    (strcmp(tr, "stdio") != 0 && strcmp(tr, "http") != 0) ||
		    (strcmp(tr, "stdio") == 0 &&
		     !json_is_string(json_object_get(s, "command")))) {
			log_warn("root '%s': executor sent a malformed server entry; ignored", r->id);
			continue;
		}
		s = json_deep_copy(s);
		json_object_set_new(s, "environment_id", json_string(r->env_id));
		if (root.len) /* srv.c sends it back with MCP_START */
			json_object_set_new(s, "plugin_root", json_stringn(root.ptr, root.len));
		json_array_append_new(out, s);
		if (json_array_size(out) >= 256)
			break;
	}
	return out;
}

static void resolve_reply_cb(struct env *e, const struct proto_msg *reply, const char *error,
			     void *arg)
{
	struct troot *r = arg;
	const struct proto_root_resolve_reply *rr;
	json_t *servers;

	r->req = 0;
	r->req_env = NULL;
	free(r->error);
	r->error = NULL;
	if (!reply) {
		r->st = TR_FAILED;
		r->error = xstrdup(error ? error : "resolution failed");
		log_warn("root '%s' on '%s': %s", r->id, r->env_id, r->error);
	} else {
		rr = &reply->u.root_resolve_reply;
		servers = jsonu_loadb(rr->servers.ptr, rr->servers.len, PROTO_MAX_BIN, NULL, 0);
		json_decref(r->servers);
		json_decref(r->invalid);
		r->servers = accept_servers(r, json_is_array(servers) ? servers : NULL, rr->path);
		json_decref(servers);
		r->invalid = rr->invalid.len ? jsonu_loadb(rr->invalid.ptr, rr->invalid.len,
							   PROTO_MAX_BIN, NULL, 0)
					     : NULL;
		if (!json_is_array(r->invalid)) {
			json_decref(r->invalid);
			r->invalid = json_array();
		}
		r->st = TR_OK;
	}
	rebuild_if_changed(r->t);
	thread_check(r->t);
}

static void resolve(struct thread *t, struct troot *r, struct env *e)
{
	struct proto_root_resolve_body b = { 0 };

	b.root_id = proto_str_c(r->id);
	b.path = proto_str_c(r->path);
	b.environment_id = proto_str_c(r->env_id);
	b.environment_is_local = env_is_local(e);
	PROTO_SET(&b, 4);
	r->req = env_request(e, PROTO_ROOT_RESOLVE, &b, THREAD_RESOLVE_TIMEOUT_MS, resolve_reply_cb,
			     r);
	if (!r->req)
		return;
	r->req_env = e;
	r->st = TR_RESOLVING;
	t->rediscoveries++;
	threads.rediscoveries++;
}

/* ---- runtime ----------------------------------------------------------- */

static void startup_status(struct thread *t, struct srv *s)
{
	const char *st = srv_state(s) == SRV_STARTING ? "starting"
			 : srv_state(s) == SRV_READY  ? "ready"
						      : "failed";
	json_t *p = json_pack("{s:s, s:s, s:s?}", "name", srv_name(s), "status", st, "error",
			      srv_error(s));

	if (t->global) {
		json_object_set_new(p, "threadId", json_null());
		notify_all(NOTIFY_MCP_STARTUP_STATUS, p);
	} else {
		thread_notify(t, NOTIFY_MCP_STARTUP_STATUS, p);
	}
}

bool thread_closing(const struct thread *t) { return t->closing; }

/* Calls every watcher of a snapshot: a watcher may unwatch. */
void thread_watchers_run(struct thread *t)
{
	struct waiter *w;
	uint32_t n = t->n_watchers;

	if (!n)
		return;
	w = xmalloc(n * sizeof(*w));
	memcpy(w, t->watchers, n * sizeof(*w));
	for (uint32_t i = 0; i < n; i++)
		w[i].cb(t, w[i].arg);
	free(w);
}

static void srv_changed_cb(struct srv *s, void *arg)
{
	struct thread *t = arg;

	startup_status(t, s);
	thread_watchers_run(t); /* first: a waiter's work may depend on what they do */
	thread_check(t);
}

static json_t *configured_view(struct thread *t)
{
	const struct config *c = config_current();
	json_t *view = json_object(), *cfg, *s;
	const char *name;
	size_t j;

	if (c)
		json_object_foreach(c->mcp_servers, name, cfg)
			view_set(view, name, cfg, NULL);
	for (uint32_t i = 0; i < t->n_roots; i++) {
		if (!((t->ready[i / 64] >> (i % 64)) & 1u))
			continue;
		json_array_foreach(t->roots[i].servers, j, s)
			view_set(view, json_string_value(json_object_get(s, "name")), s,
				 t->roots[i].id);
	}
	return view;
}

static void rebuild(struct thread *t)
{
	json_t *configured = configured_view(t);
	json_t *runtime = view_runtime(configured);
	json_t *effective = view_effective(runtime);
	struct srv **old = t->rt;
	uint32_t n_old = t->n_rt, n = 0;
	const char *name;
	json_t *entry;

	t->rt = xcalloc(json_object_size(effective) + 1, sizeof(*t->rt));
	/* Acquire before releasing: an unchanged server keeps its process. */
	json_object_foreach(effective, name, entry) {
		struct srv *s = srv_acquire(name, json_object_get(entry, "config"),
					    json_string_value(json_object_get(entry, "plugin_id")));

		t->rt[n++] = s;
		srv_watch(s, srv_changed_cb, t);
	}
	t->n_rt = n;
	for (uint32_t i = 0; i < n_old; i++) {
		srv_unwatch(old[i], srv_changed_cb, t);
		srv_release(old[i]);
	}
	free(old);
	json_decref(configured);
	json_decref(runtime);
	json_decref(effective);
	t->built = true;
	t->builds++;
	threads.builds++;
	for (uint32_t i = 0; i < n; i++)
		startup_status(t, t->rt[i]);
	thread_watchers_run(t);
}

static void ready_set(struct thread *t, uint64_t ready[THREAD_MAX_ROOTS / 64])
{
	memset(ready, 0, sizeof(t->ready));
	for (uint32_t i = 0; i < t->n_roots; i++) {
		struct env *e = envs_find(t->roots[i].env_id);

		/* A link waiting to resume its session keeps its servers: the
		 * runtime stays as it was until the session ends. */
		if (e && (env_state(e) == ENV_READY || env_resumable(e)) && t->roots[i].st == TR_OK)
			ready[i / 64] |= (uint64_t)1 << (i % 64);
	}
}

static void rebuild_if_changed(struct thread *t)
{
	uint64_t ready[THREAD_MAX_ROOTS / 64];

	ready_set(t, ready);
	if (t->built && memcmp(ready, t->ready, sizeof(ready)) == 0)
		return;
	memcpy(t->ready, ready, sizeof(ready));
	rebuild(t);
}

void thread_project(struct thread *t)
{
	for (uint32_t i = 0; i < t->n_roots; i++) {
		struct troot *r = &t->roots[i];
		struct env *e = envs_find(r->env_id);

		if (e && env_state(e) == ENV_READY && (r->st == TR_IDLE || r->st == TR_FAILED))
			resolve(t, r, e);
	}
	rebuild_if_changed(t);
	/* A failed server comes back on next use (with backoff). */
	for (uint32_t i = 0; i < t->n_rt; i++)
		srv_retry(t->rt[i]);
}

/* ---- waiting ----------------------------------------------------------- */

/* Settled: nothing left to wait for. A root whose environment is still
 * connecting counts as pending (the connect timeout bounds that), so a
 * request right after start-up sees the plugin instead of an empty runtime. */
static bool settled(const struct thread *t)
{
	for (uint32_t i = 0; i < t->n_roots; i++) {
		struct env *e = envs_find(t->roots[i].env_id);

		if (t->roots[i].st == TR_RESOLVING)
			return false;
		if (e && env_state(e) == ENV_CONNECTING && t->roots[i].st != TR_OK)
			return false;
	}
	for (uint32_t i = 0; i < t->n_rt; i++)
		if (srv_state(t->rt[i]) == SRV_STARTING)
			return false;
	return true;
}

static void thread_check(struct thread *t)
{
	struct waiter *w;
	uint32_t n;

	if (!t->n_waiters || !settled(t))
		return;
	n = t->n_waiters;
	w = xmalloc(n * sizeof(*w));
	memcpy(w, t->waiters, n * sizeof(*w));
	t->n_waiters = 0;
	for (uint32_t i = 0; i < n; i++)
		w[i].cb(t, w[i].arg);
	free(w);
}

void thread_when_settled(struct thread *t, thread_cb cb, void *arg)
{
	if (settled(t)) {
		cb(t, arg);
		return;
	}
	if (t->n_waiters == t->cap_waiters) {
		t->cap_waiters = t->cap_waiters ? 2 * t->cap_waiters : 4;
		t->waiters = xrealloc(t->waiters, t->cap_waiters * sizeof(*t->waiters));
	}
	t->waiters[t->n_waiters].cb = cb;
	t->waiters[t->n_waiters++].arg = arg;
}

void thread_watch(struct thread *t, thread_cb cb, void *arg)
{
	if (t->n_watchers == t->cap_watchers) {
		t->cap_watchers = t->cap_watchers ? 2 * t->cap_watchers : 4;
		t->watchers = xrealloc(t->watchers, t->cap_watchers * sizeof(*t->watchers));
	}
	t->watchers[t->n_watchers].cb = cb;
	t->watchers[t->n_watchers++].arg = arg;
}

void thread_unwatch(struct thread *t, thread_cb cb, void *arg)
{
	for (uint32_t i = 0; i < t->n_watchers; i++) {
		if (t->watchers[i].cb == cb && t->watchers[i].arg == arg) {
			memmove(&t->watchers[i], &t->watchers[i + 1],
				(t->n_watchers - i - 1) * sizeof(t->watchers[0]));
			t->n_watchers--;
			return;
		}
	}
}

void thread_forget_waiter(struct thread *t, thread_cb cb, void *arg)
{
	for (uint32_t i = 0; i < t->n_waiters; i++) {
		if (t->waiters[i].cb == cb && t->waiters[i].arg == arg) {
			memmove(&t->waiters[i], &t->waiters[i + 1],
				(t->n_waiters - i - 1) * sizeof(t->waiters[0]));
			t->n_waiters--;
			return;
		}
	}
}

/* ---- queries ----------------------------------------------------------- */

size_t thread_n_servers(const struct thread *t) { return t->n_rt; }
struct srv *thread_server_at(const struct thread *t, size_t i) { return t->rt[i]; }

struct srv *thread_server(const struct thread *t, const char *name)
{
	for (uint32_t i = 0; i < t->n_rt; i++)
		if (strcmp(srv_name(t->rt[i]), name) == 0)
			return t->rt[i];
	return NULL;
}

const char *thread_unavailable_reason(const struct thread *t, char *buf, size_t len)
{
	for (uint32_t i = 0; i < t->n_roots; i++) {
		const struct troot *r = &t->roots[i];
		struct env *e = envs_find(r->env_id);

		if (!e) {
			snprintf(buf, len, "root '%s': no environment '%s' (now)", r->id, r->env_id);
			return buf;
		}
		if (env_state(e) != ENV_READY) {
			snprintf(buf, len, "environment '%s' is %s%s%s", r->env_id,
				 env_state_name(env_state(e)), env_error(e) ? ": " : "",
				 env_error(e) ? env_error(e) : "");
			return buf;
		}
		if (r->st == TR_FAILED) {
			snprintf(buf, len, "root '%s' failed to resolve: %s", r->id, r->error);
			return buf;
		}
	}
	return NULL;
}

json_t *thread_invalid_servers(const struct thread *t)
{
	const struct config *cfg = config_current();
	json_t *out = json_array(), *v;
	size_t j;

	if (cfg)
		json_array_extend(out, cfg->invalid_servers);
	for (uint32_t i = 0; i < t->n_roots; i++)
		json_array_foreach(t->roots[i].invalid, j, v) {
			json_t *c = json_copy(v);

			json_object_set_new(c, "pluginId", json_string(t->roots[i].id));
			json_array_append_new(out, c);
		}
	return out;
}

/* ---- events ------------------------------------------------------------ */

static bool uses_env(const struct thread *t, const char *id)
{
	for (uint32_t r = 0; r < t->n_roots; r++)
		if (strcmp(t->roots[r].env_id, id) == 0)
			return true;
	for (uint32_t i = 0; i < t->n_envs; i++)
		if (strcmp(t->envs[i].id, id) == 0)
			return true;
	return false;
}

void threads_env_changed(struct env *e)
{
	bool up = env_state(e) == ENV_READY;
	bool connecting = env_state(e) == ENV_CONNECTING;

	for (struct thread *t = thread_all_first(); t; t = thread_all_next(t)) {
		if (!uses_env(t, env_id(e)))
			continue;
		if (!connecting)
			thread_notify(t, up ? NOTIFY_THREAD_ENV_CONNECTED
					    : NOTIFY_THREAD_ENV_DISCONNECTED,
				      json_pack("{s:s}", "environmentId", env_id(e)));
		if (up)
			thread_project(t);
		thread_check(t); /* a waiter may have been waiting for this env */
	}
	if (up && global_thread.built)
		thread_project(&global_thread);
}

void threads_reload(void)
{
	global_thread.built = false;
	if (global_thread.n_rt)
		thread_project(&global_thread);
	for (struct thread *t = thread_all_first(); t; t = thread_all_next(t)) {
		t->built = false;
		thread_project(t);
	}
}

void threads_account_changed(bool chatgpt_auth)
{
	view_set_chatgpt_auth(chatgpt_auth);
	threads_reload();
}
