"""The plan of `make all` (studies.plan): the projection's arithmetic, the progress lines, that the
planned runs are the ones the studies train, and that the Makefile prints both."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import copy_checkout, make_env

from n2n_core.config import PROFILES
from n2n_core.studies import experiment, methods, plan, realnoise, yourdata
from n2n_core.studies.plan import PlannedRun, Timing

ROOT = Path(__file__).parent.parent


def test_the_projection_is_steps_times_step_time_plus_evaluation_plus_the_start():
    unet = PlannedRun("unet_n2n_gaussian", "unet", "noisy", 2, 64, 1000, None)
    resnet = PlannedRun("resnet_n2n_gaussian", "resnet", "noisy", 2, 64, None, 300.0)
    timing = Timing({unet.setting: 0.5}, {"unet": 2.0, "resnet": 3.0}, overhead=10.0)
    runs = {"a": [unet, resnet], "b": [unet], "c": []}
    trained = {unet.name: (400, 200.0), resnet.name: (0, 0.0)}  # 600 steps of the U-Net left
    projected = plan.project(runs, timing, trained, {"a": [("unet", 1.5), ("resnet", 1.0)]})
    assert projected["a"] == pytest.approx(600 * 0.5 + 300.0 + 1.5 * 2.0 + 1.0 * 3.0 + 10.0)
    assert projected["b"] == 10.0 and projected["c"] == 10.0  # b reloads the U-Net that a trains
    assert plan.project({"b": [unet]}, timing, trained, {})["b"] == pytest.approx(300 + 10.0)
    trained[unet.name] = None  # finished in its checkpoint: reloaded
    assert plan.project(runs, timing, trained, {})["a"] == pytest.approx(300.0 + 10.0)
    assert [plan.duration(s) for s in (40, 420, 7500)] == ["40 s", "7 min", "2 h 05 min"]


def test_progress_rescales_the_time_left_by_the_notebooks_so_far(tmp_path):
    data = {"run": "7", "notebooks": ["a", "b", "c"], "projected": {"a": 100.0, "b": 50.0, "c": 150.0}, "started": None}
    path = tmp_path / ".plan.json"
    path.write_text(json.dumps(data))
    assert plan.progress(path, "a", "7") == "[1/3] a: about 5 min left"
    assert json.loads(path.read_text())["started"] is not None  # the clock starts with the first notebook
    data["started"] = 1000.0
    line = plan.progress_line(data, "c", now=1000.0 + 300.0)  # a and b took twice their projection
    assert line == "[3/3] c: about 5 min left (the notebooks so far took 2.00x their projection)"
    short = {"notebooks": ["a", "b", "c"], "projected": {"a": 5.0, "b": 4.0, "c": 1600.0}, "started": 1000.0}
    line = plan.progress_line(short, "b", now=1000.0 + 13.0)  # a kernel's start made a 2.6x slower than projected
    assert line == "[2/3] b: about 28 min left (the notebooks so far took 2.60x their projection)"  # not 1 h 10
    assert plan.progress(path, "a", "8") is None  # another make's plan
    assert plan.progress(path, "d", "7") is None and plan.progress(tmp_path / "none", "a", "7") is None


def test_the_fixed_start_is_timed_on_make_alls_papermill_command(tmp_path):
    """The start per notebook is one run of the command make all executes notebooks with, here a
    stand-in that keeps the notebook it was given and takes a known time; a command that fails
    falls back to a Python process that imports the study."""
    script = tmp_path / "papermill"
    script.write_text(f"#!{sys.executable}\nimport shutil, sys, time\ntime.sleep(0.5)\n"
                      f"shutil.copy(sys.argv[-2], {str(tmp_path / 'given.ipynb')!r})\n")
    script.chmod(0o755)
    assert plan.time_start([str(script), "-k", "n2n"]) >= 0.5
    cells = json.loads((tmp_path / "given.ipynb").read_text())["cells"]
    assert [c["source"] for c in cells] == [plan.START_CELL]
    assert plan.time_start([str(tmp_path / "missing")]) > 0  # no such command: the bare start, not an error


def test_an_unknown_notebook_is_one_line(capsys):
    from n2n_core.cli.main import main

    assert main(["plan", "--profile", "smoke", "03_noise2noise_unet", "99_nothing"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown notebook '99_nothing'; choose from 00_quickstart") and "\n" not in err


# --------------------------------------------------------------- planned runs = trained runs
def _recorded(spec, rt, **_):
    cfg = spec.settings(rt.precision)
    _recorded.runs.append(PlannedRun(spec.name, spec.model.name, cfg.target, cfg.batch_size, cfg.crop, cfg.max_steps,
                                     None if cfg.max_steps is not None else cfg.max_seconds))
    return experiment.TrainedRun(spec.name, torch.nn.Identity(), experiment.History(), Path(spec.checkpoint), {})


def _cli_recorded(rt, source: str):
    """yourdata.cli with its `n2n train` read by the command line's own parser and settings, not run."""
    from n2n_core.cli.main import train_settings
    from n2n_core.cli.parser import parser

    def cli(*args):
        args = parser().parse_args([str(a) for a in args])
        cfg = train_settings(args, PROFILES[args.profile], source, rt.precision)
        _recorded.runs.append(PlannedRun(Path(args.out).stem, args.model, cfg.target, cfg.batch_size, cfg.crop,
                                         cfg.max_steps, None))
    return cli


