/* test_linksock.c - the link's own sockets (proto/link_sock.c) through the
 * link API: real listeners, dialers and connections on loopback, a unix
 * socket file and an abstract name, driven by a real loop. */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "link.h"
#include "link_sock.h"
#include "loop.h"
#include "testmain.h"

#define GUARD_MS 5000u /* every wait ends by then, passed or not */

struct side {
	struct link *lk;
	uint8_t got[8u << 20];
	size_t n;
	char closed[256];
};

struct t {
	struct loop *loop;
	struct link_listener *L;
	struct link_dialer *D;
	struct link_conn accepted, dialled;
	int dial_err;
	char dial_why[200];
	bool dial_done, in_dial, cb_inside_dial;
	size_t want; /* bytes the waiting side expects */
	struct side a, b;
	struct loop_timer *guard;
	bool guard_fired;
};

static struct t T;

static void guard_cb(struct loop_timer *t, void *arg)
{
	(void)t;
	(void)arg;
	T.guard = NULL;
	T.guard_fired = true;
	loop_stop(T.loop);
}

/* Runs the loop until a callback stops it (or the guard does). */
static void run(void)
{
	T.guard = loop_timer_add(T.loop, GUARD_MS, guard_cb, NULL);
	loop_run(T.loop);
	loop_timer_cancel(T.guard);
	T.guard = NULL;
}

static void accept_cb(struct link_conn c, void *arg)
{
	(void)arg;
	T.accepted = c;
	if (T.dial_done)
		loop_stop(T.loop);
}

static void dial_cb(struct link_conn c, int err, const char *why, void *arg)
{
	(void)arg;
	T.cb_inside_dial = T.in_dial;
	T.dialled = c;
	T.dial_err = err;
	snprintf(T.dial_why, sizeof(T.dial_why), "%s", why ? why : "");
	T.dial_done = true;
	if (err || T.accepted.fd >= 0)
		loop_stop(T.loop);
}

static size_t raw_cb(struct link *lk, const uint8_t *data, size_t len, void *arg)
{
	struct side *s = arg;

	(void)lk;
	if (len > sizeof(s->got) - s->n)
		len = sizeof(s->got) - s->n;
	memcpy(s->got + s->n, data, len);
	s->n += len;
	if (s->n >= T.want)
		loop_stop(T.loop);
	return len;
}

static void closed_cb(struct link *lk, const char *why, void *arg)
{
	struct side *s = arg;

	(void)lk;
	snprintf(s->closed, sizeof(s->closed), "%s", why);
	loop_stop(T.loop);
}

static const struct link_ops ops = { .raw_cb = raw_cb, .closed_cb = closed_cb };

static void setup(void)
{
	memset(&T, 0, sizeof(T));
	T.accepted = T.dialled = LINK_CONN_NONE;
	T.loop = loop_new();
	ck_assert_ptr_nonnull(T.loop);
}

static void teardown(void)
{
	link_free(T.a.lk);
	link_free(T.b.lk);
	link_conn_close(T.accepted);
	link_conn_close(T.dialled);
	link_dialer_free(T.D);
	link_listener_free(T.L);
	link_flush_all();
	loop_free(T.loop);
}

static void listen_on(const char *url)
{
	char err[256] = "";

	ck_assert_msg(link_listener_new(T.loop, url, NULL, accept_cb, NULL, &T.L, err,
					sizeof(err)) == 0,
		      "%s", err);
}

static void dial(const char *url, unsigned timeout_ms)
{
	char err[256] = "";

	ck_assert_msg(link_dialer_new(T.loop, url, NULL, &T.D, err, sizeof(err)) == 0, "%s", err);
	T.in_dial = true;
	link_dial(T.D, timeout_ms, dial_cb, NULL);
	T.in_dial = false;
	run();
	ck_assert(!T.guard_fired);
	ck_assert_msg(!T.cb_inside_dial, "the dial callback ran inside link_dial");
}

