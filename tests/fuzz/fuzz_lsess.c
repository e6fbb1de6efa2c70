/* fuzz_lsess.c - a link session's receiving and sending side as link.c
 * drives it (proto/lsess.h): the input is a script of frames received
 * (header bytes from the input, as a peer would send them) and frames
 * sent, over a small replay buffer (8 frames, 256 bytes). Checks: what is
 * delivered is numbered 1, 2, 3... with no gap and no repeat; an ack never
 * frees a frame it does not cover nor accepts one never sent; the buffer
 * stays within its bounds (one frame alone may exceed the bytes); lost_upto
 * only grows; a resume is allowed only with a peer past what was dropped. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsess.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void expect(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_lsess: %s\n", what);
		abort();
	}
}

static void check_buffer(const struct lsess *s)
{
	size_t n = 0, bytes = 0;
	uint64_t prev = s->tx_acked;

	for (const struct lsess_entry *e = s->head; e; e = e->next) {
		expect(e->seq > prev, "kept frames are numbered upwards, past the ack");
		prev = e->seq;
		n++;
		bytes += e->len;
	}
	expect(n == s->n && bytes == s->bytes, "the buffer's counts add up");
	expect(!s->head || s->tail->seq == s->tx_seq, "the newest frame is kept");
	expect(n <= s->max_frames && (bytes <= s->max_bytes || n == 1), "the buffer's bounds");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lsess *s = lsess_new(NULL, 256, 8);
	uint64_t delivered = 0, lost = 0;
	size_t off = 0;

	while (off < size) {
		uint8_t op = data[off++];
		size_t len = op >> 2;

		if (op & 1) { /* send a frame of len bytes */
			uint8_t env[64] = { 0 };

			lsess_push(s, env, len);
		} else { /* receive a frame: header and payload from the input */
			uint64_t seq, ack, acked = s->tx_acked;
			size_t n = len + LSESS_HDR;
			int r;

			if (n > size - off)
				break;
			r = lsess_hdr_parse(data + off, n, &seq, &ack);
			off += n;
			if (r < 0)
				continue;
			r = lsess_ack(s, ack);
			expect(r == 0 ? ack <= s->tx_seq : ack > s->tx_seq, "acks of frames sent");
			expect(s->tx_acked >= acked, "the peer's ack never goes back");
			if (r < 0)
				break; /* the link would close */
			r = lsess_rx(s, seq);
			if (r == LSESS_DELIVER)
				expect(seq == ++delivered, "delivered in order, once");
			else if (r == LSESS_DUP)
				expect(seq <= delivered && seq > 0, "a duplicate is old");
			else if (r == LSESS_ACK_ONLY)
				expect(seq == 0, "a pure ack has no number");
			else
				expect(r == -EPROTO && seq > delivered + 1, "a gap is refused");
			if (r < 0)
				break;
		}
		expect(s->lost_upto >= lost, "lost_upto only grows");
		lost = s->lost_upto;
		check_buffer(s);
		{
			char why[256];

			for (uint64_t a = s->tx_acked; a <= s->tx_seq && a < s->tx_acked + 4; a++)
				expect((lsess_can_resume(s, a, why, sizeof(why)) == 0) ==
					       (a >= s->lost_upto),
				       "a resume needs a peer past what was dropped");
		}
	}
	expect(s->rx_seq == delivered, "the ack counts what was delivered");
	lsess_free(s);
	return 0;
}
