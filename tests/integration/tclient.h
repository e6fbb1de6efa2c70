/* tclient.h - a blocking test client for the executor link, built on the
 * real codec, plus helpers to start a real tandem-executor process.
 * Test-only code: failures abort the test through check's ck_assert. */
#ifndef TANDEM_TCLIENT_H
#define TANDEM_TCLIENT_H

#include <nng/nng.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

/* A received frame: the nng message keeps the views in `m` alive. */
struct tframe {
	nng_msg *nmsg;
	struct proto_msg m;
};
void tframe_free(struct tframe *f);

struct tclient {
	nng_socket sock;
	bool open;
	uint32_t next_id;
	uint8_t nonce_e[PROTO_NONCE_LEN];
	uint8_t nonce_o[PROTO_NONCE_LEN];
	struct tframe pending[64]; /* events received while waiting for a reply */
	unsigned n_pending;
	uint64_t live_handles[64];
	unsigned n_live;
	int pipes_removed; /* set by an nng thread */
	unsigned stderr_dropped;
};

/* Dials url and waits for CHALLENGE (returns -ETIMEDOUT when none comes,
 * e.g. because the executor refused this connection). */
int tc_dial(struct tclient *c, const char *url, int timeout_ms);
/* Sends HELLO with a proof made from `secret` (NULL: no proof; `corrupt`:
 * flip a bit of the proof). Returns the reply status (0 ok) or -errno. */
int tc_hello(struct tclient *c, const char *secret, bool corrupt);
/* Dial + HELLO, asserting success. */
void tc_connect(struct tclient *c, const char *url, const char *secret);
void tc_close(struct tclient *c);

/* Sends a request and waits for its reply (events that arrive meanwhile are
 * kept for tc_wait_event). Returns 0 and fills *reply, or -ETIMEDOUT /
 * -EPIPE. */
int tc_call(struct tclient *c, uint16_t type, const void *body, struct tframe *reply,
	    int timeout_ms);
int tc_send_event(struct tclient *c, uint16_t type, const void *body);
/* Sends raw bytes as one frame. */
int tc_send_raw(struct tclient *c, const void *data, size_t len);
/* Waits for an event of `type` (for `handle` when handle != 0). */
int tc_wait_event(struct tclient *c, uint16_t type, uint64_t handle, struct tframe *ev,
		  int timeout_ms);
/* True when the executor closed the connection (recv fails) within the
 * timeout. */
bool tc_closed_by_peer(struct tclient *c, int timeout_ms);

/* MCP conveniences over MCP_START / MCP_SEND / MCP_OUTPUT. */
uint64_t tc_mcp_start(struct tclient *c, const char *name, const char *const *argv,
		      const char *const *env_kv, const char *const *env_vars, const char *cwd,
		      uint32_t *pid);
void tc_mcp_send(struct tclient *c, uint64_t handle, const char *json);
/* Waits for the next stdout line of handle; returns a malloc'd string. */
char *tc_mcp_recv(struct tclient *c, uint64_t handle, int timeout_ms);

/* ---- a real executor process ---- */
struct texec {
	pid_t pid;
	char url[128];
	char log_path[256];
	char secret[65];
};
/* Starts build/executor/tandem-executor ($TANDEM_EXECUTOR) on a fresh
 * abstract:// address with a secret handed through fd 3; extra args and
 * extra environment ("K=V") may be NULL. Waits until it listens. */
void texec_start(struct texec *e, const char *const *extra_args, const char *const *extra_env);
/* The same on a given URL (tcp://, tls+tcp://). */
void texec_start_url(struct texec *e, const char *url, const char *const *extra_args);
void texec_start_env_url(struct texec *e, const char *url, const char *const *extra_args,
			 const char *const *extra_env);
/* Like texec_start without a secret and with an explicit URL; returns the
 * pid, or -1 if exec failed; does not wait. */
pid_t texec_spawn_raw(struct texec *e, const char *url, const char *const *extra_args);
/* SIGTERM, wait, and assert it exited cleanly (0). */
void texec_stop(struct texec *e);
void texec_kill9(struct texec *e);
/* True when the executor's log contains needle. */
bool texec_log_contains(const struct texec *e, const char *needle);
/* Waits up to timeout_ms for pid to be gone (not existing, or a zombie of
 * someone else's). */
bool pid_gone(pid_t pid, int timeout_ms);
/* Counts open fds / zombie children of pid. */
int proc_fd_count(pid_t pid);
int proc_zombie_children(pid_t pid);

const char *fixture_path(void); /* $MCP_FIXTURE */
const char *plugins_dir(void);  /* $TANDEM_FIXTURES/plugins */

#endif
