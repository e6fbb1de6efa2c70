/* env.c - see env.h and env_priv.h: an environment's state, its requests
 * and their replies, and its lifecycle. The link is env_link.c's. */
#include "env.h"

#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "env_priv.h"
#include "fdlimit.h"
#include "http.h"
#include "jsonutil.h"
#include "lsess.h"
#include "log.h"
#include "loop.h"
#include "metrics_tandem.h"
#include "secret.h"
#include "util.h"

const char *env_state_name(enum env_state s)
{
	switch (s) {
	case ENV_CONNECTING: return "connecting";
	case ENV_READY: return "ready";
	default: return "disconnected";
	}
}

const char *env_direction_name(enum env_direction d)
{
	switch (d) {
	case ENV_DIALLED_IN: return "dialled in";
	case ENV_SPAWNED: return "spawned";
	default: return "dialled";
	}
}

void env_set_error(struct env *e, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	free(e->error);
	e->error = s;
	/* lastError: what went wrong since it was last ready (the refusals
	 * of a spawned executor's first dials are its start, not news) */
	if (s && e->was_ready) {
		free(e->last_error);
		e->last_error = xstrdup(s);
	}
}

void env_set_state(struct env *e, enum env_state st)
{
	if (e->state == st)
		return;
	e->state = st;
	if (st == ENV_READY) {
		free(e->error);
		e->error = NULL;
		e->backoff_ms = 0;
		e->reconnects += e->was_ready;
		if (e->was_ready) /* ready again after a loss, on a fresh session */
			metrics_link_reconnect();
		e->was_ready = true;
	}
	log_info("environment '%s': %s%s%s", e->id, env_state_name(st), e->error ? ": " : "",
		 e->error ? e->error : "");
	if (e->ops->state_cb)
		e->ops->state_cb(e, st, e->arg);
}

static uint64_t default_grace_ms = 30000;

void env_set_default_grace_ms(uint64_t ms) { default_grace_ms = ms; }

/* ---- requests ---------------------------------------------------------- */

static struct pending *pending_take(struct env *e, uint32_t id)
{
	for (struct pending **pp = &e->pending; *pp; pp = &(*pp)->next) {
		if ((*pp)->id == id) {
			struct pending *p = *pp;

			*pp = p->next;
			return p;
		}
	}
	return NULL;
}

static void pending_finish(struct pending *p, const struct proto_msg *reply, const char *error)
{
	loop_timer_cancel(p->timer);
	if (p->cb)
		p->cb(p->e, reply, error, p->arg);
	free(p);
}

static void fail_all_pending(struct env *e, const char *why)
{
	while (e->pending) {
		struct pending *p = e->pending;

		e->pending = p->next;
		pending_finish(p, NULL, why);
	}
}

static void request_timeout_cb(struct loop_timer *t, void *arg)
{
	struct pending *p = arg;
	struct env *e = p->e;
	char why[256];

	p = pending_take(e, p->id);
	if (!p)
		return;
	p->timer = NULL;
	snprintf(why, sizeof(why), "environment '%s': %s timed out", e->id,
		 proto_msgdef(p->type)->name);
	pending_finish(p, NULL, why);
}

uint32_t env_request(struct env *e, uint16_t type, const void *body, uint64_t timeout_ms,
		     env_reply_cb cb, void *arg)
{
	struct pending *p;
	uint32_t id;

	if (e->state != ENV_READY)
		return 0;
	id = ++e->next_id ? e->next_id : ++e->next_id;
	if (env_link_send(e, type, PROTO_REQUEST, id, body) < 0)
		return 0;
	p = xcalloc(1, sizeof(*p));
	p->e = e;
	p->id = id;
	p->type = type;
	p->cb = cb;
	p->arg = arg;
	p->timer = loop_timer_add(e->loop, timeout_ms, request_timeout_cb, p);
	p->next = e->pending;
	e->pending = p;
	return id;
}

void env_request_forget(struct env *e, uint32_t id)
{
	for (struct pending *p = e->pending; p; p = p->next)
		if (p->id == id)
			p->cb = NULL;
}

