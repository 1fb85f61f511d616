"""Training on a user's own data, with no clean images needed.

Four sources, one training loop (``train.fit``, as in the notebooks):

- a folder of clean images, with synthetic noise (what the notebooks do with the training pool);
- a folder of noisy pairs: two sub-folders with the same file names, two captures of each scene
  (``pairs/a/img1.png`` and ``pairs/b/img1.png``). Each step takes the same random crop and the same
  flip/rotation of both captures, and draws which of the two is the input: under Noise2Noise the
  two are interchangeable, so both directions are training data;
- the pickle format of the Kaggle "noisy-images" data set: ``train_data.pkl`` holding two uint8
  tensors N x 3 x H x W of noisy pairs (``torch.save`` of a tuple), and ``val_data.pkl`` holding
  noisy and clean tensors of the same layout for validation;
- a folder of single noisy captures, one of each scene: Neighbor2Neighbor (``neighbor``);
- a folder of scene folders, each holding two or more aligned captures of one scene (``captures``):
  every step draws, per scene in the batch, two different captures as input and target, so every
  ordered pair of a scene's captures is training data (Noise2Noise on all of them, not fixed pairs).

Without clean images, validation measures the PSNR of the denoised first capture against the second
capture of held-out pairs: lower than the PSNR against a clean image would be, but it rises and
falls with it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from . import augment
from .capture import CaptureCase, CaptureSampler
from ..config import DataConfig, NoiseConfig, TrainConfig
from .sets import IMAGE_SUFFIXES, DataSources, list_images, to_uint8
from .neighbor import SingleCrops, draw_cells, sampler_class, subsample
from .patches import Batch, BatchSource, build_patch_sets, validation_pairs
from . import stacks
from .stacks import STACK_SUFFIXES
from .images import ImageError, ImageFile, image_pages, read_image
from .images import center_crop
from ..paper.noise import test_noise, training_noise

VAL_CROP = 256  # validation uses centre crops of at most this side, to stay cheap


class DataError(ValueError):
    """Training data that cannot be used; the message names the file or folder and what to do."""


# ------------------------------------------------------------------------------ noisy pairs
class PairedCrops(BatchSource):
    """Batches of (input, target) crops from pairs of noisy captures (uint8 3 x H x W tensors).
    Images are drawn in proportion to their area; all randomness comes from ``generator``."""

    def __init__(self, first: list[torch.Tensor], second: list[torch.Tensor], crop: int, batch_size: int,
                 generator: torch.Generator):
        if len(first) != len(second) or not first:
            raise DataError(f"need the same number (>= 1) of first and second captures, got {len(first)} and "
                            f"{len(second)}")
        self.first, self.second, self.crop, self.batch_size = first, second, crop, batch_size
        self.generator = generator
        self.weights = _area_weights(first)

    def sample(self) -> Batch:
        which = torch.multinomial(self.weights, self.batch_size, replacement=True, generator=self.generator)
        inputs, targets = [], []
        for k in which.tolist():
            pair = _same_crop(torch.stack([self.first[k], self.second[k]]), self.crop, self.generator)
            swap = int(torch.randint(0, 2, (1,), generator=self.generator))
            inputs.append(pair[swap])
            targets.append(pair[1 - swap])
        target = self.to_float(torch.stack(targets))
        return Batch(self.to_float(torch.stack(inputs)), target, target, None)


def _area_weights(images: list[torch.Tensor]) -> torch.Tensor:
    """Each image's (scene's) chance of being drawn: proportional to its area."""
    return torch.tensor([float(a.shape[-1] * a.shape[-2]) for a in images])


def _same_crop(stack: torch.Tensor, crop: int, generator: torch.Generator) -> torch.Tensor:
    """One random crop and one random flip/rotation, the same for every capture of ``stack`` (K x C x H x W)."""
    return augment.random_dihedral(augment.random_crop(stack, crop, generator), generator)


def _pair_dirs(dirs: list[str | Path]) -> tuple[Path, Path]:
    if len(dirs) == 2:
        a, b = map(Path, dirs)
    elif len(dirs) == 1:
        root = Path(dirs[0])
        if not root.is_dir():
            raise DataError(f"{root}: no such folder")
        subs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if len(subs) != 2:
            raise DataError(f"{root}: expected two sub-folders of noisy captures with matching file names "
                            f"(e.g. {root}/a and {root}/b), found {len(subs)}")
        a, b = subs
    else:
        raise DataError(f"--pairs takes one folder (with two sub-folders) or two folders, got {len(dirs)}")
    for folder in (a, b):
        if not folder.is_dir():
            raise DataError(f"{folder}: no such folder")
    if a.resolve() == b.resolve():
        raise DataError(f"--pairs names {a} twice: the second capture of each scene must come from another folder "
                        f"(two identical captures teach the network to copy its input)")
    return a, b


def _load_uint8(path: Path) -> torch.Tensor:
    return _load_capture(path)[0]


def _singles(path: Path) -> list[tuple[str, torch.Tensor]]:
    """The single captures a file holds, each as (what a message calls it, uint8 3 x H x W): its
    image, or every page of a multi-page TIFF (``stacks``)."""
    try:
        pages = image_pages(path)
    except ImageError as err:
        raise DataError(str(err)) from None
    if pages == 1:
        return [(str(path), _load_uint8(path))]
    return [(f"{path} (page {k + 1})", to_uint8(image.rgb)) for k, image in enumerate(_pages(path, pages))]


def _load_capture(path: Path) -> tuple[torch.Tensor, bool]:
    """A capture as a uint8 3 x H x W tensor, and whether the file is grey."""
    try:
        image = read_image(path)
    except ImageError as err:
        raise DataError(str(err)) from None
    return to_uint8(image.rgb), image.grey


def load_pairs(dirs: list[str | Path], crop: int) -> tuple[tuple[Path, Path], list[str], list[torch.Tensor],
                                                          list[torch.Tensor]]:
    """The two folders, names and uint8 images of a pairs folder; clear errors for names or sizes
    that do not match and for images smaller than the crop."""
    a, b = _pair_dirs(dirs)
    try:
        files_a, files_b = list_images(a, recursive=False), list_images(b, recursive=False)
    except FileNotFoundError as err:
        raise DataError(f"{err}; put the captures of each scene in two folders under the same name") from None
    by_stem_a, by_stem_b = {p.stem: p for p in files_a}, {p.stem: p for p in files_b}
    only_a = sorted(set(by_stem_a) - set(by_stem_b))
    only_b = sorted(set(by_stem_b) - set(by_stem_a))
    if only_a or only_b:
        name, here, there = (by_stem_a[only_a[0]].name, a, b) if only_a else (by_stem_b[only_b[0]].name, b, a)
        more = len(only_a) + len(only_b) - 1
        raise DataError(f"pairs do not match: {name} is in {here} but has no file of the same name in {there}"
                        + (f" ({more} more unmatched)" if more else "")
                        + "; every image needs its second capture under the same name")
    names, first, second = [], [], []
    for stem in sorted(by_stem_a):
        (img_a, grey_a), (img_b, grey_b) = _load_capture(by_stem_a[stem]), _load_capture(by_stem_b[stem])
        if grey_a != grey_b:
            grey, colour = (by_stem_a[stem], by_stem_b[stem]) if grey_a else (by_stem_b[stem], by_stem_a[stem])
            raise DataError(f"{grey} is grey but {colour} is in colour: the two captures of a scene must be of the same "
                            f"kind; convert one of them, or leave the scene out")
        if img_a.shape != img_b.shape:
            raise DataError(f"{by_stem_a[stem]} is {img_a.shape[-1]}x{img_a.shape[-2]} but {by_stem_b[stem]} is "
                            f"{img_b.shape[-1]}x{img_b.shape[-2]}: the two captures of a scene must have the same size")
        if torch.equal(img_a, img_b):
            raise DataError(f"{by_stem_a[stem]} and {by_stem_b[stem]} hold the same pixels: the two captures of a "
                            f"scene must be independent noisy shots, not copies of one")
        if min(img_a.shape[-2:]) < crop:
            raise DataError(f"{by_stem_a[stem]} is {img_a.shape[-1]}x{img_a.shape[-2]}, smaller than the "
                            f"{crop}x{crop} training crop; pass a smaller --crop or remove the image")
        names.append(by_stem_a[stem].name)
        first.append(img_a)
        second.append(img_b)
    return (a, b), names, first, second


# ------------------------------------------------------------------------------ scenes of several captures
@dataclass
class Scene:
    """The aligned captures of one scene as read: ``captures`` is K x C x H x W, C = 1 for grey and 3
    for colour, uint8 for 8-bit files, else float in [0, 1] (16-bit and float files keep their
    precision); ``files``: the capture files, or the one stack; ``digest`` hashes the name and the
    pixels (the data's identity in a checkpoint)."""
    name: str
    files: list[Path]
    captures: torch.Tensor
    grey: bool
    digest: str

    def floats(self) -> torch.Tensor:
        """K x 3 x H x W float in [0, 1]: grey replicated to the network's three channels."""
        return unit_rgb(self.captures)


def unit_rgb(pixels: torch.Tensor) -> torch.Tensor:
    """Captures as stored (... x C x H x W, uint8 or float in [0, 1]) as float in [0, 1] with three channels."""
    x = pixels.float() / 255.0 if pixels.dtype == torch.uint8 else pixels.float()
    return x.expand(*x.shape[:-3], 3, *x.shape[-2:]) if x.shape[-3] == 1 else x


def _native(image: ImageFile) -> torch.Tensor:
    pixels = image.rgb[:1] if image.grey else image.rgb
    return to_uint8(pixels) if image.bits == 8 else pixels.clone()


def _kind(image: ImageFile) -> str:
    return f"{'grey' if image.grey else 'colour'} {image.bits}-bit"


def _read_scene(entry: Path, crop: int | None) -> Scene:
    """One scene's captures, checked: two or more, of one size and one kind, no two alike. ``entry``
    is a folder of captures or a multi-page TIFF whose pages are the captures (``stacks``)."""
    if entry.is_dir():
        files = sorted(p for p in entry.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if len(files) < 2:
            raise DataError(f"{entry}: holds {len(files)} capture(s); every scene folder needs at least 2 aligned "
                            f"captures of its scene (Noise2Noise pairs them)")
        return _checked_scene(entry.name, files, ((str(path), _read(path)) for path in files), crop)
    try:
        pages = image_pages(entry)
    except ImageError as err:
        raise DataError(str(err)) from None
    if pages < 2:
        raise DataError(f"{entry}: a TIFF of 1 page; a scene given as a file must be a stack of at least 2 aligned "
                        f"captures (pages), else put its captures in a folder {entry.stem}/")
    labelled = ((f"{entry} (page {k + 1})", image) for k, image in enumerate(_pages(entry, pages)))
    return _checked_scene(entry.stem, [entry], labelled, crop)


def _read(path: Path) -> ImageFile:
    try:
        return read_image(path)
    except ImageError as err:
        raise DataError(str(err)) from None


def _pages(path: Path, count: int):
    try:
        yield from stacks.read_pages(path, count)
    except ImageError as err:
        raise DataError(str(err)) from None


def _checked_scene(name: str, files: list[Path], labelled, crop: int | None) -> Scene:
    """The Scene of ``labelled`` captures ((what a message calls it, its ImageFile), in order)."""
    images, seen, first_label = [], {}, None
    for label, image in labelled:
        first_label = first_label or label
        first = images[0][0] if images else image
        if image.size != first.size:
            raise DataError(f"{label} is {image.size[0]}x{image.size[1]} but {first_label} is {first.size[0]}x"
                            f"{first.size[1]}: the captures of a scene must have the same size (aligned shots)")
        if _kind(image) != _kind(first):
            raise DataError(f"{label} is {_kind(image)} but {first_label} is {_kind(first)}: the captures of a scene "
                            f"must be of one mode (all grey or all colour, one bit depth)")
        pixels = _native(image)
        digest = hashlib.sha256(pixels.numpy().tobytes()).hexdigest()
        if digest in seen:
            raise DataError(f"{label} and {seen[digest]} hold the same pixels: the captures of a scene must be "
                            f"independent noisy shots, not copies of one")
        seen[digest] = label
        images.append((image, pixels))
    if crop is not None and min(first.size) < crop:
        raise DataError(f"{first_label} is {first.size[0]}x{first.size[1]}, smaller than the {crop}x{crop} training "
                        f"crop; pass a smaller --crop or remove the scene")
    digest = hashlib.sha256(f"{name}:{':'.join(seen)}".encode()).hexdigest()
    return Scene(name, files, torch.stack([p for _, p in images]), first.grey, digest)


def _scene_entries(root: Path) -> list[Path]:
    """The scenes of ``root`` by name: its sub-folders and its multi-page TIFF files (a file's scene is
    named by its stem); two of one name are refused."""
    entries = sorted(p for p in root.iterdir() if not p.name.startswith(".") and (
        p.is_dir() or (p.suffix.lower() in STACK_SUFFIXES and p.is_file())))
    names: dict[str, Path] = {}
    for entry in entries:
        name = entry.name if entry.is_dir() else entry.stem
        if name in names:
            raise DataError(f"{names[name]} and {entry} are both scene {name!r}; rename or remove one of them")
        names[name] = entry
    return [names[name] for name in sorted(names)]


def load_scenes(root: str | Path, crop: int | None = None, limit: int | None = None,
                names: tuple[str, ...] | None = None) -> list[Scene]:
    """The scenes of ``root`` (those named ``names`` if given; the first ``limit`` only, if given): one
    sub-folder per scene, each with two or more aligned captures (any format ``read_image`` reads),
    or one multi-page TIFF per scene whose pages are its captures, sorted by name; a DataError names
    the folder or file and the fix."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    entries = _scene_entries(root)
    if not entries:
        raise DataError(f"{root}: holds no scenes; --captures takes a folder with one sub-folder per scene, each "
                        f"holding two or more aligned captures of that scene, or one multi-page TIFF per scene")
    if names is not None:
        present = {e.name if e.is_dir() else e.stem for e in entries}
        missing = sorted(set(names) - present)
        if missing:
            raise DataError(f"{root}: has no scene {missing[0]!r}" + (f" ({len(missing) - 1} more missing)"
                                                                      if len(missing) > 1 else ""))
        entries = [e for e in entries if (e.name if e.is_dir() else e.stem) in names]
    return [_read_scene(entry, crop) for entry in entries[:limit]]


REFERENCE_LAYOUT = ("REF/<scene>/ holding one image, the scene's reference (as FMD's gt/<fov>/avg50.png), or an "
                    "image file REF/<scene>.png (any format)")


def read_reference(root: str | Path, scene: Scene) -> torch.Tensor:
    """The reference of ``scene`` (3 x H x W float in [0, 1]): the one image in ``root/<scene>/``, or
    the image file ``root/<scene>.<suffix>``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder; --reference takes {REFERENCE_LAYOUT}, one per scene of --captures")
    folder = root / scene.name
    named = sorted(p for p in root.iterdir() if p.stem == scene.name and p.suffix.lower() in IMAGE_SUFFIXES
                   and p.is_file())
    if folder.is_dir():
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if len(files) != 1:
            raise DataError(f"{folder}: holds {len(files)} images; --reference takes {REFERENCE_LAYOUT}")
        files += named
    elif not named:
        raise DataError(f"{root}: no reference of scene {scene.name!r}; --reference takes {REFERENCE_LAYOUT}, one per "
                        f"scene of --captures")
    else:
        files = named
    if len(files) != 1:
        raise DataError(f"{files[0]} and {files[1]} are both references of scene {scene.name!r}; keep one of them")
    image = _read(files[0])
    height, width = scene.captures.shape[-2:]
    if image.size != (width, height):
        raise DataError(f"{files[0]} is {image.size[0]}x{image.size[1]} but the captures of {scene.name} are "
                        f"{width}x{height}: a reference must be aligned with its scene's captures")
    return image.rgb


def with_reference(scene: Scene, reference: torch.Tensor) -> torch.Tensor:
    """The scene's captures with its reference (3 x H x W in [0, 1]) appended as the last one, in the
    captures' form (channels and number type), so that one crop cuts all of them alike."""
    ref = reference[:scene.captures.shape[-3]]
    ref = to_uint8(ref) if scene.captures.dtype == torch.uint8 else ref.to(scene.captures.dtype)
    return torch.cat([scene.captures, ref[None]])


class CaptureCrops(BatchSource):
    """Batches of (input, target) crops from scenes of two or more aligned captures (K x C x H x W,
    as ``Scene.captures``): per batch item a scene, drawn in proportion to its area, one of its
    captures as the input and, uniformly, one of the others as the target, the same crop and flip
    of both; every ordered pair of different captures is drawn. ``reference=True``: the last image of
    each scene is its reference (``with_reference``), the target of every other one (clean targets).
    All randomness comes from ``generator``."""

    def __init__(self, scenes: list[torch.Tensor], crop: int, batch_size: int, generator: torch.Generator,
                 reference: bool = False):
        if not scenes or min(len(s) for s in scenes) < 2:
            raise DataError("need at least one scene of at least 2 captures")
        self.scenes, self.crop, self.batch_size, self.generator = scenes, crop, batch_size, generator
        self.reference = reference
        self.weights = _area_weights(scenes)

    def sample(self) -> Batch:
        which = torch.multinomial(self.weights, self.batch_size, replacement=True, generator=self.generator)
        inputs, targets = [], []
        for k in which.tolist():
            count = len(self.scenes[k]) - self.reference
            first = int(torch.randint(0, count, (1,), generator=self.generator))
            if self.reference:
                second = count
            else:
                second = (first + int(torch.randint(1, count, (1,), generator=self.generator))) % count
            pair = unit_rgb(_same_crop(self.scenes[k][[first, second]], self.crop, self.generator))
            inputs.append(pair[0])
            targets.append(pair[1])
        target = torch.stack(targets).to(self.device, non_blocking=True)
        return Batch(torch.stack(inputs).to(self.device, non_blocking=True), target, target, None)


# ------------------------------------------------------------------------------ Kaggle pickle
def load_pickle_pair(path: str | Path, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The two uint8 N x 3 x H x W tensors of a Kaggle "noisy-images" pickle (``what`` says which
    pair, for messages: 'two noisy captures' or 'noisy and clean images')."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():  # torch's "please file an issue" warning would come before our one line
            warnings.simplefilter("ignore")
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise DataError(f"{path}: not a readable torch pickle ({type(err).__name__}); expected a tuple of two "
                        f"uint8 tensors N x 3 x H x W ({what}), saved with torch.save") from None
    if not (isinstance(blob, (tuple, list)) and len(blob) == 2 and all(isinstance(t, torch.Tensor) for t in blob)):
        raise DataError(f"{path}: holds {type(blob).__name__}, expected a tuple of two tensors N x 3 x H x W ({what})")
    first, second = blob
    for t in (first, second):
        if t.dim() != 4 or t.shape[1] != 3:
            raise DataError(f"{path}: a tensor of shape {tuple(t.shape)}; expected N x 3 x H x W ({what})")
    if first.shape != second.shape:
        raise DataError(f"{path}: the two tensors differ in shape, {tuple(first.shape)} and {tuple(second.shape)}")
    if first.dtype != torch.uint8 or second.dtype != torch.uint8:
        if first.is_floating_point() and second.is_floating_point() and max(first.max(), second.max()) <= 1.0:
            first, second = to_uint8(first), to_uint8(second)  # floats in [0, 1]: accepted
        else:
            raise DataError(f"{path}: tensors of dtype {first.dtype}; expected uint8 (0..255) or floats in [0, 1]")
    same = (first == second).flatten(1).all(1).nonzero().flatten().tolist()
    if same:
        more = f" (and {len(same) - 1} more)" if len(same) > 1 else ""
        raise DataError(f"{path}: image {same[0]}{more} is the same in both tensors ({what} must differ: independent "
                        f"noisy shots, not copies of one); remove it from both")
    return first, second


# ------------------------------------------------------------------------------ the registry
@dataclass
class Prepared:
    """A source made ready for training: its sampler, the validation pairs (noisy input, reference),
    what the checkpoint records of it under "source" (None: the caller records the data itself) and
    the settings, adjusted where the data asks for it (a pickle's small images: smaller crops)."""
    sampler: BatchSource
    val_pairs: tuple[torch.Tensor, torch.Tensor]
    described: dict | None
    cfg: TrainConfig


class Source:
    """Where a run's batches come from: one class per kind, registered in ``SOURCES`` under its
    ``kind``; ``prepare`` loads and checks the data (a DataError names the file and what to do)."""
    kind: str

    def prepare(self, cfg: TrainConfig) -> Prepared:
        raise NotImplementedError


SOURCES: dict[str, type[Source]] = {}


def register(cls: type[Source]) -> type[Source]:
    SOURCES[cls.kind] = cls
    return cls


def _seeded(cfg: TrainConfig) -> torch.Generator:
    return torch.Generator().manual_seed(cfg.seed)


@register
@dataclass
class PatchSource(Source):
    """Cut patch sets (``patches``) with synthetic noise drawn afresh for every batch: noisy or clean
    targets, or Neighbor2Neighbor's sub-images, as ``cfg.target`` says (the study's runs, the
    shipped weights)."""
    train: torch.Tensor
    val: torch.Tensor
    noise: NoiseConfig
    kind = "patches"

    def prepare(self, cfg: TrainConfig) -> Prepared:
        sampler = sampler_class(cfg.target)(self.train, cfg.crop, cfg.batch_size, training_noise(self.noise),
                                            cfg.target, _seeded(cfg))
        return Prepared(sampler, validation_pairs(self.val, test_noise(self.noise), cfg.seed), None, cfg)


@register
@dataclass
class CaptureSource(Source):
    """The capture budget's fixed captures of one case (``capture``), drawn once from the patch sets."""
    case: CaptureCase
    train: torch.Tensor
    val: torch.Tensor
    noise: NoiseConfig
    kind = "capture"

    def prepare(self, cfg: TrainConfig) -> Prepared:
        sampler = CaptureSampler(self.case, self.train, test_noise(self.noise), cfg.crop, cfg.batch_size, _seeded(cfg),
                                 cfg.seed)
        return Prepared(sampler, validation_pairs(self.val, test_noise(self.noise), cfg.seed), None, cfg)


@register
@dataclass
class CleanFolder(Source):
    """A folder of clean images (or a list of folders, pooled: ``n2n train --clean A --clean B``), cut
    into patch sets, with synthetic noise."""
    folder: Path | list
    noise: NoiseConfig
    data_cfg: DataConfig
    kind = "clean"

    def prepare(self, cfg: TrainConfig) -> Prepared:
        folders = list(dict.fromkeys(map(Path, self.folder))) if isinstance(self.folder, list) else [Path(self.folder)]
        try:
            files = [f for folder in folders for f in list_images(folder)]
        except FileNotFoundError as err:
            raise DataError(f"{err}; pass a folder of clean images") from None
        data_cfg = self.data_cfg
        if cfg.crop > data_cfg.patch_size:
            data_cfg = dataclasses.replace(data_cfg, patch_size=cfg.crop)
        try:
            sets = build_patch_sets(DataSources(files, {}, "folder", f"folder {' + '.join(map(str, folders))}"),
                                    data_cfg, cfg.seed)
        except ValueError as err:
            raise DataError(f"{' + '.join(map(str, folders))}: {err}") from None
        prepared = PatchSource(sets.train, sets.val, self.noise).prepare(cfg)
        where = [str(f.resolve()) for f in folders]
        prepared.described = {"kind": "clean", "path": where[0] if len(where) == 1 else where, "images": len(files),
                              "noise": dataclasses.asdict(self.noise), "validation": "clean held-out patches"}
        return prepared


def _held_out(count: int) -> list[int]:
    """The images (pairs, captures) held out for validation: every 10th, the last one at least."""
    return list(range(count - 1, -1, -min(10, count))) if count > 1 else [0]


@register
@dataclass
class PairFolders(Source):
    """Noisy pairs: one folder with two sub-folders, or two folders, of captures under the same names."""
    dirs: list
    kind = "pairs"

    def prepare(self, cfg: TrainConfig) -> Prepared:
        folders, names, first, second = load_pairs(self.dirs, cfg.crop)
        held = _held_out(len(names))
        train_idx = [i for i in range(len(names)) if i not in held] or held
        sampler = PairedCrops([first[i] for i in train_idx], [second[i] for i in train_idx], cfg.crop,
                              cfg.batch_size, _seeded(cfg))
        side = min(VAL_CROP, *(min(first[i].shape[-2:]) for i in held))
        val = tuple(torch.stack([center_crop(images[i], side) for i in held]).float() / 255.0
                    for images in (first, second))
        described = {"kind": "pairs", "path": [str(f.resolve()) for f in folders], "pairs": len(names),
                     "validation": f"second capture of {len(held)} held-out pairs "
                                   f"({', '.join(names[i] for i in held[:5])})"
                                   + (" (also trained on)" if train_idx == held else "")}
        return Prepared(sampler, val, described, cfg)


@register
@dataclass
class CaptureFolders(Source):
    """Scenes of two or more aligned captures, one folder per scene (``load_scenes``), trained on
    every pair (``CaptureCrops``). Validation: the first capture of held-out scenes against the mean
    of their other captures (less noisy than one capture, so nearer the PSNR against a clean image).

    With references (notebook 11): ``reference``, a folder with one reference image per scene
    (``read_reference``), is what validation measures against, and with target 'clean' every
    capture's training target (the clean-target baseline). ``scenes`` names the scene folders to use
    (None: all); ``hold_out=False`` trains on the validation scenes too. Target 'nb2nb' trains
    Neighbor2Neighbor on every capture as a single one (8-bit copies of deeper captures)."""
    folder: Path
    reference: Path | None = None
    scenes: tuple | None = None
    hold_out: bool = True
    kind = "captures"

    def prepare(self, cfg: TrainConfig) -> Prepared:
        scenes = load_scenes(self.folder, cfg.crop, names=None if self.scenes is None else tuple(self.scenes))
        refs = None if self.reference is None else [read_reference(self.reference, s) for s in scenes]
        if cfg.target == "clean" and refs is None:
            raise DataError("clean targets on captures need the reference of each scene (a folder of references)")
        held = _held_out(len(scenes))
        train_idx = [i for i in range(len(scenes)) if i not in held or not self.hold_out] or held
        sampler = _capture_sampler(cfg, [scenes[i] for i in train_idx], refs and [refs[i] for i in train_idx])
        side = min(VAL_CROP, *(min(scenes[i].captures.shape[-2:]) for i in held))
        crops = [center_crop(scenes[i].floats(), side) for i in held]
        targets = [center_crop(refs[i], side) for i in held] if refs else [c[1:].mean(0) for c in crops]
        val = (torch.stack([c[0] for c in crops]), torch.stack(targets))
        against = "their references" if refs else "the mean of their other captures"
        described = {"kind": "captures", "path": str(Path(self.folder).resolve()), "scenes": len(scenes),
                     "captures": sum(len(s.captures) for s in scenes),
                     "digest": hashlib.sha256(" ".join(s.digest for s in scenes).encode()).hexdigest()[:32],
                     "validation": f"first capture of {len(held)} held-out scenes "
                                   f"({', '.join(scenes[i].name for i in held[:5])}) against {against}"
                                   + (" (also trained on)" if set(held) <= set(train_idx) else "")}
        if refs:
            described["reference"] = str(Path(self.reference).resolve())
        return Prepared(sampler, val, described, cfg)


def _capture_sampler(cfg: TrainConfig, scenes: list[Scene], refs: list[torch.Tensor] | None) -> BatchSource:
    """The sampler of ``CaptureFolders`` for ``cfg.target``: another capture, the reference, or
    Neighbor2Neighbor's sub-images of single captures."""
    if cfg.target == "nb2nb":
        singles = [c.expand(3, -1, -1) if c.dtype == torch.uint8 else to_uint8(unit_rgb(c))
                   for scene in scenes for c in scene.captures]
        return SingleCrops(singles, cfg.crop, cfg.batch_size, _seeded(cfg))
    if cfg.target == "clean":
        return CaptureCrops([with_reference(s, r) for s, r in zip(scenes, refs)], cfg.crop, cfg.batch_size,
                            _seeded(cfg), reference=True)
    return CaptureCrops([s.captures for s in scenes], cfg.crop, cfg.batch_size, _seeded(cfg))


@register
@dataclass
class SingleCaptures(Source):
    """Single noisy captures (Neighbor2Neighbor). Validation measures f(g1 y) against g2 y on the
    centre crops of held-out captures, the first term of the loss as a PSNR: below the PSNR against
    a clean image (g2 y is noisy and a pixel away), but it rises and falls with it."""
    folder: Path
    kind = "single"

    def prepare(self, cfg: TrainConfig) -> Prepared:
        try:
            files = list_images(self.folder, recursive=False)
        except FileNotFoundError as err:
            raise DataError(f"{err}; --single takes a folder of noisy images, one capture of each scene") from None
        labels, images = zip(*(single for f in files for single in _singles(f)))
        for label, image in zip(labels, images):
            if min(image.shape[-2:]) < cfg.crop:
                raise DataError(f"{label} is {image.shape[-1]}x{image.shape[-2]}, smaller than the {cfg.crop}x"
                                f"{cfg.crop} training crop; pass a smaller --crop or remove the image")
        if len(images) < 2:
            raise DataError(f"{self.folder}: holds 1 image; --single needs at least 2 (one is held out for validation)")
        held = _held_out(len(images))
        side = min(VAL_CROP, *(min(images[i].shape[-2:]) for i in held)) // 2 * 2
        val = torch.stack([center_crop(images[i], side) for i in held]).float() / 255.0
        val_pairs = subsample(val, draw_cells(len(val), side, side, _seeded(cfg)))
        sampler = SingleCrops([image for i, image in enumerate(images) if i not in held], cfg.crop, cfg.batch_size,
                              _seeded(cfg))
        described = {"kind": "single", "path": str(Path(self.folder).resolve()), "images": len(images),
                     "validation": f"neighbour sub-images of {len(held)} held-out captures "
                                   f"({', '.join(Path(labels[i]).name for i in held[:5])}): f(g1 y) against g2 y"}
        return Prepared(sampler, val_pairs, described, cfg)


@register
@dataclass
class PickleFile(Source):
    """The Kaggle "noisy-images" pickle of noisy pairs, validated on its clean pickle if given, else
    on the last pairs, held out. Crops are cut to the images' side where they are smaller."""
    path: Path
    val_pickle: Path | None = None
    kind = "pickle"

    def prepare(self, cfg: TrainConfig) -> Prepared:
        first, second = load_pickle_pair(self.path, "two noisy captures")
        side = min(first.shape[-2:])
        if side < cfg.crop:
            cfg = dataclasses.replace(cfg, crop=side)
            print(f"{self.path}: images of {first.shape[-1]}x{first.shape[-2]} px; training crops of {side}")
        if self.val_pickle is not None:
            val_noisy, val_clean = load_pickle_pair(self.val_pickle, "noisy and clean images")
            val = (val_noisy[:256].float() / 255.0, val_clean[:256].float() / 255.0)
            held, what = 0, f"clean images of {self.val_pickle} (first {len(val[0])})"
        else:
            held = max(1, len(first) // 100)
            val = (first[-held:].float() / 255.0, second[-held:].float() / 255.0)
            what = f"second capture of the last {held} pairs, held out"
        keep = len(first) - held
        if keep < 1:
            raise DataError(f"{self.path}: holds {len(first)} pair(s), all of them held out for validation; it needs "
                            f"at least 2 pairs (or pass --val-pickle for validation)")
        sampler = PairedCrops(list(first[:keep]), list(second[:keep]), cfg.crop, cfg.batch_size, _seeded(cfg))
        described = {"kind": "pickle", "path": str(Path(self.path).resolve()), "pairs": len(first), "validation": what}
        return Prepared(sampler, val, described, cfg)
