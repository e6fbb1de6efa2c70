/* blink.c - see blink.h. */
#include "blink.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bconn.h"
#include "bhops.h"
#include "bload.h"
#include "borch.h"
#include "bstat.h"
#include "bsys.h"
#include "btable.h"
#include "bproc.h"
#include "frame.h"
#include "handshake.h"
#include "lsess.h"
#include "seal.h"
#include "util.h"

#define INFLIGHT 32u
#define READY_TIMEOUT_MS 10000u
#define SEAL_FRAME_PAYLOAD 200u /* about an MCP_SEND of a small tools/call */

/* ns per frame for seal + open of frames of `len` bytes. */
static double seal_cost(enum seal_aead aead, size_t len, unsigned n)
{
	uint8_t key[SEAL_KEY_LEN], prefix[SEAL_PREFIX_LEN];
	uint8_t *buf = xcalloc(1, FRAME_HDR + len + SEAL_TAG_LEN);
	struct seal tx, rx;
	size_t plen;
	uint64_t t0;

	randombytes_buf(key, sizeof(key));
	randombytes_buf(prefix, sizeof(prefix));
	if (seal_init(&tx, aead, key, prefix) < 0 || seal_init(&rx, aead, key, prefix) < 0)
		bsys_fail("seal: cannot set up %s", seal_aead_name(aead));
	t0 = bsys_now_ns();
	for (unsigned i = 0; i < n; i++) {
		if (seal_frame(&tx, buf, len) < 0 ||
		    seal_open(&rx, buf, buf + FRAME_HDR, len + SEAL_TAG_LEN, &plen) < 0 || plen != len)
			bsys_fail("seal: frame %u did not open", i);
	}
	t0 = bsys_now_ns() - t0;
	seal_wipe(&tx);
	seal_wipe(&rx);
	free(buf);
	return (double)t0 / n;
}

/* targeted: a suite two current tandem builds agree on (the target
 * applies); the compatibility suite is only measured. */
static void row_seal(enum seal_aead aead, const char *note, bool targeted)
{
	double small = seal_cost(aead, SEAL_FRAME_PAYLOAD, 200000);
	double big = seal_cost(aead, 64 * 1024, 2000);

	/* A tool call is two frames (MCP_SEND out, MCP_OUTPUT back), each
	 * sealed by one daemon and opened by the other. */
	btable_add(btable_fmt("sealing per frame, %s (200 B%s)", seal_aead_name(aead), note),
		   btable_fmt("%.2f us", small / 1e3), NULL,
		   btable_fmt("%.2f us per call (2 frames); 64 KiB: %.1f us", 2 * small / 1e3,
			      big / 1e3),
		   targeted ? "<= 3 us/call" : "info",
		   targeted ? btable_check(2 * small <= 3000.0) : BTABLE_INFO);
}

static void rows_seal(void)
{
	/* In the handshake's order of preference. Two builds of this version
	 * always agree on aes256gcm or chacha20poly1305; xchacha20poly1305 is
	 * chosen only with a peer that offers nothing else (an older build). */
	if (seal_aead_available(SEAL_AES256GCM))
		row_seal(SEAL_AES256GCM, "", true);
	if (seal_aead_available(SEAL_CHACHA20POLY1305))
		row_seal(SEAL_CHACHA20POLY1305, "", true);
	row_seal(SEAL_XCHACHA20POLY1305, ", compatibility", false);
}

/* An executor on tcp://127.0.0.1:0 with a token; returns its pid and sets
 * *port from its log. */
