"""Classical baselines: the Anscombe transform pair, the BM3D wrapper and its cache (with a stand-in
for the optional bm3d package), and one real BM3D run when the package is installed."""
from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest
import torch

from n2n_core.evaluation import baselines
from n2n_core.config import NoiseConfig
from n2n_core.paper.metrics import psnr
from n2n_core.paper.noise import GaussianNoise


def _poisson_expectation(f, mean: float) -> float:
    k = np.arange(0, int(mean + 20 * math.sqrt(mean) + 30))
    log_pmf = k * math.log(mean) - mean - np.array([math.lgamma(x + 1) for x in k])
    return float(np.sum(np.exp(log_pmf) * f(k.astype(np.float64))))


@pytest.mark.parametrize("mean", [1.0, 3.0, 10.0, 30.0])
def test_inverse_anscombe_is_unbiased_where_the_algebraic_inverse_is_not(mean):
    d = _poisson_expectation(baselines.anscombe, mean)  # E[A(z)], z ~ Poisson(mean)
    exact = float(baselines.inverse_anscombe(np.array(d)))
    algebraic = (d / 2) ** 2 - 3 / 8
    assert exact == pytest.approx(mean, abs=0.03 * max(1.0, mean ** 0.5))
    assert abs(exact - mean) <= abs(algebraic - mean)
    if mean <= 3:
        assert abs(algebraic - mean) > 0.1  # the bias that the exact inverse removes


def test_anscombe_stabilises_the_variance():
    rng = np.random.default_rng(0)
    for mean in (5.0, 20.0, 50.0):
        assert np.var(baselines.anscombe(rng.poisson(mean, 200_000))) == pytest.approx(1.0, abs=0.06)


@pytest.fixture
def fake_bm3d(monkeypatch):
    """A stand-in ``bm3d`` module that records its calls and returns its input."""
    calls = []
    module = types.ModuleType("bm3d")

    def bm3d_rgb(z, sigma_psd, profile="np"):
        calls.append((z.shape, float(sigma_psd), profile))
        return z.copy()

    module.bm3d_rgb = bm3d_rgb
    monkeypatch.setitem(sys.modules, "bm3d", module)
    monkeypatch.setattr(baselines, "available", lambda: True)
    return calls


def _noisy(seed: int, h: int = 24, w: int = 32) -> torch.Tensor:
    clean = torch.rand((1, 3, h, w), generator=torch.Generator().manual_seed(seed))
    return GaussianNoise(25)(clean, torch.Generator().manual_seed(seed + 1))


def test_bm3d_results_are_cached_by_noisy_image(fake_bm3d, tmp_path):
    bm3d = baselines.BM3DBaseline(NoiseConfig(), tmp_path / "cache")
    a = _noisy(0)
    first = bm3d(a)
    assert len(fake_bm3d) == 1 and fake_bm3d[0] == ((24, 32, 3), pytest.approx(25 / 255), "np")
    again = bm3d(a.clone())
    assert len(fake_bm3d) == 1 and (bm3d.hits, bm3d.misses) == (1, 1)  # served from the cache
    assert torch.equal(first, again) and first.shape == a.shape
    assert torch.equal(first, (first * 255).round() / 255)  # the 8-bit image the protocol measures
    bm3d(_noisy(1))  # another noise draw: computed
    assert len(fake_bm3d) == 2
    assert len(list((tmp_path / "cache").glob("*.png"))) == 2
    assert not list((tmp_path / "cache").glob(".*"))  # no temporary file left behind


def test_bm3d_cache_key_includes_the_noise_level(fake_bm3d, tmp_path):
    a = _noisy(0)
    baselines.BM3DBaseline(NoiseConfig(sigma=25), tmp_path)(a)
    baselines.BM3DBaseline(NoiseConfig(sigma=15), tmp_path)(a)
    assert len(fake_bm3d) == 2 and fake_bm3d[1][1] == pytest.approx(15 / 255)


