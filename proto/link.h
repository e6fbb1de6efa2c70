/* link.h - one end of an orchestrator<->executor link on an nng socket,
 * driven by the daemon's event loop.
 *
 * Receiving: the socket's NNG_OPT_RECVFD is watched by the loop; each frame
 * is handed to frame_cb on the loop thread with the nng pipe it came from
 * (frame_cb decodes it and owns nothing: the message is freed after).
 * Sending: frames are encoded straight into an nng_msg and sent without
 * blocking; when nng's buffer is full they wait in a bounded queue flushed
 * when NNG_OPT_SENDFD turns writable. Over LINK_MAX_QUEUED bytes the send
 * fails with -ENOBUFS and the daemon decides (the peer is too slow).
 *
 * Which peer a frame is for is the daemon's business (pipe ids); pair1
 * holds one peer at a time.
 */
#ifndef TANDEM_PROTO_LINK_H
#define TANDEM_PROTO_LINK_H

#include <nng/nng.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct loop;
struct loop_io;

#define LINK_MAX_QUEUED (64u * 1024u * 1024u)
#define LINK_NNG_SENDBUF 1024

struct link;
typedef void (*link_frame_cb)(struct link *lk, uint32_t pipe, const void *data, size_t len,
			      void *arg);

struct link {
	struct loop *loop;
	nng_socket sock;
	struct loop_io *recv_io;
	struct loop_io *send_io;
	int send_fd;
	nng_msg **queue; /* ring of waiting frames */
	size_t q_head, q_len, q_cap, q_bytes;
	link_frame_cb frame_cb;
	void *arg;
	uint64_t frames_in, frames_out;
	uint32_t target_pipe; /* the pipe frames are for (0: none); set on each frame */
};

/* Opens a pair1 socket with the frame limit set and starts receiving. */
int link_open(struct link *lk, struct loop *loop, link_frame_cb cb, void *arg);
/* Closes the socket and drops queued frames. Safe on a zeroed link.
 * Returns -ETIMEDOUT when nng_close did not return in time (an nng 1.5.2
 * deadlock): nng may then still call pipe callbacks, so the caller must not
 * free what they use; a daemon checks link_close_stuck() and _exits. */
int link_close(struct link *lk);
bool link_close_stuck(void);
/* nng_close with the same bound, for sockets that are not a struct link. */
int link_close_socket(nng_socket sock);

int link_send(struct link *lk, uint16_t type, uint8_t kind, uint32_t id, const void *body);
int link_send_error(struct link *lk, uint16_t type, uint32_t id, int32_t status, const char *msg);
/* Drops frames still waiting in the queue (peer gone). */
void link_discard_queue(struct link *lk);
/* Closes one pipe (a misbehaving or unauthenticated peer). */
void link_close_pipe(struct link *lk, uint32_t pipe);

/* nng error -> negative errno-ish value, for logs use nng_strerror. */
int link_errno(int nng_err);

#endif
