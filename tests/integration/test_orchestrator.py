#!/usr/bin/env python3
"""Integration tests of tandem-orchestrator, with real parts only: the real
orchestrator, real tandem-executor processes, the real MCP fixture server and
real sockets. Prints TAP; exits 0 when it ran (meson judges the TAP lines).

Binaries: $TANDEM_ORCHESTRATOR, $TANDEM_EXECUTOR, $MCP_FIXTURE.
Run a subset: test_orchestrator.py 2 4   (numbers or names).
"""

import json
import random
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tandem_testlib import (  # noqa: E402
    EXECUTOR, MCP_FIXTURE, ORCHESTRATOR, REGISTRY, SLEEP_SYSCALLS, Executor, Orchestrator,
    RpcError, Tap, TestFailure, alive, become_subreaper, check, check_eq, check_no_secret_leaks,
    current_syscall,
    descendants, fd_count, fixture_pids, kill_everything_below, make_home, make_plugin,
    proc_table, root, toml_str, wait_until, write_file, run_suite)

FIXTURE_TOOLS = {"echo", "env", "add", "sleep", "crash"}
INVALID_REQUEST, PARSE_ERROR, METHOD_NOT_FOUND, INVALID_PARAMS = -32600, -32700, -32601, -32602


def structured(result, what):
    check(isinstance(result, dict) and isinstance(result.get("structuredContent"), dict),
          "%s: no structuredContent in %r" % (what, result))
    return result["structuredContent"]


def expect_rpc_error(fn, what):
    try:
        r = fn()
    except RpcError as e:
        return e
    raise TestFailure("%s: expected an error, got %r" % (what, r))


def sleeping_fixture(pid):
    return current_syscall(pid) in SLEEP_SYSCALLS


def fixture_with_cwd(under_pid, cwd):
    for pid in fixture_pids(under_pid):
        try:
            if os.path.realpath(os.readlink("/proc/%d/cwd" % pid)) == cwd:
                return pid
        except OSError:
            pass
    return None


# ---- 1 ---------------------------------------------------------------------

def test_framing(ctx):
    home = make_home(ctx, environments="include_local = false\n")
    o = Orchestrator(ctx, home)
    c = o.client

    e = c.call_error("thread/list", {})
    check_eq((e["code"], e["message"]), (INVALID_REQUEST, "Not initialized"),
             "request before initialize")
    e = c.call_error("initialize", {})
    check_eq(e["code"], INVALID_PARAMS, "initialize without clientInfo: code")
    check("clientInfo" in e["message"], "initialize error does not name clientInfo: %r" % e)
    res = c.initialize()
    check(isinstance(res.get("userAgent"), str) and res["userAgent"].startswith("tandem/"),
          "initialize result: %r" % res)
    e = c.call_error("initialize", {"clientInfo": {"name": "again", "version": "1"}})
    check_eq((e["code"], e["message"]), (INVALID_REQUEST, "Already initialized"),
             "second initialize")

    # A malformed line: -32700 with id null, and the session lives on.
    c.send_raw('{"id": 9, "method": "thread/list"')
    resp = c.wait_response(None)
    check_eq(resp["error"]["code"], PARSE_ERROR, "malformed line: code")
    c.send_raw("[1, 2, 3]")
    resp = c.wait_response(None)
    check_eq(resp["error"]["code"], INVALID_REQUEST, "non-object line: code")
    check("data" in c.call("thread/list", {}), "thread/list after bad lines")

    e = c.call_error("no/such/method", {})
    check_eq(e["code"], METHOD_NOT_FOUND, "unknown method: code")
    check("no/such/method" in e["message"], "unknown method not named: %r" % e)

    # Bad params name the field.
    for method, params, field in [
            ("thread/read", {}, "threadId"),
            ("thread/read", {"threadId": 5}, "threadId"),
            ("thread/read", {"threadId": "00000000-0000-4000-8000-000000000000"}, "threadId"),
            ("thread/list", {"limit": 0}, "limit"),
            ("environment/status", {}, "environmentId"),
            ("thread/start", {"selectedCapabilityRoots": 7}, "selectedCapabilityRoots"),
            ("thread/start", {"model": 3}, "model")]:
        e = c.call_error(method, params)
        check_eq(e["code"], INVALID_PARAMS, "%s %s: code" % (method, json.dumps(params)))
        check(field in e["message"], "%s %s: message %r does not name %s" %
              (method, json.dumps(params), e["message"], field))
    c.send_raw('{"id": 41, "method": "thread/list", "params": [1]}')
    e = c.wait_response(41)["error"]
    check(e["code"] == INVALID_PARAMS and "params" in e["message"], "array params: %r" % e)
    tid = c.start_thread()
    e = c.call_error("mcpServer/tool/call", {"threadId": tid, "tool": "echo"})
    check(e["code"] == INVALID_PARAMS and "server" in e["message"], "tool/call w/o server: %r" % e)
    e = c.call_error("mcpServer/tool/call", {"threadId": tid, "server": "x", "tool": "echo",
                                             "arguments": [1]})
    check(e["code"] == INVALID_PARAMS and "arguments" in e["message"], "array arguments: %r" % e)

    # Ids: 0, "0" and a string are echoed unchanged and kept apart.
    for rid in (0, "0", "req-é-1", 2 ** 40):
        c.send("thread/list", {}, id=rid)
    for rid in (0, "0", "req-é-1", 2 ** 40):
        resp = c.wait_response(rid)
        check(type(resp["id"]) is type(rid) and resp["id"] == rid and "result" in resp,
              "id %r echoed as %r" % (rid, resp))
    # "jsonrpc" is accepted on input; a notification gets no answer.
    c.send_raw('{"jsonrpc": "2.0", "id": 77, "method": "thread/list", "params": {}}')
    check("result" in c.wait_response(77), "request carrying jsonrpc")
    before = len(c.raw_lines)
    c.send("thread/list", {}, no_id=True)
    c.send("initialized", no_id=True)
    c.call("thread/list", {})
    check_eq(len(c.raw_lines), before + 1, "lines written for 2 notifications + 1 request")

    # Every output line is one JSON object without "jsonrpc".
    check(not c.bad_lines, "output lines that are not JSON objects: %r" % c.bad_lines[:3])
    bad = [l for l in c.raw_lines if "jsonrpc" in json.loads(l) or '"jsonrpc"' in l]
    check(not bad, '"jsonrpc" written: %r' % bad[:3])


