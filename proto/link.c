/* link.c - see link.h. */
#include "link.h"

#include <errno.h>
#include <nng/protocol/pair1/pair.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>
#include <string.h>

#include "loop.h"
#include "util.h"

int link_errno(int e)
{
	switch (e) {
	case 0: return 0;
	case NNG_EAGAIN: return -EAGAIN;
	case NNG_ENOMEM: return -ENOMEM;
	case NNG_EINVAL: return -EINVAL;
	case NNG_ECLOSED: return -EPIPE;
	case NNG_ECONNREFUSED: return -ECONNREFUSED;
	case NNG_EADDRINUSE: return -EADDRINUSE;
	case NNG_EADDRINVAL: return -EADDRNOTAVAIL;
	case NNG_ENOTSUP: return -ENOTSUP;
	case NNG_EPERM: return -EPERM;
	case NNG_ETIMEDOUT: return -ETIMEDOUT;
	case NNG_EMSGSIZE: return -EMSGSIZE;
	default: return -EIO;
	}
}

static void recv_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct link *lk = arg;
	nng_msg *msg;

	/* The fd only signals readiness; drain what nng holds now. A bounded
	 * batch keeps one busy peer from starving the rest of the loop. */
	for (int i = 0; i < 256; i++) {
		int r = nng_recvmsg(lk->sock, &msg, NNG_FLAG_NONBLOCK);

		if (r != 0)
			return;
		lk->frames_in++;
		lk->frame_cb(lk, nng_pipe_id(nng_msg_get_pipe(msg)), nng_msg_body(msg),
			     nng_msg_len(msg), lk->arg);
		nng_msg_free(msg);
		if (!lk->recv_io) /* frame_cb closed the link */
			return;
	}
}

int link_open(struct link *lk, struct loop *loop, link_frame_cb cb, void *arg)
{
	int fd, r;

	memset(lk, 0, sizeof(*lk));
	lk->loop = loop;
	lk->frame_cb = cb;
	lk->arg = arg;
	lk->send_fd = -1;
	/* Mono pair1: nng keeps one peer per socket. (Polyamorous mode would
	 * let us choose, but in nng 1.5.2 its sends drop frames silently when
	 * a pipe's queue is full.) */
	r = nng_pair1_open(&lk->sock);
	if (r != 0)
		return link_errno(r);
	r = nng_socket_set_size(lk->sock, NNG_OPT_RECVMAXSZ, PROTO_MAX_FRAME);
	if (r == 0)
		r = nng_socket_set_int(lk->sock, NNG_OPT_SENDBUF, LINK_NNG_SENDBUF);
	if (r == 0)
		r = nng_socket_set_int(lk->sock, NNG_OPT_RECVBUF, LINK_NNG_SENDBUF);
	if (r == 0)
		r = nng_socket_get_int(lk->sock, NNG_OPT_RECVFD, &fd);
	if (r == 0)
		r = nng_socket_get_int(lk->sock, NNG_OPT_SENDFD, &lk->send_fd);
	if (r != 0) {
		nng_close(lk->sock);
		return link_errno(r);
	}
	lk->recv_io = loop_io_add(loop, fd, LOOP_READ, recv_cb, lk);
	return 0;
}

void link_discard_queue(struct link *lk)
{
	while (lk->q_len) {
		nng_msg_free(lk->queue[lk->q_head]);
		lk->q_head = (lk->q_head + 1) % lk->q_cap;
		lk->q_len--;
	}
	lk->q_bytes = 0;
	if (lk->send_io) {
		loop_io_del(lk->send_io);
		lk->send_io = NULL;
	}
}

/* nng 1.5.2 (Debian 12) can deadlock inside nng_close now and then (fixed
 * upstream after 1.5.2). A daemon must not hang on its way out, so the
 * close runs in a helper thread and we wait a bounded time for it. */
#define LINK_CLOSE_TIMEOUT_MS 2000
static bool close_stuck;

struct closer {
	nng_socket sock;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	int refs; /* the thread and the waiter: the last one frees */
};

static void closer_put(struct closer *c)
{
	bool last;

	pthread_mutex_lock(&c->mu);
	last = --c->refs == 0;
	pthread_mutex_unlock(&c->mu);
	if (last) {
		pthread_mutex_destroy(&c->mu);
		pthread_cond_destroy(&c->cv);
		free(c);
	}
}

static void *closer_main(void *arg)
{
	struct closer *c = arg;

	nng_close(c->sock);
	pthread_mutex_lock(&c->mu);
	c->done = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	closer_put(c);
	return NULL;
}

