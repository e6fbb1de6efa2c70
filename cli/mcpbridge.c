/* mcpbridge.c - see mcpbridge.h. One event loop: stdin is a loop_io
 * source, the gateway is reached through common/http.h (libcurl multi on
 * the loop), event streams are parsed with common/sse.h. */
#include "mcpbridge.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"
#include "http.h"
#include "jsonutil.h"
#include "linebuf.h"
#include "loop.h"
#include "secret.h"
#include "sse.h"
#include "util.h"

#define DELETE_TIMEOUT_MS 2000u
#define ERR_BRIDGE (-32603)

enum bstate { B_NEW, B_INIT, B_READY };

struct xreq {
	struct xreq *prev, *next;
	struct bridge *b;
	struct http_req *r;
	json_t *id;        /* the request's id; NULL for anything else */
	bool init;         /* initialize */
	bool initialized;  /* notifications/initialized */
	bool get;          /* the GET stream */
	bool sse;
	struct sse parser;
	char *body;
	size_t len;
	bool too_big;
};

struct bridge {
	struct loop *loop;
	struct http *http;
	const char *url;
	struct secret *token;
	char session[256];
	char protocol[64];
	enum bstate st;
	json_t *waiting; /* lines read before the session existed */
	struct linebuf lb;
	struct loop_io *in;
	int in_flags;
	bool eof, deleting;
	unsigned stream_fails;
	struct loop_timer *stream_timer;
	struct xreq *list;
	int rc;
};

/* ---- output ------------------------------------------------------------- */

/* One message per line, compact whatever the gateway sent. */
static void emit(json_t *msg)
{
	char *text = jsonu_dumps(msg);

	if (!text)
		return;
	/* A client that stopped reading is gone: stdin's end follows. */
	if (write_all(STDOUT_FILENO, text, strlen(text)) == 0)
		write_all(STDOUT_FILENO, "\n", 1);
	free(text);
}

static void emit_error(json_t *id, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit_error(json_t *id, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	json_t *m;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	m = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id, "error", "code",
		      ERR_BRIDGE, "message", msg);
	emit(m);
	json_decref(m);
}

/* ---- exchanges ------------------------------------------------------------- */

static void post(struct bridge *b, const char *line, size_t len, json_t *msg);
static void open_stream(struct bridge *b);
static void maybe_finish(struct bridge *b);
static void stream_timer_cb(struct loop_timer *t, void *arg);

static void event_cb(const char *event, const char *data, size_t len, const char *id, void *arg)
{
	struct xreq *x = arg;
	json_t *m;

	if (strcmp(event, "message"))
		return;
	m = jsonu_loadb(data, len, MCPBRIDGE_MAX_EVENT, NULL, 0);
	if (m)
		emit(m);
	json_decref(m);
	(void)x;
}

static void headers_cb(struct http_req *r, long status, void *arg)
{
	struct xreq *x = arg;
	const char *type = http_req_header(r, "Content-Type");
	const char *sid = http_req_header(r, "Mcp-Session-Id");

	x->sse = type && !strncasecmp(type, "text/event-stream", 17) && status < 300;
	if (x->sse)
		sse_init(&x->parser, MCPBRIDGE_MAX_EVENT, event_cb, x);
	if (x->init && sid && status < 300)
		snprintf(x->b->session, sizeof(x->b->session), "%s", sid);
}

static void data_cb(struct http_req *r, const char *data, size_t len, void *arg)
{
	struct xreq *x = arg;

	if (x->sse) {
		if (x->get)
			x->b->stream_fails = 0;
		sse_feed(&x->parser, data, len);
		return;
	}
	if (x->too_big || x->len + len > MCPBRIDGE_MAX_EVENT) {
		x->too_big = true;
		return;
	}
	x->body = xrealloc(x->body, x->len + len + 1);
	memcpy(x->body + x->len, data, len);
	x->len += len;
}

