/* test_srv.c - the MCP server pool (orchestrator/srv.c) and the views
 * (view.c) over the fake environment layer: instances shared by key and
 * stopped with their last user, tool filtering, start failures and the
 * backoff that gives up, crashes, a lost environment, an instance released
 * while it starts; contributors and auth gating of the views. */
#include "testdomain.h"
#include "testmain.h"
#include "mcp.h"
#include "secret.h"
#include "view.h"

#define STDIO(args) \
	"{\"transport\":\"stdio\",\"command\":\"fake-mcp\",\"args\":" args \
	",\"environment_id\":\"local\"}"

static void setup(void)
{
	dom_start(NULL);
	dom_ready(local_env());
}

static void teardown(void) { dom_stop(); }

static json_t *cfg(const char *text)
{
	json_t *c = json_loads(text, 0, NULL);

	ck_assert_ptr_nonnull(c);
	return c;
}

static bool no_live_process(void *arg) { return fake_env_live() == *(unsigned *)arg; }

struct watch {
	unsigned changes;
	enum srv_state last;
};

static void watch_cb(struct srv *s, void *arg)
{
	struct watch *w = arg;

	w->changes++;
	w->last = srv_state(s);
}

START_TEST(instances_are_shared_by_key_and_stop_with_the_last_user)
{
	json_t *c = cfg(STDIO("[\"echo\"]"));
	struct srv *a = srv_acquire("s", c, NULL), *b = srv_acquire("s", c, NULL);
	struct srv *p = srv_acquire("s", c, "plug@1");
	unsigned want;

	ck_assert_ptr_eq(a, b);
	ck_assert_ptr_ne(a, p); /* another plugin's server is another instance */
	ck_assert(run_until(srv_is_ready, a));
	ck_assert(run_until(srv_is_ready, p));
	ck_assert_uint_eq(fake_env_started("s"), 2);
	ck_assert_uint_eq(srv_starts(), 2);
	srv_release(b);
	run_a_while(5);
	ck_assert_uint_eq(fake_env_live(), 2);
	ck_assert_uint_eq(fake_env_requests(local_env(), PROTO_MCP_STOP), 0);
	srv_release(a);
	want = 1;
	ck_assert(run_until(no_live_process, &want));
	ck_assert_uint_eq(fake_env_requests(local_env(), PROTO_MCP_STOP), 1);
	srv_release(p);
	want = 0;
	ck_assert(run_until(no_live_process, &want));
	json_decref(c);
}
END_TEST

START_TEST(tools_follow_enabled_and_disabled_lists)
{
	json_t *c = cfg("{\"transport\":\"stdio\",\"command\":\"fake-mcp\","
			"\"args\":[\"echo\",\"add\",\"secret\"],\"environment_id\":\"local\","
			"\"enabled_tools\":[\"echo\",\"secret\"],\"disabled_tools\":[\"secret\"]}");
	struct srv *s = srv_acquire("f", c, NULL);
	json_t *tools;

	ck_assert(run_until(srv_is_ready, s));
	tools = srv_tools(s);
	ck_assert_uint_eq(json_array_size(tools), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(tools, 0), "name")),
			 "echo");
	ck_assert(srv_tool_allowed(s, "echo"));
	ck_assert(!srv_tool_allowed(s, "add"));
	ck_assert(!srv_tool_allowed(s, "secret"));
	ck_assert_str_eq(srv_auth_status(s), "unsupported");
	json_decref(tools);
	srv_release(s);
	json_decref(c);
}
END_TEST

/* A server that cannot start is retried with backoff on use, and after
 * MAX_FAILURES in a row stays failed with its reason. */
