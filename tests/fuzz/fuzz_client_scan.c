/* fuzz_client_scan.c - libFuzzer target for the client transport's JSON
 * pre-scan (orchestrator/client_parse.c: client_prescan), the bound that
 * runs before jansson so that a message never becomes many times its size
 * in memory.
 *
 * Beyond "no crash, no overread": the scan never undercounts. Whenever it
 * accepts an input that jansson parses, the parsed tree has at most
 * CLIENT_MAX_NODES values and at most CLIENT_MAX_DEPTH levels of nesting;
 * and the answer is 0, -E2BIG or -ELOOP, the same twice.
 */
#include "client_int.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static void expect(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_client_scan: %s\n", what);
		abort();
	}
}

/* Values in v (itself included); *depth gets its nesting of containers. */
static size_t count(json_t *v, size_t level, size_t *depth)
{
	size_t n = 1;

	if (json_is_object(v) || json_is_array(v)) {
		const char *k;
		json_t *e;
		size_t i;

		if (level + 1 > *depth)
			*depth = level + 1;
		if (json_is_object(v)) {
			json_object_foreach(v, k, e)
				n += count(e, level + 1, depth);
		} else {
			json_array_foreach(v, i, e)
				n += count(e, level + 1, depth);
		}
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	int r = client_prescan(p, size);
	json_t *v;
	size_t depth = 0, nodes;

	expect(r == 0 || r == -E2BIG || r == -ELOOP, "unexpected result");
	expect(client_prescan(p, size) == r, "not deterministic");
	if (r < 0)
		return 0;
	v = json_loadb(p, size, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
	if (!v)
		return 0;
	nodes = count(v, 0, &depth);
	expect(nodes <= CLIENT_MAX_NODES, "accepted more values than the bound");
	expect(depth <= CLIENT_MAX_DEPTH, "accepted deeper nesting than the bound");
	json_decref(v);
	return 0;
}
