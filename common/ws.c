/* ws.c - see ws.h.
 *
 * States, driven by ws_process():
 *   HEAD    reading the request head into `head`;
 *   ANSWER  writing a plain HTTP answer from `out`;
 *   DRAIN   answer written, our side shut down: read and discard until the
 *           peer closes, WS_MAX_DRAIN bytes or WS_DRAIN_MS;
 *   OPEN    upgraded: `out` (the 101) goes first, then libwslay reads
 *           frames (bytes that followed the head in `in` first) and writes
 *           the queue;
 *   CLOSING a close frame is queued or sent; the rest is ignored;
 *   CLOSED  closed_cb has run; the descriptor is closed.
 *
 * End of a connection: end() records the code and reason; ws_process()
 * notices it last and calls finish(), which tears down and then runs
 * closed_cb as its very last act (closed_cb may free the struct). Nothing
 * ends a connection from inside libwslay's callbacks, and paths that run in
 * the caller's context (ws_send_text, ws_close) hand the end to a 0 ms
 * timer (`kick`).
 */
#include "ws.h"

#include "loop.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>
#include <wslay/wslay.h>

enum ws_state { ST_HEAD, ST_ANSWER, ST_DRAIN, ST_OPEN, ST_CLOSING, ST_CLOSED };

struct ws {
	struct loop *l;
	int fd;
	struct loop_io *io;
	uint32_t interest;
	struct loop_timer *timer; /* head deadline, then drain deadline */
	struct loop_timer *kick;  /* a ws_process() the caller's context asked for */
	enum ws_state state;
	struct ws_ops ops;
	void *arg;
	size_t max_message, max_queue;

	char *head; /* ST_HEAD: WSHTTP_MAX_HEAD bytes */
	size_t hlen, hscan;
	char *in; /* bytes that followed the head, for libwslay */
	size_t inlen, inoff;
	char *out; /* raw HTTP bytes: a plain answer or the 101 */
	size_t outlen, outoff;
	size_t drained;

	wslay_event_context_ptr ctx;
	bool eof, broken, starved, in_cb;
	bool paused, refused; /* ws_pause_read; input_cb said no */
	/* ws_close with messages still queued: libwslay sends control frames
	 * first, so the close waits until they are written. */
	bool close_pending;
	uint16_t pending_code;
	char pending_reason[124];
	size_t drain_level;   /* drained_cb at or below this */
	size_t pass_read;     /* bytes read in this ws_process(), WS_READ_BUDGET */
	bool drained_in;      /* a short read in this pass: the socket is empty */
	/* A frame header libwslay handed over with WSLAY_MSG_MORE: held back
	 * and written with the payload in one sendmsg (one syscall a message). */
	uint8_t hdr[16];
	size_t hdr_len;
	bool ended;
	int end_code;
	char end_reason[128];
};

static void update_interest(struct ws *w);

/* ---- ending ---- */

