"""The package reads top to bottom in pieces a reader takes in at once: no function (or method) in
n2n_core over 60 lines, and no import cycle between its modules as Python imports them (the graph is
test_imports.py's, which also fails on a cycle closed by an import inside a function)."""
from __future__ import annotations

import ast
from pathlib import Path

from test_imports import PACKAGE, cycle_path, cycles, import_graph

MAX_FUNCTION_LINES = 60


def long_functions(package: Path = PACKAGE, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """'file:line name: N lines' for every function, method or nested function over ``limit`` lines,
    counted from its ``def`` line (decorators left out) to its last line."""
    found = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > limit:
                    found.append(f"{path.relative_to(package.parent)}:{node.lineno} {node.name}: {length} lines")
    return found


def test_no_function_is_over_60_lines():
    offenders = long_functions()
    assert offenders == [], "functions over 60 lines:\n" + "\n".join(offenders)


def test_the_modules_as_imported_have_no_cycle():
    graph = import_graph(lazy=False)
    assert {"n2n_core", "n2n_core.train", "n2n_core.models", "n2n_core.models.unet"} <= set(graph)
    assert "n2n_core.evaluation" not in graph["n2n_core.table"]  # (imported inside functions only)
    found = [" -> ".join(cycle_path(graph, group)) for group in cycles(graph)]
    assert found == [], "import cycles:\n" + "\n".join(found)


def test_the_command_line_parser_is_cli_py():
    """``__main__`` checks, calls the package and reports; the options are defined in cli.py only."""
    tree = ast.parse((PACKAGE / "__main__.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    calls = {node.func.attr for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)}
    assert "argparse" not in imported and not {"ArgumentParser", "add_argument", "add_parser"} & calls


def test_the_length_check_counts_from_def_to_the_last_line(tmp_path):
    def function(name: str, lines: int, indent: str = "") -> str:
        return f"{indent}def {name}():\n" + "".join(f"{indent}    x = {i}\n" for i in range(lines - 1))

    package = tmp_path / "n2n_core"
    package.mkdir()
    (package / "a.py").write_text("import functools\n\n\n@functools.cache\n@functools.wraps(print)\n"  # lines 1-5
                                  + function("fits", 60) + "\n\nclass C:\n" + function("method", 61, "    "))
    assert long_functions(package) == ["n2n_core/a.py:69 method: 61 lines"]
    assert long_functions(package, limit=59) == ["n2n_core/a.py:6 fits: 60 lines", "n2n_core/a.py:69 method: 61 lines"]
