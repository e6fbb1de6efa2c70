/* client.c - see client.h: sessions, their bounds, and sending.
 *
 * A session is a small state machine:
 *   OPEN      reading messages and writing;
 *   DRAINING  line only: after EOF or an over-long line, no more reading or
 *             new messages, the queued output is flushed, then CLOSING;
 *   CLOSING   no io (a ws close frame may still go out); a 0 ms timer runs
 *             closed_cb and frees it;
 *   LINGER    ws only: closed_cb ran; waiting for the close frame to be
 *             written (at most CLIENT_WS_LINGER_MS), then freed.
 * Closing always goes through that timer so that closed_cb never runs
 * inside rpc code that called client_reply() or client_close().
 *
 * Bounds kept here (client.h): unanswered requests per session and over
 * all, the input bytes held over all sessions, and the output high-water
 * mark above which a session's input is not read. The transports call back
 * into client_hold/client_unhold and client_output_drained.
 */
#include "client_int.h"

#include "log.h"
#include "loop.h"
#include "util.h"
#include "ws.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

/* Output over all sessions above the high-water mark, after which one more
 * slow session is dropped. */
#define CLIENT_GLOBAL_OUTPUT (256u * 1024 * 1024)

static atomic_uint_fast64_t client_next_id;

static struct {
	size_t input;        /* bytes held, all sessions */
	unsigned unanswered; /* all sessions */
	struct client_srv *srvs;
} G;

/* ---- sessions ---- */

struct client *client_new_common(struct client_srv *s, enum client_kind kind)
{
	struct client *c = xcalloc(1, sizeof(*c));

	c->srv = s;
	c->kind = kind;
	c->id = atomic_fetch_add(&client_next_id, 1) + 1;
	c->in_fd = c->out_fd = -1;
	c->inq_tail = &c->inq;
	return c;
}

void client_link(struct client *c)
{
	struct client_srv *s = c->srv;

	c->next = s->sessions;
	if (s->sessions)
		s->sessions->prev = c;
	s->sessions = c;
	s->count++;
	log_debug("client %" PRIu64 ": session started", c->id);
}

