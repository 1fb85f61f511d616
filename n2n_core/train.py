"""Training: Adam (0.9, 0.99, 1e-8), the paper's learning-rate ramp-down, a budget in steps and/or
seconds, validation PSNR against the clean image (never the noisy target), periodic atomic
checkpoints, and resume from the last checkpoint."""
from __future__ import annotations

import copy
import datetime
import math
import signal
import time
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoint import checkpoint_precision, load_checkpoint, save_checkpoint
from .config import DataConfig, TrainConfig
from .devices import (all_agree, compile_module, describe_device, describe_path, infer, memory_format, precision_dtype,
                      resolve_device, resolve_precision, threads, world)
from .losses import get_loss
from .interrupts import TrainingInterrupted, signals_end_training
from .metrics import psnr
from .neighbor import NeighbourBatch, nb2nb_loss
from .noise import noise_identity
from .patches import BatchSource
from .paths import ensure_writable_file


@dataclass
class History:
    step: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)  # mean loss since the previous entry
    lr: list[float] = field(default_factory=list)
    val_step: list[int] = field(default_factory=list)
    val_psnr: list[float] = field(default_factory=list)
    val_psnr_input: float | None = None
    precision: str = "fp32"  # the forward pass's number format, 'fp32' or 'bf16'
    hardware: str | None = None  # where it trained (last), e.g. 'Intel Xeon (AVX2, AVX512-BF16, no AMX)'
    # one entry per call of fit that trained: steps, seconds, date, hardware and precision (a run
    # resumed over several sessions and machines says where each part ran)
    chunks: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(**d)


class ConfigMismatch(ValueError):
    """A checkpoint at the run's path was trained with another configuration."""


# what a resumed run may change without being another run: when checkpoints are written
_NOT_IDENTITY = ("checkpoint_every_seconds",)
_DATA_FIELDS = {f.name for f in fields(DataConfig)}
_TRAIN_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}  # what runs from before a field trained with


def _identity(run_config: dict) -> dict:
    identity = dict(run_config)
    identity.pop("method", None)  # the training's target says it (checkpoints from before it was recorded resume)
    if isinstance(run_config.get("train"), dict):
        train = {**_TRAIN_DEFAULTS, **run_config["train"]}
        skip = _NOT_IDENTITY + (() if train["target"] == "nb2nb" else ("nb2nb_gamma",))  # Nb2Nb's weight: its own
        identity["train"] = {k: v for k, v in train.items() if k not in skip}
    if isinstance(run_config.get("noise"), dict):
        identity["noise"] = noise_identity(run_config["noise"])
    data = run_config.get("data")
    if isinstance(data, dict) and isinstance(data.get("data_config"), dict):
        # the evaluation settings that DataConfig held before EvalConfig (test_*, baseline_*) decide
        # nothing of the training: runs checkpointed before the split resume
        identity["data"] = {**data, "data_config": {k: v for k, v in data["data_config"].items()
                                                    if k in _DATA_FIELDS}}
    return identity


def same_run(config: dict, other: dict) -> bool:
    """Whether two recorded run configurations are the same training (what resuming requires)."""
    return _identity(config) == _identity(other)


def learning_rate(base: float, progress: float, rampdown: float) -> float:
    """Constant, then the paper's smooth ramp-down to zero over the last ``rampdown`` fraction:
    base * (0.5 + cos(pi t) / 2)^2 with t going from 0 to 1."""
    start = 1.0 - rampdown
    if progress <= start or rampdown <= 0:
        return base
    t = min(1.0, (progress - start) / rampdown)
    return base * (0.5 + math.cos(math.pi * t) / 2) ** 2


def make_optimizer(model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    """The paper's Adam: beta1 0.9, beta2 0.99, epsilon 1e-8."""
    return torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.99), eps=1e-8)


