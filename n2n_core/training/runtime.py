"""The runtime of a process: the device, the number format of the forward pass, the memory layout
and the CPU threads, decided once where a run starts (a command of the CLI, a notebook's first
cell, `make bench`) into one ``Runtime`` that everything below receives. Nothing below it resolves
'auto' again; ``devices`` holds the rules it is decided by."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .devices import (autocast, check_compiler, describe_device, describe_path, inference_layout, memory_format,
                      precision_dtype, resolve_device, resolve_precision, threads)


@dataclass(frozen=True)
class Runtime:
    """Where and how the networks run. ``precision`` is resolved ('fp32' or 'bf16'); ``chosen``
    says whether it was named rather than left to 'auto', which decides what a resumed run trains
    in (``train.resumed_runtime``); ``compile`` trains through torch.compile."""
    device: torch.device
    precision: str
    chosen: bool = False
    compile: bool = False

    @classmethod
    def resolve(cls, device: str | torch.device = "auto", precision: str = "auto", threads_: int | None = None,
                compile: bool = False) -> "Runtime":
        """The runtime of this machine: ``device`` and ``precision`` ('auto' picks the faster format
        here, see ``devices.fast_bf16``); ``threads_`` fixes the CPU thread count (None: the
        adaptive default, or N2N_THREADS)."""
        resolved = resolve_device(device)
        if compile:
            check_compiler()
        if threads_ is not None:
            threads(threads_)
        return cls(resolved, resolve_precision(precision, resolved), chosen=precision != "auto", compile=compile)

    def with_precision(self, precision: str) -> "Runtime":
        """The same runtime in another (resolved or named) number format, checked on this device."""
        return dataclasses.replace(self, precision=resolve_precision(precision, self.device))

    @property
    def amp_dtype(self) -> torch.dtype | None:
        """The autocast dtype of the forward pass: None for float32."""
        return precision_dtype(self.precision)

    def layout(self, crop: int) -> torch.memory_format:
        """The memory layout training on crops of ``crop`` px uses (``devices.memory_format``)."""
        return memory_format(self.device, crop, self.precision)

    def hardware(self) -> str:
        return describe_device(self.device)

    def describe(self, layout: torch.memory_format | None = None) -> str:
        """One line: the device, its hardware, the number format, the layout and the threads."""
        return describe_path(self.device, self.precision, layout)


def runtime(device: str | torch.device | Runtime = "auto", precision: str = "auto", threads_: int | None = None,
            compile: bool = False) -> Runtime:
    """``Runtime.resolve``; a Runtime is returned as it is (so a caller may pass either)."""
    if isinstance(device, Runtime):
        return device
    return Runtime.resolve(device, precision, threads_, compile)


def infer(model: torch.nn.Module, batch: torch.Tensor, rt: Runtime) -> torch.Tensor:
    """``model`` on ``batch`` (N x C x H x W) moved to ``rt``'s device in ``devices.inference_layout``,
    in ``rt``'s number format: the output in float32 on the CPU. The one forward pass of validation,
    evaluation and denoising; callers hold ``torch.inference_mode``. (Here, not in ``devices``: that
    module is below this one and cannot name a Runtime.)"""
    threads().poll()
    with autocast(rt.device, rt.precision):
        out = model(batch.to(rt.device).contiguous(memory_format=inference_layout(rt.device)))
    return out.float().cpu()
