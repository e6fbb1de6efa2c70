/* env_link.c - an environment's link to its executor: one dial attempt at
 * a time, the handshake (the one place it runs on the orchestrator's side;
 * proto/handshake.c decides), the acceptance check and orch_handle_<msg>
 * table for frames after it, keepalives, and redials with backoff and
 * jitter. See env_priv.h and proto/PROTOCOL.md.
 *
 * Nothing but handshake bytes is ever written to a connection before the
 * executor proved the secret, and requests are only sent on a READY link
 * (env_request refuses otherwise): whatever answers on the address after
 * the executor vanished receives nothing of ours.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "env_priv.h"
#include "fdlimit.h"
#include "handshake.h"
#include "link.h"
#include "linkurl.h"
#include "log.h"
#include "loop.h"
#include "lsess.h"
#include "metrics_tandem.h"
#include "secret.h"
#include "util.h"
#include "version.h"

#define REDIAL_MIN_MS 25u
#define REDIAL_FAST_MS 2000u   /* doubling up to here (a few seconds of tries) ... */
#define REDIAL_MAX_MS 30000u   /* ... then x1.5 up to here: a dead address costs little */
#define REDIAL_BUSY_MS 1000u   /* refused busy: try again after 1-2 s */
#define DIAL_TIMEOUT_MS 5000u  /* one attempt */
#define FLUSH_MS 500u          /* a last frame for the peer (e.g. to a v1 executor) */
#define RESUME_REDIAL_MAX_MS 250u  /* a session waits: redial often ... */
#define RESUME_DIAL_TIMEOUT_MS 1000u /* ... with short attempts (a SYN into a cut
				      * link would otherwise wait for its retries) */
#define RESUME_HS_TIMEOUT_MS 3000u /* the executor's default --handshake-timeout */
#define TICKET_SEQ_BITS 40

static const char orch_id[] = "tandem-orchestrator " TANDEM_VERSION;
static const struct link_ops env_link_ops;

static void dial_now(struct env *e);

/* ---- redials -------------------------------------------------------------- */

static void redial_cb(struct loop_timer *t, void *arg)
{
	struct env *e = arg;

	e->redial_timer = NULL;
	dial_now(e);
}

/* delay +- 25 %, so that many orchestrators do not redial in step. */
static uint64_t jitter(uint64_t ms)
{
	uint64_t span = ms / 2;

	return span ? ms - ms / 4 + randombytes_uniform((uint32_t)MIN(span, UINT32_MAX)) : ms;
}

static void schedule_redial(struct env *e)
{
	uint64_t ms;

	if (e->redial_timer || e->dialing || e->lk || !e->dialer)
		return;
	if (e->last_fail == HS_FAIL_BUSY) {
		ms = REDIAL_BUSY_MS + randombytes_uniform(REDIAL_BUSY_MS);
	} else {
		ms = jitter(e->redial_ms ? e->redial_ms : REDIAL_MIN_MS);
		/* A session waiting to resume is tried often (resume's bound);
		 * otherwise doubling to a few seconds, then slower and slower. */
		if (e->grace_timer)
			e->redial_ms = MIN(MAX(e->redial_ms * 2, REDIAL_MIN_MS), RESUME_REDIAL_MAX_MS);
		else if (e->redial_ms < REDIAL_FAST_MS)
			e->redial_ms = MIN(MAX(e->redial_ms * 2, REDIAL_MIN_MS), REDIAL_FAST_MS);
		else
			e->redial_ms = MIN(e->redial_ms + e->redial_ms / 2, REDIAL_MAX_MS);
	}
	e->redial_delay_ms = ms;
	e->redial_timer = loop_timer_add(e->loop, ms, redial_cb, e);
}