static void end(struct ws *w, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void end(struct ws *w, int code, const char *fmt, ...)
{
	va_list ap;

	if (w->ended)
		return;
	w->ended = true;
	w->end_code = code;
	va_start(ap, fmt);
	vsnprintf(w->end_reason, sizeof(w->end_reason), fmt, ap);
	va_end(ap);
}

static void free_head(struct ws *w)
{
	if (!w->head)
		return;
	secure_wipe(w->head, WSHTTP_MAX_HEAD); /* Authorization */
	free(w->head);
	w->head = NULL;
}

static void teardown(struct ws *w)
{
	loop_io_del(w->io);
	w->io = NULL;
	w->fd = safe_close(w->fd);
	loop_timer_cancel(w->timer);
	w->timer = NULL;
	loop_timer_cancel(w->kick);
	w->kick = NULL;
	if (w->ctx)
		wslay_event_context_free(w->ctx);
	w->ctx = NULL;
	free_head(w);
	free(w->in);
	w->in = NULL;
	free(w->out);
	w->out = NULL;
	w->state = ST_CLOSED;
}

/* Last act of a ws_process(): w may be freed by closed_cb. */
static void finish(struct ws *w)
{
	teardown(w);
	w->ops.closed_cb(w, w->end_code, w->end_reason, w->arg);
}

static void kick_cb(struct loop_timer *t, void *arg)
{
	struct ws *w = arg;

	w->kick = NULL;
	ws_process(w);
}

static void kick(struct ws *w)
{
	if (!w->kick && w->state != ST_CLOSED)
		w->kick = loop_timer_add(w->l, 0, kick_cb, w);
}

static void deadline_cb(struct loop_timer *t, void *arg)
{
	struct ws *w = arg;

	w->timer = NULL;
	if (w->state == ST_HEAD)
		end(w, 0, "no complete request head in time");
	else
		end(w, w->end_code, "%s", w->end_reason[0] ? w->end_reason : "answered");
	finish(w);
}

/* ---- raw HTTP output ---- */

/* Writes `out`; true once all of it is written. */
static bool flush_raw(struct ws *w)
{
	while (w->outoff < w->outlen) {
		ssize_t n = send(w->fd, w->out + w->outoff, w->outlen - w->outoff, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return false;
		if (n < 0) {
			end(w, w->state == ST_OPEN ? WS_CLOSE_ABNORMAL : 0, "write failed: %s",
			    strerror(errno));
			return false;
		}
		w->outoff += (size_t)n;
	}
	free(w->out);
	w->out = NULL;
	w->outlen = w->outoff = 0;
	return true;
}

static void answer(struct ws *w, int status, const char *ctype, char *body, bool head_only)
{
	free(w->out);
	w->out = wshttp_answer(status, ctype, body, head_only, &w->outlen);
	w->outoff = 0;
	free(body);
	free_head(w);
	w->state = ST_ANSWER;
	w->end_code = status;
	snprintf(w->end_reason, sizeof(w->end_reason), "answered HTTP %d", status);
}

static void drain(struct ws *w)
{
	char buf[4096];

	for (;;) {
		ssize_t n = read(w->fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0 || (w->drained += (size_t)n) > WS_MAX_DRAIN) {
			end(w, w->end_code, "%s", w->end_reason);
			return;
		}
	}
}

/* ---- libwslay glue ---- */

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
		       void *ud)
{
	struct ws *w = ud;
	ssize_t n;

	if (w->inoff < w->inlen) {
		n = (ssize_t)MIN(len, w->inlen - w->inoff);
		memcpy(buf, w->in + w->inoff, (size_t)n);
		w->inoff += (size_t)n;
		return n;
	}
	/* Paused, refused or this pass's share read: as if nothing were there
	 * (epoll is level-triggered: the rest is read on a later pass). */
	if (w->paused || w->refused || w->drained_in || w->pass_read >= WS_READ_BUDGET) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	do
		n = recv(w->fd, buf, MIN(len, WS_READ_BUDGET - w->pass_read), 0);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		w->pass_read += (size_t)n;
		/* Less than asked: nothing more is there now; epoll says when. */
		if ((size_t)n < MIN(len, WS_READ_BUDGET - (w->pass_read - (size_t)n)))
			w->drained_in = true;
		if (w->ops.input_cb && !w->ops.input_cb(w, (size_t)n, w->arg)) {
			w->refused = true;
			wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
			return -1;
		}
		return n;
	}
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	if (n == 0)
		w->eof = true;
	else
		w->broken = true;
	wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	return -1;
}

/* Writes the held-back header, if any. 0, or -1 with errno. */
static int flush_hdr(struct ws *w)
{
	while (w->hdr_len) {
		ssize_t n = send(w->fd, w->hdr, w->hdr_len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		memmove(w->hdr, w->hdr + n, w->hdr_len - (size_t)n);
		w->hdr_len -= (size_t)n;
	}
	return 0;
}

static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
		       void *ud)
{
	struct ws *w = ud;
	struct iovec iov[2];
	struct msghdr mh = { .msg_iov = iov };
	ssize_t n;

	/* A header with its payload to follow: keep it for that call. */
	if ((flags & WSLAY_MSG_MORE) && w->hdr_len == 0 && len <= sizeof(w->hdr)) {
		memcpy(w->hdr, data, len);
		w->hdr_len = len;
		return (ssize_t)len;
	}
	if (w->hdr_len)
		iov[mh.msg_iovlen++] = (struct iovec){ w->hdr, w->hdr_len };
	iov[mh.msg_iovlen++] = (struct iovec){ (void *)data, len };
	do
		n = sendmsg(w->fd, &mh, MSG_NOSIGNAL | ((flags & WSLAY_MSG_MORE) ? MSG_MORE : 0));
	while (n < 0 && errno == EINTR);
	if (n >= 0) {
		size_t h = MIN((size_t)n, w->hdr_len);

		memmove(w->hdr, w->hdr + h, w->hdr_len - h);
		w->hdr_len -= h;
		n -= (ssize_t)h;
		if (n > 0 || len == 0)
			return n;
		errno = EAGAIN; /* only (part of) the header went: the rest later */
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
	} else {
		w->broken = true;
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
	}
	return -1;
}

/* Strict UTF-8 (RFC 3629): no overlongs, no surrogates, nothing past
 * U+10FFFF. */
