"""`torchrun -m n2n_core train` on CPUs (gloo): two processes give what one process gives."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import write_noisy_pairs

from n2n_core.paper import models
from n2n_core.training.checkpoint import load_checkpoint


@pytest.fixture
def pairs(tmp_path):
    return write_noisy_pairs(tmp_path / "pairs", [(30, 36)] * 4)


def _train(args, out, launcher):
    common = ["-m", "n2n_core", "train", "--pairs", str(args), "--model", "resnet", "--profile", "smoke",
              "--steps", "4", "--crop", "16", "--batch-size", "4", "--val-every", "2", "--device", "cpu", "--out", str(out),
              "--precision", "fp32"]  # (bfloat16, the default on CPUs with AMX, rounds each half batch its own way)
    result = subprocess.run([sys.executable, *launcher, *common], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(pairs, tmp_path):
    _train(pairs, tmp_path / "one.pth", [])
    result = _train(pairs, tmp_path / "two.pth", ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"])
    assert "2 processes" in result.stdout
    one, two = load_checkpoint(tmp_path / "one.pth"), load_checkpoint(tmp_path / "two.pth")
    assert one["step"] == two["step"] == 4 and two["finished"]
    # Adam divides each gradient by its running size, so a float-order difference in the gradient
    # all-reduce can move a parameter whose gradient is near zero by up to lr (1e-3) per step:
    # every weight agrees within that, and the two runs differ by under 1% of how far training
    # moved the weights (measured: 0.08%)
    for name, weight in one["model"].items():
        assert torch.allclose(weight, two["model"][name], rtol=0, atol=1e-3), name
    initial = models.build(one["model_args"], seed=0).state_dict()
    norm = lambda tensors: torch.sqrt(sum((t ** 2).sum() for t in tensors))  # noqa: E731
    moved = norm(one["model"][k] - initial[k] for k in initial)
    apart = norm(one["model"][k] - two["model"][k] for k in initial)
    assert moved > 0.1 and apart < 0.01 * moved
    first_val = one["history"]["val_psnr"]
    assert len(first_val) == 2 and two["history"]["val_psnr"] == pytest.approx(first_val, abs=1e-3)


def test_a_batch_that_does_not_split_over_the_processes_is_refused(pairs, tmp_path):
    common = ["-m", "n2n_core", "train", "--pairs", str(pairs), "--model", "resnet", "--profile", "smoke",
              "--steps", "2", "--crop", "16", "--batch-size", "3", "--device", "cpu", "--out", str(tmp_path / "x.pth")]
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             *common], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "batch_size 3 does not split over 2 processes" in result.stderr
