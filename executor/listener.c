/* listener.c - the executor's end of the link: one nng pair1 listener, one
 * peer at a time, nothing but HELLO accepted before that peer proved the
 * secret.
 *
 * Peer lifecycle (all on the loop thread; nng pipe events are posted here):
 *   pipe added    -> pending: CHALLENGE sent, auth timer armed (several
 *                    pending connections may exist; the oldest is evicted
 *                    past EXEC_MAX_PENDING)
 *   HELLO ok      -> the peer (AUTHED); every other pending one is closed
 *   bad frame, wrong state, failed proof, auth timeout -> pipe closed
 *   pipe added while a peer is AUTHED -> closed: one orchestrator at a time
 *   peer's pipe removed -> processes detach for the grace period
 * pair1 holds one pipe at a time; the pending list usually holds that one
 * pipe, and keeps the policy right should nng ever hand us more.
 */
#include <errno.h>
#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/transport/ipc/ipc.h>
#include <stdarg.h>
#include <stdio.h>
#include <sodium.h>
#include <string.h>

#include "executor.h"
#include "linkurl.h"
#include "log.h"
#include "loop.h"
#include "util.h"

/* nng pipe callbacks carry only a pointer; one executor per process. */
static struct executor *the_ex;

static void peer_lost(struct executor *ex)
{
	if (ex->state == PEER_AUTHED)
		procs_detach_all(ex);
	httprelay_abort_all(ex);
	/* Frames queued for this peer must never reach the next one. */
	link_discard_queue(&ex->link);
	ex->peer = 0;
	ex->link.target_pipe = 0;
	ex->state = PEER_NONE;
}

#define DROP_LINGER_MS 100 /* lets a final error reply leave before the close */

static void close_later_cb(struct loop_timer *t, void *arg)
{
	if (the_ex)
		link_close_pipe(&the_ex->link, (uint32_t)(uintptr_t)arg);
}

void listener_drop_peer(struct executor *ex, const char *why)
{
	uint32_t pipe = ex->peer;

	if (!pipe)
		return;
	log_warn("dropping peer (pipe %u): %s", pipe, why);
	ex->peers_dropped++;
	/* Forgotten at once (its frames are refused from now on), closed a
	 * moment later so an error reply sent just before is delivered. */
	peer_lost(ex);
	loop_timer_add(ex->loop, DROP_LINGER_MS, close_later_cb, (void *)(uintptr_t)pipe);
}

static int pending_find(const struct executor *ex, uint32_t pipe)
{
	for (unsigned i = 0; i < ex->n_pending; i++)
		if (ex->pending[i].pipe == pipe)
			return (int)i;
	return -1;
}

/* Forgets pending connection i (does not close it). */
static void pending_remove(struct executor *ex, unsigned i)
{
	loop_timer_cancel(ex->pending[i].timer);
	memmove(&ex->pending[i], &ex->pending[i + 1],
		(ex->n_pending - i - 1) * sizeof(ex->pending[0]));
	ex->n_pending--;
}

static void pending_close_all(struct executor *ex, const char *why)
{
	while (ex->n_pending) {
		log_info("closing pending connection (pipe %u): %s", ex->pending[0].pipe, why);
		link_close_pipe(&ex->link, ex->pending[0].pipe);
		pending_remove(ex, 0);
	}
}

static void auth_timeout_cb(struct loop_timer *t, void *arg)
{
	struct executor *ex = the_ex;
	uint32_t pipe = (uint32_t)(uintptr_t)arg;
	int i = ex ? pending_find(ex, pipe) : -1;

	if (i < 0)
		return;
	ex->pending[i].timer = NULL;
	pending_remove(ex, (unsigned)i);
	log_warn("closing connection (pipe %u): did not authenticate in time", pipe);
	ex->peers_dropped++;
	link_close_pipe(&ex->link, pipe);
}

