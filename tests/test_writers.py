"""One rule for every file the tool writes (``paths.check_output`` and ``paths.holding``): never
replaced without --overwrite, never an input of the run nor inside its data, never a file another run
is writing; and the one-line refusals of odd values around it. Each test runs the command line as a
user would; the concurrent ones start real processes."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from n2n_core.__main__ import main
from n2n_core.training.checkpoint import pretrained_path

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ["--profile", "smoke", "--steps", "1", "--crop", "32", "--batch-size", "2", "--device", "cpu",
         "--threads", "1"]


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    said = [line for line in err.split("\n") if line and "\r" not in line and "%|" not in line]  # less a progress bar
    assert len(said) == 1 and said[0].startswith("error: ") and "Traceback" not in err, err
    return said[0]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def pairs(tmp_path) -> Path:
    from conftest import write_noisy_pairs

    return write_noisy_pairs(tmp_path / "pairs", [(40, 44)] * 3)


@pytest.fixture
def weights(tmp_path) -> Path:
    """A copy of the shipped weights that a test may lose."""
    copy = tmp_path / "model.pth"
    shutil.copyfile(pretrained_path("gaussian"), copy)
    return copy


@pytest.fixture
def test_sets(data_folder, monkeypatch) -> Path:
    monkeypatch.setenv("N2N_DATA_DIR", str(data_folder))
    return data_folder


# ------------------------------------------------------------------------------- never an input
def test_eval_json_never_replaces_the_evaluated_checkpoint(weights, test_sets, capsys):
    before = weights.read_bytes()
    assert main(["eval", str(weights), "--sets", "kodak", "--json", str(weights), "--overwrite"]) == 2
    assert "is an input of this run" in _one_line(capsys)
    assert weights.read_bytes() == before


def test_train_never_writes_into_its_own_data(pairs, capsys):
    before = _snapshot(pairs)
    assert main(["train", "--pairs", str(pairs), *TRAIN, "--out", str(pairs / "a" / "s0.png"), "--overwrite"]) == 2
    assert "an input of this run" in _one_line(capsys)
    assert main(["train", "--pairs", str(pairs), *TRAIN, "--out", str(pairs / "a" / "new.pth")]) == 2
    assert f"lies inside {pairs.resolve()}" in _one_line(capsys)
    assert _snapshot(pairs) == before


def test_train_never_replaces_the_weights_it_starts_from(pairs, weights, capsys):
    before = weights.read_bytes()
    assert main(["train", "--pairs", str(pairs), *TRAIN, "--init", str(weights), "--out", str(weights),
                 "--overwrite"]) == 2
    assert "is an input of this run" in _one_line(capsys)
    assert weights.read_bytes() == before


# ------------------------------------------------------------------------ odd output values
def test_an_empty_out_is_refused(pairs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--pairs", str(pairs), *TRAIN, "--out", ""]) == 2
    assert "--out is empty" in _one_line(capsys)
    assert main(["denoise", str(pairs / "a"), "--out", "", "--device", "cpu"]) == 2
    assert "--out is empty" in _one_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs"]  # nothing written here


def test_a_quoted_tilde_means_home(pairs, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--pairs", str(pairs), *TRAIN, "--out", "~/models/m.pth"]) == 0
    assert (home / "models" / "m.pth").is_file() and not (tmp_path / "~").exists()


def test_a_name_too_long_is_refused_before_any_training(pairs, tmp_path, capsys):
    out = tmp_path / ("x" * 250 + ".pth")
    started = time.monotonic()
    assert main(["train", "--pairs", str(pairs), *TRAIN, "--out", str(out)]) == 2
    assert "more than this file system allows" in _one_line(capsys)
    assert "Training" not in capsys.readouterr().out and time.monotonic() - started < 30


def test_overwrite_and_skip_existing_exclude_each_other(pairs, tmp_path, capsys):
    assert main(["denoise", str(pairs / "a"), "--out", str(tmp_path / "o"), "--overwrite", "--skip-existing"]) == 2
    assert "give one of the two" in _one_line(capsys)


def test_single_captures_with_noisy_targets_are_refused(pairs, tmp_path, capsys):
    assert main(["train", "--single", str(pairs / "a"), "--target", "noisy", *TRAIN,
                 "--out", str(tmp_path / "m.pth")]) == 2
    assert "--single trains Neighbor2Neighbor" in _one_line(capsys)
    assert not (tmp_path / "m.pth").exists()


# --------------------------------------------------------------------------- other runs' files
def _cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "N2N_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "n2n_core", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for(path: Path, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_two_trainings_into_one_file(pairs, tmp_path):
    out = tmp_path / "m.pth"
    args = ["train", "--pairs", str(pairs), "--profile", "smoke", "--crop", "32", "--batch-size", "2", "--device",
            "cpu", "--out", str(out)]
    first = _cli(*args, "--steps", "100000", "--val-every", "100000")
    _wait_for(tmp_path / ".m.pth.lock", first)
    second = _cli(*args, "--steps", "2", "--overwrite")
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2 and "another run (process" in err and err.count("\n") == 1, err
    first.send_signal(signal.SIGINT)  # the first run ends with its own checkpoint, to be resumed
    _, err_first = first.communicate(timeout=120)
    assert first.returncode == 130 and "resume" in err_first, err_first
    state = torch.load(out, weights_only=True)
    assert not state["finished"] and state["config"]["train"]["max_steps"] == 100000
    assert not (tmp_path / ".m.pth.lock").exists()


def test_two_denoise_runs_into_one_folder(tmp_path):
    from conftest import smooth_image, write_png

    inputs = tmp_path / "in"
    for i in range(6):
        write_png(inputs / f"p{i}.png", smooth_image(256, 256, i))
    out = tmp_path / "out"
    first = _cli("denoise", str(inputs), "--out", str(out), "--device", "cpu", "--tile", "32", "--overlap", "4")
    _wait_for(out / ".n2n.lock", first)
    second = _cli("denoise", str(inputs), "--out", str(out), "--device", "cpu", "--overwrite")
    _, err = second.communicate(timeout=120)
    assert second.returncode == 2 and "another run (process" in err and err.count("\n") == 1, err
    assert first.wait(timeout=600) == 0, first.communicate()
    assert sorted(p.name for p in out.iterdir()) == [f"p{i}.png" for i in range(6)]


def test_a_run_holds_its_file_in_the_same_process_too(tmp_path):
    from n2n_core import paths

    with paths.holding(tmp_path / "a.pth"), paths.holding(tmp_path / "a.pth"):  # a run may nest its own hold
        probe = _cli_probe(tmp_path / "a.pth")
        assert probe.returncode == 3, probe.stderr
    assert _cli_probe(tmp_path / "a.pth").returncode == 0 and not (tmp_path / ".a.pth.lock").exists()


def _cli_probe(path: Path) -> subprocess.CompletedProcess:
    code = ("import sys; from n2n_core import paths\n"
            f"try:\n    with paths.holding({str(path)!r}): pass\n"
            "except paths.OutputError as e:\n    print(e, file=sys.stderr); sys.exit(3)\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)


# ------------------------------------------------------------------------- failures, one line each
def test_a_full_disk_while_a_checkpoint_is_written(pairs, tmp_path, capsys, monkeypatch):
    from n2n_core.training import checkpoint

    def full(obj, path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", full)
    assert main(["train", "--pairs", str(pairs), *TRAIN, "--out", str(tmp_path / "m.pth")]) == 2
    err = _one_line(capsys)
    assert "could not be written (No space left on device; nothing was written): free some space" in err
    assert not (tmp_path / "m.pth").exists() and not list(tmp_path.glob(".*"))  # no temporary file, no lock left


def test_eval_on_a_read_only_output_folder_still_gives_its_numbers(weights, test_sets, capsys, monkeypatch):
    monkeypatch.setenv("N2N_OUTPUT_DIR", "/proc/n2n_output")  # no folder can be made there, even by root
    assert main(["eval", str(weights), "--sets", "kodak", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert "kodak" in captured.out and "dB" in captured.out
    assert captured.err.count("cannot write the cache here") == 1


def test_compile_without_a_compiler(pairs, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CXX", raising=False)
    assert main(["train", "--pairs", str(pairs), *TRAIN, "--compile", "--out", str(tmp_path / "m.pth")]) == 2
    assert "--compile needs a C++ compiler" in _one_line(capsys)


def test_a_checkpoint_without_weights(weights, tmp_path, capsys):
    state = torch.load(weights, weights_only=True)
    state["model"], state["ema"] = None, None
    torch.save(state, weights)
    assert main(["denoise", str(weights), "--checkpoint", str(weights), "--out", str(tmp_path / "o")]) == 2
    assert "holds no weights" in _one_line(capsys)


def test_a_batch_beyond_memory_is_refused_before_training(pairs, tmp_path, capsys):
    assert main(["train", "--pairs", str(pairs), "--profile", "smoke", "--steps", "1", "--crop", "32", "--batch-size",
                 "100000000", "--device", "cpu", "--out", str(tmp_path / "m.pth")]) == 2
    assert "use a batch size well below" in _one_line(capsys)
    assert not (tmp_path / "m.pth").exists()


def test_a_refused_resume_names_the_option(pairs, tmp_path, capsys):
    out = tmp_path / "m.pth"
    assert main(["train", "--pairs", str(pairs), *TRAIN, "--out", str(out), "--lr", "0.001"]) == 0
    state = torch.load(out, weights_only=True)
    state["finished"] = False  # as if interrupted
    torch.save(state, out)
    capsys.readouterr()
    assert main(["train", "--pairs", str(pairs), *TRAIN, "--out", str(out), "--lr", "0.002"]) == 2
    assert "--lr 0.002 (it was 0.001)" in _one_line(capsys)


@pytest.mark.parametrize("content", ['{"runs": {"unet": ', "[1, 2]"], ids=["truncated", "a list"])
def test_a_damaged_results_file_is_named_and_kept(output_dir, capsys, content):
    from n2n_core.config import get_profile
    from n2n_core.studies import experiment

    results = output_dir / "reports" / "results.json"
    results.parent.mkdir(parents=True)
    results.write_text(content)
    assert main(["summary", "--profile", "cpu"]) == 2
    assert str(results) in _one_line(capsys)
    with pytest.raises(ValueError, match="results.json"):
        experiment.update_results(get_profile("cpu"), lambda data: data.setdefault("runs", {}))
    assert results.read_text() == content


def test_captures_of_different_kinds_in_a_pair(pairs, tmp_path, capsys):
    from PIL import Image

    grey = pairs / "b" / "s1.png"
    Image.open(grey).convert("L").save(grey)
    assert main(["train", "--pairs", str(pairs), *TRAIN, "--out", str(tmp_path / "m.pth")]) == 2
    assert "is grey but" in _one_line(capsys)


def test_a_pickle_whose_captures_are_copies(tmp_path, capsys):
    noisy = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (4, 3, 40, 40), dtype=np.uint8))
    other = noisy.clone()
    other[:2] = 255 - other[:2]
    torch.save((noisy, other), tmp_path / "train.pkl")
    assert main(["train", "--pickle", str(tmp_path / "train.pkl"), *TRAIN, "--out", str(tmp_path / "m.pth")]) == 2
    assert "image 2 (and 1 more) is the same in both tensors" in _one_line(capsys)


# ------------------------------------------------------------------------------ the shipped card
def test_the_shipped_card_is_not_rewritten_from_partial_data(test_sets, capsys):
    card = pretrained_path("gaussian").parent / "README.md"
    before = card.read_bytes()
    assert main(["pretrained", "--card-only", "--device", "cpu"]) == 2
    assert "measured on the paper's whole test sets" in _one_line(capsys)
    assert card.read_bytes() == before


# ------------------------------------------------------------------------------ make and notebooks
def test_notebooks_never_write_the_command_lines_default_checkpoints():
    import re

    from n2n_core.config import MODEL_NAMES
    from n2n_core.training.own import default_checkpoint

    defaults = {default_checkpoint(m, s).stem for m in MODEL_NAMES for s in ("clean", "pairs", "pickle", "single")}
    written = set()
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        written |= set(re.findall(r'checkpoint_path\(cfg\.name, \\"([^\\"]+)\\"\)', notebook.read_text()))
    assert written and not written & defaults, written & defaults


def test_make_clean_keeps_the_command_lines_models(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    for name in ("own_unet_pairs.pth", "unet_n2n_gaussian.pth", "smoke/unet_n2n_gaussian.pth", "pretrained/x.pth",
                 "README.md"):
        (tmp_path / "checkpoints" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "checkpoints" / name).write_text("x")
    subprocess.run(["make", "-s", "clean"], cwd=tmp_path, check=True, capture_output=True)
    left = sorted(str(p.relative_to(tmp_path / "checkpoints")) for p in (tmp_path / "checkpoints").rglob("*.*"))
    assert left == ["README.md", "own_unet_pairs.pth", "pretrained/x.pth"]


def test_make_refuses_an_unknown_profile_at_once():
    from n2n_core.config import PROFILES

    done = subprocess.run(["make", "-n", "all", "PROFILE=bogus"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "PROFILE=bogus is not a profile" in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "papermill" not in done.stdout
    listed = next(line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("RUN_PROFILES"))
    assert set(listed.split(":=")[1].split()) == set(PROFILES) - {"pretrained"}


def test_a_folder_in_the_way_of_an_output_is_named_as_such(pairs, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "s0.png").mkdir(parents=True)  # where the denoised s0.png would go
    assert main(["denoise", str(pairs / "a" / "s0.png"), "--out", str(out), "--overwrite", "--device", "cpu"]) == 2
    err = _one_line(capsys)
    assert "a folder is in the way" in err and "free some space" not in err
