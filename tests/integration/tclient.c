/* tclient.c - see tclient.h. */
#include "tclient.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <nng/protocol/pair1/pair.h>
#include <nng/supplemental/tls/tls.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth.h"
#include "link.h"
#include "util.h"

void tframe_free(struct tframe *f)
{
	if (f->nmsg) {
		proto_msg_release(&f->m);
		nng_msg_free(f->nmsg);
		f->nmsg = NULL;
	}
}

/* Receives one frame (waiting up to timeout_ms) and decodes it; a frame the
 * codec rejects fails the test: the executor must only send valid ones. */
static int recv_frame(struct tclient *c, struct tframe *f, int timeout_ms)
{
	char err[256];
	int r;

	nng_socket_set_ms(c->sock, NNG_OPT_RECVTIMEO, timeout_ms);
	r = nng_recvmsg(c->sock, &f->nmsg, 0);
	if (r == NNG_ETIMEDOUT)
		return -ETIMEDOUT;
	if (r != 0)
		return -EPIPE;
	r = proto_decode(nng_msg_body(f->nmsg), nng_msg_len(f->nmsg), &f->m, err, sizeof(err));
	ck_assert_msg(r == 0, "executor sent an invalid frame: %s", err);
	return 0;
}

static int msg_write(void *ctx, const void *data, size_t len)
{
	return nng_msg_append(ctx, data, len) == 0 ? 0 : -ENOMEM;
}

static int send_encoded(struct tclient *c, uint16_t type, uint8_t kind, uint32_t id,
			const void *body)
{
	nng_msg *m;
	int r;

	ck_assert_int_eq(nng_msg_alloc(&m, 0), 0);
	r = proto_encode(msg_write, m, type, kind, id, body);
	ck_assert_int_eq(r, 0);
	r = nng_sendmsg(c->sock, m, 0);
	if (r != 0) {
		nng_msg_free(m);
		return -EPIPE;
	}
	return 0;
}

int tc_send_raw(struct tclient *c, const void *data, size_t len)
{
	nng_msg *m;

	ck_assert_int_eq(nng_msg_alloc(&m, 0), 0);
	nng_msg_append(m, data, len);
	if (nng_sendmsg(c->sock, m, 0) != 0) {
		nng_msg_free(m);
		return -EPIPE;
	}
	return 0;
}

static void pipe_removed_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct tclient *c = arg;

	__atomic_add_fetch(&c->pipes_removed, 1, __ATOMIC_SEQ_CST);
}

/* TLS dials trust $TANDEM_TEST_TLS_CA and expect the name "localhost". */
static int tls_client(nng_dialer d)
{
	const char *ca = getenv("TANDEM_TEST_TLS_CA");
	nng_tls_config *cfg;
	int r;

	ck_assert_msg(ca != NULL, "set TANDEM_TEST_TLS_CA for tls+tcp:// dials");
	r = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT);
	if (r == 0)
		r = nng_tls_config_ca_file(cfg, ca);
	if (r == 0)
		r = nng_tls_config_server_name(cfg, "localhost");
	if (r == 0)
		r = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED);
	if (r == 0)
		r = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg);
	nng_tls_config_free(cfg);
	return r;
}

int tc_dial(struct tclient *c, const char *url, int timeout_ms)
{
	struct tframe f = { 0 };
	int r;

	memset(c, 0, sizeof(*c));
	c->next_id = 1;
	ck_assert_int_eq(nng_pair1_open(&c->sock), 0);
	c->open = true;
	nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, pipe_removed_cb, c);
	nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, PROTO_MAX_FRAME);
	nng_socket_set_ms(c->sock, NNG_OPT_SENDTIMEO, 5000);
	/* No quick automatic redials: a redial racing this socket's own close
	 * can leave a half-added pipe in the executor's pair1 slot (an nng
	 * 1.5.2 race). tc_connect retries with fresh sockets instead. */
	{
		nng_dialer d;

		r = nng_dialer_create(&d, c->sock, url);
		if (r == 0) {
			nng_dialer_set_ms(d, NNG_OPT_RECONNMINT, 5000);
			nng_dialer_set_ms(d, NNG_OPT_RECONNMAXT, 5000);
			if (strncmp(url, "tls+tcp://", 10) == 0)
				r = tls_client(d);
		}
		if (r == 0)
			r = nng_dialer_start(d, 0);
	}
	if (r != 0)
		return -ECONNREFUSED;
	r = recv_frame(c, &f, timeout_ms);
	if (r < 0)
		return r;
	ck_assert_uint_eq(f.m.env.type, PROTO_CHALLENGE);
	ck_assert_uint_eq(f.m.u.challenge.nonce.len, PROTO_NONCE_LEN);
	memcpy(c->nonce_e, f.m.u.challenge.nonce.ptr, PROTO_NONCE_LEN);
	tframe_free(&f);
	return 0;
}

