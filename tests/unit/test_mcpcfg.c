/* test_mcpcfg.c - MCP server config validation and normalization. */
#include "mcpcfg.h"
#include "testmain.h"
#include "util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#define REASON_LEN 512

static char reason[REASON_LEN];

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);

	ck_assert_msg(j != NULL, "test JSON does not parse: %s: %s", e.text,
		      text);
	return j;
}

/* Normalizes the config `text` for server `name`. */
static json_t *norm_ctx(const char *name, const char *text,
			const struct mcpcfg_ctx *ctx, json_t *warnings)
{
	json_t *raw = parse(text);
	json_t *out;

	reason[0] = '\0';
	out = mcpcfg_normalize(name, raw, ctx, warnings, reason,
			       sizeof(reason));
	json_decref(raw);
	return out;
}

static json_t *norm(const char *text)
{
	return norm_ctx("srv", text, NULL, NULL);
}

static void expect_fail_ctx(const char *text, const struct mcpcfg_ctx *ctx,
			    const char *needle)
{
	json_t *out = norm_ctx("srv", text, ctx, NULL);

	ck_assert_msg(out == NULL, "accepted: %s", text);
	ck_assert_msg(strstr(reason, needle) != NULL,
		      "reason '%s' lacks '%s' for %s", reason, needle, text);
}

static void expect_fail(const char *text, const char *needle)
{
	expect_fail_ctx(text, NULL, needle);
}

static const char *str_at(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	ck_assert_msg(json_is_string(v), "'%s' is not a string", key);
	return json_string_value(v);
}

static double num_at(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	ck_assert_msg(json_is_number(v), "'%s' is not a number", key);
	return json_number_value(v);
}

/* A fresh canonical directory under TMPDIR; caller removes it. */
static char *make_root(void)
{
	char tmpl[] = "/tmp/mcpcfg-test-XXXXXX";
	char real[PATH_MAX];

	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	ck_assert_ptr_nonnull(realpath(tmpl, real));
	return xstrdup(real);
}

static void rm_rf(const char *path)
{
	_cleanup_free_ char *cmd = xasprintf("rm -rf '%s'", path);

	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_name_rules)
{
	char long_name[MCPCFG_NAME_MAX + 2];

	ck_assert(mcpcfg_name_valid("a"));
	ck_assert(mcpcfg_name_valid("Server_1-x"));
	ck_assert(!mcpcfg_name_valid(""));
	ck_assert(!mcpcfg_name_valid(NULL));
	ck_assert(!mcpcfg_name_valid("bad name"));
	ck_assert(!mcpcfg_name_valid("dot.ted"));
	ck_assert(!mcpcfg_name_valid("caf\xc3\xa9"));
	memset(long_name, 'a', sizeof(long_name));
	long_name[MCPCFG_NAME_MAX] = '\0';
	ck_assert(mcpcfg_name_valid(long_name));
	long_name[MCPCFG_NAME_MAX] = 'a';
	long_name[MCPCFG_NAME_MAX + 1] = '\0';
	ck_assert(!mcpcfg_name_valid(long_name));

	ck_assert_ptr_null(norm_ctx("bad name", "{\"command\":\"x\"}", NULL,
				    NULL));
	ck_assert_ptr_nonnull(strstr(reason, "invalid server name"));
}
END_TEST

START_TEST(test_path_within)
{
	ck_assert(mcpcfg_path_within("/a/b", "/a/b"));
	ck_assert(mcpcfg_path_within("/a/b", "/a/b/c"));
	ck_assert(mcpcfg_path_within("/a/b/", "/a/b/c"));
	ck_assert(mcpcfg_path_within("/", "/x/y"));
	ck_assert(!mcpcfg_path_within("/a/b", "/a/bc"));
	ck_assert(!mcpcfg_path_within("/a/b", "/a"));
	ck_assert(!mcpcfg_path_within("/a/b/c", "/a/b"));
}
END_TEST