static bool utf8_valid(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = s[i];
		size_t k;
		uint32_t cp, min;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			k = 1, cp = c & 0x1f, min = 0x80;
		else if (c >= 0xe0 && c <= 0xef)
			k = 2, cp = c & 0x0f, min = 0x800;
		else if (c >= 0xf0 && c <= 0xf4)
			k = 3, cp = c & 0x07, min = 0x10000;
		else
			return false;
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

/* Queues our close frame and stops reading. */
static void close_now(struct ws *w, uint16_t code, const char *reason)
{
	size_t rlen = strlen(reason);

	if (w->state != ST_OPEN)
		return;
	w->state = ST_CLOSING;
	/* A control frame's payload is at most 125 bytes, 2 of them the code. */
	if (rlen > 123)
		rlen = 123;
	if (wslay_event_queue_close(w->ctx, code, (const uint8_t *)reason, rlen) != 0)
		end(w, code, "%s", reason);
	wslay_event_shutdown_read(w->ctx);
}

static void on_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
		      void *ud)
{
	struct ws *w = ud;

	if (w->state != ST_OPEN)
		return;
	switch (a->opcode) {
	case WSLAY_TEXT_FRAME:
		if (!utf8_valid(a->msg, a->msg_length)) {
			close_now(w, WS_CLOSE_BAD_DATA, "text message is not valid UTF-8");
			return;
		}
		w->in_cb = true;
		w->ops.message_cb(w, (const char *)a->msg, a->msg_length, w->arg);
		w->in_cb = false;
		break;
	case WSLAY_BINARY_FRAME:
		close_now(w, WS_CLOSE_UNSUPPORTED, "binary messages are not accepted");
		break;
	default: /* close, ping and pong: libwslay answers them */
		break;
	}
}

static int open_wslay(struct ws *w)
{
	static const struct wslay_event_callbacks cbs = {
		.recv_callback = recv_cb,
		.send_callback = send_cb,
		.on_msg_recv_callback = on_msg_cb,
	};

	if (wslay_event_context_server_init(&w->ctx, &cbs, w) != 0)
		return -ENOMEM;
	wslay_event_config_set_max_recv_msg_length(w->ctx, w->max_message);
	return 0;
}

/* ---- the head ---- */

static void on_head(struct ws *w, size_t hend)
{
	struct wshttp_req rq;
	struct ws_answer ans = { .status = 404 };
	int r = wshttp_parse(w->head, hend, &rq);

	if (r < 0) {
		answer(w, r == -E2BIG ? 431 : 400, NULL,
		       xstrdup(r == -E2BIG ? "too many header fields\n" : "bad request\n"), false);
		return;
	}
	if (rq.kind == WSHTTP_BAD_UPGRADE) {
		answer(w, rq.bad_status, NULL, xasprintf("%s\n", rq.bad_reason), false);
		return;
	}
	w->in_cb = true;
	w->ops.request_cb(w, &rq, &ans, w->arg);
	w->in_cb = false;
	if (!ans.upgrade || rq.kind != WSHTTP_UPGRADE) {
		if (ans.upgrade) { /* the caller's mistake: never upgrade a plain request */
			free(ans.body);
			ans = (struct ws_answer){ .status = 400,
						  .body = xstrdup("not a WebSocket upgrade\n") };
		}
		answer(w, ans.status, ans.content_type, ans.body, strcmp(rq.method, "HEAD") == 0);
		return;
	}
	free(ans.body);
	w->out = wshttp_answer_upgrade(&rq);
	w->outlen = strlen(w->out);
	w->outoff = 0;
	if (hend < w->hlen) {
		w->inlen = w->hlen - hend;
		w->in = xmalloc(w->inlen);
		memcpy(w->in, w->head + hend, w->inlen);
	}
	free_head(w);
	loop_timer_cancel(w->timer);
	w->timer = NULL;
	if (open_wslay(w) < 0) {
		end(w, WS_CLOSE_INTERNAL, "out of memory");
		return;
	}
	w->state = ST_OPEN;
}

static void read_head(struct ws *w)
{
	for (;;) {
		size_t hend = wshttp_head_end(w->head, w->hlen, w->hscan);
		ssize_t n;

		w->hscan = w->hlen;
		if (hend) {
			on_head(w, hend);
			return;
		}
		if (w->hlen == WSHTTP_MAX_HEAD) {
			answer(w, 431, NULL, xstrdup("request head too large\n"), false);
			return;
		}
		do
			n = read(w->fd, w->head + w->hlen, WSHTTP_MAX_HEAD - w->hlen);
		while (n < 0 && errno == EINTR);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			end(w, 0, "peer left before a complete request head");
			return;
		}
		w->hlen += (size_t)n;
	}
}

