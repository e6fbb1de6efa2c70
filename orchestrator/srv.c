/* srv.c - see srv.h. */
#include "srv.h"

#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "env.h"
#include "envs.h"
#include "log.h"
#include "loop.h"
#include "mcp.h"
#include "mcphttp.h"
#include "metrics_tandem.h"
#include "oauth_store.h"
#include "proto.h"
#include "secret.h"
#include "utf8.h"
#include "util.h"

#define BACKOFF_MIN_MS 250u
#define BACKOFF_MAX_MS 30000u
#define MAX_FAILURES 5u /* in a row, with the environment up: then report it */
#define CAP_RETRY_MS 2000u /* refused by the executor's process cap: try again (+- jitter) */
struct cb_entry {
	srv_cb cb;
	void *arg;
};

struct cb_list {
	struct cb_entry *v;
	unsigned n, cap;
};

struct srv {
	struct srv *next;
	char *key;
	char *name;
	char *plugin_id;
	json_t *cfg;
	unsigned refs;
	enum srv_state state;
	char *error;
	/* stdio on an executor */
	struct env *env;
	char *env_id;
	uint32_t start_req;
	uint64_t handle;
	struct mcp_transport transport;
	struct mcp_session *mcp;
	struct mcphttp *http; /* streamable HTTP, run from the orchestrator */
	bool dying; /* released while its MCP_START was in flight */
	bool env_wait; /* STARTING until its environment, still connecting, is up */
	bool needs_login; /* HTTP: the server refused us with 401 */
	char *sandbox;    /* stdio: how the executor boxed it (MCP_START reply) */
	char *www_auth;   /* ... and its WWW-Authenticate (discovery hint) */
	/* restart backoff */
	bool cap_wait;     /* the executor's process cap refused it: retried when it frees */
	uint64_t attach_handle; /* an MCP_ATTACH in flight for this detached server */
	bool attach_by_id;  /* ... one the executor did not list: by its identity */
	bool no_id_attach;  /* it was not there: the next start is a new process */
	unsigned failures;
	uint64_t retry_at_ms;
	struct loop_timer *restart_timer;
	bool started; /* srv_start ran before (a next start is a restart) */
	/* callbacks */
	struct cb_list waiters;
	struct cb_list watchers;
};

static struct {
	struct loop *loop;
	struct srv *list; /* every live instance */
	uint64_t starts;  /* MCP server processes started, for debug/counters */
	uint64_t reattaches; /* detached servers taken over (MCP_ATTACH) */
} pool;

void srv_init(struct loop *l) { pool.loop = l; }
uint64_t srv_starts(void) { return pool.starts; }
uint64_t srv_reattaches(void) { return pool.reattaches; }

/* Calls every entry of a snapshot: callbacks may change the list. */
static void cb_run(struct srv *s, const struct cb_list *l, bool clear)
{
	unsigned n = l->n;
	struct cb_entry *w;

	if (!n)
		return;
	w = xmalloc(n * sizeof(*w));
	memcpy(w, l->v, n * sizeof(*w));
	if (clear)
		((struct cb_list *)l)->n = 0;
	for (unsigned i = 0; i < n; i++)
		w[i].cb(s, w[i].arg);
	free(w);
}

static void srv_start(struct srv *s);
static void note_sandbox(struct srv *s, const struct proto_mcp_start_reply *r);

static const char *srv_state_name(enum srv_state st)
{
	switch (st) {
	case SRV_STARTING: return "starting";
	case SRV_READY: return "ready";
	default: return "failed";
	}
}

