/* mhdloop.h - a libmicrohttpd daemon driven by the daemon's event loop, for
 * HTTP endpoints that hold requests open (the MCP gateway: answers that
 * come later, event streams).
 *
 * The approach of opsd.c (CODING_STYLE "Operations endpoint"): MHD runs in
 * its external-epoll mode without a thread of its own; its epoll descriptor
 * is a loop_io source and MHD_run is called on the loop thread when that is
 * readable or MHD's own timeout (a loop timer) expires. Handlers therefore
 * run on the loop thread and use domain state without locks. The caller
 * makes the listening socket here (close-on-exec, non-blocking, port 0
 * resolved) and hands it to MHD_start_daemon with MHD_OPTION_LISTEN_SOCKET.
 *
 * Suspended connections (MHD_ALLOW_SUSPEND_RESUME) are resumed from loop
 * callbacks that are not MHD's: mhdloop_kick() makes MHD look at them at
 * once (MHD_run on the next turn of the loop, never inside the caller: it
 * may be walking lists MHD's callbacks change) instead of waiting for its
 * inter-thread wake-up to come round. While MHD has work it can do at once (a timeout of 0), MHD_run is
 * called again without a turn of the loop in between.
 *
 * Ownership: mhdloop_attach takes the daemon; mhdloop_free stops it (which
 * closes the listening socket). Library code: nothing logs.
 */
#ifndef TANDEM_MHDLOOP_H
#define TANDEM_MHDLOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct loop;
struct mhdloop;
struct MHD_Daemon;

/* A listening TCP socket on ss (backlog 128). Returns the descriptor or
 * -errno with a reason in err. */
int mhdloop_listen(const struct sockaddr_storage *ss, socklen_t len, char *err, size_t errlen);
/* "HOST:PORT" ("[V6]:PORT") the socket is bound to, into buf. */
void mhdloop_bound_address(int fd, char *buf, size_t len);
/* True when ss is a loopback address (127.0.0.0/8, ::1, ::ffff:127.x). */
bool mhdloop_is_loopback(const struct sockaddr_storage *ss);

/* Drives d (started with MHD_USE_EPOLL, no thread) from l. NULL with err
 * when MHD has no epoll descriptor to watch (d is stopped then). */
struct mhdloop *mhdloop_attach(struct loop *l, struct MHD_Daemon *d, char *err, size_t errlen);
/* Runs MHD on the next turn of the loop (after a resume). */
void mhdloop_kick(struct mhdloop *m);
/* Stops the daemon and frees. NULL ok; returns NULL. Not from inside an
 * MHD callback. */
struct mhdloop *mhdloop_free(struct mhdloop *m);

#endif
