/* mcphttp.c - see mcphttp.h.
 *
 * Size: about 940 lines, kept in one file on purpose: the POST exchanges,
 * the session renewal that replays and re-queues them, and the GET stream
 * all share the transport struct and its deferred-free guard (enter/leave);
 * apart, each would need the other's internals.
 *
 * Every POST is one struct mreq on t->active. Its answer is routed by
 * content type: JSON bodies are collected (bounded by MCP_MAX_MESSAGE) and
 * delivered when the exchange ends, SSE events are delivered as they
 * arrive, error bodies are kept (a little) for the reason text.
 *
 * Re-entrancy: message_cb and closed_cb may free the transport. Every http
 * callback brackets its work with enter()/leave(); mcphttp_free during a
 * callback only cancels the exchanges and marks the transport doomed, and
 * the last leave() destroys it. A finishing exchange is unlinked before
 * its outcome is delivered, so it is never freed under its own feet.
 */
#include "mcphttp.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "loop.h"
#include "mcp.h"
#include "secret.h"
#include "sse.h"
#include "util.h"

#define SESSION_ID_MAX 1024u
#define EXTRA_MAX (2u + MCPHTTP_AUTH_HEADERS) /* session, version, credentials */

enum kind {
	K_NORMAL,
	K_INIT,        /* the session's initialize */
	K_REPLAY_INIT, /* our replay of it after an expiry: consumed here */
	K_REPLAY_INITED, /* then notifications/initialized: messages wait for it */
};

enum mode { M_NONE, M_JSON, M_SSE, M_ERROR };

struct mreq {
	struct mreq *next;
	struct mcphttp *t;
	struct http_req *hr;
	char *body;
	size_t len;
	json_t *id; /* the JSON-RPC request id; NULL for notifications, responses */
	enum kind kind;
	enum mode mode;
	bool retried;     /* resent after a re-initialize */
	bool had_session; /* carried Mcp-Session-Id */
	bool init_ok;     /* K_REPLAY_INIT: a result arrived */
	struct sse sse;
	char *buf;
	size_t blen, bcap;
};

struct mcphttp {
	struct http *h;
	char *url;
	char **hdr; /* configured "Name: value"; secrets, wiped */
	size_t nhdr;
	char **env_hdr; /* relay mode: "[!]VAR=Name: prefix", resolved on the executor */
	size_t nenv_hdr;
	uint64_t timeout_ms;
	char *session_id;
	char *version;
	char *init_body, *inited_body;
	size_t init_len, inited_len;
	struct mreq *active;
	struct mreq *waiting; /* sent during a re-initialize, oldest first */
	bool reiniting, closed, doomed;
	/* the GET stream for server-initiated messages */
	struct loop *loop;
	struct http_req *get_hr;
	struct loop_timer *get_timer;
	struct sse get_sse;
	bool get_streaming, get_unsupported;
	unsigned get_failures; /* in a row without an event */
	char *last_event_id;
	bool unauthorized; /* the last answered exchange got 401 */
	char *www_auth;    /* its WWW-Authenticate */
	unsigned busy;
	struct mcphttp_ops ops;
	void *arg;
};

static void destroy(struct mcphttp *t);
static void get_stop(struct mcphttp *t);

static void enter(struct mcphttp *t) { t->busy++; }

static void leave(struct mcphttp *t)
{
	if (--t->busy == 0 && t->doomed)
		destroy(t);
}

static void mreq_free(struct mreq *m)
{
	if (!m)
		return;
	if (m->mode == M_SSE)
		sse_free(&m->sse);
	if (m->body)
		secure_wipe(m->body, m->len);
	free(m->body);
	free(m->buf);
	json_decref(m->id);
	free(m);
}

static void unlink_req(struct mreq *m)
{
	for (struct mreq **pp = &m->t->active; *pp; pp = &(*pp)->next) {
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	}
	m->next = NULL;
	m->hr = NULL;
}

/* ---- delivering -------------------------------------------------------- */

static void deliver(struct mcphttp *t, const char *data, size_t len)
{
	if (!t->doomed && !t->closed && t->ops.message_cb)
		t->ops.message_cb(data, len, t->arg);
}

static void close_transport(struct mcphttp *t, const char *reason)
{
	struct mreq *w;

	if (t->closed || t->doomed)
		return;
	t->closed = true;
	t->reiniting = false;
	get_stop(t);
	while ((w = t->waiting)) {
		t->waiting = w->next;
		mreq_free(w);
	}
	if (t->ops.closed_cb)
		t->ops.closed_cb(reason, t->arg);
}

