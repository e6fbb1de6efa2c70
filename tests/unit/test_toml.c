/* test_toml.c - the TOML reader: every construct of the subset, the
 * "defined once" rules, error positions and reasons, key positions, and
 * realistic config.toml / environments.toml documents. */
#include "testmain.h"
#include "toml.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct toml_doc *parse_ok(const char *text)
{
	struct toml_doc *d = NULL;
	struct toml_error err = {0};
	int r = toml_parse(text, strlen(text), &d, &err);

	ck_assert_msg(r == 0, "parse failed (%d) at %d:%d: %s", r, err.line, err.col, err.reason);
	ck_assert_ptr_nonnull(d);
	return d;
}

/* Parses toml and compares the tree, dumped compactly in insertion order. */
static void assert_tree(const char *toml, const char *json)
{
	struct toml_doc *d = parse_ok(toml);
	char *s = json_dumps(toml_doc_root(d), JSON_COMPACT);

	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, json);
	free(s);
	toml_doc_free(d);
}

static void assert_where(const struct toml_doc *d, const char *path, int line, int col)
{
	int l = -1, c = -1;

	ck_assert_msg(toml_doc_where(d, path, &l, &c), "no position for %s", path);
	ck_assert_msg(l == line && c == col, "%s at %d:%d, expected %d:%d", path, l, c, line, col);
}

static void assert_fails(const char *text, size_t len, int line, int col, const char *reason)
{
	struct toml_doc *d = (struct toml_doc *)0x1; /* must stay untouched */
	struct toml_error err = {0};
	int r = toml_parse(text, len, &d, &err);

	ck_assert_msg(r == -EINVAL, "%s: returned %d, expected -EINVAL", text, r);
	ck_assert_ptr_eq(d, (struct toml_doc *)0x1);
	ck_assert_msg(err.line == line && err.col == col, "%s: error at %d:%d (%s), expected %d:%d",
		      text, err.line, err.col, err.reason, line, col);
	ck_assert_msg(strstr(err.reason, reason), "%s: reason \"%s\" lacks \"%s\"", text,
		      err.reason, reason);
}

START_TEST(test_empty_and_comments)
{
	assert_tree("", "{}");
	assert_tree("\n\n  # only a comment\n\t\n", "{}");
	assert_tree("\xEF\xBB\xBF" "a = 1 # bom skipped", "{\"a\":1}");
	assert_tree("a = 1 # trailing\n# b = 2\nc = \"# not a comment\" #c",
		    "{\"a\":1,\"c\":\"# not a comment\"}");
	assert_tree("a = 1\r\nb = 2\r\n", "{\"a\":1,\"b\":2}");
	assert_tree("# comment with unicode: ñ 日本 \xF0\x9F\x98\x80\na=true", "{\"a\":true}");
}
END_TEST

START_TEST(test_keys)
{
	assert_tree("bare_key-1 = 1\n1234 = 2\n\"quoted key\" = 3\n'lit\\eral' = 4\n\"\" = 5",
		    "{\"bare_key-1\":1,\"1234\":2,\"quoted key\":3,\"lit\\\\eral\":4,\"\":5}");
	assert_tree("a.b.c = 1\na . \"b\" . d = 2\na.'x.y' = 3\n3.14 = 4",
		    "{\"a\":{\"b\":{\"c\":1,\"d\":2},\"x.y\":3},\"3\":{\"14\":4}}");
	/* Out-of-order dotted keys are valid, only discouraged. */
	assert_tree("apple.type = 1\norange.type = 2\napple.skin = 3",
		    "{\"apple\":{\"type\":1,\"skin\":3},\"orange\":{\"type\":2}}");
	assert_tree("\"\\u00e9t\\u00E9\" = 1\n\"tab\\there\" = 2",
		    "{\"\xC3\xA9t\xC3\xA9\":1,\"tab\\there\":2}");
}
END_TEST

START_TEST(test_key_with_nul)
{
	struct toml_doc *d = parse_ok("\"a\\u0000b\" = 1");
	json_t *root = toml_doc_root(d);
	const char *k = json_object_iter_key(json_object_iter(root));

	ck_assert_uint_eq(json_object_size(root), 1);
	ck_assert_uint_eq(json_object_iter_key_len(json_object_iter(root)), 3);
	ck_assert_mem_eq(k, "a\0b", 3);
	assert_where(d, "\"a\\u0000b\"", 1, 1);
	ck_assert(!toml_doc_where(d, "a", NULL, NULL));
	toml_doc_free(d);
}
END_TEST

START_TEST(test_tables)
{
	assert_tree("top = 0\n[table]\nkey = 1\n[a.b.\"c d\"]\ne = 2\n[ x . 'y z' ]\nf = 3",
		    "{\"top\":0,\"table\":{\"key\":1},\"a\":{\"b\":{\"c d\":{\"e\":2}}},"
		    "\"x\":{\"y z\":{\"f\":3}}}");
	/* A super-table may be defined after its sub-tables, once. */
	assert_tree("[x.y.z.w]\na = 1\n[x]\nb = 2",
		    "{\"x\":{\"y\":{\"z\":{\"w\":{\"a\":1}}},\"b\":2}}");
	/* [table] may define sub-tables inside tables made by dotted keys. */
	assert_tree("[fruit]\napple.color = \"red\"\napple.taste.sweet = true\n"
		    "[fruit.apple.texture]\nsmooth = true",
		    "{\"fruit\":{\"apple\":{\"color\":\"red\",\"taste\":{\"sweet\":true},"
		    "\"texture\":{\"smooth\":true}}}}");
	assert_tree("[empty]\n[\"\"]\n", "{\"empty\":{},\"\":{}}");
}
END_TEST

