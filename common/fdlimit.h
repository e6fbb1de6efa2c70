/* fdlimit.h - the process's open-file limit: raised at start-up, and
 * running out of descriptors reported as what it is.
 *
 * Both daemons hold one or more descriptors per link (a socket, nng's
 * pollers) and an orchestrator may hold a thousand links: the default soft
 * limit of 1,024 is the first wall they hit. fdlimit_raise lifts the soft
 * limit to the hard one (nothing above it: that needs privileges and is the
 * administrator's call). fdlimit_why turns an -EMFILE / -ENFILE into a
 * sentence that says which limit ran out and what to do, so that it is not
 * reported as a token-file error or an "Input/output error".
 */
#ifndef TANDEM_COMMON_FDLIMIT_H
#define TANDEM_COMMON_FDLIMIT_H

#include <stdbool.h>
#include <stddef.h>

/* Soft RLIMIT_NOFILE -> hard. Returns the limit now in force (or -errno);
 * *before gets the soft limit found (may be NULL). */
long fdlimit_raise(long *before);
/* The soft limit in force now, or -1. */
long fdlimit_current(void);
/* err is a negative errno: true for -EMFILE and -ENFILE. */
bool fdlimit_exhausted(int err);
/* For an exhausted err: "out of file descriptors (the process's limit of N
 * is reached: raise `ulimit -n`...)" in buf; else strerror(-err). Returns buf. */
const char *fdlimit_why(int err, char *buf, size_t len);

#endif
