#!/usr/bin/env python3
"""OAuth login, executor-bound HTTP servers and the hosted apps server, end to
end: the real orchestrator and executors against the stdlib fixtures
tests/fixtures/fake_oauth.py (an authorization server and an OAuth-protected
MCP server that record their requests), http_mcp_server.py and
http_proxy.py (a forward proxy that alone can reach the fake *.tandem.test
host names: only an executor started with http_proxy pointing at it can
reach them, so a request that arrives proves it went through the executor).
Every test greps the daemons' logs for the secrets it saw. Prints TAP.

Binaries: $TANDEM_ORCHESTRATOR, $TANDEM_EXECUTOR.
"""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tandem_testlib import (check_no_secret_leaks,   # noqa: E402
    Executor, Orchestrator, check, check_eq, make_home, root, toml_str, wait_until, write_file,
    run_suite)

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures")
CHATGPT_TOKEN = "chatgpt-access-token-secret-9f8e7d6c"
PLAIN_TOKEN = "executor-only-bearer-secret-5a4b3c"


class Proc:
    """A fixture process that prints LISTENING <port> and lives until stdin EOF."""

    def __init__(self, ctx, script, args, label, env=None):
        penv = dict(os.environ)
        penv.update(env or {})
        self.proc = ctx.popen([sys.executable, os.path.join(FIXTURES, script)] + args, label,
                              env=penv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        check(line.startswith("LISTENING "), "%s did not start: %r" % (label, line))
        self.port = int(line.split()[1])

    def get(self, path, data=None):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), data=data)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)


def no_redirect_opener(proxy=None):
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **kw):
            return None
    handlers = [NoRedirect()]
    handlers.append(urllib.request.ProxyHandler({"http": proxy} if proxy else {}))
    return urllib.request.build_opener(*handlers)


def http_get(url, proxy=None):
    """(status, headers, body) without following redirects."""
    try:
        with no_redirect_opener(proxy).open(url, timeout=10) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def query_of(url):
    return {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).items()}


def http_plugin(ctx, name, servers):
    rootdir = ctx.mkdir("plugins", name)
    write_file(os.path.join(rootdir, ".codex-plugin", "plugin.json"),
               json.dumps({"name": name, "version": "1.0.0"}))
    write_file(os.path.join(rootdir, ".mcp.json"), json.dumps({"mcpServers": servers}))
    return os.path.realpath(rootdir)


def stopped(o):
    """Stops the orchestrator; a clean exit (0) is part of every test (and
    how a TANDEM_ORCH_WRAPPER such as valgrind reports its errors)."""
    check_eq(o.stop(timeout=30), 0, "orchestrator exit status")


def wait_status(c, name, pred, what, thread_id=None, timeout=20):
    def ok():
        e = c.status(thread_id).get(name)
        return e if e is not None and pred(e) else None
    return wait_until(ok, timeout, what)


def structured(resp, what):
    check("structuredContent" in resp, "%s: no structuredContent in %r" % (what, resp))
    return resp["structuredContent"]


def assert_no_secrets(logs, secrets, what):
    for s in secrets:
        check(s and s not in logs, "%s: a secret (%s...) appears in the logs" % (what, s[:6]))


def completion(c, login_id, start=0):
    return c.wait_notification(
        lambda m: m.get("method") == "mcpServer/oauthLogin/completed" and
        m["params"].get("loginId") == login_id, 20, "oauthLogin/completed", start)["params"]


def browser(auth_url, proxy=None):
    """What the user's browser does: the authorization server redirects to
    the callback with code and state. Returns the callback URL."""
    status, headers, body = http_get(auth_url, proxy)
    check_eq(status, 302, "authorization endpoint status (%s)" % body.strip())
    return headers["Location"]


# ---- 1 ---------------------------------------------------------------------

