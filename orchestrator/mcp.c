/* mcp.c - see mcp.h.
 *
 * Size: about 1,000 lines, kept in one file on purpose. It is one state
 * machine (startup, lists, calls, cancellation, the end of the session)
 * whose every part works on the session struct and its request table;
 * splitting it would mean an internal header exposing both, and every rule
 * of mcp.h's callback contract would then span files.
 *
 * Every request we send is a struct mcp_req: in a hash table keyed by its
 * JSON-RPC id while it awaits an answer (ids count up, so `id & mask`
 * spreads them perfectly and chains stay at about one entry), and in a list
 * of all live requests for the rare whole-session walks (transport gone,
 * stop, forget, free). Each request with a deadline owns a loop timer; the
 * startup sequence is covered by one session timer instead.
 *
 * A request that fails before it reaches the server (pending limit, send
 * error) keeps its place in the list, out of the table, with a 0 ms timer
 * that reports the error from the loop: callers never see their callback
 * run inside mcp_call_tool.
 *
 * Completion goes through one path, req_finish(): detach the request, then
 * its `done` function frees it and acts (user callback, next list page,
 * startup step). Callbacks may free the session: entry points bracket their
 * work with session_enter/session_leave, mcp_session_free inside a callback
 * only tears down and marks the session dead, and the outermost leave
 * releases the memory. Code that runs after a callback checks s->dead.
 *
 * Results are never copied: the callback borrows the "result" member of the
 * parsed message, and listed items are shared (reference counted) with the
 * page they came from. A call that relays its result (mcp_call_tool_text)
 * is not even parsed when the scan vouches for the server's text
 * (receive_text): that was the largest part of the orchestrator's CPU per
 * relayed call.
 */
#include "mcp.h"

#include "jsonscan.h"
#include "jsonutil.h"
#include "log.h"
#include "loop.h"
#include "metrics_tandem.h"
#include "util.h"
#include "version.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define DEFAULT_STARTUP_MS 30000u
#define DEFAULT_TOOL_MS 300000u
#define HASH_MIN_BUCKETS 16u
#define MAX_ERROR_TEXT 4096 /* bytes of a server's error message we keep */

enum req_kind { REQ_INIT, REQ_LIST, REQ_CALL };

struct mcp_req;
typedef void (*req_done_fn)(struct mcp_session *s, struct mcp_req *r, json_t *result,
			    const char *error);

struct mcp_req {
	struct mcp_session *s;
	uint64_t id;
	enum req_kind kind;
	const char *method; /* static string */
	uint64_t started_ms; /* a tool call's duration metric */
	enum metrics_tool_outcome failed_as; /* how an error ends it (metrics) */
	bool hashed;	    /* in the id table: sent, awaiting an answer */
	char *deferred_error;
	uint64_t timeout_ms;
	struct loop_timer *timer;
	bool ticketed;	    /* sent with its deadline (transport send_request) */
	uint64_t ticket;
	req_done_fn done;
	mcp_result_cb cb; /* REQ_CALL: one of cb and text_cb */
	mcp_text_cb text_cb;
	mcp_progress_cb progress_cb; /* REQ_CALL asking for progress: its id is the token */
	void *arg;
	struct mcp_list *list; /* REQ_LIST */
	struct mcp_req *hnext;
	struct mcp_req *prev, *next;
};

/* One paged list (tools, resources, resource templates). acc != NULL while
 * a listing is under way; the session's array is replaced only when the
 * last page is in, so readers never see a half list. */
struct mcp_list {
	const char *method;   /* "tools/list" */
	const char *key;      /* member holding the page's items: "tools" */
	const char *item_key; /* string member every item must have: "name" */
	json_t **dest;
	json_t *acc;
	unsigned pages;
	size_t skipped; /* malformed items dropped */
	bool again;	/* list_changed arrived while listing: list again */
	bool startup;	/* this run is part of the startup sequence */
	bool required;	/* its failure fails startup */
};

enum { LIST_TOOLS, LIST_RESOURCES, LIST_TEMPLATES, LIST_N };

struct mcp_session {
	struct loop *loop;
	char *name;
	uint64_t startup_ms, tool_ms;
	struct mcp_transport t;
	struct mcp_session_ops ops;
	void *arg;

	enum mcp_state state;
	bool started, initialized, stopping, has_resources;
	char *error;
	char *protocol;
	json_t *server_info, *capabilities;
	json_t *tools, *resources, *templates;
	struct mcp_list lists[LIST_N];
	unsigned startup_lists; /* startup listings still running */
	struct loop_timer *startup_timer;

	uint64_t next_id;
	struct mcp_req **buckets;
	size_t nbuckets; /* power of two */
	size_t npending; /* requests in the table */
	size_t nreqs;	 /* requests alive (table + deferred errors) */
	size_t ntext;	 /* of those, calls that take text: receive_text looks */
	struct mcp_req *head, *tail;

	unsigned depth; /* nesting of entry points that may run callbacks */
	bool dead;	/* freed from inside a callback */
};

static const char *const known_versions[] = MCP_PROTOCOL_VERSIONS;

/* ---- session lifetime guards ---- */

static void session_release(struct mcp_session *s);

static void session_enter(struct mcp_session *s) { s->depth++; }

/* The caller must not touch s afterwards. */
static void session_leave(struct mcp_session *s)
{
	if (--s->depth == 0 && s->dead)
		session_release(s);
}

static bool session_final(const struct mcp_session *s)
{
	return s->state == MCP_FAILED || s->state == MCP_CLOSED;
}

/* ---- id table ---- */

static size_t hash_slot(size_t nbuckets, uint64_t id) { return (size_t)(id & (nbuckets - 1)); }

static void hash_grow(struct mcp_session *s)
{
	size_t n = s->nbuckets * 2;
	struct mcp_req **b = xcalloc(n, sizeof(*b));

	for (size_t i = 0; i < s->nbuckets; i++) {
		struct mcp_req *r = s->buckets[i], *next;

		for (; r; r = next) {
			size_t slot = hash_slot(n, r->id);

			next = r->hnext;
			r->hnext = b[slot];
			b[slot] = r;
		}
	}
	free(s->buckets);
	s->buckets = b;
	s->nbuckets = n;
}

