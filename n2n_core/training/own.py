"""`n2n train` on a user's own data, with no clean images needed: the run described from the
command's options (a source of ``data.sources``, a model, settings, an output file) and trained by
``training.run.train_run``. The file at the output is read once: an unfinished run with the same
configuration resumes, a finished or foreign one is refused without ``--overwrite``."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from .. import paths
from ..config import METHODS, DataConfig, ModelConfig, NoiseConfig, TrainConfig
from ..data.sources import CaptureFolders, CleanFolder, DataError, PairFolders, PickleFile, SingleCaptures, Source
from .checkpoint import load_checkpoint
from .devices import world
from .run import InitError, RunSpec, TrainedRun, train_run
from .runtime import Runtime
from .train import READ, ConfigMismatch


def default_checkpoint(model: str, source: str) -> Path:
    return paths.checkpoint_dir() / f"own_{model}_{source}.pth"


def existing_run(out: Path, overwrite: bool, inputs=()) -> dict | None:
    """The checkpoint already at ``out``, read once (None: none there, or ``overwrite``): an unfinished run
    with the same configuration is resumed by ``fit``; a finished or foreign file is refused without
    ``overwrite``. With ``overwrite`` the old file stays until the new run writes its first checkpoint.
    ``out`` is checked first by the rule for every output (``paths.check_output``; ``inputs``: the run's)."""
    try:  # before reading any data: nothing is trained for a file that cannot be written
        out = paths.check_output(out, inputs=inputs, overwrite=None)
    except ValueError as err:
        raise DataError(str(err)) from None
    if not out.exists() or overwrite:
        return None
    try:
        state = load_checkpoint(out)
    except (ValueError, FileNotFoundError):
        raise DataError(f"{out}: exists and is not an n2n_core checkpoint; pass --overwrite to replace it or "
                        f"choose another --out") from None
    if state["finished"]:
        raise DataError(f"{out}: already trained ({state['step']} steps); pass --overwrite to train again or "
                        f"choose another --out")
    return state


def train_own(source: str, location, model: ModelConfig, train_cfg: TrainConfig, out: str | Path | None = None,
              noise: NoiseConfig | None = None, data_cfg: DataConfig | None = None, val_pickle=None,
              overwrite: bool = False, rt: Runtime | None = None, progress: bool = True,
              init: str | Path | None = None, state: dict | None | str = READ) -> TrainedRun:
    """Train ``model`` on ``source`` ('clean', 'pairs', 'captures', 'pickle' or 'single') at ``location``
    (a folder, a list of one or two folders, or a pickle file) in the runtime ``rt`` (default: this
    machine's) and return the run; the checkpoint goes to ``out``. Single captures train with
    Neighbor2Neighbor (``neighbor``). ``init`` starts from the weights of a checkpoint or of the
    shipped ones (``pretrained:gaussian``) instead of a random initialisation: fine-tuning.
    ``state``: the checkpoint at ``out`` as ``existing_run`` read it (by default read here)."""
    out = Path(out) if out is not None else default_checkpoint(model.name, source)
    if isinstance(state, str):
        inputs = list(location) if isinstance(location, (list, tuple)) else [location]
        state = existing_run(out, overwrite, inputs + ([val_pickle] if val_pickle else []))
    train_cfg = _checked_target(source, train_cfg)
    noise = (noise or NoiseConfig()) if source == "clean" else None
    spec = RunSpec(out.stem, model, own_source(source, location, noise, data_cfg, val_pickle), lambda _: train_cfg,
                   out, {"profile": "own data", "method": METHODS[train_cfg.target], "model": dataclasses.asdict(model),
                         "noise": dataclasses.asdict(noise) if noise else None,
                         "init": None if init is None else str(init)}, init=init, fresh=overwrite)

    def announce(described: dict, cfg: TrainConfig) -> None:
        if world()[0] == 0:
            print(f"Training a {model.name} on {described['kind']} data ({described['path']}); validation: "
                  f"{described['validation']}; checkpoint {out}")

    try:
        return train_run(spec, rt or Runtime.resolve(), state=state, progress=progress, announce=announce)
    except InitError as err:
        raise DataError(f"--init {err}") from None
    except ConfigMismatch as err:
        raise DataError(_mismatch(out, err)) from None


def _checked_target(source: str, train_cfg: TrainConfig) -> TrainConfig:
    """The target a source can train: clean targets need clean images; single captures train with
    Neighbor2Neighbor, which needs single captures or clean images with synthetic noise."""
    if train_cfg.target == "clean" and source != "clean":
        raise DataError("clean targets need clean images: use --clean DIR (with synthetic noise), or --target noisy")
    if source == "single" and train_cfg.target == "noisy":  # one capture of each scene: Neighbor2Neighbor
        train_cfg = dataclasses.replace(train_cfg, target="nb2nb")
    if train_cfg.target == "nb2nb" and source not in ("single", "clean"):
        raise DataError("Neighbor2Neighbor (target nb2nb) trains on single captures: use --single DIR, or --clean DIR "
                        "with synthetic noise; pairs train with --target noisy")
    return train_cfg


def own_source(source: str, location, noise: NoiseConfig | None = None, data_cfg: DataConfig | None = None,
               val_pickle=None) -> Source:
    """The registry's source for `n2n train`'s --clean, --pairs, --captures, --pickle or --single at ``location``."""
    if source == "clean":
        folders = [Path(p) for p in location] if isinstance(location, (list, tuple)) else [Path(location)]
        return CleanFolder(folders[0] if len(folders) == 1 else folders, noise or NoiseConfig(), data_cfg or DataConfig())
    if source == "pairs":
        return PairFolders(list(location) if isinstance(location, (list, tuple)) else [location])
    if source == "pickle":
        return PickleFile(Path(location), val_pickle)
    if source == "single":
        return SingleCaptures(Path(location))
    if source == "captures":
        return CaptureFolders(Path(location))
    raise ValueError(f"unknown source {source!r}; choose clean, pairs, captures, pickle or single")


# the options of `n2n train` that set each recorded setting, to name them when a resume is refused
OPTIONS = {"train.lr": "--lr", "train.batch_size": "--batch-size", "train.crop": "--crop", "train.max_steps": "--steps",
           "train.max_seconds": "--seconds", "train.loss": "--loss", "train.target": "--target", "train.seed": "--seed",
           "train.val_every": "--val-every", "train.nb2nb_gamma": "--nb2nb-gamma", "train.precision": "--precision",
           "model_args.name": "--model", "init": "--init", "noise.kind": "--noise"}


def _mismatch(out: Path, err: ConfigMismatch) -> str:
    """A refused resume in the command's own terms: which options differ from the run at ``out``."""
    if not err.differences:
        return f"{err}, or pass --overwrite"
    said = [f"{OPTIONS[key]} {new} (it was {old})" if key in OPTIONS else
            f"other data ({key} differs: the files changed since)" if key.split(".")[0] in ("source", "data") else
            f"{key} {new} (it was {old})" for key, old, new in err.differences[:4]]
    return (f"{out} holds an unfinished run with other settings; this call asks for {', '.join(said)}"
            f"{', ...' if len(err.differences) > 4 else ''}. Give the run's own settings to resume it, --overwrite "
            f"to start anew, or another --out")
