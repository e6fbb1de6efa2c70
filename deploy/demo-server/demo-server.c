/* demo-server.c - tandem-demo-server: a small stdio MCP server of ours, the
 * one the example plugin (deploy/example-plugin) runs on an executor.
 *
 * Newline-delimited JSON-RPC 2.0 on stdin/stdout (MCP 2025-06-18; it answers
 * with the protocol version the client offers when it knows it). Requests
 * are answered in order; notifications and responses from the client are
 * ignored; stdin EOF ends it. Diagnostics go to stderr.
 *
 * Tools (all read-only, each with an inputSchema and an outputSchema):
 *   echo    {message}            the message back; structured {message, host}
 *   sysinfo {}                   hostname, kernel, uptime, load, memory (/proc)
 *   now     {timezone?}          UTC time (ISO-8601 and unix); the local time
 *                                in an IANA timezone when one is given
 *   env     {name}               one environment variable, only if its name is
 *                                listed in $DEMO_ENV_ALLOW (comma-separated):
 *                                shows how `env_vars` reach a server
 *   hash    {text, algorithm?}   sha256 (default) or sha512 hex, libsodium
 * A bad argument is a tool error (isError with a text), as MCP wants for
 * anything the model could correct; an unknown tool is -32602.
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "linebuf.h"
#include "util.h"
#include "version.h"

#define DEMO_NAME "tandem-demo"
#define DEMO_PROTOCOL "2025-06-18"
#define DEMO_MAX_LINE (4u * 1024 * 1024)  /* one request */
#define DEMO_MAX_TEXT (1024u * 1024)      /* hash input */
#define DEMO_ZONEINFO "/usr/share/zoneinfo/"

/* ---- output ------------------------------------------------------------- */

static void send_msg(json_t *msg)
{
	/* 12 digits: 2.97, not 2.9700000000000002 */
	char *s = json_dumps(msg, JSON_COMPACT | JSON_REAL_PRECISION(12));
	size_t n;

	json_decref(msg);
	if (!s)
		abort();
	n = strlen(s);
	s[n] = '\n';
	if (write_all(STDOUT_FILENO, s, n + 1) < 0)
		exit(0); /* the client is gone */
	free(s);
}

static void send_result(json_t *id, json_t *result)
{
	send_msg(json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result));
}

static void send_error(json_t *id, int code, const char *message)
{
	send_msg(json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id",
			   id ? id : json_null(), "error", "code", code, "message", message));
}

/* ---- tool results --------------------------------------------------------- */

static json_t *tool_ok(const char *text, json_t *structured)
{
	return json_pack("{s:[{s:s, s:s}], s:o, s:b}", "content", "type", "text", "text", text,
			 "structuredContent", structured, "isError", 0);
}

static json_t *tool_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *tool_error(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text", msg, "isError",
			 1);
}

/* A required string argument, or NULL after setting *err to a tool error. */
static const char *arg_str(json_t *args, const char *key, bool required, json_t **err)
{
	json_t *v = json_object_get(args, key);

	if (json_is_string(v))
		return json_string_value(v);
	if (v || required)
		*err = tool_error("argument '%s' must be a string", key);
	return NULL;
}

/* ---- echo ------------------------------------------------------------------- */

static json_t *tool_echo(json_t *args)
{
	json_t *err = NULL;
	const char *msg = arg_str(args, "message", true, &err);
	char host[256] = "";

	if (!msg)
		return err;
	gethostname(host, sizeof(host) - 1);
	return tool_ok(msg, json_pack("{s:s, s:s}", "message", msg, "host", host));
}

/* ---- sysinfo ------------------------------------------------------------------ */

/* The first line of a small /proc file. */
static int read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	int r = 0;

	if (!f)
		return -errno;
	if (!fgets(buf, (int)len, f))
		r = -EIO;
	fclose(f);
	return r;
}

