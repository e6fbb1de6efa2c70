/* gateway.c - see gateway.h: the HTTP half. Routes, refusals and limits,
 * and the exchanges answers go out on (gateway_int.h).
 *
 * An exchange (struct gw_http) is MHD's per-request state. A POST's body is
 * gathered (bounded) and handed to gateway_session_post on MHD's final call;
 * if no answer is there when that returns, the connection is suspended and
 * resumed when one comes (MHD then calls the handler again, which queues
 * it). An event stream is a callback response whose reader hands out the
 * queued bytes and suspends the connection when there are none; a send
 * resumes it. */
#include "gateway.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "gateway_int.h"
#include "jsonutil.h"
#include "log.h"
#include "loop.h"
#include "mhdloop.h"
#include "opsd.h"
#include "util.h"

#define WELL_KNOWN "/.well-known/oauth-protected-resource"
#define STREAM_BLOCK (16u * 1024)
#define PING_TEXT ": keep-alive\n\n"

enum hstate { H_NEW, H_READY, H_STREAM };

struct gw_http {
	struct gw_http *prev, *next;
	struct MHD_Connection *c;
	enum hstate st;
	const char *method, *path; /* borrowed from MHD for the request's life */
	char *body;
	size_t body_len;
	bool sse_ok;      /* the client accepts text/event-stream */
	bool in_dispatch; /* inside the session layer: no resume needed */
	bool suspended;
	bool streaming;   /* the answer is an event stream */
	bool ended;       /* nothing more will be queued */
	bool failed;      /* queue overflow: cut the connection */
	char *answer;     /* JSON mode: the final message's text */
	unsigned answer_status; /* its HTTP status: 200 unless gateway_http_refuse */
	char *q;          /* event stream bytes not yet handed to MHD */
	size_t q_len, q_off;
	uint64_t last_ms; /* when bytes were last queued (keep-alive) */
	char session_id[GW_SESSION_ID_LEN + 1];
	char endpoint[512]; /* the canonical path */
	gw_gone_cb gone;
	void *gone_arg;
};

static struct {
	struct loop *loop;
	struct mhdloop *ml;
	struct MHD_Daemon *mhd;
	struct loop_timer *ping;
	struct gw_http *live; /* every exchange MHD has not completed */
	bool loopback;
	char address[80];
} gw;

/* ---- exchanges ----------------------------------------------------------- */

static struct gw_http *http_new(struct MHD_Connection *c, const char *method, const char *url)
{
	struct gw_http *h = xcalloc(1, sizeof(*h));

	h->c = c;
	h->method = method;
	h->path = url;
	h->last_ms = now_ms();
	h->next = gw.live;
	if (gw.live)
		gw.live->prev = h;
	gw.live = h;
	return h;
}

static void http_free(struct gw_http *h)
{
	if (h->prev)
		h->prev->next = h->next;
	else
		gw.live = h->next;
	if (h->next)
		h->next->prev = h->prev;
	free(h->body);
	free(h->answer);
	free(h->q);
	free(h);
}

static void wake(struct gw_http *h)
{
	if (!h->suspended || h->in_dispatch)
		return;
	h->suspended = false;
	MHD_resume_connection(h->c);
	mhdloop_kick(gw.ml);
}

static int queue_bytes(struct gw_http *h, const char *p, size_t n)
{
	if (h->q_off && h->q_off == h->q_len)
		h->q_off = h->q_len = 0;
	if (h->q_len - h->q_off + n > GATEWAY_MAX_QUEUE)
		return -ENOBUFS;
	if (h->q_off > h->q_len / 2) { /* reclaim what was handed out */
		memmove(h->q, h->q + h->q_off, h->q_len - h->q_off);
		h->q_len -= h->q_off;
		h->q_off = 0;
	}
	h->q = xrealloc(h->q, h->q_len + n);
	memcpy(h->q + h->q_len, p, n);
	h->q_len += n;
	h->last_ms = now_ms();
	return 0;
}

