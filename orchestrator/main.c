/* main.c - tandem-orchestrator: owns threads, turns, auth and the MCP
 * manager; serves the client API; never touches plugin files.
 *
 * The core wiring, and the only file that knows every module: it starts
 * them in order, hands each its loop, home and struct http, connects the
 * upward reports of the lower layers (environment events, token changes)
 * to the modules above, and stops everything at the end. The layers and
 * what may include what: tests/layers/layers.txt. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <sodium.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "account.h"
#include "apps.h"
#include "client.h"
#include "config.h"
#include "env.h"
#include "envfile.h"
#include "envs.h"
#include "fdlimit.h"
#include "gateway.h"
#include "health.h"
#include "link.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "oauth_login.h"
#include "oauth_store.h"
#include "sandbox_self.h"
#include "seal.h"
#include "secret.h"
#include "session.h"
#include "spawner.h"
#include "srv.h"
#include "store.h"
#include "thread.h"
#include "turn.h"
#include "util.h"
#include "version.h"

#define DRAIN_MAX_MS 2000u /* at exit, for session DELETEs and last frames to go out */
#define DRAIN_TICK_MS 20u
#define MAX_LISTEN 4u /* --listen given more than once: e.g. unix:// for the CLI and ws:// */

static struct {
	struct loop *loop;
	struct envfile *envfile;
	struct client_srv *listener[MAX_LISTEN];
	struct client_auth *ws_auth; /* --ws-auth, for ws:// listeners */
	struct http *http; /* libcurl multi on the loop: model API, hosted HTTP MCP */
} core;

static void usage(FILE *out)
{
	fprintf(out,
		"usage: tandem-orchestrator [--home DIR] [--listen stdio://|unix://PATH|ws://IP:PORT]\n"
		"                           [options]\n"
		"Owns threads, turns, auth and the MCP manager, and serves the Codex app-server v2\n"
		"client API. Plugins and their MCP servers live on executors.\n\n"
		"  --home DIR          config.toml and environments.toml live here\n"
		"                      (default: $TANDEM_HOME, else ~/.tandem)\n"
		"  --listen URL        stdio:// (default: one client on stdin/stdout; EOF ends the\n"
		"                      daemon), unix://PATH (many clients, socket mode 0600;\n"
		"                      JSON lines or WebSocket) or ws://IP:PORT (WebSocket; port 0\n"
		"                      picks one; GET /readyz). Up to 4 unix:// and ws://\n"
		"  --ws-auth MODE      ws:// authentication: capability-token or\n"
		"                      signed-bearer-token (required off loopback)\n"
		"  --ws-token-file F   capability-token: the token (file mode 0600)\n"
		"  --ws-token-sha256 HEX  capability-token: only the token's SHA-256\n"
		"  --ws-shared-secret-file F  signed-bearer-token: the HS256 key (mode 0600)\n"
		"  --ws-issuer S, --ws-audience S  signed-bearer-token: claims required\n"
		"  --ws-max-clock-skew-seconds N   signed-bearer-token: leeway (default 30)\n"
		"  --executor PATH     the tandem-executor to spawn (default: next to this binary,\n"
		"                      else on PATH)\n"
		"  --log-level LEVEL   error, warn, info (default) or debug (logs go to stderr)\n"
		"  --log-format FMT    text (default) or json (one object per line)\n"
		"  --metrics-listen HOST:PORT  serve /livez, /readyz and /metrics there (off)\n"
		"  --mcp-listen HOST:PORT      serve the MCP gateway there (off; README)\n"
		"  --state-dir DIR     the thread store lives here (default: $TANDEM_STATE_DIR,\n"
		"                      else HOME/state)\n"
		"  --ephemeral         keep no thread store: threads live in memory only\n"
		"  --thread-idle-sec N unload a thread no client uses after N s (default 600;\n"
		"                      0: never)\n"
		"  --executor-listen URL  listen there for executors that dial out\n"
		"                      (tandem-executor --connect; tcp://, tls+tcp://,\n"
		"                      ws://, wss://, ipc://)\n"
		"  --max-environments N  cap on environments, environments.toml's and\n"
		"                      environment/add's together (default %u)\n"
		"  --link-grace-sec N  a link to an executor that drops may resume its session\n"
		"                      within N s: calls in flight carry on (default 30; 0: never)\n"
		"  --require-sandbox   refuse to start where the sandbox (Landlock) is missing\n"
		"  --no-sandbox        do not confine this process (debugging)\n"
		"  -h, --help          this text\n"
		"  -V, --version       print the version\n", ENVS_MAX_DEFAULT);
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
	const char *listen[MAX_LISTEN];
	unsigned n_listen;
	struct client_auth_cfg ws_auth;
	const char *metrics_listen; /* operations endpoint (health.h), NULL = off */
	const char *mcp_listen;     /* the MCP gateway (gateway.h), NULL = off */
	char *state_dir;            /* the thread store (store.h) */
	bool ephemeral;             /* no store */
	uint64_t idle_ms;           /* threads_init */
	bool require_sandbox, no_sandbox; /* sandbox_self.h */
	const char *executor_listen; /* envs_set_listen, NULL = off */
	size_t max_envs;             /* envs_set_max */
};

