"""Real noise (`n2n eval --captures DIR --reference DIR`): scenes of several aligned noisy captures
(one folder per scene, ``data.sources.load_scenes``) against a reference image of each scene (say,
the average of many more captures), with no synthetic noise anywhere.

For each scene: PSNR and SSIM (``paper.metrics``: the 8-bit protocol, values divided by the file's
maximum, 255 for 8-bit data, peak 1.0) of a network's denoised FIRST capture, beside baselines that
learn nothing: the first capture itself; the mean of the first 2, 4 and 8 captures (where the scene
has that many); and BM3D after the generalized Anscombe transform, its noise parameters estimated
from the scene's own captures (``baselines.estimate_poisson_gaussian``, ``baselines.bm3d_vst``).
Each scene's brightness against its reference (``gain``): the factor that best maps the mean of all
its captures onto the reference. Far from 1 (bleaching between the captures and the ones the
reference averages, another exposure), PSNR counts that difference as error, which no denoiser of
one capture removes: the printed table says so under the scene.
A grey capture takes the grey route of `n2n denoise` (``denoise.denoise_rgb``): through grey weights
as they are; through colour weights replicated to three channels, their output averaged, or by noise
matching where the weights were trained on Gaussian noise (``grey.GreyRoute``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import baselines
from ..data.sources import REFERENCE_LAYOUT, DataError, Scene, read_reference  # noqa: F401 (the command's names)
from ..paper.metrics import psnr, ssim
from ..paths import atomic_write_text, bm3d_cache_dir
from ..training.runtime import Runtime
from .denoise import denoise_rgb
from .grey import GreyRoute

MEANS = (2, 4, 8)  # the mean of the first k captures, a baseline where a scene has k
LABELS = {"model": "network", "capture": "1 capture", **{f"mean{k}": f"mean of {k}" for k in MEANS},
          "bm3d_vst": "BM3D+GAT"}


GAIN_NOTE = 0.01  # a scene whose gain departs from 1 by more is named under the table


@dataclass
class SceneNumbers:
    """One scene's PSNR and SSIM per method (keys of ``LABELS``), its estimated noise var = a x + b,
    and ``gain`` (``brightness_gain`` of the mean of its captures against its reference)."""
    name: str
    psnr: dict[str, float] = field(default_factory=dict)
    ssim: dict[str, float] = field(default_factory=dict)
    noise: dict[str, float] = field(default_factory=dict)
    gain: float = 1.0


def brightness_gain(image: torch.Tensor, reference: torch.Tensor) -> float:
    """The factor g minimising |g image - reference|^2: below 1 where ``image`` is brighter."""
    image, reference = image.double(), reference.double()
    return float((image * reference).sum() / (image * image).sum().clamp_min(1e-12))


@torch.inference_mode()
def denoised_first(scene: Scene, model, rt: Runtime, grey: GreyRoute | None = None,
                   captures: torch.Tensor | None = None) -> torch.Tensor:
    """What the network makes of the scene's first capture (3 x H x W), the image that is measured;
    grey captures by the route ``grey`` (default replication). ``captures``: ``scene.floats()`` where
    the caller holds them."""
    first = (scene.floats() if captures is None else captures)[0]
    return denoise_rgb(model, first, scene.grey, rt, grey or GreyRoute(match=False), name=scene.name, tile=0)[0]


@torch.inference_mode()
def evaluate_scene(scene: Scene, reference: torch.Tensor, model=None, rt: Runtime | None = None,
                   bm3d: bool = True, grey: GreyRoute | None = None) -> SceneNumbers:
    """``SceneNumbers`` of one scene: the network (if ``model``; grey captures by the route ``grey``,
    default replication), one capture, the means, BM3D+GAT (if ``bm3d``)."""
    captures = scene.floats()
    outputs = {"capture": captures[0]}
    if model is not None:
        outputs["model"] = denoised_first(scene, model, rt, grey, captures)
    outputs.update({f"mean{k}": captures[:k].mean(0) for k in MEANS if len(captures) >= k})
    channels = captures[:, :1] if scene.grey else captures
    a, b = baselines.estimate_poisson_gaussian(channels)
    numbers = SceneNumbers(scene.name, noise={"a": a, "b": b}, gain=brightness_gain(captures.mean(0), reference))
    if bm3d:
        outputs["bm3d_vst"] = baselines.bm3d_vst(channels[0], a, b, cache_dir=bm3d_cache_dir()).expand(3, -1, -1)
    for method in LABELS:
        if method in outputs:
            numbers.psnr[method] = float(psnr(outputs[method], reference))
            numbers.ssim[method] = float(ssim(outputs[method], reference))
    return numbers


def evaluate_captures(scenes: list[Scene], references: list[torch.Tensor], model=None, rt: Runtime | None = None,
                      bm3d: bool = True, progress: bool = True, grey: GreyRoute | None = None) -> list[SceneNumbers]:
    """``evaluate_scene`` on every scene; a network (``model``) runs in the runtime ``rt``, grey
    captures by the route ``grey``."""
    if model is not None:
        if rt is None:
            raise ValueError("a network is evaluated in a Runtime: pass rt")
        model = model.to(rt.device).eval()
    return [evaluate_scene(scene, reference, model, rt, bm3d, grey)
            for scene, reference in tqdm(list(zip(scenes, references)), desc="scenes", disable=not progress,
                                         leave=False)]


def methods(rows: list[SceneNumbers]) -> list[str]:
    """The methods measured on at least one scene, in the order of ``LABELS``."""
    return [m for m in LABELS if any(m in row.psnr for row in rows)]


def means(rows: list[SceneNumbers]) -> dict[str, dict]:
    """Per method: the mean PSNR and SSIM over the scenes that have it, and their number."""
    out = {}
    for method in methods(rows):
        have = [row for row in rows if method in row.psnr]
        out[method] = {"psnr": round(sum(r.psnr[method] for r in have) / len(have), 4),
                       "ssim": round(sum(r.ssim[method] for r in have) / len(have), 5), "images": len(have)}
    return out


def table(rows: list[SceneNumbers]) -> str:
    """The printed table: a row per scene and their mean, a column per method (PSNR dB / SSIM)."""
    columns = methods(rows)
    width = max(12, *(len(row.name) for row in rows))
    lines = [f"{'scene':<{width}}" + "".join(f"{LABELS[m]:>18}" for m in columns),
             f"{'':<{width}}" + "".join(f"{'PSNR / SSIM':>18}" for _ in columns)]
    for row in rows:
        cells = [f"{row.psnr[m]:.2f} / {row.ssim[m]:.4f}" if m in row.psnr else "-" for m in columns]
        lines.append(f"{row.name:<{width}}" + "".join(f"{c:>18}" for c in cells))
    summary = means(rows)
    cells = [f"{summary[m]['psnr']:.2f} / {summary[m]['ssim']:.4f}" for m in columns]
    lines.append(f"{'mean':<{width}}" + "".join(f"{c:>18}" for c in cells))
    return "\n".join(lines + gain_notes(rows)) + "\n"


def gain_notes(rows: list[SceneNumbers]) -> list[str]:
    """A line for each scene whose captures differ in brightness from its reference by more than ``GAIN_NOTE``."""
    return [f"{row.name}: the mean of its captures is {abs(1 / row.gain - 1):.1%} "
            f"{'brighter' if row.gain < 1 else 'darker'} than its reference (bleaching, drift or another exposure?); "
            f"PSNR counts that as error, and no denoiser of one capture removes it"
            for row in rows if abs(row.gain - 1) > GAIN_NOTE]


def write_json(path: str | Path, label: str | None, rows: list[SceneNumbers], captures: str | Path,
               reference: str | Path, precision: str | None) -> Path:
    """`n2n eval --captures --json`: the shape of ``protocol.write_json`` (model, noise, seed, precision,
    sets), one set named after the captures folder: ``psnr``/``ssim`` the network's (None without one),
    ``psnr_input`` one capture's, ``methods`` every method's means, and per scene every number, the
    estimated noise and the brightness gain."""
    summary = means(rows)
    model = summary.get("model", {})
    per_image = [{"image": row.name, "psnr": row.psnr.get("model"), "psnr_input": row.psnr["capture"],
                  "ssim": row.ssim.get("model"), "noise_a": row.noise["a"], "noise_b": row.noise["b"],
                  "gain": round(row.gain, 5),
                  "methods": {m: {"psnr": round(row.psnr[m], 4), "ssim": round(row.ssim[m], 5)} for m in row.psnr}}
                 for row in rows]
    sets = {Path(captures).name: {"psnr": model.get("psnr"), "psnr_input": summary["capture"]["psnr"],
                                  "ssim": model.get("ssim"), "images": len(rows), "methods": summary,
                                  "labels": {m: LABELS[m] for m in summary}, "per_image": per_image}}
    noise = {"kind": "real", "captures": str(Path(captures).resolve()), "reference": str(Path(reference).resolve())}
    return atomic_write_text(path, json.dumps({"model": label, "noise": noise, "seed": None, "precision": precision,
                                               "sets": sets}, indent=2) + "\n")
