/* tclient.h - a blocking test client for the executor link (protocol 2 on
 * an nng stream), built on the real codec, framing, seal and handshake,
 * plus helpers to start a real tandem-executor process. It can also speak
 * the link wrongly on purpose (raw bytes, recorded handshakes, tampered
 * sealed frames). Test-only code: failures abort the test through check's
 * ck_assert. */
#ifndef TANDEM_TCLIENT_H
#define TANDEM_TCLIENT_H

#include <nng/nng.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "frame.h"
#include "proto.h"
#include "seal.h"

/* A received frame: buf keeps the views in `m` alive. */
struct tframe {
	uint8_t *buf;
	struct proto_msg m;
};
void tframe_free(struct tframe *f);

struct tclient {
	nng_stream_dialer *d;
	nng_stream *s;
	nng_aio *aio;
	bool open;
	struct fbuf rx;          /* received, not yet used */
	struct fbuf opening;     /* the executor's opening (SP header + CHALLENGE) */
	struct fbuf sent;        /* every byte we sent (recorded handshakes) */
	bool sealed;
	struct seal tx, rxs;
	uint32_t next_id;
	struct tframe pending[64]; /* events received while waiting for a reply */
	unsigned n_pending;
	uint64_t live_handles[64];
	unsigned n_live;
	unsigned stderr_dropped;
	bool challenge_seal;     /* the executor's CHALLENGE said seal */
	/* the session (protocol 3): frames carry seq and ack (proto/lsess.h) */
	bool session;
	uint8_t session_id[PROTO_SESSION_ID_LEN];
	bool resumed;            /* the last handshake resumed resume_id */
	uint64_t tx_seq, rx_seq, peer_ack;
	/* set before tc_hello: ask to resume this session with this ack */
	bool want_resume;
	uint8_t resume_id[PROTO_SESSION_ID_LEN];
	uint64_t resume_ack;
	char resume_refused[300];
};

/* Connects to url (tls+tcp:// trusts $TANDEM_TEST_TLS_CA, name localhost),
 * sends the SP header and waits for the executor's opening. 0, -ETIMEDOUT
 * (no opening came), -ECONNREFUSED, -EPIPE. */
int tc_dial(struct tclient *c, const char *url, int timeout_ms);
/* Only connects (nothing sent). */
int tc_open(struct tclient *c, const char *url);
/* Runs the rest of the handshake with a proof made from `secret` (NULL: no
 * proof at all; `corrupt`: a proof from a wrong key). Returns 0 when both
 * sides proved the secret, the executor's error status (> 0: denied,
 * busy...) when it refused, or -errno. */
int tc_hello(struct tclient *c, const char *secret, bool corrupt);
/* Dial + HELLO, asserting success. */
void tc_connect(struct tclient *c, const char *url, const char *secret);
/* Dials again and asks to resume session id, having sent tx_seq frames and
 * received rx_seq in it: tc_hello's result; c->resumed says whether it was
 * resumed (else c->resume_refused says why, and the session is fresh). */
int tc_resume(struct tclient *c, const char *url, const char *secret, const uint8_t *id,
	      uint64_t tx_seq, uint64_t rx_seq);
void tc_close(struct tclient *c);

/* Sends a request and waits for its reply (events that arrive meanwhile are
 * kept for tc_wait_event). Returns 0 and fills *reply, or -ETIMEDOUT /
 * -EPIPE. */
int tc_call(struct tclient *c, uint16_t type, const void *body, struct tframe *reply,
	    int timeout_ms);
int tc_send_event(struct tclient *c, uint16_t type, const void *body);
/* Sends raw bytes on the stream, as they are. */
int tc_send_bytes(struct tclient *c, const void *data, size_t len);
/* Sends payload as one frame (sealed when the link is): any bytes. */
int tc_send_raw(struct tclient *c, const void *data, size_t len);
/* Sends one sealed frame of payload with bit `bit` of the wire bytes
 * (header excluded) flipped. */
int tc_send_tampered(struct tclient *c, const void *payload, size_t len, unsigned bit);
/* Waits for an event of `type` (for `handle` when handle != 0). */
int tc_wait_event(struct tclient *c, uint16_t type, uint64_t handle, struct tframe *ev,
		  int timeout_ms);
/* True when the executor closed the connection within the timeout (what
 * it sent meanwhile is discarded). */
bool tc_closed_by_peer(struct tclient *c, int timeout_ms);
/* Reads raw bytes for up to timeout_ms (or until the peer closes); returns
 * how many arrived, -EPIPE when it closed with none. */
ssize_t tc_read_raw(struct tclient *c, void *buf, size_t cap, int timeout_ms);

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
	char url[160];
	char log_path[256];
	char secret[65];
	char dir[64]; /* a private temp dir for its ipc socket, or "" */
};
/* Starts build/executor/tandem-executor ($TANDEM_EXECUTOR) on a fresh
 * ipc:// address in a private temp dir with a secret handed through fd 3;
 * extra args and extra environment ("K=V") may be NULL. Waits until it
 * listens. */
void texec_start(struct texec *e, const char *const *extra_args, const char *const *extra_env);
/* The same on a given URL (tcp://, tls+tcp://; port 0 is read back from
 * the log into e->url). */
void texec_start_url(struct texec *e, const char *url, const char *const *extra_args);
void texec_start_env_url(struct texec *e, const char *url, const char *const *extra_args,
			 const char *const *extra_env);
/* Like texec_start without a secret and with an explicit URL; returns the
 * pid, or -1 if exec failed; does not wait. */
pid_t texec_spawn_raw(struct texec *e, const char *url, const char *const *extra_args);
/* SIGTERM, wait, and assert it exited cleanly (0); removes its temp dir. */
void texec_stop(struct texec *e);
/* SIGKILL and reap (nothing when pid is 0); removes its temp dir. */
void texec_kill9(struct texec *e);
/* True when the executor's log contains needle. */
bool texec_log_contains(const struct texec *e, const char *needle);
/* Waits up to timeout_ms for the log to contain needle. */
bool texec_log_wait(const struct texec *e, const char *needle, int timeout_ms);
/* Waits up to timeout_ms for pid to be gone (not existing, or a zombie of
 * someone else's). */
bool pid_gone(pid_t pid, int timeout_ms);
/* Counts open fds / zombie children of pid; RSS in KiB. */
int proc_fd_count(pid_t pid);
int proc_zombie_children(pid_t pid);
long proc_rss_kib(pid_t pid);

/* Runs the shell command once this process has exited, however it exits
 * (check ends a failed test with _exit: no atexit, no teardown). A janitor
 * child per process waits for its parent's end on a pipe. Commands must be
 * idempotent: they also run after a test that cleaned up itself. */
void test_janitor(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

const char *fixture_path(void); /* $MCP_FIXTURE */
const char *plugins_dir(void);  /* $TANDEM_FIXTURES/plugins */

#endif
