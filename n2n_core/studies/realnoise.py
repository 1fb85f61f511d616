"""Notebook 11: Noise2Noise on real microscope noise (``data.fmd``: the FMD confocal captures, or the
simulated stand-in where they are missing).

The paper's U-Net is trained on the training scenes with one budget and seed (``Profile.realnoise``)
four ways, each a run of the ``captures`` source (``data.sources.CaptureFolders``): Noise2Noise on
pairs of different captures (``n2n``); clean targets, the scene's reference (``clean``, the baseline
N2N is judged against); Neighbor2Neighbor on every capture as a single one (``nb2nb``); and the
shipped weights fine-tuned on the pairs (``finetuned``). The shipped weights as they are
(``zeroshot``) need no training. Each is measured on the test scenes against their references by
``evaluation.captures`` (the denoised first capture), beside one capture, the mean of 2, 4 and 8
captures and BM3D after the generalized Anscombe transform; results.json gets the runs and the study
"realnoise", from which ``claims`` makes its row.
"""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import METHODS, Profile, TrainConfig
from ..data.fmd import RealCaptures, find_captures
from ..data.images import center_crop
from ..data.sources import CaptureFolders, Scene, load_scenes, read_reference
from ..evaluation import baselines
from ..evaluation.captures import SceneNumbers, evaluate_captures, gain_notes, means
from ..evaluation.denoise import denoise_rgb
from ..evaluation.grey import GreyRoute, grey_route
from ..paths import checkpoint_path
from ..training.checkpoint import load_checkpoint, model_from_state
from ..training.run import RunSpec, TrainedRun, train_run
from ..training.runtime import Runtime
from .experiment import update_results

SHIPPED = "pretrained:gaussian"
TRAINED = {"n2n": "noisy", "clean": "clean", "nb2nb": "nb2nb", "finetuned": "noisy"}  # method -> target
LABELS = {"input": "1 capture", "mean2": "mean of 2", "mean4": "mean of 4", "mean8": "mean of 8",
          "bm3d": "BM3D+GAT", "n2n": "N2N, pairs of captures", "clean": "clean targets (reference)",
          "nb2nb": "Nb2Nb, single captures", "zeroshot": "shipped weights", "finetuned": "shipped weights, fine-tuned"}
BASELINE_KEYS = {"capture": "input", "mean2": "mean2", "mean4": "mean4", "mean8": "mean8", "bm3d_vst": "bm3d"}


@dataclass
class RealStudy:
    """The study's data, its trained runs, each method's numbers per test scene and their means
    (PSNR and SSIM; keys of ``LABELS``)."""
    data: RealCaptures
    runs: dict[str, TrainedRun]
    rows: dict[str, list[SceneNumbers]]
    psnr: dict[str, float]
    ssim: dict[str, float]


def run_name(method: str, data: RealCaptures) -> str:
    """``unet_<method>_fmd`` (``_standin`` on the stand-in, so that neither replaces the other)."""
    return f"unet_{method}_{data.tag}"


