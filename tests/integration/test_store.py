#!/usr/bin/env python3
"""Thread store tests: durable threads through the real orchestrator (its
SQLite store in a temporary state directory), a real executor with the
fixture MCP server, and the scripted fake Responses server
(tests/fixtures/fake_responses.py, which records what it was sent).

kill -9 mid-turn, restart, resume, continue; fork, archive, unarchive,
delete; pagination over 1,000 threads; two clients on one thread; the bad
states (a damaged file, a newer schema, a second orchestrator on the same
directory, disk full, ids that are not UUIDs, altered cursors); ephemeral
threads; idle threads unloaded and memory bounded (issue 13, defect 5).
Prints TAP.
"""

import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tandem_testlib import (  # noqa: E402
    ORCHESTRATOR, SLEEP_SYSCALLS, Orchestrator, TestFailure, check, check_eq, current_syscall, fixture_pids,
    make_plugin, root, wait_until, run_suite)
from test_turns import API_KEY, Fake, home_for, items_of, run_turn  # noqa: E402

INVALID_PARAMS = -32602
INVALID_REQUEST = -32600


def orch_for(ctx, fake, label="orchestrator", mode="stdio", home=None, args=(), wrapper=None):
    home = home or home_for(ctx, fake)
    return Orchestrator(ctx, home, mode=mode, label=label, args=list(args), wrapper=wrapper,
                        env={"TANDEM_TEST_API_KEY": API_KEY}), home


def idle_fake(ctx):
    """A fake provider for tests that run no turn."""
    return Fake(ctx, {"steps": [{"reply_text": "unused"}]})


def demo_plugin(ctx, name="demo"):
    return make_plugin(ctx, name, {"executor_demo": {}})


def kill9(orch):
    os.kill(orch.pid, signal.SIGKILL)
    orch.proc.wait(timeout=10)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def user_texts(body):
    """The user messages of a Responses request body, in order."""
    out = []
    for e in body.get("input", []):
        if e.get("type") == "message" and e.get("role") == "user":
            out.extend(p.get("text") for p in e.get("content", []))
    return out


# ---- kill -9 mid-turn ------------------------------------------------------------