START_TEST(test_array_of_tables)
{
	assert_tree("[[products]]\nname = \"Hammer\"\n[[products]]\n[[products]]\nname = \"Nail\"",
		    "{\"products\":[{\"name\":\"Hammer\"},{},{\"name\":\"Nail\"}]}");
	assert_tree("[[fruits]]\nname = \"apple\"\n[fruits.physical]\ncolor = \"red\"\n"
		    "[[fruits.varieties]]\nname = \"red delicious\"\n[[fruits.varieties]]\n"
		    "name = \"granny smith\"\n[[fruits]]\nname = \"banana\"\n[[fruits.varieties]]\n"
		    "name = \"plantain\"",
		    "{\"fruits\":[{\"name\":\"apple\",\"physical\":{\"color\":\"red\"},"
		    "\"varieties\":[{\"name\":\"red delicious\"},{\"name\":\"granny smith\"}]},"
		    "{\"name\":\"banana\",\"varieties\":[{\"name\":\"plantain\"}]}]}");
	/* Each element is a fresh table: the same dotted keys again are fine. */
	assert_tree("[[t]]\na.b = 1\n[[t]]\na.b = 2",
		    "{\"t\":[{\"a\":{\"b\":1}},{\"a\":{\"b\":2}}]}");
}
END_TEST

START_TEST(test_basic_strings)
{
	struct toml_doc *d = parse_ok("s = \"b\\b t\\t n\\n f\\f r\\r q\\\" bs\\\\ e\\u00E9 "
				      "g\\U0001F600 z\\u0000.\"\nplain = \"tab\there, 'single'\"");
	json_t *s = json_object_get(toml_doc_root(d), "s");
	static const char want[] = "b\b t\t n\n f\f r\r q\" bs\\ e\xC3\xA9 g\xF0\x9F\x98\x80 z\0.";

	ck_assert(json_is_string(s));
	ck_assert_uint_eq(json_string_length(s), sizeof(want) - 1);
	ck_assert_mem_eq(json_string_value(s), want, sizeof(want) - 1);
	ck_assert_str_eq(json_string_value(json_object_get(toml_doc_root(d), "plain")),
			 "tab\there, 'single'");
	toml_doc_free(d);
	assert_tree("a = \"\\uD7FF\\uE000\\U0010FFFF\"",
		    "{\"a\":\"\xED\x9F\xBF\xEE\x80\x80\xF4\x8F\xBF\xBF\"}");
}
END_TEST

START_TEST(test_literal_strings)
{
	assert_tree("path = 'C:\\Users\\nodejs\\templates'\nq = 'Tom \"Dubs\" Preston'\ne = ''",
		    "{\"path\":\"C:\\\\Users\\\\nodejs\\\\templates\",\"q\":\"Tom \\\"Dubs\\\" "
		    "Preston\",\"e\":\"\"}");
}
END_TEST

START_TEST(test_multiline_basic)
{
	/* The newline right after the opening quotes is trimmed. */
	assert_tree("s = \"\"\"\nRoses are red\nViolets are blue\"\"\"",
		    "{\"s\":\"Roses are red\\nViolets are blue\"}");
	assert_tree("s = \"\"\"\r\none\r\ntwo\"\"\"", "{\"s\":\"one\\r\\ntwo\"}");
	/* A line-ending backslash eats the newline and following whitespace. */
	assert_tree("s = \"\"\"\nThe quick brown \\\n\n\n  fox jumps \\   \n    over.\\\n  \"\"\"",
		    "{\"s\":\"The quick brown fox jumps over.\"}");
	/* One or two quotes may sit inside and right before the closing ones. */
	assert_tree("s = \"\"\"Here are two quotation marks: \"\". Simple enough.\"\"\"",
		    "{\"s\":\"Here are two quotation marks: \\\"\\\". Simple enough.\"}");
	assert_tree("s = \"\"\"\"This,\" she said, \"is just a pointless statement.\"\"\"\"",
		    "{\"s\":\"\\\"This,\\\" she said, \\\"is just a pointless statement.\\\"\"}");
	assert_tree("s = \"\"\"\"\"\"\"\"", "{\"s\":\"\\\"\\\"\"}");
	assert_tree("s = \"\"\"esc \\t \\u0041 \\\"\"\"\"", "{\"s\":\"esc \\t A \\\"\"}");
	assert_tree("s = \"\"\"\"\"\"", "{\"s\":\"\"}");
}
END_TEST

START_TEST(test_multiline_literal)
{
	assert_tree("re = '''I [dw]on't need \\d{2} apples'''",
		    "{\"re\":\"I [dw]on't need \\\\d{2} apples\"}");
	assert_tree("lines = '''\nThe first newline is\ntrimmed in raw strings.\n   All other "
		    "whitespace\n   is preserved.\n'''",
		    "{\"lines\":\"The first newline is\\ntrimmed in raw strings.\\n   All other "
		    "whitespace\\n   is preserved.\\n\"}");
	assert_tree("q = ''''That,' she said, 'is still pointless.''''",
		    "{\"q\":\"'That,' she said, 'is still pointless.'\"}");
	assert_tree("bs = '''a\\\nb'''", "{\"bs\":\"a\\\\\\nb\"}");
}
END_TEST

START_TEST(test_integers)
{
	assert_tree("a = +99\nb = 42\nc = 0\nd = -17\ne = +0\nf = -0\ng = 1_000\nh = 5_349_221\n"
		    "i = 0xDEADBEEF\nj = 0xdead_beef\nk = 0o01234567\nl = 0o755\nm = 0b11010110\n"
		    "n = 0x00\n",
		    "{\"a\":99,\"b\":42,\"c\":0,\"d\":-17,\"e\":0,\"f\":0,\"g\":1000,\"h\":5349221,"
		    "\"i\":3735928559,\"j\":3735928559,\"k\":342391,\"l\":493,\"m\":214,\"n\":0}");
	assert_tree("max = 9_223_372_036_854_775_807\nmin = -9223372036854775808\n"
		    "hex = 0x7FFFFFFFFFFFFFFF\nbin = 0b0111",
		    "{\"max\":9223372036854775807,\"min\":-9223372036854775808,"
		    "\"hex\":9223372036854775807,\"bin\":7}");
}
END_TEST

