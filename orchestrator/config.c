/* config.c - see config.h.
 *
 * One pass over the top-level keys dispatches the ones tandem uses, skips
 * the ones Codex documents and warns about the rest. Providers are built
 * after that pass because the built-in openai provider depends on
 * openai_base_url, wherever it sits in the file, and model_provider can
 * only be checked once every provider is known.
 */
#include "config.h"

#include "config_gateway.h"
#include "jsonutil.h"
#include "mcpcfg.h"
#include "toml.h"
#include "tomlfile.h"
#include "utf8.h"
#include "util.h"
#include "valid.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

#define LIST_MAX 256 /* entries in a provider's header and query maps */

struct loader {
	struct tomlfile f;
	struct config *c;
	json_t *providers_raw; /* borrowed from doc */
	const char *openai_base_url;
};

/* Keys Codex reads from config.toml that tandem accepts and ignores
 * (Codex's ConfigToml, current and recently removed). */
static const char *const codex_keys[] = {
	"agents", "allow_login_shell", "analytics", "approval_policy", "approvals_reviewer", "apps",
	"apps_mcp_product_sku", "audio", "auto_review", "background_terminal_max_timeout",
	"check_for_update_on_startup", "cli_auth_credentials_store", "compact_prompt", "debug",
	"default_permissions", "desktop", "disable_paste_burst", "disable_response_storage",
	"experimental_compact_prompt_file", "experimental_instructions_file",
	"experimental_realtime_start_instructions", "experimental_realtime_ws_backend_prompt",
	"experimental_realtime_ws_base_url", "experimental_realtime_ws_model",
	"experimental_realtime_ws_startup_context", "experimental_thread_config_endpoint",
	"experimental_thread_store", "experimental_thread_store_endpoint",
	"experimental_use_exec_command_tool", "experimental_use_rmcp_client",
	"experimental_use_unified_exec_tool", "feedback", "file_opener",
	"forced_chatgpt_workspace_id", "forced_login_method", "ghost_snapshot",
	"hide_agent_reasoning", "history", "hooks", "include_apply_patch_tool",
	"include_apps_instructions", "include_collaboration_mode_instructions",
	"include_environment_context", "include_permissions_instructions", "include_plan_tool",
	"js_repl_node_module_dirs", "js_repl_node_path", "log_dir", "marketplaces",
	"mcp_oauth_callback_port", "mcp_oauth_callback_url", "mcp_oauth_credentials_store",
	"memories", "model_auto_compact_token_limit", "model_auto_compact_token_limit_scope",
	"model_catalog_json", "model_context_window", "model_instructions_file",
	"model_max_output_tokens", "model_reasoning_effort", "model_reasoning_summary",
	"model_supports_reasoning_summaries", "model_verbosity", "notice", "notify", "oss_provider",
	"otel", "permissions", "personality", "plan_mode_reasoning_effort", "plugins",
	"preferred_auth_method", "profile", "profiles", "project_doc_fallback_filenames",
	"project_doc_max_bytes", "project_root_markers", "projects", "realtime", "review_model",
	"sandbox_mode", "sandbox_workspace_write", "service_tier", "shell_environment_policy",
	"show_raw_agent_reasoning", "skills", "sqlite", "sqlite_home",
	"suppress_unstable_features_warning", "tool_output_token_limit", "tool_suggest", "tools",
	"tools_view_image", "tools_web_search_request", "tui", "web_search", "windows",
	"windows_wsl_setup_acknowledged",
};

static bool is_codex_key(const char *key)
{
	for (size_t i = 0; i < ARRAY_SIZE(codex_keys); i++)
		if (!strcmp(codex_keys[i], key))
			return true;
	return false;
}

__attribute__((format(printf, 3, 4))) static void warn_at(struct loader *L, const char *tpath,
							   const char *fmt, ...)
{
	char pre[64], msg[512];
	va_list ap;
	json_t *s;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	tomlfile_where(&L->f, CONFIG_FILE, tpath, pre, sizeof(pre));
	s = json_sprintf("%s%s", pre, msg);
	if (s) /* NULL only if msg was cut inside a character */
		json_array_append_new(L->c->warnings, s);
}

static bool has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* http(s)://host..., nothing that could end a request line. */
static bool http_url_valid(const char *s)
{
	const char *rest;

	if (!strncasecmp(s, "https://", 8))
		rest = s + 8;
	else if (!strncasecmp(s, "http://", 7))
		rest = s + 7;
	else
		return false;
	return *rest && *rest != '/' && !strchr(s, ' ') && !has_ctl(s) && strlen(s) <= 2048;
}

