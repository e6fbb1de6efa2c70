/* link_sock.h - the link's own sockets for tcp://, ipc://, unix:// and
 * abstract://: a listener that accepts on the loop thread, and a dialer
 * that connects without blocking it. Internal to proto/ (link_ep.c picks
 * these for the schemes the kernel carries alone; see link.h).
 *
 * What a socket is given, whichever side made it: non-blocking,
 * close-on-exec, TCP_NODELAY on tcp (frames are small and each one is a
 * complete message; nng's tcp streams did the same).
 *
 * ipc:// and unix:// listeners behave as nng's did: a stale socket file
 * (nobody accepts on it) is replaced, the file is made 0600 and removed
 * when the listener is freed; abstract:// names have no file.
 * Host names (not literals) are resolved by a short-lived thread per dial
 * attempt (a bounded number at once), so that a slow DNS server never
 * stalls the loop; listeners resolve while they start.
 */
#ifndef TANDEM_PROTO_LINK_SOCK_H
#define TANDEM_PROTO_LINK_SOCK_H

#include "link.h"
#include "linkurl.h"

struct sock_listener;
struct sock_dialer;

/* True for the schemes these sockets serve. */
bool link_sock_scheme(enum linkurl_scheme s);

int sock_listener_new(struct loop *loop, const char *url, const struct linkurl *u,
		      link_accept_cb cb, void *arg, struct sock_listener **out, char *err,
		      size_t errlen);
int sock_listener_port(const struct sock_listener *L);
void sock_listener_free(struct sock_listener *L);

struct sock_dialer *sock_dialer_new(struct loop *loop, const struct linkurl *u);
void sock_dial(struct sock_dialer *D, unsigned timeout_ms, link_dial_cb cb, void *arg);
void sock_dialer_free(struct sock_dialer *D);

/* At most this many host name resolutions run at once in the process
 * (default 32); a dial beyond them fails at once with -EAGAIN and says
 * why, and its owner's backoff tries again. Tests lower it. */
void link_sock_set_resolve_max(unsigned n);

#endif
