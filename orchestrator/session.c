/* session.c - see session.h. */
#include "session.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "client.h"
#include "log.h"
#include "loop.h"
#include "metrics_tandem.h"
#include "notify.h"
#include "rpc.h"
#include "thread.h"
#include "util.h"

struct session {
	struct session *next;
	struct client *client;
	uint64_t id;
	bool initialized;
	struct req *reqs; /* requests still waiting for something */
};

struct req {
	struct req *next_in_sess;
	struct session *sess; /* NULL once the client is gone */
	uint64_t owner;
	json_t *id;
	const char *method; /* static (the dispatch table's), for the metrics */
	void (*cancel)(void *arg);
	void *cancel_arg;
	bool *ended; /* req_watch_end */
	bool kept;
};

static struct {
	struct loop *loop;
	bool stdio;
	struct session *list;
} st;

uint64_t session_id(const struct session *s) { return s->id; }
bool session_initialized(const struct session *s) { return s->initialized; }
void session_set_initialized(struct session *s) { s->initialized = true; }

/* ---- requests ---------------------------------------------------------- */

struct req *req_new(struct session *s, json_t *id, const char *method)
{
	struct req *r = xcalloc(1, sizeof(*r));

	r->method = method;
	r->sess = s;
	r->owner = s->id;
	r->id = id ? json_incref(id) : NULL;
	r->next_in_sess = s->reqs;
	s->reqs = r;
	return r;
}

uint64_t req_owner(const struct req *r) { return r->owner; }
struct session *req_session(const struct req *r) { return r->sess; }

void req_on_cancel(struct req *r, void (*fn)(void *arg), void *arg)
{
	r->cancel = fn;
	r->cancel_arg = arg;
}

void req_keep(struct req *r) { r->kept = true; }
bool req_kept(const struct req *r) { return r->kept || r->cancel; }
void req_watch_end(struct req *r, bool *ended) { r->ended = ended; }

static void req_free(struct req *r)
{
	if (r->ended)
		*r->ended = true;
	if (r->sess) {
		for (struct req **pp = &r->sess->reqs; *pp; pp = &(*pp)->next_in_sess) {
			if (*pp == r) {
				*pp = r->next_in_sess;
				break;
			}
		}
	}
	json_decref(r->id);
	free(r);
}

/* Counts r's answer; whether there is a client to send it to. */
static bool answer_wanted(struct req *r)
{
	if (r->id)
		metrics_client_request(r->method, 0);
	return r->sess && r->id;
}

/* An answer too large for the client's output bound still ends the
 * request: with an error saying so, never with silence. */
static void reply_sent(struct req *r, int rc)
{
	if (rc == -EMSGSIZE)
		client_error(r->sess->client, r->id, CLIENT_INTERNAL_ERROR,
			     "the answer to %s is larger than this connection's output limit",
			     r->method);
}

void req_reply(struct req *r, json_t *result)
{
	if (answer_wanted(r))
		reply_sent(r, client_reply(r->sess->client, r->id, result));
	else
		json_decref(result);
	req_free(r);
}

void req_reply_text(struct req *r, const char *text, size_t len)
{
	if (answer_wanted(r))
		reply_sent(r, client_reply_text(r->sess->client, r->id, text, len));
	req_free(r);
}

void req_error(struct req *r, int code, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (r->id)
		metrics_client_request(r->method, code);
	if (r->sess) /* a notification's error goes out with id null */
		client_error(r->sess->client, r->id, code, "%s", msg);
	req_free(r);
}

void req_drop(struct req *r) { req_free(r); }

/* ---- sessions ---------------------------------------------------------- */

static void request_cb(struct client *c, const char *method, json_t *id, json_t *params,
		       void *arg)
{
	struct session *s = client_get_data(c);

	(void)arg;
	if (!s) {
		s = xcalloc(1, sizeof(*s));
		s->client = c;
		s->id = client_id(c);
		s->next = st.list;
		st.list = s;
		client_set_data(c, s);
	}
	rpc_dispatch(s, method, id, params);
}

/* The client is gone: stop what its requests wait on. Each hook ends its
 * request; the answer goes nowhere. */
static void cancel_requests(struct session *s)
{
	while (s->reqs) {
		struct req *r = s->reqs;

		s->reqs = r->next_in_sess;
		r->sess = NULL;
		if (r->cancel)
			r->cancel(r->cancel_arg);
	}
}

static void closed_cb(struct client *c, void *arg)
{
	struct session *s = client_get_data(c);

	(void)arg;
	if (s) {
		for (struct session **pp = &st.list; *pp; pp = &(*pp)->next) {
			if (*pp == s) {
				*pp = s->next;
				break;
			}
		}
		cancel_requests(s);
		threads_owner_gone(s->id); /* its subscriptions end with it */
		log_info("client %llu disconnected", (unsigned long long)s->id);
		free(s);
	}
	if (st.stdio) /* the stdio client is the only one: its EOF ends us */
		loop_stop(st.loop);
}

const struct client_ops session_client_ops = {
	.request_cb = request_cb,
	.closed_cb = closed_cb,
};

/* ---- notifications ----------------------------------------------------- */

static void notify_owner_cb(uint64_t owner, const char *method, json_t *params, void *arg)
{
	(void)arg;
	for (struct session *s = st.list; s; s = s->next) {
		if (s->id == owner) {
			if (s->initialized) {
				client_notify(s->client, method, params);
				return;
			}
			break;
		}
	}
	json_decref(params);
}

static void notify_all_cb(const char *method, json_t *params, void *arg)
{
	(void)arg;
	for (struct session *s = st.list; s; s = s->next)
		if (s->initialized)
			client_notify(s->client, method, json_incref(params));
	json_decref(params);
}

static const struct notify_sink sink = {
	.owner_cb = notify_owner_cb,
	.all_cb = notify_all_cb,
};

void session_init(struct loop *l, bool stdio)
{
	st.loop = l;
	st.stdio = stdio;
	notify_set_sink(&sink, NULL);
}
