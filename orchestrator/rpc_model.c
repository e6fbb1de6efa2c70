/* rpc_model.c - model/list and collaborationMode/list.
 *
 * model/list answers what tandem would use: the configured provider's model
 * (config.toml's `model`, else the default a turn asks for, turn.c), one
 * entry. tandem does not query a provider's model listing (GET /models):
 * most Responses-compatible providers do not serve one, and those that do
 * return bare ids without the effort, modality and display data the Model
 * shape needs, which tandem would have to invent. A thread/start `model`
 * overrides the entry per thread. tandem sends no reasoning effort (the
 * provider's default applies: "medium" for OpenAI's reasoning models) and
 * text input only.
 *
 * collaborationMode/list: tandem has no collaboration modes (an empty list).
 */
#include "rpc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "config.h"
#include "param.h"
#include "session.h"
#include "util.h"

static json_t *model_entry(const struct config *c)
{
	const char *m = c->model ? c->model : CONFIG_DEFAULT_MODEL;
	_cleanup_free_ char *desc =
		xasprintf("%s (model provider '%s')",
			  c->model ? "config.toml's model" : "tandem's default model",
			  c->model_provider);

	return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:s, s:[], s:[s], s:n, s:n}", "id", m,
			 "model", m, "displayName", m, "description", desc, "hidden", 0,
			 "isDefault", 1, "defaultReasoningEffort", "medium",
			 "supportedReasoningEfforts", "inputModalities", "text", "upgrade",
			 "upgradeInfo");
}

/* A cursor is the decimal offset of the page's first entry, as a previous
 * page's nextCursor gave it. */
static int parse_cursor(struct req *r, const char *cursor, size_t n, size_t *off)
{
	char *end;
	unsigned long long v;

	*off = 0;
	if (!cursor)
		return 0;
	v = strtoull(cursor, &end, 10);
	if (!*cursor || *end || cursor[0] == '-' || v > n) {
		req_error(r, CLIENT_INVALID_PARAMS, "cursor: '%.64s' is not a model/list cursor",
			  cursor);
		return -EINVAL;
	}
	*off = (size_t)v;
	return 0;
}

void rpc_model_list(struct req *r, json_t *params)
{
	const struct config *c = config_current();
	const char *cursor, *provider;
	int64_t limit = 0;
	bool hidden = false;
	json_t *all, *data;
	size_t off, i;

	if (param_str(r, params, "cursor", false, &cursor) < 0 ||
	    param_bool(r, params, "includeHidden", &hidden) < 0 ||
	    param_int(r, params, "limit", 0, UINT32_MAX, &limit) < 0 ||
	    param_str(r, params, "modelProvider", false, &provider) < 0)
		return;
	if (!c) {
		req_error(r, CLIENT_INTERNAL_ERROR, "no configuration loaded");
		return;
	}
	if (provider && !json_object_get(c->model_providers, provider)) {
		req_error(r, CLIENT_INVALID_PARAMS, "modelProvider: no provider '%.100s'", provider);
		return;
	}
	all = json_array();
	/* Another configured provider: tandem knows none of its models. */
	if (!provider || strcmp(provider, c->model_provider) == 0)
		json_array_append_new(all, model_entry(c));
	if (parse_cursor(r, cursor, json_array_size(all), &off) < 0) {
		json_decref(all);
		return;
	}
	data = json_array();
	for (i = off; i < json_array_size(all) && (limit == 0 || (int64_t)(i - off) < limit); i++)
		json_array_append(data, json_array_get(all, i));
	req_reply(r, json_pack("{s:o, s:o}", "data", data, "nextCursor",
			       i < json_array_size(all) ? json_sprintf("%zu", i) : json_null()));
	json_decref(all);
}

void rpc_collaboration_mode_list(struct req *r, json_t *params)
{
	(void)params;
	req_reply(r, json_pack("{s:[]}", "data"));
}
