/* opsd.h - the operations endpoint: /livez, /readyz and /metrics over HTTP,
 * on an address of its own (--metrics-listen HOST:PORT).
 *
 *   GET /livez    200 "ok": answered by the daemon's event loop thread, so
 *                 an answer proves the loop turns.
 *   GET /readyz   200 "ready", or 503 "not ready: REASON" from the daemon's
 *                 readiness callback.
 *   GET /metrics  the registry in the Prometheus text format 0.0.4.
 * HEAD works as GET without a body; another method gets 405, another path
 * 404. Nothing served here is secret (no tokens, no paths, no ids): the
 * endpoint has no authentication and may listen beyond loopback (a
 * Kubernetes probe comes from the node).
 *
 * libmicrohttpd runs without a thread of its own: opsd registers MHD's
 * epoll descriptor with the loop (loop_io_add) and calls MHD_run on the loop
 * thread when it is readable or MHD's timeout expires. Handlers therefore
 * run on the loop thread and read the registry and domain state without
 * locks. Bounds: OPSD_MAX_CONNS connections (OPSD_MAX_PER_IP per address),
 * an idle timeout of OPSD_TIMEOUT_SEC, OPSD_MEMORY_LIMIT bytes of request
 * buffer per connection (a larger head gets 431 from MHD).
 *
 * opsd also samples the loop's lateness (tandem_loop_lag_seconds: how late
 * a 1 s timer fires) and counts its own requests into the registry.
 *
 * Ownership: opsd_start returns a server the caller stops with opsd_stop
 * (on the loop thread). The registry and the callback's arg must outlive it.
 * Library code: errors go to err, nothing is logged.
 */
#ifndef TANDEM_OPSD_H
#define TANDEM_OPSD_H

#include <stddef.h>
#include <sys/socket.h>

struct loop;
struct metrics;
struct opsd;

#define OPSD_MAX_CONNS 32
#define OPSD_MAX_PER_IP 16
#define OPSD_TIMEOUT_SEC 10
#define OPSD_MEMORY_LIMIT (32 * 1024)
#define OPSD_LAG_PERIOD_MS 1000
#define OPSD_REASON_MAX 256

/* Returns 0 when ready; otherwise fills reason (one line) and returns
 * non-zero. Runs on the loop thread, once per /readyz and per scrape. */
typedef int (*opsd_ready_fn)(char *reason, size_t len, void *arg);

/* Parses "HOST:PORT" ("127.0.0.1:9464", "[::1]:9464", "0.0.0.0:0",
 * "localhost:9464"; PORT 0 = ephemeral). Returns 0 or -EINVAL with err. */
int opsd_parse_listen(const char *hostport, struct sockaddr_storage *ss, socklen_t *sslen,
		      char *err, size_t errlen);

/* Binds hostport and serves. reg may be NULL (/metrics then answers 503);
 * ready may be NULL (always ready). Returns NULL with err filled. */
struct opsd *opsd_start(struct loop *l, const char *hostport, struct metrics *reg,
			opsd_ready_fn ready, void *arg, char *err, size_t errlen);
/* "HOST:PORT" actually bound (the port resolved when 0 was asked). */
const char *opsd_address(const struct opsd *o);
/* Stops serving and frees. NULL ok; returns NULL. */
struct opsd *opsd_stop(struct opsd *o);

#endif
