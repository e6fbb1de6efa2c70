/* utf8.h - cutting text on a character boundary.
 *
 * Reasons and warnings quote user input and end up in JSON, which must stay
 * UTF-8: a quote cut inside a character would make the whole message
 * unencodable. Pure functions, no state.
 */
#ifndef TANDEM_UTF8_H
#define TANDEM_UTF8_H

#include <stddef.h>

/* The length of s[0..len) without a UTF-8 sequence that a cut at len left
 * incomplete at its end (s[0..len) must be readable; s need not be
 * NUL-terminated). */
size_t utf8_trim(const char *s, size_t len);
/* For "%.*s": how many bytes of the NUL-terminated s to print so that at
 * most max show and no character is split. UTF8_CUT(s, max) expands to the
 * length and string arguments. */
int utf8_cut(const char *s, size_t max);
#define UTF8_CUT(s, max) utf8_cut((s), (max)), (s)

#endif
