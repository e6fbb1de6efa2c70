/* test_opsd.c - the operations endpoint on a real loop with real sockets:
 * /livez, /readyz flipping with the daemon's readiness, /metrics with its
 * content type, wrong methods and paths, an oversized head, a connection
 * flood beyond the limit, and address parsing.
 *
 * The loop runs on the test's main thread; a client thread makes blocking
 * HTTP requests and records what it saw, then stops the loop; the main
 * thread asserts after joining it (check's asserts are not thread-safe).
 * Readiness is flipped through loop_post, so only the loop touches it.
 */
#include "loop.h"
#include "metrics.h"
#include "opsd.h"
#include "testmain.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#define MAX_STEPS 16
#define IO_TIMEOUT_S 30 /* only so that a broken server cannot hang the suite */

struct reply {
	int status; /* 0: no HTTP answer (closed or failed) */
	char head[2048];
	char body[8192];
};

struct ctx {
	struct loop *l;
	struct opsd *o;
	char addr[64];
	int port;
	bool ready;        /* loop thread only */
	struct metric *hits;
	void (*client)(struct ctx *c);
	struct reply r[MAX_STEPS];
	int n;
	int flood_open;    /* connections the flood managed to open */
};

static int ready_cb(char *reason, size_t len, void *arg)
{
	struct ctx *c = arg;

	if (c->ready)
		return 0;
	snprintf(reason, len, "environment 'gpu' is disconnected\nsecond line never shown");
	return 1;
}

static void set_ready_cb(void *arg)
{
	struct ctx *c = arg;

	c->ready = !c->ready;
}

static void stop_cb(void *arg)
{
	loop_stop(arg);
}

