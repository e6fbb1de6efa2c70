/* bgateway.c - see bgateway.h. */
#include "bgateway.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bconn.h"
#include "borch.h"
#include "bstat.h"
#include "bsys.h"
#include "btable.h"
#include "util.h"

#define BLOCKS 4u
#define CONNS 32u
#define START_MS 20000u
#define ANSWER_NS (BCONN_TIMEOUT_MS * 1000000ull)
#define ECHOED "Echo: bench"
#define CALL_BODY "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64 ",\"method\":\"tools/call\"," \
		  "\"params\":{\"name\":\"%s\",\"arguments\":{\"message\":\"bench\"}}}"
#define PING_BODY "{\"jsonrpc\":\"2.0\",\"id\":%" PRIu64 ",\"method\":\"ping\"}"
#define TARGET_RATIO 0.25

/* ---- a keep-alive HTTP/1.1 client, one request at a time per connection -- */

struct hc {
	int fd;
	int port;
	char *buf;
	size_t start, end, cap;
	char *body; /* the last answer's body, decoded (chunked) */
	size_t body_len, body_cap;
	char sid[128];
	uint64_t next_id;
	uint64_t t0;
};

static struct hc *hc_open(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct hc *h = xcalloc(1, sizeof(*h));
	uint64_t deadline = bsys_now_ns() + START_MS * 1000000ull;
	int one = 1;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (;;) {
		h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (connect(h->fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			break;
		close(h->fd);
		if (bsys_now_ns() > deadline)
			bsys_fail("127.0.0.1:%d: %s", port, strerror(errno));
		bsys_sleep_ms(20);
	}
	setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	h->port = port;
	h->cap = 64 * 1024;
	h->buf = xmalloc(h->cap);
	return h;
}

static void hc_free(struct hc *h)
{
	if (!h)
		return;
	close(h->fd);
	free(h->buf);
	free(h->body);
	free(h);
}

static void hc_post(struct hc *h, const char *path, const char *sid, const char *body)
{
	char req[2048];
	int n = snprintf(req, sizeof(req),
			 "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json"
			 "\r\nAccept: application/json, text/event-stream\r\n%s%s%s"
			 "Content-Length: %zu\r\n\r\n%s",
			 path, h->port, sid ? "Mcp-Session-Id: " : "", sid ? sid : "",
			 sid ? "\r\nMCP-Protocol-Version: 2025-06-18\r\n" : "", strlen(body), body);

	if (n < 0 || (size_t)n >= sizeof(req) || write_all(h->fd, req, (size_t)n) < 0)
		bsys_fail("127.0.0.1:%d: cannot send a request", h->port);
	h->t0 = bsys_now_ns();
}

static void body_add(struct hc *h, const char *p, size_t n)
{
	if (h->body_len + n + 1 > h->body_cap) {
		h->body_cap = 2 * (h->body_len + n + 1);
		h->body = xrealloc(h->body, h->body_cap);
	}
	memcpy(h->body + h->body_len, p, n);
	h->body_len += n;
	h->body[h->body_len] = '\0';
}

/* A header's value in the head [p, end), or NULL. */
static const char *head_value(const char *p, const char *end, const char *name, size_t *len)
{
	size_t n = strlen(name);

	for (const char *l = p; l < end; l = strstr(l, "\r\n") + 2) {
		if ((size_t)(end - l) > n + 1 && !strncasecmp(l, name, n) && l[n] == ':') {
			const char *v = l + n + 1 + strspn(l + n + 1, " ");

			*len = (size_t)(strstr(v, "\r\n") - v);
			return v;
		}
	}
	return NULL;
}

/* Decodes a chunked body starting at p; returns its end, or NULL when it
 * is not all there yet. */
static const char *chunked(struct hc *h, const char *p, const char *end)
{
	h->body_len = 0;
	for (;;) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		unsigned long n;

		if (!eol)
			return NULL;
		n = strtoul(p, NULL, 16);
		if ((size_t)(end - eol) < n + 4)
			return NULL;
		if (!n)
			return eol + 4;
		body_add(h, eol + 2, n);
		p = eol + 2 + n + 2;
	}
}

/* The answer, if it is all buffered: status, body in h->body. */
static bool hc_parse(struct hc *h, int *status)
{
	const char *p = h->buf + h->start, *end = h->buf + h->end, *head_end, *v, *done;
	size_t vl;

	if (h->end == h->start)
		return false;
	h->buf[h->end] = '\0';
	head_end = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
	if (!head_end)
		return false;
	*status = atoi(p + 9);
	if ((v = head_value(p, head_end + 2, "Mcp-Session-Id", &vl)) && vl < sizeof(h->sid))
		snprintf(h->sid, sizeof(h->sid), "%.*s", (int)vl, v);
	if ((v = head_value(p, head_end + 2, "Content-Length", &vl))) {
		size_t cl = strtoul(v, NULL, 10);

		if ((size_t)(end - head_end - 4) < cl)
			return false;
		h->body_len = 0;
		body_add(h, head_end + 4, cl);
		done = head_end + 4 + cl;
	} else {
		done = chunked(h, head_end + 4, end);
		if (!done)
			return false;
	}
	h->start = (size_t)(done - h->buf);
	if (h->start == h->end)
		h->start = h->end = 0;
	return true;
}

static void hc_fill(struct hc *h)
{
	ssize_t n;

	if (h->end + 4096 > h->cap) {
		memmove(h->buf, h->buf + h->start, h->end - h->start);
		h->end -= h->start;
		h->start = 0;
		if (h->end + 4096 > h->cap) {
			h->cap *= 2;
			h->buf = xrealloc(h->buf, h->cap);
		}
	}
	n = read(h->fd, h->buf + h->end, h->cap - h->end - 1);
	if (n <= 0)
		bsys_fail("127.0.0.1:%d: the connection ended (%s)", h->port,
			  n ? strerror(errno) : "EOF");
	h->end += (size_t)n;
}

static int hc_answer(struct hc *h)
{
	uint64_t deadline = bsys_now_ns() + ANSWER_NS;
	struct pollfd pfd = { .fd = h->fd, .events = POLLIN };
	int status;

	while (!hc_parse(h, &status)) {
		bsys_check_interrupt();
		if (bsys_now_ns() > deadline)
			bsys_fail("127.0.0.1:%d: no answer", h->port);
		if (poll(&pfd, 1, 100) > 0)
			hc_fill(h);
	}
	return status;
}

static void check_echo(const struct hc *h, int status, const char *who)
{
	if (status != 200 || !strstr(h->body, ECHOED) || strstr(h->body, "\"isError\":true"))
		bsys_fail("%s: the echo answer is wrong (%d): %.300s", who, status, h->body);
}

/* ---- sessions and loops ------------------------------------------------------ */

struct target {
	const char *who;
	int port;       /* HTTP; 0: c */
	const char *tool; /* NULL: MCP ping (answered by the gateway itself) */
	struct bconn *c; /* the server's pipes, or tandem's client API */
	const char *thread; /* client API: the thread (else a raw MCP call on c) */
	struct hc *h;    /* sequential HTTP calls */
};

static void http_session(struct target *t, struct hc *h)
{
	static const char init[] =
		"{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
		"\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":"
		"{\"name\":\"tandem-bench\",\"version\":\"1\"}}}";
	int st;

	hc_post(h, "/mcp", NULL, init);
	st = hc_answer(h);
	if (st != 200 || !h->sid[0])
		bsys_fail("%s: initialize: %d %.300s", t->who, st, h->body);
	hc_post(h, "/mcp", h->sid, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
	st = hc_answer(h);
	if (st != 202)
		bsys_fail("%s: notifications/initialized: %d", t->who, st);
}

static void call_once(struct target *t, uint64_t id, uint64_t *lat)
{
	char body[512];
	uint64_t t0;

	if (!t->tool) {
		snprintf(body, sizeof(body), PING_BODY, id);
		hc_post(t->h, "/mcp", t->h->sid, body);
		t0 = t->h->t0;
		if (hc_answer(t->h) != 200 || !strstr(t->h->body, "\"result\""))
			bsys_fail("%s: the ping answer is wrong: %.300s", t->who, t->h->body);
		*lat = bsys_now_ns() - t0;
		return;
	}
	if (t->thread)
		snprintf(body, sizeof(body), "{\"id\":%" PRIu64 ",\"method\":\"mcpServer/tool/call\","
			 "\"params\":{\"threadId\":\"%s\",\"server\":\"every\",\"tool\":\"echo\","
			 "\"arguments\":{\"message\":\"bench\"}}}", id, t->thread);
	else
		snprintf(body, sizeof(body), CALL_BODY, id, t->tool);
	if (!t->port) {
		const char *line;
		size_t len;
		struct bmsg m;

		strcat(body, "\n");
		t0 = bsys_now_ns();
		bconn_send(t->c, body, strlen(body));
		do {
			bconn_read_line(t->c, t0 + ANSWER_NS, &line, &len);
			bconn_scan(line, len, &m);
		} while (!m.has_id);
		if (!m.has_result || !memmem(line, len, ECHOED, strlen(ECHOED)))
			bsys_fail("%s: the echo answer is wrong: %.300s", t->who, line);
		*lat = bsys_now_ns() - t0;
		return;
	}
	hc_post(t->h, "/mcp", t->h->sid, body);
	t0 = t->h->t0;
	check_echo(t->h, hc_answer(t->h), t->who);
	*lat = bsys_now_ns() - t0;
}

static void seq(struct target *t, size_t warm, size_t n, uint64_t *lat)
{
	uint64_t scratch;

	for (size_t i = 0; i < warm + n; i++)
		call_once(t, 1000 + i, i < warm ? &scratch : &lat[i - warm]);
}

/* CONNS connections of one session (one server behind both gateways:
 * supergateway --stateful starts a server per session), one call in flight
 * on each. */
static double inflight(struct target *t, unsigned warm_ms, unsigned run_ms)
{
	struct hc *hs[CONNS];
	struct pollfd pfd[CONNS];
	char body[512];
	uint64_t start, count_from, end, answers = 0, id = 1;
	int st;

	for (unsigned i = 0; i < CONNS; i++) {
		hs[i] = hc_open(t->port);
		snprintf(hs[i]->sid, sizeof(hs[i]->sid), "%s", t->h->sid);
		pfd[i] = (struct pollfd){ .fd = hs[i]->fd, .events = POLLIN };
		snprintf(body, sizeof(body), CALL_BODY, id++, t->tool);
		hc_post(hs[i], "/mcp", hs[i]->sid, body);
	}
	start = bsys_now_ns();
	count_from = start + warm_ms * 1000000ull;
	end = count_from + run_ms * 1000000ull;
	while (bsys_now_ns() < end) {
		bsys_check_interrupt();
		if (poll(pfd, CONNS, 1000) <= 0)
			continue;
		for (unsigned i = 0; i < CONNS; i++) {
			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			hc_fill(hs[i]);
			while (hc_parse(hs[i], &st)) {
				check_echo(hs[i], st, t->who);
				if (bsys_now_ns() >= count_from)
					answers++;
				snprintf(body, sizeof(body), CALL_BODY, id++, t->tool);
				hc_post(hs[i], "/mcp", hs[i]->sid, body);
			}
		}
	}
	for (unsigned i = 0; i < CONNS; i++) {
		hc_answer(hs[i]); /* the last one in flight */
		hc_free(hs[i]);
	}
	return (double)answers * 1e3 / run_ms;
}

/* ---- the three ways to the server ------------------------------------------ */

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		bsys_fail("no free port: %s", strerror(errno));
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static void direct_start(struct target *t, const char *node, const char *everything)
{
	/* The SDK's servers want "jsonrpc": bconn_call does not send it. */
	static const char init[] =
		"{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{"
		"\"protocolVersion\":\"2025-06-18\",\"capabilities\":{},\"clientInfo\":"
		"{\"name\":\"tandem-bench\",\"version\":\"1\"}}}\n"
		"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n";
	uint64_t deadline = bsys_now_ns() + START_MS * 1000000ull;
	const char *line;
	size_t len;
	struct bmsg m;

	t->c = bconn_spawn("server-everything (direct)",
			   (const char *const[]){ node, everything, "stdio", NULL }, -1);
	bconn_send(t->c, init, sizeof(init) - 1);
	do {
		bconn_read_line(t->c, deadline, &line, &len);
		bconn_scan(line, len, &m);
	} while (!m.has_id);
	if (!m.has_result)
		bsys_fail("server-everything: initialize: %.300s", line);
}

static pid_t supergateway_start(const char *node, const char *sg, const char *everything,
				int port)
{
	_cleanup_free_ char *cmd = xasprintf("%s %s stdio", node, everything);
	_cleanup_free_ char *p = xasprintf("%d", port);
	_cleanup_free_ char *log = xasprintf("%s/gateway/supergateway.log", bsys_tmpdir());
	FILE *lf = fopen(log, "w");
	pid_t pid;

	if (!lf)
		bsys_fail("open %s: %s", log, strerror(errno));
	bsys_show_on_fail(log);
	pid = bsys_spawn((const char *const[]){ node, sg, "--stdio", cmd, "--outputTransport",
						"streamableHttp", "--stateful", "--port", p,
						"--streamableHttpPath", "/mcp", "--logLevel",
						"none", NULL },
			 -1, -1, fileno(lf), NULL);
	fclose(lf);
	return pid;
}

static char *tandem_config(const char *node, const char *everything)
{
	return xasprintf("[mcp_servers.every]\ncommand = \"%s\"\nargs = [\"%s\", \"stdio\"]\n",
			 node, everything);
}

/* ---- the phase ---------------------------------------------------------------- */

static void skip(const char *why)
{
	bsys_progress("gateway: skipped: %s", why);
	btable_add("MCP gateway tool call p50 (server-everything echo)", NULL, NULL, why,
		   "<= 0.25x supergateway's overhead", BTABLE_SKIP);
}

struct figures {
	uint64_t p50, p99;
	double rate;
};

/* f[0..3]: direct, gateway, supergateway, client API (the interleaved
 * blocks); f[4]: ping through the gateway, measured after them. */
static void rows(const struct figures f[5])
{
	const struct figures *d = &f[0], *t = &f[1], *s = &f[2], *a = &f[3], *p = &f[4];
	double ot = (double)t->p50 - (double)d->p50, os = (double)s->p50 - (double)d->p50;
	double ratio = os > 0 ? ot / os : 99;

	btable_add("MCP gateway tool call p50 (HTTP -> orchestrator -> executor -> "
		   "server-everything echo)",
		   btable_us(t->p50),
		   btable_fmt("direct %s, supergateway %s", btable_us(d->p50), btable_us(s->p50)),
		   btable_fmt("overhead %+.0f us vs %+.0f us: %.2fx", ot / 1e3, os / 1e3, ratio),
		   "<= 0.25x supergateway's", btable_check(ratio <= TARGET_RATIO));
	btable_add("  the same call through tandem's client API (unix socket)", btable_us(a->p50),
		   btable_fmt("direct %s", btable_us(d->p50)),
		   btable_fmt("overhead %+.0f us; gateway %+.0f us more",
			      ((double)a->p50 - (double)d->p50) / 1e3,
			      ((double)t->p50 - (double)a->p50) / 1e3),
		   "info", BTABLE_INFO);
	btable_add("  MCP ping through tandem's gateway (HTTP and session only, no executor)",
		   btable_us(p->p50), NULL, NULL, "info", BTABLE_INFO);
	btable_add("MCP gateway tool call p99", btable_us(t->p99),
		   btable_fmt("direct %s, supergateway %s", btable_us(d->p99), btable_us(s->p99)),
		   btable_fmt("overhead %+.0f us vs %+.0f us",
			      ((double)t->p99 - (double)d->p99) / 1e3,
			      ((double)s->p99 - (double)d->p99) / 1e3),
		   "info", BTABLE_INFO);
	btable_add("MCP gateway calls/s, 32 in flight (32 connections, 1 session)",
		   btable_fmt("%.0f calls/s", t->rate),
		   btable_fmt("supergateway %.0f calls/s", s->rate),
		   btable_fmt("%.1fx", s->rate > 0 ? t->rate / s->rate : 0), "info", BTABLE_INFO);
}

/* The front end alone: what the gateway adds before and after the executor
 * hop. Measured after the four interleaved ways, which it does not touch. */
static void ping(const struct bench_opts *o, struct target *gw, size_t n, struct figures *f)
{
	struct target t = *gw;
	uint64_t *lat = xcalloc(n, sizeof(uint64_t));

	t.who = "tandem's gateway (ping)";
	t.tool = NULL;
	seq(&t, o->seq_warm / 4, n, lat);
	f->p50 = bstat_pct(lat, n, 50);
	f->p99 = bstat_pct(lat, n, 99);
	free(lat);
}

static void measure(const struct bench_opts *o, struct target tg[4], struct figures f[5])
{
	size_t per = MAX(o->seq_n / 5 / BLOCKS, (size_t)50), n = per * BLOCKS;
	uint64_t *lat[4];

	bsys_progress("gateway: %zu calls each: direct, through tandem's gateway, through "
		      "supergateway, through tandem's client API", n);
	for (int k = 0; k < 4; k++)
		lat[k] = xcalloc(n, sizeof(uint64_t));
	for (unsigned b = 0; b < BLOCKS; b++)
		for (int k = 0; k < 4; k++)
			seq(&tg[k], b ? 10 : o->seq_warm / 4, per, lat[k] + b * per);
	for (int k = 0; k < 4; k++) {
		f[k].p50 = bstat_pct(lat[k], n, 50);
		f[k].p99 = bstat_pct(lat[k], n, 99);
		free(lat[k]);
	}
	ping(o, &tg[1], n, &f[4]);
	bsys_progress("gateway: calls/s with %u in flight (tandem :%d, supergateway :%d)", CONNS,
		      tg[1].port, tg[2].port);
	f[1].rate = inflight(&tg[1], o->tput_warm_ms, o->tput_ms);
	f[2].rate = inflight(&tg[2], o->tput_warm_ms, o->tput_ms);
}

void bgateway_run(const struct bench_opts *o)
{
	const char *peers = getenv("TANDEM_NPM_PEERS");
	_cleanup_free_ char *node = bsys_which("node"), *everything = NULL, *sg = NULL;
	_cleanup_free_ char *cfg = NULL, *dir = NULL, *listen = NULL;
	struct target tg[4] = { { .who = "direct", .tool = "echo" },
				{ .who = "tandem's gateway", .tool = "every__echo" },
				{ .who = "supergateway", .tool = "echo" },
				{ .who = "tandem's client API", .tool = "echo" } };
	struct figures f[5] = { 0 };
	struct borch *orch;
	pid_t sgpid;

	everything = xasprintf("%s/node_modules/@modelcontextprotocol/server-everything/dist/"
			       "index.js", peers ? peers : "");
	sg = xasprintf("%s/node_modules/supergateway/dist/index.js", peers ? peers : "");
	if (!node || !peers || access(everything, R_OK) < 0 || access(sg, R_OK) < 0) {
		skip(!node ? "no node" : "npm peers not installed ($TANDEM_NPM_PEERS)");
		return;
	}
	dir = xasprintf("%s/gateway", bsys_tmpdir());
	bsys_mkdir(dir);
	direct_start(&tg[0], node, everything);
	tg[1].port = free_port();
	listen = xasprintf("127.0.0.1:%d", tg[1].port);
	cfg = tandem_config(node, everything);
	orch = borch_start_args(&o->bins, "gateway-orch", cfg,
				(const char *const[]){ "--mcp-listen", listen, NULL });
	tg[3].c = orch->c;
	tg[3].thread = borch_thread_start(orch->c, NULL, NULL, 0);
	tg[2].port = free_port();
	sgpid = supergateway_start(node, sg, everything, tg[2].port);
	for (int k = 1; k < 3; k++) {
		tg[k].h = hc_open(tg[k].port);
		http_session(&tg[k], tg[k].h);
	}
	measure(o, tg, f);
	rows(f);
	free((char *)tg[3].thread);
	for (int k = 1; k < 3; k++)
		hc_free(tg[k].h);
	bsys_stop(sgpid, 2000);
	borch_stop(orch);
	bsys_stop(tg[0].c->pid, 2000); /* node may not end with status 0 at EOF */
	tg[0].c->pid = 0;
	bconn_free(tg[0].c);
}
