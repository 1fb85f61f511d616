"""Training is never thrown away: SIGINT and SIGTERM write a checkpoint at the current step (real
signals sent to a real `n2n train` process), the rerun resumes and ends with the weights of an
uninterrupted run; `--overwrite` keeps the old file until the new run has one; an unwritable `--out`
is refused before step 1."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from n2n_core.paper import models
from n2n_core.__main__ import main
from n2n_core.training.checkpoint import load_checkpoint
from n2n_core.config import ModelConfig, TrainConfig
from n2n_core.data.patches import PairSampler, validation_pairs
from n2n_core.paper.noise import GaussianNoise
from conftest import fit_run

STEPS = 400
ROOT = Path(__file__).resolve().parent.parent


def _train_command(pairs: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "n2n_core", "train", "--pairs", str(pairs), "--model", "resnet", "--profile", "smoke",
            "--steps", str(STEPS), "--crop", "16", "--batch-size", "2", "--val-every", str(STEPS), "--seed", "3",
            "--device", "cpu", "--checkpoint-every", "1000", "--out", str(out)]


def _as_from_a_terminal() -> None:
    """In the child before it starts: Ctrl-C acts as it does for a command typed in a terminal, also
    when this test runs in a background job, whose commands start with SIGINT ignored (a command
    started so keeps ignoring it, as it should)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _env(tmp_path: Path) -> dict:
    return {**os.environ, "N2N_THREADS": "1", "N2N_OUTPUT_DIR": str(tmp_path / "output"), "PYTHONUNBUFFERED": "1"}


