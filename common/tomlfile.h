/* tomlfile.h - the skeleton every loader of a TOML file in the home shares
 * (config.toml: orchestrator/config.c, environments.toml: envfile.c):
 * <home>/<name> parsed once, an absent file being no error, and errors that
 * name the file, line and column of the key at fault.
 *
 * A loader embeds a struct tomlfile, opens it, walks tomlfile_root(), fails
 * with tomlfile_fail / tomlfile_fail_key (the first error wins: its text
 * goes to the caller's err buffer) and closes it. Library code: nothing here
 * logs.
 */
#ifndef TANDEM_TOMLFILE_H
#define TANDEM_TOMLFILE_H

#include <jansson.h>
#include <stddef.h>

struct toml_doc;

struct tomlfile {
	struct toml_doc *doc; /* NULL when the file does not exist */
	char *path;           /* <home>/<name> */
	char *err;            /* the caller's buffer; errlen 0: none */
	size_t errlen;
};

/* Parses <home>/<name>: 0 (doc NULL when the file is absent), or -errno with
 * a reason in err ("no home directory", "PATH:LINE:COL: ..." for a syntax
 * error, the errno of reading the file, -E2BIG when it is too large).
 * err may be NULL. Close with tomlfile_close either way. */
int tomlfile_open(struct tomlfile *f, const char *home, const char *name, char *err,
		  size_t errlen);
void tomlfile_close(struct tomlfile *f);
/* The document's root table, NULL when the file is absent (borrowed). */
json_t *tomlfile_root(const struct tomlfile *f);

/* "PATH:LINE:COL: reason" for the TOML path tpath, or "PATH: reason" when
 * it has no position (tpath NULL, or not in the file), into err. Returns
 * -EINVAL, for `return tomlfile_fail(...)`. */
int tomlfile_fail(struct tomlfile *f, const char *tpath, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Same for the key `key` of the table at base (NULL: the root). */
int tomlfile_fail_key(struct tomlfile *f, const char *base, const char *key, const char *fmt,
		      ...) __attribute__((format(printf, 4, 5)));
/* "LABEL:LINE:COL: " (or "LABEL: ") for tpath into buf: the prefix of a
 * warning or of a per-entry reason, labelled e.g. with the bare file name. */
void tomlfile_where(const struct tomlfile *f, const char *label, const char *tpath, char *buf,
		    size_t len);

#endif
