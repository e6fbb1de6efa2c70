/* test_thread.c - threads (orchestrator/thread.c) over the fake environment
 * layer: root resolution and its cache, the runtime rebuilt only when the
 * ready roots change, waiting for environments, the owner's notifications,
 * and what an executor may not decide (malformed entries, other
 * environments). */
#include "testdomain.h"
#include "testmain.h"

#include <errno.h>

#define DEMO "[{\"name\":\"demo\",\"transport\":\"stdio\",\"command\":\"fake-mcp\"," \
	     "\"args\":[\"echo\"]}]"

static const char *const ROOT_A[] = { "a@1", "local", "/plugins/a", NULL };

static void setup(void) { dom_start(NULL); }

static bool demo_ready(void *arg)
{
	struct srv *s = thread_server(arg, "demo");

	return s && srv_state(s) == SRV_READY;
}
static void teardown(void) { dom_stop(); }

START_TEST(resolves_once_and_keeps_the_runtime)
{
	struct thread *t;
	struct srv *s;
	uint64_t builds;
	json_t *st;

	dom_ready(local_env());
	fake_env_root("/plugins/a", DEMO, NULL);
	t = thread_with_roots(7, ROOT_A);
	settle(t);
	ck_assert_uint_eq(fake_env_requests(local_env(), PROTO_ROOT_RESOLVE), 1);
	ck_assert_uint_eq(thread_n_servers(t), 1);
	s = thread_server(t, "demo");
	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(srv_plugin_id(s), "a@1");
	ck_assert_int_eq(srv_state(s), SRV_READY);
	/* MCP_START names the root the executor resolved (the reply's path). */
	ck_assert_str_eq(json_string_value(json_object_get(fake_env_last_start("demo"), "root")),
			 "/plugins/a");
	/* Built when first projected (nothing resolved yet), then with the root. */
	builds = thread_builds(t);
	ck_assert_uint_eq(builds, 2);
	/* Same ready roots, same runtime: no resolution, no rebuild, no start. */
	for (int i = 0; i < 3; i++)
		settle(t);
	ck_assert_uint_eq(fake_env_requests(local_env(), PROTO_ROOT_RESOLVE), 1);
	ck_assert_uint_eq(thread_builds(t), builds);
	ck_assert_uint_eq(thread_rediscoveries(t), 1);
	ck_assert_uint_eq(fake_env_started("demo"), 1);
	ck_assert_ptr_eq(thread_server(t, "demo"), s);
	/* The owner heard the server come up; nobody else did. */
	st = notes_last("mcpServer/startupStatus/updated");
	ck_assert_ptr_nonnull(st);
	ck_assert_str_eq(json_string_value(json_object_get(st, "status")), "ready");
	ck_assert_str_eq(json_string_value(json_object_get(st, "threadId")), thread_id(t));
	ck_assert_uint_ge(notes_count("mcpServer/startupStatus/updated", 7), 2);
	ck_assert_uint_eq(notes_count("mcpServer/startupStatus/updated", 0), 0);
}
END_TEST

START_TEST(failed_resolution_is_not_cached)
{
	struct thread *t;
	char why[512];

	dom_ready(local_env());
	t = thread_with_roots(1, ROOT_A);
	settle(t);
	ck_assert_uint_eq(thread_n_servers(t), 0);
	ck_assert_str_eq(thread_unavailable_reason(t, why, sizeof(why)),
			 "root 'a@1' failed to resolve: no plugin root at /plugins/a");
	/* The next projection asks again and gets the server. */
	fake_env_root("/plugins/a", DEMO, NULL);
	settle(t);
	ck_assert_uint_eq(fake_env_requests(local_env(), PROTO_ROOT_RESOLVE), 2);
	ck_assert_ptr_nonnull(thread_server(t, "demo"));
	ck_assert_ptr_null(thread_unavailable_reason(t, why, sizeof(why)));
}
END_TEST

