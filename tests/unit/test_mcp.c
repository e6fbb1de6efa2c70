/* test_mcp.c - the MCP client session (orchestrator/mcp.c).
 *
 * Two halves. Most tests use an in-memory transport: the test plays the
 * server, reads every message the session sent (parsed) and feeds it the
 * server's answers, so each protocol rule is checked exactly. The last
 * tests run the real fixture server (tests/fixtures/mcp-fixture.c, path in
 * $MCP_FIXTURE, which must be set: the tests fail without it) through
 * executor/child.h, the same stdio framing the executor relays.
 *
 * Timeouts in the tests are short on purpose (they only have to fire); the
 * loop runs until the awaited condition holds, with a generous hang guard.
 */
#include "child.h"
#include "log.h"
#include "loop.h"
#include "mcp.h"
#include "testmain.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define WAIT_MS 20000u /* hang guard only, never a performance bound */
#define MAX_RESULTS 8192

/* ---- fake transport and recorders ---- */

struct fake {
	json_t *sent; /* every message the session sent, parsed */
	int fail;     /* when set, send returns it */
	char *note;   /* the last note remember was given */
};

struct result {
	int n;		/* callback runs */
	json_t *result; /* a reference to the last result */
	char *error;	/* the last error */
	bool free_session;
	bool stop_loop;
};

static struct loop *loop;
static struct fake fake;
static struct mcp_session *S;
static int nstates;
static enum mcp_state states[8];
static char *state_error;
static int ntools_changed;
static bool guard_fired;

static int fake_send(void *ctx, const char *json, size_t len)
{
	struct fake *f = ctx;
	json_error_t je;
	json_t *m;

	if (f->fail)
		return f->fail;
	ck_assert_msg(memchr(json, '\n', len) == NULL, "a message must be one line");
	m = json_loadb(json, len, 0, &je);
	ck_assert_msg(json_is_object(m), "sent invalid JSON: %s", je.text);
	ck_assert_str_eq(json_string_value(json_object_get(m, "jsonrpc")), "2.0");
	json_array_append_new(f->sent, m);
	return 0;
}

static void state_cb(struct mcp_session *s, enum mcp_state st, const char *error, void *arg)
{
	(void)arg;
	ck_assert_ptr_eq(s, S);
	ck_assert_int_lt(nstates, 8);
	states[nstates++] = st;
	free(state_error);
	state_error = error ? strdup(error) : NULL;
	ck_assert(st == MCP_READY ? error == NULL : error != NULL);
	loop_stop(loop);
}

static void tools_changed_cb(struct mcp_session *s, void *arg)
{
	(void)s;
	(void)arg;
	ntools_changed++;
	loop_stop(loop);
}

static const struct mcp_session_ops ops = { state_cb, tools_changed_cb };

static void result_cb(struct mcp_session *s, json_t *result, const char *error, void *arg)
{
	struct result *r = arg;

	ck_assert(s != NULL);
	ck_assert_msg((result == NULL) != (error == NULL), "exactly one of result and error");
	r->n++;
	json_decref(r->result);
	r->result = json_incref(result);
	free(r->error);
	r->error = error ? strdup(error) : NULL;
	if (r->free_session)
		S = mcp_session_free(S);
	if (r->stop_loop)
		loop_stop(loop);
}

static void result_clear(struct result *r)
{
	json_decref(r->result);
	free(r->error);
	*r = (struct result){ 0 };
}

static void setup(void)
{
	/* Quiet by default; TANDEM_LOG=debug shows what the session ignores. */
	log_init("test_mcp", LOG_LVL_ERROR);
	signal(SIGPIPE, SIG_IGN);
	loop = loop_new();
	ck_assert_ptr_nonnull(loop);
	fake = (struct fake){ .sent = json_array() };
	nstates = 0;
	ntools_changed = 0;
	state_error = NULL;
}

static void teardown(void)
{
	S = mcp_session_free(S);
	loop = loop_free(loop);
	json_decref(fake.sent);
	free(fake.note);
	free(state_error);
}

static void guard_cb(struct loop_timer *t, void *arg)
{
	(void)t;
	(void)arg;
	guard_fired = true;
	loop_stop(loop);
}

/* Runs the loop until *flag-like condition holds (checked by pred). */
static bool run_until(bool (*pred)(void *), void *arg)
{
	struct loop_timer *t = loop_timer_add(loop, WAIT_MS, guard_cb, NULL);

	guard_fired = false;
	while (!pred(arg) && !guard_fired)
		ck_assert_int_eq(loop_run(loop), 0);
	if (!guard_fired)
		loop_timer_cancel(t);
	return pred(arg);
}

static bool got_result(void *arg) { return ((struct result *)arg)->n > 0; }
static bool got_state(void *arg) { return nstates > 0 && states[nstates - 1] == *(enum mcp_state *)arg; }
static bool got_tools_changed(void *arg) { return ntools_changed >= *(int *)arg; }

static void fake_remember(void *ctx, const char *note, size_t len)
{
	struct fake *f = ctx;

	free(f->note);
	f->note = strndup(note, len);
}

static struct mcp_session *new_session(uint64_t startup_ms, uint64_t tool_ms)
{
	struct mcp_opts o = { .name = "fake", .startup_timeout_ms = startup_ms,
			      .tool_timeout_ms = tool_ms };
	struct mcp_transport t = { .send = fake_send, .remember = fake_remember, .ctx = &fake };

	S = mcp_session_new(loop, &o, &t, &ops, NULL);
	ck_assert_ptr_nonnull(S);
	return S;
}

static size_t nsent(void) { return json_array_size(fake.sent); }
static json_t *sent(size_t i)
{
	ck_assert_msg(i < nsent(), "message %zu was not sent (only %zu)", i, nsent());
	return json_array_get(fake.sent, i);
}
static json_t *last_sent(void) { return sent(nsent() - 1); }

static const char *method_of(json_t *m) { return json_string_value(json_object_get(m, "method")); }
static json_int_t id_of(json_t *m)
{
	json_t *id = json_object_get(m, "id");

	ck_assert_msg(json_is_integer(id), "request without an integer id");
	return json_integer_value(id);
}

static void assert_request(json_t *m, const char *method, json_int_t id)
{
	ck_assert_str_eq(method_of(m), method);
	ck_assert_int_eq(id_of(m), id);
}

static void feed(const char *text) { mcp_session_receive(S, text, strlen(text)); }

static void feedf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void feedf(const char *fmt, ...)
{
	char *text;
	va_list ap;

	va_start(ap, fmt);
	ck_assert_int_ge(vasprintf(&text, fmt, ap), 0);
	va_end(ap);
	feed(text);
	free(text);
}

static void answer(json_int_t id, const char *result_json)
{
	feedf("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":%s}", (long long)id, result_json);
}

#define TOOLS3 "{\"tools\":[{\"name\":\"a\",\"inputSchema\":{\"type\":\"object\"}}," \
	       "{\"name\":\"b\"},{\"name\":\"c\"}]}"

/* Starts a session and answers initialize with `caps`; returns the id of
 * the tools/list request that follows. */
