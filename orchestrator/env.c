/* env.c - see env.h. The spawned executor process lives in env_spawn.c. */
#include "env.h"

#include <errno.h>
#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "env_priv.h"
#include "http.h"
#include "link.h"
#include "linkurl.h"
#include "log.h"
#include "loop.h"
#include "secret.h"
#include "util.h"
#include "version.h"

static struct env *live_envs;
static uint64_t next_serial = 1;

const char *env_state_name(enum env_state s)
{
	switch (s) {
	case ENV_CONNECTING: return "connecting";
	case ENV_READY: return "ready";
	default: return "disconnected";
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
}

static void set_state(struct env *e, enum env_state st)
{
	if (e->state == st)
		return;
	e->state = st;
	if (st == ENV_READY) {
		free(e->error);
		e->error = NULL;
		e->backoff_ms = 0;
	}
	log_info("environment '%s': %s%s%s", e->id, env_state_name(st), e->error ? ": " : "",
		 e->error ? e->error : "");
	if (e->ops->state_cb)
		e->ops->state_cb(e, st, e->arg);
}

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
	if (link_send(&e->link, type, PROTO_REQUEST, id, body) < 0)
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
	return link_send(&e->link, PROTO_MCP_SEND, PROTO_EVENT, 0, &b);
}

/* ---- HTTP relay ---------------------------------------------------------- */

/* Relayed requests carry credentials (Authorization, OAuth codes and
 * tokens): they travel only over links nobody else can read (linkurl.h). */
static bool link_confidential(const struct env *e)
{
	return linkurl_confidential(e->url, false);
}

static int relay_start(void *ctx, uint64_t id, const struct http_opts *o)
{
	struct env *e = ctx;
	struct proto_http_request_body b = { .req_id = id };
	_cleanup_free_ struct proto_str *hdrs = NULL, *env_hdrs = NULL;
	size_t n = 0, n_env = 0;

	if (e->state != ENV_READY)
		return -ENOTCONN;
	if (!e->http_relay)
		return -EOPNOTSUPP;
	if (!link_confidential(e))
		return -EPERM;
	while (o->headers && o->headers[n])
		n++;
	while (o->env_headers && o->env_headers[n_env])
		n_env++;
	if (n > PROTO_MAX_LIST || n_env > PROTO_MAX_LIST || o->body_len > PROTO_MAX_BIN - 65536u)
		return -E2BIG;
	env_hdrs = xcalloc(n_env ? n_env : 1, sizeof(*env_hdrs));
	for (size_t i = 0; i < n_env; i++)
		env_hdrs[i] = proto_str_c(o->env_headers[i]);
	b.env_headers.items = env_hdrs;
	b.env_headers.n = (uint32_t)n_env;
	hdrs = xcalloc(n ? n : 1, sizeof(*hdrs));
	for (size_t i = 0; i < n; i++)
		hdrs[i] = proto_str_c(o->headers[i]);
	b.method = proto_str_c(o->method ? o->method : "GET");
	b.url = proto_str_c(o->url);
	b.headers.items = hdrs;
	b.headers.n = (uint32_t)n;
	b.body.ptr = o->body;
	b.body.len = (uint32_t)o->body_len;
	b.timeout_ms = o->timeout_ms;
	b.idle_timeout_ms = o->idle_timeout_ms;
	b.max_body = o->max_body;
	b.present = PROTO_ALL_http_request_body;
	return link_send(&e->link, PROTO_HTTP_REQUEST, PROTO_EVENT, 0, &b);
}

static void relay_cancel(void *ctx, uint64_t id)
{
	struct env *e = ctx;
	struct proto_http_abort_body b = { .req_id = id };

	if (e->state == ENV_READY)
		link_send(&e->link, PROTO_HTTP_ABORT, PROTO_EVENT, 0, &b);
}

static const struct http_relay_ops relay_ops = { relay_start, relay_cancel };

/* One frame may carry a head, data and the end: fed in that order (a
 * callback may cancel the request in between; later parts are then
 * ignored by http.c). */
