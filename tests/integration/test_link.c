/* test_link.c - the link under attack, against a real tandem-executor:
 * connection floods (silent, SP greetings, one byte at a time), a storm of
 * wrong proofs, replayed handshakes, tampered sealed frames, oversized and
 * truncated frames, a newcomer after an orchestrator left, another uid, a
 * second orchestrator (busy, and the take-over from a half-dead one), and
 * a connection cut inside a network namespace. Each test bounds its loops
 * in time and count; timings are printed, never asserted.
 *
 * Network namespaces, veths and uid changes need root: without it those
 * tests say SKIP loudly and pass. Names start with tdm-link-. A failed
 * assertion ends a test with _exit: test_janitor (tclient.h) removes the
 * namespace and directories then, and executors die with their parent.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <nng/nng.h>
#include <nng/protocol/pair1/pair.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "handshake.h"
#include "tclient.h"
#include "testmain.h"
#include "util.h"

#define T_MS 10000

static struct texec ex;
static struct tclient cl;

static int port_of(const char *url)
{
	const char *p = strrchr(url, ':');

	return p ? atoi(p + 1) : 0;
}

static void tcp_executor(const char *const *extra)
{
	texec_start_url(&ex, "tcp://127.0.0.1:0", extra);
	ck_assert_msg(port_of(ex.url) > 0, "no port in %s", ex.url);
}

static int ping(struct tclient *c, uint64_t stamp)
{
	struct proto_ping_body p = { .stamp = stamp, .present = PROTO_ALL_ping_body };
	struct tframe f = { 0 };
	int r = tc_call(c, PROTO_PING, &p, &f, T_MS);

	if (r == 0) {
		r = f.m.env.status == 0 && f.m.u.ping_reply.stamp == stamp ? 0 : -EPROTO;
		tframe_free(&f);
	}
	return r;
}

/* ---- raw TCP peers ---------------------------------------------------- */

