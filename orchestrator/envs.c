/* envs.c - see envs.h. */
#include "envs.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "env.h"
#include "env_listen.h"
#include "envfile.h"
#include "http.h"
#include "log.h"
#include "util.h"
#include "valid.h"

static struct {
	struct loop *loop;
	const char *home;
	struct http *http;
	const struct envs_ops *ops;
	void *arg;
	struct env **v;
	size_t n;
	size_t max;             /* --max-environments */
	const char *listen_url; /* --executor-listen, or NULL */
	bool *runtime;          /* per v[i]: added at run time (removable) */
} reg = { .max = ENVS_MAX_DEFAULT };

/* ---- events from the environments, handed up ------------------------ */

static void state_cb(struct env *e, enum env_state st, void *arg)
{
	(void)st, (void)arg;
	if (reg.ops && reg.ops->state_cb)
		reg.ops->state_cb(e, reg.arg);
}

static void output_cb(struct env *e, uint64_t handle, const char *data, size_t len, void *arg)
{
	(void)arg;
	if (reg.ops && reg.ops->output_cb)
		reg.ops->output_cb(e, handle, data, len, reg.arg);
}

static void stderr_cb(struct env *e, uint64_t handle, const char *line, size_t len, void *arg)
{
	(void)arg;
	log_debug("environment '%s' process %llu stderr: %.*s", env_id(e),
		  (unsigned long long)handle, (int)MIN(len, 512u), line);
}

static void exited_cb(struct env *e, uint64_t handle, const char *reason, void *arg)
{
	(void)arg;
	if (reg.ops && reg.ops->exited_cb)
		reg.ops->exited_cb(e, handle, reason, reg.arg);
}

static const struct env_ops env_ops = {
	.state_cb = state_cb,
	.output_cb = output_cb,
	.stderr_cb = stderr_cb,
	.exited_cb = exited_cb,
};

/* ---- the registry ------------------------------------------------------ */

void envs_init(struct loop *l, const char *home, struct http *http, const struct envs_ops *ops,
	       void *arg)
{
	reg.loop = l;
	reg.home = home;
	reg.http = http;
	reg.ops = ops;
	reg.arg = arg;
}

struct env *envs_find(const char *id)
{
	for (size_t i = 0; i < reg.n; i++)
		if (strcmp(env_id(reg.v[i]), id) == 0)
			return reg.v[i];
	return NULL;
}

void envs_set_max(size_t max) { reg.max = max ? max : ENVS_MAX_DEFAULT; }
size_t envs_max(void) { return reg.max; }
size_t envs_count(void) { return reg.n; }
void envs_set_listen(const char *url) { reg.listen_url = url; }

static bool at_cap(char *err, size_t errlen)
{
	if (reg.n < reg.max)
		return false;
	snprintf(err, errlen, "the orchestrator has %zu environments, its cap "
			      "(--max-environments %zu): remove one first (environment/remove)",
		 reg.n, reg.max);
	return true;
}

static size_t index_of(const struct env *e)
{
	for (size_t i = 0; i < reg.n; i++)
		if (reg.v[i] == e)
			return i;
	return reg.n;
}

/* Out of the registry, told to the domain, freed. */
static void drop_env(size_t i, const char *why)
{
	struct env *e = reg.v[i];

	env_mark_failed(e, why); /* the domain hears it while it can still look it up */
	memmove(&reg.v[i], &reg.v[i + 1], (reg.n - i - 1) * sizeof(*reg.v));
	memmove(&reg.runtime[i], &reg.runtime[i + 1], (reg.n - i - 1) * sizeof(*reg.runtime));
	reg.n--;
	if (reg.ops && reg.ops->removed_cb)
		reg.ops->removed_cb(e, why, reg.arg);
	env_free(e);
}

/* runtime: added by environment/add or dialled in undeclared; an env_start
 * failure then drops it again (it can be added anew), while a declared one
 * is kept DISCONNECTED with the reason (it shows in the status). */
static struct env *add_env(const struct env_spec *spec, bool runtime, char *err, size_t errlen)
{
	struct env *e = env_new(reg.loop, spec, &env_ops, NULL);
	int r;

