/* rpc_catalog.c - hooks/list, skills/list and plugin/installed: what a Codex
 * installation discovers on its own machine (hooks, skills, marketplace
 * plugins) and tandem has none of. tandem's plugins are capability roots on
 * executors, selected per thread (thread/start selectedCapabilityRoots) and
 * shown by mcpServerStatus/list, not installed marketplace plugins; it runs
 * no hooks and loads no skills. So each answer is honestly empty, shaped
 * per the schema: hooks/list and skills/list one empty entry per cwd asked
 * about, plugin/installed no marketplace. Params are still checked.
 */
#include "rpc.h"

#include "client.h"
#include "param.h"
#include "session.h"

/* [{cwd, <what>: [], errors: [] (, warnings: [])}] for each cwd. */
static json_t *per_cwd(json_t *cwds, const char *what, bool warnings)
{
	json_t *data = json_array(), *v;
	size_t i;

	json_array_foreach(cwds, i, v) {
		json_t *e = json_pack("{s:O, s:[], s:[]}", "cwd", v, what, "errors");

		if (warnings)
			json_object_set_new(e, "warnings", json_array());
		json_array_append_new(data, e);
	}
	return data;
}

void rpc_hooks_list(struct req *r, json_t *params)
{
	json_t *cwds;
	const char *tid;

	if (param_str_array(r, params, "cwds", &cwds) < 0 ||
	    param_str(r, params, "threadId", false, &tid) < 0)
		return;
	req_reply(r, json_pack("{s:o}", "data", per_cwd(cwds, "hooks", true)));
}

void rpc_skills_list(struct req *r, json_t *params)
{
	json_t *cwds;
	bool reload = false;

	if (param_str_array(r, params, "cwds", &cwds) < 0 ||
	    param_bool(r, params, "forceReload", &reload) < 0)
		return;
	req_reply(r, json_pack("{s:o}", "data", per_cwd(cwds, "skills", false)));
}

void rpc_plugin_installed(struct req *r, json_t *params)
{
	json_t *cwds, *names;

	if (param_str_array(r, params, "cwds", &cwds) < 0 ||
	    param_str_array(r, params, "installSuggestionPluginNames", &names) < 0)
		return;
	req_reply(r, json_pack("{s:[], s:[]}", "marketplaces", "marketplaceLoadErrors"));
}
