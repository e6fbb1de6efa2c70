/* exhealth.h - the executor's operations endpoint (common/opsd.h): its
 * readiness rule and the figures read from its state at scrape time.
 *
 * Ready once the link listener is listening (exhealth_start is called after
 * listener_start succeeded). When executors dial out (issue 14), readiness
 * becomes "connected to the orchestrator": change exhealth_ready only.
 *
 * exhealth_start always declares the metrics; with listen NULL nothing
 * listens. Loop thread only.
 */
#ifndef TANDEM_EXEC_HEALTH_H
#define TANDEM_EXEC_HEALTH_H

#include <stddef.h>

struct executor;

/* Returns 0, or -errno with err filled (bad address, bind failure). */
int exhealth_start(struct executor *ex, const char *listen, char *err, size_t errlen);
void exhealth_stop(void);
int exhealth_ready(char *reason, size_t len, void *arg);

#endif
