#!/usr/bin/env python3
"""Account tests: account/read, account/login/start (apiKey and
chatgptAuthTokens), account/logout and account/updated through the real
orchestrator, with turns against the scripted fake Responses server
(tests/fixtures/fake_responses.py) standing in for the built-in `openai`
provider, whose base_url the config points at the fake. The fake records
sha256 prefixes of the Authorization credential, so the tests see which
credential went out without the fake ever storing it. Prints TAP.

Binaries: $TANDEM_ORCHESTRATOR, $TANDEM_EXECUTOR.
"""

import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tandem_testlib import (  # noqa: E402
    Orchestrator, Tap, become_subreaper, check, check_eq, make_home, run_suite)
from test_turns import Fake, run_turn  # noqa: E402

LOGIN_KEY = "sk-login-key-7f3a9c1e5b2d4f60"
ENV_KEY = "sk-env-key-0a1b2c3d4e5f6789"
OTHER_KEY = "sk-other-provider-key-55aa55aa"
ACCESS_TOKEN = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ0YW5kZW0tdGVzdCJ9.c2lnbmF0dXJlLXRva2Vu"
ACCOUNT_ID = "ws-3f2c1d0e-acct"
SECRETS = (LOGIN_KEY, ENV_KEY, OTHER_KEY, ACCESS_TOKEN)

LOOPING = {"loop": True, "steps": [{"reply_text": "ok"}]}


def h8(secret):
    """What the fake records for a credential: 'Bearer <redacted:H>'."""
    return "Bearer <redacted:%s>" % hashlib.sha256(secret.encode()).hexdigest()[:8]


def openai_home(ctx, fake):
    """The built-in openai provider (requires_openai_auth), sent to the fake."""
    return make_home(ctx, config=(
        'model = "gpt-test"\nmodel_provider = "openai"\n'
        '[model_providers.openai]\nbase_url = "http://127.0.0.1:%d/v1"\n' % fake.port))


def start(ctx, fake, env_key="", home=None, mode="stdio"):
    orch = Orchestrator(ctx, home or openai_home(ctx, fake), mode=mode,
                        env={"OPENAI_API_KEY": env_key, "TANDEM_TEST_API_KEY": OTHER_KEY})
    if mode == "stdio":
        orch.client.initialize()
    return orch


def account(c):
    return c.call("account/read", {})


def wait_updated(c, mark):
    """The first account/updated after notification index `mark`."""
    return c.wait_notification(lambda n: n["method"] == "account/updated",
                               what="account/updated", start=mark)["params"]


def turn_ok(c, tid):
    turn, _ = run_turn(c, tid, "hello")
    check_eq(turn["status"], "completed", "turn status (error: %s)" % turn.get("error"))


def last_auth(fake):
    recs = fake.records()
    check(recs, "no request reached the fake")
    return recs[-1]["headers"].get("authorization")


def no_secrets_logged(orch):
    orch.stop()
    text = orch.stderr_text()
    for s in SECRETS:
        check(s not in text, "a credential appeared in the orchestrator log")


# ---- tests ---------------------------------------------------------------------------

def t_api_key_login(ctx):
    fake = Fake(ctx, LOOPING)
    orch = start(ctx, fake)
    c = orch.client
    check_eq(account(c), {"account": None, "requiresOpenaiAuth": True}, "account before login")
    tid = c.start_thread([])
    # No login and no $OPENAI_API_KEY: the turn fails and says what is missing.
    turn, _ = run_turn(c, tid, "hi")
    check_eq(turn["status"], "failed", "turn without a credential")
    msg = turn["error"]["message"]
    check("account/login/start" in msg and "OPENAI_API_KEY" in msg, "error: %r" % msg)
    check_eq(len(fake.records()), 0, "nothing sent without a credential")

    mark = len(c.notifications)
    check_eq(c.call("account/login/start", {"type": "apiKey", "apiKey": LOGIN_KEY}),
             {"type": "apiKey"}, "login answer")
    done = c.wait_notification(lambda n: n["method"] == "account/login/completed",
                               what="account/login/completed", start=mark)["params"]
    check_eq(done, {"loginId": None, "success": True, "error": None}, "login/completed")
    check_eq(wait_updated(c, mark), {"authMode": "apikey", "planType": None}, "account/updated")
    check_eq(account(c), {"account": {"type": "apiKey"}, "requiresOpenaiAuth": True},
             "account after login")
    turn_ok(c, tid)
    check_eq(last_auth(fake), h8(LOGIN_KEY), "Authorization sent")
    check("chatgpt-account-id" not in fake.records()[-1]["headers"], "account id header")

    # A second thread sees the same (shared) account.
    tid2 = c.start_thread([])
    turn_ok(c, tid2)
    check_eq(last_auth(fake), h8(LOGIN_KEY), "Authorization sent by a second thread")

    mark = len(c.notifications)
    check_eq(c.call("account/logout", {}), {}, "logout answer")
    check_eq(wait_updated(c, mark), {"authMode": None, "planType": None}, "updated on logout")
    check_eq(account(c), {"account": None, "requiresOpenaiAuth": True}, "account after logout")
    sent = len(fake.records())
    turn, _ = run_turn(c, tid, "again")
    check_eq(turn["status"], "failed", "turn after logout")
    check("account/login/start" in turn["error"]["message"], "error: %r" % turn["error"])
    check_eq(len(fake.records()), sent, "nothing sent after logout")
    no_secrets_logged(orch)
    check_eq(fake.finish(), 0, "fake server")


