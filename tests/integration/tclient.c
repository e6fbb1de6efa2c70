/* tclient.c - see tclient.h. */
#include "tclient.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <nng/supplemental/tls/tls.h>
#include <signal.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "handshake.h"
#include "linkurl.h"
#include "lsess.h"
#include "util.h"

void tframe_free(struct tframe *f)
{
	if (f->buf) {
		proto_msg_release(&f->m);
		free(f->buf);
		f->buf = NULL;
	}
}

/* ---- bytes ---- */

int tc_send_bytes(struct tclient *c, const void *data, size_t len)
{
	size_t done = 0;

	if (!c->open)
		return -EPIPE;
	fbuf_append(&c->sent, data, len);
	while (done < len) {
		nng_iov iov = { .iov_buf = (uint8_t *)data + done, .iov_len = len - done };

		nng_aio_set_iov(c->aio, 1, &iov);
		nng_aio_set_timeout(c->aio, 10000);
		nng_stream_send(c->s, c->aio);
		nng_aio_wait(c->aio);
		if (nng_aio_result(c->aio) != 0)
			return -EPIPE;
		done += nng_aio_count(c->aio); /* a send may take part of the buffer */
	}
	return 0;
}

/* Reads what comes within timeout_ms into c->rx: > 0, -ETIMEDOUT, -EPIPE. */
static int recv_some(struct tclient *c, int timeout_ms)
{
	nng_iov iov;
	int r;

	if (!c->open)
		return -EPIPE;
	fbuf_reserve(&c->rx, 65536);
	iov.iov_buf = c->rx.p + c->rx.len;
	iov.iov_len = c->rx.cap - c->rx.len;
	nng_aio_set_iov(c->aio, 1, &iov);
	nng_aio_set_timeout(c->aio, timeout_ms > 0 ? timeout_ms : 1);
	nng_stream_recv(c->s, c->aio);
	nng_aio_wait(c->aio);
	r = nng_aio_result(c->aio);
	if (r == NNG_ETIMEDOUT)
		return -ETIMEDOUT;
	if (r != 0)
		return -EPIPE;
	c->rx.len += nng_aio_count(c->aio);
	return (int)nng_aio_count(c->aio);
}

static void rx_consume(struct tclient *c, size_t n)
{
	memmove(c->rx.p, c->rx.p + n, c->rx.len - n);
	c->rx.len -= n;
}

ssize_t tc_read_raw(struct tclient *c, void *buf, size_t cap, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	size_t n;

	while (c->rx.len < cap && now_ms() < deadline) {
		int r = recv_some(c, (int)(deadline - now_ms()));

		if (r == -EPIPE)
			break;
	}
	n = MIN(c->rx.len, cap);
	if (!n && now_ms() < deadline)
		return -EPIPE;
	memcpy(buf, c->rx.p, n);
	rx_consume(c, n);
	return (ssize_t)n;
}

/* ---- frames ---- */

/* Encodes (and seals) one frame into out. */
static void frame_into(struct tclient *c, struct fbuf *out, const void *payload, size_t len)
{
	size_t start = out->len;

	fbuf_reserve(out, FRAME_HDR + LSESS_HDR + len + SEAL_TAG_LEN);
	out->len += FRAME_HDR;
	if (c->session) { /* numbered, acking what we received */
		uint8_t h[LSESS_HDR];

		lsess_hdr_put(h, ++c->tx_seq, c->rx_seq);
		fbuf_append(out, h, sizeof(h));
		len += LSESS_HDR;
	}
	fbuf_append(out, payload, len - (c->session ? LSESS_HDR : 0));
	if (c->sealed) {
		fbuf_reserve(out, SEAL_TAG_LEN);
		ck_assert_int_eq(seal_frame(&c->tx, out->p + start, len), 0);
		out->len += SEAL_TAG_LEN;
	} else {
		frame_put_len(out->p + start, (uint32_t)len);
	}
}

