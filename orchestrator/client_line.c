/* client_line.c - the line transport: one JSON message per '\n'-terminated
 * line, on the stdio pair or a unix connection whose first byte was '{'.
 *
 * Reading stops while the session is busy (a message being parsed off the
 * loop) or paused (its output above the high-water mark); the lines already
 * buffered wait in the linebuf, so order is kept. After EOF or an over-long
 * line the session is DRAINING: no more reading or new messages, the
 * queued output is flushed, then it closes.
 *
 * Output is written once per loop turn while it is small: an answer is
 * appended to the queue and a zero timer (which runs after the turn's I/O
 * callbacks, loop.h) writes the lot. With many calls in flight one read
 * from an executor completes many of them, and one writev for all their
 * answers saves a syscall and a wake-up of the client per answer; a single
 * answer still leaves in the same loop turn. Output past LINE_BATCH_MAX, an
 * fd epoll refuses, and a queue already waiting for LOOP_WRITE keep the
 * direct path.
 */
#include "client_int.h"

#include "log.h"
#include "loop.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>

#define LINE_BATCH_MAX (64u * 1024u) /* queued this turn: more is written at once */

static void line_io_cb(struct loop_io *io, int fd, uint32_t revents, void *arg);
static void line_poll_cb(struct loop_timer *t, void *arg);
static void flush_batch(struct client *c);

/* ---- io interest ---- */

void client_line_stop(struct client *c)
{
	/* What this turn answered was as good as written before batching:
	 * one last try, as the direct write would have made. */
	if (c->flush_timer) {
		loop_timer_cancel(c->flush_timer);
		c->flush_timer = NULL;
		if (c->out_io && !c->want_write)
			(void)wqueue_flush(&c->wq, c->out_fd);
	}
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

/* Applies the state, busy/paused and want_write to the epoll interest. */
void client_line_update(struct client *c)
{
	uint32_t rd = client_can_read(c) && !c->eof ? LOOP_READ : 0;
	uint32_t wr = c->want_write ? LOOP_WRITE : 0;
	int r = 0;

	if (c->state == CLIENT_CLOSING)
		return;
	if (c->in_io && c->in_io == c->out_io) {
		r = loop_io_mod(c->in_io, rd | wr);
	} else {
		if (c->in_io && c->state != CLIENT_OPEN) {
			loop_io_del(c->in_io);
			c->in_io = NULL;
		} else if (c->in_io) {
			r = loop_io_mod(c->in_io, rd);
		}
		if (c->out_io)
			r = r < 0 ? r : loop_io_mod(c->out_io, wr);
	}
	if (r < 0)
		client_shutdown(c, "epoll refused the descriptor");
}

static void set_want_write(struct client *c, bool on)
{
	if (c->want_write == on)
		return;
	c->want_write = on;
	client_line_update(c);
}

/* Stops reading; ends the session once queued output is written. */
static void line_drain(struct client *c, const char *why)
{
	if (c->state != CLIENT_OPEN)
		return;
	flush_batch(c);
	if (c->state != CLIENT_OPEN)
		return;
	if (wqueue_pending(&c->wq) == 0) {
		client_shutdown(c, why);
		return;
	}
	log_debug("client %" PRIu64 ": draining (%s)", c->id, why);
	c->state = CLIENT_DRAINING;
	client_line_update(c);
}

/* ---- output ---- */

/* An fd epoll refuses (a regular file) never says EAGAIN: write it all. */
static int flush_unpolled(struct client *c)
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

/* Writes what is queued (one writev) and watches LOOP_WRITE while some
 * remains; resumes a paused session and ends a draining one when done. */
static void flush_out(struct client *c)
{
	int r = wqueue_flush(&c->wq, c->out_fd);

	if (r < 0) {
		client_shutdown(c, strerror(-r));
		return;
	}
	if (c->paused && wqueue_pending(&c->wq) <= CLIENT_OUTPUT_HIGH / 2)
		client_output_drained(c);
	if (c->state == CLIENT_CLOSING)
		return;
	if (r == 1)
		set_want_write(c, true);
	else if (c->state == CLIENT_DRAINING)
		client_shutdown(c, "drained");
	else
		set_want_write(c, false);
}

static void flush_timer_cb(struct loop_timer *t, void *arg)
{
	struct client *c = arg;

	(void)t;
	c->flush_timer = NULL;
	if (!c->want_write) /* else LOOP_WRITE flushes when the fd can take it */
		flush_out(c);
}

/* Writes this turn's batch now (before a large message or the end). */
static void flush_batch(struct client *c)
{
	if (!c->flush_timer)
		return;
	loop_timer_cancel(c->flush_timer);
	c->flush_timer = NULL;
	if (!c->want_write)
		flush_out(c);
}

/* Small output while nothing waits for LOOP_WRITE joins this turn's batch. */
static bool batchable(const struct client *c, size_t n)
{
	return c->out_io && !c->want_write && n < LINE_BATCH_MAX &&
	       wqueue_pending(&c->wq) <= LINE_BATCH_MAX - n - 1;
}

/* 0 (written or queued), or -errno (ENOBUFS: over max_output). */
int client_line_send(struct client *c, const char *p, size_t n)
{
	int r;

	if (batchable(c, n)) {
		r = wqueue_push2(&c->wq, p, n, "\n", 1);
		if (r == 0 && !c->flush_timer)
			c->flush_timer = loop_timer_add(c->srv->l, 0, flush_timer_cb, c);
		return r;
	}
	if (c->flush_timer && !c->want_write) {
		/* After this turn's batch, in order, in the same writev. */
		loop_timer_cancel(c->flush_timer);
		c->flush_timer = NULL;
		r = wqueue_push2(&c->wq, p, n, "\n", 1);
		if (r == 0)
			r = wqueue_flush(&c->wq, c->out_fd);
	} else {
		r = wqueue_write(&c->wq, c->out_fd, p, n, "\n", 1);
	}
	if (r == 1 && !c->out_io)
		r = flush_unpolled(c);
	if (r == 1)
		set_want_write(c, true);
	return r < 0 ? r : 0;
}

size_t client_line_queued(const struct client *c) { return wqueue_pending(&c->wq); }

static void on_writable(struct client *c)
{
	flush_out(c);
}

/* ---- input ---- */

/* Counts what the linebuf holds in the global input budget; false when c
 * had to go (it was closed). */
static bool line_account(struct client *c)
{
	size_t now = linebuf_pending(&c->lb);

	if (now > c->lb_held) {
		if (!client_hold(c, now - c->lb_held))
			return false;
	} else {
		client_unhold(c, c->lb_held - now);
	}
	c->lb_held = now;
	return true;
}

static void take_lines(struct client *c)
{
	const char *line;
	size_t len;

	while (client_can_read(c)) {
		int r = linebuf_next(&c->lb, &line, &len);

		if (r == 0)
			break;
		if (r < 0) {
			/* linebuf cannot skip to the next '\n': answer, then end. */
			client_error(c, NULL, CLIENT_INVALID_REQUEST,
				     "Invalid Request: message longer than %zu bytes",
				     c->srv->max_line);
			line_drain(c, "line too long");
			break;
		}
		client_input(c, line, len);
	}
	if (c->state != CLIENT_CLOSING)
		(void)line_account(c);
}

static void at_eof(struct client *c)
{
	size_t n = linebuf_pending(&c->lb);

	c->eof = true;
	if (!client_can_read(c))
		return; /* once the message being parsed is done */
	/* A last message without '\n' (printf '...' | tandem-orchestrator). */
	if (n > 0) {
		c->lb.start = c->lb.end;
		client_input(c, c->lb.buf + c->lb.end - n, n);
		if (!client_can_read(c) && c->state == CLIENT_OPEN)
			return; /* parsing off the loop: drained when done */
	}
	line_drain(c, "end of input");
}

static void on_readable(struct client *c)
{
	ssize_t n = linebuf_read(&c->lb, c->in_fd);

	if (n == -EAGAIN)
		return;
	if (n < 0) {
		client_shutdown(c, strerror((int)-n));
		return;
	}
	if (n > 0 && !line_account(c))
		return;
	take_lines(c);
	if (n == 0)
		at_eof(c);
}

void client_line_resume(struct client *c)
{
	take_lines(c);
	if (!client_can_read(c))
		return;
	if (c->eof)
		at_eof(c);
	else
		client_line_update(c);
}

static void line_io_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct client *c = arg;

	(void)fd;
	if (io == c->out_io && io != c->in_io && (revents & (LOOP_HUP | LOOP_ERR))) {
		client_shutdown(c, "output closed");
		return;
	}
	if (io == c->out_io && c->want_write && (revents & (LOOP_WRITE | LOOP_HUP | LOOP_ERR)))
		on_writable(c);
	/* io may be gone now: compare against the current handle only. */
	if (io == c->in_io && client_can_read(c) && !c->eof &&
	    (revents & (LOOP_READ | LOOP_HUP | LOOP_ERR)))
		on_readable(c);
}