/* --max-environments: 1 .. ENVS_MAX_LIMIT. */
static int parse_max_envs(const char *arg, size_t *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno || end == arg || *end || v < 1 || v > ENVS_MAX_LIMIT || arg[0] == '-') {
		fprintf(stderr, "tandem-orchestrator: --max-environments takes 1 to %u\n",
			ENVS_MAX_LIMIT);
		return -1;
	}
	*out = v;
	return 0;
}

/* --thread-idle-sec, --link-grace-sec: 0 .. a day. */
static int parse_idle(const char *arg, uint64_t *ms, const char *opt)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno || end == arg || *end || v > 86400 || arg[0] == '-') {
		fprintf(stderr, "tandem-orchestrator: %s takes 0 to 86400\n", opt);
		return -1;
	}
	*ms = (uint64_t)v * 1000u;
	return 0;
}

/* --ws-max-clock-skew-seconds: 0 .. an hour. */
static int parse_skew(const char *arg, uint64_t *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno || end == arg || *end || v > 3600 || arg[0] == '-') {
		fprintf(stderr, "tandem-orchestrator: --ws-max-clock-skew-seconds takes 0 to 3600\n");
		return -1;
	}
	*s = v;
	return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	enum { O_HOME = 256, O_EXEC, O_LOG, O_METRICS, O_LOGFMT, O_MCP, O_STATE, O_EPHEMERAL,
	       O_IDLE, O_SB_REQUIRE, O_SB_OFF, O_XLISTEN, O_MAXENV, O_GRACE, O_WS_AUTH,
	       O_WS_TOKEN_FILE, O_WS_TOKEN_SHA, O_WS_SECRET, O_WS_ISS, O_WS_AUD, O_WS_SKEW };
	static const struct option lopts[] = {
		{ "home", required_argument, NULL, O_HOME },
		{ "listen", required_argument, NULL, 'l' },
		{ "executor", required_argument, NULL, O_EXEC },
		{ "log-level", required_argument, NULL, O_LOG },
		{ "metrics-listen", required_argument, NULL, O_METRICS },
		{ "log-format", required_argument, NULL, O_LOGFMT },
		{ "mcp-listen", required_argument, NULL, O_MCP },
		{ "state-dir", required_argument, NULL, O_STATE },
		{ "ephemeral", no_argument, NULL, O_EPHEMERAL },
		{ "thread-idle-sec", required_argument, NULL, O_IDLE },
		{ "link-grace-sec", required_argument, NULL, O_GRACE },
		{ "require-sandbox", no_argument, NULL, O_SB_REQUIRE },
		{ "no-sandbox", no_argument, NULL, O_SB_OFF },
		{ "executor-listen", required_argument, NULL, O_XLISTEN },
		{ "max-environments", required_argument, NULL, O_MAXENV },
		{ "ws-auth", required_argument, NULL, O_WS_AUTH },
		{ "ws-token-file", required_argument, NULL, O_WS_TOKEN_FILE },
		{ "ws-token-sha256", required_argument, NULL, O_WS_TOKEN_SHA },
		{ "ws-shared-secret-file", required_argument, NULL, O_WS_SECRET },
		{ "ws-issuer", required_argument, NULL, O_WS_ISS },
		{ "ws-audience", required_argument, NULL, O_WS_AUD },
		{ "ws-max-clock-skew-seconds", required_argument, NULL, O_WS_SKEW },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	enum log_level lvl;
	enum log_format fmt;
	int c;

	while ((c = getopt_long(argc, argv, "l:hV", lopts, NULL)) != -1) {
		switch (c) {
		case O_HOME: free(o->home); o->home = xstrdup(optarg); break;
		case 'l':
			if (o->n_listen == MAX_LISTEN) {
				fprintf(stderr, "tandem-orchestrator: at most %u --listen\n",
					MAX_LISTEN);
				return -1;
			}
			o->listen[o->n_listen++] = optarg;
			break;
		case O_WS_AUTH:
			if (strcmp(optarg, "capability-token") == 0) {
				o->ws_auth.mode = CLIENT_AUTH_CAPABILITY;
			} else if (strcmp(optarg, "signed-bearer-token") == 0) {
				o->ws_auth.mode = CLIENT_AUTH_SIGNED;
			} else {
				fprintf(stderr, "tandem-orchestrator: --ws-auth takes "
						"capability-token or signed-bearer-token\n");
				return -1;
			}
			break;
		case O_WS_TOKEN_FILE: o->ws_auth.token_file = optarg; break;
		case O_WS_TOKEN_SHA: o->ws_auth.token_sha256 = optarg; break;
		case O_WS_SECRET: o->ws_auth.secret_file = optarg; break;
		case O_WS_ISS: o->ws_auth.issuer = optarg; break;
		case O_WS_AUD: o->ws_auth.audience = optarg; break;
		case O_WS_SKEW:
			if (parse_skew(optarg, &o->ws_auth.max_skew_s) < 0)
				return -1;
			break;
		case O_EXEC: env_set_executor_path(optarg); break;
		case O_LOG:
			if (log_level_parse(optarg, &lvl) < 0) {
				fprintf(stderr, "tandem-orchestrator: bad --log-level '%s'\n", optarg);
				return -1;
			}
			log_set_level(lvl);
			break;
		case O_METRICS: o->metrics_listen = optarg; break;
		case O_MCP: o->mcp_listen = optarg; break;
		case O_LOGFMT:
			if (log_format_parse(optarg, &fmt) < 0) {
				fprintf(stderr, "tandem-orchestrator: bad --log-format '%s'\n", optarg);
				return -1;
			}
			log_set_format(fmt);
			break;
		case O_STATE: free(o->state_dir); o->state_dir = xstrdup(optarg); break;
		case O_EPHEMERAL: o->ephemeral = true; break;
		case O_IDLE:
			if (parse_idle(optarg, &o->idle_ms, "--thread-idle-sec") < 0)
				return -1;
			break;
		case O_GRACE: {
			uint64_t ms;

			if (parse_idle(optarg, &ms, "--link-grace-sec") < 0)
				return -1;
			env_set_default_grace_ms(ms);
			break;
		}
		case O_SB_REQUIRE: o->require_sandbox = true; break;
		case O_SB_OFF: o->no_sandbox = true; break;
		case O_XLISTEN: o->executor_listen = optarg; break;
		case O_MAXENV:
			if (parse_max_envs(optarg, &o->max_envs) < 0)
				return -1;
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
	if (o->n_listen == 0)
		o->listen[o->n_listen++] = "stdio://";
	for (unsigned i = 0; i < o->n_listen; i++) {
		const char *u = o->listen[i];

		if (strcmp(u, "stdio://") != 0 && strncmp(u, "unix://", 7) != 0 &&
		    strncmp(u, "ws://", 5) != 0) {
			fprintf(stderr, "tandem-orchestrator: --listen takes stdio://, unix://PATH "
					"or ws://IP:PORT\n");
			return -1;
		}
		/* The stdio client's EOF ends the daemon: it serves alone. */
		if (strcmp(u, "stdio://") == 0 && o->n_listen > 1) {
			fprintf(stderr, "tandem-orchestrator: stdio:// cannot be combined with "
					"other --listen\n");
			return -1;
		}
	}
	if (o->ws_auth.mode == CLIENT_AUTH_NONE &&
	    (o->ws_auth.token_file || o->ws_auth.token_sha256 || o->ws_auth.secret_file)) {
		fprintf(stderr, "tandem-orchestrator: --ws-token-* and --ws-shared-secret-file "
				"need --ws-auth\n");
		return -1;
	}
	if (!o->home)
		o->home = default_home();
	if (!o->state_dir && getenv("TANDEM_STATE_DIR") && *getenv("TANDEM_STATE_DIR"))
		o->state_dir = xstrdup(getenv("TANDEM_STATE_DIR"));
	if (!o->state_dir)
		o->state_dir = xasprintf("%s/state", o->home);
	return 0;
}

static int load_files(const char *home, size_t max_envs)
{
	size_t declared;
	const struct config *c;
	char err[1024];
	json_t *w;
	size_t i;

	if (config_init(home, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return -1;
	}
	c = config_current();
	json_array_foreach(c->warnings, i, w)
		log_warn("%s", json_string_value(w));
	json_array_foreach(c->invalid_servers, i, w)
		log_warn("mcp server '%s' ignored: %s", json_string_value(json_object_get(w, "name")),
			 json_string_value(json_object_get(w, "reason")));
	if (envfile_load(home, &core.envfile, err, sizeof(err)) < 0) {
		log_error("%s", err);
		return -1;
	}
	declared = core.envfile->n_envs + core.envfile->include_local;
	if (declared > (max_envs ? max_envs : ENVS_MAX_DEFAULT)) {
		log_error("%s declares %zu environments (local included), more than the cap of %zu "
			  "(--max-environments)", core.envfile->path, declared,
			  max_envs ? max_envs : (size_t)ENVS_MAX_DEFAULT);
		return -1;
	}
	return 0;
}

/* ---- secrets and the sandbox ------------------------------------------- */

/* The secrets the orchestrator reads from its environment go into guarded
 * memory now, before any thread or child exists, and leave the environment
 * (common/secret.h): the model keys (OPENAI_API_KEY and every provider's
 * env_key), the OAuth token store key, the link token, and the variables
 * HTTP MCP servers take their bearer token from. */
static void hold_secrets(void)
{
	static const char *const fixed[] = { "OPENAI_API_KEY", OAUTH_STORE_KEY_ENV,
					     "TANDEM_EXECUTOR_TOKEN" };
	const struct config *c = config_current();
	const char *k;
	json_t *v;

	for (size_t i = 0; i < ARRAY_SIZE(fixed); i++)
		secret_env_hold(fixed[i]);
	json_object_foreach(c->model_providers, k, v)
		secret_env_hold(json_string_value(json_object_get(v, "env_key")));
	json_object_foreach(c->mcp_servers, k, v)
		secret_env_hold(json_string_value(json_object_get(v, "bearer_token_env_var")));
	for (size_t i = 0; i < secret_env_count(); i++)
		log_debug("holding $%s in guarded memory", secret_env_name(i));
}

/* What the spawner removes at the end (the executors' socket directory, the
 * client sockets), then it is sealed. */
static int spawner_prepare(const struct opts *o, const char *runtime, char *err, size_t errlen)
{
	if (runtime && spawner_remove_at_exit(runtime, err, errlen) < 0)
		return -1;
	for (unsigned i = 0; i < o->n_listen; i++)
		if (!strncmp(o->listen[i], "unix://", 7) &&
		    spawner_remove_at_exit(o->listen[i] + 7, err, errlen) < 0)
			return -1;
	return spawner_seal(err, errlen);
}

/* Before the sandbox: tell the spawner what it may start (the spawned
 * environments' programs) and remove at the end (the client socket, the
 * executors' socket directory), seal it, then confine ourselves. */
static int confine(const struct opts *o)
{
	const struct envfile *ef = core.envfile;
	const char *runtime = NULL;
	char err[512];
	bool spawns = ef->include_local;

	if (ef->include_local && spawner_allow(env_executor_path(), err, sizeof(err)) < 0)
		log_error("environment 'local': %s", err);
	for (size_t i = 0; i < ef->n_envs; i++) {
		if (!ef->envs[i].program)
			continue;
		spawns = true;
		if (spawner_allow(env_spawn_program(ef->envs[i].program), err, sizeof(err)) < 0)
			log_error("environment '%s': %s", ef->envs[i].id, err);
	}
	if (spawns && !(runtime = env_spawn_runtime_dir(err, sizeof(err))))
		log_error("%s", err);
	if (spawner_prepare(o, runtime, err, sizeof(err)) < 0) {
		log_error("spawner: %s", err);
		return -1;
	}
	return sandbox_self_apply(&(struct sandbox_self_opts){
		       .home = o->home,
		       .state_dir = store_is_open() ? store_dir() : NULL,
		       .runtime_dir = runtime,
		       .home_writable = oauth_store_persistent(),
		       .require = o->require_sandbox,
		       .off = o->no_sandbox,
	       }) < 0 ? -1 : 0;
}

/* ---- upward reports, wired to the modules above ------------------------ */

static void env_state_cb(struct env *e, void *arg)
{
	srv_env_changed(e);
	threads_env_changed(e);
}

static void env_output_cb(struct env *e, uint64_t handle, const char *data, size_t len, void *arg)
{
	srv_on_output(e, handle, data, len);
}

static void env_exited_cb(struct env *e, uint64_t handle, const char *reason, void *arg)
{
	srv_on_exited(e, handle, reason);
}

static void env_removed_cb(struct env *e, const char *why, void *arg)
{
	srv_env_removed(e, why);
}

static const struct envs_ops envs_ops = {
	.removed_cb = env_removed_cb,
	.state_cb = env_state_cb,
	.output_cb = env_output_cb,
	.exited_cb = env_exited_cb,
};

static void tokens_changed_cb(const char *server, void *arg) { srv_auth_changed(server); }

/* ---- serving ----------------------------------------------------------- */

/* The client listeners. The ws:// auth files are read here: after the
 * spawner forked (it holds no secret), before the sandbox applies. */
static int serve(const struct opts *o)
{
	char err[512];
	int r;

	if (gateway_start(core.loop, o->mcp_listen, err, sizeof(err)) < 0) {
		log_error("--mcp-listen %s: %s", o->mcp_listen, err);
		return -1;
	}
	if (client_auth_new(&o->ws_auth, &core.ws_auth, err, sizeof(err)) < 0) {
		log_error("--ws-auth: %s", err);
		return -1;
	}
	for (unsigned i = 0; i < o->n_listen; i++) {
		const char *u = o->listen[i];

		r = client_srv_listen(core.loop, u, core.ws_auth, &session_client_ops, NULL,
				      &core.listener[i], err, sizeof(err));
		if (r < 0) {
			log_error("--listen %s: %s", u, err);
			return r;
		}
		client_srv_set_ready(core.listener[i], health_ready, NULL);
		if (strncmp(u, "ws://", 5) == 0)
			log_info("serving the client API on %s (port %d%s)", u,
				 client_srv_port(core.listener[i]),
				 core.ws_auth ? ", authenticated" : "");
		else if (strcmp(u, "stdio://") != 0)
			log_info("serving the client API on %s", u);
	}
	return 0;
}

static void stop_cb(int signo, void *arg)
{
	log_info("signal %d: shutting down", signo);
	loop_stop(core.loop);
}

struct drain {
	uint64_t deadline;
	size_t (*pending)(void);
};

static void drain_cb(struct loop_timer *t, void *arg)
{
	const struct drain *d = arg;

	if (d->pending() == 0 || now_ms() >= d->deadline) {
		loop_stop(core.loop);
		return;
	}
	loop_timer_rearm(t, DRAIN_TICK_MS);
}

/* Runs the loop, for a bounded time, until pending() says nothing is left
 * going out. */
static void drain(size_t (*pending)(void))
{
	struct drain d = { now_ms() + DRAIN_MAX_MS, pending };

	if (pending() == 0)
		return;
	loop_timer_add(core.loop, 0, drain_cb, &d);
	loop_run(core.loop);
}

/* The thread store, unless --ephemeral: opened here (locked by another
 * orchestrator, damaged or newer: the start stops); its thread starts after
 * the sandbox applies (store_run), which needs a single-threaded process. */
static int start_store(const struct opts *o)
{
	char err[1024];

	if (o->ephemeral) {
		log_info("--ephemeral: no thread store; threads live in memory only");
		return 0;
	}
	if (store_start(core.loop, o->state_dir, err, sizeof(err)) < 0) {
		log_error("thread store: %s", err);
		return -1;
	}
	log_info("thread store: %s", store_path());
	return 0;
}

/* Every module in order, lowest first; the environments and the store's
 * thread start later, once the sandbox applies (run). */
static int start(const struct opts *o, bool stdio)
{
	const char *home = o->home;

	if (start_store(o) < 0)
		return -1;
	core.http = http_new(core.loop);
	envs_init(core.loop, home, core.http, &envs_ops, NULL);
	envs_set_max(o->max_envs);
	envs_set_listen(o->executor_listen);
	oauth_store_init(home, config_current()->oauth_store);
	oauth_store_watch(tokens_changed_cb, NULL);
	oauth_login_init(core.loop);
	srv_init(core.loop);
	threads_init(core.loop, o->idle_ms);
	turn_init(core.loop, core.http);
	apps_register();
	session_init(core.loop, stdio);
	return 0;
}

static void stop(void)
{
	gateway_stop();
	turn_abort_all();
	for (unsigned i = 0; i < MAX_LISTEN; i++)
		core.listener[i] = client_srv_free(core.listener[i]);
	core.ws_auth = client_auth_free(core.ws_auth);
	thread_free_all();
	store_stop(); /* what the threads wrote last commits here */
	srv_stop_all();
	oauth_login_shutdown();
	oauth_store_shutdown();
	account_logout();
	/* The DELETEs that end HTTP MCP sessions, then the links' last frames
	 * (the servers' MCP_STOPs): the executors stop them at once instead of
	 * keeping them for a reconnect. */
	drain(envs_http_pending);
	envs_stop();
	drain(link_lingering);
}

/* The daemon, once the files are read and the spawner forked. */
static int run(struct opts *o)
{
	bool stdio = strcmp(o->listen[0], "stdio://") == 0;
	char err[512];
	int rc = 1;

	core.loop = loop_new();
	/* Before nng and libcurl start threads, so they inherit the mask. */
	loop_signal_add(core.loop, SIGINT, stop_cb, NULL);
	loop_signal_add(core.loop, SIGTERM, stop_cb, NULL);
	loop_signal_add(core.loop, SIGHUP, stop_cb, NULL);
	if (health_start(core.loop, o->metrics_listen, err, sizeof(err)) < 0)
		log_error("--metrics-listen %s: %s", o->metrics_listen, err);
	else if (start(o, stdio) == 0 && serve(o) == 0 && confine(o) == 0 &&
		 store_run(err, sizeof(err)) == 0) {
		/* nng's threads start with the first dial, the store's just above:
		 * after the sandbox */
		spawner_attach(core.loop);
		envs_start(core.envfile);
		health_serving(core.envfile, !o->ephemeral);
		rc = loop_run(core.loop) < 0 ? 1 : 0;
	}
	stop();
	spawner_shutdown(SPAWNER_STOP_GRACE_MS + 1000); /* the executors are gone then */
	health_stop();
	link_flush_all(); /* the loop is done: links still flushing or draining go */
	core.http = http_free(core.http);
	loop_free(core.loop);
	return rc;
}

int main(int argc, char **argv)
{
	struct opts o = { .idle_ms = THREAD_IDLE_DEFAULT_MS, .ws_auth.max_skew_s = 30 };
	char err[512];
	int r, rc = 1;

	long nofile, nofile_before;

	log_init("tandem-orchestrator", LOG_LVL_INFO);
	/* A fixed mmap threshold: the buffers of large client messages (up to
	 * 16 MiB, parsed on the client transport's worker thread) go back to
	 * the system when freed. glibc's dynamic threshold would rise above
	 * them after the first such free and keep the next ones in the heaps of
	 * two threads. */
	mallopt(M_MMAP_THRESHOLD, 256 * 1024);
	r = parse_args(argc, argv, &o);
	if (r != 0) {
		free(o.home);
		free(o.state_dir);
		return r > 0 ? 0 : 2;
	}
	/* Each environment holds descriptors: the soft limit (often 1,024)
	 * would be the wall long before the cap (common/fdlimit.h). */
	nofile = fdlimit_raise(&nofile_before);
	if (nofile < -1)
		log_warn("cannot raise the open-file limit: %s", strerror((int)-nofile));
	else if (nofile != nofile_before)
		log_info("open-file limit raised from %ld to %ld", nofile_before, nofile);
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0) /* ids, PKCE and the token store need it */
		log_error("libsodium failed to initialize");
	/* OpenSSL's ChaCha20-Poly1305 for sealed links: fetched now, as the
	 * fetch may read openssl.cnf, which the confined daemon cannot. */
	if (seal_global_init() < 0)
		log_warn("libcrypto has no ChaCha20-Poly1305: links seal with the other AEADs");
	/* Before any thread: the secrets leave the environment, then the
	 * spawner forks (it holds none of them). */
	if (load_files(o.home, o.max_envs) == 0) {
		hold_secrets();
		if (spawner_fork(err, sizeof(err)) < 0)
			log_error("%s", err);
		else
			rc = run(&o);
	}
	secret_env_release_all();
	config_install(NULL);
	envfile_free(core.envfile);
	free(o.home);
	free(o.state_dir);
	return rc;
}
