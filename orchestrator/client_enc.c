/* client_enc.c - encoding messages into the listener's scratch buffer.
 *
 * Messages are encoded by hand around json_dump_callback() into one scratch
 * buffer per listener (the loop is single-threaded and encoding never calls
 * out), without the line transport's '\n' (client_line.c adds it), and
 * handed to the transport: with an empty queue that is one writev and no
 * copy.
 */
#include "client_int.h"

#include "utf8.h"
#include "util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#define SCRATCH_KEEP (1024u * 1024)  /* larger encode buffers are freed after use */
#define ERROR_MESSAGE_MAX 4096

void enc_reset(struct client_srv *s)
{
	s->len = 0;
	s->enc_err = 0;
}

static int enc_put_cb(const char *p, size_t n, void *arg)
{
	struct client_srv *s = arg;

	if (s->enc_err)
		return -1;
	/* The whole message must fit the output bound: stop growing early. */
	if (n > s->max_output - s->len) {
		s->enc_err = -EMSGSIZE;
		return -1;
	}
	if (s->len + n > s->cap) {
		s->cap = MAX(MIN(MAX(s->cap * 2, 4096u), s->max_output), s->len + n);
		s->buf = xrealloc(s->buf, s->cap);
	}
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	return 0;
}

void enc_raw(struct client_srv *s, const char *p) { (void)enc_put_cb(p, strlen(p), s); }

void enc_rawn(struct client_srv *s, const char *p, size_t n) { (void)enc_put_cb(p, n, s); }

void enc_json(struct client_srv *s, const json_t *v)
{
	if (s->enc_err)
		return;
	if (json_dump_callback(v, enc_put_cb, s, JSON_COMPACT | JSON_ENCODE_ANY) < 0 && !s->enc_err)
		s->enc_err = -EINVAL;
}

/* A request id: a string or an integer; NULL is written as null when
 * null_ok (error replies to unparsable input), else rejected. */
void enc_id(struct client_srv *s, const json_t *id, bool null_ok)
{
	if (!id && null_ok)
		enc_raw(s, "null");
	else if (json_is_string(id) || json_is_integer(id))
		enc_json(s, id);
	else if (!s->enc_err)
		s->enc_err = -EINVAL;
}

/* Drops a big buffer after a big message so it does not stay pinned. */
void enc_release(struct client_srv *s)
{
	if (s->cap > SCRATCH_KEEP) {
		free(s->buf);
		s->buf = NULL;
		s->cap = 0;
	}
	s->len = 0;
}

/* The message as a json string, cut at ERROR_MESSAGE_MAX on a character
 * boundary; if it is still not valid UTF-8 (a parse error quoting raw
 * input), bytes above 0x7f become '?'. */
json_t *enc_error_message(const char *fmt, va_list ap)
{
	char buf[ERROR_MESSAGE_MAX];
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	size_t len = n < 0 ? 0 : (size_t)n;
	json_t *s;

	if (len >= sizeof(buf))
		len = utf8_trim(buf, sizeof(buf) - 1);
	s = json_stringn(buf, len);
	if (s)
		return s;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)buf[i] >= 0x80)
			buf[i] = '?';
	return json_stringn(buf, len);
}
