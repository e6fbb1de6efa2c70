/* test_executor.c - a real tandem-executor driven over the real link
 * (tests/integration/tclient.c): plugin resolution, stdio MCP processes,
 * failure modes, and the basic link checks. The link's adversarial suite
 * (floods, storms, impostors, keepalives) is test_link.c. */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "handshake.h"
#include "tclient.h"
#include "testmain.h"
#include "util.h"

#define T_MS 10000

static struct texec ex;
static struct tclient cl;

static void start_default(void)
{
	const char *env[] = { "TANDEM_TEST_FROM_EXECUTOR=executor-side-value",
			      "TANDEM_TEST_NOT_PASSED=leak", NULL };

	texec_start(&ex, NULL, env);
	tc_connect(&cl, ex.url, ex.secret);
}

static void stop_default(void)
{
	tc_close(&cl);
	texec_stop(&ex);
}

/* ---- plugin resolution ---- */

static json_t *resolve(const char *root_id, const char *path, int32_t *status, char *err,
		       size_t errlen)
{
	struct proto_root_resolve_body b = { 0 };
	struct tframe f = { 0 };
	json_t *out = NULL;

	b.root_id = proto_str_c(root_id);
	b.path = proto_str_c(path);
	b.environment_id = proto_str_c("e1");
	ck_assert_int_eq(tc_call(&cl, PROTO_ROOT_RESOLVE, &b, &f, T_MS), 0);
	*status = f.m.env.status;
	if (f.m.env.status != 0) {
		snprintf(err, errlen, "%.*s", (int)f.m.err_message.len, f.m.err_message.ptr);
	} else {
		const struct proto_root_resolve_reply *r = &f.m.u.root_resolve_reply;

		out = json_pack("{s:s%, s:b, s:o, s:o}", "path", r->path.ptr, (size_t)r->path.len,
				"is_plugin", r->is_plugin, "servers",
				json_loadb(r->servers.ptr, r->servers.len, 0, NULL), "invalid",
				r->invalid.len ? json_loadb(r->invalid.ptr, r->invalid.len, 0, NULL)
					       : json_array());
		if (PROTO_HAS_FIELD(r, root_resolve_reply, name))
			json_object_set_new(out, "name", json_stringn(r->name.ptr, r->name.len));
		if (PROTO_HAS_FIELD(r, root_resolve_reply, display_name))
			json_object_set_new(out, "display_name",
					    json_stringn(r->display_name.ptr, r->display_name.len));
		json_object_set_new(out, "n_warnings", json_integer(r->warnings.n));
	}
	tframe_free(&f);
	return out;
}

static json_t *resolve_fixture(const char *name)
{
	char path[4096], err[512];
	int32_t st;
	json_t *o;

	snprintf(path, sizeof(path), "%s/%s", plugins_dir(), name);
	o = resolve(name, path, &st, err, sizeof(err));
	ck_assert_msg(st == 0, "%s: %s", name, err);
	return o;
}

static const char *server_name(json_t *o, size_t i)
{
	return json_string_value(json_object_get(json_array_get(json_object_get(o, "servers"), i),
						 "name"));
}

START_TEST(test_resolve_every_form)
{
	json_t *o;

	start_default();
	/* Codex manifest naming its server file. */
	o = resolve_fixture("codex-ref");
	ck_assert(json_is_true(json_object_get(o, "is_plugin")));
	ck_assert_str_eq(json_string_value(json_object_get(o, "name")), "codex-ref");
	ck_assert_str_eq(json_string_value(json_object_get(o, "display_name")), "Codex Ref");
	ck_assert_uint_eq(json_array_size(json_object_get(o, "servers")), 2);
	ck_assert_str_eq(server_name(o, 0), "echo");
	ck_assert_str_eq(server_name(o, 1), "docs");
	/* Servers are bound to the owning environment. */
	ck_assert_str_eq(json_string_value(json_object_get(
				 json_array_get(json_object_get(o, "servers"), 1), "environment_id")),
			 "e1");
	json_decref(o);
	/* Claude manifest with an inline map. */
	o = resolve_fixture("claude-inline");
	ck_assert(json_is_true(json_object_get(o, "is_plugin")));
	ck_assert_uint_ge(json_array_size(json_object_get(o, "servers")), 1);
	json_decref(o);
	/* .mcp.json wrapped and bare. */
	o = resolve_fixture("default-wrapped");
	ck_assert_uint_ge(json_array_size(json_object_get(o, "servers")), 1);
	json_decref(o);
	o = resolve_fixture("default-bare");
	ck_assert_uint_ge(json_array_size(json_object_get(o, "servers")), 1);
	json_decref(o);
	/* No manifest: not a plugin, no servers, no error. */
	o = resolve_fixture("no-manifest");
	ck_assert(json_is_false(json_object_get(o, "is_plugin")));
	ck_assert_uint_eq(json_array_size(json_object_get(o, "servers")), 0);
	json_decref(o);
	/* file: URI form. */
	{
		char uri[4200], err[512];
		int32_t st;

		snprintf(uri, sizeof(uri), "file://%s/default-bare", plugins_dir());
		o = resolve("uri", uri, &st, err, sizeof(err));
		ck_assert_msg(st == 0, "%s", err);
		ck_assert_uint_ge(json_array_size(json_object_get(o, "servers")), 1);
		json_decref(o);
	}
	stop_default();
}
END_TEST

