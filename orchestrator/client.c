/* client.c - see client.h.
 *
 * A session is a small state machine:
 *   OPEN      reading lines and writing messages;
 *   DRAINING  after EOF or an over-long line: no more reading or new
 *             messages, the queued output is flushed, then CLOSING;
 *   CLOSING   no io at all; a 0 ms timer runs closed_cb and frees it.
 * Closing always goes through that timer so that closed_cb never runs
 * inside rpc code that called client_reply() or client_close().
 *
 * Messages are encoded by hand around json_dump_callback() into one scratch
 * buffer per listener (the loop is single-threaded and encoding never calls
 * out), '\n' included, and handed to wqueue_write(): with an empty queue
 * that is one writev and no copy.
 */
#include "client.h"

#include "linebuf.h"
#include "log.h"
#include "loop.h"
#include "utf8.h"
#include "util.h"
#include "wqueue.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#define ACCEPT_BATCH 16              /* connections taken per wake-up */
#define ACCEPT_PAUSE_MS 100          /* after EMFILE and the like */
#define SCRATCH_KEEP (1024u * 1024)  /* larger encode buffers are freed after use */
#define ERROR_MESSAGE_MAX 4096

enum client_state { CLIENT_OPEN, CLIENT_DRAINING, CLIENT_CLOSING };

struct client {
	struct client_srv *srv;
	struct client *prev, *next;
	uint64_t id;
	enum client_state state;
	int in_fd, out_fd;
	bool own_fd;          /* unix session: close the socket at the end */
	int in_flags;         /* stdio: file flags to restore, -1 if untouched */
	int out_flags;
	struct loop_io *in_io;  /* NULL when epoll refuses in_fd: poll_timer reads */
	struct loop_io *out_io; /* == in_io for one fd; NULL when unpollable */
	struct loop_timer *poll_timer;
	bool polling; /* inside poll_timer's callback */
	struct loop_timer *close_timer;
	bool want_write;
	struct linebuf lb;
	struct wqueue wq;
	void *data;
};

struct client_srv {
	struct loop *l;
	const struct client_ops *ops;
	void *arg;
	size_t max_line, max_output;
	unsigned max_sessions;
	int lfd; /* unix listener, -1 for stdio */
	struct loop_io *lio;
	struct loop_timer *pause;
	bool refusing; /* at the session cap: logged once */
	char *path;
	dev_t dev;
	ino_t ino;
	struct client *sessions;
	size_t count;
	unsigned in_cb; /* depth of request_cb/closed_cb calls, see client_srv_free */
	/* encode buffer */
	char *buf;
	size_t len, cap;
	int enc_err;
};

static atomic_uint_fast64_t client_next_id;

static void client_io_cb(struct loop_io *io, int fd, uint32_t revents, void *arg);
static void client_poll_cb(struct loop_timer *t, void *arg);

/* ---- encoding into the listener's scratch buffer ---- */

static void enc_reset(struct client_srv *s)
{
	s->len = 0;
	s->enc_err = 0;
}

