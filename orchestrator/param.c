/* param.c - see param.h. */
#include "param.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "client.h"
#include "session.h"
#include "thread.h"

/* params[key], or NULL when absent or null. */
static json_t *get(json_t *params, const char *key)
{
	json_t *v = json_object_get(params, key);

	return json_is_null(v) ? NULL : v;
}

static int bad(struct req *r, const char *key, const char *what)
{
	req_error(r, CLIENT_INVALID_PARAMS, "%s: expected %s", key, what);
	return -EINVAL;
}

int param_str(struct req *r, json_t *params, const char *key, bool required, const char **out)
{
	json_t *v = get(params, key);

	if (!v) {
		*out = NULL;
		return required ? bad(r, key, "a string") : 0;
	}
	if (!json_is_string(v))
		return bad(r, key, "a string");
	if (strlen(json_string_value(v)) != json_string_length(v))
		return bad(r, key, "a string without NUL characters");
	*out = json_string_value(v);
	return 0;
}

int param_int(struct req *r, json_t *params, const char *key, int64_t min, int64_t max,
	      int64_t *out)
{
	json_t *v = get(params, key);

	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		req_error(r, CLIENT_INVALID_PARAMS,
			  "%s: expected an integer from %" PRId64 " to %" PRId64, key, min, max);
		return -EINVAL;
	}
	*out = (int64_t)json_integer_value(v);
	return 0;
}

int param_bool(struct req *r, json_t *params, const char *key, bool *out)
{
	json_t *v = get(params, key);

	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return bad(r, key, "a boolean");
	*out = json_is_true(v);
	return 0;
}

int param_array(struct req *r, json_t *params, const char *key, json_t **out)
{
	json_t *v = get(params, key);

	if (v && !json_is_array(v))
		return bad(r, key, "an array");
	*out = v;
	return 0;
}

int param_object(struct req *r, json_t *params, const char *key, json_t **out)
{
	json_t *v = get(params, key);

	if (v && !json_is_object(v))
		return bad(r, key, "an object");
	*out = v;
	return 0;
}

int param_str_array(struct req *r, json_t *params, const char *key, json_t **out)
{
	json_t *v;
	size_t i;

	if (param_array(r, params, key, out) < 0)
		return -EINVAL;
	json_array_foreach(*out, i, v) {
		if (!json_is_string(v)) {
			req_error(r, CLIENT_INVALID_PARAMS, "%s[%zu]: expected a string", key, i);
			return -EINVAL;
		}
	}
	return 0;
}

int param_thread(struct req *r, json_t *params, bool required, struct thread **out)
{
	const char *tid;

	if (param_str(r, params, "threadId", required, &tid) < 0)
		return -EINVAL;
	if (tid && !thread_id_valid(tid)) {
		req_error(r, CLIENT_INVALID_PARAMS, "threadId: '%.100s' is not a thread id (a UUID)",
			  tid);
		return -EINVAL;
	}
	*out = tid ? thread_find(tid) : NULL;
	if (tid && !*out) {
		req_error(r, CLIENT_INVALID_PARAMS,
			  "threadId: no loaded thread '%s' (thread/resume loads a stored one)", tid);
		return -EINVAL;
	}
	if (*out)
		thread_touch(*out);
	return 0;
}