/* "MemTotal:  16318304 kB" -> bytes, or -1. */
static json_int_t meminfo(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[256];
	size_t klen = strlen(key);
	long long kb = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, klen) == 0 && line[klen] == ':' &&
		    sscanf(line + klen + 1, "%lld", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? -1 : (json_int_t)kb * 1024;
}

static json_t *sysinfo_json(void)
{
	struct utsname u;
	char line[256];
	double up = -1, l1 = -1, l5 = -1, l15 = -1;

	if (uname(&u) < 0)
		memset(&u, 0, sizeof(u));
	if (read_line("/proc/uptime", line, sizeof(line)) == 0)
		sscanf(line, "%lf", &up);
	if (read_line("/proc/loadavg", line, sizeof(line)) == 0)
		sscanf(line, "%lf %lf %lf", &l1, &l5, &l15);
	return json_pack("{s:s, s:{s:s, s:s, s:s, s:s}, s:f, s:[f, f, f], s:{s:I, s:I}}", "hostname",
			 u.nodename, "kernel", "name", u.sysname, "release", u.release, "version",
			 u.version, "machine", u.machine, "uptimeSeconds", up, "loadAverage", l1,
			 l5, l15, "memory", "totalBytes", meminfo("MemTotal"), "availableBytes",
			 meminfo("MemAvailable"));
}

static json_t *tool_sysinfo(json_t *args)
{
	json_t *s = sysinfo_json(), *k = json_object_get(s, "kernel");
	json_t *load = json_object_get(s, "loadAverage"), *mem = json_object_get(s, "memory");
	long up = (long)json_real_value(json_object_get(s, "uptimeSeconds"));
	double gib = 1024.0 * 1024 * 1024;
	char *text = xasprintf(
		"host: %s\nkernel: %s %s (%s)\nuptime: %ldd %ldh %ldm\nload: %.2f %.2f %.2f\n"
		"memory: %.1f GiB available of %.1f GiB",
		json_string_value(json_object_get(s, "hostname")),
		json_string_value(json_object_get(k, "name")),
		json_string_value(json_object_get(k, "release")),
		json_string_value(json_object_get(k, "machine")), up / 86400, up % 86400 / 3600,
		up % 3600 / 60, json_real_value(json_array_get(load, 0)),
		json_real_value(json_array_get(load, 1)), json_real_value(json_array_get(load, 2)),
		(double)json_integer_value(json_object_get(mem, "availableBytes")) / gib,
		(double)json_integer_value(json_object_get(mem, "totalBytes")) / gib);
	json_t *res = tool_ok(text, s);

	free(text);
	return res;
}

/* ---- now ---------------------------------------------------------------------- */

/* An IANA name such as Europe/Paris that exists in the zone database. The
 * name becomes part of a path: no "..", no leading '/'. */
