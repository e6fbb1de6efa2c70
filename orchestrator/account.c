/* account.c - see account.h. */
#include "account.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "secret.h"
#include "util.h"

/* The plan types of the app-server protocol (PlanType). */
static const char *const plan_types[] = {
	"free", "go", "plus", "pro", "prolite", "promax", "team",
	"self_serve_business_prolite", "self_serve_business_usage_based", "business", "ent26",
	"enterprise_cbp_automation", "enterprise_cbp_usage_based", "enterprise", "edu",
	"edu_plus", "edu_pro", "sci", "sci_plus", "unknown",
};

static struct {
	enum account_mode mode;
	struct secret *bearer;     /* API key or ChatGPT access token */
	struct secret *account_id; /* ChatGPT mode */
	const char *plan;          /* an entry of plan_types, or NULL */
} st;

/* A credential goes verbatim into an HTTP header: printable ASCII without
 * spaces only, so no value can smuggle in a header or a line break. */
static bool token_ok(const char *s, size_t len)
{
	if (len == 0 || memchr(s, '\0', len))
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] <= ' ' || s[i] > '~')
			return false;
	return true;
}

static int take_token(const char *what, const char *s, size_t len, size_t max,
		      struct secret **out, char *err, size_t errlen)
{
	int r;

	if (len > max) {
		snprintf(err, errlen, "%s: longer than %zu bytes", what, max);
		return -E2BIG;
	}
	if (!token_ok(s, len)) {
		snprintf(err, errlen, "%s: expected a non-empty token of printable characters", what);
		return -EINVAL;
	}
	r = secret_from_buf(s, len, out);
	if (r < 0)
		snprintf(err, errlen, "%s: cannot store it: %s", what, strerror(-r));
	return r;
}

static const char *plan_norm(const char *plan)
{
	if (!plan)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(plan_types); i++)
		if (strcmp(plan, plan_types[i]) == 0)
			return plan_types[i];
	return "unknown";
}

static void account_reset(void)
{
	st.bearer = secret_free(st.bearer);
	st.account_id = secret_free(st.account_id);
	st.plan = NULL;
	st.mode = ACCOUNT_NONE;
}

static void set_state(enum account_mode mode, struct secret *bearer, struct secret *account_id,
		      const char *plan)
{
	account_reset();
	st.mode = mode;
	st.bearer = bearer;
	st.account_id = account_id;
	st.plan = plan;
}

int account_login_api_key(const char *key, size_t len, char *err, size_t errlen)
{
	struct secret *k = NULL;
	int r = take_token("apiKey", key, len, SECRET_MAX, &k, err, errlen);

	if (r < 0)
		return r;
	set_state(ACCOUNT_API_KEY, k, NULL, NULL);
	return 0;
}

int account_login_chatgpt_tokens(const char *access_token, size_t len, const char *account_id,
			      const char *plan_type, char *err, size_t errlen)
{
	struct secret *tok = NULL, *acct = NULL;
	int r;

	r = take_token("accessToken", access_token, len, SECRET_MAX, &tok, err, errlen);
	if (r < 0)
		return r;
	r = take_token("chatgptAccountId", account_id, strlen(account_id), ACCOUNT_MAX_ACCOUNT_ID,
		       &acct, err, errlen);
	if (r < 0) {
		secret_free(tok);
		return r;
	}
	set_state(ACCOUNT_CHATGPT_TOKENS, tok, acct, plan_norm(plan_type));
	return 0;
}

bool account_logout(void)
{
	bool had = st.mode != ACCOUNT_NONE;

	account_reset();
	return had;
}

enum account_mode account_mode(void) { return st.mode; }
const char *account_bearer(void) { return st.bearer ? secret_data(st.bearer) : NULL; }
const char *account_chatgpt_account_id(void)
{
	return st.account_id ? secret_data(st.account_id) : NULL;
}
const char *account_plan_type(void) { return st.plan; }
