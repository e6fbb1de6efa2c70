/* fuzz_hs_exec_opening.c - the executor's first step: whatever a client
 * sends first (an SP header, then the marker or a protocol-1 HELLO). */
#include "fuzz_hs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fbuf out = { 0 };
	struct hs *e;

	fz_record();
	e = fz_exec();
	fz_feed(e, data, size, &out);
	/* Without the secret's proof nothing gets past the handshake. */
	fz_expect(hs_state(e) != HS_DONE, "done without a proof");
	fz_check_end(e, &out);
	hs_free(e);
	fbuf_free(&out);
	return 0;
}
