/* test_plugin.c - resolving plugin roots (fixtures in tests/fixtures/plugins,
 * symlink and size cases built in a temporary directory). Needs
 * TANDEM_FIXTURES = path to tests/fixtures. */
#include "plugin.h"
#include "testmain.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static char reason[512];

static const struct plugin_opts local_opts = {
	.environment_id = "local",
	.environment_is_local = true,
};

static const struct plugin_opts remote_opts = {
	.environment_id = "e1",
	.environment_is_local = false,
};

/* Canonical path of fixture plugins/<name>; the test fails when
 * TANDEM_FIXTURES is not set. */
static char *fixture(const char *name)
{
	const char *dir = getenv("TANDEM_FIXTURES");
	_cleanup_free_ char *p = NULL;
	char real[PATH_MAX];

	if (!dir || !*dir)
		ck_abort_msg("TANDEM_FIXTURES is not set: point it at "
			     "tests/fixtures");
	p = xasprintf("%s/plugins/%s", dir, name);
	ck_assert_msg(realpath(p, real) != NULL, "fixture %s: %s", p,
		      strerror(errno));
	return xstrdup(real);
}

static int resolve(const struct plugin_opts *o, const char *path, json_t **out)
{
	json_t *sentinel = (json_t *)&reason; /* must survive a failure */
	int r;

	*out = sentinel;
	reason[0] = '\0';
	r = plugin_resolve(o, "root-1", path, out, reason, sizeof(reason));
	if (r < 0)
		ck_assert_msg(*out == sentinel, "*out written on failure");
	else
		ck_assert_msg(json_is_object(*out), "no result object");
	return r;
}

static json_t *resolve_ok(const struct plugin_opts *o, const char *path)
{
	json_t *out;
	int r = resolve(o, path, &out);

	ck_assert_msg(r == 0, "resolve %s: %d %s", path, r, reason);
	return out;
}

static void expect_fail(const struct plugin_opts *o, const char *path,
			int err, const char *needle)
{
	json_t *out;
	int r = resolve(o, path, &out);

	ck_assert_msg(r == err, "resolve %s: got %d (%s), want %d", path, r,
		      reason, err);
	ck_assert_msg(strstr(reason, needle) != NULL,
		      "reason '%s' lacks '%s'", reason, needle);
}

static const char *str_at(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	ck_assert_msg(json_is_string(v), "'%s' is not a string", key);
	return json_string_value(v);
}

static size_t list_size(json_t *res, const char *key)
{
	json_t *a = json_object_get(res, key);

	ck_assert_msg(json_is_array(a), "'%s' is not an array", key);
	return json_array_size(a);
}

/* The entry called name in res[list], or NULL. */
static json_t *entry(json_t *res, const char *list, const char *name)
{
	json_t *e;
	size_t i;

	json_array_foreach(json_object_get(res, list), i, e)
		if (!strcmp(str_at(e, "name"), name))
			return e;
	return NULL;
}

static json_t *server(json_t *res, const char *name)
{
	json_t *s = entry(res, "servers", name);

	ck_assert_msg(s != NULL, "server '%s' missing", name);
	return s;
}

static const char *invalid_reason(json_t *res, const char *name)
{
	json_t *e = entry(res, "invalid", name);

	ck_assert_msg(e != NULL, "no invalid entry for '%s'", name);
	return str_at(e, "reason");
}

static bool has_warning(json_t *res, const char *needle)
{
	json_t *w;
	size_t i;

	json_array_foreach(json_object_get(res, "warnings"), i, w)
		if (strstr(json_string_value(w), needle))
			return true;
	return false;
}

/* Temporary trees. */

static char *make_tmp(void)
{
	char tmpl[] = "/tmp/plugin-test-XXXXXX";
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

/* Writes dir/rel, creating the directories on the way. */
static void put(const char *dir, const char *rel, const char *text)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, rel);
	FILE *f;

	for (char *p = path + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		ck_assert(mkdir(path, 0755) == 0 || errno == EEXIST);
		*p = '/';
	}
	f = fopen(path, "w");
	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	fputs(text, f);
	fclose(f);
}

static void link_at(const char *target, const char *dir, const char *rel)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, rel);

	ck_assert_msg(symlink(target, path) == 0, "symlink %s: %s", path,
		      strerror(errno));
}

/* Fixture trees. */

