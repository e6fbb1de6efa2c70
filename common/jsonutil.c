/* jsonutil.c - see jsonutil.h. */
#include "jsonutil.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Finds key in obj. Returns 0 with *v set when present, 1 when absent (or
 * null) and optional, or a negative errno with err set. */
static int lookup(json_t *obj, const char *key, bool required, json_t **v, char *err,
		  size_t errlen)
{
	json_t *x;

	if (!json_is_object(obj)) {
		seterr(err, errlen, "expected an object holding field '%s'", key);
		return -EINVAL;
	}
	x = json_object_get(obj, key);
	if (!x || json_is_null(x)) {
		if (!required)
			return 1;
		seterr(err, errlen, "missing required field '%s'", key);
		return -ENOENT;
	}
	*v = x;
	return 0;
}

/* jansson strings may hold NUL (json_stringn); C consumers would truncate. */
static bool has_nul(const json_t *s)
{
	return strlen(json_string_value(s)) != json_string_length(s);
}

int jsonu_get_str(json_t *obj, const char *key, bool required, const char **out, char *err,
		  size_t errlen)
{
	json_t *v;
	int r = lookup(obj, key, required, &v, err, errlen);

	if (r != 0)
		return r < 0 ? r : 0;
	if (!json_is_string(v)) {
		seterr(err, errlen, "field '%s' must be a string", key);
		return -EINVAL;
	}
	if (has_nul(v)) {
		seterr(err, errlen, "field '%s' must not contain NUL characters", key);
		return -EINVAL;
	}
	*out = json_string_value(v);
	return 0;
}

int jsonu_get_int(json_t *obj, const char *key, bool required, int64_t min, int64_t max,
		  int64_t *out, char *err, size_t errlen)
{
	json_t *v;
	int64_t x;
	int r = lookup(obj, key, required, &v, err, errlen);

	if (r != 0)
		return r < 0 ? r : 0;
	if (!json_is_integer(v))
		goto bad;
	x = (int64_t)json_integer_value(v);
	if (x < min || x > max)
		goto bad;
	*out = x;
	return 0;
bad:
	if (min == INT64_MIN && max == INT64_MAX)
		seterr(err, errlen, "field '%s' must be an integer", key);
	else
		seterr(err, errlen, "field '%s' must be an integer between %" PRId64 " and %" PRId64,
		       key, min, max);
	return -EINVAL;
}

int jsonu_get_double(json_t *obj, const char *key, bool required, double min, double max,
		     double *out, char *err, size_t errlen)
{
	json_t *v;
	double x;
	int r = lookup(obj, key, required, &v, err, errlen);

	if (r != 0)
		return r < 0 ? r : 0;
	if (!json_is_number(v))
		goto bad;
	x = json_number_value(v);
	if (!(x >= min && x <= max))
		goto bad;
	*out = x;
	return 0;
bad:
	seterr(err, errlen, "field '%s' must be a number between %g and %g", key, min, max);
	return -EINVAL;
}

int jsonu_get_bool(json_t *obj, const char *key, bool required, bool *out, char *err,
		   size_t errlen)
{
	json_t *v;
	int r = lookup(obj, key, required, &v, err, errlen);

	if (r != 0)
		return r < 0 ? r : 0;
	if (!json_is_boolean(v)) {
		seterr(err, errlen, "field '%s' must be a boolean", key);
		return -EINVAL;
	}
	*out = json_is_true(v);
	return 0;
}

