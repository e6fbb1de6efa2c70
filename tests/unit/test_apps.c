/* test_apps.c - the hosted apps contribution: the endpoint derived from
 * chatgpt_base_url (apps_url), the server config it sets
 * (apps_server_config), and the contributor's Set/Remove on the runtime
 * view. Configs are built by hand: only chatgpt_base_url and features are
 * read. */
#include "apps.h"
#include "config.h"
#include "testmain.h"
#include "util.h"
#include "view.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_APPS "https://chatgpt.com/backend-api/wham/apps"

static void assert_url(const char *base, bool override, const char *expected)
{
	char *u = apps_url(base, override);

	ck_assert_msg(strcmp(u, expected) == 0, "apps_url(%s%s%s, %d) = \"%s\", expected \"%s\"",
		      base ? "\"" : "", base ? base : "NULL", base ? "\"" : "", override, u,
		      expected);
	free(u);
}

static void assert_json(json_t *v, const char *expected)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, expected);
	free(s);
}

START_TEST(url_default)
{
	assert_url(NULL, false, DEFAULT_APPS);
	assert_url("", false, DEFAULT_APPS);
	/* config.h's own default is already under /backend-api. */
	assert_url(CONFIG_DEFAULT_CHATGPT_BASE_URL, false, DEFAULT_APPS);
}
END_TEST

START_TEST(url_chatgpt_hosts)
{
	assert_url("https://chatgpt.com", false, DEFAULT_APPS);
	assert_url("https://chatgpt.com/", false, DEFAULT_APPS);
	assert_url("https://chatgpt.com//", false, DEFAULT_APPS);
	/* Already there: not doubled. */
	assert_url("https://chatgpt.com/backend-api/", false, DEFAULT_APPS);
	assert_url("https://chatgpt.com/backend-api", false, DEFAULT_APPS);
	assert_url("https://chat.openai.com", false,
		   "https://chat.openai.com/backend-api/wham/apps");
	assert_url("https://chat.openai.com/", false,
		   "https://chat.openai.com/backend-api/wham/apps");
	assert_url("https://chat.openai.com/backend-api", false,
		   "https://chat.openai.com/backend-api/wham/apps");
	/* Host names are case-insensitive; the base is kept as written. */
	assert_url("https://ChatGPT.com", false, "https://ChatGPT.com/backend-api/wham/apps");
	/* An explicit port is still the host. */
	assert_url("https://chatgpt.com:443/", false,
		   "https://chatgpt.com:443/backend-api/wham/apps");
}
END_TEST

START_TEST(url_other_hosts)
{
	assert_url("http://127.0.0.1:9/custom/", false, "http://127.0.0.1:9/custom/wham/apps");
	assert_url("http://127.0.0.1:9/custom", false, "http://127.0.0.1:9/custom/wham/apps");
	assert_url("http://127.0.0.1:9", false, "http://127.0.0.1:9/wham/apps");
	/* A prefix of the host name is not the host. */
	assert_url("https://chatgpt.com.evil.example", false,
		   "https://chatgpt.com.evil.example/wham/apps");
	assert_url("https://chatgpt.com.evil.example/", false,
		   "https://chatgpt.com.evil.example/wham/apps");
	assert_url("https://chat.openai.com.evil.example/x", false,
		   "https://chat.openai.com.evil.example/x/wham/apps");
	assert_url("https://notchatgpt.com", false, "https://notchatgpt.com/wham/apps");
}
END_TEST

START_TEST(url_path_override)
{
	assert_url(NULL, true, "https://chatgpt.com/backend-api/ps/mcp");
	assert_url("", true, "https://chatgpt.com/backend-api/ps/mcp");
	assert_url("https://chatgpt.com/", true, "https://chatgpt.com/backend-api/ps/mcp");
	assert_url("https://chatgpt.com/backend-api/", true,
		   "https://chatgpt.com/backend-api/ps/mcp");
	assert_url("https://chat.openai.com", true, "https://chat.openai.com/backend-api/ps/mcp");
	assert_url("http://127.0.0.1:9/custom/", true, "http://127.0.0.1:9/custom/ps/mcp");
	assert_url("https://chatgpt.com.evil.example", true,
		   "https://chatgpt.com.evil.example/ps/mcp");
}
END_TEST

/* A config with only what apps.c reads; features from JSON text. */
static struct config *fake_config(const char *base, const char *features)
{
	struct config *c = xcalloc(1, sizeof(*c));

	c->chatgpt_base_url = base ? xstrdup(base) : NULL;
	c->features = features ? json_loads(features, 0, NULL) : json_object();
	ck_assert_ptr_nonnull(c->features);
	return c;
}


START_TEST(server_config)
{
	struct config *c = fake_config("http://127.0.0.1:9/custom/", NULL);
	json_t *cfg = apps_server_config(c);

	ck_assert_ptr_nonnull(cfg);
	ck_assert_str_eq(json_string_value(json_object_get(cfg, "transport")), "http");
	ck_assert_str_eq(json_string_value(json_object_get(cfg, "url")),
			 "http://127.0.0.1:9/custom/wham/apps");
	ck_assert_str_eq(json_string_value(json_object_get(cfg, "environment_id")), "local");
	ck_assert_str_eq(json_string_value(json_object_get(cfg, "hosted_auth")), "chatgpt");
	/* The whole normalized HTTP config, in order. */
	assert_json(cfg, "{\"name\":\"codex_apps\",\"transport\":\"http\","
			 "\"url\":\"http://127.0.0.1:9/custom/wham/apps\",\"http_headers\":{},"
			 "\"env_http_headers\":{},\"environment_id\":\"local\","
			 "\"startup_timeout_sec\":30.0,\"tool_timeout_sec\":300.0,\"enabled\":true,"
			 "\"required\":false,\"hosted_auth\":\"chatgpt\"}");
	json_decref(cfg);
	config_free(c);
}
END_TEST

