/* model.c - see model.h. */
#include "model.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "metrics_tandem.h"
#include "secret.h"
#include "sse.h"
#include "util.h"

#define MAX_EVENT (8u * 1024u * 1024u)
#define MAX_ERROR_BODY (64u * 1024u)
#define BACKOFF_BASE_MS 200u
#define BACKOFF_MAX_MS 10000u

struct model_req {
	struct loop *loop;
	struct http *http;
	json_t *provider;
	char *url;
	char *body;
	size_t body_len;
	const struct model_cbs *cbs;
	void *arg;
	struct http_req *hr;
	struct sse sse;
	bool sse_live;
	long status;
	char *errbody; /* a failed response's body, for its message */
	size_t errlen;
	bool produced;  /* an output item or delta was delivered: no stream retry */
	bool finished;  /* the outcome is known; done_cb is scheduled */
	json_t *outcome; /* response.completed's response */
	char *outcome_err;
	struct loop_timer *deliver;
	unsigned attempts_req, attempts_stream;
	struct loop_timer *retry;
	uint64_t started_ms; /* for the request's duration metric */
};

static void attempt(struct model_req *r);

static int64_t provider_int(json_t *p, const char *key, int64_t dflt)
{
	json_t *v = json_object_get(p, key);

	return json_is_integer(v) ? json_integer_value(v) : dflt;
}

static void deliver_cb(struct loop_timer *t, void *arg)
{
	struct model_req *r = arg;

	r->deliver = NULL;
	r->cbs->done_cb(r->outcome, r->outcome_err, r->arg); /* may free r */
}

/* The outcome is delivered from the loop, never from inside the parser or
 * a libcurl callback, so the owner may free the request in done_cb. */
static void finish(struct model_req *r, json_t *response, const char *error)
{
	if (r->finished)
		return;
	r->finished = true;
	metrics_model_request(!error, (double)(now_ms() - r->started_ms) / 1e3);
	r->outcome = json_incref(response);
	r->outcome_err = error ? xstrdup(error) : NULL;
	r->deliver = loop_timer_add(r->loop, 0, deliver_cb, r);
}

static void on_event(const char *event, const char *data, size_t len, const char *id, void *arg)
{
	struct model_req *r = arg;
	json_t *ev = json_loadb(data, len, 0, NULL), *item;
	const char *type = json_string_value(json_object_get(ev, "type"));

	if (r->finished) {
		json_decref(ev);
		return;
	}
	if (!type)
		type = event;
	if (!ev) {
		/* A data line that is not JSON: the stream is broken. */
		if (strcmp(event, "message") == 0 && len == 6 && memcmp(data, "[DONE]", 6) == 0)
			return;
		http_cancel(r->hr);
		r->hr = NULL;
		finish(r, NULL, "the model stream sent an event that is not JSON");
		return;
	}
	if (strcmp(type, "response.output_text.delta") == 0) {
		const char *d = json_string_value(json_object_get(ev, "delta"));

		r->produced = true;
		if (d)
			r->cbs->delta_cb(json_string_value(json_object_get(ev, "item_id")), d,
					 json_string_length(json_object_get(ev, "delta")), r->arg);
	} else if (strcmp(type, "response.output_item.done") == 0) {
		item = json_object_get(ev, "item");
		r->produced = true;
		if (json_is_object(item))
			r->cbs->item_cb(item, r->arg);
	} else if (strcmp(type, "response.completed") == 0) {
		finish(r, json_object_get(ev, "response"), NULL);
	} else if (strcmp(type, "response.failed") == 0 || strcmp(type, "error") == 0) {
		json_t *err = json_object_get(json_object_get(ev, "response"), "error");
		const char *msg = json_string_value(json_object_get(err ? err : ev, "message"));
		char why[1024];

		snprintf(why, sizeof(why), "the model failed the request: %s",
			 msg ? msg : "no reason given");
		finish(r, NULL, why);
	}
	json_decref(ev);
}

static void headers_cb(struct http_req *hr, long status, void *arg)
{
	struct model_req *r = arg;

	r->status = status;
}

