/* oauth_login.h - one OAuth login for an HTTP MCP server
 * (mcpServer/oauth/login): the OAuth 2.1 authorization-code flow with PKCE.
 *
 *   1. discovery: RFC 9728 protected-resource metadata (from the server's
 *      WWW-Authenticate resource_metadata, else the well-known paths built
 *      from its URL) names the authorization server; its RFC 8414 metadata
 *      is fetched path-inserted first, then at the root (OpenID forms last),
 *      and its `issuer` must match the URL it was fetched from;
 *   2. the client: the configured oauth client id, else dynamic client
 *      registration (RFC 7591) at the registration endpoint;
 *   3. the answer {authorizationUrl, loginId}: the URL carries
 *      response_type=code, client_id, redirect_uri, state (random),
 *      code_challenge (S256 of a random verifier), scope and resource when
 *      known;
 *   4. the callback (oauth_callback.h; path /callback/<loginId>, or the
 *      configured mcp_oauth_callback_url whose state names the login)
 *      checks state: a mismatch gets 400 and the login goes on; the right
 *      one gets the code exchanged at the token endpoint
 *      (grant_type=authorization_code, code, code_verifier, redirect_uri,
 *      client_id, resource) and the tokens go to the store (oauth_store.h);
 *   5. mcpServer/oauthLogin/completed {name, threadId, loginId, success,
 *      error} goes to the login's owner (notify.h), also on timeout (default
 *      OAUTH_DEFAULT_TIMEOUT_MS) or failure.
 * Every request of steps 1, 2 and 4 goes out where the server's own
 * requests go: through the executor for an executor-bound server.
 *
 * State: the logins in progress are a file static, loop thread only.
 */
#ifndef TANDEM_OAUTH_LOGIN_H
#define TANDEM_OAUTH_LOGIN_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct loop;
struct oauth_login;

/* What to log in to, resolved by the caller (all borrowed). */
struct oauth_login_spec {
	const char *server;           /* the server's name */
	json_t *cfg;                  /* its normalized config */
	const char *plugin_id;        /* the root that declared it; NULL: config.toml */
	const char *thread_id;        /* echoed in the completion; may be NULL */
	const char *www_authenticate; /* its last 401's header (discovery hint), NULL */
	json_t *scopes;               /* requested scopes (strings); NULL or []: the config's */
	bool dcr;                     /* register a client even when one is configured */
	uint64_t timeout_ms;          /* for the callback; 0: OAUTH_DEFAULT_TIMEOUT_MS */
	uint64_t owner;               /* who gets the completion (session.h) */
};

/* The outcome of steps 1-3, once, from the loop (never from inside
 * oauth_login_start): err 0 with the login id and the authorization URL;
 * -EINVAL with why when the login failed (it is then over); -ECANCELED when
 * it was abandoned at shutdown. */
typedef void (*oauth_login_answer_cb)(int err, const char *login_id, const char *url,
				      const char *why, void *arg);

void oauth_login_init(struct loop *l);
/* Starts a login: 0 (answer follows), or with a reason in err: -EINVAL (the
 * server is not an HTTP server with an OAuth-capable config, or its URL is
 * invalid), -EMFILE (OAUTH_MAX_LOGINS in progress), another -errno (the
 * callback listener cannot listen). */
int oauth_login_start(const struct oauth_login_spec *spec, oauth_login_answer_cb answer,
		      void *arg, struct oauth_login **out, char *err, size_t errlen);
/* Before the answer: nobody is waiting for it (the client left). The login
 * ends, without any callback. */
void oauth_login_abandon(struct oauth_login *lg);
/* Ends every login (answers not given yet get -ECANCELED) and closes the
 * listener. */
void oauth_login_shutdown(void);

#endif
