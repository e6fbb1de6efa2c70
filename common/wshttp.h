/* wshttp.h - the HTTP/1.1 side of a WebSocket server (RFC 6455 §4): what a
 * client's first bytes are, its request head, the opening handshake's
 * answer, and plain HTTP answers for requests that are not upgrades.
 *
 * Pure functions on buffers: no I/O, no loop, nothing logged (a head can
 * carry an Authorization header). ws.h drives them on a connection.
 *
 * Parsing is in place: wshttp_parse() cuts the caller's head buffer into
 * NUL-terminated pieces that struct wshttp_req points into; they stay valid
 * as long as that buffer does. Every answer returned is malloc'd and
 * belongs to the caller.
 */
#ifndef TANDEM_WSHTTP_H
#define TANDEM_WSHTTP_H

#include <stdbool.h>
#include <stddef.h>

/* Bounds on a request head: bytes (more: 431), header lines (more: 431). */
#define WSHTTP_MAX_HEAD (16u * 1024u)
#define WSHTTP_MAX_HEADERS 64u

/* What a stream's first bytes are, for a socket that serves both the line
 * protocol and WebSocket (a unix socket: the tandem CLI sends JSON lines,
 * Codex clients an HTTP upgrade). */
enum wshttp_sniff {
	WSHTTP_SNIFF_MORE,      /* too few bytes to tell (none yet, or "GE") */
	WSHTTP_SNIFF_JSON_LINE, /* starts with '{': keep the line protocol */
	WSHTTP_SNIFF_HTTP,      /* starts like an HTTP request line ("GET /") */
	WSHTTP_SNIFF_OTHER,     /* neither: the caller drops the peer */
};
enum wshttp_sniff wshttp_sniff(const void *buf, size_t len);

enum wshttp_kind {
	WSHTTP_PLAIN,   /* no Upgrade header: an ordinary request (GET /readyz) */
	WSHTTP_UPGRADE, /* a valid WebSocket opening handshake */
	WSHTTP_BAD_UPGRADE, /* asks for WebSocket but breaks RFC 6455 §4.2.1 */
};

struct wshttp_req {
	enum wshttp_kind kind;
	/* Why a BAD_UPGRADE is bad (a static string), and the status to
	 * answer: 400, or 426 for a Sec-WebSocket-Version other than 13. */
	const char *bad_reason;
	int bad_status;
	const char *method;  /* a token, e.g. "GET" */
	const char *path;    /* origin-form, raw, without the query */
	const char *query;   /* raw, without '?'; "" when none */
	const char *version; /* "HTTP/1.1" */
	/* Header values (surrounding blanks trimmed), NULL when absent. A
	 * repeated Host, Authorization or Sec-WebSocket-Key makes the
	 * request malformed (400). */
	const char *host;
	const char *authorization; /* secret: never log it */
	const char *origin;
	const char *key;         /* Sec-WebSocket-Key */
	const char *ws_version;  /* Sec-WebSocket-Version */
	const char *protocol;    /* Sec-WebSocket-Protocol (offered; not answered) */
	const char *compression; /* x-codex-app-server-compression (offered; not answered) */
};

/* Offset just past the blank line ending the head in buf[0..len), or 0
 * (searching only from `from`, the previous length, on). */
size_t wshttp_head_end(const char *buf, size_t len, size_t from);

/* Parses the complete head buf[0..end) in place into *rq. Returns 0, or
 * -EINVAL for a malformed head (answer 400) or -E2BIG for more than
 * WSHTTP_MAX_HEADERS header lines (answer 431). A head that is well formed
 * but a bad upgrade returns 0 with kind WSHTTP_BAD_UPGRADE. */
int wshttp_parse(char *buf, size_t end, struct wshttp_req *rq);

/* The Sec-WebSocket-Accept value for a key: base64(SHA-1(key + GUID)),
 * 28 characters and a NUL into out. */
#define WSHTTP_ACCEPT_LEN 28
void wshttp_accept_key(const char *key, char out[WSHTTP_ACCEPT_LEN + 1]);

/* "HTTP/1.1 101 Switching Protocols" with Upgrade, Connection and
 * Sec-WebSocket-Accept for rq->key. No subprotocol and no compression are
 * answered, so clients use plain text frames. */
char *wshttp_answer_upgrade(const struct wshttp_req *rq);

/* A complete plain answer that closes the connection: status line,
 * Content-Type (NULL: text/plain; charset=utf-8), Content-Length,
 * Connection: close, Cache-Control: no-store, then body (NULL: none;
 * omitted from the bytes when head_only). 401 adds WWW-Authenticate:
 * Bearer; 426 adds Sec-WebSocket-Version: 13. Statuses outside 200..599
 * and content types with control characters become 500. *len gets the
 * length. */
char *wshttp_answer(int status, const char *ctype, const char *body, bool head_only,
		    size_t *len);

#endif
