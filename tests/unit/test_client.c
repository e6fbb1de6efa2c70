/* test_client.c - client API transport: framing, JSON-RPC envelope checks,
 * unix listener and stdio sessions, bounds.
 *
 * The loop runs in the test thread with a small test server (t_request_cb);
 * scenarios speak raw lines over real unix sockets from a second thread and
 * record their first failure, which the test thread asserts after joining.
 * Server-side observations (requests seen, sessions closed) are recorded on
 * the loop thread and asserted after loop_run returns.
 */
#include "client.h"
#include "client_int.h"
#include "loop.h"
#include "testmain.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>

#define FLOOD_CHUNK 16384
#define NCLIENTS 50
#define NREQ 20

struct tctx {
	struct loop *l;
	struct client_srv *srv;
	struct client_ops ops;
	char dir[64];
	char path[100];
	json_t *reqs;   /* [{method, client, id?, params?}] in arrival order */
	json_t *closed; /* [{client, data_ok, queued}] */
	int want_closed;
	bool scen_done;
	void (*scen)(void);
	/* results of calls made by the test server */
	int rc[4];
	struct client *flood_c;
	struct loop_timer *flood_t;
	size_t flood_max;
	int flood_err;
	sem_t flood_closed; /* posted when the flooded session ended */
	int keep_fd[2];     /* connections left open for client_srv_free */
	int close_on_closed; /* an fd closed when a session ends, or -1 */
};

static struct tctx T;
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;
static char fail_msg[1024];

/* ---- the test server ---- */

static bool scen_failed(void);

/* A failed scenario may leave sessions open: stop anyway. */
static void maybe_stop(void)
{
	if (T.scen_done && ((int)json_array_size(T.closed) >= T.want_closed || scen_failed()))
		loop_stop(T.l);
}

static void flood_cb(struct loop_timer *t, void *arg)
{
	static char chunk[FLOOD_CHUNK];

	(void)arg;
	memset(chunk, 'x', sizeof(chunk) - 1);
	for (int i = 0; i < 4; i++) {
		int r = client_notify(T.flood_c, "flood", json_pack("{s:s}", "data", chunk));

		T.flood_max = MAX(T.flood_max, client_queued(T.flood_c));
		if (r < 0) {
			T.flood_err = r;
			T.flood_t = NULL;
			return;
		}
	}
	loop_timer_rearm(t, 0);
}

/* Methods with a behaviour; anything else is -32601. */
static void t_serve(struct client *c, const char *method, json_t *id, json_t *params)
{
	if (!strcmp(method, "echo")) {
		client_set_data(c, &T);
		client_reply(c, id, params ? json_incref(params) : NULL);
	} else if (!strcmp(method, "notify")) {
		client_notify(c, "note", json_pack("{s:i}", "n", 1));
		client_notify(c, "bare", NULL);
		client_reply(c, id, NULL);
	} else if (!strcmp(method, "close")) {
		T.rc[0] = client_reply(c, id, json_pack("{s:b}", "bye", 1));
		client_close(c);
		client_close(c);
		T.rc[1] = client_reply(c, id, NULL);
		T.rc[2] = client_notify(c, "late", json_object());
		T.rc[3] = client_error(c, id, 1, "late");
	} else if (!strcmp(method, "flood")) {
		T.flood_c = c;
		T.flood_t = loop_timer_add(T.l, 0, flood_cb, NULL);
	} else if (!strcmp(method, "big")) {
		char *s = xcalloc(1, 100000);

		memset(s, 'b', 99999);
		T.rc[0] = client_reply(c, id, json_string(s));
		free(s);
		if (T.rc[0] == -EMSGSIZE)
			client_error(c, id, CLIENT_INTERNAL_ERROR, "response too large");
	} else if (!strcmp(method, "badreply")) {
		T.rc[0] = client_reply(c, json_true(), NULL);
		T.rc[1] = client_notify(c, "bad\xff", NULL);
		client_reply(c, id, NULL);
	} else if (!strcmp(method, "hold")) {
		/* Never answered: counts towards the unanswered bound. */
	} else if (!strcmp(method, "longerror")) {
		char s[6001] = { 0 };

		for (int i = 0; i < 3000; i++)
			memcpy(s + 2 * i, "\xc3\xa9", 2); /* é */
		client_error(c, id, 7, "xy%s", s); /* 4095 bytes end inside a character */
	} else {
		client_error(c, id, CLIENT_METHOD_NOT_FOUND, "Method not found: %s", method);
	}
}

static void t_request_cb(struct client *c, const char *method, json_t *id, json_t *params,
			 void *arg)
{
	json_t *rec = json_pack("{s:s, s:I}", "method", method, "client", (json_int_t)client_id(c));

	ck_assert_ptr_eq(arg, &T);
	if (id)
		json_object_set(rec, "id", id);
	if (params)
		json_object_set(rec, "params", params);
	json_array_append_new(T.reqs, rec);
	if (id)
		t_serve(c, method, id, params);
}

static void t_closed_cb(struct client *c, void *arg)
{
	ck_assert_ptr_eq(arg, &T);
	json_array_append_new(T.closed, json_pack("{s:I, s:b, s:I}", "client",
						  (json_int_t)client_id(c), "data_ok",
						  client_get_data(c) == &T, "queued",
						  (json_int_t)client_queued(c)));
	if (c == T.flood_c) {
		if (T.flood_t)
			loop_timer_cancel(T.flood_t);
		T.flood_t = NULL;
		T.flood_c = NULL;
		sem_post(&T.flood_closed);
	}
	/* Lets a reader thread see EOF instead of waiting for lost bytes. */
	T.close_on_closed = safe_close(T.close_on_closed);
	maybe_stop();
}

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	memset(&T, 0, sizeof(T));
	fail_msg[0] = '\0';
	T.l = loop_new();
	ck_assert_ptr_nonnull(T.l);
	T.ops = (struct client_ops){ .request_cb = t_request_cb, .closed_cb = t_closed_cb };
	T.reqs = json_array();
	T.closed = json_array();
	T.keep_fd[0] = T.keep_fd[1] = T.close_on_closed = -1;
	ck_assert_int_eq(sem_init(&T.flood_closed, 0, 0), 0);
	snprintf(T.dir, sizeof(T.dir), "/tmp/tandem-client-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(T.dir));
	snprintf(T.path, sizeof(T.path), "%s/s.sock", T.dir);
}

static void teardown(void)
{
	T.srv = client_srv_free(T.srv);
	T.l = loop_free(T.l);
	unlink(T.path);
	rmdir(T.dir);
	json_decref(T.reqs);
	json_decref(T.closed);
	sem_destroy(&T.flood_closed);
	safe_close(T.keep_fd[0]);
	safe_close(T.keep_fd[1]);
}

static void start_unix(void)
{
	char err[256] = "";
	int r = client_srv_unix(T.l, T.path, &T.ops, &T, &T.srv, err, sizeof(err));

	ck_assert_msg(r == 0, "client_srv_unix: %d %s", r, err);
}

/* ---- scenario side (another thread) ---- */