START_TEST(waits_for_a_connecting_environment)
{
	static const char *const roots[] = { "r@1", "remote", "/plugins/r", NULL };
	struct thread *t;
	bool done = false;
	char err[256];
	json_t *n;

	ck_assert_int_eq(envs_add("remote", "tcp://127.0.0.1:1", NULL, 1000, err, sizeof(err)), 0);
	fake_env_root("/plugins/r", DEMO, NULL);
	t = thread_with_roots(3, roots);
	thread_project(t);
	thread_when_settled(t, set_flag_cb, &done);
	/* A request right after start-up waits for the plugin, not for nothing. */
	run_a_while(20);
	ck_assert(!done);
	ck_assert_uint_eq(fake_env_requests(envs_find("remote"), PROTO_ROOT_RESOLVE), 0);
	dom_ready(envs_find("remote"));
	ck_assert(run_until(flag_set, &done));
	ck_assert_ptr_nonnull(thread_server(t, "demo"));
	ck_assert_uint_eq(notes_count("thread/environment/connected", 3), 1);
	n = notes_last("thread/environment/connected");
	ck_assert_str_eq(json_string_value(json_object_get(n, "threadId")), thread_id(t));
	ck_assert_str_eq(json_string_value(json_object_get(n, "environmentId")), "remote");
}
END_TEST

START_TEST(a_lost_environment_is_told_and_explained)
{
	static const char *const roots[] = { "r@1", "remote", "/plugins/r", NULL };
	struct thread *t, *other;
	struct srv *s;
	char err[256], why[512];

	ck_assert_int_eq(envs_add("remote", "tcp://127.0.0.1:1", NULL, 1000, err, sizeof(err)), 0);
	dom_ready(envs_find("remote"));
	dom_ready(local_env());
	fake_env_root("/plugins/r", DEMO, NULL);
	fake_env_root("/plugins/a", DEMO, NULL);
	t = thread_with_roots(3, roots);
	other = thread_with_roots(4, ROOT_A);
	settle(t);
	settle(other);
	s = thread_server(t, "demo");
	srv_ref(s);
	ck_assert_int_eq(srv_state(s), SRV_READY);
	fake_env_set_state(envs_find("remote"), ENV_DISCONNECTED, "link lost");
	ck_assert(run_until(srv_not_starting, s));
	ck_assert_int_eq(srv_state(s), SRV_FAILED);
	ck_assert_ptr_nonnull(strstr(srv_error(s), "remote"));
	srv_release(s);
	ck_assert_uint_eq(notes_count("thread/environment/disconnected", 3), 1);
	ck_assert_uint_eq(notes_count("thread/environment/disconnected", 4), 0);
	ck_assert_str_eq(thread_unavailable_reason(t, why, sizeof(why)),
			 "environment 'remote' is disconnected: link lost");
	/* The other thread's server, on another environment, is untouched. */
	ck_assert_int_eq(srv_state(thread_server(other, "demo")), SRV_READY);
}
END_TEST

/* The executor is untrusted: malformed entries are dropped and every
 * server is bound to the root's own environment. */
START_TEST(executor_entries_are_checked)
{
	static const char entries[] =
		"[{\"name\":\"ok\",\"transport\":\"stdio\",\"command\":\"fake-mcp\"},"
		" {\"name\":\"bad name\",\"transport\":\"stdio\",\"command\":\"fake-mcp\"},"
		" {\"name\":\"nocmd\",\"transport\":\"stdio\"},"
		" {\"name\":\"sse\",\"transport\":\"sse\",\"url\":\"http://x\"},"
		" \"not an object\","
		" {\"name\":\"moved\",\"transport\":\"stdio\",\"command\":\"fake-mcp\","
		"  \"environment_id\":\"elsewhere\"}]";
	struct thread *t;
	struct srv *moved;

	dom_ready(local_env());
	fake_env_root("/plugins/a", entries, NULL);
	t = thread_with_roots(1, ROOT_A);
	settle(t);
	ck_assert_uint_eq(thread_n_servers(t), 2);
	ck_assert_ptr_nonnull(thread_server(t, "ok"));
	moved = thread_server(t, "moved");
	ck_assert_ptr_nonnull(moved);
	ck_assert_str_eq(json_string_value(json_object_get(srv_cfg(moved), "environment_id")),
			 "local");
	ck_assert_int_eq(srv_state(moved), SRV_READY);
}
END_TEST

