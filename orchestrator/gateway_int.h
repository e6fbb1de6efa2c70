/* gateway_int.h - what the MCP gateway's files share (gateway.h says what
 * the gateway is):
 *
 *   gateway.c          HTTP: libmicrohttpd on the loop, routes, limits, and
 *                      the exchanges (one POST or GET) answers go out on
 *   gateway_auth.c     who may use the endpoint: bearer token or HS256 JWT,
 *                      allowed origins, RFC 9728 metadata
 *   gateway_session.c  MCP sessions (Mcp-Session-Id) and the methods
 *   gateway_scope.c    what an endpoint exposes: a thread's servers, the
 *                      global ones or a profile's, their tools, resources
 *                      and prompts under gateway names, and their changes
 *
 * All of it runs on the loop thread; every module's state is a file static.
 */
#ifndef TANDEM_GATEWAY_INT_H
#define TANDEM_GATEWAY_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct srv;
struct gw_http;
struct gw_scope;
struct gw_session;

/* HTTP statuses the layers hand each other. */
#define GW_OK 200
#define GW_ACCEPTED 202
#define GW_BAD_REQUEST 400
#define GW_NOT_FOUND 404
#define GW_CONFLICT 409
#define GW_UNAVAILABLE 503

/* JSON-RPC error codes the gateway sends. */
#define GW_PARSE_ERROR (-32700)
#define GW_INVALID_REQUEST (-32600)
#define GW_METHOD_NOT_FOUND (-32601)
#define GW_INVALID_PARAMS (-32602)
#define GW_INTERNAL_ERROR (-32603)
#define GW_OVERLOADED (-32001)
#define GW_RESOURCE_NOT_FOUND (-32002) /* MCP: resources/read of an unknown URI */

#define GW_SESSION_ID_LEN 64u /* hex digits of 32 random bytes */

/* ---- gateway.c: one HTTP exchange ---------------------------------------
 *
 * A POST carrying a request is answered with one JSON body unless something
 * has to go out before the answer (a progress notification): the exchange
 * then becomes an event stream that ends after the answer. A GET is an
 * event stream from the start. Whoever holds an exchange learns that it is
 * gone (the client left, or the daemon stops) through its gone callback,
 * and must not use it afterwards; after its final send or end it must not
 * use it either, and no gone callback comes. */

typedef void (*gw_gone_cb)(void *arg);

/* Sends msg (stolen): final = the answer (then the exchange is over).
 * Returns 0, or -ENOBUFS when the stream's queue is full (the exchange is
 * ended: its gone callback does not run). */
int gateway_http_send(struct gw_http *h, json_t *msg, bool final);
/* Answers with an HTTP error status and a JSON-RPC error (stolen), id
 * null, after the session layer returned (an answer that had to wait). */
void gateway_http_refuse(struct gw_http *h, unsigned status, json_t *err);
/* Ends the exchange without an answer: an event stream that stops (an
 * empty one if nothing was sent yet). */
void gateway_http_end(struct gw_http *h);
void gateway_http_set_gone(struct gw_http *h, gw_gone_cb cb, void *arg);
/* Mcp-Session-Id on the answer (initialize). */
void gateway_http_set_session_id(struct gw_http *h, const char *id);

/* ---- gateway_auth.c -------------------------------------------------- */

/* Reads config.toml's [mcp_gateway] auth (files read now). A non-loopback
 * listener without auth is refused. 0 or -errno with err. */
int gateway_auth_init(const json_t *cfg, bool loopback, char *err, size_t errlen);
void gateway_auth_free(void);
bool gateway_auth_enabled(void);
/* authorization: the header's value or NULL. 0 when allowed; otherwise
 * -EACCES with the WWW-Authenticate value for the 401 in www. */
int gateway_auth_check(const char *authorization, char *www, size_t wwwlen);
/* Origin header (NULL: none, allowed): loopback origins and the configured
 * ones. */
bool gateway_auth_origin_ok(const char *origin);
/* host[0..len) ("NAME[:PORT]", "[V6]:PORT", maybe followed by a path)
 * names this machine: localhost, 127.0.0.0/8 or ::1 as literals. */