static void data_cb(struct http_req *hr, const char *data, size_t len, void *arg)
{
	struct model_req *r = arg;

	if (r->status != 200) {
		size_t take = MIN(len, MAX_ERROR_BODY - r->errlen);

		r->errbody = xrealloc(r->errbody, r->errlen + take + 1);
		memcpy(r->errbody + r->errlen, data, take);
		r->errlen += take;
		r->errbody[r->errlen] = '\0';
		return;
	}
	if (r->finished)
		return;
	if (sse_feed(&r->sse, data, len) < 0) {
		http_cancel(r->hr);
		r->hr = NULL;
		finish(r, NULL, "the model stream sent an event over the size limit");
	}
}

static void retry_cb(struct loop_timer *t, void *arg)
{
	struct model_req *r = arg;

	r->retry = NULL;
	attempt(r);
}

static bool schedule_retry(struct model_req *r, unsigned *attempts, int64_t max, const char *why)
{
	uint64_t delay;

	if ((int64_t)*attempts >= max)
		return false;
	delay = MIN((uint64_t)BACKOFF_BASE_MS << MIN(*attempts, 10u), (uint64_t)BACKOFF_MAX_MS);
	(*attempts)++;
	log_warn("model request: %s; retry %u/%lld in %llu ms", why, *attempts, (long long)max,
		 (unsigned long long)delay);
	r->retry = loop_timer_add(r->loop, delay, retry_cb, r);
	return true;
}

/* The provider's message from an error body ({"error":{"message"}}). */
static void error_text(struct model_req *r, char *out, size_t len)
{
	json_t *j = r->errbody ? json_loads(r->errbody, 0, NULL) : NULL;
	const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));

	snprintf(out, len, "the model API answered HTTP %ld: %s", r->status,
		 msg ? msg : r->errbody ? r->errbody : "no body");
	json_decref(j);
}

static void done_cb(struct http_req *hr, int err, long status, const char *msg, void *arg)
{
	struct model_req *r = arg;
	char why[1200];

	r->hr = NULL;
	if (r->finished)
		return;
	if (err == 0 && (status == 429 || status >= 500)) {
		error_text(r, why, sizeof(why));
		if (schedule_retry(r, &r->attempts_req, provider_int(r->provider, "request_max_retries", 4),
				   why))
			return;
		finish(r, NULL, why);
	} else if (err == 0 && status != 200) {
		error_text(r, why, sizeof(why));
		finish(r, NULL, why);
	} else {
		/* The exchange ended (or broke) without response.completed. */
		snprintf(why, sizeof(why), "the model stream ended early: %s",
			 err ? msg : "no response.completed event");
		if (!r->produced &&
		    schedule_retry(r, &r->attempts_stream,
				   provider_int(r->provider, "stream_max_retries", 5), why))
			return;
		finish(r, NULL, why);
	}
}

static const struct http_cbs model_http_cbs = {
	.headers_cb = headers_cb,
	.data_cb = data_cb,
	.done_cb = done_cb,
};

static bool uses_openai_auth(json_t *p)
{
	return json_is_true(json_object_get(p, "requires_openai_auth"));
}

/* The bearer credential, read at send time so a login or logout is seen by
 * the next request: for providers that require OpenAI auth the account's
 * (account.h), else (or without a login) the provider's env_key variable.
 * NULL when there is none. Borrowed; never log it. */
static const char *provider_bearer(json_t *p)
{
	const char *env_key = json_string_value(json_object_get(p, "env_key"));
	const char *v;

	if (uses_openai_auth(p) && account_bearer())
		return account_bearer();
	v = env_key ? secret_getenv(env_key) : NULL;
	return v && *v ? v : NULL;
}

/* Authorization + provider headers; the returned strings are wiped by
 * headers_free. */
