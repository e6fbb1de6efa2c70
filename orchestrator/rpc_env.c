/* rpc_env.c - environment/status, environment/add, environment/remove and
 * environment/list. */
#include "rpc.h"

#include <errno.h>

#include "client.h"
#include "env.h"
#include "envs.h"
#include "param.h"
#include "session.h"

#define CONNECT_TIMEOUT_MS_DEFAULT 10000
#define CONNECT_TIMEOUT_MS_MAX 3600000

static const char *status_name(const struct env *e)
{
	switch (env_state(e)) {
	case ENV_READY: return "ready";
	case ENV_CONNECTING: return "pending";
	default: return "disconnected";
	}
}

/* The Codex fields (status, error) and tandem's: direction, reconnects,
 * lastError (kept once ready again), rttMs (last keepalive round trip),
 * sessionId and resumes (the link session, protocol 3),
 * dialAttempts and redialDelayMs (the backoff: how often a dead address is
 * tried). README "Environment status". */
static json_t *describe(const struct env *e)
{
	char sid[33];
	json_t *o = json_pack("{s:s, s:s?, s:s, s:I, s:s?, s:I, s:I, s:b}", "status",
			      status_name(e), "error",
			      env_state(e) == ENV_READY ? NULL : env_error(e), "direction",
			      env_direction_name(env_direction(e)), "reconnects",
			      (json_int_t)env_reconnects(e), "lastError", env_last_error(e),
			      "dialAttempts", (json_int_t)env_dial_attempts(e), "redialDelayMs",
			      (json_int_t)env_redial_delay_ms(e), "sealed", env_sealed(e));

	json_object_set_new(o, "rttMs", env_rtt_us(e) ? json_real((double)env_rtt_us(e) / 1000.0)
						       : json_null());
	if (env_executor_id(e))
		json_object_set_new(o, "executorId", json_string(env_executor_id(e)));
	env_session_hex(e, sid);
	/* the link session (protocol 3): kept while it waits to resume */
	json_object_set_new(o, "sessionId", sid[0] ? json_string(sid) : json_null());
	json_object_set_new(o, "resumes", json_integer((json_int_t)env_resumes(e)));
	return o;
}

void rpc_environment_status(struct req *r, json_t *params)
{
	const char *eid;
	struct env *e;

	if (param_str(r, params, "environmentId", true, &eid) < 0)
		return;
	e = envs_find(eid);
	if (!e) {
		req_reply(r, json_pack("{s:s, s:n}", "status", "unknown", "error"));
		return;
	}
	req_reply(r, describe(e));
}

void rpc_environment_add(struct req *r, json_t *params)
{
	const char *eid, *url, *token;
	int64_t timeout = CONNECT_TIMEOUT_MS_DEFAULT;
	char err[512];

	if (param_str(r, params, "environmentId", true, &eid) < 0 ||
	    param_str(r, params, "execServerUrl", true, &url) < 0 ||
	    param_str(r, params, "authBearerToken", false, &token) < 0 ||
	    param_int(r, params, "connectTimeoutMs", 1, CONNECT_TIMEOUT_MS_MAX, &timeout) < 0)
		return;
	if (envs_add(eid, url, token, (uint64_t)timeout, err, sizeof(err)) < 0) {
		req_error(r, CLIENT_INVALID_PARAMS, "%s", err);
		return;
	}
	req_reply(r, json_object());
}

void rpc_environment_remove(struct req *r, json_t *params)
{
	const char *eid;
	char err[512];

	if (param_str(r, params, "environmentId", true, &eid) < 0)
		return;
	if (envs_remove(eid, err, sizeof(err)) < 0) {
		req_error(r, CLIENT_INVALID_PARAMS, "%s", err);
		return;
	}
	req_reply(r, json_object());
}

static void list_one(struct env *e, bool runtime, void *arg)
{
	json_t *o = describe(e);

	json_object_set_new(o, "environmentId", json_string(env_id(e)));
	json_object_set_new(o, "removable", json_boolean(runtime));
	json_array_append_new(arg, o);
}

void rpc_environment_list(struct req *r, json_t *params)
{
	json_t *data = json_array();

	(void)params;
	envs_foreach(list_one, data);
	req_reply(r, json_pack("{s:o, s:I, s:I}", "data", data, "count", (json_int_t)envs_count(),
			       "max", (json_int_t)envs_max()));
}
