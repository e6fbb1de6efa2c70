/* envfile.c - see envfile.h.
 *
 * Errors point at the key at fault (toml_doc_where), or at the entry's
 * [[environments]] header when a key is missing. The first error wins:
 * the file describes where code runs, so a half-loaded one is not used.
 */
#include "envfile.h"

#include "jsonutil.h"
#include "toml.h"
#include "tomlfile.h"
#include "utf8.h"
#include "util.h"
#include "valid.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

struct loader {
	struct tomlfile f;
	struct envfile *ef;
};

/* "host:port" with a port 1-65535; host may be a [v6] literal or "*". */
static bool host_port_valid(const char *s)
{
	const char *colon = strrchr(s, ':');
	char *end;
	long port;

	if (!colon || colon == s)
		return false;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	return colon[1] >= '0' && colon[1] <= '9' && *end == '\0' && errno == 0 && port > 0 &&
	       port <= 65535;
}

static const struct scheme {
	const char *prefix;
	bool host_port; /* the rest must be host:port ... */
	bool path;      /* ... and may go on with /PATH */
} nng_schemes[] = {
	{ "abstract://", false, false },
	{ "ipc://", false, false },
	{ "tcp://", true, false },
	{ "tls+tcp://", true, false },
	{ "ws://", true, true },
	{ "wss://", true, true },
};

/* NULL when url is an nng link URL tandem can dial, else why not. */
static const char *url_problem(const char *url)
{
	const struct scheme *sc = NULL;
	const char *rest;

	if (strlen(url) > ENVFILE_URL_MAX)
		return "'url' is too long";
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return "'url' contains a space or control character";
	for (size_t i = 0; i < ARRAY_SIZE(nng_schemes) && !sc; i++)
		if (!strncmp(url, nng_schemes[i].prefix, strlen(nng_schemes[i].prefix)))
			sc = &nng_schemes[i];
	if (!sc)
		return "'url' must be an nng link URL: abstract://, ipc://, tcp://, tls+tcp://, "
		       "ws:// or wss://";
	rest = url + strlen(sc->prefix);
	if (!*rest)
		return "'url' has nothing after the scheme";
	if (sc->host_port) {
		/* ws:// and wss:// (a tandem executor's --listen, not a Codex
		 * exec-server: that one fails its handshake) may name a path */
		_cleanup_free_ char *hp = xstrndup(rest, sc->path ? strcspn(rest, "/") : strlen(rest));

		if (!host_port_valid(hp))
			return sc->path ? "'url' must name host:port with a port from 1 to 65535, "
					  "then optionally /PATH"
					: "'url' must name host:port with a port from 1 to 65535";
	}
	return NULL;
}

/* An optional non-empty string: absent leaves *out alone. */
static int get_str(struct loader *L, json_t *raw, const char *base, const char *key,
		   char **out)
{
	const char *s = NULL;
	char e[256];

	if (jsonu_get_str(raw, key, false, &s, e, sizeof(e)) < 0)
		return tomlfile_fail_key(&L->f, base, key, "%s", e);
	if (!s)
		return 0;
	if (!*s || strlen(s) > PATH_MAX) {
		snprintf(e, sizeof(e), "'%s' must be 1-%d bytes", key, PATH_MAX);
		return tomlfile_fail_key(&L->f, base, key, "%s", e);
	}
	*out = xstrdup(s);
	return 0;
}

static char **str_vec(size_t n)
{
	return xcalloc(n + 1, sizeof(char *));
}

static int load_args(struct loader *L, json_t *raw, const char *base, struct envspec *s)
{
	json_t *a = NULL, *v;
	char e[256];
	size_t i;

	if (jsonu_get_str_array(raw, "args", false, ENVFILE_LIST_MAX, &a, e, sizeof(e)) < 0)
		return tomlfile_fail_key(&L->f, base, "args", "%s", e);
	s->args = str_vec(json_array_size(a));
	json_array_foreach (a, i, v)
		s->args[s->n_args++] = xstrdup(json_string_value(v));
	return 0;
}

