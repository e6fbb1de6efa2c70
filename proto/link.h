/* link.h - one connection of the orchestrator-executor link, and the
 * listener and dialer that make them. Driven by the daemon's loop.
 *
 * Two kinds of connection carry a link (struct link_conn):
 *   - a socket of ours, for tcp://, ipc://, unix:// and abstract:// (the
 *     kernel does all the transport has to do). The loop reads and writes
 *     it directly: a frame costs one wake-up of the loop thread and no
 *     thread hand-off (link_sock.c makes these sockets);
 *   - an nng stream, for tls+tcp://, ws:// and wss:// (nng does TLS and
 *     WebSocket). It has one receive aio and one send aio for its whole
 *     life. nng completes them on its own threads; the receive completion
 *     is posted to the loop (one post per completion, however many frames
 *     it brought), and the send completion carries on with whatever was
 *     queued meanwhile, under a mutex that guards nothing but the two send
 *     buffers.
 * Everything else, and every callback below, runs on the loop thread.
 *
 * Receiving: raw mode first (the handshake's opening; raw_cb says how many
 * bytes it used), then framed mode (link_set_framed): each complete frame
 * (proto/frame.h) is opened when the link is sealed and handed to frame_cb.
 * A declared length over the bound closes the link before anything is
 * allocated for it.
 * Sending: frames are encoded (and sealed) straight into a queue that the
 * send aio takes as one buffer; over LINK_MAX_QUEUED bytes a send fails
 * with -ENOBUFS and the owner decides (the peer is not reading).
 *
 * Ownership: link_new takes the connection. The owner ends a link with
 * link_free (or hands it over with link_close_flush); closed_cb tells it
 * that the connection ended. A link is never freed by nng threads.
 */
#ifndef TANDEM_PROTO_LINK_H
#define TANDEM_PROTO_LINK_H

#include <nng/nng.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct loop;
struct hs_result;
struct lsess;

#define LINK_MAX_QUEUED (64u * 1024u * 1024u) /* bytes waiting to be sent */

struct link;

struct link_ops {
	/* Raw mode: the bytes received so far (all of them, from the first
	 * not yet used); returns how many it used. */
	size_t (*raw_cb)(struct link *lk, const uint8_t *data, size_t len, void *arg);
	/* Framed mode: one frame's msgpack payload, valid during the call. */
	void (*frame_cb)(struct link *lk, const uint8_t *data, size_t len, void *arg);
	/* The connection ended (peer closed it, I/O error, a bad or oversized
	 * frame, a frame that does not authenticate); why says which. Called
	 * at most once; the owner then calls link_free (it may from here). */
	void (*closed_cb)(struct link *lk, const char *why, void *arg);
};

/* A connection before it is a link: exactly one of fd (>= 0: a connected,
 * non-blocking, close-on-exec socket) and stream is set. */
struct link_conn {
	int fd;
	nng_stream *stream;
};
#define LINK_CONN_NONE ((struct link_conn){ .fd = -1, .stream = NULL })
/* Closes a connection nobody will make a link of. */
void link_conn_close(struct link_conn c);

/* Takes ownership of c. Nothing is received until link_start. */
struct link *link_new(struct loop *loop, struct link_conn c, const struct link_ops *ops,
		      void *arg);
void link_start(struct link *lk);
/* Stops the aios (waits for their callbacks), closes and frees the stream;
 * the memory goes once posted completions have drained. Loop thread only,
 * never from an nng callback. NULL ok; returns NULL. */
struct link *link_free(struct link *lk);
/* Hands the link over: nothing more is received or reported, what is
 * queued is sent (at most timeout_ms), then the link frees itself. */
void link_close_flush(struct link *lk, unsigned timeout_ms);
/* Links still flushing after link_close_flush (a daemon's shutdown runs
 * its loop until none is left, bounded). */
size_t link_lingering(void);
/* Daemon shutdown, once the loop will not run again: frees links still
 * flushing, and links, listeners and dialers freed while a completion of
 * theirs was queued on the loop (it will never run now). */
void link_flush_all(void);
void link_ep_reap_all(void); /* link_ep.c's part of it */

/* Hands the link's callbacks to a new owner (loop thread; also from inside
 * raw_cb: the bytes after the ones it used go to the new raw_cb). An
 * orchestrator's executor listener reads a dial-in preface, then gives the
 * connection to the environment it names. */