static void sfail(int line, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sfail(int line, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&fail_lock);
	if (!fail_msg[0]) {
		int n = snprintf(fail_msg, sizeof(fail_msg), "line %d: ", line);

		va_start(ap, fmt);
		vsnprintf(fail_msg + n, sizeof(fail_msg) - (size_t)n, fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&fail_lock);
}

static bool scen_failed(void)
{
	bool failed;

	pthread_mutex_lock(&fail_lock);
	failed = fail_msg[0] != '\0';
	pthread_mutex_unlock(&fail_lock);
	return failed;
}

/* Leaves the calling scenario function on failure. */
#define S_ASSERT(cond)                                                         \
	do {                                                                   \
		if (!(cond)) {                                                 \
			sfail(__LINE__, "%s", #cond);                          \
			return;                                                \
		}                                                              \
	} while (0)

struct conn {
	int fd;
	char *buf;
	size_t len, cap;
	char *line; /* the last line handed out */
};

static int conn_open(struct conn *k)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 60 }; /* only against a hang */

	*k = (struct conn){ .fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0) };
	if (k->fd < 0)
		return -errno;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", T.path);
	setsockopt(k->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(k->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(k->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	return 0;
}

static void conn_close(struct conn *k)
{
	k->fd = safe_close(k->fd);
	free(k->buf);
	free(k->line);
	k->buf = k->line = NULL;
}

static int conn_sendn(struct conn *k, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = send(k->fd, s, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

static int conn_send(struct conn *k, const char *s) { return conn_sendn(k, s, strlen(s)); }

/* One line (without '\n', NUL-terminated, valid until the next call): 1,
 * 0 on EOF, -errno (ECONNRESET also means the server closed). */
static int conn_line(struct conn *k, char **line)
{
	for (;;) {
		char *nl = k->len ? memchr(k->buf, '\n', k->len) : NULL;
		ssize_t n;

		if (nl) {
			size_t ll = (size_t)(nl - k->buf);

			free(k->line);
			k->line = xstrndup(k->buf, ll);
			memmove(k->buf, nl + 1, k->len - ll - 1);
			k->len -= ll + 1;
			*line = k->line;
			return 1;
		}
		if (k->cap - k->len < 65536) {
			k->cap = k->cap * 2 + 65536;
			k->buf = xrealloc(k->buf, k->cap);
		}
		n = recv(k->fd, k->buf + k->len, k->cap - k->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		k->len += (size_t)n;
	}
}

/* The next line as JSON, NULL on EOF or invalid JSON. */
static json_t *conn_json(struct conn *k)
{
	char *line;

	if (conn_line(k, &line) != 1)
		return NULL;
	return json_loads(line, 0, NULL);
}

/* True when the peer has closed: EOF or reset, after any pending lines. */
static bool conn_closed(struct conn *k)
{
	char *line;
	int r;

	while ((r = conn_line(k, &line)) == 1)
		;
	return r == 0 || r == -ECONNRESET;
}

static bool json_matches(json_t *v, const char *expect)
{
	json_t *e = json_loads(expect, 0, NULL);
	bool ok = v && e && json_equal(v, e);

	if (!ok) {
		char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;

		sfail(0, "got %s, expected %s", s ? s : "(nothing)", expect);
		free(s);
	}
	json_decref(e);
	return ok;
}

/* Reads one message and compares it with expect (JSON text). */
static bool expect_msg(struct conn *k, const char *expect)
{
	json_t *v = conn_json(k);
	bool ok = json_matches(v, expect);

	json_decref(v);
	return ok;
}

/* An error reply with this id (JSON text) and code. */
static bool expect_error(struct conn *k, const char *id, int code)
{
	json_t *v = conn_json(k), *e = json_loads(id, JSON_DECODE_ANY, NULL);
	json_t *err = json_object_get(v, "error");
	bool ok = v && json_object_size(v) == 2 && json_equal(json_object_get(v, "id"), e) &&
		  json_integer_value(json_object_get(err, "code")) == code &&
		  json_is_string(json_object_get(err, "message"));

	if (!ok) {
		char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;

		sfail(0, "got %s, expected error %d with id %s", s ? s : "(nothing)", code, id);
		free(s);
	}
	json_decref(v);
	json_decref(e);
	return ok;
}

static void scen_done_cb(void *arg)
{
	(void)arg;
	T.scen_done = true;
	maybe_stop();
}

static void *scen_thread(void *arg)
{
	(void)arg;
	T.scen();
	if (loop_post(T.l, scen_done_cb, NULL) < 0)
		sfail(__LINE__, "loop_post failed");
	return NULL;
}

/* Runs fn in a second thread while the loop serves; returns when fn is done
 * and at least want_closed sessions have ended. */
static void run_scenario(void (*fn)(void), int want_closed)
{
	pthread_t th;

	T.scen = fn;
	T.want_closed = want_closed;
	ck_assert_int_eq(pthread_create(&th, NULL, scen_thread, NULL), 0);
	ck_assert_int_eq(loop_run(T.l), 0);
	pthread_join(th, NULL);
	ck_assert_msg(!fail_msg[0], "%s", fail_msg);
}

static bool has_prefix(const char *s, const char *prefix)
{
	if (!strncmp(s, prefix, strlen(prefix)))
		return true;
	sfail(0, "got %s, expected a line starting with %s", s, prefix);
	return false;
}

static json_t *req(size_t i) { return json_array_get(T.reqs, i); }

/* v equals the JSON text. */
static bool jeq(json_t *v, const char *text)
{
	json_t *e = json_loads(text, JSON_DECODE_ANY, NULL);
	bool ok = e && v && json_equal(v, e);

	json_decref(e);
	return ok;
}

/* ---- framing and envelope ---- */

static void scen_request_reply(void)
{
	struct conn k;
	char *line;

	S_ASSERT(conn_open(&k) == 0);
	S_ASSERT(conn_send(&k, "{\"id\":1,\"method\":\"echo\","
			       "\"params\":{\"a\":[1,\"x\"]}}\n") == 0);
	S_ASSERT(conn_line(&k, &line) == 1);
	S_ASSERT(!strcmp(line, "{\"id\":1,\"result\":{\"a\":[1,\"x\"]}}"));
	/* CRLF framing, no params -> {} */
	S_ASSERT(conn_send(&k, "{\"id\":2,\"method\":\"echo\"}\r\n") == 0);
	S_ASSERT(conn_line(&k, &line) == 1);
	S_ASSERT(!strcmp(line, "{\"id\":2,\"result\":{}}"));
	conn_close(&k);
}

START_TEST(request_reply)
{
	start_unix();
	run_scenario(scen_request_reply, 1);
	ck_assert_int_eq(json_array_size(T.reqs), 2);
	ck_assert_str_eq(json_string_value(json_object_get(req(0), "method")), "echo");
	ck_assert_int_eq(json_integer_value(json_object_get(req(0), "id")), 1);
	ck_assert(jeq(json_object_get(req(0), "params"), "{\"a\":[1,\"x\"]}"));
	ck_assert_ptr_null(json_object_get(req(1), "params"));
}
END_TEST

static void scen_notification(void)
{
	struct conn k;

	S_ASSERT(conn_open(&k) == 0);
	/* A notification gets no answer: the next line is the reply to id 2. */
	S_ASSERT(conn_send(&k, "{\"method\":\"echo\",\"params\":[1]}\n"
			       "{\"method\":\"initialized\",\"params\":null}\n"
			       "{\"id\":2,\"method\":\"echo\",\"params\":null}\n") == 0);
	S_ASSERT(expect_msg(&k, "{\"id\":2,\"result\":{}}"));
	conn_close(&k);
}

START_TEST(notification_has_no_id_and_no_reply)
{
	start_unix();
	run_scenario(scen_notification, 1);
	ck_assert_int_eq(json_array_size(T.reqs), 3);
	ck_assert_ptr_null(json_object_get(req(0), "id"));
	ck_assert(jeq(json_object_get(req(0), "params"), "[1]"));
	ck_assert_str_eq(json_string_value(json_object_get(req(1), "method")), "initialized");
	ck_assert_ptr_null(json_object_get(req(1), "id"));
	ck_assert_ptr_null(json_object_get(req(1), "params")); /* null -> NULL */
	ck_assert_ptr_null(json_object_get(req(2), "params"));
}
END_TEST

static void scen_ids(void)
{
	struct conn k;
	char *line;

	S_ASSERT(conn_open(&k) == 0);
	S_ASSERT(conn_send(&k, "{\"id\":0,\"method\":\"echo\"}\n") == 0);
	S_ASSERT(conn_line(&k, &line) == 1);
	S_ASSERT(!strcmp(line, "{\"id\":0,\"result\":{}}"));
	S_ASSERT(conn_send(&k, "{\"id\":\"a\\\"b\",\"method\":\"echo\"}\n") == 0);
	S_ASSERT(conn_line(&k, &line) == 1);
	S_ASSERT(!strcmp(line, "{\"id\":\"a\\\"b\",\"result\":{}}"));
	S_ASSERT(conn_send(&k, "{\"id\":-9223372036854775808,\"method\":\"echo\"}\n") == 0);
	S_ASSERT(expect_msg(&k, "{\"id\":-9223372036854775808,\"result\":{}}"));
	S_ASSERT(conn_send(&k, "{\"id\":\"\",\"method\":\"echo\"}\n") == 0);
	S_ASSERT(expect_msg(&k, "{\"id\":\"\",\"result\":{}}"));
	conn_close(&k);
}

START_TEST(ids_zero_string_and_extremes)
{
	start_unix();
	run_scenario(scen_ids, 1);
	ck_assert_int_eq(json_array_size(T.reqs), 4);
	ck_assert(json_is_integer(json_object_get(req(0), "id")));
	ck_assert_int_eq(json_integer_value(json_object_get(req(0), "id")), 0);
	ck_assert_str_eq(json_string_value(json_object_get(req(1), "id")), "a\"b");
}
END_TEST

static void scen_jsonrpc_field(void)
{
	struct conn k;
	char *line;

	S_ASSERT(conn_open(&k) == 0);
	S_ASSERT(conn_send(&k, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"echo\","
			       "\"params\":{}}\n") == 0);
	S_ASSERT(conn_line(&k, &line) == 1);
	S_ASSERT(!strcmp(line, "{\"id\":5,\"result\":{}}"));
	S_ASSERT(conn_send(&k, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"notify\"}\n") == 0);
	S_ASSERT(conn_line(&k, &line) == 1);
	S_ASSERT(!strcmp(line, "{\"method\":\"note\",\"params\":{\"n\":1}}"));
	S_ASSERT(conn_line(&k, &line) == 1);
	S_ASSERT(!strcmp(line, "{\"method\":\"bare\"}"));
	S_ASSERT(conn_line(&k, &line) == 1);
	S_ASSERT(!strcmp(line, "{\"id\":6,\"result\":{}}"));
	S_ASSERT(conn_send(&k, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"nope\"}\n") == 0);
	S_ASSERT(conn_line(&k, &line) == 1);
	S_ASSERT(!strcmp(line, "{\"id\":7,\"error\":{\"code\":-32601,\"message\":"
			       "\"Method not found: nope\"}}"));
	conn_close(&k);
}

START_TEST(jsonrpc_field_accepted_never_written)
{
	start_unix();
	run_scenario(scen_jsonrpc_field, 1);
	ck_assert_int_eq(json_array_size(T.reqs), 3);
}
END_TEST

static void scen_parse_error(void)
{
	struct conn k;
	char *line;

	S_ASSERT(conn_open(&k) == 0);
	S_ASSERT(conn_send(&k, "{not json\n") == 0);
	S_ASSERT(conn_line(&k, &line) == 1);
	S_ASSERT(has_prefix(line, "{\"id\":null,\"error\":{\"code\":-32700,\"message\":"
				  "\"Parse error at column "));
	/* The session goes on. */
	S_ASSERT(conn_send(&k, "{\"id\":1,\"method\":\"echo\"}\n") == 0);
	S_ASSERT(expect_msg(&k, "{\"id\":1,\"result\":{}}"));
	conn_close(&k);
}

START_TEST(parse_error_keeps_session)
{
	start_unix();
	run_scenario(scen_parse_error, 1);
	ck_assert_int_eq(json_array_size(T.reqs), 1);
}
END_TEST

static void scen_invalid_requests(void)
{
	static const struct {
		const char *line, *id;
	} cases[] = {
		{ "[1,2]", "null" },
		{ "[{\"id\":1,\"method\":\"echo\"}]", "null" }, /* batch */
		{ "42", "null" },
		{ "\"str\"", "null" },
		{ "null", "null" },
		{ "{}", "null" },
		{ "{\"id\":7}", "7" },
		{ "{\"id\":\"s\",\"params\":{}}", "\"s\"" },
		{ "{\"id\":8,\"method\":5}", "8" },
		{ "{\"id\":9,\"method\":null}", "9" },
		{ "{\"method\":[\"x\"]}", "null" },
		{ "{\"id\":1.5,\"method\":\"echo\"}", "null" },
		{ "{\"id\":true,\"method\":\"echo\"}", "null" },
		{ "{\"id\":null,\"method\":\"echo\"}", "null" },
		{ "{\"id\":{},\"method\":\"echo\"}", "null" },
		{ "{\"id\":[1],\"method\":\"echo\"}", "null" },
	};
	struct conn k;

	S_ASSERT(conn_open(&k) == 0);
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		S_ASSERT(conn_send(&k, cases[i].line) == 0 && conn_send(&k, "\n") == 0);
		if (!expect_error(&k, cases[i].id, CLIENT_INVALID_REQUEST)) {
			sfail(__LINE__, "case %zu: %s", i, cases[i].line);
			return;
		}
	}
	S_ASSERT(conn_send(&k, "{\"id\":1,\"method\":\"echo\"}\n") == 0);
	S_ASSERT(expect_msg(&k, "{\"id\":1,\"result\":{}}"));
	conn_close(&k);
}

START_TEST(invalid_requests_answered_with_32600)
{
	start_unix();
	run_scenario(scen_invalid_requests, 1);
	/* Only the final echo reached the server. */
	ck_assert_int_eq(json_array_size(T.reqs), 1);
}
END_TEST

static void scen_responses_ignored(void)
{
	struct conn k;

	S_ASSERT(conn_open(&k) == 0);
	S_ASSERT(conn_send(&k, "{\"id\":3,\"result\":{}}\n"
			       "{\"id\":4,\"error\":{\"code\":1,\"message\":\"x\"}}\n"
			       "{\"id\":null,\"error\":{\"code\":-32700,\"message\":\"x\"}}\n"
			       "{\"jsonrpc\":\"2.0\",\"id\":\"r\",\"result\":null}\n"
			       "\n   \r\n\t\n"
			       "{\"id\":9,\"method\":\"echo\"}\n") == 0);
	S_ASSERT(expect_msg(&k, "{\"id\":9,\"result\":{}}"));
	conn_close(&k);
}

START_TEST(responses_and_empty_lines_ignored)
{
	start_unix();
	run_scenario(scen_responses_ignored, 1);
	ck_assert_int_eq(json_array_size(T.reqs), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(req(0), "id")), 9);
}
END_TEST

static void scen_hostile(void)
{
	static const char *lines[] = {
		"\xff\xfe\xfd",
		"{\"id\":1,\"method\":\"echo\",\"id\":2}",          /* duplicate key */
		"{\"method\":\"echo\",\"id\":99999999999999999999999}", /* int overflow */
		"{\"id\":\"\\u0000\",\"method\":\"x\"}",              /* NUL in a string */
		"{} {}",
		"nul",
		"{\"id\":1,\"method\":\"\xc3\"}", /* cut UTF-8 */
	};
	struct conn k;
	char *deep = xmalloc(100002);

	memset(deep, '[', 100000);
	memcpy(deep + 100000, "\n", 2);
	S_ASSERT(conn_open(&k) == 0);
	for (size_t i = 0; i < ARRAY_SIZE(lines); i++) {
		S_ASSERT(conn_send(&k, lines[i]) == 0 && conn_send(&k, "\n") == 0);
		if (!expect_error(&k, "null", CLIENT_PARSE_ERROR)) {
			sfail(__LINE__, "case %zu", i);
			free(deep);
			return;
		}
	}
	S_ASSERT(conn_sendn(&k, "\0\x01\n", 3) == 0);
	S_ASSERT(expect_error(&k, "null", CLIENT_PARSE_ERROR));
	S_ASSERT(conn_send(&k, deep) == 0);
	free(deep);
	S_ASSERT(expect_error(&k, "null", CLIENT_PARSE_ERROR));
	S_ASSERT(conn_send(&k, "{\"id\":1,\"method\":\"echo\",\"params\":\"still here\"}\n") == 0);
	S_ASSERT(expect_msg(&k, "{\"id\":1,\"result\":\"still here\"}"));
	conn_close(&k);
}

START_TEST(hostile_lines_get_parse_errors_and_server_lives)
{
	start_unix();
	run_scenario(scen_hostile, 1);
	ck_assert_int_eq(json_array_size(T.reqs), 1);
}
END_TEST

static void scen_server_calls(void)
{
	struct conn k;
	json_t *v;
	const char *msg;

	S_ASSERT(conn_open(&k) == 0);
	S_ASSERT(conn_send(&k, "{\"id\":1,\"method\":\"badreply\"}\n") == 0);
	S_ASSERT(expect_msg(&k, "{\"id\":1,\"result\":{}}"));
	S_ASSERT(conn_send(&k, "{\"id\":2,\"method\":\"longerror\"}\n") == 0);
	v = conn_json(&k); /* jansson rejects invalid UTF-8 */
	S_ASSERT(v);
	msg = json_string_value(json_object_get(json_object_get(v, "error"), "message"));
	S_ASSERT(msg && !strncmp(msg, "xy\xc3\xa9", 4));
	S_ASSERT(strlen(msg) == 2 + 2 * 2046); /* cut before the split character */
	json_decref(v);
	conn_close(&k);
}

START_TEST(server_call_errors_and_message_cut)
{
	start_unix();
	run_scenario(scen_server_calls, 1);
	ck_assert_int_eq(T.rc[0], -EINVAL); /* id true */
	ck_assert_int_eq(T.rc[1], -EINVAL); /* method not UTF-8 */
}
END_TEST

/* ---- bounds ---- */

static void scen_overlong_small(void)
{
	struct conn k;
	char line[1100];

	/* Exactly max_line bytes is fine. */
	memset(line, ' ', 1024);
	memcpy(line, "{\"id\":1,\"method\":\"echo\"}", 24);
	memcpy(line + 1024, "\n", 2);
	S_ASSERT(conn_open(&k) == 0);
	S_ASSERT(conn_send(&k, line) == 0);
	S_ASSERT(expect_msg(&k, "{\"id\":1,\"result\":{}}"));
	/* One more byte is not, even before its '\n' arrives. */
	line[1024] = ' ';
	line[1025] = '\0';
	S_ASSERT(conn_send(&k, line) == 0);
	S_ASSERT(expect_error(&k, "null", CLIENT_INVALID_REQUEST));
	S_ASSERT(conn_closed(&k));
	conn_close(&k);
}

START_TEST(overlong_line_answered_then_closed)
{
	T.ops.max_line = 1024;
	start_unix();
	run_scenario(scen_overlong_small, 1);
	ck_assert_int_eq(json_array_size(T.reqs), 1);
	ck_assert_int_eq(client_srv_count(T.srv), 0);
}
END_TEST

static void scen_overlong_default(void)
{
	size_t n = CLIENT_MAX_LINE + 2;
	char *big = xmalloc(n);
	struct conn k;

	memset(big, ' ', n);
	big[n - 1] = '\n';
	S_ASSERT(conn_open(&k) == 0);
	/* The server stops reading midway: the rest may not be accepted. */
	(void)conn_sendn(&k, big, n);
	free(big);
	S_ASSERT(expect_error(&k, "null", CLIENT_INVALID_REQUEST));
	S_ASSERT(conn_closed(&k));
	conn_close(&k);
}

START_TEST(overlong_line_default_bound)
{
	start_unix();
	run_scenario(scen_overlong_default, 1);
	ck_assert_int_eq(json_array_size(T.reqs), 0);
}
END_TEST

static void scen_big_reply(void)
{
	struct conn k;

	S_ASSERT(conn_open(&k) == 0);
	S_ASSERT(conn_send(&k, "{\"id\":1,\"method\":\"big\"}\n") == 0);
	S_ASSERT(expect_error(&k, "1", CLIENT_INTERNAL_ERROR));
	S_ASSERT(conn_send(&k, "{\"id\":2,\"method\":\"echo\"}\n") == 0);
	S_ASSERT(expect_msg(&k, "{\"id\":2,\"result\":{}}"));
	conn_close(&k);
}

START_TEST(message_over_output_bound_is_refused_not_fatal)
{
	T.ops.max_output = 65536;
	start_unix();
	run_scenario(scen_big_reply, 1);
	ck_assert_int_eq(T.rc[0], -EMSGSIZE);
}
END_TEST

/* A reply refused as too large answered nothing: the error sent in its
 * place is the one answer counted, so the unanswered bound stays exact. */
static void scen_big_reply_counts_once(void)
{
	struct conn k;

	S_ASSERT(conn_open(&k) == 0);
	S_ASSERT(conn_send(&k, "{\"id\":1,\"method\":\"hold\"}\n") == 0);
	S_ASSERT(conn_send(&k, "{\"id\":2,\"method\":\"big\"}\n") == 0);
	S_ASSERT(expect_error(&k, "2", CLIENT_INTERNAL_ERROR));
	S_ASSERT(conn_send(&k, "{\"id\":3,\"method\":\"hold\"}\n") == 0);
	/* 1 and 3 wait: a third is over the bound of 2. */
	S_ASSERT(conn_send(&k, "{\"id\":4,\"method\":\"hold\"}\n") == 0);
	S_ASSERT(expect_error(&k, "4", CLIENT_OVERLOADED));
	conn_close(&k);
}

START_TEST(refused_big_reply_is_answered_once)
{
	T.ops.max_output = 65536;
	T.ops.max_unanswered = 2;
	start_unix();
	run_scenario(scen_big_reply_counts_once, 1);
	ck_assert_int_eq(T.rc[0], -EMSGSIZE);
}
END_TEST

static void scen_slow_consumer(void)
{
	struct conn a, b;

	S_ASSERT(conn_open(&a) == 0);
	S_ASSERT(conn_send(&a, "{\"id\":1,\"method\":\"flood\"}\n") == 0);
	/* Another session is served while a never reads. */
	S_ASSERT(conn_open(&b) == 0);
	for (int i = 0; i < 10; i++) {
		S_ASSERT(conn_send(&b, "{\"id\":1,\"method\":\"echo\"}\n") == 0);
		S_ASSERT(expect_msg(&b, "{\"id\":1,\"result\":{}}"));
	}
	/* Wait for the server to drop a before a reads anything. */
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 60; /* only against a hang */
	S_ASSERT(sem_timedwait(&T.flood_closed, &ts) == 0);
	/* After what the kernel buffered, a sees the end. */
	S_ASSERT(conn_closed(&a));
	conn_close(&a);
	conn_close(&b);
}

START_TEST(slow_consumer_disconnected_at_bound)
{
	T.ops.max_output = 256 * 1024;
	start_unix();
	run_scenario(scen_slow_consumer, 2);
	ck_assert_int_eq(T.flood_err, -ENOBUFS);
	ck_assert_uint_le(T.flood_max, 256 * 1024);
	/* The queue was really used up to (nearly) the bound. */
	ck_assert_uint_gt(T.flood_max, 256 * 1024 - 2 * FLOOD_CHUNK);
	ck_assert_ptr_null(T.flood_c);
	/* The first session to end is the flooded one. */
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(T.closed, 0), "client")),
			 json_integer_value(json_object_get(req(0), "client")));
}
END_TEST