/* Optional string base.key: absent leaves *out alone. */
static int get_str(struct loader *L, json_t *obj, const char *base, const char *key,
		   const char **out)
{
	char e[256];

	if (jsonu_get_str(obj, key, false, out, e, sizeof(e)) < 0)
		return tomlfile_fail_key(&L->f, base, key, "%s", e);
	return 0;
}

static int get_url(struct loader *L, json_t *obj, const char *base, const char *key,
		   const char **out)
{
	const char *s = NULL;
	int r = get_str(L, obj, base, key, &s);

	if (r < 0 || !s)
		return r;
	if (!http_url_valid(s))
		return tomlfile_fail_key(&L->f, base, key,
				 "'%s' must be an http:// or https:// URL with a host", key);
	*out = s;
	return 0;
}

/* ---- model providers -------------------------------------------------- */

enum pkind {
	P_NAME, P_URL, P_ENV_KEY, P_WIRE, P_HEADERS, P_ENV_HEADERS, P_QUERY, P_RETRIES, P_IDLE,
	P_BOOL, P_IGNORE, P_UNSUPPORTED,
};

static const struct pkey {
	const char *key;
	enum pkind kind;
} provider_keys[] = {
	{ "name", P_NAME },
	{ "base_url", P_URL },
	{ "env_key", P_ENV_KEY },
	{ "wire_api", P_WIRE },
	{ "http_headers", P_HEADERS },
	{ "env_http_headers", P_ENV_HEADERS },
	{ "query_params", P_QUERY },
	{ "request_max_retries", P_RETRIES },
	{ "stream_max_retries", P_RETRIES },
	{ "stream_idle_timeout_ms", P_IDLE },
	{ "requires_openai_auth", P_BOOL },
	/* Codex keys without effect here. */
	{ "env_key_instructions", P_IGNORE },
	{ "supports_websockets", P_IGNORE },
	{ "websocket_connect_timeout_ms", P_IGNORE },
	/* Codex auth mechanisms tandem does not implement: said, not hidden. */
	{ "experimental_bearer_token", P_UNSUPPORTED },
	{ "auth", P_UNSUPPORTED },
	{ "aws", P_UNSUPPORTED },
};

static const char *const provider_order[] = {
	"name", "base_url", "wire_api", "env_key", "requires_openai_auth", "http_headers",
	"env_http_headers", "query_params", "request_max_retries", "stream_max_retries",
	"stream_idle_timeout_ms",
};

static json_t *ordered_provider(json_t *p)
{
	json_t *out = json_object();

	for (size_t i = 0; i < ARRAY_SIZE(provider_order); i++) {
		json_t *v = json_object_get(p, provider_order[i]);

		if (v)
			json_object_set(out, provider_order[i], v);
	}
	return out;
}

static json_t *provider_defaults(const char *id)
{
	return json_pack("{s:s, s:s, s:s, s:b, s:{}, s:{}, s:{}, s:i, s:i, s:i}", "name", id,
			 "base_url", CONFIG_OPENAI_BASE_URL, "wire_api", "responses",
			 "requires_openai_auth", 0, "http_headers", "env_http_headers",
			 "query_params", "request_max_retries", 4, "stream_max_retries", 5,
			 "stream_idle_timeout_ms", 300000);
}

/* Codex's built-in provider, with the headers the OpenAI API understands. */
static json_t *provider_openai(const char *base_url)
{
	json_t *p = provider_defaults("OpenAI"), *out;

	if (base_url)
		json_object_set_new(p, "base_url", json_string(base_url));
	json_object_set_new(p, "env_key", json_string("OPENAI_API_KEY"));
	json_object_set_new(p, "requires_openai_auth", json_true());
	json_object_set_new(p, "env_http_headers",
			    json_pack("{s:s, s:s}", "OpenAI-Organization", "OPENAI_ORGANIZATION",
				      "OpenAI-Project", "OPENAI_PROJECT"));
	out = ordered_provider(p);
	json_decref(p);
	return out;
}

static bool any_name(const char *s) { return *s && !has_ctl(s); }
static bool value_ok(const char *s) { return !strpbrk(s, "\r\n"); }

/* What the keys and values of a provider's string map must be. */
struct map_rule {
	bool (*key_ok)(const char *);
	const char *key_rule;
	bool (*val_ok)(const char *); /* NULL: any string */
	const char *val_rule;
};

