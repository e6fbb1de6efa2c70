/* cli.c - see cli.h. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "jsonutil.h"
#include "table.h"
#include "util.h"
#include "version.h"

/* ---- messages ----------------------------------------------------------- */

__attribute__((format(printf, 1, 0))) static void say(const char *fmt, va_list ap)
{
	char msg[4096];
	char *clean;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	clean = table_clean(msg, 0); /* remote text must not drive the terminal */
	fprintf(stderr, "tandem: %s\n", clean);
	free(clean);
}

int cli_fail(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
	return code;
}

int cli_usage(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try 'tandem --help'.\n");
	return CLI_EXIT_USAGE;
}

int cli_lost(struct cli *cli, int r)
{
	if (r == -EINTR)
		return CLI_EXIT_INTERRUPTED;
	return cli_fail(CLI_EXIT_CONNECT, "%s",
			conn_error(cli->conn) ? conn_error(cli->conn) : strerror(-r));
}

const char *cli_error_message(json_t *error)
{
	const char *m = json_string_value(json_object_get(error, "message"));

	return m && *m ? m : "the orchestrator answered with an error";
}

void cli_print_json(json_t *v)
{
	char *s = jsonu_dumps(v);

	if (s)
		printf("%s\n", s);
	free(s);
}

/* ---- connecting --------------------------------------------------------- */