static int dial(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = IO_TIMEOUT_S };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Sends raw, reads to EOF, splits status / head / body. */
static void request(struct ctx *c, const char *raw, size_t rawlen)
{
	struct reply *r = &c->r[c->n++];
	static char buf[65536];
	size_t len = 0;
	ssize_t k;
	char *sep;
	int fd = dial(c->port);

	memset(r, 0, sizeof(*r));
	if (fd < 0)
		return;
	if (write_all(fd, raw, rawlen) < 0 && errno != EPIPE && errno != ECONNRESET) {
		close(fd);
		return;
	}
	shutdown(fd, SHUT_WR);
	while (len < sizeof(buf) - 1 && (k = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)k;
	close(fd);
	buf[len] = '\0';
	if (sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1)
		r->status = 0;
	sep = strstr(buf, "\r\n\r\n");
	if (!sep)
		return;
	snprintf(r->head, sizeof(r->head), "%.*s", (int)(sep - buf), buf);
	snprintf(r->body, sizeof(r->body), "%s", sep + 4);
}

static void get(struct ctx *c, const char *method, const char *path)
{
	char raw[256];
	int n = snprintf(raw, sizeof(raw), "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
			 method, path);

	request(c, raw, (size_t)n);
}

static void flip_ready(struct ctx *c)
{
	loop_post(c->l, set_ready_cb, c);
	get(c, "GET", "/livez"); /* the post ran before this answer: posts are FIFO */
}

static void *client_main(void *arg)
{
	struct ctx *c = arg;

	c->client(c);
	loop_post(c->l, stop_cb, c->l);
	return NULL;
}

static void run(struct ctx *c, void (*client)(struct ctx *), struct metrics *reg)
{
	char err[256];
	pthread_t th;
	const char *colon;

	c->l = loop_new();
	c->o = opsd_start(c->l, "127.0.0.1:0", reg, ready_cb, c, err, sizeof(err));
	ck_assert_msg(c->o != NULL, "opsd_start: %s", err);
	snprintf(c->addr, sizeof(c->addr), "%s", opsd_address(c->o));
	colon = strrchr(c->addr, ':');
	c->port = atoi(colon + 1);
	ck_assert_int_gt(c->port, 0);
	c->client = client;
	ck_assert_int_eq(pthread_create(&th, NULL, client_main, c), 0);
	ck_assert_int_eq(loop_run(c->l), 0);
	pthread_join(th, NULL);
	c->o = opsd_stop(c->o);
	c->l = loop_free(c->l);
}

static void endpoints_client(struct ctx *c)
{
	get(c, "GET", "/livez");           /* 0 */
	get(c, "GET", "/readyz");          /* 1: not ready */
	flip_ready(c);                     /* 2 */
	get(c, "GET", "/readyz");          /* 3: ready */
	flip_ready(c);                     /* 4 */
	get(c, "GET", "/readyz");          /* 5: not ready again */
	get(c, "GET", "/metrics");         /* 6 */
	get(c, "HEAD", "/metrics");        /* 7 */
	get(c, "POST", "/metrics");        /* 8 */
	get(c, "GET", "/nope");            /* 9 */
	get(c, "GET", "/livez?x=1");       /* 10: the query does not matter */
}

START_TEST(test_endpoints)
{
	static const char *const k[] = { "a", "b", NULL };
	struct ctx c = { 0 };
	struct metrics *reg = metrics_new();
	char err[256];
	struct metrics_desc d = { .name = "hits_total", .help = "h", .type = METRICS_COUNTER,
				  .labels = { { "k", k } } };
	struct metric *m = metrics_add(reg, &d, err, sizeof(err));

	metrics_add_value(m, 1, 41);
	run(&c, endpoints_client, reg);
	ck_assert_int_eq(c.r[0].status, 200);
	ck_assert_str_eq(c.r[0].body, "ok\n");
	ck_assert_int_eq(c.r[1].status, 503);
	ck_assert_str_eq(c.r[1].body, "not ready: environment 'gpu' is disconnected\n");
	ck_assert_int_eq(c.r[3].status, 200);
	ck_assert_str_eq(c.r[3].body, "ready\n");
	ck_assert_int_eq(c.r[5].status, 503);
	ck_assert_int_eq(c.r[6].status, 200);
	ck_assert_ptr_nonnull(strcasestr(c.r[6].head,
					 "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
	ck_assert_ptr_nonnull(strstr(c.r[6].body, "hits_total{k=\"b\"} 41\n"));
	ck_assert_int_eq(c.r[7].status, 200);
	ck_assert_str_eq(c.r[7].body, "");
	ck_assert_int_eq(c.r[8].status, 405);
	ck_assert_int_eq(c.r[9].status, 404);
	ck_assert_int_eq(c.r[10].status, 200);
	metrics_free(reg);
}
END_TEST

/* No registry: /metrics says so, the rest works. */
static void nometrics_client(struct ctx *c)
{
	get(c, "GET", "/metrics");
	get(c, "GET", "/livez");
}

START_TEST(test_no_registry)
{
	struct ctx c = { .ready = true };

	run(&c, nometrics_client, NULL);
	ck_assert_int_eq(c.r[0].status, 503);
	ck_assert_int_eq(c.r[1].status, 200);
}
END_TEST

/* A head larger than the per-connection memory limit is refused; the
 * endpoint lives on. */
static void bighead_client(struct ctx *c)
{
	size_t n = OPSD_MEMORY_LIMIT * 2;
	char *raw = xmalloc(n + 64);
	int len = snprintf(raw, 64, "GET /livez HTTP/1.1\r\nX-Big: ");

	memset(raw + len, 'a', n);
	memcpy(raw + len + n, "\r\n\r\n", 4);
	request(c, raw, (size_t)len + n + 4);
	free(raw);
	get(c, "GET", "/livez");
}

START_TEST(test_oversized_head)
{
	struct ctx c = { .ready = true };

	run(&c, bighead_client, NULL);
	ck_assert_msg(c.r[0].status == 0 || (c.r[0].status >= 400 && c.r[0].status < 500),
		      "oversized head got %d", c.r[0].status);
	ck_assert_int_eq(c.r[1].status, 200);
}
END_TEST

/* Twice OPSD_MAX_CONNS idle connections from one address: MHD closes what
 * is over its per-address limit at once, and once the flood ends a probe is
 * answered. Waits (bounded) until the expected closes happened. */
static void flood_client(struct ctx *c)
{
	enum { N = OPSD_MAX_CONNS * 2 };
	struct pollfd p[N];
	int closed = 0;
	uint64_t deadline = now_ms() + 20000;
	char b;

	for (int i = 0; i < N; i++) {
		p[i].fd = dial(c->port);
		p[i].events = POLLIN;
		c->flood_open += p[i].fd >= 0;
	}
	while (closed < N - OPSD_MAX_PER_IP && now_ms() < deadline) {
		if (poll(p, N, 100) <= 0)
			continue;
		for (int i = 0; i < N; i++)
			if (p[i].fd >= 0 && p[i].revents && read(p[i].fd, &b, 1) <= 0) {
				close(p[i].fd);
				p[i].fd = -1;
				closed++;
			}
	}
	c->r[MAX_STEPS - 1].status = closed;
	for (int i = 0; i < N; i++)
		if (p[i].fd >= 0)
			close(p[i].fd);
	/* MHD frees the closed connections' slots when it next reads them: a
	 * probe may be refused a moment longer, as a retrying prober sees. */
	deadline = now_ms() + 20000;
	for (;;) {
		c->n = 0;
		get(c, "GET", "/livez");
		if (c->r[0].status == 200 || now_ms() >= deadline)
			break;
		usleep(10000);
	}
}

START_TEST(test_connection_flood)
{
	struct ctx c = { .ready = true };

	run(&c, flood_client, NULL);
	ck_assert_int_eq(c.flood_open, OPSD_MAX_CONNS * 2);
	ck_assert_int_ge(c.r[MAX_STEPS - 1].status, OPSD_MAX_CONNS * 2 - OPSD_MAX_PER_IP);
	ck_assert_int_eq(c.r[0].status, 200);
}
END_TEST

START_TEST(test_parse_listen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char err[256];

	ck_assert_int_eq(opsd_parse_listen("127.0.0.1:9464", &ss, &len, err, sizeof(err)), 0);
	ck_assert_int_eq(ss.ss_family, AF_INET);
	ck_assert_int_eq(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9464);
	ck_assert_int_eq(opsd_parse_listen("0.0.0.0:0", &ss, &len, err, sizeof(err)), 0);
	ck_assert_int_eq(opsd_parse_listen("[::1]:80", &ss, &len, err, sizeof(err)), 0);
	ck_assert_int_eq(ss.ss_family, AF_INET6);
	ck_assert_int_eq(opsd_parse_listen("9464", &ss, &len, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "HOST:PORT"));
	ck_assert_int_eq(opsd_parse_listen("127.0.0.1:", &ss, &len, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(opsd_parse_listen("127.0.0.1:65536", &ss, &len, err, sizeof(err)),
			 -EINVAL);
	ck_assert_int_eq(opsd_parse_listen("127.0.0.1:-1", &ss, &len, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(opsd_parse_listen("::1:80", &ss, &len, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(opsd_parse_listen("[::1]80", &ss, &len, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(opsd_parse_listen(":80", &ss, &len, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(opsd_parse_listen("no.such.host.invalid:80", &ss, &len, err,
					   sizeof(err)), -EINVAL);
	ck_assert_int_eq(opsd_parse_listen(NULL, &ss, &len, err, sizeof(err)), -EINVAL);
}
END_TEST

START_TEST(test_address_in_use)
{
	struct loop *l = loop_new();
	char err[256], addr[64];
	struct opsd *a = opsd_start(l, "127.0.0.1:0", NULL, NULL, NULL, err, sizeof(err));
	struct opsd *b;

	ck_assert_ptr_nonnull(a);
	snprintf(addr, sizeof(addr), "%s", opsd_address(a));
	b = opsd_start(l, addr, NULL, NULL, NULL, err, sizeof(err));
	ck_assert_ptr_null(b);
	ck_assert_ptr_nonnull(strstr(err, "in use"));
	opsd_stop(a);
	loop_free(l);
}
END_TEST

static Suite *opsd_suite(void)
{
	Suite *s = suite_create("opsd");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_endpoints);
	tcase_add_test(tc, test_no_registry);
	tcase_add_test(tc, test_oversized_head);
	tcase_add_test(tc, test_connection_flood);
	tcase_add_test(tc, test_parse_listen);
	tcase_add_test(tc, test_address_in_use);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(opsd_suite)
