#!/usr/bin/env python3
"""Streamable HTTP MCP tests: config.toml HTTP servers reached from the real
orchestrator through orchestrator/mcphttp.c, against the stdlib fixture
tests/fixtures/http_mcp_server.py (session ids, JSON and SSE answers, a
session that expires, recorded request headers with secrets redacted) and,
when $TANDEM_NPM_PEERS is set, @modelcontextprotocol/server-everything in
streamableHttp mode. Prints TAP.

Binaries: $TANDEM_ORCHESTRATOR, $TANDEM_EXECUTOR, $MCP_FIXTURE.
"""

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tandem_testlib import (  # noqa: E402
    EXECUTOR, MCP_FIXTURE, ORCHESTRATOR, REGISTRY, Orchestrator, Tap, TestFailure,
    become_subreaper, check, check_eq, make_home, toml_str, wait_until, run_suite)

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "..", "fixtures", "http_mcp_server.py")
TOKEN = "mcp-bearer-secret-0123456789abcdef"
HDR_VALUE = "env-header-value-42"
LATEST = "2025-06-18"


def redacted(cred):
    return "Bearer <redacted:%s>" % hashlib.sha256(cred.encode()).hexdigest()[:8]


class Fixture:
    def __init__(self, ctx, token=TOKEN, extra=()):
        env = dict(os.environ)
        args = [sys.executable, FIXTURE] + list(extra)
        if token:
            env["FIXTURE_TOKEN"] = token
            args += ["--token-env", "FIXTURE_TOKEN"]
        self.proc = ctx.popen(args, "http-mcp-fixture", env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        check(line.startswith("LISTENING "), "fixture did not start: %r" % line)
        self.port = int(line.split()[1])
        self.url = "http://127.0.0.1:%d/mcp" % self.port

    def _open(self, path, data=None):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), data=data)
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.load(r)

    def state(self):
        return self._open("/_fixture/state")

    def expire(self):
        self._open("/_fixture/expire", b"{}")

    def records(self, rpc=None):
        return [r for r in self.state()["records"] if rpc is None or r["rpc"] == rpc]


def web_config(url, extra=""):
    return ('[mcp_servers.web]\nurl = %s\nbearer_token_env_var = "TANDEM_TEST_MCP_TOKEN"\n'
            'http_headers = { "X-Static" = "static-value" }\n'
            'env_http_headers = { "X-From-Env" = "TANDEM_TEST_MCP_HDR" }\n' % toml_str(url)
            + extra)


def orch_env():
    return {"TANDEM_TEST_MCP_TOKEN": TOKEN, "TANDEM_TEST_MCP_HDR": HDR_VALUE}


def start(ctx, fx, extra=""):
    home = make_home(ctx, config=web_config(fx.url, extra))
    o = Orchestrator(ctx, home, env=orch_env())
    o.client.initialize()
    return o, o.client


def wait_connected(c, name="web"):
    def ready():
        e = c.status().get(name)
        if e and e.get("runtimeStatus") == "failed":
            raise TestFailure("server %s failed: %s" % (name, e.get("toolsError")))
        return e if e and e.get("runtimeStatus") == "connected" else None
    return wait_until(ready, 20, "server %s to connect" % name)


def structured(result, what):
    check(isinstance(result, dict) and isinstance(result.get("structuredContent"), dict),
          "%s: no structuredContent in %r" % (what, result))
    return result["structuredContent"]


# ---- 1 ---------------------------------------------------------------------

