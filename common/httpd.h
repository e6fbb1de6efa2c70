/* httpd.h - a tiny HTTP/1.1 server on the event loop, for loopback use.
 *
 * It exists for the OAuth redirect: the browser is sent back to
 * http://127.0.0.1:<port>/callback?code=...&state=..., and this server hands
 * that request to a callback. It is not a general web server: one request
 * per connection, only the request head is read (a body is ignored), only
 * GET and HEAD reach the handler, and every answer closes the connection.
 *
 * Everything runs on the loop thread, driven by loop_io and loop_timer; no
 * call blocks. Bounds: a request head of at most HTTPD_MAX_HEAD bytes (more
 * gets 431); a deadline of HTTPD_HEAD_TIMEOUT_MS from accept for the whole
 * request head (a browser sends it at once; a peer that is idle or trickles
 * bytes is closed without an answer); a deadline of HTTPD_CONN_TIMEOUT_MS
 * from accept to close (writing the answer included); at most
 * HTTPD_MAX_CONNS connections at once. When full, a new connection is still
 * accepted and the oldest one that has not completed its request head (or
 * has been answered already) is closed to make room: idle connections held
 * by another local user cannot lock the real callback out. A peer that
 * misbehaves loses its connection; the listener and the other connections
 * are not affected.
 *
 * Automatic answers: malformed request line or target that is not
 * origin-form ("/..."): 400; a method other than GET or HEAD: 405; an
 * oversized head: 431. The handler answers the rest.
 *
 * Handler contract: it runs synchronously once a request head is complete,
 * with resp preset to { 200, NULL, NULL }. It sets the status (200..599;
 * anything else becomes 500; 204 and 304 go out without a body), an optional
 * content type (NULL means "text/plain; charset=utf-8"; one with control
 * characters becomes 500), and an optional NUL-terminated body allocated
 * with malloc, which httpd frees. rq and its strings are valid only during
 * the call. The handler may do anything on the loop except httpd_free() on
 * its own server; free it later (a timer or a post), which drops answers not
 * yet written.
 *
 * Secrets: the query usually carries an OAuth code. Nothing here logs, and
 * the buffer that held the request is wiped when the connection closes.
 */
#ifndef TANDEM_HTTPD_H
#define TANDEM_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include "loop.h"

#define HTTPD_MAX_HEAD 8192
#define HTTPD_MAX_CONNS 64
#define HTTPD_HEAD_TIMEOUT_MS 500
#define HTTPD_CONN_TIMEOUT_MS 10000

struct httpd;

struct httpd_request {
	const char *method; /* "GET" or "HEAD" */
	const char *path;   /* raw (not %-decoded), without the query */
	const char *query;  /* raw, without the '?'; "" when none */
	const char *version; /* "HTTP/1.0" .. "HTTP/1.9" */
};

struct httpd_response {
	int status;
	const char *content_type; /* not owned; NULL: text/plain; charset=utf-8 */
	char *body;               /* malloc'd by the handler, freed by httpd; may be NULL */
};

typedef void (*httpd_cb)(const struct httpd_request *rq, struct httpd_response *resp, void *arg);

/* Listens on host (a numeric IPv4 or IPv6 literal such as "127.0.0.1" or
 * "::1") and port (0: an ephemeral port). Returns NULL and -errno in *err
 * (-EINVAL for a host that is not a literal). */
struct httpd *httpd_new(struct loop *l, const char *host, uint16_t port, httpd_cb cb, void *arg,
			int *err);
/* The port actually bound. */
uint16_t httpd_port(const struct httpd *d);
/* Connections currently open (diagnostics and tests). */
size_t httpd_nconns(const struct httpd *d);
/* Deadline from accept to close, for connections accepted from now on
 * (tests use short ones). */
void httpd_set_timeout_ms(struct httpd *d, uint64_t ms);
/* Deadline from accept for the complete request head, for connections
 * accepted from now on (default HTTPD_HEAD_TIMEOUT_MS; the whole-life
 * deadline still applies when it is shorter). */
void httpd_set_head_timeout_ms(struct httpd *d, uint64_t ms);
/* Closes the listener and every connection; accepts NULL; returns NULL. */
struct httpd *httpd_free(struct httpd *d);

/* The request-head parser the server uses, exposed for the fuzz target.
 * httpd_head_end: offset just past the blank line that ends a head in
 * buf[0..len) (lines end in LF with an optional CR), or 0 when there is none
 * yet; bytes before `from` were searched already (pass the previous len).
 * httpd_parse_request: splits a complete head buf[0..end) in place into *rq
 * (pointing into buf; only the request line is read, cut at its LF, so buf
 * needs no terminator past end); 0, or -EINVAL for
 * anything that gets 400 (NUL bytes, a malformed request line, a target that
 * is not origin-form). The method is not checked here. */
size_t httpd_head_end(const char *buf, size_t len, size_t from);
int httpd_parse_request(char *buf, size_t end, struct httpd_request *rq);

#endif