int tc_send_raw(struct tclient *c, const void *data, size_t len)
{
	struct fbuf f = { 0 };
	int r;

	frame_into(c, &f, data, len);
	r = tc_send_bytes(c, f.p, f.len);
	fbuf_free(&f);
	return r;
}

int tc_send_tampered(struct tclient *c, const void *payload, size_t len, unsigned bit)
{
	struct fbuf f = { 0 };
	int r;

	ck_assert(c->sealed);
	frame_into(c, &f, payload, len);
	f.p[FRAME_HDR + (bit / 8) % (f.len - FRAME_HDR)] ^= (uint8_t)(1u << (bit % 8));
	r = tc_send_bytes(c, f.p, f.len);
	fbuf_free(&f);
	return r;
}

static int send_encoded(struct tclient *c, uint16_t type, uint8_t kind, uint32_t id,
			const void *body)
{
	struct fbuf f = { 0 };
	int r;

	ck_assert_int_eq(proto_encode(fbuf_write, &f, type, kind, id, body), 0);
	r = tc_send_raw(c, f.p, f.len);
	fbuf_free(&f);
	return r;
}

/* Receives one frame (waiting up to timeout_ms) and decodes it; a frame the
 * codec rejects fails the test: the executor must only send valid ones. */
static int recv_frame(struct tclient *c, struct tframe *f, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	const uint8_t *payload;
	size_t plen, need;
	char err[256];
	int r;

	for (;;) {
		r = frame_parse(c->rx.p, c->rx.len, PROTO_MAX_FRAME + SEAL_TAG_LEN, &payload, &plen,
				&need);
		ck_assert_msg(r == 0 || r == -EAGAIN, "executor sent a bad frame header");
		if (r == 0)
			break;
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		r = recv_some(c, (int)(deadline - now_ms()));
		if (r == -EPIPE)
			return -EPIPE;
	}
	if (c->sealed)
		ck_assert_msg(seal_open(&c->rxs, c->rx.p, (uint8_t *)payload, plen, &plen) == 0,
			      "executor sent a frame that does not authenticate");
	if (c->session) {
		uint64_t seq, ack;

		ck_assert_msg(lsess_hdr_parse(payload, plen, &seq, &ack) == 0,
			      "executor sent a bad session header");
		c->peer_ack = ack;
		if (seq == 0) { /* a pure ack: the next frame */
			rx_consume(c, (size_t)(payload - c->rx.p) + frame_get_len(c->rx.p));
			return recv_frame(c, f, (int)(deadline > now_ms() ? deadline - now_ms()
									 : 1));
		}
		ck_assert_msg(seq == c->rx_seq + 1, "executor sent frame %llu after %llu",
			      (unsigned long long)seq, (unsigned long long)c->rx_seq);
		c->rx_seq = seq;
		payload += LSESS_HDR;
		plen -= LSESS_HDR;
	}
	f->buf = xmalloc(plen ? plen : 1);
	memcpy(f->buf, payload, plen);
	rx_consume(c, FRAME_HDR + frame_get_len(c->rx.p));
	r = proto_decode(f->buf, plen, &f->m, err, sizeof(err));
	ck_assert_msg(r == 0, "executor sent an invalid frame: %s", err);
	return 0;
}

/* ---- connecting and the handshake ---- */

/* TLS dials trust $TANDEM_TEST_TLS_CA and expect the name "localhost". */
static int tls_client(nng_stream_dialer *d)
{
	const char *ca = getenv("TANDEM_TEST_TLS_CA");
	nng_tls_config *cfg;
	int r;

	ck_assert_msg(ca != NULL, "set TANDEM_TEST_TLS_CA for tls+tcp:// dials");
	r = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT);
	if (r == 0)
		r = nng_tls_config_ca_file(cfg, ca);
	if (r == 0)
		r = nng_tls_config_server_name(cfg, "localhost");
	if (r == 0)
		r = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED);
	if (r == 0)
		r = nng_stream_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg);
	nng_tls_config_free(cfg);
	return r;
}

