/* test_wshttp.c - the HTTP side of the WebSocket server: sniffing, request
 * heads, the RFC 6455 checks and the answers, on buffers. */
#include "testmain.h"
#include "util.h"
#include "wshttp.h"

#include <errno.h>
#include <stdio.h>

/* RFC 6455 §1.3's example. */
#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static int parse(const char *text, struct wshttp_req *rq, char **keep)
{
	size_t len = strlen(text), end = wshttp_head_end(text, len, 0);

	*keep = xstrdup(text);
	ck_assert_msg(end > 0, "no head end in %s", text);
	return wshttp_parse(*keep, end, rq);
}

START_TEST(sniff_classifies_first_bytes)
{
	static const struct {
		const char *s;
		enum wshttp_sniff want;
	} cases[] = {
		{ "", WSHTTP_SNIFF_MORE },
		{ "{", WSHTTP_SNIFF_JSON_LINE },
		{ "{\"id\":1}\n", WSHTTP_SNIFF_JSON_LINE },
		{ "G", WSHTTP_SNIFF_MORE },
		{ "GET", WSHTTP_SNIFF_MORE },
		{ "GET ", WSHTTP_SNIFF_HTTP },
		{ "GET /rpc HTTP/1.1\r\n", WSHTTP_SNIFF_HTTP },
		{ "OPTIONS * HTTP/1.1", WSHTTP_SNIFF_HTTP },
		{ " GET", WSHTTP_SNIFF_OTHER },
		{ "get /", WSHTTP_SNIFF_OTHER },
		{ "[1]", WSHTTP_SNIFF_OTHER },
		{ "\x16\x03\x01", WSHTTP_SNIFF_OTHER }, /* a TLS hello */
		{ "ABCDEFGHIJKLMNOPQ ", WSHTTP_SNIFF_OTHER },
		{ "GET/", WSHTTP_SNIFF_OTHER },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		ck_assert_msg(wshttp_sniff(cases[i].s, strlen(cases[i].s)) == cases[i].want,
			      "case %zu (%s)", i, cases[i].s);
}
END_TEST

START_TEST(accept_key_matches_rfc)
{
	char out[WSHTTP_ACCEPT_LEN + 1];

	wshttp_accept_key(RFC_KEY, out);
	ck_assert_str_eq(out, RFC_ACCEPT);
}
END_TEST

START_TEST(codex_upgrade_is_accepted)
{
	struct wshttp_req rq;
	_cleanup_free_ char *keep = NULL, *ans = NULL;
	int r = parse("GET /rpc HTTP/1.1\r\n"
		      "host: 127.0.0.1:4500\r\n"
		      "UPGRADE: WebSocket\r\n"
		      "Connection: keep-alive, Upgrade\r\n"
		      "Sec-WebSocket-Key:   " RFC_KEY "  \r\n"
		      "sec-websocket-version: 13\r\n"
		      "Authorization: Bearer tok-123\r\n"
		      "x-codex-app-server-compression: zstd-stream-v1\r\n"
		      "Sec-WebSocket-Extensions: permessage-deflate\r\n"
		      "\r\n",
		      &rq, &keep);

	ck_assert_int_eq(r, 0);
	ck_assert_int_eq(rq.kind, WSHTTP_UPGRADE);
	ck_assert_str_eq(rq.method, "GET");
	ck_assert_str_eq(rq.path, "/rpc");
	ck_assert_str_eq(rq.query, "");
	ck_assert_str_eq(rq.version, "HTTP/1.1");
	ck_assert_str_eq(rq.host, "127.0.0.1:4500");
	ck_assert_str_eq(rq.key, RFC_KEY);
	ck_assert_str_eq(rq.authorization, "Bearer tok-123");
	ck_assert_str_eq(rq.compression, "zstd-stream-v1");
	ans = wshttp_answer_upgrade(&rq);
	/* Neither compression nor extensions are answered: plain frames. */
	ck_assert_str_eq(ans, "HTTP/1.1 101 Switching Protocols\r\n"
			      "Upgrade: websocket\r\n"
			      "Connection: Upgrade\r\n"
			      "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n\r\n");
}
END_TEST

START_TEST(plain_request_keeps_headers)
{
	struct wshttp_req rq;
	_cleanup_free_ char *keep = NULL;

	ck_assert_int_eq(parse("GET /readyz?x=1 HTTP/1.1\nHost: h\nAuthorization: Bearer a\n\n",
			       &rq, &keep),
			 0);
	ck_assert_int_eq(rq.kind, WSHTTP_PLAIN);
	ck_assert_str_eq(rq.path, "/readyz");
	ck_assert_str_eq(rq.query, "x=1");
	ck_assert_str_eq(rq.authorization, "Bearer a");
	ck_assert_ptr_null(rq.key);
	/* An Upgrade to something else is not ours to answer: plain. */
	free(keep);
	ck_assert_int_eq(parse("GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", &rq,
			       &keep),
			 0);
	ck_assert_int_eq(rq.kind, WSHTTP_PLAIN);
}
END_TEST

START_TEST(bad_upgrades_say_why)
{
	static const struct {
		const char *head;
		int status;
		const char *why;
	} cases[] = {
		{ "POST /rpc HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		  "Sec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
		  400, "GET" },
		{ "GET /rpc HTTP/1.0\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		  "Sec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
		  400, "HTTP/1.1" },
		{ "GET /rpc HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		  "Sec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
		  400, "Host" },
		{ "GET /rpc HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: close\r\n"
		  "Sec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
		  400, "Connection" },
		{ "GET /rpc HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		  "Sec-WebSocket-Version: 13\r\n\r\n",
		  400, "Key" },
		{ "GET /rpc HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		  "Sec-WebSocket-Key: dG9vIHNob3J0\r\nSec-WebSocket-Version: 13\r\n\r\n",
		  400, "Key" },
		{ "GET /rpc HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		  "Sec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Version: 8\r\n\r\n",
		  426, "13" },
		{ "GET /rpc HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		  "Sec-WebSocket-Key: " RFC_KEY "\r\n\r\n",
		  426, "13" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct wshttp_req rq;
		_cleanup_free_ char *keep = NULL;

		ck_assert_int_eq(parse(cases[i].head, &rq, &keep), 0);
		ck_assert_msg(rq.kind == WSHTTP_BAD_UPGRADE, "case %zu accepted", i);
		ck_assert_int_eq(rq.bad_status, cases[i].status);
		ck_assert_msg(strstr(rq.bad_reason, cases[i].why), "case %zu: %s", i,
			      rq.bad_reason);
	}
}
END_TEST

START_TEST(malformed_heads_are_refused)
{
	static const char *const bad[] = {
		"GET /rpc HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET /rpc HTTP/1.1\r\nAuthorization: a\r\nauthorization: b\r\n\r\n",
		"GET /rpc HTTP/1.1\r\nX: a\r\n folded\r\n\r\n",
		"GET /rpc HTTP/1.1\r\nno colon\r\n\r\n",
		"GET /rpc HTTP/1.1\r\n: empty name\r\n\r\n",
		"GET /rpc HTTP/1.1\r\nBad Name: x\r\n\r\n",
		"GET /rpc HTTP/1.1\r\nX: a\x01b\r\n\r\n",
		"GET rpc HTTP/1.1\r\n\r\n",
		"GET /rpc HTTP/3\r\n\r\n",
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct wshttp_req rq;
		_cleanup_free_ char *keep = NULL;

		ck_assert_msg(parse(bad[i], &rq, &keep) == -EINVAL, "case %zu accepted", i);
	}
}
END_TEST

START_TEST(too_many_headers)
{
	char head[8192];
	size_t n = (size_t)snprintf(head, sizeof(head), "GET / HTTP/1.1\r\n");
	struct wshttp_req rq;
	_cleanup_free_ char *keep = NULL;

	for (unsigned i = 0; i <= WSHTTP_MAX_HEADERS; i++)
		n += (size_t)snprintf(head + n, sizeof(head) - n, "X-%u: v\r\n", i);
	snprintf(head + n, sizeof(head) - n, "\r\n");
	ck_assert_int_eq(parse(head, &rq, &keep), -E2BIG);
}
END_TEST

START_TEST(plain_answers)
{
	size_t len;
	_cleanup_free_ char *ok = wshttp_answer(200, NULL, "ready\n", false, &len);
	_cleanup_free_ char *head = wshttp_answer(200, NULL, "ready\n", true, &len);
	_cleanup_free_ char *unauth = wshttp_answer(401, NULL, "no\n", false, &len);
	_cleanup_free_ char *up = wshttp_answer(426, NULL, NULL, false, &len);
	_cleanup_free_ char *bad = wshttp_answer(99, "text/x\r\nSet-Cookie: a", "x", false, &len);

	ck_assert_str_eq(ok, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
			     "Content-Length: 6\r\nConnection: close\r\n"
			     "Cache-Control: no-store\r\n\r\nready\n");
	ck_assert_str_eq(head, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
			       "Content-Length: 6\r\nConnection: close\r\n"
			       "Cache-Control: no-store\r\n\r\n");
	ck_assert_ptr_nonnull(strstr(unauth, "401 Unauthorized\r\n"));
	ck_assert_ptr_nonnull(strstr(unauth, "\r\nWWW-Authenticate: Bearer\r\n"));
	ck_assert_ptr_nonnull(strstr(up, "426 Upgrade Required\r\n"));
	ck_assert_ptr_nonnull(strstr(up, "\r\nSec-WebSocket-Version: 13\r\n"));
	ck_assert_ptr_nonnull(strstr(up, "\r\nContent-Length: 0\r\n"));
	ck_assert_ptr_nonnull(strstr(bad, "500 Internal Server Error\r\n"));
	ck_assert_ptr_null(strstr(bad, "Set-Cookie"));
	ck_assert_uint_eq(len, strlen(bad));
}
END_TEST

static Suite *wshttp_suite(void)
{
	Suite *s = suite_create("wshttp");
	TCase *tc = tcase_create("wshttp");

	tcase_add_test(tc, sniff_classifies_first_bytes);
	tcase_add_test(tc, accept_key_matches_rfc);
	tcase_add_test(tc, codex_upgrade_is_accepted);
	tcase_add_test(tc, plain_request_keeps_headers);
	tcase_add_test(tc, bad_upgrades_say_why);
	tcase_add_test(tc, malformed_heads_are_refused);
	tcase_add_test(tc, too_many_headers);
	tcase_add_test(tc, plain_answers);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(wshttp_suite)
