#!/usr/bin/env python3
"""The adversarial lane (issue 13, "Tests"): the hostile-plugin, hostile-user
and hostile-client cases of every suite in one run, each printing what it
tried and what held. `deploy/local/test --adversarial` runs it (meson suite
"adversarial"), with the link floods and storms (itest_link), the executor's
path races at 20,000 iterations (itest_contain) and the spawner's hostile
peer (test_spawner) beside it; CI runs the lane after the default run.

The cases are the suites' own functions (one home for each test); this file
only says, for each, what the attacker tried and what must hold, and checks
after every case that no secret the case used shows in the environment,
argv or logs of what tandem started (check_no_secret_leaks, in the cases
that hold secrets: the model key, OAuth tokens, link tokens).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import test_client_ws  # noqa: E402
import test_codex_api  # noqa: E402
import test_confine  # noqa: E402
import test_contain  # noqa: E402
import test_link  # noqa: E402
import test_oauth  # noqa: E402
import test_orchestrator  # noqa: E402
import test_sandbox  # noqa: E402
from tandem_testlib import run_suite  # noqa: E402

PLUGIN, USER, CLIENT = "hostile plugin", "hostile user", "hostile client"

CASES = [
    (PLUGIN, "a server reads a sibling plugin, the executor's token, ~/.ssh, writes outside, "
     "forks 10,000", test_sandbox.test_hostile_server_is_boxed,
     "every attempt fails with a permission error or a limit, the tool result says which; "
     "the executor and the other server are unaffected"),
    (PLUGIN, "a server names the orchestrator's secrets in env_vars (remote and local)",
     test_confine.test_secrets_stay_in_the_orchestrator,
     "it gets none of them; a local one fails the server with the reason; no secret in any "
     "process's environ, argv or the log"),
    (PLUGIN, "a server leaves a setsid() daemon behind", test_contain.
     test_daemon_gone_after_orchestrator_stops,
     "nothing the server started outlives the orchestrator"),
    (PLUGIN, "a server closes its stdout and keeps running",
     test_contain.test_closed_stdout_fails_the_call_at_once,
     "the call fails at once with the reason, the server is stopped"),
    (PLUGIN, "a server needs a path the box refuses",
     test_sandbox.test_denial_is_named_in_the_exit_reason,
     "its exit reason quotes the denial and says how to grant the path"),
    (PLUGIN, "a plugin grants itself a path outside its root",
     test_sandbox.test_grant_outside_allow_refused,
     "the server is refused, naming --sandbox-allow"),
    (USER, "another uid floods the OAuth callback port with idle and trickling connections",
     test_oauth.test_callback_under_junk_flood,
     "the browser's callback gets through"),
    (USER, "another uid connects to a spawned executor's socket",
     test_link.t_spawned_executor_private,
     "the socket's directory keeps it out"),
    (USER, "a parser bug in the orchestrator opens plugin files, /etc/shadow, its own "
     "config for writing (debug/tryOpen from inside the daemon)",
     test_confine.test_confined_orchestrator,
     "Landlock refuses each; the daemon keeps serving"),
    (USER, "the orchestrator is killed with SIGKILL",
     test_confine.test_spawner_outlives_nothing,
     "the spawner stops the executors and their servers, and removes the sockets"),
    (USER, "OAuth tokens in flight", test_oauth.test_login_direct,
     "no token, code or state in the environ, argv or log of anything tandem started"),
    (USER, "link tokens and spawned executors' one-time secrets",
     test_orchestrator.test_full_scenario,
     "none in the environ, argv or log of anything tandem started"),
    (CLIENT, "malformed lines, huge ids, non-objects, bad params",
     test_orchestrator.test_framing,
     "each gets its JSON-RPC error, the daemon answers the next request"),
    (CLIENT, "out-of-range numbers, 100 kB strings, wrong types in every method's params "
     "(448 requests), numbers beyond int64", test_codex_api.t_every_request_answered,
     "every request is answered with its id (a line the parser refuses: -32700), the session "
     "goes on"),
    (CLIENT, "a wrong type for each field of the methods Codex's frontends call",
     test_codex_api.t_wrong_types_named, "each is -32602 naming the field, never taken as absent"),
    (CLIENT, "bad server configs, bad files, bad roots", test_orchestrator.test_bad_input,
     "each is reported with its reason, the good ones keep working"),
    (CLIENT, "an executor port flooded while the orchestrator starts",
     test_link.t_ready_during_flood, "the orchestrator reaches ready"),
    (CLIENT, "an impostor takes a vanished executor's port",
     test_link.t_impostor_receives_only_the_handshake,
     "it receives the handshake and nothing else"),
    (CLIENT, "ws:// without a token, with a wrong one, with a forged, expired or foreign JWT",
     test_client_ws.t_signed_bearer_token,
     "HTTP 401 and nothing served; the right JWT is served; the secret is never logged"),
    (CLIENT, "60 WebSocket connections each holding most of a 15 MiB message",
     test_client_ws.t_partial_messages_bounded_globally,
     "the input held stays within 128 MiB (RSS too); the others are closed with 1013 and "
     "a log line; another client is served"),
    (CLIENT, "15 MiB of [[],[],...] and 100 levels of nesting",
     test_client_ws.t_node_bomb_refused_before_parsing,
     "refused by the pre-scan before any parse; memory does not follow"),
    (CLIENT, "a 15 MiB message while another client pings",
     test_client_ws.t_huge_message_does_not_stall_others,
     "it is parsed off the loop: the other client's ping and request are answered first"),
    (CLIENT, "20 clients flood requests and never read the answers",
     test_client_ws.t_slow_readers_do_not_delay_others,
     "each is paused at 1 MiB of queued output; a third client is served meanwhile"),
]


def annotated(kind, tried, fn, held):
    def run(ctx):
        note = fn(ctx)
        if isinstance(note, str) and note.startswith("SKIP"):
            return note
        lines = ["[%s] tried: %s" % (kind, tried), "held: %s" % held]
        if isinstance(note, str) and note:
            lines.append(note.lstrip("# "))
        return "\n".join(lines)
    return run


TESTS = [("%s: %s" % (kind, tried), annotated(kind, tried, fn, held))
         for kind, tried, fn, held in CASES]

if __name__ == "__main__":
    sys.exit(run_suite(TESTS))