START_TEST(test_floats)
{
	static const struct {
		const char *text;
		double want;
	} cases[] = {
		{"+1.0", 1.0},     {"3.1415", 3.1415}, {"-0.01", -0.01},  {"5e+22", 5e22},
		{"1e06", 1e6},     {"-2E-2", -2e-2},   {"6.626e-34", 6.626e-34},
		{"224_617.445_991_228", 224617.445991228}, {"0e0", 0.0},  {"0.0", 0.0},
		{"1e-400", 0.0},   {"1_0.5e1_0", 10.5e10},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[64];
		struct toml_doc *d;
		json_t *v;

		snprintf(text, sizeof(text), "f = %s", cases[i].text);
		d = parse_ok(text);
		v = json_object_get(toml_doc_root(d), "f");
		ck_assert_msg(json_is_real(v), "%s is not a real", cases[i].text);
		ck_assert_msg(json_real_value(v) == cases[i].want, "%s gave %g", cases[i].text,
			      json_real_value(v));
		toml_doc_free(d);
	}
	{
		struct toml_doc *d = parse_ok("z = -0.0");
		double z = json_real_value(json_object_get(toml_doc_root(d), "z"));

		ck_assert(z == 0.0 && signbit(z));
		toml_doc_free(d);
	}
}
END_TEST

START_TEST(test_booleans)
{
	assert_tree("t = true\nf = false\na = [true,false]",
		    "{\"t\":true,\"f\":false,\"a\":[true,false]}");
}
END_TEST

START_TEST(test_arrays)
{
	assert_tree("a = []\nb = [ 1, 2, 3 ]\nc = [\"x\", 'y', \"\"\"z\"\"\"]\n"
		    "d = [ [ 1, 2 ], [\"a\", 2.5], [] ]\ne = [1, \"mixed\", true, {k = 1}, [0]]",
		    "{\"a\":[],\"b\":[1,2,3],\"c\":[\"x\",\"y\",\"z\"],"
		    "\"d\":[[1,2],[\"a\",2.5],[]],"
		    "\"e\":[1,\"mixed\",true,{\"k\":1},[0]]}");
	assert_tree("a = [\n  1, # one\n  2 # two\n  , 3,\n  # trailing comment\n]\n"
		    "b = [ # c\n]\nc = [\r\n\"x\",\r\n]",
		    "{\"a\":[1,2,3],\"b\":[],\"c\":[\"x\"]}");
}
END_TEST

START_TEST(test_inline_tables)
{
	assert_tree("name = { first = \"Tom\", last = \"Preston-Werner\" }\npoint = {x=1,y=2}\n"
		    "animal = { type.name = \"pug\", type.age = 3 }\nempty = {}\n"
		    "nested = { a = { b = [ {c = 1} ] }, 'd e' = \"f\" }",
		    "{\"name\":{\"first\":\"Tom\",\"last\":\"Preston-Werner\"},\"point\":{\"x\":1,"
		    "\"y\":2},\"animal\":{\"type\":{\"name\":\"pug\",\"age\":3}},\"empty\":{},"
		    "\"nested\":{\"a\":{\"b\":[{\"c\":1}]},\"d e\":\"f\"}}");
	/* Inline tables may hold multi-line values inside arrays. */
	assert_tree("t = { a = [\n1,\n2] }", "{\"t\":{\"a\":[1,2]}}");
}
END_TEST

struct bad {
	const char *text;
	int line, col;
	const char *reason;
};

