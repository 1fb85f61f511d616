"""Training on a user's own data: noisy pairs in folders, the Kaggle pickles, clean folders."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import smooth_image, write_noisy_pairs, write_png

from n2n_core.training.checkpoint import load_checkpoint, load_model
from n2n_core.config import ModelConfig, NoiseConfig, TrainConfig
from n2n_core.data.sources import DataError, PairedCrops, load_pairs, load_pickle_pair
from n2n_core.training.own import train_own
from n2n_core.training.runtime import Runtime

CPU = Runtime.resolve("cpu")

SMALL = ModelConfig("resnet", depth=4, width=8)
QUICK = TrainConfig(crop=16, batch_size=2, max_steps=4, val_every=2, lr=1e-3)


@pytest.fixture
def pairs_dir(tmp_path):
    """pairs/a and pairs/b: two independent noisy captures of 5 smooth scenes."""
    return write_noisy_pairs(tmp_path / "pairs", [(28 + i, 34) for i in range(5)], sigma=25.0, prefix="scene")


def test_paired_crops_cut_both_captures_alike_and_swap_roles():
    base = torch.arange(3 * 20 * 24, dtype=torch.int64).reshape(3, 20, 24) % 200
    first, second = base.to(torch.uint8), (base + 1).to(torch.uint8)  # the second is one level brighter
    sampler = PairedCrops([first], [second], crop=8, batch_size=64, generator=torch.Generator().manual_seed(0))
    batch = sampler.sample()
    diff = (batch.target - batch.input) * 255
    assert batch.input.shape == (64, 3, 8, 8) and batch.mask is None
    per_sample = diff.round().flatten(1)
    # the same crop and flip of both captures: the difference is exactly +1 or -1 level everywhere
    assert ((per_sample == 1).all(1) | (per_sample == -1).all(1)).all()
    # and both directions are used
    assert (per_sample[:, 0] == 1).any() and (per_sample[:, 0] == -1).any()


def test_train_on_a_pairs_folder_end_to_end(pairs_dir, tmp_path):
    out = tmp_path / "own.pth"
    run = train_own("pairs", [pairs_dir], SMALL, QUICK, out=out, rt=CPU, progress=False)
    state = load_checkpoint(out)
    assert state["finished"] and state["step"] == 4
    assert state["config"]["source"]["kind"] == "pairs" and state["config"]["source"]["pairs"] == 5
    assert "second capture" in state["config"]["source"]["validation"]
    assert len(run.history.val_psnr) == 2 and run.history.val_psnr_input is not None
    model = load_model(out)
    assert model(torch.rand(1, 3, 20, 20)).shape == (1, 3, 20, 20)


def test_train_from_two_named_folders(pairs_dir, tmp_path):
    run = train_own("pairs", [pairs_dir / "a", pairs_dir / "b"], SMALL, QUICK, out=tmp_path / "x.pth",
                    rt=CPU, progress=False)
    assert run.config["source"]["path"][0].endswith("a")


def test_a_finished_checkpoint_is_not_overwritten_without_permission(pairs_dir, tmp_path):
    out = tmp_path / "own.pth"
    train_own("pairs", [pairs_dir], SMALL, QUICK, out=out, rt=CPU, progress=False)
    before = out.read_bytes()
    with pytest.raises(DataError, match=r"already trained \(4 steps\); pass --overwrite"):
        train_own("pairs", [pairs_dir], SMALL, QUICK, out=out, rt=CPU, progress=False)
    assert out.read_bytes() == before
    longer = dataclasses.replace(QUICK, max_steps=6)
    train_own("pairs", [pairs_dir], SMALL, longer, out=out, overwrite=True, rt=CPU, progress=False)
    assert load_checkpoint(out)["step"] == 6


def test_a_checkpoint_of_another_model_at_out_is_refused(pairs_dir, tmp_path):
    out = tmp_path / "own.pth"
    unfinished = dataclasses.replace(QUICK, max_steps=4)
    train_own("pairs", [pairs_dir], SMALL, unfinished, out=out, rt=CPU, progress=False)
    state = load_checkpoint(out)
    state["finished"] = False  # as if interrupted
    torch.save(state, out)
    with pytest.raises(DataError, match=r"with other settings; this call asks for .*model.*--overwrite"):
        train_own("pairs", [pairs_dir], ModelConfig("resnet", depth=6, width=8), QUICK, out=out, rt=CPU,
                  progress=False)


def test_a_file_that_is_not_a_checkpoint_at_out_is_kept(pairs_dir, tmp_path):
    out = tmp_path / "notes.pth"
    out.write_text("my notes")
    with pytest.raises(DataError, match="notes.pth: exists and is not an n2n_core checkpoint"):
        train_own("pairs", [pairs_dir], SMALL, QUICK, out=out, rt=CPU, progress=False)
    assert out.read_text() == "my notes"


def test_train_on_the_kaggle_pickles_end_to_end(tmp_path):
    gen = torch.Generator().manual_seed(0)
    clean = torch.stack([torch.from_numpy(smooth_image(32, 32, s)).permute(2, 0, 1) for s in range(12)])
    noisy = lambda: (clean.float() + 25 * torch.randn(clean.shape, generator=gen)).clamp(0, 255).round().to(torch.uint8)  # noqa: E731
    torch.save((noisy(), noisy()), tmp_path / "train_data.pkl")
    torch.save((noisy()[:4], clean[:4]), tmp_path / "val_data.pkl")
    run = train_own("pickle", tmp_path / "train_data.pkl", SMALL, dataclasses.replace(QUICK, crop=64),
                    out=tmp_path / "k.pth", val_pickle=tmp_path / "val_data.pkl", rt=CPU, progress=False)
    assert run.config["train"]["crop"] == 32  # cut to the 32 px images
    assert "val_data.pkl" in run.config["source"]["validation"]
    assert len(run.history.val_psnr) == 2 and 15 < run.history.val_psnr_input < 25  # noisy vs clean


@pytest.mark.parametrize("content,match", [
    ("text", "not a readable torch pickle"),
    ((torch.zeros(2, 3, 8, 8, dtype=torch.uint8),), "expected a tuple of two tensors"),
    ((torch.zeros(2, 8, 8, dtype=torch.uint8),) * 2, r"shape \(2, 8, 8\)"),
    ((torch.zeros(2, 3, 8, 8, dtype=torch.uint8), torch.zeros(3, 3, 8, 8, dtype=torch.uint8)), "differ in shape"),
    ((torch.zeros(2, 3, 8, 8, dtype=torch.int32),) * 2, "dtype torch.int32"),
])
def test_bad_pickles_are_named(tmp_path, content, match):
    path = tmp_path / "train_data.pkl"
    if content == "text":
        path.write_text("not a pickle")
    else:
        torch.save(content, path)
    with pytest.raises(DataError, match=f"train_data.pkl: .*{match}"):
        load_pickle_pair(path, "two noisy captures")


def test_pairs_whose_names_do_not_match(pairs_dir):
    (pairs_dir / "b" / "scene3.png").rename(pairs_dir / "b" / "other.png")
    with pytest.raises(DataError, match=r"scene3.png is in .*a but has no file of the same name in .*b"):
        load_pairs([pairs_dir], crop=16)


def test_pairs_whose_sizes_do_not_match(pairs_dir):
    write_png(pairs_dir / "b" / "scene2.png", smooth_image(20, 20, seed=9))
    with pytest.raises(DataError, match=r"scene2.png is 34x30 but .*scene2.png is 20x20"):
        load_pairs([pairs_dir], crop=16)


def test_pair_images_smaller_than_the_crop(pairs_dir):
    with pytest.raises(DataError, match=r"scene0.png is 34x28, smaller than the 32x32 training crop; pass a smaller"):
        load_pairs([pairs_dir], crop=32)


def test_a_pairs_folder_needs_two_sub_folders(tmp_path):
    (tmp_path / "one" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="expected two sub-folders .* found 1"):
        load_pairs([tmp_path / "one"], crop=16)


def test_an_empty_pairs_folder(tmp_path):
    for sub in ("a", "b"):
        (tmp_path / "p" / sub).mkdir(parents=True)
    with pytest.raises(DataError, match=r"no image files"):
        load_pairs([tmp_path / "p"], crop=16)


def test_a_non_image_among_the_pairs(pairs_dir):
    (pairs_dir / "a" / "scene1.png").write_text("oops")
    with pytest.raises(DataError, match=r"scene1.png: not an image file"):
        load_pairs([pairs_dir], crop=16)


def test_clean_targets_need_clean_images(pairs_dir):
    with pytest.raises(DataError, match="clean targets need clean images"):
        train_own("pairs", [pairs_dir], SMALL, dataclasses.replace(QUICK, target="clean"), rt=CPU)


def test_train_on_a_clean_folder_with_synthetic_noise(data_folder, tmp_path):
    from n2n_core.config import DataConfig

    run = train_own("clean", data_folder / "train_pool", SMALL, QUICK, out=tmp_path / "c.pth",
                    noise=NoiseConfig("poisson"), data_cfg=DataConfig(patch_size=24, train_patches=8, val_patches=2,
                                                                     val_image_every=3),
                    rt=CPU, progress=False)
    assert run.config["source"]["noise"]["kind"] == "poisson" and run.config["source"]["images"] == 6


def test_the_same_folder_twice_or_copied_captures_are_refused(tmp_path):
    root = write_noisy_pairs(tmp_path / "pairs", [(24, 24)] * 2)
    with pytest.raises(DataError, match="names .* twice: the second capture of each scene must come from another"):
        load_pairs([root / "a", str(root / "a") + "/"], crop=16)
    (root / "b" / "s1.png").write_bytes((root / "a" / "s1.png").read_bytes())
    with pytest.raises(DataError, match=r"a/s1.png and .*b/s1.png hold the same pixels"):
        load_pairs([root], crop=16)


def test_a_one_pair_pickle_names_the_file_and_the_fix(tmp_path):
    pickle = tmp_path / "one.pkl"
    torch.save((torch.zeros(1, 3, 32, 32, dtype=torch.uint8), torch.ones(1, 3, 32, 32, dtype=torch.uint8)), pickle)
    with pytest.raises(DataError, match=r"one.pkl: holds 1 pair\(s\), all of them held out .* --val-pickle"):
        train_own("pickle", pickle, ModelConfig("resnet", depth=4, width=8),
                  TrainConfig(crop=16, batch_size=2, max_steps=1), out=tmp_path / "m.pth", rt=CPU)


def test_a_bad_pickle_is_one_line_without_a_torch_warning(tmp_path, recwarn):
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(DataError, match="bad.pkl: not a readable torch pickle"):
        load_pickle_pair(bad, "two noisy captures")
    assert not [w for w in recwarn if "issue" in str(w.message).lower()]
