/* utf8.c - see utf8.h. */
#include "utf8.h"

#include <string.h>

static int is_cont(unsigned char c) { return (c & 0xc0) == 0x80; }

size_t utf8_trim(const char *s, size_t len)
{
	size_t i = len, need;
	unsigned char lead;

	while (i > 0 && len - i < 3 && is_cont((unsigned char)s[i - 1]))
		i--;
	if (i == 0)
		return len;
	lead = (unsigned char)s[i - 1];
	need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
	return len - (i - 1) < need ? i - 1 : len;
}

int utf8_cut(const char *s, size_t max)
{
	size_t len = strnlen(s, max + 1);

	return (int)(len > max ? utf8_trim(s, max) : len);
}
