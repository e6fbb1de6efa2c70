/* borch.c - see borch.h. */
#include "borch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bconn.h"
#include "bproc.h"
#include "bsys.h"
#include "util.h"

#define START_TIMEOUT_MS 10000u
#define STOP_GRACE_MS 5000u

static const char *or_default(const char *s, const char *def)
{
	return s ? s : def;
}

static void wait_env_ready(struct borch *o)
{
	uint64_t deadline = bsys_now_ns() + START_TIMEOUT_MS * 1000000ull;

	for (;;) {
		json_t *r = bconn_call_ok(o->c, "environment/status",
					  json_pack("{s:s}", "environmentId", "local"));
		const char *st = json_string_value(json_object_get(r, "status"));
		int ready = st && strcmp(st, "ready") == 0;

		if (!ready && st && strcmp(st, "pending") != 0)
			bsys_fail("orchestrator %s: environment 'local' is %s: %s", o->dir, st,
				  or_default(json_string_value(json_object_get(r, "error")), "?"));
		json_decref(r);
		if (ready)
			return;
		if (bsys_now_ns() >= deadline)
			bsys_fail("orchestrator %s: executor not ready after %u ms", o->dir,
				  START_TIMEOUT_MS);
		bsys_sleep_ms(1);
	}
}

struct bconn *borch_connect(struct borch *o, const char *name)
{
	struct bconn *c = bconn_unix(name, o->sock, START_TIMEOUT_MS);

	json_decref(bconn_call_ok(c, "initialize",
				  json_pack("{s:{s:s, s:s}}", "clientInfo", "name", "tandem-bench",
					    "version", "1")));
	return c;
}

struct borch *borch_start(const struct borch_bins *b, const char *name,
			  const char *config_toml)
{
	return borch_start_full(b, name, config_toml, NULL, NULL, NULL, NULL);
}

struct borch *borch_start_env(const struct borch_bins *b, const char *name,
			      const char *config_toml, const char *envs_toml,
			      const char *token_env, const char *token_file)
{
	return borch_start_full(b, name, config_toml, envs_toml, token_env, token_file, NULL);
}

struct borch *borch_start_args(const struct borch_bins *b, const char *name,
			       const char *config_toml, const char *const *extra)
{
	return borch_start_full(b, name, config_toml, NULL, NULL, NULL, extra);
}

static void write_home_extras(const char *home, const char *envs_toml, const char *token_env,
			      const char *token_file)
{
	_cleanup_free_ char *envs = xasprintf("%s/environments.toml", home);

	if (envs_toml)
		bsys_write_file(envs, envs_toml);
	if (token_env) {
		_cleanup_free_ char *dir = xasprintf("%s/executor-tokens", home);
		_cleanup_free_ char *dst = xasprintf("%s/%s", dir, token_env);
		_cleanup_free_ char *tok = bsys_read_file(token_file, NULL);

		if (!tok)
			bsys_fail("cannot read %s", token_file);
		bsys_mkdir(dir);
		bsys_write_file(dst, tok);
		chmod(dst, 0600);
	}
}

