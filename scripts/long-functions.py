#!/usr/bin/env python3
"""Lists Rust functions longer than a limit (default 120 lines), longest first.

A function runs from its `fn` line to the first later line holding only `}` at the
same indentation (rustfmt's layout). Usage: scripts/long-functions.py [LIMIT] [PATH...]
"""
import os
import re
import sys

FN = re.compile(r"^(\s*)(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?(extern\s+\"C\"\s+)?fn\s+(\w+)")


def functions(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        m = FN.match(line)
        if not m or line.rstrip().endswith(";"):
            continue
        indent = m.group(1)
        for j in range(i + 1, len(lines)):
            if lines[j] == indent + "}":
                yield m.group(8), i + 1, j - i + 1
                break


def main():
    args = sys.argv[1:]
    limit = int(args.pop(0)) if args and args[0].isdigit() else 120
    roots = args or ["src"]
    found = []
    for root in roots:
        paths = [root] if root.endswith(".rs") else [
            os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".rs")
        ]
        for p in paths:
            for name, line, n in functions(p):
                if n > limit:
                    found.append((n, f"{p}:{line}", name))
    for n, where, name in sorted(found, reverse=True):
        print(f"{n:5} {where} {name}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
