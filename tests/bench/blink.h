/* blink.h - the link phase of tandem-bench: the same tool calls over a
 * sealed link (an executor on tcp:// loopback with a token, dialled by the
 * orchestrator as a `url` environment): sequential p50, calls/s at 32 in
 * flight on that one link, CPU per call in each daemon; and what sealing
 * costs per frame (seal + open of one frame, measured in-process). Its
 * baseline is the relay floor (bhops.h): the same shape of processes with
 * do-nothing relays in the middle. */
#ifndef TANDEM_BLINK_H
#define TANDEM_BLINK_H

#include "bench.h"

void blink_run(const struct bench_opts *o, const struct bench_floor *f);

#endif