# ---- 2 ---------------------------------------------------------------------

def test_full_scenario(ctx):
    ex2 = Executor(ctx, "exec2")
    home = make_home(ctx, environments="""
[[environments]]
id = "exec1"
program = "tandem-executor"
env = { SCENARIO_SECRET_VALUE = "from-exec1" }

[[environments]]
id = "exec2"
url = %s
""" % toml_str(ex2.url), tokens={"exec2": ex2.token})
    p1 = make_plugin(ctx, "demo-plugin",
                     {"executor_demo": {"env_vars": ["SCENARIO_SECRET_VALUE"]}})
    p2 = make_plugin(ctx, "remote-plugin",
                     {"remote_demo": {"env_vars": ["SCENARIO_SECRET_VALUE"]}})
    # The orchestrator's own value must never reach a child: env_vars are
    # resolved on the executor.
    o = Orchestrator(ctx, home, env={"SCENARIO_SECRET_VALUE": "from-orchestrator"})
    c = o.client
    c.initialize()
    for env_id in ("exec1", "exec2", "local"):
        c.wait_env(env_id)

    a = c.start_thread([root("demo-plugin", "exec1", p1)])
    c.wait_notification(lambda n: n["method"] == "thread/started" and
                        n["params"]["thread"]["id"] == a, what="thread/started for A")
    b = c.start_thread()

    st = c.status(a)
    check("executor_demo" in st, "thread A status lacks executor_demo: %s" % sorted(st))
    demo = st["executor_demo"]
    check(FIXTURE_TOOLS <= set(demo["tools"]), "executor_demo tools: %s" % sorted(demo["tools"]))
    check_eq(demo.get("runtimeStatus"), "connected", "executor_demo runtimeStatus")
    check_eq(demo.get("pluginId"), "demo-plugin", "executor_demo pluginId")
    check_eq((demo.get("serverInfo") or {}).get("name"), "mcp-fixture", "serverInfo.name")
    st_b = c.status(b)
    check("executor_demo" not in st_b, "thread B sees executor_demo: %s" % sorted(st_b))
    check("executor_demo" not in c.status(), "the global view sees executor_demo")

    res = c.tool(a, "executor_demo", "echo", {"message": "hello from A"})
    sc = structured(res, "echo in A")
    check_eq(sc.get("message"), "hello from A", "echo message")
    check_eq(res["content"][0].get("text"), "hello from A", "echo text content")
    check_eq(sc.get("cwd"), p1, "server cwd (defaults to the plugin root)")
    # The answer is relayed from the server's text (no parse, no re-encode):
    # exactly the result's members a client is given, every character kept.
    tricky = 'caf\u00e9 \U0001d11e "quoted" back\\slash \t tab </script> \u2028'
    res = c.tool(a, "executor_demo", "echo", {"message": tricky})
    check_eq(sorted(res), ["content", "isError", "structuredContent"], "answer members")
    check_eq((res["content"][0]["text"], res["structuredContent"]["message"], res["isError"]),
             (tricky, tricky, False), "relayed text")
    check_eq(c.tool(a, "executor_demo", "bare"),
             {"content": [], "structuredContent": {"bare": True}, "_meta": {"n": 1}},
             "a result without content: content [], the server's other members dropped")
    sc = structured(c.tool(a, "executor_demo", "env", {"name": "SCENARIO_SECRET_VALUE"}), "env")
    check_eq(sc.get("value"), "from-exec1", "SCENARIO_SECRET_VALUE seen by the server")
    c.wait_notification(lambda n: n["method"] == "mcpServer/startupStatus/updated" and
                        n["params"].get("threadId") == a and
                        n["params"].get("name") == "executor_demo" and
                        n["params"].get("status") == "ready",
                        what="startupStatus ready for executor_demo in A")
    exec1_pid = o.executor_pid("exec1")
    check(exec1_pid and fixture_pids(exec1_pid), "executor_demo does not run under exec1's "
          "executor (pid %s)" % exec1_pid)

    e = c.call_error("mcpServer/tool/call", {"threadId": b, "server": "executor_demo",
                                             "tool": "echo", "arguments": {"message": "x"}})
    check(e["code"] == INVALID_PARAMS and "executor_demo" in e["message"] and
          "not available" in e["message"], "B calling executor_demo: %r" % e)

    # A plugin on the dialled executor.
    cthr = c.start_thread([root("remote-plugin", "exec2", p2)])
    st_c = c.status(cthr)
    check("remote_demo" in st_c and "executor_demo" not in st_c, "thread C: %s" % sorted(st_c))
    sc = structured(c.tool(cthr, "remote_demo", "echo", {"message": "via exec2"}), "exec2 echo")
    check_eq((sc.get("message"), sc.get("cwd")), ("via exec2", p2), "exec2 echo")
    sc = structured(c.tool(cthr, "remote_demo", "env", {"name": "SCENARIO_SECRET_VALUE"}), "env")
    check_eq(sc.get("value"), None, "SCENARIO_SECRET_VALUE on exec2 (not set there)")
    check(fixture_pids(ex2.pid), "remote_demo does not run under the exec2 executor")

    # A server added to config.toml, bound to exec2, after a reload.
    write_file(os.path.join(home, "config.toml"), '[mcp_servers.added]\ncommand = %s\n'
               'environment_id = "exec2"\n' % toml_str(MCP_FIXTURE))
    check_eq(c.call("config/mcpServer/reload", {}), {}, "reload result")
    g = c.status()
    check("added" in g, "global status after reload lacks 'added': %s" % sorted(g))
    check_eq(g["added"].get("runtimeStatus"), "connected", "added runtimeStatus (global)")
    check(FIXTURE_TOOLS <= set(g["added"]["tools"]), "added tools: %s" % sorted(g["added"]["tools"]))
    st_b = c.status(b)
    check("added" in st_b and "executor_demo" not in st_b, "thread B after reload: %s" %
          sorted(st_b))
    sc = structured(c.tool(b, "added", "add", {"a": 2, "b": 40}), "add in B")
    check_eq(sc.get("sum"), 42, "add via 'added'")
    st = c.status(a)
    check({"added", "executor_demo"} <= set(st), "thread A after reload: %s" % sorted(st))
    check_eq(len(fixture_pids(ex2.pid)), 2, "server processes on exec2 (remote_demo + added)")

    listed = {t["id"] for t in c.call("thread/list", {})["data"]}
    check({a, b, cthr} <= listed, "thread/list: %s" % listed)
    check_eq(c.call("thread/read", {"threadId": a})["thread"]["id"], a, "thread/read A")
    # The link token of exec2 (read from its token file) and the one-time
    # secrets of the spawned executors (through a pipe) show nowhere.
    return check_no_secret_leaks(o, [ex2.token], "(link token)")


