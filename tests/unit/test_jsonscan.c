/* test_jsonscan.c - vouching for JSON text (common/jsonscan.h): what it
 * accepts, jansson reads with the same members and values; what is invalid
 * or beyond its checks, it declines. */
#include "jsonscan.h"
#include "testmain.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static int scan(const char *s, struct jscan_member *m, size_t max)
{
	return jscan_object(s, strlen(s), m, max);
}

/* The text jansson reads the way the orchestrator's MCP session does. */
static json_t *jansson(const char *s, size_t n)
{
	return json_loadb(s, n, JSON_REJECT_DUPLICATES, NULL);
}

START_TEST(reports_members_as_written)
{
	const char *msg = " {\"jsonrpc\":\"2.0\", \"id\" : 17,\"result\":{\"content\":[{\"type\":"
			  "\"text\",\"text\":\"h\\u00e9 \\\"q\\\" \xC3\xA9\"}],\"isError\":false}}\t";
	struct jscan_member m[8];
	const struct jscan_member *res;
	uint64_t id = 0;

	ck_assert_int_eq(scan(msg, m, 8), 3);
	ck_assert(jscan_is(jscan_find(m, 3, "jsonrpc"), "\"2.0\""));
	ck_assert(jscan_uint(jscan_find(m, 3, "id"), &id));
	ck_assert_uint_eq(id, 17);
	res = jscan_find(m, 3, "result");
	ck_assert_ptr_nonnull(res);
	ck_assert_int_eq(res->val[0], '{');
	ck_assert_int_eq(res->val[res->val_len - 1], '}');
	ck_assert_ptr_null(jscan_find(m, 3, "method"));
	/* The result's own members, from its span. */
	ck_assert_int_eq(jscan_object(res->val, res->val_len, m, 8), 2);
	ck_assert(jscan_is(jscan_find(m, 2, "isError"), "false"));
	ck_assert_uint_eq(jscan_find(m, 2, "content")->val_len,
			  strlen("[{\"type\":\"text\",\"text\":\"h\\u00e9 \\\"q\\\" \xC3\xA9\"}]"));
	/* The same, in one pass over the message. */
	{
		struct jscan_member top[8], in[8];
		int nin = 0;

		ck_assert_int_eq(jscan_object_with(msg, strlen(msg), top, 8, "result", in, 8, &nin),
				 3);
		ck_assert_int_eq(nin, 2);
		ck_assert(jscan_is(jscan_find(in, 2, "isError"), "false"));
		ck_assert_int_eq(jscan_object_with(msg, strlen(msg), top, 8, "none", in, 8, &nin), 3);
		ck_assert_int_eq(nin, -1);
		ck_assert_int_eq(jscan_object_with(msg, strlen(msg), top, 8, "id", in, 8, &nin), 3);
		ck_assert_int_eq(nin, -1); /* not an object */
		/* A duplicate inside the listed member is still refused. */
		ck_assert_int_eq(scan("{\"result\":{\"a\":1,\"a\":2}}", NULL, 0), -1);
		ck_assert_int_eq(jscan_object_with("{\"result\":{\"a\":1,\"a\":2}}", 24, top, 8,
						   "result", in, 8, &nin),
				 -1);
	}
	/* More members than room: the count says so. */
	ck_assert_int_eq(scan("{\"a\":1,\"b\":2,\"c\":3}", m, 2), 3);
	ck_assert_int_eq(scan("{}", NULL, 0), 0);
	ck_assert_int_eq(scan("{\"a\":[],\"b\":{},\"c\":[1,-2.5e-3,true,false,null,\"\"]}", m, 8),
			 3);
}
END_TEST

START_TEST(declines_invalid_text)
{
	static const char *const bad[] = {
		"", "[]", "\"s\"", "1", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}",
		"{,\"a\":1}", "{\"a\":1 \"b\":2}", "{\"a\":[1,]}", "{\"a\":[,1]}", "{\"a\":01}",
		"{\"a\":-}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":1e}", "{\"a\":+1}", "{\"a\":tru}",
		"{\"a\":True}", "{\"a\":nul}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}",
		"{\"a\":\"\\u12G4\"}", "{\"a\":\"tab\there\"}", "{\"a\":\"open}", "{\"a\":1}x",
		"{\"a\":1}{}", "{'a':1}", "{a:1}", "{\"a\":1}\n{\"b\":2}", "{\"a\":[1}", "{\"a\":{]}",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *j = jansson(bad[i], strlen(bad[i]));

		ck_assert_msg(scan(bad[i], NULL, 0) == -1, "accepted: %s", bad[i]);
		/* They are invalid indeed, or not an object (a batch, a scalar). */
		ck_assert_msg(!json_is_object(j), "jansson reads an object: %s", bad[i]);
		json_decref(j);
	}
}
END_TEST

