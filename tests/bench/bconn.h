/* bconn.h - one newline-delimited JSON-RPC connection for the benchmark:
 * a client of the orchestrator (unix socket) or of an MCP server (the two
 * pipes of a child process).
 *
 * The hot path never builds a JSON tree: bconn_scan reads only the top-level
 * members of a message (id, method, result, error) so that the cost the
 * benchmark adds to each call is a few hundred nanoseconds, the same for
 * tandem and for the baseline it is compared with. bconn_call is the slow,
 * convenient path (jansson) for set-up requests.
 *
 * Writes block (requests are small and the peers read them promptly);
 * reads wait with poll, stay responsive to SIGINT, and fail the benchmark
 * at a deadline or when the peer closes. A line returned by the reader
 * points into the connection's buffer and stays valid until the next read.
 */
#ifndef TANDEM_BCONN_H
#define TANDEM_BCONN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BCONN_MAX_LINE (64u * 1024 * 1024)
#define BCONN_TIMEOUT_MS 30000u /* one answer; more means the system is stuck */

struct bconn {
	int rfd, wfd;
	pid_t pid;        /* the child on the other end of a pipe pair, else 0 */
	char *name;       /* for messages */
	char *buf;
	size_t start, end, cap;
	int64_t next_id;  /* ids of bconn_call and the hot loops */
	/* bconn_call: when the request was written and when its answer line
	 * was complete (before it is parsed), bsys_now_ns clock. */
	uint64_t t_sent, t_answer;
	/* WebSocket (bconn_ws_*): each line sent goes out as one masked text
	 * frame; frames read are unwrapped into lines in buf. */
	bool ws;
	char *raw;
	size_t raw_len, raw_cap;
};

/* The top-level members of one message. */
struct bmsg {
	bool has_id, has_result, has_error;
	int64_t id;        /* when has_id and the id is an integer */
	const char *method; /* not NUL-terminated; NULL when absent */
	size_t method_len;
};

/* Connects to a unix socket, retrying until timeout_ms (the daemon may not
 * listen yet). */
struct bconn *bconn_unix(const char *name, const char *path, unsigned timeout_ms);
/* A WebSocket client (GET /rpc upgrade) on 127.0.0.1:port, or on a unix
 * socket; the same line interface as the others. */
struct bconn *bconn_ws_tcp(const char *name, int port);
struct bconn *bconn_ws_unix(const char *name, const char *path);
/* Starts argv (via bsys_spawn) with pipes on stdin and stdout; its stderr
 * goes to err_fd (-1: /dev/null). */
struct bconn *bconn_spawn(const char *name, const char *const *argv, int err_fd);
/* Closes the fds; a child is waited for (it exits at EOF on stdin).
 * Accepts NULL; returns NULL. */
struct bconn *bconn_free(struct bconn *c);

void bconn_send(struct bconn *c, const char *data, size_t len);
/* The next complete line already buffered, without reading. */
bool bconn_next_line(struct bconn *c, const char **line, size_t *len);
/* One read(2) of what is available (call after poll said readable). */
void bconn_fill(struct bconn *c);
/* Waits for the next line until deadline_ns (bsys_now_ns clock). */
void bconn_read_line(struct bconn *c, uint64_t deadline_ns, const char **line, size_t *len);
/* A test server (the Python fixtures) that prints "LISTENING <port>" when
 * ready: spawned with its stderr in `log` (shown if the benchmark fails),
 * *port set from that line within timeout_ms, else the benchmark fails. */
struct bconn *bconn_spawn_listening(const char *name, const char *const *argv, const char *log,
				    unsigned timeout_ms, int *port);

/* Fails only for a line that is not a JSON object. */
int bconn_scan(const char *line, size_t len, struct bmsg *m);
bool bmsg_is(const struct bmsg *m, const char *method);

/* Sends {"id":N,"method":method,"params":params} (params stolen; NULL: {})
 * and waits for the answer, skipping notifications. Returns the result (new
 * reference), or NULL with the error message in err. A line with another
 * id, or that is not JSON, fails the benchmark. */
json_t *bconn_call(struct bconn *c, const char *method, json_t *params, char *err,
		   size_t errlen);
/* bconn_call that fails the benchmark on an error answer. */
json_t *bconn_call_ok(struct bconn *c, const char *method, json_t *params);
/* Waits for a notification `method` and returns its params (new reference);
 * other notifications are skipped, an answer fails the benchmark. */
json_t *bconn_wait_notification(struct bconn *c, const char *method, unsigned timeout_ms);

#endif