# ---- 3 ---------------------------------------------------------------------

def test_projection(ctx):
    home = make_home(ctx)
    p = make_plugin(ctx, "proj", {"proj_demo": {}})
    o = Orchestrator(ctx, home)
    c = o.client
    c.initialize()
    c.wait_env("local")
    t = c.start_thread([root("proj", "local", p)])
    check("proj_demo" in c.status(t), "proj_demo missing after the first settle")
    first = c.counters(t)
    check_eq(first["thread"]["rediscoveries"], 1, "rediscoveries after the first settle")
    check(first["thread"]["runtimeBuilds"] >= 1, "no runtime build: %r" % first)
    for i in range(5):
        check("proj_demo" in c.status(t), "status %d" % i)
        sc = structured(c.tool(t, "proj_demo", "add", {"a": i, "b": 1}), "add %d" % i)
        check_eq(sc.get("sum"), i + 1, "add %d" % i)
        c.call("thread/read", {"threadId": t})
    later = c.counters(t)
    check_eq(later["thread"], first["thread"], "thread counters after 5 steps")
    for k in ("rediscoveries", "runtimeBuilds", "serverStarts"):
        check_eq(later[k], first[k], "global %s after 5 steps" % k)


# ---- 4 ---------------------------------------------------------------------

# Longer than the tool timeout (300 s by default): the call can only end
# early because the orchestrator saw its executor die.
NEVER_ENDING_MS = 3_600_000


def _line_index(c, pred, start=0):
    """Index in c.raw_lines of the first message from start on that satisfies pred."""
    with c.cv:
        for i, text in enumerate(c.raw_lines[start:], start):
            try:
                msg = json.loads(text)
            except ValueError:
                continue
            if isinstance(msg, dict) and pred(msg):
                return i
    return None


