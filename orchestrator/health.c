/* health.c - see health.h. */
#include "health.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "env.h"
#include "envfile.h"
#include "log.h"
#include "metrics_tandem.h"
#include "opsd.h"
#include "orch.h"

static struct opsd *health_opsd;

int health_ready(char *reason, size_t len, void *arg)
{
	const struct envfile *ef = orch->envfile;

	if (!orch->listener) {
		snprintf(reason, len, "the client API is not serving yet");
		return 1;
	}
	for (size_t i = 0; ef && i < ef->n_envs; i++) {
		const struct envspec *es = &ef->envs[i];
		struct env *e;

		if (!es->required)
			continue;
		e = orch_env(es->id);
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
	unsigned n = 0;

	for (size_t i = 0; i < orch->n_envs; i++)
		n += !strcmp(env_state_name(env_state(orch->envs[i])), state);
	return n;
}

int health_start(const char *listen, char *err, size_t errlen)
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
	health_opsd = opsd_start(orch->loop, listen, metrics_tandem_registry(), health_ready, NULL,
				 err, errlen);
	if (!health_opsd)
		return -EINVAL;
	log_info_f(LOG_FIELDS({ "address", opsd_address(health_opsd) }),
		   "operations endpoint on http://%s (/livez /readyz /metrics)",
		   opsd_address(health_opsd));
	return 0;
}

void health_stop(void)
{
	health_opsd = opsd_stop(health_opsd);
	metrics_tandem_free();
}
