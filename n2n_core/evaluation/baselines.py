"""Classical baselines, run on the very noisy images the networks see (same seeds, same protocol):

- Gaussian noise: BM3D for colour images (``bm3d.bm3d_rgb``) with the true sigma, for grey ones
  (a 1-channel batch) ``bm3d.bm3d``;
- Poisson noise: the Anscombe transform, BM3D at unit variance, then the closed-form approximation
  of the exact unbiased inverse (Makitalo & Foi, IEEE TIP 2011), divided back by lambda;
- Bernoulli noise: none here (the paper compares with Deep Image Prior, which this repo does not run);
- real captures (Poisson-Gaussian noise, variance a x + b of the signal x): the generalized Anscombe
  transform with a and b estimated from a scene's own captures (``estimate_poisson_gaussian``),
  BM3D at unit variance, then the same closed-form inverse with the Gaussian part taken off
  (Makitalo & Foi, IEEE TIP 2013).

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
from ..paths import write_cache

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
    return np.maximum(_unbiased_inverse(d), 0.0)


def _unbiased_inverse(d: np.ndarray) -> np.ndarray:
    """Makitalo & Foi's closed-form approximation of the exact unbiased inverse, before clipping."""
    d = np.maximum(d, 1e-6)
    s = math.sqrt(1.5)
    return 0.25 * d ** 2 + 0.25 * s / d - 1.375 / d ** 2 + 0.625 * s / d ** 3 - 0.125


# ------------------------------------------------------------------------------ Poisson-Gaussian (real captures)
MIN_GAIN = 1e-6  # a fitted gain at or below zero (Gaussian noise alone) is taken as this


def _binned(select: torch.Tensor, rest: torch.Tensor, bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels sorted into ``bins`` bins of equal count by ``select`` (P); per bin, the mean of ``rest``'s
    per-pixel means and unbiased variances (R x P, R >= 2): bins with more than 1% of their samples
    clipped (at 0 or 1) left out, unless fewer than 4 would remain."""
    mean, var = rest.mean(0), rest.var(0, unbiased=True)
    clipped = ((rest <= 0) | (rest >= 1)).double().mean(0)
    groups = [g for g in select.argsort().tensor_split(bins) if len(g)]
    m, v, c = (torch.stack([t[g].mean() for g in groups]) for t in (mean, var, clipped))
    keep = c <= 0.01
    return (m[keep], v[keep]) if int(keep.sum()) >= 4 else (m, v)


def estimate_poisson_gaussian(captures: torch.Tensor, bins: int = 64) -> tuple[float, float]:
    """(a, b) of the noise model var = a * x + b, estimated from K >= 2 aligned captures of one scene
    (K x C x H x W, float in [0, 1]). Pixels are binned by their mean over some captures and each
    bin's mean and variance taken over the others (``_binned``): binned by the same captures, a bin
    would hold the pixels whose noise pushed them there and the fitted slope would come out low. With
    K >= 4 the two halves (even and odd captures) take turns; with K = 3 each capture in turn; with
    K = 2 (no variance from one capture) both at once, a small bias. Then a robust line through the
    bins: the median of the slopes between every two bins (Theil-Sen), the median intercept."""
    if captures.dim() != 4 or len(captures) < 2:
        raise ValueError(f"estimating the noise needs K >= 2 captures as K x C x H x W, got {tuple(captures.shape)}")
    x = captures.double().flatten(1)
    count = len(x)
    if count == 2:
        folds = [(x.mean(0), x)]
    else:
        selecting = [list(range(i, count, 2)) for i in range(2)] if count >= 4 else [[i] for i in range(count)]
        folds = [(x[s].mean(0), x[[j for j in range(count) if j not in s]]) for s in selecting]
    points = [_binned(select, rest, bins) for select, rest in folds]
    m, v = torch.cat([p[0] for p in points]), torch.cat([p[1] for p in points])
    dm, dv = m[None] - m[:, None], v[None] - v[:, None]
    upper = torch.triu(torch.ones_like(dm, dtype=torch.bool), diagonal=1) & (dm.abs() > 1e-9)
    a = float(torch.median(dv[upper] / dm[upper])) if bool(upper.any()) else 0.0
    return a, float(torch.median(v - a * m))


def generalized_anscombe(z: np.ndarray, a: float, b: float) -> np.ndarray:
    """The generalized Anscombe transform for var = a x + b: variance ~ 1 (in units of a)."""
    a = max(a, MIN_GAIN)
    return 2.0 * np.sqrt(np.maximum(z / a + 0.375 + b / a ** 2, 0.0))


def inverse_generalized_anscombe(d: np.ndarray, a: float, b: float) -> np.ndarray:
    """The closed-form approximation of the exact unbiased inverse of ``generalized_anscombe``."""
    a = max(a, MIN_GAIN)
    return a * np.maximum(_unbiased_inverse(d) - b / a ** 2, 0.0)


def bm3d_vst(noisy: torch.Tensor, a: float, b: float, profile: str = "np",
             cache_dir: str | Path | None = None) -> torch.Tensor:
    """BM3D after the generalized Anscombe transform: a C x H x W float image (C = 1 or 3) in [0, 1]
    with Poisson-Gaussian noise of parameters (a, b) in, its estimate (C x H x W, float) out. With
    ``cache_dir``, the estimate is kept there in float, keyed by the image, (a, b) and the profile:
    a rerun reads it back, the same numbers."""
    import bm3d

    image = noisy.double().cpu().numpy()
    path = None
    if cache_dir is not None:
        h = hashlib.sha256(f"bm3d_vst|{profile}|{a!r}|{b!r}|{image.shape}|".encode())
        h.update(np.ascontiguousarray(image, dtype=np.float32).tobytes())
        path = Path(cache_dir) / f"vst_{h.hexdigest()[:40]}.npy"
        if path.is_file():
            try:
                return torch.from_numpy(np.load(path, allow_pickle=False))
            except (OSError, ValueError):
                pass  # a damaged cache file is computed again and replaced
    stabilised = generalized_anscombe(image, a, b)
    if len(image) == 3:
        estimate = bm3d.bm3d_rgb(stabilised.transpose(1, 2, 0), 1.0, profile=profile).transpose(2, 0, 1)
    else:
        estimate = np.asarray(bm3d.bm3d(stabilised[0], 1.0, profile=profile))[None]
    result = np.ascontiguousarray(inverse_generalized_anscombe(estimate, a, b), dtype=np.float32)
    if path is not None:
        def save(tmp):
            with open(tmp, "wb") as f:
                np.save(f, result, allow_pickle=False)

        write_cache(path, save)
    return torch.from_numpy(result)


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
            write_cache(path, lambda tmp: Image.fromarray(as_uint8[..., 0] if as_uint8.shape[-1] == 1 else as_uint8)
                        .save(tmp))
        # the same 8-bit image whether computed or cached, so a rerun gives the same numbers
        return torch.from_numpy(as_uint8.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
