/* link_ep.c - the link's endpoints: a listener that accepts as fast as
 * connections come, and a dialer that makes one attempt at a time (the
 * owner decides when to retry). See link.h. Schemes the kernel carries
 * alone are served by sockets of ours (link_sock.c); the others by nng
 * streams: like struct link, each then keeps one aio for its life;
 * completions are posted to the loop, and the memory goes only after
 * posted completions drained. */
#include "link.h"

#include <errno.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/transport/ipc/ipc.h>
#include <nng/transport/tcp/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "link_sock.h"
#include "linkurl.h"
#include "loop.h"
#include "util.h"

#define ACCEPT_RETRY_MS 50u /* after an accept error such as EMFILE */

/* Like struct link (link.c): once closing, callbacks post nothing (and
 * free a stream they were handed); posts counts what is queued, so the
 * memory goes at once when nothing is, else with the last completion. */
struct link_listener {
	struct link_listener *next_zombie;
	struct sock_listener *own; /* a socket of ours: nothing below is used */
	struct loop *loop;
	nng_stream_listener *l;
	nng_aio *aio;
	link_accept_cb cb;
	void *arg;
	bool dead;
	atomic_bool closing;
	atomic_uint posts;
	struct loop_timer *retry;
};

struct link_dialer {
	struct link_dialer *next_zombie;
	struct sock_dialer *own; /* a socket of ours: nothing below is used */
	struct loop *loop;
	nng_stream_dialer *d;
	nng_aio *aio;
	link_dial_cb cb;
	void *arg;
	bool dead;
	atomic_bool closing;
	atomic_uint posts;
};

/* Freed while a completion was queued (see link_flush_all). */
static struct link_listener *listener_zombies;
static struct link_dialer *dialer_zombies;

/* nng thread: post cb(obj), or when closing drop the aio's stream. */
static void ep_post(struct loop *loop, atomic_bool *closing, atomic_uint *posts, nng_aio *aio,
		    loop_post_cb cb, void *obj)
{
	if (atomic_load(closing)) {
		if (nng_aio_result(aio) == 0)
			nng_stream_free(nng_aio_get_output(aio, 0));
		return;
	}
	atomic_fetch_add(posts, 1);
	if (loop_post(loop, cb, obj) < 0) {
		atomic_fetch_sub(posts, 1);
		if (nng_aio_result(aio) == 0)
			nng_stream_free(nng_aio_get_output(aio, 0));
	}
}

static int tls_config(const char *url, const struct link_tls *tls, bool server,
		      nng_tls_config **out, char *err, size_t errlen)
{
	struct linkurl u;
	nng_tls_config *cfg = NULL;
	int r;

	if (!tls || !tls->file) {
		snprintf(err, errlen, "%s needs %s", url,
			 server ? "a certificate and key (--tls-cert FILE)"
				: "the executor's certificate or its CA");
		return -EINVAL;
	}
	if (linkurl_parse(url, &u, err, errlen) < 0)
		return -EINVAL;
	r = nng_tls_config_alloc(&cfg, server ? NNG_TLS_MODE_SERVER : NNG_TLS_MODE_CLIENT);
	if (r == 0 && server)
		r = nng_tls_config_cert_key_file(cfg, tls->file, NULL);
	if (r == 0 && !server)
		r = nng_tls_config_ca_file(cfg, tls->file);
	if (r == 0 && !server)
		r = nng_tls_config_server_name(cfg, u.host);
	if (r == 0 && !server)
		r = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED);
	if (r != 0) {
		snprintf(err, errlen, "TLS setup for %s with %s: %s", url, tls->file,
			 nng_strerror(r));
		if (cfg)
			nng_tls_config_free(cfg);
		return link_errno(r);
	}
	*out = cfg;
	return 0;
}

/* ---- listener ------------------------------------------------------------- */

static void accept_post_cb(void *arg);
static void listener_really_free(struct link_listener *L);

static void accept_aio_cb(void *arg)
{
	struct link_listener *L = arg;

	ep_post(L->loop, &L->closing, &L->posts, L->aio, accept_post_cb, L);
}

static void accept_arm(struct link_listener *L)
{
	nng_stream_listener_accept(L->l, L->aio);
}

static void accept_retry_cb(struct loop_timer *t, void *arg)
{
	struct link_listener *L = arg;

	L->retry = NULL;
	accept_arm(L);
}

