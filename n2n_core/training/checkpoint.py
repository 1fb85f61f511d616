"""Self-describing checkpoints: model arguments, state dicts, run config, step, history, seed and
library versions, in one dict that ``torch.load(weights_only=True)`` reads. Writes are atomic
(temporary file, then rename), so an interrupted save never destroys the previous checkpoint."""
from __future__ import annotations

import platform
import sys
from pathlib import Path

import torch

from ..paths import atomic_output, checkpoint_path

FORMAT = "n2n_core.checkpoint/1"


def atomic_save(obj, path: str | Path) -> Path:
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def library_versions() -> dict:
    import numpy

    from ..version import __version__
    return {"n2n_core": __version__, "torch": str(torch.__version__), "numpy": str(numpy.__version__),
            "python": sys.version.split()[0], "platform": platform.platform()}


def save_checkpoint(path: str | Path, *, model: torch.nn.Module, model_args: dict, config: dict, step: int,
                    elapsed: float, history: dict, seed: int, optimizer: torch.optim.Optimizer | None = None,
                    generator_state: torch.Tensor | None = None, finished: bool = False,
                    ema: torch.nn.Module | None = None) -> Path:
    state = {
        "format": FORMAT,
        "model_args": model_args,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        # the moving average of the weights (TrainConfig.ema): what load_model returns when present
        "ema": {k: v.detach().cpu() for k, v in ema.state_dict().items()} if ema is not None else None,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "generator_state": generator_state,
        "config": config,
        "step": step,
        "elapsed_seconds": elapsed,
        "finished": finished,
        "history": history,
        "seed": seed,
        "versions": library_versions(),
    }
    return atomic_save(state, path)


PRETRAINED_PREFIX = "pretrained:"
PRETRAINED_NOISES = ("gaussian", "poisson", "gaussian-grey")
GREY_SUFFIX = "-grey"  # the grey (1-channel) weights of a noise: ``pretrained:gaussian-grey``


def pretrained_path(noise: str, folder: str | Path | None = None) -> Path:
    """Where the shipped weights for ``noise`` lie (``checkpoints/pretrained/unet_<noise>_blind.pth``;
    ``gaussian-grey``: ``unet_gaussian_grey_blind.pth``)."""
    from ..paths import pretrained_dir

    stem = noise[:-len(GREY_SUFFIX)] + "_grey" if noise.endswith(GREY_SUFFIX) else noise
    return Path(folder or pretrained_dir()) / f"unet_{stem}_blind.pth"


def resolve_checkpoint(name: str | Path) -> Path:
    """A checkpoint path from a path or a shipped name, ``pretrained:gaussian`` or ``pretrained:poisson``."""
    text = str(name)
    if not text.startswith(PRETRAINED_PREFIX):
        return Path(name)
    noise = text[len(PRETRAINED_PREFIX):]
    if noise not in PRETRAINED_NOISES:
        raise ValueError(f"{text}: unknown shipped weights; choose "
                         f"{' or '.join(PRETRAINED_PREFIX + n for n in PRETRAINED_NOISES)}")
    path = pretrained_path(noise)
    if not path.is_file():
        kind = noise.removesuffix(GREY_SUFFIX)
        make = f"make pretrained NOISE={kind}" + (" GREY=1" if noise != kind else "")
        raise FileNotFoundError(f"{text}: {path} is missing; `git checkout {path}` restores the shipped file, "
                                f"`{make}` trains it")
    return path


