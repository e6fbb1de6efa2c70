#!/usr/bin/env python3
"""test_ops - the operations endpoint and JSON logs of the real daemons.

An orchestrator dials a standalone executor declared `required = true` in
environments.toml; both serve --metrics-listen 127.0.0.1:0 and log JSON.
/readyz follows the required environment (200, 503 naming it when its
executor stops, 200 again when it returns); /metrics of both daemons is
parsed by a strict 0.0.4 parser (tests/unit/promparse.py) and cross-checked
with prometheus_client's parser; every stderr line of both daemons (and of a
spawned local executor) is a JSON object with the documented keys, and no
token appears in any of them.
"""

import json
import os
import signal
import socket
import sys
import urllib.error
import urllib.request

from tandem_testlib import (EXECUTOR, ORCHESTRATOR, Executor, RpcClient, TestFailure, check,
                            check_eq, make_home, make_plugin, random_token, root, run_suite,
                            toml_str, wait_until)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "unit"))
import promparse  # noqa: E402
from tandem_testlib import Orchestrator  # noqa: E402
from test_turns import API_KEY, Fake, home_for, run_turn  # noqa: E402

OPS_ARGS = ["--metrics-listen", "127.0.0.1:0", "--log-format", "json"]
JSON_KEYS = ("time", "level", "daemon", "module", "message", "fields")


def http(addr, path, method="GET"):
    """(status, body) of one request to the operations endpoint."""
    req = urllib.request.Request("http://%s%s" % (addr, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode(), r.headers.get("Content-Type")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers.get("Content-Type")


def json_lines(path):
    """Every stderr line parsed; a line that is not a JSON object fails."""
    out = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f.read().decode("utf-8").splitlines(), 1):
            try:
                obj = json.loads(raw)
            except ValueError:
                raise TestFailure("%s:%d is not JSON: %r" % (path, n, raw[:200]))
            check(isinstance(obj, dict) and all(k in obj for k in JSON_KEYS),
                  "%s:%d lacks a documented key: %r" % (path, n, raw[:200]))
            check(isinstance(obj["fields"], dict) and "func" in obj["fields"],
                  "%s:%d: fields without func" % (path, n))
            out.append(obj)
    return out


def ops_address(path, daemon):
    """The address the daemon logged for its operations endpoint."""
    def find():
        try:
            lines = json_lines(path)
        except (OSError, TestFailure):
            return None
        for o in lines:
            if o["daemon"] == daemon and "address" in o["fields"]:
                return o["fields"]["address"]
        return None
    return wait_until(find, 20, "%s to log its operations address" % daemon)


def scrape(addr):
    status, body, ctype = http(addr, "/metrics")
    check_eq(status, 200, "/metrics status")
    check_eq(ctype, "text/plain; version=0.0.4; charset=utf-8", "/metrics content type")
    try:
        fams = promparse.parse(body)
        cc = promparse.cross_check(body)
    except ValueError as e:
        raise TestFailure("the scrape of %s does not parse: %s" % (addr, e))
    samples = promparse.flat(fams)
    if cc is None:
        print("# SKIP cross-check: python3-prometheus-client is not installed")
    else:
        check_eq(cc, len(samples), "samples seen by prometheus_client")
    return samples


class Orch:
    """An orchestrator on a unix socket with the operations endpoint."""

    def __init__(self, ctx, home, extra=(), env=None, label="orchestrator"):
        self.sock = ctx.path("%s.sock" % label)
        argv = [ORCHESTRATOR, "--home", home, "--executor", EXECUTOR, "--listen",
                "unix://" + self.sock] + list(extra)
        penv = dict(os.environ)
        penv.pop("TANDEM_LOG_FORMAT", None)
        penv.update(env or {})
        self.proc = ctx.popen(argv, label, env=penv)
        self.stderr = self.proc.stderr_path
        self.clients = []
        ctx.closers.append(lambda: [c.close() for c in self.clients])

    def connect(self):
        wait_until(lambda: os.path.exists(self.sock), 20, "the client socket")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.sock)
        c = RpcClient(s.makefile("rb"), s.makefile("wb"), "client",
                      on_close=lambda: s.shutdown(socket.SHUT_RDWR))
        c.initialize("test-ops")
        self.clients.append(c)
        return c


