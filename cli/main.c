/* main.c - tandem: a human's client for a tandem orchestrator. Options, the
 * command table, and nothing else: the commands live in cmd.c, call.c and
 * ask.c, the connection in cli.c and conn.c. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ask.h"
#include "call.h"
#include "cli.h"
#include "cmd.h"
#include "mcpbridge.h"
#include "util.h"
#include "version.h"

/* Command options, and which commands take them. */
enum { C_ENV = 1u << 0, C_ROOT = 1u << 1, C_NO_WAIT = 1u << 2, C_ARGS = 1u << 3,
       C_TOKEN = 1u << 4 };

static const struct command {
	const char *name;
	int (*fn)(struct cli *cli, int argc, char **argv);
	unsigned opts;
	/* main connects first; `ask` connects after reading its prompt, `serve`
	 * becomes the orchestrator */
	bool connect;
} commands[] = {
	{ "status", cmd_status, C_ENV, true },
	{ "threads", cmd_threads, 0, true },
	{ "start", cmd_start, C_ROOT | C_NO_WAIT, true },
	{ "servers", cmd_servers, C_ROOT, true },
	{ "call", call_cmd, C_ROOT | C_ARGS, true },
	{ "ask", ask_cmd, C_ROOT, false },
	{ "reload", cmd_reload, 0, true },
	{ "serve", cmd_serve, 0, false },
	/* a bridge to the MCP gateway's HTTP endpoint, not a client API user */
	{ "mcp", mcpbridge_cmd, C_TOKEN, false },
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: tandem [options] COMMAND [ARGS]\n"
		"A human's client for a tandem orchestrator.\n\n"
		"Commands:\n"
		"  status [--env ID]...                 environments and their state (default: local)\n"
		"  threads                              the orchestrator's threads\n"
		"  start [--root R]... [--no-wait]      start a thread, wait for its MCP servers,\n"
		"                                       print its id\n"
		"  servers [THREAD | --root R...]       MCP servers of a thread (none: config.toml's)\n"
		"  call THREAD SERVER TOOL [ARG...]     call a tool; ARG is KEY=VALUE (VALUE is JSON\n"
		"                                       when it parses, else a string) or a JSON object\n"
		"  ask THREAD PROMPT...                 run a turn and stream the answer (PROMPT '-':\n"
		"                                       read it from stdin); Ctrl-C interrupts the turn\n"
		"  reload                               reload config.toml's MCP servers\n"
		"  serve                                run an orchestrator on --socket (foreground)\n"
		"  mcp [--token-file F] URL             MCP over stdio for desktop clients: a bridge to\n"
		"                                       the gateway of a running orchestrator\n"
		"                                       (--mcp-listen), e.g. http://127.0.0.1:PORT/mcp\n"
		"                                       (URL also from $TANDEM_MCP_URL)\n\n"
		"Options:\n"
		"  --socket PATH         a running orchestrator's socket (default: $TANDEM_SOCKET).\n"
		"                        Without one, each command starts a private orchestrator\n"
		"                        that ends with it: multi-step use (start, then call) needs\n"
		"                        a socket, e.g. 'tandem serve --socket PATH &'\n"
		"  --home DIR            home of a private (or served) orchestrator\n"
		"  --orchestrator PATH   the tandem-orchestrator to start\n"
		"  --executor PATH       the tandem-executor it spawns\n"
		"  --json                raw JSON results on stdout, no progress\n"
		"  -q, --quiet           no progress messages\n"
		"  --root [ID=]ENV:PATH  (start, servers, call, ask) select a plugin root for a new\n"
		"                        thread instead of naming THREAD; ID defaults to PATH's last\n"
		"                        component; a relative PATH is allowed on 'local'\n"
		"  --env ID              (status) an environment to show; repeatable\n"
		"  --no-wait             (start) do not wait for the thread's MCP servers\n"
		"  --args JSON           (call) the arguments object\n"
		"  --token-file F        (mcp) the gateway's token or JWT (default:\n"
		"                        $TANDEM_MCP_TOKEN_FILE)\n"
		"  -h, --help            this text\n"
		"  -V, --version         print the version\n\n"
		"Exit status: 0 ok, 1 the orchestrator or the tool reported an error, 2 usage,\n"
		"3 cannot connect to or start the orchestrator (or lost it), 130 interrupted.\n");
}

enum { O_SOCKET = 256, O_HOME, O_ORCH, O_EXEC, O_JSON, O_ROOT, O_ENV, O_NO_WAIT, O_ARGS,
       O_TOKEN };

struct parsed {
	const char *socket;
	unsigned used;    /* C_* options seen */
	json_t *roots;    /* --root specs, parsed once the command is known */
	int first;        /* index of the command in argv */
};