static void relay_event(struct env *e, const struct proto_msg *m)
{
	const struct proto_http_response_body *b = &m->u.http_response;

	if (PROTO_HAS_FIELD(b, http_response_body, status)) {
		char **lines = xcalloc(b->headers.n + 1u, sizeof(*lines));

		for (uint32_t i = 0; i < b->headers.n; i++)
			lines[i] = proto_str_dup(b->headers.items[i]);
		http_relay_head(e->http, b->req_id, b->status, (const char *const *)lines,
				b->headers.n);
		for (uint32_t i = 0; i < b->headers.n; i++) {
			secure_wipe(lines[i], strlen(lines[i])); /* Set-Cookie and the like */
			free(lines[i]);
		}
		free(lines);
	}
	if (b->data.len)
		http_relay_data(e->http, b->req_id, b->data.ptr, b->data.len);
	if (b->end) {
		_cleanup_free_ char *why = proto_str_dup(b->reason);
		int err = b->err < -4095 || b->err > 0 ? -EIO : (int)b->err;

		http_relay_done(e->http, b->req_id, err, PROTO_HAS_FIELD(b, http_response_body, status) ? b->status : 0, why);
	}
}

struct http *env_http(struct env *e) { return e->http; }

/* ---- the link ---------------------------------------------------------- */

static void connect_timeout_cb(struct loop_timer *t, void *arg)
{
	struct env *e = arg;

	e->connect_timer = NULL;
	if (e->state == ENV_READY)
		return;
	env_set_error(e, "cannot reach the executor at %s within %llu ms; still trying", e->url,
		  (unsigned long long)e->connect_timeout_ms);
	set_state(e, ENV_DISCONNECTED);
}

static void arm_connect_timer(struct env *e)
{
	loop_timer_cancel(e->connect_timer);
	e->connect_timer = loop_timer_add(e->loop, e->connect_timeout_ms, connect_timeout_cb, e);
}

void env_link_lost(struct env *e, const char *why)
{
	char msg[512];

	e->pipe = 0;
	e->challenged = false;
	loop_timer_cancel(e->init_timer);
	e->init_timer = NULL;
	link_discard_queue(&e->link);
	if (e->link_open)
		arm_connect_timer(e);
	if (e->state == ENV_DISCONNECTED && !e->pending)
		return;
	env_set_error(e, "%s", why);
	snprintf(msg, sizeof(msg), "environment '%s' disconnected: %s", e->id, why);
	fail_all_pending(e, msg);
	set_state(e, ENV_DISCONNECTED);
	/* After the state: a retry started from a done_cb now fails at once
	 * (ENOTCONN) instead of being sent and failed again, forever. */
	http_relay_fail_all(e->http, -ECONNRESET, msg);
}

static void drop_pipe(struct env *e, const char *why)
{
	log_warn("environment '%s': closing the link: %s", e->id, why);
	link_close_pipe(&e->link, e->pipe);
	env_link_lost(e, why);
}

static void init_timeout_cb(struct loop_timer *t, void *arg)
{
	struct env *e = arg;

	e->init_timer = NULL;
	drop_pipe(e, "the executor did not complete the handshake in time");
}

static void hello_reply_cb(struct env *e, const struct proto_msg *reply, const char *error,
			   void *arg);
static void pipe_adopt(struct env *e, uint32_t pipe);

static void on_challenge(struct env *e, const struct proto_challenge_body *c)
{
	struct proto_hello_body h = { .version_min = PROTO_VERSION_MIN,
				      .version_max = PROTO_VERSION };
	uint8_t proof[PROTO_PROOF_LEN];
	struct pending *p;
	uint32_t id;

	if (e->challenged || c->nonce.len != PROTO_NONCE_LEN) {
		drop_pipe(e, "unexpected CHALLENGE");
		return;
	}
	if (c->auth_required && !e->secret) {
		drop_pipe(e, "the executor requires a token and none is configured");
		return;
	}
	e->challenged = true;
	memcpy(e->nonce_e, c->nonce.ptr, PROTO_NONCE_LEN);
	auth_nonce(e->nonce_o);
	h.nonce.ptr = (const char *)e->nonce_o;
	h.nonce.len = PROTO_NONCE_LEN;
	h.orchestrator_id = proto_str_c("tandem-orchestrator " TANDEM_VERSION);
	h.environment_id = proto_str_c(e->id);
	PROTO_MARK(&h, hello_body, orchestrator_id);
	PROTO_MARK(&h, hello_body, environment_id);
	if (e->secret) {
		auth_proof(secret_key(e->secret), AUTH_ORCHESTRATOR, e->nonce_e, e->nonce_o, proof);
		h.proof.ptr = (const char *)proof;
		h.proof.len = sizeof(proof);
		PROTO_MARK(&h, hello_body, proof);
	}
	/* Not env_request: the environment is not READY yet. */
	id = ++e->next_id;
	if (link_send(&e->link, PROTO_HELLO, PROTO_REQUEST, id, &h) < 0) {
		drop_pipe(e, "cannot send HELLO");
		return;
	}
	p = xcalloc(1, sizeof(*p));
	p->e = e;
	p->id = id;
	p->type = PROTO_HELLO;
	p->cb = hello_reply_cb;
	p->next = e->pending;
	e->pending = p;
}

