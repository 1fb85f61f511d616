"""Training: the learning-rate ramp-down, fit_run(), validation against clean images, checkpoints and resume."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from n2n_core.paper import models
from n2n_core.training import train as train_module
from n2n_core.training.checkpoint import load_checkpoint
from n2n_core.config import ModelConfig, TrainConfig
from n2n_core.data.patches import PairSampler, validation_pairs
from n2n_core.paper.metrics import psnr
from n2n_core.paper.noise import GaussianNoise
from n2n_core.training.devices import describe_device, memory_format, resolve_device, resolve_precision
from n2n_core.training.train import History, learning_rate, validate
from conftest import cpu_runtime, fit_run

TINY = ModelConfig("resnet", depth=4, width=8)
RUN_CONFIG = {"experiment": "unit-test", "lr": 1e-3, "sigma": 25.0}


# ---------------------------------------------------------------------------------- learning rate
@pytest.mark.parametrize("progress", [0.0, 0.1, 0.5, 0.69, 0.7])
def test_learning_rate_is_constant_for_the_first_70_percent(progress):
    assert learning_rate(1e-3, progress, 0.3) == pytest.approx(1e-3, rel=1e-9)


@pytest.mark.parametrize("progress", [0.7 + 0.3 * t for t in (0.1, 0.25, 0.5, 0.75, 0.9)])
def test_learning_rate_follows_the_papers_cosine_ramp(progress):
    t = (progress - 0.7) / 0.3
    expected = 2e-3 * (0.5 + math.cos(math.pi * t) / 2) ** 2  # PAPER.md, training recipe
    assert learning_rate(2e-3, progress, 0.3) == pytest.approx(expected, rel=1e-9)


def test_learning_rate_hand_values():
    assert learning_rate(1.0, 0.85, 0.3) == pytest.approx(0.25)  # t = 1/2: (1/2)^2
    assert learning_rate(1.0, 0.8, 0.3) == pytest.approx(0.5625)  # t = 1/3: (3/4)^2
    assert learning_rate(1.0, 0.9, 0.3) == pytest.approx(0.0625)  # t = 2/3: (1/4)^2


def test_learning_rate_reaches_zero_at_the_end_and_decreases():
    assert learning_rate(1e-3, 1.0, 0.3) == pytest.approx(0.0, abs=1e-15)
    assert learning_rate(1e-3, 1.5, 0.3) == pytest.approx(0.0, abs=1e-15)  # past the end: stays 0
    values = [learning_rate(1e-3, 0.7 + 0.3 * i / 50, 0.3) for i in range(51)]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_learning_rate_without_rampdown_is_constant():
    assert learning_rate(1e-3, 0.99, 0.0) == 1e-3


# ---------------------------------------------------------------------------------------- helpers
@pytest.fixture
def val_pairs(smooth_patches):
    return validation_pairs(smooth_patches[:6], GaussianNoise(25), seed=0)


def _sampler(patches, cls=PairSampler, seed=0, crop=16, batch=4, target="noisy", **kwargs):
    return cls(patches, crop, batch, GaussianNoise(25), target, torch.Generator().manual_seed(seed), **kwargs)


class CountingSampler(PairSampler):
    """Counts its batches; raises ``error`` at call number ``fail_at`` (None: never)."""

    def __init__(self, *args, fail_at=None, error=KeyboardInterrupt, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls, self.fail_at, self.error = 0, fail_at, error

    def sample(self):
        self.calls += 1
        if self.calls == self.fail_at:
            raise self.error("stop")
        return super().sample()


def _fit(model, cfg, sampler, val, path, run_config=RUN_CONFIG, model_config=TINY):
    return fit_run(model, cfg, sampler, val, path, models.model_args(model_config), run_config,
               device="cpu", progress=False)


def _states_close(a: torch.nn.Module, b: torch.nn.Module, **tol) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.allclose(sa[k], sb[k], **tol) for k in sa)


# -------------------------------------------------------------------------------------------- fit
def test_fit_improves_validation_psnr_over_the_noisy_input(tmp_path, smooth_patches, val_pairs):
    # (over seeds 0..7 these settings gain 2.2 to 5.2 dB; seed 1 gains about 5)
    model = models.build(TINY, seed=1)
    cfg = TrainConfig(crop=16, batch_size=8, lr=2e-3, max_steps=150, val_every=75, seed=1)
    history = _fit(model, cfg, _sampler(smooth_patches[6:], seed=1, batch=8), val_pairs, tmp_path / "improve.pth")
    assert history.val_step == [75, 150]
    noisy_psnr = history.val_psnr_input
    assert noisy_psnr == pytest.approx(20 * math.log10(255 / 25), abs=0.3)
    assert history.val_psnr[0] > noisy_psnr
    assert history.val_psnr[-1] > noisy_psnr + 1.5, history.val_psnr


def test_fit_validates_against_the_clean_images(tmp_path, smooth_patches, val_pairs):
    noisy, clean = val_pairs
    model = models.build(TINY, seed=0)
    cfg = TrainConfig(crop=16, batch_size=2, max_steps=1, val_every=1)
    history = _fit(model, cfg, _sampler(smooth_patches, batch=2), val_pairs, tmp_path / "v.pth")
    assert history.val_psnr_input == pytest.approx(psnr(noisy, clean).mean().item())
    # validation runs in the format of the run (bfloat16 on CPUs with AMX)
    assert history.val_psnr == [pytest.approx(validate(model, noisy, clean, cpu_runtime(history.precision)))]


def test_validate_is_the_mean_of_per_image_psnr_and_keeps_the_mode():
    clean = torch.full((2, 3, 12, 12), 100 / 255)
    noisy = clean + torch.tensor([1.0, 4.0]).view(2, 1, 1, 1) / 255  # 1 and 4 levels off
    model = models.build(TINY, seed=0).train()  # REDNet starts as the identity
    value = validate(model, noisy, clean, cpu_runtime(), batch=1)
    assert value == pytest.approx((20 * math.log10(255) + 20 * math.log10(255 / 4)) / 2, abs=1e-3)
    assert model.training


def test_fit_logs_the_learning_rate_schedule_and_uses_adam_of_the_paper(tmp_path, smooth_patches, val_pairs):
    cfg = TrainConfig(crop=16, batch_size=2, lr=1e-3, max_steps=10, val_every=1, rampdown=0.3)
    path = tmp_path / "lr.pth"
    history = _fit(models.build(TINY, seed=0), cfg, _sampler(smooth_patches, batch=2), val_pairs, path)
    assert history.step == list(range(1, 11))
    # step s trains at the progress (s - 1) / 10 it starts from
    expected = [learning_rate(1e-3, (s - 1) / 10, 0.3) for s in range(1, 11)]
    assert history.lr == pytest.approx(expected, rel=1e-9)
    assert history.lr[-2] == pytest.approx(1e-3 * 0.5625) and history.lr[-1] == pytest.approx(1e-3 * 0.0625)
    group = load_checkpoint(path)["optimizer"]["param_groups"][0]
    assert tuple(group["betas"]) == (0.9, 0.99) and group["eps"] == 1e-8  # PAPER.md, training recipe
    assert all(math.isfinite(v) and v > 0 for v in history.train_loss)


def test_fit_writes_a_finished_self_describing_checkpoint(tmp_path, smooth_patches, val_pairs):
    path = tmp_path / "ckpt" / "run.pth"
    cfg = TrainConfig(crop=16, batch_size=2, max_steps=3, val_every=2, seed=4)
    model = models.build(TINY, seed=0)
    history = _fit(model, cfg, _sampler(smooth_patches, batch=2), val_pairs, path)
    state = load_checkpoint(path)
    assert state["finished"] and state["step"] == 3 and state["seed"] == 4
    assert state["config"] == RUN_CONFIG and state["model_args"] == models.model_args(TINY)
    assert History.from_dict(state["history"]) == history
    assert history.val_step == [2, 3]  # the last step is always validated
    assert [p.name for p in path.parent.iterdir()] == ["run.pth"]  # no temporary files left


class _FakeClock:
    """Stands in for the time module of n2n_core.train: every reading is 10 ms after the previous one,
    so a wall-clock budget gives the same run however busy the machine is."""

    def __init__(self):
        self.now = 1000.0

    def monotonic(self) -> float:
        self.now += 0.01
        return self.now


def test_fit_stops_at_a_wall_clock_budget(tmp_path, smooth_patches, val_pairs, monkeypatch):
    monkeypatch.setattr(train_module, "time", _FakeClock())
    cfg = TrainConfig(crop=16, batch_size=2, lr=1e-3, max_seconds=0.5, val_every=10_000)
    history = _fit(models.build(TINY, seed=0), cfg, _sampler(smooth_patches, batch=2), val_pairs,
                   tmp_path / "time.pth")
    state = load_checkpoint(tmp_path / "time.pth")
    assert state["finished"] and state["elapsed_seconds"] >= 0.5
    assert 5 <= state["step"] < 50  # at least one clock reading per step: at most 50 steps in 0.5 s
    assert history.lr[-1] < 0.1e-3  # the ramp-down follows the time budget: near 0 at the end


def test_resume_after_an_interruption_equals_an_uninterrupted_run(tmp_path, smooth_patches, val_pairs, capsys):
    cfg = TrainConfig(crop=16, batch_size=4, lr=1e-2, max_steps=6, val_every=2, checkpoint_every_seconds=0.0)
    initial = models.build(TINY, seed=0)

    reference = models.build(TINY, seed=0)
    ref_history = _fit(reference, cfg, _sampler(smooth_patches), val_pairs, tmp_path / "reference.pth")
    assert not _states_close(reference, initial)  # training changed the weights

    path = tmp_path / "interrupted.pth"
    with pytest.raises(KeyboardInterrupt):
        _fit(models.build(TINY, seed=0), cfg, _sampler(smooth_patches, CountingSampler, fail_at=4), val_pairs, path)
    state = load_checkpoint(path)
    assert state["step"] == 3 and not state["finished"]
    capsys.readouterr()

    # a fresh process: other initial weights and another sampler seed; both must come from the checkpoint
    resumed = models.build(TINY, seed=99)
    sampler = _sampler(smooth_patches, CountingSampler, seed=12345)
    history = _fit(resumed, cfg, sampler, val_pairs, path)
    assert "resuming at step 3" in capsys.readouterr().out
    assert sampler.calls == 3  # steps 4, 5 and 6 only
    final = load_checkpoint(path)
    assert final["step"] == 6 and final["finished"]
    assert history.val_step == ref_history.val_step == [2, 4, 6]
    assert history.val_psnr == pytest.approx(ref_history.val_psnr, abs=1e-4)
    assert _states_close(resumed, reference, rtol=1e-5, atol=1e-7)


def test_a_finished_checkpoint_returns_at_once(tmp_path, smooth_patches, val_pairs, capsys):
    cfg = TrainConfig(crop=16, batch_size=2, max_steps=4, val_every=2)
    path = tmp_path / "done.pth"
    trained = models.build(TINY, seed=0)
    first = _fit(trained, cfg, _sampler(smooth_patches, batch=2), val_pairs, path)
    modified = path.stat().st_mtime_ns

    again = models.build(TINY, seed=7)
    sampler = _sampler(smooth_patches, CountingSampler, batch=2, fail_at=1, error=AssertionError)
    second = _fit(again, cfg, sampler, val_pairs, path)
    assert sampler.calls == 0  # no training step at all
    assert second == first and "already trained" in capsys.readouterr().out
    assert _states_close(again, trained, rtol=0, atol=0)  # the trained weights were loaded
    assert path.stat().st_mtime_ns == modified  # and the checkpoint was not rewritten


def test_a_checkpoint_of_another_configuration_is_refused(tmp_path, smooth_patches, val_pairs):
    cfg = TrainConfig(crop=16, batch_size=2, max_steps=2, val_every=2)
    path = tmp_path / "other.pth"
    _fit(models.build(TINY, seed=0), cfg, _sampler(smooth_patches, batch=2), val_pairs, path)
    with pytest.raises(ValueError, match=r"configuration \(sigma was 25.0, now 50.0\)"):
        _fit(models.build(TINY, seed=0), cfg, _sampler(smooth_patches, batch=2), val_pairs, path,
             run_config={**RUN_CONFIG, "sigma": 50.0})
    with pytest.raises(ValueError, match=r"configuration \(extra was None, now 1\)"):
        _fit(models.build(TINY, seed=0), cfg, _sampler(smooth_patches, batch=2), val_pairs, path,
             run_config={**RUN_CONFIG, "extra": 1})
    # a key that differs only where it decides nothing (when checkpoints are written) is not named
    recorded = {**RUN_CONFIG, "train": dataclasses.asdict(cfg)}
    _fit(models.build(TINY, seed=0), cfg, _sampler(smooth_patches, batch=2), val_pairs, tmp_path / "t.pth", recorded)
    with pytest.raises(ValueError, match=r"configuration \(extra was None, now 1\)"):
        _fit(models.build(TINY, seed=0), cfg, _sampler(smooth_patches, batch=2), val_pairs, tmp_path / "t.pth",
             run_config={**recorded, "extra": 1, "train": {**recorded["train"], "checkpoint_every_seconds": 1.0}})
    bigger = ModelConfig("resnet", depth=6, width=8)
    with pytest.raises(ValueError, match="model_args"):
        _fit(models.build(bigger, seed=0), cfg, _sampler(smooth_patches, batch=2), val_pairs, path,
             model_config=bigger)


def test_a_field_since_removed_resumes_at_its_off_value_only():
    recorded = {**RUN_CONFIG, "train": dataclasses.asdict(TrainConfig(crop=16, batch_size=2, max_steps=2))}
    assert "focus" not in recorded["train"]  # a field of an earlier version, gone from TrainConfig
    off = {**recorded, "train": {**recorded["train"], "focus": False}}
    on = {**recorded, "train": {**recorded["train"], "focus": True}}
    assert train_module.same_run(off, recorded)  # trained as this version trains
    assert not train_module.same_run(on, recorded)  # trained another way: another run
    assert not train_module.same_run({**off, "train": {**off["train"], "unknown": 1}}, recorded)


def test_fit_with_clean_targets_trains_too(tmp_path, smooth_patches, val_pairs):
    model = models.build(TINY, seed=1)
    cfg = TrainConfig(target="clean", crop=16, batch_size=8, lr=2e-3, max_steps=100, val_every=100)
    history = _fit(model, cfg, _sampler(smooth_patches[6:], seed=1, batch=8, target="clean"), val_pairs,
                   tmp_path / "clean.pth")
    assert history.val_psnr[-1] > history.val_psnr_input + 1.5, history.val_psnr


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_memory_format_follows_the_bench():
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert memory_format(cpu, 64) == torch.channels_last
    assert memory_format(cpu, 128) == torch.contiguous_format  # 0.58x-0.92x in channels_last on an AVX2 EPYC
    assert memory_format(cpu, 256) == torch.contiguous_format  # 0.71x in channels_last
    assert memory_format(gpu, 256) == torch.channels_last


@pytest.mark.parametrize("crop", [16, 136])
def test_fit_trains_in_the_chosen_layout(tmp_path, crop):
    # channels_last at 16 px; at 136 px NCHW in float32, channels_last where the CPU trains in bfloat16
    layout = memory_format(torch.device("cpu"), crop, resolve_precision("auto", "cpu"))
    assert layout == torch.channels_last or crop == 136
    patches = torch.randint(0, 256, (4, 3, crop, crop), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    sampler = PairSampler(patches, crop, 1, GaussianNoise(25), "noisy", torch.Generator().manual_seed(0))
    net = models.build(TINY, seed=0)
    val = validation_pairs(patches[:1], GaussianNoise(25), 0)
    fit_run(net, TrainConfig(crop=crop, batch_size=1, max_steps=1), sampler, val, tmp_path / "c.pth",
        models.model_args(TINY), RUN_CONFIG, device="cpu", progress=False)
    weight = next(p for p in net.parameters() if p.dim() == 4)
    assert weight.is_contiguous(memory_format=layout)


# ------------------------------------------------------------------------------------ precision
def test_fit_in_bfloat16_records_it_and_learns_like_float32(tmp_path, smooth_patches, val_pairs):
    cfg = TrainConfig(crop=16, batch_size=8, lr=2e-3, max_steps=60, val_every=60, seed=1)
    histories = {}
    for precision in ("fp32", "bf16"):
        model = models.build(TINY, seed=1)
        histories[precision] = fit_run(model, cfg, _sampler(smooth_patches[6:], seed=1, batch=8), val_pairs,
                                   tmp_path / f"{precision}.pth", models.model_args(TINY), RUN_CONFIG,
                                   device="cpu", progress=False, precision=precision)
        assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay float32
        assert load_checkpoint(tmp_path / f"{precision}.pth")["history"]["precision"] == precision
    fp32, bf16 = histories["fp32"], histories["bf16"]
    assert bf16.precision == "bf16" and fp32.precision == "fp32"
    assert bf16.val_psnr[-1] > bf16.val_psnr_input + 1.0
    assert abs(bf16.val_psnr[-1] - fp32.val_psnr[-1]) < 0.5, (bf16.val_psnr, fp32.val_psnr)


def test_a_resumed_run_keeps_its_precision_and_refuses_another(tmp_path, smooth_patches, val_pairs, capsys):
    cfg = TrainConfig(crop=16, batch_size=4, lr=1e-3, max_steps=6, val_every=3)
    path = tmp_path / "run.pth"
    sampler = _sampler(smooth_patches, cls=CountingSampler, fail_at=4)
    with pytest.raises(KeyboardInterrupt):
        fit_run(models.build(TINY, seed=0), dataclasses.replace(cfg, checkpoint_every_seconds=0.0), sampler, val_pairs,
            path, models.model_args(TINY), RUN_CONFIG, device="cpu", progress=False, precision="bf16")
    assert load_checkpoint(path)["history"]["precision"] == "bf16"
    with pytest.raises(train_module.ConfigMismatch, match="was started in precision bf16, not fp32"):
        fit_run(models.build(TINY, seed=0), cfg, _sampler(smooth_patches), val_pairs, path, models.model_args(TINY),
            RUN_CONFIG, device="cpu", progress=False, precision="fp32")
    history = fit_run(models.build(TINY, seed=0), dataclasses.replace(cfg, checkpoint_every_seconds=0.0),
                  _sampler(smooth_patches), val_pairs, path, models.model_args(TINY), RUN_CONFIG, device="cpu",
                  progress=False, precision="auto")
    assert history.precision == "bf16" and "resuming at step 3" in capsys.readouterr().out
    assert load_checkpoint(path)["finished"]


def test_fit_says_where_and_how_it_trains(tmp_path, smooth_patches, val_pairs, capsys):
    cfg = TrainConfig(crop=16, batch_size=4, lr=1e-3, max_steps=2, val_every=2)
    _fit(models.build(TINY, seed=0), cfg, _sampler(smooth_patches), val_pairs, tmp_path / "say.pth")
    printed = capsys.readouterr().out
    assert "say.pth: training on cpu, " in printed and ("float32" in printed or "bfloat16" in printed)
    hardware = load_checkpoint(tmp_path / "say.pth")["history"]["hardware"]
    assert hardware == describe_device(torch.device("cpu")) and "AVX2" in hardware


# ---------------------------------------------------------------- moving average, chunks (make pretrained)
def test_fit_keeps_a_moving_average_validates_and_returns_it(tmp_path, smooth_patches, val_pairs):
    from n2n_core.training.checkpoint import load_checkpoint, load_model

    path = tmp_path / "ema.pth"
    model = models.build(TINY, seed=0)
    cfg = TrainConfig(crop=16, batch_size=2, lr=1e-2, max_steps=4, val_every=2, ema=0.5)
    history = _fit(model, cfg, _sampler(smooth_patches, batch=2), val_pairs, path)
    state = load_checkpoint(path)
    assert not all(torch.equal(state["ema"][k], state["model"][k]) for k in state["model"])
    assert all(torch.equal(v, state["ema"][k]) for k, v in model.state_dict().items())  # the average comes back
    assert all(torch.equal(v, state["ema"][k]) for k, v in load_model(path).state_dict().items())
    noisy, clean = val_pairs
    assert history.val_psnr[-1] == pytest.approx(validate(model, noisy, clean, cpu_runtime(history.precision)))


def test_fit_in_chunks_resumes_and_may_change_precision_when_told(tmp_path, smooth_patches, val_pairs):
    path = tmp_path / "chunks.pth"
    cfg = TrainConfig(crop=16, batch_size=2, max_steps=3, val_every=3)
    args = (models.model_args(TINY), RUN_CONFIG)
    history = fit_run(models.build(TINY, seed=0), cfg, _sampler(smooth_patches, batch=2), val_pairs, path, *args,
                  device="cpu", progress=False, chunk_seconds=0.0, precision="fp32")
    assert [(c["start_step"], c["end_step"], c["precision"]) for c in history.chunks] == [(0, 1, "fp32")]
    with pytest.raises(train_module.ConfigMismatch, match="was started in precision fp32"):
        fit_run(models.build(TINY, seed=0), cfg, _sampler(smooth_patches, batch=2), val_pairs, path, *args,
            device="cpu", progress=False, precision="bf16")
    history = fit_run(models.build(TINY, seed=0), cfg, _sampler(smooth_patches, batch=2), val_pairs, path, *args,
                  device="cpu", progress=False, precision="bf16", keep_precision=False)
    assert [(c["start_step"], c["end_step"], c["precision"]) for c in history.chunks] == [(0, 1, "fp32"), (1, 3, "bf16")]
    assert history.precision == "bf16" and history.step[-1] == 3