static void pipe_added(struct executor *ex, uint32_t pipe)
{
	unsigned n;

	if (ex->peer == pipe || pending_find(ex, pipe) >= 0)
		return;
	if (ex->state == PEER_AUTHED) {
		/* One orchestrator at a time: while one is authenticated, a
		 * second connection is refused. */
		log_warn("refusing a second peer (pipe %u): one is authenticated", pipe);
		link_close_pipe(&ex->link, pipe);
		return;
	}
	if (ex->n_pending == EXEC_MAX_PENDING) {
		log_warn("too many connections awaiting HELLO: closing the oldest (pipe %u)",
			 ex->pending[0].pipe);
		link_close_pipe(&ex->link, ex->pending[0].pipe);
		pending_remove(ex, 0);
	}
	n = ex->n_pending++;
	ex->pending[n].pipe = pipe;
	ex->pending[n].timer = loop_timer_add(ex->loop, EXEC_AUTH_TIMEOUT_MS, auth_timeout_cb,
					      (void *)(uintptr_t)pipe);
	log_info("peer connected (pipe %u)", pipe);
	ex->link.target_pipe = pipe;
	exec_challenge(ex, ex->pending[n].challenge);
	ex->link.target_pipe = ex->peer;
}

static void pipe_event_post_cb(void *arg)
{
	uintptr_t v = (uintptr_t)arg;
	uint32_t pipe = (uint32_t)(v >> 2);
	struct executor *ex = the_ex;

	if (!ex)
		return;
	if ((v & 3u) == NNG_PIPE_EV_ADD_POST) {
		pipe_added(ex, pipe);
	} else if (pipe == ex->peer) {
		log_info("peer disconnected (pipe %u)", pipe);
		peer_lost(ex);
	} else if (pending_find(ex, pipe) >= 0) {
		pending_remove(ex, (unsigned)pending_find(ex, pipe));
	}
}

/* nng thread: hand the event to the loop, packed into the pointer so that
 * nothing is allocated (and nothing leaks if the loop is gone). */
static void pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct executor *ex = arg;
	uintptr_t v = ((uintptr_t)(uint32_t)nng_pipe_id(p) << 2) | (uintptr_t)ev;

	loop_post(ex->loop, pipe_event_post_cb, (void *)v);
}

static bool allowed_now(const struct executor *ex, const struct proto_msgdef *d)
{
	return d->state == PROTO_PREAUTH ? ex->state == PEER_PREAUTH : ex->state == PEER_AUTHED;
}

static void handle_frame(struct executor *ex, const void *data, size_t len)
{
	struct proto_msg m;
	char err[256], why[320];

	if (proto_decode(data, len, &m, err, sizeof(err)) < 0) {
		snprintf(why, sizeof(why), "malformed frame: %s", err);
		listener_drop_peer(ex, why);
		return;
	}
	if (m.def->dir != PROTO_O2E || m.env.kind == PROTO_REPLY) {
		snprintf(why, sizeof(why), "%s %s is not accepted by an executor", m.def->name,
			 m.env.kind == PROTO_REPLY ? "reply" : "message");
		listener_drop_peer(ex, why);
	} else if (!allowed_now(ex, m.def)) {
		snprintf(why, sizeof(why), "%s is not allowed %s authentication", m.def->name,
			 ex->state == PEER_AUTHED ? "after" : "before");
		listener_drop_peer(ex, why);
	} else {
		exec_dispatch(ex, &m);
	}
	proto_msg_release(&m);
}

/* A frame from a pending connection: handled as the current peer in
 * PREAUTH (only HELLO passes); if it proves the secret it becomes the peer
 * and every other pending connection is closed. */
static void pending_frame(struct executor *ex, unsigned i, const void *data, size_t len)
{
	uint32_t pipe = ex->pending[i].pipe;

	memcpy(ex->challenge, ex->pending[i].challenge, sizeof(ex->challenge));
	pending_remove(ex, i);
	ex->peer = pipe;
	ex->link.target_pipe = pipe;
	ex->state = PEER_PREAUTH;
	handle_frame(ex, data, len);
	if (ex->state == PEER_AUTHED) {
		pending_close_all(ex, "another orchestrator authenticated");
	} else if (ex->peer == pipe) {
		/* Still not authenticated after a frame: only HELLO is allowed
		 * first, so this cannot happen; be strict anyway. */
		listener_drop_peer(ex, "did not authenticate");
	}
	sodium_memzero(ex->challenge, sizeof(ex->challenge));
}

