/* mcpcfg.h - validate and normalize one MCP server config.
 *
 * Shared by the executor (entries of a plugin's .mcp.json or inline manifest
 * map) and the orchestrator (config.toml [mcp_servers.X], which the TOML
 * reader hands over as the same jansson shape). The rules are Codex's
 * [mcp_servers] format, field by field in mcpcfg.c; the normalized object
 * is what travels over the wire, so both sides agree on one shape.
 *
 * Strictness: an unknown field is an error naming the field, a field of the
 * other transport is an error naming the field and the transport. Either
 * error fails only that server; the caller reports it and keeps the others.
 *
 * Normalized shape (a new JSON object, the caller owns it):
 *   name             string
 *   transport        "stdio" | "http"
 *   stdio only:
 *     command        string, non-empty
 *     args           [string]                 (always present, may be empty)
 *     env            {string: string}         (always present, may be empty)
 *     env_vars       [{name, source}]         (always present; source is
 *                    "local" | "remote", a bare name means "remote": read
 *                    where the server runs). Never resolved here: values stay
 *                    on the executor, which resolves them at spawn time.
 *     cwd            string (absent when not given outside a plugin; for a
 *                    plugin always the canonical directory inside the root)
 *     sandbox        (tandem extension; absent when not given) {off: true}
 *                    for sandbox = "off", else the given fields of
 *                    {read: [path], write: [path], max_open_files,
 *                    max_processes, max_memory_mb}; "on" gives {}. Paths
 *                    are absolute (outside a plugin: must be), or relative
 *                    to the plugin root, then resolved (realpath) and kept
 *                    only inside it; never "..". The executor applies it.
 *     network        (tandem extension) bool; false: no network
 *   http only:
 *     url            string, http:// or https://
 *     bearer_token_env_var  string (absent when not given)
 *     http_headers   {header: value}          (always present)
 *     env_http_headers {header: env var name} (always present)
 *   both:
 *     environment_id       string (default "local"; a plugin's owning env)
 *     startup_timeout_sec  real > 0 (default 30; startup_timeout_ms accepted)
 *     tool_timeout_sec     real > 0 (default 300)
 *     enabled              bool (default true)
 *     required             bool (default false)
 *     enabled_tools        [string]  absent = all tools
 *     disabled_tools       [string]  absent = none
 *     scopes               [string]  absent when not given
 *     oauth_client_id      string    from oauth.client_id / oauth.clientId
 *     oauth_resource       string    (http only) from oauth_resource or
 *                          oauth.resource: the RFC 8707 resource of a login
 * `type` is checked against the fields and then dropped.
 *
 * Plugin mode (ctx->from_plugin) touches the filesystem: a stdio cwd is
 * resolved against ctx->root with realpath() and must stay inside it. Only
 * the executor uses that mode; the orchestrator passes a NULL ctx and the
 * module then never looks at a path.
 */
#ifndef TANDEM_MCPCFG_H
#define TANDEM_MCPCFG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define MCPCFG_NAME_MAX 64          /* bytes in a server name */
#define MCPCFG_LIST_MAX 256         /* entries in args, env, tools, ... */
#define MCPCFG_STR_MAX (64 * 1024)  /* bytes in any one string */
#define MCPCFG_TIMEOUT_MAX 86400.0  /* seconds, for both timeouts */
#define MCPCFG_STARTUP_TIMEOUT_DEFAULT 30.0
#define MCPCFG_TOOL_TIMEOUT_DEFAULT 300.0
#define MCPCFG_SANDBOX_PATHS_MAX 64 /* entries in sandbox.read / sandbox.write */

struct mcpcfg_ctx {
	/* Entry comes from a plugin: bind it to the owning environment and
	 * apply the cwd rules below. */
	bool from_plugin;
	/* Plugin: the owning environment id; replaces any declared one. */
	const char *environment_id;
	/* Plugin: the owning environment is the implicit local executor, the
	 * only case where env_vars with source "local" make sense. */
	bool environment_is_local;
	/* Plugin: canonical (realpath) root directory; default cwd and the
	 * boundary a cwd must stay inside. */
	const char *root;
};

/* True when name matches ^[A-Za-z0-9_-]+$ and is at most MCPCFG_NAME_MAX
 * bytes. */
bool mcpcfg_name_valid(const char *name);

/* True when the canonical absolute path `path` is `dir` or lies below it,
 * compared at path-component boundaries: /a/b holds /a/b/c, not /a/bc.
 * Neither argument is resolved; pass realpath() results. */
bool mcpcfg_path_within(const char *dir, const char *path);

/* Validates raw (borrowed, not modified) as the config of server `name` and
 * returns a new normalized object, or NULL with a one-line reason (which
 * does not repeat the server name) in reason[reasonlen]. ctx may be NULL for
 * a config.toml entry. warnings, when not NULL, must be a JSON array: notes
 * that do not fail the server (a plugin's declared environment_id being
 * replaced) are appended to it as strings that name the server. */
json_t *mcpcfg_normalize(const char *name, json_t *raw,
			 const struct mcpcfg_ctx *ctx, json_t *warnings,
			 char *reason, size_t reasonlen);

#endif
