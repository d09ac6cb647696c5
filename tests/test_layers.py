"""The package's imports go one way: no module of src/ecad imports, directly or through others, a module that imports
it. Counted from every import statement, function-local ones included, so a cycle cannot hide inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _modules() -> dict[str, tuple[Path, bool]]:
    """Every module of ecad: dotted name -> (file, is a package)."""
    modules = {}
    for path in sorted((SRC / "ecad").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if package else parts)] = (path, package)
    return modules


def import_graph() -> dict[str, set[str]]:
    """Module -> the ecad modules its import statements name. ``from package import module`` names the module, not
    the package (Python imports a package before its modules anyway, as it does for every dotted name)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, (path, package) in modules.items():
        here = name if package else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*parent, *([node.module] if node.module else [])])
                submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
                targets = submodules if len(submodules) == len(node.names) else [base, *submodules]
            else:
                continue
            graph[name] |= {target for target in targets if target in modules and target != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan): each holds at least one import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_checker_finds_a_cycle_and_reads_every_import():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    graph = import_graph()
    # a module-level import, a function-local one and a relative "from . import module"
    assert "ecad.schedule.formats" in graph["ecad.schedule.cache_schedule"]
    assert "ecad.search.ray_executor" in graph["ecad.search.executors"]  # imported inside a function
    assert "ecad.cli.arguments" in graph["ecad.cli.search"] and "ecad.cli" not in graph["ecad.cli.search"]


def test_no_import_cycle_in_ecad():
    found = cycles(import_graph())
    assert not found, f"{len(found)} import cycle(s) among: " + "; ".join(" <-> ".join(c) for c in found)


def test_modules_stay_small_and_the_search_loop_only_assembles():
    """No module of src/ecad over 450 lines, and ``run_search`` (assembling NSGA-II and running ask/tell) within 60:
    the formatter can grow both, so the sizes are checked where it runs."""
    sizes = {name: path.read_text().count("\n") for name, (path, _) in _modules().items()}
    assert max(sizes.values()) <= 450, {name: n for name, n in sizes.items() if n > 450}
    path, _ = _modules()["ecad.search.run"]
    (search,) = [n for n in ast.walk(ast.parse(path.read_text())) if getattr(n, "name", None) == "run_search"]
    assert search.end_lineno - search.lineno + 1 <= 60