/* The initialize result names the protocol version later requests carry. */
static bool sniff_init_result(struct mcphttp *t, const char *data, size_t len)
{
	json_t *msg = json_loadb(data, len, 0, NULL);
	json_t *res = json_object_get(msg, "result");
	const char *v = json_string_value(json_object_get(res, "protocolVersion"));
	bool ok = json_is_object(res);

	if (v && strlen(v) < 64) {
		free(t->version);
		t->version = xstrdup(v);
	}
	json_decref(msg);
	return ok;
}

static void on_message(struct mreq *m, const char *data, size_t len)
{
	struct mcphttp *t = m->t;

	if (m->kind == K_REPLAY_INIT) {
		if (sniff_init_result(t, data, len))
			m->init_ok = true;
		return;
	}
	if (m->kind == K_INIT)
		sniff_init_result(t, data, len);
	deliver(t, data, len);
}

/* A failed exchange answers its request with a JSON-RPC error. */
static void reinit_failed(struct mcphttp *t, const char *why);

static void fail_exchange(struct mreq *m, const char *reason)
{
	json_t *err;
	char *s;

	if (m->kind == K_REPLAY_INIT || m->kind == K_REPLAY_INITED) {
		reinit_failed(m->t, reason);
		return;
	}
	if (!m->id)
		return;
	err = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", m->id, "error",
			"code", -32603, "message", reason);
	s = err ? json_dumps(err, JSON_COMPACT) : NULL;
	if (s)
		deliver(m->t, s, strlen(s));
	free(s);
	json_decref(err);
}

/* ---- posting ----------------------------------------------------------- */

static void req_headers_cb(struct http_req *r, long status, void *arg);
static void req_data_cb(struct http_req *r, const char *data, size_t len, void *arg);
static void req_done_cb(struct http_req *r, int err, long status, const char *msg, void *arg);

static const struct http_cbs req_cbs = {
	.headers_cb = req_headers_cb,
	.data_cb = req_data_cb,
	.done_cb = req_done_cb,
};

/* The configured headers plus the session's; *extra owns what is built. */
static const char **build_headers(struct mcphttp *t, bool with_session, bool with_version,
				  bool post, char *extra[EXTRA_MAX])
{
	const char **v = xcalloc(t->nhdr + 5 + MCPHTTP_AUTH_HEADERS, sizeof(*v));
	size_t nauth;
	size_t n = 0;

	for (size_t i = 0; i < t->nhdr; i++)
		v[n++] = t->hdr[i];
	if (post) {
		v[n++] = "Content-Type: application/json";
		v[n++] = "Accept: application/json, text/event-stream";
	}
	memset(extra, 0, EXTRA_MAX * sizeof(*extra));
	nauth = t->ops.auth_cb ? t->ops.auth_cb(t->arg, extra + 2) : 0;
	for (size_t i = 0; i < MIN(nauth, (size_t)MCPHTTP_AUTH_HEADERS); i++)
		v[n++] = extra[2 + i];
	if (with_session && t->session_id)
		v[n++] = extra[0] = xasprintf("Mcp-Session-Id: %s", t->session_id);
	if (with_version && t->version)
		v[n++] = extra[1] = xasprintf("MCP-Protocol-Version: %s", t->version);
	return v;
}

static void free_extra(char *extra[EXTRA_MAX])
{
	free(extra[0]);
	free(extra[1]);
	for (size_t i = 2; i < EXTRA_MAX; i++) {
		if (extra[i])
			secure_wipe(extra[i], strlen(extra[i])); /* credentials */
		free(extra[i]);
	}
}

static struct mreq *mreq_new(struct mcphttp *t, const char *body, size_t len, enum kind kind,
			     json_t *id)
{
	struct mreq *m = xcalloc(1, sizeof(*m));

	m->t = t;
	m->body = xmalloc(len + 1);
	memcpy(m->body, body, len);
	m->body[len] = '\0';
	m->len = len;
	m->kind = kind;
	m->id = json_incref(id);
	return m;
}

