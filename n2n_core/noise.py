"""Noise types: the registry ``NOISE_TYPES`` and the settings of one run, ``NoiseConfig``.

A noise type is one ``NoiseModel`` subclass and one entry in ``NOISE_TYPES``: the class names its
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


def _per_image(clean: torch.Tensor) -> tuple[int, ...]:
    """The shape of one value per image, broadcastable against ``clean`` (N x C x H x W or C x H x W)."""
    return (clean.shape[0],) + (1,) * (clean.dim() - 1) if clean.dim() == 4 else (1,) * clean.dim()


class NoiseModel:
    """A noise type at a level: ``noise(clean, generator)`` returns the noisy image(s), in float32,
    on the device of ``clean``, drawn on the generator's device (so the draws do not depend on where
    ``clean`` is); ``noise.draw(clean, generator)`` also returns the mask of the pixels that carry
    information (None when every pixel does), which a loss on noisy targets must use.

    With ``level_range=(lo, hi)`` each image of a batch draws its own level ~ U(lo, hi) (blind
    training); otherwise every image gets ``level``. A subclass sets the class attributes below and
    ``valid``/``valid_range``, and implements ``apply``.
    """
    name: str            # the registry key: NoiseConfig.kind and `--noise`
    title: str           # e.g. "Gaussian"
    param: str           # the level's NoiseConfig field and command-line option, e.g. "sigma"
    symbol: str          # the level's name in labels and tables, e.g. "sigma"
    test_level: float    # Table 1's test level (NoiseConfig's default)
    paper_range: tuple[float, float]  # the paper's blind training range
    level_help: str      # what the level means, for --help
    level_rule: str      # the valid levels, in words
    range_rule: str      # the valid ranges, in words

    @staticmethod
    def valid(level: float) -> bool:
        raise NotImplementedError

    @staticmethod
    def valid_range(lo: float, hi: float) -> bool:
        raise NotImplementedError

    @classmethod
    def check(cls, level: float, level_range: tuple[float, float] | None = None, range_name: str = "") -> None:
        """A ValueError naming the value and the rule when ``level`` or ``level_range`` is invalid."""
        if not cls.valid(level):
            raise ValueError(f"{cls.title} {cls.param} must be {cls.level_rule}, got {level}")
        if level_range is not None and not cls.valid_range(*level_range):
            raise ValueError(f"{range_name or cls.param + '_range'} must satisfy {cls.range_rule}, got {level_range}")

    def __init__(self, level: float | None = None, level_range: tuple[float, float] | None = None):
        level = self.test_level if level is None else float(level)
        self.check(level, level_range)
        self.level, self.level_range = level, None if level_range is None else tuple(level_range)

    def levels(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One level per image: ``level``, or uniform in ``level_range``."""
        shape = _per_image(clean)
        if self.level_range is None:
            return torch.full(shape, self.level, device=generator.device)
        lo, hi = self.level_range
        return lo + (hi - lo) * torch.rand(shape, generator=generator, device=generator.device)

    def apply(self, clean: torch.Tensor, level: torch.Tensor,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def draw(self, clean: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.apply(clean, self.levels(clean, generator), generator)

    def __call__(self, clean: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.draw(clean, generator)[0]

    def __repr__(self) -> str:  # also the evaluation cache's key: keep it stable
        if self.level_range is None:
            return f"{type(self).__name__}({self.param}={self.level:g})"
        return f"{type(self).__name__}({self.param}~U{self.level_range})"


class GaussianNoise(NoiseModel):
    """Additive white Gaussian noise, sigma on the 0..255 scale."""
    name, title, param, symbol = "gaussian", "Gaussian", "sigma", "sigma"
    test_level, paper_range = 25.0, (0.0, 50.0)
    level_help = "Gaussian sigma on the 0..255 scale"
    level_rule, range_rule = ">= 0", "0 <= lo <= hi"
    valid = staticmethod(lambda level: level >= 0)
    valid_range = staticmethod(lambda lo, hi: 0 <= lo <= hi)

    def __init__(self, sigma: float = 25.0, sigma_range: tuple[float, float] | None = None):
        super().__init__(sigma, sigma_range)

    def apply(self, clean, level, generator):
        noise = torch.randn(clean.shape, generator=generator, dtype=torch.float32, device=generator.device)
        return clean + (level / 255.0 * noise).to(clean.device, clean.dtype), None


class PoissonNoise(NoiseModel):
    """Shot noise: y = Poisson(lam * x) / lam for x in [0, 1], so E[y] = x and Var[y] = x / lam;
    ``lam`` is the photon count of a white pixel. Counts are divided back, never clipped."""
    name, title, param, symbol = "poisson", "Poisson", "lam", "lambda"
    test_level, paper_range = 30.0, (0.001, 50.0)
    level_help = "Poisson lambda, the photon count of a white pixel"
    level_rule, range_rule = "> 0", "0 < lo <= hi"
    valid = staticmethod(lambda level: level > 0)
    valid_range = staticmethod(lambda lo, hi: 0 < lo <= hi)

    def __init__(self, lam: float = 30.0, lam_range: tuple[float, float] | None = None):
        super().__init__(lam, lam_range)

    def apply(self, clean, level, generator):
        # Poisson(rate) needs rate >= 0: a clean value below 0 (never in [0, 1] images) is floored
        rate = clean.detach().float().to(generator.device).clamp_min(0) * level
        return (torch.poisson(rate, generator=generator) / level).to(clean.device, clean.dtype), None


class PixelFractionNoise(NoiseModel):
    """A noise whose level is the probability that a pixel (all its channels together) is hit."""
    level_rule, range_rule = "in [0, 1)", "0 <= lo <= hi < 1"
    valid = staticmethod(lambda level: 0 <= level < 1)
    valid_range = staticmethod(lambda lo, hi: 0 <= lo <= hi < 1)

    @staticmethod
    def hit(clean: torch.Tensor, level: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """N x 1 x H x W (or 1 x H x W), on the generator's device: True with probability ``level``."""
        shape = clean.shape[:-3] + (1,) + clean.shape[-2:]
        return torch.rand(shape, generator=generator, device=generator.device) < level


class BernoulliNoise(PixelFractionNoise):
    """Multiplicative Bernoulli noise: each pixel (all its channels together) is kept with
    probability 1 - p and set to 0 otherwise. ``draw`` returns the keep mask, N x 1 x H x W, for
    the masked loss."""
    name, title, param, symbol = "bernoulli", "Bernoulli", "p", "p"
    test_level, paper_range = 0.5, (0.0, 0.95)
    level_help = "Bernoulli p, the probability that a pixel is dropped"

    def __init__(self, p: float = 0.5, p_range: tuple[float, float] | None = None):
        super().__init__(p, p_range)

    def apply(self, clean, level, generator):
        keep = (~self.hit(clean, level, generator)).to(clean.device, clean.dtype)
        return clean * keep, keep


class ImpulseNoise(PixelFractionNoise):
    """Random-valued impulse noise: each pixel (all its channels together) is replaced with
    probability p by a colour drawn uniformly from [0, 1]^3. Not zero-mean: with noisy targets, L2
    learns the mean (pulled towards grey) and the annealed L0 loss the mode, the clean value."""
    name, title, param, symbol = "impulse", "Impulse", "impulse_p", "p"
    test_level, paper_range = 0.7, (0.0, 0.95)
    level_help = "impulse p, the probability that a pixel is replaced by a random colour"

    def __init__(self, impulse_p: float = 0.7, impulse_p_range: tuple[float, float] | None = None):
        super().__init__(impulse_p, impulse_p_range)

    def apply(self, clean, level, generator):
        hit = self.hit(clean, level, generator)
        colour = torch.rand(clean.shape, generator=generator, device=generator.device)
        noisy = torch.where(hit, colour, clean.detach().to(generator.device, torch.float32))
        return noisy.to(clean.device, clean.dtype), None


NOISE_TYPES: dict[str, type[NoiseModel]] = {cls.name: cls for cls in (GaussianNoise, PoissonNoise, BernoulliNoise,
                                                                      ImpulseNoise)}


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
    train_sigma_range: tuple[float, float] | None = None
    train_lam_range: tuple[float, float] | None = None
    train_p_range: tuple[float, float] | None = None
    train_impulse_p_range: tuple[float, float] | None = None

    def __post_init__(self):
        if self.kind not in NOISE_TYPES:
            raise ValueError(f"unknown noise type {self.kind!r}; choose one of {', '.join(NOISE_TYPES)}")
        for cls in NOISE_TYPES.values():
            cls.check(getattr(self, cls.param), self.train_range(cls), range_name=f"train_{cls.param}_range")

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
    def label(self) -> str:
        """A short human name, e.g. 'Gaussian sigma=25'."""
        return f"{self.noise_type.title} {self.noise_type.symbol}={self.level:g}"

    def at_level(self, level: float) -> NoiseConfig:
        """The same settings with the test level of this kind set to ``level``."""
        return dataclasses.replace(self, **{self.noise_type.param: float(level)})

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
    return {"kind": cls.name, "level": stored.get(cls.param, cls.test_level),
            "range": None if value_range is None else list(value_range)}


def training_noise(config: NoiseConfig) -> NoiseModel:
    """The noise drawn for training inputs and noisy targets (independently for each)."""
    return config.noise_type(config.level, config.train_range())


def test_noise(config: NoiseConfig) -> NoiseModel:
    """The noise of the evaluation protocol: the fixed test level of ``config.kind``."""
    return config.noise_type(config.level)


def seeded_generator(seed: int, *keys: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A generator on ``device`` that is a function of (seed, keys...), e.g. (evaluation seed, image
    index)."""
    state = np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(2, dtype=np.uint32)
    return torch.Generator(device).manual_seed(int(state[0]) << 32 | int(state[1]))
