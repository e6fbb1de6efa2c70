/* linebuf.h - newline framing for reading a non-blocking fd.
 *
 * Used for child stdout/stderr in the executor and client connections in
 * the orchestrator. The caller alternates linebuf_read() (one read(2)) with
 * linebuf_next() until it returns 0. Lines are handed out in place, never
 * copied: a returned line points into the buffer and stays valid only until
 * the next linebuf_* call on the same struct.
 *
 * Memory is bounded: the buffer grows on demand up to about
 * max_line + LINEBUF_CHUNK bytes and no further. A line longer than
 * max_line (counted without its '\n') is reported as -E2BIG, whether it is
 * still incomplete or arrived whole; the stream cannot be resynchronised
 * after that and the caller should drop it.
 *
 * The struct is embeddable; linebuf_free() releases the buffer it owns.
 */
#ifndef TANDEM_LINEBUF_H
#define TANDEM_LINEBUF_H

#include <stddef.h>
#include <sys/types.h>

/* Room kept beyond max_line so that one read can complete a line. */
#define LINEBUF_CHUNK 16384u

struct linebuf {
	char *buf;
	size_t cap;      /* allocated bytes */
	size_t limit;    /* cap never exceeds this */
	size_t start;    /* first byte not yet handed out */
	size_t end;      /* one past the last byte read */
	size_t scan;     /* [start, scan) holds no '\n': resume searching here */
	size_t max_line; /* longest allowed line, excluding '\n' */
};

/* max bytes of one line, excluding the '\n'. Allocates nothing yet. */
void linebuf_init(struct linebuf *lb, size_t max_line);
/* Releases the buffer; accepts NULL. The struct may be re-initialised. */
void linebuf_free(struct linebuf *lb);

/* One read(2) into the buffer, retried on EINTR. Returns >0 bytes read, 0 on
 * EOF, -EAGAIN when nothing is available, -ENOBUFS when the buffer is full
 * (only if the caller skipped linebuf_next, or ignored its -E2BIG), or
 * -errno. */
ssize_t linebuf_read(struct linebuf *lb, int fd);

/* Next complete line without its '\n' (a trailing '\r' stays: callers
 * decide). Returns 1 and sets *line, *len; 0 when no complete line is
 * buffered; -E2BIG when the next line exceeds max_line. */
int linebuf_next(struct linebuf *lb, const char **line, size_t *len);

/* Bytes buffered and not yet handed out. Once linebuf_next() returned 0,
 * these are the incomplete trailing line (for EOF handling). */
size_t linebuf_pending(const struct linebuf *lb);

#endif