START_TEST(test_bad_servers_beside_good)
{
	json_t *o, *inv;

	start_default();
	o = resolve_fixture("mixed");
	inv = json_object_get(o, "invalid");
	ck_assert_uint_eq(json_array_size(json_object_get(o, "servers")), 3);
	ck_assert_uint_eq(json_array_size(inv), 6);
	for (size_t i = 0; i < json_array_size(inv); i++)
		ck_assert_uint_gt(strlen(json_string_value(
					  json_object_get(json_array_get(inv, i), "reason"))),
				  5);
	ck_assert_int_ge(json_integer_value(json_object_get(o, "n_warnings")), 1);
	json_decref(o);
	stop_default();
}
END_TEST

START_TEST(test_escapes_refused)
{
	char path[4096], err[512], tmpl[] = "/tmp/tandem-escape-XXXXXX";
	int32_t st;
	json_t *o;

	start_default();
	/* ../ in the manifest reference */
	snprintf(path, sizeof(path), "%s/outside-ref", plugins_dir());
	o = resolve("x", path, &st, err, sizeof(err));
	ck_assert_ptr_null(o);
	ck_assert_int_eq(st, PROTO_E_BAD_REQUEST);
	ck_assert_ptr_nonnull(strstr(err, "outside.json"));
	/* a .mcp.json that is a symlink to a file outside the root */
	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	snprintf(path, sizeof(path), "%s/root", tmpl);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/root/.codex-plugin", tmpl);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/root/.codex-plugin/plugin.json", tmpl);
	{
		FILE *f = fopen(path, "w");
		fputs("{\"name\":\"sym\"}", f);
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s/secret.json", tmpl);
	{
		FILE *f = fopen(path, "w");
		fputs("{\"mcpServers\":{\"evil\":{\"command\":\"sh\"}}}", f);
		fclose(f);
	}
	{
		char link[4200];

		snprintf(link, sizeof(link), "%s/root/.mcp.json", tmpl);
		ck_assert_int_eq(symlink(path, link), 0);
	}
	snprintf(path, sizeof(path), "%s/root", tmpl);
	o = resolve("sym", path, &st, err, sizeof(err));
	ck_assert_ptr_null(o);
	ck_assert_int_ne(st, 0);
	/* a root outside --root-allow is refused: covered in test_root_allow */
	/* a path that is not absolute */
	o = resolve("rel", "relative/path", &st, err, sizeof(err));
	ck_assert_ptr_null(o);
	ck_assert_int_ne(st, 0);
	/* a missing root */
	o = resolve("missing", "/nonexistent/tandem/root", &st, err, sizeof(err));
	ck_assert_ptr_null(o);
	ck_assert_int_eq(st, PROTO_E_NOT_FOUND);
	stop_default();
}
END_TEST

START_TEST(test_root_allow)
{
	const char *args[] = { "--root-allow", NULL, NULL };
	char allowed[4096], path[4096], err[512];
	int32_t st;
	json_t *o;

	snprintf(allowed, sizeof(allowed), "%s/codex-ref", plugins_dir());
	args[1] = allowed;
	texec_start(&ex, args, NULL);
	tc_connect(&cl, ex.url, ex.secret);
	o = resolve("ok", allowed, &st, err, sizeof(err));
	ck_assert_msg(st == 0, "%s", err);
	json_decref(o);
	snprintf(path, sizeof(path), "%s/default-bare", plugins_dir());
	o = resolve("no", path, &st, err, sizeof(err));
	ck_assert_ptr_null(o);
	ck_assert_int_eq(st, PROTO_E_DENIED);
	/* A sibling sharing the prefix as a string is outside too. */
	snprintf(path, sizeof(path), "%s/codex-ref-other", plugins_dir());
	o = resolve("no2", path, &st, err, sizeof(err));
	ck_assert_ptr_null(o);
	ck_assert_int_eq(st, PROTO_E_DENIED);
	stop_default();
}
END_TEST

/* ---- stdio MCP processes ---- */

static const char *init_req =
	"{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
	"\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}";

static json_t *rpc(uint64_t h, const char *req)
{
	char *line;
	json_t *j;

	tc_mcp_send(&cl, h, req);
	line = tc_mcp_recv(&cl, h, T_MS);
	ck_assert_msg(line != NULL, "no answer to %s", req);
	j = json_loads(line, 0, NULL);
	ck_assert_msg(j != NULL, "not JSON: %s", line);
	free(line);
	return j;
}

static uint64_t start_fixture(const char *mode, uint32_t *pid)
{
	const char *argv[] = { fixture_path(), "--mode", mode, NULL };

	return tc_mcp_start(&cl, "fixture", argv, NULL, NULL, NULL, pid);
}

