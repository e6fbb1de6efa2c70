/* client_parse.c - turning one input message into a request: a bounded
 * pre-scan, the parse (on the loop for small messages, on one worker thread
 * for large ones), and the JSON-RPC envelope checks.
 *
 * Why a worker and not an incremental parser: jansson, the JSON library of
 * the whole tree, parses a complete buffer only; a 16 MiB message takes it
 * tens of milliseconds, during which the loop would serve nobody. Messages
 * up to CLIENT_PARSE_INLINE bytes (well under a millisecond) are parsed
 * where they arrive; a larger one is copied into a job for the worker and
 * its session stops reading until the job is back (so its messages stay in
 * order and it has at most one in flight). The worker only runs the
 * pre-scan and json_loadb on memory it owns; the result goes back through
 * loop_post and is dispatched on the loop thread. The thread starts at the
 * first large message, which the loop reads only after the sandbox applies
 * (the sandbox needs a single-threaded process), and ends with the last
 * listener.
 *
 * The pre-scan walks the bytes once (strings skipped with their escapes)
 * and counts values and nesting: more than CLIENT_MAX_NODES or deeper than
 * CLIENT_MAX_DEPTH is refused before jansson allocates anything, since a
 * 15 MiB `[[],[],...]` would otherwise become over a gigabyte of nodes.
 */
#include "client_int.h"

#include "log.h"
#include "loop.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

struct client_job {
	struct client_job *next;
	struct client *c; /* loop thread only; NULL once the session went */
	size_t len;
	int scan;          /* client_prescan's result */
	json_t *msg;       /* the result, or NULL with err */
	json_t *id;        /* with no msg: the id of a request jansson refused */
	json_error_t err;
	char data[];
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool started, stop, posted;
	struct loop *l;
	struct client_job *todo, **todo_tail;
	struct client_job *done, **done_tail;
} W = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void done_cb(void *arg);

/* ---- the pre-scan ---- */

int client_prescan(const char *p, size_t n)
{
	size_t nodes = 0, depth = 0;
	bool in_value = false; /* inside a scalar's characters */

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];

		switch (ch) {
		case '"':
			nodes++;
			for (i++; i < n && p[i] != '"'; i++)
				if (p[i] == '\\')
					i++;
			in_value = false;
			break;
		case '{':
		case '[':
			nodes++;
			if (++depth > CLIENT_MAX_DEPTH)
				return -ELOOP;
			in_value = false;
			break;
		case '}':
		case ']':
			depth -= depth > 0;
			in_value = false;
			break;
		case ',':
		case ':':
		case ' ':
		case '\t':
		case '\r':
		case '\n':
			in_value = false;
			break;
		default:
			/* A number, true, false, null (or garbage: jansson says). */
			if (!in_value)
				nodes++;
			in_value = true;
			break;
		}
		if (nodes > CLIENT_MAX_NODES)
			return -E2BIG;
	}
	return 0;
}

/* ---- the envelope ---- */

void client_dispatch(struct client *c, json_t *msg)
{
	struct client_srv *s = c->srv;
	json_t *method, *id, *params;

	if (!json_is_object(msg)) {
		client_error(c, NULL, CLIENT_INVALID_REQUEST, "Invalid Request: %s",
			     json_is_array(msg) ? "batches are not supported" : "not an object");
		return;
	}
	method = json_object_get(msg, "method");
	id = json_object_get(msg, "id");
	if (!method && (json_object_get(msg, "result") || json_object_get(msg, "error"))) {
		/* We send no server->client requests, so nothing waits for it. */
		log_debug("client %" PRIu64 ": ignoring a response message", c->id);
		return;
	}
	if (id && !json_is_string(id) && !json_is_integer(id)) {
		client_error(c, NULL, CLIENT_INVALID_REQUEST,
			     "Invalid Request: id must be a string or an integer");
		return;
	}
	if (!json_is_string(method)) {
		/* Counted, so that its answer does not uncount another's. */
		client_count(c);
		client_error(c, id, CLIENT_INVALID_REQUEST, "Invalid Request: %s",
			     method ? "method must be a string" : "missing method");
		return;
	}
	if (id && !client_admit(c, id))
		return;
	params = json_object_get(msg, "params");
	if (json_is_null(params))
		params = NULL;
	s->in_cb++;
	s->ops->request_cb(c, json_string_value(method), id, params, s->arg);
	s->in_cb--;
}

/* The outcome of a scan and a parse, on the loop thread. */
static void deliver(struct client *c, int scan, json_t *msg, json_t *id,
		    const json_error_t *je)
{
	if (!msg && id) { /* well-formed JSON that jansson cannot hold: its request answered */
		client_count(c);
		client_error(c, id, CLIENT_INVALID_PARAMS,
			     "Invalid params: a number beyond the 64-bit integer range (column %d)",
			     je->column);
	} else if (scan == -E2BIG)
		client_error(c, NULL, CLIENT_INVALID_REQUEST,
			     "Invalid Request: more than %u JSON values in one message",
			     CLIENT_MAX_NODES);
	else if (scan < 0)
		client_error(c, NULL, CLIENT_PARSE_ERROR, "Parse error: nested deeper than %u levels",
			     CLIENT_MAX_DEPTH);
	else if (!msg)
		client_error(c, NULL, CLIENT_PARSE_ERROR, "Parse error at column %d: %s",
			     je->column, je->text);
	else
		client_dispatch(c, msg);
	json_decref(msg);
	json_decref(id);
}

static bool is_blank(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n')
			return false;
	return true;
}

/* The id of a message that is valid JSON but holds an integer beyond
 * int64 (jansson refuses those): read again with every integer as a real,
 * so that the request can be answered by its id rather than with id null
 * (a client matching answers by id would wait for ever). NULL if none. */