static void set_state(struct srv *s, enum srv_state st, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_state(struct srv *s, enum srv_state st, const char *fmt, ...)
{
	va_list ap;

	free(s->error);
	s->error = NULL;
	if (fmt) {
		va_start(ap, fmt);
		if (vasprintf(&s->error, fmt, ap) < 0)
			s->error = NULL;
		va_end(ap);
	}
	s->state = st;
	if (st == SRV_READY) {
		s->failures = 0;
		s->needs_login = false;
	}
	if (st == SRV_FAILED) {
		/* Only a failure of the server itself counts towards giving up;
		 * an environment that is down is waited for (srv_env_changed). */
		if ((!s->env || env_state(s->env) == ENV_READY) && !s->cap_wait)
			s->failures++; /* no env: reached from the orchestrator */
		s->retry_at_ms = now_ms() + MIN(BACKOFF_MAX_MS,
						 BACKOFF_MIN_MS << MIN(s->failures ? s->failures - 1 : 0, 8u));
		log_warn("server '%s': %s", s->name, s->error ? s->error : "failed");
	} else {
		log_info("server '%s': %s", s->name, srv_state_name(st));
	}
	cb_run(s, &s->watchers, false);
	if (st != SRV_STARTING)
		cb_run(s, &s->waiters, true);
}

/* ---- MCP session over the executor relay ------------------------------- */

static int relay_send(void *ctx, const char *json, size_t len)
{
	struct srv *s = ctx;

	if (!s->env || !s->handle)
		return -ENOTCONN;
	return env_mcp_send(s->env, s->handle, json, len);
}

/* Tool calls carry their deadline to the executor (honest outcomes). */
static int relay_send_request(void *ctx, const char *json, size_t len, uint64_t id,
			      uint64_t timeout_ms, uint64_t *ticket)
{
	struct srv *s = ctx;

	if (!s->env || !s->handle)
		return -ENOTCONN;
	return env_mcp_send_call(s->env, s->handle, json, len, id, timeout_ms, ticket);
}

static bool relay_maybe_reached(void *ctx, uint64_t ticket)
{
	struct srv *s = ctx;

	return !s->env || env_mcp_maybe_reached(s->env, ticket);
}

static void relay_cancel_request(void *ctx, uint64_t id, const char *reason)
{
	struct srv *s = ctx;

	if (s->env && s->handle)
		(void)env_mcp_cancel(s->env, s->handle, id, reason);
}

static void relay_remember(void *ctx, const char *note, size_t len)
{
	struct srv *s = ctx;

	if (s->env && s->handle && env_mcp_note(s->env, s->handle, note, len) == -EMSGSIZE)
		log_info("server '%s': what initialize said is over %u bytes: a later "
			 "orchestrator that re-attaches it will not know it", s->name,
			 PROTO_MAX_NOTE);
}

static void stop_process(struct srv *s)
{
	struct proto_mcp_stop_body b = { .handle = s->handle };

	if (s->env && s->handle && env_state(s->env) == ENV_READY)
		env_request(s->env, PROTO_MCP_STOP, &b, 5000, NULL, NULL);
	s->handle = 0;
	s->http = mcphttp_free(s->http);
}

static void mcp_state_cb(struct mcp_session *m, enum mcp_state st, const char *error, void *arg)
{
	struct srv *s = arg;

	if (st == MCP_READY) {
		set_state(s, SRV_READY, NULL);
	} else if (st == MCP_FAILED || st == MCP_CLOSED) {
		s->needs_login = s->http && mcphttp_unauthorized(s->http);
		free(s->www_auth);
		s->www_auth = s->needs_login && mcphttp_www_authenticate(s->http)
				      ? xstrdup(mcphttp_www_authenticate(s->http))
				      : NULL;
		stop_process(s);
		set_state(s, SRV_FAILED, "%s", error ? error : "the MCP session ended");
	}
}

static void mcp_tools_changed_cb(struct mcp_session *m, void *arg)
{
	cb_run(arg, &((struct srv *)arg)->watchers, false);
}

static const struct mcp_session_ops session_ops = {
	.state_cb = mcp_state_cb,
	.tools_changed_cb = mcp_tools_changed_cb,
};

static uint64_t cfg_ms(json_t *cfg, const char *key, uint64_t dflt)
{
	json_t *v = json_object_get(cfg, key);

	return json_is_number(v) ? (uint64_t)(json_number_value(v) * 1000.0) : dflt;
}

static void cap_retry_cb(struct loop_timer *t, void *arg)
{
	struct srv *s = arg;

	s->restart_timer = NULL;
	if (s->cap_wait && s->state != SRV_READY && !s->start_req)
		srv_start(s);
}

/* The executor's process cap refused it: not the server's fault, so it
 * does not count towards giving up; it is tried again when a process on
 * that executor exits (srv_on_exited) or after CAP_RETRY_MS, whichever
 * comes first, for as long as someone holds it. */
static void wait_for_cap(struct srv *s, const char *error)
{
	s->cap_wait = true;
	/* The timer first: a waiter called from set_state that retries finds
	 * it and leaves the server FAILED instead of arming its own. */
	loop_timer_cancel(s->restart_timer);
	s->restart_timer = loop_timer_add(pool.loop, CAP_RETRY_MS / 2 +
					  randombytes_uniform(CAP_RETRY_MS), cap_retry_cb, s);
	set_state(s, SRV_FAILED, "cannot start: %s (tried again when the cap frees)", error);
}

/* A process is there (started, or re-attached): its MCP session opens
 * (adopt: already initialized by an earlier orchestrator). */
static void open_session(struct srv *s, bool adopt, const char *note, size_t note_len)
{
	struct mcp_opts o = { 0 };

	o.name = s->name;
	o.startup_timeout_ms = cfg_ms(s->cfg, "startup_timeout_sec", 30000);
	o.tool_timeout_ms = cfg_ms(s->cfg, "tool_timeout_sec", 300000);
	s->transport.send = relay_send;
	s->transport.send_request = relay_send_request;
	s->transport.maybe_reached = relay_maybe_reached;
	s->transport.cancel_request = relay_cancel_request;
	s->transport.remember = relay_remember;
	s->transport.ctx = s;
	s->mcp = mcp_session_new(pool.loop, &o, &s->transport, &session_ops, s);
	if ((adopt ? mcp_session_adopt(s->mcp, note, note_len) : mcp_session_start(s->mcp)) < 0) {
		stop_process(s);
		set_state(s, SRV_FAILED, "cannot start the MCP session: %s",
			  mcp_session_error(s->mcp) ? mcp_session_error(s->mcp) : "send failed");
	}
}

/* A reply for a server released meanwhile: stop what came up, free. */
static bool reply_for_dying(struct srv *s, struct env *e, uint64_t handle)
{
	if (!s->dying)
		return false;
	if (handle) {
		struct proto_mcp_stop_body b = { .handle = handle };

		env_request(e, PROTO_MCP_STOP, &b, 5000, NULL, NULL);
	}
	free(s);
	return true;
}

static void start_reply_cb(struct env *e, const struct proto_msg *reply, const char *error,
			   void *arg)
{
	struct srv *s = arg;

	s->start_req = 0;
	if (reply_for_dying(s, e, reply ? reply->u.mcp_start_reply.handle : 0))
		return;
	if (!reply) {
		if (env_reply_status(e) == PROTO_E_LIMIT)
			wait_for_cap(s, error);
		else
			set_state(s, SRV_FAILED, "cannot start: %s", error);
		return;
	}
	s->cap_wait = false;
	s->handle = reply->u.mcp_start_reply.handle;
	note_sandbox(s, &reply->u.mcp_start_reply);
	pool.starts++;
	open_session(s, false, NULL, 0);
}

static void start_stdio(struct srv *s);

static void attach_reply_cb(struct env *e, const struct proto_msg *reply, const char *error,
			    void *arg)
{
	struct srv *s = arg;
	uint64_t handle = s->attach_handle;
	bool by_id = s->attach_by_id;

	s->start_req = 0;
	s->attach_handle = 0;
	s->attach_by_id = false;
	if (reply && by_id) {
		handle = reply->u.mcp_attach_reply.handle;
		if (!handle) {
			reply = NULL;
			error = "the executor's reply named no process";
		}
	}
	if (reply_for_dying(s, e, reply ? handle : 0))
		return;
	if (!reply && by_id) {
		/* not among those the executor kept: a new one, this once */
		log_debug("server '%s': no detached instance on '%s' (%s): starting one",
			  s->name, s->env_id, error);
		s->no_id_attach = true;
		if (env_state(e) == ENV_READY)
			start_stdio(s);
		else
			set_state(s, SRV_FAILED, "environment '%s' is not connected", s->env_id);
		return;
	}
	if (!reply) {
		/* gone meanwhile (its grace ended, it exited): a new one */
		log_info("server '%s': cannot re-attach process %llu (%s): starting a new one",
			 s->name, (unsigned long long)handle, error);
		if (env_state(e) == ENV_READY)
			start_stdio(s);
		else
			set_state(s, SRV_FAILED, "cannot re-attach: %s", error);
		return;
	}
	s->cap_wait = false;
	s->handle = handle;
	pool.reattaches++;
	log_info("server '%s': re-attached process %llu (pid %u) kept by environment '%s'%s",
		 s->name, (unsigned long long)handle, reply->u.mcp_attach_reply.pid, s->env_id,
		 reply->u.mcp_attach_reply.dropped_lines ? " (some output it printed was dropped)"
							 : "");
	open_session(s, true, reply->u.mcp_attach_reply.note.ptr,
		     reply->u.mcp_attach_reply.note.len);
}

/* What the server is, as the executor reports it while detached: a digest
 * of its environment and pool key (name, root, normalized config). */
static void srv_identity(const struct srv *s, uint8_t out[PROTO_ID_LEN])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, PROTO_ID_LEN);
	crypto_generichash_update(&st, (const uint8_t *)s->env_id, strlen(s->env_id) + 1);
	crypto_generichash_update(&st, (const uint8_t *)s->key, strlen(s->key));
	crypto_generichash_final(&st, out, PROTO_ID_LEN);
}

