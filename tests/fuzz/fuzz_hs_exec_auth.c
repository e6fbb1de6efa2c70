/* fuzz_hs_exec_auth.c - the executor after a valid opening and HELLO: the
 * input stands for AUTH (and whatever follows). */
#include "fuzz_hs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fbuf out = { 0 };
	const uint8_t *payload;
	size_t hello_end, plen, need;
	struct hs *e;

	fz_record();
	/* marker, then the HELLO frame */
	fz_expect(frame_parse(fz_o2e[1].p + HS_MARKER_LEN, fz_o2e[1].len - HS_MARKER_LEN, 4096,
			      &payload, &plen, &need) == 0, "recorded HELLO");
	hello_end = HS_MARKER_LEN + FRAME_HDR + plen;
	e = fz_exec();
	hs_input(e, fz_o2e[0].p, fz_o2e[0].len, &out);
	hs_input(e, fz_o2e[1].p, hello_end, &out);
	out.len = 0;
	fz_feed(e, data, size, &out);
	if (hs_state(e) == HS_PROVED) {
		size_t alen = fz_o2e[1].len - hello_end;

		fz_expect(size >= alen && memcmp(data, fz_o2e[1].p + hello_end, alen) == 0,
			  "proved with an AUTH the orchestrator never sent");
		hs_accept(e, fz_info(), &out);
	}
	fz_check_end(e, &out);
	hs_free(e);
	fbuf_free(&out);
	return 0;
}
