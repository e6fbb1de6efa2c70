/* cmd.c - see cmd.h. */
#include "cmd.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "conn.h"
#include "table.h"
#include "util.h"

/* Pages followed at most (a server that keeps handing out cursors). */
#define MAX_PAGES 10000

/* A thread named on the command line may be only in the orchestrator's
 * store (unloaded while idle, or from before a restart): thread/resume
 * loads it, or rejoins it when it is loaded. */
static int resume(struct cli *cli, const char *thread_id)
{
	json_t *res = NULL;
	int r = cli_call(cli, "thread/resume",
			 json_pack("{s:s, s:b}", "threadId", thread_id, "excludeTurns", 1), &res);

	json_decref(res);
	return r;
}

int cmd_thread_arg(struct cli *cli, int argc, char **argv, bool optional, char **thread_id,
		   int *used)
{
	*used = 0;
	*thread_id = NULL;
	if (cli->roots)
		return cli_start_thread(cli, thread_id, NULL);
	if (argc < 1) {
		if (optional)
			return CLI_EXIT_OK;
		return cli_usage("missing THREAD (or --root to start a new thread)");
	}
	*thread_id = xstrdup(argv[0]);
	*used = 1;
	return resume(cli, *thread_id);
}

static int no_more_args(int argc, char **argv)
{
	return argc > 0 ? cli_usage("unexpected argument '%s'", argv[0]) : CLI_EXIT_OK;
}

/* ---- status ------------------------------------------------------------- */

/* Every environment the orchestrator has (environment/list), or "local". */
static json_t *all_env_ids(struct cli *cli)
{
	json_t *res = NULL, *ids = json_array(), *e;
	size_t i;

	if (cli_call(cli, "environment/list", json_object(), &res) != CLI_EXIT_OK) {
		json_array_append_new(ids, json_string("local"));
		return ids;
	}
	json_array_foreach(json_object_get(res, "data"), i, e)
		json_array_append(ids, json_object_get(e, "environmentId"));
	json_decref(res);
	return ids;
}

static const char *fmt_int(char *buf, size_t len, json_t *v)
{
	if (!json_is_integer(v))
		return NULL;
	snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	return buf;
}

static const char *fmt_ms(char *buf, size_t len, json_t *v)
{
	if (!json_is_number(v))
		return NULL;
	snprintf(buf, len, "%.1f ms", json_number_value(v));
	return buf;
}

/* The first 8 hex digits of a session id: enough to tell sessions apart. */
static const char *short_id(char *buf, size_t len, json_t *v)
{
	if (!json_is_string(v))
		return NULL;
	snprintf(buf, len, "%.8s", json_string_value(v));
	return buf;
}

/* One line per environment: its state and, from a tandem orchestrator,
 * who dials whom, how often it came back, its keepalive round trip, and
 * the error (or the last one, in brackets, once it is ready again). */
int cmd_status(struct cli *cli, int argc, char **argv)
{
	json_t *ids = NULL, *all = json_array(), *id;
	struct table *t = table_new(7, "ENVIRONMENT", "STATUS", "DIRECTION", "SESSION", "RECONNECTS",
				    "RTT", "ERROR");
	size_t i;
	int r = no_more_args(argc, argv);

	if (r == CLI_EXIT_OK)
		ids = cli->envs ? json_incref(cli->envs) : all_env_ids(cli);
	json_array_foreach(ids, i, id) {
		json_t *res = NULL;
		const char *err, *last;
		char rc[32], rtt[32], sid[16], lastbuf[600];

		if (r != CLI_EXIT_OK)
			break;
		r = cli_env_status(cli, json_string_value(id), conn_is_private(cli->conn), &res);
		if (r != CLI_EXIT_OK)
			break;
		err = json_string_value(json_object_get(res, "error"));
		last = json_string_value(json_object_get(res, "lastError"));
		if (!err && last) {
			snprintf(lastbuf, sizeof(lastbuf), "(last: %.500s)", last);
			err = lastbuf;
		}
		table_row(t, json_string_value(id), json_string_value(json_object_get(res, "status")),
			  json_string_value(json_object_get(res, "direction")),
			  short_id(sid, sizeof(sid), json_object_get(res, "sessionId")),
			  fmt_int(rc, sizeof(rc), json_object_get(res, "reconnects")),
			  fmt_ms(rtt, sizeof(rtt), json_object_get(res, "rttMs")), err);
		json_object_set(res, "environmentId", id);
		json_array_append_new(all, res);
	}
	if (r == CLI_EXIT_OK) {
		if (cli->json)
			cli_print_json(all);
		else
			table_print(t, stdout);
	}
	table_free(t);
	json_decref(all);
	json_decref(ids);
	return r;
}

