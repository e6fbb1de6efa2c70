/* oauth.c - see oauth.h.
 *
 * A login moves through discovery (resource metadata, then authorization
 * server metadata), the client (configured or registered), the wait for
 * the browser's callback, and the code exchange:
 *
 *   P_RESOURCE -> P_ISSUER -> [P_REGISTER] -> P_WAIT -> P_EXCHANGE -> end
 *
 * Until P_WAIT the client's request is still open: a failure there is its
 * JSON-RPC error. From P_WAIT on the outcome is the completion
 * notification. Every HTTP exchange is one struct fetch, routed like the
 * server's own requests (srv_http_route), its answer bounded by
 * OAUTH_MAX_DOC and parsed as JSON.
 *
 * Secrets: the verifier, state, code, tokens and client secret are never
 * logged or put in an error text; the token store keeps tokens in struct
 * secret (sodium guarded memory); transient copies are wiped.
 */
#include "oauth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "config.h"
#include "http.h"
#include "httpd.h"
#include "log.h"
#include "loop.h"
#include "orch.h"
#include "pkce.h"
#include "secret.h"
#include "srv.h"
#include "thread.h"
#include "urlutil.h"
#include "util.h"

#define ID_BYTES 16    /* random bytes behind a login id and a state */
#define ID_CHARS (PKCE_B64URL_SIZE(ID_BYTES) - 1) /* their base64url form */

typedef void (*fetch_cb)(void *owner, long status, json_t *doc, const char *err);

struct fetch {
	struct http_req *hr;
	char *buf;
	size_t len;
	fetch_cb cb;
	void *owner;
};

struct token {
	struct token *next;
	char *server, *url;
	struct secret *access, *refresh, *client_secret;
	uint64_t expires_at_ms; /* 0: no expiry given */
	char *token_endpoint, *client_id, *resource;
	json_t *cfg; /* where the refresh goes out */
	char *plugin_id;
	struct fetch *refreshing; /* only one refresh at a time */
};

enum phase { P_RESOURCE, P_ISSUER, P_REGISTER, P_WAIT, P_EXCHANGE };

struct login {
	struct login *next;
	char id[ID_CHARS + 1];
	char state[ID_CHARS + 1];
	struct pkce pkce;
	enum phase phase;
	char *server, *url, *thread_id, *plugin_id;
	json_t *cfg;
	struct req *rq;           /* the login request, until it is answered */
	struct session *sess;     /* who gets the completion */
	char **cands;             /* discovery URLs being tried */
	size_t cand;
	char *issuer, *authz_endpoint, *token_endpoint, *registration_endpoint;
	char *client_id, *redirect_uri, *scope, *resource;
	struct secret *client_secret;
	bool dcr_forced, dcr_allowed;
	uint64_t timeout_ms;
	struct fetch *fetch;
	struct loop_timer *timer;
};

static struct login *logins;
static unsigned n_logins;
static struct token *tokens;
static struct httpd *listener;
static struct loop_timer *listener_linger;

#define LISTENER_LINGER_MS 5000u /* lets the last answer page reach the browser */

