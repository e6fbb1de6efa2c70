/* sse.h - incremental parser for Server-Sent Events (text/event-stream).
 *
 * Used by the model client (OpenAI Responses stream) and by the streamable
 * HTTP MCP transport. Bytes are fed as they arrive, in chunks of any size;
 * the result never depends on where the chunks were split. Follows the
 * WHATWG event-stream rules at the byte level:
 *   - lines end in CRLF, LF or CR (a CR ending one chunk and an LF starting
 *     the next are one line ending); one UTF-8 BOM at stream start is skipped;
 *   - ":..." is a comment; "field: value" loses one space after the colon; a
 *     line without ':' is a field with an empty value;
 *   - "data" lines accumulate, joined by '\n'; "event" sets the type; "id"
 *     sets the last event id (a value holding NUL is ignored) which persists
 *     across events until changed; "retry" and unknown fields are ignored;
 *   - a blank line dispatches; an event without any data line is not
 *     dispatched; an unterminated event at end of stream is never seen.
 * Bytes are passed through as they are: no UTF-8 validation (the JSON
 * parser downstream validates).
 *
 * Bounds: an event's size is the bytes of its lines (comments and line
 * endings excluded), the line still being read included. When one event
 * would exceed max_event_bytes, sse_feed() returns -E2BIG; events completed
 * before that point have been delivered, and the parser refuses everything
 * afterwards (-E2BIG again): drop the stream. Memory held is O(max).
 *
 * Cost: every byte is scanned once; complete lines are parsed in place and
 * only data values are copied; a line split across feeds is carried in a
 * buffer that grows geometrically.
 *
 * The struct is embeddable; sse_init() allocates nothing and sse_free()
 * releases what the parser holds (it may be re-initialised afterwards).
 * The callback must not call sse_feed() or sse_free() on the parser that is
 * calling it: to stop, set a flag and free after sse_feed() returns.
 */
#ifndef TANDEM_SSE_H
#define TANDEM_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* event: the type, "message" when no (or an empty) event field was given.
 * data, len: the data lines joined by '\n' (no trailing '\n'); data[len] is
 * '\0' for convenience, but data may hold NUL bytes. id: the last event id,
 * NULL when none was set (or it was reset by an empty id). All three point
 * into the parser and are valid only during the call. */
typedef void (*sse_event_cb)(const char *event, const char *data, size_t len, const char *id,
			     void *arg);

struct sse_buf {
	char *p;
	size_t len, cap;
};

struct sse {
	sse_event_cb cb;
	void *arg;
	size_t max;           /* max_event_bytes */
	size_t used;          /* bytes of the completed lines of this event */
	struct sse_buf line;  /* a line split across feeds, carried over */
	struct sse_buf data;  /* data lines, each followed by '\n' */
	struct sse_buf event; /* event type, NUL-terminated when non-empty */
	struct sse_buf id;    /* last event id, NUL-terminated when non-empty */
	uint8_t bom;          /* BOM bytes matched so far; 0xff once decided */
	bool skip_lf;         /* the last line ended in CR: an LF next is its */
	bool comment;         /* the carried line is a comment: not stored */
	bool failed;          /* -E2BIG was returned */
};

void sse_init(struct sse *p, size_t max_event_bytes, sse_event_cb cb, void *arg);
/* Returns 0, or -E2BIG when an event exceeds the bound (sticky). */
int sse_feed(struct sse *p, const char *buf, size_t len);
/* Accepts NULL. */
void sse_free(struct sse *p);

#endif
