"""Command line of n2n_core (also installed as `n2n`).

    python -m n2n_core denoise INPUT... --out DIR     denoise your images (files, folders, globs)
    python -m n2n_core train --pairs DIR [options]   train on your noisy pairs (or --clean, --pickle)
    python -m n2n_core eval CHECKPOINT [options]     a checkpoint on the test sets, the paper's protocol
    python -m n2n_core eval --baseline input|bm3d    the noisy input, or BM3D, under the same noise
    python -m n2n_core summary [--profile cpu]        the PSNR table of a `make all` run
    python -m n2n_core pretrained [--max-minutes M]  train the shipped weights in chunks (`make pretrained`)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

# only light imports here: torch and the rest load inside main(), so that Ctrl-C while they load is
# one line too
from .config import MODEL_NAMES, NOISE_KINDS, PAPER_REPEATS, PRECISIONS, PROFILES, TARGETS, get_profile


class UsageError(Exception):
    """A wrong argument or input: printed as one line, no traceback."""


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (and the hint where to read more), exit status 2."""

    def error(self, message):
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def _level_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """--sigma, --lam, --p: the test level of each noise type (``noise.NOISE_TYPES``)."""
    from .noise import NOISE_TYPES

    for cls in NOISE_TYPES.values():
        parser.add_argument(f"--{cls.param}", type=float, default=cls.test_level if defaults else None,
                            help=f"{cls.level_help} (default {cls.test_level:g})")


def _levels(args) -> dict[str, float | None]:
    from .noise import NOISE_TYPES

    return {cls.param: getattr(args, cls.param) for cls in NOISE_TYPES.values()}


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
    parser = _Parser(prog="python -m n2n_core", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _denoise_parser(sub)
    _train_parser(sub)
    _pretrained_parser(sub)
    summary = sub.add_parser("summary", help="print the PSNR table of reports/results.json")
    summary.add_argument("--profile", default="cpu", choices=sorted(PROFILES))

    ev = sub.add_parser("eval", help="PSNR/SSIM of a checkpoint or a baseline on the test sets",
                        description="Evaluate with the paper's protocol: every image in RGB, noise in float "
                                    "(fixed seeds), output and reference clipped and rounded to 8 bit, PSNR per "
                                    "image over all channels, then the mean.")
    ev.add_argument("checkpoint", nargs="?",
                    help="a .pth checkpoint written by this project, or pretrained:gaussian / pretrained:poisson")
    ev.add_argument("--baseline", choices=("input", "bm3d"),
                    help="evaluate the noisy input or BM3D (optional bm3d package) instead of a checkpoint")
    ev.add_argument("--noise", choices=NOISE_KINDS,
                    help="noise type (default: the checkpoint's, else gaussian)")
    _level_options(ev, defaults=False)
    ev.add_argument("--sets", nargs="+", metavar="SET",
                    help="test sets to use (default: every available one: kodak, bsd300, set14)")
    ev.add_argument("--repeats", type=_repeats, default=1,
                    help="noise draws per image: an integer, or 'paper' for Kodak x10, BSD300 x3, Set14 x20")
    ev.add_argument("--limit", type=int, help="only the first N images of each set")
    ev.add_argument("--seed", type=int, default=0, help="evaluation noise seed (default 0)")
    ev.add_argument("--data-dir", help="folder with kodak/, bsd300/, set14/ (default: N2N_DATA_DIR, downloads, "
                                       "or the embedded photographs)")
    ev.add_argument("--images", nargs="+", metavar="DIR",
                    help="evaluate on your own folders of clean images instead, each labelled by its name "
                         "(comparable with the paper only if it holds one of its test sets)")
    ev.add_argument("--device", default="auto", help="auto, cpu or cuda")
    _speed_options(ev)
    ev.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    return parser


def _speed_options(p) -> None:
    """--precision and --threads, shared by denoise, train and eval."""
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="number format of the network: auto (bfloat16 on CPUs with AMX, where `make bench` "
                        "measured it 2-4x faster; float32 elsewhere), fp32 or bf16")
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads (default: all cores, one fewer while another process keeps a core busy)")