START_TEST(limits_and_forgotten_waiters)
{
	struct thread_root_spec roots[THREAD_MAX_ROOTS + 1];
	struct thread_spec spec = { .roots = roots, .n_roots = THREAD_MAX_ROOTS + 1 };
	static const char *const r[] = { "r@1", "remote", "/plugins/r", NULL };
	struct thread *t = (struct thread *)0x1;
	bool done = false;
	char err[256];

	for (size_t i = 0; i < ARRAY_SIZE(roots); i++)
		roots[i] = (struct thread_root_spec){ "id", "local", "/p" };
	ck_assert_int_eq(thread_new(&spec, 1, &t, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_eq(t, (struct thread *)0x1);
	ck_assert_ptr_nonnull(strstr(err, "at most 256 roots"));
	ck_assert_uint_eq(threads_count(), 0);
	/* A waiter that gave up is never called. */
	ck_assert_int_eq(envs_add("remote", "tcp://127.0.0.1:1", NULL, 1000, err, sizeof(err)), 0);
	fake_env_root("/plugins/r", DEMO, NULL);
	t = thread_with_roots(1, r);
	thread_project(t);
	thread_when_settled(t, set_flag_cb, &done);
	thread_forget_waiter(t, set_flag_cb, &done);
	dom_ready(envs_find("remote"));
	ck_assert(run_until(demo_ready, t));
	run_a_while(20);
	ck_assert(!done);
	ck_assert_uint_eq(threads_count(), 1);
}
END_TEST

START_TEST(config_servers_and_a_later_name_wins)
{
	struct thread *t;
	uint64_t builds;
	json_t *tools;

	dom_stop();
	dom_start("[mcp_servers.demo]\ncommand = \"fake-mcp\"\nargs = [\"from_config\"]\n"
		  "[mcp_servers.broken]\ncommand = 7\n");
	dom_ready(local_env());
	fake_env_root("/plugins/a",
		      "[{\"name\":\"demo\",\"transport\":\"stdio\",\"command\":\"fake-mcp\","
		      "\"args\":[\"from_root\"]}]",
		      "[{\"name\":\"worse\",\"reason\":\"no command\"}]");
	/* Without a thread: config.toml only. */
	settle(thread_global());
	ck_assert_uint_eq(thread_n_servers(thread_global()), 1);
	ck_assert_ptr_null(srv_plugin_id(thread_server(thread_global(), "demo")));
	/* The thread's root declares the same name later: it wins. */
	t = thread_with_roots(1, ROOT_A);
	settle(t);
	ck_assert_uint_eq(thread_n_servers(t), 1);
	ck_assert_str_eq(srv_plugin_id(thread_server(t, "demo")), "a@1");
	tools = srv_tools(thread_server(t, "demo"));
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(tools, 0), "name")),
			 "from_root");
	json_decref(tools);
	/* Invalid ones are listed, the root's with its pluginId. */
	tools = thread_invalid_servers(t);
	ck_assert_uint_eq(json_array_size(tools), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(tools, 0), "name")),
			 "broken");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(tools, 1), "pluginId")),
			 "a@1");
	json_decref(tools);
	/* A reload rebuilds every runtime; unchanged servers keep their process. */
	builds = thread_builds(t);
	threads_reload();
	settle(t);
	ck_assert_uint_eq(thread_builds(t), builds + 1);
	ck_assert_uint_eq(fake_env_started("demo"), 2); /* config's and the root's */
}
END_TEST

static Suite *thread_suite(void)
{
	Suite *s = suite_create("thread");
	TCase *tc = tcase_create("core");

	tcase_add_unchecked_fixture(tc, homes_setup, homes_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, resolves_once_and_keeps_the_runtime);
	tcase_add_test(tc, failed_resolution_is_not_cached);
	tcase_add_test(tc, waits_for_a_connecting_environment);
	tcase_add_test(tc, a_lost_environment_is_told_and_explained);
	tcase_add_test(tc, executor_entries_are_checked);
	tcase_add_test(tc, limits_and_forgotten_waiters);
	tcase_add_test(tc, config_servers_and_a_later_name_wins);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(thread_suite)
