/* account.h - the orchestrator's one account: the credential the model API
 * sees for providers with requires_openai_auth.
 *
 * One shared state for the whole daemon (loop thread only): every thread's
 * next model request reads it, so a login or logout is seen at once.
 * Modes: none, an API key (account/login/start type apiKey), or ChatGPT
 * tokens handed over by a host app (type chatgptAuthTokens: an access token,
 * the ChatGPT account id and an optional plan type).
 *
 * Credentials live only in libsodium guarded memory (struct secret), owned
 * here; they are wiped when replaced, and on logout. Nothing
 * is written to disk and nothing here logs. With no login, model.c falls
 * back to the provider's env_key variable, read at send time.
 *
 * The client API handlers of account/... live in rpc_account.c.
 */
#ifndef TANDEM_ACCOUNT_H
#define TANDEM_ACCOUNT_H

#include <stdbool.h>
#include <stddef.h>

#define ACCOUNT_MAX_ACCOUNT_ID 256u /* a ChatGPT account id (a UUID today) */

enum account_mode {
	ACCOUNT_NONE = 0,
	ACCOUNT_API_KEY,
	ACCOUNT_CHATGPT_TOKENS,
};

/* Replaces the current credential (wiping it) with an API key. The key must
 * be 1..SECRET_MAX bytes of printable ASCII without spaces (it goes into an
 * HTTP header). Returns 0, or -EINVAL/-E2BIG with err set; on error the
 * current credential is kept. */
int account_login_api_key(const char *key, size_t len, char *err, size_t errlen);
/* Same for ChatGPT tokens. plan_type may be NULL; a value that is not a
 * known plan is kept as "unknown". */
int account_login_chatgpt_tokens(const char *access_token, size_t len, const char *account_id,
			      const char *plan_type, char *err, size_t errlen);
/* Wipes the credential. Returns true if there was one. */
bool account_logout(void);

enum account_mode account_mode(void);
/* The bearer token of the current login (API key or access token), NULL
 * without one. Borrowed: valid until the next login or logout; never log. */
const char *account_bearer(void);
/* ChatGPT mode only (else NULL): the account id, and the plan type (a
 * PlanType value; NULL when none was given). */
const char *account_chatgpt_account_id(void);
const char *account_plan_type(void);

#endif
