/* cli.h - what every tandem command shares: the global options, the
 * connection to the orchestrator (a unix socket, or a private orchestrator
 * for this one invocation), the exit codes and one-line error reporting,
 * MCP server start-up progress, and the --root syntax.
 *
 * Output rules: results go to stdout (raw JSON with --json), everything
 * meant for the human at the terminal goes to stderr (errors as
 * "tandem: ...", progress unless --json or --quiet). Functions that return
 * an int return an exit code (CLI_EXIT_*) and have already said why.
 *
 * Ownership: struct cli is the caller's (main); cli_disconnect() releases
 * what cli_connect() and the roots/progress helpers allocated. Results
 * handed out by cli_call() are new references for the caller.
 */
#ifndef TANDEM_CLI_CLI_H
#define TANDEM_CLI_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

enum {
	CLI_EXIT_OK = 0,
	CLI_EXIT_REMOTE = 1,      /* the orchestrator answered with an error */
	CLI_EXIT_USAGE = 2,
	CLI_EXIT_CONNECT = 3,     /* cannot connect, cannot start, or lost the orchestrator */
	CLI_EXIT_INTERRUPTED = 130,
};

struct conn;

struct cli {
	/* global options */
	const char *socket;       /* --socket, else $TANDEM_SOCKET; NULL: private orchestrator */
	const char *home;         /* --home, passed to a private orchestrator */
	const char *orchestrator; /* --orchestrator: the binary to spawn */
	const char *executor;     /* --executor, passed to a private orchestrator */
	bool json;                /* raw JSON results on stdout, no progress */
	bool quiet;               /* no progress */
	/* command options */
	json_t *envs;             /* --env (status): array of ids */
	const char *args;         /* --args JSON (call) */
	bool no_wait;             /* --no-wait (start) */
	const char *token_file;   /* --token-file (mcp) */
	/* state */
	struct conn *conn;
	json_t *roots;    /* --root values as selectedCapabilityRoots entries */
	json_t *progress; /* server name -> the last start-up status shown */
};

/* Prints "tandem: <message>" on stderr and returns code. */
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same, plus a hint to --help; returns CLI_EXIT_USAGE. */
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The orchestrator binary: --orchestrator, else next to this program, else
 * ../orchestrator/ relative to it (the build tree), else the name for a PATH
 * search. Caller frees. */
char *cli_orchestrator_path(const struct cli *cli);

/* Connects (or spawns), sends initialize + initialized. */
int cli_connect(struct cli *cli);
/* Closes the connection (stopping a private orchestrator) and frees the
 * json state above. Safe without a connection, and twice. */
void cli_disconnect(struct cli *cli);

/* A request, its reply, and the progress requests it set off. Steals
 * params. On CLI_EXIT_OK *result is set (new reference). */
int cli_call(struct cli *cli, const char *method, json_t *params, json_t **result);
/* The exit code for a conn_* failure r (-EINTR: interrupted, quietly). */
int cli_lost(struct cli *cli, int r);

/* The default notification handler: start-up progress. */
void cli_notify_cb(const char *method, json_t *params, void *arg);
/* Shows one mcpServer/startupStatus/updated (params borrowed) on stderr:
 * "starting server X...", "server X ready (N tools)" (the count comes from
 * a mcpServerStatus/list request sent in the background), "server X failed:
 * why". */
void cli_progress(struct cli *cli, json_t *params);
/* Whether progress already showed server `name` in `status`. */
bool cli_progress_shown(const struct cli *cli, const char *name, const char *status);

/* A private orchestrator's executors are still connecting right after its
 * start-up, and a thread only projects the roots of ready environments:
 * waits this long for an environment to leave "pending" (longer than the
 * orchestrator's default 10 s initialize timeout, so one retried handshake
 * fits). */
#define CLI_ENV_SETTLE_MS 15000
#define CLI_ENV_POLL_MS 50

/* environment/status of id (new reference in *out); with `wait`, asks again
 * while it is "pending", up to CLI_ENV_SETTLE_MS. */
int cli_env_status(struct cli *cli, const char *id, bool wait, json_t **out);
/* With a private orchestrator: waits for `local` and the environments of the
 * --root values (see above). A no-op on a socket. */
int cli_wait_envs(struct cli *cli);

/* Collects one --root into cli->roots. Exit code. */
int cli_add_root(struct cli *cli, const char *spec);
/* thread/start with cli->roots; *thread_id is malloc'd. With `raw`, the
 * whole result is handed out too (new reference). */
int cli_start_thread(struct cli *cli, char **thread_id, json_t **raw);

/* The message of a JSON-RPC error object (never NULL). Borrowed. */
const char *cli_error_message(json_t *error);

/* Prints v as one line of compact JSON on stdout. */
void cli_print_json(json_t *v);

#endif