def test_login_direct(ctx):
    """A config.toml server: discovery, DCR, wrong state, the code exchange,
    the completion, Bearer on the server's requests, refresh."""
    fx = Proc(ctx, "fake_oauth.py", ["--token-ttl", "25"], "fake-oauth")
    base = "http://127.0.0.1:%d" % fx.port
    home = make_home(ctx, config='[mcp_servers.secure]\nurl = %s\n' % toml_str(base + "/mcp"))
    o = Orchestrator(ctx, home)
    c = o.client
    c.initialize()
    t = c.start_thread()
    e = wait_status(c, "secure", lambda e: e["runtimeStatus"] == "failed", "401 to fail it")
    check_eq(e["authStatus"], "notLoggedIn", "authStatus before the login")
    check("401" in (e.get("toolsError") or ""), "toolsError names the 401: %r" % e)

    r = c.call("mcpServer/oauth/login", {"name": "secure"})
    check(r.get("loginId"), "a loginId: %r" % r)
    q = query_of(r["authorizationUrl"])
    check(r["authorizationUrl"].startswith(base + "/tenant/authorize?"),
          "authorization endpoint from the path-inserted metadata: %s" % r["authorizationUrl"])
    for k in ("client_id", "state", "redirect_uri", "code_challenge"):
        check(q.get(k), "authorization URL carries %s: %r" % (k, q))
    check_eq(q.get("code_challenge_method"), "S256", "code_challenge_method")
    check_eq(q.get("response_type"), "code", "response_type")
    check_eq(q.get("resource"), base + "/mcp", "resource from the resource metadata")
    check(q["client_id"].startswith("dcr-"), "a dynamically registered client id")
    check(q["redirect_uri"].startswith("http://127.0.0.1:") and
          q["redirect_uri"].endswith("/callback/" + r["loginId"]),
          "loopback redirect_uri: %s" % q["redirect_uri"])

    # A callback with the wrong state is refused and the login goes on.
    forged = q["redirect_uri"] + "?code=forged-code&state=not-the-state"
    status, _, _ = http_get(forged)
    check_eq(status, 400, "wrong state refused")
    n0 = len(c.notifications)
    callback = browser(r["authorizationUrl"])
    code = query_of(callback)["code"]
    status, _, body = http_get(callback)
    check_eq(status, 200, "the right callback (%s)" % body.strip())
    done = completion(c, r["loginId"], n0)
    check_eq(done, {"name": "secure", "threadId": None, "loginId": r["loginId"],
                    "success": True, "error": None}, "the completion notification")

    tok = [x for x in fx.get("/_fixture/state")["records"] if x["path"] == "/tenant/token" and
           x["form"].get("grant_type") != "refresh_token"]
    check_eq(len(tok), 1, "one code exchange")
    f = tok[0]["form"]
    check_eq(f.get("grant_type"), "authorization_code", "grant_type")
    check(f.get("code") and f.get("code_verifier"), "code and code_verifier sent: %r" % f)
    check(tok[0].get("code_valid") and tok[0].get("verifier_valid"),
          "the code and verifier were the right ones: %r" % tok[0])
    check_eq(f.get("redirect_uri"), q["redirect_uri"], "redirect_uri in the token request")
    check_eq(f.get("client_id"), q["client_id"], "client_id in the token request")

    e = wait_status(c, "secure", lambda e: e["runtimeStatus"] == "connected", "reconnected")
    check_eq(e["authStatus"], "oAuth", "authStatus after the login")
    got = structured(c.tool(t, "secure", "echo", {"message": "hi"}), "echo")
    check_eq(got.get("echo"), "hi", "echo through the OAuth-protected server")
    # Tokens live 25 s: within 30 s of expiry at once, so the next request
    # starts the one refresh (the refresh grant rotates the refresh token).
    c.tool(t, "secure", "echo", {"message": "again"})
    wait_until(lambda: fx.get("/_fixture/issued")["refresh_grants"] >= 1, 20, "a refresh")
    refreshes = [x for x in fx.get("/_fixture/state")["records"]
                 if x["path"] == "/tenant/token" and x["form"].get("grant_type") == "refresh_token"]
    check(all(x.get("refresh_valid") for x in refreshes), "refreshes used a valid token")
    got = structured(c.tool(t, "secure", "echo", {"message": "after"}), "echo after refresh")
    check_eq(got.get("echo"), "after", "echo with the refreshed token")
    secrets = fx.get("/_fixture/secrets")["secrets"] + [code, q["state"]]
    # Live: no token in the environment or argv of anything tandem started.
    note = check_no_secret_leaks(o, secrets, "(OAuth tokens, code, state)")
    stopped(o)
    assert_no_secrets(o.stderr_text(), secrets, "orchestrator")
    return note


# ---- 2 ---------------------------------------------------------------------

