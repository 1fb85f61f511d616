"""PSNR and SSIM with the paper's evaluation protocol (released code):
output and reference clipped to [0, 1] and rounded to 8 bit; PSNR over all RGB channels of each
image, then averaged over images; no Y-channel conversion, no border crop. The evaluation noise is
a function of (seed, image index, repeat), so a number does not change between runs.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data import load_image
from .devices import infer
from .noise import NoiseModel, seeded_generator
from .paths import atomic_write_text


def quantize(image: torch.Tensor) -> torch.Tensor:
    """Clip to [0, 1] and round to the 256 levels of an 8-bit image (kept as float in [0, 1])."""
    return torch.round(image.float().clamp(0, 1) * 255.0) / 255.0


def psnr(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each image (C x H x W -> scalar, N x C x H x W -> N), 8-bit protocol.
    Identical images give inf."""
    if output.shape != reference.shape:
        raise ValueError(f"PSNR needs images of one shape, got {tuple(output.shape)} and {tuple(reference.shape)}")
    mse = ((quantize(output) - quantize(reference)) ** 2).flatten(-3).mean(-1)
    return 10 * torch.log10(1.0 / mse)


def _gaussian_kernel(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def ssim(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03) of each image on
    the 8-bit quantised values, averaged over channels and the valid window positions."""
    if output.shape != reference.shape:
        raise ValueError(f"SSIM needs images of one shape, got {tuple(output.shape)} and {tuple(reference.shape)}")
    if min(output.shape[-2:]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 px (its window), got {tuple(output.shape[-2:])}")
    single = output.dim() == 3
    x, y = quantize(output), quantize(reference)
    if single:
        x, y = x[None], y[None]
    n, c = x.shape[:2]
    g = _gaussian_kernel().to(x.device)
    rows, cols = g.view(1, 1, -1, 1), g.view(1, 1, 1, -1)

    def blur(t: torch.Tensor) -> torch.Tensor:  # separable Gaussian, 'valid' positions only
        t = t.reshape(n * c, 1, *t.shape[-2:])
        return F.conv2d(F.conv2d(t, rows), cols)

    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y, cov = blur(x * x) - mu_x ** 2, blur(y * y) - mu_y ** 2, blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    s = s.reshape(n, -1).mean(1)
    return s[0] if single else s


@dataclass
class Evaluation:
    """Per-image numbers of one model on one test set; ``psnr`` and ``psnr_input`` are the means."""
    names: list[str]
    psnr_images: list[float]
    psnr_input_images: list[float]
    ssim_images: list[float]
    seed: int
    noise: str
    extra: dict = field(default_factory=dict)
    repeats: int = 1
    precision: str | None = None  # a network's forward pass: 'fp32' or 'bf16' (None: no network)

    @property
    def psnr(self) -> float:
        return sum(self.psnr_images) / len(self.psnr_images)

    @property
    def psnr_input(self) -> float:
        return sum(self.psnr_input_images) / len(self.psnr_input_images)

    @property
    def ssim(self) -> float:
        return sum(self.ssim_images) / len(self.ssim_images)

    def as_dict(self) -> dict:
        return {"psnr": round(self.psnr, 4), "psnr_input": round(self.psnr_input, 4), "ssim": round(self.ssim, 5),
                "images": len(self.names), "repeats": self.repeats, "seed": self.seed, "noise": self.noise,
                **({"precision": self.precision} if self.precision else {}), **self.extra}


def center_crop(image: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None:
        return image
    h, w = image.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return image[..., top:top + size, left:left + size]


def noise_generator(seed: int, index: int, repeat: int = 0) -> torch.Generator:
    """The generator of the evaluation noise of image ``index``, draw ``repeat``: repeat 0 is a
    function of (seed, index), repeat r > 0 of (seed, index, r)."""
    return seeded_generator(seed, index) if repeat == 0 else seeded_generator(seed, index, repeat)


# bump when a change to the code would change an evaluation's numbers: cached ones are then ignored
EVAL_CACHE_VERSION = 1


def model_digest(model: torch.nn.Module) -> str:
    """A hash of a module's class and weights: equal digests denoise equally."""
    h = hashlib.sha256(type(model).__qualname__.encode())
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _cache_key(model: torch.nn.Module, files, noise, seed: int, device, crop, repeats: int, precision: str) -> str:
    """What decides an evaluation: the weights, each file (path, size, mtime), the noise, the seed,
    the crop, the repeats, the device type (a GPU's numbers differ from a CPU's in the last bits)
    and the number format."""
    described = []
    for path in files:
        stat = Path(path).stat()
        described.append([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns])
    key = {"version": EVAL_CACHE_VERSION, "model": model_digest(model), "files": described, "noise": repr(noise),
           "seed": seed, "crop": crop, "repeats": repeats, "device": torch.device(device).type,
           "precision": precision}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]


