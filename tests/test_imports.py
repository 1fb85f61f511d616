"""Imports in n2n_core run one way: no module imports, at any depth or inside a function, one that
imports it back; and nothing in the package imports the notebooks' façade (``experiment``)."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "n2n_core"


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = ["n2n_core", *path.relative_to(package).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PACKAGE, lazy: bool = True) -> dict[str, set[str]]:
    """module -> the package's modules it imports: every import statement, also inside functions, or
    without ``lazy`` those the module runs when it is imported (none in a function's body). A package's
    ``__init__`` is a module of its own; ``from . import x`` imports the module x where there is one."""
    files = {module_name(p, package): p for p in package.rglob("*.py")}
    graph = {name: set() for name in files}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        here = name.split(".") if is_package else name.split(".")[:-1]
        for node in _imports(ast.parse(path.read_text(), str(path)), lazy):
            targets = []
            if isinstance(node, ast.ImportFrom):
                base = here[:len(here) - node.level + 1] if node.level else []
                stem = ".".join(base + (node.module.split(".") if node.module else []))
                targets = [f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in files else stem for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            graph[name] |= {t for t in targets if t in files and t != name}
    return graph


def _imports(tree: ast.AST, lazy: bool) -> list[ast.Import | ast.ImportFrom]:
    """The import statements in ``tree``; without ``lazy``, none from a function's body."""
    found, todo = [], [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        todo += [child for child in ast.iter_child_nodes(node)
                 if lazy or not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))]
    return found


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


def cycle_path(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """The shortest cycle through the first module of a strongly connected ``group`` (one of ``cycles``),
    as the path of imports that comes back to it."""
    start = group[0]
    parent, todo = {start: None}, [start]
    for v in todo:  # breadth first, within the group
        if start in graph[v]:
            path = [start]
            while v is not None:
                path.append(v)
                v = parent[v]
            return path[::-1]
        for w in sorted(graph[v] & set(group) - parent.keys()):
            parent[w] = v
            todo.append(w)
    raise ValueError(f"{group} is not strongly connected")


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert {"n2n_core", "n2n_core.training.train", "n2n_core.paper.models", "n2n_core.paper.models.unet"} <= set(graph)
    assert "n2n_core.evaluation.protocol" in graph["n2n_core.evaluation.table"]  # (the graph sees imports inside functions)
    assert cycles(graph) == []


def test_only_the_command_line_imports_the_notebooks_facade():
    """experiment (and the studies beside it, the notebooks' layer over it: methods for notebooks
    07-10, realnoise for notebook 11) is what the notebooks call: no module of the package below
    them imports either; only the command line and make all's plan (which reads what the notebooks
    train) stand above them."""
    graph = import_graph()
    assert sorted(name for name, imported in graph.items() if "n2n_core.studies.experiment" in imported) == [
        "n2n_core.cli.main", "n2n_core.studies.methods", "n2n_core.studies.plan", "n2n_core.studies.realnoise"]
    assert [name for name, imported in graph.items() if "n2n_core.studies.methods" in imported] == []


def test_the_check_finds_a_cycle_when_one_is_added(tmp_path):
    package = tmp_path / "n2n_core"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from .a import x\n")
    (package / "a.py").write_text("from .b import y\nx = 1\n")
    (package / "b.py").write_text("def f():\n    from . import c\n")
    (package / "c.py").write_text("from .sub.d import z\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "d.py").write_text("from ..a import x\nz = 2\n")
    (package / "e.py").write_text("import n2n_core.sub.d\nfrom n2n_core import c\n")  # absolute imports
    graph = import_graph(package)
    assert graph["n2n_core.b"] == {"n2n_core.c"} and graph["n2n_core.sub.d"] == {"n2n_core.a"}
    assert graph["n2n_core.e"] == {"n2n_core.sub.d", "n2n_core.c"} and graph["n2n_core"] == {"n2n_core.a"}
    assert cycles(graph) == [["n2n_core.a", "n2n_core.b", "n2n_core.c", "n2n_core.sub.d"]]
    assert cycle_path(graph, cycles(graph)[0]) == ["n2n_core.a", "n2n_core.b", "n2n_core.c", "n2n_core.sub.d",
                                                   "n2n_core.a"]
    # b imports c inside a function only: the modules as imported have no cycle, the lazy import hides one
    assert import_graph(package, lazy=False)["n2n_core.b"] == set()
    assert cycles(import_graph(package, lazy=False)) == []
    (package / "sub" / "d.py").write_text("z = 2\n")
    assert cycles(import_graph(package)) == []

