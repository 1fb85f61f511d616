"""Notebook 11's parts: the captures source with references (clean targets, Nb2Nb on every capture,
a named subset of scenes), where the real captures come from (a folder, the checked download through
the one downloader, the simulated stand-in offline) and the study end to end on a tiny stand-in. All
data here are generated; the real FMD captures are never read."""
from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
import torch
from test_captures import write_captures

from n2n_core.config import PROFILES, RealNoise, TrainConfig
from n2n_core.data import fmd
from n2n_core.data.neighbor import SingleCrops
from n2n_core.data.sources import CaptureCrops, CaptureFolders, DataError, load_scenes
from n2n_core.evaluation import baselines, claims
from n2n_core.studies import experiment, realnoise
from n2n_core.training.runtime import Runtime

CPU = Runtime.resolve("cpu")


def _cfg(target: str = "noisy", crop: int = 16) -> TrainConfig:
    return TrainConfig(target=target, crop=crop, batch_size=4, max_steps=2, val_every=1)


def test_clean_targets_are_the_reference_and_validation_measures_against_it(tmp_path):
    root = write_captures(tmp_path / "cap", scenes=3, captures=3, grey=True, reference=tmp_path / "ref")
    source = CaptureFolders(root, tmp_path / "ref", ("scene0", "scene1"), hold_out=False)
    prepared = source.prepare(_cfg("clean"))
    assert isinstance(prepared.sampler, CaptureCrops) and prepared.sampler.reference
    assert len(prepared.sampler.scenes) == 2  # the named scenes only, the held-out one trained on too
    refs = {s: torch.tensor(__import__("numpy").asarray(__import__("PIL.Image", fromlist=["x"]).open(
        tmp_path / "ref" / s / "clean.png"))) for s in ("scene0", "scene1")}
    batch = prepared.sampler.sample()
    for target in batch.target:  # every target is a crop (flipped or turned) of a reference, never a capture
        values = set((target[0] * 255).round().to(torch.uint8).flatten().tolist())
        assert any(values <= set(r.flatten().tolist()) for r in refs.values())
    noisy, reference = prepared.val_pairs
    assert noisy.shape == reference.shape and "against their references (also trained on)" in \
        prepared.described["validation"]
    with pytest.raises(DataError, match="need the reference of each scene"):
        CaptureFolders(root).prepare(_cfg("clean"))
    with pytest.raises(DataError, match="has no scene 'scene9'"):
        CaptureFolders(root, scenes=("scene9",)).prepare(_cfg())


def test_nb2nb_on_captures_trains_on_every_capture_as_a_single_one(tmp_path):
    root = write_captures(tmp_path / "cap", scenes=3, captures=4, grey=True)
    prepared = CaptureFolders(root, hold_out=False).prepare(_cfg("nb2nb"))
    assert isinstance(prepared.sampler, SingleCrops) and len(prepared.sampler.images) == 12
    assert prepared.sampler.images[0].shape[0] == 3 and prepared.sampler.sample().input.shape[-1] == 8


def test_load_scenes_by_name(tmp_path):
    root = write_captures(tmp_path / "cap", scenes=3, captures=2)
    assert [s.name for s in load_scenes(root, names=("scene2", "scene0"))] == ["scene0", "scene2"]


def _fake_fmd(folder, scenes=("1", "2"), captures=2, size=16):
    """A folder laid out as FMD's: raw/<fov>/*.png and gt/<fov>/avg50.png (generated)."""
    write_captures(folder / "raw", scenes=len(scenes), captures=captures, size=size, grey=True,
                   reference=folder / "gt")
    for k, name in enumerate(scenes):
        (folder / "raw" / f"scene{k}").rename(folder / "raw" / name)
        (folder / "gt" / f"scene{k}").rename(folder / "gt" / name)
    return folder


def test_the_captures_come_from_the_data_folder_first(tmp_path, monkeypatch):
    _fake_fmd(tmp_path / "data" / fmd.FOLDER)
    monkeypatch.setenv("N2N_DATA_DIR", str(tmp_path / "data"))
    assert fmd.lookup() == ("folder", tmp_path / "data" / fmd.FOLDER)
    found = fmd.find_captures()
    assert found.real and found.origin == "folder" and found.tag == "fmd" and found.note == ""
    assert found.captures == tmp_path / "data" / fmd.FOLDER / "raw" and found.test == ("19", "20")


def test_offline_the_stand_in_is_announced_in_one_line_and_not_comparable(capsys):
    assert fmd.lookup() == ("standin", None)
    found = fmd.find_captures(side=16, count=3)
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1 and "missing" in out and "NOT comparable" in out
    assert not found.real and found.tag == "standin" and "NOT comparable" in found.note
    scenes = load_scenes(found.captures, names=found.test)
    assert len(scenes) == 2 and scenes[0].captures.shape == (3, 1, 16, 16) and scenes[0].grey
    again = fmd.find_captures(side=16, count=3)  # written once, reused
    assert again.captures == found.captures


