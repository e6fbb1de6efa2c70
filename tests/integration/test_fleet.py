#!/usr/bin/env python3
"""Many executors, and executors that dial out (issue 14 items 3, 4, 6;
issue 13 item 6), with real daemons:

  - dial-in: `tandem-executor --connect` to `tandem-orchestrator
    --executor-listen`; the token file names the environment; a declared
    dial_in environment is selectable before it first connects; a wrong
    token is refused; the executor dials again after it is restarted;
  - the environment cap (--max-environments) for environment/add and
    environments.toml alike; environment/remove; the redial backoff of a
    dead address (attempt counters, not CPU);
  - dial-out through NAT: the executor in a network namespace whose only
    route is out through a masquerading router namespace;
  - dial-in over ws://, tls+tcp:// and wss://, and url environments over
    ws://, tls+tcp:// and wss:// (the orchestrator dials): authenticated,
    a thread's calls, a TCP reset (ss -K on loopback) with 16 calls in
    flight resumes the session on the same transport, each call runs
    once on the same server; a refused WebSocket upgrade is explained; a
    ws:// url naming a Codex exec-server is told what it must be;
  - re-attach after kill -9 of the orchestrator (same pids), also of more
    servers (80) than a HELLO reply lists (64: the rest by identity);
  - the fleet: 100 executors (url and dial-out mixed), 100 threads.

Network namespaces are made by the test (names with "fl" in them) and
removed even on failure; without root or ip(8)/nft(8) those tests SKIP
loudly. Timings are printed, never asserted.
"""

import base64
import hashlib
import os
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
    EXECUTOR, Executor, Orchestrator, RpcError, TestFailure, check, check_eq, fixture_pids,
    make_home, make_plugin, random_token, root, run_suite, toml_str, wait_until, write_file)


def listen_port(o, timeout=15):
    """The port the orchestrator's executor listener bound (port 0)."""
    found = {}

    def bound():
        if o.proc.poll() is not None:
            raise TestFailure("orchestrator exited with %s" % o.proc.returncode)
        m = re.search(r"listening for executors on \S+ \(port (\d+)\)", o.stderr_text())
        if m:
            found["port"] = int(m.group(1))
        return "port" in found
    wait_until(bound, timeout, "the orchestrator's executor listener")
    return found["port"]