static int enc_put_cb(const char *p, size_t n, void *arg)
{
	struct client_srv *s = arg;

	if (s->enc_err)
		return -1;
	/* The whole message must fit the output bound: stop growing early. */
	if (n > s->max_output - s->len) {
		s->enc_err = -EMSGSIZE;
		return -1;
	}
	if (s->len + n > s->cap) {
		s->cap = MAX(MIN(MAX(s->cap * 2, 4096u), s->max_output), s->len + n);
		s->buf = xrealloc(s->buf, s->cap);
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	return 0;
}

static void enc_raw(struct client_srv *s, const char *p) { (void)enc_put_cb(p, strlen(p), s); }

static void enc_json(struct client_srv *s, const json_t *v)
{
	if (s->enc_err)
		return;
	if (json_dump_callback(v, enc_put_cb, s, JSON_COMPACT | JSON_ENCODE_ANY) < 0 && !s->enc_err)
		s->enc_err = -EINVAL;
}

/* A request id: a string or an integer; NULL is written as null when
 * null_ok (error replies to unparsable input), else rejected. */
static void enc_id(struct client_srv *s, const json_t *id, bool null_ok)
{
	if (!id && null_ok)
		enc_raw(s, "null");
	else if (json_is_string(id) || json_is_integer(id))
		enc_json(s, id);
	else if (!s->enc_err)
		s->enc_err = -EINVAL;
}

/* Drops a big buffer after a big message so it does not stay pinned. */
static void enc_release(struct client_srv *s)
{
	if (s->cap > SCRATCH_KEEP) {
		free(s->buf);
		s->buf = NULL;
		s->cap = 0;
	}
	s->len = 0;
}

/* ---- session io ---- */

static void client_stop_io(struct client *c)
{
	if (c->out_io != c->in_io)
		loop_io_del(c->out_io);
	loop_io_del(c->in_io);
	c->in_io = c->out_io = NULL;
	/* From inside its own callback the timer is simply not re-armed. */
	if (c->poll_timer && !c->polling) {
		loop_timer_cancel(c->poll_timer);
		c->poll_timer = NULL;
	}
}

static void client_close_cb(struct loop_timer *t, void *arg);

/* Every end of a session comes here; closed_cb follows from the loop. */
static void client_shutdown(struct client *c, const char *why)
{
	if (c->state == CLIENT_CLOSING)
		return;
	log_debug("client %" PRIu64 ": closing (%s)", c->id, why);
	c->state = CLIENT_CLOSING;
	client_stop_io(c);
	c->close_timer = loop_timer_add(c->srv->l, 0, client_close_cb, c);
}

/* Applies state and want_write to the epoll interest sets. */
static void client_update_io(struct client *c)
{
	uint32_t rd = c->state == CLIENT_OPEN ? LOOP_READ : 0;
	uint32_t wr = c->want_write ? LOOP_WRITE : 0;
	int r = 0;

	if (c->in_io && c->in_io == c->out_io) {
		r = loop_io_mod(c->in_io, rd | wr);
	} else {
		if (c->in_io && !rd) {
			loop_io_del(c->in_io);
			c->in_io = NULL;
		}
		if (c->out_io)
			r = loop_io_mod(c->out_io, wr);
	}
	if (r < 0)
		client_shutdown(c, "epoll refused the descriptor");
}

static void client_set_want_write(struct client *c, bool on)
{
	if (c->want_write == on)
		return;
	c->want_write = on;
	client_update_io(c);
}

/* Stops reading; ends the session once queued output is written. */
static void client_drain(struct client *c, const char *why)
{
	if (c->state != CLIENT_OPEN)
		return;
	if (wqueue_pending(&c->wq) == 0) {
		client_shutdown(c, why);
		return;
	}
	log_debug("client %" PRIu64 ": draining (%s)", c->id, why);
	c->state = CLIENT_DRAINING;
	client_update_io(c);
}

/* An fd epoll refuses (a regular file) never says EAGAIN: write it all. */
static int client_flush_unpolled(struct client *c)
{
	while (wqueue_pending(&c->wq) > 0) {
		size_t before = wqueue_pending(&c->wq);
		int r = wqueue_flush(&c->wq, c->out_fd);

		if (r < 0)
			return r;
		if (wqueue_pending(&c->wq) == before)
			return -EIO;
	}
	return 0;
}

/* Sends the encoded message in the scratch buffer. */
static int client_send(struct client *c)
{
	struct client_srv *s = c->srv;
	int r = s->enc_err;

	if (r == 0)
		r = wqueue_write(&c->wq, c->out_fd, s->buf, s->len, NULL, 0);
	enc_release(s);
	if (r == 1 && !c->out_io)
		r = client_flush_unpolled(c);
	if (r == 1)
		client_set_want_write(c, true);
	if (r == -ENOBUFS) {
		log_warn("client %" PRIu64 ": not reading its output (%zu bytes queued): "
			 "disconnecting", c->id, wqueue_pending(&c->wq));
		client_shutdown(c, "slow consumer");
	} else if (r < 0 && r != -EMSGSIZE && r != -EINVAL) {
		client_shutdown(c, strerror(-r));
	}
	return r < 0 ? r : 0;
}

static void client_on_writable(struct client *c)
{
	int r = wqueue_flush(&c->wq, c->out_fd);

	if (r < 0) {
		client_shutdown(c, strerror(-r));
		return;
	}
	if (r == 1)
		return;
	if (c->state == CLIENT_DRAINING)
		client_shutdown(c, "drained");
	else
		client_set_want_write(c, false);
}

/* ---- input ---- */

static bool is_blank(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return false;
	return true;
}

static void client_dispatch(struct client *c, json_t *msg)
{
	struct client_srv *s = c->srv;
	json_t *method, *id, *params;

	if (!json_is_object(msg)) {
		client_error(c, NULL, CLIENT_INVALID_REQUEST, "Invalid Request: %s",
			     json_is_array(msg) ? "batches are not supported" : "not an object");
		return;
	}
	method = json_object_get(msg, "method");
	id = json_object_get(msg, "id");
	if (!method && (json_object_get(msg, "result") || json_object_get(msg, "error"))) {
		/* We send no server->client requests, so nothing waits for it. */
		log_debug("client %" PRIu64 ": ignoring a response message", c->id);
		return;
	}
	if (id && !json_is_string(id) && !json_is_integer(id)) {
		client_error(c, NULL, CLIENT_INVALID_REQUEST,
			     "Invalid Request: id must be a string or an integer");
		return;
	}
	if (!json_is_string(method)) {
		client_error(c, id, CLIENT_INVALID_REQUEST, "Invalid Request: %s",
			     method ? "method must be a string" : "missing method");
		return;
	}
	params = json_object_get(msg, "params");
	if (json_is_null(params))
		params = NULL;
	s->in_cb++;
	s->ops->request_cb(c, json_string_value(method), id, params, s->arg);
	s->in_cb--;
}

static void client_handle_line(struct client *c, const char *line, size_t len)
{
	json_error_t je;
	json_t *msg;

	if (is_blank(line, len))
		return;
	msg = json_loadb(line, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
	if (!msg) {
		client_error(c, NULL, CLIENT_PARSE_ERROR, "Parse error at column %d: %s", je.column,
			     je.text);
		return;
	}
	client_dispatch(c, msg);
	json_decref(msg);
}

static void client_take_lines(struct client *c)
{
	const char *line;
	size_t len;

	while (c->state == CLIENT_OPEN) {
		int r = linebuf_next(&c->lb, &line, &len);

		if (r == 0)
			return;
		if (r < 0) {
			/* linebuf cannot skip to the next '\n': answer, then end. */
			client_error(c, NULL, CLIENT_INVALID_REQUEST,
				     "Invalid Request: message longer than %zu bytes",
				     c->srv->max_line);
			client_drain(c, "line too long");
			return;
		}
		client_handle_line(c, line, len);
	}
}

static void client_at_eof(struct client *c)
{
	size_t n = linebuf_pending(&c->lb);

	/* A last message without '\n' (printf '...' | tandem-orchestrator). */
	if (n > 0 && c->state == CLIENT_OPEN)
		client_handle_line(c, c->lb.buf + c->lb.start, n);
	client_drain(c, "end of input");
}

static void client_on_readable(struct client *c)
{
	ssize_t n = linebuf_read(&c->lb, c->in_fd);

	if (n == -EAGAIN)
		return;
	if (n < 0) {
		client_shutdown(c, strerror((int)-n));
		return;
	}
	client_take_lines(c);
	if (n == 0)
		client_at_eof(c);
}

static void client_io_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct client *c = arg;

	(void)fd;
	if (io == c->out_io && io != c->in_io && (revents & (LOOP_HUP | LOOP_ERR))) {
		client_shutdown(c, "output closed");
		return;
	}
	if (io == c->out_io && c->want_write && (revents & (LOOP_WRITE | LOOP_HUP | LOOP_ERR)))
		client_on_writable(c);
	/* io may be gone now: compare against the current handle only. */
	if (io == c->in_io && c->state == CLIENT_OPEN &&
	    (revents & (LOOP_READ | LOOP_HUP | LOOP_ERR)))
		client_on_readable(c);
}

/* Reads an fd epoll refuses (regular file, /dev/null): one read per loop
 * iteration until EOF, like a level-triggered fd that is always ready. */
static void client_poll_cb(struct loop_timer *t, void *arg)
{
	struct client *c = arg;

	c->polling = true;
	client_on_readable(c);
	c->polling = false;
	if (c->state == CLIENT_OPEN)
		loop_timer_rearm(t, 0);
	else
		c->poll_timer = NULL;
}

/* ---- session lifecycle ---- */

/* Makes fd non-blocking; returns the flags to restore, or -1 if unchanged. */
static int fd_nonblock_saved(int fd, int *out)
{
	int fl = fcntl(fd, F_GETFL);

	*out = -1;
	if (fl < 0)
		return -errno;
	if (fl & O_NONBLOCK)
		return 0;
	if (fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	*out = fl;
	return 0;
}

static void fd_restore_flags(int fd, int flags)
{
	if (flags >= 0)
		(void)fcntl(fd, F_SETFL, flags);
}

/* Registers the fds; an fd epoll refuses with EPERM is served unpolled. */
static int client_watch(struct client *c)
{
	struct loop *l = c->srv->l;

	c->in_io = loop_io_add(l, c->in_fd, LOOP_READ, client_io_cb, c);
	if (!c->in_io) {
		if (errno != EPERM)
			return -errno;
		c->poll_timer = loop_timer_add(l, 0, client_poll_cb, c);
	}
	if (c->out_fd == c->in_fd) {
		c->out_io = c->in_io;
		return 0;
	}
	c->out_io = loop_io_add(l, c->out_fd, 0, client_io_cb, c);
	if (!c->out_io && errno != EPERM) {
		int r = -errno;

		client_stop_io(c);
		return r;
	}
	return 0;
}

static void client_release(struct client *c)
{
	if (c->own_fd) {
		safe_close(c->in_fd);
	} else {
		fd_restore_flags(c->in_fd, c->in_flags);
		if (c->out_fd != c->in_fd)
			fd_restore_flags(c->out_fd, c->out_flags);
	}
	linebuf_free(&c->lb);
	wqueue_free(&c->wq);
	free(c);
}

static int client_new(struct client_srv *s, int in_fd, int out_fd, bool own_fd)
{
	struct client *c = xcalloc(1, sizeof(*c));
	int r;

	c->srv = s;
	c->id = atomic_fetch_add(&client_next_id, 1) + 1;
	c->in_fd = in_fd;
	c->out_fd = out_fd;
	c->own_fd = own_fd;
	c->in_flags = c->out_flags = -1;
	linebuf_init(&c->lb, s->max_line);
	wqueue_init(&c->wq, s->max_output);
	r = own_fd ? 0 : fd_nonblock_saved(in_fd, &c->in_flags);
	if (r == 0 && !own_fd && out_fd != in_fd)
		r = fd_nonblock_saved(out_fd, &c->out_flags);
	if (r == 0)
		r = client_watch(c);
	if (r < 0) {
		client_release(c);
		return r;
	}
	c->next = s->sessions;
	if (s->sessions)
		s->sessions->prev = c;
	s->sessions = c;
	s->count++;
	log_debug("client %" PRIu64 ": session started", c->id);
	return 0;
}

/* Unlinks, runs closed_cb, frees. */
static void client_finish(struct client *c)
{
	struct client_srv *s = c->srv;

	client_stop_io(c);
	if (c->close_timer)
		loop_timer_cancel(c->close_timer);
	c->close_timer = NULL;
	c->state = CLIENT_CLOSING;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->sessions = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->count--;
	if (s->refusing && s->count < s->max_sessions) {
		s->refusing = false;
		log_info("below %u client sessions again: accepting", s->max_sessions);
	}
	if (s->ops->closed_cb) {
		s->in_cb++;
		s->ops->closed_cb(c, s->arg);
		s->in_cb--;
	}
	client_release(c);
}

static void client_close_cb(struct loop_timer *t, void *arg)
{
	struct client *c = arg;

	(void)t;
	c->close_timer = NULL; /* fired: the loop frees the handle */
	client_finish(c);
}

/* ---- public: messages ---- */

int client_reply(struct client *c, json_t *id, json_t *result)
{
	struct client_srv *s = c->srv;

	if (c->state != CLIENT_OPEN) {
		json_decref(result);
		return -EPIPE;
	}
	enc_reset(s);
	enc_raw(s, "{\"id\":");
	enc_id(s, id, false);
	enc_raw(s, ",\"result\":");
	if (result)
		enc_json(s, result);
	else
		enc_raw(s, "{}");
	enc_raw(s, "}\n");
	json_decref(result);
	return client_send(c);
}

/* The message as a json string, cut at ERROR_MESSAGE_MAX on a character
 * boundary; if it is still not valid UTF-8 (a parse error quoting raw
 * input), bytes above 0x7f become '?'. */
__attribute__((format(printf, 1, 0))) static json_t *error_message(const char *fmt, va_list ap)
{
	char buf[ERROR_MESSAGE_MAX];
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	size_t len = n < 0 ? 0 : (size_t)n;
	json_t *s;

	if (len >= sizeof(buf))
		len = utf8_trim(buf, sizeof(buf) - 1);
	s = json_stringn(buf, len);
	if (s)
		return s;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)buf[i] >= 0x80)
			buf[i] = '?';
	return json_stringn(buf, len);
}

