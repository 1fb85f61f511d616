"""Command line of n2n_core.

    python -m n2n_core summary [--profile cpu]        the PSNR table of a `make all` run
    python -m n2n_core eval CHECKPOINT [options]     a checkpoint on the test sets, the paper's protocol
    python -m n2n_core eval --baseline input|bm3d    the noisy input, or BM3D, under the same noise
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import baselines, experiment
from .config import NOISE_KINDS, PAPER_REPEATS, PROFILES, get_profile


class UsageError(Exception):
    """A wrong argument or input: printed as one line, no traceback."""


def _repeats(value: str) -> str | int:
    if value == "paper":
        return value
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--repeats takes a positive integer or 'paper', got {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"--repeats must be >= 1, got {n}")
    return n


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m n2n_core", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    summary = sub.add_parser("summary", help="print the PSNR table of reports/results.json")
    summary.add_argument("--profile", default="cpu", choices=sorted(PROFILES))

    ev = sub.add_parser("eval", help="PSNR/SSIM of a checkpoint or a baseline on the test sets",
                        description="Evaluate with the paper's protocol: every image in RGB, noise in float "
                                    "(fixed seeds), output and reference clipped and rounded to 8 bit, PSNR per "
                                    "image over all channels, then the mean.")
    ev.add_argument("checkpoint", nargs="?", help="a .pth checkpoint written by this project")
    ev.add_argument("--baseline", choices=("input", "bm3d"),
                    help="evaluate the noisy input or BM3D (optional bm3d package) instead of a checkpoint")
    ev.add_argument("--noise", choices=NOISE_KINDS,
                    help="noise type (default: the checkpoint's, else gaussian)")
    ev.add_argument("--sigma", type=float, help="Gaussian sigma on the 0..255 scale (default 25)")
    ev.add_argument("--lam", type=float, help="Poisson lambda (default 30)")
    ev.add_argument("--p", type=float, help="Bernoulli drop probability (default 0.5)")
    ev.add_argument("--sets", nargs="+", metavar="SET",
                    help="test sets to use (default: every available one: kodak, bsd300, set14)")
    ev.add_argument("--repeats", type=_repeats, default=1,
                    help="noise draws per image: an integer, or 'paper' for Kodak x10, BSD300 x3, Set14 x20")
    ev.add_argument("--limit", type=int, help="only the first N images of each set")
    ev.add_argument("--seed", type=int, default=0, help="evaluation noise seed (default 0)")
    ev.add_argument("--data-dir", help="folder with kodak/, bsd300/, set14/ (default: N2N_DATA_DIR, downloads, "
                                       "or the embedded photographs)")
    ev.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ev.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    return parser


def _noise(args, checkpoint_noise: dict | None):
    from .config import NoiseConfig

    base = dict(checkpoint_noise or {})
    fields = {k: base[k] for k in ("kind", "sigma", "lam", "p") if k in base}
    if args.noise:
        fields["kind"] = args.noise
    for name in ("sigma", "lam", "p"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    try:
        return NoiseConfig(**fields)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _eval(args) -> int:
    import dataclasses

    from .checkpoint import load_checkpoint, load_model
    from .metrics import evaluate
    from .noise import test_noise

    if (args.checkpoint is None) == (args.baseline is None):
        raise UsageError("give a checkpoint or --baseline input|bm3d (one of the two)")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {args.limit}")
    try:
        device = experiment.resolve_device(args.device)
    except (ValueError, RuntimeError) as error:
        raise UsageError(f"--device {args.device}: {error}") from None
    checkpoint_noise, model = None, None
    if args.checkpoint:
        path = Path(args.checkpoint)
        if not path.is_file():
            raise UsageError(f"{path}: no such checkpoint; `make all` writes them to checkpoints/")
        try:
            checkpoint_noise = load_checkpoint(path)["config"].get("noise")
            model = load_model(path, device=device)
        except (ValueError, RuntimeError) as error:
            raise UsageError(f"{path}: {error}") from None
    noise_cfg = _noise(args, checkpoint_noise)
    if args.baseline == "bm3d":
        if not baselines.available():
            raise UsageError(f"--baseline bm3d needs the optional bm3d package: {baselines.INSTALL_HINT}")
        if baselines.baseline_name(noise_cfg.kind) is None:
            raise UsageError(f"no BM3D baseline for {noise_cfg.kind} noise (gaussian and poisson have one)")
        from . import paths
        model = baselines.BM3DBaseline(noise_cfg, paths.bm3d_cache_dir())

    sources = experiment.data_sources(args.data_dir)
    sets = args.sets or list(sources.test_sets)
    unknown = [s for s in sets if s not in sources.test_sets]
    if unknown:
        raise UsageError(f"test set {unknown[0]!r} is not available; available: {', '.join(sources.test_sets)}")
    repeats = dict(PAPER_REPEATS) if args.repeats == "paper" else {}
    label = args.checkpoint or args.baseline
    results = {}
    for name in sets:
        files = sources.test_sets[name][:args.limit] if args.limit else sources.test_sets[name]
        n = repeats.get(name, 1) if args.repeats == "paper" else args.repeats
        ev = evaluate(model, files, test_noise(noise_cfg), seed=args.seed, device=device, repeats=n)
        results[name] = {**ev.as_dict(), "comparable_with_paper": sources.comparable}
        print(f"{label} | {noise_cfg.label} | {name} ({len(files)} images x {n}): PSNR {ev.psnr:.2f} dB, "
              f"SSIM {ev.ssim:.4f}, noisy input {ev.psnr_input:.2f} dB")
    if not sources.comparable:
        print("NOTE: scikit-image's embedded photographs (offline default), NOT comparable with the paper.")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": label, "noise": dataclasses.asdict(noise_cfg),
                                         "seed": args.seed, "sets": results}, indent=2) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "eval":
            return _eval(args)
        return _summary(args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _summary(args) -> int:
    profile = get_profile(args.profile)
    results = experiment.read_results(profile)
    if not results:
        print(f"no results for the {profile.name} profile yet: run `make all`", file=sys.stderr)
        return 1
    print(experiment.summary_table(profile), end="")
    comparable = all(r.get("comparable_with_paper", True) for run in results.get("runs", {}).values()
                     for r in run.values() if isinstance(r, dict))
    if not comparable:
        print("NOTE: measured on scikit-image's embedded photographs (offline default), NOT comparable "
              "with the paper. Set N2N_DATA_DIR to a folder with train_pool/ and kodak/ for comparable numbers.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
