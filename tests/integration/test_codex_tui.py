#!/usr/bin/env python3
"""Codex's interactive TUI on tandem (issue 15): `codex --remote unix://SOCK`
(@openai/codex from $TANDEM_NPM_PEERS) driven in tmux against a real
orchestrator on a unix socket (WebSocket), the fixture MCP server as a
config.toml server and the fake Responses provider. It starts, takes a
prompt, shows the tool call and the answer, and exits on Ctrl-C with status
0. A loud SKIP when codex or tmux is missing. Prints TAP.
"""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tandem_testlib import (  # noqa: E402
    Orchestrator, TestFailure, check, check_eq, run_suite, wait_until)
from test_codex_api import home_with, tool_script  # noqa: E402
from test_turns import API_KEY, Fake  # noqa: E402

PROMPT = "say hello through the tool"


class Tmux:
    """A private tmux server (its own socket in the test's directory)."""

    def __init__(self, ctx):
        self.sock = ctx.path("tmux.sock")
        self.ctx = ctx
        ctx.closers.append(self.kill)

    def run(self, *args, check_rc=True):
        r = subprocess.run(["tmux", "-S", self.sock] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=10)
        if check_rc and r.returncode != 0:
            raise TestFailure("tmux %s: %s" % (args[0], r.stderr.decode()[-300:]))
        return r.stdout.decode("utf-8", "replace")

    def screen(self):
        return self.run("capture-pane", "-p", "-t", "tui")

    def wait_for(self, text, what, timeout=30):
        try:
            wait_until(lambda: text in self.screen(), timeout, what, interval=0.2)
        except TestFailure:
            raise TestFailure("%s: %r not on the screen:\n%s" % (what, text, self.screen()))

    def kill(self):
        if os.path.exists(self.sock):
            self.run("kill-server", check_rc=False)


def t_tui(ctx):
    npm = os.environ.get("TANDEM_NPM_PEERS") or ""
    codex = os.path.join(npm, "node_modules", ".bin", "codex")
    if not shutil.which("tmux"):
        print("# !!! tmux is missing (deploy/local/lib.sh installs it)")
        return "SKIP tmux is not installed"
    if not npm or not os.access(codex, os.X_OK):
        print("# !!! @openai/codex missing: $TANDEM_NPM_PEERS=%r" % npm)
        return "SKIP no codex in $TANDEM_NPM_PEERS (deploy/local/test installs it)"
    fake = Fake(ctx, tool_script())
    o = Orchestrator(ctx, home_with(ctx, fake), mode="unix",
                     env={"TANDEM_TEST_API_KEY": API_KEY})
    o.wait_socket()
    home, status = ctx.mkdir("codex-home"), ctx.path("codex-exit")
    t = Tmux(ctx)
    # codex gets a HOME and CODEX_HOME of its own; its exit status lands in
    # a file, and the pane stays for the screen checks.
    cmd = ("env HOME=%s CODEX_HOME=%s %s --remote unix://%s; echo $? > %s; sleep 60" %
           (home, home, codex, o.sock, status))
    t.run("new-session", "-d", "-s", "tui", "-x", "160", "-y", "45", "-c", ctx.mkdir("work"),
          cmd)
    t.wait_for("Ask Codex", "the TUI's prompt")
    t.wait_for("gpt-test", "the configured model in the status line")
    t.run("send-keys", "-t", "tui", "-l", PROMPT)
    t.wait_for(PROMPT, "the typed prompt")
    t.run("send-keys", "-t", "tui", "Enter")
    t.wait_for("The tool said hello.", "the answer")
    screen = t.screen()
    check("demo.echo" in screen, "the tool call is not shown:\n%s" % screen)
    check("hello from the tool" in screen, "the tool's output is not shown:\n%s" % screen)
    t.run("send-keys", "-t", "tui", "C-c")
    wait_until(lambda: os.path.exists(status) and open(status).read().strip(), 20,
               "codex to exit on Ctrl-C")
    screen = t.screen()
    check_eq(open(status).read().strip(), "0", "codex's exit status (screen:\n%s)" % screen)
    check("Error" not in screen, "an error on exit:\n%s" % screen)
    t.kill()
    check_eq(o.stop(), 0, "orchestrator exit status")
    check_eq(fake.finish(), 0, "the fake saw the scripted requests")


TESTS = [
    ("codex --remote unix://: start, prompt, tool call, answer, Ctrl-C", t_tui),
]

if __name__ == "__main__":
    sys.exit(run_suite(TESTS))
