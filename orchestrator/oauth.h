/* oauth.h - MCP OAuth: what the login flow (oauth_login.c), the token
 * store (oauth_store.c) and the loopback callback (oauth_callback.c) share:
 * the limits, and one JSON exchange with an authorization server.
 *
 * A login for an HTTP MCP server runs the OAuth 2.1 authorization-code flow
 * with PKCE (oauth_login.h has the steps); its tokens go to the store
 * (oauth_store.h), which hands them to the server's requests and refreshes
 * them. Every exchange goes out where the server's own requests go
 * (envs_http_route): through the executor for an executor-bound server.
 *
 * Secrets: the verifier, state, code, tokens and client secret are never
 * logged or put in an error text; the store keeps tokens in struct secret
 * (sodium guarded memory); transient copies are wiped.
 */
#ifndef TANDEM_OAUTH_H
#define TANDEM_OAUTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define OAUTH_DEFAULT_TIMEOUT_MS 300000u
#define OAUTH_MAX_TIMEOUT_S 3600
#define OAUTH_REFRESH_MARGIN_MS 30000u
#define OAUTH_HTTP_TIMEOUT_MS 30000u
#define OAUTH_MAX_DOC (256u * 1024u) /* bytes of one metadata or token answer */
#define OAUTH_MAX_LOGINS 16u         /* logins waiting for their callback */
#define OAUTH_MAX_SCOPES 64u         /* scopes put in one authorization request */

/* ---- one exchange ------------------------------------------------------ */

struct oauth_fetch;

/* The answer: status 0 and err set when the exchange itself failed; doc
 * is the body parsed as JSON (NULL when it is not), borrowed for the call.
 * The callback owns the fetch: it frees it with oauth_fetch_free. */
typedef void (*oauth_fetch_cb)(void *owner, long status, json_t *doc, const char *err);

/* A request for the server (cfg, plugin_id: where it goes out, see
 * envs_http_route): body is a form (form = true) or JSON, or NULL. Its
 * answer is bounded by OAUTH_MAX_DOC and OAUTH_HTTP_TIMEOUT_MS. NULL with a
 * reason when it cannot be sent. */
struct oauth_fetch *oauth_fetch_start(json_t *cfg, const char *plugin_id, const char *method,
				      const char *url, const char *body, bool form,
				      oauth_fetch_cb cb, void *owner, char *why, size_t whylen);
/* Cancels (no callback) and wipes the answer; NULL ok. */
void oauth_fetch_free(struct oauth_fetch *f);

/* ---- reading answers --------------------------------------------------- */

/* doc[key] when it is a string, else NULL. */
const char *oauth_doc_str(json_t *doc, const char *key);
/* An http(s) URL shorter than URL_MAX_LEN. */
bool oauth_http_url(const char *u);
/* A JSON array of scope strings -> "a b c" (at most OAUTH_MAX_SCOPES of
 * them), NULL when there is none. */
char *oauth_join_scopes(json_t *arr);

#endif