def choose_checkpoint(value: str | None) -> str | Path:
    """A user's checkpoint argument checked: a shipped name (``pretrained:gaussian``) or an existing
    file; without one, `make all`'s Gaussian U-Net where it exists, else the shipped Gaussian
    weights. ValueError or FileNotFoundError with what to do otherwise."""
    if value is None:
        trained = checkpoint_path("cpu", "unet_n2n_gaussian")
        value = str(trained) if trained.is_file() else PRETRAINED_PREFIX + "gaussian"
    path = resolve_checkpoint(value)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint; check the path, or name the shipped weights "
                                f"({PRETRAINED_PREFIX}gaussian)")
    return value if value.startswith(PRETRAINED_PREFIX) else path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The checkpoint dict (``path`` may be a shipped name, see ``resolve_checkpoint``); a clear
    error for a missing file or a file that is not a checkpoint."""
    path = resolve_checkpoint(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint; train one first (`make all`)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise ValueError(f"{path}: not a readable checkpoint ({type(err).__name__}); "
                         f"pass a .pth file written by n2n_core") from None
    found = state.get("format") if isinstance(state, dict) else None
    if isinstance(found, str) and found.startswith("n2n_core.checkpoint/") and found != FORMAT:
        raise ValueError(f"{path}: written by another version of n2n_core (checkpoint format {found!r}; this "
                         f"version reads {FORMAT!r}); update the code (git pull) or use the version that wrote it")
    if found != FORMAT:
        raise ValueError(f"{path}: not an n2n_core checkpoint (format {FORMAT!r} expected)")
    return state


def initial_weights(source: str | Path, model_args: dict) -> dict:
    """The weights a run starts from instead of a random initialisation (fine-tuning): those of a
    checkpoint or of the shipped weights (``pretrained:gaussian``), in float32; the architecture must
    be the one being trained, or a colour U-Net for a grey one (folded by ``models.grey_from_colour``:
    at the start the grey net computes what the colour net computes on the grey image replicated)."""
    from ..paper.models import grey_from_colour

    state = load_checkpoint(source)
    folds = state["model_args"] == {"name": "unet"} and model_args == {"name": "unet", "channels": 1}
    if state["model_args"] != model_args and not folds:
        raise ValueError(f"{source}: holds a {state['model_args']} model, but a {model_args} model is being "
                         f"trained; start from weights of the same architecture (--model)")
    weights = check_finite(state.get("ema") or state.get("model"), source)
    weights = {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
    return grey_from_colour(weights) if folds else weights


def check_finite(weights: dict, source: str | Path) -> dict:
    """``weights`` (a state dict) if every floating-point value in it is finite; otherwise a
    ValueError naming ``source`` and the first tensor that is not: the weights of a run that
    diverged, which would denoise every image to black. Not a state dict at all (a checkpoint whose
    weights entry is missing or None) is a ValueError too."""
    if not isinstance(weights, dict) or not weights:
        raise ValueError(f"{source}: holds no weights (its model entry is {type(weights).__name__}); pass a checkpoint "
                         f"written by n2n_core, or train it again")
    bad = [name for name, value in weights.items()
           if torch.is_tensor(value) and value.is_floating_point() and not torch.isfinite(value).all()]
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise ValueError(f"{source}: the weights hold NaN or infinite values ({bad[0]}{more}): a run that diverged; "
                         f"train it again with a lower learning rate (--lr), or choose other weights")
    return weights


def checkpoint_precision(state: dict) -> str:
    """The number format ('fp32' or 'bf16') a checkpoint was trained in, from its history;
    checkpoints written before it was recorded were all float32."""
    return state.get("history", {}).get("precision") or "fp32"


def load_model(path: str | Path, device: str | torch.device = "cpu", expect: str | None = None) -> torch.nn.Module:
    """The trained model of a checkpoint, in eval mode on ``device``. It takes an N x 3 x H x W
    float tensor in [0, 1] of any H and W and returns the denoised tensor of the same shape.
    ``path`` may name the shipped weights: ``load_model("pretrained:gaussian")``.
    ``expect`` ('unet' or 'resnet') guards against loading a checkpoint of another architecture."""
    return model_from_state(load_checkpoint(path), path, device, expect)


def model_from_state(state: dict, path: str | Path, device: str | torch.device = "cpu",
                     expect: str | None = None) -> torch.nn.Module:
    """``load_model`` for a checkpoint dict already read from ``path`` (named in the errors), so a caller
    that needs its config too reads the file once."""
    from ..paper.models import build

    path = resolve_checkpoint(path)
    args = state.get("model_args")
    if not isinstance(args, dict):
        raise ValueError(f"{path}: has no model_args, so the network cannot be rebuilt; pass a checkpoint written "
                         f"by n2n_core")
    if expect is not None and args.get("name") != expect:
        raise ValueError(f"{path}: holds a {args.get('name')!r} model, not the {expect!r} that was asked for")
    try:
        model = build(args)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: model_args {args} describe no model of this version ({err}); pass a checkpoint "
                         f"written by n2n_core") from None
    try:
        model.load_state_dict(check_finite(state.get("ema") or state.get("model"), path))  # the average where kept
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ValueError(f"{path}: weights do not fit a {args} model ({first})") from None
    return model.to(device).eval()
