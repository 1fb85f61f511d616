"""Neighbor2Neighbor (notebook 09, `n2n train --single`): the sub-sampler, the independence of the
two sub-images, the regulariser, a training run from the command line, and bad folders."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from n2n_core.evaluation import claims
from n2n_core.studies import methods
from n2n_core.__main__ import main
from n2n_core.training.checkpoint import load_checkpoint
from n2n_core.config import TrainConfig
from n2n_core.data.neighbor import NEIGHBOURS, draw_cells, gamma, nb2nb_loss, neighbour_batch, subsample
from n2n_core.paper.noise import BrownNoise, GaussianNoise
from n2n_core.training.runtime import Runtime


def test_every_cell_gives_two_different_neighbours_and_all_eight_choices_occur():
    n, h, w = 3, 8, 12
    ids = torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w).expand(n, 2, h, w).clone()
    cells = draw_cells(n, h, w, torch.Generator().manual_seed(0))
    first, second = subsample(ids, cells)
    assert first.shape == second.shape == (n, 2, h // 2, w // 2)
    rows, cols = torch.meshgrid(torch.arange(h // 2), torch.arange(w // 2), indexing="ij")
    for a, b in ((first, second),):
        ra, ca = a[:, 0] // w, a[:, 0] % w
        rb, cb = b[:, 0] // w, b[:, 0] % w
        assert torch.equal(ra // 2, rows.expand(n, -1, -1).float()) and torch.equal(ca // 2, cols.expand(n, -1, -1).float())
        assert torch.equal(rb // 2, rows.expand(n, -1, -1).float()) and torch.equal(cb // 2, cols.expand(n, -1, -1).float())
        assert torch.equal((ra - rb).abs() + (ca - cb).abs(), torch.ones_like(ra))  # neighbours: one step apart
    assert torch.equal(first[:, 0], first[:, 1])  # the same pixels in every channel
    assert set(draw_cells(4, 16, 16, torch.Generator().manual_seed(1)).unique().tolist()) == set(range(len(NEIGHBOURS)))


def test_an_odd_side_is_refused():
    with pytest.raises(ValueError, match="even sides.*7x8"):
        draw_cells(1, 8, 7, torch.Generator())


def _noise_correlation(noise) -> float:
    clean = torch.full((16, 3, 64, 64), 0.5)
    noisy = noise(clean, torch.Generator().manual_seed(0))
    first, second = subsample(noisy - clean, draw_cells(16, 64, 64, torch.Generator().manual_seed(1)))
    return float(torch.corrcoef(torch.stack([first.flatten(), second.flatten()]))[0, 1])


def test_the_sub_images_have_independent_noise_where_pixels_do_and_not_where_they_are_correlated():
    assert abs(_noise_correlation(GaussianNoise(25.0))) < 0.01
    assert _noise_correlation(BrownNoise(25.0, brown_width=1.0)) > 0.5  # why Nb2Nb fails on correlated noise


def test_the_regulariser_is_zero_for_a_network_that_is_the_identity_on_the_sub_sampled_grid():
    noisy = torch.rand(2, 3, 16, 16)
    batch = neighbour_batch(noisy, torch.Generator().manual_seed(0))
    assert torch.equal(batch.full, noisy) and batch.input.shape == (2, 3, 8, 8)
    main_term = ((batch.input - batch.target) ** 2).mean()
    loss = nb2nb_loss(batch.input, batch.target, batch.full, batch.cells, progress=1.0, final_gamma=2.0)  # f = id
    assert loss == pytest.approx(float(main_term), rel=1e-6)
    other = nb2nb_loss(batch.input, batch.target, batch.full * 0.5, batch.cells, progress=1.0, final_gamma=2.0)
    assert other > loss  # ... and not for another network
    assert (gamma(0.0, 2.0), gamma(0.5, 2.0), gamma(1.0, 2.0)) == (0.0, 1.0, 2.0)
    assert nb2nb_loss(batch.input, batch.target, batch.full * 0.5, batch.cells, 0.0, 2.0) == pytest.approx(
        float(main_term))


def test_the_regulariser_rises_to_the_configured_weight_and_that_weight_is_part_of_an_nb2nb_run():
    from n2n_core.config import get_profile
    from n2n_core.training.train import _identity

    noisy = torch.rand(2, 3, 16, 16)
    batch = neighbour_batch(noisy, torch.Generator().manual_seed(0))
    main_term = float(((batch.input - batch.target) ** 2).mean())
    loss = {g: float(nb2nb_loss(batch.input, batch.target, batch.full * 0.5, batch.cells, 0.5, final_gamma=g))
            for g in (0.0, 1.0, 2.0)}
    assert loss[0.0] == pytest.approx(main_term) and loss[1.0] > loss[0.0]
    assert loss[2.0] - loss[0.0] == pytest.approx(2 * (loss[1.0] - loss[0.0]), rel=1e-5)  # the weight scales it
    assert gamma(0.5, 1.0) == 0.5 and gamma(2.0, 1.0) == 1.0
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=f"nb2nb_gamma .*>= 0.*got {bad}"):
            TrainConfig(target="nb2nb", nb2nb_gamma=bad, max_steps=1)
    assert get_profile("cpu").train.nb2nb_gamma == 1.0 and get_profile("paper").train.nb2nb_gamma == 2.0
    # a checkpoint written before the weight was configurable trained with the authors' 2: it resumes
    # as that, not as a run of another weight; for other targets the weight decides nothing
    for target, differs in (("nb2nb", True), ("noisy", False)):
        before = {"train": {k: v for k, v in dataclasses.asdict(TrainConfig(target=target, max_steps=9)).items()
                            if k != "nb2nb_gamma"}}
        now = {"train": dataclasses.asdict(TrainConfig(target=target, max_steps=9))}
        other = {"train": dataclasses.asdict(TrainConfig(target=target, max_steps=9, nb2nb_gamma=1.0))}
        assert _identity(before) == _identity(now)
        assert (_identity(before) != _identity(other)) == differs


def test_nb2nb_needs_its_own_l2_loss_and_an_even_crop():
    with pytest.raises(ValueError, match="Neighbor2Neighbor.*loss 'l1'"):
        TrainConfig(target="nb2nb", loss="l1", max_steps=1)
    with pytest.raises(ValueError, match="crop 33"):
        TrainConfig(target="nb2nb", crop=33, max_steps=1)


@pytest.fixture
def single_folder(tmp_path):
    from conftest import write_noisy_pairs

    root = write_noisy_pairs(tmp_path / "captures", [(40, 44)] * 4)
    return root / "a"  # one capture of each scene


def test_train_single_then_denoise_from_the_command_line(single_folder, tmp_path, capsys):
    out = tmp_path / "single.pth"
    assert main(["train", "--single", str(single_folder), "--profile", "smoke", "--steps", "3", "--crop", "32",
                 "--batch-size", "2", "--val-every", "3", "--out", str(out), "--device", "cpu",
                 "--nb2nb-gamma", "0.5"]) == 0
    printed = capsys.readouterr().out
    assert f"Wrote {out}: 3 steps" in printed and "neighbour sub-images of 1 held-out capture" in printed
    config = load_checkpoint(out)["config"]
    assert config["method"] == "nb2nb" and config["train"]["target"] == "nb2nb"
    assert config["train"]["nb2nb_gamma"] == 0.5
    other = tmp_path / "single_gamma0.pth"  # the same run with the regulariser off trains other weights
    assert main(["train", "--single", str(single_folder), "--profile", "smoke", "--steps", "3", "--crop", "32",
                 "--batch-size", "2", "--val-every", "3", "--out", str(other), "--device", "cpu",
                 "--nb2nb-gamma", "0"]) == 0
    weights, weights_off = load_checkpoint(out)["model"], load_checkpoint(other)["model"]
    assert any(not torch.equal(weights[k], weights_off[k]) for k in weights)
    assert config["source"]["kind"] == "single" and config["source"]["images"] == 4
    denoised = tmp_path / "denoised"
    assert main(["denoise", str(single_folder), "--checkpoint", str(out), "--out", str(denoised)]) == 0
    assert sorted(p.name for p in denoised.iterdir()) == ["s0.png", "s1.png", "s2.png", "s3.png"]


@pytest.mark.parametrize("case,message", [
    ("empty", "no image files"),
    ("small", "s9.png is 20x20, smaller than the 32x32 training crop"),
    ("one", "holds 1 image; --single needs at least 2"),
    ("pairs_target", "Neighbor2Neighbor (target nb2nb) trains on single captures"),
])
def test_a_bad_single_capture_folder_is_one_line(single_folder, tmp_path, capsys, case, message):
    from conftest import smooth_image, write_png

    folder = tmp_path / case
    folder.mkdir()
    argv = ["train", "--single", str(folder), "--steps", "2", "--crop", "32", "--out", str(tmp_path / "x.pth")]
    if case == "small":
        for i in range(3):
            write_png(folder / f"s{i}.png", smooth_image(40, 40, i))
        write_png(folder / "s9.png", smooth_image(20, 20, 9))
    elif case == "one":
        write_png(folder / "s0.png", smooth_image(40, 40, 0))
    elif case == "pairs_target":
        argv = ["train", "--pairs", str(single_folder.parent), "--target", "nb2nb", "--steps", "2", "--crop", "32",
                "--out", str(tmp_path / "x.pth")]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.pth").exists()


def test_a_single_capture_study_reuses_nothing_it_should_not_and_fills_its_claims_row(data_folder, output_dir,
                                                                                      monkeypatch, tiny_profile):
    from n2n_core.studies import experiment
    from n2n_core.config import DataConfig
    from n2n_core.paper.noise import NoiseConfig

    monkeypatch.setenv("N2N_DATA_DIR", str(data_folder))
    profile = dataclasses.replace(tiny_profile, data=DataConfig(patch_size=32, train_patches=8, val_patches=2,
                                                                 val_image_every=3),
                                  train=dataclasses.replace(tiny_profile.train, crop=32))
    experiment.prepare_patches(profile, seed=0)
    study = methods.run_study(profile, NoiseConfig("gaussian"), ("n2n", "nb2nb"), rt=Runtime.resolve("cpu"), progress=False,
                              key="single_gaussian")
    run = study.runs["nb2nb"]
    assert run.name == "unet_nb2nb_gaussian" and study.runs["n2n"].name == "unet_n2n_gaussian"
    assert load_checkpoint(run.checkpoint)["config"]["method"] == "nb2nb"
    assert load_checkpoint(study.runs["n2n"].checkpoint)["config"]["method"] == "n2n"
    assert "single_gaussian" in experiment.read_results(profile)["studies"]
    row = next(r for r in claims.claim_rows(experiment.read_results(profile))
               if r["claim"].startswith("Single captures (gaussian)"))
    assert row["holds"] == "not measured"  # no clean-target run in this study
    assert "32.08" in row["paper"]


def test_the_single_capture_rule():
    def row(psnr):
        data = {"studies": {"single_poisson": {"psnr": psnr, "test_set": "kodak", "images": 24}}}
        return next(r for r in claims.claim_rows(data) if r["claim"].startswith("Single captures (poisson)"))

    assert row({"input": 21.0, "n2n": 30.0, "nb2nb": 29.5, "clean": 30.1})["holds"] == "yes"
    assert row({"input": 21.0, "n2n": 30.0, "nb2nb": 29.3, "clean": 30.1})["holds"] == "no"  # 0.7 dB behind N2N
    assert row({"input": 22.0, "n2n": 30.0, "nb2nb": 29.9, "clean": 30.1})["holds"] == "no"  # only 7.9 over the input