START_TEST(test_codex_manifest_with_file)
{
	_cleanup_free_ char *root = fixture("codex-ref");
	json_t *res = resolve_ok(&remote_opts, root), *echo, *docs, *vars;

	ck_assert_str_eq(str_at(res, "root_id"), "root-1");
	ck_assert_str_eq(str_at(res, "path"), root);
	ck_assert(json_is_true(json_object_get(res, "is_plugin")));
	/* .codex-plugin wins over .claude-plugin. */
	ck_assert_str_eq(str_at(res, "name"), "codex-ref");
	ck_assert_str_eq(str_at(res, "version"), "1.2.0");
	ck_assert_str_eq(str_at(res, "display_name"), "Codex Ref");
	ck_assert_str_eq(str_at(res, "description"),
			 "Codex manifest that names its server file");
	ck_assert_ptr_nonnull(strstr(str_at(res, "manifest_path"),
				     "/codex-ref/.codex-plugin/plugin.json"));
	/* The named file is used, the root .mcp.json is not. */
	ck_assert_int_eq(list_size(res, "servers"), 2);
	ck_assert_ptr_null(entry(res, "servers", "not-used"));
	ck_assert_int_eq(list_size(res, "invalid"), 0);
	ck_assert_int_eq(list_size(res, "warnings"), 0);

	echo = server(res, "echo");
	ck_assert_str_eq(str_at(echo, "transport"), "stdio");
	ck_assert_str_eq(str_at(echo, "command"), "./bin/echo-server");
	ck_assert_str_eq(str_at(echo, "cwd"), root);
	ck_assert_str_eq(str_at(echo, "environment_id"), "e1");
	ck_assert(json_number_value(json_object_get(
			  echo, "startup_timeout_sec")) == 2.5);
	vars = json_object_get(echo, "env_vars");
	ck_assert_int_eq(json_array_size(vars), 2);
	ck_assert_str_eq(str_at(json_array_get(vars, 0), "name"), "HOME_TOKEN");
	ck_assert_str_eq(str_at(json_array_get(vars, 0), "source"), "remote");

	docs = server(res, "docs");
	ck_assert_str_eq(str_at(docs, "transport"), "http");
	ck_assert_str_eq(str_at(docs, "url"), "https://docs.example.com/mcp");
	ck_assert_str_eq(str_at(docs, "bearer_token_env_var"), "DOCS_TOKEN");
	ck_assert_ptr_null(json_object_get(docs, "cwd"));
	json_decref(res);
}
END_TEST

START_TEST(test_claude_manifest_inline)
{
	_cleanup_free_ char *root = fixture("claude-inline");
	_cleanup_free_ char *srv = xasprintf("%s/srv", root);
	json_t *res = resolve_ok(&local_opts, root), *notes;

	ck_assert_str_eq(str_at(res, "name"), "claude-inline");
	ck_assert_str_eq(str_at(res, "display_name"), "Claude Inline");
	ck_assert_ptr_nonnull(strstr(str_at(res, "manifest_path"),
				     "/.claude-plugin/plugin.json"));
	ck_assert_int_eq(list_size(res, "servers"), 1);
	notes = server(res, "notes");
	ck_assert_str_eq(str_at(notes, "cwd"), srv);
	ck_assert_str_eq(str_at(notes, "oauth_client_id"), "notes-client");
	ck_assert_str_eq(str_at(notes, "environment_id"), "local");
	json_decref(res);
}
END_TEST

START_TEST(test_default_mcp_json_wrapped)
{
	_cleanup_free_ char *root = fixture("default-wrapped");
	json_t *res = resolve_ok(&local_opts, root);

	ck_assert_int_eq(list_size(res, "servers"), 1);
	ck_assert_str_eq(str_at(server(res, "alpha"), "command"),
			 "alpha-server");
	ck_assert_ptr_null(json_object_get(res, "display_name"));
	json_decref(res);
}
END_TEST

START_TEST(test_default_mcp_json_bare)
{
	_cleanup_free_ char *root = fixture("default-bare");
	json_t *res = resolve_ok(&local_opts, root), *list;

	list = json_object_get(res, "servers");
	ck_assert_int_eq(json_array_size(list), 2);
	/* File order is kept. */
	ck_assert_str_eq(str_at(json_array_get(list, 0), "name"), "bare-stdio");
	ck_assert_str_eq(str_at(json_array_get(list, 1), "transport"), "http");
	json_decref(res);
}
END_TEST

