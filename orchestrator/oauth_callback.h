/* oauth_callback.h - the loopback listener the browser is redirected to at
 * the end of an OAuth login, and the parser of what it brings back.
 *
 * One listener for every login: 127.0.0.1, on mcp_oauth_callback_port or an
 * ephemeral port, opened by the first login and closed a moment after the
 * last one ends (OAUTH_CALLBACK_LINGER_MS, so the last answer page reaches
 * the browser). Each request is parsed (oauth_callback_parse) and handed to
 * the handler given to oauth_callback_listen (the login flow), which picks
 * the answer page; this module knows no logins.
 *
 * Secrets: the query carries the authorization code; it is wiped after the
 * handler ran, and nothing here logs.
 *
 * State: file statics, loop thread only.
 */
#ifndef TANDEM_OAUTH_CALLBACK_H
#define TANDEM_OAUTH_CALLBACK_H

#include <stddef.h>
#include <stdint.h>

struct loop;

#define OAUTH_CALLBACK_LINGER_MS 5000u
#define OAUTH_CALLBACK_PREFIX "/callback/" /* + the login id */

/* One redirect: GET <path>?<query>. */
struct oauth_callback {
	const char *login_id;    /* what follows OAUTH_CALLBACK_PREFIX in the path
				    (borrowed from it), NULL for any other path */
	char *state;             /* the query's values, %-decoded; NULL when */
	char *code;              /* absent or malformed (url_query_get) */
	char *error;
	char *error_description;
};

/* Fills out from a request's raw path and query (NULL query: none). Never
 * fails: hostile input leaves fields NULL. Clear with oauth_callback_clear. */
void oauth_callback_parse(const char *path, const char *query, struct oauth_callback *out);
/* Wipes the code and frees the values. */
void oauth_callback_clear(struct oauth_callback *cb);

/* The page the browser gets: status and one line of text (static). */
struct oauth_callback_answer {
	int status;
	const char *text;
};
typedef void (*oauth_callback_fn)(const struct oauth_callback *cb,
				  struct oauth_callback_answer *ans, void *arg);

/* Listens (when not already) and cancels a pending close: 0, or -errno with
 * a reason. port 0: ephemeral. The handler is the first caller's. */
int oauth_callback_listen(struct loop *l, uint16_t port, oauth_callback_fn fn, void *arg,
			  char *why, size_t whylen);
/* The port listened on, 0 when closed. */
uint16_t oauth_callback_port(void);
/* Nothing waits for a callback any more: close after the linger. */
void oauth_callback_idle(void);
/* Closes at once. */
void oauth_callback_shutdown(void);

#endif
