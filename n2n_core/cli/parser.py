"""The parser of the command line (``python -m n2n_core``, also installed as ``n2n``): every
subcommand and option. What each command does is in ``cli.main``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import MODEL_NAMES, NOISE_KINDS, PRECISIONS, PROFILES, TARGETS
from ..paper.losses import LOSSES
from ..paper.noise import NOISE_TYPES

USAGE = """Command line of n2n_core (also installed as `n2n`).

    python -m n2n_core denoise INPUT... --out DIR     denoise your images (files, folders, globs)
    python -m n2n_core train --pairs DIR [options]   train on your noisy pairs (or --single, --clean, --pickle)
    python -m n2n_core eval CHECKPOINT [options]     a checkpoint on the test sets, the paper's protocol
    python -m n2n_core eval --baseline input|bm3d    the noisy input, or BM3D, under the same noise
    python -m n2n_core summary [--profile cpu]        the PSNR table of a `make all` run
    python -m n2n_core plan [--profile cpu] [NB...]   the path and projected time of `make all` here
    python -m n2n_core pretrained [--max-minutes M]  train the shipped weights in chunks (`make pretrained`)
"""
ENSEMBLE_HELP = ("average the network's outputs over the 8 flips/rotations of each image (a self-ensemble): "
                 "a little better for several times the time (`n2n eval --ensemble` measures it); not the "
                 "paper's protocol, which runs it once")


class _Parser(argparse.ArgumentParser):
    """argparse with its errors on one line (and the hint where to read more), exit status 2."""

    def error(self, message):
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def _level_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """--sigma, --lam, --p, --impulse-p, ...: the test level of each noise type, and its further
    options (--brown-width; ``noise.NOISE_TYPES``)."""
    for cls in NOISE_TYPES.values():
        parser.add_argument(f"--{cls.param.replace('_', '-')}", dest=cls.param, type=float,
                            default=cls.test_level if defaults else None,
                            help=f"{cls.level_help} (default {cls.test_level:g})")
        for name, (default, text) in cls.options.items():
            parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float,
                                default=default if defaults else None, help=f"{text} (default {default:g})")


def levels(args) -> dict[str, float | None]:
    """The levels and options of every noise type given on the command line (None: not given)."""
    return {name: getattr(args, name) for cls in NOISE_TYPES.values() for name in (cls.param, *cls.options)}


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


def parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m n2n_core", description=USAGE,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _denoise_parser(sub)
    _train_parser(sub)
    _pretrained_parser(sub)
    summary = sub.add_parser("summary", help="print the PSNR table of reports/results.json")
    summary.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
    plan = sub.add_parser("plan", help="the path and projected time of executing notebooks here (`make all` starts with it)",
                          description="Time a few training steps of each setting the notebooks train with, on this "
                                      "machine's runtime, and project the time of executing them (docs/design.md).")
    plan.add_argument("notebooks", nargs="*", metavar="NOTEBOOK",
                      help="notebook names such as 03_noise2noise_unet (default: all twelve)")
    plan.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
    plan.add_argument("--write", type=Path, help="also write the plan file the progress lines read (the Makefile's)")
    plan.add_argument("--run", help="the make run the plan file is for (the Makefile passes its process id)")
    plan.add_argument("--papermill", metavar="COMMAND",
                      help="the command that executes each notebook, as the Makefile runs papermill with its kernel: "
                           "the fixed start per notebook is one timed run of it on a one-cell notebook (default: one "
                           "timed Python process importing the study, which leaves out papermill's own start)")

    ev = sub.add_parser("eval", help="PSNR/SSIM of a checkpoint or a baseline on the test sets",
                        description="Evaluate with the paper's protocol: every image in RGB, noise in float "
                                    "(fixed seeds), output and reference clipped and rounded to 8 bit, PSNR per "
                                    "image over all channels, then the mean.")
    ev.add_argument("checkpoint", nargs="?",
                    help="a .pth checkpoint written by this project, or pretrained:gaussian / pretrained:poisson")
    what = ev.add_mutually_exclusive_group()
    what.add_argument("--baseline", choices=("input", "bm3d"),
                      help="evaluate the noisy input or BM3D (optional bm3d package) instead of a checkpoint")
    what.add_argument("--ensemble", action="store_true", help=ENSEMBLE_HELP)
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
    ev.add_argument("--json", help="also write the numbers to this JSON file")
    ev.add_argument("--overwrite", action="store_true", help="replace the --json file if it exists")
    _captures_eval_options(ev)
    return parser


def _captures_eval_options(ev) -> None:
    """`n2n eval --captures DIR --reference DIR`: real noise, measured against a reference of each scene."""
    from ..evaluation.captures import REFERENCE_LAYOUT

    ev.add_argument("--captures", type=Path, metavar="DIR",
                    help="real noise instead of the test sets: scenes of aligned noisy captures, one sub-folder (or "
                         "multi-page TIFF) per scene as for `n2n train --captures`. For each scene, the checkpoint's denoised first capture "
                         "(if a checkpoint is given) beside baselines that learn nothing: the first capture, the mean "
                         "of the first 2, 4 and 8 captures, and BM3D after the generalized Anscombe transform, its "
                         "noise (variance a x + b) estimated from the scene's captures. PSNR and SSIM under the 8-bit "
                         "protocol: values divided by the file's maximum (255 for 8-bit data), peak 1.0")
    ev.add_argument("--reference", type=Path, metavar="DIR",
                    help=f"with --captures: the reference of each scene, {REFERENCE_LAYOUT}, the scenes named as "
                         f"in --captures")


def _speed_options(p) -> None:
    """--precision and --threads, shared by denoise, train and eval."""
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="number format of the network: auto (bfloat16 on CPUs with AMX and AMD CPUs with "
                        "AVX512-BF16, where `make bench` measured it faster; float32 elsewhere), fp32 or bf16")
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads (default: all cores, one fewer while another process keeps a core busy)")


def _pretrained_parser(sub) -> None:
    p = sub.add_parser("pretrained", help="train the shipped weights in chunks (`make pretrained`), or write their card",
                       description="Train the shipped U-Net (checkpoints/pretrained/) with the pretrained profile: "
                                   "noisy targets, blind noise, on the clean training pool (N2N_DATA_DIR or the "
                                   "BSDS300 download). Each call trains at most --max-minutes, resumes where the "
                                   "last stopped, and re-exports the weights.")
    p.add_argument("--noise", default="gaussian", choices=("gaussian", "poisson"))
    p.add_argument("--grey", action="store_true",
                   help="the grey (1-channel) weights, started from the colour ones (gaussian only)")
    p.add_argument("--max-minutes", type=float, help="stop this chunk after so many minutes (default: train to the end)")
    p.add_argument("--data-dir", help="folder with train_pool/ (default: N2N_DATA_DIR, else the official download)")
    p.add_argument("--pool", nargs="+", default=["train_pool"], metavar="NAME",
                   help="the folders of clean training images, by name in the data folder, pooled (default: "
                        "train_pool); a resumed run must name the same folders")
    p.add_argument("--card-only", action="store_true", help="do not train: only measure and write the model card")
    p.add_argument("--no-card", action="store_true", help="train, but do not measure the model card afterwards")
    p.add_argument("--repeats", type=int, default=1, help="noise draws per test image in the card (default 1)")
    p.add_argument("--bm3d", action="store_true",
                   help="measure BM3D where card.json lacks it (slow: tens of seconds per Kodak image on a CPU)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    _speed_options(p)


def _denoise_parser(sub) -> None:
    from ..evaluation.denoise import DEFAULT_OVERLAP, DEFAULT_TILE

    p = sub.add_parser("denoise", help="denoise your images with a trained checkpoint",
                       description="Denoise image files into --out under the same names, keeping each file's "
                                   "size, mode (grey, RGB, RGBA) and bit depth (8 or 16); a multi-page TIFF comes "
                                   "back as a stack, every page denoised. Large images run in tiles, so memory "
                                   "stays bounded.")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders of images, or glob patterns")
    p.add_argument("--out", required=True, help="output folder (created if missing)")
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
    p.add_argument("--ensemble", action="store_true", help=ENSEMBLE_HELP)
    p.add_argument("--compile", action="store_true",
                   help="run the model through torch.compile: pays for many images (`make bench` measures "
                        "the gain), after a compile; needs a C++ compiler on CPUs")
    _speed_options(p)


def _captures_train_option(source) -> None:
    """`n2n train --captures DIR`: scenes of several aligned captures (real noise)."""
    source.add_argument("--captures", type=Path, metavar="DIR",
                        help="a folder with one sub-folder per scene, each holding two or more aligned noisy captures "
                             "of it (any format denoise reads; grey and 16-bit kept), or one multi-page TIFF per scene "
                             "whose pages are its captures: every step pairs two different "
                             "captures of each scene, input and target; the last scene (and every 10th) is held out "
                             "for validation, its first capture against the mean of the others")


def _train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a denoiser on your own data (no clean images needed)",
                       description="Train a denoiser as the notebooks do, on a folder of noisy pairs, a folder "
                                   "of single noisy captures, the Kaggle noisy-images pickles, or clean images "
                                   "with synthetic noise.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--pairs", nargs="+", metavar="DIR",
                        help="a folder with two sub-folders of captures under matching names, or the two folders")
    source.add_argument("--pickle", type=Path, metavar="TRAIN_PKL",
                        help="train_data.pkl: a tuple of two uint8 tensors N x 3 x H x W of noisy pairs")
    source.add_argument("--clean", type=Path, metavar="DIR", action="append",
                        help="a folder of clean images; noise is synthetic. Repeat it (--clean A --clean B) to pool "
                             "several folders")
    source.add_argument("--single", type=Path, metavar="DIR",
                        help="a folder of noisy images, one capture of each scene (every page of a multi-page TIFF "
                             "is one): Neighbor2Neighbor training")
    _captures_train_option(source)
    p.add_argument("--val-pickle", type=Path, metavar="VAL_PKL",
                   help="val_data.pkl: noisy and clean tensors for validation (with --pickle)")
    p.add_argument("--model", default="unet", choices=MODEL_NAMES)
    p.add_argument("--target", choices=TARGETS,
                   help="noisy (Noise2Noise, default), clean (needs --clean) or nb2nb (Neighbor2Neighbor: the default "
                        "with --single; with --clean, on one synthetic capture of each image)")
    p.add_argument("--noise", default="gaussian", choices=NOISE_KINDS, help="synthetic noise type (with --clean)")
    _level_options(p, defaults=True)
    p.add_argument("--loss", choices=tuple(LOSSES),
                   help="l2 (the targets' mean; the profile's default), l1 (median: text), l0 (annealed from L2 to "
                        "L0 over training: the mode, for impulse noise)")
    p.add_argument("--profile", default="cpu", choices=sorted(PROFILES),
                   help="settings to start from: crop, batch, learning rate, budget (default cpu)")
    p.add_argument("--steps", type=int, help="training steps")
    p.add_argument("--seconds", type=float, help="wall-clock budget; training stops at --steps or --seconds")
    p.add_argument("--crop", type=int, help="training crop side in pixels")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--val-every", type=int, help="validate every N steps")
    p.add_argument("--nb2nb-gamma", type=float, metavar="GAMMA",
                   help="Neighbor2Neighbor (--single): the regulariser's final weight (the profile's: 1 in cpu, for "
                        "short runs; the authors' 2 for long ones)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", metavar="CHECKPOINT",
                   help="start from these weights instead of random ones (fine-tuning): a .pth of the same "
                        "architecture, or pretrained:gaussian / pretrained:poisson, the shipped U-Nets")
    p.add_argument("--out", help="checkpoint path (default checkpoints/own_<model>_<source>.pth)")
    p.add_argument("--overwrite", action="store_true",
                   help="train anew although --out holds a checkpoint; the old file is replaced when the new run "
                        "writes its first checkpoint")
    p.add_argument("--checkpoint-every", type=float, metavar="SECONDS",
                   help="write the checkpoint every SECONDS of training (default: the profile's, 120 in cpu); "
                        "Ctrl-C or SIGTERM also write one, at the current step")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--compile", action="store_true",
                   help="train through torch.compile (measured slower for these networks on CPUs and on a "
                        "GPU, docs/speed.md; `make bench` shows it on yours)")
    _speed_options(p)
