"""What the notebooks call: one function per step of the study, each a few lines over the modules.

A run is named ``<model>_<n2n|clean|nb2nb>_<noise>`` (e.g. ``unet_n2n_gaussian``; ``n2n`` is the
loss's name where it is not L2, or where the noise type is about losses: ``unet_l1_text``; brown
noise carries its width: ``unet_n2n_brown2``; the capture budget's runs are ``unet_capture_case<n>``);
its checkpoint is ``checkpoints/<name>.pth`` in the cpu profile and ``checkpoints/<profile>/<name>.pth``
otherwise. The studies of notebooks 07-10 are in ``studies.methods``.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .. import paths
from ..data.capture import CaptureCase
from ..training.checkpoint import load_model
from ..config import METHODS, ModelConfig, Profile, TrainConfig, get_profile
from ..paper.reported import TABLE1
from ..data.patches import PatchSets, build_patch_sets, patch_set_path
from ..evaluation.protocol import Evaluation, data_sources, evaluate_run, noise_from, noise_settings
from ..paper.noise import NoiseConfig, test_noise
from ..paths import checkpoint_path, report_path  # noqa: F401 (the notebooks' names)
from ..data.sources import CaptureSource, PatchSource
from ..training.run import RunSpec, TrainedRun, train_run
from ..training.runtime import Runtime, infer, runtime  # noqa: F401 (runtime: the notebooks' name)
from ..training.train import History  # noqa: F401 (the notebooks' name)

def run_name(model: str, target: str, noise: str | NoiseConfig = "gaussian", loss: str = "l2") -> str:
    """The name of a run of the study (module docstring); ``noise``: a kind or its settings."""
    config = noise if isinstance(noise, NoiseConfig) else NoiseConfig(noise)
    if target in ("clean", "nb2nb"):
        method = target
    else:
        method = loss if loss != "l2" or config.noise_type.loss_named else "n2n"
    return f"{model}_{method}_{config.tag}"


# ------------------------------------------------------------------------------------- data
def prepare_patches(profile: Profile, seed: int = 0, data_dir: str | None = None,
                    rebuild: bool = False) -> tuple[PatchSets, Path]:
    """Cut (or load, when already cut with the same settings) the training/validation patch sets."""
    path = patch_set_path(profile.name, seed)
    if path.is_file() and not rebuild:
        sets = PatchSets.load(path)
        print(f"Loaded {path}: {len(sets.train)} training and {len(sets.val)} validation patches "
              f"({sets.meta['description']})")
        return sets, path
    sources = data_sources(data_dir)
    sets = build_patch_sets(sources, profile.data, seed)
    sets.save(path)
    print(f"Wrote {path}: {len(sets.train)} training and {len(sets.val)} validation patches")
    return sets, path


def load_patches(profile: Profile, seed: int = 0) -> PatchSets:
    return PatchSets.load(patch_set_path(profile.name, seed))


# --------------------------------------------------------------------------------- training
def train(model: str, target: str, profile: Profile, seed: int = 0, sigma: float | None = None,
          max_steps: int | None = None, max_seconds: float | None = None, rt: Runtime | None = None,
          progress: bool = True, noise: str | NoiseConfig | None = None,
          loss: str | None = None, capture: CaptureCase | None = None) -> TrainedRun:
    """Train (or resume, or reload when finished) one denoiser of the study on the patch sets of
    notebook 01, on ``noise`` (a kind of ``noise.NOISE_TYPES``, or its settings; default: the
    profile's) with ``loss`` (default: the profile's, L2), in the runtime ``rt`` (None: this
    machine's; see ``train.fit``). Budget overrides replace the profile's. ``capture``: train on the fixed
    captures of that case of the capture budget (``capture``; run ``<model>_capture_case<n>``)."""
    name, noise_cfg, settings = study_run(model, target, profile, seed, sigma, max_steps, max_seconds, noise, loss,
                                          capture)
    model_cfg: ModelConfig = profile.model(model)
    path = checkpoint_path(profile.name, name)
    patches = load_patches(profile, seed)
    record = {"profile": profile.name, "method": METHODS[target], "model": dataclasses.asdict(model_cfg),
              "noise": dataclasses.asdict(noise_cfg), "data": patches.meta}
    if capture is None:
        source = PatchSource(patches.train, patches.val, noise_cfg)
    else:
        source = CaptureSource(capture, patches.train, patches.val, noise_cfg)
        record["capture"] = dataclasses.asdict(capture)
    return train_run(RunSpec(name, model_cfg, source, settings, path, record), rt or Runtime.resolve(),
                     progress=progress)


def study_run(model: str, target: str, profile: Profile, seed: int = 0, sigma: float | None = None,
              max_steps: int | None = None, max_seconds: float | None = None, noise: str | NoiseConfig | None = None,
              loss: str | None = None, capture: CaptureCase | None = None
              ) -> tuple[str, NoiseConfig, Callable[[str], TrainConfig]]:
    """What ``train`` trains for these arguments: the run's name, its noise, and its training
    settings for a resolved number format (the budget may depend on it). ``plan`` reads the same."""
    noise_cfg = noise_settings(profile, noise, sigma)
    name = run_name(profile.model(model).name, target, noise_cfg, loss or profile.train.loss)
    if capture is not None:
        name = f"{model}_capture_{capture.name}"

    def settings(precision: str) -> TrainConfig:
        return profile.run_settings(model, noise_cfg.kind, target, seed, max_steps=max_steps, max_seconds=max_seconds,
                                    precision=precision, loss=loss)

    return name, noise_cfg, settings


def record_results(profile: Profile, run: str, results: dict[str, Evaluation], extra: dict | None = None) -> Path:
    """Merge one run's numbers into ``reports/results.json`` (atomically)."""
    entry = {name: ev.as_dict() for name, ev in results.items()}
    if extra:
        entry.update(extra)
    return update_results(profile, lambda data: data.setdefault("runs", {}).__setitem__(run, entry))


def update_results(profile: Profile, change) -> Path:
    """Read ``reports/results.json``, apply ``change(data)`` in place and write it back atomically,
    with the provenance of this write (commit, torch, hardware, command, date) under "provenance"."""
    from ..provenance import provenance

    path = report_path(profile.name, "results.json")
    data = _results_file(path)
    data.setdefault("profile", profile.name)
    change(data)
    data["provenance"] = provenance()
    return paths.atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_results(profile: Profile) -> dict:
    return _results_file(report_path(profile.name, "results.json"))


def _results_file(path: Path) -> dict:
    """The contents of a results.json ({} where there is none yet); a ValueError naming the file when it
    is damaged or not one of ours, so that it is neither misread nor replaced (it may hold hours of runs)."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not readable as JSON ({err}); restore it from a copy, or move it away and run the "
                         f"notebooks again to rewrite it") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs", {}), dict):
        raise ValueError(f"{path}: not a results file of n2n_core (a JSON object with \"runs\" expected, found "
                         f"{type(data).__name__}); move it away and run the notebooks again to rewrite it")
    return data


def recorded_psnr(profile: Profile, test_set: str) -> dict[str, float]:
    """Each recorded run's PSNR on ``test_set`` (results.json), by run name."""
    runs = read_results(profile).get("runs", {})
    return {name: runs[name][test_set]["psnr"] for name in sorted(runs) if test_set in runs[name]}


def compare_targets(profile: Profile, n2n_run: TrainedRun, clean_run: TrainedRun, test_set: str) -> tuple[float, float]:
    """The recorded PSNR of the noisy- and the clean-target run on ``test_set``, printed side by
    side with their difference: the claim of notebook 04."""
    recorded = recorded_psnr(profile, test_set)
    n2n, clean = recorded[n2n_run.name], recorded[clean_run.name]
    print(f"{test_set}: N2N {n2n:.2f} dB, clean targets {clean:.2f} dB, difference {clean - n2n:+.2f} dB")
    return n2n, clean


# ---------------------------------------------------------------------------------- Table 1
def train_table_models(profile: Profile, seed: int = 0, rt: Runtime | None = None,
                       noises: tuple[str, ...] | None = None, progress: bool = True) -> dict[tuple[str, str], TrainedRun]:
    """Train, resume or reload the U-Nets of Table 1: clean and noisy targets for every noise type
    (the Gaussian pair is the one notebooks 03 and 04 train, reused when present), in the runtime
    ``rt`` (None: this machine's)."""
    noises = tuple(TABLE1) if noises is None else tuple(noises)
    rt = rt or Runtime.resolve()
    runs = {}
    for noise in noises:
        for target in ("noisy", "clean"):
            print(f"--- U-Net, {noise} noise, {target} targets")
            runs[(noise, target)] = train("unet", target, profile, seed=seed, rt=rt, noise=noise,
                                          progress=progress)
    return runs


def paper_table(runs: dict, profile: Profile, seed: int = 0, data_dir: str | None = None, rt: Runtime | None = None,
                run_baselines: bool = True):
    """Measure Table 1 for ``runs`` (from ``train_table_models``) and the baselines on every
    available test set, the networks in the runtime ``rt`` (None: this machine's); write
    ``reports/table1.md``, ``table1.csv`` and ``table1.png`` and record the cells in
    ``results.json``. Returns the Table1."""
    from ..evaluation.plots import table1_figure
    from ..evaluation.table import measure

    models_ = {key: run.model if isinstance(run, TrainedRun) else run for key, run in runs.items()}
    table = measure(models_, profile, rt or Runtime.resolve(), seed=seed, data_dir=data_dir,
                    baseline_sets=profile.eval.baseline_sets, run_baselines=run_baselines,
                    baseline_limit=profile.eval.baseline_limit)
    written = table.write(report_path(profile.name, "table1.md").parent)
    table1_figure(table, written["md"].with_suffix(".png"))
    update_results(profile, lambda data: data.__setitem__("table1", table.rows()))
    return table


__all__ = ["get_profile", "prepare_patches", "train", "evaluate_run", "record_results", "read_results",
           "checkpoint_path", "report_path", "run_name", "load_model", "train_table_models", "paper_table",
           "denoise_demo", "demo_noise", "demo_range", "runtime", "Runtime"]


# --------------------------------------------------------------------------------- figures
@torch.inference_mode()
def before_after(models_by_label: dict[str, torch.nn.Module], profile: Profile, path: str | Path, seed: int = 0,
                 sigma: float | None = None, data_dir: str | None = None, rt: Runtime | None = None,
                 image_index: int = 0, crop: int = 256, noise: str | None = None) -> Path:
    """Clean, noisy and denoised versions of one test image (the whole image is denoised, in the
    runtime ``rt``, None: this machine's; a centre crop is shown), with each PSNR (full image, 8-bit
    protocol) in the titles."""
    from ..data.sets import load_image
    from ..data.images import center_crop
    from ..evaluation.protocol import noise_generator
    from ..paper.metrics import psnr
    from ..evaluation.plots import image_grid

    sources = data_sources(data_dir)
    files = sources.test_sets[sources.main_test_set]
    clean = center_crop(load_image(files[image_index]), profile.eval.crop)
    noisy = test_noise(noise_settings(profile, noise, sigma))(clean, noise_generator(seed, image_index))
    rt = rt or Runtime.resolve()
    row = [("clean", center_crop(clean, crop)), (f"noisy: {float(psnr(noisy, clean)):.2f} dB", center_crop(noisy, crop))]
    for label, model in models_by_label.items():
        with torch.inference_mode():  # no autograd graph of a whole test image
            out = infer(model.to(rt.device).eval(), noisy[None], rt)[0]
        row.append((f"{label}: {float(psnr(out, clean)):.2f} dB", center_crop(out, crop)))
    return image_grid([row], path)


def summary_table(profile: Profile) -> str:
    """A Markdown table of every PSNR in results.json next to the paper's (written to summary.md),
    with a note under it when some were not measured on the paper's data."""
    from ..paper.reported import reference

    data = read_results(profile)
    lines = ["| run | test set | PSNR (dB) | noisy input (dB) | SSIM | paper (dB) |", "|---|---|---|---|---|---|"]
    comparable = True
    for run, sets in sorted(data.get("runs", {}).items()):
        for test_set, r in sets.items():
            if not isinstance(r, dict) or "psnr" not in r:
                continue
            ref = reference(run, test_set)
            comparable &= r.get("comparable_with_paper", True)
            ref = f"{ref:.2f}" if ref is not None and r.get("comparable_with_paper", True) else "n/a"
            lines.append(f"| {run} | {test_set} ({r['images']}) | {r['psnr']:.2f} | {r['psnr_input']:.2f} | "
                         f"{r['ssim']:.4f} | {ref} |")
    if not comparable:
        lines += ["", "NOTE: measured on scikit-image's embedded photographs (offline default), NOT comparable with "
                      "the paper. Set N2N_DATA_DIR to a folder with train_pool/ and kodak/ for comparable numbers."]
    table = "\n".join(lines) + "\n"
    path = report_path(profile.name, "summary.md")
    path.write_text(f"# Results of the {profile.name} profile\n\n{table}")
    return table


def paper_references(test_set: str) -> dict[str, float]:
    """The paper's PSNR for each run name of this study that it reports, on ``test_set``."""
    from ..paper.reported import reference

    runs = [run_name(m, t) for m in ("resnet", "unet") for t in ("noisy", "clean")]
    return {run: ref for run in runs if (ref := reference(run, test_set)) is not None}


# ------------------------------------------------------------------------------ quickstart
@dataclass
class Demo:
    """One photograph, its noisy version and the denoised result, with their PSNRs (8-bit protocol);
    its repr names the PSNRs only (a notebook that shows it prints one line, not three images)."""
    clean: torch.Tensor = dataclasses.field(repr=False)
    noisy: torch.Tensor = dataclasses.field(repr=False)
    denoised: torch.Tensor = dataclasses.field(repr=False)
    psnr_noisy: float
    psnr_denoised: float


def demo_noise(checkpoint: dict, level: float | None = None) -> NoiseConfig:
    """The noise a checkpoint (``load_checkpoint``'s dict) was trained on, at its test level or at
    ``level`` (notebook 00: the shipped Gaussian weights give sigma 25, the Poisson ones lambda 30)."""
    noise = noise_from(checkpoint.get("config", {}).get("noise"))
    return noise if level is None else noise.at_level(level)


def demo_range(noise: NoiseConfig) -> tuple[float, float]:
    """The levels a demo's slider offers: the blind training range of ``noise``, else the paper's."""
    return noise.train_range() or noise.noise_type.paper_range


def denoise_demo(model: torch.nn.Module, clean: torch.Tensor, level: float, seed: int = 0,
                 rt: Runtime | None = None, noise: NoiseConfig | None = None) -> Demo:
    """Noise of ``noise``'s kind (default Gaussian) at ``level`` (its test level's scale, e.g. sigma
    on 0..255; a function of ``seed``) added to a clean 3 x H x W image in [0, 1], denoised by
    ``model`` whole in the runtime ``rt`` (None: this machine's; notebook 00)."""
    from ..evaluation.denoise import denoise_tensor
    from ..paper.metrics import psnr
    from ..paper.noise import seeded_generator

    noisy = test_noise((noise or NoiseConfig()).at_level(level))(clean, seeded_generator(seed, 0))
    denoised = denoise_tensor(model, noisy, rt or Runtime.resolve(), tile=0)
    return Demo(clean, noisy, denoised, float(psnr(noisy, clean)), float(psnr(denoised, clean)))


def show_demo(model: torch.nn.Module, clean: torch.Tensor, level: float, seed: int = 0, rt: Runtime | None = None,
              save: str | Path | None = None, noise: NoiseConfig | None = None) -> Demo:
    """``denoise_demo`` drawn (``plots.demo_figure``): clean, noisy and denoised side by side with
    their PSNRs, saved to ``save`` when given (notebook 00 calls it, and its slider calls it again)."""
    from ..evaluation.plots import demo_figure

    demo = denoise_demo(model, clean, level, seed=seed, rt=rt, noise=noise)
    symbol = (noise or NoiseConfig()).noise_type.symbol
    demo_figure([("clean", demo.clean), (f"noisy, {symbol} {level:g}: {demo.psnr_noisy:.2f} dB", demo.noisy),
                 (f"denoised: {demo.psnr_denoised:.2f} dB", demo.denoised)], save)
    return demo


def redraw_demo(model: torch.nn.Module, clean: torch.Tensor, level: float, seed: int = 0, rt: Runtime | None = None,
                noise: NoiseConfig | None = None) -> None:
    """``show_demo`` for a slider (ipywidgets ``interact``): draws the figure and returns nothing,
    since ``interact`` shows what its function returns under the figure."""
    show_demo(model, clean, level, seed=seed, rt=rt, noise=noise)
