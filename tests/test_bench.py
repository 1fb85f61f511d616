"""`make bench` runs and writes its figures (the figures themselves are measured, not tested)."""
from __future__ import annotations

import json

from n2n_core import bench


def test_bench_writes_one_row_per_setting_with_ratios_to_float32(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--seconds", "0.01", "--crops", "16", "--models", "resnet", "--device", "cpu",
                       "--infer-size", "64", "48", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    train = [r for r in data["rows"] if r["kind"] == "train"]
    infer = [r for r in data["rows"] if r["kind"] == "infer"]
    assert [r["setting"] for r in train][:2] == ["fp32", "channels_last"]
    assert train[0]["ratio_to_fp32"] == 1.0 and infer[0]["ratio_to_fp32"] == 1.0
    assert all(r["mpix_per_s"] > 0 and r["peak_mb"] > 0 for r in data["rows"])
    assert all(0 <= r["data_share"] < 1 for r in train)
    assert "Mpix/s" in capsys.readouterr().out