int link_close_socket(nng_socket sock)
{
	struct closer *c = xcalloc(1, sizeof(*c));
	struct timespec deadline;
	pthread_t th;
	bool done;

	c->sock = sock;
	c->refs = 2;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	if (pthread_create(&th, NULL, closer_main, c) != 0) {
		c->refs = 1;
		closer_put(c);
		nng_close(sock);
		return 0;
	}
	pthread_detach(th);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += LINK_CLOSE_TIMEOUT_MS / 1000;
	pthread_mutex_lock(&c->mu);
	while (!c->done && pthread_cond_timedwait(&c->cv, &c->mu, &deadline) == 0)
		;
	done = c->done;
	pthread_mutex_unlock(&c->mu);
	closer_put(c);
	if (!done)
		close_stuck = true;
	return done ? 0 : -ETIMEDOUT;
}

bool link_close_stuck(void) { return close_stuck; }

int link_close(struct link *lk)
{
	int r;

	if (!lk->loop)
		return 0;
	link_discard_queue(lk);
	free(lk->queue);
	lk->queue = NULL;
	if (lk->recv_io) {
		loop_io_del(lk->recv_io);
		lk->recv_io = NULL;
	}
	r = link_close_socket(lk->sock);
	lk->loop = NULL;
	return r;
}

void link_close_pipe(struct link *lk, uint32_t pipe)
{
	nng_pipe p = NNG_PIPE_INITIALIZER;

	(void)lk;
	p.id = pipe;
	nng_pipe_close(p);
}

static void flush_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct link *lk = arg;

	while (lk->q_len) {
		nng_msg *m = lk->queue[lk->q_head];
		size_t len = nng_msg_len(m);

		if (nng_sendmsg(lk->sock, m, NNG_FLAG_NONBLOCK) != 0)
			return; /* still full; the fd will signal again */
		lk->frames_out++;
		lk->q_bytes -= len;
		lk->q_head = (lk->q_head + 1) % lk->q_cap;
		lk->q_len--;
	}
	loop_io_del(lk->send_io);
	lk->send_io = NULL;
}

static int enqueue(struct link *lk, nng_msg *m)
{
	size_t len = nng_msg_len(m);

	if (lk->q_bytes + len > LINK_MAX_QUEUED)
		return -ENOBUFS;
	if (lk->q_len == lk->q_cap) {
		size_t ncap = lk->q_cap ? lk->q_cap * 2 : 64;
		nng_msg **nq = xcalloc(ncap, sizeof(*nq));

		for (size_t i = 0; i < lk->q_len; i++)
			nq[i] = lk->queue[(lk->q_head + i) % lk->q_cap];
		free(lk->queue);
		lk->queue = nq;
		lk->q_head = 0;
		lk->q_cap = ncap;
	}
	lk->queue[(lk->q_head + lk->q_len) % lk->q_cap] = m;
	lk->q_len++;
	lk->q_bytes += len;
	if (!lk->send_io)
		lk->send_io = loop_io_add(lk->loop, lk->send_fd, LOOP_READ, flush_cb, lk);
	return 0;
}

/* Frames keep their order: once something waits, new frames queue too. */
static int send_msg(struct link *lk, nng_msg *m)
{
	int r;

	if (lk->target_pipe) {
		nng_pipe p = NNG_PIPE_INITIALIZER;

		p.id = lk->target_pipe;
		nng_msg_set_pipe(m, p);
	}
	if (lk->q_len == 0) {
		r = nng_sendmsg(lk->sock, m, NNG_FLAG_NONBLOCK);
		if (r == 0) {
			lk->frames_out++;
			return 0;
		}
		if (r != NNG_EAGAIN) {
			nng_msg_free(m);
			return link_errno(r);
		}
	}
	r = enqueue(lk, m);
	if (r < 0)
		nng_msg_free(m);
	return r;
}

static int msg_write(void *ctx, const void *data, size_t len)
{
	return nng_msg_append(ctx, data, len) == 0 ? 0 : -ENOMEM;
}

static size_t body_hint(uint16_t type, const void *body)
{
	/* Reserve once for the frames that carry a large payload. */
	if (type == PROTO_MCP_OUTPUT || type == PROTO_MCP_SEND)
		return ((const struct proto_mcp_output_body *)body)->data.len + 64u;
	return 256;
}

int link_send(struct link *lk, uint16_t type, uint8_t kind, uint32_t id, const void *body)
{
	nng_msg *m;
	int r;

	if (nng_msg_alloc(&m, 0) != 0)
		return -ENOMEM;
	if (kind == PROTO_EVENT)
		nng_msg_reserve(m, body_hint(type, body));
	r = proto_encode(msg_write, m, type, kind, id, body);
	if (r < 0) {
		nng_msg_free(m);
		return r;
	}
	return send_msg(lk, m);
}

int link_send_error(struct link *lk, uint16_t type, uint32_t id, int32_t status, const char *msg)
{
	nng_msg *m;
	int r;

	if (nng_msg_alloc(&m, 0) != 0)
		return -ENOMEM;
	r = proto_encode_error(msg_write, m, type, id, status, msg);
	if (r < 0) {
		nng_msg_free(m);
		return r;
	}
	return send_msg(lk, m);
}
