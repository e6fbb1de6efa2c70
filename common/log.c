/* log.c - see log.h. One fprintf per line so lines from threads do not mix. */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *log_prog = "tandem";
static enum log_level log_level_max = LOG_LVL_INFO;

static const char *const log_names[] = { "error", "warn", "info", "debug" };

int log_level_parse(const char *s, enum log_level *out)
{
	for (unsigned i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++) {
		if (s && strcmp(s, log_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void log_init(const char *prog, enum log_level level)
{
	enum log_level env_level;

	if (prog)
		log_prog = prog;
	log_level_max = level;
	if (log_level_parse(getenv("TANDEM_LOG"), &env_level) == 0)
		log_level_max = env_level;
}

void log_set_level(enum log_level level) { log_level_max = level; }
enum log_level log_get_level(void) { return log_level_max; }

void log_emitv(enum log_level level, const char *func, const char *fmt, va_list ap)
{
	char msg[2048];
	struct timespec ts;
	struct tm tm;

	if (level > log_level_max)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	fprintf(stderr, "%02d:%02d:%02d.%03ld %s %s: %s: %s\n", tm.tm_hour, tm.tm_min,
		tm.tm_sec, ts.tv_nsec / 1000000, log_prog, log_names[level], func, msg);
}

void log_emit(enum log_level level, const char *func, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emitv(level, func, fmt, ap);
	va_end(ap);
}
