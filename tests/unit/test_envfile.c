/* test_envfile.c - <home>/environments.toml: the committed example homes
 * (tests/fixtures/homes, found through TANDEM_FIXTURES), defaults, and every
 * fatal error with its exact position and reason. Error cases write their
 * environments.toml into a fresh temporary home. */
#include "envfile.h"
#include "testhome.h"
#include "testmain.h"
#include "util.h"
#include "valid.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Writes the file under test into the temporary home. */
static void write_file(const char *text)
{
	home_write("environments.toml", text);
}

static struct envfile *load_home(const char *dir)
{
	struct envfile *e = NULL;
	char err[512] = "";
	int r = envfile_load(dir, &e, err, sizeof(err));

	ck_assert_msg(r == 0, "envfile_load(%s) = %d: %s", dir, r, err);
	ck_assert_ptr_nonnull(e);
	return e;
}

static struct envfile *load_ok(const char *text)
{
	write_file(text);
	return load_home(home);
}

/* Loading text must fail with "<home>/environments.toml:LINE:COL: ...reason...". */
static void load_fails(const char *text, int line, int col, const char *reason)
{
	struct envfile *e = (struct envfile *)0x1; /* must stay untouched */
	char err[512] = "", prefix[128];
	int r;

	write_file(text);
	r = envfile_load(home, &e, err, sizeof(err));
	ck_assert_msg(r == -EINVAL, "%s: returned %d (%s), expected -EINVAL", text, r, err);
	ck_assert_ptr_eq(e, (struct envfile *)0x1);
	snprintf(prefix, sizeof(prefix), "%s/environments.toml:%d:%d: ", home, line, col);
	ck_assert_msg(!strncmp(err, prefix, strlen(prefix)), "%s: error \"%s\", expected at %d:%d",
		      text, err, line, col);
	ck_assert_msg(strstr(err, reason), "%s: error \"%s\" lacks \"%s\"", text, err, reason);
}

/* One entry: "[[environments]]\nid = \"a\"\n" followed by body (line 3 on). */
static void entry_fails(const char *body, int line, int col, const char *reason)
{
	_cleanup_free_ char *text = xasprintf("[[environments]]\nid = \"a\"\n%s", body);

	load_fails(text, line, col, reason);
}

START_TEST(test_missing_file)
{
	_cleanup_free_ char *codex = fixture_home("codex"); /* has only config.toml */
	struct envfile *e = load_home(home);

	ck_assert_ptr_null(e->path);
	ck_assert(e->include_local);
	ck_assert_ptr_null(e->default_id);
	ck_assert_uint_eq(e->n_envs, 0);
	ck_assert_ptr_null(envfile_find(e, "local"));
	ck_assert_ptr_null(envfile_free(e));
	ck_assert_ptr_null(envfile_free(NULL));

	e = load_home(codex);
	ck_assert_ptr_null(e->path);
	ck_assert(e->include_local);
	envfile_free(e);
}
END_TEST

