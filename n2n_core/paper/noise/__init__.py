"""Noise types: the registry ``NOISE_TYPES`` and the settings of one run, ``NoiseConfig``.

A noise type is one ``NoiseModel`` subclass (``types.py``; the base classes are in ``base.py``)
and one entry in ``NOISE_TYPES``, with its level a field of ``NoiseConfig``: the class names its
level (the ``NoiseConfig`` field and the ``--option`` of the command line), the symbol that labels
and tables print, Table 1's test level, the paper's blind training range, the valid values, and
how it is drawn. The command line, the tables, the model card and the figures read them from here.

Every draw takes an explicit torch.Generator, so a seed fixes the noise without touching global
state, and the noise is added in float: never clipped, never quantised. (Clipping shifts the mean
of the noisy target and breaks the Noise2Noise argument, which needs zero-mean target noise.)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from .base import NoiseModel, PixelFractionNoise
from .types import BernoulliNoise, BrownNoise, GaussianNoise, ImpulseNoise, PoissonNoise, TextNoise

NOISE_TYPES: dict[str, type[NoiseModel]] = {cls.name: cls for cls in (GaussianNoise, PoissonNoise, BernoulliNoise,
                                                                      ImpulseNoise, TextNoise, BrownNoise)}


@dataclass(frozen=True)
class NoiseConfig:
    """The noise of one run: ``kind`` (a key of ``NOISE_TYPES``) and, for every type, its test level
    (the field its class names; Table 1's level by default) and an optional training range
    ``train_<param>_range``: when set, each training image draws its own level uniformly from it,
    independently for the input and the noisy target (blind training). Checkpoints store it as a dict.
    """
    kind: str = "gaussian"
    sigma: float = GaussianNoise.test_level
    lam: float = PoissonNoise.test_level
    p: float = BernoulliNoise.test_level
    impulse_p: float = ImpulseNoise.test_level
    text_p: float = TextNoise.test_level
    brown_sigma: float = BrownNoise.test_level
    brown_width: float = BrownNoise.options["brown_width"][0]
    train_sigma_range: tuple[float, float] | None = None
    train_lam_range: tuple[float, float] | None = None
    train_p_range: tuple[float, float] | None = None
    train_impulse_p_range: tuple[float, float] | None = None
    train_text_p_range: tuple[float, float] | None = None
    train_brown_sigma_range: tuple[float, float] | None = None

    def __post_init__(self):
        if self.kind not in NOISE_TYPES:
            raise ValueError(f"unknown noise type {self.kind!r}; choose one of {', '.join(NOISE_TYPES)}")
        for cls in NOISE_TYPES.values():
            cls.check(getattr(self, cls.param), self.train_range(cls), range_name=f"train_{cls.param}_range")
            cls.check_options(**{name: getattr(self, name) for name in cls.options})

    @property
    def noise_type(self) -> type[NoiseModel]:
        return NOISE_TYPES[self.kind]

    def train_range(self, cls: type[NoiseModel] | None = None) -> tuple[float, float] | None:
        return getattr(self, f"train_{(cls or self.noise_type).param}_range")

    @property
    def level(self) -> float:
        """The test level of this kind, e.g. sigma."""
        return getattr(self, self.noise_type.param)

    @property
    def options(self) -> dict[str, float]:
        """The further settings of this kind (``NoiseModel.options``), e.g. {'brown_width': 2.0}."""
        return {name: getattr(self, name) for name in self.noise_type.options}

    @property
    def tag(self) -> str:
        """The noise's part of a run's name, e.g. 'gaussian' or 'brown2'."""
        return self.noise_type.tag(self.options)

    @property
    def label(self) -> str:
        """A short human name, e.g. 'Gaussian sigma=25' or 'Brown Gaussian sigma=25, width=2'."""
        extra = "".join(f", {name.split('_')[-1]}={value:g}" for name, value in self.options.items())
        return f"{self.noise_type.title} {self.noise_type.symbol}={self.level:g}{extra}"

    def at_level(self, level: float) -> NoiseConfig:
        """The same settings with the test level of this kind set to ``level``."""
        return dataclasses.replace(self, **{self.noise_type.param: float(level)})

    def with_options(self, **options: float) -> NoiseConfig:
        """The same settings with options of this kind replaced, e.g. ``with_options(brown_width=1)``."""
        unknown = set(options) - set(self.noise_type.options)
        if unknown:
            raise ValueError(f"{self.noise_type.title} noise has no option {', '.join(sorted(unknown))}; its options: "
                             f"{', '.join(self.noise_type.options) or 'none'}")
        return dataclasses.replace(self, **options)

    def blind_only(self) -> NoiseConfig:
        """The same settings without the training ranges of the other kinds."""
        return dataclasses.replace(self, **{f"train_{cls.param}_range": None
                                            for cls in NOISE_TYPES.values() if cls is not self.noise_type})


def paper_ranges(*kinds: str) -> dict[str, tuple[float, float]]:
    """``NoiseConfig`` fields for the paper's blind training ranges of ``kinds`` (default: all)."""
    return {f"train_{NOISE_TYPES[k].param}_range": NOISE_TYPES[k].paper_range for k in kinds or NOISE_TYPES}


def noise_identity(stored: dict) -> dict:
    """What of a run's stored noise settings (``NoiseConfig`` as a dict) decides its training: the
    kind, its level and its training range; so a checkpoint written before a noise type was added
    (without that type's fields) still matches the same run."""
    cls = NOISE_TYPES.get(stored.get("kind", "gaussian"))
    if cls is None:
        return stored
    value_range = stored.get(f"train_{cls.param}_range")
    identity = {"kind": cls.name, "level": stored.get(cls.param, cls.test_level),
                "range": None if value_range is None else list(value_range)}
    if cls.options:
        identity["options"] = {name: stored.get(name, default) for name, (default, _) in cls.options.items()}
    return identity


def training_noise(config: NoiseConfig) -> NoiseModel:
    """The noise drawn for training inputs and noisy targets (independently for each)."""
    return config.noise_type(config.level, config.train_range(), **config.options)


def test_noise(config: NoiseConfig) -> NoiseModel:
    """The noise of the evaluation protocol: the fixed test level of ``config.kind``."""
    return config.noise_type(config.level, **config.options)


def seeded_generator(seed: int, *keys: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A generator on ``device`` that is a function of (seed, keys...), e.g. (evaluation seed, image
    index)."""
    state = np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(2, dtype=np.uint32)
    return torch.Generator(device).manual_seed(int(state[0]) << 32 | int(state[1]))


__all__ = ["NOISE_TYPES", "NoiseConfig", "NoiseModel", "PixelFractionNoise", "GaussianNoise", "PoissonNoise",
           "BernoulliNoise", "ImpulseNoise", "TextNoise", "BrownNoise", "paper_ranges", "noise_identity",
           "training_noise", "test_noise", "seeded_generator"]