static json_int_t handshake(const char *version, const char *caps)
{
	ck_assert_int_eq(mcp_session_start(S), 0);
	assert_request(sent(0), "initialize", 0);
	feedf("{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":{\"protocolVersion\":\"%s\","
	      "\"capabilities\":%s,\"serverInfo\":{\"name\":\"srv\",\"version\":\"9\"}}}",
	      version, caps);
	ck_assert_int_ge(nsent(), 3);
	ck_assert_str_eq(method_of(sent(1)), "notifications/initialized");
	ck_assert_ptr_null(json_object_get(sent(1), "id"));
	assert_request(sent(2), "tools/list", 1);
	ck_assert_ptr_null(json_object_get(sent(2), "params"));
	return 1;
}

/* A READY session with tools a, b, c. */
static void make_ready(void)
{
	new_session(0, 0);
	answer(handshake("2025-06-18", "{\"tools\":{\"listChanged\":true}}"), TOOLS3);
	ck_assert_int_eq(mcp_session_state(S), MCP_READY);
	ck_assert_int_eq(nstates, 1);
}

/* ---- lifecycle ---- */

/* What initialize said is handed to the transport (the executor keeps it
 * with the process); a session adopted later with that note knows the
 * version, capabilities and serverInfo without a second initialize. */
START_TEST(test_remember_then_adopt)
{
	_cleanup_free_ char *note = NULL;

	new_session(0, 0);
	answer(handshake("2025-03-26", "{\"tools\":{}}"), TOOLS3);
	ck_assert_int_eq(mcp_session_state(S), MCP_READY);
	ck_assert_ptr_nonnull(fake.note);
	note = TAKE_PTR(fake.note);
	S = mcp_session_free(S);
	json_array_clear(fake.sent);

	new_session(0, 0);
	ck_assert_int_eq(mcp_session_adopt(S, note, strlen(note)), 0);
	ck_assert_str_eq(mcp_session_protocol_version(S), "2025-03-26");
	ck_assert_str_eq(json_string_value(json_object_get(mcp_session_server_info(S), "name")),
			 "srv");
	/* no initialize; tools only (no resources capability), far-away ids */
	ck_assert_int_eq(nsent(), 1);
	assert_request(sent(0), "tools/list", (json_int_t)MCP_ADOPT_FIRST_ID);
	answer((json_int_t)MCP_ADOPT_FIRST_ID, TOOLS3);
	ck_assert_int_eq(mcp_session_state(S), MCP_READY);
	ck_assert_ptr_null(fake.note); /* adopting remembers nothing new */
	S = mcp_session_free(S);
	json_array_clear(fake.sent);

	/* a note that is not what remember wrote: the old assumptions */
	new_session(0, 0);
	ck_assert_int_eq(mcp_session_adopt(S, "{\"protocolVersion\":\"1999-01-01\"}", 32), 0);
	ck_assert_str_eq(mcp_session_protocol_version(S), MCP_PROTOCOL_LATEST);
	ck_assert_ptr_null(mcp_session_server_info(S));
	ck_assert_int_eq(nsent(), 3); /* tools, resources, templates */
}
END_TEST

START_TEST(test_initialize_request)
{
	json_t *p;

	new_session(0, 0);
	ck_assert_int_eq(mcp_session_state(S), MCP_STARTING);
	ck_assert_int_eq(mcp_session_start(S), 0);
	ck_assert_int_eq(mcp_session_start(S), -EALREADY);
	ck_assert_int_eq(nsent(), 1);
	assert_request(sent(0), "initialize", 0);
	p = json_object_get(sent(0), "params");
	ck_assert_str_eq(json_string_value(json_object_get(p, "protocolVersion")), "2025-06-18");
	ck_assert(json_is_object(json_object_get(p, "capabilities")));
	ck_assert_int_eq(json_object_size(json_object_get(p, "capabilities")), 0);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(p, "clientInfo"),
							   "name")),
			 "tandem");
	ck_assert(json_is_string(json_object_get(json_object_get(p, "clientInfo"), "version")));
	/* Nothing is callable before READY, and nothing calls back. */
	ck_assert_uint_eq(mcp_call_tool(S, "a", NULL, 0, result_cb, NULL), 0);
	ck_assert_uint_eq(mcp_read_resource(S, "x://y", result_cb, NULL), 0);
	ck_assert_int_eq(nsent(), 1);
}
END_TEST

START_TEST(test_version_older_accepted)
{
	json_t *tools;

	new_session(0, 0);
	answer(handshake("2025-03-26", "{\"tools\":{}}"), TOOLS3);
	ck_assert_int_eq(nstates, 1);
	ck_assert_int_eq(states[0], MCP_READY);
	ck_assert_int_eq(mcp_session_state(S), MCP_READY);
	ck_assert_str_eq(mcp_session_protocol_version(S), "2025-03-26");
	ck_assert_str_eq(json_string_value(json_object_get(mcp_session_server_info(S), "name")),
			 "srv");
	tools = mcp_session_tools(S);
	ck_assert_int_eq(json_array_size(tools), 3);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(tools, 2), "name")), "c");
	/* No resources capability: nothing else was asked. */
	ck_assert_int_eq(nsent(), 3);
	ck_assert_int_eq(json_array_size(mcp_session_resources(S)), 0);
	ck_assert_ptr_null(mcp_session_error(S));
}
END_TEST

START_TEST(test_version_unknown_fails)
{
	new_session(0, 0);
	ck_assert_int_eq(mcp_session_start(S), 0);
	feed("{\"jsonrpc\":\"2.0\",\"id\":0,\"result\":{\"protocolVersion\":\"1999-01-01\","
	     "\"capabilities\":{\"tools\":{}},\"serverInfo\":{\"name\":\"old\"}}}");
	ck_assert_int_eq(mcp_session_state(S), MCP_FAILED);
	ck_assert_int_eq(nstates, 1);
	ck_assert_int_eq(states[0], MCP_FAILED);
	ck_assert_ptr_nonnull(strstr(state_error, "1999-01-01"));
	ck_assert_ptr_nonnull(strstr(mcp_session_error(S), "unsupported protocol version"));
	ck_assert_ptr_null(mcp_session_protocol_version(S));
	/* No initialized notification, no tools/list. */
	ck_assert_int_eq(nsent(), 1);
	/* Final: later input changes nothing. */
	answer(0, "{}");
	ck_assert_int_eq(nstates, 1);
}
END_TEST

START_TEST(test_initialize_error_fails)
{
	new_session(0, 0);
	ck_assert_int_eq(mcp_session_start(S), 0);
	feed("{\"jsonrpc\":\"2.0\",\"id\":0,\"error\":{\"code\":-32603,\"message\":\"boom\"}}");
	ck_assert_int_eq(mcp_session_state(S), MCP_FAILED);
	ck_assert_ptr_nonnull(strstr(state_error, "MCP error -32603: boom"));
}
END_TEST

START_TEST(test_start_send_failure)
{
	new_session(0, 0);
	fake.fail = -EPIPE;
	ck_assert_int_eq(mcp_session_start(S), -EPIPE);
	ck_assert_int_eq(mcp_session_state(S), MCP_FAILED);
	ck_assert_ptr_nonnull(strstr(mcp_session_error(S), "initialize"));
	ck_assert_int_eq(nstates, 0);
	ck_assert_uint_eq(mcp_session_pending(S), 0);
}
END_TEST

START_TEST(test_tools_paging)
{
	json_int_t id;
	json_t *tools;

	new_session(0, 0);
	id = handshake("2025-06-18", "{\"tools\":{}}");
	answer(id, "{\"tools\":[{\"name\":\"p1\"},{\"nonsense\":1},7],\"nextCursor\":\"c-2\"}");
	ck_assert_int_eq(nstates, 0);
	assert_request(last_sent(), "tools/list", 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(last_sent(), "params"),
							   "cursor")),
			 "c-2");
	answer(2, "{\"tools\":[{\"name\":\"p2\"}],\"nextCursor\":\"c-3\"}");
	assert_request(last_sent(), "tools/list", 3);
	answer(3, "{\"tools\":[{\"name\":\"p3\"}]}");
	ck_assert_int_eq(nstates, 1);
	ck_assert_int_eq(states[0], MCP_READY);
	tools = mcp_session_tools(S);
	ck_assert_int_eq(json_array_size(tools), 3); /* malformed entries dropped */
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(tools, 0), "name")), "p1");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(tools, 2), "name")), "p3");
}
END_TEST

START_TEST(test_tools_paging_bounded)
{
	json_int_t id;
	int pages = 0;

	new_session(0, 0);
	id = handshake("2025-06-18", "{\"tools\":{}}");
	/* A server that never stops paging. */
	while (mcp_session_state(S) == MCP_STARTING && pages < 1000) {
		answer(id, "{\"tools\":[{\"name\":\"x\"}],\"nextCursor\":\"again\"}");
		pages++;
		id = id_of(last_sent());
	}
	ck_assert_int_eq(pages, MCP_MAX_LIST_PAGES);
	ck_assert_int_eq(mcp_session_state(S), MCP_FAILED);
	ck_assert_ptr_nonnull(strstr(state_error, "tools/list"));
	ck_assert_ptr_nonnull(strstr(state_error, "pages"));
}
END_TEST

START_TEST(test_tools_count_bounded)
{
	json_int_t id;
	char *page;
	size_t len = 0, cap = 64 * 1024;
	int pages = 0;

	new_session(0, 0);
	id = handshake("2025-06-18", "{\"tools\":{}}");
	page = malloc(cap);
	len = (size_t)snprintf(page, cap, "{\"tools\":[");
	for (int i = 0; i < 1000; i++)
		len += (size_t)snprintf(page + len, cap - len, "%s{\"name\":\"t%d\"}", i ? "," : "", i);
	snprintf(page + len, cap - len, "],\"nextCursor\":\"more\"}");
	while (mcp_session_state(S) == MCP_STARTING && pages < 50) {
		answer(id, page);
		pages++;
		id = id_of(last_sent());
	}
	free(page);
	ck_assert_int_eq(pages, MCP_MAX_LIST_ITEMS / 1000 + 1);
	ck_assert_int_eq(mcp_session_state(S), MCP_FAILED);
	ck_assert_ptr_nonnull(strstr(state_error, "more than 10000"));
}
END_TEST