struct borch *borch_start_full(const struct borch_bins *b, const char *name,
			       const char *config_toml, const char *envs_toml,
			       const char *token_env, const char *token_file,
			       const char *const *extra)
{
	const char *argv[32] = { b->orchestrator, "--home", NULL, "--listen", NULL, "--executor",
				 b->executor, "--log-level", getenv("BENCH_LOG") ? getenv("BENCH_LOG") : "warn" };
	size_t n = 9;
	struct borch *o = xcalloc(1, sizeof(*o));
	_cleanup_free_ char *home = NULL, *listen = NULL;
	int log_fd;

	o->dir = xasprintf("%s/%s", bsys_tmpdir(), name);
	home = xasprintf("%s/home", o->dir);
	o->log = xasprintf("%s/orchestrator.log", o->dir);
	o->sock = xasprintf("%s/sock", o->dir);
	listen = xasprintf("unix://%s", o->sock);
	bsys_mkdir(o->dir);
	bsys_mkdir(home);
	if (config_toml) {
		_cleanup_free_ char *cfg = xasprintf("%s/config.toml", home);

		bsys_write_file(cfg, config_toml);
	}
	write_home_extras(home, envs_toml, token_env, token_file);
	log_fd = open(o->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (log_fd < 0)
		bsys_fail("open %s: %s", o->log, strerror(errno));
	bsys_show_on_fail(o->log);
	argv[2] = home;
	argv[4] = listen;
	for (size_t i = 0; extra && extra[i] && n < ARRAY_SIZE(argv) - 1; i++)
		argv[n++] = extra[i];
	o->pid = bsys_spawn(argv, -1, -1, log_fd, NULL);
	close(log_fd);
	o->c = borch_connect(o, name);
	wait_env_ready(o);
	/* the executor is the child of the orchestrator's spawner */
	o->exec_pid = bproc_child_named(bproc_child_named(o->pid, "tandem-spawner"),
					"tandem-executor");
	if (o->exec_pid <= 0)
		bsys_fail("orchestrator %s: no tandem-executor below its spawner", name);
	return o;
}

void borch_stop(struct borch *o)
{
	int st;

	if (!o)
		return;
	o->c = bconn_free(o->c);
	st = bsys_stop(o->pid, STOP_GRACE_MS);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		bsys_fail("orchestrator %s: SIGTERM ended it with wait status %#x", o->dir,
			  (unsigned)st);
	bsys_forget_on_fail(o->log);
	free(o->log);
	free(o->dir);
	free(o->sock);
	free(o);
}

void borch_make_plugin(const struct borch_bins *b, const char *dir, const char *server)
{
	_cleanup_free_ char *meta = xasprintf("%s/.codex-plugin", dir);
	_cleanup_free_ char *manifest = xasprintf("%s/plugin.json", meta);
	_cleanup_free_ char *mcp = xasprintf("%s/.mcp.json", dir);
	json_t *j = json_pack("{s:{s:{s:s, s:[s, s]}}}", "mcpServers", server, "command",
			      b->fixture, "args", "--mode", "echo");
	char *text = json_dumps(j, JSON_INDENT(2));

	bsys_mkdir(dir);
	bsys_mkdir(meta);
	bsys_write_file(manifest, "{\"name\": \"bench-plugin\", \"version\": \"1.0.0\"}\n");
	bsys_write_file(mcp, text);
	free(text);
	json_decref(j);
}

char *borch_thread_start(struct bconn *c, const char *const *ids, const char *const *paths,
			 size_t n)
{
	return borch_thread_start_env(c, "local", ids, paths, n);
}

char *borch_thread_start_env(struct bconn *c, const char *env, const char *const *ids,
			     const char *const *paths, size_t n)
{
	json_t *roots = json_array(), *res;
	const char *tid;
	char *out;

	for (size_t i = 0; i < n; i++)
		json_array_append_new(roots, json_pack("{s:s, s:{s:s, s:s, s:s}}", "id", ids[i],
						       "location", "type", "environment",
						       "environmentId", env, "path", paths[i]));
	res = bconn_call_ok(c, "thread/start", json_pack("{s:o}", "selectedCapabilityRoots", roots));
	tid = json_string_value(json_object_get(json_object_get(res, "thread"), "id"));
	if (!tid)
		bsys_fail("thread/start: no thread.id in the answer");
	out = xstrdup(tid);
	json_decref(res);
	return out;
}

json_t *borch_status_ok(struct bconn *c, const char *thread_id, size_t n_servers)
{
	json_t *res = bconn_call_ok(c, "mcpServerStatus/list",
				    json_pack("{s:s}", "threadId", thread_id));
	json_t *data = json_object_get(res, "data"), *s;
	size_t i;

	if (json_array_size(data) != n_servers)
		bsys_fail("mcpServerStatus/list: %zu servers, expected %zu", json_array_size(data),
			  n_servers);
	json_array_foreach(data, i, s) {
		const char *st = json_string_value(json_object_get(s, "runtimeStatus"));

		if (!st || strcmp(st, "connected") != 0 ||
		    !json_object_get(json_object_get(s, "tools"), "echo"))
			bsys_fail("mcpServerStatus/list: server '%s' is %s (%s)",
				  or_default(json_string_value(json_object_get(s, "name")), "?"),
				  st ? st : "?",
				  or_default(json_string_value(json_object_get(s, "toolsError")), "no error"));
	}
	return res;
}

void borch_check_server_starts(struct borch *o, long long want)
{
	json_t *r = bconn_call_ok(o->c, "debug/counters", NULL);
	long long got = (long long)json_integer_value(json_object_get(r, "serverStarts"));

	json_decref(r);
	if (got != want)
		bsys_fail("debug/counters: %lld MCP server starts, expected %lld (a server "
			  "restarted, or was shared)",
			  got, want);
}
