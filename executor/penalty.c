/* penalty.c - see penalty.h. */
#include "penalty.h"

#include <string.h>

#include "util.h"

struct slot {
	struct penalty_key key;
	uint32_t fails;
	uint64_t until; /* ms: no connection before this */
};

struct penalty {
	struct slot *slots;
	unsigned n;
};

struct penalty *penalty_new(void)
{
	struct penalty *p = xcalloc(1, sizeof(*p));

	p->slots = xcalloc(PENALTY_SLOTS, sizeof(*p->slots));
	return p;
}

struct penalty *penalty_free(struct penalty *p)
{
	if (p) {
		free(p->slots);
		free(p);
	}
	return NULL;
}

struct penalty_key penalty_key_ipv4(const uint8_t addr[4])
{
	struct penalty_key k = { .valid = true };

	k.b[0] = 4;
	memcpy(k.b + 1, addr, 4);
	return k;
}

struct penalty_key penalty_key_ipv6(const uint8_t addr[16])
{
	struct penalty_key k = { .valid = true };

	/* An IPv4-mapped address is that IPv4 host. */
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (memcmp(addr, mapped, sizeof(mapped)) == 0)
		return penalty_key_ipv4(addr + 12);
	k.b[0] = 6;
	memcpy(k.b + 1, addr, 8); /* the /64 */
	return k;
}

static struct slot *find(struct penalty *p, const struct penalty_key *k)
{
	for (unsigned i = 0; i < p->n; i++)
		if (memcmp(p->slots[i].key.b, k->b, sizeof(k->b)) == 0)
			return &p->slots[i];
	return NULL;
}

/* Drops entries forgotten by now; returns a free slot, or the one whose
 * penalty ends first when the table is full. */
static struct slot *take_slot(struct penalty *p, uint64_t now)
{
	struct slot *victim = NULL;

	for (unsigned i = 0; i < p->n;) {
		if (p->slots[i].until + PENALTY_FORGET_MS <= now)
			p->slots[i] = p->slots[--p->n];
		else
			i++;
	}
	if (p->n < PENALTY_SLOTS)
		return &p->slots[p->n++];
	for (unsigned i = 0; i < p->n; i++)
		if (!victim || p->slots[i].until < victim->until)
			victim = &p->slots[i];
	return victim;
}

uint64_t penalty_remaining(struct penalty *p, const struct penalty_key *k, uint64_t now)
{
	struct slot *s;

	if (!k->valid || !(s = find(p, k)))
		return 0;
	return s->until > now ? s->until - now : 0;
}

uint64_t penalty_add(struct penalty *p, const struct penalty_key *k, uint64_t now)
{
	struct slot *s;
	uint64_t ms;

	if (!k->valid)
		return 0;
	s = find(p, k);
	if (s && s->until + PENALTY_FORGET_MS <= now)
		s->fails = 0; /* lapsed: start over */
	if (!s) {
		s = take_slot(p, now);
		memset(s, 0, sizeof(*s));
		s->key = *k;
	}
	s->fails++;
	ms = (uint64_t)PENALTY_BASE_MS << MIN(s->fails - 1, 16u);
	if (ms > PENALTY_MAX_MS)
		ms = PENALTY_MAX_MS;
	s->until = now + ms;
	return ms;
}

unsigned penalty_count(const struct penalty *p) { return p->n; }
