/* oauth_login.c - see oauth_login.h.
 *
 * A login moves through discovery (resource metadata, then authorization
 * server metadata), the client (configured or registered), the wait for
 * the browser's callback, and the code exchange:
 *
 *   P_RESOURCE -> P_ISSUER -> [P_REGISTER] -> P_WAIT -> P_EXCHANGE -> end
 *
 * Until P_WAIT the caller's answer callback has not run: a failure there
 * is its error. From P_WAIT on the outcome is the completion notification
 * (notify.h) to the login's owner. Every HTTP exchange is one struct
 * oauth_fetch (oauth.h).
 */
#include "oauth_login.h"

#include <errno.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "loop.h"
#include "notify.h"
#include "oauth.h"
#include "oauth_callback.h"
#include "oauth_store.h"
#include "pkce.h"
#include "secret.h"
#include "urlutil.h"
#include "util.h"

#define ID_BYTES 16    /* random bytes behind a login id and a state */
#define ID_CHARS (PKCE_B64URL_SIZE(ID_BYTES) - 1) /* their base64url form */

enum phase { P_RESOURCE, P_ISSUER, P_REGISTER, P_WAIT, P_EXCHANGE };

struct oauth_login {
	struct oauth_login *next;
	char id[ID_CHARS + 1];
	char state[ID_CHARS + 1];
	struct pkce pkce;
	enum phase phase;
	char *server, *url, *thread_id, *plugin_id;
	json_t *cfg;
	oauth_login_answer_cb answer; /* until it ran */
	void *answer_arg;
	uint64_t owner;           /* who gets the completion */
	char **cands;             /* discovery URLs being tried */
	size_t cand;
	char *issuer, *authz_endpoint, *token_endpoint, *registration_endpoint;
	char *client_id, *redirect_uri, *scope, *resource;
	struct secret *client_secret;
	bool dcr_forced, dcr_allowed;
	uint64_t timeout_ms;
	struct oauth_fetch *fetch;
	struct loop_timer *timer;
};

static struct {
	struct loop *loop;
	struct oauth_login *list;
	unsigned n;
} logins;

