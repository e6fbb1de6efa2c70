/* view.c - see view.h. */
#include "view.h"

#include <string.h>

#include "log.h"
#include "util.h"

#define MAX_CONTRIBUTORS 16

static struct {
	const char *name;
	view_contributor_fn fn;
	void *arg;
} contributors[MAX_CONTRIBUTORS];
static unsigned n_contributors;
static bool chatgpt_auth;

void view_add_contributor(const char *name, view_contributor_fn fn, void *arg)
{
	if (n_contributors == MAX_CONTRIBUTORS)
		return;
	contributors[n_contributors].name = name;
	contributors[n_contributors].fn = fn;
	contributors[n_contributors++].arg = arg;
}

void view_clear_contributors(void) { n_contributors = 0; }
void view_set_chatgpt_auth(bool on) { chatgpt_auth = on; }

void view_set(json_t *view, const char *name, json_t *config, const char *plugin_id)
{
	/* Deleting first moves a replaced name to the end: later wins, in order. */
	json_object_del(view, name);
	json_object_set_new(view, name,
			    json_pack("{s:O, s:o}", "config", config, "plugin_id",
				      plugin_id ? json_string(plugin_id) : json_null()));
}

static void apply_ops(json_t *view, json_t *ops, const char *who)
{
	json_t *op;
	size_t i;

	json_array_foreach(ops, i, op) {
		const char *kind = json_string_value(json_object_get(op, "op"));
		const char *name = json_string_value(json_object_get(op, "name"));
		json_t *cfg = json_object_get(op, "config");

		if (!kind || !name) {
			log_warn("contributor '%s': malformed op ignored", who);
		} else if (strcmp(kind, "remove") == 0) {
			json_object_del(view, name);
		} else if (strcmp(kind, "set") == 0 && json_is_object(cfg)) {
			view_set(view, name, cfg, NULL);
		} else {
			log_warn("contributor '%s': unknown op '%s' ignored", who, kind);
		}
	}
}

json_t *view_runtime(json_t *configured)
{
	json_t *view = json_deep_copy(configured);

	for (unsigned i = 0; i < n_contributors; i++) {
		json_t *ops = json_array();

		contributors[i].fn(view, ops, contributors[i].arg);
		apply_ops(view, ops, contributors[i].name);
		json_decref(ops);
	}
	return view;
}

json_t *view_effective(json_t *runtime)
{
	json_t *view = json_copy(runtime);

	/* The hosted apps server exists only for ChatGPT auth; an API-key
	 * session never gets it. */
	if (!chatgpt_auth)
		json_object_del(view, "codex_apps");
	return view;
}
