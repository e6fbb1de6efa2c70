/* linkurl.c - see linkurl.h. */
#include "linkurl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char *prefix;
	enum linkurl_scheme scheme;
} schemes[] = {
	{ "tcp://", LINKURL_TCP },       { "tls+tcp://", LINKURL_TLS },
	{ "ws://", LINKURL_WS },         { "wss://", LINKURL_WSS },
	{ "ipc://", LINKURL_IPC },       { "unix://", LINKURL_UNIX },
	{ "abstract://", LINKURL_ABSTRACT },
};

static bool scheme_is_local(enum linkurl_scheme s)
{
	return s == LINKURL_IPC || s == LINKURL_UNIX || s == LINKURL_ABSTRACT;
}

static int fail(char *err, size_t errlen, const char *url, const char *why)
{
	if (err && errlen)
		snprintf(err, errlen, "link URL '%.200s': %s", url, why);
	return -EINVAL;
}

/* HOST:PORT[/path] after the scheme; IPv6 in brackets. */
static int parse_host_port(const char *url, const char *p, struct linkurl *u, char *err,
			   size_t errlen)
{
	const char *end, *colon;
	char *pe;
	unsigned long port;

	if (*p == '[') {
		end = strchr(++p, ']');
		if (!end)
			return fail(err, errlen, url, "unclosed '[' in the host");
		colon = end + 1;
	} else {
		end = p + strcspn(p, ":/");
		colon = end;
	}
	if ((size_t)(end - p) >= sizeof(u->host))
		return fail(err, errlen, url, "host name too long");
	if (*colon != ':' || colon[1] < '0' || colon[1] > '9')
		return fail(err, errlen, url, "expected HOST:PORT");
	errno = 0;
	port = strtoul(colon + 1, &pe, 10);
	if (errno || port > 65535 || (*pe && *pe != '/'))
		return fail(err, errlen, url, "bad port");
	if (*pe == '/' && u->scheme != LINKURL_WS && u->scheme != LINKURL_WSS)
		return fail(err, errlen, url, "only ws:// and wss:// take a path");
	memcpy(u->host, p, (size_t)(end - p));
	u->host[end - p] = '\0';
	u->port = (unsigned)port;
	return 0;
}

int linkurl_parse(const char *url, struct linkurl *out, char *err, size_t errlen)
{
	struct linkurl u = { 0 };
	const char *rest = NULL;

	for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]) && !rest; i++) {
		if (strncmp(url, schemes[i].prefix, strlen(schemes[i].prefix)) == 0) {
			u.scheme = schemes[i].scheme;
			rest = url + strlen(schemes[i].prefix);
		}
	}
	if (!rest)
		return fail(err, errlen, url,
			    "unknown scheme (tcp://, tls+tcp://, ws://, wss://, ipc://, unix://, "
			    "abstract://)");
	if (scheme_is_local(u.scheme)) {
		if (!*rest)
			return fail(err, errlen, url, "nothing after the scheme");
		u.path = rest;
	} else if (parse_host_port(url, rest, &u, err, errlen) < 0) {
		return -EINVAL;
	}
	*out = u;
	return 0;
}

static bool host_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1) {
		if (IN6_IS_ADDR_LOOPBACK(&a6))
			return true;
		return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
	}
	return false;
}

bool linkurl_is_local_socket(const char *url)
{
	struct linkurl u;

	return linkurl_parse(url, &u, NULL, 0) == 0 && scheme_is_local(u.scheme);
}

bool linkurl_is_loopback(const char *url)
{
	struct linkurl u;

	return linkurl_parse(url, &u, NULL, 0) == 0 && !scheme_is_local(u.scheme) &&
	       host_is_loopback(u.host);
}

bool linkurl_is_local(const char *url)
{
	return linkurl_is_local_socket(url) || linkurl_is_loopback(url);
}

bool linkurl_transport_encrypted(const char *url)
{
	struct linkurl u;

	return linkurl_parse(url, &u, NULL, 0) == 0 &&
	       (u.scheme == LINKURL_TLS || u.scheme == LINKURL_WSS);
}

bool linkurl_needs_seal(const char *url)
{
	struct linkurl u;

	if (linkurl_parse(url, &u, NULL, 0) < 0)
		return true;
	return !scheme_is_local(u.scheme) && u.scheme != LINKURL_TLS && u.scheme != LINKURL_WSS;
}

bool linkurl_confidential(const char *url, bool sealed)
{
	struct linkurl u;

	if (linkurl_parse(url, &u, NULL, 0) < 0)
		return false;
	return sealed || scheme_is_local(u.scheme) || u.scheme == LINKURL_TLS ||
	       u.scheme == LINKURL_WSS || host_is_loopback(u.host);
}
