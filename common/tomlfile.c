/* tomlfile.c - see tomlfile.h. */
#include "tomlfile.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "toml.h"
#include "util.h"

int tomlfile_open(struct tomlfile *f, const char *home, const char *name, char *err,
		  size_t errlen)
{
	int r;

	memset(f, 0, sizeof(*f));
	f->err = err;
	f->errlen = err ? errlen : 0;
	if (!home || !*home) {
		if (f->errlen)
			snprintf(err, errlen, "no home directory");
		return -EINVAL;
	}
	f->path = xasprintf("%s/%s", home, name);
	r = toml_parse_file_err(f->path, &f->doc, err, f->errlen);
	return r == -ENOENT ? 0 : r;
}

void tomlfile_close(struct tomlfile *f)
{
	f->doc = toml_doc_free(f->doc);
	free(f->path);
	f->path = NULL;
}

json_t *tomlfile_root(const struct tomlfile *f) { return f->doc ? toml_doc_root(f->doc) : NULL; }

void tomlfile_where(const struct tomlfile *f, const char *label, const char *tpath, char *buf,
		    size_t len)
{
	int line, col;

	if (tpath && f->doc && toml_doc_where(f->doc, tpath, &line, &col))
		snprintf(buf, len, "%s:%d:%d: ", label, line, col);
	else
		snprintf(buf, len, "%s: ", label);
}

__attribute__((format(printf, 3, 0))) static int failv(struct tomlfile *f, const char *tpath,
							   const char *fmt, va_list ap)
{
	char pre[PATH_MAX + 32], msg[512];

	if (!f->errlen)
		return -EINVAL;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	tomlfile_where(f, f->path, tpath, pre, sizeof(pre));
	snprintf(f->err, f->errlen, "%s%s", pre, msg);
	return -EINVAL;
}

int tomlfile_fail(struct tomlfile *f, const char *tpath, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = failv(f, tpath, fmt, ap);
	va_end(ap);
	return r;
}

int tomlfile_fail_key(struct tomlfile *f, const char *base, const char *key, const char *fmt,
		      ...)
{
	_cleanup_free_ char *tpath = toml_path_join(base, key);
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = failv(f, tpath, fmt, ap);
	va_end(ap);
	return r;
}
