/* test_thread.c - threads (orchestrator/thread.c) over the fake environment
 * layer: root resolution and its cache, the runtime rebuilt only when the
 * ready roots change, waiting for environments, the owner's notifications,
 * and what an executor may not decide (malformed entries, other
 * environments). */
#include "testdomain.h"
#include "testmain.h"

#include <errno.h>
#include <limits.h>

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

/* thread_watch: a rebuild and every state change of a runtime server, with
 * the new state already visible to the watcher; detached threads (the MCP
 * gateway's profiles) get environment events but are in no listing. */
static unsigned watched;
static bool watched_saw_ready;

static void watch_cb(struct thread *t, void *arg)
{
	struct srv *s = thread_server(t, "demo");

	watched++;
	watched_saw_ready = s && srv_state(s) == SRV_READY;
}

static bool watched_at_least(void *arg) { return watched >= *(unsigned *)arg; }

START_TEST(watchers_and_detached_threads)
{
	struct thread_root_spec root = { .id = "a@1", .env_id = "local", .path = "/plugins/a" };
	struct thread_spec spec = { .roots = &root, .n_roots = 1, .detached = true };
	struct thread *t = NULL, *listed;
	char err[256];
	unsigned want;

	fake_env_root("/plugins/a", DEMO, NULL);
	listed = thread_with_roots(5, NULL);
	ck_assert_int_eq(thread_new(&spec, 0, &t, err, sizeof(err)), 0);
	ck_assert_uint_eq(threads_count(), 1);
	ck_assert_ptr_eq(thread_first(), listed);
	ck_assert_ptr_null(thread_next(listed));
	ck_assert_ptr_null(thread_find(thread_id(t)));
	watched = 0;
	thread_watch(t, watch_cb, NULL);
	/* The environment coming up reaches the detached thread: it resolves
	 * its root, rebuilds (a watcher call), and its server starts. */
	dom_ready(local_env());
	ck_assert(run_until(demo_ready, t));
	ck_assert_uint_ge(watched, 2);
	ck_assert(watched_saw_ready);
	want = watched + 1;
	ck_assert(fake_env_exit(local_env(), "demo", "killed"));
	ck_assert(run_until(watched_at_least, &want));
	ck_assert(!watched_saw_ready);
	thread_unwatch(t, watch_cb, NULL);
	want = watched;
	thread_project(t); /* retries the server: no watcher now */
	ck_assert(run_until(demo_ready, t));
	ck_assert_uint_eq(watched, want);
	ck_assert_uint_eq(notes_count("mcpServer/startupStatus/updated", 0), 0);
	thread_free_detached(t);
	ck_assert_uint_eq(threads_count(), 1);
}
END_TEST

START_TEST(subscribers_share_notifications)
{
	struct thread *t;

	dom_ready(local_env());
	fake_env_root("/plugins/a", DEMO, NULL);
	t = thread_with_roots(7, ROOT_A);
	thread_subscribe(t, 8);
	thread_subscribe(t, 8); /* once is enough */
	ck_assert_uint_eq(thread_n_subscribers(t), 2);
	settle(t);
	fake_env_set_state(local_env(), ENV_DISCONNECTED, "gone");
	run_a_while(5);
	ck_assert_uint_eq(notes_count("thread/environment/disconnected", 7), 1);
	ck_assert_uint_eq(notes_count("thread/environment/disconnected", 8), 1);
	ck_assert(thread_unsubscribe(t, 7));
	ck_assert(!thread_unsubscribe(t, 7));
	threads_owner_gone(8);
	ck_assert_uint_eq(thread_n_subscribers(t), 0);
	dom_ready(local_env());
	run_a_while(5);
	ck_assert_uint_eq(notes_count("thread/environment/connected", 7), 0);
	ck_assert_uint_eq(notes_count("thread/environment/connected", 8), 0);
}
END_TEST

static void never_cb(struct thread *t, void *arg) { *(bool *)arg = true; }

