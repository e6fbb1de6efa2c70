/* notify.h - the notifications the orchestrator sends its clients, and the
 * one path they take.
 *
 * The domain (threads, turns, servers, OAuth, the account) says what
 * happened and to whom: one client (an owner: the id of the client session
 * a login belongs to, or a subscriber of a thread; 0 for nobody) or every
 * client. A thread's notifications go to each of its subscribers in turn
 * (thread_notify, thread.h), so a client hears the threads it started,
 * resumed or subscribed to, not everyone's. The domain knows no sessions:
 * the client-API layer plugs a sink in (session.c) and does the delivery,
 * so the domain never calls up. Without a sink, notifications are dropped
 * (unit suites plug in their own).
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
	NOTIFY_THREAD_STATUS_CHANGED,
	NOTIFY_THREAD_CLOSED,
	NOTIFY_THREAD_ARCHIVED,
	NOTIFY_THREAD_UNARCHIVED,
	NOTIFY_THREAD_DELETED,
	NOTIFY_THREAD_NAME_UPDATED,
	NOTIFY_THREAD_READ_STATE_CHANGED,
	NOTIFY_THREAD_TOKEN_USAGE_UPDATED,
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