START_TEST(test_resources_optional)
{
	json_int_t tid;
	json_int_t rid = -1, tmid = -1;

	new_session(0, 0);
	tid = handshake("2025-06-18", "{\"tools\":{},\"resources\":{}}");
	ck_assert_int_eq(nsent(), 5);
	for (size_t i = 3; i < 5; i++) {
		if (strcmp(method_of(sent(i)), "resources/list") == 0)
			rid = id_of(sent(i));
		else if (strcmp(method_of(sent(i)), "resources/templates/list") == 0)
			tmid = id_of(sent(i));
	}
	ck_assert_int_ge(rid, 0);
	ck_assert_int_ge(tmid, 0);
	answer(tid, TOOLS3);
	ck_assert_int_eq(nstates, 0); /* still waiting for resources */
	answer(rid, "{\"resources\":[{\"uri\":\"x://1\",\"name\":\"one\"},{\"name\":\"nouri\"}]}");
	ck_assert_int_eq(nstates, 0);
	/* Templates unsupported: not fatal. */
	feedf("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"error\":{\"code\":-32601,"
	      "\"message\":\"Method not found\"}}",
	      (long long)tmid);
	ck_assert_int_eq(nstates, 1);
	ck_assert_int_eq(states[0], MCP_READY);
	ck_assert_int_eq(json_array_size(mcp_session_resources(S)), 1);
	ck_assert_int_eq(json_array_size(mcp_session_resource_templates(S)), 0);
	ck_assert_int_eq(json_array_size(mcp_session_tools(S)), 3);
}
END_TEST

START_TEST(test_tools_list_error_fails_when_advertised)
{
	new_session(0, 0);
	handshake("2025-06-18", "{\"tools\":{}}");
	feed("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32000,\"message\":\"nope\"}}");
	ck_assert_int_eq(mcp_session_state(S), MCP_FAILED);
	ck_assert_ptr_nonnull(strstr(state_error, "tools/list failed: MCP error -32000: nope"));
}
END_TEST

START_TEST(test_tools_list_error_ok_when_not_advertised)
{
	new_session(0, 0);
	handshake("2025-06-18", "{}");
	feed("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32601,\"message\":\"no\"}}");
	ck_assert_int_eq(mcp_session_state(S), MCP_READY);
	ck_assert_int_eq(json_array_size(mcp_session_tools(S)), 0);
}
END_TEST

START_TEST(test_junk_and_notifications_ignored)
{
	static const char *const junk[] = {
		"this is not json",
		"{\"unterminated\": ",
		"\x01\x02\x03",
		"[1, 2, 3]",
		"{\"level\":\"info\",\"msg\":\"a log line in JSON\"}",
		"{\"jsonrpc\":\"1.0\",\"id\":1,\"result\":{}}",
		/* (our id as a string or a real ends that request, malformed:
		 * test_call_error_malformed) */
		"{\"jsonrpc\":\"2.0\",\"id\":\"one\",\"result\":{\"tools\":[]}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"result\":{\"tools\":[]}}",
		"{\"jsonrpc\":\"2.0\",\"id\":99,\"result\":{}}",		 /* unknown id */
		"{\"jsonrpc\":\"2.0\",\"id\":-1,\"result\":{}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\","
		"\"params\":{\"level\":\"info\",\"data\":\"hello\"}}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\","
		"\"params\":{\"progressToken\":1,\"progress\":0.5}}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/resources/list_changed\"}",
		"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\","
		"\"params\":{\"requestId\":1}}",
	};
	size_t before;

	new_session(0, 0);
	handshake("2025-06-18", "{\"tools\":{}}");
	before = nsent();
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
		feed(junk[i]);
	mcp_session_receive(S, "{\"a\":1}\0garbage", 15);
	ck_assert_int_eq(nstates, 0);
	ck_assert_int_eq(nsent(), before); /* nothing answered, nothing re-listed */
	ck_assert_uint_eq(mcp_session_pending(S), 1);
	answer(1, TOOLS3);
	ck_assert_int_eq(mcp_session_state(S), MCP_READY);
	ck_assert_int_eq(json_array_size(mcp_session_tools(S)), 3);
}
END_TEST

START_TEST(test_batch_received)
{
	new_session(0, 0);
	handshake("2025-06-18", "{\"tools\":{}}");
	/* A notification and our response in one JSON-RPC batch. */
	feed("[{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}},"
	     "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":" TOOLS3 "}]");
	ck_assert_int_eq(mcp_session_state(S), MCP_READY);
}
END_TEST

START_TEST(test_list_changed_relists)
{
	int want = 1;
	size_t before;
	json_int_t id;

	make_ready();
	before = nsent();
	feed("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}");
	ck_assert_int_eq(nsent(), before + 1);
	id = id_of(last_sent());
	ck_assert_str_eq(method_of(last_sent()), "tools/list");
	/* Two more changes while listing: one more list afterwards, not two. */
	feed("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}");
	feed("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}");
	ck_assert_int_eq(nsent(), before + 1);
	/* The old list stays until the new one is complete. */
	answer(id, "{\"tools\":[{\"name\":\"new1\"}],\"nextCursor\":\"2\"}");
	ck_assert_int_eq(json_array_size(mcp_session_tools(S)), 3);
	ck_assert_int_eq(ntools_changed, 0);
	id = id_of(last_sent());
	answer(id, "{\"tools\":[{\"name\":\"new2\"}]}");
	ck_assert(run_until(got_tools_changed, &want));
	ck_assert_int_eq(ntools_changed, 1);
	ck_assert_int_eq(json_array_size(mcp_session_tools(S)), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(mcp_session_tools(S), 1),
							   "name")),
			 "new2");
	/* The repeat listing. */
	ck_assert_str_eq(method_of(last_sent()), "tools/list");
	ck_assert(id_of(last_sent()) > id);
	answer(id_of(last_sent()), "{\"tools\":[{\"name\":\"only\"}]}");
	ck_assert_int_eq(ntools_changed, 2);
	ck_assert_int_eq(json_array_size(mcp_session_tools(S)), 1);
	ck_assert_int_eq(nstates, 1); /* still READY, no new state */
	ck_assert_uint_eq(mcp_session_pending(S), 0);
}
END_TEST

START_TEST(test_relist_failure_keeps_tools)
{
	make_ready();
	feed("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}");
	feedf("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"error\":{\"code\":-1,\"message\":\"x\"}}",
	      (long long)id_of(last_sent()));
	ck_assert_int_eq(mcp_session_state(S), MCP_READY);
	ck_assert_int_eq(ntools_changed, 0);
	ck_assert_int_eq(json_array_size(mcp_session_tools(S)), 3);
}
END_TEST

START_TEST(test_server_requests)
{
	json_t *m;

	make_ready();
	feed("{\"jsonrpc\":\"2.0\",\"id\":\"p-1\",\"method\":\"ping\"}");
	m = last_sent();
	ck_assert_str_eq(json_string_value(json_object_get(m, "id")), "p-1");
	ck_assert(json_is_object(json_object_get(m, "result")));
	ck_assert_int_eq(json_object_size(json_object_get(m, "result")), 0);
	ck_assert_ptr_null(json_object_get(m, "method"));

	feed("{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"sampling/createMessage\",\"params\":{}}");
	m = last_sent();
	ck_assert_int_eq(id_of(m), 0);
	ck_assert_ptr_null(json_object_get(m, "result"));
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(m, "error"), "code")),
			 -32601);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(m, "error"), "message")),
			 "Method not found");

	feed("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"roots/list\"}");
	ck_assert_int_eq(id_of(last_sent()), 5);
	ck_assert_ptr_nonnull(json_object_get(last_sent(), "error"));
	/* Answered even during startup. */
	ck_assert_int_eq(mcp_session_state(S), MCP_READY);
}
END_TEST

/* ---- calls ---- */

START_TEST(test_call_tool_result)
{
	struct result r = { 0 };
	json_t *args = json_pack("{s:s, s:i}", "message", "hi", "n", 3), *m, *p;
	uint64_t cid;

	make_ready();
	cid = mcp_call_tool(S, "echo", args, 0, result_cb, &r);
	ck_assert_uint_gt(cid, 0);
	ck_assert_int_eq(r.n, 0);
	m = last_sent();
	ck_assert_str_eq(method_of(m), "tools/call");
	p = json_object_get(m, "params");
	ck_assert_str_eq(json_string_value(json_object_get(p, "name")), "echo");
	ck_assert(json_equal(json_object_get(p, "arguments"), args));
	ck_assert_int_eq(json_object_size(args), 2); /* untouched */
	/* isError true is a result, passed through. */
	answer(id_of(m), "{\"content\":[{\"type\":\"text\",\"text\":\"bad input\"}],\"isError\":true}");
	ck_assert_int_eq(r.n, 1);
	ck_assert_ptr_null(r.error);
	ck_assert(json_is_true(json_object_get(r.result, "isError")));
	/* A second answer to the same id is dropped. */
	answer(id_of(m), "{\"content\":[]}");
	ck_assert_int_eq(r.n, 1);
	/* NULL arguments are sent as {}. */
	ck_assert_uint_gt(mcp_call_tool(S, "noargs", NULL, 0, result_cb, &r), cid);
	p = json_object_get(last_sent(), "params");
	ck_assert(json_is_object(json_object_get(p, "arguments")));
	ck_assert_int_eq(json_object_size(json_object_get(p, "arguments")), 0);
	/* Non-object arguments are refused. */
	json_decref(args);
	args = json_array();
	ck_assert_uint_eq(mcp_call_tool(S, "x", args, 0, result_cb, &r), 0);
	json_decref(args);
	result_clear(&r);
}
END_TEST