static char *beside_self(const char *rel)
{
	char self[PATH_MAX], *slash, *p;
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return NULL;
	self[n] = '\0';
	slash = strrchr(self, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	p = xasprintf("%s/%s", self, rel);
	if (access(p, X_OK) == 0)
		return p;
	free(p);
	return NULL;
}

char *cli_orchestrator_path(const struct cli *cli)
{
	char *p;

	if (cli->orchestrator)
		return xstrdup(cli->orchestrator);
	p = beside_self("tandem-orchestrator");
	if (!p) /* the build tree: cli/ and orchestrator/ are siblings */
		p = beside_self("../orchestrator/tandem-orchestrator");
	return p ? p : xstrdup("tandem-orchestrator");
}

static int open_private(struct cli *cli, char *err, size_t errlen)
{
	char *prog = cli_orchestrator_path(cli);
	char *argv[9];
	size_t n = 0;
	int r;

	argv[n++] = prog;
	argv[n++] = (char *)"--listen";
	argv[n++] = (char *)"stdio://";
	if (cli->home) {
		argv[n++] = (char *)"--home";
		argv[n++] = (char *)cli->home;
	}
	if (cli->executor) {
		argv[n++] = (char *)"--executor";
		argv[n++] = (char *)cli->executor;
	}
	argv[n] = NULL;
	/* The daemons' info lines are noise at a human's terminal; warnings
	 * (a bad config entry) are not. $TANDEM_LOG still wins. */
	setenv("TANDEM_LOG", "warn", 0);
	r = conn_open_spawn(argv, &cli->conn, err, errlen);
	free(prog);
	return r;
}

static int initialize(struct cli *cli)
{
	json_t *res = NULL, *err = NULL;
	int r = conn_call(cli->conn, "initialize",
			  json_pack("{s:{s:s, s:s, s:s}}", "clientInfo", "name", "tandem-cli",
				    "title", "tandem CLI", "version", TANDEM_VERSION),
			  &res, &err);

	if (r < 0)
		return cli_lost(cli, r);
	json_decref(res);
	if (err) {
		r = cli_fail(CLI_EXIT_CONNECT, "the orchestrator refused initialize: %s",
			     cli_error_message(err));
		json_decref(err);
		return r;
	}
	r = conn_notify(cli->conn, "initialized", NULL);
	return r < 0 ? cli_lost(cli, r) : CLI_EXIT_OK;
}

int cli_connect(struct cli *cli)
{
	char err[512];
	int r;

	conn_catch_signals();
	if (cli->socket)
		r = conn_open_unix(cli->socket, &cli->conn, err, sizeof(err));
	else
		r = open_private(cli, err, sizeof(err));
	if (r < 0)
		return cli_fail(CLI_EXIT_CONNECT, "%s", err);
	conn_set_notify(cli->conn, cli_notify_cb, cli);
	return initialize(cli);
}

void cli_disconnect(struct cli *cli)
{
	cli->conn = conn_close(cli->conn);
	json_decref(cli->roots);
	cli->roots = NULL;
	json_decref(cli->progress);
	cli->progress = NULL;
	json_decref(cli->envs);
	cli->envs = NULL;
}

/* Waits for the progress requests still out, so their lines come before the
 * command's own output. */
static int settle(struct cli *cli)
{
	while (conn_pending(cli->conn) > 0) {
		int r = conn_pump(cli->conn, -1);

		if (r < 0)
			return cli_lost(cli, r);
	}
	return CLI_EXIT_OK;
}

int cli_call(struct cli *cli, const char *method, json_t *params, json_t **result)
{
	json_t *res = NULL, *err = NULL;
	int r = conn_call(cli->conn, method, params, &res, &err);

	if (r < 0)
		return cli_lost(cli, r);
	r = settle(cli);
	if (r == CLI_EXIT_OK && err)
		r = cli_fail(CLI_EXIT_REMOTE, "%s", cli_error_message(err));
	json_decref(err);
	if (r != CLI_EXIT_OK) {
		json_decref(res);
		return r;
	}
	*result = res;
	return CLI_EXIT_OK;
}

/* ---- start-up progress --------------------------------------------------- */

/* arg: the server name (malloc'd). */
static void ready_cb(json_t *result, json_t *error, void *arg)
{
	json_t *entry = json_array_get(json_object_get(result, "data"), 0);
	json_t *tools = json_object_get(entry, "tools");
	char *name = table_clean(arg, 0);

	if (json_is_object(tools))
		fprintf(stderr, "server %s ready (%zu tool%s)\n", name, json_object_size(tools),
			json_object_size(tools) == 1 ? "" : "s");
	else if (result || error)
		fprintf(stderr, "server %s ready\n", name);
	free(name);
	free(arg);
}

/* The notification has no tool count: ask for this one server's status. */
static void show_ready(struct cli *cli, const char *name, json_t *thread_id)
{
	json_t *params = json_pack("{s:s}", "serverName", name);
	char *arg = xstrdup(name);

	if (json_is_string(thread_id))
		json_object_set(params, "threadId", thread_id);
	if (conn_request(cli->conn, "mcpServerStatus/list", params, ready_cb, arg) < 0)
		ready_cb(NULL, NULL, arg);
}

/* "server X failed: why" (names and errors come from peers: cleaned). */
static void progress_problem(const char *name, const char *status, const char *error)
{
	char *n = table_clean(name, 0), *e = table_clean(error ? error : "", 0);

	fprintf(stderr, "server %s %s%s%s\n", n, status, error ? ": " : "", e);
	free(n);
	free(e);
}

void cli_progress(struct cli *cli, json_t *params)
{
	const char *name = json_string_value(json_object_get(params, "name"));
	const char *status = json_string_value(json_object_get(params, "status"));
	const char *error = json_string_value(json_object_get(params, "error"));
	char *clean;

	if (cli->json || cli->quiet || !name || !status)
		return;
	if (!cli->progress)
		cli->progress = json_object();
	json_object_set_new(cli->progress, name, json_string(status));
	clean = table_clean(name, 0);
	if (strcmp(status, "starting") == 0)
		fprintf(stderr, "starting server %s...\n", clean);
	else if (strcmp(status, "ready") == 0)
		show_ready(cli, name, json_object_get(params, "threadId"));
	else
		progress_problem(name, status, error);
	free(clean);
}

bool cli_progress_shown(const struct cli *cli, const char *name, const char *status)
{
	const char *st = json_string_value(json_object_get(cli->progress, name));

	return st && strcmp(st, status) == 0;
}

void cli_notify_cb(const char *method, json_t *params, void *arg)
{
	if (strcmp(method, "mcpServer/startupStatus/updated") == 0)
		cli_progress(arg, params);
}

/* ---- environments -------------------------------------------------------- */

int cli_env_status(struct cli *cli, const char *id, bool wait, json_t **out)
{
	uint64_t deadline = now_ms() + CLI_ENV_SETTLE_MS;

	for (;;) {
		json_t *res = NULL;
		int r = cli_call(cli, "environment/status", json_pack("{s:s}", "environmentId", id),
				 &res);
		const char *st = json_string_value(json_object_get(res, "status"));

		if (r != CLI_EXIT_OK)
			return r;
		if (!wait || !st || strcmp(st, "pending") != 0 || now_ms() >= deadline) {
			*out = res;
			return CLI_EXIT_OK;
		}
		json_decref(res);
		r = conn_pump(cli->conn, CLI_ENV_POLL_MS);
		if (r < 0)
			return cli_lost(cli, r);
	}
}

int cli_wait_envs(struct cli *cli)
{
	json_t *ids = json_pack("{s:b}", "local", 1), *root, *v;
	const char *id;
	size_t i;
	int r = CLI_EXIT_OK;

	if (!conn_is_private(cli->conn)) {
		json_decref(ids);
		return CLI_EXIT_OK;
	}
	json_array_foreach(cli->roots, i, root) {
		json_t *env = json_object_get(json_object_get(root, "location"), "environmentId");

		json_object_set_new(ids, json_string_value(env), json_true());
	}
	json_object_foreach(ids, id, v) {
		json_t *res = NULL;

		r = cli_env_status(cli, id, true, &res);
		json_decref(res);
		if (r != CLI_EXIT_OK)
			break;
	}
	json_decref(ids);
	return r;
}

/* ---- roots and threads --------------------------------------------------- */

/* The last path component, without trailing slashes. NULL if none. */
static char *last_component(const char *path)
{
	size_t end = strlen(path), start;

	while (end > 0 && path[end - 1] == '/')
		end--;
	start = end;
	while (start > 0 && path[start - 1] != '/')
		start--;
	if (start == end || (end - start == 1 && path[start] == '.') ||
	    (end - start == 2 && strncmp(path + start, "..", 2) == 0))
		return NULL;
	return xstrndup(path + start, end - start);
}

static char *absolute_local(const char *path, char *err, size_t errlen)
{
	char *abs = realpath(path, NULL);

	if (!abs)
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
	return abs;
}

/* Parses one --root value: [ID=]ENV:PATH. A relative PATH is allowed on the
 * `local` environment (this machine) and made absolute; ID defaults to the
 * last component of PATH. -> new {id, location:{type, environmentId,
 * path}}, or NULL with a reason in err. */
static json_t *cli_parse_root(const char *spec, char *err, size_t errlen)
{
	const char *colon = strchr(spec, ':'), *eq = strchr(spec, '=');
	_cleanup_free_ char *id = NULL, *env = NULL, *path = NULL;

	if (!colon || colon == spec || !colon[1] || (eq && eq < colon && (eq == spec || eq + 1 == colon))) {
		snprintf(err, errlen, "--root '%s': expected [ID=]ENV:PATH", spec);
		return NULL;
	}
	if (eq && eq < colon) {
		id = xstrndup(spec, (size_t)(eq - spec));
		env = xstrndup(eq + 1, (size_t)(colon - eq - 1));
	} else {
		env = xstrndup(spec, (size_t)(colon - spec));
	}
	if (colon[1] == '/' || strncmp(colon + 1, "file:", 5) == 0) {
		path = xstrdup(colon + 1);
	} else if (strcmp(env, "local") == 0) {
		path = absolute_local(colon + 1, err, errlen);
		if (!path)
			return NULL;
	} else {
		snprintf(err, errlen, "--root '%s': the path must be absolute on environment '%s'",
			 spec, env);
		return NULL;
	}
	if (!id) {
		id = last_component(strncmp(path, "file://", 7) == 0 ? path + 7 : path);
		if (!id) {
			snprintf(err, errlen, "--root '%s': name the root: ID=%s", spec, spec);
			return NULL;
		}
	}
	return json_pack("{s:s, s:{s:s, s:s, s:s}}", "id", id, "location", "type", "environment",
			 "environmentId", env, "path", path);
}

int cli_add_root(struct cli *cli, const char *spec)
{
	char err[512];
	json_t *root = cli_parse_root(spec, err, sizeof(err));

	if (!root)
		return cli_usage("%s", err);
	if (!cli->roots)
		cli->roots = json_array();
	json_array_append_new(cli->roots, root);
	return CLI_EXIT_OK;
}

int cli_start_thread(struct cli *cli, char **thread_id, json_t **raw)
{
	json_t *params = json_object(), *res = NULL;
	const char *id;
	int r;

	if (cli->roots)
		json_object_set(params, "selectedCapabilityRoots", cli->roots);
	r = cli_wait_envs(cli);
	if (r == CLI_EXIT_OK)
		r = cli_call(cli, "thread/start", params, &res);
	else
		json_decref(params);
	if (r != CLI_EXIT_OK)
		return r;
	id = json_string_value(json_object_get(json_object_get(res, "thread"), "id"));
	if (!id) {
		json_decref(res);
		return cli_fail(CLI_EXIT_REMOTE, "thread/start answered without a thread id");
	}
	*thread_id = xstrdup(id);
	if (raw)
		*raw = res;
	else
		json_decref(res);
	return CLI_EXIT_OK;
}
