/* listener.c - the executor's end of the link: the listener, every
 * connection's handshake (this is the one place where the executor runs
 * it: proto/handshake.c decides, this file applies), the cap on pending
 * connections, per-source penalties, the one authenticated session, its
 * keepalives, and what happens when a second orchestrator proves the
 * secret.
 *
 * A connection's life (all on the loop thread):
 *   accepted   -> refused at once if its source is penalised, or if it is
 *                 an ipc peer of another uid; past --max-pending a random
 *                 connection still in the handshake is dropped for it
 *   handshake  -> must prove the secret within --handshake-timeout; a wrong
 *                 proof penalises the source; nothing but handshake frames
 *                 is ever written to it
 *   proved     -> no session: it becomes the session. A session exists: the
 *                 session is probed (PING, EXEC_PROBE_MS); if it answers,
 *                 the newcomer is refused "busy", else the old session is
 *                 closed (logged why) and the newcomer takes over
 *   session    -> frames checked against the message table, then handled;
 *                 PING after --keepalive of silence, closed after
 *                 --keepalive-timeout of silence
 * Frames for a session go to its own link and die with it: whoever
 * connects next receives none of them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "executor.h"
#include "handshake.h"
#include "link.h"
#include "linkurl.h"
#include "log.h"
#include "loop.h"
#include "lsess.h"
#include "metrics_tandem.h"
#include "penalty.h"
#include "secret.h"
#include "util.h"

#define FLUSH_MS 1000u        /* an error reply gets this long to leave */
#define PRELOG_PER_SEC 20u    /* handshake log lines per second, then a count */

enum conn_state { C_HANDSHAKE, C_PROVED, C_SESSION };

struct conn {
	struct conn *next;
	struct executor *ex;
	struct link *lk;
	struct hs *hs;
	enum conn_state st;
	struct loop_timer *deadline;
	struct penalty_key key;
	char src[80]; /* for logs */
	uint32_t serial;
	bool dialled; /* we made it (dial.c): it tells dial.c when it ends */
	uint64_t accepted_ms; /* before our CHALLENGE left: bounds the peer's clock */
};

static const struct link_ops conn_ops;

/* ---- logging a flood without drowning in it ------------------------------- */

static uint64_t prelog_sec;
static unsigned prelog_n, prelog_dropped;

