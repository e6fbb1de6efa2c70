/* testmain.h - the one main() every check suite uses.
 *
 * Under meson the suites run with CK_TAP_LOG_FILE_NAME=- and
 * CK_VERBOSITY=silent: check prints TAP on stdout, meson judges each test
 * from it, and main returns 0 so a failure is reported once, by TAP. Run by
 * hand (no TAP variable), main returns the number of failures instead.
 * Tests run in forked children (CK_FORK default) so one crash fails one test.
 */
#ifndef TANDEM_TESTMAIN_H
#define TANDEM_TESTMAIN_H

#include <check.h>
#include <stdlib.h>

#define TEST_MAIN(suite_fn)                                                    \
	int main(void)                                                         \
	{                                                                      \
		SRunner *sr = srunner_create(suite_fn());                      \
		int failed;                                                    \
		srunner_run_all(sr, CK_ENV);                                   \
		failed = srunner_ntests_failed(sr);                            \
		srunner_free(sr);                                              \
		if (getenv("CK_TAP_LOG_FILE_NAME"))                            \
			return 0;                                              \
		return failed ? 1 : 0;                                         \
	}

#endif