START_TEST(test_stdio_defaults)
{
	json_t *o = norm("{\"command\":\"srv-bin\"}");

	ck_assert_msg(o != NULL, "%s", reason);
	ck_assert_str_eq(str_at(o, "name"), "srv");
	ck_assert_str_eq(str_at(o, "transport"), "stdio");
	ck_assert_str_eq(str_at(o, "command"), "srv-bin");
	ck_assert_int_eq(json_array_size(json_object_get(o, "args")), 0);
	ck_assert(json_is_object(json_object_get(o, "env")));
	ck_assert_int_eq(json_array_size(json_object_get(o, "env_vars")), 0);
	ck_assert_str_eq(str_at(o, "environment_id"), "local");
	ck_assert(num_at(o, "startup_timeout_sec") == 30.0);
	ck_assert(num_at(o, "tool_timeout_sec") == 300.0);
	ck_assert(json_is_true(json_object_get(o, "enabled")));
	ck_assert(json_is_false(json_object_get(o, "required")));
	/* Not given: absent (no cwd outside a plugin, all tools). */
	ck_assert_ptr_null(json_object_get(o, "cwd"));
	ck_assert_ptr_null(json_object_get(o, "enabled_tools"));
	ck_assert_ptr_null(json_object_get(o, "disabled_tools"));
	ck_assert_ptr_null(json_object_get(o, "scopes"));
	ck_assert_ptr_null(json_object_get(o, "oauth_client_id"));
	ck_assert_ptr_null(json_object_get(o, "url"));
	ck_assert_ptr_null(json_object_get(o, "http_headers"));
	json_decref(o);
}
END_TEST

START_TEST(test_http_defaults)
{
	json_t *o = norm("{\"type\":\"streamable_http\","
			 "\"url\":\"https://mcp.example.com/mcp\"}");

	ck_assert_msg(o != NULL, "%s", reason);
	ck_assert_str_eq(str_at(o, "transport"), "http");
	ck_assert_str_eq(str_at(o, "url"), "https://mcp.example.com/mcp");
	ck_assert(json_is_object(json_object_get(o, "http_headers")));
	ck_assert(json_is_object(json_object_get(o, "env_http_headers")));
	ck_assert_ptr_null(json_object_get(o, "bearer_token_env_var"));
	ck_assert_ptr_null(json_object_get(o, "type"));
	ck_assert_ptr_null(json_object_get(o, "command"));
	ck_assert_ptr_null(json_object_get(o, "args"));
	ck_assert_ptr_null(json_object_get(o, "env_vars"));
	json_decref(o);
}
END_TEST

/* The wire shape is fixed: same input, same bytes, documented order. */
START_TEST(test_golden_encoding)
{
	json_t *o = norm("{\"required\":true,\"args\":[\"-v\"],"
			 "\"command\":\"x\",\"env_vars\":[\"A\"],"
			 "\"oauth\":{\"client_id\":\"cid\"}}");
	char *s;

	ck_assert_msg(o != NULL, "%s", reason);
	s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
	ck_assert_str_eq(
		s, "{\"name\":\"srv\",\"transport\":\"stdio\",\"command\":\"x\","
		   "\"args\":[\"-v\"],\"env\":{},\"env_vars\":[{\"name\":\"A\","
		   "\"source\":\"remote\"}],\"environment_id\":\"local\","
		   "\"startup_timeout_sec\":30.0,\"tool_timeout_sec\":300.0,"
		   "\"enabled\":true,\"required\":true,"
		   "\"oauth_client_id\":\"cid\"}");
	free(s);
	json_decref(o);
}
END_TEST

START_TEST(test_transport_choice)
{
	expect_fail("{\"command\":\"x\",\"url\":\"https://h/mcp\"}",
		    "both 'command' and 'url'");
	expect_fail("{\"args\":[]}", "neither 'command'");
	expect_fail("{}", "neither 'command'");
	expect_fail("[]", "must be a table");
	expect_fail("{\"command\":\"x\",\"http_headers\":{\"A\":\"b\"}}",
		    "field 'http_headers' is not valid for a stdio server");
	expect_fail("{\"command\":\"x\",\"bearer_token_env_var\":\"T\"}",
		    "field 'bearer_token_env_var' is not valid for a stdio");
	expect_fail("{\"url\":\"https://h/mcp\",\"args\":[]}",
		    "field 'args' is not valid for an http server");
	expect_fail("{\"url\":\"https://h/mcp\",\"cwd\":\"/\"}",
		    "field 'cwd' is not valid for an http server");
}
END_TEST

