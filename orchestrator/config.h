/* config.h - the orchestrator's <home>/config.toml (Codex's format).
 *
 * Reads the keys tandem acts on: model, model_provider, [model_providers.X],
 * [mcp_servers.X], [features], chatgpt_base_url, openai_base_url,
 * instructions and developer_instructions, and tandem's own [mcp_gateway]
 * (config_gateway.h). Codex has many more keys; the
 * ones it documents are accepted silently so that an existing Codex
 * config.toml loads unchanged, and only truly unknown keys become warnings.
 *
 * What is fatal and what is not (CODING_STYLE "Errors"):
 *   - a TOML syntax error, a wrongly typed or invalid key that tandem uses,
 *     an invalid model provider, or a model_provider naming no provider:
 *     config_load fails with "PATH:LINE:COL: reason";
 *   - an invalid [mcp_servers.X] entry fails only that server: it lands in
 *     invalid_servers with "config.toml:LINE:COL: reason" (the position of
 *     the offending key when it can be told, else of the server's table)
 *     and every other server loads;
 *   - unknown keys (top level, in a provider, non-boolean features) are
 *     warnings: "config.toml:LINE:COL: unknown key 'x'".
 *
 * Model providers: the built-in "openai" provider is always present. A
 * user [model_providers.openai] table is laid over it key by key (so
 * `base_url = ...` alone keeps name, env_key and the OpenAI headers);
 * `openai_base_url` (Codex) changes only the built-in's base_url. Other
 * providers start from Codex's defaults. Normalized provider shape, keys in
 * this order:
 *   name                   string (default: the provider id)
 *   base_url               string, http:// or https:// (default
 *                          "https://api.openai.com/v1", as in Codex)
 *   wire_api               "responses" (the only API tandem speaks)
 *   env_key                string, a variable name (absent when unset)
 *   requires_openai_auth   bool (built-in openai: true, else false)
 *   http_headers           {header: value}
 *   env_http_headers       {header: variable name}
 *   query_params           {name: value}
 *   request_max_retries    integer 0-100 (default 4)
 *   stream_max_retries     integer 0-100 (default 5)
 *   stream_idle_timeout_ms integer 1-86400000 (default 300000)
 *
 * Ownership: config_load hands out a config the caller frees with
 * config_free; every string and JSON value in it belongs to the config.
 * Library-like code: nothing here logs; the caller logs the warnings.
 */
#ifndef TANDEM_CONFIG_H
#define TANDEM_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_FILE "config.toml"
#define CONFIG_MAX_PROVIDERS 64
#define CONFIG_MAX_SERVERS 256
#define CONFIG_MAX_FEATURES 256
#define CONFIG_PROVIDER_ID_MAX 64
#define CONFIG_RETRIES_MAX 100          /* Codex's cap for both retry counts */
#define CONFIG_IDLE_TIMEOUT_MS_MAX 86400000

#define CONFIG_DEFAULT_PROVIDER "openai"
#define CONFIG_DEFAULT_CHATGPT_BASE_URL "https://chatgpt.com/backend-api/"
#define CONFIG_OPENAI_BASE_URL "https://api.openai.com/v1"
/* The model a turn asks for when neither thread/start nor config.toml
 * names one. */
#define CONFIG_DEFAULT_MODEL "gpt-5"

struct config {
	char *path;              /* the file read ("<home>/config.toml"), NULL if absent */
	char *model;             /* "model", NULL if unset */
	char *model_provider;    /* "model_provider", default "openai"; names a provider */
	json_t *model_providers; /* object: id -> normalized provider (see above) */
	json_t *mcp_servers;     /* object: name -> mcpcfg-normalized config, valid ones
				    only, file order kept */
	json_t *invalid_servers; /* array of {name, reason}; reason starts
				    "config.toml:LINE:COL: " */
	json_t *features;        /* object: feature name -> true/false ([features]) */
	json_t *mcp_gateway;     /* [mcp_gateway] normalized (config_gateway.h), never NULL */
	char *chatgpt_base_url;  /* default CONFIG_DEFAULT_CHATGPT_BASE_URL */
	uint16_t oauth_callback_port; /* mcp_oauth_callback_port; 0 = ephemeral */
	char *oauth_callback_url;     /* mcp_oauth_callback_url: the redirect_uri
					 to advertise instead of the listener's */
	char *oauth_store;            /* mcp_oauth_credentials_store: "auto",
					 "keyring" (both: memory only) or "file"
					 (the encrypted store, oauth.h); NULL: unset */
	char *instructions;      /* "instructions" and/or "developer_instructions"
				    (both set: joined by a blank line), NULL if unset */
	json_t *warnings;        /* array of strings "config.toml:LINE:COL: ..." */
	json_t *doc;             /* the file as read (its TOML as JSON, every key,
				    unknown ones included): config/read's user
				    layer; {} when the file is absent */
};

/* Loads <home>/config.toml. A missing file is not an error: *out gets the
 * defaults and path NULL. On success returns 0 and a new config in *out. On
 * failure leaves *out alone, fills err ("PATH:LINE:COL: reason", or
 * "PATH: reason" without a position) and returns -EINVAL (syntax or
 * content), -E2BIG (file too large) or the -errno of reading the file. */
int config_load(const char *home, struct config **out, char *err, size_t errlen);

/* The provider model_provider names (borrowed; never NULL for a loaded
 * config). */
json_t *config_provider(const struct config *c);

/* True when [features] sets name = true. */
bool config_feature(const struct config *c, const char *name);

/* Frees c and everything in it. NULL is fine. Returns NULL. */
struct config *config_free(struct config *c);

/* ---- the configuration in force ----------------------------------------
 *
 * One per process, a file static of this module (loop thread only): every
 * module reads it when it needs it, so a reload is seen at once. */

/* config_load(home) and puts the result in force; home (borrowed) is kept
 * for config_reload and config_home. On failure nothing changes. */
int config_init(const char *home, char *err, size_t errlen);
/* config/mcpServer/reload: loads again from the same home; the new
 * config replaces the old one only on success. */
int config_reload(char *err, size_t errlen);
/* The config in force (borrowed: valid until the next reload), NULL
 * before config_init. */
const struct config *config_current(void);
const char *config_home(void);
/* Puts c in force (owned from now on; NULL: none) and frees the previous
 * one. config_init and config_reload use it; so do unit suites. */
void config_install(struct config *c);

#endif