static int tcp_connect(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* True when the peer closed fd (EOF or reset) within ms. */
static bool peer_closed(int fd, int ms)
{
	uint64_t deadline = now_ms() + (uint64_t)ms;
	char buf[512];

	while (now_ms() < deadline) {
		struct timeval tv = { .tv_usec = 20000 };
		ssize_t n;

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		n = recv(fd, buf, sizeof(buf), 0);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
			return true;
	}
	return false;
}

/* ---- the flood ------------------------------------------------------------ */

enum flood_mode { FLOOD_SILENT, FLOOD_SP, FLOOD_TRICKLE };

struct flood {
	int port;
	volatile bool stop;
	unsigned n;
	pthread_t th[32];
	unsigned long opened; /* guarded by __atomic */
};

struct flooder {
	struct flood *f;
	enum flood_mode mode;
};

static struct flooder flooders[32];

/* One attacker: opens a connection, behaves per mode until the executor
 * closes it, and opens the next at once. */
static void *flooder_main(void *arg)
{
	struct flooder *w = arg;
	uint8_t sp[HS_SP_HEADER_LEN];

	hs_sp_header(sp);
	while (!w->f->stop) {
		int fd = tcp_connect(w->f->port);

		if (fd < 0) {
			usleep(10000);
			continue;
		}
		__atomic_add_fetch(&w->f->opened, 1, __ATOMIC_RELAXED);
		if (w->mode == FLOOD_SP && send(fd, sp, sizeof(sp), MSG_NOSIGNAL) < 0) {
			close(fd);
			continue;
		}
		while (!w->f->stop && !peer_closed(fd, 100)) {
			uint8_t b = (uint8_t)randombytes_uniform(256);

			if (w->mode == FLOOD_TRICKLE && send(fd, &b, 1, MSG_NOSIGNAL) < 0)
				break;
		}
		close(fd);
	}
	return NULL;
}

static void flood_start(struct flood *f, int port, unsigned n)
{
	memset(f, 0, sizeof(*f));
	f->port = port;
	f->n = n;
	for (unsigned i = 0; i < n; i++) {
		flooders[i] = (struct flooder){ f, (enum flood_mode)(i % 3) };
		ck_assert_int_eq(pthread_create(&f->th[i], NULL, flooder_main, &flooders[i]), 0);
	}
}

static void flood_stop(struct flood *f)
{
	f->stop = true;
	for (unsigned i = 0; i < f->n; i++)
		pthread_join(f->th[i], NULL);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* 32 flooding connections. (a) the established session's calls never
 * fail (latency reported); (b) a newcomer completes the handshake during
 * the flood; (c) the executor's fds and memory stay bounded. */
START_TEST(test_flood)
{
	const char *args[] = { "--handshake-timeout", "1s", NULL };
	uint64_t lat[4000], t0;
	unsigned n = 0, failed = 0;
	int fds0, fds_max = 0;
	long rss0, rss_max = 0;
	struct flood f;

	tcp_executor(args);
	tc_connect(&cl, ex.url, ex.secret);
	ck_assert_int_eq(ping(&cl, 1), 0);
	fds0 = proc_fd_count(ex.pid);
	rss0 = proc_rss_kib(ex.pid);
	flood_start(&f, port_of(ex.url), 32);
	t0 = now_ms();
	while (now_ms() - t0 < 8000 && n < ARRAY_SIZE(lat)) {
		uint64_t c0 = now_ns();

		if (ping(&cl, n + 2) != 0)
			failed++;
		lat[n++] = now_ns() - c0;
		if (n % 50 == 0) {
			fds_max = MAX(fds_max, proc_fd_count(ex.pid));
			rss_max = MAX(rss_max, proc_rss_kib(ex.pid));
		}
		usleep(2000);
	}
	qsort(lat, n, sizeof(lat[0]), cmp_u64);
	printf("# flood: %lu attacking connections opened; %u calls, p50 %.2f ms, p99 %.2f ms; "
	       "executor fds %d -> max %d, RSS %ld -> max %ld KiB\n",
	       __atomic_load_n(&f.opened, __ATOMIC_RELAXED), n, lat[n / 2] / 1e6,
	       lat[n * 99 / 100] / 1e6, fds0, fds_max, rss0, rss_max);
	ck_assert_uint_eq(failed, 0);
	ck_assert_uint_gt(__atomic_load_n(&f.opened, __ATOMIC_RELAXED), 32);
	/* (c) at most --max-pending connections in the handshake */
	ck_assert_int_le(fds_max, fds0 + 64 + 16);
	ck_assert_int_le(rss_max, rss0 + 32 * 1024);
	/* (b) the session goes; a newcomer must get in while the flood goes on. */
	tc_close(&cl);
	{
		uint64_t s0 = now_ms();
		int r = -1;

		while (r != 0 && now_ms() - s0 < 20000) {
			r = tc_dial(&cl, ex.url, 5000);
			if (r == 0)
				r = tc_hello(&cl, ex.secret, false);
			if (r != 0)
				tc_close(&cl);
		}
		printf("# flood: a newcomer completed the handshake after %llu ms\n",
		       (unsigned long long)(now_ms() - s0));
		ck_assert_msg(r == 0, "no newcomer got in during the flood (%d)", r);
		ck_assert_int_eq(ping(&cl, 77), 0);
	}
	flood_stop(&f);
	ck_assert(texec_log_contains(&ex, "did not prove the secret within"));
	tc_close(&cl);
	texec_stop(&ex);
}
END_TEST

/* ---- the wrong-proof storm ----------------------------------------------- */

struct storm {
	const char *url;
	volatile bool stop;
	unsigned long tries, refused;
};

static void *stormer_main(void *arg)
{
	struct storm *s = arg;
	struct tclient c;

	while (!s->stop) {
		int r = tc_dial(&c, s->url, 2000);

		if (r == 0)
			r = tc_hello(&c, "not-the-secret", false);
		tc_close(&c);
		__atomic_add_fetch(&s->tries, 1, __ATOMIC_RELAXED);
		if (r != 0)
			__atomic_add_fetch(&s->refused, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* 30 s of connections that prove a wrong secret: the executor lives and
 * serves its session throughout; the source is penalised. */
START_TEST(test_wrong_proof_storm)
{
	struct storm s = { 0 };
	pthread_t th[8];
	unsigned calls = 0, failed = 0;
	uint64_t t0;

	tcp_executor(NULL);
	tc_connect(&cl, ex.url, ex.secret);
	s.url = ex.url;
	for (unsigned i = 0; i < ARRAY_SIZE(th); i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, stormer_main, &s), 0);
	t0 = now_ms();
	while (now_ms() - t0 < 30000) {
		failed += ping(&cl, ++calls) != 0;
		usleep(20000);
	}
	s.stop = true;
	for (unsigned i = 0; i < ARRAY_SIZE(th); i++)
		pthread_join(th[i], NULL);
	printf("# storm: %lu wrong-proof attempts in 30 s, all refused: %s; %u calls, %u failed\n",
	       s.tries, s.refused == s.tries ? "yes" : "no", calls, failed);
	ck_assert_uint_eq(failed, 0);
	ck_assert_uint_eq(s.refused, s.tries);
	ck_assert(!pid_gone(ex.pid, 0));
	ck_assert(texec_log_contains(&ex, "wrong proof of the secret"));
	ck_assert(texec_log_contains(&ex, "penalised"));
	tc_close(&cl);
	texec_stop(&ex);
}
END_TEST

/* ---- one bad thing at a time ---------------------------------------------- */

/* The bytes a real client sent in a good handshake, replayed on a new
 * connection (whose CHALLENGE has a new nonce): refused as a wrong proof. */
START_TEST(test_replayed_handshake_refused)
{
	struct fbuf rec = { 0 };

	texec_start(&ex, NULL, NULL); /* a local socket: no penalty in the way */
	tc_connect(&cl, ex.url, ex.secret);
	fbuf_append(&rec, cl.sent.p + HS_SP_HEADER_LEN, cl.sent.len - HS_SP_HEADER_LEN);
	tc_close(&cl);
	ck_assert_int_eq(tc_dial(&cl, ex.url, T_MS), 0);
	ck_assert_int_eq(tc_send_bytes(&cl, rec.p, rec.len), 0);
	ck_assert(tc_closed_by_peer(&cl, T_MS));
	tc_close(&cl);
	ck_assert(texec_log_wait(&ex, "wrong proof of the secret", T_MS));
	fbuf_free(&rec);
	tc_connect(&cl, ex.url, ex.secret);
	ck_assert_int_eq(ping(&cl, 3), 0);
	tc_close(&cl);
	texec_stop(&ex);
}
END_TEST

/* A sealed link: one flipped bit in a frame closes it, with the reason. */
START_TEST(test_tampered_sealed_frame)
{
	struct proto_ping_body p = { .stamp = 9, .present = PROTO_ALL_ping_body };
	struct fbuf enc = { 0 };

	tcp_executor(NULL);
	tc_connect(&cl, ex.url, ex.secret);
	ck_assert_msg(cl.sealed, "a tcp:// link with a secret must be sealed");
	ck_assert_int_eq(ping(&cl, 1), 0);
	proto_encode(fbuf_write, &enc, PROTO_PING, PROTO_REQUEST, 5, &p);
	ck_assert_int_eq(tc_send_tampered(&cl, enc.p, enc.len, 13), 0);
	ck_assert(tc_closed_by_peer(&cl, T_MS));
	tc_close(&cl);
	ck_assert(texec_log_wait(&ex, "does not authenticate", T_MS));
	fbuf_free(&enc);
	tc_connect(&cl, ex.url, ex.secret);
	ck_assert_int_eq(ping(&cl, 2), 0);
	tc_close(&cl);
	texec_stop(&ex);
}
END_TEST

/* A frame declaring more than the limit, on a sealed session and before
 * any proof: closed at once, reason logged, the executor goes on. */
START_TEST(test_frame_over_limit)
{
	static const uint8_t huge[4] = { 0x7f, 0xff, 0xff, 0xff };
	int fd;

	tcp_executor(NULL);
	tc_connect(&cl, ex.url, ex.secret);
	ck_assert_int_eq(tc_send_bytes(&cl, huge, sizeof(huge)), 0);
	ck_assert(tc_closed_by_peer(&cl, T_MS));
	tc_close(&cl);
	ck_assert(texec_log_wait(&ex, "over the limit", T_MS));
	/* before the proof: a handshake frame over the handshake bound */
	fd = tcp_connect(port_of(ex.url));
	ck_assert_int_ge(fd, 0);
	{
		uint8_t b[HS_SP_HEADER_LEN + HS_MARKER_LEN + 4];

		hs_sp_header(b);
		hs_marker(b + HS_SP_HEADER_LEN);
		frame_put_len(b + HS_SP_HEADER_LEN + HS_MARKER_LEN, 1u << 20);
		ck_assert_int_eq(send(fd, b, sizeof(b), MSG_NOSIGNAL), (ssize_t)sizeof(b));
	}
	ck_assert(peer_closed(fd, T_MS));
	close(fd);
	ck_assert(texec_log_wait(&ex, "handshake limit", T_MS));
	tc_connect(&cl, ex.url, ex.secret);
	ck_assert_int_eq(ping(&cl, 1), 0);
	tc_close(&cl);
	texec_stop(&ex);
}
END_TEST

/* A session that closes in the middle of a frame: the reason says so. */
START_TEST(test_close_mid_frame)
{
	uint8_t part[4 + 10];

	tcp_executor(NULL);
	tc_connect(&cl, ex.url, ex.secret);
	frame_put_len(part, 100);
	memset(part + 4, 0xaa, 10);
	ck_assert_int_eq(tc_send_bytes(&cl, part, sizeof(part)), 0);
	usleep(100 * 1000);
	tc_close(&cl);
	ck_assert(texec_log_wait(&ex, "closed mid-frame", T_MS));
	tc_connect(&cl, ex.url, ex.secret);
	ck_assert_int_eq(ping(&cl, 1), 0);
	tc_close(&cl);
	texec_stop(&ex);
}
END_TEST

/* An orchestrator leaves while its server keeps printing; whoever
 * connects next receives none of that output. */
START_TEST(test_newcomer_gets_no_old_frames)
{
	const char *argv[] = { fixture_path(), "--mode", "stderr", NULL };
	const char *env[] = { "FIXTURE_STDERR_LINES=100000", NULL };
	struct tframe f = { 0 };
	uint64_t h;
	unsigned pings = 0;
	uint64_t t0;

	texec_start(&ex, NULL, NULL);
	tc_connect(&cl, ex.url, ex.secret);
	h = tc_mcp_start(&cl, "noisy", argv, env, NULL, NULL, NULL);
	ck_assert_int_eq(tc_wait_event(&cl, PROTO_MCP_STDERR, h, &f, T_MS), 0);
	tframe_free(&f);
	tc_close(&cl); /* leaves with its server still writing */
	tc_connect(&cl, ex.url, ex.secret);
	/* One second of whatever the executor sends: only our own replies. */
	t0 = now_ms();
	while (now_ms() - t0 < 1000) {
		int r = tc_wait_event(&cl, PROTO_MCP_OUTPUT, 0, &f, 100);

		ck_assert_msg(r == -ETIMEDOUT, "the newcomer received MCP_OUTPUT of the old session");
		pings++;
	}
	ck_assert_msg(cl.n_pending == 0, "the newcomer received %u frames of the old session",
		      cl.n_pending);
	ck_assert_int_eq(ping(&cl, 5), 0);
	(void)pings;
	tc_close(&cl);
	texec_stop(&ex);
}
END_TEST

/* ---- a second orchestrator ------------------------------------------------- */

struct answerer {
	struct tclient *c;
	volatile bool stop;
	pthread_t th;
};

/* Keeps a session alive: answers the executor's PINGs until stopped. */
static void *answer_main(void *arg)
{
	struct answerer *a = arg;
	struct tframe f;

	while (!a->stop)
		if (tc_wait_event(a->c, 0xffff, 0, &f, 100) == -EPIPE)
			break;
	return NULL;
}

START_TEST(test_busy_then_take_over_from_a_silent_one)
{
	struct answerer a = { .c = &cl };
	struct tclient b;
	uint64_t t0;
	int r;

	texec_start(&ex, NULL, NULL);
	tc_connect(&cl, ex.url, ex.secret);
	ck_assert_int_eq(pthread_create(&a.th, NULL, answer_main, &a), 0);
	/* A live orchestrator answers the probe: the newcomer is told busy. */
	ck_assert_int_eq(tc_dial(&b, ex.url, T_MS), 0);
	ck_assert_int_eq(tc_hello(&b, ex.secret, false), PROTO_E_BUSY);
	tc_close(&b);
	ck_assert(texec_log_wait(&ex, "busy", T_MS));
	/* Now it stops answering (a hung host: its socket stays open). */
	a.stop = true;
	pthread_join(a.th, NULL);
	t0 = now_ms();
	ck_assert_int_eq(tc_dial(&b, ex.url, T_MS), 0);
	r = tc_hello(&b, ex.secret, false);
	printf("# take-over from a silent orchestrator: %llu ms\n",
	       (unsigned long long)(now_ms() - t0));
	ck_assert_int_eq(r, 0);
	ck_assert_int_eq(ping(&b, 4), 0);
	ck_assert(texec_log_wait(&ex, "did not answer a probe", T_MS));
	ck_assert(tc_closed_by_peer(&cl, T_MS)); /* the old one was let go */
	tc_close(&b);
	tc_close(&cl);
	texec_stop(&ex);
}
END_TEST

/* ---- another uid ----------------------------------------------------------- */

/* Runs `fn` as uid/gid 65534 (nobody) in a child; returns its exit code. */
static int as_nobody(int (*fn)(const char *url), const char *url)
{
	pid_t pid = fork();
	int st;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
			_exit(99);
		_exit(fn(url));
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 98;
}

/* 0 when it could complete the opening (it must not). */
static int try_dial(const char *url)
{
	struct tclient c;
	int r = tc_dial(&c, url, 3000);

	tc_close(&c);
	return r == 0 ? 0 : 1;
}

START_TEST(test_other_uid_cannot_connect)
{
	char url[128];

	if (geteuid() != 0) {
		printf("# SKIP test_other_uid_cannot_connect: needs root to become nobody\n");
		return;
	}
	/* The executor's ipc socket in a 0700 directory (as spawned ones are). */
	texec_start(&ex, NULL, NULL);
	ck_assert_int_eq(as_nobody(try_dial, ex.url), 1);
	texec_stop(&ex);
	/* abstract:// has no permissions at all: the executor checks the uid. */
	snprintf(url, sizeof(url), "abstract://tdm-link-%d-abs", (int)getpid());
	texec_start_url(&ex, url, NULL);
	ck_assert_int_eq(as_nobody(try_dial, ex.url), 1);
	ck_assert(texec_log_wait(&ex, "refusing a local connection from uid 65534", T_MS));
	tc_connect(&cl, ex.url, ex.secret); /* our own uid still gets in */
	ck_assert_int_eq(ping(&cl, 1), 0);
	tc_close(&cl);
	texec_stop(&ex);
}
END_TEST

/* ---- a half-dead connection (network namespace) --------------------------- */

static char ns_name[64], veth_h[16], veth_n[16];
static unsigned ns_net;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static void ns_down(void)
{
	if (!ns_name[0])
		return;
	sh("ip link del %s 2>/dev/null", veth_h);
	sh("ip netns del %s 2>/dev/null", ns_name);
	ns_name[0] = '\0';
}

/* A namespace joined to the host by a veth: host 10.231.N.1, ns .2. */
static bool ns_up(void)
{
	ns_net = (unsigned)getpid() % 200 + 20;
	snprintf(ns_name, sizeof(ns_name), "tdm-link-%d", (int)getpid());
	snprintf(veth_h, sizeof(veth_h), "tdmlh%d", (int)getpid() % 100000);
	snprintf(veth_n, sizeof(veth_n), "tdmln%d", (int)getpid() % 100000);
	if (geteuid() != 0 || sh("ip netns add %s 2>/dev/null", ns_name) != 0) {
		ns_name[0] = '\0';
		return false;
	}
	test_janitor("ip link del %s 2>/dev/null; ip netns del %s 2>/dev/null", veth_h, ns_name);
	if (sh("ip link add %s type veth peer name %s netns %s && "
	       "ip addr add 10.231.%u.1/24 dev %s && ip link set %s up && "
	       "ip -n %s addr add 10.231.%u.2/24 dev %s && ip -n %s link set %s up && "
	       "ip -n %s link set lo up",
	       veth_h, veth_n, ns_name, ns_net, veth_h, veth_h, ns_name, ns_net, veth_n, ns_name,
	       veth_n, ns_name) != 0) {
		ns_down();
		return false;
	}
	return true;
}

/* A child in the namespace holding an authenticated session that answers
 * pings; it writes one byte to `ready` once in. */
static pid_t ns_client(const char *url, const char *secret, int ready)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char path[128];
		struct tclient c;
		struct tframe f;
		int fd;

		snprintf(path, sizeof(path), "/var/run/netns/%s", ns_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
			_exit(90);
		if (tc_dial(&c, url, 5000) != 0 || tc_hello(&c, secret, false) != 0)
			_exit(91);
		if (write(ready, "x", 1) != 1)
			_exit(92);
		for (;;)
			if (tc_wait_event(&c, 0xffff, 0, &f, 1000) == -EPIPE)
				_exit(0);
	}
	return pid;
}

START_TEST(test_half_dead_connection)
{
	const char *args[] = { "--keepalive", "1s", "--keepalive-timeout", "3s", NULL };
	char url[96];
	int p[2];
	char x;
	pid_t a;
	uint64_t t0;
	struct tclient b;

	if (!ns_up()) {
		printf("# SKIP test_half_dead_connection: cannot make a network namespace "
		       "(needs root and ip(8))\n");
		return;
	}
	texec_start_url(&ex, "tcp://0.0.0.0:0", args);
	snprintf(url, sizeof(url), "tcp://10.231.%u.1:%d", ns_net, port_of(ex.url));
	ck_assert_int_eq(pipe(p), 0);
	a = ns_client(url, ex.secret, p[1]);
	ck_assert_int_eq(read(p[0], &x, 1), 1);
	ck_assert(texec_log_wait(&ex, "peer authenticated", T_MS));
	/* Cut it: no FIN, no RST ever reaches the executor. */
	ck_assert_int_eq(sh("ip link set %s down", veth_h), 0);
	t0 = now_ms();
	/* A new orchestrator on another address (loopback) gets in. */
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port_of(ex.url));
	{
		int r = -1;

		while (r != 0 && now_ms() - t0 < 20000) {
			r = tc_dial(&b, url, 5000);
			if (r == 0)
				r = tc_hello(&b, ex.secret, false);
			if (r != 0) {
				tc_close(&b);
				usleep(200 * 1000);
			}
		}
		printf("# half-dead: a new orchestrator got in %llu ms after the cut\n",
		       (unsigned long long)(now_ms() - t0));
		ck_assert_int_eq(r, 0);
	}
	ck_assert_int_eq(ping(&b, 1), 0);
	ck_assert(texec_log_contains(&ex, "did not answer a probe") ||
		  texec_log_contains(&ex, "keepalive timeout"));
	tc_close(&b);
	kill(a, SIGKILL);
	waitpid(a, NULL, 0);
	close(p[0]);
	close(p[1]);
	texec_stop(&ex);
	ns_down();
}
END_TEST

/* Without a newcomer, the keepalive alone lets go of the dead session. */
START_TEST(test_keepalive_drops_dead_session)
{
	const char *args[] = { "--keepalive", "1s", "--keepalive-timeout", "3s", NULL };
	char url[96];
	int p[2];
	char x;
	pid_t a;
	uint64_t t0;

	if (!ns_up()) {
		printf("# SKIP test_keepalive_drops_dead_session: cannot make a network namespace\n");
		return;
	}
	texec_start_url(&ex, "tcp://0.0.0.0:0", args);
	snprintf(url, sizeof(url), "tcp://10.231.%u.1:%d", ns_net, port_of(ex.url));
	ck_assert_int_eq(pipe(p), 0);
	a = ns_client(url, ex.secret, p[1]);
	ck_assert_int_eq(read(p[0], &x, 1), 1);
	ck_assert_int_eq(sh("ip link set %s down", veth_h), 0);
	t0 = now_ms();
	ck_assert(texec_log_wait(&ex, "keepalive timeout", 20000));
	printf("# keepalive: the dead session was dropped %llu ms after the cut\n",
	       (unsigned long long)(now_ms() - t0));
	kill(a, SIGKILL);
	waitpid(a, NULL, 0);
	close(p[0]);
	close(p[1]);
	texec_stop(&ex);
	ns_down();
}
END_TEST

/* ---- other transports ------------------------------------------------------ */

/* ws://: the same link inside a WebSocket (an HTTP ingress in front of an
 * executor); sealed like tcp://, a tool call goes through. */
START_TEST(test_websocket_link)
{
	const char *argv[] = { fixture_path(), NULL };
	uint64_t h;
	char *line;

	texec_start_url(&ex, "ws://127.0.0.1:0/tandem", NULL);
	ck_assert_msg(port_of(ex.url) > 0 || strstr(ex.url, ":0/") == NULL, "%s", ex.url);
	tc_connect(&cl, ex.url, ex.secret);
	ck_assert(cl.sealed);
	h = tc_mcp_start(&cl, "ws", argv, NULL, NULL, NULL, NULL);
	tc_mcp_send(&cl, h, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
	line = tc_mcp_recv(&cl, h, T_MS);
	ck_assert_ptr_nonnull(line);
	ck_assert_ptr_nonnull(strstr(line, "\"id\":1"));
	free(line);
	tc_close(&cl);
	texec_stop(&ex);
}
END_TEST

/* ---- protocol 1 peers ---------------------------------------------------- */

/* A real nng SP pair1 client (what protocol-1 orchestrators were) gets the
 * CHALLENGE, answers HELLO, and receives a clear version error. */
START_TEST(test_v1_orchestrator_told)
{
	nng_socket s;
	nng_msg *m;
	struct proto_msg pm;
	char err[256];
	struct fbuf enc = { 0 };
	struct proto_hello_body h = { .version_min = 1, .version_max = 1 };
	uint8_t nonce[32] = { 1 };

	texec_start(&ex, NULL, NULL);
	ck_assert_int_eq(nng_pair1_open(&s), 0);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, T_MS);
	ck_assert_int_eq(nng_dial(s, ex.url, NULL, 0), 0);
	ck_assert_int_eq(nng_recvmsg(s, &m, 0), 0);
	ck_assert_int_eq(proto_decode_compat(nng_msg_body(m), nng_msg_len(m), &pm, err,
					     sizeof(err)), 0);
	ck_assert_uint_eq(pm.env.type, PROTO_CHALLENGE);
	ck_assert_uint_eq(pm.u.challenge.version_min, PROTO_VERSION_MIN);
	proto_msg_release(&pm);
	nng_msg_free(m);
	h.nonce.ptr = (const char *)nonce;
	h.nonce.len = 32;
	proto_encode_version(fbuf_write, &enc, PROTO_VERSION_SP, PROTO_HELLO, PROTO_REQUEST, 1, &h);
	ck_assert_int_eq(nng_send(s, enc.p, enc.len, 0), 0);
	ck_assert_int_eq(nng_recvmsg(s, &m, 0), 0);
	ck_assert_int_eq(proto_decode_compat(nng_msg_body(m), nng_msg_len(m), &pm, err,
					     sizeof(err)), 0);
	ck_assert_int_eq(pm.env.status, PROTO_E_UNSUPPORTED);
	ck_assert_ptr_nonnull(memmem(pm.err_message.ptr, pm.err_message.len, "protocol 3", 10));
	proto_msg_release(&pm);
	nng_msg_free(m);
	nng_close(s);
	fbuf_free(&enc);
	ck_assert(texec_log_wait(&ex, "speaks link protocol 1", T_MS));
	tc_connect(&cl, ex.url, ex.secret);
	tc_close(&cl);
	texec_stop(&ex);
}
END_TEST

static Suite *link_suite(void)
{
	Suite *s = suite_create("link");
	TCase *tc = tcase_create("link");

	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_replayed_handshake_refused);
	tcase_add_test(tc, test_tampered_sealed_frame);
	tcase_add_test(tc, test_frame_over_limit);
	tcase_add_test(tc, test_close_mid_frame);
	tcase_add_test(tc, test_newcomer_gets_no_old_frames);
	tcase_add_test(tc, test_busy_then_take_over_from_a_silent_one);
	tcase_add_test(tc, test_other_uid_cannot_connect);
	tcase_add_test(tc, test_v1_orchestrator_told);
	tcase_add_test(tc, test_websocket_link);
	tcase_add_test(tc, test_flood);
	tcase_add_test(tc, test_half_dead_connection);
	tcase_add_test(tc, test_keepalive_drops_dead_session);
	tcase_add_test(tc, test_wrong_proof_storm);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(link_suite)
