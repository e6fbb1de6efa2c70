/* test_gateway.c - the MCP gateway (orchestrator/gateway*.c) over the fake
 * environment layer: the real HTTP endpoint on loopback, driven by a real
 * HTTP client (common/http.h, libcurl on the same loop) through sessions,
 * lists, calls, cancellation, list_changed on the GET stream, auth,
 * refusals and the session bound, and a stop with calls and streams open
 * (what the sanitizer and valgrind lanes check). The real MCP clients and
 * executors are in tests/integration/test_gateway.py. */
#include <sodium.h>
#include <strings.h>

#include "gateway.h"
#include "gateway_int.h"
#include "http.h"
#include "jsonutil.h"
#include "testdomain.h"
#include "testmain.h"

#define FAKE_SERVER "[mcp_servers.fake]\ncommand = \"fake-mcp\"\nargs = [\"echo\", \"hang\"]\n"
#define TOKEN "a-capability-token-for-the-gateway-test"

static struct http *client;
static char base[128];

struct ex { /* one exchange */
	bool done;
	int err;
	long status;
	char *body;
	size_t len;
	char sid[128];
	char type[64];
	char www[256];
	struct http_req *r;
};

static void gw_start(const char *config)
{
	char err[256] = "";

	dom_start(config);
	dom_ready(local_env());
	client = http_new(loop);
	ck_assert_msg(gateway_start(loop, "127.0.0.1:0", err, sizeof(err)) == 0, "%s", err);
	snprintf(base, sizeof(base), "http://%s", gateway_address());
}

static void teardown(void)
{
	gateway_stop();
	client = http_free(client);
	dom_stop();
}

static void ex_headers_cb(struct http_req *r, long status, void *arg)
{
	struct ex *x = arg;
	const char *v;

	if ((v = http_req_header(r, "Mcp-Session-Id")))
		snprintf(x->sid, sizeof(x->sid), "%s", v);
	if ((v = http_req_header(r, "Content-Type")))
		snprintf(x->type, sizeof(x->type), "%s", v);
	if ((v = http_req_header(r, "WWW-Authenticate")))
		snprintf(x->www, sizeof(x->www), "%s", v);
}

static void ex_data_cb(struct http_req *r, const char *data, size_t len, void *arg)
{
	struct ex *x = arg;

	x->body = xrealloc(x->body, x->len + len + 1);
	memcpy(x->body + x->len, data, len);
	x->len += len;
	x->body[x->len] = '\0';
}

static void ex_done_cb(struct http_req *r, int err, long status, const char *msg, void *arg)
{
	struct ex *x = arg;

	x->done = true;
	x->err = err;
	x->status = status;
	x->r = NULL;
}

static const struct http_cbs ex_cbs = { ex_headers_cb, ex_data_cb, ex_done_cb };

static void ex_free(struct ex *x)
{
	http_cancel(x->r);
	free(x->body);
	free(x);
}

/* Starts a request; extra: up to 3 more header lines (NULL-terminated). */
static struct ex *send_req(const char *method, const char *path, const char *sid,
			   const char *body, const char *const *extra)
{
	_cleanup_free_ char *url = xasprintf("%s%s", base, path);
	_cleanup_free_ char *sh = sid ? xasprintf("Mcp-Session-Id: %s", sid) : NULL;
	const char *h[8] = { "Content-Type: application/json",
			     "Accept: application/json, text/event-stream" };
	size_t n = 2;
	struct ex *x = xcalloc(1, sizeof(*x));
	struct http_opts o = { .method = method, .url = url, .headers = h, .body = body,
			       .body_len = body ? strlen(body) : 0, .timeout_ms = DOM_WAIT_MS };

	if (sh)
		h[n++] = sh;
	for (; extra && *extra && n < 7; extra++) {
		if (!strncasecmp(*extra, "Content-Type:", 13))
			h[0] = *extra; /* instead of JSON's */
		else
			h[n++] = *extra;
	}
	x->r = http_start(client, &o, &ex_cbs, x);
	ck_assert_ptr_nonnull(x->r);
	return x;
}

