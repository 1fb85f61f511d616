"""Real noise for notebook 11: the FMD confocal captures (Zhang et al., CVPR 2019, image type
Confocal_BPAE_B: 20 fields of view, 512 x 512 8-bit grey, ``raw/<fov>/`` ten captures each and
``gt/<fov>/avg50.png``, the mean of fifty), and a simulated stand-in where they are missing.

Where the captures come from, in order (``find_captures``):
  1. a folder ``fmd_confocal_bpae/`` in the data folder (argument or ``N2N_DATA_DIR``);
  2. the official address: the files at a fixed commit of the GitHub repository that holds the data
     set's Confocal_BPAE_B folder, each checked against its SHA-256 (``fmd_sha256``), cached under
     ``data/downloads/fmd_confocal_bpae`` (``N2N_FMD_URL`` overrides the address, ``N2N_OFFLINE=1``
     skips it), through the one downloader of ``sets.download``;
  3. a Poisson-Gaussian stand-in simulated from the photographs inside scikit-image, laid out the same
     way (the clean photograph is the reference). Its numbers are NOT comparable, and every report says so.

Fields of view 1-18 train, 19 and 20 test (FMD's own split tests on 19).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import paths
from .fmd_sha256 import SHA256
from .images import read_image
from .sets import EMBEDDED_TEST, EMBEDDED_TRAIN, download, to_uint8

FOLDER = "fmd_confocal_bpae"
FMD_URL = ("https://raw.githubusercontent.com/EmaadKhwaja/Deep-Learning-Denoising/"
           "be78794b293c09ee8af0ad7536f7a93dda87b9a3/Confocal_BPAE_B/")
TRAIN_SCENES = tuple(str(i) for i in range(1, 19))
TEST_SCENES = ("19", "20")
# the stand-in's noise: a pixel of value x in [0, 1] gets variance a x + b (Poisson-Gaussian)
STANDIN_NOISE = (0.005, (2 / 255) ** 2)


@dataclass
class RealCaptures:
    """Scenes of aligned captures (``captures/<scene>/``) and their references (``references/<scene>/``,
    one image each), split into training and test scenes; ``origin``: folder, download or standin."""
    captures: Path
    references: Path
    train: tuple[str, ...]
    test: tuple[str, ...]
    origin: str
    description: str

    @property
    def real(self) -> bool:
        return self.origin != "standin"

    @property
    def tag(self) -> str:
        """The runs' name for the data: fmd, or standin."""
        return "fmd" if self.real else "standin"

    @property
    def note(self) -> str:
        """Why numbers measured on these captures are not comparable ('' when they are the real ones)."""
        return "" if self.real else ("NOTE: a simulated Poisson-Gaussian stand-in built from scikit-image's "
                                     "photographs, not the FMD captures: numbers NOT comparable with real noise.")

    def summary(self) -> str:
        line = (f"Captures: {self.description}; training scenes {', '.join(self.train)}; "
                f"test scenes {', '.join(self.test)}.")
        return line + (f"\n{self.note}" if self.note else "")


def lookup(data_dir: str | Path | None = None, download_ok: bool | None = None) -> tuple[str, Path | None]:
    """Where ``find_captures`` takes the captures from, without reading, downloading or writing
    anything: ("folder", the FMD folder under the data folder), ("download", the cache, complete or to
    be filled from the official address) or ("standin", None)."""
    root = Path(data_dir).expanduser() if data_dir else paths.user_data_dir()
    if root is not None and (root / FOLDER).is_dir():
        return "folder", root / FOLDER
    if download_ok is None:
        download_ok = os.environ.get("N2N_OFFLINE", "") in ("", "0")
    cache = paths.data_cache_dir() / "downloads" / FOLDER
    if download_ok or all((cache / name).is_file() for name in SHA256):
        return "download", cache
    return "standin", None


