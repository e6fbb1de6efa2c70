/* config_gateway.c - see config_gateway.h. */
#include "config_gateway.h"

#include <errno.h>
#include <string.h>

#include "jsonutil.h"
#include "mcpcfg.h"
#include "toml.h"
#include "tomlfile.h"
#include "utf8.h"
#include "util.h"
#include "valid.h"

#define TABLE "mcp_gateway"
#define PROFILE_NAME_MAX 64u
#define ROOT_ID_MAX 1024u
#define ROOT_PATH_MAX 4096u
#define SKEW_MAX 3600
#define SKEW_DEFAULT 30

enum kind { K_STR, K_LIST, K_SKEW, K_PROFILES };

static const struct gkey {
	const char *key;
	enum kind kind;
} gateway_keys[] = {
	{ "auth", K_STR },
	{ "token_file", K_STR },
	{ "token_sha256", K_STR },
	{ "shared_secret_file", K_STR },
	{ "issuer", K_STR },
	{ "audience", K_STR },
	{ "max_clock_skew_seconds", K_SKEW },
	{ "allowed_origins", K_LIST },
	{ "resource", K_STR },
	{ "authorization_servers", K_LIST },
	{ "scopes_supported", K_LIST },
	{ "profiles", K_PROFILES },
};

static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* A string without control bytes (they could end a header line). */
static int get_str(struct tomlfile *f, json_t *obj, const char *base, const char *key,
		   const char **out)
{
	char e[256];

	if (!json_object_get(obj, key)) /* point at the table that lacks it */
		return tomlfile_fail(f, base, "missing required field '%s'", key);
	if (jsonu_get_str(obj, key, true, out, e, sizeof(e)) < 0)
		return tomlfile_fail_key(f, base, key, "%s", e);
	if (!**out || strlen(*out) > CONFIG_GATEWAY_MAX_STR || !printable(*out))
		return tomlfile_fail_key(f, base, key,
					 "'%s' must be a non-empty string of at most %u printable "
					 "bytes", key, CONFIG_GATEWAY_MAX_STR);
	return 0;
}

static int get_list(struct tomlfile *f, json_t *obj, const char *base, const char *key,
		    json_t **out)
{
	char e[256];
	json_t *v;
	size_t i;

	if (jsonu_get_str_array(obj, key, true, CONFIG_GATEWAY_MAX_LIST, out, e, sizeof(e)) < 0)
		return tomlfile_fail_key(f, base, key, "%s", e);
	json_array_foreach(*out, i, v)
		if (!json_string_length(v) || json_string_length(v) > CONFIG_GATEWAY_MAX_STR ||
		    !printable(json_string_value(v)))
			return tomlfile_fail_key(f, base, key,
						 "'%s' holds an empty, too long or unprintable "
						 "string", key);
	return 0;
}

/* ---- profiles ---------------------------------------------------------- */

static bool root_path_ok(const char *p)
{
	return (p[0] == '/' || strncmp(p, "file:", 5) == 0) && strlen(p) <= ROOT_PATH_MAX;
}

static int root_load(struct tomlfile *f, const char *base, size_t i, json_t *r, json_t *out)
{
	_cleanup_free_ char *rbase = xasprintf("%s.roots[%zu]", base, i);
	const char *id = NULL, *env = NULL, *path = NULL, *key;
	json_t *v;

	if (!json_is_object(r))
		return tomlfile_fail(f, rbase, "a root is a table {id, environment_id, path}");
	json_object_foreach(r, key, v)
		if (strcmp(key, "id") && strcmp(key, "environment_id") && strcmp(key, "path"))
			return tomlfile_fail_key(f, rbase, key, "unknown key '%.*s' in a root",
						 UTF8_CUT(key, 64));
	if (get_str(f, r, rbase, "id", &id) < 0 || get_str(f, r, rbase, "environment_id", &env) < 0 ||
	    get_str(f, r, rbase, "path", &path) < 0)
		return -EINVAL;
	if (strlen(id) > ROOT_ID_MAX)
		return tomlfile_fail_key(f, rbase, "id", "a root id has at most %u bytes",
					 ROOT_ID_MAX);
	if (!valid_env_id(env))
		return tomlfile_fail_key(f, rbase, "environment_id",
					 "'environment_id' is not a valid environment id");
	if (!root_path_ok(path))
		return tomlfile_fail_key(f, rbase, "path",
					 "'path' must be an absolute path or a file: URI");
	json_array_foreach(out, i, v)
		if (!strcmp(json_string_value(json_object_get(v, "id")), id))
			return tomlfile_fail_key(f, rbase, "id", "root id '%.*s' is a duplicate",
						 UTF8_CUT(id, 64));
	json_array_append_new(out, json_pack("{s:s, s:s, s:s}", "id", id, "environment_id", env,
					     "path", path));
	return 0;
}

