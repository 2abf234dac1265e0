"""No import cycle among the orchestrator's and the simulator's modules, nor among the
orchestrator's stage packages (prepare, run, results, analysis, conduct, vm, ...).

The module graph is read from the source with ast (nothing is imported): an edge A -> B for
every `import B` / `from B import x` (relative imports resolved against A's package; `from P
import m` is an edge to the module P.m when m is a module, else to P). Cycles are the graph's
strongly connected components of more than one node (Tarjan's algorithm), and a module that
imports itself.

Which imports count: those a module runs when it is loaded (its body, including imports under
`if`/`try`). Imports inside a function body are left out of the cycle checks, on purpose: they
run when the function is called, after every module is loaded, and this code uses them for
optional dependencies (Dask, the analysis stack) and for commands whose work is loaded only when
the command runs; a cycle through them cannot fail at import time. They are not ignored,
though: the third test reads them too and allows exactly one known function-level cycle
(named there, with the reason), so a new one fails; and run/ must not import analysis/ even
inside a function (the run measures, the analysis judges; both meet in orchestrator/results/)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("orchestrator", "simulator")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _imports(name: str, path: Path, mods: dict[str, Path], in_functions: bool) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()

    def visit(node: ast.AST, in_func: bool) -> None:
        for child in ast.iter_child_nodes(node):
            func = in_func or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import) and (in_functions or not in_func):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom) and (in_functions or not in_func):
                base = child.module or ""
                if child.level:
                    pkg = _package_of(name, path).split(".")
                    pkg = pkg[:len(pkg) - (child.level - 1)]
                    base = ".".join([*pkg, *([base] if base else [])])
                for a in child.names:
                    sub = f"{base}.{a.name}"
                    found.add(sub if sub in mods else base)
            visit(child, func)

    visit(tree, False)
    return {m for m in found if m in mods}


def graph(in_functions: bool = False) -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(m, p, mods, in_functions) for m, p in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module, and self-imports (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:  # recursive: the graph is a few hundred modules deep at most
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                strong(w)
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
            if len(comp) > 1 or v in g.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            strong(v)
    return out


def test_the_checker_finds_a_cycle() -> None:
    """The checker itself, on a made-up graph: a -> b -> c -> a is one component, d alone none."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]] and cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    g = graph()
    assert len(g) > 100 and "orchestrator.conductor" in g  # the walk found the packages
    assert cycles(g) == []


def stages(g: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph between top-level packages and modules: orchestrator.run, orchestrator.analysis, ..."""
    out: dict[str, set[str]] = {}
    for a, deps in g.items():
        sa = ".".join(a.split(".")[:2])
        out.setdefault(sa, set()).update(sb for b in deps if (sb := ".".join(b.split(".")[:2])) != sa)
    return out


def test_no_cycles_between_stage_packages() -> None:
    g = stages(graph())
    assert {"orchestrator.run", "orchestrator.analysis", "orchestrator.results"} <= set(g)
    assert cycles(g) == []


# suites.py stores a kernel's instruction profile through insnprofile.py (inside
# store_insn_profile), and insnprofile.py reads suites.py's guest program and spawn layout
# constants: to be untied where the suite tables become one object per suite (issue 26 item 4)
KNOWN_FUNCTION_LEVEL = [["orchestrator.run.insnprofile", "orchestrator.run.suites"]]


def test_function_level_imports_add_no_new_cycle() -> None:
    g = graph(in_functions=True)
    assert cycles(g) == KNOWN_FUNCTION_LEVEL
    run_to_analysis = sorted((a, b) for a, deps in g.items() for b in deps
                             if a.startswith("orchestrator.run.") and b.startswith("orchestrator.analysis."))
    assert run_to_analysis == []