/* Starts m's POST; on failure m is freed and -errno returned. */
static int post(struct mreq *m)
{
	struct mcphttp *t = m->t;
	bool init = m->kind == K_INIT || m->kind == K_REPLAY_INIT;
	char *extra[EXTRA_MAX];
	_cleanup_free_ const char **hdrs = build_headers(t, !init, !init, true, extra);
	struct http_opts o = {
		.method = "POST",
		.url = t->url,
		.headers = hdrs,
		.env_headers = (const char *const *)t->env_hdr,
		.body = m->body,
		.body_len = m->len,
		.timeout_ms = t->timeout_ms,
	};
	int r = 0;

	m->had_session = !init && t->session_id;
	m->hr = http_start(t->h, &o, &req_cbs, m);
	if (!m->hr) {
		r = -(errno ? errno : EIO);
		mreq_free(m);
	} else {
		m->next = t->active;
		t->active = m;
	}
	free_extra(extra);
	return r;
}

/* Posts m, and when even that fails, answers it with the error. */
static void post_or_fail(struct mreq *m)
{
	struct mcphttp *t = m->t;
	json_t *id = json_incref(m->id);
	enum kind kind = m->kind;
	int r = post(m);

	if (r < 0) {
		struct mreq tmp = { .t = t, .id = id, .kind = kind };

		fail_exchange(&tmp, "cannot send the HTTP request");
	}
	json_decref(id);
}

/* ---- session expiry ---------------------------------------------------- */

static void reinit_failed(struct mcphttp *t, const char *why)
{
	char *reason = xasprintf("the HTTP MCP session expired and re-initializing failed: %s",
				 why);

	close_transport(t, reason);
	free(reason);
}

static void start_reinit(struct mcphttp *t)
{
	if (t->reiniting)
		return;
	if (!t->init_body) {
		close_transport(t, "the HTTP MCP session expired before it was initialized");
		return;
	}
	t->reiniting = true;
	free(t->session_id);
	t->session_id = NULL;
	if (post(mreq_new(t, t->init_body, t->init_len, K_REPLAY_INIT, NULL)) < 0)
		reinit_failed(t, "cannot send the HTTP request");
}

/* The renewed session is ready: send what waited, in order. */
static void release_waiting(struct mcphttp *t)
{
	struct mreq *w;

	t->reiniting = false;
	while (!t->closed && !t->doomed && (w = t->waiting)) {
		t->waiting = w->next;
		w->next = NULL;
		post_or_fail(w);
	}
}

/* initialize was answered: notifications/initialized goes first, and the
 * waiting messages only once the server has taken it (MCP orders them). */
static void reinit_done(struct mcphttp *t)
{
	if (!t->inited_body) {
		release_waiting(t);
		return;
	}
	if (post(mreq_new(t, t->inited_body, t->inited_len, K_REPLAY_INITED, NULL)) < 0)
		reinit_failed(t, "cannot send the HTTP request");
}

static void queue_waiting(struct mcphttp *t, struct mreq *m)
{
	struct mreq **pp = &t->waiting;

	while (*pp)
		pp = &(*pp)->next;
	*pp = m;
}

static bool is_expiry(const struct mreq *m, long status)
{
	if (m->kind != K_NORMAL)
		return false;
	if (status == 404)
		return m->had_session;
	if (status == 400 && m->buf) {
		for (size_t i = 0; i + 7 <= m->blen; i++)
			if (strncasecmp(m->buf + i, "session", 7) == 0)
				return true;
	}
	return false;
}

static void on_expired(struct mreq *m)
{
	struct mcphttp *t = m->t;
	struct mreq *again;

	if (m->retried) {
		close_transport(t, "the HTTP MCP session expired again after re-initializing");
		return;
	}
	again = mreq_new(t, m->body, m->len, K_NORMAL, m->id);
	again->retried = true;
	queue_waiting(t, again);
	start_reinit(t);
}

/* ---- http callbacks ---------------------------------------------------- */

static void event_cb(const char *event, const char *data, size_t len, const char *id,
			 void *arg)
{
	struct mreq *m = arg;

	(void)id;
	if (len && strcmp(event, "message") == 0 && !m->t->doomed)
		on_message(m, data, len);
}

static bool ct_is(const char *ct, const char *want)
{
	size_t n = strlen(want);

	return ct && strncasecmp(ct, want, n) == 0 && (!ct[n] || ct[n] == ';' || ct[n] == ' ');
}

