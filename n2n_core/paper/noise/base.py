"""The base of every noise type: ``NoiseModel`` (a type at a level, or blind over a range) and
``PixelFractionNoise`` (types whose level is the probability that a pixel is hit)."""
from __future__ import annotations

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
    # further settings of the type besides its level: NoiseConfig field -> (default, help); the
    # constructor takes them by name, and ``check_options`` validates them
    options: dict[str, tuple[float, str]] = {}
    # whether a run on this noise is named by its loss (unet_l1_text) rather than 'n2n': the noise
    # types whose point is which statistic a loss recovers
    loss_named: bool = False

    @staticmethod
    def valid(level: float) -> bool:
        raise NotImplementedError

    @staticmethod
    def valid_range(lo: float, hi: float) -> bool:
        raise NotImplementedError

    @classmethod
    def check_options(cls, **options: float) -> None:
        """A ValueError naming the option and the rule when one of ``options`` is invalid."""

    @classmethod
    def tag(cls, options: dict[str, float]) -> str:
        """The noise's part of a run's name: its registry key, plus what the options make different."""
        return cls.name

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

    def option_values(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.options}

    def __repr__(self) -> str:  # also the evaluation cache's key: keep it stable
        extra = "".join(f", {name}={value:g}" for name, value in self.option_values().items())
        if self.level_range is None:
            return f"{type(self).__name__}({self.param}={self.level:g}{extra})"
        return f"{type(self).__name__}({self.param}~U{self.level_range}{extra})"


class StandardDeviationNoise(NoiseModel):
    """A noise whose level is a standard deviation on the 0..255 scale (any level >= 0)."""
    level_rule, range_rule = ">= 0", "0 <= lo <= hi"
    valid = staticmethod(lambda level: level >= 0)
    valid_range = staticmethod(lambda lo, hi: 0 <= lo <= hi)


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


