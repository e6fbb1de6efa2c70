/* http.c - see http.h.
 *
 * Re-entrancy: libcurl forbids curl_multi_* calls from inside its own
 * callbacks, and headers_cb/data_cb run inside curl's header and write
 * callbacks, i.e. inside curl_multi_socket_action. While that call is on
 * the stack (h->in_curl), http_start() and http_cancel() only change the
 * request's state and queue it on h->todo; after_curl() works the queue
 * (adds, removals, failures) and then reads curl's completion messages,
 * all outside libcurl. A request thus moves through:
 *
 *   NEW ----> ACTIVE ----> DONE (done_cb runs, then it is freed)
 *    |          |  \
 *    |          |   FAILING (error found inside curl: finished from todo)
 *    +----------+--> CANCELLED (freed at once, or from todo inside curl)
 *
 * Errors this module decides itself (body or header bounds, idle time) are
 * recorded in r->err before curl is told to abort, so done_cb reports them
 * rather than curl's generic write error.
 *
 * Sockets: curl tells socket_fn what to watch; each watched socket is a
 * loop_io whose struct is attached to the socket with curl_multi_assign
 * (documented as allowed inside the socket callback). curl's timeout is one
 * loop timer. Neither callback may fail towards curl (a -1 would abort every
 * transfer), so a socket we cannot watch fails just its request.
 *
 * The relay mode (http_relay.c) shares the request life below through
 * http_int.h; this file holds that life and the libcurl (direct) mode.
 */
#include "http.h"
#include "http_int.h"

#include "loop.h"
#include "secret.h"
#include "util.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <strings.h>

#ifdef CURL_WRITEFUNC_ERROR
#define WRITE_ABORT CURL_WRITEFUNC_ERROR
#else
#define WRITE_ABORT 0 /* curl < 7.87: 0 aborts unless len is 0 too */
#endif

static unsigned curl_users; /* http_new/http_free pairs, for global init */

static void idle_cb(struct loop_timer *t, void *arg);

/* ---- request lifetime ---- */

static void wipe_free(char *p, size_t n)
{
	if (!p)
		return;
	secure_wipe(p, n);
	free(p);
}

static void headers_clear(struct http_req *r)
{
	for (size_t i = 0; i < r->nresp; i++)
		free(r->resp[i].name);
	r->nresp = 0;
	r->resp_bytes = 0;
}

void http_req_destroy(struct http_req *r)
{
	struct http *h = r->h;

	loop_timer_cancel(r->idle);
	if (r->added)
		curl_multi_remove_handle(h->multi, r->easy);
	if (r->easy)
		curl_easy_cleanup(r->easy);
	if (r->relay_live)
		h->relay.cancel(h->relay_ctx, r->relay_id); /* the far side stops too */
	if (r->prev)
		r->prev->next = r->next;
	else
		h->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	/* Request headers carry credentials. */
	for (struct curl_slist *s = r->hdrs; s; s = s->next)
		secure_wipe(s->data, strlen(s->data));
	curl_slist_free_all(r->hdrs);
	wipe_free(r->body, r->body_len);
	headers_clear(r);
	free(r->resp);
	free(r);
}

static void kick_cb(struct loop_timer *t, void *arg)
{
	struct http *h = arg;

	h->kick = NULL;
	http_run_queue(h);
}

static void queue(struct http_req *r)
{
	struct http *h = r->h;

	if (r->queued)
		return;
	r->queued = true;
	r->todo_next = NULL;
	*h->todo_tail = r;
	h->todo_tail = &r->todo_next;
	/* Inside curl, after_curl follows anyway. */
	if (!h->in_curl && !h->kick)
		h->kick = loop_timer_add(h->l, 0, kick_cb, h);
}