static const struct bad bad_docs[] = {
	{"a = 1\na = 2", 2, 1, "duplicate key 'a' (first defined at line 1, column 1)"},
	{"a.b = 1\na.b = 2", 2, 3, "duplicate key 'a.b'"},
	{"[t]\nx = 1\n  x = 2", 3, 3, "duplicate key 't.x'"},
	{"a.b = 1\na = 2", 2, 1, "duplicate key 'a'"},
	{"a = {b = 1, b = 2}", 1, 13, "duplicate key 'a.b'"},
	{"s = \"\\q\"", 1, 6, "invalid escape sequence \\q"},
	{"s = \"\\x41\"", 1, 6, "invalid escape sequence \\x"},
	{"s = \"\"\"a\\ b\"\"\"", 1, 9, "invalid escape sequence"},
	{"s = \"\\u12\"", 1, 6, "\\u escape needs 4 hex digits"},
	{"s = \"\\UABCDEFG0\"", 1, 6, "\\U escape needs 8 hex digits"},
	{"s = \"\\uD800\"", 1, 6, "\\uD800 is not a Unicode scalar value"},
	{"s = \"\\uDFFF\"", 1, 6, "not a Unicode scalar value"},
	{"s = \"\\U00110000\"", 1, 6, "\\U00110000 is not a Unicode scalar value"},
	{"s = \"abc", 1, 5, "unterminated string"},
	{"s = \"abc\nd\"", 1, 5, "unterminated string"},
	{"s = 'abc", 1, 5, "unterminated string"},
	{"x = 1\ns = \"\"\"abc\n\n", 2, 5, "unterminated multi-line string"},
	{"s = '''abc''", 1, 5, "unterminated multi-line string"},
	{"s = \"\"\"a\"\"\"\"\"\"", 1, 14, "too many quotes"},
	{"n = 01", 1, 5, "leading zeros are not allowed"},
	{"n = -0_1", 1, 5, "leading zeros are not allowed"},
	{"n = 9223372036854775808", 1, 5, "integer out of range"},
	{"n = -9223372036854775809", 1, 5, "integer out of range"},
	{"n = 0x8000000000000000", 1, 5, "integer out of range"},
	{"n = 1__0", 1, 5, "invalid number"},
	{"n = 1_", 1, 5, "invalid number"},
	{"n = _1", 1, 5, "invalid value"},
	{"n = 0xG1", 1, 5, "invalid digit in base-16 integer"},
	{"n = 0o8", 1, 5, "invalid digit in base-8 integer"},
	{"n = 0b102", 1, 5, "invalid digit in base-2 integer"},
	{"n = 0X1", 1, 5, "invalid number"},
	{"n = -0x1", 1, 5, "a sign is not allowed"},
	{"n = 1.", 1, 5, "a decimal point must be followed by digits"},
	{"n = .5", 1, 5, "invalid value"},
	{"n = 1e", 1, 5, "an exponent must be followed by digits"},
	{"n = 1.5.2", 1, 5, "invalid number"},
	{"n = 1e999", 1, 5, "float out of range"},
	{"n = inf", 1, 5, "inf and nan are not supported"},
	{"n = -nan", 1, 5, "inf and nan are not supported"},
	{"n = 1 2", 1, 7, "expected end of line"},
	{"d = 1979-05-27T07:32:00Z", 1, 5, "date-time values are not supported"},
	{"d = 1979-05-27", 1, 5, "date-time values are not supported"},
	{"d = [ 07:32:00 ]", 1, 7, "date-time values are not supported"},
	{"b = True", 1, 5, "invalid value"},
	{"b = truely", 1, 5, "invalid value"},
	{"[a]\nx = 1\n[a]", 3, 2, "'a' is already defined at line 1, column 2"},
	{"[a.b]\n[a]\n[a]", 3, 2, "'a' is already defined at line 2, column 2"},
	{"[a]\nb = 1\n[a.b]", 3, 4, "'a.b' is already defined at line 2, column 1"},
	{"[fruit]\napple.color = 1\n[fruit.apple]", 3, 8, "'fruit.apple' is already defined"},
	{"[[a]]\n[a]", 2, 2, "'a' is already defined"},
	{"a = 1\n[a.b]", 2, 2, "key 'a' is a value, not a table"},
	{"a = {b = 1}\na.c = 2", 2, 1,
	 "cannot extend inline table 'a' (defined at line 1, column 1)"},
	{"a = {b = 1}\n[a.c]", 2, 2, "cannot extend inline table 'a'"},
	{"a = {b = {c = 1}, b.d = 2}", 1, 19, "cannot extend inline table 'a.b'"},
	{"a = {b = 1}\n[a]", 2, 2, "'a' is already defined"},
	{"a = [1]\n[[a]]", 2, 3, "cannot define array of tables 'a': already defined at line 1"},
	{"[a]\n[[a]]", 2, 3, "cannot define array of tables 'a'"},
	{"a = [{b = 1}]\n[a.c]", 2, 2, "cannot extend static array 'a'"},
	{"[a.b.c]\n[a]\nb.c.d = 1", 3, 1, "cannot add to table 'a.b' with dotted keys"},
	{"[a.b]\nx = 1\n[a]\nb.y = 2", 4, 1, "cannot add to table 'a.b' with dotted keys"},
	{"[[a.b]]\n[a]\nb.c = 1", 3, 1, "cannot add to array of tables 'a.b'"},
	{"a = \"\xC3\x28\"", 1, 6, "invalid UTF-8"},
	{"a = \"\xC0\xAF\"", 1, 6, "invalid UTF-8"},                      /* overlong */
	{"a = \"\xED\xA0\x80\"", 1, 6, "invalid UTF-8"},                  /* surrogate */
	{"a = \"\xF4\x90\x80\x80\"", 1, 6, "invalid UTF-8"},              /* > U+10FFFF */
	/* Columns count characters, not bytes. */
	{"# \xC3\xA9\xE6\x97\xA5\nk = \"\xC3\xA9\xFF\"", 2, 7, "invalid UTF-8"},
	{"k = \"\xE6\x97\xA5\xE6\x97\xA5\" x", 1, 10, "expected end of line"},
	{"a = \"x\x01\"", 1, 7, "control character U+0001 is not allowed"},
	{"# comment \x7F", 1, 11, "control character U+007F"},
	{"a = '''\x0B'''", 1, 8, "control character U+000B"},
	{"a = 1\r b = 2", 1, 6, "carriage return not followed by a line feed"},
	{"a = 1\r\nb = 1\r\nb = 2", 3, 1, "duplicate key 'b'"},
	{"a = {b = 1,}", 1, 12, "trailing comma is not allowed in an inline table"},
	{"a = {b = 1\n}", 1, 11, "newline is not allowed in an inline table"},
	{"a = {\nb = 1}", 1, 6, "newline is not allowed in an inline table"},
	{"a = {b = 1 c = 2}", 1, 12, "expected ',' or '}' in inline table"},
	{"a = {b = 1", 1, 5, "unterminated inline table"},
	{"a", 1, 2, "expected '=' after key"},
	{"a b = 1", 1, 3, "expected '=' after key"},
	{"= 1", 1, 1, "expected a key, found '='"},
	{"a. = 1", 1, 4, "expected a key"},
	{"a = ", 1, 5, "expected a value"},
	{"a = # nothing", 1, 5, "expected a value"},
	{"a = [1 2]", 1, 8, "expected ',' or ']' in array"},
	{"a = [1,", 1, 5, "unterminated array"},
	{"\xEF\xBB\xBF" "a = [1, 2", 1, 5, "unterminated array"}, /* BOM is no column */
	{"a = [,]", 1, 6, "invalid value"},
	{"[a", 1, 3, "expected ']' to close the header"},
	{"[[a]", 1, 4, "expected ']]' to close the header"},
	{"[[a] ]", 1, 4, "expected ']]' to close the header"},
	{"[]", 1, 2, "expected a key"},
	{"[a] b = 1", 1, 5, "expected end of line"},
	{"\"\"\"k\"\"\" = 1", 1, 3, "expected '=' after key"},
};

