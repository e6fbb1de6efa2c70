/* dial.c - executors that dial out (`--connect URL`): the executor makes
 * the connection to an orchestrator's --executor-listen address, names its
 * environment (the dial-in preface, proto/handshake.h), and from then on it
 * is the same link as one the orchestrator dialled: the orchestrator opens
 * the handshake, both prove the secret, the link is sealed, and
 * listener.c runs the session. When the connection ends (or an attempt
 * fails) the executor dials again after a delay that doubles from
 * DIAL_MIN_MS to DIAL_FAST_MS, and after DIAL_FAST_FOR_MS without a session
 * grows by half up to DIAL_MAX_MS, +-25 % jitter, back to the minimum once
 * a session was authenticated: a fleet waiting for an orchestrator that is
 * being restarted is back within about 2 s of it, does not come back in
 * step, and one that waits for good costs a dial every half minute.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "executor.h"
#include "handshake.h"
#include "link.h"
#include "linkurl.h"
#include "log.h"
#include "loop.h"
#include "secret.h"
#include "util.h"

#define DIAL_MIN_MS 100u
#define DIAL_FAST_MS 2000u        /* the cap while the orchestrator has been gone a short while */
#define DIAL_FAST_FOR_MS 60000u   /* ... this long */
#define DIAL_MAX_MS 30000u        /* then the delay grows x1.5 up to this */
#define DIAL_TIMEOUT_MS 5000u

static void dial_now(struct executor *ex);

static uint64_t jitter(uint64_t ms)
{
	uint64_t span = ms / 2;

	return span ? ms - ms / 4 + randombytes_uniform((uint32_t)MIN(span, UINT32_MAX)) : ms;
}

static void timer_cb(struct loop_timer *t, void *arg)
{
	struct executor *ex = arg;

	ex->dial_timer = NULL;
	dial_now(ex);
}

static void schedule(struct executor *ex)
{
	uint64_t ms;

	if (ex->dial_timer || ex->dial_busy || !ex->dialer)
		return;
	if (!ex->dial_failing_since)
		ex->dial_failing_since = loop_now_ms(ex->loop);
	ms = jitter(ex->dial_backoff_ms ? ex->dial_backoff_ms : DIAL_MIN_MS);
	if (loop_now_ms(ex->loop) - ex->dial_failing_since < DIAL_FAST_FOR_MS)
		ex->dial_backoff_ms = MIN(MAX(ex->dial_backoff_ms * 2, DIAL_MIN_MS), DIAL_FAST_MS);
	else
		ex->dial_backoff_ms = MIN(ex->dial_backoff_ms + ex->dial_backoff_ms / 2, DIAL_MAX_MS);
	log_debug("dialling %s again in %llu ms", ex->opts.connect_url, (unsigned long long)ms);
	ex->dial_timer = loop_timer_add(ex->loop, ms, timer_cb, ex);
}

static void dial_cb(struct link_conn s, int err, const char *why, void *arg)
{
	struct executor *ex = arg;
	uint8_t pre[HS_DIALIN_MAX];
	size_t n;

	if (err) {
		struct linkurl u;

		ex->dial_busy = false;
		/* nng 1.5.2 reports an HTTP answer other than 101 to a WebSocket
		 * upgrade as "connection refused": say what else it may be. */
		if (err == -ECONNREFUSED &&
		    linkurl_parse(ex->opts.connect_url, &u, NULL, 0) == 0 &&
		    (u.scheme == LINKURL_WS || u.scheme == LINKURL_WSS))
			why = "connection refused, or the WebSocket upgrade was (no listener at "
			      "that path, or one bound to an address or name other than this "
			      "URL's host: it serves only requests whose Host names it)";
		log_info("cannot reach the orchestrator at %s: %s", ex->opts.connect_url, why);
		schedule(ex);
		return;
	}
	n = hs_dialin_preface(pre, ex->opts.environment);
	log_debug("connected to the orchestrator at %s", ex->opts.connect_url);
	/* dial_busy stays set until listener.c reports the connection gone */
	listener_adopt(ex, s, pre, n, linkurl_is_local_socket(ex->opts.connect_url),
		       ex->secret && linkurl_needs_seal(ex->opts.connect_url) && !ex->opts.insecure);
}

static void dial_now(struct executor *ex)
{
	if (ex->dial_busy || !ex->dialer)
		return;
	ex->dial_busy = true;
	ex->dial_attempts++;
	link_dial(ex->dialer, DIAL_TIMEOUT_MS, dial_cb, ex);
}

void dial_conn_closed(struct executor *ex, bool session, const char *why)
{
	ex->dial_busy = false;
	if (session) {
		ex->dial_backoff_ms = 0; /* it worked: the first try again is quick */
		ex->dial_failing_since = 0;
	}
	else
		log_warn("the orchestrator at %s closed the connection before a session: %s",
			 ex->opts.connect_url, why);
	schedule(ex);
}

int dial_start(struct executor *ex, char *err, size_t errlen)
{
	struct link_tls tls = { ex->opts.connect_ca };
	int r;

	if (!ex->secret) {
		snprintf(err, errlen, "--connect needs the environment's token "
				      "(--auth-token-file or $TANDEM_EXECUTOR_TOKEN): the "
				      "orchestrator knows a dialling executor only by it");
		return -EPERM;
	}
	if (!ex->opts.environment || !hs_dialin_preface((uint8_t[HS_DIALIN_MAX]){ 0 },
							 ex->opts.environment)) {
		snprintf(err, errlen, "--connect needs --environment ID (1-64 of [A-Za-z0-9_-]; "
				      "default: the token file's name)");
		return -EINVAL;
	}
	if (linkurl_transport_encrypted(ex->opts.connect_url) && !ex->opts.connect_ca) {
		snprintf(err, errlen, "%s needs the orchestrator's certificate (or its CA): "
				      "--connect-ca FILE", ex->opts.connect_url);
		return -EINVAL;
	}
	r = link_dialer_new(ex->loop, ex->opts.connect_url, &tls, &ex->dialer, err, errlen);
	if (r < 0)
		return r;
	log_info("executor '%s' dialling the orchestrator at %s as environment '%s'", ex->opts.id,
		 ex->opts.connect_url, ex->opts.environment);
	dial_now(ex);
	return 0;
}

void dial_stop(struct executor *ex)
{
	loop_timer_cancel(ex->dial_timer);
	ex->dial_timer = NULL;
	ex->dialer = link_dialer_free(ex->dialer);
}