/* Outside curl only: reports the outcome and frees r. */
void http_req_finish(struct http_req *r, int err, const char *msg)
{
	r->state = REQ_DONE;
	loop_timer_cancel(r->idle);
	r->idle = NULL;
	if (r->added) {
		/* Before done_cb, so that the connection is back in the cache
		 * for a request the callback starts. */
		curl_multi_remove_handle(r->h->multi, r->easy);
		r->added = false;
	}
	r->cbs.done_cb(r, err, r->headers_done ? r->status : 0, msg, r->arg);
	http_req_destroy(r);
}

static void set_why(struct http_req *r, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void set_why(struct http_req *r, int err, const char *fmt, ...)
{
	va_list ap;

	r->err = err;
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
}

/* An error found inside curl for a request curl will not end by itself. */
void http_req_fail_later(struct http_req *r, int err, const char *why)
{
	if (r->state != REQ_ACTIVE)
		return;
	set_why(r, err, "%s", why);
	r->state = REQ_FAILING;
	queue(r);
}

static void add(struct http_req *r)
{
	CURLMcode mc = curl_multi_add_handle(r->h->multi, r->easy);

	if (mc != CURLM_OK) {
		set_why(r, -ENOMEM, "cannot add the request: %s", curl_multi_strerror(mc));
		http_req_finish(r, r->err, r->why);
		return;
	}
	r->added = true;
	r->state = REQ_ACTIVE;
}

/* ---- outcome ---- */

static int curl_to_errno(CURL *easy, CURLcode rc)
{
	long os = 0;

	switch (rc) {
	case CURLE_OK:
		return 0;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		if (curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &os) == CURLE_OK && os > 0 &&
		    os < 4096)
			return -(int)os;
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_FILESIZE_EXCEEDED:
		return -E2BIG;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return -EINVAL;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
		return -EPROTO;
	default:
		return -EIO;
	}
}

static void complete(struct http_req *r, CURLcode rc)
{
	size_t n;

	if (r->err) {
		http_req_finish(r, r->err, r->why);
		return;
	}
	if (rc == CURLE_OK) {
		http_req_finish(r, 0, "ok");
		return;
	}
	/* Copied: curl owns errbuf while the handle is in use. */
	n = strlen(r->errbuf);
	while (n > 0 && (r->errbuf[n - 1] == '\n' || r->errbuf[n - 1] == '\r'))
		n--;
	if (n)
		set_why(r, curl_to_errno(r->easy, rc), "%.*s", (int)n, r->errbuf);
	else
		set_why(r, curl_to_errno(r->easy, rc), "%s", curl_easy_strerror(rc));
	http_req_finish(r, r->err, r->why);
}

static struct http_req *req_of(CURL *easy)
{
	char *p = NULL;

	curl_easy_getinfo(easy, CURLINFO_PRIVATE, &p);
	return (struct http_req *)(void *)p;
}

static void read_done(struct http *h)
{
	CURLMsg *m;
	int left;

	if (!h->multi)
		return; /* relay mode */
	while ((m = curl_multi_info_read(h->multi, &left))) {
		struct http_req *r = req_of(m->easy_handle);
		CURLcode rc = m->data.result;

		if (m->msg != CURLMSG_DONE)
			continue;
		/* FAILING ones are finished from the queue with their reason. */
		if (r && r->state == REQ_ACTIVE)
			complete(r, rc);
	}
}

static void run_todo(struct http *h)
{
	struct http_req *r;

	while ((r = h->todo)) {
		h->todo = r->todo_next;
		if (!h->todo)
			h->todo_tail = &h->todo;
		r->queued = false;
		if (r->state == REQ_NEW)
			add(r);
		else if (r->state == REQ_FAILING)
			http_req_finish(r, r->err, r->why);
		else if (r->state == REQ_CANCELLED)
			http_req_destroy(r);
	}
}

void http_run_queue(struct http *h)
{
	run_todo(h);
	read_done(h);
	run_todo(h);
}

static void action(struct http *h, curl_socket_t fd, int mask)
{
	int running;

	h->in_curl = true;
	curl_multi_socket_action(h->multi, fd, mask, &running);
	h->in_curl = false;
	http_run_queue(h);
}

