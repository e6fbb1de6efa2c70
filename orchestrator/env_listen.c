/* env_listen.c - see env_listen.h. */
#include "env_listen.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "env.h"
#include "handshake.h"
#include "link.h"
#include "log.h"
#include "loop.h"
#include "util.h"

struct dconn {
	struct dconn *next;
	struct link *lk;
	struct loop_timer *deadline;
};

static struct {
	struct loop *loop;
	char *url;
	struct link_listener *ln;
	env_listen_lookup_fn lookup;
	struct dconn *pending; /* newest first */
	unsigned n_pending;
	uint64_t refused;
} L;

static void dconn_forget(struct dconn *c, bool free_link)
{
	for (struct dconn **pp = &L.pending; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	L.n_pending--;
	loop_timer_cancel(c->deadline);
	if (free_link)
		link_free(c->lk);
	free(c);
}

#define REFUSE_LOG_PER_SEC 10u /* then a count: a flood must not flood the log */

static void refuse(struct dconn *c, const char *why)
{
	static uint64_t sec;
	static unsigned n, dropped;
	uint64_t now = loop_now_ms(L.loop) / 1000;

	L.refused++;
	if (now != sec) {
		if (dropped)
			log_info("executor listener: %u more connections closed in the last second",
				 dropped);
		sec = now;
		n = dropped = 0;
	}
	if (n++ < REFUSE_LOG_PER_SEC)
		log_info("executor listener: closing a connection: %s", why);
	else
		dropped++;
	dconn_forget(c, true);
}

static void deadline_cb(struct loop_timer *t, void *arg)
{
	struct dconn *c = arg;

	c->deadline = NULL;
	refuse(c, "it did not name its environment in time");
}

static size_t raw_cb(struct link *lk, const uint8_t *data, size_t len, void *arg)
{
	struct dconn *c = arg;
	char id[HS_ID_MAX + 1], why[300];
	size_t used = 0;
	struct env *e;
	int r = hs_dialin_parse(data, len, id, &used);

	if (r == -EAGAIN)
		return 0;
	if (r == -EPROTO) {
		refuse(c, "its dial-in preface has another protocol version");
		return 0;
	}
	if (r < 0) {
		refuse(c, "it is not an executor dialling in (no dial-in preface)");
		return 0;
	}
	e = L.lookup(id, why, sizeof(why));
	if (!e) {
		refuse(c, why);
		return 0;
	}
	if (env_adopt(e, lk, L.url) < 0) {
		snprintf(why, sizeof(why), "environment '%s' has a live link (an executor that "
					   "dials in again must wait for it to go quiet)", id);
		refuse(c, why);
		return 0;
	}
	dconn_forget(c, false); /* the environment has it now */
	return used;
}

static void closed_cb(struct link *lk, const char *why, void *arg)
{
	struct dconn *c = arg;

	log_debug("executor listener: a connection closed before naming itself: %s", why);
	dconn_forget(c, true);
}

static const struct link_ops dconn_ops = {
	.raw_cb = raw_cb,
	.closed_cb = closed_cb,
};

static void accept_cb(struct link_conn s, void *arg)
{
	struct dconn *c = xcalloc(1, sizeof(*c)), *old;

	if (L.n_pending >= ENV_LISTEN_MAX_PENDING) {
		for (old = L.pending; old->next; old = old->next)
			;
		refuse(old, "too many connections naming themselves at once (the oldest goes)");
	}
	c->lk = link_new(L.loop, s, &dconn_ops, c);
	c->deadline = loop_timer_add(L.loop, ENV_LISTEN_PREFACE_MS, deadline_cb, c);
	c->next = L.pending;
	L.pending = c;
	L.n_pending++;
	link_start(c->lk);
}

int env_listen_start(struct loop *l, const char *url, const char *tls_file,
		     env_listen_lookup_fn lookup, char *err, size_t errlen)
{
	struct link_tls tls = { tls_file };
	int r;

	L.loop = l;
	L.lookup = lookup;
	r = link_listener_new(l, url, &tls, accept_cb, NULL, &L.ln, err, errlen);
	if (r < 0)
		return r;
	L.url = xstrdup(url);
	if (link_listener_port(L.ln))
		log_info("listening for executors on %s (port %d)", url, link_listener_port(L.ln));
	else
		log_info("listening for executors on %s", url);
	return 0;
}

int env_listen_port(void) { return L.ln ? link_listener_port(L.ln) : 0; }

void env_listen_stop(void)
{
	L.ln = link_listener_free(L.ln);
	while (L.pending)
		dconn_forget(L.pending, true);
	free(L.url);
	L.url = NULL;
}
