/* urlutil.h - URL helpers for OAuth: encoding, queries, well-known
 * discovery URLs (RFC 8414, RFC 9728), the issuer check and the
 * WWW-Authenticate parameters of a Bearer challenge.
 *
 * Ownership: every string or array returned is malloc'd and belongs to the
 * caller (free(), or strv_free() from util.h for arrays). NULL means bad input:
 * NULL arguments, malformed syntax, or input longer than URL_MAX_LEN.
 * Nothing here logs (queries and headers can carry codes and tokens).
 *
 * URLs handled here are absolute http or https URLs in ASCII: no spaces,
 * control characters or bytes above 0x7e, and no userinfo ("user@host"):
 * credentials in URLs are not supported.
 */
#ifndef TANDEM_URLUTIL_H
#define TANDEM_URLUTIL_H

#include <stdbool.h>
#include <stddef.h>

#define URL_MAX_LEN 8192

/* Percent-encodes every byte except the RFC 3986 unreserved set
 * (ALPHA DIGIT - . _ ~), with upper-case hex. */
char *url_encode(const char *s);

/* {k1, v1, k2, v2, ..., NULL} -> "k1=v1&k2=v2", keys and values through
 * url_encode (valid application/x-www-form-urlencoded). The list ends at the
 * first NULL key; a pair whose value is NULL is left out. No pairs: "". */
char *url_form(const char *const *kv);

/* The first value of `name` in a raw query ("a=1&b=x%20y", no '?'),
 * decoded (%XX, and '+' as space); a parameter without '=' has the value "".
 * Keys are decoded before comparing. NULL if absent, if the query is longer
 * than URL_MAX_LEN or holds any malformed %-escape, or if the value decodes
 * to a NUL byte. */
char *url_query_get(const char *query, const char *name);

/* url with `query` appended: "?query", or "&query" when url already has a
 * query, placed before any #fragment. An empty query returns a copy. */
char *url_append_query(const char *url, const char *query);

/* "https://Host:8443/a/b?q#f" -> origin "https://Host:8443" (scheme in
 * lower case, authority as given), path "/a/b" ("" when none or "/"). Only
 * http and https; the host is a name, IPv4 or [IPv6] literal, the port
 * 1..65535. Returns 0, or -EINVAL (outputs untouched). */
int url_split(const char *url, char **origin, char **path);

/* Where to look for authorization server metadata of an issuer (or, for
 * servers that predate resource metadata, of an MCP server URL), in order.
 * With P the path without a trailing "/" and O the origin:
 *   1. O/.well-known/oauth-authorization-server P   (RFC 8414 §3.1)
 *   2. O/.well-known/oauth-authorization-server     (root)
 *   3. O/.well-known/openid-configuration P         (OIDC, path inserted)
 *   4. O P/.well-known/openid-configuration         (OIDC Discovery 1.0 §4)
 *   5. O/.well-known/openid-configuration           (root)
 * Duplicates are left out (an empty P gives just 1 and 3). Query and
 * fragment are ignored. NULL-terminated; *n (if n) gets the count. */
char **url_as_metadata_candidates(const char *issuer_or_url, size_t *n);

/* RFC 9728 §3.1 for a resource URL: the path-inserted form (query kept),
 * then the root form O/.well-known/oauth-protected-resource. A trailing "/"
 * of the path is dropped; duplicates are left out. */
char **url_resource_metadata_candidates(const char *resource_url, size_t *n);


/* RFC 8414 §3.3: metadata fetched from metadata_url must name the issuer
 * that URL was built from. The expected issuer is the origin plus the path
 * after "/.well-known/oauth-authorization-server" or
 * "/.well-known/openid-configuration", or, for the path-appended OIDC form,
 * the path before "/.well-known/openid-configuration". Compared exactly,
 * except that one trailing "/" on either side is insignificant. False for a
 * metadata URL of another shape or with a query or fragment. */
bool url_issuer_matches(const char *issuer, const char *metadata_url);

/* The value of auth-param `param` (name compared case-insensitively) in the
 * first Bearer challenge of a WWW-Authenticate value that has it, unquoted:
 *   Bearer realm="x", resource_metadata="https://...", error="invalid_token"
 * Other challenges (and token68 forms) are skipped. NULL if absent, if the
 * header is malformed or longer than URL_MAX_LEN. */
char *url_www_auth_param(const char *header, const char *param);

#endif