/* ---- the open connection ---- */

static void pump_open(struct ws *w)
{
	int r;

	if (w->out && !flush_raw(w))
		return; /* the 101 goes first */
	if (wslay_event_want_read(w->ctx)) {
		r = wslay_event_recv(w->ctx);
		if (r != 0 && w->eof)
			end(w, WS_CLOSE_ABNORMAL, "connection closed without a close frame");
		else if (r != 0)
			end(w, WS_CLOSE_ABNORMAL, "read failed");
		if (w->ended)
			return;
		if (w->refused)
			close_now(w, WS_CLOSE_TRY_AGAIN, "server overloaded: retry later");
	}
	if (wslay_event_want_write(w->ctx) && wslay_event_send(w->ctx) != 0) {
		end(w, WS_CLOSE_ABNORMAL, "write failed");
		return;
	}
	if (w->close_pending && wslay_event_get_queued_msg_count(w->ctx) == 0) {
		w->close_pending = false;
		close_now(w, w->pending_code, w->pending_reason);
		if (wslay_event_want_write(w->ctx) && wslay_event_send(w->ctx) != 0) {
			end(w, WS_CLOSE_ABNORMAL, "write failed");
			return;
		}
	}
	/* A header whose payload libwslay did not send after all. */
	if (w->hdr_len && flush_hdr(w) < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
		end(w, WS_CLOSE_ABNORMAL, "write failed");
		return;
	}
	if (wslay_event_get_close_sent(w->ctx)) {
		if (wslay_event_get_close_received(w->ctx))
			end(w, wslay_event_get_status_code_received(w->ctx), "closed by the peer");
		else
			end(w, wslay_event_get_status_code_sent(w->ctx), "closed by us");
		return;
	}
	if (w->state == ST_OPEN && !wslay_event_get_read_enabled(w->ctx) &&
	    !wslay_event_want_write(w->ctx))
		end(w, WS_CLOSE_ABNORMAL, "connection stalled");
}

static void maybe_drained(struct ws *w)
{
	if (!w->starved || w->ended || w->state != ST_OPEN ||
	    wslay_event_get_queued_msg_length(w->ctx) > w->drain_level)
		return;
	w->starved = false;
	if (w->ops.drained_cb) {
		w->in_cb = true;
		w->ops.drained_cb(w, w->arg);
		w->in_cb = false;
	}
}

/* ---- driving ---- */

void ws_process(struct ws *w)
{
	if (!w || w->state == ST_CLOSED || w->in_cb)
		return;
	w->pass_read = 0;
	w->drained_in = false;
	if (w->ended) {
		finish(w);
		return;
	}
	switch (w->state) {
	case ST_HEAD:
		read_head(w);
		break;
	case ST_DRAIN:
		drain(w);
		break;
	default:
		break;
	}
	if (!w->ended && w->state == ST_ANSWER && flush_raw(w)) {
		w->state = ST_DRAIN;
		if (shutdown(w->fd, SHUT_WR) < 0)
			end(w, w->end_code, "%s", w->end_reason);
		loop_timer_cancel(w->timer);
		w->timer = loop_timer_add(w->l, WS_DRAIN_MS, deadline_cb, w);
	}
	if (!w->ended && (w->state == ST_OPEN || w->state == ST_CLOSING)) {
		pump_open(w);
		maybe_drained(w);
	}
	if (w->ended) {
		finish(w);
		return;
	}
	update_interest(w);
}

static void update_interest(struct ws *w)
{
	uint32_t want = 0;

	switch (w->state) {
	case ST_HEAD:
	case ST_DRAIN:
		want = LOOP_READ;
		break;
	case ST_ANSWER:
		want = LOOP_WRITE;
		break;
	case ST_OPEN:
	case ST_CLOSING:
		if (w->out || w->hdr_len || wslay_event_want_write(w->ctx))
			want |= LOOP_WRITE;
		if (!w->out && !w->paused && !w->refused && wslay_event_want_read(w->ctx))
			want |= LOOP_READ;
		break;
	case ST_CLOSED:
		return;
	}
	if (want != w->interest && loop_io_mod(w->io, want) == 0)
		w->interest = want;
}

static void io_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	ws_process(arg);
}

/* ---- API ---- */