/* ---- curl's sockets and timer on the loop ---- */

static void sock_io_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct http_sock *s = arg;
	int mask = 0;

	if (revents & (LOOP_READ | LOOP_HUP))
		mask |= CURL_CSELECT_IN;
	if (revents & LOOP_WRITE)
		mask |= CURL_CSELECT_OUT;
	if (revents & LOOP_ERR)
		mask |= CURL_CSELECT_ERR;
	action(s->h, fd, mask); /* may free s */
}

static void sock_free(struct http_sock *s)
{
	struct http *h = s->h;

	loop_io_del(s->io);
	if (s->prev)
		s->prev->next = s->next;
	else
		h->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	free(s);
}

static void sock_failed(CURL *easy, int err)
{
	struct http_req *r = req_of(easy);

	if (r)
		http_req_fail_later(r, err, "cannot watch the connection's socket");
}

static int socket_fn(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct http *h = userp;
	struct http_sock *s = socketp;
	uint32_t ev = ((what & CURL_POLL_IN) ? LOOP_READ : 0u) |
		      ((what & CURL_POLL_OUT) ? LOOP_WRITE : 0u);
	int r;

	if (what == CURL_POLL_REMOVE) {
		if (s)
			sock_free(s);
		return 0;
	}
	if (s) {
		r = loop_io_mod(s->io, ev);
		if (r < 0)
			sock_failed(easy, r);
		return 0;
	}
	s = xcalloc(1, sizeof(*s));
	s->h = h;
	s->io = loop_io_add(h->l, fd, ev, sock_io_cb, s);
	if (!s->io) {
		r = -errno;
		free(s);
		sock_failed(easy, r);
		return 0;
	}
	s->next = h->socks;
	if (h->socks)
		h->socks->prev = s;
	h->socks = s;
	curl_multi_assign(h->multi, fd, s);
	return 0;
}

static void curl_timer_cb(struct loop_timer *t, void *arg)
{
	struct http *h = arg;

	h->timer = NULL; /* the loop frees t; timer_fn arms a new one */
	action(h, CURL_SOCKET_TIMEOUT, 0);
}

static int timer_fn(CURLM *multi, long ms, void *userp)
{
	struct http *h = userp;

	if (ms < 0) {
		loop_timer_cancel(h->timer);
		h->timer = NULL;
	} else if (h->timer) {
		loop_timer_rearm(h->timer, (uint64_t)ms);
	} else {
		h->timer = loop_timer_add(h->l, (uint64_t)ms, curl_timer_cb, h);
	}
	return 0;
}

/* ---- curl's data callbacks (inside curl) ---- */

static void idle_cb(struct loop_timer *t, void *arg)
{
	struct http_req *r = arg;
	uint64_t now = now_ms(), due = r->last_io + r->idle_ms;

	if (r->state == REQ_ACTIVE && now < due) {
		loop_timer_rearm(t, due - now);
		return;
	}
	r->idle = NULL;
	if (r->state != REQ_ACTIVE)
		return;
	set_why(r, -ETIMEDOUT, "no data for %llu ms", (unsigned long long)r->idle_ms);
	http_req_finish(r, r->err, r->why);
}

static bool header_is(const char *line, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && memcmp(line, prefix, n) == 0;
}

/* End of a header block: the final one unless it was a 1xx. */
static void headers_end(struct http_req *r)
{
	long status = 0;

	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 100 && status < 200)
		return;
	r->headers_done = true;
	r->status = status;
	if (r->cbs.headers_cb)
		r->cbs.headers_cb(r, status, r->arg);
}

