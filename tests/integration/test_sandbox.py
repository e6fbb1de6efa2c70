#!/usr/bin/env python3
"""MCP servers in a box (issue 18, item 2), with real parts: a real
orchestrator, a real standalone tandem-executor (token file, its own HOME),
plugin servers (tests/fixtures/hostile_mcp.py, copied into each plugin root)
and the real npm servers when $TANDEM_NPM_PEERS has them.

Every hostile attempt prints what it tried and what held ('# ...' lines).
"""

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tandem_testlib import (  # noqa: E402
    MCP_FIXTURE, Executor, Orchestrator, RpcError, TestFailure, alive, check, check_eq,
    make_home, make_plugin, root, run_suite, toml_str, wait_until, write_file)

FIXTURES = os.environ.get("TANDEM_FIXTURES") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
HOSTILE = os.path.join(FIXTURES, "hostile_mcp.py")
PY = "/usr/bin/python3"
NPM = os.environ.get("TANDEM_NPM_PEERS")


def hostile_plugin(ctx, name, extra_files=None, **cfg):
    """A plugin whose server is a copy of hostile_mcp.py inside its root."""
    rootdir = os.path.realpath(ctx.path("plugins", name))
    script = os.path.join(rootdir, "hostile_mcp.py")
    conf = {"command": PY, "args": [script]}
    conf.update(cfg)
    p = make_plugin(ctx, name, {name + "_srv": conf})
    shutil.copy(HOSTILE, script)
    for rel, text in (extra_files or {}).items():
        write_file(os.path.join(p, rel), text)
    return p


class Setup:
    """A standalone executor with a token file and a HOME holding a fake
    ~/.ssh key, an orchestrator dialling it, one thread over the roots."""

    def __init__(self, ctx, roots, exec_args=()):
        self.ctx = ctx
        self.home = ctx.mkdir("exec-home")
        self.ssh_key = write_file(os.path.join(self.home, ".ssh", "id_ed25519"),
                                  "PRIVATE KEY MARKER\n", 0o600)
        self.sandbox_dir = ctx.mkdir("sandboxes")
        self.ex = Executor(ctx, "boxed", extra_args=["--sandbox-dir", self.sandbox_dir] +
                           list(exec_args), env={"HOME": self.home})
        home = make_home(ctx, environments="""include_local = false
[[environments]]
id = "boxed"
url = %s
""" % toml_str(self.ex.url), tokens={"boxed": self.ex.token})
        self.o = Orchestrator(ctx, home)
        self.c = self.o.client
        self.c.initialize()
        self.c.wait_env("boxed", timeout=30)
        self.t = self.c.start_thread([root(n, "boxed", p) for n, p in roots])

    def tool(self, srv, name, args=None):
        r = self.c.tool(self.t, srv, name, args, timeout=60)
        return r.get("structuredContent") or {}


def attempt(s, srv, what, tool, args, ctx_lines):
    """A hostile attempt that must fail with a permission error."""
    sc = s.tool(srv, tool, args)
    ctx_lines.append("%s: %s" % (what, sc.get("error") if not sc.get("ok") else "SUCCEEDED"))
    check(sc.get("ok") is False, "%s succeeded inside the box: %r" % (what, sc))
    return sc