static void key_of(const char *secret, uint8_t key[32])
{
	crypto_generichash(key, 32, (const uint8_t *)secret, strlen(secret), NULL, 0);
}

int tc_hello(struct tclient *c, const char *secret, bool corrupt)
{
	struct proto_hello_body h = { .version_min = 1, .version_max = 1 };
	uint8_t proof[PROTO_PROOF_LEN], key[32];
	struct tframe f = { 0 };
	int r;

	randombytes_buf(c->nonce_o, sizeof(c->nonce_o));
	h.nonce.ptr = (const char *)c->nonce_o;
	h.nonce.len = PROTO_NONCE_LEN;
	h.orchestrator_id = proto_str_c("test-client");
	h.environment_id = proto_str_c("test");
	PROTO_MARK(&h, hello_body, orchestrator_id);
	PROTO_MARK(&h, hello_body, environment_id);
	if (secret) {
		key_of(secret, key);
		auth_proof(key, AUTH_ORCHESTRATOR, c->nonce_e, c->nonce_o, proof);
		if (corrupt)
			proof[0] ^= 1;
		h.proof.ptr = (const char *)proof;
		h.proof.len = sizeof(proof);
		PROTO_MARK(&h, hello_body, proof);
	}
	r = tc_call(c, PROTO_HELLO, &h, &f, 5000);
	if (r < 0)
		return r;
	r = f.m.env.status;
	if (r == 0 && secret) {
		/* The executor must prove the secret back. */
		ck_assert(auth_verify(key, AUTH_EXECUTOR, c->nonce_o, c->nonce_e,
				      f.m.u.hello_reply.proof.ptr, f.m.u.hello_reply.proof.len));
	}
	if (r == 0) {
		c->n_live = MIN(f.m.u.hello_reply.live_handles.n, 64u);
		for (unsigned i = 0; i < c->n_live; i++)
			c->live_handles[i] = f.m.u.hello_reply.live_handles.items[i];
	}
	tframe_free(&f);
	return r;
}

void tc_connect(struct tclient *c, const char *url, const char *secret)
{
	int r = -1, h = -1;

	/* The listener may still be coming up right after a restart, and a
	 * CHALLENGE can come from a pipe pair1 replaced a moment later (then
	 * our proof answers the wrong nonce): dial and prove again. */
	for (int i = 0; i < 50; i++) {
		r = tc_dial(c, url, 1000);
		if (r == 0 && (h = tc_hello(c, secret, false)) == 0)
			return;
		tc_close(c);
		usleep(100 * 1000);
	}
	ck_assert_msg(r == 0, "cannot connect to %s: %s", url, strerror(-r));
	ck_assert_msg(h == 0, "HELLO to %s refused (status %d)", url, h);
}

void tc_close(struct tclient *c)
{
	for (unsigned i = 0; i < c->n_pending; i++)
		tframe_free(&c->pending[i]);
	c->n_pending = 0;
	if (c->open)
		link_close_socket(c->sock); /* nng 1.5.2 can hang in nng_close */
	c->open = false;
}

static void keep_pending(struct tclient *c, struct tframe *f)
{
	/* stderr events are advisory: count them rather than keep them all. */
	if (f->m.env.type == PROTO_MCP_STDERR && c->n_pending >= ARRAY_SIZE(c->pending) / 2) {
		c->stderr_dropped++;
		tframe_free(f);
		return;
	}
	ck_assert_msg(c->n_pending < ARRAY_SIZE(c->pending), "too many unclaimed events");
	c->pending[c->n_pending++] = *f;
	f->nmsg = NULL;
}

int tc_call(struct tclient *c, uint16_t type, const void *body, struct tframe *reply,
	    int timeout_ms)
{
	uint32_t id = c->next_id++;
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	if (send_encoded(c, type, PROTO_REQUEST, id, body) < 0)
		return -EPIPE;
	for (;;) {
		int64_t left = (int64_t)(deadline - now_ms());
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		memset(reply, 0, sizeof(*reply));
		r = recv_frame(c, reply, (int)left);
		if (r < 0)
			return r;
		if (reply->m.env.kind == PROTO_REPLY && reply->m.env.id == id) {
			ck_assert_uint_eq(reply->m.env.type, type);
			return 0;
		}
		keep_pending(c, reply);
	}
}

int tc_send_event(struct tclient *c, uint16_t type, const void *body)
{
	return send_encoded(c, type, PROTO_EVENT, 0, body);
}

static bool event_matches(const struct tframe *f, uint16_t type, uint64_t handle)
{
	if (f->m.env.kind != PROTO_EVENT || f->m.env.type != type)
		return false;
	if (!handle)
		return true;
	/* Every MCP event has the handle as its first field (tag 1). */
	return f->m.u.mcp_output.handle == handle;
}