static pid_t start_sealed_executor(const struct bench_opts *o, const char *dir,
				   const char *token_file, int *port)
{
	_cleanup_free_ char *log = xasprintf("%s/executor.log", dir);
	uint64_t deadline = bsys_now_ns() + READY_TIMEOUT_MS * 1000000ull;
	int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	pid_t pid;

	if (fd < 0)
		bsys_fail("open %s: %s", log, strerror(errno));
	bsys_show_on_fail(log);
	pid = bsys_spawn((const char *const[]){ o->bins.executor, "--listen", "tcp://127.0.0.1:0",
						"--auth-token-file", token_file, "--id",
						"bench-sealed", "--log-level", "info", NULL },
			 -1, -1, fd, NULL);
	close(fd);
	for (*port = 0; !*port;) {
		_cleanup_free_ char *text = bsys_read_file(log, NULL);
		const char *p = text ? strstr(text, "listening on tcp://127.0.0.1:") : NULL;

		if (p)
			*port = atoi(p + strlen("listening on tcp://127.0.0.1:"));
		else if (bsys_now_ns() > deadline)
			bsys_fail("the sealed-link executor did not listen (see %s)", log);
		else
			bsys_sleep_ms(5);
	}
	bsys_forget_on_fail(log);
	return pid;
}

static void wait_ready(struct bconn *c, const char *env)
{
	uint64_t deadline = bsys_now_ns() + READY_TIMEOUT_MS * 1000000ull;

	for (;;) {
		json_t *r = bconn_call_ok(c, "environment/status", json_pack("{s:s}", "environmentId",
									    env));
		const char *st = json_string_value(json_object_get(r, "status"));
		bool ready = st && strcmp(st, "ready") == 0;

		json_decref(r);
		if (ready)
			return;
		if (bsys_now_ns() > deadline)
			bsys_fail("environment '%s' not ready after %u ms", env, READY_TIMEOUT_MS);
		bsys_sleep_ms(5);
	}
}

/* ---- the link alone: PING round trips against the executor -------------- */

struct rawlink {
	int fd;
	struct seal tx, rx;
	struct fbuf in;
	uint64_t tx_seq, rx_seq; /* the session header (protocol 3, lsess.h) */
};

static void raw_write(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			bsys_fail("link bench: write: %s", strerror(errno));
		p = (const char *)p + w;
		n -= (size_t)w;
	}
}

static void raw_read_more(struct rawlink *l)
{
	ssize_t n;

	fbuf_reserve(&l->in, 65536);
	n = read(l->fd, l->in.p + l->in.len, l->in.cap - l->in.len);
	if (n <= 0)
		bsys_fail("link bench: the executor closed the connection");
	l->in.len += (size_t)n;
}

