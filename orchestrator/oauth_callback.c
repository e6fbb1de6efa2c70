/* oauth_callback.c - see oauth_callback.h. */
#include "oauth_callback.h"

#include <stdio.h>
#include <string.h>

#include "httpd.h"
#include "loop.h"
#include "urlutil.h"
#include "util.h"

static struct {
	struct loop *loop;
	struct httpd *httpd;
	struct loop_timer *linger;
	oauth_callback_fn fn;
	void *arg;
} lsn;

void oauth_callback_parse(const char *path, const char *query, struct oauth_callback *out)
{
	size_t plen = strlen(OAUTH_CALLBACK_PREFIX);

	memset(out, 0, sizeof(*out));
	if (path && strncmp(path, OAUTH_CALLBACK_PREFIX, plen) == 0)
		out->login_id = path + plen;
	if (!query)
		return;
	out->state = url_query_get(query, "state");
	out->code = url_query_get(query, "code");
	out->error = url_query_get(query, "error");
	out->error_description = url_query_get(query, "error_description");
}

void oauth_callback_clear(struct oauth_callback *cb)
{
	if (cb->code)
		secure_wipe(cb->code, strlen(cb->code));
	free(cb->state);
	free(cb->code);
	free(cb->error);
	free(cb->error_description);
	memset(cb, 0, sizeof(*cb));
}

static void request_cb(const struct httpd_request *rq, struct httpd_response *resp, void *arg)
{
	struct oauth_callback_answer ans = { 404, "No login is waiting for this callback." };
	struct oauth_callback cb;

	(void)arg;
	oauth_callback_parse(rq->path, rq->query, &cb);
	if (lsn.fn)
		lsn.fn(&cb, &ans, lsn.arg);
	oauth_callback_clear(&cb);
	resp->status = ans.status;
	resp->body = xasprintf("%s\n", ans.text);
}

int oauth_callback_listen(struct loop *l, uint16_t port, oauth_callback_fn fn, void *arg,
			  char *why, size_t whylen)
{
	int err = 0;

	loop_timer_cancel(lsn.linger);
	lsn.linger = NULL;
	if (lsn.httpd)
		return 0;
	lsn.httpd = httpd_new(l, "127.0.0.1", port, request_cb, NULL, &err);
	if (!lsn.httpd) {
		snprintf(why, whylen, "cannot listen for the OAuth callback on 127.0.0.1:%u: %s",
			 port, strerror(-err));
		return err;
	}
	lsn.loop = l;
	lsn.fn = fn;
	lsn.arg = arg;
	return 0;
}

uint16_t oauth_callback_port(void) { return lsn.httpd ? httpd_port(lsn.httpd) : 0; }

/* Never from inside the listener's own callback, hence the timer. */
static void linger_cb(struct loop_timer *t, void *arg)
{
	(void)t, (void)arg;
	lsn.linger = NULL;
	lsn.httpd = httpd_free(lsn.httpd);
}

void oauth_callback_idle(void)
{
	if (lsn.httpd && !lsn.linger)
		lsn.linger = loop_timer_add(lsn.loop, OAUTH_CALLBACK_LINGER_MS, linger_cb, NULL);
}

void oauth_callback_shutdown(void)
{
	loop_timer_cancel(lsn.linger);
	lsn.linger = NULL;
	lsn.httpd = httpd_free(lsn.httpd);
}