int tc_wait_event(struct tclient *c, uint16_t type, uint64_t handle, struct tframe *ev,
		  int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	for (unsigned i = 0; i < c->n_pending; i++) {
		if (event_matches(&c->pending[i], type, handle)) {
			*ev = c->pending[i];
			memmove(&c->pending[i], &c->pending[i + 1],
				(c->n_pending - i - 1) * sizeof(c->pending[0]));
			c->n_pending--;
			return 0;
		}
	}
	for (;;) {
		int64_t left = (int64_t)(deadline - now_ms());
		int r;

		if (left <= 0)
			return -ETIMEDOUT;
		memset(ev, 0, sizeof(*ev));
		r = recv_frame(c, ev, (int)left);
		if (r < 0)
			return r;
		if (event_matches(ev, type, handle))
			return 0;
		keep_pending(c, ev);
	}
}

bool tc_closed_by_peer(struct tclient *c, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	nng_msg *m;

	while (now_ms() < deadline) {
		if (__atomic_load_n(&c->pipes_removed, __ATOMIC_SEQ_CST) > 0)
			return true;
		nng_socket_set_ms(c->sock, NNG_OPT_RECVTIMEO, 20);
		if (nng_recvmsg(c->sock, &m, 0) == 0)
			nng_msg_free(m); /* e.g. an error reply sent before the drop */
	}
	return __atomic_load_n(&c->pipes_removed, __ATOMIC_SEQ_CST) > 0;
}

uint64_t tc_mcp_start(struct tclient *c, const char *name, const char *const *argv,
		      const char *const *env_kv, const char *const *env_vars, const char *cwd,
		      uint32_t *pid)
{
	struct proto_mcp_start_body b = { 0 };
	struct proto_str args[32], keys[32], vals[32], vars[32];
	struct tframe f = { 0 };
	uint64_t handle;

	b.server_name = proto_str_c(name);
	b.command = proto_str_c(argv[0]);
	for (size_t i = 1; argv[i]; i++)
		args[b.args.n++] = proto_str_c(argv[i]);
	b.args.items = args;
	for (size_t i = 0; env_kv && env_kv[i]; i++) {
		const char *eq = strchr(env_kv[i], '=');

		keys[b.env.n].ptr = env_kv[i];
		keys[b.env.n].len = (uint32_t)(eq - env_kv[i]);
		vals[b.env.n++] = proto_str_c(eq + 1);
	}
	b.env.keys = keys;
	b.env.vals = vals;
	for (size_t i = 0; env_vars && env_vars[i]; i++)
		vars[b.env_vars.n++] = proto_str_c(env_vars[i]);
	b.env_vars.items = vars;
	if (cwd)
		b.cwd = proto_str_c(cwd);
	b.present = PROTO_ALL_mcp_start_body;
	ck_assert_int_eq(tc_call(c, PROTO_MCP_START, &b, &f, 10000), 0);
	ck_assert_msg(f.m.env.status == 0, "MCP_START failed: %.*s", (int)f.m.err_message.len,
		      f.m.err_message.ptr);
	handle = f.m.u.mcp_start_reply.handle;
	if (pid)
		*pid = f.m.u.mcp_start_reply.pid;
	tframe_free(&f);
	return handle;
}

void tc_mcp_send(struct tclient *c, uint64_t handle, const char *json)
{
	struct proto_mcp_send_body b = { .handle = handle, .data = proto_str_c(json) };

	ck_assert_int_eq(tc_send_event(c, PROTO_MCP_SEND, &b), 0);
}

char *tc_mcp_recv(struct tclient *c, uint64_t handle, int timeout_ms)
{
	struct tframe f = { 0 };
	char *s;

	if (tc_wait_event(c, PROTO_MCP_OUTPUT, handle, &f, timeout_ms) < 0)
		return NULL;
	s = proto_str_dup(f.m.u.mcp_output.data);
	tframe_free(&f);
	return s;
}

/* ---- executor processes ---- */

static const char *executor_path(void)
{
	const char *p = getenv("TANDEM_EXECUTOR");

	ck_assert_msg(p != NULL, "set TANDEM_EXECUTOR to the tandem-executor binary");
	return p;
}

const char *fixture_path(void)
{
	const char *p = getenv("MCP_FIXTURE");

	ck_assert_msg(p != NULL, "set MCP_FIXTURE to the mcp-fixture binary");
	return p;
}

const char *plugins_dir(void)
{
	static char buf[4096];
	const char *p = getenv("TANDEM_FIXTURES");

	ck_assert_msg(p != NULL, "set TANDEM_FIXTURES to tests/fixtures");
	snprintf(buf, sizeof(buf), "%s/plugins", p);
	return buf;
}