static void xreq_free(struct xreq *x)
{
	struct bridge *b = x->b;

	if (x->prev)
		x->prev->next = x->next;
	else
		b->list = x->next;
	if (x->next)
		x->next->prev = x->prev;
	if (x->sse)
		sse_free(&x->parser);
	json_decref(x->id);
	free(x->body);
	free(x);
}

/* The gateway's reason in an error body, else the status. */
static void refused(struct xreq *x, long status, const char *msg)
{
	json_t *body = x->body ? jsonu_loadb(x->body, x->len, MCPBRIDGE_MAX_EVENT, NULL, 0) : NULL;
	const char *why = json_string_value(json_object_get(json_object_get(body, "error"),
							    "message"));

	if (x->id && status)
		emit_error(x->id, "tandem gateway: HTTP %ld%s%s", status, why ? ": " : "",
			   why ? why : "");
	else if (x->id)
		emit_error(x->id, "tandem gateway: %s", msg);
	else
		fprintf(stderr, "tandem mcp: %s: %s\n", x->b->url,
			why ? why : status ? "refused" : msg);
	json_decref(body);
}

static void init_done(struct bridge *b, struct xreq *x, bool ok)
{
	json_t *body = ok && x->body ? jsonu_loadb(x->body, x->len, MCPBRIDGE_MAX_EVENT, NULL, 0)
				     : NULL;
	const char *v = json_string_value(
		json_object_get(json_object_get(body, "result"), "protocolVersion"));
	json_t *w;
	size_t i;

	if (v)
		snprintf(b->protocol, sizeof(b->protocol), "%s", v);
	json_decref(body);
	b->st = ok ? B_READY : B_NEW;
	json_array_foreach(b->waiting, i, w)
		post(b, json_string_value(w), json_string_length(w), NULL);
	json_array_clear(b->waiting);
}

static void done_cb(struct http_req *r, int err, long status, const char *msg, void *arg)
{
	struct xreq *x = arg;
	struct bridge *b = x->b;
	bool ok = !err && status >= 200 && status < 300;
	json_t *m;

	if (!ok && x->get) {
		b->stream_fails++;
	} else if (!ok) {
		refused(x, err ? 0 : status, msg);
	} else if (!x->sse && x->len && !x->too_big) {
		m = jsonu_loadb(x->body, x->len, MCPBRIDGE_MAX_EVENT, NULL, 0);
		if (m)
			emit(m);
		json_decref(m);
	}
	if (x->init)
		init_done(b, x, ok);
	if (x->initialized && ok)
		open_stream(b);
	if (x->get && status != 405 && status != 404 && !b->eof && !b->stream_timer &&
	    b->stream_fails < MCPBRIDGE_STREAM_TRIES)
		b->stream_timer = loop_timer_add(b->loop, MCPBRIDGE_STREAM_RETRY_MS,
						 stream_timer_cb, b);
	xreq_free(x);
	maybe_finish(b);
}

static void stream_timer_cb(struct loop_timer *t, void *arg)
{
	struct bridge *b = arg;

	b->stream_timer = NULL;
	open_stream(b);
}

static const struct http_cbs cbs = { .headers_cb = headers_cb, .data_cb = data_cb,
				     .done_cb = done_cb };

static struct xreq *start(struct bridge *b, const char *method, const char *body, size_t len,
			  uint64_t timeout_ms)
{
	const char *hdrs[7];
	char *sid = NULL, *ver = NULL, *auth = NULL;
	struct xreq *x = xcalloc(1, sizeof(*x));
	struct http_opts o = { .method = method, .url = b->url, .headers = hdrs, .body = body,
			       .body_len = len, .timeout_ms = timeout_ms };
	size_t n = 0;

	x->b = b;
	hdrs[n++] = "Content-Type: application/json";
	hdrs[n++] = "Accept: application/json, text/event-stream";
	if (b->session[0])
		hdrs[n++] = sid = xasprintf("Mcp-Session-Id: %s", b->session);
	if (b->protocol[0])
		hdrs[n++] = ver = xasprintf("MCP-Protocol-Version: %s", b->protocol);
	if (b->token)
		hdrs[n++] = auth = xasprintf("Authorization: Bearer %s", secret_data(b->token));
	hdrs[n] = NULL;
	x->r = http_start(b->http, &o, &cbs, x);
	if (auth)
		secure_wipe(auth, strlen(auth));
	free(auth);
	free(sid);
	free(ver);
	if (!x->r) {
		free(x);
		return NULL;
	}
	x->next = b->list;
	if (b->list)
		b->list->prev = x;
	b->list = x;
	return x;
}