START_TEST(test_type_field)
{
	json_t *o;

	expect_fail("{\"type\":\"http\",\"command\":\"x\"}",
		    "type 'http' does not match 'command'");
	expect_fail("{\"type\":\"stdio\",\"url\":\"https://h/\"}",
		    "type 'stdio' does not match 'url'");
	expect_fail("{\"type\":\"sse\",\"url\":\"https://h/\"}",
		    "type 'sse' is not supported");
	expect_fail("{\"type\":1,\"command\":\"x\"}", "'type' must be a string");
	o = norm("{\"type\":\"http\",\"url\":\"http://h:1/mcp\"}");
	ck_assert_msg(o != NULL, "%s", reason);
	json_decref(o);
	o = norm("{\"type\":\"stdio\",\"command\":\"x\"}");
	ck_assert_msg(o != NULL, "%s", reason);
	ck_assert_ptr_null(json_object_get(o, "type"));
	json_decref(o);
}
END_TEST

START_TEST(test_unknown_fields)
{
	expect_fail("{\"command\":\"x\",\"colour\":\"blue\"}",
		    "unknown field 'colour'");
	expect_fail("{\"url\":\"https://h/\",\"headers\":{}}",
		    "did you mean 'http_headers'");
	expect_fail("{\"command\":\"x\",\"oauth\":{\"callbackPort\":1}}",
		    "'oauth': unknown field 'callbackPort'");
	expect_fail("{\"command\":\"x\",\"env_vars\":[{\"name\":\"A\","
		    "\"from\":\"x\"}]}",
		    "unknown field 'from'");
}
END_TEST

START_TEST(test_stdio_fields)
{
	json_t *o = norm("{\"command\":\"x\",\"args\":[\"a\",\"\"],"
			 "\"env\":{\"K\":\"v\",\"lower_ok\":\"\"},"
			 "\"cwd\":\"relative/dir\"}");
	json_t *args;

	ck_assert_msg(o != NULL, "%s", reason);
	args = json_object_get(o, "args");
	ck_assert_int_eq(json_array_size(args), 2);
	ck_assert_str_eq(json_string_value(json_array_get(args, 1)), "");
	ck_assert_str_eq(str_at(json_object_get(o, "env"), "K"), "v");
	/* Outside a plugin a cwd is passed through, never resolved. */
	ck_assert_str_eq(str_at(o, "cwd"), "relative/dir");
	json_decref(o);

	expect_fail("{\"command\":\"\"}", "'command' must not be empty");
	expect_fail("{\"command\":7}", "'command' must be a string");
	expect_fail("{\"command\":\"x\",\"args\":\"-v\"}",
		    "'args' must be an array");
	expect_fail("{\"command\":\"x\",\"args\":[1]}",
		    "'args[0]' must be a string");
	expect_fail("{\"command\":\"x\",\"env\":{\"A=B\":\"c\"}}",
		    "'env' key 'A=B' is not a variable name");
	expect_fail("{\"command\":\"x\",\"env\":{\"A\":1}}",
		    "'env' entry 'A' must be a string");
	expect_fail("{\"command\":\"x\",\"env\":[]}", "'env' must be a table");
}
END_TEST

