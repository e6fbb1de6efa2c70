/* fuzz_proto.c - libFuzzer target for the link frame decoder.
 *
 * Beyond "no crash, no leak, no overread" it checks the codec's promises: a
 * rejected frame has a reason; an accepted frame re-encodes to a frame that
 * decodes to the same envelope (the decoder accepts nothing the encoder
 * cannot express). Build with -fsanitize=fuzzer, or link replay.c.
 */
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void expect(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_proto: %s\n", what);
		abort();
	}
}

static int sbuf_write(void *ctx, const void *d, size_t len)
{
	return msgpack_sbuffer_write(ctx, d, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_msg m, again;
	msgpack_sbuffer sb;
	char err[256] = "";
	int r;

	if (proto_decode(data, size, &m, err, sizeof(err)) < 0) {
		expect(err[0] != '\0', "rejected without a reason");
		return 0;
	}
	msgpack_sbuffer_init(&sb);
	if (m.env.kind == PROTO_REPLY && m.env.status != 0) {
		char *msg = strndup(m.err_message.ptr ? m.err_message.ptr : "", m.err_message.len);

		r = proto_encode_error(sbuf_write, &sb, m.env.type, m.env.id, m.env.status, msg);
		free(msg);
	} else {
		r = proto_encode(sbuf_write, &sb, m.env.type, m.env.kind, m.env.id, &m.u);
	}
	expect(r == 0, "an accepted frame does not re-encode");
	expect(proto_decode(sb.data, sb.size, &again, err, sizeof(err)) == 0,
	       "a re-encoded frame does not decode");
	expect(again.env.type == m.env.type && again.env.kind == m.env.kind &&
		       again.env.id == m.env.id && again.env.status == m.env.status,
	       "the envelope changed in a round trip");
	proto_msg_release(&again);
	proto_msg_release(&m);
	msgpack_sbuffer_destroy(&sb);
	return 0;
}