/* A variable a server may not get from the orchestrator's environment:
 * the secrets it holds (model keys, the token store key, link tokens,
 * bearer token variables: main.c) and its own TANDEM_* settings. */
static bool local_var_refused(const char *name)
{
	return secret_env_held(name) || strncmp(name, "TANDEM_", 7) == 0;
}

/* env_vars with source "local" are the orchestrator's to resolve (they name
 * its own environment); "remote" ones the executor resolves at spawn. A
 * local one the orchestrator keeps to itself fails the server, with the
 * reason in why (README "What an executor and a server inherit"). */
static int split_env(json_t *cfg, struct proto_strmap *env, struct proto_strlist *vars,
		     struct proto_str *keys, struct proto_str *vals, struct proto_str *names,
		     char *why, size_t whylen)
{
	json_t *lit = json_object_get(cfg, "env"), *ev = json_object_get(cfg, "env_vars"), *v;
	const char *k;
	size_t i;

	env->keys = keys;
	env->vals = vals;
	vars->items = names;
	json_array_foreach(ev, i, v) {
		const char *name = json_string_value(json_object_get(v, "name"));
		const char *src = json_string_value(json_object_get(v, "source"));

		if (!name)
			continue;
		if (src && strcmp(src, "local") == 0) {
			const char *val = getenv(name);

			if (local_var_refused(name)) {
				snprintf(why, whylen, "env_vars '%s' (source \"local\"): the "
					 "orchestrator never gives its own secrets and TANDEM_* "
					 "settings to an MCP server (set a value with 'env')",
					 name);
				return -EPERM;
			}
			if (val) {
				keys[env->n] = proto_str_c(name);
				vals[env->n++] = proto_str_c(val);
			}
		} else {
			names[vars->n++] = proto_str_c(name);
		}
	}
	json_object_foreach(lit, k, v) {
		keys[env->n] = proto_str_c(k);
		vals[env->n++] = proto_str_c(json_string_value(v));
	}
	return 0;
}