static const struct map_rule header_rule = {
	valid_header_name, "not a header name", value_ok, "the value contains CR or LF",
};
static const struct map_rule env_header_rule = {
	valid_header_name, "not a header name", valid_env_name, "the value is not a variable name",
};
static const struct map_rule query_rule = {
	any_name, "the name is empty or has control characters", NULL, NULL,
};

static int provider_map(struct loader *L, const char *base, const char *key, json_t *raw,
			const struct map_rule *rule, json_t *p)
{
	json_t *m = NULL, *v;
	const char *k, *why;
	char e[256];

	if (jsonu_get_str_map(raw, key, false, LIST_MAX, &m, e, sizeof(e)) < 0)
		return tomlfile_fail_key(&L->f, base, key, "%s", e);
	json_object_foreach (m, k, v) {
		_cleanup_free_ char *kpath = NULL;

		if (!rule->key_ok(k))
			why = rule->key_rule;
		else if (rule->val_ok && !rule->val_ok(json_string_value(v)))
			why = rule->val_rule;
		else
			continue;
		kpath = toml_path_join(base, key);
		return tomlfile_fail_key(&L->f, kpath, k, "'%s' entry '%.*s': %s", key,
					 UTF8_CUT(k, 64), why);
	}
	json_object_set_new(p, key, json_deep_copy(m));
	return 0;
}

static int provider_int(struct loader *L, const char *base, const char *key, json_t *raw,
			int64_t min, int64_t max, json_t *p)
{
	int64_t n;
	char e[256];

	if (jsonu_get_int(raw, key, false, min, max, &n, e, sizeof(e)) < 0)
		return tomlfile_fail_key(&L->f, base, key, "%s", e);
	json_object_set_new(p, key, json_integer(n));
	return 0;
}

static int provider_wire(struct loader *L, const char *base, json_t *raw)
{
	const char *s = NULL;
	int r = get_str(L, raw, base, "wire_api", &s);

	if (r < 0 || !s || !strcmp(s, "responses"))
		return r;
	if (!strcmp(s, "chat"))
		return tomlfile_fail_key(&L->f, base, "wire_api",
				 "wire_api 'chat' (Chat Completions) is not supported: tandem "
				 "speaks only the Responses API; set wire_api = \"responses\"");
	return tomlfile_fail_key(&L->f, base, "wire_api", "wire_api '%.*s' is not supported: only "
			 "\"responses\" (the Responses API)", UTF8_CUT(s, 32));
}

static int provider_str(struct loader *L, const char *base, const char *key, json_t *raw,
			bool (*ok)(const char *), const char *rule, json_t *p)
{
	const char *s = NULL;
	int r = get_str(L, raw, base, key, &s);

	if (r < 0)
		return r;
	if (!ok(s))
		return tomlfile_fail_key(&L->f, base, key, "'%s' must be %s", key, rule);
	json_object_set_new(p, key, json_string(s));
	return 0;
}

static int provider_field(struct loader *L, const char *base, const struct pkey *pk, json_t *raw,
			  json_t *p)
{
	const char *key = pk->key, *url = NULL;
	bool b;
	char e[256];

	switch (pk->kind) {
	case P_NAME:
		return provider_str(L, base, key, raw, any_name, "a non-empty name", p);
	case P_URL:
		if (get_url(L, raw, base, key, &url) < 0)
			return -EINVAL;
		json_object_set_new(p, key, json_string(url));
		return 0;
	case P_ENV_KEY:
		return provider_str(L, base, key, raw, valid_env_name, "a variable name", p);
	case P_WIRE:
		return provider_wire(L, base, raw);
	case P_HEADERS:
		return provider_map(L, base, key, raw, &header_rule, p);
	case P_ENV_HEADERS:
		return provider_map(L, base, key, raw, &env_header_rule, p);
	case P_QUERY:
		return provider_map(L, base, key, raw, &query_rule, p);
	case P_RETRIES:
		return provider_int(L, base, key, raw, 0, CONFIG_RETRIES_MAX, p);
	case P_IDLE:
		return provider_int(L, base, key, raw, 1, CONFIG_IDLE_TIMEOUT_MS_MAX, p);
	case P_BOOL:
		if (jsonu_get_bool(raw, key, false, &b, e, sizeof(e)) < 0)
			return tomlfile_fail_key(&L->f, base, key, "%s", e);
		json_object_set_new(p, key, json_boolean(b));
		return 0;
	case P_IGNORE:
		return 0;
	case P_UNSUPPORTED: {
		_cleanup_free_ char *tpath = toml_path_join(base, key);

		warn_at(L, tpath, "'%s' is not supported by tandem; ignored (use env_key)", key);
		return 0;
	}
	}
	return 0;
}

