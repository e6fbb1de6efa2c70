/* gateway_scope.c - what one gateway endpoint exposes (gateway_int.h).
 *
 * A scope is a thread's MCP runtime seen from outside: the global thread
 * (config.toml's servers) for /mcp, a thread for /mcp/threads/ID, or a
 * detached thread (thread.h) made from a profile of config.toml for
 * /mcp/profiles/NAME. Sessions on the same path share one scope; it lives
 * while they do (a profile's thread and its servers with it).
 *
 * Requests project the thread first (roots resolved on ready environments,
 * failed servers retried), as a model step does, and wait until it settles.
 * The lists a client sees are built from the servers that are READY at that
 * moment: a server that is down has no tools, never a stale copy. Tools and
 * prompts get flat names by the model's rule (toolnames.h); resources keep
 * their URIs (the first server listing a URI owns it).
 *
 * Changes: the thread's watcher (a rebuild of its runtime, a server's state
 * change or re-listed tools) marks the scope dirty and, from the loop, the
 * lists are rebuilt and their fingerprints compared with what the sessions
 * last heard; each list that differs is announced once (the changed_cb the
 * session layer gave: notifications/{tools,resources,prompts}/list_changed).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "envs.h"
#include "gateway_int.h"
#include "jsonutil.h"
#include "log.h"
#include "loop.h"
#include "mcp.h"
#include "srv.h"
#include "thread.h"
#include "toolnames.h"
#include "util.h"
#include "valid.h"

enum kind { SC_GLOBAL, SC_THREAD, SC_PROFILE };

struct waiter {
	gw_scope_cb cb;
	void *arg;
};

struct gw_scope {
	struct gw_scope *next;
	enum kind kind;
	char *path;
	unsigned refs;
	bool stale; /* a profile changed in config.toml: no new sessions */
	bool gone;  /* its thread was deleted: an empty detached one stands in */
	struct thread *t;
	json_t *spec;  /* a profile's config, to notice a change */
	json_t *allow; /* a profile's `servers`, NULL: all */
	/* waiting for the thread to settle */
	struct waiter *waiters;
	size_t n_waiters, cap_waiters;
	bool waiting;
	/* the lists, rebuilt when dirty */
	bool dirty;
	struct loop_timer *check;
	struct toolmap *tool_map;
	json_t *tools;     /* [tool] under gateway names */
	json_t *tool_ix;   /* gateway name -> index in tool_map */
	json_t *resources; /* [resource] */
	json_t *templates; /* [template] */
	json_t *res_owner; /* uri -> server name */
	json_t *tpl_owner; /* [[literal prefix, server name]] */
	struct toolmap *prompt_map;
	uint64_t fp[3], sent[3]; /* tools, resources, prompts */
};

enum { FP_TOOLS, FP_RESOURCES, FP_PROMPTS };
static const char *const changed_method[] = {
	"notifications/tools/list_changed",
	"notifications/resources/list_changed",
	"notifications/prompts/list_changed",
};

static struct {
	struct loop *loop;
	struct gw_scope *list;
	gw_changed_cb changed;
} scopes;

void gateway_scope_init(struct loop *l, gw_changed_cb changed)
{
	scopes.loop = l;
	scopes.changed = changed;
}

/* ---- fingerprints ------------------------------------------------------- */

