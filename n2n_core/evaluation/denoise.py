"""Denoising a user's images with a trained checkpoint, in bounded memory.

``denoise_tensor`` runs a model over an image of any size in tiles: each tile is a window of
``tile`` x ``tile`` pixels of which only the core is kept, ``overlap`` pixels from every side that
faces a neighbouring tile being context that is thrown away. With enough context a tile's core is
what the whole image would give (the test measures it), so there are no seams, and memory depends
on the tile, not on the image. ``denoise_files`` reads, denoises and writes files (``images``
keeps their mode and bit depth; a multi-page TIFF stack comes back as a stack, ``data.stacks``),
never overwriting a file unless asked to. A grey image goes through grey weights where there are
some, else through the colour weights by ``grey.NoiseMatching``.
"""
from __future__ import annotations

import contextlib
import glob
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..data.augment import SelfEnsemble
from ..data.sets import IMAGE_SUFFIXES
from ..data import stacks
from ..data.images import (ImageError, check_regular_file, image_pages, not_a_regular_file, pil_output, read_image,
                           write_image)
from ..paths import ensure_writable_dir, output_path, write_failure
from .grey import GreyRoute, NoiseMatching, model_channels
from ..training.runtime import Runtime, infer

DEFAULT_TILE = 512
DEFAULT_OVERLAP = 32
MIN_TILE = 32  # the U-Net's 5 poolings: a tile of 32 px is one pixel at its bottom


