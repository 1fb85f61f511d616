"""Noise models: Gaussian (zero mean, sigma/255, unclipped), Poisson (unbiased, variance x/lambda) and
Bernoulli (a fraction 1 - p of pixels kept); every draw seeded by a generator."""
from __future__ import annotations

import math

import pytest
import torch

from n2n_core.config import NoiseConfig
from n2n_core.paper import noise as noise_module
from n2n_core.paper.noise import BernoulliNoise, GaussianNoise, PoissonNoise, seeded_generator


def _grey(value: float, n: int = 1, h: int = 128, w: int = 96) -> torch.Tensor:
    return torch.full((n, 3, h, w), value)


@pytest.mark.parametrize("sigma", [25.0, 50.0, 5.0])
def test_gaussian_noise_is_zero_mean_with_std_sigma_over_255(generator, sigma):
    clean = _grey(0.5, n=2)
    noise = GaussianNoise(sigma)(clean, generator) - clean
    n = noise.numel()  # 73,728 samples
    std = sigma / 255.0
    # the sample mean has standard error std / sqrt(n); allow 5 of them
    assert abs(noise.mean().item()) < 5 * std / math.sqrt(n)
    # the sample std has relative standard error about 1 / sqrt(2n) (0.26 %): allow 2 %
    assert noise.std().item() == pytest.approx(std, rel=0.02)


def test_noise_is_neither_clipped_nor_quantised(generator):
    noise = GaussianNoise(25)
    dark = noise(_grey(0.0), generator)
    bright = noise(_grey(1.0), generator)
    # about half the pixels of a black (white) image must go below 0 (above 1)
    assert (dark < 0).float().mean().item() == pytest.approx(0.5, abs=0.02)
    assert (bright > 1).float().mean().item() == pytest.approx(0.5, abs=0.02)
    assert dark.min() < -2 * 25 / 255 and bright.max() > 1 + 2 * 25 / 255
    # not rounded to 8-bit levels: almost no value lies on a multiple of 1/255
    levels = dark * 255
    assert (levels - levels.round()).abs().lt(1e-4).float().mean().item() < 0.01


def test_noise_does_not_modify_its_input_and_keeps_shape_and_dtype(generator):
    clean = torch.rand(2, 3, 37, 31, generator=generator)
    copy = clean.clone()
    noisy = GaussianNoise(25)(clean, generator)
    assert torch.equal(clean, copy)
    assert noisy.shape == clean.shape and noisy.dtype == clean.dtype
    single = GaussianNoise(25)(clean[0], generator)  # a C x H x W image works too
    assert single.shape == clean[0].shape


def test_sigma_zero_adds_nothing(generator):
    clean = torch.rand(1, 3, 37, 31, generator=generator)
    assert torch.equal(GaussianNoise(0)(clean, generator), clean)


