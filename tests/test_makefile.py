"""`make all` re-executes a notebook only when something it uses changed: tools/notebook_deps.py finds
the package modules and shipped weights each notebook uses, and the Makefile includes its rules."""
from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import copy_checkout, make_env

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "tools" / "notebook_deps.py"
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
CLI_USERS = {"06_your_own_data", "09_single_capture"}
TRAINING = {"02_noise2noise_resnet", "03_noise2noise_unet", "04_discriminative_unet", "05_paper_table",
            "07_losses_text_impulse", "08_brown_noise", "09_single_capture", "10_capture_budget"}


def deps(root: Path = ROOT) -> dict[str, set[str]]:
    """The script's rules, run as the Makefile runs it: notebook -> its prerequisites."""
    out = subprocess.run([sys.executable, "-I", str(SCRIPT), "--root", str(root)],
                         capture_output=True, text=True, check=True).stdout
    rules = {}
    for line in out.splitlines():
        if line.startswith("$(REPORTS)/"):
            target, prerequisites = line.split(":", 1)
            rules[Path(target).stem] = set(prerequisites.split())
    return rules


@pytest.fixture(scope="module")
def rules() -> dict[str, set[str]]:
    return deps()


def test_the_script_needs_only_the_standard_library():
    """It runs with the system python before .venv exists: no n2n_core, no torch, nothing installed."""
    tree = ast.parse(SCRIPT.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert imported - {"__future__"} <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)


def test_every_notebook_has_a_rule(rules):
    assert sorted(rules) == NOTEBOOKS
    assert all(f"notebooks/{name}.ipynb" in rules[name] for name in NOTEBOOKS)


def test_the_unet_notebook_depends_on_what_it_runs_and_not_on_the_command_line(rules):
    uses = rules["03_noise2noise_unet"]
    assert {"n2n_core/__init__.py", "n2n_core/studies/experiment.py", "n2n_core/training/train.py", "n2n_core/evaluation/plots.py"} <= uses
    # imported by a module it imports (experiment -> models), a package's __init__ included, and lazily
    # inside a function (experiment.paper_table -> table)
    assert {"n2n_core/paper/models/__init__.py", "n2n_core/paper/models/unet.py", "n2n_core/paper/noise/types.py",
            "n2n_core/evaluation/table.py"} <= uses
    assert not {"n2n_core/cli/parser.py", "n2n_core/__main__.py", "n2n_core/studies/yourdata.py"} & uses
    assert not any(p.startswith("checkpoints/") for p in uses)


def test_the_notebooks_that_run_the_command_line_depend_on_it(rules):
    """06 and 09 call yourdata.cli, which starts `python -m n2n_core`: __main__.py, cli.py and what
    their commands import (training.own for `n2n train`); the others do not."""
    users = {name for name, uses in rules.items() if "n2n_core/cli/parser.py" in uses}
    assert users == CLI_USERS
    for name in CLI_USERS:
        assert {"n2n_core/__main__.py", "n2n_core/data/sources.py", "n2n_core/studies/yourdata.py"} <= rules[name]


def test_the_shipped_weights_a_notebook_names_are_prerequisites(rules):
    gaussian = "checkpoints/pretrained/unet_gaussian_blind.pth"
    assert gaussian in rules["00_quickstart"] and gaussian in rules["06_your_own_data"]  # weights=, init=
    assert "checkpoints/pretrained/unet_poisson_blind.pth" not in rules["00_quickstart"]  # named in a comment only
    assert not any(p.startswith("checkpoints/") for name in TRAINING - {"09_single_capture"} for p in rules[name])


