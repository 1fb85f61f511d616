"""Figures are written as PNG files (headless Agg backend)."""
from __future__ import annotations

import matplotlib
import pytest
import torch
from PIL import Image

from n2n_core.evaluation import plots
from n2n_core.training.train import History

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png(path, folder):
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as img:
        assert img.width > 100 and img.height > 100
    assert [p.name for p in folder.iterdir()] == [path.name]  # no temporary file left behind


def test_plots_use_a_headless_backend():
    assert matplotlib.get_backend().lower() == "agg"


@pytest.fixture
def histories():
    a = History(step=[10, 20, 30], seconds=[1.0, 2.0, 3.0], train_loss=[0.05, 0.03, 0.02], lr=[1e-3] * 3,
                val_step=[10, 20, 30], val_psnr=[22.0, 25.5, 27.0], val_psnr_input=20.2)
    b = History(step=[10, 20], seconds=[1.0, 2.0], train_loss=[0.01, 0.008], lr=[1e-3] * 2,
                val_step=[10, 20], val_psnr=[23.0, 26.0], val_psnr_input=20.2)
    return {"resnet n2n": a, "resnet clean": b}


def test_psnr_curves_writes_a_png(tmp_path, histories):
    folder = tmp_path / "figures"
    path = plots.psnr_curves(histories, folder / "curves.png", title="test")
    assert path == folder / "curves.png"
    _check_png(path, folder)


def test_psnr_curves_overwrites_an_existing_figure(tmp_path, histories):
    path = tmp_path / "curves.png"
    path.write_bytes(b"old")
    plots.psnr_curves(histories, path)
    _check_png(path, tmp_path)


def test_image_grid_writes_a_png(tmp_path, generator):
    clean = torch.rand(3, 37, 31, generator=generator)
    rows = [[("clean", clean), ("noisy", clean + 0.3 * torch.randn(3, 37, 31, generator=generator))],
            [("out of range", clean * 3 - 1)]]  # ragged rows and values outside [0, 1] are fine
    folder = tmp_path / "grid"
    path = plots.image_grid(rows, folder / "grid.png")
    _check_png(path, folder)


def test_psnr_bars_writes_a_png(tmp_path):
    folder = tmp_path / "bars"
    path = plots.psnr_bars({"unet n2n": 30.1, "unet clean": 30.3}, folder / "bars.png", title="Kodak",
                           reference={"unet n2n": 32.39})
    _check_png(path, folder)


def test_demo_figure_saves_and_leaves_no_figure_open_headless(tmp_path):
    import matplotlib.pyplot as plt

    from n2n_core.evaluation.plots import demo_figure

    before = len(plt.get_fignums())
    image = torch.rand(3, 24, 32)
    demo_figure([("clean", image), ("noisy", image), ("denoised", image)], tmp_path / "demo.png")
    assert (tmp_path / "demo.png").stat().st_size > 1000
    assert len(plt.get_fignums()) == before  # closed (notebook 00's slider calls it again and again)
