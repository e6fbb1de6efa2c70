/* oauth_store.c - see oauth_store.h. */
#include "oauth_store.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "oauth.h"
#include "secret.h"
#include "urlutil.h"
#include "util.h"

struct token {
	struct token *next;
	char *server, *url;
	struct secret *access, *refresh, *client_secret;
	uint64_t expires_at_ms; /* 0: no expiry given */
	char *token_endpoint, *client_id, *resource;
	json_t *cfg; /* where the refresh goes out */
	char *plugin_id;
	struct oauth_fetch *refreshing; /* only one refresh at a time */
};


static struct token *tokens;
static struct {
	void (*fn)(const char *server, void *arg);
	void *arg;
} changed;

static void store_save(void);

void oauth_store_watch(void (*fn)(const char *server, void *arg), void *arg)
{
	changed.fn = fn;
	changed.arg = arg;
}

static void tell_changed(const char *server)
{
	if (changed.fn)
		changed.fn(server, changed.arg);
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
	oauth_fetch_free(t->refreshing);
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
	const char *at = oauth_doc_str(doc, "access_token"), *rt = oauth_doc_str(doc, "refresh_token");
	const char *type = oauth_doc_str(doc, "token_type");
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

	oauth_fetch_free(t->refreshing);
	t->refreshing = NULL;
	if (err || status < 200 || status > 299) {
		/* invalid_grant: the refresh token is dead; a new login is
		 * needed. Anything else (network): try again on next use. */
		log_warn("MCP server '%s': token refresh failed: %s", t->server,
			 err ? err
			     : oauth_doc_str(doc, "error") ? oauth_doc_str(doc, "error") : "HTTP error");
		if (!err && status == 400 && oauth_doc_str(doc, "error") &&
		    strcmp(oauth_doc_str(doc, "error"), "invalid_grant") == 0) {
			char *name = xstrdup(t->server);

			token_remove(t);
			store_save();
			tell_changed(name);
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
	t->refreshing = oauth_fetch_start(t->cfg, t->plugin_id, "POST", t->token_endpoint, body,
					  true, refresh_cb, t, why, sizeof(why));
	secure_wipe(body, strlen(body));
	free(body);
	if (!t->refreshing)
		log_warn("MCP server '%s': cannot refresh the token: %s", t->server, why);
}

size_t oauth_store_headers(const char *server, const char *url, char *hdrs[])
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

bool oauth_store_has(const char *server, const char *url)
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
	const char *server = oauth_doc_str(o, "server"), *url = oauth_doc_str(o, "url");
	const char *at = oauth_doc_str(o, "access"), *rt = oauth_doc_str(o, "refresh");
	const char *cs = oauth_doc_str(o, "client_secret");
	json_int_t exp = json_integer_value(json_object_get(o, "expires_at_unix_ms"));
	struct token *t;

	if (!server || !url || !at || !oauth_doc_str(o, "token_endpoint") ||
	    !oauth_doc_str(o, "client_id") || token_find(server, url))
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
	t->token_endpoint = xstrdup(oauth_doc_str(o, "token_endpoint"));
	t->client_id = xstrdup(oauth_doc_str(o, "client_id"));
	t->resource = oauth_doc_str(o, "resource") ? xstrdup(oauth_doc_str(o, "resource")) : NULL;
	t->plugin_id = oauth_doc_str(o, "plugin_id") ? xstrdup(oauth_doc_str(o, "plugin_id")) : NULL;
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

void oauth_store_init(const char *home, const char *mode)
{
	struct secret *held = NULL;
	uint8_t key[crypto_secretbox_KEYBYTES];
	const char *hex;
	size_t n = 0;

	/* Held since start-up (main.c), else taken out of the environment
	 * now: no child ever inherits it. */
	(void)secret_from_env(OAUTH_STORE_KEY_ENV, &held);
	hex = held ? secret_data(held) : NULL;
	if (!mode || strcmp(mode, "file") != 0) {
		secret_free(held);
		return;
	}
	if (!hex || sodium_hex2bin(key, sizeof(key), hex, strlen(hex), NULL, &n, NULL) != 0 ||
	    n != sizeof(key) || hex[2 * n] != '\0') {
		log_error("mcp_oauth_credentials_store = \"file\" needs %s (64 hex digits): OAuth "
			  "tokens are kept in memory only", OAUTH_STORE_KEY_ENV);
	} else if (secret_from_buf(hex, strlen(hex), &store_key) == 0) {
		/* secret_key(): BLAKE2b-256 of the key text, the secretbox key. */
		store_path = xasprintf("%s/%s", home, OAUTH_STORE_FILE);
		store_load();
	}
	sodium_memzero(key, sizeof(key));
	secret_free(held);
}

bool oauth_store_persistent(void) { return store_key != NULL; }

/* ---- logins ------------------------------------------------------------ */

int oauth_store_put(const char *server, const char *url, json_t *doc,
		    const struct oauth_grant *g, struct secret **client_secret, char *why,
		    size_t whylen)
{
	struct token *t = token_find(server, url);

	if (!t) {
		t = xcalloc(1, sizeof(*t));
		t->server = xstrdup(server);
		t->url = xstrdup(url);
		t->next = tokens;
		tokens = t;
	}
	if (!token_take(t, doc, why, whylen)) {
		if (!t->access)
			token_remove(t);
		return -EINVAL;
	}
	free(t->token_endpoint);
	free(t->client_id);
	free(t->resource);
	free(t->plugin_id);
	json_decref(t->cfg);
	secret_free(t->client_secret);
	t->token_endpoint = xstrdup(g->token_endpoint);
	t->client_id = xstrdup(g->client_id);
	t->resource = g->resource ? xstrdup(g->resource) : NULL;
	t->plugin_id = g->plugin_id ? xstrdup(g->plugin_id) : NULL;
	t->cfg = json_incref(g->cfg);
	t->client_secret = client_secret ? TAKE_PTR(*client_secret) : NULL;
	store_save();
	tell_changed(server);
	return 0;
}

void oauth_store_shutdown(void)
{
	while (tokens)
		token_remove(tokens);
	store_key = secret_free(store_key);
	free(store_path);
	store_path = NULL;
}