static int servers_load(struct tomlfile *f, const char *base, json_t *p, json_t *out)
{
	json_t *list, *v;
	size_t i;

	if (get_list(f, p, base, "servers", &list) < 0)
		return -EINVAL;
	json_array_foreach(list, i, v)
		if (!mcpcfg_name_valid(json_string_value(v)))
			return tomlfile_fail_key(f, base, "servers",
						 "'servers' holds '%.*s', not a server name",
						 UTF8_CUT(json_string_value(v), 64));
	json_object_set(out, "servers", list);
	return 0;
}

static int profile_load(struct tomlfile *f, const char *name, json_t *p, json_t *profiles)
{
	_cleanup_free_ char *pbase = toml_path_join(TABLE ".profiles", name);
	json_t *out, *roots = NULL, *r;
	const char *key;
	size_t i;

	if (!valid_ident(name, PROFILE_NAME_MAX))
		return tomlfile_fail(f, pbase, "profile name '%.*s': 1-%u of [A-Za-z0-9_-]",
				     UTF8_CUT(name, 64), PROFILE_NAME_MAX);
	if (!json_is_object(p))
		return tomlfile_fail(f, pbase, "profile '%s' must be a table", name);
	json_object_foreach(p, key, r)
		if (strcmp(key, "roots") && strcmp(key, "servers"))
			return tomlfile_fail_key(f, pbase, key, "unknown key '%.*s' in a profile",
						 UTF8_CUT(key, 64));
	out = json_pack("{s:[]}", "roots");
	json_object_set_new(profiles, name, out);
	if (json_object_get(p, "servers") && servers_load(f, pbase, p, out) < 0)
		return -EINVAL;
	roots = json_object_get(p, "roots");
	if (!roots)
		return 0;
	if (!json_is_array(roots) || json_array_size(roots) > CONFIG_GATEWAY_MAX_ROOTS)
		return tomlfile_fail_key(f, pbase, "roots", "'roots' must be an array of at most %u "
					 "tables", CONFIG_GATEWAY_MAX_ROOTS);
	json_array_foreach(roots, i, r)
		if (root_load(f, pbase, i, r, json_object_get(out, "roots")) < 0)
			return -EINVAL;
	return 0;
}

static int profiles_load(struct tomlfile *f, json_t *v, json_t *out)
{
	json_t *profiles = json_object(), *p;
	const char *name;

	json_object_set_new(out, "profiles", profiles);
	if (!json_is_object(v) || json_object_size(v) > CONFIG_GATEWAY_MAX_PROFILES)
		return tomlfile_fail(f, TABLE ".profiles", "'profiles' must be a table of at most "
				     "%u profiles", CONFIG_GATEWAY_MAX_PROFILES);
	json_object_foreach(v, name, p)
		if (profile_load(f, name, p, profiles) < 0)
			return -EINVAL;
	return 0;
}

/* ---- the table --------------------------------------------------------- */

static int key_load(struct tomlfile *f, json_t *table, const char *key, json_t *v, json_t *out)
{
	const char *s;
	json_t *list;
	int64_t n;
	char e[256];

	for (size_t i = 0; i < ARRAY_SIZE(gateway_keys); i++) {
		if (strcmp(gateway_keys[i].key, key))
			continue;
		switch (gateway_keys[i].kind) {
		case K_STR:
			if (get_str(f, table, TABLE, key, &s) < 0)
				return -EINVAL;
			json_object_set_new(out, key, json_string(s));
			return 0;
		case K_LIST:
			if (get_list(f, table, TABLE, key, &list) < 0)
				return -EINVAL;
			json_object_set(out, key, list);
			return 0;
		case K_SKEW:
			if (jsonu_get_int(table, key, true, 0, SKEW_MAX, &n, e, sizeof(e)) < 0)
				return tomlfile_fail_key(f, TABLE, key, "%s", e);
			json_object_set_new(out, key, json_integer(n));
			return 0;
		case K_PROFILES:
			return profiles_load(f, v, out);
		}
	}
	return tomlfile_fail_key(f, TABLE, key, "unknown key '%.*s' in [" TABLE "]",
				 UTF8_CUT(key, 64));
}

