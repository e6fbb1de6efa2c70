/* jsonutil.h - jansson helpers both daemons use.
 *
 * Typed field getters validate one member of a JSON object and write an
 * error naming the field, e.g. "field 'args' must be an array of strings"
 * or "missing required field 'command'", so callers can report a bad config
 * entry or bad request params with a reason. They return 0 on success and a
 * negative errno on failure (-EINVAL wrong type, range or content; -ENOENT
 * missing required field; -E2BIG too many entries). A field that is absent
 * or JSON null counts as absent: optional -> 0 with *out untouched (preset
 * the default), required -> -ENOENT. Strings are rejected if they contain a
 * NUL character, since C consumers would silently truncate them.
 *
 * Ownership: values handed out (strings, json_t pointers) are borrowed from
 * `obj` and live as long as it does. jsonu_loadb/jsonu_load_file return a
 * new reference (json_decref it); jsonu_dumps returns malloc'd text (free
 * it). `err` may be NULL; messages are truncated to errlen.
 */
#ifndef TANDEM_JSONUTIL_H
#define TANDEM_JSONUTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int jsonu_get_str(json_t *obj, const char *key, bool required, const char **out, char *err,
		  size_t errlen);
/* An integer (not a real) within [min, max]. */
int jsonu_get_int(json_t *obj, const char *key, bool required, int64_t min, int64_t max,
		  int64_t *out, char *err, size_t errlen);
/* Any number (integer or real) within [min, max], e.g. timeouts in seconds. */
int jsonu_get_double(json_t *obj, const char *key, bool required, double min, double max,
		     double *out, char *err, size_t errlen);
int jsonu_get_bool(json_t *obj, const char *key, bool required, bool *out, char *err,
		   size_t errlen);
int jsonu_get_obj(json_t *obj, const char *key, bool required, json_t **out, char *err,
		  size_t errlen);
int jsonu_get_arr(json_t *obj, const char *key, bool required, json_t **out, char *err,
		  size_t errlen);
/* An array of at most max_count strings (checked all). *out is the array. */
int jsonu_get_str_array(json_t *obj, const char *key, bool required, size_t max_count,
			json_t **out, char *err, size_t errlen);
/* An object of at most max_count members whose values are all strings.
 * *out is the object. */
int jsonu_get_str_map(json_t *obj, const char *key, bool required, size_t max_count,
		      json_t **out, char *err, size_t errlen);

/* Parses buf[0..len) (need not be NUL-terminated): one object or array,
 * nothing after it but whitespace, duplicate keys rejected. -> new
 * reference, or NULL with "line L column C: reason" (or a size error when
 * len > max_len, checked before parsing). */
/* For a message jansson refuses (a number beyond double, broken UTF-8 ...):
 * looks for `key` in the top-level object by a scan that follows strings
 * and nesting without validating the rest. Returns 1 with *out set when the
 * key is there once with a plain non-negative integer (within uint64), 0
 * when it is there otherwise (another type, repeated), -1 when it is not
 * there (or the text is not an object). */
int jsonu_scan_top_uint(const char *buf, size_t len, const char *key, uint64_t *out);

json_t *jsonu_loadb(const char *buf, size_t len, size_t max_len, char *err, size_t errlen);

/* Compact one-line text (no '\n': newlines inside strings are escaped);
 * any value, not only containers. Caller frees. NULL only if v is NULL or
 * cannot be encoded (out of memory). */
char *jsonu_dumps(const json_t *v);

/* Reads and parses a regular file of at most max_len bytes. Returns 0 and a
 * new reference in *out; -ENOENT if missing, -EINVAL if not a regular file
 * or not valid JSON, -EFBIG if larger than max_len, or -errno. Errors name
 * the path. */
int jsonu_load_file(const char *path, size_t max_len, json_t **out, char *err, size_t errlen);

#endif
