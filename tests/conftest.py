"""Shared fixtures of the n2n_core test suite.

Every test runs with
  * N2N_OUTPUT_DIR pointing at its own tmp_path (nothing is ever written into the repository),
  * N2N_DATA_DIR removed (tests that want real data ask for the ``real_data_dir`` fixture, which
    skips when the variable was not set when the suite started),
  * N2N_OFFLINE=1 and no proxies, so no test can reach the network by accident (the download test
    passes ``download=True`` explicitly and talks to a server on 127.0.0.1 that it starts itself),
  * matplotlib on the headless Agg backend,
  * torch on one thread (see below).
"""
from __future__ import annotations

import dataclasses
import functools
import os
import shutil
import subprocess
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

os.environ["MPLBACKEND"] = "Agg"

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

# The tensors of these tests are tiny: one thread is as fast, and on a busy 2-core machine the
# spinning of several intra-op threads made the suite 5x slower (73 s instead of 15 s).
torch.set_num_threads(1)

# captured before the autouse fixture removes it from the environment of each test
REAL_DATA_DIR = os.environ.get("N2N_DATA_DIR")

PROXY_VARS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Outputs under tmp_path, no user data folder, no profile override, no network."""
    out = tmp_path / "n2n_output"
    monkeypatch.setenv("N2N_OUTPUT_DIR", str(out))
    for var in ("N2N_DATA_DIR", "N2N_PROFILE", "N2N_KODAK_URL", "N2N_BSDS300_URL", *PROXY_VARS):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("N2N_OFFLINE", "1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return out


@pytest.fixture
def output_dir(isolated_env) -> Path:
    """The folder N2N_OUTPUT_DIR points at during the test."""
    return isolated_env


@pytest.fixture
def generator() -> torch.Generator:
    """A seeded torch.Generator: tests never depend on the global random state."""
    return torch.Generator().manual_seed(20180301)


@pytest.fixture
def real_data_dir() -> Path:
    """The real data folder (kodak/, bsd300/, set14/, train_pool/) or a skip."""
    if not REAL_DATA_DIR or not Path(REAL_DATA_DIR).is_dir():
        pytest.skip("N2N_DATA_DIR is not set: real-image tests skipped")
    return Path(REAL_DATA_DIR)


# ------------------------------------------------------------------------------- synthetic images
def smooth_image(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth, asymmetric H x W x 3 uint8 photograph stand-in: low-frequency gradients and waves
    whose phases depend on ``seed``."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = []
    for _ in range(3):
        fy, fx = rng.uniform(0.5, 1.5, size=2) * 2 * np.pi / max(height, width)
        phase = rng.uniform(0, 2 * np.pi)
        tilt = rng.uniform(-0.3, 0.3)
        channels.append(0.5 + 0.3 * np.sin(fy * y + fx * x + phase) + tilt * (x / width - 0.5))
    return (np.clip(np.stack(channels, axis=-1), 0, 1) * 255).round().astype(np.uint8)


def write_png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(array) if mode is None else Image.fromarray(array).convert(mode)
    img.save(path)
    return path


def write_noisy_pairs(root: Path, sizes: list[tuple[int, int]], sigma: float = 20.0, prefix: str = "s") -> Path:
    """``root/a`` and ``root/b``: two independent noisy 8-bit captures (Gaussian ``sigma``, clipped)
    of a smooth scene per (height, width) in ``sizes``, named ``<prefix><i>.png`` in both."""
    for i, (height, width) in enumerate(sizes):
        clean = smooth_image(height, width, seed=i).astype(float)
        for sub, seed in (("a", 100 + i), ("b", 200 + i)):
            noisy = clean + np.random.default_rng(seed).normal(0, sigma, clean.shape)
            write_png(root / sub / f"{prefix}{i}.png", np.clip(np.round(noisy), 0, 255).astype(np.uint8))
    return root


@pytest.fixture
def make_png():
    """make_png(path, height, width, seed) writes a smooth RGB PNG and returns its path."""
    def make(path: Path, height: int = 31, width: int = 37, seed: int = 0) -> Path:
        return write_png(Path(path), smooth_image(height, width, seed))
    return make


@pytest.fixture
def data_folder(tmp_path, make_png) -> Path:
    """A user data folder: train_pool/ (6 images, one in a sub-folder) and kodak/ (2 images)."""
    root = tmp_path / "user_data"
    for i in range(5):
        make_png(root / "train_pool" / f"pool{i}.png", 48 + i, 40 + 2 * i, seed=i)
    make_png(root / "train_pool" / "nested" / "pool5.png", 45, 52, seed=5)
    make_png(root / "kodak" / "kodim01.png", 37, 31, seed=100)
    make_png(root / "kodak" / "kodim02.png", 31, 37, seed=101)
    return root


@pytest.fixture
def tiny_profile():
    """The smoke profile cut down to seconds: 24 px patches, 2 steps, a 4-layer ResNet."""
    from n2n_core.config import DataConfig, EvalConfig, get_profile

    smoke = get_profile("smoke")
    return dataclasses.replace(
        smoke,
        data=DataConfig(patch_size=24, train_patches=12, val_patches=2, val_image_every=3),
        eval=EvalConfig(limit=1, crop=24),
        train=dataclasses.replace(smoke.train, crop=16, batch_size=2, max_steps=2, val_every=1),
        resnet=dataclasses.replace(smoke.resnet, depth=4, width=8),
    )


@pytest.fixture
def smooth_patches() -> torch.Tensor:
    """Clean uint8 patches (N x 3 x 24 x 24) of smooth synthetic images."""
    return torch.stack([torch.from_numpy(smooth_image(24, 24, seed)).permute(2, 0, 1) for seed in range(16)])


# ------------------------------------------------------------------------------ a copy of the checkout
REPO = Path(__file__).parent.parent


def make_env() -> dict[str, str]:
    """This environment without the project's variables and make's own, for a `make` run in a copy."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("N2N_", "MAKE")) and k != "MFLAGS"}