static void hash_insert(struct mcp_session *s, struct mcp_req *r)
{
	size_t slot;

	if (s->npending >= s->nbuckets && s->nbuckets < MCP_MAX_PENDING)
		hash_grow(s);
	slot = hash_slot(s->nbuckets, r->id);
	r->hnext = s->buckets[slot];
	s->buckets[slot] = r;
	r->hashed = true;
	s->npending++;
}

static struct mcp_req *hash_find(const struct mcp_session *s, uint64_t id)
{
	struct mcp_req *r = s->buckets[hash_slot(s->nbuckets, id)];

	while (r && r->id != id)
		r = r->hnext;
	return r;
}

static void hash_remove(struct mcp_session *s, struct mcp_req *r)
{
	struct mcp_req **pp = &s->buckets[hash_slot(s->nbuckets, r->id)];

	while (*pp != r)
		pp = &(*pp)->hnext;
	*pp = r->hnext;
	r->hnext = NULL;
	r->hashed = false;
	s->npending--;
}

/* ---- requests ---- */

static void req_timer_cb(struct loop_timer *t, void *arg);

static struct mcp_req *req_new(struct mcp_session *s, enum req_kind kind, const char *method,
			       uint64_t timeout_ms, req_done_fn done)
{
	struct mcp_req *r = xcalloc(1, sizeof(*r));

	r->s = s;
	r->kind = kind;
	r->method = method;
	r->timeout_ms = timeout_ms;
	r->started_ms = now_ms();
	r->failed_as = METRICS_TOOL_FAILED;
	r->done = done;
	r->id = s->next_id++;
	r->prev = s->tail;
	if (s->tail)
		s->tail->next = r;
	else
		s->head = r;
	s->tail = r;
	s->nreqs++;
	return r;
}

/* Takes r out of the table and the list and stops its timer. */
static void req_detach(struct mcp_session *s, struct mcp_req *r)
{
	if (r->hashed)
		hash_remove(s, r);
	if (r->prev)
		r->prev->next = r->next;
	else
		s->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		s->tail = r->prev;
	r->prev = r->next = NULL;
	loop_timer_cancel(r->timer);
	r->timer = NULL;
	s->nreqs--;
}

static void req_free(struct mcp_req *r)
{
	if (r->text_cb)
		r->s->ntext--;
	free(r->deferred_error);
	free(r);
}

/* Tool calls by outcome and duration: counted here, once per call, whoever
 * asked (a turn, mcpServer/tool/call or the gateway). */
static void count_call(const struct mcp_req *r, bool is_error, const char *error)
{
	enum metrics_tool_outcome o = r->failed_as;

	if (r->kind != REQ_CALL || strcmp(r->method, "tools/call") != 0)
		return;
	if (!error)
		o = is_error ? METRICS_TOOL_ERROR : METRICS_TOOL_OK;
	metrics_tool_call(o, (double)(now_ms() - r->started_ms) / 1e3);
}

static void req_finish(struct mcp_session *s, struct mcp_req *r, json_t *result,
		       const char *error)
{
	count_call(r, json_is_true(json_object_get(result, "isError")), error);
	req_detach(s, r);
	r->done(s, r, result, error);
}

/* Reports `error` (taken) for r from the loop, not from the caller's stack. */
static void req_defer_error(struct mcp_session *s, struct mcp_req *r, char *error)
{
	if (r->hashed)
		hash_remove(s, r);
	loop_timer_cancel(r->timer);
	free(r->deferred_error);
	r->deferred_error = error;
	r->timer = loop_timer_add(s->loop, 0, req_timer_cb, r);
}

/* Encodes and hands msg (taken) to the transport. */
static int send_msg(struct mcp_session *s, json_t *msg)
{
	char *text = jsonu_dumps(msg);
	int rc;

	json_decref(msg);
	if (!text)
		return -ENOMEM;
	rc = s->t.send(s->t.ctx, text, strlen(text));
	free(text);
	return rc;
}

/* A request's text: the envelope written by hand around the params'
 * encoding (params taken; NULL = none), one allocation fewer than packing
 * and dumping a whole message per call. method is one of ours (plain
 * ASCII, nothing to escape). NULL when params cannot be encoded. */
static char *request_text(const struct mcp_req *r, json_t *params, size_t *len)
{
	char *p = params ? jsonu_dumps(params) : NULL, *text;
	int n;

	json_decref(params);
	if (params && !p)
		return NULL;
	n = asprintf(&text, "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64 ",\"method\":\"%s\"%s%s}",
		     r->id, r->method, p ? ",\"params\":" : "", p ? p : "");
	free(p);
	if (n < 0)
		return NULL;
	*len = (size_t)n;
	return text;
}

/* Sends r with params (taken; NULL = none) and starts its timer: with its
 * deadline when the transport carries one to the far end. On failure
 * returns -errno and r is live but not in the table. */
static int req_submit(struct mcp_session *s, struct mcp_req *r, json_t *params)
{
	char *text;
	size_t len;
	int rc;

	if (s->npending >= MCP_MAX_PENDING) {
		json_decref(params);
		return -ENOBUFS;
	}
	text = request_text(r, params, &len);
	if (!text)
		return -ENOMEM;
	if (r->kind == REQ_CALL && r->timeout_ms && s->t.send_request) {
		rc = s->t.send_request(s->t.ctx, text, len, r->id, r->timeout_ms, &r->ticket);
		r->ticketed = rc == 0;
	} else {
		rc = s->t.send(s->t.ctx, text, len);
	}
	free(text);
	if (rc < 0)
		return rc;
	hash_insert(s, r);
	if (r->timeout_ms)
		r->timer = loop_timer_add(s->loop, r->timeout_ms, req_timer_cb, r);
	return 0;
}

static char *submit_error_text(struct mcp_session *s, const char *method, int rc)
{
	if (rc == -ENOBUFS)
		return xasprintf("too many pending requests to MCP server '%s' (limit %u)",
				 s->name, MCP_MAX_PENDING);
	return xasprintf("cannot send %s to MCP server '%s': %s", method, s->name, strerror(-rc));
}