START_TEST(test_invalid)
{
	const struct bad *b = &bad_docs[_i];

	assert_fails(b->text, strlen(b->text), b->line, b->col, b->reason);
}
END_TEST

START_TEST(test_nul_in_input)
{
	assert_fails("a = \"x\0y\"", 9, 1, 7, "control character U+0000");
}
END_TEST

/* "a = " followed by n nested arrays. */
static char *nested_arrays(int n)
{
	char *s = malloc((size_t)n * 2 + 8);

	strcpy(s, "a = ");
	memset(s + 4, '[', (size_t)n);
	memset(s + 4 + n, ']', (size_t)n);
	s[4 + 2 * n] = '\0';
	return s;
}

/* "[k.k.k...]" with n names, as a table or an array of tables. */
static char *deep_header(int n, bool aot)
{
	char *s = malloc((size_t)n * 2 + 8), *p = s;

	p += sprintf(p, aot ? "[[" : "[");
	for (int i = 0; i < n; i++)
		p += sprintf(p, i ? ".k" : "k");
	sprintf(p, aot ? "]]" : "]");
	return s;
}

/* Lines [[a]], [[a.a]], ... [[a.a...a]] with up to n names: arrays of
 * tables inside arrays of tables. */
static char *nested_aots(int n)
{
	char *s = malloc((size_t)(n * (n + 5) + 1)), *p = s;

	for (int i = 1; i <= n; i++) {
		p += sprintf(p, "[[a");
		for (int k = 1; k < i; k++)
			p += sprintf(p, ".a");
		p += sprintf(p, "]]\n");
	}
	return s;
}

START_TEST(test_depth_limit)
{
	char *s = nested_arrays(TOML_MAX_DEPTH);
	struct toml_doc *d = parse_ok(s);

	toml_doc_free(d);
	free(s);
	s = nested_arrays(TOML_MAX_DEPTH + 1);
	assert_fails(s, strlen(s), 1, 5 + TOML_MAX_DEPTH, "nesting deeper than 64 levels");
	free(s);

	s = deep_header(TOML_MAX_DEPTH, false);
	toml_doc_free(parse_ok(s));
	free(s);
	s = deep_header(TOML_MAX_DEPTH + 1, false);
	assert_fails(s, strlen(s), 1, 2 + 2 * TOML_MAX_DEPTH, "nesting deeper than 64 levels");
	free(s);

	/* Dotted keys count from the depth of the table they are in. */
	s = deep_header(TOML_MAX_DEPTH - 1, false);
	s = realloc(s, strlen(s) + 16);
	strcat(s, "\na = 1\nb.c = 2");
	assert_fails(s, strlen(s), 3, 3, "nesting deeper than 64 levels");
	free(s);

	/* An array of tables costs two levels (array + element). */
	s = deep_header(TOML_MAX_DEPTH - 1, true);
	toml_doc_free(parse_ok(s));
	free(s);
	s = deep_header(TOML_MAX_DEPTH, true);
	assert_fails(s, strlen(s), 1, 3 + 2 * (TOML_MAX_DEPTH - 1), "nesting deeper than");
	free(s);
	/* Entering an element of [[x]] from a header costs two levels too. */
	s = nested_aots(TOML_MAX_DEPTH / 2);
	toml_doc_free(parse_ok(s));
	free(s);
	s = nested_aots(TOML_MAX_DEPTH / 2 + 1);
	assert_fails(s, strlen(s), TOML_MAX_DEPTH / 2 + 1, 3 + TOML_MAX_DEPTH,
		     "nesting deeper than");
	free(s);
}
END_TEST

START_TEST(test_too_large)
{
	size_t n = TOML_MAX_INPUT + 1;
	char *big = malloc(n);
	struct toml_doc *d = NULL;
	struct toml_error err;

	memset(big, '#', n);
	ck_assert_int_eq(toml_parse(big, n, &d, &err), -E2BIG);
	ck_assert_ptr_null(d);
	ck_assert_int_eq(err.line, 0);
	ck_assert_ptr_nonnull(strstr(err.reason, "larger than"));
	/* Exactly the limit is fine: one long comment. */
	ck_assert_int_eq(toml_parse(big, n - 1, &d, &err), 0);
	ck_assert_uint_eq(json_object_size(toml_doc_root(d)), 0);
	toml_doc_free(d);
	free(big);
}
END_TEST

START_TEST(test_null_err_and_free)
{
	struct toml_doc *d = NULL;

	ck_assert_int_eq(toml_parse("a = ", 4, &d, NULL), -EINVAL);
	ck_assert_ptr_null(d);
	ck_assert_int_eq(toml_parse(NULL, 0, &d, NULL), 0);
	ck_assert_uint_eq(json_object_size(toml_doc_root(d)), 0);
	ck_assert_ptr_null(toml_doc_free(d));
	ck_assert_ptr_null(toml_doc_free(NULL));
}
END_TEST

START_TEST(test_not_nul_terminated)
{
	/* Only len bytes count: the text after them must not be read. */
	static const char text[] = "a = 12345";
	struct toml_doc *d = NULL;
	struct toml_error err;

	ck_assert_int_eq(toml_parse(text, 6, &d, &err), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(toml_doc_root(d), "a")), 12);
	toml_doc_free(d);
	ck_assert_int_eq(toml_parse(text, 4, &d, &err), -EINVAL);
	ck_assert_str_eq(err.reason, "expected a value");
}
END_TEST

