"""The fast paths of issue 5 that depend on the device: noise drawn where training runs, the
sampler's state across a resume, torch.compile. CUDA cases run where a GPU is present (the GPU
session of a release runs this file there) and are skipped elsewhere; CI has no GPU."""
from __future__ import annotations

import pytest
import torch

from n2n_core.training import devices
from n2n_core.paper import models
from n2n_core.training.checkpoint import load_checkpoint
from n2n_core.config import ModelConfig, TrainConfig
from n2n_core.data.patches import PairSampler, validation_pairs
from n2n_core.evaluation.denoise import denoise_tensor
from n2n_core.paper.noise import BernoulliNoise, GaussianNoise, PoissonNoise
from n2n_core.training.devices import compile_module
from conftest import cpu_runtime, fit_run
from n2n_core.training.runtime import infer

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
        fit_run(net, cfg, _sampler(smooth_patches[2:]), val, tmp_path / f"c{compiled}.pth", models.model_args(TINY),
            {"test": "compile"}, device=device, progress=False, precision="fp32", compile_model=compiled)
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
        assert torch.allclose(denoise_tensor(compiled, image, cpu_runtime(), tile=64, overlap=8),
                              denoise_tensor(net, image, cpu_runtime(), tile=64, overlap=8), atol=1e-5)


# ------------------------------------------------------------------------------- precision
AMX = {"name": "Xeon", "vendor": "Intel", "avx2": True, "avx512_bf16": True, "amx_bf16": True}
AVX512_BF16 = {"name": "Xeon", "vendor": "Intel", "avx2": True, "avx512_bf16": True, "amx_bf16": False}
AMD_BF16 = {"name": "EPYC", "vendor": "AMD", "avx2": True, "avx512_bf16": True, "amx_bf16": False}
AVX2 = {"name": "EPYC", "vendor": "AMD", "avx2": True, "avx512_bf16": False, "amx_bf16": False}


@pytest.mark.parametrize("features,auto", [(AMX, "bf16"), (AVX512_BF16, "fp32"), (AMD_BF16, "bf16"), (AVX2, "fp32")])
def test_auto_precision_is_bfloat16_where_the_cpu_was_measured_faster_in_it(monkeypatch, features, auto):
    monkeypatch.setattr(devices, "cpu_features", lambda: dict(features))
    cpu = torch.device("cpu")
    assert devices.fast_bf16(cpu) == (auto == "bf16")
    assert devices.resolve_precision("auto", cpu) == auto
    # asked for by name, either format is taken as it is
    assert devices.resolve_precision("fp32", cpu) == "fp32" and devices.resolve_precision("bf16", cpu) == "bf16"
    assert devices.native_bf16(cpu) == features["avx512_bf16"]


def test_the_cpu_description_names_each_feature(monkeypatch):
    assert devices.describe_cpu(AVX512_BF16) == "Xeon (AVX2, AVX512-BF16, no AMX)"
    assert devices.describe_cpu(AVX2) == "EPYC (AVX2, no AVX512-BF16, no AMX)"
    monkeypatch.setattr(devices, "cpu_features", lambda: dict(AMX))
    line = devices.describe_path(torch.device("cpu"), "bf16", torch.channels_last)
    assert line.startswith("cpu, Xeon (AVX2, AVX512-BF16, AMX): bfloat16 autocast, channels_last, ")
    assert "thread" in line


def test_features_agree_with_torch():
    features = devices.cpu_features()
    assert set(features) == {"name", "vendor", "avx2", "avx512_bf16", "amx_bf16"}
    caps = torch.cpu.get_capabilities()
    assert features["avx512_bf16"] == bool(caps["avx512_bf16"]) and features["amx_bf16"] == bool(caps["amx_bf16"])
    assert features["avx2"] == bool(caps["avx2"])


def test_a_wrong_precision_names_the_value_and_the_choices():
    with pytest.raises(ValueError, match="unknown precision 'fp16'; choose one of auto, fp32, bf16"):
        devices.resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="resolve precision 'auto' first"):
        devices.precision_dtype("auto")


def test_a_gpu_without_bfloat16_refuses_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Old GPU")
    with pytest.raises(ValueError, match="Old GPU has no bfloat16; use fp32"):
        devices.resolve_precision("bf16", torch.device("cuda"))
    assert devices.resolve_precision("auto", torch.device("cuda")) == "fp32"  # H200: bf16 measured 0.29x


