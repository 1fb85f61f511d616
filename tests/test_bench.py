"""`make bench` runs and writes its figures (the figures themselves are measured, not tested)."""
from __future__ import annotations

import json

import pytest
import torch

from n2n_core.studies import bench
from n2n_core.training.devices import fast_bf16, native_bf16
from n2n_core.training.runtime import Runtime


def test_bench_writes_one_row_per_setting_with_ratios_to_float32(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--seconds", "0.01", "--crops", "16", "--models", "resnet", "--device", "cpu",
                       "--infer-size", "64", "48", "--no-compile", "--no-busy", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    train = [r for r in data["rows"] if r["kind"] == "train"]
    infer = [r for r in data["rows"] if r["kind"] == "infer"]
    assert [r["setting"] for r in train][:2] == ["fp32", "channels_last"]
    assert "compiled" not in {r["setting"] for r in data["rows"]}
    assert train[0]["ratio_to_fp32"] == 1.0 and infer[0]["ratio_to_fp32"] == 1.0
    assert all(r["mpix_per_s"] > 0 and r["peak_mb"] > 0 for r in data["rows"])
    assert all(0 <= r["data_share"] < 1 for r in train)
    # fit's own choice at crop 16 on a CPU: channels_last, in bfloat16 where the CPU has AMX
    expected = "bf16" if fast_bf16(torch.device("cpu")) else "channels_last"
    assert [r["setting"] for r in train if r["fit_default"]] == [expected]
    assert [r["setting"] for r in infer if r["fit_default"]] == [expected]
    assert ("bf16" in {r["setting"] for r in train}) == native_bf16(torch.device("cpu"))
    assert data["cpu"]["avx2"] in (True, False) and data["default_precision"] in ("fp32", "bf16")
    printed = capsys.readouterr().out
    assert "Mpix/s" in printed and "ceiling" in printed
    assert "CPU: " in printed and "fit trains on cpu" in printed and "n2n denoise runs on cpu" in printed


def test_bench_measures_training_with_one_core_busy(monkeypatch):
    import os

    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs two cores")
    monkeypatch.delenv("N2N_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the test session runs on one thread (conftest)
    try:
        rows = dict(bench.bench_busy("resnet", 16, Runtime.resolve("cpu"), seconds=0.3, batch=2))
    finally:
        torch.set_num_threads(before)
    assert list(rows) == ["busy core, all threads", "busy core, governor", "busy core, threads - 1"]
    assert rows["busy core, all threads"]["threads"] == 2
    assert rows["busy core, threads - 1"]["threads"] == 1
    # the spinning process holds a whole core: the governor, reading /proc, has dropped a thread
    assert rows["busy core, governor"]["threads"] == 1
    assert all(r["ratio_to_idle"] > 0 and r["idle_mpix_per_s"] > 0 for r in rows.values())


def test_bench_measures_the_hardware_ceiling():
    assert bench.matmul_gflops(torch.device("cpu"), seconds=0.05) > 0.1
    # the U-Net of the paper: about 0.35 GFLOP per pixel forward, training three times that
    forward, training = bench.gflop_per_mpix("unet", False), bench.gflop_per_mpix("unet", True)
    assert forward == pytest.approx(348, rel=0.02)
    assert training == pytest.approx(3 * forward, rel=0.02)


def test_share_of_the_matmul_rate_is_flops_per_pixel_times_pixels_per_second(tmp_path):
    out = tmp_path / "bench.json"
    bench.main(["--seconds", "0.01", "--crops", "16", "--models", "resnet", "--device", "cpu",
                "--infer-size", "32", "32", "--no-compile", "--no-busy", "--json", str(out)])
    data = json.loads(out.read_text())
    row = data["rows"][0]
    rate = data["matmul_gflops"]["fp32"]
    assert row["share_of_matmul_rate"] == pytest.approx(row["mpix_per_s"] * data["gflop_per_mpix"]["resnet train"]
                                                        / rate)
