"""`make bench`: training and inference throughput, each setting against plain float32 and against
what the hardware can do at all.

    python -m n2n_core.bench [--seconds 8] [--crops 64 128 256] [--models unet resnet] [--device auto]
                             [--batch 4] [--no-compile] [--bf16] [--no-busy]

Training runs ``train.fit``'s own step (``train.TrainStep``) end to end: the batch drawn by the patch
sampler (crops, flips, noise), the copy to the device, forward, backward and the Adam step, at the
cpu profile's U-Net batch (``--batch``). Settings: ``fp32`` (plain float32, NCHW: the reference),
``channels_last``, ``bf16`` (channels_last with bfloat16 autocast; weights, loss and Adam in float32;
skipped, unless ``--bf16``, on CPUs without native bfloat16, where it is emulated and far slower)
and ``compiled`` (``fit``'s default through ``torch.compile``, as ``--compile`` does; the compile is not
timed; ``--no-compile`` skips it). Inference, under ``torch.inference_mode``: one 768 x 512 image in
fp32, channels_last and bf16, and ``denoise.denoise_tensor`` as ``n2n denoise`` runs it (256 px tiles;
whole, compiled). ``*`` marks what ``fit`` or ``n2n denoise`` does by default here; the last lines give
each default path's ratio to plain float32.

On a CPU the bench first prints its features (AVX2, AVX512-BF16, AMX) and the path it takes, and last
measures training with one core kept busy by a second process: all threads, the thread governor
``fit`` uses (``devices.ThreadGovernor``), and one thread fewer, each against the idle speed
(``--no-busy`` skips it).

Columns: megapixels per second; the ratio to ``fp32`` in the same run; the share of the step spent
drawing the batch (on a GPU including the wait for the queue); peak memory (the GPU's, or the
process's resident memory); ``% mm``, the arithmetic rate reached (floating-point operations per
pixel from ``torch.utils.flop_counter`` times pixels per second) as a share of this device's rate on
one large matrix product in the same format, which also gives a ceiling on megapixels per second.
Figures go to the terminal and to ``reports/bench.json``. Times are wall-clock: close other work
first, or the bench measures the machine's load.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import torch

from ..paper import models
from .. import paths
from ..config import NOISE_KINDS, PRECISION_NAMES, ModelConfig, NoiseConfig, get_profile
from ..training.devices import ThreadGovernor, autocast, compile_module, cpu_features, describe_cpu, native_bf16
from ..paper.losses import get_loss
from ..paper.noise import training_noise
from ..data.patches import PairSampler
from ..training.runtime import Runtime
from ..training.train import TrainStep, make_optimizer

BATCH = 4


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _timed(fn, device: torch.device, seconds: float, at_least: int) -> tuple[int, float]:
    """Call ``fn`` until ``seconds`` have passed (and at least ``at_least`` times); (calls, seconds)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda device: None
    sync(device)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n < at_least:
        fn()
        n += 1
    sync(device)
    return n, time.perf_counter() - start


def matmul_gflops(device: torch.device, dtype: torch.dtype = torch.float32, seconds: float = 2.0) -> float:
    """This device's arithmetic rate on one large square matrix product, in GFLOP/s."""
    n = 4096 if device.type == "cuda" else 1024
    a, b = (torch.rand(n, n, device=device, dtype=dtype) for _ in range(2))
    a @ b
    calls, elapsed = _timed(lambda: a @ b, device, seconds, 3)
    return calls * 2 * n ** 3 / elapsed / 1e9


def gflop_per_mpix(model_name: str, training: bool) -> float:
    """Floating-point operations per megapixel (GFLOP/Mpix) of one forward pass, or of a forward and
    backward pass, counted by torch.utils.flop_counter on a 64 x 64 input."""
    from torch.utils.flop_counter import FlopCounterMode

    net = models.build(ModelConfig(model_name), seed=0)
    x = torch.rand(1, 3, 64, 64)
    with FlopCounterMode(display=False) as counter:
        if training:
            net(x).sum().backward()
        else:
            with torch.no_grad():
                net(x)
    return counter.get_total_flops() / (64 * 64) * 1e6 / 1e9