static void send_notification(struct mcp_session *s, const char *method, json_t *params)
{
	json_t *msg = json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method", method);
	int rc;

	if (params)
		json_object_set_new(msg, "params", params);
	rc = send_msg(s, msg);
	if (rc < 0)
		log_debug("MCP server '%s': cannot send %s: %s", s->name, method, strerror(-rc));
}

/* Stops request r: the far end first takes it back if it still waits
 * there (ticketed calls), then the server hears notifications/cancelled
 * in case it already has it. */
static void send_cancelled_req(struct mcp_session *s, struct mcp_req *r, const char *reason);

static void send_cancelled(struct mcp_session *s, uint64_t id, const char *reason)
{
	json_t *params = json_pack("{s:I}", "requestId", (json_int_t)id);

	if (reason)
		json_object_set_new(params, "reason", json_string(reason));
	send_notification(s, "notifications/cancelled", params);
}

static void send_cancelled_req(struct mcp_session *s, struct mcp_req *r, const char *reason)
{
	if (r->ticketed && s->t.cancel_request)
		s->t.cancel_request(s->t.ctx, r->id, reason);
	send_cancelled(s, r->id, reason);
}

static void req_timer_cb(struct loop_timer *t, void *arg)
{
	struct mcp_req *r = arg;
	struct mcp_session *s = r->s;
	_cleanup_free_ char *error = NULL;

	(void)t;
	r->timer = NULL; /* fired: the handle is gone */
	session_enter(s);
	if (r->deferred_error) {
		error = r->deferred_error;
		r->deferred_error = NULL;
	} else if (r->kind == REQ_CALL) {
		/* Honest outcomes: say whether it may have run. */
		bool never = r->ticketed && s->t.maybe_reached &&
			     !s->t.maybe_reached(s->t.ctx, r->ticket);

		error = xasprintf("%s to MCP server '%s' timed out after %" PRIu64 " ms; %s",
				  r->method, s->name, r->timeout_ms,
				  never ? "it never reached the server and will not run"
					: "the outcome is unknown: the server may have run it");
		send_cancelled_req(s, r, error);
	} else {
		error = xasprintf("%s to MCP server '%s' timed out after %" PRIu64 " ms",
				  r->method, s->name, r->timeout_ms);
		r->failed_as = METRICS_TOOL_TIMEOUT;
		/* The answer would be dropped anyway; let the server stop. */
		if (r->kind != REQ_INIT)
			send_cancelled(s, r->id, error);
	}
	req_finish(s, r, NULL, error);
	session_leave(s);
}

/* ---- ending the session ---- */

static void list_reset(struct mcp_list *list)
{
	json_decref(list->acc);
	list->acc = NULL;
	list->again = false;
	list->startup = false;
}

/* Completes every live request with `error`. Internal requests see the
 * session stopping or final and just go away; user calls get their
 * callback. Stops early if a callback frees the session. A call the far
 * end provably never received says so (honest outcomes): the rest may
 * have run. */
static void drain_requests(struct mcp_session *s, const char *error)
{
	struct mcp_req *r;

	for (size_t i = 0; i < LIST_N; i++)
		list_reset(&s->lists[i]);
	while (!s->dead && (r = s->head) != NULL) {
		_cleanup_free_ char *never = NULL;

		if (r->kind == REQ_CALL && r->ticketed && s->t.maybe_reached &&
		    !s->t.maybe_reached(s->t.ctx, r->ticket))
			never = xasprintf("%s; this call never reached the server and will not run",
					  error);
		req_finish(s, r, NULL, never ? never : error);
	}
}

/* -> FAILED or CLOSED with `error`; pending calls fail, then state_cb. */
static void session_end(struct mcp_session *s, enum mcp_state final, const char *error)
{
	if (session_final(s))
		return;
	s->state = final;
	free(s->error);
	s->error = xstrdup(error);
	loop_timer_cancel(s->startup_timer);
	s->startup_timer = NULL;
	drain_requests(s, error);
	if (!s->dead && s->ops.state_cb)
		s->ops.state_cb(s, final, s->error, s->arg);
}

