/* rpc_turn.c - turn/start and turn/interrupt. */
#include "rpc.h"

#include <errno.h>
#include <string.h>

#include "client.h"
#include "param.h"
#include "session.h"
#include "thread.h"
#include "turn.h"
#include "util.h"

/* input: [{type: "text", text}, ...] -> the texts (borrowed from input). */
static const char **input_texts(struct req *r, json_t *params, size_t *n)
{
	json_t *input, *v;
	const char **texts;
	size_t i;

	if (param_array(r, params, "input", &input) < 0)
		return NULL;
	if (!input || json_array_size(input) == 0) {
		req_error(r, CLIENT_INVALID_PARAMS, "input: expected a non-empty array");
		return NULL;
	}
	texts = xcalloc(json_array_size(input), sizeof(*texts));
	json_array_foreach(input, i, v) {
		const char *type = json_string_value(json_object_get(v, "type"));

		texts[i] = json_string_value(json_object_get(v, "text"));
		if (!type || strcmp(type, "text") != 0 || !texts[i]) {
			req_error(r, CLIENT_INVALID_PARAMS,
				  "input[%zu]: only {type:\"text\", text} is supported", i);
			free(texts);
			return NULL;
		}
	}
	*n = json_array_size(input);
	return texts;
}

void rpc_turn_start(struct req *r, json_t *params)
{
	struct thread *t;
	struct turn *u;
	const char **texts;
	size_t n = 0;
	char err[256];
	int rc;

	if (param_thread(r, params, true, &t) < 0 || !(texts = input_texts(r, params, &n)))
		return;
	rc = turn_new(t, req_owner(r), texts, n, &u, err, sizeof(err));
	free(texts);
	if (rc < 0) {
		req_error(r, rc == -EBUSY ? CLIENT_INVALID_REQUEST : CLIENT_INVALID_PARAMS, "%s",
			  err);
		return;
	}
	req_reply(r, json_pack("{s:o}", "turn", turn_object(u)));
	turn_run(u);
}

void rpc_turn_interrupt(struct req *r, json_t *params)
{
	const char *want;
	struct thread *t;
	struct turn *u;

	if (param_thread(r, params, true, &t) < 0 ||
	    param_str(r, params, "turnId", true, &want) < 0)
		return;
	u = thread_turn(t);
	if (!u || strcmp(turn_id(u), want) != 0) {
		req_error(r, CLIENT_INVALID_PARAMS, "turnId: no running turn '%s'", want);
		return;
	}
	req_reply(r, json_object());
	turn_interrupt(u);
}
