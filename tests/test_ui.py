"""The notebooks as a person uses them, in a real browser (`make test-ui`): JupyterLab on a free
127.0.0.1 port with a random token, on a copy of the notebooks in a temporary folder (nothing tracked
changes), driven in headless Chromium by Playwright. Notebook 00 runs whole with no error output and
one slider; moving the slider redraws the denoised panel and leaves the clean one as it was. Then
notebook 01 runs whole. The browser is the one on PATH (`chromium`) or named by N2N_CHROMIUM, never
downloaded; without one the test is skipped. N2N_SCREENSHOT names where the screenshot of notebook
00 goes."""
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
from pathlib import Path

import pytest

from test_lab import KERNEL, free_port, lab_command

ROOT = Path(__file__).parent.parent
CHROMIUM = os.environ.get("N2N_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
# what this machine needs: no sandbox as root, no GPU, and no connection to anything but the page
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]
NOTEBOOK_TIMEOUT_MS = int(os.environ.get("N2N_UI_TIMEOUT_MS", 120_000))

PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook in view

pytestmark = pytest.mark.skipif(os.environ.get("N2N_UI") != "1", reason="the browser test: make test-ui")

SETTINGS = {  # every cell rendered (not only those in view), and no news fetched
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none",
                                                                    "autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(base URL, token) of JupyterLab serving a copy of notebooks/ 00 and 01, as `make lab` starts it."""
    if not CHROMIUM or not Path(CHROMIUM).exists():
        pytest.skip("no Chromium found: apt-get install chromium, or N2N_CHROMIUM=/path/to/chromium")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    tmp = tmp_path_factory.mktemp("ui")
    (tmp / "notebooks").mkdir()
    for name in ("00_quickstart", "01_data_augmentation"):
        shutil.copyfile(ROOT / "notebooks" / f"{name}.ipynb", tmp / "notebooks" / f"{name}.ipynb")
    for name, values in SETTINGS.items():
        (tmp / "settings" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "settings" / name).write_text(json.dumps(values))
    port, token = free_port(), os.urandom(16).hex()
    command = lab_command(PORT=str(port), TOKEN=token)
    command[0] = str(Path(sys.executable).parent / "jupyter")
    command = [a for a in command if not a.startswith("--notebook-dir")] + [f"--notebook-dir={tmp}",
                                                                             "--ServerApp.open_browser=False",
                                                                             "--LabApp.expose_app_in_browser=True"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "N2N_OUTPUT_DIR": str(tmp / "out"), "N2N_PROFILE": "smoke",
           "N2N_OFFLINE": "1", "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp / "config"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces")}
    log = open(tmp / "lab.log", "w")
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{base}/api/status?token={token}", server, tmp / "lab.log")
        yield base, token
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _wait_for(url: str, server: subprocess.Popen, log: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, OSError):
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)


@pytest.fixture(scope="module")
def page(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--headless", *FLAGS])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(60_000)
        yield page
        browser.close()


def run_notebook(page, lab, name: str) -> None:
    """Open notebooks/``name`` in JupyterLab, run all its cells, and wait until every code cell ran."""
    base, token = lab
    page.goto(f"{base}/lab/tree/notebooks/{name}.ipynb?token={token}")
    page.locator(".jp-NotebookPanel .jp-CodeCell").first.wait_for()
    page.wait_for_function("() => window.jupyterapp !== undefined")
    select = page.locator(".jp-Dialog .jp-mod-accept")  # the kernel dialog, where the setting is not taken
    if select.count():
        select.click()
    page.wait_for_selector(f'{PANEL} .jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=NOTEBOOK_TIMEOUT_MS)
    # once more, the kernel now started: the first connection to a kernel that is starting is at times
    # refused by the server and retried, and widget outputs then never reach the page
    page.reload()
    page.locator(".jp-NotebookPanel .jp-CodeCell").first.wait_for()
    page.wait_for_function("() => window.jupyterapp !== undefined")
    page.evaluate(RUN_ALL)
    page.locator(".jp-Dialog .jp-mod-accept").click()  # restart the kernel? yes
    prompts = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt")
    try:
        page.wait_for_function(
            """() => { const p = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt')];
                       return p.length > 0 && p.every(e => /\\[\\d+\\]/.test(e.textContent)); }""",
            timeout=NOTEBOOK_TIMEOUT_MS)
    except Exception:
        page.screenshot(path=str(lab_root(lab) / f"{name}.failed.png"), full_page=True)
        raise AssertionError(f"{name} did not finish: prompts {prompts.all_inner_texts()}, errors {errors(page)}")


# Kernel > Restart Kernel and Run All Cells, once the notebook in view has its kernel connected
RUN_ALL = """async () => {
    const app = window.jupyterapp, panel = app.shell.currentWidget;
    await panel.sessionContext.ready;
    const connected = () => panel.sessionContext.session?.kernel?.connectionStatus === 'connected';
    while (!connected()) await new Promise(resolve => setTimeout(resolve, 200));
    app.commands.execute('notebook:restart-run-all');  // not awaited: it waits for its dialog
}"""


def errors(page) -> list[str]:
    """The error outputs (tracebacks) of the notebook in view."""
    outputs = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output'
                           '[data-mime-type="application/vnd.jupyter.stderr"]')
    return [text for text in outputs.all_inner_texts() if "Error" in text or "Traceback" in text]


def figure(page):
    """The slider's figure, decoded: an H x W x 3 array."""
    import numpy as np
    from PIL import Image

    src = page.locator(".widget-interact .jp-OutputArea-output img").last.get_attribute("src")
    return src, np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).convert("RGB"), dtype=float)


def test_notebook_00_s_slider_redraws_the_denoised_panel_and_notebook_01_runs(page, lab):
    run_notebook(page, lab, "00_quickstart")
    assert errors(page) == []
    sliders = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .widget-slider")
    assert sliders.count() == 1
    try:
        page.locator(".widget-interact .jp-OutputArea-output img").last.wait_for(timeout=NOTEBOOK_TIMEOUT_MS)
    except Exception:
        page.screenshot(path=str(lab_root(lab) / "debug.png"))
        (lab_root(lab) / "debug.html").write_text(page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").nth(7).inner_html())
        raise
    before_src, before = figure(page)
    readout = sliders.locator(".widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("50")
    page.keyboard.press("Enter")
    page.wait_for_function("""old => { const i = [...document.querySelectorAll('.widget-interact .jp-OutputArea-output img')].pop();
                                      return i && i.getAttribute('src') !== old; }""", arg=before_src, timeout=60_000)
    _, after = figure(page)
    assert before.shape == after.shape
    third = before.shape[1] // 3
    clean, denoised = (abs(after[:, s] - before[:, s]).mean() for s in (slice(0, third), slice(2 * third, None)))
    assert clean < 0.5 and denoised > 2.0, (clean, denoised)
    save_screenshot(page, Path(os.environ.get("N2N_SCREENSHOT") or lab_root(lab) / "quickstart.png"))
    run_notebook(page, lab, "01_data_augmentation")
    assert errors(page) == []


def lab_root(lab) -> Path:
    path = ROOT / "reports" / "ui"
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_screenshot(page, path: Path) -> None:
    """The slider and its figure, as a small PNG (palette of 128 colours, 960 px wide)."""
    from PIL import Image

    page.locator(".widget-interact").last.scroll_into_view_if_needed()
    page.mouse.move(0, 0)
    shot = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    shot = shot.resize((960, round(shot.height * 960 / shot.width)), Image.LANCZOS)
    path.parent.mkdir(parents=True, exist_ok=True)
    shot.quantize(colors=128).save(path, optimize=True)
