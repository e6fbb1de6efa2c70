/* log.h - leveled logging to stderr for both daemons.
 *
 * Program code logs once, at the point of decision; library-like code returns
 * a negative errno and lets the caller decide. Every line carries the time,
 * the level, the program name, the module (source file) and the calling
 * function. Never pass a secret (token, key, proof, credential) to these
 * functions: there is no redaction layer, the rule is that secrets never
 * reach a format string or a field.
 *
 * Two formats (log_set_format, or $TANDEM_LOG_FORMAT=text|json):
 *   text  "HH:MM:SS.mmm PROG LEVEL: FUNC: MESSAGE[ key=value...]"
 *   json  one object per line, for log collectors:
 *         {"time":"2025-01-31T12:00:00.123Z","level":"info",
 *          "daemon":"tandem-orchestrator","module":"orchestrator/env",
 *          "message":"...","fields":{"func":"...","pid":123,...}}
 *         Strings are escaped; bytes that are not UTF-8 become U+FFFD, so
 *         every line parses whatever a peer put into a message.
 * A line is written with one write call (lines from threads do not mix);
 * a message is cut at LOG_MSG_MAX bytes.
 */
#ifndef TANDEM_LOG_H
#define TANDEM_LOG_H

#include <stdarg.h>
#include <stddef.h>

#define LOG_MSG_MAX 2048

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };
enum log_format { LOG_FMT_TEXT = 0, LOG_FMT_JSON };

/* Extra key/value pairs for one line (a NULL key ends the list). Keys are
 * identifiers chosen by the caller; values are escaped like messages. */
struct log_field {
	const char *key;
	const char *value;
};
#define LOG_FIELDS(...) ((const struct log_field[]){ __VA_ARGS__, { 0, 0 } })

/* Sets the program name shown on every line and the maximum level printed.
 * The level can also come from $TANDEM_LOG (error|warn|info|debug), the
 * format from $TANDEM_LOG_FORMAT (text|json). */
void log_init(const char *prog, enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error", "warn", "info", "debug"; returns -EINVAL otherwise. */
int log_level_parse(const char *s, enum log_level *out);
/* Parses "text" or "json"; returns -EINVAL otherwise. */
int log_format_parse(const char *s, enum log_format *out);
/* Sets the format and exports it as $TANDEM_LOG_FORMAT, so that executors
 * this daemon spawns (which inherit its stderr) write the same format. */
void log_set_format(enum log_format fmt);
enum log_format log_get_format(void);

void log_emit(enum log_level level, const char *file, const char *func,
	      const struct log_field *fields, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
void log_emitv(enum log_level level, const char *file, const char *func,
	       const struct log_field *fields, const char *fmt, va_list ap)
	__attribute__((format(printf, 5, 0)));

/* Formats one line into buf (always NUL-terminated, ends in "\n" unless
 * cut at len) and returns its length; what log_emitv writes. For tests. */
size_t log_format_line(char *buf, size_t len, enum log_format fmt, enum log_level level,
		       const char *file, const char *func, const struct log_field *fields,
		       const char *msg);

#define log_error(...) log_emit(LOG_LVL_ERROR, __FILE__, __func__, NULL, __VA_ARGS__)
#define log_warn(...) log_emit(LOG_LVL_WARN, __FILE__, __func__, NULL, __VA_ARGS__)
#define log_info(...) log_emit(LOG_LVL_INFO, __FILE__, __func__, NULL, __VA_ARGS__)
#define log_debug(...)                                                         \
	do {                                                                   \
		if (log_get_level() >= LOG_LVL_DEBUG)                          \
			log_emit(LOG_LVL_DEBUG, __FILE__, __func__, NULL, __VA_ARGS__); \
	} while (0)
/* With fields: log_info_f(LOG_FIELDS({"addr", a}), "serving on %s", a). */
#define log_error_f(f, ...) log_emit(LOG_LVL_ERROR, __FILE__, __func__, f, __VA_ARGS__)
#define log_warn_f(f, ...) log_emit(LOG_LVL_WARN, __FILE__, __func__, f, __VA_ARGS__)
#define log_info_f(f, ...) log_emit(LOG_LVL_INFO, __FILE__, __func__, f, __VA_ARGS__)

#endif
