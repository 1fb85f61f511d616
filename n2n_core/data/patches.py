"""Training data: clean patch sets cut from the pool (cached by notebook 01), and the sampler of
training pairs.

The Noise2Noise dataset yields (noisy input, target, clean): the target is a second, independent
noisy draw of the same clean crop, or the clean crop itself; one setting (``target``) picks it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch

from . import augment
from .. import paths
from ..paths import atomic_output
from ..config import DataConfig
from .images import read_uint8, upright_size
from .sets import DataSources
from ..paper.noise import NoiseModel, seeded_generator


# ---------------------------------------------------------------------------------- patch sets
@dataclass
class PatchSets:
    """Clean uint8 patches (N x 3 x P x P) for training and validation, and how they were made."""
    train: torch.Tensor
    val: torch.Tensor
    meta: dict = field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        with atomic_output(path) as tmp:  # a temporary file, then renamed: never a half-written set
            torch.save({"train": self.train, "val": self.val, "meta": self.meta}, tmp)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "PatchSets":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no patch set; run notebooks/01_data_augmentation.ipynb "
                                    f"(or `make all`) first")
        blob = torch.load(path, weights_only=True)
        return cls(blob["train"], blob["val"], blob["meta"])


def patch_set_path(profile: str, seed: int) -> Path:
    return paths.data_cache_dir() / f"patches_{profile}_seed{seed}.pt"


def split_pool(files: list[Path], every: int) -> tuple[list[Path], list[Path]]:
    """Hold out every n-th image of the pool for validation (at least one)."""
    if len(files) < 2:
        raise ValueError(f"the training pool needs at least 2 images (one is held out), got {len(files)}; put clean "
                         f"training images in train_pool/ of the data folder (N2N_DATA_DIR)")
    every = max(2, min(every, len(files)))
    val = files[every - 1::every]
    train = [f for f in files if f not in set(val)]
    return train, val


def cut_patches(files: list[Path], count: int, size: int, generator: torch.Generator,
                augment_patches: bool = True) -> torch.Tensor:
    """``count`` random size x size patches, images drawn in proportion to their area, each
    patch randomly flipped/rotated. Images smaller than the patch are skipped, with a message.

    Memory: the patches themselves, ``count * 3 * size**2`` bytes of uint8 (the ``pretrained``
    profile's 12000 of 144 px: 12000 * 3 * 144 * 144 = 746 MB), plus one decoded image at a time
    (uint8: a 1836 x 1836 photograph is 10 MB), whatever the size of the pool. Neither the whole pool
    nor any float copy of it is held: every crop is planned first from the files' headers (sizes), with
    the same draws in the same order as cutting them from images held in memory would take, then each
    image is decoded once, straight to uint8 (``images.read_uint8``), its patches cut, and let go.
    Why a patch cache rather than the pool itself: a pool held whole costs 3 bytes per pixel as uint8
    (12 as float32) and grows with every folder added, while the cache's size is fixed by the run (the
    distinct patches it crops from); decoding per draw would put a JPEG decode in every step. So a pool
    of any size fits, a given pool and seed still give the same patches as when the pool was held
    whole, and the sampler's step, which crops from these patches, costs what it did."""
    sizes = [upright_size(f) for f in files]
    usable = [k for k, (h, w) in enumerate(sizes) if min(h, w) >= size]
    if len(usable) < len(files):
        print(f"skipped {len(files) - len(usable)} of {len(files)} images smaller than {size}x{size} px")
    if not usable:
        raise ValueError(f"every image is smaller than the {size}x{size} patches that training crops are cut "
                         f"from; use smaller patches (patch_size, or a smaller --crop) or larger images")
    weights = torch.tensor([float(sizes[k][0] * sizes[k][1]) for k in usable])
    which = [usable[k] for k in torch.multinomial(weights, count, replacement=True, generator=generator).tolist()]
    plan = [(*augment.crop_offset(*sizes[k], size, generator),
             augment.dihedral_index(generator) if augment_patches else 0) for k in which]
    by_image: dict[int, list[int]] = {}
    for i, k in enumerate(which):
        by_image.setdefault(k, []).append(i)
    patches = torch.empty(count, 3, size, size, dtype=torch.uint8)
    for k, indices in sorted(by_image.items()):
        image = read_uint8(files[k])
        if tuple(image.shape[-2:]) != sizes[k]:
            raise ValueError(f"{files[k]}: decodes to {image.shape[-1]}x{image.shape[-2]} px but its header says "
                             f"{sizes[k][1]}x{sizes[k][0]} (an orientation stored after the pixels?); re-save it")
        for i in indices:
            top, left, turn = plan[i]
            patches[i] = augment.dihedral(image[:, top:top + size, left:left + size], turn)
        del image  # one decoded image at a time
    return patches


