/* client_ws.c - the WebSocket transport: common/ws.h on an accepted
 * connection (unix after sniffing an HTTP request, or ws://), one JSON-RPC
 * message per text frame.
 *
 * The request head is answered here: /readyz (plain GET or HEAD) from the
 * listener's ready callback; on ws:// the Authorization header first (401
 * for any failure, and nothing else is served); then any upgrade is
 * accepted, whatever its path (Codex uses /rpc).
 *
 * Ending: our close (client_ws_close) queues a close frame; closed_cb
 * upward runs from the loop at once as for every session, and the struct
 * lingers (CLIENT_LINGER, off the session list) until ws reports the close
 * written or CLIENT_WS_LINGER_MS pass.
 */
#include "client_int.h"

#include "log.h"
#include "loop.h"
#include "util.h"
#include "ws.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

static void ws_request_cb(struct ws *w, const struct wshttp_req *rq, struct ws_answer *ans,
			  void *arg)
{
	struct client *c = arg;
	struct client_srv *s = c->srv;
	char why[160];

	(void)w;
	if (rq->kind == WSHTTP_PLAIN && strcmp(rq->path, "/readyz") == 0 &&
	    (strcmp(rq->method, "GET") == 0 || strcmp(rq->method, "HEAD") == 0)) {
		int r = s->ready_cb ? s->ready_cb(why, sizeof(why), s->ready_arg) : 0;

		ans->status = r == 0 ? 200 : 503;
		ans->body = r == 0 ? xstrdup("ready\n") : xasprintf("not ready: %s\n", why);
		return;
	}
	if (s->ws_only && client_auth_check(s->auth, rq->authorization, why, sizeof(why)) < 0) {
		/* The reason names the rule, never the token. */
		log_warn("client %" PRIu64 " on %s: refused (%s)", c->id, s->name, why);
		ans->status = 401;
		ans->body = xstrdup("unauthorized\n");
		return;
	}
	if (rq->kind != WSHTTP_UPGRADE) {
		ans->status = 404;
		ans->body = xstrdup("not found: this is a WebSocket endpoint\n");
		return;
	}
	ans->upgrade = true;
	log_debug("client %" PRIu64 ": WebSocket upgrade on %s", c->id, rq->path);
}

static void ws_message_cb(struct ws *w, const char *data, size_t len, void *arg)
{
	struct client *c = arg;

	(void)w;
	/* The frames are a message now: no longer a partial one. */
	client_unhold(c, c->ws_partial);
	c->ws_partial = 0;
	if (c->state != CLIENT_OPEN)
		return;
	if (client_can_read(c) && !c->inq) {
		client_input(c, data, len);
		return;
	}
	/* Busy: libwslay had this one buffered already. Keep it, in order
	 * (at most what its read buffer held: small). */
	struct client_msg *m = xmalloc(sizeof(*m) + len);

	m->next = NULL;
	m->len = len;
	memcpy(m->data, data, len);
	if (!client_hold(c, len)) {
		free(m);
		return;
	}
	*c->inq_tail = m;
	c->inq_tail = &m->next;
}

static bool ws_input_cb(struct ws *w, size_t n, void *arg)
{
	struct client *c = arg;

	(void)w;
	if (!client_hold_try(c, n))
		return false; /* ws closes it with 1013; closed_cb follows */
	c->ws_partial += n;
	return true;
}

static void ws_drained_cb(struct ws *w, void *arg)
{
	(void)w;
	client_output_drained(arg);
}

static void ws_closed_cb(struct ws *w, int code, const char *reason, void *arg)
{
	struct client *c = arg;

	c->ws_closed = true;
	if (c->state == CLIENT_LINGER) {
		client_finish(c); /* frees it; ws_free from closed_cb is allowed */
		return;
	}
	log_debug("client %" PRIu64 ": WebSocket ended (%d, %s)", c->id, code, reason);
	client_shutdown(c, reason);
}

static const struct ws_ops client_ws_ops = {
	.request_cb = ws_request_cb,
	.message_cb = ws_message_cb,
	.closed_cb = ws_closed_cb,
	.drained_cb = ws_drained_cb,
	.input_cb = ws_input_cb,
};

int client_ws_new(struct client_srv *s, int fd)
{
	struct client *c = client_new_common(s, CLIENT_KIND_WS);
	struct ws_config cfg = { .max_message = s->max_line, .max_queue = s->max_output,
				 .head_timeout_ms = CLIENT_WS_HEAD_MS };
	int r = 0;

	c->in_fd = c->out_fd = -1;
	c->ws = ws_new(s->l, fd, &cfg, &client_ws_ops, c, &r);
	if (!c->ws) {
		client_free_mem(c);
		return r;
	}
	client_link(c);
	return 0;
}

int client_ws_send(struct client *c, const char *p, size_t n)
{
	return ws_send_text(c->ws, p, n);
}

size_t client_ws_queued(const struct client *c) { return ws_queued(c->ws); }

void client_ws_update(struct client *c)
{
	bool stop = !client_can_read(c);

	ws_pause_read(c->ws, stop);
	if (c->paused)
		ws_watch_drain(c->ws, CLIENT_OUTPUT_HIGH / 2);
}

void client_ws_close(struct client *c, const char *why)
{
	if (c->ws_closed)
		return;
	ws_close(c->ws, c->close_code ? c->close_code : WS_CLOSE_NORMAL, why);
}

static void linger_cb(struct loop_timer *t, void *arg)
{
	struct client *c = arg;

	(void)t;
	c->close_timer = NULL;
	client_finish(c);
}

void client_ws_release(struct client *c)
{
	c->ws = ws_free(c->ws);
}

bool client_ws_linger(struct client *c)
{
	if (c->ws_closed || !c->ws || c->state == CLIENT_LINGER)
		return false;
	c->state = CLIENT_LINGER;
	c->close_timer = loop_timer_add(c->srv->l, CLIENT_WS_LINGER_MS, linger_cb, c);
	return true;
}