	reg.v = xrealloc(reg.v, (reg.n + 1) * sizeof(*reg.v));
	reg.runtime = xrealloc(reg.runtime, (reg.n + 1) * sizeof(*reg.runtime));
	reg.runtime[reg.n] = runtime;
	reg.v[reg.n++] = e;
	r = env_start(e, err, errlen);
	if (r < 0) {
		log_error("environment '%s': %s", spec->id, err);
		if (runtime) {
			drop_env(reg.n - 1, err);
			return NULL;
		}
		/* Never left pending: the reason is its status. */
		env_mark_failed(e, err);
	}
	return e;
}

static bool url_ok(const char *url)
{
	static const char *const schemes[] = { "abstract://", "ipc://", "tcp://", "tls+tcp://",
						"ws://", "wss://" };

	for (size_t i = 0; i < ARRAY_SIZE(schemes); i++)
		if (strncmp(url, schemes[i], strlen(schemes[i])) == 0)
			return true;
	return false;
}

int envs_add(const char *id, const char *url, const char *token, uint64_t connect_timeout_ms,
	     char *err, size_t errlen)
{
	struct env_spec spec = { .id = id, .url = url, .connect_timeout_ms = connect_timeout_ms };

	if (!valid_env_id(id) || strcmp(id, ENVS_LOCAL_ID) == 0 || strcmp(id, "none") == 0) {
		snprintf(err, errlen, "environmentId '%s': 1-64 of [A-Za-z0-9_-], not 'local' or 'none'",
			 id);
		return -EINVAL;
	}
	if (envs_find(id)) {
		snprintf(err, errlen, "environment '%s' already exists", id);
		return -EEXIST;
	}
	if (at_cap(err, errlen))
		return -ENOSPC;
	if (!url_ok(url)) {
		snprintf(err, errlen, "execServerUrl '%s': expected abstract://, ipc://, tcp://, "
				      "tls+tcp://, ws:// or wss://", url);
		return -EINVAL;
	}
	spec.token = token;
	if (!add_env(&spec, true, err, errlen))
		return -EINVAL;
	log_info("environment '%s' added at %s", id, url);
	return 0;
}

int envs_remove(const char *id, char *err, size_t errlen)
{
	struct env *e = envs_find(id);
	size_t i;

	if (!e) {
		snprintf(err, errlen, "environment '%s' does not exist", id);
		return -ENOENT;
	}
	i = index_of(e);
	if (!reg.runtime[i]) {
		snprintf(err, errlen, "environment '%s' is %s: only environments added at run "
				      "time (environment/add, or dialled in undeclared) can be removed",
			 id, env_is_local(e) ? "the local executor" : "declared in environments.toml");
		return -EPERM;
	}
	log_info("environment '%s' removed", id);
	drop_env(i, "the environment was removed");
	return 0;
}

/* ---- executors that dial in ------------------------------------------------ */

static char *home_file(const char *dir, const char *id, const char *suffix);

/* A connection named id: a dial-in environment, declared or not; an
 * undeclared one is made when executor-tokens/<id> exists (the token names
 * it) and the cap allows. */
static struct env *dialin_lookup(const char *id, char *why, size_t whylen)
{
	struct env *e = envs_find(id);
	_cleanup_free_ char *tok = NULL;
	struct env_spec spec = { .id = id, .dial_in = true };

	if (e) {
		if (env_direction(e) == ENV_DIALLED_IN)
			return e;
		snprintf(why, whylen, "environment '%s' is not a dial-in environment (it is %s)", id,
			 env_direction_name(env_direction(e)));
		return NULL;
	}
	if (strcmp(id, ENVS_LOCAL_ID) == 0 || strcmp(id, "none") == 0 ||
	    !(tok = home_file("executor-tokens", id, ""))) {
		snprintf(why, whylen, "an executor dialled in as '%s': no such environment and no "
				      "token file executor-tokens/%s", id, id);
		return NULL;
	}
	if (at_cap(why, whylen))
		return NULL;
	spec.secret_file = tok;
	e = add_env(&spec, true, why, whylen);
	if (e)
		log_info("environment '%s' added: its executor dialled in", id);
	return e;
}

/* Per-environment files in the home: <home>/<dir>/<id><suffix>, if present
 * (executor-tokens/<id>: the link token; executor-tls/<id>.pem: the
 * certificate or CA a tls+tcp:// executor is trusted by). */
static char *home_file(const char *dir, const char *id, const char *suffix)
{
	char *p = xasprintf("%s/%s/%s%s", reg.home, dir, id, suffix);
	struct stat st;

	if (stat(p, &st) == 0)
		return p;
	free(p);
	return NULL;
}

