"""The notebooks as a person uses them, in a real browser (`make test-ui`): JupyterLab as `make lab`
starts it, on a free 127.0.0.1 port with a random token, serving a copy of notebooks 00 and 01 in a
temporary folder (nothing in the checkout changes), driven in headless Chromium by Playwright.
Notebook 00 runs whole on the project's kernel with no error output and one slider; dragging the
slider redraws the denoised panel and leaves the clean one as it was. Then notebook 01 runs whole.

The browser is the one on PATH (`chromium`) or named by N2N_CHROMIUM, never downloaded; without one
the test is skipped. Every wait is bounded by what is left of N2N_UI_BUDGET_S seconds (3 minutes),
so that a failure, too, ends in that time.
N2N_UI_SCREENSHOT names a PNG to write of notebook 00 after the slider moved (the README's picture);
failure screenshots go into the test's temporary folder, named in the failure."""
from __future__ import annotations

import base64
import io
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from test_lab import KERNEL, free_port, lab_command

ROOT = Path(__file__).parent.parent
CHROMIUM = os.environ.get("N2N_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
# what this machine needs: no sandbox as root, no GPU, and no connection to anything but the page
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]
BUDGET_S = float(os.environ.get("N2N_UI_BUDGET_S", 180))
REDRAW_S = 60  # one denoising of the photograph, on a busy CPU
NOTEBOOKS = ("00_quickstart", "01_data_augmentation")
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook in view

pytestmark = pytest.mark.skipif(os.environ.get("N2N_UI") != "1", reason="the browser test: make test-ui")

SETTINGS = {  # every cell rendered (not only those in view), the notebook's kernel started, no news fetched
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none",
                                                                    "autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
}
# The kernel inherits the server's environment. This test session's headless matplotlib backend
# (MPLBACKEND=Agg, conftest) would make every figure invisible; a person's `make lab` has none, and
# the kernel then draws inline. A data folder would make notebook 01 cut real patches: the test runs
# offline on the embedded photographs, as the other tests do.
NOT_INHERITED = ("MPLBACKEND", "N2N_DATA_DIR")


@dataclass
class Lab:
    base: str  # http://127.0.0.1:PORT
    token: str
    folder: Path  # the temporary folder it serves (notebooks/), with its log and failure screenshots
    deadline: float  # time.monotonic() by which the test ends
    checkout: list[str] | None  # the checkout's `git status` when the server started

    def ms_left(self, cap_s: float | None = None) -> float:
        left = self.deadline - time.monotonic()
        assert left > 0, f"the browser test ran out of its {BUDGET_S:.0f} s"
        return 1000 * min(left, cap_s if cap_s is not None else left)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving a copy of notebooks 00 and 01, as `make lab` starts it."""
    if not CHROMIUM or not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at N2N_CHROMIUM={CHROMIUM}" if CHROMIUM else
                    "no chromium on PATH: apt-get install chromium, or N2N_CHROMIUM=/path/to/chromium")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if not (Path(sys.prefix) / "share/jupyter/kernels" / KERNEL / "kernel.json").is_file():
        pytest.skip(f"the project's kernel {KERNEL!r} is not registered (make env registers it)")
    deadline = time.monotonic() + BUDGET_S
    tmp = tmp_path_factory.mktemp("ui")
    (tmp / "notebooks").mkdir()
    for name in NOTEBOOKS:
        shutil.copyfile(ROOT / "notebooks" / f"{name}.ipynb", tmp / "notebooks" / f"{name}.ipynb")
    for name, values in SETTINGS.items():
        (tmp / "settings" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "settings" / name).write_text(json.dumps(values))
    port, token = free_port(), os.urandom(16).hex()
    command = lab_command(PORT=str(port), TOKEN=token)
    command[0] = str(Path(sys.executable).parent / "jupyter")
    command = [a for a in command if not a.startswith("--notebook-dir")] + [
        f"--notebook-dir={tmp}", "--ServerApp.open_browser=False", "--LabApp.expose_app_in_browser=True"]
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    env.update(PYTHONPATH=str(ROOT), N2N_OUTPUT_DIR=str(tmp / "out"), N2N_PROFILE="smoke", N2N_OFFLINE="1",
               JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), JUPYTER_CONFIG_DIR=str(tmp / "config"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"), JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"))
    with open(tmp / "lab.log", "w") as log:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        lab = Lab(f"http://127.0.0.1:{port}", token, tmp, deadline, git_status())
        try:
            _wait_for(f"{lab.base}/api/status?token={token}", server, lab)
            yield lab
        finally:
            server.terminate()
            server.wait(timeout=30)


def git_status() -> list[str] | None:
    """The checkout's `git status` lines, less the screenshot this test may write (None: no git)."""
    try:
        lines = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return None
    shot = Path(os.environ.get("N2N_UI_SCREENSHOT") or os.devnull).resolve()
    return [line for line in lines if not shot.is_relative_to((ROOT / line[3:]).resolve())]


