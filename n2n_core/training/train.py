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
from ..config import DataConfig, TrainConfig
from .devices import all_agree, compile_module, threads, world
from ..paper.losses import get_loss
from .interrupts import TrainingInterrupted, signals_end_training
from ..paper.metrics import psnr
from ..data.neighbor import nb2nb_loss
from ..paper.noise import noise_identity
from ..data.patches import BatchSource
from ..paths import ensure_writable_file, write_failure
from .runtime import Runtime, infer


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
    hardware: str | None = None  # where it trained (last): the CPU's name and features, or the GPU's name
    # one entry per call of fit that trained: steps, seconds, date, hardware and precision (a run
    # resumed over several sessions and machines says where each part ran)
    chunks: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(**d)


class TrainingDiverged(ValueError):
    """The loss or the weights stopped being finite: no checkpoint is written for such weights
    (an earlier one stays), and the run is not marked finished."""


class CheckpointNotWritten(ValueError):
    """A checkpoint that could not be written (a full disk); the message says what to do."""


class ConfigMismatch(ValueError):
    """A checkpoint at the run's path was trained with another configuration; ``differences`` lists
    (dotted key, recorded value, asked value)."""

    def __init__(self, message: str, differences: list[tuple[str, object, object]] = ()):
        super().__init__(message)
        self.differences = list(differences)


def differences(stored: dict, wanted: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    """The leaves in which two recorded configurations differ, as (dotted key, stored, wanted)."""
    found = []
    for key in sorted(set(stored) | set(wanted), key=str):
        old, new = stored.get(key), wanted.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            found += differences(old, new, f"{prefix}{key}.")
        elif old != new:
            found.append((f"{prefix}{key}", old, new))
    return found


# what a resumed run may change without being another run: when checkpoints are written
_NOT_IDENTITY = ("checkpoint_every_seconds",)
_DATA_FIELDS = {f.name for f in fields(DataConfig)}
_TRAIN_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}  # what runs from before a field trained with
# fields TrainConfig had and no longer has, with the value that meant "off": a checkpoint recording that
# value trained as this version trains and resumes; one recording another value was another training
_REMOVED_TRAIN_FIELDS = {"focus": False}


def _identity(run_config: dict) -> dict:
    identity = dict(run_config)
    identity.pop("method", None)  # the training's target says it (checkpoints from before it was recorded resume)
    if isinstance(run_config.get("train"), dict):
        train = {**_TRAIN_DEFAULTS, **run_config["train"]}
        for name, off in _REMOVED_TRAIN_FIELDS.items():
            if train.get(name, off) == off:
                train.pop(name, None)
        skip = _NOT_IDENTITY + (() if train["target"] == "nb2nb" else ("nb2nb_gamma",))  # Nb2Nb's weight: its own
        identity["train"] = {k: v for k, v in train.items() if k not in skip}
    if isinstance(run_config.get("noise"), dict):
        identity["noise"] = noise_identity(run_config["noise"])
    if isinstance(run_config.get("model"), dict) and run_config["model"].get("channels", 3) == 3:
        # colour, the only kind recorded before the number of channels was
        identity["model"] = {k: v for k, v in run_config["model"].items() if k != "channels"}
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
        part = type(batch)(*(None if t is None else t[share] for t in batch))  # this process's share
        loss = part.loss(self._forward, self._to_device, self.loss_fn, progress)  # each kind of batch its own loss
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach()

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(self.device, non_blocking=True)

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            return self.net(self._to_device(batch).contiguous(memory_format=self.layout))


def _progress(cfg: TrainConfig, step: int, elapsed: float) -> float:
    """The fraction of the budget used: of its steps or of its seconds, whichever is further."""
    return max(step / cfg.max_steps if cfg.max_steps else 0.0, elapsed / cfg.max_seconds if cfg.max_seconds else 0.0)


@torch.inference_mode()
def validate(model: torch.nn.Module, noisy: torch.Tensor, clean: torch.Tensor, rt: Runtime,
             batch: int = 16) -> float:
    """Mean PSNR (8-bit protocol) of the model's output against the clean patches, the forward pass
    on ``rt``'s device and in its number format."""
    was_training = model.training
    model.eval()
    values = []
    for i in range(0, len(noisy), batch):
        out = infer(model, noisy[i:i + batch], rt)
        values.append(psnr(out, clean[i:i + batch]))
    model.train(was_training)
    return float(torch.cat(values).mean())


READ = "read"  # fit's default ``state``: read the checkpoint at the job's path, if there is one