static bool timezone_known(const char *tz)
{
	char path[256];
	struct stat st;

	if (!*tz || strlen(tz) > 64 || tz[0] == '/' || strstr(tz, "..") ||
	    strspn(tz, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+-/") !=
		    strlen(tz))
		return false;
	snprintf(path, sizeof(path), DEMO_ZONEINFO "%s", tz);
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ISO-8601 with a "+02:00" offset. */
static void iso_local(time_t t, const char *tz, char *buf, size_t len, long *offset)
{
	struct tm tm;
	char z[8];

	setenv("TZ", tz, 1);
	tzset();
	localtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	strftime(z, sizeof(z), "%z", &tm);
	snprintf(buf + strlen(buf), len - strlen(buf), "%.3s:%.2s", z, z + 3);
	*offset = tm.tm_gmtoff;
	unsetenv("TZ");
	tzset();
}

static json_t *tool_now(json_t *args)
{
	json_t *err = NULL, *s;
	const char *tz = arg_str(args, "timezone", false, &err);
	time_t t = time(NULL);
	char utc[32], local[48], *text;
	struct tm tm;
	long off;

	if (err)
		return err;
	if (tz && !timezone_known(tz))
		return tool_error("unknown timezone '%s' (an IANA name such as Europe/Paris)", tz);
	gmtime_r(&t, &tm);
	strftime(utc, sizeof(utc), "%Y-%m-%dT%H:%M:%SZ", &tm);
	s = json_pack("{s:s, s:I}", "utc", utc, "unix", (json_int_t)t);
	if (!tz)
		return tool_ok(utc, s);
	iso_local(t, tz, local, sizeof(local), &off);
	json_object_set_new(s, "timezone", json_string(tz));
	json_object_set_new(s, "local", json_string(local));
	json_object_set_new(s, "utcOffsetSeconds", json_integer(off));
	text = xasprintf("%s (%s)", local, tz);
	json_t *res = tool_ok(text, s);

	free(text);
	return res;
}

/* ---- env ------------------------------------------------------------------------- */

/* Whether name is one of the comma-separated entries of $DEMO_ENV_ALLOW. */
static bool env_allowed(const char *name)
{
	const char *allow = getenv("DEMO_ENV_ALLOW"), *p = allow;
	size_t n = strlen(name);

	while (p && *p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		while (len && *p == ' ')
			p++, len--;
		while (len && p[len - 1] == ' ')
			len--;
		if (len == n && n && strncmp(p, name, n) == 0)
			return true;
		p = end ? end + 1 : NULL;
	}
	return false;
}

static json_t *tool_env(json_t *args)
{
	json_t *err = NULL;
	const char *name = arg_str(args, "name", true, &err);
	const char *value;

	if (!name)
		return err;
	if (!env_allowed(name))
		return tool_error("'%s' is not in DEMO_ENV_ALLOW (%s)", name,
				  getenv("DEMO_ENV_ALLOW") ? getenv("DEMO_ENV_ALLOW") : "unset");
	value = getenv(name);
	return tool_ok(value ? value : "(not set)",
		       json_pack("{s:s, s:s?}", "name", name, "value", value));
}

/* ---- hash ------------------------------------------------------------------------- */

static json_t *tool_hash(json_t *args)
{
	json_t *err = NULL;
	const char *text = arg_str(args, "text", true, &err);
	const char *alg = arg_str(args, "algorithm", false, &err);
	unsigned char d[crypto_hash_sha512_BYTES];
	char hex[2 * crypto_hash_sha512_BYTES + 1];
	size_t len, dlen;

	if (!text || err)
		return err;
	len = json_string_length(json_object_get(args, "text"));
	if (len > DEMO_MAX_TEXT)
		return tool_error("text is longer than %u bytes", DEMO_MAX_TEXT);
	if (!alg || strcmp(alg, "sha256") == 0) {
		alg = "sha256";
		crypto_hash_sha256(d, (const unsigned char *)text, len);
		dlen = crypto_hash_sha256_BYTES;
	} else if (strcmp(alg, "sha512") == 0) {
		crypto_hash_sha512(d, (const unsigned char *)text, len);
		dlen = crypto_hash_sha512_BYTES;
	} else {
		return tool_error("algorithm '%s' is not supported (sha256, sha512)", alg);
	}
	sodium_bin2hex(hex, sizeof(hex), d, dlen);
	return tool_ok(hex, json_pack("{s:s, s:s, s:I}", "algorithm", alg, "hex", hex, "bytes",
				      (json_int_t)len));
}

/* ---- the tool table ------------------------------------------------------------------ */

static const struct tool {
	const char *name;
	const char *title;
	const char *description;
	const char *input;  /* JSON Schema */
	const char *output; /* JSON Schema of structuredContent */
	json_t *(*fn)(json_t *args);
} tools[] = {
	{ "echo", "Echo", "Returns the message, and the host that ran the call.",
	  "{\"type\":\"object\",\"properties\":{\"message\":{\"type\":\"string\","
	  "\"description\":\"Text to send back\"}},\"required\":[\"message\"],"
	  "\"additionalProperties\":false}",
	  "{\"type\":\"object\",\"properties\":{\"message\":{\"type\":\"string\"},"
	  "\"host\":{\"type\":\"string\"}},\"required\":[\"message\",\"host\"]}",
	  tool_echo },
	{ "sysinfo", "System information",
	  "Hostname, kernel, uptime, load averages and memory of the machine the server runs on.",
	  "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}",
	  "{\"type\":\"object\",\"properties\":{\"hostname\":{\"type\":\"string\"},"
	  "\"kernel\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
	  "\"release\":{\"type\":\"string\"},\"version\":{\"type\":\"string\"},"
	  "\"machine\":{\"type\":\"string\"}}},\"uptimeSeconds\":{\"type\":\"number\"},"
	  "\"loadAverage\":{\"type\":\"array\",\"items\":{\"type\":\"number\"},\"minItems\":3,"
	  "\"maxItems\":3},\"memory\":{\"type\":\"object\",\"properties\":{\"totalBytes\":"
	  "{\"type\":\"integer\"},\"availableBytes\":{\"type\":\"integer\"}}}},"
	  "\"required\":[\"hostname\",\"kernel\",\"uptimeSeconds\",\"loadAverage\",\"memory\"]}",
	  tool_sysinfo },
	{ "now", "Current time",
	  "The current time in UTC (ISO-8601 and unix seconds), and in a timezone if given.",
	  "{\"type\":\"object\",\"properties\":{\"timezone\":{\"type\":\"string\","
	  "\"description\":\"IANA timezone, e.g. Europe/Paris\"}},\"additionalProperties\":false}",
	  "{\"type\":\"object\",\"properties\":{\"utc\":{\"type\":\"string\"},\"unix\":"
	  "{\"type\":\"integer\"},\"timezone\":{\"type\":\"string\"},\"local\":{\"type\":"
	  "\"string\"},\"utcOffsetSeconds\":{\"type\":\"integer\"}},\"required\":[\"utc\","
	  "\"unix\"]}",
	  tool_now },
	{ "env", "Environment variable",
	  "The value of one environment variable of the server, if DEMO_ENV_ALLOW lists it.",
	  "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"}},"
	  "\"required\":[\"name\"],\"additionalProperties\":false}",
	  "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"value\":"
	  "{\"type\":[\"string\",\"null\"]}},\"required\":[\"name\",\"value\"]}",
	  tool_env },
	{ "hash", "Hash", "The hex digest of a text (sha256 by default, or sha512).",
	  "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"},\"algorithm\":"
	  "{\"type\":\"string\",\"enum\":[\"sha256\",\"sha512\"],\"default\":\"sha256\"}},"
	  "\"required\":[\"text\"],\"additionalProperties\":false}",
	  "{\"type\":\"object\",\"properties\":{\"algorithm\":{\"type\":\"string\"},\"hex\":"
	  "{\"type\":\"string\"},\"bytes\":{\"type\":\"integer\"}},\"required\":[\"algorithm\","
	  "\"hex\",\"bytes\"]}",
	  tool_hash },
};