START_TEST(a_failing_start_backs_off_then_gives_up)
{
	json_t *c = cfg("{\"transport\":\"stdio\",\"command\":\"no-such-program\","
			"\"environment_id\":\"local\"}");
	struct srv *s = srv_acquire("bad", c, NULL);
	struct watch w = { 0 };
	int tries = 0;

	srv_watch(s, watch_cb, &w);
	ck_assert(run_until(srv_not_starting, s));
	ck_assert_int_eq(srv_state(s), SRV_FAILED);
	ck_assert_str_eq(srv_error(s), "cannot start: spawn failed: no such program");
	while (srv_retry(s)) {
		ck_assert_int_eq(srv_state(s), SRV_STARTING); /* callers wait meanwhile */
		ck_assert(run_until(srv_not_starting, s));
		ck_assert_int_eq(srv_state(s), SRV_FAILED);
		ck_assert_int_lt(++tries, 10);
	}
	ck_assert_int_eq(tries, 4); /* 5 failures in all */
	ck_assert_uint_eq(fake_env_requests(local_env(), PROTO_MCP_START), 5);
	ck_assert_int_eq(w.last, SRV_FAILED);
	ck_assert_uint_ge(w.changes, 10);
	/* A reconnect of its environment clears the count. */
	fake_env_set_state(local_env(), ENV_DISCONNECTED, "restarting");
	dom_ready(local_env());
	ck_assert(run_until(srv_not_starting, s));
	ck_assert_uint_eq(fake_env_requests(local_env(), PROTO_MCP_START), 6);
	srv_unwatch(s, watch_cb, &w);
	srv_release(s);
	json_decref(c);
}
END_TEST

START_TEST(a_crash_fails_the_server_and_the_next_use_restarts_it)
{
	json_t *c = cfg(STDIO("[\"echo\"]"));
	struct srv *s = srv_acquire("s", c, NULL);

	ck_assert(run_until(srv_is_ready, s));
	ck_assert(fake_env_exit(local_env(), "s", "killed by signal 9"));
	ck_assert(run_until(srv_not_starting, s));
	ck_assert_int_eq(srv_state(s), SRV_FAILED);
	ck_assert_str_eq(srv_error(s), "MCP server 's' connection lost: server 's' exited: "
					 "killed by signal 9");
	ck_assert_ptr_null(srv_mcp(s));
	ck_assert(srv_retry(s));
	ck_assert(run_until(srv_is_ready, s));
	ck_assert_uint_eq(fake_env_started("s"), 2);
	srv_release(s);
	json_decref(c);
}
END_TEST

struct call {
	int n;
	char *error;
};

static void call_cb(struct mcp_session *m, json_t *result, const char *error, void *arg)
{
	struct call *c = arg;

	c->n++;
	c->error = error ? xstrdup(error) : NULL;
}

static bool call_done(void *arg) { return ((struct call *)arg)->n > 0; }

START_TEST(a_lost_environment_ends_calls_and_its_return_restarts)
{
	json_t *c = cfg(STDIO("[\"hang\"]"));
	struct srv *s = srv_acquire("s", c, NULL);
	struct call call = { 0 };

	ck_assert(run_until(srv_is_ready, s));
	ck_assert_uint_gt(mcp_call_tool(srv_mcp(s), "hang", NULL, 0, call_cb, &call), 0);
	run_a_while(5);
	ck_assert_int_eq(call.n, 0);
	fake_env_set_state(local_env(), ENV_DISCONNECTED, "link lost");
	ck_assert(run_until(call_done, &call));
	ck_assert_ptr_nonnull(call.error);
	ck_assert_ptr_nonnull(strstr(call.error, "environment 'local' disconnected"));
	ck_assert_int_eq(srv_state(s), SRV_FAILED);
	dom_ready(local_env());
	ck_assert(run_until(srv_is_ready, s));
	ck_assert_uint_eq(fake_env_started("s"), 2);
	free(call.error);
	srv_release(s);
	json_decref(c);
}
END_TEST

/* Released while its MCP_START is in flight: the process is stopped when
 * the reply comes, not left behind. */
START_TEST(released_while_starting_stops_the_process)
{
	json_t *c = cfg(STDIO("[\"echo\"]"));
	struct srv *s = srv_acquire("s", c, NULL);
	unsigned none = 0;

	ck_assert_int_eq(srv_state(s), SRV_STARTING);
	srv_release(s);
	run_a_while(10);
	ck_assert(run_until(no_live_process, &none));
	ck_assert_uint_eq(fake_env_started("s"), 1);
	ck_assert_uint_eq(fake_env_requests(local_env(), PROTO_MCP_STOP), 1);
	json_decref(c);
}
END_TEST

/* ---- views ------------------------------------------------------------- */

static void add_x(json_t *view, json_t *ops, void *arg)
{
	json_array_append_new(ops, json_pack("{s:s, s:s, s:{s:s}}", "op", "set", "name", "x",
					     "config", "transport", "stdio"));
	json_array_append_new(ops, json_pack("{s:s}", "op", "set")); /* malformed: ignored */
	json_array_append_new(ops, json_pack("{s:s, s:s}", "op", "explode", "name", "y"));
}