static void session_fail(struct mcp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void session_fail(struct mcp_session *s, const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		abort();
	va_end(ap);
	session_end(s, MCP_FAILED, msg);
}

static void set_ready(struct mcp_session *s)
{
	loop_timer_cancel(s->startup_timer);
	s->startup_timer = NULL;
	s->state = MCP_READY;
	if (s->ops.state_cb)
		s->ops.state_cb(s, MCP_READY, NULL, s->arg);
}

/* Internal requests are moot once the session ends or is being stopped. */
static bool session_active(const struct mcp_session *s)
{
	return !s->dead && !s->stopping && !session_final(s);
}

/* ---- lists ---- */

static void list_request_page(struct mcp_session *s, struct mcp_list *list, const char *cursor);

/* Appends the valid items of one page to list->acc; sets *cursor to the
 * next page's cursor (borrowed from result) or NULL. Returns an error text
 * (caller frees) or NULL. */
static char *list_take_page(struct mcp_list *list, json_t *result, const char **cursor)
{
	json_t *items, *next, *item;
	size_t i;

	if (!json_is_object(result))
		return xasprintf("%s result is not an object", list->method);
	items = json_object_get(result, list->key);
	if (!json_is_array(items))
		return xasprintf("%s result has no '%s' array", list->method, list->key);
	json_array_foreach(items, i, item) {
		if (!json_is_string(json_object_get(item, list->item_key))) {
			list->skipped++;
			continue;
		}
		if (json_array_size(list->acc) >= MCP_MAX_LIST_ITEMS)
			return xasprintf("%s returned more than %u %s", list->method,
					 MCP_MAX_LIST_ITEMS, list->key);
		json_array_append(list->acc, item); /* shared, not copied */
	}
	next = json_object_get(result, "nextCursor");
	*cursor = NULL;
	if (json_is_string(next) && json_string_length(next) > 0)
		*cursor = json_string_value(next);
	else if (next && !json_is_null(next) && !json_is_string(next))
		return xasprintf("%s returned a nextCursor that is not a string", list->method);
	return NULL;
}

static void startup_list_done(struct mcp_session *s)
{
	if (--s->startup_lists == 0 && s->state == MCP_STARTING)
		set_ready(s);
}

/* The listing ended, with error (a text) or with list->acc complete. */
static void list_finish(struct mcp_session *s, struct mcp_list *list, const char *error)
{
	json_t *acc = list->acc;
	bool startup = list->startup;

	list->acc = NULL;
	list->startup = false;
	if (error) {
		json_decref(acc);
		if (startup && list->required) {
			session_fail(s, "%s failed: %s", list->method, error);
			return;
		}
		/* An optional list failing at startup is common (no templates). */
		if (startup)
			log_debug("MCP server '%s': %s failed: %s", s->name, list->method, error);
		else
			log_warn("MCP server '%s': %s failed, keeping the previous list: %s",
				 s->name, list->method, error);
	} else {
		if (list->skipped)
			log_warn("MCP server '%s': %s: ignored %zu entries without a string '%s'",
				 s->name, list->method, list->skipped, list->item_key);
		json_decref(*list->dest);
		*list->dest = acc;
	}
	if (startup)
		startup_list_done(s);
	else if (!error && list == &s->lists[LIST_TOOLS] && s->state == MCP_READY &&
		 s->ops.tools_changed_cb)
		s->ops.tools_changed_cb(s, s->arg);
	if (session_active(s) && list->again)
		list_request_page(s, list, NULL);
}

static void list_done(struct mcp_session *s, struct mcp_req *r, json_t *result,
		      const char *error)
{
	struct mcp_list *list = r->list;
	_cleanup_free_ char *perr = NULL;
	const char *cursor = NULL;

	req_free(r);
	if (!session_active(s) || !list->acc)
		return;
	if (!error)
		error = perr = list_take_page(list, result, &cursor);
	if (!error && cursor && list->pages >= MCP_MAX_LIST_PAGES)
		error = perr = xasprintf("%s did not end after %u pages", list->method,
					 MCP_MAX_LIST_PAGES);
	if (!error && cursor) {
		list_request_page(s, list, cursor);
		return;
	}
	list_finish(s, list, error);
}

/* Requests one page; a first page (cursor NULL) starts a listing, or marks
 * the running one to be repeated. */
static void list_request_page(struct mcp_session *s, struct mcp_list *list, const char *cursor)
{
	struct mcp_req *r;
	int rc;

	if (!cursor) {
		if (list->acc) {
			list->again = true;
			return;
		}
		list->acc = json_array();
		list->pages = 0;
		list->skipped = 0;
		list->again = false;
	}
	list->pages++;
	/* Startup pages are bounded by the startup timer; later re-lists by
	 * the same span per page. */
	r = req_new(s, REQ_LIST, list->method, list->startup ? 0 : s->startup_ms, list_done);
	r->list = list;
	rc = req_submit(s, r, cursor ? json_pack("{s:s}", "cursor", cursor) : NULL);
	if (rc < 0)
		req_defer_error(s, r, submit_error_text(s, list->method, rc));
}

static void list_start_startup(struct mcp_session *s, struct mcp_list *list, bool required)
{
	list->required = required;
	list->startup = true;
	s->startup_lists++;
	list_request_page(s, list, NULL);
}

/* ---- initialize ---- */

static bool version_known(const char *v)
{
	for (size_t i = 0; i < ARRAY_SIZE(known_versions); i++)
		if (strcmp(v, known_versions[i]) == 0)
			return true;
	return false;
}

/* Validates the initialize result and keeps what we need; error text or NULL. */
static char *take_init_result(struct mcp_session *s, json_t *result)
{
	json_t *caps, *info;
	const char *v;

	if (!json_is_object(result))
		return xstrdup("initialize result is not an object");
	v = json_string_value(json_object_get(result, "protocolVersion"));
	if (!v)
		return xstrdup("initialize result has no protocolVersion");
	if (!version_known(v))
		return xasprintf("server chose unsupported protocol version '%.64s' (we speak "
				 "2024-11-05, 2025-03-26, 2025-06-18)", v);
	caps = json_object_get(result, "capabilities");
	if (caps && !json_is_object(caps))
		return xstrdup("initialize result: capabilities is not an object");
	info = json_object_get(result, "serverInfo");
	s->protocol = xstrdup(v);
	s->capabilities = caps ? json_incref(caps) : json_object();
	s->server_info = json_is_object(info) ? json_incref(info) : NULL;
	return NULL;
}

/* What initialize said, handed to the transport to keep with the process
 * (the executor's MCP_NOTE): an orchestrator that re-attaches the process
 * later adopts the session with it instead of guessing. */
static void remember_init(struct mcp_session *s)
{
	json_t *note;
	char *text;

	if (!s->t.remember)
		return;
	note = json_pack("{s:s, s:O}", "protocolVersion", s->protocol, "capabilities",
			 s->capabilities);
	if (note && s->server_info)
		json_object_set(note, "serverInfo", s->server_info);
	text = note ? jsonu_dumps(note) : NULL;
	json_decref(note);
	if (text)
		s->t.remember(s->t.ctx, text, strlen(text));
	free(text);
}

static void init_done(struct mcp_session *s, struct mcp_req *r, json_t *result,
		      const char *error)
{
	_cleanup_free_ char *perr = NULL;
	bool has_tools;

	req_free(r);
	if (!session_active(s))
		return;
	if (error) {
		session_fail(s, "initialize failed: %s", error);
		return;
	}
	perr = take_init_result(s, result);
	if (perr) {
		session_fail(s, "MCP server '%s': %s", s->name, perr);
		return;
	}
	send_notification(s, "notifications/initialized", NULL);
	s->initialized = true;
	remember_init(s);
	has_tools = json_object_get(s->capabilities, "tools") != NULL;
	s->has_resources = json_object_get(s->capabilities, "resources") != NULL;
	/* Listing tools of a server that did not advertise them is harmless;
	 * only an advertised tools capability makes the list mandatory. */
	list_start_startup(s, &s->lists[LIST_TOOLS], has_tools);
	if (s->has_resources) {
		list_start_startup(s, &s->lists[LIST_RESOURCES], false);
		list_start_startup(s, &s->lists[LIST_TEMPLATES], false);
	}
}

/* Names what startup was waiting for when it timed out. */
static char *startup_waiting_for(const struct mcp_session *s)
{
	char buf[128] = "";
	size_t n = 0;

	if (!s->initialized)
		return xstrdup("initialize");
	for (size_t i = 0; i < LIST_N; i++) {
		if (!s->lists[i].startup)
			continue;
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", n ? ", " : "",
				      s->lists[i].method);
	}
	return xstrdup(n ? buf : "the server");
}

