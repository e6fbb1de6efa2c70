/* test_metrics.c - the registry (declarations, bounds, updates), its
 * Prometheus text renderer (exact text, and the same text accepted by a
 * strict 0.0.4 parser, tests/unit/promparse.py, cross-checked with
 * prometheus_client's parser when Debian's python3-prometheus-client is
 * there), and the catalogue's event functions. */
#include "metrics.h"
#include "metrics_tandem.h"
#include "testmain.h"
#include "util.h"
#include "version.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

static const char *const ab[] = { "a", "b", NULL };
static const char *const abo[] = { "a", "b", METRICS_OTHER, NULL };
static const char *const xy[] = { "x", "y\"q\\n\nl", NULL };
static const double bounds[] = { 0.1, 1, 10 };

/* A descriptor with help "h": D("name", TYPE[, more designated fields]). */
#define D(n, ...) ((struct metrics_desc){ .name = n, .help = "h", .type = __VA_ARGS__ })

static struct metric *add(struct metrics *m, struct metrics_desc d, char *err)
{
	return metrics_add(m, &d, err, 256);
}

START_TEST(test_declaration_errors)
{
	static const char *const dup[] = { "a", "a", NULL };
	static const char *const none[] = { NULL };
	static const double unsorted[] = { 1, 0.5 };
	static const double inf[] = { 1, INFINITY };
	static const char *const big[] = { "0", "1", "2", "3", "4", "5", "6", "7", "8", "9",
					   "10", "11", "12", "13", "14", "15", "16", "17", "18",
					   "19", "20", "21", "22", "23", NULL };
	struct metrics *m = metrics_new();
	char err[256];

	ck_assert_ptr_nonnull(add(m, D("ok_total", METRICS_COUNTER), err));
	ck_assert_ptr_null(add(m, D("ok_total", METRICS_COUNTER), err));
	ck_assert_ptr_nonnull(strstr(err, "twice"));
	ck_assert_ptr_null(add(m, D("1bad", METRICS_GAUGE), err));
	ck_assert_ptr_null(add(m, D("has-dash", METRICS_GAUGE), err));
	ck_assert_ptr_null(add(m, (struct metrics_desc){ .name = "g", .type = METRICS_GAUGE }, err));
	ck_assert_ptr_null(add(m, D("g", METRICS_GAUGE, .labels = { { "l", dup } }), err));
	ck_assert_ptr_nonnull(strstr(err, "duplicate value"));
	ck_assert_ptr_null(add(m, D("g", METRICS_GAUGE, .labels = { { "l", none } }), err));
	ck_assert_ptr_null(add(m, D("g", METRICS_GAUGE, .labels = { { "__l", ab } }), err));
	ck_assert_ptr_null(add(m, D("g", METRICS_GAUGE, .labels = { { "l", ab }, { "l", ab } }),
			       err));
	ck_assert_ptr_null(add(m, D("hi", METRICS_HISTOGRAM, .labels = { { "le", ab } },
				    .buckets = bounds, .n_buckets = 3), err));
	ck_assert_ptr_nonnull(strstr(err, "reserved"));
	ck_assert_ptr_null(add(m, D("hi", METRICS_HISTOGRAM, .buckets = unsorted, .n_buckets = 2),
			       err));
	ck_assert_ptr_null(add(m, D("hi", METRICS_HISTOGRAM, .buckets = inf, .n_buckets = 2), err));
	ck_assert_ptr_null(add(m, D("hi", METRICS_HISTOGRAM), err));
	ck_assert_ptr_null(add(m, D("g", METRICS_GAUGE, .buckets = bounds, .n_buckets = 3), err));
	/* 24 x 24 = 576 series: over METRICS_MAX_SERIES */
	ck_assert_ptr_null(add(m, D("g", METRICS_GAUGE, .labels = { { "p", big }, { "q", big } }),
			       err));
	ck_assert_ptr_nonnull(strstr(err, "series"));
	metrics_free(m);
}
END_TEST

