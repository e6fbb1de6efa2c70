/* mcpcfg.c - see mcpcfg.h.
 *
 * One pass over the raw object, driven by a table that says which transport
 * each field belongs to and which function validates it. Every handler
 * writes its normalized value into a scratch object; defaults and the plugin
 * rules are applied afterwards, and the result is copied out in a fixed key
 * order so that the same config always encodes the same way on the wire.
 */
#include "mcpcfg.h"

#include "utf8.h"
#include "util.h"
#include "valid.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <sys/stat.h>

enum { T_STDIO = 1, T_HTTP = 2, T_BOTH = T_STDIO | T_HTTP };

struct norm {
	const struct mcpcfg_ctx *ctx; /* NULL for config.toml entries */
	const char *name;
	int transport;
	json_t *tmp; /* validated fields, in input order */
	char *reason;
	size_t reasonlen;
};

typedef int (*field_fn)(struct norm *n, const char *key, json_t *v);

static bool from_plugin(const struct norm *n)
{
	return n->ctx && n->ctx->from_plugin;
}

static const char *transport_name(int t)
{
	return t == T_STDIO ? "stdio" : "http";
}

__attribute__((format(printf, 2, 3))) static int fail(struct norm *n,
						       const char *fmt, ...)
{
	va_list ap;

	if (n->reasonlen) {
		va_start(ap, fmt);
		vsnprintf(n->reason, n->reasonlen, fmt, ap);
		va_end(ap);
		/* Quoted names come from the config (a plugin's .mcp.json): a
		 * newline in one would forge a line in the daemon's log. */
		for (char *p = n->reason; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
	}
	return -EINVAL;
}

bool mcpcfg_name_valid(const char *name) { return valid_ident(name, MCPCFG_NAME_MAX); }

bool mcpcfg_path_within(const char *dir, const char *path)
{
	size_t len = strlen(dir);

	/* "/" and "/a/b/" hold what lies below them: ignore trailing '/'. */
	while (len > 0 && dir[len - 1] == '/')
		len--;
	if (strncmp(dir, path, len) != 0)
		return false;
	return path[len] == '\0' || path[len] == '/';
}

/* Header values must not be able to end the header line. */
static bool header_value_valid(const char *s)
{
	return strpbrk(s, "\r\n") == NULL;
}

/* Checks that v is a bounded string without NUL bytes and stores it in *out.
 * `what` names the value in the reason. */
static int get_str(struct norm *n, const char *what, json_t *v, bool nonempty,
		   const char **out)
{
	const char *s;

	if (!json_is_string(v))
		return fail(n, "%s must be a string", what);
	s = json_string_value(v);
	if (json_string_length(v) > MCPCFG_STR_MAX)
		return fail(n, "%s is longer than %d bytes", what,
			    MCPCFG_STR_MAX);
	if (json_string_length(v) != strlen(s))
		return fail(n, "%s contains a NUL byte", what);
	if (nonempty && !*s)
		return fail(n, "%s must not be empty", what);
	*out = s;
	return 0;
}

static int f_type(struct norm *n, const char *key, json_t *v)
{
	(void)n, (void)key, (void)v; /* checked before the field pass */
	return 0;
}

static int f_string(struct norm *n, const char *key, json_t *v)
{
	char what[80];
	const char *s;
	int r;

	snprintf(what, sizeof(what), "'%s'", key);
	r = get_str(n, what, v, true, &s);
	if (r < 0)
		return r;
	json_object_set_new(n->tmp, key, json_string(s));
	return 0;
}

static int str_list(struct norm *n, const char *key, json_t *v, bool nonempty)
{
	json_t *out, *e;
	size_t i;

	if (!json_is_array(v))
		return fail(n, "'%s' must be an array of strings", key);
	if (json_array_size(v) > MCPCFG_LIST_MAX)
		return fail(n, "'%s' has more than %d entries", key,
			    MCPCFG_LIST_MAX);
	out = json_array();
	json_array_foreach(v, i, e) {
		char what[96];
		const char *s;

		snprintf(what, sizeof(what), "'%s[%zu]'", key, i);
		if (get_str(n, what, e, nonempty, &s) < 0) {
			json_decref(out);
			return -EINVAL;
		}
		json_array_append_new(out, json_string(s));
	}
	json_object_set_new(n->tmp, key, out);
	return 0;
}

static int f_args(struct norm *n, const char *key, json_t *v)
{
	return str_list(n, key, v, false); /* "" is a valid argument */
}

static int f_names(struct norm *n, const char *key, json_t *v)
{
	return str_list(n, key, v, true);
}

/* A {string: string} map whose keys pass key_ok; values pass val_ok when
 * given. */
static int str_map(struct norm *n, const char *key, json_t *v,
		   bool (*key_ok)(const char *), const char *key_rule,
		   bool (*val_ok)(const char *), const char *val_rule)
{
	const char *k;
	json_t *out, *e;

	if (!json_is_object(v))
		return fail(n, "'%s' must be a table of strings", key);
	if (json_object_size(v) > MCPCFG_LIST_MAX)
		return fail(n, "'%s' has more than %d entries", key,
			    MCPCFG_LIST_MAX);
	out = json_object();
	json_object_foreach(v, k, e) {
		char what[128];
		const char *s;

		snprintf(what, sizeof(what), "'%s' entry '%.*s'", key,
			 UTF8_CUT(k, 64));
		if (!key_ok(k)) {
			json_decref(out);
			return fail(n, "'%s' key '%.*s' is not %s", key,
				    UTF8_CUT(k, 64), key_rule);
		}
		if (get_str(n, what, e, false, &s) < 0) {
			json_decref(out);
			return -EINVAL;
		}
		if (val_ok && !val_ok(s)) {
			json_decref(out);
			return fail(n, "%s is not %s", what, val_rule);
		}
		json_object_set_new(out, k, json_string(s));
	}
	json_object_set_new(n->tmp, key, out);
	return 0;
}

static int f_env(struct norm *n, const char *key, json_t *v)
{
	return str_map(n, key, v, valid_env_name, "a variable name", NULL, NULL);
}

static int f_headers(struct norm *n, const char *key, json_t *v)
{
	return str_map(n, key, v, valid_header_name, "a header name",
		       header_value_valid, "a header value without CR/LF");
}

static int f_env_headers(struct norm *n, const char *key, json_t *v)
{
	return str_map(n, key, v, valid_header_name, "a header name",
		       valid_env_name, "a variable name");
}

static int f_env_name(struct norm *n, const char *key, json_t *v)
{
	int r = f_string(n, key, v);

	if (r == 0 && !valid_env_name(json_string_value(v)))
		return fail(n, "'%s' is not a variable name", key);
	return r;
}

/* One env_vars entry: "NAME" or {name, source}. Writes name and source. */
static int env_var_entry(struct norm *n, size_t i, json_t *e, const char **name,
			 const char **source)
{
	const char *k;
	json_t *v;

	*source = "remote"; /* a bare name is read where the server runs */
	if (json_is_string(e)) {
		*name = json_string_value(e);
		goto check;
	}
	if (!json_is_object(e))
		return fail(n, "'env_vars[%zu]' must be a name or {name, source}",
			    i);
	*name = NULL;
	json_object_foreach(e, k, v) {
		if (!strcmp(k, "name") && json_is_string(v))
			*name = json_string_value(v);
		else if (!strcmp(k, "source") && json_is_string(v))
			*source = json_string_value(v);
		else if (!strcmp(k, "name") || !strcmp(k, "source"))
			return fail(n, "'env_vars[%zu].%s' must be a string",
				    i, k);
		else
			return fail(n, "'env_vars[%zu]': unknown field '%.*s'",
				    i, UTF8_CUT(k, 64));
	}
	if (!*name)
		return fail(n, "'env_vars[%zu]' has no 'name'", i);
	if (strcmp(*source, "local") != 0 && strcmp(*source, "remote") != 0)
		return fail(n, "env_vars '%.*s': source must be 'local' or "
			       "'remote'", UTF8_CUT(*name, 64));
check:
	if (!valid_env_name(*name))
		return fail(n, "'env_vars[%zu]' is not a variable name", i);
	return 0;
}

static int f_env_vars(struct norm *n, const char *key, json_t *v)
{
	const struct mcpcfg_ctx *c = n->ctx;
	json_t *out, *e;
	size_t i;

	if (!json_is_array(v))
		return fail(n, "'%s' must be an array", key);
	if (json_array_size(v) > MCPCFG_LIST_MAX)
		return fail(n, "'%s' has more than %d entries", key,
			    MCPCFG_LIST_MAX);
	out = json_object(); /* name -> source: finds duplicates */
	json_array_foreach(v, i, e) {
		const char *name = NULL, *source = NULL;
		int r = env_var_entry(n, i, e, &name, &source);

		if (r == 0 && json_object_get(out, name))
			r = fail(n, "env_vars '%s' is listed twice", name);
		if (r == 0 && from_plugin(n) && !c->environment_is_local &&
		    !strcmp(source, "local"))
			r = fail(n, "env_vars '%s': source 'local' is not "
				    "allowed for a plugin on environment '%s'",
				 name, c->environment_id ? c->environment_id
							 : "local");
		if (r < 0) {
			json_decref(out);
			return r;
		}
		json_object_set_new(out, name, json_string(source));
	}
	json_object_set_new(n->tmp, key, out); /* made a list in finish() */
	return 0;
}

static int f_url(struct norm *n, const char *key, json_t *v)
{
	const char *s, *rest;
	char what[80];
	int r;

	snprintf(what, sizeof(what), "'%s'", key);
	r = get_str(n, what, v, true, &s);
	if (r < 0)
		return r;
	if (!strncasecmp(s, "https://", 8))
		rest = s + 8;
	else if (!strncasecmp(s, "http://", 7))
		rest = s + 7;
	else
		return fail(n, "'%s' must start with http:// or https://", key);
	if (!*rest || *rest == '/')
		return fail(n, "'%s' has no host", key);
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return fail(n, "'%s' contains a space or control "
				       "character", key);
	json_object_set_new(n->tmp, key, json_string(s));
	return 0;
}

static int f_env_id(struct norm *n, const char *key, json_t *v)
{
	int r = f_string(n, key, v);
	const char *s = json_string_value(v);

	/* Same rule as environments.toml ids. */
	if (r == 0 && !valid_env_id(s))
		return fail(n, "'%s' must be 1-%u of [A-Za-z0-9_-]", key, VALID_ENV_ID_MAX);
	return r;
}

static int timeout_value(struct norm *n, const char *key, json_t *v,
			 double scale)
{
	double d;

	if (json_object_get(n->tmp, "startup_timeout_sec") &&
	    !strncmp(key, "startup_", 8))
		return fail(n, "set only one of 'startup_timeout_sec' and "
			       "'startup_timeout_ms'");
	if (!json_is_number(v))
		return fail(n, "'%s' must be a number", key);
	d = json_number_value(v) / scale;
	if (!isfinite(d) || d <= 0 || d > MCPCFG_TIMEOUT_MAX)
		return fail(n, "'%s' must be > 0 and at most %g seconds", key,
			    MCPCFG_TIMEOUT_MAX);
	/* The ms form is stored under its seconds name. */
	json_object_set_new(n->tmp,
			    scale == 1 ? key : "startup_timeout_sec",
			    json_real(d));
	return 0;
}

static int f_timeout(struct norm *n, const char *key, json_t *v)
{
	return timeout_value(n, key, v, 1);
}

static int f_timeout_ms(struct norm *n, const char *key, json_t *v)
{
	return timeout_value(n, key, v, 1000);
}

static int f_bool(struct norm *n, const char *key, json_t *v)
{
	if (!json_is_boolean(v))
		return fail(n, "'%s' must be true or false", key);
	json_object_set(n->tmp, key, v);
	return 0;
}

/* oauth = {client_id, resource} (Codex) or {clientId} (.mcp.json). */
static int f_oauth(struct norm *n, const char *key, json_t *v)
{
	const char *k, *id = NULL;
	json_t *e;

	if (!json_is_object(v))
		return fail(n, "'%s' must be a table", key);
	json_object_foreach(v, k, e) {
		if (strcmp(k, "resource") == 0) {
			if (f_url(n, "oauth_resource", e) < 0)
				return -EINVAL;
			continue;
		}
		if (strcmp(k, "client_id") != 0 && strcmp(k, "clientId") != 0)
			return fail(n, "'oauth': unknown field '%.*s'",
				    UTF8_CUT(k, 64));
		if (id)
			return fail(n, "'oauth': set only one of 'client_id' "
				       "and 'clientId'");
		if (get_str(n, "'oauth.client_id'", e, true, &id) < 0)
			return -EINVAL;
	}
	if (id)
		json_object_set_new(n->tmp, "oauth_client_id", json_string(id));
	return 0;
}

/* ---- sandbox (tandem extension; executor/procs.c applies it) ---- */

static bool has_dotdot(const char *path)
{
	for (const char *p = path; (p = strstr(p, "..")); p += 2)
		if ((p == path || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
			return true;
	return false;
}

/* A sandbox path: absolute, or relative to the plugin root ("./x" or "x",
 * no ".."); resolved in finish() once the root is known. */
static int sandbox_paths(struct norm *n, const char *key, json_t *v, json_t *box)
{
	json_t *out, *e;
	size_t i;

	if (!json_is_array(v) || json_array_size(v) > MCPCFG_SANDBOX_PATHS_MAX)
		return fail(n, "'sandbox.%s' must be an array of at most %d paths", key,
			    MCPCFG_SANDBOX_PATHS_MAX);
	out = json_array();
	json_array_foreach(v, i, e) {
		char what[96];
		const char *s;

		snprintf(what, sizeof(what), "'sandbox.%s[%zu]'", key, i);
		if (get_str(n, what, e, true, &s) < 0) {
			json_decref(out);
			return -EINVAL;
		}
		if (strlen(s) >= PATH_MAX || (s[0] != '/' && !from_plugin(n)) || has_dotdot(s)) {
			json_decref(out);
			return fail(n, "%s '%.*s' must be an absolute path%s without '..'", what,
				    UTF8_CUT(s, 256), from_plugin(n) ? " or relative to the plugin root" : "");
		}
		json_array_append_new(out, json_string(s));
	}
	json_object_set_new(box, key, out);
	return 0;
}

static int sandbox_limit(struct norm *n, const char *key, json_t *v, json_t *box,
			 json_int_t lo, json_int_t hi)
{
	if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
		return fail(n, "'sandbox.%s' must be an integer from %lld to %lld", key,
			    (long long)lo, (long long)hi);
	json_object_set(box, key, v);
	return 0;
}

static int sandbox_field(struct norm *n, const char *k, json_t *e, json_t *box)
{
	if (!strcmp(k, "read") || !strcmp(k, "write"))
		return sandbox_paths(n, k, e, box);
	if (!strcmp(k, "max_open_files"))
		return sandbox_limit(n, k, e, box, 16, 1 << 20);
	if (!strcmp(k, "max_processes"))
		return sandbox_limit(n, k, e, box, 1, 1 << 16);
	if (!strcmp(k, "max_memory_mb"))
		return sandbox_limit(n, k, e, box, 64, 1 << 24);
	return fail(n, "'sandbox': unknown field '%.*s' (read, write, max_open_files, "
		       "max_processes, max_memory_mb)", UTF8_CUT(k, 64));
}

/* sandbox = "off" | "on" | {read, write, max_open_files, max_processes,
 * max_memory_mb}; normalized to {off: true} or the table's fields. */
static int f_sandbox(struct norm *n, const char *key, json_t *v)
{
	json_t *box = json_object(), *e;
	const char *k;

	if (json_is_string(v) && (!strcmp(json_string_value(v), "off") ||
				  !strcmp(json_string_value(v), "on"))) {
		if (!strcmp(json_string_value(v), "off"))
			json_object_set_new(box, "off", json_true());
		json_object_set_new(n->tmp, key, box);
		return 0;
	}
	if (!json_is_object(v)) {
		json_decref(box);
		return fail(n, "'sandbox' must be \"off\", \"on\" or a table");
	}
	json_object_foreach(v, k, e) {
		if (sandbox_field(n, k, e, box) < 0) {
			json_decref(box);
			return -EINVAL;
		}
	}
	json_object_set_new(n->tmp, key, box);
	return 0;
}

/* Plugin: sandbox paths relative to the root are resolved like cwd and must
 * stay inside it; absolute ones are the executor's to check (--sandbox-allow). */
static int plugin_sandbox_paths(struct norm *n)
{
	json_t *box = json_object_get(n->tmp, "sandbox");
	const char *const keys[] = { "read", "write" };

	for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
		json_t *list = json_object_get(box, keys[k]), *e;
		size_t i;

		json_array_foreach(list, i, e) {
			const char *p = json_string_value(e);
			_cleanup_free_ char *joined = NULL;
			char real[PATH_MAX];
			json_t *js;

			if (p[0] == '/')
				continue;
			joined = xasprintf("%s/%s", n->ctx->root, p);
			if (!realpath(joined, real) || !mcpcfg_path_within(n->ctx->root, real))
				return fail(n, "'sandbox.%s' path '%.*s' does not resolve inside the "
					       "plugin root", keys[k], UTF8_CUT(p, 256));
			if (!(js = json_string(real)))
				return fail(n, "'sandbox.%s' path '%.*s' is not a UTF-8 path",
					    keys[k], UTF8_CUT(p, 256));
			json_array_set_new(list, i, js);
		}
	}
	return 0;
}

static const struct field {
	const char *key;
	int transports;
	field_fn fn;
} fields[] = {
	{ "type", T_BOTH, f_type },
	{ "command", T_STDIO, f_string },
	{ "args", T_STDIO, f_args },
	{ "env", T_STDIO, f_env },
	{ "env_vars", T_STDIO, f_env_vars },
	{ "cwd", T_STDIO, f_string },
	{ "url", T_HTTP, f_url },
	{ "bearer_token_env_var", T_HTTP, f_env_name },
	{ "http_headers", T_HTTP, f_headers },
	{ "env_http_headers", T_HTTP, f_env_headers },
	{ "environment_id", T_BOTH, f_env_id },
	{ "startup_timeout_sec", T_BOTH, f_timeout },
	{ "startup_timeout_ms", T_BOTH, f_timeout_ms },
	{ "tool_timeout_sec", T_BOTH, f_timeout },
	{ "enabled", T_BOTH, f_bool },
	{ "required", T_BOTH, f_bool },
	{ "enabled_tools", T_BOTH, f_names },
	{ "disabled_tools", T_BOTH, f_names },
	{ "scopes", T_BOTH, f_names },
	{ "oauth", T_BOTH, f_oauth },
	{ "oauth_resource", T_HTTP, f_url },
	{ "sandbox", T_STDIO, f_sandbox },
	{ "network", T_STDIO, f_bool },
};

static int field_pass(struct norm *n, json_t *raw)
{
	const char *key;
	json_t *v;

	json_object_foreach(raw, key, v) {
		const struct field *f = NULL;
		int r;

		for (size_t i = 0; i < ARRAY_SIZE(fields) && !f; i++)
			if (!strcmp(fields[i].key, key))
				f = &fields[i];
		if (!f)
			/* Claude's .mcp.json says "headers"; point at ours. */
			return fail(n, "unknown field '%.*s'%s", UTF8_CUT(key, 64),
				    strcmp(key, "headers")
					    ? ""
					    : " (did you mean 'http_headers'?)");
		if (!(f->transports & n->transport))
			return fail(n, "field '%s' is not valid for %s server",
				    key, n->transport == T_STDIO ? "a stdio"
								 : "an http");
		r = f->fn(n, key, v);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Picks the transport from command/url and checks `type` against it. */
static int pick_transport(struct norm *n, json_t *raw)
{
	bool cmd = json_object_get(raw, "command") != NULL;
	bool url = json_object_get(raw, "url") != NULL;
	json_t *type = json_object_get(raw, "type");
	const char *t;

	if (cmd && url)
		return fail(n, "both 'command' and 'url' are set; a server is "
			       "either stdio or http");
	if (!cmd && !url)
		return fail(n, "neither 'command' (stdio) nor 'url' (http) is "
			       "set");
	n->transport = cmd ? T_STDIO : T_HTTP;
	if (!type)
		return 0;
	if (!json_is_string(type))
		return fail(n, "'type' must be a string");
	t = json_string_value(type);
	if (strcmp(t, "stdio") && strcmp(t, "http") &&
	    strcmp(t, "streamable_http"))
		return fail(n, "type '%.*s' is not supported (stdio, http, "
			       "streamable_http)", UTF8_CUT(t, 32));
	if ((n->transport == T_STDIO) != !strcmp(t, "stdio"))
		return fail(n, "type '%s' does not match '%s'", t,
			    cmd ? "command" : "url");
	return 0;
}

/* Plugin cwd: default the root; otherwise resolve (relative to the root),
 * follow symlinks and insist the result is a directory inside the root. */
static int plugin_cwd(struct norm *n)
{
	const char *root = n->ctx->root;
	json_t *v = json_object_get(n->tmp, "cwd");
	const char *cwd = v ? json_string_value(v) : NULL;
	_cleanup_free_ char *joined = NULL;
	char real[PATH_MAX];
	json_t *s;
	struct stat st;

	if (!root || root[0] != '/')
		return fail(n, "no canonical plugin root to resolve 'cwd'");
	if (!cwd)
		cwd = root;
	joined = cwd[0] == '/' ? xstrdup(cwd) : xasprintf("%s/%s", root, cwd);
	if (!realpath(joined, real)) {
		int err = errno;

		return fail(n, "cwd '%.*s' does not resolve inside the plugin "
			       "root: %s", UTF8_CUT(cwd, 256), strerror(err));
	}
	if (!mcpcfg_path_within(root, real))
		return fail(n, "cwd '%.*s' leaves the plugin root",
			    UTF8_CUT(cwd, 256));
	if (stat(real, &st) < 0 || !S_ISDIR(st.st_mode))
		return fail(n, "cwd '%.*s' is not a directory", UTF8_CUT(cwd, 256));
	s = json_string(real); /* NULL when the name is not UTF-8 */
	if (!s)
		return fail(n, "cwd '%.*s' is not a UTF-8 path", UTF8_CUT(cwd, 256));
	json_object_set_new(n->tmp, "cwd", s);
	return 0;
}

/* Binds the server to its environment: a plugin's owner always wins. */
static void bind_environment(struct norm *n, json_t *warnings)
{
	json_t *declared = json_object_get(n->tmp, "environment_id");
	const char *owner;

	if (!from_plugin(n)) {
		if (!declared)
			json_object_set_new(n->tmp, "environment_id",
					    json_string("local"));
		return;
	}
	owner = n->ctx->environment_id ? n->ctx->environment_id : "local";
	if (declared && strcmp(json_string_value(declared), owner) != 0 &&
	    json_is_array(warnings))
		json_array_append_new(
			warnings,
			json_sprintf("server '%s': declared environment_id "
				     "'%s' replaced by the owning environment "
				     "'%s'",
				     n->name, json_string_value(declared),
				     owner));
	json_object_set_new(n->tmp, "environment_id", json_string(owner));
}

static void set_default(json_t *o, const char *key, json_t *v)
{
	if (json_object_get(o, key))
		json_decref(v);
	else
		json_object_set_new(o, key, v);
}

static int finish(struct norm *n, json_t *warnings)
{
	json_t *o = n->tmp;

	if (n->transport == T_STDIO) {
		json_t *vars = json_object_get(o, "env_vars"), *list;
		const char *k;
		json_t *src;

		if (from_plugin(n) && (plugin_cwd(n) < 0 || plugin_sandbox_paths(n) < 0))
			return -EINVAL;
		set_default(o, "args", json_array());
		set_default(o, "env", json_object());
		/* env_vars was gathered as name -> source; ship a list. */
		list = json_array();
		json_object_foreach(vars, k, src)
			json_array_append_new(list,
					      json_pack("{s:s, s:O}", "name", k,
							"source", src));
		json_object_set_new(o, "env_vars", list);
	} else {
		set_default(o, "http_headers", json_object());
		set_default(o, "env_http_headers", json_object());
	}
	bind_environment(n, warnings);
	set_default(o, "startup_timeout_sec",
		    json_real(MCPCFG_STARTUP_TIMEOUT_DEFAULT));
	set_default(o, "tool_timeout_sec",
		    json_real(MCPCFG_TOOL_TIMEOUT_DEFAULT));
	set_default(o, "enabled", json_true());
	set_default(o, "required", json_false());
	return 0;
}

/* The wire order of the normalized object; keys absent from it are
 * skipped. */
static const char *const out_order[] = {
	"command", "args", "env", "env_vars", "cwd",
	"url", "bearer_token_env_var", "http_headers", "env_http_headers",
	"environment_id", "startup_timeout_sec", "tool_timeout_sec",
	"enabled", "required", "enabled_tools", "disabled_tools", "scopes",
	"oauth_client_id", "oauth_resource", "sandbox", "network",
};

static json_t *ordered(const struct norm *n)
{
	json_t *out = json_object();

	json_object_set_new(out, "name", json_string(n->name));
	json_object_set_new(out, "transport",
			    json_string(transport_name(n->transport)));
	for (size_t i = 0; i < ARRAY_SIZE(out_order); i++) {
		json_t *v = json_object_get(n->tmp, out_order[i]);

		if (v)
			json_object_set(out, out_order[i], v);
	}
	return out;
}

json_t *mcpcfg_normalize(const char *name, json_t *raw,
			 const struct mcpcfg_ctx *ctx, json_t *warnings,
			 char *reason, size_t reasonlen)
{
	struct norm n = {
		.ctx = ctx, .name = name, .reason = reason,
		.reasonlen = reasonlen,
	};
	json_t *out = NULL;

	if (!mcpcfg_name_valid(name)) {
		fail(&n, "invalid server name: use 1-%d of [A-Za-z0-9_-]",
		     MCPCFG_NAME_MAX);
		return NULL;
	}
	if (!json_is_object(raw)) {
		fail(&n, "server config must be a table");
		return NULL;
	}
	if (pick_transport(&n, raw) < 0)
		return NULL;
	n.tmp = json_object();
	if (field_pass(&n, raw) == 0 && finish(&n, warnings) == 0)
		out = ordered(&n);
	json_decref(n.tmp);
	return out;
}