def formats(rt: Runtime, bf16: bool) -> dict[str, Runtime]:
    """The runtimes the bench compares, one per number format it measures: ``rt`` (this machine's
    default, resolved in ``main``) in float32, and in bfloat16 with ``bf16``."""
    return {"fp32": rt.with_precision("fp32"), **({"bf16": rt.with_precision("bf16")} if bf16 else {})}


def train_settings(runtimes: dict[str, Runtime], default: Runtime, crop: int, compile_: bool) -> dict[str, tuple]:
    """setting -> (memory format, Runtime of its number format, torch.compile?)"""
    fp32 = runtimes["fp32"]
    settings = {"fp32": (torch.contiguous_format, fp32, False), "channels_last": (torch.channels_last, fp32, False)}
    if "bf16" in runtimes:
        settings["bf16"] = (torch.channels_last, runtimes["bf16"], False)
    if compile_:
        layout, rt, _ = fit_default(default, crop)
        settings["compiled"] = (layout, rt, True)
    return settings


def fit_default(rt: Runtime, crop: int) -> tuple:
    """The setting ``fit`` trains in at ``crop`` in the default runtime ``rt`` (no compile)."""
    return rt.layout(crop), rt, False


def bench_training(model_name: str, crop: int, setting: tuple, seconds: float, batch: int = BATCH,
                   noise: str = "gaussian", before_step=None) -> dict:
    layout, rt, compile_ = setting
    device = rt.device
    model = models.build(ModelConfig(model_name), seed=0).to(device).to(memory_format=layout).train()
    net = compile_module(model) if compile_ else model
    step = TrainStep(net, make_optimizer(model, 1e-4), get_loss("l2"), device, layout, rt.amp_dtype)
    patches = torch.randint(0, 256, (64, 3, crop + 16, crop + 16), dtype=torch.uint8,
                            generator=torch.Generator().manual_seed(0))
    sampler = PairSampler(patches, crop, batch, training_noise(NoiseConfig(noise)), "noisy",
                          torch.Generator().manual_seed(0))
    sampler.use_device(device)
    data_s = 0.0

    def one() -> None:
        nonlocal data_s
        t0 = time.perf_counter()
        b = sampler.sample()
        data_s += time.perf_counter() - t0
        if before_step is not None:
            before_step()
        step(b)

    for _ in range(2):  # warm-up: compilation, allocator, cuDNN/oneDNN kernel choice
        one()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    data_s = 0.0
    steps, elapsed = _timed(one, device, seconds, 3)
    return {"kind": "train", "model": model_name, "crop": crop, "batch": batch, "steps": steps,
            "precision": rt.precision, "mpix_per_s": steps * batch * crop * crop / elapsed / 1e6, "data_share": data_s / elapsed,
            "peak_mb": _peak_mb(device)}