static void open_stream(struct bridge *b)
{
	struct xreq *x;

	if (b->eof || !b->session[0])
		return;
	x = start(b, "GET", NULL, 0, 0);
	if (x)
		x->get = true;
}

/* Sends one client message (msg: its parse, when the caller has it). */
static void post(struct bridge *b, const char *line, size_t len, json_t *msg)
{
	json_t *parsed = msg ? NULL : jsonu_loadb(line, len, MCPBRIDGE_MAX_LINE, NULL, 0);
	json_t *m = msg ? msg : parsed;
	const char *method = json_string_value(json_object_get(m, "method"));
	json_t *id = json_object_get(m, "id");
	struct xreq *x = start(b, "POST", line, len, 0);

	if (!x) {
		if (id)
			emit_error(id, "tandem mcp: cannot send to %s", b->url);
		json_decref(parsed);
		return;
	}
	x->id = id && method ? json_incref(id) : NULL;
	x->init = method && id && !strcmp(method, "initialize");
	x->initialized = method && !id && !strcmp(method, "notifications/initialized");
	if (x->init)
		b->st = B_INIT;
	json_decref(parsed);
}

/* ---- stdin ----------------------------------------------------------------- */

static void line_in(struct bridge *b, const char *line, size_t len)
{
	json_t *m;

	if (len && line[len - 1] == '\r')
		len--;
	if (!len)
		return;
	m = jsonu_loadb(line, len, MCPBRIDGE_MAX_LINE, NULL, 0);
	if (!m) {
		emit_error(json_null(), "Parse error: not a JSON message");
		return;
	}
	if (b->st == B_INIT) {
		if (json_array_size(b->waiting) < MCPBRIDGE_MAX_WAITING)
			json_array_append_new(b->waiting, json_stringn(line, len));
		else if (json_object_get(m, "id"))
			emit_error(json_object_get(m, "id"), "tandem mcp: too many messages before "
				   "the session started");
	} else {
		post(b, line, len, m);
	}
	json_decref(m);
}

static void stdin_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct bridge *b = arg;
	const char *line;
	size_t len;
	ssize_t n = linebuf_read(&b->lb, fd);
	int r;

	while ((r = linebuf_next(&b->lb, &line, &len)) == 1)
		line_in(b, line, len);
	if (r == -E2BIG) {
		fprintf(stderr, "tandem mcp: a message over %u bytes; stopping\n",
			MCPBRIDGE_MAX_LINE);
		n = 0;
		b->rc = CLI_EXIT_USAGE;
	}
	if (n == 0 || (n < 0 && n != -EAGAIN)) {
		loop_io_del(b->in);
		b->in = NULL;
		b->eof = true;
		maybe_finish(b);
	}
}

/* ---- the end ---------------------------------------------------------------- */

static void delete_done_cb(struct http_req *r, int err, long status, const char *msg, void *arg)
{
	loop_stop(arg);
}