static bool session_id_valid(const char *v)
{
	size_t n = strlen(v);

	if (!n || n > SESSION_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (v[i] < 0x21 || v[i] > 0x7e)
			return false;
	return true;
}

static void req_headers_cb(struct http_req *r, long status, void *arg)
{
	struct mreq *m = arg;
	struct mcphttp *t = m->t;
	const char *sid;

	if (status < 200 || status > 299) {
		m->mode = M_ERROR;
		return;
	}
	if (ct_is(http_req_header(r, "Content-Type"), "text/event-stream")) {
		m->mode = M_SSE;
		sse_init(&m->sse, MCP_MAX_MESSAGE, event_cb, m);
	} else {
		m->mode = M_JSON;
	}
	sid = m->kind == K_INIT || m->kind == K_REPLAY_INIT ? http_req_header(r, "Mcp-Session-Id")
							 : NULL;
	if (sid && session_id_valid(sid)) {
		free(t->session_id);
		t->session_id = xstrdup(sid);
	}
}

static bool append(struct mreq *m, const char *data, size_t len, size_t max)
{
	if (len > max - m->blen)
		return false;
	if (m->blen + len + 1 > m->bcap) {
		m->bcap = MAX(m->bcap * 2, m->blen + len + 1);
		m->buf = xrealloc(m->buf, m->bcap);
	}
	memcpy(m->buf + m->blen, data, len);
	m->blen += len;
	m->buf[m->blen] = '\0';
	return true;
}

/* Ends an exchange from inside its data callback. */
static void abort_exchange(struct mreq *m, const char *reason)
{
	http_cancel(m->hr);
	unlink_req(m);
	fail_exchange(m, reason);
	mreq_free(m);
}

static void req_data_cb(struct http_req *r, const char *data, size_t len, void *arg)
{
	struct mreq *m = arg;
	struct mcphttp *t = m->t;

	(void)r;
	enter(t);
	switch (m->mode) {
	case M_JSON:
		if (!append(m, data, len, MCP_MAX_MESSAGE))
			abort_exchange(m, "the HTTP MCP response is too large");
		break;
	case M_SSE:
		if (sse_feed(&m->sse, data, len) < 0 && !t->doomed)
			abort_exchange(m, "an HTTP MCP event is too large");
		break;
	case M_ERROR:
		append(m, data, MIN(len, MCPHTTP_MAX_ERROR_BODY - MIN(m->blen, MCPHTTP_MAX_ERROR_BODY)),
		       MCPHTTP_MAX_ERROR_BODY);
		break;
	default:
		break;
	}
	leave(t);
}

static bool blank(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isspace((unsigned char)p[i]))
			return false;
	return true;
}

/* "HTTP 500: <first line of the body, printable>" */
static char *status_reason(const struct mreq *m, long status)
{
	char excerpt[161];
	size_t n = 0;

	for (size_t i = 0; m->buf && i < m->blen && n < sizeof(excerpt) - 1; i++) {
		if (m->buf[i] == '\n' || m->buf[i] == '\r')
			break;
		excerpt[n++] = isprint((unsigned char)m->buf[i]) ? m->buf[i] : '?';
	}
	excerpt[n] = '\0';
	return xasprintf("HTTP MCP server answered %ld%s%s", status, n ? ": " : "", excerpt);
}

static void get_maybe_start(struct mcphttp *t);

static void finish(struct mreq *m, int err, long status, const char *msg)
{
	struct mcphttp *t = m->t;
	char *why;

	if (err == -ETIMEDOUT && m->kind == K_NORMAL)
		return; /* the session timed the request out already */
	if (err < 0) {
		why = xasprintf("cannot reach the HTTP MCP server: %s", msg);
		fail_exchange(m, why);
		free(why);
		return;
	}
	if (is_expiry(m, status)) {
		on_expired(m);
		return;
	}
	if (status < 200 || status > 299) {
		why = status_reason(m, status);
		fail_exchange(m, why);
		free(why);
		return;
	}
	if (m->mode == M_JSON && m->blen && !blank(m->buf, m->blen))
		on_message(m, m->buf, m->blen);
	if (m->kind == K_REPLAY_INIT) {
		if (m->init_ok)
			reinit_done(t);
		else
			reinit_failed(t, "no initialize result");
	} else if (m->kind == K_REPLAY_INITED) {
		release_waiting(t);
	}
	if (m->kind == K_NORMAL || m->kind == K_REPLAY_INITED)
		get_maybe_start(t); /* the session is initialized */
}

