"""One way to start a run. A ``RunSpec`` describes it: the model, where its batches come from (a
source of the registry in ``data.sources.SOURCES``: the study's patch sets with synthetic noise, the
capture budget's fixed captures, a folder of clean images, noisy pairs, single captures, a pickle),
the training settings for a number format, the checkpoint and what the run records. ``train_run``
trains it: it reads the checkpoint once (the resume state, and with it the number format a
resumed run keeps and so its budget), turns the source into a sampler and validation pairs, builds
the model and hands them to ``train.fit``. The notebooks' runs, `n2n train`, `make pretrained` and
`make blindcheck` are thin callers that build a spec; each gets a ``TrainedRun`` back."""
from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..paper import models
from .checkpoint import initial_weights
from .devices import check_training_memory, world
from ..paths import holding
from ..config import ModelConfig, TrainConfig
from ..data.sources import Source
from .runtime import Runtime
from .train import READ, History, Job, fit, read_state, resumed_runtime


class InitError(ValueError):
    """The weights a run was to start from (``RunSpec.init``) cannot be used; the message names them."""


@dataclass
class RunSpec:
    """One run, described. ``settings`` gives the training settings for a resolved number format
    (a budget may depend on it); ``record`` is what the checkpoint records beside the settings
    ("train") and the source's own description ("source", where the source gives one), and what a
    resumed run must match; ``init`` starts from other weights (a checkpoint or ``pretrained:NAME``);
    ``keep_precision=False`` lets a resumed run take the runtime's format; ``fresh`` trains anew
    over whatever is at ``checkpoint``, which stays until the new run's first checkpoint."""
    name: str
    model: ModelConfig
    source: Source
    settings: Callable[[str], TrainConfig]
    checkpoint: Path
    record: dict
    init: str | Path | None = None
    keep_precision: bool = True
    fresh: bool = False


@dataclass
class TrainedRun:
    """What every run returns: its name, the trained model (in eval mode), history, checkpoint and
    recorded configuration."""
    name: str
    model: torch.nn.Module
    history: History
    checkpoint: Path
    config: dict

    def facts(self) -> dict:
        """What results.json records of the training beside its numbers: steps, seconds, the
        number format and the hardware (a time or a PSNR means little without them)."""
        h = self.history
        return {"steps": h.step[-1] if h.step else 0, "seconds": h.seconds[-1] if h.seconds else 0.0,
                "train_precision": h.precision, "hardware": h.hardware}


def train_run(spec: RunSpec, rt: Runtime, *, progress: bool = True, chunk_seconds: float | None = None,
              state: dict | None | str = READ, announce: Callable[[dict, TrainConfig], None] | None = None) -> TrainedRun:
    """Train ``spec`` (or resume it, or reload it when finished) in the runtime ``rt``. ``state`` is
    the checkpoint as the caller already read it (by default read here, once). ``announce`` is
    called with the source's description and the settings before training (the CLI's one line)."""
    path = Path(spec.checkpoint)
    with holding(path) if world()[0] == 0 else contextlib.nullcontext():  # one run at a time writes a checkpoint
        return _train_held(spec, rt, path, progress, chunk_seconds, state, announce)


def _train_held(spec: RunSpec, rt: Runtime, path: Path, progress: bool, chunk_seconds: float | None, state,
                announce) -> TrainedRun:
    if isinstance(state, str):
        state = read_state(path, spec.fresh)
    if spec.keep_precision:
        rt = resumed_runtime(rt, state, path)
    prepared = spec.source.prepare(spec.settings(rt.precision))
    cfg = prepared.cfg
    net = models.build(spec.model, seed=cfg.seed)
    check_training_memory(net, cfg.batch_size, cfg.crop, rt.device)
    if spec.init is not None:
        try:
            net.load_state_dict(initial_weights(spec.init, models.model_args(spec.model)))
        except (ValueError, FileNotFoundError) as err:
            raise InitError(str(err)) from None
    record = {**spec.record, "train": dataclasses.asdict(cfg)}
    if prepared.described is not None:
        record["source"] = prepared.described
    config = json.loads(json.dumps(record))  # tuples -> lists, as a checkpoint round trip gives
    if announce is not None:
        announce(prepared.described, cfg)
    job = Job(net, cfg, prepared.sampler, prepared.val_pairs, path, models.model_args(spec.model), config)
    history = fit(job, rt, state=state, progress=progress, chunk_seconds=chunk_seconds,
                  keep_precision=spec.keep_precision)
    return TrainedRun(spec.name, net.eval(), history, path, config)