START_TEST(test_start_send_receive_stop)
{
	struct tframe f = { 0 };
	uint32_t pid;
	uint64_t h;
	json_t *j;

	start_default();
	h = start_fixture("echo", &pid);
	ck_assert_uint_gt(h, 0);
	ck_assert_uint_gt(pid, 0);
	j = rpc(h, init_req);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "id")), 0);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "result"),
							   "protocolVersion")),
			 "2025-06-18");
	json_decref(j);
	j = rpc(h, "{\"jsonrpc\":\"2.0\",\"id\":\"abc\",\"method\":\"tools/call\",\"params\":"
		   "{\"name\":\"echo\",\"arguments\":{\"message\":\"hi \\u00e9 \\n there\"}}}");
	ck_assert_str_eq(json_string_value(json_object_get(j, "id")), "abc");
	ck_assert_str_eq(json_string_value(json_object_get(
				 json_object_get(json_object_get(j, "result"), "structuredContent"),
				 "message")),
			 "hi \xc3\xa9 \n there");
	json_decref(j);
	{
		struct proto_mcp_stop_body b = { .handle = h };

		ck_assert_int_eq(tc_call(&cl, PROTO_MCP_STOP, &b, &f, T_MS), 0);
		ck_assert_int_eq(f.m.env.status, 0);
		tframe_free(&f);
	}
	ck_assert_int_eq(tc_wait_event(&cl, PROTO_MCP_EXITED, h, &f, T_MS), 0);
	ck_assert_uint_eq(f.m.u.mcp_exited.handle, h);
	tframe_free(&f);
	ck_assert(pid_gone((pid_t)pid, 5000));
	/* Stopping it again: unknown handle. */
	{
		struct proto_mcp_stop_body b = { .handle = h };

		ck_assert_int_eq(tc_call(&cl, PROTO_MCP_STOP, &b, &f, T_MS), 0);
		ck_assert_int_eq(f.m.env.status, PROTO_E_NOT_FOUND);
		tframe_free(&f);
	}
	stop_default();
}
END_TEST

START_TEST(test_env_resolved_on_executor)
{
	const char *argv[] = { fixture_path(), NULL };
	const char *env[] = { "LITERAL=lit-value", NULL };
	const char *vars[] = { "TANDEM_TEST_FROM_EXECUTOR", "TANDEM_TEST_UNSET_VAR", NULL };
	char tmp[] = "/tmp/tandem-cwd-XXXXXX", *cwd;
	uint64_t h;
	json_t *j, *sc;

	start_default();
	ck_assert_ptr_nonnull(mkdtemp(tmp));
	cwd = realpath(tmp, NULL);
	h = tc_mcp_start(&cl, "envcheck", argv, env, vars, cwd, NULL);
	json_decref(rpc(h, init_req));
#define ENV_CALL(name)                                                                             \
	"{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"env\",\"arguments\":{\"name\":\"" name \
	"\"}}}"
	j = rpc(h, ENV_CALL("TANDEM_TEST_FROM_EXECUTOR"));
	sc = json_object_get(json_object_get(j, "result"), "structuredContent");
	ck_assert_str_eq(json_string_value(json_object_get(sc, "value")), "executor-side-value");
	json_decref(j);
	j = rpc(h, ENV_CALL("LITERAL"));
	sc = json_object_get(json_object_get(j, "result"), "structuredContent");
	ck_assert_str_eq(json_string_value(json_object_get(sc, "value")), "lit-value");
	json_decref(j);
	/* The environment is cleared: an executor variable not asked for is absent. */
	j = rpc(h, ENV_CALL("TANDEM_TEST_NOT_PASSED"));
	sc = json_object_get(json_object_get(j, "result"), "structuredContent");
	ck_assert(json_is_null(json_object_get(sc, "value")));
	json_decref(j);
	/* The default set comes through. */
	j = rpc(h, ENV_CALL("PATH"));
	sc = json_object_get(json_object_get(j, "result"), "structuredContent");
	ck_assert(json_is_string(json_object_get(sc, "value")));
	json_decref(j);
	/* cwd is honoured. */
	j = rpc(h, "{\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
		   "\"arguments\":{\"message\":\"x\"}}}");
	sc = json_object_get(json_object_get(j, "result"), "structuredContent");
	ck_assert_str_eq(json_string_value(json_object_get(sc, "cwd")), cwd);
	json_decref(j);
	free(cwd);
	rmdir(tmp);
	stop_default();
}
END_TEST

START_TEST(test_crash_reports_exit)
{
	struct tframe f = { 0 };
	uint64_t h;

	start_default();
	h = start_fixture("crash", NULL);
	json_decref(rpc(h, init_req));
	tc_mcp_send(&cl, h, "{\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
			    "\"arguments\":{\"message\":\"boom\"}}}");
	ck_assert_int_eq(tc_wait_event(&cl, PROTO_MCP_EXITED, h, &f, T_MS), 0);
	ck_assert_uint_eq(f.m.u.mcp_exited.signal, SIGABRT);
	ck_assert_int_eq(f.m.u.mcp_exited.exit_code, -1);
	ck_assert_ptr_nonnull(memmem(f.m.u.mcp_exited.reason.ptr, f.m.u.mcp_exited.reason.len,
				     "signal", 6));
	tframe_free(&f);
	/* Sending to the dead process: an MCP_EXITED tells us it is gone. */
	tc_mcp_send(&cl, h, "{\"id\":6,\"method\":\"ping\"}");
	ck_assert_int_eq(tc_wait_event(&cl, PROTO_MCP_EXITED, h, &f, T_MS), 0);
	tframe_free(&f);
	stop_default();
}
END_TEST