def build_patch_sets(sources: DataSources, config: DataConfig, seed: int) -> PatchSets:
    train_files, val_files = split_pool(sources.train, config.val_image_every)
    gen = torch.Generator().manual_seed(seed)
    train = cut_patches(train_files, config.train_patches, config.patch_size, gen)
    val = cut_patches(val_files, config.val_patches, config.patch_size, gen, augment_patches=False)
    meta = {"origin": sources.origin, "description": sources.description, "comparable": sources.comparable,
            "train_images": len(train_files), "val_images": len(val_files), "seed": seed,
            "data_config": dataclasses.asdict(config)}
    return PatchSets(train, val, meta)


# ------------------------------------------------------------------------- training pairs
class Batch(NamedTuple):
    """One training batch. ``mask`` (N x 1 x H x W, or None) marks the target pixels the loss may
    use: set for noisy Bernoulli targets, whose dropped pixels carry no information."""
    input: torch.Tensor
    target: torch.Tensor
    clean: torch.Tensor
    mask: torch.Tensor | None = None

    def loss(self, forward, to_device, loss_fn, progress: float) -> torch.Tensor:
        """``loss_fn`` (in float32) of the network's output on the input against the target; ``forward``
        runs the network on a batch (moved to the device, under autocast), ``to_device`` moves a tensor."""
        output = forward(self.input)
        mask = None if self.mask is None else to_device(self.mask)
        return loss_fn(output.float(), to_device(self.target), mask, progress)


class BatchSource:
    """What ``fit`` draws training batches from: ``sample()`` returns a Batch on ``device``;
    ``get_state``/``set_state`` save and restore its randomness (a checkpoint holds it, so a
    resumed run draws what an uninterrupted one would have). Crops are cut on the CPU in uint8 and
    converted to float on ``device``, which ``fit`` sets with ``use_device``."""

    generator: torch.Generator
    device = torch.device("cpu")

    def use_device(self, device: str | torch.device) -> None:
        self.device = torch.device(device)

    def get_state(self):
        return self.generator.get_state()

    def set_state(self, state) -> None:
        self.generator.set_state(state if isinstance(state, torch.Tensor) else state["crops"])

    def to_float(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images to float in [0, 1] on ``device`` (4x less to move than float)."""
        return images.to(self.device, non_blocking=True).float() / 255.0


class PairSampler(BatchSource):
    """Batches of (noisy input, target, clean, mask) crops from a uint8 patch set.

    target="noisy": the target is a second, independent noisy draw (Noise2Noise);
    target="clean": the target is the clean crop (the discriminative baseline).
    Which patches, crops and flips come from ``generator``. So does the noise on a CPU; on a GPU
    (``use_device``) the noise is drawn there, from a second generator seeded from the first's
    seed (drawn on the CPU, it took a large share of a GPU's step; docs/speed.md).
    A checkpoint saves the state of both.
    """

    def __init__(self, patches: torch.Tensor, crop: int, batch_size: int, noise: NoiseModel,
                 target: str, generator: torch.Generator):
        if target not in ("noisy", "clean"):
            raise ValueError(f"unknown target {target!r}; choose 'noisy' or 'clean'")
        if patches.shape[-1] < crop or patches.shape[-2] < crop:
            raise ValueError(f"patches of {patches.shape[-1]} px are smaller than the {crop} px crop")
        self.patches, self.crop, self.batch_size = patches, crop, batch_size
        self.noise, self.target, self.generator = noise, target, generator
        self.noise_generator = generator

    def use_device(self, device: str | torch.device) -> None:
        super().use_device(device)
        if self.device.type == "cpu":
            self.noise_generator = self.generator
        elif self.noise_generator.device != self.device:
            self.noise_generator = seeded_generator(self.generator.initial_seed(), 1, device=self.device)

    def get_state(self):
        if self.noise_generator is self.generator:
            return self.generator.get_state()
        return {"crops": self.generator.get_state(), "noise": self.noise_generator.get_state(),
                "noise_device": self.device.type}

    def set_state(self, state) -> None:
        super().set_state(state)
        if isinstance(state, dict) and self.noise_generator is not self.generator \
                and state.get("noise_device") == self.device.type:
            self.noise_generator.set_state(state["noise"])  # a GPU run resumed on a GPU draws on

    def clean_crops(self) -> torch.Tensor:
        """A batch of random crops (and flips) of random patches, float on ``device``."""
        idx = torch.randint(0, len(self.patches), (self.batch_size,), generator=self.generator)
        return self.to_float(augment.random_crops(self.patches[idx], self.crop, self.generator))

    def sample(self) -> Batch:
        clean = self.clean_crops()
        noisy_input = self.noise(clean, self.noise_generator)
        if self.target == "noisy":
            target, mask = self.noise.draw(clean, self.noise_generator)
            return Batch(noisy_input, target, clean, mask)
        return Batch(noisy_input, clean, clean)


def validation_pairs(val_patches: torch.Tensor, noise: NoiseModel, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed (noisy, clean) validation pairs: noise is a function of (seed, patch index)."""
    clean = val_patches.float() / 255.0
    noisy = torch.stack([noise(c, seeded_generator(seed, 1_000_000 + i)) for i, c in enumerate(clean)])
    return noisy, clean