/* MCP_START's root and sandbox (PROTOCOL.md): the plugin root the executor
 * resolved (thread.c keeps it in the config as "plugin_root"), and the
 * sandbox and network keys of the normalized config, for every server, so
 * that a config.toml server with a sandbox table is boxed too. Returns the
 * JSON text the body points to (caller frees). */
static char *box_fields(const struct srv *s, struct proto_mcp_start_body *b)
{
	const char *root = json_string_value(json_object_get(s->cfg, "plugin_root"));
	json_t *box = json_object(), *v;
	char *text;

	if (root) {
		b->root = proto_str_c(root);
		PROTO_MARK(b, mcp_start_body, root);
	}
	if ((v = json_object_get(s->cfg, "sandbox")))
		json_object_set(box, "sandbox", v);
	if ((v = json_object_get(s->cfg, "network")))
		json_object_set(box, "network", v);
	text = json_dumps(box, JSON_COMPACT);
	json_decref(box);
	b->sandbox = proto_str_c(text);
	PROTO_MARK(b, mcp_start_body, sandbox);
	return text;
}

/* The box the executor reports: "landlock ABI 7, ..." or "off: why". */
static void note_sandbox(struct srv *s, const struct proto_mcp_start_reply *r)
{
	size_t n = MIN(r->sandbox.len, SRV_SANDBOX_MAX);

	free(s->sandbox);
	s->sandbox = NULL;
	if (PROTO_HAS_FIELD(r, mcp_start_reply, sandbox) && n)
		s->sandbox = xstrndup(r->sandbox.ptr, utf8_trim(r->sandbox.ptr, n));
}

const char *srv_sandbox(const struct srv *s) { return s->sandbox; }