START_TEST(server_config_defaults_and_override)
{
	struct config *dflt = fake_config(CONFIG_DEFAULT_CHATGPT_BASE_URL, NULL);
	struct config *unset = fake_config(NULL, NULL);
	struct config *off = fake_config("https://chatgpt.com",
					 "{\"apps_mcp_path_override\":false}");
	struct config *on = fake_config("https://chatgpt.com",
					"{\"apps_mcp_path_override\":true}");
	json_t *a = apps_server_config(dflt), *b = apps_server_config(unset),
	       *n = apps_server_config(NULL), *o = apps_server_config(off),
	       *p = apps_server_config(on);

	ck_assert_str_eq(json_string_value(json_object_get(a, "url")), DEFAULT_APPS);
	ck_assert_str_eq(json_string_value(json_object_get(b, "url")), DEFAULT_APPS);
	ck_assert_str_eq(json_string_value(json_object_get(n, "url")), DEFAULT_APPS);
	ck_assert_str_eq(json_string_value(json_object_get(n, "hosted_auth")), "chatgpt");
	ck_assert_str_eq(json_string_value(json_object_get(o, "url")), DEFAULT_APPS);
	ck_assert_str_eq(json_string_value(json_object_get(p, "url")),
			 "https://chatgpt.com/backend-api/ps/mcp");
	json_decref(a);
	json_decref(b);
	json_decref(n);
	json_decref(o);
	json_decref(p);
	config_free(dflt);
	config_free(unset);
	config_free(off);
	config_free(on);
}
END_TEST

/* ---- the contributor ---- */

/* A configured view with a user server and a user-configured codex_apps. */
static json_t *configured(void)
{
	json_t *v = json_object(), *other = json_pack("{s:s}", "transport", "stdio");
	json_t *user = json_pack("{s:s, s:s}", "transport", "stdio", "command", "user-apps");

	/* view_set takes its own reference. */
	view_set(v, "other", other, "plug@1");
	view_set(v, APPS_SERVER_NAME, user, NULL);
	json_decref(other);
	json_decref(user);
	return v;
}

/* The runtime view with c in force (c: owned by the config module from
 * now on; NULL: no config at all). */
static json_t *runtime_with(struct config *c)
{
	json_t *conf = configured(), *rt;

	config_install(c);
	view_clear_contributors();
	apps_register();
	rt = view_runtime(conf);
	view_clear_contributors();
	config_install(NULL);
	json_decref(conf);
	return rt;
}

START_TEST(contributor_sets_when_on)
{
	struct config *c = fake_config("https://chat.openai.com", "{\"apps\":true}");
	json_t *want = apps_server_config(c), *rt = runtime_with(c), *eff;
	json_t *apps = json_object_get(rt, APPS_SERVER_NAME);

	/* The hosted server replaces the user's codex_apps; other servers stay. */
	ck_assert_ptr_nonnull(apps);
	ck_assert(json_equal(json_object_get(apps, "config"), want));
	ck_assert(json_is_null(json_object_get(apps, "plugin_id")));
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(apps, "config"), "url")),
			 "https://chat.openai.com/backend-api/wham/apps");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(rt, "other"),
							   "plugin_id")),
			 "plug@1");
	ck_assert_uint_eq(json_object_size(rt), 2);
	/* Only ChatGPT auth keeps it in the effective view. */
	view_set_chatgpt_auth(false);
	eff = view_effective(rt);
	ck_assert_ptr_null(json_object_get(eff, APPS_SERVER_NAME));
	ck_assert_ptr_nonnull(json_object_get(eff, "other"));
	json_decref(eff);
	view_set_chatgpt_auth(true);
	eff = view_effective(rt);
	ck_assert_ptr_nonnull(json_object_get(eff, APPS_SERVER_NAME));
	json_decref(eff);
	view_set_chatgpt_auth(false);
	json_decref(want);
	json_decref(rt);
}
END_TEST

START_TEST(contributor_removes_when_off)
{
	struct config *absent = fake_config(NULL, NULL);
	struct config *off = fake_config(NULL, "{\"apps\":false}");
	json_t *a = runtime_with(absent), *b = runtime_with(off), *n = runtime_with(NULL);

	/* The user's codex_apps goes too; the rest stays. */
	assert_json(a, "{\"other\":{\"config\":{\"transport\":\"stdio\"},"
		       "\"plugin_id\":\"plug@1\"}}");
	ck_assert(json_equal(a, b));
	ck_assert(json_equal(a, n));
	json_decref(a);
	json_decref(b);
	json_decref(n);
}
END_TEST

static Suite *apps_suite(void)
{
	Suite *s = suite_create("apps");
	TCase *tc = tcase_create("url");

	tcase_add_test(tc, url_default);
	tcase_add_test(tc, url_chatgpt_hosts);
	tcase_add_test(tc, url_other_hosts);
	tcase_add_test(tc, url_path_override);
	suite_add_tcase(s, tc);
	tc = tcase_create("config");
	tcase_add_test(tc, server_config);
	tcase_add_test(tc, server_config_defaults_and_override);
	tcase_add_test(tc, contributor_sets_when_on);
	tcase_add_test(tc, contributor_removes_when_off);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(apps_suite)
