/* apps.c - see apps.h. */
#include "apps.h"

#include <string.h>
#include <strings.h>

#include "config.h"
#include "util.h"
#include "view.h"

/* The hosts whose API lives under /backend-api. */
static bool is_chatgpt_host(const char *url)
{
	static const char *const hosts[] = { "https://chatgpt.com", "https://chat.openai.com" };

	for (size_t i = 0; i < ARRAY_SIZE(hosts); i++) {
		size_t n = strlen(hosts[i]);

		if (strncasecmp(url, hosts[i], n) == 0 &&
		    (url[n] == '\0' || url[n] == '/' || url[n] == ':'))
			return true;
	}
	return false;
}

char *apps_url(const char *chatgpt_base_url, bool path_override)
{
	const char *base = chatgpt_base_url && *chatgpt_base_url ? chatgpt_base_url
								  : "https://chatgpt.com";
	size_t n = strlen(base);
	const char *api = "";

	while (n > 0 && base[n - 1] == '/')
		n--;
	if (is_chatgpt_host(base) && !strstr(base, "/backend-api"))
		api = "/backend-api";
	return xasprintf("%.*s%s/%s", (int)n, base, api, path_override ? "ps/mcp" : "wham/apps");
}

json_t *apps_server_config(const struct config *c)
{
	char *url = apps_url(c ? c->chatgpt_base_url : NULL,
			     c && config_feature(c, "apps_mcp_path_override"));
	json_t *cfg = json_pack("{s:s, s:s, s:s, s:{}, s:{}, s:s, s:f, s:f, s:b, s:b, s:s}",
				"name", APPS_SERVER_NAME, "transport", "http", "url", url,
				"http_headers", "env_http_headers", "environment_id", "local",
				"startup_timeout_sec", 30.0, "tool_timeout_sec", 300.0,
				"enabled", 1, "required", 0, "hosted_auth", "chatgpt");

	free(url);
	return cfg;
}

/* The contributor: the hosted server when apps are on, else Remove (which
 * also takes out a user-configured codex_apps). Auth gating is the
 * effective view's job (view.c), not ours. */
static void contribute(json_t *view, json_t *ops, void *arg)
{
	const struct config *c = config_current();

	(void)view, (void)arg;
	if (!c || !config_feature(c, "apps")) {
		json_array_append_new(ops, json_pack("{s:s, s:s}", "op", "remove", "name",
						     APPS_SERVER_NAME));
		return;
	}
	json_array_append_new(ops, json_pack("{s:s, s:s, s:o}", "op", "set", "name",
					     APPS_SERVER_NAME, "config", apps_server_config(c)));
}

void apps_register(void) { view_add_contributor(APPS_SERVER_NAME, contribute, NULL); }