/* Invalid UTF-8, the way jansson judges it. */
START_TEST(declines_what_jansson_would_refuse_as_utf8)
{
	static const char *const bad[] = {
		"{\"a\":\"\x80\"}",		  /* a stray continuation byte */
		"{\"a\":\"\xC0\x80\"}",	  /* an overlong NUL */
		"{\"a\":\"\xE0\x80\xAF\"}",	  /* an overlong '/' */
		"{\"a\":\"\xED\xA0\x80\"}",	  /* a surrogate, encoded */
		"{\"a\":\"\xF4\x90\x80\x80\"}", /* past U+10FFFF */
		"{\"a\":\"\xE2\x82\"}",	  /* cut before its end */
		"{\"a\":\"\xFF\"}",
		"{\"a\":\"\\u0000\"}",	  /* jansson refuses NUL */
		"{\"a\":\"\\udc00\"}",	  /* a lone low surrogate */
		"{\"a\":\"\\ud800\"}",	  /* a high one without its pair */
		"{\"a\":\"\\ud800\\u0041\"}", /* followed by something else */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *j = jansson(bad[i], strlen(bad[i]));

		ck_assert_msg(scan(bad[i], NULL, 0) == -1, "accepted bad[%zu]", i);
		ck_assert_msg(j == NULL, "jansson accepts bad[%zu]", i);
	}
	ck_assert_int_eq(scan("{\"a\":\"\xF0\x9D\x84\x9E \xE2\x82\xAC \\ud834\\udd1e\"}", NULL, 0),
			 1);
}
END_TEST

START_TEST(refuses_duplicate_keys_at_any_depth)
{
	ck_assert_int_eq(scan("{\"a\":1,\"a\":2}", NULL, 0), -1);
	ck_assert_int_eq(scan("{\"x\":{\"b\":1,\"c\":0,\"b\":2}}", NULL, 0), -1);
	ck_assert_int_eq(scan("{\"x\":[{\"b\":1},{\"b\":1,\"b\":1}]}", NULL, 0), -1);
	/* The same key in different objects is no duplicate. */
	ck_assert_int_eq(scan("{\"b\":{\"b\":1},\"y\":{\"b\":2},\"z\":[{\"b\":3},{\"b\":4}]}", NULL,
			      0),
			 3);
}
END_TEST

/* {"a":[[...[1]...]]}: `levels` objects and arrays deep. */
static size_t make_deep(char *t, unsigned levels)
{
	size_t n = (size_t)sprintf(t, "{\"a\":");

	for (unsigned i = 1; i < levels; i++)
		t[n++] = '[';
	t[n++] = '1';
	for (unsigned i = 1; i < levels; i++)
		t[n++] = ']';
	t[n++] = '}';
	return n;
}

/* Valid JSON it does not vouch for: jansson decides those. */
START_TEST(declines_what_it_does_not_check)
{
	char deep[256], wide[1024] = "{";
	size_t n;
	json_t *j;
	static const char *const beyond[] = {
		"{\"k\\u0065y\":1}",		     /* an escape in a key */
		"{\"a\":1234567890123456789}",	     /* 19 digits */
		"{\"a\":1e100}",		     /* a three-digit exponent */
		"{\"a\":0.1234567890123456789012345678901}", /* 33 characters */
		"{\"a\":1,\n\"b\":2}",		     /* a line break between tokens */
		"{\"a\":1}\r\n",
	};

	for (size_t i = 0; i < sizeof(beyond) / sizeof(beyond[0]); i++) {
		j = jansson(beyond[i], strlen(beyond[i]));
		ck_assert_msg(scan(beyond[i], NULL, 0) == -1, "accepted: %s", beyond[i]);
		ck_assert_msg(json_is_object(j), "jansson refuses: %s", beyond[i]);
		json_decref(j);
	}
	/* Depth: 64 levels pass, 65 do not (jansson reads both). */
	n = make_deep(deep, JSCAN_MAX_DEPTH);
	ck_assert_int_eq(jscan_object(deep, n, NULL, 0), 1);
	n = make_deep(deep, JSCAN_MAX_DEPTH + 1);
	ck_assert_int_eq(jscan_object(deep, n, NULL, 0), -1);
	j = jansson(deep, n);
	ck_assert(json_is_object(j));
	json_decref(j);
	/* Keys in one object: 32 pass, 33 do not. */
	for (unsigned i = 0; i < JSCAN_MAX_OBJECT_KEYS; i++)
		snprintf(wide + strlen(wide), sizeof(wide) - strlen(wide), "%s\"k%u\":%u",
			 i ? "," : "", i, i);
	strcat(wide, "}");
	ck_assert_int_eq(scan(wide, NULL, 0), JSCAN_MAX_OBJECT_KEYS);
	strcpy(wide + strlen(wide) - 1, ",\"one more\":0}");
	ck_assert_int_eq(scan(wide, NULL, 0), -1);
}
END_TEST