static void start_stdio(struct srv *s)
{
	json_t *args = json_object_get(s->cfg, "args"), *v;
	size_t na = json_array_size(args), ne = json_object_size(json_object_get(s->cfg, "env")) +
					       json_array_size(json_object_get(s->cfg, "env_vars"));
	_cleanup_free_ struct proto_str *a = xcalloc(na + 1, sizeof(*a));
	_cleanup_free_ struct proto_str *keys = xcalloc(ne + 1, sizeof(*keys));
	_cleanup_free_ struct proto_str *vals = xcalloc(ne + 1, sizeof(*vals));
	_cleanup_free_ struct proto_str *names = xcalloc(ne + 1, sizeof(*names));
	struct proto_mcp_start_body b = { 0 };
	const char *cwd = json_string_value(json_object_get(s->cfg, "cwd"));
	_cleanup_free_ char *box = NULL;
	uint8_t id[PROTO_ID_LEN];
	uint64_t kept;
	char why[512];
	size_t i;

	srv_identity(s, id);
	if (env_claim_detached(s->env, id, &kept)) {
		struct proto_mcp_attach_body ab = { .handle = kept };

		/* The executor kept this very server from an earlier link: the
		 * same process and MCP session, taken over. */
		PROTO_MARK(&ab, mcp_attach_body, handle);
		s->attach_handle = kept;
		s->start_req = env_request(s->env, PROTO_MCP_ATTACH, &ab, SRV_START_TIMEOUT_MS,
					   attach_reply_cb, s);
		if (s->start_req)
			return;
		s->attach_handle = 0;
	} else if (env_detached_more(s->env) && !s->no_id_attach) {
		struct proto_mcp_attach_body ab = { .identity = { (const char *)id, PROTO_ID_LEN } };

		/* It kept more than its HELLO reply could list: this one may be
		 * among them (a round trip; NOT_FOUND starts a new one). */
		PROTO_MARK(&ab, mcp_attach_body, identity);
		s->attach_by_id = true;
		s->start_req = env_request(s->env, PROTO_MCP_ATTACH, &ab, SRV_START_TIMEOUT_MS,
					   attach_reply_cb, s);
		if (s->start_req)
			return;
		s->attach_by_id = false;
	}
	s->no_id_attach = false;
	b.identity.ptr = (const char *)id;
	b.identity.len = PROTO_ID_LEN;
	b.server_name = proto_str_c(s->name);
	b.command = proto_str_c(json_string_value(json_object_get(s->cfg, "command")));
	json_array_foreach(args, i, v)
		a[b.args.n++] = proto_str_c(json_string_value(v));
	b.args.items = a;
	if (split_env(s->cfg, &b.env, &b.env_vars, keys, vals, names, why, sizeof(why)) < 0) {
		s->failures = MAX_FAILURES; /* a config error: no retry until it changes */
		set_state(s, SRV_FAILED, "%s", why);
		return;
	}
	if (cwd)
		b.cwd = proto_str_c(cwd);
	/* root only for a plugin server (box_fields marks it) */
	b.present = PROTO_ALL_mcp_start_body & ~(((uint64_t)1 << (PROTO_TAG_mcp_start_body_root - 1)) |
						 ((uint64_t)1 << (PROTO_TAG_mcp_start_body_sandbox - 1)));
	box = box_fields(s, &b);
	s->start_req = env_request(s->env, PROTO_MCP_START, &b, SRV_START_TIMEOUT_MS,
				   start_reply_cb, s);
	if (!s->start_req)
		set_state(s, SRV_FAILED, "environment '%s' is not connected", s->env_id);
}

/* ---- streamable HTTP from the orchestrator ----------------------------- */

static void http_message_cb(const char *data, size_t len, void *arg)
{
	struct srv *s = arg;

	if (s->mcp)
		mcp_session_receive(s->mcp, data, len);
}

static void http_closed_cb(const char *reason, void *arg)
{
	struct srv *s = arg;

	if (s->mcp)
		mcp_session_transport_closed(s->mcp, reason);
}

static bool hosted_chatgpt(const struct srv *s)
{
	const char *h = json_string_value(json_object_get(s->cfg, "hosted_auth"));

	return h && strcmp(h, "chatgpt") == 0;
}

/* Credentials asked for at each request, so a login, a refresh or a
 * logout is seen by the very next one. */
static size_t http_auth_cb(void *arg, char *hdrs[])
{
	struct srv *s = arg;
	size_t n = 0;

	if (!hosted_chatgpt(s))
		return oauth_store_headers(s->name, json_string_value(json_object_get(s->cfg, "url")),
					   hdrs);
	if (account_mode() != ACCOUNT_CHATGPT_TOKENS || !account_bearer())
		return 0;
	hdrs[n++] = xasprintf("Authorization: Bearer %s", account_bearer());
	if (account_chatgpt_account_id())
		hdrs[n++] = xasprintf("ChatGPT-Account-ID: %s", account_chatgpt_account_id());
	return n;
}

