"""The evaluation protocol of the paper (released code): a model on the test sets, each image
with noise that is a function of (seed, image index, repeat), PSNR and SSIM (``metrics``) per image
and their means, cached by weights and protocol. ``evaluate_run`` applies a profile's test sets,
limits and repeats; ``data_sources`` finds the data once per process and settings.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import paths
from ..data.augment import SelfEnsemble
from ..config import PAPER_REPEATS, Profile
from ..data.grey import grey_image
from ..data.images import center_crop
from ..data.sets import DataSources, find_data, load_image
from ..paper.metrics import psnr, ssim
from ..paper.noise import NOISE_TYPES, NoiseConfig, NoiseModel, seeded_generator, test_noise
from ..paths import atomic_write_text, write_cache
from ..training.runtime import Runtime, infer


@dataclass
class Evaluation:
    """Per-image numbers of one model on one test set; ``psnr`` and ``psnr_input`` are the means."""
    names: list[str]
    psnr_images: list[float]
    psnr_input_images: list[float]
    ssim_images: list[float]
    seed: int
    noise: str
    extra: dict = field(default_factory=dict)
    repeats: int = 1
    precision: str | None = None  # a network's forward pass: 'fp32' or 'bf16' (None: no network)

    @property
    def psnr(self) -> float:
        return sum(self.psnr_images) / len(self.psnr_images)

    @property
    def psnr_input(self) -> float:
        return sum(self.psnr_input_images) / len(self.psnr_input_images)

    @property
    def ssim(self) -> float:
        return sum(self.ssim_images) / len(self.ssim_images)

    def as_dict(self) -> dict:
        return {"psnr": round(self.psnr, 4), "psnr_input": round(self.psnr_input, 4), "ssim": round(self.ssim, 5),
                "images": len(self.names), "repeats": self.repeats, "seed": self.seed, "noise": self.noise,
                **({"precision": self.precision} if self.precision else {}), **self.extra}


def noise_generator(seed: int, index: int, repeat: int = 0) -> torch.Generator:
    """The generator of the evaluation noise of image ``index``, draw ``repeat``: repeat 0 is a
    function of (seed, index), repeat r > 0 of (seed, index, r)."""
    return seeded_generator(seed, index) if repeat == 0 else seeded_generator(seed, index, repeat)


# bump when a change to the code would change an evaluation's numbers: cached ones are then ignored
EVAL_CACHE_VERSION = 1


def model_digest(model: torch.nn.Module) -> str:
    """A hash of a module's class and weights: equal digests denoise equally."""
    h = hashlib.sha256(type(model).__qualname__.encode())
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _cache_key(model: torch.nn.Module, files, noise, seed: int, rt: Runtime, crop, repeats: int,
               grey: bool = False) -> str:
    """What decides an evaluation: the weights, each file (path, size, mtime), the noise, the seed,
    the crop, the repeats, the device type (a GPU's numbers differ from a CPU's in the last bits)
    and the number format."""
    described = []
    for path in files:
        stat = Path(path).stat()
        described.append([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns])
    key = {"version": EVAL_CACHE_VERSION, "model": model_digest(model), "files": described, "noise": repr(noise),
           "seed": seed, "crop": crop, "repeats": repeats, "device": rt.device.type,
           "precision": rt.precision, **({"grey": True} if grey else {})}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


def _check_runtime(model, rt: Runtime | None) -> None:
    """A network is run in a runtime the caller resolved; a baseline or the noisy input needs none."""
    if isinstance(model, torch.nn.Module) and rt is None:
        raise ValueError("a network is evaluated in a Runtime: pass rt (Runtime.resolve() where the run starts)")


def _read_cached(path: Path) -> Evaluation | None:
    try:
        return Evaluation(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):  # missing, half written by a crash, or from older code
        return None


def evaluate(model, files, noise: NoiseModel, seed: int = 0, rt: Runtime | None = None, crop: int | None = None,
             progress: bool = True, repeats: int = 1, cache_dir: str | Path | None = None,
             grey: bool = False) -> Evaluation:
    """PSNR/SSIM of ``model`` on the images ``files`` under ``noise`` (see ``_evaluate``); a torch
    module runs in the runtime ``rt`` (required for one), whose number format the result records.

    With ``cache_dir``, a torch module's evaluation is stored there, keyed by its weights and every
    input of the measurement, and a later call with the same key returns it without running the
    model (notebook 05 reuses the Gaussian U-Nets' numbers of notebooks 03 and 04 this way).
    With ``grey``, every image is measured in grey (``data.grey``: Pillow's 'L'), 1 x H x W."""
    _check_runtime(model, rt)
    if cache_dir is None or not isinstance(model, torch.nn.Module):
        return _evaluate(model, files, noise, seed, rt, crop, progress, repeats, grey)
    path = Path(cache_dir) / f"{_cache_key(model, files, noise, seed, rt, crop, repeats, grey)}.json"
    cached = _read_cached(path)
    if cached is not None:
        print(f"(cached evaluation {path.name})")
        return cached
    result = _evaluate(model, files, noise, seed, rt, crop, progress, repeats, grey)
    write_cache(path, lambda tmp: tmp.write_text(json.dumps(asdict(result))))
    return result


