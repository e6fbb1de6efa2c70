/* test_linkurl.c - the one link-URL policy: parsing, loopback, local
 * sockets, which links must be sealed and which are confidential, with the
 * names an attacker would pick to look like loopback. */
#include "linkurl.h"
#include "testmain.h"
#include "util.h"

#include <errno.h>
#include <string.h>

static const struct {
	const char *url;
	bool loopback, local_socket, needs_seal, confidential_plain;
} cases[] = {
	/* real loopback forms */
	{ "tcp://127.0.0.1:7000", true, false, true, true },
	{ "tcp://127.3.4.5:1", true, false, true, true },
	{ "tcp://localhost:1", true, false, true, true },
	{ "tcp://LocalHost:1", true, false, true, true },
	{ "tcp://[::1]:1", true, false, true, true },
	{ "tcp://[::ffff:127.0.0.1]:1", true, false, true, true },
	{ "ws://127.0.0.1:8080/link", true, false, true, true },
	/* names and forms that only look like loopback */
	{ "tcp://127.evil.example:1", false, false, true, false },
	{ "tcp://127.evil.example:7000", false, false, true, false },
	{ "tcp://localhost.evil:1", false, false, true, false },
	{ "tcp://localhost.:1", false, false, true, false },
	{ "tcp://evil-localhost:1", false, false, true, false },
	{ "tcp://127.1:1", false, false, true, false },
	{ "tcp://0x7f.0.0.1:1", false, false, true, false },
	{ "tcp://[::ffff:10.0.0.1]:1", false, false, true, false },
	{ "tcp://[::2]:1", false, false, true, false },
	{ "tcp://0.0.0.0:1", false, false, true, false },
	{ "tcp://:1", false, false, true, false },
	{ "tcp://10.1.2.3:7000", false, false, true, false },
	{ "ws://example.com:80/x", false, false, true, false },
	/* encrypted transports: no seal needed, confidential */
	{ "tls+tcp://gpu.internal:7070", false, false, false, true },
	{ "tls+tcp://127.0.0.1:7070", true, false, false, true },
	{ "wss://example.com:443/link", false, false, false, true },
	/* local sockets */
	{ "ipc:///tmp/x.sock", false, true, false, true },
	{ "unix:///tmp/x.sock", false, true, false, true },
	{ "abstract://tandem-1", false, true, false, true },
};

START_TEST(test_policy_table)
{
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const char *u = cases[i].url;

		ck_assert_msg(linkurl_is_loopback(u) == cases[i].loopback, "%s: loopback", u);
		ck_assert_msg(linkurl_is_local_socket(u) == cases[i].local_socket, "%s: local", u);
		ck_assert_msg(linkurl_is_local(u) == (cases[i].loopback || cases[i].local_socket),
			      "%s: is_local", u);
		ck_assert_msg(linkurl_needs_seal(u) == cases[i].needs_seal, "%s: needs_seal", u);
		ck_assert_msg(linkurl_confidential(u, false) == cases[i].confidential_plain,
			      "%s: confidential unsealed", u);
		/* A sealed link is confidential whatever its host. */
		ck_assert_msg(linkurl_confidential(u, true), "%s: confidential sealed", u);
	}
}
END_TEST

START_TEST(test_parse)
{
	struct linkurl u;
	char err[256];

	ck_assert_int_eq(linkurl_parse("tcp://[fe80::1]:99", &u, err, sizeof(err)), 0);
	ck_assert_int_eq(u.scheme, LINKURL_TCP);
	ck_assert_str_eq(u.host, "fe80::1");
	ck_assert_uint_eq(u.port, 99);
	ck_assert_int_eq(linkurl_parse("wss://h.example:443/a/b", &u, err, sizeof(err)), 0);
	ck_assert_int_eq(u.scheme, LINKURL_WSS);
	ck_assert_str_eq(u.host, "h.example");
	ck_assert_int_eq(linkurl_parse("ipc:///run/x", &u, err, sizeof(err)), 0);
	ck_assert_str_eq(u.path, "/run/x");
	/* refused, with a reason */
	static const char *const bad[] = { "inproc://x", "http://h:1", "tcp://h", "tcp://h:",
					   "tcp://h:99999", "tcp://h:1/x", "tcp://[::1:1",
					   "ipc://", "tcp://h:1x", "" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		err[0] = '\0';
		ck_assert_msg(linkurl_parse(bad[i], &u, err, sizeof(err)) == -EINVAL, "%s", bad[i]);
		ck_assert_msg(strlen(err) > 10, "%s: no reason", bad[i]);
		/* unparsable: never loopback, never confidential unless sealed */
		ck_assert(!linkurl_is_loopback(bad[i]));
		ck_assert(!linkurl_confidential(bad[i], false));
		ck_assert(linkurl_needs_seal(bad[i]));
	}
	{
		char longhost[400];

		memset(longhost, 0, sizeof(longhost));
		memcpy(longhost, "tcp://", 6);
		memset(longhost + 6, 'a', 300);
		strcat(longhost, ":1");
		ck_assert_int_eq(linkurl_parse(longhost, &u, err, sizeof(err)), -EINVAL);
	}
}
END_TEST

static Suite *linkurl_suite(void)
{
	Suite *s = suite_create("linkurl");
	TCase *tc = tcase_create("linkurl");

	tcase_add_test(tc, test_policy_table);
	tcase_add_test(tc, test_parse);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(linkurl_suite)
