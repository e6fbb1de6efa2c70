/* rpc_model.c - model/list and collaborationMode/list.
 *
 * model/list answers what tandem would use: first the configured provider's
 * model (config.toml's `model`, else the default a turn asks for, turn.c),
 * the default; then the ids the provider's own listing (GET {base_url}/
 * models) returns when it answers within 5 s. A listing gives bare ids, so
 * every entry says only what tandem knows: its id as its name, no
 * reasoning-effort options (tandem sends no effort: the provider's default
 * applies), text input; a provider without a listing (most compatible
 * ones) gives the configured model alone. A thread/start `model`
 * overrides the default per thread. Another configured provider than the
 * current one: tandem knows none of its models (an empty list).
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
#include "log.h"
#include "param.h"
#include "session.h"
#include "turn.h"
#include "util.h"

static json_t *entry(const char *id, const char *desc, bool dflt)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:s, s:[], s:[s], s:n, s:n}", "id", id,
			 "model", id, "displayName", id, "description", desc, "hidden", 0,
			 "isDefault", dflt, "defaultReasoningEffort", "medium",
			 "supportedReasoningEfforts", "inputModalities", "text", "upgrade",
			 "upgradeInfo");
}

static json_t *model_entry(const struct config *c)
{
	const char *m = c->model ? c->model : CONFIG_DEFAULT_MODEL;
	_cleanup_free_ char *desc =
		xasprintf("%s (model provider '%s')",
			  c->model ? "config.toml's model" : "tandem's default model",
			  c->model_provider);

	return entry(m, desc, true);
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

/* A model/list waiting for the provider's listing. */
struct mlist {
	struct req *r;
	struct model_listing *l;
	char *cursor;
	int64_t limit;
};

static void mlist_free(struct mlist *m)
{
	free(m->cursor);
	free(m);
}

/* The page of all (stolen) that the request asks for. */
static void answer(struct req *r, json_t *all, const char *cursor, int64_t limit)
{
	json_t *data;
	size_t off, i;

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

static void listed_cb(json_t *ids, const char *why, void *arg)
{
	struct mlist *m = arg;
	const struct config *c = config_current();
	json_t *all = json_array(), *v;
	_cleanup_free_ char *desc = NULL;
	const char *dflt;
	size_t i;

	if (c) {
		json_array_append_new(all, model_entry(c));
		dflt = json_string_value(json_object_get(json_array_get(all, 0), "id"));
		desc = xasprintf("listed by model provider '%s'", c->model_provider);
		json_array_foreach(ids, i, v)
			if (strcmp(json_string_value(v), dflt) != 0)
				json_array_append_new(all, entry(json_string_value(v), desc, false));
	}
	if (!ids)
		log_debug("model/list: the provider's listing is not used: %s", why);
	answer(m->r, all, m->cursor, m->limit);
	mlist_free(m);
}

static void mlist_cancel_cb(void *arg)
{
	struct mlist *m = arg;

	model_list_cancel(m->l);
	req_drop(m->r);
	mlist_free(m);
}

void rpc_model_list(struct req *r, json_t *params)
{
	const struct config *c = config_current();
	const char *cursor, *provider;
	int64_t limit = 0;
	bool hidden = false;
	struct model_listing *l;
	struct mlist *m;

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
	if (provider && strcmp(provider, c->model_provider) != 0) {
		answer(r, json_array(), cursor, limit);
		return;
	}
	m = xcalloc(1, sizeof(*m));
	m->r = r;
	m->cursor = cursor ? xstrdup(cursor) : NULL;
	m->limit = limit;
	req_on_cancel(r, mlist_cancel_cb, m);
	/* listed_cb may run at once (no base_url): then m is gone */
	l = turn_models(config_provider(c), listed_cb, m);
	if (l)
		m->l = l;
}

void rpc_collaboration_mode_list(struct req *r, json_t *params)
{
	(void)params;
	req_reply(r, json_pack("{s:[]}", "data"));
}
