/* valid.c - see valid.h. */
#include "valid.h"

#include <string.h>

#define ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

bool valid_ident(const char *s, size_t max)
{
	size_t len = s ? strnlen(s, max + 1) : 0;

	return len > 0 && len <= max && strspn(s, ALNUM "_-") == len;
}

bool valid_env_id(const char *s) { return valid_ident(s, VALID_ENV_ID_MAX); }

bool valid_env_name_n(const char *s, size_t len)
{
	if (!s || len == 0 || len > VALID_ENV_NAME_MAX || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!s[i] || !strchr(ALNUM "_", s[i]))
			return false;
	return true;
}

bool valid_env_name(const char *s)
{
	return s && valid_env_name_n(s, strnlen(s, VALID_ENV_NAME_MAX + 1));
}

bool valid_header_name(const char *s)
{
	size_t len = s ? strnlen(s, VALID_HEADER_NAME_MAX + 1) : 0;

	return len > 0 && len <= VALID_HEADER_NAME_MAX &&
	       strspn(s, ALNUM "!#$%&'*+-.^_`|~") == len;
}
