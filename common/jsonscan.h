/* jsonscan.h - vouching for JSON text without building it.
 *
 * The orchestrator relays an MCP server's tool result to the client that
 * asked; reading it into jansson values only to print them again was the
 * largest part of the orchestrator's CPU per call. jscan_object checks, in
 * one pass and without allocating, that a text is one JSON object that
 * jansson (JSON_REJECT_DUPLICATES) reads with the same members, and reports
 * the top-level members as spans of the text, so that a caller can copy
 * them into its own output as they were written.
 *
 * It vouches only for what it checks: the RFC 8259 grammar, UTF-8 as
 * jansson accepts it (no overlong forms, surrogates or code points past
 * U+10FFFF), no duplicate keys at any depth. Where a text goes beyond that
 * it declines, as it does for a text that is not valid: a key with an
 * escape in it, \u0000, an integer of more than 18 digits or a number
 * longer than 32 characters (jansson may refuse those as too large), an
 * exponent of more than two digits, nesting deeper than JSCAN_MAX_DEPTH,
 * an object with more than JSCAN_MAX_OBJECT_KEYS keys or more than
 * JSCAN_MAX_KEYS keys open at once, or a line break between tokens (the
 * spans go out on line-delimited transports). A caller that is declined
 * parses the text with jansson, whose verdict stands: every text accepted
 * here is one jansson accepts; not every text jansson accepts is accepted
 * here.
 *
 * Pure functions, no state; the duplicate check is bounded per key by
 * JSCAN_MAX_OBJECT_KEYS, so the scan is linear in the text.
 */
#ifndef TANDEM_JSONSCAN_H
#define TANDEM_JSONSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSCAN_MAX_DEPTH 64	   /* nesting of objects and arrays */
#define JSCAN_MAX_OBJECT_KEYS 32 /* keys in one object */
#define JSCAN_MAX_KEYS 256	   /* keys of all the objects open at once */

struct jscan_member {
	const char *key; /* the key's characters, without the quotes (no escapes) */
	size_t key_len;
	const char *val; /* the value's text as written, without surrounding space */
	size_t val_len;
};

/* buf[0..len): optional spaces or tabs, one object, optional spaces or
 * tabs. Returns the number of its members, the first max of them in out[]
 * in text order (out may be NULL with max 0), or -1 when it declines. */
int jscan_object(const char *buf, size_t len, struct jscan_member *out, size_t max);

/* jscan_object, listing in the same pass the members of the top-level
 * member named key when its value is an object: the first inner_max of
 * them in inner[], their number in *inner_n (-1 when there is no such
 * member or its value is no object). No text is read twice. */
int jscan_object_with(const char *buf, size_t len, struct jscan_member *out, size_t max,
		      const char *key, struct jscan_member *inner, size_t inner_max, int *inner_n);

/* The member named key (NUL-terminated) among m[0..n), or NULL. */
const struct jscan_member *jscan_find(const struct jscan_member *m, size_t n, const char *key);

/* Whether m's value is exactly the literal lit ("true", "null", "\"2.0\""). */
bool jscan_is(const struct jscan_member *m, const char *lit);

/* A value that is a non-negative integer written in plain digits (at most
 * 18 of them, so it fits jansson's integers): true with *out set. */
bool jscan_uint(const struct jscan_member *m, uint64_t *out);

#endif
