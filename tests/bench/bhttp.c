/* bhttp.c - see bhttp.h. */
#include "bhttp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bconn.h"
#include "bsys.h"
#include "util.h"

#define MAX_HEAD_LINE 8192u
#define MAX_BODY (64u * 1024 * 1024)

struct bhttp {
	int fd;
	int port;
	char *buf;
	size_t start, end, cap;
};

struct bhttp *bhttp_connect(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct bhttp *h = xcalloc(1, sizeof(*h));
	int one = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (h->fd < 0 || connect(h->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		bsys_fail("connect 127.0.0.1:%d: %s", port, strerror(errno));
	setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	h->port = port;
	h->cap = 65536;
	h->buf = xmalloc(h->cap);
	return h;
}

struct bhttp *bhttp_free(struct bhttp *h)
{
	if (h) {
		close(h->fd);
		free(h->buf);
		free(h);
	}
	return NULL;
}

static void fill(struct bhttp *h)
{
	uint64_t deadline = bsys_now_ns() + BCONN_TIMEOUT_MS * 1000000ull;
	struct pollfd p = { .fd = h->fd, .events = POLLIN };
	ssize_t n;

	if (h->start == h->end)
		h->start = h->end = 0;
	if (h->end == h->cap) {
		if (h->cap >= MAX_BODY)
			bsys_fail("http: answer too big");
		h->cap *= 2;
		h->buf = xrealloc(h->buf, h->cap);
	}
	while (poll(&p, 1, 100) <= 0) {
		bsys_check_interrupt();
		if (bsys_now_ns() >= deadline)
			bsys_fail("http: no answer from 127.0.0.1:%d", h->port);
	}
	n = read(h->fd, h->buf + h->end, h->cap - h->end);
	if (n == 0)
		bsys_fail("http: 127.0.0.1:%d closed the connection mid-answer", h->port);
	if (n < 0 && errno != EINTR)
		bsys_fail("http: read: %s", strerror(errno));
	if (n > 0)
		h->end += (size_t)n;
}

/* The next CRLF-terminated line (CRLF cut off), consumed. */
static char *read_line(struct bhttp *h)
{
	for (;;) {
		char *p = memmem(h->buf + h->start, h->end - h->start, "\r\n", 2);

		if (p) {
			char *line = h->buf + h->start;

			*p = '\0';
			h->start = (size_t)(p + 2 - h->buf);
			return line;
		}
		if (h->end - h->start > MAX_HEAD_LINE)
			bsys_fail("http: a header or chunk line over %u bytes", MAX_HEAD_LINE);
		fill(h);
	}
}

static void skip_bytes(struct bhttp *h, size_t n)
{
	while (n > 0) {
		size_t have = MIN(n, h->end - h->start);

		h->start += have;
		n -= have;
		if (n > 0)
			fill(h);
	}
}

/* Status line and headers; returns the content length or -1 for chunked. */
static long read_head(struct bhttp *h)
{
	char *line = read_line(h);
	long length = -2;
	int status;

	if (sscanf(line, "HTTP/1.%*d %d", &status) != 1)
		bsys_fail("http: bad status line: %.100s", line);
	if (status != 200)
		bsys_fail("http: status %d from the fake provider", status);
	while (*(line = read_line(h))) {
		if (strncasecmp(line, "transfer-encoding:", 18) == 0 && strcasestr(line, "chunked"))
			length = -1;
		else if (strncasecmp(line, "content-length:", 15) == 0 && length != -1)
			length = strtol(line + 15, NULL, 10);
	}
	if (length < -1)
		bsys_fail("http: an answer without a length: keep-alive impossible");
	return length;
}

size_t bhttp_post(struct bhttp *h, const char *path, const char *body, size_t len)
{
	char head[512];
	int n = snprintf(head, sizeof(head),
			 "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: "
			 "application/json\r\nAccept: text/event-stream\r\nContent-Length: %zu\r\n\r\n",
			 path, h->port, len);
	size_t total = 0;
	long length;

	if (n < 0 || (size_t)n >= sizeof(head) || write_all(h->fd, head, (size_t)n) < 0 ||
	    write_all(h->fd, body, len) < 0)
		bsys_fail("http: cannot send the request");
	length = read_head(h);
	if (length >= 0) {
		skip_bytes(h, (size_t)length);
		return (size_t)length;
	}
	for (;;) { /* chunked: size line, data, CRLF; a zero size ends it */
		unsigned long size = strtoul(read_line(h), NULL, 16);

		if (size == 0)
			break;
		if (size > MAX_BODY || total + size > MAX_BODY)
			bsys_fail("http: answer too big");
		skip_bytes(h, size + 2);
		total += size;
	}
	while (*read_line(h)) /* trailers */
		;
	return total;
}