def test_executor_bound(ctx):
    """Plugin HTTP servers on an executor that alone reaches *.tandem.test:
    bearer_token_env_var read on the executor, an OAuth login whose
    discovery, registration and code exchange all go through it."""
    fx = Proc(ctx, "fake_oauth.py", ["--base", "http://auth.tandem.test"], "fake-oauth")
    plain = Proc(ctx, "http_mcp_server.py", ["--token-env", "PLAIN_TOKEN"], "plain-mcp",
                 env={"PLAIN_TOKEN": PLAIN_TOKEN})
    proxy = Proc(ctx, "http_proxy.py", ["--map", "auth.tandem.test=127.0.0.1:%d" % fx.port,
                                        "--map", "plain.tandem.test=127.0.0.1:%d" % plain.port],
                 "proxy")
    proxy_url = "http://127.0.0.1:%d" % proxy.port
    ex = Executor(ctx, "edge", env={"http_proxy": proxy_url, "PLAIN_TOKEN": PLAIN_TOKEN,
                                    "no_proxy": "", "NO_PROXY": ""})
    plugin = http_plugin(ctx, "remote-apis", {
        "secure": {"type": "http", "url": "http://auth.tandem.test/mcp"},
        "plain": {"url": "http://plain.tandem.test/mcp", "bearer_token_env_var": "PLAIN_TOKEN"},
    })
    # The orchestrator has neither the proxy nor the variable: it cannot
    # reach these hosts or fill that header itself.
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy") and k != "PLAIN_TOKEN"}
    home = make_home(ctx, config=('[mcp_servers.direct]\nurl = "http://auth.tandem.test/mcp"\n'
                                  'startup_timeout_sec = 5\n'),
                     environments='include_local = false\n[[environments]]\nid = "edge"\n'
                                  'url = %s\n' % toml_str(ex.url),
                     tokens={"edge": ex.token})
    o = Orchestrator(ctx, home, env=env)
    c = o.client
    c.initialize()
    c.wait_env("edge")
    t = c.start_thread([root("apis", "edge", plugin)])

    e = wait_status(c, "plain", lambda e: e["runtimeStatus"] == "connected", "plain up", t)
    check_eq(e["authStatus"], "bearerToken", "plain authStatus")
    got = structured(c.tool(t, "plain", "echo", {"message": "via edge"}), "plain echo")
    check_eq(got.get("echo"), "via edge", "echo through the executor")
    big = "0123456789abcdef" * 20000  # 320 KB each way: several relayed frames
    got = structured(c.tool(t, "plain", "echo", {"message": big}), "large echo")
    check(got.get("echo") == big, "a 320 KB answer came back whole through the relay")
    e = wait_status(c, "secure", lambda e: e["runtimeStatus"] == "failed", "secure refused", t)
    check_eq(e["authStatus"], "notLoggedIn", "secure authStatus before the login")
    d = wait_status(c, "direct", lambda e: e["runtimeStatus"] == "failed", "direct fails", t)
    check("cannot reach" in (d.get("toolsError") or ""),
          "the orchestrator itself cannot reach the fake host: %r" % d.get("toolsError"))

    r = c.call("mcpServer/oauth/login", {"name": "secure", "threadId": t})
    q = query_of(r["authorizationUrl"])
    check(r["authorizationUrl"].startswith("http://auth.tandem.test/tenant/authorize?"),
          "authorization URL from metadata fetched through the executor")
    status, _, _ = http_get(q["redirect_uri"] + "?code=x&state=wrong")
    check_eq(status, 400, "wrong state refused")
    n0 = len(c.notifications)
    callback = browser(r["authorizationUrl"], proxy_url)
    code = query_of(callback)["code"]
    check_eq(http_get(callback)[0], 200, "callback accepted")
    done = completion(c, r["loginId"], n0)
    check_eq((done["success"], done.get("threadId")), (True, t), "completed for the thread")
    tok = [x for x in fx.get("/_fixture/state")["records"] if x["path"] == "/tenant/token"]
    check_eq([x["form"].get("grant_type") for x in tok], ["authorization_code"], "token requests")
    check(tok[0].get("code_valid") and tok[0].get("verifier_valid"), "valid code and verifier")

    e = wait_status(c, "secure", lambda e: e["runtimeStatus"] == "connected", "secure up", t)
    check_eq(e["authStatus"], "oAuth", "secure authStatus after the login")
    got = structured(c.tool(t, "secure", "echo", {"message": "oauth"}), "secure echo")
    check_eq(got.get("echo"), "oauth", "echo on the OAuth server through the executor")

    # Everything reached the fake hosts through the proxy, that is, from the
    # executor: metadata, registration, the token exchange, MCP requests.
    seen = {(x["method"], x["host"], x["path"]) for x in proxy.get("/_proxy/state")["requests"]}
    for want in [("GET", "auth.tandem.test", "/.well-known/oauth-protected-resource/mcp"),
                 ("GET", "auth.tandem.test", "/.well-known/oauth-authorization-server/tenant"),
                 ("POST", "auth.tandem.test", "/tenant/register"),
                 ("POST", "auth.tandem.test", "/tenant/token"),
                 ("POST", "auth.tandem.test", "/mcp"),
                 ("POST", "plain.tandem.test", "/mcp")]:
        check(want in seen, "%s %s%s went through the executor's proxy" % want)
    auths = {x["headers"].get("authorization") for x in plain.get("/_fixture/state")["records"]}
    check(len(auths) == 1 and None not in auths,
          "every plain request carried the executor's bearer: %r" % auths)
    secrets = fx.get("/_fixture/secrets")["secrets"] + [code, q["state"], PLAIN_TOKEN]
    stopped(o)
    ex.stop()
    assert_no_secrets(o.stderr_text(), secrets, "orchestrator")
    with open(ex.proc.stderr_path, "rb") as f:
        assert_no_secrets(f.read().decode("utf-8", "replace"), secrets, "executor")


