/* fuzz_mcpcfg.c - libFuzzer target for MCP server config normalization
 * (common/mcpcfg.c): what a plugin's .mcp.json entry or a config.toml
 * [mcp_servers.X] table becomes before it travels over the link.
 *
 * Input: one byte picking the name and the context (config.toml, a plugin
 * on the local executor, a plugin on a remote one), then JSON (the server's
 * config). Beyond "no crash, no leak": a config is either normalized with an
 * empty reason or refused with a one-line reason; a normalized config has
 * the shape mcpcfg.h promises (name, transport and the fields that are
 * always present) and normalizing the same input again gives the same
 * encoding.
 */
#include "mcpcfg.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void expect(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_mcpcfg: %s\n", what);
		abort();
	}
}

static void check_shape(json_t *out, const char *name)
{
	const char *t = json_string_value(json_object_get(out, "transport"));

	expect(json_is_string(json_object_get(out, "name")) &&
	       strcmp(json_string_value(json_object_get(out, "name")), name) == 0, "name");
	expect(t && (strcmp(t, "stdio") == 0 || strcmp(t, "http") == 0), "transport");
	expect(json_is_string(json_object_get(out, "environment_id")), "environment_id");
	expect(json_is_real(json_object_get(out, "startup_timeout_sec")) &&
	       json_real_value(json_object_get(out, "startup_timeout_sec")) > 0, "startup timeout");
	expect(json_is_real(json_object_get(out, "tool_timeout_sec")) &&
	       json_real_value(json_object_get(out, "tool_timeout_sec")) > 0, "tool timeout");
	if (strcmp(t, "stdio") == 0) {
		expect(json_is_string(json_object_get(out, "command")), "command");
		expect(json_is_array(json_object_get(out, "args")), "args");
		expect(json_is_object(json_object_get(out, "env")), "env");
		expect(json_is_array(json_object_get(out, "env_vars")), "env_vars");
		expect(!json_object_get(out, "url"), "stdio config with a url");
	} else {
		expect(json_is_string(json_object_get(out, "url")), "url");
		expect(json_is_object(json_object_get(out, "http_headers")), "http_headers");
		expect(!json_object_get(out, "command"), "http config with a command");
	}
}

static char *normalize(const char *name, json_t *raw, const struct mcpcfg_ctx *ctx,
		       char *reason, size_t len)
{
	json_t *warnings = json_array();
	json_t *out = mcpcfg_normalize(name, raw, ctx, warnings, reason, len);
	char *enc = NULL;

	expect(memchr(reason, '\0', len) != NULL, "reason not terminated");
	if (out) {
		check_shape(out, name);
		enc = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
		expect(enc != NULL, "encoding failed");
	} else {
		expect(reason[0] != '\0', "refused without a reason");
		expect(!strchr(reason, '\n'), "reason spans lines");
	}
	json_decref(out);
	json_decref(warnings);
	return enc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = { "srv", "a-b_C9", "bad name", "" };
	const struct mcpcfg_ctx ctxs[] = {
		{ 0 },
		{ .from_plugin = true, .environment_id = "local", .environment_is_local = true,
		  .root = "/usr" },
		{ .from_plugin = true, .environment_id = "remote-1", .root = "/usr" },
	};
	char reason[256] = "", again[256] = "";
	json_error_t jerr;
	json_t *raw;
	char *a, *b;
	const char *name;
	const struct mcpcfg_ctx *ctx;

	if (size == 0)
		return 0;
	name = names[data[0] % 4];
	ctx = (data[0] / 4) % 4 == 0 ? NULL : &ctxs[(data[0] / 4) % 3];
	raw = json_loadb((const char *)data + 1, size - 1, JSON_DECODE_ANY | JSON_ALLOW_NUL,
			 &jerr);
	if (!raw)
		return 0;
	a = normalize(name, raw, ctx, reason, sizeof(reason));
	b = normalize(name, raw, ctx, again, sizeof(again));
	expect((a == NULL) == (b == NULL) && (!a || strcmp(a, b) == 0), "not deterministic");
	expect(a || strcmp(reason, again) == 0, "reason not deterministic");
	/* A tiny reason buffer truncates, never overflows. */
	free(normalize(name, raw, ctx, reason, 8));
	free(a);
	free(b);
	json_decref(raw);
	return 0;
}