int http_req_store_header(struct http_req *r, const char *line, size_t len)
{
	const char *colon = memchr(line, ':', len), *v, *end = line + len;
	size_t nlen;
	char *p;

	/* Not "name: value", or an obsolete folded line: ignored. */
	if (!colon || colon == line || line[0] == ' ' || line[0] == '\t')
		return 0;
	if (r->nresp >= HTTP_MAX_HEADERS || len > HTTP_MAX_HEADER_BYTES - r->resp_bytes)
		return -E2BIG;
	nlen = (size_t)(colon - line);
	v = colon + 1;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	p = xmalloc(nlen + 1 + (size_t)(end - v) + 1);
	memcpy(p, line, nlen);
	p[nlen] = '\0';
	memcpy(p + nlen + 1, v, (size_t)(end - v));
	p[nlen + 1 + (end - v)] = '\0';
	if (r->nresp == 0 && !r->resp)
		r->resp = xcalloc(HTTP_MAX_HEADERS, sizeof(*r->resp));
	r->resp[r->nresp++] = (struct http_hdr){ p, p + nlen + 1 };
	r->resp_bytes += len;
	return 0;
}

static size_t header_cb(char *buf, size_t size, size_t n, void *ud)
{
	struct http_req *r = ud;
	size_t len = size * n, l = len;

	if (r->state != REQ_ACTIVE)
		return 0;
	r->last_io = now_ms();
	if (r->headers_done)
		return len; /* trailers */
	while (l > 0 && (buf[l - 1] == '\n' || buf[l - 1] == '\r'))
		l--;
	if (header_is(buf, l, "HTTP/")) {
		headers_clear(r); /* a new block (after a 1xx) */
	} else if (l == 0) {
		headers_end(r);
	} else if (http_req_store_header(r, buf, l) < 0) {
		set_why(r, -E2BIG, "response headers over %u or %u bytes", HTTP_MAX_HEADERS,
			HTTP_MAX_HEADER_BYTES);
		return 0;
	}
	return r->state == REQ_ACTIVE ? len : 0;
}

static size_t write_cb(char *buf, size_t size, size_t n, void *ud)
{
	struct http_req *r = ud;
	size_t len = size * n;

	if (r->state != REQ_ACTIVE)
		return WRITE_ABORT;
	r->last_io = now_ms();
	if (len > r->max_body - r->received) {
		set_why(r, -E2BIG, "response body over %zu bytes", r->max_body);
		return WRITE_ABORT;
	}
	r->received += len;
	if (len > 0 && r->cbs.data_cb)
		r->cbs.data_cb(r, buf, len, r->arg);
	return r->state == REQ_ACTIVE ? len : WRITE_ABORT;
}

/* ---- starting a request ---- */

static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* "Name: value" with a token name and no CR, LF or NUL-truncation issue. */
bool http_header_valid(const char *s)
{
	const char *c = s;

	while (is_tchar(*c))
		c++;
	if (c == s || *c != ':')
		return false;
	return !strpbrk(c, "\r\n");
}

static bool url_valid(const char *u)
{
	return u && (strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0) &&
	       !strpbrk(u, "\r\n");
}