static pid_t spawn(struct texec *e, const char *const *argv, const char *const *extra_env,
		   int secret_fd)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int log = open(e->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		dup2(log, 2);
		if (secret_fd >= 0) {
			dup2(secret_fd, 3);
		}
		for (size_t i = 0; extra_env && extra_env[i]; i++)
			putenv((char *)extra_env[i]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	return pid;
}

static unsigned texec_counter;

static void texec_init(struct texec *e)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->url, sizeof(e->url), "abstract://tandem-test-%d-%u", (int)getpid(),
		 texec_counter++);
	snprintf(e->log_path, sizeof(e->log_path), "/tmp/tandem-test-%d-%u.log", (int)getpid(),
		 texec_counter);
}

void texec_start(struct texec *e, const char *const *extra_args, const char *const *extra_env)
{
	texec_start_env_url(e, NULL, extra_args, extra_env);
}

void texec_start_url(struct texec *e, const char *url, const char *const *extra_args)
{
	texec_start_env_url(e, url, extra_args, NULL);
}

void texec_start_env_url(struct texec *e, const char *url, const char *const *extra_args,
			 const char *const *extra_env)
{
	const char *argv[40] = { executor_path(), "--listen", NULL, "--secret-fd", "3",
				 "--log-level", "debug" };
	size_t n = 7;
	uint8_t raw[16];
	int p[2];

	texec_init(e);
	if (url)
		snprintf(e->url, sizeof(e->url), "%s", url);
	argv[2] = e->url;
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(e->secret, sizeof(e->secret), raw, sizeof(raw));
	for (size_t i = 0; extra_args && extra_args[i]; i++)
		argv[n++] = extra_args[i];
	argv[n] = NULL;
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	e->pid = spawn(e, argv, extra_env, p[0]);
	close(p[0]);
	ck_assert_int_eq(write(p[1], e->secret, strlen(e->secret)), (ssize_t)strlen(e->secret));
	close(p[1]);
	/* Ready when it says so; dialling to probe would take the one peer slot. */
	for (int i = 0; i < 500 && !texec_log_contains(e, "listening on"); i++) {
		ck_assert_msg(!pid_gone(e->pid, 0), "executor exited at start:\n see %s", e->log_path);
		usleep(10 * 1000);
	}
	ck_assert_msg(texec_log_contains(e, "listening on"), "executor did not start listening");
}

pid_t texec_spawn_raw(struct texec *e, const char *url, const char *const *extra_args)
{
	const char *argv[40] = { executor_path(), "--listen", url };
	size_t n = 3;

	texec_init(e);
	snprintf(e->url, sizeof(e->url), "%s", url);
	for (size_t i = 0; extra_args && extra_args[i]; i++)
		argv[n++] = extra_args[i];
	argv[n] = NULL;
	e->pid = spawn(e, argv, NULL, -1);
	return e->pid;
}

void texec_stop(struct texec *e)
{
	int st;

	if (e->pid <= 0)
		return;
	kill(e->pid, SIGTERM);
	ck_assert_int_eq(waitpid(e->pid, &st, 0), e->pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "executor exit status 0x%x", st);
	e->pid = 0;
}

void texec_kill9(struct texec *e)
{
	int st;

	kill(e->pid, SIGKILL);
	waitpid(e->pid, &st, 0);
	e->pid = 0;
}

bool texec_log_contains(const struct texec *e, const char *needle)
{
	FILE *f = fopen(e->log_path, "r");
	char line[4096];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, needle) != NULL;
	fclose(f);
	return found;
}

static char proc_state(pid_t pid, pid_t *ppid)
{
	char path[64], buf[512], *p;
	char st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) != NULL) {
		int pp = 0;

		sscanf(p + 2, "%c %d", &st, &pp);
		if (ppid)
			*ppid = pp;
	}
	fclose(f);
	return st;
}

bool pid_gone(pid_t pid, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	do {
		char st = proc_state(pid, NULL);

		if (st == 0 || st == 'Z' || st == 'X')
			return true;
		usleep(20 * 1000);
	} while (now_ms() < deadline);
	return false;
}

int proc_fd_count(pid_t pid)
{
	char path[64];
	struct dirent *d;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	if (!dir)
		return -1;
	while ((d = readdir(dir)))
		n += d->d_name[0] != '.';
	closedir(dir);
	return n;
}

int proc_zombie_children(pid_t pid)
{
	struct dirent *d;
	DIR *dir = opendir("/proc");
	int n = 0;

	while (dir && (d = readdir(dir))) {
		pid_t child = atoi(d->d_name), ppid = 0;

		if (child > 0 && proc_state(child, &ppid) == 'Z' && ppid == pid)
			n++;
	}
	if (dir)
		closedir(dir);
	return n;
}
