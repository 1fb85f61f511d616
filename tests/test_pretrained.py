"""The shipped weights: the committed file, loading them by name, `n2n denoise` without a checkpoint,
fine-tuning from them (`--init`), and `make pretrained`'s chunked training, export and model card."""
from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import skimage.data
import torch

from n2n_core.studies import experiment, pretrained
from n2n_core import load_model
from n2n_core.__main__ import main
from n2n_core.training.checkpoint import initial_weights, load_checkpoint, pretrained_path, resolve_checkpoint
from n2n_core.data.sets import load_image
from n2n_core.evaluation.protocol import evaluate_sets
from n2n_core.paper.noise import NoiseConfig
from n2n_core.training.runtime import Runtime
from conftest import cpu_runtime

CPU = Runtime.resolve("cpu")  # what a run on the CPU with the precision left to 'auto' resolves to

SHIPPED = pretrained_path("gaussian")
PHOTO = Path(skimage.data.__file__).parent / "astronaut.png"


# ------------------------------------------------------------------------------ the shipped file
@pytest.mark.parametrize("noise,blind", [("gaussian", ("train_sigma_range", [0.0, 50.0])),
                                         ("poisson", ("train_lam_range", [0.001, 50.0]))])
def test_shipped_weights_are_small_blind_noise2noise_float16(noise, blind):
    shipped = pretrained_path(noise)
    assert shipped.is_file(), f"checkpoints/pretrained/{shipped.name} is part of the repository"
    assert shipped.stat().st_size <= 4 * 1024 * 1024
    state = load_checkpoint(shipped)
    assert state["model_args"] == {"name": "unet"}
    assert state["optimizer"] is None and state["ema"] is None  # weights and card data only
    assert {v.dtype for v in state["model"].values()} == {torch.float16}
    config = state["config"]
    assert config["train"]["target"] == "noisy"  # the Noise2Noise claim: no clean target
    assert config["noise"]["kind"] == noise and config["noise"][blind[0]] == blind[1]
    assert state["pretrained"]["pixels_seen"] == state["step"] * config["train"]["batch_size"] * config["train"]["crop"] ** 2
    assert state["history"]["chunks"] and state["versions"]["torch"]


def test_shipped_weights_denoise_a_photograph_they_never_saw():
    model = load_model("pretrained:gaussian")
    assert next(model.parameters()).dtype == torch.float32  # float16 on disk, float32 to compute
    clean = load_image(PHOTO)[:, 128:384, 128:384]
    gains = [experiment.denoise_demo(model, clean, sigma, rt=cpu_runtime()) for sigma in (15.0, 40.0)]
    for demo in gains:  # blind: one model for both levels
        assert demo.psnr_denoised - demo.psnr_noisy >= 5.0, (demo.psnr_noisy, demo.psnr_denoised)


def test_shipped_poisson_weights_denoise_a_photograph_at_two_levels(tmp_path):
    model = load_model("pretrained:poisson")
    noise = experiment.demo_noise(load_checkpoint("pretrained:poisson"))  # notebook 00's noise for these weights
    assert noise.kind == "poisson" and noise.level == 30.0 and experiment.demo_range(noise) == (0.001, 50.0)
    clean = load_image(PHOTO)[:, 128:384, 128:384]
    for lam in (30.0, 5.0):  # blind: one model for both levels
        demo = experiment.show_demo(model, clean, lam, rt=cpu_runtime(), noise=noise,
                                    save=tmp_path / f"lam{lam:g}.png")
        assert demo.psnr_denoised - demo.psnr_noisy >= 5.0, (lam, demo.psnr_noisy, demo.psnr_denoised)
        assert (tmp_path / f"lam{lam:g}.png").is_file()
    # the noise is Poisson's: the same draw as PoissonNoise at that level, not Gaussian
    poisson = experiment.denoise_demo(torch.nn.Identity(), clean, 5.0, noise=noise, rt=cpu_runtime())
    gaussian = experiment.denoise_demo(torch.nn.Identity(), clean, 5.0, rt=cpu_runtime())
    assert poisson.psnr_noisy < 20.0 < gaussian.psnr_noisy


def test_shipped_names_resolve_and_wrong_ones_say_what_to_do(monkeypatch, tmp_path):
    assert resolve_checkpoint("pretrained:gaussian") == SHIPPED
    assert resolve_checkpoint("some/file.pth") == Path("some/file.pth")
    with pytest.raises(ValueError, match="pretrained:nope: unknown shipped weights; choose pretrained:gaussian or"):
        resolve_checkpoint("pretrained:nope")
    monkeypatch.setattr("n2n_core.paths.pretrained_dir", lambda: tmp_path / "gone")
    with pytest.raises(FileNotFoundError, match=r"pretrained:gaussian: .* is missing; `git checkout .*` restores"):
        load_model("pretrained:gaussian")