bool http_env_header_valid(const char *spec)
{
	const char *eq, *p = spec + (*spec == '!');

	if (!(eq = strchr(p, '=')) || eq == p)
		return false;
	for (const char *c = p; c < eq; c++)
		if (!(*c == '_' || (*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') ||
		      (c > p && *c >= '0' && *c <= '9')))
			return false;
	return http_header_valid(eq + 1);
}

/* "Name: prefix" + the variable's value, appended to r->hdrs. */
static int add_env_header(struct http_req *r, const char *spec)
{
	bool required = *spec == '!';
	const char *p = spec + required, *eq = strchr(p, '=');
	_cleanup_free_ char *var = xstrndup(p, (size_t)(eq - p));
	const char *val = secret_getenv(var);
	struct curl_slist *n;
	char *line;

	if (!val || !*val)
		return required ? -ENOKEY : 0;
	line = xasprintf("%s%s", eq + 1, val);
	n = http_header_valid(line) ? curl_slist_append(r->hdrs, line) : NULL;
	secure_wipe(line, strlen(line));
	free(line);
	if (!n)
		return -EINVAL;
	r->hdrs = n;
	return 0;
}

static int build_headers(struct http_req *r, const char *const *headers,
			 const char *const *env_headers)
{
	bool expect = false;

	for (const char *const *p = env_headers; p && *p; p++) {
		int err = http_env_header_valid(*p) ? add_env_header(r, *p) : -EINVAL;

		if (err < 0)
			return err;
	}

	for (const char *const *p = headers; p && *p; p++) {
		struct curl_slist *n;

		if (!http_header_valid(*p))
			return -EINVAL;
		if (strncasecmp(*p, "Expect:", 7) == 0)
			expect = true;
		n = curl_slist_append(r->hdrs, *p);
		if (!n)
			return -ENOMEM;
		r->hdrs = n;
	}
	if (!expect) {
		/* No "Expect: 100-continue" round trip before a large body. */
		struct curl_slist *n = curl_slist_append(r->hdrs, "Expect:");

		if (!n)
			return -ENOMEM;
		r->hdrs = n;
	}
	return 0;
}

static int set_method(struct http_req *r, const struct http_opts *o)
{
	CURL *e = r->easy;
	const char *m = o->method ? o->method : "GET";
	bool post = strcmp(m, "POST") == 0;

	if (!post && strcmp(m, "GET") && strcmp(m, "PUT") && strcmp(m, "PATCH") &&
	    strcmp(m, "DELETE") && strcmp(m, "HEAD"))
		return -EINVAL;
	if (o->body_len > 0 || post) {
		r->body = xmalloc(o->body_len + 1);
		if (o->body_len)
			memcpy(r->body, o->body, o->body_len);
		r->body_len = o->body_len;
		if (curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)o->body_len) ||
		    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body))
			return -ENOMEM;
		if (!post && curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m))
			return -ENOMEM;
		return 0;
	}
	if (strcmp(m, "HEAD") == 0)
		return curl_easy_setopt(e, CURLOPT_NOBODY, 1L) ? -ENOMEM : 0;
	if (strcmp(m, "GET") == 0)
		return curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) ? -ENOMEM : 0;
	return curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m) ? -ENOMEM : 0;
}

static int configure(struct http_req *r, const struct http_opts *o)
{
	CURL *e = r->easy;
	int err = build_headers(r, o->headers, o->env_headers);

	if (err < 0)
		return err;
	err = set_method(r, o);
	if (err < 0)
		return err;
	if (curl_easy_setopt(e, CURLOPT_URL, o->url) ||
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") ||
	    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L) ||
	    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) ||
	    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) ||
	    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) ||
	    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) ||
	    curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L) ||
	    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs) ||
	    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r) ||
	    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf) ||
	    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb) ||
	    curl_easy_setopt(e, CURLOPT_HEADERDATA, r) ||
	    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb) ||
	    curl_easy_setopt(e, CURLOPT_WRITEDATA, r))
		return -ENOMEM;
	if (o->timeout_ms &&
	    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)MIN(o->timeout_ms, (uint64_t)LONG_MAX)))
		return -EINVAL;
	/* curl refuses early on a Content-Length over the limit; write_cb
	 * catches the rest (chunked, or a lying length). */
	if (o->max_body && o->max_body < (size_t)INT64_MAX &&
	    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_body))
		return -EINVAL;
	if (o->proxy && curl_easy_setopt(e, CURLOPT_PROXY, o->proxy))
		return -EINVAL;
	return 0;
}

/* The parts of a request both modes share. */
struct http_req *http_req_new(struct http *h, const struct http_opts *o,
				const struct http_cbs *cbs, void *arg)
{
	struct http_req *r = xcalloc(1, sizeof(*r));

	r->h = h;
	r->cbs = *cbs;
	r->arg = arg;
	r->max_body = o->max_body ? o->max_body : SIZE_MAX;
	return r;
}

void http_req_link(struct http *h, struct http_req *r)
{
	r->next = h->reqs;
	if (h->reqs)
		h->reqs->prev = r;
	h->reqs = r;
}