static void accept_post_cb(void *arg)
{
	struct link_listener *L = arg;
	int r;
	nng_stream *s;

	if (L->dead) { /* its stream was taken care of by link_listener_free */
		if (atomic_fetch_sub(&L->posts, 1) == 1)
			listener_really_free(L);
		return;
	}
	atomic_fetch_sub(&L->posts, 1); /* the callback below may free L: not after it */
	r = nng_aio_result(L->aio);
	s = r == 0 ? nng_aio_get_output(L->aio, 0) : NULL;
	if (r == NNG_ECLOSED)
		return;
	if (r != 0) {
		/* Out of fds or memory for a moment: try again shortly, never spin. */
		L->retry = loop_timer_add(L->loop, ACCEPT_RETRY_MS, accept_retry_cb, L);
		return;
	}
	accept_arm(L); /* the next one first: a slow callback must not delay it */
	L->cb((struct link_conn){ .fd = -1, .stream = s }, L->arg);
}

int link_listener_new(struct loop *loop, const char *url, const struct link_tls *tls,
		      link_accept_cb cb, void *arg, struct link_listener **out, char *err,
		      size_t errlen)
{
	struct link_listener *L;
	nng_tls_config *cfg = NULL;
	struct linkurl u;
	int r;

	if (linkurl_parse(url, &u, err, errlen) < 0)
		return -EINVAL;
	L = xcalloc(1, sizeof(*L));
	L->loop = loop;
	L->cb = cb;
	L->arg = arg;
	if (link_sock_scheme(u.scheme)) {
		r = sock_listener_new(loop, url, &u, cb, arg, &L->own, err, errlen);
		if (r < 0) {
			free(L);
			return r;
		}
		*out = L;
		return 0;
	}
	r = nng_stream_listener_alloc(&L->l, url);
	if (r == 0 && (u.scheme == LINKURL_IPC || u.scheme == LINKURL_UNIX))
		r = nng_stream_listener_set_int(L->l, NNG_OPT_IPC_PERMISSIONS, 0600);
	if (r == 0 && (u.scheme == LINKURL_TLS || u.scheme == LINKURL_WSS)) {
		if (tls_config(url, tls, true, &cfg, err, errlen) < 0) {
			nng_stream_listener_free(L->l);
			free(L);
			return -EINVAL;
		}
		r = nng_stream_listener_set_ptr(L->l, NNG_OPT_TLS_CONFIG, cfg);
		nng_tls_config_free(cfg); /* the listener holds its own reference */
	}
	if (r == 0)
		r = nng_stream_listener_listen(L->l);
	if (r == 0)
		r = nng_aio_alloc(&L->aio, accept_aio_cb, L);
	if (r != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", url, nng_strerror(r));
		nng_stream_listener_free(L->l);
		free(L);
		return link_errno(r);
	}
	accept_arm(L);
	*out = L;
	return 0;
}

int link_listener_port(const struct link_listener *L)
{
	int port = 0;

	if (L->own)
		return sock_listener_port(L->own);
	if (nng_stream_listener_get_int(L->l, NNG_OPT_TCP_BOUND_PORT, &port) != 0)
		return 0;
	return port;
}

static void listener_really_free(struct link_listener *L)
{
	for (struct link_listener **pp = &listener_zombies; *pp; pp = &(*pp)->next_zombie) {
		if (*pp == L) {
			*pp = L->next_zombie;
			break;
		}
	}
	nng_aio_free(L->aio);
	free(L);
}

struct link_listener *link_listener_free(struct link_listener *L)
{
	if (!L)
		return NULL;
	if (L->own) {
		sock_listener_free(L->own);
		free(L);
		return NULL;
	}
	L->dead = true;
	atomic_store(&L->closing, true);
	loop_timer_cancel(L->retry);
	nng_stream_listener_close(L->l);
	nng_aio_stop(L->aio);
	nng_stream_listener_free(L->l);
	if (atomic_load(&L->posts) == 0) {
		listener_really_free(L);
		return NULL;
	}
	if (nng_aio_result(L->aio) == 0) /* an accept queued, never to be handled */
		nng_stream_free(nng_aio_get_output(L->aio, 0));
	L->next_zombie = listener_zombies;
	listener_zombies = L;
	return NULL;
}

/* ---- dialer --------------------------------------------------------------- */

