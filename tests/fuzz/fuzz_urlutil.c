/* fuzz_urlutil.c - libFuzzer target for the parsers of urlutil.c that read
 * what a peer sends: url_www_auth_param (a WWW-Authenticate header from an
 * MCP server) and url_query_get (the OAuth callback's query).
 *
 * The input is one header or query (up to its first NUL). Beyond "no crash,
 * no leak": a value found is a C string without control characters other
 * than tab (quoted-string rules), and a query value holds no NUL; the same
 * input gives the same answer twice (no hidden state).
 */
#include "urlutil.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void expect(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_urlutil: %s\n", what);
		abort();
	}
}

static void same(const char *a, const char *b, const char *what)
{
	expect((a == NULL) == (b == NULL) && (!a || strcmp(a, b) == 0), what);
}

static void www_auth(const char *h)
{
	static const char *const params[] = { "resource_metadata", "error", "scope", "realm",
					      "RESOURCE_METADATA", "" };

	for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
		char *v = url_www_auth_param(h, params[i]), *again = url_www_auth_param(h, params[i]);

		same(v, again, "www-authenticate answer not stable");
		for (const char *p = v; p && *p; p++)
			expect((unsigned char)*p >= 0x20 || *p == '\t', "control character in value");
		free(v);
		free(again);
	}
}

static void query(const char *q)
{
	static const char *const names[] = { "code", "state", "a", "a b", "" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char *v = url_query_get(q, names[i]), *again = url_query_get(q, names[i]);

		same(v, again, "query answer not stable");
		expect(!v || strlen(v) <= strlen(q), "decoded value longer than the query");
		free(v);
		free(again);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	expect(s != NULL, "out of memory");
	if (size)
		memcpy(s, data, size);
	s[size] = '\0';
	www_auth(s);
	query(s);
	free(s);
	return 0;
}