static void connect_timeout_cb(struct loop_timer *t, void *arg)
{
	struct env *e = arg;
	_cleanup_free_ char *last = e->error ? xstrdup(e->error) : NULL;

	e->connect_timer = NULL;
	if (e->state == ENV_READY)
		return;
	if (e->dial_in)
		env_set_error(e, "the executor did not dial in again within %llu ms%s%s",
			      (unsigned long long)e->connect_timeout_ms, last ? ": " : "",
			      last ? last : "");
	else
		env_set_error(e, "cannot reach the executor at %s within %llu ms; still trying%s%s",
			      e->url, (unsigned long long)e->connect_timeout_ms, last ? ": " : "",
			      last ? last : "");
	env_set_state(e, ENV_DISCONNECTED);
}

static void arm_connect_timer(struct env *e)
{
	loop_timer_cancel(e->connect_timer);
	e->connect_timer = loop_timer_add(e->loop, e->connect_timeout_ms, connect_timeout_cb, e);
}

/* Why the latest attempt failed; after a lost link, the loss stays first
 * in the status ("keepalive: ...; since then: unreachable: ..."). */
static void attempt_failed(struct env *e, const char *why)
{
	if (e->lost)
		env_set_error(e, "%s; since then: %s", e->lost, why);
	else
		env_set_error(e, "%s", why);
}

/* ---- the session ----------------------------------------------------------- */

static void session_hex(const struct env *e, char out[33])
{
	env_session_hex(e, out);
}

/* Forgets the session (its frames were or were not acked: tickets of it
 * are judged by ls_prev_acked from now on). */
static void session_forget(struct env *e)
{
	loop_timer_cancel(e->grace_timer);
	e->grace_timer = NULL;
	if (!e->ls)
		return;
	e->ls_prev_acked = e->ls->tx_acked;
	e->ls = lsess_free(e->ls);
}

/* The session cannot resume: everything waiting on it fails with why. */
static void session_over(struct env *e, const char *why)
{
	if (!e->ls)
		return;
	log_warn("environment '%s': the session cannot resume: %s", e->id, why);
	session_forget(e);
	if (e->lost) { /* later dial errors follow this, not "resuming" */
		free(e->lost);
		e->lost = xstrdup(why);
	}
	env_session_lost(e, why);
}

static void grace_cb(struct loop_timer *t, void *arg)
{
	struct env *e = arg;
	char why[200];

	e->grace_timer = NULL;
	snprintf(why, sizeof(why), "the link was not back within %llu ms (the session's grace "
				   "period): calls in flight that reached the executor have an "
				   "unknown outcome",
		 (unsigned long long)e->grace_ms);
	session_over(e, why);
}

/* ---- ending a connection -------------------------------------------------- */

static void conn_forget(struct env *e, bool flush)
{
	loop_timer_cancel(e->init_timer);
	e->init_timer = NULL;
	loop_timer_cancel(e->keepalive_timer);
	e->keepalive_timer = NULL;
	if (flush)
		link_close_flush(e->lk, FLUSH_MS);
	else
		link_free(e->lk);
	e->lk = NULL;
	e->hs = hs_free(e->hs);
	e->sealed = false;
}

/* The connection ended (why says how); the environment reports it and
 * dials again. */
static void conn_lost(struct env *e, const char *why, bool flush)
{
	bool was_ready = e->state == ENV_READY;

	conn_forget(e, flush);
	if (was_ready && e->ls && e->grace_ms) {
		/* The session waits for a new connection: calls carry on. */
		log_warn("environment '%s': link lost: %s; the session may resume within %llu ms",
			 e->id, why, (unsigned long long)e->grace_ms);
		e->redial_ms = 0;
		free(e->lost);
		e->lost = xasprintf("%s (resuming the session)", why);
		e->suspended_ms = loop_now_ms(e->loop);
		e->grace_timer = loop_timer_add(e->loop, e->grace_ms, grace_cb, e);
		arm_connect_timer(e);
		env_set_error(e, "%s", e->lost);
		env_set_state(e, ENV_DISCONNECTED);
	} else if (was_ready) {
		log_warn("environment '%s': link lost: %s", e->id, why);
		session_forget(e);
		e->redial_ms = 0; /* a link that worked: the first redial is quick */
		free(e->lost);
		e->lost = xstrdup(why);
		arm_connect_timer(e);
		env_link_lost(e, why);
	} else {
		attempt_failed(e, why);
		log_info("environment '%s': %s", e->id, why);
	}
	schedule_redial(e);
}

