/* bhops.h - the relay floor: the fixture MCP server reached through two
 * forwarding processes that do nothing else, in the shape of a tandem tool
 * call: this program --unix socket--> relay --TCP loopback--> relay --pipe-->
 * fixture, and back.
 *
 * Why it exists: a tool call through tandem is three round trips between
 * processes (client and orchestrator, orchestrator and executor, executor
 * and server). On a small VM, where a syscall and a wake-up on another CPU
 * are expensive, those hops alone may cost more than a latency target, even
 * with the two middle processes doing no work at all. The pipe floor (one
 * hop) cannot show that; this floor, measured in the same run with the same
 * load loops, shows how far tandem is from the cheapest possible process of
 * its shape, so a miss can be told apart from the machine's limit.
 */
#ifndef TANDEM_BHOPS_H
#define TANDEM_BHOPS_H

#include <stdint.h>

#include "bench.h"

struct bhops_floor {
	uint64_t p50_ns, p99_ns; /* sequential calls */
	double rate;             /* calls/s, 32 in flight on one connection */
	double relay_cpu_us;     /* CPU per call, both relays together, at 32 in flight */
};

/* Starts the relays (tests/bench/bench-relay, next to this program), measures,
 * stops them (each must exit 0 at EOF) and adds the info row. */
void bhops_run(const struct bench_opts *o, const struct bench_floor *f, struct bhops_floor *h);

#endif