def test_executor_killed(ctx):
    home = make_home(ctx, environments='include_local = false\n\n[[environments]]\n'
                     'id = "exec1"\nprogram = "tandem-executor"\n')
    p = make_plugin(ctx, "victim", {"victim_demo": {}})
    o = Orchestrator(ctx, home)
    c = o.client
    c.initialize()
    c.wait_env("exec1")
    t = c.start_thread([root("victim", "exec1", p)])
    structured(c.tool(t, "victim_demo", "echo", {"message": "warm"}), "warm-up")
    old_exec = o.executor_pid("exec1")
    check(old_exec, "no child of the orchestrator with --id exec1")
    fixtures = fixture_pids(old_exec)
    check_eq(len(fixtures), 1, "server processes under exec1")

    rid = c.send("mcpServer/tool/call", {"threadId": t, "server": "victim_demo",
                                        "tool": "sleep",
                                        "arguments": {"ms": NEVER_ENDING_MS}})
    wait_until(lambda: sleeping_fixture(fixtures[0]), 10, "the server to run the sleep call")
    mark = len(c.notifications)
    with c.cv:
        mark_line = len(c.raw_lines)
    t0 = time.monotonic()
    os.kill(old_exec, signal.SIGKILL)
    # The timeout only keeps a hang from stalling the suite: the sleep and the
    # tool timeout are far longer, so an answer means the kill was noticed.
    resp = c.wait_response(rid, timeout=60)
    elapsed = time.monotonic() - t0
    check("error" in resp, "the sleep call did not fail: %r" % resp)
    msg = resp["error"]["message"]
    check("exec1" in msg, "error does not name the environment: %r" % resp["error"])
    check("timed out" not in msg and "timeout" not in msg,
          "the call ended by a timeout, not by the kill: %r" % msg)
    st = c.env_status("exec1")
    check_eq(st["status"], "disconnected", "environment/status right after the kill")
    check(st.get("error"), "disconnected without an error: %r" % st)
    c.wait_notification(lambda n: n["method"] == "thread/environment/disconnected" and
                        n["params"] == {"threadId": t, "environmentId": "exec1"},
                        what="thread/environment/disconnected", start=mark)
    wait_until(lambda: not alive(fixtures[0]), 10, "the server of the killed executor to die")

    c.wait_env("exec1", timeout=20)
    c.wait_notification(lambda n: n["method"] == "thread/environment/connected" and
                        n["params"]["environmentId"] == "exec1",
                        what="thread/environment/connected", start=mark)
    # Failed on the disconnection itself, not once a new executor came up.
    failed_at = _line_index(c, lambda m: m.get("id") == rid and "error" in m, mark_line)
    back_at = _line_index(c, lambda m: m.get("method") == "thread/environment/connected" and
                          m.get("params", {}).get("environmentId") == "exec1", mark_line)
    check(failed_at is not None and back_at is not None and failed_at < back_at,
          "the call failed only after the executor was back (lines %s, %s)" %
          (failed_at, back_at))
    new_exec = o.executor_pid("exec1")
    check(new_exec and new_exec != old_exec, "executor not restarted (%s)" % new_exec)
    sc = structured(c.tool(t, "victim_demo", "echo", {"message": "back"}), "echo after restart")
    check_eq(sc.get("message"), "back", "echo after restart")
    check_eq(len(fixture_pids(new_exec)), 1, "server processes under the new executor")
    return "# call failed %.3fs after the kill" % elapsed


# ---- 5 ---------------------------------------------------------------------

def test_server_crash(ctx):
    home = make_home(ctx)
    p = make_plugin(ctx, "crashy", {"crashy_demo": {}})
    o = Orchestrator(ctx, home)
    c = o.client
    c.initialize()
    c.wait_env("local")
    t = c.start_thread([root("crashy", "local", p)])
    structured(c.tool(t, "crashy_demo", "echo", {"message": "before"}), "echo before")
    starts = c.counters(t)["serverStarts"]
    first_pid = fixture_pids(o.executor_pid("local"))

    e = expect_rpc_error(lambda: c.tool(t, "crashy_demo", "crash", {}), "crash tool")
    check("crashy_demo" in e.message and ("exit" in e.message or "status 3" in e.message),
          "crash error is not clear: %s" % e)
    # The next call restarts the server and works.
    sc = structured(c.tool(t, "crashy_demo", "echo", {"message": "after"}), "echo after crash")
    check_eq(sc.get("message"), "after", "echo after crash")
    check_eq(c.counters(t)["serverStarts"], starts + 1, "serverStarts after the restart")
    now = fixture_pids(o.executor_pid("local"))
    check(len(now) == 1 and now != first_pid, "server processes %s (before: %s)" %
          (now, first_pid))
    check_eq(c.status(t)["crashy_demo"].get("runtimeStatus"), "connected", "status after")


# ---- 6 ---------------------------------------------------------------------

