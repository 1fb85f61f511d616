"""Where and how the networks run: the device, the number format (precision), the memory layout,
the CPU threads and torch.compile. Each default is what `make bench` measured fastest; the figures
and the machines they were measured on are in docs/speed.md and docs/reference/bench.json."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import time

import torch

from ..config import PRECISIONS  # noqa: F401 - re-exported

# the thread governor's changes: logged, not printed, so that a notebook's output stays what its
# reader asked for; the command line shows them (``show_thread_changes``)
LOG = logging.getLogger("n2n_core.threads")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {str(device)!r}; use auto, cpu or cuda") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device}: this project runs on cpu or cuda; use auto, cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} was asked for, but CUDA is not available; use device='cpu' or 'auto'")
    return device


# ------------------------------------------------------------------------------ precision
def cpu_features() -> dict[str, bool | str]:
    """What this CPU offers for these networks: AVX2, AVX512-BF16 (bfloat16 dot products in AVX-512
    registers) and AMX (bfloat16 tile units), read from /proc/cpuinfo. Not from
    torch.cpu.get_capabilities(): calling it slowed training for the rest of the process. Without
    /proc (not Linux) every feature reads as absent, so the float32 path is taken."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        text = ""
    flags, name, vendor = set(), "unknown CPU", ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags" and not flags:
            flags = set(value.split())
        elif key.strip() == "model name" and name == "unknown CPU":
            name = " ".join(value.replace("(R)", "").replace("Processor", "").split()) or name
        elif key.strip() == "vendor_id" and not vendor:
            vendor = {"AuthenticAMD": "AMD", "GenuineIntel": "Intel"}.get(value.strip(), value.strip())
    return {"name": name, "vendor": vendor, "avx2": "avx2" in flags, "avx512_bf16": "avx512_bf16" in flags,
            "amx_bf16": "amx_bf16" in flags}


def describe_cpu(features: dict | None = None) -> str:
    """The CPU's model name and its features, e.g. '<model name> (AVX2, AVX512-BF16, no AMX)'."""
    f = cpu_features() if features is None else features
    parts = [("AVX2", f["avx2"]), ("AVX512-BF16", f["avx512_bf16"]), ("AMX", f["amx_bf16"])]
    return f"{f['name']} ({', '.join(name if has else 'no ' + name for name, has in parts)})"


def fast_bf16(device: torch.device, features: dict | None = None) -> bool:
    """Whether bfloat16 is the faster number format for these networks on ``device``: on CPUs with
    AMX, and on AMD CPUs with AVX512-BF16, where `make bench` measured it faster than float32 in its
    faster layout (channels_last), in training and inference. On Intel CPUs with AVX512-BF16 but no AMX,
    and on GPUs, bfloat16 autocast measured slower than float32 (docs/speed.md)."""
    if device.type != "cpu":
        return False
    f = cpu_features() if features is None else features
    return bool(f["amx_bf16"] or (f["avx512_bf16"] and f.get("vendor") == "AMD"))


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 in hardware (elsewhere it is emulated, far slower)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    f = cpu_features()
    return bool(f["avx512_bf16"] or f["amx_bf16"])


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """'fp32' or 'bf16': ``precision`` itself, or for 'auto' the faster one on ``device`` (``fast_bf16``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    device = torch.device(device)
    if precision == "auto":
        return "bf16" if fast_bf16(device) else "fp32"
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"precision bf16 was asked for, but {torch.cuda.get_device_name(device)} has no bfloat16; "
                         f"use fp32")
    return precision


def precision_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision: None for float32."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"resolve precision {precision!r} first (resolve_precision)")
    return torch.bfloat16 if precision == "bf16" else None


def autocast(device: torch.device, precision: str):
    """The forward pass's number format: bfloat16 autocast for 'bf16' (weights, optimizer and loss
    stay float32), nothing for 'fp32'."""
    dtype = precision_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


# --------------------------------------------------------------------------------- layout
def memory_format(device: torch.device, crop: int, precision: str = "fp32") -> torch.memory_format:
    """The layout ``fit`` trains in: channels_last (NHWC) on GPUs, in bfloat16, and on CPUs for
    float32 crops up to 64 px; plain NCHW for larger float32 crops on CPUs, where `make bench`
    measured channels_last slower; oneDNN's bfloat16 kernels want channels_last."""
    if device.type == "cuda" or crop <= 64 or precision == "bf16":
        return torch.channels_last
    return torch.contiguous_format