/* ---- the GET stream ----------------------------------------------------
 *
 * Once the session is initialized (a first message after initialize was
 * accepted), a GET with Accept: text/event-stream opens the channel a
 * server may use for its own requests and notifications. 405 means the
 * server offers none: never asked again. A stream that ends or fails is
 * reopened after a backoff (with Last-Event-ID when the server gave ids),
 * and given up after MCPHTTP_GET_MAX_FAILURES tries in a row that brought
 * no event. */

static void get_timer_cb(struct loop_timer *tm, void *arg);

static void get_stop(struct mcphttp *t)
{
	http_cancel(t->get_hr);
	t->get_hr = NULL;
	loop_timer_cancel(t->get_timer);
	t->get_timer = NULL;
	if (t->get_streaming)
		sse_free(&t->get_sse);
	t->get_streaming = false;
}

static void get_event_cb(const char *event, const char *data, size_t len, const char *id,
			 void *arg)
{
	struct mcphttp *t = arg;

	if (id && strlen(id) <= SESSION_ID_MAX) {
		free(t->last_event_id);
		t->last_event_id = xstrdup(id);
	}
	if (len && strcmp(event, "message") == 0) {
		t->get_failures = 0;
		deliver(t, data, len);
	}
}

static void get_headers_cb(struct http_req *r, long status, void *arg)
{
	struct mcphttp *t = arg;

	if (status == 405)
		t->get_unsupported = true;
	else if (status >= 200 && status <= 299 &&
		 ct_is(http_req_header(r, "Content-Type"), "text/event-stream")) {
		t->get_streaming = true;
		sse_init(&t->get_sse, MCP_MAX_MESSAGE, get_event_cb, t);
	}
}

static void get_data_cb(struct http_req *r, const char *data, size_t len, void *arg)
{
	struct mcphttp *t = arg;
	bool bad;

	if (!t->get_streaming)
		return; /* an error body */
	enter(t);
	bad = sse_feed(&t->get_sse, data, len) < 0;
	if (bad && !t->doomed) {
		/* An event over the bound: drop the stream; the retry reopens it. */
		http_cancel(r);
		t->get_hr = NULL;
		sse_free(&t->get_sse);
		t->get_streaming = false;
		t->get_failures++;
		t->get_timer = loop_timer_add(t->loop, MCPHTTP_GET_RETRY_MS, get_timer_cb, t);
	}
	leave(t);
}

static void get_done_cb(struct http_req *r, int err, long status, const char *msg, void *arg)
{
	struct mcphttp *t = arg;
	uint64_t delay;

	(void)r, (void)err, (void)msg;
	t->get_hr = NULL;
	if (t->get_streaming)
		sse_free(&t->get_sse);
	t->get_streaming = false;
	if (t->doomed || t->closed || t->get_unsupported || status == 405)
		return;
	if (++t->get_failures > MCPHTTP_GET_MAX_FAILURES)
		return;
	delay = MIN((uint64_t)MCPHTTP_GET_RETRY_MS << MIN(t->get_failures - 1, 5u),
		    (uint64_t)MCPHTTP_GET_RETRY_MAX_MS);
	t->get_timer = loop_timer_add(t->loop, delay, get_timer_cb, t);
}

static void get_open(struct mcphttp *t)
{
	static const struct http_cbs cbs = { get_headers_cb, get_data_cb, get_done_cb };
	char *extra[EXTRA_MAX], *last = NULL;
	_cleanup_free_ const char **base = build_headers(t, true, true, false, extra);
	const char **hdrs = xcalloc(t->nhdr + 8 + MCPHTTP_AUTH_HEADERS, sizeof(*hdrs));
	struct http_opts o = {
		.method = "GET",
		.url = t->url,
		.env_headers = (const char *const *)t->env_hdr,
		.max_body = 0, /* a long-lived stream: each event is bounded instead */
	};
	size_t n = 0;

	for (size_t i = 0; base[i]; i++)
		hdrs[n++] = base[i];
	hdrs[n++] = "Accept: text/event-stream";
	if (t->last_event_id)
		hdrs[n++] = last = xasprintf("Last-Event-ID: %s", t->last_event_id);
	o.headers = hdrs;
	t->get_hr = http_start(t->h, &o, &cbs, t);
	free(last);
	free(hdrs);
	free_extra(extra);
}

static void get_timer_cb(struct loop_timer *tm, void *arg)
{
	struct mcphttp *t = arg;

	(void)tm;
	t->get_timer = NULL;
	if (!t->doomed && !t->closed && !t->get_hr)
		get_open(t);
}