START_TEST(test_env_vars)
{
	json_t *o = norm("{\"command\":\"x\",\"env_vars\":[\"A\","
			 "{\"name\":\"B\"},{\"name\":\"C\",\"source\":"
			 "\"local\"}]}");
	json_t *vars;

	ck_assert_msg(o != NULL, "%s", reason);
	vars = json_object_get(o, "env_vars");
	ck_assert_int_eq(json_array_size(vars), 3);
	ck_assert_str_eq(str_at(json_array_get(vars, 0), "name"), "A");
	ck_assert_str_eq(str_at(json_array_get(vars, 0), "source"), "remote");
	ck_assert_str_eq(str_at(json_array_get(vars, 1), "source"), "remote");
	ck_assert_str_eq(str_at(json_array_get(vars, 2), "name"), "C");
	ck_assert_str_eq(str_at(json_array_get(vars, 2), "source"), "local");
	json_decref(o);

	expect_fail("{\"command\":\"x\",\"env_vars\":[\"A\",{\"name\":\"A\"}]}",
		    "env_vars 'A' is listed twice");
	expect_fail("{\"command\":\"x\",\"env_vars\":[{\"name\":\"A\","
		    "\"source\":\"cloud\"}]}",
		    "source must be 'local' or 'remote'");
	expect_fail("{\"command\":\"x\",\"env_vars\":[\"1A\"]}",
		    "'env_vars[0]' is not a variable name");
	expect_fail("{\"command\":\"x\",\"env_vars\":[{\"source\":\"local\"}]}",
		    "has no 'name'");
	expect_fail("{\"command\":\"x\",\"env_vars\":[3]}",
		    "must be a name or {name, source}");
	expect_fail("{\"command\":\"x\",\"env_vars\":\"A\"}",
		    "'env_vars' must be an array");
}
END_TEST

START_TEST(test_http_fields)
{
	json_t *o = norm("{\"url\":\"HTTPS://h.example/mcp\","
			 "\"bearer_token_env_var\":\"TOK\","
			 "\"http_headers\":{\"X-A\":\"1\"},"
			 "\"env_http_headers\":{\"X-B\":\"B_VAR\"}}");

	ck_assert_msg(o != NULL, "%s", reason);
	ck_assert_str_eq(str_at(o, "bearer_token_env_var"), "TOK");
	ck_assert_str_eq(str_at(json_object_get(o, "http_headers"), "X-A"),
			 "1");
	ck_assert_str_eq(str_at(json_object_get(o, "env_http_headers"), "X-B"),
			 "B_VAR");
	json_decref(o);

	expect_fail("{\"url\":\"ftp://h/\"}", "must start with http://");
	expect_fail("{\"url\":\"https://\"}", "'url' has no host");
	expect_fail("{\"url\":\"https:///path\"}", "'url' has no host");
	expect_fail("{\"url\":\"https://h/a b\"}", "space or control");
	expect_fail("{\"url\":\"https://h/\",\"http_headers\":{\"X\":"
		    "\"a\\r\\nInjected: 1\"}}",
		    "without CR/LF");
	expect_fail("{\"url\":\"https://h/\",\"http_headers\":{\"Bad Name\":"
		    "\"a\"}}",
		    "is not a header name");
	expect_fail("{\"url\":\"https://h/\",\"env_http_headers\":{\"X\":"
		    "\"not-a-var\"}}",
		    "is not a variable name");
	expect_fail("{\"url\":\"https://h/\",\"bearer_token_env_var\":\"A-B\"}",
		    "'bearer_token_env_var' is not a variable name");
}
END_TEST

START_TEST(test_timeouts)
{
	json_t *o = norm("{\"command\":\"x\",\"startup_timeout_ms\":2500,"
			 "\"tool_timeout_sec\":1.5}");

	ck_assert_msg(o != NULL, "%s", reason);
	ck_assert(num_at(o, "startup_timeout_sec") == 2.5);
	ck_assert(num_at(o, "tool_timeout_sec") == 1.5);
	ck_assert_ptr_null(json_object_get(o, "startup_timeout_ms"));
	json_decref(o);

	expect_fail("{\"command\":\"x\",\"startup_timeout_sec\":5,"
		    "\"startup_timeout_ms\":5000}",
		    "set only one of");
	expect_fail("{\"command\":\"x\",\"startup_timeout_ms\":5000,"
		    "\"startup_timeout_sec\":5}",
		    "set only one of");
	expect_fail("{\"command\":\"x\",\"startup_timeout_sec\":0}", "> 0");
	expect_fail("{\"command\":\"x\",\"tool_timeout_sec\":-1}", "> 0");
	expect_fail("{\"command\":\"x\",\"tool_timeout_sec\":1e9}",
		    "at most 86400");
	expect_fail("{\"command\":\"x\",\"tool_timeout_sec\":\"5\"}",
		    "must be a number");
}
END_TEST