int env_mcp_send(struct env *e, uint64_t handle, const char *data, size_t len)
{
	struct proto_mcp_send_body b = { .handle = handle };

	if (e->state != ENV_READY)
		return -ENOTCONN;
	b.data.ptr = data;
	b.data.len = (uint32_t)len;
	return env_link_send(e, PROTO_MCP_SEND, PROTO_EVENT, 0, &b);
}

int env_reply_status(const struct env *e) { return e->reply_status; }

int env_mcp_send_call(struct env *e, uint64_t handle, const char *data, size_t len,
		      uint64_t call_id, uint64_t timeout_ms, uint64_t *ticket)
{
	struct proto_mcp_send_body b = { .handle = handle, .call_id = call_id };

	if (e->state != ENV_READY)
		return -ENOTCONN;
	b.data.ptr = data;
	b.data.len = (uint32_t)len;
	b.deadline_ms = loop_now_ms(e->loop) + timeout_ms;
	PROTO_MARK(&b, mcp_send_body, call_id);
	PROTO_MARK(&b, mcp_send_body, deadline_ms);
	return env_link_send_ticket(e, PROTO_MCP_SEND, PROTO_EVENT, 0, &b, ticket);
}

int env_mcp_cancel(struct env *e, uint64_t handle, uint64_t call_id, const char *reason)
{
	struct proto_mcp_cancel_body b = { .handle = handle, .call_id = call_id };

	if (e->state != ENV_READY)
		return -ENOTCONN;
	if (reason) {
		b.reason = proto_str_c(reason);
		PROTO_MARK(&b, mcp_cancel_body, reason);
	}
	return env_link_send(e, PROTO_MCP_CANCEL, PROTO_EVENT, 0, &b);
}

int env_mcp_note(struct env *e, uint64_t handle, const char *note, size_t len)
{
	struct proto_mcp_note_body b = { .handle = handle };

	if (e->state != ENV_READY)
		return -ENOTCONN;
	if (len > PROTO_MAX_NOTE)
		return -EMSGSIZE;
	b.note.ptr = note;
	b.note.len = (uint32_t)len;
	b.present = PROTO_ALL_mcp_note_body;
	return env_link_send(e, PROTO_MCP_NOTE, PROTO_EVENT, 0, &b);
}

bool env_mcp_maybe_reached(const struct env *e, uint64_t ticket)
{
	return env_link_maybe_reached(e, ticket);
}

/* MCP_EXPIRED: the request never reached the server; its owner hears it as
 * the JSON-RPC error answer to call_id (the MCP client knows no more). */
void env_mcp_expired(struct env *e, uint64_t handle, uint64_t call_id, const char *reason)
{
	json_t *msg = json_pack("{s:s, s:I, s:{s:i, s:s+}}", "jsonrpc", "2.0", "id",
				(json_int_t)call_id, "error", "code", -32001, "message",
				reason, "; the request never reached the server and will not run");
	char *text = msg ? jsonu_dumps(msg) : NULL;

	json_decref(msg);
	if (text && e->ops->output_cb)
		e->ops->output_cb(e, handle, text, strlen(text), e->arg);
	free(text);
}

void env_reply(struct env *e, const struct proto_msg *m)
{
	struct pending *p = pending_take(e, m->env.id);
	char why[1024];

	if (!p) {
		log_debug("environment '%s': reply to unknown request %u", e->id, m->env.id);
		return;
	}
	if (p->type != m->env.type) {
		pending_finish(p, NULL, "the executor answered with the wrong message type");
		return;
	}
	if (m->env.status != 0) {
		snprintf(why, sizeof(why), "%.*s", (int)MIN(m->err_message.len, 1000u),
			 m->err_message.ptr);
		e->reply_status = m->env.status; /* for the callback only */
		pending_finish(p, NULL, why);
		e->reply_status = 0;
		return;
	}
	pending_finish(p, m, NULL);
}

void env_link_lost(struct env *e, const char *why)
{
	char msg[512];

	if (e->state == ENV_DISCONNECTED && !e->pending)
		return;
	env_set_error(e, "%s", why);
	snprintf(msg, sizeof(msg), "environment '%s' disconnected: %s", e->id, why);
	fail_all_pending(e, msg);
	env_set_state(e, ENV_DISCONNECTED);
	/* After the state: a retry started from a done_cb now fails at once
	 * (ENOTCONN) instead of being sent and failed again, forever. */
	http_relay_fail_all(e->http, -ECONNRESET, msg);
}