int client_error(struct client *c, json_t *id, int code, const char *fmt, ...)
{
	struct client_srv *s = c->srv;
	char num[16];
	json_t *msg;
	va_list ap;

	if (c->state != CLIENT_OPEN)
		return -EPIPE;
	va_start(ap, fmt);
	msg = error_message(fmt, ap);
	va_end(ap);
	snprintf(num, sizeof(num), "%d", code);
	enc_reset(s);
	enc_raw(s, "{\"id\":");
	enc_id(s, id, true);
	enc_raw(s, ",\"error\":{\"code\":");
	enc_raw(s, num);
	enc_raw(s, ",\"message\":");
	enc_json(s, msg);
	enc_raw(s, "}}\n");
	json_decref(msg);
	return client_send(c);
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
	enc_raw(s, "}\n");
	json_decref(m);
	json_decref(params);
	return client_send(c);
}

void client_close(struct client *c) { client_shutdown(c, "closed by the server"); }

void client_set_data(struct client *c, void *data) { c->data = data; }
void *client_get_data(const struct client *c) { return c->data; }
uint64_t client_id(const struct client *c) { return c->id; }
size_t client_queued(const struct client *c) { return wqueue_pending(&c->wq); }

/* ---- listeners ---- */

static struct client_srv *srv_new(struct loop *l, const struct client_ops *ops, void *arg)
{
	struct client_srv *s = xcalloc(1, sizeof(*s));