START_TEST(test_common_fields)
{
	json_t *o = norm("{\"url\":\"https://h/\",\"enabled\":false,"
			 "\"enabled_tools\":[\"a\",\"b\"],\"disabled_tools\":"
			 "[],\"scopes\":[\"read\"],\"environment_id\":\"e-2\","
			 "\"oauth\":{\"clientId\":\"abc\"}}");

	ck_assert_msg(o != NULL, "%s", reason);
	ck_assert(json_is_false(json_object_get(o, "enabled")));
	ck_assert_int_eq(json_array_size(json_object_get(o, "enabled_tools")),
			 2);
	/* Given but empty stays: "no tools disabled" was said explicitly. */
	ck_assert(json_is_array(json_object_get(o, "disabled_tools")));
	ck_assert_str_eq(str_at(o, "environment_id"), "e-2");
	ck_assert_str_eq(str_at(o, "oauth_client_id"), "abc");
	ck_assert_ptr_null(json_object_get(o, "oauth"));
	json_decref(o);

	expect_fail("{\"command\":\"x\",\"enabled\":\"yes\"}",
		    "'enabled' must be true or false");
	expect_fail("{\"command\":\"x\",\"enabled_tools\":[\"\"]}",
		    "'enabled_tools[0]' must not be empty");
	expect_fail("{\"command\":\"x\",\"environment_id\":\"a b\"}",
		    "'environment_id' must be 1-64");
	expect_fail("{\"command\":\"x\",\"oauth\":{\"client_id\":\"a\","
		    "\"clientId\":\"b\"}}",
		    "set only one of 'client_id' and 'clientId'");
	expect_fail("{\"command\":\"x\",\"oauth\":\"abc\"}",
		    "'oauth' must be a table");
}
END_TEST

START_TEST(test_bounds)
{
	json_t *raw = json_pack("{s:s}", "command", "x");
	json_t *args = json_array(), *env = json_object(), *o;
	char *big;

	for (int i = 0; i < MCPCFG_LIST_MAX; i++) {
		char k[16];

		snprintf(k, sizeof(k), "V%d", i);
		json_array_append_new(args, json_string("a"));
		json_object_set_new(env, k, json_string("v"));
	}
	json_object_set(raw, "args", args);
	json_object_set(raw, "env", env);
	o = mcpcfg_normalize("s", raw, NULL, NULL, reason, sizeof(reason));
	ck_assert_msg(o != NULL, "at the limit: %s", reason);
	json_decref(o);

	json_array_append_new(args, json_string("one too many"));
	o = mcpcfg_normalize("s", raw, NULL, NULL, reason, sizeof(reason));
	ck_assert_ptr_null(o);
	ck_assert_ptr_nonnull(strstr(reason, "'args' has more than 256"));
	json_array_remove(args, MCPCFG_LIST_MAX);

	json_object_set_new(env, "EXTRA", json_string("v"));
	o = mcpcfg_normalize("s", raw, NULL, NULL, reason, sizeof(reason));
	ck_assert_ptr_null(o);
	ck_assert_ptr_nonnull(strstr(reason, "'env' has more than 256"));
	json_object_del(env, "EXTRA");

	big = xmalloc(MCPCFG_STR_MAX + 2);
	memset(big, 'a', MCPCFG_STR_MAX + 1);
	big[MCPCFG_STR_MAX + 1] = '\0';
	json_object_set_new(raw, "command", json_string(big));
	o = mcpcfg_normalize("s", raw, NULL, NULL, reason, sizeof(reason));
	ck_assert_ptr_null(o);
	ck_assert_ptr_nonnull(strstr(reason, "longer than 65536"));

	json_object_set_new(raw, "command", json_stringn("a\0b", 3));
	o = mcpcfg_normalize("s", raw, NULL, NULL, reason, sizeof(reason));
	ck_assert_ptr_null(o);
	ck_assert_ptr_nonnull(strstr(reason, "NUL byte"));

	free(big);
	json_decref(args);
	json_decref(env);
	json_decref(raw);
}
END_TEST

