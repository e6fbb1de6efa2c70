/* notify.c - see notify.h. */
#include "notify.h"

#include "util.h"

static const char *const methods[NOTIFY_COUNT] = {
	[NOTIFY_THREAD_STARTED] = "thread/started",
	[NOTIFY_THREAD_ENV_CONNECTED] = "thread/environment/connected",
	[NOTIFY_THREAD_ENV_DISCONNECTED] = "thread/environment/disconnected",
	[NOTIFY_THREAD_STATUS_CHANGED] = "thread/status/changed",
	[NOTIFY_THREAD_CLOSED] = "thread/closed",
	[NOTIFY_THREAD_ARCHIVED] = "thread/archived",
	[NOTIFY_THREAD_UNARCHIVED] = "thread/unarchived",
	[NOTIFY_THREAD_DELETED] = "thread/deleted",
	[NOTIFY_THREAD_NAME_UPDATED] = "thread/name/updated",
	[NOTIFY_THREAD_READ_STATE_CHANGED] = "thread/readState/changed",
	[NOTIFY_THREAD_TOKEN_USAGE_UPDATED] = "thread/tokenUsage/updated",
	[NOTIFY_TURN_STARTED] = "turn/started",
	[NOTIFY_TURN_COMPLETED] = "turn/completed",
	[NOTIFY_ITEM_STARTED] = "item/started",
	[NOTIFY_ITEM_COMPLETED] = "item/completed",
	[NOTIFY_AGENT_MESSAGE_DELTA] = "item/agentMessage/delta",
	[NOTIFY_MCP_STARTUP_STATUS] = "mcpServer/startupStatus/updated",
	[NOTIFY_MCP_OAUTH_LOGIN_COMPLETED] = "mcpServer/oauthLogin/completed",
	[NOTIFY_ACCOUNT_UPDATED] = "account/updated",
	[NOTIFY_ACCOUNT_LOGIN_COMPLETED] = "account/login/completed",
};

static const struct notify_sink *sink;
static void *sink_arg;

void notify_set_sink(const struct notify_sink *s, void *arg)
{
	sink = s;
	sink_arg = arg;
}

const char *notify_method(enum notify_kind k)
{
	return (unsigned)k < ARRAY_SIZE(methods) ? methods[k] : NULL;
}

void notify_owner(uint64_t owner, enum notify_kind k, json_t *params)
{
	if (owner && sink && sink->owner_cb && notify_method(k))
		sink->owner_cb(owner, notify_method(k), params, sink_arg);
	else
		json_decref(params);
}

void notify_all(enum notify_kind k, json_t *params)
{
	if (sink && sink->all_cb && notify_method(k))
		sink->all_cb(notify_method(k), params, sink_arg);
	else
		json_decref(params);
}