	s->l = l;
	s->ops = ops;
	s->arg = arg;
	s->max_line = ops->max_line ? ops->max_line : CLIENT_MAX_LINE;
	s->max_output = ops->max_output ? ops->max_output : CLIENT_MAX_OUTPUT;
	s->max_sessions = ops->max_sessions ? ops->max_sessions : CLIENT_MAX_SESSIONS;
	s->lfd = -1;
	return s;
}

int client_srv_stdio(struct loop *l, int in_fd, int out_fd, const struct client_ops *ops,
		     void *arg, struct client_srv **out)
{
	struct client_srv *s;
	int r;

	if (!ops || !ops->request_cb || in_fd < 0 || out_fd < 0)
		return -EINVAL;
	s = srv_new(l, ops, arg);
	r = client_new(s, in_fd, out_fd, false);
	if (r < 0) {
		free(s);
		return r;
	}
	*out = s;
	return 0;
}

static void srv_resume_cb(struct loop_timer *t, void *arg)
{
	struct client_srv *s = arg;

	(void)t;
	s->pause = NULL;
	if (loop_io_mod(s->lio, LOOP_READ) < 0)
		log_error("cannot resume accepting on %s", s->path);
}

/* One best-effort line so the client knows why, then close. */
static void srv_refuse(struct client_srv *s, int fd)
{
	char msg[128];
	int n = snprintf(msg, sizeof(msg),
			 "{\"id\":null,\"error\":{\"code\":%d,\"message\":"
			 "\"Server overloaded: too many sessions; retry later\"}}\n",
			 CLIENT_OVERLOADED);

	if (!s->refusing) {
		s->refusing = true;
		log_warn("%u client sessions open on %s: refusing new connections", s->max_sessions,
			 s->path);
	}
	(void)!send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
}

