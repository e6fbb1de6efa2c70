/* wshttp.c - see wshttp.h.
 *
 * The request line is httpd.c's parser (one home for it); this file adds
 * the header fields and the RFC 6455 §4.2.1 checks. Header names are
 * compared case-insensitively; Upgrade and Connection are comma lists whose
 * tokens are compared case-insensitively, and may be repeated.
 */
#include "wshttp.h"

#include "httpd.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdio.h>
#include <strings.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* ---- sniffing ---- */

enum wshttp_sniff wshttp_sniff(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t i;

	if (len == 0)
		return WSHTTP_SNIFF_MORE;
	if (p[0] == '{')
		return WSHTTP_SNIFF_JSON_LINE;
	/* A method (upper-case letters, as every registered one is) and a
	 * space: 16 letters are more than any method has. */
	for (i = 0; i < len && i < 16 && p[i] >= 'A' && p[i] <= 'Z'; i++)
		;
	if (i == len && i < 16)
		return WSHTTP_SNIFF_MORE;
	return i > 0 && i < len && p[i] == ' ' ? WSHTTP_SNIFF_HTTP : WSHTTP_SNIFF_OTHER;
}

/* ---- parsing ---- */

size_t wshttp_head_end(const char *buf, size_t len, size_t from)
{
	return httpd_head_end(buf, len, from);
}

static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	return s;
}

/* True when the comma list holds `token` (case-insensitive). */
static bool list_has(const char *list, const char *token)
{
	size_t tlen = strlen(token);

	for (const char *p = list; *p;) {
		const char *e;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		e = p;
		while (*e && *e != ',')
			e++;
		{
			const char *t = e;

			while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
				t--;
			if ((size_t)(t - p) == tlen && strncasecmp(p, token, tlen) == 0)
				return true;
		}
		p = e;
	}
	return false;
}

struct hdr_state {
	bool upgrade_hdr, upgrade_ws, conn_upgrade;
};

/* Stores one header field; -EINVAL for a repeated singleton. */
static int header_field(struct wshttp_req *rq, struct hdr_state *st, const char *name,
			const char *value)
{
	static const struct {
		const char *name;
		size_t off;
	} one[] = {
		{ "host", offsetof(struct wshttp_req, host) },
		{ "authorization", offsetof(struct wshttp_req, authorization) },
		{ "origin", offsetof(struct wshttp_req, origin) },
		{ "sec-websocket-key", offsetof(struct wshttp_req, key) },
		{ "sec-websocket-version", offsetof(struct wshttp_req, ws_version) },
		{ "sec-websocket-protocol", offsetof(struct wshttp_req, protocol) },
		{ "x-codex-app-server-compression", offsetof(struct wshttp_req, compression) },
	};

	if (strcasecmp(name, "upgrade") == 0) {
		st->upgrade_hdr = true;
		st->upgrade_ws |= list_has(value, "websocket");
		return 0;
	}
	if (strcasecmp(name, "connection") == 0) {
		st->conn_upgrade |= list_has(value, "upgrade");
		return 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(one); i++) {
		const char **slot = (const char **)(void *)((char *)rq + one[i].off);

		if (strcasecmp(name, one[i].name) != 0)
			continue;
		if (*slot)
			return -EINVAL; /* which one would we believe? */
		*slot = value;
		return 0;
	}
	return 0;
}

/* Cuts one header line (NUL-terminated, CR removed) into name and value. */
static int header_line(struct wshttp_req *rq, struct hdr_state *st, char *line)
{
	char *colon = strchr(line, ':'), *value;

	if (line[0] == ' ' || line[0] == '\t' || !colon || colon == line)
		return -EINVAL; /* obsolete folding, or not "name: value" */
	*colon = '\0';
	for (const char *p = line; *p; p++)
		if (!is_tchar(*p))
			return -EINVAL;
	value = trim(colon + 1);
	for (const unsigned char *p = (const unsigned char *)value; *p; p++)
		if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
			return -EINVAL;
	return header_field(rq, st, line, value);
}

/* Splits the header lines from `p` up to the blank line (before end). */
static int parse_headers(struct wshttp_req *rq, struct hdr_state *st, char *p, char *end)
{
	size_t n = 0;

	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		int r;

		if (!nl)
			return -EINVAL;
		*nl = '\0';
		if (nl > p && nl[-1] == '\r')
			nl[-1] = '\0';
		if (!*p)
			return 0; /* the blank line */
		if (++n > WSHTTP_MAX_HEADERS)
			return -E2BIG;
		r = header_line(rq, st, p);
		if (r < 0)
			return r;
		p = nl + 1;
	}
	return -EINVAL;
}