static bool provider_id_valid(const char *id)
{
	size_t len = strlen(id);

	return len > 0 && len <= CONFIG_PROVIDER_ID_MAX && !has_ctl(id);
}

/* Validates [model_providers.<id>] and stores the normalized provider. */
static int provider_load(struct loader *L, const char *id, json_t *raw)
{
	_cleanup_free_ char *base = toml_path_join("model_providers", id);
	json_t *p;
	const char *key;
	json_t *v;

	if (!provider_id_valid(id))
		return tomlfile_fail(&L->f, base, "model provider id must be 1-%d characters "
				     "without control characters", CONFIG_PROVIDER_ID_MAX);
	if (!json_is_object(raw))
		return tomlfile_fail(&L->f, base, "model provider '%s' must be a table", id);
	p = !strcmp(id, "openai") ? json_object_get(L->c->model_providers, "openai") : NULL;
	p = p ? json_deep_copy(p) : provider_defaults(id);
	json_object_foreach (raw, key, v) {
		const struct pkey *pk = NULL;

		for (size_t i = 0; i < ARRAY_SIZE(provider_keys) && !pk; i++)
			if (!strcmp(provider_keys[i].key, key))
				pk = &provider_keys[i];
		if (!pk) {
			_cleanup_free_ char *tpath = toml_path_join(base, key);

			warn_at(L, tpath, "unknown key '%.*s' in model provider '%s'",
				UTF8_CUT(key, 64), id);
		} else if (provider_field(L, base, pk, raw, p) < 0) {
			json_decref(p);
			return -EINVAL;
		}
	}
	json_object_set_new(L->c->model_providers, id, ordered_provider(p));
	json_decref(p);
	return 0;
}

static int providers_load(struct loader *L)
{
	struct config *c = L->c;
	const char *id;
	json_t *raw;

	json_object_set_new(c->model_providers, "openai", provider_openai(L->openai_base_url));
	if (json_object_size(L->providers_raw) > CONFIG_MAX_PROVIDERS)
		return tomlfile_fail(&L->f, "model_providers", "more than %d model providers",
				CONFIG_MAX_PROVIDERS);
	json_object_foreach (L->providers_raw, id, raw)
		if (provider_load(L, id, raw) < 0)
			return -EINVAL;
	if (!json_object_get(c->model_providers, c->model_provider))
		return tomlfile_fail(&L->f, "model_provider",
				     "model_provider '%.*s' names no provider: "
				     "define [model_providers.%.*s] or use \"openai\"",
				     UTF8_CUT(c->model_provider, 64),
				     UTF8_CUT(c->model_provider, 64));
	return 0;
}

/* ---- MCP servers ------------------------------------------------------ */

/* True and a position when tok (as quoted in a reason: "args", "env_vars[0]",
 * "oauth.client_id") names something in server raw at TOML path base. */
static bool token_where(const struct toml_doc *doc, const char *base, json_t *raw,
			const char *tok, size_t len, int *line, int *col)
{
	size_t klen = strcspn(tok, "[.'");
	_cleanup_free_ char *key = NULL, *kpath = NULL, *full = NULL;

	if (klen > len)
		klen = len;
	key = xstrndup(tok, klen);
	if (!json_object_get(raw, key))
		return false;
	kpath = toml_path_join(base, key);
	full = xasprintf("%s%.*s", kpath, (int)(len - klen), tok + klen);
	return toml_doc_where(doc, full, line, col) || toml_doc_where(doc, kpath, line, col);
}

/* Where to point for a server's reason: the key it names when that key is
 * in the server's table (its first word, as in "type 'sse' ...", then each
 * 'quoted' name in turn), else the server's table. */
static void server_where(const struct toml_doc *doc, const char *base, json_t *raw,
			 const char *reason, int *line, int *col)
{
	const char *p = reason, *q;

	if (json_is_object(raw) && token_where(doc, base, raw, reason, strcspn(reason, " :"), line,
					       col))
		return;
	while (json_is_object(raw) && (p = strchr(p, '\'')) && (q = strchr(p + 1, '\''))) {
		if (token_where(doc, base, raw, p + 1, (size_t)(q - p - 1), line, col))
			return;
		p = q + 1;
	}
	if (!toml_doc_where(doc, base, line, col))
		*line = *col = 0;
}