static int load_env(struct loader *L, json_t *raw, const char *base, struct envspec *s)
{
	json_t *m = NULL, *v;
	const char *k;
	char e[256];

	if (jsonu_get_str_map(raw, "env", false, ENVFILE_LIST_MAX, &m, e, sizeof(e)) < 0)
		return tomlfile_fail_key(&L->f, base, "env", "%s", e);
	s->env = str_vec(json_object_size(m));
	json_object_foreach (m, k, v) {
		if (!valid_env_name(k)) {
			_cleanup_free_ char *epath = toml_path_join(base, "env");

			return tomlfile_fail_key(&L->f, epath, k, "'env' keys must be variable "
						 "names ([A-Za-z_][A-Za-z0-9_]*)");
		}
		s->env[s->n_env++] = xasprintf("%s=%s", k, json_string_value(v));
	}
	return 0;
}

static int load_timeout(struct loader *L, json_t *raw, const char *base, const char *key,
			double *out)
{
	char e[256];

	*out = ENVFILE_TIMEOUT_DEFAULT;
	if (jsonu_get_double(raw, key, false, 0.001, ENVFILE_TIMEOUT_MAX, out, e, sizeof(e)) < 0)
		return tomlfile_fail_key(&L->f, base, key, "%s", e);
	return 0;
}

/* tandem extension: how long a session whose link dropped waits for the
 * executor to come back before its calls fail (env.h "Link sessions");
 * absent, --link-grace-sec decides. */
static int load_grace(struct loader *L, json_t *raw, const char *base, struct envspec *s)
{
	json_t *v = json_object_get(raw, "resume_grace_sec");
	double x;

	s->resume_grace_sec = -1;
	if (!v)
		return 0;
	x = json_is_number(v) ? json_number_value(v) : -1;
	if (!(x >= 0 && x <= ENVFILE_GRACE_MAX))
		return tomlfile_fail_key(&L->f, base, "resume_grace_sec",
					 "'resume_grace_sec' must be a number of seconds from 0 "
					 "(sessions never resume) to %g", ENVFILE_GRACE_MAX);
	s->resume_grace_sec = x;
	return 0;
}

static const char *const entry_keys[] = {
	"id", "url", "program", "args", "env", "cwd", "connect_timeout_sec",
	"initialize_timeout_sec", "required", "dial_in", "resume_grace_sec",
};

/* The first key of an entry that is not one of entry_keys, or NULL. */
static const char *unknown_entry_key(json_t *raw)
{
	const char *key;
	json_t *v;

	json_object_foreach (raw, key, v) {
		bool known = false;

		for (size_t i = 0; i < ARRAY_SIZE(entry_keys) && !known; i++)
			known = !strcmp(entry_keys[i], key);
		if (!known)
			return key;
	}
	return NULL;
}

static int unknown_key(struct loader *L, const char *base, const char *key)
{
	_cleanup_free_ char *tpath = toml_path_join(base, key);

	return tomlfile_fail(&L->f, tpath, "unknown key '%.*s'", UTF8_CUT(key, 64));
}

static int load_id(struct loader *L, json_t *raw, const char *base, size_t idx,
		   struct envspec *s)
{
	const char *id = NULL;
	char e[256];
	int r = jsonu_get_str(raw, "id", true, &id, e, sizeof(e));

