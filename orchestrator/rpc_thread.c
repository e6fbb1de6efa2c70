/* rpc_thread.c - thread/start, thread/list, thread/read; the client API
 * Thread object. */
#include "rpc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "config.h"
#include "envs.h"
#include "notify.h"
#include "param.h"
#include "session.h"
#include "thread.h"
#include "util.h"
#include "version.h"

#define LIST_LIMIT_MAX 1000u
#define ROOT_ID_MAX 1024u
#define ROOT_PATH_MAX 4096u

/* ---- the Thread object ------------------------------------------------- */

static json_t *environments_json(const struct thread *t)
{
	json_t *envs;

	if (!thread_has_envs(t))
		return json_null();
	envs = json_array();
	for (size_t i = 0; i < thread_n_envs(t); i++) {
		const char *cwd, *id = thread_env_at(t, i, &cwd);

		if (!cwd)
			cwd = thread_cwd(t) ? thread_cwd(t) : "/";
		json_array_append_new(envs, json_pack("{s:s, s:s, s:[]}", "environmentId", id, "cwd",
						      cwd, "runtimeWorkspaceRoots"));
	}
	return envs;
}

static json_t *thread_object(const struct thread *t)
{
	const struct config *c = config_current();
	const char *provider = c && c->model_provider ? c->model_provider : "openai";
	const char *model = thread_model(t) ? thread_model(t) : c ? c->model : NULL;
	const char *cwd = thread_cwd(t) ? thread_cwd(t) : "/";
	json_int_t created = (json_int_t)thread_created_at(t);

	return json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:b, s:s?, s:s, s:s, s:n, s:s, s:{s:s}, "
			 "s:[], s:o}",
			 "id", thread_id(t), "sessionId", thread_id(t), "cliVersion", TANDEM_VERSION,
			 "createdAt", created, "updatedAt", created, "cwd", cwd, "ephemeral", 1,
			 "model", model, "modelProvider", provider, "preview", "", "projectId",
			 "source", "appServer", "status", "type", "idle", "turns", "environments",
			 environments_json(t));
}

/* ---- thread/start ------------------------------------------------------ */

static bool path_ok(const char *p)
{
	return p[0] == '/' || strncmp(p, "file:", 5) == 0;
}

/* selectedCapabilityRoots[i] -> out. -EINVAL with a reason naming it. */
static int parse_root(json_t *r, size_t i, struct thread_root_spec *out, char *err,
		      size_t errlen)
{
	json_t *loc = json_object_get(r, "location");
	const char *id = json_string_value(json_object_get(r, "id"));
	const char *type = json_string_value(json_object_get(loc, "type"));
	const char *envid = json_string_value(json_object_get(loc, "environmentId"));
	const char *path = json_string_value(json_object_get(loc, "path"));

	if (!json_is_object(r) || !id || !*id || strlen(id) > ROOT_ID_MAX) {
		snprintf(err, errlen, "selectedCapabilityRoots[%zu].id must be a non-empty string", i);
		return -EINVAL;
	}
	if (!json_is_object(loc) || !type || strcmp(type, "environment") != 0) {
		snprintf(err, errlen, "selectedCapabilityRoots[%zu].location.type must be \"environment\"",
			 i);
		return -EINVAL;
	}
	if (!envid || !envs_find(envid)) {
		snprintf(err, errlen, "selectedCapabilityRoots[%zu].location.environmentId: %s%s%s", i,
			 envid ? "unknown environment '" : "missing", envid ? envid : "",
			 envid ? "'" : "");
		return -EINVAL;
	}
	if (!path || !path_ok(path) || strlen(path) > ROOT_PATH_MAX) {
		snprintf(err, errlen,
			 "selectedCapabilityRoots[%zu].location.path must be an absolute path or a file: URI",
			 i);
		return -EINVAL;
	}
	*out = (struct thread_root_spec){ .id = id, .env_id = envid, .path = path };
	return 0;
}

static int parse_roots(json_t *arr, struct thread_spec *spec, char *err, size_t errlen)
{
	struct thread_root_spec *roots;
	size_t i;
	json_t *r;

	if (!arr)
		return 0;
	if (json_array_size(arr) > THREAD_MAX_ROOTS) {
		snprintf(err, errlen, "selectedCapabilityRoots: at most %u roots", THREAD_MAX_ROOTS);
		return -EINVAL;
	}
	roots = xcalloc(json_array_size(arr) + 1, sizeof(*roots));
	spec->roots = roots;
	json_array_foreach(arr, i, r) {
		if (parse_root(r, i, &roots[i], err, errlen) < 0)
			return -EINVAL;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(roots[j].id, roots[i].id) == 0) {
				snprintf(err, errlen, "selectedCapabilityRoots[%zu].id '%s' is a duplicate",
					 i, roots[i].id);
				return -EINVAL;
			}
		}
	}
	spec->n_roots = json_array_size(arr);
	return 0;
}