static bool sp_ipc_of(const char *url)
{
	return linkurl_is_local_socket(url);
}

static char last_url[200];

int tc_open(struct tclient *c, const char *url)
{
	int r;

	memset(c, 0, sizeof(*c));
	c->next_id = 100;
	snprintf(last_url, sizeof(last_url), "%s", url);
	ck_assert_int_eq(nng_aio_alloc(&c->aio, NULL, NULL), 0);
	r = nng_stream_dialer_alloc(&c->d, url);
	if (r == 0 && linkurl_transport_encrypted(url))
		r = tls_client(c->d);
	if (r != 0) {
		nng_aio_free(c->aio);
		if (c->d)
			nng_stream_dialer_free(c->d);
		memset(c, 0, sizeof(*c));
		return -ECONNREFUSED;
	}
	nng_aio_set_timeout(c->aio, 5000);
	nng_stream_dialer_dial(c->d, c->aio);
	nng_aio_wait(c->aio);
	if (nng_aio_result(c->aio) != 0) {
		nng_aio_free(c->aio);
		nng_stream_dialer_free(c->d);
		memset(c, 0, sizeof(*c));
		return -ECONNREFUSED;
	}
	c->s = nng_aio_get_output(c->aio, 0);
	c->open = true;
	return 0;
}

int tc_dial(struct tclient *c, const char *url, int timeout_ms)
{
	uint64_t deadline;
	uint8_t hdr[HS_SP_HEADER_LEN];
	const uint8_t *payload;
	size_t plen, used;
	bool ipc = sp_ipc_of(url);
	int r = tc_open(c, url);

	if (r < 0)
		return r;
	hs_sp_header(hdr);
	if (tc_send_bytes(c, hdr, sizeof(hdr)) < 0)
		return -EPIPE;
	deadline = now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		if (c->rx.len >= HS_SP_HEADER_LEN &&
		    hs_sp_parse(c->rx.p + HS_SP_HEADER_LEN, c->rx.len - HS_SP_HEADER_LEN, ipc,
				PROTO_MAX_HANDSHAKE_FRAME + 4, &payload, &plen, &used) == 0)
			break;
		if (now_ms() >= deadline)
			return -ETIMEDOUT;
		r = recv_some(c, (int)(deadline - now_ms()));
		if (r == -EPIPE)
			return -EPIPE;
	}
	{
		struct proto_msg m;
		char err[200];

		ck_assert_int_eq(proto_decode_compat(payload, plen, &m, err, sizeof(err)), 0);
		ck_assert_uint_eq(m.env.type, PROTO_CHALLENGE);
		c->challenge_seal = m.u.challenge.seal;
		proto_msg_release(&m);
	}
	fbuf_append(&c->opening, c->rx.p, HS_SP_HEADER_LEN + used);
	rx_consume(c, HS_SP_HEADER_LEN + used);
	return 0;
}

/* HELLO and AUTH without any proof (a peer that has no secret). */
static int hello_without_proof(struct tclient *c)
{
	struct proto_hello_body h = { .version_min = PROTO_VERSION, .version_max = PROTO_VERSION };
	struct proto_auth_body a = { 0 };
	uint8_t nonce[PROTO_NONCE_LEN], pk[32], sk[32], marker[HS_MARKER_LEN];
	struct tframe f = { 0 };
	int r;

	randombytes_buf(nonce, sizeof(nonce));
	h.nonce.ptr = (const char *)nonce;
	h.nonce.len = sizeof(nonce);
	if (c->challenge_seal) {
		crypto_kx_keypair(pk, sk);
		h.kx.ptr = (const char *)pk;
		h.kx.len = sizeof(pk);
		PROTO_MARK(&h, hello_body, kx);
	}
	hs_marker(marker);
	tc_send_bytes(c, marker, sizeof(marker));
	send_encoded(c, PROTO_HELLO, PROTO_REQUEST, 1, &h);
	send_encoded(c, PROTO_AUTH, PROTO_REQUEST, 2, &a);
	r = recv_frame(c, &f, 5000);
	if (r < 0)
		return r;
	r = f.m.env.status ? f.m.env.status : -EPROTO;
	tframe_free(&f);
	return r;
}

