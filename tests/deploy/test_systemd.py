#!/usr/bin/env python3
"""test_systemd - deploy/systemd/ units: `systemd-analyze verify` clean,
`systemd-analyze security --offline` exposure within bounds, every option
of their ExecStart lines known to the binaries, and the two units'
ExecStart lines (as systemd would expand them, paths moved into a temp dir)
running a real orchestrator and executor over tls+tcp:// until /readyz
says ready.

Needs systemd-analyze (Debian package systemd): without it the suite prints
a loud SKIP. PID 1 need not be systemd (the analysis is offline).
"""

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from tandem_testlib import (EXECUTOR, ORCHESTRATOR, check, check_eq, make_home,  # noqa: E402
                            random_token, run_suite, toml_str, wait_until, write_file)

UNITS = os.path.join(HERE, "..", "..", "deploy", "systemd")
ORCH_UNIT = "tandem-orchestrator.service"
EXEC_UNIT = "tandem-executor@.service"
MAX_EXPOSURE = {ORCH_UNIT: 3.0, "tandem-executor@gpu.service": 3.0}
ANALYZE = shutil.which("systemd-analyze")


def unit_text(name):
    with open(os.path.join(UNITS, name)) as f:
        return f.read()


def localized(ctx, name, as_name=None):
    """A copy of the unit whose binaries are the build tree's (verify checks
    that ExecStart is executable)."""
    text = unit_text(name).replace("/usr/local/bin/tandem-orchestrator", ORCHESTRATOR)
    text = text.replace("/usr/local/bin/tandem-executor", EXECUTOR)
    return write_file(ctx.path("units", as_name or name), text)


def analyze(*args):
    return subprocess.run([ANALYZE] + list(args), capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, SYSTEMD_LOG_LEVEL="notice"))


def test_verify_clean(ctx):
    o = localized(ctx, ORCH_UNIT)
    e = localized(ctx, EXEC_UNIT, "tandem-executor@gpu.service")
    localized(ctx, EXEC_UNIT)
    r = analyze("verify", o, e)
    check_eq(r.returncode, 0, "systemd-analyze verify exit status (%s)" % r.stderr.strip())
    check_eq((r.stdout + r.stderr).strip(), "", "systemd-analyze verify output")
    # ...and the same check does see a broken unit.
    bad = write_file(ctx.path("units", "bad@gpu.service"),
                     open(e).read().replace("ProtectHome=yes", "ProtectHome=maybe"))
    r = analyze("verify", bad)
    check("maybe" in r.stdout + r.stderr, "verify did not flag a bad value: %r" % r.stderr)


def test_sysusers(ctx):
    """The dedicated user comes from the sysusers file, as the README installs it."""
    sysusers = shutil.which("systemd-sysusers")
    if not sysusers:
        print("# SKIP systemd-sysusers not found")
        return
    root = ctx.mkdir("root", "etc")
    r = subprocess.run([sysusers, "--root=" + os.path.dirname(root),
                        os.path.join(os.path.abspath(UNITS), "tandem.sysusers")],
                       capture_output=True, text=True, timeout=60)
    check_eq(r.returncode, 0, "systemd-sysusers (%s)" % r.stderr.strip())
    with open(os.path.join(root, "passwd")) as f:
        line = [l for l in f if l.startswith("tandem:")]
    check(len(line) == 1 and line[0].rstrip().endswith(":/var/lib/tandem:/usr/sbin/nologin"),
          "the tandem user: %r" % line)
    for unit in (ORCH_UNIT, EXEC_UNIT):
        check("\nUser=tandem\n" in unit_text(unit), "%s runs as tandem" % unit)


def exposure(path):
    r = analyze("security", "--offline=yes", path)
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout + r.stderr)
    check(m is not None, "no exposure figure in: %r" % (r.stdout + r.stderr)[-400:])
    return float(m.group(1))


def test_security_exposure(ctx):
    for unit, as_name in ((ORCH_UNIT, None), (EXEC_UNIT, "tandem-executor@gpu.service")):
        path = localized(ctx, unit, as_name)
        got = exposure(path)
        name = os.path.basename(path)
        print("# systemd-analyze security --offline: %s exposure %.1f" % (name, got))
        check(got <= MAX_EXPOSURE[name], "%s: exposure %.1f > %.1f" % (name, got,
                                                                        MAX_EXPOSURE[name]))


