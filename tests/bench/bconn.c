/* bconn.c - see bconn.h. */
#include "bconn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bsys.h"
#include "util.h"

#define READ_CHUNK 65536u
#define POLL_TICK_MS 100 /* how often a wait looks at the interrupt flag */

static struct bconn *conn_new(const char *name, int rfd, int wfd, pid_t pid)
{
	struct bconn *c = xcalloc(1, sizeof(*c));

	c->name = xstrdup(name);
	c->rfd = rfd;
	c->wfd = wfd;
	c->pid = pid;
	c->cap = 4 * READ_CHUNK;
	c->buf = xmalloc(c->cap);
	c->next_id = 1;
	return c;
}

struct bconn *bconn_unix(const char *name, const char *path, unsigned timeout_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint64_t deadline = bsys_now_ns() + (uint64_t)timeout_ms * 1000000u;

	if (strlen(path) >= sizeof(sa.sun_path))
		bsys_fail("socket path too long: %s", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd < 0)
			bsys_fail("socket: %s", strerror(errno));
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return conn_new(name, fd, fd, 0);
		close(fd);
		if ((errno != ENOENT && errno != ECONNREFUSED) || bsys_now_ns() >= deadline)
			bsys_fail("%s: connect %s: %s", name, path, strerror(errno));
		bsys_sleep_ms(2);
	}
}

/* The opening handshake; fails the benchmark unless answered 101. */
static struct bconn *ws_upgrade(struct bconn *c)
{
	static const char req[] = "GET /rpc HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
				  "Connection: Upgrade\r\n"
				  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
				  "Sec-WebSocket-Version: 13\r\n\r\n";
	char head[4096];
	size_t n = 0;

	bconn_send(c, req, sizeof(req) - 1);
	/* Byte by byte up to the blank line: nothing of the frames after it is
	 * read here. */
	while (n < sizeof(head) - 1 && (n < 4 || memcmp(head + n - 4, "\r\n\r\n", 4) != 0)) {
		ssize_t r = read(c->rfd, head + n, 1);

		if (r <= 0)
			bsys_fail("%s: no answer to the WebSocket upgrade", c->name);
		n++;
	}
	head[n] = '\0';
	if (strncmp(head, "HTTP/1.1 101", 12) != 0)
		bsys_fail("%s: upgrade refused: %.200s", c->name, head);
	c->ws = true;
	return c;
}

struct bconn *bconn_ws_tcp(const char *name, int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		bsys_fail("%s: connect 127.0.0.1:%d: %s", name, port, strerror(errno));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return ws_upgrade(conn_new(name, fd, fd, 0));
}

struct bconn *bconn_ws_unix(const char *name, const char *path)
{
	return ws_upgrade(bconn_unix(name, path, 5000));
}

struct bconn *bconn_spawn(const char *name, const char *const *argv, int err_fd)
{
	int to_child[2], from_child[2];
	pid_t pid;

	if (pipe2(to_child, O_CLOEXEC) < 0 || pipe2(from_child, O_CLOEXEC) < 0)
		bsys_fail("pipe2: %s", strerror(errno));
	pid = bsys_spawn(argv, to_child[0], from_child[1], err_fd, NULL);
	close(to_child[0]);
	close(from_child[1]);
	return conn_new(name, from_child[0], to_child[1], pid);
}

struct bconn *bconn_free(struct bconn *c)
{
	if (!c)
		return NULL;
	if (c->wfd != c->rfd)
		close(c->wfd);
	close(c->rfd);
	if (c->pid > 0) {
		int st = bsys_wait(c->pid, 5000);

		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			bsys_fail("%s: exited with wait status %#x", c->name, (unsigned)st);
	}
	free(c->name);
	free(c->buf);
	free(c->raw);
	free(c);
	return NULL;
}

/* Each '\n'-terminated line as one text frame with a zero mask (a client
 * must mask; the key's value does not change the server's work). */