/* The input is borrowed: normalizing never changes it. */
START_TEST(test_input_untouched)
{
	const char *text = "{\"command\":\"x\",\"env_vars\":[\"A\"],"
			   "\"startup_timeout_ms\":10,\"type\":\"stdio\"}";
	json_t *raw = parse(text), *copy = json_deep_copy(raw), *o;

	o = mcpcfg_normalize("s", raw, NULL, NULL, reason, sizeof(reason));
	ck_assert_ptr_nonnull(o);
	ck_assert(json_equal(raw, copy));
	json_decref(o);
	json_decref(raw);
	json_decref(copy);
}
END_TEST

/* A short buffer truncates; a cut never splits a UTF-8 character. */
START_TEST(test_reason_buffer)
{
	json_t *raw = parse("{\"command\":\"x\",\"\xc3\xa9\xc3\xa9\xc3\xa9"
			    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
			    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
			    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
			    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
			    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
			    "\xc3\xa9\xc3\xa9\":1}");
	char small[8];
	json_t *s;

	ck_assert_ptr_null(mcpcfg_normalize("s", raw, NULL, NULL, reason,
					    sizeof(reason)));
	ck_assert_ptr_nonnull(strstr(reason, "unknown field"));
	s = json_string(reason); /* NULL if the cut split a character */
	ck_assert_ptr_nonnull(s);
	json_decref(s);

	memset(small, 'Z', sizeof(small));
	ck_assert_ptr_null(mcpcfg_normalize("s", raw, NULL, NULL, small,
					    sizeof(small)));
	ck_assert_int_eq(strlen(small), sizeof(small) - 1);
	ck_assert_ptr_null(mcpcfg_normalize("s", raw, NULL, NULL, NULL, 0));
	json_decref(raw);
}
END_TEST

START_TEST(test_plugin_environment)
{
	struct mcpcfg_ctx ctx = { .from_plugin = true,
				  .environment_id = "e1",
				  .environment_is_local = false,
				  .root = "/" };
	json_t *warnings = json_array();
	json_t *o = norm_ctx("srv", "{\"url\":\"https://h/\","
				    "\"environment_id\":\"other\"}",
			     &ctx, warnings);

	ck_assert_msg(o != NULL, "%s", reason);
	ck_assert_str_eq(str_at(o, "environment_id"), "e1");
	ck_assert_int_eq(json_array_size(warnings), 1);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_array_get(warnings,
								      0)),
				     "server 'srv': declared environment_id "
				     "'other' replaced by the owning "
				     "environment 'e1'"));
	json_decref(o);

	/* No declaration: bound silently. */
	o = norm_ctx("srv", "{\"url\":\"https://h/\"}", &ctx, warnings);
	ck_assert_str_eq(str_at(o, "environment_id"), "e1");
	ck_assert_int_eq(json_array_size(warnings), 1);
	json_decref(o);
	json_decref(warnings);
}
END_TEST

START_TEST(test_plugin_env_vars_local)
{
	struct mcpcfg_ctx ctx = { .from_plugin = true,
				  .environment_id = "e1",
				  .environment_is_local = false,
				  .root = "/" };
	const char *text = "{\"command\":\"x\",\"env_vars\":[{\"name\":\"X\","
			   "\"source\":\"local\"}]}";
	json_t *o;

	expect_fail_ctx(text, &ctx,
			"env_vars 'X': source 'local' is not allowed for a "
			"plugin on environment 'e1'");
	/* Remote is fine on any environment. */
	o = norm_ctx("srv", "{\"command\":\"x\",\"env_vars\":[\"X\"]}", &ctx,
		     NULL);
	ck_assert_msg(o != NULL, "%s", reason);
	json_decref(o);
	/* On the implicit local executor, local is where it runs. */
	ctx.environment_id = "local";
	ctx.environment_is_local = true;
	o = norm_ctx("srv", text, &ctx, NULL);
	ck_assert_msg(o != NULL, "%s", reason);
	json_decref(o);
	/* config.toml entries are not plugin-bound. */
	o = norm(text);
	ck_assert_msg(o != NULL, "%s", reason);
	json_decref(o);
}
END_TEST