def exec_start(unit):
    """The ExecStart argv, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", unit_text(unit))
    m = re.search(r"^ExecStart=(.*)$", text, re.M)
    return shlex.split(m.group(1))


def test_exec_options_known(ctx):
    for unit, binary in ((ORCH_UNIT, ORCHESTRATOR), (EXEC_UNIT, EXECUTOR)):
        helptext = subprocess.run([binary, "--help"], capture_output=True, text=True,
                                  timeout=30).stdout
        for arg in exec_start(unit)[1:]:
            if arg.startswith("--"):
                check(re.search(r"(^|\s)%s(\s|$)" % re.escape(arg), helptext) is not None,
                      "%s: %s is not an option of %s" % (unit, arg, os.path.basename(binary)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def expand(argv, env, binary):
    """What systemd runs: ${VAR} replaced, %i the instance."""
    out = [binary]
    for a in argv[1:]:
        a = a.replace("%i", env.get("INSTANCE", ""))
        out.append(re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], a))
    return out


def http_status(addr, path):
    try:
        with urllib.request.urlopen("http://%s%s" % (addr, path), timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def test_units_run_together(ctx):
    """Both ExecStart lines, with the units' own options, make a working
    pair: the orchestrator's required environment becomes ready over TLS."""
    creds = ctx.mkdir("credentials")
    key, cert = ctx.path("key.pem"), ctx.path("cert.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                        "-keyout", key, "-out", cert], capture_output=True, timeout=60)
    check(r.returncode == 0, "openssl: %s" % r.stderr.decode()[-300:])
    write_file(os.path.join(creds, "tls.pem"), open(key).read() + open(cert).read(), 0o400)
    token = random_token()
    write_file(os.path.join(creds, "token"), token + "\n", 0o400)
    plugins = ctx.mkdir("srv", "tandem", "plugins")
    port, mport, oport = free_port(), free_port(), free_port()
    env = {"INSTANCE": "gpu", "CREDENTIALS_DIRECTORY": creds,
           "TANDEM_EXECUTOR_ADDRESS": "127.0.0.1:%d" % port,
           "TANDEM_METRICS_ADDRESS": "127.0.0.1:%d" % mport}
    argv = [a.replace("/srv/tandem/plugins", plugins) for a in
            expand(exec_start(EXEC_UNIT), env, EXECUTOR)]
    ex = ctx.popen(argv, "executor-gpu")
    wait_until(lambda: http_status("127.0.0.1:%d" % mport, "/readyz") == 200, 20,
               "the executor's /readyz")

    envs = ("include_local = false\n\n[[environments]]\nid = \"gpu\"\n"
            "url = %s\nrequired = true\n" % toml_str("tls+tcp://localhost:%d" % port))
    home = make_home(ctx, environments=envs, tokens={"gpu": token}, name="etc-orchestrator")
    os.makedirs(os.path.join(home, "executor-tls"))
    shutil.copy(cert, os.path.join(home, "executor-tls", "gpu.pem"))
    oargv = []
    for a in expand(exec_start(ORCH_UNIT), {}, ORCHESTRATOR):
        a = a.replace("/etc/tandem/orchestrator", home)
        a = a.replace("/var/lib/tandem/orchestrator", ctx.path("state"))
        a = a.replace("/run/tandem/client.sock", ctx.path("client.sock"))
        oargv.append(a.replace("127.0.0.1:9464", "127.0.0.1:%d" % oport))
    orch = ctx.popen(oargv, "orchestrator")
    wait_until(lambda: http_status("127.0.0.1:%d" % oport, "/readyz") == 200, 30,
               "the orchestrator's /readyz (its required environment over TLS)")
    check(os.path.exists(ctx.path("client.sock")), "the client socket exists")
    for p in (orch, ex):
        p.terminate()
        check_eq(p.wait(timeout=20), 0, "%s exit status" % p.label)


if __name__ == "__main__":
    if not ANALYZE:
        print("1..0 # SKIP systemd-analyze not found: install Debian's systemd package")
        sys.exit(0)
    sys.exit(run_suite([
        ("systemd-analyze verify is clean (and sees a broken unit)", test_verify_clean),
        ("systemd-analyze security exposure within bounds", test_security_exposure),
        ("systemd-sysusers makes the units' dedicated user", test_sysusers),
        ("every ExecStart option is one the binary knows", test_exec_options_known),
        ("the two units' ExecStart lines run a ready pair over TLS", test_units_run_together),
    ]))