const char *srv_auth_status(const struct srv *s)
{
	const char *transport = json_string_value(json_object_get(s->cfg, "transport"));
	const char *url = json_string_value(json_object_get(s->cfg, "url"));

	if (!transport || strcmp(transport, "http") != 0)
		return "unsupported";
	if (hosted_chatgpt(s) || json_object_get(s->cfg, "bearer_token_env_var"))
		return "bearerToken";
	if (oauth_store_has(s->name, url))
		return "oAuth";
	if (s->needs_login)
		return "notLoggedIn";
	return "unsupported";
}

const char *srv_www_authenticate(const struct srv *s)
{
	return s->http ? mcphttp_www_authenticate(s->http) : s->www_auth;
}

void srv_auth_changed(const char *name)
{
	struct srv *s, *next;

	for (s = pool.list; s; s = next) {
		next = s->next;
		if (strcmp(s->name, name) != 0 || hosted_chatgpt(s))
			continue;
		/* A fresh login: no backoff, and a server that was up
		 * reconnects with its new credentials. */
		s->failures = 0;
		s->retry_at_ms = 0;
		if (s->state != SRV_STARTING)
			srv_start(s);
	}
}

static void start_http(struct srv *s)
{
	static const struct mcphttp_ops ops = {
		.message_cb = http_message_cb,
		.closed_cb = http_closed_cb,
		.auth_cb = http_auth_cb,
	};
	struct mcp_opts o = { 0 };
	char why[512];
	struct http *h = envs_http_route(s->cfg, s->plugin_id, &s->env, why, sizeof(why));

	if (!h) {
		set_state(s, SRV_FAILED, "%s", why);
		return;
	}
	o.name = s->name;
	o.startup_timeout_ms = cfg_ms(s->cfg, "startup_timeout_sec", 30000);
	o.tool_timeout_ms = cfg_ms(s->cfg, "tool_timeout_sec", 300000);
	s->http = mcphttp_new(h, s->cfg, MAX(o.startup_timeout_ms, o.tool_timeout_ms), &ops,
			      s, why, sizeof(why));
	if (!s->http) {
		set_state(s, SRV_FAILED, "cannot start: %s", why);
		return;
	}
	s->transport.send = mcphttp_send;
	s->transport.ctx = s->http;
	s->mcp = mcp_session_new(pool.loop, &o, &s->transport, &session_ops, s);
	if (mcp_session_start(s->mcp) < 0) {
		s->http = mcphttp_free(s->http);
		set_state(s, SRV_FAILED, "cannot start the MCP session: %s",
			  mcp_session_error(s->mcp) ? mcp_session_error(s->mcp) : "send failed");
	}
}

static void srv_start(struct srv *s)
{
	const char *transport = json_string_value(json_object_get(s->cfg, "transport"));

	loop_timer_cancel(s->restart_timer);
	s->restart_timer = NULL;
	s->env_wait = false;
	if (s->started) /* the instance ran before: this is a restart */
		metrics_server_restart();
	s->started = true;
	/* A live session's calls in flight end with an error: freeing it
	 * alone would drop them without an answer. */
	if (s->mcp)
		mcp_session_stop(s->mcp, "the server is restarting");
	s->mcp = mcp_session_free(s->mcp);
	s->handle = 0;
	set_state(s, SRV_STARTING, NULL);
	s->http = mcphttp_free(s->http);
	if (transport && strcmp(transport, "http") == 0) {
		start_http(s);
		return;
	}
	s->env = envs_find(s->env_id);
	if (!s->env) {
		set_state(s, SRV_FAILED, "environment '%s' does not exist", s->env_id);
		return;
	}
	/* Still connecting (start-up, a redial): the server is starting, not
	 * failed; srv_env_changed goes on once the environment settles. */
	if (env_state(s->env) == ENV_CONNECTING) {
		s->env_wait = true;
		log_debug("server '%s': waiting for environment '%s'", s->name, s->env_id);
		return;
	}
	if (env_state(s->env) != ENV_READY) {
		set_state(s, SRV_FAILED, "environment '%s' is %s%s%s", s->env_id,
			  env_state_name(env_state(s->env)), env_error(s->env) ? ": " : "",
			  env_error(s->env) ? env_error(s->env) : "");
		return;
	}
	start_stdio(s);
}

static void restart_cb(struct loop_timer *t, void *arg)
{
	struct srv *s = arg;

	s->restart_timer = NULL;
	srv_start(s);
}

