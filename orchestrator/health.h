/* health.h - the orchestrator's operations endpoint (common/opsd.h): its
 * readiness rule and the figures read from its state at scrape time.
 *
 * Ready when the client listener serves, the thread store is open (unless
 * the orchestrator keeps none: --ephemeral) and every environment marked
 * `required = true` in environments.toml is READY; otherwise /readyz says
 * which one is not and why.
 *
 * health_start always declares the metrics (counting does not depend on the
 * endpoint); with listen NULL nothing listens. Until health_serving() the
 * daemon is not ready. Loop thread only.
 */
#ifndef TANDEM_HEALTH_H
#define TANDEM_HEALTH_H

#include <stdbool.h>

#include <stddef.h>

struct envfile;
struct loop;

/* Returns 0, or -errno with err filled (bad address, bind failure). */
int health_start(struct loop *l, const char *listen, char *err, size_t errlen);
/* The client API serves; ef (borrowed, outlives health_stop) names the
 * required environments; store: a thread store is expected open. */
void health_serving(const struct envfile *ef, bool store);
void health_stop(void);
/* The readiness rule: 0 when ready, else non-zero with reason filled. */
int health_ready(char *reason, size_t len, void *arg);

#endif
