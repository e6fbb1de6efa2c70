/* test_config.c - <home>/config.toml: defaults, the committed example homes
 * (tests/fixtures/homes, found through TANDEM_FIXTURES), fatal errors with
 * their exact positions, model providers, and MCP servers where one bad
 * entry never hides the good ones. Error cases write their config.toml
 * into a fresh temporary home. */
#include "config.h"
#include "testhome.h"
#include "testmain.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Writes the file under test into the temporary home. */
static void write_config(const char *text)
{
	home_write("config.toml", text);
}

static struct config *load_home(const char *dir)
{
	struct config *c = NULL;
	char err[512] = "";
	int r = config_load(dir, &c, err, sizeof(err));

	ck_assert_msg(r == 0, "config_load(%s) = %d: %s", dir, r, err);
	ck_assert_ptr_nonnull(c);
	return c;
}

static struct config *load_ok(const char *text)
{
	write_config(text);
	return load_home(home);
}

/* Loading text must fail with "<home>/config.toml:LINE:COL: ...reason...". */
static void load_fails(const char *text, int line, int col, const char *reason)
{
	struct config *c = (struct config *)0x1; /* must stay untouched */
	char err[512] = "", prefix[128];
	int r;

	write_config(text);
	r = config_load(home, &c, err, sizeof(err));
	ck_assert_msg(r == -EINVAL, "%s: returned %d (%s), expected -EINVAL", text, r, err);
	ck_assert_ptr_eq(c, (struct config *)0x1);
	snprintf(prefix, sizeof(prefix), "%s/config.toml:%d:%d: ", home, line, col);
	ck_assert_msg(!strncmp(err, prefix, strlen(prefix)), "%s: error \"%s\", expected at %d:%d",
		      text, err, line, col);
	ck_assert_msg(strstr(err, reason), "%s: error \"%s\" lacks \"%s\"", text, err, reason);
}

static void assert_json(json_t *v, const char *expected)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, expected);
	free(s);
}

static const char *provider_str(struct config *c, const char *id, const char *key)
{
	json_t *p = json_object_get(c->model_providers, id);

	ck_assert_msg(p != NULL, "no provider %s", id);
	return json_string_value(json_object_get(p, key));
}

static json_int_t provider_int(struct config *c, const char *id, const char *key)
{
	json_t *v = json_object_get(json_object_get(c->model_providers, id), key);

	ck_assert_msg(json_is_integer(v), "%s.%s is not an integer", id, key);
	return json_integer_value(v);
}

#define OPENAI_BUILTIN                                                                            \
	"{\"name\":\"OpenAI\",\"base_url\":\"https://api.openai.com/v1\","                        \
	"\"wire_api\":\"responses\",\"env_key\":\"OPENAI_API_KEY\","                              \
	"\"requires_openai_auth\":true,\"http_headers\":{},"                                      \
	"\"env_http_headers\":{\"OpenAI-Organization\":\"OPENAI_ORGANIZATION\","                  \
	"\"OpenAI-Project\":\"OPENAI_PROJECT\"},\"query_params\":{},"                             \
	"\"request_max_retries\":4,\"stream_max_retries\":5,\"stream_idle_timeout_ms\":300000}"

static void assert_defaults(struct config *c)
{
	ck_assert_ptr_null(c->model);
	ck_assert_str_eq(c->model_provider, "openai");
	ck_assert_uint_eq(json_object_size(c->model_providers), 1);
	assert_json(json_object_get(c->model_providers, "openai"), OPENAI_BUILTIN);
	ck_assert_ptr_eq(config_provider(c), json_object_get(c->model_providers, "openai"));
	ck_assert_str_eq(c->chatgpt_base_url, "https://chatgpt.com/backend-api/");
	ck_assert_ptr_null(c->instructions);
	assert_json(c->mcp_servers, "{}");
	assert_json(c->invalid_servers, "[]");
	assert_json(c->features, "{}");
	assert_json(c->warnings, "[]");
	assert_json(c->doc, "{}"); /* config/read's user layer: empty */
}

