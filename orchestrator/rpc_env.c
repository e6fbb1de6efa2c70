/* rpc_env.c - environment/status and environment/add. */
#include "rpc.h"

#include "client.h"
#include "env.h"
#include "envs.h"
#include "param.h"
#include "session.h"

#define CONNECT_TIMEOUT_MS_DEFAULT 10000
#define CONNECT_TIMEOUT_MS_MAX 3600000

void rpc_environment_status(struct req *r, json_t *params)
{
	const char *eid, *st;
	struct env *e;

	if (param_str(r, params, "environmentId", true, &eid) < 0)
		return;
	e = envs_find(eid);
	if (!e) {
		req_reply(r, json_pack("{s:s, s:n}", "status", "unknown", "error"));
		return;
	}
	st = env_state(e) == ENV_READY ? "ready" : env_state(e) == ENV_CONNECTING ? "pending"
									     : "disconnected";
	req_reply(r, json_pack("{s:s, s:s?}", "status", st, "error",
			       env_state(e) == ENV_READY ? NULL : env_error(e)));
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