static bool ex_done(void *arg) { return ((struct ex *)arg)->done; }

static struct ex *req(const char *method, const char *path, const char *sid, const char *body,
		      const char *const *extra)
{
	struct ex *x = send_req(method, path, sid, body, extra);

	ck_assert(run_until(ex_done, x));
	return x;
}

/* The one JSON-RPC message of a JSON answer (new reference). */
static json_t *msg_of(struct ex *x)
{
	json_t *m = jsonu_loadb(x->body, x->len, 1 << 20, NULL, 0);

	ck_assert_msg(m, "not JSON: %s", x->body ? x->body : "(empty)");
	return m;
}

static char *initialize(const char *path, const char *const *extra)
{
	struct ex *x = req("POST", path, NULL,
			   "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
			   "\"protocolVersion\":\"2025-11-25\",\"capabilities\":{}}}", extra);
	json_t *m = msg_of(x);
	char *sid;

	ck_assert_int_eq(x->status, 200);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(m, "result"),
							   "protocolVersion")), "2025-06-18");
	ck_assert_uint_eq(strlen(x->sid), 64);
	sid = xstrdup(x->sid);
	json_decref(m);
	ex_free(x);
	return sid;
}

/* A request on the session; returns its answer message (new reference). */
static json_t *call(const char *sid, const char *method, const char *params)
{
	_cleanup_free_ char *body = xasprintf("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"%s\""
					      "%s%s}", method, params ? ",\"params\":" : "",
					      params ? params : "");
	struct ex *x = req("POST", "/mcp", sid, body, NULL);
	json_t *m;

	ck_assert_int_eq(x->status, 200);
	m = msg_of(x);
	ex_free(x);
	return m;
}

static bool has_tool(json_t *list, const char *name)
{
	json_t *t;
	size_t i;

	json_array_foreach(json_object_get(json_object_get(list, "result"), "tools"), i, t)
		if (!strcmp(json_string_value(json_object_get(t, "name")), name))
			return true;
	return false;
}

START_TEST(sessions_lists_and_calls)
{
	_cleanup_free_ char *sid = NULL;
	json_t *m;

	gw_start(FAKE_SERVER);
	sid = initialize("/mcp", NULL);
	m = call(sid, "tools/list", NULL);
	ck_assert(has_tool(m, "fake__echo") && has_tool(m, "fake__hang"));
	json_decref(m);
	m = call(sid, "tools/call", "{\"name\":\"fake__echo\",\"arguments\":{\"text\":\"hi\"}}");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(
		json_object_get(m, "result"), "content"), 0), "text")), "hi");
	json_decref(m);
	m = call(sid, "tools/call", "{\"name\":\"fake__nope\"}");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(m, "error"), "code")),
			 -32602);
	json_decref(m);
	m = call(sid, "ping", NULL);
	ck_assert(json_is_object(json_object_get(m, "result")));
	json_decref(m);
	/* A name cut for the message is cut on a character boundary. */
	{
		char method[256] = "x"; /* 128 bytes end inside a character */

		for (int i = 0; i < 100; i++)
			strcat(method, "\xc3\xa9");
		m = call(sid, method, NULL);
		ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(m, "error"),
								    "code")), -32601);
		json_decref(m);
	}
	m = call(sid, "completion/complete", "{}");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(m, "error"), "code")),
			 -32601);
	json_decref(m);
	ck_assert_uint_eq(fake_env_tool_calls("echo"), 1);
}
END_TEST

/* notifications/cancelled ends the waiting POST with an empty event stream
 * and reaches the server. */
