/* rpc_mcp_oauth.c - mcpServer/oauth/login: finds the server the client
 * names, starts the login (oauth_login.h) and answers with its URL; the
 * outcome comes later as mcpServer/oauthLogin/completed. */
#include "rpc.h"

#include <errno.h>
#include <string.h>

#include "client.h"
#include "config.h"
#include "oauth.h"
#include "oauth_login.h"
#include "param.h"
#include "session.h"
#include "srv.h"
#include "thread.h"
#include "util.h"

struct login_req {
	struct req *r;
	struct oauth_login *lg;
	char *name;
};

static void login_req_free(struct login_req *q)
{
	free(q->name);
	free(q);
}

static void answer_cb(int err, const char *login_id, const char *url, const char *why, void *arg)
{
	struct login_req *q = arg;

	if (err == 0)
		req_reply(q->r, json_pack("{s:s, s:s}", "authorizationUrl", url, "loginId",
					  login_id));
	else if (err == -ECANCELED)
		req_error(q->r, CLIENT_INTERNAL_ERROR, "%s", why);
	else
		req_error(q->r, CLIENT_INVALID_PARAMS, "OAuth login for '%s' failed: %s", q->name,
			  why);
	login_req_free(q);
}

/* The client went away before it got the URL: nobody can use it. */
static void cancel_cb(void *arg)
{
	struct login_req *q = arg;

	oauth_login_abandon(q->lg);
	req_drop(q->r);
	login_req_free(q);
}

/* The server the client names: in the thread's view, or config.toml.
 * Answers r and returns NULL when there is none. */
static json_t *find_server(struct req *r, struct thread *t, const char *name,
			   struct oauth_login_spec *spec)
{
	const struct config *c = config_current();
	struct srv *s;

	if (t) {
		thread_project(t);
		s = thread_server(t, name);
		if (!s) {
			req_error(r, CLIENT_INVALID_PARAMS, "no MCP server '%.100s' in thread %.100s",
				  name, thread_id(t));
			return NULL;
		}
		spec->plugin_id = srv_plugin_id(s);
		spec->www_authenticate = srv_www_authenticate(s);
		return srv_cfg(s);
	}
	if (c && json_object_get(c->mcp_servers, name))
		return json_object_get(c->mcp_servers, name);
	req_error(r, CLIENT_INVALID_PARAMS,
		  "no MCP server '%.100s' in config.toml (pass threadId for a plugin's server)",
		  name);
	return NULL;
}

/* clientRegistration: auto (default) or dcr. */
static int registration(struct req *r, json_t *params, bool *dcr)
{
	const char *reg;

	if (param_str(r, params, "clientRegistration", false, &reg) < 0)
		return -EINVAL;
	if (reg && strcmp(reg, "auto") && strcmp(reg, "dcr") && strcmp(reg, "cimd")) {
		req_error(r, CLIENT_INVALID_PARAMS, "clientRegistration: expected auto, dcr or cimd");
		return -EINVAL;
	}
	if (reg && strcmp(reg, "cimd") == 0) {
		req_error(r, CLIENT_INVALID_PARAMS,
			  "clientRegistration cimd is not supported: tandem has no client "
			  "metadata document URL; use auto or dcr");
		return -EINVAL;
	}
	*dcr = reg && strcmp(reg, "dcr") == 0;
	return 0;
}

void rpc_mcp_server_oauth_login(struct req *r, json_t *params)
{
	struct oauth_login_spec spec = { .owner = req_owner(r) };
	int64_t timeout_s = 0;
	struct login_req *q;
	struct thread *t;
	char err[512];
	int rc;

	if (param_str(r, params, "name", true, &spec.server) < 0 ||
	    param_int(r, params, "timeoutSecs", 1, OAUTH_MAX_TIMEOUT_S, &timeout_s) < 0 ||
	    registration(r, params, &spec.dcr) < 0 ||
	    param_str_array(r, params, "scopes", &spec.scopes) < 0 ||
	    param_thread(r, params, false, &t) < 0)
		return;
	if (!(spec.cfg = find_server(r, t, spec.server, &spec)))
		return;
	spec.thread_id = t ? thread_id(t) : NULL;
	spec.timeout_ms = (uint64_t)timeout_s * 1000u;
	q = xcalloc(1, sizeof(*q));
	q->r = r;
	q->name = xstrdup(spec.server);
	rc = oauth_login_start(&spec, answer_cb, q, &q->lg, err, sizeof(err));
	if (rc < 0) {
		req_error(r, rc == -EINVAL   ? CLIENT_INVALID_PARAMS
			     : rc == -EMFILE ? CLIENT_INVALID_REQUEST
					     : CLIENT_INTERNAL_ERROR,
			  "%s", err);
		login_req_free(q);
		return;
	}
	req_on_cancel(r, cancel_cb, q);
}
