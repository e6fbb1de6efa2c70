#!/usr/bin/env python3
"""Resumable link sessions and honest call outcomes (issue 14, protocol 3),
with real daemons: the executor runs in a network namespace of its own
behind a veth pair the test makes (names with "rs" in them, removed even
on failure), and a plugin server (the MCP fixture's "mark" tool) appends
one line per execution, so that the test counts how often each call ran.

  - a 5 s cut with 32 calls in flight: every call completes, each ran
    exactly once, the server's pid is unchanged; calls made during the cut
    with a deadline shorter than it are told they never reached the server,
    and never run;
  - a 14 s cut (the link declared dead, the session waiting): it resumes,
    the calls in flight complete once, on the same server;
  - a TCP reset (ss -K in the executor's namespace): the session resumes
    on a new connection, no call fails, each ran once;
  - a 60 s cut past a short grace (3 s both sides): the environment shows
    disconnected within the keepalive bound, calls fail with the reason,
    none of them runs afterwards, the server restarts, nothing hangs;
  - environments.toml's resume_grace_sec: two executors behind the same
    veth, one environment with resume_grace_sec = 2 and one with the
    default (30 s); the orchestrator's connections are reset and the link
    is down for 5 s: the short one's calls fail with "not back within
    2000 ms", a fresh session starts; the other's complete once on the
    same session;
  - 200 ms delay and 5 % loss each way (a userspace bridge between two
    veths: real packets, the kernel's own TCP recovers): calls complete;
    p50/p99 printed.

Two more need no namespace (a local executor): a server busy in a call
that does not read its stdin, a request queued behind a large one in the
executor; then
  - its client goes away: the cancel overtakes the queued request, which
    never runs;
  - its deadline passes: the client is told it timed out, and it never
    runs when the server reads again.

Timings are printed (TAP diagnostics), never asserted. Without root or
ip(8) every test SKIPs loudly.
"""

import json
import os
import random
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tandem_testlib import (  # noqa: E402
    Orchestrator, check, check_eq, make_home, make_plugin, root, run_suite, toml_str,
    wait_until)
from test_link import TcpExecutor, env_status, url_home, wait_status  # noqa: E402

SKIP = "SKIP cannot make a network namespace (needs root and ip(8))"