static void login_fail(struct oauth_login *lg, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void oauth_login_init(struct loop *l) { logins.loop = l; }

static void login_free(struct oauth_login *lg)
{
	for (struct oauth_login **pp = &logins.list; *pp; pp = &(*pp)->next) {
		if (*pp == lg) {
			*pp = lg->next;
			logins.n--;
			break;
		}
	}
	oauth_fetch_free(lg->fetch);
	loop_timer_cancel(lg->timer);
	if (lg->answer)
		lg->answer(-ECANCELED, NULL, NULL, "the login was abandoned", lg->answer_arg);
	strv_free(lg->cands);
	secret_free(lg->client_secret);
	sodium_memzero(&lg->pkce, sizeof(lg->pkce));
	sodium_memzero(lg->state, sizeof(lg->state));
	free(lg->server);
	free(lg->url);
	free(lg->thread_id);
	free(lg->plugin_id);
	json_decref(lg->cfg);
	free(lg->issuer);
	free(lg->authz_endpoint);
	free(lg->token_endpoint);
	free(lg->registration_endpoint);
	free(lg->client_id);
	free(lg->redirect_uri);
	free(lg->scope);
	free(lg->resource);
	free(lg);
	if (!logins.list)
		oauth_callback_idle();
}

static void login_end(struct oauth_login *lg, bool ok, const char *error)
{
	notify_owner(lg->owner, NOTIFY_MCP_OAUTH_LOGIN_COMPLETED,
		     json_pack("{s:s, s:s?, s:s, s:b, s:s?}", "name", lg->server, "threadId",
			       lg->thread_id, "loginId", lg->id, "success", ok, "error", error));
	log_info("MCP server '%s': OAuth login %s%s%s", lg->server, ok ? "completed" : "failed",
		 error ? ": " : "", error ? error : "");
	login_free(lg);
}

static void login_fail(struct oauth_login *lg, const char *fmt, ...)
{
	char why[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (lg->answer) {
		oauth_login_answer_cb answer = TAKE_PTR(lg->answer);

		answer(-EINVAL, NULL, NULL, why, lg->answer_arg);
		login_free(lg);
		return;
	}
	login_end(lg, false, why);
}

static void timeout_cb(struct loop_timer *t, void *arg)
{
	struct oauth_login *lg = arg;

	(void)t;
	lg->timer = NULL;
	login_fail(lg, "timed out after %llu s waiting for the authorization callback",
		   (unsigned long long)(lg->timeout_ms / 1000));
}

static void answer_with_url(struct oauth_login *lg)
{
	char *q, *url;
	const char *kv[] = { "response_type", "code", "client_id", lg->client_id, "redirect_uri",
			     lg->redirect_uri, "state", lg->state, "code_challenge",
			     lg->pkce.challenge, "code_challenge_method", "S256", "scope", lg->scope,
			     "resource", lg->resource, NULL };
	oauth_login_answer_cb answer = lg->answer;

	q = url_form(kv);
	url = q ? url_append_query(lg->authz_endpoint, q) : NULL;
	free(q);
	if (!url) {
		login_fail(lg, "cannot build the authorization URL");
		return;
	}
	lg->phase = P_WAIT;
	lg->answer = NULL;
	answer(0, lg->id, url, NULL, lg->answer_arg);
	free(url);
	lg->timer = loop_timer_add(logins.loop, lg->timeout_ms, timeout_cb, lg);
}

static void fetch_next(struct oauth_login *lg);

static void register_cb(void *owner, long status, json_t *doc, const char *err)
{
	struct oauth_login *lg = owner;
	const char *cid = oauth_doc_str(doc, "client_id");
	const char *sec = oauth_doc_str(doc, "client_secret");

	oauth_fetch_free(lg->fetch);
	lg->fetch = NULL;
	if (err) {
		login_fail(lg, "client registration failed: %s", err);
		return;
	}
	if (status < 200 || status > 299 || !cid || !*cid) {
		login_fail(lg, "client registration failed: HTTP %ld%s%.200s", status,
			   oauth_doc_str(doc, "error") ? ": " : "",
			   oauth_doc_str(doc, "error") ? oauth_doc_str(doc, "error") : "");
		return;
	}
	lg->client_id = xstrdup(cid);
	if (sec && *sec && secret_from_buf(sec, strlen(sec), &lg->client_secret) < 0) {
		login_fail(lg, "the registered client secret is too long");
		return;
	}
	answer_with_url(lg);
}

static void choose_client(struct oauth_login *lg)
{
	const char *configured = json_string_value(json_object_get(lg->cfg, "oauth_client_id"));
	char why[512];
	json_t *req;
	char *body;

	if (configured && !lg->dcr_forced) {
		lg->client_id = xstrdup(configured);
		answer_with_url(lg);
		return;
	}
	if (!lg->registration_endpoint || !lg->dcr_allowed) {
		login_fail(lg, "no oauth client_id is configured for this server and the "
			       "authorization server offers no dynamic client registration");
		return;
	}
	lg->phase = P_REGISTER;
	req = json_pack("{s:s, s:[s], s:[s,s], s:[s], s:s}", "client_name", "tandem",
			"redirect_uris", lg->redirect_uri, "grant_types", "authorization_code",
			"refresh_token", "response_types", "code", "token_endpoint_auth_method",
			"none");
	if (lg->scope)
		json_object_set_new(req, "scope", json_string(lg->scope));
	body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	lg->fetch = oauth_fetch_start(lg->cfg, lg->plugin_id, "POST", lg->registration_endpoint, body,
				false, register_cb, lg, why, sizeof(why));
	free(body);
	if (!lg->fetch)
		login_fail(lg, "%s", why);
}

static bool supports_s256(json_t *doc)
{
	json_t *m = json_object_get(doc, "code_challenge_methods_supported"), *v;
	size_t i;

	if (!m)
		return true; /* not advertised: PKCE is mandatory in OAuth 2.1 anyway */
	json_array_foreach(m, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), "S256") == 0)
			return true;
	return false;
}