/* Reads an fd epoll refuses (regular file, /dev/null): one read per loop
 * iteration until EOF, like a level-triggered fd that is always ready
 * (every millisecond while the session does not read). */
static void line_poll_cb(struct loop_timer *t, void *arg)
{
	struct client *c = arg;
	bool idle = !client_can_read(c) || c->eof;

	c->polling = true;
	if (!idle)
		on_readable(c);
	c->polling = false;
	if (c->state == CLIENT_OPEN)
		loop_timer_rearm(t, idle ? 1 : 0);
	else
		c->poll_timer = NULL;
}

/* ---- life cycle ---- */

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
static int line_watch(struct client *c)
{
	struct loop *l = c->srv->l;

	c->in_io = loop_io_add(l, c->in_fd, LOOP_READ, line_io_cb, c);
	if (!c->in_io) {
		if (errno != EPERM)
			return -errno;
		c->poll_timer = loop_timer_add(l, 0, line_poll_cb, c);
	}
	if (c->out_fd == c->in_fd) {
		c->out_io = c->in_io;
		return 0;
	}
	c->out_io = loop_io_add(l, c->out_fd, 0, line_io_cb, c);
	if (!c->out_io && errno != EPERM) {
		int r = -errno;

		client_line_stop(c);
		return r;
	}
	return 0;
}

void client_line_release(struct client *c)
{
	loop_timer_cancel(c->flush_timer); /* client_line_stop ran: NULL */
	c->flush_timer = NULL;
	if (c->own_fd) {
		safe_close(c->in_fd);
	} else {
		fd_restore_flags(c->in_fd, c->in_flags);
		if (c->out_fd != c->in_fd)
			fd_restore_flags(c->out_fd, c->out_flags);
	}
	client_unhold(c, c->lb_held);
	c->lb_held = 0;
	linebuf_free(&c->lb);
	wqueue_free(&c->wq);
}

int client_line_new(struct client_srv *s, int in_fd, int out_fd, bool own_fd)
{
	struct client *c = client_new_common(s, CLIENT_KIND_LINE);
	int r;

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
		r = line_watch(c);
	if (r < 0) {
		client_line_release(c);
		client_free_mem(c);
		return r;
	}
	client_link(c);
	return 0;
}
