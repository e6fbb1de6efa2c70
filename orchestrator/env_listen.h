/* env_listen.h - the orchestrator's listener for executors that dial out
 * (`tandem-orchestrator --executor-listen URL`).
 *
 * A connection must name its environment within the handshake timeout
 * (the dial-in preface, proto/handshake.h); the listener then asks its
 * owner (envs.c) for that environment and hands the connection over
 * (env_adopt), where the handshake runs with the environment's secret as
 * on a connection the orchestrator dialled. A connection that sends
 * anything else, names no environment the owner accepts, or is too slow is
 * closed; past ENV_LISTEN_MAX_PENDING connections still naming themselves,
 * the oldest goes.
 *
 * State: one listener per process, a file static, loop thread only. Starts
 * nng threads: after the orchestrator confined itself (main.c).
 */
#ifndef TANDEM_ENV_LISTEN_H
#define TANDEM_ENV_LISTEN_H

#include <stddef.h>

struct loop;
struct env;

#define ENV_LISTEN_MAX_PENDING 256u
#define ENV_LISTEN_PREFACE_MS 3000u

/* The environment a connection named, or NULL with a reason (logged). */
typedef struct env *(*env_listen_lookup_fn)(const char *id, char *why, size_t whylen);

/* tls_file: certificate and key (PEM) for tls+tcp:// and wss://, else NULL. */
int env_listen_start(struct loop *l, const char *url, const char *tls_file,
		     env_listen_lookup_fn lookup, char *err, size_t errlen);
void env_listen_stop(void);
/* The bound port (a tcp URL with port 0), or 0. */
int env_listen_port(void);

#endif