static void issuer_cb(void *owner, long status, json_t *doc, const char *err)
{
	struct oauth_login *lg = owner;
	const char *from = lg->cands[lg->cand];
	const char *iss = oauth_doc_str(doc, "issuer");
	const char *az = oauth_doc_str(doc, "authorization_endpoint");
	const char *tok = oauth_doc_str(doc, "token_endpoint");
	const char *reg = oauth_doc_str(doc, "registration_endpoint");

	oauth_fetch_free(lg->fetch);
	lg->fetch = NULL;
	if (err || status < 200 || status > 299 || !json_is_object(doc)) {
		lg->cand++;
		fetch_next(lg);
		return;
	}
	if (!iss || !url_issuer_matches(iss, from)) {
		login_fail(lg, "authorization server metadata at %.200s names issuer '%.200s', which "
			       "does not match where it was fetched (RFC 8414 section 3.3)",
			   from, iss ? iss : "(none)");
		return;
	}
	if (!oauth_http_url(az) || !oauth_http_url(tok)) {
		login_fail(lg, "authorization server metadata at %.200s lacks a valid "
			       "authorization_endpoint or token_endpoint", from);
		return;
	}
	if (!supports_s256(doc)) {
		login_fail(lg, "the authorization server does not support PKCE S256");
		return;
	}
	lg->authz_endpoint = xstrdup(az);
	lg->token_endpoint = xstrdup(tok);
	lg->registration_endpoint = oauth_http_url(reg) ? xstrdup(reg) : NULL;
	choose_client(lg);
}

static void start_issuer(struct oauth_login *lg)
{
	strv_free(lg->cands);
	lg->cands = url_as_metadata_candidates(lg->issuer, NULL);
	lg->cand = 0;
	lg->phase = P_ISSUER;
	if (!lg->cands) {
		login_fail(lg, "invalid authorization server URL");
		return;
	}
	fetch_next(lg);
}

static void resource_cb(void *owner, long status, json_t *doc, const char *err)
{
	struct oauth_login *lg = owner;
	json_t *as = json_object_get(doc, "authorization_servers");
	const char *first = json_string_value(json_array_get(as, 0));
	const char *res = oauth_doc_str(doc, "resource");

	oauth_fetch_free(lg->fetch);
	lg->fetch = NULL;
	if (err || status < 200 || status > 299 || !oauth_http_url(first)) {
		lg->cand++;
		fetch_next(lg);
		return;
	}
	lg->issuer = xstrdup(first);
	if (!lg->resource && res && oauth_http_url(res))
		lg->resource = xstrdup(res);
	if (!lg->scope) /* only when the caller and the config named none */
		lg->scope = oauth_join_scopes(json_object_get(doc, "scopes_supported"));
	start_issuer(lg);
}

/* Tries discovery URL lg->cands[lg->cand]; past the last one, the phase's
 * fallback. */
static void fetch_next(struct oauth_login *lg)
{
	char why[512];

	if (!lg->cands[lg->cand]) {
		if (lg->phase == P_RESOURCE) {
			/* No resource metadata: servers of the 2025-03-26 spec
			 * have their authorization server at their origin. */
			char *origin = NULL, *path = NULL;

			if (url_split(lg->url, &origin, &path) < 0) {
				login_fail(lg, "invalid server URL");
				return;
			}
			free(path);
			lg->issuer = origin;
			start_issuer(lg);
			return;
		}
		login_fail(lg, "no authorization server metadata found for %.200s", lg->issuer);
		return;
	}
	lg->fetch = oauth_fetch_start(lg->cfg, lg->plugin_id, "GET", lg->cands[lg->cand], NULL, false,
				lg->phase == P_RESOURCE ? resource_cb : issuer_cb, lg, why,
				sizeof(why));
	if (!lg->fetch)
		login_fail(lg, "%s", why);
}


/* ---- the code exchange ------------------------------------------------- */

static void exchange_cb(void *owner, long status, json_t *doc, const char *err)
{
	struct oauth_login *lg = owner;
	struct oauth_grant g = { .token_endpoint = lg->token_endpoint,
				 .client_id = lg->client_id,
				 .resource = lg->resource,
				 .plugin_id = lg->plugin_id,
				 .cfg = lg->cfg };
	char why[256];

	oauth_fetch_free(lg->fetch);
	lg->fetch = NULL;
	if (err) {
		login_fail(lg, "token request failed: %s", err);
		return;
	}
	if (status < 200 || status > 299) {
		login_fail(lg, "the token endpoint refused the code: HTTP %ld%s%.100s%s%.200s", status,
			   oauth_doc_str(doc, "error") ? ": " : "",
			   oauth_doc_str(doc, "error") ? oauth_doc_str(doc, "error") : "",
			   oauth_doc_str(doc, "error_description") ? ": " : "",
			   oauth_doc_str(doc, "error_description")
				   ? oauth_doc_str(doc, "error_description")
				   : "");
		return;
	}
	if (oauth_store_put(lg->server, lg->url, doc, &g, &lg->client_secret, why, sizeof(why)) <
	    0) {
		login_fail(lg, "%s", why);
		return;
	}
	login_end(lg, true, NULL);
}

