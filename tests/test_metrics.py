"""PSNR and SSIM with the paper's evaluation protocol (clip, round to 8 bit, per image, then mean)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from n2n_core.evaluation.protocol import Evaluation, center_crop, evaluate
from n2n_core.paper.metrics import psnr, quantize, ssim
from n2n_core.paper.noise import BernoulliNoise, GaussianNoise, PoissonNoise
from conftest import cpu_runtime

CPU = cpu_runtime()


def _levels(generator, shape=(3, 37, 31), lo=20, hi=200) -> torch.Tensor:
    """An image whose values are exact 8-bit levels m/255, m in [lo, hi)."""
    return torch.randint(lo, hi, shape, generator=generator).float() / 255


# ------------------------------------------------------------------------------------------- PSNR
def test_psnr_of_identical_images_is_inf(generator):
    image = torch.rand(3, 37, 31, generator=generator)
    assert psnr(image, image.clone()).item() == math.inf


@pytest.mark.parametrize("k", [1, 2, 5, 16])
def test_psnr_of_a_constant_error_of_k_levels(generator, k):
    reference = _levels(generator)
    output = reference + k / 255
    assert psnr(output, reference).item() == pytest.approx(20 * math.log10(255 / k), abs=1e-3)
    assert psnr(reference - k / 255, reference).item() == pytest.approx(20 * math.log10(255 / k), abs=1e-3)


def test_psnr_averages_the_squared_error_over_all_rgb_pixels(generator):
    reference = _levels(generator, shape=(3, 8, 8))
    output = reference.clone()
    output[:, :4] += 2 / 255  # half the pixels off by 2 levels: MSE = 2 levels^2
    assert psnr(output, reference).item() == pytest.approx(10 * math.log10(255 ** 2 / 2), abs=1e-3)
    one_channel = reference.clone()
    one_channel[0] += 3 / 255  # one channel of three off by 3 levels: MSE = 3 levels^2
    assert psnr(one_channel, reference).item() == pytest.approx(10 * math.log10(255 ** 2 / 3), abs=1e-3)


def test_psnr_clips_to_0_1_before_comparing():
    reference = torch.ones(3, 5, 7)
    assert psnr(torch.full((3, 5, 7), 1.3), reference).item() == math.inf
    assert psnr(torch.full((3, 5, 7), -0.2), torch.zeros(3, 5, 7)).item() == math.inf
    # clipping happens to the reference too
    assert psnr(torch.ones(3, 5, 7), torch.full((3, 5, 7), 1.7)).item() == math.inf


def test_psnr_rounds_to_8_bit(generator):
    reference = _levels(generator)
    assert psnr(reference + 0.3 / 255, reference).item() == math.inf  # rounds away
    assert psnr(reference - 0.3 / 255, reference).item() == math.inf
    # 0.7 of a level rounds up to one whole level
    assert psnr(reference + 0.7 / 255, reference).item() == pytest.approx(20 * math.log10(255), abs=1e-3)


def test_quantize_clips_and_rounds():
    x = torch.tensor([-1.0, 0.2 / 255, 0.6 / 255, 100.4 / 255, 1.0, 2.0])
    assert torch.allclose(quantize(x) * 255, torch.tensor([0.0, 0.0, 1.0, 100.0, 255.0, 255.0]))


def test_psnr_of_a_batch_is_per_image(generator):
    reference = torch.stack([_levels(generator), _levels(generator)])
    offsets = torch.tensor([1.0, 4.0]).view(2, 1, 1, 1) / 255
    values = psnr(reference + offsets, reference)
    assert values.shape == (2,)
    expected = [20 * math.log10(255 / 1), 20 * math.log10(255 / 4)]
    assert values.tolist() == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("shapes", [((3, 37, 31), (3, 31, 37)), ((1, 3, 8, 8), (3, 8, 8)), ((3, 8, 8), (1, 8, 8))])
def test_psnr_and_ssim_reject_a_shape_mismatch(shapes):
    a, b = torch.zeros(shapes[0]), torch.zeros(shapes[1])
    for metric in (psnr, ssim):
        with pytest.raises(ValueError, match="shape"):
            metric(a, b)


def test_psnr_of_sigma_25_noise_is_about_20_dB(generator):
    clean = torch.full((3, 64, 64), 0.5)
    noisy = GaussianNoise(25)(clean, generator)
    # MSE = sigma^2 (plus 1/12 level^2 of rounding): 20 log10(255 / 25) = 20.17 dB
    assert psnr(noisy, clean).item() == pytest.approx(20 * math.log10(255 / 25), abs=0.15)


# ------------------------------------------------------------------------------------------- SSIM
def test_ssim_of_identical_images_is_one(generator):
    image = torch.rand(3, 37, 31, generator=generator)
    assert ssim(image, image.clone()).item() == pytest.approx(1.0, abs=1e-6)


def test_ssim_drops_with_noise(generator):
    clean = _levels(generator, shape=(3, 37, 31))
    values = [ssim(GaussianNoise(s)(clean, generator), clean).item() for s in (2, 10, 40)]
    assert 1 > values[0] > values[1] > values[2]


def test_ssim_matches_scikit_image(generator):
    metrics = pytest.importorskip("skimage.metrics")
    clean = _levels(generator, shape=(3, 37, 31))
    noisy = quantize(GaussianNoise(20)(clean, generator))
    expected = metrics.structural_similarity(
        noisy.permute(1, 2, 0).double().numpy(), clean.permute(1, 2, 0).double().numpy(),
        channel_axis=2, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ssim(noisy, clean).item() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("photo", ["astronaut", "coffee", "chelsea"])
def test_ssim_matches_scikit_image_on_photographs(photo, generator):
    """The hand-written SSIM is kept because it runs on batches in torch; it equals scikit-image's
    (same Gaussian window and constants) on real photographs within 1e-4."""
    data = pytest.importorskip("skimage.data")
    metrics = pytest.importorskip("skimage.metrics")
    clean = torch.from_numpy(getattr(data, photo)()[:192, :256].copy()).permute(2, 0, 1).float() / 255
    for sigma in (10, 50):
        noisy = quantize(GaussianNoise(sigma)(clean, generator))
        expected = metrics.structural_similarity(
            noisy.permute(1, 2, 0).double().numpy(), clean.permute(1, 2, 0).double().numpy(),
            channel_axis=2, data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        assert ssim(noisy, clean).item() == pytest.approx(expected, abs=1e-4)


def test_ssim_of_a_batch_is_per_image(generator):
    clean = torch.stack([_levels(generator, shape=(3, 20, 24)) for _ in range(2)])
    noisy = clean.clone()
    noisy[1] = GaussianNoise(50)(clean[1], generator)
    values = ssim(noisy, clean)
    assert values.shape == (2,)
    assert values[0].item() == pytest.approx(1.0, abs=1e-6) and values[1].item() < 0.9
    assert values[1].item() == pytest.approx(ssim(noisy[1], clean[1]).item(), abs=1e-6)


# ------------------------------------------------------------------------------------------ evaluate
def test_center_crop():
    image = torch.arange(37 * 31, dtype=torch.float32).reshape(1, 37, 31)
    crop = center_crop(image, 16)
    assert torch.equal(crop, image[:, 10:26, 7:23])
    assert center_crop(image, None) is image
    assert center_crop(image, 100).shape == image.shape


@pytest.fixture
def eval_files(tmp_path, make_png):
    return [make_png(tmp_path / f"test{i}.png", 37 - i, 31 + i, seed=30 + i) for i in range(3)]


def test_evaluate_is_reproducible_and_depends_on_the_seed(eval_files):
    noise = GaussianNoise(25)
    a = evaluate(None, eval_files, noise, seed=0, progress=False)
    b = evaluate(None, eval_files, noise, seed=0, progress=False)
    c = evaluate(None, eval_files, noise, seed=1, progress=False)
    assert a.psnr_images == b.psnr_images and a.ssim_images == b.ssim_images
    assert a.psnr_images != c.psnr_images
    assert a.names == ["test0.png", "test1.png", "test2.png"]
    assert a.seed == 0 and "25" in a.noise


def test_evaluate_without_a_model_measures_the_noisy_input(eval_files):
    ev = evaluate(None, eval_files, GaussianNoise(25), seed=0, progress=False)
    assert ev.psnr_images == ev.psnr_input_images
    assert ev.psnr == pytest.approx(ev.psnr_input)
    assert 19.5 < ev.psnr_input < 21.5  # sigma 25: about 20.2 dB
    assert 0 < ev.ssim < 1


def test_evaluate_with_the_identity_model_equals_no_model(eval_files):
    identity = nn.Identity()
    a = evaluate(identity, eval_files, GaussianNoise(25), seed=4, rt=CPU, progress=False)
    b = evaluate(None, eval_files, GaussianNoise(25), seed=4, progress=False)
    assert a.psnr_images == b.psnr_images and a.ssim_images == b.ssim_images


class _OffsetModel(nn.Module):
    """Adds 4 levels to bright images (mean > 0.3) and 1 level to dark ones."""

    def forward(self, x):
        offset = torch.where(x.mean(dim=(1, 2, 3), keepdim=True) > 0.3, 4 / 255, 1 / 255)
        return x + offset


def test_evaluate_averages_per_image_psnr_not_mse(tmp_path):
    bright, dark = tmp_path / "a_bright.png", tmp_path / "b_dark.png"
    Image.fromarray(np.full((16, 20, 3), 100, np.uint8)).save(bright)
    Image.fromarray(np.full((16, 20, 3), 50, np.uint8)).save(dark)
    ev = evaluate(_OffsetModel(), [bright, dark], GaussianNoise(0), seed=0, rt=CPU, progress=False)
    per_image = [20 * math.log10(255 / 4), 20 * math.log10(255 / 1)]
    assert ev.psnr_images == pytest.approx(per_image, abs=1e-3)
    assert ev.psnr == pytest.approx(sum(per_image) / 2, abs=1e-3)
    of_mean_mse = 10 * math.log10(255 ** 2 / ((16 + 1) / 2))
    assert abs(ev.psnr - of_mean_mse) > 1  # the two protocols differ by 2.6 dB here
    assert ev.psnr_input == math.inf  # sigma 0: the input is the clean image


def test_evaluate_center_crops(eval_files):
    seen = []

    class Spy(nn.Module):
        def forward(self, x):
            seen.append(tuple(x.shape))
            return x

    evaluate(Spy(), eval_files, GaussianNoise(25), crop=16, rt=CPU, progress=False)
    assert seen == [(1, 3, 16, 16)] * 3


def test_evaluate_needs_images():
    with pytest.raises(ValueError, match="no images"):
        evaluate(None, [], GaussianNoise(25), progress=False)


def test_evaluation_means_and_dict():
    ev = Evaluation(["a", "b"], [30.0, 32.0], [20.0, 21.0], [0.8, 0.9], seed=3, noise="GaussianNoise(sigma=25)")
    assert ev.psnr == 31.0 and ev.psnr_input == 20.5 and ev.ssim == pytest.approx(0.85)
    d = ev.as_dict()
    assert d["psnr"] == 31.0 and d["psnr_input"] == 20.5 and d["images"] == 2 and d["seed"] == 3


def test_noisy_input_psnr_on_real_kodak_images(real_data_dir):
    files = sorted((real_data_dir / "kodak").glob("*.png"))[:2]
    ev = evaluate(None, files, GaussianNoise(25), seed=0, crop=64, progress=False)
    # sigma 25 (slightly less error where clipping to [0, 1] helps): about 20.2 dB
    assert 20.0 < ev.psnr_input < 21.0


def test_ssim_rejects_images_smaller_than_its_window():
    from n2n_core.paper.metrics import ssim

    with pytest.raises(ValueError, match="11x11"):
        ssim(torch.zeros(3, 8, 20), torch.zeros(3, 8, 20))


@pytest.mark.parametrize("noise", [PoissonNoise(30), BernoulliNoise(0.5)], ids=repr)
def test_evaluate_is_reproducible_for_every_noise_type(eval_files, noise):
    a = evaluate(None, eval_files, noise, seed=0, progress=False)
    b = evaluate(None, eval_files, noise, seed=0, progress=False)
    c = evaluate(None, eval_files, noise, seed=1, progress=False)
    assert a.psnr_images == b.psnr_images
    assert a.psnr_images != c.psnr_images


def test_evaluate_repeats_average_independent_draws(eval_files):
    noise = GaussianNoise(25)
    once = evaluate(None, eval_files, noise, seed=0, progress=False)
    thrice = evaluate(None, eval_files, noise, seed=0, progress=False, repeats=3)
    assert thrice.repeats == 3 and thrice.as_dict()["repeats"] == 3 and len(thrice.names) == 3
    assert thrice.psnr_images != once.psnr_images  # two more draws changed the per-image means
    # the first draw is the single-draw evaluation; the mean over 3 draws is in the same range
    assert thrice.psnr == pytest.approx(once.psnr, abs=0.3)
    assert evaluate(None, eval_files, noise, seed=0, progress=False, repeats=3).psnr_images == thrice.psnr_images
    with pytest.raises(ValueError, match="repeats"):
        evaluate(None, eval_files, noise, repeats=0, progress=False)


def test_evaluate_accepts_a_plain_callable_as_the_denoiser(eval_files):
    seen = []

    def halfway(noisy):  # a "baseline": any callable from a 1 x 3 x H x W batch to its estimate
        seen.append(tuple(noisy.shape))
        return noisy * 0.5

    ev = evaluate(halfway, eval_files, GaussianNoise(25), seed=0, progress=False)
    assert len(seen) == 3 and all(s[:2] == (1, 3) for s in seen)
    assert ev.psnr < ev.psnr_input  # halving the image is worse than the noisy input


class _CountingShift(nn.Module):
    """Adds a learnable constant; counts its forward calls."""

    def __init__(self, value: float):
        super().__init__()
        self.shift = nn.Parameter(torch.tensor(value))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x + self.shift


def test_evaluation_cache_returns_the_same_numbers_without_running_the_model(eval_files, tmp_path):
    cache = tmp_path / "cache"
    model = _CountingShift(0.0)
    first = evaluate(model, eval_files, GaussianNoise(25), seed=3, rt=CPU, progress=False, cache_dir=cache)
    assert model.calls == 3 and len(list(cache.glob("*.json"))) == 1
    again = evaluate(model, eval_files, GaussianNoise(25), seed=3, rt=CPU, progress=False, cache_dir=cache)
    assert model.calls == 3  # served from the cache
    assert again.psnr_images == first.psnr_images and again.ssim_images == first.ssim_images
    assert again.names == first.names and again.noise == first.noise and again.seed == 3


@pytest.mark.parametrize("change", ["weights", "seed", "noise", "repeats", "file"])
def test_evaluation_cache_misses_when_anything_that_decides_the_numbers_changes(eval_files, tmp_path, change):
    cache = tmp_path / "cache"
    model = _CountingShift(0.0)
    evaluate(model, eval_files, GaussianNoise(25), seed=3, rt=CPU, progress=False, cache_dir=cache)
    kwargs = dict(seed=3, repeats=1)
    noise = GaussianNoise(25)
    if change == "weights":
        with torch.no_grad():
            model.shift += 1 / 255
    elif change == "seed":
        kwargs["seed"] = 4
    elif change == "noise":
        noise = GaussianNoise(15)
    elif change == "repeats":
        kwargs["repeats"] = 2
    else:
        Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(eval_files[1])  # the image file changed
    calls = model.calls
    evaluate(model, eval_files, noise, rt=CPU, progress=False, cache_dir=cache, **kwargs)
    assert model.calls > calls
    assert len(list(cache.glob("*.json"))) == 2


def test_evaluation_cache_ignores_a_corrupt_entry(eval_files, tmp_path):
    cache = tmp_path / "cache"
    model = _CountingShift(0.0)
    first = evaluate(model, eval_files, GaussianNoise(25), seed=3, rt=CPU, progress=False, cache_dir=cache)
    (entry,) = cache.glob("*.json")
    entry.write_text('{"names": [')  # e.g. a crash while writing by hand
    again = evaluate(model, eval_files, GaussianNoise(25), seed=3, rt=CPU, progress=False, cache_dir=cache)
    assert model.calls == 6 and again.psnr_images == first.psnr_images
    assert Evaluation(**json.loads(entry.read_text())).psnr_images == first.psnr_images


def test_noise_from_takes_a_checkpoints_noise_and_replaces_the_given_fields():
    from n2n_core.evaluation.protocol import noise_from

    base = {"kind": "poisson", "lam": 30.0, "sigma": 25.0, "p": 0.5, "train_lam_range": None}
    assert noise_from(base).kind == "poisson" and noise_from(base).lam == 30.0
    assert noise_from(base, lam=10.0).lam == 10.0 and noise_from(base, kind="gaussian", sigma=15.0).sigma == 15.0
    assert noise_from(None).kind == "gaussian"
    with pytest.raises(ValueError, match="speckle"):
        noise_from(base, kind="speckle")