START_TEST(test_no_manifest)
{
	_cleanup_free_ char *root = fixture("no-manifest");
	json_t *res = resolve_ok(&local_opts, root);

	ck_assert(json_is_false(json_object_get(res, "is_plugin")));
	ck_assert_str_eq(str_at(res, "path"), root);
	/* Its .mcp.json is not read: not a plugin, no servers. */
	ck_assert_int_eq(list_size(res, "servers"), 0);
	ck_assert_int_eq(list_size(res, "invalid"), 0);
	ck_assert_ptr_null(json_object_get(res, "name"));
	ck_assert_ptr_null(json_object_get(res, "manifest_path"));
	json_decref(res);
}
END_TEST

START_TEST(test_reference_outside_root)
{
	_cleanup_free_ char *root = fixture("outside-ref");

	expect_fail(&local_opts, root, -EINVAL, "'../outside.json' must start "
						"with './'");
}
END_TEST

START_TEST(test_cwd_escape)
{
	_cleanup_free_ char *root = fixture("cwd-escape");
	_cleanup_free_ char *sub = xasprintf("%s/sub", root);
	json_t *res = resolve_ok(&local_opts, root);

	ck_assert_int_eq(list_size(res, "servers"), 2);
	ck_assert_str_eq(str_at(server(res, "inside"), "cwd"), sub);
	ck_assert_str_eq(str_at(server(res, "inside-roundabout"), "cwd"), sub);
	ck_assert_int_eq(list_size(res, "invalid"), 4);
	ck_assert_ptr_nonnull(strstr(invalid_reason(res, "up"),
				     "cwd '../..' leaves the plugin root"));
	ck_assert_ptr_nonnull(strstr(invalid_reason(res, "absolute-outside"),
				     "leaves the plugin root"));
	ck_assert_ptr_nonnull(strstr(invalid_reason(res, "missing"),
				     "does not resolve"));
	ck_assert_ptr_nonnull(strstr(invalid_reason(res, "a-file"),
				     "not a directory"));
	json_decref(res);
}
END_TEST

START_TEST(test_malformed_syntax)
{
	_cleanup_free_ char *root = fixture("malformed-syntax");
	_cleanup_free_ char *where = xasprintf("%s/.mcp.json:3:", root);

	expect_fail(&local_opts, root, -EINVAL, where);
}
END_TEST

START_TEST(test_malformed_shapes)
{
	_cleanup_free_ char *arr = fixture("malformed-array");
	_cleanup_free_ char *man = fixture("malformed-manifest");
	_cleanup_free_ char *typ = fixture("bad-mcpservers-type");
	_cleanup_free_ char *where = xasprintf("%s/.mcp.json: expected", arr);

	expect_fail(&local_opts, arr, -EINVAL, where);
	expect_fail(&local_opts, man, -EINVAL, "must be a JSON object");
	expect_fail(&local_opts, typ, -EINVAL,
		    "'mcpServers' must be a './relative' path or an object");
}
END_TEST

START_TEST(test_mixed_servers)
{
	_cleanup_free_ char *root = fixture("mixed");
	json_t *res = resolve_ok(&remote_opts, root), *list;

	list = json_object_get(res, "servers");
	ck_assert_int_eq(json_array_size(list), 3);
	ck_assert_str_eq(str_at(json_array_get(list, 0), "name"), "good-stdio");
	ck_assert_str_eq(str_at(json_array_get(list, 1), "name"),
			 "declared-env");
	ck_assert_str_eq(str_at(json_array_get(list, 2), "name"), "good_http");
	ck_assert_str_eq(str_at(server(res, "declared-env"), "environment_id"),
			 "e1");
	ck_assert(has_warning(res, "declared environment_id 'elsewhere' "
				   "replaced by the owning environment 'e1'"));

	ck_assert_int_eq(list_size(res, "invalid"), 6);
	ck_assert_ptr_nonnull(strstr(invalid_reason(res, "bad name!"),
				     "invalid server name"));
	ck_assert_ptr_nonnull(strstr(invalid_reason(res, "both"),
				     "both 'command' and 'url'"));
	ck_assert_ptr_nonnull(
		strstr(invalid_reason(res, "stdio-with-headers"),
		       "field 'http_headers' is not valid for a stdio server"));
	ck_assert_ptr_nonnull(strstr(invalid_reason(res, "bad-type"),
				     "type 'sse' is not supported"));
	ck_assert_ptr_nonnull(strstr(invalid_reason(res, "type-mismatch"),
				     "does not match"));
	ck_assert_ptr_nonnull(strstr(invalid_reason(res, "unknown-field"),
				     "unknown field 'colour'"));
	json_decref(res);
}
END_TEST

