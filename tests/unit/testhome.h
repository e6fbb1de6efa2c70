/* testhome.h - a temporary home directory for the config file suites
 * (test_config.c, test_envfile.c): created in the tcase setup, removed in
 * its teardown. Header-only: each suite is its own program. */
#ifndef TANDEM_TESTHOME_H
#define TANDEM_TESTHOME_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static char home[64];

static void home_setup(void)
{
	strcpy(home, "/tmp/tandem-home.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(home));
}

static void home_teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", home);
	ck_assert_int_eq(system(cmd), 0);
}

/* Writes <home>/<name>. */
static void home_write(const char *name, const char *text)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", home, name);
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
}

/* tests/fixtures/homes/<name> (from $TANDEM_FIXTURES). */
_unused_ static char *fixture_home(const char *name)
{
	const char *dir = getenv("TANDEM_FIXTURES");

	if (!dir || !*dir)
		ck_abort_msg("TANDEM_FIXTURES is not set: point it at tests/fixtures");
	return xasprintf("%s/homes/%s", dir, name);
}

#endif