def test_hostile_server_is_boxed(ctx):
    sib = hostile_plugin(ctx, "sibling", {"secret.txt": "sibling secret\n"})
    bad = hostile_plugin(ctx, "hostile", {"own.txt": "mine\n"})
    s = Setup(ctx, [("hostile", bad), ("sibling", sib)])
    lines = []
    # Positive controls: its own root and its private directory work.
    check_eq(s.tool("hostile_srv", "read", {"path": os.path.join(bad, "own.txt")}).get(
        "content"), "mine\n", "reading its own root")
    who = s.tool("hostile_srv", "whoami")
    check(who.get("home") and who["home"].startswith(s.sandbox_dir),
          "HOME is not the private directory: %r" % who)
    check_eq(who.get("tmpdir"), who.get("home"), "TMPDIR")
    st = os.stat(who["home"])
    check_eq(stat.S_IMODE(st.st_mode), 0o700, "private directory mode")
    check(s.tool("hostile_srv", "write", {"path": os.path.join(who["home"], "x")}).get("ok"),
          "writing its private directory failed")
    for what, path in (("read a sibling plugin's file", os.path.join(sib, "secret.txt")),
                       ("read the executor's token file", s.ex.token_file),
                       ("read ~/.ssh of the executor", s.ssh_key),
                       ("read /etc/shadow", "/etc/shadow")):
        sc = attempt(s, "hostile_srv", what, "read", {"path": path}, lines)
        check(sc["error"].startswith(("EACCES", "EPERM")), "%s: %r" % (what, sc))
    outside = ctx.path("written-by-hostile")
    attempt(s, "hostile_srv", "write outside its directory", "write", {"path": outside}, lines)
    check(not os.path.exists(outside), "the file outside was created")
    attempt(s, "hostile_srv", "write into its own plugin root", "write",
            {"path": os.path.join(bad, "own.txt")}, lines)
    attempt(s, "hostile_srv", "list the sandboxes' parent", "list", {"path": s.sandbox_dir}, lines)
    attempt(s, "hostile_srv", "connect to the executor's abstract socket", "connect",
            {"path": "@" + s.ex.name}, lines)
    sc = attempt(s, "hostile_srv", "fork 10,000 processes", "fork", {"n": 10000}, lines)
    check(sc.get("started", 10000) < 10000 and "EAGAIN" in (sc.get("error") or ""),
          "fork bomb: %r" % sc)
    lines.append("fork bomb stopped after %d processes" % sc["started"])
    # The executor and the other servers are unaffected.
    check(alive(s.ex.pid), "the executor died")
    check_eq(s.tool("sibling_srv", "read", {"path": os.path.join(sib, "secret.txt")}).get(
        "content"), "sibling secret\n", "the sibling reads its own file")
    check(s.tool("hostile_srv", "whoami").get("ok"), "the hostile server itself still answers")
    return "\n".join(lines)


def test_opt_out_and_grants(ctx):
    granted = ctx.mkdir("granted")
    write_file(os.path.join(granted, "data.txt"), "granted data\n")
    sib = hostile_plugin(ctx, "sib2", {"secret.txt": "sibling secret\n"})
    off = hostile_plugin(ctx, "unboxed", sandbox="off")
    grant = hostile_plugin(ctx, "granted", {"cache/.keep": ""},
                           sandbox={"read": [granted], "write": ["./cache"]})
    s = Setup(ctx, [("unboxed", off), ("granted", grant), ("sib2", sib)],
              exec_args=["--sandbox-allow", granted])
    check_eq(s.tool("unboxed_srv", "read", {"path": os.path.join(sib, "secret.txt")}).get(
        "content"), "sibling secret\n", "sandbox = off reads anywhere")
    check_eq(s.tool("granted_srv", "read", {"path": os.path.join(granted, "data.txt")}).get(
        "content"), "granted data\n", "sandbox.read outside the root, under --sandbox-allow")
    check(s.tool("granted_srv", "write", {"path": os.path.join(grant, "cache", "f")}).get("ok"),
          "sandbox.write inside the root")
    check(not s.tool("granted_srv", "write", {"path": os.path.join(granted, "f")}).get("ok"),
          "sandbox.read does not grant writing")
    check(not s.tool("granted_srv", "read", {"path": os.path.join(sib, "secret.txt")}).get("ok"),
          "a grant opens nothing else")


def test_grant_outside_allow_refused(ctx):
    granted = ctx.mkdir("not-allowed")
    p = hostile_plugin(ctx, "greedy", sandbox={"read": [granted]})
    s = Setup(ctx, [("greedy", p)])
    n = s.c.wait_notification(lambda n: n["method"] == "mcpServer/startupStatus/updated" and
                              n["params"].get("status") == "failed", what="a failed status")
    why = n["params"].get("error") or ""
    check("--sandbox-allow" in why, "the refusal does not say how to grant: %r" % why)
    try:
        s.tool("greedy_srv", "whoami")
        raise TestFailure("a server granting itself a path outside --sandbox-allow started")
    except RpcError:
        pass
    return why


def test_network_false(ctx):
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(8)
    port = lst.getsockname()[1]
    try:
        online = hostile_plugin(ctx, "online")
        offline = hostile_plugin(ctx, "offline", network=False)
        s = Setup(ctx, [("online", online), ("offline", offline)])
        check(s.tool("online_srv", "tcp", {"port": port}).get("ok"), "default: network works")
        sc = s.tool("offline_srv", "tcp", {"port": port})
        check(sc.get("ok") is False, "network = false connected: %r" % sc)
        return "# network = false: %s" % sc.get("error")
    finally:
        lst.close()