START_TEST(test_call_error_response)
{
	struct result r = { 0 };

	make_ready();
	ck_assert_uint_gt(mcp_call_tool(S, "nope", NULL, 0, result_cb, &r), 0);
	feedf("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"error\":{\"code\":-32602,"
	      "\"message\":\"unknown tool\",\"data\":{}}}",
	      (long long)id_of(last_sent()));
	ck_assert_int_eq(r.n, 1);
	ck_assert_ptr_null(r.result);
	ck_assert_str_eq(r.error, "MCP error -32602: unknown tool");
	ck_assert_int_eq(mcp_session_state(S), MCP_READY);
	/* "error": null beside a result is a success. */
	ck_assert_uint_gt(mcp_call_tool(S, "t", NULL, 0, result_cb, &r), 0);
	feedf("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"error\":null,\"result\":{\"content\":[]}}",
	      (long long)id_of(last_sent()));
	ck_assert_int_eq(r.n, 2);
	ck_assert_ptr_null(r.error);
	ck_assert(json_is_array(json_object_get(r.result, "content")));
	result_clear(&r);
}
END_TEST

/* Issue 13 item 9: an error reply that breaks JSON-RPC still ends its call,
 * marked malformed: a non-integer code, a missing one, a code beyond int64
 * (the message does not even parse), a real beyond a double (1e999: jansson
 * loads no such number at all, a top-level scan finds the id). */
START_TEST(test_call_error_malformed)
{
	uint64_t call;
	static const char *const bad[] = { /* what follows the id */
		"\"error\":{\"code\":\"E42\",\"message\":\"m\"}",
		"\"error\":{\"code\":1.5,\"message\":\"m\"}",
		"\"error\":{\"message\":\"m\"}",
		"\"error\":\"boom\"",
		"\"error\":{\"code\":1,\"message\":7}",
		"\"error\":{\"code\":9223372036854775808,\"message\":\"m\"}",
		"\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"x\"}],\"n\":1e999}",
		"\"error\":{\"code\":-1e999,\"message\":\"m\",\"data\":{\"id\":1}}",
	};
	struct result r = { 0 };

	make_ready();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_uint_gt(mcp_call_tool(S, "t", NULL, 0, result_cb, &r), 0);
		feedf("{\"jsonrpc\":\"2.0\",\"id\":%lld,%s}", (long long)id_of(last_sent()),
		      bad[i]);
		ck_assert_msg(r.n == (int)i + 1, "reply %zu left its call waiting", i);
		ck_assert_ptr_null(r.result);
		ck_assert_msg(strstr(r.error, "malformed"), "reply %zu: %s", i, r.error);
	}
	/* Our id written as a string or a real: that call ends, malformed. */
	ck_assert_uint_gt(mcp_call_tool(S, "t", NULL, 0, result_cb, &r), 0);
	feedf("{\"jsonrpc\":\"2.0\",\"id\":\"%lld\",\"result\":{\"content\":[]}}",
	      (long long)id_of(last_sent()));
	ck_assert_int_eq(r.n, (int)(sizeof(bad) / sizeof(bad[0])) + 1);
	ck_assert_ptr_nonnull(strstr(r.error, "malformed"));
	ck_assert_uint_gt(mcp_call_tool(S, "t", NULL, 0, result_cb, &r), 0);
	feedf("{\"jsonrpc\":\"2.0\",\"id\":%lld.0,\"result\":{\"content\":[]}}",
	      (long long)id_of(last_sent()));
	ck_assert_int_eq(r.n, (int)(sizeof(bad) / sizeof(bad[0])) + 2);
	ck_assert_ptr_nonnull(strstr(r.error, "malformed"));
	/* A server request (a method) that does not load is not taken for the
	 * answer to our request of the same id. */
	call = mcp_call_tool(S, "t", NULL, 0, result_cb, &r);
	ck_assert_uint_gt(call, 0);
	feedf("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"ping\",\"params\":{\"x\":1e999}}",
	      (long long)id_of(last_sent()));
	ck_assert_int_eq(r.n, (int)(sizeof(bad) / sizeof(bad[0])) + 2);
	mcp_cancel(S, call, "done");
	ck_assert_int_eq(r.n, (int)(sizeof(bad) / sizeof(bad[0])) + 3);
	ck_assert_ptr_nonnull(strstr(r.error, "cancelled"));
	/* A string that is no id of ours stays foreign. */
	ck_assert_uint_gt(mcp_call_tool(S, "t", NULL, 0, result_cb, &r), 0);
	feedf("{\"jsonrpc\":\"2.0\",\"id\":\"x%lld\",\"result\":{}}",
	      (long long)id_of(last_sent()));
	ck_assert_int_eq(r.n, (int)(sizeof(bad) / sizeof(bad[0])) + 3);
	ck_assert_int_eq(mcp_session_state(S), MCP_READY);
	result_clear(&r);
}
END_TEST

START_TEST(test_call_result_not_object)
{
	struct result r = { 0 };

	make_ready();
	ck_assert_uint_gt(mcp_call_tool(S, "t", NULL, 0, result_cb, &r), 0);
	answer(id_of(last_sent()), "[1]");
	ck_assert_int_eq(r.n, 1);
	ck_assert_ptr_nonnull(strstr(r.error, "not an object"));
	result_clear(&r);
}
END_TEST

/* ---- calls that relay their result as text (mcp_call_tool_text) ---- */

struct text_result {
	bool free_session; /* mcp_session_free from inside the callback */
	int n;
	char *text;  /* the result's text when handed on as written */
	json_t *json; /* the parsed result otherwise */
	size_t nmembers;
	char *error;
};

static void text_cb(struct mcp_session *s, const struct mcp_result *res, const char *error,
		    void *arg)
{
	struct text_result *r = arg;

	ck_assert(s != NULL);
	ck_assert_msg((res == NULL) != (error == NULL), "exactly one of result and error");
	r->n++;
	free(r->text);
	free(r->error);
	json_decref(r->json);
	r->text = res && res->text ? strndup(res->text, res->len) : NULL;
	r->json = res ? json_incref(res->json) : NULL;
	r->nmembers = res ? res->nmembers : 0;
	r->error = error ? strdup(error) : NULL;
	if (res)
		ck_assert_msg((res->text == NULL) != (res->json == NULL), "exactly one of text, json");
	if (r->free_session)
		S = mcp_session_free(S);
}

static void text_clear(struct text_result *r)
{
	free(r->text);
	free(r->error);
	json_decref(r->json);
	*r = (struct text_result){ 0 };
}

/* A text answer whose callback frees the session: the session stays
 * usable until the callback returns, the other calls are dropped without
 * their callbacks, and nothing is touched afterwards (ASan, valgrind). */
START_TEST(test_free_inside_text_callback)
{
	struct text_result t[2] = { { .free_session = true }, { 0 } };
	json_int_t first;

	make_ready();
	ck_assert_uint_gt(mcp_call_tool_text(S, "t", NULL, 0, text_cb, &t[0]), 0);
	first = id_of(last_sent());
	ck_assert_uint_gt(mcp_call_tool_text(S, "t", NULL, 0, text_cb, &t[1]), 0);
	answer(first, "{\"content\":[]}");
	ck_assert_ptr_null(S);
	ck_assert_int_eq(t[0].n, 1);
	ck_assert_str_eq(t[0].text, "{\"content\":[]}");
	ck_assert_int_eq(t[1].n, 0);
	text_clear(&t[0]);
}
END_TEST

/* A result the scan vouches for arrives as the server wrote it, with its
 * members; one it declines is parsed as before; errors, duplicates and
 * sloppy ids end the call exactly as on the parsed path. */
