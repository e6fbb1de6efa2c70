/* ask.c - see ask.h. */
#include "ask.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "conn.h"
#include "table.h"
#include "util.h"

#define ASK_MAX_PROMPT (1024u * 1024u) /* the orchestrator's bound on turn input */
#define ASK_SUMMARY_CHARS 200          /* of tool arguments and results */

struct ask {
	struct cli *cli;
	char *thread_id;
	char *turn_id;        /* once turn/start answered (or turn/started said) */
	int64_t start_req;    /* pending request ids: forgotten before we return */
	int64_t interrupt_req;
	bool done;
	int exit;
	bool interrupt_wanted;
	bool interrupt_sent;
	bool mid_line;        /* stdout does not end with '\n' yet */
	char *last_item;      /* the message the last delta belonged to */
	json_t *streamed;     /* ids of items whose text came as deltas */
	json_t *started;      /* tool call item id -> start time (ms) */
};

/* ---- the prompt ------------------------------------------------------------ */

static char *read_stdin(void)
{
	size_t cap = 4096, len = 0;
	char *buf = xmalloc(cap);

	for (;;) {
		size_t n;

		if (len + 1 >= cap) {
			if (cap > ASK_MAX_PROMPT) {
				free(buf);
				return NULL;
			}
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		n = fread(buf + len, 1, cap - len - 1, stdin);
		len += n;
		if (n == 0)
			break;
	}
	buf[len] = '\0';
	if (len > ASK_MAX_PROMPT || ferror(stdin)) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* The words joined by spaces, or stdin for a lone "-". */
static int build_prompt(int argc, char **argv, char **out)
{
	size_t len = 0;
	char *p;

	if (argc == 1 && strcmp(argv[0], "-") == 0) {
		p = read_stdin();
		if (!p)
			return cli_fail(CLI_EXIT_USAGE, "cannot read the prompt from stdin (at most %u bytes)",
					ASK_MAX_PROMPT);
	} else {
		for (int i = 0; i < argc; i++)
			len += strlen(argv[i]) + 1;
		p = xcalloc(1, len + 1);
		for (int i = 0; i < argc; i++) {
			if (i)
				strcat(p, " ");
			strcat(p, argv[i]);
		}
	}
	if (strspn(p, " \t\r\n") == strlen(p)) {
		free(p);
		return cli_usage("the prompt is empty");
	}
	*out = p;
	return CLI_EXIT_OK;
}

/* ---- output ------------------------------------------------------------- */

/* A tool line goes to stderr; on a shared terminal it must not land in the
 * middle of the answer's current line. */
static void end_line(struct ask *a)
{
	if (a->mid_line && isatty(STDOUT_FILENO)) {
		fputc('\n', stdout);
		a->mid_line = false;
	}
	fflush(stdout);
}

static void write_answer(struct ask *a, const char *text, size_t len)
{
	if (len == 0)
		return;
	table_write_text(stdout, text, len);
	fflush(stdout);
	a->mid_line = text[len - 1] != '\n';
}

static char *compact(json_t *v)
{
	char *s = json_is_string(v) ? xstrdup(json_string_value(v))
				    : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	char *clean = table_clean(s ? s : "", ASK_SUMMARY_CHARS);

	free(s);
	return clean;
}

static bool is_status(json_t *item, const char *status)
{
	const char *st = json_string_value(json_object_get(item, "status"));

	return st && strcmp(st, status) == 0;
}

/* The result's text, or its structuredContent; "error: ..." for a failed
 * call. Caller frees. */
static char *tool_summary(json_t *item)
{
	json_t *err = json_object_get(item, "error"), *res = json_object_get(item, "result");
	json_t *content = json_object_get(res, "content"), *c, *texts;
	size_t i;
	char *out;

	if (json_is_object(err)) {
		char *why = compact(json_object_get(err, "message"));

		out = xasprintf("error: %s", why);
		free(why);
		return out;
	}
	texts = json_array();
	json_array_foreach(content, i, c)
		if (json_is_string(json_object_get(c, "text")))
			json_array_append(texts, json_object_get(c, "text"));
	if (json_array_size(texts) == 1)
		out = compact(json_array_get(texts, 0));
	else if (json_array_size(texts) > 1)
		out = compact(texts);
	else if (json_object_get(res, "structuredContent"))
		out = compact(json_object_get(res, "structuredContent"));
	else
		out = xstrdup(json_is_object(res) ? "(no content)" : "(no result)");
	json_decref(texts);
	if (is_status(item, "failed")) { /* an isError result */
		char *e = xasprintf("error: %s", out);

		free(out);
		out = e;
	}
	return out;
}

/* ---- notifications -------------------------------------------------------- */

static void on_delta(struct ask *a, json_t *p)
{
	json_t *delta = json_object_get(p, "delta");
	const char *item = json_string_value(json_object_get(p, "itemId"));

	if (item) {
		json_object_set_new(a->streamed, item, json_true());
		/* a new message (say, after a tool call) starts on its own line */
		if (a->last_item && strcmp(a->last_item, item) != 0 && a->mid_line)
			write_answer(a, "\n", 1);
		free(a->last_item);
		a->last_item = xstrdup(item);
	}
	if (json_is_string(delta))
		write_answer(a, json_string_value(delta), json_string_length(delta));
}

static bool is_type(json_t *item, const char *type)
{
	const char *t = json_string_value(json_object_get(item, "type"));

	return t && strcmp(t, type) == 0;
}

static void on_item_started(struct ask *a, json_t *p)
{
	json_t *item = json_object_get(p, "item");
	const char *id = json_string_value(json_object_get(item, "id"));
	char *server, *tool, *args;

	if (!is_type(item, "mcpToolCall"))
		return;
	if (id)
		json_object_set_new(a->started, id, json_integer((json_int_t)now_ms()));
	server = compact(json_object_get(item, "server"));
	tool = compact(json_object_get(item, "tool"));
	args = compact(json_object_get(item, "arguments"));
	end_line(a);
	fprintf(stderr, "-> %s.%s(%s)\n", server, tool, args);
	free(server);
	free(tool);
	free(args);
}

/* "<- result (N ms)"; with other calls in flight (the model may run several
 * at once), the line names its call. */
static void on_tool_completed(struct ask *a, json_t *item)
{
	const char *id = json_string_value(json_object_get(item, "id"));
	json_t *dur = json_object_get(item, "durationMs");
	json_t *t0 = id ? json_object_get(a->started, id) : NULL;
	bool several = json_object_size(a->started) > (t0 ? 1u : 0u);
	char *summary = tool_summary(item), *who = NULL, *ms = NULL;

	if (json_is_integer(dur))
		ms = xasprintf(" (%lld ms)", (long long)json_integer_value(dur));
	else if (json_is_integer(t0))
		ms = xasprintf(" (%llu ms)",
			       (unsigned long long)(now_ms() - (uint64_t)json_integer_value(t0)));
	if (several) {
		char *server = compact(json_object_get(item, "server"));
		char *tool = compact(json_object_get(item, "tool"));

		who = xasprintf("%s.%s: ", server, tool);
		free(server);
		free(tool);
	}
	if (id)
		json_object_del(a->started, id);
	end_line(a);
	fprintf(stderr, "<- %s%s%s\n", who ? who : "", summary, ms ? ms : "");
	free(who);
	free(ms);
	free(summary);
}

static void on_item_completed(struct ask *a, json_t *p)
{
	json_t *item = json_object_get(p, "item");
	const char *id = json_string_value(json_object_get(item, "id"));
	json_t *text = json_object_get(item, "text");

	if (is_type(item, "mcpToolCall")) {
		on_tool_completed(a, item);
	} else if (is_type(item, "agentMessage") && json_is_string(text) &&
		   !(id && json_object_get(a->streamed, id))) {
		/* not streamed: the whole message comes at once */
		if (a->mid_line)
			write_answer(a, "\n", 1);
		write_answer(a, json_string_value(text), json_string_length(text));
	}
}

static void on_turn_completed(struct ask *a, json_t *p)
{
	json_t *turn = json_object_get(p, "turn");
	const char *status = json_string_value(json_object_get(turn, "status"));
	const char *why = json_string_value(json_object_get(json_object_get(turn, "error"), "message"));

	if (a->mid_line)
		write_answer(a, "\n", 1);
	a->done = true;
	if (status && strcmp(status, "completed") == 0) {
		a->exit = CLI_EXIT_OK;
	} else if (status && strcmp(status, "interrupted") == 0) {
		a->exit = CLI_EXIT_INTERRUPTED;
		if (!a->cli->json)
			fprintf(stderr, "interrupted\n");
	} else {
		a->exit = a->cli->json ? CLI_EXIT_REMOTE
				       : cli_fail(CLI_EXIT_REMOTE, "turn %s: %s", status ? status : "ended",
						  why ? why : "no reason given");
	}
}

static void on_error(struct ask *a, json_t *p)
{
	json_t *err = json_object_get(p, "error");
	const char *why = json_string_value(json_object_get(err, "message"));

	end_line(a);
	cli_fail(0, "error: %s%s", why ? why : "unknown",
		 json_is_true(json_object_get(p, "willRetry")) ? " (retrying)" : "");
}

/* Ours: this thread, and this turn once we know it. */
static bool ours(struct ask *a, json_t *p)
{
	const char *tid = json_string_value(json_object_get(p, "threadId"));
	const char *turn = json_string_value(json_object_get(p, "turnId"));

	if (!tid || strcmp(tid, a->thread_id) != 0)
		return false;
	return !a->turn_id || !turn || strcmp(turn, a->turn_id) == 0;
}

static void send_interrupt(struct ask *a);

static void notify_cb(const char *method, json_t *params, void *arg)
{
	struct ask *a = arg;

	if (strcmp(method, "mcpServer/startupStatus/updated") == 0) {
		end_line(a);
		cli_progress(a->cli, params);
		return;
	}
	if (a->done || !ours(a, params))
		return;
	if (a->cli->json) {
		json_t *line = json_pack("{s:s, s:O}", "method", method, "params", params);

		cli_print_json(line);
		fflush(stdout);
		json_decref(line);
	}
	if (strcmp(method, "turn/started") == 0 && !a->turn_id) {
		const char *id = json_string_value(json_object_get(json_object_get(params, "turn"), "id"));

		a->turn_id = id ? xstrdup(id) : NULL;
		if (a->interrupt_wanted)
			send_interrupt(a);
	} else if (strcmp(method, "turn/completed") == 0) {
		on_turn_completed(a, params);
	} else if (a->cli->json) {
		return;
	} else if (strcmp(method, "item/agentMessage/delta") == 0) {
		on_delta(a, params);
	} else if (strcmp(method, "item/started") == 0) {
		on_item_started(a, params);
	} else if (strcmp(method, "item/completed") == 0) {
		on_item_completed(a, params);
	} else if (strcmp(method, "error") == 0) {
		on_error(a, params);
	}
}

/* ---- requests -------------------------------------------------------------- */

static void interrupt_cb(json_t *result, json_t *error, void *arg)
{
	struct ask *a = arg;

	a->interrupt_req = 0;
	if (error)
		cli_fail(0, "turn/interrupt: %s", cli_error_message(error));
}

static void send_interrupt(struct ask *a)
{
	int64_t id;

	if (a->interrupt_sent || !a->turn_id)
		return; /* without a turn id: sent once turn/start answers */
	a->interrupt_sent = true;
	id = conn_request(a->cli->conn, "turn/interrupt",
			  json_pack("{s:s, s:s}", "threadId", a->thread_id, "turnId", a->turn_id),
			  interrupt_cb, a);
	a->interrupt_req = id > 0 ? id : 0;
}

static void start_cb(json_t *result, json_t *error, void *arg)
{
	struct ask *a = arg;
	const char *id = json_string_value(json_object_get(json_object_get(result, "turn"), "id"));

	a->start_req = 0;
	if (error || !result) {
		a->done = true;
		a->exit = error ? cli_fail(CLI_EXIT_REMOTE, "%s", cli_error_message(error))
				: CLI_EXIT_CONNECT;
		return;
	}
	if (id && !a->turn_id)
		a->turn_id = xstrdup(id);
	if (a->interrupt_wanted)
		send_interrupt(a);
}

/* Runs until turn/completed. A signal: the first SIGINT interrupts the turn,
 * anything after (or SIGTERM/SIGHUP) gives up. */
static int follow(struct ask *a)
{
	while (!a->done) {
		int r = conn_pump(a->cli->conn, -1);

		if (r == -EINTR) {
			int sig = conn_take_signal();

			if (a->interrupt_wanted || sig != SIGINT)
				return CLI_EXIT_INTERRUPTED;
			a->interrupt_wanted = true;
			end_line(a);
			fprintf(stderr, "interrupting the turn (Ctrl-C again to quit)...\n");
			send_interrupt(a);
		} else if (r < 0) {
			return cli_lost(a->cli, r);
		}
	}
	return a->exit;
}

static int run(struct ask *a, const char *prompt)
{
	json_t *params = json_pack("{s:s, s:[{s:s, s:s, s:[]}]}", "threadId", a->thread_id, "input",
				   "type", "text", "text", prompt, "text_elements");
	int64_t id;

	conn_set_notify(a->cli->conn, notify_cb, a);
	id = conn_request(a->cli->conn, "turn/start", params, start_cb, a);
	if (id < 0)
		return cli_lost(a->cli, (int)id);
	a->start_req = id;
	return follow(a);
}

int ask_cmd(struct cli *cli, int argc, char **argv)
{
	struct ask a = { .cli = cli };
	_cleanup_free_ char *prompt = NULL;
	int used = cli->roots ? 0 : 1, r;

	if (argc < used + 1)
		return cli_usage("usage: tandem ask THREAD PROMPT...");
	r = build_prompt(argc - used, argv + used, &prompt);
	if (r == CLI_EXIT_OK)
		r = cli_connect(cli);
	if (r == CLI_EXIT_OK)
		r = cmd_thread_arg(cli, argc, argv, false, &a.thread_id, &used);
	if (r == CLI_EXIT_OK) {
		a.streamed = json_object();
		a.started = json_object();
		r = run(&a, prompt);
		/* a lives on this frame: no callback may reach it later */
		if (a.start_req)
			conn_forget(cli->conn, a.start_req);
		if (a.interrupt_req)
			conn_forget(cli->conn, a.interrupt_req);
		conn_set_notify(cli->conn, cli_notify_cb, cli);
	}
	fflush(stdout);
	free(a.thread_id);
	free(a.turn_id);
	free(a.last_item);
	json_decref(a.streamed);
	json_decref(a.started);
	return r;
}