static int fail_status(struct hs *h)
{
	switch (hs_fail_kind(h)) {
	case HS_FAIL_PROOF: return PROTO_E_DENIED;
	case HS_FAIL_BUSY: return PROTO_E_BUSY;
	case HS_FAIL_VERSION: return PROTO_E_UNSUPPORTED;
	case HS_FAIL_REFUSED: return PROTO_E_INTERNAL;
	default: return -EPROTO;
	}
}

int tc_hello(struct tclient *c, const char *secret, bool corrupt)
{
	uint8_t key[32];
	struct hs_params p = {
		.role = HS_ORCHESTRATOR,
		.key = key,
		.sp_ipc = sp_ipc_of(last_url),
		.orchestrator_id = "test-client",
		.environment_id = "test",
		.resume_session = c->want_resume ? c->resume_id : NULL,
		.resume_ack = c->resume_ack,
		.clock_ms = now_ms(),
	};
	struct fbuf out = { 0 };
	uint64_t deadline = now_ms() + 5000;
	struct hs *h;
	int r = 0;

	if (!secret)
		return hello_without_proof(c);
	crypto_generichash(key, sizeof(key), (const uint8_t *)secret, strlen(secret),
			   corrupt ? (const uint8_t *)"wrong" : NULL, corrupt ? 5 : 0);
	h = hs_new(&p);
	hs_start(h, &out);
	out.len = 0; /* the SP header went out in tc_dial */
	hs_input(h, c->opening.p, c->opening.len, &out);
	if (out.len)
		tc_send_bytes(c, out.p, out.len);
	out.len = 0;
	while (hs_state(h) == HS_RUNNING) {
		size_t used = hs_input(h, c->rx.p, c->rx.len, &out);

		rx_consume(c, used);
		if (hs_state(h) != HS_RUNNING)
			break;
		if (now_ms() >= deadline) {
			r = -ETIMEDOUT;
			break;
		}
		if (recv_some(c, (int)(deadline - now_ms())) == -EPIPE) {
			r = -EPIPE;
			break;
		}
	}
	if (r == 0 && hs_state(h) == HS_DONE) {
		const struct hs_result *res = hs_result(h);

		if (res->sealed) {
			seal_init(&c->tx, res->aead, res->tx_key, res->tx_prefix);
			seal_init(&c->rxs, res->aead, res->rx_key, res->rx_prefix);
			c->sealed = true;
		}
		c->n_live = res->n_live;
		memcpy(c->live_handles, res->live_handles, sizeof(uint64_t) * res->n_live);
		c->session = true;
		c->resumed = res->resume;
		snprintf(c->resume_refused, sizeof(c->resume_refused), "%s", res->resume_refused);
		/* A resumed session goes on counting (the test client keeps no
		 * replay buffer: its tests resume only once all was acked). */
		if (!res->resume)
			c->tx_seq = c->rx_seq = 0;
		memcpy(c->session_id, res->session, sizeof(c->session_id));
	} else if (r == 0) {
		r = fail_status(h);
	}
	hs_free(h);
	fbuf_free(&out);
	sodium_memzero(key, sizeof(key));
	return r;
}

void tc_connect(struct tclient *c, const char *url, const char *secret)
{
	int r = -1, h = -1;

	/* The listener may still be coming up right after a restart. */
	for (int i = 0; i < 50; i++) {
		r = tc_dial(c, url, 2000);
		if (r == 0 && (h = tc_hello(c, secret, false)) == 0)
			return;
		tc_close(c);
		usleep(100 * 1000);
	}
	ck_assert_msg(r == 0, "cannot connect to %s: %s", url, strerror(-r));
	ck_assert_msg(h == 0, "HELLO to %s refused (status %d)", url, h);
}

