/* envfile.h - the orchestrator's <home>/environments.toml.
 *
 * Declares where executors run:
 *
 *   include_local = true          # default: spawn one local executor, id "local"
 *   default = "build"             # optional: an entry id, or "local"
 *
 *   [[environments]]
 *   id = "build"                  # 1-64 of [A-Za-z0-9_-], unique, not local/none
 *   url = "tcp://10.0.0.5:7000"   # dial a running executor ...
 *   # program = "/usr/bin/tandem-executor"   # ... or spawn one
 *   # dial_in = true              # ... or wait for it to dial us (tandem
 *   #                             # extension; --executor-listen)
 *   # args = ["--flag"]; env = { K = "V" }; cwd = "/srv"   (program only)
 *   connect_timeout_sec = 10      # optional, default 10
 *   initialize_timeout_sec = 10   # optional, default 10
 *   required = true               # tandem extension: /readyz waits for it
 *   resume_grace_sec = 30         # tandem extension: how long a session whose
 *                                 # link dropped waits to resume (0-86400;
 *                                 # 0: never; default --link-grace-sec)
 *
 * Everything in this file is strict: an unknown key, a wrong type or a bad
 * value makes envfile_load fail with "PATH:LINE:COL: reason" naming the key.
 * url entries take nng link URLs only (abstract://, ipc://, tcp://,
 * tls+tcp://, ws://HOST:PORT[/PATH], wss://...): a ws:// URL names a tandem
 * executor listening on WebSocket; one of Codex's exec-servers is not one
 * and fails the handshake (the environment's status says so).
 *
 * Ownership: envfile_load hands out an envfile the caller frees with
 * envfile_free; every string and array in it belongs to the envfile.
 * args and env are NULL-terminated (n_args + 1, n_env + 1 slots) so they
 * can be passed on as argv/envp fragments. Library-like code: no logging.
 */
#ifndef TANDEM_ENVFILE_H
#define TANDEM_ENVFILE_H

#include <stdbool.h>
#include <stddef.h>

#define ENVFILE_NAME "environments.toml"
#define ENVFILE_MAX_ENVS 100000     /* a bound on parsing; the cap is envs.h's */
#define ENVFILE_LIST_MAX 256        /* entries in args and env */
#define ENVFILE_URL_MAX 1024        /* bytes in a url */
#define ENVFILE_TIMEOUT_DEFAULT 10.0
#define ENVFILE_TIMEOUT_MAX 3600.0  /* seconds, both timeouts */
#define ENVFILE_LOCAL_ID "local"
#define ENVFILE_GRACE_MAX 86400.0   /* seconds: resume_grace_sec, as --link-grace-sec */

struct envspec {
	char *id;
	char *url;      /* exactly one of url / program / dial_in */
	char *program;
	bool dial_in;   /* tandem extension: the executor dials us (--executor-listen) */
	char **args;    /* NULL-terminated; never NULL */
	size_t n_args;
	char **env;     /* "K=V", NULL-terminated; never NULL */
	size_t n_env;
	char *cwd;      /* absolute, or NULL */
	double connect_timeout_sec;    /* default 10 */
	double initialize_timeout_sec; /* default 10 */
	bool required;  /* tandem extension: readiness needs this one ready */
	double resume_grace_sec; /* tandem extension; < 0: not set (--link-grace-sec) */
	int line;       /* where the entry starts */
};

struct envfile {
	char *path;          /* NULL if the file was absent */
	bool include_local;  /* default true */
	char *default_id;    /* "default", NULL if unset; an entry id or "local" */
	struct envspec *envs;
	size_t n_envs;
};

/* Loads <home>/environments.toml. A missing file gives include_local = true,
 * no entries, path NULL. On success returns 0 and a new envfile in *out. On
 * failure leaves *out alone, fills err ("PATH:LINE:COL: reason", or
 * "PATH: reason" without a position) and returns -EINVAL (syntax or
 * content), -E2BIG (file too large) or the -errno of reading the file. */
int envfile_load(const char *home, struct envfile **out, char *err, size_t errlen);

/* The entry with this id, or NULL. */
const struct envspec *envfile_find(const struct envfile *e, const char *id);

/* Frees e and everything in it. NULL is fine. Returns NULL. */
struct envfile *envfile_free(struct envfile *e);

#endif