static void prelog(struct executor *ex, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void prelog(struct executor *ex, const char *fmt, ...)
{
	uint64_t sec = loop_now_ms(ex->loop) / 1000;
	char line[400];
	va_list ap;

	if (sec != prelog_sec) {
		if (prelog_dropped)
			log_warn("%u more handshake failures in the last second (not logged)",
				 prelog_dropped);
		prelog_sec = sec;
		prelog_n = prelog_dropped = 0;
	}
	if (prelog_n++ >= PRELOG_PER_SEC) {
		prelog_dropped++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_warn("%s", line);
}

/* ---- connections ---------------------------------------------------------- */

static void describe(struct conn *c)
{
	nng_sockaddr sa;
	char a[INET6_ADDRSTRLEN];

	snprintf(c->src, sizeof(c->src), "a local peer");
	if (link_peer_addr(c->lk, &sa) < 0)
		return;
	if (sa.s_family == NNG_AF_INET) {
		inet_ntop(AF_INET, &sa.s_in.sa_addr, a, sizeof(a));
		snprintf(c->src, sizeof(c->src), "%s:%u", a, ntohs(sa.s_in.sa_port));
		c->key = penalty_key_ipv4((const uint8_t *)&sa.s_in.sa_addr);
	} else if (sa.s_family == NNG_AF_INET6) {
		inet_ntop(AF_INET6, sa.s_in6.sa_addr, a, sizeof(a));
		snprintf(c->src, sizeof(c->src), "[%s]:%u", a, ntohs(sa.s_in6.sa_port));
		c->key = penalty_key_ipv6(sa.s_in6.sa_addr);
	}
}

static void conn_unlist(struct executor *ex, struct conn *c)
{
	for (struct conn **pp = &ex->conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	if (c->st == C_HANDSHAKE)
		ex->n_pending--;
}

/* Forgets c; its link is freed, or flushed first (an error reply for the
 * peer is queued) and then freed by the link itself. */
static void conn_close(struct conn *c, bool flush)
{
	struct executor *ex = c->ex;
	bool dialled = c->dialled, session = c->st == C_SESSION;

	conn_unlist(ex, c);
	if (ex->contender == c)
		ex->contender = NULL;
	loop_timer_cancel(c->deadline);
	if (flush)
		link_close_flush(c->lk, FLUSH_MS);
	else
		link_free(c->lk);
	hs_free(c->hs);
	free(c);
	if (dialled)
		dial_conn_closed(ex, session, "the connection ended");
}

static void deadline_cb(struct loop_timer *t, void *arg)
{
	struct conn *c = arg;

	c->deadline = NULL;
	prelog(c->ex, "closing connection from %s: did not prove the secret within %u ms",
	       c->src, c->ex->opts.handshake_ms);
	metrics_handshake_refused("timeout");
	c->ex->peers_dropped++;
	conn_close(c, false);
}

/* The cap on connections in the handshake is full: one of them, chosen at
 * random, makes room, so that a flood cannot keep a newcomer out for good
 * (the idea of OpenSSH's MaxStartups). */
static void drop_random_pending(struct executor *ex)
{
	uint32_t pick = randombytes_uniform(ex->n_pending), i = 0;

	for (struct conn *c = ex->conns; c; c = c->next) {
		if (c->st != C_HANDSHAKE)
			continue;
		if (i++ == pick) {
			prelog(ex, "%u connections in the handshake: dropping a random one (from %s)",
			       ex->n_pending, c->src);
			ex->peers_dropped++;
			conn_close(c, false);
			return;
		}
	}
}

static bool peer_uid_ok(struct executor *ex, struct conn *c)
{
	uint64_t uid;

	if (!ex->local_socket || link_peer_uid(c->lk, &uid) < 0)
		return true;
	if (uid == (uint64_t)getuid() || uid == 0)
		return true;
	prelog(ex, "refusing a local connection from uid %llu: only uid %u may connect",
	       (unsigned long long)uid, (unsigned)getuid());
	return false;
}

static void accept_cb(struct link_conn s, void *arg)
{
	struct executor *ex = arg;
	struct conn *c = xcalloc(1, sizeof(*c));
	struct hs_params p = {
		.role = HS_EXECUTOR,
		.key = ex->secret ? secret_key(ex->secret) : NULL,
		.sp_ipc = ex->local_socket,
		.seal = ex->seal,
	};
	uint64_t wait;

	c->ex = ex;
	c->accepted_ms = loop_now_ms(ex->loop);
	c->lk = link_new(ex->loop, s, &conn_ops, c);
	describe(c);
	wait = penalty_remaining(ex->penalties, &c->key, loop_now_ms(ex->loop));
	if (wait || !peer_uid_ok(ex, c)) {
		if (wait)
			prelog(ex, "refusing connection from %s: penalised for %llu ms more after "
				   "failed proofs", c->src, (unsigned long long)wait);
		link_free(c->lk);
		free(c);
		return;
	}
	if (ex->n_pending >= ex->opts.max_pending)
		drop_random_pending(ex);
	c->hs = hs_new(&p);
	c->next = ex->conns;
	ex->conns = c;
	ex->n_pending++;
	c->deadline = loop_timer_add(ex->loop, ex->opts.handshake_ms, deadline_cb, c);
	log_debug("connection from %s", c->src);
	link_start(c->lk);
}

void listener_adopt(struct executor *ex, struct link_conn s, const uint8_t *preface, size_t len,
		    bool sp_ipc, bool seal)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	struct hs_params p = {
		.role = HS_EXECUTOR,
		.key = ex->secret ? secret_key(ex->secret) : NULL,
		.sp_ipc = sp_ipc,
		.seal = seal,
	};

	c->ex = ex;
	c->dialled = true;
	c->accepted_ms = loop_now_ms(ex->loop);
	c->lk = link_new(ex->loop, s, &conn_ops, c);
	snprintf(c->src, sizeof(c->src), "%.70s", ex->opts.connect_url);
	c->hs = hs_new(&p);
	c->next = ex->conns;
	ex->conns = c;
	ex->n_pending++;
	c->deadline = loop_timer_add(ex->loop, ex->opts.handshake_ms, deadline_cb, c);
	/* The preface first: the orchestrator opens the handshake once it
	 * knows which environment (and so which secret) we are. */
	link_send_raw(c->lk, preface, len);
	link_start(c->lk);
}

/* ---- the session ---------------------------------------------------------- */

static void keepalive_cb(struct loop_timer *t, void *arg);
static void session_begin(struct conn *c);

static void session_hex(const struct executor *ex, char out[33])
{
	out[0] = '\0';
	if (ex->ls)
		sodium_bin2hex(out, 33, ex->ls->id, sizeof(ex->ls->id));
}

/* Output the orchestrator never acknowledged goes back to its (now
 * detached) process, held for whoever re-attaches it. */
static void hold_unacked_output(struct executor *ex)
{
	char err[128];

	for (const struct lsess_entry *e = ex->ls->head; e; e = e->next) {
		struct proto_msg m;

		if (proto_decode(e->data, e->len, &m, err, sizeof(err)) < 0)
			continue;
		if (m.env.type == PROTO_MCP_OUTPUT)
			procs_hold(ex, m.u.mcp_output.handle, m.u.mcp_output.data.ptr,
				   m.u.mcp_output.data.len);
		proto_msg_release(&m);
	}
}

/* The session is over for good (it cannot resume): its processes are
 * detached (kept for --grace-sec for a re-attach), its HTTP requests end. */
static void session_expire(struct executor *ex, const char *why)
{
	char hex[33];

	if (!ex->ls)
		return;
	session_hex(ex, hex);
	log_warn("session %s is over: %s", hex, why);
	loop_timer_cancel(ex->grace_timer);
	ex->grace_timer = NULL;
	ex->peer = 0;
	procs_detach_all(ex);
	hold_unacked_output(ex);
	ex->ls = lsess_free(ex->ls);
	httprelay_abort_all(ex);
}

static void grace_cb(struct loop_timer *t, void *arg)
{
	struct executor *ex = arg;
	char why[160];

	ex->grace_timer = NULL;
	snprintf(why, sizeof(why), "the orchestrator did not resume it within %u s (--grace-sec)",
		 ex->opts.grace_sec);
	session_expire(ex, why);
}

/* The session's connection is gone; the session waits for a new one. */
static void session_lost(struct executor *ex)
{
	loop_timer_cancel(ex->keepalive_timer);
	ex->keepalive_timer = NULL;
	loop_timer_cancel(ex->probe_timer);
	ex->probe_timer = NULL;
	ex->session = NULL;
	if (!ex->ls)
		return;
	if (!ex->opts.grace_sec) {
		session_expire(ex, "sessions do not resume (--grace-sec 0)");
		return;
	}
	ex->suspended_ms = loop_now_ms(ex->loop);
	loop_timer_cancel(ex->grace_timer);
	ex->grace_timer = loop_timer_add(ex->loop, ex->opts.grace_sec * 1000ull, grace_cb, ex);
}

/* Ends the session's connection: what is queued for it still goes (flush)
 * or not. resumable: the session may resume on another connection (a
 * link that died); else it is over (the peer broke the protocol, or
 * stopped reading). */
static void session_end(struct executor *ex, const char *why, bool flush, bool resumable)
{
	struct conn *c = ex->session, *next = ex->contender;

	if (!c)
		return;
	log_warn("closing the connection of orchestrator '%s' (%s): %s%s",
		 hs_result(c->hs)->orchestrator_id, c->src, why,
		 resumable && ex->opts.grace_sec ? "; its session may resume" : "");
	session_lost(ex);
	if (!resumable)
		session_expire(ex, why);
	conn_close(c, flush);
	/* A newcomer waited for the probe: the slot is free now. */
	if (next) {
		ex->contender = NULL;
		session_begin(next);
	}
}

void listener_drop_peer(struct executor *ex, const char *why)
{
	ex->peers_dropped++;
	session_end(ex, why, true, false);
}

uint64_t listener_peer_clock_ms(const struct executor *ex)
{
	return (uint64_t)((int64_t)loop_now_ms(ex->loop) - ex->clock_offset_ms);
}

/* A session exists (its connection may be away, resuming). */
bool listener_authed(const struct executor *ex) { return ex->ls != NULL; }

/* Does the newcomer resume our session? If it asked and cannot, why. */
static bool decide_resume(struct executor *ex, const struct hs_result *res, char *why,
			  size_t whylen)
{
	char hex[33];

	if (!res->resume)
		return false;
	sodium_bin2hex(hex, sizeof(hex), res->session, sizeof(res->session));
	if (!ex->ls) {
		snprintf(why, whylen, "session %s is unknown to this executor (it expired or the "
				      "executor restarted)", hex);
		return false;
	}
	if (sodium_memcmp(ex->ls->id, res->session, sizeof(res->session)) != 0) {
		snprintf(why, whylen, "session %s is not this executor's current session", hex);
		return false;
	}
	return lsess_can_resume(ex->ls, res->resume_ack, why, whylen) == 0;
}

static void session_begin(struct conn *c)
{
	struct executor *ex = c->ex;
	struct proto_hello_reply info = { 0 };
	struct proto_str caps[4];
	_cleanup_free_ uint64_t *handles = NULL;
	_cleanup_free_ uint8_t *ids = NULL;
	struct fbuf out = { 0 };
	const struct hs_result *res;
	bool resumed;
	char refused[200] = "", hex[33];
	uint8_t fresh[PROTO_SESSION_ID_LEN];

	if (c->dialled && strcmp(hs_result(c->hs)->environment_id, ex->opts.environment) != 0) {
		prelog(ex, "closing the connection to %s: the orchestrator took us for environment "
			   "'%s', not '%s'", c->src, hs_result(c->hs)->environment_id,
		       ex->opts.environment);
		conn_close(c, false);
		return;
	}
	resumed = decide_resume(ex, hs_result(c->hs), refused, sizeof(refused));
	/* A fresh session replaces the old one: its processes are detached
	 * first, so that the HELLO reply lists them (live_handles). */
	if (!resumed && ex->ls)
		session_expire(ex, refused[0] ? refused : "a new session replaces it");
	exec_hello_info(ex, &info, caps, &handles, &ids);
	if (resumed) {
		info.session.ptr = (const char *)ex->ls->id;
		info.resumed = true;
		info.resume_ack = ex->ls->rx_seq;
		PROTO_MARK(&info, hello_reply, resumed);
		PROTO_MARK(&info, hello_reply, resume_ack);
	} else {
		randombytes_buf(fresh, sizeof(fresh));
		info.session.ptr = (const char *)fresh;
	}
	info.session.len = PROTO_SESSION_ID_LEN;
	PROTO_MARK(&info, hello_reply, session);
	if (refused[0]) {
		info.resume_refused = proto_str_c(refused);
		PROTO_MARK(&info, hello_reply, resume_refused);
	}
	hs_accept(c->hs, &info, &out);
	if (hs_state(c->hs) != HS_DONE) {
		prelog(ex, "closing connection from %s: %s", c->src, hs_error(c->hs));
		fbuf_free(&out);
		conn_close(c, false);
		return;
	}
	res = hs_result(c->hs);
	/* The replies go plain; everything after them is sealed both ways. */
	link_send_raw(c->lk, out.p, out.len);
	fbuf_free(&out);
	link_set_framed(c->lk, PROTO_MAX_FRAME);
	if (res->sealed && link_set_seal(c->lk, res) < 0) {
		log_warn("closing connection from %s: cannot set up the link's sealing (out of "
			 "memory)", c->src);
		conn_close(c, false);
		return;
	}
	loop_timer_cancel(c->deadline);
	c->deadline = NULL;
	c->st = C_SESSION;
	/* Its clock read before our CHALLENGE left: the offset errs towards
	 * deadlines that pass early, never late. */
	ex->clock_offset_ms = (int64_t)c->accepted_ms - (int64_t)res->clock_ms;
	if (resumed) {
		size_t replay;

		loop_timer_cancel(ex->grace_timer);
		ex->grace_timer = NULL;
		lsess_ack(ex->ls, res->resume_ack);
		replay = ex->ls->n;
		c->serial = ex->peer;
		ex->resumes++;
		metrics_link_reconnect();
		session_hex(ex, hex);
		log_info("session %s resumed by orchestrator '%s' from %s after %llu ms (%zu frames "
			 "sent again)", hex, res->orchestrator_id, c->src,
			 (unsigned long long)(loop_now_ms(ex->loop) - ex->suspended_ms), replay);
	} else {
		ex->ls = lsess_new(fresh, 0, 0);
		c->serial = ++ex->next_serial ? ex->next_serial : ++ex->next_serial;
		ex->peer = c->serial;
	}
	ex->session = c;
	if (link_set_session(c->lk, ex->ls) < 0) {
		session_end(ex, "cannot queue the frames to send again", false, false);
		return;
	}
	ex->keepalive_timer = loop_timer_add(ex->loop, ex->opts.keepalive_ms, keepalive_cb, ex);
	log_info("peer authenticated: orchestrator '%s', environment '%s', from %s (%s)",
		 res->orchestrator_id, res->environment_id, c->src,
		 res->sealed ? "sealed" : "not sealed");
}

static void send_ping(struct executor *ex)
{
	struct proto_ping_body p = { .stamp = loop_now_ms(ex->loop) };

	PROTO_MARK(&p, ping_body, stamp);
	listener_send(ex, PROTO_PING, PROTO_REQUEST, ++ex->next_ping_id, &p);
}

static void keepalive_cb(struct loop_timer *t, void *arg)
{
	struct executor *ex = arg;
	uint64_t idle = loop_now_ms(ex->loop) - link_last_rx_ms(ex->session->lk);
	char why[160];

	if (idle >= ex->opts.dead_ms) {
		ex->keepalive_timer = NULL;
		snprintf(why, sizeof(why), "nothing received for %llu ms (keepalive timeout %u ms)",
			 (unsigned long long)idle, ex->opts.dead_ms);
		ex->peers_dropped++;
		session_end(ex, why, false, true);
		return;
	}
	if (idle >= ex->opts.keepalive_ms)
		send_ping(ex);
	loop_timer_rearm(t, ex->opts.keepalive_ms);
}

/* ---- a second orchestrator ------------------------------------------------ */

static void refuse_busy(struct conn *c)
{
	struct fbuf out = { 0 };

	prelog(c->ex, "refusing orchestrator '%s' from %s: busy (orchestrator '%s' is attached "
		      "and answers)", hs_result(c->hs)->orchestrator_id, c->src,
	       hs_result(c->ex->session->hs)->orchestrator_id);
	hs_refuse(c->hs, PROTO_E_BUSY,
		  "another orchestrator is attached to this executor and answers its keepalives",
		  &out);
	link_send_raw(c->lk, out.p, out.len);
	fbuf_free(&out);
	conn_close(c, true);
}

static void probe_cb(struct loop_timer *t, void *arg)
{
	struct executor *ex = arg;
	struct conn *next = ex->contender;
	char why[200];

	ex->probe_timer = NULL;
	if (!next || !ex->session)
		return;
	snprintf(why, sizeof(why), "another orchestrator proved the secret and this one did not "
				   "answer a probe within %u ms", EXEC_PROBE_MS);
	session_end(ex, why, false, true); /* begins the contender's session */
}

/* A proved newcomer while a session exists: is the session alive? */
static void start_probe(struct conn *c)
{
	struct executor *ex = c->ex;

	if (ex->contender) { /* one contender at a time */
		refuse_busy(c);
		return;
	}
	ex->contender = c;
	loop_timer_cancel(c->deadline);
	c->deadline = NULL;
	send_ping(ex);
	ex->probe_ping_id = ex->next_ping_id;
	ex->probe_timer = loop_timer_add(ex->loop, EXEC_PROBE_MS, probe_cb, ex);
	log_info("orchestrator '%s' from %s proved the secret while '%s' is attached: probing it",
		 hs_result(c->hs)->orchestrator_id, c->src,
		 hs_result(ex->session->hs)->orchestrator_id);
}

/* The newcomer proved the secret and names our session: the orchestrator
 * that holds it lost its connection (a reset, a NAT that forgot the flow)
 * before we noticed. No probe: the old connection goes, the session moves. */
static bool resumes_ours(struct executor *ex, const struct hs_result *res)
{
	return res->resume && ex->ls &&
	       sodium_memcmp(ex->ls->id, res->session, sizeof(res->session)) == 0;
}

static void take_over(struct conn *c)
{
	struct executor *ex = c->ex;
	struct conn *old = ex->session;

	log_info("orchestrator '%s' from %s resumes the session of the connection from %s: "
		 "closing that one", hs_result(c->hs)->orchestrator_id, c->src, old->src);
	if (ex->contender) { /* a probe in progress is moot */
		struct conn *w = ex->contender;

		ex->contender = NULL;
		refuse_busy(w);
	}
	session_lost(ex);
	conn_close(old, false);
	session_begin(c);
}

/* ---- link callbacks ------------------------------------------------------- */

static void handshake_failed(struct conn *c)
{
	struct executor *ex = c->ex;
	uint64_t pen = 0;

	metrics_handshake_refused(hs_fail_label(hs_fail_kind(c->hs)));
	if (hs_fail_kind(c->hs) == HS_FAIL_PROOF)
		pen = penalty_add(ex->penalties, &c->key, loop_now_ms(ex->loop));
	if (pen)
		prelog(ex, "closing connection from %s: %s (source penalised for %llu ms)", c->src,
		       hs_error(c->hs), (unsigned long long)pen);
	else
		prelog(ex, "closing connection from %s: %s", c->src, hs_error(c->hs));
	ex->peers_dropped++;
	conn_close(c, true);
}

static size_t conn_raw_cb(struct link *lk, const uint8_t *data, size_t len, void *arg)
{
	struct conn *c = arg;
	struct fbuf out = { 0 };
	size_t used;

	if (c->st != C_HANDSHAKE)
		return 0; /* proved: nothing more until the decision (the peer waits) */
	used = hs_input(c->hs, data, len, &out);
	if (out.len)
		link_send_raw(lk, out.p, out.len);
	fbuf_free(&out);
	switch (hs_state(c->hs)) {
	case HS_FAILED: handshake_failed(c); return 0;
	case HS_PROVED:
		c->st = C_PROVED;
		c->ex->n_pending--;
		if (c->ex->session && resumes_ours(c->ex, hs_result(c->hs)))
			take_over(c);
		else if (c->ex->session)
			start_probe(c);
		else
			session_begin(c);
		break;
	default: break;
	}
	return used;
}

static bool allowed(const struct proto_msg *m)
{
	if (m->def->state != PROTO_AUTHED)
		return false;
	if (m->env.kind == PROTO_REPLY) /* to a request the executor sent */
		return (m->def->dir & PROTO_E2O) && m->def->kind == PROTO_REQUEST;
	return (m->def->dir & PROTO_O2E) != 0;
}

static void conn_frame_cb(struct link *lk, const uint8_t *data, size_t len, void *arg)
{
	struct conn *c = arg;
	struct executor *ex = c->ex;
	struct proto_msg m;
	char err[256], why[320];

	if (proto_decode(data, len, &m, err, sizeof(err)) < 0) {
		snprintf(why, sizeof(why), "malformed frame: %s", err);
		listener_drop_peer(ex, why);
		return;
	}
	if (!allowed(&m)) {
		snprintf(why, sizeof(why), "%s %s is not accepted by an executor%s", m.def->name,
			 m.env.kind == PROTO_REPLY ? "reply" : "message",
			 m.def->state == PROTO_PREAUTH ? " after authentication" : "");
		listener_drop_peer(ex, why);
	} else if (m.env.kind == PROTO_REPLY) {
		/* A PING reply; the one to the probe settles a contender's fate. */
		if (ex->contender && ex->probe_timer && m.env.id == ex->probe_ping_id) {
			struct conn *next = ex->contender;

			loop_timer_cancel(ex->probe_timer);
			ex->probe_timer = NULL;
			ex->contender = NULL;
			refuse_busy(next);
		}
	} else {
		exec_dispatch(ex, &m);
	}
	proto_msg_release(&m);
}

static void conn_closed_cb(struct link *lk, const char *why, void *arg)
{
	struct conn *c = arg;
	struct executor *ex = c->ex;

	switch (c->st) {
	case C_SESSION:
		session_end(ex, why, false, true);
		break;
	case C_PROVED:
		log_info("orchestrator '%s' (%s) went away while waiting: %s",
			 hs_result(c->hs)->orchestrator_id, c->src, why);
		conn_close(c, false);
		break;
	default:
		prelog(ex, "connection from %s closed in the handshake: %s", c->src, why);
		conn_close(c, false);
		break;
	}
}

static const struct link_ops conn_ops = {
	.raw_cb = conn_raw_cb,
	.frame_cb = conn_frame_cb,
	.closed_cb = conn_closed_cb,
};

/* ---- sending -------------------------------------------------------------- */

int listener_send(struct executor *ex, uint16_t type, uint8_t kind, uint32_t id, const void *body)
{
	const struct proto_msgdef *d = proto_msgdef(type);
	int r;

	if (!d || d->state != PROTO_AUTHED)
		return -EPERM;
	if (!ex->session && ex->ls) /* kept for the connection that resumes it */
		return link_session_queue(ex->ls, type, kind, id, body, 0, NULL);
	if (!ex->session)
		return -ENOTCONN;
	r = link_send(ex->session->lk, type, kind, id, body);
	if (r == -ENOBUFS)
		listener_drop_peer(ex, "peer is not reading: send queue over its bound");
	return r;
}

int listener_send_error(struct executor *ex, uint16_t type, uint32_t id, int32_t status,
			const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!ex->session && !ex->ls)
		return -ENOTCONN;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!ex->session)
		return link_session_queue(ex->ls, type, PROTO_REPLY, id, NULL, status, msg);
	return link_send_error(ex->session->lk, type, id, status, msg);
}