def test_same_seed_same_noise_other_seed_other_noise():
    clean = _grey(0.5, h=37, w=31)
    noise = GaussianNoise(25)
    a = noise(clean, torch.Generator().manual_seed(5))
    b = noise(clean, torch.Generator().manual_seed(5))
    c = noise(clean, torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_noise_does_not_use_the_global_random_state(generator):
    clean = _grey(0.5, h=37, w=31)
    state = torch.get_rng_state()
    a = GaussianNoise(25)(clean, torch.Generator().manual_seed(1))
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(999)  # changing the global state changes nothing
    assert torch.equal(GaussianNoise(25)(clean, torch.Generator().manual_seed(1)), a)


def test_two_draws_from_one_generator_are_independent(generator):
    # the Noise2Noise target is a second draw: it must not repeat (or correlate with) the first
    clean = _grey(0.5, n=2)
    noise = GaussianNoise(25)
    first = (noise(clean, generator) - clean).flatten()
    second = (noise(clean, generator) - clean).flatten()
    corr = torch.corrcoef(torch.stack([first, second]))[0, 1].item()
    assert abs(corr) < 5 / math.sqrt(first.numel())


def test_blind_noise_gives_each_image_its_own_sigma_within_the_range(generator):
    lo, hi = 5.0, 50.0
    clean = _grey(0.5, n=24, h=64, w=64)
    noisy = GaussianNoise(25, sigma_range=(lo, hi))(clean, generator)
    stds = (noisy - clean).flatten(1).std(dim=1) * 255  # per image, on the 0..255 scale
    # 12,288 samples per image: the std estimate is within ~2 % of the true sigma
    assert stds.min() > lo * 0.95 and stds.max() < hi * 1.05
    assert stds.max() - stds.min() > 0.5 * (hi - lo)  # really spread over the range
    assert len(set(stds.tolist())) == len(stds)  # every image has its own draw


def test_blind_noise_is_reproducible_from_the_seed():
    clean = _grey(0.5, n=4, h=16, w=16)
    noise = GaussianNoise(sigma_range=(0.0, 50.0))
    a = noise(clean, torch.Generator().manual_seed(3))
    b = noise(clean, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize("sigma", [-1.0, -0.5])
def test_negative_sigma_raises(sigma):
    with pytest.raises(ValueError, match=str(sigma)):
        GaussianNoise(sigma)


@pytest.mark.parametrize("bad_range", [(-1.0, 5.0), (10.0, 5.0)])
def test_bad_sigma_range_raises(bad_range):
    with pytest.raises(ValueError, match="sigma_range"):
        GaussianNoise(25, sigma_range=bad_range)


def test_seeded_generator_is_a_function_of_seed_and_index():
    def draw(*args):
        return torch.randn(8, generator=seeded_generator(*args))

    assert torch.equal(draw(0, 1), draw(0, 1))
    assert not torch.equal(draw(0, 1), draw(0, 2))  # other index
    assert not torch.equal(draw(0, 1), draw(1, 1))  # other seed
    assert not torch.equal(draw(0, 1), draw(1, 0))  # (seed, index) is not a symmetric function
    draws = [draw(3, i) for i in range(50)]
    assert len({tuple(d.tolist()) for d in draws}) == 50


def test_training_and_test_noise_from_config():
    blind = NoiseConfig(sigma=25, train_sigma_range=(0.0, 50.0))
    # (imported through the module: pytest would collect a bare ``test_noise`` as a test)
    training_noise, test_noise = noise_module.training_noise, noise_module.test_noise
    assert training_noise(blind).level_range == (0.0, 50.0)
    assert test_noise(blind).level_range is None and test_noise(blind).level == 25.0  # fixed at test time
    fixed = NoiseConfig(sigma=15)
    assert training_noise(fixed).level_range is None and training_noise(fixed).level == 15.0
    assert "25" in repr(test_noise(blind))


@pytest.mark.parametrize("kind", list(noise_module.NOISE_TYPES))
def test_each_registered_noise_type_is_complete(kind):
    """What the rest of the package reads from a registry entry: its level field in NoiseConfig
    (Table 1's level by default), a training range field, a valid paper range, and draws."""
    cls = noise_module.NOISE_TYPES[kind]
    config = NoiseConfig(kind, **noise_module.paper_ranges(kind))
    assert config.level == cls.test_level and config.train_range() == cls.paper_range
    options = "".join(f", {name}={default:g}" for name, (default, _) in cls.options.items())
    assert config.label.startswith(f"{cls.title} {cls.symbol}={cls.test_level:g}")
    assert config.at_level(cls.paper_range[1]).level == cls.paper_range[1]
    assert isinstance(noise_module.training_noise(config), cls)
    assert repr(noise_module.test_noise(config)) == f"{cls.__name__}({cls.param}={cls.test_level:g}{options})"
    clean = torch.full((2, 3, 8, 8), 0.5)
    noisy = noise_module.training_noise(config)(clean, torch.Generator().manual_seed(0))
    assert noisy.shape == clean.shape and not torch.equal(noisy, clean)
    with pytest.raises(ValueError, match=f"train_{cls.param}_range"):
        NoiseConfig(kind, **{f"train_{cls.param}_range": (cls.paper_range[1], cls.paper_range[0] - 1)})


def test_blind_only_keeps_the_range_of_its_own_kind():
    config = NoiseConfig("poisson", **noise_module.paper_ranges()).blind_only()
    assert config.train_lam_range == (0.001, 50.0)
    assert config.train_sigma_range is None and config.train_p_range is None


# ----------------------------------------------------------------------------------- Poisson
@pytest.mark.parametrize("value,lam", [(0.5, 30.0), (0.1, 30.0), (0.8, 5.0)])
def test_poisson_noise_is_unbiased_with_variance_x_over_lambda(generator, value, lam):
    clean = _grey(value, n=4)  # 147,456 samples
    noisy = PoissonNoise(lam)(clean, generator)
    n, var = noisy.numel(), value / lam
    assert abs(noisy.mean().item() - value) < 5 * math.sqrt(var / n)  # unbiased: E[y] = x
    assert noisy.var().item() == pytest.approx(var, rel=0.03)  # Var[y] = x / lam


def test_poisson_noise_takes_values_on_the_count_grid_and_is_not_clipped(generator):
    lam = 30.0
    noisy = PoissonNoise(lam)(_grey(0.9, n=2), generator)
    counts = noisy * lam
    assert torch.allclose(counts, counts.round(), atol=1e-4)  # y = k / lam, k an integer count
    assert noisy.max() > 1.0  # counts above lam are kept: no clipping to [0, 1]
    assert torch.equal(PoissonNoise(lam)(_grey(0.0), generator), _grey(0.0))  # black stays black


def test_poisson_training_range_draws_one_lambda_per_image(generator):
    clean = _grey(0.5, n=32, h=64, w=64)
    noisy = PoissonNoise(lam_range=(1.0, 50.0))(clean, generator)
    lam_estimate = 0.5 / (noisy - clean).flatten(1).var(dim=1)
    assert lam_estimate.min() < 10 and lam_estimate.max() > 35  # spread over the range
    assert lam_estimate.max() < 50 * 1.15


# --------------------------------------------------------------------------------- Bernoulli
@pytest.mark.parametrize("p", [0.5, 0.2, 0.9])
def test_bernoulli_keeps_a_fraction_one_minus_p_of_pixels(generator, p):
    clean = torch.rand((2, 3, 128, 96), generator=generator) * 0.9 + 0.1  # no zero pixel
    noisy, mask = BernoulliNoise(p).draw(clean, generator)
    assert mask.shape == (2, 1, 128, 96)
    kept = (noisy != 0).all(dim=1, keepdim=True)  # a pixel is dropped in all channels together
    assert torch.equal(kept, (noisy != 0).any(dim=1, keepdim=True))
    assert torch.equal(kept.float(), mask)
    n = mask.numel()
    assert abs(mask.mean().item() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    assert torch.equal(noisy[kept.expand_as(noisy)], clean[kept.expand_as(clean)])  # kept pixels untouched


def test_bernoulli_training_range_and_validation(generator):
    clean = _grey(0.5, n=64, h=32, w=32)
    _, mask = BernoulliNoise(p_range=(0.0, 0.95)).draw(clean, generator)
    kept = mask.flatten(1).mean(dim=1)
    assert kept.min() < 0.3 and kept.max() > 0.8
    with pytest.raises(ValueError, match="1.0"):
        BernoulliNoise(1.0)
    with pytest.raises(ValueError, match="p_range"):
        BernoulliNoise(p_range=(0.2, 1.0))
    with pytest.raises(ValueError, match="-3"):
        PoissonNoise(-3.0)


@pytest.mark.parametrize("kind,cls,attr,value", [("gaussian", GaussianNoise, "sigma", 25.0),
                                                  ("poisson", PoissonNoise, "lam", 30.0),
                                                  ("bernoulli", BernoulliNoise, "p", 0.5)])
def test_noise_kind_from_config(kind, cls, attr, value):
    config = NoiseConfig(kind=kind, train_sigma_range=(0.0, 50.0), train_lam_range=(0.001, 50.0),
                         train_p_range=(0.0, 0.95))
    test, train = noise_module.test_noise(config), noise_module.training_noise(config)
    assert isinstance(test, cls) and isinstance(train, cls)
    assert test.param == attr and test.level == value and config.level == value
    assert test.level_range is None and train.level_range == getattr(config, f"train_{attr}_range")


# ----------------------------------------------------------------------------------- impulse
@pytest.mark.parametrize("p", [0.7, 0.2, 0.95])
def test_impulse_replaces_a_fraction_p_of_pixels_by_uniform_colours(generator, p):
    from n2n_core.paper.noise import ImpulseNoise

    clean = torch.full((2, 3, 128, 96), 0.25)  # a value that uniform draws never hit exactly
    noisy, mask = ImpulseNoise(p).draw(clean, generator)
    assert mask is None  # every target pixel carries information for the annealed L0: no masked loss
    hit = (noisy != clean).any(dim=1)  # a pixel is replaced in all channels together
    assert torch.equal(hit, (noisy != clean).all(dim=1))
    n = hit.numel()
    assert abs(hit.float().mean().item() - p) < 5 * math.sqrt(p * (1 - p) / n)
    colours = noisy.permute(0, 2, 3, 1)[hit]  # the replaced pixels: uniform in [0, 1]^3, channels independent
    assert colours.min() >= 0 and colours.max() < 1
    assert colours.mean().item() == pytest.approx(0.5, abs=0.01)
    assert colours.var(dim=0).tolist() == pytest.approx([1 / 12] * 3, rel=0.05)
    assert abs(torch.corrcoef(colours.T)[0, 1].item()) < 0.02


def test_impulse_noise_is_not_zero_mean_so_its_mode_is_the_clean_value(generator):
    # the paper's point: the mean of impulse-noisy targets is biased towards grey, the mode is clean
    from n2n_core.paper.noise import ImpulseNoise

    clean = torch.full((1, 3, 256, 256), 0.9)
    noisy = ImpulseNoise(0.7)(clean, generator)
    assert noisy.mean().item() == pytest.approx(0.3 * 0.9 + 0.7 * 0.5, abs=0.01)
    values, counts = noisy.flatten().unique(return_counts=True)
    assert values[counts.argmax()].item() == pytest.approx(0.9)


def test_impulse_level_is_its_own_field_and_option():
    config = NoiseConfig("impulse", impulse_p=0.5, p=0.1, train_impulse_p_range=(0.0, 0.95))
    assert config.level == 0.5 and config.label == "Impulse p=0.5"
    assert noise_module.training_noise(config).level_range == (0.0, 0.95)
    with pytest.raises(ValueError, match="impulse_p"):
        NoiseConfig("impulse", impulse_p=1.0)


def test_noise_identity_ignores_the_other_kinds_and_fields_added_later():
    # a checkpoint written before the impulse type existed has no impulse fields: the same run
    import dataclasses
    import json

    now = json.loads(json.dumps(dataclasses.asdict(NoiseConfig("gaussian", train_sigma_range=(0.0, 50.0)))))
    before = {k: v for k, v in now.items() if "impulse" not in k}
    assert noise_module.noise_identity(before) == noise_module.noise_identity(now)
    assert noise_module.noise_identity({**now, "lam": 3.0}) == noise_module.noise_identity(now)
    for change in ({"sigma": 15.0}, {"train_sigma_range": None}, {"kind": "poisson"}):
        assert noise_module.noise_identity({**now, **change}) != noise_module.noise_identity(now)


# -------------------------------------------------------------------------------------- text
@pytest.mark.parametrize("p", [0.1, 0.25, 0.45])
def test_text_covers_a_fraction_p_of_the_pixels_on_average(generator, p):
    from n2n_core.paper.noise import TextNoise

    clean = torch.full((64, 3, 64, 64), 0.25)  # a value no string's uniform colour hits exactly
    noisy, mask = TextNoise(p).draw(clean, generator)
    assert mask is None
    changed = (noisy != clean).any(dim=1)  # a covered pixel takes the string's colour in every channel
    assert torch.equal(changed, (noisy != clean).all(dim=1))
    per_image = changed.float().mean(dim=(1, 2))
    # the expected coverage is p (the last string is kept with the probability that makes it so):
    # the mean of 64 images within 0.01, and no image far from p
    assert per_image.mean().item() == pytest.approx(p, abs=0.01)
    assert (per_image - p).abs().max().item() < 0.15
    # every place is as likely to be covered: edges as often as the centre (strings run over the edges)
    edge = torch.cat([changed[:, :8].flatten(), changed[:, -8:].flatten(), changed[:, :, :8].flatten()])
    assert edge.float().mean().item() == pytest.approx(changed[:, 24:40, 24:40].float().mean().item(), abs=0.03)
    colours = noisy.permute(0, 2, 3, 1)[changed]
    assert colours.min() >= 0 and colours.max() <= 1


def test_text_median_over_independent_overlays_is_the_clean_image_and_the_mean_is_not(generator):
    # the paper's point for L1: below p = 0.5 a pixel is clean in most draws, so its median is clean
    from n2n_core.paper.noise import TextNoise

    clean = torch.linspace(0, 1, 48 * 48).reshape(1, 1, 48, 48).expand(1, 3, 48, 48)
    draws = torch.cat([TextNoise(0.3)(clean, generator) for _ in range(41)])
    median = draws.median(dim=0).values
    assert (median == clean[0]).float().mean().item() > 0.98
    assert (draws.mean(dim=0) - clean[0]).abs().mean().item() > 0.03


def test_text_overlays_are_a_function_of_the_generator():
    from n2n_core.paper.noise import TextNoise

    clean = torch.full((2, 3, 64, 64), 0.5)
    first, again = (TextNoise(0.3)(clean, torch.Generator().manual_seed(5)) for _ in range(2))
    assert torch.equal(first, again)
    assert not torch.equal(first, TextNoise(0.3)(clean, torch.Generator().manual_seed(6)))
    assert not torch.equal(first[0], first[1])  # each image of a batch gets its own strings


# ------------------------------------------------------------------------------------- brown
@pytest.mark.parametrize("width", [1.0, 2.0, 4.0])
def test_brown_noise_has_std_sigma_zero_mean_and_the_correlation_length_of_its_blur(generator, width):
    from n2n_core.paper.noise import BrownNoise

    clean = _grey(0.5, n=8, h=128, w=128)
    noise = (BrownNoise(25.0, brown_width=width)(clean, generator) - clean).double()
    std = 25 / 255
    assert noise.std().item() == pytest.approx(std, rel=0.04)
    # the mean: about n / (4 pi width^2) independent samples
    assert abs(noise.mean().item()) < 5 * std / math.sqrt(noise.numel() / (4 * math.pi * width ** 2))
    for lag in (1, 2, 4):
        along_x = (noise[..., lag:] * noise[..., :-lag]).mean().item() / noise.var().item()
        along_y = (noise[..., lag:, :] * noise[..., :-lag, :]).mean().item() / noise.var().item()
        expected = math.exp(-lag ** 2 / (4 * width ** 2))  # a Gaussian blur of white noise
        assert along_x == pytest.approx(expected, abs=0.03) and along_y == pytest.approx(expected, abs=0.03)
    between_channels = (noise[:, 0] * noise[:, 1]).mean().item() / noise.var().item()
    assert abs(between_channels) < 0.03


def test_brown_noise_of_width_zero_is_white_and_its_width_is_checked_and_names_the_run(generator):
    from n2n_core.paper.noise import BrownNoise

    noise = BrownNoise(25.0, brown_width=0.0)(_grey(0.5, n=2), generator) - 0.5
    assert abs((noise[..., 1:] * noise[..., :-1]).mean().item() / noise.var().item()) < 0.02
    with pytest.raises(ValueError, match="brown_width"):
        NoiseConfig("brown", brown_width=-1.0)
    config = NoiseConfig("brown", brown_width=1.0)
    assert config.tag == "brown1" and config.label == "Brown Gaussian sigma=25, width=1"
    assert NoiseConfig("gaussian", brown_width=1.0).tag == "gaussian"
    assert noise_module.test_noise(config).brown_width == 1.0
    assert repr(noise_module.test_noise(config)) == "BrownNoise(brown_sigma=25, brown_width=1)"
    # the width decides the run: a checkpoint of another width is another run
    import dataclasses

    stored = dataclasses.asdict(config)
    assert noise_module.noise_identity({**stored, "brown_width": 2.0}) != noise_module.noise_identity(stored)


def test_options_are_replaced_by_name_and_only_for_their_own_kind():
    config = NoiseConfig("brown").at_level(15.0).with_options(brown_width=1.0)
    assert (config.brown_sigma, config.brown_width, config.tag) == (15.0, 1.0, "brown1")
    with pytest.raises(ValueError, match="Gaussian noise has no option brown_width"):
        NoiseConfig("gaussian").with_options(brown_width=1.0)
    with pytest.raises(ValueError, match="brown_width must be >= 0"):
        NoiseConfig("brown").with_options(brown_width=-2.0)