static void dialer_really_free(struct link_dialer *D);

static void dial_post_cb(void *arg)
{
	struct link_dialer *D = arg;
	int r;
	nng_stream *s;
	char why[160];

	if (D->dead) { /* its stream was taken care of by link_dialer_free */
		if (atomic_fetch_sub(&D->posts, 1) == 1)
			dialer_really_free(D);
		return;
	}
	atomic_fetch_sub(&D->posts, 1); /* the callback below may free D: not after it */
	r = nng_aio_result(D->aio);
	s = r == 0 ? nng_aio_get_output(D->aio, 0) : NULL;
	if (r == 0) {
		D->cb((struct link_conn){ .fd = -1, .stream = s }, 0, NULL, D->arg);
		return;
	}
	snprintf(why, sizeof(why), "%s", r == NNG_ETIMEDOUT ? "connect timed out" : nng_strerror(r));
	D->cb(LINK_CONN_NONE, link_errno(r), why, D->arg);
}

static void dial_aio_cb(void *arg)
{
	struct link_dialer *D = arg;

	ep_post(D->loop, &D->closing, &D->posts, D->aio, dial_post_cb, D);
}

int link_dialer_new(struct loop *loop, const char *url, const struct link_tls *tls,
		    struct link_dialer **out, char *err, size_t errlen)
{
	struct link_dialer *D;
	nng_tls_config *cfg = NULL;
	struct linkurl u;
	int r;

	if (linkurl_parse(url, &u, err, errlen) < 0)
		return -EINVAL;
	D = xcalloc(1, sizeof(*D));
	D->loop = loop;
	if (link_sock_scheme(u.scheme)) {
		D->own = sock_dialer_new(loop, &u);
		*out = D;
		return 0;
	}
	r = nng_stream_dialer_alloc(&D->d, url);
	if (r == 0 && (u.scheme == LINKURL_TLS || u.scheme == LINKURL_WSS)) {
		if (tls_config(url, tls, false, &cfg, err, errlen) < 0) {
			nng_stream_dialer_free(D->d);
			free(D);
			return -EINVAL;
		}
		r = nng_stream_dialer_set_ptr(D->d, NNG_OPT_TLS_CONFIG, cfg);
		nng_tls_config_free(cfg);
	}
	if (r == 0)
		r = nng_aio_alloc(&D->aio, dial_aio_cb, D);
	if (r != 0) {
		snprintf(err, errlen, "cannot dial %s: %s", url, nng_strerror(r));
		if (D->d)
			nng_stream_dialer_free(D->d);
		free(D);
		return link_errno(r);
	}
	*out = D;
	return 0;
}

void link_dial(struct link_dialer *D, unsigned timeout_ms, link_dial_cb cb, void *arg)
{
	if (D->own) {
		sock_dial(D->own, timeout_ms, cb, arg);
		return;
	}
	D->cb = cb;
	D->arg = arg;
	nng_aio_set_timeout(D->aio, timeout_ms ? (nng_duration)timeout_ms : NNG_DURATION_DEFAULT);
	nng_stream_dialer_dial(D->d, D->aio);
}

static void dialer_really_free(struct link_dialer *D)
{
	for (struct link_dialer **pp = &dialer_zombies; *pp; pp = &(*pp)->next_zombie) {
		if (*pp == D) {
			*pp = D->next_zombie;
			break;
		}
	}
	nng_aio_free(D->aio);
	free(D);
}

void link_ep_reap_all(void)
{
	while (listener_zombies)
		listener_really_free(listener_zombies);
	while (dialer_zombies)
		dialer_really_free(dialer_zombies);
}

struct link_dialer *link_dialer_free(struct link_dialer *D)
{
	if (!D)
		return NULL;
	if (D->own) {
		sock_dialer_free(D->own);
		free(D);
		return NULL;
	}
	D->dead = true;
	atomic_store(&D->closing, true);
	nng_stream_dialer_close(D->d);
	nng_aio_stop(D->aio);
	nng_stream_dialer_free(D->d);
	if (atomic_load(&D->posts) == 0) {
		dialer_really_free(D);
		return NULL;
	}
	if (nng_aio_result(D->aio) == 0) /* a dial queued, never to be handled */
		nng_stream_free(nng_aio_get_output(D->aio, 0));
	D->next_zombie = dialer_zombies;
	dialer_zombies = D;
	return NULL;
}