static void srv_accept_failed(struct client_srv *s, int err)
{
	if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED)
		return;
	/* EMFILE & co. leave the connection pending: level-triggered epoll
	 * would spin, so stop listening for a moment. */
	log_warn("accept on %s: %s; pausing %d ms", s->path, strerror(err), ACCEPT_PAUSE_MS);
	if (loop_io_mod(s->lio, 0) == 0 && !s->pause)
		s->pause = loop_timer_add(s->l, ACCEPT_PAUSE_MS, srv_resume_cb, s);
}

static void srv_accept_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct client_srv *s = arg;

	(void)io;
	(void)revents;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		int r;

		if (cfd < 0) {
			srv_accept_failed(s, errno);
			return;
		}
		if (s->count >= s->max_sessions) {
			srv_refuse(s, cfd);
			continue;
		}
		r = client_new(s, cfd, cfd, true);
		if (r < 0)
			log_warn("cannot watch a client connection: %s", strerror(-r));
	}
}

/* Clears the way for bind: nothing there, or a stale socket we remove. */
static int unix_clear_path(const char *path, const struct sockaddr_un *sa, char *err,
			   size_t errlen)
{
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "socket: %s", strerror(-r));
		return r;
	}
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 ? -errno : 0;
	close(fd);
	if (r == -ENOENT)
		return 0;
	if (r == 0 || r == -EAGAIN) { /* EAGAIN: a live server with a full backlog */
		snprintf(err, errlen, "%s: another server is listening there", path);
		return -EADDRINUSE;
	}
	if (r != -ECONNREFUSED) {
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		r = -errno;
		snprintf(err, errlen, "cannot remove stale socket %s: %s", path, strerror(-r));
		return r;
	}
	return 0;
}

