"""tandem_testlib - helpers for tandem's integration tests (Python 3 stdlib only).

What it gives a test:
  - the binaries, from $TANDEM_ORCHESTRATOR, $TANDEM_EXECUTOR and $MCP_FIXTURE
    (falling back to the build tree next to this file for manual runs);
  - Ctx: a per-test temporary directory and a process registry whose cleanup()
    kills every process the test started, their children and grandchildren,
    and reports any that survived;
  - Orchestrator: a real tandem-orchestrator with a temporary home, serving
    stdio or a unix socket; RpcClient: a JSON-RPC line client that matches
    responses by id and collects notifications;
  - Executor: a standalone tandem-executor on an abstract socket with a token;
  - make_plugin(): a plugin directory (.codex-plugin/plugin.json + .mcp.json);
  - wait_until(): polling with a deadline (a timeout is a failure, a sleep is
    never an assertion);
  - /proc helpers: process table, descendants, cmdlines, syscall in progress;
  - Tap: the TAP runner (one ok/not ok line per test, diagnostics as '#'),
    with a per-test watchdog; SIGTERM/SIGINT clean up and bail out.
A test fails too when a daemon's stderr holds a sanitizer report (ASan,
UBSan, LSan builds), and a daemon that hangs on exit is reported with its
main thread's backtrace (gdb). TANDEM_ITEST_KEEP=1 keeps the temp dirs.

Process hygiene: the test process makes itself a child subreaper
(PR_SET_CHILD_SUBREAPER), so every process started below it, including MCP
servers whose executor was killed, stays a descendant and can be found and
killed. Every process the library starts leads its own process group and, when
setpriv(1) is there, dies with the test process (--pdeathsig KILL).
"""

import ctypes
import json
import os
import random
import re
import shutil
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
_BUILD = os.path.normpath(os.path.join(HERE, "..", "..", "build"))


def _bin(var, fallback):
    path = os.environ.get(var) or os.path.join(_BUILD, fallback)
    return os.path.abspath(path)


ORCHESTRATOR = _bin("TANDEM_ORCHESTRATOR", "orchestrator/tandem-orchestrator")
EXECUTOR = _bin("TANDEM_EXECUTOR", "executor/tandem-executor")
MCP_FIXTURE = _bin("MCP_FIXTURE", "tests/mcp-fixture")

DEFAULT_TIMEOUT = 20.0
SETPRIV = shutil.which("setpriv")
PR_SET_CHILD_SUBREAPER = 36


class TestFailure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def check_eq(got, want, what):
    if got != want:
        raise TestFailure("%s: got %r, want %r" % (what, got, want))


def become_subreaper():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except OSError:
        return False


