/* plugin.h - resolve a selected capability root into plugin metadata and
 * MCP server configs (the executor side of ROOT_RESOLVE).
 *
 * Rules (README "tandem-executor"): the root is canonicalized and checked
 * against the --root-allow list; the manifest is searched at
 * .codex-plugin/plugin.json, then .claude-plugin/plugin.json (none: not a
 * plugin, no servers, no error); servers come from the manifest's
 * mcpServers ("./file.json" or an inline map) or, when absent, from
 * <root>/.mcp.json (missing: no servers). Every file read must resolve,
 * symlinks followed, to a regular file inside the root.
 *
 * A server file is {"mcpServers": {...}} or a bare {name: config} map; a
 * top-level "mcpServers" key always means the wrapped form. Each server goes
 * through mcpcfg_normalize() bound to the owning environment: good ones land
 * in `servers`, bad ones in `invalid` with their reason, so one bad server
 * never hides the others. Problems with a whole file (unreadable, escaping
 * the root, invalid JSON, wrong top-level shape) fail the whole root, and a
 * failed root is not cached by the orchestrator, so fixing the file is
 * enough.
 *
 * Every file is opened below a descriptor of the root (common/pathfd.h), so
 * a path swapped for a symlink between two resolutions (or during one)
 * cannot lead a read outside the root.
 *
 * The module remembers the roots it resolved (at most PLUGIN_KNOWN_MAX, the
 * least recently resolved forgotten first) with each server's sandbox keys,
 * for MCP_START: the orchestrator's MCP_START names a plugin server's cwd,
 * which lies inside its root, and the executor boxes the server by what it
 * read itself. Touches the filesystem; no logging; loop thread only.
 */
#ifndef TANDEM_PLUGIN_H
#define TANDEM_PLUGIN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define PLUGIN_MAX_SERVERS 256          /* more are dropped with a warning */
#define PLUGIN_FILE_MAX_DEFAULT (1024 * 1024)
#define PLUGIN_ROOT_ID_MAX 1024         /* bytes in a root id */
#define PLUGIN_META_MAX (16 * 1024)     /* bytes in a manifest string */
#define PLUGIN_KNOWN_MAX 1024           /* resolved roots remembered */

struct plugin_opts {
	/* --root-allow prefixes, already canonical (realpath at start-up);
	 * n_allow == 0 allows every root. */
	const char *const *allow_prefixes;
	size_t n_allow;
	/* The executor's environment id (NULL: "local") and whether it is the
	 * implicit local executor; servers are bound to it. */
	const char *environment_id;
	bool environment_is_local;
	/* Largest manifest or server file read; 0: PLUGIN_FILE_MAX_DEFAULT. */
	size_t max_file_bytes;
};

/* Resolves root_path (an absolute path, or a file: URI whose host is empty
 * or "localhost", percent-decoded; no query or fragment) under the id
 * root_id.
 *
 * On success returns 0 and *out is a new object the caller owns:
 *   {root_id, path (canonical), is_plugin,
 *    name?, version?, display_name?, description?, manifest_path?,
 *    servers: [mcpcfg normalized objects],
 *    invalid: [{name, reason}],
 *    warnings: [string]}
 * display_name comes from displayName or interface.displayName.
 *
 * On failure *out is untouched, reason[reasonlen] says why, and the result
 * is -ENOENT (root missing), -ENOTDIR (root not a directory), -EACCES
 * (outside the allow list, or permission denied; a path outside the list
 * gets -EACCES whether or not it exists), -ENAMETOOLONG, or -EINVAL (bad id
 * or URI; a manifest or server file that escapes the root, is not a regular
 * file, is too large, is not valid JSON (reason has path:line:column) or has
 * the wrong shape).
 */
int plugin_resolve(const struct plugin_opts *o, const char *root_id,
		   const char *root_path, json_t **out, char *reason,
		   size_t reasonlen);

/* The longest remembered root that holds the canonical path `path`, or
 * NULL. Borrowed: valid until the next plugin_resolve or plugin_forget_all. */
const char *plugin_known_root(const char *path);

/* {sandbox?, network?} of server `name` in the last resolution of root
 * (borrowed, as above), or NULL when unknown. */
json_t *plugin_known_server(const char *root, const char *name);

/* Forgets every remembered root (at exit). */
void plugin_forget_all(void);

#endif