static json_t *tools_json(void)
{
	json_t *arr = json_array();

	for (size_t i = 0; i < ARRAY_SIZE(tools); i++)
		json_array_append_new(
			arr, json_pack("{s:s, s:s, s:s, s:o, s:o, s:{s:b, s:b}}", "name",
				       tools[i].name, "title", tools[i].title, "description",
				       tools[i].description, "inputSchema",
				       json_loads(tools[i].input, 0, NULL), "outputSchema",
				       json_loads(tools[i].output, 0, NULL), "annotations",
				       "readOnlyHint", 1, "openWorldHint", 0));
	return arr;
}

/* ---- requests ---------------------------------------------------------------------- */

static void handle_initialize(json_t *id, json_t *params)
{
	static const char *const known[] = { "2024-11-05", "2025-03-26", "2025-06-18" };
	const char *offered = json_string_value(json_object_get(params, "protocolVersion"));
	const char *version = DEMO_PROTOCOL;

	for (size_t i = 0; offered && i < ARRAY_SIZE(known); i++)
		if (strcmp(offered, known[i]) == 0)
			version = known[i];
	send_result(id, json_pack("{s:s, s:{s:{s:b}}, s:{s:s, s:s, s:s}, s:s}", "protocolVersion",
				  version, "capabilities", "tools", "listChanged", 0, "serverInfo",
				  "name", DEMO_NAME, "title", "tandem demo server", "version",
				  TANDEM_VERSION, "instructions",
				  "Demo tools that report on the machine this server runs on."));
}

