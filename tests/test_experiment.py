"""The notebook-level pipeline, end to end on tiny synthetic data: patches, training, evaluation, results."""
from __future__ import annotations

import json

import torch

from n2n_core.studies import experiment
from n2n_core import load_model, paths
from n2n_core.training.runtime import Runtime


def _repo_outputs() -> dict:
    """The files (and their modification times) of the repository's own output folders."""
    found = {}
    for name in ("data", "checkpoints", "reports"):
        for p in (paths.PROJECT_ROOT / name).rglob("*"):
            found[p] = p.stat().st_mtime_ns
    return found


def test_pipeline_writes_only_under_the_output_dir(data_folder, output_dir, monkeypatch, tiny_profile, capsys):
    monkeypatch.setenv("N2N_DATA_DIR", str(data_folder))
    repo_before = _repo_outputs()
    sets, path = experiment.prepare_patches(tiny_profile, seed=0)
    assert path.parent == output_dir / "data" and path.is_file()
    assert sets.train.shape == (12, 3, 24, 24) and sets.val.shape == (2, 3, 24, 24)
    assert sets.meta["origin"] == "folder"
    again, _ = experiment.prepare_patches(tiny_profile, seed=0)  # loaded, not cut again
    assert "Loaded" in capsys.readouterr().out and torch.equal(again.train, sets.train)

    run = experiment.train("resnet", "noisy", tiny_profile, seed=0, rt=Runtime.resolve("cpu"), progress=False)
    assert run.name == "resnet_n2n_gaussian"
    assert run.checkpoint == output_dir / "checkpoints" / "smoke" / "resnet_n2n_gaussian.pth"
    assert run.history.val_step[-1] == 2 and not run.model.training
    loaded = load_model(run.checkpoint, expect="resnet")
    x = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(loaded(x), run.model(x), atol=1e-6)

    results = experiment.evaluate_run(run.model, tiny_profile, rt=Runtime.resolve("cpu"))
    assert list(results) == ["kodak"] and len(results["kodak"].names) == 1  # eval.limit
    assert results["kodak"].extra == {"comparable_with_paper": False, "data": "folder", "available": 2}
    written = experiment.record_results(tiny_profile, run.name, results)
    assert written == output_dir / "reports" / "smoke" / "results.json"
    stored = json.loads(written.read_text())
    assert stored["runs"]["resnet_n2n_gaussian"]["kodak"]["images"] == 1
    assert experiment.read_results(tiny_profile) == stored
    assert _repo_outputs() == repo_before  # nothing written into the repository


def test_checkpoint_and_report_paths_follow_the_profile(output_dir):
    assert experiment.checkpoint_path("cpu", "unet_n2n_gaussian") == output_dir / "checkpoints" / "unet_n2n_gaussian.pth"
    assert experiment.checkpoint_path("paper", "x") == output_dir / "checkpoints" / "paper" / "x.pth"
    assert experiment.run_name("unet", "clean") == "unet_clean_gaussian"
    assert experiment.report_path("smoke", "r.json") == output_dir / "reports" / "smoke" / "r.json"


def test_train_takes_the_budget_of_its_number_format(data_folder, output_dir, monkeypatch, tiny_profile):
    # a budget for float32 only (with its own batch) is the one a float32 run gets; a bfloat16 one is not
    import dataclasses

    from n2n_core.config import Budget

    monkeypatch.setenv("N2N_DATA_DIR", str(data_folder))
    profile = dataclasses.replace(tiny_profile, budgets=(
        Budget("resnet", steps=5, precision="bf16", batch_size=6), Budget("resnet", steps=3, precision="fp32",
                                                                           batch_size=4)))
    experiment.prepare_patches(profile, seed=0)
    run = experiment.train("resnet", "noisy", profile, seed=0, rt=Runtime.resolve("cpu", "fp32"), progress=False)
    assert (run.config["train"]["max_steps"], run.config["train"]["batch_size"]) == (3, 4)
    assert run.history.step[-1] == 3 and run.history.precision == "fp32"