def test_client_disconnect(ctx):
    home = make_home(ctx)
    shared = make_plugin(ctx, "shared", {"shared_demo": {}})
    other = make_plugin(ctx, "other", {"other_demo": {}})
    o = Orchestrator(ctx, home, mode="unix")
    c2 = o.connect("client2")
    c2.wait_env("local")
    t2 = c2.start_thread([root("shared", "local", shared), root("other", "local", other)])
    st = c2.status(t2)
    check(st.get("shared_demo", {}).get("runtimeStatus") == "connected" and
          st.get("other_demo", {}).get("runtimeStatus") == "connected", "T2 status: %s" % st)
    exe = o.executor_pid("local")
    check_eq(len(fixture_pids(exe)), 2, "server processes")
    starts = c2.counters()["serverStarts"]
    fds = fd_count(o.pid)

    c1 = o.connect("client1")
    t1 = c1.start_thread([root("shared", "local", shared)])
    check("shared_demo" in c1.status(t1), "T1 status")
    check_eq(c1.counters()["serverStarts"], starts, "T1 shares the running server")
    victim = fixture_with_cwd(exe, shared)
    check(victim, "no server process with cwd %s" % shared)
    rid = c1.send("mcpServer/tool/call", {"threadId": t1, "server": "shared_demo",
                                         "tool": "sleep", "arguments": {"ms": 1500}})
    wait_until(lambda: sleeping_fixture(victim), 10, "the shared server to run the sleep call")
    c1.close()

    # Client 2 keeps working, on its own server and on the shared one (whose
    # late answer to the abandoned call must not be taken for client 2's).
    check(t1 in {t["id"] for t in c2.call("thread/list", {})["data"]}, "T1 listed")
    sc = structured(c2.tool(t2, "other_demo", "echo", {"message": "meanwhile"}), "other echo")
    check_eq(sc.get("message"), "meanwhile", "other_demo echo during the abandoned call")
    sc = structured(c2.tool(t2, "shared_demo", "echo", {"message": "after"}), "shared echo")
    check_eq(sc.get("message"), "after", "shared_demo echo after the abandoned call")

    # No leak: more clients come and go, the daemon answers, same processes.
    for i in range(3):
        c3 = o.connect("client3-%d" % i)
        c3.status()
        c3.call("thread/list", {})
        c3.close()
    wait_until(lambda: fd_count(o.pid) == fds, 10,
               "the orchestrator's fd count to return to %d (now %d)" % (fds, fd_count(o.pid)))
    check_eq(c2.counters()["serverStarts"], starts, "serverStarts")
    check_eq(len(fixture_pids(exe)), 2, "server processes on the executor")
    check(o.proc.poll() is None, "the orchestrator exited")
    check_eq(sorted(c2.status(t2)), ["other_demo", "shared_demo"], "T2 status at the end")


# ---- 7 ---------------------------------------------------------------------

