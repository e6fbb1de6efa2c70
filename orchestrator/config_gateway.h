/* config_gateway.h - config.toml's [mcp_gateway] table (a tandem extension):
 * the MCP gateway's authentication, its allowed origins, its RFC 9728
 * metadata and its named profiles. config.c hands the table here while it
 * loads the file; the gateway (gateway*.c) reads the normalized result from
 * config_current()->mcp_gateway.
 *
 *   [mcp_gateway]
 *   auth = "capability-token"          # or "signed-bearer-token"; default "none"
 *   token_file = "/etc/tandem/mcp.token"  # capability-token: the token (mode 0600) ...
 *   token_sha256 = "<64 hex digits>"      # ... or only its SHA-256
 *   shared_secret_file = "/etc/tandem/mcp.secret" # signed-bearer-token: HS256 key
 *   issuer = "https://issuer.example"     # signed-bearer-token: "iss" to require
 *   audience = "tandem-mcp"               # ... "aud" to require
 *   max_clock_skew_seconds = 30           # ... for exp/nbf/iat (0-3600, default 30)
 *   allowed_origins = ["https://app.example"]  # browser origins besides loopback ones
 *   resource = "https://mcp.example/mcp"  # RFC 9728: this resource's identifier
 *   authorization_servers = ["https://as.example"]
 *   scopes_supported = ["mcp"]
 *
 *   [mcp_gateway.profiles.dev]            # served at /mcp/profiles/dev
 *   roots = [{ id = "demo", environment_id = "exec1", path = "/srv/plugins/demo" }]
 *   servers = ["docs", "demo_server"]     # optional: only these servers
 *
 * Every key in the table is one tandem uses, so a mistake in it fails the
 * load with "PATH:LINE:COL: reason" (an unknown key too: a misspelt auth
 * setting must not leave an endpoint open). Exactly one of token_file and
 * token_sha256 goes with capability-token, shared_secret_file with
 * signed-bearer-token, neither with "none".
 *
 * Normalized (an object; absent keys stay absent):
 *   {"auth": "none"|"capability-token"|"signed-bearer-token", "token_file",
 *    "token_sha256", "shared_secret_file", "issuer", "audience",
 *    "max_clock_skew_seconds": n, "allowed_origins": [...], "resource",
 *    "authorization_servers": [...], "scopes_supported": [...],
 *    "profiles": {name: {"roots": [{"id", "environment_id", "path"}],
 *                        "servers": [...]?}}}
 * Library-like code: nothing here logs.
 */
#ifndef TANDEM_CONFIG_GATEWAY_H
#define TANDEM_CONFIG_GATEWAY_H

#include <jansson.h>

struct tomlfile;

#define CONFIG_GATEWAY_MAX_PROFILES 64u
#define CONFIG_GATEWAY_MAX_ROOTS 256u   /* per profile (THREAD_MAX_ROOTS) */
#define CONFIG_GATEWAY_MAX_LIST 64u     /* origins, servers, scopes, authorization servers */
#define CONFIG_GATEWAY_MAX_STR 2048u    /* bytes of one string value */

/* The default when config.toml has no [mcp_gateway] (new reference). */
json_t *config_gateway_default(void);
/* Checks v (the [mcp_gateway] table of the file f) and returns the
 * normalized object in *out (new reference); -EINVAL with the reason
 * recorded in f (tomlfile_fail) otherwise. */
int config_gateway_load(struct tomlfile *f, json_t *v, json_t **out);

#endif
