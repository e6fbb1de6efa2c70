/* lsess.h - a resumable link session (protocol 3): the session id, the
 * per-direction sequence numbers, cumulative acks and the bounded replay
 * buffer that let a session outlive its connection (PROTOCOL.md,
 * "Sessions"). Pure bookkeeping: no I/O, no clock, no logging; link.c puts
 * the header on frames and calls this, the daemons decide when a session
 * ends.
 *
 * Every frame after the handshake starts (inside the seal) with a 16-byte
 * header: be64 seq, be64 ack. seq numbers the frames of one direction of a
 * session from 1 (0: a pure ack, which carries no envelope and is neither
 * numbered nor kept); ack is the last seq the sender received in order.
 * Each frame sent is kept (its envelope, not its sealed bytes: a new
 * connection seals with new keys) until the peer acks it. On a resumed
 * connection the unacked frames are sent again, in order, from the peer's
 * ack: the receiver delivers seq = last + 1 only, drops what it already
 * has (a duplicate), and treats a gap as a broken peer.
 *
 * Bounds: LSESS_MAX_BYTES of envelopes and LSESS_MAX_FRAMES frames kept.
 * Past either the oldest frames are dropped unacked (lost_upto): the
 * session works on while its connection lasts, but can resume only with a
 * peer that acked past them.
 *
 * Ownership: the daemon owns a struct lsess (lsess_free); a link only
 * points at it. Loop thread only.
 */
#ifndef TANDEM_PROTO_LSESS_H
#define TANDEM_PROTO_LSESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define LSESS_HDR 16u
/* Under LINK_MAX_QUEUED (64 MiB) with the headers and tags of a full
 * replay, so that a resume can always queue what it sends again. */
#define LSESS_MAX_BYTES (48u * 1024u * 1024u)
#define LSESS_MAX_FRAMES 16384u

struct lsess_entry {
	struct lsess_entry *next;
	uint64_t seq;
	size_t len;
	uint8_t data[]; /* the envelope */
};

struct lsess {
	uint8_t id[PROTO_SESSION_ID_LEN];
	uint64_t tx_seq;    /* last seq given to a frame we sent */
	uint64_t tx_acked;  /* the peer's latest ack */
	uint64_t rx_seq;    /* last seq received in order (our ack) */
	uint64_t rx_told;   /* the ack last sent to the peer */
	uint64_t lost_upto; /* highest seq dropped from the buffer unacked, 0 = none */
	uint64_t dups;      /* duplicates dropped (counted for tests) */
	struct lsess_entry *head, *tail;
	size_t n, bytes;
	size_t max_bytes, max_frames;
};

/* A session with this id (NULL: random). Bounds 0: the defaults. */
struct lsess *lsess_new(const uint8_t *id, size_t max_bytes, size_t max_frames);
struct lsess *lsess_free(struct lsess *s); /* NULL ok; returns NULL */

/* Keeps a copy of one envelope as the next frame (numbered: entry->seq).
 * Over a bound, the oldest frames are dropped (lost_upto). */
const struct lsess_entry *lsess_push(struct lsess *s, const uint8_t *env, size_t len);
/* The peer acked up to ack: those frames go. -EPROTO for an ack of a frame
 * never sent. */
int lsess_ack(struct lsess *s, uint64_t ack);

enum lsess_rx { LSESS_DELIVER, LSESS_ACK_ONLY, LSESS_DUP };
/* A received frame's seq: deliver it (and count it), a pure ack, a
 * duplicate to drop, or -EPROTO (a gap: frames were lost). */
int lsess_rx(struct lsess *s, uint64_t seq);

/* Can the session resume with a peer whose last received seq is peer_ack?
 * 0, or -ESTALE / -EPROTO with why. */
int lsess_can_resume(const struct lsess *s, uint64_t peer_ack, char *why, size_t whylen);
/* Our ack has news for the peer. */
static inline bool lsess_ack_due(const struct lsess *s) { return s->rx_seq != s->rx_told; }

void lsess_hdr_put(uint8_t out[LSESS_HDR], uint64_t seq, uint64_t ack);
/* -EBADMSG when len < LSESS_HDR, or a pure ack (seq 0) with a payload. */
int lsess_hdr_parse(const uint8_t *p, size_t len, uint64_t *seq, uint64_t *ack);

#endif