static void *many_worker(void *arg)
{
	int t = (int)(intptr_t)arg;
	char buf[128];
	struct conn k;

	if (conn_open(&k) < 0) {
		sfail(__LINE__, "worker %d: connect", t);
		return NULL;
	}
	for (int j = 0; j < NREQ; j++) { /* pipelined */
		snprintf(buf, sizeof(buf),
			 "{\"id\":\"%d-%d\",\"method\":\"echo\",\"params\":{\"t\":%d,\"j\":%d}}\n",
			 t, j, t, j);
		if (conn_send(&k, buf) < 0)
			sfail(__LINE__, "worker %d: send", t);
	}
	for (int j = 0; j < NREQ; j++) {
		snprintf(buf, sizeof(buf), "{\"id\":\"%d-%d\",\"result\":{\"t\":%d,\"j\":%d}}",
			 t, j, t, j);
		if (!expect_msg(&k, buf))
			break;
	}
	conn_close(&k);
	return NULL;
}

static void scen_many(void)
{
	pthread_t th[NCLIENTS];

	for (intptr_t i = 0; i < NCLIENTS; i++)
		S_ASSERT(pthread_create(&th[i], NULL, many_worker, (void *)i) == 0);
	for (int i = 0; i < NCLIENTS; i++)
		pthread_join(th[i], NULL);
}

