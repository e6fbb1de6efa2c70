#!/usr/bin/env python3
"""Client transports (issue 15): WebSocket on unix:// and ws://, the line
protocol kept for clients that start with '{', GET /readyz, ws:// auth
(capability token, HS256 JWT), the bounds on client memory and the fairness
between clients, and Codex's own `codex exec --remote` (npm @openai/codex,
from $TANDEM_NPM_PEERS) against tandem with the fake Responses provider and
an MCP server on the spawned executor. Prints TAP.

The WebSocket client here is a small RFC 6455 client on the standard
library (masked frames, as a client must send).
"""

import base64
import hashlib
import hmac
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tandem_testlib import (  # noqa: E402
    MCP_FIXTURE, Orchestrator, check, check_eq, make_home, random_token, run_suite, toml_str,
    wait_until, write_file)
from test_turns import API_KEY, Fake, home_for  # noqa: E402

NPM = os.environ.get("TANDEM_NPM_PEERS") or ""
CODEX = os.path.join(NPM, "node_modules", ".bin", "codex") if NPM else ""
TOKEN = "tandem-ws-capability-0123456789abcdef"
SECRET = "an-hs256-shared-secret-of-more-than-32-bytes!"
MAX_MESSAGE = 16 * 1024 * 1024  # CLIENT_MAX_LINE
GLOBAL_INPUT = 128 * 1024 * 1024  # CLIENT_GLOBAL_INPUT


# ---- a WebSocket client -------------------------------------------------------------

class WsClosed(Exception):
    def __init__(self, code, reason):
        super().__init__("closed %s %r" % (code, reason))
        self.code, self.reason = code, reason


