/* link.c - see link.h.
 *
 * It stays one file (~1,000 lines): both kinds of connection share the
 * framing, sealing, session numbering, send queue and lifetime rules, and
 * the two I/O drivers (a socket the loop reads and writes, an nng stream
 * with its aios) differ only in who completes a read or a write. Apart,
 * they would need every field of struct link in a shared header. */
#include "link.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/transport/ipc/ipc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "handshake.h"
#include "linkurl.h"
#include "loop.h"
#include "lsess.h"
#include "metrics_tandem.h"
#include "seal.h"
#include "util.h"

#define RBUF_RAW (PROTO_MAX_HANDSHAKE_FRAME + 64u) /* before the handshake ends */
#define RBUF_FRAMED (64u * 1024u)                   /* after: many frames per read */
#define RBUF_MIN_READ 4096u                         /* never read less */
#define WBUF_KEEP (1024u * 1024u) /* a send buffer larger than this is freed when idle */
#define ACK_DELAY_MS 20u   /* a pure ack when nothing else carried ours this long */
#define ACK_EVERY 256u     /* ... or at once after this many frames unacked */

struct link {
	struct loop *loop;
	/* a socket of ours (fd >= 0), driven by io on the loop thread ... */
	int fd;
	struct loop_io *io;
	uint32_t io_events;
	bool want_write;      /* the kernel took part of inflight: wait for room */
	struct loop_timer *err_timer; /* reports a failed write outside the caller */
	/* ... or an nng stream with its two aios */
	nng_stream *stream;
	nng_aio *rx_aio, *tx_aio;
	const struct link_ops *ops;
	void *arg;
	bool dead;       /* link_free'd: posted completions are ignored */
	/* What nng threads see: once closing, callbacks post nothing; posts
	 * counts completions queued on the loop, so that link_free can free
	 * at once when none is (a loop that never runs again, at shutdown,
	 * must not hold the last reference). */
	atomic_bool closing;
	atomic_uint posts;
	bool free_pending; /* freed by the last queued completion (on `zombies`) */
	bool reported;   /* closed_cb called */
	bool started;
	bool rx_off;     /* nothing more is read (fd: reported or handed over) */
	/* receiving (loop thread; the part past rlen belongs to the rx aio
	 * while a receive is in flight) */
	uint8_t *rbuf;
	size_t rlen, rcap;
	size_t want_cap;  /* grow to this at the next rx_arm */
	bool rx_busy;     /* a receive is in flight: rbuf must not move */
	bool framed;
	size_t max_wire; /* bound on a frame's declared length */
	struct seal rx_seal;
	uint64_t last_rx_ms;
	uint64_t frames_in, frames_out;
	/* sending */
	pthread_mutex_t mu;
	struct fbuf wq;       /* mu: frames queued while a send is in flight */
	struct fbuf inflight; /* the tx aio's while sending */
	size_t sent;          /* of inflight */
	bool sending;         /* mu */
	bool tx_failed;       /* mu */
	struct seal tx_seal;  /* mu (sealing happens at enqueue, in order) */
	struct loop_timer *flush_timer; /* sends what this loop turn queued */
	/* the session (lsess.h): frames numbered, kept until acked */
	struct lsess *sess;
	struct fbuf ebuf;     /* an envelope being encoded (loop thread) */
	struct loop_timer *ack_timer;
	/* link_close_flush */
	bool lingering;       /* mu */
	struct loop_timer *linger_timer;
	struct link *next_linger;
};

static struct link *lingering; /* links freeing themselves after a flush */
static struct link *zombies;   /* freed, waiting for queued completions */

static void kick_locked(struct link *lk, bool *start);
static void tx_start(struct link *lk);
static void io_update(struct link *lk);

int link_errno(int e)
{
	switch (e) {
	case 0: return 0;
	case NNG_EAGAIN: return -EAGAIN;
	case NNG_ENOMEM: return -ENOMEM;
	case NNG_EINVAL: return -EINVAL;
	case NNG_ECLOSED: return -EPIPE;
	case NNG_ECONNREFUSED: return -ECONNREFUSED;
	case NNG_ECONNRESET: return -ECONNRESET;
	case NNG_ECONNSHUT: return -ECONNRESET;
	case NNG_ECONNABORTED: return -ECONNABORTED;
	case NNG_EADDRINUSE: return -EADDRINUSE;
	case NNG_EADDRINVAL: return -EADDRNOTAVAIL;
	case NNG_EUNREACHABLE: return -EHOSTUNREACH;
	case NNG_ENOTSUP: return -ENOTSUP;
	case NNG_EPERM: return -EPERM;
	case NNG_ETIMEDOUT: return -ETIMEDOUT;
	case NNG_EMSGSIZE: return -EMSGSIZE;
	case NNG_ECANCELED: return -ECANCELED;
	case NNG_EPEERAUTH: return -EACCES;
	case NNG_ECRYPTO: return -EPROTO;
	case NNG_EPROTO: return -EPROTO;
	case NNG_ENOENT: return -ENOENT;
	/* nng folds EMFILE and ENFILE into one code: out of descriptors is
	 * reported as that, not as an I/O error (common/fdlimit.h). */
	case NNG_ENOFILES: return -EMFILE;
	default:
		/* nng's system errors carry the errno (nng_strerror says it) */
		return (e & NNG_ESYSERR) ? -(e & ~NNG_ESYSERR) : -EIO;
	}
}