START_TEST(test_spawn_failure_is_clear)
{
	const char *argv[] = { "/nonexistent/mcp-server", NULL };
	struct proto_mcp_start_body b = { 0 };
	struct proto_str none[1];
	struct tframe f = { 0 };

	start_default();
	b.server_name = proto_str_c("missing");
	b.command = proto_str_c(argv[0]);
	b.args.items = none;
	ck_assert_int_eq(tc_call(&cl, PROTO_MCP_START, &b, &f, T_MS), 0);
	ck_assert_int_eq(f.m.env.status, PROTO_E_SPAWN);
	ck_assert_ptr_nonnull(memmem(f.m.err_message.ptr, f.m.err_message.len,
				     "/nonexistent/mcp-server", 23));
	tframe_free(&f);
	stop_default();
}
END_TEST

START_TEST(test_process_cap)
{
	const char *args[] = { "--max-processes", "2", NULL };
	const char *argv[] = { fixture_path(), NULL };
	struct proto_mcp_start_body b = { 0 };
	struct tframe f = { 0 };

	texec_start(&ex, args, NULL);
	tc_connect(&cl, ex.url, ex.secret);
	tc_mcp_start(&cl, "a", argv, NULL, NULL, NULL, NULL);
	tc_mcp_start(&cl, "b", argv, NULL, NULL, NULL, NULL);
	b.server_name = proto_str_c("c");
	b.command = proto_str_c(argv[0]);
	ck_assert_int_eq(tc_call(&cl, PROTO_MCP_START, &b, &f, T_MS), 0);
	ck_assert_int_eq(f.m.env.status, PROTO_E_LIMIT);
	ck_assert_ptr_nonnull(memmem(f.m.err_message.ptr, f.m.err_message.len, "cap of 2", 8));
	tframe_free(&f);
	stop_default();
}
END_TEST

START_TEST(test_huge_line_and_garbage)
{
	struct tframe f = { 0 };
	uint64_t h;
	json_t *j;
	char *line;

	start_default();
	/* garbage lines are relayed as they are: the executor knows no JSON */
	h = start_fixture("garbage", NULL);
	line = tc_mcp_recv(&cl, h, T_MS);
	ck_assert_ptr_nonnull(line);
	ck_assert_ptr_null(json_loads(line, 0, NULL));
	free(line);
	/* skip the rest of the garbage until the initialize answer */
	tc_mcp_send(&cl, h, init_req);
	for (;;) {
		line = tc_mcp_recv(&cl, h, T_MS);
		ck_assert_ptr_nonnull(line);
		j = json_loads(line, 0, NULL);
		free(line);
		if (j && json_object_get(j, "result"))
			break;
		json_decref(j);
	}
	json_decref(j);
	/* A line over 16 MiB kills the server with a clear reason. */
	{
		const char *argv[] = { fixture_path(), "--mode", "huge", NULL };
		const char *env[] = { "FIXTURE_HUGE_BYTES=20000000", NULL };

		h = tc_mcp_start(&cl, "huge", argv, env, NULL, NULL, NULL);
	}
	json_decref(rpc(h, init_req));
	tc_mcp_send(&cl, h, "{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
			    "\"arguments\":{\"message\":\"x\"}}}");
	ck_assert_int_eq(tc_wait_event(&cl, PROTO_MCP_EXITED, h, &f, 30000), 0);
	ck_assert_ptr_nonnull(memmem(f.m.u.mcp_exited.reason.ptr, f.m.u.mcp_exited.reason.len,
				     "line", 4));
	tframe_free(&f);
	stop_default();
}
END_TEST

START_TEST(test_stderr_forwarded)
{
	const char *argv[] = { fixture_path(), "--mode", "stderr", NULL };
	const char *env[] = { "FIXTURE_STDERR_LINES=5000", NULL };
	struct tframe f = { 0 };
	uint64_t h;

	start_default();
	h = tc_mcp_start(&cl, "noisy", argv, env, NULL, NULL, NULL);
	ck_assert_int_eq(tc_wait_event(&cl, PROTO_MCP_STDERR, h, &f, T_MS), 0);
	ck_assert_uint_gt(f.m.u.mcp_stderr.line.len, 0);
	tframe_free(&f);
	/* Rate limited: far fewer events than lines, and the server still answers. */
	json_decref(rpc(h, init_req));
	{
		unsigned n = 1;

		while (tc_wait_event(&cl, PROTO_MCP_STDERR, h, &f, 200) == 0) {
			n++;
			tframe_free(&f);
		}
		n += cl.stderr_dropped;
		ck_assert_uint_gt(n, 1);
		ck_assert_uint_lt(n, 5000);
	}
	stop_default();
}
END_TEST

START_TEST(test_noread_backpressure)
{
	const char *argv[] = { fixture_path(), "--mode", "noread", NULL };
	struct tframe f = { 0 };
	char *big = xmalloc(1024 * 1024 + 1);
	uint64_t h;
	int i;

	memset(big, 'x', 1024 * 1024);
	big[1024 * 1024] = '\0';
	start_default();
	h = tc_mcp_start(&cl, "deaf", argv, NULL, NULL, NULL, NULL);
	/* 64 MiB at a server that never reads: the executor's bounded stdin queue
	 * fills and the server is killed with a reason, not buffered forever. */
	for (i = 0; i < 64; i++)
		tc_mcp_send(&cl, h, big);
	ck_assert_int_eq(tc_wait_event(&cl, PROTO_MCP_EXITED, h, &f, 30000), 0);
	ck_assert_ptr_nonnull(memmem(f.m.u.mcp_exited.reason.ptr, f.m.u.mcp_exited.reason.len,
				     "stopped reading", 15));
	tframe_free(&f);
	free(big);
	stop_default();
}
END_TEST