static const char codex_config[] =
	"# tandem reads Codex's config.toml\n"                               /* 1 */
	"model = \"gpt-5-codex\"\n"                                           /* 2 */
	"model_provider = \"azure\"\n"                                        /* 3 */
	"approval_policy = \"on-request\"\n"                                  /* 4 */
	"\n"                                                                  /* 5 */
	"[model_providers.azure]\n"                                           /* 6 */
	"name = \"Azure\"\n"                                                  /* 7 */
	"base_url = \"https://example.openai.azure.com/openai\"\n"            /* 8 */
	"env_key = \"AZURE_OPENAI_API_KEY\"\n"                                /* 9 */
	"wire_api = \"responses\"\n"                                          /* 10 */
	"query_params = { api-version = \"2025-04-01-preview\" }\n"           /* 11 */
	"http_headers = { \"X-Team\" = \"agents\", \"X-Trace\" = \"on\" }\n"  /* 12 */
	"request_max_retries = 4\n"                                           /* 13 */
	"stream_idle_timeout_ms = 300_000\n"                                  /* 14 */
	"\n"                                                                  /* 15 */
	"[mcp_servers.docs]\n"                                                /* 16 */
	"command = \"npx\"\n"                                                 /* 17 */
	"args = [\"-y\", \"@modelcontextprotocol/server-filesystem\", \"/srv/docs\"]\n" /* 18 */
	"env = { LOG_LEVEL = \"debug\", \"HOME DIR\" = '/home/x' }\n"         /* 19 */
	"startup_timeout_sec = 20.5\n"                                        /* 20 */
	"tool_timeout_sec = 120\n"                                            /* 21 */
	"enabled_tools = [\n"                                                 /* 22 */
	"  \"read_file\",  # only reads\n"                                    /* 23 */
	"  \"list_directory\",\n"                                             /* 24 */
	"]\n"                                                                 /* 25 */
	"\n"                                                                  /* 26 */
	"[mcp_servers.\"remote.search\"]\n"                                   /* 27 */
	"url = \"https://search.example.com/mcp\"\n"                          /* 28 */
	"bearer_token_env_var = \"SEARCH_TOKEN\"\n"                           /* 29 */
	"\tenvironment_id = \"gpu-box\"\n"                                    /* 30 */
	"\n"                                                                  /* 31 */
	"[features]\n"                                                        /* 32 */
	"apps = true\n"                                                       /* 33 */
	"apps_mcp_path_override = false\n";                                   /* 34 */

START_TEST(test_codex_config)
{
	struct toml_doc *d = parse_ok(codex_config);
	json_t *root = toml_doc_root(d), *prov, *docs, *remote, *args;
	const char *key;
	json_t *v;
	size_t i = 0;
	static const char *order[] = {"model", "model_provider", "approval_policy",
				      "model_providers", "mcp_servers", "features"};

	json_object_foreach(root, key, v) {
		ck_assert_uint_lt(i, 6);
		ck_assert_str_eq(key, order[i++]);
	}
	ck_assert_uint_eq(i, 6);
	ck_assert_str_eq(json_string_value(json_object_get(root, "model")), "gpt-5-codex");
	ck_assert_str_eq(json_string_value(json_object_get(root, "model_provider")), "azure");

	prov = json_object_get(json_object_get(root, "model_providers"), "azure");
	ck_assert(json_is_object(prov));
	ck_assert_str_eq(json_string_value(json_object_get(prov, "wire_api")), "responses");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(prov, "http_headers"),
							   "X-Trace")), "on");
	ck_assert_uint_eq(json_object_size(json_object_get(prov, "http_headers")), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(prov, "query_params"),
							   "api-version")), "2025-04-01-preview");
	ck_assert_int_eq(json_integer_value(json_object_get(prov, "stream_idle_timeout_ms")),
			 300000);

	docs = json_object_get(json_object_get(root, "mcp_servers"), "docs");
	ck_assert_str_eq(json_string_value(json_object_get(docs, "command")), "npx");
	args = json_object_get(docs, "args");
	ck_assert_uint_eq(json_array_size(args), 3);
	ck_assert_str_eq(json_string_value(json_array_get(args, 1)),
			 "@modelcontextprotocol/server-filesystem");
	ck_assert_str_eq(
		json_string_value(json_object_get(json_object_get(docs, "env"), "HOME DIR")),
		"/home/x");
	ck_assert(json_is_real(json_object_get(docs, "startup_timeout_sec")));
	ck_assert(json_real_value(json_object_get(docs, "startup_timeout_sec")) == 20.5);
	ck_assert(json_is_integer(json_object_get(docs, "tool_timeout_sec")));
	ck_assert_uint_eq(json_array_size(json_object_get(docs, "enabled_tools")), 2);

	remote = json_object_get(json_object_get(root, "mcp_servers"), "remote.search");
	ck_assert_str_eq(json_string_value(json_object_get(remote, "environment_id")), "gpu-box");
	ck_assert(json_is_true(json_object_get(json_object_get(root, "features"), "apps")));
	ck_assert(json_is_false(json_object_get(json_object_get(root, "features"),
						"apps_mcp_path_override")));

	assert_where(d, "model", 2, 1);
	assert_where(d, "model_providers", 6, 2);
	assert_where(d, "model_providers.azure", 6, 18);
	assert_where(d, "model_providers.azure.http_headers", 12, 1);
	assert_where(d, "model_providers.azure.http_headers.X-Trace", 12, 39);
	assert_where(d, "model_providers.azure.query_params.api-version", 11, 18);
	assert_where(d, "mcp_servers", 16, 2);
	assert_where(d, "mcp_servers.docs", 16, 14);
	assert_where(d, "mcp_servers.docs.command", 17, 1);
	assert_where(d, "mcp_servers.docs.args[2]", 18, 58);
	assert_where(d, "mcp_servers.docs.env.\"HOME DIR\"", 19, 30);
	assert_where(d, "mcp_servers.docs.enabled_tools[1]", 24, 3);
	assert_where(d, "mcp_servers.\"remote.search\"", 27, 14);
	assert_where(d, "mcp_servers.'remote.search'.environment_id", 30, 2);
	assert_where(d, "features.apps_mcp_path_override", 34, 1);
	ck_assert(!toml_doc_where(d, "mcp_servers.remote.search", NULL, NULL));
	ck_assert(!toml_doc_where(d, "mcp_servers.docs.args[3]", NULL, NULL));
	ck_assert(!toml_doc_where(d, "model.x", NULL, NULL));
	toml_doc_free(d);
}
END_TEST

