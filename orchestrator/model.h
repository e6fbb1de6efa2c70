/* model.h - one streamed sampling request to the OpenAI Responses API.
 *
 * POST {base_url}/responses with stream:true and store:false; the SSE events
 * become callbacks. 429 and 5xx answers (and a stream that breaks before it
 * produced any output) are retried with exponential backoff up to the
 * provider's request_max_retries / stream_max_retries; after that the
 * request fails with the provider's own message. The API key is read from
 * the provider's env_key at send time, lives in the Authorization header
 * buffer only for the request, and is wiped after; it is never logged.
 */
#ifndef TANDEM_MODEL_H
#define TANDEM_MODEL_H

#include <jansson.h>
#include <stdint.h>

struct http;
struct loop;
struct model_req;

struct model_cbs {
	/* response.output_text.delta */
	void (*delta_cb)(const char *item_id, const char *delta, size_t len, void *arg);
	/* response.output_item.done: a `message` or a `function_call` item (borrowed) */
	void (*item_cb)(json_t *item, void *arg);
	/* once: error NULL on response.completed (response borrowed), else the
	 * reason (response.failed message, HTTP status and body message,
	 * transport error, malformed stream). */
	void (*done_cb)(json_t *response, const char *error, void *arg);
};

/* provider: the normalized [model_providers.X] object (config.h).
 * body: the request JSON (input, tools, model, instructions); stream and
 * store are set here. Returns NULL (and calls nothing) if the request could
 * not even be built: err says why (e.g. the API key variable is unset). */
struct model_req *model_stream(struct loop *l, struct http *h, json_t *provider, json_t *body,
			       const struct model_cbs *cbs, void *arg, char *err, size_t errlen);
/* Cancels: no callback after. */
void model_cancel(struct model_req *r);

/* GET {base_url}/models (the provider's model listing, where it serves
 * one: OpenAI's API does, many compatible providers do not), with the same
 * credentials as a turn; 5 s at most, 1 MiB of answer. cb(ids) with the
 * listed ids (borrowed array of strings, at most MODEL_LIST_MAX, each a
 * printable id of at most 128 bytes), or cb(NULL, why): no listing. cb may
 * run before this returns (then NULL); the handle cancels it. */
#define MODEL_LIST_MAX 200u
typedef void (*model_list_cb)(json_t *ids, const char *why, void *arg);
struct model_listing;
struct model_listing *model_list(struct http *h, json_t *provider, model_list_cb cb, void *arg);
void model_list_cancel(struct model_listing *l);

#endif