static int parse_option(struct cli *cli, struct parsed *p, int c)
{
	switch (c) {
	case O_SOCKET: p->socket = optarg; break;
	case O_HOME: cli->home = optarg; break;
	case O_ORCH: cli->orchestrator = optarg; break;
	case O_EXEC: cli->executor = optarg; break;
	case O_JSON: cli->json = true; break;
	case 'q': cli->quiet = true; break;
	case O_ROOT: p->used |= C_ROOT; json_array_append_new(p->roots, json_string(optarg)); break;
	case O_ENV:
		if (!*optarg)
			return cli_usage("--env needs an environment id");
		p->used |= C_ENV;
		if (!cli->envs)
			cli->envs = json_array();
		json_array_append_new(cli->envs, json_string(optarg));
		break;
	case O_NO_WAIT: p->used |= C_NO_WAIT; cli->no_wait = true; break;
	case O_ARGS: p->used |= C_ARGS; cli->args = optarg; break;
	case O_TOKEN: p->used |= C_TOKEN; cli->token_file = optarg; break;
	case 'h': usage(stdout); return -1;
	case 'V': printf("tandem %s\n", TANDEM_VERSION); return -1;
	default: return cli_usage("bad option");
	}
	return CLI_EXIT_OK;
}

/* Options may come before or after the command (GNU permutation). Returns
 * an exit code, or -1 when --help/--version already answered. */
static int parse_args(struct cli *cli, struct parsed *p, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, O_SOCKET },
		{ "home", required_argument, NULL, O_HOME },
		{ "orchestrator", required_argument, NULL, O_ORCH },
		{ "executor", required_argument, NULL, O_EXEC },
		{ "json", no_argument, NULL, O_JSON },
		{ "quiet", no_argument, NULL, 'q' },
		{ "root", required_argument, NULL, O_ROOT },
		{ "env", required_argument, NULL, O_ENV },
		{ "no-wait", no_argument, NULL, O_NO_WAIT },
		{ "args", required_argument, NULL, O_ARGS },
		{ "token-file", required_argument, NULL, O_TOKEN },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c, r;

	opterr = 0; /* our own one-line messages */
	while ((c = getopt_long(argc, argv, "qhV", opts, NULL)) != -1) {
		if (c == '?')
			return optopt ? cli_usage("option '-%c' is unknown or needs a value", optopt)
				      : cli_usage("option '%s' is unknown or needs a value",
						  argv[optind - 1]);
		r = parse_option(cli, p, c);
		if (r != CLI_EXIT_OK)
			return r;
	}
	if (optind >= argc)
		return cli_usage("missing COMMAND");
	p->first = optind;
	return CLI_EXIT_OK;
}

static const char *const opt_names[] = { "--env", "--root", "--no-wait", "--args",
					 "--token-file" };

/* The command's options, the socket and the roots. */
static int check_args(struct cli *cli, struct parsed *p, const struct command *cmd, bool home_given)
{
	bool serve = strcmp(cmd->name, "serve") == 0;
	json_t *spec;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(opt_names); i++)
		if ((p->used & (1u << i)) && !(cmd->opts & (1u << i)))
			return cli_usage("%s does not apply to '%s'", opt_names[i], cmd->name);
	cli->socket = p->socket;
	/* An explicit --home asks for a private orchestrator (except for serve,
	 * which passes it on): $TANDEM_SOCKET does not override it. */
	if (!cli->socket && (!home_given || serve) && getenv("TANDEM_SOCKET") &&
	    *getenv("TANDEM_SOCKET"))
		cli->socket = getenv("TANDEM_SOCKET");
	if (p->socket && home_given && !serve)
		return cli_usage("--home is for a private orchestrator; it does not apply with "
				 "--socket");
	json_array_foreach(p->roots, i, spec) {
		int r = cli_add_root(cli, json_string_value(spec));

		if (r != CLI_EXIT_OK)
			return r;
	}
	return CLI_EXIT_OK;
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

int main(int argc, char **argv)
{
	struct cli cli = { 0 };
	struct parsed p = { .roots = json_array() };
	const struct command *cmd = NULL;
	int r = parse_args(&cli, &p, argc, argv);

	if (r == CLI_EXIT_OK) {
		cmd = find_command(argv[p.first]);
		if (!cmd)
			r = cli_usage("unknown command '%s'", argv[p.first]);
	}
	if (r == CLI_EXIT_OK)
		r = check_args(&cli, &p, cmd, cli.home != NULL);
	if (r == CLI_EXIT_OK && cmd->connect)
		r = cli_connect(&cli);
	if (r == CLI_EXIT_OK)
		r = cmd->fn(&cli, argc - p.first - 1, argv + p.first + 1);
	fflush(stdout);
	cli_disconnect(&cli);
	json_decref(p.roots);
	return r < 0 ? CLI_EXIT_OK : r;
}