def copy_checkout(copy: Path, made: list[str]) -> Path:
    """A copy in ``copy`` of the repository's files as git lists them (new ones included), all an hour
    old, and the files ``made`` (relative paths: stamps, patch sets, executed notebooks) written after
    them in this order, so that make finds everything up to date. Skips where make or git is missing."""
    if shutil.which("make") is None or shutil.which("git") is None:
        pytest.skip("needs make and git")
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    past = time.time() - 3600
    for name in filter(None, files):
        if (REPO / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REPO / name, copy / name)
            os.utime(copy / name, (past, past))
    for i, name in enumerate(made):
        path = copy / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{"runs": {}}')
        os.utime(path, (past + 60 + i, past + 60 + i))
    return copy


# ------------------------------------------------------------------------------ local HTTP server
class _QuietHandler(SimpleHTTPRequestHandler):
    requested: list[str] = []

    def log_message(self, format, *args):  # noqa: A002 - keep the test output clean
        pass

    def do_GET(self):  # noqa: N802
        type(self).requested.append(self.path)
        super().do_GET()


@pytest.fixture
def http_server(tmp_path):
    """A static file server on 127.0.0.1 (a free port) over ``tmp_path/www``.

    Yields (root folder, base URL, list of requested paths); stopped at the end of the test."""
    root = tmp_path / "www"
    root.mkdir()
    handler = type("Handler", (_QuietHandler,), {"requested": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}", handler.requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)



@pytest.fixture
def restore_threads():
    """Put back torch's thread count and the process's thread governor after a test that sets them."""
    from n2n_core.training import devices

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
    devices._GOVERNOR = None


def fit_run(model, cfg, sampler, val, path, model_args, run_config, device="cpu", precision="auto",
            compile_model=False, fresh=False, **options):
    """``train.fit`` called as the tests describe a run: the job's parts in order, the runtime resolved
    here (as an entry point does), ``fresh`` as a state of None (a new run over whatever is at ``path``)."""
    from n2n_core.training.runtime import Runtime
    from n2n_core.training.train import Job, fit

    rt = Runtime.resolve(device, precision, compile=compile_model)
    if fresh:
        options["state"] = None
    return fit(Job(model, cfg, sampler, val, path, model_args, run_config), rt, **options)


def cpu_runtime(precision: str = "fp32"):
    """A Runtime on the CPU in ``precision`` as named ('fp32' or 'bf16'), built without resolving
    anything: what the tests of the functions below the entry points pass them."""
    from n2n_core.training.runtime import Runtime

    return Runtime(torch.device("cpu"), precision)


@pytest.fixture
def little(tiny_profile):
    """`make pretrained`'s profile cut to seconds: 24 px patches, 16 px crops, 6 steps."""
    from n2n_core.studies import pretrained

    prof = pretrained.profile()
    return dataclasses.replace(prof, data=tiny_profile.data,
                               train=dataclasses.replace(prof.train, crop=16, batch_size=2, max_steps=6, val_every=2,
                                                         ema=0.9))