def setup(ctx, required=True, include_local=False):
    token = random_token()
    ex = Executor(ctx, "gpu", token=token, extra_args=OPS_ARGS)
    envs = "include_local = %s\n\n[[environments]]\nid = \"gpu\"\nurl = %s\n" % (
        "true" if include_local else "false", toml_str(ex.url))
    if required:
        envs += "required = true\n"
    home = make_home(ctx, environments=envs, tokens={"gpu": token})
    orch = Orch(ctx, home, OPS_ARGS)
    return ex, orch, home, token


def test_readyz_follows_required_environment(ctx):
    ex, orch, home, token = setup(ctx)
    oaddr = ops_address(orch.stderr, "tandem-orchestrator")
    eaddr = ops_address(ex.proc.stderr_path, "tandem-executor")
    check_eq(http(oaddr, "/livez")[:2], (200, "ok\n"), "orchestrator /livez")
    check_eq(http(eaddr, "/readyz")[:2], (200, "ready\n"), "executor /readyz")
    wait_until(lambda: http(oaddr, "/readyz")[0] == 200, 30, "the orchestrator to be ready")
    check_eq(scrape(oaddr)['tandem_environments{state="ready"}'], 1, "ready environments")
    check_eq(scrape(oaddr)["tandem_ready"], 1, "tandem_ready")

    ex.stop()
    st = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(http(oaddr, "/readyz")), 30,
                    "/readyz to turn 503 after the executor stopped")
    check("required environment 'gpu'" in st[1], "the reason names the environment: %r" % st[1])
    check_eq(http(oaddr, "/livez")[0], 200, "/livez while not ready")
    m = scrape(oaddr)
    check_eq(m["tandem_ready"], 0, "tandem_ready while not ready")
    check_eq(m['tandem_environments{state="ready"}'], 0, "ready environments after the stop")

    ex2 = Executor(ctx, "gpu", token=token, extra_args=OPS_ARGS)
    wait_until(lambda: http(oaddr, "/readyz")[0] == 200, 60,
               "/readyz to be 200 again after the executor returned")
    # A new executor: a fresh session, ready again after a loss.
    check(scrape(oaddr)["tandem_link_reconnects_total"] >= 1, "the reconnect counted")
    ex2.stop()


def test_not_required_environment_does_not_block(ctx):
    ex, orch, home, token = setup(ctx, required=False)
    oaddr = ops_address(orch.stderr, "tandem-orchestrator")
    ex.stop()
    c = orch.connect()
    wait_until(lambda: c.env_status("gpu")["status"] != "ready", 30, "gpu to drop")
    check_eq(http(oaddr, "/readyz")[:2], (200, "ready\n"), "/readyz without required envs")