static void server_load(struct loader *L, const char *name, json_t *raw)
{
	_cleanup_free_ char *base = toml_path_join("mcp_servers", name);
	json_t *notes = json_array(), *n, *s;
	char reason[512];
	int line, col;
	size_t i;

	n = mcpcfg_normalize(name, raw, NULL, notes, reason, sizeof(reason));
	if (n) {
		json_object_set_new(L->c->mcp_servers, name, n);
		json_array_foreach (notes, i, s)
			warn_at(L, base, "%s", json_string_value(s));
	} else {
		server_where(L->f.doc, base, raw, reason, &line, &col);
		s = line ? json_sprintf("%s:%d:%d: %s", CONFIG_FILE, line, col, reason)
			 : json_sprintf("%s: %s", CONFIG_FILE, reason);
		json_array_append_new(L->c->invalid_servers,
				      json_pack("{s:s, s:o}", "name", name,
						"reason", s ? s : json_string("invalid")));
	}
	json_decref(notes);
}

static int servers_load(struct loader *L, json_t *v)
{
	const char *name;
	json_t *raw;

	if (!json_is_object(v))
		return tomlfile_fail(&L->f, "mcp_servers", "'mcp_servers' must be a table");
	if (json_object_size(v) > CONFIG_MAX_SERVERS)
		return tomlfile_fail(&L->f, "mcp_servers", "more than %d MCP servers",
				     CONFIG_MAX_SERVERS);
	json_object_foreach (v, name, raw)
		server_load(L, name, raw);
	return 0;
}

/* ---- top level -------------------------------------------------------- */

static int features_load(struct loader *L, json_t *v)
{
	const char *name;
	json_t *f;

	if (!json_is_object(v))
		return tomlfile_fail(&L->f, "features", "'features' must be a table");
	if (json_object_size(v) > CONFIG_MAX_FEATURES)
		return tomlfile_fail(&L->f, "features", "more than %d features",
				     CONFIG_MAX_FEATURES);
	json_object_foreach (v, name, f) {
		_cleanup_free_ char *tpath = toml_path_join("features", name);

		if (json_is_boolean(f))
			json_object_set(L->c->features, name, f);
		else
			warn_at(L, tpath, "feature '%.*s' must be true or false; ignored",
				UTF8_CUT(name, 64));
	}
	return 0;
}

static int set_str(struct loader *L, json_t *root, const char *key, char **out)
{
	const char *s = NULL;

	if (get_str(L, root, NULL, key, &s) < 0)
		return -EINVAL;
	if (!s || !*s)
		return tomlfile_fail(&L->f, key, "'%s' must not be empty", key);
	free(*out);
	*out = xstrdup(s);
	return 0;
}

/* instructions and developer_instructions both reach the model as the
 * instructions tandem sends; neither silently drops the other. */
static int add_instructions(struct loader *L, json_t *root, const char *key)
{
	struct config *c = L->c;
	const char *s = NULL;
	char *joined;

	if (get_str(L, root, NULL, key, &s) < 0)
		return -EINVAL;
	if (!s || !*s)
		return 0;
	joined = c->instructions ? xasprintf("%s\n\n%s", c->instructions, s) : xstrdup(s);
	free(c->instructions);
	c->instructions = joined;
	return 0;
}

