"""The layout shows the architecture: no import cycles, and no import from a lower layer upward.

Layers, lowest first: core (config, registry, plan, model, checkpoint, inference, evaluation,
metrics, data, …), then ``sarzoo.train`` and ``sarzoo.testing`` (both build on core, neither on
the other) and ``sarzoo.bench`` (on core and ``sarzoo.train``, never the other way round), then
``sarzoo.commands``, then the CLI. Every import counts, the ones inside
functions too: a lazy import is still a dependency, just a later one.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "sarzoo"
LAYERS = {"sarzoo.cli": 4, "sarzoo.__main__": 4, "sarzoo.commands": 3, "sarzoo.train": 2, "sarzoo.testing": 2,
          "sarzoo.bench": 2}
#: sarzoo.train and sarzoo.testing share a layer but must not lean on each other; sarzoo.bench times
#: the training step (it uses sarzoo.train), but training never uses the benchmark.
SIBLINGS_APART = {("sarzoo.train", "sarzoo.testing"), ("sarzoo.testing", "sarzoo.train"),
                  ("sarzoo.train", "sarzoo.bench"), ("sarzoo.bench", "sarzoo.testing"),
                  ("sarzoo.testing", "sarzoo.bench")}
MISSING: list[str] = []


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The sarzoo modules ``path`` imports, at module level or inside functions."""
    is_pkg = path.name == "__init__.py"
    out = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    # imports under `if TYPE_CHECKING:` are for annotations only, never executed
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and getattr(node.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from sarzoo import checkpoint` imports the submodule, `from sarzoo import x` the package
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        named = [base] if isinstance(node, ast.ImportFrom) else targets
        MISSING.extend(f"{name} imports {m}, which does not exist" for m in named
                       if m.partition(".")[0] == "sarzoo" and m not in known)
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t.startswith("sarzoo") and t != name:
                out.add(t)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: imports(path, name, known) for name, path in mods.items()}


def layer(name: str) -> tuple[int, str]:
    for prefix, rank in LAYERS.items():
        if name == prefix or name.startswith(prefix + "."):
            return rank, prefix
    return 1, "core"


def test_every_import_exists():
    """A lazy import of a module that moved fails only when its function runs: find it now."""
    MISSING.clear()
    graph()
    assert not MISSING, "\n".join(sorted(set(MISSING)))


def test_no_upward_imports():
    bad = []
    for mod, deps in graph().items():
        rank, group = layer(mod)
        for dep in deps:
            drank, dgroup = layer(dep)
            if drank > rank or (group, dgroup) in SIBLINGS_APART:
                bad.append(f"{mod} ({group}) imports {dep} ({dgroup})")
    assert not bad, "imports against the layering:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    g = graph()
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path, monkeypatch):
    """The two rules would catch a violation: a fake tree with both."""
    pkg = tmp_path / "sarzoo"
    (pkg / "train").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "train" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from sarzoo.train import loop\n")
    (pkg / "b.py").write_text("from sarzoo import c\n")
    (pkg / "c.py").write_text("import sarzoo.b\n")
    (pkg / "train" / "loop.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    g = graph()
    assert g["sarzoo.a"] == {"sarzoo.train.loop"} and g["sarzoo.b"] == {"sarzoo.c"} and g["sarzoo.c"] == {"sarzoo.b"}
    for check in (test_no_upward_imports, test_no_import_cycles):
        try:
            check()
        except AssertionError:
            continue
        raise AssertionError(f"{check.__name__} missed the violation")


#: Modules that must work without torch: recipe checking and planning happen before any weight,
#: and `sarzoo --help`, `sarzoo recipes` and `sarzoo.load_recipe` must stay instant.
TORCH_FREE = ("sarzoo.config", "sarzoo.plan", "sarzoo.budget", "sarzoo.catalog", "sarzoo.interfaces",
              "sarzoo.errors",
              "sarzoo.files", "sarzoo.hookspecs", "sarzoo.registry", "sarzoo._version")


def test_planner_and_config_import_no_torch():
    bad = []
    for name, path in modules().items():
        if not any(name == m or name.startswith(m + ".") for m in TORCH_FREE):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{name} imports {n}" for n in names if n.split(".")[0] in ("torch", "numpy")]
    assert not bad, "\n".join(bad)
