"""`torchrun -m n2n_core train` on CPUs (gloo): two processes give what one process gives."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import smooth_image, write_png

from n2n_core import models
from n2n_core.checkpoint import load_checkpoint


@pytest.fixture
def pairs(tmp_path):
    root = tmp_path / "pairs"
    for i in range(4):
        clean = smooth_image(30, 36, seed=i).astype(float)
        for sub, seed in (("a", 10 + i), ("b", 20 + i)):
            noisy = clean + np.random.default_rng(seed).normal(0, 20, clean.shape)
            write_png(root / sub / f"s{i}.png", np.clip(np.round(noisy), 0, 255).astype(np.uint8))
    return root


def _train(args, out, launcher):
    common = ["-m", "n2n_core", "train", "--pairs", str(args), "--model", "resnet", "--profile", "smoke",
              "--steps", "4", "--crop", "16", "--batch-size", "4", "--val-every", "2", "--device", "cpu", "--out", str(out)]
    result = subprocess.run([sys.executable, *launcher, *common], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(pairs, tmp_path):
    _train(pairs, tmp_path / "one.pth", [])
    result = _train(pairs, tmp_path / "two.pth", ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"])
    assert "2 processes" in result.stdout
    one, two = load_checkpoint(tmp_path / "one.pth"), load_checkpoint(tmp_path / "two.pth")
    assert one["step"] == two["step"] == 4 and two["finished"]
    for name, weight in one["model"].items():
        assert torch.allclose(weight, two["model"][name], rtol=1e-4, atol=1e-6), name
    # training moved the weights: the comparison is not between two untrained models
    initial = models.build(one["model_args"], seed=0).state_dict()
    assert any(not torch.allclose(initial[name], w, atol=1e-4) for name, w in one["model"].items())
    first_val = one["history"]["val_psnr"]
    assert len(first_val) == 2 and two["history"]["val_psnr"] == pytest.approx(first_val, abs=1e-3)


def test_a_batch_that_does_not_split_over_the_processes_is_refused(pairs, tmp_path):
    common = ["-m", "n2n_core", "train", "--pairs", str(pairs), "--model", "resnet", "--profile", "smoke",
              "--steps", "2", "--crop", "16", "--batch-size", "3", "--device", "cpu", "--out", str(tmp_path / "x.pth")]
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             *common], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "batch_size 3 does not split over 2 processes" in result.stderr
