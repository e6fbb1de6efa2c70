/* rpc_debug.c - debug/counters: tandem's own method, the counters tests and
 * benchmarks assert on; in test builds also debug/tryOpen. */
#include "rpc.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "param.h"
#include "sandbox.h"
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
	res = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s}", "rediscoveries",
			(json_int_t)threads_rediscoveries(), "runtimeBuilds",
			(json_int_t)threads_builds(), "serverStarts", (json_int_t)srv_starts(),
			"threads", (json_int_t)threads_count(), "threadsUnloaded",
			(json_int_t)threads_unloaded(), "storePending", (json_int_t)store_pending(),
			"storeWrites", (json_int_t)ss.batches, "sandbox", sandbox_self_describe());
	if (t)
		json_object_set_new(res, "thread",
				    json_pack("{s:I, s:I}", "rediscoveries",
					      (json_int_t)thread_rediscoveries(t), "runtimeBuilds",
					      (json_int_t)thread_builds(t)));
	req_reply(r, res);
}

#ifdef TANDEM_TEST_HOOKS
void rpc_debug_try_open(struct req *r, json_t *params)
{
	const char *path;
	bool write = false;
	int fd;

	if (param_str(r, params, "path", true, &path) < 0 ||
	    param_bool(r, params, "write", &write) < 0)
		return;
	fd = open(path, (write ? O_WRONLY : O_RDONLY) | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		int e = errno;

		req_reply(r, json_pack("{s:b, s:i, s:s}", "ok", 0, "errno", e, "error",
				       strerror(e)));
		return;
	}
	close(fd);
	req_reply(r, json_pack("{s:b}", "ok", 1));
}

/* Returns without ending r: the dispatcher's guard must answer it. */
void rpc_debug_forget(struct req *r, json_t *params)
{
	(void)r;
	(void)params;
}
#endif