int tc_resume(struct tclient *c, const char *url, const char *secret, const uint8_t *id,
	      uint64_t tx_seq, uint64_t rx_seq)
{
	int r = tc_dial(c, url, 2000);

	if (r < 0)
		return r;
	c->want_resume = true;
	memcpy(c->resume_id, id, sizeof(c->resume_id));
	c->resume_ack = rx_seq;
	c->tx_seq = tx_seq;
	c->rx_seq = rx_seq;
	return tc_hello(c, secret, false);
}

void tc_close(struct tclient *c)
{
	for (unsigned i = 0; i < c->n_pending; i++)
		tframe_free(&c->pending[i]);
	c->n_pending = 0;
	if (c->open) {
		nng_stream_close(c->s);
		nng_aio_stop(c->aio);
		nng_stream_free(c->s);
		nng_stream_dialer_free(c->d);
		nng_aio_free(c->aio);
	}
	c->open = false;
	fbuf_free(&c->rx);
	fbuf_free(&c->opening);
	fbuf_free(&c->sent);
	seal_wipe(&c->tx);
	seal_wipe(&c->rxs);
	c->sealed = false;
	c->session = false;
}

static void keep_pending(struct tclient *c, struct tframe *f)
{
	/* stderr events are advisory: count them rather than keep them all. */
	if (f->m.env.type == PROTO_MCP_STDERR && c->n_pending >= ARRAY_SIZE(c->pending) / 2) {
		c->stderr_dropped++;
		tframe_free(f);
		return;
	}
	ck_assert_msg(c->n_pending < ARRAY_SIZE(c->pending), "too many unclaimed events");
	c->pending[c->n_pending++] = *f;
	f->buf = NULL;
}

/* The executor's keepalive PINGs are answered as they come. */
static bool answer_ping(struct tclient *c, struct tframe *f)
{
	struct proto_ping_reply r;

	if (f->m.env.type != PROTO_PING || f->m.env.kind != PROTO_REQUEST)
		return false;
	r.stamp = f->m.u.ping.stamp;
	r.present = PROTO_ALL_ping_reply;
	send_encoded(c, PROTO_PING, PROTO_REPLY, f->m.env.id, &r);
	tframe_free(f);
	return true;
}

int tc_call(struct tclient *c, uint16_t type, const void *body, struct tframe *reply,
	    int timeout_ms)
{
	uint32_t id = c->next_id++;
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	if (send_encoded(c, type, PROTO_REQUEST, id, body) < 0)
		return -EPIPE;
	for (;;) {
		int64_t left = (int64_t)(deadline - now_ms());
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		memset(reply, 0, sizeof(*reply));
		r = recv_frame(c, reply, (int)left);
		if (r < 0)
			return r;
		if (reply->m.env.kind == PROTO_REPLY && reply->m.env.id == id) {
			ck_assert_uint_eq(reply->m.env.type, type);
			return 0;
		}
		if (!answer_ping(c, reply))
			keep_pending(c, reply);
	}
}

int tc_send_event(struct tclient *c, uint16_t type, const void *body)
{
	return send_encoded(c, type, PROTO_EVENT, 0, body);
}

static bool event_matches(const struct tframe *f, uint16_t type, uint64_t handle)
{
	if (f->m.env.kind != PROTO_EVENT || f->m.env.type != type)
		return false;
	if (!handle)
		return true;
	/* Every MCP event has the handle as its first field (tag 1). */
	return f->m.u.mcp_output.handle == handle;
}