def _read_cached(path: Path) -> Evaluation | None:
    try:
        return Evaluation(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):  # missing, half written by a crash, or from older code
        return None


def evaluate(model, files, noise: NoiseModel, seed: int = 0, device: str = "cpu", crop: int | None = None,
             progress: bool = True, repeats: int = 1, cache_dir: str | Path | None = None,
             precision: str = "fp32") -> Evaluation:
    """PSNR/SSIM of ``model`` on the images ``files`` under ``noise`` (see ``_evaluate``); a torch
    module runs in ``precision`` ('fp32' or 'bf16'), which the result records.

    With ``cache_dir``, a torch module's evaluation is stored there, keyed by its weights and every
    input of the measurement, and a later call with the same key returns it without running the
    model (notebook 05 reuses the Gaussian U-Nets' numbers of notebooks 03 and 04 this way)."""
    if cache_dir is None or not isinstance(model, torch.nn.Module):
        return _evaluate(model, files, noise, seed, device, crop, progress, repeats, precision)
    path = Path(cache_dir) / f"{_cache_key(model, files, noise, seed, device, crop, repeats, precision)}.json"
    cached = _read_cached(path)
    if cached is not None:
        print(f"(cached evaluation {path.name})")
        return cached
    result = _evaluate(model, files, noise, seed, device, crop, progress, repeats, precision)
    atomic_write_text(path, json.dumps(asdict(result)))
    return result


@torch.inference_mode()
def _evaluate(model, files, noise: NoiseModel, seed: int = 0, device: str = "cpu", crop: int | None = None,
              progress: bool = True, repeats: int = 1, precision: str = "fp32") -> Evaluation:
    """PSNR/SSIM of ``model`` on the images ``files`` under ``noise`` (see the module docstring).

    ``model`` is a torch module, any other callable from a 1 x 3 x H x W noisy batch (on the CPU)
    to its denoised batch (a classical baseline such as BM3D), or None to measure the noisy input.
    With ``repeats`` > 1 every image is measured under that many independent noise draws (the
    authors' follow-up code repeats Kodak 10x, BSD300 3x, Set14 20x) and its numbers are the means.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    names, out_psnr, in_psnr, out_ssim = [], [], [], []
    is_module = isinstance(model, torch.nn.Module)
    for index, path in enumerate(tqdm(files, desc="evaluate", disable=not progress, leave=False)):
        clean = center_crop(load_image(path), crop)
        if min(clean.shape[-2:]) < 11:
            raise ValueError(f"{path}: {clean.shape[-1]}x{clean.shape[-2]} px, smaller than the 11x11 window of SSIM; "
                             f"evaluate on images of at least 11x11 px")
        per_draw = []
        for repeat in range(repeats):
            noisy = noise(clean, noise_generator(seed, index, repeat))
            if model is None:
                output = noisy
            elif is_module:
                output = infer(model, noisy[None], device, precision)[0]
            else:
                output = model(noisy[None])[0].float().cpu()
            per_draw.append((float(psnr(output, clean)), float(psnr(noisy, clean)), float(ssim(output, clean))))
        names.append(getattr(path, "name", str(path)))
        out_psnr.append(sum(d[0] for d in per_draw) / repeats)
        in_psnr.append(sum(d[1] for d in per_draw) / repeats)
        out_ssim.append(sum(d[2] for d in per_draw) / repeats)
    if not names:
        raise ValueError("evaluate() got no images")
    return Evaluation(names, out_psnr, in_psnr, out_ssim, seed, repr(noise), repeats=repeats,
                      precision=precision if is_module else None)
