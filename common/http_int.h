/* http_int.h - what http.c (the request life and the libcurl mode) and
 * http_relay.c (the relay mode) share. Private to those two files: callers
 * use http.h.
 *
 * One struct http_req life serves both modes (see http.c for the states).
 * In relay mode h->multi is NULL and the far side plays libcurl's part:
 * callbacks run with h->in_curl set, so the same queue (h->todo, worked by
 * http_run_queue) applies what they ask for.
 */
#ifndef TANDEM_HTTP_INT_H
#define TANDEM_HTTP_INT_H

#include "http.h"

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop_timer;
struct loop_io;

enum req_state { REQ_NEW, REQ_ACTIVE, REQ_FAILING, REQ_CANCELLED, REQ_DONE };

struct http_hdr {
	char *name; /* "name\0value\0" in one allocation */
	const char *value;
};

struct http_req {
	struct http *h;
	CURL *easy;
	struct http_cbs cbs;
	void *arg;
	enum req_state state;
	bool added;  /* in the multi handle */
	bool queued; /* on h->todo */
	struct http_req *todo_next;
	struct http_req *prev, *next; /* h->reqs: every request not yet freed */

	struct curl_slist *hdrs;
	char *body;
	size_t body_len;

	struct http_hdr *resp; /* final response headers, in arrival order */
	size_t nresp, resp_bytes;
	bool headers_done;
	long status;

	size_t received, max_body;
	uint64_t idle_ms, last_io;
	struct loop_timer *idle;

	uint64_t relay_id; /* relay mode: the id the far side knows it by */
	bool relay_live;   /* relay mode: the far side has not reported its end */

	int err; /* our verdict, preferred over curl's */
	char why[CURL_ERROR_SIZE];
	char errbuf[CURL_ERROR_SIZE];
};

struct http_sock {
	struct http *h;
	struct loop_io *io;
	struct http_sock *prev, *next;
};

struct http {
	struct loop *l;
	CURLM *multi;
	struct loop_timer *timer; /* curl's timeout */
	struct loop_timer *kick;  /* works h->todo when queued outside curl */
	bool in_curl;
	struct http_req *reqs;
	struct http_req *todo, **todo_tail;
	struct http_sock *socks;
	/* Relay mode (multi == NULL): requests are carried by relay.start. */
	struct http_relay_ops relay;
	void *relay_ctx;
	uint64_t relay_next;
};


/* A new request of h (not yet linked): callbacks, argument, body bound. */
struct http_req *http_req_new(struct http *h, const struct http_opts *o,
			      const struct http_cbs *cbs, void *arg);
/* Puts r on h->reqs (every request not yet freed). */
void http_req_link(struct http *h, struct http_req *r);
/* Starts the idle timer when o asks for one. */
void http_req_arm_idle(struct http_req *r, const struct http_opts *o);
/* Outside callbacks only: reports the outcome to done_cb and frees r. */
void http_req_finish(struct http_req *r, int err, const char *msg);
/* Marks an active request failed with err/why; finished from the queue. */
void http_req_fail_later(struct http_req *r, int err, const char *why);
/* Frees r without a callback (tells the far side in relay mode). */
void http_req_destroy(struct http_req *r);
/* Keeps one response header line "Name: value"; -E2BIG past the bounds. */
int http_req_store_header(struct http_req *r, const char *line, size_t len);
/* "Name: value" with a token name and no CR or LF. */
bool http_header_valid(const char *s);
/* Works h->todo and, in libcurl mode, curl's completion messages. */
void http_run_queue(struct http *h);
/* http_start() for a relay: validates o and hands it to relay.start. */
struct http_req *http_relay_start(struct http *h, const struct http_opts *o,
				  const struct http_cbs *cbs, void *arg);

#endif
