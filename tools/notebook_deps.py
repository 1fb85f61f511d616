#!/usr/bin/env python3
"""Make rules saying what each notebook uses: the n2n_core modules it runs and the shipped weights it
reads, so that `make all` re-executes a notebook only when something it uses changed.

    python3 tools/notebook_deps.py [--root DIR] [--out FILE] [NOTEBOOK ...]

writes, for every notebook (default: notebooks/*.ipynb),

    $(REPORTS)/NN_name.ipynb: notebooks/NN_name.ipynb <modules...> <weights...>

What a notebook uses, read from its code cells (nothing is executed):
  - the n2n_core modules its imports name, and their closure over the package's own imports:
    `from . import x`, `from .x import y`, `from ..x import y`, `import n2n_core.x`, `from n2n_core.x
    import y`, at any depth of the syntax tree (an import inside a function runs when the function
    does), with the __init__.py of every package on the way (importing n2n_core.paper.models.unet runs
    n2n_core/__init__.py and n2n_core/paper/models/__init__.py);
  - the command line, where the notebook or a module it uses starts it in a new process: a list such
    as [sys.executable, "-m", "n2n_core", ...] or ["n2n", ...] (how yourdata.cli runs it), or a shell
    line `!n2n ...` / `!python -m n2n_core ...`. That stands for importing n2n_core.__main__, whose
    commands (cli/main.py) import the parser and the rest lazily;
  - the shipped weights: a string "pretrained:NAME" in the notebook's code (its parameters included)
    reads checkpoints/pretrained/unet_NAME_blind.pth (checkpoint.pretrained_path); a mention of
    "pretrained:" that names no known file (an f-string) depends on every checkpoints/pretrained/*.pth.
    Weights that the package picks by itself (`n2n denoise` without --checkpoint) are not followed.

Part of the build, like the Makefile, not of the library: it runs with the system python3 before the
virtual environment exists, so it uses the standard library only and imports nothing from n2n_core.
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from pathlib import Path

PACKAGE = "n2n_core"
CLI_MODULE = f"{PACKAGE}.__main__"
PRETRAINED = "pretrained:"
PROCESS_CALLS = {"run", "Popen", "call", "check_call", "check_output", "system", "execvp", "spawnvp"}
SHELL_CLI = re.compile(r"^\s*!\s*(n2n\b|\S*python\S*\s+-m\s+n2n_core\b)")


class Package:
    """The modules of the package under ``root``: dotted name -> file."""

    def __init__(self, root: Path):
        self.root = root
        self.files: dict[str, Path] = {}
        for path in sorted((root / PACKAGE).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            if all((root / Path(*parts[:i]) / "__init__.py").is_file() for i in range(1, len(parts) + 1)
                   if (root / Path(*parts[:i])).is_dir()):
                self.files[".".join(parts)] = path
        self._imports: dict[str, set[str]] = {}

    def is_package(self, name: str) -> bool:
        return name in self.files and self.files[name].name == "__init__.py"

    def with_parents(self, name: str) -> set[str]:
        """``name`` and every package above it: importing a module runs their __init__.py first."""
        parts = name.split(".")
        return {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & set(self.files)

    def resolve(self, stem: str, names: list[str]) -> set[str]:
        """The modules that `from stem import names` runs: stem's, and each name that is a module."""
        found = set()
        if stem in self.files:
            found |= self.with_parents(stem)
        for name in names:
            if f"{stem}.{name}" in self.files:
                found |= self.with_parents(f"{stem}.{name}")
        return found

    def imports_of(self, name: str) -> set[str]:
        """The package's modules that module ``name`` imports, or runs as the command line."""
        if name not in self._imports:
            path = self.files[name]
            here = name.split(".") if self.is_package(name) else name.split(".")[:-1]
            self._imports[name] = imported_modules(self, parse(path.read_text(), path), here) - {name}
        return self._imports[name]

    def closure(self, start: set[str]) -> set[str]:
        seen, todo = set(), list(start)
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(self.imports_of(name) - seen)
        return seen


def parse(source: str, where: Path) -> ast.AST:
    try:
        return ast.parse(source, str(where))
    except SyntaxError as err:
        sys.exit(f"{where}: cannot parse line {err.lineno}: {err.msg}")


def imported_modules(package: Package, tree: ast.AST, here: list[str]) -> set[str]:
    """The package's modules that the code in ``tree`` imports (``here``: the package it sits in, for
    relative imports; [] for a notebook), the command line's entry point where it starts it."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - node.level + 1]
                stem = ".".join(base + (node.module.split(".") if node.module else []))
            else:
                stem = node.module or ""
            if stem == PACKAGE or stem.startswith(PACKAGE + "."):
                found |= package.resolve(stem, [alias.name for alias in node.names])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    found |= package.with_parents(alias.name)
        elif starts_cli(node):
            found |= package.with_parents(CLI_MODULE)
    return found


def starts_cli(node: ast.AST) -> bool:
    """A command line of the package: a list [..., "-m", "n2n_core", ...] anywhere, or ["n2n", ...]
    given to a call that starts a process (subprocess.run, Popen, check_output, ...; elsewhere "n2n"
    is the name of a method of training)."""
    if isinstance(node, (ast.List, ast.Tuple)):
        words = [word(e) for e in node.elts]
        return any(a == "-m" and b == PACKAGE for a, b in zip(words, words[1:]))
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], (ast.List, ast.Tuple)):
        name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        return name in PROCESS_CALLS and bool(node.args[0].elts) and word(node.args[0].elts[0]) == "n2n"
    return False


def word(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def code_cells(notebook: Path) -> list[str]:
    cells = json.loads(notebook.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def notebook_uses(package: Package, notebook: Path) -> tuple[set[str], set[Path]]:
    """The modules (closure) and the shipped weights that ``notebook`` uses."""
    start, weights = set(), set()
    for source in code_cells(notebook):
        shell = [line for line in source.splitlines() if line.lstrip().startswith(("!", "%"))]
        if any(SHELL_CLI.match(line) for line in shell):
            start |= package.with_parents(CLI_MODULE)
        python = "\n".join("" if line.lstrip().startswith(("!", "%")) else line for line in source.splitlines())
        start |= imported_modules(package, parse(python, notebook), [])
        weights |= shipped_weights(package.root, parse(python, notebook))
    return package.closure(start), weights


def shipped_weights(root: Path, tree: ast.AST) -> set[Path]:
    """The shipped weights that the strings in ``tree`` name (comments are not read)."""
    folder = root / "checkpoints" / "pretrained"
    weights = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            for match in re.finditer(re.escape(PRETRAINED) + r"(\w*)", node.value):
                path = folder / f"unet_{match.group(1)}_blind.pth"
                weights |= {path} if match.group(1) and path.is_file() else set(folder.glob("*.pth"))
    return weights


def rules(root: Path, notebooks: list[Path]) -> str:
    package = Package(root)
    lines = [f"# What each notebook uses, written by tools/notebook_deps.py from the notebooks' code: do not edit"]
    for notebook in notebooks:
        modules, weights = notebook_uses(package, notebook)
        files = sorted(str(package.files[m].relative_to(root)) for m in modules)
        files += sorted(str(w.relative_to(root)) for w in weights)
        lines.append(f"$(REPORTS)/{notebook.name}: " + " ".join([str(notebook.relative_to(root)), *files]))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/*.ipynb")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="the repository (default: the one this script is in)")
    parser.add_argument("--out", type=Path, help="write the rules here (default: standard output)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    notebooks = [n.resolve() for n in args.notebooks] or sorted((root / "notebooks").glob("*.ipynb"))
    text = rules(root, notebooks)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