static bool hex64(const char *s)
{
	return strlen(s) == 64 && strspn(s, "0123456789abcdefABCDEF") == 64;
}

/* The first of keys present in out (to point an error at), else "auth". */
static const char *first_of(json_t *out, const char *const *keys)
{
	for (; *keys; keys++)
		if (json_object_get(out, *keys))
			return *keys;
	return "auth";
}

static const char *const token_keys[] = { "token_file", "token_sha256", NULL };
static const char *const jwt_keys[] = { "shared_secret_file", "issuer", "audience",
					"max_clock_skew_seconds", NULL };
static const char *const secret_keys[] = { "token_file", "token_sha256", "shared_secret_file",
					   "issuer", "audience", "max_clock_skew_seconds", NULL };

/* The auth mode and the settings it needs, nothing more. */
static int auth_check(struct tomlfile *f, json_t *out)
{
	const char *auth = json_string_value(json_object_get(out, "auth"));
	bool tf = json_object_get(out, "token_file"), th = json_object_get(out, "token_sha256");
	bool sf = json_object_get(out, "shared_secret_file");
	bool jwt_claims = json_object_get(out, "issuer") || json_object_get(out, "audience") ||
			  json_object_get(out, "max_clock_skew_seconds");

	if (!strcmp(auth, "capability-token")) {
		if (tf == th)
			return tomlfile_fail_key(f, TABLE, "auth", "auth = \"capability-token\" needs "
						 "exactly one of token_file and token_sha256");
		if (th && !hex64(json_string_value(json_object_get(out, "token_sha256"))))
			return tomlfile_fail_key(f, TABLE, "token_sha256",
						 "'token_sha256' must be 64 hex digits");
		if (sf || jwt_claims)
			return tomlfile_fail_key(f, TABLE, first_of(out, jwt_keys),
						 "shared_secret_file, issuer, "
						 "audience and max_clock_skew_seconds go with "
						 "auth = \"signed-bearer-token\"");
	} else if (!strcmp(auth, "signed-bearer-token")) {
		if (!sf || tf || th)
			return tomlfile_fail_key(f, TABLE, tf || th ? first_of(out, token_keys) : "auth",
						 "auth = \"signed-bearer-token\" "
						 "needs shared_secret_file (and no token_file or "
						 "token_sha256)");
		if (!json_object_get(out, "max_clock_skew_seconds"))
			json_object_set_new(out, "max_clock_skew_seconds",
					    json_integer(SKEW_DEFAULT));
	} else if (!strcmp(auth, "none")) {
		if (tf || th || sf || jwt_claims)
			return tomlfile_fail_key(f, TABLE, first_of(out, secret_keys),
						 "token and secret settings need "
						 "auth = \"capability-token\" or "
						 "\"signed-bearer-token\"");
	} else {
		return tomlfile_fail_key(f, TABLE, "auth", "'auth' must be \"none\", "
					 "\"capability-token\" or \"signed-bearer-token\"");
	}
	return 0;
}

json_t *config_gateway_default(void)
{
	return json_pack("{s:s, s:{}}", "auth", "none", "profiles");
}

int config_gateway_load(struct tomlfile *f, json_t *v, json_t **out)
{
	json_t *o = config_gateway_default(), *x;
	const char *key;

	if (!json_is_object(v)) {
		json_decref(o);
		return tomlfile_fail(f, TABLE, "'" TABLE "' must be a table");
	}
	json_object_foreach(v, key, x) {
		if (key_load(f, v, key, x, o) < 0) {
			json_decref(o);
			return -EINVAL;
		}
	}
	if (auth_check(f, o) < 0) {
		json_decref(o);
		return -EINVAL;
	}
	*out = o;
	return 0;
}