def t_kill9_resume_continue(ctx):
    """A turn killed mid-tool-call is interrupted after the restart, its
    completed items kept and its call failed (not run again); the resumed
    thread continues with the whole history and runs its next call on the
    executor."""
    script = {"steps": [
        {"tool_calls": [{"namespace": "mcp__executor_demo", "name": "echo",
                         "arguments": {"message": "first echo"}}]},
        {"reply_text": "First answer."},
        {"tool_calls": [{"namespace": "mcp__executor_demo", "name": "sleep",
                         "arguments": {"ms": 60000}}]},
        {"expect": {"input_contains": ["first question", "second question",
                                       "not retried", "third question"]},
         "tool_calls": [{"namespace": "mcp__executor_demo", "name": "echo",
                         "arguments": {"message": "after the crash"}}]},
        {"reply_text": "Third answer."}]}
    fake = Fake(ctx, script)
    orch, home = orch_for(ctx, fake)
    c = orch.client
    c.initialize()
    tid = c.start_thread([root("demo", "local", demo_plugin(ctx))])
    turn, ev = run_turn(c, tid, "first question")
    check_eq(turn["status"], "completed", "turn 1 (error: %s)" % turn.get("error"))
    mark = len(c.notifications)
    t2 = c.call("turn/start", {"threadId": tid,
                               "input": [{"type": "text", "text": "second question"}]})
    c.wait_notification(lambda n: n["method"] == "item/started" and
                        n["params"]["item"].get("tool") == "sleep", start=mark,
                        what="the sleep call to start")
    # The call runs only once its record is committed: wait until the
    # server on the executor is in it (asleep).
    wait_until(lambda: any(current_syscall(p) in SLEEP_SYSCALLS for p in fixture_pids(orch.pid)),
               20, "the fixture server to sleep in the call")
    told = [n["params"]["item"] for n in c.notifications
            if n["method"] == "item/completed"]
    # The executor's server is running the call now; the orchestrator dies.
    kill9(orch)
    orch2, _ = orch_for(ctx, fake, label="orchestrator-2", home=home)
    c2 = orch2.client
    c2.initialize()
    listed = [t["id"] for t in c2.call("thread/list", {})["data"]]
    check_eq(listed, [tid], "thread/list after the restart")
    read = c2.call("thread/read", {"threadId": tid, "includeTurns": True})["thread"]
    check_eq(read["status"]["type"], "notLoaded", "status before resume")
    check_eq(read["preview"], "first question", "preview")
    check_eq([t["status"] for t in read["turns"]], ["completed", "inProgress"],
             "stored turns before resume (the repair happens when it loads)")
    res = c2.call("thread/resume", {"threadId": tid})
    turns = res["thread"]["turns"]
    check_eq([t["id"] for t in turns], [turn["id"], t2["turn"]["id"]], "turn ids")
    check_eq(turns[1]["status"], "interrupted", "the killed turn")
    check("orchestrator stopped" in turns[1]["error"]["message"], "why: %r" % turns[1]["error"])
    calls = [i for i in turns[1]["items"] if i["type"] == "mcpToolCall"]
    check_eq(len(calls), 1, "the killed turn's call")
    check_eq(calls[0]["status"], "failed", "the lost call")
    check("not retried" in calls[0]["error"]["message"], "call error %r" % calls[0]["error"])
    # Every item a client was told is completed is in the store.
    stored = {i["id"]: i for t in turns for i in t["items"]}
    for item in told:
        check(item["id"] in stored, "item %s (%s) told completed, not stored" %
              (item["id"], item["type"]))
        if item["type"] != "mcpToolCall" or item["status"] != "inProgress":
            check_eq(stored[item["id"]], item, "stored item %s" % item["id"])
    turn3, ev = run_turn(c2, tid, "third question")
    check_eq(turn3["status"], "completed", "turn 3 (error: %s)" % turn3.get("error"))
    call = items_of(ev, "item/completed", "mcpToolCall")[0]
    check_eq(call["status"], "completed", "the new call")
    check("after the crash" in json.dumps(call["result"]), "the executor answered: %r" %
          call["result"])
    recs = fake.records()
    body = [r for r in recs if r.get("step") == 3][0]["body"]
    check_eq(user_texts(body), ["first question", "second question", "third question"],
             "user messages the model saw after the restart")
    # The sleep call was not run again: one sleep in the whole history.
    calls = [e for e in body["input"] if e.get("type") == "function_call"]
    check_eq(sum(1 for e in calls if e["name"] == "sleep"), 1, "sleep calls in the history")
    orch2.stop()
    check_eq(fake.finish(), 0, "fake server: every request matched its step")


# ---- fork, archive, delete ----------------------------------------------------------

def t_fork_archive_delete(ctx):
    script = {"steps": [
        {"reply_text": "one"}, {"reply_text": "two"},
        {"expect": {"input_contains": ["q-one"], "input_not_contains": ["q-two"]},
         "reply_text": "forked"}]}
    fake = Fake(ctx, script)
    orch, home = orch_for(ctx, fake)
    c = orch.client
    c.initialize()
    tid = c.start_thread([])
    t1, _ = run_turn(c, tid, "q-one")
    run_turn(c, tid, "q-two")
    f = c.call("thread/fork", {"threadId": tid, "lastTurnId": t1["id"]})["thread"]
    check(f["id"] != tid, "a new id")
    check_eq(f["forkedFromId"], tid, "forkedFromId")
    check_eq([t["id"] for t in f["turns"]], [t1["id"]], "the fork's turns")
    before = c.call("thread/fork", {"threadId": tid, "beforeTurnId": t1["id"],
                                    "excludeTurns": True})["thread"]
    check_eq(before["turns"], [], "fork before the first turn")
    tf, _ = run_turn(c, f["id"], "q-three")
    check_eq(tf["status"], "completed", "a turn on the fork (error %s)" % tf.get("error"))
    e = c.call_error("thread/fork", {"threadId": tid, "lastTurnId": "nope"})
    check("lastTurnId" in e["message"], "unknown turn: %r" % e)
    # archive / unarchive
    c.call("thread/archive", {"threadId": tid})
    live = [t["id"] for t in c.call("thread/list", {})["data"]]
    arch = [t["id"] for t in c.call("thread/list", {"archived": True})["data"]]
    check(tid not in live and tid in arch, "archived filter: %s / %s" % (live, arch))
    e = c.call_error("thread/resume", {"threadId": tid})
    check("archived" in e["message"], "resume of an archived thread: %r" % e)
    un = c.call("thread/unarchive", {"threadId": tid})
    check_eq(un["thread"]["id"], tid, "unarchive answers with the thread")
    check(tid in [t["id"] for t in c.call("thread/list", {})["data"]], "unarchived listed")
    # delete survives a restart; the fork does not go with its source
    c.call("thread/delete", {"threadId": tid})
    e = c.call_error("thread/read", {"threadId": tid})
    check_eq(e["code"], INVALID_PARAMS, "read after delete")
    orch.stop()
    orch2, _ = orch_for(ctx, fake, label="orchestrator-2", home=home)
    c2 = orch2.client
    c2.initialize()
    ids = {t["id"] for t in c2.call("thread/list", {})["data"]}
    check_eq(ids, {f["id"], before["id"]}, "threads after the restart")
    e = c2.call_error("thread/delete", {"threadId": tid})
    check("no thread" in e["message"], "delete twice: %r" % e)
    forked = c2.call("thread/read", {"threadId": f["id"], "includeTurns": True})["thread"]
    check_eq(len(forked["turns"]), 2, "the fork's turns after the restart")
    orch2.stop()
    check_eq(fake.finish(), 0, "fake server")