/* socket + bind (mode 0600 from the start) + listen. Returns the fd. */
/* Binds under a temporary name in the same directory, listens, then renames
 * the socket into place: a client that sees the path can connect at once
 * (a bind at the final path would show it before listen()). */
static int unix_listen(const char *path, const struct sockaddr_un *sa, struct stat *st, char *err,
		       size_t errlen)
{
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct sockaddr_un tmp = *sa;
	mode_t old;
	int r, n;

	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "socket: %s", strerror(-r));
		return r;
	}
	n = snprintf(tmp.sun_path, sizeof(tmp.sun_path), "%s.%d.tmp", path, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp.sun_path))
		tmp = *sa; /* no room for a temporary name: bind in place */
	unlink(tmp.sun_path);
	/* umask is per process; it only tightens the mode of whatever another
	 * thread might create in this instant. */
	old = umask(0177);
	r = bind(fd, (const struct sockaddr *)&tmp, sizeof(tmp)) < 0 ? -errno : 0;
	umask(old);
	if (r < 0) {
		snprintf(err, errlen, "bind %s: %s", tmp.sun_path, strerror(-r));
		return r;
	}
	if (listen(fd, SOMAXCONN) < 0 ||
	    (strcmp(tmp.sun_path, path) != 0 && rename(tmp.sun_path, path) < 0) ||
	    lstat(path, st) < 0) {
		r = -errno;
		snprintf(err, errlen, "listen %s: %s", path, strerror(-r));
		unlink(tmp.sun_path);
		return r;
	}
	r = fd;
	fd = -1;
	return r;
}

int client_srv_unix(struct loop *l, const char *path, const struct client_ops *ops, void *arg,
		    struct client_srv **out, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct client_srv *s;
	struct stat st;
	int fd, r;

	if (!ops || !ops->request_cb || !path || !*path) {
		snprintf(err, errlen, "missing socket path or request callback");
		return -EINVAL;
	}
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path longer than %zu bytes: %s",
			 sizeof(sa.sun_path) - 1, path);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path));
	r = unix_clear_path(path, &sa, err, errlen);
	if (r < 0)
		return r;
	fd = unix_listen(path, &sa, &st, err, errlen);
	if (fd < 0)
		return fd;
	s = srv_new(l, ops, arg);
	s->lfd = fd;
	s->path = xstrdup(path);
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	s->lio = loop_io_add(l, fd, LOOP_READ, srv_accept_cb, s);
	if (!s->lio) {
		r = -errno;
		snprintf(err, errlen, "cannot watch %s: %s", path, strerror(-r));
		client_srv_free(s);
		return r;
	}
	*out = s;
	return 0;
}

/* Removes the socket file only if it is still the one we bound: a newer
 * server may have replaced a path it found stale. */
static void srv_unlink(struct client_srv *s)
{
	struct stat st;

	if (s->path && lstat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
		unlink(s->path);
}

struct client_srv *client_srv_free(struct client_srv *s)
{
	if (!s)
		return NULL;
	/* A session callback up the stack would return into freed memory. */
	assert(s->in_cb == 0);
	loop_io_del(s->lio);
	loop_timer_cancel(s->pause);
	while (s->sessions)
		client_finish(s->sessions);
	safe_close(s->lfd);
	srv_unlink(s);
	free(s->path);
	free(s->buf);
	free(s);
	return NULL;
}

size_t client_srv_count(const struct client_srv *s) { return s->count; }
