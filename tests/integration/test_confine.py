#!/usr/bin/env python3
"""The orchestrator confined (issue 18 item 1), its secrets kept to itself
(issue 13 defect 1), and how servers are boxed, as mcpServerStatus/list
shows it (issue 18 item 2). Real orchestrator, spawner, executors and MCP
servers; the test-only client method debug/tryOpen (compiled in builds with
tests) probes the sandbox from inside the running daemon.

Every hostile attempt prints what it tried and what held ('# ...' lines).
"""

import ctypes
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tandem_testlib import (  # noqa: E402
    MCP_FIXTURE, Executor, Orchestrator, RpcError, alive, check, check_eq,
    check_no_secret_leaks, children, cmdline, descendants, make_home, make_plugin,
    proc_table, random_token, root, run_suite, secret_leaks, toml_str, wait_until,
    write_file)

EACCES = 13


def structured(result, what):
    check(isinstance(result, dict) and isinstance(result.get("structuredContent"), dict),
          "%s: no structuredContent in %r" % (what, result))
    return result["structuredContent"]


def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)


def try_open(c, path, write=False):
    """debug/tryOpen; None when this build has no test hooks."""
    try:
        return c.call("debug/tryOpen", {"path": path, "write": write})
    except RpcError as e:
        if e.code == -32601:
            return None
        raise


def hooks_missing():
    print("# !!! debug/tryOpen is missing: this build has no test hooks (-Dtest_hooks=false)")
    return "SKIP no test hooks in this build"


# ---- 1 ---------------------------------------------------------------------

def test_confined_orchestrator(ctx):
    home = make_home(ctx)
    p = make_plugin(ctx, "confined", {"confined_demo": {}})
    secret_file = write_file(os.path.join(p, "secret.txt"), "plugin data\n")
    outside = write_file(ctx.path("outside.txt"), "not the orchestrator's\n")
    o = Orchestrator(ctx, home)
    c = o.client
    c.initialize()
    c.wait_env("local", timeout=30)
    desc = c.counters()["sandbox"]
    check(desc.startswith("landlock ABI ") and desc.endswith(", seccomp"),
          "debug/counters sandbox: %r" % desc)
    st = proc_status(o.pid)
    check_eq((st["NoNewPrivs"].strip(), st["Seccomp"].strip()), ("1", "2"),
             "no_new_privs and a seccomp filter in /proc/PID/status")
    # The daemon still does its job: a plugin server through the executor.
    t = c.start_thread([root("confined", "local", p)])
    sc = structured(c.tool(t, "confined_demo", "echo", {"message": "boxed in"}), "echo")
    check_eq(sc.get("message"), "boxed in", "a tool call from the confined orchestrator")
    r = try_open(c, secret_file)
    if r is None:
        return hooks_missing()
    lines = []
    for what, path, write, want in (
            ("a file in a plugin root", secret_file, False, EACCES),
            ("the plugin's manifest", os.path.join(p, ".codex-plugin", "plugin.json"), False,
             EACCES),
            ("a file outside home and state", outside, False, EACCES),
            ("/etc/shadow", "/etc/shadow", False, EACCES),
            ("its own config.toml, for writing", os.path.join(home, "config.toml"), True,
             EACCES),
            ("its own config.toml", os.path.join(home, "config.toml"), False, None)):
        r = try_open(c, path, write)
        got = None if r.get("ok") else r.get("errno")
        lines.append("open %s%s: %s" % (what, " (write)" if write else "",
                                        "allowed" if got is None else r.get("error")))
        check_eq(got, want, "open %s%s" % (what, " for writing" if write else ""))
    # The state directory (made at start-up) is read-write.
    probe = write_file(os.path.join(home, "state", "probe"), "")
    check(try_open(c, probe, write=True).get("ok"), "the state directory is writable")
    return "tried: " + "; ".join(lines) + "\nheld: the sandbox (%s) refused each" % desc


# ---- 2 ---------------------------------------------------------------------