static uint64_t fnv(uint64_t h, const char *s)
{
	for (; s && *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
	return h;
}

static uint64_t fp_json(uint64_t h, const json_t *v)
{
	_cleanup_free_ char *text = jsonu_dumps(v);

	return fnv(h, text);
}

/* ---- the lists ------------------------------------------------------------ */

static bool allowed(const struct gw_scope *sc, const char *name)
{
	json_t *v;
	size_t i;

	if (!sc->allow)
		return true;
	json_array_foreach(sc->allow, i, v)
		if (!strcmp(json_string_value(v), name))
			return true;
	return false;
}

/* A server of the scope that is ready now, i-th of the runtime, or NULL. */
static struct srv *ready_at(const struct gw_scope *sc, size_t i)
{
	struct srv *s = thread_server_at(sc->t, i);

	return srv_state(s) == SRV_READY && srv_mcp(s) && allowed(sc, srv_name(s)) ? s : NULL;
}

static void add_tools(struct gw_scope *sc, struct srv *s)
{
	json_t *list = srv_tools(s), *t, *copy;
	const char *ns, *name, *server, *tool;
	size_t j;

	json_array_foreach(list, j, t) {
		const char *raw = json_string_value(json_object_get(t, "name"));
		ssize_t k = raw ? toolmap_add_flat(sc->tool_map, srv_name(s), raw) : -1;

		if (k < 0) {
			log_warn("gateway: tool '%s' of server '%s' has no unique name; left out",
				 raw ? raw : "?", srv_name(s));
			continue;
		}
		toolmap_entry(sc->tool_map, (size_t)k, &ns, &name, &server, &tool);
		copy = json_copy(t);
		json_object_set_new(copy, "name", json_string(name));
		if (!json_is_object(json_object_get(copy, "inputSchema")))
			json_object_set_new(copy, "inputSchema", json_pack("{s:s}", "type", "object"));
		json_array_append_new(sc->tools, copy);
		json_object_set_new(sc->tool_ix, name, json_integer(k));
	}
	json_decref(list);
}

/* The literal part of a URI template, before its first expression. */
static json_t *template_prefix(json_t *tpl)
{
	const char *u = json_string_value(json_object_get(tpl, "uriTemplate"));

	return u ? json_stringn(u, strcspn(u, "{")) : NULL;
}

static void add_resources(struct gw_scope *sc, struct srv *s)
{
	struct mcp_session *m = srv_mcp(s);
	json_t *r, *p;
	size_t j;

	json_array_foreach(mcp_session_resources(m), j, r) {
		const char *uri = json_string_value(json_object_get(r, "uri"));

		if (json_object_get(sc->res_owner, uri))
			continue;
		json_object_set_new(sc->res_owner, uri, json_string(srv_name(s)));
		json_array_append(sc->resources, r);
	}
	json_array_foreach(mcp_session_resource_templates(m), j, r) {
		p = template_prefix(r);
		if (!p)
			continue;
		json_array_append(sc->templates, r);
		json_array_append_new(sc->tpl_owner, json_pack("[o, s]", p, srv_name(s)));
	}
}

static void lists_free(struct gw_scope *sc)
{
	sc->tool_map = toolmap_free(sc->tool_map);
	json_decref(sc->tools);
	json_decref(sc->tool_ix);
	json_decref(sc->resources);
	json_decref(sc->templates);
	json_decref(sc->res_owner);
	json_decref(sc->tpl_owner);
	sc->tools = sc->tool_ix = sc->resources = sc->templates = NULL;
	sc->res_owner = sc->tpl_owner = NULL;
}

static void rebuild(struct gw_scope *sc)
{
	uint64_t prompts = 0xcbf29ce484222325ull;
	struct srv *s;

	lists_free(sc);
	sc->tool_map = toolmap_new();
	sc->tools = json_array();
	sc->tool_ix = json_object();
	sc->resources = json_array();
	sc->templates = json_array();
	sc->res_owner = json_object();
	sc->tpl_owner = json_array();
	for (size_t i = 0; i < thread_n_servers(sc->t); i++) {
		if (!(s = ready_at(sc, i)))
			continue;
		add_tools(sc, s);
		add_resources(sc, s);
		if (json_object_get(mcp_session_capabilities(srv_mcp(s)), "prompts"))
			prompts = fnv(fnv(prompts, srv_name(s)), "\n");
	}
	sc->fp[FP_TOOLS] = fp_json(0xcbf29ce484222325ull, sc->tools);
	sc->fp[FP_RESOURCES] = fp_json(fp_json(0xcbf29ce484222325ull, sc->resources),
				       sc->templates);
	sc->fp[FP_PROMPTS] = prompts;
	sc->dirty = false;
}

static void fresh(struct gw_scope *sc)
{
	if (sc->dirty || !sc->tools)
		rebuild(sc);
}

json_t *gateway_scope_tools(struct gw_scope *sc)
{
	fresh(sc);
	return sc->tools;
}

json_t *gateway_scope_resources(struct gw_scope *sc)
{
	fresh(sc);
	return sc->resources;
}

json_t *gateway_scope_templates(struct gw_scope *sc)
{
	fresh(sc);
	return sc->templates;
}

/* The runtime's server called name, if it is ready and allowed. */
static struct srv *ready_named(struct gw_scope *sc, const char *name)
{
	struct srv *s = name ? thread_server(sc->t, name) : NULL;

	return s && srv_state(s) == SRV_READY && srv_mcp(s) && allowed(sc, name) ? s : NULL;
}

struct srv *gateway_scope_tool(struct gw_scope *sc, const char *name, const char **tool)
{
	const char *ns, *flat, *server;
	json_t *k;

	fresh(sc);
	k = json_object_get(sc->tool_ix, name);
	if (!k)
		return NULL;
	toolmap_entry(sc->tool_map, (size_t)json_integer_value(k), &ns, &flat, &server, tool);
	return ready_named(sc, server);
}

struct srv *gateway_scope_resource(struct gw_scope *sc, const char *uri)
{
	const char *owner, *best = NULL;
	size_t best_len = 0, i;
	json_t *e;

	fresh(sc);
	owner = json_string_value(json_object_get(sc->res_owner, uri));
	if (owner)
		return ready_named(sc, owner);
	/* The template with the longest literal prefix of the URI. */
	json_array_foreach(sc->tpl_owner, i, e) {
		const char *p = json_string_value(json_array_get(e, 0));
		size_t n = json_string_length(json_array_get(e, 0));

		if (n >= best_len && !strncmp(uri, p, n) && (n > 0 || !best)) {
			best = json_string_value(json_array_get(e, 1));
			best_len = n;
		}
	}
	return ready_named(sc, best);
}

size_t gateway_scope_prompt_servers(struct gw_scope *sc, struct srv **out, size_t max)
{
	size_t n = 0;
	struct srv *s;

	for (size_t i = 0; i < thread_n_servers(sc->t) && n < max; i++)
		if ((s = ready_at(sc, i)) &&
		    json_object_get(mcp_session_capabilities(srv_mcp(s)), "prompts"))
			out[n++] = s;
	return n;
}

void gateway_scope_prompts_begin(struct gw_scope *sc)
{
	toolmap_free(sc->prompt_map);
	sc->prompt_map = toolmap_new();
}

const char *gateway_scope_prompt_add(struct gw_scope *sc, struct srv *s, const char *prompt)
{
	const char *ns, *name, *server, *raw;
	ssize_t k = toolmap_add_flat(sc->prompt_map, srv_name(s), prompt);

	if (k < 0)
		return NULL;
	toolmap_entry(sc->prompt_map, (size_t)k, &ns, &name, &server, &raw);
	return name;
}

struct srv *gateway_scope_prompt(struct gw_scope *sc, const char *name, const char **prompt)
{
	const char *ns, *flat, *server;

	for (size_t i = 0; sc->prompt_map && i < toolmap_count(sc->prompt_map); i++) {
		toolmap_entry(sc->prompt_map, i, &ns, &flat, &server, prompt);
		if (!strcmp(flat, name))
			return ready_named(sc, server);
	}
	return NULL;
}

/* ---- changes ---------------------------------------------------------------- */

static void check_cb(struct loop_timer *t, void *arg)
{
	struct gw_scope *sc = arg;

	sc->check = NULL;
	fresh(sc);
	for (size_t i = 0; i < ARRAY_SIZE(sc->fp); i++) {
		if (sc->fp[i] == sc->sent[i])
			continue;
		sc->sent[i] = sc->fp[i];
		if (scopes.changed)
			scopes.changed(sc, changed_method[i]);
	}
}

static void watch_cb(struct thread *t, void *arg);
static void settled_cb(struct thread *t, void *arg);

/* The scope's thread is going (deleted, or dropped after a store error):
 * its sessions keep an empty stand-in, so their tools go with a
 * list_changed; new sessions for the path are refused (find skips it). */
static void scope_orphan(struct gw_scope *sc)
{
	struct thread_spec spec = { .detached = true };
	char why[256];

	thread_unwatch(sc->t, watch_cb, sc);
	if (sc->waiting)
		thread_forget_waiter(sc->t, settled_cb, sc);
	sc->waiting = false;
	if (thread_new(&spec, 0, &sc->t, why, sizeof(why)) < 0)
		abort(); /* a spec with nothing in it cannot be refused */
	sc->gone = true;
	thread_watch(sc->t, watch_cb, sc);
}

static void watch_cb(struct thread *t, void *arg)
{
	struct gw_scope *sc = arg;

	if (thread_closing(t) && t == sc->t && sc->kind == SC_THREAD && !sc->gone)
		scope_orphan(sc);
	sc->dirty = true;
	if (!sc->check)
		sc->check = loop_timer_add(scopes.loop, 0, check_cb, sc);
}

/* ---- waiting ------------------------------------------------------------------ */

static void settled_cb(struct thread *t, void *arg)
{
	struct gw_scope *sc = arg;
	struct waiter *w;
	size_t n = sc->n_waiters;

	sc->waiting = false;
	w = xcalloc(n + 1, sizeof(*w));
	memcpy(w, sc->waiters, n * sizeof(*w));
	sc->n_waiters = 0;
	for (size_t i = 0; i < n; i++)
		w[i].cb(sc, w[i].arg);
	free(w);
}

void gateway_scope_when_ready(struct gw_scope *sc, gw_scope_cb cb, void *arg)
{
	if (sc->n_waiters == sc->cap_waiters) {
		sc->cap_waiters = sc->cap_waiters ? 2 * sc->cap_waiters : 4;
		sc->waiters = xrealloc(sc->waiters, sc->cap_waiters * sizeof(*sc->waiters));
	}
	sc->waiters[sc->n_waiters++] = (struct waiter){ cb, arg };
	if (sc->waiting)
		return;
	thread_project(sc->t);
	sc->waiting = true;
	thread_when_settled(sc->t, settled_cb, sc);
}

void gateway_scope_forget(struct gw_scope *sc, gw_scope_cb cb, void *arg)
{
	for (size_t i = 0; i < sc->n_waiters; i++) {
		if (sc->waiters[i].cb == cb && sc->waiters[i].arg == arg) {
			memmove(&sc->waiters[i], &sc->waiters[i + 1],
				(sc->n_waiters - i - 1) * sizeof(sc->waiters[0]));
			sc->n_waiters--;
			break;
		}
	}
	if (!sc->n_waiters && sc->waiting) {
		thread_forget_waiter(sc->t, settled_cb, sc);
		sc->waiting = false;
	}
}

/* ---- opening and closing -------------------------------------------------- */

static json_t *profile_cfg(const char *name)
{
	const struct config *c = config_current();

	return json_object_get(json_object_get(c->mcp_gateway, "profiles"), name);
}

static int profile_thread(struct gw_scope *sc, const char *name, json_t *cfg, char *why,
			  size_t len)
{
	json_t *roots = json_object_get(cfg, "roots"), *r;
	size_t n = json_array_size(roots), i;
	_cleanup_free_ struct thread_root_spec *rs = xcalloc(n + 1, sizeof(*rs));
	struct thread_spec spec = { .roots = rs, .n_roots = n, .detached = true };

	json_array_foreach(roots, i, r) {
		rs[i].id = json_string_value(json_object_get(r, "id"));
		rs[i].env_id = json_string_value(json_object_get(r, "environment_id"));
		rs[i].path = json_string_value(json_object_get(r, "path"));
		if (!envs_find(rs[i].env_id))
			log_warn("gateway: profile '%s', root '%s': no environment '%s'", name,
				 rs[i].id, rs[i].env_id);
	}
	if (thread_new(&spec, 0, &sc->t, why, len) < 0)
		return GW_UNAVAILABLE;
	sc->spec = json_incref(cfg);
	sc->allow = json_incref(json_object_get(cfg, "servers"));
	return 0;
}

/* Kind and thread of a path; an HTTP status with why when there is none. */
static int resolve(struct gw_scope *sc, const char *path, char *why, size_t len)
{
	const char *key;
	json_t *cfg;

	if (!strcmp(path, "/mcp")) {
		sc->kind = SC_GLOBAL;
		sc->t = thread_global();
		return 0;
	}
	if (!strncmp(path, "/mcp/threads/", 13)) {
		key = path + 13;
		sc->kind = SC_THREAD;
		sc->t = *key && !strchr(key, '/') ? thread_find(key) : NULL;
		if (!sc->t)
			snprintf(why, len, "no such thread%s%s%s", valid_ident(key, 64) ? " '" : "",
				 valid_ident(key, 64) ? key : "", valid_ident(key, 64) ? "'" : "");
		return sc->t ? 0 : GW_NOT_FOUND;
	}
	key = path + 14; /* "/mcp/profiles/" (gateway.c routed it here) */
	sc->kind = SC_PROFILE;
	cfg = profile_cfg(key);
	if (!cfg) {
		snprintf(why, len, "no such profile%s%s%s in config.toml's [mcp_gateway.profiles]",
			 valid_ident(key, 64) ? " '" : "", valid_ident(key, 64) ? key : "",
			 valid_ident(key, 64) ? "'" : "");
		return GW_NOT_FOUND;
	}
	return profile_thread(sc, key, cfg, why, len);
}

static struct gw_scope *find(const char *path)
{
	for (struct gw_scope *sc = scopes.list; sc; sc = sc->next) {
		if (sc->stale || sc->gone || strcmp(sc->path, path))
			continue;
		if (sc->kind != SC_PROFILE || json_equal(sc->spec, profile_cfg(path + 14)))
			return sc;
		sc->stale = true; /* its sessions keep it; new ones get the new profile */
	}
	return NULL;
}

int gateway_scope_open(const char *path, struct gw_scope **out, char *why, size_t len)
{
	struct gw_scope *sc = find(path);
	int st;

	if (sc) {
		sc->refs++;
		*out = sc;
		return 0;
	}
	sc = xcalloc(1, sizeof(*sc));
	st = resolve(sc, path, why, len);
	if (st) {
		json_decref(sc->spec);
		json_decref(sc->allow);
		free(sc);
		return st;
	}
	sc->path = xstrdup(path);
	sc->refs = 1;
	sc->next = scopes.list;
	scopes.list = sc;
	thread_watch(sc->t, watch_cb, sc);
	thread_project(sc->t);
	rebuild(sc);
	memcpy(sc->sent, sc->fp, sizeof(sc->sent));
	*out = sc;
	return 0;
}

struct gw_scope_loading {
	char *path;
	gw_opened_cb cb;
	void *arg;
	struct thread_loading *load;
};

static void loading_free(struct gw_scope_loading *l)
{
	free(l->path);
	free(l);
}

static void loaded_cb(struct thread *t, int rc, const char *err, void *arg)
{
	struct gw_scope_loading *l = arg;
	struct gw_scope *sc = NULL;
	char why[256];
	int st;

	if (t) {
		st = gateway_scope_open(l->path, &sc, why, sizeof(why));
	} else {
		st = rc == -ENOENT ? GW_NOT_FOUND : GW_UNAVAILABLE;
		snprintf(why, sizeof(why), "%s", err ? err : "the thread could not be loaded");
	}
	l->cb(st ? NULL : sc, st, why, l->arg);
	loading_free(l);
}

bool gateway_scope_loadable(const char *path)
{
	const char *key = path + 13;

	/* Only a thread's path: the store knows no other, and a key that
	 * is no id never reaches it. */
	return !strncmp(path, "/mcp/threads/", 13) && valid_ident(key, 64) && !thread_find(key);
}

struct gw_scope_loading *gateway_scope_load(const char *path, gw_opened_cb cb, void *arg)
{
	struct gw_scope_loading *l = xcalloc(1, sizeof(*l));
	struct thread_loading *h;

	l->path = xstrdup(path);
	l->cb = cb;
	l->arg = arg;
	/* Without a store thread_load answers at once: loaded_cb has run and
	 * freed l, and there is nothing to cancel. */
	h = thread_load(path + 13, 0, loaded_cb, l);
	if (!h)
		return NULL;
	l->load = h;
	return l;
}

void gateway_scope_load_cancel(struct gw_scope_loading *l)
{
	if (!l)
		return;
	thread_load_cancel(l->load); /* the load completes; loaded_cb does not run */
	loading_free(l);
}

static void scope_free(struct gw_scope *sc)
{
	for (struct gw_scope **pp = &scopes.list; *pp; pp = &(*pp)->next) {
		if (*pp == sc) {
			*pp = sc->next;
			break;
		}
	}
	if (sc->waiting)
		thread_forget_waiter(sc->t, settled_cb, sc);
	thread_unwatch(sc->t, watch_cb, sc);
	loop_timer_cancel(sc->check);
	lists_free(sc);
	toolmap_free(sc->prompt_map);
	if (sc->kind == SC_PROFILE || sc->gone)
		thread_free_detached(sc->t);
	json_decref(sc->spec);
	json_decref(sc->allow);
	free(sc->waiters);
	free(sc->path);
	free(sc);
}

void gateway_scope_close(struct gw_scope *sc)
{
	if (sc && --sc->refs == 0)
		scope_free(sc);
}

void gateway_scope_close_all(void)
{
	while (scopes.list)
		scope_free(scopes.list);
}
