/* test_log.c - log lines in both formats: every JSON line parses (jansson)
 * whatever bytes the message holds, carries time, level, daemon, module,
 * message and fields, and a line is written with one write to stderr. */
#include "log.h"
#include "testmain.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

static json_t *json_line(const char *file, const char *func, const struct log_field *f,
			 const char *msg)
{
	static char buf[LOG_MSG_MAX * 8];
	json_error_t e;
	size_t n = log_format_line(buf, sizeof(buf), LOG_FMT_JSON, LOG_LVL_WARN, file, func, f,
				   msg);
	json_t *j;

	ck_assert_uint_gt(n, 0);
	ck_assert_int_eq(buf[n - 1], '\n');
	ck_assert_ptr_null(memchr(buf, '\n', n - 1)); /* one line */
	j = json_loadb(buf, n, 0, &e);
	ck_assert_msg(j != NULL, "not JSON (%s): %s", e.text, buf);
	return j;
}

static const char *str(json_t *j, const char *key)
{
	const char *s = json_string_value(json_object_get(j, key));

	ck_assert_msg(s != NULL, "no string '%s'", key);
	return s;
}

START_TEST(test_json_shape)
{
	json_t *j, *f;

	log_init("tandem-test", LOG_LVL_INFO);
	j = json_line("../orchestrator/env.c", "set_state",
		      LOG_FIELDS({ "env", "gpu" }, { "state", "ready" }), "environment ready");
	ck_assert_str_eq(str(j, "level"), "warn");
	ck_assert_str_eq(str(j, "daemon"), "tandem-test");
	ck_assert_str_eq(str(j, "module"), "orchestrator/env");
	ck_assert_str_eq(str(j, "message"), "environment ready");
	/* RFC 3339, UTC, milliseconds */
	ck_assert_uint_eq(strlen(str(j, "time")), strlen("2025-01-31T12:00:00.123Z"));
	ck_assert_int_eq(str(j, "time")[10], 'T');
	ck_assert_int_eq(str(j, "time")[23], 'Z');
	f = json_object_get(j, "fields");
	ck_assert_str_eq(str(f, "func"), "set_state");
	ck_assert_str_eq(str(f, "env"), "gpu");
	ck_assert_str_eq(str(f, "state"), "ready");
	ck_assert_int_eq(json_integer_value(json_object_get(f, "pid")), getpid());
	json_decref(j);
	j = json_line("main.c", "main", NULL, "x");
	ck_assert_str_eq(str(j, "module"), "main");
	json_decref(j);
}
END_TEST

START_TEST(test_json_hostile_bytes)
{
	/* quotes, backslash, control characters, DEL, invalid UTF-8 (a lone
	 * continuation byte, an overlong '/', a UTF-16 surrogate, a truncated
	 * sequence at the end), and valid multi-byte text that must survive */
	const char *msg = "q\"b\\n\n\r\t\x01\x7f|\x80|\xc0\xaf|\xed\xa0\x80|é€😀|\xe2\x82";
	json_t *j = json_line("a.c", "f", LOG_FIELDS({ "k\"ey", "v\nal" }), msg);
	const char *got = str(j, "message");

	ck_assert_str_eq(got, "q\"b\\n\n\r\t\x01\x7f|\xef\xbf\xbd|\xef\xbf\xbd\xef\xbf\xbd|"
			      "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd|é€😀|"
			      "\xef\xbf\xbd\xef\xbf\xbd");
	ck_assert_str_eq(str(json_object_get(j, "fields"), "k\"ey"), "v\nal");
	json_decref(j);
}
END_TEST

START_TEST(test_json_long_message_bounded)
{
	char big[LOG_MSG_MAX * 3];
	char buf[256];
	size_t n;

	memset(big, '"', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	json_decref(json_line("a.c", "f", NULL, big));
	/* a too-small buffer cuts, never overflows, and stays NUL-terminated */
	n = log_format_line(buf, sizeof(buf), LOG_FMT_JSON, LOG_LVL_INFO, "a.c", "f", NULL, big);
	ck_assert_uint_eq(n, sizeof(buf) - 1);
	ck_assert_uint_eq(strlen(buf), n);
}
END_TEST

START_TEST(test_text_format)
{
	char buf[512];

	log_init("tandem-test", LOG_LVL_INFO);
	log_format_line(buf, sizeof(buf), LOG_FMT_TEXT, LOG_LVL_ERROR, "x/y.c", "fn",
			LOG_FIELDS({ "address", "127.0.0.1:1" }), "hello");
	/* "HH:MM:SS.mmm PROG LEVEL: FUNC: MESSAGE key=value" */
	ck_assert_str_eq(buf + 13, "tandem-test error: fn: hello address=127.0.0.1:1\n");
}
END_TEST

START_TEST(test_parse_and_env)
{
	enum log_format f;

	ck_assert_int_eq(log_format_parse("json", &f), 0);
	ck_assert_int_eq(f, LOG_FMT_JSON);
	ck_assert_int_eq(log_format_parse("JSON", &f), -EINVAL);
	ck_assert_int_eq(log_format_parse(NULL, &f), -EINVAL);
	setenv("TANDEM_LOG_FORMAT", "json", 1);
	log_init("t", LOG_LVL_INFO);
	ck_assert_int_eq(log_get_format(), LOG_FMT_JSON);
	log_set_format(LOG_FMT_TEXT);
	ck_assert_str_eq(getenv("TANDEM_LOG_FORMAT"), "text"); /* what children inherit */
}
END_TEST

/* log_emit writes exactly one JSON line to fd 2, below the level filter. */
START_TEST(test_emit_to_stderr)
{
	char path[] = "/tmp/tdm-log-XXXXXX", buf[8192];
	int fd = mkstemp(path), saved = dup(2);
	ssize_t n;
	json_t *j;

	ck_assert_int_ge(fd, 0);
	dup2(fd, 2);
	log_init("tandem-test", LOG_LVL_INFO);
	log_set_format(LOG_FMT_JSON);
	log_debug("not printed %d", 1);
	log_info_f(LOG_FIELDS({ "n", "1" }), "printed %d", 2);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	unlink(path);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	ck_assert_ptr_eq(strchr(buf, '\n'), buf + n - 1); /* exactly one line */
	j = json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(str(j, "message"), "printed 2");
	ck_assert_str_eq(str(j, "module"), "unit/test_log");
	json_decref(j);
}
END_TEST

static Suite *log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_json_shape);
	tcase_add_test(tc, test_json_hostile_bytes);
	tcase_add_test(tc, test_json_long_message_bounded);
	tcase_add_test(tc, test_text_format);
	tcase_add_test(tc, test_parse_and_env);
	tcase_add_test(tc, test_emit_to_stderr);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(log_suite)
