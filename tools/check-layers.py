#!/usr/bin/env python3
"""Fails when the code's layers are crossed the wrong way (run by `make test`).

Layers, lowest first (docs/architecture.md):
  crates/abi      the wire format        - no dependencies at all
  crates/sandbox  wasmtime, no Redis     - may use abi (and wasmtime/wasi/anyhow/thiserror/tokio)
  src/redis       the module-API adapter
  src/runtime     config, workers, timers, registry, wheelhouse
  src/transport   links between shards (messages as bytes)
  src/session     sessions and deferred results
  src/gears       the domain
  src/commands    one handler per command
  src/lib.rs      the module's entry points (and its test-only files)
A file may import its own layer or lower ones; no two files of src/ may import each other in
a cycle. `python3 tools/check-layers.py [repo]`; `--show` prints the file graph.
"""
import pathlib
import re
import sys
import tomllib

LAYERS = ["redis", "runtime", "transport", "session", "gears", "commands"]
TOP = len(LAYERS)  # lib.rs, fuzz_tests.rs
SANDBOX_DEPS = {"wasmgears-abi", "wasmtime", "wasmtime-wasi", "anyhow", "thiserror", "tokio"}
PATH = re.compile(r"\bcrate::((?:[a-z_][a-z0-9_]*::)*[a-z_][a-z0-9_]*)")
GROUP = re.compile(r"use\s+crate::\{([^}]*)\}", re.S)


def layer_of(rel):
    parts = rel.parts
    return LAYERS.index(parts[0]) if len(parts) > 1 and parts[0] in LAYERS else TOP


def resolve(src, segments):
    """The file a `crate::a::b::c` path lives in: the longest prefix that is a module file."""
    for n in range(len(segments), 0, -1):
        base = src.joinpath(*segments[:n])
        for candidate in (base.with_suffix(".rs"), base / "mod.rs"):
            if candidate.is_file():
                return candidate.relative_to(src)
    return None


SUPER = re.compile(r"\bsuper::((?:[a-z_][a-z0-9_]*::)*[a-z_][a-z0-9_]*)")


def imports(src, rel, text):
    paths = [m.group(1).split("::") for m in PATH.finditer(text)]
    # `super::x` from a/b.rs is crate::a::x; from a/mod.rs it is crate::x (globs: tests).
    parent = list(rel.parent.parts) if rel.name != "mod.rs" else list(rel.parent.parts[:-1])
    paths += [parent + m.group(1).split("::") for m in SUPER.finditer(text)]
    # A mod.rs using a child it declares (`mod link;` ... `use link::Link` / `link::f()`): an
    # import of that sibling file, which `crate::`/`super::` paths do not show.
    if rel.name == "mod.rs":
        for child in re.findall(r"^\s*(?:pub\s+)?mod\s+([a-z_][a-z0-9_]*)\s*;", text, re.M):
            if re.search(r"(?<![:\w])" + child + r"::", text):
                paths.append(list(rel.parent.parts) + [child])
    for group in GROUP.finditer(text):
        for item in group.group(1).split(","):
            item = item.strip().split(" as ")[0]
            if item and item != "self":
                paths.append([p for p in item.split("::") if p not in ("{", "}")])
    targets = set()
    for segments in paths:
        target = resolve(src, [s for s in segments if re.fullmatch(r"[a-z_][a-z0-9_]*", s)])
        if target is not None:
            targets.add(target)
    return targets


def strip_comments(text):
    return "\n".join(line.split("//")[0] for line in text.splitlines())


def cycles(graph):
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def main(repo, show=False):
    problems = []
    abi = tomllib.loads((repo / "crates/abi/Cargo.toml").read_text())
    if abi.get("dependencies"):
        problems.append("crates/abi has dependencies: %s" % sorted(abi["dependencies"]))
    sandbox = tomllib.loads((repo / "crates/sandbox/Cargo.toml").read_text())
    extra = set(sandbox.get("dependencies", {})) - SANDBOX_DEPS
    if extra:
        problems.append("crates/sandbox depends on %s (allowed: %s)" % (sorted(extra), sorted(SANDBOX_DEPS)))
    for crate in ("abi", "sandbox"):
        for path in sorted((repo / "crates" / crate).rglob("*.rs")):
            text = strip_comments(path.read_text())
            for name in ("redis_module", "wasmgears::", "crate::gears", "crate::session"):
                if name in text:
                    problems.append("%s uses %s (a higher layer)" % (path.relative_to(repo), name))
    src = repo / "src"
    graph = {}
    for path in sorted(src.rglob("*.rs")):
        rel = path.relative_to(src)
        targets = imports(src, rel, strip_comments(path.read_text())) - {rel}
        graph[rel] = targets
        for target in sorted(targets):
            if layer_of(target) > layer_of(rel):
                problems.append("src/%s (layer %s) imports src/%s (layer %s)" % (
                    rel, (LAYERS + ["top"])[layer_of(rel)], target, (LAYERS + ["top"])[layer_of(target)]))
    # A folder's mod.rs only declares its files: its `pub mod` lines are not imports.
    for comp in cycles(graph):
        problems.append("files import each other in a cycle: %s" % ", ".join("src/%s" % c for c in comp))
    if show:
        for rel, targets in sorted(graph.items()):
            print("src/%s -> %s" % (rel, ", ".join("src/%s" % t for t in sorted(targets)) or "-"))
    for p in problems:
        print("layering: " + p, file=sys.stderr)
    if not problems:
        edges = sum(len(t) for t in graph.values())
        print("layering: ok (%d files, %d imports, none upward, no cycles)" % (len(graph), edges))
    return 1 if problems else 0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--show"]
    sys.exit(main(pathlib.Path(args[0] if args else pathlib.Path(__file__).resolve().parent.parent), "--show" in sys.argv))
