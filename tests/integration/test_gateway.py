#!/usr/bin/env python3
"""Integration tests of the MCP gateway (--mcp-listen), driven by real MCP
clients nobody here wrote: the Inspector's CLI (@modelcontextprotocol/
inspector 0.15.0) and the official TypeScript SDK's client
(StreamableHTTPClientTransport, through gw_sdk_client.mjs), from the npm
peers deploy/local/test installs ($TANDEM_NPM_PEERS). The MCP servers behind
the gateway run on spawned executors: the C fixture and
@modelcontextprotocol/server-everything. Raw HTTP (http.client) plays the
hostile client. Tests that need the npm peers SKIP loudly without them.

Run a subset: test_gateway.py 2 4   (numbers or names).
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tandem_testlib import (  # noqa: E402
    MCP_FIXTURE, SLEEP_SYSCALLS, Orchestrator, TestFailure, check, check_eq, current_syscall,
    fixture_pids, make_home, make_plugin, random_token, root, run_suite, toml_str, wait_until,
    write_file)

HERE = os.path.dirname(os.path.abspath(__file__))
NPM = os.environ.get("TANDEM_NPM_PEERS") or ""
NODE = shutil.which("node")
MODULES = os.path.join(NPM, "node_modules")
INSPECTOR = os.path.join(MODULES, "@modelcontextprotocol/inspector/cli/build/index.js")
EVERYTHING = os.path.join(MODULES, "@modelcontextprotocol/server-everything/dist/index.js")
SDK = os.path.join(MODULES, "@modelcontextprotocol/sdk/package.json")
SDK_CLIENT = os.path.join(HERE, "gw_sdk_client.mjs")
TANDEM_CLI = os.environ.get("TANDEM_CLI") or os.path.join(HERE, "../../build/cli/tandem")
FIXTURE_TOOLS = {"echo", "env", "add", "sleep", "crash"}
ACCEPT = "application/json, text/event-stream"
TWO_EXECUTORS = ('include_local = false\n\n[[environments]]\nid = "exec1"\n'
                 'program = "tandem-executor"\n\n[[environments]]\nid = "exec2"\n'
                 'program = "tandem-executor"\n')


def npm_missing(*paths):
    """A loud SKIP reason when a real client or server is not installed."""
    for p in (INSPECTOR, SDK) + paths:
        if not NPM or not NODE or not os.path.exists(p):
            print("# !!! npm peer missing (%s): $TANDEM_NPM_PEERS=%r, node=%r" %
                  (p, NPM, NODE))
            return "SKIP npm peers not installed (deploy/local/test installs them)"
    return None


# ---- the daemon ----------------------------------------------------------------

class Gateway:
    """An orchestrator serving the client API on a unix socket and the MCP
    gateway on an ephemeral loopback port, its environments ready (a server
    whose environment still connects is down, and has no tools)."""

    def __init__(self, ctx, home, listen="127.0.0.1:0", env=None, envs=("local",)):
        self.o = Orchestrator(ctx, home, mode="unix", env=env,
                              extra_args=["--mcp-listen", listen])
        self.port = wait_until(self._port, 20, "the gateway's address in the log")
        self.base = "http://127.0.0.1:%d" % self.port
        self.c = self.o.connect()
        for e in envs:
            self.c.wait_env(e)

    def _port(self):
        if self.o.proc.poll() is not None:
            raise TestFailure("orchestrator exited with %s: %s" %
                              (self.o.proc.returncode, self.o.stderr_text()[-2000:]))
        m = re.search(r"MCP gateway on http://[^ ]*:(\d+)/mcp", self.o.stderr_text())
        return int(m.group(1)) if m else None

    def url(self, path):
        return self.base + path


def request(port, method, path, body=None, headers=None, timeout=30, raw=None):
    """One HTTP exchange on a fresh connection: (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        h = {"Accept": ACCEPT}
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h["Content-Type"] = "application/json"
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def sse_messages(body):
    out = []
    for block in body.decode().split("\n\n"):
        data = [l[5:].lstrip() for l in block.split("\n") if l.startswith("data:")]
        if data:
            out.append(json.loads("\n".join(data)))
    return out


def initialize(port, path, headers=None, version="2025-06-18"):
    st, h, body = request(port, "POST", path, {
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": version, "capabilities": {},
                   "clientInfo": {"name": "raw", "version": "1"}}}, headers)
    check_eq(st, 200, "initialize status (%s)" % body[:300])
    return h["mcp-session-id"], json.loads(body)


