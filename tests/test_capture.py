"""The capture budget (notebook 10): the paper's three cases, fixed captures, the pairs each case
draws, and the study end to end on tiny data."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from n2n_core.evaluation import claims
from n2n_core.studies import experiment, methods
from n2n_core.data.capture import CaptureCase, CaptureSampler, capture_cases, draw_captures
from n2n_core.training.checkpoint import load_checkpoint
from n2n_core.paper.noise import GaussianNoise
from n2n_core.training.runtime import Runtime


def test_the_cases_spend_the_same_budget_as_the_paper():
    one, two, three = capture_cases(2000, 20)  # the paper's
    assert (one.scenes, one.captures, two.scenes, two.captures, three.scenes, three.captures) == (100, 20, 100, 20,
                                                                                                  1000, 2)
    assert all(c.scenes * c.captures == 2000 for c in (one, two, three))
    assert (one.pairs, two.pairs, three.pairs) == (100, 100 * 20 * 19, 2000)
    assert (one.target, two.target, three.target) == ("average", "noisy", "noisy")


@pytest.mark.parametrize("budget,captures", [(201, 3), (200, 30), (200, 2), (2, 2)])
def test_a_budget_that_cannot_be_split_is_named(budget, captures):
    with pytest.raises(ValueError, match=f"budget of {budget} with {captures} captures"):
        capture_cases(budget, captures)


def test_a_case_with_too_few_captures_or_an_unknown_target_is_refused():
    with pytest.raises(ValueError, match="averaged target needs 2 other captures"):
        CaptureCase(1, 5, 2, "average")
    with pytest.raises(ValueError, match="unknown capture target 'mean'"):
        CaptureCase(1, 5, 5, "mean")


def _flat_scenes(count: int, size: int = 16) -> torch.Tensor:
    """Scenes of one grey level each (distinct), so that a crop or flip leaves them as they are."""
    return (torch.arange(count, dtype=torch.uint8) * 20 + 10).view(count, 1, 1, 1).expand(count, 3, size, size).clone()


def _which(sampler: CaptureSampler, image: torch.Tensor, scene: int) -> int:
    """The capture of ``scene`` that a whole-scene crop came from (flips keep the sorted values)."""
    values = image.flatten().sort().values
    found = [k for k in range(sampler.case.captures)
             if torch.equal(sampler.captures[scene, k].flatten().sort().values, values)]
    assert len(found) == 1
    return found[0]


def test_noisy_pairs_are_two_different_fixed_captures_of_one_scene_and_cover_every_pair():
    case = CaptureCase(2, 3, 4, "noisy")
    sampler = CaptureSampler(case, _flat_scenes(5), GaussianNoise(25.0), 16, 8, torch.Generator().manual_seed(0),
                             seed=0)
    seen = set()
    for _ in range(40):
        batch = sampler.sample()
        for noisy, target, clean in zip(batch.input, batch.target, batch.clean):
            scene = int(round(float(clean[0, 0, 0]) * 255 - 10)) // 20
            assert scene < 3  # only the case's scenes
            first, second = _which(sampler, noisy, scene), _which(sampler, target, scene)
            assert first != second
            seen.add((scene, first, second))
    assert len(seen) == case.pairs  # all 3 x 4 x 3 ordered pairs, from 320 draws


def test_an_averaged_target_is_the_mean_of_the_scenes_other_captures_and_its_input_is_one_capture():
    case = CaptureCase(1, 2, 5, "average")
    sampler = CaptureSampler(case, _flat_scenes(2, 32), GaussianNoise(25.0), 32, 16, torch.Generator().manual_seed(1),
                             seed=3)
    batch = sampler.sample()
    for noisy, target, clean in zip(batch.input, batch.target, batch.clean):
        scene = int(round(float(clean[0, 0, 0]) * 255 - 10)) // 20
        assert _which(sampler, noisy, scene) == 0  # the traditional way: one input per scene
        total = sampler.captures[scene].sum(0).flatten().sort().values
        assert torch.allclose((noisy + 4 * target).flatten().sort().values, total, atol=1e-4)
    residual = (batch.target - batch.clean).std() * 255  # sigma / sqrt(4)
    assert residual == pytest.approx(12.5, rel=0.05)


def test_captures_are_a_function_of_the_seed_and_shared_between_the_cases():
    scenes = _flat_scenes(4)
    one = draw_captures(scenes, 5, GaussianNoise(25.0), seed=0)
    assert torch.equal(one, draw_captures(scenes, 5, GaussianNoise(25.0), seed=0))
    assert not torch.equal(one, draw_captures(scenes, 5, GaussianNoise(25.0), seed=1))
    assert torch.equal(draw_captures(scenes[:2], 2, GaussianNoise(25.0), seed=0), one[:2, :2])  # case 3 vs 1-2
    assert one.dtype == torch.float32 and (one * 255 % 1 != 0).any()  # noise in float, not quantised


def test_a_patch_set_with_too_few_scenes_is_named():
    with pytest.raises(ValueError, match="case 3 needs 10 scenes, the training patch set has 4"):
        CaptureSampler(CaptureCase(3, 10, 2, "noisy"), _flat_scenes(4), GaussianNoise(25.0), 16, 2,
                       torch.Generator(), seed=0)


def test_the_capture_study_trains_each_case_records_it_and_fills_the_claims_row(data_folder, output_dir,
                                                                               monkeypatch, tiny_profile):
    from n2n_core.config import DataConfig

    monkeypatch.setenv("N2N_DATA_DIR", str(data_folder))
    profile = dataclasses.replace(tiny_profile, data=DataConfig(patch_size=32, train_patches=8, val_patches=2,
                                                                 val_image_every=3),
                                  train=dataclasses.replace(tiny_profile.train, crop=32), capture=(12, 3))
    experiment.prepare_patches(profile, seed=0)
    study = methods.run_capture_study(profile, rt=Runtime.resolve("cpu"), progress=False)
    assert study.key == "capture" and set(study.psnr) == {"case1", "case2", "case3", "input"}
    for name, scenes, target in (("case1", 4, "average"), ("case2", 4, "noisy"), ("case3", 6, "noisy")):
        run = study.runs[name]
        assert run.name == f"unet_capture_{name}"
        stored = load_checkpoint(run.checkpoint)["config"]
        assert stored["capture"] == {"number": int(name[-1]), "scenes": scenes, "captures": 3 if name != "case3" else 2,
                                     "target": target}
    entry = experiment.read_results(profile)["studies"]["capture"]
    assert entry["budget"] == 12 and entry["cases"]["case2"]["pairs"] == 4 * 3 * 2 and entry["cases"]["case1"]["pairs"] == 4
    assert entry["psnr"]["case3"] == pytest.approx(study.psnr["case3"], abs=1e-4)
    row = next(r for r in claims.write_claims(profile, experiment.read_results(profile))
               if r["claim"].startswith("Capture budget of 12"))
    assert row["holds"] in ("yes", "no") and "case 3: 6 scenes x 2" in row["claim"]


def test_the_capture_rule_is_the_papers_order():
    def row(psnr):
        data = {"studies": {"capture": {"psnr": psnr, "test_set": "kodak", "images": 24, "budget": 200}}}
        return next(r for r in claims.claim_rows(data) if r["claim"].startswith("Capture budget of 200"))

    assert row({"input": 20, "case1": 29.0, "case2": 29.2, "case3": 29.6})["holds"] == "yes"
    assert row({"input": 20, "case1": 29.3, "case2": 29.2, "case3": 29.6})["holds"] == "no"
    assert row({"input": 20, "case1": 29.0, "case2": 29.7, "case3": 29.6})["holds"] == "no"
    assert row({"input": 20, "case1": 29.0})["holds"] == "not measured"