def test_tools_and_headers(ctx):
    fx = Fixture(ctx)
    o, c = start(ctx, fx)
    e = wait_connected(c)
    check({"echo", "echo_sse"} <= set(e["tools"]), "web tools: %s" % sorted(e["tools"]))
    t = c.start_thread()
    got = structured(c.tool(t, "web", "echo", {"message": "hi json"}), "echo")
    check_eq(got, {"echo": "hi json", "via": "echo"}, "echo structuredContent (JSON answer)")
    got = structured(c.tool(t, "web", "echo_sse", {"message": "hi sse"}), "echo_sse")
    check_eq(got, {"echo": "hi sse", "via": "echo_sse"}, "echo_sse structuredContent (SSE)")

    recs = fx.records()
    init = [r for r in recs if r["rpc"] == "initialize"]
    check_eq(len(init), 1, "initialize requests")
    h = init[0]["headers"]
    check_eq(h.get("authorization"), redacted(TOKEN), "Authorization on initialize")
    check_eq(h.get("x-static"), "static-value", "http_headers")
    check_eq(h.get("x-from-env"), HDR_VALUE, "env_http_headers")
    check_eq(h.get("content-type"), "application/json", "Content-Type")
    accept = h.get("accept", "")
    check("application/json" in accept and "text/event-stream" in accept, "Accept: %r" % accept)
    check("mcp-session-id" not in h, "initialize carried a session id: %r" % h)
    sid = fx.state()["sessions"]
    check_eq(len(sid), 1, "live sessions")
    later = [r for r in recs if r["rpc"] != "initialize" and r["http"] == "POST"]
    check({"notifications/initialized", "tools/list", "tools/call"} <= {r["rpc"] for r in later},
          "later requests: %s" % [r["rpc"] for r in later])
    for r in later:
        check_eq(r["headers"].get("mcp-session-id"), sid[0], "session id on %s" % r["rpc"])
        check_eq(r["headers"].get("mcp-protocol-version"), LATEST, "version on %s" % r["rpc"])
        check_eq(r["headers"].get("authorization"), redacted(TOKEN), "auth on %s" % r["rpc"])
    check_eq([r["status"] for r in later if r["rpc"] == "notifications/initialized"], [202],
             "notifications/initialized answered 202")

    o.stop()
    err = o.stderr_text()
    check(TOKEN not in err, "the bearer token appears in the orchestrator's stderr")
    check(HDR_VALUE not in err, "an env_http_headers value appears in the orchestrator's stderr")
    check("web" in err, "the orchestrator's log does not mention the server at all")
    return "# %d requests; DELETE on shutdown: %d (best effort)" % (len(recs),
                                                                  fx.state()["deletes"])


# ---- 2 ---------------------------------------------------------------------

def test_session_expiry(ctx):
    fx = Fixture(ctx)
    o, c = start(ctx, fx)
    wait_connected(c)
    t = c.start_thread()
    structured(c.tool(t, "web", "echo", {"message": "before"}), "echo before expiry")
    old = fx.state()["sessions"]
    fx.expire()
    got = structured(c.tool(t, "web", "echo", {"message": "after"}), "echo after expiry")
    check_eq(got.get("echo"), "after", "echo after expiry")
    new = fx.state()["sessions"]
    check(len(new) == 1 and new != old, "sessions before %s, after %s" % (old, new))
    recs = fx.records()
    check_eq([r["status"] for r in recs if r["status"] == 404], [404], "one 404 answered")
    inits = [r for r in recs if r["rpc"] == "initialize"]
    check_eq(len(inits), 2, "initialize requests (the start and the renewal)")
    check("mcp-session-id" not in inits[1]["headers"], "the renewal carried the dead session id")
    calls = [r for r in recs if r["rpc"] == "tools/call" and r["status"] == 200]
    check_eq(calls[-1]["headers"].get("mcp-session-id"), new[0], "the retried call's session id")
    renotes = [r for r in recs if r["rpc"] == "notifications/initialized"]
    check_eq(len(renotes), 2, "notifications/initialized sent again after the renewal")
    check_eq(wait_connected(c).get("runtimeStatus"), "connected", "still connected")
    # A second expiry is renewed again (each renewal retries its message once).
    fx.expire()
    got = structured(c.tool(t, "web", "echo", {"message": "again"}), "echo after 2nd expiry")
    check_eq(got.get("echo"), "again", "echo after the second expiry")
    o.stop()


# ---- 3 ---------------------------------------------------------------------

def test_get_stream_and_delete(ctx):
    """A server's GET stream carries its notifications (here tools/list_changed,
    which makes tandem list the tools again); a server without one (405) is
    asked once; the session is DELETEd when the orchestrator exits."""
    fx = Fixture(ctx, extra=["--get-stream"])
    plain = Fixture(ctx)
    o, c = start(ctx, fx, '[mcp_servers.plain]\nurl = %s\n'
                 'bearer_token_env_var = "TANDEM_TEST_MCP_TOKEN"\n' % toml_str(plain.url))
    wait_connected(c)
    wait_connected(c, "plain")
    gets = wait_until(lambda: [r for r in fx.records("GET") if r["status"] == 200], 20,
                      "the GET stream to open")
    h = gets[0]["headers"]
    check_eq(h.get("accept"), "text/event-stream", "GET Accept")
    check_eq(h.get("mcp-session-id"), fx.state()["sessions"][0], "GET session id")
    check_eq(h.get("authorization"), redacted(TOKEN), "GET Authorization")
    lists = len(fx.records("tools/list"))
    sent = json.loads(urllib.request.urlopen(urllib.request.Request(
        "http://127.0.0.1:%d/_fixture/notify" % fx.port,
        data=json.dumps({"method": "notifications/tools/list_changed"}).encode()),
        timeout=5).read())
    check_eq(sent["streams"], 1, "open GET streams")
    wait_until(lambda: len(fx.records("tools/list")) > lists, 20,
               "tools/list again after list_changed on the GET stream")
    t = c.start_thread()
    structured(c.tool(t, "plain", "echo", {"message": "x"}), "plain echo")
    check_eq([r["status"] for r in plain.state()["records"] if r["http"] == "GET"], [405],
             "a server without a GET stream is asked once")
    check_eq(fx.state()["deletes"], 0, "no DELETE while running")
    o.stop()
    check_eq(fx.state()["deletes"], 1, "the session DELETEd at exit")
    check_eq(plain.state()["deletes"], 1, "the other session DELETEd at exit")
    check_eq(fx.state()["sessions"], [], "no session left on the server")