@pytest.fixture
def recorder(monkeypatch, tmp_path):
    """The studies with ``train_run`` recorded and their evaluation left out."""
    _recorded.runs = []
    patches = torch.zeros(4, 3, 48, 48, dtype=torch.uint8)
    monkeypatch.setenv("N2N_OUTPUT_DIR", str(tmp_path))
    monkeypatch.setattr(experiment, "train_run", _recorded)
    monkeypatch.setattr(realnoise, "train_run", _recorded)
    monkeypatch.setattr(experiment, "load_patches", lambda *a, **k: SimpleNamespace(train=patches, val=patches, meta={}))
    monkeypatch.setattr(methods, "data_sources", lambda *a: SimpleNamespace(main_test_set="kodak", comparable=False))
    monkeypatch.setattr(methods, "evaluate_run", lambda *a, **k: {"kodak": SimpleNamespace(psnr=0.0, psnr_input=0.0,
                                                                                          names=["x"])})
    monkeypatch.setattr(methods, "record_results", lambda *a, **k: None)
    monkeypatch.setattr(methods, "update_results", lambda *a, **k: None)
    monkeypatch.setattr(yourdata, "load_checkpoint", lambda *a, **k: {"history": experiment.History().to_dict()})
    return monkeypatch


def test_the_studies_train_the_planned_runs(recorder, tmp_path):
    """Each notebook's training calls, as the notebook makes them (its parameters from its own cell),
    with train_run recorded: what they train is the plan's list, run for run and setting for setting.
    A study that trains other runs, or a plan not changed with it, fails here."""
    cfg, rt = PROFILES["smoke"], experiment.runtime("cpu", "fp32")
    p = {name: plan.notebook_parameters(name) for name in plan.notebook_names()}
    calls = {
        "02_noise2noise_resnet": lambda: experiment.train("resnet", "noisy", cfg, sigma=p["02_noise2noise_resnet"]["sigma"],
                                                          rt=rt),
        "03_noise2noise_unet": lambda: experiment.train("unet", "noisy", cfg, sigma=p["03_noise2noise_unet"]["sigma"], rt=rt),
        "04_discriminative_unet": lambda: [experiment.train("unet", t, cfg, sigma=p["04_discriminative_unet"]["sigma"], rt=rt)
                                           for t in ("clean", "noisy")],
        "05_paper_table": lambda: experiment.train_table_models(cfg, rt=rt, noises=p["05_paper_table"]["noises"]),
        "06_your_own_data": lambda: [yourdata.train_pairs(experiment.checkpoint_path(cfg.name, name), tmp_path, cfg.name,
                                                          cfg.own_steps, rt=rt, init=init)
                                     for name, init in (("notebook06_unet_pairs", None),
                                                        ("notebook06_unet_pairs_finetuned", "pretrained:gaussian"))],
        "07_losses_text_impulse": lambda: [
            methods.run_study(cfg, cfg.noise_config("text").at_level(p["07_losses_text_impulse"]["text_p"]),
                              ("l2", "l1", "clean"), rt=rt),
            methods.run_study(cfg, cfg.noise_config("impulse").at_level(p["07_losses_text_impulse"]["impulse_p"]),
                              ("l2", "l1", "l0", "clean"), rt=rt)],
        "08_brown_noise": lambda: [methods.run_study(cfg, cfg.noise_config("brown").at_level(p["08_brown_noise"]["sigma"])
                                                     .with_options(brown_width=w), ("n2n", "clean"), rt=rt)
                                   for w in p["08_brown_noise"]["widths"]],
        "09_single_capture": lambda: [methods.run_study(cfg, cfg.noise_config(k), ("clean", "n2n", "nb2nb"), rt=rt)
                                      for k in p["09_single_capture"]["kinds"]] + [
            yourdata.train_pairs(experiment.checkpoint_path(cfg.name, "notebook09_unet_single"), tmp_path, cfg.name,
                                 cfg.own_steps, rt=rt, source="single")],
        "10_capture_budget": lambda: methods.run_capture_study(cfg, rt=rt),
        "11_real_noise": lambda: [realnoise.train_real(cfg, m, SimpleNamespace(captures=tmp_path, references=tmp_path,
                                                                               train=(), tag=plan._realnoise_tag(),
                                                                               origin="standin"), rt=rt)
                                  for m in realnoise.TRAINED],
    }
    planned = plan.notebook_runs(cfg, rt.precision)
    assert sorted(planned) == plan.notebook_names() and planned["00_quickstart"] == planned["01_data_augmentation"] == []
    for notebook, call in calls.items():
        _recorded.runs = []
        with pytest.MonkeyPatch.context() as m:
            m.setattr(yourdata, "cli", _cli_recorded(rt, "single" if notebook.startswith("09") else "pairs"))
            call()
        assert _recorded.runs == planned[notebook], notebook