@dataclass
class Job:
    """What one run trains, as ``fit`` takes it: the network (built and seeded by the caller), the
    training settings, the source of batches, the validation pairs (noisy input, clean or reference
    image), the checkpoint's path, the model's arguments (``models.model_args``) and the run's
    configuration, which the checkpoint records and a resumed run must match."""
    model: torch.nn.Module
    cfg: TrainConfig
    sampler: BatchSource
    val_pairs: tuple[torch.Tensor, torch.Tensor]
    checkpoint: Path
    model_args: dict
    config: dict


def read_state(path: str | Path, fresh: bool = False) -> dict | None:
    """The checkpoint of the run at ``path``, read once for all that resuming needs (weights, state,
    the number format and so the budget); None for a new run (no file, or ``fresh``)."""
    path = Path(path)
    return load_checkpoint(path) if not fresh and path.exists() else None


def resumed_runtime(runtime: Runtime, state: dict | None, path: str | Path) -> Runtime:
    """The runtime a run resumed from ``state`` (None: a new run) trains in: the number format it
    was started in, unless one was named (``Runtime.chosen``); a named other format is refused for
    an unfinished run, whose budget and curve belong to its own."""
    if state is None:
        return runtime
    recorded = checkpoint_precision(state)
    if not runtime.chosen:
        return runtime.with_precision(recorded)
    if not state["finished"] and runtime.precision != recorded:
        raise ConfigMismatch(f"{path} was started in precision {recorded}, not {runtime.precision}; resume it with "
                             f"precision auto or {recorded}, or choose another path")
    return runtime


def fit(job: Job, runtime: Runtime, *, state: dict | None | str = READ, progress: bool = True,
        chunk_seconds: float | None = None, keep_precision: bool = True) -> History:
    """Train ``job.model`` in place and return its History; the checkpoint at ``job.checkpoint`` is
    written every ``cfg.checkpoint_every_seconds`` and at the end. ``state`` is that checkpoint as
    the caller read it (``read_state``; None: a new run, whose first checkpoint replaces any file
    there, which stays until then); by default it is read here. A resumed run must have the same
    configuration; a finished one returns at once with its weights.

    ``runtime`` says where and how: device, number format (autocast; weights, optimizer and loss
    stay float32), torch.compile. A resumed run keeps the format it was started in unless another
    is named (``resumed_runtime``); ``keep_precision=False`` lets it take ``runtime``'s instead
    (the shipped weights, trained in chunks on whatever machine is at hand). The checkpoint records
    the format and the hardware of every chunk.

    Under torch.distributed (``torchrun``) the model is wrapped in DistributedDataParallel: every
    process draws the same global batch from the same seed and trains on its own slice of it, so
    the run equals a single process with the same global batch (up to the order of floating-point
    sums); rank 0 validates, logs and writes the checkpoint.

    ``chunk_seconds`` ends this call after that much wall-clock time with a checkpoint that a later
    call resumes. With ``cfg.ema`` the model keeps a moving average of its weights: validation
    measures the average, the checkpoint holds both, and the model returns holding the average.
    SIGINT and SIGTERM end training after the current step with a checkpoint, then raise
    TrainingInterrupted (a KeyboardInterrupt); the same call resumes and ends with the weights an
    uninterrupted run has. The path is checked for writing before step 1."""
    if world()[0] == 0:
        ensure_writable_file(job.checkpoint)
    if isinstance(state, str):
        state = read_state(job.checkpoint)
    if keep_precision:
        runtime = resumed_runtime(runtime, state, job.checkpoint)
    trainer = Trainer(job, runtime, progress)
    if state is not None and trainer.restore(state):
        return trainer.history
    return trainer.run(chunk_seconds)