static void start_entry(const struct envspec *es)
{
	_cleanup_free_ char *tok = es->url ? home_file("executor-tokens", es->id, "") : NULL;
	_cleanup_free_ char *ca = es->url ? home_file("executor-tls", es->id, ".pem") : NULL;
	const char *program = es->program;
	char err[512];
	struct env_spec spec = {
		.id = es->id,
		.url = es->url,
		.args = (const char *const *)es->args,
		.env = (const char *const *)es->env,
		.cwd = es->cwd,
		.secret_file = tok,
		.tls_ca_file = ca,
		.connect_timeout_ms = (uint64_t)(es->connect_timeout_sec * 1000.0),
		.initialize_timeout_ms = (uint64_t)(es->initialize_timeout_sec * 1000.0),
		.resume_grace_ms = es->resume_grace_sec >= 0
					   ? (uint64_t)(es->resume_grace_sec * 1000.0) : 0,
		.resume_grace_set = es->resume_grace_sec >= 0,
	};

	spec.program = program ? env_spawn_program(program) : NULL;
	if (es->dial_in) {
		spec.dial_in = true;
		spec.secret_file = tok = home_file("executor-tokens", es->id, "");
	}
	add_env(&spec, false, err, sizeof(err));
}

void envs_start(const struct envfile *ef)
{
	char err[512];

	if (ef->include_local) {
		struct env_spec local = { .id = ENVS_LOCAL_ID, .program = env_executor_path(),
					  .is_local = true };

		add_env(&local, false, err, sizeof(err));
	}
	for (size_t i = 0; i < ef->n_envs; i++)
		start_entry(&ef->envs[i]);
	if (reg.listen_url) {
		_cleanup_free_ char *pem = xasprintf("%s/executor-listen.pem", reg.home);
		struct stat st;

		if (env_listen_start(reg.loop, reg.listen_url, stat(pem, &st) == 0 ? pem : NULL,
				     dialin_lookup, err, sizeof(err)) < 0)
			log_error("--executor-listen %s: %s", reg.listen_url, err);
	}
}

void envs_stop(void)
{
	env_listen_stop();
	/* Each env_free only starts its link's close (link_close_flush) and
	 * its spawned executor's stop: they end in parallel, and main.c
	 * bounds the wait for all of them together. */
	for (size_t i = 0; i < reg.n; i++)
		env_free(reg.v[i]);
	free(reg.v);
	free(reg.runtime);
	reg.v = NULL;
	reg.runtime = NULL;
	reg.n = 0;
}

void envs_foreach(void (*fn)(struct env *e, bool runtime, void *arg), void *arg)
{
	for (size_t i = 0; i < reg.n; i++)
		fn(reg.v[i], reg.runtime[i], arg);
}

/* ---- HTTP routing ------------------------------------------------------ */

/* A config.toml server of the "local" environment is the orchestrator's own
 * (hosted) server: its requests leave from here. A server declared in an
 * executor plugin, or bound to another environment, is reached through that
 * executor (HTTP_REQUEST): it may sit on a network only the executor can
 * see. */
struct http *envs_http_route(json_t *cfg, const char *plugin_id, struct env **env_out, char *why,
			     size_t whylen)
{
	const char *eid = json_string_value(json_object_get(cfg, "environment_id"));
	struct env *e;

	if (!eid)
		eid = ENVS_LOCAL_ID;
	*env_out = NULL;
	if (!plugin_id && strcmp(eid, ENVS_LOCAL_ID) == 0)
		return reg.http;
	e = envs_find(eid);
	if (!e) {
		snprintf(why, whylen, "environment '%s' does not exist", eid);
		return NULL;
	}
	*env_out = e;
	if (env_state(e) != ENV_READY) {
		snprintf(why, whylen, "environment '%s' is %s%s%s", eid, env_state_name(env_state(e)),
			 env_error(e) ? ": " : "", env_error(e) ? env_error(e) : "");
		return NULL;
	}
	if (!env_http(e))
		snprintf(why, whylen, "environment '%s' is shutting down", eid);
	return env_http(e);
}

size_t envs_http_pending(void)
{
	size_t n = reg.http ? http_pending(reg.http) : 0;

	for (size_t i = 0; i < reg.n; i++)
		n += http_pending(env_http(reg.v[i]));
	return n;
}

size_t envs_count_state(enum env_state st)
{
	size_t n = 0;

	for (size_t i = 0; i < reg.n; i++)
		n += env_state(reg.v[i]) == st;
	return n;
}