def _speed(args, device):
    """The resolved precision of ``args`` on ``device`` (a clear error for one it lacks); sets the
    thread count."""
    from .devices import resolve_precision, threads

    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    try:
        threads(args.threads)
    except ValueError as error:  # N2N_THREADS that is not a number
        raise UsageError(str(error)) from None
    try:
        return resolve_precision(args.precision, device)
    except ValueError as error:
        raise UsageError(f"--precision {args.precision}: {error}") from None


def _eval(args) -> int:
    from . import baselines, evaluation, paths
    from .checkpoint import load_checkpoint, load_model
    from .data import from_image_folders

    if (args.checkpoint is None) == (args.baseline is None):
        raise UsageError("give a checkpoint or --baseline input|bm3d (one of the two)")
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {args.limit}")
    device = _device(args.device)
    precision = _speed(args, device)
    checkpoint_noise, model = None, None
    if args.checkpoint:
        path = _checkpoint_argument(args.checkpoint)
        try:
            checkpoint_noise = load_checkpoint(path)["config"].get("noise")
            model = load_model(path, device=device)
        except (ValueError, RuntimeError) as error:
            raise UsageError(str(error) if str(path) in str(error) else f"{path}: {error}") from None
    try:
        noise_cfg = evaluation.noise_from(checkpoint_noise, args.noise, **_levels(args))
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.baseline == "bm3d":
        if not baselines.available():
            raise UsageError(f"--baseline bm3d needs the optional bm3d package: {baselines.INSTALL_HINT}")
        if baselines.baseline_name(noise_cfg.kind) is None:
            raise UsageError(f"no BM3D baseline for {noise_cfg.kind} noise (gaussian and poisson have one)")
        model = baselines.BM3DBaseline(noise_cfg, paths.bm3d_cache_dir())

    if args.json:
        try:
            paths.ensure_writable_file(args.json, "--json")  # before the evaluation, not after it
        except ValueError as error:
            raise UsageError(str(error)) from None
    if args.images and (args.data_dir or args.sets):
        raise UsageError("--images replaces --data-dir and --sets; give one or the other")
    try:
        sources = (from_image_folders(args.images) if args.images else evaluation.data_sources(args.data_dir))
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(str(error)) from None
    sets = args.sets or list(sources.test_sets)
    unknown = [s for s in sets if s not in sources.test_sets]
    if unknown:
        raise UsageError(f"test set {unknown[0]!r} is not available; available: {', '.join(sources.test_sets)}")
    repeats = {name: dict(PAPER_REPEATS).get(name, 1) if args.repeats == "paper" else args.repeats for name in sets}
    label = args.checkpoint or args.baseline
    try:
        evaluations = evaluation.evaluate_sets(model, sources, sets, noise_cfg, seed=args.seed, device=device,
                                               repeats=repeats, limits={name: args.limit for name in sets},
                                               label=f"{label} | {noise_cfg.label} | ", precision=precision)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if not sources.comparable:
        print("NOTE: scikit-image's embedded photographs (offline default), NOT comparable with the paper."
              if sources.origin == "embedded" else
              "NOTE: these are not the paper's test sets (recognised by their pixels): NOT comparable with the paper.")
    if args.json:
        evaluation.write_json(args.json, label, noise_cfg, args.seed, precision if model is not None else None,
                              evaluations)
    return 0


