"""The package reads top to bottom in pieces a reader takes in at once: no function (or method) in
n2n_core over 60 lines, and no import cycle between its modules as Python imports them (the graph is
test_imports.py's, which also fails on a cycle closed by an import inside a function)."""
from __future__ import annotations

import ast
import functools
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
    assert {"n2n_core", "n2n_core.training.train", "n2n_core.paper.models", "n2n_core.paper.models.unet"} <= set(graph)
    assert "n2n_core.evaluation.protocol" not in graph["n2n_core.evaluation.table"]  # (imported inside functions only)
    found = [" -> ".join(cycle_path(graph, group)) for group in cycles(graph)]
    assert found == [], "import cycles:\n" + "\n".join(found)


def test_the_command_line_parser_is_cli_parser():
    """``cli.main`` checks, calls the package and reports; the options are defined in cli/parser.py only."""
    tree = ast.parse((PACKAGE / "cli" / "main.py").read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    calls = {node.func.attr for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)}
    assert "argparse" not in imported and not {"ArgumentParser", "add_argument", "add_parser"} & calls


# the subpackages in their order of dependence: a module may import its own layer and those before it
LAYERS = {"paper": 0, "config": 0, "paths": 0, "version": 0, "data": 1, "training": 2, "provenance": 2,
          "evaluation": 3, "studies": 4, "cli": 5, "__main__": 6}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """The imports (module level and inside functions) from a layer to a later one."""
    def layer(module: str) -> int:
        parts = module.split(".")
        return LAYERS[parts[1]] if len(parts) > 1 else len(LAYERS)  # the package's __init__ comes last

    return sorted(f"{a} -> {b}" for a, imported in graph.items() for b in imported
                  if b.startswith("n2n_core.") and a != "n2n_core" and layer(b) > layer(a))


def test_the_subpackages_import_downwards_only():
    # paper, data, training, evaluation, studies, cli: a reader meets each before what uses it
    graph = import_graph(lazy=True)
    assert {name.split(".")[1] for name in graph if name.count(".")} <= set(LAYERS)
    assert upward_imports(graph) == []
    assert upward_imports({"n2n_core.data.x": {"n2n_core.studies.y"}}) == ["n2n_core.data.x -> n2n_core.studies.y"]


def test_the_length_check_counts_from_def_to_the_last_line(tmp_path):
    def function(name: str, lines: int, indent: str = "") -> str:
        return f"{indent}def {name}():\n" + "".join(f"{indent}    x = {i}\n" for i in range(lines - 1))

    package = tmp_path / "n2n_core"
    package.mkdir()
    (package / "a.py").write_text("import functools\n\n\n@functools.cache\n@functools.wraps(print)\n"  # lines 1-5
                                  + function("fits", 60) + "\n\nclass C:\n" + function("method", 61, "    "))
    assert long_functions(package) == ["n2n_core/a.py:69 method: 61 lines"]
    assert long_functions(package, limit=59) == ["n2n_core/a.py:6 fits: 60 lines", "n2n_core/a.py:69 method: 61 lines"]


def module_walk(call) -> dict[str, list[str]]:
    """Run ``call`` and return, for each n2n_core module, the deepest call stack in which it came
    back most often: the stack's n2n_core modules, consecutive frames of one module counted once.
    A module listed twice in a stack was entered, left for another, and entered again."""
    import collections
    import sys

    root = PACKAGE.resolve()

    @functools.cache
    def module_of(filename: str) -> str | None:
        try:
            parts = list(Path(filename).resolve().relative_to(root).with_suffix("").parts)
        except ValueError:
            return None
        return ".".join(["n2n_core", *(parts[:-1] if parts[-1] == "__init__" else parts)])

    worst: dict[str, list[str]] = {}

    def profile(frame, event, arg):
        if event != "call" or module_of(frame.f_code.co_filename) is None:
            return
        stack = []
        while frame is not None:
            module = module_of(frame.f_code.co_filename)
            if module and (not stack or stack[-1] != module):
                stack.append(module)
            frame = frame.f_back
        for module, count in collections.Counter(stack).items():
            if count > worst.get(module, [None]).count(module):
                worst[module] = stack[::-1]

    sys.setprofile(profile)
    try:
        call()
    finally:
        sys.setprofile(None)
    return worst


def test_one_run_enters_each_module_at_most_twice(data_folder, output_dir, monkeypatch, tiny_profile):
    # a notebook's run: patches, experiment.train (to the saved checkpoint), its evaluation
    from n2n_core.studies import experiment
    from n2n_core.training.runtime import Runtime

    monkeypatch.setenv("N2N_DATA_DIR", str(data_folder))
    experiment.prepare_patches(tiny_profile, seed=0)
    rt = Runtime.resolve("cpu")

    def run():
        trained = experiment.train("unet", "noisy", tiny_profile, seed=0, rt=rt, progress=False)
        experiment.evaluate_run(trained.model, tiny_profile, rt=rt)

    walk = module_walk(run)
    assert {"n2n_core.training.train", "n2n_core.training.checkpoint", "n2n_core.evaluation.protocol",
            "n2n_core.paper.models.unet", "n2n_core.data.sources"} <= set(walk)
    again = {module: " -> ".join(stack) for module, stack in walk.items() if stack.count(module) > 2}
    assert again == {}, again