def test_denial_is_named_in_the_exit_reason(ctx):
    # A server that needs a file the box does not grant, and dies of it.
    secret = write_file(ctx.path("needed.conf"), "x\n")
    p = make_plugin(ctx, "needy", {"needy_srv": {
        "command": PY, "args": ["-c", "open(%r).read()" % secret]}})
    s = Setup(ctx, [("needy", p)])
    mark = len(s.c.notifications)
    try:
        s.tool("needy_srv", "whoami")
        raise TestFailure("the server started")
    except RpcError as e:
        msg = e.message
    n = s.c.wait_notification(lambda n: n["method"] == "mcpServer/startupStatus/updated" and
                              n["params"].get("status") == "failed", start=mark,
                              what="a failed status")
    why = (n["params"].get("error") or "") + " " + msg
    check("sandbox may have refused" in why and "Permission denied" in why,
          "the reason does not name the box: %r" % why)
    return "# " + why.strip()


def test_private_dir_removed_at_stop(ctx):
    p = hostile_plugin(ctx, "tidy")
    s = Setup(ctx, [("tidy", p)])
    home = s.tool("tidy_srv", "whoami")["home"]
    check(os.path.isdir(home), "no private directory")
    s.o.stop(timeout=15)
    wait_until(lambda: not os.path.exists(home), 10, "the private directory to be removed")
    s.ex.stop()
    check_eq(os.listdir(s.sandbox_dir), [], "what the executor left in --sandbox-dir")


def npm_root(ctx, name):
    """A plugin root with the npm peers' node_modules (hard links: same
    files, inside the root)."""
    rootdir = ctx.mkdir("plugins", name)
    r = subprocess.run(["cp", "-al", os.path.join(NPM, "node_modules"), rootdir],
                       capture_output=True)
    if r.returncode != 0:
        shutil.copytree(os.path.join(NPM, "node_modules"), os.path.join(rootdir, "node_modules"),
                        symlinks=True)
    return os.path.realpath(rootdir)


def test_npm_servers_in_the_box(ctx):
    ev = "node_modules/@modelcontextprotocol/server-everything/dist/index.js"
    fs = "node_modules/@modelcontextprotocol/server-filesystem/dist/index.js"
    if not NPM or not all(os.path.exists(os.path.join(NPM, x)) for x in (ev, fs)):
        print("# !!! npm peers not installed ($TANDEM_NPM_PEERS=%r)" % NPM)
        return "SKIP npm peers not installed"
    r = npm_root(ctx, "npm")
    data = os.path.join(r, "data")
    os.makedirs(data)
    write_file(os.path.join(r, ".codex-plugin", "plugin.json"), json.dumps({"name": "npm"}))
    write_file(os.path.join(r, ".mcp.json"), json.dumps({"mcpServers": {
        "everything": {"command": "node", "args": ["./" + ev, "stdio"]},
        "files": {"command": "node", "args": ["./" + fs, data],
                  "sandbox": {"write": ["./data"]}}}}))
    s = Setup(ctx, [("npm", r)])
    st = s.c.status(s.t, timeout=60)
    for name in ("everything", "files"):
        check_eq(st.get(name, {}).get("runtimeStatus"), "connected", "%s status" % name)
    res = s.c.tool(s.t, "everything", "echo", {"message": "boxed"}, timeout=60)
    check("boxed" in json.dumps(res), "everything/echo: %r" % res)
    target = os.path.join(data, "hello.txt")
    s.c.tool(s.t, "files", "write_file", {"path": target, "content": "from the box"}, timeout=60)
    with open(target) as f:
        check_eq(f.read(), "from the box", "file written by server-filesystem")
    res = s.c.tool(s.t, "files", "read_text_file", {"path": target}, timeout=60)
    check("from the box" in json.dumps(res), "read_text_file: %r" % res)


TESTS = [(f.__name__[5:].replace("_", " "), f) for f in (
    test_hostile_server_is_boxed,
    test_opt_out_and_grants,
    test_grant_outside_allow_refused,
    test_network_false,
    test_denial_is_named_in_the_exit_reason,
    test_private_dir_removed_at_stop,
    test_npm_servers_in_the_box,
)]

if __name__ == "__main__":
    sys.exit(run_suite(TESTS))