# ---- 3 ---------------------------------------------------------------------

def test_login_failures(ctx):
    """A wrong issuer fails the login at once; a login nobody completes
    ends with success false; bad params are refused."""
    bad = Proc(ctx, "fake_oauth.py", ["--bad-issuer"], "fake-oauth-bad")
    good = Proc(ctx, "fake_oauth.py", ["--client-id", "preset-client", "--no-dcr"], "fake-oauth")
    home = make_home(ctx, config=(
        '[mcp_servers.badiss]\nurl = "http://127.0.0.1:%d/mcp"\n'
        '[mcp_servers.preset]\nurl = "http://127.0.0.1:%d/mcp"\n'
        'oauth = { client_id = "preset-client" }\n'
        '[mcp_servers.stdio]\ncommand = "/bin/true"\n' % (bad.port, good.port)))
    o = Orchestrator(ctx, home)
    c = o.client
    c.initialize()
    err = c.call_error("mcpServer/oauth/login", {"name": "badiss"})
    check("issuer" in err["message"], "issuer mismatch named: %r" % err)
    for params, what in [({}, "name"), ({"name": "nope"}, "no MCP server"),
                         ({"name": "stdio"}, "not an HTTP server"),
                         ({"name": "preset", "timeoutSecs": 0}, "timeoutSecs"),
                         ({"name": "preset", "clientRegistration": "x"}, "clientRegistration")]:
        err = c.call_error("mcpServer/oauth/login", params)
        check(what in err["message"], "%r: %r" % (params, err))
    r = c.call("mcpServer/oauth/login", {"name": "preset", "timeoutSecs": 1})
    check_eq(query_of(r["authorizationUrl"]).get("client_id"), "preset-client",
             "the configured client id")
    done = completion(c, r["loginId"])
    check_eq(done["success"], False, "a login nobody completes fails")
    check("timed out" in (done.get("error") or ""), "timeout named: %r" % done)
    check_eq(c.status()["preset"]["authStatus"], "notLoggedIn", "still not logged in")
    stopped(o)


# ---- 4 ---------------------------------------------------------------------

def login_via_browser(c, name):
    r = c.call("mcpServer/oauth/login", {"name": name})
    n0 = len(c.notifications)
    check_eq(http_get(browser(r["authorizationUrl"]))[0], 200, "callback accepted")
    check(completion(c, r["loginId"], n0)["success"], "login completed")


