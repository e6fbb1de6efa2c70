#!/usr/bin/env python3
"""promparse - a strict parser of the Prometheus text exposition format 0.0.4,
for tandem's tests (unit: test_metrics renders and pipes here; integration:
test_ops.py scrapes live daemons).

parse(text) returns {family: {"type", "help", "samples": {(name, labels): value}}}
and raises ValueError naming the line for anything the format does not allow:
a sample before its TYPE, a TYPE twice, a bad name or label, a bad escape, a
duplicate series, a histogram whose buckets are not cumulative, lack +Inf, or
disagree with _count, a counter that is negative, a missing final newline.

cross_check(text) parses the same text with prometheus_client's own parser
(Debian's python3-prometheus-client, run with /usr/bin/python3 so that it is
found whatever python runs the test) and returns its sample count, or None
when that parser is not installed.

Run as a script: promparse.py FILE prints one JSON object
{"samples": {"name{a=\"x\"}": value, ...} (non-finite values as strings), "families": N, "cross_check": N|null}
and exits 1 with the reason on stderr when the text is invalid.
"""

import json
import math
import os
import re
import subprocess
import sys

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def _value(s, where):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", s):
        raise ValueError("%s: bad value %r" % (where, s))
    return float(s)


def _labels(s, where):
    """Parses the inside of {...}: a="x",b="y" with \\\\, \\" and \\n escapes."""
    out, i = {}, 0
    while i < len(s):
        m = re.match(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"", s[i:])
        if not m:
            raise ValueError("%s: bad label at %r" % (where, s[i:]))
        name, i, val = m.group(1), i + m.end(), []
        while True:
            if i >= len(s):
                raise ValueError("%s: unterminated label value" % where)
            c = s[i]
            if c == "\\":
                nxt = s[i + 1:i + 2]
                if nxt not in ("\\", '"', "n"):
                    raise ValueError("%s: bad escape \\%s" % (where, nxt))
                val.append("\n" if nxt == "n" else nxt)
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise ValueError("%s: raw newline in a label value" % where)
            else:
                val.append(c)
                i += 1
        if name in out:
            raise ValueError("%s: label %s twice" % (where, name))
        out[name] = "".join(val)
        if i < len(s):
            if s[i] != ",":
                raise ValueError("%s: expected ',' in labels" % where)
            i += 1
    return out


def _sample(line, where):
    m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?\Z", line)
    if not m:
        raise ValueError("%s: not a sample line: %r" % (where, line))
    return m.group(1), _labels(m.group(3) or "", where), _value(m.group(4), where)


def _family_of(name, families):
    for suffix in ("_bucket", "_sum", "_count", ""):
        if suffix and not name.endswith(suffix):
            continue
        base = name[:-len(suffix)] if suffix else name
        if base in families and (suffix == "" or families[base]["type"] in
                                 ("histogram", "summary")):
            return base
    return None


def _check_histogram(fam, name):
    series = {}
    for (sname, labels), v in fam["samples"].items():
        key = tuple(sorted((k, x) for k, x in labels if k != "le"))
        s = series.setdefault(key, {"buckets": [], "count": None, "sum": None})
        if sname == name + "_bucket":
            le = dict(labels).get("le")
            if le is None:
                raise ValueError("%s: bucket without le" % name)
            s["buckets"].append((_value(le, name), v))
        elif sname == name + "_count":
            s["count"] = v
        elif sname == name + "_sum":
            s["sum"] = v
    for key, s in series.items():
        b = sorted(s["buckets"])
        if not b or b[-1][0] != math.inf:
            raise ValueError("%s%s: no +Inf bucket" % (name, key))
        if any(b[i][1] > b[i + 1][1] for i in range(len(b) - 1)):
            raise ValueError("%s%s: buckets not cumulative" % (name, key))
        if s["count"] is None or s["sum"] is None or s["count"] != b[-1][1]:
            raise ValueError("%s%s: _count missing or != +Inf bucket" % (name, key))


def parse(text):
    if text and not text.endswith("\n"):
        raise ValueError("the exposition does not end with a newline")
    families, current = {}, None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d" % n
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line[7:].split(" ", 1)
            name = parts[0]
            if not NAME.match(name) or len(parts) < 2:
                raise ValueError("%s: bad %s line" % (where, line[2:6]))
            fam = families.setdefault(name, {"type": None, "help": None, "samples": {}})
            if line[2:6] == "TYPE":
                if fam["type"] is not None or fam["samples"]:
                    raise ValueError("%s: TYPE for %s twice or after its samples" %
                                     (where, name))
                if parts[1] not in TYPES:
                    raise ValueError("%s: unknown type %r" % (where, parts[1]))
                fam["type"] = parts[1]
            else:
                if fam["help"] is not None:
                    raise ValueError("%s: HELP for %s twice" % (where, name))
                fam["help"] = parts[1].replace("\\n", "\n").replace("\\\\", "\\")
            current = name
            continue
        if line.startswith("#") or line == "":
            continue
        sname, labels, value = _sample(line, where)
        base = _family_of(sname, families)
        if base is None or base != current:
            raise ValueError("%s: sample %s outside its family's block" % (where, sname))
        fam = families[base]
        key = (sname, tuple(sorted(labels.items())))
        if key in fam["samples"]:
            raise ValueError("%s: duplicate series %s%s" % (where, sname, labels))
        if fam["type"] == "counter" and value < 0:
            raise ValueError("%s: negative counter" % where)
        fam["samples"][key] = value
    for name, fam in families.items():
        if fam["type"] == "histogram":
            _check_histogram(fam, name)
    return families


def flat(families):
    """{'name{a="x",b="y"}': value} for every sample, labels sorted."""
    out = {}
    for fam in families.values():
        for (name, labels), v in fam["samples"].items():
            lab = ",".join('%s="%s"' % (k, x) for k, x in labels)
            if math.isnan(v) or math.isinf(v):
                v = "NaN" if math.isnan(v) else ("+Inf" if v > 0 else "-Inf")
            out[name + ("{%s}" % lab if lab else "")] = v
    return out


def cross_check(text):
    py = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    code = ("import sys\n"
            "try:\n from prometheus_client.parser import text_string_to_metric_families\n"
            "except ImportError:\n print('none'); sys.exit(0)\n"
            "n = sum(len(f.samples) for f in text_string_to_metric_families(sys.stdin.read()))\n"
            "print(n)\n")
    r = subprocess.run([py, "-c", code], input=text, capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0:
        raise ValueError("prometheus_client rejected the text: %s" % r.stderr.strip())
    out = r.stdout.strip()
    return None if out == "none" else int(out)


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    try:
        fams = parse(text)
        cc = cross_check(text)
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return 1
    samples = flat(fams)
    if cc is not None and cc != len(samples):
        print("prometheus_client saw %d samples, the strict parser %d" % (cc, len(samples)),
              file=sys.stderr)
        return 1
    json.dump({"samples": samples, "families": len(fams), "cross_check": cc}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
