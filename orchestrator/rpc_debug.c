/* rpc_debug.c - debug/counters: tandem's own method, the counters tests and
 * benchmarks assert on. */
#include "rpc.h"

#include "param.h"
#include "session.h"
#include "srv.h"
#include "store.h"
#include "thread.h"

void rpc_debug_counters(struct req *r, json_t *params)
{
	struct thread *t;
	struct store_stats ss;
	json_t *res;

	if (param_thread(r, params, false, &t) < 0)
		return;
	store_stats(&ss);
	res = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "rediscoveries",
			(json_int_t)threads_rediscoveries(), "runtimeBuilds",
			(json_int_t)threads_builds(), "serverStarts", (json_int_t)srv_starts(),
			"threads", (json_int_t)threads_count(), "threadsUnloaded",
			(json_int_t)threads_unloaded(), "storePending", (json_int_t)store_pending(),
			"storeWrites", (json_int_t)ss.batches);
	if (t)
		json_object_set_new(res, "thread",
				    json_pack("{s:I, s:I}", "rediscoveries",
					      (json_int_t)thread_rediscoveries(t), "runtimeBuilds",
					      (json_int_t)thread_builds(t)));
	req_reply(r, res);
}