static void startup_timer_cb(struct loop_timer *t, void *arg)
{
	struct mcp_session *s = arg;
	_cleanup_free_ char *what = startup_waiting_for(s);

	(void)t;
	s->startup_timer = NULL;
	session_enter(s);
	session_fail(s, "MCP server '%s' startup timed out after %" PRIu64 " ms (waiting for %s)",
		     s->name, s->startup_ms, what);
	session_leave(s);
}

/* ---- user calls ---- */

static void call_done(struct mcp_session *s, struct mcp_req *r, json_t *result,
		      const char *error)
{
	mcp_result_cb cb = r->cb;
	mcp_text_cb text_cb = r->text_cb;
	void *arg = r->arg;
	const char *method = r->method;
	_cleanup_free_ char *perr = NULL;

	req_free(r);
	if (!error && !json_is_object(result))
		error = perr = xasprintf("invalid %s result from MCP server '%s': not an object",
					 method, s->name);
	if (text_cb)
		text_cb(s, error ? NULL : &(struct mcp_result){ .json = result }, error, arg);
	else
		cb(s, error ? NULL : result, error, arg);
}

/* params._meta: the caller's (copied: the token is ours to add), plus our
 * progressToken, the request's own id, when progress is asked for. */
static void call_meta(struct mcp_req *r, json_t *params, const struct mcp_call_opts *o)
{
	json_t *meta;

	if (!o || (!o->meta && !o->progress_cb))
		return;
	meta = json_is_object(o->meta) ? json_copy(o->meta) : json_object();
	json_object_del(meta, "progressToken");
	if (o->progress_cb) {
		r->progress_cb = o->progress_cb;
		json_object_set_new(meta, "progressToken", json_integer((json_int_t)r->id));
	}
	json_object_set_new(params, "_meta", meta);
}

/* One of cb and text_cb is set. */
static uint64_t call_start(struct mcp_session *s, const char *method, json_t *params,
			   const struct mcp_call_opts *o, mcp_result_cb cb, mcp_text_cb text_cb,
			   void *arg)
{
	uint64_t timeout_ms = o ? o->timeout_ms : 0;
	struct mcp_req *r;
	int rc;

	/* params is NULL if a string was not valid UTF-8. */
	if (!s || s->dead || s->state != MCP_READY || s->stopping || (!cb && !text_cb) ||
	    !params) {
		json_decref(params);
		return 0;
	}
	r = req_new(s, REQ_CALL, method, timeout_ms ? timeout_ms : s->tool_ms, call_done);
	r->cb = cb;
	r->text_cb = text_cb;
	s->ntext += text_cb != NULL;
	r->arg = arg;
	call_meta(r, params, o);
	rc = req_submit(s, r, params);
	if (rc < 0)
		req_defer_error(s, r, submit_error_text(s, method, rc));
	return r->id + 1;
}

uint64_t mcp_call_tool(struct mcp_session *s, const char *tool, json_t *arguments,
		       uint64_t timeout_ms, mcp_result_cb cb, void *arg)
{
	const struct mcp_call_opts o = { .timeout_ms = timeout_ms };

	return mcp_call_tool_opts(s, tool, arguments, &o, cb, arg);
}

static json_t *tool_params(const char *tool, json_t *arguments)
{
	json_t *args;

	if (!tool || (arguments && !json_is_object(arguments)))
		return NULL;
	args = arguments ? json_incref(arguments) : json_object(); /* shared, not copied */
	return json_pack("{s:s, s:o}", "name", tool, "arguments", args);
}

uint64_t mcp_call_tool_opts(struct mcp_session *s, const char *tool, json_t *arguments,
			    const struct mcp_call_opts *o, mcp_result_cb cb, void *arg)
{
	return call_start(s, "tools/call", tool_params(tool, arguments), o, cb, NULL, arg);
}

uint64_t mcp_call_tool_text(struct mcp_session *s, const char *tool, json_t *arguments,
			    uint64_t timeout_ms, mcp_text_cb cb, void *arg)
{
	const struct mcp_call_opts o = { .timeout_ms = timeout_ms };

	return call_start(s, "tools/call", tool_params(tool, arguments), &o, NULL, cb, arg);
}

uint64_t mcp_read_resource(struct mcp_session *s, const char *uri, mcp_result_cb cb, void *arg)
{
	if (!uri)
		return 0;
	return call_start(s, "resources/read", json_pack("{s:s}", "uri", uri), NULL, cb, NULL,
			  arg);
}

uint64_t mcp_read_resource_text(struct mcp_session *s, const char *uri, mcp_text_cb cb,
				void *arg)
{
	if (!uri)
		return 0;
	return call_start(s, "resources/read", json_pack("{s:s}", "uri", uri), NULL, NULL, cb,
			  arg);
}

/* The methods a caller may send through mcp_request: the ones whose answer
 * the session keeps no state about. */
static const char *const passthrough_methods[] = {
	"prompts/list", "prompts/get", "resources/read", "resources/list",
	"resources/templates/list", "completion/complete", "ping",
};

uint64_t mcp_request(struct mcp_session *s, const char *method, json_t *params,
		     const struct mcp_call_opts *o, mcp_result_cb cb, void *arg)
{
	for (size_t i = 0; i < ARRAY_SIZE(passthrough_methods); i++)
		if (method && strcmp(method, passthrough_methods[i]) == 0)
			return call_start(s, passthrough_methods[i],
					  json_is_object(params) ? json_copy(params)
								 : json_object(),
					  o, cb, NULL, arg);
	return 0;
}

void mcp_cancel(struct mcp_session *s, uint64_t call_id, const char *reason)
{
	_cleanup_free_ char *error = NULL;
	struct mcp_req *r;

	if (!s || s->dead || call_id == 0)
		return;
	r = hash_find(s, call_id - 1);
	if (!r || r->kind != REQ_CALL)
		return;
	send_cancelled_req(s, r, reason);
	error = xasprintf("%s to MCP server '%s' cancelled%s%s", r->method, s->name,
			  reason ? ": " : "", reason ? reason : "");
	r->failed_as = METRICS_TOOL_CANCELLED;
	session_enter(s);
	req_finish(s, r, NULL, error);
	session_leave(s);
}

