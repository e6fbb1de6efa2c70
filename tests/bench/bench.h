/* bench.h - what the phases of tandem-bench share: the binaries under test
 * and the sizes of each measurement (smaller with --quick). The phases live
 * in bench.c (latency, throughput, cold start), bscale.c (memory, scale)
 * and bturn.c (a model turn against the fake provider). */
#ifndef TANDEM_BENCH_H
#define TANDEM_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "borch.h"

struct bench_opts {
	struct borch_bins bins; /* points into paths */
	char *paths[3];         /* owned: orchestrator, executor, fixture */
	const char *fake;       /* tests/fixtures/fake_responses.py, or NULL */
	const char *fake_script;
	bool quick;
	const char *only;       /* --only: comma-separated phases, or NULL for all */
	size_t seq_warm, seq_n; /* sequential calls */
	unsigned tput_warm_ms, tput_ms;
	unsigned cold_runs;
	size_t idle_threads;    /* memory: threads without roots */
	size_t live_threads;    /* memory and scale: threads with a live server */
	size_t scale_n;         /* calls per scale point */
	size_t list_roots;      /* roots of the big mcpServerStatus/list thread */
	unsigned list_runs;
	unsigned turn_warm, turn_runs;
};

struct bconn;

/* MCP's opening on a fresh connection to the fixture (initialize,
 * notifications/initialized, tools/list with tools), as a client does it. */
void bench_mcp_open(struct bconn *c);

/* A row: CPU per call of the orchestrator (cpu[0]) and executor (cpu[1]). */
void rows_cpu(const char *what, const double cpu[2]);

/* Figures of the pipe floor that later phases compare with. */
struct bench_floor {
	uint64_t p50_ns, p99_ns;
	double rate;
	uint64_t cold_ns;
};

#endif
