/* exhealth.c - see exhealth.h. */
#include "exhealth.h"

#include <errno.h>
#include <stdio.h>

#include "executor.h"
#include "log.h"
#include "metrics_tandem.h"
#include "opsd.h"

static struct opsd *exhealth_opsd;

int exhealth_ready(char *reason, size_t len, void *arg)
{
	const struct executor *ex = arg;

	if (!ex || !ex->loop) {
		snprintf(reason, len, "the link listener is not started");
		return 1;
	}
	return 0;
}

static unsigned processes(void *arg)
{
	const struct executor *ex = arg;

	return ex->n_procs;
}

int exhealth_start(struct executor *ex, const char *listen, char *err, size_t errlen)
{
	static struct metrics_tandem_gauges gauges = {
		.processes = processes, .ready = exhealth_ready,
	};
	int r = metrics_tandem_init("tandem-executor", err, errlen);

	if (r < 0)
		return r;
	gauges.arg = ex;
	metrics_tandem_gauges(&gauges);
	if (!listen)
		return 0;
	exhealth_opsd = opsd_start(ex->loop, listen, metrics_tandem_registry(), exhealth_ready, ex,
				   err, errlen);
	if (!exhealth_opsd)
		return -EINVAL;
	log_info_f(LOG_FIELDS({ "address", opsd_address(exhealth_opsd) }),
		   "operations endpoint on http://%s (/livez /readyz /metrics)",
		   opsd_address(exhealth_opsd));
	return 0;
}

void exhealth_stop(void)
{
	exhealth_opsd = opsd_stop(exhealth_opsd);
	metrics_tandem_free();
}