class Ws:
    """One WebSocket connection (unix path or (host, port))."""

    def __init__(self, addr, path="/rpc", headers=None, timeout=20.0):
        if isinstance(addr, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(addr)
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        head = ("GET %s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                % (path, key))
        for k, v in (headers or {}).items():
            head += "%s: %s\r\n" % (k, v)
        self.sock.sendall((head + "\r\n").encode())
        self.status, self.head = self._read_head()
        self.accept_ok = False
        if self.status == 101:
            want = base64.b64encode(hashlib.sha1(
                (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
            self.accept_ok = ("sec-websocket-accept: " + want.lower()) in self.head.lower()
        self.next_id = 1

    def _recv(self):
        d = self.sock.recv(65536)
        if not d:
            raise WsClosed(1006, "eof")
        self.buf += d

    def _read_head(self):
        while b"\r\n\r\n" not in self.buf:
            self._recv()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        head = head.decode("latin-1")
        return int(head.split()[1]), head

    def send_frame(self, opcode, payload, fin=True):
        n = len(payload)
        b0 = (0x80 if fin else 0) | opcode
        if n < 126:
            h = struct.pack("!BB", b0, 0x80 | n)
        elif n < 65536:
            h = struct.pack("!BBH", b0, 0x80 | 126, n)
        else:
            h = struct.pack("!BBQ", b0, 0x80 | 127, n)
        mask = os.urandom(4)
        # XOR with the mask, fast enough for megabytes.
        m = (mask * (n // 4 + 1))[:n]
        body = (int.from_bytes(payload, "big") ^ int.from_bytes(m, "big")).to_bytes(n, "big") \
            if n else b""
        self.sock.sendall(h + mask + body)

    def send_text(self, text):
        self.send_frame(1, text.encode() if isinstance(text, str) else text)

    def recv_frame(self):
        """(fin, opcode, payload)."""
        while len(self.buf) < 2:
            self._recv()
        b0, b1 = self.buf[0], self.buf[1]
        n, off = b1 & 0x7f, 2
        if n == 126:
            while len(self.buf) < 4:
                self._recv()
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            while len(self.buf) < 10:
                self._recv()
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        check(not (b1 & 0x80), "the server masked a frame")
        while len(self.buf) < off + n:
            self._recv()
        payload, self.buf = self.buf[off:off + n], self.buf[off + n:]
        return bool(b0 & 0x80), b0 & 0x0f, payload

    def recv_msg(self):
        """The next JSON message; pongs are returned as ("pong", payload)."""
        while True:
            fin, op, p = self.recv_frame()
            if op == 8:
                code = struct.unpack("!H", p[:2])[0] if len(p) >= 2 else 1005
                raise WsClosed(code, p[2:].decode("utf-8", "replace"))
            if op == 10:
                return ("pong", p)
            if op == 1:
                check(fin, "the server fragmented a message")
                return json.loads(p)

    def call(self, method, params=None):
        i = self.next_id
        self.next_id += 1
        msg = {"id": i, "method": method}
        if params is not None:
            msg["params"] = params
        self.send_text(json.dumps(msg))
        while True:
            m = self.recv_msg()
            if isinstance(m, dict) and m.get("id") == i:
                return m

    def expect_close(self):
        try:
            while True:
                self.recv_msg()
        except WsClosed as e:
            return e.code

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def http_get(port, path, headers=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    req = "GET %s HTTP/1.1\r\nHost: x\r\n" % path
    for k, v in (headers or {}).items():
        req += "%s: %s\r\n" % (k, v)
    s.sendall((req + "\r\n").encode())
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode("utf-8", "replace")


def ws_port(orch):
    def found():
        m = re.search(r"serving the client API on ws://\S+ \(port (\d+)", orch.stderr_text())
        return int(m.group(1)) if m else None
    wait_until(lambda: found() or orch.proc.poll() is not None, 20, "the ws:// port in the log")
    check(orch.proc.poll() is None, "orchestrator exited: %s" % orch.stderr_text()[-800:])
    return found()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sanitized(pid):
    with open("/proc/%d/maps" % pid) as f:
        return "libasan" in f.read()


def start_orch(ctx, args=(), config="", env=None):
    home = make_home(ctx, config=config)
    orch = Orchestrator(ctx, home, mode="unix", extra_args=list(args), env=env,
                        log_level="debug")
    orch.wait_socket()
    return orch


def token_file(ctx, text=TOKEN):
    p = ctx.path("ws-token")
    write_file(p, text + "\n", 0o600)
    return p


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def jwt(claims, secret=SECRET, alg="HS256"):
    h = b64u(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    p = b64u(json.dumps(claims).encode())
    sig = hmac.new(secret.encode(), ("%s.%s" % (h, p)).encode(), hashlib.sha256).digest()
    return "%s.%s.%s" % (h, p, b64u(sig))


# ---- transports ---------------------------------------------------------------------

def t_unix_speaks_websocket_and_lines(ctx):
    orch = start_orch(ctx)
    # A Codex-like client: upgrade on /rpc, offering compression.
    w = Ws(orch.sock, headers={"x-codex-app-server-compression": "zstd-stream-v1"})
    check_eq(w.status, 101, "upgrade status")
    check(w.accept_ok, "Sec-WebSocket-Accept wrong: %s" % w.head)
    check("compression" not in w.head.lower(), "compression answered: %s" % w.head)
    r = w.call("initialize", {"clientInfo": {"name": "ws-test", "version": "1"}})
    check("result" in r, "initialize: %s" % r)
    w.send_text(json.dumps({"method": "initialized"}))
    r = w.call("thread/start", {})
    check("result" in r and r["result"]["thread"]["id"], "thread/start: %s" % r)
    # The CLI's line protocol on the same socket.
    c = orch.connect("line")
    r = c.call("thread/list", {})
    check("data" in r, "thread/list over lines: %s" % r)
    # Any path upgrades.
    w2 = Ws(orch.sock, path="/anything")
    check_eq(w2.status, 101, "upgrade on another path")
    w2.close()
    w.close()
    orch.stop()


def t_ws_frames_ping_fragments_close_codes(ctx):
    orch = start_orch(ctx)
    w = Ws(orch.sock)
    # ping -> pong with the same payload
    w.send_frame(9, b"are you there")
    check_eq(w.recv_msg(), ("pong", b"are you there"), "pong")
    # a message in three fragments, a ping between them
    msg = json.dumps({"id": 7, "method": "initialize",
                      "params": {"clientInfo": {"name": "frag", "version": "1"}}}).encode()
    w.send_frame(1, msg[:10], fin=False)
    w.send_frame(9, b"mid")
    w.send_frame(0, msg[10:20], fin=False)
    w.send_frame(0, msg[20:], fin=True)
    got = [w.recv_msg(), w.recv_msg()]
    check_eq(got[0], ("pong", b"mid"), "pong inside a fragmented message")
    check_eq(got[1].get("id"), 7, "reassembled request answered: %s" % got[1])
    # a parse error keeps the connection
    w.send_text("{not json")
    m = w.recv_msg()
    check_eq(m["error"]["code"], -32700, "parse error")
    # invalid UTF-8 -> 1007
    w.send_frame(1, b'{"id":1,"method":"\xc3"}')
    check_eq(w.expect_close(), 1007, "close code for invalid UTF-8")
    w.close()
    w = Ws(orch.sock)
    w.send_frame(2, b"\x00\x01")
    check_eq(w.expect_close(), 1003, "close code for a binary message")
    w.close()
    # over the maximum message size -> 1009, announced in the header already
    w = Ws(orch.sock)
    hdr = struct.pack("!BBQ", 0x81, 0x80 | 127, MAX_MESSAGE + 1) + os.urandom(4)
    w.sock.sendall(hdr + b"x" * 64)
    check_eq(w.expect_close(), 1009, "close code for a message over the bound")
    w.close()
    # a normal close is answered with a close
    w = Ws(orch.sock)
    w.send_frame(8, struct.pack("!H", 1000) + b"bye")
    check_eq(w.expect_close(), 1000, "close echoed")
    w.close()
    # the daemon lives on
    c = orch.connect("after")
    c.call("thread/list", {})
    orch.stop()


def t_ws_tcp_readyz_and_paths(ctx):
    orch = start_orch(ctx, ["--listen", "ws://127.0.0.1:0"])
    port = ws_port(orch)
    wait_until(lambda: http_get(port, "/readyz")[0] == 200, 20, "/readyz 200")
    st, body = http_get(port, "/nothing")
    check_eq(st, 404, "plain GET of another path")
    w = Ws(("127.0.0.1", port))
    check_eq(w.status, 101, "upgrade on ws://")
    r = w.call("initialize", {"clientInfo": {"name": "tcp", "version": "1"}})
    check("result" in r, "initialize over ws://: %s" % r)
    w.close()
    orch.stop()


def t_readyz_503_until_ready(ctx):
    # A required environment that never comes up: not ready.
    envs = 'include_local = false\n\n[[environments]]\nid = "never"\n' \
           'url = "ipc:///nonexistent/tandem-codexws/link"\nrequired = true\n'
    home = make_home(ctx, environments=envs, tokens={"never": random_token()})
    orch = Orchestrator(ctx, home, mode="unix", extra_args=["--listen", "ws://127.0.0.1:0"])
    orch.wait_socket()
    port = ws_port(orch)
    st, body = http_get(port, "/readyz")
    check_eq(st, 503, "/readyz with a required environment down (%s)" % body)
    orch.stop()


def t_start_refused_non_loopback_without_auth_bad_flags_lax_token(ctx):
    home = make_home(ctx)
    orch = Orchestrator(ctx, home, mode="unix", extra_args=["--listen", "ws://0.0.0.0:0"])
    rc = orch.proc.wait(timeout=20)
    check(rc != 0, "started on 0.0.0.0 without auth")
    check("refusing to listen without --ws-auth" in orch.stderr_text(),
          "reason not logged: %s" % orch.stderr_text()[-600:])
    # Bad combinations stop at the command line (status 2), with a reason.
    from tandem_testlib import ORCHESTRATOR
    for args, why in (
            (["--listen", "stdio://", "--listen", "unix://" + ctx.path("x.sock")],
             "stdio:// cannot be combined"),
            (["--ws-token-file", token_file(ctx)], "need --ws-auth"),
            (["--ws-auth", "magic"], "--ws-auth takes"),
            (["--listen", "tcp://127.0.0.1:1"], "--listen takes")):
        r = subprocess.run([ORCHESTRATOR, "--home", home] + args, capture_output=True,
                           timeout=20, stdin=subprocess.DEVNULL)
        check_eq(r.returncode, 2, "exit status for %s" % args)
        check(why in r.stderr.decode(), "%s: %s" % (args, r.stderr.decode()[-300:]))
    # A token file others may read is refused at start-up.
    lax = ctx.path("lax-token")
    write_file(lax, TOKEN + "\n", 0o644)
    orch = Orchestrator(ctx, home, mode="unix", label="lax",
                        extra_args=["--listen", "ws://127.0.0.1:0", "--ws-auth",
                                    "capability-token", "--ws-token-file", lax])
    check(orch.proc.wait(timeout=20) != 0, "started with a token file of mode 0644")
    check("--ws-auth" in orch.stderr_text(), "no reason: %s" % orch.stderr_text()[-400:])
    check(TOKEN not in orch.stderr_text(), "the token was logged")
    # With auth it starts.
    orch = Orchestrator(ctx, home, mode="unix", label="authed",
                        extra_args=["--listen", "ws://0.0.0.0:0", "--ws-auth",
                                    "capability-token", "--ws-token-file", token_file(ctx)])
    orch.wait_socket()
    ws_port(orch)
    orch.stop()


# ---- auth ---------------------------------------------------------------------------

def refused(port, headers):
    w = Ws(("127.0.0.1", port), headers=headers)
    st = w.status
    # Nothing served: the connection ends after the answer.
    try:
        while True:
            w._recv()
    except (WsClosed, OSError):
        pass
    w.close()
    return st


def t_capability_token(ctx):
    orch = start_orch(ctx, ["--listen", "ws://127.0.0.1:0", "--ws-auth", "capability-token",
                            "--ws-token-file", token_file(ctx)])
    port = ws_port(orch)
    check_eq(refused(port, {}), 401, "no token")
    check_eq(refused(port, {"Authorization": "Bearer wrong-token"}), 401, "wrong token")
    check_eq(refused(port, {"Authorization": "Bearer " + TOKEN + "x"}), 401, "longer token")
    check_eq(refused(port, {"Authorization": "Basic " + TOKEN}), 401, "not Bearer")
    w = Ws(("127.0.0.1", port), headers={"Authorization": "Bearer " + TOKEN})
    check_eq(w.status, 101, "right token")
    check("result" in w.call("initialize", {"clientInfo": {"name": "t", "version": "1"}}),
          "served")
    w.close()
    # The unix socket (mode 0600) needs no token.
    check_eq(Ws(orch.sock).status, 101, "unix without token")
    check(TOKEN not in orch.stderr_text(), "the token was logged")
    orch.stop()
    # Only the token's SHA-256 on the command line.
    sha = hashlib.sha256(TOKEN.encode()).hexdigest()
    orch = start_orch(ctx, ["--listen", "ws://127.0.0.1:0", "--ws-auth", "capability-token",
                            "--ws-token-sha256", sha])
    port = ws_port(orch)
    check_eq(refused(port, {"Authorization": "Bearer nope"}), 401, "wrong token (sha256)")
    check_eq(Ws(("127.0.0.1", port), headers={"Authorization": "Bearer " + TOKEN}).status, 101,
             "right token (sha256)")
    orch.stop()


def t_signed_bearer_token(ctx):
    sf = ctx.path("ws-secret")
    write_file(sf, SECRET + "\n", 0o600)
    orch = start_orch(ctx, ["--listen", "ws://127.0.0.1:0", "--ws-auth", "signed-bearer-token",
                            "--ws-shared-secret-file", sf, "--ws-issuer", "tandem-test",
                            "--ws-audience", "tandem", "--ws-max-clock-skew-seconds", "5"])
    port = ws_port(orch)
    now = int(time.time())
    good = {"iss": "tandem-test", "aud": "tandem", "exp": now + 300, "iat": now}
    cases = [
        ("bad signature", jwt(good, secret=SECRET + "x")),
        ("wrong issuer", jwt(dict(good, iss="someone-else"))),
        ("wrong audience", jwt(dict(good, aud="other"))),
        ("expired", jwt(dict(good, exp=now - 60))),
        ("no exp", jwt({"iss": "tandem-test", "aud": "tandem"})),
        ("alg none", jwt(good, alg="none")),
    ]
    for what, tok in cases:
        check_eq(refused(port, {"Authorization": "Bearer " + tok}), 401, what)
    check_eq(refused(port, {}), 401, "no token")
    w = Ws(("127.0.0.1", port), headers={"Authorization": "Bearer " + jwt(good)})
    check_eq(w.status, 101, "a good JWT")
    check("result" in w.call("initialize", {"clientInfo": {"name": "t", "version": "1"}}),
          "served")
    w.close()
    check(SECRET not in orch.stderr_text(), "the secret was logged")
    orch.stop()


# ---- bounds and fairness --------------------------------------------------------------

def t_partial_messages_bounded_globally(ctx):
    """60 connections each holding most of a 15 MiB message: the input held
    over all of them stays within CLIENT_GLOBAL_INPUT (connections beyond it
    are closed with 1013), and another client is still served."""
    orch = start_orch(ctx)
    c = orch.connect("bystander")
    base = rss_kib(orch.pid)
    part = 15 * 1024 * 1024
    chunk = b"a" * (1024 * 1024)
    conns, closed = [], 0
    header = struct.pack("!BBQ", 0x81, 0x80 | 127, part + 100) + b"\0\0\0\0"
    for i in range(60):
        w = Ws(orch.sock)
        check_eq(w.status, 101, "upgrade %d" % i)
        try:
            w.sock.sendall(header + b'{"id":1,"method":"x","params":"')
            for _ in range(15):
                w.sock.sendall(chunk)
        except OSError:
            closed += 1
        conns.append(w)
    peak = rss_kib(orch.pid)
    grown_mib = (peak - base) / 1024.0
    print("# RSS %d KiB -> %d KiB (+%.0f MiB) with 60 x 15 MiB partial messages; %d sends "
          "failed" % (base, peak, grown_mib, closed))
    # CLIENT_GLOBAL_INPUT plus the libwslay chunking overhead and slack
    # (under ASan, redzones and the quarantine of freed memory count too:
    # the bound is checked in the plain build).
    if not sanitized(orch.pid):
        check(grown_mib < GLOBAL_INPUT / 1024 / 1024 + 96,
              "RSS grew by %.0f MiB (bound %d MiB)" % (grown_mib, GLOBAL_INPUT >> 20))
    codes = []
    for w in conns:
        w.sock.settimeout(0.2)
        try:
            codes.append(w.expect_close())
        except (socket.timeout, OSError):
            codes.append(None)
    n1013 = codes.count(1013)
    print("# %d of 60 connections closed with 1013 (overloaded)" % n1013)
    check(n1013 >= 60 - (GLOBAL_INPUT // part) - 1, "only %d closed as overloaded" % n1013)
    check("overloaded" in orch.stderr_text(), "no log line for the overload")
    c.call("thread/list", {})
    for w in conns:
        w.close()
    orch.stop()


def t_node_bomb_refused_before_parsing(ctx):
    """15 MiB of [[],[],...]: refused by the node count before jansson
    builds millions of nodes; memory does not follow."""
    orch = start_orch(ctx)
    base = rss_kib(orch.pid)
    w = Ws(orch.sock)
    n = (15 * 1024 * 1024) // 3
    w.send_text(b"[" + b"[]," * (n - 1) + b"[]]")
    m = w.recv_msg()
    check_eq(m["error"]["code"], -32600, "node bomb answer: %s" % m)
    check("JSON values" in m["error"]["message"], m["error"]["message"])
    w.send_text(b"[" * 100 + b"]" * 100)
    m = w.recv_msg()
    check_eq(m["error"]["code"], -32700, "too deep")
    peak = rss_kib(orch.pid)
    print("# RSS %d KiB -> %d KiB after a 15 MiB node bomb" % (base, peak))
    # (jansson would have built 5 million nodes: over a gigabyte)
    check((peak - base) < 200 * 1024, "RSS grew by %d KiB" % (peak - base))
    r = w.call("initialize", {"clientInfo": {"name": "t", "version": "1"}})
    check("result" in r, "still served")
    w.close()
    orch.stop()


def t_huge_message_does_not_stall_others(ctx):
    """A 15 MiB message (a long string: within the node bound) is parsed off
    the loop: a request another client sends after it is answered first."""
    orch = start_orch(ctx)
    b = Ws(orch.sock)
    b.call("initialize", {"clientInfo": {"name": "b", "version": "1"}})
    a = Ws(orch.sock)
    a.call("initialize", {"clientInfo": {"name": "a", "version": "1"}})
    # Many small values too (60,000 nodes), the slow case for a parser.
    big = json.dumps({"id": 99, "method": "thread/list",
                      "params": {"x": ["v" * 250] * 60000}}).encode()
    check(len(big) > 14 * 1024 * 1024, "message size %d" % len(big))
    order = []
    done = threading.Event()

    def a_reader():
        try:
            m = a.recv_msg()
            order.append(("a", m.get("id")))
        finally:
            done.set()
    t = threading.Thread(target=a_reader, daemon=True)
    t.start()
    a.send_text(big)
    i = b.next_id
    b.send_frame(9, b"p")
    b.send_text(json.dumps({"id": i, "method": "thread/loaded/list", "params": {}}))
    check_eq(b.recv_msg(), ("pong", b"p"), "pong while a huge message is parsed")
    m = b.recv_msg()
    order.append(("b", m.get("id")))
    done.wait(60)
    print("# answer order: %s" % order)
    check_eq(order[0], ("b", i), "the small request was answered first")
    check(order[1][0] == "a", "the huge message was answered too: %s" % order)
    check("client parse worker started" in orch.stderr_text(),
          "the parse worker did not start (after the sandbox applied)")
    a.close()
    b.close()
    orch.stop()


def t_slow_readers_do_not_delay_others(ctx):
    """20 clients send requests and never read their answers: each is paused
    once its output passes the high-water mark (its input is not read), and a
    third client is served meanwhile."""
    orch = start_orch(ctx)
    slow = []
    req = (json.dumps({"id": 1, "method": "thread/list", "params": {}}) + "\n").encode()
    stop = threading.Event()

    def flood(s):
        s.settimeout(0.5)
        while not stop.is_set():
            try:
                s.sendall(req * 200)
            except socket.timeout:
                continue
            except OSError:
                return
    threads = []
    for _ in range(20):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(orch.sock)
        slow.append(s)
        t = threading.Thread(target=flood, args=(s,), daemon=True)
        t.start()
        threads.append(t)
    wait_until(lambda: orch.stderr_text().count("not reading its input") >= 20, 60,
               "all 20 slow clients paused")
    c = orch.connect("fair")
    for _ in range(20):
        c.call("thread/loaded/list", {}, timeout=10)
    stop.set()
    for s in slow:
        s.close()
    orch.stop()


# ---- Codex's own client ---------------------------------------------------------------

def codex_skip():
    if not NPM or not os.path.exists(CODEX):
        print("# !!! @openai/codex missing ($TANDEM_NPM_PEERS=%r): the npm registry was not "
              "reachable? deploy/local/test installs it" % NPM)
        return "SKIP @openai/codex not installed"
    return None


def codex_setup(ctx):
    script = {"steps": [
        {"expect": {"has_tools": [{"namespace": "mcp__fix", "name": "echo"}]},
         "tool_calls": [{"namespace": "mcp__fix", "name": "echo",
                         "arguments": {"message": "hello from the model"}}]},
        {"expect": {"input_contains": ["hello from the model"]},
         "reply_text": "The tool said hello."}]}
    fake = Fake(ctx, script)
    home = home_for(ctx, fake, "\n[mcp_servers.fix]\ncommand = %s\n" % toml_str(MCP_FIXTURE))
    return fake, home


def run_codex(ctx, remote, extra_env=None, extra_args=()):
    ch = ctx.mkdir("codex-home-%d" % len(os.listdir(ctx.path())))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "CODEX"))}
    env.update({"HOME": ch, "CODEX_HOME": ch}, **(extra_env or {}))
    r = subprocess.run([CODEX, "exec", "--remote", remote, "--skip-git-repo-check"] +
                       list(extra_args) + ["say hello through the tool"],
                       env=env, cwd=ch, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=120)
    out, err = r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")
    print("# codex exec exit %d; stdout %r" % (r.returncode, out[-200:]))
    for line in err.splitlines()[-12:]:
        print("#   " + line)
    return r.returncode, out, err


def t_codex_exec_unix(ctx):
    skip = codex_skip()
    if skip:
        return skip
    fake, home = codex_setup(ctx)
    orch = Orchestrator(ctx, home, mode="unix", env={"TANDEM_TEST_API_KEY": API_KEY})
    orch.wait_socket()
    rc, out, err = run_codex(ctx, "unix://" + orch.sock)
    check_eq(rc, 0, "codex exec exit status")
    check("The tool said hello." in out, "answer not printed: %r" % out)
    check(re.search(r"mcp: (mcp__)?fix/echo \(completed\)", err), "tool item not completed")
    orch.stop()
    check_eq(fake.finish(), 0, "fake server: every request matched its step")


def t_codex_exec_ws_token(ctx):
    skip = codex_skip()
    if skip:
        return skip
    fake, home = codex_setup(ctx)
    orch = Orchestrator(ctx, home, mode="unix", env={"TANDEM_TEST_API_KEY": API_KEY},
                        extra_args=["--listen", "ws://127.0.0.1:0", "--ws-auth",
                                    "capability-token", "--ws-token-file", token_file(ctx)])
    orch.wait_socket()
    port = ws_port(orch)
    # Without the token: refused, and codex says so.
    rc, out, err = run_codex(ctx, "ws://127.0.0.1:%d" % port)
    check(rc != 0, "codex exec without a token succeeded")
    rc, out, err = run_codex(ctx, "ws://127.0.0.1:%d" % port, {"TANDEM_WS_TOKEN": TOKEN},
                             ["--remote-auth-token-env", "TANDEM_WS_TOKEN"])
    check_eq(rc, 0, "codex exec exit status")
    check("The tool said hello." in out, "answer not printed: %r" % out)
    check(re.search(r"mcp: (mcp__)?fix/echo \(completed\)", err), "tool item not completed")
    check(TOKEN not in orch.stderr_text(), "the token was logged")
    orch.stop()
    check_eq(fake.finish(), 0, "fake server: every request matched its step")


TESTS = [
    ("unix speaks websocket and lines", t_unix_speaks_websocket_and_lines),
    ("ws frames ping fragments close codes", t_ws_frames_ping_fragments_close_codes),
    ("ws tcp readyz and paths", t_ws_tcp_readyz_and_paths),
    ("readyz 503 until ready", t_readyz_503_until_ready),
    ("start refused: non-loopback without auth, bad flags, lax token file", t_start_refused_non_loopback_without_auth_bad_flags_lax_token),
    ("capability token", t_capability_token),
    ("signed bearer token", t_signed_bearer_token),
    ("partial messages bounded globally", t_partial_messages_bounded_globally),
    ("node bomb refused before parsing", t_node_bomb_refused_before_parsing),
    ("huge message does not stall others", t_huge_message_does_not_stall_others),
    ("slow readers do not delay others", t_slow_readers_do_not_delay_others),
    ("codex exec unix", t_codex_exec_unix),
    ("codex exec ws token", t_codex_exec_ws_token),
]

if __name__ == "__main__":
    sys.exit(run_suite(TESTS))
