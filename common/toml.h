/* toml.h - a TOML 1.0 reader for tandem's configuration files.
 *
 * Reads config.toml, environments.toml and requirements.toml (Codex's
 * formats) into a jansson tree: tables become objects (key order kept),
 * arrays arrays, integers json_integer, floats json_real, booleans
 * json_true/json_false, strings json strings (UTF-8, may hold U+0000).
 * Not supported, each rejected with a reason that says so: date/time values,
 * and inf/nan (a jansson real cannot hold them).
 *
 * Besides the tree, a document remembers where every key was defined, so a
 * caller that finds an unknown key or a value of the wrong type can still say
 * "file:line:col: reason". Paths name keys from the root, dotted, with [i]
 * (0-based) for array elements: "mcp_servers.docs.command",
 * "environments[1].url". A segment that is not a bare key is quoted like a
 * TOML basic string: a."b.c". toml_path_join builds such paths.
 *
 * Bounds: the input may not exceed TOML_MAX_INPUT bytes, and tables/arrays
 * may not nest deeper than TOML_MAX_DEPTH levels (counted as jansson
 * containers below the root), so freeing or dumping the tree stays shallow.
 *
 * Ownership: toml_parse and toml_parse_file hand out a doc the caller frees
 * with toml_doc_free. toml_doc_root is borrowed from the doc; json_incref it
 * to keep it longer. Positions are found by walking the live tree, so
 * modifying the tree is memory-safe but may make toml_doc_where miss.
 * Library code: nothing here logs.
 */
#ifndef TANDEM_TOML_H
#define TANDEM_TOML_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define TOML_MAX_INPUT (1024u * 1024u) /* bytes */
#define TOML_MAX_DEPTH 64              /* nested tables and arrays */

/* Where and why a parse failed. line and col are 1-based; col counts
 * characters (code points), a tab counts as one. Both are 0 when the error
 * has no position (file not readable, input too large). */
struct toml_error {
	int line;
	int col;
	char reason[256];
};

struct toml_doc;

/* Parses len bytes of text (need not be NUL-terminated; a leading UTF-8 BOM
 * is skipped). On success stores a new doc in *out and returns 0. On failure
 * returns -EINVAL (syntax or semantic error) or -E2BIG (len >
 * TOML_MAX_INPUT), fills *err when err is not NULL and leaves *out alone. */
int toml_parse(const char *text, size_t len, struct toml_doc **out, struct toml_error *err);

/* Reads and parses the file at path. A missing file returns -ENOENT, an
 * unreadable one its -errno, a file larger than TOML_MAX_INPUT -E2BIG; the
 * reason says which. Otherwise as toml_parse. */
int toml_parse_file(const char *path, struct toml_doc **out, struct toml_error *err);

/* The document's root object (borrowed). */
/* toml_parse_file with the error as one "PATH:LINE:COL: reason" string;
 * -ENOENT (a missing file) leaves err untouched. */
int toml_parse_file_err(const char *path, struct toml_doc **out, char *err, size_t errlen);
json_t *toml_doc_root(const struct toml_doc *d);

/* Finds where the key (or array element) at path was defined: a key's
 * position is that of its name (for a [table] or [[array]] header, the last
 * name in the header; a [[x]] element "x[i]" is the position of its header's
 * name); a static array element's is that of its value. Returns true and
 * fills *line and *col (either may be NULL) when path names something in the
 * document, false otherwise (also for a malformed path). */
bool toml_doc_where(const struct toml_doc *d, const char *path, int *line, int *col);

/* Frees the doc and its tree (unless the caller holds a reference). NULL is
 * fine. Returns NULL. */
struct toml_doc *toml_doc_free(struct toml_doc *d);

/* Returns a new string (free() it): base followed by key as one more path
 * segment, quoted when it is not a bare key. base may be NULL or "" for a
 * top-level key. Aborts on out-of-memory like xmalloc. */
char *toml_path_join(const char *base, const char *key);

#endif