class TlsServer:
    """Accepts TLS connections with a self-signed certificate and closes them:
    a client gets as far as verifying the certificate."""

    def __init__(self, ctx):
        key, cert = ctx.path("tls.key"), ctx.path("tls.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=tandem-confine", "-keyout", key, "-out", cert],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(cert, key)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stop = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()
        ctx.closers.append(self.close)

    def serve(self):
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            try:
                self.tls.wrap_socket(conn, server_side=True).close()
            except (OSError, ssl.SSLError):
                conn.close()

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sock.close()


def resolvable_name():
    """A name getaddrinfo resolves to 127.0.0.1 here without the network."""
    for name in (socket.gethostname(), "localhost.localdomain", "ip6-localhost"):
        try:
            if "127.0.0.1" in {a[4][0] for a in socket.getaddrinfo(name, 1, socket.AF_INET)}:
                return name
        except OSError:
            continue
    return None


def test_tls_and_name_resolution(ctx):
    tls = TlsServer(ctx)
    name = resolvable_name()
    host = name or "127.0.0.1"
    home = make_home(ctx, config="[mcp_servers.tls]\nurl = %s\nstartup_timeout_sec = 10\n" %
                     toml_str("https://%s:%d/mcp" % (host, tls.port)))
    o = Orchestrator(ctx, home)
    c = o.client
    c.initialize()
    check(c.counters()["sandbox"].startswith("landlock"), "sandboxed")

    def failed():
        e = c.status().get("tls")
        return e if e and e.get("runtimeStatus") == "failed" else None
    e = wait_until(failed, 30, "the TLS server to fail verification")
    err = e.get("toolsError") or ""
    # The CA store was read (else: "error setting certificate verify
    # locations"), the name resolved, and the handshake got as far as the
    # certificate, which no CA of the store signed.
    check("certificate" in err and "self" in err and "verify locations" not in err and
          "resolve" not in err, "TLS under the sandbox: %r" % err)
    check(tls.accepted >= 1, "no connection reached the TLS server")
    return "https://%s: %s%s" % (host, err[err.find("SSL"):][:80],
                                 "" if name else " (no local name resolves here: IP only)")


# ---- 3 ---------------------------------------------------------------------

def no_landlock_preexec():
    """In the child before exec: Landlock's system calls answer ENOSYS, as
    on a kernel without it (a seccomp filter that the exec keeps)."""
    lib = ctypes.CDLL("libseccomp.so.2")
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                     ctypes.c_uint]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    f = lib.seccomp_init(0x7fff0000)  # SCMP_ACT_ALLOW
    for nr in (444, 445, 446):  # landlock_create_ruleset, _add_rule, _restrict_self
        lib.seccomp_rule_add(f, 0x00050000 | 38, nr, 0)  # SCMP_ACT_ERRNO(ENOSYS)
    if lib.seccomp_load(f) != 0:
        os._exit(97)


def test_without_landlock(ctx):
    home = make_home(ctx)
    o = Orchestrator(ctx, home, label="nolandlock", popen_kw={"preexec_fn": no_landlock_preexec})
    c = o.client
    c.initialize()
    desc = c.counters()["sandbox"]
    check(desc.startswith("no Landlock (Function not implemented)") and "seccomp" in desc,
          "debug/counters without Landlock: %r" % desc)
    c.wait_env("local", timeout=30)  # and it works
    check("the filesystem is not confined" in o.stderr_text(), "a warning in the log")
    o.stop()
    # --require-sandbox: refuses to start.
    o2 = Orchestrator(ctx, home, label="required", args=["--require-sandbox"],
                      popen_kw={"preexec_fn": no_landlock_preexec})
    rc = o2.proc.wait(timeout=30)
    log = o2.stderr_text()
    check(rc != 0 and "no Landlock in this kernel" in log and "--require-sandbox" in log,
          "--require-sandbox without Landlock: exit %s, log %r" % (rc, log[-300:]))
    # Where Landlock exists it starts, and --no-sandbox says so.
    o3 = Orchestrator(ctx, home, label="required-ok", args=["--require-sandbox"])
    o3.client.initialize()
    check(o3.client.counters()["sandbox"].startswith("landlock"), "--require-sandbox with it")
    o3.stop()
    o4 = Orchestrator(ctx, home, label="off", args=["--no-sandbox"])
    o4.client.initialize()
    check_eq(o4.client.counters()["sandbox"], "off", "--no-sandbox")
    o4.stop()
    return "without Landlock: %r; --require-sandbox exited %d" % (desc, rc)