/* A failed server comes back on next use: at once when its backoff has
 * passed, else when it does (the instance shows as starting meanwhile, so
 * callers wait for it). After MAX_FAILURES in a row it stays failed and
 * callers get the reason; a reload or a reconnect of its environment
 * clears that. */
bool srv_retry(struct srv *s)
{
	uint64_t now = now_ms();

	if (s->state != SRV_FAILED)
		return s->state == SRV_STARTING;
	if (s->failures >= MAX_FAILURES)
		return false;
	if (now >= s->retry_at_ms) {
		srv_start(s);
	} else if (!s->restart_timer) {
		s->restart_timer = loop_timer_add(pool.loop, s->retry_at_ms - now, restart_cb, s);
		set_state(s, SRV_STARTING, NULL);
	}
	return s->state == SRV_STARTING;
}

/* ---- the pool ---------------------------------------------------------- */

static char *make_key(const char *name, json_t *cfg, const char *plugin_id)
{
	_cleanup_free_ char *c = json_dumps(cfg, JSON_COMPACT | JSON_SORT_KEYS);

	return xasprintf("%s\x1f%s\x1f%s", name, plugin_id ? plugin_id : "", c ? c : "");
}

struct srv *srv_acquire(const char *name, json_t *cfg, const char *plugin_id)
{
	_cleanup_free_ char *key = make_key(name, cfg, plugin_id);
	const char *envid;
	struct srv *s;

	for (s = pool.list; s; s = s->next) {
		if (strcmp(s->key, key) == 0) {
			s->refs++;
			return s;
		}
	}
	s = xcalloc(1, sizeof(*s));
	s->key = TAKE_PTR(key);
	s->name = xstrdup(name);
	s->plugin_id = plugin_id ? xstrdup(plugin_id) : NULL;
	s->cfg = json_incref(cfg);
	envid = json_string_value(json_object_get(cfg, "environment_id"));
	s->env_id = xstrdup(envid ? envid : "local");
	s->refs = 1;
	s->next = pool.list;
	pool.list = s;
	srv_start(s);
	return s;
}

static void srv_destroy(struct srv *s)
{
	for (struct srv **pp = &pool.list; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	s->mcp = mcp_session_free(s->mcp);
	loop_timer_cancel(s->restart_timer);
	stop_process(s);
	free(s->key);
	free(s->name);
	free(s->plugin_id);
	free(s->env_id);
	free(s->error);
	free(s->www_auth);
	free(s->sandbox);
	free(s->waiters.v);
	free(s->watchers.v);
	json_decref(s->cfg);
	if (s->start_req) {
		/* The executor may be starting it right now: stop it when the
		 * reply comes, then free (start_reply_cb). */
		s->dying = true;
		return;
	}
	free(s);
}

void srv_ref(struct srv *s) { s->refs++; }

void srv_release(struct srv *s)
{
	if (s && --s->refs == 0) {
		log_info("server '%s': no longer used, stopping", s->name);
		srv_destroy(s);
	}
}

void srv_stop_all(void)
{
	while (pool.list) {
		struct srv *s = pool.list;

		s->refs = 0;
		if (s->start_req && s->env) /* the environments go away with us */
			env_request_forget(s->env, s->start_req);
		s->start_req = 0;
		srv_destroy(s);
	}
}

/* ---- accessors and callbacks ------------------------------------------ */

const char *srv_name(const struct srv *s) { return s->name; }
const char *srv_plugin_id(const struct srv *s) { return s->plugin_id; }
json_t *srv_cfg(const struct srv *s) { return s->cfg; }
enum srv_state srv_state(const struct srv *s) { return s->state; }
const char *srv_error(const struct srv *s) { return s->error; }
struct mcp_session *srv_mcp(const struct srv *s) { return s->state == SRV_READY ? s->mcp : NULL; }

static void cb_add(struct cb_list *l, srv_cb cb, void *arg)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 4;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n].cb = cb;
	l->v[l->n++].arg = arg;
}

static void cb_del(struct cb_list *l, srv_cb cb, void *arg)
{
	for (unsigned i = 0; i < l->n; i++) {
		if (l->v[i].cb == cb && l->v[i].arg == arg) {
			memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof(l->v[0]));
			l->n--;
			return;
		}
	}
}

void srv_when_settled(struct srv *s, srv_cb cb, void *arg)
{
	if (s->state != SRV_STARTING)
		cb(s, arg);
	else
		cb_add(&s->waiters, cb, arg);
}