/* ---- paged lists ---------------------------------------------------------- */

/* Calls method with params + cursor until nextCursor is null; the data of
 * every page lands in *out (a new array). Steals params. */
static int list_all(struct cli *cli, const char *method, json_t *params, json_t **out)
{
	json_t *all = json_array();
	int r = CLI_EXIT_OK;

	for (int page = 0; page < MAX_PAGES; page++) {
		json_t *res = NULL, *next;

		r = cli_call(cli, method, json_deep_copy(params), &res);
		if (r != CLI_EXIT_OK)
			break;
		json_array_extend(all, json_object_get(res, "data"));
		next = json_object_get(res, "nextCursor");
		if (!json_is_string(next) || json_array_size(json_object_get(res, "data")) == 0) {
			json_decref(res);
			break;
		}
		json_object_set(params, "cursor", next);
		json_decref(res);
	}
	json_decref(params);
	if (r != CLI_EXIT_OK) {
		json_decref(all);
		return r;
	}
	*out = all;
	return CLI_EXIT_OK;
}

/* ---- threads ------------------------------------------------------------- */

static void format_time(json_t *secs, char *buf, size_t len)
{
	time_t t = (time_t)json_integer_value(secs);
	struct tm tm;

	if (!json_is_integer(secs) || !localtime_r(&t, &tm) ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "-");
}

int cmd_threads(struct cli *cli, int argc, char **argv)
{
	json_t *all = NULL, *th;
	struct table *t;
	size_t i;
	int r = no_more_args(argc, argv);

	if (r == CLI_EXIT_OK)
		r = list_all(cli, "thread/list", json_object(), &all);
	if (r != CLI_EXIT_OK)
		return r;
	if (cli->json) {
		json_t *res = json_pack("{s:o, s:n}", "data", all, "nextCursor");

		cli_print_json(res);
		json_decref(res);
		return CLI_EXIT_OK;
	}
	t = table_new(4, "THREAD", "CREATED", "STATUS", "MODEL");
	json_array_foreach(all, i, th) {
		char created[64];
		const char *model = json_string_value(json_object_get(th, "model"));

		format_time(json_object_get(th, "createdAt"), created, sizeof(created));
		table_row(t, json_string_value(json_object_get(th, "id")), created,
			  json_string_value(json_object_get(json_object_get(th, "status"), "type")),
			  model && *model ? model : NULL);
	}
	if (table_rows(t))
		table_print(t, stdout);
	else
		fprintf(stderr, "no threads\n");
	table_free(t);
	json_decref(all);
	return CLI_EXIT_OK;
}

/* ---- servers ------------------------------------------------------------- */

static int server_status(struct cli *cli, const char *thread_id, json_t **out)
{
	json_t *params = json_object();

	if (thread_id)
		json_object_set_new(params, "threadId", json_string(thread_id));
	return list_all(cli, "mcpServerStatus/list", params, out);
}