def _pretrained_parser(sub) -> None:
    p = sub.add_parser("pretrained", help="train the shipped weights in chunks (`make pretrained`), or write their card",
                       description="Train the shipped U-Net (checkpoints/pretrained/) with the pretrained profile: "
                                   "noisy targets, blind noise, on the clean training pool (N2N_DATA_DIR or the "
                                   "BSDS300 download). Each call trains at most --max-minutes, resumes where the "
                                   "last stopped, and re-exports the weights.")
    p.add_argument("--noise", default="gaussian", choices=("gaussian", "poisson"))
    p.add_argument("--max-minutes", type=float, help="stop this chunk after so many minutes (default: train to the end)")
    p.add_argument("--data-dir", help="folder with train_pool/ (default: N2N_DATA_DIR, else the official download)")
    p.add_argument("--card-only", action="store_true", help="do not train: only measure and write the model card")
    p.add_argument("--no-card", action="store_true", help="train, but do not measure the model card afterwards")
    p.add_argument("--repeats", type=int, default=1, help="noise draws per test image in the card (default 1)")
    p.add_argument("--bm3d", action="store_true",
                   help="measure BM3D where card.json lacks it (slow: tens of seconds per Kodak image on a CPU)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    _speed_options(p)


def _denoise_parser(sub) -> None:
    from .denoise import DEFAULT_OVERLAP, DEFAULT_TILE

    p = sub.add_parser("denoise", help="denoise your images with a trained checkpoint",
                       description="Denoise image files into --out under the same names, keeping each file's "
                                   "size, mode (grey, RGB, RGBA) and bit depth (8 or 16). Large images run in "
                                   "tiles, so memory stays bounded.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders of images, or glob patterns")
    p.add_argument("--out", required=True, type=Path, help="output folder (created if missing)")
    p.add_argument("--checkpoint",
                   help="a .pth checkpoint, or pretrained:gaussian / pretrained:poisson, the shipped blind weights "
                        "(default: checkpoints/unet_n2n_gaussian.pth of `make all` if it exists, else "
                        "pretrained:gaussian)")
    p.add_argument("--model", choices=MODEL_NAMES, help="refuse a checkpoint of any other architecture")
    p.add_argument("--tile", type=int, default=DEFAULT_TILE,
                   help=f"tile side in pixels (default {DEFAULT_TILE}; 0 runs every image whole)")
    p.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP,
                   help=f"context pixels around each tile, thrown away (default {DEFAULT_OVERLAP})")
    p.add_argument("--batch", type=int, default=None, help="tiles per forward pass (default 1 on CPU, 8 on CUDA)")
    p.add_argument("--overwrite", action="store_true", help="replace files that already exist in --out")
    p.add_argument("--skip-existing", action="store_true",
                   help="leave out inputs whose output already exists in --out (finishing an interrupted batch)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--compile", action="store_true",
                   help="run the model through torch.compile: pays for many images (about 1.25x on a 2-core "
                        "CPU, see `make bench`), after a compile of 10-40 s; needs a C++ compiler on CPUs")
    _speed_options(p)


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a denoiser on your own data (no clean images needed)",
                       description="Train a denoiser as the notebooks do, on a folder of noisy pairs, the "
                                   "Kaggle noisy-images pickles, or clean images with synthetic noise.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--pairs", nargs="+", metavar="DIR",
                        help="a folder with two sub-folders of captures under matching names, or the two folders")
    source.add_argument("--pickle", type=Path, metavar="TRAIN_PKL",
                        help="train_data.pkl: a tuple of two uint8 tensors N x 3 x H x W of noisy pairs")
    source.add_argument("--clean", type=Path, metavar="DIR", help="a folder of clean images; noise is synthetic")
    p.add_argument("--val-pickle", type=Path, metavar="VAL_PKL",
                   help="val_data.pkl: noisy and clean tensors for validation (with --pickle)")
    p.add_argument("--model", default="unet", choices=MODEL_NAMES)
    p.add_argument("--target", default="noisy", choices=TARGETS,
                   help="noisy (Noise2Noise, default) or clean (needs --clean)")
    p.add_argument("--noise", default="gaussian", choices=NOISE_KINDS, help="synthetic noise type (with --clean)")
    _level_options(p, defaults=True)
    p.add_argument("--profile", default="cpu", choices=sorted(PROFILES),
                   help="settings to start from: crop, batch, learning rate, budget (default cpu)")
    p.add_argument("--steps", type=int, help="training steps")
    p.add_argument("--seconds", type=float, help="wall-clock budget; training stops at --steps or --seconds")
    p.add_argument("--crop", type=int, help="training crop side in pixels")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--val-every", type=int, help="validate every N steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", metavar="CHECKPOINT",
                   help="start from these weights instead of random ones (fine-tuning): a .pth of the same "
                        "architecture, or pretrained:gaussian / pretrained:poisson, the shipped U-Nets")
    p.add_argument("--out", type=Path, help="checkpoint path (default checkpoints/own_<model>_<source>.pth)")
    p.add_argument("--overwrite", action="store_true",
                   help="train anew although --out holds a checkpoint; the old file is replaced when the new run "
                        "writes its first checkpoint")
    p.add_argument("--checkpoint-every", type=float, metavar="SECONDS",
                   help="write the checkpoint every SECONDS of training (default: the profile's, 120 in cpu); "
                        "Ctrl-C or SIGTERM also write one, at the current step")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--compile", action="store_true",
                   help="train through torch.compile (measured slower for these networks on a 2-core CPU and on "
                        "an H200; `make bench` shows it on yours)")
    _speed_options(p)