def test_scrapes_parse_and_count(ctx):
    ex, orch, home, token = setup(ctx)
    oaddr = ops_address(orch.stderr, "tandem-orchestrator")
    eaddr = ops_address(ex.proc.stderr_path, "tandem-executor")
    c = orch.connect()
    c.wait_env("gpu")
    plugin = make_plugin(ctx, "p1", {"s1": {}})
    tid = c.start_thread([root("p1", "gpu", plugin)])
    wait_until(lambda: c.status(tid).get("s1", {}).get("tools"), 20, "s1's tools")
    c.tool(tid, "s1", "echo", {"message": "hi"})

    o, e = scrape(oaddr), scrape(eaddr)
    check_eq(o['tandem_build_info{daemon="tandem-orchestrator",version="0.1.0"}'], 1,
             "orchestrator build info")
    check_eq(e['tandem_build_info{daemon="tandem-executor",version="0.1.0"}'], 1,
             "executor build info")
    check_eq(e["tandem_mcp_processes"], 1, "live MCP processes on the executor")
    check(o["process_resident_memory_bytes"] > 1 << 20, "orchestrator RSS exported")
    check(e["process_open_fds"] > 3, "executor fds exported")
    for side, m in (("orchestrator", o), ("executor", e)):
        for d in ("sent", "received"):
            check(m['tandem_link_frames_total{direction="%s"}' % d] > 0 and
                  m['tandem_link_bytes_total{direction="%s"}' % d] > 0,
                  "%s: link frames %s counted" % (side, d))
    # Something that is no orchestrator: refused in the handshake, counted.
    refused = e.get('tandem_link_handshake_refusals_total{reason="malformed"}', 0)
    check(ex.url.startswith("abstract://"), "the executor's address: %s" % ex.url)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as junk:
        junk.settimeout(5)
        junk.connect("\0" + ex.url[len("abstract://"):])
        junk.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 4)
        try:
            junk.recv(4096)
        except OSError:
            pass
    wait_until(lambda: scrape(eaddr).get('tandem_link_handshake_refusals_total{reason='
                                         '"malformed"}', 0) > refused, 15,
               "the executor to count the junk connection's refusal")
    before = o['tandem_ops_requests_total{path="/metrics"}']
    check_eq(scrape(oaddr)['tandem_ops_requests_total{path="/metrics"}'], before + 1,
             "the scrape counter counts scrapes")
    for name in o:
        check("tmp" not in name and tid not in name, "no path or thread id in %s" % name)
    c.close()


def test_domain_counters(ctx):
    """The events the domain counts, each once where it ends: client
    requests by method and outcome, a turn and its model requests, tool
    calls by outcome (a turn's and a direct one; an isError result), and an
    MCP server's restart after its process was killed."""
    script = {"steps": [
        {"tool_calls": [{"namespace": "mcp__s1", "name": "echo",
                         "arguments": {"message": "from the model"}}]},
        {"reply_text": "done"}]}
    fake = Fake(ctx, script)
    home = home_for(ctx, fake)
    plugin = make_plugin(ctx, "p1", {"s1": {}})
    o = Orchestrator(ctx, home, mode="unix", env={"TANDEM_TEST_API_KEY": API_KEY},
                     extra_args=OPS_ARGS)
    oaddr = ops_address(o.proc.stderr_path, "tandem-orchestrator")
    c = o.connect()
    tid = c.start_thread([root("p1", "local", plugin)])
    wait_until(lambda: c.status(tid).get("s1", {}).get("tools"), 20, "s1's tools")
    before = scrape(oaddr)
    turn, _ = run_turn(c, tid, "call the tool")
    check_eq(turn["status"], "completed", "the turn (%s)" % turn.get("error"))
    c.tool(tid, "s1", "echo", {"message": "direct"})
    bad = c.tool(tid, "s1", "echo", {})  # no message: the fixture's isError result
    check(bad.get("isError") is True, "an isError result: %s" % bad)
    err = c.call_error("no/such/method", {})
    check_eq(err["code"], -32601, "an unknown method")
    after = scrape(oaddr)

    def delta(name, now=None):
        return (now or after).get(name, 0) - before.get(name, 0)
    check_eq(delta('tandem_turns_total{status="completed"}'), 1, "completed turns")
    check_eq(delta("tandem_turn_duration_seconds_count"), 1, "turn durations")
    check_eq(delta('tandem_model_request_duration_seconds_count{outcome="ok"}'), 2,
             "model requests")
    check_eq(delta('tandem_tool_calls_total{outcome="ok"}'), 2, "tool calls that succeeded")
    check_eq(delta('tandem_tool_call_duration_seconds_count{outcome="ok"}'), 2,
             "tool call durations")
    check_eq(delta('tandem_tool_calls_total{outcome="tool_error"}'), 1, "isError results")
    check_eq(delta('tandem_client_requests_total{method="turn/start",outcome="ok"}'), 1,
             "turn/start answered")
    check_eq(delta('tandem_client_requests_total{method="mcpServer/tool/call",outcome="ok"}'),
             2, "mcpServer/tool/call answered")
    check_eq(delta('tandem_client_requests_total{method="other",'
                   'outcome="method_not_found"}'), 1, "the unknown method")
    # A server that dies mid-call: the call failed, and the next call
    # restarts the server (counted once).
    c.call_error("mcpServer/tool/call", {"threadId": tid, "server": "s1", "tool": "crash",
                                         "arguments": {}})
    wait_until(lambda: c.tool(tid, "s1", "echo", {"message": "again"}).get("isError") is False,
               30, "a call after the restart")
    last = scrape(oaddr)
    check_eq(delta('tandem_tool_calls_total{outcome="failed"}', last), 1, "the crashed call")
    check_eq(delta("tandem_mcp_server_restarts_total", last), 1, "restarts")
    c.close()
    o.stop()
    fake.finish()


