/* apps.h - the hosted apps contribution: the `codex_apps` MCP server.
 *
 * The first contributor of the MCP manager's runtime view (view.h). With
 * [features] apps = true it sets `codex_apps`, a streamable HTTP server the
 * orchestrator itself reaches at
 *
 *   <chatgpt_base_url>[/backend-api]/wham/apps    (ps/mcp instead with
 *                                                  features.apps_mcp_path_override)
 *
 * where /backend-api is added for chatgpt.com and chat.openai.com bases that
 * lack it. With apps off it removes `codex_apps`, a user-configured one
 * included. The effective view keeps it only while ChatGPT auth is active;
 * its requests carry the ChatGPT access token (Authorization: Bearer) and
 * ChatGPT-Account-ID, read from the account at each request.
 *
 * The config it sets is a normalized HTTP config (mcpcfg.h) plus
 * "hosted_auth": "chatgpt", a key no user config can carry (mcpcfg rejects
 * unknown keys), which tells srv.c where its credentials come from.
 */
#ifndef TANDEM_APPS_H
#define TANDEM_APPS_H

#include <jansson.h>
#include <stdbool.h>

struct config;

#define APPS_SERVER_NAME "codex_apps"

/* The hosted endpoint for a chatgpt_base_url (NULL: https://chatgpt.com). */
char *apps_url(const char *chatgpt_base_url, bool path_override);
/* The server config the contributor sets (new reference). */
json_t *apps_server_config(const struct config *c);
/* Adds the contributor (once, at start-up). */
void apps_register(void);

#endif
