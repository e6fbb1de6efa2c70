/* bturn.h - the turn phase of tandem-bench: a turn with one tool call
 * against tests/fixtures/fake_responses.py, reported as the client's turn
 * time minus the time the fake itself spent serving (its served_ms). Adds
 * a SKIP row when the fake or the orchestrator's turn/start is missing. */
#ifndef TANDEM_BTURN_H
#define TANDEM_BTURN_H

#include "bench.h"

void bturn_run(const struct bench_opts *o);

#endif
