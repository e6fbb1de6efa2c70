/* fuzz_hs_orch_replies.c - the orchestrator after a valid CHALLENGE: the
 * input stands for the HELLO reply and the AUTH reply (or a refusal). */
#include "fuzz_hs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fbuf out = { 0 };
	struct hs *o;

	fz_record();
	o = fz_orch();
	hs_start(o, &out);
	hs_input(o, fz_e2o[0].p, fz_e2o[0].len, &out);
	out.len = 0;
	fz_feed(o, data, size, &out);
	if (hs_state(o) == HS_DONE)
		fz_expect(size >= fz_e2o[1].len && memcmp(data, fz_e2o[1].p, fz_e2o[1].len) == 0,
			  "done with replies the executor never sent");
	fz_check_end(o, &out);
	hs_free(o);
	fbuf_free(&out);
	return 0;
}