/* ---- lifecycle ------------------------------------------------------------ */

static void report(struct link *lk, const char *why)
{
	if (lk->reported || lk->dead)
		return;
	lk->reported = true;
	lk->rx_off = true; /* a closed socket stays readable: never spin on it */
	io_update(lk);
	if (lk->ops->closed_cb)
		lk->ops->closed_cb(lk, why, lk->arg);
}

static void unlist(struct link **head, struct link *lk)
{
	for (struct link **pp = head; *pp; pp = &(*pp)->next_linger) {
		if (*pp == lk) {
			*pp = lk->next_linger;
			return;
		}
	}
}

static void really_free(struct link *lk)
{
	if (lk->free_pending)
		unlist(&zombies, lk);
	seal_wipe(&lk->rx_seal);
	seal_wipe(&lk->tx_seal);
	fbuf_free(&lk->wq);
	fbuf_free(&lk->inflight);
	fbuf_free(&lk->ebuf);
	free(lk->rbuf);
	pthread_mutex_destroy(&lk->mu);
	free(lk);
}

static void linger_unlist(struct link *lk)
{
	unlist(&lingering, lk);
}

struct link *link_free(struct link *lk)
{
	if (!lk || lk->dead)
		return NULL;
	lk->dead = true;
	atomic_store(&lk->closing, true);
	loop_timer_cancel(lk->linger_timer);
	lk->linger_timer = NULL;
	loop_timer_cancel(lk->flush_timer);
	lk->flush_timer = NULL;
	loop_timer_cancel(lk->ack_timer);
	lk->ack_timer = NULL;
	loop_timer_cancel(lk->err_timer);
	lk->err_timer = NULL;
	lk->sess = NULL;
	linger_unlist(lk);
	if (lk->fd >= 0) {
		loop_io_del(lk->io);
		lk->io = NULL;
		close(lk->fd);
		lk->fd = -1;
	} else {
		/* Closing completes what is in flight (NNG_ECLOSED); stopping
		 * waits for those callbacks. Only then may the stream go. */
		nng_stream_close(lk->stream);
		nng_aio_stop(lk->rx_aio);
		nng_aio_stop(lk->tx_aio);
		nng_stream_free(lk->stream);
		nng_aio_free(lk->rx_aio);
		nng_aio_free(lk->tx_aio);
	}
	/* Completions queued before the stop (or running now: this may be
	 * called from one, or from a socket link's own I/O callback) still
	 * name lk: the last of them frees it. */
	if (atomic_load(&lk->posts) == 0) {
		really_free(lk);
	} else {
		lk->free_pending = true;
		lk->next_linger = zombies; /* off `lingering` above: the link is reused */
		zombies = lk;
	}
	return NULL;
}

/* nng thread: queue cb(lk) on the loop, unless the link is closing. */
static void post(struct link *lk, loop_post_cb cb)
{
	if (atomic_load(&lk->closing))
		return;
	atomic_fetch_add(&lk->posts, 1);
	if (loop_post(lk->loop, cb, lk) < 0)
		atomic_fetch_sub(&lk->posts, 1); /* the loop is going away */
}

/* Last thing in every posted callback (which counts as a reference while
 * it runs, so that a link_free from inside it leaves the memory alone). */
static void post_done(struct link *lk)
{
	if (atomic_fetch_sub(&lk->posts, 1) == 1 && lk->free_pending)
		really_free(lk);
}

static void linger_done(struct link *lk)
{
	link_free(lk);
}

static void linger_timer_cb(struct loop_timer *t, void *arg)
{
	struct link *lk = arg;

	lk->linger_timer = NULL;
	linger_done(lk);
}

static void drained_post_cb(void *arg)
{
	struct link *lk = arg;

	if (!lk->dead)
		linger_done(lk);
	post_done(lk);
}