START_TEST(test_kill9_kills_children)
{
	uint32_t pid1, pid2;

	start_default();
	start_fixture("echo", &pid1);
	start_fixture("noterm", &pid2);
	ck_assert(!pid_gone((pid_t)pid1, 0));
	texec_kill9(&ex);
	ck_assert_msg(pid_gone((pid_t)pid1, 5000), "child %u survived kill -9 of the executor", pid1);
	ck_assert_msg(pid_gone((pid_t)pid2, 5000), "child %u survived kill -9 of the executor", pid2);
	tc_close(&cl);
}
END_TEST

START_TEST(test_reattach_within_grace)
{
	const char *args[] = { "--grace-sec", "2", NULL };
	struct proto_mcp_attach_body a = { 0 };
	struct tframe f = { 0 };
	uint32_t pid;
	uint64_t h;
	json_t *j;

	texec_start(&ex, args, NULL);
	tc_connect(&cl, ex.url, ex.secret);
	h = start_fixture("echo", &pid);
	json_decref(rpc(h, init_req));
	/* Drop the link with a request in flight: its answer is held. */
	tc_mcp_send(&cl, h, "{\"id\":77,\"method\":\"tools/call\",\"params\":{\"name\":\"sleep\","
			    "\"arguments\":{\"ms\":300}}}");
	tc_close(&cl);
	usleep(500 * 1000);
	tc_connect(&cl, ex.url, ex.secret);
	ck_assert_uint_eq(cl.n_live, 1);
	ck_assert_uint_eq(cl.live_handles[0], h);
	a.handle = h;
	PROTO_MARK(&a, mcp_attach_body, handle);
	ck_assert_int_eq(tc_call(&cl, PROTO_MCP_ATTACH, &a, &f, T_MS), 0);
	ck_assert_int_eq(f.m.env.status, 0);
	ck_assert_uint_eq(f.m.u.mcp_attach_reply.pid, pid);
	tframe_free(&f);
	{
		char *line = tc_mcp_recv(&cl, h, T_MS); /* the held answer */

		ck_assert_ptr_nonnull(line);
		j = json_loads(line, 0, NULL);
		ck_assert_int_eq(json_integer_value(json_object_get(j, "id")), 77);
		json_decref(j);
		free(line);
	}
	j = rpc(h, "{\"id\":78,\"method\":\"tools/list\"}");
	ck_assert_ptr_nonnull(json_object_get(j, "result"));
	json_decref(j);
	/* Now drop it and stay away past the grace period: it is stopped. */
	tc_close(&cl);
	ck_assert_msg(pid_gone((pid_t)pid, 8000), "detached process outlived the grace period");
	tc_connect(&cl, ex.url, ex.secret);
	ck_assert_uint_eq(cl.n_live, 0);
	a.handle = h;
	ck_assert_int_eq(tc_call(&cl, PROTO_MCP_ATTACH, &a, &f, T_MS), 0);
	ck_assert_int_eq(f.m.env.status, PROTO_E_NOT_FOUND);
	tframe_free(&f);
	/* Neither a handle nor an identity: a bad request, not a crash. */
	a.present = 0;
	ck_assert_int_eq(tc_call(&cl, PROTO_MCP_ATTACH, &a, &f, T_MS), 0);
	ck_assert_int_eq(f.m.env.status, PROTO_E_BAD_REQUEST);
	tframe_free(&f);
	stop_default();
}
END_TEST

START_TEST(test_200_cycles_no_leaks)
{
	const char *argv[] = { fixture_path(), NULL };
	struct tframe f = { 0 };
	int fds_before, fds_after;

	start_default();
	/* one cycle first so lazily opened descriptors are counted */
	{
		uint64_t h = tc_mcp_start(&cl, "warm", argv, NULL, NULL, NULL, NULL);
		struct proto_mcp_stop_body b = { .handle = h };

		ck_assert_int_eq(tc_call(&cl, PROTO_MCP_STOP, &b, &f, T_MS), 0);
		tframe_free(&f);
		ck_assert_int_eq(tc_wait_event(&cl, PROTO_MCP_EXITED, h, &f, T_MS), 0);
		tframe_free(&f);
	}
	fds_before = proc_fd_count(ex.pid);
	for (int i = 0; i < 200; i++) {
		uint64_t h = tc_mcp_start(&cl, "cycle", argv, NULL, NULL, NULL, NULL);
		struct proto_mcp_stop_body b = { .handle = h };

		ck_assert_int_eq(tc_call(&cl, PROTO_MCP_STOP, &b, &f, T_MS), 0);
		ck_assert_int_eq(f.m.env.status, 0);
		tframe_free(&f);
		ck_assert_int_eq(tc_wait_event(&cl, PROTO_MCP_EXITED, h, &f, T_MS), 0);
		tframe_free(&f);
	}
	fds_after = proc_fd_count(ex.pid);
	ck_assert_int_gt(fds_before, 0);
	ck_assert_int_eq(fds_after, fds_before);
	ck_assert_int_eq(proc_zombie_children(ex.pid), 0);
	stop_default();
}
END_TEST

