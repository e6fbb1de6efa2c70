/* bload.c - see bload.h. */
#include "bload.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "bconn.h"
#include "bproc.h"
#include "bsys.h"
#include "util.h"

#define ECHO_TEXT "bench"
#define REQ_MAX 1024u
#define MAX_CONNS 16u
#define MAX_DEPTH 256u
#define DRAIN_TIMEOUT_NS (BCONN_TIMEOUT_MS * 1000000ull)

static size_t format_call(const struct bload_target *t, int64_t id, char *buf, size_t cap)
{
	int n;

	if (t->mcp)
		n = snprintf(buf, cap,
			     "{\"jsonrpc\":\"2.0\",\"id\":%" PRId64 ",\"method\":\"tools/call\","
			     "\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":\"" ECHO_TEXT
			     "\"}}}\n",
			     id);
	else
		n = snprintf(buf, cap,
			     "{\"id\":%" PRId64 ",\"method\":\"mcpServer/tool/call\",\"params\":"
			     "{\"threadId\":\"%s\",\"server\":\"%s\",\"tool\":\"echo\","
			     "\"arguments\":{\"message\":\"" ECHO_TEXT "\"}}}\n",
			     id, t->threads[(uint64_t)id % t->n_threads], t->server);
	if (n < 0 || (size_t)n >= cap)
		bsys_fail("request does not fit in %zu bytes", cap);
	return (size_t)n;
}

/* Both answers (MCP and client API) are {"result":{"content":[{"text"}]}}. */
static void check_deep(struct bconn *c, const char *line, size_t len)
{
	json_t *msg = json_loadb(line, len, 0, NULL);
	json_t *first = json_array_get(
		json_object_get(json_object_get(msg, "result"), "content"), 0);
	const char *text = json_string_value(json_object_get(first, "text"));
	json_t *is_error = json_object_get(json_object_get(msg, "result"), "isError");

	if (!text || strcmp(text, ECHO_TEXT) != 0 || json_is_true(is_error))
		bsys_fail("%s: the echo answer is wrong: %.300s", c->name, line);
	json_decref(msg);
}

/* Returns true for an answer (checked), false for a notification. */
static bool check_answer(struct bconn *c, const char *line, size_t len, int64_t lo, int64_t hi,
			 bool deep)
{
	struct bmsg m;

	if (bconn_scan(line, len, &m) < 0)
		bsys_fail("%s: not a JSON object: %.300s", c->name, line);
	if (!m.has_id && m.method)
		return false;
	if (m.has_error || !m.has_result)
		bsys_fail("%s: tool call failed: %.500s", c->name, line);
	if (m.id < lo || m.id >= hi)
		bsys_fail("%s: answer for id %" PRId64 ", none in flight", c->name, m.id);
	if (deep)
		check_deep(c, line, len);
	return true;
}

void bload_seq(struct bconn *c, const struct bload_target *t, size_t warm, size_t n,
	       uint64_t *lat)
{
	char req[REQ_MAX];
	const char *line;
	size_t len;

	for (size_t i = 0; i < warm + n; i++) {
		int64_t id = c->next_id++;
		size_t rlen = format_call(t, id, req, sizeof(req));
		uint64_t t0 = bsys_now_ns(), deadline = t0 + DRAIN_TIMEOUT_NS;

		bconn_send(c, req, rlen);
		do
			bconn_read_line(c, deadline, &line, &len);
		while (!check_answer(c, line, len, id, id + 1, i % BLOAD_DEEP_EVERY == 0));
		if (i >= warm)
			lat[i - warm] = bsys_now_ns() - t0;
	}
}

struct flight {
	struct bconn *c;
	int64_t first_id;  /* ids of this run: [first_id, c->next_id) */
	unsigned inflight;
	uint64_t answers;
};

/* Tops the connection up to depth calls, all in one write. */
static void top_up(struct flight *f, const struct bload_target *t, unsigned depth)
{
	static char batch[MAX_DEPTH * REQ_MAX];
	size_t len = 0;

	while (f->inflight < depth) {
		len += format_call(t, f->c->next_id++, batch + len, sizeof(batch) - len);
		f->inflight++;
	}
	if (len)
		bconn_send(f->c, batch, len);
}