class TrainStep:
    """One optimisation step as ``fit`` takes it, and as `make bench` times it: the batch (or this
    process's ``share`` of it) moved to the device in ``layout``, the forward pass under autocast in
    ``amp_dtype`` (None: float32; ``devices.precision_dtype``), ``loss_fn`` in float32 at the training's
    ``progress`` (read by annealed losses and by ``neighbor.nb2nb_loss``, that of Neighbor2Neighbor
    batches), the backward pass (with loss scaling for float16) and the optimizer step. ``net`` is the
    module called: the model itself, its DistributedDataParallel wrapper and/or its torch.compile'd
    form; weights and Adam's state stay in float32 whatever ``amp_dtype`` is."""

    def __init__(self, net: torch.nn.Module, optimizer: torch.optim.Optimizer, loss_fn, device: torch.device,
                 layout: torch.memory_format = torch.channels_last, amp_dtype: torch.dtype | None = None):
        self.net, self.optimizer, self.loss_fn, self.device = net, optimizer, loss_fn, device
        self.layout, self.amp_dtype = layout, amp_dtype
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed crop size: let cuDNN pick its fastest kernels

    def __call__(self, batch, share: slice = slice(None), progress: float = 0.0) -> torch.Tensor:
        noisy = batch.input[share].to(self.device, non_blocking=True).contiguous(memory_format=self.layout)
        target = batch.target[share].to(self.device, non_blocking=True)
        mask = None if batch.mask is None else batch.mask[share].to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            if isinstance(batch, NeighbourBatch):  # Neighbor2Neighbor: the whole crops' output, no gradient
                with torch.no_grad():
                    full = self.net(batch.full[share].to(self.device).contiguous(memory_format=self.layout))
            output = self.net(noisy)
        if not isinstance(batch, NeighbourBatch):
            loss = self.loss_fn(output.float(), target, mask, progress)  # the loss in float32
        else:
            loss = self.loss_fn(output.float(), target, full.float(), batch.cells[share].to(self.device), progress)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach()


def _progress(cfg: TrainConfig, step: int, elapsed: float) -> float:
    """The fraction of the budget used: of its steps or of its seconds, whichever is further."""
    return max(step / cfg.max_steps if cfg.max_steps else 0.0, elapsed / cfg.max_seconds if cfg.max_seconds else 0.0)


@torch.inference_mode()
def validate(model: torch.nn.Module, noisy: torch.Tensor, clean: torch.Tensor, device: torch.device,
             batch: int = 16, precision: str = "fp32") -> float:
    """Mean PSNR (8-bit protocol) of the model's output against the clean patches, the forward pass
    in ``precision`` (resolved: 'fp32' or 'bf16')."""
    was_training = model.training
    model.eval()
    values = []
    for i in range(0, len(noisy), batch):
        out = infer(model, noisy[i:i + batch], device, precision)
        values.append(psnr(out, clean[i:i + batch]))
    model.train(was_training)
    return float(torch.cat(values).mean())


def run_precision(state: dict | None, precision: str, device: str | torch.device) -> str:
    """The number format a run trains in: ``precision`` resolved on ``device``, except that 'auto'
    keeps the one a run's checkpoint (``state``, None if there is none) was started in."""
    if precision == "auto" and state is not None:
        precision = checkpoint_precision(state)
    return resolve_precision(precision, device)


def resumed_precision(path: str | Path, precision: str, device: str | torch.device, fresh: bool = False) -> str:
    """``run_precision`` for the run whose checkpoint is, or will be, at ``path``: the format whose
    budget a resumed run takes ('auto' on a machine with another default keeps the run's own)."""
    state = None
    if precision == "auto" and not fresh and Path(path).is_file():
        try:
            state = load_checkpoint(path)
        except ValueError:  # not readable: the run itself says so
            pass
    return run_precision(state, precision, device)