void env_session_lost(struct env *e, const char *why)
{
	char msg[512];

	env_set_error(e, "%s", why);
	snprintf(msg, sizeof(msg), "environment '%s': %s", e->id, why);
	fail_all_pending(e, msg);
	http_relay_fail_all(e->http, -ECONNRESET, msg);
	if (e->state != ENV_DISCONNECTED)
		env_set_state(e, ENV_DISCONNECTED);
	else if (e->ops->state_cb) /* same state, but the servers are gone now */
		e->ops->state_cb(e, e->state, e->arg);
}

struct http *env_http(struct env *e) { return e->http; }

/* ---- lifecycle --------------------------------------------------------- */

static char **strv_copy(const char *const *v)
{
	size_t n = 0;
	char **c;

	while (v && v[n])
		n++;
	c = xcalloc(n + 1, sizeof(*c));
	for (size_t i = 0; i < n; i++)
		c[i] = xstrdup(v[i]);
	return c;
}

struct env *env_new(struct loop *l, const struct env_spec *s, const struct env_ops *ops, void *arg)
{
	struct env *e = xcalloc(1, sizeof(*e));

	e->loop = l;
	e->ops = ops;
	e->arg = arg;
	e->id = xstrdup(s->id);
	e->spawned = s->program != NULL;
	e->is_local = s->is_local;
	e->dial_in = s->dial_in && !s->program;
	e->program = s->program ? xstrdup(s->program) : NULL;
	e->url = s->url ? xstrdup(s->url) : NULL;
	e->cwd = s->cwd ? xstrdup(s->cwd) : NULL;
	e->secret_file = s->secret_file ? xstrdup(s->secret_file) : NULL;
	e->tls_ca_file = s->tls_ca_file ? xstrdup(s->tls_ca_file) : NULL;
	if (s->token && *s->token)
		secret_from_buf(s->token, strlen(s->token), &e->token);
	e->args = strv_copy(s->args);
	e->extra_env = strv_copy(s->env);
	e->connect_timeout_ms = s->connect_timeout_ms ? s->connect_timeout_ms : 10000;
	e->init_timeout_ms = s->initialize_timeout_ms ? s->initialize_timeout_ms : 10000;
	e->keepalive_ms = s->keepalive_ms ? s->keepalive_ms : ENV_DEFAULT_KEEPALIVE_MS;
	e->dead_ms = s->keepalive_timeout_ms ? s->keepalive_timeout_ms : ENV_DEFAULT_DEAD_MS;
	if (e->dead_ms <= e->keepalive_ms)
		e->dead_ms = 3 * e->keepalive_ms;
	e->grace_ms = s->resume_grace_set ? s->resume_grace_ms : default_grace_ms;
	e->state = ENV_CONNECTING;
	e->http = http_new_relay(l, &env_relay_ops, e);
	return e;
}

static int load_remote_secret(struct env *e, char *err, size_t errlen)
{
	char why[256];
	int r;

	if (e->token) {
		e->secret = TAKE_PTR(e->token);
		return 0;
	}
	if (e->secret_file) {
		r = secret_from_file(e->secret_file, &e->secret);
		if (fdlimit_exhausted(r))
			snprintf(err, errlen, "cannot read token file %s: %s", e->secret_file,
				 fdlimit_why(r, why, sizeof(why)));
		else if (r < 0)
			snprintf(err, errlen, "token file %s: %s", e->secret_file,
				 r == -EPERM ? "readable by group or others" : strerror(-r));
		return r;
	}
	if (e->dial_in) /* its own token file, never a shared one */
		return 0;
	r = secret_from_env("TANDEM_EXECUTOR_TOKEN", &e->secret);
	return r == -ENOENT ? 0 : r;
}