static void get_maybe_start(struct mcphttp *t)
{
	if (t->get_hr || t->get_timer || t->get_unsupported || !t->loop || t->closed ||
	    t->doomed || t->reiniting || t->get_failures > MCPHTTP_GET_MAX_FAILURES)
		return;
	get_open(t);
}

static void req_done_cb(struct http_req *r, int err, long status, const char *msg, void *arg)
{
	struct mreq *m = arg;
	struct mcphttp *t = m->t;

	unlink_req(m);
	enter(t);
	if (err == 0 && status == 401) {
		const char *wa = http_req_header(r, "WWW-Authenticate");

		t->unauthorized = true;
		free(t->www_auth);
		t->www_auth = wa ? xstrndup(wa, strnlen(wa, MCPHTTP_MAX_ERROR_BODY)) : NULL;
	} else if (err == 0 && status >= 200 && status <= 299) {
		t->unauthorized = false;
	}
	if (!t->doomed && !t->closed)
		finish(m, err, status, msg);
	mreq_free(m);
	leave(t);
}

/* ---- public ------------------------------------------------------------ */

bool mcphttp_unauthorized(const struct mcphttp *t) { return t->unauthorized; }
const char *mcphttp_www_authenticate(const struct mcphttp *t) { return t->www_auth; }

int mcphttp_send(void *ctx, const char *json, size_t len)
{
	struct mcphttp *t = ctx;
	json_t *msg, *id;
	const char *method;
	enum kind kind = K_NORMAL;
	struct mreq *m;

	if (t->closed || t->doomed)
		return -ENOTCONN;
	msg = json_loadb(json, len, 0, NULL);
	if (!msg)
		return -EINVAL;
	method = json_string_value(json_object_get(msg, "method"));
	id = method ? json_object_get(msg, "id") : NULL;
	if (method && strcmp(method, "initialize") == 0) {
		/* A new session: remembered for a replay after an expiry. */
		kind = K_INIT;
		free(t->init_body);
		t->init_body = xmalloc(len);
		memcpy(t->init_body, json, len);
		t->init_len = len;
		free(t->session_id);
		free(t->version);
		t->session_id = t->version = NULL;
	} else if (method && strcmp(method, "notifications/initialized") == 0) {
		free(t->inited_body);
		t->inited_body = xmalloc(len);
		memcpy(t->inited_body, json, len);
		t->inited_len = len;
	}
	m = mreq_new(t, json, len, kind, id);
	json_decref(msg);
	if (t->reiniting && kind == K_NORMAL) {
		queue_waiting(t, m);
		return 0;
	}
	return post(m);
}


static bool has_crlf(const char *s) { return strpbrk(s, "\r\n") != NULL; }

static int add_header(struct mcphttp *t, const char *name, const char *value, char *reason,
		      size_t reasonlen)
{
	if (!name || !value || !*name || has_crlf(name) || strchr(name, ':') || has_crlf(value)) {
		snprintf(reason, reasonlen, "header '%s' is not valid",
			 name && !has_crlf(name) ? name : "?");
		return -EINVAL;
	}
	if (t->nhdr >= MCPHTTP_MAX_HEADERS) {
		snprintf(reason, reasonlen, "too many headers");
		return -E2BIG;
	}
	t->hdr[t->nhdr++] = xasprintf("%s: %s", name, value);
	return 0;
}

