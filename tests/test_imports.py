"""Imports in n2n_core run one way: no module imports, at any depth or inside a function, one that
imports it back; and nothing in the package imports the notebooks' façade (``experiment``)."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "n2n_core"


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = ["n2n_core", *path.relative_to(package).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the package's modules it imports (every import statement, also inside functions)."""
    files = {module_name(p, package): p for p in package.rglob("*.py")}
    graph = {name: set() for name in files}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        here = name.split(".") if is_package else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = here[:len(here) - node.level + 1] if node.level else []
                stem = ".".join(base + (node.module.split(".") if node.module else []))
                targets = [f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in files else stem for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            graph[name] |= {t for t in targets if t in files and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of two or more modules (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert {"n2n_core", "n2n_core.train", "n2n_core.models", "n2n_core.models.unet"} <= set(graph)
    assert "n2n_core.evaluation" in graph["n2n_core.table"]  # (the graph sees imports inside functions)
    assert cycles(graph) == []


def test_only_the_command_line_imports_the_notebooks_facade():
    """experiment (and studies, the notebooks' layer over it for notebooks 07-10) is what the
    notebooks call: no module of the package below them imports either."""
    graph = import_graph()
    assert sorted(name for name, imported in graph.items() if "n2n_core.experiment" in imported) == [
        "n2n_core.__main__", "n2n_core.studies"]
    assert [name for name, imported in graph.items() if "n2n_core.studies" in imported] == []


def test_the_check_finds_a_cycle_when_one_is_added(tmp_path):
    package = tmp_path / "n2n_core"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .a import x\n")
    (package / "a.py").write_text("from .b import y\nx = 1\n")
    (package / "b.py").write_text("def f():\n    from . import c\n")
    (package / "c.py").write_text("from .sub.d import z\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "d.py").write_text("from ..a import x\nz = 2\n")
    graph = import_graph(package)
    assert graph["n2n_core.b"] == {"n2n_core.c"} and graph["n2n_core.sub.d"] == {"n2n_core.a"}
    assert cycles(graph) == [["n2n_core.a", "n2n_core.b", "n2n_core.c", "n2n_core.sub.d"]]
    (package / "sub" / "d.py").write_text("z = 2\n")
    assert cycles(import_graph(package)) == []


def test_modules_stay_small():
    """Files a reader takes in at once: no module over 350 lines, and the command line's handlers
    (the parser is cli.py) under 250."""
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert max(sizes.values()) <= 350, {name: n for name, n in sizes.items() if n > 350}
    assert sizes["__main__.py"] < 250, sizes["__main__.py"]