def test_bfloat16_trains_channels_last_at_every_crop():
    cpu = torch.device("cpu")
    assert devices.memory_format(cpu, 256, "bf16") == torch.channels_last
    assert devices.memory_format(cpu, 256, "fp32") == torch.contiguous_format


def test_bfloat16_inference_stays_close_to_float32_and_returns_float32():
    net = models.build(ModelConfig("unet"), seed=0).eval()
    image = torch.rand(1, 3, 64, 48, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        full = infer(net, image, cpu_runtime("fp32"))
        half = infer(net, image, cpu_runtime("bf16"))
    assert half.dtype == torch.float32 and half.shape == full.shape
    assert not torch.equal(half, full)  # it did run in another format
    # bfloat16 keeps 8 bits of mantissa (0.4%): through the U-Net's 18 layers the output moves by about 1%
    assert (half - full).abs().mean() < 0.03 * full.abs().mean()


# ------------------------------------------------------------------------------------ threads
class FakeClock:
    """/proc readings for the governor: other processes use ``others`` cores, this one ``own``."""

    def __init__(self, monkeypatch):
        self.t, self.all, self.own, self.others = 1000.0, 0.0, 0.0, 0.0
        monkeypatch.setattr(devices, "_cpu_times", lambda: (self.all, self.own))
        monkeypatch.setattr(devices.time, "monotonic", lambda: self.t)

    def advance(self, seconds: float, others: float, own: float = 2.0):
        self.t += seconds
        self.all += (others + own) * seconds
        self.own += own * seconds


def test_the_governor_drops_a_thread_while_another_process_is_busy_and_comes_back(monkeypatch, restore_threads,
                                                                                   capsys, caplog):
    caplog.set_level("INFO", logger="n2n_core.threads")
    monkeypatch.delenv("N2N_THREADS", raising=False)
    torch.set_num_threads(2)
    clock = FakeClock(monkeypatch)
    governor = devices.ThreadGovernor(interval=2.0)
    assert governor.adaptive and governor.poll() == 2
    clock.advance(1.0, others=1.0)
    assert governor.poll() == 2  # not yet a whole interval
    clock.advance(1.5, others=1.0)
    assert governor.poll() == 1 and governor.others == pytest.approx(1.0)
    # logged, not printed: a notebook's output never shows it (the command line does, on stderr)
    assert "threads: 2 -> 1 (other processes use 1.0 cores)" in caplog.text
    assert "threads:" not in capsys.readouterr().out
    clock.advance(2.0, others=0.3, own=1.0)
    assert governor.poll() == 1  # between the two thresholds: no change
    clock.advance(2.0, others=0.05, own=1.0)
    assert governor.poll() == 2


def test_a_fixed_thread_count_never_changes(monkeypatch, restore_threads):
    monkeypatch.setenv("N2N_THREADS", "1")
    clock = FakeClock(monkeypatch)
    governor = devices.ThreadGovernor()
    assert not governor.adaptive and torch.get_num_threads() == 1 and "fixed" in governor.describe()
    clock.advance(3.0, others=0.0)
    assert governor.poll() == 1


def test_a_bad_thread_setting_is_named(monkeypatch, restore_threads):
    monkeypatch.setenv("N2N_THREADS", "many")
    with pytest.raises(ValueError, match="N2N_THREADS='many': give a whole number of threads"):
        devices.ThreadGovernor()
    monkeypatch.delenv("N2N_THREADS")
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        devices.ThreadGovernor(fixed=0)


def test_process_group_is_none_outside_torchrun(monkeypatch):
    from n2n_core.training.devices import process_group

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with process_group(torch.device("cpu")) as device:
        assert device is None


def test_the_command_line_shows_the_governor_s_changes_on_standard_error(monkeypatch):
    import io

    stream = io.StringIO()
    monkeypatch.setattr(devices.LOG, "handlers", [])
    devices.show_thread_changes(stream)
    devices.show_thread_changes(stream)  # once only
    devices.LOG.info("threads: %d -> %d", 2, 1)
    assert stream.getvalue() == "threads: 2 -> 1\n"
