/* param.h - reading a client request's params: one parse and one error text
 * for each kind of field, shared by every rpc_<method>.
 *
 * Each helper reads params[key]. Absent or JSON null is "absent": a
 * required field is then an error, an optional one leaves the default
 * (*out is set to it: NULL, or untouched for numbers and booleans). Present
 * with the wrong type (or out of range) is always an error, never taken as
 * absent. On error the helper answers the request itself (-32602, a text
 * that starts with the field's name) and returns -EINVAL: the handler just
 * returns.
 *
 * Values handed out are borrowed from params.
 */
#ifndef TANDEM_PARAM_H
#define TANDEM_PARAM_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct req;
struct thread;

/* A string without NUL characters. */
int param_str(struct req *r, json_t *params, const char *key, bool required, const char **out);
/* An integer in [min, max]. */
int param_int(struct req *r, json_t *params, const char *key, int64_t min, int64_t max,
	      int64_t *out);
int param_bool(struct req *r, json_t *params, const char *key, bool *out);
/* An array or an object (borrowed). */
int param_array(struct req *r, json_t *params, const char *key, json_t **out);
int param_object(struct req *r, json_t *params, const char *key, json_t **out);
/* An array whose every element is a string ("key[i]: expected a string"). */
int param_str_array(struct req *r, json_t *params, const char *key, json_t **out);
/* threadId naming a loaded thread (a UUID: anything else is refused as
 * such); optional and absent: *out = NULL. */
int param_thread(struct req *r, json_t *params, bool required, struct thread **out);

#endif
