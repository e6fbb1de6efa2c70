/* bhttp.h - a minimal HTTP/1.1 client for the benchmark's turn baseline:
 * POSTs a JSON body to the fake Responses provider on 127.0.0.1 over one
 * keep-alive TCP connection and reads the whole streamed (chunked) answer.
 * It exists so that the turn row can show what the same two model requests
 * cost when a client sends them directly, next to what they cost inside a
 * tandem turn. Failures (connect, a status other than 200, a malformed or
 * truncated answer) fail the benchmark. */
#ifndef TANDEM_BHTTP_H
#define TANDEM_BHTTP_H

#include <stddef.h>

struct bhttp;

struct bhttp *bhttp_connect(int port);
/* POST path with a JSON body; returns when the last chunk has arrived.
 * Returns the number of body bytes received. */
size_t bhttp_post(struct bhttp *h, const char *path, const char *body, size_t len);
/* Accepts NULL; returns NULL. */
struct bhttp *bhttp_free(struct bhttp *h);

#endif
