#!/usr/bin/env python3
"""test_cli.py - the `tandem` CLI against a real orchestrator, executor and MCP
servers (TAP output, Python standard library only).

Binaries come from the environment meson sets (TANDEM_CLI, TANDEM_ORCHESTRATOR,
TANDEM_EXECUTOR, TANDEM_DEMO_SERVER, MCP_FIXTURE); run by hand, they default to
the build/ tree next to this checkout.

One orchestrator is served on a unix socket (`tandem serve --socket`) for the
multi-step tests; others start the CLI's private stdio orchestrator. The `ask`
tests run against that real orchestrator with a fake Responses API served
here; they are skipped only while the orchestrator answers turn/start with
-32601 (turns not implemented yet).
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
BUILD = os.path.join(REPO, "build")


def binary(var, rel):
    path = os.environ.get(var) or os.path.join(BUILD, rel)
    if not os.access(path, os.X_OK):
        print(f"Bail out! {var}: {path} is not executable")
        sys.exit(1)
    return path


CLI = binary("TANDEM_CLI", "cli/tandem")
ORCH = binary("TANDEM_ORCHESTRATOR", "orchestrator/tandem-orchestrator")
EXECUTOR = binary("TANDEM_EXECUTOR", "executor/tandem-executor")
DEMO = binary("TANDEM_DEMO_SERVER", "deploy/demo-server/tandem-demo-server")
FIXTURE = binary("MCP_FIXTURE", "tests/mcp-fixture")
GENERATE = os.path.join(REPO, "deploy", "example-plugin", "generate")

TIMEOUT = 60
GREETING = "hello from the executor's environment"

# ---- a tiny TAP harness ------------------------------------------------------

TESTS = []


class Skip(Exception):
    pass


def test(fn):
    TESTS.append(fn)
    return fn


def run_tests():
    failed = 0
    for n, fn in enumerate(TESTS, 1):
        name = fn.__name__.replace("_", " ")
        t0 = time.monotonic()
        try:
            fn()
            print(f"ok {n} - {name}")
            if time.monotonic() - t0 > 3:  # a hint when a run is slow, never a verdict
                print(f"# {name}: {time.monotonic() - t0:.1f} s")
        except Skip as e:
            print(f"ok {n} - {name} # SKIP {e}")
        except AssertionError as e:  # a check: its message says it all
            failed += 1
            print(f"not ok {n} - {name}")
            where = [f for f in traceback.extract_tb(e.__traceback__)
                     if f.name not in ("check", "ok_run", "json_run", "tandem")][-1]
            print(f"# {os.path.basename(where.filename)}:{where.lineno}")
            for line in str(e).splitlines():
                print(f"# {line}")
        except Exception:  # one failing test must not hide the others
            failed += 1
            print(f"not ok {n} - {name}")
            for line in traceback.format_exc().splitlines():
                print(f"# {line}")
        sys.stdout.flush()
    print(f"1..{len(TESTS)}")
    return 1 if failed else 0


def check(cond, what, *context):
    if not cond:
        raise AssertionError(what + "".join(f"\n{c}" for c in context))


# ---- fixtures ------------------------------------------------------------------

WORK = tempfile.mkdtemp(prefix="tandem-test-cli-")
HOME = os.path.join(WORK, "home")
SOCK = os.path.join(WORK, "orchestrator.sock")
DEMO_ROOT = os.path.join(WORK, "plugins", "tandem-demo")
FIX_ROOT = os.path.join(WORK, "plugins", "fixture")
# A fixture plugin used only by the private orchestrators: its mark finds the
# server's processes (in their environment).
PRIV_ROOT = os.path.join(WORK, "plugins", "fixture-private")
PRIV_MARK = "tandem-test-cli-" + uuid.uuid4().hex


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def make_plugins():
    # The committed example plugin, generated the way deploy/local/run does.
    subprocess.run([GENERATE, DEMO_ROOT, DEMO], check=True, timeout=TIMEOUT)
    for root, env in ((FIX_ROOT, {}), (PRIV_ROOT, {"PRIV_MARK": PRIV_MARK})):
        write(os.path.join(root, ".codex-plugin", "plugin.json"),
              json.dumps({"name": "fixture", "version": "1.0.0"}))
        write(os.path.join(root, ".mcp.json"), json.dumps({"mcpServers": {
            "fx": {"command": FIXTURE, "env": env}}}))


def config_toml(model_port, extra=""):
    return f"""model = "fake-model"