START_TEST(test_registry_bound)
{
	struct metrics *m = metrics_new();
	char err[256], names[METRICS_MAX_METRICS + 1][16];
	int i;

	for (i = 0; i < METRICS_MAX_METRICS; i++) {
		snprintf(names[i], sizeof(names[i]), "m%d", i);
		ck_assert_ptr_nonnull(add(m, D(names[i], METRICS_GAUGE), err));
	}
	snprintf(names[i], sizeof(names[i]), "m%d", i);
	ck_assert_ptr_null(add(m, D(names[i], METRICS_GAUGE), err));
	ck_assert_ptr_nonnull(strstr(err, "full"));
	metrics_free(m);
}
END_TEST

START_TEST(test_labels_and_updates)
{
	struct metrics *m = metrics_new();
	char err[256];
	struct metric *c = add(m, D("c_total", METRICS_COUNTER,
				    .labels = { { "k", abo }, { "j", ab } }), err);
	struct metric *strict = add(m, D("s_total", METRICS_COUNTER, .labels = { { "k", ab } }),
				    err);
	struct metric *g = add(m, D("g", METRICS_GAUGE), err);
	unsigned idx[2];

	ck_assert_int_eq(metrics_label_index(c, 0, "b"), 1);
	ck_assert_int_eq(metrics_label_index(c, 0, "zzz"), 2);   /* -> other */
	ck_assert_int_eq(metrics_label_index(c, 0, NULL), 2);
	ck_assert_int_eq(metrics_label_index(strict, 0, "zzz"), -1); /* no other declared */
	ck_assert_int_eq(metrics_label_index(c, 2, "a"), -1);
	idx[0] = 2, idx[1] = 1;
	ck_assert_int_eq(metrics_series(c, idx), 5);
	idx[0] = 3;
	ck_assert_int_eq(metrics_series(c, idx), -1);
	ck_assert_int_eq(metrics_series(g, NULL), 0);

	metrics_add_value(c, 5, 2);
	metrics_add_value(c, 5, -1);     /* counters never go down */
	metrics_add_value(c, 5, NAN);
	metrics_add_value(c, -1, 1);     /* a failed lookup costs nothing */
	metrics_add_value(NULL, 0, 1);
	metrics_set(c, 5, 100);          /* not a gauge */
	ck_assert_double_eq(metrics_value(c, 5), 2);
	metrics_set(g, 0, -3.5);
	ck_assert_double_eq(metrics_value(g, 0), -3.5);
	ck_assert(isnan(metrics_value(g, 1)));
	metrics_free(m);
}
END_TEST

START_TEST(test_histogram_buckets)
{
	struct metrics *m = metrics_new();
	char err[256], *text;
	size_t len;
	struct metric *h = add(m, D("lat_seconds", METRICS_HISTOGRAM, .buckets = bounds,
				    .n_buckets = 3), err);

	metrics_observe(h, 0, 0.1);   /* le is inclusive: the 0.1 bucket */
	metrics_observe(h, 0, 0.5);
	metrics_observe(h, 0, 10);
	metrics_observe(h, 0, 11);    /* +Inf only */
	metrics_observe(h, 0, NAN);   /* ignored */
	ck_assert_double_eq(metrics_value(h, 0), 4);
	metrics_render(m, &text, &len);
	ck_assert_str_eq(text,
		"# HELP lat_seconds h\n"
		"# TYPE lat_seconds histogram\n"
		"lat_seconds_bucket{le=\"0.1\"} 1\n"
		"lat_seconds_bucket{le=\"1\"} 2\n"
		"lat_seconds_bucket{le=\"10\"} 3\n"
		"lat_seconds_bucket{le=\"+Inf\"} 4\n"
		"lat_seconds_sum 21.6\n"
		"lat_seconds_count 4\n");
	ck_assert_uint_eq(len, strlen(text));
	free(text);
	metrics_free(m);
}
END_TEST

static double read_fn(const unsigned *idx, void *arg)
{
	return idx[0] == 0 ? 7 : NAN; /* the second series is absent */
}

