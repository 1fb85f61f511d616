"""The capture budget (the paper's Section 3.1, "finite data and capture budget", and its Fig. 1c).

Every other study here draws fresh noise at each step, as if captures were free. Here they are not:
a budget of B noisy captures (Gaussian noise, drawn once from the seed and then fixed) is spent in
one of three ways, and the same U-Net is trained on each with the same steps:

* case 1, the traditional way: B / K scenes, K captures of each; one capture is the input, the
  average of the other K - 1 its target (nearly clean: noise sigma / sqrt(K - 1)): one pair per scene;
* case 2, Noise2Noise on the same captures: any capture of a scene to any other, K (K - 1) ordered
  pairs per scene;
* case 3, Noise2Noise on more scenes: B / 2 scenes, 2 captures each, both ways.

Why case 1 has one input per scene: were every capture an input in turn, against the average of the
others, its L2 loss would be, in expectation over case 2's random targets, case 2's loss less a
constant (the mean over j != i of (f(x_i) - y_j)^2 is (f(x_i) - mean_j y_j)^2 plus their spread):
the same objective, with less gradient noise. Measured so: the two come out level on Kodak
(docs/claims.md, "The capture budget"). What Noise2Noise gains on the same captures is that every capture is an input.

The paper's budget is 2000 captures: 100 scenes x 20 in cases 1 and 2, 1000 scenes x 2 in case 3;
it reports (figure only) that the noisy pairs beat the averaged targets, case 3 most. The profiles
scale it down (``Profile.capture``: cpu 200 = 10 scenes x 20 and 100 x 2); the scenes are the first
patches of notebook 01's training set (the cpu profile's 96 px), crops of the profile's size are
cut from them, the same crop and flip for input, target and clean image.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from . import augment
from ..paper.noise import NoiseModel, seeded_generator
from .patches import Batch, BatchSource

TARGETS = ("average", "noisy")


@dataclass(frozen=True)
class CaptureCase:
    number: int  # the paper's case: 1, 2 or 3
    scenes: int
    captures: int  # per scene
    target: str  # 'average' (of the scene's other captures) or 'noisy' (another capture)

    def __post_init__(self):
        if self.target not in TARGETS:
            raise ValueError(f"unknown capture target {self.target!r}; choose from {', '.join(TARGETS)}")
        if self.scenes < 1 or self.captures < (3 if self.target == "average" else 2):
            raise ValueError(f"case {self.number}: {self.scenes} scenes x {self.captures} captures is too few (an "
                             f"averaged target needs 2 other captures, a noisy one 1)")

    @property
    def name(self) -> str:
        return f"case{self.number}"

    @property
    def pairs(self) -> int:
        """Distinct (input, target) pairs the captures give."""
        return self.scenes * (1 if self.target == "average" else self.captures * (self.captures - 1))

    @property
    def label(self) -> str:
        how = (f"1 input, target: mean of the other {self.captures - 1}" if self.target == "average"
               else "noisy pairs")
        return f"case {self.number}: {self.scenes} scenes x {self.captures}, {how}"


def capture_cases(budget: int, captures: int) -> tuple[CaptureCase, CaptureCase, CaptureCase]:
    """The paper's three cases for ``budget`` captures, ``captures`` of each scene in cases 1-2."""
    if budget < 4 or budget % 2 or captures < 3 or budget % captures:
        raise ValueError(f"a capture budget of {budget} with {captures} captures per scene: the budget must be even "
                         f"and a multiple of the captures per scene (>= 3), e.g. 200 and 20")
    scenes = budget // captures
    return (CaptureCase(1, scenes, captures, "average"), CaptureCase(2, scenes, captures, "noisy"),
            CaptureCase(3, budget // 2, 2, "noisy"))


def draw_captures(scenes: torch.Tensor, captures: int, noise: NoiseModel, seed: int) -> torch.Tensor:
    """``captures`` noisy captures (float, S x K x C x H x W) of each uint8 scene (S x C x H x W),
    a function of ``seed`` and the scene's index only: case 1 and 2 share theirs, and case 3's
    first scenes see the same first two captures."""
    clean = scenes.float() / 255.0
    out = torch.empty((len(scenes), captures) + tuple(scenes.shape[1:]))
    for s, image in enumerate(clean):
        generator = seeded_generator(seed, 3_000_000 + s)
        for k in range(captures):
            out[s, k] = noise(image, generator)
    return out


class CaptureSampler(BatchSource):
    """Batches of (input, target, clean) crops from the fixed captures of one case (module docstring)."""

    def __init__(self, case: CaptureCase, scenes: torch.Tensor, noise: NoiseModel, crop: int, batch_size: int,
                 generator: torch.Generator, seed: int):
        if len(scenes) < case.scenes:
            raise ValueError(f"case {case.number} needs {case.scenes} scenes, the training patch set has "
                             f"{len(scenes)}; use a smaller capture budget (Profile.capture)")
        if min(scenes.shape[-2:]) < crop:
            raise ValueError(f"scenes of {scenes.shape[-1]} px are smaller than the {crop} px crop")
        self.case, self.crop, self.batch_size, self.generator = case, crop, batch_size, generator
        self.clean = scenes[:case.scenes]
        self.captures = draw_captures(self.clean, case.captures, noise, seed)
        if case.target == "average":  # the first capture is the input, the mean of the others its target
            self.average = self.captures[:, 1:].mean(dim=1)

    def sample(self) -> Batch:
        n, k = self.batch_size, self.case.captures
        scene = torch.randint(0, self.case.scenes, (n,), generator=self.generator)
        if self.case.target == "noisy":  # any capture, and uniformly one of the scene's others
            first = torch.randint(0, k, (n,), generator=self.generator)
            target = self.captures[scene, (first + torch.randint(1, k, (n,), generator=self.generator)) % k]
        else:
            first, target = torch.zeros(n, dtype=torch.long), self.average[scene]
        stacked = torch.cat([self.captures[scene, first], target, self.clean[scene].float() / 255.0], dim=1)
        crops = augment.random_crops(stacked, self.crop, self.generator).to(self.device)
        noisy, target, clean = crops.split(stacked.shape[1] // 3, dim=1)
        return Batch(noisy, target, clean)