START_TEST(test_plugin_cwd)
{
	_cleanup_free_ char *root = make_root();
	_cleanup_free_ char *sub = xasprintf("%s/sub", root);
	_cleanup_free_ char *link = xasprintf("%s/link", root);
	_cleanup_free_ char *file = xasprintf("%s/file", sub);
	struct mcpcfg_ctx ctx = { .from_plugin = true,
				  .environment_id = "local",
				  .environment_is_local = true,
				  .root = root };
	json_t *o;

	ck_assert_int_eq(mkdir(sub, 0755), 0);
	ck_assert_int_eq(symlink("/tmp", link), 0);
	/* Default: the root itself. */
	o = norm_ctx("srv", "{\"command\":\"x\"}", &ctx, NULL);
	ck_assert_msg(o != NULL, "%s", reason);
	ck_assert_str_eq(str_at(o, "cwd"), root);
	json_decref(o);
	/* Relative and absolute inside: canonical. */
	o = norm_ctx("srv", "{\"command\":\"x\",\"cwd\":\"./sub/../sub\"}",
		     &ctx, NULL);
	ck_assert_msg(o != NULL, "%s", reason);
	ck_assert_str_eq(str_at(o, "cwd"), sub);
	json_decref(o);
	{
		_cleanup_free_ char *text =
			xasprintf("{\"command\":\"x\",\"cwd\":\"%s\"}", sub);

		o = norm_ctx("srv", text, &ctx, NULL);
		ck_assert_msg(o != NULL, "%s", reason);
		ck_assert_str_eq(str_at(o, "cwd"), sub);
		json_decref(o);
	}
	expect_fail_ctx("{\"command\":\"x\",\"cwd\":\"../..\"}", &ctx,
			"cwd '../..' leaves the plugin root");
	expect_fail_ctx("{\"command\":\"x\",\"cwd\":\"/\"}", &ctx,
			"leaves the plugin root");
	/* A symlink inside the root that points out of it. */
	expect_fail_ctx("{\"command\":\"x\",\"cwd\":\"link\"}", &ctx,
			"cwd 'link' leaves the plugin root");
	expect_fail_ctx("{\"command\":\"x\",\"cwd\":\"nope\"}", &ctx,
			"does not resolve inside the plugin root");
	fclose(fopen(file, "w"));
	expect_fail_ctx("{\"command\":\"x\",\"cwd\":\"sub/file\"}", &ctx,
			"is not a directory");
	rm_rf(root);
}
END_TEST