def sh(*cmd):
    return subprocess.call(list(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Net:
    """The executor's namespace behind a veth pair (host side `vh`). With
    lossy, a middle namespace bridges two veth pairs in user space, with
    delay and loss."""

    def __init__(self, ctx, lossy=False):
        t = ctx.tag[-6:]
        self.ns = "tdm-rs-%s" % t
        self.mid = "tdm-rsm-%s" % t
        self.vh, self.vn = "rsh%s" % t, "rsn%s" % t      # host <-> executor (or middle)
        self.vm, self.ve = "rsm%s" % t, "rse%s" % t      # middle <-> executor (lossy)
        self.net = os.getpid() % 200 + 20
        self.addr = "10.233.%d.2" % self.net
        self.bridge = None
        self.ok = os.geteuid() == 0 and sh("ip", "netns", "add", self.ns) == 0
        if not self.ok:
            return
        ctx.closers.append(self.down)
        host = "10.233.%d.1/24" % self.net
        cmds = [["ip", "-n", self.ns, "link", "set", "lo", "up"]]
        if not lossy:
            cmds += [["ip", "link", "add", self.vh, "type", "veth", "peer", "name", self.vn,
                      "netns", self.ns],
                     ["ip", "addr", "add", host, "dev", self.vh],
                     ["ip", "link", "set", self.vh, "up"],
                     ["ip", "-n", self.ns, "addr", "add", self.addr + "/24", "dev", self.vn],
                     ["ip", "-n", self.ns, "link", "set", self.vn, "up"]]
        else:
            cmds += [["ip", "netns", "add", self.mid],
                     ["ip", "link", "add", self.vh, "type", "veth", "peer", "name", self.vn,
                      "netns", self.mid],
                     ["ip", "-n", self.mid, "link", "add", self.vm, "type", "veth", "peer",
                      "name", self.ve, "netns", self.ns],
                     ["ip", "addr", "add", host, "dev", self.vh],
                     ["ip", "link", "set", self.vh, "up"],
                     ["ip", "-n", self.mid, "link", "set", self.vn, "up"],
                     ["ip", "-n", self.mid, "link", "set", self.vm, "up"],
                     ["ip", "-n", self.ns, "addr", "add", self.addr + "/24", "dev", self.ve],
                     ["ip", "-n", self.ns, "link", "set", self.ve, "up"]]
        for cmd in cmds:
            if subprocess.call(cmd) != 0:
                self.ok = False
                return

    def link(self, up):
        subprocess.check_call(["ip", "link", "set", self.vh, "up" if up else "down"])

    def down(self):
        if self.bridge:
            self.bridge.kill()
            self.bridge.wait(5)
        sh("ip", "link", "del", self.vh)
        sh("ip", "netns", "del", self.ns)
        sh("ip", "netns", "del", self.mid)


# The bridge runs in the middle namespace: every frame from one side is
# forwarded to the other after DELAY_MS, or dropped with probability LOSS.
BRIDGE = r"""
import heapq, os, random, select, socket, sys, time
a, b, delay, loss = sys.argv[1], sys.argv[2], float(sys.argv[3]) / 1000, float(sys.argv[4])
def sock(dev):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.bind((dev, 0))
    s.setblocking(False)
    return s
sa, sb = sock(a), sock(b)
other = {sa: sb, sb: sa}
q, n = [], 0
print("bridge up", flush=True)
while True:
    timeout = max(0, q[0][0] - time.monotonic()) if q else 1
    r, _, _ = select.select([sa, sb], [], [], timeout)
    for s in r:
        while True:
            try:
                data, addr = s.recvfrom(65536)
            except BlockingIOError:
                break
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            if random.random() < loss:
                continue
            n += 1
            heapq.heappush(q, (time.monotonic() + delay, n, other[s], data))
    now = time.monotonic()
    while q and q[0][0] <= now:
        _, _, s, data = heapq.heappop(q)
        try:
            s.send(data)
        except OSError:
            pass
"""


# Checksums and segmentation offloaded to a veth would reach the bridge
# unfinished (partial checksums, 64 KiB frames): they are turned off on the
# veths whose frames it forwards (ETHTOOL_STXCSUM, _SSG, _STSO, _SGSO).
OFFLOAD_OFF = r"""
import ctypes, fcntl, socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for dev in sys.argv[1:]:
    for cmd in (0x17, 0x19, 0x1f, 0x24):
        ev = ctypes.create_string_buffer(struct.pack("II", cmd, 0))
        fcntl.ioctl(s, 0x8946, struct.pack("16sP", dev.encode(), ctypes.addressof(ev)))
"""


def offload_off(ctx, netns, *devs):
    path = ctx.path("offload.py")
    with open(path, "w") as f:
        f.write(OFFLOAD_OFF)
    argv = [sys.executable, path] + list(devs)
    if netns:
        argv = ["ip", "netns", "exec", netns] + argv
    subprocess.check_call(argv)


def start_bridge(ctx, net, delay_ms, loss):
    path = ctx.path("bridge.py")
    with open(path, "w") as f:
        f.write(BRIDGE)
    offload_off(ctx, None, net.vh)
    offload_off(ctx, net.ns, net.ve)
    offload_off(ctx, net.mid, net.vn, net.vm)
    net.bridge = subprocess.Popen(["ip", "netns", "exec", net.mid, sys.executable, path,
                                   net.vn, net.vm, str(delay_ms), str(loss)],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = net.bridge.stdout.readline()
    check(line.startswith(b"bridge up"), "the bridge did not start: %r" % line)


class Setup:
    """An executor in net's namespace, an orchestrator dialling it, a
    thread whose plugin runs the fixture (mark appends to self.marks)."""

    def __init__(self, ctx, net, grace=None, servers=None):
        self.marks = ctx.path("marks")
        open(self.marks, "w").close()
        args = ["--grace-sec", str(grace)] if grace else []
        self.ex = TcpExecutor(ctx, "far", host="0.0.0.0", netns=net.ns, extra_args=args)
        env = {"FIXTURE_APPEND_FILE": self.marks}
        cfg = {"m": {"env": env, "sandbox": "off"}}
        for name, extra in (servers or {}).items():
            cfg[name] = dict({"env": env, "sandbox": "off"}, **extra)
        plugin = make_plugin(ctx, "marks", cfg)
        oargs = ("--link-grace-sec", str(grace)) if grace else ()
        self.o = Orchestrator(ctx, url_home(ctx, "far", "tcp://%s:%d" % (net.addr, self.ex.port),
                                            self.ex.token), args=oargs)
        self.c = self.o.client
        self.c.initialize()
        self.c.wait_env("far", timeout=30)
        self.tid = self.c.start_thread([root("marks", "far", plugin)])
        for name in cfg:
            wait_until(lambda: self.c.status(self.tid).get(name, {}).get("runtimeStatus") ==
                       "connected", 30, "server %s" % name)
        self.pid = self.server_pid()  # the fixture's instance id

    def server_pid(self):
        tag = "pid-%d" % random.getrandbits(32)
        self.c.tool(self.tid, "m", "mark", {"tag": tag, "ms": 0}, timeout=30)
        return self.runs()[tag][0]

    def runs(self):
        """tag -> [pid of each run]"""
        out = {}
        with open(self.marks) as f:
            for line in f:
                tag, pid = line.split()
                out.setdefault(tag, []).append(int(pid))
        return out

    def send(self, server, tag, ms):
        return self.c.send("mcpServer/tool/call", {"threadId": self.tid, "server": server,
                                                   "tool": "mark",
                                                   "arguments": {"tag": tag, "ms": ms}})


def outcome(resp):
    if "error" in resp:
        return "error", resp["error"].get("message", "")
    res = resp.get("result") or {}
    if res.get("isError"):
        return "error", json.dumps(res.get("content"))
    return "ok", ""


def t_cut_5s(ctx):
    net = Net(ctx)
    if not net.ok:
        return SKIP
    s = Setup(ctx, net, servers={"short": {"tool_timeout_sec": 2}})
    ids = {s.send("m", "c%d" % i, 100): "c%d" % i for i in range(32)}
    time.sleep(0.2)
    net.link(False)
    t0 = time.monotonic()
    # Calls made during the cut (the link is not yet known dead) with a 2 s
    # deadline: they wait unacknowledged in the orchestrator's replay buffer.
    late = {s.send("short", "late%d" % i, 0): "late%d" % i for i in range(8)}
    told = {}
    for i, tag in late.items():
        kind, msg = outcome(s.c.wait_response(i, timeout=20))
        check_eq(kind, "error", "a call with a 2 s deadline during a 5 s cut")
        told[tag] = msg
    check(all("never reached the server" in m for m in told.values()),
          "the failed calls say they never ran: %r" % list(told.values())[:2])
    time.sleep(max(0, 5 - (time.monotonic() - t0)))
    net.link(True)
    t1 = time.monotonic()
    for i, tag in ids.items():
        kind, msg = outcome(s.c.wait_response(i, timeout=60))
        check_eq(kind, "ok", "call %s across the cut (%s)" % (tag, msg))
    done = time.monotonic() - t1
    s.c.tool(s.tid, "short", "mark", {"tag": "after", "ms": 0}, timeout=30)
    runs = s.runs()
    for tag in ids.values():
        check_eq(len(runs.get(tag, [])), 1, "executions of %s" % tag)
        check_eq(runs[tag][0], s.pid, "the server's pid for %s" % tag)
    for tag in told:
        check(tag not in runs, "%s was told it never reached the server, and ran" % tag)
    expired = s.ex.log().count("not delivered: its deadline passed")
    return ("# 32 calls across a 5 s cut: all completed once, %.1f s after the link "
            "returned; %d late calls failed honestly (%d refused by the executor as expired)"
            % (done, len(told), expired))


def t_cut_past_keepalive(ctx):
    net = Net(ctx)
    if not net.ok:
        return SKIP
    s = Setup(ctx, net)
    ids = {s.send("m", "k%d" % i, 100): "k%d" % i for i in range(32)}
    time.sleep(0.2)
    net.link(False)
    t0 = time.monotonic()
    st = wait_status(s.c, "far", lambda x: x["status"] == "disconnected", 20,
                     "the environment to show disconnected")
    seen = time.monotonic() - t0
    check("resuming" in (st.get("error") or ""), "the status says it resumes: %r" % st)
    # A thread-scoped request while the session waits: its server stays.
    s.c.status(s.tid)
    time.sleep(max(0, 14 - (time.monotonic() - t0)))
    net.link(True)
    t1 = time.monotonic()
    for i, tag in ids.items():
        kind, msg = outcome(s.c.wait_response(i, timeout=60))
        check_eq(kind, "ok", "call %s across the cut (%s)" % (tag, msg))
    done = time.monotonic() - t1
    check("resumed by orchestrator" in s.ex.log(), "the executor resumed the session")
    check_eq(s.server_pid(), s.pid, "the server's instance after the cut")
    runs = s.runs()
    for tag in ids.values():
        check_eq(len(runs.get(tag, [])), 1, "executions of %s" % tag)
        check_eq(runs[tag][0], s.pid, "the server's instance for %s" % tag)
    return ("# a 14 s cut (past the keepalive timeout, within the grace): disconnected after "
            "%.1f s, resumed; 32 calls all completed once, %.2f s after the link returned" %
            (seen, done))


def t_tcp_reset(ctx):
    net = Net(ctx)
    if not net.ok:
        return SKIP
    s = Setup(ctx, net)
    ids = {s.send("m", "r%d" % i, 100): "r%d" % i for i in range(32)}
    time.sleep(0.3)
    if sh("ip", "netns", "exec", net.ns, "ss", "-K", "dst", "10.233.%d.1" % net.net) != 0:
        return "SKIP ss -K failed (no CONFIG_INET_DIAG_DESTROY?)"
    t0 = time.monotonic()
    for i, tag in ids.items():
        kind, msg = outcome(s.c.wait_response(i, timeout=60))
        check_eq(kind, "ok", "call %s across a reset (%s)" % (tag, msg))
    done = time.monotonic() - t0
    check("resumed by orchestrator" in s.ex.log(), "the executor resumed the session")
    runs = s.runs()
    for tag in ids.values():
        check_eq(len(runs.get(tag, [])), 1, "executions of %s" % tag)
        check_eq(runs[tag][0], s.pid, "the server's pid for %s" % tag)
    return "# 32 calls across a TCP reset: all completed once within %.1f s" % done


def t_cut_past_grace(ctx):
    net = Net(ctx)
    if not net.ok:
        return SKIP
    s = Setup(ctx, net, grace=3)
    ids = {s.send("m", "g%d" % i, 50): "g%d" % i for i in range(32)}
    time.sleep(0.1)
    net.link(False)
    t0 = time.monotonic()
    # Sent during the cut: the executor never acknowledged them, so when
    # the session ends they are told they never reached the server.
    late = {s.send("m", "late%d" % i, 0): "late%d" % i for i in range(8)}
    st = wait_status(s.c, "far", lambda x: x["status"] == "disconnected", 20,
                     "the environment to show disconnected")
    seen = time.monotonic() - t0
    failed, ok = {}, 0
    for i, tag in ids.items():
        kind, msg = outcome(s.c.wait_response(i, timeout=40))
        if kind == "ok":
            ok += 1
        else:
            failed[tag] = (msg, time.monotonic())
    for i, tag in late.items():
        kind, msg = outcome(s.c.wait_response(i, timeout=40))
        check_eq(kind, "error", "a call sent during a cut past the grace")
        check("never reached the server" in msg, "%s says it never reached the server: %s"
              % (tag, msg))
        failed[tag] = (msg, time.monotonic())
    told_by = time.monotonic() - t0
    check(all("not back within" in m or "never reached" in m or "outcome is unknown" in m
              for m, _ in failed.values()),
          "the failures give the reason: %r" % [m for m, _ in failed.values()][:2])
    before = s.runs()
    time.sleep(max(0, 60 - (time.monotonic() - t0)))
    net.link(True)
    s.c.wait_env("far", timeout=30)
    back = time.monotonic() - t0 - 60
    wait_until(lambda: s.c.status(s.tid).get("m", {}).get("runtimeStatus") == "connected", 30,
               "the server to restart")
    pid = s.server_pid()
    check(pid != s.pid, "the server was restarted (a fresh session)")
    runs = s.runs()
    for tag in failed:
        check_eq(runs.get(tag, []), before.get(tag, []),
                 "%s ran after the client was told it failed" % tag)
    for tag in ids.values():
        check(len(runs.get(tag, [])) <= 1, "%s ran twice" % tag)
    return ("# 60 s cut, grace 3 s: disconnected after %.1f s (%s); %d calls completed "
            "before, %d failed by %.1f s with the reason; none ran afterwards; ready %.1f s "
            "after the link returned, server restarted" %
            (seen, st.get("error"), ok, len(failed), told_by, back))


def t_resume_grace_per_env(ctx):
    net = Net(ctx)
    if not net.ok:
        return SKIP
    marks = ctx.path("marks")
    open(marks, "w").close()
    exs = {n: TcpExecutor(ctx, n, host="0.0.0.0", netns=net.ns) for n in ("short", "long")}
    envs = ""
    for n, x in exs.items():
        envs += "[[environments]]\nid = %s\nurl = %s\n" % (
            toml_str(n), toml_str("tcp://%s:%d" % (net.addr, x.port)))
        if n == "short":
            envs += "resume_grace_sec = 2\n"
    home = make_home(ctx, environments=envs, tokens={n: x.token for n, x in exs.items()})
    o = Orchestrator(ctx, home)
    c = o.client
    c.initialize()
    plugin = make_plugin(ctx, "marks", {"m": {"env": {"FIXTURE_APPEND_FILE": marks},
                                              "sandbox": "off"}})
    tids, before = {}, {}
    for n in exs:
        c.wait_env(n, timeout=30)
        tids[n] = c.start_thread([root("marks-" + n, n, plugin)])
        wait_until(lambda: c.status(tids[n]).get("m", {}).get("runtimeStatus") == "connected",
                   30, "server m on %s" % n)
        before[n] = env_status(c, n)
    ids = {}
    for n in exs:
        for i in range(4):
            tag = "%s%d" % (n, i)
            ids[c.send("mcpServer/tool/call", {"threadId": tids[n], "server": "m",
                                               "tool": "mark",
                                               "arguments": {"tag": tag, "ms": 300}})] = tag
    time.sleep(0.1)
    net.link(False)
    t0 = time.monotonic()
    # The orchestrator's side of both connections is reset: it knows at once
    # that the links are gone (no keepalive wait), and cannot dial again
    # until the veth is back.
    if sh("ss", "-K", "dst", net.addr) != 0:
        return "SKIP ss -K failed (no CONFIG_INET_DIAG_DESTROY?)"
    st = wait_status(c, "short", lambda x: "cannot resume" in (x.get("error") or "") or
                     "not back within" in (x.get("error") or ""), 20,
                     "the short environment's session to end")
    ended = time.monotonic() - t0
    check(env_status(c, "long")["status"] == "disconnected", "the long one is waiting")
    check("resuming" in (env_status(c, "long").get("error") or ""),
          "the long one says it resumes: %r" % env_status(c, "long"))
    time.sleep(max(0, 5 - (time.monotonic() - t0)))
    net.link(True)
    got = {}
    for i, tag in ids.items():
        got[tag] = outcome(c.wait_response(i, timeout=60))
    for tag, (kind, msg) in got.items():
        if tag.startswith("long"):
            check_eq(kind, "ok", "call %s across the cut (%s)" % (tag, msg))
        elif kind == "error":
            check("not back within 2000 ms" in msg,
                  "call %s fails with the reason: %r" % (tag, msg))
    short_failed = sum(1 for t, (k, _) in got.items() if t.startswith("short") and k == "error")
    check(short_failed > 0, "no call on the short environment failed: %r" % got)
    st_long = wait_status(c, "long", lambda x: x["status"] == "ready" and
                          x.get("resumes", 0) > before["long"].get("resumes", 0), 30,
                          "the long one to resume")
    check_eq(st_long.get("sessionId"), before["long"].get("sessionId"), "long's session")
    st_short = wait_status(c, "short", lambda x: x["status"] == "ready", 30,
                           "the short one to be ready again")
    check(st_short.get("sessionId") != before["short"].get("sessionId"),
          "the short one has a fresh session: %r" % st_short)
    check_eq(st_short.get("resumes", 0), before["short"].get("resumes", 0), "short's resumes")
    runs = {}
    with open(marks) as f:
        for line in f:
            tag, pid = line.split()
            runs.setdefault(tag, []).append(int(pid))
    for tag in ids.values():
        check(len(runs.get(tag, [])) <= 1, "%s ran twice" % tag)
        if tag.startswith("long"):
            check_eq(len(runs.get(tag, [])), 1, "executions of %s" % tag)
    return ("# resume_grace_sec = 2: the session ended %.1f s after the reset (%s); %d of 4 "
            "calls failed with the reason; the default's 4 calls completed once on the resumed "
            "session" % (ended, st.get("error"), short_failed))


def t_delay_and_loss(ctx):
    net = Net(ctx, lossy=True)
    if not net.ok:
        return SKIP
    start_bridge(ctx, net, 200, 0.05)
    s = Setup(ctx, net)
    lat = []
    for i in range(40):
        t = time.monotonic()
        s.c.tool(s.tid, "m", "mark", {"tag": "d%d" % i, "ms": 0}, timeout=60)
        lat.append((time.monotonic() - t) * 1000)
    ids = {s.send("m", "p%d" % i, 0): "p%d" % i for i in range(32)}
    for i, tag in ids.items():
        kind, msg = outcome(s.c.wait_response(i, timeout=120))
        check_eq(kind, "ok", "call %s over a lossy link (%s)" % (tag, msg))
    runs = s.runs()
    for tag in list(ids.values()) + ["d%d" % i for i in range(40)]:
        check_eq(len(runs.get(tag, [])), 1, "executions of %s" % tag)
    lat.sort()
    return ("# 200 ms delay, 5 %% loss each way: 40 sequential calls p50 %.0f ms, p99 %.0f ms "
            "(max %.0f); 32 concurrent calls all completed once" %
            (statistics.median(lat), lat[int(len(lat) * 0.99) - 1], lat[-1]))


class Blocked:
    """A local executor's fixture server "m" (tool_timeout_sec `timeout`)
    sleeping `ms` in a call without reading its stdin, a request larger
    than a pipe queued behind it: the next request to "m" waits in the
    executor, unwritten."""

    def __init__(self, ctx, ms, timeout=None):
        self.marks = ctx.path("marks")
        open(self.marks, "w").close()
        cfg = {"env": {"FIXTURE_APPEND_FILE": self.marks}, "sandbox": "off"}
        if timeout:
            cfg["tool_timeout_sec"] = timeout
        plugin = make_plugin(ctx, "blocked", {"m": cfg})
        self.o = Orchestrator(ctx, make_home(ctx), mode="unix")
        self.c = self.o.connect("main")
        self.tid = self.c.start_thread([root("blocked", "local", plugin)])
        wait_until(lambda: self.c.status(self.tid).get("m", {}).get("runtimeStatus") ==
                   "connected", 30, "server m")
        self.blocker = self.send(self.c, "blocker", ms)
        wait_until(lambda: "blocker" in self.runs(), 30, "the blocking call to start")
        self.filler = self.c.send("mcpServer/tool/call", {
            "threadId": self.tid, "server": "m", "tool": "echo",
            "arguments": {"text": "f" * (512 * 1024)}})
        # A connection's requests are handled in order (a large one is parsed
        # off the loop, the rest wait): once this answers, the filler is on
        # the link ahead of anything sent later.
        self.c.call("debug/counters")

    def send(self, client, tag, ms=0):
        return client.send("mcpServer/tool/call", {"threadId": self.tid, "server": "m",
                                                   "tool": "mark",
                                                   "arguments": {"tag": tag, "ms": ms}})

    def runs(self):
        out = {}
        with open(self.marks) as f:
            for line in f:
                tag, pid = line.split()
                out.setdefault(tag, []).append(int(pid))
        return out

    def not_delivered(self):
        return self.o.stderr_text().count("not delivered: ")


def t_cancel_overtakes(ctx):
    b = Blocked(ctx, ms=4000)
    other = b.o.connect("canceller")
    b.send(other, "victim")
    # Requests of one connection are handled in order: once this answers,
    # the victim went out (behind the filler on the link, so it reaches the
    # executor before the cancel that closing this client causes).
    other.call("debug/counters")
    other.close()
    wait_until(lambda: b.not_delivered() >= 1, 30, "the executor to withdraw the victim")
    check("cancelled while it waited for the server to read its stdin" in b.o.stderr_text(),
          "the executor says why it did not deliver the victim")
    kind, msg = outcome(b.c.wait_response(b.blocker, timeout=60))
    check_eq(kind, "ok", "the blocking call (%s)" % msg)
    b.c.tool(b.tid, "m", "mark", {"tag": "after", "ms": 0}, timeout=30)
    runs = b.runs()
    check("victim" not in runs, "the cancelled request ran: %r" % runs)
    check_eq(len(runs.get("after", [])), 1, "executions of the call after")
    check_eq(runs["after"][0], runs["blocker"][0], "the same server ran both")
    return "# the cancelled request was withdrawn unwritten; the server ran the rest"


def t_deadline_in_queue(ctx):
    b = Blocked(ctx, ms=5000, timeout=2)
    victim = b.send(b.c, "victim")
    kind, msg = outcome(b.c.wait_response(victim, timeout=30))
    check_eq(kind, "error", "a call queued past its deadline")
    check("timed out" in msg, "its error says it timed out: %s" % msg)
    wait_until(lambda: b.not_delivered() >= 1, 30, "the executor to drop the victim")
    # Calls the client is told failed must never run; one that succeeds
    # shows the server reads again (bounded: the blocker sleeps 5 s).
    failed, done = [], None
    for i in range(20):
        kind, msg = outcome(b.c.wait_response(b.send(b.c, "after%d" % i), timeout=30))
        if kind == "ok":
            done = "after%d" % i
            break
        failed.append(("after%d" % i, msg))
    check(done is not None, "no call succeeded once the server read again: %r" % failed[-1:])
    runs = b.runs()
    check("victim" not in runs, "the timed-out request ran later: %r" % runs)
    for tag, msg in failed:
        if "never reached the server" in msg:
            check(tag not in runs, "%s was told it never reached the server, and ran" % tag)
    check_eq(len(runs[done]), 1, "executions of %s" % done)
    return ("# the timed-out request never ran (%d failed before the server read again)"
            % len(failed))


TESTS = [
    ("a 5 s cut with 32 calls in flight: each completes once, same server",
     t_cut_5s),
    ("a 14 s cut, past the keepalive timeout: the session resumes, calls complete once",
     t_cut_past_keepalive),
    ("a TCP reset: the session resumes on a new connection", t_tcp_reset),
    ("a 60 s cut past the grace: calls fail with the reason and never run later",
     t_cut_past_grace),
    ("resume_grace_sec in environments.toml: a short grace ends the session, the default "
     "resumes", t_resume_grace_per_env),
    ("200 ms delay and 5 % loss: calls complete", t_delay_and_loss),
    ("a cancel overtakes a request queued for a busy server's stdin", t_cancel_overtakes),
    ("a request whose deadline passes in the stdin queue never runs", t_deadline_in_queue),
]

if __name__ == "__main__":
    sys.exit(run_suite(TESTS))