void link_close_flush(struct link *lk, unsigned timeout_ms)
{
	bool idle, start = false;

	if (!lk || lk->dead)
		return;
	lk->reported = true; /* the owner is gone: no callbacks */
	lk->rx_off = true;   /* ... and nothing more is read */
	io_update(lk);
	loop_timer_cancel(lk->flush_timer); /* what this turn queued goes now */
	lk->flush_timer = NULL;
	/* ... and so may its session be (env_link_stop frees it right after):
	 * what is queued is encoded already; no ack is due any more. */
	loop_timer_cancel(lk->ack_timer);
	lk->ack_timer = NULL;
	lk->sess = NULL;
	pthread_mutex_lock(&lk->mu);
	lk->lingering = true;
	if (!lk->tx_failed)
		kick_locked(lk, &start);
	idle = !lk->sending || lk->tx_failed;
	pthread_mutex_unlock(&lk->mu);
	if (start)
		tx_start(lk);
	if (!idle) { /* a socket link may have written it all just now */
		pthread_mutex_lock(&lk->mu);
		idle = !lk->sending || lk->tx_failed;
		pthread_mutex_unlock(&lk->mu);
	}
	if (idle) {
		link_free(lk);
		return;
	}
	lk->next_linger = lingering;
	lingering = lk;
	lk->linger_timer = loop_timer_add(lk->loop, timeout_ms, linger_timer_cb, lk);
}

size_t link_lingering(void)
{
	size_t n = 0;

	for (struct link *lk = lingering; lk; lk = lk->next_linger)
		n++;
	return n;
}

void link_flush_all(void)
{
	while (lingering)
		link_free(lingering);
	/* The loop will not run their queued completions any more. */
	while (zombies)
		really_free(zombies);
	link_ep_reap_all();
}

/* ---- receiving ------------------------------------------------------------ */

static void rx_post_cb(void *arg);

/* nng thread: only hand over (a failed post means the loop is going). */
static void rx_aio_cb(void *arg)
{
	struct link *lk = arg;

	post(lk, rx_post_cb);
}

/* Room for the next read: at least RBUF_MIN_READ bytes past rlen. */
static void rx_room(struct link *lk)
{
	if (lk->want_cap > lk->rcap) {
		lk->rbuf = xrealloc(lk->rbuf, lk->want_cap);
		lk->rcap = lk->want_cap;
	}
	if (lk->rcap - lk->rlen < RBUF_MIN_READ) {
		lk->rcap = lk->rlen + RBUF_MIN_READ;
		lk->rbuf = xrealloc(lk->rbuf, lk->rcap);
	}
}

static void rx_arm(struct link *lk)
{
	nng_iov iov;

	if (lk->fd >= 0) /* a socket link reads when the loop says it can */
		return;
	rx_room(lk);
	lk->rx_busy = true;
	iov.iov_buf = lk->rbuf + lk->rlen;
	iov.iov_len = lk->rcap - lk->rlen;
	nng_aio_set_iov(lk->rx_aio, 1, &iov);
	nng_stream_recv(lk->stream, lk->rx_aio);
}

/* Makes room for a frame of `need` bytes (bounded by max_wire). */
static void rx_reserve(struct link *lk, size_t need)
{
	if (need > lk->rcap) {
		lk->rbuf = xrealloc(lk->rbuf, need);
		lk->rcap = need;
	}
}

static void fail(struct link *lk, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct link *lk, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	report(lk, why);
}

static void ack_timer_cb(struct loop_timer *t, void *arg);

/* A session frame's header: the ack it carries, then whether its envelope
 * is to be delivered (false: a pure ack, a duplicate, or a failure that
 * was reported). */
static bool rx_session(struct link *lk, const uint8_t **payload, size_t *plen)
{
	uint64_t seq, ack;
	int r;

	if (lsess_hdr_parse(*payload, *plen, &seq, &ack) < 0) {
		fail(lk, "malformed session header (%zu bytes)", *plen);
		return false;
	}
	if (lsess_ack(lk->sess, ack) < 0) {
		fail(lk, "the peer acknowledges frame %llu; %llu were sent", (unsigned long long)ack,
		     (unsigned long long)lk->sess->tx_seq);
		return false;
	}
	r = lsess_rx(lk->sess, seq);
	if (r < 0) {
		fail(lk, "frame %llu of the session arrived after %llu: frames were lost",
		     (unsigned long long)seq, (unsigned long long)lk->sess->rx_seq);
		return false;
	}
	if (r != LSESS_DELIVER)
		return false;
	if (lk->sess->rx_seq - lk->sess->rx_told >= ACK_EVERY)
		link_send_ack(lk);
	else if (!lk->ack_timer)
		lk->ack_timer = loop_timer_add(lk->loop, ACK_DELAY_MS, ack_timer_cb, lk);
	*payload += LSESS_HDR;
	*plen -= LSESS_HDR;
	return true;
}