model_provider = "fake"

[model_providers.fake]
name = "fake Responses API"
base_url = "http://127.0.0.1:{model_port}/v1"
wire_api = "responses"
env_key = "FAKE_API_KEY"

[mcp_servers.cfg_fixture]
command = "{FIXTURE}"
{extra}"""


def cli_env(socket_path=None):
    env = dict(os.environ)
    env.pop("TANDEM_SOCKET", None)
    env.pop("TANDEM_LOG", None)
    env["DEMO_GREETING"] = GREETING
    env["TANDEM_EXECUTOR_ENV"] = "DEMO_GREETING"  # spawned executors get it by name
    env["FAKE_API_KEY"] = "sk-test"
    if socket_path:
        env["TANDEM_SOCKET"] = socket_path
    return env


def tandem(*args, sock=True, stdin=None, timeout=TIMEOUT, home=None):
    """Runs the CLI; returns (exit code, stdout, stderr)."""
    if sock:
        check(SERVE is not None and SERVE.poll() is None,
              "the served orchestrator is not running (see the first test)")
    argv = [CLI, "--orchestrator", ORCH, "--executor", EXECUTOR]
    if home:
        argv += ["--home", home]
    p = subprocess.run(argv + list(args), env=cli_env(SOCK if sock else None), input=stdin,
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def ok_run(*args, **kw):
    rc, out, err = tandem(*args, **kw)
    check(rc == 0, f"tandem {' '.join(args)}: exit {rc}", f"stdout: {out}", f"stderr: {err}")
    return out, err


def json_run(*args, **kw):
    out, err = ok_run("--json", *args, **kw)
    return json.loads(out)


def processes_with(marker):
    """PIDs whose command line or environment holds marker (our own processes)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        for part in ("cmdline", "environ"):
            try:
                with open(f"/proc/{pid}/{part}", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(pid))
                        break
            except OSError:
                pass
    return found


def wait_gone(marker, seconds=10):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if not processes_with(marker):
            return True
        time.sleep(0.05)
    return False


# ---- the model: tests/fixtures/fake_responses.py ----------------------------------

FAKE_RESPONSES = os.path.join(REPO, "tests", "fixtures", "fake_responses.py")
MODEL_RECORD = os.path.join(WORK, "model-requests.jsonl")
# One step per model request, in the order the ask tests make them.
MODEL_SCRIPT = {"steps": [
    {"comment": "ask: the model calls the demo server's echo",
     "expect": {"has_tools": [{"namespace": "mcp__executor_demo", "name": "echo"}]},
     "tool_calls": [{"namespace": "mcp__executor_demo", "name": "echo",
                     "arguments": {"message": "pong"}}]},
    {"comment": "ask: the answer, in three deltas, once the tool output is in",
     "expect": {"input_contains": ["pong"]},
     "reply_text": ["The echo ", "tool said: ", "pong"]},
    {"comment": "ask --json", "reply_text": "Just text."},
    {"comment": "ask, interrupted: created, in_progress, item added, part added, "
                "two deltas, then the stream hangs",
     "reply_text": ["thinking", " slowly"], "hang_after_events": 6},
]}
MODEL = None