/* sandbox and network: tandem extensions (executor/box.h applies them). */
START_TEST(test_sandbox_keys)
{
	json_t *o;

	o = norm("{\"command\":\"x\",\"sandbox\":\"off\",\"network\":false}");
	ck_assert_msg(o != NULL, "%s", reason);
	ck_assert(json_is_true(json_object_get(json_object_get(o, "sandbox"), "off")));
	ck_assert(json_is_false(json_object_get(o, "network")));
	json_decref(o);
	o = norm("{\"command\":\"x\",\"sandbox\":{\"read\":[\"/srv/a\"],\"write\":[\"/srv/b\"],"
		 "\"max_open_files\":128,\"max_processes\":8,\"max_memory_mb\":512}}");
	ck_assert_msg(o != NULL, "%s", reason);
	ck_assert_str_eq(json_string_value(json_array_get(
				 json_object_get(json_object_get(o, "sandbox"), "read"), 0)),
			 "/srv/a");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(o, "sandbox"),
							    "max_processes")),
			 8);
	json_decref(o);
	/* absent: absent (the executor's defaults apply) */
	o = norm("{\"command\":\"x\"}");
	ck_assert_ptr_null(json_object_get(o, "sandbox"));
	json_decref(o);
	expect_fail("{\"command\":\"x\",\"sandbox\":\"maybe\"}", "\"off\", \"on\" or a table");
	expect_fail("{\"command\":\"x\",\"sandbox\":{\"paths\":[]}}",
		    "'sandbox': unknown field 'paths'");
	expect_fail("{\"command\":\"x\",\"sandbox\":{\"read\":[\"rel\"]}}",
		    "must be an absolute path");
	expect_fail("{\"command\":\"x\",\"sandbox\":{\"read\":[\"/a/../b\"]}}", "without '..'");
	expect_fail("{\"command\":\"x\",\"sandbox\":{\"max_processes\":0}}",
		    "'sandbox.max_processes' must be an integer from 1");
	expect_fail("{\"command\":\"x\",\"network\":\"no\"}", "'network' must be true or false");
	expect_fail("{\"url\":\"http://h/\",\"sandbox\":\"off\"}", "not valid for an http server");
}
END_TEST

/* In a plugin, relative sandbox paths are resolved in the root and must
 * stay there; absolute ones are left to the executor's --sandbox-allow. */
START_TEST(test_plugin_sandbox_paths)
{
	_cleanup_free_ char *root = make_root();
	_cleanup_free_ char *sub = xasprintf("%s/cache", root);
	_cleanup_free_ char *link = xasprintf("%s/out", root);
	struct mcpcfg_ctx ctx = { .from_plugin = true, .environment_id = "local",
				  .environment_is_local = true, .root = root };
	json_t *o, *box;

	ck_assert_int_eq(mkdir(sub, 0755), 0);
	ck_assert_int_eq(symlink("/tmp", link), 0);
	o = norm_ctx("srv", "{\"command\":\"x\",\"sandbox\":{\"write\":[\"./cache\"],"
			    "\"read\":[\"/usr/share\"]}}", &ctx, NULL);
	ck_assert_msg(o != NULL, "%s", reason);
	box = json_object_get(o, "sandbox");
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(box, "write"), 0)), sub);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(box, "read"), 0)),
			 "/usr/share");
	json_decref(o);
	expect_fail_ctx("{\"command\":\"x\",\"sandbox\":{\"read\":[\"./out\"]}}", &ctx,
			"does not resolve inside the plugin root");
	expect_fail_ctx("{\"command\":\"x\",\"sandbox\":{\"write\":[\"../x\"]}}", &ctx,
			"without '..'");
	rm_rf(root);
}
END_TEST

static Suite *mcpcfg_suite(void)
{
	Suite *s = suite_create("mcpcfg");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_name_rules);
	tcase_add_test(tc, test_path_within);
	tcase_add_test(tc, test_stdio_defaults);
	tcase_add_test(tc, test_http_defaults);
	tcase_add_test(tc, test_golden_encoding);
	tcase_add_test(tc, test_transport_choice);
	tcase_add_test(tc, test_type_field);
	tcase_add_test(tc, test_unknown_fields);
	tcase_add_test(tc, test_stdio_fields);
	tcase_add_test(tc, test_env_vars);
	tcase_add_test(tc, test_http_fields);
	tcase_add_test(tc, test_timeouts);
	tcase_add_test(tc, test_common_fields);
	tcase_add_test(tc, test_bounds);
	tcase_add_test(tc, test_input_untouched);
	tcase_add_test(tc, test_reason_buffer);
	tcase_add_test(tc, test_plugin_environment);
	tcase_add_test(tc, test_plugin_env_vars_local);
	tcase_add_test(tc, test_plugin_cwd);
	tcase_add_test(tc, test_sandbox_keys);
	tcase_add_test(tc, test_plugin_sandbox_paths);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(mcpcfg_suite)