START_TEST(test_render_exact)
{
	struct metrics *m = metrics_new();
	char err[256], *text;
	size_t len;
	struct metric *c = add(m, (struct metrics_desc){ .name = "req_total",
		.help = "Requests \\ by\nkind.", .type = METRICS_COUNTER,
		.labels = { { "kind", xy } } }, err);

	add(m, D("fn", METRICS_GAUGE, .labels = { { "k", ab } }, .read = read_fn), err);
	metrics_add_value(c, 1, 3);
	metrics_add_value(c, 0, 0.25);
	metrics_render(m, &text, &len);
	ck_assert_str_eq(text,
		"# HELP req_total Requests \\\\ by\\nkind.\n"
		"# TYPE req_total counter\n"
		"req_total{kind=\"x\"} 0.25\n"
		"req_total{kind=\"y\\\"q\\\\n\\nl\"} 3\n"
		"# HELP fn h\n"
		"# TYPE fn gauge\n"
		"fn{k=\"a\"} 7\n");
	free(text);
	metrics_free(m);
}
END_TEST

/* Runs promparse.py on text; returns its JSON output (NULL if it refused,
 * with its exit status in *status). */
static json_t *promparse(const char *text, int *status)
{
	char path[] = "/tmp/tdm-metrics-XXXXXX", cmd[512], buf[65536];
	int fd = mkstemp(path);
	FILE *p;
	size_t n;
	json_t *j;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write_all(fd, text, strlen(text)), 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "python3 promparse.py %s", path);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	n = fread(buf, 1, sizeof(buf) - 1, p);
	buf[n] = '\0';
	*status = pclose(p);
	unlink(path);
	j = WIFEXITED(*status) && WEXITSTATUS(*status) == 0 ? json_loads(buf, 0, NULL) : NULL;
	return j;
}

static double sample(json_t *j, const char *key)
{
	json_t *v = json_object_get(json_object_get(j, "samples"), key);

	ck_assert_msg(v != NULL, "no sample %s", key);
	return json_number_value(v);
}