static int build_config_headers(struct mcphttp *t, json_t *cfg, char *reason, size_t reasonlen)
{
	const char *bearer = json_string_value(json_object_get(cfg, "bearer_token_env_var"));
	json_t *lit = json_object_get(cfg, "http_headers");
	json_t *env = json_object_get(cfg, "env_http_headers"), *v;
	const char *k;
	int r;

	t->hdr = xcalloc(json_object_size(lit) + json_object_size(env) + 2, sizeof(*t->hdr));
	if (http_is_relay(t->h)) {
		/* The variables are the executor's, read where the request runs. */
		t->env_hdr = xcalloc(json_object_size(env) + 2, sizeof(*t->env_hdr));
		if (bearer)
			t->env_hdr[t->nenv_hdr++] = xasprintf("!%s=Authorization: Bearer ", bearer);
		json_object_foreach(env, k, v)
			if (json_is_string(v))
				t->env_hdr[t->nenv_hdr++] = xasprintf("%s=%s: ", json_string_value(v), k);
		for (size_t i = 0; i < t->nenv_hdr; i++) {
			if (!http_env_header_valid(t->env_hdr[i])) {
				snprintf(reason, reasonlen, "invalid header name or variable name");
				return -EINVAL;
			}
		}
		bearer = NULL;
		env = NULL;
	}
	if (bearer) {
		const char *tok = secret_getenv(bearer);
		char *val;

		if (!tok || !*tok) {
			snprintf(reason, reasonlen,
				 "environment variable %s (bearer_token_env_var) is not set", bearer);
			return -ENOENT;
		}
		val = xasprintf("Bearer %s", tok);
		r = add_header(t, "Authorization", val, reason, reasonlen);
		secure_wipe(val, strlen(val));
		free(val);
		if (r < 0)
			return r;
	}
	json_object_foreach(lit, k, v)
		if ((r = add_header(t, k, json_string_value(v), reason, reasonlen)) < 0)
			return r;
	json_object_foreach(env, k, v) {
		const char *val = json_is_string(v) ? secret_getenv(json_string_value(v)) : NULL;

		if (val && (r = add_header(t, k, val, reason, reasonlen)) < 0)
			return r;
	}
	return 0;
}

struct mcphttp *mcphttp_new(struct http *h, json_t *cfg, uint64_t request_timeout_ms,
			    const struct mcphttp_ops *ops, void *arg, char *reason,
			    size_t reasonlen)
{
	const char *url = json_string_value(json_object_get(cfg, "url"));
	struct mcphttp *t;

	if (!h || !url) {
		snprintf(reason, reasonlen, "%s", h ? "no url" : "no HTTP client");
		return NULL;
	}
	t = xcalloc(1, sizeof(*t));
	t->h = h;
	t->loop = http_loop(h);
	t->url = xstrdup(url);
	t->timeout_ms = request_timeout_ms ? request_timeout_ms + MCPHTTP_CONNECT_MARGIN_MS : 0;
	t->ops = *ops;
	t->arg = arg;
	if (build_config_headers(t, cfg, reason, reasonlen) < 0) {
		destroy(t);
		return NULL;
	}
	return t;
}

static void delete_done_cb(struct http_req *r, int err, long status, const char *msg, void *arg)
{
	(void)r, (void)err, (void)status, (void)msg, (void)arg;
}

/* Best effort: tells the server the session is over. */
static void send_delete(struct mcphttp *t)
{
	static const struct http_cbs cbs = { .done_cb = delete_done_cb };
	char *extra[EXTRA_MAX];
	_cleanup_free_ const char **hdrs = build_headers(t, true, true, false, extra);
	struct http_opts o = {
		.method = "DELETE",
		.url = t->url,
		.headers = hdrs,
		.env_headers = (const char *const *)t->env_hdr,
		.timeout_ms = MCPHTTP_DELETE_TIMEOUT_MS,
	};

	http_start(t->h, &o, &cbs, NULL);
	free_extra(extra);
}

static void destroy(struct mcphttp *t)
{
	struct mreq *m;

	while ((m = t->active)) {
		t->active = m->next;
		http_cancel(m->hr);
		mreq_free(m);
	}
	while ((m = t->waiting)) {
		t->waiting = m->next;
		mreq_free(m);
	}
	for (size_t i = 0; i < t->nhdr; i++) {
		secure_wipe(t->hdr[i], strlen(t->hdr[i]));
		free(t->hdr[i]);
	}
	free(t->hdr);
	for (size_t i = 0; i < t->nenv_hdr; i++)
		free(t->env_hdr[i]);
	free(t->env_hdr);
	if (t->init_body)
		secure_wipe(t->init_body, t->init_len);
	free(t->init_body);
	free(t->inited_body);
	free(t->session_id);
	free(t->version);
	free(t->url);
	free(t->www_auth);
	get_stop(t);
	free(t->last_event_id);
	free(t);
}

struct mcphttp *mcphttp_free(struct mcphttp *t)
{
	if (!t || t->doomed)
		return NULL;
	if (t->session_id && !t->closed)
		send_delete(t);
	t->doomed = true;
	http_cancel(t->get_hr);
	t->get_hr = NULL;
	loop_timer_cancel(t->get_timer);
	t->get_timer = NULL;
	for (struct mreq *m = t->active; m; m = m->next) {
		http_cancel(m->hr);
		m->hr = NULL;
	}
	if (!t->busy)
		destroy(t);
	return NULL;
}