def _run_until(command: list[str], env: dict, step: int | None, signum: int | None) -> tuple[int, str]:
    """Run ``command``; once its progress bar shows ``step`` or more, send ``signum``. Returns the exit
    status and what it wrote (stdout, then stderr)."""
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_as_from_a_terminal)
    seen, sent = bytearray(), threading.Event()

    def watch():
        while chunk := proc.stderr.read1(4096):
            seen.extend(chunk)
            done = [int(n) for n in re.findall(rb"(\d+)/%d" % STEPS, bytes(seen[-400:]))]
            if signum is not None and not sent.is_set() and done and max(done) >= step:
                proc.send_signal(signum)
                sent.set()

    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    printed = proc.stdout.read()
    code = proc.wait(timeout=300)
    reader.join(timeout=10)
    return code, printed.decode(errors="replace") + seen.decode(errors="replace")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A pairs folder and the final weights of an uninterrupted run on it."""
    from conftest import write_noisy_pairs

    tmp = tmp_path_factory.mktemp("reference")
    pairs = write_noisy_pairs(tmp / "pairs", [(30, 34)] * 3)
    out = tmp / "whole.pth"
    code, err = _run_until(_train_command(pairs, out), _env(tmp), None, None)
    assert code == 0, err[-2000:]
    return pairs, load_checkpoint(out)


@pytest.mark.parametrize("signum,after", [(signal.SIGINT, 1), (signal.SIGTERM, 1), (signal.SIGINT, 150)])
def test_a_signal_writes_a_checkpoint_and_the_rerun_ends_as_an_uninterrupted_run(reference, tmp_path, signum, after):
    pairs, whole = reference
    out = tmp_path / "run.pth"
    command, env = _train_command(pairs, out), _env(tmp_path)
    code, err = _run_until(command, env, after, signum)
    assert code == 128 + signum, err[-2000:]
    state = load_checkpoint(out)  # written at the signal: the periodic checkpoint is 1000 s away
    assert after <= state["step"] < STEPS and not state["finished"]
    assert f"interrupted at step {state['step']}: {out} holds it; the same command resumes" in err
    assert "Traceback" not in err
    code, err = _run_until(command, env, None, None)
    assert code == 0 and f"resuming at step {state['step']}" in err, err[-2000:]
    final = load_checkpoint(out)
    assert final["finished"] and final["step"] == STEPS
    for name, value in whole["model"].items():
        assert torch.equal(final["model"][name], value), name


# ------------------------------------------------------------------------- in-process mechanisms
TINY = ModelConfig("resnet", depth=4, width=8)


class FailingSampler(PairSampler):
    def __init__(self, *args, fail_at: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls, self.fail_at = 0, fail_at

    def sample(self):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("the machine fell over")
        return super().sample()


def test_a_fresh_run_keeps_the_old_checkpoint_until_it_writes_its_own(tmp_path, smooth_patches):
    path = tmp_path / "model.pth"
    val = validation_pairs(smooth_patches[:4], GaussianNoise(25), seed=0)
    cfg = TrainConfig(crop=16, batch_size=2, max_steps=3, val_every=3)

    def sampler(**kwargs):
        cls = FailingSampler if kwargs else PairSampler
        return cls(smooth_patches, 16, 2, GaussianNoise(25), "noisy", torch.Generator().manual_seed(0), **kwargs)

    fit_run(models.build(TINY, seed=0), cfg, sampler(), val, path, models.model_args(TINY), {"run": 1}, device="cpu",
        progress=False)
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="fell over"):
        fit_run(models.build(TINY, seed=1), cfg, sampler(fail_at=2), val, path, models.model_args(TINY), {"run": 2},
            device="cpu", progress=False, fresh=True)
    assert path.read_bytes() == before  # the crash came before the new run's first checkpoint
    fit_run(models.build(TINY, seed=1), cfg, sampler(), val, path, models.model_args(TINY), {"run": 2}, device="cpu",
        progress=False, fresh=True)
    assert load_checkpoint(path)["config"] == {"run": 2}


@pytest.mark.parametrize("where,message", [
    ("proc", "cannot write to this folder"),
    ("folder", "is a folder; give --out a file path such as"),
])
def test_an_unwritable_out_is_refused_before_training(tmp_path, capsys, where, message):
    from conftest import write_noisy_pairs

    pairs = write_noisy_pairs(tmp_path / "pairs", [(30, 34)] * 3)
    out = Path("/proc/n2n/model.pth") if where == "proc" else tmp_path / "a_folder"
    if where == "folder":
        out.mkdir()
    started = time.monotonic()
    code = main(["train", "--pairs", str(pairs), "--profile", "smoke", "--steps", "100000", "--out", str(out),
                 "--device", "cpu", *(["--overwrite"] if where == "folder" else [])])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert time.monotonic() - started < 30  # refused at once, not after 100000 steps


def test_checkpoint_every_may_change_when_a_run_resumes(tmp_path, smooth_patches, capsys):
    import dataclasses

    path = tmp_path / "m.pth"
    val = validation_pairs(smooth_patches[:4], GaussianNoise(25), seed=0)

    def run(every: float, **kwargs):
        cfg = TrainConfig(crop=16, batch_size=2, max_steps=3, val_every=3, checkpoint_every_seconds=every)
        sampler = PairSampler(smooth_patches, 16, 2, GaussianNoise(25), "noisy", torch.Generator().manual_seed(0))
        return fit_run(models.build(TINY, seed=0), cfg, sampler, val, path, models.model_args(TINY),
                   {"train": dataclasses.asdict(cfg)}, device="cpu", progress=False, **kwargs)

    run(5.0, chunk_seconds=0.0)  # stops after step 1
    assert run(50.0).step[-1] == 3 and "resuming at step 1" in capsys.readouterr().out
    assert main(["train", "--clean", str(tmp_path), "--checkpoint-every", "0"]) == 2
    assert "--checkpoint-every must be > 0 seconds, got 0.0" in capsys.readouterr().err


def test_ctrl_c_while_the_command_starts_is_one_line(tmp_path):
    """The command line loads torch inside main(): a Ctrl-C while it loads (here 0.5 s after the start,
    or later, during the work itself: a training run far longer than the test, so that a slow
    machine cannot finish it first) ends with one line and status 130, not a traceback."""
    import sys as _sys

    from conftest import smooth_image, write_png

    assert "torch" not in subprocess.run([_sys.executable, "-c", "import sys, n2n_core.__main__; "
                                          "print(sorted(m for m in sys.modules if m in ('torch', 'numpy')))"],
                                         cwd=ROOT, capture_output=True, text=True).stdout
    for i in range(2):
        write_png(tmp_path / "clean" / f"c{i}.png", smooth_image(64, 64, seed=i))
    proc = subprocess.Popen([sys.executable, "-m", "n2n_core", "train", "--clean", str(tmp_path / "clean"),
                             "--profile", "smoke", "--steps", "1000000", "--out", str(tmp_path / "long.pth")],
                            cwd=ROOT, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_as_from_a_terminal)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("interrupted")
