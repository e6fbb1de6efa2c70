/* penalty.h - per-source penalties for connections that fail the proof of
 * the secret (the idea of OpenSSH's PerSourcePenalties).
 *
 * A source is an address: an IPv4 address, or an IPv6 /64 (one host can
 * hold a whole /64). Each failed proof makes the source wait longer before
 * its next connection is even read: PENALTY_BASE_MS doubling per failure up
 * to PENALTY_MAX_MS. A penalty lapses PENALTY_FORGET_MS after it ended.
 * The table holds at most PENALTY_SLOTS sources; when it is full the entry
 * whose penalty ends first is replaced, so memory is bounded whatever a
 * flood of addresses does. Local sockets have no source and are never
 * penalised; an authenticated session is never affected.
 *
 * Pure bookkeeping on a clock the caller passes (ms): no I/O, no logging.
 */
#ifndef TANDEM_EXECUTOR_PENALTY_H
#define TANDEM_EXECUTOR_PENALTY_H

#include <stdbool.h>
#include <stdint.h>

#define PENALTY_BASE_MS 1000u
#define PENALTY_MAX_MS 60000u
#define PENALTY_FORGET_MS (10u * 60u * 1000u)
#define PENALTY_SLOTS 4096u

struct penalty;

/* A source key from an address: 0 when it has none (ipc, abstract). */
struct penalty_key {
	uint8_t b[9]; /* family byte + 4 (IPv4) or 8 (IPv6 /64) address bytes */
	bool valid;
};

struct penalty *penalty_new(void);
struct penalty *penalty_free(struct penalty *p); /* NULL ok */

/* Milliseconds the source must still wait (0: it may connect). */
uint64_t penalty_remaining(struct penalty *p, const struct penalty_key *k, uint64_t now);
/* Records a failed proof; returns the penalty it now serves (ms). */
uint64_t penalty_add(struct penalty *p, const struct penalty_key *k, uint64_t now);
unsigned penalty_count(const struct penalty *p);

/* Keys from raw addresses (network byte order). */
struct penalty_key penalty_key_ipv4(const uint8_t addr[4]);
struct penalty_key penalty_key_ipv6(const uint8_t addr[16]);

#endif
