"""What notebooks 06 (your own data) and 09 (single captures) call: simulated noisy captures of
photographs, the command line run as a shell runs it, training on a folder of noisy pairs (or
single captures) unless that run is already there, and the PSNR of denoised files against their
clean originals. The notebooks hold no logic of their own; each step is one call here."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from ..training.checkpoint import load_checkpoint, load_model
from ..config import PROFILES, TrainConfig
from ..data.sets import load_image
from ..evaluation.denoise import denoise_tensor
from ..paper.metrics import psnr
from ..training.runtime import Runtime
from ..training.train import History


def cli(*args) -> str:
    """Run `python -m n2n_core ARGS` in a new process as a shell would, print the command line and
    what it prints, and return its output; a RuntimeError carries its error output if it fails."""
    args = [str(a) for a in args]
    print("$ python -m n2n_core " + " ".join(args))
    result = subprocess.run([sys.executable, "-m", "n2n_core", *args], capture_output=True, text=True)
    print(result.stdout.strip())
    if result.returncode:
        raise RuntimeError(f"the command failed: {result.stderr.strip()[-1500:]}")
    return result.stdout


def train_pairs(checkpoint: Path, pairs: Path, profile: str, steps: int, seed: int = 0, rt: Runtime | None = None,
                init: str | None = None, source: str = "pairs") -> History:
    """`n2n train --pairs PAIRS` (``source`` 'single': `--single`, notebook 09) into ``checkpoint``
    (from ``init`` weights if given), unless a finished run with the same steps and start is there;
    its history. The profile's own step (``train``'s batch and learning rate, not a noise's budget)
    and ``steps``: a budget for notebooks 06 and 09 that is the same on every machine. The command
    gets ``rt``'s device (None: this machine's runtime) and its number format where it was named,
    'auto' otherwise, so that a resumed run keeps the format it was started in."""
    rt = rt or Runtime.resolve()
    base = pairs_settings(profile, steps, seed, source)
    previous = load_checkpoint(checkpoint) if Path(checkpoint).is_file() else None
    if (previous and previous["finished"] and previous["config"]["train"]["max_steps"] == steps
            and previous["config"].get("init") == init):
        print(f"{Path(checkpoint).name}: already trained ({previous['step']} steps); reusing it")
    else:
        cli("train", f"--{source}", pairs, "--profile", profile, "--steps", steps, "--batch-size", base.batch_size,
            "--lr", base.lr, "--seed", seed, "--device", str(rt.device),
            "--precision", rt.precision if rt.chosen else "auto", "--out", checkpoint, *(["--init", init] if init else []),
            *(["--overwrite"] if previous else []))
    return History.from_dict(load_checkpoint(checkpoint)["history"])


def pairs_settings(profile: str, steps: int, seed: int = 0, source: str = "pairs") -> TrainConfig:
    """The training settings of ``train_pairs``'s run as `n2n train` takes them: the profile's own step
    (``train``'s batch and learning rate), ``steps`` and the target of ``source`` (single captures:
    Neighbor2Neighbor)."""
    return dataclasses.replace(PROFILES[profile].train, target="nb2nb" if source == "single" else "noisy", seed=seed,
                               max_steps=steps, max_seconds=None)


@dataclass
class FileScores:
    """PSNR (8-bit protocol) of noisy files and of their denoised versions against the originals."""
    names: list[str]
    noisy: list[float]
    denoised: list[float]

    @property
    def gains(self) -> list[float]:
        return [b - a for a, b in zip(self.noisy, self.denoised)]

    @property
    def mean(self) -> float:
        return sum(self.denoised) / len(self.denoised)


def score_files(clean_files: list[Path], noisy_files: list[Path], denoised_dir: Path,
                figure: Path | None = None) -> FileScores:
    """Score the files that `n2n denoise` wrote into ``denoised_dir`` (named as ``noisy_files``)
    against ``clean_files``, print a line per file, and draw clean / noisy / denoised side by side
    into ``figure`` when given."""
    from ..evaluation.plots import image_grid

    scores, rows = FileScores([], [], []), []
    for clean_file, noisy_file in zip(clean_files, noisy_files):
        clean, noisy = load_image(clean_file), load_image(noisy_file)
        out = load_image(Path(denoised_dir) / Path(noisy_file).name)
        p_in, p_out = float(psnr(noisy, clean)), float(psnr(out, clean))
        scores.names.append(Path(noisy_file).name)
        scores.noisy.append(p_in)
        scores.denoised.append(p_out)
        print(f"{Path(noisy_file).name}: noisy {p_in:.2f} dB -> denoised {p_out:.2f} dB ({p_out - p_in:+.2f} dB)")
        rows.append([("clean", clean), (f"noisy capture: {p_in:.2f} dB", noisy), (f"denoised: {p_out:.2f} dB", out)])
    if figure is not None:
        image_grid(rows, figure)
    return scores


def compare_scores(first: FileScores, second: FileScores, labels: tuple[str, str]) -> None:
    """Print the denoised PSNR of two models per file and their means."""
    for name, a, b in zip(first.names, first.denoised, second.denoised):
        print(f"{name}: {labels[0]} {a:.2f} dB, {labels[1]} {b:.2f} dB ({b - a:+.2f} dB)")
    print(f"mean over {len(first.names)} held-out photographs: {labels[0]} {first.mean:.2f} dB, "
          f"{labels[1]} {second.mean:.2f} dB")


def tile_gap(checkpoint: Path, noisy_file: Path, clean_file: Path, rt: Runtime | None = None, tile: int = 256,
             overlap: int = 32) -> float:
    """How far (dB) denoising in tiles of ``tile`` px lands from denoising the whole image at once,
    in the runtime ``rt`` (None: this machine's)."""
    rt = rt or Runtime.resolve()
    model = load_model(checkpoint, device=rt.device)
    noisy, clean = load_image(noisy_file), load_image(clean_file)
    whole = float(psnr(denoise_tensor(model, noisy, rt, tile=0), clean))
    tiled = float(psnr(denoise_tensor(model, noisy, rt, tile=tile, overlap=overlap), clean))
    print(f"whole {whole:.4f} dB, tiles of {tile}: {tiled:.4f} dB, difference {abs(whole - tiled):.4f} dB")
    return abs(whole - tiled)


def make_noisy_captures(files: list[str | Path], folder: str | Path, sigma: float = 25.0, seed: int = 0,
                        capture: int = 0) -> list[Path]:
    """Write one simulated noisy capture of each image into ``folder`` under its name, as a camera
    would: Gaussian noise of ``sigma`` (0..255 scale), clipped and rounded to 8 bit, PNG. Grey
    images stay grey. The noise is a function of (seed, image index, capture), so two captures are
    independent and a rerun writes the same files."""
    from ..data.images import read_image, write_image
    from ..paper.noise import seeded_generator

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, path in enumerate(files):
        image = read_image(path)
        gen = seeded_generator(seed, index, 1000 + capture)
        noise = torch.randn(image.rgb.shape[-2:] if image.grey else image.rgb.shape, generator=gen) * (sigma / 255.0)
        noisy = image.rgb + (noise.expand_as(image.rgb) if image.grey else noise)
        image.bits, image.alpha = 8, None  # captures are 8-bit
        written.append(write_image(image, noisy, folder / f"{Path(path).stem}.png"))
    return written