START_TEST(idle_threads_are_unloaded)
{
	struct thread *held, *idle, *waiting;
	char id[UUID_STR_SIZE];
	bool called = false;

	threads_init(loop, 1);
	dom_ready(local_env());
	fake_env_root("/plugins/a", DEMO, NULL);
	held = thread_with_roots(7, ROOT_A);
	idle = thread_with_roots(8, ROOT_A);
	settle(idle);
	ck_assert_uint_eq(fake_env_started("demo"), 1);
	snprintf(id, sizeof(id), "%s", thread_id(idle));
	ck_assert(thread_unsubscribe(idle, 8));
	/* nobody subscribed, but a request waits on it: kept */
	fake_env_set_state(local_env(), ENV_CONNECTING, NULL);
	waiting = thread_with_roots(0, ROOT_A);
	thread_when_settled(waiting, never_cb, &called);
	ck_assert(!called);
	usleep(5000);
	ck_assert_uint_eq(threads_sweep(), 1);
	ck_assert_ptr_null(thread_find(id));
	ck_assert_ptr_eq(thread_find(thread_id(held)), held);
	ck_assert_ptr_eq(thread_find(thread_id(waiting)), waiting);
	ck_assert_uint_eq(threads_unloaded(), 1);
	thread_forget_waiter(waiting, never_cb, &called);
	usleep(5000);
	ck_assert_uint_eq(threads_sweep(), 1);
	ck_assert_uint_eq(threads_count(), 1); /* only the subscribed one */
	ck_assert_ptr_eq(thread_first(), held);
}
END_TEST

START_TEST(strings_are_bounded)
{
	char *big = xmalloc(PATH_MAX + 2);
	struct thread_root_spec root = { "r", "local", big };
	struct thread_spec spec = { .cwd = big };
	struct thread *t = NULL;
	char err[256];

	memset(big, 'a', PATH_MAX + 1);
	big[0] = '/';
	big[PATH_MAX + 1] = '\0';
	ck_assert_int_eq(thread_new(&spec, 1, &t, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, "cwd"), "%s", err);
	spec = (struct thread_spec){ .model = big };
	ck_assert_int_eq(thread_new(&spec, 1, &t, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, "model"), "%s", err);
	spec = (struct thread_spec){ .roots = &root, .n_roots = 1 };
	ck_assert_int_eq(thread_new(&spec, 1, &t, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, "selectedCapabilityRoots[0]"), "%s", err);
	ck_assert_uint_eq(threads_count(), 0);
	big[PATH_MAX] = '\0'; /* PATH_MAX bytes: a path may be that long */
	spec = (struct thread_spec){ .cwd = big };
	ck_assert_int_eq(thread_new(&spec, 1, &t, err, sizeof(err)), 0);
	ck_assert(!thread_id_valid("abc"));
	ck_assert(!thread_id_valid("00000000-0000-4000-8000-00000000000"));
	ck_assert(!thread_id_valid("00000000-0000-4000-8000-0000000000000"));
	ck_assert(!thread_id_valid("0000000000000-4000-8000-000000000000"));
	ck_assert(thread_id_valid(thread_id(t)));
	free(big);
}
END_TEST

struct saved {
	bool called;
	int rc;
	struct thread *t;
};

/* Also subscribes owner 3: a thread the test holds is not unloaded under
 * it by the sweep timer (idle 1 ms in the durable test). */
static void saved_cb(struct thread *t, int rc, const char *err, void *arg)
{
	struct saved *s = arg;

	s->called = true;
	s->rc = rc;
	s->t = t;
	if (t && rc == 0)
		thread_subscribe(t, 3);
}

static bool saved_called(void *arg) { return ((struct saved *)arg)->called; }