START_TEST(test_call_tool_text)
{
	static const char *const written =
		"{\"content\":[{\"type\":\"text\",\"text\":\"caf\u00e9 \xC3\xA9\"}], "
		"\"isError\":true,\"structuredContent\":{\"n\":1.50}}";
	struct text_result r = { 0 };
	json_t *parsed;

	make_ready();
	ck_assert_uint_gt(mcp_call_tool_text(S, "echo", NULL, 0, text_cb, &r), 0);
	ck_assert_str_eq(method_of(last_sent()), "tools/call");
	answer(id_of(last_sent()), written);
	ck_assert_int_eq(r.n, 1);
	ck_assert_ptr_null(r.error);
	ck_assert_ptr_null(r.json);
	ck_assert_str_eq(r.text, written); /* byte for byte: 1.50 stays 1.50 */
	ck_assert_uint_eq(r.nmembers, 3);
	/* The same answer again: dropped, as on the parsed path. */
	answer(id_of(last_sent()), written);
	ck_assert_int_eq(r.n, 1);

	/* Declined by the scan (an escaped key; a line break between tokens):
	 * parsed, and the same object comes out. */
	ck_assert_uint_gt(mcp_call_tool_text(S, "echo", NULL, 0, text_cb, &r), 0);
	answer(id_of(last_sent()), "{\"cont\\u0065nt\":[],\"isError\":false}");
	ck_assert_int_eq(r.n, 2);
	ck_assert_ptr_null(r.text);
	ck_assert(json_is_array(json_object_get(r.json, "content")));
	ck_assert_uint_gt(mcp_call_tool_text(S, "echo", NULL, 0, text_cb, &r), 0);
	answer(id_of(last_sent()), "{\"content\":[],\n\"isError\":false}");
	ck_assert_int_eq(r.n, 3);
	parsed = json_loadb("{\"content\":[],\"isError\":false}", 30, 0, NULL);
	ck_assert(json_equal(r.json, parsed));
	json_decref(parsed);

	/* An error answer, a duplicate key, a result that is no object, our id
	 * written as a string: each ends its call with the parsed path's text. */
	ck_assert_uint_gt(mcp_call_tool_text(S, "nope", NULL, 0, text_cb, &r), 0);
	feedf("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"error\":{\"code\":-32602,"
	      "\"message\":\"unknown tool\"}}", (long long)id_of(last_sent()));
	ck_assert_int_eq(r.n, 4);
	ck_assert_str_eq(r.error, "MCP error -32602: unknown tool");
	ck_assert_uint_gt(mcp_call_tool_text(S, "t", NULL, 0, text_cb, &r), 0);
	answer(id_of(last_sent()), "{\"content\":[],\"isError\":false,\"content\":[1]}");
	ck_assert_int_eq(r.n, 5);
	ck_assert_ptr_nonnull(strstr(r.error, "malformed"));
	ck_assert_uint_gt(mcp_call_tool_text(S, "t", NULL, 0, text_cb, &r), 0);
	answer(id_of(last_sent()), "[1]");
	ck_assert_int_eq(r.n, 6);
	ck_assert_ptr_nonnull(strstr(r.error, "not an object"));
	ck_assert_uint_gt(mcp_call_tool_text(S, "t", NULL, 0, text_cb, &r), 0);
	feedf("{\"jsonrpc\":\"2.0\",\"id\":\"%lld\",\"result\":{\"content\":[]}}",
	      (long long)id_of(last_sent()));
	ck_assert_int_eq(r.n, 7);
	ck_assert_ptr_nonnull(strstr(r.error, "malformed"));
	/* A jsonrpc other than "2.0" is ignored on both paths: the call waits. */
	ck_assert_uint_gt(mcp_call_tool_text(S, "t", NULL, 0, text_cb, &r), 0);
	feedf("{\"jsonrpc\":\"1.0\",\"id\":%lld,\"result\":{\"content\":[]}}",
	      (long long)id_of(last_sent()));
	ck_assert_int_eq(r.n, 7);
	answer(id_of(last_sent()), "{}");
	ck_assert_int_eq(r.n, 8);
	ck_assert_str_eq(r.text, "{}");
	ck_assert_uint_eq(r.nmembers, 0);
	ck_assert_int_eq(mcp_session_state(S), MCP_READY);
	text_clear(&r);
}
END_TEST

/* A text call and a parsed call in flight together each get their own
 * kind of answer; resources/read relays its text too. */
START_TEST(test_text_and_parsed_calls_mixed)
{
	struct text_result t = { 0 };
	struct result r = { 0 };
	json_int_t tid, rid;

	make_ready();
	ck_assert_uint_gt(mcp_read_resource_text(S, "x://1", text_cb, &t), 0);
	tid = id_of(last_sent());
	ck_assert_str_eq(method_of(last_sent()), "resources/read");
	ck_assert_uint_gt(mcp_call_tool(S, "echo", NULL, 0, result_cb, &r), 0);
	rid = id_of(last_sent());
	answer(rid, "{\"content\":[]}");
	ck_assert_int_eq(r.n, 1);
	ck_assert(json_is_array(json_object_get(r.result, "content")));
	answer(tid, "{\"contents\":[{\"uri\":\"x://1\",\"text\":\"hello\"}]}");
	ck_assert_int_eq(t.n, 1);
	ck_assert_str_eq(t.text, "{\"contents\":[{\"uri\":\"x://1\",\"text\":\"hello\"}]}");
	/* With no text call pending, answers are parsed as ever. */
	ck_assert_uint_gt(mcp_call_tool(S, "echo", NULL, 0, result_cb, &r), 0);
	answer(id_of(last_sent()), "{\"content\":[],\"isError\":true}");
	ck_assert_int_eq(r.n, 2);
	ck_assert(json_is_true(json_object_get(r.result, "isError")));
	result_clear(&r);
	text_clear(&t);
}
END_TEST

START_TEST(test_read_resource)
{
	struct result r = { 0 };
	json_t *m;

	make_ready();
	ck_assert_uint_gt(mcp_read_resource(S, "x://1", result_cb, &r), 0);
	m = last_sent();
	ck_assert_str_eq(method_of(m), "resources/read");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(m, "params"), "uri")),
			 "x://1");
	answer(id_of(m), "{\"contents\":[{\"uri\":\"x://1\",\"text\":\"hello\"}]}");
	ck_assert_int_eq(r.n, 1);
	ck_assert(json_is_array(json_object_get(r.result, "contents")));
	result_clear(&r);
}
END_TEST

START_TEST(test_call_timeout_sends_cancelled)
{
	struct result r = { .stop_loop = true };
	json_int_t id;
	json_t *m;

	make_ready();
	ck_assert_uint_gt(mcp_call_tool(S, "slow", NULL, 5, result_cb, &r), 0);
	id = id_of(last_sent());
	ck_assert(run_until(got_result, &r));
	ck_assert_int_eq(r.n, 1);
	ck_assert_ptr_nonnull(strstr(r.error, "timed out after 5 ms"));
	m = last_sent();
	ck_assert_str_eq(method_of(m), "notifications/cancelled");
	ck_assert_ptr_null(json_object_get(m, "id"));
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(m, "params"),
							    "requestId")),
			 id);
	ck_assert(json_is_string(json_object_get(json_object_get(m, "params"), "reason")));
	/* The late answer is dropped. */
	answer(id, "{\"content\":[]}");
	ck_assert_int_eq(r.n, 1);
	ck_assert_uint_eq(mcp_session_pending(S), 0);
	ck_assert_int_eq(mcp_session_state(S), MCP_READY);
	result_clear(&r);
}
END_TEST

START_TEST(test_session_tool_timeout_default)
{
	struct result r = { .stop_loop = true };

	new_session(0, 7);
	answer(handshake("2025-06-18", "{\"tools\":{}}"), TOOLS3);
	ck_assert_uint_gt(mcp_call_tool(S, "slow", NULL, 0, result_cb, &r), 0);
	ck_assert(run_until(got_result, &r));
	ck_assert_ptr_nonnull(strstr(r.error, "timed out after 7 ms"));
	result_clear(&r);
}
END_TEST

/* Progress: our own token (the call's id) goes to the server in _meta with
 * the caller's other _meta members, never the caller's token; the server's
 * notifications/progress with that token reach the call, others do not. */
static json_t *progress_seen;
static int progress_cancel; /* cancel the call from its progress callback */
static uint64_t progress_call;

static void progress_cb(struct mcp_session *s, json_t *params, void *arg)
{
	json_array_append(progress_seen, params);
	if (progress_cancel && json_array_size(progress_seen) == (size_t)progress_cancel)
		mcp_cancel(s, progress_call, "enough");
}