@torch.inference_mode()
def _evaluate(model, files, noise: NoiseModel, seed: int = 0, rt: Runtime | None = None, crop: int | None = None,
              progress: bool = True, repeats: int = 1, grey: bool = False) -> Evaluation:
    """PSNR/SSIM of ``model`` on the images ``files`` under ``noise`` (see the module docstring).

    ``model`` is a torch module, any other callable from a 1 x 3 x H x W noisy batch (on the CPU)
    to its denoised batch (a classical baseline such as BM3D; 1 x 1 x H x W with ``grey``), or None to measure the noisy input.
    With ``repeats`` > 1 every image is measured under that many independent noise draws (the
    authors' follow-up code repeats Kodak 10x, BSD300 3x, Set14 20x) and its numbers are the means.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    names, out_psnr, in_psnr, out_ssim = [], [], [], []
    is_module = isinstance(model, torch.nn.Module)
    for index, path in enumerate(tqdm(files, desc="evaluate", disable=not progress, leave=False)):
        clean = center_crop(load_image(path), crop)
        clean = grey_image(clean) if grey else clean
        if min(clean.shape[-2:]) < 11:
            raise ValueError(f"{path}: {clean.shape[-1]}x{clean.shape[-2]} px, smaller than the 11x11 window of SSIM; "
                             f"evaluate on images of at least 11x11 px")
        per_draw = []
        for repeat in range(repeats):
            noisy = noise(clean, noise_generator(seed, index, repeat))
            if model is None:
                output = noisy
            elif is_module:
                output = infer(model, noisy[None], rt)[0]
            else:
                output = model(noisy[None])[0].float().cpu()
            per_draw.append((float(psnr(output, clean)), float(psnr(noisy, clean)), float(ssim(output, clean))))
        names.append(getattr(path, "name", str(path)))
        out_psnr.append(sum(d[0] for d in per_draw) / repeats)
        in_psnr.append(sum(d[1] for d in per_draw) / repeats)
        out_ssim.append(sum(d[2] for d in per_draw) / repeats)
    if not names:
        raise ValueError("evaluate() got no images")
    return Evaluation(names, out_psnr, in_psnr, out_ssim, seed, repr(noise), repeats=repeats,
                      precision=rt.precision if is_module else None)


@functools.lru_cache(maxsize=8)
def _find_data_cached(data_dir: str | None, env: tuple) -> DataSources:
    sources = find_data(data_dir)
    print(sources.summary())
    return sources


def data_sources(data_dir: str | None = None) -> DataSources:
    """``find_data``, resolved once per process and settings (a failed download is not retried
    by every cell)."""
    env = tuple(os.environ.get(k) for k in ("N2N_DATA_DIR", "N2N_OUTPUT_DIR", "N2N_OFFLINE"))
    return _find_data_cached(None if data_dir is None else str(data_dir), env)


def noise_settings(profile: Profile, noise: str | NoiseConfig | None = None, sigma: float | None = None) -> NoiseConfig:
    """The profile's noise settings for ``noise`` (a kind, default the profile's; or settings of
    its own, e.g. brown noise of another width), with ``sigma`` replacing the Gaussian level when given."""
    config = noise if isinstance(noise, NoiseConfig) else profile.noise_config(noise)
    return config if sigma is None else dataclasses.replace(config, sigma=float(sigma))


def evaluate_run(model, profile: Profile, seed: int = 0, sigma: float | None = None,
                 data_dir: str | None = None, rt: Runtime | None = None, sources: DataSources | None = None,
                 noise: str | None = None, test_sets: tuple[str, ...] | None | str = "profile",
                 limit_override: int | None = None) -> dict[str, Evaluation]:
    """PSNR/SSIM on the profile's test sets (``test_sets``: a tuple of names, None for every
    available set), with the paper's protocol, fixed noise seeds and the profile's repeats.
    ``model`` is a module, a callable baseline, or None for the noisy input; a module runs in the
    runtime ``rt`` (None: this machine's, ``Runtime.resolve()``)."""
    sources = sources or data_sources(data_dir)
    wanted = profile.eval.sets if test_sets == "profile" else test_sets
    names = [k for k in sources.test_sets if wanted is None or k in wanted] or [sources.main_test_set]
    limits = {}
    for name in names:
        given = [n for n in (dict(profile.eval.limits).get(name, profile.eval.limit), limit_override) if n]
        limits[name] = min(given) if given else None
    if rt is None and isinstance(model, torch.nn.Module):
        rt = Runtime.resolve()
    return evaluate_sets(model, sources, names, noise_settings(profile, noise, sigma), seed=seed, rt=rt,
                         repeats=dict(profile.eval.repeats), limits=limits, crop=profile.eval.crop)


def evaluate_sets(model, sources: DataSources, names: list[str], noise_cfg: NoiseConfig, seed: int = 0,
                  rt: Runtime | None = None, repeats: dict[str, int] | None = None,
                  limits: dict[str, int | None] | None = None, crop: int | None = None,
                  label: str = "", ensemble: bool = False, grey: bool = False) -> dict[str, Evaluation]:
    """The paper's protocol on the test sets ``names`` of ``sources``: the first ``limits[name]``
    images of each (all without one), ``repeats[name]`` noise draws per image (default 1), cached by
    weights and protocol. A module runs in the runtime ``rt`` (required for one), with ``ensemble`` as
    an ``augment.SelfEnsemble`` (not the paper's protocol); ``grey``: the images in grey (``evaluate``).
    Prints one line per set, after ``label``."""
    repeats, limits = repeats or {}, limits or {}
    _check_runtime(model, rt)
    if ensemble and not isinstance(model, torch.nn.Module):
        raise ValueError("a self-ensemble averages a network's outputs; a baseline or the noisy input has none")
    if isinstance(model, torch.nn.Module):
        model = (SelfEnsemble(model) if ensemble else model).to(rt.device).eval()
    results = {}
    for name in names:
        all_files = sources.test_sets[name]
        files = all_files[:limits[name]] if limits.get(name) else all_files
        ev = evaluate(model, files, test_noise(noise_cfg), seed=seed, rt=rt, crop=crop,
                      repeats=repeats.get(name, 1), cache_dir=paths.eval_cache_dir(), grey=grey)
        ev.extra.update(comparable_with_paper=sources.comparable, data=sources.origin, available=len(all_files))
        if isinstance(model, SelfEnsemble):
            ev.extra["self_ensemble"] = 8
        results[name] = ev
        print(f"{label}{name} ({len(files)} images x {ev.repeats}): PSNR {ev.psnr:.2f} dB, SSIM {ev.ssim:.4f}, "
              f"noisy input {ev.psnr_input:.2f} dB" + (f" [{ev.precision}]" if ev.precision == "bf16" else "")
              + (" [x8 self-ensemble]" if isinstance(model, SelfEnsemble) else ""))
    return results


def plan_sets(sources: DataSources, sets: list[str] | None = None,
              repeats: int | str = 1) -> tuple[list[str], dict[str, int]]:
    """The test sets to evaluate (``sets``; default: every available one) and the noise draws per
    image of each (``repeats``: a number, or "paper" for the draws of the authors' follow-up code)."""
    sets = list(sets or sources.test_sets)
    unknown = [s for s in sets if s not in sources.test_sets]
    if unknown:
        raise ValueError(f"test set {unknown[0]!r} is not available; available: {', '.join(sources.test_sets)}")
    return sets, {name: dict(PAPER_REPEATS).get(name, 1) if repeats == "paper" else int(repeats) for name in sets}


def noise_from(base: dict | None, kind: str | None = None, **levels: float | None) -> NoiseConfig:
    """The noise to evaluate under: a checkpoint's noise settings (``base``, a NoiseConfig as a
    dict; the defaults without one), with the kind and each test level that is given (``sigma=``,
    ``lam=``, ...: the ``param`` of a noise type) replacing its own."""
    names = {"kind", *(name for cls in NOISE_TYPES.values() for name in (cls.param, *cls.options))}
    unknown = set(levels) - names
    if unknown:
        raise TypeError(f"noise_from: no noise type has the level {', '.join(sorted(unknown))}")
    fields = {k: v for k, v in (base or {}).items() if k in names}
    fields.update({k: v for k, v in dict(levels, kind=kind).items() if v is not None})
    return NoiseConfig(**fields)


def write_json(path: str | Path, label: str, noise_cfg: NoiseConfig, seed: int, precision: str | None,
               evaluations: dict[str, Evaluation]) -> Path:
    """``n2n eval --json``: what was evaluated, under which noise, seed and number format, and the
    numbers per test set and per image (atomically)."""
    sets = {name: {**ev.as_dict(), "per_image": [
        {"image": n, "psnr": round(p, 4), "psnr_input": round(i, 4), "ssim": round(s, 5)}
        for n, p, i, s in zip(ev.names, ev.psnr_images, ev.psnr_input_images, ev.ssim_images)]}
        for name, ev in evaluations.items()}
    return atomic_write_text(path, json.dumps({"model": label, "noise": dataclasses.asdict(noise_cfg), "seed": seed,
                                               "precision": precision, "sets": sets}, indent=2) + "\n")