/* Both ends become links; a says ping, b answers pong. */
static void round_trip(void)
{
	ck_assert_int_eq(T.dial_err, 0);
	ck_assert_int_ge(T.dialled.fd, 0);
	if (T.accepted.fd < 0)
		run(); /* the accept may come after the dial's answer */
	ck_assert_int_ge(T.accepted.fd, 0);
	T.a.lk = link_new(T.loop, T.dialled, &ops, &T.a);
	T.b.lk = link_new(T.loop, T.accepted, &ops, &T.b);
	T.dialled = T.accepted = LINK_CONN_NONE;
	link_start(T.a.lk);
	link_start(T.b.lk);
	T.want = 4;
	ck_assert_int_eq(link_send_raw(T.a.lk, "ping", 4), 0);
	run();
	ck_assert_uint_eq(T.b.n, 4);
	ck_assert(memcmp(T.b.got, "ping", 4) == 0);
	ck_assert_int_eq(link_send_raw(T.b.lk, "pong", 4), 0);
	run();
	ck_assert_uint_eq(T.a.n, 4);
	ck_assert(memcmp(T.a.got, "pong", 4) == 0);
}

START_TEST(tcp_by_name_round_trip)
{
	char url[64];

	/* "localhost" is a name, not a literal: it is resolved off the loop
	 * (and may give ::1 first, which refuses: the next address is tried). */
	listen_on("tcp://127.0.0.1:0");
	ck_assert_int_gt(link_listener_port(T.L), 0);
	snprintf(url, sizeof(url), "tcp://localhost:%d", link_listener_port(T.L));
	dial(url, 2000);
	round_trip();
	{
		nng_sockaddr sa;

		ck_assert_int_eq(link_peer_addr(T.b.lk, &sa), 0);
		ck_assert_int_eq(sa.s_family, NNG_AF_INET);
		ck_assert_uint_eq(ntohl(sa.s_in.sa_addr), 0x7f000001u);
	}
}
END_TEST

START_TEST(ipv6_literal_round_trip)
{
	char url[64], err[256] = "";
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 probe = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	bool have_v6 = fd >= 0 && bind(fd, (struct sockaddr *)&probe, sizeof(probe)) == 0;

	if (fd >= 0)
		close(fd);
	if (!have_v6) /* a machine without ::1: the listener must say so */
		ck_assert_int_lt(link_listener_new(T.loop, "tcp://[::1]:0", NULL, accept_cb, NULL,
						   &T.L, err, sizeof(err)),
				 0);
	if (!have_v6)
		return;
	listen_on("tcp://[::1]:0");
	snprintf(url, sizeof(url), "tcp://[::1]:%d", link_listener_port(T.L));
	dial(url, 2000);
	round_trip();
	{
		nng_sockaddr sa;
		static const uint8_t loop6[16] = { [15] = 1 };

		ck_assert_int_eq(link_peer_addr(T.b.lk, &sa), 0);
		ck_assert_int_eq(sa.s_family, NNG_AF_INET6);
		ck_assert(memcmp(sa.s_in6.sa_addr, loop6, 16) == 0);
	}
}
END_TEST

START_TEST(abstract_round_trip_with_peer_uid)
{
	char url[96];
	uint64_t uid = 12345;

	snprintf(url, sizeof(url), "abstract://tandem-test-linksock-%d", (int)getpid());
	listen_on(url);
	dial(url, 0);
	round_trip();
	ck_assert_int_eq(link_peer_uid(T.b.lk, &uid), 0);
	ck_assert_uint_eq(uid, (uint64_t)getuid());
}
END_TEST

START_TEST(ipc_file_private_stale_replaced_removed)
{
	char dir[] = "/tmp/tandem-linksock-XXXXXX", path[64], url[96], err[256];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct link_listener *second = NULL;
	struct stat st;
	int fd;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/link", dir);
	snprintf(url, sizeof(url), "ipc://%s", path);
	/* A daemon that died left its socket file behind. */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	listen_on(url);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	/* A live listener's file is never taken. */
	ck_assert_int_eq(link_listener_new(T.loop, url, NULL, accept_cb, NULL, &second, err,
					   sizeof(err)),
			 -EADDRINUSE);
	ck_assert_ptr_null(second);
	dial(url, 0);
	round_trip();
	link_listener_free(T.L);
	T.L = NULL;
	ck_assert_int_eq(stat(path, &st), -1);
	rmdir(dir);
}
END_TEST

START_TEST(refused_is_reported_outside_the_dial)
{
	char url[64];
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	/* A port that was just free: nobody listens there. */
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", ntohs(sa.sin_port));
	dial(url, 2000);
	ck_assert_int_eq(T.dial_err, -ECONNREFUSED);
	ck_assert_str_eq(T.dial_why, strerror(ECONNREFUSED));
	ck_assert_int_lt(T.dialled.fd, 0);
}
END_TEST