static char **build_headers(json_t *p)
{
	json_t *hh = json_object_get(p, "http_headers"), *eh = json_object_get(p, "env_http_headers");
	const char *bearer = provider_bearer(p), *acct = account_chatgpt_account_id(), *k;
	size_t n = 0, cap = 5 + json_object_size(hh) + json_object_size(eh);
	char **v = xcalloc(cap, sizeof(*v));
	json_t *val;

	v[n++] = xstrdup("Content-Type: application/json");
	v[n++] = xstrdup("Accept: text/event-stream");
	if (bearer)
		v[n++] = xasprintf("Authorization: Bearer %s", bearer);
	/* ChatGPT tokens are scoped to one workspace, named beside them. */
	if (uses_openai_auth(p) && bearer == account_bearer() && acct)
		v[n++] = xasprintf("ChatGPT-Account-ID: %s", acct);
	json_object_foreach(hh, k, val)
		if (json_is_string(val))
			v[n++] = xasprintf("%s: %s", k, json_string_value(val));
	json_object_foreach(eh, k, val) {
		const char *e = json_is_string(val) ? secret_getenv(json_string_value(val)) : NULL;

		if (e && *e)
			v[n++] = xasprintf("%s: %s", k, e);
	}
	return v;
}

static void headers_free(char **v)
{
	for (char **p = v; p && *p; p++) {
		secure_wipe(*p, strlen(*p));
		free(*p);
	}
	free(v);
}

static void attempt(struct model_req *r)
{
	char **headers = build_headers(r->provider);
	struct http_opts o = {
		.method = "POST",
		.url = r->url,
		.headers = (const char *const *)headers,
		.body = r->body,
		.body_len = r->body_len,
		.idle_timeout_ms = (uint64_t)provider_int(r->provider, "stream_idle_timeout_ms", 300000),
		.max_body = 0,
	};

	if (r->sse_live)
		sse_free(&r->sse);
	sse_init(&r->sse, MAX_EVENT, on_event, r);
	r->sse_live = true;
	free(r->errbody);
	r->errbody = NULL;
	r->errlen = 0;
	r->status = 0;
	r->hr = http_start(r->http, &o, &model_http_cbs, r);
	headers_free(headers); /* http copies what it needs */
	if (!r->hr)
		finish(r, NULL, "cannot start the HTTP request to the model API");
}

struct model_req *model_stream(struct loop *l, struct http *h, json_t *provider, json_t *body,
			       const struct model_cbs *cbs, void *arg, char *err, size_t errlen)
{
	const char *base = json_string_value(json_object_get(provider, "base_url"));
	const char *env_key = json_string_value(json_object_get(provider, "env_key"));
	struct model_req *r;
	json_t *b;

	if (!base) {
		snprintf(err, errlen, "the model provider has no base_url");
		return NULL;
	}
	if (!provider_bearer(provider) && uses_openai_auth(provider)) {
		snprintf(err, errlen,
			 "the model provider needs an OpenAI login (account/login/start)%s%s",
			 env_key ? " or an API key in $" : "", env_key ? env_key : "");
		return NULL;
	}
	if (!provider_bearer(provider) && env_key) {
		snprintf(err, errlen, "the model provider needs an API key in $%s", env_key);
		return NULL;
	}
	r = xcalloc(1, sizeof(*r));
	r->started_ms = now_ms();
	r->loop = l;
	r->http = h;
	r->provider = json_incref(provider);
	r->cbs = cbs;
	r->arg = arg;
	r->url = xasprintf("%s%sresponses", base, base[strlen(base) - 1] == '/' ? "" : "/");
	b = json_copy(body);
	json_object_set_new(b, "stream", json_true());
	json_object_set_new(b, "store", json_false());
	r->body = json_dumps(b, JSON_COMPACT);
	r->body_len = strlen(r->body);
	json_decref(b);
	attempt(r);
	return r;
}

/* ---- the provider's model listing ---- */

#define MODEL_LIST_BODY (1u << 20)
#define MODEL_LIST_MS 5000u

struct model_listing {
	struct http_req *hr;
	model_list_cb cb;
	void *arg;
	char *body;
	size_t len;
	bool over;
};