START_TEST(cancellation_reaches_the_server)
{
	_cleanup_free_ char *sid = NULL;
	struct ex *x, *c;

	gw_start(FAKE_SERVER);
	sid = initialize("/mcp", NULL);
	x = send_req("POST", "/mcp", sid, "{\"jsonrpc\":\"2.0\",\"id\":\"h1\",\"method\":"
		     "\"tools/call\",\"params\":{\"name\":\"fake__hang\"}}", NULL);
	run_a_while(20);
	ck_assert(!x->done);
	ck_assert_uint_eq(fake_env_tool_calls("hang"), 1);
	c = req("POST", "/mcp", sid, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\","
		"\"params\":{\"requestId\":\"h1\"}}", NULL);
	ck_assert_int_eq(c->status, 202);
	ck_assert(run_until(ex_done, x));
	ck_assert_int_eq(x->status, 200);
	ck_assert_str_eq(x->type, "text/event-stream");
	ck_assert_uint_eq(x->len, 0);
	ck_assert_uint_eq(fake_env_cancels(), 1);
	ex_free(x);
	ex_free(c);
}
END_TEST

static bool body_has_changed(void *arg)
{
	struct ex *x = arg;

	return x->body && strstr(x->body, "notifications/tools/list_changed");
}

/* The GET stream hears list_changed when a server goes, and again when it
 * comes back; the list never shows a server that is down. */
START_TEST(list_changed_on_the_stream)
{
	_cleanup_free_ char *sid = NULL;
	struct ex *get;
	json_t *m;

	gw_start(FAKE_SERVER);
	sid = initialize("/mcp", NULL);
	m = call(sid, "tools/list", NULL);
	ck_assert(has_tool(m, "fake__echo"));
	json_decref(m);
	get = send_req("GET", "/mcp", sid, NULL, NULL);
	run_a_while(20);
	ck_assert(!get->done);
	ck_assert_str_eq(get->type, "text/event-stream");
	ck_assert(fake_env_exit(local_env(), "fake", "crashed"));
	ck_assert(run_until(body_has_changed, get));
	free(get->body);
	get->body = NULL;
	get->len = 0;
	/* The list is taken again (the server comes back on use). */
	m = call(sid, "tools/list", NULL);
	ck_assert(has_tool(m, "fake__echo"));
	json_decref(m);
	ck_assert(run_until(body_has_changed, get));
	ex_free(get);
}
END_TEST

START_TEST(refusals)
{
	_cleanup_free_ char *sid = NULL;
	static const char ping[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
	static const struct {
		const char *method, *path, *body;
		bool session;
		const char *header;
		long status;
	} cases[] = {
		{ "POST", "/mcp", ping, false, NULL, 400 },
		{ "POST", "/mcp", "{nope", true, NULL, 400 },
		{ "POST", "/mcp", "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", true, NULL,
		  400 },
		{ "POST", "/mcp", ping, true, "MCP-Protocol-Version: 1999-01-01", 400 },
		{ "POST", "/mcp", ping, true, "MCP-Protocol-Version: \xff\xfe", 400 },
		{ "POST", "/mcp", ping, true, "Origin: http://evil.example", 403 },
		{ "POST", "/mcp", ping, true, "Origin: http://127.0.0.1.evil.example", 403 },
		{ "POST", "/mcp/threads/none", ping, true, NULL, 404 },
		{ "POST", "/mcp/profiles/none/mcp", "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":"
		  "\"initialize\",\"params\":{\"protocolVersion\":\"2025-06-18\"}}", false, NULL, 404 },
		{ "POST", "/elsewhere", ping, true, NULL, 404 },
		{ "PUT", "/mcp", ping, true, NULL, 405 },
		{ "POST", "/mcp", ping, true, "Content-Type: text/plain", 415 },
		{ "GET", "/.well-known/oauth-protected-resource", NULL, false, NULL, 404 },
	};
	struct ex *x;

	gw_start(FAKE_SERVER);
	sid = initialize("/mcp", NULL);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *extra[] = { cases[i].header, NULL };

		x = req(cases[i].method, cases[i].path, cases[i].session ? sid : NULL, cases[i].body,
			extra);
		ck_assert_msg(x->status == cases[i].status, "case %zu: %ld, want %ld (%s)", i,
			      x->status, cases[i].status, x->body ? x->body : "");
		ex_free(x);
	}
	x = req("DELETE", "/mcp", sid, NULL, NULL);
	ck_assert_int_eq(x->status, 200);
	ex_free(x);
	x = req("POST", "/mcp", sid, ping, NULL);
	ck_assert_int_eq(x->status, 404);
	ex_free(x);
}
END_TEST