/* Runs after add_x: sees its result. */
static void drop_y_if_x(json_t *view, json_t *ops, void *arg)
{
	if (json_object_get(view, "x"))
		json_array_append_new(ops, json_pack("{s:s, s:s}", "op", "remove", "name", "y"));
}

START_TEST(views_apply_contributors_in_order_and_gate_auth)
{
	json_t *conf = json_object(), *c = cfg("{\"transport\":\"stdio\"}"), *rt, *eff;

	view_set(conf, "y", c, "p@1");
	view_set(conf, "codex_apps", c, NULL);
	view_set(conf, "z", c, NULL);
	view_set(conf, "y", c, "p@2"); /* a later name wins, and moves to the end */
	ck_assert_str_eq(json_object_iter_key(json_object_iter(conf)), "codex_apps");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(conf, "y"),
							   "plugin_id")),
			 "p@2");
	view_clear_contributors();
	view_add_contributor("add_x", add_x, NULL);
	view_add_contributor("drop_y", drop_y_if_x, NULL);
	rt = view_runtime(conf);
	ck_assert_ptr_nonnull(json_object_get(rt, "x"));
	ck_assert_ptr_null(json_object_get(rt, "y"));
	ck_assert_ptr_nonnull(json_object_get(rt, "z"));
	ck_assert_ptr_nonnull(json_object_get(conf, "y")); /* the configured view is untouched */
	view_set_chatgpt_auth(false);
	eff = view_effective(rt);
	ck_assert_ptr_null(json_object_get(eff, "codex_apps"));
	json_decref(eff);
	view_set_chatgpt_auth(true);
	eff = view_effective(rt);
	ck_assert_ptr_nonnull(json_object_get(eff, "codex_apps"));
	view_set_chatgpt_auth(false);
	view_clear_contributors();
	json_decref(eff);
	json_decref(rt);
	json_decref(conf);
	json_decref(c);
}
END_TEST

/* MCP_START carries the plugin root (thread.c keeps it as "plugin_root")
 * and the sandbox/network keys of the config, for plugin and config.toml
 * servers alike; the executor's answer about the box is kept for
 * mcpServerStatus/list. */
START_TEST(mcp_start_carries_root_and_sandbox_and_keeps_the_box)
{
	json_t *plug = cfg("{\"transport\":\"stdio\",\"command\":\"fake-mcp\",\"args\":[],"
			   "\"environment_id\":\"local\",\"plugin_root\":\"/srv/plugins/p\","
			   "\"network\":false}");
	json_t *boxed = cfg("{\"transport\":\"stdio\",\"command\":\"fake-mcp\",\"args\":[],"
			    "\"environment_id\":\"local\",\"sandbox\":{\"read\":[\"/data\"]}}");
	json_t *plain = cfg(STDIO("[]"));
	json_t *off = cfg("{\"transport\":\"stdio\",\"command\":\"fake-mcp\",\"args\":[],"
			  "\"environment_id\":\"local\",\"plugin_root\":\"/srv/plugins/q\","
			  "\"sandbox\":{\"off\":true}}");
	struct srv *a = srv_acquire("a", plug, "p@1"), *b = srv_acquire("b", boxed, NULL);
	struct srv *c = srv_acquire("c", plain, NULL), *d = srv_acquire("d", off, "q@1");
	json_t *st;

	ck_assert_ptr_null(srv_sandbox(a)); /* nothing known before the answer */
	ck_assert(run_until(srv_is_ready, a) && run_until(srv_is_ready, b) &&
		  run_until(srv_is_ready, c) && run_until(srv_is_ready, d));
	st = fake_env_last_start("a");
	ck_assert_str_eq(json_string_value(json_object_get(st, "root")), "/srv/plugins/p");
	ck_assert(json_is_false(json_object_get(json_object_get(st, "sandbox"), "network")));
	ck_assert_ptr_null(json_object_get(json_object_get(st, "sandbox"), "sandbox"));
	ck_assert_str_eq(srv_sandbox(a), "landlock ABI 7, private directory (fake)");
	st = fake_env_last_start("b");
	ck_assert_ptr_null(json_object_get(st, "root"));
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(
				 json_object_get(json_object_get(st, "sandbox"), "sandbox"), "read"), 0)),
			 "/data");
	ck_assert_str_eq(srv_sandbox(b), "landlock ABI 7, private directory (fake)");
	st = fake_env_last_start("c");
	ck_assert_ptr_null(json_object_get(st, "root"));
	ck_assert_uint_eq(json_object_size(json_object_get(st, "sandbox")), 0); /* sent, empty */
	ck_assert_int_eq(strncmp(srv_sandbox(c), "off: not a plugin server", 24), 0);
	ck_assert_int_eq(strncmp(srv_sandbox(d), "off: sandbox", 12), 0);
	srv_release(a);
	srv_release(b);
	srv_release(c);
	srv_release(d);
	json_decref(plug);
	json_decref(boxed);
	json_decref(plain);
	json_decref(off);
}
END_TEST