START_TEST(a_listener_that_never_answers_times_out)
{
	char url[64];
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), filler[4];

	/* A backlog that is full drops new SYNs: the connect hangs. */
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 0), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	for (int i = 0; i < 4; i++) {
		filler[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		(void)connect(filler[i], (struct sockaddr *)&sa, sizeof(sa));
	}
	usleep(100 * 1000);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", ntohs(sa.sin_port));
	dial(url, 300);
	ck_assert_int_eq(T.dial_err, -ETIMEDOUT);
	ck_assert_str_eq(T.dial_why, "connect timed out");
	for (int i = 0; i < 4; i++)
		close(filler[i]);
	close(fd);
}
END_TEST

START_TEST(dialer_freed_while_resolving)
{
	char err[256] = "";

	ck_assert_int_eq(link_dialer_new(T.loop, "tcp://localhost:9", NULL, &T.D, err, sizeof(err)),
			 0);
	link_dial(T.D, 2000, dial_cb, NULL);
	T.D = link_dialer_free(T.D);
	/* The resolver thread finishes on its own; nothing is reported. */
	T.guard = loop_timer_add(T.loop, 300, guard_cb, NULL);
	loop_run(T.loop);
	ck_assert(T.guard_fired);
	ck_assert(!T.dial_done);
}
END_TEST

START_TEST(resolutions_are_bounded)
{
	char err[256] = "";

	/* With no resolution allowed at once, a host name fails at once (and
	 * says why); a literal needs none and is not affected. */
	link_sock_set_resolve_max(0);
	ck_assert_int_eq(link_dialer_new(T.loop, "tcp://localhost:9", NULL, &T.D, err, sizeof(err)),
			 0);
	T.in_dial = true;
	link_dial(T.D, 2000, dial_cb, NULL);
	T.in_dial = false;
	run();
	link_sock_set_resolve_max(32);
	ck_assert(!T.guard_fired);
	ck_assert(!T.cb_inside_dial);
	ck_assert_int_eq(T.dial_err, -EAGAIN);
	ck_assert_ptr_nonnull(strstr(T.dial_why, "resolutions already wait for the name server"));
	/* The count came back: the next one is resolved (and refused: port 9
	 * on loopback has no listener here). */
	T.dial_done = false;
	link_dial(T.D, 2000, dial_cb, NULL);
	run();
	ck_assert(T.dial_done);
	ck_assert_int_ne(T.dial_err, -EAGAIN);
}
END_TEST

START_TEST(peer_close_and_big_flush)
{
	static uint8_t big[4u << 20];
	char url[96];

	snprintf(url, sizeof(url), "abstract://tandem-test-linksock-flush-%d", (int)getpid());
	listen_on(url);
	dial(url, 0);
	round_trip();
	/* 4 MiB is far more than the socket holds: most of it waits for room,
	 * then a close_flush still delivers every byte before the end. */
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7u);
	T.b.n = 0;
	T.want = sizeof(big);
	ck_assert_int_eq(link_send_raw(T.a.lk, big, sizeof(big)), 0);
	link_close_flush(T.a.lk, 5000);
	T.a.lk = NULL;
	while (T.b.n < sizeof(big) && !T.guard_fired)
		run();
	ck_assert_uint_eq(T.b.n, sizeof(big));
	ck_assert(memcmp(T.b.got, big, sizeof(big)) == 0);
	if (!T.b.closed[0])
		run();
	ck_assert_str_eq(T.b.closed, "the peer closed the connection");
	ck_assert_uint_eq(link_lingering(), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("linksock");
	TCase *tc = tcase_create("linksock");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, tcp_by_name_round_trip);
	tcase_add_test(tc, ipv6_literal_round_trip);
	tcase_add_test(tc, abstract_round_trip_with_peer_uid);
	tcase_add_test(tc, ipc_file_private_stale_replaced_removed);
	tcase_add_test(tc, refused_is_reported_outside_the_dial);
	tcase_add_test(tc, a_listener_that_never_answers_times_out);
	tcase_add_test(tc, dialer_freed_while_resolving);
	tcase_add_test(tc, resolutions_are_bounded);
	tcase_add_test(tc, peer_close_and_big_flush);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(suite)
