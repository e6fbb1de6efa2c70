/* test_npm_peer.c - a real MCP server from the npm registry
 * (@modelcontextprotocol/server-everything, stdio mode) started through a
 * real tandem-executor answers initialize and tools/list over the link.
 *
 * deploy/local/test installs the package into a cache directory and passes
 * it as $TANDEM_NPM_PEERS; when that install failed (no registry), this
 * test reports a TAP skip with the reason instead of passing silently. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tclient.h"
#include "util.h"

#define ENTRY "/node_modules/@modelcontextprotocol/server-everything/dist/index.js"

static char entry[4096];

START_TEST(test_everything_initialize_and_list)
{
	const char *argv[] = { "node", entry, "stdio", NULL };
	struct texec ex;
	struct tclient cl;
	json_t *j, *tools = NULL;
	uint64_t h;
	char *line;

	texec_start(&ex, NULL, NULL);
	tc_connect(&cl, ex.url, ex.secret);
	h = tc_mcp_start(&cl, "everything", argv, NULL, NULL, NULL, NULL);
	tc_mcp_send(&cl, h,
		    "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
		    "\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{"
		    "\"name\":\"tandem-test\",\"version\":\"1\"}}}");
	/* It sends notifications between responses: skip to id 0. */
	for (;;) {
		line = tc_mcp_recv(&cl, h, 30000);
		ck_assert_msg(line != NULL, "no initialize answer from server-everything");
		j = json_loads(line, 0, NULL);
		free(line);
		if (j && json_is_integer(json_object_get(j, "id")))
			break;
		json_decref(j);
	}
	ck_assert_int_eq(json_integer_value(json_object_get(j, "id")), 0);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "result"),
							   "protocolVersion")),
			 "2025-06-18");
	json_decref(j);
	tc_mcp_send(&cl, h, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
	tc_mcp_send(&cl, h, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}");
	for (;;) {
		line = tc_mcp_recv(&cl, h, 30000);
		ck_assert_msg(line != NULL, "no tools/list answer");
		j = json_loads(line, 0, NULL);
		free(line);
		if (j && json_integer_value(json_object_get(j, "id")) == 1)
			break;
		json_decref(j);
	}
	tools = json_object_get(json_object_get(j, "result"), "tools");
	ck_assert_uint_ge(json_array_size(tools), 3);
	{
		bool echo = false;
		json_t *t;
		size_t i;

		json_array_foreach(tools, i, t)
			echo |= strcmp(json_string_value(json_object_get(t, "name")), "echo") == 0;
		ck_assert_msg(echo, "server-everything lists no echo tool");
	}
	json_decref(j);
	tc_close(&cl);
	texec_stop(&ex);
}
END_TEST

int main(void)
{
	const char *dir = getenv("TANDEM_NPM_PEERS");
	SRunner *sr;
	Suite *s;
	TCase *tc;

	snprintf(entry, sizeof(entry), "%s" ENTRY, dir ? dir : "");
	if (!dir || access(entry, R_OK) != 0) {
		/* Loud: meson shows it as SKIP, and so does the log. */
		printf("1..0 # SKIP npm peer not installed (%s): the npm registry was unreachable "
		       "when deploy/local/test ran\n",
		       dir ? entry : "TANDEM_NPM_PEERS unset");
		fprintf(stderr, "SKIP: @modelcontextprotocol/server-everything is not installed\n");
		return 0;
	}
	s = suite_create("npm_peer");
	tc = tcase_create("everything");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_everything_initialize_and_list);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	srunner_free(sr);
	return 0;
}
