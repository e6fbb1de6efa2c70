/* test_toolnames.c - how MCP tools are named for the model and mapped back
 * (orchestrator/toolnames.c), over live servers of the fake environment
 * layer: sanitizing, collisions and over-long names (the SHA-1 suffixes
 * are the Codex rule's, computed independently), qualified names, and what
 * is left out (servers not ready, disabled tools). */
#include "testdomain.h"
#include "testmain.h"
#include "toolnames.h"

static void setup(void)
{
	dom_start(NULL);
	dom_ready(local_env());
}

static void teardown(void) { dom_stop(); }

static struct srv *live(const char *name, const char *json)
{
	json_t *c = json_loads(json, 0, NULL);
	struct srv *s;

	ck_assert_ptr_nonnull(c);
	s = srv_acquire(name, c, NULL);
	json_decref(c);
	ck_assert(run_until(srv_is_ready, s));
	return s;
}

/* The function names offered in namespace ns (new reference). */
static json_t *functions(json_t *tools, const char *ns)
{
	json_t *out = json_array(), *o, *f;
	size_t i, j;

	json_array_foreach(tools, i, o) {
		if (strcmp(json_string_value(json_object_get(o, "name")), ns) != 0)
			continue;
		ck_assert_str_eq(json_string_value(json_object_get(o, "type")), "namespace");
		json_array_foreach(json_object_get(o, "tools"), j, f)
			json_array_append(out, json_object_get(f, "name"));
	}
	return out;
}

static void assert_maps(const struct toolmap *m, const char *ns, const char *name,
			const char *server, const char *tool)
{
	const char *sv = NULL, *tl = NULL;

	ck_assert_msg(toolmap_lookup(m, ns, name, &sv, &tl), "%s.%s not found", ns, name);
	ck_assert_str_eq(sv, server);
	ck_assert_str_eq(tl, tool);
}

START_TEST(sanitize_keeps_only_word_characters)
{
	char out[32];

	toolnames_sanitize("a-b.c/d_E9", out);
	ck_assert_str_eq(out, "a_b_c_d_E9");
	toolnames_sanitize("caf\xc3\xa9", out);
	ck_assert_str_eq(out, "caf__");
}
END_TEST

/* The gateway's flat names: <server>__<tool> by the same rule, one space
 * for every server (hashes computed independently, with Python's hashlib). */
static const char *flat(struct toolmap *m, const char *server, const char *tool)
{
	const char *ns, *name, *sv, *tl;
	ssize_t k = toolmap_add_flat(m, server, tool);

	if (k < 0)
		return NULL;
	toolmap_entry(m, (size_t)k, &ns, &name, &sv, &tl);
	ck_assert_str_eq(ns, "");
	ck_assert_str_eq(sv, server);
	ck_assert_str_eq(tl, tool);
	return name;
}

START_TEST(flat_names_for_the_gateway)
{
	struct toolmap *m = toolmap_new();
	char longtool[71];
	const char *n;

	ck_assert_str_eq(flat(m, "my-docs", "search.v2"), "my_docs__search_v2");
	ck_assert_str_eq(flat(m, "a", "b__c"), "a__b__c");
	/* "a__b" / "c" would be "a__b__c" too: SHA-1("a__b/c") = 4adbd34ff868... */
	ck_assert_str_eq(flat(m, "a__b", "c"), "a__b__c_4adbd34ff868");
	memset(longtool, 'x', 70);
	longtool[70] = '\0';
	n = flat(m, "s", longtool); /* 73 bytes: cut to 51, then the hash */
	ck_assert_uint_eq(strlen(n), TOOLNAMES_MAX);
	ck_assert_str_eq(n + 48, "xxx_207b6e579522");
	ck_assert_str_eq(flat(m, "s", "t"), "s__t");
	ck_assert_str_eq(flat(m, "s", "t"), "s__t_c15930e5ed1f");
	ck_assert_ptr_null(flat(m, "s", "t")); /* no third name: left out */
	ck_assert_uint_eq(toolmap_count(m), 6);
	toolmap_free(m);
}
END_TEST

