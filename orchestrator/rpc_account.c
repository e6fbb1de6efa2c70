/* rpc_account.c - the account/... methods of the client API over account.c:
 * account/read, account/login/start (apiKey and chatgptAuthTokens, both
 * complete at once), account/logout, and the account/updated notification
 * every initialized client gets on each change. No answer or notification
 * ever carries a credential. */
#include "rpc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "client.h"
#include "config.h"
#include "log.h"
#include "notify.h"
#include "param.h"
#include "secret.h"
#include "session.h"
#include "thread.h"
#include "util.h"

/* The configured provider reads its key from the environment when nobody
 * logged in (model.c); account/read reports that as an API-key account. */
static bool env_key_present(json_t *provider)
{
	const char *env_key = json_string_value(json_object_get(provider, "env_key"));
	const char *v = env_key ? secret_getenv(env_key) : NULL;

	return v && *v;
}

static json_t *current_provider(void)
{
	return config_current() ? config_provider(config_current()) : NULL;
}

static bool provider_requires_openai_auth(void)
{
	return json_is_true(json_object_get(current_provider(), "requires_openai_auth"));
}

/* The mode a model request would use now: a login, else the env fallback. */
static enum account_mode effective_mode(void)
{
	if (account_mode() != ACCOUNT_NONE)
		return account_mode();
	if (provider_requires_openai_auth() && env_key_present(current_provider()))
		return ACCOUNT_API_KEY;
	return ACCOUNT_NONE;
}

static json_t *account_json(void)
{
	const char *plan = account_plan_type();

	switch (effective_mode()) {
	case ACCOUNT_API_KEY:
		return json_pack("{s:s}", "type", "apiKey");
	case ACCOUNT_CHATGPT_TOKENS:
		/* The host app keeps the identity; tandem knows no e-mail. */
		return json_pack("{s:s, s:n, s:s}", "type", "chatgpt", "email", "planType",
				 plan ? plan : "unknown");
	case ACCOUNT_NONE:
		break;
	}
	return json_null();
}

static void notify_updated(void)
{
	enum account_mode m = effective_mode();
	const char *plan = account_plan_type();
	json_t *mode = json_null();

	/* AuthMode names: "chatgpt" would mean tokens tandem refreshes itself. */
	if (m == ACCOUNT_API_KEY)
		mode = json_string("apikey");
	else if (m == ACCOUNT_CHATGPT_TOKENS)
		mode = json_string("chatgptAuthTokens");
	threads_account_changed(account_mode() == ACCOUNT_CHATGPT_TOKENS);
	notify_all(NOTIFY_ACCOUNT_UPDATED,
		   json_pack("{s:o, s:o}", "authMode", mode, "planType",
			     m == ACCOUNT_CHATGPT_TOKENS && plan ? json_string(plan) : json_null()));
}

/* The credential also sits in the request's parsed params: wipe that copy
 * too, so it does not linger in freed heap memory. */
static void wipe_param(json_t *params, const char *key)
{
	json_t *v = json_object_get(params, key);

	if (json_is_string(v))
		secure_wipe((char *)json_string_value(v), json_string_length(v));
}

void rpc_account_read(struct req *r, json_t *params)
{
	bool refresh = false;

	/* There is nothing to refresh: the host app owns ChatGPT tokens. */
	if (param_bool(r, params, "refreshToken", &refresh) < 0)
		return;
	req_reply(r, json_pack("{s:o, s:b}", "account", account_json(), "requiresOpenaiAuth",
			       provider_requires_openai_auth()));
}

static int login_api_key(struct req *r, json_t *params, char *err, size_t errlen)
{
	const char *key;

	if (param_str(r, params, "apiKey", true, &key) < 0)
		return -EALREADY; /* answered */
	return account_login_api_key(key, strlen(key), err, errlen);
}

static int login_chatgpt_tokens(struct req *r, json_t *params, char *err, size_t errlen)
{
	const char *tok, *acct, *plan;

	if (param_str(r, params, "accessToken", true, &tok) < 0 ||
	    param_str(r, params, "chatgptAccountId", true, &acct) < 0 ||
	    param_str(r, params, "chatgptPlanType", false, &plan) < 0)
		return -EALREADY; /* answered */
	return account_login_chatgpt_tokens(tok, strlen(tok), acct, plan, err, errlen);
}

void rpc_account_login_start(struct req *r, json_t *params)
{
	const char *type;
	uint64_t who = req_owner(r);
	char err[512];
	int rc;

	if (param_str(r, params, "type", true, &type) < 0)
		return;
	if (strcmp(type, "apiKey") == 0) {
		rc = login_api_key(r, params, err, sizeof(err));
	} else if (strcmp(type, "chatgptAuthTokens") == 0) {
		rc = login_chatgpt_tokens(r, params, err, sizeof(err));
	} else {
		req_error(r, CLIENT_INVALID_PARAMS,
			  "type: '%s' is not supported (use apiKey or chatgptAuthTokens)", type);
		return;
	}
	wipe_param(params, "apiKey");
	wipe_param(params, "accessToken");
	if (rc == -EALREADY)
		return;
	if (rc < 0) {
		req_error(r, CLIENT_INVALID_PARAMS, "%s", err);
		return;
	}
	log_info("client %llu: logged in (%s)", (unsigned long long)who, type);
	req_reply(r, json_pack("{s:s}", "type", type));
	notify_all(NOTIFY_ACCOUNT_LOGIN_COMPLETED,
		   json_pack("{s:n, s:b, s:n}", "loginId", "success", 1, "error"));
	notify_updated();
}

void rpc_account_logout(struct req *r, json_t *params)
{
	uint64_t who = req_owner(r);
	bool had = account_logout();

	req_reply(r, json_object());
	if (had) {
		log_info("client %llu: logged out", (unsigned long long)who);
		notify_updated();
	}
}

/* Amazon Bedrock's GovCloud check: tandem has no Bedrock provider, so not
 * GovCloud and nothing to warn about. */
void rpc_account_bedrock_check_gov_cloud_requirements(struct req *r, json_t *params)
{
	(void)params;
	req_reply(r, json_pack("{s:b, s:b}", "isGovCloud", 0, "shouldWarn", 0));
}
