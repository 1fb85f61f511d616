"""A result records where it came from: ``provenance`` and the "provenance" of results.json."""
from __future__ import annotations

import json
import subprocess

import torch

from n2n_core.studies import experiment
from n2n_core import provenance


def test_results_json_records_its_provenance(output_dir, tiny_profile):
    path = experiment.update_results(tiny_profile, lambda data: data.setdefault("runs", {}).__setitem__("r", {}))
    data = json.loads(path.read_text())
    assert data["runs"] == {"r": {}} and data["profile"] == tiny_profile.name
    prov = data["provenance"]
    assert set(prov) == {"commit", "torch", "cpu", "gpu", "command", "date"}
    assert prov["torch"] == torch.__version__
    assert prov["cpu"] and "AVX2" in prov["cpu"]  # the CPU's name and its features
    assert prov["commit"] is None or len(prov["commit"]) == 40
    assert prov["date"].endswith("+00:00")


def test_provenance_names_the_command_and_the_checked_out_commit():
    prov = provenance.provenance(["n2n", "eval", "a file.pth"])
    assert prov["command"] == "n2n eval 'a file.pth'"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=provenance.PROJECT_ROOT, capture_output=True, text=True)
    if head.returncode == 0:  # a checkout with git; a copy without it records None (below)
        assert prov["commit"] == head.stdout.strip()


def test_no_git_gives_no_commit(monkeypatch):
    def missing(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", missing)
    assert provenance.git_commit() is None
    assert provenance.provenance()["commit"] is None


def test_a_folder_outside_any_repository_gives_no_commit(tmp_path):
    assert provenance.git_commit(tmp_path) is None
