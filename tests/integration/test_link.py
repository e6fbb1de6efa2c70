#!/usr/bin/env python3
"""The link as the orchestrator sees it, with real daemons: two orchestrators
and one executor (busy, then a standby that takes over from a hung one), an
impostor that bound the port of a vanished executor, a spawned executor's
private socket and another uid, a 20 s partition in a network namespace, and
a protocol-1 executor. Timings are printed (TAP diagnostics), never asserted;
the bounds asserted are generous behavioural ones.

Binaries: $TANDEM_ORCHESTRATOR, $TANDEM_EXECUTOR, $MCP_FIXTURE. Network
namespaces and uid changes need root: those tests SKIP loudly without it.
"""

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tandem_testlib import (  # noqa: E402
    EXECUTOR, Orchestrator, RpcError, TestFailure, check, check_eq, cmdline, make_home,
    make_plugin, random_token, root, run_suite, toml_str, wait_until, write_file)

SP_HEADER = b"\0SP\0\0\x11\0\0"
MARKER = b"\0TDM\0\x03\0\0"


class TcpExecutor:
    """A standalone tandem-executor on tcp:// with a token (port 0: the one
    it bound is read from its log). netns: run inside that namespace."""

    def __init__(self, ctx, exec_id, host="127.0.0.1", netns=None, extra_args=()):
        self.ctx, self.exec_id = ctx, exec_id
        self.token = random_token()
        self.token_file = write_file(ctx.path("tokens", exec_id), self.token + "\n", 0o600)
        argv = [EXECUTOR, "--listen", "tcp://%s:0" % host, "--auth-token-file",
                self.token_file, "--id", exec_id, "--log-level", "debug"] + list(extra_args)
        if netns:
            argv = ["ip", "netns", "exec", netns] + argv
        self.proc = ctx.popen(argv, "executor-" + exec_id)
        self.pid = self.proc.pid
        self.port = None

        def bound():
            if self.proc.poll() is not None:
                raise TestFailure("executor %s exited with %s" % (exec_id, self.proc.returncode))
            m = re.search(r"listening on tcp://[^:]+:(\d+)", self.log())
            self.port = int(m.group(1)) if m else None
            return self.port
        wait_until(bound, 10, "executor %s to listen" % exec_id)

    def log(self):
        with open(self.proc.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def url_home(ctx, env_id, url, token, name="home"):
    return make_home(ctx, environments="""
[[environments]]
id = %s
url = %s
""" % (toml_str(env_id), toml_str(url)), tokens={env_id: token}, name=name)


def env_status(c, env_id):
    return c.call("environment/status", {"environmentId": env_id})


def wait_status(c, env_id, pred, timeout, what):
    last = {}

    def ok():
        last.update(env_status(c, env_id))
        return pred(last)
    try:
        wait_until(ok, timeout, what, interval=0.05)
    except TestFailure:
        raise TestFailure("%s; last status %r" % (what, last))
    return last


# ---- 1, 2: two orchestrators, one executor -----------------------------------

def t_busy_then_standby_takes_over(ctx):
    ex = TcpExecutor(ctx, "shared")
    url = "tcp://127.0.0.1:%d" % ex.port
    a = Orchestrator(ctx, url_home(ctx, "x", url, ex.token, "home-a"), mode="unix", label="orch-a")
    ca = a.connect()
    ca.wait_env("x")
    b = Orchestrator(ctx, url_home(ctx, "x", url, ex.token, "home-b"), mode="unix", label="orch-b")
    cb = b.connect()
    st = wait_status(cb, "x", lambda s: "busy" in (s.get("error") or ""), 20,
                     "the second orchestrator told 'busy'")
    check_eq(st["status"], "disconnected", "the refused orchestrator's status")
    # Two live orchestrators do not take the executor from each other.
    time.sleep(5)
    check_eq(env_status(ca, "x")["status"], "ready", "the first orchestrator after 5 s")
    check("busy" in (env_status(cb, "x").get("error") or ""), "the second one stays refused")
    check_eq(ex.log().count("peer authenticated"), 1, "sessions started in 5 s of contention")
    # The first one's host hangs (SIGSTOP: its connection stays open, nothing
    # answers): the standby gets in.
    t0 = time.monotonic()
    os.kill(a.pid, signal.SIGSTOP)
    try:
        wait_status(cb, "x", lambda s: s["status"] == "ready", 30, "the standby to take over")
        took = time.monotonic() - t0
    finally:
        os.kill(a.pid, signal.SIGCONT)
    check("did not answer a probe" in ex.log(), "the executor says why it let go")
    # The old one, awake again, learns it lost the executor.
    wait_status(ca, "x", lambda s: s["status"] != "ready", 30, "the old orchestrator to notice")
    return "# standby in %.2f s after the first orchestrator hung" % took


# ---- 3: an impostor on the port of a vanished executor ---------------------------

class Impostor:
    """Binds a port, answers the opening like an executor that has no
    secret, and records every byte each connection sends."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.received = []
        self.stop = False
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()

    @staticmethod
    def challenge():
        # [1, CHALLENGE, event, 0, 0, {1: nonce, 2: 2, 3: 2, 4: false, 5: false}]
        body = b"\x85\x01\xc4\x20" + os.urandom(32) + b"\x02\x02\x03\x02\x04\xc2\x05\xc2"
        payload = b"\x96\x01\x02\x02\x00\x00" + body
        return SP_HEADER + struct.pack(">Q", len(payload) + 4) + b"\0\0\0\x01" + payload

    def serve(self, conn):
        got = b""
        conn.settimeout(0.2)
        sent = False
        end = time.monotonic() + 3
        while not self.stop and time.monotonic() < end:
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not chunk:
                break
            got += chunk
            if not sent and len(got) >= 8:
                conn.sendall(self.challenge())
                sent = True
        conn.close()
        self.received.append(got)

    def run(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def close(self):
        self.stop = True
        self.sock.close()
        self.th.join(5)


def frames(data):
    """(type, kind) of each length-prefixed frame in data."""
    out = []
    while len(data) >= 4:
        n = struct.unpack(">I", data[:4])[0]
        payload, data = data[4:4 + n], data[4 + n:]
        out.append((payload[2] if len(payload) > 3 else None,
                    payload[3] if len(payload) > 3 else None))
    return out


def t_impostor_receives_only_the_handshake(ctx):
    ex = TcpExecutor(ctx, "victim")
    plugin = make_plugin(ctx, "slow", {"slow": {}})
    # A short grace: the killed executor's session is given up on soon (the
    # impostor cannot resume it), and the calls in flight fail then.
    o = Orchestrator(ctx, url_home(ctx, "v", "tcp://127.0.0.1:%d" % ex.port, ex.token),
                     args=("--link-grace-sec", "2"))
    c = o.client
    c.initialize()
    c.wait_env("v")
    tid = c.start_thread([root("slow", "v", plugin)])
    wait_until(lambda: c.status(tid).get("slow", {}).get("runtimeStatus") == "connected", 20,
               "the server on the victim executor")
    # Calls in flight, then the executor vanishes and an impostor takes the port.
    ids = [c.send("mcpServer/tool/call", {"threadId": tid, "server": "slow", "tool": "sleep",
                                          "arguments": {"ms": 20000}}) for _ in range(20)]
    time.sleep(0.3)
    port = ex.port
    ex.kill()
    imp = Impostor(port)
    try:
        t0 = time.monotonic()
        for i in ids:
            resp = c.wait_response(i, timeout=20)
            err = (resp.get("error") or {}).get("message", "")
            check("error" in resp, "a call in flight succeeded after its executor was killed: "
                  "%r" % resp)
            check("disconnected" in err or "closed" in err or "lost" in err,
                  "the error names the cause: %r" % err)
        failed_in = time.monotonic() - t0
        # New calls while the impostor holds the port: refused, never sent.
        for _ in range(5):
            try:
                c.tool(tid, "slow", "echo", {"message": "secret-argument-xyz"}, timeout=10)
            except RpcError:
                pass
        wait_until(lambda: len(imp.received) >= 2, 20, "the orchestrator to dial the impostor")
        time.sleep(0.5)
    finally:
        imp.close()
    check(imp.received, "the orchestrator never dialled the impostor")
    for got in imp.received:
        check(got.startswith(SP_HEADER), "a connection began with %r" % got[:16])
        rest = got[len(SP_HEADER):]
        if not rest:
            continue
        check(rest.startswith(MARKER), "after the SP header: %r" % rest[:16])
        types = frames(rest[len(MARKER):])
        check(all(t in (0x01, 0x05) and k == 0 for t, k in types),
              "the impostor received frames other than HELLO/AUTH: %r" % types)
        check(b"secret-argument-xyz" not in got, "a tool argument reached the impostor")
    return "# calls in flight failed within %.2f s; %d impostor connections, handshake only" % (
        failed_in, len(imp.received))


# ---- 4: a spawned executor is reachable by our uid alone ----------------------

def t_spawned_executor_private(ctx):
    o = Orchestrator(ctx, make_home(ctx))
    c = o.client
    c.initialize()
    c.wait_env("local")
    pid = o.executor_pid("local")
    check(pid, "no spawned executor")
    argv = cmdline(pid)
    url = argv[argv.index("--listen") + 1]
    check(url.startswith("ipc://"), "a spawned executor listens on %s" % url)
    path = url[len("ipc://"):]
    d = os.path.dirname(path)
    st = os.stat(d)
    check_eq(st.st_mode & 0o777, 0o700, "mode of %s" % d)
    check_eq(st.st_uid, os.getuid(), "owner of %s" % d)
    # None of the executor's sockets is in the abstract namespace.
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if t.startswith("socket:["):
            inodes.add(t[8:-1])
    with open("/proc/net/unix") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 8 and parts[6] in inodes:
                check(not parts[7].startswith("@"), "the executor has an abstract socket %s" %
                      parts[7])
    result = "SKIP the other-uid part: not root"
    if os.geteuid() == 0:
        r, w = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(r)
            try:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(path)
                os.write(w, b"connected")
            except PermissionError:
                os.write(w, b"denied")
            except Exception as e:  # noqa
                os.write(w, repr(e).encode())
            os._exit(0)
        os.close(w)
        got = os.read(r, 200)
        os.close(r)
        os.waitpid(child, 0)
        check_eq(got, b"denied", "uid 65534 connecting to the spawned executor")
        result = "# uid 65534: %s" % got.decode()
    o.stop()
    check(not os.path.exists(d), "the private directory %s outlived the orchestrator" % d)
    return result


# ---- 5: a partition in a network namespace --------------------------------------

class Netns:
    def __init__(self, ctx):
        self.name = "tdm-link-%s" % ctx.tag[-10:]
        self.vh = "tdmph%s" % ctx.tag[-6:]
        self.vn = "tdmpn%s" % ctx.tag[-6:]
        self.net = os.getpid() % 200 + 20
        self.ok = os.geteuid() == 0 and subprocess.call(
            ["ip", "netns", "add", self.name], stderr=subprocess.DEVNULL) == 0
        if not self.ok:
            return
        ctx.closers.append(self.down)
        cmds = [["ip", "link", "add", self.vh, "type", "veth", "peer", "name", self.vn,
                 "netns", self.name],
                ["ip", "addr", "add", "10.232.%d.1/24" % self.net, "dev", self.vh],
                ["ip", "link", "set", self.vh, "up"],
                ["ip", "-n", self.name, "addr", "add", "10.232.%d.2/24" % self.net, "dev",
                 self.vn],
                ["ip", "-n", self.name, "link", "set", self.vn, "up"],
                ["ip", "-n", self.name, "link", "set", "lo", "up"]]
        for cmd in cmds:
            if subprocess.call(cmd) != 0:
                self.down()
                self.ok = False
                return

    def link(self, up):
        subprocess.check_call(["ip", "link", "set", self.vh, "up" if up else "down"])

    def down(self):
        subprocess.call(["ip", "link", "del", self.vh], stderr=subprocess.DEVNULL)
        subprocess.call(["ip", "netns", "del", self.name], stderr=subprocess.DEVNULL)


def t_partition_20s(ctx):
    ns = Netns(ctx)
    if not ns.ok:
        return "SKIP cannot make a network namespace (needs root and ip(8))"
    ex = TcpExecutor(ctx, "far", host="0.0.0.0", netns=ns.name)
    o = Orchestrator(ctx, url_home(ctx, "far", "tcp://10.232.%d.2:%d" % (ns.net, ex.port),
                                   ex.token))
    c = o.client
    c.initialize()
    c.wait_env("far")
    ns.link(False)
    t0 = time.monotonic()
    st = wait_status(c, "far", lambda s: s["status"] == "disconnected", 20,
                     "the orchestrator to mark the link dead")
    orch_dead = time.monotonic() - t0
    check("keepalive" in (st.get("error") or ""), "the status says why: %r" % st.get("error"))
    wait_until(lambda: "keepalive timeout" in ex.log(), 20, "the executor to drop its session")
    exec_dead = time.monotonic() - t0
    time.sleep(max(0, 20 - (time.monotonic() - t0)))
    ns.link(True)
    t1 = time.monotonic()
    c.wait_env("far", timeout=30)
    back = time.monotonic() - t1
    return ("# partition: orchestrator marked it dead after %.1f s (%s), executor after "
            "%.1f s; ready again %.1f s after the link returned" %
            (orch_dead, st.get("error"), exec_dead, back))


# ---- 6: an orchestrator started during a flood -------------------------------------

class Flood:
    """32 attackers: silent, SP greeting, or one byte at a time; each
    re-opens its connection as soon as the executor closes it."""

    def __init__(self, port, n=32):
        self.port, self.stop, self.opened = port, False, 0
        self.threads = [threading.Thread(target=self.attacker, args=(i % 3,), daemon=True)
                        for i in range(n)]
        for t in self.threads:
            t.start()

    def attacker(self, mode):
        while not self.stop:
            try:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=1)
            except OSError:
                time.sleep(0.01)
                continue
            self.opened += 1
            s.settimeout(0.1)
            try:
                if mode == 1:
                    s.sendall(SP_HEADER)
                while not self.stop:
                    if mode == 2:
                        s.sendall(os.urandom(1))
                    try:
                        if s.recv(4096) == b"":
                            break
                    except socket.timeout:
                        pass
            except OSError:
                pass
            s.close()

    def close(self):
        self.stop = True
        for t in self.threads:
            t.join(5)


def t_ready_during_flood(ctx):
    ex = TcpExecutor(ctx, "flooded")
    flood = Flood(ex.port)
    try:
        time.sleep(1)  # the flood is in full swing
        t0 = time.monotonic()
        o = Orchestrator(ctx, url_home(ctx, "f", "tcp://127.0.0.1:%d" % ex.port, ex.token))
        c = o.client
        c.initialize()
        c.wait_env("f", timeout=30)
        took = time.monotonic() - t0
    finally:
        flood.close()
    return "# ready %.2f s after start, during a flood (%d attacking connections so far)" % (
        took, flood.opened)


# ---- 7: a protocol-1 executor ---------------------------------------------------------

def t_v1_executor_told(ctx):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    got = []

    def old_executor():
        # What an nng SP pair1 listener of protocol 1 does: header, CHALLENGE.
        srv.settimeout(15)
        try:
            conn, _ = srv.accept()
        except OSError:
            return
        conn.settimeout(5)
        conn.sendall(SP_HEADER)
        body = b"\x84\x01\xc4\x20" + os.urandom(32) + b"\x02\x01\x03\x01\x04\xc3"
        payload = b"\x96\x01\x02\x02\x00\x00" + body
        conn.sendall(struct.pack(">Q", len(payload) + 4) + b"\0\0\0\x01" + payload)
        data = b""
        try:
            while len(data) < 8 + 12 + 200:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        got.append(data)
        conn.close()

    th = threading.Thread(target=old_executor, daemon=True)
    th.start()
    o = Orchestrator(ctx, url_home(ctx, "old", "tcp://127.0.0.1:%d" % port, random_token()))
    c = o.client
    c.initialize()
    st = wait_status(c, "old", lambda s: "protocol 1" in (s.get("error") or ""), 20,
                     "the orchestrator to say the executor speaks protocol 1")
    th.join(10)
    srv.close()
    check(got and got[0].startswith(SP_HEADER), "the orchestrator's opening: %r" % got[:1])
    msg = got[0][8:]
    check(len(msg) > 12, "no HELLO for the protocol-1 executor")
    payload = msg[12:]
    # [1, HELLO, request, id, 0, {1: 3, 2: 3, ...}]: offers version 3 only
    check_eq(payload[:3], b"\x96\x01\x01", "a protocol-1 envelope around HELLO")
    check(b"\x01\x03\x02\x03" in payload, "HELLO offers 3..3: %r" % payload[:40])
    return "# %s" % st.get("error")


TESTS = [
    ("busy, then a standby takes over from a hung orchestrator", t_busy_then_standby_takes_over),
    ("an impostor on a vanished executor's port gets the handshake only",
     t_impostor_receives_only_the_handshake),
    ("a spawned executor's socket is private to our uid", t_spawned_executor_private),
    ("a 20 s partition: both sides mark the link dead, status says so", t_partition_20s),
    ("an orchestrator started during a flood reaches ready", t_ready_during_flood),
    ("a protocol-1 executor is told, and the status says so", t_v1_executor_told),
]

if __name__ == "__main__":
    sys.exit(run_suite(TESTS))