static void login_fail(struct login *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void store_save(void);

/* ---- fetch ------------------------------------------------------------- */

static void fetch_data_cb(struct http_req *r, const char *data, size_t len, void *arg)
{
	struct fetch *f = arg;

	(void)r;
	f->buf = xrealloc(f->buf, f->len + len + 1);
	memcpy(f->buf + f->len, data, len);
	f->len += len;
	f->buf[f->len] = '\0';
}

static void fetch_free(struct fetch *f)
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
	struct fetch *f = arg;
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

/* Starts an exchange for the server (cfg, plugin_id). body is a form
 * (form = true) or JSON. NULL with a reason on failure. */
static struct fetch *fetch_start(json_t *cfg, const char *plugin_id, const char *method,
				 const char *url, const char *body, bool form, fetch_cb cb,
				 void *owner, char *why, size_t whylen)
{
	static const struct http_cbs cbs = { NULL, fetch_data_cb, fetch_done_cb };
	const char *hdrs[3] = { "Accept: application/json", NULL, NULL };
	struct env *env;
	struct http *h = srv_http_route(cfg, plugin_id, &env, why, whylen);
	struct http_opts o = { 0 };
	struct fetch *f;

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

static const char *doc_str(json_t *doc, const char *key)
{
	return json_string_value(json_object_get(doc, key));
}

/* A JSON array of scope strings -> "a b c" (at most OAUTH_MAX_SCOPES of
 * them), NULL when there is none. */
static char *join_scopes(json_t *arr)
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

static bool http_url(const char *u)
{
	return u && (strncasecmp(u, "https://", 8) == 0 || strncasecmp(u, "http://", 7) == 0) &&
	       strlen(u) < URL_MAX_LEN;
}

/* ---- token store ------------------------------------------------------- */

static struct token *token_find(const char *server, const char *url)
{
	for (struct token *t = tokens; t; t = t->next)
		if (strcmp(t->server, server) == 0 && url && strcmp(t->url, url) == 0)
			return t;
	return NULL;
}

static void token_free(struct token *t)
{
	fetch_free(t->refreshing);
	secret_free(t->access);
	secret_free(t->refresh);
	secret_free(t->client_secret);
	free(t->server);
	free(t->url);
	free(t->token_endpoint);
	free(t->client_id);
	free(t->resource);
	free(t->plugin_id);
	json_decref(t->cfg);
	free(t);
}

static void token_remove(struct token *t)
{
	for (struct token **pp = &tokens; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	token_free(t);
}

/* Takes a token answer into t. false with a reason when it is not one. */
static bool token_take(struct token *t, json_t *doc, char *why, size_t whylen)
{
	const char *at = doc_str(doc, "access_token"), *rt = doc_str(doc, "refresh_token");
	const char *type = doc_str(doc, "token_type");
	json_t *exp = json_object_get(doc, "expires_in");
	struct secret *a = NULL, *r = NULL;

	if (!at || !*at) {
		snprintf(why, whylen, "the token endpoint's answer has no access_token");
		return false;
	}
	if (type && strcasecmp(type, "bearer") != 0) {
		snprintf(why, whylen, "unsupported token_type '%.32s' (only Bearer)", type);
		return false;
	}
	for (const char *c = at; *c; c++) {
		if (*c <= ' ' || *c > '~') {
			snprintf(why, whylen, "the access token holds characters a header cannot carry");
			return false;
		}
	}
	if (secret_from_buf(at, strlen(at), &a) < 0 ||
	    (rt && *rt && secret_from_buf(rt, strlen(rt), &r) < 0)) {
		secret_free(a);
		snprintf(why, whylen, "the token is longer than %u bytes", SECRET_MAX);
		return false;
	}
	secret_free(t->access);
	t->access = a;
	if (r) { /* a rotated refresh token replaces the old one */
		secret_free(t->refresh);
		t->refresh = r;
	}
	t->expires_at_ms = 0;
	if (json_is_integer(exp) && json_integer_value(exp) > 0)
		t->expires_at_ms = now_ms() + (uint64_t)MIN(json_integer_value(exp),
							   (json_int_t)10 * 365 * 86400) * 1000u;
	return true;
}

static void refresh_cb(void *owner, long status, json_t *doc, const char *err)
{
	struct token *t = owner;
	char why[256];

	fetch_free(t->refreshing);
	t->refreshing = NULL;
	if (err || status < 200 || status > 299) {
		/* invalid_grant: the refresh token is dead; a new login is
		 * needed. Anything else (network): try again on next use. */
		log_warn("MCP server '%s': token refresh failed: %s", t->server,
			 err ? err : doc_str(doc, "error") ? doc_str(doc, "error") : "HTTP error");
		if (!err && status == 400 && doc_str(doc, "error") &&
		    strcmp(doc_str(doc, "error"), "invalid_grant") == 0) {
			char *name = xstrdup(t->server);

			token_remove(t);
			store_save();
			srv_auth_changed(name);
			free(name);
		}
		return;
	}
	if (!token_take(t, doc, why, sizeof(why))) {
		log_warn("MCP server '%s': token refresh: %s", t->server, why);
		return;
	}
	log_info("MCP server '%s': access token refreshed", t->server);
	store_save();
}

static void refresh_start(struct token *t)
{
	char why[256];
	char *body;
	const char *kv[] = { "grant_type", "refresh_token", "refresh_token", secret_data(t->refresh),
			     "client_id", t->client_id, "client_secret",
			     t->client_secret ? secret_data(t->client_secret) : NULL,
			     "resource", t->resource, NULL };

	body = url_form(kv);
	if (!body)
		return;
	t->refreshing = fetch_start(t->cfg, t->plugin_id, "POST", t->token_endpoint, body, true,
				    refresh_cb, t, why, sizeof(why));
	secure_wipe(body, strlen(body));
	free(body);
	if (!t->refreshing)
		log_warn("MCP server '%s': cannot refresh the token: %s", t->server, why);
}

size_t oauth_auth_headers(const char *server, const char *url, char *hdrs[])
{
	struct token *t = token_find(server, url);

	if (!t || !t->access)
		return 0;
	if (t->expires_at_ms && t->refresh && !t->refreshing &&
	    now_ms() + OAUTH_REFRESH_MARGIN_MS >= t->expires_at_ms)
		refresh_start(t);
	hdrs[0] = xasprintf("Authorization: Bearer %s", secret_data(t->access));
	return 1;
}

bool oauth_logged_in(const char *server, const char *url)
{
	return token_find(server, url) != NULL;
}

/* ---- the encrypted store (optional) -------------------------------------
 *
 * Only with mcp_oauth_credentials_store = "file" and a 32-byte key in
 * $TANDEM_OAUTH_STORE_KEY (64 hex digits): <home>/OAUTH_STORE_FILE holds
 * OAUTH_STORE_MAGIC, a random nonce, then crypto_secretbox of a JSON array
 * of the tokens. "file" without a usable key persists nothing (never
 * plaintext). The key is taken out of the environment at start-up so that
 * no child process inherits it. A store that does not open (wrong key,
 * damaged) is left untouched and persistence stays off for this run. */

static struct secret *store_key; /* NULL: tokens live in memory only */
static char *store_path;

static json_t *token_json(const struct token *t)
{
	int64_t left = t->expires_at_ms ? (int64_t)t->expires_at_ms - (int64_t)now_ms() : 0;
	json_t *o = json_pack("{s:s, s:s, s:s, s:s?, s:s, s:s, s:s?, s:s?, s:O?, s:I}", "server",
			      t->server, "url", t->url, "access", secret_data(t->access),
			      "refresh", t->refresh ? secret_data(t->refresh) : NULL,
			      "token_endpoint", t->token_endpoint, "client_id", t->client_id,
			      "client_secret", t->client_secret ? secret_data(t->client_secret) : NULL,
			      "resource", t->resource, "cfg", t->cfg, "expires_at_unix_ms",
			      t->expires_at_ms ? (json_int_t)(time(NULL) * 1000LL + left) : 0);

	if (o && t->plugin_id)
		json_object_set_new(o, "plugin_id", json_string(t->plugin_id));
	return o;
}

/* The JSON copies of the credentials live in the ordinary heap: wiped
 * before jansson frees them. */
static void wipe_json_secrets(json_t *arr)
{
	static const char *const keys[] = { "access", "refresh", "client_secret" };
	json_t *o;
	size_t i;

	json_array_foreach(arr, i, o)
		for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
			json_t *v = json_object_get(o, keys[k]);

			if (json_is_string(v))
				secure_wipe((char *)json_string_value(v), json_string_length(v));
		}
}

static void store_save(void)
{
	json_t *arr;
	char *plain, *tmp;
	size_t plen, mlen = sizeof(OAUTH_STORE_MAGIC) - 1;
	uint8_t *out;
	size_t olen;
	int fd;

	if (!store_key)
		return;
	arr = json_array();
	for (struct token *t = tokens; t; t = t->next)
		if (t->access && t->token_endpoint && t->client_id)
			json_array_append_new(arr, token_json(t));
	plain = json_dumps(arr, JSON_COMPACT);
	wipe_json_secrets(arr);
	json_decref(arr);
	if (!plain)
		return;
	plen = strlen(plain);
	olen = mlen + crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + plen;
	out = xmalloc(olen);
	memcpy(out, OAUTH_STORE_MAGIC, mlen);
	randombytes_buf(out + mlen, crypto_secretbox_NONCEBYTES);
	crypto_secretbox_easy(out + mlen + crypto_secretbox_NONCEBYTES, (const uint8_t *)plain,
			      plen, out + mlen, secret_key(store_key));
	secure_wipe(plain, plen);
	free(plain);
	tmp = xasprintf("%s.tmp", store_path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || write_all(fd, out, olen) < 0 || fsync(fd) < 0 || rename(tmp, store_path) < 0) {
		log_error("cannot write the OAuth token store %s: %s", store_path, strerror(errno));
		unlink(tmp);
	}
	safe_close(fd);
	free(tmp);
	free(out);
}

static void store_take(json_t *o)
{
	const char *server = doc_str(o, "server"), *url = doc_str(o, "url");
	const char *at = doc_str(o, "access"), *rt = doc_str(o, "refresh");
	const char *cs = doc_str(o, "client_secret");
	json_int_t exp = json_integer_value(json_object_get(o, "expires_at_unix_ms"));
	struct token *t;

	if (!server || !url || !at || !doc_str(o, "token_endpoint") || !doc_str(o, "client_id") ||
	    token_find(server, url))
		return;
	t = xcalloc(1, sizeof(*t));
	t->server = xstrdup(server);
	t->url = xstrdup(url);
	if (secret_from_buf(at, strlen(at), &t->access) < 0 ||
	    (rt && secret_from_buf(rt, strlen(rt), &t->refresh) < 0) ||
	    (cs && secret_from_buf(cs, strlen(cs), &t->client_secret) < 0)) {
		token_free(t);
		return;
	}
	t->token_endpoint = xstrdup(doc_str(o, "token_endpoint"));
	t->client_id = xstrdup(doc_str(o, "client_id"));
	t->resource = doc_str(o, "resource") ? xstrdup(doc_str(o, "resource")) : NULL;
	t->plugin_id = doc_str(o, "plugin_id") ? xstrdup(doc_str(o, "plugin_id")) : NULL;
	t->cfg = json_incref(json_object_get(o, "cfg"));
	if (exp > 0) {
		int64_t left = (int64_t)exp - (int64_t)time(NULL) * 1000;

		/* Already expired: 1 ms left, so the first use refreshes. */
		t->expires_at_ms = now_ms() + (uint64_t)MAX(left, (int64_t)1);
	}
	t->next = tokens;
	tokens = t;
}

static void store_load(void)
{
	size_t mlen = sizeof(OAUTH_STORE_MAGIC) - 1, hdr = mlen + crypto_secretbox_NONCEBYTES;
	_cleanup_close_ int fd = open(store_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	uint8_t *buf = NULL, *plain = NULL;
	size_t len = 0, plen;
	json_t *arr, *o;
	size_t i;

	if (fd < 0) {
		if (errno != ENOENT)
			goto off;
		return; /* nothing stored yet */
	}
	if (fstat(fd, &st) < 0 || st.st_size < (off_t)(hdr + crypto_secretbox_MACBYTES) ||
	    st.st_size > (off_t)OAUTH_STORE_MAX)
		goto off;
	len = (size_t)st.st_size;
	buf = xmalloc(len);
	if (read(fd, buf, len) != (ssize_t)len || memcmp(buf, OAUTH_STORE_MAGIC, mlen) != 0)
		goto off;
	plen = len - hdr - crypto_secretbox_MACBYTES;
	plain = xmalloc(plen + 1);
	if (crypto_secretbox_open_easy(plain, buf + hdr, len - hdr, buf + mlen,
				       secret_key(store_key)) != 0)
		goto off;
	arr = json_loadb((const char *)plain, plen, 0, NULL);
	json_array_foreach(arr, i, o)
		store_take(o);
	log_info("OAuth token store %s: %zu login(s) loaded", store_path, json_array_size(arr));
	wipe_json_secrets(arr);
	json_decref(arr);
	secure_wipe(plain, plen);
	free(plain);
	free(buf);
	return;
off:
	log_error("OAuth token store %s cannot be read or opened (wrong key or damaged); left "
		  "untouched, logins of this run are not persisted", store_path);
	store_key = secret_free(store_key);
	if (plain)
		secure_wipe(plain, plen);
	free(plain);
	free(buf);
}

void oauth_init(void)
{
	const char *mode = orch->config ? orch->config->oauth_store : NULL;
	const char *hex = getenv(OAUTH_STORE_KEY_ENV);
	uint8_t key[crypto_secretbox_KEYBYTES];
	size_t n = 0;

	if (sodium_init() < 0)
		log_error("libsodium failed to initialize"); /* pkce and the store need it */
	if (hex) {
		/* Children (executors) never inherit it. */
		char *copy = xstrdup(hex);

		secure_wipe((char *)hex, strlen(hex));
		unsetenv(OAUTH_STORE_KEY_ENV);
		hex = copy;
	}
	if (!mode || strcmp(mode, "file") != 0) {
		if (hex)
			secure_wipe((char *)hex, strlen(hex));
		free((char *)hex);
		return;
	}
	if (!hex || sodium_hex2bin(key, sizeof(key), hex, strlen(hex), NULL, &n, NULL) != 0 ||
	    n != sizeof(key) || hex[2 * n] != '\0') {
		log_error("mcp_oauth_credentials_store = \"file\" needs %s (64 hex digits): OAuth "
			  "tokens are kept in memory only", OAUTH_STORE_KEY_ENV);
	} else if (secret_from_buf(hex, strlen(hex), &store_key) == 0) {
		/* secret_key(): BLAKE2b-256 of the key text, the secretbox key. */
		store_path = xasprintf("%s/%s", orch->home, OAUTH_STORE_FILE);
		store_load();
	}
	sodium_memzero(key, sizeof(key));
	if (hex)
		secure_wipe((char *)hex, strlen(hex));
	free((char *)hex);
}

/* ---- logins ------------------------------------------------------------ */

/* Nothing to wait for: stop listening (never from inside the listener's
 * own callback, hence the timer). */
static void linger_cb(struct loop_timer *t, void *arg)
{
	(void)t, (void)arg;
	listener_linger = NULL;
	if (!logins)
		listener = httpd_free(listener);
}

static void login_free(struct login *lg)
{
	for (struct login **pp = &logins; *pp; pp = &(*pp)->next) {
		if (*pp == lg) {
			*pp = lg->next;
			n_logins--;
			break;
		}
	}
	fetch_free(lg->fetch);
	loop_timer_cancel(lg->timer);
	if (lg->rq) {
		lg->rq->cancel = NULL;
		req_error(lg->rq, RPC_INTERNAL_ERROR, "the login was abandoned");
	}
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
	if (!logins && listener && !listener_linger)
		listener_linger = loop_timer_add(orch->loop, LISTENER_LINGER_MS, linger_cb, NULL);
}

/* The end of a login whose request was answered: the notification. */
static void login_end(struct login *lg, bool ok, const char *error)
{
	if (lg->sess && lg->sess->initialized)
		client_notify(lg->sess->client, "mcpServer/oauthLogin/completed",
			      json_pack("{s:s, s:s?, s:s, s:b, s:s?}", "name", lg->server,
					"threadId", lg->thread_id, "loginId", lg->id, "success", ok,
					"error", error));
	log_info("MCP server '%s': OAuth login %s%s%s", lg->server, ok ? "completed" : "failed",
		 error ? ": " : "", error ? error : "");
	login_free(lg);
}

static void login_fail(struct login *lg, const char *fmt, ...)
{
	char why[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (lg->rq) {
		struct req *r = lg->rq;

		lg->rq = NULL;
		r->cancel = NULL;
		req_error(r, RPC_INVALID_PARAMS, "OAuth login for '%s' failed: %s", lg->server, why);
		login_free(lg);
		return;
	}
	login_end(lg, false, why);
}

static void timeout_cb(struct loop_timer *t, void *arg)
{
	struct login *lg = arg;

	(void)t;
	lg->timer = NULL;
	login_fail(lg, "timed out after %llu s waiting for the authorization callback",
		   (unsigned long long)(lg->timeout_ms / 1000));
}

static void answer_with_url(struct login *lg)
{
	char *q, *url;
	const char *kv[] = { "response_type", "code", "client_id", lg->client_id, "redirect_uri",
			     lg->redirect_uri, "state", lg->state, "code_challenge",
			     lg->pkce.challenge, "code_challenge_method", "S256", "scope", lg->scope,
			     "resource", lg->resource, NULL };
	struct req *r = lg->rq;

	q = url_form(kv);
	url = q ? url_append_query(lg->authz_endpoint, q) : NULL;
	free(q);
	if (!url) {
		login_fail(lg, "cannot build the authorization URL");
		return;
	}
	lg->phase = P_WAIT;
	lg->rq = NULL;
	r->cancel = NULL;
	lg->sess = r->sess;
	req_reply(r, json_pack("{s:s, s:s}", "authorizationUrl", url, "loginId", lg->id));
	free(url);
	lg->timer = loop_timer_add(orch->loop, lg->timeout_ms, timeout_cb, lg);
}

static void fetch_next(struct login *lg);

static void register_cb(void *owner, long status, json_t *doc, const char *err)
{
	struct login *lg = owner;
	const char *cid = doc_str(doc, "client_id"), *sec = doc_str(doc, "client_secret");

	fetch_free(lg->fetch);
	lg->fetch = NULL;
	if (err) {
		login_fail(lg, "client registration failed: %s", err);
		return;
	}
	if (status < 200 || status > 299 || !cid || !*cid) {
		login_fail(lg, "client registration failed: HTTP %ld%s%.200s", status,
			   doc_str(doc, "error") ? ": " : "",
			   doc_str(doc, "error") ? doc_str(doc, "error") : "");
		return;
	}
	lg->client_id = xstrdup(cid);
	if (sec && *sec && secret_from_buf(sec, strlen(sec), &lg->client_secret) < 0) {
		login_fail(lg, "the registered client secret is too long");
		return;
	}
	answer_with_url(lg);
}

static void choose_client(struct login *lg)
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
	lg->fetch = fetch_start(lg->cfg, lg->plugin_id, "POST", lg->registration_endpoint, body,
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
	struct login *lg = owner;
	const char *from = lg->cands[lg->cand];
	const char *iss = doc_str(doc, "issuer"), *az = doc_str(doc, "authorization_endpoint");
	const char *tok = doc_str(doc, "token_endpoint"), *reg = doc_str(doc, "registration_endpoint");

	fetch_free(lg->fetch);
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
	if (!http_url(az) || !http_url(tok)) {
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
	lg->registration_endpoint = http_url(reg) ? xstrdup(reg) : NULL;
	choose_client(lg);
}

static void start_issuer(struct login *lg)
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
	struct login *lg = owner;
	json_t *as = json_object_get(doc, "authorization_servers");
	const char *first = json_string_value(json_array_get(as, 0));
	const char *res = doc_str(doc, "resource");

	fetch_free(lg->fetch);
	lg->fetch = NULL;
	if (err || status < 200 || status > 299 || !http_url(first)) {
		lg->cand++;
		fetch_next(lg);
		return;
	}
	lg->issuer = xstrdup(first);
	if (!lg->resource && res && http_url(res))
		lg->resource = xstrdup(res);
	if (!lg->scope) /* only when the caller and the config named none */
		lg->scope = join_scopes(json_object_get(doc, "scopes_supported"));
	start_issuer(lg);
}

/* Tries discovery URL lg->cands[lg->cand]; past the last one, the phase's
 * fallback. */
static void fetch_next(struct login *lg)
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
	lg->fetch = fetch_start(lg->cfg, lg->plugin_id, "GET", lg->cands[lg->cand], NULL, false,
				lg->phase == P_RESOURCE ? resource_cb : issuer_cb, lg, why,
				sizeof(why));
	if (!lg->fetch)
		login_fail(lg, "%s", why);
}

/* ---- the callback ------------------------------------------------------ */

static void exchange_cb(void *owner, long status, json_t *doc, const char *err)
{
	struct login *lg = owner;
	struct token *t;
	char why[256];

	fetch_free(lg->fetch);
	lg->fetch = NULL;
	if (err) {
		login_fail(lg, "token request failed: %s", err);
		return;
	}
	if (status < 200 || status > 299) {
		login_fail(lg, "the token endpoint refused the code: HTTP %ld%s%.100s%s%.200s", status,
			   doc_str(doc, "error") ? ": " : "",
			   doc_str(doc, "error") ? doc_str(doc, "error") : "",
			   doc_str(doc, "error_description") ? ": " : "",
			   doc_str(doc, "error_description") ? doc_str(doc, "error_description") : "");
		return;
	}
	t = token_find(lg->server, lg->url);
	if (!t) {
		t = xcalloc(1, sizeof(*t));
		t->server = xstrdup(lg->server);
		t->url = xstrdup(lg->url);
		t->next = tokens;
		tokens = t;
	}
	if (!token_take(t, doc, why, sizeof(why))) {
		if (!t->access)
			token_remove(t);
		login_fail(lg, "%s", why);
		return;
	}
	free(t->token_endpoint);
	free(t->client_id);
	free(t->resource);
	free(t->plugin_id);
	json_decref(t->cfg);
	secret_free(t->client_secret);
	t->token_endpoint = xstrdup(lg->token_endpoint);
	t->client_id = xstrdup(lg->client_id);
	t->resource = lg->resource ? xstrdup(lg->resource) : NULL;
	t->plugin_id = lg->plugin_id ? xstrdup(lg->plugin_id) : NULL;
	t->cfg = json_incref(lg->cfg);
	t->client_secret = TAKE_PTR(lg->client_secret);
	store_save();
	srv_auth_changed(lg->server);
	login_end(lg, true, NULL);
}

static void exchange(struct login *lg, const char *code)
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
	lg->fetch = fetch_start(lg->cfg, lg->plugin_id, "POST", lg->token_endpoint, body, true,
				exchange_cb, lg, why, sizeof(why));
	secure_wipe(body, strlen(body));
	free(body);
	if (!lg->fetch)
		login_fail(lg, "%s", why);
}

static struct login *login_for(const char *path, const char *state)
{
	const char *id = strncmp(path, "/callback/", 10) == 0 ? path + 10 : NULL;

	for (struct login *lg = logins; lg; lg = lg->next) {
		if (id && strcmp(lg->id, id) == 0)
			return lg;
		/* A configured callback URL has no id in its path: the state
		 * names the login. */
		if (!id && state && strlen(state) == ID_CHARS &&
		    sodium_memcmp(state, lg->state, ID_CHARS) == 0)
			return lg;
	}
	return NULL;
}

static void reply(struct httpd_response *resp, int status, const char *text)
{
	resp->status = status;
	resp->body = xasprintf("%s\n", text);
}

static void callback_cb(const struct httpd_request *rq, struct httpd_response *resp, void *arg)
{
	_cleanup_free_ char *state = url_query_get(rq->query, "state");
	_cleanup_free_ char *code = url_query_get(rq->query, "code");
	_cleanup_free_ char *error = url_query_get(rq->query, "error");
	struct login *lg = login_for(rq->path, state);

	(void)arg;
	if (!lg || lg->phase < P_WAIT) {
		reply(resp, 404, "No login is waiting for this callback.");
		return;
	}
	/* A wrong state is someone else's request (or a forged one): refused,
	 * and the real callback can still complete the login. */
	if (!state || strlen(state) != ID_CHARS ||
	    sodium_memcmp(state, lg->state, ID_CHARS) != 0) {
		log_warn("MCP server '%s': OAuth callback with a wrong state refused", lg->server);
		reply(resp, 400, "Invalid state: this callback does not belong to the login.");
		goto wipe;
	}
	if (lg->phase != P_WAIT) {
		reply(resp, 409, "This login is already being completed.");
		goto wipe;
	}
	if (error || !code || !*code) {
		_cleanup_free_ char *desc = url_query_get(rq->query, "error_description");

		reply(resp, 400, "The authorization server did not grant access.");
		login_fail(lg, "authorization denied: %.100s%s%.200s", error ? error : "no code",
			   desc ? ": " : "", desc ? desc : "");
		goto wipe;
	}
	reply(resp, 200, "Login complete: you can close this window and return to tandem.");
	exchange(lg, code);
wipe:
	if (code)
		secure_wipe(code, strlen(code));
}

/* ---- the request ------------------------------------------------------- */

static int ensure_listener(char *why, size_t whylen)
{
	uint16_t port = orch->config ? orch->config->oauth_callback_port : 0;
	int err = 0;

	loop_timer_cancel(listener_linger);
	listener_linger = NULL;
	if (listener)
		return 0;
	listener = httpd_new(orch->loop, "127.0.0.1", port, callback_cb, NULL, &err);
	if (!listener) {
		snprintf(why, whylen, "cannot listen for the OAuth callback on 127.0.0.1:%u: %s",
			 port, strerror(-err));
		return err;
	}
	return 0;
}

/* The server named in the request: in the thread's view, or config.toml. */
static json_t *find_server(json_t *params, const char *name, const char **plugin_id,
			   char *why, size_t whylen)
{
	const char *tid = json_string_value(json_object_get(params, "threadId"));

	*plugin_id = NULL;
	if (tid) {
		struct thread *t = thread_find(tid);
		struct srv *s;

		if (!t) {
			snprintf(why, whylen, "threadId: no thread '%.100s'", tid);
			return NULL;
		}
		thread_project(t);
		s = thread_server(t, name);
		if (!s) {
			snprintf(why, whylen, "no MCP server '%.100s' in thread %.100s", name, tid);
			return NULL;
		}
		*plugin_id = srv_plugin_id(s);
		return srv_cfg(s);
	}
	if (orch->config && json_object_get(orch->config->mcp_servers, name))
		return json_object_get(orch->config->mcp_servers, name);
	snprintf(why, whylen, "no MCP server '%.100s' in config.toml (pass threadId for a "
			      "plugin's server)", name);
	return NULL;
}

static void login_req_cancel(struct req *r)
{
	struct login *lg = r->data;

	/* The client went away before it got the URL: nobody can use it. */
	lg->rq = NULL;
	r->cancel = NULL;
	req_reply(r, json_null());
	login_free(lg);
}

static const char *www_auth_of(const char *name, json_t *params)
{
	const char *tid = json_string_value(json_object_get(params, "threadId"));
	struct thread *t = tid ? thread_find(tid) : NULL;
	struct srv *s = t ? thread_server(t, name) : NULL;

	return s ? srv_www_authenticate(s) : NULL;
}

static char *scopes_param(json_t *params, json_t *cfg)
{
	json_t *sc = json_object_get(params, "scopes");

	if (!json_is_array(sc) || json_array_size(sc) == 0)
		sc = json_object_get(cfg, "scopes");
	return join_scopes(sc);
}

void rpc_mcp_oauth_login(struct session *s, json_t *id, json_t *params)
{
	const char *name = json_string_value(json_object_get(params, "name"));
	json_t *timeout = json_object_get(params, "timeoutSecs");
	const char *reg = json_string_value(json_object_get(params, "clientRegistration"));
	const char *plugin_id, *transport, *url, *cb_url = orch->config ? orch->config->oauth_callback_url : NULL;
	char why[512];
	json_t *cfg;
	struct login *lg;
	char **cands;
	_cleanup_free_ char *hint = NULL;

	if (!name) {
		client_error(s->client, id, RPC_INVALID_PARAMS, "name: expected a string");
		return;
	}
	if (timeout && !json_is_null(timeout) &&
	    (!json_is_integer(timeout) || json_integer_value(timeout) < 1 ||
	     json_integer_value(timeout) > OAUTH_MAX_TIMEOUT_S)) {
		client_error(s->client, id, RPC_INVALID_PARAMS,
			     "timeoutSecs: expected an integer from 1 to %d", OAUTH_MAX_TIMEOUT_S);
		return;
	}
	if (reg && strcmp(reg, "auto") && strcmp(reg, "dcr") && strcmp(reg, "cimd")) {
		client_error(s->client, id, RPC_INVALID_PARAMS,
			     "clientRegistration: expected auto, dcr or cimd");
		return;
	}
	if (reg && strcmp(reg, "cimd") == 0) {
		client_error(s->client, id, RPC_INVALID_PARAMS,
			     "clientRegistration cimd is not supported: tandem has no client "
			     "metadata document URL; use auto or dcr");
		return;
	}
	if (!(cfg = find_server(params, name, &plugin_id, why, sizeof(why)))) {
		client_error(s->client, id, RPC_INVALID_PARAMS, "%s", why);
		return;
	}
	transport = json_string_value(json_object_get(cfg, "transport"));
	url = json_string_value(json_object_get(cfg, "url"));
	if (!transport || strcmp(transport, "http") != 0 || !url) {
		client_error(s->client, id, RPC_INVALID_PARAMS,
			     "MCP server '%s' is not an HTTP server: OAuth does not apply", name);
		return;
	}
	if (json_object_get(cfg, "hosted_auth") || json_object_get(cfg, "bearer_token_env_var")) {
		client_error(s->client, id, RPC_INVALID_PARAMS,
			     "MCP server '%s' authenticates with a bearer token, not OAuth", name);
		return;
	}
	if (n_logins >= OAUTH_MAX_LOGINS) {
		client_error(s->client, id, RPC_INVALID_REQUEST,
			     "too many OAuth logins in progress (%u)", OAUTH_MAX_LOGINS);
		return;
	}
	if (ensure_listener(why, sizeof(why)) < 0) {
		client_error(s->client, id, RPC_INTERNAL_ERROR, "%s", why);
		return;
	}
	hint = url_www_auth_param(www_auth_of(name, params), "resource_metadata");
	cands = url_resource_metadata_candidates(url, NULL);
	if (!cands) {
		client_error(s->client, id, RPC_INVALID_PARAMS, "MCP server '%s': invalid url", name);
		return;
	}
	lg = xcalloc(1, sizeof(*lg));
	pkce_random_token(lg->id, ID_BYTES);
	pkce_random_token(lg->state, ID_BYTES);
	pkce_new(&lg->pkce);
	lg->server = xstrdup(name);
	lg->url = xstrdup(url);
	lg->thread_id = json_string_value(json_object_get(params, "threadId"))
				? xstrdup(json_string_value(json_object_get(params, "threadId")))
				: NULL;
	lg->plugin_id = plugin_id ? xstrdup(plugin_id) : NULL;
	lg->cfg = json_incref(cfg);
	lg->scope = scopes_param(params, cfg);
	lg->resource = json_string_value(json_object_get(cfg, "oauth_resource"))
			       ? xstrdup(json_string_value(json_object_get(cfg, "oauth_resource")))
			       : NULL;
	lg->dcr_forced = reg && strcmp(reg, "dcr") == 0;
	lg->dcr_allowed = true;
	lg->timeout_ms = json_is_integer(timeout) ? (uint64_t)json_integer_value(timeout) * 1000u
						  : OAUTH_DEFAULT_TIMEOUT_MS;
	lg->redirect_uri = cb_url ? xstrdup(cb_url)
				  : xasprintf("http://127.0.0.1:%u/callback/%s", httpd_port(listener),
					      lg->id);
	/* The server's own pointer (RFC 9728 section 5.1) goes first. */
	if (hint && http_url(hint)) {
		size_t n = 0;

		while (cands[n])
			n++;
		lg->cands = xcalloc(n + 2, sizeof(*lg->cands));
		lg->cands[0] = TAKE_PTR(hint);
		memcpy(lg->cands + 1, cands, n * sizeof(*cands));
		free(cands);
	} else {
		lg->cands = cands;
	}
	lg->phase = P_RESOURCE;
	lg->next = logins;
	logins = lg;
	n_logins++;
	lg->rq = req_new(s, id);
	lg->rq->data = lg;
	lg->rq->cancel = login_req_cancel;
	log_info("MCP server '%s': OAuth login %s started", name, lg->id);
	fetch_next(lg);
}

void oauth_session_gone(struct session *s)
{
	for (struct login *lg = logins; lg; lg = lg->next)
		if (lg->sess == s)
			lg->sess = NULL;
}

void oauth_shutdown(void)
{
	while (logins)
		login_free(logins);
	while (tokens)
		token_remove(tokens);
	loop_timer_cancel(listener_linger);
	listener_linger = NULL;
	listener = httpd_free(listener);
	store_key = secret_free(store_key);
	free(store_path);
	store_path = NULL;
}