def _spin(seconds: float) -> None:
    """Keep one core busy for ``seconds`` (the bench's stand-in for another program)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def bench_busy(model_name: str, crop: int, rt: Runtime, seconds: float, batch: int = BATCH) -> list[dict]:
    """``fit``'s default training step while another process spins on one core: with all threads,
    with the thread governor ``fit`` uses, and with one thread fewer; ``ratio_to_idle`` against the
    same step on the idle machine, measured just before; ``rt``: the default runtime."""
    import multiprocessing

    setting = fit_default(rt, crop)
    full = torch.get_num_threads()
    idle = bench_training(model_name, crop, setting, seconds, batch)["mpix_per_s"]
    rows = []
    spinner = multiprocessing.get_context("spawn").Process(target=_spin, args=(4 * seconds + 30,), daemon=True)
    spinner.start()
    try:
        time.sleep(0.5)
        for name, threads in (("busy core, all threads", full), ("busy core, governor", None),
                              ("busy core, threads - 1", max(1, full - 1))):
            governor = None
            if threads is None:
                governor = ThreadGovernor(interval=0.5, quiet=True)
                governor.poll()
                time.sleep(0.6)  # one reading interval, so that its first decision is taken
                governor.poll()
            else:
                torch.set_num_threads(threads)
            row = bench_training(model_name, crop, setting, seconds, batch,
                                 before_step=governor.poll if governor else None)
            row.update(threads=torch.get_num_threads(), ratio_to_idle=row["mpix_per_s"] / idle, idle_mpix_per_s=idle)
            rows.append((name, row))
    finally:
        spinner.terminate()
        spinner.join()
        torch.set_num_threads(full)
    return rows


def bench_inference(model_name: str, setting: str, rt: Runtime, seconds: float, tile: int = 0,
                    size: tuple[int, int] = (512, 768)) -> dict:
    """``fp32``/``channels_last``/``bf16``: one forward pass in that layout, in ``rt``'s number format;
    with ``tile`` or ``compiled``: ``denoise_tensor`` as `n2n denoise` runs it in ``rt`` (its layout)."""
    from ..evaluation.denoise import default_batch, denoise_tensor

    device = rt.device
    net = models.build(ModelConfig(model_name), seed=0).to(device).eval()
    height, width = size
    image = torch.rand(3, height, width, generator=torch.Generator().manual_seed(0))
    if tile or setting == "compiled":
        call = compile_module(net) if setting == "compiled" else net
        def run():
            return denoise_tensor(call, image, rt, tile=tile, overlap=32, batch=default_batch(device))
    else:
        layout = torch.contiguous_format if setting == "fp32" else torch.channels_last
        net = net.to(memory_format=layout)
        x = image[None].to(device).contiguous(memory_format=layout)

        def run():
            with torch.inference_mode(), autocast(device, rt.precision):
                return net(x)
    run()  # warm-up (and compilation)
    n, elapsed = _timed(run, device, seconds, 2)
    return {"kind": "infer", "model": model_name, "crop": f"{width}x{height}", "steps": n, "precision": rt.precision,
            "mpix_per_s": n * width * height / elapsed / 1e6, "data_share": None, "peak_mb": _peak_mb(device)}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    rt = Runtime.resolve(args.device)  # this machine's default runtime: what fit and n2n denoise take
    device, auto = rt.device, rt.precision
    native = native_bf16(device)
    bf16 = native or args.bf16
    runtimes = formats(rt, bf16)
    if args.batch is None:
        args.batch = get_profile("cpu").train_config("unet", precision=auto).batch_size
    elif args.batch < 1:
        parser.error(f"--batch must be >= 1, got {args.batch}")
    rates = {k: matmul_gflops(device, dtype, min(2.0, args.seconds))
             for k, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)) if k == "fp32" or bf16}
    flops = {(m, t): gflop_per_mpix(m, t) for m in args.models for t in (True, False)}
    ceilings = _print_setup(args, rt, native, bf16, rates, flops)
    rows = []

    def record(row: dict, name: str, base: float | None, default: bool) -> float:
        training = row["kind"] == "train"
        rate = rates[row["precision"]] if row["precision"] in rates else rates["fp32"]
        row.update(setting=name, ratio_to_fp32=row["mpix_per_s"] / (base or row["mpix_per_s"]), fit_default=default,
                   share_of_matmul_rate=row["mpix_per_s"] * flops[row["model"], training] / rate)
        rows.append(row)
        _print(row)
        return base or row["mpix_per_s"]

    for model_name in args.models:
        _bench_model_training(model_name, args, runtimes, rt, record)
        _bench_model_inference(model_name, args, runtimes, rt, record)
    if device.type == "cpu" and args.busy and torch.get_num_threads() > 1:
        rows += _busy_rows(args.models[0], min(args.crops), rt, args.seconds, args.batch)
    summary = _summary(rows)
    print("\n".join(summary))
    out = paths.report_dir() / "bench.json" if args.json is None else Path(args.json)
    report = dict(device=str(device), torch=torch.__version__, threads=torch.get_num_threads(), native_bf16=native,
                  cpu=cpu_features() if device.type == "cpu" else None, default_precision=auto, batch=args.batch,
                  noise=args.noise, machine=platform.processor() or platform.machine(), matmul_gflops=rates,
                  ceiling_mpix_per_s=ceilings, summary=summary, rows=rows,
                  gflop_per_mpix={f"{m} {'train' if t else 'infer'}": v for (m, t), v in flops.items()})
    paths.atomic_write_text(out, json.dumps(report, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m n2n_core.studies.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="measuring time per line (default 8)")
    parser.add_argument("--crops", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--models", nargs="+", default=["unet", "resnet"], choices=["unet", "resnet"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--infer-size", type=int, nargs=2, default=[768, 512], metavar=("W", "H"),
                        help="inference image size (default 768 512, a Kodak image)")
    parser.add_argument("--noise", default="gaussian", choices=NOISE_KINDS,
                        help="training noise drawn by the sampler (default gaussian; poisson costs most)")
    parser.add_argument("--batch", type=int, default=None,
                        help="training crops per step (default: the cpu profile's U-Net batch in this machine's "
                             "default number format, e.g. 2 in float32)")
    parser.add_argument("--bf16", action="store_true", help="measure bfloat16 even on a CPU without native support")
    parser.add_argument("--no-busy", dest="busy", action="store_false",
                        help="skip the measurement with one core busy (CPUs only)")
    parser.add_argument("--no-compile", dest="compile", action="store_false",
                        help="skip the torch.compile rows (each compiles first)")
    parser.add_argument("--json", default=None, help="where to write the figures (default reports/bench.json)")
    return parser


def _print_setup(args, rt: Runtime, native: bool, bf16: bool, rates: dict, flops: dict) -> dict[str, dict[str, float]]:
    """Print the device, the path ``fit`` and ``n2n denoise`` take (the default runtime ``rt``), the
    matrix-product rates, each model's ceiling and the table's header; returns model -> {"train",
    "infer"} ceilings (Mpix/s)."""
    device = rt.device
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: {native}, "
          f"training noise {args.noise}, batch {args.batch}"
          + ("" if bf16 else " (bf16 rows skipped: emulated, about 10x slower than float32 on such a CPU; "
                             "--bf16 measures them anyway)"))
    if device.type == "cpu":
        print(f"CPU: {describe_cpu()}; bfloat16 is {'the default here (measured faster on such a CPU)' if rt.precision == 'bf16' else 'not the default here' + (' (native without AMX on an Intel CPU: measured slower than float32 there)' if native else '')}")
    print(f"fit trains on {rt.describe(rt.layout(min(args.crops)))} at crop {min(args.crops)}; n2n denoise runs on "
          f"{rt.describe()}")
    print("matrix product: " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in rates.items()))
    ceilings = {}
    for m in args.models:
        ceilings[m] = {"train": rates["fp32"] / flops[m, True], "infer": rates["fp32"] / flops[m, False]}
        print(f"{m}: {flops[m, True]:.0f} GFLOP per Mpix to train (forward + backward), {flops[m, False]:.0f} "
              f"to run; ceiling at the float32 matrix-product rate: train {ceilings[m]['train']:.3f} Mpix/s, "
              f"run {ceilings[m]['infer']:.3f} Mpix/s")
    print(f"{'what':6} {'model':7} {'size':>8} {'setting':24} {'Mpix/s':>8} {'x fp32':>7} {'% mm':>5} {'data':>6} "
          f"{'peak MB':>8}")
    return ceilings


def _bench_model_training(model_name: str, args, runtimes: dict[str, Runtime], default: Runtime, record) -> None:
    """Every training setting at every crop, each crop's rows against its own ``fp32``."""
    for crop in args.crops:
        base = None
        for name, setting in train_settings(runtimes, default, crop, args.compile).items():
            try:
                row = bench_training(model_name, crop, setting, args.seconds, noise=args.noise, batch=args.batch)
            except Exception as error:  # torch.compile without a working C++ compiler, for one
                print(f"train  {model_name:7} {crop:>8} {name:24} skipped: {type(error).__name__}: "
                      f"{str(error).splitlines()[0] if str(error) else ''}")
                continue
            base = record(row, name, base, setting == fit_default(default, crop))


