/* client_int.h - what the client transport's files share (not for the
 * layers above: they use client.h).
 *
 *   client.c         sessions: life cycle, the bounds, sending, the
 *                    public message functions
 *   client_enc.c     encoding a message into the listener's scratch buffer
 *   client_parse.c   bounded parsing (node count, depth) and the JSON-RPC
 *                    envelope checks; large messages parsed off the loop
 *   client_line.c    the line transport (stdio, and unix clients that send
 *                    '{' first)
 *   client_ws.c      the WebSocket transport (common/ws.h)
 *   client_listen.c  listeners: unix (sniffing lines or WebSocket), ws://
 *   client_auth.c    the ws:// listener's Authorization check
 */
#ifndef TANDEM_CLIENT_INT_H
#define TANDEM_CLIENT_INT_H

#include "client.h"
#include "linebuf.h"
#include "wqueue.h"

#include <stdbool.h>
#include <sys/types.h>

struct ws;
struct loop_io;
struct loop_timer;
struct client_job;

enum client_state {
	CLIENT_OPEN,     /* reading and writing */
	CLIENT_DRAINING, /* line: after EOF or an over-long line, flushing */
	CLIENT_CLOSING,  /* no io; a timer runs closed_cb and frees it */
	CLIENT_LINGER,   /* ws: closed_cb ran; the close frame is still going out */
};

enum client_kind { CLIENT_KIND_LINE, CLIENT_KIND_WS };

/* A raw message that arrived while the session was busy (ws only: what
 * libwslay had buffered already). */
struct client_msg {
	struct client_msg *next;
	size_t len;
	char data[];
};

struct client {
	struct client_srv *srv;
	struct client *prev, *next;
	uint64_t id;
	enum client_state state;
	enum client_kind kind;
	void *data;
	struct loop_timer *close_timer;

	/* line transport */
	int in_fd, out_fd;
	bool own_fd;   /* unix session: close the socket at the end */
	int in_flags;  /* stdio: file flags to restore, -1 if untouched */
	int out_flags;
	struct loop_io *in_io;  /* NULL when epoll refuses in_fd: poll_timer reads */
	struct loop_io *out_io; /* == in_io for one fd; NULL when unpollable */
	struct loop_timer *poll_timer;
	bool polling; /* inside poll_timer's callback */
	bool want_write;
	struct loop_timer *flush_timer; /* writes this loop turn's answers */
	bool eof;     /* line: EOF seen while busy: handled once idle */
	struct linebuf lb;
	struct wqueue wq;
	size_t lb_held; /* linebuf_pending() last counted in the global input */

	/* WebSocket transport */
	struct ws *ws;
	bool ws_closed;      /* its closed_cb ran */
	size_t ws_partial;   /* bytes read towards the next message */
	uint16_t close_code; /* the close code we send (0: 1000) */

	/* bounds and fairness (client.c) */
	unsigned unanswered; /* requests handed up and not answered yet */
	size_t held;         /* input bytes counted in the global input budget */
	bool paused;         /* output above the high-water mark: not reading */
	struct client_job *job; /* a message being parsed off the loop */
	struct client_msg *inq, **inq_tail;
};

struct client_srv {
	struct loop *l;
	const struct client_ops *ops;
	void *arg;
	size_t max_line, max_output;
	unsigned max_sessions;
	int lfd; /* listening socket, -1 for stdio */
	struct loop_io *lio;
	struct loop_timer *pause;
	bool refusing; /* at the session cap: logged once */
	bool ws_only;  /* ws:// (TCP): always WebSocket, Authorization checked */
	char *path;    /* unix socket path, NULL otherwise */
	char *name;    /* for logs: the URL */
	dev_t dev;
	ino_t ino;
	const struct client_auth *auth; /* borrowed; NULL: none */
	int (*ready_cb)(char *reason, size_t len, void *arg);
	void *ready_arg;
	struct client *sessions;
	struct client *linger; /* ws sessions whose close frame is going out */
	struct client_srv *next_srv; /* all listeners, for the global bounds */
	size_t count;
	unsigned in_cb; /* depth of request_cb/closed_cb calls, see client_srv_free */
	/* encode buffer (client_enc.c) */
	char *buf;
	size_t len, cap;
	int enc_err;
};