int tc_wait_event(struct tclient *c, uint16_t type, uint64_t handle, struct tframe *ev,
		  int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	for (unsigned i = 0; i < c->n_pending; i++) {
		if (event_matches(&c->pending[i], type, handle)) {
			*ev = c->pending[i];
			memmove(&c->pending[i], &c->pending[i + 1],
				(c->n_pending - i - 1) * sizeof(c->pending[0]));
			c->n_pending--;
			return 0;
		}
	}
	for (;;) {
		int64_t left = (int64_t)(deadline - now_ms());
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		memset(ev, 0, sizeof(*ev));
		r = recv_frame(c, ev, (int)left);
		if (r < 0)
			return r;
		if (event_matches(ev, type, handle))
			return 0;
		if (!answer_ping(c, ev))
			keep_pending(c, ev);
	}
}

bool tc_closed_by_peer(struct tclient *c, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	while (now_ms() < deadline) {
		int r = recv_some(c, (int)(deadline - now_ms()));

		if (r == -EPIPE)
			return true;
		c->rx.len = 0; /* e.g. an error reply sent before the close */
	}
	return false;
}

uint64_t tc_mcp_start(struct tclient *c, const char *name, const char *const *argv,
		      const char *const *env_kv, const char *const *env_vars, const char *cwd,
		      uint32_t *pid)
{
	struct proto_mcp_start_body b = { 0 };
	struct proto_str args[32], keys[32], vals[32], vars[32];
	struct tframe f = { 0 };
	uint64_t handle;

	b.server_name = proto_str_c(name);
	b.command = proto_str_c(argv[0]);
	for (size_t i = 1; argv[i]; i++)
		args[b.args.n++] = proto_str_c(argv[i]);
	b.args.items = args;
	for (size_t i = 0; env_kv && env_kv[i]; i++) {
		const char *eq = strchr(env_kv[i], '=');

		keys[b.env.n].ptr = env_kv[i];
		keys[b.env.n].len = (uint32_t)(eq - env_kv[i]);
		vals[b.env.n++] = proto_str_c(eq + 1);
	}
	b.env.keys = keys;
	b.env.vals = vals;
	for (size_t i = 0; env_vars && env_vars[i]; i++)
		vars[b.env_vars.n++] = proto_str_c(env_vars[i]);
	b.env_vars.items = vars;
	if (cwd)
		b.cwd = proto_str_c(cwd);
	b.present = PROTO_ALL_mcp_start_body;
	ck_assert_int_eq(tc_call(c, PROTO_MCP_START, &b, &f, 10000), 0);
	ck_assert_msg(f.m.env.status == 0, "MCP_START failed: %.*s", (int)f.m.err_message.len,
		      f.m.err_message.ptr);
	handle = f.m.u.mcp_start_reply.handle;
	if (pid)
		*pid = f.m.u.mcp_start_reply.pid;
	tframe_free(&f);
	return handle;
}

void tc_mcp_send(struct tclient *c, uint64_t handle, const char *json)
{
	struct proto_mcp_send_body b = { .handle = handle, .data = proto_str_c(json) };

	ck_assert_int_eq(tc_send_event(c, PROTO_MCP_SEND, &b), 0);
}

char *tc_mcp_recv(struct tclient *c, uint64_t handle, int timeout_ms)
{
	struct tframe f = { 0 };
	char *s;

	if (tc_wait_event(c, PROTO_MCP_OUTPUT, handle, &f, timeout_ms) < 0)
		return NULL;
	s = proto_str_dup(f.m.u.mcp_output.data);
	tframe_free(&f);
	return s;
}

/* ---- cleaning up after a failed test ---- */

static pid_t janitor_owner;
static int janitor_fd = -1;

static void janitor_main(int rfd)
{
	static char cmds[64 * 1024]; /* no malloc: forked from a threaded process */
	size_t len = 0;
	ssize_t n;

	/* Until the parent is gone (EOF), gather commands; then run them. */
	while (len < sizeof(cmds) - 1 && (n = read(rfd, cmds + len, sizeof(cmds) - 1 - len)) > 0)
		len += (size_t)n;
	cmds[len] = '\0';
	for (char *line = cmds, *nl; line && *line; line = nl) {
		nl = strchr(line, '\n');
		if (nl)
			*nl++ = '\0';
		if (system(line) < 0)
			break;
	}
	_exit(0);
}