void mcp_session_forget_callbacks(struct mcp_session *s, void *arg)
{
	struct mcp_req *r, *next;

	if (!s || s->dead)
		return;
	for (r = s->head; r; r = next) {
		next = r->next;
		if (r->kind != REQ_CALL || r->arg != arg)
			continue;
		if (r->hashed)
			send_cancelled(s, r->id, "caller went away");
		req_detach(s, r);
		req_free(r);
	}
}

/* ---- receiving ---- */

/* A decimal string or an exact real naming a non-negative integer id. */
static bool id_as_ours(json_t *id, uint64_t *n)
{
	const char *t = json_string_value(id);
	double d;
	char *end;

	if (t) {
		if (!*t || *t < '0' || *t > '9' || strlen(t) > 19)
			return false;
		*n = strtoull(t, &end, 10);
		return !*end;
	}
	if (!json_is_real(id))
		return false;
	d = json_real_value(id);
	if (!(d >= 0 && d < 9007199254740992.0) || d != (double)(uint64_t)d) /* 2^53: exact */
		return false;
	*n = (uint64_t)d;
	return true;
}

/* The caller's error text. An error object that breaks JSON-RPC (no
 * integer code, a message that is not a string) still ends its call, with
 * a text that says it was malformed: never dropped, never a wait for the
 * timeout. */
static char *rpc_error_text(json_t *err)
{
	json_t *code = json_object_get(err, "code"), *mv = json_object_get(err, "message");
	const char *msg = json_string_value(mv);
	int len;

	if (!json_is_object(err))
		return xstrdup("MCP error: malformed error response (not an object)");
	len = msg ? (int)MIN(strlen(msg), (size_t)MAX_ERROR_TEXT) : 0;
	if (!json_is_integer(code))
		return xasprintf("MCP error: malformed error response (code is %s): %.*s",
				 code ? "not an integer" : "missing", len, msg ? msg : "");
	if (mv && !msg)
		return xasprintf("MCP error %" JSON_INTEGER_FORMAT
				 ": malformed error response (message is not a string)",
				 json_integer_value(code));
	return xasprintf("MCP error %" JSON_INTEGER_FORMAT ": %.*s", json_integer_value(code),
			 len, msg ? msg : "");
}

/* A message that does not parse may still answer one of our requests,
 * which then fails (malformed) instead of waiting for its timeout. An
 * integer out of range (an error code beyond int64): read again with every
 * integer as a real, it names its id. What even that cannot load (a number
 * beyond double, broken UTF-8): a top-level scan may still find its id. */
static void handle_unparsable(struct mcp_session *s, const char *data, size_t len,
			      const char *why)
{
	json_t *m = json_loadb(data, len, JSON_DECODE_INT_AS_REAL | JSON_REJECT_DUPLICATES, NULL);
	struct mcp_req *r;
	uint64_t n;
	bool found;

	if (m)
		found = json_is_object(m) && !json_object_get(m, "method") &&
			id_as_ours(json_object_get(m, "id"), &n);
	else
		found = jsonu_scan_top_uint(data, len, "method", &n) < 0 &&
			jsonu_scan_top_uint(data, len, "id", &n) == 1;
	if (found && (r = hash_find(s, n))) {
		char *text = xasprintf("MCP error: malformed response (%s)", why);

		req_finish(s, r, NULL, text);
		free(text);
	}
	json_decref(m);
}

static void handle_response(struct mcp_session *s, json_t *id, json_t *m)
{
	json_t *err = json_object_get(m, "error");
	struct mcp_req *r;
	char *text;

	if (json_is_null(err)) /* "error": null beside a result: sloppy, not an error */
		err = NULL;
	/* We only send non-negative integers. The same number written as a
	 * string or a real is one of ours answered by a sloppy server: that
	 * call ends, marked malformed, rather than wait for its timeout. */
	if (!json_is_integer(id) || json_integer_value(id) < 0) {
		uint64_t n;

		if (id_as_ours(id, &n) && (r = hash_find(s, n))) {
			req_finish(s, r, NULL, "MCP error: malformed response (the id is not an "
					       "integer)");
			return;
		}
		log_debug("MCP server '%s': ignoring response with a foreign id", s->name);
		return;
	}
	r = hash_find(s, (uint64_t)json_integer_value(id));
	if (!r) {
		log_debug("MCP server '%s': ignoring response to unknown or finished request "
			  "%" JSON_INTEGER_FORMAT, s->name, json_integer_value(id));
		return;
	}
	if (err) {
		text = rpc_error_text(err);
		req_finish(s, r, NULL, text);
		free(text);
		return;
	}
	req_finish(s, r, json_object_get(m, "result"), NULL);
}

/* A request from the server: we offer no client features, so only ping. */
static void handle_server_request(struct mcp_session *s, const char *method, json_t *id)
{
	json_t *resp;
	int rc;

	if (strcmp(method, "ping") == 0) {
		resp = json_pack("{s:s, s:O, s:{}}", "jsonrpc", "2.0", "id", id, "result");
	} else {
		log_debug("MCP server '%s': refusing request %.64s", s->name, method);
		resp = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id, "error",
				 "code", MCP_ERR_METHOD_NOT_FOUND, "message", "Method not found");
	}
	rc = send_msg(s, resp);
	if (rc < 0)
		log_debug("MCP server '%s': cannot answer %.64s: %s", s->name, method,
			  strerror(-rc));
}

/* notifications/progress for a call that asked for it: the token is the
 * call's id. Anything else (a token we never gave, a finished call) is
 * dropped. */
static void handle_progress(struct mcp_session *s, json_t *params)
{
	json_t *token = json_object_get(params, "progressToken");
	struct mcp_req *r;

	if (!json_is_integer(token) || json_integer_value(token) < 0 ||
	    !json_is_number(json_object_get(params, "progress")))
		return;
	r = hash_find(s, (uint64_t)json_integer_value(token));
	if (r && r->kind == REQ_CALL && r->progress_cb)
		r->progress_cb(s, params, r->arg);
}

