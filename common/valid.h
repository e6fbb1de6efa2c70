/* valid.h - the one rule for each kind of name tandem accepts from
 * configuration files, clients and peers. Every module that checks such a
 * name calls these; none keeps its own copy (copies drift).
 *
 * Pure functions, no state, no logging. NULL is never valid.
 */
#ifndef TANDEM_VALID_H
#define TANDEM_VALID_H

#include <stdbool.h>
#include <stddef.h>

#define VALID_ENV_ID_MAX 64u       /* bytes in an environment id */
#define VALID_ENV_NAME_MAX 256u    /* bytes in an environment variable name */
#define VALID_HEADER_NAME_MAX 256u /* bytes in an HTTP header name */

/* 1..max bytes of [A-Za-z0-9_-]: environment ids, MCP server names. */
bool valid_ident(const char *s, size_t max);
/* An environment id: valid_ident(s, VALID_ENV_ID_MAX). Says nothing about
 * reserved ids ("local", "none"): the registry decides those. */
bool valid_env_id(const char *s);
/* An environment variable name in the portable shell form
 * [A-Za-z_][A-Za-z0-9_]*, 1..VALID_ENV_NAME_MAX bytes, so that a name can
 * never smuggle '=' or a control byte into an environment block. The _n form
 * takes len bytes (no NUL inside). */
bool valid_env_name(const char *s);
bool valid_env_name_n(const char *s, size_t len);
/* An HTTP header name: an RFC 9110 token, 1..VALID_HEADER_NAME_MAX bytes. */
bool valid_header_name(const char *s);

#endif