/* One frame at rbuf[off]; returns bytes used, 0 when incomplete (the
 * buffer is sized for it), or -1 after a failure was reported. */
static ssize_t rx_one_frame(struct link *lk, size_t off)
{
	const uint8_t *payload;
	size_t plen, need;
	int r = frame_parse(lk->rbuf + off, lk->rlen - off, lk->max_wire, &payload, &plen, &need);

	if (r == -EAGAIN) {
		if (need > lk->rcap - off) {
			memmove(lk->rbuf, lk->rbuf + off, lk->rlen - off);
			lk->rlen -= off;
			rx_reserve(lk, need);
			return -2; /* buffer moved: caller restarts at 0 */
		}
		return 0;
	}
	if (r == -E2BIG) {
		fail(lk, "frame of %u bytes declared, over the limit of %zu",
		     frame_get_len(lk->rbuf + off), lk->max_wire);
		return -1;
	}
	if (r < 0) {
		fail(lk, "frame of length 0");
		return -1;
	}
	if (lk->rx_seal.on &&
	    seal_open(&lk->rx_seal, lk->rbuf + off, (uint8_t *)payload, plen, &plen) < 0) {
		fail(lk, "sealed frame %llu does not authenticate (tampered, replayed, reordered "
			 "or truncated)", (unsigned long long)lk->rx_seal.counter);
		return -1;
	}
	lk->frames_in++;
	metrics_link_frame(false, plen);
	if (lk->sess && !rx_session(lk, &payload, &plen))
		return lk->reported ? -1 : (ssize_t)(FRAME_HDR + frame_get_len(lk->rbuf + off));
	lk->ops->frame_cb(lk, payload, plen, lk->arg);
	return (ssize_t)(FRAME_HDR + frame_get_len(lk->rbuf + off));
}

/* Consumes what rbuf holds; false when the link ended meanwhile. */
static bool rx_process(struct link *lk)
{
	size_t off = 0;

	while (!lk->dead && !lk->reported && off < lk->rlen) {
		ssize_t n;

		if (!lk->framed) {
			n = (ssize_t)lk->ops->raw_cb(lk, lk->rbuf + off, lk->rlen - off, lk->arg);
			if (n == 0 && !lk->framed)
				break;
		} else {
			n = rx_one_frame(lk, off);
			if (n == -2) {
				off = 0;
				continue;
			}
			if (n <= 0)
				break;
		}
		off += (size_t)n;
	}
	if (lk->dead || lk->reported)
		return false;
	memmove(lk->rbuf, lk->rbuf + off, lk->rlen - off);
	lk->rlen -= off;
	return true;
}

/* The connection ended (eof) or failed (what says how). */
static void rx_ended(struct link *lk, bool eof, const char *what)
{
	if (lk->rlen)
		fail(lk, "the connection closed mid-frame (%zu bytes of a frame received): %s",
		     lk->rlen, what);
	else if (eof)
		fail(lk, "the peer closed the connection");
	else
		fail(lk, "receive failed: %s", what);
}

/* n bytes arrived at rbuf + rlen; false when the link ended meanwhile. */
static bool rx_got(struct link *lk, size_t n)
{
	lk->rlen += n;
	lk->last_rx_ms = loop_now_ms(lk->loop);
	return rx_process(lk);
}

static void rx_done(struct link *lk)
{
	int r;

	lk->rx_busy = false;
	r = nng_aio_result(lk->rx_aio);
	if (r != 0) {
		rx_ended(lk, r == NNG_ECONNSHUT || r == NNG_ECLOSED, nng_strerror(r));
		return;
	}
	if (rx_got(lk, nng_aio_count(lk->rx_aio)))
		rx_arm(lk);
}

/* A socket link is readable: one read per wake-up (the loop is level
 * triggered, and other sources get their turn in between). */
static void fd_rx(struct link *lk)
{
	ssize_t n;

	rx_room(lk);
	n = read(lk->fd, lk->rbuf + lk->rlen, lk->rcap - lk->rlen);
	if (n > 0)
		rx_got(lk, (size_t)n);
	else if (n == 0)
		rx_ended(lk, true, "end of stream");
	else if (errno != EAGAIN && errno != EINTR)
		rx_ended(lk, false, strerror(errno));
}

static void rx_post_cb(void *arg)
{
	struct link *lk = arg;

	if (!lk->dead)
		rx_done(lk);
	post_done(lk);
}

void link_rebind(struct link *lk, const struct link_ops *ops, void *arg)
{
	lk->ops = ops;
	lk->arg = arg;
}

