"""Grey images: noise matching through the colour weights (``evaluation.grey``) in `n2n denoise`, the
blind sigma estimate, grey (1-channel) models and their start from the colour weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from n2n_core import load_model
from n2n_core.__main__ import main
from n2n_core.data.grey import grey_uint8
from n2n_core.data.images import read_image
from n2n_core.evaluation.denoise import denoise_image
from n2n_core.evaluation.grey import GreyThroughColour, NoiseMatching, estimate_sigma
from n2n_core.paper.models import UNet, build, grey_from_colour, model_args
from n2n_core.config import ModelConfig
from n2n_core.training.checkpoint import initial_weights, save_checkpoint
from conftest import cpu_runtime, smooth_image

CPU = cpu_runtime()


def _grey_clean(height=96, width=96, seed=3) -> np.ndarray:
    return np.array(Image.fromarray(smooth_image(height, width, seed)).convert("L"))


def _noisy(clean: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, clean.shape)
    return np.clip(np.round(clean + noise), 0, 255).astype(np.uint8)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0 ** 2 / np.mean((a.astype(float) - b.astype(float)) ** 2)))


def test_a_grey_file_through_the_colour_weights_is_denoised_far_better_than_replicated(tmp_path, capsys):
    clean = _grey_clean()
    noisy = _noisy(clean, 25.0)
    Image.fromarray(noisy, "L").save(tmp_path / "grey.png")
    assert main(["denoise", str(tmp_path / "grey.png"), "--out", str(tmp_path / "out"), "--device", "cpu",
                 "--precision", "fp32"]) == 0
    assert "grey: noise matched to the colour weights, sigma" in capsys.readouterr().out
    written = Image.open(tmp_path / "out" / "grey.png")
    assert written.mode == "L" and written.size == (96, 96)  # grey stays grey
    # naive: the grey channel replicated to RGB, as the file is read
    with torch.inference_mode():
        replicated = GreyThroughColour(load_model("pretrained:gaussian"), match=False)(
            torch.from_numpy(noisy).float()[None, None] / 255)
    replicated = np.round(replicated[0, 0].clamp(0, 1).numpy() * 255)
    matched, naive = _psnr(np.asarray(written), clean), _psnr(replicated, clean)
    assert matched >= naive + 10.0, (naive, matched, _psnr(noisy, clean))


def _local_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1)).eval()


def test_the_matching_noise_is_drawn_once_for_the_whole_image_then_tiled(tmp_path):
    Image.fromarray(_noisy(_grey_clean(90, 70), 20.0), "L").save(tmp_path / "g.png")
    image = read_image(tmp_path / "g.png")
    whole, how = denoise_image(_local_net(), image, CPU, tile=0)
    tiled, _ = denoise_image(_local_net(), image, CPU, tile=32, overlap=4)
    assert "noise matched" in how and torch.allclose(tiled, whole, atol=1e-5)
    again, _ = denoise_image(_local_net(), image, CPU, tile=0)
    assert torch.equal(again, whole)  # seeded from the pixels: the same file, the same output


def test_the_matched_noise_is_independent_per_channel_at_sigma_sqrt3():
    flat = torch.full((1, 256, 256), 0.5)
    noisy = flat + torch.randn(flat.shape, generator=torch.Generator().manual_seed(1)) * 10 / 255
    rgb, sigma = NoiseMatching().prepare(noisy)
    noise = (rgb - 0.5).reshape(3, -1) * 255
    assert sigma == pytest.approx(10.0, rel=0.05)
    covariance = torch.cov(noise)
    assert torch.allclose(covariance.diagonal(), torch.full((3,), 3 * sigma ** 2), rtol=0.05)
    assert covariance.fill_diagonal_(0).abs().max() < 0.05 * 3 * sigma ** 2


@pytest.mark.parametrize("sigma", [5.0, 15.0, 25.0, 50.0])
def test_the_estimator_recovers_a_known_sigma(sigma):
    clean = torch.from_numpy(_grey_clean(256, 256, seed=7)).double() / 255
    noisy = clean + torch.randn(clean.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * sigma / 255
    assert estimate_sigma(noisy) == pytest.approx(sigma, rel=0.08)
    assert estimate_sigma(clean) < 2.0  # a smooth clean image: next to no noise


def test_grey_weights_start_as_the_colour_weights_on_a_replicated_image():
    colour = load_model("pretrained:gaussian")
    grey = build(ModelConfig(channels=1)).eval()
    assert model_args(ModelConfig(channels=1)) == {"name": "unet", "channels": 1}
    grey.load_state_dict(initial_weights("pretrained:gaussian", {"name": "unet", "channels": 1}))
    image = torch.rand(2, 1, 64, 96, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        expected = colour(image.expand(-1, 3, -1, -1)).mean(dim=1, keepdim=True)
        assert torch.allclose(grey(image), expected, atol=1e-5)
    assert grey_from_colour(colour.state_dict())["enc_conv0.weight"].shape[1] == 1


def test_a_one_channel_checkpoint_takes_grey_images_directly_and_refuses_colour(tmp_path, capsys):
    grey_net = UNet(1, 1)
    grey_net.load_state_dict(initial_weights("pretrained:gaussian", {"name": "unet", "channels": 1}))
    path = save_checkpoint(tmp_path / "grey.pth", model=grey_net, model_args={"name": "unet", "channels": 1},
                           config={}, step=0, elapsed=0.0, history={}, seed=0)
    (tmp_path / "in").mkdir()
    Image.fromarray(_noisy(_grey_clean(64, 64), 25.0), "L").save(tmp_path / "in" / "g.png")
    assert main(["denoise", str(tmp_path / "in" / "g.png"), "--checkpoint", str(path), "--out", str(tmp_path / "out"),
                 "--device", "cpu"]) == 0
    assert "[grey weights]" in capsys.readouterr().out
    assert Image.open(tmp_path / "out" / "g.png").mode == "L"
    Image.fromarray(smooth_image(40, 40, 1)).save(tmp_path / "colour.png")
    code = main(["denoise", str(tmp_path / "colour.png"), "--checkpoint", str(path), "--out", str(tmp_path / "o2"),
                 "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1 and "colour.png: a colour image, but the weights are grey (1 channel)" in err


def test_grey_of_uint8_is_pillows_l_conversion():
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    ours = grey_uint8(torch.from_numpy(rgb).permute(2, 0, 1))[0].numpy()
    assert np.array_equal(ours, np.asarray(Image.fromarray(rgb).convert("L")))


def test_the_grey_route_takes_the_noise_from_a_config_held_without_reading_the_file(tmp_path, monkeypatch):
    from n2n_core.evaluation import grey as grey_module
    from n2n_core.training import checkpoint as checkpoint_module

    path = tmp_path / "gaussian.pth"
    model = build(ModelConfig("unet", width=8), seed=0)
    save_checkpoint(path, model=model, model_args=model_args(ModelConfig("unet", width=8)),
                    config={"noise": {"kind": "gaussian"}}, step=0, elapsed=0.0, history={}, seed=0, finished=True)
    assert grey_module.grey_route(path, default=False, device="cpu").match  # read from the file

    def unread(*_):
        raise AssertionError("the checkpoint was read again")

    monkeypatch.setattr(checkpoint_module, "load_checkpoint", unread)
    assert grey_module.grey_route(path, False, "cpu", config={"noise": {"kind": "gaussian"}}).match
    assert not grey_module.grey_route(path, False, "cpu", config={"noise": {"kind": "poisson"}}).match