# ---- 4 ---------------------------------------------------------------------

def test_secrets_stay_in_the_orchestrator(ctx):
    model_key = "sk-confine-" + random_token()[:32]
    store_key = random_token()
    cloud = "cloud-" + random_token()[:24]
    ex = Executor(ctx, "dialled")  # its token reaches us through $TANDEM_EXECUTOR_TOKEN only
    home = make_home(ctx, config="""mcp_oauth_credentials_store = "file"
[mcp_servers.cfg_local]
command = %s
env_vars = [{ name = "CONFINE_PLAIN", source = "local" }]
""" % toml_str(MCP_FIXTURE), environments="""[[environments]]
id = "dialled"
url = %s
""" % toml_str(ex.url))
    greedy_names = ["OPENAI_API_KEY", "TANDEM_OAUTH_STORE_KEY", "TANDEM_EXECUTOR_TOKEN",
                    "AWS_SECRET_ACCESS_KEY", "CONFINE_PASSED"]
    greedy = make_plugin(ctx, "greedy", {"greedy_srv": {"env_vars": greedy_names}})
    sneaky = make_plugin(ctx, "sneaky", {"sneaky_srv": {
        "env_vars": [{"name": "OPENAI_API_KEY", "source": "local"}]}})
    o = Orchestrator(ctx, home, env={
        "OPENAI_API_KEY": model_key, "TANDEM_OAUTH_STORE_KEY": store_key,
        "TANDEM_EXECUTOR_TOKEN": ex.token, "AWS_SECRET_ACCESS_KEY": cloud,
        "CONFINE_PLAIN": "plain-value", "CONFINE_PASSED": "passed-value",
        "TANDEM_EXECUTOR_ENV": "CONFINE_PASSED,OPENAI_API_KEY"})
    c = o.client
    c.initialize()
    c.wait_env("local", timeout=30)
    c.wait_env("dialled", timeout=30)  # the held link token still works
    check_eq(c.call("account/read", {}).get("account", {}).get("type"), "apiKey",
             "the held model key still counts as an API-key account")
    t = c.start_thread([root("greedy", "local", greedy), root("sneaky", "local", sneaky)])
    st = c.status(t, timeout=30)
    got = {}
    for name in greedy_names:
        got[name] = structured(c.tool(t, "greedy_srv", "env", {"name": name}), name).get("value")
    check_eq(got, {n: ("passed-value" if n == "CONFINE_PASSED" else None)
                   for n in greedy_names},
             "what a plugin server naming the orchestrator's variables gets")
    sn = st.get("sneaky_srv") or {}
    check(sn.get("runtimeStatus") == "failed" and "'OPENAI_API_KEY'" in
          (sn.get("toolsError") or ""), "source = local for the model key: %r" % sn)
    sc = structured(c.tool(t, "cfg_local", "env", {"name": "CONFINE_PLAIN"}), "cfg_local")
    check_eq(sc.get("value"), "plain-value", "a config.toml server's non-secret local variable")
    note = check_no_secret_leaks(o, [model_key, store_key, ex.token],
                                 "(model key, store key, link token)")
    # Variables the orchestrator does not hold stay in its own environment,
    # but reach nothing it starts.
    leaks = secret_leaks(o.pid, [cloud], include_root=False)
    check(not leaks, "a cloud credential reached a child: %s" % leaks)
    return ("tried: a plugin server named %s (source remote) and OPENAI_API_KEY (source "
            "local)\nheld: it got only CONFINE_PASSED; the local one failed: %s\n%s" % (
                ", ".join(greedy_names), sn.get("toolsError"), note))


