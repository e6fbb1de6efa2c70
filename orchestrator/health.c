/* health.c - see health.h. */
#include "health.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "env.h"
#include "envfile.h"
#include "log.h"
#include "metrics_tandem.h"
#include "envs.h"
#include "opsd.h"
#include "store.h"

static struct opsd *health_opsd;
static const struct envfile *health_envfile; /* set once the client API serves */
static bool health_is_serving;
static bool health_want_store; /* not --ephemeral */

int health_ready(char *reason, size_t len, void *arg)
{
	const struct envfile *ef = health_envfile;

	if (!health_is_serving) {
		snprintf(reason, len, "the client API is not serving yet");
		return 1;
	}
	if (health_want_store && !store_is_open()) {
		snprintf(reason, len, "the thread store is not open");
		return 1;
	}
	for (size_t i = 0; ef && i < ef->n_envs; i++) {
		const struct envspec *es = &ef->envs[i];
		struct env *e;

		if (!es->required)
			continue;
		e = envs_find(es->id);
		if (!e) {
			snprintf(reason, len, "required environment '%s' was not started", es->id);
			return 1;
		}
		if (env_state(e) != ENV_READY) {
			snprintf(reason, len, "required environment '%s' is %s%s%s", es->id,
				 env_state_name(env_state(e)), env_error(e) ? ": " : "",
				 env_error(e) ? env_error(e) : "");
			return 1;
		}
	}
	return 0;
}

static unsigned env_count(const char *state, void *arg)
{
	static const enum env_state all[] = { ENV_CONNECTING, ENV_READY, ENV_DISCONNECTED };

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (strcmp(env_state_name(all[i]), state) == 0)
			return (unsigned)envs_count_state(all[i]);
	return 0;
}

int health_start(struct loop *l, const char *listen, char *err, size_t errlen)
{
	static const struct metrics_tandem_gauges gauges = {
		.env_count = env_count, .ready = health_ready,
	};
	int r = metrics_tandem_init("tandem-orchestrator", err, errlen);

	if (r < 0)
		return r;
	metrics_tandem_gauges(&gauges);
	if (!listen)
		return 0;
	health_opsd = opsd_start(l, listen, metrics_tandem_registry(), health_ready, NULL,
				 err, errlen);
	if (!health_opsd)
		return -EINVAL;
	log_info_f(LOG_FIELDS({ "address", opsd_address(health_opsd) }),
		   "operations endpoint on http://%s (/livez /readyz /metrics)",
		   opsd_address(health_opsd));
	return 0;
}

void health_serving(const struct envfile *ef, bool store)
{
	health_want_store = store;
	health_envfile = ef;
	health_is_serving = true;
}

void health_stop(void)
{
	health_is_serving = false;
	health_envfile = NULL;
	health_opsd = opsd_stop(health_opsd);
	metrics_tandem_free();
}