def test_bm3d_after_the_generalized_anscombe_transform_is_cached_in_float(fake_bm3d, tmp_path):
    noisy = _noisy(0)[0].clamp(0, 1)
    first = baselines.bm3d_vst(noisy, 0.01, 1e-4, cache_dir=tmp_path)
    assert len(fake_bm3d) == 1 and fake_bm3d[0][1] == 1.0  # unit variance after the transform
    again = baselines.bm3d_vst(noisy.clone(), 0.01, 1e-4, cache_dir=tmp_path)
    assert len(fake_bm3d) == 1 and torch.equal(first, again)  # read back, not computed
    assert not torch.equal(first, (first * 255).round() / 255)  # float, not cut to 8 bits (16-bit data)
    baselines.bm3d_vst(noisy, 0.02, 1e-4, cache_dir=tmp_path)  # other noise parameters: computed
    baselines.bm3d_vst(noisy, 0.01, 1e-4)  # no cache folder: computed
    assert len(fake_bm3d) == 3 and len(list(tmp_path.glob("vst_*.npy"))) == 2
    next(tmp_path.glob("vst_*.npy")).write_bytes(b"damaged")
    baselines.bm3d_vst(noisy, 0.01, 1e-4, cache_dir=tmp_path)
    baselines.bm3d_vst(noisy, 0.02, 1e-4, cache_dir=tmp_path)
    assert len(fake_bm3d) == 4  # the damaged one computed again, the other read


def test_bm3d_for_poisson_works_in_the_anscombe_domain(fake_bm3d, tmp_path):
    lam = 30.0
    clean = torch.full((1, 3, 16, 16), 0.5)
    noisy = torch.poisson(clean * lam, generator=torch.Generator().manual_seed(0)) / lam
    out = baselines.BM3DBaseline(NoiseConfig(kind="poisson", lam=lam), None)(noisy)
    assert fake_bm3d[0][1] == 1.0  # unit variance after the transform
    # with an identity "denoiser", transform and inverse give back the noisy image up to the
    # small low-count bias of the unbiased inverse applied to single samples, and 8-bit rounding
    assert (out - noisy.clamp(0, 1)).abs().mean() < 0.02


def test_bm3d_rejects_what_it_cannot_do(fake_bm3d, monkeypatch):
    with pytest.raises(ValueError, match="bernoulli"):
        baselines.BM3DBaseline(NoiseConfig(kind="bernoulli"))
    with pytest.raises(ValueError, match="1 x 3 .or 1. x H x W"):
        baselines.BM3DBaseline(NoiseConfig())(torch.zeros(2, 3, 8, 8))
    monkeypatch.setattr(baselines, "available", lambda: False)
    with pytest.raises(ModuleNotFoundError, match="pip install bm3d"):
        baselines.BM3DBaseline(NoiseConfig())


def test_baseline_names():
    assert baselines.baseline_name("gaussian") == "BM3D"
    assert baselines.baseline_name("poisson") == "BM3D + Anscombe"
    assert baselines.baseline_name("bernoulli") is None


@pytest.mark.skipif(not baselines.available(), reason="the optional bm3d package is not installed")
def test_real_bm3d_denoises(tmp_path):
    y, x = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    clean = torch.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.3 * torch.sin(6 * x)])[None]
    noisy = GaussianNoise(25)(clean, torch.Generator().manual_seed(0))
    out = baselines.BM3DBaseline(NoiseConfig(), tmp_path)(noisy)
    assert float(psnr(out, clean)[0]) > float(psnr(noisy, clean)[0]) + 8


@pytest.mark.skipif(not baselines.available(), reason="the optional bm3d package is not installed")
def test_real_grey_bm3d_denoises_a_grey_image_and_caches_it_grey(tmp_path):
    y, x = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    clean = (0.2 + 0.3 * x + 0.3 * torch.sin(6 * y))[None, None]
    noisy = GaussianNoise(25)(clean, torch.Generator().manual_seed(0))
    bm3d = baselines.BM3DBaseline(NoiseConfig(), tmp_path)
    out = bm3d(noisy)
    assert out.shape == (1, 1, 64, 64) and float(psnr(out, clean)[0]) > float(psnr(noisy, clean)[0]) + 8
    assert torch.equal(bm3d(noisy.clone()), out) and bm3d.hits == 1  # the cached grey PNG, read back grey