void link_set_framed(struct link *lk, size_t max_payload)
{
	lk->framed = true;
	lk->max_wire = max_payload + LSESS_HDR + SEAL_TAG_LEN;
	/* Not now: a receive in flight may be writing into rbuf. */
	lk->want_cap = MAX(lk->want_cap, RBUF_FRAMED);
}

/* ---- sending -------------------------------------------------------------- */

static void tx_err_post_cb(void *arg)
{
	struct link *lk = arg;

	if (!lk->dead)
		fail(lk, "send failed: the connection is gone");
	post_done(lk);
}

static void fd_tx(struct link *lk);

static void tx_start(struct link *lk)
{
	nng_iov iov = { .iov_buf = lk->inflight.p + lk->sent, .iov_len = lk->inflight.len - lk->sent };

	if (lk->fd >= 0) {
		fd_tx(lk);
		return;
	}
	nng_aio_set_iov(lk->tx_aio, 1, &iov);
	nng_stream_send(lk->stream, lk->tx_aio);
}

/* n more bytes of inflight left: when all did, whatever was queued
 * meanwhile becomes the next buffer. Says whether there is more to send;
 * returns whether a link_close_flush is done; mu held. */
static bool tx_advance_locked(struct link *lk, size_t n, bool *more)
{
	lk->sent += n;
	if (lk->sent < lk->inflight.len) {
		*more = true;
		return false;
	}
	{
		struct fbuf t = lk->inflight;

		t.len = 0;
		if (t.cap > WBUF_KEEP) {
			free(t.p);
			memset(&t, 0, sizeof(t));
		}
		lk->inflight = lk->wq;
		lk->wq = t;
	}
	lk->sent = 0;
	*more = lk->inflight.len > 0;
	lk->sending = *more;
	return !*more && lk->lingering;
}

/* A send failed; says whether a link_close_flush is done; mu held. */
static bool tx_failed_locked(struct link *lk)
{
	lk->tx_failed = true;
	lk->sending = false;
	return lk->lingering;
}

/* nng thread. A send may complete after part of the buffer: go on with the
 * rest; then with whatever was queued meanwhile, as one buffer. */
static void tx_aio_cb(void *arg)
{
	struct link *lk = arg;
	bool more = false, drained = false;
	int r = nng_aio_result(lk->tx_aio);

	pthread_mutex_lock(&lk->mu);
	if (r != 0) {
		drained = tx_failed_locked(lk);
		pthread_mutex_unlock(&lk->mu);
		post(lk, drained ? drained_post_cb : tx_err_post_cb);
		return;
	}
	drained = tx_advance_locked(lk, nng_aio_count(lk->tx_aio), &more);
	pthread_mutex_unlock(&lk->mu);
	if (more)
		tx_start(lk);
	else if (drained)
		post(lk, drained_post_cb);
}

static void err_timer_cb(struct loop_timer *t, void *arg)
{
	struct link *lk = arg;

	lk->err_timer = NULL;
	fail(lk, "send failed: the connection is gone");
}

/* A socket link writes what it can now; the rest when the kernel has room
 * (want_write). On the loop thread, from link_send_raw, the flush timer,
 * link_close_flush or the socket's I/O callback: it never calls the owner
 * (a failure is reported from a zero timer) and never frees the link (the
 * I/O callback finishes a link_close_flush). */
static void fd_tx(struct link *lk)
{
	bool more = true, failed = false;

	pthread_mutex_lock(&lk->mu);
	while (more && !lk->tx_failed) {
		ssize_t n = send(lk->fd, lk->inflight.p + lk->sent, lk->inflight.len - lk->sent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n >= 0) {
			(void)tx_advance_locked(lk, (size_t)n, &more); /* io_cb ends a flush */
		} else if (errno == EAGAIN) {
			break;
		} else if (errno != EINTR) {
			tx_failed_locked(lk);
			failed = !lk->lingering;
		}
	}
	lk->want_write = lk->sending && !lk->tx_failed;
	pthread_mutex_unlock(&lk->mu);
	io_update(lk);
	if (failed && !lk->err_timer)
		lk->err_timer = loop_timer_add(lk->loop, 0, err_timer_cb, lk);
}

/* The loop's callback for a socket link. It holds a reference (like a
 * posted completion) so that an owner freeing the link from a callback
 * below leaves the memory alone until it returns. */
static void io_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct link *lk = arg;
	bool done;

	(void)io;
	(void)fd;
	atomic_fetch_add(&lk->posts, 1);
	if ((revents & (LOOP_WRITE | LOOP_ERR | LOOP_HUP)) && lk->want_write) {
		fd_tx(lk);
		pthread_mutex_lock(&lk->mu);
		done = lk->lingering && (!lk->sending || lk->tx_failed);
		pthread_mutex_unlock(&lk->mu);
		if (done)
			linger_done(lk);
	}
	if (!lk->dead && !lk->rx_off && (revents & (LOOP_READ | LOOP_ERR | LOOP_HUP)))
		fd_rx(lk);
	post_done(lk);
}