static int queue_event(struct gw_http *h, const char *json)
{
	static const char pre[] = "event: message\ndata: ";
	size_t n = strlen(json);
	int r;

	if (sizeof(pre) - 1 + n + 2 + h->q_len - h->q_off > GATEWAY_MAX_QUEUE)
		return -ENOBUFS;
	r = queue_bytes(h, pre, sizeof(pre) - 1);
	if (r == 0)
		r = queue_bytes(h, json, n);
	if (r == 0)
		r = queue_bytes(h, "\n\n", 2);
	return r;
}

int gateway_http_send(struct gw_http *h, json_t *msg, bool final)
{
	char *text = msg ? jsonu_dumps(msg) : NULL;
	int r = 0;

	json_decref(msg);
	if (!text) { /* nothing encodable: the exchange ends without it */
		gateway_http_end(h);
		return -EINVAL;
	}
	if (!final && !h->sse_ok) { /* nowhere to put it before the answer */
		free(text);
		return 0;
	}
	if (final && !h->streaming) {
		h->answer = text;
		text = NULL;
	} else {
		h->streaming = true;
		r = queue_event(h, text);
	}
	free(text);
	if (r < 0)
		h->failed = true;
	if (final || r < 0) {
		h->ended = true;
		h->gone = NULL;
	}
	wake(h);
	return r;
}

void gateway_http_refuse(struct gw_http *h, unsigned status, json_t *err)
{
	json_t *msg = json_pack("{s:s, s:n, s:o}", "jsonrpc", "2.0", "id", "error", err);

	if (h->streaming) { /* too late for a status: the error ends the stream */
		gateway_http_send(h, msg, true);
		return;
	}
	free(h->answer);
	h->answer = jsonu_dumps(msg);
	json_decref(msg);
	h->answer_status = status;
	h->ended = true;
	h->gone = NULL;
	wake(h);
}

void gateway_http_end(struct gw_http *h)
{
	h->streaming = true;
	h->ended = true;
	h->gone = NULL;
	wake(h);
}

void gateway_http_set_gone(struct gw_http *h, gw_gone_cb cb, void *arg)
{
	h->gone = cb;
	h->gone_arg = arg;
}

void gateway_http_set_session_id(struct gw_http *h, const char *id)
{
	snprintf(h->session_id, sizeof(h->session_id), "%s", id);
}

/* ---- responses -------------------------------------------------------------- */

