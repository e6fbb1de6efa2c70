/* fuzz_hs_exec_hello.c - the executor after a valid opening: the input
 * stands for the orchestrator's marker, HELLO and AUTH. */
#include "fuzz_hs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fbuf out = { 0 };
	struct hs *e;

	fz_record();
	e = fz_exec();
	hs_input(e, fz_o2e[0].p, fz_o2e[0].len, &out);
	out.len = 0;
	fz_feed(e, data, size, &out);
	/* PROVED only for the recorded orchestrator's exact bytes. */
	if (hs_state(e) == HS_PROVED)
		fz_expect(size >= fz_o2e[1].len && memcmp(data, fz_o2e[1].p, fz_o2e[1].len) == 0,
			  "proved with bytes the orchestrator never sent");
	fz_check_end(e, &out);
	hs_free(e);
	fbuf_free(&out);
	return 0;
}