/* What a socket link waits for: to read (once started, until it ended),
 * to write (while the kernel had no room). No interest, no registration:
 * a socket whose peer has gone reports HUP whatever it was asked for. */
static void io_update(struct link *lk)
{
	uint32_t ev = 0;

	if (lk->fd < 0 || lk->dead)
		return;
	if (lk->started && !lk->rx_off)
		ev |= LOOP_READ;
	if (lk->want_write)
		ev |= LOOP_WRITE;
	if (lk->io && ev == lk->io_events)
		return;
	if (ev == 0) {
		loop_io_del(lk->io);
		lk->io = NULL;
	} else if (!lk->io) {
		lk->io = loop_io_add(lk->loop, lk->fd, ev, io_cb, lk);
		if (!lk->io && !lk->err_timer) /* out of memory: end it, outside the caller */
			lk->err_timer = loop_timer_add(lk->loop, 0, err_timer_cb, lk);
	} else if (loop_io_mod(lk->io, ev) < 0 && !lk->err_timer) {
		lk->err_timer = loop_timer_add(lk->loop, 0, err_timer_cb, lk);
	}
	lk->io_events = lk->io ? ev : 0;
}

/* Called with mu held after something was appended to wq. */
static void kick_locked(struct link *lk, bool *start)
{
	*start = false;
	if (lk->sending || lk->wq.len == 0)
		return;
	{
		struct fbuf t = lk->inflight;

		lk->inflight = lk->wq;
		lk->wq = t;
		lk->wq.len = 0;
	}
	lk->sent = 0;
	lk->sending = true;
	*start = true;
}

int link_send_raw(struct link *lk, const void *data, size_t len)
{
	bool start;

	pthread_mutex_lock(&lk->mu);
	if (lk->tx_failed || lk->dead) {
		pthread_mutex_unlock(&lk->mu);
		return -EPIPE;
	}
	if (lk->wq.len + len > LINK_MAX_QUEUED) {
		pthread_mutex_unlock(&lk->mu);
		return -ENOBUFS;
	}
	fbuf_append(&lk->wq, data, len);
	kick_locked(lk, &start);
	pthread_mutex_unlock(&lk->mu);
	if (start)
		tx_start(lk);
	return 0;
}

/* Ends the frame of plen payload bytes queued at wq[start]: sealed (its
 * tag appended) or given its length prefix, and counted; on failure it
 * leaves the queue as it was. mu held. */
static int close_frame_locked(struct link *lk, size_t start, size_t plen)
{
	if (lk->tx_seal.on) {
		int r;

		fbuf_reserve(&lk->wq, SEAL_TAG_LEN);
		r = seal_frame(&lk->tx_seal, lk->wq.p + start, plen);
		if (r < 0) {
			lk->wq.len = start;
			return r;
		}
		lk->wq.len += SEAL_TAG_LEN;
	} else {
		frame_put_len(lk->wq.p + start, (uint32_t)plen);
	}
	lk->frames_out++;
	return 0;
}

/* Frames (and seals) one session frame at the end of wq: the header with
 * seq and our ack, then env (len bytes, NULL for a pure ack); mu held. */
static int put_session_locked(struct link *lk, uint64_t seq, const uint8_t *env, size_t len)
{
	size_t start = lk->wq.len, plen = LSESS_HDR + len;

	if (lk->wq.len + FRAME_HDR + plen + SEAL_TAG_LEN > LINK_MAX_QUEUED)
		return -ENOBUFS;
	fbuf_reserve(&lk->wq, FRAME_HDR + plen + SEAL_TAG_LEN);
	lsess_hdr_put(lk->wq.p + start + FRAME_HDR, seq, lk->sess->rx_seq);
	if (len)
		memcpy(lk->wq.p + start + FRAME_HDR + LSESS_HDR, env, len);
	lk->wq.len += FRAME_HDR + plen;
	lk->sess->rx_told = lk->sess->rx_seq;
	return close_frame_locked(lk, start, plen);
}

static int encode_env(struct fbuf *b, uint16_t type, uint8_t kind, uint32_t id, const void *body,
		      int32_t status, const char *msg)
{
	int r;

	b->len = 0;
	r = status ? proto_encode_error(fbuf_write, b, type, id, status, msg)
		   : proto_encode(fbuf_write, b, type, kind, id, body);
	if (r == 0 && b->len > PROTO_MAX_FRAME)
		r = -EMSGSIZE;
	return r;
}