static void ws_send_lines(struct bconn *c, const char *data, size_t len)
{
	size_t cap = len + (len / 16 + 1) * 14, n = 0;
	char *out = xmalloc(cap);

	while (len > 0) {
		const char *nl = memchr(data, '\n', len);
		size_t l = nl ? (size_t)(nl - data) : len;

		if (n + l + 14 > cap)
			out = xrealloc(out, cap = (n + l + 14) * 2);
		out[n++] = (char)0x81;
		if (l < 126) {
			out[n++] = (char)(0x80 | l);
		} else if (l < 65536) {
			out[n++] = (char)(0x80 | 126);
			out[n++] = (char)(l >> 8);
			out[n++] = (char)l;
		} else {
			out[n++] = (char)(0x80 | 127);
			for (int i = 7; i >= 0; i--)
				out[n++] = (char)((uint64_t)l >> (8 * i));
		}
		memset(out + n, 0, 4);
		n += 4;
		memcpy(out + n, data, l);
		n += l;
		data += l + (nl ? 1 : 0);
		len -= l + (nl ? 1 : 0);
	}
	int r = write_all(c->wfd, out, n);

	free(out);
	if (r < 0)
		bsys_fail("%s: write: %s", c->name, strerror(-r));
}

/* Unwraps the complete frames in raw into lines in buf. */
static void ws_unwrap(struct bconn *c)
{
	size_t off = 0;

	for (;;) {
		const unsigned char *p = (const unsigned char *)c->raw + off;
		size_t have = c->raw_len - off, hl = 2, l;

		if (have < 2)
			break;
		l = p[1] & 0x7f;
		if (l == 126) {
			if (have < 4)
				break;
			l = (size_t)p[2] << 8 | p[3];
			hl = 4;
		} else if (l == 127) {
			if (have < 10)
				break;
			l = 0;
			for (int i = 0; i < 8; i++)
				l = l << 8 | p[2 + i];
			hl = 10;
		}
		if (have < hl + l)
			break;
		if ((p[0] & 0x0f) == 8)
			bsys_fail("%s: the server closed the WebSocket", c->name);
		if ((p[0] & 0x0f) == 1) {
			if (c->cap - c->end < l + 1) {
				c->cap = (c->end + l + 1) * 2;
				c->buf = xrealloc(c->buf, c->cap);
			}
			memcpy(c->buf + c->end, p + hl, l);
			c->end += l;
			c->buf[c->end++] = '\n';
		}
		off += hl + l;
	}
	memmove(c->raw, c->raw + off, c->raw_len - off);
	c->raw_len -= off;
}

void bconn_send(struct bconn *c, const char *data, size_t len)
{
	int r;

	if (c->ws) {
		ws_send_lines(c, data, len);
		return;
	}
	r = write_all(c->wfd, data, len);

	if (r < 0)
		bsys_fail("%s: write: %s", c->name, strerror(-r));
}

bool bconn_next_line(struct bconn *c, const char **line, size_t *len)
{
	char *nl = memchr(c->buf + c->start, '\n', c->end - c->start);

	if (!nl) {
		if (c->end - c->start > BCONN_MAX_LINE)
			bsys_fail("%s: a line over %u bytes", c->name, BCONN_MAX_LINE);
		return false;
	}
	*nl = '\0';
	*line = c->buf + c->start;
	*len = (size_t)(nl - (c->buf + c->start));
	c->start = (size_t)(nl - c->buf) + 1;
	return true;
}

void bconn_fill(struct bconn *c)
{
	ssize_t n;

	if (c->start == c->end) {
		c->start = c->end = 0;
	} else if (c->cap - c->end < READ_CHUNK && c->start > 0) {
		memmove(c->buf, c->buf + c->start, c->end - c->start);
		c->end -= c->start;
		c->start = 0;
	}
	if (c->cap - c->end < READ_CHUNK) {
		c->cap *= 2;
		c->buf = xrealloc(c->buf, c->cap);
	}
	if (c->ws) {
		if (c->raw_cap - c->raw_len < READ_CHUNK) {
			c->raw_cap = c->raw_cap ? c->raw_cap * 2 : 4 * READ_CHUNK;
			c->raw = xrealloc(c->raw, c->raw_cap);
		}
		n = read(c->rfd, c->raw + c->raw_len, c->raw_cap - c->raw_len);
		if (n > 0) {
			c->raw_len += (size_t)n;
			ws_unwrap(c);
			return;
		}
	} else {
		n = read(c->rfd, c->buf + c->end, c->cap - c->end);
	}
	if (n > 0)
		c->end += (size_t)n;
	else if (n == 0)
		bsys_fail("%s: the peer closed the connection", c->name);
	else if (errno != EINTR && errno != EAGAIN)
		bsys_fail("%s: read: %s", c->name, strerror(errno));
}

