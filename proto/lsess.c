/* lsess.c - see lsess.h. */
#include "lsess.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

struct lsess *lsess_new(const uint8_t *id, size_t max_bytes, size_t max_frames)
{
	struct lsess *s = xcalloc(1, sizeof(*s));

	if (id)
		memcpy(s->id, id, sizeof(s->id));
	else
		randombytes_buf(s->id, sizeof(s->id));
	s->max_bytes = max_bytes ? max_bytes : LSESS_MAX_BYTES;
	s->max_frames = max_frames ? max_frames : LSESS_MAX_FRAMES;
	return s;
}

static void pop(struct lsess *s)
{
	struct lsess_entry *e = s->head;

	s->head = e->next;
	if (!s->head)
		s->tail = NULL;
	s->n--;
	s->bytes -= e->len;
	free(e);
}

struct lsess *lsess_free(struct lsess *s)
{
	if (!s)
		return NULL;
	while (s->head)
		pop(s);
	free(s);
	return NULL;
}

const struct lsess_entry *lsess_push(struct lsess *s, const uint8_t *env, size_t len)
{
	struct lsess_entry *e = xmalloc(sizeof(*e) + len);

	e->next = NULL;
	e->seq = ++s->tx_seq;
	e->len = len;
	memcpy(e->data, env, len);
	if (s->tail)
		s->tail->next = e;
	else
		s->head = e;
	s->tail = e;
	s->n++;
	s->bytes += len;
	/* Over a bound: the oldest go (never the one just added). */
	while (s->head != e && (s->n > s->max_frames || s->bytes > s->max_bytes)) {
		s->lost_upto = s->head->seq;
		pop(s);
	}
	return e;
}

int lsess_ack(struct lsess *s, uint64_t ack)
{
	if (ack > s->tx_seq)
		return -EPROTO;
	if (ack > s->tx_acked)
		s->tx_acked = ack;
	while (s->head && s->head->seq <= ack)
		pop(s);
	return 0;
}

int lsess_rx(struct lsess *s, uint64_t seq)
{
	if (seq == 0)
		return LSESS_ACK_ONLY;
	if (seq <= s->rx_seq) {
		s->dups++;
		return LSESS_DUP;
	}
	if (seq != s->rx_seq + 1)
		return -EPROTO;
	s->rx_seq = seq;
	return LSESS_DELIVER;
}

int lsess_can_resume(const struct lsess *s, uint64_t peer_ack, char *why, size_t whylen)
{
	if (peer_ack > s->tx_seq) {
		snprintf(why, whylen, "the peer acknowledges frame %llu, only %llu were sent",
			 (unsigned long long)peer_ack, (unsigned long long)s->tx_seq);
		return -EPROTO;
	}
	if (peer_ack < s->lost_upto) {
		snprintf(why, whylen, "the replay buffer overflowed (frames up to %llu were "
				      "dropped unacknowledged; the peer has %llu; bounds %zu bytes, "
				      "%zu frames)", (unsigned long long)s->lost_upto,
			 (unsigned long long)peer_ack, s->max_bytes, s->max_frames);
		return -ESTALE;
	}
	if (peer_ack < s->tx_acked) {
		snprintf(why, whylen, "the peer acknowledges frame %llu after %llu",
			 (unsigned long long)peer_ack, (unsigned long long)s->tx_acked);
		return -EPROTO;
	}
	return 0;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

void lsess_hdr_put(uint8_t out[LSESS_HDR], uint64_t seq, uint64_t ack)
{
	put64(out, seq);
	put64(out + 8, ack);
}

int lsess_hdr_parse(const uint8_t *p, size_t len, uint64_t *seq, uint64_t *ack)
{
	uint64_t s;

	if (len < LSESS_HDR)
		return -EBADMSG;
	s = get64(p);
	if (s == 0 && len != LSESS_HDR)
		return -EBADMSG;
	if (s != 0 && len == LSESS_HDR)
		return -EBADMSG; /* a numbered frame carries an envelope */
	*seq = s;
	*ack = get64(p + 8);
	return 0;
}