static enum MHD_Result queue(struct gw_http *h, unsigned status, struct MHD_Response *resp,
			     const char *type)
{
	enum MHD_Result r;

	if (type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (h->session_id[0])
		MHD_add_response_header(resp, "Mcp-Session-Id", h->session_id);
	r = MHD_queue_response(h->c, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result answer_text(struct gw_http *h, unsigned status, const char *type,
				   char *body)
{
	size_t len = body ? strlen(body) : 0;

	return queue(h, status, MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE),
		     body ? type : NULL);
}

/* A refusal: a JSON-RPC error object (stolen) as the body, id null. */
static enum MHD_Result refuse(struct gw_http *h, unsigned status, json_t *err)
{
	json_t *msg;
	char *text;

	if (!err)
		return answer_text(h, status, NULL, NULL);
	msg = json_pack("{s:s, s:n, s:o}", "jsonrpc", "2.0", "id", "error", err);
	text = jsonu_dumps(msg);
	json_decref(msg);
	h->ended = true;
	return answer_text(h, status, "application/json", text);
}

static enum MHD_Result refuse_text(struct gw_http *h, unsigned status, int code, const char *msg)
{
	return refuse(h, status, json_pack("{s:i, s:s}", "code", code, "message", msg));
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct gw_http *h = cls;
	size_t n = h->q_len - h->q_off;

	if (h->failed)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (n) {
		n = MIN(n, max);
		memcpy(buf, h->q + h->q_off, n);
		h->q_off += n;
		return (ssize_t)n;
	}
	if (h->ended)
		return MHD_CONTENT_READER_END_OF_STREAM;
	h->suspended = true;
	MHD_suspend_connection(h->c);
	return 0;
}

static enum MHD_Result start_stream(struct gw_http *h)
{
	struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN,
								      STREAM_BLOCK, stream_reader,
								      h, NULL);

	h->st = H_STREAM;
	return queue(h, MHD_HTTP_OK, resp, "text/event-stream");
}

/* After the session layer took the request, or when resumed: the answer,
 * the stream, or a wait. */
static enum MHD_Result respond(struct gw_http *h)
{
	char *text;

	if (h->st == H_STREAM)
		return MHD_YES; /* resumed by a stream's reader: not our call */
	if (h->streaming || (h->ended && !h->answer))
		return start_stream(h);
	if (h->answer) {
		text = TAKE_PTR(h->answer);
		return answer_text(h, h->answer_status ? h->answer_status : MHD_HTTP_OK,
				   "application/json", text);
	}
	h->suspended = true;
	MHD_suspend_connection(h->c);
	return MHD_YES;
}

/* ---- requests ------------------------------------------------------------------ */

static const char *header(struct gw_http *h, const char *name)
{
	return MHD_lookup_connection_value(h->c, MHD_HEADER_KIND, name);
}

/* The endpoint a path names, canonical ("/mcp", "/mcp/threads/ID",
 * "/mcp/profiles/NAME") in out; false for any other path. A thread's or a
 * profile's path may end in "/mcp" too: clients such as the Inspector's
 * CLI 0.15.0 replace a path that does not end so with "/mcp". */
static bool endpoint_path(const char *p, char *out, size_t len)
{
	const char *key, *rest;
	size_t n;

	if (!strcmp(p, "/mcp")) {
		snprintf(out, len, "/mcp");
		return true;
	}
	if (!strncmp(p, "/mcp/threads/", 13))
		key = p + 13;
	else if (!strncmp(p, "/mcp/profiles/", 14))
		key = p + 14;
	else
		return false;
	rest = key + strcspn(key, "/");
	n = (size_t)(rest - p);
	if (rest == key || (*rest && strcmp(rest, "/mcp")) || n >= len)
		return false;
	memcpy(out, p, n);
	out[n] = '\0';
	return true;
}

/* A loopback listener answers only loopback host names: a page whose name
 * was rebound to 127.0.0.1 (DNS rebinding) sends its own name. */
static bool host_ok(const char *host)
{
	return !gw.loopback || (host && gateway_auth_loopback_host(host, strlen(host)));
}

static bool accepts(const char *accept, const char *type)
{
	return !accept || strstr(accept, type) || strstr(accept, "*/*");
}

static enum MHD_Result metadata(struct gw_http *h)
{
	json_t *m;
	char *text;

	if (strcmp(h->method, "GET"))
		return refuse_text(h, MHD_HTTP_METHOD_NOT_ALLOWED, GW_INVALID_REQUEST,
				   "GET only");
	m = gateway_auth_metadata();
	if (!m)
		return refuse_text(h, MHD_HTTP_NOT_FOUND, GW_INVALID_REQUEST,
				   "no protected-resource metadata is configured");
	h->ended = true;
	text = jsonu_dumps(m);
	json_decref(m);
	return answer_text(h, MHD_HTTP_OK, "application/json", text);
}

/* The checks on a request's head, in order; MHD_YES to go on reading. */
static enum MHD_Result head(struct gw_http *h)
{
	char www[1024];
	const char *len = header(h, MHD_HTTP_HEADER_CONTENT_LENGTH);
	struct MHD_Response *resp;

	if (!host_ok(header(h, MHD_HTTP_HEADER_HOST)))
		return refuse_text(h, MHD_HTTP_FORBIDDEN, GW_INVALID_REQUEST,
				   "Host must be a loopback name on a loopback listener");
	if (!gateway_auth_origin_ok(header(h, "Origin")))
		return refuse_text(h, MHD_HTTP_FORBIDDEN, GW_INVALID_REQUEST, "Origin not allowed");
	if (!strncmp(h->path, WELL_KNOWN, sizeof(WELL_KNOWN) - 1))
		return metadata(h);
	if (!endpoint_path(h->path, h->endpoint, sizeof(h->endpoint)))
		return refuse_text(h, MHD_HTTP_NOT_FOUND, GW_INVALID_REQUEST,
				   "not an MCP endpoint: try /mcp, /mcp/threads/ID or "
				   "/mcp/profiles/NAME");
	if (gateway_auth_check(header(h, MHD_HTTP_HEADER_AUTHORIZATION), www, sizeof(www)) < 0) {
		h->ended = true;
		resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, www);
		return queue(h, MHD_HTTP_UNAUTHORIZED, resp, NULL);
	}
	if (strcmp(h->method, "POST") && strcmp(h->method, "GET") && strcmp(h->method, "DELETE")) {
		resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, POST, DELETE");
		h->ended = true;
		return queue(h, MHD_HTTP_METHOD_NOT_ALLOWED, resp, NULL);
	}
	if (len && strtoull(len, NULL, 10) > GATEWAY_MAX_BODY)
		return refuse_text(h, MHD_HTTP_CONTENT_TOO_LARGE, GW_INVALID_REQUEST,
				   "body too large");
	h->sse_ok = accepts(header(h, MHD_HTTP_HEADER_ACCEPT), "text/event-stream");
	return MHD_YES;
}