static void frame_cb(struct link *lk, uint32_t pipe, const void *data, size_t len, void *arg)
{
	struct executor *ex = arg;
	int i;

	if (pipe == ex->peer && ex->state == PEER_AUTHED) {
		handle_frame(ex, data, len);
		return;
	}
	i = pending_find(ex, pipe);
	if (i >= 0) {
		pending_frame(ex, (unsigned)i, data, len);
		return;
	}
	/* Sent before we challenged it, or left over from a dropped peer. */
	log_debug("closing pipe %u: frame outside a session", pipe);
	link_close_pipe(lk, pipe);
}

bool listener_authed(const struct executor *ex) { return ex->state == PEER_AUTHED; }

int listener_send(struct executor *ex, uint16_t type, uint8_t kind, uint32_t id, const void *body)
{
	const struct proto_msgdef *d = proto_msgdef(type);
	int r;

	if (!ex->link.target_pipe || !d) /* the peer, or a pending connection */
		return -ENOTCONN;
	if (d->state == PROTO_AUTHED && ex->state != PEER_AUTHED)
		return -EPERM;
	r = link_send(&ex->link, type, kind, id, body);
	if (r == -ENOBUFS)
		listener_drop_peer(ex, "peer is not reading: send queue over its bound");
	return r;
}

int listener_send_error(struct executor *ex, uint16_t type, uint32_t id, int32_t status,
			const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!ex->link.target_pipe)
		return -ENOTCONN;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return link_send_error(&ex->link, type, id, status, msg);
}

static int setup_tls(struct executor *ex, char *err, size_t errlen)
{
	nng_tls_config *cfg;
	int r;

	if (!ex->opts.tls_cert_key_file) {
		snprintf(err, errlen, "%s needs --tls-cert FILE (PEM certificate and key)",
			 ex->opts.listen_url);
		return -EINVAL;
	}
	r = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_SERVER);
	if (r == 0)
		r = nng_tls_config_cert_key_file(cfg, ex->opts.tls_cert_key_file, NULL);
	if (r == 0)
		r = nng_listener_set_ptr(ex->listener, NNG_OPT_TLS_CONFIG, cfg);
	if (cfg)
		nng_tls_config_free(cfg); /* the listener holds its own reference */
	if (r != 0)
		snprintf(err, errlen, "TLS setup with %s: %s", ex->opts.tls_cert_key_file,
			 nng_strerror(r));
	return r ? link_errno(r) : 0;
}

int listener_start(struct executor *ex, char *err, size_t errlen)
{
	const char *url = ex->opts.listen_url;
	int r;

	if (!ex->secret && !linkurl_is_local(url) && !ex->opts.insecure) {
		snprintf(err, errlen,
			 "refusing to listen on %s without authentication: configure "
			 "--auth-token-file (or $TANDEM_EXECUTOR_TOKEN), or pass --insecure",
			 url);
		return -EPERM;
	}
	the_ex = ex;
	r = link_open(&ex->link, ex->loop, frame_cb, ex);
	if (r < 0) {
		snprintf(err, errlen, "cannot open the link socket: %s", strerror(-r));
		return r;
	}
	nng_pipe_notify(ex->link.sock, NNG_PIPE_EV_ADD_POST, pipe_cb, ex);
	nng_pipe_notify(ex->link.sock, NNG_PIPE_EV_REM_POST, pipe_cb, ex);
	r = nng_listener_create(&ex->listener, ex->link.sock, url);
	if (r != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", url, nng_strerror(r));
		return link_errno(r);
	}
	if (strncmp(url, "ipc://", 6) == 0)
		nng_listener_set_int(ex->listener, NNG_OPT_IPC_PERMISSIONS, 0600);
	if (strncmp(url, "tls+tcp://", 10) == 0) {
		r = setup_tls(ex, err, errlen);
		if (r < 0)
			return r;
	}
	r = nng_listener_start(ex->listener, 0);
	if (r != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", url, nng_strerror(r));
		return link_errno(r);
	}
	if (!ex->secret)
		log_warn("no authentication configured: any local process can drive this executor");
	log_info("executor '%s' listening on %s", ex->opts.id, url);
	return 0;
}

void listener_stop(struct executor *ex)
{
	while (ex->n_pending)
		pending_remove(ex, 0);
	link_close(&ex->link); /* closes the listener and its pipes */
	the_ex = NULL;
}