static void hello_reply_cb(struct env *e, const struct proto_msg *reply, const char *error,
			   void *arg)
{
	const struct proto_hello_reply *r;

	loop_timer_cancel(e->init_timer);
	e->init_timer = NULL;
	if (!reply)
		return; /* the link is already gone */
	r = &reply->u.hello_reply;
	if (e->secret && !auth_verify(secret_key(e->secret), AUTH_EXECUTOR, e->nonce_o, e->nonce_e,
				      r->proof.ptr, r->proof.len)) {
		drop_pipe(e, "the executor failed to prove the secret");
		return;
	}
	free(e->executor_id);
	e->executor_id = proto_str_dup(r->executor_id);
	e->http_relay = false;
	for (uint32_t i = 0; i < r->capabilities.n; i++)
		if (proto_str_eq(r->capabilities.items[i], "http-relay"))
			e->http_relay = true;
	log_info("environment '%s': executor '%s' %.*s authenticated (protocol %u)", e->id,
		 e->executor_id, (int)MIN(r->executor_version.len, 64u), r->executor_version.ptr,
		 r->version);
	loop_timer_cancel(e->connect_timer);
	e->connect_timer = NULL;
	set_state(e, ENV_READY);
}

static void on_reply(struct env *e, const struct proto_msg *m)
{
	struct pending *p = pending_take(e, m->env.id);
	char why[1024];

	if (!p) {
		log_debug("environment '%s': reply to unknown request %u", e->id, m->env.id);
		return;
	}
	if (p->type != m->env.type) {
		pending_finish(p, NULL, "the executor answered with the wrong message type");
		drop_pipe(e, "reply type does not match its request");
		return;
	}
	if (m->env.status != 0) {
		snprintf(why, sizeof(why), "%.*s", (int)MIN(m->err_message.len, 1000u),
			 m->err_message.ptr);
		if (p->type == PROTO_HELLO) {
			free(p);
			drop_pipe(e, why);
			return;
		}
		pending_finish(p, NULL, why);
		return;
	}
	pending_finish(p, m, NULL);
}

static void on_event(struct env *e, const struct proto_msg *m)
{
	switch (m->env.type) {
	case PROTO_CHALLENGE:
		on_challenge(e, &m->u.challenge);
		break;
	case PROTO_MCP_OUTPUT:
		if (e->ops->output_cb)
			e->ops->output_cb(e, m->u.mcp_output.handle, m->u.mcp_output.data.ptr,
					  m->u.mcp_output.data.len, e->arg);
		break;
	case PROTO_MCP_STDERR:
		if (e->ops->stderr_cb)
			e->ops->stderr_cb(e, m->u.mcp_stderr.handle, m->u.mcp_stderr.line.ptr,
					  m->u.mcp_stderr.line.len, e->arg);
		break;
	case PROTO_MCP_EXITED: {
		_cleanup_free_ char *why = proto_str_dup(m->u.mcp_exited.reason);

		if (e->ops->exited_cb)
			e->ops->exited_cb(e, m->u.mcp_exited.handle, why, e->arg);
		break;
	}
	case PROTO_HTTP_RESPONSE:
		relay_event(e, m);
		break;
	default:
		break;
	}
}