static bool key_valid(const char *key)
{
	unsigned char raw[18];
	size_t n = 0;

	if (strlen(key) != 24)
		return false;
	if (sodium_base642bin(raw, sizeof(raw), key, 24, NULL, &n, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0)
		return false;
	return n == 16;
}

/* RFC 6455 §4.2.1, for a request whose Upgrade names websocket. */
static void check_upgrade(struct wshttp_req *rq, const struct hdr_state *st)
{
	const char *why = NULL;

	if (strcmp(rq->method, "GET") != 0)
		why = "a WebSocket upgrade must be a GET";
	else if (strcmp(rq->version, "HTTP/1.1") < 0)
		why = "a WebSocket upgrade needs HTTP/1.1";
	else if (!rq->host)
		why = "no Host header";
	else if (!st->conn_upgrade)
		why = "Connection does not name upgrade";
	else if (!rq->key || !key_valid(rq->key))
		why = "Sec-WebSocket-Key is missing or not 16 bytes in base64";
	if (why) {
		rq->kind = WSHTTP_BAD_UPGRADE;
		rq->bad_reason = why;
		rq->bad_status = 400;
		return;
	}
	if (!rq->ws_version || strcmp(rq->ws_version, "13") != 0) {
		rq->kind = WSHTTP_BAD_UPGRADE;
		rq->bad_reason = "Sec-WebSocket-Version must be 13";
		rq->bad_status = 426;
		return;
	}
	rq->kind = WSHTTP_UPGRADE;
}

int wshttp_parse(char *buf, size_t end, struct wshttp_req *rq)
{
	struct wshttp_req out = { .kind = WSHTTP_PLAIN };
	struct httpd_request line;
	struct hdr_state st = { 0 };
	char *nl;
	int r;

	if (end == 0 || !(nl = memchr(buf, '\n', end)))
		return -EINVAL;
	r = httpd_parse_request(buf, end, &line);
	if (r < 0)
		return r;
	out.method = line.method;
	out.path = line.path;
	out.query = line.query;
	out.version = line.version;
	r = parse_headers(&out, &st, nl + 1, buf + end);
	if (r < 0)
		return r;
	if (st.upgrade_hdr && st.upgrade_ws)
		check_upgrade(&out, &st);
	*rq = out;
	return 0;
}

/* ---- answers ---- */

void wshttp_accept_key(const char *key, char out[WSHTTP_ACCEPT_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (!ctx)
		abort(); /* as xmalloc: the machine is out of memory */
	EVP_DigestInit_ex(ctx, EVP_sha1(), NULL);
	EVP_DigestUpdate(ctx, key, strlen(key));
	EVP_DigestUpdate(ctx, WS_GUID, strlen(WS_GUID));
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	EVP_MD_CTX_free(ctx);
	sodium_bin2base64(out, WSHTTP_ACCEPT_LEN + 1, md, mdlen, sodium_base64_VARIANT_ORIGINAL);
}

char *wshttp_answer_upgrade(const struct wshttp_req *rq)
{
	char accept[WSHTTP_ACCEPT_LEN + 1];

	wshttp_accept_key(rq->key ? rq->key : "", accept);
	return xasprintf("HTTP/1.1 101 Switching Protocols\r\n"
			 "Upgrade: websocket\r\n"
			 "Connection: Upgrade\r\n"
			 "Sec-WebSocket-Accept: %s\r\n"
			 "\r\n",
			 accept);
}

static const char *reason_phrase(int status)
{
	static const struct {
		int status;
		const char *reason;
	} reasons[] = {
		{ 200, "OK" },
		{ 204, "No Content" },
		{ 400, "Bad Request" },
		{ 401, "Unauthorized" },
		{ 403, "Forbidden" },
		{ 404, "Not Found" },
		{ 405, "Method Not Allowed" },
		{ 408, "Request Timeout" },
		{ 426, "Upgrade Required" },
		{ 429, "Too Many Requests" },
		{ 431, "Request Header Fields Too Large" },
		{ 500, "Internal Server Error" },
		{ 503, "Service Unavailable" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(reasons); i++)
		if (reasons[i].status == status)
			return reasons[i].reason;
	return "Unknown";
}

static bool ctype_ok(const char *ctype)
{
	for (const char *p = ctype; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

char *wshttp_answer(int status, const char *ctype, const char *body, bool head_only,
		    size_t *len)
{
	bool bodyless = status == 204 || status == 304;
	size_t blen;
	char clen[48] = "";
	char *out;

	if (status < 200 || status > 599 || (ctype && !ctype_ok(ctype))) {
		status = 500;
		ctype = NULL;
		body = "internal error\n";
	}
	blen = body && !bodyless ? strlen(body) : 0;
	if (blen > INT_MAX / 2)
		blen = 0; /* no such answer is ever built; keep %.*s in range */
	if (!bodyless)
		snprintf(clen, sizeof(clen), "Content-Length: %zu\r\n", blen);
	out = xasprintf("HTTP/1.1 %d %s\r\n"
			"Content-Type: %s\r\n"
			"%s%s"
			"Connection: close\r\n"
			"Cache-Control: no-store\r\n"
			"\r\n"
			"%.*s",
			status, reason_phrase(status),
			ctype ? ctype : "text/plain; charset=utf-8", clen,
			status == 401   ? "WWW-Authenticate: Bearer\r\n"
			: status == 426 ? "Sec-WebSocket-Version: 13\r\n"
					: "",
			head_only ? 0 : (int)blen, body ? body : "");
	*len = strlen(out);
	return out;
}