/* ---- client.c ---- */
struct client *client_new_common(struct client_srv *s, enum client_kind kind);
void client_link(struct client *c);
/* Every end of a session comes here; closed_cb follows from the loop. */
void client_shutdown(struct client *c, const char *why);
/* One complete input message (a line without '\n', a text frame). */
void client_input(struct client *c, const char *data, size_t len);
/* Whether the session takes input now (not busy parsing, not paused). */
bool client_can_read(const struct client *c);
/* Global input budget: reserve n more bytes held by c; false when the
 * budget is spent and c holds a large partial message (c must go). */
bool client_hold(struct client *c, size_t n);
/* The same without closing c (logged): for libwslay's read callback, where
 * ws itself closes the connection with 1013. */
bool client_hold_try(struct client *c, size_t n);
void client_unhold(struct client *c, size_t n);
/* The transport's output fell below the low-water mark. */
void client_output_drained(struct client *c);
void client_free_mem(struct client *c);
/* Unlinks, runs closed_cb, frees (or lets a ws session linger; a
 * lingering one is freed). */
void client_finish(struct client *c);
/* Counts a request about to be handed up; false (answered -32001) beyond
 * the bounds. */
bool client_admit(struct client *c, json_t *id);
/* Counts a request with an id as unanswered (its answer uncounts it):
 * every answer with an id must have been counted. */
void client_count(struct client *c);
/* A parse job ended (dispatched or not): read on. */
void client_parsed(struct client *c);
/* Ends every session of s now, then frees the lingering ones. */
void client_srv_end_all(struct client_srv *s);
/* Global bounds: the listeners to count over. */
void client_srv_register(struct client_srv *s);
void client_srv_unregister(struct client_srv *s);

/* ---- client_enc.c ---- */
void enc_reset(struct client_srv *s);
void enc_raw(struct client_srv *s, const char *p);
void enc_rawn(struct client_srv *s, const char *p, size_t n);
void enc_json(struct client_srv *s, const json_t *v);
void enc_id(struct client_srv *s, const json_t *id, bool null_ok);
void enc_release(struct client_srv *s);
json_t *enc_error_message(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* ---- client_parse.c ---- */
/* Bounds on one message's JSON: nesting depth and nodes (containers and
 * scalars), checked by a linear pre-scan before jansson sees it, so that a
 * message never becomes many times its size in memory. */
#define CLIENT_MAX_DEPTH 64u
#define CLIENT_MAX_NODES (64u * 1024u)
/* Messages up to this size are parsed on the loop thread (well under a
 * millisecond); larger ones on the parse worker. */
#define CLIENT_PARSE_INLINE (64u * 1024u)
/* 0 within the bounds; -E2BIG (too many nodes), -ELOOP (too deep). */
int client_prescan(const char *p, size_t n);
/* Parses and dispatches data now (inline), or hands a copy to the worker
 * and marks c busy; client_parsed() resumes it. */
void client_parse(struct client *c, const char *data, size_t len);
/* The session is going away: forget its job (the worker's result is
 * dropped). */
void client_parse_cancel(struct client *c);
/* Validates the envelope and calls request_cb. */
void client_dispatch(struct client *c, json_t *msg);
/* Stops the worker (at the last listener's end). */
void client_parse_shutdown(void);

/* ---- client_line.c ---- */
int client_line_new(struct client_srv *s, int in_fd, int out_fd, bool own_fd);
int client_line_send(struct client *c, const char *p, size_t n);
size_t client_line_queued(const struct client *c);
void client_line_update(struct client *c);
void client_line_stop(struct client *c);
void client_line_release(struct client *c);
/* Input left unread while busy: take it now. */
void client_line_resume(struct client *c);

/* ---- client_ws.c ---- */
int client_ws_new(struct client_srv *s, int fd);
int client_ws_send(struct client *c, const char *p, size_t n);
size_t client_ws_queued(const struct client *c);
void client_ws_update(struct client *c);
void client_ws_close(struct client *c, const char *why);
void client_ws_release(struct client *c);
/* After closed_cb: true when c must linger until its close frame is out
 * (client_finish frees it then). */
bool client_ws_linger(struct client *c);

/* ---- client_auth.c ---- */
/* 0 when the Authorization header (may be NULL) passes; else -EACCES with
 * a reason (never the token) in why. */
int client_auth_check(const struct client_auth *a, const char *authorization, char *why,
		      size_t whylen);

#endif