static int top_key(struct loader *L, json_t *root, const char *key, json_t *v)
{
	const char *url = NULL;

	if (!strcmp(key, "model"))
		return set_str(L, root, key, &L->c->model);
	if (!strcmp(key, "model_provider"))
		return set_str(L, root, key, &L->c->model_provider);
	if (!strcmp(key, "model_providers")) {
		L->providers_raw = v;
		return json_is_object(v) ? 0
					 : tomlfile_fail(&L->f, key, "'%s' must be a table", key);
	}
	if (!strcmp(key, "mcp_servers"))
		return servers_load(L, v);
	if (!strcmp(key, "features"))
		return features_load(L, v);
	if (!strcmp(key, "mcp_gateway")) { /* tandem's own table: config_gateway.h */
		json_decref(L->c->mcp_gateway);
		L->c->mcp_gateway = NULL;
		return config_gateway_load(&L->f, v, &L->c->mcp_gateway);
	}
	if (!strcmp(key, "chatgpt_base_url")) {
		if (get_url(L, root, NULL, key, &url) < 0)
			return -EINVAL;
		free(L->c->chatgpt_base_url);
		L->c->chatgpt_base_url = xstrdup(url);
		return 0;
	}
	if (!strcmp(key, "openai_base_url"))
		return get_url(L, root, NULL, key, &L->openai_base_url);
	if (!strcmp(key, "mcp_oauth_callback_url")) {
		if (get_url(L, root, NULL, key, &url) < 0)
			return -EINVAL;
		free(L->c->oauth_callback_url);
		L->c->oauth_callback_url = xstrdup(url);
		return 0;
	}
	if (!strcmp(key, "mcp_oauth_credentials_store")) {
		const char *mode = NULL;

		if (set_str(L, root, key, &L->c->oauth_store) < 0)
			return -EINVAL;
		mode = L->c->oauth_store;
		if (strcmp(mode, "auto") && strcmp(mode, "keyring") && strcmp(mode, "file"))
			return tomlfile_fail_key(&L->f, NULL, key,
						 "'%s' must be \"auto\", \"keyring\" or \"file\"",
						 key);
		return 0;
	}
	if (!strcmp(key, "mcp_oauth_callback_port")) {
		int64_t n;
		char e[256];

		if (jsonu_get_int(root, key, false, 1, 65535, &n, e, sizeof(e)) < 0)
			return tomlfile_fail_key(&L->f, NULL, key, "%s", e);
		L->c->oauth_callback_port = (uint16_t)n;
		return 0;
	}
	if (!strcmp(key, "instructions") || !strcmp(key, "developer_instructions"))
		return add_instructions(L, root, key);
	if (!is_codex_key(key)) {
		_cleanup_free_ char *tpath = toml_path_join(NULL, key);

		warn_at(L, tpath, "unknown key '%.*s'", UTF8_CUT(key, 64));
	}
	return 0;
}

static struct config *config_defaults(void)
{
	struct config *c = xcalloc(1, sizeof(*c));

	c->model_provider = xstrdup(CONFIG_DEFAULT_PROVIDER);
	c->model_providers = json_object();
	c->mcp_servers = json_object();
	c->invalid_servers = json_array();
	c->features = json_object();
	c->mcp_gateway = config_gateway_default();
	c->chatgpt_base_url = xstrdup(CONFIG_DEFAULT_CHATGPT_BASE_URL);
	c->warnings = json_array();
	c->doc = json_object();
	return c;
}

static int load_doc(struct loader *L)
{
	json_t *root = tomlfile_root(&L->f), *v;
	const char *key;

	json_object_foreach (root, key, v)
		if (top_key(L, root, key, v) < 0)
			return -EINVAL;
	return providers_load(L);
}

int config_load(const char *home, struct config **out, char *err, size_t errlen)
{
	struct loader L = { 0 };
	int r = tomlfile_open(&L.f, home, CONFIG_FILE, err, errlen);

	if (r == 0) {
		L.c = config_defaults();
		if (L.f.doc) {
			L.c->path = xstrdup(L.f.path);
			json_decref(L.c->doc);
			L.c->doc = json_deep_copy(tomlfile_root(&L.f));
		}
		r = load_doc(&L); /* an absent file: the defaults, providers included */
	}
	tomlfile_close(&L.f);
	if (r < 0) {
		config_free(L.c);
		return r;
	}
	*out = L.c;
	return 0;
}

json_t *config_provider(const struct config *c)
{
	return json_object_get(c->model_providers, c->model_provider);
}

bool config_feature(const struct config *c, const char *name)
{
	return json_is_true(json_object_get(c->features, name));
}

static struct config *current;
static const char *current_home;

const struct config *config_current(void) { return current; }
const char *config_home(void) { return current_home; }

void config_install(struct config *c)
{
	config_free(current);
	current = c;
}

int config_init(const char *home, char *err, size_t errlen)
{
	struct config *c;
	int r = config_load(home, &c, err, errlen);

	if (r < 0)
		return r;
	current_home = home;
	config_install(c);
	return 0;
}

int config_reload(char *err, size_t errlen)
{
	return config_init(current_home, err, errlen);
}

struct config *config_free(struct config *c)
{
	if (!c)
		return NULL;
	free(c->path);
	free(c->model);
	free(c->model_provider);
	json_decref(c->model_providers);
	json_decref(c->mcp_servers);
	json_decref(c->invalid_servers);
	json_decref(c->features);
	json_decref(c->mcp_gateway);
	free(c->chatgpt_base_url);
	free(c->oauth_callback_url);
	free(c->oauth_store);
	free(c->instructions);
	json_decref(c->warnings);
	json_decref(c->doc);
	free(c);
	return NULL;
}
