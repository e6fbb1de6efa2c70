/* cmd.h - the tandem commands that are one request (or a short sequence):
 * status, threads, start, servers, reload, serve. `call` and `ask` have their
 * own modules. Each takes the positional arguments after the command name
 * and returns an exit code (cli.h); all but cmd_serve need cli_connect()
 * first.
 */
#ifndef TANDEM_CLI_CMD_H
#define TANDEM_CLI_CMD_H

#include <stdbool.h>

struct cli;

/* environment/status for each --env (default "local"). */
int cmd_status(struct cli *cli, int argc, char **argv);
/* thread/list, every page. */
int cmd_threads(struct cli *cli, int argc, char **argv);
/* thread/start with the --root values; waits for the servers unless
 * --no-wait; prints the thread id. */
int cmd_start(struct cli *cli, int argc, char **argv);
/* mcpServerStatus/list of THREAD, of a new thread (--root), or of the
 * config.toml servers (neither). */
int cmd_servers(struct cli *cli, int argc, char **argv);
/* config/mcpServer/reload. */
int cmd_reload(struct cli *cli, int argc, char **argv);
/* Replaces this process with `tandem-orchestrator --listen unix://SOCKET`. */
int cmd_serve(struct cli *cli, int argc, char **argv);

/* The thread a command works on: argv[0] unless --root asked for a new one
 * (then nothing is consumed). *used says how many arguments were taken.
 * *thread_id is malloc'd, or NULL when `optional` and none was given. */
int cmd_thread_arg(struct cli *cli, int argc, char **argv, bool optional, char **thread_id,
		   int *used);

#endif