static void drop(struct env *e, const char *why)
{
	log_warn("environment '%s': closing the link: %s", e->id, why);
	conn_lost(e, why, false);
}

/* ---- keepalives ----------------------------------------------------------- */

static void send_ping(struct env *e)
{
	struct proto_ping_body p = { .stamp = now_ns() / 1000u };

	PROTO_MARK(&p, ping_body, stamp);
	/* Ids of our own pings share nothing with env_request's: replies to
	 * PING never reach the pending list (orch_handle_ping_reply). */
	link_send(e->lk, PROTO_PING, PROTO_REQUEST, ++e->next_ping_id, &p);
}

static void keepalive_cb(struct loop_timer *t, void *arg)
{
	struct env *e = arg;
	uint64_t idle = loop_now_ms(e->loop) - link_last_rx_ms(e->lk);
	char why[160];

	if (idle >= e->dead_ms) {
		e->keepalive_timer = NULL;
		snprintf(why, sizeof(why), "keepalive: nothing from the executor for %llu ms",
			 (unsigned long long)idle);
		drop(e, why);
		return;
	}
	if (idle >= e->keepalive_ms)
		send_ping(e);
	loop_timer_rearm(t, e->keepalive_ms);
}

/* ---- frames after the handshake: the acceptance check, then a handler ---- */

static void orch_handle_ping(struct env *e, const struct proto_msg *m)
{
	struct proto_ping_reply r = { .stamp = m->u.ping.stamp };

	PROTO_MARK(&r, ping_reply, stamp);
	link_send(e->lk, PROTO_PING, PROTO_REPLY, m->env.id, &r);
}

static void orch_handle_mcp_output(struct env *e, const struct proto_msg *m)
{
	if (e->ops->output_cb)
		e->ops->output_cb(e, m->u.mcp_output.handle, m->u.mcp_output.data.ptr,
				  m->u.mcp_output.data.len, e->arg);
}

static void orch_handle_mcp_stderr(struct env *e, const struct proto_msg *m)
{
	if (e->ops->stderr_cb)
		e->ops->stderr_cb(e, m->u.mcp_stderr.handle, m->u.mcp_stderr.line.ptr,
				  m->u.mcp_stderr.line.len, e->arg);
}

static void orch_handle_mcp_exited(struct env *e, const struct proto_msg *m)
{
	_cleanup_free_ char *why = proto_str_dup(m->u.mcp_exited.reason);

	if (e->ops->exited_cb)
		e->ops->exited_cb(e, m->u.mcp_exited.handle, why, e->arg);
}

static void orch_handle_mcp_expired(struct env *e, const struct proto_msg *m)
{
	_cleanup_free_ char *why = proto_str_dup(m->u.mcp_expired.reason);

	env_mcp_expired(e, m->u.mcp_expired.handle, m->u.mcp_expired.call_id, why);
}

static void orch_handle_http_response(struct env *e, const struct proto_msg *m)
{
	env_relay_event(e, m);
}

/* A reply to one of our keepalive PINGs: the round trip. */
static void orch_handle_ping_reply(struct env *e, const struct proto_msg *m)
{
	uint64_t now = now_ns() / 1000u;

	if (m->env.status == 0 && m->u.ping_reply.stamp && m->u.ping_reply.stamp <= now)
		e->rtt_us = now - m->u.ping_reply.stamp;
}

typedef void (*orch_handler)(struct env *e, const struct proto_msg *m);

/* The whole policy for what an executor may send after the handshake:
 * requests and events in this table (the message table must also say E2O
 * and AUTHED), and replies to requests we send (O2E). */
static const struct {
	uint16_t type;
	orch_handler fn;
} handlers[] = {
	{ PROTO_PING, orch_handle_ping },
	{ PROTO_MCP_OUTPUT, orch_handle_mcp_output },
	{ PROTO_MCP_STDERR, orch_handle_mcp_stderr },
	{ PROTO_MCP_EXITED, orch_handle_mcp_exited },
	{ PROTO_MCP_EXPIRED, orch_handle_mcp_expired },
	{ PROTO_HTTP_RESPONSE, orch_handle_http_response },
};

