/* sandbox_self.c - see sandbox_self.h: what the orchestrator may reach
 * once confined, and applying it. */
#include "sandbox_self.h"

#include <dirent.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "landlock.h"
#include "log.h"
#include "sandbox.h"
#include "util.h"

#define MAX_RULES 96

/* What TLS (OpenSSL through libcurl), name resolution (glibc) and the
 * clock read after start-up, found by tracing a run that resolves a name
 * and makes an HTTPS request (tests/integration/test_sandbox_self.py keeps
 * the list honest). Read-only. */
static const char *const system_read[] = {
	/* the CA store: the bundle, the hashed directory and what its links
	 * point to; OpenSSL's configuration */
	"/etc/ssl", "/usr/share/ca-certificates", "/usr/local/share/ca-certificates",
	"/usr/lib/ssl", "/etc/pki", "/etc/ca-certificates", "/etc/ca-certificates.conf",
	"/etc/crypto-policies",
	/* name resolution */
	"/etc/resolv.conf", "/etc/hosts", "/etc/host.conf", "/etc/nsswitch.conf",
	"/etc/gai.conf", "/etc/services", "/etc/protocols", "/etc/ld.so.cache",
	/* time zones (log timestamps, HTTP dates) */
	"/etc/localtime", "/etc/timezone", "/usr/share/zoneinfo",
	/* how many CPUs (nng sizes its thread pools), memory figures */
	"/sys/devices/system/cpu", "/proc/sys/kernel/random",
};

struct rules {
	struct sandbox_path v[MAX_RULES];
	char *owned[MAX_RULES];
	size_t n, n_owned;
};

static void add(struct rules *r, const char *path, unsigned long long access)
{
	if (path && *path && r->n < MAX_RULES)
		r->v[r->n++] = (struct sandbox_path){ path, access };
}

static void add_owned(struct rules *r, char *path, unsigned long long access)
{
	if (r->n_owned < MAX_RULES)
		r->owned[r->n_owned++] = path;
	add(r, path, access);
}

/* Where this process's C library was loaded from (its mapping). */
static char *libc_path(void)
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[4096], *p, *found = NULL;

	while (f && !found && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		p = strchr(line, '/');
		if (p && strstr(p, "/libc.so"))
			found = realpath(p, NULL);
	}
	if (f)
		fclose(f);
	return found;
}

/* The C library's NSS and resolver modules (dlopen'ed by getaddrinfo as
 * nsswitch.conf says): each file next to libc, not the whole directory. */
static void add_nss_modules(struct rules *r)
{
	char *dir = libc_path(), *slash;
	DIR *d;
	struct dirent *e;

	slash = dir ? strrchr(dir, '/') : NULL;
	if (!slash) {
		free(dir);
		return;
	}
	*slash = '\0';
	d = opendir(dir);
	while (d && (e = readdir(d)))
		if (!strncmp(e->d_name, "libnss_", 7) || !strncmp(e->d_name, "libresolv", 9))
			add_owned(r, xasprintf("%s/%s", dir, e->d_name), LL_FS_READ_FILE);
	if (d)
		closedir(d);
	free(dir);
}

/* A sanitizer runtime reads at exit: its suppressions, and the binary and
 * libraries it symbolizes stack traces from. */
static void add_sanitizer(struct rules *r)
{
	const char *opts = getenv("LSAN_OPTIONS"), *p;
	char exe[4096];
	ssize_t n;

	if (!sandbox_sanitizer_build())
		return;
	add(r, "/usr/lib", LL_READ);
	add(r, "/lib", LL_READ);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		add_owned(r, xstrdup(exe), LL_FS_READ_FILE);
	}
	p = opts ? strstr(opts, "suppressions=") : NULL;
	if (p) {
		p += strlen("suppressions=");
		add_owned(r, xstrndup(p, strcspn(p, ":")), LL_FS_READ_FILE);
	}
}

/* The state directory (the thread store opened it, so it exists); none with
 * --ephemeral, which writes nothing. */
static char *state_dir(const struct sandbox_self_opts *o)
{
	return o->state_dir ? xstrdup(o->state_dir) : NULL;
}

static void build(struct rules *r, const struct sandbox_self_opts *o)
{
	const unsigned long long home = o->home_writable ? LL_READ | LL_FS_WRITE_FILE |
							       LL_FS_MAKE_REG |
							       LL_FS_REMOVE_FILE | LL_FS_TRUNCATE
							 : LL_READ;
	const char *ca_env[] = { "SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE" };

	add(r, o->home, home);
	add_owned(r, state_dir(o), LL_READ_WRITE);
	add(r, o->runtime_dir, LL_READ_WRITE);
	for (size_t i = 0; i < ARRAY_SIZE(system_read); i++)
		add(r, system_read[i], LL_READ);
	for (size_t i = 0; i < ARRAY_SIZE(ca_env); i++)
		add(r, getenv(ca_env[i]), LL_READ);
	add_nss_modules(r);
	/* /proc/self is a link to /proc/<pid>: the rule lands on our own entry */
	add(r, "/proc/self", LL_READ);
	add(r, "/dev/null", LL_DEVICE);
	add(r, "/dev/urandom", LL_FS_READ_FILE);
	add(r, "/dev/random", LL_FS_READ_FILE);
	add_sanitizer(r);
}

int sandbox_self_apply(const struct sandbox_self_opts *o)
{
	struct rules r = { 0 };
	struct sandbox_self_spec spec;
	char desc[200], err[512];
	int rc;

	if (o->off) {
		log_warn("sandbox: off (--no-sandbox): this orchestrator can read and write "
			 "whatever its user can");
		return 0;
	}
	build(&r, o);
	spec = (struct sandbox_self_spec){ .paths = r.v, .n_paths = r.n, .scope_signals = true,
					   .seccomp = true, .require = o->require };
	rc = sandbox_confine_self(&spec, desc, sizeof(desc), err, sizeof(err));
	for (size_t i = 0; i < r.n_owned; i++)
		free(r.owned[i]);
	if (rc < 0) {
		log_error("sandbox: %s%s", err, o->require ? " (--require-sandbox)" : "");
		return rc;
	}
	if (strncmp(desc, "landlock", 8) != 0)
		log_warn("sandbox: %s: the filesystem is not confined (--require-sandbox "
			 "refuses to start so)", desc);
	else
		log_info("sandbox: %s", desc);
	return 0;
}