# ------------------------------------------------------------------------------ the Makefile
@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of the repository whose smoke notebooks all look executed, with a .venv whose python is
    this one (on the copy's package) and whose papermill copies the notebook."""
    made = [".venv/.installed", ".venv/.bm3d", ".venv/share/jupyter/kernels/n2n/kernel.json",
            "data/patches_smoke_seed0.pt", "reports/smoke/results.json"]
    copy_checkout(tmp_path, made + [f"reports/smoke/{name}.ipynb" for name in plan.notebook_names()])
    bin_ = tmp_path / ".venv" / "bin"
    bin_.mkdir(parents=True)
    (bin_ / "python").write_text(f"#!/bin/sh\nPYTHONPATH={tmp_path} exec {sys.executable} \"$@\"\n")
    (bin_ / "papermill").write_text("#!/bin/sh\nfor last; do :; done\necho '{}' > \"$last\"\n")
    for script in bin_.iterdir():
        script.chmod(0o755)
    return tmp_path


def test_make_all_prints_the_plan_and_a_progress_line_before_each_notebook(checkout):
    """Only the notebooks that are out of date are planned and counted (here the two that run the
    command line, after an edit of it), each announced as k of N with the time left."""
    os.utime(checkout / "n2n_core" / "__main__.py")
    env = make_env()
    done = subprocess.run(["make", "all", "PROFILE=smoke", f"N2N_OUTPUT_DIR={checkout}"], cwd=checkout,
                          capture_output=True, text=True, env=env | {"N2N_OFFLINE": "1"}, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    lines = done.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("make all (smoke profile) runs on cpu"))
    assert "2 notebook(s) to execute, projected" in lines[start + 1]
    assert [line.split()[0] for line in lines[start + 2:start + 4]] == ["06_your_own_data", "09_single_capture"]
    progress = [line for line in lines if line.startswith("[")]
    assert [p.split(":")[0] for p in progress] == ["[1/2] 06_your_own_data", "[2/2] 09_single_capture"]
    assert all(" left" in p for p in progress)
    papermill = [i for i, line in enumerate(lines) if "papermill" in line]
    assert start < papermill[0] and len(papermill) == 2


# ------------------------------------------------------------------------------ its accuracy, measured
def _accuracy_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location("plan_accuracy", ROOT / "tools" / "plan_accuracy.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_accuracy_tool_compares_the_plan_with_papermills_durations(tmp_path, capsys):
    """The command writes a plan of three notebooks and executes two (one failed): the finished one is
    compared, the others are listed as not finished; a stale notebook from before the run is not taken."""
    reports = tmp_path / "reports"
    reports.mkdir()
    stale = reports / "03_c.ipynb"
    stale.write_text(json.dumps({"metadata": {"papermill": {"duration": 1.0}}}))
    os.utime(stale, (0, 0))
    script = (
        "import json, pathlib; r = pathlib.Path(r'%s');"
        "(r / '.plan.json').write_text(json.dumps({'notebooks': ['01_a', '02_b', '03_c'],"
        " 'projected': {'01_a': 100.0, '02_b': 50.0, '03_c': 10.0}}));"
        "(r / '01_a.ipynb').write_text(json.dumps({'metadata': {'papermill': {'duration': 120.0}}}));"
        "(r / '02_b.ipynb').write_text(json.dumps({'metadata': {'papermill': {'duration': 3.0, 'exception': True}}}))"
        % reports)
    out = tmp_path / "accuracy.json"
    tool = _accuracy_tool()
    assert tool.main(["--reports", str(reports), "--out", str(out), "--", sys.executable, "-c", script]) == 0
    written = json.loads(out.read_text())
    assert written["notebooks"] == {"01_a": {"projected_s": 100.0, "measured_s": 120.0, "measured_over_projected": 1.2}}
    assert written["not_finished"] == ["02_b", "03_c"]
    assert written["total"]["measured_over_projected"] == 1.2 and written["exit_code"] == 0
    assert "commit" in written and "cpu" in written and written["command"].startswith("python tools/plan_accuracy.py")
    assert tool.main(["--reports", str(tmp_path / "none"), "--", sys.executable, "-c", "pass"]) == 2
    assert "was not written by this command" in capsys.readouterr().err
