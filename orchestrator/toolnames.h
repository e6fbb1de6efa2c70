/* toolnames.h - how MCP tools are named for the model, and back.
 *
 * Each server becomes a namespace `mcp__<server>`, each tool a function in
 * it; every byte outside [A-Za-z0-9_] is turned into '_'. namespace + name
 * + 2 must fit in TOOLNAMES_MAX bytes; a name that would not fit, or that
 * collides with one already given out (e.g. "a-b" and "a_b"), becomes
 * <prefix>_<first 12 hex digits of SHA-1 of "server/tool">. A tool whose
 * name still cannot be made unique is left out (logged); it never takes
 * its server down. enabled_tools / disabled_tools are already applied by
 * srv_tools().
 *
 * The MCP gateway (gateway_scope.c) names tools and prompts by the same
 * rule in one flat space: <namespace without TOOLNAMES_NS_PREFIX>__<name>
 * ("my-docs" / "search" -> "my_docs__search"), the whole name within
 * TOOLNAMES_MAX bytes; a name that would not fit or is taken ("a__b" /
 * "c" against "a" / "b__c") becomes <prefix>_<12 hex digits of SHA-1 of
 * "server/tool">. toolmap_new, toolmap_add_flat, toolmap_entry.
 */
#ifndef TANDEM_TOOLNAMES_H
#define TANDEM_TOOLNAMES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define TOOLNAMES_MAX 64u
#define TOOLNAMES_NS_PREFIX "mcp__"

struct srv;
struct toolmap;

/* Builds the Responses API `tools` array (namespace objects) for these
 * servers (READY ones contribute tools) and the map back. Caller frees both. */
json_t *toolnames_build(struct srv *const *srvs, size_t n, struct toolmap **map);
/* Maps a function call back; false when the model named no tool of ours. */
bool toolmap_lookup(const struct toolmap *m, const char *ns, const char *name,
		    const char **server, const char **tool);
size_t toolmap_count(const struct toolmap *m);
/* An empty map. */
struct toolmap *toolmap_new(void);
/* Gives (server, tool) its flat gateway name, unique among the entries
 * already in m, and records it: returns the new entry's index, or -1 when
 * no unique name can be made (nothing recorded). Strings are copied. */
ssize_t toolmap_add_flat(struct toolmap *m, const char *server, const char *tool);
/* Entry i (< toolmap_count): the model's namespace and name (flat: "" and
 * the gateway name), the raw server and tool names. Borrowed from the map. */
void toolmap_entry(const struct toolmap *m, size_t i, const char **ns, const char **name,
		   const char **server, const char **tool);
struct toolmap *toolmap_free(struct toolmap *m);

/* Exposed for tests: sanitize into out (size >= strlen(in)+1). */
void toolnames_sanitize(const char *in, char *out);

#endif