# ---- pagination ---------------------------------------------------------------------

def pages(c, params, limit):
    out, cursor, n = [], None, 0
    while True:
        p = dict(params, limit=limit)
        if cursor:
            p["cursor"] = cursor
        r = c.call("thread/list", p)
        check(len(r["data"]) <= limit, "page larger than the limit")
        out.extend(t["id"] for t in r["data"])
        cursor = r["nextCursor"]
        n += 1
        check(n < 200, "pagination does not end")
        if not cursor:
            return out


def t_pagination_1000(ctx):
    fake = idle_fake(ctx)
    orch, home = orch_for(ctx, fake, mode="unix")
    c = orch.connect("lister")
    made = []
    for _ in range(10):  # pipelined, 100 at a time, in order
        rids = [c.send("thread/start", {}) for _ in range(100)]
        made += [c.wait_response(x)["result"]["thread"]["id"] for x in rids]
    check_eq(len(set(made)), 1000, "threads made")
    desc = pages(c, {}, 37)
    check_eq(len(desc), 1000, "threads listed (desc)")
    check_eq(set(desc), set(made), "the same threads")
    check_eq(desc, list(reversed(made)), "newest first")
    asc = pages(c, {"sortDirection": "asc"}, 101)
    check_eq(asc, made, "oldest first")
    upd = pages(c, {"sortKey": "updated_at"}, 250)
    check_eq(set(upd), set(made), "by updated_at")
    # altered or foreign cursors are refused, clearly
    r = c.call("thread/list", {"limit": 10})
    cur = r["nextCursor"]
    bad = cur[:-2] + ("AA" if cur[-2:] != "AA" else "BB")
    for cursor, what in [(bad, "altered MAC"), ("x" + cur[1:], "altered body"),
                         ("not-a-cursor", "garbage"), ("", "empty")]:
        e = c.call_error("thread/list", {"cursor": cursor})
        check_eq(e["code"], INVALID_PARAMS, "%s: code" % what)
        check("cursor" in e["message"], "%s: %r" % (what, e["message"]))
    e = c.call_error("thread/list", {"cursor": cur, "sortDirection": "asc"})
    check("another sort" in e["message"], "a cursor of another order: %r" % e)
    e = c.call_error("thread/turns/list", {"threadId": made[0], "cursor": cur})
    check("another method" in e["message"], "a list cursor for turns: %r" % e)
    loaded = c.call("thread/loaded/list", {"limit": 600})
    check_eq(len(loaded["data"]), 600, "loaded page")
    more = c.call("thread/loaded/list", {"cursor": loaded["nextCursor"]})
    check_eq(len(set(loaded["data"]) | set(more["data"])), 1000, "every loaded thread")
    orch.stop()
    fake.finish()


# ---- two clients on one thread ---------------------------------------------------

