/* ws.h - one server-side WebSocket connection (RFC 6455) on the event loop,
 * from the HTTP/1.1 request head to the close, framing by libwslay.
 *
 * Life of a connection, all on the loop thread:
 *   1. HEAD: the request head is read (at most WSHTTP_MAX_HEAD bytes, by
 *      cfg.head_timeout_ms) and parsed (wshttp.h). Malformed heads get 400
 *      or 431, bad upgrades 400 or 426, automatically.
 *   2. The caller's request_cb sees every well-formed request and answers
 *      it: accept the upgrade (only for kind WSHTTP_UPGRADE: it checks the
 *      path and the Authorization header first), or a plain HTTP answer
 *      (GET /readyz -> 200 or 503, anything else 404, 401...), after which
 *      the connection closes.
 *   3. OPEN: one text message per message_cb (fragments reassembled, UTF-8
 *      checked); ping is answered with pong by the library; ws_send_text
 *      queues one text message.
 *   4. CLOSED: closed_cb runs exactly once, outside libwslay, after which
 *      the descriptor is closed.
 *
 * Peer errors end the connection with a close code, never the daemon:
 * a binary message 1003, invalid UTF-8 1007, a message over cfg.max_message
 * 1009, a protocol error (bad opcode, RSV bits: no extension is negotiated,
 * unmasked frames) 1002. After sending a close frame the connection ends
 * once it is written; it does not wait for the peer's.
 *
 * Bounds: the head buffer (freed after the head), one message being
 * received (cfg.max_message), the output queue (cfg.max_queue bytes of
 * messages: ws_send_text refuses more with -ENOBUFS and calls drained_cb
 * once the queue is down to half; the caller pauses its producer meanwhile).
 *
 * Callbacks: from message_cb and drained_cb the caller may ws_send_text and
 * ws_close, not ws_free. From closed_cb (or any time outside callbacks) it
 * may ws_free. request_cb must not call ws_* on its connection.
 *
 * Secrets: the head (Authorization) is wiped when it is freed; nothing here
 * logs. Ownership: ws_new takes fd (closed by ws on failure as well); the
 * struct belongs to the caller, who frees it with ws_free.
 */
#ifndef TANDEM_WS_H
#define TANDEM_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wshttp.h"

struct loop;
struct ws;

#define WS_DEFAULT_MAX_MESSAGE (1u << 20)
#define WS_DEFAULT_MAX_QUEUE (4u << 20)
/* After a plain answer: how long we read and discard what the peer still
 * sends before closing (closing with unread input sends RST, which can
 * destroy the answer), and how many bytes. */
#define WS_DRAIN_MS 2000
#define WS_MAX_DRAIN (64u * 1024u)

/* Close codes (RFC 6455 §7.4.1) used here. */
enum {
	WS_CLOSE_NORMAL = 1000,
	WS_CLOSE_GOING_AWAY = 1001,
	WS_CLOSE_PROTOCOL = 1002,
	WS_CLOSE_UNSUPPORTED = 1003,
	WS_CLOSE_NO_STATUS = 1005,
	WS_CLOSE_ABNORMAL = 1006,
	WS_CLOSE_BAD_DATA = 1007,
	WS_CLOSE_POLICY = 1008,
	WS_CLOSE_TOO_BIG = 1009,
	WS_CLOSE_INTERNAL = 1011,
	WS_CLOSE_TRY_AGAIN = 1013,
};

/* Bytes read from one connection per ws_process() at most: the rest waits
 * for the next loop iteration (level-triggered epoll comes back), so that
 * one fast sender cannot hold the loop while others wait. */
#define WS_READ_BUDGET (256u * 1024u)

/* What request_cb decides. Preset to { .upgrade = false, .status = 404 }. */
struct ws_answer {
	bool upgrade;             /* accept the WebSocket upgrade */
	int status;               /* else: a plain answer with this status */
	const char *content_type; /* not owned; NULL: text/plain; charset=utf-8 */
	char *body;               /* malloc'd, freed by ws; NULL: empty */
};