# ---- 4 ---------------------------------------------------------------------

def test_bad_configs(ctx):
    fx = Fixture(ctx)
    port = free_port()
    extra = ('[mcp_servers.notoken]\nurl = %s\nbearer_token_env_var = "TANDEM_TEST_UNSET_VAR"\n'
             '[mcp_servers.remote]\nurl = %s\nenvironment_id = "elsewhere"\n'
             '[mcp_servers.down]\nurl = "http://127.0.0.1:%d/mcp"\n'
             '[mcp_servers.wrongtoken]\nurl = %s\nhttp_headers = { "Authorization" = "Bearer nope" }\n'
             % (toml_str(fx.url), toml_str(fx.url), port, toml_str(fx.url)))
    env = orch_env()
    home = make_home(ctx, config=web_config(fx.url, extra))
    o = Orchestrator(ctx, home, env=env)
    c = o.client
    c.initialize()
    wait_connected(c)

    def failed(name):
        e = c.status().get(name)
        return e if e and e.get("runtimeStatus") == "failed" else None
    why = {n: (wait_until(lambda n=n: failed(n), 20, "%s to fail" % n).get("toolsError") or "")
           for n in ("notoken", "remote", "down", "wrongtoken")}
    check("TANDEM_TEST_UNSET_VAR" in why["notoken"], "notoken: %r" % why["notoken"])
    check("environment 'elsewhere' does not exist" in why["remote"], "remote: %r" % why["remote"])
    check(why["down"], "down: no reason")
    check("401" in why["wrongtoken"], "wrongtoken: %r" % why["wrongtoken"])
    t = c.start_thread()
    structured(c.tool(t, "web", "echo", {"message": "x"}), "the good server still works")
    o.stop()
    return "# reasons: %s" % json.dumps(why)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- 4 ---------------------------------------------------------------------

def test_server_everything(ctx):
    peers = os.environ.get("TANDEM_NPM_PEERS")
    if not peers:
        return "SKIP TANDEM_NPM_PEERS is unset (deploy/local/test installs the npm peers)"
    entry = os.path.join(peers, "node_modules", "@modelcontextprotocol", "server-everything",
                         "dist", "index.js")
    if not os.path.exists(entry):
        return "SKIP %s is missing" % entry
    port = free_port()
    env = dict(os.environ)
    env["PORT"] = str(port)
    ctx.popen(["node", entry, "streamableHttp"], "server-everything", env=env)

    def up():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            return False
    wait_until(up, 20, "server-everything to listen")
    home = make_home(ctx, config='[mcp_servers.everything]\nurl = "http://127.0.0.1:%d/mcp"\n'
                     % port)
    o = Orchestrator(ctx, home)
    c = o.client
    c.initialize()
    e = wait_connected(c, "everything")
    check("echo" in e["tools"], "everything tools: %s" % sorted(e["tools"]))
    t = c.start_thread()
    r = c.tool(t, "everything", "echo", {"message": "hello everything"})
    text = json.dumps(r)
    check("hello everything" in text, "echo result: %s" % text[:300])
    o.stop()
    return "# %d tools" % len(e["tools"])


TESTS = [
    ("tools, structuredContent, session and auth headers", test_tools_and_headers),
    ("an expired session is renewed", test_session_expiry),
    ("bad HTTP servers fail alone with a reason", test_bad_configs),
    ("the GET stream carries notifications; sessions are DELETEd at exit",
     test_get_stream_and_delete),
    ("server-everything in streamableHttp mode", test_server_everything),
]




if __name__ == "__main__":
    sys.exit(run_suite(TESTS))
