#!/usr/bin/env python3
"""Turn tests: turn/start end to end through the real orchestrator, a real
executor, the fixture MCP server and a scripted fake Responses server that
speaks real SSE (tests/fixtures/fake_responses.py). Prints TAP.

Binaries: $TANDEM_ORCHESTRATOR, $TANDEM_EXECUTOR, $MCP_FIXTURE.
"""

import hashlib
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tandem_testlib import (  # noqa: E402
    Orchestrator, Tap, TestFailure, become_subreaper, check, check_eq, make_home, make_plugin,
    root, wait_until, write_file, run_suite)

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "..", "fixtures", "fake_responses.py")
SCRIPTS = os.path.join(HERE, "..", "fixtures", "responses-scripts")
API_KEY = "sk-tandem-test-0123456789abcdef"
SECRET_VALUE = "executor-side-value-42"


class Fake:
    """The fake Responses server: a script in, a record of requests out."""

    def __init__(self, ctx, script):
        if isinstance(script, dict):
            path = ctx.path("script.json")
            write_file(path, json.dumps(script))
            script = path
        elif not os.path.isabs(script):
            script = os.path.join(SCRIPTS, script)
        self.record = ctx.path("record.jsonl")
        self.proc = ctx.popen([sys.executable, FAKE, "--script", script, "--record",
                               self.record], "fake-responses", stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
        line = self.proc.stdout.readline().decode()
        check(line.startswith("LISTENING "), "fake server did not start: %r" % line)
        self.port = int(line.split()[1])

    def records(self):
        if not os.path.exists(self.record):
            return []
        with open(self.record) as f:
            return [json.loads(l) for l in f if l.strip()]

    def state(self):
        import urllib.request
        with urllib.request.urlopen("http://127.0.0.1:%d/_fake/state" % self.port, timeout=5) as r:
            return json.load(r)

    def finish(self):
        """Stops it; its status says whether every request matched its step."""
        self.proc.stdin.close()
        return self.proc.wait(timeout=10)


def home_for(ctx, fake, extra_config=""):
    config = ('model = "gpt-test"\nmodel_provider = "fake"\n'
              '[model_providers.fake]\nname = "Fake"\nbase_url = "http://127.0.0.1:%d/v1"\n'
              'wire_api = "responses"\nenv_key = "TANDEM_TEST_API_KEY"\n'
              'request_max_retries = 2\nstream_max_retries = 0\n' % fake.port) + extra_config
    return make_home(ctx, config=config)


def start(ctx, fake, servers=None, extra_config=""):
    """Orchestrator + a thread selecting a plugin whose server is the fixture."""
    home = home_for(ctx, fake, extra_config)
    servers = servers or {"executor_demo": {"env_vars": ["TANDEM_SECRET_VALUE"],
                                            "env": {"FIXTURE_ECHO_ENV": "TANDEM_SECRET_VALUE"}}}
    plugin = make_plugin(ctx, "demo", servers)
    # The spawned executor's environment is cleared: the value is passed to it
    # by name (README "What an executor and a server inherit").
    orch = Orchestrator(ctx, home, env={"TANDEM_TEST_API_KEY": API_KEY,
                                        "TANDEM_SECRET_VALUE": SECRET_VALUE,
                                        "TANDEM_EXECUTOR_ENV": "TANDEM_SECRET_VALUE"})
    c = orch.client
    c.initialize()
    tid = c.start_thread([root("demo", "local", plugin)])
    return orch, c, tid


def run_turn(c, tid, text, timeout=30):
    """Starts a turn and collects its notifications until turn/completed."""
    mark = len(c.notifications)
    r = c.call("turn/start", {"threadId": tid, "input": [{"type": "text", "text": text}]})
    check_eq(r["turn"]["status"], "inProgress", "turn/start answer")
    turn_id = r["turn"]["id"]
    done = c.wait_notification(lambda n: n["method"] == "turn/completed" and
                               n["params"]["turn"]["id"] == turn_id, timeout=timeout,
                               what="turn/completed", start=mark)
    events = [n for n in c.notifications[mark:] if n["params"].get("turnId") == turn_id or
              n["params"].get("turn", {}).get("id") == turn_id]
    return done["params"]["turn"], events


def items_of(events, method, itype):
    return [e["params"]["item"] for e in events
            if e["method"] == method and e["params"]["item"]["type"] == itype]


def deltas(events):
    return "".join(e["params"]["delta"] for e in events
                   if e["method"] == "item/agentMessage/delta")


# ---- tests ---------------------------------------------------------------------------

def t_seed_flow(ctx):
    script = {"steps": [
        {"expect": {"has_tools": [{"namespace": "mcp__executor_demo", "name": "echo"}]},
         "tool_calls": [{"namespace": "mcp__executor_demo", "name": "echo",
                         "arguments": {"message": "hello from the model"}}]},
        {"expect": {"input_contains": ["hello from the model", SECRET_VALUE],
                    "body_match": {"input": [
                        {"type": "function_call", "call_id": "call_1", "name": "echo"},
                        {"type": "function_call_output", "call_id": "call_1"}]}},
         "reply_text": "The tool said hello."}]}
    fake = Fake(ctx, script)
    orch, c, tid = start(ctx, fake)
    turn, ev = run_turn(c, tid, "say hello through the tool")
    check_eq(turn["status"], "completed", "turn status (error: %s)" % turn.get("error"))
    order = [e["method"] for e in ev]
    check(order[0] == "turn/started", "first notification %s" % order[0])
    users = items_of(ev, "item/completed", "userMessage")
    check_eq(users[0]["content"][0]["text"], "say hello through the tool", "user message")
    calls = items_of(ev, "item/completed", "mcpToolCall")
    check_eq(len(calls), 1, "tool calls")
    call = calls[0]
    check_eq((call["server"], call["tool"], call["status"]), ("executor_demo", "echo", "completed"),
             "tool call item")
    check_eq(call["arguments"], {"message": "hello from the model"}, "arguments")
    check(isinstance(call.get("durationMs"), int), "durationMs missing")
    check_eq(call["result"]["structuredContent"]["env"]["TANDEM_SECRET_VALUE"], SECRET_VALUE,
             "env value seen by the server on the executor")
    msgs = items_of(ev, "item/completed", "agentMessage")
    check_eq(msgs[-1]["text"], "The tool said hello.", "agent message")
    check_eq(deltas(ev), "The tool said hello.", "streamed deltas")
    check(order.index("item/started") < order.index("item/completed"), "started before completed")
    # The key was sent (the fake records a hash of it), and never logged.
    recs = fake.records()
    check_eq(len(recs), 2, "requests to the model")
    want = hashlib.sha256(API_KEY.encode()).hexdigest()[:8]
    check(want in recs[0]["headers"]["authorization"], "Authorization header not sent")
    check_eq(recs[0]["body"]["stream"], True, "stream")
    check_eq(recs[0]["body"]["store"], False, "store")
    # The thread keeps the history: thread/read shows the turn.
    read = c.call("thread/read", {"threadId": tid, "includeTurns": True})
    check(read["thread"]["id"] == tid, "thread/read")
    orch.stop()
    check_eq(fake.finish(), 0, "fake server: every request matched its step")
    check(API_KEY not in orch.stderr_text(), "the API key appeared in the orchestrator log")


def t_streaming_deltas(ctx):
    fake = Fake(ctx, "deltas.json")
    orch, c, tid = start(ctx, fake)
    turn, ev = run_turn(c, tid, "tell me a long story")
    check_eq(turn["status"], "completed", "turn status (error: %s)" % turn.get("error"))
    n = sum(1 for e in ev if e["method"] == "item/agentMessage/delta")
    check(n >= 3, "only %d deltas" % n)
    final = items_of(ev, "item/completed", "agentMessage")[-1]["text"]
    check_eq(deltas(ev), final, "deltas add up to the final text")
    orch.stop()
    check_eq(fake.finish(), 0, "fake server")


def t_malformed_sse(ctx):
    fake = Fake(ctx, "malformed.json")
    orch, c, tid = start(ctx, fake)
    turn, ev = run_turn(c, tid, "hello")
    check_eq(turn["status"], "failed", "turn status")
    check("JSON" in turn["error"]["message"], "error: %r" % turn["error"])
    # The daemon lives on: the next request is answered.
    c.call("thread/read", {"threadId": tid})
    orch.stop()
    fake.finish()


def t_retry_500(ctx):
    fake = Fake(ctx, "retry-500.json")
    orch, c, tid = start(ctx, fake)
    turn, ev = run_turn(c, tid, "hello")
    check_eq(turn["status"], "completed", "turn status (error: %s)" % turn.get("error"))
    statuses = [r["status"] for r in fake.records()]
    check_eq(statuses[:2], [500, 200], "a 500 then a retry that succeeded")
    orch.stop()
    check_eq(fake.finish(), 0, "fake server")


def t_fail_400(ctx):
    fake = Fake(ctx, "fail-400.json")
    orch, c, tid = start(ctx, fake)
    turn, ev = run_turn(c, tid, "hello")
    check_eq(turn["status"], "failed", "turn status")
    body = json.load(open(os.path.join(SCRIPTS, "fail-400.json")))
    provider_msg = json.dumps(body)
    msg = turn["error"]["message"]
    check("400" in msg, "error names the status: %r" % msg)
    # The provider's own message is passed on.
    want = [s["error_body"]["error"]["message"] for s in body["steps"] if "error_body" in s][0]
    check(want in msg, "provider message %r not in %r (%s)" % (want, msg, provider_msg[:80]))
    check_eq(len(fake.records()), 1, "a 400 is not retried")
    orch.stop()
    fake.finish()


def t_interrupt(ctx):
    fake = Fake(ctx, "interrupt.json")
    orch, c, tid = start(ctx, fake)
    mark = len(c.notifications)
    r = c.call("turn/start", {"threadId": tid, "input": [{"type": "text", "text": "think"}]})
    turn_id = r["turn"]["id"]
    c.wait_notification(lambda n: n["method"] == "item/agentMessage/delta", start=mark,
                        what="the first delta")
    wait_until(lambda: any(rec.get("hung") for rec in fake.records()), 10, "the stream to hang")
    c.call("turn/interrupt", {"threadId": tid, "turnId": turn_id})
    done = c.wait_notification(lambda n: n["method"] == "turn/completed", start=mark,
                               what="turn/completed")
    check_eq(done["params"]["turn"]["status"], "interrupted", "status")
    # The HTTP request was cancelled: the fake sees the client close the
    # connection it was holding open.
    wait_until(lambda: fake.state()["holding"] == 0, 10, "the fake to see the connection closed")
    # The thread can run another turn after it.
    turn, ev = run_turn(c, tid, "again")
    check_eq(turn["status"], "completed", "next turn")
    check_eq(items_of(ev, "item/completed", "agentMessage")[-1]["text"],
             "Fresh answer after the interrupt.", "next answer")
    orch.stop()
    fake.finish()


def t_two_threads_at_once(ctx):
    script = {"steps": [{"reply_text": ["slow ", "answer ", "one"], "chunking": "event",
                         "delay_ms": 150},
                        {"reply_text": ["slow ", "answer ", "two"], "chunking": "event",
                         "delay_ms": 150}]}
    fake = Fake(ctx, script)
    orch, c, tid1 = start(ctx, fake)
    tid2 = c.start_thread([])
    mark = len(c.notifications)
    t1 = c.call("turn/start", {"threadId": tid1, "input": [{"type": "text", "text": "a"}]})
    t2 = c.call("turn/start", {"threadId": tid2, "input": [{"type": "text", "text": "b"}]})
    ids = {t1["turn"]["id"], t2["turn"]["id"]}
    # The client API stays responsive while both stream.
    c.call("thread/list", {})
    done = []
    for _ in range(2):
        n = c.wait_notification(lambda n: n["method"] == "turn/completed" and
                                n["params"]["turn"]["id"] in ids and
                                n["params"]["turn"]["id"] not in done, start=mark,
                                what="turn/completed")
        done.append(n["params"]["turn"]["id"])
        check_eq(n["params"]["turn"]["status"], "completed", "status")
    # They overlapped: both were started before either completed.
    methods = [(n["method"], n["params"].get("turn", {}).get("id"))
               for n in c.notifications[mark:]]
    first_done = next(i for i, m in enumerate(methods) if m[0] == "turn/completed")
    started = [i for i, m in enumerate(methods) if m[0] == "turn/started"]
    check(len(started) == 2 and max(started) < first_done, "turns did not overlap: %r" % methods)
    orch.stop()
    check_eq(fake.finish(), 0, "fake server")


def t_name_collision(ctx):
    fake = Fake(ctx, "collision.json")
    orch, c, tid = start(ctx, fake, servers={"demo-a": {}, "demo_a": {}})
    turn, ev = run_turn(c, tid, "use both")
    check_eq(turn["status"], "completed", "turn status (error: %s)" % turn.get("error"))
    calls = items_of(ev, "item/completed", "mcpToolCall")
    check_eq(sorted(x["server"] for x in calls), ["demo-a", "demo_a"], "both servers called")
    check(all(x["status"] == "completed" for x in calls), "calls: %r" % calls)
    offered = fake.records()[0]["body"]["tools"]
    names = [(ns["name"], t["name"]) for ns in offered for t in ns["tools"]]
    check_eq(len(names), len(set(names)), "tool names are unique")
    check(all(len(a) + len(b) + 2 <= 64 for a, b in names), "a name over 64 bytes: %r" % names)
    orch.stop()
    check_eq(fake.finish(), 0, "fake server")


def t_parallel_calls(ctx):
    fake = Fake(ctx, "parallel.json")
    orch, c, tid = start(ctx, fake)
    turn, ev = run_turn(c, tid, "two at once")
    check_eq(turn["status"], "completed", "turn status (error: %s)" % turn.get("error"))
    check_eq(len(items_of(ev, "item/completed", "mcpToolCall")), 2, "two calls ran")
    second = fake.records()[1]["body"]["input"]
    outs = [i for i in second if i.get("type") == "function_call_output"]
    check_eq(len(outs), 2, "both outputs sent back")
    orch.stop()
    check_eq(fake.finish(), 0, "fake server")


def t_bad_arguments_continue(ctx):
    script = {"steps": [
        {"tool_calls": [{"namespace": "mcp__executor_demo", "name": "echo",
                         "arguments": "{not json"},
                        {"namespace": "mcp__nowhere", "name": "nothing", "arguments": {}}]},
        {"expect": {"input_contains": ["not a JSON object", "unknown tool"]},
         "reply_text": "Understood."}]}
    fake = Fake(ctx, script)
    orch, c, tid = start(ctx, fake)
    turn, ev = run_turn(c, tid, "call badly")
    check_eq(turn["status"], "completed", "turn status (error: %s)" % turn.get("error"))
    calls = items_of(ev, "item/completed", "mcpToolCall")
    check(all(x["status"] == "failed" for x in calls), "calls: %r" % calls)
    orch.stop()
    check_eq(fake.finish(), 0, "fake server")


def t_missing_key_fails_clearly(ctx):
    fake = Fake(ctx, {"steps": [{"reply_text": "never"}]})
    home = home_for(ctx, fake)
    orch = Orchestrator(ctx, home, env={"TANDEM_TEST_API_KEY": ""})
    c = orch.client
    c.initialize()
    tid = c.start_thread([])
    turn, ev = run_turn(c, tid, "hi")
    check_eq(turn["status"], "failed", "status")
    check("TANDEM_TEST_API_KEY" in turn["error"]["message"], "error: %r" % turn["error"])
    check_eq(len(fake.records()), 0, "nothing sent without a key")
    orch.stop()
    fake.finish()


TESTS = [
    ("seed flow: tool call on the executor, output sent back, answer", t_seed_flow),
    ("streaming deltas", t_streaming_deltas),
    ("malformed SSE fails the turn, daemon lives", t_malformed_sse),
    ("a 500 is retried", t_retry_500),
    ("a 400 fails cleanly with the provider's message", t_fail_400),
    ("interrupt mid-stream", t_interrupt),
    ("two threads' turns at once", t_two_threads_at_once),
    ("tool names colliding across two servers", t_name_collision),
    ("parallel calls in one response", t_parallel_calls),
    ("bad arguments and unknown tools: the turn goes on", t_bad_arguments_continue),
    ("missing API key: a clear failure", t_missing_key_fails_clearly),
]

if __name__ == "__main__":
    sys.exit(run_suite(TESTS))
