/* gateway_auth.c - who may use the MCP gateway (gateway_int.h).
 *
 * config.toml's [mcp_gateway] (config_gateway.h) says how: "none" (allowed
 * only on a loopback listener: the Inspector's CLI cannot send headers),
 * "capability-token" (Authorization: Bearer <token>; only the token's
 * SHA-256 is kept, compared in constant time: common/bearer.h) or
 * "signed-bearer-token" (an HS256 JWT with exp, checked against the shared
 * secret and the configured issuer and audience: common/jwt.h). The files
 * are read once, when the gateway starts. A refusal names no token: the
 * 401 carries RFC 6750's WWW-Authenticate, with RFC 9728's
 * resource_metadata when a resource is configured, and nothing is logged
 * from the header.
 *
 * Origins: a request without Origin (every non-browser client) passes; a
 * browser's must be a loopback origin or one of allowed_origins, so a page
 * elsewhere cannot drive the gateway (DNS rebinding: the spec's first rule
 * for streamable HTTP servers).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "bearer.h"
#include "gateway_int.h"
#include "jwt.h"
#include "util.h"

#define WELL_KNOWN "/.well-known/oauth-protected-resource"

enum mode { AUTH_NONE, AUTH_TOKEN, AUTH_JWT };

static struct {
	enum mode mode;
	struct bearer *bearer;
	struct jwt_verifier *jwt;
	json_t *origins;  /* allowed_origins */
	json_t *metadata; /* RFC 9728, NULL when no resource is set */
	char *metadata_url;
} auth;

/* RFC 9728 section 3.1: the well-known path goes between the resource's
 * host and its path. */
static char *metadata_url(const char *resource)
{
	const char *host = strstr(resource, "://");
	const char *path;

	host = host ? host + 3 : resource;
	path = host + strcspn(host, "/?#");
	return xasprintf("%.*s" WELL_KNOWN "%.*s", (int)(path - resource), resource,
			 (int)strcspn(path, "?#"), path);
}

static void metadata_init(const json_t *cfg)
{
	const char *resource = json_string_value(json_object_get(cfg, "resource"));
	json_t *as = json_object_get(cfg, "authorization_servers");
	json_t *scopes = json_object_get(cfg, "scopes_supported");

	if (!resource)
		return;
	auth.metadata = json_pack("{s:s, s:[s], s:s}", "resource", resource,
				  "bearer_methods_supported", "header", "resource_name",
				  "tandem MCP gateway");
	if (as)
		json_object_set(auth.metadata, "authorization_servers", as);
	if (scopes)
		json_object_set(auth.metadata, "scopes_supported", scopes);
	auth.metadata_url = metadata_url(resource);
}

static int verifiers_init(const json_t *cfg, char *err, size_t errlen)
{
	const char *tf = json_string_value(json_object_get(cfg, "token_file"));
	const char *th = json_string_value(json_object_get(cfg, "token_sha256"));
	const char *sf = json_string_value(json_object_get(cfg, "shared_secret_file"));
	struct jwt_config jc = {
		.issuer = json_string_value(json_object_get(cfg, "issuer")),
		.audience = json_string_value(json_object_get(cfg, "audience")),
		.max_skew_s = (uint64_t)json_integer_value(
			json_object_get(cfg, "max_clock_skew_seconds")),
	};

	if (auth.mode == AUTH_TOKEN && tf)
		return bearer_from_file(tf, &auth.bearer, err, errlen);
	if (auth.mode == AUTH_TOKEN)
		return bearer_from_sha256_hex(th, &auth.bearer, err, errlen);
	if (auth.mode == AUTH_JWT)
		return jwt_verifier_from_file(sf, &jc, &auth.jwt, err, errlen);
	return 0;
}

int gateway_auth_init(const json_t *cfg, bool loopback, char *err, size_t errlen)
{
	const char *mode = json_string_value(json_object_get(cfg, "auth"));
	char why[512] = "";
	int r;

	gateway_auth_free();
	auth.mode = !mode || !strcmp(mode, "none")	   ? AUTH_NONE
		    : !strcmp(mode, "capability-token") ? AUTH_TOKEN
							  : AUTH_JWT;
	if (auth.mode == AUTH_NONE && !loopback) {
		snprintf(err, errlen, "a listener beyond loopback needs authentication: set "
			 "[mcp_gateway] auth in config.toml");
		return -EPERM;
	}
	r = verifiers_init(cfg, why, sizeof(why));
	if (r < 0) {
		snprintf(err, errlen, "[mcp_gateway] auth: %s", why);
		gateway_auth_free();
		return r;
	}
	auth.origins = json_deep_copy(json_object_get(cfg, "allowed_origins"));
	metadata_init(cfg);
	return 0;
}

void gateway_auth_free(void)
{
	auth.bearer = bearer_free(auth.bearer);
	auth.jwt = jwt_verifier_free(auth.jwt);
	json_decref(auth.origins);
	json_decref(auth.metadata);
	free(auth.metadata_url);
	memset(&auth, 0, sizeof(auth));
}

bool gateway_auth_enabled(void) { return auth.mode != AUTH_NONE; }

static bool token_ok(const char *authorization)
{
	char why[128];
	const char *tok;
	size_t len;

	if (auth.mode == AUTH_TOKEN)
		return bearer_check_header(auth.bearer, authorization);
	tok = authorization ? bearer_token_of(authorization, &len) : NULL;
	return tok && jwt_verify(auth.jwt, tok, len, (int64_t)time(NULL), why, sizeof(why)) == 0;
}

int gateway_auth_check(const char *authorization, char *www, size_t wwwlen)
{
	int n;

	if (auth.mode == AUTH_NONE || token_ok(authorization))
		return 0;
	/* RFC 6750 3.1: no error code when no credentials came. */
	n = snprintf(www, wwwlen, "Bearer realm=\"tandem\"%s",
		     authorization ? ", error=\"invalid_token\"" : "");
	if (auth.metadata_url && n >= 0 && (size_t)n < wwwlen)
		snprintf(www + n, wwwlen - (size_t)n, ", resource_metadata=\"%s\"",
			 auth.metadata_url);
	return -EACCES;
}

bool gateway_auth_loopback_host(const char *host, size_t len)
{
	char name[INET6_ADDRSTRLEN + 2];
	struct in_addr a4;
	struct in6_addr a6;
	size_t n = len && host[0] == '[' ? strcspn(host, "]") + 1 : strcspn(host, ":/");

	if (n > len || n >= sizeof(name))
		return false;
	if (n < len && host[n] != ':' && host[n] != '/') /* "127.0.0.1x" */
		return false;
	memcpy(name, host, n);
	name[n] = '\0';
	if (!strcasecmp(name, "localhost"))
		return true;
	if (inet_pton(AF_INET, name, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (n > 2 && name[0] == '[' && name[n - 1] == ']') {
		name[n - 1] = '\0';
		return inet_pton(AF_INET6, name + 1, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
	}
	return false;
}

static bool loopback_origin(const char *origin)
{
	const char *host = strstr(origin, "://");

	if (!host || (strncasecmp(origin, "http://", 7) && strncasecmp(origin, "https://", 8)))
		return false;
	host += 3;
	return gateway_auth_loopback_host(host, strlen(host));
}

bool gateway_auth_origin_ok(const char *origin)
{
	json_t *v;
	size_t i;

	if (!origin)
		return true;
	json_array_foreach(auth.origins, i, v)
		if (!strcasecmp(json_string_value(v), origin))
			return true;
	return loopback_origin(origin);
}

json_t *gateway_auth_metadata(void)
{
	return auth.metadata ? json_incref(auth.metadata) : NULL;
}