START_TEST(test_bad_home_and_unreadable)
{
	struct envfile *e = (struct envfile *)0x1;
	_cleanup_free_ char *path = xasprintf("%s/environments.toml", home);
	char err[512] = "";

	ck_assert_int_eq(envfile_load(NULL, &e, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(envfile_load("", &e, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(mkdir(path, 0700), 0);
	ck_assert_int_eq(envfile_load(home, &e, err, sizeof(err)), -EISDIR);
	ck_assert_msg(!strncmp(err, path, strlen(path)) && err[strlen(path)] == ':', "%s", err);
	ck_assert_int_eq(envfile_load(home, &e, NULL, 0), -EISDIR);
	ck_assert_ptr_eq(e, (struct envfile *)0x1);
}
END_TEST

static void assert_strv(char **v, size_t n, const char *const *want, size_t n_want)
{
	ck_assert_ptr_nonnull(v);
	ck_assert_uint_eq(n, n_want);
	for (size_t i = 0; i < n_want; i++)
		ck_assert_str_eq(v[i], want[i]);
	ck_assert_ptr_null(v[n]); /* NULL-terminated */
}

START_TEST(test_full_fixture)
{
	static const char *const args[] = { "--root", "/srv/sandbox" };
	static const char *const env[] = { "TANDEM_LOG=debug", "LANG=C.UTF-8" };
	_cleanup_free_ char *dir = fixture_home("full");
	struct envfile *e = load_home(dir);
	const struct envspec *sb = &e->envs[0], *b = &e->envs[1];

	ck_assert_ptr_nonnull(strstr(e->path, "homes/full/environments.toml"));
	ck_assert(e->include_local);
	ck_assert_str_eq(e->default_id, "build");
	ck_assert_uint_eq(e->n_envs, 2);

	ck_assert_str_eq(sb->id, "sandbox");
	ck_assert_ptr_null(sb->url);
	ck_assert_str_eq(sb->program, "/usr/libexec/tandem/tandem-executor");
	assert_strv(sb->args, sb->n_args, args, 2);
	assert_strv(sb->env, sb->n_env, env, 2);
	ck_assert_str_eq(sb->cwd, "/srv/sandbox");
	ck_assert_double_eq(sb->connect_timeout_sec, 10.0);
	ck_assert_double_eq(sb->initialize_timeout_sec, 20.0);
	ck_assert_int_eq(sb->line, 4);

	ck_assert_str_eq(b->id, "build");
	ck_assert_str_eq(b->url, "tls+tcp://build.example.com:7443");
	ck_assert_ptr_null(b->program);
	assert_strv(b->args, b->n_args, NULL, 0);
	assert_strv(b->env, b->n_env, NULL, 0);
	ck_assert_ptr_null(b->cwd);
	ck_assert_double_eq(b->connect_timeout_sec, 2.5);
	ck_assert_double_eq(b->initialize_timeout_sec, 10.0);
	ck_assert_int_eq(b->line, 12);

	ck_assert_ptr_eq(envfile_find(e, "build"), b);
	ck_assert_ptr_eq(envfile_find(e, "sandbox"), sb);
	ck_assert_ptr_null(envfile_find(e, "local"));
	envfile_free(e);
}
END_TEST

START_TEST(test_remote_only_fixture)
{
	_cleanup_free_ char *dir = fixture_home("remote-only");
	struct envfile *e = load_home(dir);

	ck_assert(!e->include_local);
	ck_assert_str_eq(e->default_id, "gpu-1");
	ck_assert_uint_eq(e->n_envs, 3);
	ck_assert_str_eq(e->envs[0].url, "tcp://10.0.0.7:7000");
	ck_assert_str_eq(e->envs[1].url, "tcp://[fd00::8]:7000");
	ck_assert_double_eq(e->envs[1].connect_timeout_sec, 30.0);
	ck_assert_str_eq(e->envs[2].id, "same-host");
	ck_assert_str_eq(e->envs[2].url, "ipc:///run/tandem/executor.sock");
	/* Inline entries: the line of each element. */
	ck_assert_int_eq(e->envs[0].line, 5);
	ck_assert_int_eq(e->envs[1].line, 6);
	ck_assert_int_eq(e->envs[2].line, 7);
	envfile_free(e);
}
END_TEST

START_TEST(test_defaults_and_local)
{
	struct envfile *e = load_ok("default = \"local\"\n"
				    "[[environments]]\n"
				    "id = \"p\"\n"
				    "program = \"tandem-executor\"\n"
				    "[[environments]]\n"
				    "id = \"abstract\"\n"
				    "url = \"abstract://tandem-1\"\n");

	ck_assert(e->include_local);
	ck_assert_str_eq(e->default_id, "local");
	ck_assert_str_eq(e->envs[0].program, "tandem-executor");
	assert_strv(e->envs[0].args, e->envs[0].n_args, NULL, 0);
	ck_assert_double_eq(e->envs[0].connect_timeout_sec, 10.0);
	ck_assert_str_eq(e->envs[1].url, "abstract://tandem-1");
	envfile_free(e);

	e = load_ok("include_local = false\n");
	ck_assert(!e->include_local);
	ck_assert_uint_eq(e->n_envs, 0);
	envfile_free(e);
}
END_TEST

START_TEST(test_top_level_errors)
{
	load_fails("include_local = true\ninclude_local = false\n", 2, 1, "");
	load_fails("include_local = \"yes\"", 1, 1, "field 'include_local' must be a boolean");
	load_fails("\n  colour = 1", 2, 3, "unknown key 'colour'");
	load_fails("[tls]\ncert = \"x\"", 1, 2, "unknown key 'tls'");
	load_fails("default = 3", 1, 1, "field 'default' must be a string");
	load_fails("default = \"\"", 1, 1, "'default' must be 1-");
	load_fails("environments = 5", 1, 1, "'environments' must be an array of tables");
	load_fails("[environments]\nid = \"a\"", 1, 2, "'environments' must be an array of tables");
	load_fails("environments = [5]", 1, 17, "each environment must be a table");
	load_fails("default = \"nope\"\n[[environments]]\nid = \"a\"\nurl = \"tcp://h:1\"", 1, 1,
		   "default 'nope' names no environment");
	load_fails("include_local = false\ndefault = \"local\"", 2, 1,
		   "default is 'local' but include_local is false");
	load_fails("default = \"none\"", 1, 1, "default 'none' names no environment");
}
END_TEST

START_TEST(test_id_errors)
{
	_cleanup_free_ char *long_id = NULL;
	char id65[66];

	load_fails("[[environments]]\nurl = \"tcp://h:1\"", 1, 3, "environment has no 'id'");
	load_fails("[[environments]]\nid = 7\nurl = \"tcp://h:1\"", 2, 1,
		   "field 'id' must be a string");
	load_fails("[[environments]]\nid = \"a b\"\nurl = \"tcp://h:1\"", 2, 1,
		   "'id' must be 1-64 of [A-Za-z0-9_-]");
	load_fails("[[environments]]\nid = \"\"\nurl = \"tcp://h:1\"", 2, 1, "'id' must be 1-64");
	memset(id65, 'x', 65);
	id65[65] = '\0';
	long_id = xasprintf("[[environments]]\nid = \"%s\"\nurl = \"tcp://h:1\"", id65);
	load_fails(long_id, 2, 1, "'id' must be 1-64");
	load_fails("[[environments]]\nid = \"local\"\nurl = \"tcp://h:1\"", 2, 1,
		   "id 'local' is reserved");
	load_fails("[[environments]]\nid = \"none\"\nurl = \"tcp://h:1\"", 2, 1,
		   "id 'none' is reserved");
	load_fails("[[environments]]\nid = \"a\"\nurl = \"tcp://h:1\"\n\n"
		   "[[environments]]\n  id = \"a\"\nprogram = \"/bin/x\"",
		   6, 3, "duplicate id 'a' (first at line 1)");
	load_fails("environments = [{ id = \"b\", url = \"tcp://h:1\" },\n"
		   "  { url = \"tcp://h:2\", id = \"b\" }]",
		   2, 24, "duplicate id 'b' (first at line 1)");
}
END_TEST

START_TEST(test_entry_errors)
{
	entry_fails("url = \"tcp://h:1\"\n  retries = 3", 4, 3, "unknown key 'retries'");
	entry_fails("url = \"tcp://h:1\"\nprogram = \"/bin/x\"", 4, 1,
		    "set only one of 'url' (dial a running executor) and 'program' (spawn one)");
	entry_fails("cwd = \"/\"", 1, 3,
		    "environment 'a' needs 'url' (dial a running executor), 'program'");
	entry_fails("url = 5", 3, 1, "field 'url' must be a string");
	entry_fails("program = \"\"", 3, 1, "'program' must be 1-");
	entry_fails("program = [\"/bin/x\"]", 3, 1, "field 'program' must be a string");
	entry_fails("url = \"tcp://h:1\"\nargs = [\"x\"]", 4, 1,
		    "'args' is only valid with 'program'");
	entry_fails("url = \"tcp://h:1\"\nenv = {}", 4, 1, "'env' is only valid with 'program'");
	entry_fails("url = \"tcp://h:1\"\ncwd = \"/\"", 4, 1, "'cwd' is only valid with 'program'");
	entry_fails("program = \"x\"\nargs = \"--a\"", 4, 1,
		    "field 'args' must be an array of strings");
	entry_fails("program = \"x\"\nargs = [\"--a\", 1]", 4, 1,
		    "field 'args' must be an array of strings");
	entry_fails("program = \"x\"\nenv = { A = 1 }", 4, 1,
		    "field 'env' must be an object whose values are strings");
	entry_fails("program = \"x\"\nenv = { \"1A\" = \"x\" }", 4, 9,
		    "'env' keys must be variable names");
	entry_fails("program = \"x\"\nenv.\"A=B\" = \"x\"", 4, 5,
		    "'env' keys must be variable names");
	entry_fails("program = \"x\"\ncwd = \"rel/dir\"", 4, 1, "'cwd' must be an absolute path");
	entry_fails("program = \"x\"\nconnect_timeout_sec = 0", 4, 1,
		    "field 'connect_timeout_sec' must be a number between 0.001 and 3600");
	entry_fails("program = \"x\"\ninitialize_timeout_sec = \"10\"", 4, 1,
		    "field 'initialize_timeout_sec' must be a number");
	entry_fails("program = \"x\"\ninitialize_timeout_sec = 3601", 4, 1,
		    "field 'initialize_timeout_sec' must be a number between 0.001 and 3600");
}
END_TEST

START_TEST(test_url_errors)
{
	static const struct {
		const char *url, *reason;
	} bad[] = {
		{ "ws://exec.example.com/x", "host:port with a port from 1 to 65535, then "
					     "optionally /PATH" },
		{ "wss://h:0/x", "host:port" },
		{ "WSS://exec.example.com:1", "must be an nng link URL" },
		{ "tcp://h:1/x", "host:port" },
		{ "http://h:80",
		  "must be an nng link URL: abstract://, ipc://, tcp://, tls+tcp://, ws:// or wss://" },
		{ "inproc://x", "must be an nng link URL" },
		{ "tcp://host", "host:port with a port from 1 to 65535" },
		{ "tcp://host:0", "host:port" },
		{ "tcp://host:65536", "host:port" },
		{ "tcp://host:8x", "host:port" },
		{ "tcp://:80", "host:port" },
		{ "tcp://host:", "host:port" },
		{ "tls+tcp://host", "host:port" },
		{ "abstract://", "nothing after the scheme" },
		{ "ipc://", "nothing after the scheme" },
		{ "tcp://h :1", "contains a space or control character" },
	};

	static const char *const good[] = {
		"ws://127.0.0.1:4500", "ws://h:1/tandem", "wss://exec.example.com:443/a/b",
		"ws://[::1]:7/x",
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		_cleanup_free_ char *body = xasprintf("url = \"%s\"", bad[i].url);

		entry_fails(body, 3, 1, bad[i].reason);
	}
	/* WebSocket URLs name tandem executors listening on ws:// or wss:// */
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		_cleanup_free_ char *text = xasprintf("[[environments]]\nid = \"a\"\nurl = \"%s\"\n",
						      good[i]);
		struct envfile *e = load_ok(text);

		ck_assert_str_eq(e->envs[0].url, good[i]);
		envfile_free(e);
	}
}
END_TEST

/* The old limit of 64 entries is gone: the cap on environments is the
 * orchestrator's (--max-environments, checked in main.c); the file itself
 * is bounded by its size (TOML_MAX_INPUT). 1,500 entries load. */
START_TEST(test_limits)
{
	enum { N = 1500 };
	size_t cap = (size_t)N * 64, len = 0;
	char *text = xcalloc(1, cap);
	struct envfile *e;

	for (int i = 0; i < N; i++)
		len += (size_t)snprintf(text + len, cap - len,
					"[[environments]]\nid = \"e%d\"\nurl = \"tcp://h:1\"\n", i);
	e = load_ok(text);
	ck_assert_uint_eq(e->n_envs, N);
	ck_assert_str_eq(e->envs[N - 1].id, "e1499");
	envfile_free(e);
	free(text);
}
END_TEST

/* dial_in = true: an entry without url or program; not with either. */
START_TEST(test_dial_in)
{
	struct envfile *e = load_ok("[[environments]]\nid = \"far\"\ndial_in = true\n");

	ck_assert(e->envs[0].dial_in);
	ck_assert_ptr_null(e->envs[0].url);
	ck_assert_ptr_null(e->envs[0].program);
	envfile_free(e);
	load_fails("[[environments]]\nid = \"far\"\ndial_in = true\nurl = \"tcp://h:1\"\n", 3, 1,
		   "has no 'url' or 'program'");
	load_fails("[[environments]]\nid = \"far\"\ndial_in = \"yes\"\n", 3, 1, "dial_in");
}
END_TEST

/* resume_grace_sec (tandem extension): absent is "not set" (the
 * orchestrator's --link-grace-sec), 0 is "never resume", the bounds are
 * 0 and 86400, and anything else fails at the key with the reason. */
START_TEST(test_resume_grace)
{
	struct envfile *e = load_ok("[[environments]]\nid = \"a\"\nurl = \"tcp://h:1\"\n"
				    "[[environments]]\nid = \"b\"\ndial_in = true\n"
				    "resume_grace_sec = 2.5\n"
				    "[[environments]]\nid = \"c\"\nprogram = \"x\"\n"
				    "resume_grace_sec = 0\n"
				    "[[environments]]\nid = \"d\"\nurl = \"tcp://h:2\"\n"
				    "resume_grace_sec = 86400\n");

	ck_assert(e->envs[0].resume_grace_sec < 0);
	ck_assert(e->envs[1].resume_grace_sec == 2.5);
	ck_assert(e->envs[2].resume_grace_sec == 0);
	ck_assert(e->envs[3].resume_grace_sec == 86400);
	envfile_free(e);
	entry_fails("url = \"tcp://h:1\"\nresume_grace_sec = -1\n", 4, 1,
		    "'resume_grace_sec' must be a number of seconds from 0 (sessions never resume) "
		    "to 86400");
	entry_fails("url = \"tcp://h:1\"\nresume_grace_sec = 86401\n", 4, 1, "to 86400");
	entry_fails("url = \"tcp://h:1\"\nresume_grace_sec = \"30s\"\n", 4, 1,
		    "'resume_grace_sec' must be a number");
	entry_fails("url = \"tcp://h:1\"\nresume_grace_sec = true\n", 4, 1,
		    "'resume_grace_sec' must be a number");
	entry_fails("url = \"tcp://h:1\"\nresume_grace_sec = inf\n", 4, 20, "not supported");
}
END_TEST

/* Ids follow the one rule of common/valid.h: 1-64 of [A-Za-z0-9_-]. */
START_TEST(test_id_rule)
{
	char id[VALID_ENV_ID_MAX + 2];
	struct envfile *e;
	char *text;

	memset(id, '7', VALID_ENV_ID_MAX);
	id[VALID_ENV_ID_MAX] = '\0';
	text = xasprintf("[[environments]]\nid = \"%s\"\nurl = \"tcp://h:1\"\n", id);
	e = load_ok(text); /* exactly 64 */
	ck_assert_ptr_nonnull(envfile_find(e, id));
	envfile_free(e);
	free(text);
	strcat(id, "7");
	text = xasprintf("[[environments]]\nid = \"%s\"\nurl = \"tcp://h:1\"\n", id);
	load_fails(text, 2, 1, "1-64 of [A-Za-z0-9_-]"); /* 65 */
	free(text);
	load_fails("[[environments]]\nid = \"a.b\"\nurl = \"tcp://h:1\"\n", 2, 1,
		   "1-64 of [A-Za-z0-9_-]");
	load_fails("[[environments]]\nid = \"\xC3\xA9\"\nurl = \"tcp://h:1\"\n", 2, 1,
		   "1-64 of [A-Za-z0-9_-]");
}
END_TEST

static Suite *envfile_suite(void)
{
	Suite *s = suite_create("envfile");
	TCase *tc = tcase_create("envfile");

	tcase_add_unchecked_fixture(tc, homes_setup, homes_teardown);
	tcase_add_checked_fixture(tc, home_setup, home_teardown);
	tcase_add_test(tc, test_missing_file);
	tcase_add_test(tc, test_bad_home_and_unreadable);
	tcase_add_test(tc, test_full_fixture);
	tcase_add_test(tc, test_remote_only_fixture);
	tcase_add_test(tc, test_defaults_and_local);
	tcase_add_test(tc, test_top_level_errors);
	tcase_add_test(tc, test_id_errors);
	tcase_add_test(tc, test_entry_errors);
	tcase_add_test(tc, test_url_errors);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_dial_in);
	tcase_add_test(tc, test_resume_grace);
	tcase_add_test(tc, test_id_rule);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(envfile_suite)