void http_req_arm_idle(struct http_req *r, const struct http_opts *o)
{
	if (!o->idle_timeout_ms)
		return;
	r->idle_ms = o->idle_timeout_ms;
	r->last_io = now_ms();
	r->idle = loop_timer_add(r->h->l, r->idle_ms, idle_cb, r);
}

struct http_req *http_start(struct http *h, const struct http_opts *o, const struct http_cbs *cbs,
			    void *arg)
{
	struct http_req *r;
	int err;

	if (!o || !cbs || !cbs->done_cb || !url_valid(o->url) || (o->body_len && !o->body)) {
		errno = EINVAL;
		return NULL;
	}
	if (!h->multi)
		return http_relay_start(h, o, cbs, arg);
	r = http_req_new(h, o, cbs, arg);
	r->easy = curl_easy_init();
	err = r->easy ? configure(r, o) : -ENOMEM;
	http_req_link(h, r);
	if (err < 0) {
		http_req_destroy(r);
		errno = -err;
		return NULL;
	}
	http_req_arm_idle(r, o);
	r->state = REQ_NEW;
	if (h->in_curl) {
		queue(r);
		return r;
	}
	if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
		http_req_destroy(r);
		errno = ENOMEM;
		return NULL;
	}
	r->added = true;
	r->state = REQ_ACTIVE;
	return r;
}

void http_cancel(struct http_req *r)
{
	if (!r || r->state == REQ_DONE || r->state == REQ_CANCELLED)
		return;
	r->state = REQ_CANCELLED;
	loop_timer_cancel(r->idle);
	r->idle = NULL;
	if (r->queued)
		return; /* run_todo frees it */
	if (r->h->in_curl)
		queue(r);
	else
		http_req_destroy(r);
}

const char *http_req_header(const struct http_req *r, const char *name)
{
	for (size_t i = r->nresp; i-- > 0;)
		if (strcasecmp(r->resp[i].name, name) == 0)
			return r->resp[i].value;
	return NULL;
}


struct loop *http_loop(const struct http *h) { return h->l; }

size_t http_pending(const struct http *h)
{
	size_t n = 0;

	for (const struct http_req *r = h ? h->reqs : NULL; r; r = r->next)
		if (r->state == REQ_NEW || r->state == REQ_ACTIVE)
			n++;
	return n;
}

size_t http_req_nheaders(const struct http_req *r) { return r->nresp; }

const char *http_req_header_at(const struct http_req *r, size_t i, const char **value)
{
	if (i >= r->nresp)
		return NULL;
	*value = r->resp[i].value;
	return r->resp[i].name;
}

/* ---- lifecycle ---- */

struct http *http_new(struct loop *l)
{
	struct http *h;

	if (curl_users == 0 && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		errno = ENOMEM;
		return NULL;
	}
	curl_users++;
	h = xcalloc(1, sizeof(*h));
	h->l = l;
	h->todo_tail = &h->todo;
	h->multi = curl_multi_init();
	if (!h->multi || curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_fn) ||
	    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h) ||
	    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_fn) ||
	    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h)) {
		http_free(h);
		errno = ENOMEM;
		return NULL;
	}
	return h;
}

struct http *http_free(struct http *h)
{
	if (!h)
		return NULL;
	if (!h->multi) { /* relay mode */
		while (h->reqs)
			http_req_destroy(h->reqs);
		loop_timer_cancel(h->kick);
		free(h);
		return NULL;
	}
	if (h->multi) {
		/* From here on curl tells us nothing: we drop our side. */
		curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, NULL);
		curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, NULL);
	}
	while (h->socks)
		sock_free(h->socks);
	while (h->reqs)
		http_req_destroy(h->reqs);
	h->todo = NULL;
	curl_multi_cleanup(h->multi);
	loop_timer_cancel(h->timer);
	loop_timer_cancel(h->kick);
	free(h);
	if (--curl_users == 0)
		curl_global_cleanup();
	return NULL;
}
