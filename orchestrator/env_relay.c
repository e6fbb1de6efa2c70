/* env_relay.c - HTTP requests run by an environment's executor: the
 * relay-mode struct http (common/http.h) sends HTTP_REQUEST / HTTP_ABORT
 * over the link, and HTTP_RESPONSE frames feed it back. See env.h. */
#include <errno.h>
#include <string.h>

#include "env_priv.h"
#include "http.h"
#include "linkurl.h"
#include "util.h"

/* Relayed requests carry credentials (Authorization, OAuth codes and
 * tokens): they travel only over links nobody else can read (linkurl.h):
 * sealed, encrypted by the transport, a local socket, or loopback. */
static bool link_confidential(const struct env *e)
{
	return linkurl_confidential(e->url, env_link_sealed(e));
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
	return env_link_send(e, PROTO_HTTP_REQUEST, PROTO_EVENT, 0, &b);
}

static void relay_cancel(void *ctx, uint64_t id)
{
	struct env *e = ctx;
	struct proto_http_abort_body b = { .req_id = id };

	if (e->state == ENV_READY)
		env_link_send(e, PROTO_HTTP_ABORT, PROTO_EVENT, 0, &b);
}

const struct http_relay_ops env_relay_ops = { relay_start, relay_cancel };

/* One frame may carry a head, data and the end: fed in that order (a
 * callback may cancel the request in between; later parts are then
 * ignored by http.c). */
void env_relay_event(struct env *e, const struct proto_msg *m)
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

		http_relay_done(e->http, b->req_id, err,
				PROTO_HAS_FIELD(b, http_response_body, status) ? b->status : 0, why);
	}
}