def rpc(port, path, sid, method, params=None, id=1, headers=None):
    hdrs = {"Mcp-Session-Id": sid}
    hdrs.update(headers or {})
    msg = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        msg["params"] = params
    return request(port, "POST", path, msg, hdrs)


# ---- node clients ------------------------------------------------------------------

def run_node(ctx, argv, label, timeout=90, env=None):
    """Runs a node program to its end; (exit status, stdout, stderr)."""
    out = ctx.path("%s.out" % label)
    with open(out, "wb") as f:
        p = ctx.popen([NODE] + argv, label, stdout=f, env=dict(os.environ, **(env or {})))
    try:
        rc = p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TestFailure("%s did not end within %ds" % (label, timeout))
    with open(out) as f, open(p.stderr_path) as e:
        return rc, f.read(), e.read()


def inspector(ctx, target, *args, label="inspector", env=None):
    argv = [INSPECTOR] + (target if isinstance(target, list) else [target, "--transport", "http"])
    rc, out, err = run_node(ctx, argv + list(args), label, env=env)
    check_eq(rc, 0, "inspector %s exit status (stderr: %s)" % (" ".join(args), err[-800:]))
    return json.loads(out)


class SdkClient:
    """gw_sdk_client.mjs: the SDK's Client, one JSON command per line."""

    def __init__(self, ctx, url, token_file=None, label="sdk"):
        argv = [NODE, SDK_CLIENT, url] + ([token_file] if token_file else [])
        self.p = ctx.popen(argv, label, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.results, self.events = queue.Queue(), []
        self.cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        first = self._result(30)
        check("ok" in first, "SDK client did not connect: %r" % first)
        self.info = first["ok"]

    def _read(self):
        for line in self.p.stdout:
            msg = json.loads(line)
            if "event" in msg:
                with self.cv:
                    self.events.append(msg["event"])
                    self.cv.notify_all()
            else:
                self.results.put(msg)
        self.results.put({"error": "the SDK client exited"})

    def _result(self, timeout):
        try:
            return self.results.get(timeout=timeout)
        except queue.Empty:
            raise TestFailure("no answer from the SDK client within %ds" % timeout)

    def cmd(self, op, timeout=120, **kw):
        kw["op"] = op
        self.p.stdin.write((json.dumps(kw) + "\n").encode())
        self.p.stdin.flush()
        return self._result(timeout)

    def ok(self, op, **kw):
        r = self.cmd(op, **kw)
        check("ok" in r, "SDK %s %r failed: %r" % (op, kw, r))
        return r["ok"]

    def wait_event(self, method, start, timeout=30):
        def seen():
            with self.cv:
                return method in self.events[start:]
        wait_until(seen, timeout, "%s at the SDK client" % method)

    def mark(self):
        with self.cv:
            return len(self.events)


# ---- 1: the Inspector, two executors ------------------------------------------------

def test_inspector_lists_and_calls_on_two_executors(ctx):
    skip = npm_missing()
    if skip:
        return skip
    home = make_home(ctx, environments=TWO_EXECUTORS)
    p1 = make_plugin(ctx, "plug-one", {"one": {}})
    p2 = make_plugin(ctx, "plug-two", {"two": {}})
    g = Gateway(ctx, home, envs=("exec1", "exec2"))
    c = g.c
    t = c.start_thread([root("plug-one", "exec1", p1), root("plug-two", "exec2", p2)])
    # The Inspector's CLI replaces a path that does not end in /mcp with
    # /mcp: the gateway takes /mcp/threads/ID/mcp for /mcp/threads/ID.
    url = g.url("/mcp/threads/%s/mcp" % t)
    names = {x["name"] for x in inspector(ctx, url, "--method", "tools/list")["tools"]}
    want = {"%s__%s" % (s, n) for s in ("one", "two") for n in FIXTURE_TOOLS}
    check(want <= names, "tools/list lacks %s: %s" % (sorted(want - names), sorted(names)))
    for server, plugin, env in (("one", p1, "exec1"), ("two", p2, "exec2")):
        r = inspector(ctx, url, "--method", "tools/call", "--tool-name", server + "__echo",
                      "--tool-arg", "message=via-" + server, label="call-" + server)
        check_eq(r["content"][0]["text"], "via-" + server, "echo through %s" % server)
        # The fixture reports its cwd: the plugin root, on that executor.
        check_eq(r["structuredContent"]["cwd"], plugin, "%s's server cwd" % server)
        ex = g.o.executor_pid(env)
        check(ex and fixture_pids(ex), "no server process under executor %s" % env)
    # The other thread's endpoint does not see them.
    other = c.start_thread()
    names = {x["name"] for x in inspector(ctx, g.url("/mcp/threads/%s/mcp" % other), "--method",
                                          "tools/list", label="other")["tools"]}
    check(not names & want, "another thread sees %s" % sorted(names & want))


# ---- 2: the SDK: 1,000 calls, progress, a cancellation ------------------------------

def everything_home(ctx, extra=""):
    return make_home(ctx, config='[mcp_servers.every]\ncommand = %s\nargs = [%s, "stdio"]\n'
                     'environment_id = "exec1"\n%s' % (toml_str(NODE), toml_str(EVERYTHING),
                                                       extra),
                     environments=TWO_EXECUTORS)


def test_sdk_thousand_calls_progress_and_cancel(ctx):
    skip = npm_missing(EVERYTHING)
    if skip:
        return skip
    g = Gateway(ctx, everything_home(ctx), envs=("exec1", "exec2"))
    sdk = SdkClient(ctx, g.url("/mcp"))
    check_eq(sdk.info["protocol"], "2025-06-18", "negotiated version")
    tools = set(sdk.ok("list"))
    check({"every__echo", "every__trigger_long_running_operation"} <= tools,
          "server-everything's tools: %s" % sorted(tools))
    r = sdk.ok("calls", name="every__echo", n=1000, inflight=8)
    check_eq(r, {"n": 1000, "wrong": 0}, "1,000 echo calls")
    r = sdk.ok("progress", name="every__trigger_long_running_operation",
               args={"duration": 1, "steps": 5})
    check_eq([p["progress"] for p in r["progress"]], [1, 2, 3, 4, 5], "progress relayed")
    check("completed" in r["result"]["content"][0]["text"], "result: %r" % r["result"])
    r = sdk.ok("cancel", name="every__trigger_long_running_operation",
               args={"duration": 60, "steps": 60}, after_progress=2)
    check(r["aborted"] and r["progress"] >= 2, "the cancellation: %r" % r)
    check_eq(sdk.ok("ping"), {}, "ping after the cancellation")
    check("Echo: after" in json.dumps(sdk.ok("call", name="every__echo",
                                             args={"message": "after"})), "echo after")
    check_eq(sdk.ok("close"), True, "DELETE of the session")


def test_cancel_ends_the_call_upstream(ctx):
    """notifications/cancelled over raw HTTP: the waiting POST ends with an
    empty event stream, not with the result the server sends later, and the
    session goes on (its next call is answered once the fixture, which
    cannot be interrupted, has slept)."""
    home = make_home(ctx, config='[mcp_servers.fix]\ncommand = %s\n' % toml_str(MCP_FIXTURE))
    g = Gateway(ctx, home)
    sid, _ = initialize(g.port, "/mcp")
    box = {}

    def slow():
        box["r"] = rpc(g.port, "/mcp", sid, "tools/call",
                       {"name": "fix__sleep", "arguments": {"ms": 4000}}, id="slow")
    th = threading.Thread(target=slow, daemon=True)
    th.start()
    wait_until(lambda: [p for p in fixture_pids(g.o.pid)
                        if current_syscall(p) in SLEEP_SYSCALLS], 20, "the fixture to sleep")
    st, _, _ = request(g.port, "POST", "/mcp", {"jsonrpc": "2.0", "method":
                       "notifications/cancelled", "params": {"requestId": "slow",
                                                             "reason": "test"}},
                       {"Mcp-Session-Id": sid})
    check_eq(st, 202, "the cancellation's status")
    th.join(30)
    check(not th.is_alive(), "the cancelled POST is still open")
    st, h, body = box["r"]
    check_eq((st, h.get("content-type"), sse_messages(body)), (200, "text/event-stream", []),
             "the cancelled call's answer")
    st, _, body = rpc(g.port, "/mcp", sid, "tools/call",
                      {"name": "fix__add", "arguments": {"a": 1, "b": 2}}, id=2)
    check_eq(json.loads(body)["result"]["structuredContent"]["sum"], 3, "a call after it")


# ---- 3: an executor drops and returns -------------------------------------------------

def test_executor_drop_list_changed(ctx):
    skip = npm_missing()
    if skip:
        return skip
    home = make_home(ctx, environments=TWO_EXECUTORS)
    p1 = make_plugin(ctx, "victim", {"victim": {}})
    p2 = make_plugin(ctx, "stays", {"stays": {}})
    g = Gateway(ctx, home, envs=("exec1", "exec2"))
    c = g.c
    t = c.start_thread([root("victim", "exec1", p1), root("stays", "exec2", p2)])
    sdk = SdkClient(ctx, g.url("/mcp/threads/" + t))
    names = set(sdk.ok("list"))
    check({"victim__echo", "stays__echo"} <= names, "before: %s" % sorted(names))
    wait_until(lambda: sdk.p.poll() is None and g.o.executor_pid("exec1"), 10, "exec1's pid")
    mark = sdk.mark()
    os.kill(g.o.executor_pid("exec1"), signal.SIGKILL)
    sdk.wait_event("notifications/tools/list_changed", mark)
    names = set(sdk.ok("list"))
    check(not {n for n in names if n.startswith("victim__")},
          "victim's tools are still listed: %s" % sorted(names))
    check("stays__echo" in names, "the other executor's tools went too: %s" % sorted(names))
    r = sdk.cmd("call", name="victim__echo", args={"message": "x"})
    check("error" in r and "Unknown tool" in r["error"], "a call to a gone tool: %r" % r)
    mark = sdk.mark()
    c.wait_env("exec1", timeout=30)
    sdk.wait_event("notifications/tools/list_changed", mark)
    wait_until(lambda: "victim__echo" in sdk.ok("list"), 30, "victim's tools to come back")
    r = sdk.ok("call", name="victim__echo", args={"message": "back"})
    check_eq(r["content"][0]["text"], "back", "a call once exec1 is back")


# ---- 4: auth --------------------------------------------------------------------------

def token_home(ctx, token, extra=""):
    tf = write_file(ctx.path("gw.token"), token + "\n", 0o600)
    return make_home(ctx, config='[mcp_servers.fix]\ncommand = %s\n\n[mcp_gateway]\n'
                     'auth = "capability-token"\ntoken_file = %s\n%s' %
                     (toml_str(MCP_FIXTURE), toml_str(tf), extra)), tf


def test_token_auth(ctx):
    token = random_token()
    home, tf = token_home(ctx, token, 'resource = "http://127.0.0.1/mcp"\n'
                          'authorization_servers = ["https://as.example"]\n')
    g = Gateway(ctx, home)
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "raw", "version": "1"}}}
    for label, hdrs in (("no token", {}), ("wrong token", {"Authorization": "Bearer nope"}),
                        ("almost", {"Authorization": "Bearer " + token[:-1]}),
                        ("basic", {"Authorization": "Basic " + token})):
        st, h, body = request(g.port, "POST", "/mcp", init, hdrs)
        check_eq((st, body), (401, b""), "%s: status and body" % label)
        check(h.get("www-authenticate", "").startswith('Bearer realm="tandem"') and
              'resource_metadata="http://127.0.0.1/.well-known/oauth-protected-resource/mcp"'
              in h["www-authenticate"], "%s: WWW-Authenticate %r" % (label, h))
    good = {"Authorization": "Bearer " + token}
    sid, _ = initialize(g.port, "/mcp", good)
    # A session id is no credential.
    for method in ("POST", "GET", "DELETE"):
        st, _, body = request(g.port, method, "/mcp", {"jsonrpc": "2.0", "id": 1,
                                                       "method": "tools/list"},
                              {"Mcp-Session-Id": sid})
        check_eq((st, body), (401, b""), "%s with the session but no token" % method)
    st, _, body = rpc(g.port, "/mcp", sid, "tools/list", headers=good)
    check("fix__echo" in {t["name"] for t in json.loads(body)["result"]["tools"]},
          "tools with the token")
    st, _, body = request(g.port, "GET", "/.well-known/oauth-protected-resource/mcp")
    meta = json.loads(body)
    check_eq((st, meta["resource"], meta["authorization_servers"]),
             (200, "http://127.0.0.1/mcp", ["https://as.example"]), "RFC 9728 metadata")
    if not npm_missing():
        sdk = SdkClient(ctx, g.url("/mcp"), token_file=tf)
        check("fix__echo" in sdk.ok("list"), "the SDK with the token")
        sdk.ok("close")
    check(token not in g.o.stderr_text(), "the token is in the orchestrator's log")


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(secret, claims, alg="HS256"):
    head = b64u(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    body = b64u(json.dumps(claims).encode())
    sig = hmac.new(secret, ("%s.%s" % (head, body)).encode(), hashlib.sha256).digest()
    return "%s.%s.%s" % (head, body, b64u(sig) if alg == "HS256" else "")


def test_jwt_auth(ctx):
    secret = os.urandom(32).hex().encode()
    sf = write_file(ctx.path("gw.secret"), secret.decode() + "\n", 0o600)
    home = make_home(ctx, config='[mcp_servers.fix]\ncommand = %s\n\n[mcp_gateway]\n'
                     'auth = "signed-bearer-token"\nshared_secret_file = %s\n'
                     'issuer = "tandem-test"\naudience = "gw"\n' %
                     (toml_str(MCP_FIXTURE), toml_str(sf)))
    g = Gateway(ctx, home)
    now = int(time.time())
    ok = {"iss": "tandem-test", "aud": "gw", "exp": now + 300, "sub": "tester"}
    bad = {
        "expired": jwt(secret, dict(ok, exp=now - 600)),
        "other audience": jwt(secret, dict(ok, aud="else")),
        "other issuer": jwt(secret, dict(ok, iss="else")),
        "no exp": jwt(secret, {k: v for k, v in ok.items() if k != "exp"}),
        "wrong key": jwt(b"k" * 32, ok),
        "alg none": jwt(secret, ok, alg="none"),
    }
    for label, tok in bad.items():
        st, _, body = request(g.port, "POST", "/mcp", {"jsonrpc": "2.0", "id": 0, "method":
                              "initialize", "params": {"protocolVersion": "2025-06-18"}},
                              {"Authorization": "Bearer " + tok})
        check_eq((st, body), (401, b""), "JWT %s" % label)
    good = {"Authorization": "Bearer " + jwt(secret, ok)}
    sid, _ = initialize(g.port, "/mcp", good)
    st, _, body = rpc(g.port, "/mcp", sid, "tools/call",
                      {"name": "fix__add", "arguments": {"a": 20, "b": 22}}, headers=good)
    check_eq(json.loads(body)["result"]["structuredContent"]["sum"], 42, "a call with a JWT")


def test_beyond_loopback_needs_auth(ctx):
    home = make_home(ctx)
    o = Orchestrator(ctx, home, mode="unix", extra_args=["--mcp-listen", "0.0.0.0:0"],
                     label="open")
    try:
        rc = o.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise TestFailure("an orchestrator listening on 0.0.0.0 without auth kept running")
    check(rc != 0 and "needs authentication" in o.stderr_text(),
          "exit %s, log: %s" % (rc, o.stderr_text()[-500:]))
    home, _ = token_home(ctx, random_token())
    g = Gateway(ctx, home, listen="0.0.0.0:0")
    st, _, _ = request(g.port, "POST", "/mcp", {"jsonrpc": "2.0", "id": 0, "method": "ping"})
    check_eq(st, 401, "0.0.0.0 with a token, no token sent")


# ---- 5: hostile clients and limits ------------------------------------------------------

def test_hostile_requests_and_limits(ctx):
    home = make_home(ctx, config='[mcp_servers.fix]\ncommand = %s\n' % toml_str(MCP_FIXTURE))
    g = Gateway(ctx, home)
    port = g.port
    sid, init = initialize(port, "/mcp", version="2025-11-25")
    check_eq(init["result"]["protocolVersion"], "2025-06-18", "answer to 2025-11-25")

    def status(method, path, body=None, headers=None):
        return request(port, method, path, body, headers)[0]
    cases = [
        ("not JSON", ("POST", "/mcp", b"{nope", {"Content-Type": "application/json",
                                                 "Mcp-Session-Id": sid}), 400),
        ("a batch", ("POST", "/mcp", [{"jsonrpc": "2.0", "id": 1, "method": "ping"}],
                     {"Mcp-Session-Id": sid}), 400),
        ("no session", ("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "ping"}), 400),
        ("unknown session", ("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "ping"},
                             {"Mcp-Session-Id": "0" * 64}), 404),
        ("session of another path", ("POST", "/mcp/profiles/x", {"jsonrpc": "2.0", "id": 1,
                                     "method": "ping"}, {"Mcp-Session-Id": sid}), 404),
        ("bad version header", ("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "ping"},
                                {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "1999"}), 400),
        ("text body", ("POST", "/mcp", "ping", {"Content-Type": "text/plain",
                                                "Mcp-Session-Id": sid}), 415),
        ("foreign origin", ("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "ping"},
                            {"Mcp-Session-Id": sid, "Origin": "http://evil.example"}), 403),
        ("rebound host", ("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "ping"},
                          {"Mcp-Session-Id": sid, "Host": "127.0.0.1.evil.example"}), 403),
        ("PUT", ("PUT", "/mcp", None, {"Mcp-Session-Id": sid}), 405),
        ("other path", ("GET", "/admin", None), 404),
        ("unknown thread", ("POST", "/mcp/threads/nope", {"jsonrpc": "2.0", "id": 0,
                            "method": "initialize", "params": {"protocolVersion": "x"}}), 404),
        ("GET without event streams", ("GET", "/mcp", None, {"Mcp-Session-Id": sid,
                                                             "Accept": "application/json"}), 406),
        ("huge Content-Length", ("POST", "/mcp", b"x" * 10, {"Mcp-Session-Id": sid,
                                 "Content-Type": "application/json",
                                 "Content-Length": str(5 << 20)}), 413),
    ]
    for label, args, want in cases:
        try:
            got = status(*args)
        except (OSError, http.client.HTTPException) as e:
            got = "connection error %s" % e
        check_eq(got, want, label)
    st, _, body = request(port, "POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "nope"},
                          {"Mcp-Session-Id": sid, "Origin": "http://localhost:6274"})
    check_eq(json.loads(body)["error"]["code"], -32601, "unknown method from a loopback origin")
    # A chunked body past 4 MiB is cut off; the daemon lives on.
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
              b"Transfer-Encoding: chunked\r\nMcp-Session-Id: " + sid.encode() + b"\r\n\r\n")
    chunk = b"%x\r\n%s\r\n" % (1 << 16, b" " * (1 << 16))
    try:
        for _ in range(100):  # 6.25 MiB at most
            s.sendall(chunk)
    except OSError:
        pass
    s.close()
    st, _, body = rpc(port, "/mcp", sid, "ping")
    check_eq(json.loads(body)["result"], {}, "ping after the oversized body")
    # One stream per session.
    s1 = socket.create_connection(("127.0.0.1", port))
    s1.sendall(b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
               b"Mcp-Session-Id: " + sid.encode() + b"\r\n\r\n")
    check(s1.recv(4096).startswith(b"HTTP/1.1 200"), "the first GET stream")
    check_eq(status("GET", "/mcp", None, {"Mcp-Session-Id": sid}), 409, "a second GET stream")
    s1.close()
    # Sessions: idle ones make room for new ones ...
    for i in range(300):
        initialize(port, "/mcp")
    # ... busy ones do not: sessions that each hold a stream fill the table
    # (the first stream above may still count: its end is seen later).
    streams, st = [], None
    try:
        for i in range(300):
            st, h, body = request(port, "POST", "/mcp", {"jsonrpc": "2.0", "id": 0, "method":
                                  "initialize", "params": {"protocolVersion": "2025-06-18"}})
            if st != 200:
                break
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
                      b"Mcp-Session-Id: " + h["mcp-session-id"].encode() + b"\r\n\r\n")
            check(s.recv(4096).startswith(b"HTTP/1.1 200"), "stream %d" % i)
            streams.append(s)
        check(st == 503 and b"too many sessions" in body and 255 <= len(streams) <= 256,
              "sessions past the bound, all busy: %s after %d streams (%s)" %
              (st, len(streams), body[:200]))
    finally:
        for s in streams:
            s.close()
    # Closed streams are noticed by the keep-alive comment (gateway.h).
    sid, _ = wait_until(lambda: _try_init(port), 45, "room once the streams closed",
                        interval=0.5)
    st, _, body = rpc(port, "/mcp", sid, "tools/call",
                      {"name": "fix__echo", "arguments": {"message": "still here"}})
    check_eq(json.loads(body)["result"]["content"][0]["text"], "still here", "after the flood")
    check_eq(status("DELETE", "/mcp", None, {"Mcp-Session-Id": sid}), 200, "DELETE")
    check_eq(status("POST", "/mcp", {"jsonrpc": "2.0", "id": 1, "method": "ping"},
                    {"Mcp-Session-Id": sid}), 404, "the deleted session")


def _try_init(port):
    st, h, body = request(port, "POST", "/mcp", {"jsonrpc": "2.0", "id": 0, "method":
                          "initialize", "params": {"protocolVersion": "2025-06-18"}})
    return (h["mcp-session-id"], body) if st == 200 else None


# ---- 6: the stdio form ---------------------------------------------------------------------

def test_stdio_bridge(ctx):
    skip = npm_missing()
    if skip:
        return skip
    token = random_token()
    home, tf = token_home(ctx, token)
    g = Gateway(ctx, home)
    target = [TANDEM_CLI, "mcp", g.url("/mcp")]
    env = {"TANDEM_MCP_TOKEN_FILE": tf}
    names = {t["name"] for t in inspector(ctx, target, "--method", "tools/list",
                                          label="stdio-list", env=env)["tools"]}
    check({"fix__" + n for n in FIXTURE_TOOLS} <= names, "tools via tandem mcp: %s" %
          sorted(names))
    r = inspector(ctx, target, "--method", "tools/call", "--tool-name", "fix__add",
                  "--tool-arg", "a=40", "--tool-arg", "b=2", label="stdio-call", env=env)
    check_eq(r["structuredContent"]["sum"], 42, "a call through tandem mcp")
    rc, out, err = run_node(ctx, [INSPECTOR] + target + ["--method", "tools/list"],
                            "stdio-wrong", env={"TANDEM_MCP_TOKEN_FILE":
                                                write_file(ctx.path("wrong"), "nope\n", 0o600)})
    check(rc != 0 and "fix__echo" not in out, "a wrong token through tandem mcp: %s / %s" %
          (out[-300:], err[-300:]))
    # Lines written by hand: a parse error and an unknown method are answered.
    p = subprocess.run([TANDEM_CLI, "mcp", g.url("/mcp")], input=(
        '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":'
        '"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}\n'
        'not json\n{"jsonrpc":"2.0","id":7,"method":"nope"}\n').encode(),
        capture_output=True, timeout=30, env=dict(os.environ, **env))
    got = {json.dumps(m.get("id")): m for m in map(json.loads, p.stdout.decode().splitlines())}
    check_eq(sorted(got), ["0", "7", "null"], "ids answered")
    check_eq((got["null"]["error"]["code"], got["7"]["error"]["code"]), (-32603, -32601),
             "errors answered")
    check("result" in got["0"], "initialize through tandem mcp")


# ---- 7: profiles ---------------------------------------------------------------------------

def test_profile_endpoint(ctx):
    p = make_plugin(ctx, "prof", {"kept": {}, "dropped": {}})
    home = make_home(ctx, config='[mcp_servers.cfg]\ncommand = %s\nenvironment_id = "exec1"\n\n'
                     '[mcp_gateway.profiles.dev]\nroots = [{ id = "prof", environment_id = '
                     '"exec1", path = %s }]\nservers = ["kept", "cfg"]\n\n'
                     '[mcp_gateway.profiles.all]\nroots = [{ id = "prof", environment_id = '
                     '"exec1", path = %s }]\n' % (toml_str(MCP_FIXTURE), toml_str(p), toml_str(p)),
                     environments=TWO_EXECUTORS)
    g = Gateway(ctx, home, envs=("exec1",))
    c = g.c
    before = c.call("thread/list", {})["data"]
    for name, want, unwanted in (("dev", {"kept__echo", "cfg__echo"}, {"dropped__echo"}),
                                 ("all", {"kept__echo", "dropped__echo", "cfg__echo"}, set())):
        sid, _ = initialize(g.port, "/mcp/profiles/" + name)
        st, _, body = rpc(g.port, "/mcp/profiles/" + name, sid, "tools/list")
        names = {t["name"] for t in json.loads(body)["result"]["tools"]}
        check(want <= names and not names & unwanted, "profile %s: %s" % (name, sorted(names)))
        st, _, body = rpc(g.port, "/mcp/profiles/" + name, sid, "tools/call",
                          {"name": "kept__echo", "arguments": {"message": name}}, id=2)
        check_eq(json.loads(body)["result"]["structuredContent"]["cwd"], p, "kept's cwd")
    check_eq(c.call("thread/list", {})["data"], before, "thread/list with profiles in use")
    st, _, body = request(g.port, "POST", "/mcp/profiles/nope", {
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18"}})
    check(st == 404 and b"nope" in body, "an unknown profile: %s %s" % (st, body))


# ---- 8: prompts and resources ------------------------------------------------------------------

def test_prompts_and_resources(ctx):
    skip = npm_missing(EVERYTHING)
    if skip:
        return skip
    g = Gateway(ctx, everything_home(ctx), envs=("exec1", "exec2"))
    sdk = SdkClient(ctx, g.url("/mcp"))
    prompts = sdk.ok("prompts")
    check("every__simple_prompt" in prompts, "prompts: %s" % prompts)
    r = sdk.ok("prompt", name="every__simple_prompt")
    check_eq(r["messages"][0]["content"]["text"], "This is a simple prompt without arguments.",
             "prompts/get")
    uris = sdk.ok("resources")
    check(uris and all(u.startswith("demo://") for u in uris), "resources: %s" % uris[:5])
    r = sdk.ok("read", uri=uris[0])
    check_eq(r["contents"][0]["uri"], uris[0], "resources/read")
    r = sdk.cmd("read", uri="nothing://here")
    check("error" in r and "not found" in r["error"].lower(), "unknown resource: %r" % r)
    r = sdk.cmd("prompt", name="every__nope")
    check("error" in r and "Unknown prompt" in r["error"], "unknown prompt: %r" % r)


def _answer(st, h, body):
    if h.get("content-type", "").startswith("text/event-stream"):
        msgs = [m for m in sse_messages(body) if "id" in m]
        return msgs[-1] if msgs else None
    return json.loads(body)


def test_deleted_thread_leaves_its_sessions_empty(ctx):
    """A thread deleted through the client API while a gateway session
    serves it: the session stays (its tools are gone), the daemon lives, and
    a new session for that thread's path is refused."""
    home = make_home(ctx)
    p = make_plugin(ctx, "doomed", {"doomed": {}})
    g = Gateway(ctx, home)
    c = g.c
    t = c.start_thread([root("doomed", "local", p)])
    path = "/mcp/threads/" + t
    sid, _ = initialize(g.port, path)
    tools = _answer(*rpc(g.port, path, sid, "tools/list", {}, id=2))["result"]["tools"]
    check("doomed__echo" in {x["name"] for x in tools}, "tools before: %s" % tools)
    c.call("thread/delete", {"threadId": t})
    after = wait_until(lambda: (lambda a: a if not a["result"]["tools"] else None)(
        _answer(*rpc(g.port, path, sid, "tools/list", {}, id=3))), 10,
        "the deleted thread's tools to go")
    check_eq(after["result"]["tools"], [], "tools after the delete")
    st, _, body = request(g.port, "POST", path, {
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "raw", "version": "1"}}})
    check_eq(st, 404, "a new session for a deleted thread (%s)" % body[:200])
    check(g.o.proc.poll() is None, "the orchestrator died")
    check_eq(c.call("thread/list", {})["data"], [], "threads after the delete")


def test_stored_thread_is_loaded_for_a_session(ctx):
    """The endpoint of a thread that is stored but not loaded (here: after
    a restart) loads it from the store: initialize answers 200 and its
    server's tools are listed and called; an id the store does not know
    stays 404."""
    home = make_home(ctx)
    p = make_plugin(ctx, "kept", {"kept": {}})
    g = Gateway(ctx, home)
    t = g.c.start_thread([root("kept", "local", p)])
    g.o.stop()
    g2 = Gateway(ctx, home)
    path = "/mcp/threads/" + t
    loaded = g2.c.call("thread/loaded/list", {})["data"]
    check(t not in loaded, "the thread is not loaded before the session: %s" % loaded)
    sid, init = initialize(g2.port, path)
    check_eq(init["result"]["serverInfo"]["name"], "tandem-gateway", "initialize answer")
    tools = wait_until(lambda: (lambda a: a if a["result"]["tools"] else None)(
        _answer(*rpc(g2.port, path, sid, "tools/list", {}, id=2))), 20,
        "the stored thread's tools")["result"]["tools"]
    check("kept__echo" in {x["name"] for x in tools}, "tools: %s" % tools)
    res = _answer(*rpc(g2.port, path, sid, "tools/call",
                       {"name": "kept__echo", "arguments": {"message": "back"}}, id=3))
    check_eq(res["result"]["content"][0]["text"], "back", "the call: %s" % res)
    check(t in g2.c.call("thread/loaded/list", {})["data"], "the session loaded the thread")
    missing = "/mcp/threads/00000000-0000-4000-8000-000000000000"
    st, _, body = request(g2.port, "POST", missing, {
        "jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "raw", "version": "1"}}})
    check_eq(st, 404, "a thread the store does not know (%s)" % body[:200])
    check(b"no thread" in body or b"no such thread" in body, "why: %s" % body[:200])


if __name__ == "__main__":
    sys.exit(run_suite([
        ("inspector_lists_and_calls_on_two_executors",
         test_inspector_lists_and_calls_on_two_executors),
        ("sdk_thousand_calls_progress_and_cancel", test_sdk_thousand_calls_progress_and_cancel),
        ("cancel_ends_the_call_upstream", test_cancel_ends_the_call_upstream),
        ("executor_drop_list_changed", test_executor_drop_list_changed),
        ("token_auth", test_token_auth),
        ("jwt_auth", test_jwt_auth),
        ("beyond_loopback_needs_auth", test_beyond_loopback_needs_auth),
        ("hostile_requests_and_limits", test_hostile_requests_and_limits),
        ("stdio_bridge", test_stdio_bridge),
        ("profile_endpoint", test_profile_endpoint),
        ("prompts_and_resources", test_prompts_and_resources),
        ("deleted_thread_leaves_its_sessions_empty",
         test_deleted_thread_leaves_its_sessions_empty),
        ("stored_thread_is_loaded_for_a_session", test_stored_thread_is_loaded_for_a_session),
    ]))
