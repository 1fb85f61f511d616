"""`make lab` and the notebooks' kernel: JupyterLab on 127.0.0.1 with a token, as root too; the
notebooks name the project's kernel (registered inside .venv by `make env`), say in their first cell
when n2n_core comes from another checkout, and are committed without outputs."""
from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
KERNEL = re.search(r"^KERNEL := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE).group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_command(**variables: str) -> list[str]:
    """The command `make lab` runs, as make prints it (continuation lines joined)."""
    args = [f"{k}={v}" for k, v in variables.items()]
    out = subprocess.run(["make", "-n", "lab", f"VENV={Path(sys.executable).parent.parent}", *args], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    joined = out.replace("\\\n", " ")
    lines = [line for line in joined.splitlines() if "jupyter lab" in line]
    assert len(lines) == 1, out
    return shlex.split(lines[0])


def test_the_lab_command_listens_on_loopback_with_a_token_and_allows_root_only_as_root():
    command = lab_command(PORT="8123", TOKEN="secret")
    assert "--ServerApp.ip=127.0.0.1" in command and "--ServerApp.port=8123" in command
    assert "--IdentityProvider.token=secret" in command and not any("ServerApp.token" in a for a in command)
    assert ("--allow-root" in command) == (os.getuid() == 0)
    assert f"--MappingKernelManager.default_kernel_name={KERNEL}" in command
    assert not any("token" in a.lower() for a in lab_command())  # no TOKEN: JupyterLab draws one and prints it


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, b""


@pytest.mark.skipif(not (Path(sys.prefix) / "share/jupyter/kernels" / KERNEL / "kernel.json").is_file(),
                    reason="the project's kernel is not registered (make env registers it)")
def test_make_lab_serves_its_api_with_the_token_and_the_project_kernel(tmp_path):
    port, token = free_port(), os.urandom(12).hex()
    command = lab_command(PORT=str(port), TOKEN=token)
    command[0] = str(Path(sys.executable).parent / "jupyter")
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    server = subprocess.Popen([*command, "--ServerApp.open_browser=False"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "lab.log", "w"))
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                status, body = get(f"{base}/api/status?token={token}")
                break
            except (urllib.error.URLError, ConnectionError, socket.timeout):
                assert server.poll() is None, (tmp_path / "lab.log").read_text()[-3000:]
                assert time.monotonic() < deadline, (tmp_path / "lab.log").read_text()[-3000:]
                time.sleep(0.5)
        assert status == 200 and "started" in json.loads(body)
        assert get(f"{base}/api/status")[0] == 403  # no token, no API
        specs = json.loads(get(f"{base}/api/kernelspecs?token={token}")[1])
        assert specs["default"] == KERNEL and KERNEL in specs["kernelspecs"]
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_notebook_names_the_project_kernel_and_is_committed_without_outputs(notebook):
    nb = json.loads(notebook.read_text())
    assert nb["metadata"]["kernelspec"]["name"] == KERNEL
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "paths.note_checkout()" in "".join(code[0]["source"]), "the first code cell says where n2n_core comes from"
    dirty = [i for i, c in enumerate(code) if c.get("outputs") or c.get("execution_count") is not None]
    assert not dirty, f"{notebook.name}: outputs or execution counts in code cells {dirty} (make env strips them on commit)"


def test_the_notebooks_run_with_the_project_kernel_under_make():
    out = subprocess.run(["make", "-n", "-B", "reports/smoke/02_noise2noise_resnet.ipynb", "PROFILE=smoke"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert f"papermill --cwd notebooks -k {KERNEL} " in out and "-k python3" not in out


def test_the_git_filter_is_named_for_notebooks():
    attributes = (ROOT / ".gitattributes").read_text()
    assert re.search(r"^\*\.ipynb filter=nbstripout\b", attributes, re.MULTILINE)


def test_a_notebook_says_when_n2n_core_comes_from_another_checkout(tmp_path, capsys):
    from n2n_core import paths

    other = tmp_path / "clone"
    (other / "notebooks").mkdir(parents=True)
    (other / "n2n_core").mkdir()
    paths.note_checkout(other / "notebooks")
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and str(other) in line and str(paths.PROJECT_ROOT) in line
    paths.note_checkout(paths.PROJECT_ROOT / "notebooks")  # this checkout: nothing to say
    paths.note_checkout(tmp_path)  # no checkout at all: nothing either
    assert capsys.readouterr().out == ""