START_TEST(test_missing_file)
{
	struct config *c = load_home(home);

	ck_assert_ptr_null(c->path);
	assert_defaults(c);
	config_free(c);
}
END_TEST

START_TEST(test_empty_file)
{
	_cleanup_free_ char *path = xasprintf("%s/config.toml", home);
	struct config *c = load_ok("# nothing yet\n");

	ck_assert_str_eq(c->path, path);
	assert_defaults(c);
	ck_assert_ptr_null(config_free(c));
	ck_assert_ptr_null(config_free(NULL));
}
END_TEST

START_TEST(test_bad_home_and_unreadable)
{
	struct config *c = (struct config *)0x1;
	_cleanup_free_ char *dir = xasprintf("%s/config.toml", home);
	char err[512] = "";

	ck_assert_int_eq(config_load(NULL, &c, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(config_load("", &c, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_eq(c, (struct config *)0x1);
	/* A config.toml that is a directory is not "absent". */
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(config_load(home, &c, err, sizeof(err)), -EISDIR);
	ck_assert_ptr_eq(c, (struct config *)0x1);
	ck_assert_msg(!strncmp(err, dir, strlen(dir)) && err[strlen(dir)] == ':', "%s", err);
	/* No err buffer: still fails cleanly. */
	ck_assert_int_eq(config_load(home, &c, NULL, 0), -EISDIR);
}
END_TEST

START_TEST(test_syntax_error)
{
	load_fails("model = \"a\"\nbad = \n", 2, 7, "");
	load_fails("[mcp_servers.a]\ncommand = \"x\"\n[mcp_servers.a]\n", 3, 14, "");
}
END_TEST

START_TEST(test_full_fixture)
{
	_cleanup_free_ char *dir = fixture_home("full");
	struct config *c = load_home(dir);
	json_t *docs, *v;
	const char *name;
	const char *order[] = { "docs", "tracker", "off" };
	size_t i = 0;

	ck_assert_ptr_nonnull(strstr(c->path, "homes/full/config.toml"));
	ck_assert_str_eq(c->model, "gpt-5.1-codex");
	ck_assert_str_eq(c->model_provider, "gateway");
	ck_assert_str_eq(c->instructions, "Answer in English.");
	assert_json(config_provider(c),
		    "{\"name\":\"Corporate gateway\",\"base_url\":\"https://llm.example.com/v1\","
		    "\"wire_api\":\"responses\",\"env_key\":\"GATEWAY_API_KEY\","
		    "\"requires_openai_auth\":false,\"http_headers\":{\"X-Team\":\"agents\"},"
		    "\"env_http_headers\":{\"X-Project\":\"GATEWAY_PROJECT\"},"
		    "\"query_params\":{\"api-version\":\"2025-04-01\"},\"request_max_retries\":2,"
		    "\"stream_max_retries\":5,\"stream_idle_timeout_ms\":60000}");
	assert_json(json_object_get(c->model_providers, "openai"), OPENAI_BUILTIN);

	/* File order, the invalid one left out. */
	json_object_foreach (c->mcp_servers, name, v) {
		ck_assert_uint_lt(i, 3);
		ck_assert_str_eq(name, order[i++]);
	}
	ck_assert_uint_eq(i, 3);
	docs = json_object_get(c->mcp_servers, "docs");
	assert_json(docs, "{\"name\":\"docs\",\"transport\":\"stdio\",\"command\":\"docs-mcp\","
			  "\"args\":[\"--stdio\",\"\"],\"env\":{\"DOCS_ROOT\":\"/srv/docs\"},"
			  "\"env_vars\":[{\"name\":\"DOCS_TOKEN\",\"source\":\"remote\"},"
			  "{\"name\":\"HOME\",\"source\":\"local\"}],\"environment_id\":\"local\","
			  "\"startup_timeout_sec\":12.5,\"tool_timeout_sec\":300.0,"
			  "\"enabled\":true,\"required\":false}");
	v = json_object_get(c->mcp_servers, "tracker");
	ck_assert_str_eq(json_string_value(json_object_get(v, "environment_id")), "build");
	ck_assert_str_eq(json_string_value(json_object_get(v, "transport")), "http");
	assert_json(json_object_get(v, "enabled_tools"), "[\"search\",\"open\"]");
	v = json_object_get(c->mcp_servers, "off");
	ck_assert(json_is_false(json_object_get(v, "enabled")));
	assert_json(c->invalid_servers,
		    "[{\"name\":\"broken\",\"reason\":\"config.toml:33:1: field "
		    "'bearer_token_env_var' is not valid for a stdio server\"}]");

	assert_json(c->features, "{\"apps\":true,\"apps_mcp_path_override\":false}");
	ck_assert(config_feature(c, "apps"));
	ck_assert(!config_feature(c, "apps_mcp_path_override"));
	ck_assert(!config_feature(c, "absent"));
	assert_json(c->warnings, "[]"); /* approval_policy is a Codex key */
	config_free(c);
}
END_TEST

START_TEST(test_codex_fixture)
{
	_cleanup_free_ char *dir = fixture_home("codex");
	struct config *c = load_home(dir);
	json_t *github;

	ck_assert_str_eq(c->model, "gpt-5.2-codex");
	ck_assert_str_eq(c->model_provider, "openai");
	/* openai_base_url moves only the built-in's base_url. */
	ck_assert_str_eq(provider_str(c, "openai", "base_url"), "https://proxy.example.com/v1");
	ck_assert_str_eq(provider_str(c, "openai", "name"), "OpenAI");
	ck_assert_str_eq(provider_str(c, "openai", "env_key"), "OPENAI_API_KEY");
	/* Dozens of Codex keys and tables, one unknown key. */
	assert_json(c->warnings, "[\"config.toml:14:1: unknown key 'colour_scheme'\"]");
	ck_assert_uint_eq(json_object_size(c->mcp_servers), 2);
	github = json_object_get(c->mcp_servers, "github");
	ck_assert_str_eq(json_string_value(json_object_get(github, "bearer_token_env_var")),
			 "GITHUB_PAT");
	assert_json(json_object_get(json_object_get(c->mcp_servers, "fs"), "args"),
		    "[\"-y\",\"@modelcontextprotocol/server-filesystem\",\"/home/me/src\"]");
	assert_json(c->invalid_servers, "[]");
	config_free(c);
}
END_TEST

struct bad {
	const char *text;
	int line, col;
	const char *reason;
};

static void run_bad(const struct bad *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		load_fails(b[i].text, b[i].line, b[i].col, b[i].reason);
}

START_TEST(test_top_level_errors)
{
	static const struct bad b[] = {
		{ "model = 5", 1, 1, "field 'model' must be a string" },
		{ "\nmodel_provider = true", 2, 1, "field 'model_provider' must be a string" },
		{ "model = \"\"", 1, 1, "'model' must not be empty" },
		{ "model_providers = 3", 1, 1, "'model_providers' must be a table" },
		{ "mcp_servers = [1]", 1, 1, "'mcp_servers' must be a table" },
		{ "features = \"apps\"", 1, 1, "'features' must be a table" },
		{ "chatgpt_base_url = \"chatgpt.com\"", 1, 1,
		  "'chatgpt_base_url' must be an http:// or https:// URL" },
		{ "  openai_base_url = \"https:// x\"", 1, 3, "'openai_base_url' must be an http" },
		{ "openai_base_url = 1", 1, 1, "field 'openai_base_url' must be a string" },
		{ "instructions = [\"a\"]", 1, 1, "field 'instructions' must be a string" },
		{ "developer_instructions = 1", 1, 1, "field 'developer_instructions' must be" },
		{ "model = \"m\"\n  model_provider = \"azure\"\n", 2, 3,
		  "model_provider 'azure' names no provider" },
	};

	run_bad(b, ARRAY_SIZE(b));
}
END_TEST

START_TEST(test_provider_errors)
{
	static const struct bad b[] = {
		{ "[model_providers.p]\nbase_url = \"ftp://x\"", 2, 1,
		  "'base_url' must be an http:// or https:// URL" },
		{ "[model_providers.p]\nbase_url = \"https://\"", 2, 1, "with a host" },
		{ "[model_providers.p]\nwire_api = \"chat\"", 2, 1,
		  "tandem speaks only the Responses API" },
		{ "[model_providers.p]\nwire_api = \"grpc\"", 2, 1,
		  "wire_api 'grpc' is not supported" },
		{ "[model_providers.p]\nrequest_max_retries = -1", 2, 1,
		  "field 'request_max_retries' must be an integer between 0 and 100" },
		{ "[model_providers.p]\nstream_max_retries = 101", 2, 1,
		  "field 'stream_max_retries' must be an integer between 0 and 100" },
		{ "[model_providers.p]\nrequest_max_retries = 1.5", 2, 1, "must be an integer" },
		{ "[model_providers.p]\nstream_idle_timeout_ms = 0", 2, 1,
		  "between 1 and 86400000" },
		{ "[model_providers.p]\nenv_key = \"MY-KEY\"", 2, 1,
		  "'env_key' must be a variable name" },
		{ "[model_providers.p]\nname = \"\"", 2, 1, "'name' must be a non-empty name" },
		{ "[model_providers.p]\nrequires_openai_auth = \"yes\"", 2, 1,
		  "must be a boolean" },
		{ "[model_providers.p]\nhttp_headers = { \"Bad Header\" = \"v\" }", 2, 18,
		  "'http_headers' entry 'Bad Header': not a header name" },
		{ "[model_providers.p]\nhttp_headers = { X = \"a\\r\\nb\" }", 2, 18,
		  "'http_headers' entry 'X': the value contains CR or LF" },
		{ "[model_providers.p]\nhttp_headers = { X = 1 }", 2, 1,
		  "field 'http_headers' must be an object whose values are strings" },
		{ "[model_providers.p]\nenv_http_headers = { X-A = \"not-a-var\" }", 2, 22,
		  "'env_http_headers' entry 'X-A': the value is not a variable name" },
		{ "[model_providers.p]\nquery_params = { \"\" = \"v\" }", 2, 18,
		  "'query_params' entry '': the name is empty" },
		{ "[model_providers.p]\nquery_params = [\"a\"]", 2, 1,
		  "field 'query_params' must be" },
		{ "model_providers.p = 5", 1, 17, "model provider 'p' must be a table" },
		{ "[model_providers.\"\"]\nname = \"x\"", 1, 18, "model provider id must be 1-64" },
		/* The provider is checked even when not selected. */
		{ "model_provider = \"openai\"\n[model_providers.q]\nbase_url = \"x\"", 3, 1,
		  "'base_url' must be" },
	};

	run_bad(b, ARRAY_SIZE(b));
}
END_TEST

START_TEST(test_provider_defaults_and_override)
{
	struct config *c = load_ok("model_provider = \"local\"\n"
				   "openai_base_url = \"https://ignored.example/v1\"\n"
				   "[model_providers.openai]\n"
				   "base_url = \"http://localhost:8080/v1\"\n"
				   "request_max_retries = 0\n"
				   "[model_providers.local]\n"
				   "env_key = \"LOCAL_KEY\"\n");
	json_t *local = json_object_get(c->model_providers, "local");

	/* The user's openai table is laid over the built-in. */
	ck_assert_str_eq(provider_str(c, "openai", "base_url"), "http://localhost:8080/v1");
	ck_assert_int_eq(provider_int(c, "openai", "request_max_retries"), 0);
	ck_assert_int_eq(provider_int(c, "openai", "stream_max_retries"), 5);
	ck_assert_str_eq(provider_str(c, "openai", "name"), "OpenAI");
	ck_assert_str_eq(provider_str(c, "openai", "env_key"), "OPENAI_API_KEY");
	ck_assert(json_is_true(json_object_get(json_object_get(c->model_providers, "openai"),
					       "requires_openai_auth")));
	/* A new provider gets Codex's defaults. */
	ck_assert_ptr_eq(config_provider(c), local);
	assert_json(local, "{\"name\":\"local\",\"base_url\":\"https://api.openai.com/v1\","
			   "\"wire_api\":\"responses\",\"env_key\":\"LOCAL_KEY\","
			   "\"requires_openai_auth\":false,\"http_headers\":{},"
			   "\"env_http_headers\":{},\"query_params\":{},\"request_max_retries\":4,"
			   "\"stream_max_retries\":5,\"stream_idle_timeout_ms\":300000}");
	config_free(c);

	c = load_ok("[model_providers.openai]\nname = \"Mine\"\nenv_key = \"MY_KEY\"\n"
		    "http_headers = { version = \"1\" }\n");
	ck_assert_str_eq(provider_str(c, "openai", "name"), "Mine");
	ck_assert_str_eq(provider_str(c, "openai", "env_key"), "MY_KEY");
	ck_assert_str_eq(provider_str(c, "openai", "base_url"), "https://api.openai.com/v1");
	assert_json(json_object_get(json_object_get(c->model_providers, "openai"), "http_headers"),
		    "{\"version\":\"1\"}");
	/* A provider without env_key has none. */
	config_free(c);
	c = load_ok("[model_providers.bare]\nbase_url = \"http://127.0.0.1:1234/v1\"\n");
	ck_assert_ptr_null(json_object_get(json_object_get(c->model_providers, "bare"), "env_key"));
	ck_assert_str_eq(c->model_provider, "openai");
	config_free(c);
}
END_TEST

START_TEST(test_provider_warnings)
{
	struct config *c = load_ok("[model_providers.p]\n"
				   "base_url = \"https://p.example/v1\"\n"
				   "colour = \"red\"\n"
				   "experimental_bearer_token = \"sk-secret\"\n"
				   "env_key_instructions = \"ask ops\"\n"
				   "supports_websockets = true\n");
	json_t *p = json_object_get(c->model_providers, "p");
	char *dump = json_dumps(c->warnings, 0);

	assert_json(c->warnings,
		    "[\"config.toml:3:1: unknown key 'colour' in model provider 'p'\","
		    "\"config.toml:4:1: 'experimental_bearer_token' is not supported by tandem; "
		    "ignored (use env_key)\"]");
	/* The token is neither kept nor repeated in a warning. */
	ck_assert_ptr_null(json_object_get(p, "experimental_bearer_token"));
	ck_assert_ptr_null(strstr(dump, "sk-secret"));
	ck_assert_str_eq(json_string_value(json_object_get(p, "base_url")), "https://p.example/v1");
	free(dump);
	config_free(c);
}
END_TEST

START_TEST(test_bad_server_keeps_good_ones)
{
	struct config *c = load_ok("[mcp_servers.good]\n"                  /* 1 */
				   "command = \"good-mcp\"\n"               /* 2 */
				   "\n"                                     /* 3 */
				   "[mcp_servers.mixed]\n"                  /* 4 */
				   "command = \"x\"\n"                      /* 5 */
				   "url = \"https://x.example\"\n"          /* 6 */
				   "\n"                                     /* 7 */
				   "[mcp_servers.typo]\n"                   /* 8 */
				   "command = \"y\"\n"                      /* 9 */
				   "  argz = [\"a\"]\n"                     /* 10 */
				   "\n"                                     /* 11 */
				   "[mcp_servers.empty]\n"                  /* 12 */
				   "enabled = true\n"                       /* 13 */
				   "\n"                                     /* 14 */
				   "[mcp_servers.\"bad name\"]\n"           /* 15 */
				   "command = \"z\"\n"                      /* 16 */
				   "\n"                                     /* 17 */
				   "[mcp_servers.vars]\n"                   /* 18 */
				   "command = \"v\"\n"                      /* 19 */
				   "env_vars = [\"OK\", 5]\n"               /* 20 */
				   "\n"                                     /* 21 */
				   "[mcp_servers.http]\n"                   /* 22 */
				   "url = \"https://ok.example/mcp\"\n"     /* 23 */
				   "tool_timeout_sec = 0\n"                 /* 24 */
				   "\n"                                     /* 25 */
				   "[mcp_servers.kind]\n"                   /* 26 */
				   "command = \"k\"\n"                      /* 27 */
				   "type = \"http\"\n"                      /* 28 */
				   "\n"                                     /* 29 */
				   "[mcp_servers.after]\n"                  /* 30 */
				   "url = \"http://127.0.0.1:9/mcp\"\n");   /* 31 */
	const char *name;
	json_t *v;
	int n = 0;

	json_object_foreach (c->mcp_servers, name, v)
		ck_assert_str_eq(name, n++ ? "after" : "good");
	ck_assert_int_eq(n, 2);
	assert_json(c->invalid_servers,
		    "[{\"name\":\"mixed\",\"reason\":\"config.toml:5:1: both 'command' and 'url' "
		    "are set; a server is either stdio or http\"},"
		    "{\"name\":\"typo\",\"reason\":\"config.toml:10:3: unknown field 'argz'\"},"
		    "{\"name\":\"empty\",\"reason\":\"config.toml:12:14: neither 'command' (stdio) "
		    "nor 'url' (http) is set\"},"
		    "{\"name\":\"bad name\",\"reason\":\"config.toml:15:14: invalid server name: "
		    "use 1-64 of [A-Za-z0-9_-]\"},"
		    "{\"name\":\"vars\",\"reason\":\"config.toml:20:19: 'env_vars[1]' must be a "
		    "name or {name, source}\"},"
		    "{\"name\":\"http\",\"reason\":\"config.toml:24:1: 'tool_timeout_sec' must be "
		    "> 0 and at most 86400 seconds\"},"
		    "{\"name\":\"kind\",\"reason\":\"config.toml:28:1: type 'http' does not match "
		    "'command'\"}]");
	assert_json(c->warnings, "[]");
	config_free(c);
}
END_TEST

START_TEST(test_inline_servers)
{
	struct config *c = load_ok("mcp_servers = { a = { command = \"x\" }, b = { url = 5 } }\n");

	ck_assert_uint_eq(json_object_size(c->mcp_servers), 1);
	ck_assert_ptr_nonnull(json_object_get(c->mcp_servers, "a"));
	assert_json(c->invalid_servers,
		    "[{\"name\":\"b\",\"reason\":\"config.toml:1:46: 'url' must be a string\"}]");
	config_free(c);

	c = load_ok("[mcp_servers]\nx = 5\n");
	assert_json(c->invalid_servers,
		    "[{\"name\":\"x\",\"reason\":\"config.toml:2:1: server config must be a "
		    "table\"}]");
	config_free(c);
}
END_TEST

START_TEST(test_too_many_servers)
{
	char *text = xstrdup(""), *next;

	for (int i = 0; i <= CONFIG_MAX_SERVERS; i++) {
		next = xasprintf("%s[mcp_servers.s%d]\ncommand = \"x\"\n", text, i);
		free(text);
		text = next;
	}
	load_fails(text, 1, 2, "more than 256 MCP servers");
	free(text);
}
END_TEST

START_TEST(test_features)
{
	struct config *c = load_ok("[features]\n"
				   "apps = true\n"
				   "web_search = \"live\"\n"
				   "rmcp_client = false\n");

	assert_json(c->features, "{\"apps\":true,\"rmcp_client\":false}");
	assert_json(c->warnings,
		    "[\"config.toml:3:1: feature 'web_search' must be true or false; ignored\"]");
	ck_assert(config_feature(c, "apps"));
	ck_assert(!config_feature(c, "web_search"));
	config_free(c);
}
END_TEST

START_TEST(test_unknown_keys_warn)
{
	struct config *c = load_ok("approval_policy = \"never\"\n"
				   "\"my key\" = 1\n"
				   "[tui]\n"
				   "anything = 1\n"
				   "[zzz]\n"
				   "a = 1\n"
				   "[profiles.x]\n"
				   "model = 3\n");

	/* Only truly unknown top-level keys; Codex tables are not looked into. */
	assert_json(c->warnings, "[\"config.toml:2:1: unknown key 'my key'\","
				 "\"config.toml:5:2: unknown key 'zzz'\"]");
	/* The file as read, every key (config/read shows it whole). */
	ck_assert_str_eq(json_string_value(json_object_get(c->doc, "approval_policy")), "never");
	ck_assert_int_eq(json_integer_value(json_object_get(c->doc, "my key")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(
				 json_object_get(json_object_get(c->doc, "profiles"), "x"), "model")),
			 3);
	config_free(c);
}
END_TEST

START_TEST(test_instructions_and_urls)
{
	struct config *c = load_ok("instructions = \"Be brief.\"\n"
				   "chatgpt_base_url = \"https://chatgpt.example/backend-api/\"\n"
				   "developer_instructions = \"Use tools.\"\n");

	ck_assert_str_eq(c->instructions, "Be brief.\n\nUse tools.");
	ck_assert_str_eq(c->chatgpt_base_url, "https://chatgpt.example/backend-api/");
	config_free(c);

	c = load_ok("developer_instructions = \"Only this.\"\ninstructions = \"\"\n");
	ck_assert_str_eq(c->instructions, "Only this.");
	config_free(c);
}
END_TEST

/* [mcp_gateway] (config_gateway.h): normalized, and strict. */
START_TEST(test_mcp_gateway)
{
	struct config *c = load_ok("");

	assert_json(c->mcp_gateway, "{\"auth\":\"none\",\"profiles\":{}}");
	config_free(c);
	c = load_ok("[mcp_gateway]\nauth = \"capability-token\"\ntoken_sha256 = \""
		    "0123456789abcdef0123456789abcdef0123456789ABCDEF0123456789abcdef\"\n"
		    "allowed_origins = [\"https://app.example\"]\nresource = \"https://gw/mcp\"\n"
		    "[mcp_gateway.profiles.dev]\nroots = [{ id = \"r\", environment_id = \"e1\", "
		    "path = \"/srv/p\" }]\nservers = [\"docs\"]\n"
		    "[mcp_gateway.profiles.empty]\n");
	assert_json(json_object_get(c->mcp_gateway, "profiles"),
		    "{\"dev\":{\"roots\":[{\"id\":\"r\",\"environment_id\":\"e1\",\"path\":"
		    "\"/srv/p\"}],\"servers\":[\"docs\"]},\"empty\":{\"roots\":[]}}");
	ck_assert_str_eq(json_string_value(json_object_get(c->mcp_gateway, "auth")),
			 "capability-token");
	assert_json(json_object_get(c->mcp_gateway, "allowed_origins"),
		    "[\"https://app.example\"]");
	config_free(c);
	c = load_ok("[mcp_gateway]\nauth = \"signed-bearer-token\"\n"
		    "shared_secret_file = \"/s\"\naudience = \"a\"\n");
	ck_assert_int_eq(json_integer_value(json_object_get(c->mcp_gateway,
							    "max_clock_skew_seconds")), 30);
	config_free(c);
}
END_TEST

START_TEST(test_mcp_gateway_errors)
{
	static const struct bad b[] = {
		{ "mcp_gateway = 1", 1, 1, "'mcp_gateway' must be a table" },
		{ "[mcp_gateway]\nauht = \"none\"", 2, 1, "unknown key 'auht' in [mcp_gateway]" },
		{ "[mcp_gateway]\nauth = \"open\"", 2, 1, "'auth' must be \"none\"" },
		{ "[mcp_gateway]\nauth = \"capability-token\"", 2, 1,
		  "needs exactly one of token_file and token_sha256" },
		{ "[mcp_gateway]\nauth = \"capability-token\"\ntoken_sha256 = \"abc\"", 3, 1,
		  "'token_sha256' must be 64 hex digits" },
		{ "[mcp_gateway]\ntoken_file = \"/t\"", 2, 1,
		  "token and secret settings need auth" },
		{ "[mcp_gateway]\nauth = \"signed-bearer-token\"\ntoken_file = \"/t\"", 3, 1,
		  "needs shared_secret_file" },
		{ "[mcp_gateway]\nauth = \"capability-token\"\ntoken_file = \"/t\"\n"
		  "issuer = \"i\"", 4, 1, "go with auth = \"signed-bearer-token\"" },
		{ "[mcp_gateway]\nmax_clock_skew_seconds = 99999", 2, 1,
		  "max_clock_skew_seconds" },
		{ "[mcp_gateway]\nallowed_origins = \"x\"", 2, 1, "allowed_origins" },
		{ "[mcp_gateway]\nresource = \"a\\nb\"", 2, 1, "printable" },
		{ "[mcp_gateway.profiles.\"bad name\"]", 1, 23, "profile name 'bad name'" },
		{ "[mcp_gateway.profiles.p]\nroot = []", 2, 1, "unknown key 'root' in a profile" },
		{ "[mcp_gateway.profiles.p]\nroots = [{ id = \"r\", environment_id = \"e\" }]", 2,
		  10, "missing required field 'path'" },
		{ "[mcp_gateway.profiles.p]\nroots = [{ id = \"r\", environment_id = \"e/1\", "
		  "path = \"/p\" }]", 2, 22, "not a valid environment id" },
		{ "[mcp_gateway.profiles.p]\nroots = [{ id = \"r\", environment_id = \"e\", "
		  "path = \"rel\" }]", 2, 44, "absolute path" },
		{ "[mcp_gateway.profiles.p]\nroots = [{ id = \"r\", environment_id = \"e\", "
		  "path = \"/a\" }, { id = \"r\", environment_id = \"e\", path = \"/b\" }]", 2,
		  61, "root id 'r' is a duplicate" },
		{ "[mcp_gateway.profiles.p]\nservers = [\"a b\"]", 2, 1, "not a server name" },
	};

	run_bad(b, ARRAY_SIZE(b));
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");

	tcase_add_unchecked_fixture(tc, homes_setup, homes_teardown);
	tcase_add_checked_fixture(tc, home_setup, home_teardown);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_empty_file);
	tcase_add_test(tc, test_bad_home_and_unreadable);
	tcase_add_test(tc, test_syntax_error);
	tcase_add_test(tc, test_full_fixture);
	tcase_add_test(tc, test_codex_fixture);
	tcase_add_test(tc, test_top_level_errors);
	tcase_add_test(tc, test_provider_errors);
	tcase_add_test(tc, test_provider_defaults_and_override);
	tcase_add_test(tc, test_provider_warnings);
	tcase_add_test(tc, test_bad_server_keeps_good_ones);
	tcase_add_test(tc, test_inline_servers);
	tcase_add_test(tc, test_too_many_servers);
	tcase_add_test(tc, test_features);
	tcase_add_test(tc, test_unknown_keys_warn);
	tcase_add_test(tc, test_instructions_and_urls);
	tcase_add_test(tc, test_mcp_gateway);
	tcase_add_test(tc, test_mcp_gateway_errors);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(config_suite)