static void handle_notification(struct mcp_session *s, const char *method, json_t *params)
{
	if (!s->initialized || !session_active(s)) {
		log_debug("MCP server '%s': ignoring %.64s", s->name, method);
	} else if (strcmp(method, "notifications/tools/list_changed") == 0) {
		list_request_page(s, &s->lists[LIST_TOOLS], NULL);
	} else if (strcmp(method, "notifications/resources/list_changed") == 0 &&
		   s->has_resources) {
		list_request_page(s, &s->lists[LIST_RESOURCES], NULL);
		list_request_page(s, &s->lists[LIST_TEMPLATES], NULL);
	} else if (strcmp(method, "notifications/progress") == 0) {
		handle_progress(s, params);
	} else {
		log_debug("MCP server '%s': ignoring notification %.64s", s->name, method);
	}
}

static void handle_message(struct mcp_session *s, json_t *m)
{
	json_t *ver = json_object_get(m, "jsonrpc");
	json_t *method = json_object_get(m, "method");
	json_t *id = json_object_get(m, "id");

	if (!json_is_object(m) || (ver && !(json_is_string(ver) &&
					    strcmp(json_string_value(ver), "2.0") == 0))) {
		log_debug("MCP server '%s': ignoring a JSON value that is not JSON-RPC 2.0",
			  s->name);
		return;
	}
	if (json_is_string(method)) {
		if (!id)
			handle_notification(s, json_string_value(method),
					    json_object_get(m, "params"));
		else if (json_is_string(id) || json_is_integer(id))
			handle_server_request(s, json_string_value(method), id);
		else
			log_debug("MCP server '%s': ignoring request with a bad id", s->name);
		return;
	}
	if (!method && id && (json_object_get(m, "result") || json_object_get(m, "error"))) {
		handle_response(s, id, m);
		return;
	}
	log_debug("MCP server '%s': ignoring a message that is not JSON-RPC", s->name);
}

/* The answer to a call that takes text, when the scan vouches for the
 * message: matched by its id and handed on as written. Returns false for
 * anything else (a request, a notification, an error, a message the scan
 * declines, a result it cannot list): the caller parses it, so the
 * outcome is the one jansson would give, only cheaper. */
static bool receive_text(struct mcp_session *s, const char *data, size_t len)
{
	struct jscan_member m[8], rm[MCP_RESULT_MEMBERS];
	const struct jscan_member *ver, *res, *err;
	struct mcp_req *r;
	mcp_text_cb cb;
	void *arg;
	uint64_t id;
	int n, rn;

	if (len > MCP_MAX_MESSAGE)
		return false;
	n = jscan_object_with(data, len, m, ARRAY_SIZE(m), "result", rm, ARRAY_SIZE(rm), &rn);
	if (n < 0 || (size_t)n > ARRAY_SIZE(m) || rn < 0 || (size_t)rn > ARRAY_SIZE(rm))
		return false;
	ver = jscan_find(m, (size_t)n, "jsonrpc");
	res = jscan_find(m, (size_t)n, "result");
	err = jscan_find(m, (size_t)n, "error");
	/* rn >= 0: "result" is there and an object, its members in rm. */
	if ((ver && !jscan_is(ver, "\"2.0\"")) || jscan_find(m, (size_t)n, "method") ||
	    (err && !jscan_is(err, "null")) || !jscan_uint(jscan_find(m, (size_t)n, "id"), &id))
		return false;
	r = hash_find(s, id);
	if (!r || r->kind != REQ_CALL || !r->text_cb)
		return false;
	session_enter(s);
	count_call(r, jscan_is(jscan_find(rm, (size_t)rn, "isError"), "true"), NULL);
	req_detach(s, r);
	cb = r->text_cb;
	arg = r->arg;
	req_free(r);
	cb(s,
	   &(struct mcp_result){ .text = res->val, .len = res->val_len, .members = rm,
				 .nmembers = (size_t)rn },
	   NULL, arg);
	session_leave(s);
	return true;
}

void mcp_session_receive(struct mcp_session *s, const char *data, size_t len)
{
	char err[160];
	json_t *msg;

	if (!s || s->dead || !s->started || session_final(s))
		return;
	if (s->ntext && receive_text(s, data, len))
		return;
	msg = jsonu_loadb(data, len, MCP_MAX_MESSAGE, err, sizeof(err));
	if (!msg) {
		log_debug("MCP server '%s': ignoring %zu bytes of non-JSON output (%s)", s->name,
			  len, err);
		if (len <= MCP_MAX_MESSAGE) {
			session_enter(s);
			handle_unparsable(s, data, len, err);
			session_leave(s);
		}
		return;
	}
	session_enter(s);
	if (!json_is_array(msg)) {
		handle_message(s, msg);
	} else if (json_array_size(msg) > MCP_MAX_BATCH) {
		log_debug("MCP server '%s': ignoring a batch of %zu messages", s->name,
			  json_array_size(msg));
	} else {
		for (size_t i = 0; i < json_array_size(msg) && !s->dead && !session_final(s); i++)
			handle_message(s, json_array_get(msg, i));
	}
	json_decref(msg);
	session_leave(s);
}

/* ---- lifecycle ---- */

static void list_init(struct mcp_list *list, const char *method, const char *key,
		      const char *item_key, json_t **dest)
{
	*list = (struct mcp_list){ .method = method, .key = key, .item_key = item_key,
				   .dest = dest };
	*dest = json_array();
}

struct mcp_session *mcp_session_new(struct loop *l, const struct mcp_opts *o,
				    const struct mcp_transport *t,
				    const struct mcp_session_ops *ops, void *arg)
{
	struct mcp_session *s = xcalloc(1, sizeof(*s));

	s->loop = l;
	s->name = xstrdup(o->name ? o->name : "?");
	s->startup_ms = o->startup_timeout_ms ? o->startup_timeout_ms : DEFAULT_STARTUP_MS;
	s->tool_ms = o->tool_timeout_ms ? o->tool_timeout_ms : DEFAULT_TOOL_MS;
	s->t = *t;
	s->ops = *ops;
	s->arg = arg;
	s->state = MCP_STARTING;
	s->nbuckets = HASH_MIN_BUCKETS;
	s->buckets = xcalloc(s->nbuckets, sizeof(*s->buckets));
	list_init(&s->lists[LIST_TOOLS], "tools/list", "tools", "name", &s->tools);
	list_init(&s->lists[LIST_RESOURCES], "resources/list", "resources", "uri", &s->resources);
	list_init(&s->lists[LIST_TEMPLATES], "resources/templates/list", "resourceTemplates",
		  "uriTemplate", &s->templates);
	return s;
}