class Trainer:
    """One call of ``fit``: the job's model on the runtime's device and layout, its optimizer,
    moving average, history and position; the loop, validation and the checkpoints."""

    def __init__(self, job: Job, runtime: Runtime, progress: bool):
        self.job, self.rt, self.cfg, self.path = job, runtime, job.cfg, Path(job.checkpoint)
        self.rank, self.size = world()
        if self.cfg.batch_size % self.size:
            raise ValueError(f"batch_size {self.cfg.batch_size} does not split over {self.size} processes; use a "
                             f"multiple of {self.size}")
        self.layout = runtime.layout(self.cfg.crop)
        job.model.to(runtime.device).to(memory_format=self.layout).train()
        self.net = self._network()
        self.optimizer = make_optimizer(job.model, self.cfg.lr)
        self.average = copy.deepcopy(job.model).eval().requires_grad_(False) if self.cfg.ema else None
        job.sampler.use_device(runtime.device)  # before a checkpoint restores its state
        self.progress = progress and self.rank == 0
        self.history, self.step, self.elapsed_before, self.lr = History(), 0, 0.0, self.cfg.lr
        self.share = slice(self.rank * self.cfg.batch_size // self.size,
                           (self.rank + 1) * self.cfg.batch_size // self.size)

    def _network(self) -> torch.nn.Module:
        """The module the steps call: the model, its DistributedDataParallel wrapper and/or its
        torch.compile'd form (validation and checkpoints use the plain model, which shares its weights)."""
        net = self.job.model
        if self.size > 1:
            from torch.nn.parallel import DistributedDataParallel

            device = self.rt.device
            net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
        return compile_module(net) if self.rt.compile else net

    def _loss(self):
        cfg = self.cfg
        return get_loss(cfg.loss) if cfg.target != "nb2nb" else partial(nb2nb_loss, final_gamma=cfg.nb2nb_gamma)

    @property
    def evaluated(self) -> torch.nn.Module:
        """What validation measures: the moving average where there is one."""
        return self.average if self.average is not None else self.job.model

    def restore(self, state: dict) -> bool:
        """Resume from ``state`` (the same configuration required); True when that run is finished
        (its weights loaded, nothing to train)."""
        job = self.job
        stored, wanted = _identity(state["config"]), _identity(job.config)
        if stored != wanted or state["model_args"] != job.model_args:
            diff = differences({**stored, "model_args": state["model_args"]}, {**wanted, "model_args": job.model_args})
            said = "; ".join(f"{key} was {old!r}, now {new!r}" for key, old, new in diff[:4])
            raise ConfigMismatch(f"{self.path} was trained with another configuration ({said}"
                                 f"{'; ...' if len(diff) > 4 else ''}); delete it to retrain, or choose another path",
                                 diff)
        job.model.load_state_dict(state["model"])
        if self.average is not None:
            self.average.load_state_dict(state.get("ema") or state["model"])
        if state["optimizer"] is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        if state["generator_state"] is not None:
            job.sampler.set_state(state["generator_state"])
        self.history = History.from_dict(state["history"])
        self.step, self.elapsed_before = state["step"], state["elapsed_seconds"]
        if state["finished"]:
            self._hand_back_average()
            print(f"{self.path.name}: already trained ({self.step} steps); loaded it")
            return True
        print(f"{self.path.name}: resuming at step {self.step}")
        return False

    def run(self, chunk_seconds: float | None) -> History:
        """Train until the budget is spent (or the chunk's time, or a signal), then checkpoint."""
        if self.rank == 0:
            print(f"{self.path.name}: training on {self.rt.describe(self.layout)}")
        self._open_chunk()
        self.train_step = TrainStep(self.net, self.optimizer, self._loss(), self.rt.device, self.layout,
                                    self.rt.amp_dtype)
        with signals_end_training() as signals:
            chunk_over = self._loop(chunk_seconds, signals)
        if signals:
            self._interrupted(signals[0])
        if self.rank != 0:
            return self.history
        if chunk_over and self._progress() < 1.0:
            return self._pause()
        return self._finish()

    def _open_chunk(self) -> None:
        """Record this call's part of the run (steps, seconds, date, hardware, number format)."""
        h = self.history
        h.precision, h.hardware = self.rt.precision, self.rt.hardware()
        self.chunk = {"start_step": self.step, "end_step": self.step, "seconds": 0.0, "precision": h.precision,
                      "hardware": h.hardware, "date": datetime.date.today().isoformat()}
        h.chunks.append(self.chunk)
        if h.val_psnr_input is None:
            noisy, clean = self.job.val_pairs
            h.val_psnr_input = float(psnr(noisy, clean).mean())

    def _elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.start

    def _progress(self) -> float:
        return _progress(self.cfg, self.step, self._elapsed())

    def _loop(self, chunk_seconds: float | None, signals: list) -> bool:
        """The steps; True when the chunk's time ended them."""
        cfg, device = self.cfg, self.rt.device
        self.start = last_save = time.monotonic()
        total = cfg.max_steps if cfg.max_seconds is None else None
        bar = tqdm(total=total, initial=self.step, desc=self.path.stem, disable=not self.progress, unit="step")
        self.loss_sum, self.loss_count = torch.zeros((), device=device), 0  # summed on the device: no wait per step
        chunk_over = False
        with bar:  # closed before any error is reported
            while all_agree((p := self._progress()) < 1.0 and not chunk_over and not signals, device):
                self._one_step(p)
                bar.update(1)
                if self.step % cfg.val_every == 0 and self.rank == 0:
                    self._log_and_validate()
                    bar.set_postfix(loss=f"{self.history.train_loss[-1]:.4g}",
                                    val_psnr=f"{self.history.val_psnr[-1]:.2f}")
                if time.monotonic() - last_save > cfg.checkpoint_every_seconds:
                    self.save(finished=False)
                    last_save = time.monotonic()
                chunk_over = chunk_seconds is not None and time.monotonic() - self.start >= chunk_seconds
        return chunk_over

    def _one_step(self, progress: float) -> None:
        self.lr = learning_rate(self.cfg.lr, progress, self.cfg.rampdown)
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        if self.size == 1:
            threads().poll()  # one fewer thread while another process keeps a core busy
        loss = self.train_step(self.job.sampler.sample(), self.share, progress)
        if self.average is not None:
            # the decay warms up, (1 + t) / (10 + t) until it reaches cfg.ema: early weights are soon forgotten
            decay = min(self.cfg.ema, (1.0 + self.step) / (10.0 + self.step))
            torch._foreach_lerp_(list(self.average.parameters()), list(self.job.model.parameters()), 1.0 - decay)
        self.step += 1
        self.loss_sum, self.loss_count = self.loss_sum + loss, self.loss_count + 1

    def _log_and_validate(self) -> None:
        self._check_finite(self.loss_sum.item() / self.loss_count)
        _log(self.history, self.step, self._elapsed(), self.loss_sum.item() / self.loss_count, self.lr)
        self.loss_sum, self.loss_count = torch.zeros((), device=self.rt.device), 0
        self._validate()

    def _validate(self) -> None:
        noisy, clean = self.job.val_pairs
        self.history.val_step.append(self.step)
        self.history.val_psnr.append(validate(self.evaluated, noisy, clean, self.rt))

    def _check_finite(self, loss: float | None = None) -> None:
        """Raise TrainingDiverged when the mean loss or any weight is not finite."""
        models = [self.job.model] + ([self.average] if self.average is not None else [])
        loss_ok = loss is None or math.isfinite(loss)
        weights_ok = all(bool(torch.isfinite(p).all()) for m in models for p in m.parameters())
        if loss_ok and weights_ok:
            return
        what = " and ".join(name for name, ok in (("the loss", loss_ok), ("the weights", weights_ok)) if not ok)
        raise TrainingDiverged(f"{self.path}: training diverged by step {self.step} ({what} not finite); no checkpoint "
                               f"holds these weights. Lower the learning rate (lr {self.cfg.lr:g}) or start from other "
                               f"weights")

    def save(self, finished: bool) -> None:
        if self.rank != 0:
            return
        self._check_finite()  # a diverged run's weights are never checkpointed, let alone marked finished
        job = self.job
        self.chunk.update(end_step=self.step, seconds=round(time.monotonic() - self.start, 1))
        try:
            save_checkpoint(self.path, model=job.model, model_args=job.model_args, config=job.config, step=self.step,
                            elapsed=self._elapsed(), history=self.history.to_dict(), seed=self.cfg.seed,
                            optimizer=self.optimizer, generator_state=job.sampler.get_state(), finished=finished,
                            ema=self.average)
        except OSError as err:  # a full disk: the file at the path is as it was (atomic_save)
            before = "the previous checkpoint there is intact" if self.path.exists() else "nothing was written"
            raise CheckpointNotWritten(f"{self.path}: the checkpoint at step {self.step} could not be written "
                                       f"({err.strerror or err}; {before}): {write_failure(err)}, then run the same "
                                       f"command again") from None

    def _hand_back_average(self) -> None:
        if self.average is not None:
            self.job.model.load_state_dict(self.average.state_dict())

    def _interrupted(self, signum: int) -> None:
        if self.rank == 0:
            self.save(finished=False)
            print(f"{self.path.name}: {signal.Signals(signum).name} at step {self.step}: checkpoint written; "
                  f"the same call resumes from it", flush=True)
        raise TrainingInterrupted(signum, self.step, self.path)

    def _pause(self) -> History:
        self.save(finished=False)
        self._hand_back_average()
        print(f"{self.path.name}: stopped after {time.monotonic() - self.start:.0f} s of this chunk at step "
              f"{self.step}; the same call resumes it")
        return self.history

    def _finish(self) -> History:
        if self.loss_count:
            self._check_finite(self.loss_sum.item() / self.loss_count)
            _log(self.history, self.step, self._elapsed(), self.loss_sum.item() / self.loss_count, self.lr)
        if not self.history.val_step or self.history.val_step[-1] != self.step:
            self._validate()
        self.save(finished=True)
        self._hand_back_average()
        h = self.history
        print(f"{self.path.name}: {self.step} steps in {self._elapsed():.0f} s, validation PSNR {h.val_psnr[-1]:.2f} dB "
              f"(noisy input {h.val_psnr_input:.2f} dB)" + (f", {self.size} processes" if self.size > 1 else ""))
        return h


def _log(history: History, step: int, seconds: float, loss: float, lr: float) -> None:
    history.step.append(step)
    history.seconds.append(round(seconds, 3))
    history.train_loss.append(loss)
    history.lr.append(lr)