def t_env_key_fallback(ctx):
    fake = Fake(ctx, LOOPING)
    orch = start(ctx, fake, env_key=ENV_KEY)
    c = orch.client
    check_eq(account(c)["account"], {"type": "apiKey"}, "the env key counts as an API key")
    tid = c.start_thread([])
    turn_ok(c, tid)
    check_eq(last_auth(fake), h8(ENV_KEY), "env key sent")
    c.call("account/login/start", {"type": "apiKey", "apiKey": LOGIN_KEY})
    turn_ok(c, tid)
    check_eq(last_auth(fake), h8(LOGIN_KEY), "the login wins over the env key")
    mark = len(c.notifications)
    c.call("account/logout", {})
    check_eq(wait_updated(c, mark), {"authMode": "apikey", "planType": None},
             "after logout the env key is the account again")
    turn_ok(c, tid)
    check_eq(last_auth(fake), h8(ENV_KEY), "back to the env key after logout")
    no_secrets_logged(orch)
    check_eq(fake.finish(), 0, "fake server")


def t_chatgpt_tokens(ctx):
    fake = Fake(ctx, LOOPING)
    orch = start(ctx, fake)
    c = orch.client
    mark = len(c.notifications)
    check_eq(c.call("account/login/start", {
        "type": "chatgptAuthTokens", "accessToken": ACCESS_TOKEN,
        "chatgptAccountId": ACCOUNT_ID, "chatgptPlanType": "pro"}),
        {"type": "chatgptAuthTokens"}, "login answer")
    check_eq(wait_updated(c, mark), {"authMode": "chatgptAuthTokens", "planType": "pro"},
             "account/updated")
    check_eq(account(c), {"account": {"type": "chatgpt", "email": None, "planType": "pro"},
                          "requiresOpenaiAuth": True}, "account")
    tid = c.start_thread([])
    turn_ok(c, tid)
    rec = fake.records()[-1]
    check_eq(rec["headers"].get("authorization"), h8(ACCESS_TOKEN), "access token sent")
    check_eq(rec["headers"].get("chatgpt-account-id"), ACCOUNT_ID, "account id sent")

    # An unknown plan is reported as "unknown"; no plan at all too.
    mark = len(c.notifications)
    c.call("account/login/start", {"type": "chatgptAuthTokens", "accessToken": ACCESS_TOKEN,
                                   "chatgptAccountId": ACCOUNT_ID,
                                   "chatgptPlanType": "galactic"})
    check_eq(wait_updated(c, mark)["planType"], "unknown", "unknown plan")
    c.call("account/login/start", {"type": "chatgptAuthTokens", "accessToken": ACCESS_TOKEN,
                                   "chatgptAccountId": ACCOUNT_ID, "chatgptPlanType": None})
    check_eq(account(c)["account"]["planType"], "unknown", "no plan")

    # Replacing the tokens with an API key drops the account id header.
    mark = len(c.notifications)
    c.call("account/login/start", {"type": "apiKey", "apiKey": LOGIN_KEY})
    check_eq(wait_updated(c, mark), {"authMode": "apikey", "planType": None}, "switch to key")
    turn_ok(c, tid)
    rec = fake.records()[-1]
    check_eq(rec["headers"].get("authorization"), h8(LOGIN_KEY), "key sent after the switch")
    check("chatgpt-account-id" not in rec["headers"], "account id header after the switch")
    no_secrets_logged(orch)
    check_eq(fake.finish(), 0, "fake server")


def t_notifications_to_all_clients(ctx):
    fake = Fake(ctx, LOOPING)
    orch = start(ctx, fake, mode="unix")
    a, b = orch.connect("a"), orch.connect("b")
    quiet = orch.connect("quiet", initialize=False)
    mark_a, mark_b = len(a.notifications), len(b.notifications)
    a.call("account/login/start", {"type": "apiKey", "apiKey": LOGIN_KEY})
    check_eq(wait_updated(b, mark_b), {"authMode": "apikey", "planType": None},
             "the other client's account/updated")
    wait_updated(a, mark_a)
    check_eq(b.call("account/read", {})["account"], {"type": "apiKey"}, "b sees the login")
    # The loop wrote every notification before answering a; a session that
    # initializes now must have got none of them.
    quiet.initialize("quiet")
    check(not [n for n in quiet.notifications if n["method"].startswith("account/")],
          "an uninitialized client got account notifications")
    mark_a, mark_b = len(a.notifications), len(b.notifications)
    b.call("account/logout", {})
    check_eq(wait_updated(a, mark_a)["authMode"], None, "a sees the logout")
    # Logging out with nothing logged in changes nothing: no notification.
    a.call("account/logout", {})
    check_eq(b.call("account/read", {})["account"], None, "still logged out")
    check_eq(len([n for n in b.notifications[mark_b:] if n["method"] == "account/updated"]), 1,
             "account/updated only on a change")
    no_secrets_logged(orch)
    fake.finish()


