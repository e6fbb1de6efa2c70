/* fuzz_jsonscan.c - libFuzzer target for jscan_object (common/jsonscan.h),
 * which vouches for an MCP server's text that the orchestrator then relays
 * without parsing it.
 *
 * The property is differential: whatever the scan accepts, jansson (as the
 * MCP session calls it) reads as an object with the same number of
 * members, each equal to what jansson reads from the member's span alone;
 * and no span contains a line break (the client transport is
 * line-delimited). A decline proves nothing and is fine. jscan_object_with
 * judges the text the same and lists "result"'s members as its span would.
 */
#include "jsonscan.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void expect(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_jsonscan: %s\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jscan_member m[JSCAN_MAX_OBJECT_KEYS];
	const char *t = (const char *)data;
	int n = jscan_object(t, size, m, JSCAN_MAX_OBJECT_KEYS);
	struct jscan_member top[JSCAN_MAX_OBJECT_KEYS], in[JSCAN_MAX_OBJECT_KEYS];
	int inner_n;
	json_t *j;

	/* The one-pass listing of "result" agrees with scanning its span. */
	expect(jscan_object_with(t, size, top, JSCAN_MAX_OBJECT_KEYS, "result", in,
				 JSCAN_MAX_OBJECT_KEYS, &inner_n) == n,
	       "jscan_object_with judged the text otherwise");
	if (n >= 0 && inner_n >= 0) {
		const struct jscan_member *r = jscan_find(top, (size_t)n, "result");

		expect(r && jscan_object(r->val, r->val_len, NULL, 0) == inner_n,
		       "the listed member count differs from its span's");
	}
	if (n < 0)
		return 0;
	expect(memchr(t, '\n', size) == NULL && memchr(t, '\r', size) == NULL,
	       "accepted a line break");
	j = json_loadb(t, size, JSON_REJECT_DUPLICATES, NULL);
	expect(json_is_object(j), "accepted what jansson refuses");
	expect((size_t)n == json_object_size(j), "member count differs");
	for (int i = 0; i < n && i < JSCAN_MAX_OBJECT_KEYS; i++) {
		char *key = strndup(m[i].key, m[i].key_len);
		json_t *v = json_loadb(m[i].val, m[i].val_len, JSON_DECODE_ANY, NULL);

		expect(key && json_equal(v, json_object_get(j, key)), "a member's value differs");
		json_decref(v);
		free(key);
	}
	json_decref(j);
	return 0;
}