def strace_problem():
    strace = shutil.which("strace")
    if not strace:
        return None, "strace not installed"
    try:
        r = subprocess.run([strace, "-f", "-o", "/dev/null", "/bin/true"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, str(e)
    if r.returncode != 0:
        return None, r.stderr.decode("utf-8", "replace").strip()[:200] or "exit %d" % r.returncode
    return strace, None


LINE_RE = re.compile(r"^(\d+)\s+(.*)$")
CALL_RE = re.compile(r"^(?:<\.\.\. )?([a-z_0-9]+)(?:\(| resumed>)")
RESULT_RE = re.compile(r"\)\s+=\s+(-?\d+)(?: /\* (\d+) in strace's PID NS \*/)?")
STR_RE = re.compile(r'"((?:[^"\\]|\\.)*)"')
SPAWNS = {"clone", "clone3", "fork", "vfork"}
EXECS = {"execve", "execveat"}


def parse_strace(path):
    """[(pid, syscall, text, result)] with unfinished/resumed pairs joined,
    plus parent and is_thread maps from the clone family."""
    events, pending = [], {}
    parent, is_thread = {}, {}
    first_pid = None
    with open(path, errors="replace") as f:
        for raw in f:
            m = LINE_RE.match(raw.rstrip("\n"))
            if not m:
                continue
            pid, rest = int(m.group(1)), m.group(2)
            if first_pid is None:
                first_pid = pid
            cm = CALL_RE.match(rest)
            if not cm:
                continue  # signals, exits
            name = cm.group(1)
            if rest.endswith("<unfinished ...>"):
                pending[pid] = rest
                continue
            if rest.startswith("<..."):
                rest = pending.pop(pid, "") + rest
            rm = RESULT_RE.search(rest)
            result = int(rm.group(2) or rm.group(1)) if rm else None
            events.append((pid, name, rest, result))
            if name in SPAWNS and result and result > 0:
                parent[result] = pid
                is_thread[result] = "CLONE_THREAD" in rest
    return first_pid, events, parent, is_thread


def tgid_of(pid, parent, is_thread):
    while is_thread.get(pid):
        pid = parent[pid]
    return pid


def test_filesystem_less(ctx):
    strace, why = strace_problem()
    if not strace:
        print("# !!! strace unavailable: %s" % why)
        return "SKIP strace unavailable: %s" % why
    trace = ctx.path("orchestrator.strace")
    home = make_home(ctx)
    p = make_plugin(ctx, "fsroot-" + ctx.tag, {"fsless_demo": {}}, command_in_root=True)
    # --pidns-translation: servers run below an init in a PID namespace of
    # their own (executor/contain.h); clone results are then our pids.
    o = Orchestrator(ctx, home, wrapper=[strace, "-f", "-qq", "--pidns-translation", "-s",
                                         "4096", "-e", "trace=%file,%process", "-o", trace])
    c = o.client
    c.initialize()
    c.wait_env("local", timeout=30)
    t = c.start_thread([root("fsless", "local", p)])  # the root id is not a path
    st = c.status(t, timeout=30)
    check("fsless_demo" in st, "fsless_demo missing: %s" % sorted(st))
    sc = structured(c.tool(t, "fsless_demo", "echo", {"message": "no files"}, timeout=30), "echo")
    check_eq((sc.get("message"), sc.get("cwd")), ("no files", p), "echo through the executor")
    note = ""
    try:  # a clean exit is test 9's business; here only the trace matters
        o.stop(timeout=10)
    except TestFailure as e:
        note = "; the orchestrator hung on exit and was killed (%s)" % str(e).splitlines()[0]
        kill_everything_below(o.pid)
        o.proc.wait(timeout=10)

    first, events, parent, is_thread = parse_strace(trace)
    check(first is not None and events, "empty trace")
    orch_threads = {first} | {pid for pid in parent if tgid_of(pid, parent, is_thread) == first}
    # The orchestrator's one child is the spawner (orchestrator/spawner.h), a
    # fork of it that never execs; the executors are the spawner's children.
    direct = {pid for pid, par in parent.items()
              if not is_thread[pid] and tgid_of(par, parent, is_thread) == first}
    launched = {pid for pid, par in parent.items()
                if not is_thread[pid] and tgid_of(par, parent, is_thread) in direct}
    def below_launched(pid):  # the executors' descendants (servers may sit under an init)
        par = tgid_of(parent.get(pid), parent, is_thread)
        while par is not None and par not in launched and par != first:
            par = tgid_of(parent.get(par), parent, is_thread)
        return par in launched
    grand = {pid for pid in parent if not is_thread[pid] and below_launched(pid)}
    check(len(orch_threads) >= 1 and direct, "no children of the orchestrator in the trace")
    check(launched, "the spawner started no process")

    markers = (p + "/", ".codex-plugin", ".mcp.json", os.path.basename(p))
    touched, execs_launched, execs_self, plugin_touch_elsewhere, server_execs = [], [], [], 0, []
    execs_spawner = []
    execd = set()  # launched processes after their exec are the executor, before it ours
    for pid, name, text, result in events:
        strings = STR_RE.findall(text)
        paths = strings[:1] if name in EXECS else strings  # an exec's argv is not a path
        hits = [s for s in paths if s == p or any(mk in s for mk in markers)]
        tg = tgid_of(pid, parent, is_thread)
        if tg in launched and name in EXECS and result == 0:
            execd.add(tg)
        ours = tg == first or tg in direct or (tg in launched and tg not in execd)
        if ours:
            if hits:
                touched.append("%d %s" % (pid, text[:300]))
            if name in EXECS and tg == first:
                execs_self.append(text[:300])
            if name in EXECS and tg in direct:
                execs_spawner.append(text[:300])
        else:
            plugin_touch_elsewhere += bool(hits)
        if tg in launched and name in EXECS:
            execs_launched.append((pid, strings[0] if strings else "?", result))
        if tg in grand and name in EXECS and result == 0:
            server_execs.append(strings[0] if strings else "?")

    check(not touched, "the orchestrator (or its spawner) touched the plugin root:\n" +
          "\n".join(touched[:10]))
    check_eq(len(execs_self), 1, "execs by the orchestrator's own threads (its own start)")
    check(not execs_spawner, "the spawner exec'd: %s" % execs_spawner[:3])
    bad = [e for e in execs_launched if os.path.basename(e[1]) != "tandem-executor"]
    check(not bad, "the spawner's children exec'd something else: %s" % bad[:5])
    check(any(r == 0 for _, _, r in execs_launched), "no executor exec'd by the spawner")
    # Positive controls: the trace does see plugin files and the servers.
    check(plugin_touch_elsewhere > 0, "no process touched the plugin root: trace incomplete")
    check(os.path.join(p, "bin", "mcp-server") in server_execs,
          "the MCP server was not exec'd below the executor (execs there: %s)" %
          server_execs[:5])
    return "# %d events, %d orchestrator threads, %d direct children%s" % (
        len(events), len(orch_threads), len(direct), note)


# ---- 8 ---------------------------------------------------------------------

def test_bad_input(ctx):
    # (a) One bad server next to a good one.
    home = make_home(ctx, config="""
[mcp_servers.good]
command = %s

[mcp_servers.bad]
command = %s
url = "http://127.0.0.1:9/mcp"
""" % (toml_str(MCP_FIXTURE), toml_str(MCP_FIXTURE)))
    o = Orchestrator(ctx, home)
    c = o.client
    c.initialize()
    c.wait_env("local")
    g = c.status()
    check({"good", "bad"} <= set(g), "global status: %s" % sorted(g))
    check_eq(g["good"].get("runtimeStatus"), "connected", "good runtimeStatus")
    check_eq(g["bad"].get("runtimeStatus"), "failed", "bad runtimeStatus")
    why = g["bad"].get("toolsError") or ""
    check("url" in why or "command" in why, "bad server's reason: %r" % why)
    t = c.start_thread()
    check_eq(structured(c.tool(t, "good", "add", {"a": 1, "b": 2}), "good add").get("sum"), 3,
             "tool call on the good server")
    e = c.call_error("mcpServer/tool/call", {"threadId": t, "server": "bad", "tool": "echo",
                                             "arguments": {"message": "x"}})
    check("bad" in e["message"], "calling the bad server: %r" % e)

    # (b) Syntax errors: exit non-zero with file:line:col.
    for fname, text, line in [
            ("environments.toml", 'include_local = false\n\n[[environments]]\nid = "broken\n', 4),
            ("config.toml", 'model = "m"\n[mcp_servers.x\ncommand = "y"\n', 2)]:
        files = {"config": "", "environments": "include_local = false\n"}
        files[fname.split(".")[0]] = text
        h = make_home(ctx, config=files["config"], environments=files["environments"],
                      name="home-" + fname)
        ob = Orchestrator(ctx, h, label="orchestrator-" + fname)
        try:
            rc = ob.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            raise TestFailure("orchestrator kept running with a broken %s" % fname)
        err = ob.stderr_text()
        check(rc != 0, "%s syntax error: exit status %d" % (fname, rc))
        check(re.search(r"%s:%d:\d+" % (re.escape(fname), line), err),
              "%s syntax error: no %s:%d:COL in stderr: %r" % (fname, fname, line, err[-500:]))

    # (c) Selected roots.
    h = make_home(ctx, environments='include_local = false\n\n[[environments]]\nid = "far"\n'
                  'url = "abstract://tandem-itest-%s-nowhere"\n' % ctx.tag, name="home-roots")
    o = Orchestrator(ctx, h, label="orchestrator-roots")
    c = o.client
    c.initialize()
    for roots, field, what in [
            ([root("r", "nope", "/tmp")], "nope", "unknown environment"),
            ([root("r", "far", "relative/dir")], "path", "relative path"),
            ([root("r", "far", "")], "path", "empty path"),
            ([root("r%d" % i, "far", "/nonexistent/%d" % i) for i in range(257)],
             "selectedCapabilityRoots", "257 roots"),
            ([root("r", "far", "/a"), root("r", "far", "/b")], "duplicate", "duplicate ids"),
            ([{"id": "r", "location": {"type": "url", "environmentId": "far", "path": "/a"}}],
             "type", "location.type")]:
        e = c.call_error("thread/start", {"selectedCapabilityRoots": roots})
        check_eq(e["code"], INVALID_PARAMS, "%s: code" % what)
        check(field in e["message"], "%s: message %r does not name %s" % (what, e["message"],
                                                                          field))
    ok = c.start_thread([root("r%d" % i, "far", "/nonexistent/%d" % i) for i in range(256)])
    ids = [t["id"] for t in c.call("thread/list", {})["data"]]
    check_eq(ids, [ok], "threads after the rejected starts")


# ---- 9 ---------------------------------------------------------------------

SHUTDOWN_CYCLES = 20
SHUTDOWN_BUDGET_S = 10.0


def test_shutdown(ctx):
    """EOF (stdio) and SIGTERM (unix) end the daemon with status 0, and its
    executors and their servers with it; repeated, since a hang may be rare."""
    home = make_home(ctx)
    p = make_plugin(ctx, "bye", {"bye_demo": {}})
    times = []
    for i in range(SHUTDOWN_CYCLES):
        mode = "stdio" if i % 2 == 0 else "unix"
        o = Orchestrator(ctx, home, mode=mode, label="orchestrator-%d" % i)
        c = o.client if mode == "stdio" else o.connect()
        if mode == "stdio":
            c.initialize()
        c.wait_env("local")
        t = c.start_thread([root("bye", "local", p)])
        structured(c.tool(t, "bye_demo", "echo", {"message": "cycle %d" % i}), "echo")
        table = proc_table()
        below = [(pid, table[pid].starttime) for pid in descendants(o.pid, table)]
        check(len(below) >= 2, "cycle %d: executor and server not found below the daemon" % i)
        t0 = time.monotonic()
        try:
            rc = o.stop(timeout=SHUTDOWN_BUDGET_S)
        except TestFailure as e:
            raise TestFailure("cycle %d (%s, %s): %s" % (i, mode, "EOF" if mode == "stdio"
                                                        else "SIGTERM", e))
        times.append(time.monotonic() - t0)
        check_eq(rc, 0, "cycle %d (%s): exit status" % (i, mode))
        wait_until(lambda: not any(alive(pid, st) for pid, st in below), 5,
                   "cycle %d: the executor and its servers to exit with the daemon" % i)
        c.close()
    return "# exit took %.3fs at most over %d cycles" % (max(times), len(times))


# ---- 10 --------------------------------------------------------------------

def test_tls_environment(ctx):
    """A url environment on tls+tcp://: the orchestrator trusts the
    certificate in <home>/executor-tls/<id>.pem and nothing else."""
    import socket as so
    tls = ctx.mkdir("tls")
    key, cert, both = (os.path.join(tls, n) for n in ("key.pem", "cert.pem", "both.pem"))
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                        "-keyout", key, "-out", cert], capture_output=True)
    check(r.returncode == 0, "openssl: %s" % r.stderr.decode()[-300:])
    with open(both, "w") as f:
        f.write(open(key).read() + open(cert).read())
    s = so.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    token = "%064x" % random.getrandbits(256)
    token_file = write_file(ctx.path("tok"), token + "\n", 0o600)
    url = "tls+tcp://localhost:%d" % port
    ctx.popen([EXECUTOR, "--listen", "tls+tcp://127.0.0.1:%d" % port, "--tls-cert", both,
               "--auth-token-file", token_file, "--id", "secure"], "executor-secure")
    plugin = make_plugin(ctx, "tlsdemo", {"tls_demo": {}})
    envs = '[[environments]]\nid = "secure"\nurl = %s\n' % toml_str(url)
    home = make_home(ctx, environments="include_local = false\n" + envs,
                     tokens={"secure": token})
    os.makedirs(os.path.join(home, "executor-tls"), exist_ok=True)
    shutil.copy(cert, os.path.join(home, "executor-tls", "secure.pem"))
    orch = Orchestrator(ctx, home)
    c = orch.client
    c.initialize()
    c.wait_env("secure", "ready", timeout=20)
    t = c.start_thread([root("tlsdemo", "secure", plugin)])
    sc = structured(c.tool(t, "tls_demo", "echo", {"message": "over tls"}), "echo over tls")
    check_eq(sc["message"], "over tls", "echo over TLS")
    orch.stop()
    # Without the certificate in the home, the environment never becomes ready.
    os.remove(os.path.join(home, "executor-tls", "secure.pem"))
    orch2 = Orchestrator(ctx, home, label="orchestrator2")
    c2 = orch2.client
    c2.initialize()
    st = c2.env_status("secure")
    check(st["status"] != "ready", "ready without a trusted certificate: %r" % st)
    check("executor-tls" in (st.get("error") or "") or st["status"] == "pending",
          "status: %r" % st)
    orch2.stop()


