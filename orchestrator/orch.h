/* orch.h - tandem-orchestrator's shared state and the modules around it.
 *
 *   main.c     options, home, signals, start-up and shutdown
 *   config.c   config.toml  (model, providers, [mcp_servers], [features])
 *   envfile.c  environments.toml
 *   env.c      one executor link per environment (spawn or dial, auth)
 *   client.c   client API transport: JSON-RPC lines over stdio / unix socket
 *   rpc.c      rpc_<method>: the client API (dispatch table = policy)
 *   thread.c   threads: selected roots, resolution cache, per-step projection
 *   view.c     MCP views: configured -> runtime (contributors) -> effective
 *   srv.c      live MCP server instances, shared by key, on executors
 *   mcp.c      the MCP client protocol over any transport
 *
 * Filesystem-less: nothing here opens a path inside a plugin root or spawns an
 * MCP server; plugin files are the executors' business. One loop thread owns
 * everything; nng threads only post to it.
 */
#ifndef TANDEM_ORCH_H
#define TANDEM_ORCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct loop;
struct env;
struct client;
struct client_srv;
struct config;
struct envfile;
struct thread;
struct srv;
struct http;

#define ORCH_MAX_ROOTS 256u          /* selected roots per thread */
#define ORCH_MAX_THREADS 100000u
#define ORCH_RESOLVE_TIMEOUT_MS 30000u
#define ORCH_START_TIMEOUT_MS 30000u /* MCP_START round trip */

struct orch {
	struct loop *loop;
	char *home;
	struct config *config;
	struct envfile *envfile;
	struct env **envs;
	size_t n_envs;
	struct thread *threads;   /* newest first */
	size_t n_threads;
	struct srv *srvs;         /* live server instances */
	struct client_srv *listener;
	struct http *http;        /* libcurl multi on the loop: model API, HTTP MCP */
	struct session *sessions; /* connected clients */
	bool stdio;               /* serving stdio: EOF ends the daemon */
	/* counters tests and benchmarks read through debug/counters */
	uint64_t rediscoveries;   /* ROOT_RESOLVE requests sent */
	uint64_t runtime_builds;  /* thread runtimes (re)built */
	uint64_t server_starts;   /* MCP server processes started */
};

extern struct orch *orch; /* the one instance, loop thread only */

/* One connected client. */
struct session {
	struct session *next;
	struct client *client;
	bool initialized;
	struct req *reqs; /* requests still waiting for something */
};

/* An asynchronous client request in flight. If its session goes away the
 * reply is dropped (sess == NULL) and `cancel` lets the owner stop work. */
struct req {
	struct req *next_in_sess;
	struct session *sess;
	json_t *id;
	void (*cancel)(struct req *r);
	void *data;
};
struct req *req_new(struct session *s, json_t *id);
void req_reply(struct req *r, json_t *result);  /* steals result; frees r */
void req_error(struct req *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Thread-scoped notifications go to the session that started the thread. */
void orch_notify_thread(struct thread *t, const char *method, json_t *params);
void orch_notify_all(const char *method, json_t *params);

/* environments */
struct env *orch_env(const char *id);
int orch_env_add(const char *id, const char *url, const char *token, uint64_t connect_timeout_ms,
		 char *err, size_t errlen);
int orch_envs_start(void);  /* environments.toml (+ the implicit local one) */
void orch_envs_stop(void);

extern const struct client_ops orch_client_ops;

#define RPC_PARSE_ERROR -32700
#define RPC_INVALID_REQUEST -32600
#define RPC_METHOD_NOT_FOUND -32601
#define RPC_INVALID_PARAMS -32602
#define RPC_INTERNAL_ERROR -32603

#endif
