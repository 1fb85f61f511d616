"""The command line: `python -m n2n_core eval` and `summary`; numbers, files and one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from n2n_core.studies import experiment
from n2n_core.__main__ import main
from n2n_core.training.checkpoint import load_checkpoint
from n2n_core.training.runtime import Runtime


@pytest.fixture
def eval_data(data_folder, make_png, monkeypatch):
    for i in range(2):
        make_png(data_folder / "set14" / f"img{i}.png", 30, 26, seed=400 + i)
    monkeypatch.setenv("N2N_DATA_DIR", str(data_folder))
    return data_folder


@pytest.fixture
def checkpoint(eval_data, tiny_profile):
    experiment.prepare_patches(tiny_profile, seed=0)
    return experiment.train("unet", "noisy", tiny_profile, seed=0, rt=Runtime.resolve("cpu"), progress=False,
                            noise="poisson").checkpoint


def test_eval_a_checkpoint_uses_its_noise_and_writes_json(checkpoint, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["eval", str(checkpoint), "--sets", "kodak", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Poisson lambda=30" in printed and "kodak (2 images x 1)" in printed
    stored = json.loads(out.read_text())
    assert stored["noise"]["kind"] == "poisson" and stored["sets"]["kodak"]["images"] == 2
    per_image = stored["sets"]["kodak"]["per_image"]  # one entry per image, their mean the set's figure
    assert [r["image"] for r in per_image] == ["kodim01.png", "kodim02.png"]
    assert abs(sum(r["psnr"] for r in per_image) / 2 - stored["sets"]["kodak"]["psnr"]) < 1e-3
    # an existing --json is not replaced without --overwrite
    assert main(["eval", str(checkpoint), "--sets", "kodak", "--seed", "1", "--json", str(out)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert json.loads(out.read_text()) == stored
    # same seed, same number; another seed, another number
    assert main(["eval", str(checkpoint), "--sets", "kodak", "--json", str(out), "--overwrite"]) == 0
    assert json.loads(out.read_text())["sets"]["kodak"]["psnr"] == stored["sets"]["kodak"]["psnr"]
    assert "(cached evaluation" in capsys.readouterr().out  # the second run did not run the model again
    assert main(["eval", str(checkpoint), "--sets", "kodak", "--seed", "1", "--json", str(out), "--overwrite"]) == 0
    assert json.loads(out.read_text())["sets"]["kodak"]["psnr"] != stored["sets"]["kodak"]["psnr"]


def test_eval_and_denoise_with_the_self_ensemble(checkpoint, eval_data, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    plain, ensemble = tmp_path / "plain.json", tmp_path / "ensemble.json"
    assert main(["eval", str(checkpoint), "--sets", "kodak", "--json", str(plain)]) == 0
    assert main(["eval", str(checkpoint), "--sets", "kodak", "--ensemble", "--json", str(ensemble)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("[x8 self-ensemble]") == 1 and "(cached evaluation" not in printed  # its own cache entry
    a, b = (json.loads(p.read_text())["sets"]["kodak"] for p in (plain, ensemble))
    assert b["self_ensemble"] == 8 and "self_ensemble" not in a and a["psnr"] != b["psnr"]
    image = eval_data / "kodak" / "kodim01.png"
    for flag, out in (([], tmp_path / "once"), (["--ensemble"], tmp_path / "eight")):
        assert main(["denoise", str(image), "--checkpoint", str(checkpoint), "--out", str(out), *flag]) == 0
    assert "x8 self-ensemble" in capsys.readouterr().out
    once, eight = (np.asarray(Image.open(p / "kodim01.png"), dtype=int) for p in (tmp_path / "once", tmp_path / "eight"))
    assert once.shape == eight.shape and np.abs(once - eight).max() > 0


def test_the_package_refuses_a_self_ensemble_of_a_baseline(eval_data):
    from n2n_core.evaluation.protocol import data_sources, evaluate_sets
    from n2n_core.paper.noise import NoiseConfig

    with pytest.raises(ValueError, match="self-ensemble averages a network's outputs"):
        evaluate_sets(None, data_sources(), ["kodak"], NoiseConfig("gaussian"), ensemble=True)


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
    (["eval", "--baseline", "input", "--ensemble"], "argument --ensemble: not allowed with argument --baseline"),
    (["eval", "--baseline", "input", "--device", "cuda:7"], "--device cuda:7"),
])
def test_eval_errors_are_one_line(eval_data, capsys, argv, message, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _one_line_error(capsys, argv, message)


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
    from n2n_core.evaluation import baselines

    monkeypatch.setattr(baselines, "available", lambda: True)
    assert main(["eval", "--baseline", "bm3d", "--noise", "bernoulli"]) == 2
    assert "no BM3D baseline for bernoulli" in capsys.readouterr().err


def test_module_entry_point_runs(tmp_path):
    result = subprocess.run([sys.executable, "-m", "n2n_core", "eval", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--repeats" in result.stdout and "paper's protocol" in result.stdout


# ------------------------------------------------------------------------ denoise and train
@pytest.fixture
def own_checkpoint(tmp_path, capsys):
    """A tiny trained ResNet checkpoint, and the folder of images it was trained on."""
    from conftest import write_noisy_pairs

    root = write_noisy_pairs(tmp_path / "pairs", [(24, 30)] * 3)
    out = tmp_path / "own.pth"
    assert main(["train", "--pairs", str(root), "--model", "resnet", "--profile", "smoke", "--steps", "3",
                 "--crop", "16", "--batch-size", "2", "--val-every", "3", "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert f"Wrote {out}: 3 steps" in printed and "second capture" in printed
    return out, root


def test_train_then_denoise_from_the_command_line(own_checkpoint, tmp_path, capsys):
    checkpoint, root = own_checkpoint
    out = tmp_path / "denoised"
    assert main(["denoise", str(root / "a"), "--checkpoint", str(checkpoint), "--out", str(out), "--tile", "32",
                 "--overlap", "4"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["s0.png", "s1.png", "s2.png"]
    assert "Denoised 3 image(s)" in capsys.readouterr().out
    # a second run refuses to overwrite, and says how
    assert main(["denoise", str(root / "a"), "--checkpoint", str(checkpoint), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["denoise", str(root / "a"), "--checkpoint", str(checkpoint), "--out", str(out), "--overwrite"]) == 0



def test_denoise_through_torch_compile_writes_the_same_pixels(own_checkpoint, tmp_path):
    import numpy as np
    from PIL import Image

    checkpoint, root = own_checkpoint
    plain, compiled = tmp_path / "plain", tmp_path / "compiled"
    args = [str(root / "a" / "s0.png"), "--checkpoint", str(checkpoint), "--tile", "32", "--overlap", "4"]
    assert main(["denoise", *args, "--out", str(plain)]) == 0
    assert main(["denoise", *args, "--out", str(compiled), "--compile"]) == 0
    a = np.asarray(Image.open(plain / "s0.png"), dtype=int)
    b = np.asarray(Image.open(compiled / "s0.png"), dtype=int)
    assert np.abs(a - b).max() <= 1  # float-order differences may flip a rounding

def _one_line_error(capsys, argv, message):
    code = None
    try:
        code = main(argv)
    except SystemExit as exit_info:  # argparse's own errors
        code = exit_info.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("case,message", [
    ("not_image", "notes.png: not an image file"),
    ("random_bytes", "cut.png: not an image file"),
    ("empty", "no image files"),
    ("not_checkpoint", "fake.pth: not a readable checkpoint"),
    ("other_arch", "holds a 'resnet' model, not the 'unet'"),
    ("unknown_shipped", "pretrained:nope: unknown shipped weights; choose pretrained:gaussian or pretrained:poisson"),
    ("missing_file", "no such checkpoint; check the path"),
    ("unwritable", "cannot write to this folder"),
    ("bad_tile", "tile 32 is too small for overlap 16"),
])
def test_denoise_errors_are_one_line(own_checkpoint, tmp_path, capsys, case, message, monkeypatch):
    from PIL import Image

    import numpy as np

    checkpoint, root = own_checkpoint
    capsys.readouterr()
    images = tmp_path / "in"
    images.mkdir()
    good = images / "good.png"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(good)
    args = [str(good), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out")]
    if case == "not_image":
        (images / "notes.png").write_text("hello")
        args[0] = str(images / "notes.png")
    elif case == "random_bytes":  # (a truncated file is found only when read: it fails alone, see below)
        (images / "cut.png").write_bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8).tobytes())
        args[0] = str(images / "cut.png")
    elif case == "empty":
        (tmp_path / "empty").mkdir()
        args[0] = str(tmp_path / "empty")
    elif case == "not_checkpoint":
        (tmp_path / "fake.pth").write_text("weights")
        args[2] = str(tmp_path / "fake.pth")
    elif case == "other_arch":
        args += ["--model", "unet"]
    elif case == "unknown_shipped":
        args[2] = "pretrained:nope"
    elif case == "missing_file":
        args[2] = str(tmp_path / "nowhere.pth")
    elif case == "unwritable":
        (tmp_path / "file").write_text("a file, not a folder")
        args[-1] = str(tmp_path / "file" / "sub")
    elif case == "bad_tile":
        args += ["--tile", "32", "--overlap", "16"]
    _one_line_error(capsys, ["denoise", *args], message)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("extra,message", [
    (["--noise", "speckle"], "invalid choice: 'speckle'"),
    (["--model", "vgg"], "invalid choice: 'vgg'"),
    (["--sigma", "-3"], "sigma must be >= 0, got -3.0"),
    (["--crop", "64"], "smaller than the 64x64 training crop"),
    (["--target", "clean"], "clean targets need clean images"),
    (["--steps", "0"], "--steps must be > 0, got 0"),
])
def test_train_errors_are_one_line(own_checkpoint, tmp_path, capsys, extra, message):
    _, root = own_checkpoint
    capsys.readouterr()
    _one_line_error(capsys, ["train", "--pairs", str(root), "--out", str(tmp_path / "new.pth"), "--steps", "2",
                             *extra], message)
    assert not (tmp_path / "new.pth").exists()


def test_train_refuses_to_replace_a_finished_checkpoint(own_checkpoint, capsys):
    checkpoint, root = own_checkpoint
    before = checkpoint.read_bytes()
    capsys.readouterr()
    _one_line_error(capsys, ["train", "--pairs", str(root), "--model", "resnet", "--profile", "smoke", "--steps",
                             "3", "--crop", "16", "--out", str(checkpoint)], "already trained (3 steps)")
    assert checkpoint.read_bytes() == before


def test_train_resumes_in_its_own_format_and_budget_on_a_machine_with_another_default(tmp_path, monkeypatch, capsys):
    # a run started in float32 (the cpu profile's float32 budget: batch 2, lr 5e-4), resumed with
    # --precision auto where bfloat16 is the default (its budget: batch 8, lr 1e-3): the same run
    from conftest import smooth_image, write_png
    from n2n_core.training import devices

    clean = tmp_path / "clean"
    for i in range(3):
        write_png(clean / f"c{i}.png", smooth_image(100, 100, seed=i))  # the cpu profile cuts 96 px patches
    out = tmp_path / "run.pth"
    command = ["train", "--clean", str(clean), "--model", "unet", "--profile", "cpu", "--steps", "2", "--crop", "32",
               "--val-every", "2", "--out", str(out), "--device", "cpu"]
    assert main(command + ["--precision", "fp32"]) == 0
    state = load_checkpoint(out)
    assert (state["history"]["precision"], state["config"]["train"]["batch_size"]) == ("fp32", 2)
    torch.save({**state, "finished": False}, out)  # as a run stopped by a chunk's end or Ctrl-C leaves it
    monkeypatch.setattr(devices, "fast_bf16", lambda device, features=None: True)
    capsys.readouterr()
    assert main(command) == 0, capsys.readouterr().err  # was: "trained with another configuration (differs in: train)"
    assert load_checkpoint(out)["history"]["precision"] == "fp32"
    # a new run there takes this machine's default, and its budget
    assert main(command + ["--overwrite"]) == 0
    state = load_checkpoint(out)
    assert (state["history"]["precision"], state["config"]["train"]["batch_size"]) == ("bf16", 8)


def test_a_resumed_train_reads_its_checkpoint_once(own_checkpoint, tmp_path, monkeypatch):
    # the resume state, the number format and the budget all come from one read of the file
    checkpoint, root = own_checkpoint
    out = tmp_path / "resumed.pth"
    command = ["train", "--pairs", str(root), "--model", "resnet", "--profile", "smoke", "--steps", "3", "--crop", "16",
               "--out", str(out), "--device", "cpu"]
    assert main(command) == 0
    state = load_checkpoint(out)
    torch.save({**state, "finished": False}, out)  # as a run stopped by Ctrl-C leaves it
    reads, real_load = [], torch.load
    monkeypatch.setattr(torch, "load", lambda f, *a, **k: reads.append(Path(f)) or real_load(f, *a, **k))
    assert main(command) == 0
    assert reads.count(out) == 1, reads
    assert load_checkpoint(out)["finished"]


def test_console_script_is_declared():
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["n2n"] == "n2n_core.__main__:main"


def test_precision_and_threads_from_the_command_line(own_checkpoint, tmp_path, capsys, restore_threads):
    checkpoint, root = own_checkpoint
    out = tmp_path / "bf16.pth"
    assert main(["train", "--pairs", str(root), "--model", "resnet", "--profile", "smoke", "--steps", "3",
                 "--crop", "16", "--out", str(out), "--precision", "bf16", "--threads", "1"]) == 0
    assert load_checkpoint(out)["history"]["precision"] == "bf16"
    assert "bfloat16 autocast" in capsys.readouterr().out and torch.get_num_threads() == 1
    image = tmp_path / "in.png"
    from PIL import Image
    import numpy as np
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(image)
    assert main(["denoise", str(image), "--checkpoint", str(out), "--out", str(tmp_path / "o"),
                 "--precision", "fp32"]) == 0
    assert "Denoising on cpu, " in capsys.readouterr().out and (tmp_path / "o" / "in.png").is_file()


@pytest.mark.parametrize("argv,env,message", [
    (["--precision", "fp16"], None, "invalid choice: 'fp16'"),
    (["--threads", "0"], None, "--threads must be >= 1, got 0"),
    ([], "many", "N2N_THREADS='many': give a whole number of threads"),
])
def test_bad_precision_or_threads_is_one_line(own_checkpoint, tmp_path, capsys, monkeypatch, argv, env, message,
                                              restore_threads):
    from n2n_core.training import devices

    checkpoint, root = own_checkpoint
    if env is not None:
        monkeypatch.setenv("N2N_THREADS", env)
        devices._GOVERNOR = None
    capsys.readouterr()
    _one_line_error(capsys, ["train", "--pairs", str(root), "--out", str(tmp_path / "x.pth"), *argv], message)
    assert not (tmp_path / "x.pth").exists()


def test_eval_json_records_the_precision(checkpoint, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert main(["eval", str(checkpoint), "--sets", "kodak", "--precision", "fp32", "--json", str(out)]) == 0
    stored = json.loads(out.read_text())
    assert stored["precision"] == "fp32" and stored["sets"]["kodak"]["precision"] == "fp32"


def test_a_failed_denoise_leaves_no_empty_out_folder(tmp_path, capsys):
    from PIL import Image

    import numpy as np

    cut = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(cut)
    cut.write_bytes(cut.read_bytes()[:300])
    assert main(["denoise", str(cut), "--out", str(tmp_path / "new_out"), "--device", "cpu"]) == 1
    assert "damaged or truncated" in capsys.readouterr().err
    assert not (tmp_path / "new_out").exists()


def test_messages_name_the_flag_the_version_and_the_path_once(tmp_path, capsys):
    import torch

    from n2n_core.training.checkpoint import FORMAT

    newer = tmp_path / "newer.pth"
    torch.save({"format": "n2n_core.checkpoint/99"}, newer)
    assert main(["eval", str(newer)]) == 2
    err = capsys.readouterr().err
    assert "written by another version of n2n_core (checkpoint format 'n2n_core.checkpoint/99'" in err
    assert f"this version reads {FORMAT!r}" in err and err.count(str(newer)) == 1
    for flag in ("--steps", "--seconds"):
        assert main(["train", "--clean", str(tmp_path), flag, "0"]) == 2
        assert f"{flag} must be > 0, got 0" in capsys.readouterr().err


def test_a_batch_goes_on_past_a_damaged_file_and_skip_existing_finishes_it(tmp_path, capsys):
    from PIL import Image

    import numpy as np

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a_good.png", "c_good.png"):
        Image.fromarray(np.full((24, 24, 3), 100, np.uint8)).save(folder / name)
    cut = folder / "b_cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(cut)
    cut.write_bytes(cut.read_bytes()[:300])  # the header is fine: found only when the pixels are read
    out = tmp_path / "out"
    args = ["denoise", str(folder), "--out", str(out), "--checkpoint", "pretrained:gaussian", "--device", "cpu"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "failed: " in err and "b_cut.png: damaged or truncated" in err and "1 of 3 image(s) failed" in err
    assert sorted(p.name for p in out.iterdir()) == ["a_good.png", "c_good.png"]
    # an empty file is no image: refused before anything is written
    (folder / "d_empty.png").write_bytes(b"")
    assert main([*args, "--overwrite"]) == 2
    assert "d_empty.png: an empty file (0 bytes)" in capsys.readouterr().err
    (folder / "d_empty.png").unlink()
    Image.fromarray(np.full((24, 24, 3), 50, np.uint8)).save(cut)  # mended
    before = (out / "a_good.png").stat().st_mtime_ns
    assert main([*args, "--skip-existing"]) == 0
    assert "2 of 3 output(s) already in" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["a_good.png", "b_cut.png", "c_good.png"]
    assert (out / "a_good.png").stat().st_mtime_ns == before


def test_a_huge_claimed_size_is_one_line(tmp_path, capsys):
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))
    assert main(["denoise", str(bomb), "--out", str(tmp_path / "o"), "--checkpoint", "pretrained:gaussian"]) == 2
    err = capsys.readouterr().err
    assert "bomb.png: claims more pixels than Pillow's safety limit" in err and err.count("\n") == 1


@pytest.mark.parametrize("case,message", [
    ("no_pool", "PSNR"),  # evaluation needs test sets, not a training pool
    ("missing_dir", "data folder"),
    ("tiny_image", "smaller than the 11x11 window of SSIM"),
    ("json_unwritable", "cannot write to this folder"),
    ("args_missing", "has no model_args"),
    ("args_unknown", "describe no model of this version"),
    ("device_meta", "device meta: this project runs on cpu or cuda"),
    ("device_mps", "device mps: this project runs on cpu or cuda"),
])
def test_eval_problems_are_one_line(tmp_path, capsys, case, message):
    import shutil

    import torch
    from PIL import Image

    import numpy as np

    from n2n_core.training.checkpoint import load_checkpoint, pretrained_path

    data = tmp_path / "data"
    (data / "kodak").mkdir(parents=True)
    size = 8 if case == "tiny_image" else 24
    Image.fromarray(np.full((size, size, 3), 120, np.uint8)).save(data / "kodak" / "k.png")
    weights = tmp_path / "w.pth"
    shutil.copy(pretrained_path("gaussian"), weights)
    args = ["eval", str(weights), "--data-dir", str(data), "--device", "cpu"]
    if case == "missing_dir":
        args[3] = str(tmp_path / "nowhere")
    elif case == "json_unwritable":
        args += ["--json", "/proc/n2n/out.json"]
    elif case in ("args_missing", "args_unknown"):
        state = load_checkpoint(weights)
        state["model_args"] = None if case == "args_missing" else {"name": "unet", "wings": 3}
        torch.save(state, weights)
    elif case.startswith("device"):
        args[-1] = case.split("_")[1]
    code = main(args)
    captured = capsys.readouterr()
    if case == "no_pool":
        assert code == 0 and message in captured.out
        return
    assert code == 2 and message in captured.err and captured.err.count("\n") == 1, captured.err


def test_eval_on_your_own_folder_is_labelled_by_its_name_and_not_comparable(tmp_path, capsys):
    from PIL import Image

    from conftest import smooth_image

    for folder in ("holiday", "kodak"):  # a folder named kodak/ is not Kodak by its name
        for i in range(2):
            (tmp_path / folder).mkdir(exist_ok=True)
            Image.fromarray(smooth_image(40, 48, seed=i)).save(tmp_path / folder / f"p{i}.png")
    report = tmp_path / "r.json"
    assert main(["eval", "pretrained:gaussian", "--images", str(tmp_path / "holiday"), str(tmp_path / "kodak"),
                 "--device", "cpu", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "NOT comparable with the paper" in out
    sets = json.loads(report.read_text())["sets"]
    assert sorted(sets) == ["holiday", "kodak"] and sets["holiday"]["images"] == 2
    assert sets["kodak"]["comparable_with_paper"] is False
    assert main(["eval", "pretrained:gaussian", "--images", str(tmp_path / "holiday"), "--sets", "kodak"]) == 2
    assert "--images replaces --data-dir and --sets" in capsys.readouterr().err


def test_a_full_disk_stops_denoise_with_one_line(tmp_path, capsys, monkeypatch):
    import errno

    from PIL import Image

    import numpy as np

    for name in ("a.png", "b.png"):
        Image.fromarray(np.full((24, 24, 3), 90, np.uint8)).save(tmp_path / name)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("n2n_core.evaluation.denoise.write_image", full)
    code = main(["denoise", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--out", str(tmp_path / "out"),
                 "--checkpoint", "pretrained:gaussian", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("error:") == 1 and "Traceback" not in err  # (after the progress bar)
    assert "a.png: cannot be written (No space left on device); 0 image(s) were written before it" in err
    assert "--skip-existing" in err and not (tmp_path / "out").exists()


def test_train_records_its_loss_and_noise_and_denoise_reads_the_checkpoint(tmp_path, capsys):
    # `n2n train --noise impulse --loss l0`: the checkpoint holds both, and `n2n denoise` runs it
    from conftest import smooth_image, write_png
    from n2n_core.training.checkpoint import load_checkpoint

    clean = tmp_path / "clean"
    for i in range(3):
        write_png(clean / f"c{i}.png", smooth_image(64, 64, seed=i))
    out = tmp_path / "impulse_l0.pth"
    assert main(["train", "--clean", str(clean), "--noise", "impulse", "--impulse-p", "0.5", "--loss", "l0",
                 "--model", "resnet", "--profile", "smoke", "--steps", "2", "--crop", "16", "--batch-size", "2",
                 "--val-every", "2", "--out", str(out), "--device", "cpu"]) == 0
    config = load_checkpoint(out)["config"]
    assert config["train"]["loss"] == "l0"
    assert (config["noise"]["kind"], config["noise"]["impulse_p"]) == ("impulse", 0.5)
    capsys.readouterr()
    assert main(["denoise", str(clean / "c0.png"), "--checkpoint", str(out), "--out", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "c0.png").is_file()
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--clean", str(clean), "--loss", "l3"])
    assert exit_info.value.code == 2 and "'l3'" in capsys.readouterr().err


@pytest.mark.parametrize("noise,options,field,value", [("text", ["--text-p", "0.3", "--loss", "l1"], "text_p", 0.3),
                                                       ("brown", ["--brown-width", "1"], "brown_width", 1.0)])
def test_train_on_text_or_brown_noise_records_its_settings(tmp_path, capsys, noise, options, field, value):
    from conftest import smooth_image, write_png
    from n2n_core.training.checkpoint import load_checkpoint

    clean = tmp_path / "clean"
    for i in range(3):
        write_png(clean / f"c{i}.png", smooth_image(64, 64, seed=i))
    out = tmp_path / f"{noise}.pth"
    assert main(["train", "--clean", str(clean), "--noise", noise, *options, "--model", "resnet", "--profile", "smoke",
                 "--steps", "2", "--crop", "16", "--batch-size", "2", "--val-every", "2", "--out", str(out),
                 "--device", "cpu"]) == 0
    config = load_checkpoint(out)["config"]
    assert (config["noise"]["kind"], config["noise"][field]) == (noise, value)
    capsys.readouterr()
    # `n2n eval` measures under the checkpoint's own noise settings
    assert main(["eval", "--baseline", "input", "--noise", noise, *options[:2], "--sets", "skimage", "--limit", "1"]) == 0
    assert "skimage" in capsys.readouterr().out
    code = main(["train", "--clean", str(clean), "--noise", "brown", "--brown-width", "-1", "--out", str(out),
                 "--overwrite"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("error:") == 1 and "brown_width must be >= 0" in err and out.is_file()


# ------------------------------------------------------------------------------------- divergence
def test_a_diverging_run_fails_in_one_line_and_is_never_saved_as_finished(own_checkpoint, tmp_path, capsys):
    # a real divergent run: Adam's steps of this size overflow the weights within a few steps
    checkpoint, root = own_checkpoint
    out = tmp_path / "diverged.pth"
    capsys.readouterr()
    code = main(["train", "--pairs", str(root), "--model", "resnet", "--profile", "smoke", "--steps", "40", "--crop", "16",
                 "--batch-size", "2", "--val-every", "5", "--lr", "1e30", "--out", str(out), "--device", "cpu",
                 "--checkpoint-every", "0.001"])
    err = capsys.readouterr().err
    errors = [line for line in err.replace("\r", "\n").splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "training diverged by step" in errors[0], err
    assert "Traceback" not in err and err.rstrip().endswith(errors[0])  # the progress bar closed before it
    assert not out.exists() or not load_checkpoint(out)["finished"]
    if out.exists():  # an earlier, finite checkpoint: its weights are finite
        assert all(torch.isfinite(v).all() for v in load_checkpoint(out)["model"].values() if v.is_floating_point())


@pytest.mark.parametrize("lr", ["inf", "nan", "-1"])
def test_a_learning_rate_that_is_not_a_finite_positive_number_is_refused(own_checkpoint, tmp_path, capsys, lr):
    checkpoint, root = own_checkpoint
    capsys.readouterr()
    _one_line_error(capsys, ["train", "--pairs", str(root), "--profile", "smoke", "--steps", "2", "--lr", lr,
                             "--out", str(tmp_path / "x.pth")], "learning rate must be a finite number > 0")
    assert not (tmp_path / "x.pth").exists()


def test_weights_that_are_not_finite_are_refused_for_denoise_eval_and_init(own_checkpoint, tmp_path, capsys):
    checkpoint, root = own_checkpoint
    state = load_checkpoint(checkpoint)
    name = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][name] = torch.full_like(state["model"][name], float("nan"))
    broken = tmp_path / "nan.pth"
    torch.save(state, broken)
    image = next((root / "a").iterdir())
    capsys.readouterr()
    _one_line_error(capsys, ["denoise", str(image), "--checkpoint", str(broken), "--out", str(tmp_path / "o")],
                    "the weights hold NaN or infinite values")
    assert not (tmp_path / "o").exists()
    _one_line_error(capsys, ["eval", str(broken), "--images", str(root / "a"), "--json", str(tmp_path / "e.json")],
                    "the weights hold NaN or infinite values")
    assert not (tmp_path / "e.json").exists()
    _one_line_error(capsys, ["train", "--pairs", str(root), "--model", "resnet", "--profile", "smoke", "--steps", "2",
                             "--crop", "16", "--init", str(broken), "--out", str(tmp_path / "ft.pth")],
                    "the weights hold NaN or infinite values")
    assert not (tmp_path / "ft.pth").exists()