def _device(value: str):
    from . import experiment

    try:
        return experiment.resolve_device(value)
    except (ValueError, RuntimeError) as error:
        raise UsageError(f"--device {value}: {error}") from None


def _denoise(args) -> int:
    from .checkpoint import load_model
    from .denoise import check_tiling, default_batch, denoise_files, output_folder, plan
    from .devices import describe_path
    from .images import ImageError

    device = _device(args.device)
    precision = _speed(args, device)
    checkpoint = _checkpoint_argument(args.checkpoint)
    if args.batch is not None and args.batch < 1:
        raise UsageError(f"--batch must be >= 1, got {args.batch}")
    try:
        check_tiling(args.tile, args.overlap)
        model = load_model(checkpoint, device=device, expect=args.model)
        print(f"Weights: {checkpoint}" + (" (the shipped blind Gaussian U-Net; --checkpoint chooses others)"
                                           if args.checkpoint is None and str(checkpoint).startswith("pretrained:")
                                           else ""))
        if args.compile:
            from .devices import compile_module

            model = compile_module(model)
        jobs = plan(args.inputs, args.out, overwrite=args.overwrite, skip_existing=args.skip_existing)
        failures = []
        with output_folder(args.out):
            batch = args.batch or default_batch(device)
            print(f"Denoising on {describe_path(device, precision)}")
            written = denoise_files(model, jobs, tile=args.tile, overlap=args.overlap, device=device, batch=batch,
                                    precision=precision, failures=failures)
    except (ImageError, ValueError) as error:
        raise UsageError(str(error)) from None
    print(f"Denoised {len(written)} image(s) into {args.out} with {checkpoint}")
    for _, reason in failures:
        print(f"failed: {reason}", file=sys.stderr)
    if failures:
        print(f"{len(failures)} of {len(jobs)} image(s) failed (above); the others are written. Mend or remove those "
              f"files and rerun with --skip-existing to finish the batch", file=sys.stderr)
        return 1
    return 0


def _pretrained(args) -> int:
    from . import pretrained

    device = _device(args.device)
    _speed(args, device)
    if args.card_only and args.no_card:
        raise UsageError("--card-only and --no-card exclude each other")
    if args.repeats < 1:
        raise UsageError(f"--repeats must be >= 1, got {args.repeats}")
    try:
        if not args.card_only:
            pretrained.train(args.noise, max_minutes=args.max_minutes, data_dir=args.data_dir, device=device,
                             precision=args.precision)
        if not args.no_card:
            # the card in float32 unless asked otherwise, so that its figures compare across machines
            pretrained.write_card(data_dir=args.data_dir, repeats=args.repeats, bm3d=args.bm3d, device=device,
                                  precision="fp32" if args.precision == "auto" else args.precision)
    except (pretrained.PretrainedError, FileNotFoundError) as error:
        raise UsageError(str(error)) from None
    return 0


