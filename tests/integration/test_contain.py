#!/usr/bin/env python3
"""Containment seen from a client: a real orchestrator, its spawned executor
and plugin servers (tests/fixtures/hostile_mcp.py). The executor-level
checks are in test_contain.c; these check what a client sees.

  - a server that closes its stdout and keeps running: the call fails at
    once with that reason, mcpServerStatus/list shows it failed with it, and
    a later call restarts it by the usual backoff rules (issue 13 #8);
  - a server's setsid()'d daemon is gone after the orchestrator stops
    (issue 13 #2).
"""

import os
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tandem_testlib import (  # noqa: E402
    Orchestrator, RpcError, TestFailure, alive, check, check_eq, cmdline, make_home,
    make_plugin, proc_table, root, run_suite, wait_until)

HOSTILE = os.path.join(os.environ.get("TANDEM_FIXTURES") or
                       os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                    "fixtures"), "hostile_mcp.py")
PY = "/usr/bin/python3"


def hostile_plugin(ctx, name, **cfg):
    """A plugin whose server is a copy of hostile_mcp.py inside its root (a
    sandboxed server reads only its root and the system directories)."""
    script = os.path.join(os.path.realpath(ctx.path("plugins", name)), "hostile_mcp.py")
    conf = {"command": PY, "args": [script]}
    conf.update(cfg)
    p = make_plugin(ctx, name, {name + "_srv": conf})
    shutil.copy(HOSTILE, script)
    return p


def start(ctx, plugin_name, **cfg):
    home = make_home(ctx)
    p = hostile_plugin(ctx, plugin_name, **cfg)
    o = Orchestrator(ctx, home)
    c = o.client
    c.initialize()
    c.wait_env("local")
    t = c.start_thread([root(plugin_name, "local", p)])
    return o, c, t, plugin_name + "_srv"


def test_closed_stdout_fails_the_call_at_once(ctx):
    o, c, t, srv = start(ctx, "closer", tool_timeout_sec=300)
    who = c.tool(t, srv, "whoami")["structuredContent"]
    starts = c.counters(t)["serverStarts"]
    mark = len(c.notifications)
    t0 = time.monotonic()
    try:
        r = c.tool(t, srv, "close_stdout", timeout=30)
        raise TestFailure("close_stdout answered: %r" % r)
    except RpcError as e:
        err = e.message
    elapsed = time.monotonic() - t0
    check("closed its stdout" in err, "the call's error does not say why: %r" % err)
    # The status went to failed with that reason (mcpServerStatus/list itself
    # restarts the server once the backoff allows, so the notification is
    # where the failed state is seen).
    n = c.wait_notification(lambda n: n["method"] == "mcpServer/startupStatus/updated" and
                            n["params"].get("name") == srv and
                            n["params"].get("status") == "failed", what="failed status",
                            start=mark)
    check("closed its stdout" in (n["params"].get("error") or ""),
          "failed status without the reason: %r" % n["params"])
    # The next call restarts it (backoff) and works.
    sc = wait_until(lambda: _try(c, t, srv), 20, "a restarted server")
    check(sc.get("ok"), "whoami after the restart: %r" % sc)
    check(c.counters(t)["serverStarts"] >= starts + 1, "no restart counted")
    return "# the call failed %.2fs after it was sent (tool timeout 300 s)" % elapsed


def _try(c, t, srv):
    try:
        return c.tool(t, srv, "whoami")["structuredContent"]
    except RpcError:
        return None


def tagged(tag):
    """Pids whose argv[0] is tag (the box hides host pids from the server)."""
    return [p for p in proc_table() if (cmdline(p) or [None])[0] == tag]


def test_daemon_gone_after_orchestrator_stops(ctx):
    o, c, t, srv = start(ctx, "daemonic")
    tag = "tandem-daemon-%s" % ctx.tag
    c.tool(t, srv, "daemon", {"tag": tag})
    # it reported itself just before exec'ing under the tag
    found = wait_until(lambda: tagged(tag), 5, "the daemon under its tag")
    check(len(found) == 1, "more than one daemon under the tag: %r" % found)
    d = found[0]
    check(alive(d), "daemon %d not running" % d)
    try:
        o.proc.send_signal(signal.SIGTERM)
        o.proc.wait(timeout=15)
        wait_until(lambda: not alive(d), 5, "the daemon to be gone")
    finally:
        if alive(d):
            os.kill(d, signal.SIGKILL)


TESTS = [(f.__name__[5:].replace("_", " "), f) for f in (
    test_closed_stdout_fails_the_call_at_once,
    test_daemon_gone_after_orchestrator_stops,
)]

if __name__ == "__main__":
    sys.exit(run_suite(TESTS))