def fit(model: torch.nn.Module, cfg: TrainConfig, sampler: BatchSource, val_pairs: tuple[torch.Tensor, torch.Tensor],
        checkpoint_path: str | Path, model_args: dict, run_config: dict, device: str = "auto",
        progress: bool = True, precision: str = "auto", compile_model: bool = False,
        chunk_seconds: float | None = None, keep_precision: bool = True, fresh: bool = False) -> History:
    """Train ``model`` in place and return its History; the checkpoint at ``checkpoint_path`` is
    written every ``cfg.checkpoint_every_seconds`` and at the end. If it exists, training resumes
    from it (same ``run_config`` required), and a finished run returns at once.

    Under torch.distributed (``torchrun``), the model is wrapped in DistributedDataParallel. Every
    process draws the same global batch of ``cfg.batch_size`` crops from the same seed and trains on
    its own slice of it, so the run equals a single process with the same global batch (up to the
    order of floating-point sums); rank 0 validates, logs and writes the checkpoint.

    ``precision`` is the forward pass's number format: 'fp32', 'bf16' (autocast; weights, optimizer
    and loss stay float32) or 'auto', bfloat16 where it is the faster format (CPUs with AMX or an AMD
    AVX512-BF16, see ``devices.fast_bf16``), else float32. A resumed run keeps the precision it was started with
    unless another is asked for by name; the checkpoint records it. ``compile_model`` trains through torch.compile
    (validation and checkpoints use the plain module, which shares its weights); the first steps
    then wait for the compiler. The sampler draws its batches on ``device`` (``use_device``).

    ``chunk_seconds`` ends this call after that much wall-clock time, with a checkpoint that a later
    call resumes (a long run in chunks, e.g. one per session); ``keep_precision=False`` lets a resumed
    run take ``precision`` on this machine (resolved afresh) instead of the one it started with.
    With ``cfg.ema`` the model also keeps a moving average of its weights: validation measures the
    average, the checkpoint holds both, and ``model`` returns holding the average.

    SIGINT (Ctrl-C, a notebook's interrupt button) and SIGTERM end training after the current step
    with a checkpoint at that step, then raise TrainingInterrupted (a KeyboardInterrupt); the same
    call resumes from it and ends with the weights an uninterrupted run has. ``fresh`` ignores a
    checkpoint already at ``checkpoint_path``: the first checkpoint of the new run replaces it (until
    then it stays, so an early crash loses nothing). The path is checked for writing before step 1."""
    device = resolve_device(device)
    rank, size = world()
    if cfg.batch_size % size:
        raise ValueError(f"batch_size {cfg.batch_size} does not split over {size} processes; use a multiple of {size}")
    checkpoint_path = Path(checkpoint_path)
    if rank == 0:
        ensure_writable_file(checkpoint_path)
    state = load_checkpoint(checkpoint_path) if checkpoint_path.exists() and not fresh else None
    precision = run_precision(state if keep_precision else None, precision, device)
    if state is not None and not state["finished"] and keep_precision and precision != checkpoint_precision(state):
        raise ConfigMismatch(f"{checkpoint_path} was started in precision {checkpoint_precision(state)}, not "
                             f"{precision}; resume it with precision auto or {checkpoint_precision(state)}, or "
                             f"choose another path")
    layout = memory_format(device, cfg.crop, precision)
    model.to(device).to(memory_format=layout).train()
    net = model
    if size > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        progress = progress and rank == 0
    if compile_model:
        net = compile_module(net)
    optimizer = make_optimizer(model, cfg.lr)
    average = copy.deepcopy(model).eval().requires_grad_(False) if cfg.ema else None
    sampler.use_device(device)  # before a checkpoint restores its state
    loss_fn = get_loss(cfg.loss) if cfg.target != "nb2nb" else partial(nb2nb_loss, final_gamma=cfg.nb2nb_gamma)
    history, step, elapsed_before = History(), 0, 0.0
    val_noisy, val_clean = val_pairs

    if state is not None:
        stored, wanted = _identity(state["config"]), _identity(run_config)
        if stored != wanted or state["model_args"] != model_args:
            diff = sorted(k for k in set(stored) | set(wanted) if stored.get(k) != wanted.get(k))
            raise ConfigMismatch(f"{checkpoint_path} was trained with another configuration (differs in: "
                             f"{', '.join(diff) or 'model_args'}); delete it to retrain, or choose another path")
        model.load_state_dict(state["model"])
        if average is not None:
            average.load_state_dict(state.get("ema") or state["model"])
        if state["optimizer"] is not None:
            optimizer.load_state_dict(state["optimizer"])
        if state["generator_state"] is not None:
            sampler.set_state(state["generator_state"])
        history = History.from_dict(state["history"])
        step, elapsed_before = state["step"], state["elapsed_seconds"]
        if state["finished"]:
            if average is not None:
                model.load_state_dict(average.state_dict())
            print(f"{checkpoint_path.name}: already trained ({step} steps); loaded it")
            return history
        print(f"{checkpoint_path.name}: resuming at step {step}")
    if rank == 0:
        print(f"{checkpoint_path.name}: training on {describe_path(device, precision, layout)}")

    history.precision, history.hardware = precision, describe_device(device)
    chunk = {"start_step": step, "end_step": step, "seconds": 0.0, "precision": precision,
             "hardware": history.hardware, "date": datetime.date.today().isoformat()}
    history.chunks.append(chunk)
    evaluated = average if average is not None else model
    if history.val_psnr_input is None:
        history.val_psnr_input = float(psnr(val_noisy, val_clean).mean())
    share = slice(rank * cfg.batch_size // size, (rank + 1) * cfg.batch_size // size)

    train_step = TrainStep(net, optimizer, loss_fn, device, layout, precision_dtype(precision))

    def save(finished: bool) -> None:
        if rank != 0:
            return
        chunk.update(end_step=step, seconds=round(time.monotonic() - start, 1))
        save_checkpoint(checkpoint_path, model=model, model_args=model_args, config=run_config, step=step,
                        elapsed=elapsed_before + time.monotonic() - start, history=history.to_dict(),
                        seed=cfg.seed, optimizer=optimizer, generator_state=sampler.get_state(),
                        finished=finished, ema=average)

    start = last_save = time.monotonic()
    total = cfg.max_steps if cfg.max_seconds is None else None
    bar = tqdm(total=total, initial=step, desc=checkpoint_path.stem, disable=not progress, unit="step")
    loss_sum, loss_count = torch.zeros((), device=device), 0  # summed on the device: no wait per step
    chunk_over = False
    with signals_end_training() as signals:
        while all_agree((p := _progress(cfg, step, elapsed_before + time.monotonic() - start)) < 1.0
                         and not chunk_over and not signals, device):
            lr = learning_rate(cfg.lr, p, cfg.rampdown)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if size == 1:
                threads().poll()  # one fewer thread while another process keeps a core busy
            loss = train_step(sampler.sample(), share, p)
            if average is not None:
                # the decay warms up, (1 + t) / (10 + t) until it reaches cfg.ema: early weights are soon forgotten
                decay = min(cfg.ema, (1.0 + step) / (10.0 + step))
                torch._foreach_lerp_(list(average.parameters()), list(model.parameters()), 1.0 - decay)
            step += 1
            loss_sum, loss_count = loss_sum + loss, loss_count + 1
            bar.update(1)
            if step % cfg.val_every == 0 and rank == 0:
                _log(history, step, elapsed_before + time.monotonic() - start, loss_sum.item() / loss_count, lr)
                loss_sum, loss_count = torch.zeros((), device=device), 0
                history.val_step.append(step)
                history.val_psnr.append(validate(evaluated, val_noisy, val_clean, device, precision=precision))
                bar.set_postfix(loss=f"{history.train_loss[-1]:.4g}", val_psnr=f"{history.val_psnr[-1]:.2f}")
            if time.monotonic() - last_save > cfg.checkpoint_every_seconds:
                save(finished=False)
                last_save = time.monotonic()
            chunk_over = chunk_seconds is not None and time.monotonic() - start >= chunk_seconds
    bar.close()
    if signals:
        if rank == 0:
            save(finished=False)
            print(f"{checkpoint_path.name}: {signal.Signals(signals[0]).name} at step {step}: checkpoint written; "
                  f"the same call resumes from it", flush=True)
        raise TrainingInterrupted(signals[0], step, checkpoint_path)
    if rank != 0:
        return history
    if chunk_over and _progress(cfg, step, elapsed_before + time.monotonic() - start) < 1.0:
        save(finished=False)
        if average is not None:
            model.load_state_dict(average.state_dict())
        print(f"{checkpoint_path.name}: stopped after {time.monotonic() - start:.0f} s of this chunk at step {step}; "
              f"the same call resumes it")
        return history
    if loss_count:
        _log(history, step, elapsed_before + time.monotonic() - start, loss_sum.item() / loss_count, lr)
    if not history.val_step or history.val_step[-1] != step:
        history.val_step.append(step)
        history.val_psnr.append(validate(evaluated, val_noisy, val_clean, device, precision=precision))
    save(finished=True)
    if average is not None:
        model.load_state_dict(average.state_dict())
    print(f"{checkpoint_path.name}: {step} steps in {elapsed_before + time.monotonic() - start:.0f} s, "
          f"validation PSNR {history.val_psnr[-1]:.2f} dB (noisy input {history.val_psnr_input:.2f} dB)"
          + (f", {size} processes" if size > 1 else ""))
    return history


def _log(history: History, step: int, seconds: float, loss: float, lr: float) -> None:
    history.step.append(step)
    history.seconds.append(round(seconds, 3))
    history.train_loss.append(loss)
    history.lr.append(lr)