/* ---- start and stop ------------------------------------------------------- */

int listener_start(struct executor *ex, char *err, size_t errlen)
{
	const char *url = ex->opts.listen_url;
	struct link_tls tls = { ex->opts.tls_cert_key_file };
	const char *zero;
	int r, port;

	if (!ex->secret && !linkurl_is_local(url) && !ex->opts.insecure) {
		snprintf(err, errlen,
			 "refusing to listen on %s without authentication: configure "
			 "--auth-token-file (or $TANDEM_EXECUTOR_TOKEN), or pass --insecure",
			 url);
		return -EPERM;
	}
	ex->local_socket = linkurl_is_local_socket(url);
	ex->seal = ex->secret && linkurl_needs_seal(url) && !ex->opts.insecure;
	ex->penalties = penalty_new();
	r = link_listener_new(ex->loop, url, &tls, accept_cb, ex, &ex->listener, err, errlen);
	if (r < 0)
		return r;
	if (!ex->secret)
		log_warn("no authentication configured: any local process can drive this executor");
	if (ex->secret && linkurl_needs_seal(url) && ex->opts.insecure)
		log_warn("--insecure: frames on %s are NOT encrypted; anyone on the path can read "
			 "tool arguments and results", url);
	/* Port 0 picks one: say which (tests and scripts read it). */
	port = link_listener_port(ex->listener);
	zero = strstr(url, "]:0") ? strstr(url, "]:0") + 1 : strrchr(url, ':');
	if (port && zero && zero[1] == '0' && (zero[2] == '\0' || zero[2] == '/'))
		log_info("executor '%s' listening on %.*s:%d%s", ex->opts.id, (int)(zero - url), url,
			 port, zero + 2);
	else
		log_info("executor '%s' listening on %s", ex->opts.id, url);
	return 0;
}

void listener_stop(struct executor *ex)
{
	loop_timer_cancel(ex->keepalive_timer);
	ex->keepalive_timer = NULL;
	loop_timer_cancel(ex->probe_timer);
	ex->probe_timer = NULL;
	ex->listener = link_listener_free(ex->listener);
	loop_timer_cancel(ex->grace_timer);
	ex->grace_timer = NULL;
	while (ex->conns)
		conn_close(ex->conns, false);
	ex->session = ex->contender = NULL;
	ex->ls = lsess_free(ex->ls);
	link_flush_all();
	ex->penalties = penalty_free(ex->penalties);
}