def t_two_clients_one_thread(ctx):
    fake = Fake(ctx, {"steps": [{"reply_text": "for both"}, {"reply_text": "only a"}]})
    orch, home = orch_for(ctx, fake, mode="unix")
    a = orch.connect("a")
    b = orch.connect("b")
    other = orch.connect("other")
    tid = a.start_thread([])
    res = b.call("thread/resume", {"threadId": tid})
    check_eq(res["thread"]["id"], tid, "resume of a loaded thread")
    turn, ev_a = run_turn(a, tid, "hello both")
    done_b = b.wait_notification(lambda n: n["method"] == "turn/completed" and
                                 n["params"]["turn"]["id"] == turn["id"], what="B's turn/completed")
    check_eq(done_b["params"]["turn"]["status"], "completed", "B sees the turn end")
    got_b = {n["method"] for n in b.notifications}
    check({"turn/started", "item/started", "item/completed", "item/agentMessage/delta",
           "thread/status/changed"} <= got_b, "B's notifications: %s" % sorted(got_b))
    other.call("thread/list", {})  # a round trip: anything for it would be there by now
    check_eq([n for n in other.notifications if n["params"].get("threadId") == tid], [],
             "a client that did not subscribe hears nothing of it")
    check_eq(b.call("thread/unsubscribe", {"threadId": tid})["status"], "unsubscribed",
             "unsubscribe")
    check_eq(b.call("thread/unsubscribe", {"threadId": tid})["status"], "notSubscribed",
             "unsubscribe twice")
    mark = len(b.notifications)
    run_turn(a, tid, "only a")
    b.call("thread/list", {})
    check_eq([n["method"] for n in b.notifications[mark:] if n["params"].get("threadId") == tid],
             [], "B after unsubscribing")
    # name and read state reach the subscribers
    a.call("thread/name/set", {"threadId": tid, "name": "shared thread"})
    n = a.wait_notification(lambda n: n["method"] == "thread/name/updated", what="name")
    check_eq(n["params"], {"threadId": tid, "threadName": "shared thread"}, "name/updated")
    rs = a.call("thread/read", {"threadId": tid})["readState"]
    up = a.call("thread/readState/update", {"threadId": tid, "expectedRevision": rs["revision"],
                                            "operation": {"type": "unread"}})["readState"]
    check_eq(up["firstUnread"], {"type": "threadStart"}, "unread")
    e = a.call_error("thread/readState/update", {"threadId": tid,
                                                 "expectedRevision": rs["revision"],
                                                 "operation": {"type": "read"}})
    check("revision" in e["message"], "stale revision: %r" % e)
    a.wait_notification(lambda n: n["method"] == "thread/readState/changed", what="readState")
    check_eq(other.call("thread/read", {"threadId": tid})["thread"]["name"], "shared thread",
             "name seen by another client")
    orch.stop()
    fake.finish()


# ---- bad state -------------------------------------------------------------------

def expect_refusal(ctx, home, args, label, words):
    o = Orchestrator(ctx, home, label=label, args=args)
    try:
        rc = o.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        raise TestFailure("%s: the orchestrator started anyway" % label)
    err = o.stderr_text()
    check(rc != 0, "%s: exit status 0" % label)
    for w in words:
        check(w in err, "%s: %r not in stderr: %s" % (label, w, err[-600:]))
    return err


def t_bad_files(ctx):
    fake = idle_fake(ctx)
    home = home_for(ctx, fake)
    state = os.path.join(home, "state")
    os.makedirs(state)
    db = os.path.join(state, "threads.db")
    # not a database
    with open(db, "wb") as f:
        f.write(b"this is not a database, it was overwritten\n" * 100)
    before = sha(db)
    expect_refusal(ctx, home, [], "orchestrator-garbage", ["not a SQLite database", db])
    check_eq(sha(db), before, "the garbage file was not touched")
    # a newer schema
    os.unlink(db)
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE future (x)")
    con.execute("PRAGMA user_version = 99")
    con.commit()
    con.close()
    before = sha(db)
    expect_refusal(ctx, home, [], "orchestrator-newer", ["schema version 99", "newer",
                                                         "not changed"])
    check_eq(sha(db), before, "the newer database was not touched")
    check(not os.path.exists(db + "-wal"), "a WAL was made for the newer database")
    # a damaged page inside a real store
    os.unlink(db)
    o = Orchestrator(ctx, home, label="orchestrator-real")
    o.client.initialize()
    for _ in range(30):
        o.client.start_thread([])
    o.stop()
    size = os.path.getsize(db)
    check(size >= 4 * 4096, "a store of %d bytes" % size)
    with open(db, "r+b") as f:  # scribble over the second page (a b-tree page)
        f.seek(4096)
        f.write(os.urandom(4096))
    expect_refusal(ctx, home, [], "orchestrator-damaged", ["damaged", db])
    fake.finish()