void test_janitor(const char *fmt, ...)
{
	char cmd[600];
	va_list ap;
	int n;

	if (janitor_owner != getpid()) { /* a forked test: its own janitor */
		int p[2];
		pid_t pid;

		if (janitor_fd >= 0)
			close(janitor_fd);
		ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			close(p[1]);
			setsid(); /* out of the test's process group and signals */
			janitor_main(p[0]);
		}
		close(p[0]);
		janitor_fd = p[1];
		janitor_owner = getpid();
	}
	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd) - 1, fmt, ap);
	va_end(ap);
	ck_assert(n > 0 && (size_t)n < sizeof(cmd) - 1);
	cmd[n++] = '\n';
	ck_assert_int_eq(write(janitor_fd, cmd, (size_t)n), n);
}

/* ---- executor processes ---- */

static const char *executor_path(void)
{
	const char *p = getenv("TANDEM_EXECUTOR");

	ck_assert_msg(p != NULL, "set TANDEM_EXECUTOR to the tandem-executor binary");
	return p;
}

const char *fixture_path(void)
{
	const char *p = getenv("MCP_FIXTURE");

	ck_assert_msg(p != NULL, "set MCP_FIXTURE to the mcp-fixture binary");
	return p;
}

const char *plugins_dir(void)
{
	static char buf[4096];
	const char *p = getenv("TANDEM_FIXTURES");

	ck_assert_msg(p != NULL, "set TANDEM_FIXTURES to tests/fixtures");
	snprintf(buf, sizeof(buf), "%s/plugins", p);
	return buf;
}

static pid_t spawn(struct texec *e, const char *const *argv, const char *const *extra_env,
		   int secret_fd)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int log = open(e->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		dup2(log, 2);
		if (secret_fd >= 0) {
			dup2(secret_fd, 3);
		}
		for (size_t i = 0; extra_env && extra_env[i]; i++)
			putenv((char *)extra_env[i]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static unsigned texec_counter;

static void texec_init(struct texec *e)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->dir, sizeof(e->dir), "/tmp/tdm-link-t-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(e->dir));
	if (!getenv("TANDEM_TEST_KEEP_LOGS"))
		test_janitor("rm -rf '%s'", e->dir);
	snprintf(e->url, sizeof(e->url), "ipc://%s/link", e->dir);
	snprintf(e->log_path, sizeof(e->log_path), "%s/executor.log", e->dir);
	texec_counter++;
}

/* Port 0: the executor logs the port it bound; use it. */
static void read_bound_url(struct texec *e)
{
	FILE *f = fopen(e->log_path, "r");
	char line[4096], *p;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		p = strstr(line, "listening on ");
		if (p) {
			p += strlen("listening on ");
			p[strcspn(p, "\n ")] = '\0';
			snprintf(e->url, sizeof(e->url), "%s", p);
		}
	}
	fclose(f);
}

static void texec_cleanup(struct texec *e)
{
	char path[400];

	if (!e->dir[0] || getenv("TANDEM_TEST_KEEP_LOGS"))
		return;
	snprintf(path, sizeof(path), "%s/link", e->dir);
	unlink(path);
	unlink(e->log_path);
	rmdir(e->dir);
	e->dir[0] = '\0';
}

void texec_start(struct texec *e, const char *const *extra_args, const char *const *extra_env)
{
	texec_start_env_url(e, NULL, extra_args, extra_env);
}

void texec_start_url(struct texec *e, const char *url, const char *const *extra_args)
{
	texec_start_env_url(e, url, extra_args, NULL);
}