static bool id_ok(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > 128)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* {"data": [{"id": "..."}, ...]} (OpenAI's list shape) -> ids, or NULL. */
static json_t *listed_ids(const char *body, size_t len, char *why, size_t whylen)
{
	json_t *doc = json_loadb(body, len, 0, NULL), *data = json_object_get(doc, "data"), *e;
	json_t *ids;
	size_t i;

	if (!json_is_array(data)) {
		snprintf(why, whylen, "the listing is not {\"data\": [...]}");
		json_decref(doc);
		return NULL;
	}
	ids = json_array();
	json_array_foreach(data, i, e) {
		const char *id = json_string_value(json_object_get(e, "id"));

		if (json_array_size(ids) == MODEL_LIST_MAX)
			break;
		if (id && id_ok(id))
			json_array_append_new(ids, json_string(id));
	}
	json_decref(doc);
	return ids;
}

static void list_data_cb(struct http_req *hr, const char *data, size_t len, void *arg)
{
	struct model_listing *l = arg;

	(void)hr;
	if (l->over || l->len + len > MODEL_LIST_BODY) {
		l->over = true;
		return;
	}
	l->body = xrealloc(l->body, l->len + len + 1);
	memcpy(l->body + l->len, data, len);
	l->len += len;
}

static void list_done_cb(struct http_req *hr, int err, long status, const char *msg, void *arg)
{
	struct model_listing *l = arg;
	json_t *ids = NULL;
	char why[256];

	(void)hr;
	l->hr = NULL;
	if (err)
		snprintf(why, sizeof(why), "GET /models: %s", msg);
	else if (status != 200)
		snprintf(why, sizeof(why), "GET /models answered HTTP %ld", status);
	else if (l->over)
		snprintf(why, sizeof(why), "GET /models: the answer is over %u bytes",
			 MODEL_LIST_BODY);
	else
		ids = listed_ids(l->body ? l->body : "", l->len, why, sizeof(why));
	l->cb(ids, ids ? NULL : why, l->arg);
	json_decref(ids);
	free(l->body);
	free(l);
}

static const struct http_cbs list_http_cbs = {
	.data_cb = list_data_cb,
	.done_cb = list_done_cb,
};

struct model_listing *model_list(struct http *h, json_t *provider, model_list_cb cb, void *arg)
{
	const char *base = json_string_value(json_object_get(provider, "base_url"));
	struct model_listing *l;
	_cleanup_free_ char *url = NULL;
	char **headers;

	if (!base || !*base) {
		cb(NULL, "the model provider has no base_url", arg);
		return NULL;
	}
	url = xasprintf("%s%smodels", base, base[strlen(base) - 1] == '/' ? "" : "/");
	headers = build_headers(provider);
	free(headers[1]); /* a JSON answer, not an event stream */
	headers[1] = xstrdup("Accept: application/json");
	l = xcalloc(1, sizeof(*l));
	l->cb = cb;
	l->arg = arg;
	l->hr = http_start(h, &(struct http_opts){ .method = "GET", .url = url,
						   .headers = (const char *const *)headers,
						   .timeout_ms = MODEL_LIST_MS,
						   .max_body = MODEL_LIST_BODY + 1 },
			   &list_http_cbs, l);
	headers_free(headers);
	if (!l->hr) {
		free(l);
		cb(NULL, "cannot start the HTTP request to the model API", arg);
		return NULL;
	}
	return l;
}

void model_list_cancel(struct model_listing *l)
{
	if (!l)
		return;
	http_cancel(l->hr); /* no callback after */
	free(l->body);
	free(l);
}

void model_cancel(struct model_req *r)
{
	if (!r)
		return;
	if (r->hr)
		http_cancel(r->hr);
	loop_timer_cancel(r->retry);
	loop_timer_cancel(r->deliver);
	json_decref(r->outcome);
	free(r->outcome_err);
	if (r->sse_live)
		sse_free(&r->sse);
	json_decref(r->provider);
	free(r->url);
	free(r->body);
	free(r->errbody);
	free(r);
}

