/* test_turn.c - turns (orchestrator/turn.c): the model loop over a thread's
 * servers, on the fake environment layer, against the scripted fake of the
 * Responses API (tests/fixtures/fake_responses.py, the real wire format,
 * started per test; its exit status says whether every request matched its
 * script step). Checks the notifications a client sees and their order,
 * tool calls and their outputs going back to the model, interrupts that
 * cancel calls in flight, and failures that end a turn with a reason. */
#include "testdomain.h"
#include "testmain.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http.h"

#define OWNER 5u
#define DEMO "[{\"name\":\"demo\",\"transport\":\"stdio\",\"command\":\"fake-mcp\"," \
	     "\"args\":[\"echo\",\"hang\"]}]"

static struct http *http;
static pid_t model_pid = -1;
static int model_in = -1;

/* ---- the fake model API ------------------------------------------------ */

static int read_port(int fd)
{
	char buf[64] = "";
	size_t n = 0;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int port = 0;

	while (n < sizeof(buf) - 1 && !strchr(buf, '\n')) {
		ssize_t r;

		ck_assert_msg(poll(&p, 1, DOM_WAIT_MS) == 1, "fake_responses.py did not start");
		r = read(fd, buf + n, sizeof(buf) - 1 - n);
		ck_assert_msg(r > 0, "fake_responses.py exited: see its stderr");
		n += (size_t)r;
		buf[n] = '\0';
	}
	ck_assert_int_eq(sscanf(buf, "LISTENING %d", &port), 1);
	return port;
}