static orch_handler find_handler(uint16_t type)
{
	for (size_t i = 0; i < ARRAY_SIZE(handlers); i++)
		if (handlers[i].type == type)
			return handlers[i].fn;
	return NULL;
}

/* NULL when m may be handled, else why not. */
static const char *refusal(const struct proto_msg *m)
{
	if (m->def->state != PROTO_AUTHED)
		return "is only allowed in the handshake";
	if (m->env.kind == PROTO_REPLY)
		return m->def->dir & PROTO_O2E ? NULL : "is a reply to nothing we send";
	if (!(m->def->dir & PROTO_E2O))
		return "does not travel from an executor";
	return find_handler(m->env.type) ? NULL : "has no handler on the orchestrator";
}

static void env_frame_cb(struct link *lk, const uint8_t *data, size_t len, void *arg)
{
	struct env *e = arg;
	struct proto_msg m;
	char err[256], why[320];
	const char *no;

	if (proto_decode(data, len, &m, err, sizeof(err)) < 0) {
		snprintf(why, sizeof(why), "malformed frame from the executor: %s", err);
		drop(e, why);
		return;
	}
	no = refusal(&m);
	if (no) {
		snprintf(why, sizeof(why), "%s from the executor %s", m.def->name, no);
		drop(e, why);
	} else if (m.env.kind == PROTO_REPLY) {
		if (m.env.type == PROTO_PING)
			orch_handle_ping_reply(e, &m);
		else
			env_reply(e, &m);
	} else {
		find_handler(m.env.type)(e, &m);
	}
	proto_msg_release(&m);
}

/* ---- the handshake -------------------------------------------------------- */

/* Resumes the session or starts a fresh one; false when the link was
 * dropped (it cannot go on). */
static bool session_attach(struct env *e, const struct hs_result *r)
{
	char why[400], hex[33];
	size_t replay;

	session_hex(e, hex);
	if (e->ls && !r->resume) {
		snprintf(why, sizeof(why), "the executor did not resume session %s: %s", hex,
			 r->resume_refused[0] ? r->resume_refused : "no reason given");
		session_over(e, why);
	} else if (e->ls && lsess_can_resume(e->ls, r->resume_ack, why, sizeof(why)) < 0) {
		session_over(e, why);
		drop(e, why); /* the next connection starts a fresh session */
		return false;
	} else if (e->ls) {
		lsess_ack(e->ls, r->resume_ack);
		replay = e->ls->n;
		e->resumes++;
		metrics_link_reconnect();
		log_info("environment '%s': session %s resumed after %llu ms without a link "
			 "(%zu frames sent again)", e->id, hex,
			 (unsigned long long)(loop_now_ms(e->loop) - e->suspended_ms), replay);
	}
	loop_timer_cancel(e->grace_timer);
	e->grace_timer = NULL;
	if (!e->ls) {
		e->ls = lsess_new(r->session, 0, 0);
		e->ls_gen++;
	}
	if (link_set_session(e->lk, e->ls) < 0) {
		drop(e, "cannot queue the frames to send again");
		return false;
	}
	return true;
}

