"""The command line: `python -m n2n_core eval` and `summary`; numbers, files and one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from n2n_core import experiment
from n2n_core.__main__ import main


@pytest.fixture
def eval_data(data_folder, make_png, monkeypatch):
    for i in range(2):
        make_png(data_folder / "set14" / f"img{i}.png", 30, 26, seed=400 + i)
    monkeypatch.setenv("N2N_DATA_DIR", str(data_folder))
    return data_folder


@pytest.fixture
def checkpoint(eval_data, tiny_profile):
    experiment.prepare_patches(tiny_profile, seed=0)
    return experiment.train("unet", "noisy", tiny_profile, seed=0, device="cpu", progress=False,
                            noise="poisson").checkpoint


def test_eval_a_checkpoint_uses_its_noise_and_writes_json(checkpoint, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["eval", str(checkpoint), "--sets", "kodak", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Poisson lambda=30" in printed and "kodak (2 images x 1)" in printed
    stored = json.loads(out.read_text())
    assert stored["noise"]["kind"] == "poisson" and stored["sets"]["kodak"]["images"] == 2
    # same seed, same number; another seed, another number
    assert main(["eval", str(checkpoint), "--sets", "kodak", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["sets"]["kodak"]["psnr"] == stored["sets"]["kodak"]["psnr"]
    assert main(["eval", str(checkpoint), "--sets", "kodak", "--seed", "1", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["sets"]["kodak"]["psnr"] != stored["sets"]["kodak"]["psnr"]


def test_eval_of_the_noisy_input_with_paper_repeats(eval_data, tmp_path, capsys):
    out = tmp_path / "input.json"
    assert main(["eval", "--baseline", "input", "--noise", "gaussian", "--repeats", "paper", "--json", str(out)]) == 0
    sets = json.loads(out.read_text())["sets"]
    assert list(sets) == ["kodak", "set14"]  # every available set
    assert sets["kodak"]["repeats"] == 10 and sets["set14"]["repeats"] == 20
    assert 19 < sets["kodak"]["psnr"] < 22 and sets["kodak"]["psnr"] == sets["kodak"]["psnr_input"]
    assert main(["eval", "--baseline", "input", "--noise", "bernoulli", "--p", "0.8", "--limit", "1"]) == 0
    assert "Bernoulli p=0.8" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["eval"], "give a checkpoint or --baseline"),
    (["eval", "missing.pth"], "missing.pth: no such checkpoint"),
    (["eval", "--baseline", "input", "--sets", "urban100"], "test set 'urban100' is not available"),
    (["eval", "--baseline", "input", "--sigma", "-5"], "sigma must be >= 0, got -5.0"),
    (["eval", "--baseline", "input", "--limit", "0"], "--limit must be >= 1"),
    (["eval", "--baseline", "input", "--device", "cuda:7"], "--device cuda:7"),
])
def test_eval_errors_are_one_line(eval_data, capsys, argv, message, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_eval_rejects_a_file_that_is_not_a_checkpoint(eval_data, tmp_path, capsys):
    bogus = tmp_path / "notes.pth"
    bogus.write_text("not a checkpoint")
    assert main(["eval", str(bogus)]) == 2
    err = capsys.readouterr().err
    assert "notes.pth" in err and "Traceback" not in err


def test_bad_repeats_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--baseline", "input", "--repeats", "often"])
    assert exit_info.value.code == 2 and "'often'" in capsys.readouterr().err


def test_eval_bm3d_for_bernoulli_is_refused(eval_data, capsys, monkeypatch):
    from n2n_core import baselines

    monkeypatch.setattr(baselines, "available", lambda: True)
    assert main(["eval", "--baseline", "bm3d", "--noise", "bernoulli"]) == 2
    assert "no BM3D baseline for bernoulli" in capsys.readouterr().err


def test_module_entry_point_runs(tmp_path):
    result = subprocess.run([sys.executable, "-m", "n2n_core", "eval", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--repeats" in result.stdout and "paper's protocol" in result.stdout