def t_bad_params(ctx):
    fake = Fake(ctx, LOOPING)
    orch = start(ctx, fake)
    c = orch.client
    mark = len(c.notifications)
    c.call("account/login/start", {"type": "apiKey", "apiKey": LOGIN_KEY})
    # The login's own notifications follow its answer: take them first.
    wait_updated(c, mark)
    mark = len(c.notifications)
    bad = [
        {"type": "apiKey"},
        {"type": "apiKey", "apiKey": ""},
        {"type": "apiKey", "apiKey": 42},
        {"type": "apiKey", "apiKey": "sk-a\r\nX-Injected: 1"},
        {"type": "apiKey", "apiKey": "sk with space"},
        {"type": "apiKey", "apiKey": "k" * 17000},  # over SECRET_MAX (16 KiB)
        {"type": "chatgptAuthTokens", "accessToken": ACCESS_TOKEN},
        {"type": "chatgptAuthTokens", "chatgptAccountId": ACCOUNT_ID},
        {"type": "chatgptAuthTokens", "accessToken": ACCESS_TOKEN, "chatgptAccountId": "a\nb"},
        {"type": "chatgptAuthTokens", "accessToken": ACCESS_TOKEN,
         "chatgptAccountId": ACCOUNT_ID, "chatgptPlanType": 7},
        {"type": "chatgpt"},
        {"type": "nonsense"},
        {},
    ]
    for params in bad:
        check_eq(c.call_error("account/login/start", params)["code"], -32602,
                 "error code for %r" % str(params)[:80])
    check_eq(c.call_error("account/read", {"refreshToken": "yes"})["code"], -32602,
             "refreshToken type")
    # A failed login keeps the account, and announces nothing.
    check_eq(account(c)["account"], {"type": "apiKey"}, "account kept")
    check(not [n for n in c.notifications[mark:] if n["method"].startswith("account/")],
          "a failed login sent a notification")
    tid = c.start_thread([])
    turn_ok(c, tid)
    check_eq(last_auth(fake), h8(LOGIN_KEY), "the old key is still used")
    no_secrets_logged(orch)
    check_eq(fake.finish(), 0, "fake server")


def t_not_initialized(ctx):
    fake = Fake(ctx, LOOPING)
    orch = Orchestrator(ctx, openai_home(ctx, fake), env={"OPENAI_API_KEY": ""})
    c = orch.client
    for method, params in (("account/read", {}), ("account/logout", {}),
                           ("account/login/start", {"type": "apiKey", "apiKey": LOGIN_KEY})):
        check_eq(c.call_error(method, params)["code"], -32600, method + " before initialize")
    c.initialize()
    check_eq(account(c)["account"], None, "the refused login did not happen")
    no_secrets_logged(orch)
    fake.finish()


def t_other_provider_keeps_env_key(ctx):
    """A provider without requires_openai_auth ignores the account."""
    fake = Fake(ctx, LOOPING)
    home = make_home(ctx, config=(
        'model = "gpt-test"\nmodel_provider = "fake"\n'
        '[model_providers.fake]\nname = "Fake"\nbase_url = "http://127.0.0.1:%d/v1"\n'
        'env_key = "TANDEM_TEST_API_KEY"\n' % fake.port))
    orch = start(ctx, fake, home=home)
    c = orch.client
    c.call("account/login/start", {"type": "apiKey", "apiKey": LOGIN_KEY})
    check_eq(account(c), {"account": {"type": "apiKey"}, "requiresOpenaiAuth": False},
             "account with another provider")
    tid = c.start_thread([])
    turn_ok(c, tid)
    check_eq(last_auth(fake), h8(OTHER_KEY), "the provider's own env key is sent")
    no_secrets_logged(orch)
    check_eq(fake.finish(), 0, "fake server")


TESTS = [
    ("api key login, turns, logout wipes", t_api_key_login),
    ("env key fallback, login wins, logout falls back", t_env_key_fallback),
    ("chatgpt auth tokens", t_chatgpt_tokens),
    ("account/updated reaches every initialized client", t_notifications_to_all_clients),
    ("bad login params are refused and change nothing", t_bad_params),
    ("account methods need initialize", t_not_initialized),
    ("a provider without requires_openai_auth keeps its env key", t_other_provider_keeps_env_key),
]

if __name__ == "__main__":
    sys.exit(run_suite(TESTS))