static void frame_cb(struct link *lk, uint32_t pipe, const void *data, size_t len, void *arg)
{
	struct env *e = arg;
	struct proto_msg m;
	char err[256], why[320];

	if (!e->pipe)
		pipe_adopt(e, pipe); /* its frame beat the posted pipe event */
	if (pipe != e->pipe)
		return; /* from a pipe we already let go */
	if (proto_decode(data, len, &m, err, sizeof(err)) < 0) {
		snprintf(why, sizeof(why), "malformed frame from the executor: %s", err);
		drop_pipe(e, why);
		return;
	}
	if (m.env.kind == PROTO_REQUEST || (m.env.kind == PROTO_EVENT && m.def->dir != PROTO_E2O) ||
	    (m.def->state == PROTO_AUTHED && m.env.kind == PROTO_EVENT && e->state != ENV_READY)) {
		snprintf(why, sizeof(why), "unexpected %s from the executor", m.def->name);
		drop_pipe(e, why);
	} else if (m.env.kind == PROTO_REPLY) {
		on_reply(e, &m);
	} else {
		on_event(e, &m);
	}
	proto_msg_release(&m);
}

/* A new connection to the executor: the handshake starts (CHALLENGE comes
 * from the executor). Called from the posted pipe event or from the first
 * frame, whichever the loop sees first. */
static void pipe_adopt(struct env *e, uint32_t pipe)
{
	if (e->pipe)
		env_link_lost(e, "replaced by a new connection");
	e->pipe = pipe;
	set_state(e, ENV_CONNECTING);
	loop_timer_cancel(e->init_timer);
	e->init_timer = loop_timer_add(e->loop, e->init_timeout_ms, init_timeout_cb, e);
}

static struct env *env_by_serial(uint64_t serial)
{
	for (struct env *e = live_envs; e; e = e->next_live)
		if (e->serial == serial)
			return e;
	return NULL;
}

/* Packed: serial (31 bits) | pipe id (31 bits) | event (2 bits): nothing is
 * allocated, so a post that outlives its env or the loop leaks nothing. */
static void pipe_event_cb(void *arg)
{
	uint64_t v = (uint64_t)(uintptr_t)arg;
	struct env *e = env_by_serial(v >> 33);
	uint32_t pipe = (uint32_t)((v >> 2) & 0x7fffffffu);

	if (!e)
		return;
	if ((v & 3u) == NNG_PIPE_EV_ADD_POST) {
		if (pipe != e->pipe)
			pipe_adopt(e, pipe);
	} else if (pipe == e->pipe) {
		env_link_lost(e, e->spawned && e->pid <= 0 ? "the executor exited"
						       : "the executor closed the connection");
	}
}

static void pipe_notify_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct env *e = arg;
	uint64_t v = (e->serial << 33) | ((uint64_t)(nng_pipe_id(p) & 0x7fffffff) << 2) |
		     (uint64_t)ev;

	loop_post(e->loop, pipe_event_cb, (void *)(uintptr_t)v);
}

/* tls+tcp://: trust only the configured certificate (or CA), and check the
 * name in it against the URL's host. */
static int setup_tls(struct env *e, char *err, size_t errlen)
{
	struct linkurl u;
	nng_tls_config *cfg;
	int r;

	if (!e->tls_ca_file) {
		snprintf(err, errlen, "%s needs the executor's certificate (or its CA) in "
				      "executor-tls/%s.pem under the home directory", e->url, e->id);
		return -EINVAL;
	}
	if (linkurl_parse(e->url, &u, err, errlen) < 0)
		return -EINVAL;
	r = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT);
	if (r == 0)
		r = nng_tls_config_ca_file(cfg, e->tls_ca_file);
	if (r == 0)
		r = nng_tls_config_server_name(cfg, u.host);
	if (r == 0)
		r = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED);
	if (r == 0)
		r = nng_dialer_set_ptr(e->dialer, NNG_OPT_TLS_CONFIG, cfg);
	if (cfg)
		nng_tls_config_free(cfg);
	if (r != 0)
		snprintf(err, errlen, "TLS setup for %s with %s: %s", e->url, e->tls_ca_file,
			 nng_strerror(r));
	return r ? link_errno(r) : 0;
}

