/* log.h - leveled logging to stderr for both daemons.
 *
 * Program code logs once, at the point of decision; library-like code returns
 * a negative errno and lets the caller decide. Every line carries the level,
 * the program name and the calling function. Never pass a secret (token,
 * key, proof, credential) to these functions: there is no redaction layer,
 * the rule is that secrets never reach a format string.
 */
#ifndef TANDEM_LOG_H
#define TANDEM_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Sets the program name shown on every line and the maximum level printed.
 * The level can also come from $TANDEM_LOG (error|warn|info|debug). */
void log_init(const char *prog, enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error", "warn", "info", "debug"; returns -EINVAL otherwise. */
int log_level_parse(const char *s, enum log_level *out);

void log_emit(enum log_level level, const char *func, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_emitv(enum log_level level, const char *func, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

#define log_error(...) log_emit(LOG_LVL_ERROR, __func__, __VA_ARGS__)
#define log_warn(...) log_emit(LOG_LVL_WARN, __func__, __VA_ARGS__)
#define log_info(...) log_emit(LOG_LVL_INFO, __func__, __VA_ARGS__)
#define log_debug(...)                                                         \
	do {                                                                   \
		if (log_get_level() >= LOG_LVL_DEBUG)                          \
			log_emit(LOG_LVL_DEBUG, __func__, __VA_ARGS__);        \
	} while (0)

#endif