def _spans(length: int, tile: int, overlap: int, align: int = 1) -> list[tuple[int, int, int]]:
    """(window start, core start, core end) along one axis: the fewest windows of ``tile`` pixels,
    about evenly spaced and starting on multiples of ``align`` (``length`` and ``tile`` are then
    multiples of it), that overlap by at least 2 x ``overlap``; neighbouring cores meet in the middle
    of each overlap, so every core keeps ``overlap`` pixels of context on each inner side."""
    if length <= tile:
        return [(0, 0, length)]
    if align == 1:
        n = math.ceil((length - tile) / (tile - 2 * overlap)) + 1
        starts = [round(i * (length - tile) / (n - 1)) for i in range(n)]
    else:  # steps on the grid, the last window flush with the end
        step = max(align, (tile - 2 * overlap) // align * align)
        n = math.ceil((length - tile) / step) + 1
        starts = [min(i * step, length - tile) for i in range(n)]
    bounds = [0] + [(starts[i + 1] + starts[i] + tile) // 2 for i in range(n - 1)] + [length]
    return [(starts[i], bounds[i], bounds[i + 1]) for i in range(n)]


def check_tiling(tile: int, overlap: int) -> None:
    if tile < 0:
        raise ValueError(f"tile must be >= 0 (0: never tile), got {tile}")
    if 0 < tile < MIN_TILE:
        raise ValueError(f"tile {tile} is too small to be useful: every tile costs a forward pass (a 300x200 image "
                         f"in tiles of 1 px is 60,000 of them); use --tile 0 (whole images) or at least {MIN_TILE} "
                         f"(default {DEFAULT_TILE})")
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    if tile and tile < 3 * overlap + 1:
        raise ValueError(f"tile {tile} is too small for overlap {overlap}: use tile >= 3 x overlap + 1, "
                         f"e.g. --tile {max(256, 4 * overlap)}")


@torch.inference_mode()
def denoise_tensor(model: torch.nn.Module, image: torch.Tensor, rt: Runtime, tile: int = DEFAULT_TILE,
                   overlap: int = DEFAULT_OVERLAP, batch: int = 1, progress: bool = False) -> torch.Tensor:
    """Denoise a C x H x W image in [0, 1] (C: the model's channels); ``tile`` 0 runs it whole.
    Returns C x H x W on the CPU.
    The model runs on ``rt``'s device, in its number format."""
    check_tiling(tile, overlap)
    h, w = image.shape[-2:]
    if not tile or (h <= tile and w <= tile):
        return infer(model, image[None], rt)[0]
    # a model that pads its input (the U-Net, to multiples of 32) is given the image padded as it
    # would pad it whole, and tiles on its grid: the edge tiles see the same borders as the whole
    # image, every tile the same pooling grid (no seams, no different last rows and columns)
    align, pad = getattr(model, "side_multiple", 1), getattr(model, "pad_input", None)
    whole_h, whole_w = h, w
    if pad is not None:
        image = pad(image[None])[0]
        h, w = image.shape[-2:]
    tile -= tile % align
    rows, cols = _spans(h, tile, overlap, align), _spans(w, tile, overlap, align)
    out = torch.empty(image.shape, dtype=torch.float32)
    jobs = [(r, c) for r in rows for c in cols]
    bar = tqdm(total=len(jobs), desc="tiles", unit="tile", leave=False, disable=not progress)
    for i in range(0, len(jobs), batch):
        group = jobs[i:i + batch]
        windows = torch.stack([image[:, r[0]:r[0] + min(tile, h), c[0]:c[0] + min(tile, w)] for r, c in group])
        result = infer(model, windows, rt)
        for k, ((wr, r0, r1), (wc, c0, c1)) in enumerate(group):
            out[:, r0:r1, c0:c1] = result[k, :, r0 - wr:r1 - wr, c0 - wc:c1 - wc]
        bar.update(len(group))
    bar.close()
    return out[:, :whole_h, :whole_w]


def default_batch(device: str | torch.device) -> int:
    """Tiles per forward pass of `n2n denoise` unless ``--batch`` says otherwise."""
    return 8 if torch.device(device).type == "cuda" else 1


# ------------------------------------------------------------------------------------ files
@dataclass
class Job:
    source: Path
    target: Path
    pages: int = 1  # a multi-page TIFF stack: denoised page by page into a stack (``data.stacks``)


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files, folders (their image files, not recursive) and glob patterns, in the order given. In a
    folder, an entry named as an image that is no regular file (a pipe, a broken link, a folder) is
    left out with one line on stderr naming it: never opened, never silently."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            named = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            found = [p for p in named if p.is_file()]
            for odd in (p for p in named if not p.is_file()):
                print(f"{odd}: {not_a_regular_file(odd)}: skipped", file=sys.stderr)
            if not found:
                raise ImageError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        elif path.exists():  # a pipe, a device: refused by its kind, never opened
            check_regular_file(path)
        elif any(ch in item for ch in "*?["):
            matched = sorted(Path(p) for p in glob.glob(item) if Path(p).is_file())
            if not matched:
                raise ImageError(f"{item}: no file matches this pattern")
            files += matched
        else:
            raise ImageError(f"{path}: no such file or folder")
    return list(dict.fromkeys(p.resolve() for p in files))


def plan(inputs: list[str], out_dir: str | Path, overwrite: bool = False, skip_existing: bool = False) -> list[Job]:
    """One job per input file, written to ``out_dir`` under the same name. Refuses, before
    anything is written, when an input is not an image (``images.image_pages``; a multi-page TIFF is
    a stack), two inputs share a name, an output would replace its own input or is a link, or an
    output exists and neither ``overwrite`` nor ``skip_existing`` (which leaves those inputs out:
    finishing a batch) is on."""
    if overwrite and skip_existing:
        raise ImageError("--overwrite replaces the outputs that exist and --skip-existing keeps them; give one of the two")
    out_dir = output_path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ImageError(f"{out_dir}: exists and is not a folder; choose another --out")
    jobs, seen = [], {}
    sources = expand_inputs(inputs)
    for source in sources:
        # the folder resolved, the name not: a link in --out must never be followed
        target = out_dir.resolve() / source.name
        if source.name in seen:
            raise ImageError(f"{source} and {seen[source.name]} would both be written to {target}; "
                             f"denoise them into different --out folders")
        seen[source.name] = source
        if os.path.islink(target):
            raise ImageError(f"{target}: is a symbolic link (to {os.readlink(target)}); n2n denoise never writes "
                             f"through links: remove it or choose another --out")
        if target == source or (target.exists() and any(target.samefile(other) for other in sources)):
            raise ImageError(f"{target}: the output would replace the input; choose another --out folder")
        jobs.append(Job(source, target))
    for job in jobs:
        job.pages = image_pages(job.source)
    existing = [job.target for job in jobs if job.target.exists()]
    if existing and skip_existing and not overwrite:
        print(f"{len(existing)} of {len(jobs)} output(s) already in {out_dir}: skipped (--skip-existing)")
        return [job for job in jobs if not job.target.exists()]
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise ImageError(f"{existing[0]}{more} already exist; pass --overwrite to replace them, --skip-existing "
                         f"to finish an interrupted batch, or choose another --out")
    return jobs


def prepare_out_dir(out_dir: str | Path) -> Path:
    """Create ``out_dir`` and check that it can be written, with a clear error otherwise."""
    try:
        return ensure_writable_dir(out_dir)
    except ValueError as err:
        raise ImageError(str(err)) from None


@contextlib.contextmanager
def output_folder(out_dir: str | Path):
    """``prepare_out_dir`` for a block that writes into the folder: when this call created the folder
    and the block wrote nothing into it (it failed, or every file did), the folder goes again."""
    out_dir = Path(out_dir)
    created = not out_dir.exists()
    prepare_out_dir(out_dir)
    try:
        yield out_dir
    finally:
        if created and out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()


def denoise_image(model: torch.nn.Module, image, rt: Runtime, grey: GreyRoute | None = None,
                  **tiling) -> tuple[torch.Tensor, str]:
    """One read image (``images.ImageFile``) denoised: ``denoise_rgb`` of its pixels."""
    return denoise_rgb(model, image.rgb, image.grey, rt, grey, name=str(image.path), **tiling)


def denoise_rgb(model: torch.nn.Module, rgb: torch.Tensor, grey_image: bool, rt: Runtime,
                grey: GreyRoute | None = None, name: str = "the image", **tiling) -> tuple[torch.Tensor, str]:
    """An image's pixels (3 x H x W; a grey image's three channels equal, ``grey_image``) denoised:
    (3 x H x W, what was done to a grey image, or ''). A grey image takes the route ``grey``
    (default: noise matching for colour weights); a colour image needs colour weights. ``tiling``:
    ``denoise_tensor``'s tile, overlap, batch, progress."""
    grey = grey or GreyRoute()
    channels = model_channels(model)
    if not grey_image:
        if channels != 3:
            raise ImageError(f"{name}: a colour image, but the weights are grey ({channels} channel); "
                             f"denoise colour images with colour weights (--checkpoint pretrained:gaussian)")
        return denoise_tensor(model, rgb, rt, **tiling), ""
    if grey.model is not None or channels == 1:
        out = denoise_tensor(grey.model or model, rgb[:1], rt, **tiling)
        return out.expand(3, -1, -1), f"grey weights{f' ({grey.name})' if grey.model is not None else ''}"
    if not grey.match:
        return (denoise_tensor(model, rgb, rt, **tiling).mean(0, keepdim=True).expand(3, -1, -1),
                "grey replicated to RGB (noise matching is for weights trained on Gaussian noise)")
    rgb, sigma = NoiseMatching().prepare(rgb[:1])  # drawn once for the whole image, then tiled
    out = NoiseMatching.finish(denoise_tensor(model, rgb, rt, **tiling))
    return out.expand(3, -1, -1), f"grey: noise matched to the colour weights, sigma {sigma:.1f} estimated"


def denoise_files(model: torch.nn.Module, jobs: list[Job], rt: Runtime, tile: int = DEFAULT_TILE,
                  overlap: int = DEFAULT_OVERLAP, batch: int = 1, progress: bool = True,
                  failures: list[tuple[Path, str]] | None = None, ensemble: bool = False,
                  grey: GreyRoute | None = None) -> list[Path]:
    """Denoise every job's file into its target (with ``ensemble``, the model's outputs averaged
    over the 8 flips/rotations, ``augment.SelfEnsemble``); grey files as ``grey`` says
    (``denoise_image``). Each file is read completely before anything of it is written, and each
    write is atomic. With a ``failures`` list, a file that cannot be read (or a colour file for
    grey weights) is added to it as (path, message) and the batch goes on; without, the error is
    raised. A write that fails (a full disk) stops the batch with an ImageError: the next ones
    would fail too."""
    model, written = SelfEnsemble(model) if ensemble else model, []
    grey = grey or GreyRoute()
    if ensemble and grey.model is not None:
        grey = GreyRoute(SelfEnsemble(grey.model), grey.match, grey.name)
    for job in tqdm(jobs, desc="denoise", unit="image", disable=not progress or len(jobs) < 2):
        try:
            write, described, how, notes = _denoised(model, job, rt, grey, tile=tile, overlap=overlap, batch=batch,
                                                     progress=progress)
        except ImageError as err:
            if failures is None:
                raise
            failures.append((job.source, str(err)))
            continue
        try:
            written.append(write())
        except OSError as err:
            raise ImageError(f"{job.target}: cannot be written ({err.strerror or err}); {len(written)} image(s) were "
                             f"written before it: {write_failure(err)} or choose another --out, then rerun with "
                             f"--skip-existing") from None
        if progress:
            tqdm.write(f"{job.source} ({described}) -> {job.target}" + (f" [{how}]" if how else ""))
        for note in notes:
            tqdm.write(f"{job.source}: {note}")
    return written


def _denoised(model: torch.nn.Module, job: Job, rt: Runtime, grey: GreyRoute,
              **tiling) -> tuple[Callable[[], Path], str, str, list[str]]:
    """``job``'s file read whole and denoised: (what writes the result to its target, the file as a log
    line describes it, what was done to a grey image, the notes on how the output differs in form). A
    stack is denoised page by page, each page as an image of its own, and written as a stack."""
    if job.pages == 1:
        image = read_image(job.source)
        out, how = denoise_image(model, image, rt, grey, **tiling)
        return (lambda: write_image(image, out, job.target)), image.describe(), how, image.notes
    pages, first, how = [], None, ""
    for image in tqdm(stacks.read_pages(job.source, job.pages), desc=job.source.name, unit="page", total=job.pages,
                      leave=False, disable=not tiling.get("progress", True)):
        out, how = denoise_image(model, image, rt, grey, **tiling)
        pages.append(pil_output(image, out))
        first = first or image
    return (lambda: stacks.write_stack(pages, first, job.target)), stacks.describe(first, len(pages)), how, first.notes