def test_environment_add_and_resources(ctx):
    """environment/add dials a running executor at runtime (its token given in
    the request); a plugin on it works, and mcpServer/resource/read reads the
    fixture's resource through it."""
    ex = Executor(ctx, "added")
    plugin = make_plugin(ctx, "resdemo", {"res_demo": {}})
    home = make_home(ctx, environments="include_local = false\n")
    orch = Orchestrator(ctx, home)
    c = orch.client
    c.initialize()
    check_eq(c.env_status("added")["status"], "unknown", "before environment/add")
    c.call("environment/add", {"environmentId": "added", "execServerUrl": ex.url,
                               "authBearerToken": ex.token})
    c.wait_env("added", "ready", timeout=20)
    e = expect_rpc_error(lambda: c.call("environment/add", {"environmentId": "added",
                                                            "execServerUrl": ex.url}),
                         "adding the same id twice")
    check("already exists" in e.message, "duplicate add: %s" % e.message)
    t = c.start_thread([root("resdemo", "added", plugin)])
    r = c.call("mcpServer/resource/read", {"threadId": t, "server": "res_demo",
                                           "uri": "fixture://hello"})
    texts = [x.get("text") for x in r["contents"]]
    check("hello from fixture" in texts, "resource contents: %r" % r)
    check_eq(sorted(r), ["contents"], "resource/read answer members")
    check(ex.token not in orch.stderr_text(), "the token appeared in the log")
    orch.stop()


