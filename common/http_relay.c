/* http_relay.c - the relay mode of http.h: a struct http whose requests
 * are carried by someone else (the orchestrator's handle on an executor's
 * libcurl, HTTP_REQUEST over the link).
 *
 * The same request life as the direct mode (http.c, shared through
 * http_int.h), with the far side in curl's place: relay.start sends the
 * request, the http_relay_* calls feed what comes back. Callbacks run with
 * h->in_curl set, so a cancel from inside them is queued exactly as it is
 * inside curl, and http_run_queue() then works it.
 */
#include "http.h"
#include "http_int.h"

#include "loop.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>

static bool method_known(const char *m)
{
	static const char *const ok[] = { "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD" };

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
		if (strcmp(m, ok[i]) == 0)
			return true;
	return false;
}

struct http_req *http_relay_start(struct http *h, const struct http_opts *o,
				    const struct http_cbs *cbs, void *arg)
{
	struct http_req *r;
	int err;

	if (o->method && !method_known(o->method)) {
		errno = EINVAL;
		return NULL;
	}
	for (const char *const *p = o->headers; p && *p; p++) {
		if (!http_header_valid(*p)) {
			errno = EINVAL;
			return NULL;
		}
	}
	for (const char *const *p = o->env_headers; p && *p; p++) {
		if (!http_env_header_valid(*p)) {
			errno = EINVAL;
			return NULL;
		}
	}
	r = http_req_new(h, o, cbs, arg);
	r->relay_id = ++h->relay_next;
	err = h->relay.start(h->relay_ctx, r->relay_id, o);
	if (err < 0) {
		free(r);
		errno = -err;
		return NULL;
	}
	http_req_link(h, r);
	r->relay_live = true;
	r->state = REQ_ACTIVE;
	http_req_arm_idle(r, o);
	return r;
}

static struct http_req *relay_find(struct http *h, uint64_t id)
{
	for (struct http_req *r = h ? h->reqs : NULL; r; r = r->next)
		if (r->relay_id == id && r->state == REQ_ACTIVE)
			return r;
	return NULL;
}

void http_relay_head(struct http *h, uint64_t id, long status, const char *const *headers,
		     size_t n)
{
	struct http_req *r = relay_find(h, id);

	if (!r || r->headers_done)
		return;
	r->last_io = now_ms();
	for (size_t i = 0; i < n; i++) {
		if (http_req_store_header(r, headers[i], strlen(headers[i])) < 0) {
			http_req_fail_later(r, -E2BIG, "response headers over their bounds");
			http_run_queue(h);
			return;
		}
	}
	r->headers_done = true;
	r->status = status;
	if (r->cbs.headers_cb) {
		h->in_curl = true;
		r->cbs.headers_cb(r, status, r->arg);
		h->in_curl = false;
	}
	http_run_queue(h);
}

void http_relay_data(struct http *h, uint64_t id, const char *data, size_t len)
{
	struct http_req *r = relay_find(h, id);

	if (!r)
		return;
	r->last_io = now_ms();
	if (len > r->max_body - r->received) {
		char why[64];

		snprintf(why, sizeof(why), "response body over %zu bytes", r->max_body);
		http_req_fail_later(r, -E2BIG, why);
	} else if (len > 0) {
		r->received += len;
		if (r->cbs.data_cb) {
			h->in_curl = true;
			r->cbs.data_cb(r, data, len, r->arg);
			h->in_curl = false;
		}
	}
	http_run_queue(h);
}

void http_relay_done(struct http *h, uint64_t id, int err, long status, const char *msg)
{
	struct http_req *r = relay_find(h, id);

	if (!r)
		return;
	r->relay_live = false;
	if (!r->headers_done && status > 0 && err == 0) {
		r->headers_done = true; /* a HEAD-less end still says its status */
		r->status = status;
	}
	if (r->err)
		http_req_finish(r, r->err, r->why);
	else
		http_req_finish(r, err > 0 ? -err : err, msg && *msg ? msg : (err ? "failed" : "ok"));
}

void http_relay_fail_all(struct http *h, int err, const char *msg)
{
	struct http_req *r;

	/* One at a time from the head: a done_cb may start or cancel others. */
	while (h && (r = h->reqs)) {
		while (r && r->state != REQ_ACTIVE)
			r = r->next;
		if (!r)
			break;
		r->relay_live = false;
		http_req_finish(r, err, msg);
	}
}

bool http_is_relay(const struct http *h) { return !h->multi; }

struct http *http_new_relay(struct loop *l, const struct http_relay_ops *ops, void *ctx)
{
	struct http *h = xcalloc(1, sizeof(*h));

	h->l = l;
	h->todo_tail = &h->todo;
	h->relay = *ops;
	h->relay_ctx = ctx;
	return h;
}
