/* fdlimit.c - see fdlimit.h. */
#include "fdlimit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

long fdlimit_raise(long *before)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	if (before)
		*before = rl.rlim_cur == RLIM_INFINITY ? -1 : (long)rl.rlim_cur;
	if (rl.rlim_cur != rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			return -errno;
	}
	return rl.rlim_cur == RLIM_INFINITY ? -1 : (long)rl.rlim_cur;
}

long fdlimit_current(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return -1;
	return (long)rl.rlim_cur;
}

bool fdlimit_exhausted(int err) { return err == -EMFILE || err == -ENFILE; }

const char *fdlimit_why(int err, char *buf, size_t len)
{
	if (err == -EMFILE)
		snprintf(buf, len, "out of file descriptors: this process's limit of %ld is "
				   "reached (EMFILE; raise `ulimit -n` / LimitNOFILE, or run fewer "
				   "environments)", fdlimit_current());
	else if (err == -ENFILE)
		snprintf(buf, len, "out of file descriptors: the system-wide limit is reached "
				   "(ENFILE; fs.file-max)");
	else
		snprintf(buf, len, "%s", strerror(-err));
	return buf;
}