static const char environments_toml[] =
	"include_local = true\n"                        /* 1 */
	"default = \"build\"\n"                         /* 2 */
	"\n"                                            /* 3 */
	"[[environments]]\n"                            /* 4 */
	"id = \"build\"\n"                              /* 5 */
	"url = \"tcp://10.0.0.5:7700\"\n"               /* 6 */
	"connect_timeout_sec = 5\n"                     /* 7 */
	"\n"                                            /* 8 */
	"[[ environments ]]  # a spawned one\n"         /* 9 */
	"id = \"sandbox\"\n"                            /* 10 */
	"program = \"/usr/libexec/tandem-executor\"\n"  /* 11 */
	"args = [\"--plugins\", \"/opt/plugins\"]\n"    /* 12 */
	"env = { RUST_LOG = \"info\" }\n"               /* 13 */
	"cwd = \"/var/lib/tandem\"\n"                   /* 14 */
	"initialize_timeout_sec = 15\n"                 /* 15 */
	"colour = \"blue\"\n";                          /* 16 */

START_TEST(test_environments)
{
	struct toml_doc *d = parse_ok(environments_toml);
	json_t *root = toml_doc_root(d);
	json_t *envs = json_object_get(root, "environments"), *e0, *e1;

	ck_assert(json_is_true(json_object_get(root, "include_local")));
	ck_assert_str_eq(json_string_value(json_object_get(root, "default")), "build");
	ck_assert(json_is_array(envs));
	ck_assert_uint_eq(json_array_size(envs), 2);
	e0 = json_array_get(envs, 0);
	e1 = json_array_get(envs, 1);
	ck_assert_str_eq(json_string_value(json_object_get(e0, "url")), "tcp://10.0.0.5:7700");
	ck_assert_int_eq(json_integer_value(json_object_get(e0, "connect_timeout_sec")), 5);
	ck_assert_ptr_null(json_object_get(e0, "program"));
	ck_assert_str_eq(json_string_value(json_object_get(e1, "program")),
			 "/usr/libexec/tandem-executor");
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(e1, "args"), 1)),
			 "/opt/plugins");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(e1, "env"), "RUST_LOG")),
			 "info");

	assert_where(d, "include_local", 1, 1);
	assert_where(d, "environments", 4, 3);
	assert_where(d, "environments[0]", 4, 3);
	assert_where(d, "environments[1]", 9, 4);
	assert_where(d, "environments[0].url", 6, 1);
	assert_where(d, "environments[1].env.RUST_LOG", 13, 9);
	assert_where(d, "environments[1].colour", 16, 1);
	ck_assert(!toml_doc_where(d, "environments[2]", NULL, NULL));
	ck_assert(!toml_doc_where(d, "environments[1].url", NULL, NULL));
	ck_assert(!toml_doc_where(d, "environments.id", NULL, NULL));
	toml_doc_free(d);
}
END_TEST

START_TEST(test_where_paths)
{
	struct toml_doc *d = parse_ok("[a.\"b.c\"]\n\"q\\\"x\" = 1\n\"\" = 2\n'\\t' = 3\n"
				      "[[a.arr]]\nv = [[1, {w = 2}]]\n");
	char *p;

	assert_where(d, "a", 1, 2);
	assert_where(d, "a.\"b.c\"", 1, 4);
	assert_where(d, "a.'b.c'", 1, 4);
	assert_where(d, "a.\"b\\u002Ec\".\"q\\\"x\"", 2, 1);
	assert_where(d, "a.\"b.c\".\"\"", 3, 1);
	assert_where(d, "a.\"b.c\".\"\\\\t\"", 4, 1);
	assert_where(d, "a.arr[0].v[0][1].w", 6, 11);
	/* Malformed or wrong-shape paths just miss. */
	ck_assert(!toml_doc_where(d, "", NULL, NULL));
	ck_assert(!toml_doc_where(d, "a.", NULL, NULL));
	ck_assert(!toml_doc_where(d, ".a", NULL, NULL));
	ck_assert(!toml_doc_where(d, "a.\"b.c", NULL, NULL));
	ck_assert(!toml_doc_where(d, "a[0]", NULL, NULL));
	ck_assert(!toml_doc_where(d, "a.arr[x]", NULL, NULL));
	ck_assert(!toml_doc_where(d, "a.arr[0", NULL, NULL));
	ck_assert(!toml_doc_where(d, "a.arr[99999999999999999999999]", NULL, NULL));
	ck_assert(!toml_doc_where(d, "a.arr[0]x", NULL, NULL));
	ck_assert(!toml_doc_where(d, "a.b.c", NULL, NULL));
	ck_assert(!toml_doc_where(d, "a.\"\\q\"", NULL, NULL));
	ck_assert(!toml_doc_where(NULL, "a", NULL, NULL));

	/* toml_path_join quotes exactly what is not a bare key, and the
	 * result finds the key again. */
	p = toml_path_join("a", "b.c");
	ck_assert_str_eq(p, "a.\"b.c\"");
	free(p);
	p = toml_path_join(NULL, "plain-key_1");
	ck_assert_str_eq(p, "plain-key_1");
	free(p);
	p = toml_path_join("", "");
	ck_assert_str_eq(p, "\"\"");
	free(p);
	p = toml_path_join("x", "q\"\\\t\x01\xC3\xA9");
	ck_assert_str_eq(p, "x.\"q\\\"\\\\\\u0009\\u0001\xC3\xA9\"");
	free(p);
	p = toml_path_join("a.\"b.c\"", "q\"x");
	assert_where(d, p, 2, 1);
	free(p);
	toml_doc_free(d);
}
END_TEST