START_TEST(many_concurrent_clients)
{
	json_int_t owner[NCLIENTS] = { 0 };
	size_t i;
	json_t *r;

	start_unix();
	run_scenario(scen_many, NCLIENTS);
	ck_assert_int_eq(json_array_size(T.reqs), NCLIENTS * NREQ);
	ck_assert_int_eq(json_array_size(T.closed), NCLIENTS);
	/* Each worker's requests all arrived on one session of its own. */
	json_array_foreach(T.reqs, i, r) {
		int t = (int)json_integer_value(json_object_get(json_object_get(r, "params"), "t"));
		json_int_t cid = json_integer_value(json_object_get(r, "client"));

		ck_assert(t >= 0 && t < NCLIENTS && cid > 0);
		if (!owner[t])
			owner[t] = cid;
		ck_assert_int_eq(owner[t], cid);
	}
	for (int a = 0; a < NCLIENTS; a++)
		for (int b = a + 1; b < NCLIENTS; b++)
			ck_assert_int_ne(owner[a], owner[b]);
}
END_TEST

static void scen_session_cap(void)
{
	struct conn a, b, c;

	S_ASSERT(conn_open(&a) == 0);
	S_ASSERT(conn_send(&a, "{\"id\":1,\"method\":\"echo\"}\n") == 0);
	S_ASSERT(expect_msg(&a, "{\"id\":1,\"result\":{}}"));
	S_ASSERT(conn_open(&b) == 0);
	S_ASSERT(conn_send(&b, "{\"id\":1,\"method\":\"echo\"}\n") == 0);
	S_ASSERT(expect_msg(&b, "{\"id\":1,\"result\":{}}"));
	S_ASSERT(conn_open(&c) == 0);
	S_ASSERT(expect_error(&c, "null", CLIENT_OVERLOADED));
	S_ASSERT(conn_closed(&c));
	conn_close(&c);
	S_ASSERT(conn_send(&a, "{\"id\":2,\"method\":\"echo\"}\n") == 0);
	S_ASSERT(expect_msg(&a, "{\"id\":2,\"result\":{}}"));
	/* Below the cap again: a new session is accepted. */
	conn_close(&b);
	for (;;) {
		S_ASSERT(conn_open(&c) == 0);
		S_ASSERT(conn_send(&c, "{\"id\":3,\"method\":\"echo\"}\n") == 0);
		json_t *v = conn_json(&c);
		bool refused = json_object_get(v, "error") != NULL;

		if (!refused)
			S_ASSERT(json_matches(v, "{\"id\":3,\"result\":{}}"));
		json_decref(v);
		conn_close(&c);
		if (!refused)
			break;
		/* b's end may not have been seen yet: ask again after a round trip. */
		S_ASSERT(conn_send(&a, "{\"id\":4,\"method\":\"echo\"}\n") == 0);
		S_ASSERT(expect_msg(&a, "{\"id\":4,\"result\":{}}"));
	}
	conn_close(&a);
}

