/* httprelay.c - HTTP_REQUEST: HTTP exchanges run here, for the orchestrator.
 *
 * An HTTP MCP server declared in this executor's plugins (and the OAuth
 * exchanges for it) must reach its host from this machine: its network, its
 * name resolution, its proxy variables. The orchestrator sends the request
 * over the link; it runs on our libcurl (common/http.c) and streams back as
 * HTTP_HEAD, HTTP_DATA and one HTTP_DONE.
 *
 * Bounds: EXEC_MAX_HTTP requests at once (more get HTTP_DONE -EMFILE), the
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
#include "util.h"

struct xreq {
	struct xreq *prev, *next;
	struct executor *ex;
	struct http_req *hr;
	uint64_t id;
	uint32_t peer; /* the orchestrator it is for */
};

static void send_done(struct executor *ex, uint64_t id, int err, long status, const char *why)
{
	struct proto_http_done_body d = { .req_id = id, .err = err };

	if (status > 0) {
		d.status = (uint32_t)status;
		PROTO_SET(&d, 3);
	}
	if (why) {
		d.reason = proto_str_c(why);
		PROTO_SET(&d, 4);
	}
	listener_send(ex, PROTO_HTTP_DONE, PROTO_EVENT, 0, &d);
}

static void xreq_free(struct xreq *x)
{
	struct executor *ex = x->ex;

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

static void headers_cb(struct http_req *r, long status, void *arg)
{
	struct xreq *x = arg;
	size_t n = http_req_nheaders(r);
	_cleanup_free_ struct proto_str *items = xcalloc(n ? n : 1, sizeof(*items));
	_cleanup_free_ char **lines = xcalloc(n ? n : 1, sizeof(*lines));
	struct proto_http_head_body h = { .req_id = x->id, .status = (uint32_t)status };

	if (!still_wanted(x))
		return;
	for (size_t i = 0; i < n; i++) {
		const char *v, *name = http_req_header_at(r, i, &v);

		lines[i] = xasprintf("%s: %s", name, v);
		items[i] = proto_str_c(lines[i]);
	}
	h.headers.items = items;
	h.headers.n = (uint32_t)n;
	PROTO_SET(&h, 3);
	listener_send(x->ex, PROTO_HTTP_HEAD, PROTO_EVENT, 0, &h);
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
}

static void data_cb(struct http_req *r, const char *data, size_t len, void *arg)
{
	struct xreq *x = arg;
	struct proto_http_data_body d = { .req_id = x->id };
	int err;

	if (!still_wanted(x))
		return;
	d.data.ptr = data;
	d.data.len = (uint32_t)len;
	err = listener_send(x->ex, PROTO_HTTP_DATA, PROTO_EVENT, 0, &d);
	if (err < 0) {
		/* A hole in a stream is worse than its end. */
		send_done(x->ex, x->id, err == -ENOBUFS ? -ENOBUFS : -EIO, 0,
			  "the link to the orchestrator is backed up; the response was cut");
		http_cancel(r);
		xreq_free(x);
	}
}

static void done_cb(struct http_req *r, int err, long status, const char *msg, void *arg)
{
	struct xreq *x = arg;

	(void)r;
	if (still_wanted(x))
		send_done(x->ex, x->id, err, status, msg);
	xreq_free(x);
}

static struct xreq *find(struct executor *ex, uint64_t id)
{
	for (struct xreq *x = ex->http_reqs; x; x = x->next)
		if (x->id == id)
			return x;
	return NULL;
}

static void strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
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
		send_done(ex, b->req_id, err, 0, why);
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
		send_done(ex, b->req_id, -err, 0,
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
	http_cancel(x->hr);
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
	ex->http = http_free(ex->http);
}