def test_encrypted_store(ctx):
    """Tokens persist only in the encrypted store, and only with a key."""
    fx = Proc(ctx, "fake_oauth.py", [], "fake-oauth")
    key = os.urandom(32).hex()
    config = ('mcp_oauth_credentials_store = "file"\n[mcp_servers.secure]\n'
              'url = "http://127.0.0.1:%d/mcp"\n' % fx.port)
    home = make_home(ctx, config=config)
    store = os.path.join(home, "mcp-oauth-tokens.sealed")

    # "file" without a key: nothing is written.
    o = Orchestrator(ctx, home)
    o.client.initialize()
    login_via_browser(o.client, "secure")
    stopped(o)
    check(not os.path.exists(store), "a store written without a key")
    check("TANDEM_OAUTH_STORE_KEY" in o.stderr_text(), "the missing key is named in the log")

    o = Orchestrator(ctx, home, env={"TANDEM_OAUTH_STORE_KEY": key})
    o.client.initialize()
    login_via_browser(o.client, "secure")
    stopped(o)
    data = open(store, "rb").read()
    check_eq(os.stat(store).st_mode & 0o777, 0o600, "store mode")
    secrets = fx.get("/_fixture/secrets")["secrets"]
    for s in secrets + [key]:
        check(s.encode() not in data, "a secret in plaintext in the store")
    assert_no_secrets(o.stderr_text(), secrets + [key], "orchestrator")

    # A restart with the key: logged in without a new login.
    o = Orchestrator(ctx, home, env={"TANDEM_OAUTH_STORE_KEY": key})
    c = o.client
    c.initialize()
    e = wait_status(c, "secure", lambda e: e["runtimeStatus"] == "connected", "reconnected")
    check_eq(e["authStatus"], "oAuth", "authStatus from the store")
    t = c.start_thread()
    check_eq(structured(c.tool(t, "secure", "echo", {"message": "kept"}), "echo")["echo"],
             "kept", "echo with the stored token")
    stopped(o)

    # A wrong key: the store is left as it is and nothing is logged in.
    before = open(store, "rb").read()
    o = Orchestrator(ctx, home, env={"TANDEM_OAUTH_STORE_KEY": os.urandom(32).hex()})
    c = o.client
    c.initialize()
    e = wait_status(c, "secure", lambda e: e["runtimeStatus"] == "failed", "refused")
    check_eq(e["authStatus"], "notLoggedIn", "a wrong key logs nobody in")
    stopped(o)
    check_eq(open(store, "rb").read(), before, "the store after a wrong key")
    check("cannot be read or opened" in o.stderr_text(), "the bad store is reported")


# ---- 5 ---------------------------------------------------------------------

def test_codex_apps(ctx):
    """codex_apps appears only with ChatGPT auth and apps on, carries the
    ChatGPT token and account id, and goes with an API key login."""
    fx = Proc(ctx, "http_mcp_server.py", ["--token-env", "APPS_TOKEN", "--path",
                                          "/backend-api/wham/apps"], "apps",
              env={"APPS_TOKEN": CHATGPT_TOKEN})
    base = "http://127.0.0.1:%d/backend-api/" % fx.port
    home = make_home(ctx, config='chatgpt_base_url = %s\n[features]\napps = true\n'
                                 % toml_str(base))
    o = Orchestrator(ctx, home)
    c = o.client
    c.initialize()
    t = c.start_thread()
    check("codex_apps" not in c.status(), "no codex_apps without ChatGPT auth")
    c.call("account/login/start", {"type": "chatgptAuthTokens", "accessToken": CHATGPT_TOKEN,
                                   "chatgptAccountId": "acct-42", "chatgptPlanType": "plus"})
    e = wait_status(c, "codex_apps", lambda e: e["runtimeStatus"] == "connected", "apps up")
    check_eq(e["authStatus"], "bearerToken", "codex_apps authStatus")
    got = structured(c.tool(t, "codex_apps", "echo", {"message": "apps"}), "apps echo")
    check_eq(got.get("echo"), "apps", "echo through codex_apps")
    recs = fx.get("/_fixture/state")["records"]
    check(recs and all(r["headers"].get("chatgpt-account-id") == "acct-42" for r in recs),
          "ChatGPT-Account-ID on every request")
    c.call("account/login/start", {"type": "apiKey", "apiKey": "sk-test-not-chatgpt"})
    wait_until(lambda: "codex_apps" not in c.status(), 10, "codex_apps to go with an API key")
    stopped(o)
    assert_no_secrets(o.stderr_text(), [CHATGPT_TOKEN], "orchestrator")

    # Apps off: ChatGPT auth alone does not bring it, and a user-configured
    # codex_apps is removed as well.
    home = make_home(ctx, name="home-off", config=(
        'chatgpt_base_url = %s\n[features]\napps = false\n'
        '[mcp_servers.codex_apps]\nurl = "http://127.0.0.1:%d/backend-api/wham/apps"\n'
        % (toml_str(base), fx.port)))
    o = Orchestrator(ctx, home)
    c = o.client
    c.initialize()
    c.call("account/login/start", {"type": "chatgptAuthTokens", "accessToken": CHATGPT_TOKEN,
                                   "chatgptAccountId": "acct-42"})
    check("codex_apps" not in c.status(), "apps off: no codex_apps, not even the user's")
    stopped(o)


# ---- 6 ---------------------------------------------------------------------