void texec_start_env_url(struct texec *e, const char *url, const char *const *extra_args,
			 const char *const *extra_env)
{
	const char *argv[40] = { executor_path(), "--listen", NULL, "--secret-fd", "3",
				 "--log-level", "debug", "--exit-with-parent" };
	size_t n = 8;
	uint8_t raw[16];
	int p[2];

	texec_init(e);
	if (url)
		snprintf(e->url, sizeof(e->url), "%s", url);
	argv[2] = e->url;
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(e->secret, sizeof(e->secret), raw, sizeof(raw));
	for (size_t i = 0; extra_args && extra_args[i]; i++)
		argv[n++] = extra_args[i];
	argv[n] = NULL;
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	e->pid = spawn(e, argv, extra_env, p[0]);
	close(p[0]);
	ck_assert_int_eq(write(p[1], e->secret, strlen(e->secret)), (ssize_t)strlen(e->secret));
	close(p[1]);
	/* Ready when it says so; dialling to probe would take the one peer slot. */
	for (int i = 0; i < 500 && !texec_log_contains(e, "listening on"); i++) {
		ck_assert_msg(!pid_gone(e->pid, 0), "executor exited at start:\n see %s", e->log_path);
		usleep(10 * 1000);
	}
	ck_assert_msg(texec_log_contains(e, "listening on"), "executor did not start listening");
	if (url)
		read_bound_url(e);
}

pid_t texec_spawn_raw(struct texec *e, const char *url, const char *const *extra_args)
{
	const char *argv[40] = { executor_path(), "--listen", url };
	size_t n = 3;

	texec_init(e);
	snprintf(e->url, sizeof(e->url), "%s", url);
	for (size_t i = 0; extra_args && extra_args[i]; i++)
		argv[n++] = extra_args[i];
	argv[n] = NULL;
	e->pid = spawn(e, argv, NULL, -1);
	return e->pid;
}

void texec_stop(struct texec *e)
{
	int st;

	if (e->pid <= 0)
		return;
	kill(e->pid, SIGTERM);
	ck_assert_int_eq(waitpid(e->pid, &st, 0), e->pid);
	e->pid = 0;
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "executor exit status 0x%x (log %s)",
		      st, e->log_path);
	texec_cleanup(e);
}

void texec_kill9(struct texec *e)
{
	int st;

	if (e->pid > 0) {
		kill(e->pid, SIGKILL);
		waitpid(e->pid, &st, 0);
	}
	e->pid = 0;
	texec_cleanup(e);
}

bool texec_log_contains(const struct texec *e, const char *needle)
{
	FILE *f = fopen(e->log_path, "r");
	char line[4096];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

bool texec_log_wait(const struct texec *e, const char *needle, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	do {
		if (texec_log_contains(e, needle))
			return true;
		usleep(20 * 1000);
	} while (now_ms() < deadline);
	return texec_log_contains(e, needle);
}

long proc_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static char proc_state(pid_t pid, pid_t *ppid)
{
	char path[64], buf[512], *p;
	char st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) != NULL) {
		int pp = 0;

		sscanf(p + 2, "%c %d", &st, &pp);
		if (ppid)
			*ppid = pp;
	}
	fclose(f);
	return st;
}

bool pid_gone(pid_t pid, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	do {
		char st = proc_state(pid, NULL);

		if (st == 0 || st == 'Z' || st == 'X')
			return true;
		usleep(20 * 1000);
	} while (now_ms() < deadline);
	return false;
}

int proc_fd_count(pid_t pid)
{
	char path[64];
	struct dirent *d;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((d = readdir(dir)))
		n += d->d_name[0] != '.';
	closedir(dir);
	return n;
}

int proc_zombie_children(pid_t pid)
{
	struct dirent *d;
	DIR *dir = opendir("/proc");
	int n = 0;

	while (dir && (d = readdir(dir))) {
		pid_t child = atoi(d->d_name), ppid = 0;

		if (child > 0 && proc_state(child, &ppid) == 'Z' && ppid == pid)
			n++;
	}
	if (dir)
		closedir(dir);
	return n;
}