static int open_link(struct env *e, char *err, size_t errlen)
{
	int r = link_open(&e->link, e->loop, frame_cb, e);

	if (r < 0) {
		snprintf(err, errlen, "cannot open a link socket: %s", strerror(-r));
		return r;
	}
	e->link_open = true;
	nng_pipe_notify(e->link.sock, NNG_PIPE_EV_ADD_POST, pipe_notify_cb, e);
	nng_pipe_notify(e->link.sock, NNG_PIPE_EV_REM_POST, pipe_notify_cb, e);
	r = nng_dialer_create(&e->dialer, e->link.sock, e->url);
	if (r == 0 && strncmp(e->url, "tls+tcp://", 10) == 0 && setup_tls(e, err, errlen) < 0)
		return -EINVAL;
	if (r == 0) {
		nng_dialer_set_ms(e->dialer, NNG_OPT_RECONNMINT, 50);
		nng_dialer_set_ms(e->dialer, NNG_OPT_RECONNMAXT, 2000);
		/* Non-blocking: a failed first dial keeps retrying in the background. */
		r = nng_dialer_start(e->dialer, NNG_FLAG_NONBLOCK);
	}
	if (r != 0) {
		snprintf(err, errlen, "cannot dial %s: %s", e->url, nng_strerror(r));
		return link_errno(r);
	}
	return 0;
}

/* ---- spawning the executor -------------------------------------------- */


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

	e->serial = next_serial++;
	e->loop = l;
	e->ops = ops;
	e->arg = arg;
	e->id = xstrdup(s->id);
	e->spawned = s->program != NULL;
	e->is_local = s->is_local;
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
	e->pidfd = -1;
	e->state = ENV_CONNECTING;
	e->http = http_new_relay(l, &relay_ops, e);
	e->next_live = live_envs;
	live_envs = e;
	return e;
}

static int load_remote_secret(struct env *e, char *err, size_t errlen)
{
	int r;

	if (e->token) {
		e->secret = TAKE_PTR(e->token);
		return 0;
	}
	if (e->secret_file) {
		r = secret_from_file(e->secret_file, &e->secret);
		if (r < 0)
			snprintf(err, errlen, "token file %s: %s", e->secret_file,
				 r == -EPERM ? "readable by group or others" : strerror(-r));
		return r;
	}
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
	r = open_link(e, err, errlen);
	if (r == 0)
		arm_connect_timer(e);
	return r;
}


struct env *env_free(struct env *e)
{
	if (!e)
		return NULL;
	for (struct env **pp = &live_envs; *pp; pp = &(*pp)->next_live) {
		if (*pp == e) {
			*pp = e->next_live;
			break;
		}
	}
	/* Relayed requests end while the link can still carry their aborts. */
	http_relay_fail_all(e->http, -ECANCELED, "the orchestrator is shutting down");
	e->http = http_free(e->http);
	/* The executor goes first: with its end gone, nng has no live pipe to
	 * wait for while the socket closes. */
	env_spawn_stop(e);
	if (e->link_open && link_close(&e->link) < 0) {
		log_warn("environment '%s': the link socket did not close (nng); leaving it", e->id);
		return NULL; /* nng may still call back into e: keep it */
	}
	/* NULLed: a pending HELLO's callback (below) cancels init_timer too. */
	loop_timer_cancel(e->init_timer);
	e->init_timer = NULL;
	loop_timer_cancel(e->connect_timer);
	e->connect_timer = NULL;
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
	free(e->executor_id);
	strv_free(e->args);
	strv_free(e->extra_env);
	free(e);
	return NULL;
}

const char *env_id(const struct env *e) { return e->id; }
enum env_state env_state(const struct env *e) { return e->state; }
const char *env_error(const struct env *e) { return e->error; }
const char *env_executor_id(const struct env *e) { return e->executor_id; }
bool env_is_local(const struct env *e) { return e->is_local; }
bool env_spawned(const struct env *e) { return e->spawned; }
unsigned env_restarts(const struct env *e) { return e->restarts; }
int env_executor_pid(const struct env *e) { return e->pid > 0 ? (int)e->pid : -1; }