def _bench_model_inference(model_name: str, args, runtimes: dict[str, Runtime], default: Runtime, record) -> None:
    """Every inference setting on one image of ``--infer-size``, against the first (``fp32``): the
    layouts in their own format, `n2n denoise`'s paths in the ``default`` runtime."""
    base, device, auto = None, default.device, default.precision
    infer = [("fp32", 0), ("channels_last", 0), ("denoise", 256)] + [("bf16", 0)] * ("bf16" in runtimes)
    infer += [("compiled", 0)] * args.compile
    for name, tile in infer:
        rt = default if name in ("denoise", "compiled") else runtimes["bf16" if name == "bf16" else "fp32"]
        try:
            row = bench_inference(model_name, name, rt, args.seconds, tile, size=tuple(args.infer_size[::-1]))
        except Exception as error:
            print(f"infer  {model_name:7} {name:>33} skipped: {type(error).__name__}")
            continue
        # what `n2n denoise` does with a whole image: NCHW on GPUs; channels_last on CPUs, in bfloat16 with AMX
        default = tile == 0 and name == ("fp32" if device.type == "cuda" else "bf16" if auto == "bf16"
                                         else "channels_last")
        base = record(row, name + (f", tiles {tile}" if tile else ""), base, default)


def _busy_rows(model_name: str, crop: int, rt: Runtime, seconds: float, batch: int) -> list[dict]:
    """``bench_busy``'s rows, printed as they come and marked as the report records them."""
    print(f"one core busy (another process spinning), {model_name}, crop {crop}, fit's default setting:")
    rows = []
    for name, row in bench_busy(model_name, crop, rt, seconds, batch):
        row.update(kind="busy", setting=name, fit_default=name.endswith("governor"))
        rows.append(row)
        print(f"busy   {row['model']:7} {crop:>8} {'*' if row['fit_default'] else ' '}{name:23} "
              f"{row['mpix_per_s']:8.3f}  {row['ratio_to_idle']:5.2f} of idle ({row['idle_mpix_per_s']:.3f}), "
              f"{row['threads']} thread(s) at the end", flush=True)
    return rows


