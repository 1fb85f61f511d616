"""`make blindcheck`: what blind training costs. One U-Net trained blind (Gaussian sigma ~ U(0, 50), the
shipped weights' noise) against one U-Net per test level trained at that level only, all with the
shipped weights' recipe (the ``pretrained`` profile: crops, batch, Adam, the ramp-down, the moving
average) and the same number of steps, on the same pool; then Kodak at each level with the paper's
protocol. The check asks the blind model to come within ``LIMIT_DB`` of the level-specific ones.

    python -m n2n_core.blindcheck [--steps 5000] [--levels 15 25 50] [--max-minutes M] [--data-dir DIR]

The shipped run is 60,000 steps; four such runs are hours on a 2-core CPU, so ``--steps`` sets the
budget of this comparison (the ramp-down then spans the last 30% of those steps) and the report
says which budget it measured. At the shipped run's own budget the blind model is the shipped
weights themselves (when their recorded run is exactly this recipe on this pool), not trained again.
Each run checkpoints under ``checkpoints/blindcheck/<steps>/`` and resumes; ``--max-minutes`` ends
the call after that much training (the same command goes on); the table goes to
``reports/blindcheck.md`` and ``.json`` once every run is finished.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time

from .. import paths
from . import pretrained
from ..training.checkpoint import load_checkpoint, model_from_state, pretrained_path
from ..evaluation.protocol import evaluate_sets
from ..training.interrupts import TrainingInterrupted
from ..paper.noise import NoiseConfig
from ..data.patches import build_patch_sets
from ..training.run import train_run
from ..training.runtime import Runtime
from ..training.train import same_run

LEVELS = (15.0, 25.0, 50.0)
LIMIT_DB = 0.3  # the check: blind within this much of the level-specific model


def run_noises(levels=LEVELS) -> dict[str, NoiseConfig]:
    """The blind run's noise (the shipped weights') and one fixed-level noise per test level."""
    blind = pretrained.noise_config("gaussian")
    low, high = blind.train_sigma_range
    outside = [level for level in levels if not low <= level <= high]
    if outside:
        raise ValueError(f"sigma {outside[0]:g} is outside the blind range {low:g}-{high:g}; choose levels in it")
    return {"blind": blind, **{f"sigma{level:g}": dataclasses.replace(blind, sigma=float(level), train_sigma_range=None)
                               for level in levels}}


def shipped_blind(run_config: dict, folder=None):
    """The shipped Gaussian weights (from ``folder``, default checkpoints/pretrained/) if their recorded,
    finished run is the blind run of ``run_config`` (same recipe, steps, noise and pool), else None."""
    path = pretrained_path("gaussian", folder)
    if not path.exists():
        return None
    shipped = load_checkpoint(path)
    wanted = {key: value for key, value in run_config.items() if key != "blindcheck"}
    if not shipped.get("finished") or not same_run(shipped.get("config", {}), wanted):
        return None
    return model_from_state(shipped, path)


def blind_check(steps: int = 5000, levels=LEVELS, data_dir=None, rt: Runtime | None = None, progress: bool = True,
                profile_override=None, max_minutes: float | None = None, shipped_folder=None) -> list[dict] | None:
    """Train (or resume) the blind and the level-specific U-Nets for ``steps`` steps each and compare
    them on Kodak; returns one row per level and writes the report. The blind model is the shipped
    weights where ``shipped_blind`` finds them to be this run. With ``max_minutes`` the call stops
    training after that long and returns None while a run is unfinished (the same call goes on). The
    networks train in the runtime ``rt`` (None: this machine's) and are measured on its device in float32."""
    if steps < 1:
        raise ValueError(f"--steps must be >= 1, got {steps}")
    if max_minutes is not None and max_minutes <= 0:
        raise ValueError(f"--max-minutes must be > 0, got {max_minutes}")
    deadline = None if max_minutes is None else time.monotonic() + 60.0 * max_minutes
    prof = profile_override or pretrained.profile()
    train_cfg = dataclasses.replace(prof.train, max_steps=steps)
    sources = pretrained._sources(data_dir)
    if "kodak" not in sources.test_sets:
        raise ValueError("the blind check measures on Kodak: put kodak/ beside train_pool/ in the data folder")
    sets = build_patch_sets(sources, prof.data, train_cfg.seed)
    folder = paths.checkpoint_dir() / "blindcheck" / str(steps)
    trained, unfinished, blind_shipped, trained_here = {}, [], False, False
    run_prof, data = dataclasses.replace(prof, train=train_cfg), pretrained.pool_data(sources, sets)
    rt = rt or Runtime.resolve()
    for name, noise_cfg in run_noises(levels).items():
        run_config = {**pretrained.make_run_config("gaussian", run_prof, data, noise_cfg), "blindcheck": name}
        if name == "blind" and (shipped := shipped_blind(run_config, shipped_folder)) is not None:
            print(f"blind: the shipped weights ({pretrained_path('gaussian', shipped_folder)}), whose run is this "
                  f"recipe at {steps} steps; not trained again")
            trained[name], blind_shipped = shipped, True
            continue
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if left == 0.0 and trained_here:  # (the first run of a call always takes at least a step)
            unfinished.append(name)
            continue
        print(f"{name}: {steps} steps")
        path = folder / f"unet_{name}.pth"
        spec = pretrained.noisy_pairs_spec(run_prof, noise_cfg, sets.train, sets.val, path, run_config)
        run = train_run(spec, rt, progress=progress, chunk_seconds=left)
        trained_here = True
        if not load_checkpoint(path)["finished"]:
            unfinished.append(name)
        trained[name] = run.model
    if unfinished:
        print(f"blindcheck: --max-minutes {max_minutes:g} spent; unfinished: {', '.join(unfinished)}. The same command "
              f"goes on from the checkpoints in {folder}")
        return None
    rows, measure_rt = [], rt.with_precision("fp32")
    for level in levels:
        cfg = NoiseConfig(kind="gaussian", sigma=float(level))
        blind = evaluate_sets(trained["blind"], sources, ["kodak"], cfg, label=f"blind, sigma {level:g}: ",
                              rt=measure_rt)["kodak"]
        own = evaluate_sets(trained[f"sigma{level:g}"], sources, ["kodak"], cfg, rt=measure_rt,
                            label=f"trained at sigma {level:g}: ")["kodak"]
        rows.append({"sigma": level, "blind": round(blind.psnr, 2), "level_specific": round(own.psnr, 2),
                     "gap": round(blind.psnr - own.psnr, 2), "holds": blind.psnr >= own.psnr - LIMIT_DB})
    write_report(rows, steps, train_cfg, len(sources.test_sets["kodak"]), shipped=blind_shipped)
    return rows


def write_report(rows: list[dict], steps: int, train_cfg, images: int, shipped: bool = False) -> None:
    pixels = steps * train_cfg.batch_size * train_cfg.crop ** 2
    lines = [f"# Blind against level-specific training ({steps} steps each, {pixels / 1e9:.2f} Gpix)", "",
             f"U-Nets with the shipped weights' recipe (`make blindcheck STEPS={steps}`), Kodak ({images} images, "
             f"seed 0, the paper's protocol). Rule: blind within {LIMIT_DB} dB of the model trained at the level."
             + (" The blind model is the shipped weights (`pretrained:gaussian`), whose run is this one." if shipped
                else ""), "",
             "| sigma | blind | trained at the level | blind - level | holds |", "|---|---|---|---|---|"]
    lines += [f"| {r['sigma']:g} | {r['blind']:.2f} | {r['level_specific']:.2f} | {r['gap']:+.2f} | "
              f"{'yes' if r['holds'] else 'no'} |" for r in rows]
    report = paths.report_dir()
    paths.atomic_write_text(report / "blindcheck.md", "\n".join(lines) + "\n")
    paths.atomic_write_text(report / "blindcheck.json", json.dumps({"steps": steps, "blind_is_shipped": shipped,
                                                                    "rows": rows}, indent=2) + "\n")
    print("\n".join(lines))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m n2n_core.studies.blindcheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=5000, help="training steps of each run (default 5000)")
    parser.add_argument("--levels", type=float, nargs="+", default=list(LEVELS), help="test sigmas (default 15 25 50)")
    parser.add_argument("--max-minutes", type=float, help="stop training after this many minutes; the same command "
                                                           "goes on from the checkpoints")
    parser.add_argument("--data-dir", help="folder with train_pool/ and kodak/ (default: N2N_DATA_DIR)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    try:
        blind_check(args.steps, tuple(args.levels), args.data_dir, Runtime.resolve(args.device),
                    max_minutes=args.max_minutes)
    except (ValueError, pretrained.PretrainedError) as err:
        raise SystemExit(f"blindcheck: {err}") from None
    except TrainingInterrupted as stop:  # Ctrl-C or SIGTERM: fit wrote a checkpoint at the step it stopped at
        print(f"blindcheck: {stop.resume_hint()}", file=sys.stderr)
        raise SystemExit(stop.exit_code) from None


if __name__ == "__main__":
    main()