/* Starts the fake with script (JSON text) and points config.toml at it. */
static void model_start(const char *script)
{
	const char *fixtures = getenv("TANDEM_FIXTURES");
	_cleanup_free_ char *fake = NULL, *spath = xasprintf("%s/script.json", home);
	int in[2], out[2], port;
	char cfg[512], err[512];

	ck_assert_msg(fixtures && *fixtures, "TANDEM_FIXTURES is not set");
	fake = xasprintf("%s/fake_responses.py", fixtures);
	home_write("script.json", script);
	ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
	model_pid = fork();
	ck_assert_int_ge(model_pid, 0);
	if (model_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(in[0], 0);
		dup2(out[1], 1);
		execlp("python3", "python3", fake, "--script", spath, "--port", "0", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	model_in = in[1]; /* its EOF ends the fake */
	port = read_port(out[0]);
	close(out[0]);
	snprintf(cfg, sizeof(cfg),
		 "model = \"test-model\"\nmodel_provider = \"fake\"\n"
		 "instructions = \"be brief\"\n"
		 "[model_providers.fake]\nname = \"Fake\"\nbase_url = \"http://127.0.0.1:%d/v1\"\n"
		 "request_max_retries = 0\nstream_max_retries = 0\n", port);
	home_write("config.toml", cfg);
	ck_assert_msg(config_reload(err, sizeof(err)) == 0, "%s", err);
}

/* Ends the fake: its exit status (0: every request matched its step). */
static int model_stop(void)
{
	int st = 0;

	if (model_pid < 0)
		return 0;
	close(model_in);
	model_in = -1;
	ck_assert_int_eq(waitpid(model_pid, &st, 0), model_pid);
	model_pid = -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- fixture ----------------------------------------------------------- */

static void setup(void)
{
	dom_start(NULL);
	http = http_new(loop);
	turn_init(loop, http);
	dom_ready(local_env());
	fake_env_root("/plugins/a", DEMO, NULL);
}

static void teardown(void)
{
	turn_abort_all();
	model_stop();
	http = http_free(http);
	dom_stop();
}

static struct thread *demo_thread(void)
{
	static const char *const roots[] = { "a@1", "local", "/plugins/a", NULL };
	struct thread *t = thread_with_roots(OWNER, roots);

	settle(t);
	ck_assert_ptr_nonnull(thread_server(t, "demo"));
	return t;
}

static struct turn *start(struct thread *t, const char *text)
{
	struct turn *u = NULL;
	char err[256];
	json_t *obj;

	ck_assert_msg(turn_new(t, OWNER, &text, 1, &u, err, sizeof(err)) == 0, "%s", err);
	obj = turn_object(u);
	ck_assert_str_eq(json_string_value(json_object_get(obj, "status")), "inProgress");
	ck_assert_str_eq(json_string_value(json_object_get(obj, "id")), turn_id(u));
	json_decref(obj);
	turn_run(u);
	return u;
}

static bool turn_done(void *arg) { return notes_count("turn/completed", OWNER) > 0; }

/* The turn's final Turn object (borrowed from the notification). */
static json_t *finished_turn(void)
{
	ck_assert_msg(run_until(turn_done, NULL), "the turn did not complete");
	return json_object_get(notes_last("turn/completed"), "turn");
}

/* "method[:item type]" of every notification the owner got, in order. */
static char *sequence(void)
{
	char *seq = xstrdup(""), *n;
	json_t *v;
	size_t i;

	json_array_foreach(notes, i, v) {
		const char *m = json_string_value(json_object_get(v, "method"));
		const char *type = json_string_value(json_object_get(
			json_object_get(json_object_get(v, "params"), "item"), "type"));

		if (strncmp(m, "item/", 5) != 0 && strncmp(m, "turn/", 5) != 0)
			continue;
		if (strcmp(m, "item/agentMessage/delta") == 0 && strstr(seq, "delta,"))
			continue; /* however many deltas: once */
		n = xasprintf("%s%s%s%s,", seq, strcmp(m, "item/agentMessage/delta") ? m : "delta",
			      type ? ":" : "", type ? type : "");
		free(seq);
		seq = n;
	}
	return seq;
}

/* The last item/completed of type (borrowed). */
static json_t *completed_item(const char *type)
{
	json_t *v, *last = NULL;
	size_t i;

	json_array_foreach(notes, i, v) {
		json_t *item = json_object_get(json_object_get(v, "params"), "item");

		const char *m = json_string_value(json_object_get(v, "method"));

		if (strcmp(m, "item/completed") == 0 &&
		    strcmp(json_string_value(json_object_get(item, "type")), type) == 0)
			last = item;
	}
	ck_assert_msg(last != NULL, "no completed %s item", type);
	return last;
}

/* ---- tests ------------------------------------------------------------- */

START_TEST(a_tool_call_goes_back_to_the_model)
{
	struct thread *t = demo_thread();
	_cleanup_free_ char *seq = NULL;
	json_t *turn, *call, *msg;

	model_start("{\"steps\":["
		    " {\"expect\":{\"input_contains\":[\"hello\"],"
		    "  \"has_tools\":[{\"namespace\":\"mcp__demo\",\"name\":\"echo\"}]},"
		    "  \"tool_calls\":[{\"namespace\":\"mcp__demo\",\"name\":\"echo\","
		    "                   \"arguments\":{\"text\":\"pong\"}}]},"
		    " {\"expect\":{\"body_match\":{\"input\":[{\"type\":\"function_call_output\","
		    "  \"output\":{\"$contains\":\"pong\"}}]}},"
		    "  \"reply_text\":\"The echo tool said: pong\"}]}");
	start(t, "hello");
	turn = finished_turn();
	ck_assert_str_eq(json_string_value(json_object_get(turn, "status")), "completed");
	ck_assert(json_is_null(json_object_get(turn, "error")));
	seq = sequence();
	ck_assert_str_eq(seq, "turn/started,item/started:userMessage,item/completed:userMessage,"
			      "item/started:mcpToolCall,item/completed:mcpToolCall,"
			      "item/started:agentMessage,delta,item/completed:agentMessage,"
			      "turn/completed,");
	call = completed_item("mcpToolCall");
	ck_assert_str_eq(json_string_value(json_object_get(call, "status")), "completed");
	ck_assert_str_eq(json_string_value(json_object_get(call, "server")), "demo");
	ck_assert_str_eq(json_string_value(json_object_get(call, "tool")), "echo");
	msg = completed_item("agentMessage");
	ck_assert_str_eq(json_string_value(json_object_get(msg, "text")),
			 "The echo tool said: pong");
	ck_assert_uint_eq(fake_env_tool_calls("echo"), 1);
	ck_assert_ptr_null(thread_turn(t));
	ck_assert_uint_eq(json_array_size(thread_turns(t)), 1);
	ck_assert_uint_eq(json_array_size(json_object_get(turn, "items")), 3);
	ck_assert_int_eq(model_stop(), 0);
}
END_TEST

struct peeked {
	bool called;
	int rc;
	json_t *turns, *history;
};

static void peek_cb(int rc, const char *err, void *res, void *arg)
{
	struct peeked *p = arg;
	struct store_loaded *l = res;

	p->called = true;
	p->rc = rc;
	if (rc == 0) {
		p->turns = TAKE_PTR(l->turns);
		p->history = TAKE_PTR(l->history);
	}
}

static bool peeked(void *arg) { return ((struct peeked *)arg)->called; }

/* With a store: the same notifications in the same order, and every item
 * the owner was told is completed is in the store, with the history the
 * next request will carry. */
START_TEST(a_durable_turn_is_in_the_store)
{
	_cleanup_free_ char *seq = NULL, *dir = xasprintf("%s/state", home);
	struct peeked p = { 0 };
	struct thread *t;
	json_t *stored, *v;
	char err[512];
	size_t i;

	ck_assert_msg(store_start(loop, dir, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(store_run(err, sizeof(err)) == 0, "%s", err);
	t = demo_thread();
	ck_assert(!thread_ephemeral(t));
	model_start("{\"steps\":["
		    " {\"tool_calls\":[{\"namespace\":\"mcp__demo\",\"name\":\"echo\","
		    "                   \"arguments\":{\"text\":\"pong\"}}]},"
		    " {\"reply_text\":\"The echo tool said: pong\"}]}");
	start(t, "hello");
	ck_assert_str_eq(json_string_value(json_object_get(finished_turn(), "status")),
			 "completed");
	seq = sequence();
	ck_assert_str_eq(seq, "turn/started,item/started:userMessage,item/completed:userMessage,"
			      "item/started:mcpToolCall,item/completed:mcpToolCall,"
			      "item/started:agentMessage,delta,item/completed:agentMessage,"
			      "turn/completed,");
	ck_assert_ptr_nonnull(thread_peek(thread_id(t), peek_cb, &p));
	ck_assert(run_until(peeked, &p));
	ck_assert_int_eq(p.rc, 0);
	ck_assert_uint_eq(json_array_size(p.turns), 1);
	stored = json_object_get(json_array_get(p.turns, 0), "turn");
	ck_assert_str_eq(json_string_value(json_object_get(stored, "status")), "completed");
	json_array_foreach(notes, i, v) {
		json_t *item = json_object_get(json_object_get(v, "params"), "item");
		json_t *s;
		size_t j;
		bool found = false;

		if (strcmp(json_string_value(json_object_get(v, "method")), "item/completed") != 0)
			continue;
		json_array_foreach(json_object_get(stored, "items"), j, s)
			found = found || json_equal(s, item);
		ck_assert_msg(found, "item %s told completed, not in the store",
			      json_string_value(json_object_get(item, "id")));
	}
	ck_assert_uint_eq(json_array_size(p.history), 4); /* user, call, output, answer */
	ck_assert(json_equal(p.history, thread_history(t)));
	json_decref(p.turns);
	json_decref(p.history);
	ck_assert_int_eq(model_stop(), 0);
}
END_TEST

static bool call_running(void *arg) { return fake_env_tool_calls("hang") > 0; }
static bool cancel_seen(void *arg) { return fake_env_cancels() > 0; }

START_TEST(an_interrupt_cancels_the_calls_in_flight)
{
	struct thread *t = demo_thread();
	struct turn *u;
	json_t *turn, *call;

	model_start("{\"steps\":[{\"tool_calls\":[{\"namespace\":\"mcp__demo\",\"name\":\"hang\","
		    "\"arguments\":{}}]}]}");
	u = start(t, "wait");
	ck_assert(run_until(call_running, NULL));
	ck_assert_ptr_eq(thread_turn(t), u);
	turn_interrupt(u);
	turn = finished_turn();
	ck_assert_str_eq(json_string_value(json_object_get(turn, "status")), "interrupted");
	call = completed_item("mcpToolCall");
	ck_assert_str_eq(json_string_value(json_object_get(call, "status")), "failed");
	ck_assert(run_until(cancel_seen, NULL)); /* notifications/cancelled reached the server */
	/* and, first, MCP_CANCEL, which overtakes a request still queued there */
	ck_assert_uint_eq(fake_env_requests(local_env(), PROTO_MCP_CANCEL), 1);
	ck_assert_ptr_null(thread_turn(t));
	ck_assert_int_eq(model_stop(), 0); /* and no second request went to the model */
}
END_TEST

START_TEST(an_unknown_tool_becomes_an_error_output)
{
	struct thread *t = demo_thread();
	json_t *turn, *call;

	model_start("{\"steps\":["
		    " {\"tool_calls\":[{\"name\":\"no_such_tool\",\"arguments\":{}}]},"
		    " {\"expect\":{\"body_match\":{\"input\":[{\"type\":\"function_call_output\","
		    "  \"output\":{\"$contains\":\"unknown tool\"}}]}},"
		    " \"reply_text\":\"sorry\"}]}");
	start(t, "go");
	turn = finished_turn();
	ck_assert_str_eq(json_string_value(json_object_get(turn, "status")), "completed");
	call = completed_item("mcpToolCall");
	ck_assert_str_eq(json_string_value(json_object_get(call, "status")), "failed");
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(
					     json_object_get(call, "error"), "message")),
				     "unknown tool 'no_such_tool'"));
	ck_assert_int_eq(model_stop(), 0);
}
END_TEST

START_TEST(one_turn_at_a_time_and_a_failing_model_ends_it)
{
	struct thread *t = demo_thread();
	const char *text = "x";
	struct turn *u = (struct turn *)0x1;
	char err[256];
	json_t *turn;

	ck_assert_int_eq(turn_new(t, OWNER, &text, 0, &u, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "input: expected a non-empty array");
	ck_assert_ptr_eq(u, (struct turn *)0x1);
	model_start("{\"steps\":[{\"status\":500,\"error_body\":{\"error\":"
		    "{\"message\":\"the model is on fire\",\"type\":\"server_error\"}}}]}");
	start(t, "hi");
	ck_assert_int_eq(turn_new(t, OWNER, &text, 1, &u, err, sizeof(err)), -EBUSY);
	ck_assert_ptr_nonnull(strstr(err, "already has a turn running"));
	turn = finished_turn();
	ck_assert_str_eq(json_string_value(json_object_get(turn, "status")), "failed");
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(
					     json_object_get(turn, "error"), "message")),
				     "the model is on fire"));
	ck_assert_int_eq(model_stop(), 0);
	/* Over: the thread takes a new turn. */
	ck_assert_ptr_null(thread_turn(t));
}
END_TEST

static Suite *turn_suite(void)
{
	Suite *s = suite_create("turn");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_unchecked_fixture(tc, homes_setup, homes_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, a_tool_call_goes_back_to_the_model);
	tcase_add_test(tc, a_durable_turn_is_in_the_store);
	tcase_add_test(tc, an_interrupt_cancels_the_calls_in_flight);
	tcase_add_test(tc, an_unknown_tool_becomes_an_error_output);
	tcase_add_test(tc, one_turn_at_a_time_and_a_failing_model_ends_it);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(turn_suite)
