/* log.c - see log.h. Each line is built in a stack buffer and written with
 * one write(2), so lines from threads do not interleave. */
#include "log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX (LOG_MSG_MAX * 6 + 2048) /* every byte escaped as \u00XX */

static const char *log_prog = "tandem";
static enum log_level log_level_max = LOG_LVL_INFO;
static enum log_format log_fmt = LOG_FMT_TEXT;

static const char *const log_names[] = { "error", "warn", "info", "debug" };
static const char *const fmt_names[] = { "text", "json" };

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

int log_format_parse(const char *s, enum log_format *out)
{
	for (unsigned i = 0; i < sizeof(fmt_names) / sizeof(fmt_names[0]); i++) {
		if (s && strcmp(s, fmt_names[i]) == 0) {
			*out = (enum log_format)i;
			return 0;
		}
	}
	return -EINVAL;
}

void log_init(const char *prog, enum log_level level)
{
	enum log_level env_level;
	enum log_format env_fmt;

	if (prog)
		log_prog = prog;
	log_level_max = level;
	if (log_level_parse(getenv("TANDEM_LOG"), &env_level) == 0)
		log_level_max = env_level;
	if (log_format_parse(getenv("TANDEM_LOG_FORMAT"), &env_fmt) == 0)
		log_fmt = env_fmt;
}

void log_set_level(enum log_level level) { log_level_max = level; }
enum log_level log_get_level(void) { return log_level_max; }
enum log_format log_get_format(void) { return log_fmt; }

void log_set_format(enum log_format fmt)
{
	log_fmt = fmt;
	setenv("TANDEM_LOG_FORMAT", fmt_names[fmt], 1);
}

/* ---- a bounded line builder ------------------------------------------------- */

struct line {
	char *buf;
	size_t len, cap; /* cap excludes the final NUL */
};

static void put(struct line *l, const char *s, size_t n)
{
	if (n > l->cap - l->len)
		n = l->cap - l->len;
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

static void puts_(struct line *l, const char *s)
{
	put(l, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/* A JSON string: quotes, backslash and control characters escaped, invalid
 * UTF-8 replaced by U+FFFD. */
static void put_json_str(struct line *l, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str);
	char esc[8];

	puts_(l, "\"");
	for (size_t i = 0; i < n;) {
		size_t k = utf8_len(s + i, n - i);

		if (k == 0) {
			puts_(l, "\\ufffd");
			i++;
		} else if (s[i] == '"' || s[i] == '\\') {
			put(l, "\\", 1);
			put(l, (const char *)s + i++, 1);
		} else if (s[i] < 0x20 || s[i] == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", s[i++]);
			puts_(l, esc);
		} else {
			put(l, (const char *)s + i, k);
			i += k;
		}
	}
	puts_(l, "\"");
}

/* "../orchestrator/env.c" -> "orchestrator/env": the last directory and
 * the file name without its extension. */
static void put_module(struct line *l, const char *file)
{
	const char *last = strrchr(file, '/'), *start = file;
	char mod[128], *dot;

	for (const char *p = last; p && p > file; p--)
		if (p[-1] == '/') {
			start = p;
			break;
		}
	snprintf(mod, sizeof(mod), "%s", start);
	if ((dot = strrchr(mod, '.')) && !strchr(dot, '/'))
		*dot = '\0';
	put_json_str(l, mod);
}

static void put_json_line(struct line *l, enum log_level level, const struct timespec *ts,
			  const char *file, const char *func, const struct log_field *f,
			  const char *msg)
{
	char t[64];
	struct tm tm;

	gmtime_r(&ts->tv_sec, &tm);
	snprintf(t, sizeof(t), "{\"time\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\"",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 ts->tv_nsec / 1000000);
	puts_(l, t);
	puts_(l, ",\"level\":\"");
	puts_(l, log_names[level]);
	puts_(l, "\",\"daemon\":");
	put_json_str(l, log_prog);
	puts_(l, ",\"module\":");
	put_module(l, file ? file : "?");
	puts_(l, ",\"message\":");
	put_json_str(l, msg);
	puts_(l, ",\"fields\":{\"func\":");
	put_json_str(l, func ? func : "?");
	snprintf(t, sizeof(t), ",\"pid\":%ld", (long)getpid());
	puts_(l, t);
	for (; f && f->key; f++) {
		puts_(l, ",");
		put_json_str(l, f->key);
		puts_(l, ":");
		put_json_str(l, f->value ? f->value : "");
	}
	puts_(l, "}}");
}

static void put_text_line(struct line *l, enum log_level level, const struct timespec *ts,
			  const char *func, const struct log_field *f, const char *msg)
{
	char head[256];
	struct tm tm;

	gmtime_r(&ts->tv_sec, &tm);
	snprintf(head, sizeof(head), "%02d:%02d:%02d.%03ld %s %s: %s: ", tm.tm_hour, tm.tm_min,
		 tm.tm_sec, ts->tv_nsec / 1000000, log_prog, log_names[level], func ? func : "?");
	puts_(l, head);
	puts_(l, msg);
	for (; f && f->key; f++) {
		puts_(l, " ");
		puts_(l, f->key);
		puts_(l, "=");
		puts_(l, f->value ? f->value : "");
	}
}

size_t log_format_line(char *buf, size_t len, enum log_format fmt, enum log_level level,
		       const char *file, const char *func, const struct log_field *fields,
		       const char *msg)
{
	struct line l = { .buf = buf, .cap = len ? len - 1 : 0 };
	struct timespec ts;

	if (!len)
		return 0;
	if ((unsigned)level > LOG_LVL_DEBUG)
		level = LOG_LVL_ERROR;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (fmt == LOG_FMT_JSON)
		put_json_line(&l, level, &ts, file, func, fields, msg);
	else
		put_text_line(&l, level, &ts, func, fields, msg);
	put(&l, "\n", 1);
	buf[l.len] = '\0';
	return l.len;
}

void log_emitv(enum log_level level, const char *file, const char *func,
	       const struct log_field *fields, const char *fmt, va_list ap)
{
	char msg[LOG_MSG_MAX];
	char line[LOG_LINE_MAX];
	size_t n;
	ssize_t w;

	if (level > log_level_max)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = log_format_line(line, sizeof(line), log_fmt, level, file, func, fields, msg);
	fflush(stderr); /* anything a caller printed with stdio goes first */
	do
		w = write(STDERR_FILENO, line, n);
	while (w < 0 && errno == EINTR);
}

void log_emit(enum log_level level, const char *file, const char *func,
	      const struct log_field *fields, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emitv(level, file, func, fields, fmt, ap);
	va_end(ap);
}