/* The handshake with the executor's token, over a plain blocking socket. */
static void raw_connect(struct rawlink *l, int port, const char *token)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	uint8_t key[32];
	struct hs_params p = { .role = HS_ORCHESTRATOR, .key = key, .orchestrator_id = "bench",
			       .environment_id = "bench" };
	struct fbuf out = { 0 };
	struct hs *h;
	int one = 1;

	crypto_generichash(key, sizeof(key), (const uint8_t *)token, strlen(token), NULL, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l->fd < 0 || connect(l->fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		bsys_fail("link bench: connect: %s", strerror(errno));
	setsockopt(l->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	h = hs_new(&p);
	hs_start(h, &out);
	while (hs_state(h) == HS_RUNNING) {
		size_t used;

		if (out.len)
			raw_write(l->fd, out.p, out.len);
		out.len = 0;
		raw_read_more(l);
		used = hs_input(h, l->in.p, l->in.len, &out);
		memmove(l->in.p, l->in.p + used, l->in.len - used);
		l->in.len -= used;
	}
	if (hs_state(h) != HS_DONE || !hs_result(h)->sealed)
		bsys_fail("link bench: handshake: %s", hs_error(h));
	seal_init(&l->tx, hs_result(h)->aead, hs_result(h)->tx_key, hs_result(h)->tx_prefix);
	seal_init(&l->rx, hs_result(h)->aead, hs_result(h)->rx_key, hs_result(h)->rx_prefix);
	hs_free(h);
	fbuf_free(&out);
}

/* Keeps `depth` PINGs in flight for run_ms; returns round trips. */
static uint64_t raw_pings(struct rawlink *l, unsigned depth, unsigned run_ms)
{
	uint64_t end = bsys_now_ns() + (uint64_t)run_ms * 1000000u, done = 0;
	unsigned inflight = 0;
	struct fbuf out = { 0 };

	for (uint32_t id = 1;; ) {
		const uint8_t *payload;
		size_t plen, need;

		while (inflight < depth && bsys_now_ns() < end) {
			struct proto_ping_body b = { .stamp = id, .present = PROTO_ALL_ping_body };
			size_t start = out.len;

			fbuf_reserve(&out, 64 + LSESS_HDR);
			out.len += FRAME_HDR;
			lsess_hdr_put(out.p + out.len, ++l->tx_seq, l->rx_seq);
			out.len += LSESS_HDR;
			proto_encode(fbuf_write, &out, PROTO_PING, PROTO_REQUEST, id++, &b);
			fbuf_reserve(&out, SEAL_TAG_LEN);
			seal_frame(&l->tx, out.p + start, out.len - start - FRAME_HDR);
			out.len += SEAL_TAG_LEN;
			inflight++;
		}
		if (out.len)
			raw_write(l->fd, out.p, out.len);
		out.len = 0;
		if (!inflight)
			break;
		raw_read_more(l);
		while (frame_parse(l->in.p, l->in.len, 1 << 20, &payload, &plen, &need) == 0) {
			size_t used = FRAME_HDR + plen;

			uint64_t seq, ack;

			if (seal_open(&l->rx, l->in.p, (uint8_t *)payload, plen, &plen) < 0)
				bsys_fail("link bench: a reply does not open");
			if (lsess_hdr_parse(payload, plen, &seq, &ack) < 0)
				bsys_fail("link bench: a bad session header");
			if (seq) { /* not a pure ack: a reply */
				l->rx_seq = seq;
				inflight--;
				done++;
			}
			memmove(l->in.p, l->in.p + used, l->in.len - used);
			l->in.len -= used;
		}
	}
	fbuf_free(&out);
	return done;
}

static void rows_pings(const struct bench_opts *o, pid_t exec, int port, const char *token)
{
	struct rawlink l = { 0 };
	uint64_t c0, c1, n;

	raw_connect(&l, port, token);
	raw_pings(&l, INFLIGHT, o->tput_warm_ms);
	c0 = bproc_cpu_ns(exec);
	n = raw_pings(&l, INFLIGHT, o->tput_ms);
	c1 = bproc_cpu_ns(exec);
	btable_add("link alone: PING round trips, 32 in flight", btable_fmt("%.0f/s",
									       n * 1000.0 / o->tput_ms),
		   NULL, btable_fmt("executor %.2f us CPU per round trip (sealed)",
				    (double)(c1 - c0) / 1e3 / (double)n),
		   NULL, BTABLE_INFO);
	close(l.fd);
	fbuf_free(&l.in);
	seal_wipe(&l.tx);
	seal_wipe(&l.rx);
}

static void rows_sealed(const struct bench_opts *o, const struct bench_floor *f)
{
	_cleanup_free_ char *dir = xasprintf("%s/sealed", bsys_tmpdir());
	_cleanup_free_ char *token = xasprintf("%s/token", dir);
	_cleanup_free_ char *toml = NULL, *plugin = NULL, *tokdir = NULL, *tokfile = NULL;
	struct bload_target t = { .n_threads = 1, .server = "fx" };
	uint64_t *lat = xcalloc(o->seq_n, sizeof(*lat));
	const char *ids[] = { "sealed" }, *paths[1];
	struct bhops_floor h;
	struct borch *orch;
	pid_t exec, pids[2];
	double cpu[2] = { 0 }, rate;
	uint64_t p50;
	char *tid;
	int port;

	bsys_mkdir(dir);
	bsys_write_file(token, "bench-sealed-link-token-0123456789abcdef\n");
	chmod(token, 0600);
	exec = start_sealed_executor(o, dir, token, &port);
	rows_pings(o, exec, port, "bench-sealed-link-token-0123456789abcdef");
	/* The same shape with do-nothing relays, just before tandem's rows. */
	bhops_run(o, f, &h);
	toml = xasprintf("[[environments]]\nid = \"sealed\"\nurl = \"tcp://127.0.0.1:%d\"\n", port);
	orch = borch_start_env(&o->bins, "sealed-orch", NULL, toml, "sealed", token);
	plugin = xasprintf("%s/plugin", orch->dir);
	borch_make_plugin(&o->bins, plugin, "fx");
	paths[0] = plugin;
	wait_ready(orch->c, "sealed");
	tid = borch_thread_start_env(orch->c, "sealed", ids, paths, 1);
	json_decref(borch_status_ok(orch->c, tid, 1));
	t.threads = (const char *const *)&tid;
	bload_seq(orch->c, &t, o->seq_warm, o->seq_n, lat);
	p50 = bstat_pct(lat, o->seq_n, 50);
	btable_add("sealed tcp link: tool call p50", btable_us(p50),
		   btable_fmt("relay floor %s", btable_us(h.p50_ns)),
		   btable_fmt("%+.0f us over the relay floor; pipe floor %s; p99 %s",
			      ((double)p50 - (double)h.p50_ns) / 1e3, btable_us(f->p50_ns),
			      btable_us(bstat_pct(lat, o->seq_n, 99))),
		   "<= 80 us", btable_check(p50 <= 80000));
	pids[0] = orch->pid;
	pids[1] = exec;
	rate = bload_inflight_cpu(&orch->c, 1, &t, INFLIGHT, o->tput_warm_ms, o->tput_ms, pids, 2,
				  cpu);
	btable_add("sealed tcp link: 32 in flight", btable_fmt("%.0f/s", rate),
		   btable_fmt("relay floor %.0f/s", h.rate),
		   btable_fmt("%.2fx the relay floor; pipe floor %.0f/s", rate / h.rate, f->rate),
		   ">= 40000/s", btable_check(rate >= 40000.0));
	rows_cpu("CPU per call at 32 in flight (sealed)", cpu);
	borch_stop(orch);
	if (!WIFEXITED(bsys_stop(exec, 5000)))
		bsys_fail("the sealed-link executor did not exit cleanly");
	free(tid);
	free(lat);
}

/* ---- resume after a cut: a relay between the orchestrator and the executor */

/* One connection at a time, forwarded both ways; `cut` resets it (RST)
 * and refuses newcomers until cleared: a cut the orchestrator sees at
 * once, so the figure is the resume itself, not the keepalive timeout. */
struct relay {
	int lfd, port, exec_port;
	atomic_bool cut, stop;
	pthread_t th;
};

static void rst_close(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static void relay_pump(struct relay *r, int a)
{
	struct sockaddr_in e = { .sin_family = AF_INET, .sin_port = htons((uint16_t)r->exec_port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char buf[65536];

	if (b < 0 || connect(b, (struct sockaddr *)&e, sizeof(e)) < 0) {
		close(a);
		if (b >= 0)
			close(b);
		return;
	}
	while (!atomic_load(&r->cut) && !atomic_load(&r->stop)) {
		struct pollfd p[2] = { { .fd = a, .events = POLLIN }, { .fd = b, .events = POLLIN } };

		if (poll(p, 2, 20) < 0)
			break;
		for (int i = 0; i < 2; i++) {
			ssize_t n;

			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(p[i].fd, buf, sizeof(buf));
			if (n <= 0)
				goto out;
			raw_write(p[1 - i].fd, buf, (size_t)n);
		}
	}
out:
	rst_close(a);
	rst_close(b);
}

static void *relay_main(void *arg)
{
	struct relay *r = arg;

	while (!atomic_load(&r->stop)) {
		struct pollfd p = { .fd = r->lfd, .events = POLLIN };
		int a;

		if (poll(&p, 1, 20) <= 0)
			continue;
		a = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (a < 0)
			continue;
		if (atomic_load(&r->cut))
			rst_close(a);
		else
			relay_pump(r, a);
	}
	return NULL;
}

static void relay_start(struct relay *r, int exec_port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);

	r->exec_port = exec_port;
	r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (r->lfd < 0 || bind(r->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(r->lfd, 8) < 0 || getsockname(r->lfd, (struct sockaddr *)&a, &len) < 0)
		bsys_fail("resume bench: relay: %s", strerror(errno));
	r->port = ntohs(a.sin_port);
	if (pthread_create(&r->th, NULL, relay_main, r) != 0)
		bsys_fail("resume bench: relay thread");
}

static const char *env_status_of(struct bconn *c, const char *env, char *buf, size_t len)
{
	json_t *r = bconn_call_ok(c, "environment/status", json_pack("{s:s}", "environmentId", env));
	const char *v = json_string_value(json_object_get(r, "status"));

	snprintf(buf, len, "%s", v ? v : "");
	json_decref(r);
	return buf;
}

/* A 5 s cut (the connection reset, the address refusing) with a session:
 * how long after the link returns the environment is ready again, and its
 * first call done; the executor's log says whether it was a resume. */
static void row_resume(const struct bench_opts *o)
{
	_cleanup_free_ char *dir = xasprintf("%s/resume", bsys_tmpdir());
	_cleanup_free_ char *token = xasprintf("%s/token", dir);
	_cleanup_free_ char *toml = NULL, *plugin = NULL, *log = NULL, *text = NULL;
	struct bload_target t = { .n_threads = 1, .server = "fx" };
	const char *ids[] = { "cut" }, *paths[1];
	struct relay r = { 0 };
	struct borch *orch;
	uint64_t lat[1], t0, ready_ns, call_ns;
	char st[32], *tid;
	pid_t exec;
	int port;

	bsys_mkdir(dir);
	bsys_write_file(token, "bench-resume-link-token-0123456789abcdef\n");
	chmod(token, 0600);
	exec = start_sealed_executor(o, dir, token, &port);
	relay_start(&r, port);
	toml = xasprintf("[[environments]]\nid = \"cut\"\nurl = \"tcp://127.0.0.1:%d\"\n", r.port);
	orch = borch_start_env(&o->bins, "resume-orch", NULL, toml, "cut", token);
	plugin = xasprintf("%s/plugin", orch->dir);
	borch_make_plugin(&o->bins, plugin, "fx");
	paths[0] = plugin;
	wait_ready(orch->c, "cut");
	tid = borch_thread_start_env(orch->c, "cut", ids, paths, 1);
	json_decref(borch_status_ok(orch->c, tid, 1));
	t.threads = (const char *const *)&tid;
	bload_seq(orch->c, &t, 0, 1, lat);
	atomic_store(&r.cut, true);
	for (t0 = bsys_now_ns(); strcmp(env_status_of(orch->c, "cut", st, sizeof(st)), "ready") == 0;)
		if (bsys_now_ns() - t0 > READY_TIMEOUT_MS * 1000000ull)
			bsys_fail("resume bench: the cut was not noticed");
		else
			bsys_sleep_ms(5);
	bsys_sleep_ms(o->quick ? 1000 : 5000);
	atomic_store(&r.cut, false);
	t0 = bsys_now_ns();
	wait_ready(orch->c, "cut");
	ready_ns = bsys_now_ns() - t0;
	bload_seq(orch->c, &t, 0, 1, lat);
	call_ns = bsys_now_ns() - t0;
	log = xasprintf("%s/executor.log", dir);
	text = bsys_read_file(log, NULL);
	btable_add(o->quick ? "resume after a 1 s cut (TCP reset), link back to ready"
			    : "resume after a 5 s cut (TCP reset), link back to ready",
		   btable_fmt("%.0f ms", ready_ns / 1e6), NULL,
		   btable_fmt("first call done %.0f ms after; %s", call_ns / 1e6,
			      text && strstr(text, "resumed by orchestrator") ? "session resumed"
									: "NOT resumed"),
		   "<= 1 s", btable_check(ready_ns <= 1000000000ull && text &&
					  strstr(text, "resumed by orchestrator")));
	borch_stop(orch);
	atomic_store(&r.stop, true);
	pthread_join(r.th, NULL);
	close(r.lfd);
	if (!WIFEXITED(bsys_stop(exec, 5000)))
		bsys_fail("the resume executor did not exit cleanly");
	free(tid);
}

void blink_run(const struct bench_opts *o, const struct bench_floor *f)
{
	bsys_progress("link: sealing cost, and a sealed tcp:// link");
	if (sodium_init() < 0)
		bsys_fail("sodium_init failed");
	rows_seal();
	rows_sealed(o, f);
	row_resume(o);
}