struct ws *ws_new(struct loop *l, int fd, const struct ws_config *cfg, const struct ws_ops *ops,
		  void *arg, int *err)
{
	struct ws *w;

	if (!l || fd < 0 || !cfg || !ops || !ops->request_cb || !ops->message_cb ||
	    !ops->closed_cb || cfg->prefix_len > WSHTTP_MAX_HEAD ||
	    (cfg->prefix_len && !cfg->prefix)) {
		safe_close(fd);
		*err = -EINVAL;
		return NULL;
	}
	w = xcalloc(1, sizeof(*w));
	*w = (struct ws){ .l = l, .fd = fd, .ops = *ops, .arg = arg, .state = ST_HEAD,
			  .max_message = cfg->max_message ? cfg->max_message
							  : WS_DEFAULT_MAX_MESSAGE,
			  .max_queue = cfg->max_queue ? cfg->max_queue : WS_DEFAULT_MAX_QUEUE };
	w->head = xmalloc(WSHTTP_MAX_HEAD);
	if (cfg->prefix_len)
		memcpy(w->head, cfg->prefix, cfg->prefix_len);
	w->hlen = cfg->prefix_len;
	w->io = loop_io_add(l, fd, LOOP_READ, io_cb, w);
	if (!w->io) {
		*err = -errno;
		free(w->head);
		safe_close(fd);
		free(w);
		return NULL;
	}
	w->interest = LOOP_READ;
	if (cfg->head_timeout_ms)
		w->timer = loop_timer_add(l, cfg->head_timeout_ms, deadline_cb, w);
	if (w->hlen)
		kick(w); /* the prefix may hold the whole head already */
	return w;
}

int ws_send_text(struct ws *w, const char *data, size_t len)
{
	struct wslay_event_msg m = { .opcode = WSLAY_TEXT_FRAME, .msg = (const uint8_t *)data,
				     .msg_length = len };

	if (!w || w->state != ST_OPEN || w->ended || w->close_pending)
		return -EPIPE;
	if (len > (size_t)INT32_MAX || len > w->max_queue)
		return -EMSGSIZE;
	if (wslay_event_get_queued_msg_length(w->ctx) + len > w->max_queue) {
		w->starved = true;
		w->drain_level = w->max_queue / 2;
		return -ENOBUFS;
	}
	if (wslay_event_queue_msg(w->ctx, &m) != 0)
		return -EPIPE;
	/* From a callback, ws_process() writes it when the callback returns
	 * (and sets the interest then). */
	if (w->in_cb)
		return 0;
	/* Written at once when the socket takes it: no loop round trip. */
	if (!w->out && (wslay_event_send(w->ctx) != 0 ||
			(w->hdr_len && flush_hdr(w) < 0 && errno != EAGAIN && errno != EWOULDBLOCK)))
		kick(w); /* the failure ends the connection from the loop */
	update_interest(w);
	return 0;
}

void ws_close(struct ws *w, uint16_t code, const char *reason)
{
	if (!w || w->state == ST_CLOSED || w->ended || w->close_pending)
		return;
	if (w->state == ST_OPEN && wslay_event_get_queued_msg_count(w->ctx) > 0) {
		/* After what is queued (pump_open); nothing more is read. */
		w->close_pending = true;
		w->pending_code = code;
		snprintf(w->pending_reason, sizeof(w->pending_reason), "%s", reason ? reason : "");
		wslay_event_shutdown_read(w->ctx);
	} else if (w->state == ST_OPEN) {
		close_now(w, code, reason ? reason : "");
	} else if (w->state != ST_CLOSING) {
		end(w, 0, "closed by the server before the upgrade");
	}
	if (w->in_cb)
		update_interest(w);
	else
		kick(w);
}

void ws_pause_read(struct ws *w, bool paused)
{
	if (!w || w->paused == paused || w->state == ST_CLOSED)
		return;
	w->paused = paused;
	if (w->in_cb)
		return; /* ws_process() updates the interest when the callback returns */
	if (!paused)
		kick(w); /* wslay may hold a whole frame already: no epoll event for it */
	else
		update_interest(w);
}

void ws_watch_drain(struct ws *w, size_t level)
{
	if (!w || w->state != ST_OPEN)
		return;
	w->starved = true;
	w->drain_level = level;
	if (!w->in_cb)
		kick(w); /* it may be below already */
}

size_t ws_queued(const struct ws *w)
{
	return w && w->ctx ? wslay_event_get_queued_msg_length(w->ctx) : 0;
}

bool ws_is_open(const struct ws *w)
{
	return w && w->state == ST_OPEN && !w->ended && !w->close_pending;
}

struct ws *ws_free(struct ws *w)
{
	if (!w)
		return NULL;
	if (w->state != ST_CLOSED)
		teardown(w);
	free(w);
	return NULL;
}
