/* notify.h - the notifications the orchestrator sends its clients, and the
 * one path they take.
 *
 * The domain (threads, turns, servers, OAuth, the account) says what
 * happened and to whom: one client (an owner: the id of the client session
 * a thread or a login belongs to, 0 for nobody) or every client. It knows no
 * sessions: the client-API layer plugs a sink in (session.c) and does the
 * fan-out, so the domain never calls up. Without a sink, notifications are
 * dropped (unit suites plug in their own).
 *
 * The method names live in the table in notify.c, nowhere else.
 * Loop thread only.
 */
#ifndef TANDEM_NOTIFY_H
#define TANDEM_NOTIFY_H

#include <jansson.h>
#include <stdint.h>

enum notify_kind {
	NOTIFY_THREAD_STARTED,
	NOTIFY_THREAD_ENV_CONNECTED,
	NOTIFY_THREAD_ENV_DISCONNECTED,
	NOTIFY_TURN_STARTED,
	NOTIFY_TURN_COMPLETED,
	NOTIFY_ITEM_STARTED,
	NOTIFY_ITEM_COMPLETED,
	NOTIFY_AGENT_MESSAGE_DELTA,
	NOTIFY_MCP_STARTUP_STATUS,
	NOTIFY_MCP_OAUTH_LOGIN_COMPLETED,
	NOTIFY_ACCOUNT_UPDATED,
	NOTIFY_ACCOUNT_LOGIN_COMPLETED,
	NOTIFY_COUNT
};

/* Both steal params. */
struct notify_sink {
	void (*owner_cb)(uint64_t owner, const char *method, json_t *params, void *arg);
	void (*all_cb)(const char *method, json_t *params, void *arg);
};

/* sink (borrowed) stays in use until replaced; NULL removes it. */
void notify_set_sink(const struct notify_sink *sink, void *arg);
/* The client API method name ("turn/started"). */
const char *notify_method(enum notify_kind k);

/* Steal params. owner 0: nobody (the notification is dropped). */
void notify_owner(uint64_t owner, enum notify_kind k, json_t *params);
void notify_all(enum notify_kind k, json_t *params);

#endif
