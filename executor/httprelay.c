/* httprelay.c - HTTP_REQUEST: HTTP exchanges run here, for the orchestrator.
 *
 * An HTTP MCP server declared in this executor's plugins (and the OAuth
 * exchanges for it) must reach its host from this machine: its network, its
 * name resolution, its proxy variables. The orchestrator sends the request
 * over the link; it runs on our libcurl (common/http.c) and streams back as
 * HTTP_RESPONSE events.
 *
 * Coalescing: what a request brings (its head, body bytes, its end) is
 * gathered and sent as one frame when the loop comes round (one 0 ms timer
 * for all requests), or at once when its body buffer reaches
 * HTTPRELAY_FLUSH_BYTES. A small answer (head, body and end arrive within
 * one turn of libcurl) thus costs one frame instead of three; a stream
 * still moves event by event.
 *
 * Bounds: EXEC_MAX_HTTP requests at once (more end at once with -EMFILE), the
 * body and timeouts the orchestrator asks for, capped by ours. A body chunk
 * the link cannot queue ends its request with -ENOBUFS rather than losing
 * bytes in the middle of a stream. When the peer goes, every request goes.
 *
 * Headers and bodies hold credentials: nothing here logs them, and the
 * copies made to start a request are wiped (http.c wipes its own).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "executor.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "metrics_tandem.h"
#include "util.h"

#define HTTPRELAY_FLUSH_BYTES (64u * 1024u)

struct xreq {
	struct xreq *prev, *next;
	struct executor *ex;
	struct http_req *hr;
	uint64_t id;
	uint32_t peer; /* the orchestrator it is for */
	/* gathered for the next frame */
	bool queued;        /* on ex's flush list */
	struct xreq *flush_next;
	bool head;          /* status and headers wait */
	uint32_t status;
	char **hdrs;
	size_t nhdrs;
	char *data;
	size_t len, cap;
	bool end;
	int err;
	char *reason;
};

/* An end for a request that never started (no struct xreq). */
static void send_refusal(struct executor *ex, uint64_t id, int err, const char *why)
{
	struct proto_http_response_body d = { .req_id = id, .end = true, .err = err };

	d.reason = proto_str_c(why);
	PROTO_MARK(&d, http_response_body, end);
	PROTO_MARK(&d, http_response_body, err);
	PROTO_MARK(&d, http_response_body, reason);
	listener_send(ex, PROTO_HTTP_RESPONSE, PROTO_EVENT, 0, &d);
}

static void gathered_clear(struct xreq *x)
{
	for (size_t i = 0; i < x->nhdrs; i++)
		free(x->hdrs[i]);
	free(x->hdrs);
	x->hdrs = NULL;
	x->nhdrs = 0;
	x->head = false;
	x->len = 0;
	free(x->reason);
	x->reason = NULL;
}

/* Sends what x gathered as one frame; -errno when the link refused it. */
static int send_gathered(struct xreq *x)
{
	struct proto_http_response_body d = { .req_id = x->id };
	_cleanup_free_ struct proto_str *items = NULL;
	int r;

	PROTO_MARK(&d, http_response_body, req_id);
	if (x->head) {
		items = xcalloc(x->nhdrs ? x->nhdrs : 1, sizeof(*items));
		for (size_t i = 0; i < x->nhdrs; i++)
			items[i] = proto_str_c(x->hdrs[i]);
		d.status = x->status;
		d.headers.items = items;
		d.headers.n = (uint32_t)x->nhdrs;
		PROTO_MARK(&d, http_response_body, status);
		PROTO_MARK(&d, http_response_body, headers);
	}
	if (x->len) {
		d.data.ptr = x->data;
		d.data.len = (uint32_t)x->len;
		PROTO_MARK(&d, http_response_body, data);
	}
	if (x->end) {
		d.end = true;
		d.err = x->err;
		PROTO_MARK(&d, http_response_body, end);
		PROTO_MARK(&d, http_response_body, err);
		if (x->reason) {
			d.reason = proto_str_c(x->reason);
			PROTO_MARK(&d, http_response_body, reason);
		}
	}
	r = listener_send(x->ex, PROTO_HTTP_RESPONSE, PROTO_EVENT, 0, &d);
	gathered_clear(x);
	return r;
}