static json_t *id_of_unholdable(const char *p, size_t n, const json_error_t *je)
{
	json_t *lax, *v, *id = NULL;
	json_error_t ignored;
	double d;

	if (!strstr(je->text, "too big"))
		return NULL;
	lax = json_loadb(p, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL,
			 &ignored);
	v = json_object_get(lax, "id");
	if (json_is_string(v)) {
		id = json_incref(v);
	} else if (json_is_real(v)) {
		d = json_real_value(v);
		/* within 2^53 (checked first: a cast beyond int64 is undefined)
		 * and integral: exactly what the client sent */
		if (d > -9007199254740992.0 && d < 9007199254740992.0 && d == (double)(json_int_t)d)
			id = json_integer((json_int_t)d);
	}
	json_decref(lax);
	return id;
}

static json_t *load(const char *p, size_t n, int *scan, json_error_t *je, json_t **id)
{
	json_t *msg;

	*id = NULL;
	*scan = client_prescan(p, n);
	if (*scan < 0)
		return NULL;
	msg = json_loadb(p, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, je);
	if (!msg)
		*id = id_of_unholdable(p, n, je);
	return msg;
}

/* ---- the worker ---- */

static void *worker_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&W.lock);
	for (;;) {
		struct client_job *j;

		while (!W.todo && !W.stop)
			pthread_cond_wait(&W.cond, &W.lock);
		if (W.stop)
			break;
		j = W.todo;
		W.todo = j->next;
		if (!W.todo)
			W.todo_tail = &W.todo;
		pthread_mutex_unlock(&W.lock);
		j->msg = load(j->data, j->len, &j->scan, &j->err, &j->id);
		pthread_mutex_lock(&W.lock);
		j->next = NULL;
		*W.done_tail = j;
		W.done_tail = &j->next;
		/* One post at a time: the loop takes every finished job. */
		if (!W.posted)
			W.posted = true;
		else
			continue;
		pthread_mutex_unlock(&W.lock);
		if (loop_post(W.l, done_cb, NULL) < 0) {
			pthread_mutex_lock(&W.lock);
			W.posted = false; /* the loop is ending: client_parse_shutdown frees */
			continue;
		}
		pthread_mutex_lock(&W.lock);
	}
	pthread_mutex_unlock(&W.lock);
	return NULL;
}

static void job_free(struct client_job *j)
{
	json_decref(j->msg);
	json_decref(j->id);
	free(j);
}

/* On the loop thread: every finished job. */
static void done_cb(void *arg)
{
	struct client_job *list;

	(void)arg;
	pthread_mutex_lock(&W.lock);
	list = W.done;
	W.done = NULL;
	W.done_tail = &W.done;
	W.posted = false;
	pthread_mutex_unlock(&W.lock);
	while (list) {
		struct client_job *j = list;
		struct client *c = j->c;

		list = j->next;
		if (c) {
			c->job = NULL;
			client_unhold(c, j->len);
			if (c->state == CLIENT_OPEN)
				deliver(c, j->scan, TAKE_PTR(j->msg), TAKE_PTR(j->id),
					&j->err);
			client_parsed(c);
		}
		job_free(j);
	}
}

static int worker_start(struct loop *l)
{
	int r;

	if (W.started)
		return 0;
	W.l = l;
	W.stop = false;
	W.todo_tail = &W.todo;
	W.done_tail = &W.done;
	r = -pthread_create(&W.thread, NULL, worker_main, NULL);
	if (r < 0) {
		log_error("cannot start the client parse worker: %s", strerror(-r));
		return r;
	}
	W.started = true;
	log_debug("client parse worker started");
	return 0;
}

void client_parse_shutdown(void)
{
	struct client_job *lists[2];

	if (!W.started)
		return;
	pthread_mutex_lock(&W.lock);
	W.stop = true;
	pthread_cond_signal(&W.cond);
	pthread_mutex_unlock(&W.lock);
	pthread_join(W.thread, NULL);
	W.started = false;
	/* Jobs not taken, or finished and never delivered (a post that will
	 * not run). Their sessions are gone. */
	lists[0] = W.todo;
	lists[1] = W.done;
	W.todo = W.done = NULL;
	W.todo_tail = &W.todo;
	W.done_tail = &W.done;
	W.posted = false;
	for (int i = 0; i < 2; i++) {
		while (lists[i]) {
			struct client_job *j = lists[i];

			lists[i] = j->next;
			if (j->c)
				j->c->job = NULL;
			job_free(j);
		}
	}
}

/* ---- entry ---- */

void client_parse(struct client *c, const char *data, size_t len)
{
	struct client_job *j;
	json_error_t je;
	json_t *msg, *id;
	int scan;

	if (is_blank(data, len))
		return;
	if (len <= CLIENT_PARSE_INLINE || worker_start(c->srv->l) < 0) {
		msg = load(data, len, &scan, &je, &id);
		deliver(c, scan, msg, id, &je);
		return;
	}
	if (!client_hold(c, len))
		return;
	j = xmalloc(sizeof(*j) + len);
	*j = (struct client_job){ .c = c, .len = len };
	memcpy(j->data, data, len);
	c->job = j;
	pthread_mutex_lock(&W.lock);
	*W.todo_tail = j;
	W.todo_tail = &j->next;
	pthread_cond_signal(&W.cond);
	pthread_mutex_unlock(&W.lock);
	/* The session reads nothing more until the job is back. */
	if (c->kind == CLIENT_KIND_LINE)
		client_line_update(c);
	else
		client_ws_update(c);
}

void client_parse_cancel(struct client *c)
{
	if (!c->job)
		return;
	client_unhold(c, c->job->len);
	c->job->c = NULL;
	c->job = NULL;
}