static void handle_call(json_t *id, json_t *params)
{
	const char *name = json_string_value(json_object_get(params, "name"));
	json_t *args = json_object_get(params, "arguments");

	if (!name) {
		send_error(id, -32602, "params.name: expected a string");
		return;
	}
	if (args && !json_is_object(args) && !json_is_null(args)) {
		send_error(id, -32602, "params.arguments: expected an object");
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(tools); i++) {
		if (strcmp(tools[i].name, name) == 0) {
			json_t *empty = json_object();

			send_result(id, tools[i].fn(json_is_object(args) ? args : empty));
			json_decref(empty);
			return;
		}
	}
	{
		char msg[300];

		snprintf(msg, sizeof(msg), "Unknown tool: %.200s", name);
		send_error(id, -32602, msg);
	}
}

static void handle_request(const char *method, json_t *id, json_t *params)
{
	if (strcmp(method, "initialize") == 0)
		handle_initialize(id, params);
	else if (strcmp(method, "ping") == 0)
		send_result(id, json_object());
	else if (strcmp(method, "tools/list") == 0)
		send_result(id, json_pack("{s:o}", "tools", tools_json()));
	else if (strcmp(method, "tools/call") == 0)
		handle_call(id, params);
	else
		send_error(id, -32601, "Method not found");
}

static void handle_line(const char *line, size_t len)
{
	json_t *msg = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
	json_t *id = json_object_get(msg, "id");
	const char *method = json_string_value(json_object_get(msg, "method"));

	if (!msg) {
		send_error(NULL, -32700, "Parse error");
	} else if (!json_is_object(msg)) {
		send_error(NULL, -32600, "Invalid Request");
	} else if (!method) {
		if (!json_object_get(msg, "result") && !json_object_get(msg, "error"))
			send_error(json_is_string(id) || json_is_integer(id) ? id : NULL, -32600,
				   "Invalid Request");
		/* else a response to a request we never send: ignored */
	} else if (!id) {
		/* a notification (notifications/initialized, cancelled): nothing to do */
	} else if (!json_is_string(id) && !json_is_integer(id)) {
		send_error(NULL, -32600, "Invalid Request: id must be a string or an integer");
	} else {
		json_t *params = json_object_get(msg, "params");

		handle_request(method, id, json_is_object(params) ? params : NULL);
	}
	json_decref(msg);
}

int main(int argc, char **argv)
{
	struct linebuf lb;
	const char *line;
	size_t len;
	int r;

	if (argc > 1 && (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)) {
		printf("tandem-demo-server %s\n", TANDEM_VERSION);
		return 0;
	}
	if (argc > 1) {
		fprintf(stderr, "usage: tandem-demo-server  (a stdio MCP server: JSON-RPC lines on "
				"stdin/stdout)\n");
		return 2;
	}
	if (sodium_init() < 0)
		return 1;
	signal(SIGPIPE, SIG_IGN);
	linebuf_init(&lb, DEMO_MAX_LINE);
	for (;;) {
		while ((r = linebuf_next(&lb, &line, &len)) > 0)
			if (len > 0 && !(len == 1 && line[0] == '\r'))
				handle_line(line, len);
		if (r < 0) {
			fprintf(stderr, "tandem-demo-server: a request is longer than %u bytes\n",
				DEMO_MAX_LINE);
			break;
		}
		if (linebuf_read(&lb, STDIN_FILENO) <= 0)
			break; /* EOF (a final unterminated line is not a request) */
	}
	linebuf_free(&lb);
	return r < 0 ? 1 : 0;
}
