/* client_auth.c - the ws:// listener's Authorization check (client.h):
 * common/bearer.h for capability tokens, common/jwt.h for signed bearer
 * tokens. Reasons name the rule that failed, never the token.
 */
#include "client_int.h"

#include "bearer.h"
#include "jwt.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

struct client_auth {
	enum client_auth_mode mode;
	struct bearer *bearer;
	struct jwt_verifier *jwt;
};

int client_auth_new(const struct client_auth_cfg *cfg, struct client_auth **out, char *err,
		    size_t errlen)
{
	struct client_auth *a;
	int r = 0;

	*out = NULL;
	if (cfg->mode == CLIENT_AUTH_NONE)
		return 0;
	a = xcalloc(1, sizeof(*a));
	a->mode = cfg->mode;
	if (cfg->mode == CLIENT_AUTH_CAPABILITY) {
		if (!cfg->token_file == !cfg->token_sha256) {
			snprintf(err, errlen, "--ws-auth capability-token takes one of "
					      "--ws-token-file and --ws-token-sha256");
			r = -EINVAL;
		} else if (cfg->token_file) {
			r = bearer_from_file(cfg->token_file, &a->bearer, err, errlen);
		} else {
			r = bearer_from_sha256_hex(cfg->token_sha256, &a->bearer, err, errlen);
		}
	} else {
		struct jwt_config jc = { .issuer = cfg->issuer, .audience = cfg->audience,
					 .max_skew_s = cfg->max_skew_s };

		if (!cfg->secret_file) {
			snprintf(err, errlen, "--ws-auth signed-bearer-token takes "
					      "--ws-shared-secret-file");
			r = -EINVAL;
		} else {
			r = jwt_verifier_from_file(cfg->secret_file, &jc, &a->jwt, err, errlen);
		}
	}
	if (r < 0) {
		client_auth_free(a);
		return r;
	}
	*out = a;
	return 0;
}

struct client_auth *client_auth_free(struct client_auth *a)
{
	if (!a)
		return NULL;
	bearer_free(a->bearer);
	jwt_verifier_free(a->jwt);
	free(a);
	return NULL;
}

int client_auth_check(const struct client_auth *a, const char *authorization, char *why,
		      size_t whylen)
{
	const char *tok;
	size_t len;

	if (!a)
		return 0;
	if (!authorization) {
		snprintf(why, whylen, "no Authorization header");
		return -EACCES;
	}
	tok = bearer_token_of(authorization, &len);
	if (!tok) {
		snprintf(why, whylen, "Authorization is not a Bearer token");
		return -EACCES;
	}
	if (a->mode == CLIENT_AUTH_CAPABILITY) {
		if (bearer_check(a->bearer, tok, len))
			return 0;
		snprintf(why, whylen, "wrong capability token");
		return -EACCES;
	}
	return jwt_verify(a->jwt, tok, len, (int64_t)time(NULL), why, whylen);
}
