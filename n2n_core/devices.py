"""Where and how the networks run: the device, the memory layout, the number format and
torch.compile. Each default is what `make bench` measured fastest; the docstrings give the figures
(2-core AVX2 CPU; NVIDIA H200)."""
from __future__ import annotations

import torch


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} was asked for, but CUDA is not available; use device='cpu' or 'auto'")
    return device


def memory_format(device: torch.device, crop: int) -> torch.memory_format:
    """The layout ``fit`` trains in: channels_last (NHWC) on GPUs, and on CPUs for crops up to 128 px;
    plain NCHW for larger crops on CPUs, where `make bench` measured channels_last slower. U-Net,
    channels_last against NCHW: on an H200, 2.21x at crop 256; on a 2-core AVX2 CPU, over three
    runs, 1.10x to 1.51x at crop 64, 0.81x to 1.14x at 128, 0.71x to 0.77x at 256."""
    if device.type == "cuda" or crop <= 128:
        return torch.channels_last
    return torch.contiguous_format


def inference_layout(device: str | torch.device) -> torch.memory_format:
    """The layout of a forward pass without training (validation, evaluation, `n2n denoise`), in
    float32: channels_last on CPUs, NCHW on GPUs, what `make bench` measured fastest (U-Net,
    768 x 512: channels_last 1.37x NCHW on a 2-core CPU, 0.86x on an H200, where bfloat16 autocast
    gave 0.92x)."""
    return torch.contiguous_format if torch.device(device).type == "cuda" else torch.channels_last


def infer(model: torch.nn.Module, batch: torch.Tensor, device: str | torch.device) -> torch.Tensor:
    """``model`` on ``batch`` (N x C x H x W) moved to ``device`` in ``inference_layout``: the
    output in float32 on the CPU. The one forward pass of validation, evaluation and denoising;
    callers hold ``torch.inference_mode``."""
    return model(batch.to(device).contiguous(memory_format=inference_layout(device))).float().cpu()


def cuda_autocast_dtype() -> torch.dtype:
    """bfloat16 where the GPU has it (no loss scaling needed), float16 elsewhere."""
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast_dtype(device: torch.device, amp: bool = False) -> torch.dtype | None:
    """The number format of ``fit``'s forward pass: None (float32) unless ``amp`` on a GPU, then
    bfloat16, or float16 where bfloat16 is missing. Off by default: `make bench` measured the
    paper's U-Net on an H200 (batch 4, crop 256) at 12 Mpix/s under bfloat16 autocast against 41 in
    float32 channels_last (TF32 convolutions); on CPUs without native bfloat16 (AVX512-BF16, AMX)
    it is emulated and 10x slower than float32."""
    return cuda_autocast_dtype() if amp and device.type == "cuda" else None


def compile_module(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` through torch.compile (inductor), with static shapes: a new input size compiles
    anew rather than switching to shape-generic kernels, whose compilation failed in torch 2.14 on
    the second size seen (AttributeError in TensorReferenceAnalysis). The returned module shares
    ``module``'s weights."""
    return torch.compile(module, dynamic=False)
