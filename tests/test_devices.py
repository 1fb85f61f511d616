"""The fast paths of issue 5 that depend on the device: noise drawn where training runs, the
sampler's state across a resume, torch.compile. CUDA cases run where a GPU is present (the GPU
session of a release runs this file there) and are skipped elsewhere; CI has no GPU."""
from __future__ import annotations

import pytest
import torch

from n2n_core import models
from n2n_core.checkpoint import load_checkpoint
from n2n_core.config import ModelConfig, TrainConfig
from n2n_core.data import PairSampler, validation_pairs
from n2n_core.denoise import denoise_tensor
from n2n_core.noise import BernoulliNoise, GaussianNoise, PoissonNoise
from n2n_core.devices import compile_module
from n2n_core.train import fit

TINY = ModelConfig("resnet", depth=4, width=8)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _sampler(patches, seed=0, noise=None, target="noisy"):
    return PairSampler(patches, 16, 4, noise or GaussianNoise(25), target, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("device", DEVICES)
def test_a_restored_sampler_draws_what_the_original_draws_next(smooth_patches, device):
    original = _sampler(smooth_patches)
    original.use_device(device)
    for _ in range(3):
        original.sample()
    state = original.get_state()
    expected = [original.sample() for _ in range(2)]

    other = _sampler(smooth_patches, seed=12345)  # another seed: everything must come from the state
    other.use_device(device)
    other.set_state(state)
    for want in expected:
        got = other.sample()
        assert got.input.device.type == device
        assert torch.equal(got.input, want.input) and torch.equal(got.target, want.target)


def test_on_a_cpu_the_sampler_draws_everything_from_its_one_generator(smooth_patches):
    sampler = _sampler(smooth_patches)
    sampler.use_device("cpu")
    assert sampler.noise_generator is sampler.generator
    assert isinstance(sampler.get_state(), torch.Tensor)  # the checkpoint format of earlier versions


@needs_cuda
def test_on_a_gpu_noise_is_drawn_there_and_the_checkpoint_keeps_both_states(smooth_patches):
    sampler = _sampler(smooth_patches)
    sampler.use_device("cuda")
    assert sampler.noise_generator.device.type == "cuda"
    batch = sampler.sample()
    assert batch.input.is_cuda and batch.target.is_cuda and batch.clean.is_cuda
    state = sampler.get_state()
    assert set(state) == {"crops", "noise", "noise_device"} and state["noise_device"] == "cuda"


@needs_cuda
@pytest.mark.parametrize("noise,check", [
    (GaussianNoise(25), lambda clean, noisy: abs(float((noisy - clean).std()) * 255 / 25 - 1) < 0.02),
    (PoissonNoise(30), lambda clean, noisy: abs(float((noisy - clean).mean())) < 2e-3),
    (BernoulliNoise(0.5), lambda clean, noisy: abs(float((noisy == 0).float().mean()) - 0.5) < 0.02),
])
def test_noise_drawn_on_a_gpu_has_the_model_statistics(noise, check):
    clean = torch.full((8, 3, 128, 128), 0.5, device="cuda")
    noisy = noise(clean, torch.Generator("cuda").manual_seed(0))
    assert noisy.is_cuda and check(clean, noisy)


@pytest.mark.parametrize("device", DEVICES)
def test_fit_through_torch_compile_equals_fit_without_it(tmp_path, smooth_patches, device):
    val = validation_pairs(smooth_patches[:2], GaussianNoise(25), seed=0)
    cfg = TrainConfig(crop=16, batch_size=4, lr=1e-3, max_steps=3, val_every=3)
    nets = []
    for compiled in (False, True):
        net = models.build(TINY, seed=0)
        fit(net, cfg, _sampler(smooth_patches[2:]), val, tmp_path / f"c{compiled}.pth", models.model_args(TINY),
            {"test": "compile"}, device=device, progress=False, amp=False, compile_model=compiled)
        nets.append(net.cpu())
    assert load_checkpoint(tmp_path / "cTrue.pth")["finished"]
    moved = sum((p - q).abs().sum() for p, q in zip(nets[0].parameters(), models.build(TINY, seed=0).parameters()))
    assert moved > 0
    for p, q in zip(nets[0].parameters(), nets[1].parameters()):
        # 3 Adam steps of lr 1e-3: float-order differences may move a near-zero-gradient weight by up to lr
        assert torch.allclose(p, q, atol=3e-3)


def test_a_compiled_model_denoises_like_the_plain_one_at_several_sizes():
    net = models.build(TINY, seed=0).eval()
    compiled = compile_module(net)
    for shape in [(3, 40, 56), (3, 64, 64), (3, 96, 80)]:
        image = torch.rand(shape, generator=torch.Generator().manual_seed(shape[1]))
        assert torch.allclose(denoise_tensor(compiled, image, tile=64, overlap=8),
                              denoise_tensor(net, image, tile=64, overlap=8), atol=1e-5)