/* ---- the link ---- */

START_TEST(test_wrong_or_missing_proof_dropped)
{
	texec_start(&ex, NULL, NULL);
	ck_assert_int_eq(tc_dial(&cl, ex.url, T_MS), 0);
	ck_assert_int_ne(tc_hello(&cl, ex.secret, true), 0);
	ck_assert(tc_closed_by_peer(&cl, T_MS));
	tc_close(&cl);
	ck_assert_int_eq(tc_dial(&cl, ex.url, T_MS), 0);
	ck_assert_int_ne(tc_hello(&cl, NULL, false), 0);
	ck_assert(tc_closed_by_peer(&cl, T_MS));
	tc_close(&cl);
	ck_assert_int_eq(tc_dial(&cl, ex.url, T_MS), 0);
	ck_assert_int_ne(tc_hello(&cl, "not-the-secret", false), 0);
	ck_assert(tc_closed_by_peer(&cl, T_MS));
	tc_close(&cl);
	ck_assert(texec_log_contains(&ex, "wrong proof of the secret"));
	ck_assert(texec_log_contains(&ex, "no proof of the secret"));
	ck_assert(!texec_log_contains(&ex, ex.secret)); /* never logged */
	/* It still serves the right peer. */
	tc_connect(&cl, ex.url, ex.secret);
	stop_default();
}
END_TEST

/* A stream of peers failing the proof must never wedge the listener. */
START_TEST(test_auth_failure_storm)
{
	texec_start(&ex, NULL, NULL);
	for (int i = 0; i < 100; i++) {
		ck_assert_msg(tc_dial(&cl, ex.url, T_MS) == 0, "dial %d got no CHALLENGE", i);
		ck_assert_int_ne(tc_hello(&cl, "not-the-secret", false), 0);
		tc_close(&cl);
	}
	tc_connect(&cl, ex.url, ex.secret);
	stop_default();
}
END_TEST

START_TEST(test_first_message_must_be_hello)
{
	struct proto_ping_body p = { .stamp = 5 };
	struct tframe f = { 0 };
	uint8_t marker[8];
	struct fbuf enc = { 0 };

	texec_start(&ex, NULL, NULL);
	ck_assert_int_eq(tc_dial(&cl, ex.url, T_MS), 0);
	/* After the opening, a PING instead of HELLO: refused, closed. */
	hs_marker(marker);
	tc_send_bytes(&cl, marker, sizeof(marker));
	ck_assert_int_eq(proto_encode(fbuf_write, &enc, PROTO_PING, PROTO_REQUEST, 1, &p), 0);
	tc_send_raw(&cl, enc.p, enc.len);
	fbuf_free(&enc);
	ck_assert(tc_closed_by_peer(&cl, T_MS));
	tc_close(&cl);
	ck_assert(texec_log_wait(&ex, "PING message is not allowed before authentication", T_MS));
	tc_connect(&cl, ex.url, ex.secret);
	PROTO_MARK(&p, ping_body, stamp);
	ck_assert_int_eq(tc_call(&cl, PROTO_PING, &p, &f, T_MS), 0);
	ck_assert_int_eq(f.m.env.status, 0);
	ck_assert_uint_eq(f.m.u.ping_reply.stamp, 5);
	tframe_free(&f);
	stop_default();
}
END_TEST

/* Each hostile frame is sent whole (explicit lengths: some hold NUL bytes)
 * to an authenticated session: each drops that peer with its reason in the
 * log, never the daemon. */
START_TEST(test_hostile_frames_drop_peer_not_daemon)
{
	static const struct {
		const char *bytes;
		size_t len;
		const char *reason;
	} garbage[] = {
		{ "\x96", 1, "malformed frame" },
		{ "\xc1\xc1\xc1", 3, "malformed frame" },
		/* a bin32 field declaring 4 GiB in a 12-byte frame */
		{ "\x96\x02\x22\x02\x00\x00\x82\x01\x01\x02\xc6\xff\xff\xff\xff", 15,
		  "malformed frame" },
		/* envelope version 5 */
		{ "\x96\x05\x22\x02\x00\x00\x80", 7, "unsupported protocol version 5" },
		/* a reply to a request the executor never sent */
		{ "\x96\x03\x21\x01\x07\x00\x80", 7, "MCP_STOP reply is not accepted" },
	};
	struct proto_ping_body p = { 0 };
	struct tframe f = { 0 };

	texec_start(&ex, NULL, NULL);
	for (size_t i = 0; i < ARRAY_SIZE(garbage); i++) {
		tc_connect(&cl, ex.url, ex.secret);
		ck_assert_int_eq(tc_send_raw(&cl, garbage[i].bytes, garbage[i].len), 0);
		ck_assert_msg(tc_closed_by_peer(&cl, T_MS), "garbage %zu did not drop the peer", i);
		tc_close(&cl);
		ck_assert_msg(texec_log_wait(&ex, garbage[i].reason, T_MS), "garbage %zu: no '%s' in %s",
			      i, garbage[i].reason, ex.log_path);
	}
	/* A frame header declaring more than the limit: closed before any of it. */
	tc_connect(&cl, ex.url, ex.secret);
	ck_assert_int_eq(tc_send_bytes(&cl, "\x7f\xff\xff\xff", 4), 0);
	ck_assert(tc_closed_by_peer(&cl, T_MS));
	tc_close(&cl);
	ck_assert(texec_log_wait(&ex, "over the limit", T_MS));
	/* A frame of length 0. */
	tc_connect(&cl, ex.url, ex.secret);
	ck_assert_int_eq(tc_send_bytes(&cl, "\0\0\0\0", 4), 0);
	ck_assert(tc_closed_by_peer(&cl, T_MS));
	tc_close(&cl);
	ck_assert(texec_log_wait(&ex, "frame of length 0", T_MS));
	/* The daemon lives on and answers. */
	tc_connect(&cl, ex.url, ex.secret);
	ck_assert_int_eq(tc_call(&cl, PROTO_PING, &p, &f, T_MS), 0);
	ck_assert_int_eq(f.m.env.status, 0);
	tframe_free(&f);
	stop_default();
}
END_TEST