/* The whole catalogue, after events of every kind, through the parsers. */
START_TEST(test_catalogue_parses)
{
	char err[256], *text;
	size_t len;
	int status;
	json_t *j;

	ck_assert_int_eq(metrics_tandem_init("tandem-executor", err, sizeof(err)), 0);
	ck_assert_int_eq(metrics_tandem_init("tandem-executor", err, sizeof(err)), -EALREADY);
	metrics_client_request("thread/start", 0);
	metrics_client_request("thread/start", 0);
	metrics_client_request("no/such\"method\n", -32601);   /* -> other */
	metrics_client_request("turn/start", -12345);          /* -> outcome other */
	metrics_tool_call(METRICS_TOOL_OK, 0.0002);
	metrics_tool_call(METRICS_TOOL_TIMEOUT, 30);
	metrics_tool_call((enum metrics_tool_outcome)99, 1);   /* -> failed */
	metrics_turn("completed", 1.5);
	metrics_turn("bogus", 1.5);                            /* not counted */
	metrics_model_request(false, 0.2);
	metrics_link_frame(true, 100);
	metrics_link_frame(true, 50);
	metrics_link_frame(false, 7);
	metrics_link_reconnect();
	metrics_handshake_refused("bad_proof");
	metrics_handshake_refused("token=secret");             /* -> other, never the text */
	metrics_server_restart();
	metrics_http_relay_request("aborted");
	metrics_loop_lag(0.003);
	metrics_ops_request("/metrics");
	metrics_ops_request("/etc/passwd");
	metrics_render(metrics_tandem_registry(), &text, &len);
	ck_assert_ptr_null(strstr(text, "secret"));
	ck_assert_ptr_null(strstr(text, "no/such"));
	j = promparse(text, &status);
	ck_assert_msg(j != NULL, "promparse refused the catalogue (status %d):\n%s", status, text);
	ck_assert_double_eq(sample(j, "tandem_client_requests_total{method=\"thread/start\","
				      "outcome=\"ok\"}"), 2);
	ck_assert_double_eq(sample(j, "tandem_client_requests_total{method=\"other\","
				      "outcome=\"method_not_found\"}"), 1);
	ck_assert_double_eq(sample(j, "tandem_client_requests_total{method=\"turn/start\","
				      "outcome=\"other\"}"), 1);
	ck_assert_double_eq(sample(j, "tandem_tool_calls_total{outcome=\"failed\"}"), 1);
	ck_assert_double_eq(sample(j, "tandem_tool_call_duration_seconds_bucket{le=\"0.00025\","
				      "outcome=\"ok\"}"), 1);
	ck_assert_double_eq(sample(j, "tandem_tool_call_duration_seconds_count"
				      "{outcome=\"timeout\"}"), 1);
	ck_assert_double_eq(sample(j, "tandem_turns_total{status=\"completed\"}"), 1);
	ck_assert_double_eq(sample(j, "tandem_turn_duration_seconds_count"), 1);
	ck_assert_double_eq(sample(j, "tandem_model_request_duration_seconds_count"
				      "{outcome=\"error\"}"), 1);
	ck_assert_double_eq(sample(j, "tandem_link_bytes_total{direction=\"sent\"}"), 150);
	ck_assert_double_eq(sample(j, "tandem_link_frames_total{direction=\"received\"}"), 1);
	ck_assert_double_eq(sample(j, "tandem_link_reconnects_total"), 1);
	ck_assert_double_eq(sample(j, "tandem_link_handshake_refusals_total{reason=\"other\"}"), 1);
	ck_assert_double_eq(sample(j, "tandem_mcp_server_restarts_total"), 1);
	ck_assert_double_eq(sample(j, "tandem_http_relay_requests_total{outcome=\"aborted\"}"), 1);
	ck_assert_double_eq(sample(j, "tandem_loop_lag_seconds_count"), 1);
	ck_assert_double_eq(sample(j, "tandem_ops_requests_total{path=\"other\"}"), 1);
	ck_assert_double_eq(sample(j, "tandem_build_info{daemon=\"tandem-executor\","
				      "version=\"" TANDEM_VERSION "\"}"), 1);
	ck_assert(sample(j, "process_resident_memory_bytes") > 0);
	ck_assert(sample(j, "process_open_fds") >= 3);
	ck_assert(sample(j, "process_threads") >= 1);
	json_decref(j);
	free(text);
	metrics_tandem_free();
	metrics_tool_call(METRICS_TOOL_OK, 1); /* after free: a no-op, not a crash */
}
END_TEST

/* The parser itself must refuse what the format forbids, or the test above
 * proves nothing. */
START_TEST(test_parser_is_strict)
{
	static const char *const bad[] = {
		"x 1",                                                  /* no final newline */
		"# TYPE x counter\nx -1\n",                             /* negative counter */
		"# TYPE x gauge\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n",        /* duplicate series */
		"# TYPE x gauge\nx{a=\"\\q\"} 1\n",                     /* bad escape */
		"# TYPE x gauge\nx{a=1} 1\n",                           /* unquoted */
		"# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
		/* ^ not cumulative */
		"# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", /* no +Inf */
		"# TYPE x gauge\n# TYPE x gauge\nx 1\n",                /* TYPE twice */
		"x 1\n",                                                /* no TYPE */
	};
	int status;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		json_t *j = promparse(bad[i], &status);

		ck_assert_msg(j == NULL, "accepted: %s", bad[i]);
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	}
}
END_TEST

static Suite *metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_declaration_errors);
	tcase_add_test(tc, test_registry_bound);
	tcase_add_test(tc, test_labels_and_updates);
	tcase_add_test(tc, test_histogram_buckets);
	tcase_add_test(tc, test_render_exact);
	tcase_add_test(tc, test_catalogue_parses);
	tcase_add_test(tc, test_parser_is_strict);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(metrics_suite)