	if (r == -ENOENT)
		return tomlfile_fail(&L->f, base, "environment has no 'id'");
	if (r < 0)
		return tomlfile_fail_key(&L->f, base, "id", "%s", e);
	if (!valid_env_id(id))
		return tomlfile_fail_key(&L->f, base, "id", "'id' must be 1-%u of [A-Za-z0-9_-]",
					 VALID_ENV_ID_MAX);
	if (!strcmp(id, ENVFILE_LOCAL_ID) || !strcmp(id, "none"))
		return tomlfile_fail_key(&L->f, base, "id", "%s", !strcmp(id, "none")
			? "id 'none' is reserved"
			: "id 'local' is reserved for the implicit local executor "
			  "(see include_local)");
	for (size_t i = 0; i < idx; i++)
		if (!strcmp(L->ef->envs[i].id, id)) {
			_cleanup_free_ char *tpath = toml_path_join(base, "id");

			return tomlfile_fail(&L->f, tpath, "duplicate id '%s' (first at line %d)",
					     id, L->ef->envs[i].line);
		}
	s->id = xstrdup(id);
	return 0;
}

/* Exactly one of url/program; args, env and cwd belong to program. */
static int load_target(struct loader *L, json_t *raw, const char *base, struct envspec *s)
{
	static const char *const program_only[] = { "args", "env", "cwd" };
	const char *problem;

	char e[256];

	if (get_str(L, raw, base, "url", &s->url) < 0 ||
	    get_str(L, raw, base, "program", &s->program) < 0)
		return -EINVAL;
	/* tandem extension: the executor dials the orchestrator (README) */
	if (jsonu_get_bool(raw, "dial_in", false, &s->dial_in, e, sizeof(e)) < 0)
		return tomlfile_fail_key(&L->f, base, "dial_in", "%s", e);
	if (s->dial_in && (s->url || s->program))
		return tomlfile_fail_key(&L->f, base, "dial_in",
					 "a dial_in environment has no 'url' or 'program' (its "
					 "executor dials the orchestrator's --executor-listen)");
	if (s->dial_in) {
		for (size_t i = 0; i < ARRAY_SIZE(program_only); i++)
			if (json_object_get(raw, program_only[i]))
				return tomlfile_fail_key(&L->f, base, program_only[i],
							 "'%s' is only valid with 'program'",
							 program_only[i]);
		return 0;
	}
	if (s->url && s->program)
		return tomlfile_fail_key(&L->f, base, "program",
					 "set only one of 'url' (dial a running executor) and "
					 "'program' (spawn one)");
	if (!s->url && !s->program)
		return tomlfile_fail(&L->f, base, "environment '%s' needs 'url' (dial a running "
				     "executor), 'program' (spawn one) or 'dial_in = true'", s->id);
	if (s->url && (problem = url_problem(s->url)))
		return tomlfile_fail_key(&L->f, base, "url", "%s", problem);
	for (size_t i = 0; s->url && i < ARRAY_SIZE(program_only); i++)
		if (json_object_get(raw, program_only[i])) {
			return tomlfile_fail_key(&L->f, base, program_only[i],
						 "'%s' is only valid with 'program'",
						 program_only[i]);
		}
	return 0;
}

static int load_entry(struct loader *L, size_t idx, json_t *raw, struct envspec *s)
{
	_cleanup_free_ char *base = xasprintf("environments[%zu]", idx);
	const char *key;
	char e[256];

	s->connect_timeout_sec = s->initialize_timeout_sec = ENVFILE_TIMEOUT_DEFAULT;
	toml_doc_where(L->f.doc, base, &s->line, NULL);
	if (!json_is_object(raw))
		return tomlfile_fail(&L->f, base, "each environment must be a table");
	if ((key = unknown_entry_key(raw)))
		return unknown_key(L, base, key);
	if (load_id(L, raw, base, idx, s) < 0 || load_target(L, raw, base, s) < 0 ||
	    load_args(L, raw, base, s) < 0 || load_env(L, raw, base, s) < 0 ||
	    get_str(L, raw, base, "cwd", &s->cwd) < 0)
		return -EINVAL;
	if (s->cwd && s->cwd[0] != '/')
		return tomlfile_fail_key(&L->f, base, "cwd", "'cwd' must be an absolute path");
	if (load_timeout(L, raw, base, "connect_timeout_sec", &s->connect_timeout_sec) < 0 ||
	    load_timeout(L, raw, base, "initialize_timeout_sec", &s->initialize_timeout_sec) < 0)
		return -EINVAL;
	/* tandem extension: /readyz waits for this environment (README "Operations") */
	if (jsonu_get_bool(raw, "required", false, &s->required, e, sizeof(e)) < 0)
		return tomlfile_fail_key(&L->f, base, "required", "%s", e);
	return load_grace(L, raw, base, s);
}