/* A self-signed certificate for "localhost", made with the openssl tool. */
static void make_cert(const char *dir, char *both, char *cert, size_t len)
{
	char cmd[2048];

	snprintf(cert, len, "%s/cert.pem", dir);
	snprintf(both, len, "%s/both.pem", dir);
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
		 "-addext subjectAltName=DNS:localhost -keyout %s/key.pem -out %s 2>/dev/null && "
		 "cat %s/key.pem %s > %s",
		 dir, cert, dir, cert, both);
	ck_assert_msg(system(cmd) == 0, "openssl could not make a test certificate");
}

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

START_TEST(test_tls_listener)
{
	char dir[] = "/tmp/tandem-tls-XXXXXX", both[256], cert[256], url[64], other[300];
	const char *args[] = { "--tls-cert", both, NULL };
	struct proto_ping_body p = { .stamp = 7 };
	struct tframe f = { 0 };
	struct texec tls;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	make_cert(dir, both, cert, sizeof(both));
	setenv("TANDEM_TEST_TLS_CA", cert, 1);
	snprintf(url, sizeof(url), "tls+tcp://127.0.0.1:%d", free_port());
	texec_start_url(&tls, url, args);
	tc_connect(&cl, tls.url, tls.secret);
	PROTO_MARK(&p, ping_body, stamp);
	ck_assert_int_eq(tc_call(&cl, PROTO_PING, &p, &f, T_MS), 0);
	ck_assert_uint_eq(f.m.u.ping_reply.stamp, 7);
	tframe_free(&f);
	tc_close(&cl);
	/* A client that does not trust the certificate gets nowhere. */
	snprintf(other, sizeof(other), "%s/other", dir);
	mkdir(other, 0700);
	{
		char both2[300], cert2[300];

		make_cert(other, both2, cert2, sizeof(both2));
		setenv("TANDEM_TEST_TLS_CA", cert2, 1);
		ck_assert_int_ne(tc_dial(&cl, tls.url, 1500), 0);
		tc_close(&cl);
	}
	texec_stop(&tls);
}
END_TEST

/* wss://: the link inside TLS inside a WebSocket (Debian's nng has TLS,
 * with mbed TLS); not sealed on top (the transport encrypts), and a client
 * that does not trust the certificate gets nowhere. */
START_TEST(test_wss_listener)
{
	char dir[] = "/tmp/tandem-wss-XXXXXX", both[256], cert[256], url[80], other[300];
	const char *args[] = { "--tls-cert", both, NULL };
	struct proto_ping_body p = { .stamp = 9 };
	struct tframe f = { 0 };
	struct texec w;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	make_cert(dir, both, cert, sizeof(both));
	setenv("TANDEM_TEST_TLS_CA", cert, 1);
	snprintf(url, sizeof(url), "wss://127.0.0.1:%d/tandem", free_port());
	texec_start_url(&w, url, args);
	tc_connect(&cl, w.url, w.secret);
	ck_assert(!cl.sealed);
	PROTO_MARK(&p, ping_body, stamp);
	ck_assert_int_eq(tc_call(&cl, PROTO_PING, &p, &f, T_MS), 0);
	ck_assert_uint_eq(f.m.u.ping_reply.stamp, 9);
	tframe_free(&f);
	tc_close(&cl);
	snprintf(other, sizeof(other), "%s/other", dir);
	mkdir(other, 0700);
	{
		char both2[300], cert2[300];

		make_cert(other, both2, cert2, sizeof(both2));
		setenv("TANDEM_TEST_TLS_CA", cert2, 1);
		ck_assert_int_ne(tc_dial(&cl, w.url, 1500), 0);
		tc_close(&cl);
	}
	texec_stop(&w);
}
END_TEST

/* A session resumed on a new connection (protocol 3): the server stays
 * attached, an answer produced while no connection existed arrives on the
 * new one exactly once, a wrong session id is refused with the reason (a
 * fresh session, the old one's process detached), and past --grace-sec
 * the executor no longer knows the session. */
