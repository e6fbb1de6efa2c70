/* testdomain.h - the orchestrator's domain (threads, the server pool,
 * turns) wired as main.c wires it, over the fake environment layer
 * (fake_env.h) instead of executors, with every notification recorded.
 * Used by test_thread.c, test_srv.c, test_turn.c and test_toolnames.c.
 * Header-only: each suite is its own program.
 *
 * dom_start(config) writes config.toml (NULL: none) into a fresh home, puts
 * it in force and registers the implicit "local" environment (CONNECTING:
 * dom_ready() connects it). The loop runs only inside run_until(), which
 * re-checks its condition every millisecond up to a hang guard (never a
 * performance bound).
 */
#ifndef TANDEM_TESTDOMAIN_H
#define TANDEM_TESTDOMAIN_H

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>

#include "config.h"
#include "envfile.h"
#include "envs.h"
#include "fake_env.h"
#include "log.h"
#include "loop.h"
#include "notify.h"
#include "srv.h"
#include "store.h"
#include "testhome.h"
#include "thread.h"
#include "turn.h"
#include "util.h"

#define DOM_WAIT_MS 20000u /* hang guard */

static struct loop *loop;
static json_t *notes; /* [{"owner": id or null (all), "method", "params"}] */

/* ---- the wiring, as in main.c ----------------------------------------- */

_unused_ static void dom_env_state_cb(struct env *e, void *arg)
{
	srv_env_changed(e);
	threads_env_changed(e);
}

_unused_ static void dom_env_output_cb(struct env *e, uint64_t handle, const char *data, size_t len,
			      void *arg)
{
	srv_on_output(e, handle, data, len);
}

_unused_ static void dom_env_exited_cb(struct env *e, uint64_t handle, const char *reason,
				       void *arg)
{
	srv_on_exited(e, handle, reason);
}

static const struct envs_ops dom_envs_ops = {
	.state_cb = dom_env_state_cb,
	.output_cb = dom_env_output_cb,
	.exited_cb = dom_env_exited_cb,
};

_unused_ static void dom_note_owner(uint64_t owner, const char *method, json_t *params, void *arg)
{
	json_array_append_new(notes, json_pack("{s:I, s:s, s:o}", "owner", (json_int_t)owner,
					       "method", method, "params", params));
}

_unused_ static void dom_note_all(const char *method, json_t *params, void *arg)
{
	json_array_append_new(notes, json_pack("{s:n, s:s, s:o}", "owner", "method", method,
					       "params", params));
}

static const struct notify_sink dom_sink = {
	.owner_cb = dom_note_owner,
	.all_cb = dom_note_all,
};

_unused_ static void dom_start(const char *config_toml)
{
	struct envfile ef = { .include_local = true };
	char err[1024] = "";

	log_init("test", getenv("TANDEM_LOG") ? LOG_LVL_DEBUG : LOG_LVL_ERROR);
	signal(SIGPIPE, SIG_IGN);
	home_setup();
	if (config_toml)
		home_write("config.toml", config_toml);
	ck_assert_msg(config_init(home, err, sizeof(err)) == 0, "config: %s", err);
	loop = loop_new();
	ck_assert_ptr_nonnull(loop);
	notes = json_array();
	notify_set_sink(&dom_sink, NULL);
	envs_init(loop, home, NULL, &dom_envs_ops, NULL);
	srv_init(loop);
	threads_init(loop, 0); /* nothing unloaded unless a test asks */
	envs_start(&ef);
}

_unused_ static void dom_stop(void)
{
	turn_abort_all();
	thread_free_all();
	store_stop(); /* when a test opened one */
	srv_stop_all();
	envs_stop();
	fake_env_reset();
	notify_set_sink(NULL, NULL);
	config_install(NULL);
	json_decref(notes);
	loop = loop_free(loop);
	home_teardown();
}

_unused_ static struct env *local_env(void) { return envs_find(ENVS_LOCAL_ID); }
_unused_ static void dom_ready(struct env *e) { fake_env_set_state(e, ENV_READY, NULL); }

/* ---- running ----------------------------------------------------------- */

_unused_ static void dom_tick_cb(struct loop_timer *t, void *arg) { loop_stop(loop); }

_unused_ static bool run_until(bool (*pred)(void *), void *arg)
{
	uint64_t deadline = now_ms() + DOM_WAIT_MS;

	while (!pred(arg) && now_ms() < deadline) {
		loop_timer_add(loop, 1, dom_tick_cb, NULL);
		ck_assert_int_eq(loop_run(loop), 0);
	}
	return pred(arg);
}

/* Lets everything already queued (zero-delay deliveries) run. */
_unused_ static void run_a_while(unsigned ticks)
{
	for (unsigned i = 0; i < ticks; i++) {
		loop_timer_add(loop, 1, dom_tick_cb, NULL);
		ck_assert_int_eq(loop_run(loop), 0);
	}
}

_unused_ static bool flag_set(void *arg) { return *(bool *)arg; }
_unused_ static void set_flag_cb(struct thread *t, void *arg) { *(bool *)arg = true; }

/* Projects t and runs until it settles. */
_unused_ static void settle(struct thread *t)
{
	bool done = false;

	thread_project(t);
	thread_when_settled(t, set_flag_cb, &done);
	ck_assert_msg(run_until(flag_set, &done), "thread did not settle");
}

_unused_ static bool srv_not_starting(void *arg) { return srv_state(arg) != SRV_STARTING; }
_unused_ static bool srv_is_ready(void *arg) { return srv_state(arg) == SRV_READY; }

/* ---- notifications ----------------------------------------------------- */

/* How many notifications of method went to owner (0: to all). */
_unused_ static unsigned notes_count(const char *method, uint64_t owner)
{
	unsigned n = 0;
	json_t *v;
	size_t i;

	json_array_foreach(notes, i, v) {
		json_t *o = json_object_get(v, "owner");

		if (strcmp(json_string_value(json_object_get(v, "method")), method) == 0 &&
		    (owner ? json_integer_value(o) == (json_int_t)owner : json_is_null(o)))
			n++;
	}
	return n;
}

/* The params of the last notification of method (borrowed), or NULL. */
_unused_ static json_t *notes_last(const char *method)
{
	json_t *v, *last = NULL;
	size_t i;

	json_array_foreach(notes, i, v)
		if (strcmp(json_string_value(json_object_get(v, "method")), method) == 0)
			last = json_object_get(v, "params");
	return last;
}

/* ---- threads ----------------------------------------------------------- */

/* A thread of owner with one root each (id, env, path) given as a
 * NULL-terminated list of triples. */
_unused_ static struct thread *thread_with_roots(uint64_t owner, const char *const *triples)
{
	struct thread_root_spec roots[8];
	struct thread_spec spec = { .roots = roots };
	struct thread *t = NULL;
	char err[256];

	for (; triples && triples[0]; triples += 3) {
		ck_assert_uint_lt(spec.n_roots, 8);
		roots[spec.n_roots++] = (struct thread_root_spec){
			.id = triples[0], .env_id = triples[1], .path = triples[2] };
	}
	ck_assert_msg(thread_new(&spec, owner, &t, err, sizeof(err)) == 0, "%s", err);
	return t;
}

#endif
