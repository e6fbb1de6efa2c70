/* testhome.h - a temporary home directory per test for the suites that
 * load files from a home (test_config.c, test_envfile.c, and the domain
 * suites through testdomain.h): home_setup/home_teardown as a checked
 * fixture, inside the directory of homes_setup/homes_teardown, an unchecked
 * one. Header-only: each suite is its own program. */
#ifndef TANDEM_TESTHOME_H
#define TANDEM_TESTHOME_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static char homes[64]; /* holds every test's home; made by homes_setup */
static char home[96];

static void rm_rf(const char *dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* An unchecked fixture: it runs in the runner process, so its teardown
 * removes the homes even of tests that failed (a failed assertion ends a
 * forked test without its checked teardown). */
static void homes_setup(void)
{
	strcpy(homes, "/tmp/tandem-homes.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(homes));
}

static void homes_teardown(void)
{
	rm_rf(homes);
	homes[0] = '\0';
}

static void home_setup(void)
{
	snprintf(home, sizeof(home), "%s/home.XXXXXX", homes[0] ? homes : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(home));
}

static void home_teardown(void) { rm_rf(home); }

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
