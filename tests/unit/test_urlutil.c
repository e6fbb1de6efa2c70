/* test_urlutil.c - URL helpers: encoding, query lookup, splitting, the
 * RFC 8414 / RFC 9728 discovery lists, the issuer check and Bearer
 * WWW-Authenticate parameters, each with hostile inputs. */
#include "testmain.h"
#include "urlutil.h"
#include "util.h"

#include <errno.h>
#include <string.h>

/* Checks and frees a returned string; want NULL expects NULL. */
static void expect_str(char *got, const char *want, const char *what)
{
	if (!want)
		ck_assert_msg(!got, "%s: got \"%s\", want NULL", what, got ? got : "");
	else
		ck_assert_msg(got && strcmp(got, want) == 0, "%s: got \"%s\", want \"%s\"", what,
			      got ? got : "(null)", want);
	free(got);
}

static char *long_string(size_t n, char c)
{
	char *s = xmalloc(n + 1);

	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* ---- encoding ---- */

START_TEST(encode)
{
	expect_str(url_encode(""), "", "empty");
	expect_str(url_encode("AZaz09-._~"), "AZaz09-._~", "unreserved");
	expect_str(url_encode("a b&c=d/e?f#g+h%"), "a%20b%26c%3Dd%2Fe%3Ff%23g%2Bh%25", "reserved");
	expect_str(url_encode("http://127.0.0.1:8/cb"), "http%3A%2F%2F127.0.0.1%3A8%2Fcb", "url");
	expect_str(url_encode("\xc3\xa9\x01\x7f"), "%C3%A9%01%7F", "bytes");
	expect_str(url_encode(NULL), NULL, "NULL");
}
END_TEST

START_TEST(form)
{
	const char *kv[] = { "grant_type", "authorization_code", "code", "a b+c", "skip", NULL,
			     "redirect_uri", "http://127.0.0.1:1/cb", NULL, "after end", NULL };
	const char *none[] = { NULL };
	const char *only_null[] = { "k", NULL, NULL };

	expect_str(url_form(kv),
		   "grant_type=authorization_code&code=a%20b%2Bc&redirect_uri=http%3A%2F%2F127.0.0.1"
		   "%3A1%2Fcb",
		   "pairs");
	expect_str(url_form(none), "", "no pairs");
	expect_str(url_form(only_null), "", "only a NULL value");
	expect_str(url_form(NULL), NULL, "NULL");
}
END_TEST

/* ---- queries ---- */

START_TEST(query_get)
{
	const char *q = "code=abc%2Fdef&state=x%20y+z&empty=&flag&code=second&k%5Fx=1";

	expect_str(url_query_get(q, "code"), "abc/def", "first of two");
	expect_str(url_query_get(q, "state"), "x y z", "%20 and +");
	expect_str(url_query_get(q, "empty"), "", "empty value");
	expect_str(url_query_get(q, "flag"), "", "no '='");
	expect_str(url_query_get(q, "k_x"), "1", "encoded key");
	expect_str(url_query_get(q, "missing"), NULL, "absent");
	expect_str(url_query_get(q, "cod"), NULL, "prefix is not a match");
	expect_str(url_query_get("", "a"), NULL, "empty query");
	expect_str(url_query_get("a=1&&b=2", "b"), "2", "empty parameter");
	expect_str(url_query_get("a=1=2", "a"), "1=2", "'=' in value");
	expect_str(url_query_get(NULL, "a"), NULL, "NULL query");
	expect_str(url_query_get("a=1", NULL), NULL, "NULL name");
}
END_TEST

START_TEST(query_get_hostile)
{
	_cleanup_free_ char *big = long_string(URL_MAX_LEN + 1, 'x');
	_cleanup_free_ char *edge = long_string(URL_MAX_LEN, 'x');

	expect_str(url_query_get("a=%zz", "a"), NULL, "bad hex");
	expect_str(url_query_get("a=%4", "a"), NULL, "short escape at end");
	expect_str(url_query_get("a=%", "a"), NULL, "lone %");
	expect_str(url_query_get("a=1&b=%g0", "a"), NULL, "bad escape elsewhere");
	expect_str(url_query_get("a=x%00y", "a"), NULL, "decodes to NUL");
	expect_str(url_query_get("a%00=1", "a"), NULL, "NUL in key never matches");
	big[0] = 'a';
	big[1] = '=';
	expect_str(url_query_get(big, "a"), NULL, "too long");
	edge[0] = 'a';
	edge[1] = '=';
	expect_str(url_query_get(edge, "a"), edge + 2, "exactly at the limit");
}
END_TEST

START_TEST(append_query)
{
	expect_str(url_append_query("https://h/a", "x=1"), "https://h/a?x=1", "no query");
	expect_str(url_append_query("https://h/a?y=2", "x=1"), "https://h/a?y=2&x=1", "has one");
	expect_str(url_append_query("https://h/a?", "x=1"), "https://h/a?x=1", "bare '?'");
	expect_str(url_append_query("https://h/a?y=2&", "x=1"), "https://h/a?y=2&x=1", "ends '&'");
	expect_str(url_append_query("https://h/a#frag", "x=1"), "https://h/a?x=1#frag", "fragment");
	expect_str(url_append_query("https://h/a?y#f?g", "x=1"), "https://h/a?y&x=1#f?g",
		   "'?' in fragment");
	expect_str(url_append_query("https://h/a", ""), "https://h/a", "empty query");
	expect_str(url_append_query(NULL, "x"), NULL, "NULL url");
	expect_str(url_append_query("https://h", NULL), NULL, "NULL query");
}
END_TEST

/* ---- split ---- */

static void expect_split(const char *url, const char *origin, const char *path)
{
	char *o = (char *)"untouched", *p = (char *)"untouched";
	int r = url_split(url, &o, &p);

	if (!origin) {
		ck_assert_msg(r == -EINVAL, "%s: %d, want -EINVAL", url ? url : "(null)", r);
		ck_assert_str_eq(o, "untouched");
		ck_assert_str_eq(p, "untouched");
		return;
	}
	ck_assert_msg(r == 0, "%s: %d", url, r);
	expect_str(o, origin, url);
	expect_str(p, path, url);
}

START_TEST(split)
{
	expect_split("https://Host:8443/a/b?q#f", "https://Host:8443", "/a/b");
	expect_split("HTTPS://h", "https://h", "");
	expect_split("http://h/", "http://h", "");
	expect_split("http://h?x", "http://h", "");
	expect_split("http://h#x", "http://h", "");
	expect_split("http://h/a/", "http://h", "/a/");
	expect_split("http://127.0.0.1:1/cb", "http://127.0.0.1:1", "/cb");
	expect_split("http://[::1]:8080/x", "http://[::1]:8080", "/x");
	expect_split("https://[2001:db8::1]", "https://[2001:db8::1]", "");
	expect_split("https://h:65535", "https://h:65535", "");
}
END_TEST

START_TEST(split_hostile)
{
	_cleanup_free_ char *big = long_string(URL_MAX_LEN, 'a');

	memcpy(big, "https://h/", 10);
	expect_split("http://user@host", NULL, NULL);
	expect_split("https://user:pw@host/x", NULL, NULL);
	expect_split("https://host/a@b", "https://host", "/a@b");
	expect_split("host/x", NULL, NULL);
	expect_split("//host/x", NULL, NULL);
	expect_split("ftp://host/x", NULL, NULL);
	expect_split("file:///etc/passwd", NULL, NULL);
	expect_split("https:/host", NULL, NULL);
	expect_split("https://", NULL, NULL);
	expect_split("https:///x", NULL, NULL);
	expect_split("https://h:", NULL, NULL);
	expect_split("https://h:0", NULL, NULL);
	expect_split("https://h:65536", NULL, NULL);
	expect_split("https://h:123456", NULL, NULL);
	expect_split("https://h:8x", NULL, NULL);
	expect_split("https://h:1:2", NULL, NULL);
	expect_split("https://[::1", NULL, NULL);
	expect_split("https://[::1]x", NULL, NULL);
	expect_split("https://[]", NULL, NULL);
	expect_split("https://[zz::1]", NULL, NULL);
	expect_split("https://h%41/", NULL, NULL);
	expect_split("https://h st/", NULL, NULL);
	expect_split("https://h/a b", NULL, NULL);
	expect_split("https://h/\r\nX: y", NULL, NULL);
	expect_split("https://h\xc3\xa9/", NULL, NULL);
	expect_split("", NULL, NULL);
	expect_split(NULL, NULL, NULL);
	expect_split(big, "https://h", big + 9);
	free(big);
	big = long_string(URL_MAX_LEN + 1, 'a');
	memcpy(big, "https://h/", 10);
	expect_split(big, NULL, NULL);
}
END_TEST

/* ---- discovery ---- */

/* n is read through a pointer: the call that fills it is an argument too. */
static void expect_strv(char **v, const size_t *n, const char *const *want)
{
	size_t nw = 0;

	while (want[nw])
		nw++;
	ck_assert_ptr_nonnull(v);
	ck_assert_uint_eq(*n, nw);
	for (size_t i = 0; i < nw; i++)
		ck_assert_str_eq(v[i], want[i]);
	ck_assert_ptr_null(v[nw]);
	strv_free(v);
}

START_TEST(as_candidates)
{
	const char *path[] = { "https://h/.well-known/oauth-authorization-server/a/b",
			       "https://h/.well-known/oauth-authorization-server",
			       "https://h/.well-known/openid-configuration/a/b",
			       "https://h/a/b/.well-known/openid-configuration",
			       "https://h/.well-known/openid-configuration", NULL };
	const char *root[] = { "https://h:8443/.well-known/oauth-authorization-server",
			       "https://h:8443/.well-known/openid-configuration", NULL };
	size_t n = 99;

	expect_strv(url_as_metadata_candidates("https://h/a/b", &n), &n, path);
	expect_strv(url_as_metadata_candidates("https://h/a/b/?q=1#f", &n), &n, path);
	expect_strv(url_as_metadata_candidates("https://h:8443", &n), &n, root);
	expect_strv(url_as_metadata_candidates("https://h:8443/", &n), &n, root);
	ck_assert_ptr_null(url_as_metadata_candidates("https://u@h/", &n));
	ck_assert_ptr_null(url_as_metadata_candidates("h/a", &n));
	ck_assert_ptr_null(url_as_metadata_candidates(NULL, &n));
	ck_assert_uint_eq(n, 2); /* untouched by failures */
	strv_free(url_as_metadata_candidates("https://h/x", NULL));
	strv_free(NULL);
}
END_TEST

START_TEST(resource_candidates)
{
	const char *mcp[] = { "https://h/.well-known/oauth-protected-resource/mcp",
			      "https://h/.well-known/oauth-protected-resource", NULL };
	const char *query[] = { "https://h/.well-known/oauth-protected-resource/mcp?t=1",
				"https://h/.well-known/oauth-protected-resource", NULL };
	const char *root[] = { "http://127.0.0.1:9/.well-known/oauth-protected-resource", NULL };
	size_t n = 0;

	expect_strv(url_resource_metadata_candidates("https://h/mcp", &n), &n, mcp);
	expect_strv(url_resource_metadata_candidates("https://h/mcp/", &n), &n, mcp);
	expect_strv(url_resource_metadata_candidates("https://h/mcp?t=1#x", &n), &n, query);
	expect_strv(url_resource_metadata_candidates("http://127.0.0.1:9/", &n), &n, root);
	ck_assert_ptr_null(url_resource_metadata_candidates("mailto:x@h", &n));
}
END_TEST

START_TEST(issuer_matches)
{
	/* Every candidate leads back to the issuer it was built from. */
	const char *issuers[] = { "https://h", "https://h/a/b", "http://127.0.0.1:8/t" };

	for (size_t i = 0; i < 3; i++) {
		size_t n;
		char **v = url_as_metadata_candidates(issuers[i], &n);
		_cleanup_free_ char *slash = xasprintf("%s/", issuers[i]);

		for (size_t j = 0; j < n; j++) {
			/* The root forms name the origin as issuer. */
			bool root = strcmp(v[j] + strcspn(v[j] + 8, "/") + 8,
					   "/.well-known/oauth-authorization-server") == 0 ||
				    strcmp(v[j] + strcspn(v[j] + 8, "/") + 8,
					   "/.well-known/openid-configuration") == 0;

			ck_assert_msg(url_issuer_matches(issuers[i], v[j]) == (!root || i == 0),
				      "%s from %s", issuers[i], v[j]);
			ck_assert(url_issuer_matches(slash, v[j]) == (!root || i == 0));
		}
		strv_free(v);
	}
	ck_assert(url_issuer_matches("https://h",
				     "https://h/.well-known/oauth-authorization-server"));
	ck_assert(url_issuer_matches("https://h/t/",
				     "https://h/.well-known/openid-configuration/t"));
	ck_assert(url_issuer_matches("https://h/t",
				     "https://h/t/.well-known/openid-configuration"));
}
END_TEST

START_TEST(issuer_mismatches)
{
	const char *as = "https://h/.well-known/oauth-authorization-server/t";

	ck_assert(!url_issuer_matches("https://h", as));
	ck_assert(!url_issuer_matches("https://h/t2", as));
	ck_assert(!url_issuer_matches("https://h/T", as));
	ck_assert(!url_issuer_matches("https://evil/t", as));
	ck_assert(!url_issuer_matches("http://h/t", as));
	ck_assert(!url_issuer_matches("https://h:443/t", as));
	ck_assert(!url_issuer_matches("https://h/t//", as));
	ck_assert(!url_issuer_matches("https://h/t?x", as));
	ck_assert(!url_issuer_matches("", as));
	ck_assert(!url_issuer_matches(NULL, as));
	/* Not a metadata URL, or not one an issuer can produce. */
	ck_assert(!url_issuer_matches("https://h", "https://h/"));
	ck_assert(!url_issuer_matches("https://h", "https://h/.well-known/oauth-protected-resource"));
	ck_assert(!url_issuer_matches("https://h/x",
				      "https://h/.well-known/oauth-authorization-serverx"));
	ck_assert(!url_issuer_matches("https://h/t", "https://h/x/.well-known/openid-configurationx"));
	ck_assert(!url_issuer_matches("https://h/t", "https://h/.well-known/oauth-authorization-server/t?x"));
	ck_assert(!url_issuer_matches("https://h/t", "https://h/.well-known/oauth-authorization-server/t#x"));
	ck_assert(!url_issuer_matches("https://u@h/t", "https://u@h/.well-known/openid-configuration/t"));
	ck_assert(!url_issuer_matches("https://h", NULL));
}
END_TEST

/* ---- WWW-Authenticate ---- */

START_TEST(www_auth)
{
	const char *h = "Bearer realm=\"x\", resource_metadata=\"https://h/.well-known/oauth-"
			"protected-resource\", error=invalid_token, scope=\"a b\"";

	expect_str(url_www_auth_param(h, "resource_metadata"),
		   "https://h/.well-known/oauth-protected-resource", "quoted");
	expect_str(url_www_auth_param(h, "error"), "invalid_token", "token");
	expect_str(url_www_auth_param(h, "ERROR"), "invalid_token", "name case");
	expect_str(url_www_auth_param(h, "scope"), "a b", "space in quotes");
	expect_str(url_www_auth_param(h, "realm"), "x", "first param");
	expect_str(url_www_auth_param(h, "missing"), NULL, "absent");
	expect_str(url_www_auth_param("bearer  realm = \"a\\\"b\\\\c\" ,,", "realm"), "a\"b\\c",
		   "escapes, BWS, scheme case, empty list items");
	expect_str(url_www_auth_param("Bearer", "realm"), NULL, "no params");
	expect_str(url_www_auth_param("Bearer realm=\"\"", "realm"), "", "empty quoted");
	expect_str(url_www_auth_param(NULL, "realm"), NULL, "NULL header");
	expect_str(url_www_auth_param("Bearer realm=x", NULL), NULL, "NULL param");
}
END_TEST

START_TEST(www_auth_other_challenges)
{
	expect_str(url_www_auth_param("Basic realm=\"b\", Bearer realm=\"t\"", "realm"), "t",
		   "Basic first");
	expect_str(url_www_auth_param("Bearer realm=\"t\", Basic realm=\"b\", charset=x",
				      "charset"),
		   NULL, "param of another scheme");
	expect_str(url_www_auth_param("Negotiate a87421000492aa874209af8bc028==, Bearer error=e",
				      "error"),
		   "e", "token68 before");
	expect_str(url_www_auth_param("Newauth abc/def+g=, Bearer scope=s", "scope"), "s",
		   "token68 with '/' and padding");
	expect_str(url_www_auth_param("Bearer realm=a, Bearer realm=b", "realm"), "a",
		   "first Bearer");
	expect_str(url_www_auth_param("Bearer x=1, Bearer realm=b", "realm"), "b",
		   "first Bearer that has it");
	expect_str(url_www_auth_param("BearerX realm=a", "realm"), NULL, "other scheme prefix");
	expect_str(url_www_auth_param("Basic, Bearer realm=\"r\"", "realm"), "r", "bare scheme");
}
END_TEST

START_TEST(www_auth_hostile)
{
	_cleanup_free_ char *big = long_string(URL_MAX_LEN + 1, 'a');

	memcpy(big, "Bearer realm=", 13);
	expect_str(url_www_auth_param(big, "realm"), NULL, "too long");
	expect_str(url_www_auth_param("Bearer realm=\"open", "realm"), NULL, "unterminated");
	expect_str(url_www_auth_param("Bearer realm=\"a\\", "realm"), NULL, "trailing backslash");
	expect_str(url_www_auth_param("Bearer realm=\"a\nb\"", "realm"), NULL, "control in quotes");
	expect_str(url_www_auth_param("realm=x", "realm"), NULL, "param before a scheme");
	expect_str(url_www_auth_param("Bearer realm=\"a\"b", "realm"), NULL, "junk after value");
	expect_str(url_www_auth_param("Bearer realm=x y=z", "realm"), NULL, "missing comma");
	expect_str(url_www_auth_param("Bearer =x", "realm"), NULL, "no name");
	expect_str(url_www_auth_param("Bearer realm=,", "realm"), NULL, "no value");
	expect_str(url_www_auth_param("Bearer@ realm=x", "realm"), NULL, "bad scheme");
	expect_str(url_www_auth_param("Bearer realm=x, \"y\"", "realm"), NULL, "stray quote");
}
END_TEST

static Suite *urlutil_suite(void)
{
	Suite *s = suite_create("urlutil");
	TCase *tc = tcase_create("urlutil");

	tcase_add_test(tc, encode);
	tcase_add_test(tc, form);
	tcase_add_test(tc, query_get);
	tcase_add_test(tc, query_get_hostile);
	tcase_add_test(tc, append_query);
	tcase_add_test(tc, split);
	tcase_add_test(tc, split_hostile);
	tcase_add_test(tc, as_candidates);
	tcase_add_test(tc, resource_candidates);
	tcase_add_test(tc, issuer_matches);
	tcase_add_test(tc, issuer_mismatches);
	tcase_add_test(tc, www_auth);
	tcase_add_test(tc, www_auth_other_challenges);
	tcase_add_test(tc, www_auth_hostile);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(urlutil_suite)