void link_rebind(struct link *lk, const struct link_ops *ops, void *arg);

/* Framed mode from now on; frames over max_payload (plus the seal's tag)
 * close the link. Bytes already buffered are parsed as frames. */
void link_set_framed(struct link *lk, size_t max_payload);
/* Seals both directions from the next frame on (keys from the handshake).
 * 0, or < 0 when a cipher context cannot be made (out of memory): the
 * link then sends and accepts nothing more; the caller closes it. */
int link_set_seal(struct link *lk, const struct hs_result *keys);
bool link_sealed(const struct link *lk);

/* Session mode (protocol 3, lsess.h), right after link_set_framed and
 * link_set_seal: every frame from now on carries seq and ack, is kept in s
 * until the peer acks it, and frames received are delivered once, in
 * order; pure acks go when nothing else carried ours for a moment. The
 * frames s still holds (unacked: call lsess_ack with the peer's resume
 * ack first) are sent again at once. s must outlive the link or be
 * detached by link_free. 0 or -ENOBUFS. */
int link_set_session(struct link *lk, struct lsess *s);
/* Sends our ack now (a pure ack). */
void link_send_ack(struct link *lk);
/* A frame for a session that has no connection now: encoded and kept, to
 * go out when it resumes (link_set_session). 0, -EINVAL, -EMSGSIZE. */
int link_session_queue(struct lsess *s, uint16_t type, uint8_t kind, uint32_t id,
		       const void *body, int32_t status, const char *msg);

/* Queues bytes as they are (the handshake). 0, -ENOBUFS, -EPIPE. */
int link_send_raw(struct link *lk, const void *data, size_t len);
/* Queues one frame: a request or event (kind from the table) or, with
 * kind PROTO_REPLY, a success reply. 0, -EINVAL (encoder), -EMSGSIZE (over
 * PROTO_MAX_FRAME), -ENOBUFS (queue full), -EPIPE (connection gone). */
int link_send(struct link *lk, uint16_t type, uint8_t kind, uint32_t id, const void *body);
int link_send_error(struct link *lk, uint16_t type, uint32_t id, int32_t status, const char *msg);

/* Loop time (ms) of the last bytes received. */
uint64_t link_last_rx_ms(const struct link *lk);
/* The peer's address (tcp-like transports), 0 or -errno. */
int link_peer_addr(const struct link *lk, nng_sockaddr *out);
/* ipc:// peers: the peer process's uid, 0 or -errno. */
int link_peer_uid(const struct link *lk, uint64_t *uid);
/* Counters for tests and benchmarks. */
uint64_t link_frames_in(const struct link *lk);
uint64_t link_frames_out(const struct link *lk);

/* ---- listener and dialer ----------------------------------------------- */

/* TLS material: for a listener the PEM file with certificate and key; for
 * a dialer the PEM file of the certificate (or CA) to trust. */
struct link_tls {
	const char *file;
};

struct link_listener;
/* A new connection, on the loop thread; the callee owns it. */
typedef void (*link_accept_cb)(struct link_conn c, void *arg);
/* Listens on url (ipc paths are created 0600). tls is needed for
 * tls+tcp:// and wss://. Returns 0 or -errno with a reason in err. */
int link_listener_new(struct loop *loop, const char *url, const struct link_tls *tls,
		      link_accept_cb cb, void *arg, struct link_listener **out, char *err,
		      size_t errlen);
/* The bound port of a tcp-like listener (for URLs with port 0), or 0. */
int link_listener_port(const struct link_listener *l);
struct link_listener *link_listener_free(struct link_listener *l);

struct link_dialer;
/* One attempt's outcome, on the loop thread (never inside link_dial): a
 * connection (the callee owns it), or LINK_CONN_NONE with a negative errno
 * and a reason. */
typedef void (*link_dial_cb)(struct link_conn c, int err, const char *why, void *arg);
int link_dialer_new(struct loop *loop, const char *url, const struct link_tls *tls,
		    struct link_dialer **out, char *err, size_t errlen);
/* Starts one attempt (none may be in progress); cb reports it. */
void link_dial(struct link_dialer *d, unsigned timeout_ms, link_dial_cb cb, void *arg);
/* Cancels an attempt in progress (its cb is not called) and frees. */
struct link_dialer *link_dialer_free(struct link_dialer *d);

/* nng error -> negative errno. */
int link_errno(int nng_err);

#endif