static void exchange(struct oauth_login *lg, const char *code)
{
	char why[512];
	char *body;
	const char *kv[] = { "grant_type", "authorization_code", "code", code, "code_verifier",
			     lg->pkce.verifier, "redirect_uri", lg->redirect_uri, "client_id",
			     lg->client_id, "client_secret",
			     lg->client_secret ? secret_data(lg->client_secret) : NULL, "resource",
			     lg->resource, NULL };

	body = url_form(kv);
	if (!body) {
		login_fail(lg, "cannot build the token request");
		return;
	}
	lg->phase = P_EXCHANGE;
	lg->fetch = oauth_fetch_start(lg->cfg, lg->plugin_id, "POST", lg->token_endpoint, body, true,
				exchange_cb, lg, why, sizeof(why));
	secure_wipe(body, strlen(body));
	free(body);
	if (!lg->fetch)
		login_fail(lg, "%s", why);
}


/* ---- the callback ------------------------------------------------------ */

static struct oauth_login *login_for(const struct oauth_callback *cb)
{
	for (struct oauth_login *lg = logins.list; lg; lg = lg->next) {
		if (cb->login_id && strcmp(lg->id, cb->login_id) == 0)
			return lg;
		/* A configured callback URL has no id in its path: the state
		 * names the login. */
		if (!cb->login_id && cb->state && strlen(cb->state) == ID_CHARS &&
		    sodium_memcmp(cb->state, lg->state, ID_CHARS) == 0)
			return lg;
	}
	return NULL;
}

static void callback_cb(const struct oauth_callback *cb, struct oauth_callback_answer *ans,
			void *arg)
{
	struct oauth_login *lg = login_for(cb);

	(void)arg;
	if (!lg || lg->phase < P_WAIT) {
		*ans = (struct oauth_callback_answer){ 404, "No login is waiting for this callback." };
		return;
	}
	/* A wrong state is someone else's request (or a forged one): refused,
	 * and the real callback can still complete the login. */
	if (!cb->state || strlen(cb->state) != ID_CHARS ||
	    sodium_memcmp(cb->state, lg->state, ID_CHARS) != 0) {
		log_warn("MCP server '%s': OAuth callback with a wrong state refused", lg->server);
		*ans = (struct oauth_callback_answer){
			400, "Invalid state: this callback does not belong to the login." };
		return;
	}
	if (lg->phase != P_WAIT) {
		*ans = (struct oauth_callback_answer){ 409, "This login is already being completed." };
		return;
	}
	if (cb->error || !cb->code || !*cb->code) {
		*ans = (struct oauth_callback_answer){
			400, "The authorization server did not grant access." };
		login_fail(lg, "authorization denied: %.100s%s%.200s",
			   cb->error ? cb->error : "no code", cb->error_description ? ": " : "",
			   cb->error_description ? cb->error_description : "");
		return;
	}
	*ans = (struct oauth_callback_answer){
		200, "Login complete: you can close this window and return to tandem." };
	exchange(lg, cb->code);
}

/* ---- starting ---------------------------------------------------------- */

/* Refuses what cannot be logged into: -EINVAL with a reason. */
static int check_server(const struct oauth_login_spec *spec, const char **url, char *err,
			size_t errlen)
{
	const char *transport = json_string_value(json_object_get(spec->cfg, "transport"));

	*url = json_string_value(json_object_get(spec->cfg, "url"));
	if (!transport || strcmp(transport, "http") != 0 || !*url) {
		snprintf(err, errlen, "MCP server '%s' is not an HTTP server: OAuth does not apply",
			 spec->server);
		return -EINVAL;
	}
	if (json_object_get(spec->cfg, "hosted_auth") ||
	    json_object_get(spec->cfg, "bearer_token_env_var")) {
		snprintf(err, errlen, "MCP server '%s' authenticates with a bearer token, not OAuth",
			 spec->server);
		return -EINVAL;
	}
	if (logins.n >= OAUTH_MAX_LOGINS) {
		snprintf(err, errlen, "too many OAuth logins in progress (%u)", OAUTH_MAX_LOGINS);
		return -EMFILE;
	}
	return 0;
}