START_TEST(test_env_vars_local_source)
{
	_cleanup_free_ char *root = fixture("env-local");
	json_t *res = resolve_ok(&remote_opts, root);

	ck_assert_int_eq(list_size(res, "servers"), 1);
	server(res, "wants-remote");
	ck_assert_str_eq(invalid_reason(res, "wants-local"),
			 "env_vars 'SECRET': source 'local' is not allowed "
			 "for a plugin on environment 'e1'");
	json_decref(res);

	res = resolve_ok(&local_opts, root);
	ck_assert_int_eq(list_size(res, "servers"), 2);
	ck_assert_int_eq(list_size(res, "invalid"), 0);
	json_decref(res);
}
END_TEST

/* The root argument. */

START_TEST(test_root_errors)
{
	_cleanup_free_ char *file = fixture("outside.json");
	_cleanup_free_ char *dir = fixture("no-manifest");
	_cleanup_free_ char *gone = xasprintf("%s/does-not-exist", dir);
	json_t *out;

	expect_fail(&local_opts, gone, -ENOENT, "does-not-exist");
	expect_fail(&local_opts, file, -ENOTDIR, "is not a directory");
	expect_fail(&local_opts, "relative/path", -EINVAL, "must be absolute");
	expect_fail(&local_opts, "", -EINVAL, "must be absolute");
	ck_assert_int_eq(plugin_resolve(&local_opts, "", dir, &out, reason,
					sizeof(reason)),
			 -EINVAL);
	ck_assert_int_eq(plugin_resolve(&local_opts, NULL, dir, &out,
					reason, sizeof(reason)),
			 -EINVAL);
	ck_assert_int_eq(plugin_resolve(&local_opts, "r", NULL, &out, reason,
					sizeof(reason)),
			 -EINVAL);
}
END_TEST

START_TEST(test_file_uri)
{
	_cleanup_free_ char *tmp = make_tmp();
	_cleanup_free_ char *spaced = xasprintf("%s/with space", tmp);
	_cleanup_free_ char *uri = NULL;
	json_t *res;

	put(spaced, ".codex-plugin/plugin.json", "{\"name\":\"spaced\"}");
	uri = xasprintf("file://%s/with%%20space", tmp);
	res = resolve_ok(&local_opts, uri);
	ck_assert_str_eq(str_at(res, "path"), spaced);
	ck_assert_str_eq(str_at(res, "name"), "spaced");
	json_decref(res);
	free(uri);
	uri = xasprintf("file://LocalHost%s/with%%20space", tmp);
	json_decref(resolve_ok(&local_opts, uri));
	free(uri);
	uri = xasprintf("file:%s/with%%20space", tmp);
	json_decref(resolve_ok(&local_opts, uri));
	free(uri);
	uri = xasprintf("file://example.com%s", tmp);
	expect_fail(&local_opts, uri, -EINVAL, "host other than localhost");
	free(uri);
	uri = xasprintf("file://%s/with%%2", tmp);
	expect_fail(&local_opts, uri, -EINVAL, "bad percent escape");
	free(uri);
	uri = xasprintf("file://%s/with%%00space", tmp);
	expect_fail(&local_opts, uri, -EINVAL, "bad percent escape");
	free(uri);
	uri = xasprintf("file://%s?x=1", tmp);
	expect_fail(&local_opts, uri, -EINVAL, "query or fragment");
	expect_fail(&local_opts, "file:relative", -EINVAL, "no absolute path");
	rm_rf(tmp);
}
END_TEST

START_TEST(test_allow_list)
{
	_cleanup_free_ char *tmp = make_tmp();
	_cleanup_free_ char *ab = xasprintf("%s/ab", tmp);
	_cleanup_free_ char *abc = xasprintf("%s/abc", tmp);
	_cleanup_free_ char *sub = xasprintf("%s/ab/sub", tmp);
	_cleanup_free_ char *via_dotdot = xasprintf("%s/ab/../abc", tmp);
	_cleanup_free_ char *via_link = xasprintf("%s/ab/to-abc", tmp);
	_cleanup_free_ char *gone_out = xasprintf("%s/abc/gone", tmp);
	_cleanup_free_ char *gone_in = xasprintf("%s/ab/gone", tmp);
	const char *allow[] = { ab };
	struct plugin_opts o = local_opts;

	o.allow_prefixes = allow;
	o.n_allow = 1;
	put(tmp, "ab/sub/x", "");
	put(tmp, "abc/x", "");
	link_at(abc, ab, "to-abc");

	json_decref(resolve_ok(&o, ab));
	json_decref(resolve_ok(&o, sub));
	expect_fail(&o, abc, -EACCES, "outside the allowed roots");
	expect_fail(&o, via_dotdot, -EACCES, "outside the allowed roots");
	/* Canonical paths are compared: a symlink out is refused. */
	expect_fail(&o, via_link, -EACCES, "outside the allowed roots");
	/* Outside the list, a missing path looks like any refused one. */
	expect_fail(&o, gone_out, -EACCES, "outside the allowed roots");
	expect_fail(&o, gone_in, -ENOENT, "No such file");
	rm_rf(tmp);
}
END_TEST

