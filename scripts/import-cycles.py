#!/usr/bin/env python3
"""Fails when a crate's files import each other in a circle of more than MAX files.

usage: import-cycles.py [--max N] SRC_DIR...   (default N = 2)

Each .rs file is a module; `crate::a::b` and `super::x` paths in it (outside `#[cfg(test)]`
modules and comments) are edges to the deepest module file they name. Strongly connected
groups of files bigger than N are printed and make the exit status 1.
"""
import os
import re
import sys


def module_of(src, path):
    parts = os.path.relpath(path, src)[:-3].split(os.sep)
    return tuple(parts[:-1]) if parts[-1] in ("lib", "main", "mod") else tuple(parts)


def without_tests(text):
    text = re.sub(r"//[^\n]*", "", text)
    out, pos = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\][^{;]*?mod\s+\w+\s*\{", text):
        if m.start() < pos:
            continue
        out.append(text[pos:m.start()])
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        pos = i
    return "".join(out) + text[pos:]


def paths(text):
    """Every `crate::...` path, with `use crate::{a, b::c}` groups expanded."""
    found = []
    for m in re.finditer(r"\bcrate::([\w:]*)(\{)?", text):
        base = [p for p in m.group(1).split("::") if p]
        if m.group(2):
            depth, i = 1, m.end()
            while i < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[i], 0)
                i += 1
            for item in re.findall(r"\w+(?:::\w+)*", text[m.end():i - 1]):
                found.append(tuple(base + item.split("::")))
        else:
            found.append(tuple(base))
    return found


def deepest(path, modules):
    for n in range(len(path), 0, -1):
        if path[:n] in modules:
            return path[:n]
    return None


def groups(nodes, edges):
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            out.append(group)

    sys.setrecursionlimit(100000)
    for v in nodes:
        if v not in index:
            visit(v)
    return out


def check(src, limit):
    files = {}
    for root, _, names in os.walk(src):
        for name in names:
            if name.endswith(".rs"):
                path = os.path.join(root, name)
                files[module_of(src, path)] = path
    edges = {}
    for module, path in files.items():
        text = without_tests(open(path, encoding="utf-8").read())
        parent = module[:-1]
        targets = {deepest(p, files) for p in paths(text)}
        targets |= {deepest(parent + (m,), files) for m in re.findall(r"\bsuper::(\w+)", text)}
        edges[module] = {t for t in targets if t and t != module}
    bad = [g for g in groups(list(files), edges) if len(g) > limit]
    for g in bad:
        names = sorted("/".join(m) + ".rs" if m else "lib.rs" for m in g)
        print(f"{src}: {len(g)} files import each other: {', '.join(names)}")
    return not bad


def main(argv):
    limit = 2
    if "--max" in argv:
        i = argv.index("--max")
        limit = int(argv[i + 1])
        del argv[i:i + 2]
    ok = all([check(src, limit) for src in argv])
    print("import cycles: none above", limit, "files" if ok else "files: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