/* Discovery URLs: the server's own pointer (RFC 9728 section 5.1) first,
 * then the well-known ones built from its URL. NULL for an invalid URL. */
static char **discovery_candidates(const char *url, const char *www_authenticate)
{
	_cleanup_free_ char *hint = url_www_auth_param(www_authenticate, "resource_metadata");
	char **cands = url_resource_metadata_candidates(url, NULL), **all;
	size_t n = 0;

	if (!cands || !hint || !oauth_http_url(hint))
		return cands;
	while (cands[n])
		n++;
	all = xcalloc(n + 2, sizeof(*all));
	all[0] = TAKE_PTR(hint);
	memcpy(all + 1, cands, n * sizeof(*cands));
	free(cands);
	return all;
}

static struct oauth_login *login_new(const struct oauth_login_spec *spec, const char *url,
				     char **cands)
{
	const struct config *c = config_current();
	const char *cb_url = c ? c->oauth_callback_url : NULL;
	const char *res = json_string_value(json_object_get(spec->cfg, "oauth_resource"));
	struct oauth_login *lg = xcalloc(1, sizeof(*lg));

	pkce_random_token(lg->id, ID_BYTES);
	pkce_random_token(lg->state, ID_BYTES);
	pkce_new(&lg->pkce);
	lg->server = xstrdup(spec->server);
	lg->url = xstrdup(url);
	lg->thread_id = spec->thread_id ? xstrdup(spec->thread_id) : NULL;
	lg->plugin_id = spec->plugin_id ? xstrdup(spec->plugin_id) : NULL;
	lg->cfg = json_incref(spec->cfg);
	lg->scope = oauth_join_scopes(json_array_size(spec->scopes)
					      ? spec->scopes
					      : json_object_get(spec->cfg, "scopes"));
	lg->resource = res ? xstrdup(res) : NULL;
	lg->dcr_forced = spec->dcr;
	lg->dcr_allowed = true;
	lg->timeout_ms = spec->timeout_ms ? spec->timeout_ms : OAUTH_DEFAULT_TIMEOUT_MS;
	lg->owner = spec->owner;
	lg->redirect_uri = cb_url ? xstrdup(cb_url)
				  : xasprintf("http://127.0.0.1:%u" OAUTH_CALLBACK_PREFIX "%s",
					      oauth_callback_port(), lg->id);
	lg->cands = cands;
	lg->phase = P_RESOURCE;
	return lg;
}

static void begin_cb(struct loop_timer *t, void *arg)
{
	struct oauth_login *lg = arg;

	(void)t;
	lg->timer = NULL;
	fetch_next(lg);
}

int oauth_login_start(const struct oauth_login_spec *spec, oauth_login_answer_cb answer,
		      void *arg, struct oauth_login **out, char *err, size_t errlen)
{
	const struct config *c = config_current();
	const char *url;
	struct oauth_login *lg;
	char **cands;
	int r;

	if ((r = check_server(spec, &url, err, errlen)) < 0)
		return r;
	r = oauth_callback_listen(logins.loop, c ? c->oauth_callback_port : 0, callback_cb, NULL,
				  err, errlen);
	if (r < 0)
		return r == -EINVAL ? -EIO : r; /* -EINVAL means the caller's mistake */
	cands = discovery_candidates(url, spec->www_authenticate);
	if (!cands) {
		snprintf(err, errlen, "MCP server '%s': invalid url", spec->server);
		oauth_callback_idle();
		return -EINVAL;
	}
	lg = login_new(spec, url, cands);
	lg->answer = answer;
	lg->answer_arg = arg;
	lg->next = logins.list;
	logins.list = lg;
	logins.n++;
	log_info("MCP server '%s': OAuth login %s started", spec->server, lg->id);
	/* Discovery starts from the loop: the answer never runs inside this
	 * call, whatever happens. */
	lg->timer = loop_timer_add(logins.loop, 0, begin_cb, lg);
	*out = lg;
	return 0;
}

void oauth_login_abandon(struct oauth_login *lg)
{
	lg->answer = NULL;
	login_free(lg);
}

void oauth_login_shutdown(void)
{
	while (logins.list)
		login_free(logins.list);
	oauth_callback_shutdown();
}