START_TEST(reads_plain_ids_only)
{
	struct jscan_member m[2];
	uint64_t v = 99;

	ck_assert_int_eq(scan("{\"a\":123456789012345678,\"b\":-1}", m, 2), 2);
	ck_assert(jscan_uint(&m[0], &v));
	ck_assert_uint_eq(v, 123456789012345678ull);
	ck_assert(!jscan_uint(&m[1], &v));
	ck_assert_int_eq(scan("{\"a\":1.0,\"b\":\"7\"}", m, 2), 2);
	ck_assert(!jscan_uint(&m[0], &v));
	ck_assert(!jscan_uint(&m[1], &v));
	ck_assert(!jscan_is(NULL, "null"));
}
END_TEST

/* ---- the property: whatever it accepts, jansson reads the same ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Checks one text: an acceptance must agree with jansson member by
 * member. Returns whether it was accepted. */
static bool agrees(const char *t, size_t n)
{
	struct jscan_member m[JSCAN_MAX_OBJECT_KEYS];
	int count = jscan_object(t, n, m, JSCAN_MAX_OBJECT_KEYS);
	json_t *j;

	if (count < 0)
		return false;
	j = jansson(t, n);
	ck_assert_msg(json_is_object(j), "accepted what jansson refuses: %.*s", (int)n, t);
	ck_assert_int_eq((int)json_object_size(j), count);
	for (int i = 0; i < count; i++) {
		char key[256];
		json_t *v = json_loadb(m[i].val, m[i].val_len, JSON_DECODE_ANY, NULL);

		ck_assert_uint_lt(m[i].key_len, sizeof(key));
		memcpy(key, m[i].key, m[i].key_len);
		key[m[i].key_len] = '\0';
		ck_assert_msg(json_equal(v, json_object_get(j, key)), "member %s differs in %.*s",
			      key, (int)n, t);
		json_decref(v);
	}
	json_decref(j);
	return true;
}

START_TEST(agrees_with_jansson_on_mutated_texts)
{
	static const char *const seeds[] = {
		"{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"content\":[{\"type\":\"text\","
		"\"text\":\"caf\xC3\xA9 \\n \\\"x\\\"\"}],\"isError\":false,\"_meta\":{}}}",
		"{\"a\":[1,2.5,-0,1e-5,true,false,null,{\"b\":{\"c\":[]}}],\"d\":\"\\ud83d\\ude00\"}",
		"{\"x\":{\"x\":{\"x\":1}},\"y\":[[\"\xF0\x9F\x98\x80\"],{}],\"z\":\"\\u00e9\\/\"}",
	};
	static const char pieces[] = "{}[]\",:\\ 0123456789.eE+-tfnu\x80\xC3\xE2\xF0";
	unsigned accepted = 0, tried = 0;

	for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++)
		ck_assert(agrees(seeds[s], strlen(seeds[s])));
	for (unsigned round = 0; round < 60000; round++) {
		const char *seed = seeds[rnd() % (sizeof(seeds) / sizeof(seeds[0]))];
		char t[512];
		size_t n = strlen(seed);
		unsigned edits = 1 + (unsigned)(rnd() % 3);

		memcpy(t, seed, n);
		for (unsigned e = 0; e < edits && n > 1; e++) {
			size_t at = (size_t)(rnd() % n);
			char c = pieces[rnd() % (sizeof(pieces) - 1)];

			switch (rnd() % 3) {
			case 0: t[at] = c; break;				 /* replace */
			case 1: memmove(t + at, t + at + 1, n - at - 1); n--; break; /* delete */
			default:						 /* insert */
				if (n + 1 < sizeof(t)) {
					memmove(t + at + 1, t + at, n - at);
					t[at] = c;
					n++;
				}
			}
		}
		tried++;
		accepted += agrees(t, n);
	}
	/* The property held for every acceptance; some must have happened for
	 * it to mean anything, and most mutations must have been declined. */
	ck_assert_uint_gt(accepted, 100);
	ck_assert_uint_lt(accepted, tried / 2);
}
END_TEST

static Suite *jsonscan_suite(void)
{
	Suite *s = suite_create("jsonscan");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, reports_members_as_written);
	tcase_add_test(tc, declines_invalid_text);
	tcase_add_test(tc, declines_what_jansson_would_refuse_as_utf8);
	tcase_add_test(tc, refuses_duplicate_keys_at_any_depth);
	tcase_add_test(tc, declines_what_it_does_not_check);
	tcase_add_test(tc, reads_plain_ids_only);
	tcase_add_test(tc, agrees_with_jansson_on_mutated_texts);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(jsonscan_suite)