def test_the_download_is_checked_and_a_bad_file_falls_back(http_server, monkeypatch, capsys, output_dir):
    root, base, requested = http_server
    _fake_fmd(root, scenes=("1",))
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    sums = {name: hashlib.sha256((root / name).read_bytes()).hexdigest() for name in files}
    monkeypatch.setattr(fmd, "SHA256", sums)
    monkeypatch.setenv("N2N_FMD_URL", base + "/")
    found = fmd.find_captures(download_ok=True)
    assert found.origin == "download" and sorted(requested) == sorted("/" + n for n in files)
    assert (output_dir / "data" / "downloads" / fmd.FOLDER / files[0]).is_file()
    assert fmd.lookup(download_ok=False)[0] == "download"  # a complete cache is taken offline
    monkeypatch.setattr(fmd, "SHA256", {**sums, files[0]: "0" * 64})
    (output_dir / "data" / "downloads" / fmd.FOLDER / files[0]).unlink()
    fallback = fmd.find_captures(download_ok=True, side=16, count=2)
    assert fallback.origin == "standin" and "download failed" in capsys.readouterr().out


def test_each_run_takes_the_budget_and_the_fine_tuning_its_own_rate():
    budget = RealNoise(steps=30, batch_size=2, lr=1e-3, finetune_lr=2e-4, crop=16)
    profile = dataclasses.replace(PROFILES["smoke"], realnoise=budget)
    settings = {m: realnoise.real_settings(profile, m, seed=3) for m in realnoise.TRAINED}
    assert {m: s.target for m, s in settings.items()} == realnoise.TRAINED
    assert {m: s.lr for m, s in settings.items()} == {"n2n": 1e-3, "clean": 1e-3, "nb2nb": 1e-3, "finetuned": 2e-4}
    assert all(s.max_steps == 30 and s.crop == 16 and s.batch_size == 2 and s.seed == 3 for s in settings.values())


def test_the_study_end_to_end_on_a_tiny_stand_in(output_dir, capsys):
    tiny = RealNoise(steps=2, batch_size=2, crop=16, standin_side=24, standin_captures=3)
    profile = dataclasses.replace(PROFILES["smoke"], realnoise=tiny)
    study = realnoise.run_realnoise(profile, rt=CPU, progress=False)
    assert set(study.runs) == {"n2n", "clean", "nb2nb", "finetuned"}
    assert {"input", "mean2", "n2n", "clean", "nb2nb", "zeroshot", "finetuned"} <= set(study.psnr)
    assert study.runs["n2n"].checkpoint.name == "unet_n2n_standin.pth"
    assert study.runs["finetuned"].config["init"] == "pretrained:gaussian"
    data = experiment.read_results(profile)
    entry = data["studies"]["realnoise"]
    assert entry["real_data"] is False and "NOT comparable" in entry["noise"]
    assert data["runs"]["unet_clean_standin"]["standin_test"]["images"] == 2
    row = claims.claim_rows(data)[-1]
    assert "within 0.3 dB of the clean-target U-Net" in row["claim"] and row["holds"] in ("yes", "no")
    figure = realnoise.crop_figure(study, output_dir / "crop.png", rt=CPU)
    assert figure.stat().st_size > 1000
    realnoise.print_table(study)
    printed = capsys.readouterr().out
    assert "N2N - clean targets" in printed
    assert "than its reference" not in printed  # the stand-in's captures are unbiased draws of its reference
    again = realnoise.run_realnoise(profile, rt=CPU, progress=False)  # finished runs are reloaded
    networks = {k: v for k, v in study.psnr.items() if k != "bm3d"}
    assert {k: again.psnr[k] for k in networks} == networks and json.loads(json.dumps(entry))
    # BM3D (optional, third-party, multithreaded) may differ in the last digits between runs under load
    assert ("bm3d" in again.psnr) == baselines.available()
    if baselines.available():
        assert again.psnr["bm3d"] == pytest.approx(study.psnr["bm3d"], abs=0.02)
    ref = realnoise.reference(again, profile, 0, CPU, ["python", "-m", "n2n_core.studies.realnoise"])
    assert ref["real_data"] is False and ref["command"] == "python -m n2n_core.studies.realnoise"
    assert ref["runs"]["finetuned"]["init"] == "pretrained:gaussian" and ref["runs"]["n2n"]["steps"] == tiny.steps
    assert ref["n2n_minus_clean_db"] == round(again.psnr["n2n"] - again.psnr["clean"], 2)
    assert set(ref["per_scene_psnr_db"]["n2n"]) == set(again.data.test) and json.loads(json.dumps(ref))


def test_the_budget_is_checked():
    with pytest.raises(ValueError, match="even"):
        RealNoise(crop=63)
    with pytest.raises(ValueError, match="at least 2 captures"):
        RealNoise(standin_captures=1)
