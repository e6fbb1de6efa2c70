/* borch.h - a real tandem-orchestrator for the benchmark, and the plugin
 * directories its threads select.
 *
 * borch_start gives each instance its own directory under the benchmark's
 * temporary directory (home, socket, log), starts
 * `tandem-orchestrator --home H --listen unix://S --executor E`, connects a
 * first client, initializes it and waits until the local executor is ready,
 * so that every measurement starts from a settled daemon. borch_stop ends
 * it with SIGTERM and fails the benchmark unless it exits cleanly: a crash
 * on the way out is a misbehaving system too.
 */
#ifndef TANDEM_BORCH_H
#define TANDEM_BORCH_H

#include <jansson.h>
#include <stddef.h>
#include <sys/types.h>

struct bconn;

/* The binaries under test (absolute paths). */
struct borch_bins {
	const char *orchestrator;
	const char *executor;
	const char *fixture;
};

struct borch {
	char *dir;
	char *sock;
	char *log;       /* its stderr and its executor's */
	pid_t pid;
	pid_t exec_pid;  /* the local executor: the orchestrator's child */
	struct bconn *c; /* first client, initialized */
};

/* config_toml: written as home/config.toml when not NULL. */
struct borch *borch_start(const struct borch_bins *b, const char *name,
			  const char *config_toml);
/* The same with an environments.toml (envs_toml) and, when token_env is
 * not NULL, the contents of token_file as executor-tokens/<token_env>. */
struct borch *borch_start_env(const struct borch_bins *b, const char *name,
			      const char *config_toml, const char *envs_toml,
			      const char *token_env, const char *token_file);
/* The same with more options for the orchestrator (NULL-terminated). */
struct borch *borch_start_args(const struct borch_bins *b, const char *name,
			       const char *config_toml, const char *const *extra);
/* Both: an environments.toml, a token file and more options. */
struct borch *borch_start_full(const struct borch_bins *b, const char *name,
			       const char *config_toml, const char *envs_toml,
			       const char *token_env, const char *token_file,
			       const char *const *extra);
void borch_stop(struct borch *o);
/* Another initialized client. */
struct bconn *borch_connect(struct borch *o, const char *name);

/* Writes a plugin at dir: .codex-plugin/plugin.json and a .mcp.json with
 * one stdio server `server` running the fixture in echo mode. */
void borch_make_plugin(const struct borch_bins *b, const char *dir, const char *server);
/* thread/start selecting the given roots on the local environment (root i
 * has id ids[i] and path paths[i]); n may be 0. Returns the thread id
 * (malloc'd). */
char *borch_thread_start(struct bconn *c, const char *const *ids, const char *const *paths,
			 size_t n);
/* The same with roots on environment env. */
char *borch_thread_start_env(struct bconn *c, const char *env, const char *const *ids,
			     const char *const *paths, size_t n);
/* mcpServerStatus/list of a thread; fails unless it lists n_servers
 * servers, all connected with an "echo" tool. Returns the result. */
json_t *borch_status_ok(struct bconn *c, const char *thread_id, size_t n_servers);

/* Fails unless debug/counters reports exactly `want` MCP server starts:
 * more means a server restarted, fewer that one was shared or reused. */
void borch_check_server_starts(struct borch *o, long long want);

#endif