static int load_entries(struct loader *L, json_t *v)
{
	struct envfile *ef = L->ef;
	json_t *raw;
	size_t i;

	if (!json_is_array(v))
		return tomlfile_fail(&L->f, "environments", "'environments' must be an array of "
				     "tables ([[environments]])");
	if (json_array_size(v) > ENVFILE_MAX_ENVS)
		return tomlfile_fail(&L->f, "environments", "more than %d environments",
				     ENVFILE_MAX_ENVS);
	ef->envs = xcalloc(json_array_size(v) + 1, sizeof(*ef->envs));
	json_array_foreach (v, i, raw) {
		/* Counted first so that envfile_free sees a half-built entry. */
		ef->n_envs++;
		if (load_entry(L, i, raw, &ef->envs[i]) < 0)
			return -EINVAL;
	}
	return 0;
}

/* default must name an entry, or "local" while the local executor exists. */
static int check_default(struct loader *L)
{
	const char *id = L->ef->default_id;

	if (!id || envfile_find(L->ef, id))
		return 0;
	if (!strcmp(id, ENVFILE_LOCAL_ID))
		return L->ef->include_local
			       ? 0
			       : tomlfile_fail(&L->f, "default",
					       "default is 'local' but include_local is false");
	return tomlfile_fail(&L->f, "default", "default '%.*s' names no environment",
			     UTF8_CUT(id, 64));
}

static int load_doc(struct loader *L)
{
	json_t *root = tomlfile_root(&L->f), *v;
	const char *key;
	char e[256];

	json_object_foreach (root, key, v) {
		if (!strcmp(key, "include_local")) {
			if (jsonu_get_bool(root, key, false, &L->ef->include_local, e,
					   sizeof(e)) < 0)
				return tomlfile_fail_key(&L->f, NULL, key, "%s", e);
		} else if (!strcmp(key, "default")) {
			if (get_str(L, root, NULL, key, &L->ef->default_id) < 0)
				return -EINVAL;
		} else if (!strcmp(key, "environments")) {
			if (load_entries(L, v) < 0)
				return -EINVAL;
		} else {
			return unknown_key(L, NULL, key);
		}
	}
	return check_default(L);
}

int envfile_load(const char *home, struct envfile **out, char *err, size_t errlen)
{
	struct loader L = { 0 };
	int r = tomlfile_open(&L.f, home, ENVFILE_NAME, err, errlen);

	if (r == 0) {
		L.ef = xcalloc(1, sizeof(*L.ef));
		L.ef->include_local = true;
		if (L.f.doc) {
			L.ef->path = xstrdup(L.f.path);
			r = load_doc(&L);
		}
	}
	tomlfile_close(&L.f);
	if (r < 0) {
		envfile_free(L.ef);
		return r;
	}
	*out = L.ef;
	return 0;
}

const struct envspec *envfile_find(const struct envfile *e, const char *id)
{
	for (size_t i = 0; e && i < e->n_envs; i++)
		if (e->envs[i].id && !strcmp(e->envs[i].id, id))
			return &e->envs[i];
	return NULL;
}

struct envfile *envfile_free(struct envfile *e)
{
	if (!e)
		return NULL;
	for (size_t i = 0; i < e->n_envs; i++) {
		struct envspec *s = &e->envs[i];

		free(s->id);
		free(s->url);
		free(s->program);
		strv_free(s->args);
		strv_free(s->env);
		free(s->cwd);
	}
	free(e->envs);
	free(e->path);
	free(e->default_id);
	free(e);
	return NULL;
}