def test_no_leftovers(ctx):
    kill_everything_below(os.getpid())
    REGISTRY.reap_orphans()
    table = proc_table()
    left = [p for p in descendants(os.getpid(), table) if table[p].state not in ("Z", "X")]
    check(not left, "processes still below the test: %s" % left)
    surv = REGISTRY.survivors()
    check(not surv, "processes started by the tests survive: %s" % surv)
    kinds = {}
    for _, (_, what) in REGISTRY.seen.items():
        argv = what.lstrip("?").split(" ")
        if os.path.basename(argv[0]) == "setpriv" and len(argv) > 3:
            argv = argv[3:]  # setpriv --pdeathsig KILL PROGRAM ...
        k = os.path.basename(argv[0])
        kinds[k] = kinds.get(k, 0) + 1
    return "# %d processes seen, all gone: %s" % (len(REGISTRY.seen), kinds)


TESTS = [
    ("framing", test_framing),
    ("full scenario: two environments, per-thread plugins, reload", test_full_scenario),
    ("per-step projection: no rediscovery, no rebuild on the same set", test_projection),
    ("executor killed during a tool call", test_executor_killed),
    ("MCP server crash and restart on next use", test_server_crash),
    ("client disconnect mid-call (unix socket, two clients)", test_client_disconnect),
    ("filesystem-less orchestrator under strace", test_filesystem_less),
    ("bad input: servers, files, roots", test_bad_input),
    ("clean shutdown on EOF and SIGTERM, repeated", test_shutdown),
    ("tls+tcp:// environment trusted by its certificate", test_tls_environment),
    ("environment/add at runtime, resource read", test_environment_add_and_resources),
    ("no process left behind", test_no_leftovers),
]




if __name__ == "__main__":
    sys.exit(run_suite(TESTS))