bool gateway_auth_loopback_host(const char *host, size_t len);
/* RFC 9728 metadata (new reference), NULL when `resource` is not set. */
json_t *gateway_auth_metadata(void);

/* ---- gateway_scope.c ------------------------------------------------- */

typedef void (*gw_scope_cb)(struct gw_scope *sc, void *arg);
/* A change seen by a scope: method is the list_changed notification. */
typedef void (*gw_changed_cb)(struct gw_scope *sc, const char *method);

void gateway_scope_init(struct loop *l, gw_changed_cb changed);
/* The scope of an endpoint path ("/mcp", "/mcp/threads/ID",
 * "/mcp/profiles/NAME"), shared by its sessions: a new reference, or an
 * HTTP status (404) with a reason. */
int gateway_scope_open(const char *path, struct gw_scope **out, char *why, size_t len);
void gateway_scope_close(struct gw_scope *sc);
void gateway_scope_close_all(void);
/* Whether path names a thread that is not loaded (a stored one may be). */
bool gateway_scope_loadable(const char *path);
/* Loads a loadable path's thread from the store, then cb(sc, 0, NULL) with
 * a new reference, or cb(NULL, status, why) (404: no such thread). cb may
 * run before this returns (then NULL); the handle cancels it. */
typedef void (*gw_opened_cb)(struct gw_scope *sc, int status, const char *why, void *arg);
struct gw_scope_loading;
struct gw_scope_loading *gateway_scope_load(const char *path, gw_opened_cb cb, void *arg);
void gateway_scope_load_cancel(struct gw_scope_loading *l);
/* Projects the scope's thread (roots resolved, failed servers retried)
 * and runs cb once it is settled (at once if it is). */
void gateway_scope_when_ready(struct gw_scope *sc, gw_scope_cb cb, void *arg);
void gateway_scope_forget(struct gw_scope *sc, gw_scope_cb cb, void *arg);
/* The merged lists under gateway names (borrowed until the next change). */
json_t *gateway_scope_tools(struct gw_scope *sc);
json_t *gateway_scope_resources(struct gw_scope *sc);
json_t *gateway_scope_templates(struct gw_scope *sc);
/* The live server behind a gateway tool name (and the server's own name
 * of the tool), NULL when the name is unknown now. */
struct srv *gateway_scope_tool(struct gw_scope *sc, const char *name, const char **tool);
/* The server whose resource (or resource template) a URI is. */
struct srv *gateway_scope_resource(struct gw_scope *sc, const char *uri);
/* The servers that are ready and offer prompts, in order. */
size_t gateway_scope_prompt_servers(struct gw_scope *sc, struct srv **out, size_t max);
/* Prompt names: the scope's prompt map is rebuilt by each prompts/list. */
void gateway_scope_prompts_begin(struct gw_scope *sc);
/* The gateway name of (server's) prompt, NULL when none can be made. */
const char *gateway_scope_prompt_add(struct gw_scope *sc, struct srv *s, const char *prompt);
struct srv *gateway_scope_prompt(struct gw_scope *sc, const char *name, const char **prompt);

/* ---- gateway_session.c ------------------------------------------------ */

/* What gateway.c read from a request. */
struct gw_request {
	const char *path;       /* the endpoint ("/mcp/threads/ID") */
	const char *session_id; /* Mcp-Session-Id, NULL if absent */
	const char *protocol;   /* MCP-Protocol-Version, NULL if absent */
};

void gateway_session_init(struct loop *l);
/* The sessions end (their streams and calls too). */
void gateway_session_stop_all(void);
/* One POST body: answered on h (return GW_OK), or refused with an HTTP
 * status (202 for an accepted notification or response) and, for errors,
 * a JSON-RPC error object in *err (new reference) for the body. */
int gateway_session_post(struct gw_http *h, const struct gw_request *rq, const char *body,
			 size_t len, json_t **err);
/* A GET: h becomes the session's stream (GW_OK) or a status with *err. */
int gateway_session_get(struct gw_http *h, const struct gw_request *rq, json_t **err);
/* A DELETE: GW_OK, or a status with *err. */
int gateway_session_delete(const struct gw_request *rq, json_t **err);
size_t gateway_session_count(void);

#endif