/* Ends the session (its calls end with it at the gateway), then the loop. */
static void finish(struct bridge *b)
{
	static const struct http_cbs dcbs = { .done_cb = delete_done_cb };
	const char *hdrs[3] = { NULL };
	char *sid, *auth = NULL;
	struct http_opts o = { .method = "DELETE", .headers = hdrs,
			       .timeout_ms = DELETE_TIMEOUT_MS };

	b->deleting = true;
	while (b->list)
		http_cancel(b->list->r), xreq_free(b->list);
	if (!b->session[0]) {
		loop_stop(b->loop);
		return;
	}
	o.url = b->url;
	hdrs[0] = sid = xasprintf("Mcp-Session-Id: %s", b->session);
	if (b->token)
		hdrs[1] = auth = xasprintf("Authorization: Bearer %s", secret_data(b->token));
	if (!http_start(b->http, &o, &dcbs, b->loop))
		loop_stop(b->loop);
	if (auth)
		secure_wipe(auth, strlen(auth));
	free(auth);
	free(sid);
}

/* After stdin's end, once every request has its answer (a script piping
 * its requests in wants them): DELETE. */
static void maybe_finish(struct bridge *b)
{
	for (struct xreq *x = b->list; x; x = x->next)
		if (!x->get)
			return;
	if (b->eof && !b->deleting)
		finish(b);
}

/* The client wants us gone (the MCP stdio shutdown: SIGTERM after stdin's
 * end): drop what is in flight and end the session now; a second signal
 * does not wait for that. */
static void signal_cb(int signo, void *arg)
{
	struct bridge *b = arg;

	b->eof = true;
	if (b->deleting)
		loop_stop(b->loop);
	else
		finish(b);
}

static int setup(struct bridge *b, struct cli *cli, int argc, char **argv)
{
	const char *tf = cli->token_file ? cli->token_file : getenv("TANDEM_MCP_TOKEN_FILE");

	b->url = argc >= 1 ? argv[0] : getenv("TANDEM_MCP_URL");
	if (argc > 1)
		return cli_usage("mcp takes one URL");
	if (!b->url || (strncmp(b->url, "http://", 7) && strncmp(b->url, "https://", 8)))
		return cli_usage("mcp needs the gateway's URL (http://HOST:PORT/mcp/...), or "
				 "$TANDEM_MCP_URL");
	if (tf && *tf && secret_from_file(tf, &b->token) < 0)
		return cli_fail(CLI_EXIT_USAGE, "cannot read the token file %s (it must exist, "
				"not be empty, and be readable by its owner only)", tf);
	b->loop = loop_new();
	/* Before libcurl can start a thread: they inherit the mask. */
	loop_signal_add(b->loop, SIGINT, signal_cb, b);
	loop_signal_add(b->loop, SIGTERM, signal_cb, b);
	b->http = http_new(b->loop);
	if (!b->http)
		return cli_fail(CLI_EXIT_CONNECT, "cannot set up libcurl");
	b->waiting = json_array();
	linebuf_init(&b->lb, MCPBRIDGE_MAX_LINE);
	b->in_flags = fcntl(STDIN_FILENO, F_GETFL);
	fcntl(STDIN_FILENO, F_SETFL, b->in_flags | O_NONBLOCK);
	b->in = loop_io_add(b->loop, STDIN_FILENO, LOOP_READ, stdin_cb, b);
	signal(SIGPIPE, SIG_IGN);
	return CLI_EXIT_OK;
}

int mcpbridge_cmd(struct cli *cli, int argc, char **argv)
{
	struct bridge b = { 0 };
	int r = setup(&b, cli, argc, argv);

	if (r == CLI_EXIT_OK) {
		while (!b.in && !b.eof) /* a stdin epoll refuses (a file): read it now */
			stdin_cb(NULL, STDIN_FILENO, 0, &b);
		if (!b.eof || b.list)
			loop_run(b.loop);
		r = b.rc;
	}
	while (b.list)
		http_cancel(b.list->r), xreq_free(b.list);
	loop_timer_cancel(b.stream_timer);
	loop_io_del(b.in);
	if (b.loop)
		fcntl(STDIN_FILENO, F_SETFL, b.in_flags);
	b.http = http_free(b.http);
	linebuf_free(&b.lb);
	json_decref(b.waiting);
	b.token = secret_free(b.token);
	if (b.loop)
		loop_free(b.loop);
	return r;
}