int env_start(struct env *e, char *err, size_t errlen)
{
	int r;

	if (e->spawned) {
		r = env_spawn_start(e, err, errlen);
		if (r < 0)
			return r;
	} else {
		r = load_remote_secret(e, err, errlen);
		if (r < 0)
			return r;
	}
	if (e->dial_in) {
		/* Nothing to dial: it is pending until its executor dials in. */
		if (!e->secret) {
			snprintf(err, errlen, "a dial-in environment needs its token in "
					      "executor-tokens/%s under the home directory", e->id);
			return -ENOKEY;
		}
		env_set_error(e, "waiting for the executor to dial in");
		env_set_state(e, ENV_DISCONNECTED);
		return 0;
	}
	return env_link_start(e, err, errlen);
}

struct env *env_free(struct env *e)
{
	if (!e)
		return NULL;
	/* Relayed requests end while the link can still carry their aborts. */
	http_relay_fail_all(e->http, -ECANCELED, "the orchestrator is shutting down");
	e->http = http_free(e->http);
	env_link_stop(e);
	env_spawn_stop(e);
	fail_all_pending(e, "the orchestrator is shutting down");
	secret_free(e->secret);
	secret_free(e->token);
	free(e->id);
	free(e->url);
	free(e->program);
	free(e->cwd);
	free(e->secret_file);
	free(e->tls_ca_file);
	free(e->error);
	free(e->lost);
	free(e->last_error);
	free(e->executor_id);
	strv_free(e->args);
	strv_free(e->extra_env);
	free(e);
	return NULL;
}

bool env_claim_detached(struct env *e, const uint8_t id[PROTO_ID_LEN], uint64_t *handle)
{
	static const uint8_t zero[PROTO_ID_LEN];

	if (e->state != ENV_READY || !memcmp(id, zero, PROTO_ID_LEN))
		return false;
	for (uint32_t i = 0; i < e->n_live; i++) {
		if (memcmp(e->live_ids[i], id, PROTO_ID_LEN) != 0)
			continue;
		*handle = e->live_handles[i];
		e->n_live--;
		e->live_handles[i] = e->live_handles[e->n_live];
		memcpy(e->live_ids[i], e->live_ids[e->n_live], PROTO_ID_LEN);
		return true;
	}
	return false;
}

unsigned env_detached_count(const struct env *e) { return e->n_live; }

bool env_detached_more(const struct env *e) { return e->state == ENV_READY && e->live_more; }

void env_mark_failed(struct env *e, const char *why)
{
	env_set_error(e, "%s", why);
	if (e->state != ENV_DISCONNECTED || e->pending)
		env_link_lost(e, why); /* requests fail with it, then the state */
}

const char *env_id(const struct env *e) { return e->id; }
enum env_state env_state(const struct env *e) { return e->state; }
const char *env_error(const struct env *e) { return e->error; }
const char *env_executor_id(const struct env *e) { return e->executor_id; }
bool env_is_local(const struct env *e) { return e->is_local; }
bool env_spawned(const struct env *e) { return e->spawned; }
unsigned env_restarts(const struct env *e) { return e->restarts; }
int env_executor_pid(const struct env *e) { return e->pid > 0 ? (int)e->pid : -1; }
bool env_sealed(const struct env *e) { return e->state == ENV_READY && e->sealed; }
uint64_t env_rtt_us(const struct env *e) { return e->rtt_us; }
bool env_resumable(const struct env *e) { return e->ls && e->grace_timer; }
unsigned env_resumes(const struct env *e) { return e->resumes; }

void env_session_hex(const struct env *e, char out[33])
{
	out[0] = '\0';
	if (e->ls)
		sodium_bin2hex(out, 33, e->ls->id, sizeof(e->ls->id));
}
const char *env_url(const struct env *e) { return e->url; }
unsigned env_reconnects(const struct env *e) { return e->reconnects; }
uint64_t env_dial_attempts(const struct env *e) { return e->dial_attempts; }
uint64_t env_redial_delay_ms(const struct env *e) { return e->redial_delay_ms; }
const char *env_last_error(const struct env *e) { return e->last_error; }

enum env_direction env_direction(const struct env *e)
{
	return e->spawned ? ENV_SPAWNED : e->dial_in ? ENV_DIALLED_IN : ENV_DIALLED;
}