# ---- 5 ---------------------------------------------------------------------

def test_spawner_outlives_nothing(ctx):
    home = make_home(ctx)
    p = make_plugin(ctx, "spawned", {"spawned_demo": {}})
    o = Orchestrator(ctx, home, mode="unix")
    c = o.connect()
    c.wait_env("local", timeout=30)
    t = c.start_thread([root("spawned", "local", p)])
    c.status(t, timeout=30)
    table = proc_table()
    spawner = o.spawner_pid(table)
    check(spawner, "no tandem-spawner below the orchestrator: %s" % children(o.pid, table))
    exe = o.executor_pid("local", table)
    check(exe and table[exe].ppid == spawner, "the executor is the spawner's child")
    argv = cmdline(exe)
    url = argv[argv.index("--listen") + 1] if "--listen" in argv else ""
    check(url.startswith("ipc:///") and url.endswith("/link"), "the executor's link: %r" % url)
    runtime = os.path.dirname(os.path.dirname(url[len("ipc://"):]))
    check(os.path.isdir(runtime), "the executors' socket directory %s" % runtime)
    below = [o.pid] + descendants(o.pid, table)
    # The orchestrator is killed outright: the spawner stops what it started
    # and removes the executors' socket directory and the client socket.
    os.kill(o.pid, signal.SIGKILL)
    o.proc.wait(timeout=10)
    wait_until(lambda: not any(alive(pid) for pid in below), 15,
               "the spawner, the executor and its server to be gone")
    check(not os.path.exists(o.sock), "the client socket was left behind")
    check(not os.path.exists(runtime), "the executors' socket directory was left behind")
    return "tried: SIGKILL of the orchestrator\nheld: %d processes below it gone, %s and %s " \
        "removed" % (len(below) - 1, o.sock, runtime)


# ---- 6 ---------------------------------------------------------------------

def test_servers_show_their_box(ctx):
    home = make_home(ctx, config="""[mcp_servers.cfg_plain]
command = %s
[mcp_servers.cfg_boxed]
command = %s
sandbox = { max_open_files = 512 }
""" % (toml_str(MCP_FIXTURE), toml_str(MCP_FIXTURE)))
    p = make_plugin(ctx, "boxes", {"plug_boxed": {}, "plug_off": {"sandbox": "off"}})
    o = Orchestrator(ctx, home)
    c = o.client
    c.initialize()
    c.wait_env("local", timeout=30)
    t = c.start_thread([root("boxes", "local", p)])
    st = c.status(t, timeout=30)
    got = {n: (st.get(n) or {}).get("tandemSandbox") for n in
           ("cfg_plain", "cfg_boxed", "plug_boxed", "plug_off")}
    for n, v in got.items():
        check(isinstance(v, dict) and isinstance(v.get("detail"), str), "%s: %r" % (n, v))
    landlock = got["plug_boxed"]["detail"].startswith("landlock")
    if not landlock:
        print("# !!! the executor has no Landlock here: every server runs unboxed")
    check_eq({n: v["sandboxed"] for n, v in got.items()},
             {"cfg_plain": False, "cfg_boxed": landlock, "plug_boxed": landlock,
              "plug_off": False}, "sandboxed per server")
    check(got["plug_off"]["detail"].startswith("off: sandbox = \"off\""), "%r" % got)
    check(got["cfg_plain"]["detail"].startswith("off: not a plugin server"), "%r" % got)
    return "; ".join("%s: %s" % (n, v["detail"]) for n, v in sorted(got.items()))


TESTS = [(f.__name__[5:].replace("_", " "), f) for f in (
    test_confined_orchestrator,
    test_tls_and_name_resolution,
    test_without_landlock,
    test_secrets_stay_in_the_orchestrator,
    test_spawner_outlives_nothing,
    test_servers_show_their_box,
)]

if __name__ == "__main__":
    sys.exit(run_suite(TESTS))
