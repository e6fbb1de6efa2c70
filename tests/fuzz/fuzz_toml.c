/* fuzz_toml.c - libFuzzer target for the TOML reader.
 *
 * Beyond "no crash, no leak" it checks the reader's promises: a failure
 * has a position and a reason; a success dumps as JSON, and every key and
 * element of the tree that a path can name has a position. Build with
 * -fsanitize=fuzzer, or link tests/fuzz/replay.c to replay a corpus.
 */
#include "toml.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void expect(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_toml: %s\n", what);
		abort();
	}
}

/* Asks for the position of every key below node. Keys holding a NUL cannot
 * be written as a path and are skipped (with what is below them). */
static void check_positions(const struct toml_doc *d, const json_t *node, const char *path)
{
	if (json_is_object(node)) {
		for (void *it = json_object_iter((json_t *)node); it;
		     it = json_object_iter_next((json_t *)node, it)) {
			const char *key = json_object_iter_key(it);
			char *sub;

			if (strlen(key) != json_object_iter_key_len(it))
				continue;
			sub = toml_path_join(path, key);
			expect(toml_doc_where(d, sub, NULL, NULL), "key without a position");
			check_positions(d, json_object_iter_value(it), sub);
			free(sub);
		}
	} else if (json_is_array(node)) {
		for (size_t i = 0; i < json_array_size(node); i++) {
			size_t n = strlen(path) + 24;
			char *sub = malloc(n);

			expect(sub != NULL, "out of memory");
			snprintf(sub, n, "%s[%zu]", path, i);
			expect(toml_doc_where(d, sub, NULL, NULL), "element without a position");
			check_positions(d, json_array_get(node, i), sub);
			free(sub);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct toml_doc *d = NULL;
	struct toml_error err;
	int r = toml_parse((const char *)data, size, &d, &err);

	if (r < 0) {
		expect(d == NULL, "doc set on failure");
		expect(r == -EINVAL || r == -E2BIG, "unexpected error code");
		expect(r == -E2BIG || (err.line >= 1 && err.col >= 1), "error without a position");
		expect(err.reason[0] != '\0', "error without a reason");
		return 0;
	}
	{
		char *s = json_dumps(toml_doc_root(d), JSON_COMPACT);

		expect(s != NULL, "tree does not dump");
		free(s);
	}
	check_positions(d, toml_doc_root(d), "");
	toml_doc_free(d);
	return 0;
}
