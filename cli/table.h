/* table.h - aligned columns for the CLI's human output, and the cleaning of
 * untrusted text before it reaches a terminal.
 *
 * A table copies every cell it is given and prints them padded to the widest
 * cell of each column (two spaces apart; the last column is not padded).
 * Widths count UTF-8 characters, not bytes. Cells come from peers (server
 * names, tool names, errors), so control characters are replaced by '?'
 * (newlines and tabs by a space): a server cannot move the cursor or recolour
 * the terminal through `tandem servers`.
 */
#ifndef TANDEM_CLI_TABLE_H
#define TANDEM_CLI_TABLE_H

#include <stddef.h>
#include <stdio.h>

struct table;

/* ncols headers follow (const char *). */
struct table *table_new(size_t ncols, ...);
/* ncols cells follow (const char *); NULL prints as "-". */
void table_row(struct table *t, ...);
size_t table_rows(const struct table *t);
void table_print(const struct table *t, FILE *out);
/* Accepts NULL; returns NULL. */
struct table *table_free(struct table *t);

/* A copy of s on one line with control characters replaced (see above),
 * cut at max_chars characters with "..." (0: no limit). Caller frees. */
char *table_clean(const char *s, size_t max_chars);

/* Writes multi-line text (a tool result, model output) to out. On a
 * terminal, control characters other than newline and tab become '?'; into
 * a pipe or file the text goes unchanged. */
void table_write_text(FILE *out, const char *s, size_t len);

#endif