int link_session_queue(struct lsess *s, uint16_t type, uint8_t kind, uint32_t id,
		       const void *body, int32_t status, const char *msg)
{
	struct fbuf b = { 0 };
	int r = encode_env(&b, type, kind, id, body, status, msg);

	if (r == 0)
		lsess_push(s, b.p, b.len);
	fbuf_free(&b);
	return r;
}

/* A session link: encoded, kept in the session (so it survives this
 * connection), then framed; mu held. */
static int put_numbered_locked(struct link *lk, uint16_t type, uint8_t kind, uint32_t id,
			       const void *body, int32_t status, const char *msg)
{
	const struct lsess_entry *e;
	int r = encode_env(&lk->ebuf, type, kind, id, body, status, msg);

	if (r < 0)
		return r;
	if (lk->wq.len + FRAME_HDR + LSESS_HDR + lk->ebuf.len + SEAL_TAG_LEN > LINK_MAX_QUEUED)
		return -ENOBUFS;
	e = lsess_push(lk->sess, lk->ebuf.p, lk->ebuf.len);
	if (lk->ebuf.cap > WBUF_KEEP)
		fbuf_free(&lk->ebuf);
	return put_session_locked(lk, e->seq, e->data, e->len);
}

/* Encodes (and seals) one frame at the end of wq; mu held. */
static int put_frame_locked(struct link *lk, uint16_t type, uint8_t kind, uint32_t id,
			    const void *body, int32_t status, const char *msg)
{
	size_t start = lk->wq.len, plen;
	int r;

	fbuf_reserve(&lk->wq, FRAME_HDR + 256);
	lk->wq.len += FRAME_HDR;
	r = status ? proto_encode_error(fbuf_write, &lk->wq, type, id, status, msg)
		   : proto_encode(fbuf_write, &lk->wq, type, kind, id, body);
	plen = lk->wq.len - start - FRAME_HDR;
	if (r == 0 && plen > PROTO_MAX_FRAME)
		r = -EMSGSIZE;
	if (r == 0 && lk->wq.len + SEAL_TAG_LEN > LINK_MAX_QUEUED)
		r = -ENOBUFS;
	if (r < 0) {
		lk->wq.len = start;
		return r;
	}
	return close_frame_locked(lk, start, plen);
}

/* Runs once the loop has handled this turn's events: everything they
 * queued leaves in one send. */
static void flush_cb(struct loop_timer *t, void *arg)
{
	struct link *lk = arg;
	bool start;

	lk->flush_timer = NULL;
	pthread_mutex_lock(&lk->mu);
	kick_locked(lk, &start);
	pthread_mutex_unlock(&lk->mu);
	if (start)
		tx_start(lk);
}

static int send_frame(struct link *lk, uint16_t type, uint8_t kind, uint32_t id, const void *body,
		      int32_t status, const char *msg)
{
	bool idle = false;
	size_t queued;
	int r;

	pthread_mutex_lock(&lk->mu);
	if (lk->tx_failed || lk->dead || lk->lingering) {
		pthread_mutex_unlock(&lk->mu);
		return -EPIPE;
	}
	queued = lk->wq.len;
	if (lk->sess)
		r = put_numbered_locked(lk, type, kind, id, body, status, msg);
	else
		r = put_frame_locked(lk, type, kind, id, body, status, msg);
	idle = r == 0 && !lk->sending;
	queued = r == 0 && lk->wq.len > queued ? lk->wq.len - queued : 0;
	pthread_mutex_unlock(&lk->mu);
	if (r == 0) /* on the owner's (loop) thread, as the metrics want */
		metrics_link_frame(true, queued);
	/* A send in flight takes what was queued when it completes. Else a
	 * zero timer fires at the end of this loop turn (loop.h: after the
	 * I/O callbacks), so that many frames cost one send. */
	if (idle && !lk->flush_timer)
		lk->flush_timer = loop_timer_add(lk->loop, 0, flush_cb, lk);
	return r;
}

static void flush_soon(struct link *lk)
{
	bool busy;

	pthread_mutex_lock(&lk->mu);
	busy = lk->sending;
	pthread_mutex_unlock(&lk->mu);
	if (!busy && !lk->flush_timer)
		lk->flush_timer = loop_timer_add(lk->loop, 0, flush_cb, lk);
}

void link_send_ack(struct link *lk)
{
	int r;

	if (!lk->sess || lk->dead)
		return;
	loop_timer_cancel(lk->ack_timer);
	lk->ack_timer = NULL;
	pthread_mutex_lock(&lk->mu);
	r = lk->tx_failed || lk->lingering ? -EPIPE : put_session_locked(lk, 0, NULL, 0);
	pthread_mutex_unlock(&lk->mu);
	if (r == 0)
		flush_soon(lk);
}