START_TEST(test_call_progress)
{
	struct result r = { 0 }, other = { 0 };
	json_t *meta = json_pack("{s:s, s:s}", "progressToken", "client-token", "trace", "t1");
	struct mcp_call_opts o = { .meta = meta, .progress_cb = progress_cb };
	json_t *m, *p;
	json_int_t id;

	progress_seen = json_array();
	make_ready();
	ck_assert_uint_gt(mcp_call_tool_opts(S, "slow", NULL, &o, result_cb, &r), 0);
	m = last_sent();
	id = id_of(m);
	p = json_object_get(json_object_get(m, "params"), "_meta");
	ck_assert_int_eq(json_integer_value(json_object_get(p, "progressToken")), id);
	ck_assert_str_eq(json_string_value(json_object_get(p, "trace")), "t1");
	ck_assert_str_eq(json_string_value(json_object_get(meta, "progressToken")), "client-token");
	/* A call without progress_cb sends the caller's _meta minus its token. */
	o.progress_cb = NULL;
	ck_assert_uint_gt(mcp_call_tool_opts(S, "plain", NULL, &o, result_cb, &other), 0);
	p = json_object_get(json_object_get(last_sent(), "params"), "_meta");
	ck_assert_ptr_null(json_object_get(p, "progressToken"));
	ck_assert_str_eq(json_string_value(json_object_get(p, "trace")), "t1");
	feedf("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":"
	      "{\"progressToken\":%" JSON_INTEGER_FORMAT ",\"progress\":1,\"total\":2}}", id);
	feedf("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":"
	      "{\"progressToken\":%" JSON_INTEGER_FORMAT ",\"progress\":1}}", id + 1);
	feed("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":"
	     "{\"progressToken\":\"client-token\",\"progress\":1}}");
	ck_assert_uint_eq(json_array_size(progress_seen), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(progress_seen, 0),
							    "total")), 2);
	answer(id, "{\"content\":[]}");
	ck_assert_int_eq(r.n, 1);
	feedf("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":"
	      "{\"progressToken\":%" JSON_INTEGER_FORMAT ",\"progress\":2}}", id);
	ck_assert_uint_eq(json_array_size(progress_seen), 1); /* the call is over */
	/* A progress callback may cancel its call. */
	result_clear(&r);
	o.progress_cb = progress_cb;
	json_array_clear(progress_seen);
	progress_cancel = 2;
	progress_call = mcp_call_tool_opts(S, "slow", NULL, &o, result_cb, &r);
	id = id_of(last_sent());
	for (int i = 0; i < 3; i++)
		feedf("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":"
		      "{\"progressToken\":%" JSON_INTEGER_FORMAT ",\"progress\":%d}}", id, i);
	ck_assert_uint_eq(json_array_size(progress_seen), 2); /* the third came too late */
	ck_assert_int_eq(r.n, 1);
	ck_assert_ptr_nonnull(strstr(r.error, "cancelled: enough"));
	progress_cancel = 0;
	json_decref(meta);
	json_decref(progress_seen);
	result_clear(&r);
	result_clear(&other);
}
END_TEST

/* mcp_request: the listed methods as they are; any other is refused. */
START_TEST(test_request_passthrough)
{
	struct result r = { 0 };
	json_t *params = json_pack("{s:s}", "name", "greet"), *m;

	make_ready();
	ck_assert_uint_gt(mcp_request(S, "prompts/get", params, NULL, result_cb, &r), 0);
	m = last_sent();
	ck_assert_str_eq(method_of(m), "prompts/get");
	ck_assert(json_equal(json_object_get(m, "params"), params));
	answer(id_of(m), "{\"messages\":[]}");
	ck_assert_int_eq(r.n, 1);
	ck_assert(json_is_array(json_object_get(r.result, "messages")));
	ck_assert_uint_gt(mcp_request(S, "prompts/list", NULL, NULL, result_cb, &r), 0);
	ck_assert(json_is_object(json_object_get(last_sent(), "params")));
	ck_assert_uint_eq(mcp_request(S, "tools/call", params, NULL, result_cb, &r), 0);
	ck_assert_uint_eq(mcp_request(S, "initialize", params, NULL, result_cb, &r), 0);
	ck_assert(json_is_object(mcp_session_capabilities(S)));
	json_decref(params);
	result_clear(&r);
}
END_TEST

START_TEST(test_cancel)
{
	struct result r = { 0 }, other = { 0 };
	uint64_t cid;
	json_int_t id;
	json_t *m;

	make_ready();
	cid = mcp_call_tool(S, "t", NULL, 0, result_cb, &r);
	id = id_of(last_sent());
	ck_assert_uint_gt(mcp_call_tool(S, "u", NULL, 0, result_cb, &other), 0);
	mcp_cancel(S, cid, "user pressed stop");
	ck_assert_int_eq(r.n, 1); /* before mcp_cancel returned */
	ck_assert_ptr_nonnull(strstr(r.error, "cancelled: user pressed stop"));
	m = last_sent();
	ck_assert_str_eq(method_of(m), "notifications/cancelled");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(m, "params"),
							    "requestId")),
			 id);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(m, "params"), "reason")),
			 "user pressed stop");
	/* Again, or unknown ids: nothing. */
	mcp_cancel(S, cid, "again");
	mcp_cancel(S, 12345, NULL);
	mcp_cancel(S, 0, NULL);
	ck_assert_int_eq(r.n, 1);
	answer(id, "{\"content\":[]}");
	ck_assert_int_eq(r.n, 1);
	ck_assert_int_eq(other.n, 0);
	ck_assert_uint_eq(mcp_session_pending(S), 1);
	result_clear(&r);
	result_clear(&other);
}
END_TEST

START_TEST(test_forget_callbacks)
{
	struct result a = { 0 }, b = { 0 };
	json_int_t ida1, ida2, idb;
	size_t before;

	make_ready();
	ck_assert_uint_gt(mcp_call_tool(S, "t", NULL, 0, result_cb, &a), 0);
	ida1 = id_of(last_sent());
	ck_assert_uint_gt(mcp_call_tool(S, "t", NULL, 0, result_cb, &b), 0);
	idb = id_of(last_sent());
	ck_assert_uint_gt(mcp_call_tool(S, "t", NULL, 0, result_cb, &a), 0);
	ida2 = id_of(last_sent());
	before = nsent();
	mcp_session_forget_callbacks(S, &a);
	ck_assert_int_eq(nsent(), before + 2); /* two cancellations */
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(sent(before), "params"),
							    "requestId")),
			 ida1);
	ck_assert_int_eq(json_integer_value(json_object_get(
				 json_object_get(sent(before + 1), "params"), "requestId")),
			 ida2);
	answer(ida1, "{}");
	answer(ida2, "{}");
	answer(idb, "{\"ok\":1}");
	ck_assert_int_eq(a.n, 0);
	ck_assert_int_eq(b.n, 1);
	ck_assert_ptr_null(b.error);
	ck_assert_uint_eq(mcp_session_pending(S), 0);
	result_clear(&b);
}
END_TEST

START_TEST(test_many_pending_out_of_order)
{
	enum { N = 3000 };
	static struct result r[N];
	json_int_t ids[N];

	make_ready();
	for (int i = 0; i < N; i++) {
		r[i] = (struct result){ 0 };
		ck_assert_uint_gt(mcp_call_tool(S, "t", NULL, 0, result_cb, &r[i]), 0);
		ids[i] = id_of(last_sent());
	}
	ck_assert_uint_eq(mcp_session_pending(S), N);
	/* Answer in a scrambled order; each result must reach its own caller. */
	for (int k = 0; k < N; k++) {
		int i = (int)(((long)k * 1543) % N); /* 1543 is prime to 3000 */

		feedf("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"i\":%d}}", (long long)ids[i],
		      i);
	}
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(r[i].n, 1);
		ck_assert_int_eq(json_integer_value(json_object_get(r[i].result, "i")), i);
		result_clear(&r[i]);
	}
	ck_assert_uint_eq(mcp_session_pending(S), 0);
}
END_TEST

/* Ids that share a table slot: the table has a power-of-two size up to
 * MCP_MAX_PENDING, so ids MCP_MAX_PENDING apart always collide. Each
 * answer must reach the call with exactly its id. */
START_TEST(test_id_collisions)
{
	struct result old = { 0 }, r = { 0 }, nw = { 0 };
	json_int_t old_id, id;

	make_ready();
	ck_assert_uint_gt(mcp_call_tool(S, "old", NULL, 0, result_cb, &old), 0);
	old_id = id_of(last_sent());
	for (unsigned i = 1; i < MCP_MAX_PENDING; i++) {
		ck_assert_uint_gt(mcp_call_tool(S, "t", NULL, 0, result_cb, &r), 0);
		id = id_of(last_sent());
		feedf("{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{\"i\":%u}}", (long long)id, i);
		ck_assert_int_eq(r.n, (int)i);
		ck_assert_int_eq(json_integer_value(json_object_get(r.result, "i")), i);
	}
	ck_assert_int_eq(old.n, 0);
	/* A newer call in the old one's slot, answered after it. */
	ck_assert_uint_gt(mcp_call_tool(S, "new", NULL, 0, result_cb, &nw), 0);
	id = id_of(last_sent());
	ck_assert_int_eq(id, old_id + MCP_MAX_PENDING);
	answer(old_id, "{\"who\":\"old\"}");
	ck_assert_int_eq(old.n, 1);
	ck_assert_int_eq(nw.n, 0);
	ck_assert_str_eq(json_string_value(json_object_get(old.result, "who")), "old");
	/* The finished id is not confused with the pending one in its slot. */
	answer(old_id, "{\"who\":\"stale\"}");
	ck_assert_int_eq(nw.n, 0);
	ck_assert_int_eq(old.n, 1);
	answer(id, "{\"who\":\"new\"}");
	ck_assert_int_eq(nw.n, 1);
	ck_assert_str_eq(json_string_value(json_object_get(nw.result, "who")), "new");
	ck_assert_uint_eq(mcp_session_pending(S), 0);
	result_clear(&old);
	result_clear(&r);
	result_clear(&nw);
}
END_TEST

