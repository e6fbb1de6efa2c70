/* oauth.h - MCP OAuth login (mcpServer/oauth/login) and its tokens.
 *
 * A login for an HTTP MCP server runs the OAuth 2.1 authorization-code
 * flow with PKCE for the client:
 *   1. discovery: RFC 9728 protected-resource metadata (from the server's
 *      WWW-Authenticate resource_metadata, else the well-known paths built
 *      from its URL) names the authorization server; its RFC 8414 metadata
 *      is fetched path-inserted first, then at the root (OpenID forms last),
 *      and its `issuer` must match the URL it was fetched from;
 *   2. the client: the configured oauth client id, else dynamic client
 *      registration (RFC 7591) at the registration endpoint;
 *   3. the answer {authorizationUrl, loginId} goes back at once; the URL
 *      carries response_type=code, client_id, redirect_uri, state (random),
 *      code_challenge (S256 of a random verifier), scope and resource when
 *      known;
 *   4. the callback listener (127.0.0.1, mcp_oauth_callback_port or an
 *      ephemeral port; path /callback/<loginId>) checks state: a mismatch
 *      gets 400 and the login goes on; the right one gets the code
 *      exchanged at the token endpoint (grant_type=authorization_code, code,
 *      code_verifier, redirect_uri, client_id, resource);
 *   5. mcpServer/oauthLogin/completed {name, threadId, loginId, success,
 *      error} goes to the session that asked, also on timeout (default
 *      300 s) or failure.
 * Every request of steps 1, 2 and 4 goes out where the server's own
 * requests go: through the executor for an executor-bound server.
 *
 * Tokens live in libsodium guarded memory, keyed by server name and URL,
 * for the orchestrator's life; they are refreshed (refresh_token grant)
 * when within OAUTH_REFRESH_MARGIN_MS of expiry, one refresh at a time per
 * server. Nothing here logs them. They are written only to the optional
 * encrypted store: mcp_oauth_credentials_store = "file" in config.toml and
 * a key in $TANDEM_OAUTH_STORE_KEY (64 hex digits) give
 * <home>/OAUTH_STORE_FILE, sealed with crypto_secretbox; without the key
 * nothing is persisted (never plaintext).
 */
#ifndef TANDEM_OAUTH_H
#define TANDEM_OAUTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct session;

#define OAUTH_DEFAULT_TIMEOUT_MS 300000u
#define OAUTH_MAX_TIMEOUT_S 3600
#define OAUTH_REFRESH_MARGIN_MS 30000u
#define OAUTH_HTTP_TIMEOUT_MS 30000u
#define OAUTH_MAX_DOC (256u * 1024u) /* bytes of one metadata or token answer */
#define OAUTH_MAX_LOGINS 16u         /* logins waiting for their callback */
#define OAUTH_MAX_SCOPES 64u         /* scopes put in one authorization request */
#define OAUTH_STORE_FILE "mcp-oauth-tokens.sealed"
#define OAUTH_STORE_KEY_ENV "TANDEM_OAUTH_STORE_KEY"
#define OAUTH_STORE_MAGIC "tandem-oauth-store-1\n"
#define OAUTH_STORE_MAX (4u * 1024u * 1024u)

/* "Authorization: Bearer <access token>" into hdrs[0] (malloc'd) when a
 * login holds a token for this server; returns 0 or 1. A token near its
 * expiry starts a refresh (the current token is still sent). */
size_t oauth_auth_headers(const char *server, const char *url, char *hdrs[]);
bool oauth_logged_in(const char *server, const char *url);

/* After config load: opens the encrypted store when configured. */
void oauth_init(void);

void rpc_mcp_oauth_login(struct session *s, json_t *id, json_t *params);
/* A client session is gone: its logins go on, without a notification. */
void oauth_session_gone(struct session *s);
/* Cancels logins, closes the listener, wipes every token. */
void oauth_shutdown(void);

#endif