/* Files inside a root. */

START_TEST(test_symlink_escape)
{
	_cleanup_free_ char *tmp = make_tmp();
	_cleanup_free_ char *outside = fixture("outside.json");
	_cleanup_free_ char *named = xasprintf("%s/named", tmp);
	_cleanup_free_ char *dflt = xasprintf("%s/default", tmp);
	_cleanup_free_ char *inside = xasprintf("%s/inside", tmp);
	json_t *res;

	/* A named file that is a symlink out of the root. */
	put(named, ".codex-plugin/plugin.json",
	    "{\"mcpServers\":\"./link.json\"}");
	link_at(outside, named, "link.json");
	expect_fail(&local_opts, named, -EINVAL,
		    "link.json resolves outside the plugin root");
	/* The default .mcp.json, same trick. */
	put(dflt, ".codex-plugin/plugin.json", "{}");
	link_at(outside, dflt, ".mcp.json");
	expect_fail(&local_opts, dflt, -EINVAL,
		    ".mcp.json resolves outside the plugin root");
	/* A symlink that stays inside is fine. */
	put(inside, ".codex-plugin/plugin.json",
	    "{\"mcpServers\":\"./link.json\"}");
	put(inside, "real/servers.json", "{\"in\":{\"command\":\"x\"}}");
	link_at("real/servers.json", inside, "link.json");
	res = resolve_ok(&local_opts, inside);
	server(res, "in");
	json_decref(res);
	rm_rf(tmp);
}
END_TEST

START_TEST(test_reference_rules)
{
	_cleanup_free_ char *tmp = make_tmp();
	json_t *res;

	put(tmp, "mcp.json", "{\"a\":{\"command\":\"x\"}}");
	put(tmp, ".codex-plugin/plugin.json", "{\"mcpServers\":\"mcp.json\"}");
	expect_fail(&local_opts, tmp, -EINVAL, "must start with './'");
	put(tmp, ".codex-plugin/plugin.json",
	    "{\"mcpServers\":\"./x/../mcp.json\"}");
	expect_fail(&local_opts, tmp, -EINVAL, "must not contain '..'");
	put(tmp, ".codex-plugin/plugin.json",
	    "{\"mcpServers\":\"./missing.json\"}");
	expect_fail(&local_opts, tmp, -EINVAL, "missing.json does not exist");
	put(tmp, ".codex-plugin/plugin.json", "{\"mcpServers\":\"./\"}");
	expect_fail(&local_opts, tmp, -EINVAL, "is not a regular file");
	put(tmp, ".codex-plugin/plugin.json",
	    "{\"mcpServers\":\"./mcp.json\"}");
	res = resolve_ok(&local_opts, tmp);
	server(res, "a");
	json_decref(res);
	/* A missing default file is just no servers. */
	put(tmp, ".codex-plugin/plugin.json", "{\"name\":\"n\"}");
	res = resolve_ok(&local_opts, tmp);
	ck_assert(json_is_true(json_object_get(res, "is_plugin")));
	ck_assert_int_eq(list_size(res, "servers"), 0);
	json_decref(res);
	rm_rf(tmp);
}
END_TEST

START_TEST(test_manifest_fields)
{
	_cleanup_free_ char *tmp = make_tmp();
	json_t *res;

	put(tmp, ".codex-plugin/plugin.json",
	    "{\"name\":\"n\",\"displayName\":\"Top\","
	    "\"interface\":{\"displayName\":\"Nested\"}}");
	res = resolve_ok(&local_opts, tmp);
	ck_assert_str_eq(str_at(res, "display_name"), "Top");
	json_decref(res);
	put(tmp, ".codex-plugin/plugin.json", "{\"name\":7}");
	expect_fail(&local_opts, tmp, -EINVAL, "'name' must be a string");
	put(tmp, ".codex-plugin/plugin.json", "{\"interface\":[]}");
	expect_fail(&local_opts, tmp, -EINVAL, "'interface' must be an object");
	put(tmp, ".codex-plugin/plugin.json", "{\"name\":\"a\",\"name\":\"b\"}");
	expect_fail(&local_opts, tmp, -EINVAL, "duplicate object key");
	rm_rf(tmp);
}
END_TEST