def test_json_logs_everywhere(ctx):
    """Both daemons and a spawned local executor log JSON; no token leaks."""
    ex, orch, home, token = setup(ctx, include_local=True)
    c = orch.connect()
    c.wait_env("gpu")
    c.wait_env("local")
    c.close()
    orch.proc.send_signal(signal.SIGTERM)
    check_eq(orch.proc.wait(timeout=20), 0, "orchestrator exit status")
    ex.stop()
    olines = json_lines(orch.stderr)
    elines = json_lines(ex.proc.stderr_path)
    daemons = {o["daemon"] for o in olines}
    # ... and its spawner's (orchestrator/spawner.h), which logs at debug only
    # unless something goes wrong
    check_eq(daemons - {"tandem-spawner"}, {"tandem-orchestrator", "tandem-executor"},
             "daemons in the orchestrator's stderr (it carries its spawned executor's)")
    check(any(o["module"] == "orchestrator/env" for o in olines), "modules are source files")
    check(any(o["level"] == "info" for o in elines), "executor info lines")
    for path in (orch.stderr, ex.proc.stderr_path):
        with open(path) as f:
            check(token not in f.read(), "the link token appears in %s" % path)


def test_bad_options_are_refused(ctx):
    home = make_home(ctx, environments="include_local = false\n")
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    busy = "127.0.0.1:%d" % holder.getsockname()[1]
    for args, want in ((["--metrics-listen", "nonsense"], "HOST:PORT"),
                       (["--metrics-listen", busy], "in use"),
                       (["--log-format", "xml"], "--log-format")):
        o = Orch(ctx, home, args, label="bad%d" % len(ctx.procs))
        rc = o.proc.wait(timeout=20)
        check(rc != 0, "%s: exit status %d" % (args, rc))
        with open(o.stderr) as f:
            err = f.read()
        check(want in err, "%s: %r does not say %r" % (args, err, want))
    holder.close()
    rc = ctx.popen([EXECUTOR, "--listen", "abstract://tandem-itest-%s-x" % ctx.tag,
                    "--metrics-listen", "1.2.3"], "exec-bad").wait(timeout=20)
    check(rc != 0, "executor with a bad --metrics-listen exits non-zero")


if __name__ == "__main__":
    sys.exit(run_suite([
        ("readyz follows a required environment", test_readyz_follows_required_environment),
        ("an environment not required does not block readiness",
         test_not_required_environment_does_not_block),
        ("scrapes of both daemons parse and count", test_scrapes_parse_and_count),
        ("the domain's events are counted once each", test_domain_counters),
        ("JSON logs from both daemons, no token", test_json_logs_everywhere),
        ("bad --metrics-listen and --log-format are refused", test_bad_options_are_refused),
    ]))
