/* linkurl.h - what a link URL is: its scheme, host and port, and the one
 * policy both daemons use to decide whether a link is local, loopback,
 * encrypted by its transport, must be sealed, and is confidential.
 *
 * Schemes (nng stream transports): tcp://HOST:PORT, tls+tcp://HOST:PORT,
 * ws://HOST:PORT/PATH, wss://HOST:PORT/PATH, ipc:///PATH, unix:///PATH,
 * abstract://NAME. HOST is a name, an IPv4 literal or an IPv6 literal in
 * brackets.
 *
 * Which hosts count as loopback (decided here, once):
 *   - an IPv4 literal in 127.0.0.0/8 written as a dotted quad (inet_pton);
 *   - the IPv6 literal ::1, and IPv4-mapped ::ffff:127.x.y.z;
 *   - the name "localhost", exactly (ASCII case-insensitive, no trailing
 *     dot). Any other name is never loopback, however it looks
 *     ("127.evil.example", "localhost.evil"): a name may resolve anywhere.
 * Forms the resolver might also take for loopback ("127.1", "0x7f.0.0.1")
 * are not recognised, which errs on the safe side.
 */
#ifndef TANDEM_PROTO_LINKURL_H
#define TANDEM_PROTO_LINKURL_H

#include <stdbool.h>
#include <stddef.h>

enum linkurl_scheme {
	LINKURL_TCP,
	LINKURL_TLS,      /* tls+tcp:// */
	LINKURL_WS,
	LINKURL_WSS,
	LINKURL_IPC,      /* ipc:// */
	LINKURL_UNIX,     /* unix:// (nng's alias of ipc://) */
	LINKURL_ABSTRACT, /* abstract:// (Linux abstract socket namespace) */
};

#define LINKURL_HOST_MAX 256

struct linkurl {
	enum linkurl_scheme scheme;
	char host[LINKURL_HOST_MAX]; /* network schemes: brackets removed; "" = any */
	unsigned port;               /* network schemes */
	const char *path;            /* local schemes: points into the parsed URL */
};

/* Parses url. Returns 0, or -EINVAL with a reason in err (unknown scheme,
 * missing or bad port, host too long...). */
int linkurl_parse(const char *url, struct linkurl *out, char *err, size_t errlen);

/* ipc://, unix://, abstract://: a socket on this machine, no network. */
bool linkurl_is_local_socket(const char *url);
/* A network scheme whose host is loopback (see above). */
bool linkurl_is_loopback(const char *url);
/* Only this machine can reach it: a local socket or a loopback host. */
bool linkurl_is_local(const char *url);
/* tls+tcp:// and wss://: the transport itself encrypts. */
bool linkurl_transport_encrypted(const char *url);
/* The link must be sealed by tandem (PROTOCOL.md): every link that is not
 * a local socket and not encrypted by its transport, loopback included. */
bool linkurl_needs_seal(const char *url);
/* Nobody else can read what crosses the link: a local socket, an
 * encrypted transport, a link that is sealed, or a loopback host. An
 * unparsable URL is not confidential. */
bool linkurl_confidential(const char *url, bool sealed);

#endif
