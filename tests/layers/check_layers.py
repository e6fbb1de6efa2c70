#!/usr/bin/env python3
"""check_layers.py - fails when an #include crosses a layer upward.

    check_layers.py [--root DIR] [--map FILE]   check the tree (exit 1 on a violation)
    check_layers.py --self-test                 prove the check can fail (TAP)

The map (tests/layers/layers.txt) names each layer's files and the layers
whose headers it may include. Every .c/.h file in a directory the map
covers must belong to exactly one layer; every quoted include must resolve
to a mapped header (looked up next to the includer first, then by name) or
to a declared extern one. Output: one line per problem, "file:line: why".
"""
import fnmatch
import os
import re
import subprocess
import sys
import tempfile

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


class MapError(Exception):
    pass


def parse_map(path):
    globs, uses, externs = {}, {}, set()
    with open(path, encoding="utf-8") as f:
        for n, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            if line.startswith("extern "):
                externs.update(line.split()[1:])
            elif "->" in line:
                name, rest = (s.strip() for s in line.split("->", 1))
                uses[name] = set(rest.split())
            elif "=" in line:
                name, rest = (s.strip() for s in line.split("=", 1))
                globs[name] = rest.split()
            else:
                raise MapError(f"{path}:{n}: expected 'layer = globs', 'layer -> layers' or 'extern'")
    for name in globs:
        uses.setdefault(name, set())
    for name, used in uses.items():
        for u in used | {name}:
            if u not in globs:
                raise MapError(f"{path}: layer '{u}' (used by '{name}') has no files")
    return globs, uses, externs


def layer_dirs(globs):
    return sorted({os.path.dirname(g) for gl in globs.values() for g in gl})


def layer_of(rel, globs):
    hits = [name for name, gl in globs.items() if any(fnmatch.fnmatchcase(rel, g) for g in gl)]
    return hits


def check(root, map_path):
    globs, uses, externs = parse_map(map_path)
    files = {}
    problems = []
    for d in layer_dirs(globs):
        full = os.path.join(root, d)
        if not os.path.isdir(full):
            problems.append(f"{d}: directory named in the map does not exist")
            continue
        for name in sorted(os.listdir(full)):
            if name.endswith((".c", ".h")):
                rel = os.path.join(d, name)
                hits = layer_of(rel, globs)
                if len(hits) != 1:
                    problems.append(f"{rel}: in {'no layer' if not hits else 'layers ' + ', '.join(hits)}"
                                    f" (place it in exactly one in {os.path.relpath(map_path, root)})")
                    continue
                files[rel] = hits[0]
    by_name = {}
    for rel in files:
        by_name.setdefault(os.path.basename(rel), []).append(rel)
    for rel, layer in sorted(files.items()):
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                hdr = m.group(1)
                local = os.path.normpath(os.path.join(os.path.dirname(rel), hdr))
                if local in files:
                    target = local
                elif len(by_name.get(os.path.basename(hdr), [])) == 1:
                    target = by_name[os.path.basename(hdr)][0]
                elif hdr in externs:
                    continue
                else:
                    problems.append(f"{rel}:{n}: \"{hdr}\" is no mapped header"
                                    f"{' (ambiguous)' if by_name.get(os.path.basename(hdr)) else ''}")
                    continue
                tl = files[target]
                if tl != layer and tl not in uses[layer]:
                    problems.append(f"{rel}:{n}: includes {hdr} (layer {tl}) from layer {layer},"
                                    f" which may use only: {' '.join(sorted(uses[layer])) or 'nothing'}")
    return problems


# ---- self-test: a synthetic tree, clean and then broken ------------------

SELF_MAP = """
top = app/top.[ch]
low = app/low.[ch] lib/*.[ch]
top -> low
low ->
extern gen.h
"""


def write(root, rel, text):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def self_test():
    cases = []

    def run(tree, want_ok, want_text, name):
        with tempfile.TemporaryDirectory(prefix="tdm-layers-") as root:
            write(root, "layers.txt", SELF_MAP)
            for rel, text in tree.items():
                write(root, rel, text)
            p = subprocess.run([sys.executable, __file__, "--root", root, "--map",
                                os.path.join(root, "layers.txt")],
                               capture_output=True, text=True, timeout=60)
            ok = (p.returncode == 0) == want_ok and want_text in p.stdout
            cases.append((ok, name, p.returncode, p.stdout.strip()))

    clean = {
        "app/top.c": '#include "top.h"\n#include "low.h"\n#include "gen.h"\n#include <stdio.h>\n',
        "app/top.h": "",
        "app/low.c": '#include "low.h"\n#include "util.h"\n',
        "app/low.h": "",
        "lib/util.h": "",
    }
    run(clean, True, "", "a downward include passes")
    up = dict(clean, **{"app/low.c": '#include "low.h"\n#include "top.h"\n'})
    run(up, False, 'app/low.c:2: includes top.h (layer top) from layer low', "an upward include fails")
    spaced = dict(clean, **{"lib/util.c": '  #  include "../app/top.h"\n'})
    run(spaced, False, "lib/util.c:1: includes ../app/top.h (layer top) from layer low",
        "an upward include by relative path fails")
    stray = dict(clean, **{"app/stray.c": '#include "low.h"\n'})
    run(stray, False, "app/stray.c: in no layer", "a file in no layer fails")
    unknown = dict(clean, **{"app/top.c": '#include "nowhere.h"\n'})
    run(unknown, False, 'app/top.c:1: "nowhere.h" is no mapped header', "an unknown header fails")
    print(f"1..{len(cases)}")
    for i, (ok, name, rc, out) in enumerate(cases, 1):
        print(f"{'ok' if ok else 'not ok'} {i} - {name}")
        if not ok:
            print(f"# exit {rc}, output: {out!r}")
    return 0


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    if argv[1:] == ["--self-test"]:
        return self_test()
    root = os.path.normpath(os.path.join(here, "..", ".."))
    map_path = os.path.join(here, "layers.txt")
    args = argv[1:]
    while args:
        opt = args.pop(0)
        if opt == "--root" and args:
            root = args.pop(0)
        elif opt == "--map" and args:
            map_path = args.pop(0)
        else:
            print(__doc__, file=sys.stderr)
            return 2
    try:
        problems = check(root, map_path)
    except MapError as e:
        print(e)
        return 1
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
