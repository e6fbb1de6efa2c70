/* fuzz_hs_orch_challenge.c - the orchestrator's first step: whatever a
 * server answers to its SP header (an executor's opening, a protocol-1
 * executor, or anything at all). */
#include "fuzz_hs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fbuf out = { 0 };
	struct hs *o;

	fz_record();
	o = fz_orch();
	hs_start(o, &out);
	out.len = 0;
	fz_feed(o, data, size, &out);
	/* Done only with the recorded executor's exact bytes. */
	if (hs_state(o) == HS_DONE)
		fz_expect(size >= fz_e2o[0].len + fz_e2o[1].len &&
				  memcmp(data, fz_e2o[0].p, fz_e2o[0].len) == 0 &&
				  memcmp(data + fz_e2o[0].len, fz_e2o[1].p, fz_e2o[1].len) == 0,
			  "done with bytes the executor never sent");
	fz_check_end(o, &out);
	hs_free(o);
	fbuf_free(&out);
	return 0;
}