/* Positions follow real lines (CRLF counts as one newline) and columns
 * count characters, not bytes. */
START_TEST(test_where_columns)
{
	struct toml_doc *d = parse_ok("# \xC3\xA9\xC3\xA9\r\n"
				      "\"\xE6\x97\xA5\" = { \"\xC3\xA9\" = 1, k = 2 }\r\n");

	assert_where(d, "\"\xE6\x97\xA5\"", 2, 1);
	assert_where(d, "\"\xE6\x97\xA5\".k", 2, 18);
	toml_doc_free(d);
	/* Implicit tables take the position of their explicit header. */
	d = parse_ok("[a.b]\n[a]\n");
	assert_where(d, "a", 2, 2);
	assert_where(d, "a.b", 1, 4);
	toml_doc_free(d);
}
END_TEST

static char tmpdir[64];

static void tmp_setup(void)
{
	strcpy(tmpdir, "/tmp/test_toml.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void tmp_teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

static char *tmp_file(const char *name, const char *text, size_t len)
{
	char *path = malloc(strlen(tmpdir) + strlen(name) + 2);
	FILE *f;

	sprintf(path, "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(text, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
	return path;
}

START_TEST(test_parse_file)
{
	char *path = tmp_file("environments.toml", environments_toml, strlen(environments_toml));
	struct toml_doc *d = NULL;
	char missing[128];
	struct toml_error err;

	ck_assert_int_eq(toml_parse_file(path, &d, &err), 0);
	ck_assert_uint_eq(json_array_size(json_object_get(toml_doc_root(d), "environments")), 2);
	assert_where(d, "environments[1].colour", 16, 1);
	toml_doc_free(d);
	free(path);

	snprintf(missing, sizeof(missing), "%s/nope.toml", tmpdir);
	d = NULL;
	ck_assert_int_eq(toml_parse_file(missing, &d, &err), -ENOENT);
	ck_assert_ptr_null(d);
	ck_assert_int_eq(err.line, 0);
	ck_assert_ptr_nonnull(strstr(err.reason, "not found"));

	ck_assert_int_eq(toml_parse_file(tmpdir, &d, &err), -EISDIR);
	ck_assert_ptr_null(d);

	path = tmp_file("bad.toml", "ok = 1\nbad = \n", 14);
	ck_assert_int_eq(toml_parse_file(path, &d, &err), -EINVAL);
	ck_assert_int_eq(err.line, 2);
	ck_assert_int_eq(err.col, 7);
	free(path);
}
END_TEST

START_TEST(test_parse_file_too_large)
{
	size_t n = TOML_MAX_INPUT + 1;
	char *big = malloc(n), *path;
	struct toml_doc *d = NULL;
	struct toml_error err;

	memset(big, '\n', n);
	path = tmp_file("big.toml", big, n);
	ck_assert_int_eq(toml_parse_file(path, &d, &err), -E2BIG);
	ck_assert_ptr_null(d);
	ck_assert_ptr_nonnull(strstr(err.reason, "larger than"));
	free(path);
	path = tmp_file("limit.toml", big, n - 1);
	ck_assert_int_eq(toml_parse_file(path, &d, &err), 0);
	toml_doc_free(d);
	free(path);
	free(big);
}
END_TEST

static Suite *toml_suite(void)
{
	Suite *s = suite_create("toml");
	TCase *tc = tcase_create("syntax");
	TCase *bad = tcase_create("invalid");
	TCase *docs = tcase_create("documents");
	TCase *files = tcase_create("files");

	tcase_add_test(tc, test_empty_and_comments);
	tcase_add_test(tc, test_keys);
	tcase_add_test(tc, test_key_with_nul);
	tcase_add_test(tc, test_tables);
	tcase_add_test(tc, test_array_of_tables);
	tcase_add_test(tc, test_basic_strings);
	tcase_add_test(tc, test_literal_strings);
	tcase_add_test(tc, test_multiline_basic);
	tcase_add_test(tc, test_multiline_literal);
	tcase_add_test(tc, test_integers);
	tcase_add_test(tc, test_floats);
	tcase_add_test(tc, test_booleans);
	tcase_add_test(tc, test_arrays);
	tcase_add_test(tc, test_inline_tables);
	suite_add_tcase(s, tc);

	tcase_add_loop_test(bad, test_invalid, 0, (int)(sizeof(bad_docs) / sizeof(bad_docs[0])));
	tcase_add_test(bad, test_nul_in_input);
	tcase_add_test(bad, test_depth_limit);
	tcase_add_test(bad, test_too_large);
	tcase_add_test(bad, test_null_err_and_free);
	tcase_add_test(bad, test_not_nul_terminated);
	suite_add_tcase(s, bad);

	tcase_add_test(docs, test_codex_config);
	tcase_add_test(docs, test_environments);
	tcase_add_test(docs, test_where_paths);
	tcase_add_test(docs, test_where_columns);
	suite_add_tcase(s, docs);

	tcase_add_checked_fixture(files, tmp_setup, tmp_teardown);
	tcase_add_test(files, test_parse_file);
	tcase_add_test(files, test_parse_file_too_large);
	suite_add_tcase(s, files);
	return s;
}

TEST_MAIN(toml_suite)