static void store_open_here(void)
{
	_cleanup_free_ char *dir = xasprintf("%s/state", home);
	char err[512];

	ck_assert_msg(store_start(loop, dir, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(store_run(err, sizeof(err)) == 0, "%s", err);
}

/* What a crash leaves: a turn still inProgress, a call without a result.
 * Loading makes it honest and writes that back. */
START_TEST(durable_threads_saved_and_repaired)
{
	struct store_turn row = { .seq = 1, .id = "turn-1", .status = "inProgress",
				  .started_at = 1, .duration_ms = -1 };
	json_t *call = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "mcpToolCall", "id", "c1",
				 "server", "demo", "tool", "echo", "status", "inProgress");
	json_t *fc = json_pack("{s:s, s:s, s:s, s:s}", "type", "function_call", "call_id", "c1",
			       "name", "echo", "arguments", "{}");
	struct thread_spec spec = { .cwd = "/w" };
	struct saved s = { 0 };
	struct store_batch *b;
	struct thread *t;
	json_t *turn, *item, *h;
	char id[UUID_STR_SIZE], err[256];

	store_open_here();
	ck_assert_int_eq(thread_new(&spec, 3, &t, err, sizeof(err)), 0);
	ck_assert(!thread_ephemeral(t));
	snprintf(id, sizeof(id), "%s", thread_id(t));
	thread_when_saved(t, saved_cb, &s);
	ck_assert(run_until(saved_called, &s));
	ck_assert_int_eq(s.rc, 0);
	b = thread_batch(t);
	store_batch_turn(b, &row);
	store_batch_item(b, 1, 0, 5, 0, call);
	store_batch_history(b, 0, 1, fc);
	thread_submit(t, b);
	memset(&s, 0, sizeof(s));
	thread_when_saved(t, saved_cb, &s);
	ck_assert(run_until(saved_called, &s));
	/* unloaded (as if the orchestrator had died), then loaded again */
	threads_init(loop, 1);
	ck_assert(thread_unsubscribe(t, 3));
	usleep(3000);
	ck_assert_uint_eq(threads_sweep(), 1);
	ck_assert_ptr_null(thread_find(id));
	memset(&s, 0, sizeof(s));
	ck_assert_ptr_nonnull(thread_load(id, STORE_ALL_ITEMS, saved_cb, &s));
	ck_assert(run_until(saved_called, &s));
	ck_assert_int_eq(s.rc, 0);
	ck_assert_str_eq(thread_cwd(s.t), "/w");
	turn = json_object_get(json_array_get(thread_turns(s.t), 0), "turn");
	ck_assert_str_eq(json_string_value(json_object_get(turn, "status")), "interrupted");
	item = json_array_get(json_object_get(turn, "items"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(item, "status")), "failed");
	ck_assert_ptr_null(json_object_get(item, "repaired"));
	h = thread_history(s.t);
	ck_assert_uint_eq(json_array_size(h), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(h, 1), "type")),
			 "function_call_output");
	/* the repair is in the store too: a second load finds nothing to fix */
	t = s.t;
	memset(&s, 0, sizeof(s));
	thread_when_saved(t, saved_cb, &s);
	ck_assert(run_until(saved_called, &s));
	ck_assert_int_eq(s.rc, 0);
	ck_assert(thread_unsubscribe(t, 3));
	usleep(3000);
	ck_assert_uint_eq(threads_sweep(), 1);
	memset(&s, 0, sizeof(s));
	thread_load(id, STORE_ALL_ITEMS, saved_cb, &s);
	ck_assert(run_until(saved_called, &s));
	ck_assert_uint_eq(json_array_size(thread_history(s.t)), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_array_get(
				 thread_turns(s.t), 0), "turn"), "status")), "interrupted");
	json_decref(call);
	json_decref(fc);
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
	tcase_add_test(tc, watchers_and_detached_threads);
	tcase_add_test(tc, subscribers_share_notifications);
	tcase_add_test(tc, idle_threads_are_unloaded);
	tcase_add_test(tc, strings_are_bounded);
	tcase_add_test(tc, durable_threads_saved_and_repaired);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(thread_suite)