void bconn_read_line(struct bconn *c, uint64_t deadline_ns, const char **line, size_t *len)
{
	while (!bconn_next_line(c, line, len)) {
		struct pollfd p = { .fd = c->rfd, .events = POLLIN };
		uint64_t now = bsys_now_ns();
		int r;

		if (now >= deadline_ns)
			bsys_fail("%s: no answer within the deadline", c->name);
		r = poll(&p, 1, (int)MIN((deadline_ns - now) / 1000000u + 1, POLL_TICK_MS));
		bsys_check_interrupt();
		if (r > 0)
			bconn_fill(c);
		else if (r < 0 && errno != EINTR)
			bsys_fail("%s: poll: %s", c->name, strerror(errno));
	}
}

/* ---- the top-level scanner --------------------------------------------- */

static const char *skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p;
}

/* p at the opening quote; returns just past the closing one, or NULL. */
static const char *skip_string(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* One value of any kind (nested ones by depth, strings honoured). */
static const char *skip_value(const char *p, const char *end)
{
	int depth = 0;

	if (p < end && *p == '"')
		return skip_string(p, end);
	while (p < end) {
		if (*p == '"') {
			p = skip_string(p, end);
			if (!p)
				return NULL;
			continue;
		}
		if (*p == '{' || *p == '[') {
			depth++;
		} else if (*p == '}' || *p == ']') {
			if (depth == 0)
				return p; /* the end of the enclosing object */
			if (--depth == 0)
				return p + 1;
		} else if (*p == ',' && depth == 0) {
			return p;
		}
		p++;
	}
	return depth == 0 ? p : NULL;
}

static bool key_is(const char *k, size_t klen, const char *want)
{
	return klen == strlen(want) && memcmp(k, want, klen) == 0;
}

static void note_member(struct bmsg *m, const char *k, size_t klen, const char *v,
			const char *vend)
{
	if (key_is(k, klen, "id")) {
		char num[24];
		size_t n = (size_t)(vend - v);

		m->has_id = true;
		if (n > 0 && n < sizeof(num) && (*v == '-' || (*v >= '0' && *v <= '9'))) {
			memcpy(num, v, n);
			num[n] = '\0';
			m->id = strtoll(num, NULL, 10);
		} else {
			m->id = -1;
		}
	} else if (key_is(k, klen, "result")) {
		m->has_result = true;
	} else if (key_is(k, klen, "error")) {
		m->has_error = true;
	} else if (key_is(k, klen, "method") && *v == '"' && vend - v >= 2) {
		m->method = v + 1;
		m->method_len = (size_t)(vend - v - 2);
	}
}

int bconn_scan(const char *line, size_t len, struct bmsg *m)
{
	const char *p = line, *end = line + len;

	memset(m, 0, sizeof(*m));
	p = skip_ws(p, end);
	if (p >= end || *p++ != '{')
		return -EINVAL;
	for (;;) {
		const char *k, *kend, *v, *vend;

		p = skip_ws(p, end);
		if (p < end && *p == '}')
			return 0;
		if (p >= end || *p != '"' || !(kend = skip_string(p, end)))
			return -EINVAL;
		k = p + 1;
		p = skip_ws(kend, end);
		if (p >= end || *p++ != ':')
			return -EINVAL;
		v = skip_ws(p, end);
		vend = skip_value(v, end);
		if (!vend || vend == v)
			return -EINVAL;
		note_member(m, k, (size_t)(kend - 1 - k), v, vend);
		p = skip_ws(vend, end);
		if (p < end && *p == ',')
			p++;
		else if (p < end && *p == '}')
			return 0;
		else
			return -EINVAL;
	}
}

bool bmsg_is(const struct bmsg *m, const char *method)
{
	return m->method && key_is(m->method, m->method_len, method);
}

/* ---- the slow path ----------------------------------------------------- */

static json_t *parse_line(struct bconn *c, const char *line, size_t len)
{
	json_error_t jerr;
	json_t *j = json_loadb(line, len, 0, &jerr);

	if (!json_is_object(j))
		bsys_fail("%s: not a JSON object (%s): %.300s", c->name, jerr.text, line);
	return j;
}

json_t *bconn_call(struct bconn *c, const char *method, json_t *params, char *err,
		   size_t errlen)
{
	int64_t id = c->next_id++;
	json_t *req = json_pack("{s:I, s:s, s:o}", "id", (json_int_t)id, "method", method,
				"params", params ? params : json_object());
	uint64_t deadline = bsys_now_ns() + BCONN_TIMEOUT_MS * 1000000ull;
	char *s = json_dumps(req, JSON_COMPACT);
	size_t slen = strlen(s);
	const char *line;
	size_t len;
	struct bmsg m;

	json_decref(req);
	s = xrealloc(s, slen + 2); /* one write: the peer sees the whole line at once */
	s[slen++] = '\n';
	c->t_sent = bsys_now_ns();
	bconn_send(c, s, slen);
	free(s);
	for (;;) {
		json_t *msg, *res;

		bconn_read_line(c, deadline, &line, &len);
		c->t_answer = bsys_now_ns();
		if (bconn_scan(line, len, &m) < 0)
			bsys_fail("%s: %s: not a JSON object: %.300s", c->name, method, line);
		if (!m.has_id || m.method)
			continue; /* a notification */
		if (m.id != id)
			bsys_fail("%s: %s: answer for id %lld, expected %lld", c->name, method,
				  (long long)m.id, (long long)id);
		msg = parse_line(c, line, len);
		res = json_incref(json_object_get(msg, "result"));
		if (!res) {
			const char *why = json_string_value(
				json_object_get(json_object_get(msg, "error"), "message"));

			snprintf(err, errlen, "%s", why ? why : "error without a message");
		}
		json_decref(msg);
		return res;
	}
}

json_t *bconn_call_ok(struct bconn *c, const char *method, json_t *params)
{
	char err[1024];
	json_t *res = bconn_call(c, method, params, err, sizeof(err));

	if (!res)
		bsys_fail("%s: %s: %s", c->name, method, err);
	return res;
}

json_t *bconn_wait_notification(struct bconn *c, const char *method, unsigned timeout_ms)
{
	uint64_t deadline = bsys_now_ns() + (uint64_t)timeout_ms * 1000000u;
	const char *line;
	size_t len;
	struct bmsg m;

	for (;;) {
		bconn_read_line(c, deadline, &line, &len);
		if (bconn_scan(line, len, &m) < 0)
			bsys_fail("%s: not a JSON object: %.300s", c->name, line);
		if (m.has_id)
			bsys_fail("%s: unexpected answer while waiting for %s: %.300s", c->name,
				  method, line);
		if (bmsg_is(&m, method)) {
			json_t *msg = parse_line(c, line, len);
			json_t *params = json_incref(json_object_get(msg, "params"));

			json_decref(msg);
			return params ? params : json_object();
		}
	}
}

struct bconn *bconn_spawn_listening(const char *name, const char *const *argv, const char *log,
				    unsigned timeout_ms, int *port)
{
	FILE *lf = fopen(log, "we");
	struct bconn *c;
	const char *line;
	size_t len;

	if (!lf)
		bsys_fail("open %s: %s", log, strerror(errno));
	bsys_show_on_fail(log);
	c = bconn_spawn(name, argv, fileno(lf));
	fclose(lf);
	bconn_read_line(c, bsys_now_ns() + timeout_ms * 1000000ull, &line, &len);
	if (sscanf(line, "LISTENING %d", port) != 1 || *port <= 0)
		bsys_fail("%s: expected 'LISTENING <port>', got: %.200s", name, line);
	return c;
}