static int by_string(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "a, b, c" from the keys of the tools map, sorted. Caller frees. */
static char *tool_names(json_t *tools)
{
	size_t n = json_object_size(tools), i = 0, len = 1;
	const char **names = xcalloc(n + 1, sizeof(*names));
	const char *key;
	json_t *v;
	char *out;

	json_object_foreach(tools, key, v) {
		names[i++] = key;
		len += strlen(key) + 2;
	}
	qsort(names, n, sizeof(*names), by_string);
	out = xcalloc(1, len);
	for (i = 0; i < n; i++) {
		if (i)
			strcat(out, ", ");
		strcat(out, names[i]);
	}
	free(names);
	return out;
}

static void print_servers(json_t *all)
{
	struct table *t = table_new(4, "SERVER", "STATE", "PLUGIN", "TOOLS");
	json_t *s;
	size_t i;

	json_array_foreach(all, i, s) {
		const char *err = json_string_value(json_object_get(s, "toolsError"));
		char *tools = err ? xasprintf("error: %s", err)
				  : tool_names(json_object_get(s, "tools"));

		table_row(t, json_string_value(json_object_get(s, "name")),
			  json_string_value(json_object_get(s, "runtimeStatus")),
			  json_string_value(json_object_get(s, "pluginId")), *tools ? tools : NULL);
		free(tools);
	}
	if (table_rows(t))
		table_print(t, stdout);
	else
		fprintf(stderr, "no MCP servers\n");
	table_free(t);
}

int cmd_servers(struct cli *cli, int argc, char **argv)
{
	_cleanup_free_ char *tid = NULL;
	json_t *all = NULL;
	int used, r = cmd_thread_arg(cli, argc, argv, true, &tid, &used);

	if (r == CLI_EXIT_OK)
		r = no_more_args(argc - used, argv + used);
	if (r == CLI_EXIT_OK && !tid)
		r = cli_wait_envs(cli); /* config.toml's servers: their environments */
	if (r == CLI_EXIT_OK)
		r = server_status(cli, tid, &all);
	if (r != CLI_EXIT_OK)
		return r;
	if (cli->json) {
		json_t *res = json_pack("{s:o, s:n}", "data", all, "nextCursor");

		cli_print_json(res);
		json_decref(res);
		return CLI_EXIT_OK;
	}
	print_servers(all);
	json_decref(all);
	return CLI_EXIT_OK;
}

/* ---- start --------------------------------------------------------------- */

/* Failures progress did not show (the notifications go to the session that
 * started the thread, and a server may have failed before we listened). */
static void report_failed(struct cli *cli, json_t *all)
{
	json_t *s;
	size_t i;

	json_array_foreach(all, i, s) {
		const char *name = json_string_value(json_object_get(s, "name"));
		const char *err = json_string_value(json_object_get(s, "toolsError"));
		char *n, *e;

		if (!name || !err || cli_progress_shown(cli, name, "failed"))
			continue;
		n = table_clean(name, 0);
		e = table_clean(err, 0);
		fprintf(stderr, "server %s failed: %s\n", n, e);
		free(n);
		free(e);
	}
}

int cmd_start(struct cli *cli, int argc, char **argv)
{
	_cleanup_free_ char *tid = NULL;
	json_t *raw = NULL, *all = NULL;
	int r = no_more_args(argc, argv);

	if (r == CLI_EXIT_OK)
		r = cli_start_thread(cli, &tid, &raw);
	if (r == CLI_EXIT_OK && !cli->no_wait) {
		r = server_status(cli, tid, &all);
		if (r == CLI_EXIT_OK && !cli->json && !cli->quiet)
			report_failed(cli, all);
		json_decref(all);
	}
	if (r == CLI_EXIT_OK) {
		if (cli->json)
			cli_print_json(raw);
		else
			printf("%s\n", tid);
		if (!cli->json && !cli->quiet && conn_is_private(cli->conn))
			fprintf(stderr, "note: this thread ends with this command's private "
					"orchestrator; use --socket (see 'tandem serve') to keep it\n");
	}
	json_decref(raw);
	return r;
}

/* ---- reload, serve -------------------------------------------------------- */

int cmd_reload(struct cli *cli, int argc, char **argv)
{
	json_t *res = NULL;
	int r = no_more_args(argc, argv);

	if (r == CLI_EXIT_OK)
		r = cli_call(cli, "config/mcpServer/reload", NULL, &res);
	if (r != CLI_EXIT_OK)
		return r;
	if (cli->json)
		cli_print_json(res);
	else
		printf("configuration reloaded\n");
	json_decref(res);
	return CLI_EXIT_OK;
}

int cmd_serve(struct cli *cli, int argc, char **argv)
{
	_cleanup_free_ char *prog = NULL, *listen = NULL;
	char *args[9];
	size_t n = 0;
	int r = no_more_args(argc, argv);

	if (r != CLI_EXIT_OK)
		return r;
	if (!cli->socket)
		return cli_usage("serve needs --socket PATH (or $TANDEM_SOCKET)");
	prog = cli_orchestrator_path(cli);
	listen = xasprintf("unix://%s", cli->socket);
	args[n++] = prog;
	args[n++] = (char *)"--listen";
	args[n++] = listen;
	if (cli->home) {
		args[n++] = (char *)"--home";
		args[n++] = (char *)cli->home;
	}
	if (cli->executor) {
		args[n++] = (char *)"--executor";
		args[n++] = (char *)cli->executor;
	}
	args[n] = NULL;
	fflush(NULL);
	conn_restore_signals();
	execvp(prog, args);
	return cli_fail(CLI_EXIT_CONNECT, "cannot start %s: %s", prog, strerror(errno));
}