def wait_until(pred, timeout, what, interval=0.02):
    """Polls pred() until it returns something truthy; returns that value.
    Raises TestFailure naming `what` when the deadline passes."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except TestFailure as e:  # a predicate may assert; keep polling
            last_exc = e
        if time.monotonic() >= deadline:
            raise TestFailure("timed out after %.1fs waiting for %s%s" %
                              (timeout, what, (": %s" % last_exc) if last_exc else ""))
        time.sleep(interval)


# ---- /proc ------------------------------------------------------------------

class ProcInfo:
    __slots__ = ("pid", "ppid", "state", "comm", "starttime")

    def __init__(self, pid, ppid, state, comm, starttime):
        self.pid, self.ppid, self.state = pid, ppid, state
        self.comm, self.starttime = comm, starttime


def _read_stat(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    # comm may hold spaces and parentheses: split at the last ')'.
    lp, rp = data.find("("), data.rfind(")")
    rest = data[rp + 2:].split()
    return ProcInfo(pid, int(rest[1]), rest[0], data[lp + 1:rp], int(rest[19]))


def proc_table():
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = _read_stat(int(name))
            if info:
                table[info.pid] = info
    return table


def descendants(root, table=None):
    """Every live process below root (not root itself), parents first."""
    table = table if table is not None else proc_table()
    kids = {}
    for p in table.values():
        kids.setdefault(p.ppid, []).append(p.pid)
    out, todo = [], list(kids.get(root, []))
    while todo:
        pid = todo.pop(0)
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def children(pid, table=None):
    table = table if table is not None else proc_table()
    return [p.pid for p in table.values() if p.ppid == pid]


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0")[:-1]]
    except OSError:
        return []


def alive(pid, starttime=None):
    info = _read_stat(pid)
    if not info or info.state in ("Z", "X"):
        return False
    return starttime is None or info.starttime == starttime


def current_syscall(pid):
    """The number of the syscall pid is blocked in, or None."""
    try:
        with open("/proc/%d/syscall" % pid) as f:
            first = f.read().split()[0]
    except (OSError, IndexError):
        return None
    return int(first) if first.lstrip("-").isdigit() else None


# x86_64 and aarch64 numbers of the sleeps the fixture may be in.
SLEEP_SYSCALLS = {35, 230, 101, 115}


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


def fixture_pids(under_pid, table=None):
    """MCP fixture processes below under_pid."""
    table = table if table is not None else proc_table()
    out = []
    for pid in descendants(under_pid, table):
        if table[pid].state in ("Z", "X"):
            continue
        argv = cmdline(pid)
        if argv and (argv[0] == MCP_FIXTURE or os.path.basename(argv[0]) in
                     ("mcp-fixture", "mcp-server")):
            out.append(pid)
    return out


def child_with_args(parent, *args, table=None, below=False):
    """The child of parent whose argv holds `args` consecutively (with
    below=True, any process below parent)."""
    table = table if table is not None else proc_table()
    n = len(args)
    for pid in (descendants(parent, table) if below else children(parent, table)):
        argv = cmdline(pid)
        for i in range(len(argv) - n + 1):
            if tuple(argv[i:i + n]) == args:
                return pid
    return None


def secret_leaks(root_pid, secrets, texts=(), include_root=True):
    """Where any of `secrets` shows among what tandem started: the
    environment block (/proc/PID/environ: what a child inherited, and what
    the process was started with) and the argv of root_pid and every process
    below it (spawner, executors, MCP servers and their children), and the
    given texts (logs: {label: text}). Returns ["where: which secret"]."""
    found = []
    pids = ([root_pid] if include_root else []) + descendants(root_pid)
    for pid in pids:
        for part in ("environ", "cmdline"):
            try:
                with open("/proc/%d/%s" % (pid, part), "rb") as f:
                    blob = f.read()
            except OSError:
                continue  # gone meanwhile
            for sec in secrets:
                if sec and sec.encode() in blob:
                    found.append("pid %d (%s) %s: %s..." % (
                        pid, (cmdline(pid) or ["?"])[0], part, sec[:6]))
    for label, text in dict(texts).items():
        for sec in secrets:
            if sec and sec in text:
                found.append("%s: %s..." % (label, sec[:6]))
    return found


def check_no_secret_leaks(orch, secrets, what="", include_root=True):
    """None of `secrets` in the environ or argv of the orchestrator and
    everything below it, nor in its log (executors and the spawner log to
    the same stderr). Returns a note naming what was searched."""
    pids = ([orch.pid] if include_root else []) + descendants(orch.pid)
    leaks = secret_leaks(orch.pid, secrets, {"log": orch.stderr_text()}, include_root)
    check(not leaks, "secrets found %s:\n%s" % (what, "\n".join(leaks)))
    return "no secret in the environ or argv of %d processes (%s) or the log" % (
        len(pids), ", ".join(sorted({(cmdline(p) or ["?"])[0].rsplit("/", 1)[-1]
                                     for p in pids})))


def abstract_listening(name):
    """True when an abstract unix socket @name is bound (nng abstract://)."""
    want = "@" + name
    try:
        with open("/proc/net/unix") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 8 and parts[7] == want:
                    return True
    except OSError:
        pass
    return False


def stacks(pid):
    """Every thread's backtrace (gdb), for a daemon that hangs."""
    gdb = shutil.which("gdb")
    if not gdb:
        return "(gdb not installed)"
    try:
        r = subprocess.run([gdb, "-p", str(pid), "-batch", "-nx", "-ex", "set pagination off",
                            "-ex", "thread apply all bt"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "(gdb failed: %s)" % e
    # The main (loop) thread in full; the others (nng workers) by name only.
    out, keep, others = [], False, []
    for line in r.stdout.decode("utf-8", "replace").splitlines():
        if line.startswith("Thread "):
            keep = line.startswith("Thread 1 ")
            if keep:
                out.append(line)
            else:
                others.append(line.split('"')[1] if '"' in line else line[:40])
        elif keep and line.startswith("#"):
            out.append(line)
    return "\n".join(out + ["other threads: %s" % ", ".join(others)])


# ---- process registry and per-test context -------------------------------------

class Registry:
    """Every (pid, starttime) the tests started or saw below them."""

    def __init__(self):
        self.seen = {}
        self.popen_pids = set()

    def note(self, pid, info=None):
        info = info or _read_stat(pid)
        if not info:
            return
        old = self.seen.get(pid)
        if old and old[0] == info.starttime and not old[1].startswith(("setpriv", "?")):
            return  # known; the pre-exec cmdline of a wrapper is worth refreshing
        argv = cmdline(pid)
        self.seen[pid] = (info.starttime, " ".join(argv)[:200] if argv else "?" + info.comm)

    def start_sampler(self, interval=0.05):
        """Notes every process below us every `interval` seconds, so the
        final audit also knows the short-lived ones."""
        me = os.getpid()

        def loop():
            while True:
                table = proc_table()
                for pid in descendants(me, table):
                    if table[pid].state not in ("Z", "X"):
                        self.note(pid, table[pid])
                time.sleep(interval)
        threading.Thread(target=loop, name="proc-sampler", daemon=True).start()

    def survivors(self):
        return ["%d (%s)" % (pid, what) for pid, (st, what) in sorted(self.seen.items())
                if alive(pid, st)]

    def reap_orphans(self):
        """Zombies reparented to us (we are a subreaper), except our own
        Popen children whose status subprocess must collect."""
        for pid in children(os.getpid()):
            if pid in self.popen_pids:
                continue
            info = _read_stat(pid)
            if info and info.state == "Z":
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass


REGISTRY = Registry()


def kill_everything_below(pid, registry=REGISTRY, timeout=5.0):
    """SIGKILLs every descendant of pid until none is left alive."""
    deadline = time.monotonic() + timeout
    while True:
        table = proc_table()
        live = [p for p in descendants(pid, table) if table[p].state not in ("Z", "X")]
        for p in live:
            registry.note(p)
        if not live:
            return True
        for p in live:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        registry.reap_orphans()
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


class Ctx:
    """One test's temporary directory and processes."""

    def __init__(self, name):
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:40]
        self.dir = tempfile.mkdtemp(prefix="tandem-itest-%s-" % safe)
        self.procs = []     # Popen objects, stopped in reverse order
        self.closers = []   # callables run before the processes are killed
        self.logs = []      # (label, path) shown when the test fails
        self.tag = "%d%06x" % (os.getpid(), random.getrandbits(24))

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def mkdir(self, *parts):
        p = self.path(*parts)
        os.makedirs(p, exist_ok=True)
        return p

    def popen(self, argv, label, **kw):
        log = self.path("%s.stderr" % label)
        errf = open(log, "wb")
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", subprocess.DEVNULL)
        if SETPRIV:  # dies with us even if we are SIGKILLed
            argv = [SETPRIV, "--pdeathsig", "KILL"] + list(argv)
        try:
            p = subprocess.Popen(argv, stderr=errf, start_new_session=True, **kw)
        finally:
            errf.close()
        p.label = label
        p.stderr_path = log
        self.procs.append(p)
        self.logs.append((label, log))
        REGISTRY.popen_pids.add(p.pid)
        REGISTRY.note(p.pid)
        return p

    def snapshot(self):
        """Registers every process currently below us (for the final audit)."""
        for pid in descendants(os.getpid()):
            REGISTRY.note(pid)

    def diagnostics(self, max_lines=40):
        out = []
        for label, path in self.logs:
            try:
                with open(path, "rb") as f:
                    lines = f.read().decode("utf-8", "replace").splitlines()
            except OSError:
                continue
            if lines:
                out.append("--- %s stderr (last %d lines) ---" % (label, min(len(lines), max_lines)))
                out.extend(lines[-max_lines:])
        return out

    SANITIZER_RE = re.compile(r"ERROR: (Address|Leak|Thread|Memory)Sanitizer|"
                              r"runtime error: |AddressSanitizer:DEADLYSIGNAL")

    def sanitizer_reports(self):
        """ASan/UBSan/LSan reports in any daemon's stderr (builds with
        sanitizers): each one is a failure, with its first lines."""
        out = []
        for label, path in self.logs:
            try:
                with open(path, "rb") as f:
                    lines = f.read().decode("utf-8", "replace").splitlines()
            except OSError:
                continue
            for i, line in enumerate(lines):
                if self.SANITIZER_RE.search(line):
                    out.append("sanitizer report in %s stderr:\n%s" %
                               (label, "\n".join(lines[i:i + 25])))
                    break
        return out

    def cleanup(self):
        """Stops everything; returns a list of problems (survivors)."""
        problems = []
        self.snapshot()
        for p in reversed(self.procs):
            if p.poll() is None:
                for pid in descendants(p.pid):
                    REGISTRY.note(pid)
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                try:
                    p.kill()
                except ProcessLookupError:
                    pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                problems.append("process %d (%s) did not die" % (p.pid, p.label))
            REGISTRY.popen_pids.discard(p.pid)
        # Clients last: their readers see EOF now that the daemons are gone.
        for c in reversed(self.closers):
            try:
                c()
            except Exception:
                pass
        if not kill_everything_below(os.getpid()):
            problems.append("descendants still alive: %s" % descendants(os.getpid()))
        REGISTRY.reap_orphans()
        problems.extend(self.sanitizer_reports())
        if not problems and not os.environ.get("TANDEM_ITEST_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        return problems


# ---- JSON-RPC client ------------------------------------------------------------

class RpcError(Exception):
    def __init__(self, code, message, data=None):
        super().__init__("%s: %s" % (code, message))
        self.code, self.message, self.data = code, message, data


def _idkey(v):
    # 0 and "0" (and 1 and true) are different ids: key on the JSON text.
    return json.dumps(v, sort_keys=True)


class RpcClient:
    """A client-API session: JSON objects, one per line, in both directions."""

    def __init__(self, rfile, wfile, label, on_close=None):
        self.rfile, self.wfile, self.label = rfile, wfile, label
        self.cv = threading.Condition()
        self.responses = {}
        self.notifications = []
        self.raw_lines = []
        self.bad_lines = []
        self.eof = False
        self.next_id = 1
        self._on_close = on_close
        self.reader = threading.Thread(target=self._read, name="rpc-" + label, daemon=True)
        self.reader.start()

    def _read(self):
        try:
            for line in self.rfile:
                text = line.decode("utf-8", "replace").rstrip("\n")
                try:
                    msg = json.loads(text)
                except ValueError:
                    msg = None
                with self.cv:
                    self.raw_lines.append(text)
                    if not isinstance(msg, dict):
                        self.bad_lines.append(text)
                    elif "method" in msg and "id" not in msg:
                        self.notifications.append(msg)
                    elif "id" in msg:
                        self.responses.setdefault(_idkey(msg["id"]), []).append(msg)
                    else:
                        self.bad_lines.append(text)
                    self.cv.notify_all()
        except (OSError, ValueError):
            pass
        with self.cv:
            self.eof = True
            self.cv.notify_all()

    # -- sending
    def send_raw(self, line):
        if isinstance(line, str):
            line = line.encode()
        self.wfile.write(line + b"\n")
        self.wfile.flush()

    def send(self, method, params=None, id=None, no_id=False):
        """Sends a request; returns its id (a notification when no_id)."""
        msg = {"method": method}
        if not no_id:
            if id is None:
                id = self.next_id
                self.next_id += 1
            msg["id"] = id
        if params is not None:
            msg["params"] = params
        self.send_raw(json.dumps(msg))
        return id

    # -- receiving
    def wait_response(self, id, timeout=DEFAULT_TIMEOUT):
        key = _idkey(id)
        deadline = time.monotonic() + timeout
        with self.cv:
            while not self.responses.get(key):
                left = deadline - time.monotonic()
                if self.eof:
                    raise TestFailure("%s: connection closed while waiting for the response "
                                      "to id %s" % (self.label, key))
                if left <= 0:
                    raise TestFailure("%s: no response to id %s within %.1fs" %
                                      (self.label, key, timeout))
                self.cv.wait(left)
            return self.responses[key].pop(0)

    def has_response(self, id):
        with self.cv:
            return bool(self.responses.get(_idkey(id)))

    def call(self, method, params=None, timeout=DEFAULT_TIMEOUT):
        """Request + response; the result, or RpcError."""
        resp = self.wait_response(self.send(method, params), timeout)
        if "error" in resp:
            e = resp["error"] or {}
            raise RpcError(e.get("code"), e.get("message"), e.get("data"))
        check("result" in resp, "%s: response without result or error: %r" % (method, resp))
        return resp["result"]

    def call_error(self, method, params=None, timeout=DEFAULT_TIMEOUT):
        """A request that must fail; returns the error object."""
        resp = self.wait_response(self.send(method, params), timeout)
        check("error" in resp, "%s %s: expected an error, got %r" %
              (method, json.dumps(params)[:200], resp))
        return resp["error"]

    def initialize(self, name="tandem-itest"):
        return self.call("initialize", {"clientInfo": {"name": name, "version": "0.0.1"}})

    def wait_notification(self, pred, timeout=DEFAULT_TIMEOUT, what="notification", start=0):
        """The first notification (index >= start) for which pred(msg) holds."""
        deadline = time.monotonic() + timeout
        with self.cv:
            while True:
                for n in self.notifications[start:]:
                    if pred(n):
                        return n
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TestFailure("%s: no %s within %.1fs (got %d notifications: %s)" % (
                        self.label, what, timeout, len(self.notifications),
                        sorted({n.get("method") for n in self.notifications})))
                if self.eof:
                    raise TestFailure("%s: connection closed while waiting for %s" %
                                      (self.label, what))
                self.cv.wait(left)

    def wait_eof(self, timeout=DEFAULT_TIMEOUT):
        deadline = time.monotonic() + timeout
        with self.cv:
            while not self.eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cv.wait(left)
            return True

    def close(self):
        """Closes our side. The reader thread is never raced: closing a
        buffered file another thread is reading from blocks on its lock, so
        the socket is shut down first and the read side is closed only once
        the reader saw EOF (a pipe's read side ends when the daemon exits)."""
        try:
            self.wfile.close()
        except (OSError, ValueError):
            pass
        if self._on_close:
            self._on_close()
            self._on_close = None
        self.reader.join(timeout=5)
        if not self.reader.is_alive():
            try:
                self.rfile.close()
            except (OSError, ValueError):
                pass

    # -- tandem helpers
    def env_status(self, env_id):
        return self.call("environment/status", {"environmentId": env_id})

    def wait_env(self, env_id, status="ready", timeout=DEFAULT_TIMEOUT):
        return wait_until(lambda: self.env_status(env_id)["status"] == status, timeout,
                          "environment '%s' to be %s" % (env_id, status))

    def start_thread(self, roots=None, **extra):
        params = dict(extra)
        if roots is not None:
            params["selectedCapabilityRoots"] = roots
        return self.call("thread/start", params)["thread"]["id"]

    def status(self, thread_id=None, timeout=DEFAULT_TIMEOUT):
        params = {} if thread_id is None else {"threadId": thread_id}
        data = self.call("mcpServerStatus/list", params, timeout)["data"]
        return {e["name"]: e for e in data}

    def tool(self, thread_id, server, tool, args=None, timeout=DEFAULT_TIMEOUT):
        return self.call("mcpServer/tool/call", {"threadId": thread_id, "server": server,
                                                 "tool": tool, "arguments": args or {}},
                         timeout)

    def counters(self, thread_id=None):
        return self.call("debug/counters", {} if thread_id is None else {"threadId": thread_id})


def root(root_id, env_id, path):
    return {"id": root_id, "location": {"type": "environment", "environmentId": env_id,
                                        "path": path}}


# ---- homes, plugins, tokens ----------------------------------------------------

def write_file(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def toml_str(s):
    return json.dumps(s)  # a JSON string is a valid TOML basic string


def make_home(ctx, config="", environments="", tokens=None, name="home"):
    home = ctx.mkdir(name)
    write_file(os.path.join(home, "config.toml"), config)
    write_file(os.path.join(home, "environments.toml"), environments)
    for env_id, token in (tokens or {}).items():
        d = os.path.join(home, "executor-tokens")
        os.makedirs(d, mode=0o700, exist_ok=True)
        write_file(os.path.join(d, env_id), token + "\n", 0o600)
    return home


def make_plugin(ctx, name, servers, command_in_root=False):
    """A plugin root with .codex-plugin/plugin.json and .mcp.json. servers:
    {server_name: config}; a config without 'command' runs the fixture. With
    command_in_root the command is a symlink to the fixture inside the root,
    so starting it touches the root."""
    rootdir = ctx.mkdir("plugins", name)
    write_file(os.path.join(rootdir, ".codex-plugin", "plugin.json"),
               json.dumps({"name": name, "version": "1.0.0",
                           "description": "tandem integration test plugin"}))
    command = MCP_FIXTURE
    if command_in_root:
        os.makedirs(os.path.join(rootdir, "bin"), exist_ok=True)
        command = os.path.join(rootdir, "bin", "mcp-server")
        os.symlink(MCP_FIXTURE, command)
    mcp = {}
    for sname, cfg in servers.items():
        cfg = dict(cfg)
        cfg.setdefault("command", command)
        mcp[sname] = cfg
    write_file(os.path.join(rootdir, ".mcp.json"), json.dumps({"mcpServers": mcp}, indent=2))
    return os.path.realpath(rootdir)


def random_token():
    return "%064x" % random.getrandbits(256)


# ---- daemons -------------------------------------------------------------------

class Orchestrator:
    """A tandem-orchestrator with a given home. mode: 'stdio' or 'unix'.
    wrapper: argv prefix (e.g. strace) put before the binary; args (or
    extra_args) go after tandem's own options (e.g. --mcp-listen)."""

    def __init__(self, ctx, home, mode="stdio", log_level="debug", wrapper=None, env=None,
                 label="orchestrator", args=(), extra_args=(), popen_kw=None):
        self.ctx, self.home, self.mode = ctx, home, mode
        self.sock = ctx.path("%s.sock" % label) if mode == "unix" else None
        if wrapper is None and os.environ.get("TANDEM_ORCH_WRAPPER"):
            # e.g. "valgrind --error-exitcode=99 --leak-check=full": a whole
            # suite with the orchestrator under a tool, by hand.
            wrapper = shlex.split(os.environ["TANDEM_ORCH_WRAPPER"])
        argv = list(wrapper or []) + [ORCHESTRATOR, "--home", home, "--log-level", log_level,
                                      "--executor", EXECUTOR]
        if self.sock:
            argv += ["--listen", "unix://" + self.sock]
        argv += list(args) + list(extra_args)
        penv = dict(os.environ)
        # The spawned executors' socket directories go below a short private
        # directory of the test's own (orchestrator/env_spawn.c): the test's
        # final SIGKILL of the whole group leaves nobody to remove them.
        rt = tempfile.mkdtemp(prefix="tandem-rt-")
        os.chmod(rt, 0o700)
        ctx.closers.append(lambda: shutil.rmtree(rt, ignore_errors=True))
        penv["XDG_RUNTIME_DIR"] = rt
        penv.update(env or {})
        self.proc = ctx.popen(argv, label, env=penv,
                              stdin=subprocess.PIPE if mode == "stdio" else subprocess.DEVNULL,
                              stdout=subprocess.PIPE if mode == "stdio" else subprocess.DEVNULL,
                              **(popen_kw or {}))
        self.pid = self.proc.pid
        self.clients = []
        self.client = None
        if mode == "stdio":
            self.client = RpcClient(self.proc.stdout, self.proc.stdin, label)
            self.clients.append(self.client)
        ctx.closers.append(self.close_clients)

    def wait_socket(self, timeout=DEFAULT_TIMEOUT):
        def ready():
            if self.proc.poll() is not None:
                raise TestFailure("orchestrator exited with %s before listening" %
                                  self.proc.returncode)
            return os.path.exists(self.sock)
        wait_until(ready, timeout, "the orchestrator's unix socket")

    def connect(self, label=None, initialize=True):
        self.wait_socket()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.sock)
        label = label or "client%d" % (len(self.clients) + 1)

        def shut():
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        c = RpcClient(s.makefile("rb"), s.makefile("wb"), label, on_close=shut)
        c.sock = s
        ctx_close = c.close

        def close_all():
            ctx_close()
            s.close()
        c.close = close_all
        self.clients.append(c)
        if initialize:
            c.initialize(label)
        return c

    def close_clients(self):
        for c in self.clients:
            c.close()

    def stop(self, timeout=10.0):
        """Ends the daemon the polite way (EOF / SIGTERM); returns its status."""
        if self.proc.poll() is None:
            if self.mode == "stdio":
                try:
                    self.proc.stdin.close()
                except OSError:
                    pass
            else:
                self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("orchestrator did not exit within %.0fs; its threads:\n%s" %
                              (timeout, stacks(self.pid)))

    def executor_pid(self, env_id, table=None):
        # Executors are the spawner's children (orchestrator/spawner.h).
        return child_with_args(self.pid, "--id", env_id, table=table, below=True)

    def spawner_pid(self, table=None):
        table = table if table is not None else proc_table()
        for pid in children(self.pid, table):
            if table[pid].comm == "tandem-spawner":
                return pid
        return None

    def stderr_text(self):
        with open(self.proc.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")


class Executor:
    """A standalone tandem-executor listening on abstract://NAME with a token."""

    def __init__(self, ctx, exec_id, token=None, extra_args=(), env=None):
        self.name = "tandem-itest-%s-%s" % (ctx.tag, exec_id)
        self.url = "abstract://" + self.name
        self.token = token or random_token()
        self.token_file = write_file(ctx.path("tokens", exec_id), self.token + "\n", 0o600)
        argv = [EXECUTOR, "--listen", self.url, "--auth-token-file", self.token_file,
                "--id", exec_id, "--log-level", "debug"] + list(extra_args)
        penv = {k: v for k, v in os.environ.items() if k != "TANDEM_EXECUTOR_TOKEN"}
        penv.update(env or {})
        self.proc = ctx.popen(argv, "executor-" + exec_id, env=penv)
        self.pid = self.proc.pid

        def up():
            if self.proc.poll() is not None:
                raise TestFailure("executor %s exited with %s" % (exec_id, self.proc.returncode))
            return abstract_listening(self.name)
        wait_until(up, DEFAULT_TIMEOUT, "executor %s to listen" % exec_id)

    def stop(self, timeout=10.0):
        """SIGTERM; returns the exit status (TestFailure if it hangs)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("executor did not exit within %.0fs; its threads:\n%s" %
                              (timeout, stacks(self.pid)))


# ---- TAP ---------------------------------------------------------------------------

class _Watchdog(Exception):
    pass


class _Interrupted(BaseException):
    """SIGTERM/SIGINT/SIGHUP (meson's timeout, ^C): clean up, bail out."""


def _alarm(signum, frame):
    raise _Watchdog("test watchdog expired (a wait without a deadline?)")


def _interrupt(signum, frame):
    raise _Interrupted(signum)


class Tap:
    def __init__(self, tests, per_test_timeout=240):
        self.tests = tests
        self.per_test_timeout = per_test_timeout
        self.failed = 0

    @staticmethod
    def _out(line):
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def diag(self, lines):
        for line in lines:
            for sub in str(line).splitlines() or [""]:
                self._out("# " + sub)

    def run(self, only=None):
        signal.signal(signal.SIGALRM, _alarm)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, _interrupt)
        self._out("1..%d" % len(self.tests))
        for n, (name, fn) in enumerate(self.tests, 1):
            if only and name not in only and str(n) not in only:
                self._out("ok %d - %s # SKIP not selected" % (n, name))
                continue
            ctx = None
            try:
                ctx = Ctx(name)
                self._run_one(n, name, fn, ctx)
            except _Interrupted as e:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
                    signal.signal(sig, signal.SIG_IGN)
                signal.alarm(0)
                if ctx:
                    ctx.cleanup()
                kill_everything_below(os.getpid())
                self._out("Bail out! interrupted by signal %s during test %d" % (e.args[0], n))
                self.failed += 1
                return 1
        return 0

    def _run_one(self, n, name, fn, ctx):
        t0 = time.monotonic()
        status, diag, directive = "ok", [], ""
        signal.alarm(self.per_test_timeout)
        try:
            r = fn(ctx)
            if isinstance(r, str) and r.startswith("SKIP"):
                directive = " # " + r
            elif isinstance(r, str) and r:
                diag.append(r.lstrip("# "))
        except Exception as e:  # noqa: the runner reports everything
            signal.alarm(0)
            status = "not ok"
            diag.append("%s: %s" % (type(e).__name__, e))
            diag.extend(traceback.format_exc().splitlines())
            diag.extend(ctx.diagnostics())
        finally:
            signal.alarm(0)
        problems = ctx.cleanup()
        if problems:
            status = "not ok"
            diag.append("cleanup: " + "; ".join(problems))
        if status != "ok":
            self.failed += 1
        self._out("%s %d - %s (%.2fs)%s" % (status, n, name, time.monotonic() - t0, directive))
        self.diag(diag)


def run_suite(tests):
    """The main of every suite: checks the binaries, makes this process a
    subreaper so no child escapes the final check, runs the tests (or those
    named on the command line) and prints TAP. Returns the exit status."""
    for var, path in (("TANDEM_ORCHESTRATOR", ORCHESTRATOR), ("TANDEM_EXECUTOR", EXECUTOR),
                      ("MCP_FIXTURE", MCP_FIXTURE)):
        if not os.access(path, os.X_OK):
            print("1..0 # SKIP %s not executable: %s" % (var, path))
            return 0
    if not become_subreaper():
        print("# warning: PR_SET_CHILD_SUBREAPER failed; orphans may escape the final check")
    REGISTRY.start_sampler()
    t0 = time.monotonic()
    tap = Tap(tests)
    tap.run(only=set(sys.argv[1:]))
    print("# %d test(s) failed; run time %.1fs" % (tap.failed, time.monotonic() - t0))
    return 1 if tap.failed else 0