START_TEST(test_pending_limit)
{
	static struct result r[MCP_MAX_PENDING + 1];
	struct result *over = &r[MCP_MAX_PENDING];
	uint64_t cid;

	make_ready();
	for (unsigned i = 0; i < MCP_MAX_PENDING; i++)
		ck_assert_uint_gt(mcp_call_tool(S, "t", NULL, 0, result_cb, &r[i]), 0);
	over->stop_loop = true;
	cid = mcp_call_tool(S, "t", NULL, 0, result_cb, over);
	ck_assert_uint_gt(cid, 0);
	ck_assert_int_eq(over->n, 0); /* reported from the loop, not inline */
	ck_assert(run_until(got_result, over));
	ck_assert_ptr_nonnull(strstr(over->error, "too many pending requests"));
	ck_assert_uint_eq(mcp_session_pending(S), MCP_MAX_PENDING);
	for (unsigned i = 0; i < MCP_MAX_PENDING; i++)
		ck_assert_int_eq(r[i].n, 0);
	result_clear(over);
	/* Freeing with calls pending: no callbacks (r[] would count them). */
	S = mcp_session_free(S);
	for (unsigned i = 0; i < MCP_MAX_PENDING; i++)
		ck_assert_int_eq(r[i].n, 0);
}
END_TEST

START_TEST(test_send_failure_reported_async)
{
	struct result r = { .stop_loop = true };

	make_ready();
	fake.fail = -EPIPE;
	ck_assert_uint_gt(mcp_call_tool(S, "t", NULL, 0, result_cb, &r), 0);
	ck_assert_int_eq(r.n, 0);
	ck_assert(run_until(got_result, &r));
	ck_assert_ptr_nonnull(strstr(r.error, "cannot send tools/call"));
	ck_assert_ptr_nonnull(strstr(r.error, strerror(EPIPE)));
	ck_assert_int_eq(mcp_session_state(S), MCP_READY);
	result_clear(&r);
}
END_TEST

START_TEST(test_transport_closed_fails_pending)
{
	struct result a = { 0 }, b = { 0 };

	make_ready();
	ck_assert_uint_gt(mcp_call_tool(S, "t", NULL, 0, result_cb, &a), 0);
	ck_assert_uint_gt(mcp_read_resource(S, "x://1", result_cb, &b), 0);
	feed("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}");
	mcp_session_transport_closed(S, "exited with status 3");
	ck_assert_int_eq(a.n, 1);
	ck_assert_int_eq(b.n, 1);
	ck_assert_ptr_nonnull(strstr(a.error, "exited with status 3"));
	ck_assert_ptr_nonnull(strstr(b.error, "'fake'"));
	ck_assert_int_eq(mcp_session_state(S), MCP_FAILED);
	ck_assert_int_eq(nstates, 2);
	ck_assert_int_eq(states[1], MCP_FAILED);
	ck_assert_ptr_nonnull(strstr(state_error, "exited with status 3"));
	ck_assert_uint_eq(mcp_session_pending(S), 0);
	ck_assert_int_eq(ntools_changed, 0);
	/* Final: calls refused, a second close ignored. */
	ck_assert_uint_eq(mcp_call_tool(S, "t", NULL, 0, result_cb, &a), 0);
	mcp_session_transport_closed(S, "again");
	ck_assert_int_eq(nstates, 2);
	result_clear(&a);
	result_clear(&b);
}
END_TEST

START_TEST(test_transport_closed_during_startup)
{
	new_session(0, 0);
	ck_assert_int_eq(mcp_session_start(S), 0);
	mcp_session_transport_closed(S, "cannot execute 'x': No such file or directory");
	ck_assert_int_eq(mcp_session_state(S), MCP_FAILED);
	ck_assert_ptr_nonnull(strstr(state_error, "No such file"));
	ck_assert_uint_eq(mcp_session_pending(S), 0);
}
END_TEST

START_TEST(test_free_inside_callback)
{
	struct result r[3] = { { .free_session = true }, { 0 }, { 0 } };

	make_ready();
	for (int i = 0; i < 3; i++)
		ck_assert_uint_gt(mcp_call_tool(S, "t", NULL, 0, result_cb, &r[i]), 0);
	mcp_session_transport_closed(S, "gone");
	ck_assert_ptr_null(S);
	ck_assert_int_eq(r[0].n, 1);
	ck_assert_int_eq(r[1].n, 0);
	ck_assert_int_eq(r[2].n, 0);
	ck_assert_int_eq(nstates, 1); /* no FAILED after the free */
	result_clear(&r[0]);
}
END_TEST

START_TEST(test_free_inside_result_of_batch)
{
	struct result r = { .free_session = true }, r2 = { 0 };
	char *batch;

	make_ready();
	ck_assert_uint_gt(mcp_call_tool(S, "t", NULL, 0, result_cb, &r), 0);
	ck_assert_uint_gt(mcp_call_tool(S, "t", NULL, 0, result_cb, &r2), 0);
	ck_assert_int_ge(asprintf(&batch,
				  "[{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{}},"
				  "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"result\":{}}]",
				  (long long)id_of(sent(nsent() - 2)), (long long)id_of(last_sent())),
			 0);
	mcp_session_receive(S, batch, strlen(batch));
	free(batch);
	ck_assert_ptr_null(S);
	ck_assert_int_eq(r.n, 1);
	ck_assert_int_eq(r2.n, 0);
	result_clear(&r);
}
END_TEST

START_TEST(test_stop_then_closed)
{
	struct result r = { 0 };

	make_ready();
	ck_assert_uint_gt(mcp_call_tool(S, "t", NULL, 0, result_cb, &r), 0);
	mcp_session_stop(S, "config reloaded");
	ck_assert_int_eq(r.n, 1);
	ck_assert_ptr_nonnull(strstr(r.error, "config reloaded"));
	ck_assert_uint_eq(mcp_call_tool(S, "t", NULL, 0, result_cb, &r), 0);
	ck_assert_int_eq(nstates, 1);
	mcp_session_transport_closed(S, "exited with status 0");
	ck_assert_int_eq(mcp_session_state(S), MCP_CLOSED);
	ck_assert_int_eq(nstates, 2);
	ck_assert_int_eq(states[1], MCP_CLOSED);
	result_clear(&r);
}
END_TEST

START_TEST(test_startup_timeout)
{
	enum mcp_state want = MCP_FAILED;

	new_session(5, 0);
	ck_assert_int_eq(mcp_session_start(S), 0);
	ck_assert(run_until(got_state, &want));
	ck_assert_int_eq(nstates, 1);
	ck_assert_ptr_nonnull(strstr(state_error, "startup timed out after 5 ms"));
	ck_assert_ptr_nonnull(strstr(state_error, "initialize"));
	ck_assert_uint_eq(mcp_session_pending(S), 0);
	/* The initialize request is never cancelled. */
	ck_assert_int_eq(nsent(), 1);
}
END_TEST

START_TEST(test_startup_timeout_in_tools_list)
{
	enum mcp_state want = MCP_FAILED;

	new_session(5, 0);
	handshake("2025-06-18", "{\"tools\":{}}");
	ck_assert(run_until(got_state, &want));
	ck_assert_ptr_nonnull(strstr(state_error, "waiting for tools/list"));
	/* A late answer changes nothing. */
	answer(1, TOOLS3);
	ck_assert_int_eq(nstates, 1);
	ck_assert_int_eq(mcp_session_state(S), MCP_FAILED);
}
END_TEST

/* ---- the real fixture server over child.h ---- */

struct real {
	struct child *c;
	int exits;
	char *exit_reason;
};

static int real_send(void *ctx, const char *json, size_t len)
{
	struct real *rs = ctx;

	return rs->c ? child_send(rs->c, json, len) : -EPIPE;
}

static void real_line_cb(struct child *c, const char *line, size_t len, void *arg)
{
	(void)c;
	(void)arg;
	mcp_session_receive(S, line, len);
}

static void real_exit_cb(struct child *c, int wstatus, const char *reason, void *arg)
{
	struct real *rs = arg;

	(void)c;
	(void)wstatus;
	rs->exits++;
	free(rs->exit_reason);
	rs->exit_reason = strdup(reason);
	mcp_session_transport_closed(S, reason);
	loop_stop(loop);
}

static const struct child_ops real_ops = { .line_cb = real_line_cb, .exit_cb = real_exit_cb };

static const char *fixture(void)
{
	const char *f = getenv("MCP_FIXTURE");

	ck_assert_msg(f && *f, "MCP_FIXTURE must name the built tests/fixtures/mcp-fixture binary");
	ck_assert_msg(access(f, X_OK) == 0, "MCP_FIXTURE=%s is not executable", f);
	return f;
}