START_TEST(test_wrapped_extra_keys)
{
	_cleanup_free_ char *tmp = make_tmp();
	json_t *res;

	put(tmp, ".claude-plugin/plugin.json", "{}");
	put(tmp, ".mcp.json",
	    "{\"mcpServers\":{\"a\":{\"command\":\"x\"}},\"extra\":1}");
	res = resolve_ok(&local_opts, tmp);
	server(res, "a");
	ck_assert(has_warning(res, "ignoring top-level key 'extra'"));
	json_decref(res);
	put(tmp, ".mcp.json", "{\"mcpServers\":[]}");
	expect_fail(&local_opts, tmp, -EINVAL, "'mcpServers' must be an object");
	rm_rf(tmp);
}
END_TEST

START_TEST(test_file_limits)
{
	_cleanup_free_ char *tmp = make_tmp();
	_cleanup_free_ char *fifo = xasprintf("%s/.mcp.json", tmp);
	struct plugin_opts o = local_opts;
	json_t *res;

	put(tmp, ".codex-plugin/plugin.json", "{}");
	put(tmp, ".mcp.json", "{\"a\":{\"command\":\"a-rather-long-command\"}}");
	o.max_file_bytes = 32;
	expect_fail(&o, tmp, -EINVAL, "is larger than 32 bytes");
	o.max_file_bytes = 64;
	res = resolve_ok(&o, tmp);
	server(res, "a");
	json_decref(res);
	/* A FIFO is refused, not waited on. */
	ck_assert_int_eq(unlink(fifo), 0);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	expect_fail(&local_opts, tmp, -EINVAL, "is not a regular file");
	rm_rf(tmp);
}
END_TEST

START_TEST(test_server_limit)
{
	_cleanup_free_ char *tmp = make_tmp();
	json_t *map = json_object(), *res;
	char *text;

	for (int i = 0; i < PLUGIN_MAX_SERVERS + 44; i++) {
		char name[16];

		snprintf(name, sizeof(name), "s%d", i);
		json_object_set_new(map, name, json_pack("{s:s}", "command",
							 "x"));
	}
	text = json_dumps(map, JSON_COMPACT);
	put(tmp, ".codex-plugin/plugin.json", "{}");
	put(tmp, ".mcp.json", text);
	res = resolve_ok(&local_opts, tmp);
	ck_assert_int_eq(list_size(res, "servers"), PLUGIN_MAX_SERVERS);
	ck_assert(has_warning(res, "44 servers beyond the limit of 256"));
	json_decref(res);
	json_decref(map);
	free(text);
	rm_rf(tmp);
}
END_TEST

static Suite *plugin_suite(void)
{
	Suite *s = suite_create("plugin");
	TCase *fx = tcase_create("fixtures");
	TCase *root = tcase_create("root");
	TCase *files = tcase_create("files");

	tcase_add_test(fx, test_codex_manifest_with_file);
	tcase_add_test(fx, test_claude_manifest_inline);
	tcase_add_test(fx, test_default_mcp_json_wrapped);
	tcase_add_test(fx, test_default_mcp_json_bare);
	tcase_add_test(fx, test_no_manifest);
	tcase_add_test(fx, test_reference_outside_root);
	tcase_add_test(fx, test_cwd_escape);
	tcase_add_test(fx, test_malformed_syntax);
	tcase_add_test(fx, test_malformed_shapes);
	tcase_add_test(fx, test_mixed_servers);
	tcase_add_test(fx, test_env_vars_local_source);
	tcase_add_test(root, test_root_errors);
	tcase_add_test(root, test_file_uri);
	tcase_add_test(root, test_allow_list);
	tcase_add_test(files, test_symlink_escape);
	tcase_add_test(files, test_reference_rules);
	tcase_add_test(files, test_manifest_fields);
	tcase_add_test(files, test_wrapped_extra_keys);
	tcase_add_test(files, test_file_limits);
	tcase_add_test(files, test_server_limit);
	suite_add_tcase(s, fx);
	suite_add_tcase(s, root);
	suite_add_tcase(s, files);
	return s;
}

TEST_MAIN(plugin_suite)