def inference_layout(device: str | torch.device) -> torch.memory_format:
    """The layout of a forward pass without training (validation, evaluation, `n2n denoise`):
    channels_last on CPUs, NCHW on GPUs, what `make bench` measured fastest."""
    return torch.contiguous_format if torch.device(device).type == "cuda" else torch.channels_last


# -------------------------------------------------------------------------------- threads
class ThreadGovernor:
    """The CPU threads torch computes with, adapted to what else runs on the machine.

    OpenMP threads spin while they wait for each other, so when another process holds one of the
    cores every parallel region waits for the thread that shares it, and training slows several
    times over; one thread fewer keeps much more of the idle speed (docs/speed.md). So the governor keeps
    all cores while the machine is free and drops to one thread fewer while other processes use at
    least ``busy`` of a core (read from /proc/stat minus this process's own CPU time, every
    ``interval`` seconds); it goes back when they use less than
    ``idle``. ``fixed`` (or N2N_THREADS) sets the count once and turns adaptation off. A change of
    thread count changes the order of some floating-point sums, so for bit-identical reruns fix it."""

    def __init__(self, fixed: int | None = None, interval: float = 2.0, busy: float = 0.4, idle: float = 0.2,
                 quiet: bool = False):
        env = os.environ.get("N2N_THREADS")
        if fixed is None and env:
            try:
                fixed = int(env)
            except ValueError:
                raise ValueError(f"N2N_THREADS={env!r}: give a whole number of threads, e.g. N2N_THREADS=2") from None
        if fixed is not None and fixed < 1:
            raise ValueError(f"threads must be >= 1, got {fixed}")
        self.full = fixed or torch.get_num_threads()
        self.fixed = fixed is not None
        self.interval, self.busy, self.idle, self.quiet = interval, busy, idle, quiet
        self.adaptive = not self.fixed and self.full > 1 and _cpu_times() is not None
        self.others = 0.0  # cores used by other processes at the last reading
        self._last = None
        self._announced = False
        torch.set_num_threads(self.full)

    def describe(self) -> str:
        if self.fixed:
            return f"{self.full} thread{'s' * (self.full > 1)} (fixed)"
        if not self.adaptive:
            return f"{self.full} thread{'s' * (self.full > 1)}"
        return f"{self.full} threads ({self.full - 1} while another process keeps a core busy; N2N_THREADS fixes it)"

    def poll(self) -> int:
        """Check the machine's load (at most every ``interval`` s) and set the thread count; returns it."""
        if not self.adaptive:
            return torch.get_num_threads()
        now = time.monotonic()
        if self._last is not None and now - self._last[0] < self.interval:
            return torch.get_num_threads()
        reading = _cpu_times()
        if reading is None:
            return torch.get_num_threads()
        if self._last is not None:
            busy_all, own = reading[0] - self._last[1][0], reading[1] - self._last[1][1]
            self.others = max(0.0, (busy_all - own) / (now - self._last[0]))
            current = torch.get_num_threads()
            wanted = current
            if current == self.full and self.others >= self.busy:
                wanted = self.full - 1
            elif current < self.full and self.others < self.idle:
                wanted = self.full
            if wanted != current:
                torch.set_num_threads(wanted)
                if not self.quiet:
                    LOG.info("threads: %d -> %d (other processes use %.1f cores)", current, wanted, self.others)
        self._last = (now, reading)
        return torch.get_num_threads()


def show_thread_changes(stream=None) -> None:
    """Print the governor's changes of thread count to ``stream`` (default: standard error), as the
    command line does; elsewhere (a notebook) they are only logged."""
    if not any(getattr(h, "n2n_threads", False) for h in LOG.handlers):
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.n2n_threads = True
        LOG.addHandler(handler)
    LOG.setLevel(logging.INFO)


def _cpu_times() -> tuple[float, float] | None:
    """(CPU seconds all processes have used, CPU seconds this process has used), from /proc; None
    where /proc is missing (not Linux)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        with open("/proc/self/stat") as f:
            own = f.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6]  # user nice system irq softirq
    return busy / ticks, (int(own[11]) + int(own[12])) / ticks  # utime + stime


_GOVERNOR: ThreadGovernor | None = None


def threads(fixed: int | None = None) -> ThreadGovernor:
    """The process's ThreadGovernor, made on first use; ``fixed`` replaces it with a fixed count."""
    global _GOVERNOR
    if _GOVERNOR is None or fixed is not None:
        _GOVERNOR = ThreadGovernor(fixed)
    return _GOVERNOR


