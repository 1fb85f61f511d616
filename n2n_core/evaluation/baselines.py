"""Classical baselines, run on the very noisy images the networks see (same seeds, same protocol):

- Gaussian noise: BM3D for colour images (``bm3d.bm3d_rgb``) with the true sigma, for grey ones
  (a 1-channel batch) ``bm3d.bm3d``;
- Poisson noise: the Anscombe transform, BM3D at unit variance, then the closed-form approximation
  of the exact unbiased inverse (Makitalo & Foi, IEEE TIP 2011), divided back by lambda;
- Bernoulli noise: none here (the paper compares with Deep Image Prior, which this repo does not run).

The ``bm3d`` package is an optional extra (``pip install bm3d``, or ``make all`` with ``BM3D=1``).
Its licence allows non-commercial use only, so nothing here imports it unless asked; without it,
``available()`` is False and the tables say "not installed". BM3D costs tens of seconds per Kodak
image on a 2-core CPU (docs/measuring.md), so each result is cached as an 8-bit PNG (all the protocol looks at) under a
key that hashes the noisy image itself: a rerun with the same images, noise and seed skips it.
"""
from __future__ import annotations

import hashlib
import importlib.util
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..config import NoiseConfig
from ..paths import atomic_output

BASELINE_NAMES = {"gaussian": "BM3D", "poisson": "BM3D + Anscombe"}
INSTALL_HINT = "pip install bm3d (non-commercial licence), or run make with BM3D=1"


def available() -> bool:
    """Whether the optional ``bm3d`` package can be imported."""
    return importlib.util.find_spec("bm3d") is not None


def baseline_name(kind: str) -> str | None:
    """The classical baseline of Table 1 that this repo runs for a noise kind (None: none)."""
    return BASELINE_NAMES.get(kind)


def anscombe(counts: np.ndarray) -> np.ndarray:
    """Anscombe's variance-stabilising transform of Poisson counts: 2 sqrt(z + 3/8), variance ~ 1."""
    return 2.0 * np.sqrt(np.maximum(counts, 0.0) + 3.0 / 8.0)


def inverse_anscombe(d: np.ndarray) -> np.ndarray:
    """Closed-form approximation of the exact unbiased inverse of the Anscombe transform
    (Makitalo & Foi 2011): E[counts] as a function of E[anscombe(counts)], accurate for counts
    of a few photons and up; the algebraic inverse (d/2)^2 - 3/8 would be biased at low counts."""
    d = np.maximum(d, 1e-6)
    s = math.sqrt(1.5)
    inv = 0.25 * d ** 2 + 0.25 * s / d - 1.375 / d ** 2 + 0.625 * s / d ** 3 - 0.125
    return np.maximum(inv, 0.0)


class BM3DBaseline:
    """A callable for ``evaluation.evaluate``: 1 x 3 x H x W (or grey, 1 x 1 x H x W) noisy batch in,
    BM3D estimate out.

    ``cache_dir=None`` disables the cache.
    """

    def __init__(self, noise: NoiseConfig, cache_dir: str | Path | None = None, profile: str = "np"):
        if noise.kind not in BASELINE_NAMES:
            raise ValueError(f"no BM3D baseline for {noise.kind!r} noise; it exists for "
                             f"{', '.join(BASELINE_NAMES)}")
        if not available():
            raise ModuleNotFoundError(f"the optional bm3d package is not installed: {INSTALL_HINT}")
        self.noise, self.profile = noise, profile
        self.name = BASELINE_NAMES[noise.kind]
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.hits = self.misses = 0

    def _key(self, noisy: np.ndarray) -> str:
        h = hashlib.sha256()
        h.update(f"{self.name}|{self.noise.label}|{self.profile}|{noisy.shape}|".encode())
        h.update(np.ascontiguousarray(noisy, dtype=np.float32).tobytes())
        return h.hexdigest()[:40]

    def denoise(self, noisy: np.ndarray) -> np.ndarray:
        """H x W x 3 (or H x W x 1, grey) float noisy image -> the same shape of float estimate (not clipped)."""
        import bm3d

        def run(image, sigma):
            if image.shape[-1] == 1:
                return np.asarray(bm3d.bm3d(image[..., 0], sigma, profile=self.profile)).reshape(image.shape)
            return bm3d.bm3d_rgb(image, sigma, profile=self.profile)

        if self.noise.kind == "gaussian":
            return run(noisy, self.noise.sigma / 255.0)
        lam = self.noise.lam
        stabilised = anscombe(noisy * lam)  # counts -> variance ~1
        return inverse_anscombe(run(stabilised, 1.0)) / lam

    def __call__(self, noisy: torch.Tensor) -> torch.Tensor:
        if noisy.dim() != 4 or noisy.shape[0] != 1 or noisy.shape[1] not in (1, 3):
            raise ValueError(f"BM3D takes one RGB or grey image as a 1 x 3 (or 1) x H x W batch, got "
                             f"{tuple(noisy.shape)}")
        image = noisy[0].permute(1, 2, 0).double().cpu().numpy()
        path = None
        if self.cache_dir is not None:
            path = self.cache_dir / f"{self._key(image)}.png"
            if path.is_file():
                self.hits += 1
                mode = "L" if image.shape[-1] == 1 else "RGB"
                cached = np.asarray(Image.open(path).convert(mode), dtype=np.float32).reshape(image.shape) / 255.0
                return torch.from_numpy(cached).permute(2, 0, 1)[None]
        self.misses += 1
        as_uint8 = np.round(np.clip(self.denoise(image), 0.0, 1.0) * 255.0).astype(np.uint8)
        if path is not None:
            with atomic_output(path) as tmp:
                Image.fromarray(as_uint8[..., 0] if as_uint8.shape[-1] == 1 else as_uint8).save(tmp)
        # the same 8-bit image whether computed or cached, so a rerun gives the same numbers
        return torch.from_numpy(as_uint8.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
