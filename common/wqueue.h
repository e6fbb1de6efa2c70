/* wqueue.h - bounded output queue for a non-blocking fd.
 *
 * Used for child stdin in the executor and client sockets in the
 * orchestrator. Bytes are kept in a ring buffer that grows on demand up to
 * max_bytes and never beyond: a peer that stops reading makes pushes fail
 * with -ENOBUFS instead of growing memory, and the caller decides (usually
 * to drop the peer).
 *
 * Usual use: wqueue_write() (writes directly when nothing is queued, queues
 * only the remainder), then on 1 wait for LOOP_WRITE and call
 * wqueue_flush() until it returns 0.
 *
 * The queue copies what it is given; the caller keeps its buffers. The
 * struct is embeddable; wqueue_free() releases the ring it owns. Writing to
 * a pipe or socket whose reader is gone raises SIGPIPE: daemons ignore it
 * and get -EPIPE here.
 */
#ifndef TANDEM_WQUEUE_H
#define TANDEM_WQUEUE_H

#include <stddef.h>

struct wqueue {
	char *buf;
	size_t cap;       /* allocated bytes */
	size_t head;      /* offset of the first queued byte */
	size_t len;       /* queued bytes, possibly wrapping past the end */
	size_t max_bytes; /* bound on len */
};

void wqueue_init(struct wqueue *q, size_t max_bytes);
/* Releases the ring and drops queued bytes; accepts NULL. */
void wqueue_free(struct wqueue *q);

/* Appends len bytes (copied). -ENOBUFS if queued+len would exceed max_bytes
 * (nothing appended). */
int wqueue_push(struct wqueue *q, const void *data, size_t len);
/* Appends a then b atomically (e.g. a message and its '\n'): both or
 * neither. */
int wqueue_push2(struct wqueue *q, const void *a, size_t alen, const void *b, size_t blen);

/* Writes as much as possible with writev. Returns 0 when the queue is empty,
 * 1 when bytes remain (wait for LOOP_WRITE), -errno on a real error (EPIPE,
 * ...; EAGAIN is not an error). */
int wqueue_flush(struct wqueue *q, int fd);

/* Sends a then b (b may be NULL/0) in order after anything already queued.
 * With an empty queue it writes directly and copies only what the fd did
 * not take. Checks the bound first: -ENOBUFS if queued+alen+blen would
 * exceed max_bytes (nothing written or queued). Returns 0 when everything
 * was written, 1 when bytes remain queued, or -errno from writev (nothing
 * queued). */
int wqueue_write(struct wqueue *q, int fd, const void *a, size_t alen, const void *b, size_t blen);

/* Like wqueue_write, but a message is only queued once it has begun: when
 * the queue is empty and the fd takes no byte at all, nothing is queued and
 * it returns 2 (the caller still holds the whole message, and may yet
 * withdraw it). */
int wqueue_write_begun(struct wqueue *q, int fd, const void *a, size_t alen, const void *b,
		       size_t blen);

/* Queued bytes. */
size_t wqueue_pending(const struct wqueue *q);

#endif