static void handshake_done(struct env *e)
{
	const struct hs_result *r = hs_result(e->hs);

	link_set_framed(e->lk, PROTO_MAX_FRAME);
	if (r->sealed && link_set_seal(e->lk, r) < 0) {
		drop(e, "cannot set up the link's sealing (out of memory)");
		return;
	}
	if (!session_attach(e, r))
		return;
	e->sealed = r->sealed;
	free(e->executor_id);
	e->executor_id = xstrdup(r->executor_id);
	e->http_relay = r->http_relay;
	e->n_live = r->n_live;
	memcpy(e->live_handles, r->live_handles, sizeof(e->live_handles));
	memcpy(e->live_ids, r->live_ids, sizeof(e->live_ids));
	e->live_more = r->live_more;
	if (r->n_live)
		log_info("environment '%s': the executor kept %u server(s) from an earlier link%s",
			 e->id, r->n_live, r->live_more ? ", and more it did not list (found by "
							  "identity when needed)" : "");
	loop_timer_cancel(e->init_timer);
	e->init_timer = NULL;
	loop_timer_cancel(e->connect_timer);
	e->connect_timer = NULL;
	e->redial_ms = 0;
	e->last_fail = HS_FAIL_NONE;
	e->rtt_us = 0;
	free(e->lost);
	e->lost = NULL;
	e->keepalive_timer = loop_timer_add(e->loop, e->keepalive_ms, keepalive_cb, e);
	if (!r->sealed && linkurl_needs_seal(e->url))
		log_warn("environment '%s': the link to %s is NOT encrypted (the executor runs "
			 "with --insecure or without a token); nothing secret is relayed over it",
			 e->id, e->url);
	log_info("environment '%s': executor '%s' %s authenticated (protocol %u, %s%s)", e->id,
		 e->executor_id, r->executor_version, PROTO_VERSION,
		 r->sealed ? "sealed with " : "not sealed", r->sealed ? seal_aead_name(r->aead) : "");
	e->hs = hs_free(e->hs); /* r goes with it */
	env_set_state(e, ENV_READY);
}

static void handshake_failed(struct env *e)
{
	enum hs_fail kind = hs_fail_kind(e->hs);
	char why[400];

	snprintf(why, sizeof(why), "%s: %s", hs_fail_name(kind), hs_error(e->hs));
	e->last_fail = kind;
	metrics_handshake_refused(hs_fail_label(kind));
	log_warn("environment '%s': handshake with %s failed: %s", e->id, e->url, why);
	/* A refusal is news the status must show now, not at the connect
	 * timeout: busy, a wrong token, a version mismatch. */
	conn_forget(e, true);
	attempt_failed(e, why);
	if (kind != HS_FAIL_PROTOCOL)
		env_set_state(e, ENV_DISCONNECTED);
	schedule_redial(e);
}

static size_t env_raw_cb(struct link *lk, const uint8_t *data, size_t len, void *arg)
{
	struct env *e = arg;
	struct fbuf out = { 0 };
	size_t used = hs_input(e->hs, data, len, &out);

	if (out.len)
		link_send_raw(lk, out.p, out.len);
	fbuf_free(&out);
	switch (hs_state(e->hs)) {
	case HS_FAILED: handshake_failed(e); return 0;
	case HS_DONE: handshake_done(e); break;
	default: break;
	}
	return used;
}

/* Codex's environments.toml names exec-servers with ws:// URLs too: when
 * such a url fails the handshake, say what it must be. */
static const char *ws_hint(const struct env *e)
{
	if (e->dial_in || !e->url || (strncmp(e->url, "ws://", 5) && strncmp(e->url, "wss://", 6)))
		return "";
	return " (a ws:// or wss:// url must name a tandem executor's --listen address; a Codex "
	       "exec-server is not one)";
}

static void env_closed_cb(struct link *lk, const char *why, void *arg)
{
	struct env *e = arg;
	char msg[500];

	if (e->state != ENV_READY) {
		snprintf(msg, sizeof(msg), "the executor closed the connection during the "
					   "handshake: %s%s", why, ws_hint(e));
		conn_lost(e, msg, false);
		return;
	}
	conn_lost(e, why, false);
}

static const struct link_ops env_link_ops = {
	.raw_cb = env_raw_cb,
	.frame_cb = env_frame_cb,
	.closed_cb = env_closed_cb,
};

static void init_timeout_cb(struct loop_timer *t, void *arg)
{
	struct env *e = arg;
	char why[300];

	e->init_timer = NULL;
	snprintf(why, sizeof(why), "the executor did not complete the handshake in time%s",
		 ws_hint(e));
	drop(e, why);
}

/* A local socket must be served by our own user (or root): anything else
 * took the path from under us. */
