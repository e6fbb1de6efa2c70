/* orch.c - the orchestrator's glue: client sessions, the environments and
 * notification fan-out. */
#include "orch.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "client.h"
#include "env.h"
#include "envfile.h"
#include "log.h"
#include "loop.h"
#include "oauth.h"
#include "rpc.h"
#include "srv.h"
#include "thread.h"
#include "util.h"

struct orch *orch;

/* ---- sessions ---------------------------------------------------------- */

static void request_cb(struct client *c, const char *method, json_t *id, json_t *params,
		       void *arg)
{
	struct session *s = client_get_data(c);

	if (!s) {
		s = xcalloc(1, sizeof(*s));
		s->client = c;
		s->next = orch->sessions;
		orch->sessions = s;
		client_set_data(c, s);
	}
	rpc_dispatch(s, method, id, params);
}

static void closed_cb(struct client *c, void *arg)
{
	struct session *s = client_get_data(c);

	if (s) {
		for (struct session **pp = &orch->sessions; *pp; pp = &(*pp)->next) {
			if (*pp == s) {
				*pp = s->next;
				break;
			}
		}
		for (struct thread *t = thread_first(); t; t = thread_next(t))
			if (thread_owner(t) == s)
				thread_set_owner(t, NULL);
		rpc_session_closed(s);
		oauth_session_gone(s);
		log_info("client %llu disconnected", (unsigned long long)client_id(c));
		free(s);
	}
	if (orch->stdio) /* the stdio client is the only one: its EOF ends us */
		loop_stop(orch->loop);
}

const struct client_ops orch_client_ops = {
	.request_cb = request_cb,
	.closed_cb = closed_cb,
};

void orch_notify_thread(struct thread *t, const char *method, json_t *params)
{
	struct session *s = thread_owner(t);

	if (s && s->initialized)
		client_notify(s->client, method, params);
	else
		json_decref(params);
}

void orch_notify_all(const char *method, json_t *params)
{
	for (struct session *s = orch->sessions; s; s = s->next)
		if (s->initialized)
			client_notify(s->client, method, json_incref(params));
	json_decref(params);
}

/* ---- environments ------------------------------------------------------ */

static void env_state_cb(struct env *e, enum env_state st, void *arg)
{
	srv_env_changed(e);
	threads_env_changed(e);
}

static void env_output_cb(struct env *e, uint64_t handle, const char *data, size_t len, void *arg)
{
	srv_on_output(e, handle, data, len);
}

static void env_stderr_cb(struct env *e, uint64_t handle, const char *line, size_t len, void *arg)
{
	log_debug("environment '%s' process %llu stderr: %.*s", env_id(e),
		  (unsigned long long)handle, (int)MIN(len, 512u), line);
}

static void env_exited_cb(struct env *e, uint64_t handle, const char *reason, void *arg)
{
	srv_on_exited(e, handle, reason);
}

static const struct env_ops orch_env_ops = {
	.state_cb = env_state_cb,
	.output_cb = env_output_cb,
	.stderr_cb = env_stderr_cb,
	.exited_cb = env_exited_cb,
};

struct env *orch_env(const char *id)
{
	for (size_t i = 0; i < orch->n_envs; i++)
		if (strcmp(env_id(orch->envs[i]), id) == 0)
			return orch->envs[i];
	return NULL;
}

static int add_env(const struct env_spec *spec, char *err, size_t errlen)
{
	struct env *e = env_new(orch->loop, spec, &orch_env_ops, NULL);
	int r;

	orch->envs = xrealloc(orch->envs, (orch->n_envs + 1) * sizeof(*orch->envs));
	orch->envs[orch->n_envs++] = e;
	r = env_start(e, err, errlen);
	if (r < 0)
		log_error("environment '%s': %s", spec->id, err);
	return r;
}

static bool id_ok(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > 64)
		return false;
	return strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

static bool url_ok(const char *url)
{
	static const char *const schemes[] = { "abstract://", "ipc://", "tcp://", "tls+tcp://" };

	for (size_t i = 0; i < ARRAY_SIZE(schemes); i++)
		if (strncmp(url, schemes[i], strlen(schemes[i])) == 0)
			return true;
	return false;
}

int orch_env_add(const char *id, const char *url, const char *token, uint64_t connect_timeout_ms,
		 char *err, size_t errlen)
{
	struct env_spec spec = { .id = id, .url = url, .connect_timeout_ms = connect_timeout_ms };
	int r;

	if (!id_ok(id) || strcmp(id, "local") == 0 || strcmp(id, "none") == 0) {
		snprintf(err, errlen, "environmentId '%s': 1-64 of [A-Za-z0-9_-], not 'local' or 'none'",
			 id);
		return -EINVAL;
	}
	if (orch_env(id)) {
		snprintf(err, errlen, "environment '%s' already exists", id);
		return -EEXIST;
	}
	if (!url_ok(url)) {
		snprintf(err, errlen, "execServerUrl '%s': expected abstract://, ipc://, tcp:// or "
				      "tls+tcp://", url);
		return -EINVAL;
	}
	spec.token = token;
	r = add_env(&spec, err, errlen);
	if (r == 0)
		log_info("environment '%s' added at %s", id, url);
	return r;
}

/* Per-environment files in the home: <home>/<dir>/<id><suffix>, if present
 * (executor-tokens/<id>: the link token; executor-tls/<id>.pem: the
 * certificate or CA a tls+tcp:// executor is trusted by). */
static char *home_file(const char *dir, const char *id, const char *suffix)
{
	char *p = xasprintf("%s/%s/%s%s", orch->home, dir, id, suffix);
	struct stat st;

	if (stat(p, &st) == 0)
		return p;
	free(p);
	return NULL;
}

int orch_envs_start(void)
{
	const struct envfile *ef = orch->envfile;
	char err[512];

	if (ef->include_local) {
		struct env_spec local = { .id = "local", .program = env_executor_path(),
					  .is_local = true };

		add_env(&local, err, sizeof(err));
	}
	for (size_t i = 0; i < ef->n_envs; i++) {
		const struct envspec *es = &ef->envs[i];
		_cleanup_free_ char *tok = es->url ? home_file("executor-tokens", es->id, "") : NULL;
		_cleanup_free_ char *ca = es->url ? home_file("executor-tls", es->id, ".pem") : NULL;
		const char *program = es->program;
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
		};

		/* "tandem-executor" means ours, wherever it is installed. */
		if (program && strcmp(program, "tandem-executor") == 0)
			program = env_executor_path();
		spec.program = program;
		add_env(&spec, err, sizeof(err));
	}
	return 0;
}

void orch_envs_stop(void)
{
	for (size_t i = 0; i < orch->n_envs; i++)
		env_free(orch->envs[i]);
	free(orch->envs);
	orch->envs = NULL;
	orch->n_envs = 0;
}