static void real_start(struct real *rs, const char *const *envp)
{
	const char *argv[] = { fixture(), "--mode", "echo", NULL };
	struct child_spec spec = { .command = argv[0], .argv = argv, .envp = envp, .cwd = "/",
				   .max_line = MCP_MAX_MESSAGE, .max_stdin_queue = 1u << 20 };
	struct mcp_opts o = { .name = "fixture", .startup_timeout_ms = WAIT_MS,
			      .tool_timeout_ms = WAIT_MS };
	struct mcp_transport t = { .send = real_send, .ctx = rs };
	char err[256] = "";

	ck_assert_msg(child_start(loop, &spec, &real_ops, rs, &rs->c, err, sizeof(err)) == 0,
		      "child_start: %s", err);
	S = mcp_session_new(loop, &o, &t, &ops, NULL);
	ck_assert_int_eq(mcp_session_start(S), 0);
}

static void real_clear(struct real *rs)
{
	S = mcp_session_free(S);
	rs->c = child_free(rs->c);
	free(rs->exit_reason);
}

START_TEST(test_fixture_echo_and_crash)
{
	const char *envp[] = { "PATH=/usr/bin:/bin", "FIXTURE_CHATTY=1", "FIXTURE_PAGE_SIZE=2",
			       NULL };
	enum mcp_state ready = MCP_READY, failed = MCP_FAILED;
	struct result echo = { .stop_loop = true }, add = { .stop_loop = true },
		      res = { .stop_loop = true }, crash = { .stop_loop = true };
	struct real rs = { 0 };
	json_t *args, *sc, *tools;

	real_start(&rs, envp);
	ck_assert(run_until(got_state, &ready));
	ck_assert_int_eq(nstates, 1);
	ck_assert_str_eq(mcp_session_protocol_version(S), "2025-06-18");
	ck_assert_str_eq(json_string_value(json_object_get(mcp_session_server_info(S), "name")),
			 "mcp-fixture");
	/* Five tools in pages of two. */
	tools = mcp_session_tools(S);
	ck_assert_int_eq(json_array_size(tools), 5);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(tools, 0), "name")),
			 "echo");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(tools, 4), "name")),
			 "crash");
	/* resources listed; templates unsupported by the fixture, not fatal. */
	ck_assert_int_eq(json_array_size(mcp_session_resources(S)), 1);
	ck_assert_int_eq(json_array_size(mcp_session_resource_templates(S)), 0);

	/* echo, with a notifications/message before the answer (chatty). */
	args = json_pack("{s:s}", "message", "hello tandem");
	ck_assert_uint_gt(mcp_call_tool(S, "echo", args, 0, result_cb, &echo), 0);
	json_decref(args);
	ck_assert(run_until(got_result, &echo));
	ck_assert_ptr_null(echo.error);
	sc = json_object_get(echo.result, "structuredContent");
	ck_assert_str_eq(json_string_value(json_object_get(sc, "message")), "hello tandem");
	ck_assert(json_is_false(json_object_get(echo.result, "isError")));

	args = json_pack("{s:i, s:i}", "a", 2, "b", 40);
	ck_assert_uint_gt(mcp_call_tool(S, "add", args, 0, result_cb, &add), 0);
	json_decref(args);
	ck_assert(run_until(got_result, &add));
	ck_assert_int_eq(json_integer_value(json_object_get(
				 json_object_get(add.result, "structuredContent"), "sum")),
			 42);

	ck_assert_uint_gt(mcp_read_resource(S, "fixture://hello", result_cb, &res), 0);
	ck_assert(run_until(got_result, &res));
	ck_assert_str_eq(json_string_value(json_object_get(
				 json_array_get(json_object_get(res.result, "contents"), 0), "text")),
			 "hello from fixture");

	/* crash exits with status 3 without answering. */
	ck_assert_uint_gt(mcp_call_tool(S, "crash", NULL, 0, result_cb, &crash), 0);
	ck_assert(run_until(got_result, &crash));
	ck_assert_ptr_null(crash.result);
	ck_assert_msg(strstr(crash.error, "MCP server 'fixture'") &&
			      strstr(crash.error, "exited with status 3"),
		      "unclear error: %s", crash.error);
	ck_assert(run_until(got_state, &failed));
	ck_assert_int_eq(rs.exits, 1);
	ck_assert_ptr_nonnull(strstr(mcp_session_error(S), "exited with status 3"));
	ck_assert_uint_eq(mcp_session_pending(S), 0);

	result_clear(&echo);
	result_clear(&add);
	result_clear(&res);
	result_clear(&crash);
	real_clear(&rs);
}
END_TEST

/* A call the fixture is still working on times out: the session sends
 * notifications/cancelled and stays usable for the next call. */
START_TEST(test_fixture_timeout_then_call)
{
	const char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	enum mcp_state ready = MCP_READY;
	struct result slow = { .stop_loop = true }, echo = { .stop_loop = true };
	struct real rs = { 0 };
	json_t *args;

	real_start(&rs, envp);
	ck_assert(run_until(got_state, &ready));
	args = json_pack("{s:i}", "ms", 300);
	ck_assert_uint_gt(mcp_call_tool(S, "sleep", args, 20, result_cb, &slow), 0);
	json_decref(args);
	ck_assert(run_until(got_result, &slow));
	ck_assert_ptr_nonnull(strstr(slow.error, "timed out"));
	/* The late sleep answer arrives first and is dropped; echo still works. */
	args = json_pack("{s:s}", "message", "after");
	ck_assert_uint_gt(mcp_call_tool(S, "echo", args, 0, result_cb, &echo), 0);
	json_decref(args);
	ck_assert(run_until(got_result, &echo));
	ck_assert_ptr_null(echo.error);
	ck_assert_str_eq(json_string_value(json_object_get(
				 json_object_get(echo.result, "structuredContent"), "message")),
			 "after");
	ck_assert_int_eq(slow.n, 1);
	ck_assert_int_eq(mcp_session_state(S), MCP_READY);
	result_clear(&slow);
	result_clear(&echo);
	real_clear(&rs);
}
END_TEST

static Suite *mcp_suite(void)
{
	Suite *s = suite_create("mcp");
	TCase *tc = tcase_create("protocol");
	TCase *rt = tcase_create("fixture");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_remember_then_adopt);
	tcase_add_test(tc, test_initialize_request);
	tcase_add_test(tc, test_version_older_accepted);
	tcase_add_test(tc, test_version_unknown_fails);
	tcase_add_test(tc, test_initialize_error_fails);
	tcase_add_test(tc, test_start_send_failure);
	tcase_add_test(tc, test_tools_paging);
	tcase_add_test(tc, test_tools_paging_bounded);
	tcase_add_test(tc, test_tools_count_bounded);
	tcase_add_test(tc, test_resources_optional);
	tcase_add_test(tc, test_tools_list_error_fails_when_advertised);
	tcase_add_test(tc, test_tools_list_error_ok_when_not_advertised);
	tcase_add_test(tc, test_junk_and_notifications_ignored);
	tcase_add_test(tc, test_batch_received);
	tcase_add_test(tc, test_list_changed_relists);
	tcase_add_test(tc, test_relist_failure_keeps_tools);
	tcase_add_test(tc, test_server_requests);
	tcase_add_test(tc, test_call_tool_result);
	tcase_add_test(tc, test_call_error_response);
	tcase_add_test(tc, test_call_error_malformed);
	tcase_add_test(tc, test_call_result_not_object);
	tcase_add_test(tc, test_call_tool_text);
	tcase_add_test(tc, test_text_and_parsed_calls_mixed);
	tcase_add_test(tc, test_free_inside_text_callback);
	tcase_add_test(tc, test_read_resource);
	tcase_add_test(tc, test_call_timeout_sends_cancelled);
	tcase_add_test(tc, test_session_tool_timeout_default);
	tcase_add_test(tc, test_cancel);
	tcase_add_test(tc, test_call_progress);
	tcase_add_test(tc, test_request_passthrough);
	tcase_add_test(tc, test_forget_callbacks);
	tcase_add_test(tc, test_many_pending_out_of_order);
	tcase_add_test(tc, test_id_collisions);
	tcase_add_test(tc, test_pending_limit);
	tcase_add_test(tc, test_send_failure_reported_async);
	tcase_add_test(tc, test_transport_closed_fails_pending);
	tcase_add_test(tc, test_transport_closed_during_startup);
	tcase_add_test(tc, test_free_inside_callback);
	tcase_add_test(tc, test_free_inside_result_of_batch);
	tcase_add_test(tc, test_stop_then_closed);
	tcase_add_test(tc, test_startup_timeout);
	tcase_add_test(tc, test_startup_timeout_in_tools_list);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(rt, setup, teardown);
	tcase_set_timeout(rt, 120);
	tcase_add_test(rt, test_fixture_echo_and_crash);
	tcase_add_test(rt, test_fixture_timeout_then_call);
	suite_add_tcase(s, rt);
	return s;
}

TEST_MAIN(mcp_suite)