int jsonu_get_obj(json_t *obj, const char *key, bool required, json_t **out, char *err,
		  size_t errlen)
{
	json_t *v;
	int r = lookup(obj, key, required, &v, err, errlen);

	if (r != 0)
		return r < 0 ? r : 0;
	if (!json_is_object(v)) {
		seterr(err, errlen, "field '%s' must be an object", key);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int jsonu_get_arr(json_t *obj, const char *key, bool required, json_t **out, char *err,
		  size_t errlen)
{
	json_t *v;
	int r = lookup(obj, key, required, &v, err, errlen);

	if (r != 0)
		return r < 0 ? r : 0;
	if (!json_is_array(v)) {
		seterr(err, errlen, "field '%s' must be an array", key);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int jsonu_get_str_array(json_t *obj, const char *key, bool required, size_t max_count,
			json_t **out, char *err, size_t errlen)
{
	json_t *v, *e;
	size_t i;
	int r = lookup(obj, key, required, &v, err, errlen);

	if (r != 0)
		return r < 0 ? r : 0;
	if (!json_is_array(v)) {
		seterr(err, errlen, "field '%s' must be an array of strings", key);
		return -EINVAL;
	}
	if (json_array_size(v) > max_count) {
		seterr(err, errlen, "field '%s' has too many entries (max %zu)", key, max_count);
		return -E2BIG;
	}
	json_array_foreach (v, i, e) {
		if (!json_is_string(e)) {
			seterr(err, errlen, "field '%s' must be an array of strings", key);
			return -EINVAL;
		}
		if (has_nul(e)) {
			seterr(err, errlen, "field '%s' entry %zu contains a NUL character", key, i);
			return -EINVAL;
		}
	}
	*out = v;
	return 0;
}

int jsonu_get_str_map(json_t *obj, const char *key, bool required, size_t max_count,
		      json_t **out, char *err, size_t errlen)
{
	json_t *v, *e;
	const char *k;
	int r = lookup(obj, key, required, &v, err, errlen);

	if (r != 0)
		return r < 0 ? r : 0;
	if (!json_is_object(v)) {
		seterr(err, errlen, "field '%s' must be an object whose values are strings", key);
		return -EINVAL;
	}
	if (json_object_size(v) > max_count) {
		seterr(err, errlen, "field '%s' has too many entries (max %zu)", key, max_count);
		return -E2BIG;
	}
	json_object_foreach (v, k, e) {
		if (!json_is_string(e)) {
			seterr(err, errlen, "field '%s' must be an object whose values are strings",
			       key);
			return -EINVAL;
		}
		if (has_nul(e)) {
			seterr(err, errlen, "field '%s' entry '%s' contains a NUL character", key, k);
			return -EINVAL;
		}
	}
	*out = v;
	return 0;
}

json_t *jsonu_loadb(const char *buf, size_t len, size_t max_len, char *err, size_t errlen)
{
	json_error_t je;
	json_t *v;

	if (len > max_len) {
		seterr(err, errlen, "JSON text too large (%zu bytes, limit %zu)", len, max_len);
		return NULL;
	}
	v = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!v)
		seterr(err, errlen, "line %d column %d: %s", je.line, je.column, je.text);
	return v;
}

char *jsonu_dumps(const json_t *v)
{
	if (!v)
		return NULL;
	return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* Reads up to `size` bytes (a file may shrink while we read). */
static ssize_t read_upto(int fd, char *buf, size_t size)
{
	size_t got = 0;

	while (got < size) {
		ssize_t n = read(fd, buf + got, size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int jsonu_load_file(const char *path, size_t max_len, json_t **out, char *err, size_t errlen)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *buf = NULL;
	char perr[256];
	struct stat st;
	ssize_t n;
	json_t *v;

	/* O_NONBLOCK so that a FIFO planted at path cannot block the open. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0) {
		int r = -errno;

		seterr(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	if (!S_ISREG(st.st_mode)) {
		seterr(err, errlen, "%s: not a regular file", path);
		return -EINVAL;
	}
	if ((uintmax_t)st.st_size > max_len) {
		seterr(err, errlen, "%s: too large (%jd bytes, limit %zu)", path,
		       (intmax_t)st.st_size, max_len);
		return -EFBIG;
	}
	buf = xmalloc((size_t)st.st_size);
	n = read_upto(fd, buf, (size_t)st.st_size);
	if (n < 0) {
		seterr(err, errlen, "%s: %s", path, strerror((int)-n));
		return (int)n;
	}
	v = jsonu_loadb(buf, (size_t)n, max_len, perr, sizeof(perr));
	if (!v) {
		seterr(err, errlen, "%s: %s", path, perr);
		return -EINVAL;
	}
	*out = v;
	return 0;
}

/* Skips a JSON string starting at p[i] == '"'; returns the index after its
 * closing quote, or len if it does not end. */
static size_t skip_string(const char *p, size_t len, size_t i)
{
	for (i++; i < len; i++) {
		if (p[i] == '\\')
			i++;
		else if (p[i] == '"')
			return i + 1;
	}
	return len;
}

int jsonu_scan_top_uint(const char *p, size_t len, const char *key, uint64_t *out)
{
	size_t klen = strlen(key), depth = 0, found = 0, i = 0;
	bool want_key = false;
	uint64_t v = 0;

	while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
		i++;
	if (i == len || p[i] != '{')
		return -1;
	while (i < len) {
		char ch = p[i];

		if (ch == '"') {
			size_t end = skip_string(p, len, i);
			size_t j = end;

			if (depth == 1 && want_key && end - i == klen + 2 &&
			    memcmp(p + i + 1, key, klen) == 0) {
				uint64_t n = 0;
				size_t digits = 0;

				while (j < len && (p[j] == ' ' || p[j] == '\t' || p[j] == '\n' ||
						   p[j] == '\r'))
					j++;
				if (j < len && p[j] == ':')
					j++;
				while (j < len && (p[j] == ' ' || p[j] == '\t' || p[j] == '\n' ||
						   p[j] == '\r'))
					j++;
				for (; j < len && p[j] >= '0' && p[j] <= '9'; j++, digits++) {
					if (n > (UINT64_MAX - (uint64_t)(p[j] - '0')) / 10) {
						digits = 0;
						break;
					}
					n = n * 10 + (uint64_t)(p[j] - '0');
				}
				if (digits > 0 && j < len && (p[j] == ',' || p[j] == '}' || p[j] == ' ' ||
							     p[j] == '\n' || p[j] == '\r' ||
							     p[j] == '\t')) {
					v = n;
					found++;
				} else {
					found += 2; /* present but not a plain integer: untrusted */
				}
			}
			want_key = false;
			i = end;
			continue;
		}
		if (ch == '{' || ch == '[') {
			depth++;
			want_key = ch == '{' && depth == 1;
		} else if (ch == '}' || ch == ']') {
			if (depth == 0)
				break;
			depth--;
		} else if (ch == ',' && depth == 1) {
			want_key = true;
		}
		i++;
	}
	if (found == 0)
		return -1;
	if (found != 1)
		return 0;
	*out = v;
	return 1;
}