def describe_device(device: torch.device) -> str:
    """The hardware behind ``device``: the CPU and its features, or the GPU's name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return describe_cpu() if device.type == "cpu" else str(device)


def describe_path(device: torch.device, precision: str, layout: torch.memory_format | None = None) -> str:
    """One line saying how the networks run here, e.g. 'cpu, <CPU name> (AVX2, AVX512-BF16, AMX):
    bfloat16, channels_last, 2 threads ...'."""
    where = f"{device.type}, {describe_device(device)}"
    what = {"fp32": "float32", "bf16": "bfloat16 autocast"}[precision]
    lay = "" if layout is None else (", channels_last" if layout == torch.channels_last else ", NCHW")
    cpu = f", {threads().describe()}" if device.type == "cpu" else ""
    return f"{where}: {what}{lay}{cpu}"


def compile_module(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` through torch.compile (inductor), with static shapes: a new input size compiles
    anew rather than switching to shape-generic kernels, whose compilation failed in torch 2.14 on
    the second size seen (AttributeError in TensorReferenceAnalysis). The returned module shares
    ``module``'s weights."""
    return torch.compile(module, dynamic=False)


@contextlib.contextmanager
def process_group(device: torch.device):
    """Under torchrun (WORLD_SIZE > 1): join the process group (nccl on GPUs, gloo on CPUs), yield
    this process's device, and leave together at the end; otherwise yield None. The ranks wait for
    each other before leaving: leaving while a peer was still in the group aborted a gloo process
    now and then ("terminate called")."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield None
        return
    device = torch.device(device)  # resolved where the run starts
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    try:
        yield device
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


def world() -> tuple[int, int]:
    """(rank, number of processes) of a torch.distributed run, (0, 1) otherwise."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_agree(flag: bool, device: torch.device) -> bool:
    """In a distributed run, every process follows rank 0's decision (wall-clock budgets differ
    slightly between processes, and all of them must stop at the same step)."""
    if world()[1] == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)  # on the GPU for nccl
    torch.distributed.broadcast(value, src=0)
    return bool(value.item())


class CompilerMissing(ValueError):
    """torch.compile asked for on a machine without the C++ compiler its code generator needs."""


def check_compiler() -> None:
    """torch.compile's code generator (inductor) builds C++ for a CPU and its launchers for a GPU: with
    no compiler found, a CompilerMissing that says what to install, before any work, instead of a long
    traceback at the first step."""
    import os
    import shutil

    if not any(name and shutil.which(name) for name in (os.environ.get("CXX"), "c++", "g++", "clang++")):
        raise CompilerMissing("--compile needs a C++ compiler (c++, g++ or clang++ on PATH, or named by CXX), and none "
                              "was found: install one (Debian/Ubuntu: apt install g++) or leave out --compile")


def available_memory(device: torch.device) -> int | None:
    """Bytes a new allocation can still get on ``device`` (free GPU memory; on a CPU the system's
    MemAvailable), or None where it cannot be told."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


@torch.no_grad()
def activation_bytes_per_pixel(model: torch.nn.Module, side: int = 32) -> float:
    """What training keeps per input pixel of one crop: the outputs of the model's layers, which the
    backward pass needs, in float32; counted by running the model (on the CPU, one thread: a few
    milliseconds) on one small crop."""
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    total, before = [0], torch.get_num_threads()
    hooks = [m.register_forward_hook(lambda _m, _i, out: total.__setitem__(0, total[0] + out.numel()))
             for m in model.modules() if not list(m.children())]
    try:
        torch.set_num_threads(1)
        model(torch.zeros(1, convs[0].in_channels if convs else 3, side, side, device=next(model.parameters()).device))
    finally:
        torch.set_num_threads(before)
        for hook in hooks:
            hook.remove()
    return total[0] * 4 / (side * side)


def check_training_memory(model: torch.nn.Module, batch: int, crop: int, device: torch.device) -> None:
    """A ValueError, before training, when ``batch`` crops of ``crop`` pixels need more memory than
    ``device`` has free (rather than the process being killed without a word). The count is a lower
    bound (autograd keeps more than the layers' outputs), so no batch that fits is refused."""
    free = available_memory(device)
    if free is None:
        return
    per_crop = activation_bytes_per_pixel(model) * crop * crop
    if batch * per_crop > free:
        fits = int(free // per_crop)
        raise ValueError(f"batch size {batch} of {crop} px crops needs at least {batch * per_crop / 2 ** 30:.1f} GiB "
                         f"for training (the layers' outputs alone), more than the {free / 2 ** 30:.1f} GiB free on "
                         f"{device.type}: " + (f"use a batch size well below {fits}" if fits > 1 else "use a smaller crop"))