static void request_of(struct gw_http *h, struct gw_request *rq)
{
	rq->path = h->endpoint;
	rq->session_id = header(h, "Mcp-Session-Id");
	rq->protocol = header(h, "MCP-Protocol-Version");
}

static bool json_content(const char *type)
{
	return type && !strncasecmp(type, "application/json", 16) &&
	       (type[16] == '\0' || type[16] == ';' || type[16] == ' ');
}

static enum MHD_Result dispatch(struct gw_http *h)
{
	struct gw_request rq;
	json_t *err = NULL;
	int st;

	h->st = H_READY;
	request_of(h, &rq);
	if (!strcmp(h->method, "DELETE")) {
		st = gateway_session_delete(&rq, &err);
		return st == GW_OK ? answer_text(h, MHD_HTTP_OK, NULL, NULL) : refuse(h, st, err);
	}
	if (!strcmp(h->method, "GET")) {
		if (!h->sse_ok)
			return refuse_text(h, MHD_HTTP_NOT_ACCEPTABLE, GW_INVALID_REQUEST,
					   "GET opens an event stream: Accept text/event-stream");
		h->in_dispatch = true;
		st = gateway_session_get(h, &rq, &err);
		h->in_dispatch = false;
		if (st != GW_OK)
			return refuse(h, st, err);
		h->streaming = true;
		return start_stream(h);
	}
	if (!json_content(header(h, MHD_HTTP_HEADER_CONTENT_TYPE)))
		return refuse_text(h, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, GW_INVALID_REQUEST,
				   "POST a JSON-RPC message as application/json");
	h->in_dispatch = true;
	st = gateway_session_post(h, &rq, h->body ? h->body : "", h->body_len, &err);
	h->in_dispatch = false;
	free(h->body);
	h->body = NULL;
	if (st != GW_OK) {
		h->ended = true;
		h->gone = NULL;
		return st == GW_ACCEPTED ? answer_text(h, MHD_HTTP_ACCEPTED, NULL, NULL)
					 : refuse(h, st, err);
	}
	return respond(h);
}