def _checkpoint_argument(value: str | None) -> str | Path:
    """A --checkpoint value checked: a shipped name (``pretrained:gaussian``) or an existing file;
    without one, `make all`'s Gaussian U-Net where it exists, else the shipped Gaussian weights."""
    from . import experiment
    from .checkpoint import PRETRAINED_PREFIX, resolve_checkpoint

    if value is None:
        trained = experiment.checkpoint_path("cpu", "unet_n2n_gaussian")
        value = str(trained) if trained.is_file() else PRETRAINED_PREFIX + "gaussian"
    try:
        path = resolve_checkpoint(value)
    except (ValueError, FileNotFoundError) as error:
        raise UsageError(str(error)) from None
    if not path.is_file():
        raise UsageError(f"{path}: no such checkpoint; check the path, or name the shipped weights "
                         f"({PRETRAINED_PREFIX}gaussian)")
    return value if value.startswith(PRETRAINED_PREFIX) else path


def _train(args) -> int:
    from .devices import process_group

    _device(args.device)  # a bad --device is a usage error before any process group
    with process_group(args.device) as distributed_device:
        return _train_in_group(args, distributed_device)


def _train_in_group(args, distributed_device) -> int:
    import dataclasses

    from .noise import NoiseConfig
    from .owndata import DataError, train_own
    from .train import world

    device = distributed_device or _device(args.device)
    _speed(args, device)  # checks --precision and sets the threads; fit resolves 'auto' (a resumed run keeps its own)
    profile = get_profile(args.profile)
    if args.val_pickle is not None and args.pickle is None:
        raise UsageError("--val-pickle goes with --pickle")
    try:
        noise = NoiseConfig(args.noise, **_levels(args))
        model = dataclasses.replace(profile.model(args.model))
        for flag, value in (("--steps", args.steps), ("--seconds", args.seconds)):
            if value is not None and not value > 0:
                raise UsageError(f"{flag} must be > 0, got {value:g}")
        if args.checkpoint_every is not None and not args.checkpoint_every > 0:
            raise UsageError(f"--checkpoint-every must be > 0 seconds, got {args.checkpoint_every}")
        train_cfg = profile.run_settings(args.model, args.noise, args.target, args.seed, max_steps=args.steps,
                                         max_seconds=args.seconds, crop=args.crop, batch_size=args.batch_size,
                                         lr=args.lr, val_every=args.val_every,
                                         checkpoint_every_seconds=args.checkpoint_every)
        source, location = (("pairs", args.pairs) if args.pairs else ("pickle", args.pickle) if args.pickle
                            else ("clean", args.clean))
        run = train_own(source, location, model, train_cfg, out=args.out, noise=noise if source == "clean" else None,
                        data_cfg=profile.data, val_pickle=args.val_pickle, overwrite=args.overwrite, device=device,
                        compile_model=args.compile, precision=args.precision, init=args.init)
    except (DataError, ValueError) as error:
        raise UsageError(str(error)) from None
    if world()[0] != 0:
        return 0
    h = run.history
    print(f"Wrote {run.checkpoint}: {h.step[-1] if h.step else 0} steps, validation PSNR {h.val_psnr[-1]:.2f} dB "
          f"(input {h.val_psnr_input:.2f} dB; reference: {run.config['source']['validation']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    commands = {"eval": _eval, "summary": _summary, "denoise": _denoise, "train": _train, "pretrained": _pretrained}
    command = None
    try:
        args = _parser().parse_args(argv)  # (its denoise options import torch)
        command = args.command
        return commands[command](args)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        if hasattr(stop, "checkpoint"):  # train.TrainingInterrupted: a checkpoint at the current step
            print(f"interrupted at step {stop.step}: {stop.checkpoint} holds it; the same command resumes from "
                  f"there", file=sys.stderr)
            return stop.exit_code
        print("interrupted" + (" (a training run resumes from its last checkpoint, if it wrote one)"
                               if command in ("train", "pretrained") else ""), file=sys.stderr)
        return 130


def _summary(args) -> int:
    from . import experiment
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