START_TEST(test_session_resume)
{
	const char *args[] = { "--grace-sec", "1", NULL };
	uint8_t id[PROTO_SESSION_ID_LEN], bogus[PROTO_SESSION_ID_LEN] = { 0 };
	uint64_t tx, rx, h;
	uint32_t pid;
	json_t *j;
	char *line;

	texec_start(&ex, args, NULL);
	tc_connect(&cl, ex.url, ex.secret);
	h = start_fixture("echo", &pid);
	json_decref(rpc(h, init_req));
	tc_mcp_send(&cl, h, "{\"id\":91,\"method\":\"tools/call\",\"params\":{\"name\":\"sleep\","
			    "\"arguments\":{\"ms\":300}}}");
	memcpy(id, cl.session_id, sizeof(id));
	tx = cl.tx_seq;
	rx = cl.rx_seq;
	tc_close(&cl);
	usleep(500 * 1000); /* the answer comes while no connection exists */
	ck_assert_int_eq(tc_resume(&cl, ex.url, ex.secret, id, tx, rx), 0);
	ck_assert(cl.resumed);
	ck_assert_uint_eq(cl.n_live, 0); /* nothing was detached */
	line = tc_mcp_recv(&cl, h, T_MS);
	ck_assert_ptr_nonnull(line);
	j = json_loads(line, 0, NULL);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "id")), 91);
	json_decref(j);
	free(line);
	j = rpc(h, "{\"id\":92,\"method\":\"tools/list\"}");
	ck_assert_ptr_nonnull(json_object_get(j, "result"));
	json_decref(j);
	ck_assert(texec_log_wait(&ex, "resumed by orchestrator", T_MS));
	/* Another session id: refused, and a fresh session detaches the old
	 * one's process. */
	tx = cl.tx_seq;
	rx = cl.rx_seq;
	tc_close(&cl);
	ck_assert_int_eq(tc_resume(&cl, ex.url, ex.secret, bogus, tx, rx), 0);
	ck_assert(!cl.resumed);
	ck_assert_ptr_nonnull(strstr(cl.resume_refused, "not this executor's current session"));
	ck_assert_uint_eq(cl.n_live, 1);
	/* Past the grace period the session is gone. */
	memcpy(id, cl.session_id, sizeof(id));
	tx = cl.tx_seq;
	rx = cl.rx_seq;
	tc_close(&cl);
	usleep(1600 * 1000);
	ck_assert_int_eq(tc_resume(&cl, ex.url, ex.secret, id, tx, rx), 0);
	ck_assert(!cl.resumed);
	ck_assert_ptr_nonnull(strstr(cl.resume_refused, "unknown to this executor"));
	tc_close(&cl);
	texec_stop(&ex);
}
END_TEST

START_TEST(test_insecure_tcp_refused)
{
	int st;

	texec_spawn_raw(&ex, "tcp://0.0.0.0:0", NULL);
	ck_assert_int_eq(waitpid(ex.pid, &st, 0), ex.pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) != 0);
	ck_assert(texec_log_contains(&ex, "refusing to listen"));
	ex.pid = 0;
	texec_kill9(&ex); /* reaped above: only removes its temp dir */
	/* loopback without auth is allowed (with a warning) */
	{
		const char *args[] = { "--insecure", NULL };

		texec_spawn_raw(&ex, "tcp://127.0.0.1:0", NULL);
		usleep(200 * 1000);
		ck_assert(!pid_gone(ex.pid, 0));
		texec_stop(&ex);
		texec_spawn_raw(&ex, "tcp://0.0.0.0:0", args);
		usleep(200 * 1000);
		ck_assert(!pid_gone(ex.pid, 0));
		texec_stop(&ex);
	}
}
END_TEST

static Suite *executor_suite(void)
{
	Suite *s = suite_create("executor");
	TCase *tc = tcase_create("link");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_resolve_every_form);
	tcase_add_test(tc, test_bad_servers_beside_good);
	tcase_add_test(tc, test_escapes_refused);
	tcase_add_test(tc, test_root_allow);
	tcase_add_test(tc, test_start_send_receive_stop);
	tcase_add_test(tc, test_env_resolved_on_executor);
	tcase_add_test(tc, test_crash_reports_exit);
	tcase_add_test(tc, test_spawn_failure_is_clear);
	tcase_add_test(tc, test_process_cap);
	tcase_add_test(tc, test_huge_line_and_garbage);
	tcase_add_test(tc, test_stderr_forwarded);
	tcase_add_test(tc, test_noread_backpressure);
	tcase_add_test(tc, test_kill9_kills_children);
	tcase_add_test(tc, test_reattach_within_grace);
	tcase_add_test(tc, test_200_cycles_no_leaks);
	tcase_add_test(tc, test_wrong_or_missing_proof_dropped);
	tcase_add_test(tc, test_first_message_must_be_hello);
	tcase_add_test(tc, test_auth_failure_storm);
	tcase_add_test(tc, test_hostile_frames_drop_peer_not_daemon);
	tcase_add_test(tc, test_insecure_tcp_refused);
	tcase_add_test(tc, test_tls_listener);
	tcase_add_test(tc, test_wss_listener);
	tcase_add_test(tc, test_session_resume);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(executor_suite)
