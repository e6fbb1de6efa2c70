/* rpc.h - the client API methods (rpc.c). */
#ifndef TANDEM_RPC_H
#define TANDEM_RPC_H

#include <jansson.h>

struct session;

/* One request (id != NULL) or notification from a client session. */
void rpc_dispatch(struct session *s, const char *method, json_t *id, json_t *params);
/* The session ended: cancel what its requests wait on. */
void rpc_session_closed(struct session *s);

#endif