struct ws_ops {
	/* A well-formed request head; rq is valid during the call. Required. */
	void (*request_cb)(struct ws *w, const struct wshttp_req *rq, struct ws_answer *ans,
			   void *arg);
	/* One complete text message, valid UTF-8 (it may hold NUL bytes; it
	 * is not NUL-terminated), valid during the call. Required. */
	void (*message_cb)(struct ws *w, const char *data, size_t len, void *arg);
	/* Once, at the end. code: the close code received (or sent, when we
	 * closed first; WS_CLOSE_ABNORMAL when the peer vanished) once
	 * upgraded; before that the HTTP status answered, or 0 when the peer
	 * left or timed out before a complete head. reason: a human one,
	 * never NULL. Required. */
	void (*closed_cb)(struct ws *w, int code, const char *reason, void *arg);
	/* The output queue fell to half of max_queue after a refused send.
	 * May be NULL. */
	void (*drained_cb)(struct ws *w, void *arg);
	/* n more bytes were read from the peer once upgraded (frames being
	 * assembled into a message count until message_cb). Return false to
	 * refuse them: the connection is closed with WS_CLOSE_TRY_AGAIN (the
	 * caller's global input budget is spent). May be NULL. */
	bool (*input_cb)(struct ws *w, size_t n, void *arg);
};

struct ws_config {
	size_t max_message;       /* 0: WS_DEFAULT_MAX_MESSAGE */
	size_t max_queue;         /* 0: WS_DEFAULT_MAX_QUEUE */
	uint64_t head_timeout_ms; /* the whole head by then, else closed; 0: none */
	/* Bytes the caller already read from fd (to sniff the protocol):
	 * handled as if read now. Copied. At most WSHTTP_MAX_HEAD. */
	const void *prefix;
	size_t prefix_len;
};

/* Starts serving a connected, non-blocking-capable stream socket (TCP or
 * unix). Returns NULL with -errno in *err (EINVAL: bad arguments; fd is
 * closed then too). */
struct ws *ws_new(struct loop *l, int fd, const struct ws_config *cfg, const struct ws_ops *ops,
		  void *arg, int *err);
/* Queues one text message (copied). 0; -ENOBUFS when the queue would pass
 * max_queue (nothing queued: wait for drained_cb); -EPIPE when the
 * connection is not open (not yet upgraded, closing or closed); -EMSGSIZE
 * over 2^31 bytes. The caller sends valid UTF-8 (JSON from jansson is). */
int ws_send_text(struct ws *w, const char *data, size_t len);
/* Starts the closing handshake with code and a short reason (truncated to
 * fit a control frame) once the messages already queued are written
 * (nothing more is read or accepted meanwhile); the connection ends once
 * the close frame is written.
 * Before the upgrade it just ends the connection. No-op once closing. */
void ws_close(struct ws *w, uint16_t code, const char *reason);
/* Stops (true) or resumes reading from the peer: the caller's consumer is
 * busy or the peer does not read its answers. A message already buffered
 * may still be delivered while paused. Writing goes on. */
void ws_pause_read(struct ws *w, bool paused);
/* drained_cb runs once the output queue is at or below `level` bytes (once;
 * call again to re-arm). */
void ws_watch_drain(struct ws *w, size_t level);
/* Bytes of messages queued and not yet written. */
size_t ws_queued(const struct ws *w);
/* True once upgraded and until closing starts. */
bool ws_is_open(const struct ws *w);
/* Reads and writes what the socket allows now. The loop calls it on
 * readiness; tests and fuzzers may call it directly. Not from callbacks. */
void ws_process(struct ws *w);
/* Closes the connection (no callback) and frees it. Accepts NULL; returns
 * NULL. */
struct ws *ws_free(struct ws *w);

#endif
