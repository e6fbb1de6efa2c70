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
 */
#ifndef TANDEM_TOOLNAMES_H
#define TANDEM_TOOLNAMES_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define TOOLNAMES_MAX 64u

struct srv;
struct toolmap;

/* Builds the Responses API `tools` array (namespace objects) for these
 * servers (READY ones contribute tools) and the map back. Caller frees both. */
json_t *toolnames_build(struct srv *const *srvs, size_t n, struct toolmap **map);
/* Maps a function call back; false when the model named no tool of ours. */
bool toolmap_lookup(const struct toolmap *m, const char *ns, const char *name,
		    const char **server, const char **tool);
size_t toolmap_count(const struct toolmap *m);
struct toolmap *toolmap_free(struct toolmap *m);

/* Exposed for tests: sanitize into out (size >= strlen(in)+1). */
void toolnames_sanitize(const char *in, char *out);

#endif
