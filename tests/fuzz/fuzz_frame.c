/* fuzz_frame.c - the link's framing reader, as struct link runs it: bytes
 * arrive in chunks (sizes taken from the input), whole frames are taken
 * from the front of the buffer, each is opened when sealed (a fixed key:
 * garbage must fail to open, never crash) and decoded. Checks: a frame is
 * never taken past the bytes received, an over-limit declaration is
 * refused from its header alone, consumption adds up. */
#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "proto.h"
#include "seal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PAYLOAD (64u * 1024u)

static void expect(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_frame: %s\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t key[SEAL_KEY_LEN] = { 1 }, prefix[SEAL_PREFIX_LEN] = { 2 };
	struct fbuf buf = { 0 };
	struct seal rx;
	size_t off = 1, taken = 0;
	int sealed;

	if (size < 1 || sodium_init() < 0)
		return 0;
	sealed = data[0] & 1;
	seal_init(&rx, data[0] & 4 ? SEAL_CHACHA20POLY1305
		  : data[0] & 2 && seal_aead_available(SEAL_AES256GCM) ? SEAL_AES256GCM
									 : SEAL_XCHACHA20POLY1305,
		  key, prefix);
	while (off < size) {
		size_t n = 1 + data[off] % 61;

		n = n < size - off ? n : size - off;
		fbuf_append(&buf, data + off, n);
		off += n;
		for (;;) {
			const uint8_t *payload;
			size_t plen, need;
			struct proto_msg m;
			char err[256];
			size_t used;
			int r = frame_parse(buf.p, buf.len, MAX_PAYLOAD + SEAL_TAG_LEN, &payload, &plen,
					    &need);

			if (r == -EAGAIN) {
				expect(need > buf.len && need <= FRAME_HDR + MAX_PAYLOAD + SEAL_TAG_LEN,
				       "asked for a bad amount");
				break;
			}
			if (r < 0) { /* the link closes here */
				expect(buf.len >= FRAME_HDR, "refused before a header");
				fbuf_free(&buf);
				seal_wipe(&rx);
				return 0;
			}
			expect(payload == buf.p + FRAME_HDR && FRAME_HDR + plen <= buf.len,
			       "a frame past the bytes received");
			used = FRAME_HDR + plen;
			if (sealed && seal_open(&rx, buf.p, (uint8_t *)payload, plen, &plen) < 0)
				goto out; /* closes: does not authenticate */
			if (proto_decode(payload, plen, &m, err, sizeof(err)) == 0)
				proto_msg_release(&m);
			else
				expect(err[0] != '\0', "rejected without a reason");
			taken += used;
			memmove(buf.p, buf.p + used, buf.len - used);
			buf.len -= used;
		}
	}
out:
	expect(taken <= size, "took more than it got");
	fbuf_free(&buf);
	seal_wipe(&rx);
	return 0;
}