def test_denoise_without_a_checkpoint_uses_the_shipped_weights(tmp_path, capsys):
    photo = tmp_path / "photo.png"
    from PIL import Image
    Image.open(PHOTO).crop((0, 0, 96, 80)).save(photo)
    assert main(["denoise", str(photo), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "Weights: pretrained:gaussian (the shipped blind Gaussian U-Net" in out
    assert Image.open(tmp_path / "out" / "photo.png").size == (96, 80)


def test_denoise_prefers_the_make_all_checkpoint_when_there_is_one(tmp_path, capsys, output_dir):
    target = experiment.checkpoint_path("cpu", "unet_n2n_gaussian")
    target.parent.mkdir(parents=True)
    shutil.copy(SHIPPED, target)
    photo = tmp_path / "photo.png"
    from PIL import Image
    Image.open(PHOTO).crop((0, 0, 40, 40)).save(photo)
    assert main(["denoise", str(photo), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    assert f"Weights: {target}" in capsys.readouterr().out


def test_eval_takes_a_shipped_name(data_folder, tmp_path):
    report = tmp_path / "eval.json"
    assert main(["eval", "pretrained:gaussian", "--data-dir", str(data_folder), "--sets", "kodak", "--device", "cpu",
                 "--json", str(report)]) == 0
    numbers = json.loads(report.read_text())
    assert numbers["model"] == "pretrained:gaussian" and numbers["noise"]["sigma"] == 25.0
    assert numbers["sets"]["kodak"]["psnr"] > numbers["sets"]["kodak"]["psnr_input"] + 3


# ---------------------------------------------------------------------------------- fine-tuning
def test_train_init_starts_from_the_shipped_weights(tmp_path, capsys):
    from conftest import write_noisy_pairs

    root = write_noisy_pairs(tmp_path / "pairs", [(40, 44)] * 3)
    out = tmp_path / "ft.pth"
    assert main(["train", "--pairs", str(root), "--profile", "smoke", "--steps", "1", "--crop", "32",
                 "--batch-size", "2", "--lr", "1e-9", "--out", str(out), "--device", "cpu",
                 "--init", "pretrained:gaussian"]) == 0
    state = load_checkpoint(out)
    assert state["config"]["init"] == "pretrained:gaussian"
    shipped = initial_weights("pretrained:gaussian", {"name": "unet"})
    # one step at a negligible learning rate: still the shipped weights, not a random initialisation
    for name, value in state["model"].items():
        assert torch.allclose(value, shipped[name], atol=1e-4), name


def test_train_init_refuses_weights_of_another_architecture(tmp_path, capsys):
    from conftest import write_noisy_pairs

    root = write_noisy_pairs(tmp_path / "pairs", [(40, 44)] * 3)
    code = main(["train", "--pairs", str(root), "--model", "resnet", "--profile", "smoke", "--steps", "1",
                 "--out", str(tmp_path / "r.pth"), "--device", "cpu", "--init", "pretrained:gaussian"])
    err = capsys.readouterr().err
    assert code == 2 and "--init pretrained:gaussian: holds a {'name': 'unet'} model" in err
    assert "start from weights of the same architecture" in err and not (tmp_path / "r.pth").exists()


# -------------------------------------------------------------------- make pretrained, in little
def test_pretrained_trains_in_chunks_exports_and_finishes(little, data_folder, tmp_path):
    folder = tmp_path / "ship"
    # a chunk of (almost) no time: one step, a training state, and weights exported from it
    history = pretrained.train("gaussian", max_minutes=1e-6, data_dir=data_folder, folder=folder,
                               profile_override=little, progress=False, rt=CPU)
    state = load_checkpoint(pretrained.state_path("gaussian", folder))
    assert state["step"] == 1 and not state["finished"] and state["optimizer"] is not None
    assert state["ema"] is not None
    # kept small enough to commit: the average and Adam's moments in bfloat16, the weights in float32
    assert {v.dtype for v in state["ema"].values() if v.is_floating_point()} == {torch.bfloat16}
    moments = [m[k] for m in state["optimizer"]["state"].values() for k in ("exp_avg", "exp_avg_sq")]
    assert moments and {m.dtype for m in moments} == {torch.bfloat16}
    assert {v.dtype for v in state["model"].values() if v.is_floating_point()} == {torch.float32}
    shipped = load_checkpoint(pretrained_path("gaussian", folder))
    assert shipped["step"] == 1 and shipped["optimizer"] is None and not shipped["finished"]
    # the average in float16, exported before the state was made small
    assert all((shipped["model"][k].float() - v.float()).abs().max() <= 0.01 * v.float().abs().max() + 1e-3
               for k, v in state["ema"].items())
    assert any(not torch.equal(shipped["model"][k], v.half()) for k, v in state["ema"].items()
               if v.is_floating_point())
    assert len(history.chunks) == 1
    # the next call goes on where the last stopped, finishes, and drops the training state
    history = pretrained.train("gaussian", data_dir=data_folder, folder=folder, profile_override=little,
                               progress=False, rt=CPU)
    assert history.step[-1] == 6 and [(c["start_step"], c["end_step"]) for c in history.chunks] == [(0, 1), (1, 6)]
    assert not pretrained.state_path("gaussian", folder).exists()
    shipped = load_checkpoint(pretrained_path("gaussian", folder))
    assert shipped["finished"] and shipped["step"] == 6 and shipped["pretrained"]["pixels_seen"] == 6 * 2 * 16 * 16
    # a finished run is not retrained
    assert pretrained.train("gaussian", data_dir=data_folder, folder=folder, profile_override=little,
                            progress=False).step[-1] == 6


def test_pretrained_refuses_the_embedded_photographs(little, tmp_path):
    with pytest.raises(pretrained.PretrainedError, match="Set N2N_DATA_DIR to a folder with train_pool/"):
        pretrained.train("gaussian", folder=tmp_path, profile_override=little)
    with pytest.raises(pretrained.PretrainedError, match="no shipped weights for 'bernoulli' noise"):
        pretrained.train("bernoulli", folder=tmp_path, profile_override=little)


def test_model_card_is_written_from_the_checkpoint(little, data_folder, tmp_path):
    folder = tmp_path / "ship"
    pretrained.train("gaussian", data_dir=data_folder, folder=folder, profile_override=little, progress=False,
                     rt=CPU)
    # a BM3D figure measured before is read from card.json, not measured again
    (folder / "card.json").write_text(json.dumps({"bm3d": {"gaussian/25/kodak/2x1": 12.345}}))
    card = pretrained.write_card(folder, data_dir=data_folder, rt=Runtime.resolve("cpu", "fp32")).read_text()
    assert "## `unet_gaussian_blind.pth`: blind Gaussian U-Net, noisy targets only" in card
    assert "The network ran in float32." in card  # the number format of the card's figures
    assert "Status: finished, 6 steps" in card and "| 0.000 | 6 |" in card  # the curve's table
    assert (folder / "unet_gaussian_blind_curve.png").stat().st_size > 1000
    rows = [line for line in card.splitlines() if line.startswith("| kodak |")]
    assert [row.split(" | ")[1] for row in rows] == ["15", "25", "50"]
    assert "12.35" in rows[1] and "32.39" in rows[1] and "31.82" in rows[1]  # BM3D cached; the paper at sigma 25
    assert rows[0].endswith("| – | – | – |")  # no BM3D measured, no paper figure at sigma 15


def test_pretrained_grey_starts_from_the_colour_weights_trains_in_chunks_and_joins_the_card(
        little, data_folder, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "ship"
    with pytest.raises(pretrained.PretrainedError, match="the grey weights start from the colour ones"):
        pretrained.train("gaussian", grey=True, data_dir=data_folder, folder=folder, profile_override=little)
    with pytest.raises(pretrained.PretrainedError, match="no grey weights for 'poisson' noise"):
        pretrained.train("poisson", grey=True, data_dir=data_folder, folder=folder, profile_override=little)
    pretrained.train("gaussian", data_dir=data_folder, folder=folder, profile_override=little, progress=False, rt=CPU)
    pretrained.train("gaussian", grey=True, max_minutes=1e-6, data_dir=data_folder, folder=folder,
                     profile_override=little, progress=False, rt=CPU)
    assert load_checkpoint(pretrained.state_path("gaussian-grey", folder))["step"] == 1
    history = pretrained.train("gaussian", grey=True, data_dir=data_folder, folder=folder, profile_override=little,
                               progress=False, rt=CPU)
    assert history.step[-1] == 6 and [(c["start_step"], c["end_step"]) for c in history.chunks] == [(0, 1), (1, 6)]
    weights = pretrained_path("gaussian-grey", folder)
    assert weights.name == "unet_gaussian_grey_blind.pth" and not pretrained.state_path("gaussian-grey", folder).exists()
    shipped = load_checkpoint(weights)
    assert shipped["finished"] and shipped["model_args"] == {"name": "unet", "channels": 1}
    assert shipped["model"]["enc_conv0.weight"].shape[1] == 1 and shipped["config"]["init"] == "pretrained:gaussian"
    assert shipped["pretrained"]["command"] == "make pretrained NOISE=gaussian GREY=1" and shipped["pretrained"]["grey"]
    card = pretrained.write_card(folder, data_dir=data_folder, rt=Runtime.resolve("cpu", "fp32")).read_text()
    assert "## `unet_gaussian_blind.pth`" in card
    grey_section = card.split("## `unet_gaussian_grey_blind.pth`: blind Gaussian U-Net, grey (1 channel)")[1]
    assert "grey versions of the test sets" in grey_section
    assert [r.split(" | ")[1] for r in grey_section.splitlines() if r.startswith("| kodak |")] == ["15", "25", "50"]
    # without --checkpoint, n2n denoise takes grey images through the grey weights where they exist
    monkeypatch.setattr("n2n_core.paths.pretrained_dir", lambda: folder)
    from PIL import Image
    Image.open(PHOTO).convert("L").crop((0, 0, 48, 40)).save(tmp_path / "grey.png")
    assert main(["denoise", str(tmp_path / "grey.png"), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "Grey images: pretrained:gaussian-grey" in out and "[grey weights (pretrained:gaussian-grey)]" in out
    assert Image.open(tmp_path / "out" / "grey.png").mode == "L"


def test_pretrained_grey_is_a_flag_of_the_command_and_of_make():
    from n2n_core.cli.parser import parser

    assert parser().parse_args(["pretrained", "--grey"]).grey
    makefile = (Path(__file__).parent.parent / "Makefile").read_text()
    assert "$(if $(GREY),--grey,)" in makefile


# ------------------------------------------------------------------------------------------ make
def test_make_clean_keeps_the_shipped_weights(tmp_path):
    shutil.copy(Path(__file__).parent.parent / "Makefile", tmp_path / "Makefile")
    for name in ("checkpoints/pretrained/unet_gaussian_blind.pth", "checkpoints/unet_n2n_gaussian.pth",
                 "checkpoints/smoke/x.pth", "checkpoints/README.md", "reports/r.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    subprocess.run(["make", "-s", "clean"], cwd=tmp_path, check=True, capture_output=True)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == ["Makefile", "checkpoints/README.md", "checkpoints/pretrained/unet_gaussian_blind.pth"]


def test_the_shipped_run_configuration_is_the_one_this_code_builds():
    """`make pretrained` goes on from a committed training state only if the run configuration this
    code builds matches the one the run recorded (the shipped weights keep it; a config refactoring
    once made the committed state refuse to resume, 'differs in: data')."""
    from n2n_core.training.train import _identity

    stored = load_checkpoint(SHIPPED)["config"]
    prof = pretrained.profile()
    data = {**stored["data"], "data_config": dataclasses.asdict(prof.data)}  # the pool: as recorded
    assert _identity(stored) == _identity(pretrained.make_run_config("gaussian", prof, data))
    # a state written before EvalConfig split from DataConfig recorded the evaluation fields too
    before = {**data, "data_config": {**data["data_config"], "test_limit": None, "test_crop": None, "test_sets": None,
                                      "test_repeats": [], "test_limits": [], "baseline_sets": None,
                                      "baseline_limit": None}}
    assert _identity({**stored, "data": before}) == _identity(stored)
    changed = dataclasses.replace(prof, data=dataclasses.replace(prof.data, train_patches=prof.data.train_patches + 1))
    moved = {**data, "data_config": dataclasses.asdict(changed.data)}
    assert _identity(stored) != _identity(pretrained.make_run_config("gaussian", changed, moved))


# ------------------------------------------------------------------------------ make blindcheck
def test_blindcheck_trains_blind_and_per_level_runs_and_reports_the_gap(little, data_folder, output_dir):
    from n2n_core.studies import blindcheck

    noises = blindcheck.run_noises((15.0, 50.0))
    assert list(noises) == ["blind", "sigma15", "sigma50"]
    assert noises["blind"].train_sigma_range == (0.0, 50.0)
    assert noises["sigma15"].train_sigma_range is None and noises["sigma15"].sigma == 15.0
    with pytest.raises(ValueError, match="sigma 60 is outside the blind range 0-50"):
        blindcheck.run_noises((25.0, 60.0))

    rows = blindcheck.blind_check(3, (15.0, 50.0), data_folder, rt=CPU, progress=False, profile_override=little)
    assert [r["sigma"] for r in rows] == [15.0, 50.0]
    for r in rows:
        assert r["gap"] == pytest.approx(r["blind"] - r["level_specific"], abs=0.011)
        assert r["holds"] == (r["blind"] >= r["level_specific"] - blindcheck.LIMIT_DB)
    folder = output_dir / "checkpoints" / "blindcheck" / "3"
    runs = {name: load_checkpoint(folder / f"unet_{name}.pth") for name in ("blind", "sigma15", "sigma50")}
    assert all(r["finished"] and r["step"] == 3 for r in runs.values())
    assert runs["blind"]["config"]["noise"]["train_sigma_range"] == [0.0, 50.0]
    assert runs["sigma50"]["config"]["noise"]["sigma"] == 50.0
    report = (output_dir / "reports" / "blindcheck.md").read_text()
    assert "3 steps each" in report and f"| 50 | {rows[1]['blind']:.2f} |" in report
    # finished runs are not retrained: the same numbers again
    assert blindcheck.blind_check(3, (15.0, 50.0), data_folder, rt=CPU, progress=False,
                                  profile_override=little) == rows


def test_blindcheck_at_the_shipped_budget_measures_the_shipped_weights_and_goes_on_in_chunks(
        little, data_folder, output_dir, tmp_path):
    from n2n_core.studies import blindcheck

    ship = tmp_path / "ship"
    pretrained.train("gaussian", data_dir=data_folder, folder=ship, profile_override=little, progress=False,
                     rt=CPU)
    steps = little.train.max_steps
    # a chunk of (almost) no time: the level run stops after one step, no report yet
    assert blindcheck.blind_check(steps, (50.0,), data_folder, rt=CPU, progress=False, profile_override=little,
                                  max_minutes=1e-6, shipped_folder=ship) is None
    folder = output_dir / "checkpoints" / "blindcheck" / str(steps)
    state = load_checkpoint(folder / "unet_sigma50.pth")
    assert state["step"] == 1 and not state["finished"]
    assert not (output_dir / "reports" / "blindcheck.md").exists()
    with pytest.raises(ValueError, match="--max-minutes must be > 0, got 0"):
        blindcheck.blind_check(steps, (50.0,), data_folder, profile_override=little, max_minutes=0)
    # the same call goes on, and the blind row is the shipped weights, not a new run
    rows = blindcheck.blind_check(steps, (50.0,), data_folder, rt=CPU, progress=False, profile_override=little,
                                  shipped_folder=ship)
    assert load_checkpoint(folder / "unet_sigma50.pth")["finished"] and not (folder / "unet_blind.pth").exists()
    shipped = evaluate_sets(load_model(pretrained_path("gaussian", ship)), pretrained._sources(data_folder), ["kodak"],
                            NoiseConfig(kind="gaussian", sigma=50.0), rt=Runtime.resolve(precision="fp32"))["kodak"]
    assert rows[0]["blind"] == round(shipped.psnr, 2)
    assert "The blind model is the shipped weights" in (output_dir / "reports" / "blindcheck.md").read_text()
    assert json.loads((output_dir / "reports" / "blindcheck.json").read_text())["blind_is_shipped"] is True
    # weights of another recipe (here: another budget) are not taken for the blind run
    other = blindcheck.blind_check(steps - 1, (50.0,), data_folder, rt=CPU, progress=False,
                                   profile_override=little, shipped_folder=ship)
    assert (output_dir / "checkpoints" / "blindcheck" / str(steps - 1) / "unet_blind.pth").exists()
    assert len(other) == 1 and not json.loads((output_dir / "reports" / "blindcheck.json").read_text())[
        "blind_is_shipped"]


def test_blindcheck_interrupted_says_where_it_stopped_in_one_line(monkeypatch, capsys, tmp_path):
    from n2n_core.studies import blindcheck
    from n2n_core.training.interrupts import TrainingInterrupted

    def interrupted(*args, **kwargs):
        raise TrainingInterrupted(2, 123, tmp_path / "unet_sigma50.pth")

    monkeypatch.setattr(blindcheck, "blind_check", interrupted)
    with pytest.raises(SystemExit) as stop:
        blindcheck.main(["--steps", "5"])
    assert stop.value.code == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted at step 123:" in err and "unet_sigma50.pth holds it" in err
    assert "the same command resumes" in err and "(SIGINT)" in err