# Runs as `nobody`: holds JUNK connections to the callback port (idle,
# slowloris trickling a byte per round, half-open, a full request it never
# reads the answer of), reopening any the server closes, until stdin closes
# or LIFETIME_S passes. Prints HELD once all are open, then STATS at the end.
JUNK_ATTACKER = r"""
import os, select, socket, sys, time
port, junk, lifetime = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
MAX_OPENS = 20000
opens = 0
def dial(kind):
    global opens
    opens += 1
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setblocking(False)
    try:
        if kind == 1:
            s.send(b"G")
        elif kind == 2:
            s.send(b"GET /callback/x?code=junk HT")
            s.shutdown(socket.SHUT_WR)
        elif kind == 3:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.send(b"GET /callback/x?code=junk&state=junk HTTP/1.1\r\n\r\n")
    except OSError:
        pass
    return s
conns = [(i % 4, dial(i % 4)) for i in range(junk)]
print("HELD %d uid=%d gid=%d" % (len(conns), os.getuid(), os.getgid()), flush=True)
end = time.monotonic() + lifetime
while time.monotonic() < end and opens < MAX_OPENS:
    r, _, _ = select.select([sys.stdin], [], [], 0.02)
    if r and not sys.stdin.buffer.read1(1):
        break
    for i, (kind, s) in enumerate(conns):
        try:
            if kind == 1:
                s.send(b"E")
            data = s.recv(65536)
            if data == b"" and kind != 3:
                raise OSError("closed")
        except BlockingIOError:
            continue
        except OSError:
            s.close()
            conns[i] = (kind, dial(kind))
print("STATS opens=%d" % opens, flush=True)
"""
JUNK = 24


def test_callback_under_junk_flood(ctx):
    """Another local user (uid nobody) holds junk connections to the
    loopback callback port, reopening them as they are closed; the browser's
    callback still completes the login on its first try."""
    fx = Proc(ctx, "fake_oauth.py", [], "fake-oauth")
    home = make_home(ctx, config='[mcp_servers.secure]\nurl = "http://127.0.0.1:%d/mcp"\n' %
                     fx.port)
    o = Orchestrator(ctx, home)
    c = o.client
    c.initialize()
    r = c.call("mcpServer/oauth/login", {"name": "secure"})
    port = urllib.parse.urlsplit(query_of(r["authorizationUrl"])["redirect_uri"]).port
    try:
        # The system interpreter: the test's may live where nobody cannot read.
        py = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
        attacker = ctx.popen([py, "-c", JUNK_ATTACKER, str(port), str(JUNK), "60"],
                             "junk-attacker", user="nobody", group="nogroup", extra_groups=[],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    except (KeyError, PermissionError) as e:
        return "# SKIP: cannot run the attacker as nobody (%s)" % e
    line = attacker.stdout.readline().decode()
    check(line.startswith("HELD %d " % JUNK), "the attacker did not connect: %r" % line)
    check(" uid=0 " not in line and not line.rstrip().endswith("gid=0"),
          "the attacker runs as root: %r" % line)
    n0 = len(c.notifications)
    status, _, body = http_get(browser(r["authorizationUrl"]))
    check_eq(status, 200, "the callback under the flood (%s)" % body.strip())
    done = completion(c, r["loginId"], n0)
    check_eq(done["success"], True, "login completed under the flood: %r" % done)
    attacker.stdin.close()
    stats = attacker.stdout.readline().decode()
    check_eq(attacker.wait(timeout=20), 0, "the attacker's exit status")
    check(stats.startswith("STATS "), "attacker stats: %r" % stats)
    e = wait_status(c, "secure", lambda e: e["runtimeStatus"] == "connected", "connected")
    check_eq(e["authStatus"], "oAuth", "authStatus after the login")
    stopped(o)
    return "# %d junk connections held; attacker %s" % (JUNK, stats.strip())


TESTS = [
    ("OAuth login on a config.toml server: discovery, DCR, state, exchange, refresh",
     test_login_direct),
    ("executor-bound HTTP servers and their OAuth login go through the executor",
     test_executor_bound),
    ("login failures: issuer mismatch, timeout, bad params", test_login_failures),
    ("tokens persist only in the encrypted store, with its key", test_encrypted_store),
    ("codex_apps only with ChatGPT auth and apps on", test_codex_apps),
    ("the OAuth callback gets through while another uid floods its port",
     test_callback_under_junk_flood),
]

if __name__ == "__main__":
    sys.exit(run_suite(TESTS))
