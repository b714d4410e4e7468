#!/usr/bin/env python3
"""Lists the `crate::X` edges between podrun's top-level modules and any cycle among them.

A top-level module is a file or directory right under src/ (cli, pod, supervisor, ...).
Every `crate::NAME` in a module's files (tests included) counts as an edge to NAME.
Exit status 1 when there is a cycle. Usage: scripts/module-edges.py [--edges]
"""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def top_modules():
    mods = {}
    for entry in sorted(os.listdir(SRC)):
        path = os.path.join(SRC, entry)
        if entry in ("lib.rs", "main.rs"):
            continue
        if os.path.isdir(path):
            files = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs if f.endswith(".rs")]
            mods[entry] = files
        elif entry.endswith(".rs"):
            mods[entry[:-3]] = [path]
    return mods


def edges(mods):
    pattern = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
    out = {m: set() for m in mods}
    for m, files in mods.items():
        for f in files:
            with open(f, encoding="utf-8") as fh:
                text = fh.read()
            # `use crate::{a, b::c}` groups name several modules at once.
            for group in re.findall(r"\bcrate::\{([^}]*)\}", text):
                for name in re.findall(r"(?:^|[\s,{])([a-z_][a-z0-9_]*)", group):
                    if name in mods and name != m:
                        out[m].add(name)
            for name in pattern.findall(text):
                if name in mods and name != m:
                    out[m].add(name)
    return out


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, sccs, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sccs


def main():
    graph = edges(top_modules())
    if "--edges" in sys.argv:
        for m in sorted(graph):
            print(f"{m} -> {', '.join(sorted(graph[m])) or '-'}")
    found = cycles(graph)
    for comp in found:
        pairs = [f"{a} -> {b}" for a in comp for b in sorted(graph[a]) if b in comp]
        print("cycle among " + ", ".join(comp) + ": " + "; ".join(pairs))
    if not found:
        print("no cycle between top-level modules")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