START_TEST(session_cap_refuses_with_overloaded)
{
	T.ops.max_sessions = 2;
	start_unix();
	run_scenario(scen_session_cap, 3);
}
END_TEST

/* ---- session end ---- */

static void scen_disconnect(void)
{
	struct conn k;

	S_ASSERT(conn_open(&k) == 0);
	S_ASSERT(conn_send(&k, "{\"id\":1,\"method\":\"echo\"}\n") == 0);
	S_ASSERT(expect_msg(&k, "{\"id\":1,\"result\":{}}"));
	conn_close(&k);
}

START_TEST(closed_cb_on_disconnect)
{
	json_t *c;

	start_unix();
	run_scenario(scen_disconnect, 1);
	ck_assert_int_eq(json_array_size(T.closed), 1);
	c = json_array_get(T.closed, 0);
	ck_assert_int_eq(json_integer_value(json_object_get(c, "client")),
			 json_integer_value(json_object_get(req(0), "client")));
	ck_assert(json_is_true(json_object_get(c, "data_ok")));
	ck_assert_int_eq(client_srv_count(T.srv), 0);
}
END_TEST

static void scen_server_close(void)
{
	struct conn k;

	S_ASSERT(conn_open(&k) == 0);
	S_ASSERT(conn_send(&k, "{\"id\":1,\"method\":\"close\"}\n") == 0);
	S_ASSERT(expect_msg(&k, "{\"id\":1,\"result\":{\"bye\":true}}"));
	S_ASSERT(conn_closed(&k));
	conn_close(&k);
}

START_TEST(client_close_from_request_cb)
{
	start_unix();
	run_scenario(scen_server_close, 1);
	ck_assert_int_eq(T.rc[0], 0);
	ck_assert_int_eq(T.rc[1], -EPIPE);
	ck_assert_int_eq(T.rc[2], -EPIPE);
	ck_assert_int_eq(T.rc[3], -EPIPE);
	ck_assert_int_eq(json_array_size(T.closed), 1);
}
END_TEST

static void scen_two_sessions(void)
{
	struct conn a, b;

	S_ASSERT(conn_open(&a) == 0 && conn_open(&b) == 0);
	S_ASSERT(conn_send(&a, "{\"id\":1,\"method\":\"echo\"}\n") == 0);
	S_ASSERT(conn_send(&b, "{\"id\":1,\"method\":\"echo\"}\n") == 0);
	S_ASSERT(expect_msg(&a, "{\"id\":1,\"result\":{}}"));
	S_ASSERT(expect_msg(&b, "{\"id\":1,\"result\":{}}"));
	/* The sessions stay open: client_srv_free must end them. */
	T.keep_fd[0] = a.fd;
	T.keep_fd[1] = b.fd;
	free(a.buf);
	free(a.line);
	free(b.buf);
	free(b.line);
}