def real_settings(profile: Profile, method: str, seed: int = 0) -> TrainConfig:
    """The training settings of ``method``'s run (a key of ``TRAINED``): the profile's real-noise budget
    (the fine-tuning at its own learning rate)."""
    budget = profile.realnoise
    return dataclasses.replace(profile.train, target=TRAINED[method], seed=seed, max_steps=budget.steps,
                               max_seconds=None, batch_size=budget.batch_size, crop=budget.crop,
                               lr=budget.finetune_lr if method == "finetuned" else budget.lr,
                               val_every=max(1, min(profile.train.val_every, budget.steps // 4)))


def train_real(profile: Profile, method: str, data: RealCaptures, seed: int = 0, rt: Runtime | None = None,
               init: str = SHIPPED, progress: bool = True) -> TrainedRun:
    """Train (or resume, or reload) the U-Net of ``method`` (a key of ``TRAINED``) on the training
    scenes of ``data`` with the profile's real-noise budget, into ``checkpoints/unet_<method>_fmd.pth``."""
    model_cfg, cfg = profile.model("unet"), real_settings(profile, method, seed)
    start = init if method == "finetuned" else None
    source = CaptureFolders(data.captures, data.references, tuple(data.train), hold_out=False)
    record = {"profile": profile.name, "method": METHODS[cfg.target], "model": dataclasses.asdict(model_cfg),
              "data": data.origin, "init": start}
    name = run_name(method, data)
    spec = RunSpec(name, model_cfg, source, lambda _: cfg, checkpoint_path(profile.name, name), record, init=start)
    print(f"--- U-Net, {data.tag}, {LABELS[method]}")
    return train_run(spec, rt or Runtime.resolve(), progress=progress)


def evaluation_scenes(data: RealCaptures) -> tuple[list[Scene], list[torch.Tensor]]:
    """The test scenes of ``data`` and their references."""
    scenes = load_scenes(data.captures, names=tuple(data.test))
    return scenes, [read_reference(data.references, scene) for scene in scenes]


def measure(model: torch.nn.Module, checkpoint: str | Path, scenes: list[Scene], refs: list[torch.Tensor],
            rt: Runtime, progress: bool = False, config: dict | None = None) -> list[SceneNumbers]:
    """The numbers of ``model`` (loaded from ``checkpoint``, which records ``config`` where the caller
    holds it) on the test scenes: its denoised first capture against the reference, grey captures
    taken as `n2n eval --captures` takes them."""
    grey = grey_route(checkpoint, default=False, device=rt.device, config=config)
    return evaluate_captures(scenes, refs, model, rt, bm3d=False, progress=progress, grey=grey)


def run_realnoise(profile: Profile, seed: int = 0, data_dir: str | None = None, rt: Runtime | None = None,
                  init: str = SHIPPED, progress: bool = True) -> RealStudy:
    """The study of the module docstring: find the captures, train the four runs, measure them, the
    shipped weights ``init`` and the baselines on the test scenes, record it all in results.json."""
    rt = rt or Runtime.resolve()
    budget = profile.realnoise
    data = find_captures(data_dir, side=budget.standin_side, count=budget.standin_captures, seed=seed)
    print(data.summary())
    runs = {method: train_real(profile, method, data, seed, rt, init, progress) for method in TRAINED}
    scenes, refs = evaluation_scenes(data)
    rows = {"baselines": evaluate_captures(scenes, refs, bm3d=baselines.available(), progress=progress)}
    for method, run in runs.items():
        rows[method] = measure(run.model, run.checkpoint, scenes, refs, rt, progress=progress, config=run.config)
    shipped = load_checkpoint(init)  # read once: the network and the configuration its grey route needs
    rows["zeroshot"] = measure(model_from_state(shipped, init, rt.device), init, scenes, refs, rt, progress=progress,
                               config=shipped.get("config"))
    study = RealStudy(data, runs, rows, *_means(rows))
    record_study(profile, study, seed)
    return study


def _means(rows: dict[str, list[SceneNumbers]]) -> tuple[dict[str, float], dict[str, float]]:
    """Each method's mean PSNR and SSIM over the test scenes, under the keys of ``LABELS``."""
    summary = {BASELINE_KEYS[m]: v for m, v in means(rows["baselines"]).items()}
    summary.update({method: means(r)["model"] for method, r in rows.items() if method != "baselines"})
    order = [k for k in LABELS if k in summary]
    return ({k: summary[k]["psnr"] for k in order}, {k: summary[k]["ssim"] for k in order})


def record_study(profile: Profile, study: RealStudy, seed: int) -> Path:
    """results.json: each run (its PSNR, SSIM and the input's on the test scenes, and its training's
    facts) and the study "realnoise" (every method's means, and per scene)."""
    data, test_set = study.data, f"{study.data.tag}_test"
    comparable = data.real

    def change(results: dict) -> None:
        for method, run in study.runs.items():
            numbers = {"psnr": study.psnr[method], "ssim": study.ssim[method], "psnr_input": study.psnr["input"],
                       "images": len(data.test), "comparable_with_paper": comparable}
            results.setdefault("runs", {})[run.name] = {test_set: numbers, **run.facts()}
        results.setdefault("studies", {})["realnoise"] = {
            "noise": "real (FMD confocal)" if data.real else "simulated Poisson-Gaussian stand-in (NOT comparable)",
            "data": data.description, "real_data": data.real, "comparable_with_paper": comparable,
            "test_set": f"{data.tag} scenes {', '.join(data.test)}", "images": len(data.test), "seed": seed,
            "steps": {m: run.facts()["steps"] for m, run in study.runs.items()},
            "psnr": study.psnr, "ssim": study.ssim, "labels": {k: LABELS[k] for k in study.psnr},
            "per_scene": {m: {r.name: round(r.psnr.get("model", r.psnr["capture"]), 4) for r in rows}
                          for m, rows in study.rows.items() if m != "baselines"}}

    return update_results(profile, change)


@torch.inference_mode()
def crop_figure(study: RealStudy, path: str | Path, rt: Runtime | None = None, side: int = 128,
                method: str = "n2n") -> Path:
    """A centre crop of the first test scene: one capture, the mean of 4, the network of ``method``,
    the reference, each with its PSNR (whole image), brightened alike so that dark scenes show."""
    from ..evaluation.plots import image_grid

    rt = rt or Runtime.resolve()
    scenes, refs = evaluation_scenes(study.data)
    captures, reference = scenes[0].floats(), refs[0]
    model = study.runs[method].model.to(rt.device).eval()
    denoised = denoise_rgb(model, captures[0], scenes[0].grey, rt, GreyRoute(match=False), tile=0)[0]
    numbers = {r.name: r for r in study.rows["baselines"]}[scenes[0].name]
    mine = {r.name: r for r in study.rows[method]}[scenes[0].name]
    panels = [(f"1 capture: {numbers.psnr['capture']:.2f} dB", captures[0]),
              (f"mean of {min(4, len(captures))}: {numbers.psnr.get('mean4', numbers.psnr['capture']):.2f} dB",
               captures[:4].mean(0)),
              (f"{LABELS[method]}: {mine.psnr['model']:.2f} dB", denoised), ("reference", reference)]
    crops = [(title, center_crop(image, min(side, *image.shape[-2:]))) for title, image in panels]
    gain = min(16.0, 1.0 / max(float(torch.quantile(crops[-1][1].flatten(), 0.995)), 1e-3))
    return image_grid([[(f"{title}\n(scene {scenes[0].name}, x{gain:.1f})" if i == 0 else title, image * gain)
                        for i, (title, image) in enumerate(crops)]], path)


def print_table(study: RealStudy) -> None:
    """Each method's mean PSNR and SSIM on the test scenes, N2N's gap to clean targets, and the scenes
    whose captures differ in brightness from their reference."""
    print(f"{'method':<30}{'PSNR (dB)':>11}{'SSIM':>9}   test scenes {', '.join(study.data.test)}")
    for key, value in study.psnr.items():
        print(f"{LABELS[key]:<30}{value:>11.2f}{study.ssim[key]:>9.4f}")
    print(f"N2N - clean targets: {study.psnr['n2n'] - study.psnr['clean']:+.2f} dB" + (
        f"\n{study.data.note}" if study.data.note else ""))
    for line in gain_notes(study.rows["baselines"]):
        print(line)


def reference(study: RealStudy, profile: Profile, seed: int, rt: Runtime, argv: list[str] | None = None) -> dict:
    """The study as a reference file (docs/reference/realnoise.json): its numbers, each run's steps,
    seconds and number format, the runtime, and where it came from (``provenance``)."""
    from ..provenance import provenance

    budget = dataclasses.asdict(profile.realnoise)
    return {
        "what": f"notebook 11's study (n2n_core.studies.realnoise), profile {profile.name}: U-Nets trained on "
                f"{study.data.tag} scenes {', '.join(study.data.train)}, measured on {', '.join(study.data.test)} "
                f"(the denoised first capture against the reference; PSNR in dB with peak 1 on the files' 8-bit "
                f"values, SSIM), beside one capture, means of captures and BM3D after the generalized Anscombe "
                f"transform with the noise estimated from the captures",
        **provenance(argv), "runtime": rt.describe(), "data": study.data.description, "real_data": study.data.real,
        "seed": seed, "budget": budget, "runs": {m: {"name": run.name, **run.facts(), "init": run.config.get("init")}
                                                 for m, run in study.runs.items()},
        "psnr_db": {k: round(v, 2) for k, v in study.psnr.items()},
        "ssim": {k: round(v, 4) for k, v in study.ssim.items()},
        "labels": {k: LABELS[k] for k in study.psnr},
        "n2n_minus_clean_db": round(study.psnr["n2n"] - study.psnr["clean"], 2),
        "per_scene_psnr_db": {m: {r.name: round(r.psnr.get("model", r.psnr["capture"]), 2) for r in rows}
                              for m, rows in study.rows.items() if m != "baselines"},
        "baselines_per_scene_psnr_db": {r.name: {k: round(v, 2) for k, v in r.psnr.items()}
                                        for r in study.rows["baselines"]},
    }


def main(argv: list[str] | None = None) -> None:
    """`python -m n2n_core.studies.realnoise`: the study of notebook 11 (finished runs are reloaded),
    its table, and with ``--out`` its reference file."""
    import argparse
    import json

    from ..config import get_profile
    from ..paths import atomic_write_text

    parser = argparse.ArgumentParser(prog="python -m n2n_core.studies.realnoise", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="cpu", help="the profile whose realnoise budget trains (default cpu)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", help="folder with fmd_confocal_bpae/ (default: N2N_DATA_DIR, else the download)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--out", help="write the reference file here (for example docs/reference/realnoise.json)")
    args = parser.parse_args(argv)
    profile, rt = get_profile(args.profile), Runtime.resolve(args.device, args.precision)
    study = run_realnoise(profile, seed=args.seed, data_dir=args.data_dir, rt=rt, progress=False)
    print_table(study)
    if args.out:
        command = ["python", "-m", "n2n_core.studies.realnoise", *(argv if argv is not None else sys.argv[1:])]
        written = atomic_write_text(args.out, json.dumps(reference(study, profile, args.seed, rt, command),
                                                         indent=1) + "\n")
        print(f"Wrote {written}")


if __name__ == "__main__":
    main()