/* Handles what one connection has buffered; returns the answers seen. */
static unsigned drain_lines(struct flight *f)
{
	const char *line;
	size_t len;
	unsigned n = 0;

	while (bconn_next_line(f->c, &line, &len)) {
		bool deep = f->answers % (BLOAD_DEEP_EVERY * 4) == 0;

		if (!check_answer(f->c, line, len, f->first_id, f->c->next_id, deep))
			continue;
		if (f->inflight == 0)
			bsys_fail("%s: more answers than calls", f->c->name);
		f->inflight--;
		f->answers++;
		n++;
	}
	return n;
}

static bool all_idle(const struct flight *fl, size_t nc)
{
	for (size_t i = 0; i < nc; i++)
		if (fl[i].inflight)
			return false;
	return true;
}

double bload_inflight(struct bconn *const *cs, size_t nc, const struct bload_target *t,
		      unsigned depth, unsigned warm_ms, unsigned run_ms)
{
	return bload_inflight_cpu(cs, nc, t, depth, warm_ms, run_ms, NULL, 0, NULL);
}

#define MAX_PIDS 4u

static void cpu_sample(const pid_t *pids, size_t n, uint64_t *ns)
{
	for (size_t i = 0; i < n && i < MAX_PIDS; i++)
		ns[i] = bproc_cpu_ns(pids[i]);
}

double bload_inflight_cpu(struct bconn *const *cs, size_t nc, const struct bload_target *t,
			  unsigned depth, unsigned warm_ms, unsigned run_ms, const pid_t *pids,
			  size_t npids, double *cpu_us)
{
	uint64_t cpu0[MAX_PIDS] = { 0 }, cpu1[MAX_PIDS] = { 0 };
	bool sampled = false, sampled_end = false;
	struct flight fl[MAX_CONNS] = { 0 };
	struct pollfd pfd[MAX_CONNS];
	uint64_t start = bsys_now_ns(), measure = start + (uint64_t)warm_ms * 1000000u;
	uint64_t end = measure + (uint64_t)run_ms * 1000000u, counted = 0, now;

	if (nc > MAX_CONNS || depth > MAX_DEPTH)
		bsys_fail("bload_inflight: at most %u connections and %u in flight", MAX_CONNS,
			  MAX_DEPTH);
	for (size_t i = 0; i < nc; i++) {
		fl[i] = (struct flight){ .c = cs[i], .first_id = cs[i]->next_id };
		pfd[i] = (struct pollfd){ .fd = cs[i]->rfd, .events = POLLIN };
		top_up(&fl[i], t, depth);
	}
	while ((now = bsys_now_ns()) < end || !all_idle(fl, nc)) {
		if (now > end + DRAIN_TIMEOUT_NS)
			bsys_fail("calls still unanswered %llu s after the run",
				  DRAIN_TIMEOUT_NS / 1000000000ull);
		if (poll(pfd, nc, 100) < 0 && errno != EINTR)
			bsys_fail("poll: %s", strerror(errno));
		bsys_check_interrupt();
		now = bsys_now_ns();
		if (!sampled && now >= measure) {
			cpu_sample(pids, npids, cpu0);
			sampled = true;
		}
		if (sampled && !sampled_end && now >= end) {
			cpu_sample(pids, npids, cpu1);
			sampled_end = true;
		}
		for (size_t i = 0; i < nc; i++) {
			unsigned got;

			if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			bconn_fill(fl[i].c);
			got = drain_lines(&fl[i]);
			if (now >= measure && now < end)
				counted += got;
			if (now < end)
				top_up(&fl[i], t, depth);
		}
	}
	for (size_t i = 0; i < npids && i < MAX_PIDS && counted; i++)
		cpu_us[i] = (double)(cpu1[i] - cpu0[i]) / 1e3 / (double)counted;
	return (double)counted * 1e9 / (double)(end - measure);
}