def find_captures(data_dir: str | Path | None = None, download_ok: bool | None = None, side: int = 256,
                  count: int = 10, seed: int = 0) -> RealCaptures:
    """The FMD captures (module docstring for the order), else the stand-in of ``count`` captures of
    ``side`` px per scene, announced in one line."""
    where, folder = lookup(data_dir, download_ok)
    if where == "folder":
        return _fmd(folder, "folder", f"FMD Confocal_BPAE_B, folder {folder}")
    why = "downloads disabled (N2N_OFFLINE)"
    if where == "download":
        try:
            return _download(folder)
        except Exception as err:  # network down, server moved, checksum mismatch: fall back
            why = f"download failed: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    print(f"The real captures (FMD) are missing ({why}): running on a simulated Poisson-Gaussian stand-in, "
          f"NOT comparable.")
    folder = paths.data_cache_dir() / "realnoise_standin" / f"side{side}_captures{count}_seed{seed}"
    return standin(folder, side, count, seed)


def _fmd(root: Path, origin: str, description: str) -> RealCaptures:
    for sub in ("raw", "gt"):
        if not (root / sub).is_dir():
            raise FileNotFoundError(f"{root}: no {sub}/ folder; expected raw/<fov>/*.png and gt/<fov>/avg50.png")
    return RealCaptures(root / "raw", root / "gt", TRAIN_SCENES, TEST_SCENES, origin, description)


def _download(cache: Path) -> RealCaptures:
    """Every file of ``SHA256`` from the official address (or ``N2N_FMD_URL``) into ``cache``, checked."""
    base = os.environ.get("N2N_FMD_URL", FMD_URL)
    for name, sha in tqdm(SHA256.items(), desc="FMD captures", unit="file", leave=False):
        download(base + name, sha, cache / name, progress=False)
    return _fmd(cache, "download", f"FMD Confocal_BPAE_B, downloaded to {cache}")


def standin(folder: Path, side: int, count: int, seed: int = 0, scenes: int = 20) -> RealCaptures:
    """Write (once) ``scenes`` grey scenes of ``side`` px cut from scikit-image's photographs, each
    with ``count`` captures of Poisson-Gaussian noise (``STANDIN_NOISE``, a function of seed, scene and
    capture, 8-bit) under ``folder/raw/<n>/`` and the clean scene under ``folder/gt/<n>/``."""
    import skimage.data

    from ..paper.noise import seeded_generator

    done = folder / "complete"
    if not done.is_file():
        photos = Path(skimage.data.__file__).parent
        names = EMBEDDED_TRAIN + EMBEDDED_TEST
        a, b = STANDIN_NOISE
        for i in range(scenes):
            clean = _grey_crop(photos / names[i % len(names)], side, quarter=i >= len(names))
            _write_grey(clean, folder / "gt" / str(i + 1) / "reference.png")
            for k in range(count):
                gen = seeded_generator(seed, i, k)
                noisy = torch.poisson(clean / a, generator=gen) * a + b ** 0.5 * torch.randn(clean.shape, generator=gen)
                _write_grey(noisy, folder / "raw" / str(i + 1) / f"capture_{k:02d}.png")
        done.write_text("")
    names = tuple(str(i + 1) for i in range(scenes))
    return RealCaptures(folder / "raw", folder / "gt", names[:-2], names[-2:], "standin",
                        f"simulated stand-in ({scenes} scenes of {side} px, {count} captures each) in {folder}")


def _grey_crop(path: Path, side: int, quarter: bool) -> torch.Tensor:
    """A 1 x side x side grey crop of a photograph (centre, or a quarter of the way from the top-left
    corner with ``quarter``), scaled up first where the photograph is smaller."""
    grey = read_image(path).rgb.mean(0, keepdim=True)
    short = min(grey.shape[-2:])
    if short < side:
        grey = torch.nn.functional.interpolate(grey[None], scale_factor=side / short, mode="bilinear",
                                               align_corners=False)[0]
    h, w = grey.shape[-2:]
    top, left = ((h - side) // (4 if quarter else 2), (w - side) // (4 if quarter else 2))
    return grey[:, top:top + side, left:left + side].clamp(0, 1)


def _write_grey(image: torch.Tensor, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(to_uint8(image)[0].numpy()), "L").save(path)
