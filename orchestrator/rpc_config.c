/* rpc_config.c - config/read and configRequirements/read: the configuration
 * in force, as Codex's frontends read it at start-up (a failed config/read
 * ends the TUI).
 *
 * tandem has one layer: the user's <home>/config.toml (config.h), read
 * whole; there are no system, project, managed or command-line layers, and
 * no requirements (managed constraints). The effective config is that
 * file's table as read, every key (Codex's own ones tandem ignores
 * included), so what a frontend shows is what the file says, except for
 * values that may be credentials (redact). A layer's
 * version is a fingerprint of its content ("sha256:" + hex of its compact,
 * key-sorted JSON), which changes when a reload changes the file.
 */
#include "rpc.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "config.h"
#include "param.h"
#include "session.h"
#include "util.h"

/* Nesting of the origins walk: TOML tables nest far less in practice, and
 * the file's size bounds the rest. */
#define ORIGIN_DEPTH_MAX 32
#define CONFIG_REDACTED "<redacted>"

static json_t *layer_version(json_t *doc)
{
	unsigned char h[crypto_hash_sha256_BYTES];
	char hex[2 * sizeof(h) + 1];
	_cleanup_free_ char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);

	if (!text)
		return json_string("sha256:");
	crypto_hash_sha256(h, (const unsigned char *)text, strlen(text));
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	return json_sprintf("sha256:%s", hex);
}

/* Values that may hold credentials are not sent back: a header's value
 * (http_headers: "Authorization" and the like), a server's env values, a
 * bearer token. The keys stay, so a frontend sees what is set. */
static void redact(json_t *table, int depth)
{
	const char *k;
	json_t *v;

	json_object_foreach(table, k, v) {
		if (json_is_string(v) && (!strcmp(k, "bearer_token") ||
					  !strcmp(k, "experimental_bearer_token"))) {
			json_object_set_new(table, k, json_string(CONFIG_REDACTED));
		} else if (json_is_object(v) && (!strcmp(k, "http_headers") || !strcmp(k, "env"))) {
			const char *hk;
			json_t *hv;

			json_object_foreach(v, hk, hv)
				json_object_set_new(v, hk, json_string(CONFIG_REDACTED));
		} else if (json_is_object(v) && depth < ORIGIN_DEPTH_MAX) {
			redact(v, depth + 1);
		}
	}
}

/* Each leaf key's dotted path -> meta (tables are walked, arrays and
 * scalars are leaves, as Codex reports them). */
static void add_origins(json_t *origins, const char *prefix, json_t *table, json_t *meta,
			int depth)
{
	const char *k;
	json_t *v;

	json_object_foreach(table, k, v) {
		_cleanup_free_ char *path = prefix ? xasprintf("%s.%s", prefix, k) : xstrdup(k);

		if (json_is_object(v) && depth < ORIGIN_DEPTH_MAX)
			add_origins(origins, path, v, meta, depth + 1);
		else
			json_object_set(origins, path, meta);
	}
}

void rpc_config_read(struct req *r, json_t *params)
{
	const struct config *c = config_current();
	_cleanup_free_ char *file = NULL;
	const char *cwd;
	bool layers = false;
	json_t *meta, *origins, *out, *doc;

	/* cwd would pick a project layer; tandem has none, but a bad one is
	 * still refused. */
	if (param_str(r, params, "cwd", false, &cwd) < 0 ||
	    param_bool(r, params, "includeLayers", &layers) < 0)
		return;
	if (!c) {
		req_error(r, CLIENT_INTERNAL_ERROR, "no configuration loaded");
		return;
	}
	/* The layer is named by the file it is read from, present or not. */
	file = c->path ? xstrdup(c->path) : xasprintf("%s/%s", config_home(), CONFIG_FILE);
	meta = json_pack("{s:{s:s, s:s}, s:o}", "name", "type", "user", "file", file, "version",
			 layer_version(c->doc));
	doc = json_deep_copy(c->doc);
	redact(doc, 0);
	origins = json_object();
	add_origins(origins, NULL, doc, meta, 0);
	out = json_pack("{s:O, s:o}", "config", doc, "origins", origins);
	if (layers)
		json_object_set_new(out, "layers",
				    json_pack("[{s:O, s:O, s:O, s:n}]", "name",
					      json_object_get(meta, "name"), "version",
					      json_object_get(meta, "version"), "config", doc,
					      "disabledReason"));
	else
		json_object_set_new(out, "layers", json_null());
	json_decref(meta);
	json_decref(doc);
	req_reply(r, out);
}

/* No managed requirements: tandem enforces none beyond its own config. */
void rpc_config_requirements_read(struct req *r, json_t *params)
{
	(void)params;
	req_reply(r, json_pack("{s:n}", "requirements"));
}