START_TEST(srv_free_ends_sessions_and_unlinks)
{
	struct stat st;

	start_unix();
	run_scenario(scen_two_sessions, 0);
	ck_assert_int_eq(json_array_size(T.closed), 0);
	ck_assert_int_eq(client_srv_count(T.srv), 2);
	T.srv = client_srv_free(T.srv);
	ck_assert_int_eq(json_array_size(T.closed), 2);
	ck_assert_int_eq(lstat(T.path, &st), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

/* ---- unix socket path handling ---- */

START_TEST(unix_refuses_non_socket_path)
{
	char err[256] = "";
	struct stat st;
	int fd = open(T.path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "keep", 4), 4);
	close(fd);
	ck_assert_int_eq(client_srv_unix(T.l, T.path, &T.ops, &T, &T.srv, err, sizeof(err)),
			 -EEXIST);
	ck_assert_ptr_null(T.srv);
	ck_assert_ptr_nonnull(strstr(err, "not a socket"));
	ck_assert_int_eq(stat(T.path, &st), 0);
	ck_assert(S_ISREG(st.st_mode) && st.st_size == 4);
}
END_TEST

START_TEST(unix_replaces_stale_socket_mode_0600)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct stat st;
	mode_t old;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", T.path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd); /* the file stays behind, nobody listens */
	old = umask(0);
	start_unix();
	umask(old);
	ck_assert_int_eq(lstat(T.path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_int_eq(st.st_mode & 07777, 0600);
}
END_TEST

START_TEST(unix_refuses_live_socket)
{
	struct client_srv *second = NULL;
	char err[256] = "";
	struct stat before, after;

	start_unix();
	ck_assert_int_eq(lstat(T.path, &before), 0);
	ck_assert_int_eq(client_srv_unix(T.l, T.path, &T.ops, &T, &second, err, sizeof(err)),
			 -EADDRINUSE);
	ck_assert_ptr_null(second);
	ck_assert_ptr_nonnull(strstr(err, "another server"));
	ck_assert_int_eq(lstat(T.path, &after), 0);
	ck_assert_int_eq(before.st_ino, after.st_ino);
}
END_TEST

START_TEST(unix_free_keeps_a_replaced_path)
{
	struct stat st;
	int fd;

	start_unix();
	ck_assert_int_eq(unlink(T.path), 0);
	fd = open(T.path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	T.srv = client_srv_free(T.srv);
	ck_assert_int_eq(stat(T.path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
}
END_TEST

START_TEST(unix_path_too_long)
{
	char path[200], err[256] = "";

	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	ck_assert_int_eq(client_srv_unix(T.l, path, &T.ops, &T, &T.srv, err, sizeof(err)),
			 -ENAMETOOLONG);
	ck_assert_int_eq(client_srv_unix(T.l, "", &T.ops, &T, &T.srv, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_null(T.srv);
}
END_TEST

/* ---- stdio ---- */

/* Everything readable on fd (non-blocking) after the loop ran. */
static char *drain_fd(int fd)
{
	size_t len = 0, cap = 65536;
	char *buf = xmalloc(cap);
	ssize_t n;

	ck_assert_int_eq(fd_set_nonblock(fd), 0);
	while ((n = read(fd, buf + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (cap - len < 2)
			buf = xrealloc(buf, cap *= 2);
	}
	buf[len] = '\0';
	return buf;
}

static const char stdio_input[] = "{\"id\":1,\"method\":\"echo\",\"params\":[1]}\n"
				  "{\"method\":\"echo\"}\n"
				  "garbage\n"
				  "{\"id\":2,\"method\":\"echo\"}"; /* no '\n' before EOF */

/* The three answers to stdio_input, byte for byte where we own the text. */
static void check_stdio_output(const char *got)
{
	const char *l1 = "{\"id\":1,\"result\":[1]}\n";
	const char *l2 = "{\"id\":null,\"error\":{\"code\":-32700,\"message\":\"Parse error";
	const char *l3 = "{\"id\":2,\"result\":{}}\n";
	const char *p = got, *nl;

	ck_assert_msg(!strncmp(p, l1, strlen(l1)), "got %s", got);
	p += strlen(l1);
	ck_assert_msg(!strncmp(p, l2, strlen(l2)), "got %s", got);
	nl = strchr(p, '\n');
	ck_assert_ptr_nonnull(nl);
	ck_assert_str_eq(nl + 1, l3);
}

static void run_stdio(int in_fd, int out_fd)
{
	T.scen_done = true;
	T.want_closed = 1;
	ck_assert_int_eq(client_srv_stdio(T.l, in_fd, out_fd, &T.ops, &T, &T.srv), 0);
	ck_assert_int_eq(client_srv_count(T.srv), 1);
	ck_assert_int_eq(loop_run(T.l), 0);
	ck_assert_int_eq(json_array_size(T.closed), 1);
	ck_assert_int_eq(client_srv_count(T.srv), 0);
	ck_assert_int_eq(json_array_size(T.reqs), 3);
}

START_TEST(stdio_pipes_eof_ends_session)
{
	int in[2], out[2];
	char *got;

	ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
	ck_assert_int_eq(write(in[1], stdio_input, sizeof(stdio_input) - 1),
			 (ssize_t)sizeof(stdio_input) - 1);
	close(in[1]);
	run_stdio(in[0], out[1]);
	T.srv = client_srv_free(T.srv);
	/* The caller's fds: still open, blocking again. */
	ck_assert_int_eq(fcntl(in[0], F_GETFL) & O_NONBLOCK, 0);
	ck_assert_int_eq(fcntl(out[1], F_GETFL) & O_NONBLOCK, 0);
	close(out[1]);
	got = drain_fd(out[0]);
	check_stdio_output(got);
	free(got);
	close(in[0]);
	close(out[0]);
}
END_TEST

START_TEST(stdio_one_socket_both_ways)
{
	int sp[2];
	char *got;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
	ck_assert_int_eq(write(sp[1], stdio_input, sizeof(stdio_input) - 1),
			 (ssize_t)sizeof(stdio_input) - 1);
	ck_assert_int_eq(shutdown(sp[1], SHUT_WR), 0);
	run_stdio(sp[0], sp[0]);
	T.srv = client_srv_free(T.srv);
	ck_assert_int_ne(fcntl(sp[0], F_GETFD), -1);
	close(sp[0]);
	got = drain_fd(sp[1]);
	check_stdio_output(got);
	free(got);
	close(sp[1]);
}
END_TEST

START_TEST(stdio_regular_files)
{
	char inp[128], outp[128];
	int in, out;
	char *got;

	snprintf(inp, sizeof(inp), "%s/in", T.dir);
	snprintf(outp, sizeof(outp), "%s/out", T.dir);
	in = open(inp, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	out = open(outp, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	ck_assert(in >= 0 && out >= 0);
	ck_assert_int_eq(write(in, stdio_input, strlen(stdio_input)), (ssize_t)strlen(stdio_input));
	ck_assert_int_eq(lseek(in, 0, SEEK_SET), 0);
	run_stdio(in, out);
	T.srv = client_srv_free(T.srv);
	ck_assert_int_eq(lseek(out, 0, SEEK_SET), 0);
	got = drain_fd(out);
	check_stdio_output(got);
	free(got);
	close(in);
	close(out);
	unlink(inp);
	unlink(outp);
}
END_TEST

struct reader {
	int fd;
	int lines;
	size_t bytes;
};

/* Reads out until 3 complete lines arrived, then tells the loop. */
static void *pipe_reader(void *arg)
{
	struct reader *r = arg;
	char buf[8192];

	while (r->lines < 3) {
		ssize_t n = read(r->fd, buf, sizeof(buf));

		if (n <= 0)
			break;
		r->bytes += (size_t)n;
		for (ssize_t i = 0; i < n; i++)
			r->lines += buf[i] == '\n';
	}
	loop_post(T.l, scen_done_cb, NULL);
	return NULL;
}

START_TEST(stdio_eof_flushes_queued_output_first)
{
	struct reader rd = { 0 };
	size_t big = 20000, expect = 0;
	char *line = xmalloc(big + 64);
	int in[2], out[2];
	pthread_t th;

	ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
	ck_assert_int_eq(fcntl(out[1], F_SETPIPE_SZ, 4096), 4096);
	for (int i = 0; i < 3; i++) {
		int n = snprintf(line, big + 64,
				 "{\"id\":%d,\"method\":\"echo\",\"params\":\"%0*d\"}\n", i,
				 (int)big, 0);

		ck_assert_int_eq(write(in[1], line, (size_t)n), n);
		expect += strlen("{\"id\":0,\"result\":\"\"}\n") + big;
	}
	free(line);
	close(in[1]); /* EOF while replies are still queued */
	ck_assert_int_eq(client_srv_stdio(T.l, in[0], out[1], &T.ops, &T, &T.srv), 0);
	rd.fd = out[0];
	T.want_closed = 1;
	T.close_on_closed = out[1];
	ck_assert_int_eq(pthread_create(&th, NULL, pipe_reader, &rd), 0);
	ck_assert_int_eq(loop_run(T.l), 0);
	pthread_join(th, NULL);
	ck_assert_int_eq(rd.lines, 3);
	ck_assert_uint_eq(rd.bytes, expect);
	ck_assert_int_eq(json_array_size(T.closed), 1);
	/* closed_cb came only once everything was written. */
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(T.closed, 0), "queued")),
			 0);
	close(in[0]);
	close(out[0]);
}
END_TEST

START_TEST(stdio_output_reader_gone_ends_session)
{
	int in[2], out[2];

	ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
	close(out[0]);
	ck_assert_int_eq(write(in[1], "{\"id\":1,\"method\":\"echo\"}\n", 26), 26);
	T.scen_done = true;
	T.want_closed = 1;
	ck_assert_int_eq(client_srv_stdio(T.l, in[0], out[1], &T.ops, &T, &T.srv), 0);
	ck_assert_int_eq(loop_run(T.l), 0);
	ck_assert_int_eq(json_array_size(T.closed), 1);
	close(in[0]);
	close(in[1]);
	close(out[1]);
}
END_TEST

START_TEST(stdio_bad_arguments)
{
	struct client_ops none = { 0 };

	ck_assert_int_eq(client_srv_stdio(T.l, -1, 1, &T.ops, &T, &T.srv), -EINVAL);
	ck_assert_int_eq(client_srv_stdio(T.l, 0, 1, &none, &T, &T.srv), -EINVAL);
	ck_assert_ptr_null(T.srv);
}
END_TEST

/* ---- the bounds on parsing, unanswered requests, WebSocket ---- */

static int scan(const char *s) { return client_prescan(s, strlen(s)); }

START_TEST(prescan_counts_nodes_and_depth)
{
	char *p;
	size_t n;

	ck_assert_int_eq(scan("{\"id\":1,\"method\":\"x\",\"params\":[1,true,null]}"), 0);
	/* strings with escaped quotes and brackets are one value each */
	ck_assert_int_eq(scan("[\"a\\\"[[[{\",\"]]]\"]"), 0);
	/* CLIENT_MAX_DEPTH levels pass, one more does not */
	static char deep[2 * CLIENT_MAX_DEPTH + 2];

	memset(deep, '[', CLIENT_MAX_DEPTH);
	memset(deep + CLIENT_MAX_DEPTH, ']', CLIENT_MAX_DEPTH);
	ck_assert_int_eq(client_prescan(deep, 2 * CLIENT_MAX_DEPTH), 0);
	memset(deep, '[', CLIENT_MAX_DEPTH + 1);
	ck_assert_int_eq(client_prescan(deep, CLIENT_MAX_DEPTH + 1), -ELOOP);
	/* CLIENT_MAX_NODES values pass ([] holds MAX-1 numbers), one more not */
	n = 2 * CLIENT_MAX_NODES + 2;
	p = xmalloc(n);
	p[0] = '[';
	for (size_t i = 0; i < CLIENT_MAX_NODES - 1; i++)
		memcpy(p + 1 + 2 * i, "0,", 2);
	p[2 * (CLIENT_MAX_NODES - 1)] = ']';
	ck_assert_int_eq(client_prescan(p, 2 * (CLIENT_MAX_NODES - 1) + 1), 0);
	memcpy(p + 2 * (CLIENT_MAX_NODES - 1), ",0]", 3);
	ck_assert_int_eq(client_prescan(p, 2 * CLIENT_MAX_NODES + 1), -E2BIG);
	/* multi-character scalars are one node each */
	ck_assert_int_eq(scan("[12345,-1.5e10,false]"), 0);
	free(p);
}
END_TEST

static void scen_unanswered(void)
{
	struct conn k;
	char line[64];

	S_ASSERT(conn_open(&k) == 0);
	for (int i = 1; i <= 4; i++) {
		snprintf(line, sizeof(line), "{\"id\":%d,\"method\":\"hold\"}\n", i);
		S_ASSERT(conn_send(&k, line) == 0);
	}
	/* The fifth unanswered request gets "overloaded" at once... */
	S_ASSERT(conn_send(&k, "{\"id\":5,\"method\":\"hold\"}\n") == 0);
	S_ASSERT(expect_error(&k, "5", CLIENT_OVERLOADED));
	S_ASSERT(conn_send(&k, "{\"id\":6,\"method\":\"echo\"}\n") == 0);
	S_ASSERT(expect_error(&k, "6", CLIENT_OVERLOADED));
	/* An invalid request's answer does not free a slot. */
	S_ASSERT(conn_send(&k, "{\"id\":8,\"method\":5}\n") == 0);
	S_ASSERT(expect_error(&k, "8", CLIENT_INVALID_REQUEST));
	S_ASSERT(conn_send(&k, "{\"id\":9,\"method\":\"hold\"}\n") == 0);
	S_ASSERT(expect_error(&k, "9", CLIENT_OVERLOADED));
	/* ...and notifications still go through. */
	S_ASSERT(conn_send(&k, "{\"method\":\"tick\"}\n") == 0);
	S_ASSERT(conn_send(&k, "{\"id\":7,\"method\":\"hold\"}\n") == 0);
	S_ASSERT(expect_error(&k, "7", CLIENT_OVERLOADED));
	conn_close(&k);
}

START_TEST(unanswered_requests_bounded)
{
	T.ops.max_unanswered = 4;
	start_unix();
	run_scenario(scen_unanswered, 1);
	/* 4 held + the notification reached the server; 5, 6 and 7 did not */
	ck_assert_int_eq(json_array_size(T.reqs), 5);
}
END_TEST

static void scen_big_in_order(void)
{
	static const char tail[] = "\"]}\n{\"id\":2,\"method\":\"echo\"}\n";
	size_t n = 3 * CLIENT_PARSE_INLINE;
	char *big = xmalloc(n + 100);
	struct conn k;
	int len;
	json_t *v;

	len = snprintf(big, 100, "{\"id\":1,\"method\":\"echo\",\"params\":[\"");
	memset(big + len, 'q', n);
	memcpy(big + len + n, tail, strlen(tail));
	S_ASSERT(conn_open(&k) == 0);
	/* A large message (parsed on the worker) and a small one right behind
	 * it, in one write: answered in order. */
	S_ASSERT(conn_sendn(&k, big, (size_t)len + n + strlen(tail)) == 0);
	free(big);
	v = conn_json(&k);
	S_ASSERT(v && json_integer_value(json_object_get(v, "id")) == 1 &&
		 json_string_length(json_array_get(json_object_get(v, "result"), 0)) == n);
	json_decref(v);
	S_ASSERT(expect_msg(&k, "{\"id\":2,\"result\":{}}"));
	conn_close(&k);
}

START_TEST(large_message_parsed_off_loop_in_order)
{
	start_unix();
	run_scenario(scen_big_in_order, 1);
	ck_assert_int_eq(json_array_size(T.reqs), 2);
}
END_TEST

/* A masked text frame (mask 0: the XOR leaves the bytes as they are). */
static int ws_send(struct conn *k, int opcode, const char *p, size_t n)
{
	unsigned char h[14];
	size_t hl = 2;

	h[0] = (unsigned char)(0x80 | opcode);
	if (n < 126) {
		h[1] = (unsigned char)(0x80 | n);
	} else {
		h[1] = 0x80 | 126;
		h[2] = (unsigned char)(n >> 8);
		h[3] = (unsigned char)n;
		hl = 4;
	}
	memset(h + hl, 0, 4);
	hl += 4;
	if (conn_sendn(k, (const char *)h, hl) < 0)
		return -1;
	return conn_sendn(k, p, n);
}

/* Reads exactly n bytes into k->buf's front; returns them or NULL. */
static char *ws_take(struct conn *k, size_t n)
{
	while (k->len < n) {
		ssize_t r;

		if (k->cap - k->len < 65536) {
			k->cap = k->cap * 2 + 65536;
			k->buf = xrealloc(k->buf, k->cap);
		}
		r = recv(k->fd, k->buf + k->len, k->cap - k->len, 0);
		if (r <= 0)
			return NULL;
		k->len += (size_t)r;
	}
	free(k->line);
	k->line = xmalloc(n + 1);
	memcpy(k->line, k->buf, n);
	k->line[n] = '\0';
	memmove(k->buf, k->buf + n, k->len - n);
	k->len -= n;
	return k->line;
}

/* The next frame's opcode and payload (NUL-terminated, in k->line). */
static int ws_recv(struct conn *k, char **payload)
{
	unsigned char *h = (unsigned char *)ws_take(k, 2);
	size_t n;
	int op;

	if (!h)
		return -1;
	op = h[0] & 0x0f;
	n = h[1] & 0x7f;
	if (n == 126) {
		h = (unsigned char *)ws_take(k, 2);
		if (!h)
			return -1;
		n = (size_t)h[0] << 8 | h[1];
	}
	*payload = ws_take(k, n);
	return *payload ? op : -1;
}

static int ws_text(struct conn *k, const char *p) { return ws_send(k, 1, p, strlen(p)); }

static void scen_ws(void)
{
	static const char up[] = "GET /rpc HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
				 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
				 "Sec-WebSocket-Version: 13\r\n\r\n";
	struct conn k, l;
	char *line, *p;

	S_ASSERT(conn_open(&k) == 0);
	S_ASSERT(conn_send(&k, up) == 0);
	S_ASSERT(conn_line(&k, &line) == 1 && has_prefix(line, "HTTP/1.1 101"));
	while (conn_line(&k, &line) == 1 && strcmp(line, "\r") != 0)
		;
	S_ASSERT(ws_text(&k, "{\"id\":1,\"method\":\"echo\",\"params\":[1]}") == 0);
	S_ASSERT(ws_recv(&k, &p) == 1 && !strcmp(p, "{\"id\":1,\"result\":[1]}"));
	S_ASSERT(ws_text(&k, "{\"id\":2,\"method\":\"notify\"}") == 0);
	S_ASSERT(ws_recv(&k, &p) == 1 && !strcmp(p, "{\"method\":\"note\",\"params\":{\"n\":1}}"));
	S_ASSERT(ws_recv(&k, &p) == 1 && !strcmp(p, "{\"method\":\"bare\"}"));
	S_ASSERT(ws_recv(&k, &p) == 1 && !strcmp(p, "{\"id\":2,\"result\":{}}"));
	/* A line client on the same socket meanwhile. */
	S_ASSERT(conn_open(&l) == 0);
	S_ASSERT(conn_send(&l, "{\"id\":9,\"method\":\"echo\"}\n") == 0);
	S_ASSERT(expect_msg(&l, "{\"id\":9,\"result\":{}}"));
	conn_close(&l);
	/* The server ends the session: a close frame with 1000. */
	S_ASSERT(ws_text(&k, "{\"id\":3,\"method\":\"close\"}") == 0);
	S_ASSERT(ws_recv(&k, &p) == 1 && !strcmp(p, "{\"id\":3,\"result\":{\"bye\":true}}"));
	S_ASSERT(ws_recv(&k, &p) == 8 && (unsigned char)p[0] == 1000 >> 8 &&
		 (unsigned char)p[1] == (1000 & 0xff));
	conn_close(&k);
}

START_TEST(unix_websocket_and_lines_side_by_side)
{
	start_unix();
	run_scenario(scen_ws, 2);
	ck_assert_int_eq(json_array_size(T.reqs), 4);
}
END_TEST

START_TEST(ws_listener_refuses_non_loopback_without_auth)
{
	char err[256] = "";
	struct client_srv *s = NULL;

	ck_assert_int_eq(client_srv_ws(T.l, "0.0.0.0:0", NULL, &T.ops, &T, &s, err, sizeof(err)),
			 -EPERM);
	ck_assert_ptr_nonnull(strstr(err, "--ws-auth"));
	ck_assert_int_eq(client_srv_ws(T.l, "nohost:1", NULL, &T.ops, &T, &s, err, sizeof(err)),
			 -EINVAL);
	ck_assert_int_eq(client_srv_ws(T.l, "127.0.0.1:0", NULL, &T.ops, &T, &s, err, sizeof(err)),
			 0);
	ck_assert_int_gt(client_srv_port(s), 0);
	client_srv_free(s);
	ck_assert_int_eq(client_srv_ws(T.l, "[::1]:0", NULL, &T.ops, &T, &s, err, sizeof(err)), 0);
	client_srv_free(s);
}
END_TEST

static Suite *client_suite(void)
{
	Suite *s = suite_create("client");
	TCase *fr = tcase_create("framing");
	TCase *bd = tcase_create("bounds");
	TCase *se = tcase_create("session");
	TCase *ux = tcase_create("unix");
	TCase *st = tcase_create("stdio");
	TCase *all[] = { fr, bd, se, ux, st };

	for (size_t i = 0; i < ARRAY_SIZE(all); i++) {
		tcase_add_checked_fixture(all[i], setup, teardown);
		tcase_set_timeout(all[i], 120);
		suite_add_tcase(s, all[i]);
	}
	tcase_add_test(fr, request_reply);
	tcase_add_test(fr, notification_has_no_id_and_no_reply);
	tcase_add_test(fr, ids_zero_string_and_extremes);
	tcase_add_test(fr, jsonrpc_field_accepted_never_written);
	tcase_add_test(fr, parse_error_keeps_session);
	tcase_add_test(fr, invalid_requests_answered_with_32600);
	tcase_add_test(fr, responses_and_empty_lines_ignored);
	tcase_add_test(fr, hostile_lines_get_parse_errors_and_server_lives);
	tcase_add_test(fr, server_call_errors_and_message_cut);
	tcase_add_test(bd, overlong_line_answered_then_closed);
	tcase_add_test(bd, overlong_line_default_bound);
	tcase_add_test(bd, message_over_output_bound_is_refused_not_fatal);
	tcase_add_test(bd, slow_consumer_disconnected_at_bound);
	tcase_add_test(bd, many_concurrent_clients);
	tcase_add_test(bd, session_cap_refuses_with_overloaded);
	tcase_add_test(bd, refused_big_reply_is_answered_once);
	tcase_add_test(bd, prescan_counts_nodes_and_depth);
	tcase_add_test(bd, unanswered_requests_bounded);
	tcase_add_test(bd, large_message_parsed_off_loop_in_order);
	tcase_add_test(ux, unix_websocket_and_lines_side_by_side);
	tcase_add_test(ux, ws_listener_refuses_non_loopback_without_auth);
	tcase_add_test(se, closed_cb_on_disconnect);
	tcase_add_test(se, client_close_from_request_cb);
	tcase_add_test(se, srv_free_ends_sessions_and_unlinks);
	tcase_add_test(ux, unix_refuses_non_socket_path);
	tcase_add_test(ux, unix_replaces_stale_socket_mode_0600);
	tcase_add_test(ux, unix_refuses_live_socket);
	tcase_add_test(ux, unix_free_keeps_a_replaced_path);
	tcase_add_test(ux, unix_path_too_long);
	tcase_add_test(st, stdio_pipes_eof_ends_session);
	tcase_add_test(st, stdio_one_socket_both_ways);
	tcase_add_test(st, stdio_regular_files);
	tcase_add_test(st, stdio_eof_flushes_queued_output_first);
	tcase_add_test(st, stdio_output_reader_gone_ends_session);
	tcase_add_test(st, stdio_bad_arguments);
	return s;
}

TEST_MAIN(client_suite)