static void unlink_from(struct client **head, struct client *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		*head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

bool client_can_read(const struct client *c)
{
	return c->state == CLIENT_OPEN && !c->job && !c->paused;
}

static void update_io(struct client *c)
{
	if (c->kind == CLIENT_KIND_LINE)
		client_line_update(c);
	else
		client_ws_update(c);
}

static void close_cb(struct loop_timer *t, void *arg)
{
	struct client *c = arg;

	(void)t;
	c->close_timer = NULL; /* fired: the loop frees the handle */
	client_finish(c);
}

void client_shutdown(struct client *c, const char *why)
{
	if (c->state == CLIENT_CLOSING || c->state == CLIENT_LINGER)
		return;
	log_debug("client %" PRIu64 ": closing (%s)", c->id, why);
	c->state = CLIENT_CLOSING;
	client_parse_cancel(c);
	if (c->kind == CLIENT_KIND_LINE)
		client_line_stop(c);
	else
		client_ws_close(c, why);
	c->close_timer = loop_timer_add(c->srv->l, 0, close_cb, c);
}

/* The input queue, the job and the held bytes. */
static void drop_input(struct client *c)
{
	client_parse_cancel(c);
	while (c->inq) {
		struct client_msg *m = c->inq;

		c->inq = m->next;
		client_unhold(c, m->len);
		free(m);
	}
	c->inq_tail = &c->inq;
}

void client_free_mem(struct client *c)
{
	drop_input(c);
	/* Whatever is left (a ws partial message). */
	G.input -= MIN(G.input, c->held);
	c->held = 0;
	free(c);
}

static void release(struct client *c)
{
	if (c->kind == CLIENT_KIND_LINE)
		client_line_release(c);
	else
		client_ws_release(c);
	client_free_mem(c);
}

/* Unlinks, runs closed_cb, frees. */
static void finish(struct client *c, bool linger_ok)
{
	struct client_srv *s = c->srv;

	if (c->state == CLIENT_LINGER) {
		loop_timer_cancel(c->close_timer);
		c->close_timer = NULL;
		unlink_from(&s->linger, c);
		release(c);
		return;
	}
	if (c->kind == CLIENT_KIND_LINE)
		client_line_stop(c);
	if (c->close_timer)
		loop_timer_cancel(c->close_timer);
	c->close_timer = NULL;
	c->state = CLIENT_CLOSING;
	drop_input(c);
	unlink_from(&s->sessions, c);
	s->count--;
	G.unanswered -= MIN(G.unanswered, c->unanswered);
	c->unanswered = 0;
	if (s->refusing && s->count < s->max_sessions) {
		s->refusing = false;
		log_info("below %u client sessions again: accepting", s->max_sessions);
	}
	if (s->ops->closed_cb) {
		s->in_cb++;
		s->ops->closed_cb(c, s->arg);
		s->in_cb--;
	}
	if (linger_ok && c->kind == CLIENT_KIND_WS && client_ws_linger(c)) {
		c->next = s->linger;
		if (s->linger)
			s->linger->prev = c;
		s->linger = c;
		return;
	}
	release(c);
}

void client_finish(struct client *c) { finish(c, true); }

/* ---- bounds ---- */

bool client_hold_try(struct client *c, size_t n)
{
	if (G.input + n > CLIENT_GLOBAL_INPUT && c->held + n > CLIENT_PARSE_INLINE) {
		log_warn("client %" PRIu64 ": holds %zu input bytes while all clients hold %zu "
			 "(bound %u): closing it (overloaded)",
			 c->id, c->held, G.input, CLIENT_GLOBAL_INPUT);
		return false;
	}
	G.input += n;
	c->held += n;
	return true;
}

bool client_hold(struct client *c, size_t n)
{
	if (client_hold_try(c, n))
		return true;
	if (c->kind == CLIENT_KIND_LINE)
		client_error(c, NULL, CLIENT_OVERLOADED,
			     "Server overloaded: too much input pending; retry later");
	c->close_code = WS_CLOSE_TRY_AGAIN;
	client_shutdown(c, "overloaded");
	return false;
}

void client_unhold(struct client *c, size_t n)
{
	n = MIN(n, c->held);
	c->held -= n;
	G.input -= MIN(G.input, n);
}

static size_t queued(const struct client *c)
{
	return c->kind == CLIENT_KIND_LINE ? client_line_queued(c) : client_ws_queued(c);
}

/* Output of all sessions above the high-water mark (rare: only when one
 * more passes it). */
static size_t global_output_high(void)
{
	size_t sum = 0;

	for (struct client_srv *s = G.srvs; s; s = s->next_srv)
		for (struct client *c = s->sessions; c; c = c->next)
			if (c->paused)
				sum += queued(c);
	return sum;
}

/* Resumes reading after a job or a pause: what waited first. */
static void resume(struct client *c)
{
	while (client_can_read(c) && c->inq) {
		struct client_msg *m = c->inq;

		c->inq = m->next;
		if (!c->inq)
			c->inq_tail = &c->inq;
		client_unhold(c, m->len);
		client_input(c, m->data, m->len);
		free(m);
	}
	if (c->kind == CLIENT_KIND_LINE)
		client_line_resume(c);
	else if (c->state == CLIENT_OPEN)
		client_ws_update(c);
}

void client_output_drained(struct client *c)
{
	if (!c->paused || c->state != CLIENT_OPEN)
		return;
	log_debug("client %" PRIu64 ": output down to %zu bytes: reading again", c->id,
		  queued(c));
	c->paused = false;
	resume(c);
}

void client_parsed(struct client *c)
{
	if (c->state == CLIENT_OPEN)
		resume(c);
}

/* ---- input ---- */

void client_input(struct client *c, const char *data, size_t len)
{
	client_parse(c, data, len);
}

void client_count(struct client *c)
{
	c->unanswered++;
	G.unanswered++;
}

bool client_admit(struct client *c, json_t *id)
{
	struct client_srv *s = c->srv;
	unsigned max = s->ops->max_unanswered ? s->ops->max_unanswered : CLIENT_MAX_UNANSWERED;
	bool over = c->unanswered >= max || G.unanswered >= CLIENT_GLOBAL_UNANSWERED;

	client_count(c);
	if (!over)
		return true;
	log_warn("client %" PRIu64 ": %u requests unanswered (%u over all): answering "
		 "'overloaded'", c->id, c->unanswered - 1, G.unanswered - 1);
	client_error(c, id, CLIENT_OVERLOADED, "Server overloaded; retry later.");
	return false;
}

/* Whether it counted an answer. */
static bool answered(struct client *c, const json_t *id)
{
	if (!id || !c->unanswered)
		return false;
	c->unanswered--;
	G.unanswered -= MIN(G.unanswered, 1u);
	return true;
}

/* A reply too large to send (-EMSGSIZE) answered nothing: the request
 * still waits for the error its caller sends instead. */
static int still_owed(struct client *c, bool counted, int r)
{
	if (r == -EMSGSIZE && counted) {
		c->unanswered++;
		G.unanswered++;
	}
	return r;
}

/* ---- output ---- */

/* Sends the encoded message in the scratch buffer. */
static int send_encoded(struct client *c)
{
	struct client_srv *s = c->srv;
	int r = s->enc_err;

	if (r == 0)
		r = c->kind == CLIENT_KIND_LINE ? client_line_send(c, s->buf, s->len)
						: client_ws_send(c, s->buf, s->len);
	enc_release(s);
	if (r == 0 && queued(c) > CLIENT_OUTPUT_HIGH && !c->paused) {
		log_debug("client %" PRIu64 ": %zu output bytes queued: not reading its input",
			  c->id, queued(c));
		c->paused = true;
		update_io(c);
		if (global_output_high() > CLIENT_GLOBAL_OUTPUT)
			r = -ENOBUFS;
	}
	if (r == -ENOBUFS) {
		log_warn("client %" PRIu64 ": not reading its output (%zu bytes queued): "
			 "disconnecting", c->id, queued(c));
		c->close_code = WS_CLOSE_POLICY;
		client_shutdown(c, "slow consumer");
	} else if (r < 0 && r != -EMSGSIZE && r != -EINVAL) {
		client_shutdown(c, strerror(-r));
	}
	return r < 0 ? r : 0;
}

/* {"id":id,"result":...}: the value encoded from result, or text as it
 * is, or {} when both are missing. */
static int reply(struct client *c, json_t *id, const json_t *result, const char *text,
		 size_t len)
{
	struct client_srv *s = c->srv;
	bool counted = answered(c, id);

	if (c->state != CLIENT_OPEN)
		return -EPIPE;
	enc_reset(s);
	enc_raw(s, "{\"id\":");
	enc_id(s, id, false);
	enc_raw(s, ",\"result\":");
	if (result)
		enc_json(s, result);
	else if (text)
		enc_rawn(s, text, len);
	else
		enc_raw(s, "{}");
	enc_raw(s, "}");
	return still_owed(c, counted, send_encoded(c));
}

int client_reply(struct client *c, json_t *id, json_t *result)
{
	int r = reply(c, id, result, NULL, 0);

	json_decref(result);
	return r;
}

int client_reply_text(struct client *c, json_t *id, const char *text, size_t len)
{
	return reply(c, id, NULL, text, len);
}

int client_error(struct client *c, json_t *id, int code, const char *fmt, ...)
{
	struct client_srv *s = c->srv;
	char num[16];
	json_t *msg;
	va_list ap;

	answered(c, id);
	if (c->state != CLIENT_OPEN)
		return -EPIPE;
	va_start(ap, fmt);
	msg = enc_error_message(fmt, ap);
	va_end(ap);
	snprintf(num, sizeof(num), "%d", code);
	enc_reset(s);
	enc_raw(s, "{\"id\":");
	enc_id(s, id, true);
	enc_raw(s, ",\"error\":{\"code\":");
	enc_raw(s, num);
	enc_raw(s, ",\"message\":");
	enc_json(s, msg);
	enc_raw(s, "}}");
	json_decref(msg);
	return send_encoded(c);
}

int client_notify(struct client *c, const char *method, json_t *params)
{
	struct client_srv *s = c->srv;
	json_t *m;

	if (c->state != CLIENT_OPEN) {
		json_decref(params);
		return -EPIPE;
	}
	m = json_string(method); /* NULL for invalid UTF-8: enc_json fails */
	enc_reset(s);
	enc_raw(s, "{\"method\":");
	enc_json(s, m);
	if (params) {
		enc_raw(s, ",\"params\":");
		enc_json(s, params);
	}
	enc_raw(s, "}");
	json_decref(m);
	json_decref(params);
	return send_encoded(c);
}

void client_close(struct client *c) { client_shutdown(c, "closed by the server"); }

void client_set_data(struct client *c, void *data) { c->data = data; }
void *client_get_data(const struct client *c) { return c->data; }
uint64_t client_id(const struct client *c) { return c->id; }
size_t client_queued(const struct client *c) { return queued(c); }

/* ---- listeners (the registry; client_listen.c makes them) ---- */

void client_srv_register(struct client_srv *s)
{
	s->next_srv = G.srvs;
	G.srvs = s;
}

void client_srv_unregister(struct client_srv *s)
{
	for (struct client_srv **pp = &G.srvs; *pp; pp = &(*pp)->next_srv) {
		if (*pp == s) {
			*pp = s->next_srv;
			break;
		}
	}
	if (!G.srvs)
		client_parse_shutdown();
}

void client_srv_end_all(struct client_srv *s)
{
	while (s->sessions)
		finish(s->sessions, false);
	while (s->linger)
		finish(s->linger, false);
}