START_TEST(bearer_token_and_metadata)
{
	unsigned char digest[32];
	char hex[65], cfg[1024];
	const char *good[] = { "Authorization: Bearer " TOKEN, NULL };
	const char *bad[] = { "Authorization: Bearer " TOKEN "x", NULL };
	_cleanup_free_ char *sid = NULL;
	struct ex *x;
	json_t *m;

	ck_assert_int_eq(sodium_init() >= 0, 1);
	crypto_hash_sha256(digest, (const unsigned char *)TOKEN, strlen(TOKEN));
	sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
	snprintf(cfg, sizeof(cfg), FAKE_SERVER "[mcp_gateway]\nauth = \"capability-token\"\n"
		 "token_sha256 = \"%s\"\nresource = \"http://gw.example/mcp\"\n", hex);
	gw_start(cfg);
	x = req("POST", "/mcp", NULL, "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\","
		"\"params\":{\"protocolVersion\":\"2025-06-18\"}}", bad);
	ck_assert_int_eq(x->status, 401);
	ck_assert_uint_eq(x->len, 0);
	ck_assert_str_eq(x->www, "Bearer realm=\"tandem\", error=\"invalid_token\", "
		       "resource_metadata=\"http://gw.example/.well-known/"
		       "oauth-protected-resource/mcp\"");
	ex_free(x);
	sid = initialize("/mcp", good);
	x = req("POST", "/mcp", sid, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}",
		NULL);
	ck_assert_int_eq(x->status, 401);
	ex_free(x);
	x = req("GET", "/.well-known/oauth-protected-resource/mcp", NULL, NULL, NULL);
	m = msg_of(x);
	ck_assert_str_eq(json_string_value(json_object_get(m, "resource")), "http://gw.example/mcp");
	json_decref(m);
	ex_free(x);
}
END_TEST

/* Idle sessions make room; the count never passes the bound. */
START_TEST(session_bound)
{
	gw_start(FAKE_SERVER);
	for (unsigned i = 0; i < GATEWAY_MAX_SESSIONS + 20; i++)
		free(initialize("/mcp", NULL));
	ck_assert_uint_eq(gateway_session_count(), GATEWAY_MAX_SESSIONS);
}
END_TEST

/* Stopping with a call waiting on a server and a stream open. */
START_TEST(stop_with_work_in_flight)
{
	_cleanup_free_ char *sid = NULL;
	struct ex *x, *get;

	gw_start(FAKE_SERVER);
	sid = initialize("/mcp", NULL);
	x = send_req("POST", "/mcp", sid, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
		     "\"params\":{\"name\":\"fake__hang\"}}", NULL);
	get = send_req("GET", "/mcp", sid, NULL, NULL);
	run_a_while(20);
	ck_assert(!x->done && !get->done);
	gateway_stop();
	ck_assert(run_until(ex_done, x));
	ck_assert(run_until(ex_done, get));
	ck_assert_ptr_null(gateway_address());
	ex_free(x);
	ex_free(get);
}
END_TEST

static Suite *gateway_suite(void)
{
	Suite *s = suite_create("gateway");
	TCase *tc = tcase_create("gateway");

	tcase_add_unchecked_fixture(tc, homes_setup, homes_teardown);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, sessions_lists_and_calls);
	tcase_add_test(tc, cancellation_reaches_the_server);
	tcase_add_test(tc, list_changed_on_the_stream);
	tcase_add_test(tc, refusals);
	tcase_add_test(tc, bearer_token_and_metadata);
	tcase_add_test(tc, session_bound);
	tcase_add_test(tc, stop_with_work_in_flight);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(gateway_suite)