def _wait_for(url: str, server: subprocess.Popen, lab: Lab) -> None:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            assert server.poll() is None and time.monotonic() < lab.deadline, (lab.folder / "lab.log").read_text()[-3000:]
            time.sleep(0.5)


@pytest.fixture(scope="module")
def page(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(30_000)
        yield page
        browser.close()


# the kernel's name once the notebook ``name`` is in view and its kernel connected and idle
# (autoStartDefaultKernel starts the one its metadata names)
KERNEL_READY = """name => {
    const panel = window.jupyterapp?.shell.currentWidget;
    const kernel = panel?.context?.path.endsWith(name) ? panel.sessionContext?.session?.kernel : undefined;
    return kernel?.connectionStatus === 'connected' && kernel.status === 'idle' && kernel.name;
}"""
# every code cell of the notebook in view has run (a number in its prompt), or one failed and the rest
# were cancelled
FINISHED = """() => {
    const prompts = [...document.querySelectorAll('%s .jp-CodeCell .jp-InputArea-prompt')].map(e => e.textContent);
    if (prompts.length === 0 || prompts.some(p => p.includes('*'))) return false;
    return prompts.every(p => /\\[\\d+\\]/.test(p)) || %s.length > 0;
}"""
# the error outputs (exceptions) of the notebook in view, from its model: "Name: message"
ERRORS = """(() => {
    const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
    const outputs = Array.from({length: cells.length}, (_, i) => cells.get(i))
        .filter(cell => cell.type === 'code').flatMap(cell => cell.outputs.toJSON());
    return outputs.filter(o => o.output_type === 'error').map(o => `${o.ename}: ${o.evalue}`);
})()"""


def run_notebook(page, lab: Lab, name: str) -> None:
    """Open notebooks/``name`` in JupyterLab, check it has the project's kernel, run all its cells,
    and wait until every code cell ran; no cell may end in an error."""
    page.goto(f"{lab.base}/lab/tree/notebooks/{name}.ipynb?token={lab.token}")
    try:
        kernel = page.wait_for_function(KERNEL_READY, arg=f"{name}.ipynb", timeout=lab.ms_left()).json_value()
    except Exception as err:
        raise AssertionError(f"{name}: no kernel connected: {err}; {failure_screenshot(page, lab, name)}") from None
    assert kernel == KERNEL, f"{name} runs on kernel {kernel!r}, not the project's {KERNEL!r}"
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    try:
        page.wait_for_function(FINISHED % (PANEL, ERRORS), timeout=lab.ms_left())
    except Exception as err:
        raise AssertionError(f"{name} did not finish: {err}; {failure_screenshot(page, lab, name)}") from None
    assert page.evaluate(ERRORS) == [], f"{name}: error output; {failure_screenshot(page, lab, name)}"


def failure_screenshot(page, lab: Lab, name: str) -> str:
    path = lab.folder / f"{name}.failed.png"
    page.screenshot(path=str(path), full_page=True)
    return f"screenshot {path}, server log {lab.folder / 'lab.log'}"


FIGURE = f"{PANEL} .widget-interact .widget-output .jp-OutputArea-output img"


def figure(page):
    """The slider's figure: its data URL and the decoded H x W x 3 array."""
    import numpy as np
    from PIL import Image

    src = page.locator(FIGURE).get_attribute("src")
    pixels = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB")
    return src, np.asarray(pixels, dtype=float)


def changed(before, after) -> float:
    """The fraction of pixels that differ (the figure is a PNG: a panel drawn again alike is identical)."""
    return float((after != before).any(axis=-1).mean())


def drag(page, slider, fraction: float) -> None:
    """Drag the slider's handle, with the mouse, to ``fraction`` of its track."""
    slider.scroll_into_view_if_needed()
    handle, track = slider.locator(".noUi-handle").bounding_box(), slider.locator(".noUi-base").bounding_box()
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    page.mouse.move(track["x"] + fraction * track["width"], handle["y"] + handle["height"] / 2, steps=8)
    page.mouse.up()


def test_notebook_00_s_slider_redraws_the_denoised_panel_and_notebook_01_runs(page, lab):
    from playwright.sync_api import expect

    run_notebook(page, lab, "00_quickstart")
    sliders = page.locator(f"{PANEL} .widget-slider")
    assert sliders.count() == 1
    try:
        page.locator(FIGURE).wait_for(timeout=lab.ms_left(REDRAW_S))
    except Exception:
        raise AssertionError(f"the slider's figure never appeared; {failure_screenshot(page, lab, '00_quickstart')}") from None
    before_src, before = figure(page)
    readout = sliders.locator(".widget-readout")
    level = readout.inner_text()
    drag(page, sliders, 0.9)
    expect(readout).not_to_have_text(level, timeout=5_000)  # the slider moved
    try:
        page.wait_for_function("([selector, old]) => document.querySelector(selector)?.getAttribute('src') !== old",
                               arg=[FIGURE, before_src], timeout=lab.ms_left(REDRAW_S))
    except Exception:
        raise AssertionError(f"the figure was not redrawn after the slider moved; "
                             f"{failure_screenshot(page, lab, '00_quickstart')}") from None
    page.locator(FIGURE).wait_for(timeout=lab.ms_left(REDRAW_S))
    _, after = figure(page)
    assert before.shape == after.shape
    third = before.shape[1] // 3  # clean, noisy, denoised, side by side; the denoised panel's title alone
    # (its PSNR) covers far fewer than a quarter of its pixels
    clean, denoised = (changed(before[:, s], after[:, s]) for s in (slice(0, third), slice(2 * third, None)))
    assert clean == 0 and denoised > 0.25, f"pixels changed: {clean:.1%} of the clean panel, {denoised:.1%} of the denoised"
    assert page.evaluate(ERRORS) == []
    if os.environ.get("N2N_UI_SCREENSHOT"):
        save_screenshot(page, Path(os.environ["N2N_UI_SCREENSHOT"]))
    run_notebook(page, lab, "01_data_augmentation")
    assert git_status() == lab.checkout, "the checkout changed: the server must serve only the copies"


def save_screenshot(page, path: Path) -> None:
    """Notebook 00 in JupyterLab, the slider and its figure in view: a small PNG (960 px wide,
    128 colours)."""
    from PIL import Image

    page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
    page.locator(f"{PANEL} .widget-interact").scroll_into_view_if_needed()
    page.mouse.move(0, 0)
    shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    shot = shot.resize((960, round(shot.height * 960 / shot.width)), Image.LANCZOS)
    path.parent.mkdir(parents=True, exist_ok=True)
    shot.quantize(colors=128).save(path, optimize=True)
