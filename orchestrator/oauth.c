/* oauth.c - see oauth.h. */
#include "oauth.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "envs.h"
#include "http.h"
#include "urlutil.h"
#include "util.h"

struct oauth_fetch {
	struct http_req *hr;
	char *buf;
	size_t len;
	oauth_fetch_cb cb;
	void *owner;
};

static void fetch_data_cb(struct http_req *r, const char *data, size_t len, void *arg)
{
	struct oauth_fetch *f = arg;

	(void)r;
	f->buf = xrealloc(f->buf, f->len + len + 1);
	memcpy(f->buf + f->len, data, len);
	f->len += len;
	f->buf[f->len] = '\0';
}

void oauth_fetch_free(struct oauth_fetch *f)
{
	if (!f)
		return;
	http_cancel(f->hr);
	if (f->buf)
		secure_wipe(f->buf, f->len); /* token answers */
	free(f->buf);
	free(f);
}

static void fetch_done_cb(struct http_req *r, int err, long status, const char *msg, void *arg)
{
	struct oauth_fetch *f = arg;
	json_t *doc = NULL;
	char why[300];

	(void)r;
	f->hr = NULL;
	if (err < 0) {
		snprintf(why, sizeof(why), "%s", msg);
		f->cb(f->owner, 0, NULL, why);
		return;
	}
	if (f->len)
		doc = json_loadb(f->buf, f->len, JSON_REJECT_DUPLICATES, NULL);
	f->cb(f->owner, status, doc, NULL);
	json_decref(doc);
}

struct oauth_fetch *oauth_fetch_start(json_t *cfg, const char *plugin_id, const char *method,
				      const char *url, const char *body, bool form,
				      oauth_fetch_cb cb, void *owner, char *why, size_t whylen)
{
	static const struct http_cbs cbs = { NULL, fetch_data_cb, fetch_done_cb };
	const char *hdrs[3] = { "Accept: application/json", NULL, NULL };
	struct env *env;
	struct http *h = envs_http_route(cfg, plugin_id, &env, why, whylen);
	struct http_opts o = { 0 };
	struct oauth_fetch *f;

	if (!h)
		return NULL;
	if (body)
		hdrs[1] = form ? "Content-Type: application/x-www-form-urlencoded"
			       : "Content-Type: application/json";
	o.method = method;
	o.url = url;
	o.headers = hdrs;
	o.body = body;
	o.body_len = body ? strlen(body) : 0;
	o.timeout_ms = OAUTH_HTTP_TIMEOUT_MS;
	o.max_body = OAUTH_MAX_DOC;
	f = xcalloc(1, sizeof(*f));
	f->cb = cb;
	f->owner = owner;
	f->hr = http_start(h, &o, &cbs, f);
	if (!f->hr) {
		snprintf(why, whylen, "cannot send a request to %.200s: %s", url, strerror(errno));
		free(f);
		return NULL;
	}
	return f;
}

const char *oauth_doc_str(json_t *doc, const char *key)
{
	return json_string_value(json_object_get(doc, key));
}

char *oauth_join_scopes(json_t *arr)
{
	char *joined = NULL;
	json_t *v;
	size_t i;

	json_array_foreach(arr, i, v) {
		char *n;

		if (!json_is_string(v) || i >= OAUTH_MAX_SCOPES)
			continue;
		n = xasprintf("%s%s%s", joined ? joined : "", joined ? " " : "",
			      json_string_value(v));
		free(joined);
		joined = n;
	}
	return joined;
}

bool oauth_http_url(const char *u)
{
	return u && (strncasecmp(u, "https://", 8) == 0 || strncasecmp(u, "http://", 7) == 0) &&
	       strlen(u) < URL_MAX_LEN;
}
