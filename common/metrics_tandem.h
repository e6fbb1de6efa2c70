/* metrics_tandem.h - the metrics tandem's daemons export, and the calls the
 * domain makes to count them (the catalogue; the registry is metrics.h).
 *
 * One process-wide registry, created by metrics_tandem_init on the loop
 * thread and only touched from that thread afterwards (metrics_tandem_check
 * catches a call from another thread in builds with assertions). Every
 * event function below is a cheap no-op before init, so modules call them
 * unconditionally and unit tests need no set-up. Counting does not depend
 * on --metrics-listen: the endpoint only decides whether anyone can read.
 *
 * Labels are fixed sets (README "Operations" lists them); a runtime string
 * that is not in its set is counted as "other". Nothing here ever takes a
 * thread id, token, path or URL.
 *
 * Where each event is counted (the call sites belong to the domain modules):
 *   metrics_client_request      orchestrator: when a client request is answered
 *   metrics_tool_call           orchestrator: when a tool call completes
 *   metrics_turn                orchestrator: when a turn completes
 *   metrics_model_request       orchestrator: when a model HTTP request ends
 *   metrics_link_frame          both: per link frame sent / received
 *   metrics_link_reconnect      both: a link re-established after a loss
 *   metrics_handshake_refused   both: a peer refused during the handshake
 *   metrics_server_restart      orchestrator: an MCP server restarted
 *   metrics_http_relay_request  executor: a relayed HTTP request ended
 *   metrics_loop_lag, metrics_ops_request   common/opsd.c
 * Live MCP processes (executor), environment states (orchestrator) and
 * readiness are read at scrape time from the daemon's own state
 * (metrics_tandem_gauges).
 */
#ifndef TANDEM_METRICS_TANDEM_H
#define TANDEM_METRICS_TANDEM_H

#include <stdbool.h>
#include <stddef.h>

#include "metrics.h"

/* daemon: "tandem-orchestrator" or "tandem-executor". Declares every
 * metric (both daemons export the same names; some stay 0 on one side).
 * Returns 0, or -EINVAL if the catalogue is inconsistent (a bug) with err
 * filled, or -EALREADY. */
int metrics_tandem_init(const char *daemon, char *err, size_t errlen);
/* The registry (NULL before init), for the endpoint and for daemon glue
 * that declares its own read-at-scrape metrics. */
struct metrics *metrics_tandem_registry(void);
/* Frees the registry; events become no-ops again. */
void metrics_tandem_free(void);

/* Read-at-scrape gauges the daemon supplies (either may be NULL):
 * processes() = live MCP server processes (executor);
 * env_count(state) = environments in that state, state one of
 * "connecting", "ready", "disconnected" (orchestrator); ready() = the
 * readiness check of /readyz (0 = ready; tandem_ready). */
struct metrics_tandem_gauges {
	unsigned (*processes)(void *arg);
	unsigned (*env_count)(const char *state, void *arg);
	int (*ready)(char *reason, size_t len, void *arg);
	void *arg;
};
void metrics_tandem_gauges(const struct metrics_tandem_gauges *g);

/* JSON-RPC outcome of a client request: 0 for a result, else the error
 * code (-32700, -32600, -32601, -32602, -32603, -32000, ...). */
void metrics_client_request(const char *method, int error_code);

enum metrics_tool_outcome {
	METRICS_TOOL_OK = 0,     /* a result, isError false */
	METRICS_TOOL_ERROR,      /* a result with isError true */
	METRICS_TOOL_FAILED,     /* a JSON-RPC error or transport failure */
	METRICS_TOOL_TIMEOUT,
	METRICS_TOOL_CANCELLED,
	METRICS_TOOL_UNAVAILABLE, /* environment not ready, server not running */
	METRICS_TOOL_UNKNOWN,    /* the call may have run (link lost mid-call) */
};
void metrics_tool_call(enum metrics_tool_outcome outcome, double seconds);

/* status: "completed", "failed" or "interrupted". */
void metrics_turn(const char *status, double seconds);
void metrics_model_request(bool ok, double seconds);

void metrics_link_frame(bool sent, size_t bytes);
void metrics_link_reconnect(void);
/* reason: "bad_proof", "no_hello", "timeout", "malformed", "busy",
 * "version" (anything else counts as "other"). */
void metrics_handshake_refused(const char *reason);
void metrics_server_restart(void);
/* outcome: "ok", "error", "aborted". */
void metrics_http_relay_request(const char *outcome);

/* The operations endpoint's own figures. path: "/livez", "/readyz",
 * "/metrics" (anything else counts as "other"). */
void metrics_loop_lag(double seconds);
void metrics_ops_request(const char *path);

/* Aborts (in builds with assertions) when called off the registry's thread. */
void metrics_tandem_check(void);

#endif