def test_a_command_line_started_from_a_notebook_and_unknown_weights(tmp_path):
    """A notebook that starts `n2n` itself (subprocess or a shell line) depends on the command line;
    'pretrained:' with a name the script cannot read depends on every shipped weights file."""
    shutil.copytree(ROOT / "n2n_core", tmp_path / "n2n_core", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "checkpoints" / "pretrained").mkdir(parents=True)
    for noise in ("gaussian", "poisson"):
        (tmp_path / "checkpoints" / "pretrained" / f"unet_{noise}_blind.pth").write_bytes(b"")
    cells = {"a": ['import subprocess\n', 'subprocess.run(["n2n", "denoise", "x.png"])'],
             "b": ['!n2n eval pretrained:gaussian --sigma 25'],
             "c": ['from n2n_core import paths\n', 'noise = "poisson"\n', 'weights = f"pretrained:{noise}"'],
             "d": ['from n2n_core.paper.noise import GaussianNoise\n', 'methods = ["n2n", "clean"]']}
    (tmp_path / "notebooks").mkdir()
    for name, source in cells.items():
        cell = {"cell_type": "code", "source": source, "metadata": {}, "outputs": [], "execution_count": None}
        (tmp_path / "notebooks" / f"{name}.ipynb").write_text(
            json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    rules = deps(tmp_path)
    assert "n2n_core/cli/parser.py" in rules["a"] and "n2n_core/cli/parser.py" in rules["b"]
    assert not any(p.startswith("checkpoints/") for p in rules["b"])  # a shell line's words are not read
    assert {"checkpoints/pretrained/unet_gaussian_blind.pth", "checkpoints/pretrained/unet_poisson_blind.pth"} <= rules["c"]
    assert "n2n_core/paths.py" in rules["c"] and "n2n_core/cli/parser.py" not in rules["c"]
    # a list that starts with "n2n" is not a command line unless a process is started with it
    assert "n2n_core/cli/parser.py" not in rules["d"] and "n2n_core/paper/noise/__init__.py" in rules["d"]


# ------------------------------------------------------------------------------ make -n all
@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A copy of the repository's files (no .venv) in which every notebook of the smoke profile looks
    executed: its report is newer than the code, the weights, the patch sets and the environment's
    stamps, so `make -n all` has nothing to run."""
    made = [".venv/.installed", ".venv/.bm3d", "data/patches_smoke_seed0.pt"]
    copy = copy_checkout(tmp_path_factory.mktemp("checkout"),
                         made + [f"reports/smoke/{name}.ipynb" for name in NOTEBOOKS])
    assert _executed(copy) == set()
    return copy


def _executed(copy: Path, *touched: str) -> set[str]:
    """The notebooks that `make -n all PROFILE=smoke` would execute after ``touched`` changed."""
    for name in touched:
        os.utime(copy / name)
    try:
        done = subprocess.run(["make", "-n", "all", "PROFILE=smoke"], cwd=copy, capture_output=True, text=True,
                              env=make_env(), timeout=60)
    finally:
        past = time.time() - 3600
        for name in touched:
            os.utime(copy / name, (past, past))
    assert done.returncode == 0, done.stderr
    assert "pip install" not in done.stdout  # the environment's stamps are taken as they are
    return set(re.findall(r"papermill .* notebooks/(\w+)\.ipynb", done.stdout))


def test_editing_the_command_line_re_executes_only_the_notebooks_that_run_it(checkout):
    assert _executed(checkout, "n2n_core/cli/parser.py") == CLI_USERS
    assert _executed(checkout, "n2n_core/__main__.py") == CLI_USERS


def test_editing_training_code_re_executes_the_notebooks_that_import_it(checkout):
    # every notebook imports experiment, which imports train; studies only 07 to 10
    assert _executed(checkout, "n2n_core/training/train.py") >= TRAINING
    assert _executed(checkout, "n2n_core/studies/methods.py") == {"07_losses_text_impulse", "08_brown_noise",
                                                          "09_single_capture", "10_capture_budget"}
    assert _executed(checkout, "n2n_core/studies/yourdata.py") == CLI_USERS


def test_editing_docs_re_executes_nothing(checkout):
    assert _executed(checkout, "README.md") == set()
    assert _executed(checkout, "checkpoints/pretrained/README.md") == set()
    assert _executed(checkout, "checkpoints/pretrained/unet_gaussian_blind.pth") == {"00_quickstart", "06_your_own_data",
                                                                                      "11_real_noise"}


def test_a_notebook_that_reads_what_another_wrote_runs_again_after_it(checkout):
    """Re-executing 01 leaves the patch sets as they are (it reuses them): nothing after it runs again;
    patch sets cut again re-execute every notebook that trains on them; 04 reads 03's recorded PSNR;
    the claims table, rewritten by 11 last, has rows from 05's Table 1."""
    assert _executed(checkout, "notebooks/01_data_augmentation.ipynb") == {"01_data_augmentation"}
    # 05 trains on them, and 11, the claims table's last writer, follows 05
    assert _executed(checkout, "data/patches_smoke_seed0.pt") == TRAINING | {"11_real_noise"}
    assert _executed(checkout, "notebooks/03_noise2noise_unet.ipynb") == {"03_noise2noise_unet", "04_discriminative_unet"}
    assert _executed(checkout, "notebooks/05_paper_table.ipynb") == {"05_paper_table", "11_real_noise"}


def test_missing_patch_sets_are_cut_again_by_notebook_01(checkout):
    patches = checkout / "data" / "patches_smoke_seed0.pt"
    stat = patches.stat()
    patches.unlink()
    try:
        assert _executed(checkout) == {"01_data_augmentation", "11_real_noise"} | TRAINING
    finally:
        patches.write_text("{}")
        os.utime(patches, (stat.st_atime, stat.st_mtime))


def test_the_notebooks_run_in_order(checkout):
    done = subprocess.run(["make", "-n", "all", "PROFILE=smoke", "-B"], cwd=checkout, capture_output=True,
                          text=True, env=make_env(), timeout=60)
    order = re.findall(r"papermill .* notebooks/(\w+)\.ipynb", done.stdout)
    assert order == NOTEBOOKS, done.stdout[-3000:]