/* env_vars with source "local" come from the orchestrator's environment,
 * except its own secrets (held in guarded memory) and TANDEM_* settings:
 * naming one fails the server with a reason, and nothing is sent. */
START_TEST(local_env_vars_never_carry_the_orchestrators_secrets)
{
	json_t *ok = cfg("{\"transport\":\"stdio\",\"command\":\"fake-mcp\",\"args\":[],"
			 "\"environment_id\":\"local\",\"env\":{},\"env_vars\":["
			 "{\"name\":\"SRV_TEST_PLAIN\",\"source\":\"local\"}]}");
	json_t *key = cfg("{\"transport\":\"stdio\",\"command\":\"fake-mcp\",\"args\":[],"
			  "\"environment_id\":\"local\",\"env\":{},\"env_vars\":["
			  "{\"name\":\"SRV_TEST_MODEL_KEY\",\"source\":\"local\"}]}");
	json_t *tdm = cfg("{\"transport\":\"stdio\",\"command\":\"fake-mcp\",\"args\":[],"
			  "\"environment_id\":\"local\",\"env\":{},\"env_vars\":["
			  "{\"name\":\"TANDEM_SRV_TEST\",\"source\":\"local\"}]}");
	struct srv *a, *b, *c;

	setenv("SRV_TEST_PLAIN", "plain-value", 1);
	setenv("SRV_TEST_MODEL_KEY", "sk-must-not-leave", 1);
	setenv("TANDEM_SRV_TEST", "tandem-setting", 1);
	ck_assert_int_eq(secret_env_hold("SRV_TEST_MODEL_KEY"), 0);
	a = srv_acquire("plain", ok, NULL);
	b = srv_acquire("key", key, NULL);
	c = srv_acquire("tdm", tdm, NULL);
	ck_assert(run_until(srv_is_ready, a));
	ck_assert_str_eq(json_string_value(json_object_get(
				 json_object_get(fake_env_last_start("plain"), "env"), "SRV_TEST_PLAIN")),
			 "plain-value");
	ck_assert(run_until(srv_not_starting, b) && run_until(srv_not_starting, c));
	ck_assert_int_eq(srv_state(b), SRV_FAILED);
	ck_assert_ptr_nonnull(strstr(srv_error(b), "'SRV_TEST_MODEL_KEY'"));
	ck_assert_int_eq(srv_state(c), SRV_FAILED);
	ck_assert_ptr_nonnull(strstr(srv_error(c), "'TANDEM_SRV_TEST'"));
	ck_assert_uint_eq(fake_env_started("key") + fake_env_started("tdm"), 0);
	ck_assert(!srv_retry(b)); /* a config error: not retried until it changes */
	srv_release(a);
	srv_release(b);
	srv_release(c);
	secret_env_release_all();
	unsetenv("SRV_TEST_PLAIN");
	unsetenv("TANDEM_SRV_TEST");
	json_decref(ok);
	json_decref(key);
	json_decref(tdm);
}
END_TEST

static Suite *srv_suite(void)
{
	Suite *s = suite_create("srv");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_unchecked_fixture(tc, homes_setup, homes_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, instances_are_shared_by_key_and_stop_with_the_last_user);
	tcase_add_test(tc, tools_follow_enabled_and_disabled_lists);
	tcase_add_test(tc, a_failing_start_backs_off_then_gives_up);
	tcase_add_test(tc, a_crash_fails_the_server_and_the_next_use_restarts_it);
	tcase_add_test(tc, a_lost_environment_ends_calls_and_its_return_restarts);
	tcase_add_test(tc, released_while_starting_stops_the_process);
	tcase_add_test(tc, views_apply_contributors_in_order_and_gate_auth);
	tcase_add_test(tc, mcp_start_carries_root_and_sandbox_and_keeps_the_box);
	tcase_add_test(tc, local_env_vars_never_carry_the_orchestrators_secrets);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(srv_suite)