static void unqueue(struct xreq *x)
{
	for (struct xreq **pp = &x->ex->http_flush; *pp; pp = &(*pp)->flush_next) {
		if (*pp == x) {
			*pp = x->flush_next;
			break;
		}
	}
	x->queued = false;
}

static void xreq_free(struct xreq *x)
{
	struct executor *ex = x->ex;

	if (x->queued)
		unqueue(x);
	gathered_clear(x);
	free(x->data);
	if (x->prev)
		x->prev->next = x->next;
	else
		ex->http_reqs = x->next;
	if (x->next)
		x->next->prev = x->prev;
	ex->n_http--;
	free(x);
}

/* Frames for a peer that has since gone must not reach the next one. */
static bool still_wanted(struct xreq *x)
{
	return x->peer == x->ex->peer && listener_authed(x->ex);
}

/* Sends x's frame; a frame the link cannot take ends the request: a hole in
 * a stream is worse than its end. Frees x when it ended. */
static void flush_one(struct xreq *x)
{
	bool end = x->end;

	if (!still_wanted(x)) {
		gathered_clear(x); /* its peer is gone: abort_all follows */
	} else if (send_gathered(x) < 0 && !end) {
		http_cancel(x->hr);
		x->hr = NULL;
		x->end = true;
		x->err = -ENOBUFS;
		x->reason = xstrdup("the link to the orchestrator is backed up; the response was cut");
		send_gathered(x);
		end = true;
	}
	if (end)
		xreq_free(x);
}

static void flush_cb(struct loop_timer *t, void *arg)
{
	struct executor *ex = arg;
	struct xreq *x;

	(void)t;
	ex->http_flush_timer = NULL;
	while ((x = ex->http_flush)) {
		ex->http_flush = x->flush_next;
		x->queued = false;
		flush_one(x);
	}
}

static void queue_flush(struct xreq *x)
{
	struct executor *ex = x->ex;

	if (!x->queued) {
		x->queued = true;
		x->flush_next = ex->http_flush;
		ex->http_flush = x;
	}
	if (!ex->http_flush_timer)
		ex->http_flush_timer = loop_timer_add(ex->loop, 0, flush_cb, ex);
}

static void headers_cb(struct http_req *r, long status, void *arg)
{
	struct xreq *x = arg;
	size_t n = http_req_nheaders(r);

	x->head = true;
	x->status = (uint32_t)status;
	x->hdrs = xcalloc(n ? n : 1, sizeof(*x->hdrs));
	for (size_t i = 0; i < n; i++) {
		const char *v, *name = http_req_header_at(r, i, &v);

		x->hdrs[i] = xasprintf("%s: %s", name, v);
	}
	x->nhdrs = n;
	queue_flush(x);
}

static void data_cb(struct http_req *r, const char *data, size_t len, void *arg)
{
	struct xreq *x = arg;

	(void)r;
	if (x->len + len > x->cap) {
		x->cap = MAX(x->len + len, MAX(x->cap * 2, (size_t)4096));
		x->data = xrealloc(x->data, x->cap);
	}
	memcpy(x->data + x->len, data, len);
	x->len += len;
	if (x->len < HTTPRELAY_FLUSH_BYTES) {
		queue_flush(x);
		return;
	}
	/* A large body moves now, in bounded frames. */
	if (x->queued)
		unqueue(x);
	flush_one(x);
}

static void done_cb(struct http_req *r, int err, long status, const char *msg, void *arg)
{
	struct xreq *x = arg;

	(void)r;
	x->hr = NULL;
	if (!x->head && status > 0) { /* an end without a head still says its status */
		x->head = true;
		x->status = (uint32_t)status;
		x->hdrs = xcalloc(1, sizeof(*x->hdrs));
	}
	x->end = true;
	x->err = err;
	x->reason = xstrdup(msg);
	metrics_http_relay_request(err ? "error" : "ok");
	queue_flush(x);
}

static struct xreq *find(struct executor *ex, uint64_t id)
{
	for (struct xreq *x = ex->http_reqs; x; x = x->next)
		if (x->id == id)
			return x;
	return NULL;
}

/* Names the variable (never its value): the operator must set it here. */
static bool missing_required_var(char **specs, char *why, size_t whylen)
{
	for (size_t i = 0; specs[i]; i++) {
		const char *eq = strchr(specs[i], '=');
		_cleanup_free_ char *var = NULL;
		const char *v;

		if (specs[i][0] != '!' || !eq)
			continue;
		var = xstrndup(specs[i] + 1, (size_t)(eq - specs[i] - 1));
		v = getenv(var);
		if (!v || !*v) {
			snprintf(why, whylen, "environment variable %.64s is not set on the executor",
				 var);
			return true;
		}
	}
	return false;
}