def _summary(rows: list[dict]) -> list[str]:
    """The default paths against plain float32: ``fit``'s at the cpu profile's step (the smallest crop
    measured, ``batch`` crops) and ``n2n denoise``'s on a whole image, per model."""
    lines = []
    for row in rows:
        if row.get("fit_default") and row["kind"] in ("train", "infer"):
            what = (f"fit's default ({PRECISION_NAMES[row['precision']]}) at {row['batch']} crops of {row['crop']}"
                    if row["kind"] == "train" else f"n2n denoise ({PRECISION_NAMES[row['precision']]}) on {row['crop']}")
            if row["kind"] == "train" and row["crop"] != min(r["crop"] for r in rows if r["kind"] == "train"):
                continue
            lines.append(f"default path, {row['model']}: {what}: {row['ratio_to_fp32']:.2f}x plain float32 NCHW "
                         f"({row['mpix_per_s']:.3f} Mpix/s)")
    return lines


def _print(row: dict) -> None:
    data = "" if row["data_share"] is None else f"{100 * row['data_share']:5.1f}%"
    mark = "*" if row["fit_default"] else " "
    print(f"{row['kind']:6} {row['model']:7} {str(row['crop']):>8} {mark}{row['setting']:23} {row['mpix_per_s']:8.3f} "
          f"{row['ratio_to_fp32']:7.2f} {100 * row['share_of_matmul_rate']:4.0f}% {data:>6} {row['peak_mb']:8.0f}",
          flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