static void ack_timer_cb(struct loop_timer *t, void *arg)
{
	struct link *lk = arg;

	lk->ack_timer = NULL;
	if (lk->sess && lsess_ack_due(lk->sess))
		link_send_ack(lk);
}

int link_set_session(struct link *lk, struct lsess *s)
{
	int r = 0;

	lk->sess = s;
	pthread_mutex_lock(&lk->mu);
	for (const struct lsess_entry *e = s->head; e && r == 0; e = e->next)
		r = put_session_locked(lk, e->seq, e->data, e->len);
	pthread_mutex_unlock(&lk->mu);
	flush_soon(lk);
	return r;
}

int link_send(struct link *lk, uint16_t type, uint8_t kind, uint32_t id, const void *body)
{
	return send_frame(lk, type, kind, id, body, 0, NULL);
}

int link_send_error(struct link *lk, uint16_t type, uint32_t id, int32_t status, const char *msg)
{
	if (status == 0)
		return -EINVAL;
	return send_frame(lk, type, PROTO_REPLY, id, NULL, status, msg ? msg : "");
}

int link_set_seal(struct link *lk, const struct hs_result *k)
{
	int r = seal_init(&lk->rx_seal, k->aead, k->rx_key, k->rx_prefix), t;

	pthread_mutex_lock(&lk->mu);
	t = seal_init(&lk->tx_seal, k->aead, k->tx_key, k->tx_prefix);
	pthread_mutex_unlock(&lk->mu);
	return r < 0 ? r : t;
}

bool link_sealed(const struct link *lk) { return lk->rx_seal.on; }

/* ---- the rest of the link ------------------------------------------------- */

void link_conn_close(struct link_conn c)
{
	if (c.fd >= 0)
		close(c.fd);
	if (c.stream)
		nng_stream_free(c.stream); /* closes it */
}

struct link *link_new(struct loop *loop, struct link_conn c, const struct link_ops *ops,
		      void *arg)
{
	struct link *lk = xcalloc(1, sizeof(*lk));

	lk->loop = loop;
	lk->fd = c.fd;
	lk->stream = c.fd >= 0 ? NULL : c.stream;
	lk->ops = ops;
	lk->arg = arg;
	lk->rcap = RBUF_RAW;
	lk->rbuf = xmalloc(lk->rcap);
	lk->max_wire = PROTO_MAX_HANDSHAKE_FRAME;
	lk->last_rx_ms = loop_now_ms(loop);
	pthread_mutex_init(&lk->mu, NULL);
	if (lk->fd < 0 && (nng_aio_alloc(&lk->rx_aio, rx_aio_cb, lk) != 0 ||
			   nng_aio_alloc(&lk->tx_aio, tx_aio_cb, lk) != 0))
		abort(); /* nng's allocation failed: out of memory */
	return lk;
}

void link_start(struct link *lk)
{
	if (lk->started || lk->dead)
		return;
	lk->started = true;
	if (lk->fd >= 0)
		io_update(lk);
	else
		rx_arm(lk);
}

uint64_t link_last_rx_ms(const struct link *lk) { return lk->last_rx_ms; }
uint64_t link_frames_in(const struct link *lk) { return lk->frames_in; }
uint64_t link_frames_out(const struct link *lk) { return lk->frames_out; }

/* A socket link's peer, in nng's form (what callers of link_peer_addr
 * know, whichever kind of connection it is). */
static int fd_peer_addr(int fd, nng_sockaddr *out)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	memset(out, 0, sizeof(*out));
	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;

		out->s_in.sa_family = NNG_AF_INET;
		out->s_in.sa_port = a->sin_port;
		out->s_in.sa_addr = a->sin_addr.s_addr;
	} else if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;

		out->s_in6.sa_family = NNG_AF_INET6;
		out->s_in6.sa_port = a->sin6_port;
		memcpy(out->s_in6.sa_addr, &a->sin6_addr, 16);
	} else {
		out->s_family = NNG_AF_IPC; /* a local socket: no address to tell */
	}
	return 0;
}

int link_peer_addr(const struct link *lk, nng_sockaddr *out)
{
	if (lk->fd >= 0)
		return fd_peer_addr(lk->fd, out);
	return link_errno(nng_stream_get_addr(lk->stream, NNG_OPT_REMADDR, out));
}

int link_peer_uid(const struct link *lk, uint64_t *uid)
{
	if (lk->fd >= 0) {
		struct ucred cr;
		socklen_t len = sizeof(cr);

		if (getsockopt(lk->fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
			return -errno;
		*uid = cr.uid;
		return 0;
	}
	return link_errno(nng_stream_get_uint64(lk->stream, NNG_OPT_IPC_PEER_UID, uid));
}
