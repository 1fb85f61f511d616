"""What `make all` runs headless: the papermill command of each notebook, and that it finishes."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def _papermill_line(notebook: str, tmp_path: Path) -> list[str]:
    out = subprocess.run(["make", "-n", "-B", f"reports/smoke/{notebook}.ipynb", "PROFILE=smoke",
                          f"VENV={Path(sys.executable).parent.parent}"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    lines = [line for line in out.splitlines() if "papermill" in line and f"notebooks/{notebook}.ipynb" in line]
    assert len(lines) == 1, out
    return shlex.split(lines[0])


def test_make_all_runs_the_quickstart_without_its_slider_and_it_finishes(tmp_path):
    """papermill waits forever on an ipywidgets slider (nteract/papermill#723), which once hung
    `make all` at its first notebook: the Makefile passes slider=False, and the run ends."""
    command = _papermill_line("00_quickstart", tmp_path)
    assert "slider" in command and command[command.index("slider") + 1] == "False"
    assert "slider" not in _papermill_line("02_noise2noise_resnet", tmp_path)  # only where it is a parameter
    command[-1] = str(tmp_path / "00_quickstart.ipynb")  # the executed copy goes here, not to reports/
    command[0] = str(Path(sys.executable).parent / "papermill")
    env = {**os.environ, "N2N_OUTPUT_DIR": str(tmp_path)}  # its figure too
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "00_quickstart.ipynb").stat().st_size > 10_000


def test_the_slider_parameter_is_declared_in_the_parameters_cell():
    import json

    cells = json.loads((ROOT / "notebooks" / "00_quickstart.ipynb").read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and "slider = True" in "".join(tagged[0]["source"])


def test_a_relative_data_folder_is_taken_from_where_make_runs(tmp_path):
    """papermill runs each notebook in notebooks/: `N2N_DATA_DIR=../shared/datasets make all` once
    made them look for ../../shared and fail; the Makefile exports the folder made absolute."""
    def exported(arguments: bool = False, **env) -> str:
        """What a recipe sees, the folders given in make's environment or on its command line."""
        given = [f"{k}={v}" for k, v in env.items()] if arguments else []
        done = subprocess.run(["make", "-s", "--eval", "show: ; @echo \"$$N2N_DATA_DIR|$$N2N_OUTPUT_DIR\"", "show",
                               *given], cwd=ROOT, capture_output=True, text=True, check=True,
                              env={k: v for k, v in os.environ.items() if not k.startswith("N2N_")}
                              | ({} if arguments else env))
        return done.stdout.strip()

    for arguments in (False, True):  # N2N_DATA_DIR=... make all, and make all N2N_DATA_DIR=...
        data, out = exported(arguments, N2N_DATA_DIR="../shared/data sets", N2N_OUTPUT_DIR="runs/one").split("|")
        assert Path(data).is_absolute() and Path(out).is_absolute(), (arguments, data, out)
        assert Path(data).resolve() == (ROOT.parent / "shared" / "data sets").resolve(), arguments
        assert Path(out).resolve() == (ROOT / "runs" / "one").resolve(), arguments
        assert exported(arguments, N2N_DATA_DIR="/abs/data", N2N_OUTPUT_DIR="~/out") == "/abs/data|~/out"
    assert exported() == "|"