def t_second_orchestrator_refused(ctx):
    fake = idle_fake(ctx)
    orch, home = orch_for(ctx, fake, mode="unix")
    c = orch.connect("c")
    tid = c.start_thread([])
    err = expect_refusal(ctx, home, [], "orchestrator-second",
                         ["in use by another orchestrator", "pid %d" % orch.pid])
    check("lock" in err, "the message names the lock: %s" % err[-300:])
    # the first one is unaffected
    check_eq(c.call("thread/read", {"threadId": tid})["thread"]["id"], tid, "first still serves")
    other = os.path.join(ctx.dir, "elsewhere")
    o3 = Orchestrator(ctx, home, label="orchestrator-elsewhere", args=["--state-dir", other])
    o3.client.initialize()
    check_eq(o3.client.call("thread/list", {})["data"], [], "another state dir is another store")
    check(os.path.exists(os.path.join(other, "threads.db")), "--state-dir used")
    check_eq(os.stat(other).st_mode & 0o777, 0o700, "state dir mode")
    check_eq(os.stat(os.path.join(other, "threads.db")).st_mode & 0o777, 0o600, "db mode")
    o3.stop()
    orch.stop()
    fake.finish()


def t_bad_ids_and_params(ctx):
    fake = idle_fake(ctx)
    orch, home = orch_for(ctx, fake)
    c = orch.client
    c.initialize()
    for method in ("thread/read", "thread/resume", "thread/fork", "thread/archive",
                   "thread/delete", "thread/turns/list", "thread/items/list",
                   "thread/unsubscribe", "turn/start", "mcpServerStatus/list"):
        for bad in ("abc", "../../etc/passwd", "0" * 36, "x" * 5000):
            e = c.call_error(method, {"threadId": bad, "name": "n",
                                      "input": [{"type": "text", "text": "x"}]})
            check_eq(e["code"], INVALID_PARAMS, "%s %r: code" % (method, bad[:20]))
            check("not a thread id" in e["message"], "%s %r: %r" % (method, bad[:20],
                                                                     e["message"]))
    unknown = "00000000-0000-4000-8000-000000000000"
    for method in ("thread/read", "thread/resume", "thread/fork", "thread/archive",
                   "thread/delete", "thread/name/set"):
        e = c.call_error(method, {"threadId": unknown, "name": "n"})
        check("no thread" in e["message"], "%s unknown: %r" % (method, e["message"]))
    e = c.call_error("turn/start", {"threadId": unknown, "input": [{"type": "text", "text": "x"}]})
    check("thread/resume" in e["message"], "turn/start on an unloaded id: %r" % e["message"])
    # bounded strings
    e = c.call_error("thread/start", {"cwd": "/" + "a" * 8 * 1024 * 1024})
    check("cwd" in e["message"], "an 8 MiB cwd: %r" % e["message"][:200])
    tid = c.start_thread([])
    e = c.call_error("thread/name/set", {"threadId": tid, "name": "n" * 5000})
    check("name" in e["message"], "a 5000-byte name: %r" % e["message"][:200])
    e = c.call_error("thread/resume", {"threadId": tid, "path": "/tmp/rollout.jsonl"})
    check("path" in e["message"], "path: %r" % e["message"])
    orch.stop()
    fake.finish()


