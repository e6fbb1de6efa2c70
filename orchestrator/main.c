/* main.c - tandem-orchestrator: owns threads, turns, auth and the MCP
 * manager; serves the client API; never touches plugin files. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apps.h"
#include "client.h"
#include "config.h"
#include "env.h"
#include "envfile.h"
#include "link.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "oauth.h"
#include "orch.h"
#include "srv.h"
#include "thread.h"
#include "turn.h"
#include "util.h"
#include "version.h"

#define DRAIN_MAX_MS 2000u /* at exit, for session DELETEs to go out */
#define DRAIN_TICK_MS 20u

static void usage(FILE *out)
{
	fprintf(out,
		"usage: tandem-orchestrator [--home DIR] [--listen stdio://|unix://PATH] [options]\n"
		"Owns threads, turns, auth and the MCP manager, and serves the Codex app-server v2\n"
		"client API. Plugins and their MCP servers live on executors.\n\n"
		"  --home DIR          config.toml and environments.toml live here\n"
		"                      (default: $TANDEM_HOME, else ~/.tandem)\n"
		"  --listen URL        stdio:// (default: one client on stdin/stdout; EOF ends the\n"
		"                      daemon) or unix://PATH (many clients, socket mode 0600)\n"
		"  --executor PATH     the tandem-executor to spawn (default: next to this binary,\n"
		"                      else on PATH)\n"
		"  --log-level LEVEL   error, warn, info (default) or debug (logs go to stderr)\n"
		"  -h, --help          this text\n"
		"  -V, --version       print the version\n");
}

static char *default_home(void)
{
	const char *h = getenv("TANDEM_HOME");

	if (h && *h)
		return xstrdup(h);
	h = getenv("HOME");
	return xasprintf("%s/.tandem", h && *h ? h : "/");
}

struct opts {
	char *home;
	const char *listen;
};

static int parse_args(int argc, char **argv, struct opts *o)
{
	enum { O_HOME = 256, O_EXEC, O_LOG };
	static const struct option lopts[] = {
		{ "home", required_argument, NULL, O_HOME },
		{ "listen", required_argument, NULL, 'l' },
		{ "executor", required_argument, NULL, O_EXEC },
		{ "log-level", required_argument, NULL, O_LOG },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	enum log_level lvl;
	int c;

	while ((c = getopt_long(argc, argv, "l:hV", lopts, NULL)) != -1) {
		switch (c) {
		case O_HOME: free(o->home); o->home = xstrdup(optarg); break;
		case 'l': o->listen = optarg; break;
		case O_EXEC: env_set_executor_path(optarg); break;
		case O_LOG:
			if (log_level_parse(optarg, &lvl) < 0) {
				fprintf(stderr, "tandem-orchestrator: bad --log-level '%s'\n", optarg);
				return -1;
			}
			log_set_level(lvl);
			break;
		case 'h': usage(stdout); return 1;
		case 'V': printf("tandem-orchestrator %s\n", TANDEM_VERSION); return 1;
		default: usage(stderr); return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tandem-orchestrator: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (strcmp(o->listen, "stdio://") != 0 && strncmp(o->listen, "unix://", 7) != 0) {
		fprintf(stderr, "tandem-orchestrator: --listen takes stdio:// or unix://PATH\n");
		return -1;
	}
	if (!o->home)
		o->home = default_home();
	return 0;
}

static int load_files(void)
{
	char err[1024];
	json_t *w;
	size_t i;

	if (config_load(orch->home, &orch->config, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return -1;
	}
	json_array_foreach(orch->config->warnings, i, w)
		log_warn("%s", json_string_value(w));
	json_array_foreach(orch->config->invalid_servers, i, w)
		log_warn("mcp server '%s' ignored: %s", json_string_value(json_object_get(w, "name")),
			 json_string_value(json_object_get(w, "reason")));
	if (envfile_load(orch->home, &orch->envfile, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return -1;
	}
	return 0;
}

static int serve(const char *listen)
{
	char err[512];
	int r;

	if (strcmp(listen, "stdio://") == 0) {
		orch->stdio = true;
		return client_srv_stdio(orch->loop, 0, 1, &orch_client_ops, NULL, &orch->listener);
	}
	r = client_srv_unix(orch->loop, listen + 7, &orch_client_ops, NULL, &orch->listener, err,
			    sizeof(err));
	if (r < 0)
		log_error("%s", err);
	else
		log_info("serving the client API on %s", listen);
	return r;
}

static void stop_cb(int signo, void *arg)
{
	log_info("signal %d: shutting down", signo);
	loop_stop(orch->loop);
}

/* Requests still going out: the DELETEs that end HTTP MCP sessions. */
static size_t http_pending_all(void)
{
	size_t n = http_pending(orch->http);

	for (size_t i = 0; i < orch->n_envs; i++)
		n += http_pending(env_http(orch->envs[i]));
	return n;
}

static void drain_cb(struct loop_timer *t, void *arg)
{
	const uint64_t *deadline = arg;

	if (http_pending_all() == 0 || now_ms() >= *deadline) {
		loop_stop(orch->loop);
		return;
	}
	loop_timer_rearm(t, DRAIN_TICK_MS);
}

/* Lets the servers hear that their sessions ended, for a bounded time. */
static void drain_http(void)
{
	uint64_t deadline = now_ms() + DRAIN_MAX_MS;

	if (http_pending_all() == 0)
		return;
	loop_timer_add(orch->loop, 0, drain_cb, &deadline);
	loop_run(orch->loop);
}

int main(int argc, char **argv)
{
	struct opts o = { .listen = "stdio://" };
	struct orch state = { 0 };
	int r, rc = 1;

	log_init("tandem-orchestrator", LOG_LVL_INFO);
	r = parse_args(argc, argv, &o);
	if (r != 0) {
		free(o.home);
		return r > 0 ? 0 : 2;
	}
	signal(SIGPIPE, SIG_IGN);
	orch = &state;
	orch->home = o.home;
	orch->loop = loop_new();
	/* Before nng and libcurl start threads, so they inherit the mask. */
	loop_signal_add(orch->loop, SIGINT, stop_cb, NULL);
	loop_signal_add(orch->loop, SIGTERM, stop_cb, NULL);
	loop_signal_add(orch->loop, SIGHUP, stop_cb, NULL);
	if (load_files() < 0)
		goto out;
	apps_register();
	oauth_init();
	orch->http = http_new(orch->loop);
	orch_envs_start();
	if (serve(o.listen) < 0)
		goto out;
	rc = loop_run(orch->loop) < 0 ? 1 : 0;
out:
	turn_abort_all();
	orch->listener = client_srv_free(orch->listener);
	thread_free_all();
	srv_stop_all();
	oauth_shutdown();
	drain_http();
	orch_envs_stop();
	link_flush_all(); /* the loop is done: links still flushing or draining go */
	orch->http = http_free(orch->http);
	config_free(orch->config);
	envfile_free(orch->envfile);
	loop_free(orch->loop);
	free(orch->home);
	return rc;
}
