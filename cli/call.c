/* call.c - see call.h. */
#include "call.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "table.h"
#include "util.h"

/* Adds the members of obj to args; a key already there is an error. */
static int merge(json_t *args, json_t *obj, const char *what, char *err, size_t errlen)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		if (json_object_get(args, key)) {
			snprintf(err, errlen, "argument '%s' given twice (%s)", key, what);
			return -1;
		}
		json_object_set(args, key, v);
	}
	return 0;
}

static json_t *parse_object(const char *text, const char *what, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *v = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);

	if (!json_is_object(v)) {
		if (v)
			snprintf(err, errlen, "%s: expected a JSON object", what);
		else
			snprintf(err, errlen, "%s: not JSON: %s (column %d)", what, jerr.text,
				 jerr.column);
		json_decref(v);
		return NULL;
	}
	return v;
}

/* KEY=VALUE: VALUE as JSON when it parses, else the string itself (NULL if
 * it is not UTF-8). */
static json_t *word_value(const char *value)
{
	json_t *v = json_loads(value, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);

	return v ? v : json_string(value);
}

static int add_word(json_t *args, const char *word, char *err, size_t errlen)
{
	const char *eq = strchr(word, '=');
	_cleanup_free_ char *key = NULL;
	json_t *obj;
	int r;

	if (word[0] == '{') {
		obj = parse_object(word, "arguments", err, errlen);
	} else if (eq && eq != word) {
		key = xstrndup(word, (size_t)(eq - word));
		obj = json_object();
		if (json_object_set_new(obj, key, word_value(eq + 1)) < 0) {
			json_decref(obj);
			snprintf(err, errlen, "'%s': not valid UTF-8", word);
			return -1;
		}
	} else {
		snprintf(err, errlen, "'%s': expected KEY=VALUE or a JSON object", word);
		return -1;
	}
	if (!obj)
		return -1;
	r = merge(args, obj, word, err, errlen);
	json_decref(obj);
	return r;
}

/* The arguments object (new reference), or NULL with a reason in err.
 * args_json may be NULL. */
static json_t *call_args(const char *args_json, int argc, char **argv, char *err,
			 size_t errlen)
{
	json_t *args = args_json ? parse_object(args_json, "--args", err, errlen) : json_object();

	if (!args)
		return NULL;
	for (int i = 0; i < argc; i++) {
		if (add_word(args, argv[i], err, errlen) < 0) {
			json_decref(args);
			return NULL;
		}
	}
	return args;
}

/* ---- output ------------------------------------------------------------- */

static const char *str_or(json_t *v, const char *def)
{
	return json_is_string(v) ? json_string_value(v) : def;
}

static void print_text(const char *text, FILE *out)
{
	size_t len = strlen(text);

	table_write_text(out, text, len);
	if (len == 0 || text[len - 1] != '\n')
		fputc('\n', out);
}

/* One content item: text as it is, anything else as a one-line summary. */
static void print_item(json_t *item, FILE *out)
{
	const char *type = str_or(json_object_get(item, "type"), "content");
	json_t *res = json_object_get(item, "resource");
	char *line, *clean;

	if (strcmp(type, "text") == 0 && json_is_string(json_object_get(item, "text"))) {
		print_text(json_string_value(json_object_get(item, "text")), out);
		return;
	}
	if (strcmp(type, "resource") == 0 && json_is_string(json_object_get(res, "text"))) {
		print_text(json_string_value(json_object_get(res, "text")), out);
		return;
	}
	if (strcmp(type, "image") == 0 || strcmp(type, "audio") == 0)
		line = xasprintf("[%s %s, %zu bytes]", type,
				 str_or(json_object_get(item, "mimeType"), "?"),
				 json_string_length(json_object_get(item, "data")) / 4 * 3);
	else if (strcmp(type, "resource_link") == 0 || strcmp(type, "resource") == 0)
		line = xasprintf("[%s %s]", type,
				 str_or(json_object_get(res ? res : item, "uri"), "?"));
	else
		line = xasprintf("[%s]", type);
	clean = table_clean(line, 0);
	fprintf(out, "%s\n", clean);
	free(clean);
	free(line);
}

/* Text content, else structuredContent as indented JSON. */
static void print_result(json_t *res, FILE *out)
{
	json_t *content = json_object_get(res, "content"), *item;
	json_t *sc = json_object_get(res, "structuredContent");
	size_t i;

	json_array_foreach(content, i, item)
		print_item(item, out);
	if (json_array_size(content) == 0 && sc && !json_is_null(sc)) {
		char *s = json_dumps(sc, JSON_INDENT(2) | JSON_ENCODE_ANY);

		if (s)
			table_write_text(out, s, strlen(s));
		fputc('\n', out);
		free(s);
	}
}

/* The first text of an error result, on one line. */
static const char *error_text(json_t *res)
{
	json_t *item;
	size_t i;

	json_array_foreach(json_object_get(res, "content"), i, item)
		if (json_is_string(json_object_get(item, "text")))
			return json_string_value(json_object_get(item, "text"));
	return "no details";
}

int call_cmd(struct cli *cli, int argc, char **argv)
{
	_cleanup_free_ char *tid = NULL;
	json_t *args, *res = NULL;
	char err[512];
	int used, r;

	if (argc < (cli->roots ? 2 : 3))
		return cli_usage("usage: tandem call THREAD SERVER TOOL [KEY=VALUE...|JSON]");
	args = call_args(cli->args, argc - (cli->roots ? 2 : 3), argv + (cli->roots ? 2 : 3),
			 err, sizeof(err));
	if (!args)
		return cli_usage("%s", err);
	r = cmd_thread_arg(cli, argc, argv, false, &tid, &used);
	if (r == CLI_EXIT_OK)
		r = cli_call(cli, "mcpServer/tool/call",
			     json_pack("{s:s, s:s, s:s, s:O}", "threadId", tid, "server",
				       argv[used], "tool", argv[used + 1], "arguments", args),
			     &res);
	json_decref(args);
	if (r != CLI_EXIT_OK)
		return r;
	if (cli->json)
		cli_print_json(res);
	else if (!json_is_true(json_object_get(res, "isError")))
		print_result(res, stdout);
	if (json_is_true(json_object_get(res, "isError")))
		r = cli_fail(CLI_EXIT_REMOTE, "%s.%s failed: %s", argv[used], argv[used + 1],
			     error_text(res));
	json_decref(res);
	return r;
}