static bool peer_uid_ok(struct env *e, struct link *lk, char *why, size_t whylen)
{
	uint64_t uid;

	if (!linkurl_is_local_socket(e->url) || link_peer_uid(lk, &uid) < 0)
		return true;
	if (uid == (uint64_t)getuid() || uid == 0)
		return true;
	snprintf(why, whylen, "the socket at %s is served by uid %llu, not ours", e->url,
		 (unsigned long long)uid);
	return false;
}

/* A connection (dialled, or dialled in and adopted): the handshake starts,
 * the orchestrator speaking first. */
static void begin_handshake(struct env *e)
{
	struct hs_params p = {
		.role = HS_ORCHESTRATOR,
		.key = e->secret ? secret_key(e->secret) : NULL,
		.sp_ipc = linkurl_is_local_socket(e->url),
		.orchestrator_id = orch_id,
	};
	struct fbuf out = { 0 };
	char why[300];

	if (!peer_uid_ok(e, e->lk, why, sizeof(why))) {
		drop(e, why);
		return;
	}
	p.environment_id = e->id;
	p.clock_ms = loop_now_ms(e->loop);
	if (e->ls) {
		p.resume_session = e->ls->id;
		p.resume_ack = e->ls->rx_seq;
	}
	e->hs = hs_new(&p);
	hs_start(e->hs, &out);
	link_send_raw(e->lk, out.p, out.len);
	fbuf_free(&out);
	/* A session waiting to resume tries again soon: a handshake stuck on a
	 * connection made as a cut ended (seen: a SYN answered as the link
	 * came back, then nothing) is given up after the executor's own
	 * handshake deadline rather than after initialize_timeout_sec. */
	e->init_timer = loop_timer_add(e->loop, e->grace_timer ? MIN(e->init_timeout_ms,
								     RESUME_HS_TIMEOUT_MS)
							      : e->init_timeout_ms,
				       init_timeout_cb, e);
}

static void dial_cb(struct link_conn s, int err, const char *reason, void *arg)
{
	struct env *e = arg;
	char why[300];

	e->dialing = false;
	if (err && fdlimit_exhausted(err)) {
		char fds[256];

		snprintf(why, sizeof(why), "cannot dial: %s", fdlimit_why(err, fds, sizeof(fds)));
		e->last_fail = HS_FAIL_NONE;
		attempt_failed(e, why);
		log_warn("environment '%s': %s", e->id, why);
		if (e->state == ENV_CONNECTING) /* said now, not at the connect timeout */
			env_set_state(e, ENV_DISCONNECTED);
		schedule_redial(e);
		return;
	}
	if (err) {
		/* nng 1.5.2 says "connection refused" for a WebSocket upgrade
		 * answered other than 101, too */
		bool ws = !strncmp(e->url, "ws://", 5) || !strncmp(e->url, "wss://", 6);

		snprintf(why, sizeof(why), "unreachable: %s%s", reason,
			 ws && err == -ECONNREFUSED
				 ? ", or the WebSocket upgrade was (no listener at that path, or one "
				   "bound to another host name than the URL's)"
				 : "");
		e->last_fail = HS_FAIL_NONE;
		attempt_failed(e, why);
		log_debug("environment '%s': dial %s: %s", e->id, e->url, why);
		schedule_redial(e);
		return;
	}
	e->lk = link_new(e->loop, s, &env_link_ops, e);
	begin_handshake(e);
	if (e->lk)
		link_start(e->lk);
}

static void dial_now(struct env *e)
{
	if (e->dialing || e->lk || !e->dialer)
		return;
	e->dialing = true;
	e->dial_attempts++;
	link_dial(e->dialer, (unsigned)MIN(e->connect_timeout_ms, e->grace_timer
						? RESUME_DIAL_TIMEOUT_MS : DIAL_TIMEOUT_MS), dial_cb, e);
}

/* ---- env_priv.h ----------------------------------------------------------- */