int mcp_session_start(struct mcp_session *s)
{
	struct mcp_req *r;
	json_t *params;
	int rc;

	if (s->started)
		return -EALREADY;
	s->started = true;
	params = json_pack("{s:s, s:{}, s:{s:s, s:s}}", "protocolVersion", MCP_PROTOCOL_LATEST,
			   "capabilities", "clientInfo", "name", "tandem", "version",
			   TANDEM_VERSION);
	r = req_new(s, REQ_INIT, "initialize", 0, init_done);
	rc = req_submit(s, r, params);
	if (rc < 0) {
		req_detach(s, r);
		req_free(r);
		s->state = MCP_FAILED;
		s->error = submit_error_text(s, "initialize", rc);
		return rc;
	}
	s->startup_timer = loop_timer_add(s->loop, s->startup_ms, startup_timer_cb, s);
	return 0;
}

/* The note remember_init left, if it is one: what initialize said. */
static bool adopt_note(struct mcp_session *s, const char *note, size_t len)
{
	_cleanup_free_ char *err = NULL;
	json_t *j;

	if (!note || !len)
		return false;
	j = json_loadb(note, len, JSON_REJECT_DUPLICATES, NULL);
	err = j ? take_init_result(s, j) : xstrdup("not JSON");
	json_decref(j);
	if (!err)
		return true;
	log_warn("MCP server '%s': the re-attached process's note is unusable (%s): assuming "
		 "protocol %s", s->name, err, MCP_PROTOCOL_LATEST);
	free(s->protocol);
	s->protocol = NULL;
	json_decref(s->capabilities);
	s->capabilities = NULL;
	json_decref(s->server_info);
	s->server_info = NULL;
	return false;
}

int mcp_session_adopt(struct mcp_session *s, const char *note, size_t note_len)
{
	if (s->started)
		return -EALREADY;
	s->started = true;
	/* The old session's requests counted up from 0 and their answers may
	 * still come (output held while detached): ours start far above. */
	s->next_id = MCP_ADOPT_FIRST_ID;
	if (!adopt_note(s, note, note_len)) {
		/* An older executor kept no note: the latest version, and both
		 * lists (a server without resources just says so). */
		s->protocol = xstrdup(MCP_PROTOCOL_LATEST);
		s->capabilities = json_pack("{s:{}, s:{}}", "tools", "resources");
	}
	s->initialized = true;
	s->has_resources = json_object_get(s->capabilities, "resources") != NULL;
	s->startup_timer = loop_timer_add(s->loop, s->startup_ms, startup_timer_cb, s);
	/* as after initialize (init_done) */
	list_start_startup(s, &s->lists[LIST_TOOLS],
			   json_object_get(s->capabilities, "tools") != NULL);
	if (s->has_resources) {
		list_start_startup(s, &s->lists[LIST_RESOURCES], false);
		list_start_startup(s, &s->lists[LIST_TEMPLATES], false);
	}
	return s->state == MCP_FAILED ? -EIO : 0;
}

static char *gone_text(struct mcp_session *s, const char *what, const char *reason)
{
	return xasprintf("MCP server '%s' %s%s%s", s->name, what, reason ? ": " : "",
			 reason ? reason : "");
}

void mcp_session_transport_closed(struct mcp_session *s, const char *reason)
{
	_cleanup_free_ char *error = NULL;

	if (!s || s->dead || session_final(s))
		return;
	error = gone_text(s, s->stopping ? "stopped" : "connection lost", reason);
	session_enter(s);
	session_end(s, s->stopping ? MCP_CLOSED : MCP_FAILED, error);
	session_leave(s);
}

void mcp_session_stop(struct mcp_session *s, const char *reason)
{
	_cleanup_free_ char *error = NULL;

	if (!s || s->dead || s->stopping || session_final(s))
		return;
	s->stopping = true;
	loop_timer_cancel(s->startup_timer);
	s->startup_timer = NULL;
	error = gone_text(s, "is stopping", reason);
	session_enter(s);
	drain_requests(s, error);
	session_leave(s);
}

/* ---- accessors ---- */

json_t *mcp_session_tools(const struct mcp_session *s) { return s->tools; }
json_t *mcp_session_resources(const struct mcp_session *s) { return s->resources; }
json_t *mcp_session_resource_templates(const struct mcp_session *s) { return s->templates; }
json_t *mcp_session_server_info(const struct mcp_session *s) { return s->server_info; }
json_t *mcp_session_capabilities(const struct mcp_session *s) { return s->capabilities; }
const char *mcp_session_protocol_version(const struct mcp_session *s) { return s->protocol; }
enum mcp_state mcp_session_state(const struct mcp_session *s) { return s->state; }
const char *mcp_session_error(const struct mcp_session *s) { return s->error; }
size_t mcp_session_pending(const struct mcp_session *s) { return s->nreqs; }

/* ---- freeing ---- */

static void session_release(struct mcp_session *s)
{
	free(s->name);
	free(s->error);
	free(s->protocol);
	json_decref(s->server_info);
	json_decref(s->capabilities);
	json_decref(s->tools);
	json_decref(s->resources);
	json_decref(s->templates);
	free(s->buckets);
	free(s);
}

struct mcp_session *mcp_session_free(struct mcp_session *s)
{
	struct mcp_req *r;

	if (!s || s->dead)
		return NULL;
	loop_timer_cancel(s->startup_timer);
	s->startup_timer = NULL;
	while ((r = s->head) != NULL) {
		req_detach(s, r);
		req_free(r);
	}
	for (size_t i = 0; i < LIST_N; i++)
		list_reset(&s->lists[i]);
	s->dead = true;
	if (s->depth == 0)
		session_release(s);
	return NULL;
}