def tmpfs_wrapper(state):
    """A private mount namespace whose state directory is a 1 MiB tmpfs:
    it goes away with the orchestrator, whatever happens to the test."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount -t tmpfs -o size=1m,mode=0700 tdm-store-full "$0" && exec "$@"', state]


def t_disk_full(ctx):
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return "SKIP needs root and unshare(1) for a private tmpfs"
    big = "word " * 80000  # 400 KB answers: more than the WAL has room for
    fake = Fake(ctx, {"steps": [{"reply_text": "small answer"},
                                {"reply_text": [big]},
                                {"reply_text": "after the space came back"}]})
    home = home_for(ctx, fake)
    state = ctx.mkdir("state-tmpfs")
    orch, _ = orch_for(ctx, fake, home=home, args=["--state-dir", state],
                       wrapper=tmpfs_wrapper(state))
    c = orch.client
    c.initialize()
    tid = c.start_thread([])
    t1, _ = run_turn(c, tid, "first")
    check_eq(t1["status"], "completed", "turn before the disk fills")
    inside = "/proc/%d/root%s" % (orch.pid, state)
    check(os.path.exists(os.path.join(inside, "threads.db")), "the store is on the tmpfs")
    filler = os.path.join(inside, "filler")
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    turn, ev = run_turn(c, tid, "fill it")
    check_eq(turn["status"], "failed", "the turn when the disk is full")
    check("disk is full" in turn["error"]["message"], "error: %r" % turn["error"])
    told = items_of(ev, "item/completed", "agentMessage")
    check_eq(told, [], "an answer the store could not keep was not reported completed")
    # the daemon lives, reads work, a new turn on this thread is refused clearly
    check(tid in [t["id"] for t in c.call("thread/list", {})["data"]], "list while full")
    e = c.call_error("turn/start", {"threadId": tid, "input": [{"type": "text", "text": "x"}]})
    check("thread/resume" in e["message"], "a broken thread says how to recover: %r" % e)
    os.unlink(filler)
    res = c.call("thread/resume", {"threadId": tid})
    turns = res["thread"]["turns"]
    check_eq(turns[0]["status"], "completed", "the first turn is intact")
    check_eq([i["text"] for i in turns[0]["items"] if i["type"] == "agentMessage"],
             ["small answer"], "first answer")
    for t in turns[1:]:
        check(t["status"] != "completed", "a half-written turn read back as completed")
        for i in t["items"]:
            check(i["type"] != "agentMessage", "the answer that did not fit was read back")
    t3, _ = run_turn(c, tid, "again")
    check_eq(t3["status"], "completed", "a turn once there is space (error %s)" % t3.get("error"))
    orch.stop()
    fake.finish()


# ---- ephemeral ----------------------------------------------------------------------

def t_ephemeral(ctx):
    fake = Fake(ctx, {"steps": [{"reply_text": "kept in memory"}]})
    orch, home = orch_for(ctx, fake, mode="unix", args=["--thread-idle-sec", "1"])
    c = orch.connect("c")
    eph = c.call("thread/start", {"ephemeral": True})["thread"]
    check_eq(eph["ephemeral"], True, "ephemeral flag")
    run_turn(c, eph["id"], "hi")
    durable = c.start_thread([])
    listed = [t["id"] for t in c.call("thread/list", {})["data"]]
    check_eq(listed, [durable], "thread/list shows stored threads only")
    check(eph["id"] in c.call("thread/loaded/list", {})["data"], "loaded")
    e = c.call_error("thread/archive", {"threadId": eph["id"]})
    check("ephemeral" in e["message"], "archive: %r" % e)
    c.close()
    c2 = orch.connect("c2")
    wait_until(lambda: c2.counters()["threads"] == 0, 20, "both threads unloaded")
    e = c2.call_error("thread/read", {"threadId": eph["id"]})
    check("no thread" in e["message"], "the ephemeral thread is gone: %r" % e)
    check_eq(c2.call("thread/read", {"threadId": durable})["thread"]["status"]["type"],
             "notLoaded", "the durable one is stored")
    orch.stop()
    check("it is gone" in orch.stderr_text(), "the log says the ephemeral thread is gone")
    # --ephemeral: nothing on disk at all
    home2 = ctx.mkdir("home-ephemeral")
    shutil.copy(os.path.join(home, "config.toml"), home2)
    o2 = Orchestrator(ctx, home2, label="orchestrator-ephemeral", args=["--ephemeral"])
    o2.client.initialize()
    tid = o2.client.start_thread([])
    check_eq(o2.client.call("thread/list", {})["data"], [], "--ephemeral lists nothing stored")
    check_eq(o2.client.call("thread/read", {"threadId": tid})["thread"]["ephemeral"], True,
             "ephemeral")
    o2.stop()
    check(not os.path.exists(os.path.join(home2, "state")), "--ephemeral made a state dir")
    fake.finish()


# ---- idle threads are unloaded; memory stays bounded (issue 13, defect 5) -----------

def measures_memory():
    """RSS means nothing under ASan (freed memory waits in its quarantine)
    or valgrind: the memory bounds are checked in plain builds only."""
    with open(ORCHESTRATOR, "rb") as f:
        data = f.read()
    return b"libasan" not in data and b"__asan_init" not in data and \
        not os.environ.get("TANDEM_ORCH_WRAPPER")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise TestFailure("no VmRSS")


CYCLES = 270
# With a 1 s idle time about 50 threads are loaded at any moment; after 100
# cycles the heap has seen that peak, so growth from there on is retention.
WARMUP = 100
# A thread kept with its live server costs ~43 KiB (README, Resources):
# 170 kept would be ~7 MiB.
GROWTH_KIB = 3072


def t_idle_unload_memory(ctx):
    """270 cycles of connect, thread/start with a root of its own, tool call,
    disconnect: the threads are unloaded once idle and the RSS after the
    cycles stays near the RSS after a warm-up (VmRSS of /proc/PID/status);
    40 thread/start with an 8 MiB cwd are refused and pin nothing."""
    fake = idle_fake(ctx)
    plugins = [demo_plugin(ctx, "p%03d" % i) for i in range(CYCLES)]
    orch, home = orch_for(ctx, fake, mode="unix", args=["--thread-idle-sec", "1",
                                                        "--log-level", "info"])
    base = None
    tids = []
    for i in range(CYCLES):
        c = orch.connect("cycle%d" % i)
        tid = c.start_thread([root("own%d" % i, "local", plugins[i])])
        r = c.tool(tid, "executor_demo", "echo", {"message": "m%d" % i})
        check(not r.get("isError"), "call %d: %r" % (i, r))
        tids.append(tid)
        c.close()
        if i == WARMUP - 1:
            probe = orch.connect("probe")
            wait_until(lambda: probe.counters()["threads"] == 0, 30, "warm-up threads unloaded")
            probe.close()
            base = rss_kib(orch.pid)
    probe = orch.connect("probe2")
    wait_until(lambda: probe.counters()["threads"] == 0, 30, "every thread unloaded")
    counters = probe.counters()
    check(counters["threadsUnloaded"] >= CYCLES, "unloaded: %r" % counters)
    end = rss_kib(orch.pid)
    growth = end - base
    check(growth < GROWTH_KIB or not measures_memory(), "RSS grew %d KiB over %d cycles (%d -> "
          "%d KiB)" % (growth, CYCLES - WARMUP, base, end))
    # the servers of unloaded threads are stopped
    wait_until(lambda: not fixture_pids(orch.pid), 20, "the unloaded threads' servers to stop")
    # an unloaded stored thread resumes, its root bound again
    res = probe.call("thread/resume", {"threadId": tids[5]})
    r = probe.tool(tids[5], "executor_demo", "echo", {"message": "back"})
    check("back" in json.dumps(r), "a resumed thread's root works: %r" % r)
    check_eq(res["thread"]["id"], tids[5], "resume")
    probe.close()
    # 8 MiB cwds: refused, no thread keeps one. Before, 40 of them pinned
    # 340 MiB for good; now what the client transport parsed is freed when
    # it leaves. glibc may keep freed heap for reuse, so the bound is: a
    # second round of 40 reuses it (no growth), and the whole stays small.
    before = rss_kib(orch.pid)
    rounds = []
    big = "/" + "d" * (8 * 1024 * 1024)
    for n in range(2):
        c = orch.connect("bigcwd%d" % n)
        for i in range(40):
            e = c.call_error("thread/start", {"cwd": big}, timeout=60)
            check("cwd" in e["message"], "8 MiB cwd %d: %r" % (i, e["message"][:100]))
        check(c.counters()["threads"] <= 1, "a thread made of an 8 MiB cwd")
        c.close()
        time.sleep(0.5)
        rounds.append(rss_kib(orch.pid))
    after = rounds[-1]
    if measures_memory():
        check(rounds[1] - rounds[0] < 4096, "a second round of 40 8-MiB cwds grew the RSS: %s "
              "KiB" % rounds)
        check(after - before < 40 * 1024, "40 refused 8 MiB cwds kept %d KiB (%d -> %s)" %
              (after - before, before, rounds))
    orch.stop()
    fake.finish()
    if not measures_memory():
        return "# sanitizer or valgrind build: the RSS bounds were not checked"
    return "# RSS %d KiB after warm-up, %d KiB after %d cycles; %d KiB, then %s KiB after two " \
        "rounds of 40 8-MiB cwds" % (base, end, CYCLES, before, rounds)


# ---- a resumed thread's old items stay in the store until asked for ------------------

def t_resume_loads_what_it_shows(ctx):
    """thread/resume with excludeTurns reads only the history (and the page
    it shows); every read that needs the older items gets them from the
    store, forks copy them, and a resume that shows every turn has them."""
    fake = Fake(ctx, {"steps": [{"reply_text": "a%d" % i} for i in range(4)]})
    orch, home = orch_for(ctx, fake)
    c = orch.client
    c.initialize()
    tid = c.start_thread([])
    for i in range(3):
        run_turn(c, tid, "q%d" % i)
    orch.stop()
    orch2, _ = orch_for(ctx, fake, label="orchestrator-2", home=home, mode="unix")
    c2 = orch2.connect("c2")
    res = c2.call("thread/resume", {"threadId": tid, "excludeTurns": True,
                                    "initialTurnsPage": {"limit": 1, "itemsView": "full"}})
    check_eq(res["thread"]["turns"], [], "excludeTurns")
    page = res["initialTurnsPage"]["data"]
    check_eq([[i.get("text") or i["content"][0]["text"] for i in t["items"]] for t in page],
             [["q2", "a2"]], "the page: the last turn with its items")
    read = c2.call("thread/read", {"threadId": tid, "includeTurns": True})["thread"]
    check_eq([len(t["items"]) for t in read["turns"]], [2, 2, 2], "thread/read: every item")
    check(all(t.get("itemsView", "full") == "full" for t in read["turns"]), "itemsView full")
    full = c2.call("thread/turns/list", {"threadId": tid, "itemsView": "full",
                                         "sortDirection": "asc"})["data"]
    check_eq([t["items"][1]["text"] for t in full], ["a0", "a1", "a2"], "turns/list")
    items = c2.call("thread/items/list", {"threadId": tid})["data"]
    check_eq([e["item"]["type"] for e in items], ["userMessage", "agentMessage"] * 3,
             "items/list")
    check(all(e["turnId"] == full[i // 2]["id"] for i, e in enumerate(items)), "turnIds")
    page2 = c2.call("thread/items/list", {"threadId": tid, "limit": 4})
    rest = c2.call("thread/items/list", {"threadId": tid, "cursor": page2["nextCursor"]})
    check_eq([e["item"]["id"] for e in page2["data"] + rest["data"]],
             [e["item"]["id"] for e in items], "items/list pages")
    f = c2.call("thread/fork", {"threadId": tid})["thread"]
    check_eq([len(t["items"]) for t in f["turns"]], [2, 2, 2], "the fork has every item")
    # a turn on the resumed thread, then the whole history is still right
    t4, _ = run_turn(c2, tid, "q3")
    check_eq(t4["status"], "completed", "a turn after a partial load")
    body = fake.records()[-1]["body"]
    check_eq(user_texts(body), ["q0", "q1", "q2", "q3"], "the history the model saw")
    c3 = orch2.connect("c3")
    again = c3.call("thread/resume", {"threadId": tid})["thread"]["turns"]
    check_eq([len(t["items"]) for t in again], [2, 2, 2, 2], "a resume with every turn")
    orch2.stop()
    check_eq(fake.finish(), 0, "fake server")


TESTS = [
    ("kill -9 mid-turn, restart, resume, continue", t_kill9_resume_continue),
    ("fork at a turn, archive, unarchive, delete", t_fork_archive_delete),
    ("pagination over 1,000 threads; altered cursors refused", t_pagination_1000),
    ("two clients on one thread; subscriptions", t_two_clients_one_thread),
    ("a damaged or newer database: refused, untouched", t_bad_files),
    ("a second orchestrator on one state dir is refused", t_second_orchestrator_refused),
    ("thread ids that are not UUIDs; bounded strings", t_bad_ids_and_params),
    ("disk full: the turn fails, the daemon lives, nothing half-written", t_disk_full),
    ("ephemeral threads and --ephemeral", t_ephemeral),
    ("idle threads unloaded, memory bounded (issue 13 #5)", t_idle_unload_memory),
    ("a resumed thread's old items read from the store when asked for",
     t_resume_loads_what_it_shows),
]

if __name__ == "__main__":
    sys.exit(run_suite(TESTS))
