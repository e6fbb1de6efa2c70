/* bload.h - the benchmark's load loops: the same echo tool call, either
 * through tandem's client API (mcpServer/tool/call, round robin over a set
 * of threads) or as a raw MCP tools/call straight to the fixture over its
 * pipes. Both paths use the same request formatting and the same
 * member scanner, so the client's own cost cancels out of the comparison.
 *
 * Every answer is checked: an error answer, an answer without a result, or
 * an id nobody asked for fails the benchmark. One answer in BLOAD_DEEP_EVERY
 * (and the first) is also parsed in full to check it carries the echoed
 * text. Notifications in between are skipped.
 */
#ifndef TANDEM_BLOAD_H
#define TANDEM_BLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct bconn;

#define BLOAD_DEEP_EVERY 256u

struct bload_target {
	bool mcp;                   /* raw MCP to the fixture, else tandem's client API */
	const char *const *threads; /* client API: thread ids, round robin */
	size_t n_threads;
	const char *server;         /* client API: server name */
};

/* warm + n sequential calls on c; lat[0..n) gets the latency of each call
 * after the warm-up, in ns. */
void bload_seq(struct bconn *c, const struct bload_target *t, size_t warm, size_t n,
	       uint64_t *lat);
/* Keeps `depth` calls in flight on each connection; after warm_ms, counts
 * the answers for run_ms. Returns calls per second over all connections. */
double bload_inflight(struct bconn *const *cs, size_t nc, const struct bload_target *t,
		      unsigned depth, unsigned warm_ms, unsigned run_ms);
/* The same, also measuring the CPU time (user + system, all threads) each
 * of pids[0..npids) spent during the measured window: cpu_us[i] gets it
 * per answered call, in microseconds. */
double bload_inflight_cpu(struct bconn *const *cs, size_t nc, const struct bload_target *t,
			  unsigned depth, unsigned warm_ms, unsigned run_ms, const pid_t *pids,
			  size_t npids, double *cpu_us);

#endif