START_TEST(collisions_get_a_hash_and_map_back)
{
	struct srv *s = live("my-server", "{\"transport\":\"stdio\",\"command\":\"fake-mcp\","
					  "\"args\":[\"echo\",\"a-b\",\"a_b\"],"
					  "\"environment_id\":\"local\"}");
	struct toolmap *m;
	json_t *tools = toolnames_build(&s, 1, &m), *names = functions(tools, "mcp__my_server");
	const char *sv, *tl;

	ck_assert_uint_eq(json_array_size(tools), 1);
	ck_assert_uint_eq(toolmap_count(m), 3);
	ck_assert_str_eq(json_string_value(json_array_get(names, 0)), "echo");
	ck_assert_str_eq(json_string_value(json_array_get(names, 1)), "a_b");
	/* "a_b" is taken by "a-b": SHA-1("my-server/a_b") starts ce76d3846f25. */
	ck_assert_str_eq(json_string_value(json_array_get(names, 2)), "a_b_ce76d3846f25");
	assert_maps(m, "mcp__my_server", "a_b", "my-server", "a-b");
	assert_maps(m, "mcp__my_server", "a_b_ce76d3846f25", "my-server", "a_b");
	/* Some models send the qualified name alone. */
	assert_maps(m, NULL, "mcp__my_server__echo", "my-server", "echo");
	ck_assert(!toolmap_lookup(m, "mcp__my_server", "nope", &sv, &tl));
	ck_assert(!toolmap_lookup(m, "mcp__other", "echo", &sv, &tl));
	json_decref(names);
	json_decref(tools);
	toolmap_free(m);
	srv_release(s);
}
END_TEST

START_TEST(long_names_are_shortened_with_a_hash)
{
	char tool[81], json[512], want[64], server[61];
	struct srv *s[2];
	struct toolmap *m;
	json_t *tools, *names, *o;
	size_t i;

	memset(tool, 't', 80);
	tool[80] = '\0';
	memset(server, 'x', 60);
	server[60] = '\0';
	snprintf(json, sizeof(json), "{\"transport\":\"stdio\",\"command\":\"fake-mcp\","
				     "\"args\":[\"%s\"],\"environment_id\":\"local\"}", tool);
	s[0] = live("my-server", json);
	s[1] = live(server, "{\"transport\":\"stdio\",\"command\":\"fake-mcp\","
			    "\"args\":[\"echo\"],\"environment_id\":\"local\"}");
	tools = toolnames_build(s, 2, &m);
	/* 35 t's and SHA-1("my-server/ttt...") so that namespace + name + 2
	 * fit in TOOLNAMES_MAX. */
	names = functions(tools, "mcp__my_server");
	snprintf(want, sizeof(want), "%.35s_f42f41766f10", tool);
	ck_assert_str_eq(json_string_value(json_array_get(names, 0)), want);
	ck_assert_uint_le(strlen("mcp__my_server") + strlen(want) + 2, TOOLNAMES_MAX);
	assert_maps(m, "mcp__my_server", want, "my-server", tool);
	json_decref(names);
	/* A long server name: 19 bytes of its namespace and SHA-1("xxx.../"). */
	names = functions(tools, "mcp__xxxxxxxxxxxxxx_a50f9854f30b");
	ck_assert_uint_eq(json_array_size(names), 1);
	assert_maps(m, "mcp__xxxxxxxxxxxxxx_a50f9854f30b", "echo", server, "echo");
	json_array_foreach(tools, i, o)
		ck_assert_uint_le(strlen(json_string_value(json_object_get(o, "name"))),
				  TOOLNAMES_MAX / 2);
	json_decref(names);
	json_decref(tools);
	toolmap_free(m);
	srv_release(s[0]);
	srv_release(s[1]);
}
END_TEST

START_TEST(only_ready_servers_and_allowed_tools_are_offered)
{
	struct srv *s[2];
	json_t *c = json_loads("{\"transport\":\"stdio\",\"command\":\"no-such-program\","
			       "\"environment_id\":\"local\"}", 0, NULL);
	struct toolmap *m;
	json_t *tools, *names;

	s[0] = live("ok", "{\"transport\":\"stdio\",\"command\":\"fake-mcp\","
			  "\"args\":[\"echo\",\"rm\"],\"disabled_tools\":[\"rm\"],"
			  "\"environment_id\":\"local\"}");
	s[1] = srv_acquire("down", c, NULL);
	ck_assert(run_until(srv_not_starting, s[1]));
	tools = toolnames_build(s, 2, &m);
	ck_assert_uint_eq(json_array_size(tools), 1);
	names = functions(tools, "mcp__ok");
	ck_assert_uint_eq(json_array_size(names), 1);
	ck_assert_str_eq(json_string_value(json_array_get(names, 0)), "echo");
	ck_assert_uint_eq(toolmap_count(m), 1);
	json_decref(names);
	json_decref(tools);
	toolmap_free(m);
	srv_release(s[0]);
	srv_release(s[1]);
	json_decref(c);
}
END_TEST

static Suite *toolnames_suite(void)
{
	Suite *s = suite_create("toolnames");
	TCase *tc = tcase_create("core");

	tcase_add_unchecked_fixture(tc, homes_setup, homes_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, sanitize_keeps_only_word_characters);
	tcase_add_test(tc, flat_names_for_the_gateway);
	tcase_add_test(tc, collisions_get_a_hash_and_map_back);
	tcase_add_test(tc, long_names_are_shortened_with_a_hash);
	tcase_add_test(tc, only_ready_servers_and_allowed_tools_are_offered);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(toolnames_suite)