static int parse_environments(json_t *arr, struct thread_spec *spec, char *err, size_t errlen)
{
	struct thread_env_spec *envs;
	json_t *e, *cwd;
	size_t i;

	if (!arr)
		return 0;
	envs = xcalloc(json_array_size(arr) + 1, sizeof(*envs));
	spec->envs = envs;
	json_array_foreach(arr, i, e) {
		const char *id = json_string_value(json_object_get(e, "environmentId"));

		if (!id || !envs_find(id)) {
			snprintf(err, errlen, "environments[%zu].environmentId: %s%s", i,
				 id ? "unknown environment " : "missing", id ? id : "");
			return -EINVAL;
		}
		cwd = json_object_get(e, "cwd");
		if (cwd && !json_is_null(cwd) && !json_is_string(cwd)) {
			snprintf(err, errlen, "environments[%zu].cwd: expected a string", i);
			return -EINVAL;
		}
		envs[i] = (struct thread_env_spec){ .env_id = id, .cwd = json_string_value(cwd) };
	}
	spec->n_envs = json_array_size(arr);
	return 0;
}

static int parse_spec(struct req *r, json_t *params, struct thread_spec *spec)
{
	json_t *envs, *roots;
	char err[512];

	if (param_str(r, params, "model", false, &spec->model) < 0 ||
	    param_str(r, params, "cwd", false, &spec->cwd) < 0 ||
	    param_array(r, params, "environments", &envs) < 0 ||
	    param_array(r, params, "selectedCapabilityRoots", &roots) < 0)
		return -EINVAL;
	if (parse_environments(envs, spec, err, sizeof(err)) < 0 ||
	    parse_roots(roots, spec, err, sizeof(err)) < 0) {
		req_error(r, CLIENT_INVALID_PARAMS, "%s", err);
		return -EINVAL;
	}
	return 0;
}

void rpc_thread_start(struct req *r, json_t *params)
{
	struct thread_spec spec = { 0 };
	uint64_t owner = req_owner(r);
	struct thread *t = NULL;
	json_t *obj, *res;
	char err[512];

	if (parse_spec(r, params, &spec) == 0 && thread_new(&spec, owner, &t, err, sizeof(err)) < 0)
		req_error(r, CLIENT_INVALID_PARAMS, "%s", err);
	free((void *)spec.envs);
	free((void *)spec.roots);
	if (!t)
		return;
	obj = thread_object(t);
	res = json_pack("{s:O, s:O, s:O, s:O, s:s, s:s, s:{s:s}}", "thread", obj, "model",
			json_object_get(obj, "model") ? json_object_get(obj, "model") : json_null(),
			"modelProvider", json_object_get(obj, "modelProvider"), "cwd",
			json_object_get(obj, "cwd"), "approvalPolicy", "never", "approvalsReviewer",
			"user", "sandbox", "type", "dangerFullAccess");
	if (json_is_null(json_object_get(res, "model")))
		json_object_set_new(res, "model", json_string(""));
	req_reply(r, res);
	notify_owner(owner, NOTIFY_THREAD_STARTED, json_pack("{s:o}", "thread", obj));
	thread_project(t); /* resolution starts now; the answer did not wait for it */
}

/* ---- thread/list, thread/read ------------------------------------------ */

void rpc_thread_list(struct req *r, json_t *params)
{
	struct thread *t = thread_first(), *last = NULL;
	const char *cursor;
	int64_t limit = 50;
	json_t *data;

	if (param_int(r, params, "limit", 1, LIST_LIMIT_MAX, &limit) < 0 ||
	    param_str(r, params, "cursor", false, &cursor) < 0)
		return;
	if (cursor) { /* the id of the last thread of the previous page */
		while (t && strcmp(thread_id(t), cursor) != 0)
			t = thread_next(t);
		if (!t) {
			req_error(r, CLIENT_INVALID_PARAMS, "cursor: unknown");
			return;
		}
		t = thread_next(t);
	}
	data = json_array();
	for (; t && json_array_size(data) < (size_t)limit; t = thread_next(t)) {
		json_array_append_new(data, thread_object(t));
		last = t;
	}
	req_reply(r, json_pack("{s:o, s:o}", "data", data, "nextCursor",
			       t && last ? json_string(thread_id(last)) : json_null()));
}

void rpc_thread_read(struct req *r, json_t *params)
{
	struct thread *t;

	if (param_thread(r, params, true, &t) == 0)
		req_reply(r, json_pack("{s:o}", "thread", thread_object(t)));
}