int env_link_start(struct env *e, char *err, size_t errlen)
{
	struct link_tls tls = { e->tls_ca_file };
	int r;

	if (!e->tls_ca_file && linkurl_transport_encrypted(e->url)) {
		snprintf(err, errlen, "%s needs the executor's certificate (or its CA) in "
				      "executor-tls/%s.pem under the home directory", e->url, e->id);
		return -EINVAL;
	}
	r = link_dialer_new(e->loop, e->url, &tls, &e->dialer, err, errlen);
	if (r < 0)
		return r;
	arm_connect_timer(e);
	dial_now(e);
	return 0;
}

void env_link_stop(struct env *e)
{
	loop_timer_cancel(e->redial_timer);
	e->redial_timer = NULL;
	loop_timer_cancel(e->connect_timer);
	e->connect_timer = NULL;
	if (e->lk) /* what is queued (MCP_STOPs at shutdown) still goes out */
		conn_forget(e, e->state == ENV_READY);
	session_forget(e);
	e->dialer = link_dialer_free(e->dialer);
	e->dialing = false;
}

void env_link_redial(struct env *e, const char *why)
{
	/* The executor restarted: its session is gone with it. */
	if (e->ls && !e->lk)
		session_over(e, why);
	session_forget(e);
	if (e->lk)
		conn_lost(e, why, false);
	else if (e->state == ENV_READY)
		env_link_lost(e, why);
	loop_timer_cancel(e->redial_timer);
	e->redial_timer = NULL;
	e->redial_ms = 0;
	arm_connect_timer(e);
	schedule_redial(e);
}

int env_link_send(struct env *e, uint16_t type, uint8_t kind, uint32_t id, const void *body)
{
	int r;

	if (e->state != ENV_READY || !e->lk)
		return -ENOTCONN;
	r = link_send(e->lk, type, kind, id, body);
	if (r == -ENOBUFS)
		log_warn("environment '%s': the executor is not reading (send queue full)", e->id);
	return r;
}

int env_link_send_ticket(struct env *e, uint16_t type, uint8_t kind, uint32_t id,
			 const void *body, uint64_t *ticket)
{
	int r = env_link_send(e, type, kind, id, body);

	if (r == 0 && e->ls)
		*ticket = (uint64_t)e->ls_gen << TICKET_SEQ_BITS | e->ls->tx_seq;
	else if (r == 0)
		*ticket = 0;
	return r;
}

bool env_link_maybe_reached(const struct env *e, uint64_t ticket)
{
	uint64_t gen = ticket >> TICKET_SEQ_BITS, seq = ticket & ((1ull << TICKET_SEQ_BITS) - 1);

	if (!ticket)
		return true; /* no session: nobody knows */
	if (e->ls && gen == e->ls_gen)
		return seq <= e->ls->tx_acked;
	if (gen + 1 == e->ls_gen + (e->ls ? 0 : 1))
		return seq <= e->ls_prev_acked; /* the session just before */
	return true;
}

bool env_link_sealed(const struct env *e) { return e->lk && e->sealed; }

int env_adopt(struct env *e, struct link *lk, const char *listen_url)
{
	if (!e->dial_in)
		return -EINVAL;
	if (e->lk) {
		uint64_t idle = loop_now_ms(e->loop) - link_last_rx_ms(e->lk);

		/* A live link is kept: whoever knows the id (not the token) could
		 * otherwise knock the executor off. A silent one (the executor
		 * lost it and dials again) makes room. */
		if (e->state == ENV_READY && idle < e->keepalive_ms)
			return -EBUSY;
		conn_lost(e, e->state == ENV_READY ? "the executor dialled in again"
						   : "replaced by a newer connection", false);
		loop_timer_cancel(e->redial_timer);
		e->redial_timer = NULL;
	}
	e->dial_attempts++;
	if (!e->connect_timer && e->state != ENV_READY)
		arm_connect_timer(e);
	if (!e->url || strcmp(e->url, listen_url) != 0) {
		free(e->url);
		e->url = xstrdup(listen_url);
	}
	e->lk = lk;
	link_rebind(lk, &env_link_ops, e);
	begin_handshake(e);
	return 0;
}