void srv_forget_waiter(struct srv *s, srv_cb cb, void *arg)
{
	cb_del(&s->waiters, cb, arg);
}

void srv_watch(struct srv *s, srv_cb cb, void *arg) { cb_add(&s->watchers, cb, arg); }
void srv_unwatch(struct srv *s, srv_cb cb, void *arg)
{
	cb_del(&s->watchers, cb, arg);
}

static bool tool_in(json_t *list, const char *tool)
{
	json_t *v;
	size_t i;

	json_array_foreach(list, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), tool) == 0)
			return true;
	return false;
}

bool srv_tool_allowed(const struct srv *s, const char *tool)
{
	json_t *en = json_object_get(s->cfg, "enabled_tools");
	json_t *dis = json_object_get(s->cfg, "disabled_tools");

	if (en && !tool_in(en, tool))
		return false;
	return !(dis && tool_in(dis, tool));
}

json_t *srv_tools(const struct srv *s)
{
	json_t *out = json_array(), *t;
	size_t i;

	if (s->state != SRV_READY || !s->mcp)
		return out;
	json_array_foreach(mcp_session_tools(s->mcp), i, t) {
		const char *name = json_string_value(json_object_get(t, "name"));

		if (name && srv_tool_allowed(s, name))
			json_array_append(out, t);
	}
	return out;
}

void srv_env_changed(struct env *e)
{
	char why[512];

	for (struct srv *s = pool.list; s; s = s->next) {
		if (s->env != e && !(s->state == SRV_FAILED && strcmp(s->env_id, env_id(e)) == 0))
			continue;
		if (s->env_wait && s->env == e) {
			if (env_state(e) == ENV_CONNECTING)
				continue;
			s->env_wait = false;
			if (env_state(e) == ENV_READY)
				start_stdio(s);
			else
				set_state(s, SRV_FAILED, "environment '%s' is %s%s%s", env_id(e),
					  env_state_name(env_state(e)), env_error(e) ? ": " : "",
					  env_error(e) ? env_error(e) : "");
			continue;
		}
		if (env_state(e) == ENV_READY) {
			/* Back after a restart or reconnect: bring failed ones back. */
			if (s->state == SRV_FAILED) {
				s->retry_at_ms = 0;
				s->failures = 0;
				srv_retry(s);
			}
		} else if (env_resumable(e)) {
			/* The link may come back with the session: calls carry on. */
			continue;
		} else if (s->mcp && (s->handle || s->http)) {
			/* A relayed HTTP server's session is renewed with the link. */
			snprintf(why, sizeof(why), "environment '%s' disconnected%s%s", env_id(e),
				 env_error(e) ? ": " : "", env_error(e) ? env_error(e) : "");
			s->handle = 0;
			mcp_session_transport_closed(s->mcp, why);
		}
	}
}

void srv_env_removed(struct env *e, const char *why)
{
	for (struct srv *s = pool.list; s; s = s->next) {
		if (s->env != e)
			continue;
		if (s->start_req)
			env_request_forget(e, s->start_req);
		s->start_req = 0;
		if (s->mcp)
			mcp_session_transport_closed(s->mcp, why);
		s->http = mcphttp_free(s->http); /* its struct http goes with e */
		s->handle = 0;
		s->env = NULL;
		if (s->state != SRV_FAILED)
			set_state(s, SRV_FAILED, "environment '%s': %s", env_id(e), why);
	}
}

void srv_on_output(struct env *e, uint64_t handle, const char *data, size_t len)
{
	for (struct srv *s = pool.list; s; s = s->next) {
		if (s->env == e && s->handle == handle) {
			if (s->mcp)
				mcp_session_receive(s->mcp, data, len);
			return;
		}
	}
}

void srv_on_exited(struct env *e, uint64_t handle, const char *reason)
{
	char why[512];

	/* A slot of the executor's process cap may have freed. */
	for (struct srv *s = pool.list; s; s = s->next)
		if (s->cap_wait && s->state == SRV_FAILED && strcmp(s->env_id, env_id(e)) == 0) {
			loop_timer_cancel(s->restart_timer);
			s->restart_timer = loop_timer_add(pool.loop, 0, cap_retry_cb, s);
		}

	for (struct srv *s = pool.list; s; s = s->next) {
		if (s->env == e && s->handle == handle) {
			snprintf(why, sizeof(why), "server '%s' exited: %s", s->name, reason);
			s->handle = 0;
			if (s->mcp)
				mcp_session_transport_closed(s->mcp, why);
			return;
		}
	}
}
