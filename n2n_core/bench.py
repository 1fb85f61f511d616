"""`make bench`: training and inference throughput, each setting against the plain float32 path.

    python -m n2n_core.bench [--seconds 8] [--crops 64 128 256] [--models unet resnet] [--device auto]

Training is measured end to end, as ``train.fit`` runs it: drawing the batch from the patch
sampler (crops, flips, noise), the forward and backward pass, and the optimizer step. Settings:

- ``fp32``: plain float32, NCHW tensors (the reference);
- ``channels_last``: float32, NHWC memory format (what ``fit`` uses);
- ``bf16``: channels_last with bfloat16 autocast (what ``fit`` uses on CUDA). ``fit`` leaves it off
  on CPUs: without native bfloat16 (AVX512-BF16, AMX) it is emulated and about 10x slower than
  float32, so the bench skips it there unless ``--bf16`` is given.

Inference: the U-Net and the ResNet on one 768 x 512 image, whole and in 256 px tiles. Each line
reports megapixels per second, the ratio to ``fp32`` measured in the same run, the share of the step
spent drawing the batch, and peak memory (the GPU's, or the process's resident memory on a CPU).
Figures go to the terminal and to ``reports/bench.json``. Times are wall-clock, so close other work
first: a busy machine measures itself, not the code.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import torch

from . import models, paths
from .config import ModelConfig, NoiseConfig
from .data import PairSampler
from .losses import get_loss
from .noise import training_noise
from .train import resolve_device


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bfloat16 natively (AVX512-BF16 or AMX); elsewhere bfloat16
    autocast is emulated and slower than float32, so ``fit`` leaves it off on CPUs."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_training(model_name: str, crop: int, setting: str, device: torch.device, seconds: float,
                   batch: int = 4) -> dict:
    net = models.build(ModelConfig(model_name), seed=0).to(device).train()
    fmt = torch.contiguous_format if setting == "fp32" else torch.channels_last
    net = net.to(memory_format=fmt)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    loss_fn = get_loss("l2")
    patches = torch.randint(0, 256, (64, 3, crop + 16, crop + 16), dtype=torch.uint8,
                            generator=torch.Generator().manual_seed(0))
    sampler = PairSampler(patches, crop, batch, training_noise(NoiseConfig()), "noisy", torch.Generator().manual_seed(0))
    amp = setting == "bf16"

    def step() -> float:
        t0 = time.perf_counter()
        b = sampler.sample()
        x = b.input.to(device).contiguous(memory_format=fmt)
        y = b.target.to(device)
        t_data = time.perf_counter() - t0
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            out = net(x)
        loss = loss_fn(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return t_data

    for _ in range(2):  # warm-up: allocator, cuDNN/oneDNN kernel choice
        step()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    steps, data_s, start = 0, 0.0, time.perf_counter()
    while time.perf_counter() - start < seconds or steps < 3:
        data_s += step()
        steps += 1
    _sync(device)
    elapsed = time.perf_counter() - start
    return {"kind": "train", "model": model_name, "crop": crop, "batch": batch, "setting": setting,
            "steps": steps, "mpix_per_s": steps * batch * crop * crop / elapsed / 1e6,
            "data_share": data_s / elapsed, "peak_mb": _peak_mb(device)}


@torch.inference_mode()
def bench_inference(model_name: str, setting: str, device: torch.device, seconds: float, tile: int = 0,
                    size: tuple[int, int] = (512, 768)) -> dict:
    from .denoise import denoise_tensor

    net = models.build(ModelConfig(model_name), seed=0).to(device).eval()
    height, width = size
    image = torch.rand(3, height, width, generator=torch.Generator().manual_seed(0))
    if setting == "fp32":
        def run():
            return net(image[None].to(device))
    else:
        net = net.to(memory_format=torch.channels_last)

        def run():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=setting == "bf16"):
                return denoise_tensor(net, image, tile=tile, overlap=32, device=device)
    run()
    _sync(device)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n < 2:
        run()
        n += 1
    _sync(device)
    elapsed = time.perf_counter() - start
    label = setting + (f", tiles {tile}" if tile else "")
    return {"kind": "infer", "model": model_name, "crop": f"{width}x{height}", "setting": label, "steps": n,
            "mpix_per_s": n * width * height / elapsed / 1e6, "data_share": None, "peak_mb": _peak_mb(device)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m n2n_core.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="measuring time per line (default 8)")
    parser.add_argument("--crops", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--models", nargs="+", default=["unet", "resnet"], choices=["unet", "resnet"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--infer-size", type=int, nargs=2, default=[768, 512], metavar=("W", "H"),
                        help="inference image size (default 768 512, a Kodak image)")
    parser.add_argument("--bf16", action="store_true", help="measure bfloat16 even on a CPU without native support")
    parser.add_argument("--json", default=None, help="where to write the figures (default reports/bench.json)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    native_bf16 = device.type == "cuda" or cpu_has_native_bf16()
    settings = ["fp32", "channels_last"] + (["bf16"] if native_bf16 or args.bf16 else [])
    rows = []
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: {native_bf16}"
          + ("" if "bf16" in settings else " (bf16 rows skipped: emulated, about 10x slower than float32 on such "
                                             "a CPU; --bf16 measures them anyway)"))
    print(f"{'what':6} {'model':7} {'size':>8} {'setting':24} {'Mpix/s':>8} {'x fp32':>7} {'data':>6} {'peak MB':>8}")
    for model_name in args.models:
        for crop in args.crops:
            base = None
            for setting in settings:
                row = bench_training(model_name, crop, setting, device, args.seconds)
                base = base or row["mpix_per_s"]
                row["ratio_to_fp32"] = row["mpix_per_s"] / base
                rows.append(row)
                _print(row)
        base = None
        for setting, tile in (("fp32", 0), ("channels_last", 0), ("channels_last", 256), ("bf16", 0)):
            if setting not in settings:
                continue
            row = bench_inference(model_name, setting, device, args.seconds, tile, size=tuple(args.infer_size[::-1]))
            base = base or row["mpix_per_s"]
            row["ratio_to_fp32"] = row["mpix_per_s"] / base
            rows.append(row)
            _print(row)
    out = paths.report_dir() / "bench.json" if args.json is None else Path(args.json)
    paths.atomic_write_text(out, json.dumps({"device": str(device), "torch": torch.__version__,
                                             "threads": torch.get_num_threads(), "native_bf16": native_bf16,
                                             "machine": platform.processor() or platform.machine(),
                                             "rows": rows}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


def _print(row: dict) -> None:
    data = "" if row["data_share"] is None else f"{100 * row['data_share']:5.1f}%"
    print(f"{row['kind']:6} {row['model']:7} {str(row['crop']):>8} {row['setting']:24} {row['mpix_per_s']:8.3f} "
          f"{row['ratio_to_fp32']:7.2f} {data:>6} {row['peak_mb']:8.0f}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
