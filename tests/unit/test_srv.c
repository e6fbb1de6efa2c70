/* test_srv.c - the MCP server pool (orchestrator/srv.c) and the views
 * (view.c) over the fake environment layer: instances shared by key and
 * stopped with their last user, tool filtering, start failures and the
 * backoff that gives up, crashes, a lost environment, an instance released
 * while it starts; contributors and auth gating of the views. */
#include "testdomain.h"
#include "testmain.h"
#include "mcp.h"
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
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(srv_suite)