static enum MHD_Result handler_cb(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct gw_http *h = *con_cls;

	if (!h) {
		h = *con_cls = http_new(c, method, url);
		return head(h);
	}
	if (*upload_size) {
		if (h->body_len + *upload_size > GATEWAY_MAX_BODY)
			return MHD_NO; /* a chunked body past the bound: cut */
		h->body = xrealloc(h->body, h->body_len + *upload_size + 1);
		memcpy(h->body + h->body_len, upload, *upload_size);
		h->body_len += *upload_size;
		*upload_size = 0;
		return MHD_YES;
	}
	if (h->st == H_NEW)
		return dispatch(h);
	return respond(h);
}

static void completed_cb(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct gw_http *h = *con_cls;
	gw_gone_cb gone;

	if (!h)
		return;
	*con_cls = NULL;
	gone = h->ended ? NULL : h->gone;
	h->gone = NULL;
	if (gone)
		gone(h->gone_arg);
	http_free(h);
}

/* Streams that stayed silent get a comment: proxies keep them, and a
 * client that left is found by the failed write. */
static void ping_cb(struct loop_timer *t, void *arg)
{
	uint64_t now = now_ms();

	for (struct gw_http *h = gw.live; h; h = h->next) {
		if (h->st != H_STREAM || h->ended || now - h->last_ms < GATEWAY_PING_MS)
			continue;
		if (queue_bytes(h, PING_TEXT, sizeof(PING_TEXT) - 1) == 0)
			wake(h);
	}
	loop_timer_rearm(t, GATEWAY_PING_MS);
}

/* ---- start and stop ------------------------------------------------------------ */

static struct MHD_Daemon *mhd_start(int fd)
{
	return MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL, handler_cb,
				NULL, MHD_OPTION_LISTEN_SOCKET, fd,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)GATEWAY_MAX_CONNS,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)GATEWAY_CONN_TIMEOUT_S,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)GATEWAY_MEMORY_LIMIT,
				MHD_OPTION_NOTIFY_COMPLETED, completed_cb, NULL, MHD_OPTION_END);
}

int gateway_start(struct loop *l, const char *hostport, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, r;

	if (!hostport)
		return 0;
	r = opsd_parse_listen(hostport, &ss, &len, err, errlen);
	if (r < 0)
		return r;
	gw.loopback = mhdloop_is_loopback(&ss);
	r = gateway_auth_init(config_current()->mcp_gateway, gw.loopback, err, errlen);
	if (r < 0)
		return r;
	fd = mhdloop_listen(&ss, len, err, errlen);
	if (fd < 0) {
		gateway_auth_free();
		return fd;
	}
	mhdloop_bound_address(fd, gw.address, sizeof(gw.address));
	gw.loop = l;
	gw.mhd = mhd_start(fd);
	if (!gw.mhd) { /* fd is not closed: MHD may have closed it already */
		snprintf(err, errlen, "libmicrohttpd refused to start");
		gateway_auth_free();
		return -EIO;
	}
	gw.ml = mhdloop_attach(l, gw.mhd, err, errlen);
	if (!gw.ml) {
		gw.mhd = NULL;
		gateway_auth_free();
		return -EIO;
	}
	gateway_session_init(l);
	gw.ping = loop_timer_add(l, GATEWAY_PING_MS, ping_cb, NULL);
	log_info("MCP gateway on http://%s/mcp (auth: %s)", gw.address,
		 gateway_auth_enabled() ? "required" : "none, loopback only");
	return 0;
}

const char *gateway_address(void)
{
	return gw.ml ? gw.address : NULL;
}

void gateway_stop(void)
{
	if (!gw.ml)
		return;
	gateway_session_stop_all();
	gateway_scope_close_all();
	loop_timer_cancel(gw.ping);
	gw.ping = NULL;
	/* MHD must not be stopped with a connection suspended. */
	for (struct gw_http *h = gw.live; h; h = h->next) {
		h->ended = true;
		h->gone = NULL;
		if (h->suspended) {
			h->suspended = false;
			MHD_resume_connection(h->c);
		}
	}
	MHD_run(gw.mhd);
	gw.ml = mhdloop_free(gw.ml);
	gw.mhd = NULL;
	gateway_auth_free();
}
