/* http.h - asynchronous HTTP client driven by the daemon's event loop.
 *
 * One struct http per loop wraps a libcurl multi handle in socket-action
 * mode: curl's sockets are loop_io sources and its timeout is one loop
 * timer, so no thread of ours and no blocking call runs on the loop thread
 * (name resolution uses curl's own resolver). The multi handle keeps a
 * connection cache, so requests to the same host reuse keep-alive
 * connections (and HTTP/2 multiplexes when TLS negotiates it).
 *
 * Callbacks run on the loop thread. done_cb runs outside libcurl;
 * headers_cb and data_cb run inside libcurl's header and write callbacks.
 * From any of them a caller may start requests or cancel any request, its
 * own included (it must not call http_free()). What headers_cb and data_cb
 * ask for takes effect as soon as libcurl returns: a request cancelled
 * there gets no further callback, a request started there begins then.
 *
 * Defaults are the safe ones: TLS peers and host names are verified,
 * redirects are never followed (a 3xx is a complete exchange: the caller
 * reads Location with http_req_header and decides), only http and https
 * URLs are accepted, no signals (CURLOPT_NOSIGNAL). Proxies come from
 * opts.proxy, else from the usual environment variables (https_proxy,
 * no_proxy, ...), as curl does.
 *
 * Secrets: request headers (Authorization) and bodies are copied, and the
 * copies are wiped before they are freed; nothing here logs.
 *
 * Request headers go out as given, plus "Expect:" (no 100-continue wait).
 * "Name:" with nothing after the colon removes a header curl would add.
 * A POST without a Content-Type header is sent by curl as form data:
 * callers posting JSON say so.
 *
 * Ownership: http_start() copies everything in opts and *cbs; the caller
 * may free them at once. A struct http_req belongs to the module: it is freed
 * after done_cb returns, or by http_cancel(); the caller must drop its
 * pointer at either point.
 */
#ifndef TANDEM_HTTP_H
#define TANDEM_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct http;
struct http_req;

/* Bounds on the response headers kept for http_req_header(); a response
 * over either fails with -E2BIG. */
#define HTTP_MAX_HEADERS 128u
#define HTTP_MAX_HEADER_BYTES (64u * 1024u)

struct http_opts {
	const char *method;         /* GET, POST, PUT, PATCH, DELETE, HEAD */
	const char *url;            /* http:// or https:// */
	const char *const *headers; /* "Name: value", NULL-terminated; may be NULL */
	const char *body;           /* copied; may be NULL when body_len is 0 */
	size_t body_len;
	uint64_t timeout_ms;      /* whole request; 0 = none */
	uint64_t idle_timeout_ms; /* no response bytes for this long -> -ETIMEDOUT; 0 = none */
	size_t max_body;          /* response body bytes accepted, over -> -E2BIG; 0 = no limit */
	const char *proxy;        /* optional, e.g. "http://proxy:3128" */
	/* Headers whose value comes from an environment variable of the
	 * process that runs the request (the executor's, in relay mode):
	 * "VAR=Name: prefix" adds "Name: prefix<value of VAR>", omitted when
	 * VAR is unset or empty; "!VAR=..." makes it required (http_start
	 * fails with ENOKEY, or the relayed request ends with -ENOKEY).
	 * NULL-terminated; may be NULL. */
	const char *const *env_headers;
};

struct http_cbs {
	/* Once, when the final status line and headers are complete (1xx
	 * interim responses are skipped), before any data. May be NULL. */
	void (*headers_cb)(struct http_req *r, long status, void *arg);
	/* Response body bytes as they arrive, whatever the status. May be NULL. */
	void (*data_cb)(struct http_req *r, const char *data, size_t len, void *arg);
	/* Exactly once at the end unless cancelled. err is 0 for a complete
	 * exchange (whatever the status), else -ETIMEDOUT (timeout_ms or
	 * idle_timeout_ms), -ECONNREFUSED and other connect errnos,
	 * -EHOSTUNREACH (name not resolved), -E2BIG (max_body or header
	 * bounds), -EPROTO (TLS), -EINVAL (bad URL), -EIO (anything else).
	 * status is the final status or 0 if none arrived; msg is a human
	 * reason, never NULL ("ok" on success), valid during the call. The
	 * request is freed when done_cb returns. Required. */
	void (*done_cb)(struct http_req *r, int err, long status, const char *msg, void *arg);
};

/* Returns NULL with errno set when libcurl cannot be set up. Calls
 * curl_global_init the first time (not thread-safe: create the first one
 * before starting threads). */
struct http *http_new(struct loop *l);
/* Cancels every request without callbacks and releases the connection
 * cache. Accepts NULL; returns NULL. Not from inside an http callback. */
struct http *http_free(struct http *h);

/* Starts a request. Returns NULL with errno EINVAL (bad method, URL, or a
 * header that is not "Name: value" or holds CR/LF) or ENOMEM. */
struct http_req *http_start(struct http *h, const struct http_opts *o, const struct http_cbs *cbs,
			    void *arg);
/* No callback for r afterwards; r is invalid. Accepts NULL. Safe from any
 * callback, including r's own (from r's done_cb it does nothing). */
void http_cancel(struct http_req *r);

/* A response header of the final response, by case-insensitive name; the
 * last one when repeated. NULL if absent. Valid until done_cb returns. */
const char *http_req_header(const struct http_req *r, const char *name);

/* The loop it runs on. */
struct loop *http_loop(const struct http *h);
/* Requests started and not yet ended (NULL: 0). */
size_t http_pending(const struct http *h);

/* All response headers in arrival order: the name of header i (its value
 * in *value), NULL past the end. Valid until done_cb returns. */
size_t http_req_nheaders(const struct http_req *r);
const char *http_req_header_at(const struct http_req *r, size_t i, const char **value);

/* ---- relay mode ----
 * A struct http whose requests are carried by someone else: the
 * orchestrator's handle on an executor's libcurl (HTTP_REQUEST over the
 * link). The caller's side of the API (http_start, http_cancel,
 * http_req_header, the callbacks and their re-entrancy rules) is the same;
 * what the far side reports comes in through the http_relay_* calls below,
 * on the loop thread, and never from inside relay.start or relay.cancel.
 * opts.proxy is passed along for the far side to apply. */
struct http_relay_ops {
	/* Send request `id`; 0 or -errno (then http_start fails with it). */
	int (*start)(void *ctx, uint64_t id, const struct http_opts *o);
	/* Request `id` is no longer wanted (cancelled, failed here, or freed). */
	void (*cancel)(void *ctx, uint64_t id);
};
struct http *http_new_relay(struct loop *l, const struct http_relay_ops *ops, void *ctx);
bool http_is_relay(const struct http *h);
/* Checks the form of one env_headers entry (VAR a valid variable name). */
bool http_env_header_valid(const char *spec);
/* The final status and headers ("Name: value" strings). Unknown ids,
 * finished requests and repeats are ignored; so is a NULL h (as for the
 * calls below). */
void http_relay_head(struct http *h, uint64_t id, long status, const char *const *headers,
		     size_t n);
void http_relay_data(struct http *h, uint64_t id, const char *data, size_t len);
/* The end: err as done_cb's (0 or -errno), msg the far side's reason. */
void http_relay_done(struct http *h, uint64_t id, int err, long status, const char *msg);
/* The carrier is gone: every active request ends with err/msg. */
void http_relay_fail_all(struct http *h, int err, const char *msg);

#endif
