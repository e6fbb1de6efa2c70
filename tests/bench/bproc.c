/* bproc.c - see bproc.h. */
#include "bproc.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ppid of pid and its comm, from /proc/PID/stat; -1 when gone. */
static pid_t proc_parent(pid_t pid, char *comm, size_t commlen)
{
	char path[64], buf[512], *open_p, *close_p;
	ssize_t n;
	int fd, ppid;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	open_p = strchr(buf, '(');
	close_p = strrchr(buf, ')'); /* comm may itself hold parentheses */
	if (!open_p || !close_p || sscanf(close_p + 1, " %*c %d", &ppid) != 1)
		return -1;
	if (comm)
		snprintf(comm, commlen, "%.*s", (int)(close_p - open_p - 1), open_p + 1);
	return ppid;
}

/* Calls fn for each child of parent; stops when fn returns true. */
static pid_t for_children(pid_t parent, bool (*fn)(pid_t pid, const char *comm, void *arg),
			  void *arg)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t found = -1;

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		char comm[64], *end;
		long pid = strtol(de->d_name, &end, 10);

		if (*end || pid <= 0 || proc_parent((pid_t)pid, comm, sizeof(comm)) != parent)
			continue;
		if (fn((pid_t)pid, comm, arg)) {
			found = (pid_t)pid;
			break;
		}
	}
	closedir(d);
	return found;
}

static bool match_comm(pid_t pid, const char *comm, void *arg)
{
	return strcmp(comm, arg) == 0;
}

static bool count_one(pid_t pid, const char *comm, void *arg)
{
	(*(unsigned *)arg)++;
	return false;
}

static bool kill_one(pid_t pid, const char *comm, void *arg)
{
	kill(pid, SIGKILL);
	(*(unsigned *)arg)++;
	return false;
}

pid_t bproc_child_named(pid_t parent, const char *comm)
{
	return for_children(parent, match_comm, (void *)comm);
}

unsigned bproc_count_children(pid_t parent)
{
	unsigned n = 0;

	for_children(parent, count_one, &n);
	return n;
}

void bproc_kill_children(pid_t parent)
{
	for (int round = 0; round < 50; round++) {
		unsigned n = 0;

		for_children(parent, kill_one, &n);
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (n == 0)
			return;
		usleep(20000);
	}
}

static long proc_field_kib(pid_t pid, const char *file, const char *field)
{
	char path[64], line[256];
	size_t flen = strlen(field);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
			v = strtol(line + flen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

long bproc_rss_kib(pid_t pid)
{
	return proc_field_kib(pid, "status", "VmRSS");
}

long bproc_pss_kib(pid_t pid)
{
	return proc_field_kib(pid, "smaps_rollup", "Pss");
}

uint64_t bproc_cpu_ns(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
	fclose(f);
	/* after "pid (comm)": state ppid pgrp session tty tpgid flags minflt
	 * cminflt majflt cmajflt utime stime */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
			 &st) != 2 || hz <= 0)
		return 0;
	return (ut + st) * (1000000000ull / (unsigned long long)hz);
}