def start_model():
    global MODEL
    script = os.path.join(WORK, "model-script.json")
    write(script, json.dumps(MODEL_SCRIPT))
    MODEL = subprocess.Popen([sys.executable, FAKE_RESPONSES, "--script", script, "--port", "0",
                              "--record", MODEL_RECORD], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    line = MODEL.stdout.readline()
    check(line.startswith("LISTENING "), f"fake_responses.py said {line!r}")
    return int(line.split()[1])


def stop_model():
    if MODEL and MODEL.poll() is None:
        MODEL.stdin.close()  # its EOF ends it
        try:
            MODEL.wait(timeout=10)
        except subprocess.TimeoutExpired:
            MODEL.kill()
            MODEL.wait()


def model_requests():
    try:
        with open(MODEL_RECORD, encoding="utf-8") as f:
            return [json.loads(l) for l in f if l.strip()]
    except FileNotFoundError:
        return []


# ---- the served orchestrator -------------------------------------------------------

SERVE = None


def start_serve():
    global SERVE
    log = open(os.path.join(WORK, "serve.log"), "w")
    SERVE = subprocess.Popen([CLI, "--orchestrator", ORCH, "--executor", EXECUTOR, "--home",
                              HOME, "serve", "--socket", SOCK],
                             env=cli_env(), stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    deadline = time.time() + 20
    while time.time() < deadline:
        if os.path.exists(SOCK):
            return
        check(SERVE.poll() is None, f"tandem serve exited with {SERVE.returncode}",
              serve_log_tail())
        time.sleep(0.05)
    raise AssertionError("tandem serve did not create its socket\n" + serve_log_tail())


def serve_log_tail(lines=15):
    with open(os.path.join(WORK, "serve.log"), encoding="utf-8", errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def stop_serve():
    if SERVE and SERVE.poll() is None:
        SERVE.send_signal(signal.SIGTERM)
        try:
            SERVE.wait(timeout=15)
        except subprocess.TimeoutExpired:
            SERVE.kill()
            SERVE.wait()


def raw_request(method, params):
    """One request on a fresh socket session (after initialize): the reply."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(TIMEOUT)
        s.connect(SOCK)
        f = s.makefile("rw", encoding="utf-8")
        for i, (m, p) in enumerate([("initialize", {"clientInfo": {"name": "test_cli"}}),
                                    (method, params)], 1):
            f.write(json.dumps({"id": i, "method": m, "params": p}) + "\n")
            f.flush()
            while True:
                msg = json.loads(f.readline())
                if msg.get("id") == i:
                    break
        return msg


STATE = {}

# ---- the tests --------------------------------------------------------------------------


@test
def serve_listens_and_its_executor_connects():
    start_serve()
    # Thread-scoped requests project only ready environments: the tests after
    # this one need the local executor connected (a stuck handshake is retried
    # by the orchestrator after its 10 s initialize timeout).
    deadline = time.time() + 30
    while time.time() < deadline:
        if json_run("status")[0]["status"] == "ready":
            return
        time.sleep(0.05)
    raise AssertionError("environment 'local' of the served orchestrator never became ready\n"
                         + serve_log_tail())


@test
def status_human_and_json():
    out, _ = ok_run("status")
    lines = out.splitlines()
    check(re.match(r"ENVIRONMENT\s+STATUS\s+DIRECTION\s+SESSION\s+RECONNECTS\s+RTT\s+ERROR$",
                   lines[0]), "header", out)
    check(re.match(r"local\s+(ready|pending)\s+spawned\s+([0-9a-f]{8}|-)\s+0\s+(-|[\d.]+ ms)\s+-$",
                   lines[1]), "local row", out)
    res = json_run("status", "--env", "local", "--env", "nowhere")
    check([r["environmentId"] for r in res] == ["local", "nowhere"], "ids", res)
    check(res[1]["status"] == "unknown", "unknown environment", res)


@test
def threads_empty():
    rc, out, err = tandem("threads")
    check(rc == 0 and out == "" and "no threads" in err, "empty list", out, err)
    check(json_run("threads") == {"data": [], "nextCursor": None}, "empty json")


@test
def start_prints_the_thread_id_and_progress():
    out, err = ok_run("start", "--root", f"local:{DEMO_ROOT}")
    tid = out.strip()
    check(re.fullmatch(r"[0-9a-f-]{36}", tid), "a thread id on stdout", out)
    check("starting server executor_demo..." in err, "starting progress", err)
    check("server executor_demo ready (5 tools)" in err, "ready progress", err)
    STATE["thread"] = tid


@test
def start_json_and_roots_with_ids():
    res = json_run("start", "--root", f"demo=local:{DEMO_ROOT}", "--root",
                   f"fixture=local:{FIX_ROOT}")
    check(re.fullmatch(r"[0-9a-f-]{36}", res["thread"]["id"]), "thread id", res)
    STATE["thread2"] = res["thread"]["id"]


@test
def threads_lists_both():
    out, _ = ok_run("threads")
    check(out.splitlines()[0].split() == ["THREAD", "CREATED", "STATUS", "MODEL"], "header", out)
    for key in ("thread", "thread2"):
        check(STATE[key] in out, f"{key} listed", out)
    ids = [t["id"] for t in json_run("threads")["data"]]
    check(set(ids) == {STATE["thread"], STATE["thread2"]}, "json ids", ids)


@test
def servers_human_and_json():
    out, _ = ok_run("servers", STATE["thread2"])
    rows = {l.split()[0]: l for l in out.splitlines()[1:]}
    check(out.splitlines()[0].split() == ["SERVER", "STATE", "PLUGIN", "TOOLS"], "header", out)
    check(re.match(r"executor_demo\s+connected\s+demo\s+echo, env, hash, now, sysinfo$",
                   rows.get("executor_demo", "")), "demo row", out)
    check(re.match(r"fx\s+connected\s+fixture\s+", rows.get("fx", "")), "fixture row", out)
    res = json_run("servers", STATE["thread2"])
    demo = [s for s in res["data"] if s["name"] == "executor_demo"][0]
    check(demo["runtimeStatus"] == "connected" and demo["toolsError"] is None, "state", demo)
    check(sorted(demo["tools"]) == ["echo", "env", "hash", "now", "sysinfo"], "tools", demo)
    check(demo["tools"]["echo"]["outputSchema"]["required"] == ["message", "host"],
          "output schema", demo)


@test
def servers_without_thread_shows_config_servers():
    out, _ = ok_run("servers")
    check(re.search(r"^cfg_fixture\s+connected\s+-\s+", out, re.M), "config server", out)


@test
def call_prints_text_and_json():
    out, err = ok_run("call", STATE["thread"], "executor_demo", "echo", "message=hello there")
    check(out == "hello there\n", "text content", out, err)
    res = json_run("call", STATE["thread"], "executor_demo", "echo", "message=hi")
    check(res["structuredContent"]["message"] == "hi", "structuredContent", res)
    check(res["structuredContent"]["host"] == socket.gethostname(), "host", res)
    check(res.get("isError") is False, "isError false", res)


@test
def call_key_value_parsing():
    t = STATE["thread2"]
    res = json_run("call", t, "fx", "add", "a=2", "b=3.5")
    check(res["structuredContent"] == {"sum": 5.5}, "numbers parsed as JSON", res)
    res = json_run("call", t, "executor_demo", "echo", 'message="42"')
    check(res["structuredContent"]["message"] == "42", "quoted JSON string", res)
    res = json_run("call", t, "executor_demo", "echo", "message=not json {")
    check(res["structuredContent"]["message"] == "not json {", "plain string", res)
    res = json_run("call", t, "executor_demo", "hash", '{"text": "abc"}', "algorithm=sha512")
    check(res["structuredContent"]["hex"].startswith("ddaf35a193617aba"), "object + kv", res)
    res = json_run("call", t, "executor_demo", "hash", "--args", '{"text": "abc"}')
    check(res["structuredContent"]["hex"] == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
          "--args", res)
    rc, out, err = tandem("call", t, "executor_demo", "echo", "message=42")
    check(rc == 1 and "must be a string" in err, "42 is a number: a tool error", rc, out, err)


@test
def call_env_vars_flow():
    out, _ = ok_run("call", STATE["thread"], "executor_demo", "env", "name=DEMO_GREETING")
    check(out == GREETING + "\n", "env_vars resolved on the executor", out)
    rc, out, err = tandem("call", STATE["thread"], "executor_demo", "env", "name=HOME")
    check(rc == 1 and "executor_demo.env failed" in err and "DEMO_ENV_ALLOW" in err,
          "not allowed", rc, out, err)


@test
def remote_errors_exit_1():
    rc, out, err = tandem("servers", "no-such-thread")
    check(rc == 1 and out == "" and err.startswith("tandem: ") and "no-such-thread" in err,
          "unknown thread", rc, out, err)
    check(len(err.splitlines()) == 1, "one line", err)
    rc, out, err = tandem("call", STATE["thread"], "nosuch", "echo", "message=x")
    check(rc == 1 and "server 'nosuch' is not available in this thread" in err,
          "unknown server", rc, err)


@test
def usage_errors_exit_2():
    for args, what in [((), "missing COMMAND"), (("bogus",), "unknown command"),
                       (("threads", "--env", "x"), "does not apply"),
                       (("call", "t", "s"), "usage"),
                       (("call", "t", "s", "tool", "novalue"), "KEY=VALUE"),
                       (("call", "t", "s", "tool", "a=1", "a=2"), "twice"),
                       (("call", "t", "s", "tool", "--args", "[1]"), "JSON object"),
                       (("start", "--root", "nocolon"), "ENV:PATH"),
                       (("start", "--root", "remote:relative/path"), "absolute"),
                       (("--frobnicate", "status"), "unknown"),
                       (("ask", "t"), "usage")]:
        rc, out, err = tandem(*args, sock=False, home=os.path.join(WORK, "private-home"))
        check(rc == 2 and what in err, f"{args}: exit 2 mentioning {what!r}", rc, out, err)


@test
def no_orchestrator_exit_3():
    missing = os.path.join(WORK, "nothing-here.sock")
    rc, out, err = tandem("--socket", missing, "status", sock=False)
    check(rc == 3 and "cannot connect" in err and missing in err, "socket", rc, err)
    rc, out, err = tandem("--orchestrator", os.path.join(WORK, "no-binary"), "status",
                          sock=False, home=HOME)
    check(rc == 3 and "cannot start" in err, "private orchestrator", rc, err)


@test
def reload_and_a_broken_config():
    write(os.path.join(HOME, "config.toml"),
          config_toml(STATE["port"], f'\n[mcp_servers.cfg_second]\ncommand = "{FIXTURE}"\n'))
    out, _ = ok_run("reload")
    check(out == "configuration reloaded\n", "human", out)
    check(json_run("reload") == {}, "json")
    out, _ = ok_run("servers")
    check("cfg_second" in out, "the new server is there after reload", out)
    write(os.path.join(HOME, "config.toml"), "model = [\n")
    rc, out, err = tandem("reload")
    check(rc == 1 and "config.toml" in err, "broken config refused", rc, err)
    write(os.path.join(HOME, "config.toml"), config_toml(STATE["port"]))
    ok_run("reload")


@test
def json_mode_prints_no_progress():
    rc, out, err = tandem("--json", "start", "--root", f"fixture=local:{FIX_ROOT}")
    check(rc == 0 and "starting server" not in err and "ready" not in err, "quiet", err)
    json.loads(out)


@test
def private_orchestrator_status():
    home = os.path.join(WORK, "private-home")
    os.makedirs(home, exist_ok=True)
    out, err = ok_run("status", sock=False, home=home)
    check(re.search(r"^local\s+ready\s+spawned\s+[0-9a-f]{8}\s+0\s+(-|[\d.]+ ms)\s+-$", out,
                    re.M), "local is ready", out, err)
    check(wait_gone(home), "no private orchestrator left behind", processes_with(home))


@test
def private_orchestrator_servers_with_root():
    home = os.path.join(WORK, "private-home")
    out, err = ok_run("servers", "--root", f"local:{DEMO_ROOT}", sock=False, home=home)
    check(re.search(r"^executor_demo\s+connected\s+tandem-demo\s+echo,", out, re.M), "row",
          out, err)
    check(wait_gone(home), "no private orchestrator left behind", processes_with(home))


@test
def ctrl_c_stops_a_private_orchestrator_and_its_servers():
    home = os.path.join(WORK, "private-home")
    p = subprocess.Popen([CLI, "--orchestrator", ORCH, "--executor", EXECUTOR, "--home", home,
                          "call", "--root", f"fixture=local:{PRIV_ROOT}", "fx", "sleep",
                          "ms=60000"], env=cli_env(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 20
    while time.time() < deadline and not processes_with(PRIV_MARK):
        time.sleep(0.05)
    check(processes_with(PRIV_MARK), "the fixture server started")
    time.sleep(0.2)  # the call is on its way
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=TIMEOUT)
    if time.monotonic() - t0 > 3:
        print(f"# the CLI took {time.monotonic() - t0:.1f} s to stop; its stderr: {err!r}")
    check(p.returncode == 130, f"exit {p.returncode}", out, err)
    check(wait_gone(home), "orchestrator gone", processes_with(home))
    check(wait_gone(PRIV_MARK), "MCP server gone", processes_with(PRIV_MARK))


def turns_implemented():
    # Invalid params: an implementation refuses them (-32602) without starting
    # a turn; only a missing method answers -32601 whatever the params.
    reply = raw_request("turn/start", {"threadId": "no-such-thread", "input": []})
    if reply.get("error", {}).get("code") == -32601:
        raise Skip("turn/start not implemented")


@test
def ask_streams_the_answer_and_tool_calls():
    turns_implemented()
    rc, out, err = tandem("ask", STATE["thread"], "please", "call", "echo")
    check(rc == 0, f"exit {rc}", out, err)
    check(out == "The echo tool said: pong\n", "streamed text on stdout", repr(out), err)
    check(re.search(r'^-> executor_demo\.echo\(\{"message":\s*"pong"\}\)$', err, re.M),
          "tool call start", err)
    check(re.search(r"^<- pong \(\d+ ms\)$", err, re.M), "tool call result", err)
    steps = [r.get("step") for r in model_requests()]
    check(steps == [0, 1], "two model steps", steps)


@test
def ask_json_ends_with_turn_completed():
    turns_implemented()
    rc, out, err = tandem("--json", "ask", STATE["thread"], "-", stdin="just answer")
    check(rc == 0, f"exit {rc}", out, err)
    lines = [json.loads(l) for l in out.splitlines()]
    methods = [l["method"] for l in lines]
    check(methods[-1] == "turn/completed", "last", methods)
    check("item/agentMessage/delta" in methods, "deltas", methods)
    check(lines[-1]["params"]["turn"]["status"] == "completed", "status", lines[-1])
    deltas = "".join(l["params"]["delta"] for l in lines
                     if l["method"] == "item/agentMessage/delta")
    check(deltas == "Just text.", "the text", deltas)


@test
def ask_ctrl_c_interrupts_the_turn():
    turns_implemented()
    p = subprocess.Popen([CLI, "ask", STATE["thread"], "be slow"], env=cli_env(SOCK),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 20  # the record line of a hang appears when it begins
    while time.time() < deadline and not any(r.get("hung") for r in model_requests()):
        time.sleep(0.05)
    check(any(r.get("hung") for r in model_requests()), "the model stream hangs")
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=TIMEOUT)
    check(p.returncode == 130, f"exit {p.returncode}", out, err)
    check(out.startswith("thinking slowly"), "the deltas before the interrupt", out)
    check("interrupting the turn" in err, "said so", err)


def main():
    STATE["port"] = start_model()
    os.makedirs(HOME)
    write(os.path.join(HOME, "config.toml"), config_toml(STATE["port"]))
    make_plugins()
    try:
        return run_tests()
    finally:
        stop_serve()
        stop_model()
        if not os.environ.get("TANDEM_KEEP_TEST_DIR"):
            shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