/* Why a request cannot start (0: it can). */
static int refusal(struct executor *ex, uint64_t id, char **env_hdrs, char *why, size_t whylen)
{
	const char *r;
	int err;

	if (find(ex, id))
		err = -EEXIST, r = "request id already in use";
	else if (ex->n_http >= EXEC_MAX_HTTP)
		err = -EMFILE, r = "too many HTTP requests in flight on the executor";
	else if (!ex->http && !(ex->http = http_new(ex->loop)))
		err = -ENOMEM, r = "cannot set up the HTTP client";
	else
		return missing_required_var(env_hdrs, why, whylen) ? -ENOKEY : 0;
	snprintf(why, whylen, "%s", r);
	return err;
}

void httprelay_request(struct executor *ex, const struct proto_http_request_body *b)
{
	static const struct http_cbs cbs = { headers_cb, data_cb, done_cb };
	_cleanup_free_ char *method = proto_str_dup(b->method), *url = proto_str_dup(b->url);
	_cleanup_free_ char **hdrs = xcalloc(b->headers.n + 1u, sizeof(*hdrs));
	char **env_hdrs = xcalloc(b->env_headers.n + 1u, sizeof(*env_hdrs));
	struct http_opts o = { 0 };
	struct xreq *x;
	char why[256];
	int err;

	for (uint32_t i = 0; i < b->env_headers.n; i++)
		env_hdrs[i] = proto_str_dup(b->env_headers.items[i]);

	err = refusal(ex, b->req_id, env_hdrs, why, sizeof(why));
	if (err < 0) {
		strv_free(env_hdrs);
		send_refusal(ex, b->req_id, err, why);
		return;
	}
	for (uint32_t i = 0; i < b->headers.n; i++)
		hdrs[i] = proto_str_dup(b->headers.items[i]);
	o.method = method;
	o.url = url;
	o.headers = (const char *const *)hdrs;
	o.env_headers = (const char *const *)env_hdrs;
	o.body = b->body.ptr;
	o.body_len = b->body.len;
	o.timeout_ms = b->timeout_ms ? MIN(b->timeout_ms, EXEC_HTTP_MAX_TIMEOUT_MS)
				     : EXEC_HTTP_MAX_TIMEOUT_MS;
	o.idle_timeout_ms = b->idle_timeout_ms;
	o.max_body = b->max_body ? MIN(b->max_body, (uint64_t)EXEC_HTTP_MAX_BODY)
				 : EXEC_HTTP_MAX_BODY;
	x = xcalloc(1, sizeof(*x));
	x->ex = ex;
	x->id = b->req_id;
	x->peer = ex->peer;
	x->hr = http_start(ex->http, &o, &cbs, x);
	err = x->hr ? 0 : errno;
	for (uint32_t i = 0; i < b->headers.n; i++) {
		secure_wipe(hdrs[i], strlen(hdrs[i]));
		free(hdrs[i]);
	}
	strv_free(env_hdrs);
	if (!x->hr) {
		free(x);
		send_refusal(ex, b->req_id, -err,
			     err == EINVAL ? "invalid request (method, URL or a header)"
					   : "cannot start the request");
		return;
	}
	x->next = ex->http_reqs;
	if (ex->http_reqs)
		ex->http_reqs->prev = x;
	ex->http_reqs = x;
	ex->n_http++;
}

void httprelay_abort(struct executor *ex, uint64_t id)
{
	struct xreq *x = find(ex, id);

	if (!x)
		return;
	if (x->hr)
		metrics_http_relay_request("aborted");
	http_cancel(x->hr); /* NULL once it ended: its last frame just waits */
	xreq_free(x);
}

void httprelay_abort_all(struct executor *ex)
{
	while (ex->http_reqs)
		httprelay_abort(ex, ex->http_reqs->id);
}

void httprelay_free(struct executor *ex)
{
	httprelay_abort_all(ex);
	loop_timer_cancel(ex->http_flush_timer);
	ex->http_flush_timer = NULL;
	ex->http = http_free(ex->http);
}
