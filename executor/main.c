/* main.c - tandem-executor: owns plugin roots on this machine, launches their
 * stdio MCP servers and relays them to one orchestrator over nng. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "box.h"
#include "contain.h"
#include "executor.h"
#include "exhealth.h"
#include "fdlimit.h"
#include "log.h"
#include "loop.h"
#include "plugin.h"
#include "secret.h"
#include "util.h"
#include "version.h"

#define TOKEN_ENV "TANDEM_EXECUTOR_TOKEN"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: tandem-executor --listen URL | --connect URL [options]\n"
		"Owns plugin roots on this machine, launches their stdio MCP servers and relays\n"
		"them to one tandem orchestrator.\n\n"
		"  --listen URL           tcp://HOST:PORT, tls+tcp://HOST:PORT, ws://HOST:PORT/PATH,\n"
		"                         wss://HOST:PORT/PATH, ipc:///PATH, unix:///PATH or\n"
		"                         abstract://NAME\n"
		"  --connect URL          dial an orchestrator's --executor-listen address instead\n"
		"                         (tcp://, tls+tcp://, ws://, wss://, ipc://...), again with\n"
		"                         backoff when the link ends; needs the environment's\n"
		"                         token\n"
		"  --environment ID       the environment we dial in as (default: the name of\n"
		"                         --auth-token-file; the orchestrator's executor-tokens/ID)\n"
		"  --connect-ca FILE      PEM certificate (or CA) of a tls+tcp:// or wss://\n"
		"                         orchestrator\n"
		"  --id NAME              executor id reported to the orchestrator (default: host name)\n"
		"  --secret-fd N          read the link secret from inherited fd N (0 = stdin)\n"
		"                         until EOF (spawned mode)\n"
		"  --auth-token-file F    read the link secret from F (mode 0600 or stricter);\n"
		"                         $" TOKEN_ENV " works too\n"
		"  --insecure             allow a non-loopback listener without a secret, and\n"
		"                         plain (unsealed) frames on a network link\n"
		"  --root-allow DIR       only resolve roots under DIR (repeatable)\n"
		"  --max-processes N      cap on live MCP server processes (default %u)\n"
		"  --grace-sec N          keep processes this long after the link drops (default %u)\n"
		"  --tls-cert FILE        PEM certificate and private key for tls+tcp:// and wss://\n"
		"  --handshake-timeout D  a connection must prove the secret within D (default 3s)\n"
		"  --max-pending N        connections in the handshake at once (default %u)\n"
		"  --keepalive D          PING the orchestrator after D of silence (default 3s)\n"
		"  --keepalive-timeout D  drop it after D of silence (default 9s)\n"
		"                         (durations: 500ms, 3s, or plain seconds)\n"
		"  --no-pidns             do not run servers in PID namespaces of their own\n"
		"                         (their trees are tracked in /proc instead)\n"
		"  --sandbox-allow DIR    plugin configs may grant paths under DIR with\n"
		"                         sandbox.read / sandbox.write (repeatable)\n"
		"  --sandbox-dir DIR      where servers' private directories go (default $TMPDIR)\n"
		"  --require-sandbox      refuse servers that cannot be sandboxed\n"
		"  --exit-with-parent     exit when the process that started us dies\n"
		"  --log-level LEVEL      error, warn, info (default) or debug\n"
		"  --log-format FMT       text (default) or json (one object per line)\n"
		"  --metrics-listen HOST:PORT  serve /livez, /readyz and /metrics there (off)\n"
		"  -h, --help             this text\n"
		"  -V, --version          print the version\n",
		EXEC_DEFAULT_MAX_PROCS, EXEC_DEFAULT_GRACE_SEC, EXEC_DEFAULT_MAX_PENDING);
}

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > max)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

/* "500ms", "3s" or "3" (seconds) -> ms, within 1 ms .. max_ms. */
static int parse_duration(const char *s, unsigned max_ms, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	if (strcmp(end, "ms") == 0)
		;
	else if (*end == '\0' || strcmp(end, "s") == 0)
		v = v > max_ms / 1000 ? (unsigned long)max_ms + 1 : v * 1000;
	else
		return -EINVAL;
	if (v == 0 || v > max_ms)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

struct cli {
	struct exec_opts o;
	int secret_fd;
	const char *token_file;
	bool exit_with_parent;
	const char *metrics_listen; /* operations endpoint (exhealth.h), NULL = off */
	char hostname[256];
};

static int add_canonical(const char ***list, size_t *n, const char *opt, const char *dir)
{
	char *canon = realpath(dir, NULL);

	if (!canon) {
		fprintf(stderr, "tandem-executor: %s %s: %s\n", opt, dir, strerror(errno));
		return -errno;
	}
	*list = xrealloc(*list, (*n + 1) * sizeof(char *));
	(*list)[(*n)++] = canon;
	return 0;
}

static int add_root_allow(struct cli *c, const char *dir)
{
	return add_canonical(&c->o.root_allow, &c->o.n_root_allow, "--root-allow", dir);
}

/* Returns 0 to run, 1 to exit successfully (help/version), -1 on error. */
static int parse_args(int argc, char **argv, struct cli *c)
{
	enum { O_SECRET_FD = 256, O_TOKEN, O_INSECURE, O_ROOT, O_MAXP, O_GRACE, O_TLS, O_EWP, O_LOG, O_ID,
	       O_METRICS, O_LOGFMT, O_NO_PIDNS, O_SB_ALLOW, O_SB_DIR, O_SB_REQUIRE, O_HS, O_PENDING,
	       O_KA, O_KA_DEAD, O_CONNECT, O_ENVID, O_CONNECT_CA };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "id", required_argument, NULL, O_ID },
		{ "connect", required_argument, NULL, O_CONNECT },
		{ "environment", required_argument, NULL, O_ENVID },
		{ "connect-ca", required_argument, NULL, O_CONNECT_CA },
		{ "secret-fd", required_argument, NULL, O_SECRET_FD },
		{ "auth-token-file", required_argument, NULL, O_TOKEN },
		{ "insecure", no_argument, NULL, O_INSECURE },
		{ "root-allow", required_argument, NULL, O_ROOT },
		{ "max-processes", required_argument, NULL, O_MAXP },
		{ "grace-sec", required_argument, NULL, O_GRACE },
		{ "tls-cert", required_argument, NULL, O_TLS },
		{ "handshake-timeout", required_argument, NULL, O_HS },
		{ "max-pending", required_argument, NULL, O_PENDING },
		{ "keepalive", required_argument, NULL, O_KA },
		{ "keepalive-timeout", required_argument, NULL, O_KA_DEAD },
		{ "exit-with-parent", no_argument, NULL, O_EWP },
		{ "no-pidns", no_argument, NULL, O_NO_PIDNS },
		{ "sandbox-allow", required_argument, NULL, O_SB_ALLOW },
		{ "sandbox-dir", required_argument, NULL, O_SB_DIR },
		{ "require-sandbox", no_argument, NULL, O_SB_REQUIRE },
		{ "log-level", required_argument, NULL, O_LOG },
		{ "metrics-listen", required_argument, NULL, O_METRICS },
		{ "log-format", required_argument, NULL, O_LOGFMT },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	enum log_level lvl;
	enum log_format fmt;
	unsigned v;
	int ch;

	while ((ch = getopt_long(argc, argv, "l:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'l': c->o.listen_url = optarg; break;
		case O_ID: c->o.id = optarg; break;
		case O_CONNECT: c->o.connect_url = optarg; break;
		case O_ENVID: c->o.environment = optarg; break;
		case O_CONNECT_CA: c->o.connect_ca = optarg; break;
		case O_SECRET_FD:
			if (parse_uint(optarg, INT_MAX, &v) < 0)
				goto bad_value;
			c->secret_fd = (int)v;
			break;
		case O_TOKEN: c->token_file = optarg; break;
		case O_INSECURE: c->o.insecure = true; break;
		case O_ROOT:
			if (add_root_allow(c, optarg) < 0)
				return -1;
			break;
		case O_MAXP:
			if (parse_uint(optarg, 100000, &c->o.max_procs) < 0 || !c->o.max_procs)
				goto bad_value;
			break;
		case O_GRACE:
			if (parse_uint(optarg, 86400, &c->o.grace_sec) < 0)
				goto bad_value;
			break;
		case O_TLS: c->o.tls_cert_key_file = optarg; break;
		case O_HS:
			if (parse_duration(optarg, 3600000, &c->o.handshake_ms) < 0)
				goto bad_value;
			break;
		case O_PENDING:
			if (parse_uint(optarg, 100000, &c->o.max_pending) < 0 || !c->o.max_pending)
				goto bad_value;
			break;
		case O_KA:
			if (parse_duration(optarg, 3600000, &c->o.keepalive_ms) < 0)
				goto bad_value;
			break;
		case O_KA_DEAD:
			if (parse_duration(optarg, 3600000, &c->o.dead_ms) < 0)
				goto bad_value;
			break;
		case O_EWP: c->exit_with_parent = true; break;
		case O_NO_PIDNS: c->o.no_pidns = true; break;
		case O_SB_ALLOW:
			if (add_canonical(&c->o.sandbox_allow, &c->o.n_sandbox_allow, "--sandbox-allow",
					  optarg) < 0)
				return -1;
			break;
		case O_SB_DIR: c->o.sandbox_dir = optarg; break;
		case O_SB_REQUIRE: c->o.require_sandbox = true; break;
		case O_LOG:
			if (log_level_parse(optarg, &lvl) < 0)
				goto bad_value;
			log_set_level(lvl);
			break;
		case O_METRICS: c->metrics_listen = optarg; break;
		case O_LOGFMT:
			if (log_format_parse(optarg, &fmt) < 0)
				goto bad_value;
			log_set_format(fmt);
			break;
		case 'h': usage(stdout); return 1;
		case 'V': printf("tandem-executor %s\n", TANDEM_VERSION); return 1;
		default: usage(stderr); return -1;
		}
		continue;
bad_value:
		fprintf(stderr, "tandem-executor: invalid value '%s' for --%s\n", optarg,
			opts[0].name ? argv[optind - 1] + 2 : "");
		return -1;
	}
	if (c->o.dead_ms <= c->o.keepalive_ms) {
		fprintf(stderr, "tandem-executor: --keepalive-timeout must be longer than --keepalive\n");
		return -1;
	}
	if (!c->o.environment && c->o.connect_url && c->token_file) {
		const char *slash = strrchr(c->token_file, '/');

		c->o.environment = slash ? slash + 1 : c->token_file;
	}
	if (optind < argc || (!c->o.listen_url && !c->o.connect_url)) {
		fprintf(stderr, "tandem-executor: %s\n",
			optind < argc ? "unexpected argument" : "--listen URL or --connect URL is required");
		usage(stderr);
		return -1;
	}
	return 0;
}

static int load_secret(struct cli *c, struct secret **out)
{
	int r;

	if (c->secret_fd >= 0) {
		r = secret_from_fd(c->secret_fd, out);
		if (c->secret_fd > 2)
			close(c->secret_fd);
		if (r < 0)
			log_error("cannot read the secret from fd %d: %s", c->secret_fd, strerror(-r));
		return r;
	}
	if (c->token_file) {
		r = secret_from_file(c->token_file, out);
		if (r == -EPERM)
			log_error("%s: readable by group or others; chmod 600 it", c->token_file);
		else if (r < 0)
			log_error("%s: %s", c->token_file, strerror(-r));
		return r;
	}
	r = secret_from_env(TOKEN_ENV, out);
	if (r == -ENOENT)
		return 0; /* no auth: listener_start decides whether that is allowed */
	if (r < 0)
		log_error("$%s: %s", TOKEN_ENV, strerror(-r));
	return r;
}

/* A child that is not a watched server: a server's leftover (contain.h). */
static void sigchld_cb(int signo, void *arg)
{
	(void)signo;
	contain_sweep(arg);
}

static void stop_cb(int signo, void *arg)
{
	log_info("signal %d: shutting down", signo);
	loop_stop(arg);
}

int main(int argc, char **argv)
{
	struct cli c = { .secret_fd = -1 };
	struct executor ex = { 0 };
	char err[512];
	int r, rc = 1;

	log_init("tandem-executor", LOG_LVL_INFO);
	c.o.max_procs = EXEC_DEFAULT_MAX_PROCS;
	c.o.grace_sec = EXEC_DEFAULT_GRACE_SEC;
	c.o.handshake_ms = EXEC_DEFAULT_HANDSHAKE_MS;
	c.o.max_pending = EXEC_DEFAULT_MAX_PENDING;
	c.o.keepalive_ms = EXEC_DEFAULT_KEEPALIVE_MS;
	c.o.dead_ms = EXEC_DEFAULT_DEAD_MS;
	r = parse_args(argc, argv, &c);
	if (r != 0)
		return r > 0 ? 0 : 2;
	if (!c.o.id) {
		if (gethostname(c.hostname, sizeof(c.hostname) - 1) < 0)
			snprintf(c.hostname, sizeof(c.hostname), "executor");
		c.o.id = c.hostname;
	}
	if (c.exit_with_parent) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() == 1)
			return 1; /* the parent died before we got here */
	}
	/* A server that closes its stdin must not kill us on write. */
	signal(SIGPIPE, SIG_IGN);
	/* Servers' pipes and the link: the soft limit (often 1,024) goes to
	 * the hard one; a server's own limit is its box's (box.h). */
	{
		long before, now = fdlimit_raise(&before);

		if (now < -1)
			log_warn("cannot raise the open-file limit: %s", strerror((int)-now));
		else if (now != before)
			log_debug("open-file limit raised from %ld to %ld", before, now);
	}

	ex.opts = c.o;
	if (load_secret(&c, &ex.secret) < 0)
		goto out;
	ex.loop = loop_new();
	/* Before nng starts its threads, so they inherit the blocked mask. */
	loop_signal_add(ex.loop, SIGINT, stop_cb, ex.loop);
	loop_signal_add(ex.loop, SIGTERM, stop_cb, ex.loop);
	loop_signal_add(ex.loop, SIGHUP, stop_cb, ex.loop);
	loop_signal_add(ex.loop, SIGCHLD, sigchld_cb, &ex);
	contain_init(&ex, !c.o.no_pidns);
	box_init(&ex);
	ex.started_ms = loop_now_ms(ex.loop);
	if (c.o.listen_url && listener_start(&ex, err, sizeof(err)) < 0) {
		log_error("%s", err);
		goto out;
	}
	if (c.o.connect_url && dial_start(&ex, err, sizeof(err)) < 0) {
		log_error("--connect %s: %s", c.o.connect_url, err);
		goto out;
	}
	if (exhealth_start(&ex, c.metrics_listen, err, sizeof(err)) < 0) {
		log_error("--metrics-listen %s: %s", c.metrics_listen, err);
		goto out;
	}
	rc = loop_run(ex.loop) < 0 ? 1 : 0;
out:
	exhealth_stop();
	procs_kill_all(&ex);
	if (ex.loop)
		contain_final(&ex);
	box_fini(&ex);
	httprelay_free(&ex);
	if (ex.loop) {
		dial_stop(&ex);
		listener_stop(&ex);
	}
	loop_free(ex.loop);
	plugin_forget_all();
	secret_free(ex.secret);
	for (size_t i = 0; i < c.o.n_root_allow; i++)
		free((char *)c.o.root_allow[i]);
	free(c.o.root_allow);
	for (size_t i = 0; i < c.o.n_sandbox_allow; i++)
		free((char *)c.o.sandbox_allow[i]);
	free(c.o.sandbox_allow);
	return rc;
}
