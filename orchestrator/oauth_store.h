/* oauth_store.h - the OAuth tokens of MCP servers, and their sealed file.
 *
 * Tokens come from logins (oauth_login.c: oauth_store_put) and live in
 * libsodium guarded memory, keyed by server name and URL, for the
 * orchestrator's life. A server's requests ask for them at each request
 * (oauth_store_headers), so a login, a refresh or a dead refresh token is
 * seen by the very next one. A token within OAUTH_REFRESH_MARGIN_MS of its
 * expiry is refreshed (refresh_token grant, one refresh at a time per
 * server); a refresh refused with invalid_grant drops the token.
 *
 * Persistence is optional and never plaintext: with
 * mcp_oauth_credentials_store = "file" in config.toml and a key in
 * $TANDEM_OAUTH_STORE_KEY (64 hex digits), <home>/OAUTH_STORE_FILE holds
 * the tokens sealed with crypto_secretbox; without a usable key nothing is
 * written. Nothing here logs a token.
 *
 * Upward: a change of a server's tokens (a login, a dropped token) is
 * reported to the one watcher (oauth_store_watch; main.c wires the server
 * pool, which restarts that server's HTTP instances).
 *
 * State: file statics, loop thread only.
 */
#ifndef TANDEM_OAUTH_STORE_H
#define TANDEM_OAUTH_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct secret;

#define OAUTH_STORE_FILE "mcp-oauth-tokens.sealed"
#define OAUTH_STORE_KEY_ENV "TANDEM_OAUTH_STORE_KEY"
#define OAUTH_STORE_MAGIC "tandem-oauth-store-1\n"
#define OAUTH_STORE_MAX (4u * 1024u * 1024u)

/* mode: config.toml's mcp_oauth_credentials_store (NULL: unset). Takes the
 * key out of the environment (no child inherits it) and, with "file" and a
 * usable key, loads <home>/OAUTH_STORE_FILE. Once, at start-up. */
void oauth_store_init(const char *home, const char *mode);
/* True when tokens are written to the sealed file (it then replaces
 * <home>/OAUTH_STORE_FILE by a rename: the sandbox must allow that). */
bool oauth_store_persistent(void);
/* fn(server, arg) after the tokens of a server changed. */
void oauth_store_watch(void (*fn)(const char *server, void *arg), void *arg);

/* "Authorization: Bearer <access token>" into hdrs[0] (malloc'd) when the
 * store holds a token for this server; returns 0 or 1. A token near its
 * expiry starts a refresh (the current token is still sent). */
size_t oauth_store_headers(const char *server, const char *url, char *hdrs[]);
bool oauth_store_has(const char *server, const char *url);

/* What a login learned, for refreshing later (all borrowed). */
struct oauth_grant {
	const char *token_endpoint;
	const char *client_id;
	const char *resource;  /* NULL if none */
	const char *plugin_id; /* where requests go out (envs_http_route) */
	json_t *cfg;
};
/* Takes the token endpoint's answer doc for server/url: 0, or -EINVAL with
 * a reason when doc is not a usable Bearer token answer (a token already
 * held is kept then). On success *client_secret (may be NULL) is taken, the
 * file is rewritten and the watcher told. */
int oauth_store_put(const char *server, const char *url, json_t *doc,
		    const struct oauth_grant *g, struct secret **client_secret, char *why,
		    size_t whylen);
/* Wipes every token and forgets the key. */
void oauth_store_shutdown(void);

#endif
