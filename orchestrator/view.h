/* view.h - the MCP manager's three views of which servers exist.
 *
 *   configured: config.toml [mcp_servers] then the servers of the thread's
 *               ready plugin roots, in root order (a later name wins)
 *   runtime:    configured with every contributor applied in order; a
 *               contributor returns Set{name, config} or Remove{name} ops
 *   effective:  runtime after auth gating (codex_apps only with ChatGPT auth)
 *
 * A view is a JSON object: name -> {"config": {...}, "plugin_id": id|null}.
 */
#ifndef TANDEM_VIEW_H
#define TANDEM_VIEW_H

#include <jansson.h>
#include <stdbool.h>

/* Appends ops to `ops` (a JSON array) after reading `view` (read-only):
 * {"op":"set","name":N,"config":{...}} or {"op":"remove","name":N}. */
typedef void (*view_contributor_fn)(json_t *view, json_t *ops, void *arg);

void view_add_contributor(const char *name, view_contributor_fn fn, void *arg);
void view_clear_contributors(void);

/* Entry helpers for building a configured view. */
void view_set(json_t *view, const char *name, json_t *config, const char *plugin_id);
json_t *view_runtime(json_t *configured);      /* new reference */
json_t *view_effective(json_t *runtime);       /* new reference */

/* Auth gating: whether ChatGPT auth is active (threads_account_changed sets
 * it on each login and logout). */
void view_set_chatgpt_auth(bool on);

#endif
