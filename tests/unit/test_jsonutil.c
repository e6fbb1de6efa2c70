/* test_jsonutil.c - typed getters, bounded parsing, dumping, file loading. */
#include "jsonutil.h"
#include "testmain.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

static json_t *parse(const char *s)
{
	char err[256];
	json_t *v = jsonu_loadb(s, strlen(s), 1 << 20, err, sizeof(err));

	ck_assert_msg(v != NULL, "parse failed: %s", err);
	return v;
}

static const char *sample =
	"{\"command\":\"node\",\"args\":[\"a\",\"b\"],\"n\":42,\"neg\":-5,\"t\":true,"
	"\"f\":false,\"env\":{\"A\":\"1\",\"B\":\"2\"},\"obj\":{},\"arr\":[1,\"x\"],"
	"\"real\":1.5,\"nul\":null,\"badargs\":[\"a\",3],\"badenv\":{\"A\":1}}";

START_TEST(get_str)
{
	json_t *o = parse(sample);
	char err[128] = "";
	const char *s = "default";

	ck_assert_int_eq(jsonu_get_str(o, "command", true, &s, err, sizeof(err)), 0);
	ck_assert_str_eq(s, "node");
	s = "default";
	ck_assert_int_eq(jsonu_get_str(o, "cwd", false, &s, err, sizeof(err)), 0);
	ck_assert_str_eq(s, "default");
	ck_assert_int_eq(jsonu_get_str(o, "nul", false, &s, err, sizeof(err)), 0);
	ck_assert_str_eq(s, "default");
	ck_assert_int_eq(jsonu_get_str(o, "cwd", true, &s, err, sizeof(err)), -ENOENT);
	ck_assert_str_eq(err, "missing required field 'cwd'");
	ck_assert_int_eq(jsonu_get_str(o, "nul", true, &s, err, sizeof(err)), -ENOENT);
	ck_assert_int_eq(jsonu_get_str(o, "n", true, &s, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "field 'n' must be a string");
	ck_assert_str_eq(s, "default");
	/* err may be NULL. */
	ck_assert_int_eq(jsonu_get_str(o, "n", true, &s, NULL, 0), -EINVAL);
	json_decref(o);
}
END_TEST

START_TEST(get_str_rejects_nul)
{
	json_t *o = json_object();
	char err[128];
	const char *s = NULL;

	json_object_set_new(o, "x", json_stringn("a\0b", 3));
	ck_assert_int_eq(jsonu_get_str(o, "x", true, &s, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "field 'x' must not contain NUL characters");
	ck_assert_ptr_null(s);
	json_decref(o);
}
END_TEST

START_TEST(not_an_object)
{
	json_t *a = parse("[1]");
	char err[128];
	const char *s;

	ck_assert_int_eq(jsonu_get_str(a, "x", false, &s, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "expected an object holding field 'x'");
	ck_assert_int_eq(jsonu_get_str(NULL, "x", false, &s, err, sizeof(err)), -EINVAL);
	json_decref(a);
}
END_TEST

START_TEST(get_int)
{
	json_t *o = parse(sample);
	char err[128];
	int64_t v = 7;

	ck_assert_int_eq(jsonu_get_int(o, "n", true, 0, 100, &v, err, sizeof(err)), 0);
	ck_assert_int_eq(v, 42);
	ck_assert_int_eq(jsonu_get_int(o, "neg", true, INT64_MIN, INT64_MAX, &v, err, sizeof(err)), 0);
	ck_assert_int_eq(v, -5);
	v = 7;
	ck_assert_int_eq(jsonu_get_int(o, "n", true, 0, 41, &v, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "field 'n' must be an integer between 0 and 41");
	ck_assert_int_eq(jsonu_get_int(o, "n", true, 43, 50, &v, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(jsonu_get_int(o, "n", true, 42, 42, &v, err, sizeof(err)), 0);
	ck_assert_int_eq(v, 42);
	v = 7;
	ck_assert_int_eq(jsonu_get_int(o, "real", true, INT64_MIN, INT64_MAX, &v, err, sizeof(err)),
			 -EINVAL);
	ck_assert_str_eq(err, "field 'real' must be an integer");
	ck_assert_int_eq(jsonu_get_int(o, "command", true, 0, 1, &v, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(jsonu_get_int(o, "absent", false, 0, 1, &v, err, sizeof(err)), 0);
	ck_assert_int_eq(v, 7);
	json_decref(o);
}
END_TEST

START_TEST(get_double)
{
	json_t *o = parse(sample);
	char err[128];
	double d = 0;

	ck_assert_int_eq(jsonu_get_double(o, "real", true, 0, 10, &d, err, sizeof(err)), 0);
	ck_assert(d == 1.5);
	ck_assert_int_eq(jsonu_get_double(o, "n", true, 0, 100, &d, err, sizeof(err)), 0);
	ck_assert(d == 42.0);
	ck_assert_int_eq(jsonu_get_double(o, "n", true, 0, 1, &d, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "field 'n' must be a number between 0 and 1");
	ck_assert_int_eq(jsonu_get_double(o, "t", true, 0, 1, &d, err, sizeof(err)), -EINVAL);
	ck_assert(d == 42.0);
	json_decref(o);
}
END_TEST

START_TEST(get_bool)
{
	json_t *o = parse(sample);
	char err[128];
	bool b = false;

	ck_assert_int_eq(jsonu_get_bool(o, "t", true, &b, err, sizeof(err)), 0);
	ck_assert(b);
	ck_assert_int_eq(jsonu_get_bool(o, "f", true, &b, err, sizeof(err)), 0);
	ck_assert(!b);
	b = true;
	ck_assert_int_eq(jsonu_get_bool(o, "n", true, &b, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "field 'n' must be a boolean");
	ck_assert(b);
	ck_assert_int_eq(jsonu_get_bool(o, "absent", false, &b, err, sizeof(err)), 0);
	ck_assert(b);
	json_decref(o);
}
END_TEST

START_TEST(get_obj_and_arr)
{
	json_t *o = parse(sample);
	char err[128];
	json_t *v = NULL;

	ck_assert_int_eq(jsonu_get_obj(o, "obj", true, &v, err, sizeof(err)), 0);
	ck_assert_ptr_eq(v, json_object_get(o, "obj"));
	ck_assert_int_eq(jsonu_get_obj(o, "arr", true, &v, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "field 'arr' must be an object");
	ck_assert_int_eq(jsonu_get_arr(o, "arr", true, &v, err, sizeof(err)), 0);
	ck_assert_ptr_eq(v, json_object_get(o, "arr"));
	ck_assert_int_eq(jsonu_get_arr(o, "obj", true, &v, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "field 'obj' must be an array");
	v = NULL;
	ck_assert_int_eq(jsonu_get_arr(o, "absent", false, &v, err, sizeof(err)), 0);
	ck_assert_ptr_null(v);
	ck_assert_int_eq(jsonu_get_obj(o, "absent", true, &v, err, sizeof(err)), -ENOENT);
	json_decref(o);
}
END_TEST

START_TEST(get_str_array)
{
	json_t *o = parse(sample);
	char err[128];
	json_t *v = NULL;

	ck_assert_int_eq(jsonu_get_str_array(o, "args", true, 2, &v, err, sizeof(err)), 0);
	ck_assert_uint_eq(json_array_size(v), 2);
	ck_assert_int_eq(jsonu_get_str_array(o, "args", true, 1, &v, err, sizeof(err)), -E2BIG);
	ck_assert_str_eq(err, "field 'args' has too many entries (max 1)");
	ck_assert_int_eq(jsonu_get_str_array(o, "badargs", true, 9, &v, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "field 'badargs' must be an array of strings");
	ck_assert_int_eq(jsonu_get_str_array(o, "command", true, 9, &v, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "field 'command' must be an array of strings");
	ck_assert_ptr_eq(v, json_object_get(o, "args"));
	json_array_append_new(json_object_get(o, "args"), json_stringn("x\0y", 3));
	ck_assert_int_eq(jsonu_get_str_array(o, "args", true, 9, &v, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "field 'args' entry 2 contains a NUL character");
	json_decref(o);
}
END_TEST

START_TEST(get_str_map)
{
	json_t *o = parse(sample);
	char err[128];
	json_t *v = NULL;

	ck_assert_int_eq(jsonu_get_str_map(o, "env", true, 2, &v, err, sizeof(err)), 0);
	ck_assert_str_eq(json_string_value(json_object_get(v, "B")), "2");
	ck_assert_int_eq(jsonu_get_str_map(o, "env", true, 1, &v, err, sizeof(err)), -E2BIG);
	ck_assert_str_eq(err, "field 'env' has too many entries (max 1)");
	ck_assert_int_eq(jsonu_get_str_map(o, "badenv", true, 9, &v, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "field 'badenv' must be an object whose values are strings");
	ck_assert_int_eq(jsonu_get_str_map(o, "args", true, 9, &v, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(jsonu_get_str_map(o, "obj", true, 0, &v, err, sizeof(err)), 0);
	ck_assert_uint_eq(json_object_size(v), 0);
	json_decref(o);
}
END_TEST

START_TEST(loadb_bounds_and_errors)
{
	char err[256];
	const char *dup = "{\"a\":1,\n\"a\":2}";
	const char *bad = "{\"a\":\n  tru}";
	json_t *v;

	v = jsonu_loadb("{\"a\":1}", 7, 7, err, sizeof(err));
	ck_assert_ptr_nonnull(v);
	json_decref(v);
	ck_assert_ptr_null(jsonu_loadb("{\"a\":1}", 7, 6, err, sizeof(err)));
	ck_assert_str_eq(err, "JSON text too large (7 bytes, limit 6)");
	ck_assert_ptr_null(jsonu_loadb(dup, strlen(dup), 100, err, sizeof(err)));
	ck_assert_msg(strstr(err, "line 2") && strstr(err, "duplicate"), "got '%s'", err);
	ck_assert_ptr_null(jsonu_loadb(bad, strlen(bad), 100, err, sizeof(err)));
	ck_assert_msg(strncmp(err, "line 2 column ", 14) == 0, "got '%s'", err);
	/* Trailing garbage is an error; the buffer need not be terminated. */
	ck_assert_ptr_null(jsonu_loadb("{} x", 4, 100, err, sizeof(err)));
	v = jsonu_loadb("[1]garbage", 3, 100, err, sizeof(err));
	ck_assert_ptr_nonnull(v);
	ck_assert_uint_eq(json_array_size(v), 1);
	json_decref(v);
	ck_assert_ptr_null(jsonu_loadb("", 0, 100, err, sizeof(err)));
}
END_TEST

/* The scan for a message jansson refuses: a top-level key only, strings
 * and nesting followed, anything doubtful reported as such. */
START_TEST(scan_top_uint)
{
	static const struct {
		const char *text;
		int rc;
		uint64_t v;
	} cases[] = {
		{ "{\"id\":42,\"x\":1e999}", 1, 42 },
		{ " {\"x\":{\"id\":7},\"id\" : 5 }", 1, 5 },
		{ "{\"s\":\"\\\"id\\\":9\",\"id\":3}", 1, 3 },
		{ "{\"a\":[{\"id\":1}],\"b\":\"id\"}", -1, 0 },
		{ "{\"id\":\"12\"}", 0, 0 },
		{ "{\"id\":-1}", 0, 0 },
		{ "{\"id\":1.5}", 0, 0 },
		{ "{\"id\":1,\"id\":2}", 0, 0 },
		{ "{\"id\":18446744073709551616}", 0, 0 },
		{ "{\"id\":18446744073709551615}", 1, UINT64_MAX },
		{ "[{\"id\":1}]", -1, 0 },
		{ "{\"id\":4", 0, 0 },
		{ "{\"ids\":4,\"i\":5}", -1, 0 },
		{ "", -1, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 0;
		int rc = jsonu_scan_top_uint(cases[i].text, strlen(cases[i].text), "id", &v);

		ck_assert_msg(rc == cases[i].rc, "case %zu (%s): %d", i, cases[i].text, rc);
		if (rc == 1)
			ck_assert_msg(v == cases[i].v, "case %zu: %llu", i, (unsigned long long)v);
	}
}
END_TEST

START_TEST(dumps_compact_one_line)
{
	json_t *v = parse("{ \"b\" : [1, 2],\n \"a\" : \"x\\ny\" }");
	char *s = jsonu_dumps(v);

	ck_assert_str_eq(s, "{\"b\":[1,2],\"a\":\"x\\ny\"}");
	ck_assert_ptr_null(strchr(s, '\n'));
	free(s);
	json_decref(v);
	v = json_integer(5);
	s = jsonu_dumps(v);
	ck_assert_str_eq(s, "5");
	free(s);
	json_decref(v);
	ck_assert_ptr_null(jsonu_dumps(NULL));
}
END_TEST

static char tmpdir[64];

static void make_tmpdir(void)
{
	strcpy(tmpdir, "/tmp/test_jsonutil.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static char *write_tmp(const char *name, const char *content)
{
	char *p = xasprintf("%s/%s", tmpdir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write_all(fd, content, strlen(content)), 0);
	close(fd);
	return p;
}

START_TEST(load_file)
{
	char err[512];
	json_t *v = NULL;
	char *good, *bad, *missing, *fifo;

	make_tmpdir();
	good = write_tmp("good.json", "{\"mcpServers\":{}}\n");
	bad = write_tmp("bad.json", "{\"a\":}");
	missing = xasprintf("%s/missing.json", tmpdir);
	fifo = xasprintf("%s/fifo", tmpdir);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);

	ck_assert_int_eq(jsonu_load_file(good, 100, &v, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(json_object_get(v, "mcpServers"));
	json_decref(v);
	v = NULL;
	ck_assert_int_eq(jsonu_load_file(good, 10, &v, err, sizeof(err)), -EFBIG);
	ck_assert_ptr_nonnull(strstr(err, "too large"));
	ck_assert_int_eq(jsonu_load_file(bad, 100, &v, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strncmp(err, bad, strlen(bad)) == 0 && strstr(err, "line 1 column"), "%s", err);
	ck_assert_int_eq(jsonu_load_file(missing, 100, &v, err, sizeof(err)), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, "missing.json"));
	ck_assert_int_eq(jsonu_load_file(tmpdir, 100, &v, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
	/* A FIFO with no writer must not block. */
	ck_assert_int_eq(jsonu_load_file(fifo, 100, &v, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_null(v);

	unlink(good);
	unlink(bad);
	unlink(fifo);
	rmdir(tmpdir);
	free(good);
	free(bad);
	free(missing);
	free(fifo);
}
END_TEST

static Suite *jsonutil_suite(void)
{
	Suite *s = suite_create("jsonutil");
	TCase *g = tcase_create("getters");
	TCase *io = tcase_create("text");

	tcase_add_test(g, get_str);
	tcase_add_test(g, get_str_rejects_nul);
	tcase_add_test(g, not_an_object);
	tcase_add_test(g, get_int);
	tcase_add_test(g, get_double);
	tcase_add_test(g, get_bool);
	tcase_add_test(g, get_obj_and_arr);
	tcase_add_test(g, get_str_array);
	tcase_add_test(g, get_str_map);
	tcase_add_test(io, loadb_bounds_and_errors);
	tcase_add_test(io, dumps_compact_one_line);
	tcase_add_test(io, scan_top_uint);
	tcase_add_test(io, load_file);
	suite_add_tcase(s, g);
	suite_add_tcase(s, io);
	return s;
}

TEST_MAIN(jsonutil_suite)