class DialExecutor:
    """A tandem-executor that dials the orchestrator (--connect). Its token
    file is named after its environment (the default --environment)."""

    def __init__(self, ctx, env_id, url, token, netns=None, extra_args=(), label=None):
        self.ctx, self.env_id = ctx, env_id
        d = ctx.mkdir("dial-tokens-%s" % (label or env_id))
        self.token_file = write_file(os.path.join(d, env_id), token + "\n", 0o600)
        argv = [EXECUTOR, "--connect", url, "--auth-token-file", self.token_file,
                "--id", "x-" + env_id, "--log-level", "debug"] + list(extra_args)
        if netns:
            argv = ["ip", "netns", "exec", netns] + argv
        penv = {k: v for k, v in os.environ.items() if k != "TANDEM_EXECUTOR_TOKEN"}
        self.proc = ctx.popen(argv, "executor-" + (label or env_id), env=penv)
        self.pid = self.proc.pid

    def log(self):
        with open(self.proc.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


# The executor's line when its orchestrator's connection ends (the session
# waits to resume; a new orchestrator's fresh session detaches its servers
# and the HELLO reply lists them).
LOST = "closing the connection of orchestrator"


def read_log(proc):
    with open(proc.stderr_path, "rb") as f:
        return f.read().decode("utf-8", "replace")


def status(c, env_id):
    return c.call("environment/status", {"environmentId": env_id})


def wait_status(c, env_id, pred, timeout, what):
    last = {}

    def ok():
        last.clear()
        last.update(status(c, env_id))
        return pred(last)
    try:
        wait_until(ok, timeout, what, interval=0.05)
    except TestFailure:
        raise TestFailure("%s; last status %r" % (what, last))
    return last


def echo(c, t, srv, msg):
    r = c.tool(t, srv, "echo", {"message": msg})
    sc = r.get("structuredContent") or {}
    check_eq(sc.get("message"), msg, "echo through %s" % srv)
    return sc


# ---- dial-in -------------------------------------------------------------------

def t_dial_in(ctx):
    tok_a, tok_b = random_token(), random_token()
    # "decl" is declared (selectable before it connects); "undecl" exists
    # only by its token file.
    home = make_home(ctx, environments="""
[[environments]]
id = "decl"
dial_in = true
""", tokens={"decl": tok_a, "undecl": tok_b})
    o = Orchestrator(ctx, home, mode="unix", args=["--executor-listen", "tcp://127.0.0.1:0"])
    c = o.connect()
    port = listen_port(o)
    url = "tcp://127.0.0.1:%d" % port
    st = status(c, "decl")
    check_eq(st["status"], "disconnected", "a declared dial-in environment before it dials")
    check("dial in" in (st.get("error") or ""), "its status says it waits: %r" % st)
    check_eq(st.get("direction"), "dialled in", "its direction")
    check_eq(status(c, "undecl")["status"], "unknown", "an undeclared one before it dials")
    # Junk and silence on the listener: closed, and the executors get in.
    junk = []
    for i in range(20):
        sk = socket.create_connection(("127.0.0.1", port), timeout=5)
        if i % 2:
            sk.sendall(b"\0SP\0\0\x11\0\0" if i % 4 == 1 else b"GET / HTTP/1.1\r\n\r\n")
        junk.append(sk)
    p = make_plugin(ctx, "dp", {"dsrv": {}})
    t = c.start_thread([root("dp", "decl", p)])  # selectable before it connects
    a = DialExecutor(ctx, "decl", url, tok_a)
    b = DialExecutor(ctx, "undecl", url, tok_b)
    t0 = time.monotonic()
    st = wait_status(c, "decl", lambda s: s["status"] == "ready", 20, "decl to dial in")
    ready_s = time.monotonic() - t0
    for sk in junk:
        sk.settimeout(10)
        try:
            check_eq(sk.recv(100), b"", "what a junk connection hears before it is closed")
        except ConnectionResetError:
            pass
        sk.close()
    check(st.get("sealed"), "a dialled-in tcp link is sealed: %r" % st)
    c.wait_notification(lambda n: n["method"] == "thread/environment/connected" and
                        n["params"].get("environmentId") == "decl", timeout=10,
                        what="thread/environment/connected for decl")
    wait_status(c, "undecl", lambda s: s["status"] == "ready", 20, "undecl to dial in")
    check_eq(status(c, "undecl")["direction"], "dialled in", "undecl's direction")
    echo(c, t, "dsrv", "through a dialled-in link")
    t2 = c.start_thread([root("dp2", "undecl", p)])
    echo(c, t2, "dsrv", "and through an undeclared one")
    lst = c.call("environment/list")
    ids = {e["environmentId"]: e for e in lst["data"]}
    check("decl" in ids and "undecl" in ids, "environment/list: %r" % list(ids))
    check(ids["undecl"]["removable"] and not ids["decl"]["removable"], "removable flags")
    # A wrong token: refused, nothing else changes.
    bad = DialExecutor(ctx, "decl", url, random_token(), label="decl-bad")
    wait_until(lambda: "bad proof" in bad.log() or "proof" in bad.log() or
               "closed the connection" in bad.log(), 15, "the impostor to be refused")
    bad.kill()
    check_eq(status(c, "decl")["status"], "ready", "decl after an impostor")
    # An id with no token file: refused at the preface.
    nobody = DialExecutor(ctx, "nobody", url, random_token())
    wait_until(lambda: "no such environment" in o.stderr_text(), 15, "'nobody' refused")
    nobody.kill()
    check_eq(status(c, "nobody")["status"], "unknown", "no environment for an unknown id")
    # A TCP reset: the executor dials in again and the session resumes.
    before = status(c, "decl")
    reset = "SKIPPED (ss -K failed)"
    if subprocess.call(["ss", "-K", "dst", "127.0.0.1", "dport", "=", str(port)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0:
        st = wait_status(c, "decl", lambda s: s["status"] == "ready" and
                         s.get("resumes", 0) > before.get("resumes", 0), 20,
                         "decl's session to resume after a reset")
        check_eq(st.get("sessionId"), before.get("sessionId"), "the resumed session's id")
        echo(c, t, "dsrv", "after a reset")
        reset = "resumed session %s" % st["sessionId"][:8]
    # The executor restarts: it dials in again, counted as a reconnect.
    a.kill()
    wait_status(c, "decl", lambda s: s["status"] == "disconnected", 20, "decl to drop")
    a = DialExecutor(ctx, "decl", url, tok_a, label="decl-2")
    st = wait_status(c, "decl", lambda s: s["status"] == "ready", 30, "decl to dial in again")
    check(st.get("reconnects", 0) >= 1, "reconnects counted: %r" % st)
    echo(c, t, "dsrv", "after the executor came back")
    return "# dial-in ready %.2f s after the executor started; TCP reset: %s" % (ready_s, reset)


def make_cert(ctx, name="tls"):
    """A self-signed certificate for "localhost" (openssl): (cert+key, cert)."""
    d = ctx.mkdir(name)
    key, cert, both = (os.path.join(d, n) for n in ("key.pem", "cert.pem", "both.pem"))
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                        "-keyout", key, "-out", cert], capture_output=True)
    check(r.returncode == 0, "openssl: %s" % r.stderr.decode()[-300:])
    with open(key) as k, open(cert) as c:
        write_file(both, k.read() + c.read(), 0o600)
    return both, cert


def mark_runs(path):
    """tag -> [instance id of each run] (the fixture's mark tool)."""
    out = {}
    with open(path) as f:
        for line in f:
            tag, pid = line.split()
            out.setdefault(tag, []).append(int(pid))
    return out


def call_outcome(resp):
    if "error" in resp:
        return "error", resp["error"].get("message", "")
    res = resp.get("result") or {}
    if res.get("isError"):
        return "error", str(res.get("content"))
    return "ok", ""


def calls_across_reset(c, t, env_id, marks, port, exec_log, scheme):
    """16 calls in flight on server m of thread t (the mark tool), the TCP
    connection to port reset (ss -K): the session resumes (same id), every
    call completes, each ran exactly once on the same server."""
    c.tool(t, "m", "mark", {"tag": "first", "ms": 0}, timeout=30)
    pid = mark_runs(marks)["first"][0]
    before = status(c, env_id)
    ids = {c.send("mcpServer/tool/call", {"threadId": t, "server": "m", "tool": "mark",
                                          "arguments": {"tag": "r%d" % i, "ms": 150}}):
           "r%d" % i for i in range(16)}
    time.sleep(0.1)
    if subprocess.call(["ss", "-K", "dst", "127.0.0.1", "dport", "=", str(port)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) != 0:
        return "SKIP ss -K failed (no CONFIG_INET_DIAG_DESTROY?)"
    t0 = time.monotonic()
    for i, tag in ids.items():
        kind, msg = call_outcome(c.wait_response(i, timeout=60))
        check_eq(kind, "ok", "call %s across a reset over %s (%s)" % (tag, scheme, msg))
    done = time.monotonic() - t0
    st = wait_status(c, env_id, lambda s: s["status"] == "ready" and
                     s.get("resumes", 0) > before.get("resumes", 0), 20,
                     "%s's session to resume over %s" % (env_id, scheme))
    check_eq(st.get("sessionId"), before.get("sessionId"), "the resumed session's id")
    check("resumed by orchestrator" in exec_log(), "the executor resumed the session")
    runs = mark_runs(marks)
    for tag in ids.values():
        check_eq(len(runs.get(tag, [])), 1, "executions of %s" % tag)
        check_eq(runs[tag][0], pid, "the server's instance for %s" % tag)
    return ("16 calls across a TCP reset all completed once, %.2f s; session %s resumed" %
            (done, st["sessionId"][:8]))


def dial_in_over(ctx, scheme):
    """An executor dials in over scheme (ws, tls+tcp, wss): it authenticates
    and becomes environment "far"; a thread's tool calls run in it; the
    connection is reset (ss -K) with calls in flight, the executor dials
    again over the same transport and the session resumes: every call
    completes, each ran exactly once, on the same server."""
    tok = random_token()
    home = make_home(ctx, environments='[[environments]]\nid = "far"\ndial_in = true\n',
                     tokens={"far": tok})
    path = "/tandem" if scheme.startswith("ws") else ""
    extra = []
    host = "127.0.0.1"
    if scheme in ("tls+tcp", "wss"):
        both, cert = make_cert(ctx)
        shutil.copy(both, os.path.join(home, "executor-listen.pem"))
        extra = ["--connect-ca", cert]
        host = "localhost"  # the name the certificate is checked against
    # nng 1.5.2's WebSocket listener bound to a host answers only requests
    # whose Host names that host (else 404): wss listens on the name it is
    # dialled by, as documented in the README.
    lhost = "localhost" if scheme == "wss" else "127.0.0.1"
    o = Orchestrator(ctx, home, mode="unix",
                     args=["--executor-listen", "%s://%s:0%s" % (scheme, lhost, path)])
    c = o.connect()
    port = listen_port(o)
    url = "%s://%s:%d%s" % (scheme, host, port, path)
    marks = ctx.path("marks")
    open(marks, "w").close()
    p = make_plugin(ctx, "dpm", {"m": {"env": {"FIXTURE_APPEND_FILE": marks},
                                       "sandbox": "off"}})
    t = c.start_thread([root("dpm", "far", p)])
    x = DialExecutor(ctx, "far", url, tok, extra_args=extra)
    st = wait_status(c, "far", lambda s: s["status"] == "ready", 30,
                     "far to dial in over %s" % scheme)
    check_eq(st.get("direction"), "dialled in", "its direction")
    check("peer authenticated" in x.log(), "the executor authenticated the orchestrator")
    check(st.get("sealed") == (scheme == "ws"), "sealed only where the transport does not "
          "encrypt: %r" % st)
    c.wait_notification(lambda n: n["method"] == "thread/environment/connected" and
                        n["params"].get("environmentId") == "far", timeout=10,
                        what="thread/environment/connected for far")
    wait_until(lambda: c.status(t).get("m", {}).get("runtimeStatus") == "connected", 30,
               "the server on far")
    r = calls_across_reset(c, t, "far", marks, port, lambda: x.log(), scheme)
    if r.startswith("SKIP"):
        return r
    check(x.log().count("connected to the orchestrator at %s" % url) >= 2,
          "the executor dialled %s again" % url)
    if scheme == "ws":
        # The same listener dialled by another name for its host: nng
        # answers 404 and calls that "connection refused"; the log says why.
        y = DialExecutor(ctx, "far", "ws://localhost:%d%s" % (port, path), tok, label="far-host")
        wait_until(lambda: "the WebSocket upgrade was" in y.log(), 15,
                   "the executor to explain a refused upgrade")
        y.kill()
        check_eq(status(c, "far")["status"], "ready", "far after a refused upgrade")
    return "# dial-in over %s: %s" % (scheme, r)


def dialled_over(ctx, scheme):
    """The other direction: the orchestrator dials an executor that listens
    on ws://, wss://, tls+tcp:// or tcp:// (an environments.toml url); a
    thread's calls run in it, and a reset with calls in flight resumes the
    session. tcp:// names the host "localhost": the confined orchestrator
    resolves it off its loop (proto/link_sock.c) and tries its addresses."""
    both, cert = make_cert(ctx)
    host = "localhost" if scheme in ("wss", "tls+tcp", "tcp") else "127.0.0.1"
    path = "/tandem" if scheme.startswith("ws") else ""
    tok = random_token()
    tok_file = write_file(ctx.path("wtok"), tok + "\n", 0o600)
    argv = [EXECUTOR, "--listen", "%s://%s:0%s" % (scheme, host, path), "--auth-token-file",
            tok_file, "--id", "wx", "--log-level", "debug"]
    if scheme in ("wss", "tls+tcp"):
        argv += ["--tls-cert", both]
    x = ctx.popen(argv, "executor-wx")
    found = {}

    def bound():
        check(x.poll() is None, "the executor exited with %s" % x.returncode)
        m = re.search(r"listening on %s://[^:]+:(\d+)" % re.escape(scheme), read_log(x))
        found["port"] = int(m.group(1)) if m else None
        return found["port"]
    wait_until(bound, 15, "the executor to listen")
    port = found["port"]
    url = "%s://%s:%d%s" % (scheme, host, port, path)
    home = make_home(ctx, environments='[[environments]]\nid = "wx"\nurl = %s\n' % toml_str(url),
                     tokens={"wx": tok})
    if scheme in ("wss", "tls+tcp"):
        os.makedirs(os.path.join(home, "executor-tls"), exist_ok=True)
        shutil.copy(cert, os.path.join(home, "executor-tls", "wx.pem"))
    o = Orchestrator(ctx, home, mode="unix")
    c = o.connect()
    st = wait_status(c, "wx", lambda s: s["status"] == "ready", 30, "wx over %s" % scheme)
    check_eq(st.get("direction"), "dialled", "its direction")
    check(st.get("sealed") == (scheme in ("ws", "tcp")), "sealed only where the transport "
          "does not encrypt: %r" % st)
    marks = ctx.path("marks")
    open(marks, "w").close()
    p = make_plugin(ctx, "wpm", {"m": {"env": {"FIXTURE_APPEND_FILE": marks},
                                       "sandbox": "off"}})
    t = c.start_thread([root("wpm", "wx", p)])
    wait_until(lambda: c.status(t).get("m", {}).get("runtimeStatus") == "connected", 30,
               "the server on wx")
    r = calls_across_reset(c, t, "wx", marks, port, lambda: read_log(x), scheme)
    return r if r.startswith("SKIP") else "# dialled over %s: %s" % (scheme, r)


def t_dialled_ws(ctx):
    return dialled_over(ctx, "ws")


def t_dialled_tcp_by_name(ctx):
    return dialled_over(ctx, "tcp")


def t_dialled_tls(ctx):
    return dialled_over(ctx, "tls+tcp")


def t_dialled_wss(ctx):
    return dialled_over(ctx, "wss")


def t_codex_exec_server_url(ctx):
    """A ws:// url that names a Codex exec-server (a WebSocket server that
    speaks JSON-RPC text, not tandem's link): the environment fails its
    handshake, its status says what the url must be, and the file loads."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.5)
    port = srv.getsockname()[1]
    stop = threading.Event()
    ctx.closers.append(lambda: (stop.set(), srv.close()))

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                req = b""
                try:
                    while b"\r\n\r\n" not in req and len(req) < 16384:
                        d = conn.recv(4096)
                        if not d:
                            break
                        req += d
                    key = [ln.split(b":", 1)[1].strip() for ln in req.split(b"\r\n")
                           if ln.lower().startswith(b"sec-websocket-key:")][0]
                    acc = base64.b64encode(hashlib.sha1(
                        key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
                    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + acc +
                                 b"\r\n\r\n")
                    msg = b'{"jsonrpc":"2.0","method":"initialized"}'
                    conn.sendall(bytes([0x81, len(msg)]) + msg)  # one text frame
                    conn.recv(4096)
                except (OSError, IndexError):
                    pass
    th = threading.Thread(target=serve, daemon=True)
    th.start()
    home = make_home(ctx, environments='[[environments]]\nid = "cx"\nurl = "ws://127.0.0.1:%d"\n'
                     % port, tokens={"cx": random_token()})
    o = Orchestrator(ctx, home, mode="unix")
    c = o.connect()
    st = wait_status(c, "cx", lambda s: "Codex exec-server is not one" in (s.get("error") or ""),
                     20, "the status to say a ws:// url names a tandem executor")
    check(st["status"] != "ready", "a Codex exec-server is not ready: %r" % st)
    wait_status(c, "local", lambda s: s["status"] == "ready", 20, "the rest of the file used")
    return "# %s" % st["error"]


def t_dial_in_ws(ctx):
    return dial_in_over(ctx, "ws")


def t_dial_in_tls(ctx):
    return dial_in_over(ctx, "tls+tcp")


def t_dial_in_wss(ctx):
    return dial_in_over(ctx, "wss")


# ---- the cap, remove, backoff --------------------------------------------------

def dead_url():
    """A loopback port that refuses (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "tcp://127.0.0.1:%d" % port


def t_cap_remove_backoff(ctx):
    o = Orchestrator(ctx, make_home(ctx), mode="unix", log_level="info")
    c = o.connect()
    c.wait_env("local")
    url = dead_url()
    accepted, refused, msg = 0, 0, ""
    t0 = time.monotonic()
    for i in range(3000):
        try:
            c.call("environment/add", {"environmentId": "d%d" % i, "execServerUrl": url})
            accepted += 1
        except RpcError as e:
            refused += 1
            msg = e.message
    add_s = time.monotonic() - t0
    lst = c.call("environment/list")
    check_eq(lst["max"], 1000, "the default cap")
    check_eq(lst["count"], 1000, "environments after 3,000 adds")
    check_eq(accepted, 999, "adds accepted (local counts)")
    check_eq(refused, 2001, "adds refused")
    check("cap" in msg and "--max-environments" in msg, "the refusal names the cap: %r" % msg)
    # remove frees a slot; removed is gone; local and unknown cannot be removed.
    c.call("environment/remove", {"environmentId": "d5"})
    check_eq(status(c, "d5")["status"], "unknown", "a removed environment")
    c.call("environment/add", {"environmentId": "again", "execServerUrl": url})
    err = c.call_error("environment/add", {"environmentId": "more", "execServerUrl": url})
    check("cap" in err.get("message", ""), "full again: %r" % err)
    for eid in ("local", "nope"):
        c.call_error("environment/remove", {"environmentId": eid})
    # A dead address is tried less and less often: after ~12 s the delay is
    # past the old 2 s ceiling and the attempts are few.
    st = wait_status(c, "d1", lambda s: s.get("redialDelayMs", 0) > 2000, 30,
                     "the redial delay of a dead address to grow past 2 s")
    check(st["dialAttempts"] <= 14, "attempts on a dead address: %r" % st)
    check(st["status"] != "ready" and "unreachable" in (st.get("error") or ""),
          "the dead one's status says why: %r" % st)
    c.call("environment/remove", {"environmentId": "d1"})
    return ("# 3,000 adds in %.2f s (999 accepted); a dead address: %d attempts, delay %d ms "
            "after it grew past 2 s" % (add_s, st["dialAttempts"], st["redialDelayMs"]))


def t_fd_exhaustion_reported(ctx):
    """An orchestrator whose hard open-file limit is 80: 120 environments
    whose address accepts connections but never answers hold a descriptor
    each; the ones that find none say "out of file descriptors", are not left
    pending, and nothing says "Input/output error"."""
    if not shutil.which("prlimit"):
        return "SKIP prlimit(1) is missing"
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(1024)  # never accepts: the kernel completes the connections
    ctx.closers.append(lst.close)
    url = "tcp://127.0.0.1:%d" % lst.getsockname()[1]
    o = Orchestrator(ctx, make_home(ctx), mode="unix", log_level="info",
                     wrapper=["prlimit", "--nofile=80:80"], args=["--ephemeral"])
    c = o.connect()
    c.wait_env("local")
    for i in range(120):
        c.call("environment/add", {"environmentId": "f%d" % i, "execServerUrl": url,
                                   "connectTimeoutMs": 60000})

    def exhausted():
        return [e for e in c.call("environment/list")["data"]
                if "out of file descriptors" in (e.get("error") or "")]
    got = wait_until(exhausted, 20, "an environment to report fd exhaustion")
    check(all(e["status"] == "disconnected" for e in got), "reported but pending: %r" % got[:2])
    errs = [e.get("lastError") or "" for e in c.call("environment/list")["data"]]
    check(not any("Input/output" in e for e in errs), "an I/O error: %r" %
          [e for e in errs if "Input/output" in e][:2])
    return "# %d of 120 environments reported: %s" % (len(got), got[0]["error"][:120])


def t_declared_over_cap_refused(ctx):
    envs = "".join('[[environments]]\nid = "e%d"\nurl = "tcp://127.0.0.1:1"\n' % i
                   for i in range(3))
    o = Orchestrator(ctx, make_home(ctx, environments=envs), mode="unix",
                     args=["--max-environments", "3"])
    rc = o.proc.wait(timeout=20)
    check(rc != 0, "an orchestrator over its cap started")
    check("more than the cap of 3" in o.stderr_text(), "the reason: %s" % o.stderr_text()[-500:])
    # At the cap exactly it starts (3 = 2 entries + local).
    envs = envs.split("[[environments]]")
    o2 = Orchestrator(ctx, make_home(ctx, environments="[[environments]]".join(envs[:3]),
                                     name="home2"),
                      mode="unix", args=["--max-environments", "3"], label="orch2")
    c = o2.connect()
    check_eq(c.call("environment/list")["count"], 3, "environments at the cap")


# ---- re-attach after kill -9 -------------------------------------------------------

def t_reattach_after_kill9(ctx):
    exs = [Executor(ctx, "r%d" % i, extra_args=["--grace-sec", "60"]) for i in range(3)]
    envs = "".join('[[environments]]\nid = "r%d"\nurl = %s\n' % (i, toml_str(x.url))
                   for i, x in enumerate(exs))
    home = make_home(ctx, environments=envs,
                     tokens={"r%d" % i: x.token for i, x in enumerate(exs)})
    plugins = [make_plugin(ctx, "rp%d" % i, {"rs%d" % i: {}}) for i in range(3)]
    a = Orchestrator(ctx, home, mode="unix", label="orch-a", args=["--ephemeral"])
    ca = a.connect()
    before, info = {}, {}
    for i in range(3):
        ca.wait_env("r%d" % i)
        t = ca.start_thread([root("rp%d" % i, "r%d" % i, plugins[i])])
        echo(ca, t, "rs%d" % i, "before")
        info[i] = ca.status(t)["rs%d" % i]["serverInfo"]
        check(info[i] and info[i].get("name"), "serverInfo before: %r" % info[i])
        before[i] = sorted(fixture_pids(exs[i].pid))
        check_eq(len(before[i]), 1, "servers on executor r%d" % i)
    a.proc.kill()  # kill -9: no MCP_STOP, the executors keep their servers
    a.proc.wait(timeout=10)
    for i in range(3):
        wait_until(lambda i=i: LOST in read_log(exs[i].proc), 15,
                   "r%d to see the orchestrator go" % i)
    b = Orchestrator(ctx, home, mode="unix", label="orch-b", args=["--ephemeral"])
    cb = b.connect()
    t0 = time.monotonic()
    for i in range(3):
        cb.wait_env("r%d" % i)
        t = cb.start_thread([root("rp%d" % i, "r%d" % i, plugins[i])])
        echo(cb, t, "rs%d" % i, "after the restart")
        check_eq(sorted(fixture_pids(exs[i].pid)), before[i], "servers on r%d (same pids)" % i)
        # no initialize again, yet what the first one said is known (MCP_NOTE)
        check_eq(cb.status(t)["rs%d" % i]["serverInfo"], info[i], "serverInfo re-attached")
    took = time.monotonic() - t0
    k = cb.counters()
    check_eq(k.get("serverReattaches"), 3, "servers re-attached")
    check_eq(k.get("serverStarts"), 0, "servers started anew")
    return "# 3 servers re-attached, first calls done %.2f s after the new orchestrator" % took


def t_reattach_beyond_hello_list(ctx, n=80):
    """More detached servers than a HELLO reply lists (PROTO_MAX_LIVE, 64):
    the executor says there are more, and a new orchestrator re-attaches
    the rest by identity (MCP_ATTACH without a handle): all n keep their
    pids, none is started anew."""
    x = Executor(ctx, "many", extra_args=["--grace-sec", "120"])
    home = make_home(ctx, environments='[[environments]]\nid = "many"\nurl = %s\n' %
                     toml_str(x.url), tokens={"many": x.token})
    names = ["s%02d" % i for i in range(n)]
    p = make_plugin(ctx, "mp", {name: {"sandbox": "off"} for name in names})

    def all_connected(c, t):
        st = c.status(t, timeout=30)
        return all(st.get(name, {}).get("runtimeStatus") == "connected" for name in names)
    a = Orchestrator(ctx, home, mode="unix", label="orch-a", args=["--ephemeral"])
    ca = a.connect()
    ca.wait_env("many")
    t = ca.start_thread([root("mp", "many", p)])
    wait_until(lambda: all_connected(ca, t), 120, "%d servers on one executor" % n)
    before = sorted(fixture_pids(x.pid))
    check_eq(len(before), n, "servers on the executor")
    a.proc.kill()  # kill -9: no MCP_STOP, the executor keeps its servers
    a.proc.wait(timeout=10)
    wait_until(lambda: LOST in read_log(x.proc), 15, "the executor to see the orchestrator go")
    b = Orchestrator(ctx, home, mode="unix", label="orch-b", args=["--ephemeral"])
    cb = b.connect()
    cb.wait_env("many")
    t0 = time.monotonic()
    t = cb.start_thread([root("mp", "many", p)])
    wait_until(lambda: all_connected(cb, t), 120, "the %d servers after the restart" % n)
    took = time.monotonic() - t0
    check("more detached servers than a HELLO reply lists" in read_log(x.proc),
          "the executor said it kept more than it listed")
    echo(cb, t, names[0], "the newest")
    echo(cb, t, names[-1], "the oldest")
    check_eq(sorted(fixture_pids(x.pid)), before, "servers (same pids)")
    k = cb.counters()
    check_eq(k.get("serverReattaches"), n, "servers re-attached")
    check_eq(k.get("serverStarts"), 0, "servers started anew")
    return "# %d servers re-attached (64 listed, the rest by identity) in %.2f s" % (n, took)


def t_resumed_thread_reattaches(ctx):
    """A durable thread resumed by a new orchestrator after kill -9 takes
    over the server its executor kept (same pid, no new start)."""
    x = Executor(ctx, "dur", extra_args=["--grace-sec", "60"])
    home = make_home(ctx, environments='[[environments]]\nid = "dur"\nurl = %s\n' %
                     toml_str(x.url), tokens={"dur": x.token})
    p = make_plugin(ctx, "dp", {"ds": {}})
    a = Orchestrator(ctx, home, mode="unix", label="orch-a")
    ca = a.connect()
    ca.wait_env("dur")
    tid = ca.start_thread([root("dp", "dur", p)])
    echo(ca, tid, "ds", "before")
    pids = sorted(fixture_pids(x.pid))
    check_eq(len(pids), 1, "servers on the executor")
    a.proc.kill()
    a.proc.wait(timeout=10)
    wait_until(lambda: LOST in read_log(x.proc), 15, "the executor to see the orchestrator go")
    b = Orchestrator(ctx, home, mode="unix", label="orch-b")
    c = b.connect()
    c.wait_env("dur")
    c.call("thread/resume", {"threadId": tid})
    echo(c, tid, "ds", "after the resume")
    check_eq(sorted(fixture_pids(x.pid)), pids, "the server's pid after the resume")
    k = c.counters()
    check_eq((k.get("serverReattaches"), k.get("serverStarts")), (1, 0),
             "(re-attached, started) servers")


def t_shutdown_with_hung_executors(ctx):
    """SIGTERM with 20 executors that stopped answering (SIGSTOP): the
    links close together, the orchestrator exits well within its bound."""
    exs = [Executor(ctx, "h%d" % i) for i in range(20)]
    envs = "".join('[[environments]]\nid = "h%d"\nurl = %s\n' % (i, toml_str(x.url))
                   for i, x in enumerate(exs))
    home = make_home(ctx, environments=envs,
                     tokens={"h%d" % i: x.token for i, x in enumerate(exs)})
    o = Orchestrator(ctx, home, mode="unix", log_level="info", args=["--ephemeral"])
    c = o.connect()
    p = make_plugin(ctx, "hp", {"hs": {}})
    for i in range(20):
        c.wait_env("h%d" % i)
        echo(c, c.start_thread([root("hp%d" % i, "h%d" % i, p)]), "hs", "x")
    for x in exs:
        os.kill(x.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        rc = o.stop(timeout=20)
        took = time.monotonic() - t0
    finally:
        for x in exs:
            os.kill(x.pid, signal.SIGCONT)
    check_eq(rc, 0, "exit status")
    return "# SIGTERM to exit with 20 hung executors: %.2f s" % took


def t_cap_detached_and_retry(ctx):
    """--max-processes 1: a server kept detached from a killed orchestrator
    does not block a new start; a start refused by the cap is tried again
    when the cap frees (no call needed)."""
    x = Executor(ctx, "cap", extra_args=["--max-processes", "1", "--grace-sec", "60"])
    home = make_home(ctx, environments='[[environments]]\nid = "cap"\nurl = %s\n' %
                     toml_str(x.url), tokens={"cap": x.token})
    ps = [make_plugin(ctx, "cp%d" % i, {"cs%d" % i: {}}) for i in range(3)]
    a = Orchestrator(ctx, home, mode="unix", label="orch-a", args=["--ephemeral"])
    ca = a.connect()
    ca.wait_env("cap")
    echo(ca, ca.start_thread([root("cp0", "cap", ps[0])]), "cs0", "first")
    a.proc.kill()
    a.proc.wait(timeout=10)
    wait_until(lambda: LOST in read_log(x.proc), 15, "the executor to see the orchestrator go")
    b = Orchestrator(ctx, home, mode="unix", label="orch-b", args=["--ephemeral"])
    c = b.connect()
    c.wait_env("cap")
    t1 = c.start_thread([root("cp1", "cap", ps[1])])
    echo(c, t1, "cs1", "a new server beside the detached one")
    t2 = c.start_thread([root("cp2", "cap", ps[2])])
    try:
        c.tool(t2, "cs2", "echo", {"message": "over the cap"})
        raise TestFailure("a second attached server started under --max-processes 1")
    except RpcError:
        pass
    st = c.status(t2).get("cs2", {})
    check("cap" in (st.get("toolsError") or ""), "cs2's status names the cap: %r" % st)
    mark = len(c.notifications)
    try:
        c.tool(t1, "cs1", "crash", {})
    except RpcError:
        pass
    # cs2 comes up by itself once cs1's process is gone.
    c.wait_notification(lambda n: n["method"] == "mcpServer/startupStatus/updated" and
                        n["params"].get("name") == "cs2" and
                        n["params"].get("status") == "ready", timeout=20,
                        what="cs2 ready after the cap freed", start=mark)
    echo(c, t2, "cs2", "after the cap freed")
    # Detached and attached stay under twice the cap: after a second kill -9
    # two servers are kept (cs0 from the first orchestrator, cs2); a new
    # start stops the oldest kept one early and gets in.
    kept0 = fixture_pids(x.pid)
    b.proc.kill()
    b.proc.wait(timeout=10)
    wait_until(lambda: read_log(x.proc).count(LOST) >= 2, 15, "the second orchestrator to go")
    d = Orchestrator(ctx, home, mode="unix", label="orch-c", args=["--ephemeral"])
    cd = d.connect()
    cd.wait_env("cap")
    t3 = cd.start_thread([root("cp1", "cap", ps[1])])

    def cs1_up():
        try:
            return echo(cd, t3, "cs1", "past twice the cap")
        except RpcError:
            return False
    wait_until(cs1_up, 20, "cs1 to start once the oldest kept server was stopped")
    check("stopped early to make room" in read_log(x.proc), "the executor says why")
    check(len(fixture_pids(x.pid)) <= 2, "servers alive: %r (kept before: %r)" %
          (fixture_pids(x.pid), kept0))


# ---- dial-out through NAT -------------------------------------------------------------

def run(cmd):
    return subprocess.call(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0


class NatLab:
    """Three network namespaces made here: the orchestrator's (flo), a
    router (flr) and the executor's (flx). The executor's only route is its
    default route through the router, which masquerades what leaves towards
    the orchestrator and forwards no new connection the other way: the
    executor can dial out, nothing can dial in to it."""

    def __init__(self, ctx):
        t = ctx.tag[-6:]
        self.o, self.r, self.x = "flo-" + t, "flr-" + t, "flx-" + t
        n = os.getpid() % 200 + 20
        self.onet, self.xnet = "10.240.%d" % n, "10.241.%d" % n
        self.orch_addr, self.exec_addr = self.onet + ".2", self.xnet + ".2"
        self.why = None
        if os.geteuid() != 0 or not shutil.which("ip"):
            self.why = "needs root and ip(8)"
            return
        if not shutil.which("nft"):
            self.why = "needs nft(8) (deploy/local/lib.sh installs nftables)"
            return
        made = []
        ctx.closers.append(lambda: [run(["ip", "netns", "del", ns]) for ns in made])
        ro, rx = "flro" + t, "flrx" + t
        cmds = []
        for ns in (self.o, self.r, self.x):
            if not run(["ip", "netns", "add", ns]):
                self.why = "cannot make network namespace %s" % ns
                return
            made.append(ns)
            cmds.append(["ip", "-n", ns, "link", "set", "lo", "up"])
        cmds += [
            ["ip", "-n", self.r, "link", "add", ro, "type", "veth", "peer", "name", "eth0",
             "netns", self.o],
            ["ip", "-n", self.r, "link", "add", rx, "type", "veth", "peer", "name", "eth0",
             "netns", self.x],
            ["ip", "-n", self.r, "addr", "add", self.onet + ".1/24", "dev", ro],
            ["ip", "-n", self.r, "addr", "add", self.xnet + ".1/24", "dev", rx],
            ["ip", "-n", self.r, "link", "set", ro, "up"],
            ["ip", "-n", self.r, "link", "set", rx, "up"],
            ["ip", "-n", self.o, "addr", "add", self.orch_addr + "/24", "dev", "eth0"],
            ["ip", "-n", self.o, "link", "set", "eth0", "up"],
            ["ip", "-n", self.x, "addr", "add", self.exec_addr + "/24", "dev", "eth0"],
            ["ip", "-n", self.x, "link", "set", "eth0", "up"],
            ["ip", "-n", self.x, "route", "add", "default", "via", self.xnet + ".1"],
            ["ip", "netns", "exec", self.r, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
        ]
        for cmd in cmds:
            if not run(cmd):
                self.why = "setting up the namespaces failed at: %s" % " ".join(cmd)
                return
        rules = """
table ip fl {
  chain nat_out { type nat hook postrouting priority 100; oifname "%s" masquerade; }
  chain forward_in { type filter hook forward priority 0; policy drop;
    ct state established,related accept;
    iifname "%s" oifname "%s" accept; }
}
""" % (ro, rx, ro)
        p = subprocess.run(["ip", "netns", "exec", self.r, "nft", "-f", "-"], input=rules.encode(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if p.returncode != 0:
            raise TestFailure("nft failed: %s" % p.stderr.decode(errors="replace").strip())

    def connects(self, ns, addr, port, timeout=2):
        """Whether a TCP connection from namespace ns to addr:port opens."""
        code = ("import socket,sys\ntry:\n socket.create_connection((%r,%d),timeout=%d)\n"
                "except OSError as e:\n print(e); sys.exit(1)" % (addr, port, timeout))
        return subprocess.call(["ip", "netns", "exec", ns, sys.executable, "-c", code],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) == 0


def t_dial_out_through_nat(ctx):
    lab = NatLab(ctx)
    if lab.why:
        return "SKIP dial-out through NAT: %s" % lab.why
    tok = random_token()
    home = make_home(ctx, tokens={"natx": tok})
    o = Orchestrator(ctx, home, mode="unix", wrapper=["ip", "netns", "exec", lab.o],
                     args=["--executor-listen", "tcp://0.0.0.0:0"])
    c = o.connect()
    port = listen_port(o)
    # The executor can reach the orchestrator; nothing reaches the executor.
    check(lab.connects(lab.x, lab.orch_addr, port), "the executor's namespace cannot reach "
          "the orchestrator's listener")
    probe = subprocess.Popen(["ip", "netns", "exec", lab.x, sys.executable, "-c",
                              "import socket,time\ns=socket.socket()\n"
                              "s.bind(('0.0.0.0',7911))\ns.listen()\ntime.sleep(30)"])
    try:
        time.sleep(0.3)
        check(not lab.connects(lab.o, lab.exec_addr, 7911), "the orchestrator's namespace "
              "reached a listener in the executor's (the NAT lets connections in)")
    finally:
        probe.kill()
        probe.wait()
    x = DialExecutor(ctx, "natx", "tcp://%s:%d" % (lab.orch_addr, port), tok, netns=lab.x)
    st = wait_status(c, "natx", lambda s: s["status"] == "ready", 30,
                     "the executor behind NAT to dial in")
    check_eq(st["direction"], "dialled in", "direction")
    check(st.get("sealed"), "the link is sealed: %r" % st)
    p = make_plugin(ctx, "np", {"nsrv": {}})
    t = c.start_thread([root("np", "natx", p)])
    for i in range(5):
        echo(c, t, "nsrv", "call %d through the NAT" % i)
    return "# executor in %s behind %s dialled %s:%d; 5 calls" % (lab.x, lab.r, lab.orch_addr, port)


# ---- the fleet ---------------------------------------------------------------------------

def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def nthreads(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def t_fleet_100(ctx, n=100):
    """n executors, half on url entries (abstract sockets), half dialling in;
    n threads, each with a root on its own executor, one call each."""
    half = n // 2
    urls = [Executor(ctx, "u%d" % i) for i in range(half)]
    tokens = {"u%d" % i: x.token for i, x in enumerate(urls)}
    dial_tokens = {"d%d" % i: random_token() for i in range(n - half)}
    tokens.update(dial_tokens)
    envs = "".join('[[environments]]\nid = "u%d"\nurl = %s\n' % (i, toml_str(x.url))
                   for i, x in enumerate(urls))
    home = make_home(ctx, environments="include_local = false\n" + envs, tokens=tokens)
    t0 = time.monotonic()
    o = Orchestrator(ctx, home, mode="unix", log_level="info", args=[
        "--executor-listen", "tcp://127.0.0.1:0", "--ephemeral"])
    c = o.connect()
    url = "tcp://127.0.0.1:%d" % listen_port(o)
    dials = [DialExecutor(ctx, eid, url, tok, extra_args=["--log-level", "info"])
             for eid, tok in dial_tokens.items()]
    ids = ["u%d" % i for i in range(half)] + list(dial_tokens)

    def all_ready():
        lst = c.call("environment/list")["data"]
        return sum(1 for e in lst if e["status"] == "ready") == n
    wait_until(all_ready, 60, "%d environments to be ready" % n, interval=0.05)
    ready_s = time.monotonic() - t0
    lst = {e["environmentId"]: e for e in c.call("environment/list")["data"]}
    check_eq(sorted(lst), sorted(ids), "the environments")
    dirs = {}
    for e in lst.values():
        dirs[e["direction"]] = dirs.get(e["direction"], 0) + 1
    check_eq(dirs, {"dialled": half, "dialled in": n - half}, "directions")
    p = make_plugin(ctx, "fp", {"fsrv": {}})
    threads = [c.start_thread([root("fp-" + eid, eid, p)]) for eid in ids]
    t1 = time.monotonic()
    for t in threads:
        echo(c, t, "fsrv", "fleet")
    calls_s = time.monotonic() - t1
    pids = set()
    for x in urls:
        pids.update(fixture_pids(x.pid))
    for x in dials:
        pids.update(fixture_pids(x.pid))
    check_eq(len(pids), n, "servers, one per executor")
    rss, thr = rss_kib(o.pid), nthreads(o.pid)
    t2 = time.monotonic()
    rc = o.stop(timeout=30)
    stop_s = time.monotonic() - t2
    check_eq(rc, 0, "the orchestrator's exit status")
    return ("# %d executors (%d url, %d dial-in) ready %.2f s after the orchestrator started; "
            "%d threads' first calls (server starts) %.2f s; orchestrator RSS %d KiB, %d threads; "
            "SIGTERM to exit %.2f s" % (n, half, n - half, ready_s, n, calls_s, rss, thr, stop_s))


TESTS = [
    ("fd_exhaustion_reported", t_fd_exhaustion_reported),
    ("resumed_thread_reattaches", t_resumed_thread_reattaches),
    ("shutdown_with_hung_executors", t_shutdown_with_hung_executors),
    ("cap_detached_and_retry", t_cap_detached_and_retry),
    ("fleet_100", t_fleet_100),
    ("dial_out_through_nat", t_dial_out_through_nat),
    ("reattach_after_kill9", t_reattach_after_kill9),
    ("reattach_beyond_hello_list", t_reattach_beyond_hello_list),
    ("dial_in", t_dial_in),
    ("dial_in_ws", t_dial_in_ws),
    ("dial_in_tls", t_dial_in_tls),
    ("dial_in_wss", t_dial_in_wss),
    ("dialled_ws", t_dialled_ws),
    ("dialled_tcp_by_name", t_dialled_tcp_by_name),
    ("codex_exec_server_url", t_codex_exec_server_url),
    ("dialled_tls", t_dialled_tls),
    ("dialled_wss", t_dialled_wss),
    ("cap_remove_backoff", t_cap_remove_backoff),
    ("declared_over_cap_refused", t_declared_over_cap_refused),
]

if __name__ == "__main__":
    sys.exit(run_suite(TESTS))
